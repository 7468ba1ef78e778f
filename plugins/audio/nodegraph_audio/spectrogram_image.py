"""Spectrograms as images and back, so the image nodes (and people) can look at and edit them.

    to_image(values_db, low_db, high_db)   (B, F, T) dB → IMAGE (B, F, T, 3) grey in [0, 1]: low_db → 0,
                                           high_db → 1; row 0 is the HIGHEST frequency (as spectrogram
                                           plots are drawn: low frequencies at the bottom)
    from_image(image, low_db, high_db)     the inverse: IMAGE (B, F, T, 3) → (B, F, T) dB (the channel mean)
    latent_to_image(x) / image_to_latent(image)   the tiny model's latent (B, 1, F, T) in [-1, 1] ↔ IMAGE
    colourise(grey)                        a perceptual false-colour map (black → purple → orange → yellow)
                                           for viewing (an "inferno"-like ramp through five anchor colours)
"""

from __future__ import annotations

import torch

_ANCHORS = torch.tensor([[0.0, 0.0, 0.02], [0.33, 0.06, 0.43], [0.73, 0.21, 0.33], [0.98, 0.55, 0.04],
                         [0.99, 1.0, 0.64]])


def to_image(values_db: torch.Tensor, low_db: float = -80.0, high_db: float = 0.0) -> torch.Tensor:
    """(B, F, T) dB → IMAGE (B, F, T, 3) grey in [0, 1], flipped so low frequencies are at the bottom.

    ValueError unless high_db > low_db (an empty range has no grey scale: 0 / 0 would be NaN).
    """
    if not high_db > low_db:
        raise ValueError(f"high_db: must be above low_db ({low_db}), found {high_db}")
    # float64: a range of a few 1e-300 dB stays positive (in float32 it would round to 0)
    grey = ((values_db.double() - low_db) / (high_db - low_db)).clamp(0, 1).float().flip(1)
    return grey[..., None].expand(*grey.shape, 3).contiguous()


def from_image(image: torch.Tensor, low_db: float = -80.0, high_db: float = 0.0) -> torch.Tensor:
    """IMAGE (B, F, T, 3) → (B, F, T) dB (mean of the channels; the inverse of `to_image`)."""
    grey = image.float().mean(dim=-1).flip(1)
    return low_db + grey * (high_db - low_db)


def latent_to_image(x: torch.Tensor) -> torch.Tensor:
    """The tiny model's latent (B, 1, F, T), about [-1, 1] → grey IMAGE (B, F, T, 3), low frequencies at the bottom."""
    grey = ((x[:, 0].float() + 1) / 2).clamp(0, 1).flip(1)
    return grey[..., None].expand(*grey.shape, 3).contiguous()


def image_to_latent(image: torch.Tensor) -> torch.Tensor:
    """IMAGE (B, F, T, 3) → latent (B, 1, F, T) (the inverse of `latent_to_image`)."""
    return (image.float().mean(dim=-1).flip(1) * 2 - 1)[:, None]


def colourise(grey: torch.Tensor) -> torch.Tensor:
    """Grey IMAGE (B, H, W, 3) or (B, H, W) in [0, 1] → false-colour IMAGE (B, H, W, 3)."""
    if grey.ndim == 4:
        grey = grey.mean(dim=-1)
    position = grey.clamp(0, 1) * (len(_ANCHORS) - 1)
    low = position.floor().long().clamp(max=len(_ANCHORS) - 2)
    weight = (position - low)[..., None]
    anchors = _ANCHORS.to(grey.device)
    return anchors[low] * (1 - weight) + anchors[low + 1] * weight
