"""The executor: runs what feeds the requested outputs, with content-addressed caching.

Design (this docstring is the design document)
==============================================

Compile (once per Graph object and registry; memoised in `Graph.compiled`)
    Node modes and subgraphs are applied first (effective_graph.py): bypassed
    nodes become links to what they pass through, subgraph nodes are replaced
    by their inner nodes under namespaced ids (`outer/inner`), and muted nodes
    with everything that depends on them are left out (`GraphPlan.skipped`).
    `compile_graph` turns the validated effective graph into a `GraphPlan`: for each node its
    class, its literal inputs merged with declared defaults, a digest of
    (type, version, literals), its links, and a topological order of all nodes. A Graph is immutable, so re-running it skips this step.

Cache keys (once per run, in topological order — linear in graph size)
    key(node) = blake2b(type, version, literal inputs,
                        for each link: input name, key(source), output name,
                        fingerprint of external resources, e.g. model file size+mtime)
    Each key reuses the keys of its sources, so no ancestor is hashed twice
    (ComfyUI re-walks every node's ancestry: quadratic). A non-deterministic
    node gets a fresh random key each run, which makes every key downstream of
    it fresh too: they are never served from the cache.

Demand-driven evaluation
    Starting from the targets, an explicit stack (no recursion, so 10,000-node
    chains are fine) resolves each node: from the cache if its key is there;
    otherwise after its non-lazy link sources, then its lazy inputs as
    `Node.lazy_inputs_needed` asks for them (a Switch never evaluates its
    unused branch), then `run`. A cache hit stops the walk: nothing upstream
    of it is touched.

Releasing intermediates
    `pending_consumers[n]` counts the link edges from nodes that may consume n.
    Each consumer, once it has run or was served from the cache, decrements the
    counts of all its sources; at zero the value leaves `values` (the run's
    working set). The cache may still hold it, under its own policy.

Values in and out
    A number, text or choice arriving through a link is checked against the
    input's declared limits just before the node runs, as literals are at
    validation (`_check_linked_values`). What a node returns is checked against
    its port's layout (an INT is an int, an IMAGE (B, H, W, 3) ...), and a
    STRING output longer than MAX_TEXT_OUTPUT_BYTES (1 MiB of UTF-8) fails its
    node with NodeOutputError, whatever node made it (`_check_outputs`).

Inputs stay as they came
    A linked value is its source's (cached) output, shared. Around `run`, `_linked_inputs` records the tensors
    (version counter; a CRC-32 of CPU tensors up to MAX_CHECKSUM_BYTES a node run, else sampled values) and the
    dicts and lists (their items, by identity) a node received, and `_changed_in_place` refuses a node that
    changed one, dropping the cache entries that hold it (also when the node then raised). Literal lists and
    dicts (defaults included) are each run's own copy (`NodePlan.container_literals`).

Warnings
    `NodeContext.warn` appends to `RunState.warnings` and emits `node_warning`;
    the run's RunResult carries them (a cached result repeats none).

Output files
    An output node's `files` that break the file-result contract (an unknown
    kind, no MIME type, a path outside the output folder) fail that node with
    ResultFileError naming the entry (`_check_output_files`, results.py).

Interruption and failure
    The session's interrupt flag is checked between nodes and, through
    `NodeContext.progress` / `check_interrupted`, inside long nodes. An
    interrupted or failed run stored only complete node outputs in the cache,
    so the cache stays consistent and the next run simply continues from it.

The run's state is one structure, `RunState`, documented field by field and
changed only by the small functions below. Callbacks are parameters with
trivial defaults; the terminal event (finished / failed / interrupted) is
emitted in a `finally` block.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import logging
import json
import math
import os
import resource
import sys
import threading
import time
import traceback as tb
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

from . import events as ev
from .cache import MISSING, WATCH_DEPTH, OutputCache
from .errors import NodeExecutionError, NodeInputError, NodeOutputError, RunInterrupted, out_of_memory
from .graph import Graph, Link, primitive_value, topological_order
from .interrupts import CURRENT_CHECK, NodeChecks, noting_ctrl_c, stop_signals_received
from .node import Node, NodeContext
from .registry import Registry
from .types import pixel_values_problem
from .validation import has_literal_checks, linked_value_error


@dataclass(frozen=True, slots=True)
class LinkPlan:
    """One link input of a node, resolved to the source's output."""

    input: str
    source: str
    output: str
    lazy: bool
    key_part: bytes          # b"input\0" — pre-encoded for key hashing
    output_part: bytes       # b"\0output\0"


@dataclass(frozen=True, slots=True)
class NodePlan:
    """A node ready to run: class, literal inputs (with defaults), links, key prefix."""

    node_id: str
    cls: type[Node]
    literals: dict[str, Any]
    # what `fingerprint` is given: the literals, and the file names a primitive node (a String box) links in — a
    # model file changed under a name given so was served stale from the cache (a reproducibility audit)
    fingerprint_literals: dict[str, Any]
    literal_digest: bytes
    links: tuple[LinkPlan, ...]
    lazy_inputs: frozenset[str]
    fingerprinted: bool
    reads_input: bool = False   # reads the input folder (an upload or input-folder name): keyed by that folder
    writes_output: bool = False  # names a place in the output folder (a training run folder): keyed by that folder
    container_literals: tuple[str, ...] = ()   # literals that are not plain scalars: each run gets its own copy
    # a model-file or input-file name computed by another node (FormatText, a switch): unknown when keys are made, so no fingerprint can see the file change — the node gets a fresh key
    # each run (run again, its consumers too) instead of serving a replaced file's result from the cache
    file_name_computed: bool = False


@dataclass(frozen=True)
class GraphPlan:
    """A compiled graph: per-node plans, a topological order and the output nodes."""

    nodes: dict[str, NodePlan]
    order: tuple[str, ...]
    output_nodes: tuple[str, ...]
    model_file_inputs: tuple[tuple[str, str, str, str], ...]   # (node id, input, folder, file name)
    skipped: tuple[str, ...] = ()    # muted nodes and their dependents (never run)
    literal_checks: tuple[str, ...] = ()   # nodes whose class has its own `check_literals` (checked every run)


def _literal_digest(node_type: str, version: str, literals: dict[str, Any]) -> bytes:
    """Digest of (type, version, literal inputs); nested containers are canonicalised as sorted JSON."""
    items = sorted(literals.items())
    if any(isinstance(v, (dict, list)) for _, v in items):
        blob = json.dumps([node_type, version, literals], sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False, default=repr)
    else:  # scalars only: repr is canonical and much cheaper than json.dumps
        blob = repr((node_type, version, items))
    return hashlib.blake2b(blob.encode(), digest_size=16).digest()


def compile_graph(graph: Graph, registry: Registry) -> GraphPlan:
    """Build (or fetch the memoised) GraphPlan of an already validated graph."""
    memo = graph.compiled.get(id(registry))
    if memo is not None and memo[0] is registry:
        return memo[1]
    source_graph = graph
    skipped: tuple[str, ...] = ()
    if not graph.is_plain:
        from .effective_graph import effective_graph

        effective = effective_graph(graph, registry)
        graph, skipped = effective.graph, effective.skipped
    nodes: dict[str, NodePlan] = {}
    model_files = []
    literal_checks = []
    for node_id, gnode in graph.nodes.items():
        cls = registry.nodes[gnode.type]
        spec = cls.spec
        literals: dict[str, Any] = {}
        through_primitives: dict[str, Any] = {}     # linked inputs whose value a primitive node writes
        names_files = cls.named_model_files.__func__ is not Node.named_model_files.__func__
        file_name_computed = False
        links = []
        for name, ispec in spec.inputs.items():
            value = gnode.inputs.get(name, MISSING)
            if isinstance(value, Link):
                links.append(LinkPlan(name, value.node, value.output, ispec.lazy,
                                      f"{name}\0".encode(), f"\0{value.output}\0".encode()))
                if ispec.model_folder or ispec.file_name_in or names_files:   # a file name (or a prompt naming
                    given = primitive_value(graph.nodes, value)      # one) a String box may give (checked when the
                    #                                                  node gets it, as linked values are)
                    if not isinstance(given, Link):
                        through_primitives[name] = given
                    elif ispec.model_folder or ispec.file_name_in == "input":     # (a computed prompt is not: a
                        file_name_computed = True       # fresh key for every prompt builder would rerun the sampler)
            elif value is MISSING:
                literals[name] = ispec.default
            else:
                literals[name] = value = ispec.as_literal(value)
                if ispec.model_folder and isinstance(value, str):
                    model_files.append((node_id, name, ispec.model_folder, value))
        if has_literal_checks(cls):
            literal_checks.append(node_id)
        fingerprinted = (cls.fingerprint.__func__ is not Node.fingerprint.__func__ or names_files
                         or any(s.model_folder for s in spec.inputs.values()))
        reads_input = any(s.file_name_in == "input" or "upload" in s.widget for s in spec.inputs.values())
        writes_output = any(s.file_name_in == "output" for s in spec.inputs.values())
        nodes[node_id] = NodePlan(
            node_id=node_id, cls=cls, literals=literals,
            fingerprint_literals={**literals, **through_primitives} if through_primitives else literals,
            literal_digest=_literal_digest(registry.qualified_name(cls), spec.version, literals),
            links=tuple(links), lazy_inputs=frozenset(n for n, s in spec.inputs.items() if s.lazy),
            fingerprinted=fingerprinted, reads_input=reads_input, writes_output=writes_output,
            file_name_computed=file_name_computed,
            container_literals=tuple(name for name, value in literals.items()
                                     if type(value) not in _UNWATCHED_TYPES
                                     and not isinstance(value, (str, int, float, bytes))))
    order, left_over = topological_order(graph.nodes)
    assert not left_over, "compile_graph needs a validated (acyclic) graph"
    order = tuple(order)
    output_nodes = tuple(n for n in order if nodes[n].cls.spec.output_node)
    plan = GraphPlan(nodes, order, output_nodes, tuple(model_files), skipped, tuple(literal_checks))
    source_graph.compiled[id(registry)] = (registry, plan)
    return plan


@dataclass
class RunResult:
    """What a run produced.

    outputs: target node id → the dict its `run` returned (outputs and, for
        output nodes, their recorded results): the caller's own copy of its dicts and lists
        (`callers_copy`), the tensors in them shared with the cache.
    executed: node ids that ran, in order. cached: node ids served from the cache.
    skipped: muted nodes and the nodes that depend on them (never run).
    warnings: what nodes told the user (`NodeContext.warn`): {"node_id", "node_type", "message"}, in order.
    drawn: node id → the plain values (numbers, text) a non-deterministic node (RandomInt) gave this run;
        `graph.pin_values(graph_dict, drawn)` is the graph that repeats the run (what records carry).
    """

    run_id: str
    outputs: dict[str, dict[str, Any]]
    executed: list[str]
    cached: list[str]
    seconds: float
    skipped: list[str] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    drawn: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class RunState:
    """Everything one run knows. Changed only by the functions of this module.

    run_id             identifies the run in every event.
    plan               the compiled graph.
    targets            node ids whose outputs were asked for (never released).
    keys               node id → cache key, for every node that may run.
    pending_consumers  node id → link edges from possible consumers not yet
                       resolved; at 0 the node's value is released.
    values             node id → outputs dict, the run's working set.
    visited            node ids already looked up in the cache this run.
    requested_lazy     node id → lazy input names its node asked for.
    instances          node id → the Node instance (made when first needed).
    executed, cached   node ids in the order they ran / came from the cache.
    running            the node running now (for interruption reports), or None.
    checks             how often the running node has checked for an interrupt (`interrupts.NodeChecks`).
    graph              the Graph being run (nodes may read it, e.g. to embed it in a file).
    warnings           {"node_id", "node_type", "message"} for each NodeContext.warn, in order; a warning given
                       again with a result served from the cache has "cached": True.
    carried            node id → the warnings its result carries (its own, and those its inputs carried), stored
                       with the result in the cache and given again, once per run, when it is served from there.
    """

    run_id: str
    plan: GraphPlan
    targets: tuple[str, ...]
    keys: dict[str, str] = field(default_factory=dict)
    pending_consumers: dict[str, int] = field(default_factory=dict)
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    visited: set[str] = field(default_factory=set)
    requested_lazy: dict[str, set[str]] = field(default_factory=dict)
    instances: dict[str, Node] = field(default_factory=dict)
    executed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    running: str | None = None
    checks: NodeChecks = field(default_factory=NodeChecks)
    graph: Graph | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)
    carried: dict[str, tuple[dict[str, str], ...]] = field(default_factory=dict)
    drawn: dict[str, dict[str, Any]] = field(default_factory=dict)   # non-deterministic nodes' plain outputs


def needed_nodes(plan: GraphPlan, targets: tuple[str, ...]) -> list[str]:
    """Ancestors of `targets` (through every link, lazy included), in topological order."""
    needed = set(targets)
    stack = list(targets)
    nodes = plan.nodes
    while stack:
        for link in nodes[stack.pop()].links:
            if link.source not in needed:
                needed.add(link.source)
                stack.append(link.source)
    if len(needed) == len(plan.order):
        return list(plan.order)
    return [n for n in plan.order if n in needed]


@dataclass(frozen=True)
class ListingResolver:
    """The `resolve_file` a session passes to fingerprints: (model folder, file name) → Path, with the model paths'
    cached listing beside it (`list_model_files(folder)` → (file names, directories searched): `ModelPaths.list`).

    `Node.fingerprint` finds a named file in another case through it, as the loader does
    (`embedding:easynegative` reads EasyNegative.safetensors), without reading a folder per node per run; a
    plain callable (a plugin's, the distributed worker's) still works, matching exact names only."""
    resolve: Callable[[str, str], Any]
    list_model_files: Callable[[str], tuple[list[str], list[str]]]

    def __call__(self, folder: str, name: str) -> Any:
        return self.resolve(folder, name)


def compute_keys(state: RunState, order: list[str], resolve_file: Callable[[str, str], Any],
                 output_scope: bytes = b"", input_scope: bytes = b"", private_scope: bytes = b"") -> None:
    """Fill `state.keys` in topological order; each key reuses its sources' keys (`run_plan` says what the
    scopes are mixed into)."""
    keys = state.keys
    nodes = state.plan.nodes
    pending = state.pending_consumers
    fresh = uuid.uuid4().bytes
    for node_id in order:
        plan = nodes[node_id]
        pending.setdefault(node_id, 0)
        h = hashlib.blake2b(plan.literal_digest, digest_size=16)
        if not plan.cls.deterministic or plan.file_name_computed:
            h.update(fresh + node_id.encode())
        if output_scope and (plan.cls.spec.output_node or plan.writes_output):
            h.update(b"\0scope\0" + output_scope)
        if input_scope and plan.reads_input:
            h.update(b"\0input\0" + input_scope)
        if private_scope and not plan.cls.shared_cache:
            h.update(b"\0private\0" + private_scope)
        for link in plan.links:
            h.update(link.key_part)
            h.update(keys[link.source].encode())
            h.update(link.output_part)
            pending[link.source] = pending.get(link.source, 0) + 1
        if plan.fingerprinted:
            fingerprint = _fingerprint_bytes(plan.cls, plan.fingerprint_literals, resolve_file)
            if fingerprint is None:        # not cacheable this run; the node's run reports a missing input itself
                h.update(b"\0fp-failed\0" + fresh)
            elif fingerprint:
                h.update(b"\0fp\0" + fingerprint)
        keys[node_id] = h.hexdigest()


_FINGERPRINT_WARNED: set[type] = set()       # node classes whose fingerprint failed (logged once a process)


def _fingerprint_bytes(cls: Any, literals: dict[str, Any], resolve_file: Any) -> bytes | None:
    """A node's `fingerprint` as bytes for its cache key: text, bytes, a number, a bool, None (b"": nothing to
    add) or a tuple / list of those (what ComfyUI's IS_CHANGED returns: a file's mtime, a hash) — or None, the
    node run every time: for NaN (IS_CHANGED's "always changed": NaN equals nothing), and, named in the log
    once, when it raised or returned another kind of value (an object's repr can change every run; its author's
    bug; the run goes on)."""
    signals_before = stop_signals_received()
    try:
        value = cls.fingerprint(literals, resolve_file)
    except BaseException as exc:  # noqa: BLE001 — a node's own fingerprint must not crash the run; sys.exit() in
        if _is_users_interrupt(exc, signals_before):   # it ended `nodegraph run` with exit 0, no record, no word (a hostile re-test)
            raise
        _warn_fingerprint(cls, f"raised {type(exc).__name__}: {exc}")
        return None
    try:
        return _fingerprint_key(value)
    except Exception as exc:  # noqa: BLE001 — a numpy array, a 5,000-digit int, an object whose __eq__ raises
        _warn_fingerprint(cls, f"returned a value of type {type(value).__name__} ({type(exc).__name__}: "
                               f"{str(exc)[:120]}); return a str (or bytes, a number, a tuple of them)")
        return None


_PLAIN_FINGERPRINTS = (bool, int, float, str, bytes, type(None))


def _fingerprint_key(value: Any) -> bytes | None:
    """`_fingerprint_bytes` for one returned value: None for NaN anywhere in it; TypeError for a kind of value
    a key cannot be made of."""
    if value is None:
        return b""
    if isinstance(value, str):
        return str.__str__(value).encode("utf-8", "surrogatepass")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    items = value if type(value) in (tuple, list) else (value,)
    if not all(isinstance(item, _PLAIN_FINGERPRINTS) for item in items):
        raise TypeError("not text, bytes, a number or a tuple of them")
    if any(isinstance(item, float) and math.isnan(item) for item in items):
        return None                       # "changed": run every time, as ComfyUI's IS_CHANGED NaN
    plain = tuple(str.__str__(i) if isinstance(i, str) else bytes(i) if isinstance(i, bytes) else i for i in items)
    return repr(plain if type(value) in (tuple, list) else plain[0]).encode("utf-8", "surrogatepass")


def _warn_fingerprint(cls: Any, problem: str) -> None:
    if cls in _FINGERPRINT_WARNED:
        return
    _FINGERPRINT_WARNED.add(cls)
    logging.getLogger("nodegraph.executor").warning(
        "%s.fingerprint (module %s) %s; the node is run every time instead of cached", cls.__name__,
        getattr(cls, "__module__", "?"), problem)


def _release_sources(state: RunState, node_id: str) -> None:
    """`node_id` no longer needs its sources: decrement their counts, drop values at zero."""
    pending = state.pending_consumers
    values = state.values
    targets = state.targets
    for link in state.plan.nodes[node_id].links:
        left = pending[link.source] - 1
        pending[link.source] = left
        if left == 0 and link.source not in targets:
            values.pop(link.source, None)


def _file_results(value: Any) -> bool:
    """Whether `value` holds what looks like file results — `api.save_files`'s (a dict with a `path` and a `kind`
    or `mime`) or ComfyUI's (`filename` and `type`) —, alone, in a list or tuple (any item), or under a nested
    "files" key: returned under a key other than `files`, they were written and never shown."""
    from .results import FILE_KINDS, default_mime

    def is_file(item: Any) -> bool:      # a media file's record (a LoRA's {"path", "kind": "lora"} is a value)
        if not isinstance(item, dict):
            return False
        if isinstance(item.get("path"), str):
            return item.get("kind") in FILE_KINDS or isinstance(item.get("mime"), str) or (
                "kind" in item and default_mime(os.path.splitext(item["path"])[1]) is not None)
        return isinstance(item.get("filename"), str) and item.get("type") in ("output", "temp", "input")

    if isinstance(value, dict) and "files" in value:
        value = value["files"]
    if isinstance(value, (list, tuple)):
        return any(is_file(item) for item in value)
    return is_file(value)


def _normalise_outputs(plan: NodePlan, raw: Any) -> dict[str, Any]:
    """A node's return value (dict, tuple, single value or None) → dict by output name."""
    spec = plan.cls.spec
    outputs = spec.outputs
    if isinstance(raw, dict):
        if "ui" in raw and "ui" not in spec.output_index:     # ComfyUI's output-node form: it showed nothing
            result = (" and its outputs under 'result' (ComfyUI's tuple): return them by name, "
                      f"{{{', '.join(repr(o.name) + ': ...' for o in outputs)}}}"
                      if "result" in raw and "result" not in spec.output_index else "")
            raise TypeError(f"{spec.type}.run() returned a 'ui' entry (ComfyUI's form for what a node shows){result}; "
                            f"nodegraph shows the files a node saves: return {{'files': api.save_image(self.context, "
                            f"images, prefix)}} (or api.save_files), see docs/plugins.md, 'Porting a ComfyUI node'")
        missing = [o.name for o in outputs if o.name not in raw]
        if missing:
            stray = [k for k in raw if k not in spec.output_index and k != "files"]
            close = {k: difflib.get_close_matches(str(k), missing, n=1) for k in stray}
            guesses = [f"{k!r} for {c[0]!r}" for k, c in close.items() if c]
            also = (f"; it returned {stray} instead" + (f" (a misspelt name? {', '.join(guesses)})" if guesses else "")
                    if stray else "")
            raise TypeError(f"{spec.type}.run() returned no value for output(s) {missing}{also}; "
                            f"it must return every declared output: {[o.name for o in outputs]}")
        misplaced = [k for k, v in raw.items() if k != "files" and k not in spec.output_index and _file_results(v)]
        if misplaced:      # a typo ("file") or another key: the files were written and never shown
            raise TypeError(f"{spec.type}.run() returned file results under {misplaced}; a node's files are "
                            f"reported under 'files' only: return {{'files': api.save_files(...)}} (and set "
                            f"`output_node = True`), see docs/plugins.md 'Output files'")
        if not spec.output_node:
            extra = [k for k in raw if k not in spec.output_index]
            if extra:
                hint = "; a node that writes files sets `output_node = True`" if "files" in extra else ""
                raise TypeError(f"{spec.type}.run() returned unknown output(s) {extra}; "
                                f"declared outputs are {[o.name for o in outputs]}{hint}")
        return raw
    if raw is None and not outputs:
        return {}
    if raw is None:     # a forgotten `return`: the node that consumed the None was blamed
        raise TypeError(f"{spec.type}.run() returned None (a missing `return`?); return a dict keyed by output "
                        f"name {[o.name for o in outputs]}")
    if len(outputs) == 1 and not isinstance(raw, tuple):
        return {outputs[0].name: raw}
    if isinstance(raw, tuple) and len(raw) == len(outputs):
        return {o.name: v for o, v in zip(outputs, raw)}
    if isinstance(raw, tuple):
        raise TypeError(f"{spec.type}.run() returned {len(raw)} value(s) for its {len(outputs)} output(s) "
                        f"{[o.name for o in outputs]}; return one value per output in that order, or a dict keyed "
                        f"by output name")
    raise TypeError(f"{spec.type}.run() returned {type(raw).__name__}; return a dict keyed by "
                    f"output name {[o.name for o in outputs]}")


MAX_TEXT_OUTPUT_BYTES = 1 << 20   # the cap on every STRING output (docs/security.md)


_PRIMITIVE_OUTPUTS: dict[str, tuple[tuple[type, ...], str]] = {
    "INT": ((int,), "an int"), "FLOAT": ((int, float), "a number"), "STRING": ((str,), "a str"),
    "BOOLEAN": ((bool,), "a bool")}


def _output_layout_problem(port: str, value: Any) -> str | None:
    """Why `value` breaks the documented layout of a built-in port type (None when it fits, or is None for a
    tensor port: a node may leave an optional image out). Only what is cheap to see: type, rank, channels."""
    if port in _PRIMITIVE_OUTPUTS:
        types_, wanted = _PRIMITIVE_OUTPUTS[port]
        if not isinstance(value, types_) or (isinstance(value, bool) and port != "BOOLEAN"):
            return f"expected {wanted}, found {type(value).__name__}"
        return None
    torch = sys.modules.get("torch")
    if value is None or torch is None or port not in ("IMAGE", "MASK", "LATENT", "AUDIO", "POINT_CLOUD", "MESH"):
        return None
    if port in ("AUDIO", "MESH"):
        return _media_layout_problem(port, value, torch)
    tensor = value.get("samples") if port == "LATENT" and isinstance(value, dict) else value
    if not isinstance(tensor, torch.Tensor):
        return f"expected {'a dict with a samples tensor' if port == 'LATENT' else 'a tensor'}, found " \
               f"{type(value).__name__}"
    shape = tuple(tensor.shape)
    if port == "IMAGE" and (tensor.ndim != 4 or shape[-1] != 3):
        return f"expected an IMAGE (B, H, W, 3) channels-last, found shape {shape}"
    if port == "MASK" and tensor.ndim != 3:
        return f"expected a MASK (B, H, W), found shape {shape}"
    if port == "LATENT" and tensor.ndim < 3:
        return f"expected samples (B, C, ...), found shape {shape}"
    if port == "POINT_CLOUD" and (tensor.ndim != 3 or shape[-1] < 3):
        return f"expected points (B, N, C) with xyz first (C >= 3), found shape {shape}"
    if port == "POINT_CLOUD" and shape[1] <= 9 and shape[-1] > max(16, shape[1]):
        return (f"found shape {shape}: {shape[1]} points of {shape[-1]} channels — a channels-first (B, C, N) "
                f"tensor? points are channels-last (B, N, C): use .transpose(1, 2)")
    if tensor.is_meta:
        return "found a tensor on the meta device (no data); values between nodes hold real data on the CPU"
    if port in ("IMAGE", "MASK"):
        return pixel_values_problem(tensor, f"{_article(port)} {port}")
    return None


# Past this a waveform is surely PCM integers as floats (int16 ones peak near 32768), not full scale ±1. Not lower:
# values beyond ±1 are allowed between nodes, and gains go up to +40 dB (MixAudio / AudioGain: peaks of 100), so
# 16 refused legitimate loud audio as a plugin bug; 1024 is +60 dB over full scale, 32 times below int16's scale.
AUDIO_PEAK_CEILING = 1024.0


def _article(word: str) -> str:
    return "an" if word[:1] in "AEIOU" else "a"


def _media_layout_problem(port: str, value: Any, torch: Any) -> str | None:
    """The AUDIO and MESH dict layouts (nodegraph/types.py): the keys and tensor ranks a consumer relies on."""
    if port == "AUDIO":
        if not isinstance(value, dict) or not isinstance(value.get("waveform"), torch.Tensor):
            return f"expected {{'waveform': tensor (B, channels, samples), 'sample_rate': int}}, found " \
                   f"{type(value).__name__ if not isinstance(value, dict) else 'a dict with keys ' + repr(list(value))}"
        rate, waveform = value.get("sample_rate"), value["waveform"]
        if waveform.ndim != 3:
            return f"expected a waveform (B, channels, samples), found shape {tuple(waveform.shape)}"
        if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
            return f"expected an int sample_rate > 0, found {rate!r}"
        if not waveform.is_floating_point():
            return f"expected a float waveform in [-1, 1], found dtype {str(waveform.dtype).removeprefix('torch.')} " \
                   f"(PCM samples: divide int16 ones by 32768)"
        if waveform.numel() and not waveform.is_meta:
            peak = float(waveform.detach().abs().max())
            if not math.isfinite(peak):
                return "expected finite samples, found NaN or infinite ones"
            if peak > AUDIO_PEAK_CEILING:
                return (f"expected a waveform at full scale ±1 (peaks up to {AUDIO_PEAK_CEILING:g}, +60 dB, allowed), "
                        f"found a peak of {peak:g} (int16 PCM scale: divide by 32768)")
        return None
    meshes = value if isinstance(value, list) else [value]
    for mesh in meshes:
        if not isinstance(mesh, dict) or not all(isinstance(mesh.get(k), torch.Tensor) for k in ("vertices", "faces")):
            wrong = {k: type(mesh[k]).__name__ for k in ("vertices", "faces")
                     if isinstance(mesh, dict) and k in mesh and not isinstance(mesh[k], torch.Tensor)}
            return (f"expected {{'vertices': (V, 3), 'faces': (F, 3)}} torch tensors (or a list of such dicts), found "
                    + (type(mesh).__name__ if not isinstance(mesh, dict) else
                       ", ".join(f"{k} as {t}" for k, t in wrong.items()) + " (convert with torch.as_tensor)" if wrong
                       else "a dict with keys " + repr(list(mesh))))
        vertices, faces = mesh["vertices"], mesh["faces"]
        if vertices.ndim != 2 or vertices.shape[-1] != 3 or faces.ndim != 2 or faces.shape[-1] != 3:
            return f"expected vertices (V, 3) and faces (F, 3), found {tuple(vertices.shape)} and {tuple(faces.shape)}"
        if not vertices.is_floating_point() or faces.is_floating_point() or faces.dtype == torch.bool \
                or faces.is_complex():
            return (f"expected float vertices and integer faces (vertex indices), found "
                    f"{str(vertices.dtype).removeprefix('torch.')} and {str(faces.dtype).removeprefix('torch.')}")
        if faces.numel() and not faces.is_meta:
            low, high = int(faces.min()), int(faces.max())
            if low < 0 or high >= vertices.shape[0]:
                return f"faces index vertices {low} … {high}, but the mesh has {vertices.shape[0]} vertices " \
                       f"(indices count from 0)"
    return None


def _check_outputs(plan: NodePlan, outputs: dict[str, Any]) -> None:
    """Refuse an output that breaks its port's layout (a FLOAT that is text, a channels-first IMAGE: it failed
    in an innocent node downstream), and a STRING over MAX_TEXT_OUTPUT_BYTES (UTF-8), naming the output."""
    for output in plan.cls.spec.outputs:
        value = outputs.get(output.name)
        problem = _output_layout_problem(output.port, value)
        if problem is not None:
            raise NodeOutputError(output.name, f"{problem} (the {output.port} port's layout: docs/plugins.md)")
        if output.port == "STRING" and isinstance(value, str) and len(value) > MAX_TEXT_OUTPUT_BYTES // 4:
            size = len(value.encode("utf-8", "surrogatepass"))
            if size > MAX_TEXT_OUTPUT_BYTES:
                raise NodeOutputError(output.name, f"the text is {size} bytes, over the {MAX_TEXT_OUTPUT_BYTES}-byte "
                                                   f"cap on STRING outputs; produce shorter text (or write a file)")


def _check_output_files(plan: NodePlan, outputs: dict[str, Any], services: dict[str, Any]) -> None:
    """An output node's `files` must follow the file-result contract (results.py), inside the output folder."""
    if plan.cls.spec.output_node and "files" in outputs:
        from .results import collect_files

        collect_files({plan.node_id: outputs}, services.get("output_dir"))


def _gather_inputs(state: RunState, plan: NodePlan, evaluated_only: bool) -> dict[str, Any]:
    """Keyword arguments for `run` (or, with evaluated_only, for `lazy_inputs_needed`).

    A literal that is not a plain scalar (a list, dict or tuple holding one: a graph's value or the declared
    default, `Input([])`) is copied for each run: a node that appended to it changed the compiled graph, or the
    default every later run and session got."""
    kwargs = dict(plan.literals)
    for name in plan.container_literals:
        kwargs[name] = copy.deepcopy(kwargs[name])
    values = state.values
    requested = state.requested_lazy.get(plan.node_id, ())
    for link in plan.links:
        if link.lazy and link.input not in requested:
            if evaluated_only:
                kwargs.pop(link.input, None)
            else:
                kwargs[link.input] = None
            continue
        kwargs[link.input] = values[link.source][link.output]
    return kwargs


MAX_WATCHED_TENSORS = 1024   # per node run: the tensors of its linked inputs whose in-place changes are caught
MAX_SAMPLED_TENSORS = 64     # ... of which this many are also compared by their values
MAX_CHECKSUM_BYTES = 16 << 20   # ... CPU tensors up to this many bytes in all by a checksum of every byte (a CRC
                                # of 16 MB takes ~7 ms here, twice per node: 64 MB doubled a cheap 2048² image node)
MAX_WATCHED_ITEMS = 1024     # items of one dict or list whose identity is compared (and looked into)
_SAMPLE_POINTS = 256           # values compared of a tensor past the checksum budget (a strided read: cheap)


@dataclass
class _Watched:
    """What a node received through links, to compare after it ran (`_linked_inputs`, `_changed_in_place`).

    tensors: `(input, source node, tensor, version, fingerprint)`; containers: `(input, source node, dict or
    list, its items)` — the items as references, compared by identity (holding them keeps their ids unique)."""

    tensors: list[tuple[str, str, Any, int | None, Any]] = field(default_factory=list)
    containers: list[tuple[str, str, Any, list]] = field(default_factory=list)


_NOTHING_WATCHED = _Watched([], [])     # shared, never changed: a node whose linked inputs hold nothing to watch
_UNWATCHED_TYPES = frozenset({int, float, str, bool, bytes, type(None)})


def _fingerprint(tensor: Any, torch: Any, checksum: bool) -> Any:
    """`(a few values spread over the tensor as raw bytes, CRC-32 of all its bytes or None)`; None when it cannot
    be read cheaply (not strided, not contiguous, on the meta device). The checksum (`checksum`, CPU tensors:
    the ones a numpy view can write) sees a write anywhere; the few values see large writes on any device."""
    try:
        if tensor.layout is not torch.strided or tensor.is_meta or not tensor.is_contiguous() or not tensor.numel():
            return None
        flat = tensor.detach().view(-1)
        step = max(1, flat.numel() // _SAMPLE_POINTS)
        points = flat[::step][:_SAMPLE_POINTS].clone().view(torch.uint8)
        crc = zlib.crc32(flat.view(torch.uint8).numpy()) if checksum and flat.device.type == "cpu" else None
        return points, crc
    except (RuntimeError, TypeError, ValueError):
        return None


def _same_fingerprint(before: Any, now: Any, torch: Any) -> bool:
    return now is None or (before[1] == now[1] and torch.equal(before[0], now[0]))


def _linked_inputs(plan: NodePlan, kwargs: dict[str, Any]) -> _Watched:
    """The tensors a node receives through links and the dicts and lists they come in (up to WATCH_DEPTH levels:
    a LATENT's samples, CONDITIONING pairs), to catch a node that changes one in place (`_changed_in_place`):
    it is also its source's cached output. A tensor's version counter sees every torch in-place operation; its
    fingerprint also sees writes torch does not count (through `.data`, through a numpy view, into an
    inference-mode tensor); a container's items, compared by identity, see a key set, added or removed."""
    if not plan.links:
        return _NOTHING_WATCHED
    if all(type(kwargs.get(link.input)) in _UNWATCHED_TYPES for link in plan.links):   # numbers, text: the usual
        return _NOTHING_WATCHED
    torch = sys.modules.get("torch")
    watched = _Watched()
    checksum_budget = MAX_CHECKSUM_BYTES
    for link in plan.links:
        pending = [(kwargs.get(link.input), 0)]
        while pending and len(watched.tensors) < MAX_WATCHED_TENSORS:
            value, depth = pending.pop()
            if torch is not None and isinstance(value, torch.Tensor):
                try:
                    version = value._version
                except RuntimeError:        # an inference-mode tensor keeps no version counter
                    version = None
                fingerprint = None
                if len(watched.tensors) < MAX_SAMPLED_TENSORS:
                    size = value.numel() * value.element_size()
                    fingerprint = _fingerprint(value, torch, checksum=size <= checksum_budget)
                    if fingerprint is not None and fingerprint[1] is not None:
                        checksum_budget -= size
                watched.tensors.append((link.input, link.source, value, version, fingerprint))
            elif depth < WATCH_DEPTH and isinstance(value, (dict, list)):     # OrderedDict, defaultdict too
                is_dict = isinstance(value, dict)
                items = list(value.items() if is_dict else value)[:MAX_WATCHED_ITEMS]
                watched.containers.append((link.input, link.source, value, items))
                pending.extend((v[1] if is_dict else v, depth + 1) for v in reversed(items))    # first ones first
            elif depth < WATCH_DEPTH and isinstance(value, tuple):
                pending.extend((v, depth + 1) for v in reversed(value[:MAX_WATCHED_ITEMS]))
    return watched


def _container_change(container: Any, items: list) -> str | None:
    """How a dict or list differs from its `items` before the node ran (None: it does not)."""
    if isinstance(container, dict):
        for key, value in items:
            if key not in container:
                return f"removed the key {key!r} from the dict it received"
            if container[key] is not value:
                return f"set the key {key!r} of the dict it received"
        before = dict(items)
        added = next((key for key in list(container)[:MAX_WATCHED_ITEMS] if key not in before), MISSING)
        return None if added is MISSING else f"added the key {added!r} to the dict it received"
    now = container[:MAX_WATCHED_ITEMS]
    if len(now) != len(items) or any(a is not b for a, b in zip(items, now)):
        return "changed the items of the list it received"
    return None


def _changed_in_place(state: RunState, plan: NodePlan, cache: OutputCache, watched: _Watched,
                      raise_error: bool = True) -> None:
    """Refuse a node that changed an input in place — a tensor (`x.mul_(...)`, `x[...] = ...`, `x.data = ...`, a
    numpy view written to) or a dict or list it came in (`latent["samples"] = ...`): it changed its source's
    output, which the cache and other nodes share, so later runs would have read the changed values. The cache
    entries of every node of the run whose outputs hold a changed value are dropped (the source's, and that of
    the node that made it when the source passed it through), so their next run recomputes them.
    `raise_error=False` (the node failed anyway): only the entries are dropped, the node's own error is kept."""
    if watched is _NOTHING_WATCHED:
        return
    torch = sys.modules.get("torch")
    changed: list[tuple[str, str, str, Any]] = []      # (input, source node, how, the changed value)
    for name, source, container, items in watched.containers:
        how = _container_change(container, items)
        if how is not None:
            changed.append((name, source, how, container))
    for name, source, tensor, version, fingerprint in watched.tensors:
        try:
            moved = version is not None and tensor._version != version
        except RuntimeError:
            moved = False
        if not moved and fingerprint is not None:
            moved = not _same_fingerprint(fingerprint, _fingerprint(tensor, torch, fingerprint[1] is not None), torch)
        if moved:
            changed.append((name, source, "", tensor))
    if not changed:
        return
    for node_id in _holders(state, {id(value) for *_, value in changed}) | {source for _, source, _, _ in changed}:
        if node_id in state.keys:
            cache.discard(state.keys[node_id])
    if not raise_error:
        return
    name, source, how, _ = changed[0]
    if how:
        raise NodeInputError(name, f"the node changed its input {name!r} in place (it {how}); that value is node "
                                   f"{source!r}'s output, shared with the cache and other nodes, so it must stay as "
                                   f"it came: make a new one ({name} = {{**{name}, 'key': value}}, "
                                   f"{name} = dict({name}), list({name})) and change that (docs/plugins.md)")
    raise NodeInputError(name, f"the node changed its input {name!r} in place (an in-place tensor operation such "
                               f"as mul_, add_, clamp_, copy_, item assignment, or a write through .data or a numpy "
                               f"view); that tensor is node {source!r}'s output, shared with the cache and other "
                               f"nodes, so it must stay as it came: work on a copy ({name} = {name}.clone(), "
                               f"{name}.numpy().copy()) or use out-of-place operations (docs/plugins.md)")


def _holders(state: RunState, ids: set[int]) -> set[str]:
    """The nodes of this run whose outputs hold (WATCH_DEPTH levels down) a value whose id is in `ids`."""
    found = set()
    for node_id, outputs in state.values.items():
        pending = [(outputs, 0)]
        while pending:
            value, depth = pending.pop()
            if id(value) in ids:
                found.add(node_id)
                break
            if depth < WATCH_DEPTH and isinstance(value, dict):
                pending.extend((v, depth + 1) for v in list(value.values())[:MAX_WATCHED_ITEMS])
            elif depth < WATCH_DEPTH and isinstance(value, (list, tuple)):
                pending.extend((v, depth + 1) for v in value[:MAX_WATCHED_ITEMS])
    return found


def _check_linked_values(plan: NodePlan, kwargs: dict[str, Any]) -> None:
    """Linked numbers and texts keep the input's declared limits, as literals do at validation."""
    inputs = plan.cls.spec.inputs
    for link in plan.links:
        value = kwargs.get(link.input)
        if value is None:
            continue
        problem = linked_value_error(plan.cls.spec.type, link.input, inputs[link.input], value, link.source,
                                     link.output)
        if problem is not None:
            raise NodeInputError(link.input, problem)


def _missing_sources(state: RunState, plan: NodePlan) -> list[str]:
    values = state.values
    requested = state.requested_lazy.get(plan.node_id, ())
    return [link.source for link in plan.links
            if (not link.lazy or link.input in requested) and link.source not in values]


def _instance(state: RunState, plan: NodePlan) -> Node:
    node = state.instances.get(plan.node_id)
    if node is None:
        node = plan.cls()
        state.instances[plan.node_id] = node
    return node


def _new_lazy_requests(state: RunState, plan: NodePlan, emit: ev.EventSink, services: dict[str, Any]) -> list[str]:
    """Ask the node which lazy inputs it needs now; record and return the new ones. A `lazy_inputs_needed` that
    raises, returns no list of names, or names an input that is not lazy fails the node as its `run` would (a
    plugin's raised out of the run: a bare traceback, a server's run failed naming no node)."""
    node = _instance(state, plan)
    available = _gather_inputs(state, plan, evaluated_only=True)
    signals_before = stop_signals_received()
    try:
        asked = node.lazy_inputs_needed(available)
        if isinstance(asked, (str, bytes)) or not isinstance(asked, (list, tuple, set, frozenset)):
            raise TypeError(f"{plan.cls.__name__}.lazy_inputs_needed returned {type(asked).__name__}; return a list "
                            f"of the lazy inputs still needed ([] when none)")
        unknown = [name for name in asked if name not in plan.lazy_inputs]
        if unknown:
            raise ValueError(f"{plan.cls.__name__}.lazy_inputs_needed asked for {unknown[0]!r}, which is not one of "
                             f"its lazy inputs ({', '.join(sorted(plan.lazy_inputs))}); declare it Input(lazy=True)")
    except BaseException as exc:  # noqa: BLE001 — the node's own code: its failure, named
        if _is_users_interrupt(exc, signals_before):
            raise
        raise _node_failed(state, plan, exc, tb.format_exc(), emit, services) from exc
    requested = state.requested_lazy.setdefault(plan.node_id, set())
    new = [name for name in asked if name not in requested]
    requested.update(new)
    return new


def _node_failed(state: RunState, plan: NodePlan, exc: BaseException, trace: str, emit: ev.EventSink,
                 services: dict[str, Any]) -> NodeExecutionError:
    """A node's own code failed (its run, its lazy_inputs_needed): the NodeErrored event, and the error naming the
    node and the plugin that registered it, for the caller to raise."""
    spec = plan.cls.spec
    emit(ev.NodeErrored(state.run_id, plan.node_id, spec.type, type(exc).__name__, str(exc), trace))
    registry = services.get("registry")
    return NodeExecutionError(plan.node_id, spec.type, exc, trace,
                              plugin=registry.plugin_of(plan.cls) if registry is not None else None)


MEMORY_CHECK_INTERVAL = 0.01       # seconds: /proc/meminfo is read at most this often (≈ 20 µs a read)
_last_memory_check = [0.0]


def _check_memory_headroom(state: RunState, cache: OutputCache) -> None:
    """Before a node runs: when the machine's available RAM is under the reserve (`memory.memory_reserve`),
    drop the cached outputs (they can be computed again) and collect garbage; if it is still under, fail
    this node with NodeOutOfMemory. Allocations that each fit but together do not (20 uploads of a few
    hundred KB that each decode to 1 GB) would otherwise end in the kernel's OOM killer taking the whole
    process — a server, with every user's runs."""
    now = time.monotonic()
    if now - _last_memory_check[0] < MEMORY_CHECK_INTERVAL:
        return
    _last_memory_check[0] = now
    from .memory import memory_reserve, system_memory

    memory = system_memory()
    if memory is None:
        return
    available, total = memory
    reserve = memory_reserve(total)
    if available >= reserve:
        return
    cache.trim(0)
    import gc

    from .memory import return_freed_memory

    gc.collect()
    return_freed_memory()
    available, total = system_memory() or memory
    if available >= reserve:
        return
    from .cache import estimate_bytes
    from .errors import NodeOutOfMemory

    held = sum(estimate_bytes(outputs) for outputs in state.values.values())
    gib = 1024**3
    raise NodeOutOfMemory(
        f"the machine has {available / gib:.1f} GiB of memory left (of {total / gib:.1f} GiB; {reserve / gib:.1f} "
        f"GiB is kept free), so this node was not started; the run holds {held / gib:.1f} GiB of values of "
        f"{len(state.values)} node(s), and cached outputs were dropped. Give the graph smaller inputs (image "
        f"sizes, batch, frames), split it into several runs, or free memory elsewhere (the reserve is "
        f"--memory-reserve of run / serve, or NODEGRAPH_MEMORY_RESERVE_MB; 0 turns this check off)")


class _PeakMemory:
    """Peak memory of one node: CUDA allocator peak when CUDA is in use, else process peak RSS."""

    @staticmethod
    def start() -> None:
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_initialized():
            torch.cuda.reset_peak_memory_stats()

    @staticmethod
    def end() -> int | None:
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_initialized():
            return int(torch.cuda.max_memory_allocated())
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _carried_warnings(state: RunState, plan: NodePlan, own: list[dict[str, Any]]) -> tuple[dict[str, str], ...]:
    """The warnings a node's result carries: those its inputs' results carried, then its own (each once)."""
    carried: dict[tuple[str, str], dict[str, str]] = {}
    for link in plan.links:
        for warning in state.carried.get(link.source, ()):
            carried.setdefault((warning["node_id"], warning["message"]), warning)
    for warning in own:
        if warning["node_id"] == plan.node_id and not warning.get("cached"):
            carried.setdefault((warning["node_id"], warning["message"]),
                               {k: warning[k] for k in ("node_id", "node_type", "message")})
    result = tuple(carried.values())
    if result:
        state.carried[plan.node_id] = result
    return result


def _repeat_warnings(state: RunState, node_id: str, warnings: tuple, emit: ev.EventSink) -> None:
    """A result served from the cache gives again the warnings it carries (marked cached), each once per run:
    the picture is the same, and so is what was wrong with it."""
    if not warnings:
        return
    state.carried[node_id] = warnings
    given = {(w["node_id"], w["message"]) for w in state.warnings}
    for warning in warnings:
        if (warning["node_id"], warning["message"]) in given:
            continue
        state.warnings.append({**warning, "cached": True})
        emit(ev.NodeWarning(state.run_id, warning["node_id"], warning["node_type"], warning["message"], cached=True))


def _run_node(state: RunState, plan: NodePlan, cache: OutputCache, emit: ev.EventSink,
              check_interrupted: Callable[[str | None], None], services: dict[str, Any]) -> None:
    node_id = plan.node_id
    spec = plan.cls.spec
    node = _instance(state, plan)
    run_id = state.run_id

    def progress(nid: str, value: int, total: int, preview: Any, info: dict | None) -> None:
        emit(ev.NodeProgress(run_id, nid, value, total, preview, info))

    def warn(nid: str, message: str) -> None:
        state.warnings.append({"node_id": nid, "node_type": spec.type, "message": message})
        emit(ev.NodeWarning(run_id, nid, spec.type, message))

    node.context = NodeContext(node_id, spec.type, progress, check_interrupted, services, run_id, state.graph, warn,
                               state.drawn)
    warned_before = len(state.warnings)
    kwargs = _gather_inputs(state, plan, evaluated_only=False)
    state.checks.started(node_id)       # before NodeStarted: whoever that event reaches reads this node's count
    emit(ev.NodeStarted(run_id, node_id, spec.type))
    state.running = node_id
    _PeakMemory.start()
    started = time.perf_counter()
    signals_before = stop_signals_received()
    try:
        _check_memory_headroom(state, cache)
        _check_linked_values(plan, kwargs)
        watched = _linked_inputs(plan, kwargs)
        try:
            token = CURRENT_CHECK.set(node.context.check_interrupted)     # model code's interrupt points
            try:                                                          # (interrupts.py; no contextmanager:
                raw = node.run(**kwargs)                                  # this is on every node's path)
            finally:
                CURRENT_CHECK.reset(token)
            outputs = _normalise_outputs(plan, raw)
        except BaseException:       # a node that changed an input and then failed left it changed in the cache
            _changed_in_place(state, plan, cache, watched, raise_error=False)
            raise
        _changed_in_place(state, plan, cache, watched)
        _check_outputs(plan, outputs)
        _check_output_files(plan, outputs, services)
    except RunInterrupted:
        raise
    except BaseException as exc:  # noqa: BLE001 — every node failure becomes a structured error: a plugin's
        # sys.exit (it ended the CLI with no word of which node) and its own KeyboardInterrupt or BaseException
        # subclass too (in a server's worker thread they ended the thread and the queue stopped for everyone)
        if _is_users_interrupt(exc, signals_before):
            raise
        trace = tb.format_exc()
        if (memory := out_of_memory(exc, kwargs)) is not None:   # the allocator's words name no input
            memory.__cause__, exc = exc, memory
        raise _node_failed(state, plan, exc, trace, emit, services) from exc
    seconds = time.perf_counter() - started
    state.running = None
    state.checks.ended()
    state.values[node_id] = outputs
    carried = _carried_warnings(state, plan, state.warnings[warned_before:])
    if spec.deterministic:
        cache.put(state.keys[node_id], outputs, carried)
    else:
        _record_drawn(state, node_id, spec, outputs)
    state.executed.append(node_id)
    del state.instances[node_id]
    emit(ev.NodeFinished(run_id, node_id, spec.type, seconds, _PeakMemory.end()))
    _release_sources(state, node_id)


def _record_drawn(state: RunState, node_id: str, spec: Any, outputs: dict[str, Any]) -> None:
    """A non-deterministic node's plain values (a RandomInt's seed) into `state.drawn`: the graph a run
    records (a PNG's, a run record's) carries them in place of the links, so it draws the same image again."""
    plain = {}
    for output in spec.outputs:
        value = outputs.get(output.name)
        if isinstance(value, (bool, int, str)) and len(str(value)) <= 10_000 or (
                isinstance(value, float) and math.isfinite(value)):
            plain[output.name] = value
    if plain:
        state.drawn[node_id] = plain


def _is_users_interrupt(exc: BaseException, signals_before: int) -> bool:
    """Ctrl+C (or `nodegraph run`'s SIGTERM): a KeyboardInterrupt on the main thread (where Python delivers
    signals) while a stop signal was noted (`interrupts.noting_ctrl_c`: the count grew since `signals_before`).
    One with no signal, or on another thread, came from the node's own code (a plugin bug, a library passing
    one on): it fails that node like any other exception — `nodegraph run` said "interrupted (Ctrl+C)", exit 130."""
    return isinstance(exc, KeyboardInterrupt) and threading.current_thread() is threading.main_thread() \
        and stop_signals_received() > signals_before


def execute(state: RunState, cache: OutputCache, emit: ev.EventSink,
            check_interrupted: Callable[[str | None], None], services: dict[str, Any]) -> None:
    """Resolve every target: from the cache, or by running it after what it needs."""
    nodes = state.plan.nodes
    values = state.values
    stack = list(reversed(state.targets))
    while stack:
        node_id = stack[-1]
        if node_id in values:
            stack.pop()
            continue
        plan = nodes[node_id]
        if node_id not in state.visited:
            state.visited.add(node_id)
            check_interrupted(None)
            if plan.cls.deterministic:
                hit = cache.get(state.keys[node_id])      # a miss too when a file it lists is gone or replaced
                if hit is not MISSING:
                    values[node_id] = hit
                    state.cached.append(node_id)
                    emit(ev.NodeCached(state.run_id, node_id, plan.cls.spec.type))
                    _repeat_warnings(state, node_id, cache.warnings_of(state.keys[node_id]), emit)
                    _release_sources(state, node_id)
                    stack.pop()
                    continue
        missing = _missing_sources(state, plan)
        if missing:
            stack.extend(reversed(missing))  # inputs evaluate in declaration order
            continue
        if plan.lazy_inputs and _new_lazy_requests(state, plan, emit, services):
            missing = _missing_sources(state, plan)
            if missing:
                stack.extend(reversed(missing))
                continue
            continue  # newly requested lazy inputs were literals: ask again
        check_interrupted(None)
        _run_node(state, plan, cache, emit, check_interrupted, services)
        check_interrupted(node_id)   # asked to stop while it ran without checking: the interrupt names it
        stack.pop()


_COPIED_CONTAINERS = frozenset({dict, list, tuple, set})


def callers_copy(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """`value` with its dicts, lists, tuples and sets copied all the way down, tensors and other leaves shared:
    what a RunResult hands its caller. The cache keeps the node's own dicts, so a script that replaced
    `out["image"]` by its PNG (a web app's JSON answer) or `latent["samples"]` by a scaled tensor changed what
    every later run got from the cache (a str for an IMAGE, a black latent) — silently; a tensor changed in
    place is still the cache's, and noticed (`OutputCache.get`). `memo` keeps shared containers shared (and a
    container that holds itself finite). Beyond Python's recursion limit the rest is shared as it is."""
    kind = type(value)
    if kind not in _COPIED_CONTAINERS:
        return value
    memo = {} if memo is None else memo
    if id(value) in memo:
        return memo[id(value)]
    items = value.values() if kind is dict else value
    if _COPIED_CONTAINERS.isdisjoint(map(type, items)):        # flat (the usual case): one C-level copy
        copied = kind(value)
        memo[id(value)] = copied
        return copied
    try:
        if kind is dict:
            copied = memo[id(value)] = {}
            copied.update((key, callers_copy(item, memo)) for key, item in value.items())
        elif kind is list:
            copied = memo[id(value)] = []
            copied.extend(callers_copy(item, memo) for item in value)
        else:        # a tuple or set: its items first (neither can hold itself without a list or dict between)
            copied = memo[id(value)] = kind(callers_copy(item, memo) for item in value)
    except RecursionError:
        memo.pop(id(value), None)
        return value
    return copied


def run_plan(
    plan: GraphPlan,
    targets: tuple[str, ...],
    cache: OutputCache,
    emit: ev.EventSink = ev.no_events,
    interrupt: threading.Event | None = None,
    services: dict[str, Any] | None = None,
    resolve_file: Callable[[str, str], Any] = lambda folder, name: (_ for _ in ()).throw(LookupError(name)),
    run_id: str | None = None,
    graph: Graph | None = None,
    output_scope: bytes = b"",
    input_scope: bytes = b"",
    private_scope: bytes = b"",
    checks: NodeChecks | None = None,
) -> RunResult:
    """Run `targets` of a compiled graph; raises NodeExecutionError or RunInterrupted.

    Args:
        plan: from `compile_graph`.
        targets: node ids whose outputs to produce (usually the output nodes).
        cache: the session's OutputCache.
        emit: event sink (see events.py).
        interrupt: set it to stop the run at the next check.
        services: what nodes may ask their context for (folders, managers).
        resolve_file: (model folder, file name) → Path, for fingerprints (a `ListingResolver` lets them find
            a named file in another case, as the loader does).
        run_id: defaults to a new uuid4 hex.
        graph: the Graph the plan came from (offered to nodes as `context.graph`).
        output_scope: mixed into the keys of output nodes and of nodes with an input naming a
            place in the output folder (a training run folder) -- the run's output folder when
            runs write to different folders -- so a cached node never reports another folder's
            files nor skips writing to this one.
        input_scope: mixed into the keys of nodes that read the input folder (the run's input
            folder when runs read different ones: a server's users), so one user's "dog.png"
            never answers for another's.
        private_scope: mixed into the keys of every node but those that declare `shared_cache` (model
            loaders): a server's user name, so a user never gets another user's result from the cache —
            which told them, by its `cached` list and its speed, that someone had run that very prompt.
        checks: counts the running node's interrupt checks, for another thread to read (a session's
            `running_node_checks`: a server tells who interrupts a node that never checks that it runs on).
    """
    run_id = run_id or uuid.uuid4().hex
    interrupt = interrupt or threading.Event()
    state = RunState(run_id, plan, tuple(targets), graph=graph, checks=NodeChecks() if checks is None else checks)
    counted = state.checks

    def check_interrupted(node_id: str | None) -> None:
        counted.count += 1          # no lock (this is on every check): a reader only asks whether it grew
        if interrupt.is_set():
            raise RunInterrupted(node_id or state.running)

    started = time.perf_counter()
    order = needed_nodes(plan, state.targets)
    outcome: BaseException | None = None
    emit(ev.RunStarted(run_id, tuple(order), len(order), plan.skipped))
    try:
        with noting_ctrl_c():         # a node's own KeyboardInterrupt is its failure; Ctrl+C's is a stop
            compute_keys(state, order, resolve_file, output_scope, input_scope, private_scope)
            execute(state, cache, emit, check_interrupted, services or {})
        # asked to stop while the last node ran, which did not check: the run ends interrupted, as it would have
        # before any later node (its outputs are cached; it reported success, so an interrupt seemed ignored)
        check_interrupted(state.executed[-1] if state.executed else None)
        return RunResult(run_id, callers_copy({t: state.values[t] for t in state.targets}),
                         state.executed, state.cached, time.perf_counter() - started, list(plan.skipped),
                         state.warnings, state.drawn)
    except BaseException as exc:
        outcome = exc
        raise
    finally:
        seconds = time.perf_counter() - started
        if outcome is None:
            emit(ev.RunFinished(run_id, seconds, tuple(state.executed), tuple(state.cached)))
        elif isinstance(outcome, (RunInterrupted, KeyboardInterrupt)):
            emit(ev.RunInterruptedEvent(run_id, getattr(outcome, "node_id", None) or state.running))
        else:
            node_id = getattr(outcome, "node_id", None)
            emit(ev.RunFailed(run_id, node_id, str(outcome)))
