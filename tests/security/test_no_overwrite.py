"""Save nodes never replace an existing file unless overwrite=true; defaults never name the shipped models."""

from __future__ import annotations

import pytest
import torch

from nodegraph.model_paths import ModelPaths
from nodegraph.node import NodeContext
from nodes.models.controlnet import ControlNet, ControlNetConfig
from nodes.models.nodes import TextEncoder, diffusion_model
from nodes.training.nodes import SaveCheckpoint, SaveControlNet

SHIPPED = ("tiny_world.safetensors", "tiny_world_mask.safetensors")


def _node(cls, tmp_path):
    node = cls()
    node.context = NodeContext("save", cls.__name__, lambda *a: None, lambda nid: None,
                               {"model_paths": ModelPaths(roots=[tmp_path / "models"])})
    return node


def _save_checkpoint(tmp_path, parts, filename="model.safetensors", overwrite=False) -> dict:
    unet, vae, encoder = parts
    return _node(SaveCheckpoint, tmp_path).run(diffusion_model(unet, "m"), TextEncoder(encoder, "sd1"), vae,
                                               filename, "fp16", "", overwrite)


def test_defaults_do_not_name_a_shipped_model():
    """SaveCheckpoint / SaveControlNet default file names are not the shipped models' names; overwrite is off."""
    for cls in (SaveCheckpoint, SaveControlNet):
        inputs = cls.spec.inputs
        assert inputs["filename"].default not in SHIPPED
        assert inputs["overwrite"].default is False
        assert cls.version != "1.0.0"


def test_existing_checkpoint_is_kept_and_the_new_one_numbered(tmp_path, tiny_parts):
    """Saving onto an existing name writes NAME_1, NAME_2 and leaves the original bytes untouched."""
    folder = tmp_path / "models" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"the original")
    first = _save_checkpoint(tmp_path, tiny_parts)
    second = _save_checkpoint(tmp_path, tiny_parts)
    assert (folder / "model.safetensors").read_bytes() == b"the original"
    assert first["model_files"][0]["path"] == str(folder / "model_1.safetensors")
    assert second["model_files"][0]["path"] == str(folder / "model_2.safetensors")
    from nodes.models.loading import load_checkpoint

    assert load_checkpoint(folder / "model_2.safetensors").unet is not None
    assert sorted(p.name for p in folder.iterdir()) == ["model.safetensors", "model_1.safetensors",
                                                        "model_2.safetensors"]     # no temporary files left


def test_saves_warn_when_renamed_and_are_the_same_bytes_for_the_same_model(tmp_path, tiny_parts):
    """A save that took the next free name said nothing (graphs loading the name kept loading the old file); two
    saves of one model differed in bytes (the writer's metadata order changes per process); files were 0600."""
    import hashlib
    import json
    import os

    from nodes.training.nodes import _stable_safetensors

    unet, vae, encoder = tiny_parts
    warned: list[str] = []
    node = SaveCheckpoint()
    node.context = NodeContext("save", "SaveCheckpoint", lambda *a: None, lambda nid: None,
                               {"model_paths": ModelPaths(roots=[tmp_path / "models"])},
                               emit_warning=lambda node_id, message: warned.append(message))
    run = lambda: node.run(diffusion_model(unet, "m"), TextEncoder(encoder, "sd1"), vae,  # noqa: E731
                           "model.safetensors", "fp16", "", False)["model_files"][0]["path"]
    first, second = run(), run()
    assert warned == ["model.safetensors exists, so this was saved as model_1.safetensors (set overwrite to replace "
                      "it); graphs that load model.safetensors still load the old file"]
    digest = lambda path: hashlib.sha256(open(path, "rb").read()).hexdigest()  # noqa: E731
    assert digest(first) == digest(second)
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(first).st_mode & 0o777 == 0o666 & ~umask
    # the header's metadata keys come out sorted whatever order the writer used
    from safetensors.torch import save_file

    path = tmp_path / "shuffled.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"zeta": "1", "alpha": "2", "mid": "3"})
    _stable_safetensors(path)
    size = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8:8 + size])
    assert list(header["__metadata__"]) == ["alpha", "mid", "zeta"]
    from safetensors import safe_open

    with safe_open(str(path), "pt") as file:
        assert file.metadata() == {"zeta": "1", "alpha": "2", "mid": "3"} and file.get_tensor("w").shape == (2,)


def test_overwrite_true_replaces_the_file(tmp_path, tiny_parts):
    """With overwrite=true the named file is replaced (atomically) and no numbered copy appears."""
    folder = tmp_path / "models" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"the original")
    result = _save_checkpoint(tmp_path, tiny_parts, overwrite=True)
    assert result["model_files"][0]["path"] == str(folder / "model.safetensors")
    assert (folder / "model.safetensors").read_bytes() != b"the original"
    assert sorted(p.name for p in folder.iterdir()) == ["model.safetensors"]


def test_controlnet_save_never_overwrites(tmp_path, tiny_parts):
    """SaveControlNet keeps an existing file and writes the next free number."""
    unet, _, _ = tiny_parts
    torch.manual_seed(0)
    net = ControlNet(ControlNetConfig(unet.config, hint_widths=(16, 32, 96, 256)))
    folder = tmp_path / "models" / "controlnet"
    folder.mkdir(parents=True)
    (folder / "my_controlnet.safetensors").write_bytes(b"keep me")
    node = _node(SaveControlNet, tmp_path)
    result = node.run(net, SaveControlNet.spec.inputs["filename"].default, "fp16", False)
    assert (folder / "my_controlnet.safetensors").read_bytes() == b"keep me"
    assert result["model_files"][0]["path"] == str(folder / "my_controlnet_1.safetensors")
    assert result["bytes"] == (folder / "my_controlnet_1.safetensors").stat().st_size


@pytest.mark.parametrize("graph_file", ["graphs/train/train_tiny_world.json", "graphs/train/train_tiny_controlnet.json"])
def test_training_graphs_do_not_overwrite_the_shipped_models(graph_file):
    """The shipped training graphs save without overwrite, so re-running one never replaces a shipped model."""
    import json
    from pathlib import Path

    graph = json.loads((Path(__file__).resolve().parents[2] / graph_file).read_text())
    saves = [n for n in graph["nodes"].values() if n["type"] in ("SaveCheckpoint", "SaveControlNet")]
    assert saves and all(not n["inputs"].get("overwrite", False) for n in saves)


def test_overwrite_of_a_name_a_later_folder_ships_says_it_now_shadows_it(tmp_path):
    """overwrite=true with a shipped model's name wrote it into the first folder, where it silently replaced the
    shipped one in every graph (a stranger's 2-step model became the README's default); it is now said."""
    from nodes.training.nodes import _write_new_file

    first, shipped = tmp_path / "models" / "checkpoints", tmp_path / "shipped"
    first.mkdir(parents=True)
    shipped.mkdir()
    (shipped / "tiny.safetensors").write_bytes(b"shipped")
    said = []

    def write(tmp):
        from safetensors.torch import save_file

        save_file({"x": torch.zeros(1)}, str(tmp))

    path = _write_new_file(first / "tiny.safetensors", True, write, [first, shipped], said.append)
    assert path == first / "tiny.safetensors" and (shipped / "tiny.safetensors").read_bytes() == b"shipped"
    (message,) = said
    assert "now get this file" in message and str(shipped) in message
    said.clear()
    _write_new_file(first / "other.safetensors", True, write, [first, shipped], said.append)
    assert said == []                       # nothing of that name elsewhere: nothing to say
