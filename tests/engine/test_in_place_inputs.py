"""A node that changes an input in place (a tensor, or a dict or list it came in) changed its source's cached
output: the next graph that reused it from the cache saw the change (a plugin author's finding). Such a node now
fails, naming the input, and the source's cache entry is dropped. A list or dict default is each run's own copy."""

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
        elif how == "numpy_box":          # a 2×2 box: between the sampled values of a whole-image sample
            image.numpy()[:, 1:3, 1:3, :] = 0.5
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


class ChangesTheDict(Node):
    """Changes the LATENT dict it received (what ComfyUI nodes often do): `how` says how."""

    category = "test"

    class Inputs(NodeInputs):
        latent: object = Input(port="LATENT")
        how: str = Input("add")

    outputs = (Output("latent", "LATENT"),)

    def run(self, latent, how):
        if how == "add":
            latent["noise_mask"] = torch.ones(1, 1, 2, 2)
        elif how == "replace":
            latent["samples"] = latent["samples"] + 1
        elif how == "remove":
            del latent["samples"]
        elif how == "copy":               # the right way: a new dict
            latent = {**latent, "samples": latent["samples"] + 1, "noise_mask": torch.ones(1, 1, 2, 2)}
        return {"latent": latent}


class ChangesTheList(Node):
    category = "test"
    output_node = True

    class Inputs(NodeInputs):
        value: object = Input(port="*")

    outputs = (Output("total", "FLOAT"),)

    def run(self, value):
        value[0].append("more")
        return {"total": 0.0}


class OrderedLatent(Node):
    """A LATENT in an OrderedDict (a dict subclass)."""

    category = "test"

    class Inputs(NodeInputs):
        size: int = Input(2)

    outputs = (Output("latent", "LATENT"),)

    def run(self, size):
        from collections import OrderedDict

        return {"latent": OrderedDict(samples=torch.ones(1, 4, size, size))}


class PassThrough(Node):
    """Hands its LATENT on unchanged (as a Switch or Reroute does)."""

    category = "test"

    class Inputs(NodeInputs):
        latent: object = Input(port="LATENT")

    outputs = (Output("latent", "LATENT"),)

    def run(self, latent):
        return {"latent": latent}


class ChangesThenFails(Node):
    category = "test"
    output_node = True

    class Inputs(NodeInputs):
        latent: object = Input(port="LATENT")

    outputs = (Output("total", "FLOAT"),)

    def run(self, latent):
        latent["samples"] = latent["samples"] * 0
        raise ValueError("and then something else went wrong")


class TupleDefault(Node):
    category = "test"
    output_node = True

    class Inputs(NodeInputs):
        tags: object = Input(([],), port="*")
        nonce: int = Input(0)

    outputs = (Output("count", "INT"),)

    def run(self, tags, nonce):
        tags[0].append("x")
        return {"count": len(tags[0])}


class LatentKeys(Node):
    category = "test"
    output_node = True

    class Inputs(NodeInputs):
        latent: object = Input(port="LATENT")

    outputs = (Output("keys", "STRING"), Output("mean", "FLOAT"))

    def run(self, latent):
        return {"keys": ",".join(sorted(latent)), "mean": float(latent["samples"].mean())}


class AppendsToItsList(Node):
    """Appends to its list input's default (a mutable default: the Python classic)."""

    category = "test"
    output_node = True

    class Inputs(NodeInputs):
        tags: object = Input([], port="*")
        nonce: int = Input(0)

    outputs = (Output("count", "INT"),)

    def run(self, tags, nonce):
        tags.append("x")
        return {"count": len(tags)}


@hookimpl
def register_nodes():
    return [AppendsToItsList, White, OnesLatent, HalveInPlace, HalveLatentInPlace, Halve, Brightest, Sneaky, Nested, ChangesNested,
            ChangesTheDict, ChangesTheList, LatentKeys, OrderedLatent, PassThrough, ChangesThenFails, TupleDefault]


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


@pytest.mark.parametrize("how", ["data", "data_assign", "numpy", "numpy_box"])
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


def _dict_graph(how: str | None) -> dict:
    nodes = {"e": {"type": "OnesLatent", "inputs": {}}}
    if how is not None:
        nodes["c"] = {"type": "ChangesTheDict", "inputs": {"latent": {"node": "e", "output": "latent"}, "how": how}}
    nodes["k"] = {"type": "LatentKeys", "inputs": {"latent": {"node": "e", "output": "latent"}}}
    return {"format_version": 2, "nodes": nodes}


@pytest.mark.parametrize("how, said", [("add", "added the key 'noise_mask'"), ("replace", "set the key 'samples'"),
                                       ("remove", "removed the key 'samples'")])
def test_a_node_changing_the_dict_it_received_fails_and_the_cache_stays_right(session, how, said):
    """`latent["noise_mask"] = ...; return latent` (the usual ComfyUI habit) changed OnesLatent's cached LATENT:
    the next run read a key it never made, or samples of 2 instead of 1 (a plugin author's finding)."""
    assert session.run(_dict_graph(None)).outputs["k"] == {"keys": "samples", "mean": 1.0}
    with pytest.raises(NodeExecutionError) as failure:
        session.run(_dict_graph(how), outputs=["c"])
    message = str(failure.value)
    assert "changed its input 'latent' in place" in message and said in message and "{**latent" in message
    assert session.run(_dict_graph(None)).outputs["k"] == {"keys": "samples", "mean": 1.0}


def test_a_node_making_a_new_dict_is_fine(session):
    assert float(session.run(_dict_graph("copy"), outputs=["c"]).outputs["c"]["latent"]["samples"].mean()) == 2.0
    assert session.run(_dict_graph(None)).outputs["k"] == {"keys": "samples", "mean": 1.0}


def test_a_list_inside_an_input_is_watched(session):
    nested = {"format_version": 2, "nodes": {"n": {"type": "Nested", "inputs": {}},
                                             "c": {"type": "ChangesTheList", "inputs": {"value": {
                                                 "node": "n", "output": "value"}}}}}
    with pytest.raises(NodeExecutionError, match="changed the items of the list it received"):
        session.run(nested)


def test_a_list_default_is_the_nodes_own_copy_each_run(session):
    """A node appending to its `Input([])` default got 1, 2, 3 in successive runs (and a new Session in the
    process 4): the default itself grew, and with it the cache key (a plugin author's finding)."""
    def count(nonce: int) -> int:
        return session.run({"format_version": 2, "nodes": {"a": {"type": "AppendsToItsList", "inputs": {
            "nonce": nonce}}}}).outputs["a"]["count"]

    assert [count(n) for n in range(3)] == [1, 1, 1]
    assert AppendsToItsList.spec.inputs["tags"].default == []
    graph = session.load({"format_version": 2, "nodes": {"a": {"type": "AppendsToItsList", "inputs": {"nonce": 7}}}})
    assert session.run(graph).outputs["a"]["count"] == 1
    session.cache.clear()
    assert session.run(graph).outputs["a"]["count"] == 1      # the same Graph object, compiled once


def _chain(source: str, *middle: str, last: str = "LatentKeys", how: str | None = None) -> dict:
    nodes = {"e": {"type": source, "inputs": {}}}
    previous = "e"
    for index, kind in enumerate(middle):
        nodes[f"m{index}"] = {"type": kind, "inputs": {"latent": {"node": previous, "output": "latent"},
                                                       **({"how": how} if how and kind == "ChangesTheDict" else {})}}
        previous = f"m{index}"
    nodes["k"] = {"type": last, "inputs": {"latent": {"node": previous, "output": "latent"}}}
    return {"format_version": 2, "nodes": nodes}


def test_dict_subclasses_are_watched_as_dicts(session):
    """`type(value) in (dict, list)` let an OrderedDict (and its tensors) through unwatched (a re-test)."""
    session.run(_chain("OrderedLatent"))
    with pytest.raises(NodeExecutionError, match="set the key 'samples'"):
        session.run(_chain("OrderedLatent", "ChangesTheDict", how="replace"), outputs=["m0"])
    assert session.run(_chain("OrderedLatent")).outputs["k"]["mean"] == 1.0


def test_a_change_through_a_pass_through_node_drops_the_makers_cache_entry_too(session):
    """Make → PassThrough → a node changing the dict: only PassThrough's entry was dropped, and OnesLatent's, the
    very same dict, stayed changed in the cache (a re-test)."""
    assert session.run(_chain("OnesLatent")).outputs["k"]["mean"] == 1.0
    with pytest.raises(NodeExecutionError, match="set the key 'samples'"):
        session.run(_chain("OnesLatent", "PassThrough", "ChangesTheDict", how="replace"), outputs=["m1"])
    assert session.run(_chain("OnesLatent")).outputs["k"]["mean"] == 1.0


def test_a_node_that_changes_an_input_and_then_fails_leaves_the_cache_right(session):
    """The check ran only after a successful run: a node that changed its input and then raised left the change in
    the cache (a re-test). Its own error is reported; the changed entries are dropped."""
    assert session.run(_chain("OnesLatent")).outputs["k"]["mean"] == 1.0
    with pytest.raises(NodeExecutionError, match="something else went wrong"):
        session.run(_chain("OnesLatent", last="ChangesThenFails"))
    assert session.run(_chain("OnesLatent")).outputs["k"]["mean"] == 1.0


def test_a_tuple_default_holding_a_list_is_copied_too(session):
    def count(nonce: int) -> int:
        return session.run({"format_version": 2, "nodes": {"t": {"type": "TupleDefault", "inputs": {
            "nonce": nonce}}}}).outputs["t"]["count"]

    assert [count(n) for n in range(3)] == [1, 1, 1]


def test_a_caller_changing_a_result_in_place_does_not_change_later_runs(session, caplog):
    """`session.run` hands out the cache's own tensors: `image.mul_(0)` on a result made the next run's cached
    White image black (a stranger's CLI / Python pass). The entry notices its tensor moved and the node runs again."""
    g = {"format_version": 2, "nodes": {"w": {"type": "White", "inputs": {}},
                                        "show": {"type": "ShowValue", "inputs": {"value": {"node": "w",
                                                                                           "output": "image"}}}}}
    image = session.run(g).outputs["show"]["value"]
    image.mul_(0)
    again = session.run(g)
    assert again.outputs["show"]["value"].min().item() == 1.0 and again.cached == []
    assert "changed in place after it was stored" in caplog.text
    assert session.run(g).cached == ["show"]                             # cached again, untouched
