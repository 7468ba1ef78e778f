"""Image → coloured points: lift each pixel to 3D with a depth estimate (a relief, seen from the front).

    lift_image(image, depth, mask, points, depth_scale, generator)   (H, W, 3) + (H, W) → (N, 6) xyz rgb

Conventions: `depth` is in [0, 1] with 1 = nearest (the image pack's DistanceDepth / a ControlNet depth
hint: white = near); a pixel (u, v) becomes x = (u − W/2) / s, y = −(v − H/2) / s with s = max(H, W) / 2
(so the image spans [-1, 1] on its long side, y up), and z = depth_scale × depth (towards the viewer):
an orthographic camera looking down −z. Pixels where `mask` < 0.5 are dropped (no mask: pixels whose
depth is above `min_depth`). At most `points` pixels are kept (a seeded random subset), so the cloud's
size does not depend on the image's.
"""

from __future__ import annotations

import torch

from .points import PointsError


def lift_image(image: torch.Tensor, depth: torch.Tensor, mask: torch.Tensor | None = None, *, points: int = 4096,
               depth_scale: float = 0.5, min_depth: float = 0.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """One image (H, W, 3) in [0, 1] and its depth (H, W) in [0, 1] → (N, 6) points, N ≤ `points`."""
    height, width = depth.shape
    if image.shape[:2] != depth.shape:
        raise PointsError("depth", f"the depth map is {width}×{height} but the image is "
                                   f"{image.shape[1]}×{image.shape[0]}; resize one of them to match")
    if mask is not None and mask.shape != depth.shape:
        raise PointsError("mask", f"the mask is {mask.shape[1]}×{mask.shape[0]} but the image is {width}×{height}")
    keep = (mask >= 0.5) if mask is not None else (depth > min_depth)
    v, u = keep.nonzero(as_tuple=True)
    if len(v) == 0:
        raise PointsError("mask" if mask is not None else "depth",
                          "no pixel is kept (the mask is empty, or every depth is at or below min_depth); "
                          "nothing to lift")
    if len(v) > points:
        pick = torch.randperm(len(v), generator=generator or torch.Generator().manual_seed(0))[:points]
        v, u = v[pick], u[pick]
    half = max(height, width) / 2
    x = (u.float() + 0.5 - width / 2) / half
    y = -(v.float() + 0.5 - height / 2) / half
    z = depth_scale * depth[v, u].float()
    return torch.cat([torch.stack([x, y, z], 1), image[v, u, :3].float().clamp(0, 1)], 1)
