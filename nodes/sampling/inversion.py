"""DDIM inversion: map a clean latent x0 to the noise x_T that deterministic DDIM maps back to x0.

Deterministic DDIM (Song et al. 2021a, eq. 12 with eta = 0) in the VE view is
one Euler step of the probability-flow ODE:

    x_lo = x_hi + (sigma_lo - sigma_hi) * eps(x_hi, sigma_hi),   eps = (x - D(x, sigma)) / sigma.

Inversion runs this backwards over the same schedule, from sigma 0 up to
sigmas[0]. The exact inverse needs eps at the unknown point x_hi; DDIM
inversion (Song et al. 2021a §4.3; Mokady et al. 2023, "Null-text
inversion", eq. 3) holds eps from the CURRENT point instead:

    x_hi = x_lo + (sigma_hi - sigma_lo) * eps(x_lo, sigma_lo).

Each step is then off by O(h²), so the round trip has an O(h) error that
shrinks with more steps. At sigma_lo = 0 eps is undefined; the first step
evaluates the model at (x0, sigma_hi), which is one fixed-point iteration
of the exact inverse. ``fixed_point_iterations > 0`` refines every step with
``x_hi <- x_lo + (sigma_hi - sigma_lo) * eps(x_hi, sigma_hi)``, which converges
to the exact inverse of the DDIM step (one extra model call per iteration)
and makes the round trip exact up to that convergence.

Main object: :func:`invert_ddim`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .errors import SamplingError
from .samplers import Callback, check_latent
from .schedules import check_schedule

__all__ = ["invert_ddim"]


def _eps(model, x: torch.Tensor, sigma: float, extra_args: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """(eps, denoised) of the model at (x, sigma): eps = (x - D) / sigma."""
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    denoised = model(x, torch.full((x.shape[0],), sigma, dtype=dtype, device=x.device), **extra_args).to(x.dtype)
    return (x - denoised) / sigma, denoised


def _progress(count: int, disable: bool | None):
    """range(count), wrapped in a tqdm bar only when ``disable is False``."""
    if disable is False:
        from tqdm import trange

        return trange(count)
    return range(count)


def invert_ddim(model, x0: torch.Tensor, sigmas: torch.Tensor, extra_args: Mapping[str, Any] | None = None,
                callback: Callback | None = None, disable: bool | None = None,
                fixed_point_iterations: int = 0) -> torch.Tensor:
    """Invert deterministic DDIM: return x at ``sigmas[0]`` such that ``sample_ddim(model, x, sigmas, eta=0) ≈ x0``.

    Args:
        model: denoiser ``model(x, sigma, **extra_args) -> denoised`` (a guider works too;
            invert with the same guidance you will sample with).
        x0: latent at ``sigmas[-1]`` (the clean latent when the schedule ends in 0).
        sigmas: the sampling schedule, strictly decreasing (the one you will sample back with).
        extra_args: conditioning forwarded to every model call.
        callback: called after each inversion step with ``{"i", "sigma", "sigma_hat", "x", "denoised"}``;
            ``i`` counts inversion steps, ``sigma`` is the level stepped from and ``sigma_hat``
            the level the model was evaluated at.
        disable: show a tqdm bar only when ``False``.
        fixed_point_iterations: extra model calls per step refining towards the exact inverse
            (0 = plain DDIM inversion).

    Returns:
        The inverted latent at ``sigmas[0]`` (VE view: roughly x0 + sigmas[0] * noise).
    """
    sigma_values = check_schedule(sigmas, must_end_in_zero=False)
    check_latent(x0)
    if isinstance(fixed_point_iterations, bool) or not isinstance(fixed_point_iterations, int) \
            or fixed_point_iterations < 0:
        raise SamplingError("fixed_point_iterations", "an integer >= 0", repr(fixed_point_iterations),
                            "Use 0 for plain DDIM inversion, 2-5 for a tighter round trip.", fixed_point_iterations)
    extra_args = {} if extra_args is None else extra_args
    x = x0
    step_count = len(sigma_values) - 1
    for step in _progress(step_count, disable):
        sigma_lo, sigma_hi = sigma_values[step_count - step], sigma_values[step_count - step - 1]
        sigma_eval = sigma_lo if sigma_lo > 0 else sigma_hi
        eps, denoised = _eps(model, x, sigma_eval, extra_args)
        x_hi = x + eps * (sigma_hi - sigma_lo)
        for _ in range(fixed_point_iterations):
            x_hi = x + _eps(model, x_hi, sigma_hi, extra_args)[0] * (sigma_hi - sigma_lo)
        if callback is not None:
            callback({"i": step, "sigma": sigma_lo, "sigma_hat": sigma_eval, "x": x, "denoised": denoised})
        x = x_hi
    return x
