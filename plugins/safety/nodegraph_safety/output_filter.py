"""What to do with images a safety checker flags: blur them, replace them, or drop them.

``filter_images(images, flagged, action)`` -> ``FilterResult(images, kept, decisions)``:

- ``"blur"``: a strong separable Gaussian blur (sigma = ``blur_fraction`` x the image side),
  enough to remove shapes and keep only the colours;
- ``"replace"``: a flat image of ``replace_colour`` (the reference pipeline returns black);
- ``"drop"``: flagged images are removed from the batch. If every image is flagged, one
  replacement image is returned, so downstream nodes still get a valid IMAGE (B >= 1); the
  decisions say so.

``decisions`` is one JSON-able record per input image: ``{"index", "flagged", "action"}``
(``action`` is "kept", "blurred", "replaced" or "dropped"). No engine imports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

__all__ = ["ACTIONS", "FilterResult", "blur_images", "filter_images"]

Action = Literal["blur", "replace", "drop"]
ACTIONS: tuple[str, ...] = ("blur", "replace", "drop")
_PAST = {"blur": "blurred", "replace": "replaced", "drop": "dropped"}


@dataclass
class FilterResult:
    images: torch.Tensor  # (B', H, W, 3)
    kept: list[int]  # indices of input images present in `images` (as is or modified)
    decisions: list[dict]


def blur_images(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of IMAGE (B, H, W, 3) with std ``sigma`` px (reflect padding, radius 3 sigma).

    Each side is blurred with a radius below its length (reflect padding needs that); a side of one pixel
    has nothing to blur along and is left as it is, so 1-pixel-wide or -tall images work.
    """
    height, width = images.shape[1:3]
    channels = images.permute(0, 3, 1, 2).reshape(-1, 1, height, width)  # (B*3, 1, H, W)
    if width > 1:
        radius = min(math.ceil(3 * sigma), width - 1)
        channels = F.conv2d(F.pad(channels, (radius, radius, 0, 0), mode="reflect"),
                            _gaussian_kernel(sigma, radius, images.dtype).view(1, 1, 1, -1))
    if height > 1:
        radius = min(math.ceil(3 * sigma), height - 1)
        channels = F.conv2d(F.pad(channels, (0, 0, radius, radius), mode="reflect"),
                            _gaussian_kernel(sigma, radius, images.dtype).view(1, 1, -1, 1))
    return channels.reshape(images.shape[0], 3, height, width).permute(0, 2, 3, 1)


def _gaussian_kernel(sigma: float, radius: int, dtype: torch.dtype) -> torch.Tensor:
    """The normalised 1-D Gaussian kernel (2 radius + 1,) with std ``sigma`` px."""
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-x**2 / (2 * sigma**2))
    return (kernel / kernel.sum()).to(dtype)


def filter_images(images: torch.Tensor, flagged: Sequence[bool], action: Action = "blur",
                  blur_fraction: float = 0.08, replace_colour: tuple[float, float, float] = (0.0, 0.0, 0.0)
                  ) -> FilterResult:
    """Apply ``action`` to the flagged images of IMAGE (B, H, W, 3); see the module docstring."""
    if action not in ACTIONS:
        raise ValueError(f"action: expected one of {', '.join(ACTIONS)}, found {action!r}")
    flags = [bool(f) for f in flagged]
    if len(flags) != images.shape[0]:
        raise ValueError(f"flagged: expected one decision per image ({images.shape[0]}), found {len(flags)}")
    decisions = [{"index": i, "flagged": f, "action": _PAST[action] if f else "kept"} for i, f in enumerate(flags)]
    if not any(flags):
        return FilterResult(images, list(range(len(flags))), decisions)
    mask = torch.tensor(flags)
    replacement = torch.tensor(replace_colour, dtype=images.dtype).expand_as(images[:1])
    if action == "blur":
        out = images.clone()
        out[mask] = blur_images(images[mask], blur_fraction * max(images.shape[1:3])).clamp(0, 1)
        return FilterResult(out, list(range(len(flags))), decisions)
    if action == "replace":
        out = images.clone()
        out[mask] = replacement
        return FilterResult(out, list(range(len(flags))), decisions)
    kept = [i for i, f in enumerate(flags) if not f]
    if not kept:  # every image dropped: one replacement keeps the IMAGE valid downstream
        for record in decisions:
            record["note"] = "all images dropped; one replacement image returned"
        return FilterResult(replacement.clone(), [], decisions)
    return FilterResult(images[~mask], kept, decisions)
