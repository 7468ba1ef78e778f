"""Mask and compositing operations on IMAGE (B, H, W, 3) and MASK (B, H, W) tensors in [0, 1].

A mask value of 1 marks a pixel to change (inpaint) or, in compositing, where the
source is taken. All functions are pure and broadcast a batch-1 mask over an image
batch.

    grow_mask(mask, pixels, tapered_corners)   dilate (pixels > 0) or erode (< 0): a square or diamond step
    feather_mask(mask, radius)       Gaussian blur (sigma = radius / 2) — soft edges
    threshold_mask(mask, level)      1 where mask ≥ level
    combine_masks(a, b, op)          add / subtract / multiply / max / min (clamped)
    mask_from_colour(image, rgb, tolerance)
    composite(destination, source, mask, x, y)   source pasted at (x, y) through mask
    mask_bounds(mask, padding, multiple)         (x, y, w, h) around the masked area, sides multiples of `multiple`
    crop(image, region) / paste(destination, patch, region, mask)
    pad_image(image, left, top, right, bottom, feather) → (padded image, mask of the new area)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _match_batch(mask: torch.Tensor, batch: int) -> torch.Tensor:
    if mask.shape[0] == batch:
        return mask
    if mask.shape[0] == 1:
        return mask.expand(batch, *mask.shape[1:])
    raise ValueError(f"mask batch {mask.shape[0]} does not match image batch {batch}; use one mask or one per image")


def grow_mask(mask: torch.Tensor, pixels: int, tapered_corners: bool = False) -> torch.Tensor:
    """Dilate the masked area by `pixels` (erode when negative): a square neighbourhood, or with
    `tapered_corners` a diamond one (|dx| + |dy| <= pixels: one cross-shaped step a pixel, ComfyUI GrowMask's
    default), whose corners are cut at 45°."""
    if pixels == 0:
        return mask
    sign = 1.0 if pixels > 0 else -1.0                           # erosion is dilation of the negated mask
    m = sign * mask[:, None]                                     # (B, 1, H, W); outside the image counts as nothing
    if not tapered_corners:
        k = 2 * abs(pixels) + 1
        return sign * F.max_pool2d(m, k, stride=1, padding=abs(pixels))[:, 0]
    for _ in range(abs(pixels)):
        m = torch.maximum(F.max_pool2d(m, (1, 3), stride=1, padding=(0, 1)),
                          F.max_pool2d(m, (3, 1), stride=1, padding=(1, 0)))
    return sign * m[:, 0]


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian of radius ceil(3 sigma)."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return kernel / kernel.sum()


def feather_mask(mask: torch.Tensor, radius: float) -> torch.Tensor:
    """Soften edges with a separable Gaussian blur (sigma = radius / 2), edges replicated."""
    if radius <= 0:
        return mask
    kernel = gaussian_kernel(radius / 2)
    r = len(kernel) // 2
    m = F.pad(mask[:, None], (r, r, r, r), mode="replicate")
    m = F.conv2d(m, kernel.view(1, 1, 1, -1))
    m = F.conv2d(m, kernel.view(1, 1, -1, 1))
    return m[:, 0].clamp(0, 1)


def threshold_mask(mask: torch.Tensor, level: float) -> torch.Tensor:
    return (mask >= level).to(mask.dtype)


def combine_masks(a: torch.Tensor, b: torch.Tensor, op: str) -> torch.Tensor:
    """Combine two masks of the same size: add, subtract, multiply, max, min."""
    if a.shape[-2:] != b.shape[-2:]:
        raise ValueError(f"mask sizes differ: {tuple(a.shape[-2:])} vs {tuple(b.shape[-2:])}; resize one first")
    batch = max(a.shape[0], b.shape[0])
    a, b = _match_batch(a, batch), _match_batch(b, batch)
    result = {"add": a + b, "subtract": a - b, "multiply": a * b, "max": torch.maximum(a, b),
              "min": torch.minimum(a, b)}[op]
    return result.clamp(0, 1)


def mask_from_colour(image: torch.Tensor, rgb: tuple[float, float, float], tolerance: float) -> torch.Tensor:
    """1 where every channel is within `tolerance` (0..1) of `rgb` (0..1)."""
    target = torch.tensor(rgb, dtype=image.dtype).view(1, 1, 1, 3)
    return ((image - target).abs().amax(dim=-1) <= tolerance + 1e-6).to(image.dtype)


def composite(destination: torch.Tensor, source: torch.Tensor, mask: torch.Tensor | None,
              x: int, y: int) -> torch.Tensor:
    """Paste `source` into `destination` with its top-left at (x, y), blended by `mask` (source-sized; None = all)."""
    out = destination.clone()
    batch = destination.shape[0]
    source = _match_batch(source, batch) if source.shape[0] != batch else source
    h, w = source.shape[1:3]
    top, left = max(0, y), max(0, x)
    bottom, right = min(destination.shape[1], y + h), min(destination.shape[2], x + w)
    if bottom <= top or right <= left:
        return out
    patch = source[:, top - y:bottom - y, left - x:right - x]
    if mask is None:
        alpha = torch.ones(patch.shape[:3], dtype=patch.dtype)
    else:
        alpha = _match_batch(mask, batch)[:, top - y:bottom - y, left - x:right - x]
    alpha = alpha[..., None]
    out[:, top:bottom, left:right] = alpha * patch + (1 - alpha) * out[:, top:bottom, left:right]
    return out


def mask_bounds(mask: torch.Tensor, padding: int = 0, multiple: int = 8) -> tuple[int, int, int, int] | None:
    """(x, y, width, height) around every masked pixel of the batch, grown by `padding` and kept inside the
    image, each side a multiple of `multiple` (`crop_side`); None when the mask is empty. ValueError when the
    image is smaller than `multiple` on a side the crop needs to round."""
    any_set = (mask > 0).any(dim=0)
    if not any_set.any():
        return None
    rows = torch.nonzero(any_set.any(dim=1)).flatten()
    cols = torch.nonzero(any_set.any(dim=0)).flatten()
    height, width = mask.shape[-2:]
    try:
        x0, w = crop_side(int(cols[0]), int(cols[-1]) + 1, padding, width, multiple)
        y0, h = crop_side(int(rows[0]), int(rows[-1]) + 1, padding, height, multiple)
    except ValueError:
        raise ValueError(f"the image is {width}×{height} (width×height), smaller than {multiple} on a side, so no "
                         f"crop of it has sides that are multiples of {multiple}; lower the multiple, or make the "
                         f"image larger first (ImageScale, or ImagePad)") from None
    return x0, y0, w, h


def crop_side(first: int, end: int, padding: int, limit: int, multiple: int) -> tuple[int, int]:
    """(start, length) of one side of a crop around the masked span [first, end) of a side `limit` long.

    The span grown by `padding` (clamped to the image) is rounded up to a multiple of `multiple`, moved
    inwards where it would pass the image's edge. Where even that does not fit (the image's side is not a
    multiple and the span nearly fills it), the crop is the largest multiple that fits, centred on the masked
    span: it may then cut up to `multiple` - 1 pixels of the mask's outer edge (as ComfyUI's VAE encoders crop an
    image to a multiple of 8) — never padding, so the region stays inside the image and PasteToRegion puts
    back exactly what was cut. ValueError when the side is shorter than `multiple`."""
    start, stop = max(0, first - padding), min(limit, end + padding)
    size = math.ceil((stop - start) / multiple) * multiple
    if size <= limit:
        return min(start, limit - size), size
    size = limit // multiple * multiple
    if size == 0:
        raise ValueError(f"a side of {limit} pixels is shorter than {multiple}")
    return min(max(0, round((first + end - size) / 2)), limit - size), size


def crop(image: torch.Tensor, region: tuple[int, int, int, int]) -> torch.Tensor:
    x, y, w, h = region
    return image[:, y:y + h, x:x + w]


def paste(destination: torch.Tensor, patch: torch.Tensor, region: tuple[int, int, int, int],
          mask: torch.Tensor | None = None) -> torch.Tensor:
    """Put `patch` back where `region` was cropped (resized to the region if needed), through `mask`."""
    x, y, w, h = region
    if patch.shape[1:3] != (h, w):
        patch = F.interpolate(patch.movedim(-1, 1), size=(h, w), mode="bilinear", align_corners=False,
                              antialias=True).movedim(1, -1)
    part = None if mask is None else crop(mask[..., None], region)[..., 0]
    return composite(destination, patch, part, x, y)


def pad_image(image: torch.Tensor, left: int, top: int, right: int, bottom: int,
              feather: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Extend the canvas (new pixels: edge colours) and return the mask of the new area, feathered inwards."""
    b, h, w, _ = image.shape
    padded = F.pad(image.movedim(-1, 1), (left, right, top, bottom), mode="replicate").movedim(1, -1)
    mask = torch.ones(b, h + top + bottom, w + left + right, dtype=image.dtype)
    mask[:, top:top + h, left:left + w] = 0
    if feather > 0:
        # ramp from 1 at the old border to 0 `feather` pixels inside the old image (only on padded sides)
        yy = torch.arange(h, dtype=image.dtype).view(h, 1)
        xx = torch.arange(w, dtype=image.dtype).view(1, w)
        distance = torch.full((h, w), float("inf"))
        for pad, d in ((left, xx.expand(h, w)), (right, (w - 1 - xx).expand(h, w)),
                       (top, yy.expand(h, w)), (bottom, (h - 1 - yy).expand(h, w))):
            if pad > 0:
                distance = torch.minimum(distance, d)
        ramp = (1 - distance / feather).clamp(0, 1)
        mask[:, top:top + h, left:left + w] = ramp
    return padded, mask
