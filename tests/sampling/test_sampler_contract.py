"""Shared suite every registered sampler must pass (a newly registered sampler is tested automatically).

Also the single-step API: stepping with carried state reproduces the full run bit for bit.
"""

from __future__ import annotations

import pytest
import torch

from nodes.sampling.denoisers import DiscreteTimeMap, ModelDenoiser
from nodes.sampling.errors import SamplingError
from nodes.sampling.noise import make_noise_sampler, seeded_noise
from nodes.sampling.samplers import SAMPLER_STEPS, SAMPLERS, sampler_step
from nodes.sampling.schedules import alphas_cumprod_from_betas, get_sigmas, scaled_linear_betas, split_sigmas

from .reference_models import TinyEpsNet

SD_MAP = DiscreteTimeMap(alphas_cumprod_from_betas(scaled_linear_betas()))
TINY_MODEL = ModelDenoiser(TinyEpsNet(channels=3), SD_MAP, "eps")
# Options that make a sampler exercise its stochastic or higher-order paths in the suite.
SUITE_OPTIONS = {"ddim": {"eta": 0.5}, "euler": {"s_churn": 1.0}, "heun": {"s_churn": 1.0}, "unipc": {"order": 3}}


def _constant_denoiser(value: float):
    def denoiser(x, sigma, **cond):
        return torch.full_like(x, value)

    return denoiser


@pytest.mark.parametrize("name", sorted(SAMPLERS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_sampler_preserves_shape_and_dtype(name, dtype):
    """The output has the latent's shape and dtype (half precisions included) and is finite."""
    x = seeded_noise((2, 3, 5, 4), seed=0, dtype=dtype) * 14.6
    out = SAMPLERS[name](TINY_MODEL, x, get_sigmas("karras", SD_MAP, 6), noise_sampler=make_noise_sampler(x, 1))
    assert out.shape == x.shape and out.dtype == dtype and bool(out.isfinite().all())


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sampler_ends_at_sigma_zero_on_the_data(name):
    """With a denoiser that always answers c, every sampler ends exactly(ish) at c once sigma reaches 0."""
    x = seeded_noise((2, 4), seed=0, dtype=torch.float64) * 14.6
    out = SAMPLERS[name](_constant_denoiser(0.25), x, get_sigmas("karras", SD_MAP, 5),
                         noise_sampler=make_noise_sampler(x, 1), **SUITE_OPTIONS.get(name, {}))
    assert torch.allclose(out, torch.full_like(x, 0.25), atol=1e-9)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_callback_gets_the_documented_dict_every_step(name):
    """The callback is called once per step with exactly {i, sigma, sigma_hat, x, denoised}."""
    sigmas = get_sigmas("karras", SD_MAP, 4)
    x = seeded_noise((1, 3, 4, 4), seed=0) * 14.6
    events = []
    SAMPLERS[name](TINY_MODEL, x, sigmas, callback=events.append, noise_sampler=make_noise_sampler(x, 1),
                   **SUITE_OPTIONS.get(name, {}))
    assert [event["i"] for event in events] == [0, 1, 2, 3]
    for event in events:
        assert set(event) == {"i", "sigma", "sigma_hat", "x", "denoised"}
        assert event["sigma"] == pytest.approx(float(sigmas[event["i"]]))
        assert event["sigma_hat"] >= event["sigma"]
        assert event["x"].shape == x.shape and event["denoised"].shape == x.shape


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sampler_accepts_a_split_high_part_not_ending_in_zero(name):
    """Running the high part then the low part of a split schedule works for every sampler."""
    high, low = split_sigmas(get_sigmas("karras", SD_MAP, 6), 3)
    x = seeded_noise((1, 3, 4, 4), seed=0) * 14.6
    middle = SAMPLERS[name](TINY_MODEL, x, high, noise_sampler=make_noise_sampler(x, 1))
    out = SAMPLERS[name](TINY_MODEL, middle, low, noise_sampler=make_noise_sampler(x, 1))
    assert bool(out.isfinite().all())


@pytest.mark.parametrize("name", sorted(SAMPLER_STEPS))
def test_stepping_with_carried_state_reproduces_the_full_run_bit_for_bit(name):
    """sampler_step for i = 0..n-1, feeding each new state into the next call, equals the full sampler exactly."""
    options = SUITE_OPTIONS.get(name, {})
    sigmas = get_sigmas("karras", SD_MAP, 7)
    x = seeded_noise((2, 3, 4, 4), seed=3) * float(sigmas[0])
    full_events = []
    full = SAMPLERS[name](TINY_MODEL, x, sigmas, noise_sampler=make_noise_sampler(x, 21), callback=full_events.append,
                          **options)
    state, stepped, step_events = None, x, []
    for i in range(len(sigmas) - 1):
        stepped, state = sampler_step(name, TINY_MODEL, stepped, sigmas, i, state, seed=21,
                                      callback=step_events.append, **options)
        assert state["next_step"] == i + 1 and state["sampler"] == name and state["noise_seed"] == 21
    assert torch.equal(stepped, full)
    assert [e["sigma_hat"] for e in step_events] == [e["sigma_hat"] for e in full_events]
    assert all(torch.equal(a["denoised"], b["denoised"]) for a, b in zip(step_events, full_events))


def test_stepping_state_is_plain_and_documents_history():
    """Multistep samplers carry their documented history; history-free ones carry only bookkeeping."""
    sigmas = get_sigmas("karras", SD_MAP, 4)
    x = seeded_noise((1, 3, 2, 2), seed=0) * 14.6
    expected = {"dpmpp_2m": {"previous_denoised"}, "dpmpp_2m_sde": {"previous_denoised"}, "lms": {"derivatives"},
                "unipc": {"denoised_history", "x_before_predictor"},
                "unipc_bh1": {"denoised_history", "x_before_predictor"}}
    for name in SAMPLER_STEPS:
        _, state = sampler_step(name, TINY_MODEL, x, sigmas, 0, seed=0)
        assert set(state) - {"sampler", "next_step", "noise_seed"} == expected.get(name, set()), name


def test_stepping_without_seed_records_a_seed_in_the_state():
    """Without seed or noise sampler, step 0 picks a seed and later steps reuse it from the state."""
    sigmas = get_sigmas("karras", SD_MAP, 3)
    x = seeded_noise((1, 3, 2, 2), seed=0) * 14.6
    torch.manual_seed(5)
    x1, state = sampler_step("euler_ancestral", TINY_MODEL, x, sigmas, 0)
    x2, _ = sampler_step("euler_ancestral", TINY_MODEL, x1, sigmas, 1, state)
    reference = SAMPLERS["euler_ancestral"](TINY_MODEL, x, sigmas[:3], noise_sampler=make_noise_sampler(
        x, state["noise_seed"]))
    assert torch.equal(x2, reference)


def test_multistep_sampler_refuses_a_missing_history():
    """Calling step 2 of DPM++ 2M without the previous state raises SamplingError naming the missing key."""
    sigmas = get_sigmas("karras", SD_MAP, 4)
    x = seeded_noise((1, 3, 2, 2), seed=0)
    with pytest.raises(SamplingError, match="previous_denoised"):
        sampler_step("dpmpp_2m", TINY_MODEL, x, sigmas, 2, None, seed=0)


def test_stepping_refuses_a_state_from_another_step_or_sampler():
    """A state from a different sampler or a skipped step is rejected before the model runs."""
    sigmas = get_sigmas("karras", SD_MAP, 4)
    x = seeded_noise((1, 3, 2, 2), seed=0)
    _, state = sampler_step("dpmpp_2m", TINY_MODEL, x, sigmas, 0, seed=0)
    with pytest.raises(SamplingError, match="produced by sampler 'lms'"):
        sampler_step("lms", TINY_MODEL, x, sigmas, 1, state, seed=0)
    with pytest.raises(SamplingError, match="next_step=2"):
        sampler_step("dpmpp_2m", TINY_MODEL, x, sigmas, 2, state, seed=0)


def test_a_sampler_registered_from_a_step_function_runs_by_name_and_steps():
    """register_sampler(name, sampler_from_step(step), step=step) makes a plugin sampler usable like a built-in."""
    from nodes.sampling.samplers import euler_step, register_sampler, sample, sampler_from_step

    def halfway_step(model, x, sigmas, i, state, extra_args, noise_sampler, *, weight: float = 1.0):
        result = euler_step(model, x, sigmas, i, state, extra_args, noise_sampler)
        return result._replace(x=torch.lerp(x, result.x, weight))

    register_sampler("test_weighted_euler", sampler_from_step(halfway_step), step=halfway_step)
    try:
        sigmas = get_sigmas("karras", SD_MAP, 4)
        x = seeded_noise((1, 3, 2, 2), seed=0) * 14.6
        expected = SAMPLERS["euler"](TINY_MODEL, x, sigmas)
        assert torch.equal(sample("test_weighted_euler", TINY_MODEL, x, sigmas), expected)
        stepped, _ = sampler_step("test_weighted_euler", TINY_MODEL, x, sigmas, 0, weight=0.5)
        assert stepped.shape == x.shape
        with pytest.raises(SamplingError, match=r"options of sampler 'test_weighted_euler': \['weight'\]"):
            sample("test_weighted_euler", TINY_MODEL, x, sigmas, eta=1.0)
    finally:
        SAMPLERS.pop("test_weighted_euler")
        SAMPLER_STEPS.pop("test_weighted_euler")
