"""Every saved graph in graphs/ validates and runs headless."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodegraph import Session

GRAPHS = sorted((Path(__file__).resolve().parents[1] / "graphs").glob("*.json"))


@pytest.fixture(scope="module")
def session() -> Session:
    return Session()


@pytest.mark.parametrize("path", GRAPHS, ids=[p.stem for p in GRAPHS])
def test_graph_validates_and_runs(session, path):
    """The graph has no validation errors and runs to completion."""
    assert session.validate(path) == []
    result = session.run(path)
    assert result.outputs
