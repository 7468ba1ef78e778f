"""The editor's second version (issue #17) in real Chromium: one browser, one server, one fast graph.

`test_editor_features` walks every feature a node-editor user reaches for, on a
graph that runs in seconds (two tiny-world renders batched into SaveImage, and
integer arithmetic):

- the first open (nothing kept yet) shows the shipped txt2img template;
- bad input: a file that is not JSON shows the parse error with its line; so
  does JSON nested 100 000 levels deep; a ComfyUI UI workflow is refused in the
  server's words and an API prompt is imported (unknown nodes as red
  placeholders), the canvas kept meanwhile; node ids such as `constructor` and
  `__proto__` load and draw; an unknown node type is a red placeholder that
  keeps its data (saving round-trips it) and, muted, lets the rest run (shown
  as skipped);
- a run: history row (time, seed-less, thumbnail), image viewer (large view,
  zoom, per-frame view of the batch, compare slider);
- the palette ranks "int" → Int first; new nodes never overlap;
- double-click opens the search at the cursor ("clip" finds the text encoders);
  a wire dropped on empty canvas opens it filtered to nodes that fit, and the
  chosen node is connected;
- context menus for canvas, node, wire (add a reroute), group;
- groups (Ctrl+G; dragging the title moves the nodes), bypass / mute (Ctrl+B /
  Ctrl+M), align, auto-layout (Alt+L, no overlaps), resizing a node;
- subgraphs: collapse a selection (Ctrl+Shift+E), open it, go back, run it, open it again: its inner
  nodes show the run's states;
- widgets: slider, searchable combo;
- Ctrl+Enter runs from inside a number field;
- templates menu, history filter and "Open", shortcut help, light theme, and
  after a reload: the graph, the results of the run shown on it, the theme, the history and the gallery are still there.

Every wait is on an event or a state with a generous ceiling, never a fixed sleep.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .test_editor_e2e import CHROMIUM_FLAGS, _chromium, _drag_link, _save, _serve, pytestmark  # noqa: F401

WHITE_RED = "a large red circle in the centre, on a white background"
WHITE_GREEN = "a large green square in the centre, on a white background"

FEATURES_GRAPH = {
    "format_version": 2,
    "metadata": {"title": "Features"},
    "nodes": {
        "r1": {"type": "RenderTinyWorld", "inputs": {"caption": WHITE_RED, "size": 64}},
        "r2": {"type": "RenderTinyWorld", "inputs": {"caption": WHITE_GREEN, "size": 64}},
        "batch": {"type": "ImageBatch", "inputs": {"a": {"node": "r1", "output": "image"}, "b": {"node": "r2", "output": "image"}}},
        "save": {"type": "SaveImage", "inputs": {"images": {"node": "batch", "output": "images"}, "filename_prefix": "feat"}},
        "a": {"type": "Int", "inputs": {"value": 6}},
        "k": {"type": "Int", "inputs": {"value": 1}},
        "mul": {"type": "IntMath", "inputs": {"a": {"node": "a", "output": "value"}, "b": {"node": "a", "output": "value"}, "op": "multiply"}},
        "add": {"type": "IntMath", "inputs": {"a": {"node": "mul", "output": "result"}, "b": {"node": "k", "output": "value"}, "op": "add"}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "add", "output": "result"}}},
        "ghost": {"type": "NotARealNode", "mode": "mute", "inputs": {"whatever": {"deep": [1, 2]}, "x": {"node": "add", "output": "result"}}},
    },
    "ui": {"nodes": {
        "r1": {"position": [0, 0]}, "r2": {"position": [0, 230]}, "batch": {"position": [380, 100]}, "save": {"position": [760, 0]},
        "a": {"position": [0, 520]}, "k": {"position": [0, 660]}, "mul": {"position": [380, 520]}, "add": {"position": [760, 520]},
        "show": {"position": [1140, 520]}, "ghost": {"position": [1140, 760]},
    }},
}

# JavaScript helpers evaluated in the page.
OVERLAPS = """() => {
  const boxes = [...document.querySelectorAll('.react-flow__node-schema')].map((e) => [e.dataset.id, e.getBoundingClientRect()]);
  const out = [];
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const [a, r] = boxes[i], [b, s] = boxes[j];
    if (r.left < s.right - 1 && s.left < r.right - 1 && r.top < s.bottom - 1 && s.top < r.bottom - 1) out.push(a + '/' + b);
  }
  return out;
}"""
EMPTY_SPOT = """() => {
  const c = document.querySelector('[data-testid=canvas]').getBoundingClientRect();
  for (let fy = 0.1; fy < 0.6; fy += 0.05) for (let fx = 0.1; fx < 0.8; fx += 0.05) {
    const x = c.left + c.width * fx, y = c.top + c.height * fy;
    const el = document.elementFromPoint(x, y);
    if (el && el.classList.contains('react-flow__pane')) return [x, y];
  }
  return null;
}"""


def _node_ids(page) -> set[str]:
    return set(page.evaluate("Object.keys(window.nodegraph.graph().nodes)"))


def _graph(page) -> dict:
    return page.evaluate("window.nodegraph.graph()")


def _click_node(page, node_id: str, modifiers=None) -> None:
    page.click(f"[data-testid='node-{node_id}'] .ng-node-header", modifiers=modifiers or [], position={"x": 40, "y": 8})


def _empty_spot(page) -> tuple[float, float]:
    spot = page.evaluate(EMPTY_SPOT)
    assert spot, "no empty canvas spot found"
    return spot[0], spot[1]


def _menu(page, x: float, y: float, item: str, target: str) -> None:
    page.mouse.click(x, y, button="right")
    page.wait_for_selector(f"[data-testid=context-menu][data-target={target}]")
    page.click(f"[data-testid=menu-{item}]")


def test_editor_features(tmp_path):
    """Bad input, run + viewer, ranked search, wire search, menus, groups, modes, layout, subgraphs, widgets, templates, history, themes."""
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("the Python playwright package is missing: pip install playwright (no `playwright install`)")
    errors: list[str] = []
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "format_version": 2,\n  "nodes": {,\n}\n')
    comfy = tmp_path / "comfy_workflow.json"
    comfy.write_text(json.dumps({"last_node_id": 2, "nodes": [{"id": 1}], "links": [], "version": 0.4}))   # no type
    comfy_api = tmp_path / "comfy_api.json"
    comfy_api.write_text(json.dumps({
        "4": {"class_type": "FaceDetailer", "inputs": {"ckpt_name": "v1-5.safetensors"}},   # no equivalent here
        "5": {"class_type": "Int", "inputs": {"value": 3}}}))
    deep = tmp_path / "deep.json"
    deep.write_text('{"format_version": 2, "nodes": {"a": {"type": "Int", "inputs": {"value": %s%s}}}}' % ("[" * 100_000, "]" * 100_000))
    tricky = tmp_path / "tricky_ids.json"
    tricky.write_text(json.dumps({"format_version": 2, "nodes": {
        "constructor": {"type": "Int", "inputs": {"value": 1}},
        "__proto__": {"type": "IntMath", "inputs": {"a": {"node": "constructor", "output": "value"}, "b": 2, "op": "add"}},
        "toString": {"type": "ShowValue", "inputs": {"value": {"node": "__proto__", "output": "result"}}}}}))
    features = tmp_path / "features.json"
    features.write_text(json.dumps(FEATURES_GRAPH, indent=1))

    with _serve(tmp_path) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 900}, accept_downloads=True)
            page.set_default_timeout(20_000)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url)
            page.wait_for_selector("[data-testid=connection-status][data-status=connected]")
            page.wait_for_selector("[data-testid^=palette-item-]")

            # --- first open: nothing kept in this browser yet, so the shipped txt2img template -----------
            page.wait_for_function("() => Object.keys(window.nodegraph.graph().nodes).includes('sampler')")
            first = _node_ids(page)

            # --- bad input -------------------------------------------------------------------------
            page.set_input_files("[data-testid=load-input]", str(broken))
            banner = page.locator("[data-testid=error-banner]")
            banner.wait_for()
            assert "broken.json" in banner.inner_text() and "line 3" in banner.inner_text(), banner.inner_text()
            page.set_input_files("[data-testid=load-input]", str(deep))
            page.wait_for_function("() => document.querySelector('[data-testid=error-banner]')?.textContent.includes('nested too deeply')")
            page.set_input_files("[data-testid=load-input]", str(comfy))
            page.wait_for_function(   # a UI workflow that cannot be read: refused by the server's import_graph
                "() => document.querySelector('[data-testid=error-banner]')?.textContent.includes('cannot be read')")
            assert _node_ids(page) == first, "a file that is not a graph must not replace the canvas"
            page.set_input_files("[data-testid=load-input]", str(comfy_api))
            page.wait_for_selector("[data-testid=node-4].ng-unknown")   # FaceDetailer: a placeholder with its data
            assert _graph(page)["nodes"]["4"]["inputs"] == {"ckpt_name": "v1-5.safetensors"}
            assert "Imported comfy_api.json" in page.inner_text("[data-testid=info-banner]")
            page.set_input_files("[data-testid=load-input]", str(tricky))
            page.wait_for_selector("[data-testid=node-toString]")
            assert page.locator(".react-flow__node-schema").count() == 3 and page.locator(".react-flow__edge").count() == 2

            page.set_input_files("[data-testid=load-input]", str(features))
            page.wait_for_selector("[data-testid=node-ghost].ng-unknown [data-testid=node-unknown-ghost]")
            assert page.locator("[data-testid=error-banner]").count() == 0
            assert _save(page) == FEATURES_GRAPH            # the unknown node and its data round-trip
            assert page.evaluate(OVERLAPS) == []

            # --- a run: skipped ghost, output, history row with thumbnail, image viewer ----------------
            page.click("[data-testid=run-button]")
            page.locator("[data-testid=toast]", has_text="Queued Features").first.wait_for()  # names the graph
            page.wait_for_selector("[data-testid=node-status-show][data-status=done]", timeout=120_000)
            assert page.inner_text("[data-testid=node-output-show]").strip() == "37"
            run_id = page.evaluate("window.nodegraph.session().activeRun")
            assert run_id and all(run_id not in t for t in page.locator("[data-testid=toast]").all_inner_texts())
            page.wait_for_selector("[data-testid=node-status-ghost][data-status=skipped]")
            page.wait_for_function("() => document.querySelectorAll('[data-testid=node-files-save] img').length === 2", timeout=60_000)
            row = page.locator("[data-testid^=history-row-][data-status=succeeded]").first
            row.wait_for(timeout=30_000)
            page.wait_for_selector("[data-testid^=history-thumb-]", timeout=30_000)
            assert ":" in row.inner_text()                  # the time
            assert page.evaluate(OVERLAPS) == [], "a node that grew must push its neighbours away"

            page.locator("[data-testid=node-files-save] img").first.click()
            page.wait_for_selector("[data-testid=image-viewer]")
            assert page.inner_text("[data-testid=viewer-frame]") == "1 / 2"
            page.click("[data-testid=viewer-next]")
            assert page.inner_text("[data-testid=viewer-frame]") == "2 / 2"
            page.click("[data-testid=viewer-compare-0]")
            page.wait_for_selector("[data-testid=viewer-compare-image]")
            page.fill("[data-testid=viewer-compare-slider]", "30")
            assert "30%" in page.get_attribute("[data-testid=viewer-compare-image]", "style")
            page.click("[data-testid=viewer-zoom-in]")
            assert float(page.get_attribute("[data-testid=viewer-zoom]", "data-zoom")) > 1
            assert page.evaluate("document.querySelector('[data-testid=viewer-image]').getBoundingClientRect().width") >= 500
            page.keyboard.press("Escape")
            page.wait_for_selector("[data-testid=image-viewer]", state="detached")

            # --- palette ranking, placement without overlap -------------------------------------------
            page.fill("[data-testid=palette-search]", "int")
            first = page.locator("[data-testid^=palette-item-]").first
            assert first.get_attribute("data-testid") == "palette-item-Int"
            page.press("[data-testid=palette-search]", "Enter")
            page.wait_for_selector("[data-testid=node-int]")
            assert _graph(page)["nodes"]["int"]["type"] == "Int"
            assert page.evaluate(OVERLAPS) == []
            page.fill("[data-testid=palette-search]", "")

            # --- double-click search at the cursor ------------------------------------------------------
            x, y = _empty_spot(page)
            page.mouse.dblclick(x, y)
            popup = page.locator("[data-testid=search-popup]")
            popup.wait_for()
            box = popup.bounding_box()
            assert abs(box["x"] - x) < 40 and (abs(box["y"] - y) < 40 or box["y"] + box["height"] >= 860), (box, x, y)  # at the cursor (kept on screen)
            page.wait_for_function("() => document.activeElement?.dataset?.testid === 'search-input'")   # or keys are lost
            page.keyboard.type("clip")
            page.wait_for_function("() => ['search-item-EncodeText', 'search-item-LoadTextEncoder'].includes("
                                   "document.querySelector('[data-testid^=search-item-]')?.dataset.testid)")
            page.keyboard.press("Escape")
            popup.wait_for(state="detached")

            # --- a wire dropped on empty canvas: typed search, the new node is connected ---------------
            handle = page.locator("[data-testid=handle-add-out-result]").bounding_box()
            x, y = _empty_spot(page)
            page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
            page.mouse.down()
            page.mouse.move(x - 20, y - 20, steps=6)
            page.mouse.move(x, y, steps=4)
            page.mouse.up()
            popup.wait_for()
            assert "INT" in popup.inner_text()
            items = page.locator("[data-testid^=search-item-]").evaluate_all("els => els.map(e => e.dataset.testid)")
            assert items and "search-item-LoadCheckpoint" not in items and "search-item-PreviewImage" not in items
            page.keyboard.type("show value")
            page.wait_for_selector("[data-testid=search-item-ShowValue]")
            page.keyboard.press("Enter")
            page.wait_for_selector("[data-testid=node-showvalue]")
            assert _graph(page)["nodes"]["showvalue"]["inputs"]["value"] == {"node": "add", "output": "result"}

            # --- context menus: canvas, wire (reroute), node (bypass), group -----------------------------
            x, y = _empty_spot(page)
            page.mouse.click(x, y, button="right")
            page.wait_for_selector("[data-testid=context-menu][data-target=canvas]")
            page.keyboard.press("Escape")
            wire = page.locator("[data-testid=wire-show-value] path.react-flow__edge-interaction")
            wbox = wire.bounding_box()
            _menu(page, wbox["x"] + wbox["width"] / 2, wbox["y"] + wbox["height"] / 2, "add-reroute", "wire")
            page.wait_for_selector("[data-testid=reroute-reroute1]")
            assert _graph(page)["ui"]["reroutes"][0]["to"] == {"node": "show", "input": "value"}
            nbox = page.locator("[data-testid=node-k] .ng-node-header").bounding_box()
            _menu(page, nbox["x"] + 30, nbox["y"] + 8, "bypass", "node")
            page.wait_for_selector("[data-testid=node-k][data-mode=bypass]")
            assert _graph(page)["nodes"]["k"]["mode"] == "bypass"
            _click_node(page, "k")
            page.keyboard.press("Control+b")
            page.wait_for_selector("[data-testid=node-k][data-mode='']")
            page.keyboard.press("Control+m")
            page.wait_for_selector("[data-testid=node-k][data-mode=mute]")
            page.keyboard.press("Control+m")
            assert "mode" not in _graph(page)["nodes"]["k"]

            # --- groups: Ctrl+G around a selection; dragging the title moves the nodes -----------------
            _click_node(page, "r1")
            _click_node(page, "r2", ["Control"])
            page.keyboard.press("Control+g")
            page.wait_for_selector("[data-testid=group-group1]")
            before = _graph(page)["ui"]["nodes"]["r1"]["position"]
            title = page.locator("[data-testid=group-title-group1]").bounding_box()
            page.mouse.move(title["x"] + 60, title["y"] + 10)
            page.mouse.down()
            page.mouse.move(title["x"] + 110, title["y"] + 60, steps=6)
            page.mouse.up()
            after = _graph(page)["ui"]["nodes"]["r1"]["position"]
            assert after[0] > before[0] + 10 and after[1] > before[1] + 10, (before, after)
            page.mouse.dblclick(title["x"] + 110, title["y"] + 60)
            page.fill("[data-testid=group-title-edit-group1]", "Renders")
            page.keyboard.press("Enter")
            assert _graph(page)["ui"]["groups"][0]["title"] == "Renders"
            gbox = page.locator("[data-testid=group-title-group1]").bounding_box()
            _menu(page, gbox["x"] + 30, gbox["y"] + 10, "group-color", "group")
            assert _graph(page)["ui"]["groups"][0]["color"] != "#3f789e"

            # --- align, auto-layout, resize -----------------------------------------------------------
            _click_node(page, "a")
            _click_node(page, "k", ["Control"])
            nbox = page.locator("[data-testid=node-k] .ng-node-header").bounding_box()
            _menu(page, nbox["x"] + 30, nbox["y"] + 8, "align-left", "node")
            nodes_ui = _graph(page)["ui"]["nodes"]
            assert nodes_ui["a"]["position"][0] == nodes_ui["k"]["position"][0]
            page.keyboard.press("Alt+l")
            page.wait_for_function("() => (" + OVERLAPS + ")().length === 0")
            _click_node(page, "a")      # leftmost after the layout: its corner is clear of the minimap
            corner = page.locator("[data-testid=node-a] .react-flow__resize-control.bottom.right").bounding_box()
            page.mouse.move(corner["x"] + corner["width"] / 2, corner["y"] + corner["height"] / 2)
            page.mouse.down()
            page.mouse.move(corner["x"] + 80, corner["y"] + 40, steps=5)
            page.mouse.up()
            page.wait_for_function("() => (window.nodegraph.graph().ui.nodes.a.size ?? [0])[0] > 300")

            # --- widgets: slider, searchable combo ---------------------------------------------------------
            page.locator("[data-testid=slider-save-quality]").focus()
            page.keyboard.press("ArrowLeft")
            assert _graph(page)["nodes"]["save"]["inputs"]["quality"] == 94

            # --- subgraphs: collapse, open, back, run ---------------------------------------------------
            _click_node(page, "mul")
            _click_node(page, "add", ["Control"])
            page.keyboard.press("Control+Shift+E")
            page.wait_for_selector("[data-testid=node-subgraph_1]")
            graph = _graph(page)
            assert graph["nodes"]["subgraph_1"]["type"] == "subgraph:subgraph_1"
            assert set(graph["subgraphs"]["subgraph_1"]["nodes"]) == {"mul", "add"}
            assert graph["nodes"]["show"]["inputs"]["value"] == {"node": "subgraph_1", "output": "result"}
            page.click("[data-testid=open-subgraph-subgraph_1]")
            page.wait_for_selector("[data-testid=subgraph-bar]")
            page.wait_for_selector("[data-testid=node-mul]")
            assert page.locator("[data-testid=node-show]").count() == 0
            page.click("[data-testid=subgraph-back]")
            page.wait_for_selector("[data-testid=node-show]")
            page.fill("[data-testid=widget-k-value]", "2")   # a new input for the subgraph: 6 * 6 + 2 (so it runs, not cached)
            previous_run = page.evaluate("window.nodegraph.session().activeRun")
            page.keyboard.press("Control+Enter")              # runs from inside the field, as in ComfyUI
            page.wait_for_function(f"() => window.nodegraph.session().activeRun !== {json.dumps(previous_run)}", timeout=120_000)
            page.wait_for_function(
                "() => document.querySelector('[data-testid=node-output-show]')?.textContent.trim() === '38'"
                " && ['done', 'cached'].includes(document.querySelector('[data-testid=node-status-show]')?.dataset.status)", timeout=120_000)
            # (show may come from the cache: the new ShowValue node reads the same output and ran first.)
            # The subgraph node shows its inner nodes' states (namespaced events subgraph_1/mul, subgraph_1/add).
            page.wait_for_selector("[data-testid=node-status-subgraph_1][data-status=done]")
            # Opened from that node, the inner nodes carry their own states (events for subgraph_1/mul, ...),
            # not those of the top-level nodes of the same ids before the collapse.
            page.click("[data-testid=open-subgraph-subgraph_1]")
            page.wait_for_selector("[data-testid=node-status-mul][data-status=cached]")     # k feeds add only
            page.wait_for_selector("[data-testid=node-status-add][data-status=done]")
            page.click("[data-testid=subgraph-back]")
            page.wait_for_selector("[data-testid=node-show]")

            # --- templates, history filter and Open, help, theme ------------------------------------------
            page.click("[data-testid=templates-button]")
            template = page.locator("[data-testid='template-project/arithmetic.json']")
            template.wait_for()
            assert "Arithmetic" in template.inner_text()
            # one line per title, cut with an ellipsis (whole on hover); the source beside it, no stray "·"
            title_style = template.locator(".ng-template-title").evaluate(
                "(e) => [getComputedStyle(e).textOverflow, getComputedStyle(e).whiteSpace]")
            assert title_style == ["ellipsis", "nowrap"], title_style
            assert "Arithmetic" in template.get_attribute("title")
            assert "·" not in template.inner_text()
            template.click()
            page.wait_for_selector("[data-testid=node-pixels]")
            page.select_option("[data-testid=history-filter]", "failed")
            page.wait_for_selector("[data-testid^=history-row-]", state="detached")
            page.select_option("[data-testid=history-filter]", "all")
            opener = page.locator("[data-testid^=history-open-]").last   # the oldest: the first run of Features
            opener.click()
            page.wait_for_selector("[data-testid=node-ghost]")
            assert "subgraphs" not in _graph(page)
            show_37 = "() => document.querySelector('[data-testid=node-output-show]')?.textContent.trim() === '37'"
            page.wait_for_function(show_37)      # that run's result on its node

            page.keyboard.press("?")
            page.wait_for_selector("[data-testid=help-panel] >> text=Ctrl+B")
            page.keyboard.press("Escape")
            page.wait_for_selector("[data-testid=help-panel]", state="detached")
            page.click("[data-testid=theme-button]")
            page.wait_for_selector("html[data-theme=light]")
            page.screenshot(path=str(tmp_path / "editor-light.png"))

            # --- after a reload: the graph, theme, history and gallery are still there ------------------------
            before_reload = _graph(page)
            page.reload()
            page.wait_for_selector("[data-testid=connection-status][data-status=connected]")
            page.wait_for_selector("html[data-theme=light]")
            assert _graph(page) == before_reload, "the graph open before the reload must be shown after it"
            page.wait_for_function(show_37, timeout=30_000)   # ... and the shown run's results (it ended before)
            page.wait_for_function("() => document.querySelectorAll('[data-testid^=history-row-]').length >= 2", timeout=30_000)
            page.wait_for_function("() => document.querySelectorAll('[data-testid=gallery-item][data-kind=image]').length >= 2", timeout=30_000)
        finally:
            browser.close()
    assert not errors, f"errors in the page: {errors}"
