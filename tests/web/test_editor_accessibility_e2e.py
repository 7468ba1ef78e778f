"""Accessibility and keyboard use of the editor, in real Chromium (tests/web/test_editor_e2e.py's server).

- Accessible names: widgets by their input's name (the range hint is the description), nodes by
  title and id, wires by their ports, the glyph buttons (undo, redo, ×, ↻, ⤓) by what they do.
- Keyboard: Backspace on a toolbar button deletes nothing; Shift+F10 opens a node's menu with the
  focus on its first item (arrows move in the menu, not the node); "Connect an output…" makes a
  typed link, undoable; Escape closes menus, the templates list and the Plugins panel and the focus
  goes back to their opener; a deleted node leaves the focus on the canvas; a visible focus ring.
- Announcements: toasts in a live region, a run's milestones once each in a polite status region.
- The image viewer is a modal dialog: focus inside, Tab stays inside, Escape closes, focus returns.
- A node added from the keyboard has the focus; the palette is one Tab stop (arrows inside); the help is a
  dialog that takes the focus, scrolls by keyboard and fits 800×600.
- Contrast of the light theme's Run button and status, the dark placeholder; at 640 CSS px (200 %
  zoom of 1280 px) Run stays on screen and the palette and side panels fold away.
"""

from __future__ import annotations

import json

import pytest

from .test_editor_e2e import CHROMIUM_FLAGS, _chromium, _serve, pytestmark  # noqa: F401

GRAPH = {
    "format_version": 2,
    "metadata": {"title": "Accessible"},
    "nodes": {
        "render": {"type": "RenderTinyWorld", "inputs": {"caption": "a red circle on a white background", "size": 64}},
        "save": {"type": "SaveImage", "inputs": {"images": {"node": "render", "output": "image"}, "filename_prefix": "a11y"}},
        "num": {"type": "Int", "title": "Number", "inputs": {"value": 64}},
    },
    "ui": {"nodes": {"render": {"position": [0, 0]}, "save": {"position": [420, 0]}, "num": {"position": [0, 420]}}},
}

ACTIVE = "() => { const a = document.activeElement; return a ? (a.dataset.id || a.dataset.testid || a.id || a.getAttribute('role') || a.tagName) : null; }"

# WCAG contrast of an element's text colour on the first opaque background behind it (pseudo: '::placeholder').
CONTRAST = """([sel, pseudo]) => {
  const rgb = (c) => c.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const el = document.querySelector(sel);
  const fg = rgb(getComputedStyle(el, pseudo || null).color);
  let bg = null;
  for (let e = el; e && !bg; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c.length === 3 || c[3] > 0.9) bg = c; }
  bg = bg || [255, 255, 255];
  const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}"""


# The opacity an element's text is drawn with (its own and every ancestor's).
OPACITY = """(sel) => { let o = 1; for (let e = document.querySelector(sel); e; e = e.parentElement) o *= parseFloat(getComputedStyle(e).opacity); return o; }"""


def _graph(page) -> dict:
    return page.evaluate("window.nodegraph.graph()")


def test_editor_accessibility(tmp_path):
    """Names, keyboard guard and menus, keyboard connect, focus return, announcements, viewer dialog, contrast, zoom."""
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("the Python playwright package is missing: pip install playwright (no `playwright install`)")
    graph_file = tmp_path / "accessible.json"
    graph_file.write_text(json.dumps(GRAPH, indent=1))
    errors: list[str] = []
    with _serve(tmp_path) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 900}, device_scale_factor=1)
            page.set_default_timeout(20_000)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url)
            page.wait_for_selector("[data-testid=connection-status][data-status=connected]")
            page.set_input_files("[data-testid=load-input]", str(graph_file))
            page.wait_for_selector("[data-testid=node-num]")
            page.wait_for_function("() => document.querySelectorAll('.react-flow__node-schema').length === 3")

            # --- 9: the skip link is the first thing Tab reaches, and takes the focus to the canvas ------
            page.evaluate("() => document.activeElement && document.activeElement.blur()")
            page.keyboard.press("Tab")
            assert page.evaluate("() => document.activeElement.textContent") == "Skip to canvas"
            page.keyboard.press("Enter")
            assert page.evaluate(ACTIVE) == "canvas"

            # --- 9: the canvas's menu from the keyboard: Add node… opens the search, Enter adds it ------
            page.keyboard.press("Shift+F10")
            page.wait_for_selector("[data-testid=context-menu][data-target=canvas]")
            assert page.evaluate(ACTIVE) == "menu-add-node"
            page.keyboard.press("Enter")
            page.wait_for_selector("[data-testid=search-input]")
            assert page.evaluate(ACTIVE) == "search-input"
            assert page.get_attribute("[data-testid=search-input]", "role") == "combobox"
            page.keyboard.type("IntMath")
            page.wait_for_selector("[data-testid=search-item-IntMath][aria-selected=true]")
            page.keyboard.press("Enter")
            page.wait_for_function("() => Object.keys(window.nodegraph.graph().nodes).length === 4")
            added = next(n for n in _graph(page)["nodes"] if n not in GRAPH["nodes"])
            page.wait_for_function("(id) => document.activeElement.dataset.id === id", arg=added)   # on the new node
            page.keyboard.press("Shift+F10")                     # so its menu (Connect an output…) is one key away
            page.wait_for_selector("[data-testid=context-menu][data-target=node]")
            page.keyboard.press("Escape")
            page.keyboard.press("Control+z")
            page.wait_for_function("() => Object.keys(window.nodegraph.graph().nodes).length === 3")

            # --- the palette is one Tab stop (roving tabindex): ↑/↓ move in it, Enter adds ------------
            page.focus("[data-testid=palette-search]")
            page.keyboard.press("Tab")
            first = page.evaluate(ACTIVE)
            page.keyboard.press("ArrowDown")
            second = page.evaluate(ACTIVE)
            assert first.startswith("palette-item-") and second.startswith("palette-item-") and first != second
            assert page.evaluate("() => [...document.querySelectorAll('.ng-palette-item')].filter((b) => b.tabIndex === 0).length") == 1
            page.keyboard.press("Tab")
            assert not page.evaluate(ACTIVE).startswith("palette-item-")    # one Tab leaves the list
            page.keyboard.press("Shift+Tab")
            assert page.evaluate(ACTIVE) == second                          # and comes back to where it was
            page.keyboard.press("Enter")
            page.wait_for_function("() => Object.keys(window.nodegraph.graph().nodes).length === 4")
            page.evaluate("() => window.nodegraph.app.editor.undo()")
            page.wait_for_function("() => Object.keys(window.nodegraph.graph().nodes).length === 3")

            # --- 1: accessible names --------------------------------------------------------------------
            assert page.get_by_role("textbox", name="caption", exact=True).count() == 1
            size = page.get_by_role("textbox", name="size", exact=True)
            assert size.get_attribute("data-testid") == "widget-render-size"
            hint = page.evaluate("() => document.getElementById(document.querySelector('[data-testid=widget-render-size]')"
                                 ".getAttribute('aria-describedby')).textContent")
            assert "↑/↓ to step" in hint
            assert page.get_by_role("textbox", name="filename_prefix", exact=True).count() == 1
            assert page.get_by_role("group", name="Render Tiny World (render)").count() == 1
            assert page.get_by_role("group", name="Number (num)").count() == 1
            assert page.get_by_role("group", name="render.image → save.images").count() == 1
            for name in ["Undo", "Redo", "Keyboard shortcuts", "new random seed"]:
                assert page.get_by_role("button", name=name, exact=True).count() >= 1, name
            assert page.get_by_role("button", name="Unlink images (from render.image)").count() == 1
            assert page.get_by_role("button", name="seed mode: ", exact=False).count() == 1

            # --- 4: Backspace on a button deletes nothing ----------------------------------------------
            page.evaluate("() => window.nodegraph")  # the app is up
            num = page.locator(".react-flow__node[data-id=num]")
            num.focus()
            page.keyboard.press("Enter")  # Enter on a focused node selects it
            page.wait_for_function("() => document.querySelector('.react-flow__node[data-id=num]').classList.contains('selected')")
            page.focus("[data-testid=save-button]")
            page.keyboard.press("Backspace")
            page.keyboard.press("Delete")
            assert "num" in _graph(page)["nodes"]

            # --- 8, 9, 2: Shift+F10 menu, arrows stay in it, keyboard connect, focus back, focus ring -----
            num.focus()
            before = num.bounding_box()
            page.keyboard.press("Shift+F10")
            page.wait_for_selector("[data-testid=context-menu][role=menu]")
            assert page.evaluate("() => document.activeElement.getAttribute('role')") == "menuitem"
            page.keyboard.press("ArrowDown")
            page.keyboard.press("ArrowRight")
            assert page.evaluate(ACTIVE) == "menu-connect"
            assert num.bounding_box() == before                      # the node behind the menu did not move
            page.keyboard.press("Enter")
            page.wait_for_selector("[data-testid=context-menu][data-target=connect]")
            choice = page.get_by_role("menuitem", name="num.value → render.size (INT)")
            assert page.get_by_role("menuitem", name="num.value → render.height (INT)").count() == 1
            assert page.get_by_role("menuitem", name="num.value → save.images", exact=False).count() == 0   # INT is no IMAGE
            choice.focus()
            page.keyboard.press("Enter")
            page.wait_for_selector("[data-testid=context-menu]", state="detached")
            assert _graph(page)["nodes"]["render"]["inputs"]["size"] == {"node": "num", "output": "value"}
            assert page.evaluate(ACTIVE) == "num"                    # the focus went back to the node
            ring = page.evaluate("() => { const s = getComputedStyle(document.activeElement);"
                                 " return [document.activeElement.matches(':focus-visible'), s.outlineStyle, parseFloat(s.outlineWidth)]; }")
            assert ring[0] and ring[1] != "none" and ring[2] >= 2, ring
            page.keyboard.press("Control+z")                         # a normal, undoable edit
            wire = page.get_by_role("group", name="render.image → save.images")
            wire.focus()
            wire_ring = page.evaluate("() => { const e = document.activeElement; const p = e.querySelector('.react-flow__edge-path');"
                                      " return [e.matches(':focus-visible'), getComputedStyle(p).filter]; }")
            assert wire_ring[0] and "drop-shadow" in wire_ring[1], wire_ring
            page.wait_for_function("() => window.nodegraph.graph().nodes.render.inputs.size === 64")

            # --- 6: Escape closes the templates list and the Plugins panel, focus back on their buttons --
            page.focus("[data-testid=templates-button]")
            page.keyboard.press("Enter")
            page.wait_for_selector("[data-testid=templates-filter]")
            assert page.evaluate(ACTIVE) == "templates-filter"
            page.keyboard.press("Escape")
            page.wait_for_selector("[data-testid=templates-menu]", state="detached")
            assert page.evaluate(ACTIVE) == "templates-button"
            page.focus("[data-testid=plugins-button]")
            page.keyboard.press("Enter")
            page.wait_for_selector("[data-testid=plugins-panel]")
            page.get_by_role("button", name="Close the Plugins panel").focus()
            page.keyboard.press("Escape")
            page.wait_for_selector("[data-testid=plugins-panel]", state="detached")
            assert page.evaluate(ACTIVE) == "plugins-button"

            # --- 3: a run's milestones, once each; toasts in a live region ------------------------------
            page.evaluate("""() => { window.__said = [];
                new MutationObserver(() => { const t = document.querySelector('[data-testid=announcer]').textContent;
                  if (t) window.__said.push(t); }).observe(document.querySelector('[data-testid=announcer]'), {childList: true, subtree: true, characterData: true}); }""")
            page.click("[data-testid=run-button]")
            page.wait_for_selector("[data-testid=node-files-save] img", timeout=120_000)
            page.wait_for_function("() => window.__said.includes('Run finished')", timeout=60_000)
            assert page.evaluate("window.__said") == ["Run started", "Run finished"]
            assert page.get_attribute(".ng-toasts", "aria-live") == "polite"
            assert page.get_attribute("[data-testid=announcer]", "role") == "status"

            # --- 6: the viewer is a modal dialog ---------------------------------------------------------
            thumb = page.locator("[data-testid^=history-thumb-]").first
            thumb.wait_for(timeout=30_000)
            opener = page.get_by_role("button", name="View the images of run", exact=False).first
            opener.focus()
            page.keyboard.press("Enter")
            dialog = page.get_by_role("dialog")
            dialog.wait_for()
            assert dialog.get_attribute("aria-modal") == "true"
            assert (dialog.get_attribute("aria-label") or "").startswith("Image viewer")
            assert page.evaluate("() => document.querySelector('[data-testid=image-viewer]').contains(document.activeElement)")
            assert page.get_by_role("link", name="Download", exact=False).count() == 1
            for _ in range(14):
                page.keyboard.press("Tab")
                assert page.evaluate("() => document.querySelector('[data-testid=image-viewer]').contains(document.activeElement)")
            page.keyboard.press("Shift+Tab")
            assert page.evaluate("() => document.querySelector('[data-testid=image-viewer]').contains(document.activeElement)")
            page.keyboard.press("Escape")
            page.wait_for_selector("[data-testid=image-viewer]", state="detached")
            assert page.evaluate("() => document.activeElement.getAttribute('aria-label') || ''").startswith("View the images of run")
            row_titles = page.evaluate("() => [...document.querySelectorAll('[data-testid^=history-row-]')].map((r) => r.title + ' ' + r.dataset.testid)")
            for text in row_titles:
                title, testid = text.rsplit(" ", 1)
                assert testid.removeprefix("history-row-") not in title, text   # 11: no run id in the row's title

            # --- 6: deleting the focused node leaves the focus on the canvas ------------------------------
            num.focus()
            page.keyboard.press("Enter")
            page.keyboard.press("Delete")
            page.wait_for_function("() => !('num' in window.nodegraph.graph().nodes)")
            assert page.evaluate(ACTIVE) == "canvas"

            # --- 7: contrast ---------------------------------------------------------------------------
            save = page.locator(".react-flow__node[data-id=save]")
            save.focus()
            page.keyboard.press("Enter")
            page.keyboard.press("Control+m")                         # muted: dimmed by colour, not opacity
            page.wait_for_selector("[data-testid=node-save][data-mode=mute]")
            render = page.locator(".react-flow__node[data-id=render]")
            render.focus()
            page.keyboard.press("Enter")
            page.keyboard.press("Control+b")
            page.wait_for_selector("[data-testid=node-render][data-mode=bypass]")
            for sel in ["[data-testid=node-save] .ng-node-title", "[data-testid=node-save] .ng-port-name",
                        "[data-testid=node-render] .ng-node-title", ".ng-mode-badge-bypass", ".ng-mode-badge-mute"]:
                assert page.evaluate(OPACITY, sel) == 1, sel
                assert page.evaluate(CONTRAST, [sel, ""]) >= 4.5, sel
            assert page.evaluate(CONTRAST, ["[data-testid=palette-search]", "::placeholder"]) >= 4.5
            page.click("[data-testid=theme-button]")
            page.wait_for_function("() => document.documentElement.dataset.theme === 'light'")
            assert page.evaluate(CONTRAST, ["[data-testid=run-button]", ""]) >= 4.5
            assert page.evaluate(CONTRAST, ["[data-testid=connection-status]", ""]) >= 4.5
            for sel in ["[data-testid=node-save] .ng-node-title", "[data-testid=node-render] .ng-node-title", ".ng-mode-badge-bypass", ".ng-mode-badge-mute"]:
                assert page.evaluate(CONTRAST, [sel, ""]) >= 4.5, sel

            # --- the help is a dialog that takes the focus, scrolls by keyboard, fits 800×600 ------------
            page.set_viewport_size({"width": 800, "height": 600})
            page.focus("[data-testid=help-button]")
            page.keyboard.press("Enter")
            help_panel = page.get_by_role("dialog", name="Keyboard and mouse")
            help_panel.wait_for()
            assert page.evaluate(ACTIVE) == "help-body"
            box = help_panel.bounding_box()
            assert box["y"] >= 0 and box["y"] + box["height"] <= 600 and box["x"] >= 0 and box["x"] + box["width"] <= 800, box
            page.keyboard.press("End")                                       # the last shortcut scrolls into view
            page.wait_for_function("() => { const b = document.querySelector('[data-testid=help-body]');"
                                   " return b.scrollTop > 0 && b.querySelector('tr:last-child').getBoundingClientRect().bottom"
                                   " <= b.getBoundingClientRect().bottom + 1; }")
            page.keyboard.press("Escape")
            page.wait_for_selector("[data-testid=help-panel]", state="detached")
            assert page.evaluate(ACTIVE) == "help-button"

            # --- 10: at 200 % zoom (640 CSS px) Run stays on screen ---------------------------------------
            page.set_viewport_size({"width": 640, "height": 360})
            box = page.locator("[data-testid=run-button]").bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 640 and box["y"] + box["height"] <= 360, box
            page.get_by_role("button", name="Hide the palette and the side panels").click()   # the panels fold away
            page.wait_for_selector("[data-testid=palette]", state="hidden")
            page.wait_for_selector("[data-testid=history-panel]", state="hidden")
            page.screenshot(path=str(tmp_path / "a11y-zoom200.png"))
            page.get_by_role("button", name="Show the palette and the side panels").click()
            page.wait_for_selector("[data-testid=palette]")
            assert not errors, errors
        finally:
            browser.close()
