"""Mesh and point-cloud files: PLY, OBJ and GLB through trimesh, with limits and clear errors.

    write_mesh(path, mesh, format)         MESH dict → .glb (binary glTF 2.0, vertex colours as COLOR_0),
                                           .ply (binary, vertex colours) or .obj (colours after each v)
    write_points(path, points, format)     one cloud (N, C) → .ply (binary, colours, normals) or .glb (POINTS)
    read_mesh(path, argument, warn)        a mesh file → MESH dict (a GLB scene's meshes are merged)
    read_points(path, argument, warn)      a point-cloud file → (N, 6) xyz rgb (a mesh file gives its vertices)
    bake_texture(geometry)                 a textured trimesh → vertex colours sampled from its texture at its UVs
    obj_material_library(path)             the .mtl an OBJ names (`mtllib`) and where it is found (None: missing)
    with_embedded_text(data, format, ...)  a written file with the graph as it ran and the run record in it (GLB
                                           asset.extras, PLY `comment` / OBJ `#` lines); embedded_text(path) reads
    MESH_SUFFIXES, POINT_SUFFIXES, MAX_FILE_BYTES

A PLY without its header (``ply``, ``format``, ``end_header``) or a GLB without the glTF magic is refused
before parsing, saying what is missing. A PLY holding fewer vertices or faces than its header declares (a file
cut short) is refused.
A textured mesh (UVs + a texture image, GLB or OBJ + MTL) is read with its texture baked into vertex colours
(the texture's colour at each vertex's UV: detail finer than the vertex spacing is lost); when the texture cannot
be read (an OBJ whose image file is missing), the mesh loads without colours and ``warn`` says so; so it does
when an OBJ's material library (the .mtl its ``mtllib`` names) is not beside it (trimesh skips it without a word
and the mesh loads grey). The editor uploads GLB, PLY and OBJ only, so an OBJ's .mtl and images go into the input
folder by hand; a GLB holds its textures.
Every write goes to a temporary file beside the target and is renamed over it, so a failed write
leaves nothing half-written. Reads refuse files over MAX_FILE_BYTES, and meshes or clouds beyond the
limits of points.py, with MeshFileError naming the file and the fix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .points import GREY, MAX_FACES, MAX_POINTS, MAX_VERTICES

MESH_SUFFIXES = (".glb", ".ply", ".obj")
POINT_SUFFIXES = (".ply", ".glb")
MAX_FILE_BYTES = 512 * 1024 * 1024
MIME = {"glb": "model/gltf-binary", "ply": "application/x-ply", "obj": "model/obj"}


class MeshFileError(ValueError):
    """A mesh / point-cloud file that cannot be read or written (names the file and the fix)."""


def _rgba(colours: torch.Tensor | None, count: int) -> np.ndarray:
    colours = torch.full((count, 3), GREY) if colours is None else colours.float().clamp(0, 1)
    rgb = (colours.numpy() * 255).round().astype(np.uint8)
    return np.concatenate([rgb, np.full((count, 1), 255, np.uint8)], 1)


def _atomic_write(path: Path, data: bytes | str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_mesh(path: str | Path, mesh: dict, format: str | None = None, embedded: dict[str, str] | None = None) -> None:
    """Write one checked MESH dict as GLB, PLY or OBJ (format from the suffix unless given), carrying `embedded`
    ({"nodegraph": graph JSON, "nodegraph_run": run record JSON}: with_embedded_text)."""
    import trimesh

    path = Path(path)
    format = (format or path.suffix.lstrip(".")).lower()
    if f".{format}" not in MESH_SUFFIXES:
        raise MeshFileError(f"{path.name}: meshes are written as {', '.join(MESH_SUFFIXES)}, not {format!r}")
    vertices, faces = mesh["vertices"].numpy(), mesh["faces"].numpy()
    shape = trimesh.Trimesh(vertices=vertices, faces=faces, vertex_colors=_rgba(mesh.get("colors"), len(vertices)),
                            process=False)
    if format == "obj":
        data = shape.export(file_type="obj", include_color=True, include_normals=True)
    else:
        data = shape.export(file_type=format)
    _atomic_write(path, with_embedded_text(data, format, embedded))


def write_points(path: str | Path, points: torch.Tensor, format: str | None = None,
                 embedded: dict[str, str] | None = None) -> None:
    """Write one cloud (N, C) as PLY (xyz, rgb, and normals when C = 9) or GLB (a glTF POINTS primitive), carrying
    `embedded` as write_mesh does."""
    import trimesh

    path = Path(path)
    format = (format or path.suffix.lstrip(".")).lower()
    if f".{format}" not in POINT_SUFFIXES:
        raise MeshFileError(f"{path.name}: point clouds are written as {', '.join(POINT_SUFFIXES)}, not {format!r}")
    xyz = points[:, :3].double().numpy()
    colours = _rgba(points[:, 3:6] if points.shape[1] >= 6 else None, len(xyz))
    if format == "ply":
        data = _points_ply(xyz.astype(np.float32), colours[:, :3],
                           points[:, 6:9].float().numpy() if points.shape[1] >= 9 else None)
    else:
        data = trimesh.PointCloud(xyz, colors=colours).export(file_type="glb")
    _atomic_write(path, with_embedded_text(data, format, embedded))


MAX_HEADER_TEXT = 60_000     # PLY comment / OBJ comment bytes at most: loaders look for end_header in 64 KB


def with_embedded_text(data: bytes | str, format: str, embedded: dict[str, str] | None) -> bytes | str:
    """A written file with the graph as it ran and the run record in it, as a PNG carries its "nodegraph" and
    "nodegraph_run" text: GLB `asset.extras` {"nodegraph": {...}, "nodegraph_run": {...}}; PLY `comment KEY
    JSON` header lines and OBJ `# KEY JSON` lines, one JSON a line (ASCII, no newline). What would take a
    PLY / OBJ header past MAX_HEADER_TEXT is left out (the graph before the record)."""
    import json

    kept = {key: value for key, value in (embedded or {}).items() if value}
    if not kept:
        return data
    if format == "glb":
        return _glb_with_extras(bytes(data), {key: json.loads(value) for key, value in kept.items()})
    lines = [f"{key} {json.dumps(json.loads(value), separators=(',', ':'))}" for key, value in kept.items()]
    while lines and sum(len(line) + 10 for line in lines) > MAX_HEADER_TEXT:
        lines.pop(0)
    if format == "obj":
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return "".join(f"# {line}\n" for line in lines) + text
    end = data.index(b"end_header")
    return data[:end] + "".join(f"comment {line}\n" for line in lines).encode("ascii") + data[end:]


def _glb_with_extras(data: bytes, extras: dict) -> bytes:
    """A binary glTF with `extras` merged into its JSON chunk's `asset.extras` (the chunk re-padded with spaces
    to 4 bytes, the lengths rewritten)."""
    import json
    import struct

    length = struct.unpack("<I", data[12:16])[0]
    document = json.loads(data[20:20 + length])
    document.setdefault("asset", {"version": "2.0"}).setdefault("extras", {}).update(extras)
    chunk = json.dumps(document, separators=(",", ":")).encode("utf-8")
    chunk += b" " * (-len(chunk) % 4)
    rest = data[20 + length:]
    return b"glTF" + struct.pack("<II", 2, 12 + 8 + len(chunk) + len(rest)) + struct.pack("<I", len(chunk)) + \
        b"JSON" + chunk + rest


def embedded_text(path: str | Path) -> dict[str, Any]:
    """What with_embedded_text put in a GLB / PLY / OBJ file: {"nodegraph": graph, "nodegraph_run": record} as
    dicts, the keys it lacks left out."""
    import json
    import struct

    data = Path(path).read_bytes()
    if data[:4] == b"glTF":
        length = struct.unpack("<I", data[12:16])[0]
        extras = json.loads(data[20:20 + length]).get("asset", {}).get("extras", {})
        return {key: extras[key] for key in ("nodegraph", "nodegraph_run") if key in extras}
    head = data[:data.index(b"end_header")] if data.startswith(b"ply") else data[:MAX_HEADER_TEXT + 4096]
    found = {}
    for line in head.decode("utf-8", "replace").splitlines():
        words = line.removeprefix("comment ").removeprefix("# ").split(" ", 1)
        if len(words) == 2 and words[0] in ("nodegraph", "nodegraph_run") and words[0] not in found:
            found[words[0]] = json.loads(words[1])
    return found


def _points_ply(xyz: np.ndarray, rgb: np.ndarray, normals: np.ndarray | None) -> bytes:
    """Binary little-endian PLY of a point cloud (x y z [nx ny nz] red green blue)."""
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if normals is not None:
        fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    table = np.empty(len(xyz), dtype=fields)
    table["x"], table["y"], table["z"] = xyz.T
    if normals is not None:
        table["nx"], table["ny"], table["nz"] = normals.T
    table["red"], table["green"], table["blue"] = rgb.T
    kinds = {"<f4": "float", "u1": "uchar"}
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(xyz)}"]
    header += [f"property {kinds[kind]} {name}" for name, kind in fields] + ["end_header", ""]
    return "\n".join(header).encode("ascii") + table.tobytes()


def bake_texture(geometry):
    """(geometry, None) with a texture baked into vertex colours (trimesh's TextureVisuals.to_color: the texture
    sampled at each vertex's UV), or (geometry, why) when it has a texture that cannot be read. Meshes without a
    texture are returned as they are."""
    import trimesh

    visual = getattr(geometry, "visual", None)
    if getattr(visual, "kind", None) != "texture":
        return geometry, None
    try:
        colours = np.asarray(visual.to_color().vertex_colors)
    except Exception as exc:     # a material naming an image that was not found has no image: trimesh fails inside
        return geometry, "the image its material names is missing or unreadable"
    if colours.shape != (len(geometry.vertices), 4):
        return geometry, f"sampling it gave {colours.shape[0]} colours for {len(geometry.vertices)} vertices"
    baked = geometry.copy()
    baked.visual = trimesh.visual.ColorVisuals(baked, vertex_colors=colours)
    return baked, None


def _with_baked_textures(geometries: list, path: Path, warn) -> list:
    """Each geometry with its texture baked into vertex colours; one warning when a texture had to be dropped."""
    baked, problems = [], []
    for geometry in geometries:
        geometry, problem = bake_texture(geometry)
        baked.append(geometry)
        if problem:
            problems.append(problem)
    if problems and warn is not None:
        warn(f"{path.name}: its texture was dropped ({problems[0]}), so the mesh has no colours (grey); put the "
             f"texture image next to the file (an OBJ's .mtl names it), or export the mesh with vertex colours")
    return baked


def obj_material_library(path: Path) -> tuple[str | None, Path | None]:
    """(the name, where it is) of the material library an OBJ names: its first `mtllib` (the one trimesh reads),
    looked up as trimesh's FilePathResolver does (the name, without a leading "/", then its base name, inside the
    OBJ's folder and never outside it). (None, None) when the OBJ names none; (name, None) when it is not there.
    The file is searched mapped, not read: an OBJ may be hundreds of MB."""
    import mmap

    from trimesh.resolvers import FilePathResolver

    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return None, None
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            start = data.find(b"mtllib")
            if start < 0:
                return None, None
            end = data.find(b"\n", start)
            name = data[start + len(b"mtllib"):end if end >= 0 else len(data)].decode("utf-8", "replace").strip()
    if not name:
        return None, None
    resolver = FilePathResolver(str(path))
    for candidate in (name, name.lstrip("/"), os.path.split(name)[-1]):
        try:
            found = resolver.absolute(candidate)
        except ValueError:       # outside the OBJ's folder: trimesh does not read it either
            continue
        if found.is_file():
            return name, found
    return name, None


def obj_materials_not_defined(path: Path, library: Path) -> list[str]:
    """The materials an OBJ uses (`usemtl NAME`) that its material library does not define (`newmtl NAME`): trimesh
    draws their faces grey without a word. The OBJ is searched mapped (it may be hundreds of MB); a library over
    4 MB is no material library and is not read."""
    import mmap
    import re

    if library.stat().st_size > 4 * 1024**2:
        return []
    defined = set(re.findall(rb"(?m)^[ \t]*newmtl[ \t]+(\S+)", library.read_bytes()))
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        used = dict.fromkeys(re.findall(rb"(?m)^[ \t]*usemtl[ \t]+(\S+)", data))     # in order, once each
    return [name.decode("utf-8", "replace") for name in used if name not in defined]


def _warn_missing_material_library(path: Path, warn) -> None:
    """Warn when an OBJ's material library is missing, or lacks a material the OBJ uses: trimesh loads those
    faces grey without a word."""
    name, found = obj_material_library(path)
    if found is not None:
        missing = obj_materials_not_defined(path, found)
        if missing:
            shown = ", ".join(repr(m) for m in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5
                                                               else "")
            warn(f"{path.name} uses the material{'s' if len(missing) > 1 else ''} {shown}, which {name!r} does not "
                 f"define (no `newmtl` of that name), so those faces load grey; add the material to {name} or "
                 f"export the mesh again with its materials")
    if name and found is None:
        warn(f"{path.name} names the material library {name!r}, which is not next to it, so its materials and "
             f"textures are not applied and the mesh loads grey; put {Path(name).name} (and the images it names) "
             f"in the input folder beside {path.name} (the editor uploads GLB, PLY and OBJ files only: copy them "
             f"there by hand), or export the mesh as GLB, which holds its textures")


def _load(path: Path, argument: str, warn=None):
    import trimesh

    if not path.is_file():
        raise MeshFileError(f"{argument}: {path.name} does not exist")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise MeshFileError(f"{argument}: {path.name} is {size} bytes, over the {MAX_FILE_BYTES}-byte limit; "
                            f"simplify or split it")
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise MeshFileError(f"{argument}: {path.name}: expected a {', '.join(MESH_SUFFIXES)} file")
    _check_signature(path, argument, suffix)
    _check_declared_size(path, argument, suffix)
    try:
        loaded = trimesh.load(str(path), file_type=suffix.lstrip("."), process=False)
    except Exception:            # trimesh raises many kinds (IndexError, KeyError...) for damaged files
        raise MeshFileError(f"{argument}: {path.name} is not a readable {suffix} file (its data does not match "
                            f"what a {suffix} file holds: damaged, cut short, or another kind of file renamed); "
                            f"check that it is a whole {suffix} file, or re-export it (PLY, OBJ or GLB)") from None
    if suffix == ".obj" and warn is not None:
        _warn_missing_material_library(path, warn)
    if isinstance(loaded, trimesh.Scene):
        geometries = list(loaded.dump()) if loaded.geometry else []
        if not geometries:
            raise MeshFileError(f"{argument}: {path.name} holds no geometry")
        meshes = _with_baked_textures([g for g in geometries if isinstance(g, trimesh.Trimesh)], path, warn)
        return trimesh.util.concatenate(meshes) if meshes else geometries[0]
    return _with_baked_textures([loaded], path, warn)[0]


_PLY_FORMATS = ("ascii", "binary_little_endian", "binary_big_endian")


def _check_signature(path: Path, argument: str, suffix: str) -> None:
    """Refuse a PLY without its header (``ply``, a ``format`` line, ``end_header``) or a GLB without the glTF
    magic, saying what is missing: a renamed or damaged file gets a clear error before trimesh parses it."""
    if suffix not in (".ply", ".glb"):
        return
    with open(path, "rb") as handle:
        head = handle.read(65536)
    fix = f"check that it is a whole {suffix} file, or re-export it (PLY, OBJ or GLB)"
    if suffix == ".glb":
        if not head.startswith(b"glTF"):
            raise MeshFileError(f"{argument}: {path.name} is not a binary glTF file: it does not start with the "
                                f"'glTF' magic bytes (another kind of file renamed, or damaged); {fix}")
        return
    if head.split(b"\n", 1)[0].strip() != b"ply":
        raise MeshFileError(f"{argument}: {path.name} is not a PLY file: its first line is not 'ply' (another kind "
                            f"of file renamed, or damaged); {fix}")
    if b"end_header" not in head:
        raise MeshFileError(f"{argument}: {path.name} has no complete PLY header (no 'end_header' line in its "
                            f"first {len(head)} bytes); {fix}")
    header = head[:head.index(b"end_header")].decode("ascii", "replace").splitlines()
    formats = [line.split()[1] for line in header if line.startswith("format ") and len(line.split()) >= 2]
    if not formats or formats[0] not in _PLY_FORMATS:
        found = repr(formats[0]) if formats else "no format line"
        raise MeshFileError(f"{argument}: {path.name}'s PLY header has no valid format (expected one of "
                            f"{', '.join(_PLY_FORMATS)}, found {found}); {fix}")


MAX_SCENE_VISITS = 100_000      # glTF scene-node visits counted before a file is refused as too deep / too many


def _too_large(argument: str, path: Path, vertices: int, faces: int, how: str) -> MeshFileError | None:
    if vertices > MAX_VERTICES or faces > MAX_FACES:
        return MeshFileError(f"{argument}: {path.name} {how} {vertices} vertices and {faces} faces; the limits are "
                             f"{MAX_VERTICES} and {MAX_FACES} (simplify it, or split it into several files)")
    return None


def glb_declared_counts(path: Path) -> tuple[int, int]:
    """(vertices, faces) a binary glTF's scene holds once every node that places a mesh is counted — what
    trimesh would build — read from its JSON chunk without loading any geometry: a 356 KB file placing one
    10,000-vertex mesh 4,500 times built 45 million vertices (6 GB) before the size check. ValueError when the
    JSON chunk cannot be read or the scene has more than MAX_SCENE_VISITS node visits."""
    import json
    import struct

    with open(path, "rb") as handle:
        header = handle.read(20)
        if len(header) < 20 or header[:4] != b"glTF" or header[16:20] != b"JSON":
            raise ValueError("no JSON chunk where a binary glTF has it")
        length = struct.unpack("<I", header[12:16])[0]
        if length > MAX_FILE_BYTES:
            raise ValueError("a JSON chunk larger than the file limit")
        document = json.loads(handle.read(length))
    accessors, meshes, nodes = (document.get(key) or [] for key in ("accessors", "meshes", "nodes"))

    def count(index: object) -> int:
        item = accessors[index] if isinstance(index, int) and 0 <= index < len(accessors) else {}
        value = item.get("count", 0) if isinstance(item, dict) else 0
        return value if isinstance(value, int) and value > 0 else 0

    def mesh_counts(index: object) -> tuple[int, int]:
        mesh = meshes[index] if isinstance(index, int) and 0 <= index < len(meshes) else {}
        vertices = faces = 0
        for primitive in (mesh.get("primitives") or []) if isinstance(mesh, dict) else []:
            if not isinstance(primitive, dict):
                continue
            points = count((primitive.get("attributes") or {}).get("POSITION"))
            vertices += points
            faces += (count(primitive["indices"]) if "indices" in primitive else points) // 3
        return vertices, faces

    scenes = [s for s in document.get("scenes") or [] if isinstance(s, dict)]
    stack = [n for scene in scenes for n in scene.get("nodes") or []] if scenes else list(range(len(nodes)))
    vertices = faces = visits = 0
    while stack:
        visits += 1
        if visits > MAX_SCENE_VISITS:
            raise ValueError(f"more than {MAX_SCENE_VISITS} scene-node visits (nodes placed inside one another)")
        index = stack.pop()
        node = nodes[index] if isinstance(index, int) and 0 <= index < len(nodes) else {}
        if not isinstance(node, dict):
            continue
        if "mesh" in node:
            more_vertices, more_faces = mesh_counts(node["mesh"])
            vertices, faces = vertices + more_vertices, faces + more_faces
        stack.extend(child for child in node.get("children") or [] if isinstance(child, int))
    if not scenes and not nodes:          # meshes alone, no scene: each once
        for index in range(len(meshes)):
            more_vertices, more_faces = mesh_counts(index)
            vertices, faces = vertices + more_vertices, faces + more_faces
    return vertices, faces


def _check_declared_size(path: Path, argument: str, suffix: str) -> None:
    """Refuse a file whose declared geometry is over the limits before trimesh builds it (it built every copy
    first): a GLB's scene counted from its JSON, a PLY's header counts, an OBJ's vertex and face lines."""
    if suffix == ".glb":
        try:
            vertices, faces = glb_declared_counts(path)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise MeshFileError(f"{argument}: {path.name} has a glTF scene that cannot be read safely ({exc}); "
                                f"re-export it (PLY, OBJ or GLB)") from None
        problem = _too_large(argument, path, vertices, faces, "places")
    elif suffix == ".ply":
        declared = ply_declared_counts(path)
        problem = _too_large(argument, path, declared.get("vertex", 0), declared.get("face", 0), "declares")
    elif suffix == ".obj":
        vertices, faces, bad_face = obj_counts(path)
        problem = _too_large(argument, path, vertices, faces, "holds")
        if problem is None and bad_face is not None:
            number, line, index = bad_face
            problem = MeshFileError(f"{argument}: {path.name}: face {number} (line {line}) uses vertex {index}, but "
                                    f"the file has {vertices} vertices (1 … {vertices}); the file is damaged or was "
                                    f"cut short: copy the whole file again, or re-export it (PLY, OBJ or GLB)")
    else:
        problem = None
    if problem is not None:
        raise problem


def _obj_vertex_index(corner: bytes) -> int | None:
    """The vertex number of an OBJ face corner ``v``, ``v/vt``, ``v//vn`` or ``v/vt/vn``; None if not a number."""
    try:
        return int(corner.split(b"/", 1)[0])
    except ValueError:
        return None


def obj_counts(path: Path) -> tuple[int, int, tuple[int, int, int] | None]:
    """(vertices, triangles, bad face) of an OBJ, read line by line without building it. A bad face is (face
    number, line number, vertex index as written) of a face whose corner names a vertex the file does not have
    (1-based; negative indices count back from the vertices read so far): the first with a negative index out of
    range, or the one with the highest index past the last vertex, whichever comes first; None when all fit."""
    vertices = faces = face_number = 0
    bad_face = None
    highest: tuple[int, int, int] | None = None      # the face naming the highest positive index, checked at the end
    with open(path, "rb") as handle:
        for line_number, line in enumerate(handle, 1):
            if line.startswith(b"v "):
                vertices += 1
            elif line.startswith(b"f "):
                face_number += 1
                corners = line.split()[1:]
                faces += max(1, len(corners) - 2)           # a polygon of n corners is n - 2 triangles
                for index in filter(None, map(_obj_vertex_index, corners)):
                    if index < 0 and vertices + index < 0 and bad_face is None:
                        bad_face = (face_number, line_number, index)
                    elif index > 0 and (highest is None or index > highest[2]):
                        highest = (face_number, line_number, index)
    if highest is not None and highest[2] > vertices and (bad_face is None or highest[0] < bad_face[0]):
        bad_face = highest
    return vertices, faces, bad_face


def ply_declared_counts(path: Path) -> dict[str, int]:
    """The element counts a PLY header declares ({"vertex": 100, "face": 96}); {} when there is no readable
    header (trimesh then says what is wrong)."""
    counts: dict[str, int] = {}
    with open(path, "rb") as handle:
        head = handle.read(65536)
    if not head.startswith(b"ply") or b"end_header" not in head:
        return {}
    for line in head[:head.index(b"end_header")].decode("ascii", "replace").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "element" and parts[2].isdigit():
            counts[parts[1]] = int(parts[2])
    return counts


def _check_complete(path: Path, argument: str, found: dict[str, int]) -> None:
    """Refuse a PLY that holds fewer vertices / faces than its header declares (a file cut short)."""
    if path.suffix.lower() != ".ply":
        return
    declared = ply_declared_counts(path)
    for element, count in found.items():
        if declared.get(element, 0) > count:
            noun = {"vertex": "vertices", "face": "faces"}.get(element, f"{element} elements")
            raise MeshFileError(f"{argument}: {path.name} is truncated: its header declares {declared[element]} "
                                f"{noun} but the file holds {count}; the copy or download was cut "
                                f"short: copy the whole file again, or re-export it from the program that made it")


def _colours(geometry, count: int) -> torch.Tensor | None:
    colours = getattr(getattr(geometry, "visual", None), "vertex_colors", None)
    if colours is None:
        colours = getattr(geometry, "colors", None)
    if colours is None or len(colours) != count:
        return None
    return torch.from_numpy(np.asarray(colours)[:, :3].astype(np.float32) / 255.0)


def read_mesh(path: str | Path, argument: str = "file", warn=None) -> dict:
    """A mesh file → {"vertices", "faces", "colors"}; MeshFileError for unreadable, empty or over-limit files.
    A texture is baked into the colours; ``warn(message)`` is told when one had to be dropped."""
    import trimesh

    path = Path(path)
    geometry = _load(path, argument, warn)
    if not isinstance(geometry, trimesh.Trimesh) or len(geometry.faces) == 0:
        raise MeshFileError(f"{argument}: {path.name} holds no triangles (a point cloud? use LoadPointCloud)")
    if len(geometry.vertices) > MAX_VERTICES or len(geometry.faces) > MAX_FACES:
        raise MeshFileError(f"{argument}: {path.name} has {len(geometry.vertices)} vertices and "
                            f"{len(geometry.faces)} faces; the limits are {MAX_VERTICES} and {MAX_FACES}")
    _check_complete(path, argument, {"vertex": len(geometry.vertices), "face": len(geometry.faces)})
    vertices = torch.from_numpy(np.asarray(geometry.vertices, dtype=np.float32).copy())
    if not bool(torch.isfinite(vertices).all()):
        raise MeshFileError(f"{argument}: {path.name} has NaN or infinite vertex coordinates")
    faces = torch.from_numpy(np.asarray(geometry.faces, dtype=np.int64).copy())
    colours = _colours(geometry, len(vertices))
    return {"vertices": vertices, "faces": faces, "colors": colours}


def read_points(path: str | Path, argument: str = "file", warn=None) -> torch.Tensor:
    """A point-cloud file (PLY / GLB points, or any mesh file: its vertices, a texture baked into their colours)
    → (N, 6) xyz rgb; ``warn(message)`` is told when a texture had to be dropped."""
    path = Path(path)
    geometry = _load(path, argument, warn)
    vertices = np.asarray(getattr(geometry, "vertices", np.zeros((0, 3))), dtype=np.float32)
    _check_complete(path, argument, {"vertex": len(vertices)})
    if len(vertices) == 0:
        raise MeshFileError(f"{argument}: {path.name} holds no points")
    if len(vertices) > MAX_POINTS:
        raise MeshFileError(f"{argument}: {path.name} has {len(vertices)} points, over the limit of {MAX_POINTS}")
    xyz = torch.from_numpy(vertices.copy())
    if not bool(torch.isfinite(xyz).all()):
        raise MeshFileError(f"{argument}: {path.name} has NaN or infinite point coordinates")
    colours = _colours(geometry, len(xyz))
    return torch.cat([xyz, torch.full_like(xyz, GREY) if colours is None else colours], 1)


