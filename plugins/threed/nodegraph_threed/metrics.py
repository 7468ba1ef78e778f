"""Scores for generated point clouds: Chamfer distance, colour naming, extents.

    chamfer_distance(a, b)      symmetric Chamfer distance between two clouds (N, ≥3), (M, ≥3): the mean
                                nearest-neighbour Euclidean distance from a to b plus from b to a, halved
                                (Fan et al. 2017 use squared distances; unsquared is in scene units)
    colour_name(points)         the palette colour (shapes.COLOURS) nearest to the cloud's median rgb
    extents(points)             the cloud's bounding-box size (3,) after dropping 1 % outliers per axis
    reference_bank / nearest_shape   a 1-nearest-neighbour shape classifier: Chamfer distance (after the
                                PointNet judge's normalisation) to one ground-truth cloud of each of the 432 specs
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


def reference_bank(points: int = 256, seed: int = 0) -> tuple[torch.Tensor, list[str]]:
    """One normalised ground-truth cloud of every spec (432 × points × 3) and its shape name: the
    memory of a 1-nearest-neighbour shape classifier over the procedural shapes."""
    from .classifier import normalise_xyz
    from .shapes import all_specs, sample_spec

    generator = torch.Generator().manual_seed(seed)
    specs = all_specs()
    clouds = torch.stack([sample_spec(s, points, generator)[:, :3] for s in specs])
    return normalise_xyz(clouds), [s.shape for s in specs]


def nearest_shape(cloud: torch.Tensor, bank: tuple[torch.Tensor, list[str]], chunk: int = 48) -> str:
    """The shape of the reference cloud nearest (Chamfer, after the same normalisation) to `cloud`."""
    from .classifier import normalise_xyz

    references, names = bank
    keep = torch.randperm(len(cloud), generator=torch.Generator().manual_seed(0))[: references.shape[1]]
    query = normalise_xyz(cloud[keep, :3].float().unsqueeze(0))[0]
    distances = []
    for start in range(0, len(references), chunk):
        d = torch.cdist(query.unsqueeze(0).expand(len(references[start:start + chunk]), -1, -1),
                        references[start:start + chunk])                                  # (R, n, m)
        distances.append((d.min(2).values.mean(1) + d.min(1).values.mean(1)) / 2)
    return names[int(torch.cat(distances).argmin())]
