"""The tiny text-to-audio model: the denoiser's velocity/x̂0 contract, the model file, and the training loop
(finite loss, checkpoints, exact resume) on the training kit."""

import json
from dataclasses import replace

import pytest
import torch

from nodegraph import api
from nodegraph_audio.denoiser import AudioDenoiser, AudioDenoiserConfig
from nodegraph_audio.features import DEFAULT_SPEC
from nodegraph_audio.model_file import AudioModelError, audio_model_from_weights, save_audio_model
from nodegraph_audio.text import tokenize
from nodegraph_audio.training import make_batch, train_audio_model

torch.set_num_threads(1)
TINY = AudioDenoiserConfig(widths=(16, 24), attention_levels=(1,), heads=2, embed_width=32, text_width=16,
                           text_layers=1)


def _tokens(*texts):
    return torch.tensor([tokenize(t) for t in texts])


def test_velocity_is_computed_from_the_clean_prediction():
    """forward returns v = (x - x̂0) / t, so the sampler's x - t·v gives back x̂0; shapes are kept."""
    torch.manual_seed(0)
    net = AudioDenoiser(TINY).eval()
    for parameter in net.parameters():
        parameter.data.normal_(0, 0.05)
    x, t = torch.randn(2, 1, 256, 96), torch.tensor([250.0, 900.0])
    tokens = _tokens("loud tone at c4", "")
    with torch.no_grad():
        v, x0 = net(x, t, tokens), net.predict_x0(x, t, tokens)
    assert v.shape == x.shape
    assert torch.allclose(x - (t / 1000).view(-1, 1, 1, 1) * v, x0, atol=1e-5)
    assert not torch.allclose(x0[0], x0[1])          # the caption and time reach the output


def test_model_file_round_trip_and_refusals(tmp_path):
    """A saved model loads to the same outputs (float16 storage); foreign or mismatched files are refused."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    torch.manual_seed(1)
    net = AudioDenoiser(TINY).eval()
    for parameter in net.parameters():
        parameter.data.normal_(0, 0.05)
    path = tmp_path / "m.safetensors"
    save_audio_model(path, net, DEFAULT_SPEC, {"note": "test"})
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    loaded, spec = audio_model_from_weights(load_file(str(path)), metadata)
    assert spec == DEFAULT_SPEC and loaded.config == TINY
    x, t, tokens = torch.randn(1, 1, 256, 96), torch.tensor([500.0]), _tokens("quiet rising sweep")
    with torch.no_grad():
        assert (loaded.predict_x0(x, t, tokens) - net.predict_x0(x, t, tokens)).abs().max() < 2e-2
    with pytest.raises(AudioModelError, match="format"):
        audio_model_from_weights(load_file(str(path)), {"format": "something else"})
    bigger = json.dumps(replace(TINY, widths=(32, 24)).to_dict())
    with pytest.raises(AudioModelError, match="shape"):
        audio_model_from_weights(load_file(str(path)), {**metadata, "config": bigger})


def test_rotary_attention_scores_depend_on_the_offset_only():
    """rotary(q)_m · rotary(k)_n is a function of m - n: the same q, k pair scores alike at every position."""
    from nodegraph_audio.denoiser import rotary

    torch.manual_seed(2)
    q, k = torch.randn(1, 1, 1, 18), torch.randn(1, 1, 1, 18)
    qs, ks = rotary(q.expand(1, 1, 40, 18).contiguous()), rotary(k.expand(1, 1, 40, 18).contiguous())
    scores = (qs[0, 0] @ ks[0, 0].T)                           # (40, 40)
    for offset in (0, 3, 17):
        diagonal = torch.diagonal(scores, -offset)              # score(m, m - offset)
        assert torch.allclose(diagonal, diagonal[0].expand_as(diagonal), atol=1e-4)
    assert not torch.allclose(torch.diagonal(scores, -3)[0], torch.diagonal(scores, -4)[0])
    assert torch.allclose(rotary(q), q)                          # position 0 is not rotated


def test_rope_model_round_trips_and_old_files_read_as_learned_positions(tmp_path):
    """A rotary model (attention at full frame rate too) saves and loads; a config without `positions` (files from
    before the option) is a learned-position model."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    config = replace(TINY, attention_levels=(0, 1), positions="rope")
    torch.manual_seed(3)
    net = AudioDenoiser(config).eval()
    assert not any("position" in name for name, _ in net.named_parameters() if "text_encoder" not in name)
    path = tmp_path / "rope.safetensors"
    save_audio_model(path, net, DEFAULT_SPEC, {})
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    loaded, _ = audio_model_from_weights(load_file(str(path)), metadata)
    assert loaded.config == config
    legacy = {k: v for k, v in TINY.to_dict().items() if k != "positions"}
    assert AudioDenoiserConfig.from_dict(legacy).positions == "learned"
    with pytest.raises(ValueError, match="positions"):
        replace(TINY, positions="sinusoidal")


def test_batches_are_a_function_of_the_step():
    """make_batch gives identical latents and tokens for the same (seed, step), different ones otherwise."""
    a, tokens_a, _ = make_batch(5, 3, seed=0)
    b, tokens_b, _ = make_batch(5, 3, seed=0)
    c, _, _ = make_batch(6, 3, seed=0)
    assert torch.equal(a, b) and torch.equal(tokens_a, tokens_b) and not torch.equal(a, c)
    assert a.shape == (3, 1, 256, 96) and -1.01 <= float(a.min()) and float(a.max()) <= 1.1


def test_training_checkpoints_and_resumes_exactly(tmp_path):
    """Four steps in one go equal two steps, an interruption, and a resume to four (the kit's TrainingRun)."""
    kit = api.training()

    def run(steps, folder):
        torch.manual_seed(0)
        net = AudioDenoiser(TINY)
        config = kit.TrainConfig(steps=steps, batch_size=2, lr=1e-3, warmup_steps=1, ema_decay=0.9, seed=3,
                                 checkpoint_every=2)
        losses = []
        net = train_audio_model(net, kit, config, kit.TrainingRun(folder, {"t": 1}),
                                lambda step, total, info: losses.append(info["loss"]))
        return net, losses

    straight, losses = run(4, tmp_path / "a")
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    _, first_half = run(2, tmp_path / "b")            # an "interrupted" run: its state is saved at step 2
    assert json.loads((tmp_path / "b" / "training_state.json").read_text())["step"] == 2
    resumed, second_half = run(4, tmp_path / "b")      # the same run again, now to step 4: resumes at 2
    assert len(second_half) == 2
    assert first_half + second_half == pytest.approx(losses, rel=1e-6)
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    _, again = run(4, tmp_path / "a")                  # a finished run is not repeated
    assert again == []
