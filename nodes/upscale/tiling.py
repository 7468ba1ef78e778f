"""Run an upscaling network over an image in overlapping tiles, blended with linear ramps.

    upscale_image(net, images, tile_size=0, overlap=16, progress=None)  (B, 3, H, W) → (B, 3, sH, sW)
    auto_tile_size(height, width)                                        the tile side used for tile_size 0
    tile_starts(length, tile, overlap)                                   where tiles begin along one axis

Tiles are `tile_size` input pixels square and step by `tile_size - overlap`; the last tile of a row
or column is moved back to end at the image edge. Each tile's output is weighted by a ramp that
rises linearly over the `overlap·scale` output pixels at every side shared with another tile (and
is 1 elsewhere), and the blend divides by the summed weights, so the result is seamless and equals
the untiled result wherever the network's receptive field fits inside a tile. The input is
reflect-padded to the network's `size_multiple` (RRDBNet x2 / x1) and the output cropped back.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

AUTO_WHOLE_IMAGE_PIXELS = 384 * 384   # up to this many input pixels: one tile (fast, ~1 GB at x4plus on CPU)
AUTO_TILE = 256                        # otherwise 256² tiles bound memory to about the same


def auto_tile_size(height: int, width: int) -> int:
    """Tile side for tile_size 0: the whole image when small, else AUTO_TILE."""
    return max(height, width) if height * width <= AUTO_WHOLE_IMAGE_PIXELS else AUTO_TILE


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of `tile` pixels covering `length`, consecutive tiles sharing ≥ `overlap`."""
    if tile >= length:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _ramp(length: int, width: int, rise_start: bool, rise_end: bool) -> torch.Tensor:
    """1-D weights: linear from ~0 to 1 over `width` samples at each shared side, 1 elsewhere."""
    weight = torch.ones(length)
    if width > 0:
        ramp = (torch.arange(width, dtype=torch.float32) + 0.5) / width
        if rise_start:
            weight[:width] = torch.minimum(weight[:width], ramp)
        if rise_end:
            weight[-width:] = torch.minimum(weight[-width:], ramp.flip(0))
    return weight


def _run_padded(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    multiple = getattr(net, "size_multiple", 1)
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if min(h, w) > max(pad_h, pad_w) else "replicate")
    out = net(x)
    return out[..., :h * net.scale, :w * net.scale]


@torch.no_grad()
def upscale_image(net: torch.nn.Module, images: torch.Tensor, tile_size: int = 0, overlap: int = 16,
                  progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Upscale (B, 3, H, W) images in [0, 1] by `net.scale`, tiled; output clamped to [0, 1].

    Args:
        net: an upscaling module with `scale` (and optionally `size_multiple`) attributes.
        images: (B, 3, H, W) on the network's device and dtype.
        tile_size: tile side in input pixels; 0 = `auto_tile_size`; ≥ the image side = one tile.
        overlap: input pixels shared by neighbouring tiles (must be < tile_size).
        progress: called as progress(done, total) after each tile.
    """
    b, c, h, w = images.shape
    tile = tile_size or auto_tile_size(h, w)
    tile_h, tile_w = min(tile, h), min(tile, w)
    if (tile_h < h and overlap >= tile_h) or (tile_w < w and overlap >= tile_w):
        raise ValueError(f"overlap ({overlap}) must be smaller than tile_size ({tile}); lower overlap or raise "
                         f"tile_size")
    s = net.scale
    ys, xs = tile_starts(h, tile_h, overlap), tile_starts(w, tile_w, overlap)
    if len(ys) == len(xs) == 1:
        out = _run_padded(net, images)
        if progress:
            progress(1, 1)
        return out.clamp_(0, 1)
    out = torch.zeros(b, c, h * s, w * s, dtype=images.dtype, device=images.device)
    weights = torch.zeros(1, 1, h * s, w * s, dtype=images.dtype, device=images.device)
    total, done = len(ys) * len(xs), 0
    for y in ys:
        for x in xs:
            piece = _run_padded(net, images[:, :, y:y + tile_h, x:x + tile_w])
            wy = _ramp(tile_h * s, overlap * s, y > 0, y + tile_h < h)
            wx = _ramp(tile_w * s, overlap * s, x > 0, x + tile_w < w)
            weight = (wy[:, None] * wx[None, :]).to(images)[None, None]
            out[:, :, y * s:(y + tile_h) * s, x * s:(x + tile_w) * s] += piece * weight
            weights[:, :, y * s:(y + tile_h) * s, x * s:(x + tile_w) * s] += weight
            done += 1
            if progress:
                progress(done, total)
    return (out / weights).clamp_(0, 1)
