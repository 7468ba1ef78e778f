"""RenderTinyWorld: a caption → the exact image the training data draws for it."""

from __future__ import annotations

import numpy as np
import pytest

from nodegraph import NodeExecutionError, Session
from nodes.training import world


def render_graph(caption: str, size: int = 64) -> dict:
    return {"format_version": 1, "nodes": {
        "render": {"type": "RenderTinyWorld", "inputs": {"caption": caption, "size": size}},
        "image": {"type": "ShowValue", "inputs": {"value": {"node": "render", "output": "image"}}},
        "text": {"type": "ShowValue", "inputs": {"value": {"node": "render", "output": "caption"}}}}}


def test_renders_the_scene_exactly_and_returns_the_canonical_caption():
    """Any spelling variant draws world.render's pixels; the caption comes back in template 0 form."""
    outputs = Session().run(render_graph("A LARGE blue star in the middle, on a grey background", 32)).outputs
    scene = world.parse_caption("a large blue star in the centre, on a gray background")
    image = outputs["image"]["value"]
    assert image.shape == (1, 32, 32, 3)
    assert np.array_equal((image[0].numpy() * 255).round().astype(np.uint8), world.render(scene, 32))
    assert outputs["text"]["value"] == world.caption(scene)


@pytest.mark.parametrize("caption", ["a cat on a sofa", "a medium red circle", "a red circle on a red background"])
def test_unreadable_captions_name_the_input_and_show_an_example(caption):
    """A caption that names no valid scene fails with an error naming `caption`, its unknown words, and an example."""
    with pytest.raises(NodeExecutionError) as info:
        Session().run(render_graph(caption))
    assert info.value.node_id == "render"
    assert "caption" in str(info.value) and "on a blue background" in str(info.value)
    if "medium" in caption:
        assert "'medium'" in str(info.value)


def test_partial_captions_draw_what_they_name_and_sample_the_rest():
    """'a red circle on a blue background' draws a red circle on blue; the seed picks its size and position."""
    graph = render_graph("a red circle on a blue background")
    first = Session().run(graph).outputs["text"]["value"]
    scene = world.parse_caption(first)
    assert (scene.single.shape, scene.single.colour, scene.background) == ("circle", "red", "blue")
    others = set()
    for seed in range(8):
        graph["nodes"]["render"]["inputs"]["seed"] = seed
        others.add(Session().run(graph).outputs["text"]["value"])
    assert len(others) > 1
