"""Point cloud → mesh (a distance-field occupancy estimate + marching cubes) and mesh → points.

points_to_mesh (for surface samples such as the text-to-points model's output):

1. Centre and scale the cloud into a grid of `resolution`³ voxels (2 voxels of margin).
2. Unsigned distance d(x) from every voxel centre to the nearest point (chunked `torch.cdist`).
3. The *shell* is {d ≤ ε}, with ε = `shell` × the median nearest-neighbour spacing of the points
   (at least one voxel diagonal), thick enough to close the gaps between neighbouring points.
   Pieces of the shell smaller than `min_piece` (25 %) of the largest (islands around stray
   points) are dropped; voxels enclosed by the shell (scipy.ndimage.binary_fill_holes) are inside: this is
   the occupancy estimate. Random samples leave holes wider than the shell, so the shell is
   thickened until it encloses a cavity (up to 3 ε) and the cavity grown back to it (`_enclosed`).
   Signed field: f = d − ε outside, f = d − ε (≤ 0) in the shell, f = −d inside.
4. A Gaussian blur (σ = 1 voxel; positive pockets it pinches off inside are made negative, else each
   would be a bubble) and marching cubes at f = 0 (Lorensen & Cline 1987;
   scikit-image's `measure.marching_cubes`, Lewiner et al. 2003) give the outer surface of the
   shell, which lies about ε outside the true surface: every vertex is moved along its normal
   onto the plane through the centroid of its 8 nearest points (a one-step moving-least-squares
   projection), which also fills the dents a constant offset would leave at gaps between points.
5. Vertex colours: inverse-distance average of the 4 nearest points' colours.

Open clouds (an image lifted to points is a height field, nothing is enclosed) give a thin closed
shell around the surface. Degenerate clouds (all points at one spot) and clouds with fewer than
MIN_POINTS points are refused (PointsError).

    points_to_mesh(points, resolution, shell, min_piece)   (N, C) cloud → MESH dict
    sample_mesh_points(mesh, count, generator, with_normals)   area-weighted surface samples
                                               (N, 6) xyz rgb, or (N, 9) with face normals
    mesh_report(mesh)                           counts of vertices, faces, degenerate faces,
                                               boundary and non-manifold edges (edges in > 2 faces)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .points import GREY, PointsError

MIN_POINTS = 8
MIN_PIECE = 0.25              # default: shell pieces under this fraction of the largest are dropped (strays)
PROJECTION_NEIGHBOURS = 8      # points whose centroid each vertex is projected to (along its normal)
MAX_MESH_POINTS = 16_384          # clouds are subsampled to this for the distance field (cost ∝ points × voxels)
CLOSE_FACTORS = (1.0, 1.5, 2.0, 2.5, 3.0)   # shell thickenings tried, in turn, to close its gaps (`_enclosed`)
MIN_CAVITY = 0.05                 # a cavity under this fraction of the shell's volume is a pocket, not an inside


def _nearest(queries: torch.Tensor, points: torch.Tensor, k: int = 1, chunk: int = 8192,
             check: Any = None) -> tuple[torch.Tensor, ...]:
    """(distances, indices) of the k nearest points for each query, chunked over queries; `check` (a node's
    `context.check_interrupted`) is called between chunks."""
    distances, indices = [], []
    for start in range(0, len(queries), chunk):
        if check is not None:
            check()
        d = torch.cdist(queries[start:start + chunk], points)
        value, index = d.topk(k, dim=1, largest=False)
        distances.append(value)
        indices.append(index)
    return torch.cat(distances), torch.cat(indices)


def _enclosed(in_shell: np.ndarray, epsilon_voxels: float) -> np.ndarray:
    """Voxels the shell encloses (not in it), with the shell's gaps closed first.

    Random surface samples leave holes wider than the shell (a sphere of 1024 points has
    spherical caps with no point ~2.5 median spacings across), and one hole lets the
    outside flow into the cavity: nothing was filled, and marching cubes gave the shell's
    inner wall as well as its outer one, two walls joined by tunnels (volume ~1 % of the
    solid's). So the shell is thickened by (factor − 1) ε for factor in CLOSE_FACTORS until
    it encloses a cavity of at least MIN_CAVITY of its own volume, and that cavity is grown
    back by the same amount, up to the thin shell; pockets left between them are filled. An
    open cloud (a lifted image, a bowl whose rim is wider than the thickest shell) encloses
    nothing at any factor and stays a thin closed shell.
    """
    from scipy import ndimage

    shell_voxels = int(in_shell.sum())
    outside_shell = ndimage.distance_transform_edt(~in_shell)          # voxels from the thin shell
    for factor in CLOSE_FACTORS:
        grow = (factor - 1) * epsilon_voxels
        thick = in_shell | (outside_shell <= grow)
        cavity = ndimage.binary_fill_holes(thick) & ~thick
        if cavity.sum() >= MIN_CAVITY * shell_voxels:
            if grow:
                cavity = (ndimage.distance_transform_edt(~cavity) <= grow + 0.5) & ~in_shell
            # pockets left between the grown cavity and the shell (at edges and corners) are inside too:
            # each would be a bubble of its own in the mesh
            return ndimage.binary_fill_holes(in_shell | cavity) & ~in_shell
    return ndimage.binary_fill_holes(in_shell) & ~in_shell


def points_to_mesh(points: torch.Tensor, resolution: int = 64, shell: float = 2.0,
                   argument: str = "points", min_piece: float = MIN_PIECE,
                   check: Any = None) -> dict[str, torch.Tensor]:
    """One cloud (N, C ≥ 3) → {"vertices", "faces", "colors"} by the method in the module docstring; `check`
    (a node's `context.check_interrupted`) is called as the distance field is computed (resolution 160 ran
    minutes past an interrupt)."""
    from scipy import ndimage
    from skimage import measure

    if len(points) < MIN_POINTS:
        raise PointsError(argument, f"{len(points)} points are too few to mesh; at least {MIN_POINTS} are needed")
    points = points.float()
    if len(points) > MAX_MESH_POINTS:
        keep = torch.randperm(len(points), generator=torch.Generator().manual_seed(0))[:MAX_MESH_POINTS]
        points = points[keep]
    xyz = points[:, :3].double()
    colours = points[:, 3:6] if points.shape[1] >= 6 else torch.full((len(points), 3), GREY)
    low, high = xyz.amin(0), xyz.amax(0)
    span = float((high - low).max())
    if span < 1e-6:
        raise PointsError(argument, "the cloud is degenerate (all points at one spot): there is no surface to mesh")
    spacing = float(_nearest(xyz, xyz, k=2)[0][:, 1].median())
    margin = 2
    voxel = max(span / (resolution - 1 - 2 * margin), 1e-9)
    epsilon = max(shell * spacing, voxel * 1.75)
    pad = epsilon + margin * voxel
    origin = low - pad
    counts = (((high - low) + 2 * pad) / voxel).ceil().long() + 1                # voxels per axis
    if int(counts.max()) > 4 * resolution:
        raise PointsError(argument, "the cloud's points are too far apart for its extent (spacing "
                                    f"{spacing:.3g} vs extent {span:.3g}); use more points or a lower shell")
    axes = [origin[k] + voxel * torch.arange(int(counts[k]), dtype=torch.float64) for k in range(3)]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).view(-1, 3)
    distance = _nearest(grid, xyz, check=check)[0][:, 0].view(*counts.tolist()).numpy()
    in_shell = distance <= epsilon
    labels, count = ndimage.label(in_shell)
    if count > 1 and min_piece > 0:                 # stray points make small islands: keep the big pieces
        sizes = np.bincount(labels.ravel())[1:]
        in_shell = np.isin(labels, 1 + np.flatnonzero(sizes >= min_piece * sizes.max()))
    inside = _enclosed(in_shell, epsilon / voxel)
    field = np.where(inside, -distance, distance - epsilon)
    field[(distance <= epsilon) & ~in_shell] = epsilon            # dropped islands are outside
    field = ndimage.gaussian_filter(field, sigma=1.0)
    voids = ndimage.binary_fill_holes(field <= 0) & (field > 0)     # the blur pinches off dents: no bubbles inside
    field[voids] = -field[voids]
    if field.min() >= 0 or field.max() <= 0:
        raise PointsError(argument, "no surface found in the distance field (the cloud may be degenerate)")
    vertices, faces, normals, _ = measure.marching_cubes(field, level=0.0, spacing=(voxel,) * 3)
    vertices = torch.from_numpy(vertices.copy()) + origin
    normals = torch.from_numpy(normals.copy())                                    # towards lower f: inwards
    normals = normals / normals.norm(dim=1, keepdim=True).clamp_min(1e-12)
    _, near = _nearest(vertices, xyz, k=min(PROJECTION_NEIGHBOURS, len(xyz)))
    centroid = xyz[near].mean(1)                                                   # local mean surface
    vertices = (vertices + normals * ((centroid - vertices) * normals).sum(1, keepdim=True)).float()
    distances, indices = _nearest(vertices, points[:, :3], k=min(4, len(points)))
    weights = 1 / distances.clamp_min(1e-6)
    vertex_colours = (colours[indices] * weights.unsqueeze(-1)).sum(1) / weights.sum(1, keepdim=True)
    return {"vertices": vertices, "faces": torch.from_numpy(faces.astype(np.int64)),
            "colors": vertex_colours.clamp(0, 1).float()}


def sample_mesh_points(mesh: dict, count: int, generator: torch.Generator | None = None, *,
                       with_normals: bool = False) -> torch.Tensor:
    """`count` points uniformly on the mesh surface (by area): (count, 6) xyz rgb, or (count, 9) + face normals."""
    generator = generator or torch.Generator().manual_seed(0)
    vertices, faces = mesh["vertices"].float(), mesh["faces"].long()
    colours = mesh.get("colors")
    colours = torch.full_like(vertices, GREY) if colours is None else colours.float()
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    cross = torch.linalg.cross((b - a).double(), (c - a).double())  # float64: |cross|² is a coordinate to the 4th
    area = cross.norm(dim=1)                                         # power, inf in float32 from ~1e10 on
    if float(area.sum()) <= 0:
        raise PointsError("mesh", "every face has zero area: the mesh has no surface to sample")
    face = torch.multinomial(area.double(), count, replacement=True, generator=generator)
    r1 = torch.rand(count, generator=generator).sqrt().unsqueeze(1)
    r2 = torch.rand(count, generator=generator).unsqueeze(1)
    wa, wb, wc = 1 - r1, r1 * (1 - r2), r1 * r2                                   # Osada et al. 2002
    f = faces[face]
    xyz = wa * vertices[f[:, 0]] + wb * vertices[f[:, 1]] + wc * vertices[f[:, 2]]
    rgb = wa * colours[f[:, 0]] + wb * colours[f[:, 1]] + wc * colours[f[:, 2]]
    out = [xyz, rgb.clamp(0, 1)]
    if with_normals:
        out.append((cross[face] / area[face].clamp_min(1e-12).unsqueeze(1)).float())
    return torch.cat(out, 1)


def mesh_report(mesh: dict) -> dict[str, int]:
    """Counts of vertices, faces, degenerate (zero-area or repeated-vertex) faces, boundary and non-manifold edges."""
    vertices, faces = mesh["vertices"].double(), mesh["faces"].long()
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    area = torch.linalg.cross(b - a, c - a).norm(dim=1)
    repeated = (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).sort(dim=1).values
    _, uses = torch.unique(edges, dim=0, return_counts=True)
    return {"vertices": len(vertices), "faces": len(faces), "degenerate_faces": int(((area <= 1e-14) | repeated).sum()),
            "boundary_edges": int((uses == 1).sum()), "non_manifold_edges": int((uses > 2).sum())}
