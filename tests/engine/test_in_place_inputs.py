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


class Sneaky(Node):
    """Changes its image in ways torch's version counter does not see (`how` says which)."""

    category = "test"

    class Inputs(NodeInputs):
        image: object = Input(port="IMAGE")
        how: str = Input("data")

    outputs = (Output("image", "IMAGE"),)

    def run(self, image, how):
        if how == "data":
            image.data.mul_(0)
        elif how == "data_assign":
            image.data = torch.zeros_like(image)
        elif how == "numpy":
            image.numpy()[...] = 0
        return {"image": image if how != "data_assign" else image.clone()}


class Nested(Node):
    """A CONDITIONING-like value four levels deep: [[{"k": {"t": tensor}}]]."""

    category = "test"

    class Inputs(NodeInputs):
        size: int = Input(4)

    outputs = (Output("value", "*"),)

    def run(self, size):
        return {"value": [[{"k": {"t": torch.ones(size)}}]]}


class ChangesNested(Node):
    category = "test"
    output_node = True

    class Inputs(NodeInputs):
        value: object = Input(port="*")

    outputs = (Output("total", "FLOAT"),)

    def run(self, value):
        value[0][0]["k"]["t"].zero_()
        return {"total": 0.0}


@hookimpl
def register_nodes():
    return [White, OnesLatent, HalveInPlace, HalveLatentInPlace, Halve, Brightest, Sneaky, Nested, ChangesNested]


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


@pytest.mark.parametrize("how", ["data", "data_assign", "numpy"])
def test_writes_the_version_counter_misses_are_caught_by_their_values(session, how):
    """`.data.mul_`, `.data = ...` and a write through `.numpy()` (cv2-style plugin code) do not move torch's
    version counter; the values sampled before and after the node show them (a hostile pass's finding)."""
    session.run(graph(None))
    sneaky = graph("HalveInPlace")
    sneaky["nodes"]["m"] = {"type": "Sneaky", "inputs": {"image": {"node": "w", "output": "image"}, "how": how}}
    with pytest.raises(NodeExecutionError, match="changed its input 'image' in place"):
        session.run(sneaky)
    assert session.run(graph(None)).outputs["b"]["value"] == 1.0


def test_a_tensor_four_levels_deep_is_watched(session):
    nested = {"format_version": 2, "nodes": {"n": {"type": "Nested", "inputs": {}},
                                             "c": {"type": "ChangesNested", "inputs": {"value": {
                                                 "node": "n", "output": "value"}}}}}
    with pytest.raises(NodeExecutionError, match="changed its input 'value' in place"):
        session.run(nested)
