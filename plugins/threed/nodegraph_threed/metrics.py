"""Scores for generated point clouds: Chamfer distance, colour naming, extents.

    chamfer_distance(a, b)      symmetric Chamfer distance between two clouds (N, ≥3), (M, ≥3): the mean
                                nearest-neighbour Euclidean distance from a to b plus from b to a, halved
                                (Fan et al. 2017 use squared distances; unsquared is in scene units)
    colour_name(points)         the palette colour (shapes.COLOURS) nearest to the cloud's median rgb
    extents(points)             the cloud's bounding-box size (3,) after dropping 1 % outliers per axis
"""

from __future__ import annotations

import torch

from .shapes import COLOURS


def chamfer_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """½ (mean_a min_b |a − b| + mean_b min_a |a − b|) over xyz."""
    d = torch.cdist(a[:, :3].double(), b[:, :3].double())
    return float((d.min(1).values.mean() + d.min(0).values.mean()) / 2)


def colour_name(points: torch.Tensor) -> str:
    """Nearest palette colour to the median rgb of the cloud (robust to a few stray points)."""
    rgb = points[:, 3:6].float().median(0).values
    names = list(COLOURS)
    palette = torch.tensor([COLOURS[n] for n in names])
    return names[int((palette - rgb).norm(dim=1).argmin())]


def extents(points: torch.Tensor) -> torch.Tensor:
    """Bounding-box size per axis between the 1st and 99th percentiles."""
    xyz = points[:, :3].float()
    return xyz.quantile(0.99, dim=0) - xyz.quantile(0.01, dim=0)
