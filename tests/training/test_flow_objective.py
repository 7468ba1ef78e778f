"""The rectified-flow objective as pure functions: targets, time sampling, DiT initialisation, batches."""

from __future__ import annotations

import math

import pytest
import torch

from nodes.models.mmdit import MMDiT, MMDiTConfig
from nodes.sampling.denoisers import FlowTimeMap, ModelDenoiser
from nodes.training.flow import (FlowData, flow_batch, flow_targets, init_mmdit_weights, logit_normal_density,
                                 sample_flow_times)
from nodes.training.trainer import TrainConfig


def test_flow_targets_interpolate_data_and_noise_with_constant_velocity():
    """x_t runs in a straight line from x0 (t = 0) to the noise (t = 1) and v is its time derivative."""
    x0, noise = torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8)
    x_start, v = flow_targets(x0, noise, torch.zeros(3))
    x_end, _ = flow_targets(x0, noise, torch.ones(3))
    assert torch.equal(x_start, x0) and torch.equal(x_end, noise)
    assert torch.allclose(v, noise - x0)
    t, h = torch.tensor([0.2, 0.5, 0.9]), 1e-3
    ahead, _ = flow_targets(x0, noise, t + h)
    behind, _ = flow_targets(x0, noise, t - h)
    assert torch.allclose((ahead - behind) / (2 * h), v, atol=1e-3)


def test_velocity_target_gives_back_the_clean_latent_through_the_sampling_adapter():
    """A net that returns the exact training target makes the sampler's flow denoiser return x0 (train = sample)."""
    x0, noise = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    time_map = FlowTimeMap(shift=3.0)
    for t_value in (0.1, 0.5, 0.95):
        t = torch.full((2,), t_value)
        x_t, v = flow_targets(x0, noise, t)

        def oracle(x_in, net_time, **cond):
            seen_t = net_time.reshape(-1)[0] / 1000.0
            assert torch.allclose(x_in, x_t, atol=1e-5)          # the adapter feeds the net exactly x_t
            assert math.isclose(float(seen_t), t_value, rel_tol=1e-5)   # ... at time 1000 t
            return v

        denoiser = ModelDenoiser(oracle, time_map, prediction="flow")
        sigma = torch.tensor(t_value / (1 - t_value))               # the VE view: x = x_t / (1 - t)
        denoised = denoiser(x_t / (1 - t_value), sigma.expand(2))
        assert torch.allclose(denoised, x0, atol=1e-4)


def test_flow_targets_reject_mismatched_shapes():
    """One time per batch item and noise of the latents' shape, else a ValueError naming the argument."""
    with pytest.raises(ValueError, match="t:"):
        flow_targets(torch.zeros(2, 4, 2, 2), torch.zeros(2, 4, 2, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="noise:"):
        flow_targets(torch.zeros(2, 4, 2, 2), torch.zeros(2, 4, 2, 3), torch.zeros(2))


def test_logit_normal_times_have_normal_logits_and_match_the_density():
    """sigmoid(N(m, s²)) samples: logits have mean m and std s; a histogram follows logit_normal_density."""
    generator = torch.Generator().manual_seed(0)
    t = sample_flow_times(200_000, generator, "logit_normal", mean=0.5, std=0.8)
    assert float(t.min()) > 0 and float(t.max()) < 1
    logits = torch.log(t) - torch.log1p(-t)
    assert float(logits.mean()) == pytest.approx(0.5, abs=0.01)
    assert float(logits.std()) == pytest.approx(0.8, abs=0.01)
    counts = torch.histc(t, bins=20, min=0.0, max=1.0) / len(t) / 0.05        # empirical density per bin
    centres = (torch.arange(20) + 0.5) / 20
    assert torch.allclose(counts, logit_normal_density(centres, 0.5, 0.8), rtol=0.12, atol=0.02)


def test_logit_normal_density_integrates_to_one():
    """The density of SD3 eq. 19 integrates to 1 over (0, 1)."""
    t = torch.linspace(1e-6, 1 - 1e-6, 400_001, dtype=torch.float64)
    assert float(torch.trapezoid(logit_normal_density(t, 0.0, 1.0), t)) == pytest.approx(1.0, abs=1e-4)


def test_uniform_times_and_unknown_distribution():
    """Uniform times cover (0, 1) evenly; an unknown distribution name is a ValueError naming it."""
    t = sample_flow_times(100_000, torch.Generator().manual_seed(1), "uniform")
    assert float(t.mean()) == pytest.approx(0.5, abs=0.01) and 0 < float(t.min()) and float(t.max()) < 1
    with pytest.raises(ValueError, match="distribution"):
        sample_flow_times(4, torch.Generator(), "cosine")


def test_adaln_zero_initialisation_makes_every_block_the_identity():
    """After init_mmdit_weights the blocks leave the image tokens unchanged and the output is exactly zero."""
    config = MMDiTConfig(depth=2, num_heads=2, head_dim=16, in_channels=4, out_channels=4, context_dim=8,
                         pooled_dim=8, pos_embed_max_size=8)
    mmdit = MMDiT(config)
    init_mmdit_weights(mmdit, torch.Generator().manual_seed(0))
    x, context, y = torch.randn(2, 4, 8, 8), torch.randn(2, 5, 8), torch.randn(2, 8)
    assert torch.equal(mmdit(x, torch.tensor([10.0, 900.0]), context=context, y=y), torch.zeros(2, 4, 8, 8))
    tokens = torch.randn(2, 16, config.hidden)
    c = torch.randn(2, config.hidden)
    _, out = mmdit.joint_blocks[0](mmdit.context_embedder(context), tokens, c)
    assert torch.equal(out, tokens)
    linear = mmdit.joint_blocks[0].x_block.attn.qkv.weight.detach()    # Xavier bound sqrt(6 / (fan_in + fan_out))
    assert float(linear.abs().max()) <= math.sqrt(6 / (config.hidden + 3 * config.hidden)) + 1e-6
    assert float(linear.std()) > 0


def _data(count: int = 16) -> FlowData:
    generator = torch.Generator().manual_seed(0)
    return FlowData(torch.randn(count, 4, 4, 4, generator=generator), torch.randn(count, 3, 8, generator=generator),
                    torch.randn(count, 8, generator=generator), torch.full((3, 8), 7.0), torch.full((8,), 7.0))


def test_flow_batch_is_a_pure_function_of_seed_and_step():
    """The same (seed, step, micro) gives identical tensors (exact resume); another step gives others."""
    data, config = _data(), TrainConfig(steps=10, batch_size=8, seed=3)
    first, again = flow_batch(data, config, 4, 0, 0.25), flow_batch(data, config, 4, 0, 0.25)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[1], flow_batch(data, config, 5, 0, 0.25)[1])


def test_caption_dropout_swaps_in_the_empty_prompt():
    """Dropout 1 gives only the empty prompt's conditioning; dropout 0 never does."""
    data, config = _data(), TrainConfig(steps=10, batch_size=8)
    _, _, _, context, y = flow_batch(data, config, 0, 0, caption_dropout=1.0)
    assert torch.equal(context, torch.full((8, 3, 8), 7.0)) and torch.equal(y, torch.full((8, 8), 7.0))
    _, _, _, context, y = flow_batch(data, config, 0, 0, caption_dropout=0.0)
    assert not (context == 7.0).all(dim=(1, 2)).any()


def test_flow_data_checks_its_shapes():
    """Counts and the empty prompt's shapes must agree, else a ValueError."""
    with pytest.raises(ValueError, match="same count"):
        FlowData(torch.zeros(4, 4, 2, 2), torch.zeros(3, 2, 8), torch.zeros(4, 8), torch.zeros(2, 8), torch.zeros(8))
    with pytest.raises(ValueError, match="empty_context"):
        FlowData(torch.zeros(4, 4, 2, 2), torch.zeros(4, 2, 8), torch.zeros(4, 8), torch.zeros(3, 8), torch.zeros(8))
