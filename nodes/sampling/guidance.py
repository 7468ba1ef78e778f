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
4. Guidance terms: ``D_final = D_guided + sum_k term_k(state)`` for every term whose
   ``sigma_range`` holds the current sigma (every batch item inside, inclusive).

Guidance-term contract (the hook for PAG / SAG / classifier guidance and for safety or
policy guidance plugins; ``guidance_terms.py`` has the built-in terms):

* A term is a :class:`GuidanceTerm` (subclass it): ``term(state) -> correction | None``
  with ``state`` a :class:`GuidanceState` holding ``x`` (B, ...), ``sigma`` (B,),
  ``denoised`` (the CFG result D_guided, after rescale), ``denoised_positive`` and
  ``denoised_negative`` (the two branches; ``denoised_negative`` is None when CFG did not
  run at this sigma or scale is 1), ``scale`` (the CFG scale in effect: 1 when CFG is
  off), ``step`` (index of the schedule sigma reached, when known), ``sigmas`` (the
  run's schedule, when known), the conditionings, and ``evaluate(conditioning=None,
  patches=(), x=None)``: the model's denoised prediction again, at ``x`` (default
  ``state.x``) and ``sigma``, with another conditioning (default: positive) and/or extra
  model patches (``nodes/models/patches.py``, e.g. perturbed self-attention). Returning
  None means "no correction" (and costs nothing).
* ``term.sigma_range = (low, high)``: the term is evaluated only there; outside, it is
  not called at all. ``term.main_call_patches``: model patches active during the
  guider's own (CFG) model call, e.g. an attention-map reader whose maps the term
  reads afterwards (SAG). Empty by default; only patchable networks (our UNet) accept them.
* The correction is in DENOISED (x0) units and is ADDED: a positive component moves
  the prediction of the clean sample in that direction. Every term sees the same state
  (the CFG result, not other terms' output); corrections are summed, so the order of
  terms does not matter.
* Per-run state: a term object may keep state between steps (SLD momentum). The GUIDANCE
  port carries term FACTORIES (zero-argument callables returning a term), never terms:
  :meth:`CFGGuider.for_run` builds a copy with fresh terms from the factories for one
  sampling run, so a cached GUIDER value never changes. A guider called without
  ``for_run`` makes its fresh terms itself on the first call and again whenever sigma
  rises above the previous call's (a new run began).
* Legacy form, still accepted in ``terms``: a plain callable ``term(x, sigma, denoised)
  -> correction`` (wrapped by :class:`CallableTerm`, sigma range everything).
* Relation to scores (Tweedie; Karras et al. 2022, eq. 3):
  ``D(x, sigma) = x + sigma² ∇_x log p_sigma(x)``. So a score-space guidance
  gradient ``g = s ∇_x log p(y | x)`` (Dhariwal & Nichol 2021, classifier
  guidance with scale s) enters as ``sigma² · g`` -- :func:`classifier_guidance`
  builds exactly that term from a differentiable log-likelihood.
"""

from __future__ import annotations

import abc
import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .errors import SamplingError

__all__ = ["Conditioning", "GuidanceTerm", "GuidanceState", "GuidanceFactory", "CallableTerm", "CFGGuider",
           "as_guidance_term", "check_sigma_range", "classifier_guidance", "rescale_guidance"]

#: Conditioning: name -> tensor with a batch dimension, e.g. {"context": (B, T, D), "pooled": (B, D)}.
Conditioning = Mapping[str, torch.Tensor]
#: The legacy term form: term(x, sigma (B,), denoised) -> correction added to denoised (same shape as x).
LegacyTerm = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
ALL_SIGMAS = (0.0, math.inf)


@dataclass(eq=False)
class GuidanceState:
    """What a guidance term sees at one model evaluation (see the module docstring).

    ``denoised`` is the CFG result (after rescale) before any term; ``denoised_negative`` is
    None when CFG did not run here. ``step`` is the index of the last schedule sigma at or
    above this sigma (so a second-order sampler's corrector call at ``sigmas[i + 1]`` counts as
    step i + 1); without a schedule, the number of distinct sigmas seen in the run minus one
    (the same numbers for the library's samplers); None for terms given without a run;
    ``sigmas`` is the run's schedule when the sampling code gave it (``CFGGuider.for_run``).
    ``evaluate(conditioning=None, patches=(), x=None) -> denoised`` runs the model again at
    this sigma: positive conditioning unless another is given, plus extra model patches.
    """

    x: torch.Tensor                                  # (B, ...) the latent being denoised
    sigma: torch.Tensor                              # (B,)
    denoised: torch.Tensor                           # (B, ...) D_guided
    denoised_positive: torch.Tensor                  # (B, ...) D_pos
    denoised_negative: torch.Tensor | None           # (B, ...) D_neg, or None
    scale: float                                     # CFG scale in effect here (1.0 when CFG is off)
    step: int | None
    sigmas: torch.Tensor | None
    positive: Conditioning
    negative: Conditioning | None
    shared: Conditioning                             # per-call inputs every branch gets (e.g. inpainting concat)
    evaluate: Callable[..., torch.Tensor] = field(repr=False)


class GuidanceTerm(metaclass=abc.ABCMeta):
    """Base class of guidance terms: ``term(state) -> correction (denoised units) | None``.

    Subclasses set ``sigma_range`` (inclusive; default every sigma) and may set
    ``main_call_patches`` (model patches active during the guider's CFG call, e.g. an
    attention-map reader) and override ``check_model(net)`` (raise ValueError when the
    term cannot work with that network). A term object lives for one sampling run; keep
    per-run state (momentum, step counters) on it. The GUIDANCE port carries factories
    (``functools.partial(MyTerm, scale=2.0)``) so every run gets a fresh object.
    """

    sigma_range: tuple[float, float] = ALL_SIGMAS
    main_call_patches: tuple = ()

    @classmethod
    def __subclasshook__(cls, other: type) -> bool:
        """Plugins subclass the public nodegraph.api.GuidanceTerm (same contract; this library does not import
        the engine): a class carrying its `nodegraph_guidance_term` marker counts as a GuidanceTerm."""
        if cls is GuidanceTerm and any(vars(k).get("nodegraph_guidance_term") for k in other.__mro__):
            return True
        return NotImplemented

    def __call__(self, state: GuidanceState) -> torch.Tensor | None:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(state) -> correction")

    def check_model(self, net: Any) -> None:
        """Raise ValueError when this term cannot guide `net` (default: any network)."""

    def active_at(self, sigma: torch.Tensor) -> bool:
        """Whether every sigma of the batch lies in ``sigma_range`` (inclusive)."""
        low, high = self.sigma_range
        if low <= 0 and high == math.inf:
            return True
        return low <= float(sigma.min()) and float(sigma.max()) <= high


#: A zero-argument callable returning a fresh GuidanceTerm (what the GUIDANCE port carries, in a tuple).
GuidanceFactory = Callable[[], GuidanceTerm]


class CallableTerm(GuidanceTerm):
    """A legacy ``function(x, sigma, denoised) -> correction`` as a GuidanceTerm (optionally sigma-gated)."""

    def __init__(self, function: LegacyTerm, sigma_range: tuple[float, float] = ALL_SIGMAS):
        self.function = function
        self.sigma_range = check_sigma_range(sigma_range, "sigma_range")

    def __call__(self, state: GuidanceState) -> torch.Tensor:
        return self.function(state.x, state.sigma, state.denoised)


def check_sigma_range(sigma_range: Any, argument: str) -> tuple[float, float]:
    """``(low, high)`` as floats with ``0 <= low <= high``; SamplingError naming `argument` otherwise."""
    try:
        low, high = (float(v) for v in sigma_range)
    except (TypeError, ValueError):
        raise SamplingError(argument, "a pair (sigma_low, sigma_high)", repr(sigma_range),
                            "Give e.g. (0.0, math.inf) for every sigma.", sigma_range) from None
    if not 0 <= low <= high or math.isnan(high):
        raise SamplingError(argument, "(sigma_low, sigma_high) with 0 <= low <= high", repr(sigma_range),
                            "Give the noise interval where the guidance applies.", sigma_range)
    return low, high


def as_guidance_term(term: Any, argument: str = "term") -> GuidanceTerm:
    """A GuidanceTerm as is; a plain callable (legacy ``term(x, sigma, denoised)``) wrapped in CallableTerm."""
    if isinstance(term, GuidanceTerm):
        return term
    if callable(term):
        return CallableTerm(term)
    raise SamplingError(argument, "a GuidanceTerm or a callable term(x, sigma, denoised)", type(term).__name__,
                        "Pass a GuidanceTerm subclass instance or a function.", term)


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


@dataclass
class _Run:
    """One sampling run's terms (fresh from the factories) and step bookkeeping."""

    terms: tuple[GuidanceTerm, ...]
    sigmas: torch.Tensor | None          # the schedule, when the sampling code gave it
    explicit: bool                       # made by for_run (never reset by the sigma heuristic)
    last_sigma: float = math.inf
    step: int = -1                       # distinct sigma levels seen - 1 (used without a schedule)


class CFGGuider:
    """Classifier-free guided denoiser with rescale, a sigma interval and guidance terms.

    Args:
        model: denoiser ``model(x, sigma, **cond) -> denoised``.
        positive: conditioning of the prompt (dict of tensors with a batch dim).
        negative: conditioning of the negative / empty prompt; may be ``None`` only when ``scale == 1``.
        scale: guidance scale s; 1 = positive only, 0 = negative only.
        rescale: CFG rescale strength phi in [0, 1] (Lin et al. 2023 recommend 0.7).
        cfg_sigma_range: ``(sigma_low, sigma_high)``; CFG applies only for sigmas inside
            (inclusive); outside, only the positive branch runs.
        terms: guidance terms shared by every run: GuidanceTerm objects or legacy callables
            ``term(x, sigma, denoised)`` (see the module docstring).
        guidance: term factories (the GUIDANCE port's value); each run gets fresh terms.

    Conditioning is validated here (same keys in both branches, tensors with a batch dim);
    the latent batch is checked by :meth:`check_latent`, called before the first model
    evaluation of every call, so a mismatch fails before any model work.
    """

    def __init__(self, model: Callable[..., torch.Tensor], positive: Conditioning,
                 negative: Conditioning | None = None, scale: float = 7.5, rescale: float = 0.0,
                 cfg_sigma_range: tuple[float, float] = ALL_SIGMAS, terms: Sequence[GuidanceTerm | LegacyTerm] = (),
                 guidance: Sequence[GuidanceFactory] = ()):
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not math.isfinite(scale):
            raise SamplingError("scale", "a finite number", repr(scale), "Use e.g. 7.5 (1 disables CFG).", scale)
        if not 0 <= rescale <= 1:
            raise SamplingError("rescale", "a CFG rescale strength in [0, 1]", repr(rescale),
                                "Use 0 (off) to 1; the paper recommends 0.7.", rescale)
        low, high = check_sigma_range(cfg_sigma_range, "cfg_sigma_range")
        if negative is None and scale != 1:
            raise SamplingError("negative", f"negative conditioning for scale {scale}", "None",
                                "Encode an empty prompt as negative, or set scale=1.")
        if not callable(model):
            raise SamplingError("model", "a callable", type(model).__name__, "Pass a function.", model)
        for k, factory in enumerate(guidance):
            if not callable(factory) or isinstance(factory, GuidanceTerm):
                raise SamplingError(f"guidance[{k}]", "a zero-argument factory returning a GuidanceTerm",
                                    type(factory).__name__,
                                    "Pass a class or e.g. functools.partial(MyTerm, scale=2.0): each run makes "
                                    "fresh terms (a term keeps per-run state).",
                                    factory)
        self.model = model
        self.positive = self._checked_conditioning(positive, "positive")
        self.negative = None if negative is None else self._checked_conditioning(negative, "negative")
        if self.negative is not None and set(self.negative) != set(self.positive):
            raise SamplingError("negative", f"the same conditioning keys as positive {sorted(self.positive)}",
                                f"keys {sorted(self.negative)}",
                                "Encode both prompts with the same encoder(s).", negative)
        self.scale = float(scale)
        self.rescale = float(rescale)
        self.cfg_sigma_range = (low, high)
        self.terms = tuple(as_guidance_term(t, f"terms[{k}]") for k, t in enumerate(terms))
        self.guidance = tuple(guidance)
        self._batched: dict[tuple, dict[str, torch.Tensor]] = {}
        self._run: _Run | None = None

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

    # -- runs ----------------------------------------------------------------------------------------
    def make_terms(self) -> tuple[GuidanceTerm, ...]:
        """Fresh terms from the guidance factories (checked to be GuidanceTerms)."""
        made = []
        for k, factory in enumerate(self.guidance):
            term = factory()
            if not isinstance(term, GuidanceTerm):
                raise SamplingError(f"guidance[{k}]", "a factory returning a GuidanceTerm", type(term).__name__,
                                    "Subclass nodegraph.api.GuidanceTerm.", factory)
            _check_sigma_range(term, k)
            made.append(term)
        return tuple(made)

    def for_run(self, sigmas: torch.Tensor | None = None) -> CFGGuider:
        """A copy of this guider for one sampling run over `sigmas`: fresh terms, exact step indices.

        The sampling code calls this once per run (``Sample``, ``KSampler``, the plugin API);
        the original (e.g. a cached GUIDER value) is left untouched.
        """
        run = copy.copy(self)
        schedule = None if sigmas is None else torch.as_tensor(sigmas).detach().float().cpu()
        run._run = _Run(terms=self.make_terms(), sigmas=schedule, explicit=True)
        return run

    def _run_at(self, sigma_value: float) -> tuple[_Run, int | None]:
        """This call's run (started implicitly when none was made or sigma rose) and its step index."""
        run = self._run
        if run is None or (not run.explicit and sigma_value > run.last_sigma * (1 + 1e-6)):
            run = self._run = _Run(terms=self.make_terms(), sigmas=None, explicit=False)
        if run.sigmas is not None:
            step = max(int((run.sigmas >= sigma_value * (1 - 1e-5)).sum()) - 1, 0)
        else:
            if not math.isclose(sigma_value, run.last_sigma, rel_tol=1e-6):
                run.step += 1
            step = run.step
        run.last_sigma = sigma_value
        return run, step

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

    def check_model(self, net: Any) -> None:
        """Ask every term (shared and fresh) whether it can guide `net`; SamplingError naming the term if not."""
        for k, term in enumerate((*self.terms, *self.make_terms())):
            try:
                term.check_model(net)
            except ValueError as exc:
                argument = f"terms[{k}]" if k < len(self.terms) else f"guidance[{k - len(self.terms)}]"
                raise SamplingError(argument, f"a guidance term that can guide this network ({type(net).__name__})",
                                    f"{type(term).__name__}: {exc}", "Change the term's settings or the model.",
                                    term) from None

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

    def _single(self, x: torch.Tensor, sigma: torch.Tensor, cond: Conditioning, shared_cond,
                patches: tuple = ()) -> torch.Tensor:
        """One branch evaluated on its own (batch B), with extra model patches if any."""
        merged = {k: _expand(v, x) for k, v in {**cond, **shared_cond}.items()}
        if patches:
            merged["patches"] = tuple(patches)
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

        terms: tuple[GuidanceTerm, ...] = self.terms
        step = None
        if self.guidance or self._run is not None:
            run, step = self._run_at(float(sigma.max()))
            terms = (*terms, *run.terms)
        terms = tuple(term for term in terms if term.active_at(sigma))
        main_patches = tuple(patch for term in terms for patch in term.main_call_patches)
        extra = {"patches": main_patches} if main_patches else {}

        negative = None
        if not self._guidance_active(sigma):
            cond, _ = self._batched_conditioning(x, shared_cond, both=False)
            positive = guided = self.model(x, sigma, **cond, **extra)
        elif self.scale == 0 and not self.rescale and not terms:     # the negative branch is the whole result
            positive, guided = None, self._single(x, sigma, self.negative, shared_cond, main_patches)
        else:
            cond, batched = self._batched_conditioning(x, shared_cond, both=True)
            if batched:
                positive, negative = self.model(torch.cat([x, x]), torch.cat([sigma, sigma]), **cond,
                                                **extra).chunk(2)
            else:
                positive = self._single(x, sigma, self.positive, shared_cond, main_patches)
                negative = self._single(x, sigma, self.negative, shared_cond, main_patches)
            guided = torch.lerp(negative, positive, self.scale)
            if self.rescale:
                guided = rescale_guidance(x, sigma, positive, guided, self.rescale)
        if not terms:
            return guided

        latent = x

        def evaluate(conditioning: Conditioning | None = None, patches: Sequence = (),
                     x: torch.Tensor | None = None) -> torch.Tensor:
            try:
                cond = self.positive if conditioning is None else self._checked_conditioning(conditioning,
                                                                                               "conditioning")
                return self._single(latent if x is None else x, sigma, cond, shared_cond, tuple(patches or ()))
            except ValueError as exc:       # what the term passed was refused: `_call_term` names the term
                raise _EvaluateRefused.of(exc) from exc

        state = GuidanceState(x=x, sigma=sigma, denoised=guided, denoised_positive=positive,
                              denoised_negative=negative, scale=self.scale if negative is not None else 1.0,
                              step=step, sigmas=self._run.sigmas if self._run is not None else None,
                              positive=self.positive, negative=self.negative, shared=dict(shared_cond),
                              evaluate=evaluate)
        corrections = [c for c in (_call_term(term, state) for term in terms) if c is not None]
        if corrections:
            guided = guided + sum(corrections)
        return guided


def _check_sigma_range(term: Any, index: int) -> None:
    """A term's `sigma_range` is two numbers, low <= high (an inverted one never ran, and said nothing)."""
    bounds = getattr(term, "sigma_range", None)
    try:
        low, high = (float(b) for b in bounds)
        valid = low <= high and not math.isnan(low) and not math.isnan(high)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise SamplingError(f"guidance[{index}]", f"guidance term {_term_name(term)} with a sigma_range (low, high), "
                            f"low <= high", repr(bounds)[:80], "Give e.g. (0.0, 14.6), or leave the default (every "
                            "sigma).", term)


def _term_name(term: Any) -> str:
    """A guidance term as messages name it: its class and the module (a plugin's) that defines it."""
    cls = type(term)
    return f"{cls.__qualname__} (from {cls.__module__})"


class _EvaluateRefused(SamplingError):
    """`state.evaluate` refused what a guidance term passed it (a conditioning value, an `x` the network does not
    take); `_call_term` says so of the term, at the `guidance` input."""

    @classmethod
    def of(cls, exc: ValueError) -> _EvaluateRefused:
        if isinstance(exc, SamplingError):
            return cls(exc.argument, exc.expected, exc.found, exc.fix, exc.value)
        return cls(getattr(exc, "argument", None) or "x", "a value the network takes", str(exc),
                   "Pass state.evaluate conditioning and x shaped like state.positive and state.x.")


def _call_term(term: Any, state: GuidanceState) -> torch.Tensor | None:
    """`term(state)`, its failure or a correction that does not fit the prediction named after the term (a
    plugin's term is otherwise blamed on the sampler, with a stack that no longer holds the term; so was a
    refusal of its `state.evaluate` call, at KSampler's `sampler` input)."""
    try:
        correction = term(state)
    except _EvaluateRefused as exc:
        raise SamplingError("guidance", f"guidance term {_term_name(term)} to call state.evaluate with "
                            f"{exc.argument} as {exc.expected}", exc.found, exc.fix, exc.value) from exc
    except ValueError:      # a deliberate refusal with its own words (SamplingError, a plugin's own error)
        raise
    except Exception as exc:  # noqa: BLE001 — named after the term, the original kept as __cause__
        raise SamplingError("guidance", f"guidance term {_term_name(term)} to return a correction",
                            f"{type(exc).__name__}: {exc}", "fix the term, or leave it out of the GUIDANCE "
                            "input") from exc
    if correction is None:
        return None
    target = state.denoised
    if not isinstance(correction, torch.Tensor) or not correction.is_floating_point():
        raise SamplingError("guidance", f"guidance term {_term_name(term)} to return None or a float tensor "
                            f"shaped like the prediction {tuple(target.shape)}", type(correction).__name__,
                            "return a tensor (or None to leave the step alone)", correction)
    try:
        fits = torch.broadcast_shapes(correction.shape, target.shape) == target.shape
    except RuntimeError:
        fits = False
    if not fits or correction.device != target.device:
        raise SamplingError("guidance", f"guidance term {_term_name(term)} to return a correction of shape "
                            f"{tuple(target.shape)} on {target.device}",
                            f"shape {tuple(correction.shape)} on {correction.device}",
                            "compute it from state.denoised / state.x (same shape and device)", correction)
    if not bool(torch.isfinite(correction).all()):
        raise SamplingError("guidance", f"guidance term {_term_name(term)} to return finite numbers",
                            "NaN or infinite values", "check the term's arithmetic (a division by a zero "
                            "norm?) or clamp its result", correction)
    return correction


def _expand(value: Any, x: torch.Tensor) -> Any:
    """A conditioning tensor on x's device with batch 1 broadcast to x's batch; other values unchanged."""
    if not isinstance(value, torch.Tensor):
        return value
    value = value.to(x.device)
    batch = x.shape[0]
    return value.expand(batch, *value.shape[1:]) if value.shape[0] == 1 and batch > 1 else value


def classifier_guidance(log_likelihood: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                        scale: float = 1.0) -> LegacyTerm:
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
