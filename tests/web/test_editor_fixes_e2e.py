"""Fixes from an outside check of the editor, in real Chromium (tests/web/test_editor_e2e.py's server and browser).

- The first placing edit on a graph without positions (graphs/txt2img.json, as shipped) moves
  only what it acts on: "Align top edges" on two nodes leaves the other five where they were shown.
- Ctrl+Z in a prompt undoes a burst of typing (the graph's undo step), not one character; redo and
  typing on after an undo work in the same field.
- In an 800×600 window the toolbar stays one line (the graph's title shortened, whole on hover); at
  1024×700 the minimap is hidden (it covered nodes), at 1600×900 shown.
- Ctrl+G: the new group's frame (its title bar) covers no other node; Alt+L moves the group with
  its nodes.
- Ctrl+V with a graph's JSON text on the system clipboard opens it (a ComfyUI UI workflow is
  refused with the server's reason); nodes copied with Ctrl+C still paste.
- Several warnings of one run are all listed and marked on their nodes; a cached re-run shows
  them again, marked as from an earlier run (server messages fed to the page's reducer).

Screenshots go to the test's temporary folder (fixes-*.png).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .test_editor_e2e import CHROMIUM_FLAGS, ROOT, _chromium, _serve, pytestmark  # noqa: F401


def assert_toolbar_fits(page) -> None:
    """The toolbar is one line and every button in it whole and inside the window (an 800×600 laptop window)."""
    bar = page.locator("[data-testid=toolbar]").bounding_box()
    assert bar["height"] <= 44, f"the toolbar wrapped: {bar}"
    cut = page.evaluate("""() => [...document.querySelectorAll('[data-testid=toolbar] > button, [data-testid=toolbar] > span > button')]
        .filter((b) => { const r = b.getBoundingClientRect(); return r.right > innerWidth || b.scrollWidth > b.clientWidth + 1; })
        .map((b) => b.textContent)""")
    assert cut == [], f"toolbar buttons cut or outside the window: {cut}"


RECTS = "() => Object.fromEntries(Object.entries(window.nodegraph.app.canvas.rects()).map(([id, r]) => [id, [r.x, r.y, r.width, r.height]]))"


def _overlap(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _click_node(page, node_id: str, modifiers=None) -> None:
    page.click(f"[data-testid='node-{node_id}'] .ng-node-header", modifiers=modifiers or [], position={"x": 40, "y": 8})


def _fit(page) -> None:
    page.click(".react-flow__controls-fitview")


def test_editor_fixes(tmp_path):
    """First edits on a positionless graph, groups with the layout, pasting graph text, every warning of a run."""
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("the Python playwright package is missing: pip install playwright (no `playwright install`)")
    txt2img = ROOT / "graphs" / "txt2img.json"
    original = json.loads(txt2img.read_text())
    assert "ui" not in original, "graphs/txt2img.json is expected to have no positions"
    errors: list[str] = []
    with _serve(tmp_path) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(viewport={"width": 1600, "height": 900})
            context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url.rstrip("/"))
            page = context.new_page()
            page.set_default_timeout(20_000)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url)
            page.wait_for_selector("[data-testid=connection-status][data-status=connected]")
            page.wait_for_selector("[data-testid^=palette-item-]")

            # --- align as the first edit on a graph without positions -----------------------------------
            page.set_input_files("[data-testid=load-input]", str(txt2img))
            for node_id in original["nodes"]:
                page.wait_for_selector(f"[data-testid='node-{node_id}']")
            _fit(page)
            before = page.evaluate(RECTS)
            _click_node(page, "decode")
            _click_node(page, "save", ["Control"])
            header = page.locator("[data-testid=node-decode] .ng-node-header").bounding_box()
            page.mouse.click(header["x"] + 30, header["y"] + 8, button="right")
            page.click("[data-testid=menu-align-top]")
            page.wait_for_function("() => { const r = window.nodegraph.app.canvas.rects(); return r.decode.y === r.save.y; }")
            after = page.evaluate(RECTS)
            for node_id in set(original["nodes"]) - {"decode", "save"}:
                assert after[node_id][:2] == before[node_id][:2], (node_id, before[node_id], after[node_id])
            page.screenshot(path=str(tmp_path / "fixes-align-first-edit.png"))
            page.keyboard.press("Control+z")
            page.wait_for_function("() => !window.nodegraph.graph().ui")

            # --- Ctrl+Z inside a prompt undoes a burst of typing, not one character; Ctrl+Shift+Z redoes it
            prompt_field = "[data-testid=widget-prompt-text]"
            typed_before = page.input_value(prompt_field)
            page.click(prompt_field)
            page.keyboard.press("Control+End")
            page.keyboard.type(" with a", delay=30)
            page.wait_for_timeout(1300)       # a pause longer than the merge window (graph/history.ts COALESCE_MS)
            page.keyboard.type(" thick border", delay=30)
            page.keyboard.press("Control+z")
            assert page.input_value(prompt_field) == typed_before + " with a"
            page.keyboard.press("Control+z")
            assert page.input_value(prompt_field) == typed_before
            assert page.evaluate("window.nodegraph.graph().nodes.prompt.inputs.text") == typed_before
            page.keyboard.press("Control+Shift+z")
            assert page.input_value(prompt_field) == typed_before + " with a"
            page.keyboard.type("n old frame", delay=30)     # typing goes on after an undo, in the field it left
            assert page.evaluate("window.nodegraph.graph().nodes.prompt.inputs.text") == typed_before + " with an old frame"
            page.keyboard.press("Control+z")
            page.keyboard.press("Control+z")
            assert page.evaluate("window.nodegraph.graph().nodes.prompt.inputs.text") == typed_before
            page.click(".ng-brand")

            # --- an 800×600 window: the toolbar stays one line, every button whole and inside the window -------
            page.set_viewport_size({"width": 800, "height": 600})
            page.wait_for_timeout(200)
            assert_toolbar_fits(page)
            assert page.get_attribute(".ng-graph-title", "title") == original["metadata"]["title"]
            page.screenshot(path=str(tmp_path / "fixes-800x600.png"))
            # a 1024×700 window hides the minimap too (it covered nodes there); a large one shows it
            page.set_viewport_size({"width": 1024, "height": 700})
            page.wait_for_selector(".react-flow__minimap", state="hidden")
            page.set_viewport_size({"width": 1600, "height": 900})
            page.wait_for_selector(".react-flow__minimap", state="visible")

            # --- Ctrl+G: the frame covers no other node; Alt+L takes the group along -------------------
            _click_node(page, "prompt")
            _click_node(page, "negative", ["Control"])
            page.keyboard.press("Control+g")
            page.wait_for_selector("[data-testid=group-group1]")
            rects = page.evaluate(RECTS)
            frame = page.evaluate("window.nodegraph.graph().ui.groups[0].bounds")
            for node_id in set(original["nodes"]) - {"prompt", "negative"}:
                assert not _overlap(rects[node_id], frame), (node_id, rects[node_id], frame)
            title = page.locator("[data-testid=group-title-group1]").bounding_box()
            assert page.evaluate(f"document.elementFromPoint({title['x'] + 20}, {title['y'] + 10}).closest('[data-testid=group-title-group1]') !== null")
            page.screenshot(path=str(tmp_path / "fixes-group.png"))
            page.click(".ng-brand")
            page.keyboard.press("Alt+l")
            page.wait_for_timeout(300)
            rects = page.evaluate(RECTS)
            frame = page.evaluate("window.nodegraph.graph().ui.groups[0].bounds")
            for node_id in original["nodes"]:
                inside = _overlap(rects[node_id], frame)
                assert inside == (node_id in ("prompt", "negative")), (node_id, rects[node_id], frame)
            page.screenshot(path=str(tmp_path / "fixes-autolayout-group.png"))

            # --- Ctrl+V: a graph's JSON text opens; a ComfyUI UI workflow is refused with the reason ---
            arithmetic = json.loads((ROOT / "graphs" / "arithmetic.json").read_text())
            page.click(".ng-brand")
            page.evaluate("(text) => navigator.clipboard.writeText(text)", json.dumps(arithmetic))
            page.keyboard.press("Control+v")
            page.wait_for_function(f"() => Object.keys(window.nodegraph.graph().nodes).sort().join() === {json.dumps(','.join(sorted(arithmetic['nodes'])))}")
            page.screenshot(path=str(tmp_path / "fixes-paste-graph-text.png"))
            page.evaluate("(text) => navigator.clipboard.writeText(text)", json.dumps({"last_node_id": 1, "nodes": [{"id": 1}], "links": []}))
            page.keyboard.press("Control+v")
            page.wait_for_selector("[data-testid=error-banner]")
            assert "Cannot open the pasted text" in page.inner_text("[data-testid=error-banner]")
            assert set(page.evaluate("Object.keys(window.nodegraph.graph().nodes)")) == set(arithmetic["nodes"])
            page.screenshot(path=str(tmp_path / "fixes-paste-comfy-ui.png"))
            # Nodes copied in the editor paste again (the newest copy wins over the text pasted before).
            count = len(arithmetic["nodes"])
            page.click(".ng-brand")
            page.keyboard.press("Control+a")
            page.keyboard.press("Control+c")
            page.keyboard.press("Control+v")
            page.wait_for_function(f"() => Object.keys(window.nodegraph.graph().nodes).length === {2 * count}")

            # --- every warning of a run on its node and in the banner; a cached re-run shows them again --
            page.evaluate("(g) => window.nodegraph.load(g)", original)
            page.wait_for_selector("[data-testid='node-prompt']")
            feed = """(messages) => { for (const message of messages) window.nodegraph.app.dispatch({ type: 'server', message }); }"""

            def run(run_id: str, events: list[dict]) -> list[dict]:
                started = {"type": "run_started", "run_id": run_id, "nodes": list(original["nodes"]), "total": 7}
                finished = {"type": "run_finished", "run_id": run_id, "seconds": 1}
                return [started, *({"run_id": run_id, "node_type": "T", **e} for e in events), finished]

            page.evaluate(feed, run("fake-1", [
                {"type": "node_started", "node_id": "prompt"},
                {"type": "node_warning", "node_id": "prompt", "message": "the model never learnt the word(s) 'purpel', 'giraffe'"},
                {"type": "node_finished", "node_id": "prompt", "seconds": 0.1},
                {"type": "node_started", "node_id": "sampler"},
                {"type": "node_warning", "node_id": "sampler", "message": "24x24 px is outside the 32-128 px the model was trained on"},
                {"type": "node_finished", "node_id": "sampler", "seconds": 0.1},
            ]))
            page.wait_for_selector("[data-testid=warnings-banner][data-count='2']")
            assert page.locator("[data-testid=warning-item]").count() == 2
            assert "purpel" in page.inner_text("[data-testid=node-warning-prompt]")
            assert "24x24" in page.inner_text("[data-testid=node-warning-sampler]")
            _fit(page)
            page.screenshot(path=str(tmp_path / "fixes-warnings.png"))
            page.evaluate(feed, run("fake-2", [{"type": "node_cached", "node_id": node_id} for node_id in original["nodes"]]))
            page.wait_for_selector("[data-testid=warning-item][data-earlier=true]")
            assert "earlier run" in page.inner_text("[data-testid=warnings-banner]")
            assert "earlier run" in page.inner_text("[data-testid=node-warning-sampler]")
            page.screenshot(path=str(tmp_path / "fixes-warnings-cached.png"))
            assert errors == []
        finally:
            browser.close()


# A ComfyUI UI workflow laid out for its 210 px nodes: VAE Decode's 300 px box here would cover Save Image.
COMFY_WORKFLOW = {
    "nodes": [
        {"id": 8, "type": "VAEDecode", "pos": [1209, 188], "size": [210, 46], "inputs": [], "outputs": [{"name": "IMAGE", "links": [9]}]},
        {"id": 9, "type": "SaveImage", "pos": [1451, 189], "size": [210, 270], "inputs": [{"name": "images", "link": 9}], "widgets_values": ["ComfyUI"]},
    ],
    "links": [[9, 8, 0, 9, 0, "IMAGE"]],
}

NO_OVERLAP = """() => { const r = Object.values(window.nodegraph.app.canvas.rects());
  return r.length === 2 && !(r[0].x < r[1].x + r[1].width && r[1].x < r[0].x + r[0].width && r[0].y < r[1].y + r[1].height && r[1].y < r[0].y + r[0].height); }"""

# the image viewer comparing two generated images (data URLs: no run needed)
OPEN_COMPARE = """() => { const url = (c) => { const k = document.createElement('canvas'); k.width = 160; k.height = 96;
    const g = k.getContext('2d'); g.fillStyle = c; g.fillRect(0, 0, 160, 96); return k.toDataURL(); };
  const item = (i, c) => ({ runId: 'r', nodeId: 'save', fileId: 'output/' + c + '.png', url: url(c), index: i, kind: 'image' });
  window.nodegraph.app.ui.set((s) => ({ ...s, viewer: { items: [item(0, 'red'), item(1, 'blue')], index: 0, compare: 1 } })); }"""


def test_minimap_import_labels_prompt_compare_popup(tmp_path):
    """At 1280×800: minimap drag pans sanely and gives way to a selected node; a ComfyUI import has no overlaps;
    port names have room for underscores; a resized node's prompt fills it; compare slider on the image box;
    the wire's search popup inside the window."""
    from playwright import sync_api

    workflow = tmp_path / "comfy_workflow.json"
    workflow.write_text(json.dumps(COMFY_WORKFLOW))
    errors: list[str] = []
    with _serve(tmp_path) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(20_000)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url)
            page.wait_for_selector("[data-testid=connection-status][data-status=connected]")

            # --- a ComfyUI UI workflow: its layout kept, overlapping nodes pushed apart ------------------
            page.set_input_files("[data-testid=load-input]", str(workflow))
            page.wait_for_selector("[data-testid=node-9]")
            page.wait_for_function(NO_OVERLAP)
            assert page.locator(".ng-toast", has_text="Imported").count() == 0        # said once: in the banner

            # --- port names have room below the baseline (underscores, descenders) ----------------------
            room = page.evaluate("() => { const s = getComputedStyle(document.querySelector('.ng-input-line > .ng-port-name'));"
                                 " return [parseFloat(s.lineHeight) / parseFloat(s.fontSize), parseFloat(s.paddingBottom)]; }")
            assert room[0] >= 1.35 and room[1] >= 1, room

            # --- the minimap: a drag pans proportionally and never flings the nodes out of view ---------
            minimap = page.locator(".react-flow__minimap").bounding_box()
            canvas = page.locator("[data-testid=canvas]").bounding_box()
            cx, cy = minimap["x"] + minimap["width"] / 2, minimap["y"] + minimap["height"] / 2
            page.mouse.move(cx, cy)
            page.mouse.down()
            for step in range(1, 11):
                page.mouse.move(cx - 30 * step, cy - 20 * step)       # far past the minimap's edge
            page.mouse.up()
            in_view = page.evaluate("""(c) => [...document.querySelectorAll('.react-flow__node-schema')].filter((n) => {
                const r = n.getBoundingClientRect(); return r.right > c.x && r.left < c.x + c.width && r.bottom > c.y && r.top < c.y + c.height; }).length""", canvas)
            assert in_view >= 1, page.evaluate("() => document.querySelector('.react-flow__viewport').style.transform")

            # --- a selected node under the minimap: the minimap steps aside, its resize handle is clickable -
            node = page.locator("[data-testid=node-9]").bounding_box()
            page.mouse.move(canvas["x"] + 12, canvas["y"] + 12)        # drag the empty canvas: the node's corner under the minimap
            page.mouse.down()
            page.mouse.move(canvas["x"] + 12 + cx - (node["x"] + node["width"]) + 20, canvas["y"] + 12 + cy - (node["y"] + node["height"]) + 20, steps=8)
            page.mouse.up()
            page.evaluate("() => window.nodegraph.app.editor.select({ '9': true })")
            page.wait_for_selector("[data-testid=minimap][data-away=true]", state="attached")
            corner = page.locator("[data-testid=node-9]").bounding_box()
            under = page.evaluate("([x, y]) => document.elementFromPoint(x, y).closest('.react-flow__node')?.dataset.id",
                                  [corner["x"] + corner["width"] - 2, corner["y"] + corner["height"] - 2])
            assert under == "9", under

            # --- a resized node's prompt fills its extra height, and still grows with its text -----------
            page.evaluate("""() => window.nodegraph.load({ format_version: 2, nodes: { p: { type: 'EncodeText', inputs: { text: 'a cat' } } },
                ui: { nodes: { p: { position: [0, 0], size: [320, 420] } } } })""")
            page.wait_for_selector("[data-testid=widget-p-text]")
            node = page.locator("[data-testid=node-p]").bounding_box()
            area = page.locator("[data-testid=widget-p-text]").bounding_box()
            assert area["height"] > 0.6 * node["height"], (node, area)     # (a 2-line box before: 10 %)
            page.locator("[data-testid=widget-p-text]").fill("line\n" * 30)
            assert page.locator("[data-testid=widget-p-text]").bounding_box()["height"] >= area["height"] - 1

            # --- the compare slider spans exactly the image box ----------------------------------------
            page.evaluate(OPEN_COMPARE)
            page.wait_for_selector("[data-testid=viewer-compare-image]")
            image = page.locator("[data-testid=viewer-image]").bounding_box()
            slider = page.locator("[data-testid=viewer-compare-slider]").bounding_box()
            # the thumb's centre runs from slider.x + 8 to slider.x + width - 8 (a 16 px thumb): the image's edges
            assert abs(slider["x"] + 8 - image["x"]) <= 1 and abs(slider["width"] - 16 - image["width"]) <= 1, (slider, image)
            page.keyboard.press("Escape")
            page.wait_for_selector("[data-testid=image-viewer]", state="detached")

            # --- the search popup of a wire dropped at the window's bottom stays inside it --------------
            page.evaluate("""() => window.nodegraph.app.ui.set((s) => ({ ...s, search: { screen: [600, window.innerHeight - 3], at: [0, 0],
                wire: { node: 'p', handle: 'out:conditioning', filter: { port: 'CONDITIONING', from: 'output' } } } }))""")
            popup = page.locator("[data-testid=search-popup]").bounding_box()
            assert popup["y"] >= 0 and popup["y"] + popup["height"] <= 800, popup
            assert not errors, errors
        finally:
            browser.close()
