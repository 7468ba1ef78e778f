"""Rectified-flow models (SD3 / Flux): the shifted schedule against diffusers and the samplers on an analytic flow.

The analytic flow: data ~ N(mean, std²), x_t = (1 - t) x0 + t eps, whose exact velocity
E[eps - x0 | x_t] is closed form. Wrapped as a network ``net(x_t, 1000 t)`` and adapted once
by ModelDenoiser(prediction="flow", FlowTimeMap), it must give the exact VE denoiser, and the
ODE samplers must converge with the same orders as on the VP model.
"""

from __future__ import annotations

import math

import pytest
import torch

from nodes.sampling.denoisers import FlowTimeMap, ModelDenoiser, flow_shift, resolution_shift
from nodes.sampling.samplers import SAMPLERS
from nodes.sampling.schedules import get_sigmas, get_sigmas_exponential

from .reference_models import GaussianData

torch.set_num_threads(1)
DATA = GaussianData(mean=0.6, std=0.5)


def analytic_velocity_net(data: GaussianData, multiplier: float = 1000.0):
    """The exact velocity E[eps - x0 | x_t] of Gaussian data as a network net(x_t, multiplier * t)."""

    def net(x_t: torch.Tensor, t_net, **cond) -> torch.Tensor:
        t = torch.as_tensor(t_net, dtype=x_t.dtype).reshape((-1,) + (1,) * (x_t.ndim - 1)) / multiplier
        variance = (1 - t) ** 2 * data.std**2 + t**2
        centred = x_t - (1 - t) * data.mean
        x0 = data.mean + (1 - t) * data.std**2 / variance * centred
        eps = t / variance * centred
        return eps - x0

    return net


def _flow_denoiser(shift: float = 3.0) -> ModelDenoiser:
    return ModelDenoiser(analytic_velocity_net(DATA), FlowTimeMap(shift=shift), prediction="flow")


def test_flow_adapter_gives_the_exact_ve_denoiser():
    """Velocity -> x0 through the flow scalings equals the closed-form E[x0 | x] at every noise level."""
    denoiser = _flow_denoiser()
    x = torch.randn(3, 5, dtype=torch.float64)
    for sigma in (0.01, 0.7, 3.0, 250.0):
        assert torch.allclose(denoiser(x, sigma), DATA.denoiser(x, torch.tensor([sigma] * 3)), atol=1e-10)


@pytest.mark.parametrize(("shift", "steps"), [(3.0, 28), (1.0, 10), (resolution_shift(1024), 20)])
def test_shifted_schedule_matches_diffusers_flow_match_euler(shift, steps):
    """`normal` spacing on a FlowTimeMap gives FlowMatchEulerDiscreteScheduler's sigmas (t) and timesteps."""
    diffusers = pytest.importorskip("diffusers")
    reference = diffusers.FlowMatchEulerDiscreteScheduler(shift=shift)
    reference.set_timesteps(steps)
    denoiser = _flow_denoiser(shift)
    sigmas = get_sigmas("normal", denoiser, steps).double()
    flow_t = sigmas / (1 + sigmas)
    assert float((flow_t[1:] - reference.sigmas[1:].double()).abs().max()) < 1e-6
    assert float(flow_t[0]) == pytest.approx(1 - 1e-4)  # the VE view's stand-in for t = 1 (documented)
    net_times = denoiser.time_map.net_time(sigmas[:-1])
    assert float((net_times - reference.timesteps.double()).abs().max()) < 1e-3


def test_resolution_shift_is_diffusers_time_shift():
    """flow_shift with exp(mu) equals diffusers' exponential time shift exp(mu) / (exp(mu) + 1/t - 1)."""
    mu = math.log(resolution_shift(4096))
    assert mu == pytest.approx(1.15)
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    assert torch.allclose(flow_shift(t, math.exp(mu)), math.exp(mu) / (math.exp(mu) + (1 / t - 1)))


def test_flow_time_map_rejects_a_non_positive_shift():
    """A zero or negative shift is a clear error naming the argument."""
    with pytest.raises(Exception, match="shift"):
        FlowTimeMap(shift=0.0)


STEP_COUNTS = (16, 32, 64, 128)


def _fitted_order(name: str) -> float:
    """Slope of -log2(error) over log2(steps) for the ODE solve between flow times 0.95 and 0.05."""
    denoiser = _flow_denoiser()
    sigma_hi, sigma_lo = 0.95 / 0.05, 0.05 / 0.95
    x_start = DATA.marginal_sample((1, 64), sigma_hi, seed=0)
    errors = []
    for steps in STEP_COUNTS:
        sigmas = get_sigmas_exponential(steps, sigma_lo, sigma_hi)[:-1].double()
        result = SAMPLERS[name](denoiser, x_start, sigmas)
        errors.append(float((result - DATA.ode_solution(x_start, sigma_hi, float(sigmas[-1]))).abs().max()))
    logs_n = [math.log2(n) for n in STEP_COUNTS]
    logs_e = [math.log2(e) for e in errors]
    mean_n, mean_e = sum(logs_n) / len(logs_n), sum(logs_e) / len(logs_e)
    return -sum((a - mean_n) * (b - mean_e) for a, b in zip(logs_n, logs_e)) / sum((a - mean_n) ** 2 for a in logs_n)


@pytest.mark.parametrize(("name", "low", "high"), [
    ("euler", 0.9, 1.1), ("heun", 1.85, 2.3), ("dpmpp_2m", 1.85, 2.2), ("unipc", 2.0, 4.5)])
def test_samplers_converge_on_the_analytic_flow_with_their_order(name, low, high):
    """euler / heun / dpmpp_2m / unipc on the flow model converge with the orders they have on VP models."""
    order = _fitted_order(name)
    assert low <= order <= high, f"{name}: fitted order {order:.2f}"


# Measured at 100 steps: euler 3.2e-2, heun 7.5e-4, dpmpp_2m 1.4e-2, unipc 9.9e-3 (the multistep methods pay for
# the schedule's very uneven first steps in log sigma: 9999 -> 296 -> ...; at 200 steps 3.0e-3 / 1.5e-3).
@pytest.mark.parametrize(("name", "bound"), [("euler", 5e-2), ("heun", 2e-3), ("dpmpp_2m", 3e-2), ("unipc", 2e-2)])
def test_shifted_schedule_from_pure_noise_reaches_the_exact_flow_solution(name, bound):
    """From eps at t = 1 over a shift-3 schedule ending in 0, the samplers land on the exact ODE endpoint."""
    denoiser = _flow_denoiser()
    sigmas = get_sigmas("normal", denoiser, 100).double()
    eps = torch.randn(1, 64, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x0 = SAMPLERS[name](denoiser, eps * sigmas[0], sigmas)
    exact = DATA.ode_solution(eps * sigmas[0], float(sigmas[0]), 0.0)  # ~ mean + std * eps: t = 1 is t_max here
    error = float((x0 - exact).abs().max())
    assert error < bound, f"{name}: {error:.2e}"


def test_euler_matches_diffusers_flow_match_euler_step_by_step():
    """Our Euler over the shifted schedule ends where diffusers' FlowMatchEulerDiscreteScheduler does."""
    diffusers = pytest.importorskip("diffusers")
    reference = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
    reference.set_timesteps(28)
    net = analytic_velocity_net(DATA)
    eps = torch.randn(2, 16, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    sample = eps.clone()
    for timestep in reference.timesteps:
        sample = reference.step(net(sample, timestep.reshape(1).double()), timestep, sample).prev_sample
    denoiser = _flow_denoiser()
    sigmas = get_sigmas("normal", denoiser, 28).double()
    ours = SAMPLERS["euler"](denoiser, eps * sigmas[0], sigmas)
    assert float((ours - sample.double()).abs().max()) < 1e-3


# Weak discretisation bias of the variance on the shift-3 `normal` schedule, measured with these samples:
# euler_ancestral -13 % at 100 steps, -4.3 % at 400; dpmpp_2m_sde +9 % at 100, -0.2 % at 400 (on a Karras
# schedule the same flow model gives -1.1 % / +0.7 % at 400, as the VP model does). Tolerance = |bias| + 5 SE.
@pytest.mark.parametrize(("name", "tolerance"), [("euler_ancestral", 0.075), ("dpmpp_2m_sde", 0.035)])
def test_stochastic_samplers_reproduce_the_data_distribution_on_a_flow_model(name, tolerance):
    """Because samplers see the VE view, ancestral / SDE samplers need no flow branch: data mean and variance come out."""
    from nodes.sampling.noise import make_noise_sampler

    denoiser = _flow_denoiser()
    sigmas = get_sigmas("normal", denoiser, 400)
    x = torch.randn(2, 25_000, generator=torch.Generator().manual_seed(7)) * float(sigmas[0])
    samples = SAMPLERS[name](denoiser, x, sigmas, noise_sampler=make_noise_sampler(x, seed=11))
    # 50,000 samples: SE of the mean 0.0022 (tolerance 0.012), of the relative variance 0.6 %
    assert abs(float(samples.mean()) - DATA.mean) < 0.012
    assert abs(float(samples.var()) / DATA.std**2 - 1) < tolerance


def test_table_spacings_work_on_flow_models():
    """`simple` takes evenly strided entries of the shifted 1000-step table: s = 1, 1 - 1/N, ... (ComfyUI's flow
    'simple'); `ddim_uniform` works too, and every schedule decreases strictly to 0."""
    denoiser = _flow_denoiser(3.0)
    sigmas = get_sigmas("simple", denoiser, 8).double()
    s = torch.arange(8, 0, -1, dtype=torch.float64) / 8
    expected_t = flow_shift(s, 3.0).clamp(max=1 - 1e-4)
    assert torch.allclose(sigmas[:-1] / (1 + sigmas[:-1]), expected_t, atol=1e-6)
    for name in ("simple", "ddim_uniform", "normal", "sgm_uniform", "karras", "exponential"):
        schedule = get_sigmas(name, denoiser, 12)
        assert bool((schedule[1:] < schedule[:-1]).all()) and float(schedule[-1]) == 0.0, name
