"""Safe Latent Diffusion and negative-concept guidance: the math against a hand-computed case, and the terms in the guider."""

import functools
import math

import pytest
import torch

from nodegraph_safety.sld import (
    PRESETS,
    CheckerGate,
    NegativeConceptTerm,
    SafeLatentDiffusionTerm,
    SLDParameters,
    concept_coefficient,
    denoised_correction,
    latch_update,
    momentum_update,
    nearest_anchor_coefficient,
    noise_from_denoised,
    safety_direction,
    safety_scale,
    share_weight,
)
from nodes.sampling.guidance import CFGGuider, GuidanceState

# A hand-worked case: x = 1, sigma = 2, so eps = (1 - D) / 2.
X = torch.ones(1, 4)
SIGMA = torch.tensor([2.0])
D_NEGATIVE = torch.tensor([[0.0, 0.2, 0.4, 1.0]])  # eps_u = [0.5, 0.4, 0.3, 0.0]
D_POSITIVE = torch.tensor([[0.2, 0.2, 0.0, 0.6]])  # eps_p = [0.4, 0.4, 0.5, 0.2]
D_CONCEPT = torch.tensor([[0.6, 0.0, 0.1, 0.6]])  # eps_S = [0.2, 0.5, 0.45, 0.2]
PARAMETERS = SLDParameters(warmup_steps=0, edit_scale=4.0, threshold=0.1, momentum_scale=0.5, momentum_beta=0.5)
GUIDANCE_SCALE = 3.0


def test_math_matches_the_hand_computed_case():
    """eps_p - eps_S = [0.2, -0.1, 0.05, 0] gives mu = [0, 0.4, 0.2, 0], gamma = [0, 0.04, 0.03, 0]; D shifts by 6 gamma."""
    eps_u, eps_p, eps_s = (noise_from_denoised(X, SIGMA, d) for d in (D_NEGATIVE, D_POSITIVE, D_CONCEPT))
    assert eps_u[0].tolist() == pytest.approx([0.5, 0.4, 0.3, 0.0])
    mu = safety_scale(eps_p, eps_s, edit_scale=4.0, threshold=0.1)
    assert mu[0].tolist() == pytest.approx([0.0, 0.4, 0.2, 0.0])
    gamma = safety_direction(eps_u, eps_s, mu)
    assert gamma[0].tolist() == pytest.approx([0.0, 0.04, 0.03, 0.0])
    gamma0, momentum1 = momentum_update(gamma, torch.zeros_like(gamma), 0.5, 0.5)
    assert gamma0[0].tolist() == pytest.approx([0.0, 0.04, 0.03, 0.0])
    assert momentum1[0].tolist() == pytest.approx([0.0, 0.02, 0.015, 0.0])
    gamma1, momentum2 = momentum_update(gamma, momentum1, 0.5, 0.5)
    assert gamma1[0].tolist() == pytest.approx([0.0, 0.05, 0.0375, 0.0])
    assert momentum2[0].tolist() == pytest.approx([0.0, 0.035, 0.02625, 0.0])
    assert denoised_correction(SIGMA, GUIDANCE_SCALE, gamma)[0].tolist() == pytest.approx([0.0, 0.24, 0.18, 0.0])


def test_denoised_correction_is_eq3_in_noise_space():
    """D_cfg + correction equals x - sigma * (eps_u + s_g (eps_p - eps_u - gamma)) (eq. 3), for random values."""
    torch.manual_seed(0)
    x, d_u, d_p = torch.randn(3, 2, 4, 8, 8).unbind(0)
    sigma = torch.tensor([0.7, 3.0])
    gamma = torch.randn(2, 4, 8, 8)
    eps_u, eps_p = noise_from_denoised(x, sigma, d_u), noise_from_denoised(x, sigma, d_p)
    eps_bar = eps_u + GUIDANCE_SCALE * (eps_p - eps_u - gamma)
    expected = x - sigma.view(-1, 1, 1, 1) * eps_bar
    d_cfg = d_u + GUIDANCE_SCALE * (d_p - d_u)
    assert torch.allclose(d_cfg + denoised_correction(sigma, GUIDANCE_SCALE, gamma), expected, atol=1e-5)


def _state(step: int | None, scale: float = GUIDANCE_SCALE, negative=D_NEGATIVE) -> GuidanceState:
    d_cfg = D_NEGATIVE + scale * (D_POSITIVE - D_NEGATIVE)
    return GuidanceState(x=X, sigma=SIGMA, denoised=d_cfg, denoised_positive=D_POSITIVE, denoised_negative=negative,
                         scale=scale, step=step, sigmas=None, positive={}, negative={}, shared={},
                         evaluate=lambda conditioning=None, patches=(), x=None: D_CONCEPT)


def test_term_applies_momentum_once_per_step_and_respects_warmup():
    """Step 0 (warm-up) returns None but builds momentum; step 1 returns 6 * gamma_1; a second call in a step repeats it."""
    term = SafeLatentDiffusionTerm({}, SLDParameters(warmup_steps=1, edit_scale=4.0, threshold=0.1,
                                                     momentum_scale=0.5, momentum_beta=0.5))
    assert term(_state(0)) is None
    first = term(_state(1))
    assert first[0].tolist() == pytest.approx([0.0, 0.3, 0.225, 0.0])
    again = term(_state(1))  # e.g. Heun's second evaluation of the same step
    assert torch.equal(first, again)


def test_term_does_nothing_without_cfg():
    """Without a negative branch (CFG off at this sigma) the term returns None."""
    term = SafeLatentDiffusionTerm({}, PARAMETERS)
    assert term(_state(0, scale=1.0, negative=None)) is None


def test_parameters_are_checked_and_presets_match_the_paper():
    """A beta of 1 is refused with the parameter's name; the medium preset is (10, 1000, 0.01, 0.3, 0.4)."""
    with pytest.raises(ValueError, match="momentum_beta"):
        SLDParameters(momentum_beta=1.0)
    medium = PRESETS["medium"]
    assert (medium.warmup_steps, medium.edit_scale, medium.threshold, medium.momentum_scale,
            medium.momentum_beta) == (10, 1000, 0.01, 0.3, 0.4)


class _ToyDenoiser:
    """D(x, sigma; context) = x / (1 + sigma^2) + tanh(context mean), a smooth conditioned toy model."""

    sigma_min, sigma_max = 0.03, 15.0

    def __call__(self, x, sigma, context, **_):
        bias = torch.tanh(context.mean(dim=(1, 2))).view(-1, 1, 1, 1)
        return x / (1 + sigma.view(-1, 1, 1, 1) ** 2) + bias * (1 + x.abs().mean())


def _sample(guider, sigmas, x):
    """Euler steps with the guider (enough to exercise step indices and per-run state)."""
    for i in range(len(sigmas) - 1):
        sigma = sigmas[i].expand(x.shape[0])
        denoised = guider(x, sigma)
        x = x + (x - denoised) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
    return x


def test_momentum_state_is_fresh_for_every_run():
    """Two runs of one guider with an SLD factory give identical results (momentum reset per run)."""
    import functools

    positive, negative, concept = ({"context": torch.full((1, 3, 4), v)} for v in (0.8, 0.0, 0.5))
    factory = functools.partial(SafeLatentDiffusionTerm, concept, SLDParameters(warmup_steps=1, edit_scale=50,
                                                                                threshold=0.0, momentum_scale=0.5,
                                                                                momentum_beta=0.6))
    guider = CFGGuider(_ToyDenoiser(), positive, negative, scale=4.0, guidance=[factory])
    sigmas = torch.tensor([10.0, 5.0, 2.0, 1.0, 0.5, 0.0])
    x = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(0)) * 10
    first = _sample(guider.for_run(sigmas), sigmas, x)
    second = _sample(guider.for_run(sigmas), sigmas, x)
    plain = _sample(CFGGuider(_ToyDenoiser(), positive, negative, scale=4.0).for_run(sigmas), sigmas, x)
    assert torch.equal(first, second)
    assert not torch.allclose(first, plain)  # the guidance did something


def test_negative_concept_term_equals_cfg_with_the_concept_as_negative_prompt():
    """CFG(positive, empty) + NegativeConceptTerm(concept) == CFG(positive, concept)."""
    import functools

    positive, empty, concept = ({"context": torch.full((1, 3, 4), v)} for v in (0.8, 0.0, 0.5))
    x = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(1))
    sigma = torch.tensor([2.0, 2.0])
    with_term = CFGGuider(_ToyDenoiser(), positive, empty, scale=5.0,
                          guidance=[functools.partial(NegativeConceptTerm, concept)]).for_run()
    as_negative = CFGGuider(_ToyDenoiser(), positive, concept, scale=5.0)
    assert torch.allclose(with_term(x, sigma), as_negative(x, sigma), atol=1e-5)
    assert math.isfinite(float(with_term(x, sigma).sum()))


def replace_momentum(parameters: SLDParameters) -> SLDParameters:
    import dataclasses

    return dataclasses.replace(parameters, momentum_scale=0.0, momentum_beta=0.0)


D_ANCHOR = torch.tensor([[0.2, 0.4, 0.1, 0.6]])  # eps_A = [0.4, 0.3, 0.45, 0.2]


def _anchored_state(step: int, calls: list, batch: int = 1) -> GuidanceState:
    """A batch of copies of the hand-worked case; evaluate() answers D_CONCEPT or D_ANCHOR by conditioning."""
    def evaluate(conditioning=None, patches=(), x=None):
        calls.append(conditioning["name"])
        return (D_CONCEPT if conditioning["name"] == "concept" else D_ANCHOR).expand(batch, -1)

    d_cfg = D_NEGATIVE + GUIDANCE_SCALE * (D_POSITIVE - D_NEGATIVE)
    return GuidanceState(x=X.expand(batch, -1), sigma=SIGMA.expand(batch), denoised=d_cfg.expand(batch, -1),
                         denoised_positive=D_POSITIVE.expand(batch, -1), denoised_negative=D_NEGATIVE.expand(batch, -1),
                         scale=GUIDANCE_SCALE, step=step, sigmas=None, positive={}, negative={}, shared={},
                         evaluate=evaluate)


def test_anchor_replaces_the_unconditional_reference():
    """With an anchor the direction is mu * (eps_S - eps_A): [0, 0.4 * 0.2, 0.2 * 0, 0] -> D shifts by 6 * that."""
    calls = []
    term = SafeLatentDiffusionTerm({"name": "concept"}, replace_momentum(PARAMETERS), anchor={"name": "anchor"})
    correction = term(_anchored_state(0, calls))
    assert correction[0].tolist() == pytest.approx([0.0, 6 * 0.4 * 0.2, 0.0, 0.0])
    assert calls == ["concept", "anchor"]


def test_several_anchors_average_their_predictions():
    """Anchors [A, concept]: the reference is their mean, so the direction is half of eps_S - eps_A."""
    calls = []
    term = SafeLatentDiffusionTerm({"name": "concept"}, replace_momentum(PARAMETERS),
                                   anchor=[{"name": "anchor"}, {"name": "concept"}])
    correction = term(_anchored_state(0, calls))
    assert correction[0].tolist() == pytest.approx([0.0, 6 * 0.4 * 0.1, 0.0, 0.0])
    assert calls == ["concept", "anchor", "concept"]


def test_latch_needs_a_run_of_flags_and_then_stays_on():
    """steps = 2: a single flag does not latch, two in a row do, and the latch survives later unflagged steps."""
    run, latched = torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.bool)
    for flags in ([1, 1, 0], [0, 1, 1], [0, 0, 0], [0, 0, 1]):
        run, latched = latch_update(run, latched, torch.tensor(flags, dtype=torch.bool), steps=2)
    assert latched.tolist() == [False, True, False]   # sample 2's flags were not yet consecutive
    run, latched = latch_update(run, latched, torch.tensor([0, 0, 1], dtype=torch.bool), steps=2)
    assert latched.tolist() == [False, True, True]


def test_gate_judges_once_per_step_only_below_its_sigma_and_only_unlatched_samples():
    seen = []

    def flag_images(latent):
        seen.append(latent.shape[0])
        return torch.tensor([True] * latent.shape[0])

    gate = CheckerGate(flag_images, max_sigma=3.0, steps=1)
    denoised = torch.zeros(2, 4)
    assert gate.update(0, torch.tensor([5.0, 5.0]), denoised).tolist() == [False, False]  # above max_sigma
    assert seen == []
    assert gate.update(1, torch.tensor([2.0, 2.0]), denoised).tolist() == [True, True]
    gate.update(1, torch.tensor([2.0, 2.0]), denoised)    # a second call in the same step: not judged again
    gate.update(2, torch.tensor([1.0, 1.0]), denoised)    # both latched: nothing left to judge
    assert seen == [2]


def test_gated_term_guides_only_flagged_samples_and_evaluates_nothing_before():
    """Sample 0 is flagged, sample 1 never: no model call until a flag, then a correction for sample 0 only."""
    flags = {"now": torch.tensor([False, False])}
    gate = functools.partial(CheckerGate, lambda latent: flags["now"][: latent.shape[0]], 1e6, 1)
    calls = []
    term = SafeLatentDiffusionTerm({"name": "concept"}, replace_momentum(PARAMETERS), anchor={"name": "anchor"},
                                   gate=gate)
    assert term(_anchored_state(0, calls, batch=2)) is None
    assert calls == []
    flags["now"] = torch.tensor([True, False])
    correction = term(_anchored_state(1, calls, batch=2))
    assert calls == ["concept", "anchor"]
    assert correction[0].tolist() == pytest.approx([0.0, 6 * 0.4 * 0.2, 0.0, 0.0])
    assert correction[1].tolist() == [0.0, 0.0, 0.0, 0.0]


def test_concept_coefficient_is_the_projection_onto_reference_to_concept():
    """c = <eps_p - eps_r, eps_S - eps_r> / |eps_S - eps_r|^2: 0 at the reference, 1 at the concept, blind to the
    orthogonal part, per sample; the hand-worked anchored case gives 0.02 / 0.08 = 0.25; eps_S = eps_r gives 0."""
    reference = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    concept = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    positive = torch.tensor([[1.0, 5.0], [3.0, 0.0]])
    assert concept_coefficient(positive, reference, concept).tolist() == pytest.approx([0.5, 0.0])
    assert concept_coefficient(concept, reference, concept)[0].item() == pytest.approx(1.0)
    assert concept_coefficient(reference, reference, concept)[0].item() == pytest.approx(0.0)
    eps_p, eps_s, eps_a = (noise_from_denoised(X, SIGMA, d) for d in (D_POSITIVE, D_CONCEPT, D_ANCHOR))
    assert concept_coefficient(eps_p, eps_a, eps_s).item() == pytest.approx(0.25)
    batched = concept_coefficient(torch.randn(3, 4, 2, 2), torch.zeros(3, 4, 2, 2), torch.ones(3, 4, 2, 2))
    assert batched.shape == (3,)


def test_nearest_anchor_coefficient_is_the_smallest_share_over_the_anchors():
    """Concept [2, 0], anchors [0, 0] and [1, 0]: a prompt at [1, 0] is 0.5 of the way from the first anchor but
    on the second, so 0; at [1.5, 0] it is 0.75 and 0.5 of the way, so 0.5 (per sample)."""
    concept = torch.tensor([[2.0, 0.0], [2.0, 0.0]])
    anchors = [torch.zeros(2, 2), torch.tensor([[1.0, 0.0], [1.0, 0.0]])]
    positive = torch.tensor([[1.0, 0.0], [1.5, 3.0]])
    assert nearest_anchor_coefficient(positive, anchors, concept).tolist() == pytest.approx([0.0, 0.5])
    assert nearest_anchor_coefficient(positive, anchors[:1], concept).tolist() == pytest.approx([0.5, 0.75])


def test_share_weight_ramps_from_low_to_high_and_steps_when_they_meet():
    c = torch.tensor([-1.0, 0.25, 0.375, 0.5, 2.0])
    assert share_weight(c, 0.25, 0.5).tolist() == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])
    assert share_weight(c, 0.0, 1.0).tolist() == pytest.approx([0.0, 0.25, 0.375, 0.5, 1.0])
    assert share_weight(c, 0.4, 0.4).tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]


def test_share_scales_the_edit_by_the_prompts_share_of_the_concept():
    """The hand-worked anchored case has c = 0.25: share (0, 1) keeps a quarter of the edit, (0.1, 0.4) half,
    (0.25, 0.5) none (a prompt that holds little of the concept is left alone), None all of it."""
    full = 6 * 0.4 * 0.2
    for share, kept in ((None, 1.0), ((0.0, 1.0), 0.25), ((0.1, 0.4), 0.5), ((0.25, 0.5), 0.0)):
        term = SafeLatentDiffusionTerm({"name": "concept"}, replace_momentum(PARAMETERS), anchor={"name": "anchor"},
                                       share=share)
        correction = term(_anchored_state(0, []))
        assert correction[0].tolist() == pytest.approx([0.0, kept * full, 0.0, 0.0])
