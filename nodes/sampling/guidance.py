"""Guidance: wrap a denoiser so that samplers get a guided denoiser and never know it.

:class:`CFGGuider` is itself a denoiser (``guider(x, sigma, **shared_cond) -> denoised``)
and exposes the wrapped model's sigma mapping, so it can be passed anywhere a
model adapter is expected (samplers, schedules, inversion).

Per call it computes, in this order:

1. Classifier-free guidance (Ho & Salimans 2022), in denoised (x0) space --
   identical to eps space because the adapters are affine in the network output:
   ``D = D_neg + scale * (D_pos - D_neg)``. Positive and negative branches run in
   ONE model call: x, sigma and every conditioning tensor are concatenated along
   the batch (positive first). Conditioning with batch 1 is broadcast to the
   latent's batch; any other mismatch raises :class:`SamplingError` before the model runs.
   ``scale == 1`` evaluates only the positive branch. A conditioning value may also be
   a callable evaluated by the network per call (a ControlNet stack); the two branches
   share one call only if they hold the very same object, otherwise they run separately.
2. CFG rescale (Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps
   are Flawed", §3.4, eqs. 15-17) with strength ``rescale`` (phi): the guided
   prediction's per-sample std is pulled back towards the positive branch's.
   Applied in v-prediction space, the space of the paper's models (and of
   diffusers' ``rescale_noise_cfg`` for v-models): for VP models
   v ∝ u = ((1 + sigma²) D - x) / (-sigma), so the rescale is computed on u,
   whatever the network predicts. ``rescale == 0`` is a no-op.
3. Guidance interval: CFG (steps 1-2) is applied only when
   ``sigma_low <= sigma <= sigma_high`` (``cfg_sigma_range``); outside it only the
   positive branch is evaluated (one model call, batch B).
4. Guidance terms: ``D_final = D_guided + sum_k term_k(x, sigma, D_guided)``.

Guidance-term convention (the hook for classifier guidance and for future
safety / policy guidance plugins):

* A term is ``term(x, sigma, denoised) -> correction`` with ``x`` the latent
  (B, ...), ``sigma`` of shape (B,), ``denoised`` the CFG result (every term sees
  the same input; terms are summed, so their order does not matter).
* The correction is in DENOISED (x0) units and is ADDED: a positive component
  moves the prediction of the clean sample in that direction.
* Relation to scores (Tweedie; Karras et al. 2022, eq. 3):
  ``D(x, sigma) = x + sigma² ∇_x log p_sigma(x)``. So a score-space guidance
  gradient ``g = s ∇_x log p(y | x)`` (Dhariwal & Nichol 2021, classifier
  guidance with scale s) enters as ``sigma² · g`` -- :func:`classifier_guidance`
  builds exactly that term from a differentiable log-likelihood.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from .errors import SamplingError

__all__ = ["Conditioning", "GuidanceTerm", "CFGGuider", "classifier_guidance", "rescale_guidance"]

#: Conditioning: name -> tensor with a batch dimension, e.g. {"context": (B, T, D), "pooled": (B, D)}.
Conditioning = Mapping[str, torch.Tensor]
#: term(x, sigma (B,), denoised) -> correction added to denoised (same shape as x).
GuidanceTerm = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _sigma_column(sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sigma reshaped to broadcast over x's non-batch dims, in x's dtype."""
    return sigma.to(x.dtype).reshape((-1,) + (1,) * (x.ndim - 1))


def rescale_guidance(x: torch.Tensor, sigma: torch.Tensor, denoised_positive: torch.Tensor,
                     denoised_guided: torch.Tensor, phi: float) -> torch.Tensor:
    """CFG rescale (Lin et al. 2023, eqs. 15-17) computed on v ∝ ((1+sigma²) D - x)/sigma.

    factor = phi * std(v_pos)/std(v_cfg) + (1 - phi) per sample; v_final = factor * v_cfg;
    converted back: D_final = factor D_cfg + (1 - factor) x / (1 + sigma²).
    """
    sigma = _sigma_column(sigma, x)
    dims = tuple(range(1, x.ndim))
    variance_plus_one = 1 + sigma**2
    v_positive = (variance_plus_one * denoised_positive - x) / sigma
    v_guided = (variance_plus_one * denoised_guided - x) / sigma
    factor = phi * (v_positive.std(dim=dims, keepdim=True) / v_guided.std(dim=dims, keepdim=True)) + (1 - phi)
    return factor * denoised_guided + (1 - factor) * x / variance_plus_one


class CFGGuider:
    """Classifier-free guided denoiser with rescale, a sigma interval and additive guidance terms.

    Args:
        model: denoiser ``model(x, sigma, **cond) -> denoised``.
        positive: conditioning of the prompt (dict of tensors with a batch dim).
        negative: conditioning of the negative / empty prompt; may be ``None`` only when ``scale == 1``.
        scale: guidance scale s; 1 = positive only, 0 = negative only.
        rescale: CFG rescale strength phi in [0, 1] (Lin et al. 2023 recommend 0.7).
        cfg_sigma_range: ``(sigma_low, sigma_high)``; CFG applies only for sigmas inside
            (inclusive); outside, only the positive branch runs.
        terms: guidance terms added after CFG (see module docstring for the convention).

    Conditioning is validated here (same keys in both branches, tensors with a batch dim);
    the latent batch is checked by :meth:`check_latent`, called before the first model
    evaluation of every call, so a mismatch fails before any model work.
    """

    def __init__(self, model: Callable[..., torch.Tensor], positive: Conditioning,
                 negative: Conditioning | None = None, scale: float = 7.5, rescale: float = 0.0,
                 cfg_sigma_range: tuple[float, float] = (0.0, math.inf), terms: Sequence[GuidanceTerm] = ()):
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not math.isfinite(scale):
            raise SamplingError("scale", "a finite number", repr(scale), "Use e.g. 7.5 (1 disables CFG).", scale)
        if not 0 <= rescale <= 1:
            raise SamplingError("rescale", "a CFG rescale strength in [0, 1]", repr(rescale),
                                "Use 0 (off) to 1; the paper recommends 0.7.", rescale)
        low, high = cfg_sigma_range
        if not 0 <= low <= high:
            raise SamplingError("cfg_sigma_range", "(sigma_low, sigma_high) with 0 <= low <= high",
                                repr(cfg_sigma_range), "Give the noise interval where CFG applies.", cfg_sigma_range)
        if negative is None and scale != 1:
            raise SamplingError("negative", f"negative conditioning for scale {scale}", "None",
                                "Encode an empty prompt as negative, or set scale=1.")
        for argument, function in (("model", model), *((f"terms[{k}]", t) for k, t in enumerate(terms))):
            if not callable(function):
                raise SamplingError(argument, "a callable", type(function).__name__, "Pass a function.", function)
        self.model = model
        self.positive = self._checked_conditioning(positive, "positive")
        self.negative = None if negative is None else self._checked_conditioning(negative, "negative")
        if self.negative is not None and set(self.negative) != set(self.positive):
            raise SamplingError("negative", f"the same conditioning keys as positive {sorted(self.positive)}",
                                f"keys {sorted(self.negative)}",
                                "Encode both prompts with the same encoder(s).", negative)
        self.scale = float(scale)
        self.rescale = float(rescale)
        self.cfg_sigma_range = (float(low), float(high))
        self.terms = tuple(terms)
        self._batched: dict[tuple, dict[str, torch.Tensor]] = {}

    # -- sigma mapping of the wrapped model, so a guider can build schedules ------------------------
    @property
    def sigma_min(self) -> float:
        return self.model.sigma_min

    @property
    def sigma_max(self) -> float:
        return self.model.sigma_max

    @property
    def sigmas(self) -> torch.Tensor | None:
        return getattr(self.model, "sigmas", None)

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        return self.model.sigma_to_t(sigma)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        return self.model.t_to_sigma(t)

    # -- validation ---------------------------------------------------------------------------------
    @staticmethod
    def _checked_conditioning(cond: object, argument: str) -> dict[str, torch.Tensor]:
        if not isinstance(cond, Mapping):
            raise SamplingError(argument, "a dict of conditioning tensors", type(cond).__name__,
                                "Pass e.g. {'context': tensor of shape (B, T, D)}.", cond)
        for key, value in cond.items():
            if callable(value) and not isinstance(value, torch.Tensor):
                continue            # a model input computed per call (e.g. a ControlStack), passed through as is
            if not isinstance(value, torch.Tensor) or value.ndim < 1:
                raise SamplingError(f"{argument}[{key!r}]", "a tensor with a batch dimension",
                                    type(value).__name__ if not isinstance(value, torch.Tensor) else "a 0-d tensor",
                                    "Conditioning values must be batched tensors (batch 1 broadcasts).", value)
        return dict(cond)

    def check_latent(self, x: torch.Tensor, shared_cond: Conditioning | None = None) -> None:
        """Raise SamplingError unless every conditioning batch is 1 or equals the latent batch ``x.shape[0]``."""
        batch = x.shape[0]
        branches = [("positive", self.positive), ("negative", self.negative or {}), ("cond", shared_cond or {})]
        for argument, cond in branches:
            for key, value in cond.items():
                if isinstance(value, torch.Tensor) and value.shape[0] not in (1, batch):
                    raise SamplingError(f"{argument}[{key!r}]", f"batch 1 or {batch} (the latent batch)",
                                        f"batch {value.shape[0]} (shape {tuple(value.shape)})",
                                        "Encode one prompt per latent, or a single prompt for all.", value)

    # -- evaluation -----------------------------------------------------------------------------------
    def _batched_conditioning(self, x: torch.Tensor, shared_cond: Conditioning,
                              both: bool) -> tuple[dict[str, torch.Tensor], bool]:
        """Conditioning for one model call: positive (and negative) broadcast to batch B and concatenated.

        Returns (cond, batched); batched is False when the branches' shapes differ beyond the batch
        dim (e.g. 77 vs 154 tokens), in which case the caller makes two calls. Cached per
        (batch, device, dtype, branches) because conditioning is fixed for the whole run.
        """
        batch = x.shape[0]
        key = (batch, x.device, both)
        if not shared_cond and key in self._batched:
            return self._batched[key], True

        positive = {k: _expand(v, x) for k, v in {**self.positive, **shared_cond}.items()}
        if not both:
            cond = positive
        else:
            negative = {k: _expand(v, x) for k, v in {**self.negative, **shared_cond}.items()}
            if positive.keys() != negative.keys() or any(
                    positive[k].shape != negative[k].shape if isinstance(positive[k], torch.Tensor)
                    else positive[k] is not negative[k] for k in positive):
                return {}, False
            # per-call inputs (ControlStack) are shared by both halves: the same object, passed once
            cond = {k: torch.cat([positive[k], negative[k]]) if isinstance(positive[k], torch.Tensor) else positive[k]
                    for k in positive}
        if not shared_cond:
            self._batched[key] = cond
        return cond, True

    def _single(self, x: torch.Tensor, sigma: torch.Tensor, cond: Conditioning, shared_cond) -> torch.Tensor:
        """One branch evaluated on its own (batch B)."""
        merged = {k: _expand(v, x) for k, v in {**cond, **shared_cond}.items()}
        return self.model(x, sigma, **merged)

    def _guidance_active(self, sigma: torch.Tensor) -> bool:
        """Whether CFG applies at this sigma (every batch item inside the interval)."""
        if self.scale == 1 or self.negative is None:
            return False
        low, high = self.cfg_sigma_range
        if low == 0 and high == math.inf:
            return True
        return low <= float(sigma.min()) and float(sigma.max()) <= high

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor | float, **shared_cond) -> torch.Tensor:
        for key, value in shared_cond.items():
            if key in self.positive:
                raise SamplingError(f"cond[{key!r}]", "keys not already in the guider's conditioning",
                                    f"a duplicate key {key!r}", "Pass it once, in positive/negative.", value)
        self.check_latent(x, shared_cond)
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        sigma = torch.as_tensor(sigma, device=x.device, dtype=dtype)
        sigma = sigma.expand(x.shape[0]) if sigma.ndim == 0 else sigma
        if not self._guidance_active(sigma):
            cond, _ = self._batched_conditioning(x, shared_cond, both=False)
            guided = self.model(x, sigma, **cond)
        else:
            cond, batched = self._batched_conditioning(x, shared_cond, both=True)
            if batched:
                positive, negative = self.model(torch.cat([x, x]), torch.cat([sigma, sigma]), **cond).chunk(2)
            else:
                positive = self._single(x, sigma, self.positive, shared_cond)
                negative = self._single(x, sigma, self.negative, shared_cond)
            guided = torch.lerp(negative, positive, self.scale)
            if self.rescale:
                guided = rescale_guidance(x, sigma, positive, guided, self.rescale)
        if self.terms:
            corrections = [term(x, sigma, guided) for term in self.terms]
            guided = guided + sum(corrections)
        return guided


def _expand(value: Any, x: torch.Tensor) -> Any:
    """A conditioning tensor on x's device with batch 1 broadcast to x's batch; other values unchanged."""
    if not isinstance(value, torch.Tensor):
        return value
    value = value.to(x.device)
    batch = x.shape[0]
    return value.expand(batch, *value.shape[1:]) if value.shape[0] == 1 and batch > 1 else value


def classifier_guidance(log_likelihood: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                        scale: float = 1.0) -> GuidanceTerm:
    """Guidance term for classifier guidance (Dhariwal & Nichol 2021, Alg. 1, in denoised units).

    Args:
        log_likelihood: ``log_likelihood(x, sigma) -> (B,)`` differentiable log p(y | x at level sigma),
            e.g. a noise-aware classifier's log-probability of the target class.
        scale: guidance scale s (>= 0 pushes towards higher likelihood).

    Returns:
        ``term(x, sigma, denoised) = scale * sigma² * ∇_x log_likelihood(x, sigma)``
        (Tweedie: a score correction g becomes sigma² g on the denoised estimate).
    """

    def classifier_term(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            (gradient,) = torch.autograd.grad(log_likelihood(x_in, sigma).sum(), x_in)
        return gradient * (scale * _sigma_column(sigma, x) ** 2)

    return classifier_term
