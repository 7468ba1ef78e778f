"""Turntable renders of point clouds and meshes to IMAGE batches, in pure torch.

A camera circles the object about the y axis (azimuths in degrees) at a fixed elevation, looking at
the centre of the object's bounding box; each view is projected orthographically or with a pinhole
perspective camera and drawn by *splatting* with a z-buffer: every point covers a small square of
pixels, and per pixel the nearest point wins (a `scatter_reduce(amin)` over keys depth·N + index,
so ties are broken the same way on every run). Shading = the point's colour × a depth cue (nearer is
brighter, "depth shading") × a Lambert term where normals exist (meshes: face normals; clouds with
9 channels: their normals).

Meshes are drawn as surfels: points sampled on the faces by area (meshing.sample_mesh_points), dense
enough that neighbouring splats overlap, each carrying its face's normal and its interpolated colour.

    render_points(points, size, azimuths, ...)  POINT_CLOUD (B, N, C) → IMAGE (B·F, size, size, 3)
    render_mesh(meshes, size, azimuths, ...)    list of MESH dicts → IMAGE (B·F, size, size, 3)
    turntable_azimuths(frames)                  F evenly spaced azimuths over 360°

Frames are folded into the batch axis clip-major (cloud 0's frames first), the video layout of
docs/plugins.md, so a turntable flows into video nodes as a clip of F frames.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch

BACKGROUND = (0.11, 0.11, 0.13)
LIGHT = (0.35, 0.6, 0.72)       # direction towards the light in camera space (upper left, in front)


def turntable_azimuths(frames: int, start: float = 30.0) -> list[float]:
    """F azimuths in degrees, evenly spaced over a full turn from `start`."""
    return [start + 360.0 * k / frames for k in range(frames)]


def _rotation(azimuth: float, elevation: float) -> torch.Tensor:
    """World → camera rotation: turn by -azimuth about y, then tilt by elevation about x (camera looks down -z)."""
    a, e = math.radians(azimuth), math.radians(elevation)
    about_y = torch.tensor([[math.cos(a), 0.0, -math.sin(a)], [0.0, 1.0, 0.0], [math.sin(a), 0.0, math.cos(a)]])
    about_x = torch.tensor([[1.0, 0.0, 0.0], [0.0, math.cos(e), -math.sin(e)], [0.0, math.sin(e), math.cos(e)]])
    return about_x @ about_y


def _splat(xyz: torch.Tensor, colours: torch.Tensor, normals: torch.Tensor | None, size: int, radius: float,
           azimuth: float, elevation: float, projection: str, depth_shading: float,
           background: Sequence[float]) -> torch.Tensor:
    """One view of centred, unit-scaled points (N, 3) → (size, size, 3)."""
    rotation = _rotation(azimuth, elevation)
    cam = xyz @ rotation.T                                                       # (N, 3); +z towards the camera
    if projection == "perspective":
        distance = 3.0                                                            # camera 3 radii away, ~38° fov
        scale = (distance - 1.0) / (distance - cam[:, 2]).clamp_min(1e-3)
        plane = cam[:, :2] * scale.unsqueeze(1)
    else:
        plane = cam[:, :2]
    half = size / 2
    px = plane[:, 0] * 0.92 * half + half - 0.5                                   # (N,) pixel x
    py = -plane[:, 1] * 0.92 * half + half - 0.5                                  # image y grows downwards
    depth = -cam[:, 2]                                                            # smaller = nearer
    count = len(xyz)
    reach = max(0, int(math.ceil(radius - 0.5)))
    offsets = [(dx, dy) for dx in range(-reach, reach + 1) for dy in range(-reach, reach + 1)
               if dx * dx + dy * dy <= radius * radius + 0.5]
    cx, cy = px.round().long(), py.round().long()
    all_x = torch.cat([cx + dx for dx, _ in offsets])
    all_y = torch.cat([cy + dy for _, dy in offsets])
    index = torch.arange(count).repeat(len(offsets))
    inside = (all_x >= 0) & (all_x < size) & (all_y >= 0) & (all_y < size)
    pixel, index = (all_y * size + all_x)[inside], index[inside]
    rank = torch.empty(count, dtype=torch.long)
    rank[depth.argsort()] = torch.arange(count)                                   # 0 = nearest
    keys = rank[index] * count + index
    best = torch.full((size * size,), count * count, dtype=torch.long)
    best.scatter_reduce_(0, pixel, keys, reduce="amin")
    hit = best < count * count
    winner = best[hit] % count
    shade = torch.ones(count)
    if depth_shading > 0:
        near, far = float(depth.min()), float(depth.max())
        shade = 1 - depth_shading * (depth - near) / max(far - near, 1e-6)
    if normals is not None:
        cam_normals = normals @ rotation.T
        light = torch.tensor(LIGHT)
        lambert = (cam_normals @ (light / light.norm())).abs()                    # two-sided
        shade = shade * (0.35 + 0.65 * lambert)
    image = torch.tensor(background, dtype=torch.float32).repeat(size * size, 1)
    image[hit] = (colours[winner] * shade[winner].unsqueeze(1)).clamp(0, 1)
    return image.view(size, size, 3)


def _frame(xyz: torch.Tensor, robust: bool = False) -> tuple[torch.Tensor, float]:
    """Centre and radius of a cloud: its bounding box's centre and farthest point, or, `robust`, the
    box between the 1st and 99th percentiles and the 99th-percentile distance (a few stray points of
    a generated cloud then do not shrink the object in the frame; they may fall outside it)."""
    if robust and len(xyz) >= 100:
        low, high = xyz.quantile(0.01, dim=0), xyz.quantile(0.99, dim=0)
        centre = (low + high) / 2
        radius = float((xyz - centre).norm(dim=1).quantile(0.99).clamp_min(1e-6)) * 1.05
        return centre, radius
    centre = (xyz.amin(0) + xyz.amax(0)) / 2
    radius = float((xyz - centre).norm(dim=1).max().clamp_min(1e-6))
    return centre, radius


def render_points(points: torch.Tensor, size: int = 256, azimuths: Sequence[float] = (30.0,), *,
                  elevation: float = 20.0, projection: Literal["orthographic", "perspective"] = "orthographic",
                  point_radius: float | None = None, depth_shading: float = 0.45,
                  background: Sequence[float] = BACKGROUND, radius: float | None = None) -> torch.Tensor:
    """POINT_CLOUD (B, N, C) → IMAGE (B·F, size, size, 3), F = len(azimuths); frames of cloud 0 first.

    Each cloud is framed by its own bounding sphere, ignoring the farthest 1 % of points (the same
    for all its frames, so it does not zoom while turning), or, with `radius`, by the sphere of that radius about the origin (the same
    scale for every cloud, to compare sizes). `point_radius` in pixels (default: from the point
    count and image size).
    """
    if points.ndim == 2:
        points = points.unsqueeze(0)
    frames = []
    for cloud in points.float():
        xyz = cloud[:, :3]
        colours = cloud[:, 3:6] if cloud.shape[1] >= 6 else torch.full_like(xyz, 0.8)
        normals = cloud[:, 6:9] if cloud.shape[1] >= 9 else None
        centre, scale = _frame(xyz, robust=True) if radius is None else (torch.zeros(3), radius)
        unit = (xyz - centre) / scale
        splat = point_radius if point_radius is not None else max(1.0, size / 256 * 2.2 * (1024 / len(xyz)) ** 0.5)
        for azimuth in azimuths:
            frames.append(_splat(unit, colours, normals, size, splat, azimuth, elevation, projection, depth_shading,
                                 background))
    return torch.stack(frames)


def render_mesh(meshes: list[dict], size: int = 256, azimuths: Sequence[float] = (30.0,), *,
                elevation: float = 20.0, projection: Literal["orthographic", "perspective"] = "orthographic",
                depth_shading: float = 0.3, background: Sequence[float] = BACKGROUND,
                samples_per_pixel: float = 3.0) -> torch.Tensor:
    """Meshes (checked MESH dicts) → IMAGE (B·F, size, size, 3): surfel splats with face-normal Lambert shading."""
    from .meshing import sample_mesh_points

    frames = []
    for mesh in meshes:
        vertices = mesh["vertices"].float()
        centre, radius = _frame(vertices)
        unit_mesh = {**mesh, "vertices": (vertices - centre) / radius}
        area = _surface_area(unit_mesh["vertices"], mesh["faces"])
        pixel_area = (2 / (0.92 * size)) ** 2                                     # unit-sphere units per pixel
        count = int(min(400_000, max(2_000, samples_per_pixel * area / pixel_area)))
        surfels = sample_mesh_points(unit_mesh, count, torch.Generator().manual_seed(0), with_normals=True)
        xyz, colours, normals = surfels[:, :3], surfels[:, 3:6], surfels[:, 6:9]
        for azimuth in azimuths:
            frames.append(_splat(xyz, colours, normals, size, 1.0, azimuth, elevation, projection, depth_shading,
                                 background))
    return torch.stack(frames)


def _surface_area(vertices: torch.Tensor, faces: torch.Tensor) -> float:
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    return float(torch.linalg.cross((b - a).double(), (c - a).double()).norm(dim=1).sum() / 2)
