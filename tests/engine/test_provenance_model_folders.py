"""Run records keep model folders (diffusers pipelines) and upscaler files, which they silently left out."""

from __future__ import annotations

import hashlib
import types

from nodegraph import Session
from nodegraph.graph import parse_graph
from nodegraph.model_paths import ModelPaths
from nodegraph.provenance import folder_sha256, run_record


def _context(session: Session, nodes: dict) -> types.SimpleNamespace:
    graph = parse_graph({"format_version": 2, "nodes": nodes})
    return types.SimpleNamespace(graph=graph, services={
        "registry": session.registry, "resolve_file": lambda f, n: session.model_paths.resolve(f, n)})


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_diffusers_folder_is_recorded_as_its_files_hashes_and_one_hash_over_them(tmp_path):
    """A pipeline folder as ckpt_name was dropped from the record (hashing a folder raised IsADirectoryError,
    taken for a missing file); now each file's SHA-256 is kept and `sha256` is that of the sha256sum lines."""
    pipeline = tmp_path / "models" / "checkpoints" / "sd15_diffusers"
    (pipeline / "unet").mkdir(parents=True)
    (pipeline / ".cache").mkdir()
    (pipeline / "model_index.json").write_bytes(b"{}")
    (pipeline / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"unet weights")
    (pipeline / ".cache" / "download.lock").write_bytes(b"hidden: not a model file")
    session = Session(model_paths=ModelPaths(roots=[tmp_path / "models"]), output_dir=tmp_path / "out")
    context = _context(session, {"ckpt": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "sd15_diffusers"}}})

    entry = run_record(context)["models"]["ckpt.ckpt_name"]

    files = {"model_index.json": _sha(b"{}"), "unet/diffusion_pytorch_model.safetensors": _sha(b"unet weights")}
    manifest = "".join(f"{digest}  {name}\n" for name, digest in sorted(files.items()))
    assert entry == {"folder": "checkpoints", "name": "sd15_diffusers", "sha256": _sha(manifest.encode()),
                     "files": files}
    (pipeline / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"other weights")
    assert folder_sha256(pipeline)["sha256"] != entry["sha256"]


def test_an_upscale_model_file_is_recorded_and_a_built_in_name_is_not(tmp_path):
    """LoadUpscaleModel's file was missing from every record (its model_name declares no model folder, since
    built-in names are no file); a file name is now recorded with its SHA-256, a built-in name adds nothing."""
    folder = tmp_path / "models" / "upscale_models"
    folder.mkdir(parents=True)
    (folder / "4x_tiny.safetensors").write_bytes(b"upscaler weights")
    session = Session(model_paths=ModelPaths(roots=[tmp_path / "models"]), output_dir=tmp_path / "out")

    record = run_record(_context(session, {
        "up": {"type": "LoadUpscaleModel", "inputs": {"model_name": "4x_tiny.safetensors"}},
        "builtin": {"type": "LoadUpscaleModel", "inputs": {"model_name": "realesrgan-x4plus"}}}))

    assert record["models"] == {"up.model_name:4x_tiny.safetensors": {
        "folder": "upscale_models", "name": "4x_tiny.safetensors", "sha256": _sha(b"upscaler weights")}}
