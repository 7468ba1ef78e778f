"""Meshes as users hand them over: huge coordinates, textures, faces that name missing vertices."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nodegraph import NodeExecutionError, NodeInputError, Session
from nodegraph.model_paths import ModelPaths
from nodegraph_threed import nodes as plugin
from nodegraph_threed.meshing import sample_mesh_points
from nodegraph_threed.points import MAX_COORDINATE, PointsError, check_mesh, check_points

torch.set_num_threads(1)


@pytest.fixture()
def session(tmp_path):
    """A session with the built-in packs and this plugin, temporary input / output / model folders."""
    (tmp_path / "in").mkdir()
    return Session(plugins=[("threed", plugin)], autoload=False, output_dir=tmp_path / "out",
                   input_dir=tmp_path / "in", model_paths=ModelPaths(roots=[tmp_path / "models"]))


def _cube(scale: float = 1.0):
    import trimesh

    cube = trimesh.creation.box(extents=(2, 2, 2))
    cube.vertices = cube.vertices * scale
    return cube


def _input_error(session: Session, graph: dict) -> NodeInputError:
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph, outputs=list(graph["nodes"]))
    assert isinstance(info.value.exception, NodeInputError), info.value
    return info.value.exception


def _load_and_sample(file: str) -> dict:
    return {"format_version": 1, "nodes": {
        "load": {"type": "threed.LoadMesh", "inputs": {"file": file}},
        "sample": {"type": "threed.SampleMeshPoints", "inputs": {"mesh": {"node": "load", "output": "mesh"},
                                                                "points": 256}},
        "turntable": {"type": "threed.RenderTurntable", "inputs": {"mesh": {"node": "load", "output": "mesh"},
                                                                  "frames": 1, "size": 48}},
    }}


@pytest.mark.parametrize("scale", [1e20, 1e30])
def test_load_mesh_refuses_coordinates_whose_squares_overflow(session, tmp_path, scale):
    """A cube at 1e20 or 1e30 is refused by LoadMesh, naming `file`, the range that works and the fix (it loaded,
    then SampleMeshPoints failed with torch's raw 'invalid multinomial distribution')."""
    _cube(scale).export(tmp_path / "in" / "huge.ply")
    error = _input_error(session, _load_and_sample("huge.ply"))
    assert error.input == "file"
    assert f"{scale:.3g}" in str(error) and "±1e+18" in str(error) and "overflow float32" in str(error)
    assert "scale the mesh down" in str(error)


def test_meshes_up_to_the_limit_sample_and_render_as_the_unit_cube(session, tmp_path):
    """At 1e10 and 1e18 (float32 face areas overflowed from 1e10 on) sampling and the turntable work, and the
    turntable is the unit cube's."""
    for name, scale in (("unit.ply", 1.0), ("e10.ply", 1e10), ("e18.ply", 1e18)):
        _cube(scale).export(tmp_path / "in" / name)
    images = {}
    for name in ("unit.ply", "e10.ply", "e18.ply"):
        graph = _load_and_sample(name)
        result = session.run(graph, outputs=list(graph["nodes"]))
        points = result.outputs["sample"]["points"]
        assert bool(torch.isfinite(points).all()) and points.shape == (1, 256, 6)
        images[name] = result.outputs["turntable"]["images"]
    assert torch.allclose(images["e10.ply"], images["unit.ply"], atol=1e-3)
    assert torch.allclose(images["e18.ply"], images["unit.ply"], atol=1e-3)


def test_meshes_and_clouds_from_other_nodes_are_checked_too():
    """A MESH or POINT_CLOUD made by another node with coordinates beyond ±MAX_COORDINATE is a PointsError naming
    the input; sample_mesh_points itself works at the limit (float64 areas)."""
    cube = _cube()
    mesh = {"vertices": torch.tensor(cube.vertices * 1e20, dtype=torch.float32), "faces": torch.tensor(cube.faces)}
    with pytest.raises(PointsError, match=r"mesh: mesh coordinates reach 1e\+20; coordinates must lie within"):
        check_mesh(mesh, "mesh")
    with pytest.raises(PointsError, match=r"points: point cloud coordinates reach 1e\+30"):
        check_points(torch.full((1, 4, 3), 1e30), "points")
    at_limit = check_mesh({**mesh, "vertices": torch.tensor(cube.vertices * MAX_COORDINATE, dtype=torch.float32)})
    points = sample_mesh_points(at_limit[0], 64, with_normals=True)
    assert bool(torch.isfinite(points).all())
    assert torch.allclose(points[:, 6:9].norm(dim=1), torch.ones(64))


def _textured_cube(folder: Path, image_name: str | None = "green.png"):
    """A cube with UVs and a flat green 4x4 texture, written as textured.glb and textured.obj (+ .mtl + png)."""
    import trimesh

    cube = _cube()
    uv = np.random.default_rng(0).random((len(cube.vertices), 2))
    texture = Image.new("RGB", (4, 4), (0, 255, 0))
    textured = trimesh.Trimesh(cube.vertices, cube.faces, visual=trimesh.visual.TextureVisuals(uv=uv, image=texture),
                               process=False)
    (folder / "textured.glb").write_bytes(textured.export(file_type="glb"))
    textured.export(folder / "textured.obj")           # writes material.mtl and material_0.png beside it


@pytest.mark.parametrize("name", ["textured.glb", "textured.obj"])
def test_a_texture_is_baked_into_vertex_colours(session, tmp_path, name):
    """A cube with a green texture loads green (it loaded with colors None and rendered grey), with no warning."""
    _textured_cube(tmp_path / "in")
    graph = {"format_version": 1, "nodes": {
        "load": {"type": "threed.LoadMesh", "inputs": {"file": name}},
        "cloud": {"type": "threed.LoadPointCloud", "inputs": {"file": name}},
    }}
    result = session.run(graph, outputs=list(graph["nodes"]))
    colours = result.outputs["load"]["mesh"]["colors"]
    assert colours is not None and torch.allclose(colours, torch.tensor([0.0, 1.0, 0.0]).expand_as(colours))
    assert torch.allclose(result.outputs["cloud"]["points"][0, :, 3:6], torch.tensor([0.0, 1.0, 0.0]))
    assert result.warnings == []


def test_a_texture_that_cannot_be_read_is_dropped_with_a_warning(session, tmp_path):
    """An OBJ whose .mtl names a missing image loads grey, and a node warning says the texture was dropped."""
    _textured_cube(tmp_path / "in")
    (tmp_path / "in" / "material_0.png").unlink()
    graph = {"format_version": 1, "nodes": {"load": {"type": "threed.LoadMesh", "inputs": {"file": "textured.obj"}}}}
    result = session.run(graph, outputs=list(graph["nodes"]))
    assert result.outputs["load"]["mesh"]["colors"] is None
    (warning,) = [w["message"] for w in result.warnings]
    assert "textured.obj: its texture was dropped" in warning and "put the texture image next to the file" in warning


def test_an_obj_face_naming_a_missing_vertex_is_named(session, tmp_path):
    """'f 1 2 9' in a 3-vertex OBJ names the face, its line, the vertex and the count (it said 'damaged, cut
    short' only)."""
    (tmp_path / "in" / "bad.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\nf 1 2/5/1 9\n")
    error = _input_error(session, {"format_version": 1, "nodes": {
        "load": {"type": "threed.LoadMesh", "inputs": {"file": "bad.obj"}}}})
    assert error.input == "file"
    assert "face 2 (line 5) uses vertex 9, but the file has 3 vertices (1 … 3)" in str(error)
    (tmp_path / "in" / "negative.obj").write_text("v 0 0 0\nv 1 0 0\nf -1 -2 -4\nv 0 1 0\n")
    error = _input_error(session, {"format_version": 1, "nodes": {
        "load": {"type": "threed.LoadMesh", "inputs": {"file": "negative.obj"}}}})
    assert "face 1 (line 3) uses vertex -4" in str(error)
