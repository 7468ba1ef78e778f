"""DDIM inversion: invert, sample back with deterministic DDIM over the same sigmas, compare with x0."""

from __future__ import annotations

import pytest
import torch

from nodes.sampling.denoisers import DiscreteTimeMap, ModelDenoiser
from nodes.sampling.errors import SamplingError
from nodes.sampling.inversion import invert_ddim
from nodes.sampling.samplers import sample_ddim
from nodes.sampling.schedules import alphas_cumprod_from_betas, get_sigmas_karras, scaled_linear_betas

from .reference_models import CallCounter, GaussianData, TinyEpsNet

DATA = GaussianData(mean=0.6, std=0.5)
SIGMAS = get_sigmas_karras(50, 0.03, 14.6).double()


def _round_trip_error(model, x0, sigmas, iterations=0) -> float:
    x_noise = invert_ddim(model, x0, sigmas, fixed_point_iterations=iterations)
    return float((sample_ddim(model, x_noise, sigmas) - x0).abs().max() / x0.abs().max())


def test_plain_ddim_inversion_round_trip_is_within_bound_and_first_order():
    """Plain inversion (eps held from the current point) round-trips within 8% at 50 steps, halving per doubling."""
    x0 = DATA.marginal_sample((2, 1000), 0.0, seed=0)
    error_50 = _round_trip_error(DATA.denoiser, x0, SIGMAS)
    error_100 = _round_trip_error(DATA.denoiser, x0, get_sigmas_karras(100, 0.03, 14.6).double())
    assert error_50 < 0.08  # measured 5.4e-2
    assert error_100 < 0.6 * error_50  # O(h) round trip: measured ratio 0.50


def test_inverted_latent_matches_the_exact_ode_at_sigma_max():
    """The inverted latent is close to the exact probability-flow ODE solution at sigma_max."""
    x0 = DATA.marginal_sample((2, 1000), 0.0, seed=0)
    x_noise = invert_ddim(DATA.denoiser, x0, SIGMAS)
    exact = DATA.ode_solution(x0, 0.0, float(SIGMAS[0]))
    assert float((x_noise - exact).abs().max() / exact.abs().max()) < 0.05  # measured 3.2e-2


def test_fixed_point_iterations_make_the_round_trip_nearly_exact():
    """Three fixed-point refinements per step bring the round trip to 1e-4 (Gaussian) / 5e-4 (nonlinear net)."""
    x0 = DATA.marginal_sample((2, 1000), 0.0, seed=0)
    assert _round_trip_error(DATA.denoiser, x0, SIGMAS, iterations=3) < 1e-4  # measured 2.0e-5
    time_map = DiscreteTimeMap(alphas_cumprod_from_betas(scaled_linear_betas()))
    net_model = ModelDenoiser(TinyEpsNet(channels=4), time_map, "eps")
    x0_net = torch.randn(2, 4, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert _round_trip_error(net_model, x0_net, SIGMAS, iterations=3) < 5e-4  # measured 7.5e-5


def test_inversion_model_calls_and_callback():
    """Each inversion step calls the model 1 + iterations times and reports the documented callback dict."""
    model, events = CallCounter(DATA.denoiser), []
    sigmas = get_sigmas_karras(4, 0.03, 14.6).double()
    invert_ddim(model, DATA.marginal_sample((1, 8), 0.0, seed=1), sigmas, callback=events.append,
                fixed_point_iterations=2)
    assert len(model.calls) == 4 * 3
    assert [e["i"] for e in events] == [0, 1, 2, 3]
    assert events[0]["sigma"] == 0.0 and events[0]["sigma_hat"] == pytest.approx(float(sigmas[-2]))
    assert set(events[0]) == {"i", "sigma", "sigma_hat", "x", "denoised"}


def test_inversion_rejects_bad_arguments():
    """Negative iteration counts and increasing sigmas raise SamplingError."""
    x0 = DATA.marginal_sample((1, 8), 0.0, seed=1)
    with pytest.raises(SamplingError, match="fixed_point_iterations"):
        invert_ddim(DATA.denoiser, x0, SIGMAS, fixed_point_iterations=-1)
    with pytest.raises(SamplingError, match="strictly decreasing"):
        invert_ddim(DATA.denoiser, x0, SIGMAS.flip(0))
