"""Small nodes and graph builders shared by the engine tests."""

from __future__ import annotations

import threading
from typing import Any

from nodegraph import Input, Node, NodeInputs, Output, hookimpl

CALLS: list[str] = []


class Counter(Node):
    """Adds one to its input and records that it ran."""

    category = "test"

    class Inputs(NodeInputs):
        x: int = Input(0)
        tag: str = Input("")

    outputs = (Output("y", "INT"),)

    def run(self, x: int, tag: str) -> dict:
        CALLS.append(self.context.node_id)
        return {"y": x + 1}


class Boom(Node):
    """Always fails."""

    category = "test"

    class Inputs(NodeInputs):
        x: int = Input(0)

    outputs = (Output("y", "INT"),)

    def run(self, x: int) -> dict:
        raise RuntimeError(f"boom at {x}")


class Blob:
    """A value that can be weak-referenced, to observe release of intermediates."""

    def __init__(self, n: int):
        self.n = n


class MakeBlob(Node):
    """Produces a Blob."""

    category = "test"

    class Inputs(NodeInputs):
        n: int = Input(0)

    outputs = (Output("blob", "*"),)

    def run(self, n: int) -> dict:
        return {"blob": Blob(n)}


class Probe(Node):
    """Runs a callback given in PROBES[name] with its input; passes the input on."""

    category = "test"

    class Inputs(NodeInputs):
        value: Any = Input(None, port="*")
        name: str = Input("")

    outputs = (Output("value", "*"),)

    def run(self, value: Any, name: str) -> dict:
        PROBES[name](value)
        return {"value": value}


class BlobSize(Node):
    """Returns a Blob's n, calling PROBES[name] with the blob first."""

    category = "test"

    class Inputs(NodeInputs):
        blob: Any = Input(port="*")
        name: str = Input("")

    outputs = (Output("n", "INT"),)

    def run(self, blob: Any, name: str) -> dict:
        PROBES[name](blob)
        return {"n": blob.n}


PROBES: dict[str, Any] = {}
STARTED = threading.Event()


@hookimpl
def register_nodes():
    return [Counter, Boom, MakeBlob, Probe, BlobSize]


def link(node: str, output: str) -> dict:
    return {"node": node, "output": output}


def chain(n: int, node_type: str = "Counter", show: bool = True) -> dict:
    """A chain c0 → c1 → ... → c{n-1} (→ show)."""
    nodes: dict[str, Any] = {"c0": {"type": node_type, "inputs": {"x": 0}}}
    for i in range(1, n):
        nodes[f"c{i}"] = {"type": node_type, "inputs": {"x": link(f"c{i-1}", "y")}}
    if show:
        nodes["show"] = {"type": "ShowValue", "inputs": {"value": link(f"c{n-1}", "y")}}
    return {"format_version": 1, "nodes": nodes}
