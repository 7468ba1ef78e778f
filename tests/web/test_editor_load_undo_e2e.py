"""Opening graphs and undoing across runs and loads, in real Chromium (tests/web/test_editor_e2e.py's server).

`test_renamed_inputs_on_load`: a plugin whose node's 2.0 renamed an input (`renamed_inputs = {"pixel_size":
"block_size"}`, a real distribution on a temporary sys.path entry, loaded with NODEGRAPH_PLUGINS_ALLOW). A graph
saved before the rename opened in the editor showed `block_size` at its default (the saved value sat under
`pixel_size`) and Save wrote `pixel_size` back. Now, opened as a file, as the plugin's template and as the graph
kept across a reload (the tab's autosave written with the old names), the widget shows the saved value, the
link ends at the new input, a toast says what was renamed, and Save writes the new names; the graph runs.

`test_undo_after_a_push_and_a_load_inside_a_subgraph`, at 1024×700:
- txt2img with positions in the file, the decode node under the sampler: an edit, then Run (4 steps), so the
  sampler's preview and image push the decode node down (no undo step); Ctrl+Z undid the edit and put the decode
  node back at its old position, under the grown sampler. Now it stays pushed: no two nodes overlap after Ctrl+Z
  and after Ctrl+Shift+Z.
- a graph with a subgraph, the subgraph open and edited, then graphs/arithmetic.json loaded: Ctrl+Z showed the
  subgraph's inner node as if it were the whole graph. Now it shows the whole graph at the top level, with the
  subgraph's edit kept.

Every wait is on an event or a state with a generous ceiling, never a fixed sleep.
"""

from __future__ import annotations

import json
import os

import pytest

from .test_editor_e2e import ROOT, _save, _serve, _write_distribution, pytestmark  # noqa: F401
from .test_editor_history_open_e2e import BOXES, SETTLED, _laptop_page, _open_graph, _run_to_rendered
from .test_editor_layout_stays_e2e import _overlapping

RENAMED_PLUGIN = "renamed_e2e"
RENAMED_PLUGIN_SOURCE = '''
"""A node whose version 2.0 renamed its input pixel_size to block_size."""
from nodegraph import Input, Node, NodeInputs, Output, hookimpl


class Pixelate(Node):
    """Passes its block size on (enough to show which value the engine got)."""

    category = "e2e"
    version = "2.0.0"
    renamed_inputs = {"pixel_size": "block_size"}

    class Inputs(NodeInputs):
        block_size: int = Input(4, ge=1, le=64)

    outputs = (Output("value", "INT"),)

    def run(self, block_size):
        return {"value": block_size}


@hookimpl
def register_nodes():
    return [Pixelate]
'''

# Saved by version 1.x: a literal and a link under the old name.
OLD_GRAPH = {
    "format_version": 2,
    "metadata": {"title": "Old pixels"},
    "nodes": {
        "size": {"type": "Int", "inputs": {"value": 9}},
        "p": {"type": "Pixelate", "inputs": {"pixel_size": 12}},
        "q": {"type": "Pixelate", "inputs": {"pixel_size": {"node": "size", "output": "value"}}},
        "sum": {"type": "IntMath", "inputs": {"a": {"node": "p", "output": "value"}, "b": {"node": "q", "output": "value"},
                                              "op": "add"}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "sum", "output": "result"}}},
    },
    "ui": {"nodes": {"size": {"position": [0, 300]}, "p": {"position": [0, 0]}, "q": {"position": [400, 300]},
                     "sum": {"position": [800, 0]}, "show": {"position": [1200, 0]}}},
}


def _expect_renamed(page) -> None:
    """The old graph as the editor now shows it: the saved value in the new input's widget, the link at the new input."""
    page.wait_for_selector("[data-testid='node-q']")
    assert page.input_value("[data-testid='widget-p-block_size']") == "12"
    assert "size.value" in page.inner_text("[data-testid='input-q-block_size']")
    assert page.locator(".ng-unknown-input").count() == 0
    nodes = page.evaluate("window.nodegraph.graph().nodes")
    assert nodes["p"]["inputs"] == {"block_size": 12}
    assert nodes["q"]["inputs"] == {"block_size": {"node": "size", "output": "value"}}


def test_renamed_inputs_on_load(tmp_path):
    """A graph written with a renamed input's old name opens (file, template, reload) and saves under the new name."""
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("the Python playwright package is missing: pip install playwright (no `playwright install`)")
    site = tmp_path / "site"
    _write_distribution(site, RENAMED_PLUGIN, RENAMED_PLUGIN_SOURCE)
    (site / "graphs").mkdir()
    (site / "graphs" / "old_pixels.json").write_text(json.dumps(OLD_GRAPH))   # the plugin's template
    # a one-module plugin's templates beside it count in a checkout (a pyproject.toml there), not in site-packages
    (site / "pyproject.toml").write_text(f"[project]\nname = '{RENAMED_PLUGIN}'\n")
    env = {k: v for k, v in os.environ.items() if k not in ("NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD", "NODEGRAPH_PLUGINS_DENY")}
    env["NODEGRAPH_PLUGINS_ALLOW"] = RENAMED_PLUGIN
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    old_path = tmp_path / "old_pixels.json"
    old_path.write_text(json.dumps(OLD_GRAPH))
    errors: list[str] = []
    with _serve(tmp_path, env=env) as url, sync_api.sync_playwright() as playwright, _laptop_page(playwright, errors) as page:
        page.goto(url)
        page.wait_for_selector("[data-testid=connection-status][data-status=connected]")
        page.wait_for_selector("[data-testid=palette-item-Pixelate]")

        # A file.
        _open_graph(page, old_path, OLD_GRAPH)
        _expect_renamed(page)
        toast = page.locator("[data-testid=toast]", has_text="renamed by a newer version")
        toast.wait_for()
        assert "p.pixel_size → block_size" in toast.inner_text() and "q.pixel_size → block_size" in toast.inner_text()
        saved = _save(page)
        assert saved["nodes"]["p"]["inputs"] == {"block_size": 12}
        assert saved["nodes"]["q"]["inputs"] == {"block_size": {"node": "size", "output": "value"}}
        page.click("[data-testid=run-button]")
        page.wait_for_selector("[data-testid=node-status-show][data-status=done]", timeout=60_000)
        assert page.inner_text("[data-testid=node-output-show]").strip() == "21"   # 12 + 9

        # The plugin's template.
        page.set_input_files("[data-testid=load-input]", str(ROOT / "graphs" / "arithmetic.json"))
        page.wait_for_selector("[data-testid='node-pixels']")
        page.click("[data-testid=templates-button]")
        page.click(f"[data-testid='template-{RENAMED_PLUGIN}/old_pixels.json']")
        _expect_renamed(page)

        # The graph kept across a reload, written with the old names (as an editor before this one kept it).
        page.evaluate("window.nodegraph.app.flushAutosave()")   # kept now: no later write replaces the text below
        page.evaluate("(graph) => sessionStorage.setItem('nodegraph.tab.autosave.v1', JSON.stringify({autosave: 1, graph}))",
                      OLD_GRAPH)
        page.reload()
        page.wait_for_selector("[data-testid=connection-status][data-status=connected]")
        _expect_renamed(page)
    assert not errors, f"errors in the page: {errors}"


SUBGRAPH_GRAPH = {
    "format_version": 2,
    "nodes": {
        "k": {"type": "Int", "inputs": {"value": 6}},
        "g": {"type": "subgraph:inner", "inputs": {"x": {"node": "k", "output": "value"}}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "g", "output": "result"}}},
    },
    "subgraphs": {"inner": {
        "inputs": {"x": {}},
        "outputs": {"result": {"node": "mul", "output": "result"}},
        "nodes": {"mul": {"type": "IntMath", "inputs": {"a": {"node": "$inputs", "output": "x"}, "b": 7, "op": "multiply"}}},
    }},
    "ui": {"nodes": {"k": {"position": [0, 0]}, "g": {"position": [400, 0]}, "show": {"position": [800, 0]}}},
}


def test_undo_after_a_push_and_a_load_inside_a_subgraph(tmp_path):
    """Ctrl+Z after a Run's push leaves no node under a grown one; Ctrl+Z of a load made in a subgraph shows the whole graph."""
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("the Python playwright package is missing: pip install playwright (no `playwright install`)")
    placed = json.loads((ROOT / "graphs" / "txt2img.json").read_text())
    placed["ui"] = {"nodes": {node: {"position": xy} for node, xy in {
        "checkpoint": [0, 60], "latent": [380, 0], "negative": [380, 200], "prompt": [380, 370],
        "sampler": [760, 0], "decode": [760, 420], "save": [1140, 0]}.items()}}
    placed["nodes"]["sampler"]["inputs"]["steps"] = 4
    placed_path = tmp_path / "txt2img_placed.json"
    placed_path.write_text(json.dumps(placed))
    subgraph_path = tmp_path / "with_subgraph.json"
    subgraph_path.write_text(json.dumps(SUBGRAPH_GRAPH))
    arithmetic_path = ROOT / "graphs" / "arithmetic.json"
    arithmetic = json.loads(arithmetic_path.read_text())
    errors: list[str] = []
    with _serve(tmp_path) as url, sync_api.sync_playwright() as playwright, _laptop_page(playwright, errors) as page:
        page.goto(url)
        page.wait_for_selector("[data-testid=connection-status][data-status=connected]")
        page.wait_for_selector("[data-testid^=palette-item-]")

        # An edit, a Run whose results push the decode node down, then Ctrl+Z and Ctrl+Shift+Z.
        _open_graph(page, placed_path, placed)
        page.wait_for_function(SETTLED, polling=100, timeout=30_000)
        width = placed["nodes"]["latent"]["inputs"]["width"]
        page.fill("[data-testid='widget-latent-width']", str(width * 2))
        page.keyboard.press("Tab")
        page.wait_for_function("(w) => window.nodegraph.graph().nodes.latent.inputs.width === w", arg=width * 2)
        page.wait_for_function(SETTLED, polling=100, timeout=30_000)
        before = page.evaluate(BOXES)
        _run_to_rendered(page, 1, 0)
        page.wait_for_function(SETTLED, polling=100, timeout=30_000)
        ran = page.evaluate(BOXES)
        sampler = ran["nodes"]["sampler"]
        assert ran["nodes"]["decode"][1] >= sampler[1] + sampler[3] > before["nodes"]["decode"][1], (before, ran)  # pushed
        page.click(".react-flow__pane", position={"x": 5, "y": 5})   # the keys go to the canvas
        page.keyboard.press("Control+z")
        page.wait_for_function("(w) => window.nodegraph.graph().nodes.latent.inputs.width === w", arg=width)
        page.wait_for_function(SETTLED, polling=100, timeout=30_000)
        undone = page.evaluate(BOXES)
        page.screenshot(path=str(tmp_path / "undo-after-push.png"))
        assert _overlapping(undone) == [], f"after Ctrl+Z, nodes overlap: {undone}"   # was [('decode', 'sampler')]
        page.keyboard.press("Control+Shift+z")
        page.wait_for_function("(w) => window.nodegraph.graph().nodes.latent.inputs.width === w", arg=width * 2)
        page.wait_for_function(SETTLED, polling=100, timeout=30_000)
        assert _overlapping(page.evaluate(BOXES)) == []

        # A subgraph opened and edited, then another graph loaded: Ctrl+Z gives the whole graph back.
        _open_graph(page, subgraph_path, SUBGRAPH_GRAPH)
        page.click("[data-testid=open-subgraph-g]")
        page.wait_for_selector("[data-testid=subgraph-bar]")
        page.fill("[data-testid='widget-mul-b']", "8")
        page.keyboard.press("Tab")
        page.wait_for_function("() => window.nodegraph.graph().nodes.mul.inputs.b === 8")
        _open_graph(page, arithmetic_path, arithmetic)
        assert page.locator("[data-testid=subgraph-bar]").count() == 0
        page.click(".react-flow__pane", position={"x": 5, "y": 5})
        page.keyboard.press("Control+z")
        page.wait_for_selector("[data-testid='node-g']")   # before: only the inner node "mul", as if it were the graph
        graph = page.evaluate("window.nodegraph.graph()")
        assert sorted(graph["nodes"]) == ["g", "k", "show"], graph["nodes"]
        assert graph["subgraphs"]["inner"]["nodes"]["mul"]["inputs"]["b"] == 8
        assert page.locator("[data-testid='node-mul']").count() == 0
        assert page.locator("[data-testid=subgraph-bar]").count() == 0
    assert not errors, f"errors in the page: {errors}"
