"""A model given as a folder (a diffusers pipeline: model_index.json, unet/, vae/ …) is stamped for the cache by
its files: the folder's own stamp missed a weight file rewritten inside it, so the next run reused outputs made
from the old weights (a tester's finding)."""

from __future__ import annotations

import os
import time

import pytest

from nodegraph import Input, Node, NodeInputs, Output, Session, hookimpl
from nodegraph.files import MAX_STAMPED_FILES, folder_fingerprint, model_file_stamp
from nodegraph.model_paths import ModelPaths

from .helpers import link


class ReadPipeline(Node):
    """Reads a pipeline folder's UNet weights as text."""

    class Inputs(NodeInputs):
        name: str = Input(model_folder="checkpoints")

    outputs = (Output("text", "STRING"),)

    def run(self, name: str) -> dict:
        folder = self.context.service("model_paths").resolve("checkpoints", name)
        return {"text": (folder / "unet" / "diffusion_pytorch_model.safetensors").read_text()}


class Plugin:
    @hookimpl
    def register_nodes(self):
        return [ReadPipeline]


def _pipeline(folder, weights: str = "one"):
    """A tiny diffusers-style folder: model_index.json and a UNet weight file."""
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    (folder / "unet" / "config.json").write_text("{}")
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_text(weights)
    return folder


def test_a_weight_file_rewritten_inside_a_model_folder_runs_the_loader_again(tmp_path):
    """Rewriting unet/…safetensors in place (same name, same size, old mtime put back) leaves the folder's own
    stamp as it was; the run after it reads the new weights instead of serving the old result."""
    pipeline = _pipeline(tmp_path / "models" / "checkpoints" / "my_model")
    session = Session(plugins=[("pipelines", Plugin())], model_paths=ModelPaths(roots=[tmp_path / "models"]))
    graph = {"format_version": 1, "nodes": {
        "m": {"type": "ReadPipeline", "inputs": {"name": "my_model"}},
        "show": {"type": "ShowValue", "inputs": {"value": link("m", "text")}}}}
    assert session.run(graph).outputs["show"]["value"] == "one"
    assert session.run(graph).executed == []
    weights = pipeline / "unet" / "diffusion_pytorch_model.safetensors"
    before = weights.stat()
    folder_before = (pipeline / "unet").stat()
    weights.write_text("two")                       # same size; the old times put back on the file
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (pipeline / "unet").stat().st_mtime_ns == folder_before.st_mtime_ns
    result = session.run(graph)
    assert result.executed == ["m", "show"] and result.outputs["show"]["value"] == "two"
    assert session.run(graph).executed == []


def test_a_folder_stamp_names_its_files_with_their_sizes_and_times(tmp_path):
    """Same files give the same stamp; a renamed, added or rewritten file (even one whose size and times are put
    back) gives another; hidden files (download locks) are left out, as the run record leaves them out."""
    pipeline = _pipeline(tmp_path / "p")
    stamp = folder_fingerprint(pipeline)
    assert stamp == folder_fingerprint(pipeline) and len(stamp) == 32
    (pipeline / ".cache").mkdir()
    (pipeline / ".cache" / "download.lock").write_text("x")
    assert folder_fingerprint(pipeline) == stamp
    config = pipeline / "unet" / "config.json"
    info = config.stat()
    config.write_text("[]")
    os.utime(config, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert folder_fingerprint(pipeline) != stamp
    changed = folder_fingerprint(pipeline)
    config.rename(pipeline / "unet" / "config2.json")
    assert folder_fingerprint(pipeline) != changed
    (pipeline / "vae").mkdir()
    renamed = folder_fingerprint(pipeline)
    (pipeline / "vae" / "config.json").write_text("{}")
    assert folder_fingerprint(pipeline) != renamed


def test_an_unreadable_or_missing_folder_is_missing_as_a_file_is(tmp_path):
    """A folder that cannot be listed stamps as "missing", as `content_fingerprint` says of an unreadable file."""
    assert model_file_stamp(tmp_path / "nope") == "missing"
    assert folder_fingerprint(tmp_path / "nope") == "missing"
    pipeline = _pipeline(tmp_path / "p")
    if os.geteuid() == 0:
        pytest.skip("root lists a folder whatever its mode")
    pipeline.chmod(0)
    try:
        assert model_file_stamp(pipeline) == "missing" and folder_fingerprint(pipeline) == "missing"
    finally:
        pipeline.chmod(0o755)


def test_an_unreadable_folder_is_missing_even_as_root(tmp_path, monkeypatch):
    """The listing's OSError (what a mode-0 folder gives a user) is "missing", not a traceback."""
    pipeline = _pipeline(tmp_path / "p")

    def refuse(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("nodegraph.files.os.scandir", refuse)
    assert folder_fingerprint(pipeline) == "missing" and model_file_stamp(pipeline) == "missing"


def test_a_file_is_stamped_by_size_and_times_as_before(tmp_path):
    """A single model file keeps the stamp it had (size, mtime, ctime): existing cache keys stay valid."""
    path = tmp_path / "m.safetensors"
    path.write_text("one")
    info = path.stat()
    assert model_file_stamp(path) == f"{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}"


def test_a_link_loop_or_a_huge_folder_ends_quickly(tmp_path):
    """A symlink pointing back up, a folder of more than MAX_STAMPED_FILES files and one 40 levels deep are walked
    to a bound (each real folder once, MAX_STAMPED_FILES entries, MAX_STAMPED_DEPTH levels), not forever."""
    pipeline = _pipeline(tmp_path / "p")
    (pipeline / "unet" / "loop").symlink_to(pipeline, target_is_directory=True)
    (pipeline / "self").symlink_to(".", target_is_directory=True)
    started = time.monotonic()
    assert len(folder_fingerprint(pipeline)) == 32
    assert time.monotonic() - started < 5
    many = tmp_path / "many"
    many.mkdir()
    for index in range(MAX_STAMPED_FILES + 50):
        (many / f"{index:06d}.txt").write_bytes(b"")
    started = time.monotonic()
    stamp = folder_fingerprint(many)
    assert time.monotonic() - started < 5 and len(stamp) == 32
    deep = tmp_path / "deep"
    path = deep
    for level in range(40):
        path = path / f"d{level}"
    path.mkdir(parents=True)
    (path / "w.bin").write_bytes(b"w")
    assert len(folder_fingerprint(deep)) == 32


def test_a_fifo_or_dangling_link_inside_a_folder_does_not_hang_the_stamp(tmp_path):
    """Only regular files are read: a FIFO would block an open() forever; a dangling link is stamped missing."""
    pipeline = _pipeline(tmp_path / "p")
    stamp = folder_fingerprint(pipeline)
    os.mkfifo(pipeline / "pipe")
    assert folder_fingerprint(pipeline) == stamp
    (pipeline / "gone.safetensors").symlink_to(tmp_path / "nowhere")
    assert folder_fingerprint(pipeline) != stamp
