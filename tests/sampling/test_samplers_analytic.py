"""Analytic ground truth: Gaussian data N(mean, std²), whose denoiser and probability-flow ODE are closed form.

Deterministic samplers are checked for their order of convergence (log-error slope
over step counts); stochastic samplers for reproducing the data mean and variance.
"""

from __future__ import annotations

import math

import pytest
import torch

from nodes.sampling.noise import make_noise_sampler
from nodes.sampling.samplers import SAMPLERS
from nodes.sampling.schedules import get_sigmas_exponential, get_sigmas_karras

from .reference_models import GaussianData

DATA = GaussianData(mean=0.6, std=0.5)
STEP_COUNTS = (16, 32, 64, 128)


def _fitted_order(name: str) -> float:
    """Least-squares slope of -log2(error) against log2(steps) for the ODE solve from sigma 10 to 0.05."""
    x_start = DATA.marginal_sample((1, 64), 10.0, seed=0)
    errors = []
    for steps in STEP_COUNTS:
        # A schedule ending at sigma_min > 0 so the error is the ODE solver's, not the final jump to 0.
        sigmas = get_sigmas_exponential(steps, 0.05, 10.0)[:-1].double()
        result = SAMPLERS[name](DATA.denoiser, x_start, sigmas)
        exact = DATA.ode_solution(x_start, float(sigmas[0]), float(sigmas[-1]))
        errors.append(float((result - exact).abs().max()))
    logs_n = [math.log2(n) for n in STEP_COUNTS]
    logs_e = [math.log2(e) for e in errors]
    mean_n, mean_e = sum(logs_n) / len(logs_n), sum(logs_e) / len(logs_e)
    slope = sum((a - mean_n) * (b - mean_e) for a, b in zip(logs_n, logs_e)) / sum((a - mean_n) ** 2 for a in logs_n)
    return -slope


@pytest.mark.parametrize(("name", "low", "high"), [
    ("euler", 0.9, 1.1),
    ("ddim", 0.9, 1.1),  # deterministic DDIM is Euler in the VE view
    ("heun", 1.85, 2.3),
    ("dpmpp_2m", 1.85, 2.2),
    ("lms", 3.0, 4.5),  # order 4 with a ramp-up; asymptotics are slow
    ("unipc", 2.0, 4.5),  # UniPC-2 is 3rd order, limited by its 1st-order final step
])
def test_deterministic_sampler_converges_with_expected_order(name, low, high):
    """The ODE samplers' global error shrinks with the order of their method (fitted over 16-128 steps)."""
    order = _fitted_order(name)
    assert low <= order <= high, f"{name}: fitted order {order:.2f}, expected [{low}, {high}]"


# Measured errors at 200 steps: euler/ddim 1.9e-2, heun/dpmpp_2m 3.3e-4, lms/unipc 6e-6.
@pytest.mark.parametrize(("name", "bound"), [("euler", 3e-2), ("ddim", 3e-2), ("heun", 1e-3), ("dpmpp_2m", 1e-3),
                                             ("lms", 3e-5), ("unipc", 3e-5)])
def test_sampler_reaches_exact_ode_solution_at_sigma_zero(name, bound):
    """Over a full 200-step Karras schedule ending in 0 the sampler lands near the exact x(0)."""
    x_start = DATA.marginal_sample((1, 64), 14.6, seed=1)
    sigmas = get_sigmas_karras(200, 0.002, 14.6).double()
    exact = DATA.ode_solution(x_start, 14.6, 0.0)
    error = float((SAMPLERS[name](DATA.denoiser, x_start, sigmas) - exact).abs().max())
    assert error < bound, f"{name}: {error:.2e}"


# Statistical test set-up. 50,000 iid samples: standard error (SE) of the mean = std / sqrt(n)
# = 0.0022, of the relative variance = sqrt(2 / n) = 0.63%. The samplers are affine in x with
# D(mean) = mean, so the mean is unbiased for any step count: tolerance 0.012 (> 5 SE). The
# variance also carries the method's weak discretisation bias, measured once with 800,000
# samples on this schedule: Euler ancestral (= DDPM = DDIM eta=1) -2.2% at N=400, DPM++ 2M SDE
# -0.1% and DPM++ SDE -0.5% at N=100, Heun with churn +0.8% at N=100, LCM with an exact
# consistency function 0 (exact marginals at any N). Variance tolerance = |bias| + 5 SE, rounded
# up. A wrong noise scale misses by tens of percent (see the control test below).
SAMPLE_SHAPE = (2, 25_000)
STOCHASTIC_CASES = {  # case: (sampler, options, steps, variance tolerance)
    "euler_ancestral": ("euler_ancestral", {}, 400, 0.06),
    "ddpm": ("ddpm", {}, 400, 0.06),
    "ddim_eta_1": ("ddim", {"eta": 1.0}, 400, 0.06),
    "dpmpp_2m_sde": ("dpmpp_2m_sde", {}, 100, 0.04),
    "dpmpp_sde": ("dpmpp_sde", {}, 100, 0.04),
    "lcm": ("lcm", {}, 8, 0.04),
    "heun_churn": ("heun", {"s_churn": 40.0}, 100, 0.045),
}


@pytest.mark.parametrize("case", sorted(STOCHASTIC_CASES))
def test_stochastic_sampler_reproduces_data_mean_and_variance(case):
    """Samples from the exact noisy marginal at sigma_max end with the data's mean and variance."""
    name, options, steps, tolerance = STOCHASTIC_CASES[case]
    model = DATA.consistency_function if name == "lcm" else DATA.denoiser  # LCM's model is a consistency function
    sigmas = get_sigmas_karras(steps, 0.03, 14.6)
    x = DATA.marginal_sample(SAMPLE_SHAPE, 14.6, seed=7, dtype=torch.float32)
    samples = SAMPLERS[name](model, x, sigmas, noise_sampler=make_noise_sampler(x, seed=11), **options)
    assert abs(float(samples.mean()) - DATA.mean) < 0.012
    assert abs(float(samples.var()) / DATA.std**2 - 1) < tolerance


def test_stochastic_sampler_without_noise_loses_variance():
    """Control for the statistical test: Euler ancestral with zero noise scale fails the variance check."""
    sigmas = get_sigmas_karras(100, 0.03, 14.6)
    x = DATA.marginal_sample(SAMPLE_SHAPE, 14.6, seed=7, dtype=torch.float32)
    samples = SAMPLERS["euler_ancestral"](DATA.denoiser, x, sigmas, noise_sampler=make_noise_sampler(x, 11),
                                          s_noise=0.0)
    assert float(samples.var()) / DATA.std**2 - 1 < -0.5


def test_ddpm_ddim_eta_one_and_euler_ancestral_are_the_same_update():
    """DDPM's posterior, DDIM with eta=1 and Euler ancestral agree to float64 rounding for the same noise."""
    sigmas = get_sigmas_karras(12, 0.03, 14.6).double()
    x = DATA.marginal_sample((2, 3, 4), 14.6, seed=3)
    results = [SAMPLERS[name](DATA.denoiser, x, sigmas, noise_sampler=make_noise_sampler(x, 5), **options)
               for name, options in (("ddpm", {}), ("ddim", {"eta": 1.0}), ("euler_ancestral", {}))]
    assert torch.allclose(results[0], results[1], atol=1e-12, rtol=0)
    assert torch.allclose(results[0], results[2], atol=1e-12, rtol=0)


def test_deterministic_ddim_equals_euler():
    """DDIM with eta=0 is the Euler step of the probability-flow ODE (Karras et al. 2022, §3)."""
    sigmas = get_sigmas_karras(12, 0.03, 14.6).double()
    x = DATA.marginal_sample((2, 3, 4), 14.6, seed=3)
    assert torch.allclose(SAMPLERS["ddim"](DATA.denoiser, x, sigmas), SAMPLERS["euler"](DATA.denoiser, x, sigmas),
                          atol=1e-12, rtol=0)
