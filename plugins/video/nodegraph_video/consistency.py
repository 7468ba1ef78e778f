"""Motion-compensated temporal consistency guidance: each frame's denoised estimate is pulled towards its
neighbours' estimates, shifted so that their content lines up with the frame's own.

A plain temporal average of the clip's denoised latents (or a pull towards the clip's mean) keeps an
object's look but smears a moving object into a trail. Here each neighbour is first moved by the integer
latent shift that best matches it to the frame (least squares over shifts of up to ``max_shift`` latent
pixels, the way block-matching video denoisers align frames before averaging), then averaged with the
frame: a frame whose object lost its details for a step (a star's points softening) is drawn towards the
same object as its neighbours draw it, at its own position. With weights (1/4, 1/2, 1/4) a quantity that
changes linearly over time (a colour blend, a size ramp) is kept in interior frames.

Map
- ``shift_latent(x, dy, dx)``: (N, C, h, w) moved by integer pixels, the border value filling in.
- ``best_shift(source, target, max_shift)``: the (dy, dx) that moves ``source`` closest to ``target``.
- ``aligned_neighbours(denoised, frames, max_shift)``: each frame's neighbours f ± 1, shifted onto it.
- ``aligned_average(denoised, frames, max_shift, neighbour_weight)``: each frame averaged with its aligned
  neighbours (clip-major B·F layout; the ends have one neighbour).
- ``aligned_median(denoised, frames, max_shift)``: the median of a frame and its two aligned neighbours, per
  value (edge-preserving: only values outside both neighbours change; the clip's ends are kept).
- ``ClipConsistencyTerm``: the guidance term, ``scale · (T(D) − D)`` within a sigma range, T one of the two.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from nodegraph import api

from .motion_module import clip_frames

__all__ = ["STATISTICS", "ClipConsistencyTerm", "aligned_average", "aligned_median", "aligned_neighbours",
           "best_shift", "shift_latent"]


def shift_latent(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``x`` (N, C, h, w) moved by ``dy`` rows down and ``dx`` columns right; vacated pixels repeat the border."""
    if dy == 0 and dx == 0:
        return x
    h, w = x.shape[-2:]
    pad = max(abs(dy), abs(dx))
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    return padded[..., pad - dy: pad - dy + h, pad - dx: pad - dx + w]


def best_shift(source: torch.Tensor, target: torch.Tensor, max_shift: int) -> tuple[int, int]:
    """The integer (dy, dx), |dy|, |dx| ≤ ``max_shift``, minimising ‖shift_latent(source, dy, dx) − target‖².

    source, target: (C, h, w). Ties go to the smaller shift (searched from the centre outwards).
    """
    span = range(-max_shift, max_shift + 1)
    candidates = sorted(((dy, dx) for dy in span for dx in span), key=lambda s: (abs(s[0]) + abs(s[1]), s))
    stacked = torch.stack([shift_latent(source[None], dy, dx)[0] for dy, dx in candidates])
    errors = (stacked - target[None]).pow(2).flatten(1).sum(1)
    return candidates[int(torch.argmin(errors))]


def aligned_neighbours(denoised: torch.Tensor, frames: int, max_shift: int = 2) -> list[list[torch.Tensor]]:
    """Per batch item (clip-major B·F), its clip neighbours f − 1 and f + 1, each shifted onto it (``best_shift``)."""
    out: list[list[torch.Tensor]] = []
    for item in range(denoised.shape[0]):
        start, f = item - item % frames, item % frames
        target = denoised[item]
        row = []
        for g in (f - 1, f + 1):
            if 0 <= g < frames:
                source = denoised[start + g]
                dy, dx = best_shift(source, target, max_shift)
                row.append(shift_latent(source[None], dy, dx)[0])
        out.append(row)
    return out


def aligned_average(denoised: torch.Tensor, frames: int, max_shift: int = 2,
                    neighbour_weight: float = 0.5) -> torch.Tensor:
    """Each frame's motion-compensated temporal average: (x_f + a·Σ_g S_g x_g) / (1 + a·n).

    denoised: (B·F, C, h, w), clip-major. g runs over the frame's neighbours f − 1, f + 1 inside its clip
    (n = 2, or 1 at the ends), S_g is the best integer shift of x_g onto x_f (``best_shift``) and
    a = ``neighbour_weight``; a = 0.5 gives (1/4, 1/2, 1/4) inside the clip and (2/3, 1/3) at the ends.
    """
    out = denoised.clone()
    if frames < 2 or neighbour_weight == 0:
        return out
    for item, row in enumerate(aligned_neighbours(denoised, frames, max_shift)):
        out[item] = (denoised[item] + neighbour_weight * sum(row)) / (1.0 + neighbour_weight * len(row))
    return out


def aligned_median(denoised: torch.Tensor, frames: int, max_shift: int = 2) -> torch.Tensor:
    """Each inner frame's motion-compensated temporal median: median(S x_{f−1}, x_f, S x_{f+1}) per value.

    An edge-preserving version of ``aligned_average``: a value changes only where the frame lies outside its
    two aligned neighbours (a detail one frame lost or invented), and then to the nearer of them; a value
    that changes monotonically over time (a colour blend, a growing edge) is its own median and is kept.
    The first and last frame of each clip (one neighbour) are returned unchanged.
    """
    out = denoised.clone()
    if frames < 3:
        return out
    for item, row in enumerate(aligned_neighbours(denoised, frames, max_shift)):
        if len(row) == 2:
            out[item] = torch.stack([row[0], denoised[item], row[1]]).median(dim=0).values
    return out


STATISTICS = ("mean", "median")


class ClipConsistencyTerm(api.GuidanceTerm):
    """Guidance ``scale · (T(D) − D)`` on the CFG result D, for sigma in ``sigma_range``.

    T is ``aligned_average`` (``statistic`` "mean") or ``aligned_median`` ("median").
    ``frames``: the clip length when no video sampler set one (0 = the sampler's).
    """

    def __init__(self, scale: float = 0.5, max_shift: int = 2, sigma_low: float = 0.0,
                 sigma_high: float = math.inf, frames: int = 0, statistic: str = "mean"):
        if scale < 0 or max_shift < 0 or not 0 <= sigma_low <= sigma_high:
            raise ValueError("scale and max_shift must be ≥ 0 and 0 ≤ sigma_low ≤ sigma_high")
        if statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {', '.join(STATISTICS)}, found {statistic!r}")
        self.scale, self.max_shift, self.frames = float(scale), int(max_shift), int(frames)
        self.statistic = statistic
        self.sigma_range = (float(sigma_low), float(sigma_high))

    def __call__(self, state: Any) -> Any:
        if self.scale == 0:
            return None
        denoised = state.denoised
        frames = clip_frames(denoised.shape[0], self.frames, "clip consistency guidance", "ClipConsistencyGuidance")
        if frames < 2:
            return None
        value = denoised.float()
        if self.statistic == "median":
            target = aligned_median(value, frames, self.max_shift)
        else:
            target = aligned_average(value, frames, self.max_shift)
        return (self.scale * (target - value)).to(denoised.dtype)
