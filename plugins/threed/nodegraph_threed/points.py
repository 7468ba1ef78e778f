"""POINT_CLOUD and MESH values: layouts, checks with clear errors, and the point ↔ latent mapping.

Layouts (the core registers both port types; docs/plugins.md "Tensor layouts"):

    POINT_CLOUD   torch float32 (B, N, C), channels last; C = 3 (xyz), 6 (xyz + rgb in [0, 1]) or
                  9 (xyz + rgb + unit normals). y is up; units are the scene's (the shape world fits
                  in about ±1.3).
    MESH          {"vertices": (V, 3) float32, "faces": (F, 3) int64, "colors"?: (V, 3) float32 in [0, 1]}
                  — or a list of such dicts (one per batch item).
    LATENT        a point set for sampling is {"samples": (B, 6, N)}: channels first like every latent,
                  xyz as is and rgb mapped to [-1, 1] (2·rgb − 1), so all six channels have a similar
                  range. `points_to_latent` / `latent_to_points` convert; colourless clouds get grey.

Checks raise PointsError(argument, message): empty clouds, wrong shapes, NaN / inf coordinates,
coordinates beyond ±MAX_COORDINATE, degenerate clouds (all points (nearly) equal), meshes with faces
pointing outside the vertices, and size limits (MAX_POINTS, MAX_VERTICES, MAX_FACES).
"""

from __future__ import annotations

from typing import Any

import torch

MAX_POINTS = 1_000_000          # per cloud: a 1M × 6 float32 cloud is 24 MB; more is refused, not slowly rendered
MAX_VERTICES = 2_000_000
MAX_FACES = 4_000_000
DEGENERATE_EXTENT = 1e-6        # a cloud whose bounding box is smaller than this on every axis has no shape
# Coordinates are float32, whose largest value is 3.4e38: distances and lengths square differences of coordinates
# (|p - q|² up to 3 · (2 · 1e18)² = 1.2e37 stays finite; at 1e20 a cube's squared edge is already inf, and the
# float32 areas overflowed from 1e10 on: SampleMeshPoints failed inside torch.multinomial).
MAX_COORDINATE = 1e18
GREY = 0.7


class PointsError(ValueError):
    """A point cloud or mesh that cannot be used; `argument` names the input, the message the fix."""

    def __init__(self, argument: str, message: str):
        super().__init__(f"{argument}: {message}")
        self.argument = argument
        self.message = message


def _shape(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__} of shape {tuple(shape)}" if shape is not None else type(value).__name__


def _check_coordinates(xyz: torch.Tensor, argument: str, what: str) -> None:
    """Refuse finite coordinates beyond ±MAX_COORDINATE, saying why and what range works."""
    largest = float(xyz.detach().abs().amax()) if xyz.numel() else 0.0
    if largest > MAX_COORDINATE * 1.001:       # the slack: float32 rounding of points sampled on a mesh at the limit
        raise PointsError(argument, f"{what} coordinates reach {largest:.3g}; coordinates must lie within "
                                    f"±{MAX_COORDINATE:.0e}, since the squares of larger ones overflow float32 (largest "
                                    f"3.4e38) when lengths and areas are computed: scale the {what} down (export it in "
                                    f"larger units, e.g. metres instead of nanometres)")


def check_points(points: Any, argument: str = "points", *, min_points: int = 1,
                 allow_degenerate: bool = True) -> torch.Tensor:
    """The POINT_CLOUD tensor (B, N, C) float, checked; a single (N, C) cloud gets a batch axis."""
    if not isinstance(points, torch.Tensor) or not points.is_floating_point() or points.ndim not in (2, 3):
        raise PointsError(argument, f"expected a POINT_CLOUD float tensor (B, N, C) with C = 3, 6 or 9, "
                                    f"found {_shape(points)}")
    if points.ndim == 2:
        points = points.unsqueeze(0)
    batch, count, channels = points.shape
    if channels not in (3, 6, 9):
        raise PointsError(argument, f"expected 3 (xyz), 6 (xyz rgb) or 9 (xyz rgb normal) channels, found {channels}")
    if batch < 1 or count < min_points:
        raise PointsError(argument, f"the point cloud is empty or too small: {batch} cloud(s) of {count} points; "
                                    f"at least {min_points} point(s) are needed")
    if count > MAX_POINTS:
        raise PointsError(argument, f"{count} points per cloud is over the limit of {MAX_POINTS}; subsample it "
                                    f"first (SamplePoints / fewer points)")
    finite = torch.isfinite(points)
    if not bool(finite.all()):
        bad = int((~finite.all(-1)).sum())
        raise PointsError(argument, f"{bad} point(s) have NaN or infinite coordinates or colours; remove them "
                                    f"or fix the node that made them")
    _check_coordinates(points[..., :3], argument, "point cloud")
    if not allow_degenerate:
        extent = points[..., :3].amax(1) - points[..., :3].amin(1)                     # (B, 3)
        flat = (extent.amax(-1) < DEGENERATE_EXTENT).nonzero().flatten().tolist()
        if flat:
            raise PointsError(argument, f"cloud {flat[0]} is degenerate: all its points lie at one spot (extent "
                                        f"< {DEGENERATE_EXTENT}); it has no shape to mesh or render")
    return points.float()


def with_colours(points: torch.Tensor) -> torch.Tensor:
    """(B, N, 6) xyz + rgb: grey for colourless clouds, normals dropped."""
    if points.shape[-1] == 3:
        return torch.cat([points, torch.full_like(points, GREY)], -1)
    return points[..., :6]


def points_to_latent(points: torch.Tensor) -> dict[str, torch.Tensor]:
    """POINT_CLOUD (B, N, C) → LATENT {"samples": (B, 6, N)}: xyz, then rgb as 2·rgb − 1."""
    points = with_colours(points)
    latent = torch.cat([points[..., :3], points[..., 3:6] * 2 - 1], -1)
    return {"samples": latent.transpose(1, 2).contiguous()}


def latent_to_points(samples: torch.Tensor) -> torch.Tensor:
    """(B, 6, N) latent → POINT_CLOUD (B, N, 6): rgb back to [0, 1] (clamped)."""
    points = samples.transpose(1, 2).float()
    return torch.cat([points[..., :3], ((points[..., 3:6] + 1) / 2).clamp(0, 1)], -1).contiguous()


def check_mesh(mesh: Any, argument: str = "mesh") -> list[dict[str, torch.Tensor]]:
    """A MESH value as a list of checked meshes (vertices float32, faces int64, colors or None)."""
    meshes = mesh if isinstance(mesh, (list, tuple)) else [mesh]
    if not meshes:
        raise PointsError(argument, "expected a MESH, found an empty list")
    out = []
    for k, item in enumerate(meshes):
        where = argument if len(meshes) == 1 else f"{argument}[{k}]"
        if not isinstance(item, dict) or "vertices" not in item or "faces" not in item:
            raise PointsError(where, f"expected a MESH dict with 'vertices' (V, 3) and 'faces' (F, 3), found "
                                     f"{_shape(item) if not isinstance(item, dict) else sorted(item)}")
        vertices, faces = torch.as_tensor(item["vertices"]), torch.as_tensor(item["faces"])
        if vertices.ndim != 2 or vertices.shape[1] != 3 or not vertices.is_floating_point():
            raise PointsError(where, f"'vertices' must be float (V, 3), found {_shape(vertices)}")
        if faces.ndim != 2 or faces.shape[1] != 3 or faces.is_floating_point():
            raise PointsError(where, f"'faces' must be integer (F, 3) triangles, found {_shape(faces)} "
                                     f"({faces.dtype})")
        if len(vertices) == 0 or len(faces) == 0:
            raise PointsError(where, f"the mesh is empty ({len(vertices)} vertices, {len(faces)} faces)")
        if len(vertices) > MAX_VERTICES or len(faces) > MAX_FACES:
            raise PointsError(where, f"the mesh has {len(vertices)} vertices and {len(faces)} faces; the limits "
                                     f"are {MAX_VERTICES} and {MAX_FACES}: simplify it (a coarser resolution)")
        if not bool(torch.isfinite(vertices).all()):
            raise PointsError(where, "some vertices have NaN or infinite coordinates")
        _check_coordinates(vertices, where, "mesh")
        if int(faces.min()) < 0 or int(faces.max()) >= len(vertices):
            raise PointsError(where, f"faces index vertices {int(faces.min())} … {int(faces.max())}, but the mesh "
                                     f"has {len(vertices)} vertices (0 … {len(vertices) - 1})")
        colors = item.get("colors")
        if colors is not None:
            colors = torch.as_tensor(colors).float()
            if colors.shape != vertices.shape:
                raise PointsError(where, f"'colors' must be (V, 3) = {tuple(vertices.shape)}, found {_shape(colors)}")
        out.append({"vertices": vertices.float(), "faces": faces.long(),
                    "colors": None if colors is None else colors.clamp(0, 1)})
    return out


def normalise(points: torch.Tensor, extent: float = 1.0) -> torch.Tensor:
    """Centre each cloud on its bounding box and scale its largest half-extent to `extent` (colours kept)."""
    xyz = points[..., :3]
    low, high = xyz.amin(1, keepdim=True), xyz.amax(1, keepdim=True)
    half = ((high - low) / 2).amax(-1, keepdim=True).clamp_min(1e-12)
    return torch.cat([(xyz - (low + high) / 2) / half * extent, points[..., 3:]], -1)
