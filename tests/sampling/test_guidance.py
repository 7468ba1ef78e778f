"""Classifier-free guidance, CFG rescale, the sigma interval, guidance terms and conditioning batches."""

from __future__ import annotations

import math

import pytest
import torch

from nodes.sampling.denoisers import DiscreteTimeMap, ModelDenoiser
from nodes.sampling.errors import SamplingError
from nodes.sampling.guidance import CFGGuider, classifier_guidance
from nodes.sampling.noise import seeded_noise
from nodes.sampling.samplers import sample_euler
from nodes.sampling.schedules import alphas_cumprod_from_betas, get_sigmas, scaled_linear_betas

from .reference_models import CallCounter, GaussianData, TinyEpsNet

SD_MAP = DiscreteTimeMap(alphas_cumprod_from_betas(scaled_linear_betas()))
POSITIVE = {"context": torch.randn(1, 5, 16, generator=torch.Generator().manual_seed(1)),
            "pooled": torch.randn(1, 16, generator=torch.Generator().manual_seed(2))}
NEGATIVE = {"context": torch.zeros(1, 5, 16), "pooled": torch.zeros(1, 16)}


def _model(prediction="eps"):
    return CallCounter(ModelDenoiser(TinyEpsNet(channels=3), SD_MAP, prediction))


def _latent(batch=2):
    return seeded_noise((batch, 3, 4, 4), seed=0) * 3.0


SIGMA = torch.tensor([3.0, 3.0])


def test_scale_one_equals_the_conditional_denoiser_in_one_call():
    """scale=1 returns the positive branch exactly, with one model call of batch B."""
    model, x = _model(), _latent()
    guided = CFGGuider(model, POSITIVE, NEGATIVE, scale=1.0)(x, SIGMA)
    assert torch.equal(guided, model.model(x, SIGMA, **POSITIVE))
    assert [batch for batch, _ in model.calls] == [2]  # model.model bypasses the counter


def test_scale_zero_equals_the_unconditional_denoiser():
    """scale=0 returns the negative branch, from one model call of batch B (the positive one is not needed)."""
    model, x = _model(), _latent()
    guided = CFGGuider(model, POSITIVE, NEGATIVE, scale=0.0)(x, SIGMA)
    assert torch.allclose(guided, model.model(x, SIGMA, **NEGATIVE), atol=1e-6)
    assert [batch for batch, _ in model.calls] == [2]
    rescaled = _model()      # CFG rescale reads the positive branch: both run
    CFGGuider(rescaled, POSITIVE, NEGATIVE, scale=0.0, rescale=0.5)(x, SIGMA)
    assert [batch for batch, _ in rescaled.calls] == [4]


def test_cfg_is_uncond_plus_scale_times_difference_in_one_batched_call():
    """Guided = uncond + s (cond - uncond), computed with one model call on the concatenated batch 2B."""
    model, x = _model(), _latent()
    guided = CFGGuider(model, POSITIVE, NEGATIVE, scale=6.0)(x, SIGMA)
    assert [batch for batch, _ in model.calls] == [4]
    cond, uncond = model.model(x, SIGMA, **POSITIVE), model.model(x, SIGMA, **NEGATIVE)
    assert torch.allclose(guided, uncond + 6.0 * (cond - uncond), atol=1e-5)


def test_sampler_makes_one_model_call_per_step_through_the_guider():
    """A 5-step Euler run through the guider makes exactly 5 model calls, each on batch 2B."""
    model = _model()
    sample_euler(CFGGuider(model, POSITIVE, NEGATIVE, scale=5.0), _latent() * 5, get_sigmas("karras", SD_MAP, 5))
    assert [batch for batch, _ in model.calls] == [4] * 5


def test_rescale_zero_is_a_no_op():
    """rescale (phi) = 0 gives bitwise the plain CFG result."""
    x = _latent()
    plain = CFGGuider(_model(), POSITIVE, NEGATIVE, scale=7.0)(x, SIGMA)
    assert torch.equal(CFGGuider(_model(), POSITIVE, NEGATIVE, scale=7.0, rescale=0.0)(x, SIGMA), plain)


@pytest.mark.parity
def test_rescale_matches_diffusers_rescale_noise_cfg_for_a_v_model():
    """For a v-prediction model our rescale equals diffusers' rescale_noise_cfg applied to v (Lin et al. 2023)."""
    pytest.importorskip("diffusers")
    from diffusers.guiders.guider_utils import rescale_noise_cfg  # same function as in the SD pipeline, lighter import

    net, x, phi, scale = TinyEpsNet(channels=3), _latent(), 0.7, 7.0
    denoiser = ModelDenoiser(net, SD_MAP, "v")
    guided = CFGGuider(denoiser, POSITIVE, NEGATIVE, scale=scale, rescale=phi)(x, SIGMA)

    sigma = SIGMA.reshape(-1, 1, 1, 1)
    x_in, t = x / torch.sqrt(1 + sigma**2), SD_MAP.sigma_to_t(SIGMA)
    v_cond, v_uncond = net(x_in, t, **POSITIVE), net(x_in, t, **NEGATIVE)
    v_final = rescale_noise_cfg(v_uncond + scale * (v_cond - v_uncond), v_cond, guidance_rescale=phi)
    expected = x / (1 + sigma**2) - sigma / torch.sqrt(1 + sigma**2) * v_final  # v scalings: D = c_skip x + c_out v
    assert torch.allclose(guided, expected, atol=1e-5)
    assert not torch.allclose(guided, CFGGuider(denoiser, POSITIVE, NEGATIVE, scale=scale)(x, SIGMA), atol=1e-3)


def test_cfg_outside_the_sigma_range_runs_only_the_positive_branch():
    """Outside cfg_sigma_range the guider returns the positive branch from one call of batch B; inside it guides."""
    model, x = _model(), _latent()
    guider = CFGGuider(model, POSITIVE, NEGATIVE, scale=5.0, cfg_sigma_range=(1.0, 5.0))
    outside = guider(x, torch.tensor([8.0, 8.0]))
    assert model.calls[-1][0] == 2
    assert torch.equal(outside, model.model(x, torch.tensor([8.0, 8.0]), **POSITIVE))
    guider(x, SIGMA)
    assert model.calls[-1][0] == 4
    guider(x, torch.tensor([0.5, 0.5]))
    assert model.calls[-1][0] == 2


def test_batch_one_conditioning_broadcasts_to_the_latent_batch():
    """Conditioning of batch 1 is used for every latent: same as passing it repeated to batch B."""
    x = _latent(batch=3)
    repeated = {k: v.expand(3, *v.shape[1:]) for k, v in POSITIVE.items()}
    negative = {k: v.expand(3, *v.shape[1:]) for k, v in NEGATIVE.items()}
    sigma = torch.tensor([3.0, 3.0, 3.0])
    assert torch.allclose(CFGGuider(_model(), POSITIVE, NEGATIVE, 4.0)(x, sigma),
                          CFGGuider(_model(), repeated, negative, 4.0)(x, sigma), atol=1e-6)


def test_conditioning_batch_mismatch_raises_before_any_model_call():
    """A conditioning batch that is neither 1 nor the latent batch raises SamplingError and calls no model."""
    model = _model()
    positive = {"context": torch.randn(2, 5, 16), "pooled": torch.randn(2, 16)}
    guider = CFGGuider(model, positive, NEGATIVE, 4.0)
    with pytest.raises(SamplingError, match=r"positive\['context'\]: expected batch 1 or 3 \(the latent batch\)"):
        sample_euler(guider, _latent(batch=3), get_sigmas("karras", SD_MAP, 3))
    assert model.calls == []


def test_branches_with_different_token_lengths_fall_back_to_two_calls():
    """Positive with 10 tokens and negative with 5 cannot share a batch: two calls, same CFG formula."""
    model, x = _model(), _latent()
    positive = {"context": torch.randn(1, 10, 16), "pooled": POSITIVE["pooled"]}
    guided = CFGGuider(model, positive, NEGATIVE, scale=3.0)(x, SIGMA)
    assert [batch for batch, _ in model.calls] == [2, 2]
    cond, uncond = model.model(x, SIGMA, **positive), model.model(x, SIGMA, **NEGATIVE)
    assert torch.allclose(guided, uncond + 3.0 * (cond - uncond), atol=1e-5)


def test_conditioning_key_mismatch_and_missing_negative_are_rejected():
    """Different keys in the branches, or no negative with scale != 1, raise SamplingError."""
    with pytest.raises(SamplingError, match="same conditioning keys"):
        CFGGuider(_model(), POSITIVE, {"context": NEGATIVE["context"]}, 4.0)
    with pytest.raises(SamplingError, match="negative: expected negative conditioning"):
        CFGGuider(_model(), POSITIVE, None, 4.0)
    with pytest.raises(SamplingError, match=r"positive\['pooled'\]: expected a tensor with a batch dimension"):
        CFGGuider(_model(), {"context": POSITIVE["context"], "pooled": 1.0}, None, 1.0)


def test_guidance_term_is_added_in_denoised_units():
    """A term returning a constant c shifts the guided denoised estimate by exactly c; terms sum."""
    model, x = _model(), _latent()
    plain = CFGGuider(model, POSITIVE, NEGATIVE, scale=2.0)(x, SIGMA)
    shifted = CFGGuider(model, POSITIVE, NEGATIVE, scale=2.0, terms=[
        lambda x, sigma, denoised: torch.full_like(denoised, 0.25),
        lambda x, sigma, denoised: torch.full_like(denoised, -0.05)])(x, SIGMA)
    assert torch.allclose(shifted - plain, torch.full_like(plain, 0.2), atol=1e-6)


def test_classifier_guidance_term_gives_the_exact_conditional_denoiser():
    """With the exact likelihood of a noisy observation y = x0 + n, D + sigma² ∇log p(y|x) is E[x0 | x, y]."""
    data, noise_y = GaussianData(mean=0.6, std=0.5), 0.3
    y = torch.full((2, 6), 1.4, dtype=torch.float64)

    def log_likelihood(x, sigma):
        s = sigma.reshape(-1, 1)
        posterior_variance = data.std**2 * s**2 / (data.std**2 + s**2)  # Var[x0 | x_sigma]
        return (-0.5 * (y - data.denoiser(x, sigma)) ** 2 / (posterior_variance + noise_y**2)).sum(dim=1)

    guider = CFGGuider(data.denoiser, {}, None, scale=1.0, terms=[classifier_guidance(log_likelihood, scale=1.0)])
    x = torch.randn(2, 6, dtype=torch.float64) * 2
    sigma = torch.tensor([0.7, 2.5], dtype=torch.float64)
    prior_mean = data.denoiser(x, sigma)
    variance = (data.std**2 * sigma**2 / (data.std**2 + sigma**2)).reshape(-1, 1)
    expected = prior_mean + variance / (variance + noise_y**2) * (y - prior_mean)
    assert torch.allclose(guider(x, sigma), expected, atol=1e-10)


def test_guider_exposes_the_model_sigma_mapping():
    """A guider wrapping an adapter can build schedules (sigma_min/max, sigma<->t delegate to the model)."""
    guider = CFGGuider(ModelDenoiser(TinyEpsNet(channels=3), SD_MAP), POSITIVE, NEGATIVE, 5.0)
    assert torch.equal(get_sigmas("normal", guider, 8), get_sigmas("normal", SD_MAP, 8))
    assert math.isclose(guider.sigma_max, SD_MAP.sigma_max)


def test_invalid_guidance_parameters_are_rejected():
    """rescale outside [0, 1], a reversed sigma range or a non-finite scale raise SamplingError."""
    for kwargs, pattern in (({"rescale": 1.5}, "rescale"), ({"cfg_sigma_range": (5.0, 1.0)}, "cfg_sigma_range"),
                            ({"scale": math.nan}, "scale")):
        with pytest.raises(SamplingError, match=pattern):
            CFGGuider(_model(), POSITIVE, NEGATIVE, **{"scale": 5.0, **kwargs})
