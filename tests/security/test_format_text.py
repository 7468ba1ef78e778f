"""FormatText fills only plain {a}…{d} fields with bounded specs; every STRING output is capped."""

from __future__ import annotations

import os

import pytest

from nodegraph import Input, Node, NodeExecutionError, NodeInputError, NodeInputs, Output, Session, hookimpl
from nodegraph.errors import GraphValidationError, NodeOutputError
from nodegraph.executor import MAX_TEXT_OUTPUT_BYTES

from .conftest import link


def _constant(value) -> dict:
    kind = {int: "Int", float: "Float", str: "String"}[type(value)]
    return {"type": kind, "inputs": {"value": value}}


def _format(template: str, a=1, b=2.5, c="x", d=None) -> str:
    """Run FormatText in a graph, its values coming from Int / Float / String nodes (d left unconnected)."""
    nodes = {name: _constant(value) for name, value in (("a", a), ("b", b), ("c", c), ("d", d)) if value is not None}
    inputs = {"template": template, **{name: link(name, "value") for name in nodes}}
    graph = {"format_version": 1, "nodes": {
        **nodes, "f": {"type": "FormatText", "inputs": inputs},
        "show": {"type": "ShowValue", "inputs": {"value": link("f", "text")}}}}
    return Session().run(graph).outputs["show"]["value"]


def _refusal(template: str, **values) -> NodeInputError:
    """The refusal: at validation for a field of the literal template (every field is checked before anything
    runs), or while running for a value that cannot take its spec."""
    with pytest.raises((NodeExecutionError, GraphValidationError)) as info:
        _format(template, **values)
    if isinstance(info.value, GraphValidationError):
        (error,) = info.value.errors
        assert error.node_id == "f"
        return NodeInputError(error.input, error.message)
    assert isinstance(info.value.exception, NodeInputError)
    return info.value.exception


def test_good_templates_still_work():
    """Plain fields, literal braces and the allowed format specs give the expected text."""
    assert _format("{a} cats and {b} dogs") == "1 cats and 2.5 dogs"
    assert _format("{{a}} is {a:03d}, {b:.3f}, {b:e}, {c:>4}|{c:*<3}|{a:+}|{a:x}|{b:.0%}") == \
        "{a} is 001, 2.500, 2.500000e+00,    x|x**|+1|1|250%"
    assert _format("{a:,}", a=1234567) == "1,234,567"
    assert _format("no fields at all") == "no fields at all"
    assert _format("{d}") == "None"


def test_attribute_and_index_access_is_refused():
    """The {a.__init__.__globals__[...]} attack (and any attribute or index access) is refused before formatting."""
    os.environ.setdefault("NODEGRAPH_TEST_SECRET", "hunter2")
    error = _refusal("{a.__init__.__globals__[os].environ[NODEGRAPH_TEST_SECRET]}")
    assert error.input == "template" and "not allowed" in str(error)
    assert "hunter2" not in str(error)
    for template in ("{a.real}", "{c[0]}", "{a.__class__}"):
        assert "not allowed" in str(_refusal(template))


def test_huge_widths_and_precisions_are_refused():
    """{a:>100000000} and other unbounded widths or precisions are refused, naming the limit."""
    assert "width" in str(_refusal("{a:>100000000}"))
    assert "width" in str(_refusal("{a:>" + "9" * 6000 + "}"))
    assert "precision" in str(_refusal("{b:.500f}"))
    assert _format("{a:>100}") == " " * 99 + "1"                                  # the bound itself is fine


def test_positional_fields_and_conversions_are_refused():
    """{0}, {} and the conversions !r / !s / !a are refused; unknown names too."""
    for template in ("{0}", "{}", "{a!r}", "{a!s}", "{a!a}", "{e}", "{a:{b}}", "{a:%Y}", "{a:=^10.3Lf}"):
        error = _refusal(template)
        assert error.input == "template"


def test_a_value_that_cannot_take_the_spec_names_its_field():
    """A spec the value's type does not support ({c:d} on text) names the field and the fix."""
    error = _refusal("{c:d}")
    assert error.input == "c" and "change the spec" in str(error)


def test_formatted_text_is_capped():
    """A template whose values would make more than the text cap is refused while formatting."""
    big = "x" * (MAX_TEXT_OUTPUT_BYTES // 2 + 1)
    error = _refusal("{a}{b}{c}", a=big, b=big, c="")
    assert "over" in str(error)


class HugeText(Node):
    """Return a text of `size` characters (tests the executor's STRING cap)."""

    class Inputs(NodeInputs):
        size: int = Input(10, ge=0, le=10 ** 9)
        char: str = Input("x")

    outputs = (Output("text", "STRING"),)

    def run(self, size: int, char: str) -> dict:
        return {"text": char * size}


@hookimpl
def register_nodes():
    return [HugeText]


def _huge(size: int, char: str = "x") -> str:
    import sys

    session = Session(plugins=[("huge", sys.modules[__name__])])
    graph = {"format_version": 1, "nodes": {
        "t": {"type": "HugeText", "inputs": {"size": size, "char": char}},
        "show": {"type": "ShowValue", "inputs": {"value": link("t", "text")}}}}
    return session.run(graph).outputs["show"]["value"]


def test_every_string_output_is_capped_by_the_executor():
    """Any node's STRING output over 1 MiB of UTF-8 fails that node with NodeOutputError naming the output."""
    assert len(_huge(MAX_TEXT_OUTPUT_BYTES)) == MAX_TEXT_OUTPUT_BYTES                   # exactly at the cap: fine
    with pytest.raises(NodeExecutionError) as info:
        _huge(MAX_TEXT_OUTPUT_BYTES + 1)
    assert isinstance(info.value.exception, NodeOutputError) and info.value.exception.output == "text"
    with pytest.raises(NodeExecutionError):                                            # counted in UTF-8 bytes
        _huge(MAX_TEXT_OUTPUT_BYTES // 2 + 1, char="é")
