"""A clip SaveVideo wrote opens in the editor as the graph that made it (web/src/graph/mediaGraph.ts), in Chromium.

A media creator's pass: Load of an MP4 said "not valid JSON: Unexpected token '\\x00'", of a GIF "not a graph",
though SaveVideo writes the graph into both (its comment field; nodegraph/media_graph.py reads it for the CLI).
"""

from __future__ import annotations

import io
import json

from PIL import Image

from .test_editor_e2e import editor_page, pytestmark  # noqa: F401
from ..engine.test_media_graph import mp4

GRAPH = {"format_version": 2, "metadata": {"title": "From a clip"},
         "nodes": {"seven": {"type": "Int", "inputs": {"value": 7}},
                   "show": {"type": "ShowValue", "inputs": {"value": {"node": "seven", "output": "value"}}}}}


def test_an_mp4_and_a_gif_open_as_their_graph_and_a_plain_gif_says_why_not(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(mp4(json.dumps(GRAPH)))
    for name, comment in (("clip.gif", json.dumps({**GRAPH, "metadata": {"title": "From a GIF"}})), ("plain.gif", None)):
        out = io.BytesIO()
        Image.new("P", (4, 4)).save(out, "GIF", **({"comment": comment} if comment else {}))
        (tmp_path / name).write_bytes(out.getvalue())
    with editor_page(tmp_path) as (page, errors):
        page.set_input_files("[data-testid=load-input]", str(tmp_path / "clip.mp4"))
        page.wait_for_function("() => Object.keys(window.nodegraph.graph().nodes).includes('seven')")
        assert page.evaluate("window.nodegraph.graph().metadata.title") == "From a clip"
        page.set_input_files("[data-testid=load-input]", str(tmp_path / "clip.gif"))
        page.wait_for_function("() => window.nodegraph.graph().metadata.title === 'From a GIF'")
        page.set_input_files("[data-testid=load-input]", str(tmp_path / "plain.gif"))
        page.wait_for_function("() => document.body.innerText.includes('carries no graph')")
    assert not errors, errors
