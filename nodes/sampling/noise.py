"""Seeded, device-independent noise for initial latents and stochastic samplers.

Rules (see docs/sampling.md, "Noise and seeds"):

* All noise is drawn on the CPU from a ``torch.Generator`` (Mersenne Twister)
  in float32, then moved to the device and dtype of the latent. The same seed
  therefore gives bitwise-identical noise on CPU across runs, and the same
  noise up to the final cast on any device.
* Batch item ``k`` uses seed ``seed + k`` (mod 2**64), so item ``k`` is the
  same whether it is generated alone or inside a batch.

Main objects:

* :func:`seeded_noise` -- the initial latent noise. Item ``k`` equals
  ``torch.randn(shape[1:], generator=torch.Generator().manual_seed(seed + k))``,
  the same convention as diffusers' "list of generators", so a diffusers user
  can reproduce it.
* :class:`IntervalNoiseSampler` / :func:`make_noise_sampler` -- the noise
  sampler handed to samplers: ``noise_sampler(sigma, sigma_next) -> noise``.
  It is a *pure function of the interval*: the noise for ``(sigma,
  sigma_next)`` is drawn from a generator seeded with a hash of the item seed
  and the two float values. It keeps no draw counter, so a sampler stepped one
  step at a time (the SamplerStep node) reproduces the full run without
  carrying a generator position, and the low half of a split schedule draws
  the same noise as the full run over the same intervals.

Brownian motion. Stochastic samplers interpret ``noise_sampler(a, b)`` as the
normalised Brownian increment ``(W(b) - W(a)) / sqrt(|b - a|)``. Increments of
Brownian motion over *disjoint* intervals are independent standard normals --
exactly what interval-keyed noise provides. A Brownian *tree* (k-diffusion,
torchsde) additionally answers overlapping queries consistently; the only
sampler that needs two correlated increments, DPM++ SDE, asks for the two
disjoint sub-intervals ``(sigma, sigma_mid)`` and ``(sigma_mid, sigma_next)``
and composes the full-step increment itself (samplers.py), which is the exact
joint law of W at those three points. What a tree gives and this does not:
with a tree, changing the number of steps keeps sampling the *same* Brownian
path, so SDE results change less when only the step count changes.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence

import torch

from .errors import SamplingError

__all__ = [
    "NoiseSampler",
    "IntervalNoiseSampler",
    "make_noise_sampler",
    "seeded_noise",
    "start_noise_scale",
    "random_seed",
    "check_seed",
]

_MASK_64 = (1 << 64) - 1

#: ``noise_sampler(sigma, sigma_next) -> standard normal noise shaped like the latent``.
NoiseSampler = Callable[[float, float], torch.Tensor]


def check_seed(seed: object, argument: str = "seed") -> int:
    """Return ``seed`` as an int in [0, 2**64), or raise SamplingError."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SamplingError(argument, "an integer seed", f"{type(seed).__name__} {seed!r}",
                            "Pass an int between 0 and 2**64 - 1.", seed)
    if not 0 <= seed <= _MASK_64:
        raise SamplingError(argument, "a seed between 0 and 2**64 - 1", repr(seed),
                            "Use a non-negative seed below 2**64.", seed)
    return seed


def random_seed() -> int:
    """Draw a seed from torch's global RNG (so ``torch.manual_seed`` makes it reproducible)."""
    return int(torch.randint(0, 2**62, (), dtype=torch.int64))


def _item_seeds(seed: int, batch_size: int) -> list[int]:
    """Seeds of the batch items: item k uses seed + k (mod 2**64)."""
    return [(seed + k) & _MASK_64 for k in range(batch_size)]


def _draw(shape: Sequence[int], item_seeds: Sequence[int]) -> torch.Tensor:
    """Stack one float32 CPU normal draw of ``shape`` per item seed."""
    generator = torch.Generator()
    items = [torch.randn(tuple(shape), generator=generator.manual_seed(s)) for s in item_seeds]
    return items[0].unsqueeze(0) if len(items) == 1 else torch.stack(items)


def seeded_noise(shape: Sequence[int], seed: int, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> torch.Tensor:
    """Standard normal noise of ``shape`` where batch item k is seeded with ``seed + k``.

    Args:
        shape: full shape ``(B, ...)``; the first dimension is the batch.
        seed: integer in [0, 2**64).
        device: where the result lives (noise is always drawn on the CPU).
        dtype: result dtype (drawn in float32, then cast). Defaults to float32.

    Returns:
        Tensor of ``shape`` on ``device``.
    """
    seed = check_seed(seed)
    if len(shape) < 1 or shape[0] < 1:
        raise SamplingError("shape", "a shape (B, ...) with B >= 1", repr(tuple(shape)),
                            "Pass the latent shape including its batch dimension.", shape)
    noise = _draw(shape[1:], _item_seeds(seed, shape[0]))
    return noise.to(device=device, dtype=dtype or torch.float32)


def start_noise_scale(sigma_start: float, sigma_max: float, prediction: str | None = None) -> float:
    """What the initial noise is multiplied by before it is added to the latent a sampler starts from.

    ``sigma_start`` (``x = x0 + sigma ε``, the VE view), except for a full denoise — the schedule starts at
    the model's largest sigma (within 1e-5, or above it) — of a model that is not a flow model:
    ``sqrt(1 + sigma_start²)``, the spread of ``x0 + sigma ε`` for data of unit variance, since x0 is not
    known then. ComfyUI's ``noise_scaling(max_denoise=True)`` does the same, and diffusers' SD pipelines
    start from ``init_noise_sigma`` = ``sqrt(sigma_max² + 1)``; with it a seed's image matches theirs (at SD's
    sigma_max 14.61 the noise is 0.23 % stronger). A flow model's start (t = 1) is pure noise either way.
    """
    sigma_start = float(sigma_start)
    if prediction == "flow" or not math.isfinite(sigma_max) or sigma_max <= 0:
        return sigma_start
    if sigma_start >= sigma_max or math.isclose(sigma_start, sigma_max, rel_tol=1e-5):
        return math.sqrt(1.0 + sigma_start * sigma_start)
    return sigma_start


def _float_bits(value: float) -> int:
    """IEEE-754 bit pattern of a Python float, as an unsigned 64-bit int."""
    return struct.unpack("<Q", struct.pack("<d", value))[0]


def _splitmix64(value: int) -> int:
    """SplitMix64 finaliser (Steele, Lea & Flood 2014): a bijective 64-bit mixer."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK_64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK_64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK_64
    return value ^ (value >> 31)


def interval_seed(item_seed: int, sigma: float, sigma_next: float) -> int:
    """Generator seed for one batch item and one noise interval (hash of the three values)."""
    mixed = _splitmix64(item_seed)
    mixed = _splitmix64(mixed ^ _float_bits(float(sigma)))
    return _splitmix64(mixed ^ _float_bits(float(sigma_next)))


class IntervalNoiseSampler:
    """Noise sampler ``(sigma, sigma_next) -> noise`` that is a pure function of its arguments.

    Args:
        shape: shape of the latent ``(B, ...)``.
        seed: base seed; batch item k uses ``seed + k``.
        device: device of the returned noise.
        dtype: dtype of the returned noise (drawn in float32, then cast).

    Calling it twice with the same interval returns the same noise; different
    intervals give independent noise. ``sigma`` values may be floats or
    0-d tensors (read with ``float()``).
    """

    def __init__(self, shape: Sequence[int], seed: int, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None):
        self.shape = tuple(shape)
        self.seed = check_seed(seed)
        self.device = device
        self.dtype = dtype or torch.float32
        self._item_seeds = _item_seeds(self.seed, self.shape[0])

    def __call__(self, sigma: float, sigma_next: float) -> torch.Tensor:
        sigma, sigma_next = float(sigma), float(sigma_next)
        seeds = [interval_seed(s, sigma, sigma_next) for s in self._item_seeds]
        return _draw(self.shape[1:], seeds).to(device=self.device, dtype=self.dtype)

    def __repr__(self) -> str:
        return f"IntervalNoiseSampler(shape={self.shape}, seed={self.seed})"


def make_noise_sampler(x: torch.Tensor, seed: int | None = None) -> IntervalNoiseSampler:
    """Build the default noise sampler for latent ``x``.

    Args:
        x: the latent being sampled; fixes shape, device and dtype of the noise.
        seed: base seed (item k uses seed + k). ``None`` draws one from torch's
            global RNG, so ``torch.manual_seed`` still makes runs repeatable.

    Returns:
        An :class:`IntervalNoiseSampler`; its ``seed`` attribute records the seed used.
    """
    return IntervalNoiseSampler(x.shape, random_seed() if seed is None else seed, x.device, x.dtype)
