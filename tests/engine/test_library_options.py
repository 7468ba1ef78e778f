"""Options a Python program passes to Session, checked where they are given (a library user's second pass).

A str where a list of plugin names belongs was read letter by letter (`deny="video"` denied nothing), `allow`
matched by substring, a plugin given in code that failed was skipped silently, node classes of a script needed a
plugin module, and an `async def run`, a device torch cannot use or a str for `model_paths` failed only later, with
another library's words.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import nodegraph

from nodegraph import Input, Node, NodeInputs, Output, Session, hookimpl
from nodegraph.errors import PluginError
from nodegraph.memory import ModelMemoryManager
from nodegraph.plugins import PluginLoadWarning, PluginOptionTypeError


class NegateInt(Node):
    """-value (a node a script declares for itself)."""

    class Inputs(NodeInputs):
        value: int = Input(1)

    outputs = (Output("value", "INT"),)

    def run(self, value):
        return {"value": -value}


def _negate_graph(node_type: str = "NegateInt") -> dict:
    return {"format_version": 2, "nodes": {
        "a": {"type": node_type, "inputs": {"value": 3}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "a", "output": "value"}}}}}


@pytest.mark.parametrize("options, words", [
    ({"deny": "video"}, "deny= takes a list of plugin names, found str 'video': write deny=['video']"),
    ({"allow": "example"}, "write allow=['example']"),
    ({"deny": [3]}, "3 is not a plugin name"),
    ({"plugins": "mine"}, "plugins= takes a list of plugins, found str 'mine'"),
    ({"plugins": NegateInt}, "plugins= takes a list of plugins"),
    ({"plugins": pytest}, "write plugins=[module]"),
])
def test_plugin_options_of_the_wrong_kind_are_type_errors(options, words):
    with pytest.raises(PluginOptionTypeError) as info:
        Session(autoload=False, **options)
    assert words in str(info.value) and isinstance(info.value, TypeError)


def test_node_classes_given_straight_to_session_load_as_one_plugin():
    session = Session(autoload=False, plugins=[NegateInt])
    assert "tests.NegateInt" in session.registry.nodes      # named after its top-level package (tests.engine....)
    assert session.run(_negate_graph()).outputs["show"]["value"] == -3
    named = Session(autoload=False, plugins=[("mine", [NegateInt])])
    assert named.run(_negate_graph("mine.NegateInt")).outputs["show"]["value"] == -3


class _Broken:
    @hookimpl
    def register_nodes(self):
        raise RuntimeError("boom")


def test_a_plugin_given_in_code_that_fails_warns_at_the_call():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session = Session(autoload=False, plugins=[("broken", _Broken())])
    [warning] = [w for w in caught if issubclass(w.category, PluginLoadWarning)]
    assert "plugin 'broken' failed to load" in str(warning.message) and "boom" in str(warning.message)
    assert warning.filename == __file__          # points at the Session(...) line, not into nodegraph
    assert any(w["plugin"] == "broken" for w in session.plugin_warnings())


def test_async_run_is_refused_where_the_class_is_declared():
    with pytest.raises(PluginError, match="run is `async def`"):
        class Fetch(Node):
            outputs = (Output("value", "INT"),)

            async def run(self):
                return {"value": 1}


@pytest.mark.parametrize("device, words", [("gpu", "is no torch device"), (3, "a device is a str")])
def test_a_device_torch_cannot_use_is_refused_at_once(device, words):
    with pytest.raises(ValueError, match=words):
        ModelMemoryManager(compute_device=device)


def test_cuda_without_cuda_is_refused_at_once():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="sees no CUDA device"):
        ModelMemoryManager(compute_device="cuda")


@pytest.mark.parametrize("value", ["/srv/models", {"checkpoints": "/srv"}])
def test_model_paths_of_the_wrong_kind_name_the_constructor(value):
    with pytest.raises(TypeError, match=r"ModelPaths.from_config"):
        Session(autoload=False, model_paths=value)


def test_exports_are_explicit_for_type_checkers():
    """mypy --strict reported `Module "nodegraph" does not explicitly export attribute "Session"` and read RunResult
    as Any: the package's __all__ is a literal list and its TYPE_CHECKING block imports each name as itself."""
    import ast

    tree = ast.parse((Path(nodegraph.__file__)).read_text())
    literal = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                   and any(getattr(t, "id", None) == "__all__" for t in node.targets))
    assert isinstance(literal, ast.List) and sorted(ast.literal_eval(literal)) == sorted(nodegraph._EXPORTS)
    checking = next(node for node in tree.body if isinstance(node, ast.If) and getattr(node.test, "id", "") ==
                    "TYPE_CHECKING")
    reexported = {alias.name: f"{node.module}" for node in checking.body for alias in node.names
                  if alias.asname == alias.name}
    assert reexported == {name: module for name, module in nodegraph._EXPORTS.items()}
    for name in nodegraph.__all__:
        assert getattr(nodegraph, name) is not None
