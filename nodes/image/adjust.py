"""Colour adjustments and blend modes on IMAGE tensors (B, H, W, 3) in [0, 1].

    adjust(image, brightness, contrast, saturation, gamma)
        brightness: added; contrast: scaled about mid-grey 0.5; saturation: mix with the
        Rec. 601 luma (0 = grey, 1 = unchanged); gamma: out = in ** (1 / gamma).
    blend(a, b, factor, mode)   mode in normal, multiply, screen, overlay, difference, add;
        the result of the mode is mixed with `a` by `factor` (0 = a, 1 = the mode's result).
"""

from __future__ import annotations

import torch

BLEND_MODES = ("normal", "multiply", "screen", "overlay", "difference", "add")
LUMA = (0.299, 0.587, 0.114)


def adjust(image: torch.Tensor, brightness: float = 0.0, contrast: float = 1.0, saturation: float = 1.0,
           gamma: float = 1.0) -> torch.Tensor:
    out = image + brightness
    out = (out - 0.5) * contrast + 0.5
    luma = (out * torch.tensor(LUMA, dtype=out.dtype)).sum(dim=-1, keepdim=True)
    out = luma + (out - luma) * saturation
    out = out.clamp(0, 1)
    if gamma != 1.0:
        out = out.pow(1.0 / gamma)
    return out


def blend(a: torch.Tensor, b: torch.Tensor, factor: float, mode: str = "normal") -> torch.Tensor:
    if mode not in BLEND_MODES:
        raise ValueError(f"mode must be one of {BLEND_MODES}, got {mode!r}")
    mixed = {
        "normal": b,
        "multiply": a * b,
        "screen": 1 - (1 - a) * (1 - b),
        "overlay": torch.where(a < 0.5, 2 * a * b, 1 - 2 * (1 - a) * (1 - b)),
        "difference": (a - b).abs(),
        "add": (a + b).clamp(0, 1),
    }[mode]
    return (a + (mixed - a) * factor).clamp(0, 1)
