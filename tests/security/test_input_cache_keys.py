"""Nodes that read the input folder are keyed by that folder and by what the files hold.

A stranger's pass on a server with users found that bob's run of a graph naming `dataset` came from
the cache with alice's DATASET (bob had no such folder), that alice's dataset stayed at 3 images
after she added a fourth, and that two `dog.png` of the same size and time answered for each other.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from nodegraph import GraphValidationError, NodeExecutionError, Session

from .conftest import link


def _image(path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path, compress_level=0)   # same size for any value


def _load_graph() -> dict:
    return {"format_version": 2, "nodes": {
        "load": {"type": "LoadImage", "inputs": {"image": "dog.png"}},
        "show": {"type": "ShowValue", "inputs": {"value": link("load", "image")}}}}


def _dataset_graph() -> dict:
    return {"format_version": 2, "nodes": {
        "data": {"type": "ImageFolderDataset", "inputs": {"folder": "dataset", "size": 8}},
        "show": {"type": "ShowValue", "inputs": {"value": link("data", "report")}}}}


def _pixel(result) -> int:
    return round(float(result.outputs["show"]["value"][0, 0, 0, 0]) * 255)


def test_two_users_files_of_the_same_name_size_and_time_never_answer_for_each_other(tmp_path):
    session = Session(output_dir=tmp_path / "out")
    alice, bob = tmp_path / "input" / "alice", tmp_path / "input" / "bob"
    _image(alice / "dog.png", 200)
    _image(bob / "dog.png", 30)
    stamp = alice.joinpath("dog.png").stat().st_mtime_ns
    os.utime(bob / "dog.png", ns=(stamp, stamp))           # as cp -p, rsync -t or an unzip would leave it
    assert alice.joinpath("dog.png").stat().st_size == bob.joinpath("dog.png").stat().st_size
    first = session.run(_load_graph(), input_dir=alice, output_dir=tmp_path / "out" / "alice")
    second = session.run(_load_graph(), input_dir=bob, output_dir=tmp_path / "out" / "bob")
    assert (_pixel(first), _pixel(second)) == (200, 30)
    assert "load" not in second.cached


def test_a_file_replaced_by_one_of_the_same_size_and_time_is_read_again(tmp_path):
    session = Session(input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    path = tmp_path / "in" / "dog.png"
    _image(path, 200)
    stamp = path.stat().st_mtime_ns
    assert _pixel(session.run(_load_graph())) == 200
    _image(path, 30)
    os.utime(path, ns=(stamp, stamp))
    assert _pixel(session.run(_load_graph())) == 30
    assert session.run(_load_graph()).executed == []           # unchanged: from the cache


def test_a_dataset_folder_is_keyed_by_its_user_and_its_files(tmp_path):
    session = Session(output_dir=tmp_path / "out")
    alice, bob = tmp_path / "input" / "alice", tmp_path / "input" / "bob"
    bob.mkdir(parents=True)
    for index in range(3):
        _image(alice / "dataset" / f"{index}.png", 50 * index)
        (alice / "dataset" / f"{index}.txt").write_text("a grey square")
    run = session.run(_dataset_graph(), input_dir=alice, output_dir=tmp_path / "out" / "alice")
    assert run.outputs["show"]["value"].startswith("3 images used")
    try:
        leaked = session.run(_dataset_graph(), input_dir=bob, output_dir=tmp_path / "out" / "bob")
    except GraphValidationError as failure:                   # bob has no such folder: his own error, up front
        assert [(e.node_id, e.input) for e in failure.errors] == [("data", "folder")]
    else:
        raise AssertionError(f"bob's run read alice's dataset: {leaked.outputs}")

    _image(alice / "dataset" / "3.png", 250)
    (alice / "dataset" / "3.txt").write_text("a white square")
    again = session.run(_dataset_graph(), input_dir=alice, output_dir=tmp_path / "out" / "alice")
    assert again.outputs["show"]["value"].startswith("4 images used") and "data" not in again.cached
    assert session.run(_dataset_graph(), input_dir=alice, output_dir=tmp_path / "out" / "alice").executed == []


def test_errors_a_client_sees_name_no_server_path(tmp_path):
    """A missing dataset folder and a prefix through an existing file are named as the user wrote them."""
    session = Session(input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    (tmp_path / "in").mkdir()
    try:
        session.run(_dataset_graph())
    except GraphValidationError as failure:                   # found before the run, as the node would
        assert "'dataset'" in str(failure) and str(tmp_path) not in str(failure)
    else:
        raise AssertionError("a missing dataset folder ran")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "afile.png").write_text("")
    _image(tmp_path / "in" / "dog.png", 7)
    graph = {"format_version": 2, "nodes": {
        "load": {"type": "LoadImage", "inputs": {"image": "dog.png"}},
        "save": {"type": "SaveImage", "inputs": {"images": link("load", "image"), "filename_prefix": "afile.png/x"}}}}
    try:
        session.run(graph)
    except NodeExecutionError as failure:
        message = str(failure.exception)
        assert failure.exception.input == "prefix" and "choose another prefix" in message
        assert str(tmp_path) not in message
    else:
        raise AssertionError("a prefix through a file was saved")


def test_a_training_node_is_keyed_by_its_users_output_folder(tmp_path):
    """bob's graph identical to alice's trains into his own output folder instead of coming from the cache
    with alice's result (a training run folder is a place in the output folder: `file_name_in="output"`)."""
    graph = {"format_version": 2, "nodes": {
        "data": {"type": "TinyWorldDataset", "inputs": {"count": 4, "size": 16}},
        "vae": {"type": "TrainVAE", "inputs": {"dataset": link("data", "dataset"), "width": 32, "channel_mult": "1",
                                               "steps": 1, "batch_size": 2, "warmup_steps": 0, "run_name": "v"}},
        "show": {"type": "ShowValue", "inputs": {"value": link("vae", "report")}}}}
    session = Session(output_dir=tmp_path / "out")
    session.run(graph, input_dir=tmp_path / "in", output_dir=tmp_path / "out" / "alice")
    bobs = session.run(graph, input_dir=tmp_path / "in", output_dir=tmp_path / "out" / "bob")
    assert "vae" in bobs.executed and "data" in bobs.cached
    assert (tmp_path / "out" / "bob" / "training" / "v" / "training_state.json").is_file()
    again = session.run(graph, input_dir=tmp_path / "in", output_dir=tmp_path / "out" / "bob")
    assert again.executed == []                                 # the same user's re-run still comes from the cache
