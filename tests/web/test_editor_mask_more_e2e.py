"""The mask editor and image inputs in real Chromium: what persona tests of the inpainting workflow found.

- `test_reediting_a_mask_keeps_the_colour_under_it`: paint, Save, reopen the saved mask, erase part of it, Save:
  the erased pixels get their original RGB back (they came back black: the editor read the file through a canvas,
  which premultiplies). Clear on an image with soft alpha keeps the RGB under alpha 0 too.
- `test_a_mask_too_large_to_upload_is_said_in_the_dialog`: with a small --max-message-bytes, Save keeps the dialog
  and the painting, says why with the fixes, and offers the PNG for download; nothing is uploaded.
- `test_an_image_dropped_on_loadimage_becomes_its_input`: a photo dropped on the LoadImage node is uploaded and set
  as its image (ComfyUI does this); dropped on the canvas it is refused with a hint naming LoadImage.
- `test_a_result_is_used_as_the_loadimage_input_from_the_viewer`: a run's result, opened in the image viewer,
  becomes LoadImage's input with *Use as input* (the canvas loop: generate, mask, inpaint, repeat).

Every wait is on an event or a state with a generous ceiling, never a fixed sleep.
"""

from __future__ import annotations

import base64
import json


from .test_editor_e2e import editor_page, pytestmark  # noqa: F401
from .test_editor_mask_e2e import HEIGHT, MASK_GRAPH, WIDTH, _photo

PAINTED = "+document.querySelector('[data-testid=mask-canvas]').dataset.painted"

# a File dropped on an element with the DataTransfer a real drag from the desktop carries
DROP = """([selector, b64, name]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], name, { type: 'image/png' }));
  const element = document.querySelector(selector);
  const box = element.getBoundingClientRect();
  const options = { bubbles: true, cancelable: true, dataTransfer: data, clientX: box.x + box.width / 2, clientY: box.y + box.height / 2 };
  for (const type of ['dragenter', 'dragover', 'drop']) element.dispatchEvent(new DragEvent(type, options));
}"""


def _stroke(page, x0: float, x1: float, y: float = 0.5) -> None:
    """Drag the mouse across the mask canvas from x0 to x1 (fractions of its width) at height y."""
    box = page.locator("[data-testid=mask-canvas]").bounding_box()
    yy = box["y"] + box["height"] * y
    page.mouse.move(box["x"] + box["width"] * x0, yy)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(box["x"] + box["width"] * (x0 + (x1 - x0) * step / 10), yy)
    page.mouse.up()


def _open_graph(page, tmp_path, image: str) -> None:
    graph = json.loads(json.dumps(MASK_GRAPH))
    graph["nodes"]["load"]["inputs"]["image"] = image
    graph_file = tmp_path / "mask.json"
    graph_file.write_text(json.dumps(graph))
    page.set_input_files("[data-testid=load-input]", str(graph_file))
    page.wait_for_function(f"() => window.nodegraph.graph().nodes.load?.inputs.image === {json.dumps(image)}")


def _save_and_wait(page, previous: str) -> str:
    page.click("[data-testid=mask-save]")
    page.wait_for_selector("[data-testid=mask-editor]", state="detached", timeout=30_000)
    page.wait_for_function(f"() => window.nodegraph.graph().nodes.load.inputs.image !== {json.dumps(previous)}")
    return page.evaluate("window.nodegraph.graph().nodes.load.inputs.image")


def test_reediting_a_mask_keeps_the_colour_under_it(tmp_path):
    """Paint, save, reopen, erase, save: the erased pixels are opaque with their original RGB; Clear keeps RGB under alpha 0."""
    from PIL import Image

    (tmp_path / "input").mkdir()
    _photo(tmp_path / "input" / "photo.png")
    soft = Image.new("RGBA", (WIDTH, HEIGHT), (220, 20, 20, 0))   # colour under alpha 0, as an editor's mask leaves it
    soft.paste((10, 200, 30, 255), (0, 0, WIDTH // 2, HEIGHT))
    soft.save(tmp_path / "input" / "soft alpha.png")

    with editor_page(tmp_path, viewport={"width": 1280, "height": 800}) as (page, errors):
        _open_graph(page, tmp_path, "photo.png")

        # first edit: a stroke across the middle
        page.click("[data-testid=edit-mask-load-image]")
        page.wait_for_selector("[data-testid=mask-canvas]")
        page.fill("[data-testid=mask-size]", "8")
        _stroke(page, 0.2, 0.8)
        page.wait_for_function(f"() => {PAINTED} > 100")
        first = _save_and_wait(page, "photo.png")

        # second edit of the saved mask: it starts from the stroke; erase its middle with a wide eraser
        page.click("[data-testid=edit-mask-load-image]")
        page.wait_for_selector("[data-testid=mask-canvas]")
        with Image.open(tmp_path / "input" / first) as image:
            masked_before = image.getchannel("A").histogram()[0]
        assert page.evaluate(PAINTED) == masked_before
        page.click("[data-testid=mask-eraser]")
        page.fill("[data-testid=mask-size]", "16")
        _stroke(page, 0.45, 0.55)
        page.wait_for_function(f"() => {PAINTED} < {masked_before}")
        second = _save_and_wait(page, first)
        assert second != first

        with Image.open(tmp_path / "input" / first) as a, Image.open(tmp_path / "input" / second) as b:
            before, after = a.convert("RGBA"), b.convert("RGBA")
            erased = [(x, y) for y in range(HEIGHT) for x in range(WIDTH)
                      if before.getpixel((x, y))[3] == 0 and after.getpixel((x, y))[3] == 255]
            kept = [(x, y) for y in range(HEIGHT) for x in range(WIDTH) if after.getpixel((x, y))[3] == 0]
            assert len(erased) > 20 and len(kept) > 20, (len(erased), len(kept))
            for x, y in erased + kept:   # the original colour, under the mask and where it was erased
                assert after.getpixel((x, y))[:3] == (x * 4, y * 5, 100), (x, y, after.getpixel((x, y)))

        # Clear on an image whose right half is transparent: the colour under alpha 0 survives
        _open_graph(page, tmp_path, "soft alpha.png")
        page.click("[data-testid=edit-mask-load-image]")
        page.wait_for_selector("[data-testid=mask-canvas]")
        assert page.evaluate(PAINTED) == WIDTH * HEIGHT - (WIDTH // 2) * HEIGHT
        page.click("[data-testid=mask-clear]")
        cleared = _save_and_wait(page, "soft alpha.png")
        with Image.open(tmp_path / "input" / cleared) as image:
            assert image.convert("RGBA").getpixel((WIDTH - 2, 2)) == (220, 20, 20, 255)
            assert image.convert("RGBA").getpixel((1, 1)) == (10, 200, 30, 255)
        assert errors == []


def test_a_mask_too_large_to_upload_is_said_in_the_dialog(tmp_path):
    """Past --max-message-bytes, Save uploads nothing, keeps the dialog and painting, and says what to do."""
    import random

    from PIL import Image

    (tmp_path / "input").mkdir()
    rnd = random.Random(3)
    noise = Image.frombytes("RGB", (200, 200), bytes(rnd.randrange(256) for _ in range(200 * 200 * 3)))
    noise.save(tmp_path / "input" / "noise.png")   # ~120 KB of noise: its mask PNG cannot fit in 64 KiB

    with editor_page(tmp_path, ("--max-message-bytes", str(64 * 1024)),
                     viewport={"width": 1280, "height": 800}) as (page, errors):
        _open_graph(page, tmp_path, "noise.png")
        page.click("[data-testid=edit-mask-load-image]")
        page.wait_for_selector("[data-testid=mask-canvas]")
        _stroke(page, 0.2, 0.8)
        page.wait_for_function(f"() => {PAINTED} > 100")
        painted = page.evaluate(PAINTED)
        page.click("[data-testid=mask-save]")
        problem = page.wait_for_selector("[data-testid=mask-save-error]")
        text = problem.text_content()
        assert "noise_mask.png is 0.1 MiB" in text, text
        assert "--max-message-bytes 16777216 (16 MiB)" in text and "input folder" in text, text
        assert page.locator("[data-testid=mask-editor]").is_visible()
        assert page.evaluate(PAINTED) == painted                          # the painting stays
        link = page.locator("[data-testid=mask-download]")
        assert link.get_attribute("download") == "noise_mask.png"
        assert link.get_attribute("href").startswith("blob:")
        with page.expect_download() as download:
            link.click()
        saved = tmp_path / "downloaded.png"
        download.value.save_as(saved)
        with Image.open(saved) as image:
            assert image.size == (200, 200) and image.mode == "RGBA"
            assert image.getchannel("A").histogram()[0] == painted
        assert page.evaluate("window.nodegraph.graph().nodes.load.inputs.image") == "noise.png"
        assert sorted(p.name for p in (tmp_path / "input").iterdir()) == ["noise.png"]   # nothing uploaded
        assert errors == []


def test_an_image_dropped_on_loadimage_becomes_its_input(tmp_path):
    """A photo dropped on LoadImage is uploaded and set as its image; on the canvas it is refused with a hint."""
    photo = tmp_path / "photo.png"
    _photo(photo)
    photo_b64 = base64.b64encode(photo.read_bytes()).decode()

    with editor_page(tmp_path, viewport={"width": 1280, "height": 800}) as (page, errors):
        _open_graph(page, tmp_path, "")
        page.wait_for_selector("[data-testid=node-load]")
        page.evaluate(DROP, ["[data-testid=node-load]", photo_b64, "dropped photo.png"])
        page.wait_for_function("() => window.nodegraph.graph().nodes.load.inputs.image !== ''")
        stored = page.evaluate("window.nodegraph.graph().nodes.load.inputs.image")
        assert stored == "dropped_photo.png"                                 # the server's sanitised name
        assert (tmp_path / "input" / stored).read_bytes() == photo.read_bytes()
        assert sorted(page.evaluate("Object.keys(window.nodegraph.graph().nodes)")) == ["load", "save", "show"]
        page.wait_for_selector("[data-testid=edit-mask-load-image]")    # and the mask editor can open it

        page.evaluate(DROP, ["[data-testid=canvas] .react-flow__pane", photo_b64, "dropped photo.png"])
        banner = page.wait_for_selector("[data-testid=error-banner]")
        assert "drop it on a LoadImage node" in banner.text_content(), banner.text_content()
        assert page.evaluate("window.nodegraph.graph().nodes.load.inputs.image") == stored
        assert errors == []


def test_a_result_is_used_as_the_loadimage_input_from_the_viewer(tmp_path):
    """Run LoadImage → MaskToImage → SaveImage, open the result in the viewer, *Use as input*: it becomes LoadImage's image."""
    (tmp_path / "input").mkdir()
    _photo(tmp_path / "input" / "photo.png")

    with editor_page(tmp_path, viewport={"width": 1280, "height": 800}) as (page, errors):
        _open_graph(page, tmp_path, "photo.png")
        page.click("[data-testid=run-button]")
        page.wait_for_selector("[data-testid=node-status-save][data-status=done]", timeout=120_000)
        page.locator("[data-testid=node-files-save] img").first.click()
        page.wait_for_selector("[data-testid=image-viewer]")
        page.click("[data-testid=viewer-use-as-input]")
        page.wait_for_selector("[data-testid=image-viewer]", state="detached")
        stored = page.evaluate("window.nodegraph.graph().nodes.load.inputs.image")
        assert stored.startswith("maskrun") and stored.endswith(".png"), stored
        result = next((tmp_path / "output").rglob("maskrun*.png"))
        assert (tmp_path / "input" / stored).read_bytes() == result.read_bytes()
        assert errors == []
