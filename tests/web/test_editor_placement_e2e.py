"""Where a node the user adds lands, in real Chromium at 1280×800 (a ComfyUI power user's report).

`test_added_nodes_land_in_view`:

- a one-node graph fitted into the view (zoomed in to ~250 %): a TEXT_ENCODER wire dropped on the
  empty canvas above the node lists Encode Text first, Enter adds it, connected, and it lies (mostly)
  inside the canvas near the drop, the view as it was — before, it went to the nearest free spot,
  above the canvas under the toolbar, and the focus given to it panned the view away from the node the
  wire came from; a double-click search near the canvas's bottom adds VAE Decode (picked with the
  mouse) whole in the view — before, it hung off the bottom edge;
- txt2img fitted into the view: a MODEL wire dropped near the canvas's top adds K Sampler (first in the
  list) at the drop, in view.

Every wait is on an event or a state with a generous ceiling, never a fixed sleep.
"""

from __future__ import annotations

import json

import pytest

from .test_editor_e2e import CHROMIUM_FLAGS, ROOT, _chromium, _serve, pytestmark  # noqa: F401

ONE_NODE = {"format_version": 2, "metadata": {"title": "One node"}, "nodes": {"ckpt": {"type": "LoadCheckpoint", "inputs": {}}}}

# The part of node `id`'s box inside the canvas (0–1), whether its header is wholly inside, and the boxes.
IN_CANVAS = """(id) => {
  const canvas = document.querySelector('[data-testid=canvas]').getBoundingClientRect();
  const node = document.querySelector(`.react-flow__node[data-id="${id}"]`);
  if (!node) return null;
  const box = node.getBoundingClientRect();
  const header = node.querySelector('.ng-node-header').getBoundingClientRect();
  const w = Math.max(0, Math.min(box.right, canvas.right) - Math.max(box.left, canvas.left));
  const h = Math.max(0, Math.min(box.bottom, canvas.bottom) - Math.max(box.top, canvas.top));
  const headerInside = header.left >= canvas.left - 1 && header.right <= canvas.right + 1 && header.top >= canvas.top - 1 && header.bottom <= canvas.bottom + 1;
  return {share: (w * h) / (box.width * box.height), headerInside,
          box: [box.left, box.top, box.width, box.height], canvas: [canvas.left, canvas.top, canvas.width, canvas.height]};
}"""

# An empty canvas point (the pane itself under it) in the band of the canvas given as fractions.
EMPTY_POINT = """([fx0, fx1, fy0, fy1]) => {
  const c = document.querySelector('[data-testid=canvas]').getBoundingClientRect();
  for (let fy = fy0; fy <= fy1; fy += 0.02) for (let fx = fx0; fx <= fx1; fx += 0.02) {
    const x = c.left + c.width * fx, y = c.top + c.height * fy;
    const el = document.elementFromPoint(x, y);
    if (el && el.classList.contains('react-flow__pane')) return [x, y];
  }
  return null;
}"""


def _empty_point(page, band: tuple[float, float, float, float]) -> tuple[float, float]:
    point = page.evaluate(EMPTY_POINT, list(band))
    assert point, f"no empty canvas point in {band}"
    return point[0], point[1]


def _open(page, graph: dict, first_node: str) -> None:
    """Open `graph` as a load does (fitted into the view) and wait until its nodes are drawn and fitted."""
    page.evaluate("(g) => window.nodegraph.load(g)", graph)
    page.wait_for_selector(f".react-flow__node[data-id='{first_node}']")
    page.click(".react-flow__controls-fitview")
    page.wait_for_function("(id) => { const r = window.__inCanvas(id); return r && r.share > 0.99; }", arg=first_node, timeout=30_000)


def _drop_wire(page, handle: str, at: tuple[float, float]) -> None:
    box = page.locator(f"[data-testid={handle}]").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(at[0] - 20, at[1] - 20, steps=6)
    page.mouse.move(at[0], at[1], steps=4)
    page.mouse.up()
    page.locator("[data-testid=search-popup]").wait_for()


def _view(page) -> str:
    return page.evaluate("() => document.querySelector('.react-flow__viewport').style.transform")


def _added_in_view(page, before: set[str], near: tuple[float, float], view: str) -> str:
    """The node just added: wait until it is drawn and measured, then check it is seen, near `near`, in the
    view the user had (`view`, the viewport's transform: a node placed off-screen and then focused from the
    keyboard made the browser pan to it, away from the node the wire came from)."""
    page.wait_for_function("(n) => Object.keys(window.nodegraph.graph().nodes).length === n", arg=len(before) + 1)
    (added,) = set(page.evaluate("Object.keys(window.nodegraph.graph().nodes)")) - before
    page.wait_for_function("(id) => { const r = window.__inCanvas(id); return r && r.box[2] > 0 && r.box[3] > 0; }", arg=added)
    page.wait_for_function("(id) => document.activeElement?.closest('.react-flow__node')?.dataset.id === id "
                           "|| !document.querySelector('[data-testid=search-popup]')", arg=added)
    seen = page.evaluate("(id) => window.__inCanvas(id)", added)
    assert _view(page) == view, (added, seen)
    assert seen["headerInside"] and seen["share"] >= 0.75, (added, seen)   # mostly visible, its title bar wholly
    left, top, width, height = seen["box"]
    dx = max(left - near[0], 0, near[0] - (left + width))
    dy = max(top - near[1], 0, near[1] - (top + height))
    assert (dx * dx + dy * dy) ** 0.5 < 250, (added, seen, near)          # near the drop (screen px)
    return added


def test_added_nodes_land_in_view(tmp_path):
    """A node added from a dropped wire or the double-click search is seen, near where it was asked for."""
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("the Python playwright package is missing: pip install playwright (no `playwright install`)")
    errors: list[str] = []
    txt2img = json.loads((ROOT / "graphs" / "txt2img.json").read_text())
    with _serve(tmp_path) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(20_000)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url)
            page.wait_for_selector("[data-testid=connection-status][data-status=connected]")
            page.wait_for_selector("[data-testid^=palette-item-]")
            page.evaluate(f"window.__inCanvas = {IN_CANVAS}")

            # --- a one-node graph, zoomed in: a TEXT_ENCODER wire → Enter adds Encode Text, in view ----------
            _open(page, ONE_NODE, "ckpt")
            zoom = page.evaluate("() => new DOMMatrix(getComputedStyle(document.querySelector('.react-flow__viewport')).transform).a")
            assert zoom > 1.5, zoom
            drop = _empty_point(page, (0.1, 0.5, 0.08, 0.3))   # above the node (its box would overlap it), not at the edge
            _drop_wire(page, "handle-ckpt-out-text_encoder", drop)
            view = _view(page)   # taken after the drop: a wire dragged near the canvas's edge pans it
            page.wait_for_function("() => document.querySelector('[data-testid^=search-item-]')?.dataset.testid === 'search-item-EncodeText'")
            page.wait_for_function("() => document.activeElement?.dataset?.testid === 'search-input'")
            page.keyboard.press("Enter")
            added = _added_in_view(page, {"ckpt"}, drop, view)
            graph = page.evaluate("window.nodegraph.graph()")
            assert graph["nodes"][added]["type"] == "EncodeText"
            assert graph["nodes"][added]["inputs"]["text_encoder"] == {"node": "ckpt", "output": "text_encoder"}
            assert page.evaluate("() => window.__inCanvas('ckpt')")["share"] > 0.75   # the wire's node still in view

            # --- still zoomed in: a double-click search near the canvas's bottom, VAE Decode picked with the
            # mouse (no focus, no pan): whole in view, not hanging off the bottom edge -------------------------
            before = {"ckpt", added}
            spot = _empty_point(page, (0.3, 0.7, 0.9, 0.97))
            page.mouse.dblclick(*spot)
            page.locator("[data-testid=search-popup]").wait_for()
            view = _view(page)
            page.wait_for_function("() => document.activeElement?.dataset?.testid === 'search-input'")
            page.keyboard.type("vae decode")
            page.wait_for_function("() => document.querySelector('[data-testid^=search-item-]')?.dataset.testid === 'search-item-VAEDecode'")
            page.click("[data-testid=search-item-VAEDecode]")
            added = _added_in_view(page, before, spot, view)
            assert page.evaluate("(id) => window.nodegraph.graph().nodes[id].type", added) == "VAEDecode"

            # --- txt2img fitted: a MODEL wire dropped near the top adds K Sampler in view ------------------
            _open(page, txt2img, "checkpoint")
            before = set(txt2img["nodes"])
            drop = _empty_point(page, (0.05, 0.9, 0.02, 0.12))
            _drop_wire(page, "handle-checkpoint-out-model", drop)
            view = _view(page)
            page.wait_for_function("() => document.querySelector('[data-testid^=search-item-]')?.dataset.testid === 'search-item-KSampler'")
            page.wait_for_function("() => document.activeElement?.dataset?.testid === 'search-input'")
            page.keyboard.press("Enter")
            added = _added_in_view(page, before, drop, view)
            assert page.evaluate("(id) => window.nodegraph.graph().nodes[id].type", added) == "KSampler"
            assert not errors, errors
        finally:
            browser.close()
