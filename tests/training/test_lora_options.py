"""TrainLoRA's kohya options (a kohya user's pass, findings 8 and 9): alpha, grad_accumulation, lr_scheduler,
noise_offset, min_snr_gamma, and a run that blows up.

Each option is checked against its formula, a resumed run with all of them on equals an uninterrupted one bit for
bit, changing one restarts the run with a warning naming it, and at their defaults the saved identity is the one
earlier versions wrote (so their states still resume).
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace

import pytest
import torch

from nodegraph import NodeExecutionError, Session
from nodegraph.model_paths import ModelPaths
from nodes.training.lora_train import add_attention_lora, train_lora
from nodes.training.trainer import (DivergenceWatch, TrainConfig, TrainingDivergedError, TrainingRun,
                                    _noised_batch, lr_at, min_snr_weights)

from ..interrupt import StopTraining, stop_at
from .test_lcm_distill import ALPHAS, tiny_data, tiny_pair
from .test_lora_training import ROOT, _graph, _pictures

torch.set_num_threads(1)

ALL_ON = {"grad_accumulation": 2, "lr_scheduler": "linear", "noise_offset": 0.1, "min_snr_gamma": 5.0}


def _config(**changes) -> TrainConfig:
    settings = {"steps": 6, "batch_size": 3, "lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 2, "ema_decay": 0.0,
                "checkpoint_every": 3}
    return TrainConfig(**{**settings, **changes})


# --- the formulas -----------------------------------------------------------------------------------------------

def test_each_lr_scheduler_follows_its_formula():
    """cosine is the old schedule; linear ends at min_lr on the same warm-up; the constants never decay and
    "constant" skips the warm-up (kohya's and diffusers' meaning)."""
    rates = {name: [lr_at(step, _config(steps=10, lr_scheduler=name)) for step in range(10)]
             for name in ("cosine", "linear", "constant", "constant_with_warmup")}
    warm = [5e-4, 1e-3]
    assert rates["cosine"][:2] == warm and rates["cosine"][2] == pytest.approx(1e-3)
    assert rates["cosine"][6] == pytest.approx(1e-4 + 0.5 * 9e-4 * (1 + math.cos(math.pi * 4 / 8)))
    assert rates["linear"][:2] == warm
    assert rates["linear"][2:] == pytest.approx([1e-3 - 9e-4 * k / 8 for k in range(8)])
    assert rates["constant"] == [1e-3] * 10
    assert rates["constant_with_warmup"] == warm + [1e-3] * 8
    with pytest.raises(ValueError, match="lr_scheduler must be one of cosine, linear"):
        _config(lr_scheduler="cosine_with_restarts")


def test_min_snr_weights_are_hang_et_al_for_eps_and_v():
    """min(SNR, γ) / SNR for eps and min(SNR, γ) / (SNR + 1) for v, SNR = ᾱ / (1 − ᾱ); pure noise weighs 1 (eps)."""
    alphas = torch.tensor([0.999, 0.9, 0.5, 0.01, 0.0])
    snr = alphas / (1 - alphas)
    gamma = 5.0
    expected_eps = [min(float(s), gamma) / float(s) if s > 0 else 1.0 for s in snr]
    assert min_snr_weights(alphas, gamma, "eps").tolist() == pytest.approx(expected_eps)
    assert min_snr_weights(alphas, gamma, "v").tolist() == pytest.approx([min(float(s), gamma) / (float(s) + 1)
                                                                          for s in snr])


def test_noise_offset_shifts_each_channel_of_each_item_by_one_draw():
    """noise + offset · N(0, 1) per (item, channel): the difference from the plain noise is constant over the
    pixels, differs between channels, and an offset of 0 leaves the batch exactly as before."""
    data, config = tiny_data(), _config()
    plain = _noised_batch(data, ALPHAS, config, 3, 0, 0.0, "eps")
    again = _noised_batch(data, ALPHAS, replace(config, noise_offset=0.0), 3, 0, 0.0, "eps")
    assert all(torch.equal(a, b) for a, b in zip(plain, again))
    offset = _noised_batch(data, ALPHAS, replace(config, noise_offset=0.1), 3, 0, 0.0, "eps")
    shift = offset[4] - plain[4]                          # eps targets: the noise itself
    per_channel = shift.mean(dim=(2, 3), keepdim=True)
    assert torch.allclose(shift, per_channel.expand_as(shift), atol=1e-6)
    assert per_channel.std() > 0.01 and per_channel.abs().max() < 0.5
    a = ALPHAS[offset[2]].view(-1, 1, 1, 1)
    assert torch.allclose(offset[3] - plain[3], (1 - a).sqrt() * shift, atol=1e-6)   # x_t from the same noise


def test_the_train_config_repr_is_the_old_one_at_the_defaults():
    """A run's identity is the TrainConfig's repr: the new fields show only once set, so older states resume."""
    text = repr(_config())
    assert not any(name in text for name in ("lr_scheduler", "noise_offset", "min_snr_gamma"))
    assert text.startswith("TrainConfig(steps=6, batch_size=3,") and text.endswith("checkpoint_every=3)")
    assert "lr_scheduler='linear'" in repr(_config(lr_scheduler="linear"))
    assert eval(repr(_config(**ALL_ON))) == _config(**ALL_ON)     # noqa: S307 (a dataclass repr, ours)


# --- the loop ---------------------------------------------------------------------------------------------------

def _first_step_by_hand(config: TrainConfig, rank: int, alpha: float) -> tuple[float, float]:
    """(loss of the last micro-batch, gradient norm) of optimiser step 1, computed outside `train_lora`: every
    micro-batch's min-SNR weighted loss / grad_accumulation, summed into one gradient."""
    unet, clip = tiny_pair()
    torch.manual_seed(config.seed)
    student = copy.deepcopy(unet)
    adapters = add_attention_lora(student, rank, alpha)
    student.train()
    for micro in range(config.grad_accumulation):
        _, ids, t, x_t, target = _noised_batch(tiny_data(), ALPHAS, config, 0, micro, 0.0, "eps")
        with torch.no_grad():
            context, _ = clip(ids, layer=clip.config.output_layer, pooled=False)
        per_item = (student(x_t, t.float(), context=context) - target).pow(2).mean(dim=(1, 2, 3))
        weights = min_snr_weights(ALPHAS[t], config.min_snr_gamma, "eps") if config.min_snr_gamma else 1.0
        loss = (weights * per_item).mean()
        (loss / config.grad_accumulation).backward()
    grads = [p.weight.grad for a in adapters.values() for p in (a.down, a.up) if p.weight.grad is not None]
    return loss.item(), float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))


@pytest.mark.parametrize("options", [{}, {"grad_accumulation": 2}, {"min_snr_gamma": 1.0},
                                     {"grad_accumulation": 3, "min_snr_gamma": 0.5, "noise_offset": 0.1}])
def test_the_first_step_is_the_accumulated_weighted_loss(options):
    """Step 1's loss and gradient norm equal a by-hand computation: grad_accumulation sums the micro-batches'
    gradients / N, min_snr_gamma weights each item's loss."""
    config = _config(steps=1, batch_size=6, **options)
    if config.min_snr_gamma:                             # the batch holds items the weighting changes
        assert min_snr_weights(ALPHAS[_noised_batch(tiny_data(), ALPHAS, config, 0, 0, 0.0, "eps")[2]],
                               config.min_snr_gamma, "eps").min() < 0.5
    unet, clip = tiny_pair()
    seen = {}
    train_lora(unet, clip, tiny_data(), ALPHAS, config, lambda step, total, info: seen.update(info), rank=4)
    loss, norm = _first_step_by_hand(config, rank=4, alpha=4.0)
    assert seen["loss"] == pytest.approx(loss, rel=1e-5) and seen["grad_norm"] == pytest.approx(norm, rel=1e-4)


def test_alpha_scales_the_adapters_by_alpha_over_rank():
    """alpha 2 at rank 4 puts 2 in each adapter (the file's `.alpha`), so its change is half of up · down."""
    unet, clip = tiny_pair()
    adapters, report = train_lora(unet, clip, tiny_data(), ALPHAS, _config(steps=2), lambda *a: None, rank=4,
                                  alpha=2.0)
    assert report["alpha"] == 2.0 and {a.alpha for a in adapters.values()} == {2.0}
    adapter = next(iter(adapters.values()))
    x = torch.randn(5, adapter.base.in_features)
    with torch.no_grad():
        expected = adapter.base(x) + 0.5 * adapter.up(adapter.down(x))
        assert torch.allclose(adapter(x), expected, atol=1e-6)


def test_a_resumed_run_with_every_option_on_equals_an_uninterrupted_one(tmp_path):
    """Stopped after its checkpoint at step 3 and run again, the adapters are bit-identical to a 6-step run's."""
    config = _config(**ALL_ON)
    unet, clip = tiny_pair()
    whole, _ = train_lora(unet, clip, tiny_data(), ALPHAS, config, lambda *a: None, rank=4, alpha=1.0)
    run = lambda: TrainingRun(tmp_path, {"train": repr(config)}, warn=lambda message: None)    # noqa: E731
    with pytest.raises(StopTraining):
        train_lora(unet, clip, tiny_data(), ALPHAS, config, stop_at(4), run(), rank=4, alpha=1.0)
    steps = []
    resumed, _ = train_lora(unet, clip, tiny_data(), ALPHAS, config, lambda step, *a: steps.append(step), run(),
                            rank=4, alpha=1.0)
    assert steps == [4, 5, 6]
    for name, adapter in whole.items():
        assert torch.equal(adapter.up.weight, resumed[name].up.weight)
        assert torch.equal(adapter.down.weight, resumed[name].down.weight)


# --- a run that blows up ----------------------------------------------------------------------------------------

def test_a_nan_loss_stops_the_run_before_it_reaches_the_weights(tmp_path):
    """An inf latent makes the loss NaN at step 1: the run stops, naming the step and lr, and saves nothing."""
    data = tiny_data()
    data.latents[:] = float("inf")
    unet, clip = tiny_pair()
    run = TrainingRun(tmp_path, {"x": 1}, warn=lambda message: None, shown_as="training run 'boom'")
    with pytest.raises(TrainingDivergedError) as caught:
        train_lora(unet, clip, data, ALPHAS, _config(steps=2, lr=0.5), lambda *a: None, run, rank=4)
    message = str(caught.value)
    assert message.startswith("training run 'boom': at step 1 the loss is nan") and "learning rate 0.5" in message
    assert not list(tmp_path.iterdir())


def test_the_gradient_norm_warning_fires_once_far_past_the_start():
    """A healthy run's 70× growth says nothing; 1000× the median of the first ten norms warns once, naming lr."""
    warnings = []
    watch = DivergenceWatch(warnings.append, "training run 'w'", lr=0.1)
    norms = [0.03, 0.02, 0.05, 0.03, 0.04, 0.02, 0.03, 0.05, 0.04, 0.03] + [2.1, 1.0, 0.5]   # 70×: fine
    for step, norm in enumerate(norms):
        watch.step = step
        watch.check(norm)
    assert warnings == []
    for step, norm in enumerate([31.0, 2.6e7, 5e10], start=len(norms)):
        watch.step = step
        watch.check(norm)
    assert len(warnings) == 1
    assert warnings[0].startswith("training run 'w': the gradient norm at step 14 is 31, 1033× its 0.03 at the "
                                  "start") and "learning rate 0.1 is the likely cause" in warnings[0]
    with pytest.raises(TrainingDivergedError, match="at step 18 the gradient norm is inf"):
        watch.step = 17
        watch.check(float("inf"))


def _session(tmp_path) -> Session:
    return Session(builtins=True, model_paths=ModelPaths(roots=[tmp_path / "models", ROOT / "models"]),
                   input_dir=tmp_path / "in", output_dir=tmp_path / "out")


def _lora_graph(steps: int, **inputs) -> dict:
    graph = _graph(steps)
    graph["nodes"]["train"]["inputs"].update(inputs)
    return graph


def test_lr_1_on_the_tiny_model_warns_that_the_run_diverged(tmp_path):
    """The tester's case (lr 1.0: grad norm 7.8e14, saved without a word) now says so as the run goes."""
    _pictures(tmp_path / "in" / "zorb")
    result = _session(tmp_path).run(_lora_graph(30, lr=1.0, batch_size=4, warmup_steps=5, checkpoint_every=0),
                                    outputs=["train"])
    said = [w["message"] for w in result.warnings if "gradient norm" in w["message"]]
    assert len(said) == 1 and "the run is diverging" in said[0] and "learning rate 1 is the likely cause" in said[0]


# --- the node ---------------------------------------------------------------------------------------------------

def test_the_node_passes_its_options_and_each_change_restarts_naming_it(tmp_path):
    """At the defaults the identity is the one earlier versions saved; alpha reaches the file's header and tensors;
    changing any one option sets the state aside with a warning naming it (the others as before)."""
    _pictures(tmp_path / "in" / "zorb")
    session = _session(tmp_path)
    session.run(_lora_graph(2), outputs=["train"])
    state = next((tmp_path / "out").rglob("training_state.json"))
    identity = json.loads(json.loads(state.read_text())["identity"])
    assert identity["lora"] == {"rank": 4, "caption_dropout": 0.0}
    assert "lr_scheduler" not in identity["train"] and "noise_offset" not in identity["train"]
    same = session.run(_lora_graph(2, alpha=4.0), outputs=["train"])        # alpha = rank: the same run, finished
    assert not [w for w in same.warnings if "training run" in w["message"]]
    inputs: dict = {}
    for change, named in (({"alpha": 2.0}, "lora.alpha (none) → 2.0"),
                          ({"grad_accumulation": 2}, "train.grad_accumulation 1 → 2"),
                          ({"lr_scheduler": "constant"}, "train.lr_scheduler 'cosine' → 'constant'"),
                          ({"noise_offset": 0.05}, "train.noise_offset 0.0 → 0.05"),
                          ({"min_snr_gamma": 5.0}, "train.min_snr_gamma 0.0 → 5.0")):
        inputs.update(change)
        result = session.run(_lora_graph(2, **inputs), outputs=["train", "save"])
        said = [w["message"] for w in result.warnings if "other settings" in w["message"]]
        assert len(said) == 1 and f"made with other settings: {named}. Training starts again" in said[0], said
    from safetensors import safe_open

    saved = sorted((tmp_path / "models" / "loras").glob("zorb*.safetensors"))[-1]
    with safe_open(str(saved), "pt") as file:
        assert file.metadata()["ss_network_alpha"] == "2"
        assert {float(file.get_tensor(k)) for k in file.keys() if k.endswith(".alpha")} == {2.0}
    report = json.loads(result.outputs["train"]["report"])
    assert report["alpha"] == 2.0


def test_a_diverged_node_run_names_the_lr_input(tmp_path, monkeypatch):
    """TrainingDivergedError reaches the graph as an error on `lr`, the input to change."""
    from nodes.training import trainer

    _pictures(tmp_path / "in" / "zorb")
    original = trainer._denoising_loss
    monkeypatch.setattr("nodes.training.lora_train._denoising_loss",
                        lambda *args: original(*args) * float("nan"))
    with pytest.raises(NodeExecutionError) as caught:
        _session(tmp_path).run(_lora_graph(2, lr=0.3), outputs=["train"])
    assert caught.value.exception_type == "NodeInputError" and caught.value.exception.input == "lr"
    assert "at step 1 the loss is nan" in str(caught.value.exception) and "learning rate 0.3" in \
        str(caught.value.exception)
