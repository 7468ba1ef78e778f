"""The `nodegraph` command: exit codes, outputs, events, and a fast start without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nodegraph.cli import main

ROOT = Path(__file__).resolve().parents[2]
ARITHMETIC = str(ROOT / "graphs" / "arithmetic.json")


def test_run_prints_outputs_and_writes_them(tmp_path, capsys):
    """`run` exits 0, prints each output node and writes a JSON summary into --output-dir."""
    assert main(["run", ARITHMETIC, "--output-dir", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "show: 512x768 has 6144 latent cells: a large latent" in out
    summary = json.loads((tmp_path / "out" / "arithmetic.outputs.json").read_text())
    assert summary["outputs"]["show"]["value"].endswith("a large latent")


def test_run_summary_replaces_a_planted_symlink_instead_of_following_it(tmp_path, capsys):
    """<graph>.outputs.json is written by renaming a new file onto the name: a link planted there (to a file
    outside the output folder, or dangling) is replaced, and its target is neither changed nor created."""
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (outside / "victim.json").write_text("original")
    (out / "arithmetic.outputs.json").symlink_to(outside / "victim.json")
    assert main(["run", ARITHMETIC, "--output-dir", str(out)]) == 0
    assert (outside / "victim.json").read_text() == "original"
    summary = out / "arithmetic.outputs.json"
    assert not summary.is_symlink() and "outputs" in json.loads(summary.read_text())
    (out / "arithmetic.outputs.json").unlink()
    (out / "arithmetic.outputs.json").symlink_to(outside / "created.json")          # dangling
    assert main(["run", ARITHMETIC, "--output-dir", str(out)]) == 0
    assert not (outside / "created.json").exists() and sorted(p.name for p in outside.iterdir()) == ["victim.json"]
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_run_with_overrides_and_event_stream(tmp_path, capsys):
    """--set changes literals; --events - writes one JSON object per line on stdout."""
    assert main(["run", ARITHMETIC, "--set", "width.value=64", "--set", "height.value=64",
                 "--events", "-", "--output-dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    events = [json.loads(line) for line in captured.out.splitlines()]
    assert events[0]["type"] == "run_started" and events[-1]["type"] == "run_finished"
    assert {"node_started", "node_finished"} <= {e["type"] for e in events}
    assert "a small latent" in captured.err
    summary = json.loads((tmp_path / "arithmetic.outputs.json").read_text())      # enough to run it again
    assert summary["graph"]["nodes"]["width"]["inputs"]["value"] == 64 and summary["graph"]["format_version"] == 2
    assert summary["provenance"]["nodegraph"] and summary["provenance"]["models"] == {}


def test_run_events_to_file(tmp_path):
    """--events FILE writes the stream to a file."""
    events_file = tmp_path / "events.jsonl"
    assert main(["run", ARITHMETIC, "--events", str(events_file), "--output-dir", str(tmp_path)]) == 0
    lines = events_file.read_text().splitlines()
    assert json.loads(lines[-1])["type"] == "run_finished"


def test_run_invalid_graph_exits_1_with_readable_errors(tmp_path, capsys):
    """An invalid graph gives exit code 1 and one line per error."""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format_version": 1, "nodes": {"x": {"type": "Nope", "inputs": {}}}}))
    assert main(["run", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "unknown_node_type" in err and "'x'" in err


def test_run_failing_node_exits_3(tmp_path, capsys):
    """A node failure gives exit code 3 naming the node; --traceback adds the traceback."""
    graph = tmp_path / "fail.json"
    graph.write_text(json.dumps({"format_version": 1, "nodes": {
        "m": {"type": "Math", "inputs": {"a": 1, "b": 0, "op": "divide"}},
        "s": {"type": "ShowValue", "inputs": {"value": {"node": "m", "output": "result"}}}}}))
    assert main(["run", str(graph), "--traceback"]) == 3
    err = capsys.readouterr().err
    assert "node 'm' (Math) failed" in err and "divide by zero" in err and "Traceback" in err


def test_bad_override_is_a_usage_error(capsys):
    """A malformed --set gives exit code 2 with an example."""
    assert main(["run", ARITHMETIC, "--set", "nonsense"]) == 2
    assert "NODE.INPUT=VALUE" in capsys.readouterr().err


def test_validate_json_output(tmp_path, capsys):
    """`validate --json` prints structured errors and exits 1; a valid graph exits 0."""
    assert main(["validate", ARITHMETIC]) == 0
    capsys.readouterr()
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff not utf-8")
    assert main(["validate", str(bad), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False and report["errors"][0]["code"] == "invalid_json"


def test_nodes_plugins_and_schema_commands(capsys):
    """`nodes --json`, `plugins --json` and `schema` print JSON documents."""
    assert main(["nodes", "--json", "Math"]) == 0
    nodes = json.loads(capsys.readouterr().out)
    assert [n["type"] for n in nodes["nodes"]] == ["Math"] and "schema_hash" in nodes
    assert main(["plugins", "--json"]) == 0
    loaded = {p["name"]: p["source"] for p in json.loads(capsys.readouterr().out)["loaded"]}
    assert loaded["primitives"] == "builtin"
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "nodegraph graph file"


@pytest.mark.parametrize("args", [["--help"], ["validate", ARITHMETIC], ["nodes"]])
def test_fast_commands_do_not_import_torch(args):
    """--help, validate and nodes never import torch (they must start fast)."""
    code = ("import sys\nfrom nodegraph.cli import main\n"
            "try:\n    main(%r)\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')" % (args,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={"NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD": "1", "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip().splitlines()[-1] == "NO-TORCH", out.stderr


def test_node_reference_is_up_to_date(capsys):
    """docs/nodes.md equals `nodegraph nodes --markdown --no-plugins` (regenerate it when nodes change)."""
    assert main(["nodes", "--markdown", "--no-plugins"]) == 0
    assert capsys.readouterr().out == (ROOT / "docs" / "nodes.md").read_text(), \
        "docs/nodes.md is stale: run `scripts/nodegraph nodes --markdown --no-plugins > docs/nodes.md`"


def test_model_paths_config_adds_folders(tmp_path, capsys, monkeypatch):
    """A --model-paths JSON file adds search folders (as for an existing A1111 install)."""
    from nodegraph.model_paths import ModelPaths

    other = tmp_path / "webui" / "Stable-diffusion"
    other.mkdir(parents=True)
    (other / "dream.safetensors").write_bytes(b"x")
    config = tmp_path / "paths.json"
    config.write_text(json.dumps({"checkpoints": ["webui/Stable-diffusion"]}))
    paths = ModelPaths.default(config)
    assert "dream.safetensors" in paths.list("checkpoints")[0]
    assert paths.resolve("checkpoints", "dream.safetensors") == other / "dream.safetensors"
    with pytest.raises(LookupError):
        paths.resolve("checkpoints", "../paths.json")
    monkeypatch.setenv("NODEGRAPH_MODEL_PATHS", str(config))
    assert "dream.safetensors" in ModelPaths.default().list("checkpoints")[0]


def test_a_misspelt_model_folder_in_the_paths_file_is_named(tmp_path, capsys):
    """{"checkpointz": [...]} was accepted and searched by no node, silently: run and validate now warn, naming
    the config, the folder and the closest known folder (standard or a plugin's); known folders say nothing."""
    config = tmp_path / "paths.json"
    config.write_text(json.dumps({"checkpointz": ["."], "loras": ["."]}))
    assert main(["run", ARITHMETIC, "--model-paths", str(config), "--output-dir", str(tmp_path / "o"),
                 "--no-plugins", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "'checkpointz' is not a model folder" in err and "did you mean 'checkpoints'?" in err
    assert "--model-paths" in err and "'loras'" not in err.split("the folders are")[0]


# --- plugin warnings, clashes and the exit status of `plugins` ---------------------------------

class _EntryPoint:
    """An installed plugin as importlib.metadata would list it (name, load(), dist)."""

    def __init__(self, name, obj=None, error=None):
        self.name, self.obj, self.error, self.dist = name, obj, error, None

    def load(self):
        if self.error:
            raise self.error
        return self.obj


def _twin_plugin(value):
    from nodegraph import Node, Output, hookimpl

    class Twin(Node):
        outputs = (Output("value", "INT"),)

        def run(self):
            if value is None:
                raise RuntimeError("the plugin's node broke")
            return {"value": value}

    class Plugin:
        @hookimpl
        def register_nodes(self):
            return [Twin]

    return Plugin()


@pytest.fixture
def clashing_plugins(monkeypatch):
    """Installed plugins 'alpha' and 'beta' (both provide Twin) and 'broken' (fails to import)."""
    from nodegraph import plugins as plugin_loading

    real = plugin_loading._entry_points
    installed = [_EntryPoint("alpha", _twin_plugin(1)), _EntryPoint("beta", _twin_plugin(2)),
                 _EntryPoint("broken", error=ModuleNotFoundError("No module named 'gone'", name="gone"))]
    monkeypatch.setattr(plugin_loading, "_entry_points",
                        lambda group: installed if group == plugin_loading.PLUGIN_GROUP else real(group))
    monkeypatch.delenv("NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD")


def _graph(tmp_path, node_type):
    path = tmp_path / "twin.json"
    path.write_text(json.dumps({"format_version": 1, "nodes": {
        "t": {"type": node_type, "inputs": {}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "t", "output": "value"}}}}}))
    return str(path)


def test_plugins_command_lists_failures_and_clashes_with_fixes_and_exits_4(clashing_plugins, capsys):
    """`nodegraph plugins` shows the failed plugin's error and fix, the clash, and exits 4."""
    assert main(["plugins"]) == 4
    captured = capsys.readouterr()
    assert "FAILED   broken" in captured.out and "pip install gone" in captured.out
    assert "CLASH    alpha + beta" in captured.out and "'alpha' and 'beta'" in captured.out     # both plugins named
    assert "--prefer-plugin Twin=alpha" in captured.out
    assert "1 plugin(s) failed to load" in captured.err
    assert main(["plugins", "--json", "--deny-plugin", "broken"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["clashes"][0]["qualified"] == ["alpha.Twin", "beta.Twin"]
    assert {w["kind"] for w in report["warnings"]} == {"clash", "skipped"}


def test_validate_prints_plugin_warnings_and_includes_them_in_json(clashing_plugins, tmp_path, capsys):
    """`validate` warns on stderr about failed and clashing plugins; --json carries them; the bare name fails."""
    assert main(["validate", _graph(tmp_path, "Twin"), "--json"]) == 1
    captured = capsys.readouterr()
    assert "warning: plugin 'broken' failed to load" in captured.err and "'alpha' and 'beta'" in captured.err
    report = json.loads(captured.out)
    assert report["errors"][0]["code"] == "ambiguous_node_type"
    assert {w["kind"] for w in report["plugin_warnings"]} == {"failed", "clash"}
    assert all("traceback" not in w for w in report["plugin_warnings"])
    assert main(["validate", _graph(tmp_path, "Twin"), "--prefer-plugin", "Twin=beta"]) == 0
    assert main(["validate", _graph(tmp_path, "beta.Twin")]) == 0


def test_run_warns_and_records_plugin_warnings_in_its_summary(clashing_plugins, tmp_path, capsys):
    """`run` prints plugin warnings to stderr and writes them into the outputs summary file."""
    assert main(["run", _graph(tmp_path, "alpha.Twin"), "--output-dir", str(tmp_path / "out"),
                 "--deny-plugin", "beta"]) == 0
    captured = capsys.readouterr()
    assert "show: 1" in captured.out and "plugin 'broken' failed to load" in captured.err
    summary = json.loads((tmp_path / "out" / "twin.outputs.json").read_text())
    assert [w["plugin"] for w in summary["plugin_warnings"] if w["kind"] == "failed"] == ["broken"]


def test_a_plugin_node_failing_at_run_names_the_plugin(monkeypatch, tmp_path, capsys):
    """A plugin node raising in `run` exits 3 and the message names the plugin."""
    from nodegraph import plugins as plugin_loading

    real = plugin_loading._entry_points
    monkeypatch.setattr(plugin_loading, "_entry_points", lambda group: [_EntryPoint("fragile", _twin_plugin(None))]
                        if group == plugin_loading.PLUGIN_GROUP else real(group))
    monkeypatch.delenv("NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD")
    assert main(["run", _graph(tmp_path, "Twin"), "--output-dir", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert "the plugin's node broke" in err and "comes from plugin 'fragile'" in err


def test_plugin_flags_are_checked_and_nodes_accepts_qualified_names(capsys):
    """A malformed --prefer-plugin is a usage error; `nodes` takes qualified and bare names."""
    assert main(["validate", ARITHMETIC, "--prefer-plugin", "Int"]) == 2
    assert "TYPE=PLUGIN" in capsys.readouterr().err
    assert main(["nodes", "--json", "primitives.Int", "Math"]) == 0
    nodes = json.loads(capsys.readouterr().out)["nodes"]
    assert sorted(n["type"] for n in nodes) == ["Int", "Math"]
    assert {n["qualified_type"] for n in nodes} == {"primitives.Int", "primitives.Math"}


def test_a_malformed_preference_in_the_environment_is_a_usage_error(monkeypatch, capsys):
    """NODEGRAPH_PLUGINS_PREFER without '=' exits 2 naming the variable and its form."""
    monkeypatch.setenv("NODEGRAPH_PLUGINS_PREFER", "Int")
    assert main(["validate", ARITHMETIC]) == 2
    assert "NODEGRAPH_PLUGINS_PREFER=Blur=fancy_filters" in capsys.readouterr().err


def test_run_refuses_unusable_output_and_event_paths_before_running(tmp_path, capsys):
    """An empty --output-dir, a file as --output-dir and --events in a missing folder are usage errors (exit 2)
    that name the flag, and nothing is written."""
    (tmp_path / "a_file").write_text("x")
    for args in (["--output-dir", ""], ["--output-dir", str(tmp_path / "a_file")],
                 ["--output-dir", str(tmp_path / "out"), "--events", str(tmp_path / "missing" / "ev.jsonl")]):
        assert main(["run", ARITHMETIC, *args]) == 2
        err = capsys.readouterr().err
        assert ("--output-dir" in err or "events" in err) and "Traceback" not in err
    assert not (tmp_path / "out" / "arithmetic.outputs.json").exists()
    assert not Path("arithmetic.outputs.json").exists()


def test_set_values_follow_the_input_type(tmp_path, capsys):
    """--set of a text input keeps the text as typed (123, true, NaN); NaN / Infinity for a number input are
    refused by name with the other problems (they were usage errors, also for a text input); a quoted number
    for a number input is refused with the fix."""
    assert main(["run", ARITHMETIC, "--set", "large_msg.value=123", "--output-dir", str(tmp_path)]) == 0
    assert "cells: 123" in capsys.readouterr().out
    assert main(["run", ARITHMETIC, "--set", "large_msg.value=NaN", "--output-dir", str(tmp_path)]) == 0
    assert "cells: NaN" in capsys.readouterr().out
    assert main(["run", ARITHMETIC, "--set", "width.value=NaN", "--set", "height.value=Infinity",
                 "--output-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "input 'value' of Int got nan" in err and "got inf" in err and "give a finite number" in err
    assert main(["run", ARITHMETIC, "--set", 'width.value="512"', "--output-dir", str(tmp_path)]) == 1
    assert "without quotes" in capsys.readouterr().err


def test_graph_files_with_a_repeated_node_id_or_an_endless_stream_are_refused(tmp_path, capsys):
    """A node id given twice is an error (JSON would drop one silently); a stream longer than the file limit
    (a pipe or device reports size 0) is refused after the limit, not read to the end."""
    from nodegraph.errors import GraphValidationError
    from nodegraph.graph import load_graph

    repeated = tmp_path / "twice.json"
    repeated.write_text('{"format_version": 1, "nodes": {"a": {"type": "Int", "inputs": {"value": 1}}, '
                        '"a": {"type": "Int", "inputs": {"value": 2}}}}')
    assert main(["validate", str(repeated)]) == 1
    captured = capsys.readouterr()
    assert "'a' appears twice" in captured.out + captured.err
    with pytest.raises(GraphValidationError) as info:
        load_graph("/dev/zero")
    assert "holds more than" in str(info.value)


def test_file_names_that_leave_their_folder_are_refused_by_validate(tmp_path, capsys):
    """validate refuses a SaveImage prefix or LoadImage name that would leave its folder, before any run."""
    graph = {"format_version": 1, "nodes": {
        "i": {"type": "LoadImage", "inputs": {"image": "../../etc/passwd"}},
        "s": {"type": "SaveImage", "inputs": {"images": {"node": "i", "output": "image"},
                                              "filename_prefix": "../../escape"}}}}
    path = tmp_path / "escape.json"
    path.write_text(json.dumps(graph))
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert "input 'image' of LoadImage" in text and "input 'filename_prefix' of SaveImage" in text
    graph["nodes"]["s"]["inputs"]["filename_prefix"] = "sub/dir/deep"
    graph["nodes"]["i"]["inputs"]["image"] = "photo.png"
    path.write_text(json.dumps(graph))
    main(["validate", str(path)])
    assert "filename_prefix" not in capsys.readouterr().out


def test_a_format_version_of_the_wrong_type_and_a_huge_number_are_explained(tmp_path, capsys):
    """format_version "2" / true / 1.5 says to write a whole number (not to upgrade); a 5,000-digit number says to
    shorten it (not Python's set_int_max_str_digits)."""
    for version in ('"2"', "true", "1.5"):
        path = tmp_path / "v.json"
        path.write_text('{"format_version": %s, "nodes": {}}' % version)
        assert main(["validate", str(path)]) == 1
        out = capsys.readouterr().out
        assert "must be a whole number" in out and "upgrade" not in out
    path = tmp_path / "big.json"
    path.write_text('{"format_version": 1, "nodes": {"a": {"type": "Int", "inputs": {"value": %s}}}}' % ("9" * 5000))
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "shorten it" in out and "set_int_max_str_digits" not in out


def test_nodes_suggests_the_type_meant(capsys):
    """`nodes ksampler` (wrong case) and `nodes KSamplr` (a typo) name KSampler."""
    for name in ("ksampler", "KSamplr"):
        assert main(["nodes", name, "--no-plugins"]) == 2
        assert "'KSampler'" in capsys.readouterr().err


def test_a_missing_model_file_names_folders_inside_the_project_relatively(tmp_path, capsys, monkeypatch):
    """"Looked in:" shows a folder inside the working folder as a relative path (a server's clients do not
    learn where it is installed) and one outside it in full."""
    monkeypatch.chdir(ROOT)
    path = tmp_path / "missing.json"
    path.write_text(json.dumps({"format_version": 1, "nodes": {
        "c": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "nope.safetensors"}},
        "s": {"type": "ShowValue", "inputs": {"value": {"node": "c", "output": "model"}}}}}))
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "Looked in: models/checkpoints" in out and str(ROOT) not in out


def test_a_misspelt_dataset_folder_gets_did_you_mean_and_the_folders_there(tmp_path, capsys):
    """ImageFolderDataset folder 'gooood' said "Files there: none": folders are what a dataset names."""
    graph = tmp_path / "data.json"
    graph.write_text(json.dumps({"format_version": 2, "nodes": {
        "data": {"type": "ImageFolderDataset", "inputs": {"folder": "gooood"}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "data", "output": "report"}}}}}))
    (tmp_path / "in" / "good").mkdir(parents=True)
    (tmp_path / "in" / "notes.txt").write_text("x")
    assert main(["validate", str(graph), "--input-dir", str(tmp_path / "in")]) == 1
    out = capsys.readouterr().out
    # a file is no dataset folder (refused if named): counted as what '.' would read, not offered
    assert "Did you mean 'good'?" in out and "Folders there: 'good/' ('.', the input folder itself, holds 1 file(s))" in out, out


def test_a_missing_input_folder_is_named_not_listed_as_empty(tmp_path, capsys):
    """LoadImage with --input-dir pointing nowhere (or at a file) says the folder is missing, once, without the
    'Files there: none' of an empty folder."""
    graph = tmp_path / "load.json"
    graph.write_text(json.dumps({"format_version": 2, "nodes": {
        "load": {"type": "LoadImage", "inputs": {"image": "cat.png"}},
        "save": {"type": "SaveImage", "inputs": {"images": {"node": "load", "output": "image"}}}}}))
    (tmp_path / "afile").write_text("x")
    for folder, state in (("nowhere", "does not exist"), ("afile", "is not a folder")):
        code = main(["run", str(graph), "--input-dir", str(tmp_path / folder), "--output-dir", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert code != 0 and f"the input folder ({folder}) {state}" in err, err      # tests run in tmp_path
        assert "Files there" not in err and ".;" not in err


def test_validate_takes_set_and_a_key_given_twice_is_a_usage_error(capsys):
    """`validate --set` checks the graph as `run --set` would run it; repeating a --set key is refused, not
    silently decided by order."""
    assert main(["validate", ARITHMETIC, "--set", "width.value=64"]) == 0
    capsys.readouterr()
    assert main(["validate", ARITHMETIC, "--set", "width.value=\"wide\"", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [e["input"] for e in report["errors"]] == ["value"] and report["errors"][0]["node_id"] == "width"
    assert main(["validate", ARITHMETIC, "--set", "nowhere.value=1"]) == 1
    assert "nowhere" in capsys.readouterr().out
    for command in ("validate", "run"):
        assert main([command, ARITHMETIC, "--set", "width.value=64", "--set", "width.value=32"]) == 2
        assert "--set width.value is given twice" in capsys.readouterr().err


def test_set_values_too_deep_or_too_long_are_usage_errors(capsys):
    """A --set value nested thousands deep, or a number of thousands of digits, is a usage error in words, never a
    traceback (json's RecursionError, Python's int-digits guard)."""
    for value, words in (("[" * 5000 + "]" * 5000, "nested too deeply"), ("9" * 5000, "thousands of digits")):
        for command in ("validate", "run"):
            assert main([command, ARITHMETIC, "--set", f"width.value={value}"]) == 2
            err = capsys.readouterr().err
            assert "--set width.value: " in err and words in err and "sys.set_int_max_str_digits" not in err


# --- model path config files, validate --json usage errors, hints (newcomer report s15) -----------------------

@pytest.mark.parametrize(("content", "problem"), [
    (None, "the file does not exist"),
    ('{"checkpoints": [', "not valid JSON"),
    ('{"checkpoints": "mym/ck"}', "not a list"),
    ('["/data/models"]', "not an object"),
    ('{"checkpoints": [3]}', "not a directory path"),
    (b"\xff\xfe{}", "not UTF-8"),
])
def test_a_bad_model_paths_file_is_a_one_line_usage_error(tmp_path, capsys, monkeypatch, content, problem):
    """A missing, unreadable or malformed --model-paths / NODEGRAPH_MODEL_PATHS file stops every command with exit
    2 and one line naming the option, the file, the problem and the expected format (a missing file: only that,
    the path is what is wrong) — never a traceback; from Python, ModelPaths.from_config and Session() raise
    ModelPathsError, a ValueError."""
    from nodegraph import Session
    from nodegraph.model_paths import ModelPaths, ModelPathsError

    config = tmp_path / "paths.json"
    if isinstance(content, bytes):
        config.write_bytes(content)
    elif content is not None:
        config.write_text(content)
    for command in (["run", ARITHMETIC, "--output-dir", str(tmp_path / "out")], ["validate", ARITHMETIC],
                    ["nodes"], ["plugins"]):
        assert main([*command, "--model-paths", str(config)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: --model-paths {str(config)!r}: ") and problem in err, err
        assert (content is None) != ('{"checkpoints": [' in err) and err.count("\n") == 1 and "Traceback" not in err
    monkeypatch.setenv("NODEGRAPH_MODEL_PATHS", str(config))
    assert main(["validate", ARITHMETIC]) == 2
    assert capsys.readouterr().err.startswith(f"error: NODEGRAPH_MODEL_PATHS {str(config)!r}: ")
    with pytest.raises(ModelPathsError, match=problem) as info:
        Session(autoload=False)
    assert isinstance(info.value, ValueError) and info.value.path == str(config)
    with pytest.raises(ModelPathsError, match="check the path" if content is None else "resolved against the file"):
        ModelPaths.from_config(config)


def test_a_model_paths_folder_is_named_as_a_folder(tmp_path, capsys):
    """--model-paths naming a folder says so (not a raw IsADirectoryError)."""
    assert main(["validate", ARITHMETIC, "--model-paths", str(tmp_path)]) == 2
    assert "it is a folder, not a file" in capsys.readouterr().err


def test_validate_json_reports_usage_errors_as_json(tmp_path, capsys):
    """With --json, a bad --set value or --model-paths file still exits 2, but as one JSON object on stdout."""
    for args in (["--set", "nonsense"], ["--model-paths", str(tmp_path / "no.json")]):
        assert main(["validate", ARITHMETIC, *args, "--json"]) == 2
        captured = capsys.readouterr()
        report = json.loads(captured.out)
        assert report["valid"] is False and report["errors"] == [] and report["usage_error"]
        assert captured.err == ""


def test_validate_reports_an_unknown_override_node_and_the_other_problems_at_once(capsys):
    """A --set naming a missing node does not hide another --set's out-of-range value: both are reported."""
    assert main(["validate", str(ROOT / "graphs" / "txt2img.json"), "--set", "nosuch.x=1",
                 "--set", "sampler.steps=0", "--json", "--no-plugins"]) == 1
    codes = {(e["code"], e.get("node_id")) for e in json.loads(capsys.readouterr().out)["errors"]}
    assert codes == {("unknown_node", "nosuch"), ("out_of_range", "sampler")}


def test_set_on_a_linked_input_names_the_source_instead_of_cutting_the_link(capsys):
    """`--set pixels.a=5` on arithmetic.json silently dropped the link from `width` (the output then read
    '512x768 has 60 latent cells'): it is refused, naming the node to set instead."""
    assert main(["validate", ARITHMETIC, "--set", "pixels.a=5", "--json", "--no-plugins"]) == 1
    errors = json.loads(capsys.readouterr().out)["errors"]
    assert [(e["code"], e["node_id"], e["input"], e["details"]["source_node"]) for e in errors] == [
        ("override_replaces_link", "pixels", "a", "width")]
    assert "--set width.value=" in errors[0]["message"]
    assert main(["run", ARITHMETIC, "--set", "pixels.a=5", "--no-plugins"]) != 0


def test_the_advice_names_an_input_the_source_node_has(capsys):
    """A prompt set on the sampler is sent to the prompt node's `text`, not to a `value` it does not have."""
    assert main(["validate", str(ROOT / "graphs" / "txt2img.json"), "--set", "sampler.positive=a dog",
                 "--json", "--no-plugins"]) == 1
    (error,) = json.loads(capsys.readouterr().out)["errors"]
    assert error["code"] == "override_replaces_link" and "--set prompt.text=" in error["message"]
    assert ".value" not in error["message"]


def test_a_number_too_large_for_a_float_is_named_as_such(capsys):
    """`--set x=1e400` reads as inf: refused for a number input like Infinity, naming the fix."""
    assert main(["validate", ARITHMETIC, "--set", "width.value=1e400", "--json", "--no-plugins"]) == 1
    (error,) = json.loads(capsys.readouterr().out)["errors"]
    assert error["code"] == "invalid_value" and "give a finite number" in error["message"]


def test_nan_and_infinity_as_text_get_the_finite_number_hint(tmp_path, capsys):
    """`--set x=nan` / `inf` (read as text, not JSON) is told to give a finite number, not to drop quotes."""
    for value in ("nan", "inf", "-inf", "infinity"):
        assert main(["validate", ARITHMETIC, "--set", f"width.value={value}"]) == 1
        out = capsys.readouterr().out
        assert "finite number" in out and "without quotes" not in out


@pytest.mark.parametrize(("key", "value", "meant"), [
    ("sampler", "Euler a", "'euler_ancestral'"),
    ("sampler", "DPM++ 2M Karras", "'dpmpp_2m' with scheduler 'karras'"),
    ("sampler", "dpmpp_2m_karras", "'dpmpp_2m' with scheduler 'karras'"),    # was "'dpmpp_2m_sde' or 'dpmpp_2m'"
    ("sampler", "DDIM", "'ddim'"),
    ("sampler", "Euler", "'euler'"),
    ("sampler", "UniPC", "'unipc'"),
    ("scheduler", "Karras", "'karras'"),
    ("scheduler", "SGM Uniform", "'sgm_uniform'"),
    ("sampler", "dpmpp_2m_sde_gpu", "'dpmpp_2m_sde'"),      # ComfyUI's: the same sampler, noise drawn on the GPU
])
def test_sampler_and_scheduler_suggestions_know_other_tools_names(capsys, key, value, meant):
    """A1111 / ComfyUI display names and other capitalisations of samplers and schedulers suggest the choice meant."""
    assert main(["validate", str(ROOT / "graphs" / "txt2img.json"), "--set", f"sampler.{key}={value}",
                 "--no-plugins"]) == 1
    assert f"Did you mean {meant}?" in capsys.readouterr().out


def test_a_sampler_nodegraph_lacks_says_what_to_use_instead(capsys):
    """diffusers' PNDMScheduler (Stable Diffusion 1.x's default) got no hint at all (a Python user's finding);
    ComfyUI's dpm_2, dpmpp_2s_ancestral and euler_cfg_pp got "did you mean" guesses of unrelated samplers."""
    for name, said in (("PNDMScheduler", "PNDM (diffusers' default for Stable Diffusion 1.x) is not built in; "),
                       ("dpm_2", "DPM2 is not built in; 'heun'"), ("dpmpp_2s_ancestral", "DPM++ 2S ancestral is not"),
                       ("euler_cfg_pp", "CFG++ samplers are not built in"),
                       ("dpm_fast", "DPM-Solver fast (fixed order 1-3) is not built in"),     # a migrant's pass
                       ("dpm_adaptive", "DPM-Solver adaptive")):
        assert main(["validate", str(ROOT / "graphs" / "txt2img.json"), "--set", f"sampler.sampler={name}",
                     "--no-plugins"]) == 1
        assert said in capsys.readouterr().out, name
    for name, said in (("kl_optimal", "the KL-optimal schedule is not built in"),
                       ("linear_quadratic", "the linear-quadratic schedule is not built in")):
        assert main(["validate", str(ROOT / "graphs" / "txt2img.json"), "--set", f"sampler.scheduler={name}",
                     "--no-plugins"]) == 1
        out = capsys.readouterr().out
        assert said in out and "sampler to use" not in out, name


def test_comfyui_classes_without_an_equivalent_say_what_does_their_work(tmp_path, capsys):
    """CLIPSetLastLayer and KSamplerAdvanced got "install the plugin that provides it" (and "did you mean
    KSampler?"), a ComfyUI subgraph or group node the same — though the fix is known; the import translates
    ComfyUI's dpmpp_2m_sde_gpu (a stranger's ComfyUI files)."""
    graph = {"format_version": 2, "nodes": {
        "a": {"type": "CLIPSetLastLayer", "inputs": {}}, "b": {"type": "KSamplerAdvanced", "inputs": {}},
        "c": {"type": "a1b2c3d4-0000-4000-8000-000000000001", "inputs": {}}, "d": {"type": "workflow>Dec", "inputs": {}},
        "s": {"type": "ShowValue", "inputs": {"value": {"node": "a", "output": "clip"}}}}}
    (tmp_path / "g.json").write_text(json.dumps(graph))
    assert main(["validate", str(tmp_path / "g.json"), "--no-plugins"]) == 1
    out = capsys.readouterr().out
    assert "EncodeText's `clip_skip`" in out and "stop_at_clip_layer -2 is clip_skip 2" in out
    assert "SplitSigmas → Sample" in out and "Did you mean 'KSampler'" not in out
    assert "subgraph instance whose definition is not in the file" in out and "It is a ComfyUI group node" in out
    assert "Install the plugin" not in out
    from nodegraph.graph import import_foreign

    prompt = {"3": {"class_type": "KSampler", "inputs": {"sampler_name": "dpmpp_2m_sde_gpu", "scheduler": "karras"}}}
    imported = import_foreign(prompt, lambda node_type: ["latent"])
    assert imported["nodes"]["3"]["inputs"]["sampler"] == "dpmpp_2m_sde"


@pytest.mark.parametrize(("header", "kind", "how"), [
    (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00", "MP4", "carries no graph"),     # (one with a graph opens:
    (b"\x1a\x45\xdf\xa3\x01\x00\x00\x00\x00\x00\x00\x1f", "WebM", "carries no graph"),    # test_media_graph)
    (b"GIF89a\x40\x00\x40\x00", "GIF", "carries no graph"),
    (b"RIFF\x24\x08\x00\x00WAVEfmt ", "WAV audio", "holds no graph"),
])
def test_a_video_or_audio_file_is_named_with_how_to_get_its_graph(tmp_path, capsys, header, kind, how):
    """validate / run on a video or audio file say what the file is and how to get a graph out (not "not UTF-8")."""
    media = tmp_path / "clip.bin"
    media.write_bytes(header + b"\x9f" * 64)
    for command in (["validate", str(media), "--json"], ["run", str(media), "--output-dir", str(tmp_path / "o")]):
        assert main(command) == 1
        captured = capsys.readouterr()
        text = captured.out + captured.err
        assert kind in text and how in text and "UTF-8" not in text


def test_run_keeps_every_runs_record(tmp_path, capsys):
    """<graph>.outputs.json is the latest run; <graph>.outputs.jsonl gains one line per run into the folder."""
    out = tmp_path / "out"
    assert main(["run", ARITHMETIC, "--output-dir", str(out), "--set", "width.value=64"]) == 0
    assert main(["run", ARITHMETIC, "--output-dir", str(out), "--set", "width.value=32"]) == 0
    latest = json.loads((out / "arithmetic.outputs.json").read_text())
    history = [json.loads(line) for line in (out / "arithmetic.outputs.jsonl").read_text().splitlines()]
    assert len(history) == 2 and history[1] == latest and history[0]["run_id"] != latest["run_id"]
    assert history[0]["outputs"]["show"]["value"].startswith("64x")


def test_run_record_log_refuses_a_planted_symlink(tmp_path, capsys):
    """A link planted at <graph>.outputs.jsonl is not followed: the run succeeds, warns, and the target is unchanged."""
    out, victim = tmp_path / "out", tmp_path / "victim.txt"
    out.mkdir()
    victim.write_text("original")
    (out / "arithmetic.outputs.jsonl").symlink_to(victim)
    assert main(["run", ARITHMETIC, "--output-dir", str(out)]) == 0
    assert victim.read_text() == "original" and "record was not appended" in capsys.readouterr().err


def test_run_and_validate_import_a_comfyui_api_prompt(tmp_path, capsys):
    """`nodegraph validate/run prompt.json` (ComfyUI's Export (API)) and a PNG ComfyUI saved (its "prompt" chunk)
    are imported with a note, not refused; a UI workflow without nodes says so."""
    from PIL import Image, PngImagePlugin

    prompt = {"1": {"class_type": "Int", "inputs": {"value": 4}},
              "2": {"class_type": "ShowValue", "inputs": {"value": ["1", 0]}}}
    (tmp_path / "prompt.json").write_text(json.dumps(prompt))
    assert main(["validate", str(tmp_path / "prompt.json")]) == 0
    assert "is a ComfyUI API prompt; imported it" in capsys.readouterr().err
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(prompt))
    Image.new("RGB", (4, 4)).save(tmp_path / "ComfyUI_00001_.png", pnginfo=info)
    assert main(["run", str(tmp_path / "ComfyUI_00001_.png"), "--output-dir", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "ComfyUI_00001_.outputs.json").read_text())["outputs"]["2"]["value"] == 4
    (tmp_path / "workflow.json").write_text(json.dumps({"nodes": [], "links": [], "version": 0.4}))
    assert main(["validate", str(tmp_path / "workflow.json")]) == 1
    assert "has no nodes to import" in capsys.readouterr().out


def test_a_comfyui_default_workflow_draws_the_size_it_asks_for(tmp_path, capsys):
    """ComfyUI's EmptyLatentImage has no VAE; imported, it gets the one the prompt decodes with, so 64×64 is
    64×64 on the shipped model (its VAE downsamples by 4: it drew 32×32 with a warning)."""
    prompt = {
        "3": {"class_type": "KSampler", "inputs": {"seed": 42, "steps": 4, "cfg": 5, "sampler_name": "euler",
                                                   "scheduler": "karras", "denoise": 1, "model": ["4", 0],
                                                   "positive": ["6", 0], "negative": ["7", 0],
                                                   "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_world.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}}}
    (tmp_path / "prompt.json").write_text(json.dumps(prompt))
    assert main(["run", str(tmp_path / "prompt.json"), "--output-dir", str(tmp_path / "out"), "--no-plugins"]) == 0
    assert "pixels per latent cell" not in capsys.readouterr().err       # the size warning it used to give
    record = json.loads((tmp_path / "out" / "prompt.outputs.json").read_text())
    assert record["graph"]["nodes"]["5"]["inputs"]["vae"] == {"node": "4", "output": "vae"}
    assert record["graph"]["metadata"]["linked_vae"] == ["5"]
    (saved,) = (tmp_path / "out").glob("ComfyUI_*.png")
    from PIL import Image

    assert Image.open(saved).size == (64, 48)


def test_a_comfyui_link_to_a_missing_entry_is_a_dangling_link(tmp_path, capsys):
    """["99", 0] naming no entry of the prompt was kept as a list literal, so nothing reported it."""
    prompt = {"1": {"class_type": "VAEDecode", "inputs": {"samples": ["99", 0], "vae": ["2", 2]}},
              "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_world_v4.safetensors"}},
              "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}
    (tmp_path / "prompt.json").write_text(json.dumps(prompt))
    assert main(["validate", str(tmp_path / "prompt.json"), "--no-plugins"]) == 1
    assert "[dangling_link] (node '1', input 'latent') input 'latent' links to node '99'" in capsys.readouterr().out


def test_comfyui_real_esrgan_file_names_become_the_builtin_upscalers():
    """A ComfyUI graph naming RealESRGAN_x4plus.pth said "no file"; the built-in has the same weights."""
    from nodegraph.graph import import_foreign

    for file, ours in (("RealESRGAN_x4plus.pth", "realesrgan-x4plus"),
                       ("RealESRGAN_x4plus_anime_6B.safetensors", "realesrgan-x4plus-anime"),
                       ("my_own_4x.pth", "my_own_4x.pth")):
        graph = import_foreign({"1": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": file}}})
        assert graph["nodes"]["1"] == {"type": "LoadUpscaleModel", "inputs": {"model_name": ours}}
        said = [{"node": "1", "input": "model_name", "from": file, "to": ours}] if ours != file else None
        assert graph["metadata"].get("translated_values") == said


def test_comfyui_import_note_names_each_translated_value(tmp_path, capsys):
    """The import mapped RealESRGAN_x4plus.pth to the built-in model silently: a user with their own (different)
    file of that name did not learn that it is not the one used. The note now names every translated value."""
    prompt = {"1": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "RealESRGAN_x4plus.pth"}},
              "2": {"class_type": "LoadImage", "inputs": {"image": "cat.png"}},
              "3": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["1", 0], "image": ["2", 0]}},
              "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "x"}}}
    (tmp_path / "prompt.json").write_text(json.dumps(prompt))
    main(["validate", str(tmp_path / "prompt.json"), "--no-plugins"])
    err = capsys.readouterr().err
    assert "node '1': model_name 'RealESRGAN_x4plus.pth' is 'realesrgan-x4plus' here" in err


def test_validate_checks_input_files_where_run_would_read_them(tmp_path, capsys):
    """`validate` called a graph valid whose input image (or dataset folder) is missing, and took no --input-dir,
    so a `run` command line could not be validated as it is. Now it looks where `run` would."""
    graph = tmp_path / "load.json"
    graph.write_text(json.dumps({"format_version": 2, "nodes": {
        "load": {"type": "LoadImage", "inputs": {"image": "cat.png"}},
        "data": {"type": "ImageFolderDataset", "inputs": {"folder": "my_photos"}},
        "save": {"type": "SaveImage", "inputs": {"images": {"node": "load", "output": "image"}}}}}))
    (tmp_path / "in").mkdir()
    args = ["validate", str(graph), "--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "o"),
            "--json", "--no-plugins"]
    assert main(args) == 1
    errors = json.loads(capsys.readouterr().out)["errors"]
    assert {(e["code"], e["node_id"], e["input"]) for e in errors} == {
        ("not_in_choices", "load", "image"), ("not_in_choices", "data", "folder")}
    from PIL import Image

    (tmp_path / "in" / "cat.png").mkdir()          # a folder of that name is no image: still refused
    (tmp_path / "in" / "my_photos").mkdir()
    assert main(args) == 1
    errors = json.loads(capsys.readouterr().out)["errors"]
    assert {(e["code"], e["node_id"], e["input"]) for e in errors} == {("not_in_choices", "load", "image")}
    assert "'cat.png' in the input folder is a folder; name a file" in errors[0]["message"]
    (tmp_path / "in" / "cat.png").rmdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "in" / "cat.png")
    assert main(args) == 0


def test_python_dash_m_nodegraph_is_the_command_line(tmp_path):
    """`python -m nodegraph` said "No module named nodegraph.__main__"."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "nodegraph", "validate", str(ROOT / "graphs" / "arithmetic.json")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0 and "arithmetic.json: valid" in done.stdout, done.stderr


def test_a_failed_run_is_the_latest_record_not_the_run_before_it(tmp_path, capsys):
    """<graph>.outputs.json is the latest run's record, failed or interrupted ones included: a script reading it
    after a failure found the previous run's outputs, unchanged and without an error."""
    out = tmp_path / "out"
    assert main(["run", ARITHMETIC, "--output-dir", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "arithmetic.outputs.json").read_text())
    assert summary["status"] == "succeeded" and summary["outputs"]["show"] and summary["error"] is None
    broken = "message.template={d:d}"        # d is text: refused by FormatText when it runs (not at validation)
    assert main(["run", ARITHMETIC, "--set", broken, "--output-dir", str(out), "--no-progress"]) == 3   # failed
    capsys.readouterr()
    summary = json.loads((out / "arithmetic.outputs.json").read_text())
    assert summary["status"] == "failed" and summary["outputs"] == {}
    assert summary["error"]["node_id"] == "message" and "cannot be formatted" in summary["error"]["message"]
    assert summary["graph"]["nodes"]["message"]["inputs"]["template"] == "{d:d}"   # the graph as it ran
    lines = [json.loads(line) for line in (out / "arithmetic.outputs.jsonl").read_text().splitlines()]
    assert [line["status"] for line in lines] == ["succeeded", "failed"]
    # the failed run's id is the one its events carried (it was null: a plugin author's finding)
    events = tmp_path / "events.jsonl"
    assert main(["run", ARITHMETIC, "--set", broken, "--output-dir", str(out), "--no-progress",
                 "--events", str(events)]) == 3
    capsys.readouterr()
    (started,) = [e for e in map(json.loads, events.read_text().splitlines()) if e["type"] == "run_started"]
    assert json.loads((out / "arithmetic.outputs.json").read_text())["run_id"] == started["run_id"] is not None


def test_comfyui_model_only_lora_and_image_scale_methods_import_and_run(tmp_path, capsys):
    """LoraLoaderModelOnly imported as LoadLoRA, which needs a text encoder the ComfyUI node does not have: the
    graph could not validate. It is LoadLoRAModelOnly now (the shipped LCM-LoRA, 4 LCM steps); ImageScale's
    ComfyUI method `nearest-exact` (its default) was refused as not one of ours."""
    prompt = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_world_v4.safetensors"}},
        "6": {"class_type": "LoraLoaderModelOnly", "inputs": {"lora_name": "tiny_world_lcm_v3.safetensors",
                                                              "strength_model": 1.0, "model": ["4", 0]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "1": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle on a blue background",
                                                         "clip": ["4", 1]}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 4, "cfg": 1, "sampler_name": "lcm",
                                                   "scheduler": "sgm_uniform", "denoise": 1, "model": ["6", 0],
                                                   "positive": ["1", 0], "negative": ["2", 0],
                                                   "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "7": {"class_type": "ImageScale", "inputs": {"image": ["8", 0], "upscale_method": "nearest-exact",
                                                     "width": 96, "height": 96, "crop": "disabled"}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "lcm", "images": ["7", 0]}}}
    (tmp_path / "prompt.json").write_text(json.dumps(prompt))
    assert main(["run", str(tmp_path / "prompt.json"), "--output-dir", str(tmp_path / "out"), "--no-plugins",
                 "--no-progress"]) == 0, capsys.readouterr()
    record = json.loads((tmp_path / "out" / "prompt.outputs.json").read_text())
    assert record["graph"]["nodes"]["6"]["type"] == "LoadLoRAModelOnly"
    assert record["graph"]["nodes"]["7"]["inputs"]["method"] == "nearest"
    from PIL import Image

    (saved,) = (tmp_path / "out").glob("lcm_*.png")
    assert Image.open(saved).size == (96, 96)
    # LatentUpscale (the same class name here) imported its ComfyUI inputs as they were: unknown_input 'samples',
    # 'upscale_method', 'crop' and missing 'latent', with no word of why (a docs-literal pass). It is translated.
    prompt["10"] = {"class_type": "LatentUpscale", "inputs": {"samples": ["3", 0], "upscale_method": "nearest-exact",
                                                              "width": 0, "height": 96, "crop": "disabled"}}
    prompt["8"]["inputs"]["samples"] = ["10", 0]
    prompt["7"]["inputs"].update(width=48, height=48)
    (tmp_path / "prompt.json").write_text(json.dumps(prompt))
    assert main(["run", str(tmp_path / "prompt.json"), "--output-dir", str(tmp_path / "up"), "--no-plugins",
                 "--no-progress"]) == 0, capsys.readouterr()
    record = json.loads((tmp_path / "up" / "prompt.outputs.json").read_text())
    assert record["graph"]["nodes"]["10"] == {"type": "LatentUpscale", "inputs": {
        "latent": {"node": "3", "output": "latent"}, "method": "nearest", "width": 0, "height": 96}}


def test_output_piped_into_head_ends_quietly(tmp_path):
    """`nodegraph nodes --json | head -c 100` (and `schema`) ended with a BrokenPipeError traceback."""
    import subprocess
    import sys

    for command in ("nodes --json --no-plugins", "schema"):
        done = subprocess.run(f"{sys.executable} -m nodegraph {command} | head -c 100 > /dev/null",
                              shell=True, capture_output=True, text=True, timeout=120, cwd=tmp_path,
                              executable="/bin/bash")
        assert "Traceback" not in done.stderr and "Broken pipe" not in done.stderr, done.stderr


def test_validate_refuses_literals_the_run_would_refuse(tmp_path, capsys):
    """`validate` called valid a FormatText template with a field it refuses and a String over the STRING cap; the
    run failed only then (after whatever ran before it). Both are validation errors on the input now."""
    graph = {"format_version": 2, "nodes": {
        "f": {"type": "FormatText", "inputs": {"template": "{name} {a.__class__}"}},
        "t": {"type": "String", "inputs": {"value": "é" * 600_000}},                  # 1.2 MB of UTF-8
        "s": {"type": "ShowValue", "inputs": {"value": {"node": "f", "output": "text"}}},
        "u": {"type": "ShowValue", "inputs": {"value": {"node": "t", "output": "value"}}}}}
    (tmp_path / "g.json").write_text(json.dumps(graph))
    assert main(["validate", str(tmp_path / "g.json"), "--no-plugins"]) == 1
    out = capsys.readouterr().out
    assert "(node 'f', input 'template')" in out and "field {name} is not allowed" in out
    assert "(node 't', input 'value')" in out and "over the 1048576-byte cap" in out


def test_pngs_with_broken_embedded_graphs_say_so(tmp_path, capsys):
    """A ComfyUI "prompt" chunk that is not JSON was called "imported"; broken JSON in our own "nodegraph" chunk
    did not say it came from the PNG."""
    from PIL import Image, PngImagePlugin

    for chunk, expected in (("prompt", 'text chunk, but it is not a ComfyUI prompt or workflow'),
                            ("nodegraph", 'the graph embedded in bad.png (its "nodegraph" text chunk)')):
        info = PngImagePlugin.PngInfo()
        info.add_text(chunk, "{not json")
        Image.new("RGB", (4, 4)).save(tmp_path / "bad.png", pnginfo=info)
        assert main(["validate", str(tmp_path / "bad.png"), "--no-plugins"]) == 1
        out = capsys.readouterr().out
        assert expected in out and "imported" not in out, out


def test_a_comfyui_ui_workflow_imports_and_runs(tmp_path, capsys):
    """ComfyUI's Save writes a UI workflow (widget values by position, links as a list): it was refused ("use
    Export (API)"), which is what most ComfyUI users have. The default txt2img workflow now imports — widgets
    named for the classes with an equivalent, the seed's "control after generate" skipped, links through a
    Reroute, a note dropped, a muted node kept muted — and draws what graphs/txt2img.json draws."""
    from PIL import Image

    def node(node_id, kind, inputs=(), widgets=None, mode=0):
        return {"id": node_id, "type": kind, "mode": mode, "inputs": [{"name": n, "type": "*", "link": link}
                                                                       for n, link in inputs],
                **({"widgets_values": widgets} if widgets is not None else {})}

    workflow = {"last_node_id": 12, "version": 0.4, "nodes": [
        node(4, "CheckpointLoaderSimple", widgets=["tiny_world_v6f.safetensors"]),
        node(5, "EmptyLatentImage", widgets=[64, 64, 1]),
        node(6, "CLIPTextEncode", [("clip", 3)], ["a small red circle on the left, on a blue background"]),
        node(7, "CLIPTextEncode", [("clip", 5)], [""]),
        node(10, "Reroute", [("", 1)]),
        node(3, "KSampler", [("model", 10), ("positive", 4), ("negative", 6), ("latent_image", 2)],
             [42, "randomize", 20, 5, "dpmpp_2m", "karras", 1]),
        node(8, "VAEDecode", [("samples", 7), ("vae", 8)]),
        node(9, "SaveImage", [("images", 9)], ["ComfyUI"]),
        node(11, "PreviewImage", [("images", 11)], mode=2),
        node(12, "Note", widgets=["made in ComfyUI"])],
        "links": [[1, 4, 0, 10, 0, "MODEL"], [10, 10, 0, 3, 0, "MODEL"], [2, 5, 0, 3, 3, "LATENT"],
                  [3, 4, 1, 6, 0, "CLIP"], [4, 6, 0, 3, 1, "CONDITIONING"], [5, 4, 1, 7, 0, "CLIP"],
                  [6, 7, 0, 3, 2, "CONDITIONING"], [7, 3, 0, 8, 0, "LATENT"], [8, 4, 2, 8, 1, "VAE"],
                  [9, 8, 0, 9, 0, "IMAGE"], [11, 8, 0, 11, 0, "IMAGE"]]}
    workflow["nodes"][5]["inputs"][0]["link"] = 10                  # the model comes through the Reroute
    workflow["groups"] = [{"title": "Sampling", "bounding": [10, 20, 300.4, 200], "color": "#3f789e"},
                          {"title": "Short colour", "bounding": [0, 0, 50, 50], "color": "#a1b"},
                          {"title": "broken", "bounding": [0, 0, -5, 10]}, "junk",
                          {"title": "far away", "bounding": [1e308, 0, 10, 10]}]
    (tmp_path / "workflow.json").write_text(json.dumps(workflow))
    assert main(["run", str(tmp_path / "workflow.json"), "--output-dir", str(tmp_path / "out"), "--no-plugins",
                 "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "is a ComfyUI UI workflow; imported it (8 of 8 node(s)" in captured.err
    # the muted preview is said (a migrant's pass: a muted branch was skipped without a word)
    assert "skipped 1 node(s), muted or fed by a muted node: '11'" in captured.out + captured.err
    record = json.loads((tmp_path / "out" / "workflow.outputs.json").read_text())
    nodes = record["graph"]["nodes"]
    assert nodes["3"]["inputs"]["model"] == {"node": "4", "output": "model"} and nodes["3"]["inputs"]["seed"] == 42
    assert nodes["3"]["inputs"]["steps"] == 20 and nodes["11"]["mode"] == "mute" and "12" not in nodes
    # the workflow's groups become the editor's (they were dropped without a word); malformed ones are left out
    assert record["graph"]["ui"]["groups"] == [
        {"id": "comfyui-group-1", "title": "Sampling", "color": "#3f789e", "bounds": [10, 20, 300, 200]},
        {"id": "comfyui-group-2", "title": "Short colour", "color": "#aa11bb", "bounds": [0, 0, 50, 50]}]
    (saved,) = (tmp_path / "out").glob("ComfyUI_*.png")
    ours = tmp_path / "ours"
    assert main(["run", str(ROOT / "graphs" / "txt2img.json"), "--output-dir", str(ours), "--no-plugins",
                 "--no-progress"]) == 0
    (shipped,) = ours.glob("txt2img_*.png")
    assert Image.open(saved).tobytes() == Image.open(shipped).tobytes()        # the same picture, pixel for pixel


@pytest.mark.parametrize("mode", [[], {}, "2", 2.0, True, None, 99])
def test_a_ui_workflow_node_with_an_odd_mode_imports_as_a_plain_node(mode):
    """`"mode": []` made the import raise TypeError (unhashable): a traceback from `nodegraph run` and an
    internal_error from the server (a hostile pass). Only ComfyUI's own integer modes mean anything."""
    from nodegraph.comfyui import workflow_to_prompt

    workflow = {"nodes": [{"id": 1, "type": "EmptyLatentImage", "mode": mode, "widgets_values": [64, 64, 1]}],
                "links": []}
    assert "_meta" not in workflow_to_prompt(workflow)["1"] or "mode" not in workflow_to_prompt(workflow)["1"]["_meta"]


def test_links_out_of_a_node_type_we_lack_keep_the_workflows_output_names():
    """An unknown node's output `processed_wildcard_text` became output "0" (an editor tester's finding; the
    editor and `nodegraph run` alike): a UI workflow names its outputs, and the import keeps those names."""
    from nodegraph.graph import import_foreign

    workflow = {"nodes": [
        {"id": 9, "type": "ImpactWildcardProcessor", "widgets_values": ["a __colour__ circle", "", "populate", 0],
         "outputs": [{"name": "processed_wildcard_text", "type": "STRING", "links": [1]}]},
        {"id": 6, "type": "CLIPTextEncode", "widgets_values": [""],
         "inputs": [{"name": "text", "type": "STRING", "link": 1, "widget": {"name": "text"}}]},
        {"id": 7, "type": "OddOutputs", "outputs": [{"name": "x"}, {"name": "x"}], "widgets_values": []},
        {"id": 8, "type": "ShowText", "inputs": [{"name": "value", "type": "*", "link": 2}]}],
        "links": [[1, 9, 0, 6, 0, "STRING"], [2, 7, 1, 8, 0, "*"]]}
    graph = import_foreign(workflow, lambda _type: None)
    assert graph["nodes"]["6"]["inputs"]["text"] == {"node": "9", "output": "processed_wildcard_text"}
    assert graph["nodes"]["8"]["inputs"]["value"] == {"node": "7", "output": "1"}     # names that repeat: slots


def test_a_ksampler_written_without_its_control_widget_keeps_its_values_in_place():
    """A UI workflow whose KSampler lists 6 widget values (no "control after generate") shifted them by one:
    "cfg expects a FLOAT value; found 'euler'" and two more. Without the control value they are named in order."""
    from nodegraph.comfyui import workflow_to_prompt

    values = [5, 20, 7.5, "euler", "karras", 1.0]
    for widgets in (values, [5, "randomize", *values[1:]]):
        workflow = {"nodes": [{"id": 3, "type": "KSampler", "widgets_values": widgets}], "links": []}
        inputs = workflow_to_prompt(workflow)["3"]["inputs"]
        assert inputs == {"seed": 5, "steps": 20, "cfg": 7.5, "sampler_name": "euler", "scheduler": "karras",
                          "denoise": 1.0}, inputs


def test_a_png_with_only_a_comfyui_workflow_chunk_imports(tmp_path, capsys):
    """A PNG whose ComfyUI metadata is only the UI workflow (no API prompt) imports it too."""
    from PIL import Image, PngImagePlugin

    workflow = {"nodes": [{"id": 1, "type": "Int", "widgets_values": [4]},
                          {"id": 2, "type": "ShowValue", "inputs": [{"name": "value", "type": "INT", "link": 1}]}],
                "links": [[1, 1, 0, 2, 0, "INT"]], "version": 0.4}
    info = PngImagePlugin.PngInfo()
    info.add_text("workflow", json.dumps(workflow))
    Image.new("RGB", (4, 4)).save(tmp_path / "saved.png", pnginfo=info)
    assert main(["validate", str(tmp_path / "saved.png"), "--no-plugins"]) == 0
    captured = capsys.readouterr()
    assert "is a ComfyUI UI workflow; imported it (0 of 2 node(s)" in captured.err
    # "Int" is no ComfyUI class but a type this session has: its widget values are named by its inputs
    workflow["nodes"][0]["type"] = "SomePackInt"              # a type nobody has: they stay unnamed, and are said
    info = PngImagePlugin.PngInfo()
    info.add_text("workflow", json.dumps(workflow))
    Image.new("RGB", (4, 4)).save(tmp_path / "other.png", pnginfo=info)
    assert main(["validate", str(tmp_path / "other.png"), "--no-plugins"]) == 1
    captured = capsys.readouterr()
    assert "(node '1'" in captured.out and "SomePackInt" in captured.out


def test_sigterm_stops_a_run_as_ctrl_c_does_and_records_it(tmp_path):
    """`timeout`/`kill`/`docker stop` send SIGTERM: the run ended at once with no record, and the previous run's
    outputs.json stayed the latest. Now it is recorded interrupted, with the node that was running, and the exit code
    says so."""
    import os
    import signal
    import time

    from nodegraph.cli import EXIT_INTERRUPTED

    graph = tmp_path / "wait.json"
    graph.write_text(json.dumps({"format_version": 1, "nodes": {
        "v": {"type": "Int", "inputs": {"value": 7}},
        "w": {"type": "Wait", "inputs": {"value": {"node": "v", "output": "value"}, "seconds": 60}},
        "s": {"type": "ShowValue", "inputs": {"value": {"node": "w", "output": "value"}}}}}))
    env = {**os.environ, "NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "nodegraph", "run", str(graph), "--output-dir", str(tmp_path / "out"),
                             "--events", "-"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        for line in proc.stdout:      # wait for the Wait node to start (event lines, JSON)
            if '"node_started"' in line and '"w"' in line:
                break
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
    assert code == EXIT_INTERRUPTED, proc.stderr.read()
    record = json.loads((tmp_path / "out" / "wait.outputs.json").read_text())
    assert record["status"] == "interrupted" and "SIGTERM" in json.dumps(record)
    assert record["error"]["node_id"] == "w"      # the node that was running (it was null: the signal names none)


def test_an_interrupt_while_starting_is_one_line_and_the_latest_record(tmp_path, monkeypatch, capsys):
    """SIGTERM (or Ctrl+C) while plugins or the graph were still loading printed a KeyboardInterrupt traceback and
    left the previous run's outputs.json as the latest record."""
    from nodegraph import cli

    out = tmp_path / "out"
    out.mkdir()
    (out / "arithmetic.outputs.json").write_text('{"stale": true}')

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt("terminated (SIGTERM)")

    monkeypatch.setattr(cli, "_session", interrupted)
    code = main(["run", str(ROOT / "graphs" / "arithmetic.json"), "--output-dir", str(out)])
    assert code == cli.EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert "Traceback" not in err and "interrupted (terminated (SIGTERM))" in err
    record = json.loads((out / "arithmetic.outputs.json").read_text())
    assert record["status"] == "interrupted" and "before the run started" in record["error"]["message"]


def test_a_file_that_does_not_load_is_recorded_failed_not_left_as_the_last_success(tmp_path, capsys):
    """A run whose file fails to load (truncated JSON) replaces an earlier run's "succeeded" record, appends its
    line, and tells an --events reader why the stream is otherwise empty."""
    graph, out = tmp_path / "g.json", tmp_path / "out"
    graph.write_text(Path(ARITHMETIC).read_text())
    assert main(["run", str(graph), "--output-dir", str(out)]) == 0
    assert json.loads((out / "g.outputs.json").read_text())["status"] == "succeeded"
    graph.write_text('{"format_version": 2, "nodes": {')
    capsys.readouterr()
    assert main(["run", str(graph), "--output-dir", str(out), "--events", "-"]) == 1
    record = json.loads((out / "g.outputs.json").read_text())
    assert record["status"] == "failed" and record["outputs"] == {}
    assert record["error"]["errors"][0]["code"] == "invalid_json"
    assert [json.loads(line)["status"] for line in (out / "g.outputs.jsonl").read_text().splitlines()] == \
        ["succeeded", "failed"]
    event = json.loads(capsys.readouterr().out.strip())
    assert event["type"] == "run_failed" and event["errors"][0]["code"] == "invalid_json"


def test_run_reports_every_override_problem_at_once_as_validate_does(tmp_path, capsys):
    args = ["--set", "nope.value=3", "--set", "width.valeu=2"]
    assert main(["run", ARITHMETIC, "--output-dir", str(tmp_path), *args]) == 1
    from_run = capsys.readouterr().err
    assert main(["validate", ARITHMETIC, *args]) == 1
    from_validate = capsys.readouterr().out
    for text in (from_run, from_validate):
        assert "[unknown_node]" in text and "[unknown_input]" in text and "Did you mean 'value'" in text
    assert json.loads((tmp_path / "arithmetic.outputs.json").read_text())["status"] == "failed"


def test_an_override_replacing_a_link_does_not_hide_the_others_problems(capsys):
    """`--set latent.vae=3` (replaces a link) made validation drop every other override unchecked: the "Euler a"
    and NaN beside it were never reported. Each bad override is said and left out; the rest are applied."""
    txt2img = str(ROOT / "graphs" / "txt2img.json")
    assert main(["validate", txt2img, "--no-plugins", "--set", "sampler.sampler=Euler a",
                 "--set", "sampler.seed=NaN", "--set", "latent.vae=3", "--set", "sampler.steps=0"]) == 1
    out = capsys.readouterr().out
    assert "[override_replaces_link]" in out and "'Euler a'" in out and "got nan" in out
    assert "(node 'sampler', input 'steps')" in out


def test_set_on_a_subgraph_nodes_exposed_text_input_is_text(tmp_path, capsys):
    """--set g.template=123 where the subgraph's exposed input feeds a STRING input: the text "123", as on a node."""
    graph = {"format_version": 2,
             "subgraphs": {"fmt": {"inputs": {"template": {}},
                                   "outputs": {"text": {"node": "f", "output": "text"}},
                                   "nodes": {"f": {"type": "FormatText", "inputs": {
                                       "template": {"node": "$inputs", "output": "template"}}}}}},
             "nodes": {"g": {"type": "subgraph:fmt", "inputs": {}},
                       "show": {"type": "ShowValue", "inputs": {"value": {"node": "g", "output": "text"}}}}}
    path = tmp_path / "sub.json"
    path.write_text(json.dumps(graph))
    assert main(["validate", str(path), "--set", "g.template=123"]) == 0
    capsys.readouterr()
    assert main(["run", str(path), "--output-dir", str(tmp_path / "out"), "--set", "g.template=123"]) == 0
    assert "show: 123" in capsys.readouterr().out


def test_a_swept_number_for_a_text_input_is_its_text(tmp_path, capsys):
    assert main(["run", ARITHMETIC, "--output-dir", str(tmp_path), "--sweep", "message.template=1.50,true,1e5",
                 "--sweep", "width.value=64,128", "--no-progress"]) == 0
    index = json.loads((tmp_path / "index.json").read_text())
    assert [item["overrides"]["message.template"] for item in index["items"]][::2] == ["1.50", "true", "1e5"]
    assert [item["outputs"]["show"]["value"] for item in index["items"]][::2] == ["1.50", "true", "1e5"]
    assert [item["overrides"]["width.value"] for item in index["items"]][:2] == [64, 128]     # numbers stay numbers
    assert index["not_run"] == 0
    table = tmp_path / "rows.csv"
    table.write_text("message.template,width.value\n1.50,64\n-0,128\n")
    assert main(["run", ARITHMETIC, "--output-dir", str(tmp_path / "csv"), "--sweep", str(table),
                 "--no-progress"]) == 0
    items = json.loads((tmp_path / "csv" / "index.json").read_text())["items"]
    assert [(i["overrides"]["message.template"], i["overrides"]["width.value"]) for i in items] == \
        [("1.50", 64), ("-0", 128)]


def test_a_graph_refused_by_validation_tells_the_event_stream(tmp_path, capsys):
    graph = tmp_path / "unknown.json"
    graph.write_text('{"format_version": 2, "nodes": {"a": {"type": "NoSuch", "inputs": {}}}}')
    assert main(["run", str(graph), "--output-dir", str(tmp_path / "out"), "--events", "-"]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    event = json.loads(line)
    assert event["type"] == "run_failed" and event["errors"][0]["code"] == "unknown_node_type"


def test_a_record_that_cannot_be_written_is_a_warning_not_a_traceback(tmp_path, capsys):
    """A graph named so long that '<name>.outputs.json' passes the file system's limit: the run succeeded and
    exits 0 with a warning (it crashed with a traceback and exit 1 after the run)."""
    graph = tmp_path / ("g" * 240 + ".json")
    graph.write_text(Path(ARITHMETIC).read_text())
    assert main(["run", str(graph), "--output-dir", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "warning: the run's record was not written" in err and "shorter name" in err


def test_a_node_failing_inside_a_subgraph_is_named_with_its_subgraph_node(tmp_path, capsys):
    graph = {"format_version": 2,
             "subgraphs": {"p": {"outputs": {"y": {"node": "n", "output": "result"}},
                                 "nodes": {"n": {"type": "Math", "inputs": {"a": 1, "b": 0, "op": "divide"}}}}},
             "nodes": {"sq": {"type": "subgraph:p", "inputs": {}},
                       "s": {"type": "ShowValue", "inputs": {"value": {"node": "sq", "output": "y"}}}}}
    path = tmp_path / "subfail.json"
    path.write_text(json.dumps(graph))
    assert main(["run", str(path), "--output-dir", str(tmp_path / "out")]) == 3
    assert "(inside subgraph node 'sq': its inner node 'n')" in capsys.readouterr().err


def test_a_seed_drawn_by_randomint_is_recorded_so_the_image_repeats(tmp_path):
    """A RandomInt feeding the seed (ComfyUI's "randomize" habit) was recorded nowhere: the PNG's graph and
    outputs.json held only the RandomInt, and running either drew another image. The drawn value is pinned in
    place of the link in both, so both repeat the image exactly."""
    import numpy as np
    from PIL import Image

    from nodegraph.graph import graph_text_from_png

    graph = json.loads((ROOT / "graphs" / "txt2img.json").read_text())
    graph["nodes"]["dice"] = {"type": "RandomInt", "inputs": {"low": 0, "high": 2**31}}
    graph["nodes"]["sampler"]["inputs"].update(seed={"node": "dice", "output": "value"}, steps=3)
    # a ShowValue's input takes no literal: pinned there, the graph was invalid ("found a literal 525955")
    graph["nodes"]["show"] = {"type": "ShowValue", "inputs": {"value": {"node": "dice", "output": "value"}}}
    path = tmp_path / "rand.json"
    path.write_text(json.dumps(graph))
    assert main(["run", str(path), "--output-dir", str(tmp_path / "a"), "--no-progress"]) == 0
    (first,) = sorted((tmp_path / "a").glob("*.png"))
    embedded = json.loads(graph_text_from_png(first.read_bytes()))
    seed = embedded["nodes"]["sampler"]["inputs"]["seed"]
    assert isinstance(seed, int) and 0 <= seed <= 2**31
    recorded = json.loads((tmp_path / "a" / "rand.outputs.json").read_text())["graph"]
    assert recorded["nodes"]["sampler"]["inputs"]["seed"] == seed
    assert embedded["nodes"]["show"]["inputs"]["value"] == {"node": "dice_value_drawn", "output": "value"}
    assert embedded["nodes"]["dice_value_drawn"] == {"type": "Int", "inputs": {"value": seed}}
    assert main(["run", str(first), "--output-dir", str(tmp_path / "b"), "--no-progress"]) == 0
    (again,) = sorted((tmp_path / "b").glob("*.png"))
    assert np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(again)))


def test_a_jpeg_declaring_billions_of_pixels_or_a_too_deep_graph_is_named_not_a_traceback(tmp_path, capsys):
    """A JPEG whose header declares 65000² pixels printed PIL's DecompressionBombError as a bare traceback (and a
    16384×11000 panorama SaveImage wrote could not be read back): the EXIF is found by walking the file's
    segments, no pixels counted, so its graph is read. A graph nested too deeply to read was "holds no graph";
    it is a one-line invalid_json now."""
    import io

    from PIL import Image

    from nodes.image.nodes import exif_record

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="JPEG", exif=exif_record('{"format_version": 2, "nodes": {}}', None))
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = (65000).to_bytes(2, "big") * 2       # height, width
    (tmp_path / "bomb.jpg").write_bytes(bytes(data))
    assert main(["validate", str(tmp_path / "bomb.jpg")]) == 1
    assert "[no_outputs]" in capsys.readouterr().out          # its (empty) graph was read and validated
    buffer = io.BytesIO()
    deep = '{"nodegraph": ' + "[" * 20_000 + "]" * 20_000 + "}"
    exif = Image.Exif()
    exif[0x010E] = deep
    Image.new("RGB", (8, 8)).save(buffer, format="JPEG", exif=exif.tobytes())
    (tmp_path / "deep.jpg").write_bytes(buffer.getvalue())
    assert main(["validate", str(tmp_path / "deep.jpg")]) == 1
    assert "nested too deeply" in capsys.readouterr().out


@pytest.mark.parametrize("image_format", ["jpeg", "webp"])
def test_a_jpeg_or_webp_saved_by_saveimage_runs_again_from_its_exif(tmp_path, capsys, image_format):
    """Their EXIF ImageDescription carries the graph, but `nodegraph run x.jpg` said "it holds no graph (only
    PNGs saved by SaveImage carry one)". It runs the embedded graph now; a plain JPEG still says it has none."""
    graph = json.loads((ROOT / "graphs" / "txt2img.json").read_text())
    graph["nodes"]["sampler"]["inputs"]["steps"] = 3
    graph["nodes"]["save"]["inputs"]["format"] = image_format
    path = tmp_path / "lossy.json"
    path.write_text(json.dumps(graph))
    assert main(["run", str(path), "--output-dir", str(tmp_path / "a"), "--no-progress"]) == 0
    (saved,) = [p for p in (tmp_path / "a").iterdir() if p.suffix in (".jpg", ".webp")]
    assert main(["run", str(saved), "--output-dir", str(tmp_path / "b"), "--no-progress"]) == 0
    recorded = json.loads(next((tmp_path / "b").glob("*.outputs.json")).read_text())
    assert recorded["graph"]["nodes"]["sampler"]["inputs"]["steps"] == 3
    from PIL import Image

    plain = tmp_path / "plain.jpg"
    Image.new("RGB", (8, 8), "red").save(plain)
    capsys.readouterr()
    assert main(["validate", str(plain)]) == 1
    assert "holds no graph" in capsys.readouterr().out
    # a graph too large for EXIF is left out of the image: the run says so (its warnings were empty)
    graph["metadata"] = {"description": "x" * 70_000}
    path.write_text(json.dumps(graph))
    assert main(["run", str(path), "--output-dir", str(tmp_path / "c"), "--no-progress"]) == 0
    warnings = json.loads(next((tmp_path / "c").glob("*.outputs.json")).read_text())["warnings"]
    assert any("too large for a" in w["message"] and "save as PNG" in w["message"] for w in warnings), warnings


def test_session_validate_takes_overrides_and_numpy_scalars_are_plain_numbers():
    """Session.validate had no `overrides` (run and `validate --set` do), and np.int64 seeds from a diffusers
    script were type_mismatch."""
    import numpy as np

    from nodegraph import Session

    session = Session(autoload=False)
    graph = json.loads((ROOT / "graphs" / "txt2img.json").read_text())
    assert session.validate(graph, overrides={"sampler.seed": np.int64(5), "sampler.cfg": np.float32(4.5)}) == []
    (error,) = session.validate(graph, overrides={"sampler.steps": -3})
    assert error.node_id == "sampler" and error.input == "steps"
    from decimal import Decimal       # validated, then failed at run time; it is the number it holds now

    overridden = session.with_overrides(session.load(graph), {"sampler.cfg": Decimal("4.5")})
    assert type(overridden.nodes["sampler"].inputs["cfg"]) is float


def test_allow_plugin_with_no_plugins_is_refused_not_ignored(capsys):
    """`--no-plugins --allow-plugin video` contradicts itself; it loaded nothing and said nothing."""
    assert main(["validate", ARITHMETIC, "--no-plugins", "--allow-plugin", "video"]) == 2
    err = capsys.readouterr().err
    assert "--allow-plugin video has no effect with --no-plugins" in err and "Traceback" not in err


def _png_with_chunk(kind: bytes, body: bytes) -> bytes:
    """A 1×1 PNG with one extra text chunk before IEND."""
    import io
    import struct
    import zlib

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    data = buffer.getvalue()
    chunk = struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    end = data.rindex(b"IEND") - 4
    return data[:end] + chunk + data[end:]


def test_a_png_whose_graph_chunk_inflates_past_the_limit_is_refused_before_it_is_inflated(tmp_path, capsys):
    """A 1 MB iTXt chunk inflating to 1 GiB took 2.2 GB of memory before its size was refused (a stranger's CLI
    pass); a graph in a zTXt chunk (another tool recompressed SaveImage's tEXt) was "a PNG without a graph"."""
    import resource
    import zlib

    from nodegraph.graph import MAX_FILE_BYTES

    bomb = zlib.compress(b" " * (MAX_FILE_BYTES + 4 * 2**20), 9)
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_with_chunk(b"iTXt", b"nodegraph\0\x01\x00\0\0" + bomb))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert main(["validate", str(path), "--no-plugins"]) == 1
    assert "inflates past" in capsys.readouterr().out
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < MAX_FILE_BYTES / 2**20 * 3, grown_mib       # about one graph limit's worth, not all of it
    graph = json.dumps({"format_version": 2, "nodes": {
        "i": {"type": "Int", "inputs": {"value": 3}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "i", "output": "value"}}}}})
    path = tmp_path / "ztxt.png"
    path.write_bytes(_png_with_chunk(b"zTXt", b"nodegraph\0\x00" + zlib.compress(graph.encode())))
    assert main(["validate", str(path), "--no-plugins"]) == 0


def test_a_graph_from_standard_input_runs_validates_and_sweeps(tmp_path, capsys, monkeypatch):
    """`make_graph.py | nodegraph run -` said "no file '-'": `-` reads the graph (JSON, a ComfyUI prompt, an
    image holding one) from standard input; messages and records call it <stdin> / stdin."""
    import io
    import sys

    graph = json.dumps({"format_version": 1, "nodes": {
        "a": {"type": "Int", "inputs": {"value": 3}},
        "s": {"type": "ShowValue", "inputs": {"value": {"node": "a", "output": "value"}}}}})

    def stdin(text: str) -> None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))

    stdin(graph)
    assert main(["run", "-", "--output-dir", str(tmp_path), "--no-progress", "--no-plugins"]) == 0
    assert json.loads((tmp_path / "stdin.outputs.json").read_text())["outputs"]["s"]["value"] == 3
    stdin(json.dumps({"1": {"class_type": "Int", "inputs": {"value": 4}}}))
    assert main(["validate", "-", "--no-plugins"]) == 1
    captured = capsys.readouterr()
    assert "note: <stdin> is a ComfyUI API prompt" in captured.err and "nodegraph-stdin-" not in captured.err
    stdin(graph)
    assert main(["run", "-", "--sweep", "a.value=5,6", "--output-dir", str(tmp_path / "s"), "--no-progress",
                 "--no-plugins"]) == 0
    assert json.loads((tmp_path / "s" / "index.json").read_text())["graph"] == "<stdin>"
    stdin("{not json")
    assert main(["run", "-", "--output-dir", str(tmp_path), "--no-progress", "--no-plugins"]) == 1
    assert "not valid JSON" in capsys.readouterr().err
    from nodegraph.graph import MAX_FILE_BYTES

    stdin(" " * (MAX_FILE_BYTES + 10))                            # read up to the limit, no more: one error
    assert main(["validate", "-", "--no-plugins"]) == 1
    assert "standard input holds more than" in capsys.readouterr().err


def test_a_strangers_graph_cannot_write_terminal_controls_or_crash_the_summary(tmp_path, capsys):
    """A hostile pass: node ids and ShowValue text with ESC sequences cleared and recoloured the terminal and
    faked "FAKE: all good" over the line (\\r); a lone surrogate in a value made the summary's print raise
    UnicodeEncodeError after the run had succeeded (a traceback, exit 1). Values are printed escaped; node ids
    with control characters are refused (escaped in the error)."""
    graph = tmp_path / "hostile.json"
    graph.write_text(json.dumps({"format_version": 2, "nodes": {
        "n]0;PWNED": {"type": "String", "inputs": {"value": "hello\u001b[2J\u001b[31mFAKE: all good\r"}},
        "s[1m": {"type": "ShowValue", "inputs": {"value": {"node": "n]0;PWNED", "output": "value"}}},
        "h": {"type": "String", "inputs": {"value": "\udfff"}},
        "half": {"type": "ShowValue", "inputs": {"value": {"node": "h", "output": "value"}}}}}))
    assert main(["run", str(graph), "--output-dir", str(tmp_path / "out"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "\u001b" not in out and "\r" not in out, out
    assert "s[1m: hello\\x1b[2J\\x1b[31mFAKE: all good\\x0d" in out and "half: \\udfff" in out, out
    graph.write_text(json.dumps({"format_version": 2, "nodes": {
        "s\u001b[1m": {"type": "ShowValue", "inputs": {"value": 1}}}}))
    assert main(["run", str(graph), "--output-dir", str(tmp_path / "out"), "--no-progress"]) == 1   # invalid
    captured = capsys.readouterr()
    assert "\u001b" not in captured.out + captured.err and "control or invisible" in captured.out + captured.err


def test_training_progress_shows_loss_and_reaches_a_log_file():
    """A training run's bar showed only "2/3" (loss and lr only with --events), and with stderr redirected to a
    file (`nohup`, a log) nothing at all: a node running for LOG_EVERY seconds now writes a line that often."""
    import io

    from nodegraph.cli import _Progress, _progress_text
    from nodegraph.events import NodeProgress, NodeStarted

    step = NodeProgress("r", node_id="train", value=200, total=600, info={"loss": 0.041136, "lr": 1e-4})
    assert _progress_text(step) == "200/600 loss 0.04114 lr 1.0e-04"
    assert _progress_text(NodeProgress("r", node_id="s", value=3, total=20, info={"loss": float("nan")})) == "3/20"
    encoding = NodeProgress("r", node_id="train", value=2560, total=24000, info={"stage": "encoding images"})
    assert _progress_text(encoding) == "encoding images 2560/24000"
    log = io.StringIO()                                       # not a terminal
    progress = _Progress(enabled=True, stream=log)
    progress(NodeStarted("r", node_id="train", node_type="TrainDiffusion"))
    progress(step)
    assert log.getvalue() == ""                               # a short node writes nothing
    progress.LOG_EVERY = 0.0
    progress(step)
    assert log.getvalue().endswith("] TrainDiffusion (train): 200/600 loss 0.04114 (avg 0.04114) lr 1.0e-04\n")
    # the node's own time left (the bar's ETA counted nodes: a 4,000-step training node was one of six, "3 s left")
    from nodegraph.cli import _timing_text

    assert _timing_text(125.0, 200, 600) == "2:05 elapsed, ~4:10 left"
    assert _timing_text(4000.0, 1, 3) == "1:06:40 elapsed, ~2:13:20 left"
    assert _timing_text(5.0, 0, 600) == "" and _timing_text(5.0, 600, 600) == ""
    progress.node_started -= 125.0                            # as if the node had run 125 s
    progress.pace_start = (0.0, 0)                            # ... from step 0 (a resumed run counts from its start)
    progress(step)
    assert "200/600 loss 0.04114 (avg 0.04114) lr 1.0e-04 · 2:05 elapsed, ~4:10 left" in log.getvalue().splitlines()[-1]
    # the mean of the node's recent steps beside the last one (one step's loss jumps with its timesteps; kohya's
    # avr_loss), started again for each node
    progress(NodeStarted("r", node_id="train2", node_type="TrainLoRA"))
    progress.LOG_EVERY = 0.0
    for loss in (0.1, 0.3):
        progress(NodeProgress("r", node_id="train2", value=1, total=9, info={"loss": loss}))
    assert log.getvalue().splitlines()[-1].endswith("1/9 loss 0.3 (avg 0.2)")


def test_a_nodes_warning_is_printed_when_given_and_kept_by_a_stopped_runs_record(tmp_path, monkeypatch, capsys):
    """KSampler warns before its first step that a size is off the model's range, but the CLI printed warnings
    after the run — a user who stopped the long run never saw it, and the stopped run's record had
    "warnings": [] (an InvokeAI user's pass). Warnings print as they come, once, and every record keeps them;
    a failed plugin node's record names its plugin."""
    import signal

    from nodegraph import Input, Node, NodeInputs, Output, Session, cli, hookimpl

    class WarnThenStop(Node):
        class Inputs(NodeInputs):
            how: str = Input("stop")

        outputs = (Output("value", "INT"),)

        def run(self, how):
            self.context.warn("this size was never trained")
            if how == "stop":       # the user's Ctrl+C (a node's own `raise KeyboardInterrupt` is its failure)
                signal.raise_signal(signal.SIGINT)
            if how == "own_kbd":    # a plugin bug: it exited 130, "interrupted (Ctrl+C)"
                raise KeyboardInterrupt
            if how == "fail":
                raise RuntimeError("broken")
            return {"value": 1}

    class Plugin:
        @hookimpl
        def register_nodes(self):
            return [WarnThenStop]

    monkeypatch.setattr(cli, "_session", lambda args, **kw: Session(plugins=[("warner", Plugin())], **kw))
    graph = tmp_path / "g.json"
    for how, code in (("stop", cli.EXIT_INTERRUPTED), ("own_kbd", cli.EXIT_FAILED), ("fail", cli.EXIT_FAILED),
                      ("ok", 0)):
        graph.write_text(json.dumps({"format_version": 2, "nodes": {
            "w": {"type": "WarnThenStop", "inputs": {"how": how}},
            "s": {"type": "ShowValue", "inputs": {"value": {"node": "w", "output": "value"}}}}}))
        assert main(["run", str(graph), "--output-dir", str(tmp_path / how), "--no-progress"]) == code
        err = capsys.readouterr().err
        assert err.count("warning: node 'w' (WarnThenStop): this size was never trained") == 1, err
        if how == "stop":
            assert err.index("this size was never trained") < err.index("interrupted")
        record = json.loads((tmp_path / how / "g.outputs.json").read_text())
        assert [w["message"] for w in record["warnings"]] == ["this size was never trained"], (how, record)
        if how in ("fail", "own_kbd"):
            assert record["status"] == "failed" and record["error"]["plugin"] == "warner", record


def test_set_takes_a_bare_input_name_as_sweep_does(tmp_path, capsys):
    """`--set seed=42` was refused and its hint (`--set seed.value=42`) named no node of the graph, while
    `--sweep seed=0..3` read the bare name (an InvokeAI user's pass). A bare INPUT is the one node input of
    that name; several or none say so and how to write it."""
    txt2img = str(ROOT / "graphs" / "txt2img.json")
    assert main(["validate", txt2img, "--set", "seed=42", "--set", "steps=3"]) == 0
    capsys.readouterr()
    assert main(["validate", txt2img, "--set", "text=a red circle"]) == 1
    assert "several nodes have an input named 'text': negative, prompt" in capsys.readouterr().out
    assert main(["validate", txt2img, "--set", "seed=1", "--set", "sampler.seed=2"]) == 1
    assert "set one input (sampler.seed) twice" in capsys.readouterr().out
    graph = json.loads(Path(txt2img).read_text())            # an input the file leaves at its default
    graph["nodes"]["sampler"]["inputs"].pop("denoise", None)
    (tmp_path / "g.json").write_text(json.dumps(graph))
    assert main(["validate", str(tmp_path / "g.json"), "--set", "denoise=2"]) == 1
    assert "(node 'sampler', input 'denoise')" in capsys.readouterr().out             # found, then range-checked
    assert main(["validate", str(tmp_path / "g.json"), "--set", "clip_skip=2"]) == 1
    assert "several nodes have an input named 'clip_skip': negative, prompt" in capsys.readouterr().out
    assert main(["run", str(ROOT / "graphs" / "arithmetic.json"), "--set", "nope=1", "--output-dir",
                 str(tmp_path)]) == 1
    assert "no node of the graph has an input named 'nope'" in capsys.readouterr().err


def test_plugins_exits_4_when_another_distribution_took_a_plugins_name(monkeypatch, capsys):
    """A second distribution declaring the entry point `hb_tools` took the name (and every hb_tools.* node) and
    `plugins` exited 0 (a plugin author's pass): the skipped copy did not load, which is exit 4 too."""
    from nodegraph import Input, Node, NodeInputs, Output, Session, cli, hookimpl

    def plugin(value):
        class Made(Node):
            type = "Made"

            class Inputs(NodeInputs):
                pass

            outputs = (Output("value", "INT"),)

            def run(self):
                return {"value": value}

        class Plugin:
            @hookimpl
            def register_nodes(self):
                return [Made]
        return Plugin()

    monkeypatch.setattr(cli, "_session", lambda args, **kw: Session(plugins=[("tools", plugin(1)),
                                                                            ("tools", plugin(2))]))
    assert main(["plugins"]) == cli.EXIT_PLUGIN_FAILED
    assert "another distribution uses the same plugin name" in capsys.readouterr().err
    monkeypatch.setattr(cli, "_session", lambda args, **kw: Session(plugins=[("tools", plugin(1))]))
    assert main(["plugins"]) == 0


def test_run_prints_the_values_a_random_node_drew(tmp_path, capsys):
    """A seed drawn by RandomInt was only in outputs.json and the PNG; A1111 shows the seed it drew."""
    graph = tmp_path / "rand.json"
    graph.write_text(json.dumps({"format_version": 2, "nodes": {
        "r": {"type": "RandomInt", "inputs": {}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "r", "output": "value"}}}}}))
    assert main(["run", str(graph), "--output-dir", str(tmp_path / "out"), "--no-plugins", "--no-progress"]) == 0
    out = capsys.readouterr()
    drawn = json.loads((tmp_path / "out" / "rand.outputs.json").read_text())["outputs"]["show"]["value"]
    assert f"drawn: r.value = {drawn} (pinned in the run's record" in out.out + out.err
