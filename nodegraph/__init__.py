"""nodegraph: typed node graphs for diffusion models.

Map of the engine (imports only point downward; nothing here imports the
node packs in `nodes/` or any plugin):

    session.py      Session — the Python API: load plugins, validate, run, cache
    executor.py     compile a graph, cache keys, demand-driven execution (design doc inside)
    cache.py        OutputCache — LRU by bytes / all / none
    graph.py        the graph file format, migrations, parsing, file-format schema
    validation.py   every semantic error at once, with stable codes
    node.py         Node, Input, Output — how nodes declare themselves
    types.py        port types and the compatibility rule
    registry.py     what plugins registered, and conflicts
    plugins.py      pluggy loading with isolation, allow/deny lists
    hookspecs.py    the plugin surface (one module)
    events.py       the event stream
    model_paths.py  model folders (checkpoints, vae, loras, ...)
    errors.py       GraphError and the exceptions
    cli.py          the `nodegraph` command

Nothing here imports torch: `nodegraph --help` and `nodegraph validate` start fast.
"""

from .errors import (GraphError, GraphValidationError, NodeExecutionError, NodeInputError,
                     NodegraphError, PluginError, RunInterrupted)
from .graph import FORMAT_VERSION, Graph, Link, load_graph, parse_graph
from .hookspecs import hookimpl
from .node import Input, Node, NodeContext, NodeInputs, Output
from .session import Session
from .types import PortType

__version__ = "0.1.0"

__all__ = [
    "FORMAT_VERSION", "Graph", "GraphError", "GraphValidationError", "Input", "Link", "Node",
    "NodeContext", "NodeExecutionError", "NodeInputError", "NodeInputs", "NodegraphError", "Output",
    "PluginError", "PortType", "RunInterrupted", "Session", "hookimpl", "load_graph", "parse_graph",
]
