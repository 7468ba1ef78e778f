"""Forward diffusion: noise a clean sample to a given noise level.

Two parameterisations, two functions -- pick the one matching the space your
latent lives in:

* :func:`q_sample` -- DDPM, variance preserving, at integer timesteps
  (Ho et al. 2020, eq. 4): ``x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) eps``.
  This is what a training loop or diffusers' ``scheduler.add_noise`` computes.
* :func:`q_sample_sigma` -- variance exploding / k-diffusion view used by every
  sampler in this package: ``x = x0 + sigma eps``. Use it to prepare an img2img
  latent for ``sigmas[0]`` of a (truncated) schedule.

They agree up to scale: ``q_sample(x0, t) == sqrt(ᾱ_t) * q_sample_sigma(x0, sigma_t)``
for the same noise, with ``sigma_t = sqrt((1 - ᾱ_t) / ᾱ_t)``.

Noise is either passed explicitly or drawn from ``seed`` with the batch rule
of noise.py (item k uses seed + k).
"""

from __future__ import annotations

import torch

from .errors import SamplingError
from .noise import seeded_noise

__all__ = ["q_sample", "q_sample_sigma"]


def _noise_for(x0: torch.Tensor, noise: torch.Tensor | None, seed: int | None) -> torch.Tensor:
    """The explicit noise (shape-checked) or seeded noise shaped like x0."""
    if noise is not None and seed is not None:
        raise SamplingError("noise/seed", "either explicit noise or a seed", "both",
                            "Pass only one of them.", (noise, seed))
    if noise is None:
        if seed is None:
            raise SamplingError("noise/seed", "explicit noise or a seed", "neither",
                                "Pass seed=<int> for reproducible noise, or noise=<tensor>.")
        return seeded_noise(x0.shape, seed, x0.device, x0.dtype)
    if noise.shape != x0.shape:
        raise SamplingError("noise", f"a tensor shaped like x0 {tuple(x0.shape)}", f"shape {tuple(noise.shape)}",
                            "Generate noise with the latent's shape.", noise)
    return noise


def _per_item(values: torch.Tensor, x0: torch.Tensor, argument: str) -> torch.Tensor:
    """Broadcast a scalar or (B,) tensor to x0's rank for per-item scaling."""
    if values.ndim == 0:
        values = values.expand(x0.shape[0])
    if values.shape != (x0.shape[0],):
        raise SamplingError(argument, f"a scalar or one value per batch item, shape ({x0.shape[0]},)",
                            f"shape {tuple(values.shape)}", "Pass one value per latent in the batch.", values)
    return values.reshape((-1,) + (1,) * (x0.ndim - 1))


def q_sample(x0: torch.Tensor, timesteps: torch.Tensor | int, alphas_cumprod: torch.Tensor,
             noise: torch.Tensor | None = None, seed: int | None = None) -> torch.Tensor:
    """DDPM forward process at discrete timesteps (Ho et al. 2020, eq. 4).

    Args:
        x0: clean samples (B, ...).
        timesteps: integer timestep(s), scalar or shape (B,), each in [0, T).
        alphas_cumprod: ᾱ_t table of the model, length T.
        noise: explicit standard normal noise shaped like x0, or ``None``.
        seed: seed for noise when ``noise`` is None (item k uses seed + k).

    Returns:
        ``sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) noise`` in x0's dtype (variance-preserving space).
    """
    timesteps = torch.as_tensor(timesteps, device=alphas_cumprod.device)
    if timesteps.is_floating_point() or bool(((timesteps < 0) | (timesteps >= len(alphas_cumprod))).any()):
        raise SamplingError("timesteps", f"integer timesteps in [0, {len(alphas_cumprod)})",
                            f"{timesteps.tolist()}", "Use q_sample_sigma for continuous noise levels.", timesteps)
    noise = _noise_for(x0, noise, seed)
    alpha_bar = _per_item(alphas_cumprod.to(torch.float64)[timesteps.long()], x0, "timesteps")
    signal, noise_scale = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    return (x0 * signal.to(x0.device, x0.dtype) + noise * noise_scale.to(x0.device, x0.dtype))


def q_sample_sigma(x0: torch.Tensor, sigma: torch.Tensor | float, noise: torch.Tensor | None = None,
                   seed: int | None = None) -> torch.Tensor:
    """Variance-exploding forward process: ``x0 + sigma * noise`` (Karras et al. 2022, eq. 1 view).

    Args:
        x0: clean samples (B, ...).
        sigma: noise level(s) >= 0, scalar or shape (B,).
        noise: explicit standard normal noise shaped like x0, or ``None``.
        seed: seed for noise when ``noise`` is None (item k uses seed + k).

    Returns:
        The noised latent in x0's dtype, ready for samplers starting at ``sigma``.
    """
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    if bool((sigma < 0).any()) or not bool(torch.isfinite(sigma).all()):
        raise SamplingError("sigma", "finite, non-negative noise levels", f"{sigma.tolist()}",
                            "Pass sigmas[0] of the schedule you will sample with.", sigma)
    noise = _noise_for(x0, noise, seed)
    return x0 + noise * _per_item(sigma, x0, "sigma").to(x0.device, x0.dtype)
