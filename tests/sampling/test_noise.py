"""Reproducibility: seeded CPU noise, the seed + k batch rule, interval-keyed noise samplers."""

from __future__ import annotations

import pytest
import torch

from nodes.sampling.errors import SamplingError
from nodes.sampling.noise import IntervalNoiseSampler, make_noise_sampler, seeded_noise
from nodes.sampling.samplers import SAMPLERS
from nodes.sampling.schedules import get_sigmas_karras

from .reference_models import GaussianData


def test_initial_noise_follows_the_diffusers_generator_convention():
    """Item k of seeded_noise is torch.randn(shape[1:]) from a CPU generator seeded with seed + k."""
    noise = seeded_noise((3, 4, 8, 8), seed=42)
    for k in range(3):
        expected = torch.randn((4, 8, 8), generator=torch.Generator().manual_seed(42 + k))
        assert torch.equal(noise[k], expected)


def test_batch_item_k_equals_single_item_with_seed_plus_k():
    """A full stochastic run on a batch gives, for item k, exactly the single-item run with seed + k."""
    data, sigmas = GaussianData(), get_sigmas_karras(8, 0.03, 14.6)
    batch = seeded_noise((3, 2, 4, 4), seed=7) * 14.6
    batched = SAMPLERS["euler_ancestral"](data.denoiser, batch, sigmas, noise_sampler=make_noise_sampler(batch, 100))
    for k in range(3):
        single = seeded_noise((1, 2, 4, 4), seed=7 + k) * 14.6
        alone = SAMPLERS["euler_ancestral"](data.denoiser, single, sigmas,
                                            noise_sampler=make_noise_sampler(single, 100 + k))
        assert torch.equal(batched[k:k + 1], alone)


def test_same_seed_gives_bitwise_identical_runs():
    """Two runs of every sampler with the same seeds are bitwise identical on CPU."""
    data, sigmas = GaussianData(), get_sigmas_karras(6, 0.03, 14.6)
    for name, sample in SAMPLERS.items():
        runs = []
        for _ in range(2):
            x = seeded_noise((2, 3, 4), seed=3) * 14.6
            runs.append(sample(data.denoiser, x, sigmas, noise_sampler=make_noise_sampler(x, 9)))
        assert torch.equal(runs[0], runs[1]), name


def test_different_seeds_and_intervals_give_independent_noise():
    """Noise differs across seeds and intervals and is standard normal (mean 0, std 1)."""
    sampler = IntervalNoiseSampler((1, 40_000), seed=1)
    first, second = sampler(2.0, 1.0), sampler(1.0, 0.5)
    other_seed = IntervalNoiseSampler((1, 40_000), seed=2)(2.0, 1.0)
    assert torch.equal(first, sampler(2.0, 1.0))  # pure function of the interval
    for a, b in ((first, second), (first, other_seed)):
        correlation = float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])
        assert abs(correlation) < 0.02  # 4 standard errors at n = 40,000
    assert abs(float(first.mean())) < 0.02 and abs(float(first.std()) - 1) < 0.02


def test_noise_is_moved_to_the_latent_dtype():
    """Noise is drawn in float32 on the CPU and cast to the latent's dtype."""
    x = torch.zeros(2, 3, dtype=torch.float64)
    noise = make_noise_sampler(x, 0)(1.0, 0.5)
    assert noise.dtype == torch.float64
    assert torch.equal(noise, make_noise_sampler(x.float(), 0)(1.0, 0.5).double())


def test_default_noise_follows_torch_manual_seed():
    """Without a noise sampler, the seed comes from torch's global RNG, so torch.manual_seed repeats a run."""
    data, sigmas = GaussianData(), get_sigmas_karras(5, 0.03, 14.6)
    x = seeded_noise((1, 8), seed=0) * 14.6
    torch.manual_seed(123)
    first = SAMPLERS["euler_ancestral"](data.denoiser, x, sigmas)
    torch.manual_seed(123)
    assert torch.equal(first, SAMPLERS["euler_ancestral"](data.denoiser, x, sigmas))


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, True, "3"])
def test_invalid_seeds_are_rejected(seed):
    """Seeds must be integers in [0, 2**64)."""
    with pytest.raises(SamplingError, match="seed"):
        seeded_noise((1, 2), seed)


def test_seed_plus_k_wraps_modulo_2_to_the_64():
    """The last representable seed still works for a batch: item 1 wraps around to seed 0."""
    noise = seeded_noise((2, 5), 2**64 - 1)
    assert torch.equal(noise[1], seeded_noise((1, 5), 0)[0])
