"""A ported ComfyUI pack in real Chromium: its class names find its nodes, a pass-through preview shows no JSON.

`test_plugin_comfyui_names_search_and_pass_through_preview` serves an installed plugin (a real distribution on a
temporary sys.path entry) whose `register_comfyui_classes` maps "FaceDetailer" to its Object Detailer and whose
Preview Bridge is an output node that saves its image and passes it on (Impact's PreviewBridge). A ported pack's
user typed "FaceDetailer" in the palette and got "no good match — letters in order | Object Detailer"; after a run
the Preview Bridge showed `{"images": {"type": "Tensor", "shape": [1,64,64,3], ...}}` as text beside its preview.
Now the class name is a strong hit (first, and Enter adds it), and the node shows its picture and no text.
"""

from __future__ import annotations

import json
import os

import pytest

from .test_editor_e2e import CHROMIUM_FLAGS, _chromium, _serve, _write_distribution, open_editor, pytestmark  # noqa: F401

PLUGIN = "portpack_e2e"
PLUGIN_SOURCE = '''
from typing import Any

import torch

from nodegraph import Input, Node, NodeInputs, Output, api, hookimpl


class GrayImage(Node):
    """A small gray IMAGE (no model needed)."""

    class Inputs(NodeInputs):
        size: int = Input(16, ge=1, le=64)

    outputs = (Output("image", "IMAGE"),)

    def run(self, size):
        return {"image": torch.full((1, size, size, 3), 0.5)}


class ObjectDetailer(Node):
    """Stands in for a ported Impact detailer."""

    display_name = "Object Detailer"

    class Inputs(NodeInputs):
        image: Any = Input(port="IMAGE")

    outputs = (Output("image", "IMAGE"),)

    def run(self, image):
        return {"image": image}


class PreviewBridge(Node):
    """Preview images in the editor and pass them on (Impact 'PreviewBridge')."""

    display_name = "Preview Bridge"
    output_node = True

    class Inputs(NodeInputs):
        images: Any = Input(port="IMAGE")

    outputs = (Output("images", "IMAGE"),)

    def run(self, images):
        files = api.save_image(self.context, images, "bridge", embed_graph=False)
        return {"images": images, "files": files}


@hookimpl
def register_nodes():
    return [GrayImage, ObjectDetailer, PreviewBridge]


@hookimpl
def register_comfyui_classes():
    return {"FaceDetailer": api.ComfyUIClass("ObjectDetailer", ("image",)),
            "PreviewBridge": api.ComfyUIClass("PreviewBridge", ("images",))}
'''

GRAPH = {
    "format_version": 2,
    "metadata": {"title": "Bridge"},
    "nodes": {
        "gray": {"type": f"{PLUGIN}.GrayImage", "inputs": {"size": 16}},
        "bridge": {"type": f"{PLUGIN}.PreviewBridge", "inputs": {"images": {"node": "gray", "output": "image"}}},
    },
    "ui": {"nodes": {"gray": {"position": [0, 0]}, "bridge": {"position": [380, 0]}}},
}


def test_plugin_comfyui_names_search_and_pass_through_preview(tmp_path):
    """"FaceDetailer" in the palette → Object Detailer first (Enter adds it); Preview Bridge's run shows no JSON."""
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("the Python playwright package is missing: pip install playwright (no `playwright install`)")
    site = tmp_path / "site"
    _write_distribution(site, PLUGIN, PLUGIN_SOURCE)
    env = {k: v for k, v in os.environ.items() if k != "NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD"}
    env["NODEGRAPH_PLUGINS_ALLOW"] = PLUGIN
    env.pop("NODEGRAPH_PLUGINS_DENY", None)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    graph_file = tmp_path / "bridge.json"
    graph_file.write_text(json.dumps(GRAPH))
    errors: list[str] = []

    with _serve(tmp_path, (), env) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_FLAGS)
        try:
            page = open_editor(browser, url, errors, viewport={"width": 1400, "height": 900})
            # the palette finds the plugin's node by its ComfyUI class name, as a good match
            search = page.locator("[data-testid=palette-search]")
            search.fill("FaceDetailer")
            first = page.locator("[data-testid^=palette-item-]").first
            first.wait_for()
            assert first.get_attribute("data-testid") == "palette-item-ObjectDetailer", page.inner_text("[data-testid=palette]")
            assert "no good match" not in page.inner_text("[data-testid=palette]").lower()
            before = page.evaluate("() => Object.keys(window.nodegraph.graph().nodes).length")
            search.press("Enter")
            page.wait_for_function(f"() => Object.keys(window.nodegraph.graph().nodes).length === {before + 1}")
            added = page.evaluate("() => Object.values(window.nodegraph.graph().nodes).map((n) => n.type)")
            assert any(t.endswith("ObjectDetailer") for t in added), added

            # a pass-through output node: its picture, and no JSON description of the tensor it passes on
            page.set_input_files("[data-testid=load-input]", str(graph_file))
            page.wait_for_selector("[data-testid=node-bridge]")
            page.click("[data-testid=run-button]")
            page.wait_for_selector("[data-testid=node-status-bridge][data-status=done]", timeout=120_000)
            page.wait_for_selector("[data-testid=node-files-bridge] [data-testid=output-file]")
            node_text = page.inner_text("[data-testid=node-bridge]")
            assert "Tensor" not in node_text and "shape" not in node_text, node_text
            assert page.locator("[data-testid=node-output-bridge]").count() == 0
            assert errors == []
        finally:
            browser.close()
