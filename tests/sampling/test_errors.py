"""Bad input raises SamplingError naming the argument, rule, finding and fix, before any model call."""

from __future__ import annotations

import pickle

import pytest
import torch

from nodes.sampling.denoisers import DiscreteTimeMap
from nodes.sampling.errors import SamplingError
from nodes.sampling.guidance import CFGGuider
from nodes.sampling.samplers import get_sampler, register_sampler, sample, sampler_step
from nodes.sampling.schedules import (
    alphas_cumprod_from_betas,
    get_sigmas,
    get_sigmas_exponential,
    get_sigmas_karras,
    scaled_linear_betas,
    split_sigmas,
    truncate_for_denoise,
)

from .reference_models import CallCounter, GaussianData

SD_MAP = DiscreteTimeMap(alphas_cumprod_from_betas(scaled_linear_betas()))
SIGMAS = get_sigmas_karras(4, 0.03, 14.6)
X = torch.zeros(1, 4)


def _karras(n):
    return get_sigmas("karras", SD_MAP, n)


# (description, callable that must raise, regex the message must match)
BAD_INPUTS = [
    ("unknown sampler", lambda m: sample("euler_a", m, X, SIGMAS),
     r"sampler: expected one of \[.*'euler_ancestral'.*\], found 'euler_a'"),
    ("unknown sampler, step API", lambda m: sampler_step("nope", m, X, SIGMAS, 0), r"sampler: expected one of"),
    ("unknown schedule", lambda m: get_sigmas("karas", SD_MAP, 10),
     r"scheduler: expected one of \[.*'karras'.*\], found 'karas'"),
    ("zero steps", lambda m: get_sigmas("karras", SD_MAP, 0), r"steps: expected at least 1 step, found 0"),
    ("fractional steps", lambda m: get_sigmas("karras", SD_MAP, 2.5), r"steps: expected an integer number of steps"),
    ("denoise 0", lambda m: truncate_for_denoise(_karras, 10, 0.0), r"denoise: expected a number in \(0, 1\]"),
    ("denoise > 1", lambda m: truncate_for_denoise(_karras, 10, 1.5), r"denoise: expected a number in \(0, 1\]"),
    ("sigmas increasing", lambda m: sample("euler", m, X, SIGMAS.flip(0)),
     r"sigmas: expected strictly decreasing sigmas, found sigmas\[0\]=0 <= sigmas\[1\]"),
    ("sigmas repeated", lambda m: sample("euler", m, X, torch.tensor([2.0, 1.0, 1.0, 0.0])),
     r"strictly decreasing"),
    ("sigmas with NaN", lambda m: sample("euler", m, X, torch.tensor([2.0, float("nan"), 0.0])),
     r"finite, non-negative sigmas"),
    ("sigmas 2-D", lambda m: sample("euler", m, X, SIGMAS[None]), r"sigmas: expected a 1-D tensor"),
    ("single sigma", lambda m: sample("euler", m, X, SIGMAS[:1]), r"at least 2 sigmas"),
    ("sigmas as list", lambda m: sample("euler", m, X, [2.0, 0.0]), r"sigmas: expected a 1-D floating-point tensor"),
    ("schedule not ending in 0", lambda m: truncate_for_denoise(lambda n: _karras(n)[:-1], 10, 0.5),
     r"expected a schedule ending in sigma 0"),
    ("integer latent", lambda m: sample("euler", m, torch.zeros(1, 4, dtype=torch.long), SIGMAS),
     r"x: expected a floating-point latent tensor"),
    ("unknown option", lambda m: sample("euler", m, X, SIGMAS, eta=1.0),
     r"options: expected options of sampler 'euler': \['s_churn', 's_noise', 's_tmax', 's_tmin'\]"),
    ("step index out of range", lambda m: sampler_step("euler", m, X, SIGMAS, 4),
     r"i: expected a step index in \[0, 3\]"),
    ("split outside the schedule", lambda m: split_sigmas(SIGMAS, 0), r"step: expected an integer between 1 and 3"),
    ("DDIM eta > 1", lambda m: sample("ddim", m, X, SIGMAS, eta=1.5), r"eta: expected eta in \[0, 1\]"),
    ("UniPC order 4", lambda m: sample("unipc", m, X, SIGMAS, order=4), r"order: expected UniPC order 1, 2 or 3"),
    ("conditioning batch mismatch",
     lambda m: sample("euler", CFGGuider(m, {"c": torch.zeros(3, 2)}, {"c": torch.zeros(1, 2)}, 5.0),
                      torch.zeros(2, 4), SIGMAS),
     r"positive\['c'\]: expected batch 1 or 2 \(the latent batch\), found batch 3"),
    ("simple schedule with too many steps", lambda m: get_sigmas("simple", SD_MAP, 1001),
     r"steps: expected at most 1000 steps for schedule 'simple'"),
    # a numerics reviewer's pass: "math domain error", repeated zeros, NaN sigmas
    ("exponential to sigma 0", lambda m: get_sigmas_exponential(5, 0.0, 14.6),
     r"sigma_min: expected finite noise levels with 0 < sigma_min < sigma_max, found sigma_min=0.0"),
    ("karras to sigma 0", lambda m: get_sigmas_karras(5, 0.0, 14.6), r"sigma_min: expected .* 0 < sigma_min"),
    ("karras range upside down", lambda m: get_sigmas_karras(5, 14.6, 0.03), r"sigma_min: expected .* < sigma_max"),
    ("a model reaching sigma 0", lambda m: get_sigmas("normal", _ZeroMinimum(), 5),
     r"model: expected finite noise levels with 0 < sigma_min"),
]


class _ZeroMinimum:
    """A continuous time map whose smallest sigma is 0 (an EDM-style map set up carelessly)."""

    sigma_min, sigma_max, sigmas = 0.0, 80.0, None

    def sigma_to_t(self, sigma):
        return sigma

    def t_to_sigma(self, t):
        return t


@pytest.mark.parametrize(("description", "call", "pattern"), BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_raises_sampling_error_before_the_model_runs(description, call, pattern):
    """The call raises SamplingError whose message matches the rule, and the model was never evaluated."""
    model = CallCounter(GaussianData().denoiser)
    with pytest.raises(SamplingError, match=pattern) as caught:
        call(model)
    assert model.calls == []
    error = caught.value
    assert error.argument and error.expected and error.found and error.fix
    assert str(error).startswith(f"{error.argument}: expected {error.expected}, found ")


def test_sampling_error_is_a_value_error_and_pickles():
    """SamplingError subclasses ValueError and survives pickling with its fields."""
    error = SamplingError("steps", "at least 1 step", "0", "Use steps >= 1.", 0)
    clone = pickle.loads(pickle.dumps(error))
    assert isinstance(clone, ValueError) and str(clone) == str(error) and clone.value == 0


def test_register_sampler_checks_the_signature_and_duplicates():
    """A sampler with the wrong signature or a taken name is refused; get_sampler lists valid names."""
    with pytest.raises(SamplingError, match="leading parameters"):
        register_sampler("bad_signature", lambda model, x: x)
    with pytest.raises(SamplingError, match="not registered yet"):
        register_sampler("euler", get_sampler("euler"))
    with pytest.raises(SamplingError, match="one of"):
        get_sampler("missing")


def test_a_latent_whose_activations_cannot_fit_is_refused_before_the_first_step(tmp_path, monkeypatch):
    """16384² passed validation and the kernel killed the process (24 GB, no record): the sampler estimates the
    UNet's activations and refuses what the machine's free memory cannot hold, saying how much it needs."""
    import json
    from pathlib import Path

    import nodegraph.memory as memory
    from nodegraph import NodeExecutionError, Session
    from nodegraph.errors import NodeOutOfMemory
    from nodes.sampling.nodes import unet_activation_bytes
    from nodes.models.unet import UNetConfig
    import torch

    config = UNetConfig(model_channels=64, channel_mult=(1, 2, 2), num_res_blocks=2, transformer_depth=(0, 1, 1))
    measured_256 = 0.39e9                          # peak RSS of one step of the shipped UNet at a 256² latent
    estimate = unet_activation_bytes(config, torch.zeros(1, 4, 256, 256))
    assert 0.7 * measured_256 < estimate < 1.3 * measured_256
    assert unet_activation_bytes(config, torch.zeros(1, 4, 4096, 4096)) > 80 * 1024**3
    # a batch goes through the network in slices: 4,096 images of 128 px need what a few do (it was refused)
    assert unet_activation_bytes(config, torch.zeros(4096, 4, 16, 16)) == unet_activation_bytes(
        config, torch.zeros(512, 4, 16, 16)) < 1024**3
    # ... but not with a ControlNet, whose conditioning keeps the batch whole (a batch of 96 peaked 3× plain)
    assert unet_activation_bytes(config, torch.zeros(4096, 4, 16, 16), sliced=False) == 32 * unet_activation_bytes(
        config, torch.zeros(4096, 4, 16, 16))
    graph = json.loads((Path(__file__).resolve().parents[2] / "graphs" / "txt2img.json").read_text())
    session = Session(autoload=False, output_dir=tmp_path)
    monkeypatch.setattr(memory, "system_memory", lambda: (2 * 1024**3, 4 * 1024**3))     # 2 GiB available
    monkeypatch.setenv("NODEGRAPH_MEMORY_RESERVE_MB", "512")
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph, overrides={"sampler.steps": 1, "latent.width": 4096, "latent.height": 4096})
    assert isinstance(info.value.exception, NodeOutOfMemory) and info.value.node_id == "sampler"
    assert "GiB of activations" in str(info.value.exception) and "1.5 GiB free" in str(info.value.exception)
    assert session.run(graph, overrides={"sampler.steps": 1}).outputs     # 64²: runs
