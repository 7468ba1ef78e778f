"""Every loader node: one pickle policy and one error shape (NodeInputError naming the input, the file, the fix)."""

from __future__ import annotations

import struct
import sys

import pytest
import torch

from nodegraph import Input, Node, NodeExecutionError, NodeInputError, NodeInputs, Output, Session, hookimpl
from nodegraph.model_paths import ModelPaths

# (node type, the input naming the file, model folder)
LOADERS = [
    ("LoadCheckpoint", "ckpt_name", "checkpoints"),
    ("LoadUNet", "unet_name", "unet"),
    ("LoadVAE", "vae_name", "vae"),
    ("LoadTextEncoder", "ckpt_name", "checkpoints"),
    ("LoadLoRA", "lora_name", "loras"),
    ("LoadControlNet", "control_net_name", "controlnet"),
    ("LoadUpscaleModel", "model_name", "upscale_models"),
]
BAD_FILES = ["truncated.safetensors", "random.safetensors", "header_only.safetensors", "pickled.pt",
             "wrong_kind.safetensors"]


class FakeModelParts(Node):
    """A MODEL and TEXT_ENCODER placeholder: LoadLoRA reads its file before it touches either."""

    class Inputs(NodeInputs):
        pass

    outputs = (Output("model", "MODEL"), Output("text_encoder", "TEXT_ENCODER"))

    def run(self) -> dict:
        return {"model": None, "text_encoder": None}


@hookimpl
def register_nodes():
    return [FakeModelParts]


@pytest.fixture(scope="module")
def models(tiny_checkpoint, tmp_path_factory):
    """A models root whose every loader folder holds each kind of bad file."""
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("models")
    good = tiny_checkpoint.read_bytes()
    (header_length,) = struct.unpack("<Q", good[:8])
    generator = torch.Generator().manual_seed(0)
    random_bytes = bytes(torch.randint(0, 256, (4096,), generator=generator, dtype=torch.uint8).tolist())
    for _, _, folder in LOADERS:
        directory = root / folder
        directory.mkdir(exist_ok=True)
        (directory / "truncated.safetensors").write_bytes(good[: len(good) // 2])
        (directory / "random.safetensors").write_bytes(random_bytes)
        (directory / "header_only.safetensors").write_bytes(good[: 8 + header_length])
        torch.save({"state_dict": {"weight": torch.zeros(2, 2)}}, directory / "pickled.pt")
        save_file({"nothing.we.know": torch.zeros(3, 3)}, str(directory / "wrong_kind.safetensors"))
    return root


def _graph(node_type: str, input_name: str, name: str) -> dict:
    inputs = {input_name: name}
    nodes = {}
    if node_type == "LoadLoRA":
        nodes["parts"] = {"type": "FakeModelParts", "inputs": {}}
        inputs.update(model={"node": "parts", "output": "model"},
                      text_encoder={"node": "parts", "output": "text_encoder"})
    nodes["load"] = {"type": node_type, "inputs": inputs}
    return {"format_version": 1, "nodes": nodes}


def _session(models, tmp_path) -> Session:
    return Session(plugins=[("fake_parts", sys.modules[__name__])], model_paths=ModelPaths(roots=[models]),
                   output_dir=tmp_path / "out")


@pytest.mark.parametrize("bad_file", BAD_FILES)
@pytest.mark.parametrize("node_type, input_name, folder", LOADERS, ids=[n for n, _, _ in LOADERS])
def test_bad_files_give_one_error_shape(models, tmp_path, monkeypatch, node_type, input_name, folder, bad_file):
    """Truncated, random, header-only, pickled (no opt-in) and wrong-kind files: NodeInputError(input, file, fix)."""
    monkeypatch.delenv("NODEGRAPH_ALLOW_PICKLE", raising=False)
    with pytest.raises(NodeExecutionError) as info:
        _session(models, tmp_path).run(_graph(node_type, input_name, bad_file), outputs=["load"])
    error = info.value.exception
    assert isinstance(error, NodeInputError), f"{type(error).__name__}: {error}"
    assert error.input == input_name and info.value.node_id == "load"
    message = str(error)
    assert bad_file in message                                                   # names the file
    if bad_file == "pickled.pt":
        assert "NODEGRAPH_ALLOW_PICKLE" in message and "arbitrary code" in message
    else:
        assert any(fix in message for fix in ("copy it again", "choose another", "expected", "is it an SD",
                                              "another architecture", "RRDBNet", "unknown")), message


def test_pickles_load_only_with_the_owners_opt_in(tiny_checkpoint, tmp_path, monkeypatch):
    """A pickled checkpoint is refused by default and loads with the session service or NODEGRAPH_ALLOW_PICKLE=1."""
    from safetensors.torch import load_file

    (tmp_path / "models" / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": load_file(str(tiny_checkpoint))}, tmp_path / "models" / "checkpoints" / "tiny.ckpt")
    monkeypatch.delenv("NODEGRAPH_ALLOW_PICKLE", raising=False)
    graph = _graph("LoadCheckpoint", "ckpt_name", "tiny.ckpt")
    with pytest.raises(NodeExecutionError, match="arbitrary code"):
        _session(tmp_path / "models", tmp_path).run(graph, outputs=["load"])
    session = _session(tmp_path / "models", tmp_path)
    session.services["allow_pickle"] = True
    assert session.run(graph, outputs=["load"]).outputs["load"]["vae"] is not None
    monkeypatch.setenv("NODEGRAPH_ALLOW_PICKLE", "1")
    assert _session(tmp_path / "models", tmp_path).run(graph, outputs=["load"]).outputs["load"]["model"] is not None


def test_a_graph_cannot_opt_in_to_pickles(models, tmp_path):
    """No loader declares an allow_pickle input: the opt-in is never part of a graph."""
    session = _session(models, tmp_path)
    for node_type, _, _ in LOADERS:
        assert not any("pickle" in name for name in session.registry.nodes[node_type].spec.inputs)


def test_missing_file_after_listing_names_the_input(models, tmp_path):
    """A model file removed between validation and the run is a NodeInputError naming the input and the file."""
    import shutil

    from nodegraph.node import NodeContext
    from nodes.models.nodes import LoadVAE

    folder = tmp_path / "m"
    shutil.copytree(models, folder)
    node = LoadVAE()
    node.context = NodeContext("load", "LoadVAE", lambda *a: None, lambda nid: None,
                               _session(folder, tmp_path).services)
    (folder / "vae" / "random.safetensors").unlink()
    with pytest.raises(NodeInputError) as info:
        node.run("random.safetensors", "sd")
    assert info.value.input == "vae_name" and "random.safetensors" in str(info.value)
    assert "models/vae" in str(info.value)                                       # and where to put it


def test_damaged_detector_weights_are_a_clear_error(tmp_path):
    """The tiny-world detector's weights file, truncated or random, is a DetectorError naming the file and the fix."""
    from nodes.training.world_detector import DetectorError, load_classifier

    for content in (b"\x00" * 3, b"\xff" * 64):
        path = tmp_path / f"detector_{len(content)}.safetensors"
        path.write_bytes(content)
        with pytest.raises(DetectorError, match="damaged.*delete it to retrain"):
            load_classifier(path, train_if_missing=False)
