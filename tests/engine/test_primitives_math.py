"""The Math node: every result a finite real number, every impossible one a NodeInputError naming the fix."""

from __future__ import annotations

import pytest

from nodegraph import Session
from nodegraph.errors import NodeExecutionError, NodeInputError


def _math(a: float, b: float, op: str) -> float:
    graph = {"format_version": 2, "nodes": {"m": {"type": "Math", "inputs": {"a": a, "b": b, "op": op}},
                                            "show": {"type": "ShowValue", "inputs": {
                                                "value": {"node": "m", "output": "result"}}}}}
    return Session().run(graph, outputs=["m"]).outputs["m"]["result"]


@pytest.mark.parametrize("a, b, op, words", [
    (1e300, 1e300, "multiply", "overflows a float"),      # inf would make outputs.json invalid JSON
    (-1e300, 1e300, "multiply", "overflows a float"),
    (10.0, 400.0, "power", "overflows a float"),
    (-8.0, 0.5, "power", "not a real number"),           # complex: was a TypeError from float()
    (0.0, -1.0, "power", "negative power"),               # was a bare ZeroDivisionError
    (1.0, 0.0, "divide", "cannot divide by zero"),
    (3, 10 ** 12, "power", "overflows a float"),         # ints: was computed exactly (minutes of CPU, then a crash)
    (10, 400, "power", "overflows a float"),
])
def test_impossible_results_are_input_errors(a, b, op, words):
    with pytest.raises(NodeExecutionError) as info:
        _math(a, b, op)
    assert isinstance(info.value.exception, NodeInputError) and words in str(info.value.exception)


def test_ordinary_results():
    assert _math(-8.0, 2.0, "power") == 64.0
    assert _math(2.0, -1.0, "power") == 0.5
    assert _math(1e300, 10.0, "multiply") == 1e301


def test_scale_mask_is_a_registered_node():
    """Error messages name ScaleMask: it must be a node a graph can use."""
    from nodegraph import Session

    assert "ScaleMask" in Session().registry.nodes
