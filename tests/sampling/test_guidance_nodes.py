"""The guidance contract (state, evaluate, ranges, per-run terms), PAG / SAG / classifier terms, GUIDANCE nodes."""

from __future__ import annotations

import functools
import math
from dataclasses import replace

import pytest
import torch

from nodegraph import NodeExecutionError, Session
from nodegraph.model_paths import ModelPaths
from nodes.models.patches import AttentionPatch
from nodes.models.unet import TINY, UNetModel
from nodes.sampling.denoisers import DiscreteTimeMap, ModelDenoiser
from nodes.sampling.errors import SamplingError
from nodes.sampling.guidance import CFGGuider, GuidanceState, GuidanceTerm
from nodes.sampling.guidance_terms import (
    DenoisedClassifierGuidance,
    PerturbedAttentionGuidance,
    SelfAttentionGuidance,
    classifier_correction,
    gaussian_blur,
    posterior_variance,
    sag_correction,
    sag_degrade,
    sag_mask,
)
from nodes.sampling.samplers import sample
from nodes.sampling.schedules import get_sigmas, scaled_linear_betas

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def unet() -> UNetModel:
    torch.manual_seed(0)
    model = UNetModel(replace(TINY, context_dim=16)).eval()
    with torch.no_grad():
        for parameter in model.out.parameters():  # LDM zero-initialises it: the output would be 0
            parameter.normal_(0, 0.1)
    return model


@pytest.fixture(scope="module")
def denoiser(unet) -> ModelDenoiser:
    return ModelDenoiser(unet, DiscreteTimeMap.from_betas(scaled_linear_betas()), "eps")


def conditions():
    generator = torch.Generator().manual_seed(2)
    return {"context": torch.randn(1, 7, 16, generator=generator)}, {"context": torch.randn(1, 7, 16, generator=generator)}


def latent(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 4, 8, 8, generator=torch.Generator().manual_seed(3)) * 3.0


class Recorder(GuidanceTerm):
    """Test term: records what it sees, keeps a per-run call count (like SLD momentum), adds nothing."""

    made = 0

    def __init__(self, sigma_range=(0.0, math.inf)):
        Recorder.made += 1
        self.sigma_range = sigma_range
        self.calls, self.states = 0, []

    def __call__(self, state: GuidanceState):
        self.calls += 1
        self.states.append(state)
        return None


# --- the contract -------------------------------------------------------------------------------


def test_state_holds_both_branches_the_cfg_result_and_an_evaluate_that_reruns_the_model(denoiser):
    """state.denoised_positive / _negative / denoised / evaluate(...) equal direct model calls."""
    positive, negative = conditions()
    seen = []

    class Check(GuidanceTerm):
        def __call__(self, state):
            seen.append(state)
            return None

    guider = CFGGuider(denoiser, positive, negative, scale=4.0, terms=[Check()])
    x, sigma = latent(), torch.tensor([2.0, 2.0])
    guided = guider(x, sigma)
    state = seen[0]
    with torch.no_grad():
        d_pos, d_neg = denoiser(x, sigma, **positive), denoiser(x, sigma, **negative)
    assert torch.allclose(state.denoised_positive, d_pos, atol=1e-5)
    assert torch.allclose(state.denoised_negative, d_neg, atol=1e-5)
    assert torch.equal(state.denoised, guided) and state.scale == 4.0
    assert torch.allclose(state.evaluate(), d_pos, atol=1e-5)
    assert torch.allclose(state.evaluate(conditioning=negative), d_neg, atol=1e-5)
    assert torch.allclose(state.evaluate(x=x * 0.5), denoiser(x * 0.5, sigma, **positive), atol=1e-5)


def test_terms_run_only_inside_their_sigma_range(denoiser):
    """A term with sigma_range (1, 5) is called exactly at the schedule's sigmas inside [1, 5]."""
    positive, negative = conditions()
    sigmas = get_sigmas("karras", denoiser, 10)
    guider = CFGGuider(denoiser, positive, negative, scale=3.0,
                       guidance=[functools.partial(Recorder, sigma_range=(1.0, 5.0))])
    run = guider.for_run(sigmas)
    with torch.no_grad():
        sample("euler", run, latent() * float(sigmas[0]), sigmas)
    term = run._run.terms[0]
    expected = [float(s) for s in sigmas[:-1] if 1.0 <= float(s) <= 5.0]
    assert [float(s.sigma[0]) for s in term.states] == pytest.approx(expected)
    with pytest.raises(SamplingError, match="sigma_range"):
        CFGGuider(denoiser, positive, negative, guidance=[functools.partial(PerturbedAttentionGuidance,
                                                                            sigma_range=(5.0, 1.0))]).make_terms()


def test_per_run_state_is_fresh_for_every_run_and_the_guider_stays_pure(denoiser):
    """for_run makes new terms each time (SLD-like state resets); the original guider never holds a run."""
    positive, negative = conditions()
    sigmas = get_sigmas("karras", denoiser, 4)
    guider = CFGGuider(denoiser, positive, negative, scale=3.0, guidance=[Recorder])
    runs = [guider.for_run(sigmas) for _ in range(2)]
    with torch.no_grad():
        for run in runs:
            sample("heun", run, latent() * float(sigmas[0]), sigmas)
    first, second = (run._run.terms[0] for run in runs)
    assert first is not second and first.calls == second.calls == 7  # heun: 2 calls per step, 1 on the last
    assert [s.step for s in first.states] == [0, 1, 1, 2, 2, 3, 3]  # the corrector at sigmas[i+1]
    assert guider._run is None


def test_a_guider_called_directly_starts_a_new_run_when_sigma_rises(denoiser):
    """Without for_run the guider makes fresh terms itself at the first call and when sigma goes up again."""
    positive, negative = conditions()
    sigmas = get_sigmas("karras", denoiser, 3)
    Recorder.made = 0
    guider = CFGGuider(denoiser, positive, negative, scale=3.0, guidance=[Recorder])
    with torch.no_grad():
        sample("euler", guider, latent() * float(sigmas[0]), sigmas)
        term = guider._run.terms[0]
        assert term.calls == 3 and [s.step for s in term.states] == [0, 1, 2]
        sample("euler", guider, latent() * float(sigmas[0]), sigmas)
    assert guider._run.terms[0] is not term and guider._run.terms[0].calls == 3 and Recorder.made == 2


def test_guidance_must_be_factories_not_terms(denoiser):
    """A term object in `guidance` (shared state across runs) is refused with the fix."""
    positive, negative = conditions()
    with pytest.raises(SamplingError, match=r"guidance\[0\]: expected a zero-argument factory"):
        CFGGuider(denoiser, positive, negative, guidance=[Recorder()])
    with pytest.raises(SamplingError, match="returning a GuidanceTerm"):
        CFGGuider(denoiser, positive, negative, guidance=[lambda: "not a term"]).make_terms()


# --- PAG ----------------------------------------------------------------------------------------


def test_pag_with_scale_zero_equals_plain_cfg_exactly(denoiser):
    """PAG scale 0 returns no correction and makes no extra model call: bitwise plain CFG."""
    positive, negative = conditions()
    x, sigma = latent(), torch.tensor([3.0, 3.0])
    with torch.no_grad():
        plain = CFGGuider(denoiser, positive, negative, scale=5.0)(x, sigma)
        pag0 = CFGGuider(denoiser, positive, negative, scale=5.0,
                         guidance=[functools.partial(PerturbedAttentionGuidance, scale=0.0)])(x, sigma)
    assert torch.equal(pag0, plain)


def test_pag_adds_scale_times_positive_minus_identity_attention_prediction(unet, denoiser):
    """CFG + PAG = CFG + s (D_pos - D with identity self-attention in the middle block), with or without CFG."""
    positive, negative = conditions()
    x, sigma = latent(), torch.tensor([3.0, 3.0])
    identity = AttentionPatch(name="identity", processor=lambda q, k, v, call, attend: v, targets=("middle_block",))
    with torch.no_grad():
        d_pos = denoiser(x, sigma, **positive)
        d_perturbed = denoiser(x, sigma, **positive, patches=(identity,))
        for cfg in (5.0, 1.0):
            plain = CFGGuider(denoiser, positive, negative, scale=cfg)(x, sigma)
            guided = CFGGuider(denoiser, positive, negative, scale=cfg,
                               guidance=[functools.partial(PerturbedAttentionGuidance, scale=2.0)])(x, sigma)
            assert torch.allclose(guided, plain + 2.0 * (d_pos - d_perturbed), atol=1e-5)
    assert not torch.allclose(d_pos, d_perturbed, atol=1e-3)
    assert unet.model_patches == ()


def test_pag_refuses_blocks_without_self_attention(unet, denoiser):
    """check_model names the term and the blocks that do have attention."""
    positive, negative = conditions()
    guider = CFGGuider(denoiser, positive, negative,
                       guidance=[functools.partial(PerturbedAttentionGuidance, blocks="input_blocks.0")])
    with pytest.raises(SamplingError, match=r"guidance\[0\].*no attention module under 'input_blocks.0'"):
        guider.check_model(unet)


# --- SAG ----------------------------------------------------------------------------------------


def test_sag_mask_marks_the_key_tokens_that_receive_most_attention():
    """Every query attending to token 5 of a 4x4 grid marks exactly that cell (upsampled 2x)."""
    attention = torch.zeros(1, 2, 16, 16)
    attention[..., 5] = 1.0
    mask = sag_mask(attention, (4, 4), (8, 8))
    expected = torch.zeros(1, 1, 4, 4)
    expected[0, 0, 1, 1] = 1.0
    assert torch.equal(mask, expected.repeat_interleave(2, -1).repeat_interleave(2, -2))


def test_sag_degrade_and_correction_follow_the_eps_form():
    """Degraded x = mask·blur(D) + (1-mask)·D + sigma·eps, and the correction is -sigma s (eps_ref - eps_deg)."""
    generator = torch.Generator().manual_seed(0)
    x, denoised = torch.randn(2, 4, 8, 8, generator=generator), torch.randn(2, 4, 8, 8, generator=generator)
    sigma = torch.tensor([2.0, 0.5])
    mask = (torch.rand(2, 1, 8, 8, generator=generator) > 0.5).float()
    x_degraded, x0_degraded = sag_degrade(x, sigma, denoised, mask, 1.0)
    s = sigma.reshape(-1, 1, 1, 1)
    assert torch.allclose(x0_degraded, mask * gaussian_blur(denoised, 1.0) + (1 - mask) * denoised)
    assert torch.allclose(x_degraded - x0_degraded, x - denoised, atol=1e-6)  # same noise sigma·eps
    d_degraded = torch.randn(2, 4, 8, 8, generator=generator)
    correction = sag_correction(x, sigma, denoised, x_degraded, d_degraded, 0.75)
    assert torch.allclose(correction, 0.75 * (x0_degraded - d_degraded), atol=1e-5)
    flat = torch.full((1, 1, 9, 9), 0.3)
    assert torch.allclose(gaussian_blur(flat, 2.0), flat)


def test_sag_reads_the_map_of_the_cfg_call_and_makes_one_extra_call(denoiser):
    """SAG records the middle-block map during the CFG call (batch 2B) and evaluates the degraded latent once."""
    positive, negative = conditions()
    calls = []

    def counting(x, sigma, **cond):
        calls.append(x.shape[0])
        return denoiser(x, sigma, **cond)

    for attribute in ("sigma_min", "sigma_max", "sigmas"):
        setattr(counting, attribute, getattr(denoiser, attribute))
    x, sigma = latent(), torch.tensor([3.0, 3.0])
    with torch.no_grad():
        plain = CFGGuider(denoiser, positive, negative, scale=5.0)(x, sigma)
        guided = CFGGuider(counting, positive, negative, scale=5.0,
                           guidance=[functools.partial(SelfAttentionGuidance, scale=0.75)])(x, sigma)
    assert calls == [4, 2]
    assert not torch.allclose(guided, plain, atol=1e-4)
    with torch.no_grad():
        off = CFGGuider(denoiser, positive, negative, scale=5.0,
                        guidance=[functools.partial(SelfAttentionGuidance, scale=0.0)])(x, sigma)
    assert torch.equal(off, plain)


# --- classifier guidance -------------------------------------------------------------------------


def test_classifier_correction_is_the_posterior_variance_times_the_gradient():
    """s · sd² σ² / (sd² + σ²) · ∇_D log p, computed by DenoisedClassifierGuidance from a quadratic log p."""
    target = torch.full((2, 4, 8, 8), 0.5)
    term = DenoisedClassifierGuidance(lambda images: -((images - target) ** 2).sum(dim=(1, 2, 3)), scale=3.0)
    denoised = torch.zeros(2, 4, 8, 8)
    sigma = torch.tensor([0.1, 10.0])
    state = GuidanceState(x=denoised, sigma=sigma, denoised=denoised, denoised_positive=denoised,
                          denoised_negative=None, scale=1.0, step=0, sigmas=None, positive={}, negative=None,
                          shared={}, evaluate=lambda **kwargs: denoised)
    correction = term(state)
    expected = classifier_correction(2 * (target - denoised), sigma, 3.0)
    assert torch.allclose(correction, expected)
    variance = posterior_variance(sigma, 1.0)
    assert torch.allclose(correction[:, 0, 0, 0], 3.0 * variance * 1.0)
    assert float(variance[0]) < 0.01 and float(variance[1]) > 0.99


def test_world_colour_classifier_agrees_with_the_detector_on_renders():
    """The differentiable colour classifier names the rendered object's colour (argmax) for 40 random scenes."""
    import random

    from nodes.training import world
    from nodes.training.world_guidance import COLOUR_NAMES, colour_probabilities

    rng = random.Random(0)
    scenes = [world.sample_scene(rng) for _ in range(40)]
    images = torch.stack([torch.from_numpy(world.render(s)).permute(2, 0, 1).float() / 127.5 - 1 for s in scenes])
    predicted = colour_probabilities(images).argmax(dim=1)
    right = sum(COLOUR_NAMES[int(p)] == s.objects[0].colour for p, s in zip(predicted, scenes))
    assert right >= 38


# --- GUIDANCE through graphs ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    from tests.models.conftest import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("models"))


def link(node, output):
    return {"node": node, "output": output}


def guided_graph(pag: float, sag: float, via_guider: bool = False, blocks: str = "middle_block") -> dict:
    nodes = {
        "ckpt": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny.safetensors"}},
        "pos": {"type": "EncodeText", "inputs": {"text_encoder": link("ckpt", "text_encoder"), "text": "a red ring"}},
        "neg": {"type": "EncodeText", "inputs": {"text_encoder": link("ckpt", "text_encoder"), "text": ""}},
        "empty": {"type": "EmptyLatent", "inputs": {"width": 32, "height": 32, "batch_size": 2}},
        "pag": {"type": "PerturbedAttentionGuidance", "inputs": {"scale": pag, "blocks": blocks}},
        "sag": {"type": "SelfAttentionGuidance", "inputs": {"guidance": link("pag", "guidance"), "scale": sag}},
    }
    if via_guider:
        nodes.update({
            "guider": {"type": "CFGGuider", "inputs": {"model": link("ckpt", "model"), "positive": link("pos", "conditioning"),
                                                       "negative": link("neg", "conditioning"), "cfg": 4.0,
                                                       "guidance": link("sag", "guidance")}},
            "sampler": {"type": "SelectSampler", "inputs": {"sampler": "euler"}},
            "sigmas": {"type": "Schedule", "inputs": {"model": link("ckpt", "model"), "steps": 3}},
            "noise": {"type": "RandomNoise", "inputs": {"seed": 5}},
            "k": {"type": "Sample", "inputs": {"guider": link("guider", "guider"), "sampler": link("sampler", "sampler"),
                                               "sigmas": link("sigmas", "sigmas"), "noise": link("noise", "noise"),
                                               "latent": link("empty", "latent")}},
        })
    else:
        nodes["k"] = {"type": "KSampler", "inputs": {
            "model": link("ckpt", "model"), "positive": link("pos", "conditioning"),
            "negative": link("neg", "conditioning"), "latent": link("empty", "latent"), "seed": 5, "steps": 3,
            "cfg": 4.0, "sampler": "euler", "scheduler": "karras", "guidance": link("sag", "guidance")}}
    return {"format_version": 1, "nodes": nodes}


@pytest.fixture
def session(models_dir, tmp_path):
    return Session(model_paths=ModelPaths(roots=[models_dir]), output_dir=tmp_path)


def test_guidance_nodes_stack_in_order_and_reach_ksampler_and_cfg_guider(session):
    """PAG then SAG gives two factories in that order; both scales 0 equal no guidance; on, the result changes."""
    stacked = session.run(guided_graph(1.0, 0.5), outputs=["sag"]).outputs["sag"]["guidance"]
    assert [f.func.__name__ for f in stacked] == ["PerturbedAttentionGuidance", "SelfAttentionGuidance"]
    for via_guider in (False, True):
        off = session.run(guided_graph(0.0, 0.0, via_guider), outputs=["k"]).outputs["k"]["latent"]["samples"]
        on = session.run(guided_graph(2.0, 0.75, via_guider), outputs=["k"]).outputs["k"]["latent"]["samples"]
        graph = guided_graph(0.0, 0.0, via_guider)
        graph["nodes"]["k"]["inputs"].pop("guidance") if not via_guider else graph["nodes"]["guider"]["inputs"].pop(
            "guidance")
        plain = session.run(graph, outputs=["k"]).outputs["k"]["latent"]["samples"]
        assert torch.equal(off, plain)
        assert not torch.allclose(on, plain, atol=1e-4)


def test_guidance_blocks_that_do_not_exist_fail_before_sampling_naming_the_input(session):
    """A PAG block without attention fails at KSampler / CFGGuider on the `guidance` input, with valid keys."""
    for via_guider in (False, True):
        with pytest.raises(NodeExecutionError) as failure:
            session.run(guided_graph(1.0, 0.0, via_guider, blocks="output_blocks.99"), outputs=["k"])
        message = str(failure.value)
        assert "guidance" in message and "no attention module under 'output_blocks.99'" in message


def test_the_documented_guidance_term_example_stacks_and_guides(models_dir, tmp_path):
    """docs/plugins.md's TowardsMeanGuidance node: scale 0 samples exactly as without it, scale 0.1 changes the result."""
    import re
    from pathlib import Path

    from nodegraph import hookimpl

    docs = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", docs, re.DOTALL) if "class TowardsMean(" in b]
    namespace: dict = {}
    exec(compile(block, "docs/plugins.md", "exec"), namespace)

    class Plugin:
        @hookimpl
        def register_nodes(self):
            return [namespace["TowardsMeanGuidance"]]

    session = Session(plugins=[("toy", Plugin())], model_paths=ModelPaths(roots=[models_dir]), output_dir=tmp_path)
    results = []
    for scale in (0.0, 0.1):
        graph = guided_graph(0.0, 0.0)
        graph["nodes"]["toy"] = {"type": "TowardsMeanGuidance", "inputs": {"guidance": link("sag", "guidance"),
                                                                           "scale": scale}}
        graph["nodes"]["k"]["inputs"]["guidance"] = link("toy", "guidance")
        results.append(session.run(graph, outputs=["k"]).outputs["k"]["latent"]["samples"])
    plain = guided_graph(0.0, 0.0)
    plain["nodes"]["k"]["inputs"].pop("guidance")
    expected = session.run(plain, outputs=["k"]).outputs["k"]["latent"]["samples"]
    assert torch.equal(results[0], expected) and not torch.allclose(results[1], expected, atol=1e-4)
