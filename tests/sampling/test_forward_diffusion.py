"""Forward diffusion in the two parameterisations and its agreement with diffusers' add_noise."""

from __future__ import annotations

import pytest
import torch

from nodes.sampling.errors import SamplingError
from nodes.sampling.forward_diffusion import q_sample, q_sample_sigma
from nodes.sampling.noise import seeded_noise
from nodes.sampling.schedules import alphas_cumprod_from_betas, scaled_linear_betas, sigmas_from_alphas_cumprod

ALPHAS_CUMPROD = alphas_cumprod_from_betas(scaled_linear_betas())


def test_q_sample_is_the_ddpm_marginal():
    """q_sample returns sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) eps for per-item timesteps."""
    x0, noise = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    t = torch.tensor([10, 900])
    expected = ALPHAS_CUMPROD[t, None].sqrt() * x0 + (1 - ALPHAS_CUMPROD[t, None]).sqrt() * noise
    assert torch.allclose(q_sample(x0, t, ALPHAS_CUMPROD, noise=noise), expected)


def test_vp_and_ve_forward_processes_agree_up_to_scale():
    """q_sample(x0, t) == sqrt(ᾱ_t) * q_sample_sigma(x0, sigma_t) for the same noise."""
    x0, noise = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    t = torch.tensor([250, 250])
    sigma_t = sigmas_from_alphas_cumprod(ALPHAS_CUMPROD)[t]
    assert torch.allclose(q_sample(x0, t, ALPHAS_CUMPROD, noise=noise),
                          ALPHAS_CUMPROD[t, None].sqrt() * q_sample_sigma(x0, sigma_t, noise=noise))


@pytest.mark.parity
def test_q_sample_matches_diffusers_add_noise():
    """q_sample equals diffusers' DDPMScheduler.add_noise for the SD schedule."""
    diffusers = pytest.importorskip("diffusers")
    scheduler = diffusers.DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    x0, noise = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 2, 2)
    t = torch.tensor([0, 499, 999])
    assert torch.allclose(q_sample(x0, t, ALPHAS_CUMPROD, noise=noise), scheduler.add_noise(x0, noise, t), atol=1e-5)


def test_seeded_forward_noise_is_reproducible():
    """With a seed, the added noise is seeded_noise(shape, seed)."""
    x0 = torch.zeros(2, 3)
    assert torch.equal(q_sample_sigma(x0, 2.0, seed=5), 2.0 * seeded_noise((2, 3), 5))


def test_forward_diffusion_rejects_bad_noise_arguments():
    """Missing noise and seed, both at once, a wrong noise shape or a fractional timestep raise SamplingError."""
    x0 = torch.zeros(2, 3)
    with pytest.raises(SamplingError, match="explicit noise or a seed"):
        q_sample_sigma(x0, 1.0)
    with pytest.raises(SamplingError, match="either explicit noise or a seed"):
        q_sample_sigma(x0, 1.0, noise=torch.zeros(2, 3), seed=1)
    with pytest.raises(SamplingError, match="noise: expected a tensor shaped like x0"):
        q_sample_sigma(x0, 1.0, noise=torch.zeros(3, 3))
    with pytest.raises(SamplingError, match="integer timesteps in \\[0, 1000\\)"):
        q_sample(x0, torch.tensor([1.5, 2.0]), ALPHAS_CUMPROD, seed=1)
    with pytest.raises(SamplingError, match="sigma: expected finite, non-negative"):
        q_sample_sigma(x0, -1.0, seed=1)
