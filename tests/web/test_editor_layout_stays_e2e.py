"""Nodes stay where they are shown while a run's results grow them, in real Chromium (test_editor_e2e.py's server).

A colleague opened the shipped txt2img (no positions in the file: the canvas shows an auto-layout) in a 1024×700
window: it opens at the readable zoom with 4 of its 7 nodes in view (the sampler, decode and SaveImage nodes right
of the canvas), so a Run from there is not followed by the view (docs/editor.md, "Opening a graph"). The results
made the sampler and SaveImage nodes taller, the canvas ran the auto-layout again on the new sizes, and every node
moved: with a batch of 1 the four nodes in view went 147 px down, with a batch of 6 all 7 nodes ended up outside
the view (the four moved 687 px down, to y 828–1109 of a 662 px high canvas). Now the auto-layout is frozen once
shown (docs/editor.md, "Layout"): a node that grows pushes only the nodes it now covers, downwards.

`test_run_results_leave_shown_nodes_in_place`, at 1024×700:
- graphs/txt2img.json as shipped, batch 6 set in its widget, Run: once the 6 images have rendered and the view has
  settled, the nodes that were in view are on screen exactly where they were (same boxes, same view), no two nodes
  overlap, and what Save writes is still the file with only the batch changed (no positions written);
- the same graph with positions in the file, the decode node placed under the sampler: the nodes in view stay put
  as before the fix, and the sampler's step preview and image push the decode node down under it.

Every wait is on an event or a state with a generous ceiling, never a fixed sleep.
"""

from __future__ import annotations

import json

import pytest

from .test_editor_e2e import ROOT, _serve, pytestmark  # noqa: F401
from .test_editor_history_open_e2e import BOXES, SETTLED, _laptop_page, _open_graph, _outside, _run_to_rendered

BATCH = 6


def _overlapping(boxes: dict) -> list:
    """The pairs of nodes whose on-screen boxes overlap."""
    items = sorted(boxes["nodes"].items())
    return [(a, b) for i, (a, (ax, ay, aw, ah)) in enumerate(items) for b, (bx, by, bw, bh) in items[i + 1:]
            if ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah]


def _run_batch(page, tmp_path, what: str) -> tuple[dict, dict]:
    """Set the batch in the empty-latent widget, Run, wait for the images: the boxes before and after, settled."""
    page.wait_for_function("() => !document.querySelector('.ng-node-files') && !window.nodegraph.session().activeRun")
    page.wait_for_function(SETTLED, polling=100, timeout=30_000)
    opened = page.evaluate(BOXES)
    page.fill("[data-testid='widget-latent-batch_size']", str(BATCH))
    page.keyboard.press("Tab")
    page.wait_for_function("(b) => window.nodegraph.graph().nodes.latent.inputs.batch_size === b", arg=BATCH)
    page.wait_for_function(SETTLED, polling=100, timeout=30_000)
    before = page.evaluate(BOXES)
    assert before["transform"] == opened["transform"], "typing into the widget moved the view"
    _run_to_rendered(page, BATCH, 0)
    page.wait_for_function(SETTLED, polling=100, timeout=30_000)
    after = page.evaluate(BOXES)
    page.screenshot(path=str(tmp_path / f"layout-stays-{what}.png"))
    return before, after


def _moved(before: dict, after: dict, ids) -> dict:
    """The nodes of `ids` whose on-screen box changed by more than a rounding pixel, before → after."""
    return {node: (before["nodes"][node], after["nodes"][node]) for node in ids
            if any(abs(p - q) > 1 for p, q in zip(before["nodes"][node], after["nodes"][node]))}


def test_run_results_leave_shown_nodes_in_place(tmp_path):
    """A Run's growing results move none of the nodes in view, with or without positions in the file."""
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("the Python playwright package is missing: pip install playwright (no `playwright install`)")
    shipped_path = ROOT / "graphs" / "txt2img.json"
    shipped = json.loads(shipped_path.read_text())
    assert not shipped.get("ui"), "graphs/txt2img.json now has positions: this test needs a graph without them"
    placed = json.loads(shipped_path.read_text())
    placed["ui"] = {"nodes": {node: {"position": xy} for node, xy in {
        "checkpoint": [0, 60], "latent": [380, 0], "negative": [380, 200], "prompt": [380, 370],
        "sampler": [760, 0], "decode": [760, 420], "save": [1140, 0]}.items()}}
    placed["nodes"]["sampler"]["inputs"]["seed"] = 7   # not the first run's: the sampler runs (and previews) again
    placed_path = tmp_path / "txt2img_placed.json"
    placed_path.write_text(json.dumps(placed))
    errors: list[str] = []
    with _serve(tmp_path) as url, sync_api.sync_playwright() as playwright, _laptop_page(playwright, errors) as page:
        page.goto(url)
        page.wait_for_selector("[data-testid=connection-status][data-status=connected]")
        page.wait_for_selector("[data-testid^=palette-item-]")

        # The shipped graph, auto-laid-out: opened at the readable zoom with part of it in view.
        _open_graph(page, shipped_path, shipped)
        before, after = _run_batch(page, tmp_path, "auto")
        shown = [node for node in before["nodes"] if node not in _outside(before)]
        assert 3 <= len(shown) < len(shipped["nodes"]), before      # part of the graph in view: the view is not followed
        assert after["transform"] == before["transform"], (before["transform"], after["transform"])
        assert _moved(before, after, shown) == {}, (
            f"nodes in view before the run moved on screen (before → after, [x, y, w, h] in the "
            f"{after['canvas']} canvas): {_moved(before, after, shown)}")
        assert after["nodes"]["save"][3] > 3 * before["nodes"]["save"][3], after   # the images did make it taller
        assert _overlapping(after) == [], after
        saved = json.loads(page.evaluate("window.nodegraph.app.graphText()"))
        expected = {**shipped, "format_version": 2}
        expected["nodes"]["latent"]["inputs"]["batch_size"] = BATCH
        assert saved == expected, "Save no longer writes the file with only the batch changed"

        # The same graph with positions in the file: as before, nothing in view moves and the grown sampler
        # pushes the decode node under it down.
        _open_graph(page, placed_path, placed)
        before, after = _run_batch(page, tmp_path, "placed")
        shown = [node for node in before["nodes"] if node not in _outside(before)]
        assert "sampler" not in shown and "decode" not in shown, before
        assert _moved(before, after, shown) == {}, _moved(before, after, shown)
        sampler, decode = after["nodes"]["sampler"], after["nodes"]["decode"]
        assert decode[1] > before["nodes"]["decode"][1] and decode[1] >= sampler[1] + sampler[3], (before, after)
        assert _overlapping(after) == [], after
    assert not errors, f"errors in the page: {errors}"
