"""`api.patch_model` errors said of the plugin's node: the input a wrong key came from, not an input `patches`
the node does not have (a plugin author's finding)."""

from __future__ import annotations

from typing import Any

import pytest

from nodegraph import Input, Node, NodeInputs, Output, Session, api
from nodegraph.errors import NodeExecutionError


class TargetPatch(Node):
    """A plugin's FreeU-like node: patches the layer its `target` input names."""

    class Inputs(NodeInputs):
        model: Any = Input(port="MODEL")
        target: str = Input("output_blocks.1")

    outputs = (Output("text", "STRING"),)

    def run(self, model, target) -> dict:
        patch = api.make_patch(self.context, "layer", name="mine", target=target, wrapper=lambda f, h, call: f(h))
        api.patch_model(self.context, model, patch)
        return {"text": "patched"}


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Session:
    return Session(plugins=[TargetPatch], output_dir=tmp_path_factory.mktemp("out"))


def test_a_wrong_patch_target_names_the_input_it_came_from(session):
    """The key typed into the node's `target` input is refused at `target`, naming the patch and valid keys."""
    graph = {"format_version": 2, "nodes": {
        "ckpt": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world.safetensors"}},
        "patch": {"type": "TargetPatch", "inputs": {"model": {"node": "ckpt", "output": "model"},
                                                    "target": "output_blocks.99"}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "patch", "output": "text"}}}}}
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph)
    error = info.value.exception
    assert info.value.node_id == "patch" and error.input == "target"
    assert "patch 'mine'" in str(error) and "output_blocks.99" in str(error) and "did you mean" in str(error)
    graph["nodes"]["patch"]["inputs"]["target"] = "output_blocks.1"
    assert session.run(graph).outputs["show"]["value"] == "patched"
