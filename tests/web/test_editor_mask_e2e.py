"""The mask editor in real Chromium: paint on an uploaded image, save it as a new upload with alpha, run it.

`test_mask_editor_paints_saves_and_runs` uploads a 64×48 opaque PNG into a LoadImage, opens
"Edit mask…" from its upload widget, checks the dialog (named, focus inside, brush size with [ and ],
eraser, undo, clear, invert), discards a stroke with Escape, opens it again from the node's context
menu, paints a horizontal stroke and saves. The input then names a new upload (`photo_mask*.png`),
one Ctrl+Z brings the old name back; the file's alpha is 0 under the stroke with the original RGB kept,
255 elsewhere; LoadImage → MaskToImage → SaveImage run on it gives white under the stroke.

Every wait is on an event or a state with a generous ceiling, never a fixed sleep.
"""

from __future__ import annotations

import json

import pytest

from .test_editor_e2e import CHROMIUM_FLAGS, _chromium, _serve, open_editor, pytestmark  # noqa: F401

WIDTH, HEIGHT = 64, 48

MASK_GRAPH = {
    "format_version": 2,
    "metadata": {"title": "Mask"},
    "nodes": {
        "load": {"type": "LoadImage", "inputs": {"image": ""}},
        "show": {"type": "MaskToImage", "inputs": {"mask": {"node": "load", "output": "mask"}}},
        "save": {"type": "SaveImage", "inputs": {"images": {"node": "show", "output": "image"}, "filename_prefix": "maskrun"}},
    },
    "ui": {"nodes": {"load": {"position": [0, 0]}, "show": {"position": [380, 0]}, "save": {"position": [760, 0]}}},
}


def _photo(path) -> None:
    """An opaque gradient (each pixel's RGB tells where it is)."""
    from PIL import Image

    image = Image.new("RGB", (WIDTH, HEIGHT))
    image.putdata([(x * 4, y * 5, 100) for y in range(HEIGHT) for x in range(WIDTH)])
    image.save(path)


def _painted(page) -> int:
    return int(page.get_attribute("[data-testid=mask-canvas]", "data-painted"))


def _stroke(page, y_fraction: float = 0.5) -> None:
    """Drag the mouse across the middle of the mask canvas, from 20 % to 80 % of its width."""
    box = page.locator("[data-testid=mask-canvas]").bounding_box()
    y = box["y"] + box["height"] * y_fraction
    page.mouse.move(box["x"] + box["width"] * 0.2, y)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(box["x"] + box["width"] * (0.2 + 0.06 * step), y)
    page.mouse.up()


def test_mask_editor_paints_saves_and_runs(tmp_path):
    """Edit mask… → paint, undo, clear, invert, Escape discards; Save uploads alpha, sets the input (one undo step), runs."""
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("the Python playwright package is missing: pip install playwright (no `playwright install`)")
    from PIL import Image

    errors: list[str] = []
    photo = tmp_path / "photo.png"
    _photo(photo)
    graph_file = tmp_path / "mask.json"
    graph_file.write_text(json.dumps(MASK_GRAPH))

    with _serve(tmp_path) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_FLAGS)
        try:
            page = open_editor(browser, url, errors, viewport={"width": 1280, "height": 800})
            page.set_input_files("[data-testid=load-input]", str(graph_file))
            page.wait_for_selector("[data-testid=node-save]")
            assert page.locator("[data-testid=edit-mask-load-image]").count() == 0   # no file named yet

            # --- upload, then "Edit mask…" beside the upload control -------------------------------------
            page.set_input_files("[data-testid=upload-load-image]", str(photo))
            page.wait_for_function("() => window.nodegraph.graph().nodes.load.inputs.image === 'photo.png'")
            page.click("[data-testid=edit-mask-load-image]")
            dialog = page.locator("[role=dialog][aria-modal=true]")
            dialog.wait_for()
            assert dialog.get_attribute("data-testid") == "mask-editor"
            assert page.evaluate("() => document.getElementById(document.querySelector('[data-testid=mask-editor]')"
                                 ".getAttribute('aria-labelledby')).textContent") == "Edit mask: photo.png"
            assert page.evaluate("() => document.querySelector('[data-testid=mask-editor]').contains(document.activeElement)")
            canvas = page.locator("[data-testid=mask-canvas]")
            canvas.wait_for()
            assert (canvas.get_attribute("data-width"), canvas.get_attribute("data-height")) == (str(WIDTH), str(HEIGHT))
            assert _painted(page) == 0                                 # an opaque image: nothing masked yet
            assert float(page.get_attribute("[data-testid=mask-zoom]", "data-zoom")) > 1   # fitted: enlarged

            # brush size with [ and ]
            page.fill("[data-testid=mask-size]", "8")
            page.keyboard.press("]")
            assert page.input_value("[data-testid=mask-size]") == "10"
            page.keyboard.press("[")
            page.keyboard.press("[")
            assert page.input_value("[data-testid=mask-size]") == "6"

            # paint, erase part, undo the erase, clear, undo the clear, invert and back
            _stroke(page)
            page.wait_for_function("() => +document.querySelector('[data-testid=mask-canvas]').dataset.painted > 100")
            painted = _painted(page)
            page.click("[data-testid=mask-eraser]")
            assert page.get_attribute("[data-testid=mask-eraser]", "aria-pressed") == "true"
            _stroke(page)
            page.wait_for_function("() => +document.querySelector('[data-testid=mask-canvas]').dataset.painted === 0")
            page.click("[data-testid=mask-undo]")
            assert _painted(page) == painted
            page.click("[data-testid=mask-clear]")
            assert _painted(page) == 0
            page.keyboard.press("Control+z")
            assert _painted(page) == painted
            page.click("[data-testid=mask-invert]")
            assert _painted(page) == WIDTH * HEIGHT - painted
            page.click("[data-testid=mask-undo]")
            assert _painted(page) == painted

            # Escape discards: the dialog goes, the input is unchanged, the focus back on the opener
            page.keyboard.press("Escape")
            page.wait_for_selector("[data-testid=mask-editor]", state="detached")
            assert page.evaluate("window.nodegraph.graph().nodes.load.inputs.image") == "photo.png"
            assert page.evaluate("document.activeElement?.dataset.testid") == "edit-mask-load-image"

            # --- the node's context menu opens it too; paint one stroke and save --------------------------
            page.click("[data-testid=node-load] .ng-node-header", button="right", position={"x": 40, "y": 8})
            page.wait_for_selector("[data-testid=context-menu][data-target=node]")
            page.click("[data-testid=menu-edit-mask]")
            canvas.wait_for()
            assert _painted(page) == 0                                 # a fresh start: the discarded stroke is gone
            page.click("[data-testid=mask-brush]")
            _stroke(page)
            page.wait_for_function("() => +document.querySelector('[data-testid=mask-canvas]').dataset.painted > 100")
            page.click("[data-testid=mask-save]")
            page.wait_for_selector("[data-testid=mask-editor]", state="detached", timeout=30_000)
            page.wait_for_function("() => window.nodegraph.graph().nodes.load.inputs.image !== 'photo.png'")
            saved = page.evaluate("window.nodegraph.graph().nodes.load.inputs.image")
            assert saved.startswith("photo_mask") and saved.endswith(".png"), saved

            # one undo step: Ctrl+Z on the canvas gives the old name back, Ctrl+Y the new
            page.click("[data-testid=canvas] .react-flow__pane", position={"x": 600, "y": 500})
            page.keyboard.press("Control+z")
            page.wait_for_function("() => window.nodegraph.graph().nodes.load.inputs.image === 'photo.png'")
            page.keyboard.press("Control+y")
            page.wait_for_function(f"() => window.nodegraph.graph().nodes.load.inputs.image === {json.dumps(saved)}")

            # --- the file: alpha 0 under the stroke (original RGB kept), 255 elsewhere ------------------
            response = page.request.get(f"{url.rstrip('/')}/files/input/{saved}")
            assert response.ok, response.status
            download = tmp_path / "downloaded.png"
            download.write_bytes(response.body())
            with Image.open(download) as image:
                assert image.mode == "RGBA" and image.size == (WIDTH, HEIGHT)
                middle = image.getpixel((WIDTH // 2, HEIGHT // 2))
                assert middle == (WIDTH // 2 * 4, HEIGHT // 2 * 5, 100, 0), middle   # painted: transparent, RGB kept
                assert image.getpixel((1, 1)) == (4, 5, 100, 255)
                assert image.getpixel((WIDTH - 2, HEIGHT - 2))[3] == 255
                transparent = image.getchannel("A").histogram()[0]
            assert 100 < transparent < WIDTH * HEIGHT // 2

            # --- a run: LoadImage's mask is white under the stroke ---------------------------------------
            page.click("[data-testid=run-button]")
            page.wait_for_selector("[data-testid=node-status-save][data-status=done]", timeout=120_000)
            outputs = sorted((tmp_path / "output").rglob("maskrun*.png"))
            assert outputs, "SaveImage wrote no file"
            with Image.open(outputs[-1]) as result:
                grey = result.convert("L")
                assert grey.getpixel((WIDTH // 2, HEIGHT // 2)) == 255
                assert grey.getpixel((1, 1)) == 0
                white = grey.histogram()[255]
            assert white == transparent
            assert errors == []
        finally:
            browser.close()
