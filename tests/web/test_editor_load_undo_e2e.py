"""Undoing across runs and loads, in real Chromium (tests/web/test_editor_e2e.py's server).

`test_undo_after_a_push_and_a_load_inside_a_subgraph`, at 1024×700:
- txt2img with positions in the file, the decode node under the sampler: an edit, then Run (4 steps), so the
  sampler's preview and image push the decode node down (no undo step); Ctrl+Z undid the edit and put the decode
  node back at its old position, under the grown sampler. Now it stays pushed: no two nodes overlap after Ctrl+Z
  and after Ctrl+Shift+Z.
- a graph with a subgraph, the subgraph open and edited, then graphs/arithmetic.json loaded: Ctrl+Z showed the
  subgraph's inner node as if it were the whole graph. Now it shows the whole graph at the top level, with the
  subgraph's edit kept.

Every wait is on an event or a state with a generous ceiling, never a fixed sleep.
"""

from __future__ import annotations

import json

import pytest

from .test_editor_e2e import ROOT, _serve, pytestmark  # noqa: F401
from .test_editor_history_open_e2e import BOXES, SETTLED, _laptop_page, _open_graph, _run_to_rendered
from .test_editor_layout_stays_e2e import _overlapping

SUBGRAPH_GRAPH = {
    "format_version": 2,
    "nodes": {
        "k": {"type": "Int", "inputs": {"value": 6}},
        "g": {"type": "subgraph:inner", "inputs": {"x": {"node": "k", "output": "value"}}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "g", "output": "result"}}},
    },
    "subgraphs": {"inner": {
        "inputs": {"x": {}},
        "outputs": {"result": {"node": "mul", "output": "result"}},
        "nodes": {"mul": {"type": "IntMath", "inputs": {"a": {"node": "$inputs", "output": "x"}, "b": 7, "op": "multiply"}}},
    }},
    "ui": {"nodes": {"k": {"position": [0, 0]}, "g": {"position": [400, 0]}, "show": {"position": [800, 0]}}},
}


def test_undo_after_a_push_and_a_load_inside_a_subgraph(tmp_path):
    """Ctrl+Z after a Run's push leaves no node under a grown one; Ctrl+Z of a load made in a subgraph shows the whole graph."""
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("the Python playwright package is missing: pip install playwright (no `playwright install`)")
    placed = json.loads((ROOT / "graphs" / "txt2img.json").read_text())
    placed["ui"] = {"nodes": {node: {"position": xy} for node, xy in {
        "checkpoint": [0, 60], "latent": [380, 0], "negative": [380, 200], "prompt": [380, 370],
        "sampler": [760, 0], "decode": [760, 420], "save": [1140, 0]}.items()}}
    placed["nodes"]["sampler"]["inputs"]["steps"] = 4
    placed_path = tmp_path / "txt2img_placed.json"
    placed_path.write_text(json.dumps(placed))
    subgraph_path = tmp_path / "with_subgraph.json"
    subgraph_path.write_text(json.dumps(SUBGRAPH_GRAPH))
    arithmetic_path = ROOT / "graphs" / "arithmetic.json"
    arithmetic = json.loads(arithmetic_path.read_text())
    errors: list[str] = []
    with _serve(tmp_path) as url, sync_api.sync_playwright() as playwright, _laptop_page(playwright, errors) as page:
        page.goto(url)
        page.wait_for_selector("[data-testid=connection-status][data-status=connected]")
        page.wait_for_selector("[data-testid^=palette-item-]")

        # An edit, a Run whose results push the decode node down, then Ctrl+Z and Ctrl+Shift+Z.
        _open_graph(page, placed_path, placed)
        page.wait_for_function(SETTLED, polling=100, timeout=30_000)
        width = placed["nodes"]["latent"]["inputs"]["width"]
        page.fill("[data-testid='widget-latent-width']", str(width * 2))
        page.keyboard.press("Tab")
        page.wait_for_function("(w) => window.nodegraph.graph().nodes.latent.inputs.width === w", arg=width * 2)
        page.wait_for_function(SETTLED, polling=100, timeout=30_000)
        before = page.evaluate(BOXES)
        _run_to_rendered(page, 1, 0)
        page.wait_for_function(SETTLED, polling=100, timeout=30_000)
        ran = page.evaluate(BOXES)
        sampler = ran["nodes"]["sampler"]
        assert ran["nodes"]["decode"][1] >= sampler[1] + sampler[3] > before["nodes"]["decode"][1], (before, ran)  # pushed
        page.click(".react-flow__pane", position={"x": 5, "y": 5})   # the keys go to the canvas
        page.keyboard.press("Control+z")
        page.wait_for_function("(w) => window.nodegraph.graph().nodes.latent.inputs.width === w", arg=width)
        page.wait_for_function(SETTLED, polling=100, timeout=30_000)
        undone = page.evaluate(BOXES)
        page.screenshot(path=str(tmp_path / "undo-after-push.png"))
        assert _overlapping(undone) == [], f"after Ctrl+Z, nodes overlap: {undone}"   # was [('decode', 'sampler')]
        page.keyboard.press("Control+Shift+z")
        page.wait_for_function("(w) => window.nodegraph.graph().nodes.latent.inputs.width === w", arg=width * 2)
        page.wait_for_function(SETTLED, polling=100, timeout=30_000)
        assert _overlapping(page.evaluate(BOXES)) == []

        # A subgraph opened and edited, then another graph loaded: Ctrl+Z gives the whole graph back.
        _open_graph(page, subgraph_path, SUBGRAPH_GRAPH)
        page.click("[data-testid=open-subgraph-g]")
        page.wait_for_selector("[data-testid=subgraph-bar]")
        page.fill("[data-testid='widget-mul-b']", "8")
        page.keyboard.press("Tab")
        page.wait_for_function("() => window.nodegraph.graph().nodes.mul.inputs.b === 8")
        _open_graph(page, arithmetic_path, arithmetic)
        assert page.locator("[data-testid=subgraph-bar]").count() == 0
        page.click(".react-flow__pane", position={"x": 5, "y": 5})
        page.keyboard.press("Control+z")
        page.wait_for_selector("[data-testid='node-g']")   # before: only the inner node "mul", as if it were the graph
        graph = page.evaluate("window.nodegraph.graph()")
        assert sorted(graph["nodes"]) == ["g", "k", "show"], graph["nodes"]
        assert graph["subgraphs"]["inner"]["nodes"]["mul"]["inputs"]["b"] == 8
        assert page.locator("[data-testid='node-mul']").count() == 0
        assert page.locator("[data-testid=subgraph-bar]").count() == 0
    assert not errors, f"errors in the page: {errors}"
