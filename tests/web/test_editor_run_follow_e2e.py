"""A run started here with tall results, in real Chromium (tests/web/test_editor_e2e.py's server and browser).

A colleague opened the shipped txt2img in a 1024×700 window, set a batch of 6 and pressed Run: as the results
rendered, the nodes grew and the auto-layout moved them, and all 7 nodes ended up outside the view (it opens at
the readable zoom 0.75 from its top-left corner, with 3 of the 7 nodes already right of the 564 px wide canvas;
the results moved every node down to y 738–1109 of a 662 px high canvas). History → Open and a reload already
follow their run (test_editor_history_open_e2e.py); a run started here is now followed the same way only when the
whole graph was in view when Run was pressed (docs/editor.md, "Opening a graph"): with the whole graph in view
(fit-view, zoom 0.28) the SaveImage node grew to 526 px at y 259 and reached 123 px below the canvas; now the
graph is refitted and stays wholly in view. A user zoomed into one node keeps their view.

`test_run_started_here_follows_whole_graph`, at 1024×700, on txt2img with a batch of 6 (4 steps):
- fit-view, Run: once the 6 images have loaded and the view has settled, every node lies wholly inside the
  canvas (and so at least partly in view);
- the graph opened again, the view zoomed with the wheel into the empty-latent node, Run: once the results have
  rendered and the view has settled, the view is exactly where the user put it.

Every wait is on an event or a state with a generous ceiling, never a fixed sleep.
"""

from __future__ import annotations

import pytest

from .test_editor_e2e import _serve, pytestmark  # noqa: F401
from .test_editor_history_open_e2e import (BOXES, SETTLED, _batch_txt2img, _laptop_page, _open_graph, _outside,
                                          _run_to_rendered)

TRANSFORM = "() => document.querySelector('.react-flow__viewport').style.transform"
CHANGED = "(t) => document.querySelector('.react-flow__viewport').style.transform !== t"


def _not_whole(boxes: dict) -> dict:
    """The nodes not wholly inside the canvas (a rounding pixel aside), with their boxes."""
    width, height = boxes["canvas"]
    return {node: (x, y, w, h) for node, (x, y, w, h) in boxes["nodes"].items()
            if x < -1 or y < -1 or x + w > width + 1 or y + h > height + 1}


def test_run_started_here_follows_whole_graph(tmp_path):
    """Run with the whole graph in view keeps it whole as the results grow it; Run zoomed into a node leaves the view."""
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("the Python playwright package is missing: pip install playwright (no `playwright install`)")
    six_path, six = _batch_txt2img(tmp_path)
    errors: list[str] = []
    with _serve(tmp_path) as url, sync_api.sync_playwright() as playwright, _laptop_page(playwright, errors) as page:
        page.goto(url)
        page.wait_for_selector("[data-testid=connection-status][data-status=connected]")
        page.wait_for_selector("[data-testid^=palette-item-]")

        def open_six() -> None:
            _open_graph(page, six_path, six)
            page.wait_for_function("() => !document.querySelector('.ng-node-files') && !window.nodegraph.session().activeRun")
            page.wait_for_function(SETTLED, polling=100, timeout=30_000)

        def run_and_settle(what: str) -> dict:
            _run_to_rendered(page, 6, 0)
            page.wait_for_function(SETTLED, polling=100, timeout=30_000)
            page.screenshot(path=str(tmp_path / f"run-follow-{what}.png"))
            return page.evaluate(BOXES)

        # The whole graph in view (fit-view), then Run: the view follows the growing graph.
        open_six()
        opened = page.evaluate(TRANSFORM)
        page.click(".react-flow__controls-fitview")
        page.wait_for_function(CHANGED, arg=opened)
        page.wait_for_function(SETTLED, polling=100, timeout=30_000)
        fitted = page.evaluate(BOXES)
        assert _not_whole(fitted) == {}, fitted
        after = run_and_settle("whole")
        assert _outside(after) == {}, f"nodes outside the {after['canvas']} canvas (view {after['transform']}): {_outside(after)}"
        assert _not_whole(after) == {}, (
            f"nodes not wholly inside the {after['canvas']} canvas (view {after['transform']}, "
            f"before the run {fitted['transform']}): {_not_whole(after)}")

        # Zoomed into one node, then Run: the view stays where the user put it.
        open_six()
        node = page.locator("[data-testid='node-latent']").bounding_box()
        page.mouse.move(node["x"] + node["width"] / 2, node["y"] + node["height"] / 2)
        before = page.evaluate(TRANSFORM)
        page.mouse.wheel(0, -600)
        page.wait_for_function(CHANGED, arg=before)
        page.wait_for_function(SETTLED, polling=100, timeout=30_000)
        zoomed = page.evaluate(BOXES)
        assert len(_outside(zoomed)) >= 3, zoomed      # only part of the graph is in view
        after = run_and_settle("zoomed")
        assert after["transform"] == zoomed["transform"], (zoomed, after)
    assert not errors, f"errors in the page: {errors}"
