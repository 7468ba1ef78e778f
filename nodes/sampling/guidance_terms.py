"""Built-in guidance terms on the guidance contract (guidance.py): PAG, SAG and classifier guidance.

Each term is a ``GuidanceTerm`` (``term(state) -> correction`` in denoised units, added to
the CFG result); the math is in small pure functions next to it. The GUIDANCE port carries
factories of these (``functools.partial(PerturbedAttentionGuidance, scale=3.0)``).

- ``PerturbedAttentionGuidance`` -- Ahn et al. 2024, "Self-Rectifying Diffusion Sampling
  with Perturbed-Attention Guidance", §3.2-3.3: the self-attention map of chosen UNet
  blocks is replaced by the identity (each token attends only to itself, so the attention
  output is V), and the prediction is pushed away from that perturbed one:
  ``D + s (D_pos - D_perturbed)`` (their eq. 11 with CFG, in denoised units:
  ``pag_correction``). One extra model call per step (positive conditioning, batch B).
- ``SelfAttentionGuidance`` -- Hong et al. 2023, "Improving Sample Quality of Diffusion
  Models Using Self-Attention Guidance", §4.2 (eqs. 11-13): the self-attention map read
  during the CFG call marks the regions the model attends to most (per key token, summed
  attention over queries averaged over heads > 1, ``sag_mask``); those regions of the
  unconditional x0 estimate are Gaussian-blurred, re-noised with the predicted noise
  (``sag_degrade``), predicted again, and the result is guided away from that prediction:
  ``eps + s (eps_ref - eps_degraded)`` (``sag_correction``, converted to denoised units).
  One extra model call per step.
- ``DenoisedClassifierGuidance`` -- classifier guidance (Dhariwal & Nichol 2021) with a
  classifier of CLEAN images applied to the denoised estimate (as in Bansal et al. 2023,
  "Universal Guidance", forward guidance, without back-propagating through the UNet):
  Tweedie gives ``D(x) + sigma² ∇_x log p(y | x)``; with ``∇_x ≈ (∂D/∂x)ᵀ ∇_D`` and the
  Gaussian-posterior Jacobian ``∂D/∂x = Cov[x0 | x] / sigma² ≈ v(sigma) / sigma² · I``,
  ``v(sigma) = sigma_data² sigma² / (sigma_data² + sigma²)``, the correction is
  ``s · v(sigma) · ∇_D log p(y | decode(D))`` (``classifier_correction``): about
  ``s sigma_data² ∇`` at high noise, vanishing like ``sigma²`` at low noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from .guidance import ALL_SIGMAS, GuidanceState, GuidanceTerm, check_sigma_range
from .errors import SamplingError

__all__ = [
    "DenoisedClassifierGuidance",
    "PerturbedAttentionGuidance",
    "SelfAttentionGuidance",
    "classifier_correction",
    "gaussian_blur",
    "pag_correction",
    "posterior_variance",
    "sag_correction",
    "sag_degrade",
    "sag_mask",
]


def _column(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.to(like.dtype).reshape((-1,) + (1,) * (like.ndim - 1))


def _check_scale(scale: float, argument: str = "scale") -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise SamplingError(argument, "a finite number", repr(scale), "Use e.g. 3.0 (0 turns the term off).", scale)
    return float(scale)


def _check_blocks(blocks: Sequence[str], argument: str = "blocks") -> tuple[str, ...]:
    if isinstance(blocks, str):
        blocks = tuple(b.strip() for b in blocks.split(",") if b.strip())
    blocks = tuple(blocks)
    if not blocks:
        raise SamplingError(argument, "one or more UNet key paths", "none",
                            "Give e.g. 'middle_block' or 'input_blocks.4,output_blocks.3'.", blocks)
    return blocks


# --- perturbed-attention guidance ---------------------------------------------------------------


def pag_correction(denoised_positive: torch.Tensor, denoised_perturbed: torch.Tensor, scale: float) -> torch.Tensor:
    """PAG in denoised units: s (D_pos - D_perturbed) (Ahn et al. 2024, eq. 11)."""
    return scale * (denoised_positive - denoised_perturbed)


def _identity_self_attention(q, k, v, call, attend):
    """PAG's perturbed self-attention: the identity map, so the output is V (Ahn et al. 2024 §3.3)."""
    return v


class PerturbedAttentionGuidance(GuidanceTerm):
    """Perturbed-attention guidance: ``D + scale (D_pos - D_pos with identity self-attention)``.

    Args:
        scale: PAG scale s (the paper uses 3.0 for SD; 0 = off, no extra model call).
        blocks: UNet key paths whose self-attention is perturbed (the paper: the middle block).
        sigma_range: (low, high) where the term applies.
    """

    def __init__(self, scale: float = 3.0, blocks: Sequence[str] = ("middle_block",),
                 sigma_range: tuple[float, float] = ALL_SIGMAS):
        from nodes.models.patches import AttentionPatch

        self.scale = _check_scale(scale)
        self.blocks = _check_blocks(blocks)
        self.sigma_range = check_sigma_range(sigma_range, "sigma_range")
        self.patch = AttentionPatch(name="perturbed self-attention (PAG)", processor=_identity_self_attention,
                                    kind="self", targets=self.blocks)

    def check_model(self, net) -> None:
        from nodes.models.patches import check_patches

        if not hasattr(net, "model_patches"):
            raise ValueError("PAG needs a UNet that takes model patches (nodes.models.unet.UNetModel)")
        check_patches(net, [self.patch])

    def __call__(self, state: GuidanceState) -> torch.Tensor | None:
        if self.scale == 0:
            return None
        perturbed = state.evaluate(patches=(self.patch,))
        return pag_correction(state.denoised_positive, perturbed, self.scale)


# --- self-attention guidance --------------------------------------------------------------------


def gaussian_blur(x: torch.Tensor, sigma: float, kernel_size: int = 9) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W) with reflect padding (SAG uses kernel 9, sigma 1-2)."""
    radius = kernel_size // 2
    offsets = torch.arange(kernel_size, device=x.device, dtype=torch.float32) - radius
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(x.dtype)  # (k,)
    channels = x.shape[1]
    pad_h, pad_w = min(radius, x.shape[-2] - 1), min(radius, x.shape[-1] - 1)
    out = F.pad(x, (pad_w, pad_w, 0, 0), mode="reflect")
    out = F.conv2d(out, kernel[radius - pad_w:radius + pad_w + 1].reshape(1, 1, 1, -1).expand(channels, 1, 1, -1),
                   groups=channels)
    out = F.pad(out, (0, 0, pad_h, pad_h), mode="reflect")
    return F.conv2d(out, kernel[radius - pad_h:radius + pad_h + 1].reshape(1, 1, -1, 1).expand(channels, 1, -1, 1),
                    groups=channels)  # (B, C, H, W)


def sag_mask(attention: torch.Tensor, spatial: tuple[int, int], size: tuple[int, int],
             threshold: float = 1.0) -> torch.Tensor:
    """SAG's mask (Hong et al. 2023 eq. 11): key tokens whose attention summed over queries,
    averaged over heads, exceeds `threshold` (1 = the average), upsampled (nearest) to `size`.

    attention: (B, heads, T, T) self-attention map with T = H*W of `spatial`; returns (B, 1, *size) in {0, 1}.
    """
    batch = attention.shape[0]
    received = attention.mean(dim=1).sum(dim=1)  # (B, T): attention each key token receives
    mask = (received > threshold).to(torch.float32).reshape(batch, 1, *spatial)  # (B, 1, h, w)
    return F.interpolate(mask, size=size, mode="nearest")  # (B, 1, H, W)


def sag_degrade(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor, mask: torch.Tensor,
                blur_sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Blur the masked regions of the x0 estimate and re-noise it with the predicted noise (eq. 12).

    Returns (x_degraded, x0_degraded): x0_degraded = mask·blur(D) + (1 - mask)·D and
    x_degraded = x0_degraded + sigma·eps with eps = (x - D) / sigma (the VE form of DDPM's re-noising).
    """
    s = _column(sigma, x)
    eps = (x - denoised) / s
    blurred = gaussian_blur(denoised, blur_sigma)
    mask = mask.to(denoised.dtype)
    x0_degraded = mask * blurred + (1 - mask) * denoised
    return x0_degraded + s * eps, x0_degraded


def sag_correction(x: torch.Tensor, sigma: torch.Tensor, denoised_reference: torch.Tensor,
                   x_degraded: torch.Tensor, denoised_degraded: torch.Tensor, scale: float) -> torch.Tensor:
    """SAG in denoised units: eps += s (eps_ref - eps_deg) (eq. 13) becomes D += -sigma s (eps_ref - eps_deg)."""
    s = _column(sigma, x)
    eps_reference = (x - denoised_reference) / s
    eps_degraded = (x_degraded - denoised_degraded) / s
    return -s * scale * (eps_reference - eps_degraded)


class SelfAttentionGuidance(GuidanceTerm):
    """Self-attention guidance: blur where self-attention looks, guide away from that prediction.

    Args:
        scale: SAG scale s (the paper: 0.75 with CFG; 0 = off).
        blur_sigma: Gaussian blur sigma in latent pixels (the paper: 1.0 with kernel 9).
        blocks: UNet key paths whose self-attention map is read (the paper: the middle block);
            with several, the masks are united.
        threshold: mask threshold on the received attention (1.0 = above average, the paper's).
        sigma_range: (low, high) where the term applies.

    The map is read during the guider's own call (``main_call_patches``): from the
    negative branch when CFG ran, else from the positive one; that branch's x0 estimate is
    degraded and re-evaluated with the same conditioning.
    """

    def __init__(self, scale: float = 0.75, blur_sigma: float = 1.0, blocks: Sequence[str] = ("middle_block",),
                 threshold: float = 1.0, sigma_range: tuple[float, float] = ALL_SIGMAS):
        from nodes.models.patches import AttentionMapRecorder

        self.scale = _check_scale(scale)
        if not blur_sigma > 0:
            raise SamplingError("blur_sigma", "a positive blur sigma", repr(blur_sigma), "Use e.g. 1.0.", blur_sigma)
        self.blur_sigma = float(blur_sigma)
        self.threshold = float(threshold)
        self.blocks = _check_blocks(blocks)
        self.sigma_range = check_sigma_range(sigma_range, "sigma_range")
        self.recorder = AttentionMapRecorder(name="attention maps (SAG)", kind="self", targets=self.blocks)
        self.main_call_patches = () if self.scale == 0 else (self.recorder,)

    def check_model(self, net) -> None:
        from nodes.models.patches import check_patches

        if not hasattr(net, "model_patches"):
            raise ValueError("SAG needs a UNet that takes model patches (nodes.models.unet.UNetModel)")
        check_patches(net, [self.recorder])

    def __call__(self, state: GuidanceState) -> torch.Tensor | None:
        maps, spatial = dict(self.recorder.maps), dict(self.recorder.spatial)
        self.recorder.clear()
        if self.scale == 0 or not maps:
            return None
        batch = state.x.shape[0]
        use_negative = state.denoised_negative is not None
        reference = state.denoised_negative if use_negative else state.denoised_positive
        conditioning = state.negative if use_negative else state.positive
        mask = None
        for key, attention in maps.items():
            if attention.shape[0] == 2 * batch:   # one batched CFG call: positive first, negative second
                attention = attention[batch:] if use_negative else attention[:batch]
            part = sag_mask(attention, spatial[key], tuple(state.x.shape[-2:]), self.threshold)
            mask = part if mask is None else torch.maximum(mask, part)
        x_degraded, _ = sag_degrade(state.x, state.sigma, reference, mask.to(state.x.device), self.blur_sigma)
        denoised_degraded = state.evaluate(conditioning=conditioning, x=x_degraded)
        return sag_correction(state.x, state.sigma, reference, x_degraded, denoised_degraded, self.scale)


# --- classifier guidance on the denoised estimate ------------------------------------------------


def posterior_variance(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """Var[x0 | x] for Gaussian data of std sigma_data at noise sigma: sd² sigma² / (sd² + sigma²)."""
    return sigma_data**2 * sigma**2 / (sigma_data**2 + sigma**2)


def classifier_correction(gradient: torch.Tensor, sigma: torch.Tensor, scale: float,
                          sigma_data: float = 1.0) -> torch.Tensor:
    """s · v(sigma) · ∇_D log p(y | D): Tweedie's sigma² ∇_x with ∂D/∂x ≈ v(sigma)/sigma² (module docstring)."""
    return scale * _column(posterior_variance(sigma.float(), sigma_data), gradient) * gradient


class DenoisedClassifierGuidance(GuidanceTerm):
    """Classifier guidance with a clean-image classifier on the (decoded) denoised estimate.

    Args:
        log_likelihood: ``log_likelihood(images) -> (B,)`` differentiable log p(y | image), where
            ``images`` is ``decode(D)`` (or D itself when no decoder is given).
        scale: guidance scale s (0 = off).
        decode: optional differentiable ``latents -> images`` (e.g. a VAE decoder).
        sigma_data: the data std used for the posterior variance (1.0 for unit-variance latents).
        sigma_range: (low, high) where the term applies.
    """

    def __init__(self, log_likelihood: Callable[[torch.Tensor], torch.Tensor], scale: float = 1.0,
                 decode: Callable[[torch.Tensor], torch.Tensor] | None = None, sigma_data: float = 1.0,
                 sigma_range: tuple[float, float] = ALL_SIGMAS):
        if not callable(log_likelihood):
            raise SamplingError("log_likelihood", "a callable images -> (B,) log-probabilities",
                                type(log_likelihood).__name__, "Pass a differentiable classifier's log p(y|image).")
        self.log_likelihood = log_likelihood
        self.scale = _check_scale(scale)
        self.decode = decode
        self.sigma_data = float(sigma_data)
        self.sigma_range = check_sigma_range(sigma_range, "sigma_range")

    def __call__(self, state: GuidanceState) -> torch.Tensor | None:
        if self.scale == 0:
            return None
        with torch.enable_grad():
            denoised = state.denoised.detach().float().requires_grad_(True)
            images = self.decode(denoised) if self.decode is not None else denoised
            (gradient,) = torch.autograd.grad(self.log_likelihood(images).sum(), denoised)
        correction = classifier_correction(gradient, state.sigma, self.scale, self.sigma_data)
        return correction.to(state.denoised.dtype)
