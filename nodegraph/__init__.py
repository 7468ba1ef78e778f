"""nodegraph: typed node graphs for diffusion models.

Map of the engine (imports only point downward; nothing here imports the
node packs in `nodes/` or any plugin):

    session.py      Session — the Python API: load plugins, validate, run, cache
    executor.py     compile a graph, cache keys, demand-driven execution (design doc inside)
    cache.py        OutputCache — LRU by bytes / all / none
    graph.py        the graph file format, migrations, parsing, file-format schema
    comfyui.py      ComfyUI classes with an equivalent here (what importing an API prompt translates)
    effective_graph.py  node modes and subgraphs applied: what a run executes
    validation.py   every semantic error at once, with stable codes
    node.py         Node, Input, Output — how nodes declare themselves
    types.py        port types and the compatibility rule
    registry.py     what plugins registered, and conflicts
    plugins.py      pluggy loading with isolation, allow/deny lists
    hookspecs.py    the plugin surface (one module)
    api.py          the plugin API (`from nodegraph import api`): sample, VAE, text, patches, output files
    results.py      the output-file contract (OutputFile, its JSON Schema) and JSON rendering of outputs
    provenance.py   what a saved result records: versions, device, SHA-256 of the model files
    memory.py       model placement on the compute device; the machine's RAM headroom
    events.py       the event stream
    model_paths.py  model folders (checkpoints, vae, loras, ...)
    errors.py       GraphError and the exceptions
    cli.py          the `nodegraph` command

Nothing here imports torch: `nodegraph --help` and `nodegraph validate` start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public names → the module that defines them. Imported on first use (PEP 562),
# so that `import nodegraph.cli` (and `nodegraph --help`) does not pay for pydantic.
_EXPORTS = {
    "GraphError": "errors", "GraphValidationError": "errors", "NodeExecutionError": "errors",
    "NodeInputError": "errors", "NodegraphError": "errors", "PluginError": "errors",
    "RunInterrupted": "errors",
    "FORMAT_VERSION": "graph", "Graph": "graph", "Link": "graph", "load_graph": "graph", "parse_graph": "graph",
    "hookimpl": "hookspecs",
    "Input": "node", "Node": "node", "NodeContext": "node", "NodeInputs": "node", "Output": "node",
    "Session": "session", "RunResult": "executor",
    "PortType": "types",
}
# Written out (not `sorted(_EXPORTS)`) so that type checkers read it: mypy --strict takes only names in a literal
# __all__, or imported `as` themselves (below), as the package's exports; a test keeps it equal to _EXPORTS.
__all__ = [
    "FORMAT_VERSION", "Graph", "GraphError", "GraphValidationError", "Input", "Link", "Node", "NodeContext",
    "NodeExecutionError", "NodeInputError", "NodeInputs", "NodegraphError", "Output", "PluginError", "PortType",
    "RunInterrupted", "RunResult", "Session", "hookimpl", "load_graph", "parse_graph",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nodegraph' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:      # each name imported as itself: an explicit re-export for type checkers
    from .errors import GraphError as GraphError
    from .errors import GraphValidationError as GraphValidationError
    from .errors import NodeExecutionError as NodeExecutionError
    from .errors import NodeInputError as NodeInputError
    from .errors import NodegraphError as NodegraphError
    from .errors import PluginError as PluginError
    from .errors import RunInterrupted as RunInterrupted
    from .executor import RunResult as RunResult
    from .graph import FORMAT_VERSION as FORMAT_VERSION
    from .graph import Graph as Graph
    from .graph import Link as Link
    from .graph import load_graph as load_graph
    from .graph import parse_graph as parse_graph
    from .hookspecs import hookimpl as hookimpl
    from .node import Input as Input
    from .node import Node as Node
    from .node import NodeContext as NodeContext
    from .node import NodeInputs as NodeInputs
    from .node import Output as Output
    from .session import Session as Session
    from .types import PortType as PortType
