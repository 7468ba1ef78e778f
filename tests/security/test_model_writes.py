"""A server's plain users cannot write into the model folders every user loads from.

A stranger's pass found that bob, a plain user, could run SaveCheckpoint with `overwrite` and replace the
studio checkpoint every user loads. `Session.validate/run(model_writes=False)` refuse every node whose
file-name input is declared in a model folder; the server passes it for plain users (tests/server).
"""

from __future__ import annotations

import sys
import types

import pytest

from nodegraph import GraphValidationError, Input, Node, NodeInputs, Output, Session, hookimpl



class SaveTinyModel(Node):
    """Writes a text file into the loras model folder (as a plugin's save node would)."""

    output_node = True

    class Inputs(NodeInputs):
        text: str = Input("weights")
        filename: str = Input("mine.safetensors", file_name_in="loras", file_suffix=".safetensors")

    outputs = ()

    def run(self, text: str, filename: str) -> dict:
        folder = self.context.service("model_paths").directories("loras")[0]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / filename).write_text(text)
        return {}


class ShowNumber(Node):
    output_node = True

    class Inputs(NodeInputs):
        value: int = Input(0)

    outputs = (Output("value", "INT"),)

    def run(self, value: int) -> dict:
        return {"value": value}


@pytest.fixture
def session(tmp_path, monkeypatch):
    monkeypatch.setenv("NODEGRAPH_MODELS_DIR", str(tmp_path / "models"))
    plugin = types.ModuleType("model_write_test_plugin")
    plugin.register_nodes = hookimpl(lambda: [SaveTinyModel, ShowNumber])
    sys.modules[plugin.__name__] = plugin
    return Session(plugins=[plugin])


SAVES = {"format_version": 2, "nodes": {"save": {"type": "SaveTinyModel", "inputs": {"text": "bob's"}}}}


def test_a_plain_users_save_is_refused_at_validation_and_at_run(session, tmp_path):
    errors = session.validate(SAVES, model_writes=False)
    assert [(e.code, e.node_id, e.input, e.details["folder"]) for e in errors] == [
        ("model_write_forbidden", "save", "filename", "loras")]
    assert "only admins" in errors[0].message
    with pytest.raises(GraphValidationError) as info:
        session.run(SAVES, model_writes=False)
    assert info.value.errors[0].code == "model_write_forbidden"
    assert not list(tmp_path.rglob("mine.safetensors"))


def test_inside_a_subgraph_too(session):
    graph = {"format_version": 2,
             "subgraphs": {"saver": {"nodes": {"save": {"type": "SaveTinyModel", "inputs": {}}}}},
             "nodes": {"outer": {"type": "subgraph:saver", "inputs": {}}}}
    errors = session.validate(graph, model_writes=False)
    assert [e.code for e in errors] == ["model_write_forbidden"]


def test_admins_and_the_single_user_default_may_save(session, tmp_path):
    assert session.validate(SAVES) == []
    session.run(SAVES)
    assert (tmp_path / "models" / "loras" / "mine.safetensors").read_text() == "bob's"


def test_graphs_that_write_no_model_are_untouched(session):
    graph = {"format_version": 2, "nodes": {"n": {"type": "ShowNumber", "inputs": {"value": 3}}}}
    assert session.validate(graph, model_writes=False) == []
    assert session.run(graph, model_writes=False).outputs["n"]["value"] == 3


def test_every_shipped_model_save_node_declares_its_model_folder():
    """The rule is declarative: each node that saves a model says so with file_name_in."""
    registry = Session(autoload=True).registry
    savers = {"SaveCheckpoint", "SaveControlNet", "SaveLoRA", "SaveAudioModel", "SaveSafetyChecker",
              "SaveTextToPoints", "SaveMotionModule"}
    found = {cls.spec.type.split(".")[-1] for cls in set(registry.nodes.values())
             if any(i.file_name_in not in (None, "input", "output") for i in cls.spec.inputs.values())}
    assert savers <= found, savers - found
