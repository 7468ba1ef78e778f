"""Low-severity fixes from an outside check of the editor, in real Chromium (tests/web/test_editor_e2e.py's server).

- Image viewer: "100%" shows one image pixel per screen pixel (a 160×48 output is 160×48 on
  screen); "Fit" shows it whole, as large as the stage allows.
- Compare slider: an image of another size is drawn in the shown image's box, so the two line up.
- Gallery, history and viewer-strip thumbnails show non-square images whole (object-fit: contain).
- Node search: Enter adds the best hit only when it really matches the query's words; a query
  with only letters-in-order hits ("sharpen") says "no good match" and adds nothing until ↓ picks
  one; "ksampler" + Enter still adds KSampler (popup and palette).
- Templates menu: a focused filter box on top; typing narrows the list, Enter opens the first match.

Screenshots go to the test's temporary folder (viewer-*.png, search-*.png, templates-*.png).
"""

from __future__ import annotations

import json

import pytest

from .test_editor_e2e import CHROMIUM_FLAGS, ROOT, _chromium, _serve, pytestmark  # noqa: F401
from .test_editor_features_e2e import EMPTY_SPOT

# A square 64×64 image and a wide 160×48 one (the same picture stretched), saved by two nodes.
SIZES_GRAPH = {
    "format_version": 2,
    "metadata": {"title": "Two sizes"},
    "nodes": {
        "render": {"type": "RenderTinyWorld", "inputs": {"caption": "a large red circle in the centre, on a white background", "size": 64}},
        "wide": {"type": "ImageScale", "inputs": {"images": {"node": "render", "output": "image"}, "width": 160, "height": 48}},
        "save_square": {"type": "SaveImage", "inputs": {"images": {"node": "render", "output": "image"}, "filename_prefix": "square"}},
        "save_wide": {"type": "SaveImage", "inputs": {"images": {"node": "wide", "output": "image"}, "filename_prefix": "wide"}},
    },
    "ui": {"nodes": {"render": {"position": [0, 0]}, "wide": {"position": [0, 260]},
                     "save_square": {"position": [380, 0]}, "save_wide": {"position": [760, 0]}}},
}

RECT = "(sel) => { const r = document.querySelector(sel).getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; }"
OBJECT_FITS = "(sel) => [...document.querySelectorAll(sel)].map((e) => getComputedStyle(e).objectFit)"


def _node_count(page) -> int:
    return page.evaluate("Object.keys(window.nodegraph.graph().nodes).length")


def _open_search(page):
    # a node just added must be drawn before looking for empty canvas, or the spot may be its
    page.wait_for_function("() => document.querySelectorAll('.react-flow__node-schema').length"
                           " === Object.keys(window.nodegraph.graph().nodes).length")
    spot = page.evaluate(EMPTY_SPOT)
    assert spot, "no empty canvas spot found"
    page.mouse.dblclick(spot[0], spot[1])
    popup = page.locator("[data-testid=search-popup]")
    popup.wait_for()
    # keys typed before the box has the focus are lost: wait for it
    page.wait_for_function("() => document.activeElement?.dataset?.testid === 'search-input'")
    return popup


def test_viewer_search_templates(tmp_path):
    """Viewer 100% / Fit and compare of two sizes, whole thumbnails, Enter only on good search hits, templates filter."""
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("the Python playwright package is missing: pip install playwright (no `playwright install`)")
    graph_file = tmp_path / "two_sizes.json"
    graph_file.write_text(json.dumps(SIZES_GRAPH, indent=1))
    arithmetic = json.loads((ROOT / "graphs" / "arithmetic.json").read_text())
    errors: list[str] = []
    with _serve(tmp_path) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 900}, device_scale_factor=1)
            page.set_default_timeout(20_000)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url)
            page.wait_for_selector("[data-testid=connection-status][data-status=connected]")
            page.wait_for_selector("[data-testid^=palette-item-]")

            # --- a run that writes a 64×64 and a 160×48 image ----------------------------------------
            page.set_input_files("[data-testid=load-input]", str(graph_file))
            page.wait_for_selector("[data-testid=node-save_wide]")
            page.click("[data-testid=run-button]")
            page.wait_for_selector("[data-testid=node-files-save_wide] img", timeout=120_000)
            page.wait_for_selector("[data-testid=node-files-save_square] img", timeout=60_000)
            page.wait_for_function("() => document.querySelectorAll('[data-testid=gallery-item] img').length === 2", timeout=30_000)
            page.wait_for_selector("[data-testid^=history-thumb-]", timeout=30_000)

            # --- thumbnails show the whole picture ---------------------------------------------------
            assert page.evaluate(OBJECT_FITS, "[data-testid=gallery-item] img") == ["contain", "contain"]
            assert set(page.evaluate(OBJECT_FITS, "[data-testid^=history-thumb-]")) == {"contain"}
            page.locator("[data-testid=gallery]").screenshot(path=str(tmp_path / "viewer-gallery-thumbs.png"))

            # --- the viewer: Fit, then 100% = actual pixels ------------------------------------------
            page.locator("[data-testid=node-files-save_wide] img").first.dispatch_event("click")  # the minimap may cover it
            page.wait_for_selector("[data-testid=image-viewer]")
            page.wait_for_function("() => document.querySelector('[data-testid=viewer-image]').getBoundingClientRect().width > 0"
                                   " && document.querySelector('[data-testid=viewer-image]').naturalWidth === 160")
            zoom = page.locator("[data-testid=viewer-zoom]")
            assert zoom.get_attribute("data-fit") == "true"
            stage = page.evaluate(RECT, ".ng-viewer-stage")
            fitted = page.evaluate(RECT, "[data-testid=viewer-image]")
            assert fitted[2] > 160 * 3 and fitted[2] <= stage[2] and fitted[3] <= stage[3], (fitted, stage)  # whole, enlarged
            assert abs(fitted[2] / fitted[3] - 160 / 48) < 0.02                                             # aspect kept
            assert zoom.inner_text() == f"{round(fitted[2] / 160 * 100)}%"                                  # % of image pixels
            page.screenshot(path=str(tmp_path / "viewer-fit.png"))
            page.click("[data-testid=viewer-zoom-actual]")
            page.wait_for_function("() => document.querySelector('[data-testid=viewer-zoom]').textContent === '100%'")
            actual = page.evaluate(RECT, "[data-testid=viewer-image]")
            assert [round(actual[2]), round(actual[3])] == [160, 48], actual
            assert float(zoom.get_attribute("data-zoom")) == 1 and zoom.get_attribute("data-fit") == "false"
            page.screenshot(path=str(tmp_path / "viewer-100.png"))
            page.click("[data-testid=viewer-zoom-in]")
            assert round(page.evaluate(RECT, "[data-testid=viewer-image]")[2]) == 200         # 125% of 160 px
            page.click("[data-testid=viewer-zoom-fit]")
            assert page.evaluate(RECT, "[data-testid=viewer-image]")[2] == pytest.approx(fitted[2], abs=1)
            page.keyboard.press("Escape")
            page.wait_for_selector("[data-testid=image-viewer]", state="detached")

            # --- compare two sizes: both in the same box ---------------------------------------------
            page.locator("[data-testid=gallery-item] img").first.click()
            page.wait_for_selector("[data-testid=image-viewer]")
            assert page.inner_text("[data-testid=viewer-frame]") == "1 / 2"
            page.click("[data-testid=viewer-compare-1]")
            page.wait_for_selector("[data-testid=viewer-compare-image]")
            page.wait_for_function("() => document.querySelector('[data-testid=viewer-compare-image]').complete")
            sizes = page.evaluate("() => ['viewer-image', 'viewer-compare-image'].map((t) => document.querySelector(`[data-testid=${t}]`).naturalWidth)")
            assert sorted(sizes) == [64, 160], sizes                                                   # really two sizes
            shown = page.evaluate(RECT, "[data-testid=viewer-image]")
            compared = page.evaluate(RECT, "[data-testid=viewer-compare-image]")
            assert compared == pytest.approx(shown, abs=1), (shown, compared)
            stage = page.evaluate(RECT, ".ng-viewer-stage")
            assert compared[1] >= stage[1] - 1 and compared[1] + compared[3] <= stage[1] + stage[3] + 1   # nothing clipped
            page.fill("[data-testid=viewer-compare-slider]", "50")
            page.screenshot(path=str(tmp_path / "viewer-compare-sizes.png"))
            page.keyboard.press("Escape")
            page.wait_for_selector("[data-testid=image-viewer]", state="detached")

            # --- search: Enter adds only a good match ------------------------------------------------
            count = _node_count(page)
            popup = _open_search(page)
            page.keyboard.type("load imge")                # a typo: Load Image by letters in order only (weak)
            page.wait_for_selector("[data-testid=search-no-good-match]")
            assert page.locator("[data-testid^=search-item-][data-strong=true]").count() == 0
            assert page.locator(".ng-search-item.ng-active").count() == 0
            page.screenshot(path=str(tmp_path / "search-no-good-match.png"))
            page.keyboard.press("Enter")
            assert _node_count(page) == count and popup.is_visible()
            page.keyboard.press("ArrowDown")               # a deliberate pick of a weak hit still works
            picked = page.locator(".ng-search-item.ng-active").get_attribute("data-testid").removeprefix("search-item-")
            page.keyboard.press("Enter")
            popup.wait_for(state="detached")
            assert _node_count(page) == count + 1
            assert picked in [n["type"] for n in page.evaluate("Object.values(window.nodegraph.graph().nodes)")]
            _open_search(page)
            # typed into the popup's own box, and Enter only once the list is the full query's (typing at once
            # after the double-click lost letters on a busy CI machine: "sampler" picked another node)
            page.fill("[data-testid=search-input]", "ksampler")
            page.wait_for_selector("[data-testid=search-item-KSampler][data-strong=true]")
            page.wait_for_function("() => document.querySelector('[data-testid^=search-item-]')?.dataset.testid"
                                   " === 'search-item-KSampler'")
            page.press("[data-testid=search-input]", "Enter")
            page.wait_for_function("() => Object.values(window.nodegraph.graph().nodes).some((n) => n.type === 'KSampler')")
            assert _node_count(page) == count + 2
            page.fill("[data-testid=palette-search]", "sharpen")
            page.press("[data-testid=palette-search]", "Enter")
            assert _node_count(page) == count + 2
            assert "no good match" in page.inner_text("[data-testid=palette]").lower()
            page.fill("[data-testid=palette-search]", "int")
            page.press("[data-testid=palette-search]", "Enter")
            assert _node_count(page) == count + 3
            page.fill("[data-testid=palette-search]", "")

            # --- templates: a filter box, keyboard only ----------------------------------------------
            page.click("[data-testid=templates-button]")
            page.wait_for_selector("[data-testid='template-project/arithmetic.json']")
            assert page.evaluate("document.activeElement.dataset.testid") == "templates-filter"
            total = page.locator("[data-testid^=template-]:not([data-testid=templates-filter])").count()
            page.screenshot(path=str(tmp_path / "templates-open.png"))
            page.keyboard.type("zzzz no such")
            page.wait_for_selector("[data-testid=templates-none]")
            page.fill("[data-testid=templates-filter]", "latent CELLS")  # words of arithmetic's description
            page.wait_for_function("() => document.querySelectorAll('button.ng-template').length === 1")
            assert page.locator("button.ng-template").get_attribute("data-testid") == "template-project/arithmetic.json"
            page.screenshot(path=str(tmp_path / "templates-filtered.png"))
            page.fill("[data-testid=templates-filter]", "project")
            page.wait_for_function(f"() => document.querySelectorAll('button.ng-template').length > 1")
            assert page.locator("button.ng-template").count() <= total
            page.fill("[data-testid=templates-filter]", "arithmetic")
            page.keyboard.press("Enter")
            page.wait_for_selector("[data-testid=templates-menu]", state="detached")
            page.wait_for_function(f"() => Object.keys(window.nodegraph.graph().nodes).sort().join() === {json.dumps(','.join(sorted(arithmetic['nodes'])))}")
            assert errors == [], errors
        finally:
            browser.close()
