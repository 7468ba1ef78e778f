"""A plugin only the server loads (never the Ray workers): for the "plugin missing on workers" tests."""

from __future__ import annotations

from nodegraph import Input, Node, NodeInputs, Output, hookimpl


class ServerOnlyProbe(Node):
    """Doubles its input; registered on the server only."""

    category = "test"
    output_node = True

    class Inputs(NodeInputs):
        x: int = Input(1)

    outputs = (Output("y", "INT"),)

    def run(self, x: int) -> dict:
        return {"y": 2 * x}


@hookimpl
def register_nodes():
    return [ServerOnlyProbe]
