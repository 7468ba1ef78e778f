"""Steps too uneven for a higher-order update are taken at first order (samplers.py, "steps too uneven").

Flow models seen in the VE view start at sigma 9999 (t = 1) and their `normal` schedule ends at t ~ 1e-3,
so the first step falls by a factor of ~500 and the last by ~50-170: Heun's trapezoid, LMS, UniC and the
DPM-Solver++(2M) extrapolation multiplied the change of the denoised estimate across such steps by
hundreds and drew colour smears on the shipped flow model (an outside check: heun gave 0 % right). The rules
apply to flow models only (`uneven_step_guards`, on when the sampling MODEL predicts "flow"): eps / v schedules
reach such ratios too (karras at 2 steps, `normal` near its end) and must stay diffusers' / k-diffusion's samplers.
"""

from __future__ import annotations

import pytest
import torch

from nodegraph import Session
from nodes.sampling.samplers import (MAX_HIGHER_ORDER_RATIO, SAMPLER_STEPS, history_usable,
                                     too_uneven_for_higher_order, uneven_step_guards)
from nodes.training import world_detector

torch.set_num_threads(1)


@pytest.fixture
def guarded():
    """The rules on, as for a flow model's sampling."""
    with uneven_step_guards(True):
        yield


def jumping_denoiser(high: float, low: float, boundary: float = 1000.0):
    """D(x, sigma) = `high` above `boundary`, `low` below: an estimate that changes across one big step."""
    def denoiser(x, sigma, **extra):
        return torch.full_like(x, high if float(sigma[0]) > boundary else low)
    return denoiser


def test_the_bounds(guarded):
    assert too_uneven_for_higher_order(9999.0, 18.0) and not too_uneven_for_higher_order(14.6, 3.16)
    assert not too_uneven_for_higher_order(0.05, 0.0)               # the last step to 0 has its own rule
    assert not too_uneven_for_higher_order(MAX_HIGHER_ORDER_RATIO, 1.0)
    sigmas = [14.6, 6.0, 2.5, 1.3, 0.0]                              # karras-like: usable history
    assert not history_usable(sigmas, 0) and history_usable(sigmas, 1) and history_usable(sigmas, 2)
    assert not history_usable([2.0, 1.0, 0.001, 0.0], 1)           # h: 0.69 then 6.9: too short to extrapolate


@pytest.mark.parametrize("name", ["heun", "lms"])
def test_a_huge_step_is_the_exact_first_order_step(name, guarded):
    """Across 9999 -> 18 the result is lerp(D, x, 18/9999) (what Euler / DDIM give), not a trapezoid over
    the jump of the estimate (which put x ~277 (D_high - D_low) away)."""
    x = torch.randn(2, 8, generator=torch.Generator().manual_seed(0)) * 9999.0
    sigmas = [9999.0, 18.0, 8.5, 0.0]
    result = SAMPLER_STEPS[name](jumping_denoiser(0.3, -0.4), x, sigmas, 0, {}, {}, None)
    assert torch.allclose(result.x, torch.lerp(torch.full_like(x, 0.3), x, 18.0 / 9999.0), atol=1e-4)


def test_an_ordinary_step_keeps_the_second_order_correction():
    x = torch.randn(2, 8, generator=torch.Generator().manual_seed(0)) * 14.6
    sigmas = [14.6, 3.16, 0.45, 0.0]
    result = SAMPLER_STEPS["heun"](jumping_denoiser(0.3, -0.4, boundary=5.0), x, sigmas, 0, {}, {}, None)
    euler = torch.lerp(torch.full_like(x, 0.3), x, 3.16 / 14.6)
    assert not torch.allclose(result.x, euler, atol=1e-3)


def test_dpmpp_2m_does_not_extrapolate_into_a_much_longer_step(guarded):
    """Step 0.168 -> 0.001 after 0.4 -> 0.168 (r = 0.17): first order, not 3.9 D - 2.9 D_prev."""
    x = torch.randn(1, 8, generator=torch.Generator().manual_seed(1))
    sigmas = [0.4, 0.168, 0.001, 0.0]
    previous = torch.full_like(x, 0.9)
    result = SAMPLER_STEPS["dpmpp_2m"](jumping_denoiser(0.0, 0.2), x, sigmas, 1, {"previous_denoised": previous},
                                       {}, None)
    assert torch.allclose(result.x, torch.lerp(torch.full_like(x, 0.2), x, 0.001 / 0.168), atol=1e-6)


def test_outside_a_flow_model_the_samplers_are_the_references_own():
    """A sampling researcher's finding: on SD schedules the rules changed dpmpp_2m / unipc (`normal`, ComfyUI's
    default: 1e-2 relative) and heun (karras at 2 steps: 1.35) against k-diffusion and diffusers. Without the
    guards a huge step keeps its second-order update and the history is used as k-diffusion uses it."""
    assert not too_uneven_for_higher_order(9999.0, 18.0)
    assert history_usable([2.0, 1.0, 0.001, 0.0], 1) and not history_usable([2.0, 1.0, 0.0], 1)
    x = torch.randn(1, 8, generator=torch.Generator().manual_seed(1))
    sigmas = [0.4, 0.168, 0.001, 0.0]
    previous = torch.full_like(x, 0.9)
    result = SAMPLER_STEPS["dpmpp_2m"](jumping_denoiser(0.0, 0.2), x, sigmas, 1, {"previous_denoised": previous},
                                       {}, None)
    assert not torch.allclose(result.x, torch.lerp(torch.full_like(x, 0.2), x, 0.001 / 0.168), atol=1e-3)


def test_dpmpp_2m_on_the_normal_schedule_matches_k_diffusions_formula():
    """k-diffusion's sample_dpmpp_2m written out, on the SD table's `normal` schedule (where the history rule
    used to fire): the same to float precision."""
    import math

    from nodes.sampling.denoisers import DiscreteTimeMap, ModelDenoiser
    from nodes.sampling.samplers import SAMPLERS
    from nodes.sampling.schedules import alphas_cumprod_from_betas, get_sigmas, scaled_linear_betas

    def net(x_in, t, **cond):
        return torch.sin(x_in * 0.7 + t[:, None] * 1e-3)

    model = ModelDenoiser(net, DiscreteTimeMap(alphas_cumprod_from_betas(scaled_linear_betas())), "eps")
    sigmas = get_sigmas("normal", model, 20)
    x0 = torch.randn(1, 16, generator=torch.Generator().manual_seed(0)) * float(sigmas[0])
    ours = SAMPLERS["dpmpp_2m"](model, x0.clone(), sigmas)
    x, old = x0.clone(), None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * torch.ones(1))
        t, t_next = -math.log(float(sigmas[i])), (-math.log(float(sigmas[i + 1])) if sigmas[i + 1] > 0 else None)
        if old is None or sigmas[i + 1] == 0:
            x = denoised if sigmas[i + 1] == 0 else (float(sigmas[i + 1]) / float(sigmas[i])) * x \
                - math.expm1(-(t_next - t)) * denoised
        else:
            h, h_last = t_next - t, t - (-math.log(float(sigmas[i - 1])))
            r = h_last / h
            d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old
            x = (float(sigmas[i + 1]) / float(sigmas[i])) * x - math.expm1(-h) * d
        old = denoised
    assert torch.allclose(ours, x, rtol=1e-5, atol=1e-5), float((ours - x).abs().max())


FLOW_GRAPH = "graphs/txt2img_flow.json"


@pytest.mark.parametrize("sampler", ["heun", "lms", "unipc", "dpmpp_2m", "dpmpp_2m_sde", "euler"])
def test_every_sampler_draws_the_prompt_on_the_shipped_flow_model(sampler, tmp_path):
    """graphs/txt2img_flow.json with only the sampler changed (as a user would) draws what it asks: a small red
    circle on the left, on a blue background (heun drew a full-frame smear before)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    session = Session(output_dir=tmp_path)
    result = session.run(root / FLOW_GRAPH, overrides={"sampler.sampler": sampler, "sampler.cfg": 3.0},
                         outputs=["decode"])
    found = world_detector.detect(result.outputs["decode"]["image"][0])
    assert found.background == "blue" and found.objects, (sampler, found)
    assert (found.objects[0].colour, found.objects[0].shape) == ("red", "circle"), (sampler, found)
