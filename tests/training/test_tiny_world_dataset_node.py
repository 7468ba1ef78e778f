"""TinyWorldDataset's shape_weights input: parsing, the dataset it gives, and errors that name the input."""

from __future__ import annotations

import pytest
import torch

from nodegraph import GraphValidationError, NodeExecutionError, Session
from nodes.training.world import TinyWorld

torch.set_num_threads(1)


def dataset_graph(shape_weights, count: int = 24, link: bool = False) -> dict:
    nodes = {"data": {"type": "TinyWorldDataset", "inputs": {"seed": 2, "count": count, "size": 16}},
             "show": {"type": "ShowValue", "inputs": {"value": {"node": "data", "output": "dataset"}}}}
    if link:   # a linked value is not checked by graph validation; the node itself must refuse it
        nodes["text"] = {"type": "String", "inputs": {"value": shape_weights}}
        nodes["data"]["inputs"]["shape_weights"] = {"node": "text", "output": "value"}
    elif shape_weights is not None:
        nodes["data"]["inputs"]["shape_weights"] = shape_weights
    return {"format_version": 1, "nodes": nodes}


def captions(dataset) -> list[str]:
    return [dataset[i][1] for i in range(len(dataset))]


def test_empty_shape_weights_give_the_dataset_of_before():
    """Leaving shape_weights out or empty gives the same images and captions as TinyWorld with no weights."""
    world = TinyWorld(seed=2, size=16, length=24)
    for value in (None, "", " ; "):
        dataset = Session().run(dataset_graph(value)).outputs["show"]["value"]
        assert captions(dataset) == [world.caption(i) for i in range(24)]
        expected = torch.stack([world[i][0] for i in range(24)])
        assert torch.equal(torch.stack([dataset[i][0] for i in range(24)]), expected)


def test_shape_weights_reach_the_world():
    """'Star: 3, ring: 0' (any case, ',' or ';') draws the dataset TinyWorld draws with {"star": 3, "ring": 0}."""
    world = TinyWorld(seed=2, size=16, length=24, shape_weights={"star": 3.0, "ring": 0.0})
    for text in ("Star: 3, ring: 0", "star:3;ring:0.0"):
        dataset = Session().run(dataset_graph(text)).outputs["show"]["value"]
        assert captions(dataset) == [world.caption(i) for i in range(24)]
    assert not any("ring" in text for text in captions(dataset))


BAD = [("moon: 3", "'moon: 3'"), ("star 3", "'star 3'"), ("star: -1", "'-1'"), ("star: lots", "'lots'"),
       ("star: inf", "'inf'"), ("star: 1; star: 2", "twice"),
       ("circle: 0; square: 0; triangle: 0; star: 0; ring: 0", "weight 0")]


@pytest.mark.parametrize("text, words", BAD)
def test_bad_shape_weights_fail_validation_naming_the_input(text, words):
    """An unknown shape, a missing ':', a negative, non-numeric or infinite weight, a repeat or all zeros is a
    validation error on input 'shape_weights' that says what is wrong."""
    errors = Session().validate(dataset_graph(text))
    assert [(e.node_id, e.input) for e in errors] == [("data", "shape_weights")]
    assert "'shape_weights'" in errors[0].message and words in errors[0].message
    with pytest.raises(GraphValidationError):
        Session().run(dataset_graph(text))


@pytest.mark.parametrize("text, words", BAD[:3])
def test_bad_linked_shape_weights_fail_in_the_node(text, words):
    """A bad value that arrives through a link fails when the node runs, naming 'shape_weights'."""
    with pytest.raises(NodeExecutionError) as info:
        Session().run(dataset_graph(text, link=True))
    assert info.value.node_id == "data"
    assert "shape_weights" in str(info.value) and words in str(info.value)


def test_a_dataset_larger_than_the_free_memory_is_refused_before_rendering(monkeypatch):
    """TinyWorldDataset count 20000 at size 256 allocated 3.7 GiB with no look at the free memory (a hostile pass;
    ImageScale and the other image nodes ask first). It asks too, and a refusal says what and how much."""
    from nodegraph import memory
    from nodegraph.errors import NodeOutOfMemory

    monkeypatch.setattr(memory, "system_memory", lambda: (2 * 1024**3, 16 * 1024**3))      # 2 GiB free
    monkeypatch.setenv(memory.RESERVE_ENV, "0")
    graph = dataset_graph("", count=4)
    graph["nodes"]["data"]["inputs"].update(count=20000, size=256)
    with pytest.raises(NodeExecutionError) as info:
        Session().run(graph)
    assert isinstance(info.value.exception, NodeOutOfMemory)
    assert "the dataset (20000 images of up to 256×256) needs about 3.7 GiB" in str(info.value.exception)
    graph["nodes"]["data"]["inputs"].update(count=8, size=32)
    Session().run(graph)
