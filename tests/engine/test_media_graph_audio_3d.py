"""A WAV SaveAudio wrote and a GLB / PLY / OBJ SaveMesh or SavePointCloud wrote open as the graph that made it
(nodegraph/media_graph.py): `nodegraph run file.wav` said "a WAV audio file, not a graph file" though SaveAudio
puts the graph in its LIST/INFO ICMT chunk, and the 3D files' graph (GLB asset.extras, PLY / OBJ comment lines)
was read by nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nodegraph import Session
from nodegraph.graph import load_graph
from nodegraph.media_graph import graph_text_from_media


def _run_and_rerun(tmp_path, nodes: dict, allow: list[str]) -> tuple[Path, Path]:
    """The file the graph's saver wrote, and the one the graph read back from that file wrote (another folder)."""
    first = Session(autoload=True, allow=allow, input_dir=tmp_path / "in", output_dir=tmp_path / "out1")
    result = first.run({"format_version": 2, "nodes": nodes})
    (saved,) = [Path(f["path"]) for out in result.outputs.values() for f in out.get("files", [])]
    graph = load_graph(saved)              # what `nodegraph run FILE` and the editor's open read
    second = Session(autoload=True, allow=allow, input_dir=tmp_path / "in", output_dir=tmp_path / "out2")
    again = second.run(graph)
    (rerun,) = [Path(f["path"]) for out in again.outputs.values() for f in out.get("files", [])]
    return saved, rerun


def _graph_of(path: Path) -> dict:
    return json.loads(graph_text_from_media(path.read_bytes()))


def test_a_wav_saveaudio_wrote_runs_back_to_the_same_sound(tmp_path):
    soundfile = pytest.importorskip("soundfile")
    (tmp_path / "in").mkdir()
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)).astype(np.float32)
    soundfile.write(tmp_path / "in" / "tone.wav", tone, 8000)
    saved, rerun = _run_and_rerun(tmp_path, {
        "load": {"type": "audio.LoadAudio", "inputs": {"file": "tone.wav"}},
        "save": {"type": "audio.SaveAudio", "inputs": {"audio": {"node": "load", "output": "audio"},
                                                       "filename_prefix": "sound", "format": "wav"}}}, ["audio"])
    assert _graph_of(saved)["nodes"]["save"]["type"] == "audio.SaveAudio"
    assert soundfile.read(saved)[0].tobytes() == soundfile.read(rerun)[0].tobytes()
    assert _graph_of(rerun) == _graph_of(saved)


@pytest.mark.parametrize("fmt", ["glb", "ply", "obj"])
def test_a_mesh_savemesh_wrote_runs_back_to_the_same_mesh(tmp_path, fmt):
    trimesh = pytest.importorskip("trimesh")
    (tmp_path / "in").mkdir()
    trimesh.creation.box().export(tmp_path / "in" / "box.ply")
    saved, rerun = _run_and_rerun(tmp_path, {
        "load": {"type": "threed.LoadMesh", "inputs": {"file": "box.ply"}},
        "save": {"type": "threed.SaveMesh", "inputs": {"mesh": {"node": "load", "output": "mesh"}, "format": fmt,
                                                       "filename_prefix": "mesh"}}}, ["threed"])
    assert _graph_of(saved)["nodes"]["save"]["inputs"]["format"] == fmt
    assert _graph_of(rerun) == _graph_of(saved)
    strip = lambda data: b"\n".join(line for line in data.split(b"\n") if b"nodegraph" not in line)
    if fmt != "glb":         # the geometry, the embedded text aside (the run record names each run)
        assert strip(saved.read_bytes()) == strip(rerun.read_bytes())
    else:
        one, two = trimesh.load(saved, force="mesh"), trimesh.load(rerun, force="mesh")
        assert np.array_equal(one.vertices, two.vertices) and np.array_equal(one.faces, two.faces)


def test_graph_text_is_not_found_where_none_is_written():
    assert graph_text_from_media(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40)) is None
    assert graph_text_from_media(b"ply\nformat ascii 1.0\ncomment made elsewhere\nend_header\n") is None
    assert graph_text_from_media(b"# nodegraph_run {}\nv 0 0 0\n") is None
    assert graph_text_from_media(b"RIFF\xff\xff\xff\xffWAVELIST\xff\xff\xff\xffINFO") is None   # lying sizes


MESH_FILES_WITHOUT_GRAPH = [     # the attacker's files (hostile5/media), smaller
    ("array.glb", b"glTF\x02\x00\x00\x00\x1b\x00\x00\x00\x07\x00\x00\x00JSON[1,2,3]", "a GLB (binary glTF) 3D file",
     "SaveMesh or SavePointCloud"),
    ("claims_4gb.glb", b"glTF\x02\x00\x00\x00\x1c\x00\x00\x00\xff\xff\xff\xffJSON{}", "a GLB (binary glTF) 3D file",
     "SaveMesh or SavePointCloud"),
    ("no_end_header.ply", b"ply\n" + b"comment x\n" * 1000, "a PLY 3D file", "SaveMesh or SavePointCloud"),
    ("no_newline.ply", b"ply\n" + b"a" * 200_000, "a PLY 3D file", "SaveMesh or SavePointCloud"),
    ("plain.obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "an OBJ 3D file", "SaveMesh"),
    ("damaged.obj", b"# nodegraph \xff\xfe\nv 0 0 0\n", "an OBJ 3D file", "SaveMesh"),
]


@pytest.mark.parametrize(("name", "data", "kind", "saver"), MESH_FILES_WITHOUT_GRAPH,
                         ids=[case[0] for case in MESH_FILES_WITHOUT_GRAPH])
def test_a_3d_file_without_a_graph_says_what_it_is_and_what_saves_one(tmp_path, name, data, kind, saver):
    """A GLB or PLY with no graph said "not valid JSON: Expecting value at line 1, column 1" (a GLB whose JSON chunk
    claims 4 GB: "not UTF-8 text"); like a WAV, it is named, with the node that stores a graph in such a file."""
    from nodegraph.graph import GraphValidationError

    (tmp_path / name).write_bytes(data)
    with pytest.raises(GraphValidationError) as caught:
        load_graph(tmp_path / name)
    (error,) = caught.value.errors
    assert error.message.startswith(f"{name} is {kind}, not a graph file; no graph could be read from it: {saver} ")
    assert error.details == {"file_kind": kind}


def test_a_graph_saved_with_the_obj_suffix_still_opens(tmp_path):
    """An OBJ has no magic bytes, so one is known by its suffix, unless its text is a JSON object (a graph)."""
    (tmp_path / "graph.obj").write_text('{"format_version": 2, "nodes": {}}')
    assert load_graph(tmp_path / "graph.obj").nodes == {}
