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


def test_run_with_overrides_and_event_stream(tmp_path, capsys):
    """--set changes literals; --events - writes one JSON object per line on stdout."""
    assert main(["run", ARITHMETIC, "--set", "width.value=64", "--set", "height.value=64",
                 "--events", "-", "--output-dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    events = [json.loads(line) for line in captured.out.splitlines()]
    assert events[0]["type"] == "run_started" and events[-1]["type"] == "run_finished"
    assert {"node_started", "node_finished"} <= {e["type"] for e in events}
    assert "a small latent" in captured.err


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
