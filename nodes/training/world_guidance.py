"""A differentiable tiny-world colour classifier, for classifier guidance towards a colour.

The world detector (``world_detector.py``) names an object's colour in three steps: the
background is the median of the 2-px border ring, object pixels are those farther than
``COARSE_DISTANCE`` from it, and the object's RGB goes to the nearest named colour. Medians,
thresholds and nearest neighbours have no useful gradient, so this module keeps the same
steps with smooth stand-ins:

1. background = MEAN of the border ring (B, 3);
2. soft object mask = sigmoid((|rgb - background| - COARSE_DISTANCE) / softness) (B, H, W),
   held fixed (no gradient flows through it, so guidance recolours the object's pixels
   rather than moving the background or reshaping the object);
3. object colour = mask-weighted mean RGB (B, 3);
4. p(colour = c) = softmax_c(-|object - COLOURS[c]|² / (2 temperature²)) over the named colours.

``colour_log_likelihood(images, targets) -> (B,)`` is log p(target | image) for images in the
``TinyWorld`` layout ((B, 3, H, W) in [-1, 1], what the VAE decodes), with one target colour
name for all or one per image; ``colour_probabilities`` gives the whole (B, 10) table.
Argmax agreement with the detector is measured in tests/sampling/test_guidance_nodes.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from . import world
from .world_detector import BORDER, COARSE_DISTANCE

__all__ = ["COLOUR_NAMES", "colour_log_likelihood", "colour_probabilities"]

COLOUR_NAMES: tuple[str, ...] = tuple(world.COLOURS)


def colour_probabilities(images: torch.Tensor, temperature: float = 40.0, softness: float = 2.0) -> torch.Tensor:
    """(B, len(COLOUR_NAMES)) log-probabilities of the main object's named colour (module docstring)."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images: expected (B, 3, H, W) in [-1, 1] (the VAE's output), found {tuple(images.shape)}")
    rgb = (images.float() + 1) * 127.5  # (B, 3, H, W) in [0, 255]
    height, width = rgb.shape[-2:]
    ring = torch.ones(height, width, device=rgb.device)
    ring[BORDER:height - BORDER, BORDER:width - BORDER] = 0  # (H, W) the border ring
    background = (rgb * ring).sum(dim=(2, 3)) / ring.sum()  # (B, 3)
    distance = ((rgb - background[:, :, None, None]) ** 2).sum(dim=1).clamp_min(1e-6).sqrt()  # (B, H, W)
    # the mask is held fixed (no gradient): guidance then recolours the object's pixels instead of
    # moving the background or growing / shrinking the object to change the weighted mean
    weight = torch.sigmoid((distance.detach() - COARSE_DISTANCE) / softness)  # (B, H, W) soft object mask
    colour = (weight[:, None] * rgb).sum(dim=(2, 3)) / (weight.sum(dim=(1, 2))[:, None] + 1e-3)  # (B, 3)
    table = torch.tensor([world.COLOURS[name] for name in COLOUR_NAMES], dtype=torch.float32,
                         device=rgb.device)  # (10, 3)
    logits = -((colour[:, None, :] - table[None]) ** 2).sum(dim=-1) / (2 * temperature**2)  # (B, 10)
    return logits.log_softmax(dim=-1)


def colour_log_likelihood(images: torch.Tensor, targets: str | Sequence[str], temperature: float = 40.0,
                          softness: float = 2.0) -> torch.Tensor:
    """log p(object colour = target | image), (B,); `targets` is one colour name or one per image."""
    names = [targets] * images.shape[0] if isinstance(targets, str) else list(targets)
    if len(names) != images.shape[0]:
        raise ValueError(f"targets: expected one colour name or {images.shape[0]} (one per image), found {len(names)}")
    unknown = sorted({n for n in names if n not in COLOUR_NAMES})
    if unknown:
        raise ValueError(f"targets: unknown colour(s) {unknown}; choose from {list(COLOUR_NAMES)}")
    index = torch.tensor([COLOUR_NAMES.index(n) for n in names], device=images.device)
    log_probabilities = colour_probabilities(images, temperature, softness)  # (B, 10)
    return log_probabilities.gather(1, index[:, None])[:, 0]
