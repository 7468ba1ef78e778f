"""The browser editor end to end: real server, real Chromium (headless), real graph.

One test walks the whole loop a user does: open the editor, load a graph file,
save it unchanged (same JSON), change an input, add a Wait node from the
palette and splice it in front of the output node (so that step progress is
visible), run, watch progress and the output, try a type-incompatible link and
see it refused with a reason, remove a required link and see the server's
validation error on that input, undo, save again and compare with the file
plus the edits. A screenshot of the finished run is written to the test's temp
folder, or to docs/editor.png with NODEGRAPH_UPDATE_SCREENSHOT=1 (the README's picture).

The graph is `graphs/txt2img.json` when it exists, else `graphs/arithmetic.json`;
`NODEGRAPH_E2E_GRAPH=path` picks another. Needs Chromium at /usr/bin/chromium
(or $CHROMIUM) and a built editor (web/dist) — skipped with the reason when
either is missing, except in CI (CI=true), where missing pieces are a failure —
and the Python `playwright` package (a test dependency; its browsers are not
used, so no `playwright install`).
"""

from __future__ import annotations

import copy
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "web" / "dist" / "index.html"
SCREENSHOT = ROOT / "docs" / "editor.png"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def _graph_path() -> Path:
    chosen = os.environ.get("NODEGRAPH_E2E_GRAPH")
    if chosen:
        return Path(chosen).resolve()
    txt2img = ROOT / "graphs" / "txt2img.json"
    return txt2img if txt2img.exists() else ROOT / "graphs" / "arithmetic.json"


def _chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


_MISSING = [reason for missing, reason in (
    (_chromium() is None, "Chromium is not installed (apt-get install -y chromium)"),
    (not DIST.exists(), "the editor is not built (scripts/setup builds it: cd web && npm ci && npm run build)"),
) if missing]
if _MISSING and os.environ.get("CI"):
    raise RuntimeError("CI must run the browser test: " + "; ".join(_MISSING))
pytestmark = [pytest.mark.skipif(bool(_MISSING), reason="; ".join(_MISSING))]


@pytest.fixture
def server_url(tmp_path):
    """A real `nodegraph serve` on a free port with a temporary data dir; yields its URL."""
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nodegraph.server", "--port", "0", "--data-dir", str(tmp_path / "data"),
         "--output-dir", str(tmp_path / "output"), "--input-dir", str(tmp_path / "input")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=log, text=True)
    url = None
    deadline = time.monotonic() + 30
    while url is None and time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            match = re.search(r"serving on (\S+)", proc.stdout.readline())
            url = match.group(1) if match else None
    try:
        if url is None:
            log.flush()
            pytest.fail(f"the server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _center(page, selector: str) -> tuple[float, float]:
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not visible"
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def _drag_link(page, source: str, target: str) -> None:
    """Drag with the mouse from one handle to another (React Flow listens to pointer events)."""
    sx, sy = _center(page, source)
    tx, ty = _center(page, target)
    page.mouse.move(sx, sy)
    page.mouse.down()
    page.mouse.move((sx + tx) / 2, (sy + ty) / 2, steps=5)
    page.mouse.move(tx, ty, steps=5)
    page.mouse.up()


def _save(page) -> dict:
    with page.expect_download() as download:
        page.click("[data-testid=save-button]")
    return json.loads(Path(download.value.path()).read_text())


def _is_link(value) -> bool:
    return isinstance(value, dict) and set(value) == {"node", "output"}


def _compatible(source: str, destination: str, types: dict) -> bool:
    return source == destination or "*" in (source, destination) or source in types.get(destination, {}).get("accepts", [])


def _pick_edit(graph: dict, schemas: dict) -> tuple[str, str, int | float]:
    """A number literal to change: a width if the graph has one, else the first INT/FLOAT literal."""
    candidates = []
    for node_id, node in graph["nodes"].items():
        schema = schemas["nodes"].get(node["type"], {})
        for name, value in (node.get("inputs") or {}).items():
            spec = schema.get("inputs", {}).get(name)
            if spec and spec["widget"]["kind"] == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
                preferred = "width" in name or "width" in node_id
                candidates.append((not preferred, node_id, name, value, spec))
    assert candidates, "the e2e graph needs a number literal to edit"
    _, node_id, name, value, spec = sorted(candidates, key=lambda c: c[0])[0]
    step = 64 if "width" in name or "width" in node_id else 1
    maximum = spec["schema"].get("maximum", float("inf"))
    new = value + step if value + step <= maximum else value - step
    return node_id, name, new


def _pick_bad_link(graph: dict, schemas: dict) -> tuple[str, str, str, str, str]:
    """An output and an input in the graph whose port types are incompatible."""
    types = schemas["types"]
    for src_id, src in graph["nodes"].items():
        for output in schemas["nodes"][src["type"]]["outputs"]:
            for dst_id, dst in graph["nodes"].items():
                if dst_id == src_id:
                    continue
                for name, spec in schemas["nodes"][dst["type"]]["inputs"].items():
                    if not _compatible(output["port"], spec["port"], types):
                        return src_id, output["name"], dst_id, name, f"{output['port']} output cannot feed"
    raise AssertionError("the e2e graph has no incompatible pair of ports")


def test_editor_load_edit_run_refuse_save(server_url, tmp_path):
    """Load, round-trip save, edit, splice a Wait node, run with progress, refused link, validation error, undo, save."""
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("the Python playwright package is missing: pip install playwright (no `playwright install`)")

    graph_path = _graph_path()
    original = json.loads(graph_path.read_text())
    errors: list[str] = []

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 900}, accept_downloads=True)
            page.set_default_timeout(15_000)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(server_url)
            page.wait_for_selector("[data-testid=connection-status][data-status=connected]")
            page.wait_for_selector("[data-testid^=palette-item-]")
            schemas = page.evaluate("window.nodegraph.session().schemas")

            # Load the file; every node appears; saving without edits gives the same JSON.
            page.set_input_files("[data-testid=load-input]", str(graph_path))
            for node_id in original["nodes"]:
                page.wait_for_selector(f"[data-testid='node-{node_id}']")
            assert _save(page) == original

            # Change an input value through its widget.
            edit_node, edit_input, new_value = _pick_edit(original, schemas)
            page.fill(f"[data-testid='widget-{edit_node}-{edit_input}']", str(new_value))

            # Add a Wait node by dragging it from the palette onto empty canvas below the graph.
            page.fill("[data-testid=palette-search]", "wait")
            canvas = page.locator("[data-testid=canvas]").bounding_box()
            page.drag_and_drop("[data-testid=palette-item-Wait]", "[data-testid=canvas]",
                               target_position={"x": canvas["width"] * 0.45, "y": canvas["height"] - 170})
            page.wait_for_selector("[data-testid=node-wait]")
            page.fill("[data-testid=widget-wait-seconds]", "1.5")

            # Splice it in front of the output node: source → wait.value, wait.value → output input.
            out_id = next(i for i, n in original["nodes"].items() if schemas["nodes"][n["type"]]["output_node"])
            out_input, link = next((k, v) for k, v in original["nodes"][out_id]["inputs"].items() if _is_link(v))
            _drag_link(page, f"[data-testid='handle-{link['node']}-out-{link['output']}']", "[data-testid=handle-wait-in-value]")
            _drag_link(page, "[data-testid=handle-wait-out-value]", f"[data-testid='handle-{out_id}-in-{out_input}']")
            expected = copy.deepcopy(original)
            expected["nodes"][edit_node]["inputs"][edit_input] = new_value
            expected["nodes"]["wait"] = {"type": "Wait", "inputs": {"seconds": 1.5, "value": link}}
            expected["nodes"][out_id]["inputs"][out_input] = {"node": "wait", "output": "value"}
            edited = page.evaluate("window.nodegraph.graph()")
            assert edited["nodes"] == expected["nodes"]

            # Run: the Wait node shows step progress, then every node finishes and the output shows.
            page.click("[data-testid=run-button]")
            page.wait_for_selector("[data-testid=node-status-wait][data-status=running]")
            page.wait_for_function(
                "() => /running \\d+\\/\\d+/.test(document.querySelector('[data-testid=node-status-wait]')?.textContent ?? '')")
            page.wait_for_selector(f"[data-testid='node-status-{out_id}'][data-status=done]", timeout=30_000)
            assert re.match(r"done \d", page.inner_text("[data-testid=node-status-wait]"))
            if schemas["nodes"][original["nodes"][out_id]["type"]]["outputs"] and original["nodes"][out_id]["type"] == "ShowValue":
                page.wait_for_selector(f"[data-testid='node-output-{out_id}']")
                shown = page.inner_text(f"[data-testid='node-output-{out_id}']")
                assert shown.strip()
                if graph_path.name == "arithmetic.json":
                    assert shown.startswith(f"{new_value}x768 has")
            else:
                page.wait_for_selector(f"[data-testid='node-images-{out_id}'] img")
                page.wait_for_selector("[data-testid=gallery-item]")
            page.wait_for_selector("[data-testid=queue-panel] >> text=succeeded")
            toasts = page.locator("[data-testid=toast]")
            while toasts.count():  # dismiss them (a click each) so the screenshot shows the graph
                toasts.first.click()
            page.fill("[data-testid=palette-search]", "")
            page.click(".react-flow__controls-fitview")
            page.wait_for_timeout(200)
            target = SCREENSHOT if os.environ.get("NODEGRAPH_UPDATE_SCREENSHOT") else tmp_path / "editor.png"
            target.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(target))

            # A type-incompatible link is refused with the reason, and the graph is unchanged.
            src, output, dst, input_name, reason = _pick_bad_link(original, schemas)
            before = page.evaluate("window.nodegraph.graph()")
            _drag_link(page, f"[data-testid='handle-{src}-out-{output}']", f"[data-testid='handle-{dst}-in-{input_name}']")
            toast = page.locator("[data-testid=toast][data-kind=error]").first
            toast.wait_for()
            assert reason in toast.inner_text()
            assert page.evaluate("window.nodegraph.graph()") == before

            # Without its link the output node's input is missing: the server's error lands on that input.
            page.click(f"[data-testid='unlink-{out_id}-{out_input}']")
            page.click("[data-testid=run-button]")
            page.wait_for_selector(f"[data-testid='input-error-{out_id}-{out_input}']")
            page.wait_for_selector("[data-testid=error-banner]")
            page.keyboard.press("Control+z")  # undo the unlink
            assert page.evaluate("window.nodegraph.graph()") == before

            # Save again: the file plus exactly the edits (and a position for the new node).
            saved = _save(page)
            wait_ui = saved["ui"]["nodes"].pop("wait")
            if "ui" not in original and saved["ui"] == {"nodes": {}}:
                del saved["ui"]          # a graph saved without layout gains a ui section only for the added node
            assert isinstance(wait_ui["position"], list) and len(wait_ui["position"]) == 2
            assert saved == expected
        finally:
            browser.close()
    assert not errors, f"errors in the page: {errors}"
