"""Property test: mutated graphs never make validation raise anything but our own error type."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodegraph import GraphValidationError, Session

ROOT = Path(__file__).resolve().parents[2]
BASE = json.loads((ROOT / "graphs" / "arithmetic.json").read_text())
SESSION = Session()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def paths(value, prefix=()):
    """Every path to a container or leaf inside a JSON value."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from paths(child, prefix + (key,))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from paths(child, prefix + (i,))


ALL_PATHS = list(paths(BASE))


@st.composite
def mutated_graphs(draw):
    graph = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(ALL_PATHS))
        action = draw(st.sampled_from(["replace", "delete", "add_key"]))
        parent = graph
        try:
            for key in path[:-1]:
                parent = parent[key]
            if not path:
                graph = draw(json_values)
                continue
            if action == "replace":
                parent[path[-1]] = draw(json_values)
            elif action == "delete":
                del parent[path[-1]]
            elif isinstance(parent, dict):
                parent[draw(st.text(max_size=8))] = draw(json_values)
        except (KeyError, IndexError, TypeError):
            continue
    return graph


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_graphs())
def test_validation_never_raises_on_mutated_graphs(graph):
    """validate() returns a list of errors (never raises) for any mutation of a valid graph."""
    errors = SESSION.validate(graph)
    assert isinstance(errors, list)
    for error in errors:
        assert error.code and error.message


@settings(max_examples=200, deadline=None)
@given(mutated_graphs())
def test_run_raises_only_project_errors(graph):
    """run() on a mutated graph either works or raises one of the project's own errors."""
    from nodegraph import NodegraphError

    try:
        SESSION.run(graph)
    except NodegraphError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_structured_errors(data):
    """Random bytes are parsed into a graph or rejected with GraphValidationError."""
    try:
        SESSION.load(data)
    except GraphValidationError as exc:
        assert exc.errors
