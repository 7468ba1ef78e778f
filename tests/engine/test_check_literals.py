"""`Node.check_literals`: a node's own checks of its literal inputs, made by `validate`, by a server's submit
and before every run — for names that `model_folder` cannot describe (a model file *or* a built-in name)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nodegraph import Input, Node, NodeInputs, Output, Session, hookimpl
from nodegraph.errors import GraphValidationError

CHECKED: list[dict[str, Any]] = []


class PickWeights(Node):
    """Takes 'builtin' or a file of models/checkpoints; check_literals says which names fail, before the run."""

    category = "test"

    class Inputs(NodeInputs):
        name: str = Input("builtin")
        scale: int = Input(2, ge=1, le=4)

    outputs = (Output("name", "STRING"),)

    @classmethod
    def check_literals(cls, literals, list_model_files):
        CHECKED.append(dict(literals))
        if literals["name"] == "explode":
            raise RuntimeError("a bug in the node's check")
        if literals["name"] == "a list":
            return ["not", "a", "dict"]
        available, _searched = list_model_files("checkpoints")
        if literals["name"] == "builtin" or literals["name"] in available:
            return {}
        return {"name": f"no weights {literals['name']!r}; use 'builtin' or one of {available}"}

    def run(self, name: str, scale: int) -> dict:
        return {"name": name}


class _Plugin:
    @hookimpl
    def register_nodes(self):
        return [PickWeights]


@pytest.fixture()
def session(tmp_path) -> Session:
    CHECKED.clear()
    return Session(plugins=[("checktest", _Plugin())], output_dir=tmp_path / "out")


def graph(name: Any, **extra: Any) -> dict:
    return {"format_version": 1, "nodes": {
        "pick": {"type": "PickWeights", "inputs": {"name": name, **extra}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "pick", "output": "name"}}}}}


def test_validate_and_run_report_the_nodes_own_check(session):
    errors = session.validate(graph("nope.safetensors"))
    assert [(e.code, e.node_id, e.input) for e in errors] == [("invalid_value", "pick", "name")]
    assert "use 'builtin'" in errors[0].message and "PickWeights" in errors[0].message
    with pytest.raises(GraphValidationError) as info:
        session.run(graph("nope.safetensors"))
    assert [(e.node_id, e.input) for e in info.value.errors] == [("pick", "name")]
    assert session.validate(graph("builtin")) == []
    assert session.run(graph("builtin")).outputs["show"]["value"] == "builtin"
    assert {"name": "builtin", "scale": 2} in CHECKED       # defaults included


def test_a_file_added_later_passes_and_a_removed_one_fails_on_the_next_run(session, tmp_path, monkeypatch):
    """The check runs before every run (a memoised, once-validated graph too): files come and go."""
    folder = Path(session.model_paths.directories("checkpoints")[0])
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "added_for_check_literals_test.safetensors"
    try:
        weights.write_bytes(b"x")
        session.model_paths._listings.clear()
        g = session.load(graph(weights.name))
        assert session.validate(g) == []
        session.run(g)
        weights.unlink()
        session.model_paths._listings.clear()
        with pytest.raises(GraphValidationError):
            session.run(g)
    finally:
        weights.unlink(missing_ok=True)


def test_a_failing_check_is_ignored_and_unsound_values_are_not_checked(session):
    assert session.validate(graph("explode")) == []                   # logged, not an error
    assert session.validate(graph("a list")) == []                    # a malformed answer: logged, ignored
    CHECKED.clear()
    # scale out of range: the type check speaks for it, and it is left out of the node's own check — which still
    # speaks for `name` (a bad scale hid the bad name until the scale was fixed)
    errors = session.validate(graph("nope", scale=9))
    assert [(e.code, e.input) for e in errors] == [("out_of_range", "scale"), ("invalid_value", "name")]
    assert CHECKED == [{"name": "nope"}]
    assert [e.input for e in session.validate(graph("explode", scale=9))] == ["scale"]    # a KeyError-like bug: quiet


def test_linked_inputs_are_not_passed(session):
    g = graph("ignored")
    g["nodes"]["text"] = {"type": "String", "inputs": {"value": "nope"}}
    g["nodes"]["pick"]["inputs"]["name"] = {"node": "text", "output": "value"}
    assert session.validate(g) == []
    assert CHECKED and all("name" not in seen for seen in CHECKED)


def test_run_lists_the_model_file_errors_validate_lists(session):
    """`run` of an invalid graph names every error `validate` names, model files included."""
    g = graph("builtin")
    g["nodes"]["ckpt"] = {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "missing.safetensors"}}
    g["nodes"]["bad"] = {"type": "Int", "inputs": {"value": "three"}}
    expected = {(e.node_id, e.input) for e in session.validate(g)}
    assert ("ckpt", "ckpt_name") in expected and ("bad", "value") in expected
    with pytest.raises(GraphValidationError) as info:
        session.run(g)
    assert {(e.node_id, e.input) for e in info.value.errors} >= expected


def test_a_problem_keyed_by_no_input_is_logged(session, caplog):
    """A port keyed its problem by ComfyUI's argument name ("image_name" for input "name"): the check never fired
    and nothing said so. Such a key is logged once, naming the inputs it could have been."""
    import logging

    real = PickWeights.check_literals.__func__

    def stray(cls, literals, list_model_files):
        return {"weights": "no such weights"}

    PickWeights.check_literals = classmethod(stray)
    try:
        with caplog.at_level(logging.WARNING, logger="nodegraph.validation"):
            assert session.validate(graph("builtin")) == []
            session.validate(graph("builtin"))
    finally:
        PickWeights.check_literals = classmethod(real)
    warned = [r.getMessage() for r in caplog.records if "check_literals of PickWeights" in r.getMessage()]
    assert len(warned) == 1 and "'weights', which is not one of its inputs (name, scale)" in warned[0]
