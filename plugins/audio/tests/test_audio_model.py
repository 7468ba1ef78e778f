"""The tiny text-to-audio model: the denoiser's velocity/x̂0 contract, the model file, the beat-phase conditioning,
and the training loop (finite loss, checkpoints, exact resume) on the training kit."""

import json
import math
import random
from dataclasses import replace

import numpy as np
import pytest
import torch

from nodegraph import api
from nodegraph_audio import synth
from nodegraph_audio.beat import beat_features, beat_phase
from nodegraph_audio.denoiser import AudioDenoiser, AudioDenoiserConfig
from nodegraph_audio.features import DEFAULT_SPEC
from nodegraph_audio.model_file import AudioModelError, audio_model_from_weights, save_audio_model
from nodegraph_audio.text import tokenize
from nodegraph_audio.training import flow_loss, make_batch, train_audio_model

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
    """make_batch gives identical latents, tokens and beat features for the same (seed, step), different ones
    otherwise; the beat is present exactly for the click tracks."""
    a, tokens_a, beat_a, specs = make_batch(5, 3, seed=0)
    b, tokens_b, beat_b, _ = make_batch(5, 3, seed=0)
    c, _, _, _ = make_batch(6, 3, seed=0)
    assert torch.equal(a, b) and torch.equal(tokens_a, tokens_b) and torch.equal(beat_a, beat_b)
    assert not torch.equal(a, c)
    assert a.shape == (3, 1, 256, 96) and -1.01 <= float(a.min()) and float(a.max()) <= 1.1
    _, _, beat, specs = make_batch(0, 12, seed=0)
    clicks = torch.tensor([spec.kind == "clicks" for spec in specs])
    assert 0 < int(clicks.sum()) < 12 and beat.shape == (12, 4, 96)
    assert torch.equal(beat[:, 0], clicks[:, None].float().expand(12, 96))
    assert torch.equal(beat[~clicks], torch.zeros_like(beat[~clicks]))


def test_beat_features_of_a_known_tempo_and_phase():
    """120 bpm with the first click at 0.1 s: frame f (centred at 16 f ms) has phase (0.016 f - 0.1) · 2 mod 1,
    e.g. 0.8 at frame 0 and 0.0 at 0.6 s; the window channel is the 64 ms Hann window at the nearest click
    (frame 6, 4 ms away: cos²(π 4/64); frame 5, 20 ms: cos²(π 20/64); 0 beyond 32 ms); no tempo gives zeros."""
    features = beat_features(120, 0.1, DEFAULT_SPEC)
    assert features.shape == (4, 96) and torch.equal(features[0], torch.ones(96))
    window = features[3].tolist()
    assert window[5:8] == pytest.approx([math.cos(math.pi * d / 64) ** 2 for d in (20, 4, 12)], abs=1e-6)
    assert window[36:40] == pytest.approx([math.cos(math.pi * d / 64) ** 2 for d in (24, 8, 8, 24)], abs=1e-6)
    assert window[:5] == [0.0] * 5 and window[9:36] == [0.0] * 27                  # 0.6 s: between frames 37, 38
    expected_frame_0 = (math.sin(1.6 * math.pi), math.cos(1.6 * math.pi))        # phase 0.8
    assert features[1:3, 0].tolist() == pytest.approx(expected_frame_0, abs=1e-6)
    assert beat_phase(120, 0.1, DEFAULT_SPEC)[[0, 10, 25]].tolist() == pytest.approx([0.8, 0.12, 0.6], abs=1e-9)
    on_click = round(0.6 / 0.016)                                                  # 37.5 → frame 38 (0.608 s)
    assert features[2, on_click] == pytest.approx(math.cos(2 * math.pi * 0.016), abs=1e-6)
    assert torch.equal(beat_features(None, None, DEFAULT_SPEC), torch.zeros(4, 96))
    with pytest.raises(ValueError, match="tempo"):
        beat_features(0, 0.1, DEFAULT_SPEC)


@pytest.mark.parametrize("tempo", [60, 120, 180])
def test_beat_phase_is_zero_where_the_synthesised_clicks_start(tempo):
    """The first-click time synthesize_timed reports (same draws as synthesize) puts phase ≈ 0 within a frame of
    every peak of the click track's spectrogram energy: the training conditioning matches the audio."""
    from nodegraph_audio import features as latent_features

    spec = synth.SoundSpec("clicks", "loud", tempo=tempo)
    wave, first = synth.synthesize_timed(spec, random.Random(tempo))
    assert np.array_equal(wave, synth.synthesize(spec, random.Random(tempo))) and 0.02 <= first <= 0.3
    energy = latent_features.encode(torch.from_numpy(wave[None]))[0, 0].mean(0)    # (96,) mean log magnitude
    inner = energy[1:-1]
    peaks = torch.nonzero((inner >= energy[:-2]) & (inner >= energy[2:])
                          & (inner > energy.min() + 0.5 * (energy.max() - energy.min()))).flatten() + 1
    phase = beat_phase(tempo, first, DEFAULT_SPEC)
    distance = torch.minimum(phase, 1 - phase) * 60 / tempo / 0.016               # frames to the nearest click
    clicks = math.ceil((1.536 - first) * tempo / 60)
    assert clicks - 1 <= len(peaks) <= clicks
    assert float(distance[peaks].max()) <= 1.0
    window = beat_features(tempo, first, DEFAULT_SPEC)[3]
    assert float(window[peaks].min()) > 0.5                                       # the window channel sits on them
    assert float(energy[window == 0].max()) < float(energy[peaks].min())          # and is 0 where there is no click


def test_model_without_beat_conditioning_loads_and_ignores_beat_features(tmp_path):
    """A model file from before the option (its config has no `beat_conditioning`) loads as the plain net: no beat
    weights, the same outputs as the net that wrote it, and beat features passed to it change nothing."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    torch.manual_seed(4)
    net = AudioDenoiser(TINY).eval()
    for parameter in net.parameters():
        parameter.data.normal_(0, 0.05)
    path = tmp_path / "old.safetensors"
    save_audio_model(path, net, DEFAULT_SPEC, {})
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    legacy = {k: v for k, v in json.loads(metadata["config"]).items() if k != "beat_conditioning"}
    loaded, _ = audio_model_from_weights(load_file(str(path)), {**metadata, "config": json.dumps(legacy)})
    assert loaded.config.beat_conditioning is False and loaded.config == TINY
    assert not any(name.startswith("beat_") for name in loaded.state_dict())
    x, t, tokens = torch.randn(1, 1, 256, 96), torch.tensor([400.0]), _tokens("clicks at 120 bpm")
    beat = beat_features(120, 0.05, DEFAULT_SPEC)[None]
    with torch.no_grad():
        assert torch.equal(loaded(x, t, tokens, beat=beat), loaded(x, t, tokens))
        assert (loaded.predict_x0(x, t, tokens) - net.predict_x0(x, t, tokens)).abs().max() < 2e-2   # float16


def test_beat_model_starts_as_the_plain_model_and_reads_the_beat(tmp_path):
    """With beat conditioning the new projections start at zero (same seed → the plain net's outputs), carry no
    bias (zero features add nothing), change the output once trained, and the flag survives the model file."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    config = replace(TINY, beat_conditioning=True)
    torch.manual_seed(5)
    plain = AudioDenoiser(TINY).eval()
    torch.manual_seed(5)
    net = AudioDenoiser(config).eval()
    x, t, tokens = torch.randn(2, 1, 256, 96), torch.tensor([300.0, 700.0]), _tokens("clicks at 120 bpm", "")
    beat = torch.stack([beat_features(120, 0.05, DEFAULT_SPEC), torch.zeros(4, 96)])
    with torch.no_grad():
        assert torch.equal(net.predict_x0(x, t, tokens, beat), plain.predict_x0(x, t, tokens))
        for parameter in net.parameters():
            parameter.data.normal_(0, 0.05)
        with_beat = net.predict_x0(x, t, tokens, beat)
        assert torch.equal(with_beat[1], net.predict_x0(x, t, tokens)[1])           # zeros = no beat = None
        shifted = torch.stack([beat_features(120, 0.3, DEFAULT_SPEC), torch.zeros(4, 96)])
        assert not torch.allclose(with_beat[0], net.predict_x0(x, t, tokens, shifted)[0])
    with pytest.raises(ValueError, match="beat must be"):
        net.predict_x0(x, t, tokens, torch.zeros(2, 3, 48))
    path = tmp_path / "beat.safetensors"
    save_audio_model(path, net, DEFAULT_SPEC, {})
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    assert json.loads(metadata["config"])["beat_conditioning"] is True
    loaded, _ = audio_model_from_weights(load_file(str(path)), metadata)
    assert loaded.config == config
    with torch.no_grad():
        assert (loaded.predict_x0(x, t, tokens, beat) - with_beat).abs().max() < 2e-2


def test_caption_dropout_drops_the_beat_too():
    """flow_loss hands the net the beat features of kept captions unchanged and zeros for dropped ones (with the
    empty prompt's tokens): the unconditional branch never sees a beat."""
    net = AudioDenoiser(replace(TINY, beat_conditioning=True))
    seen = []
    original = net.predict_x0
    net.predict_x0 = lambda x, t, tokens, beat=None: seen.append((tokens, beat)) or original(x, t, tokens, beat)
    x0, tokens, beat, _ = make_batch(0, 8, seed=0)
    assert float(beat[:, 0].sum()) > 0
    for dropout in (0.0, 1.0):
        flow_loss(net, x0, tokens, torch.Generator().manual_seed(9), dropout, beat)
    (kept_tokens, kept_beat), (dropped_tokens, dropped_beat) = seen
    assert torch.equal(kept_tokens, tokens) and torch.equal(kept_beat, beat)
    assert torch.equal(dropped_tokens, _tokens(*[""] * 8)) and torch.equal(dropped_beat, torch.zeros_like(beat))


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
