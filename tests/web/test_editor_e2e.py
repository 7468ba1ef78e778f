"""The browser editor end to end: real server, real Chromium (headless), real graph.

`test_editor_load_edit_run_refuse_save` walks the whole loop a user does: open the editor, load a graph file,
save it unchanged (same JSON at the current format version), check it is laid out
without overlaps with readable (>= 12 px, uncut) labels, select all + copy + paste
(the copy lands clear of the originals) and undo, run the shipped graph as it is
(large result and preview, a history row with seed and thumbnail, no overlap after
the nodes grew) and screenshot it — to the test's temp folder, or to
docs/editor.png with NODEGRAPH_UPDATE_SCREENSHOT=1 (the README's picture) — then
add a Wait node from the palette and splice it in front of the output node (so
that step progress is visible), run again (the upstream comes from the cache),
try a type-incompatible link and see it refused with a reason, remove a required
link and see the server's validation error on that input, undo, edit widgets (a
number, the seed shown in full and its randomise/increment/fixed control, the
searchable sampler list, a prompt that grows; a seed of 2^64 − 1 kept exactly, 2^64
refused with a visible note) and save again: the file plus
exactly the edits, with the shown layout written once a node was added.

The graph is `graphs/txt2img.json` when it exists, else `graphs/arithmetic.json`;
`NODEGRAPH_E2E_GRAPH=path` picks another.

`test_editor_with_token_cookie_plugins_and_media_files` starts a server that
requires a token and loads three installed plugins: the example plugin, a
media one and a broken one (real distributions on a temporary sys.path entry;
the broken one raises at import). Without the token the page is refused; `/?token=T` sets the cookie and
redirects to `/`, and from then on the editor works with the token only in the
cookie: it connects, shows the broken plugin's problem (badge, notice, Plugins
panel with the fix), runs `graphs/arithmetic.json`, opens a graph written with
qualified node names (`example.MixColors`) as known nodes, and shows its text
output file (fetched from /files with the cookie) on the node and in the
gallery, then runs the media plugin's node and checks each kind in the browser:
the WAV plays in <audio controls> (its duration is read by Chromium), the
animated GIF "video" shows as an image, the OBJ mesh is a download link. Screenshot: the test's temp folder, or docs/editor-plugins.png with
NODEGRAPH_UPDATE_SCREENSHOT=1. Needs Chromium at /usr/bin/chromium
(or $CHROMIUM) and a built editor (web/dist) — skipped with the reason when
either is missing, except in CI (CI=true), where missing pieces are a failure —
and the Python `playwright` package (a test dependency; its browsers are not
used, so no `playwright install`).
"""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def _serve(tmp_path: Path, extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None):
    """A real `nodegraph serve` on a free port with a temporary data dir; yields the URL it prints."""
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nodegraph.server", "--port", "0", "--data-dir", str(tmp_path / "data"),
         "--output-dir", str(tmp_path / "output"), "--input-dir", str(tmp_path / "input"), *extra_args],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
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


@pytest.fixture
def server_url(tmp_path):
    """A real `nodegraph serve` on a free port with a temporary data dir; yields its URL."""
    with _serve(tmp_path) as url:
        yield url


def open_editor(browser, url: str, errors: list[str], **context):
    """A new page of the editor at `url` (`context`: new_page's options, e.g. viewport), connected and showing the
    first-open template (load other graphs after it), its page errors collected in `errors`."""
    page = browser.new_page(**context)
    page.set_default_timeout(20_000)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    page.wait_for_selector("[data-testid=connection-status][data-status=connected]")
    page.wait_for_function("() => Object.keys(window.nodegraph.graph().nodes).includes('sampler')")
    return page


@contextlib.contextmanager
def editor_page(tmp_path: Path, serve_args: tuple[str, ...] = (), **context):
    """A real server on `tmp_path` (`serve_args`: its extra flags) and a connected editor page in Chromium:
    yields (page, errors: the page's errors); the browser and the server stop on the way out."""
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("the Python playwright package is missing: pip install playwright (no `playwright install`)")
    errors: list[str] = []
    with _serve(tmp_path, serve_args) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_FLAGS)
        try:
            yield open_editor(browser, url, errors, **context), errors
        finally:
            browser.close()


def _dismiss_toasts(page) -> None:
    """Click every toast away and wait until none is left.

    The clicks are dispatched in the page, not through Playwright's actionable click: a toast can
    time out on its own between "there is one" and "click it", and a Playwright click then waits
    for an element that will never come back (CI failed that way once).
    """
    page.wait_for_function("""() => {
        document.querySelectorAll('[data-testid=toast]').forEach((toast) => toast.click());
        return !document.querySelector('[data-testid=toast]');
    }""", timeout=30_000)


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


READABILITY = """() => {
  const px = (el) => parseFloat(getComputedStyle(el).fontSize);
  const small = [...document.querySelectorAll('.ng-node .ng-node-title, .ng-node .ng-port-name')].filter((el) => px(el) < 12);
  const cut = [...document.querySelectorAll('.ng-node .ng-input-line > .ng-port-name, .ng-node .ng-node-title')]
    .filter((el) => el.scrollWidth > el.clientWidth + 1).map((el) => el.textContent);
  return {small: small.length, cut};
}"""
OVERLAPS = """() => {
  const boxes = [...document.querySelectorAll('.react-flow__node-schema')].map((e) => [e.dataset.id, e.getBoundingClientRect()]);
  const out = [];
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const [a, r] = boxes[i], [b, s] = boxes[j];
    if (r.left < s.right - 1 && s.left < r.right - 1 && r.top < s.bottom - 1 && s.top < r.bottom - 1) out.push(a + '/' + b);
  }
  return out;
}"""


def _current(graph: dict) -> dict:
    """A graph file as the editor saves it: the same JSON at the current format version (1 → 2 changes nothing else)."""
    return {**graph, "format_version": 2}


def test_editor_load_edit_run_refuse_save(server_url, tmp_path):
    """Load, round-trip save, paste without piling, readable nodes, clean run + screenshot, history, splice a Wait node, refusals, widgets, save."""
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
            page.set_default_timeout(20_000)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(server_url)
            page.wait_for_selector("[data-testid=connection-status][data-status=connected]")
            page.wait_for_selector("[data-testid^=palette-item-]")
            schemas = page.evaluate("window.nodegraph.session().schemas")

            # Load the file; every node appears, laid out without overlaps; saving without edits gives the same JSON.
            page.set_input_files("[data-testid=load-input]", str(graph_path))
            for node_id in original["nodes"]:
                page.wait_for_selector(f"[data-testid='node-{node_id}']")
            assert _save(page) == _current(original)
            assert page.evaluate(OVERLAPS) == []
            readable = page.evaluate(READABILITY)
            assert readable == {"small": 0, "cut": []}, f"text under 12 px or cut labels: {readable}"

            # Select all, copy, paste: the copy keeps the shown arrangement, clear of the originals; then undo.
            page.click(".ng-brand")   # focus the page outside any field
            page.keyboard.press("Control+a")
            page.keyboard.press("Control+c")
            page.keyboard.press("Control+v")
            page.wait_for_function(f"() => Object.keys(window.nodegraph.graph().nodes).length === {2 * len(original['nodes'])}")
            page.click(".react-flow__controls-fitview")
            page.wait_for_function("() => (" + OVERLAPS + ")().length === 0")
            page.keyboard.press("Control+z")
            page.wait_for_function(f"() => Object.keys(window.nodegraph.graph().nodes).length === {len(original['nodes'])}")
            assert _save(page) == _current(original)

            # Run the shipped graph as it is: the output image, large; a history row with time, seed, thumbnail.
            out_id = next(i for i, n in original["nodes"].items() if schemas["nodes"][n["type"]]["output_node"])
            page.click("[data-testid=run-button]")
            is_image_graph = original["nodes"][out_id]["type"] != "ShowValue"
            # Generous ceilings: sampling takes ~20-120 s on a shared CPU.
            page.wait_for_selector(f"[data-testid='node-status-{out_id}'][data-status=done]", timeout=300_000)
            if is_image_graph:
                result = page.locator(f"[data-testid='node-files-{out_id}'] [data-kind=image] img")
                result.wait_for()
                page.wait_for_function(f"() => document.querySelector(\"[data-testid='node-files-{out_id}'] img\")?.naturalWidth > 0")
                assert page.evaluate("(el) => el.clientWidth", result.element_handle()) >= 250, "the result must be large"
                preview = page.locator("[data-testid^=node-preview-]").first
                if preview.count():
                    assert page.evaluate("(el) => el.clientWidth", preview.element_handle()) >= 250, "the live preview must be large"
                page.wait_for_selector("[data-testid=gallery-item]")
                page.wait_for_selector("[data-testid^=history-thumb-]", timeout=30_000)
                seeds = [v for n in original["nodes"].values() for k, v in (n.get("inputs") or {}).items() if k == "seed"]
                if seeds:
                    page.wait_for_selector(f"[data-testid^=history-seed-] >> text=seed {seeds[0]}", timeout=30_000)
            page.wait_for_selector("[data-testid^=history-row-][data-status=succeeded]", timeout=30_000)
            page.wait_for_function("() => (" + OVERLAPS + ")().length === 0")  # nodes that grew pushed their neighbours
            _dismiss_toasts(page)  # so the screenshot shows the graph
            page.click(".react-flow__controls-fitview")
            page.wait_for_function("() => !document.querySelector('[data-testid=toast]')")
            target = SCREENSHOT if os.environ.get("NODEGRAPH_UPDATE_SCREENSHOT") else tmp_path / "editor.png"
            target.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(target))   # the shipped graph, unmodified, after its run (docs/editor.png)

            # Add a Wait node by dragging it from the palette onto empty canvas below the graph.
            page.fill("[data-testid=palette-search]", "wait")
            canvas = page.locator("[data-testid=canvas]").bounding_box()
            page.drag_and_drop("[data-testid=palette-item-Wait]", "[data-testid=canvas]",
                               target_position={"x": canvas["width"] * 0.45, "y": canvas["height"] - 170})
            page.wait_for_selector("[data-testid=node-wait]")
            page.fill("[data-testid=widget-wait-seconds]", "1.5")
            assert page.evaluate(OVERLAPS) == [], "a new node lands clear of the others"

            # Splice it in front of the output node: source → wait.value, wait.value → output input.
            out_input, link = next((k, v) for k, v in original["nodes"][out_id]["inputs"].items() if _is_link(v))
            _drag_link(page, f"[data-testid='handle-{link['node']}-out-{link['output']}']", "[data-testid=handle-wait-in-value]")
            _drag_link(page, "[data-testid=handle-wait-out-value]", f"[data-testid='handle-{out_id}-in-{out_input}']")
            expected = copy.deepcopy(_current(original))
            expected["nodes"]["wait"] = {"type": "Wait", "inputs": {"seconds": 1.5, "value": link}}
            expected["nodes"][out_id]["inputs"][out_input] = {"node": "wait", "output": "value"}
            assert page.evaluate("window.nodegraph.graph()")["nodes"] == expected["nodes"]

            # A second tab watches the run (it did not submit it): its Queue panel shows the progress,
            # its canvas nothing.
            watcher = browser.new_page(viewport={"width": 1600, "height": 900})
            watcher.set_default_timeout(20_000)
            watcher.on("pageerror", lambda exc: errors.append(str(exc)))
            watcher.goto(server_url)
            watcher.wait_for_selector("[data-testid=connection-status][data-status=connected]")
            watcher.evaluate("""() => {
                window.seen = {progress: [], running: 0};
                new MutationObserver(() => {
                    const line = document.querySelector('[data-testid^=queue-progress-]')?.textContent;
                    if (line) window.seen.progress.push(line);
                    window.seen.running += document.querySelectorAll('[data-status=running]').length;
                }).observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
            }""")

            # Run again: the upstream is cached, the Wait node shows step progress, then the output is done.
            page.click("[data-testid=run-button]")
            page.wait_for_selector("[data-testid=node-status-wait][data-status=running]", timeout=180_000)
            page.wait_for_function(
                "() => /running \\d+\\/\\d+/.test(document.querySelector('[data-testid=node-status-wait]')?.textContent ?? '')")
            watcher.wait_for_function("() => window.seen.progress.some((line) => /wait \\d+\\/\\d+/.test(line))",
                                     timeout=60_000)
            page.wait_for_selector(f"[data-testid='node-status-{out_id}'][data-status=done]", timeout=120_000)
            assert re.match(r"done \d", page.inner_text("[data-testid=node-status-wait]"))
            if original["nodes"][out_id]["type"] == "ShowValue":
                page.wait_for_selector(f"[data-testid='node-output-{out_id}']")
                shown = page.inner_text(f"[data-testid='node-output-{out_id}']")
                assert shown.strip()
            page.wait_for_selector("[data-testid=queue-panel] >> text=Nothing queued.")
            watcher.wait_for_selector("[data-testid=queue-panel] >> text=Nothing queued.")
            assert watcher.evaluate("window.seen.running") == 0, "a watched run never shows on the canvas"
            watcher.close()

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
            page.click(".ng-brand")
            page.keyboard.press("Control+z")  # undo the unlink
            assert page.evaluate("window.nodegraph.graph()") == before

            # Widgets: a number, the seed shown in full with its mode control, the searchable sampler list, a growing prompt.
            edit_node, edit_input, new_value = _pick_edit(original, schemas)
            page.fill(f"[data-testid='widget-{edit_node}-{edit_input}']", str(new_value))
            expected["nodes"][edit_node]["inputs"][edit_input] = new_value
            seed_nodes = [i for i, n in original["nodes"].items() if "seed" in (n.get("inputs") or {})]
            if seed_nodes:
                sid = seed_nodes[0]
                seed_box = f"[data-testid='widget-{sid}-seed']"
                page.fill(seed_box, "18446744073709551615")   # 2^64 - 1: kept digit for digit (beyond 2^53)
                assert page.evaluate("window.nodegraph.graph()")["nodes"][sid]["inputs"]["seed"] == 2 ** 64 - 1
                page.fill(seed_box, "1234567890123")
                assert page.evaluate(f"(() => {{ const e = document.querySelector(\"{seed_box}\"); return e.scrollWidth <= e.clientWidth; }})()"), \
                    "the seed box must show the whole value"
                page.press(seed_box, "Tab")
                page.fill(seed_box, "18446744073709551616")   # 2^64: refused, never a prefix of it; leaving the box says why
                page.press(seed_box, "Tab")                   # (and puts back the value from before this edit)
                note = page.inner_text(f"[data-testid='widget-note-{sid}-seed']")
                assert "must be ≤ 18446744073709551615" in note and "kept 1234567890123" in note, note
                assert page.input_value(seed_box) == "1234567890123"
                expected["nodes"][sid]["inputs"]["seed"] = 1234567890123
                mode = f"[data-testid='seed-mode-{sid}-seed']"
                assert page.get_attribute(mode, "data-mode") == "fixed"   # a loaded file reproduces its seed
                for want in ("randomize", "increment", "fixed"):
                    page.click(mode)
                    page.wait_for_selector(f"{mode}[data-mode={want}]")
                if "sampler" in original["nodes"][sid]["inputs"]:
                    page.click(f"[data-testid='widget-{sid}-sampler']")
                    page.fill(f"[data-testid='combo-filter-{sid}-sampler']", "heun")
                    page.keyboard.press("Enter")
                    page.wait_for_selector(f"[data-testid='widget-{sid}-sampler'][data-value=heun]")
                    expected["nodes"][sid]["inputs"]["sampler"] = "heun"
            prompts = [i for i, n in original["nodes"].items() if isinstance((n.get("inputs") or {}).get("text"), str)]
            if prompts:
                box = f"[data-testid='widget-{prompts[0]}-text']"
                height = page.locator(box).bounding_box()["height"]
                long_prompt = "a small red circle on the left,\non a blue background,\nwith a large green square\non the right"
                page.fill(box, long_prompt)
                page.wait_for_function(f"() => document.querySelector(\"{box}\").getBoundingClientRect().height > {height + 10}")
                expected["nodes"][prompts[0]]["inputs"]["text"] = long_prompt

            # Save again: the file plus exactly the edits; adding a node wrote the shown layout (a position for every node).
            saved = _save(page)
            ui_nodes = saved.pop("ui")["nodes"]
            assert set(ui_nodes) == set(expected["nodes"])
            assert all(isinstance(e["position"], list) and len(e["position"]) == 2 for e in ui_nodes.values())
            if seed_nodes:
                assert ui_nodes[seed_nodes[0]]["seed_modes"] == {"seed": "fixed"}
            expected.pop("ui", None)
            assert saved == expected
        finally:
            browser.close()
    assert not errors, f"errors in the page: {errors}"


# --- token cookie, plugin warnings, qualified names, text output files ------------------

TOKEN = "e2e-token-1234567890"
BROKEN_PLUGIN = "broken_e2e"

# A graph written with qualified node names only: two colours mixed half and half, saved as a JSON text file.
COLORS_GRAPH = {
    "format_version": 1,
    "metadata": {"title": "Colours"},
    "nodes": {
        "red": {"type": "example.HexColor", "inputs": {"hex": "#ff0000"}},
        "blue": {"type": "example.HexColor", "inputs": {"hex": "#0000ff"}},
        "mix": {"type": "example.MixColors", "inputs": {"a": {"node": "red", "output": "color"},
                                                        "b": {"node": "blue", "output": "color"}, "t": 0.5}},
        "save": {"type": "example.SaveColors", "inputs": {"a": {"node": "mix", "output": "color"},
                                                          "filename_prefix": "e2e_colors"}},
    },
    "ui": {"nodes": {"red": {"position": [0, 0]}, "blue": {"position": [0, 160]}, "mix": {"position": [260, 60]},
                     "save": {"position": [520, 60]}}},
}


MEDIA_PLUGIN = "media_e2e"
MEDIA_PLUGIN_SOURCE = '''
"""An output node writing one file of three kinds through nodegraph.api.save_files."""
import io
import math
import struct
import wave

from PIL import Image

from nodegraph import Input, Node, NodeInputs, api, hookimpl


def wav_bytes(seconds, rate=16000):
    frames = b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * 440 * i / rate)))
                      for i in range(int(seconds * rate)))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return buffer.getvalue()


class SaveMedia(Node):
    """A tone (WAV), a two-frame animated GIF and a one-triangle OBJ mesh."""

    category = "e2e"
    version = "1.0.0"
    output_node = True

    class Inputs(NodeInputs):
        seconds: float = Input(0.5, ge=0.1, le=2.0)

    outputs = ()

    def run(self, seconds):
        frames = [Image.new("RGB", (16, 12), color) for color in ((255, 0, 0), (0, 0, 255))]
        gif = lambda path: frames[0].save(path, save_all=True, append_images=frames[1:], duration=250, loop=0)
        return {"files": [
            *api.save_files(self.context, [wav_bytes(seconds)], kind="audio", prefix="tone", suffix=".wav",
                            fields={"duration": seconds, "sample_rate": 16000}),
            *api.save_files(self.context, [gif], kind="video", prefix="blink", suffix=".gif",
                            fields={"frames": 2, "fps": 4, "width": 16, "height": 12}),
            *api.save_files(self.context, ["v 0 0 0\\nv 1 0 0\\nv 0 1 0\\nf 1 2 3\\n"], kind="mesh",
                            prefix="triangle", suffix=".obj"),
        ]}


class TakeAudio(Node):
    """An input-folder audio file the editor uploads (upload="audio")."""

    category = "e2e"
    version = "1.0.0"
    output_node = True

    class Inputs(NodeInputs):
        file: str = Input(min_length=1, max_length=255, upload="audio")

    outputs = ()

    def run(self, file):
        return {}


@hookimpl
def register_nodes():
    return [SaveMedia, TakeAudio]
'''


def _wav_for_upload(seconds: float = 0.25, rate: int = 8000) -> bytes:
    """A quarter-second silent mono WAV."""
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(seconds * rate))
    return buffer.getvalue()


def _write_distribution(site: Path, name: str, source: str) -> None:
    """A real installed distribution on `site`: module `<name>_plugin` and a `nodegraph` entry point `name`."""
    info = site / f"{name}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (site / f"{name}_plugin.py").write_text(source)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[nodegraph]\n{name} = {name}_plugin\n")


def _plugin_site(tmp_path: Path) -> Path:
    """Installed distributions: a media plugin, and a plugin that raises at import."""
    site = tmp_path / "site"
    _write_distribution(site, BROKEN_PLUGIN, "raise RuntimeError('broken on purpose for the e2e test')\n")
    _write_distribution(site, MEDIA_PLUGIN, MEDIA_PLUGIN_SOURCE)
    return site


def test_editor_with_token_cookie_plugins_and_media_files(tmp_path):
    """Token only in the cookie: the editor connects, shows a broken plugin's fix, runs graphs, shows files by kind."""
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("the Python playwright package is missing: pip install playwright (no `playwright install`)")
    pytest.importorskip("nodegraph_example", reason="the example plugin is not installed (scripts/setup test installs it)")

    env = {k: v for k, v in os.environ.items() if k != "NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD"}
    env["NODEGRAPH_PLUGINS_ALLOW"] = f"example,{BROKEN_PLUGIN},{MEDIA_PLUGIN}"
    env.pop("NODEGRAPH_PLUGINS_DENY", None)
    env["PYTHONPATH"] = os.pathsep.join([str(_plugin_site(tmp_path)), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    arithmetic = ROOT / "graphs" / "arithmetic.json"
    colors_path = tmp_path / "colors.json"
    colors_path.write_text(json.dumps(COLORS_GRAPH, indent=2))
    errors: list[str] = []

    with _serve(tmp_path, ("--token", TOKEN), env) as printed_url, sync_api.sync_playwright() as playwright:
        base = printed_url.split("?", 1)[0]
        browser = playwright.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.set_default_timeout(20_000)
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            # Without the token the editor itself is refused; /?token=T trades it for a cookie and redirects to /.
            assert page.goto(base).status == 401
            response = page.goto(f"{base}?token={TOKEN}")
            assert response.ok and page.url == base, f"expected a redirect to {base}, got {page.url}"
            assert TOKEN not in page.evaluate("document.cookie"), "the token cookie must be HttpOnly"
            page.wait_for_selector("[data-testid=connection-status][data-status=connected]")

            # The broken plugin is reported: a red badge, a notice over the canvas, the panel with the fix.
            page.wait_for_selector("[data-testid=plugins-badge][data-level=error]")
            notice = page.locator("[data-testid=plugin-notice]")
            notice.wait_for()
            assert BROKEN_PLUGIN in notice.inner_text()
            page.screenshot(path=str(tmp_path / "editor-plugin-notice.png"))
            page.click("[data-testid=plugin-notice-show]")
            warning = page.locator(f"[data-testid=plugin-warning][data-plugin={BROKEN_PLUGIN}]")
            warning.wait_for()
            assert "broken on purpose" in warning.inner_text() and "Fix:" in warning.inner_text()
            page.wait_for_selector("[data-testid=plugin-loaded-example]")
            assert page.locator("[data-testid=plugin-notice]").count() == 0   # the open panel replaces the notice

            # graphs/arithmetic.json runs with the token only in the cookie.
            page.wait_for_selector("[data-testid^=palette-item-]")
            page.set_input_files("[data-testid=load-input]", str(arithmetic))
            page.wait_for_selector("[data-testid=node-show]")
            page.click("[data-testid=run-button]")
            page.wait_for_selector("[data-testid=node-status-show][data-status=done]", timeout=60_000)
            page.wait_for_selector("[data-testid=node-output-show]")
            assert page.inner_text("[data-testid=node-output-show]").startswith("512x768 has")

            # A graph written with qualified names opens as known nodes and runs; its text file shows by kind.
            page.set_input_files("[data-testid=load-input]", str(colors_path))
            page.wait_for_selector("[data-testid=node-save]")
            assert page.locator("[data-testid^=node-unknown-]").count() == 0
            assert page.evaluate("window.nodegraph.graph()")["nodes"] == COLORS_GRAPH["nodes"]
            page.click("[data-testid=run-button]")
            page.wait_for_selector("[data-testid=node-status-save][data-status=done]", timeout=60_000)
            text = page.locator("[data-testid=node-files-save] [data-testid=output-text]")
            page.wait_for_function(
                "() => document.querySelector('[data-testid=node-files-save] [data-testid=output-text]')"
                "?.textContent.includes('#800080')", timeout=30_000)
            assert json.loads(text.inner_text()) == {"colors": ["#800080"]}
            page.wait_for_selector("[data-testid=gallery-item][data-kind=text]")
            link = page.get_attribute("[data-testid=node-files-save] [data-testid=output-file-download]", "href")
            assert link.startswith("files/output/") and "token" not in link
            _dismiss_toasts(page)  # so the screenshot shows the graph
            page.click(".react-flow__controls-fitview")
            target = (ROOT / "docs" / "editor-plugins.png" if os.environ.get("NODEGRAPH_UPDATE_SCREENSHOT")
                      else tmp_path / "editor-plugins.png")
            page.screenshot(path=str(target))

            # Audio, an animated-GIF video and a mesh: each shown by its kind, fetched with the cookie.
            page.evaluate("window.nodegraph.load(%s)" % json.dumps(
                {"format_version": 1, "nodes": {"media": {"type": f"{MEDIA_PLUGIN}.SaveMedia", "inputs": {"seconds": 0.5}}}}))
            page.wait_for_selector("[data-testid=node-media]")
            page.click("[data-testid=run-button]")
            files = "[data-testid=node-files-media]"
            page.wait_for_selector(f"{files} [data-kind=audio][data-view=audio] audio", timeout=60_000)
            page.wait_for_function(  # Chromium fetched and decoded the WAV: its duration is known
                f"() => Math.abs(document.querySelector('{files} audio')?.duration - 0.5) < 0.01", timeout=30_000)
            page.wait_for_function(
                f"() => document.querySelector('{files} [data-kind=video][data-view=img] img')?.naturalWidth === 16",
                timeout=30_000)
            mesh = page.locator(f"{files} [data-kind=mesh][data-view=model3d] [data-testid=output-file-download]")
            assert mesh.get_attribute("download").endswith(".obj") and "triangle_" in mesh.inner_text()
            # The OBJ is drawn by three.js (fetched with the cookie; headless Chromium has WebGL via SwiftShader).
            page.wait_for_selector(f"{files} [data-testid=model3d]:not([data-state=loading])", timeout=30_000)
            view = page.locator(f"{files} [data-testid=model3d]")
            assert view.get_attribute("data-state") == "ready", view.inner_text()
            assert view.get_attribute("data-vertices") == "3" and view.locator("canvas").count() == 1
            for kind in ("audio", "video", "mesh"):
                page.wait_for_selector(f"[data-testid=gallery-item][data-kind={kind}]")
            # The mesh's gallery tile is a normal-size icon tile; a click opens it large in the 3D viewer.
            tile = page.locator("[data-testid=gallery-item][data-kind=mesh] [data-testid=output-file-open3d]")
            box = tile.bounding_box()
            assert box["width"] >= 50 and abs(box["height"] - box["width"]) < 2, box
            tile.click()
            large_view = "[data-testid=model3d-viewer] [data-testid=model3d]"
            page.wait_for_selector(f"{large_view}[data-state=ready]", timeout=30_000)
            large = page.locator(large_view)
            assert large.get_attribute("data-vertices") == "3" and large.bounding_box()["height"] > 400
            page.keyboard.press("Escape")
            page.wait_for_selector("[data-testid=model3d-viewer]", state="detached")
            page.screenshot(path=str(tmp_path / "editor-media.png"))

            # An audio input (upload="audio"): the picker takes audio, the server stores the WAV (named by what its
            # bytes are), the input holds the stored name and the node plays it.
            page.evaluate("window.nodegraph.load(%s)" % json.dumps(
                {"format_version": 1, "nodes": {"take": {"type": f"{MEDIA_PLUGIN}.TakeAudio", "inputs": {}}}}))
            picker = page.locator("[data-testid=upload-take-file]")
            assert picker.get_attribute("accept").startswith("audio/*")
            wav = tmp_path / "my tone.mp3"          # misnamed: the bytes are WAV
            wav.write_bytes(_wav_for_upload())
            picker.set_input_files(str(wav))
            page.wait_for_function("() => window.nodegraph.graph().nodes.take.inputs.file === 'my_tone.wav'")
            page.wait_for_function(
                "() => Math.abs(document.querySelector('[data-testid=upload-preview-take-file]')?.duration - 0.25) < 0.01",
                timeout=30_000)
            assert (tmp_path / "input" / "my_tone.wav").read_bytes() == wav.read_bytes()
        finally:
            browser.close()
    assert not errors, f"errors in the page: {errors}"
