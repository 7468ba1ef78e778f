"""Model folders against files someone else made (an attacker's pass): an extra_model_paths.yaml whose aliases
nest ten deep, model file names that forge lines or no loader accepts, a folder past the walk limit, and a
"directory" that is a device."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from nodegraph import model_paths
from nodegraph.cli import main
from nodegraph.model_paths import MAX_CONFIG_DIRECTORIES, ModelPaths, ModelPathsError


def _alias_bomb(levels: int) -> str:
    """A few hundred bytes of YAML whose `checkpoints` value is a list nested `levels` deep, 10 items a level, all
    shared by aliases (safe_load builds it in microseconds; its full repr is 10**levels items)."""
    anchors = ['&a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    previous = "a"
    for level in range(levels - 1):
        anchors.append(f"&b{level} [{','.join([f'*{previous}'] * 10)}]")
        previous = f"b{level}"
    return f"s:\n  is_default: [{', '.join(anchors)}]\n  checkpoints: *{previous}\n"


def test_an_alias_bomb_in_extra_model_paths_yaml_is_refused_at_once(tmp_path):
    """A 422-byte file took 9 s and 820 MB (one level more: ~8 GB) to format the bad value's whole repr."""
    pytest.importorskip("yaml")
    config = tmp_path / "extra_model_paths.yaml"
    config.write_text(_alias_bomb(8))
    assert len(config.read_bytes()) < 500
    started = time.perf_counter()
    with pytest.raises(ModelPathsError) as info:
        ModelPaths.from_config(config, roots=[])
    assert time.perf_counter() - started < 1.0
    message = str(info.value)
    assert "section 's': 'checkpoints' maps to [[[" in message and "not a directory" in message
    assert len(message) < 600


def test_aliases_used_many_times_cannot_make_a_small_yaml_file_list_millions_of_directories(tmp_path):
    """Sections that alias one mapping of `|` blocks (or of empty entries) read the same text again each time."""
    pytest.importorskip("yaml")
    block = "".join(f"      d{i}\n" for i in range(500))
    sections = "".join(f"s{i}: *m\n" for i in range(2000))
    config = tmp_path / "many.yaml"
    config.write_text(f"first: &m\n  checkpoints: |\n{block}  loras: |\n{block}{sections}")
    started = time.perf_counter()
    with pytest.raises(ModelPathsError, match=f"more than {MAX_CONFIG_DIRECTORIES:,} directories"):
        ModelPaths.from_config(config, roots=[])
    empty = "".join(f"  f{i}: ''\n" for i in range(2000))
    config.write_text(f"first: &m\n{empty}{sections}")
    with pytest.raises(ModelPathsError, match="alias counts each time"):
        ModelPaths.from_config(config, roots=[])
    assert time.perf_counter() - started < 1.0
    spaces = " " * 100_000                # no directory, but 100,000 characters read again at each use
    config.write_text(f"first:\n  blank: &big '{spaces}'\n" + "".join(f"  f{i}: *big\n" for i in range(50)))
    with pytest.raises(ModelPathsError, match="entries add up to more than"):
        ModelPaths.from_config(config, roots=[])
    config.write_text(f"a:\n  checkpoints: /{'x' * 5000}\n")
    with pytest.raises(ModelPathsError, match="a directory of 5,001 characters"):
        ModelPaths.from_config(config, roots=[])
    config.write_text("a: " + "[" * 100_000)
    with pytest.raises(ModelPathsError, match="not valid YAML"):
        ModelPaths.from_config(config, roots=[])


def test_the_json_form_has_the_same_bounds(tmp_path):
    """The JSON form lists at most as many directories, as long, as the YAML form."""
    config = tmp_path / "paths.json"
    config.write_text(json.dumps({"checkpoints": [f"d{i}" for i in range(MAX_CONFIG_DIRECTORIES + 1)]}))
    with pytest.raises(ModelPathsError, match=f"more than {MAX_CONFIG_DIRECTORIES:,} directories"):
        ModelPaths.from_config(config, roots=[])
    config.write_text(json.dumps({"checkpoints": ["x" * 5000]}))
    with pytest.raises(ModelPathsError, match="a directory of 5,000 characters"):
        ModelPaths.from_config(config, roots=[])
    config.write_text(json.dumps({"checkpoints": [[[["a"] * 50] * 50] * 50]}))
    with pytest.raises(ModelPathsError, match=r"lists \[\[\[") as info:
        ModelPaths.from_config(config, roots=[])
    assert len(str(info.value)) < 600
    config.write_text(json.dumps({"checkpoints": [3]}))
    with pytest.raises(ModelPathsError, match="lists 3, not a directory path"):
        ModelPaths.from_config(config, roots=[])


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_listed_directory_that_is_a_device_warns(tmp_path):
    """`loras: /dev/zero` showed only "(missing)" in the searched list, with no warning."""
    config = tmp_path / "paths.json"
    config.write_text(json.dumps({"loras": ["/dev/zero"]}))
    assert ModelPaths.from_config(config, roots=[]).missing_directory_warnings() == [
        f"model path config {str(config)!r}: the loras directory '/dev/zero' is not a folder (a device, a pipe or a "
        f"socket); no model is found there"]


@pytest.mark.skipif(sys.platform == "win32", reason="these names cannot be created on Windows")
def test_models_escapes_names_that_forge_lines_and_marks_names_no_loader_accepts(tmp_path, capsys, monkeypatch):
    """`evil\\nFAKE LINE.safetensors` printed a line of its own, U+202E was printed raw, and names the loaders
    refuse were listed with a bare "?" and offered in the editor's lists."""
    folder = tmp_path / "models" / "loras"
    folder.mkdir(parents=True)
    names = ["evil\nFAKE LINE.safetensors", "rtl\u202egnp.safetensors", "a?b.safetensors", "aux.safetensors",
             "good.safetensors"]
    for name in names:
        (folder / name).write_bytes(b"x" * 10)
    monkeypatch.setenv("NODEGRAPH_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.delenv("NODEGRAPH_MODEL_PATHS", raising=False)
    assert ModelPaths().list("loras")[0] == ["good.safetensors"]      # the editor's choices (list_models)
    assert main(["models", "loras", "--no-plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "loras (5 files, 4 of them cannot be loaded)"
    assert not any(line.startswith("FAKE LINE") for line in lines) and len(lines) == 2 + len(names)
    by_name = {line.split()[0]: line for line in lines[2:]}
    assert "cannot be loaded: contains a control character" in by_name["evil\\x0aFAKE"]
    assert "cannot be loaded: contains a right-to-left" in by_name["rtl\\u202egnp.safetensors"]
    assert "cannot be loaded: contains '?'" in by_name["a?b.safetensors"]
    assert "cannot be loaded: uses the reserved device name 'aux' (rename the file)" in by_name["aux.safetensors"]
    assert "10 B" in by_name["aux.safetensors"] and "cannot" not in by_name["good.safetensors"]
    assert main(["models", "loras", "--no-plugins", "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)["folders"]
    refusals = {f["name"]: f["cannot_load"] for f in listed["files"]}
    assert refusals["good.safetensors"] is None and refusals["aux.safetensors"].startswith("uses the reserved")
    assert listed["stopped"] is False


def test_models_says_when_a_folder_reaches_the_walk_limit(tmp_path, capsys, monkeypatch):
    """A folder of 100,004 files printed `loras (20000 files)` with no word that the listing stopped there."""
    folder = tmp_path / "models" / "loras"
    folder.mkdir(parents=True)
    for i in range(8):
        (folder / f"m{i}.safetensors").write_bytes(b"x")
    monkeypatch.setattr(model_paths, "MAX_ENTRIES", 5)
    monkeypatch.setenv("NODEGRAPH_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.delenv("NODEGRAPH_MODEL_PATHS", raising=False)
    assert main(["models", "loras", "--no-plugins"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "loras (5 files; the first 5 entries searched, files past them not shown: the listing stops there)")
    monkeypatch.setattr(model_paths, "MAX_ENTRIES", 8)       # exactly the limit: everything was seen
    assert main(["models", "loras", "--no-plugins"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "loras (8 files)"
