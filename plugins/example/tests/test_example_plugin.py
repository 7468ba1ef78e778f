"""Tests of the example plugin, written the way a plugin author would test theirs."""

import pytest

import nodegraph_example
from nodegraph import GraphValidationError, Session


def _graph(hex_a: str = "#ff0000") -> dict:
    return {
        "format_version": 1,
        "nodes": {
            "a": {"type": "HexColor", "inputs": {"hex": hex_a}},
            "b": {"type": "HexColor", "inputs": {"hex": "#0000ff"}},
            "mix": {"type": "MixColors", "inputs": {"a": {"node": "a", "output": "color"},
                                                    "b": {"node": "b", "output": "color"}, "t": 0.5}},
            "show": {"type": "ShowValue", "inputs": {"value": {"node": "mix", "output": "color"}}},
        },
    }


def test_plugin_registers_through_explicit_loading():
    """Passing the module to Session registers its type and nodes."""
    session = Session(plugins=[nodegraph_example], autoload=False)
    assert "COLOR" in session.registry.types
    assert session.run(_graph()).outputs["show"]["value"] == (0.5, 0.0, 0.5)


def test_plugin_is_found_by_entry_point():
    """The installed package is discovered through the `nodegraph` entry-point group."""
    session = Session(autoload=True, allow=["example"])
    assert {"HexColor", "MixColors"} <= set(session.registry.nodes)
    assert session.registry.node_plugin["HexColor"] == "example"


def test_color_ports_refuse_other_types():
    """A STRING output cannot feed a COLOR input."""
    session = Session(plugins=[nodegraph_example], autoload=False)
    graph = _graph()
    graph["nodes"]["s"] = {"type": "String", "inputs": {"value": "red"}}
    graph["nodes"]["mix"]["inputs"]["a"] = {"node": "s", "output": "value"}
    with pytest.raises(GraphValidationError) as info:
        session.run(graph)
    assert [e.code for e in info.value.errors] == ["type_mismatch"]
