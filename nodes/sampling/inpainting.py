"""Inpainting with any model: keep the known region on the forward-process trajectory (RePaint-style blending).

Lugmayr et al. 2022 (RePaint) replace the known pixels at every step with the input noised
to the current level; in the VE view that is ``x0 + sigma * noise``. `MaskedDenoiser` does
this around any denoiser, so every sampler inpaints without knowing it:

    x_in     = mask * x + (1 - mask) * (x0 + sigma * noise)      # known region re-noised to sigma
    denoised = mask * D(x_in, sigma) + (1 - mask) * x0           # and predicted as itself

`mask` is 1 where the latent may change (the area to inpaint), shape (B or 1, 1, h, w);
`finish` pastes the known region back exactly after the last step. Using the same noise as
the initial latent keeps the known region consistent with what the sampler started from.
"""

from __future__ import annotations

from typing import Any, Callable

import torch


class MaskedDenoiser:
    """Wrap a denoiser so that only the masked region is generated; the rest follows `x0`."""

    def __init__(self, inner: Callable[..., torch.Tensor], x0: torch.Tensor, noise: torch.Tensor, mask: torch.Tensor):
        if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[-2:] != x0.shape[-2:]:
            raise ValueError(f"mask must be (B, 1, h, w) matching the latent {tuple(x0.shape[-2:])}, "
                             f"got {tuple(mask.shape)}")
        self.inner, self.x0, self.noise, self.mask = inner, x0, noise, mask.to(x0.dtype)

    def __getattr__(self, name: str) -> Any:   # sigma_min / sigma_max / sigma_to_t of the wrapped model
        return getattr(self.inner, name)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **cond: Any) -> torch.Tensor:
        s = sigma.view(-1, *([1] * (x.ndim - 1))) if torch.is_tensor(sigma) and sigma.ndim else sigma
        known = self.x0 + self.noise * s
        x_in = self.mask * x + (1 - self.mask) * known
        return self.mask * self.inner(x_in, sigma, **cond) + (1 - self.mask) * self.x0

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        """The final latent with the known region restored exactly."""
        return self.mask * x + (1 - self.mask) * self.x0


def latent_mask(mask: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
    """A LATENT's `noise_mask` — (B, H, W) or (B, 1, H, W) (or one (H, W)), at pixel or latent size (the layouts docs/plugins.md
    allows; ComfyUI's SetLatentNoiseMask writes (B, 1, H, W)) — resized to the latent grid (B, 1, h, w) by area
    averaging. ValueError naming `noise_mask` for another layout (a (B, 1, H, W) mask reached torch's interpolate
    as 5-D and failed there)."""
    if not isinstance(mask, torch.Tensor) or not (mask.ndim in (2, 3) or (mask.ndim == 4 and mask.shape[1] == 1)):
        found = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"the LATENT's noise_mask must be a mask (B, H, W) or (B, 1, H, W), at the image's or the "
                         f"latent's size; found {found}")
    m = mask.float() if mask.ndim == 4 else mask.float()[:, None] if mask.ndim == 3 else mask.float()[None, None]
    if m.shape[-2:] != latent.shape[-2:]:
        m = torch.nn.functional.interpolate(m, size=latent.shape[-2:], mode="area")
    return m.clamp(0, 1).to(latent.dtype)
