"""The engine's error types: one structured error item and a few exceptions.

- `GraphError` — one problem found in a graph (validation or loading): a stable
  `code`, the `node_id` and `input` it concerns, and a `message` that says what
  was expected, what was found and how to fix it. Serialises to a plain dict.
- `GraphValidationError` — raised when a graph cannot be loaded or run; carries
  every `GraphError` found at once (never just the first).
- `NodeExecutionError` — a node raised while running; names the node id, node
  type, the plugin that registered it, the original exception type, its
  message and the traceback.
- `RunInterrupted` — the run was interrupted between nodes or cooperatively
  inside one.
- `NodeInputError` — what a node's `run` raises for bad input it can only
  detect at run time (shapes, batch sizes); it names the input.
- `PathConfinementError` — a `NodeInputError` for a file or folder name that
  breaks the confinement rule of nodegraph/paths.py; carries the offending
  value and a stable `rule`.
- `NodeOutputError` — a node returned an output the engine refuses (e.g. a
  STRING output over the text cap); names the output.

Every `NodegraphError` pickles with its attributes and message (`NodegraphError.__reduce__`), so it crosses
a process boundary (multiprocessing, ProcessPoolExecutor, Ray) as it was raised.

Error codes (stable; tests, the CLI `--json` output and the editor rely on them)
are listed in `ERROR_CODES` and documented in docs/graph-format.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

ERROR_CODES = (
    "invalid_json",        # the bytes are not JSON (or not UTF-8, or too large/deep)
    "unreadable_file",     # the graph file cannot be read (missing, a folder, no permission)
    "invalid_format",      # JSON, but not the shape of a graph file
    "unsupported_version",  # a format version this nodegraph cannot read
    "unknown_node_type",   # no registered node has this type (suggests close names)
    "ambiguous_node_type",  # a bare type name that several plugins provide (names them and the fix)
    "missing_input",       # a required input has neither a value nor a link
    "unknown_input",       # an input name the node does not declare
    "type_mismatch",       # a link or literal of the wrong port type
    "invalid_value",       # a literal of the right type that fails another constraint
    "out_of_range",        # a number outside the declared range
    "not_in_choices",      # a value outside the declared choices
    "dangling_link",       # a link to a node id that does not exist
    "unknown_output",      # a link to an output name the source node lacks
    "cycle",               # links form a cycle (names the nodes in it)
    "no_outputs",          # nothing to run: no output node (or requested output) in the graph
    "unknown_node",        # an override or requested output names a missing node id
    "foreign_format",      # a graph file of another tool (ComfyUI prompt or workflow); names the tool
    "bypass_no_match",     # a bypassed node's used output has no linked input of its port type
    "subgraph_cycle",      # subgraph definitions use each other in a cycle (names the chain)
    "subgraph_port_conflict",  # an exposed subgraph input feeds inner inputs of different port types
)


@dataclass(frozen=True)
class GraphError:
    """One problem in a graph: where it is, a stable code, and how to fix it."""

    code: str
    message: str
    node_id: str | None = None
    input: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    MAX_MESSAGE_CHARS: ClassVar[int] = 4000     # a message quoting a 100,000-character type or input name is cut

    def __post_init__(self) -> None:
        if isinstance(self.message, str) and len(self.message) > self.MAX_MESSAGE_CHARS:
            cut = (f"{self.message[:2000]} … [{len(self.message) - 2500} characters left out] … "
                   f"{self.message[-500:]}")
            object.__setattr__(self, "message", cut)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.node_id is not None:
            out["node_id"] = self.node_id
        if self.input is not None:
            out["input"] = self.input
        if self.details:
            out["details"] = self.details
        return out

    def __str__(self) -> str:
        where = ""
        if self.node_id is not None:
            where = f"node {self.node_id!r}"
            if self.input is not None:
                where += f", input {self.input!r}"
            where = f" ({where})"
        return f"[{self.code}]{where} {self.message}"


class NodegraphError(Exception):
    """Base class of every error the engine raises on purpose.

    Pickles with its attributes and message as they are (`__reduce__`), so it crosses a process boundary
    (multiprocessing.Pool, ProcessPoolExecutor, Ray): Python's default rebuilds an exception by calling
    `cls(*self.args)`, and `self.args` here is the one formatted message, not the `__init__` arguments —
    NodeExecutionError failed to unpickle (a Pool's result thread died and `get()` never returned) and
    RunInterrupted read its message back as a node id ("…while node "run interrupted while node …"").
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuilt_error, (type(self), self.args, self.__dict__)


def _rebuilt_error(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> BaseException:
    """An unpickled NodegraphError: made without `__init__` (whose arguments pickling does not keep), its
    message (`args`) and attributes restored."""
    try:
        error = cls.__new__(cls, *args)
    except TypeError:      # "MemoryError.__new__(NodeOutOfMemory) is not safe": Exception's makes it, as cls() does
        error = Exception.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class GraphValidationError(NodegraphError):
    """A graph failed to load or validate; `errors` holds every problem found."""

    def __init__(self, errors: list[GraphError]):
        assert errors, "GraphValidationError needs at least one GraphError"
        self.errors = list(errors)
        lines = [f"graph is invalid ({len(self.errors)} error{'s' if len(self.errors) != 1 else ''}):"]
        lines += [f"  - {e}" for e in self.errors[:20]]
        if len(self.errors) > 20:
            lines.append(f"  ... and {len(self.errors) - 20} more")
        super().__init__("\n".join(lines))

    def to_list(self) -> list[dict[str, Any]]:
        return [e.to_dict() for e in self.errors]


class NodeInputError(NodegraphError, ValueError):
    """Bad input a node can only detect while running; names the input and the fix."""

    def __init__(self, input: str, message: str):
        self.input = input
        self.message = message       # without the "input 'x': " prefix
        super().__init__(f"input {input!r}: {message}")


class StorageLimitError(NodegraphError):
    """A run's files would pass its user's storage limit (`files.OutputBudget`): the user's situation, not a bug."""


class PathConfinementError(NodeInputError):
    """A file or folder name that would leave its folder (or is unsafe to use); see nodegraph/paths.py."""

    def __init__(self, input: str, value: object, rule: str, message: str):
        self.value = value
        self.rule = rule          # stable: empty, absolute, drive, parent, dot, control_character, ...
        self.message = message
        super().__init__(input, message)


class NodeOutputError(NodegraphError, ValueError):
    """A node returned an output value the engine refuses; names the output and the fix."""

    def __init__(self, output: str, message: str):
        self.output = output
        super().__init__(f"output {output!r}: {message}")


class NodeExecutionError(NodegraphError):
    """A node failed while running."""

    def __init__(self, node_id: str, node_type: str, exception: BaseException, traceback: str,
                 plugin: str | None = None):
        self.node_id = node_id
        self.node_type = node_type
        self.exception = exception
        self.exception_type = type(exception).__name__
        self.traceback = traceback
        self.plugin = plugin   # the plugin that registered the node, when known
        origin = f", from plugin {plugin!r}" if plugin else ""
        super().__init__(f"node {node_id!r} ({node_type}{origin}) failed: {self.exception_type}: {exception}")

    def __reduce__(self) -> tuple[Any, ...]:
        rebuild, (cls, args, state) = super().__reduce__()
        return rebuild, (cls, args, {**state, "exception": _picklable_exception(self.exception)})


def _picklable_exception(exception: BaseException) -> BaseException:
    """`exception` if it survives pickling, else a RuntimeError with its type and message: a node's own
    exception class with required `__init__` arguments (as ours had) would fail to unpickle on the receiving
    side and take the NodeExecutionError that carries it down with it."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exception))
        return exception
    except Exception:
        return RuntimeError(f"{type(exception).__name__}: {exception}")


class NodeOutOfMemory(NodegraphError, MemoryError):
    """A node ran out of memory (torch's allocators, Python's MemoryError); the message says what to lower.

    Raised by the executor in place of the allocator's own error, which names a byte count and a
    C++ source line but not the node's inputs; the original is kept as `__cause__`."""


def out_of_memory(exc: BaseException, inputs: dict) -> NodeOutOfMemory | None:
    """A NodeOutOfMemory for an allocation failure (None for any other error), naming the size inputs given."""
    text = str(exc)
    failed = (isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
              or (isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)))
    if not failed or isinstance(exc, NodegraphError):      # ours already say what to do (ModelMemoryError)
        return None
    import re

    asked = re.search(r"allocate (\d+) bytes", text) or re.search(r"allocate ([\d.]+ [KMGT]i?B)", text)
    amount = ""
    if asked:
        value = asked.group(1)
        amount = f" (it asked for {int(value) / 2**30:.1f} GiB at once)" if value.isdigit() else f" ({value} at once)"
    sizes = [f"{name}={inputs[name]}" for name in ("width", "height", "batch_size", "frames", "length", "tile_size")
             if isinstance(inputs.get(name), int) and not isinstance(inputs.get(name), bool)]
    lower = f"lower {', '.join(sizes)}" if sizes else "give it smaller inputs (image size, batch, frames)"
    # tiled decoding is advice for a node that decodes (it has the input); an ImageScale was told it too
    tiles = ", use tiled VAE decoding (tile_size) for large images" if "tile_size" in inputs else ""
    return NodeOutOfMemory(f"out of memory{amount}; {lower}{tiles}, or free cached models (free_memory / a "
                           f"smaller cache budget)")


class RunInterrupted(NodegraphError):
    """The run was interrupted; `node_id` is the node that was running, if any."""

    def __init__(self, node_id: str | None = None):
        self.node_id = node_id
        super().__init__("run interrupted" + (f" while node {node_id!r} was running" if node_id else ""))


class PluginError(NodegraphError):
    """A plugin declared something invalid (bad node class, bad port type)."""
