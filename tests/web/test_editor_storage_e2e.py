"""The Storage panel end to end: a server with a users file, real Chromium (tests/web/test_editor_e2e.py's server
and browser).

On a server with users the history keeps each user's newest runs only; older runs' files stay in the user's folders
and count against their `max_bytes`, and until the Storage panel nothing in the editor showed them.

`test_storage_panel_lists_and_deletes_files`: user alexandra_konstantia (role user, `max_bytes` 300,000; a
20-letter name, shortened in the toolbar) has three output PNGs (written straight into her output folder, as a
pruned run leaves them) and one upload, together over her limit.
She opens the editor (`/?token=T`, then the cookie) and presses Run: the server refuses the submit with
`quota_exceeded`, and its toast offers "Open storage", which opens the panel. The panel shows her usage ("X MiB
of 0.29 MiB used (uploads …, outputs …, runs …)") with a full bar, and her four files newest first, each image
with its 128 px thumbnail, its size and a Delete button. The Outputs filter lists the three outputs only. Delete
asks first (Keep keeps it); confirmed, the row goes, the file is gone from the disk, and the usage is read again
(the bar goes down). The panel closes with Escape; opened from the toolbar button, Escape gives the focus back to
the button. In an 800×600 window the toolbar, Storage button and her long name included, stays one line with
Run in the window.

Every wait is on an event or a state with a generous ceiling, never a fixed sleep.
"""

from __future__ import annotations

import hashlib
import json
import os
import random

import pytest

from .test_editor_e2e import _serve, pytestmark  # noqa: F401
from .test_editor_fixes_e2e import assert_toolbar_fits
from .test_editor_history_open_e2e import _laptop_page

TOKEN = "alexandra_konstantia-storage-e2e-token-0123456789abcdef"
MAX_BYTES = 300_000


def _mib(size: float | None) -> str:
    """web/src/run/storage.ts formatMiB."""
    value = max(0, size) / 2**20
    if value == 0:
        return "0 MiB"
    if value < 0.01:
        return "<0.01 MiB"
    return f"{value:.0f} MiB" if value >= 100 else f"{value:.1f} MiB" if value >= 1 else f"{value:.2f} MiB"


def _size(size: int) -> str:
    """web/src/run/storage.ts formatBytes (sizes under 1 GiB)."""
    if size < 1024:
        return f"{size} B"
    value, unit = size / 1024, "KiB"
    if value >= 1024:
        value, unit = value / 1024, "MiB"
    return f"{value:.0f} {unit}" if value >= 100 else f"{value:.1f} {unit}" if value >= 10 else f"{value:.2f} {unit}"


def _noise_png(path, side: int, seed: int) -> int:
    """A PNG of random pixels (it does not compress: about 3 bytes a pixel); its size in bytes."""
    from PIL import Image

    rng = random.Random(seed)
    Image.frombytes("RGB", (side, side), bytes(rng.getrandbits(8) for _ in range(side * side * 3))).save(path)
    return path.stat().st_size


def _usage_line(uploads: int, outputs: int) -> str:
    return (f"{_mib(uploads + outputs)} of {_mib(MAX_BYTES)} used "
            f"(uploads {_mib(uploads)}, outputs {_mib(outputs)}, runs {_mib(0)})")


def test_storage_panel_lists_and_deletes_files(tmp_path):
    """A plain user over her byte limit opens Storage from the refusal, sees usage and files, deletes one."""
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("the Python playwright package is missing: pip install playwright (no `playwright install`)")
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"users": {"alexandra_konstantia": {
        "token_sha256": hashlib.sha256(TOKEN.encode()).hexdigest(), "role": "user",
        "max_queued": 5, "max_bytes": MAX_BYTES, "max_run_seconds": 600}}}))
    outputs_dir = tmp_path / "output" / "alexandra_konstantia"
    inputs_dir = tmp_path / "input" / "alexandra_konstantia"
    (outputs_dir / "old run").mkdir(parents=True)
    inputs_dir.mkdir(parents=True)
    # oldest first; each written a minute after the one before (the panel lists them newest first)
    written = [("input", inputs_dir / "upload.png", 40), ("output", outputs_dir / "old run" / "first.png", 200),
               ("output", outputs_dir / "second.png", 200), ("output", outputs_dir / "third.png", 200)]
    sizes = {}
    for index, (folder, path, side) in enumerate(written):
        sizes[path] = _noise_png(path, side, index)
        os.utime(path, (1_700_000_000 + 60 * index, 1_700_000_000 + 60 * index))
    ids = {path: f"{folder}/{path.relative_to(inputs_dir if folder == 'input' else outputs_dir).as_posix()}"
           for folder, path, _ in written}
    uploads = sizes[written[0][1]]
    outputs = sum(sizes[path] for folder, path, _ in written if folder == "output")
    assert uploads + outputs > MAX_BYTES, "the files must fill alexandra_konstantia's storage"
    newest_first = [ids[path] for _, path, _ in reversed(written)]

    errors: list[str] = []
    with _serve(tmp_path, ("--users", str(users))) as url, sync_api.sync_playwright() as playwright, \
            _laptop_page(playwright, errors) as page:
        page.goto(f"{url}?token={TOKEN}")          # the token becomes a cookie; the page is / from then on
        page.wait_for_selector("[data-testid=connection-status][data-status=connected]")
        assert page.text_content("[data-testid=user-name]").strip() == "alexandra_konstantia"
        assert page.get_attribute("[data-testid=storage-button]", "aria-expanded") == "false"

        # Run with a full storage: refused, and the toast offers the way out
        page.click("[data-testid=run-button]")
        action = page.locator("[data-testid=toast][data-kind=error] [data-testid=toast-action]")
        action.wait_for()
        assert "Quota exceeded" in page.locator("[data-testid=toast][data-kind=error]").first.text_content()
        assert action.text_content() == "Open storage"
        action.click()
        page.wait_for_selector("[data-testid=storage-panel]")
        assert page.get_attribute("[data-testid=storage-button]", "aria-expanded") == "true"

        # usage and bar, the files newest first, thumbnails
        page.wait_for_selector("[data-testid=storage-row]")
        usage = page.locator("[data-testid=storage-usage]")
        assert usage.text_content().startswith(_usage_line(uploads, outputs)), usage.text_content()
        bar = page.locator("[data-testid=storage-bar]")
        assert bar.get_attribute("role") == "meter"
        assert int(bar.get_attribute("aria-valuenow")) == uploads + outputs
        assert int(bar.get_attribute("aria-valuemax")) == MAX_BYTES
        rows = page.locator("[data-testid=storage-row]")
        assert rows.evaluate_all("(rows) => rows.map((r) => r.dataset.file)") == newest_first
        assert "old run/first.png" in rows.nth(2).text_content()
        for index, path in enumerate(reversed([path for _, path, _ in written])):
            assert _size(sizes[path]) in rows.nth(index).text_content()
        page.wait_for_function("""() => {
            const thumbs = [...document.querySelectorAll('[data-testid=storage-thumb]')];
            return thumbs.length === 4 && thumbs.every((t) => t.complete && t.naturalWidth > 0);
        }""", timeout=30_000)
        thumbs = page.locator("[data-testid=storage-thumb]").evaluate_all(
            "(ts) => ts.map((t) => [t.getAttribute('src'), t.naturalWidth, t.loading])")
        assert all(src.endswith("?size=128") and 0 < width <= 128 and lazy == "lazy" for src, width, lazy in thumbs), thumbs
        assert "old%20run/first.png" in thumbs[2][0]

        # the Outputs filter
        page.select_option("[data-testid=storage-filter]", "output")
        page.wait_for_function("""() => {
            const rows = [...document.querySelectorAll('[data-testid=storage-row]')];
            return rows.length === 3 && rows.every((r) => r.dataset.file.startsWith('output/'));
        }""")

        # Delete asks first: Keep keeps the file
        second = ids[written[2][1]]
        row = page.locator(f"[data-testid=storage-row][data-file='{second}']")
        row.locator("[data-testid=storage-delete]").click()
        row.locator("[data-testid=storage-cancel]").click()
        row.locator("[data-testid=storage-delete]").wait_for()
        assert written[2][1].exists()

        # ... and confirmed, the row goes, the file is gone from the disk, the usage is read again
        row.locator("[data-testid=storage-delete]").click()
        confirm = row.locator("[data-testid=storage-confirm]")
        assert page.evaluate("() => document.activeElement.dataset.testid") == "storage-cancel"   # the safe one
        confirm.click()
        row.wait_for(state="detached")
        assert not written[2][1].exists()
        assert all(path.exists() for _, path, _ in written if path != written[2][1])
        outputs -= sizes[written[2][1]]
        page.wait_for_function("(used) => document.querySelector('[data-testid=storage-bar]')"
                               ".getAttribute('aria-valuenow') === String(used)", arg=uploads + outputs)
        assert usage.text_content().startswith(_usage_line(uploads, outputs)), usage.text_content()
        assert rows.evaluate_all("(rows) => rows.map((r) => r.dataset.file)") == [
            i for i in newest_first if i.startswith("output/") and i != second]
        assert not page.locator("[data-testid=storage-row-error]").count()
        page.screenshot(path=str(tmp_path / "storage-panel.png"))

        # Escape inside the panel closes it; the toolbar, Storage included, stays one line at 800×600
        page.locator("[data-testid=storage-filter]").focus()
        page.keyboard.press("Escape")
        page.wait_for_selector("[data-testid=storage-panel]", state="detached")
        # opened from its toolbar button (listed again, the filter kept), Escape gives the focus back to it
        page.focus("[data-testid=storage-button]")
        page.keyboard.press("Enter")
        page.wait_for_function("() => document.querySelectorAll('[data-testid=storage-row]').length === 2")
        assert page.evaluate("() => document.activeElement.dataset.testid") == "storage-panel"   # Tab goes on in it
        page.get_by_role("button", name="Close the Storage panel").focus()
        page.keyboard.press("Escape")
        page.wait_for_selector("[data-testid=storage-panel]", state="detached")
        assert page.evaluate("() => document.activeElement.dataset.testid") == "storage-button"
        # Escape from elsewhere (the canvas) closes it too, as the Plugins panel
        page.click("[data-testid=storage-button]")
        page.wait_for_selector("[data-testid=storage-panel]")
        page.click(".react-flow__pane", position={"x": 20, "y": 20})
        page.keyboard.press("Escape")
        page.wait_for_selector("[data-testid=storage-panel]", state="detached")
        page.set_viewport_size({"width": 800, "height": 600})
        page.wait_for_function("() => innerWidth === 800")
        assert_toolbar_fits(page)      # with a 20-letter user name too (it pushed Run out of the window)
        page.screenshot(path=str(tmp_path / "storage-800x600.png"))
    assert not errors, f"errors in the page: {errors}"
