"""Model folders as an A1111 / ComfyUI user brings them (a real-models user's pass): ComfyUI's
extra_model_paths.yaml, its folder aliases, A1111's directory names written as folder names, directories that are
not there, names hidden by a file of the same name earlier in the search, and `nodegraph models` listing it all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodegraph.cli import main
from nodegraph.model_paths import ModelPaths, ModelPathsError

ROOT = Path(__file__).resolve().parents[2]
ARITHMETIC = str(ROOT / "graphs" / "arithmetic.json")


def _file(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_comfyui_extra_model_paths_yaml_is_read(tmp_path):
    pytest.importorskip("yaml")
    webui = tmp_path / "webui"
    _file(webui / "models" / "Stable-diffusion" / "dream.safetensors")
    _file(webui / "models" / "Lora" / "a.safetensors")
    _file(webui / "models" / "LyCORIS" / "b.safetensors")
    _file(tmp_path / "comfy" / "models" / "clip" / "t5.safetensors")
    config = tmp_path / "extra_model_paths.yaml"
    config.write_text(f"""
a111:
    base_path: {webui}
    checkpoints: models/Stable-diffusion
    configs: models/Stable-diffusion
    loras: |
         models/Lora
         models/LyCORIS
    hypernetworks: models/hypernetworks
comfyui:
    base_path: comfy/
    is_default: true
    clip: models/clip/
""")
    paths = ModelPaths.from_config(config, roots=[])
    assert paths.list("checkpoints")[0] == ["dream.safetensors"]
    assert paths.list("loras")[0] == ["a.safetensors", "b.safetensors"]
    assert paths.list("text_encoders")[0] == ["t5.safetensors"]       # ComfyUI's "clip" is our text_encoders
    known = {"checkpoints", "loras", "text_encoders"}
    assert paths.unknown_folder_warnings(known) == [
        f"model path config {str(config)!r}: ComfyUI folders no node here reads, passed over: configs, hypernetworks"]
    config.write_text("a111:\n    checkpoints: [1, 2]\n")
    with pytest.raises(ModelPathsError, match="not a directory"):
        ModelPaths.from_config(config)


def test_a1111_directory_names_as_folder_names_and_missing_directories_are_said(tmp_path, capsys):
    config = tmp_path / "paths.json"
    _file(tmp_path / "afile")
    config.write_text(json.dumps({"Stable-diffusion": ["."], "loras": ["nowhere", "afile"]}))
    assert main(["validate", ARITHMETIC, "--model-paths", str(config), "--no-plugins"]) == 0
    err = capsys.readouterr().err
    assert "'Stable-diffusion' is not a model folder" in err and "did you mean 'checkpoints'?" in err
    assert f"the loras directory {str(tmp_path / 'nowhere')!r} does not exist" in err
    assert f"the loras directory {str(tmp_path / 'afile')!r} is a file, not a folder" in err


def test_models_lists_files_pickles_and_names_hidden_by_an_earlier_directory(tmp_path, capsys):
    first, second = tmp_path / "a", tmp_path / "b"
    _file(first / "same.safetensors", b"1" * 10)
    _file(second / "same.safetensors", b"2" * 20)
    _file(second / "old.ckpt")
    config = tmp_path / "paths.json"
    config.write_text(json.dumps({"checkpoints": ["a", "b", "gone"]}))
    assert main(["models", "checkpoints", "--model-paths", str(config), "--no-plugins", "--json"]) == 0
    [folder] = json.loads(capsys.readouterr().out)["folders"]
    by_name = {f["name"]: f for f in folder["files"]}
    assert by_name["same.safetensors"]["path"] == str(first / "same.safetensors")
    assert by_name["same.safetensors"]["hidden"] == [str(second / "same.safetensors")]
    assert by_name["old.ckpt"]["pickle"] and not by_name["same.safetensors"]["pickle"]
    assert {"path": str(tmp_path / "gone"), "exists": False} in folder["directories"]
    assert main(["models", "checkpoints", "--model-paths", str(config), "--no-plugins"]) == 0
    out = capsys.readouterr().out
    assert "pickle: loads only with NODEGRAPH_ALLOW_PICKLE=1" in out and "never used" in out
    assert f"{tmp_path / 'gone'} (missing)" in out
    assert main(["models", "checkpointz", "--no-plugins"]) == 2
    assert "no model folder 'checkpointz'" in capsys.readouterr().err
