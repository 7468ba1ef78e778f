"""NodeContext.warn: a node tells the user something that is not an error; events, RunResult and the CLI carry it."""

from __future__ import annotations

import json
import sys
import types

import pytest

from nodegraph import Input, Node, NodeInputs, Output, Session, hookimpl
from nodegraph.cli import main


class Grumble(Node):
    output_node = True

    class Inputs(NodeInputs):
        times: int = Input(1, ge=0, le=100)

    outputs = (Output("value", "INT"),)

    def run(self, times: int) -> dict:
        for index in range(times):
            self.context.warn(f"grumble {index} " + "!" * (2000 if index == 0 else 1))
        return {"value": times}


@pytest.fixture
def plugin():
    module = types.ModuleType("warning_test_plugin")
    module.register_nodes = hookimpl(lambda: [Grumble])
    sys.modules[module.__name__] = module
    return module


def _graph(times: int) -> dict:
    return {"format_version": 2, "nodes": {"g": {"type": "Grumble", "inputs": {"times": times}}}}


def test_warnings_become_events_and_run_result_entries_capped_per_node(plugin):
    session = Session(plugins=[plugin])
    events = []
    result = session.run(_graph(30), on_event=events.append)
    warnings = [e for e in events if e.type == "node_warning"]
    assert len(warnings) == len(result.warnings) == 20
    assert result.warnings[0]["node_id"] == "g" and result.warnings[0]["node_type"] == "Grumble"
    assert len(result.warnings[0]["message"]) == 1000 and result.warnings[1]["message"] == "grumble 1 !"
    assert warnings[0].to_dict()["type"] == "node_warning"
    assert session.run(_graph(30)).warnings == []            # from the cache: not repeated


def test_the_cli_prints_warnings_and_writes_them_to_the_summary(plugin, tmp_path, monkeypatch, capsys):
    import nodegraph.session as session_module

    graph = tmp_path / "g.json"
    graph.write_text(json.dumps(_graph(2)))
    real = session_module.load_plugins
    monkeypatch.setattr(session_module, "load_plugins",
                        lambda **kwargs: real(**{**kwargs, "plugins": [*kwargs.get("plugins", ()), plugin]}))
    assert main(["run", str(graph), "--output-dir", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "warning: node 'g' (Grumble): grumble 1 !" in err
    summary = json.loads((tmp_path / "out" / "g.outputs.json").read_text())
    assert [w["message"][:9] for w in summary["warnings"]] == ["grumble 0", "grumble 1"]
