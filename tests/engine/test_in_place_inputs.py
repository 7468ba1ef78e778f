"""A node that changes an input tensor in place changed its source's cached output: the next graph that reused
it from the cache saw the change (a plugin author's finding). Such a node now fails, naming the input, and the
source's cache entry is dropped."""

from __future__ import annotations

import sys

import pytest
import torch

from nodegraph import Input, Node, NodeExecutionError, NodeInputs, Output, Session, hookimpl


class White(Node):
    """A white 1×4×4 image."""

    category = "test"

    class Inputs(NodeInputs):
        size: int = Input(4)

    outputs = (Output("image", "IMAGE"),)

    def run(self, size):
        return {"image": torch.ones(1, size, size, 3)}


class HalveInPlace(Node):
    """Halves its image in place (what a node must not do)."""

    category = "test"

    class Inputs(NodeInputs):
        image: object = Input(port="IMAGE")

    outputs = (Output("image", "IMAGE"),)

    def run(self, image):
        image.mul_(0.5)
        return {"image": image}


class OnesLatent(Node):
    """A LATENT of ones."""

    category = "test"

    class Inputs(NodeInputs):
        size: int = Input(2)

    outputs = (Output("latent", "LATENT"),)

    def run(self, size):
        return {"latent": {"samples": torch.ones(1, 4, size, size)}}


class HalveLatentInPlace(Node):
    """Changes the samples inside a LATENT dict in place."""

    category = "test"

    class Inputs(NodeInputs):
        latent: object = Input(port="LATENT")

    outputs = (Output("latent", "LATENT"),)

    def run(self, latent):
        latent["samples"][0, 0] = 0.0
        return {"latent": latent}


class Halve(Node):
    """Halves its image (out of place: fine)."""

    category = "test"

    class Inputs(NodeInputs):
        image: object = Input(port="IMAGE")

    outputs = (Output("image", "IMAGE"),)

    def run(self, image):
        image = image.clone()
        image.mul_(0.5)
        return {"image": image}


class Brightest(Node):
    """The image's largest value."""

    category = "test"
    output_node = True

    class Inputs(NodeInputs):
        image: object = Input(port="IMAGE")

    outputs = (Output("value", "FLOAT"),)

    def run(self, image):
        return {"value": float(image.max())}


@hookimpl
def register_nodes():
    return [White, OnesLatent, HalveInPlace, HalveLatentInPlace, Halve, Brightest]


@pytest.fixture
def session():
    return Session(plugins=[sys.modules[__name__]])


def graph(middle: str | None) -> dict:
    nodes = {"w": {"type": "White", "inputs": {}}}
    source = {"node": "w", "output": "image"}
    if middle:
        nodes["m"] = {"type": middle, "inputs": {"image": source}}
        source = {"node": "m", "output": "image"}
    nodes["b"] = {"type": "Brightest", "inputs": {"image": source}}
    return {"format_version": 2, "nodes": nodes}


def test_a_node_changing_its_input_in_place_fails_and_the_cache_stays_right(session):
    assert session.run(graph(None)).outputs["b"]["value"] == 1.0       # White's image is now cached
    with pytest.raises(NodeExecutionError) as failure:
        session.run(graph("HalveInPlace"))
    message = str(failure.value)
    assert "changed its input 'image' in place" in message and "'w'" in message and ".clone()" in message
    # without the check this read 0.5: White's cached image had been halved
    assert session.run(graph(None)).outputs["b"]["value"] == 1.0


def test_a_tensor_inside_a_dict_input_is_watched_too(session):
    latent = {"format_version": 2, "nodes": {
        "e": {"type": "OnesLatent", "inputs": {}},
        "h": {"type": "HalveLatentInPlace", "inputs": {"latent": {"node": "e", "output": "latent"}}}}}
    with pytest.raises(NodeExecutionError, match="changed its input 'latent' in place"):
        session.run(latent, outputs=["h"])


def test_out_of_place_work_is_fine(session):
    assert session.run(graph("Halve")).outputs["b"]["value"] == 0.5
    assert session.run(graph(None)).outputs["b"]["value"] == 1.0
