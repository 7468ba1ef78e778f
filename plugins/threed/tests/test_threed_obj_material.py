"""An OBJ whose material library (the .mtl its `mtllib` names) is missing loaded grey without a word (a tester's
no_mtl.obj; in the editor, which uploads GLB / PLY / OBJ only, every textured OBJ did). LoadMesh and LoadPointCloud
now warn, naming the file and the fixes, and a .mtl copied in afterwards is read on the next run (not cached)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nodegraph import Session
from nodegraph.model_paths import ModelPaths
from nodegraph_threed import nodes as plugin
from nodegraph_threed.mesh_files import obj_material_library

torch.set_num_threads(1)

NO_MTL = """mtllib model.mtl
usemtl m
v 0 0 0
v 1 0 0
v 1 1 0
v 0 1 0
vt 0.1 0.5
vt 0.9 0.5
vt 0.9 0.6
vt 0.1 0.6
f 1/1 2/2 3/3
f 1/1 3/3 4/4
"""


@pytest.fixture()
def session(tmp_path):
    (tmp_path / "in").mkdir()
    return Session(plugins=[("threed", plugin)], autoload=False, output_dir=tmp_path / "out",
                   input_dir=tmp_path / "in", model_paths=ModelPaths(roots=[tmp_path / "models"]))


def _textured_cube_obj(folder: Path) -> None:
    """textured.obj with material.mtl and material_0.png (flat green) beside it, as trimesh exports them."""
    import trimesh

    cube = trimesh.creation.box(extents=(2, 2, 2))
    uv = np.random.default_rng(0).random((len(cube.vertices), 2))
    visual = trimesh.visual.TextureVisuals(uv=uv, image=Image.new("RGB", (4, 4), (0, 255, 0)))
    trimesh.Trimesh(cube.vertices, cube.faces, visual=visual, process=False).export(folder / "textured.obj")


def _load_both(session: Session, name: str):
    graph = {"format_version": 1, "nodes": {"mesh": {"type": "threed.LoadMesh", "inputs": {"file": name}},
                                            "cloud": {"type": "threed.LoadPointCloud", "inputs": {"file": name}}}}
    result = session.run(graph, outputs=["mesh", "cloud"])
    return result, {w["node_id"]: w["message"] for w in result.warnings}


def test_an_obj_whose_mtl_is_missing_loads_with_a_warning(session, tmp_path):
    """The tester's no_mtl.obj: both loaders warn naming model.mtl, the input folder, the editor's upload kinds and
    GLB; the mesh still loads."""
    (tmp_path / "in" / "no_mtl.obj").write_text(NO_MTL)
    result, warnings = _load_both(session, "no_mtl.obj")
    assert set(warnings) == {"mesh", "cloud"}
    message = warnings["mesh"]
    assert "no_mtl.obj names the material library 'model.mtl', which is not next to it" in message
    assert "loads grey" in message and "input folder" in message and "GLB, PLY and OBJ files only" in message
    assert "export the mesh as GLB" in message
    assert result.outputs["mesh"]["mesh"]["vertices"].shape == (4, 3)


def test_a_textured_obj_without_its_mtl_warns_and_with_it_does_not(session, tmp_path):
    """A trimesh-exported textured cube: without material.mtl it warns; with it, green and silent."""
    _textured_cube_obj(tmp_path / "in")
    _, warnings = _load_both(session, "textured.obj")
    assert warnings == {}
    (tmp_path / "in" / "material.mtl").rename(tmp_path / "elsewhere.mtl")
    _, warnings = _load_both(session, "textured.obj")
    assert "'material.mtl', which is not next to it" in warnings["mesh"]


def test_a_mtl_copied_in_after_a_grey_load_is_read_on_the_next_run(session, tmp_path):
    """The fingerprint covers the OBJ's material library: the run after the .mtl arrives is not the cached grey
    mesh."""
    _textured_cube_obj(tmp_path / "in")
    (tmp_path / "in" / "material.mtl").rename(tmp_path / "material.mtl")
    result, warnings = _load_both(session, "textured.obj")
    assert "mesh" in warnings
    (tmp_path / "material.mtl").rename(tmp_path / "in" / "material.mtl")
    result, warnings = _load_both(session, "textured.obj")
    colours = result.outputs["mesh"]["mesh"]["colors"]
    assert warnings == {} and torch.allclose(colours, torch.tensor([0.0, 1.0, 0.0]).expand_as(colours))


def test_the_library_is_looked_up_as_trimesh_looks_it_up(tmp_path):
    """By its name, then its base name, inside the OBJ's folder only: an absolute path to a file there is found by
    its base name; a library outside the folder is missing (trimesh does not read it either); no mtllib, none."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "model.mtl").write_text("newmtl m\nKd 0 1 0\n")
    (tmp_path / "outside.mtl").write_text("newmtl m\nKd 1 0 0\n")
    cases = {"plain.obj": ("mtllib model.mtl", "model.mtl", True),
             "absolute.obj": (f"mtllib /somewhere/else/model.mtl", "/somewhere/else/model.mtl", True),
             "parent.obj": ("mtllib ../outside.mtl", "../outside.mtl", False),
             "none.obj": ("# no materials", None, False)}
    for name, (line, expected, found) in cases.items():
        (folder / name).write_text(f"{line}\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
        library, where = obj_material_library(folder / name)
        assert library == expected and (where is not None) == found, name
        if found:
            assert where == (folder / "model.mtl").resolve()


def test_a_material_the_library_does_not_define_is_named(session, tmp_path):
    """`usemtl m` with a model.mtl that defines only `other`: trimesh drew those faces grey without a word."""
    (tmp_path / "in" / "no_mtl.obj").write_text(NO_MTL)
    (tmp_path / "in" / "model.mtl").write_text("newmtl other\nKd 1 0 0\n")
    _, warnings = _load_both(session, "no_mtl.obj")
    assert "uses the material 'm', which 'model.mtl' does not define" in warnings["mesh"]
    (tmp_path / "in" / "model.mtl").write_text("newmtl m\nKd 1 0 0\n")
    _, warnings = _load_both(session, "no_mtl.obj")
    assert not any("does not define" in message for message in warnings.values())
