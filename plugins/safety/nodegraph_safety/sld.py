"""Safe Latent Diffusion guidance and negative-concept guidance, as guidance terms.

Reference: Schramowski, Brack, Deiseroth, Kersting 2023, "Safe Latent Diffusion: Mitigating
Inappropriate Degeneration in Diffusion Models" (CVPR), §3. With ε_u, ε_p, ε_S the noise
predictions for the unconditional (negative) prompt, the prompt, and the safety concept:

    eq. 3   ε̄ = ε_u + s_g (ε_p − ε_u − γ)                          guided noise with safety guidance
    eq. 4   γ = μ ⊙ (ε_S − ε_u)                                       the safety direction
    eq. 6   μ = min(1, s_S |ε_p − ε_S|)  where ε_p − ε_S < λ, else 0   elementwise scale (mask)
    eq. 7   γ_t ← γ_t + s_m ν_t                                       momentum
    eq. 8   ν_{t+1} = β_m ν_t + (1 − β_m) γ_t
    warm-up: γ is applied only from step δ on (momentum builds up from the first step).

Equation numbers follow the paper as diffusers' reference pipeline (``StableDiffusionPipelineSafe``)
cites them; the clamp of μ to 1 is the reference implementation's. Parameters: s_S
``edit_scale`` (safety guidance scale), λ ``threshold``, s_m ``momentum_scale``, β_m
``momentum_beta``, δ ``warmup_steps``; the paper's presets (diffusers ``SafetyConfig``) are in
``PRESETS``.

Our samplers see denoisers (x0 predictions, k-diffusion convention ``x = x0 + σ ε``), so each
prediction is mapped to noise units with ``ε = (x − D) / σ``, the paper's math is done there
(so λ and s_S keep their meaning), and the correction is mapped back: ε̄ − ε_cfg = −s_g γ, hence
``D̄ − D_cfg = σ s_g γ`` (``denoised_correction``).

Three additions, all off by default (then the term is the paper's SLD):
- **Anchor** (concept replacement): γ = μ ⊙ (ε_S − ε_A), with ε_A the prediction for an anchor text
  (e.g. "circle" for the concept "star"; with several anchors, the mean of their predictions),
  instead of ε_S − ε_u. The paper's direction also removes what the concept shares with every
  object (colour, presence, place); concept − anchor keeps only what tells the concept from the
  anchor, so the corrected prediction ε_p − ε_S + ε_A draws the prompt with the anchor in the
  concept's place. This is the anchor-concept idea of concept
  ablation (Kumari et al. 2023, "Ablating Concepts in Text-to-Image Diffusion Models"), applied at
  sampling time instead of by fine-tuning. One more model evaluation per step and anchor.
- **Checker gate** (``CheckerGate``): the term acts only on the samples whose predicted image
  (the CFG x0 prediction, decoded) a safety checker has flagged at ``steps`` consecutive steps with
  σ ≤ ``max_sigma``; once on, a sample stays on (a latch, so the concept cannot come back when the
  guidance has hidden it). Before any sample is on, the term makes no extra model evaluations.
  Early predictions are too blurred to judge (the tiny checker flags a third of safe samples
  somewhere above σ ≈ 4), hence the σ bound and the run of flags.
- **Prompt share** (``share`` = (low, high)): each sample's γ is weighted by how much of the concept the
  prompt's own prediction holds, c = <ε_p − ε_r, ε_S − ε_r> / |ε_S − ε_r|² (its projection onto the line
  from the reference ε_r — ε_A with an anchor, else ε_u — at c = 0 to the concept at c = 1), ramped from
  no edit at c <= low to the full edit at c >= high (``concept_coefficient``, ``share_weight``); with
  several anchors, by default the smallest c over the anchors (``nearest_anchor_coefficient``). A
  prompt that asks for the concept sits near c = 1; one that asks for an anchor-like object near 0, so a
  false alarm of the gate on it moves it little or not at all. Costs nothing beyond the evaluations γ
  already needs. The thresholds are in units of that line, so they depend on the reference.

Negative-concept guidance (the baseline): the concept replaces the negative prompt, i.e.
``D' = D_S + s_g (D_p − D_S)``; as a correction of the CFG result that is
``(1 − s_g)(D_S − D_u)`` (``negative_concept_correction``).

Map: pure functions ``noise_from_denoised``, ``safety_scale`` (eq. 6), ``safety_direction``
(eq. 4), ``momentum_update`` (eqs. 7-8), ``denoised_correction`` (eq. 3 in x0 units),
``negative_concept_correction``, ``anchor_texts`` (parses the anchor input), ``latch_update`` (the
gate's run-of-flags latch), ``concept_coefficient``, ``nearest_anchor_coefficient`` and ``share_weight``
(the prompt share); ``CheckerGate``
(per-run gate state); terms ``SafeLatentDiffusionTerm`` (momentum and gate state per sampling
run) and ``NegativeConceptTerm``, subclasses of the public ``nodegraph.api.GuidanceTerm`` (the guidance
contract of docs/plugins.md "Guidance"; ``state`` is the sampler's GuidanceState).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from nodegraph.api import GuidanceTerm  # the public base class: no engine machinery comes with it

__all__ = [
    "PRESETS",
    "CheckerGate",
    "NegativeConceptTerm",
    "SafeLatentDiffusionTerm",
    "SLDParameters",
    "anchor_texts",
    "concept_coefficient",
    "denoised_correction",
    "latch_update",
    "momentum_update",
    "nearest_anchor_coefficient",
    "negative_concept_correction",
    "noise_from_denoised",
    "safety_direction",
    "safety_scale",
    "share_weight",
]


@dataclass(frozen=True)
class SLDParameters:
    """SLD hyper-parameters (paper §3; defaults: the paper's "medium" configuration)."""

    warmup_steps: int = 10  # δ: steps without safety guidance, so the composition forms first
    edit_scale: float = 1000.0  # s_S: safety guidance scale (μ saturates at 1 beyond 1/s_S)
    threshold: float = 0.01  # λ: elements where ε_p − ε_S >= λ are left alone
    momentum_scale: float = 0.3  # s_m
    momentum_beta: float = 0.4  # β_m

    def __post_init__(self) -> None:
        checks = (("warmup_steps", self.warmup_steps >= 0, ">= 0"), ("edit_scale", self.edit_scale >= 0, ">= 0"),
                  ("momentum_scale", self.momentum_scale >= 0, ">= 0"),
                  ("momentum_beta", 0 <= self.momentum_beta < 1, "in [0, 1)"),
                  ("threshold", math.isfinite(self.threshold), "finite"))
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"{name}: expected a value {rule}, found {getattr(self, name)!r}")


# The paper's configurations (Table 2 / diffusers SafetyConfig).
PRESETS: Mapping[str, SLDParameters] = {
    "weak": SLDParameters(warmup_steps=15, edit_scale=20, threshold=0.0, momentum_scale=0.0, momentum_beta=0.0),
    "medium": SLDParameters(warmup_steps=10, edit_scale=1000, threshold=0.01, momentum_scale=0.3, momentum_beta=0.4),
    "strong": SLDParameters(warmup_steps=7, edit_scale=2000, threshold=0.025, momentum_scale=0.5, momentum_beta=0.7),
    "max": SLDParameters(warmup_steps=0, edit_scale=5000, threshold=1.0, momentum_scale=0.5, momentum_beta=0.7),
}


def _column(sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return sigma.to(x.dtype).reshape((-1,) + (1,) * (x.ndim - 1))


def noise_from_denoised(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """ε = (x − D) / σ: a denoiser's prediction in noise units (k-diffusion convention x = x0 + σ ε)."""
    return (x - denoised) / _column(sigma, x)


def safety_scale(noise_positive: torch.Tensor, noise_concept: torch.Tensor, edit_scale: float,
                 threshold: float) -> torch.Tensor:
    """Eq. 6: μ = min(1, s_S |ε_p − ε_S|) where ε_p − ε_S < λ, else 0 (elementwise)."""
    difference = noise_positive - noise_concept
    scale = torch.clamp(difference.abs() * edit_scale, max=1.0)
    return torch.where(difference < threshold, scale, torch.zeros_like(scale))


def safety_direction(noise_reference: torch.Tensor, noise_concept: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Eq. 4: γ = μ ⊙ (ε_S − ε_u); with an anchor, ε_A is the reference instead of ε_u."""
    return mu * (noise_concept - noise_reference)


def momentum_update(gamma: torch.Tensor, momentum: torch.Tensor, momentum_scale: float,
                    momentum_beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Eqs. 7-8: γ_t ← γ_t + s_m ν_t; ν_{t+1} = β_m ν_t + (1 − β_m) γ_t -> (γ_t, ν_{t+1})."""
    gamma = gamma + momentum_scale * momentum
    return gamma, momentum_beta * momentum + (1 - momentum_beta) * gamma


def denoised_correction(sigma: torch.Tensor, guidance_scale: float, gamma: torch.Tensor) -> torch.Tensor:
    """Eq. 3 in x0 units: ε̄ − ε_cfg = −s_g γ, and D = x − σ ε, so D̄ − D_cfg = σ s_g γ."""
    return _column(sigma, gamma) * guidance_scale * gamma


def negative_concept_correction(denoised_negative: torch.Tensor, denoised_concept: torch.Tensor,
                                guidance_scale: float) -> torch.Tensor:
    """(1 − s_g)(D_S − D_u): turns D_u + s_g(D_p − D_u) into D_S + s_g(D_p − D_S) (the concept as negative prompt)."""
    return (1 - guidance_scale) * (denoised_concept - denoised_negative)


def concept_coefficient(noise_positive: torch.Tensor, noise_reference: torch.Tensor,
                        noise_concept: torch.Tensor) -> torch.Tensor:
    """(B,) c = <ε_p − ε_r, ε_S − ε_r> / |ε_S − ε_r|² per sample: the prompt's prediction projected onto the line
    from the reference (ε_u, or the anchor's ε_A; c = 0) to the concept (c = 1). 0 where ε_S = ε_r everywhere."""
    direction = (noise_concept - noise_reference).flatten(1)
    along = ((noise_positive - noise_reference).flatten(1) * direction).sum(1)
    norm = (direction * direction).sum(1)
    return torch.where(norm > 0, along / torch.where(norm > 0, norm, torch.ones_like(norm)), torch.zeros_like(norm))


def nearest_anchor_coefficient(noise_positive: torch.Tensor, noise_anchors: Sequence[torch.Tensor],
                               noise_concept: torch.Tensor) -> torch.Tensor:
    """(B,) min over anchors k of ``concept_coefficient(ε_p, ε_Ak, ε_S)``: the prompt holds the concept only as far as
    it does seen from every anchor (a prompt that asks for one of the anchors sits near 0 from that one)."""
    return torch.stack([concept_coefficient(noise_positive, a, noise_concept) for a in noise_anchors]).amin(0)


def share_weight(coefficient: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """w = clamp((c − low) / (high − low), 0, 1): no edit where the prompt's prediction holds at most `low` of the
    concept (c from ``concept_coefficient``), the full edit from `high` on; low == high is a step at `low`."""
    if high <= low:
        return (coefficient >= low).to(coefficient.dtype)
    return ((coefficient - low) / (high - low)).clamp(0.0, 1.0)


def anchor_texts(text: str) -> list[str]:
    """The anchors of an ``anchor`` input: ';'-separated, stripped, empty parts dropped ([] = no anchor)."""
    return [part.strip() for part in text.split(";") if part.strip()]


def latch_update(run: torch.Tensor, latched: torch.Tensor, flagged: torch.Tensor,
                 steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the gate: run lengths of consecutive flags, and the latch (on once a run reaches `steps`)."""
    run = torch.where(flagged, run + 1, torch.zeros_like(run))
    return run, latched | (run >= steps)


class CheckerGate:
    """Which samples of a batch SLD acts on: those a safety checker flagged (see the module docstring).

    Args:
        flag_images: latent x0 predictions (b, C, h, w) -> (b,) bool, True = the checker flags the
            decoded image (the caller decodes with its VAE and runs its checker).
        max_sigma: judge only predictions at σ <= this (earlier ones are too blurred to judge).
        steps: consecutive flagged steps before a sample is latched on.

    One object per sampling run. ``update`` judges once per step (a second-order sampler's
    second call in a step reuses the answer) and only the samples not yet latched.
    """

    def __init__(self, flag_images: Callable[[torch.Tensor], torch.Tensor], max_sigma: float = 3.5,
                 steps: int = 2):
        self.flag_images = flag_images
        self.max_sigma = max_sigma
        self.steps = steps
        self.run: torch.Tensor | None = None
        self.latched: torch.Tensor | None = None
        self._step: int | None = None

    def update(self, step: int, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
        """(B,) bool: the samples the term acts on at this step."""
        batch = denoised.shape[0]
        if self.latched is None or self.latched.shape[0] != batch:
            self.run = torch.zeros(batch, dtype=torch.long)
            self.latched = torch.zeros(batch, dtype=torch.bool)
        if step != self._step:
            self._step = step
            judged = (sigma.detach().float().cpu().reshape(-1).expand(batch) <= self.max_sigma) & ~self.latched
            flagged = torch.zeros(batch, dtype=torch.bool)
            if bool(judged.any()):
                index = torch.nonzero(judged).flatten()
                flagged[index] = self.flag_images(denoised[index.to(denoised.device)]).detach().cpu().bool()
            self.run, self.latched = latch_update(self.run, self.latched, flagged, self.steps)
        return self.latched


class SafeLatentDiffusionTerm(GuidanceTerm):
    """SLD (Schramowski et al. 2023) as a guidance term; one object per sampling run (momentum state).

    Args:
        concept: conditioning of the safety concept text (same keys as the prompt's; batch 1 broadcasts).
        parameters: SLDParameters (s_S, λ, s_m, β_m, δ).
        sigma_range: where the term runs at all (outside it neither guides nor builds momentum).
        anchor: conditioning of an anchor text (concept replacement), or a sequence of them (their
            predictions are averaged), or None for the paper's ε_u.
        gate: a factory of CheckerGate (called once per run), or None to act on every sample.
        share: (low, high) of ``share_weight``: weight each sample's edit by the prompt's share of the
            concept (``concept_coefficient``), or None for the full edit.
        share_rule: with several anchors, "nearest" (the smallest share over the anchors) or "mean" (the
            share seen from the anchors' mean prediction).

    Needs CFG (the negative branch is ε_u): at sigmas where CFG is off it returns None. Costs one
    extra model evaluation (batch B) per call. Second-order samplers call the model several
    times per step: momentum advances once per step (the state at the step's first call is kept).
    """

    def __init__(self, concept: Mapping[str, torch.Tensor], parameters: SLDParameters = SLDParameters(),
                 sigma_range: tuple[float, float] = (0.0, math.inf),
                 anchor: Mapping[str, torch.Tensor] | Sequence[Mapping[str, torch.Tensor]] | None = None,
                 gate: Callable[[], CheckerGate] | None = None, share: tuple[float, float] | None = None,
                 share_rule: str = "nearest"):
        self.concept = dict(concept)
        self.share = share
        self.share_rule = share_rule
        self.parameters = parameters
        self.sigma_range = sigma_range
        anchors = () if anchor is None else (anchor,) if isinstance(anchor, Mapping) else tuple(anchor)
        self.anchors = tuple(dict(a) for a in anchors)
        self.gate = gate() if gate is not None else None
        self.momentum: torch.Tensor | None = None  # ν_t at the start of the current step
        self._next_momentum: torch.Tensor | None = None
        self._step: int | None = None
        self._calls = 0

    def __call__(self, state) -> torch.Tensor | None:
        if state.denoised_negative is None:
            return None
        step = state.step if state.step is not None else self._calls
        self._calls += 1
        if step != self._step:  # a new step: commit the momentum the previous step produced
            if self._next_momentum is not None:
                self.momentum = self._next_momentum
            self._step = step
        p = self.parameters
        active = self.gate.update(step, state.sigma, state.denoised) if self.gate is not None else None
        if active is not None and not bool(active.any()):
            return None           # no sample is on: no extra model evaluations, no momentum (it stays zero)
        noise_positive = noise_from_denoised(state.x, state.sigma, state.denoised_positive)
        noise_concept = noise_from_denoised(state.x, state.sigma, state.evaluate(self.concept))
        anchor_predictions = [state.evaluate(a) for a in self.anchors]
        reference = state.denoised_negative if not self.anchors else sum(anchor_predictions) / len(anchor_predictions)
        mu = safety_scale(noise_positive, noise_concept, p.edit_scale, p.threshold)
        noise_reference = noise_from_denoised(state.x, state.sigma, reference)
        gamma = safety_direction(noise_reference, noise_concept, mu)
        if self.share is not None:
            if len(anchor_predictions) > 1 and self.share_rule == "nearest":
                anchor_noises = [noise_from_denoised(state.x, state.sigma, a) for a in anchor_predictions]
                coefficient = nearest_anchor_coefficient(noise_positive, anchor_noises, noise_concept)
            else:
                coefficient = concept_coefficient(noise_positive, noise_reference, noise_concept)
            weight = share_weight(coefficient, *self.share)
            gamma = gamma * weight.to(gamma.dtype).reshape((-1,) + (1,) * (gamma.ndim - 1))
        if active is not None:
            gamma = gamma * active.to(gamma.device, gamma.dtype).reshape((-1,) + (1,) * (gamma.ndim - 1))
        momentum = self.momentum if self.momentum is not None and self.momentum.shape == gamma.shape \
            else torch.zeros_like(gamma)
        gamma, self._next_momentum = momentum_update(gamma, momentum, p.momentum_scale, p.momentum_beta)
        if step < p.warmup_steps:
            return None
        return denoised_correction(state.sigma, state.scale, gamma)


class NegativeConceptTerm(GuidanceTerm):
    """The safety concept used as the negative prompt (the baseline SLD is compared with), as a term.

    Exactly CFG with negative = the concept: ``D_S + s_g (D_p − D_S)``; needs CFG, one extra model
    evaluation per call. ``strength`` in [0, 1] blends from the original negative (0) to the concept (1).
    """

    def __init__(self, concept: Mapping[str, torch.Tensor], strength: float = 1.0,
                 sigma_range: tuple[float, float] = (0.0, math.inf)):
        self.concept = dict(concept)
        self.strength = strength
        self.sigma_range = sigma_range

    def __call__(self, state) -> torch.Tensor | None:
        if state.denoised_negative is None or self.strength == 0:
            return None
        correction = negative_concept_correction(state.denoised_negative, state.evaluate(self.concept), state.scale)
        return self.strength * correction
