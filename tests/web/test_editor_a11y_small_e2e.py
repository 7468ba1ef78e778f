"""An accessibility and small-screen tester's findings, in real Chromium (docs/editor.md, "Keyboard and screen readers").

`test_editor_small_windows_and_zoom` — at 320×240 the panels start folded and the canvas takes the width, the
control that shows them is clickable and, shown, they leave the canvas most of it; the toolbar keeps to two
rows; the templates menu stays inside the window at 320×240 and at 200 % zoom (640×360, device scale 2) and the
page never scrolls sideways.

`test_editor_keyboard_and_screen_reader` — validation errors described on their input; renaming from the
keyboard gives the focus back to the node, Duplicate gives it to the copy; a failed run said once (the banner's
alert, without its close glyph), the announcer and the run's toast forgotten when another graph opens; node
status and React Flow's attribution ≥ 4.5:1 in both themes; form fields' 2 px focus ring; landmarks, h1, the
history heading, the lock toggle's aria-pressed and the run's progress in the tab's title.

Every wait is on an event or a state with a generous ceiling, never a fixed sleep.
"""

from __future__ import annotations

import json

import pytest

from .test_editor_e2e import CHROMIUM_FLAGS, _chromium, _serve, open_editor, pytestmark  # noqa: F401

# A graph that fails at run time (integer division by zero).
FAILING = {"format_version": 2, "metadata": {"title": "Err test"}, "nodes": {
    "a": {"type": "Int", "inputs": {"value": 1}},
    "div": {"type": "IntMath", "inputs": {"a": {"node": "a", "output": "value"}, "b": 0, "op": "divide"}},
    "show": {"type": "ShowValue", "inputs": {"value": {"node": "div", "output": "result"}}}},
    "ui": {"nodes": {"a": {"position": [0, 0]}, "div": {"position": [380, 0]}, "show": {"position": [760, 0]}}}}
# A graph the server refuses: a tiny-world render's size must be a multiple of 8.
INVALID = {"format_version": 2, "metadata": {"title": "Invalid"}, "nodes": {
    "bad": {"type": "RenderTinyWorld", "inputs": {"caption": "a red circle", "size": 20}},
    "save": {"type": "SaveImage", "inputs": {"images": {"node": "bad", "output": "image"}}}},
    "ui": {"nodes": {"bad": {"position": [0, 0]}, "save": {"position": [420, 0]}}}}
# A graph whose run lasts a few seconds (a Wait node), then runs again from the cache.
WAITING = {"format_version": 2, "metadata": {"title": "KB test"}, "nodes": {
    "a": {"type": "Int", "inputs": {"value": 3}},
    "wait": {"type": "Wait", "inputs": {"value": {"node": "a", "output": "value"}, "seconds": 3}},
    "show": {"type": "ShowValue", "inputs": {"value": {"node": "wait", "output": "value"}}}},
    "ui": {"nodes": {"a": {"position": [0, 0]}, "wait": {"position": [380, 0]}, "show": {"position": [760, 0]}}}}

ACTIVE = "() => { const a = document.activeElement; return a ? (a.dataset.id || a.dataset.testid || a.id || a.tagName) : null; }"
RECT = "(sel) => { const r = document.querySelector(sel).getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; }"
SIDEWAYS = "() => [window.scrollX, document.documentElement.scrollWidth, window.innerWidth]"
# The element on top at the centre of `sel` (a click there reaches it: nothing covers it).
ON_TOP = """(sel) => { const e = document.querySelector(sel); const r = e.getBoundingClientRect();
  const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2); return !!top && e.contains(top); }"""
# WCAG contrast of an element's text colour on the first opaque background behind it.
CONTRAST = """(sel) => {
  const rgb = (c) => c.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const el = document.querySelector(sel);
  const fg = rgb(getComputedStyle(el).color);
  let bg = null;
  for (let e = el; e && !bg; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c.length === 3 || c[3] > 0.9) bg = c; }
  bg = bg || [255, 255, 255];
  const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}"""


def _load(page, path, node_id):
    page.set_input_files("[data-testid=load-input]", str(path))
    page.wait_for_selector(f".react-flow__node[data-id='{node_id}']")


def _playwright():
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("the Python playwright package is missing: pip install playwright (no `playwright install`)")
    return sync_api


def test_editor_small_windows_and_zoom(tmp_path):
    """At 320×240 the panels give way to the canvas, their control stays clickable; popovers never scroll the page sideways."""
    sync_api = _playwright()
    errors: list[str] = []
    with _serve(tmp_path) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_FLAGS)
        try:
            page = open_editor(browser, url, errors, viewport={"width": 320, "height": 240})
            # folded by default: the canvas has the width (it was 0 px wide beside 150 + 170 px of panels)
            assert page.locator("[data-testid=palette]").count() == 0 or not page.is_visible("[data-testid=palette]")
            assert page.evaluate(RECT, "#ng-canvas")[2] >= 300
            toolbar = page.evaluate(RECT, "[data-testid=toolbar]")
            assert toolbar[3] <= 72, f"the toolbar takes {toolbar[3]} of 240 px (three rows were 94)"
            assert page.evaluate(ON_TOP, "[data-testid=panels-button]")
            page.click("[data-testid=panels-button]")          # shown on request, the control stays reachable
            page.wait_for_selector("[data-testid=palette]", state="visible")
            assert page.evaluate(RECT, "#ng-canvas")[2] >= 0.35 * 320
            assert page.evaluate(ON_TOP, "[data-testid=panels-button]"), "a panel covers the control that hides it"
            page.get_by_role("button", name="Hide the palette and the side panels").click()   # no "aside intercepts"
            page.wait_for_selector("[data-testid=palette]", state="hidden")

            # the templates menu inside the window; the page never scrolls sideways
            page.focus("[data-testid=templates-button]")
            page.keyboard.press("Enter")
            page.wait_for_selector("[data-testid=templates-menu]")
            page.wait_for_function("() => document.activeElement?.dataset.testid === 'templates-filter'")
            scroll_x, scroll_width, inner = page.evaluate(SIDEWAYS)
            assert scroll_x == 0 and scroll_width <= inner, (scroll_x, scroll_width, inner)
            left, _, width, _ = page.evaluate(RECT, "[data-testid=templates-menu]")
            assert left >= 0 and left + width <= 320, (left, width)
            page.keyboard.press("Escape")
            page.close()

            # 200 % zoom of a 1280×720 window: 640×360 CSS px at device scale 2; the panels are shown there
            page = open_editor(browser, url, errors, viewport={"width": 640, "height": 360}, device_scale_factor=2)
            assert page.is_visible("[data-testid=palette]")
            assert page.evaluate(RECT, "#ng-canvas")[2] >= 300
            page.click("[data-testid=templates-button]")
            page.wait_for_selector("[data-testid=templates-menu]")
            page.wait_for_function("() => document.activeElement?.dataset.testid === 'templates-filter'")
            scroll_x, scroll_width, inner = page.evaluate(SIDEWAYS)
            assert scroll_x == 0 and scroll_width <= inner, (scroll_x, scroll_width, inner)   # was 191 and 836
            left, _, width, _ = page.evaluate(RECT, "[data-testid=templates-menu]")
            assert left >= 0 and left + width <= 640, (left, width)
            page.keyboard.press("Escape")
            assert page.evaluate(SIDEWAYS)[0] == 0
            assert not errors, errors
        finally:
            browser.close()


def test_editor_keyboard_and_screen_reader(tmp_path):
    """Errors described on inputs, focus after rename and duplicate, announcements once, contrast, focus rings, semantics, tab title."""
    sync_api = _playwright()
    errors: list[str] = []
    files = {}
    for name, graph in (("failing", FAILING), ("invalid", INVALID), ("waiting", WAITING)):
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(json.dumps(graph))
    with _serve(tmp_path) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_FLAGS)
        try:
            page = open_editor(browser, url, errors, viewport={"width": 1280, "height": 720})

            # --- semantics: named landmarks, one h1, the history heading without its filter, the palette search
            assert page.get_by_role("complementary", name="Node palette").count() == 1
            assert page.get_by_role("complementary", name="Side panels: queue, history, gallery").count() == 1
            assert page.locator("h1").count() == 1
            assert page.get_by_role("heading", name="History", exact=True).count() == 1
            assert page.get_by_role("searchbox", name="Search nodes").count() == 1
            lock = page.get_by_role("button", name="Lock the canvas")
            assert lock.get_attribute("aria-pressed") == "false"
            lock.click()
            assert lock.get_attribute("aria-pressed") == "true"
            lock.click()
            assert lock.get_attribute("aria-pressed") == "false"

            # --- validation errors reach a screen reader ----------------------------------------------------
            _load(page, files["invalid"], "bad")
            page.focus("#ng-canvas")
            page.keyboard.press("Control+Enter")
            error = page.locator("[data-testid=input-error-bad-size]").first
            error.wait_for()
            assert "multiple of 8" in error.inner_text()
            field = page.locator("[data-testid=widget-bad-size]")
            assert field.get_attribute("aria-invalid") == "true"
            assert error.get_attribute("id") in (field.get_attribute("aria-describedby") or "").split()
            invalid_toast = page.locator("[data-testid=toast][data-kind=error]", has_text="invalid").first
            invalid_toast.wait_for()
            assert page.evaluate("() => !document.querySelector('[data-testid=toast][data-kind=error]').closest('[aria-live]')"), \
                "an alert inside a polite live region is read twice"

            # --- form fields: the 2 px focus ring of buttons and nodes --------------------------------------
            for selector in ("[data-testid=widget-bad-size]", "[data-testid=history-filter]", "[data-testid=widget-bad-caption]"):
                page.focus(selector)
                ring = page.evaluate("(s) => { const c = getComputedStyle(document.querySelector(s)); return [c.outlineStyle, c.outlineWidth]; }", selector)
                assert ring == ["solid", "2px"], (selector, ring)

            # --- renaming from the keyboard gives the focus back to the node; Duplicate gives it to the copy ---
            node = ".react-flow__node[data-id='save']"
            for key, title in (("Enter", "Saver"), ("Escape", "dropped")):
                page.focus(node)
                page.keyboard.press("Shift+F10")
                page.wait_for_selector("[data-testid=context-menu][data-target=node]")
                page.wait_for_function("() => document.activeElement?.dataset.testid === 'menu-rename'")
                page.keyboard.press("Enter")
                page.wait_for_function("() => document.activeElement?.classList.contains('ng-title-edit')")
                page.keyboard.press("Control+a")
                page.keyboard.type(title)
                page.keyboard.press(key)
                page.wait_for_function("() => document.activeElement?.dataset.id === 'save'")   # was BODY
            assert page.evaluate("window.nodegraph.graph().nodes.save.title") == "Saver"         # Escape kept it
            page.focus(node)
            page.keyboard.press("Shift+F10")
            page.wait_for_selector("[data-testid=context-menu][data-target=node]")
            page.focus("[data-testid=menu-duplicate]")
            page.keyboard.press("Enter")
            page.wait_for_function("() => Object.keys(window.nodegraph.graph().nodes).length === 3")
            copy = next(i for i in page.evaluate("Object.keys(window.nodegraph.graph().nodes)") if i not in ("bad", "save"))
            page.wait_for_function("(id) => document.activeElement?.dataset.id === id", arg=copy)

            # --- a failed run is said once; a new graph forgets it -------------------------------------------
            _load(page, files["failing"], "div")
            page.focus("#ng-canvas")
            page.keyboard.press("Control+Enter")
            page.locator("[data-testid=toast]", has_text="Queued Err test").first.wait_for()
            message = page.locator("[data-testid=error-banner] [role=alert]")
            message.wait_for(timeout=60_000)
            said = message.inner_text()
            assert "Run failed" in said and "×" not in said, said
            assert page.get_by_role("button", name="Close the message").count() == 1
            assert "Run failed" not in page.inner_text("[data-testid=announcer]")     # the alert says it, once
            _load(page, files["waiting"], "wait")
            assert page.inner_text("[data-testid=announcer]") == ""
            assert page.locator("[data-testid=toast]", has_text="Queued Err test").count() == 0

            # --- the run's progress in the tab's title, then the graph's title ------------------------------
            assert page.title() == "nodegraph — KB test"
            page.click("[data-testid=run-button]")
            page.wait_for_function("() => /^\\[\\d+%\\] nodegraph — KB test$/.test(document.title)", timeout=60_000)
            page.wait_for_selector("[data-testid=node-status-show][data-status=done]", timeout=120_000)
            page.wait_for_function("() => document.title === 'nodegraph — KB test'")

            # --- contrast: a cached node's status and React Flow's attribution, both themes -----------------
            page.click("[data-testid=run-button]")   # the same graph again: every node from the cache
            page.wait_for_selector(".ng-node-status[data-status=cached]", timeout=120_000)
            for theme in ("dark", "light"):
                if page.evaluate("document.documentElement.dataset.theme") != theme:
                    page.click("[data-testid=theme-button]")
                    page.wait_for_function("(t) => document.documentElement.dataset.theme === t", arg=theme)
                for selector in (".ng-node-status[data-status=cached]", ".react-flow__attribution a"):
                    assert page.evaluate(CONTRAST, selector) >= 4.5, (theme, selector, page.evaluate(CONTRAST, selector))
            assert page.get_attribute(".react-flow__attribution a", "tabindex") == "-1"   # no Tab stop to an external site
            assert not errors, errors
        finally:
            browser.close()
