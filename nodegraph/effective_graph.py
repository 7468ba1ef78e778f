"""The effective graph: what a run executes once node modes and subgraphs are applied.

A graph file keeps what the user wrote (`mode` on nodes, `subgraphs`
definitions, `subgraph:<name>` node types); validation and the executor work on
the *effective graph* built here: a plain Graph with no modes and no subgraph
nodes. docs/graph-format.md ("Bypass and mute", "Subgraphs") states the rules;
this module implements them in two passes, linear in the expanded size:

1. `_Expander.flatten` walks the file's nodes (recursing into each used
   definition) and copies every kept node under its namespaced id
   (`outer/inner`, nested `a/b/c`), with links rewritten into that namespace
   and links to `$inputs` replaced by the outer node's value (link, literal or
   the exposed input's default). Nodes that do not exist in the effective graph
   — subgraph nodes and bypassed nodes — become *virtual*: a table maps each
   of their outputs to the link that stands for it (an inner output; for a
   bypassed node, the linked input of its slot or else the first with the same port type) or to a
   marker saying why there is none.
2. `_Expander.resolve` follows every link through the virtual table to a real
   node (bypass chains and nested subgraphs resolve transitively), then removes
   muted nodes and everything that depends on them (the *skipped* nodes).

Before anything is expanded, `expansion_error` counts what the expansion would
make (per definition, memoised, no recursion): over `MAX_EXPANDED_NODES` nodes or
`MAX_SUBGRAPH_DEPTH` levels is `subgraph_too_large` (a 5 KB file of definitions
that each use the next twice declares 2^40 nodes).

Errors found here (`bypass_no_match`, `subgraph_cycle`,
`subgraph_port_conflict`, exposed-port mistakes) and the errors validation
finds in the effective graph are both passed through `EffectiveGraph.annotate`,
which names the path of an expanded node (outer node → inner node) in the
message and in `details.path`.

Main objects: `EffectiveGraph`, `effective_graph(graph, registry)` (memoised in
`Graph.compiled`), `SubgraphInterface` / `subgraph_interface` (the typed ports
of a definition, as the editor draws them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import GraphError
from .graph import SUBGRAPH_INPUTS_NODE, SUBGRAPH_TYPE_PREFIX, Graph, GraphNode, Link, SubgraphDefinition
from .validation import _article

if TYPE_CHECKING:
    from .registry import Registry

ANY_PORT = "*"


@dataclass(frozen=True)
class SubgraphInterface:
    """The typed ports of a definition: (name, port type) in the order the file declares them."""

    inputs: tuple[tuple[str, str], ...]
    outputs: tuple[tuple[str, str], ...]

    def input_port(self, name: str) -> str | None:
        return next((p for n, p in self.inputs if n == name), None)

    def output_port(self, name: str) -> str | None:
        return next((p for n, p in self.outputs if n == name), None)


@dataclass
class EffectiveGraph:
    """A graph with modes and subgraphs applied, and what applying them found.

    graph       the plain graph to validate and run (the input Graph itself when it was plain).
    errors      problems found while applying modes and expanding subgraphs.
    skipped     muted nodes (file order) then the nodes skipped because they depend on one.
    origin      expanded node id → (path of ids from the outer node in, names of the subgraphs entered).
    suppressed  (node id, input) pairs whose `missing_input` was already reported in a clearer form.
    reported    node ids whose `unknown_node_type` was already reported (e.g. as `subgraph_cycle`).
    definitions the subgraph names the file defines (for `unknown_node_type` of a `subgraph:` type).
    bypassed_outputs  output nodes that are bypassed (they pass an input through and do not run).
    literal_source    (expanded node id, input) → (node id, input) where the file wrote the literal it got
                through exposed inputs: an error about that value is reported where the user wrote it.
    crossing    (expanded node id, input) pairs whose link crosses a subgraph's edge (an exposed input or
                output): a cycle through one is reported on the outer nodes, not inside a definition.
    bypassed    every bypassed node (a requested one is told so, not "not a node in the graph").
    mute_causes (id, type) of each muted node (file order) that is an output node or feeds one: what a
                `no_outputs` refusal names as the node whose muting leaves nothing to run.
    """

    graph: Graph
    errors: list[GraphError] = field(default_factory=list)
    skipped: tuple[str, ...] = ()
    origin: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)
    suppressed: set[tuple[str, str]] = field(default_factory=set)
    reported: set[str] = field(default_factory=set)
    definitions: tuple[str, ...] = ()
    bypassed_outputs: tuple[str, ...] = ()
    literal_source: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    crossing: set[tuple[str, str]] = field(default_factory=set)
    bypassed: tuple[str, ...] = ()
    mute_causes: tuple[tuple[str, str], ...] = ()

    def annotate(self, errors: list[GraphError]) -> list[GraphError]:
        """This expansion's errors, then `errors` (from validating `graph`), each naming its subgraph path."""
        out = []
        if any(e.code == "subgraph_too_large" for e in self.errors):     # nothing was expanded: that is all
            return list(self.errors)
        for error in [*self.errors, *errors]:
            if error.code == "missing_input" and (error.node_id, error.input) in self.suppressed:
                continue
            if error.code == "unknown_node_type" and error.node_id in self.reported:
                continue
            node_type = error.details.get("type") if error.code == "unknown_node_type" else None
            if isinstance(node_type, str) and node_type.startswith(SUBGRAPH_TYPE_PREFIX):
                name = node_type[len(SUBGRAPH_TYPE_PREFIX):]
                have = ", ".join(repr(d) for d in self.definitions) or "none"
                error = GraphError("unknown_node_type",
                                   f"no subgraph {name!r} is defined in this file (definitions: {have}); add its "
                                   f"definition under \"subgraphs\" or replace the node",
                                   error.node_id, error.input, {**error.details, "subgraph": name})
            if error.code == "unknown_node" and error.node_id in self.skipped:      # there, but it will not run
                error = GraphError("unknown_node", f"requested output {error.node_id!r} is muted or depends on a "
                                                   f"muted node, so it would not run; unmute it or request another",
                                   error.node_id, details={"skipped": True})
            if error.code == "unknown_node" and error.node_id in self.bypassed:      # there, passed through
                error = GraphError("unknown_node", f"requested output {error.node_id!r} is bypassed (it passes an "
                                                   f"input through and does not run); un-bypass it (Ctrl+B in the "
                                                   f"editor) or request a node it feeds",
                                   error.node_id, details={"bypassed": True})
            if error.code == "no_outputs" and (self.mute_causes or self.bypassed_outputs) and not error.details:
                error = self._no_outputs_left()     # they are there, but muted or bypassed
            if error.code == "cycle" and self._crosses_a_subgraph_edge(error):
                out.append(self._outer_cycle(error))
                continue
            written = self.literal_source.get((error.node_id, error.input)) if error.input else None
            out.append(self._with_path(error) if written is None else self._where_written(error, written))
        return out

    def _crosses_a_subgraph_edge(self, error: GraphError) -> bool:
        """Whether a `cycle` (details.nodes: each node feeds the next) goes through an exposed input or output."""
        cycle = error.details.get("nodes") or []
        for source, target in zip(cycle, cycle[1:] + cycle[:1]):
            node = self.graph.nodes.get(target)
            if node is None:
                continue
            if any(isinstance(v, Link) and v.node == source and (target, name) in self.crossing
                   for name, v in node.inputs.items()):
                return True
        return False

    def _outer_cycle(self, error: GraphError) -> GraphError:
        """A cycle through a subgraph's edge, said on the nodes of the file's top level: an outer link closes it
        (a subgraph node's output fed back into its own input), not anything in the definition."""
        cycle = error.details.get("nodes") or []
        outer = [self.origin.get(n, ((n,), ()))[0][0] for n in cycle]
        loop = [n for i, n in enumerate(outer) if n != outer[i - 1]] or outer[:1]      # consecutive repeats once
        through = sorted({n for n, inner in zip(outer, cycle) if n != inner})
        path = " → ".join([*loop, loop[0]])
        return GraphError("cycle", f"links form a cycle through subgraph node(s) {', '.join(map(repr, through))}: "
                                   f"{path} (expanded: {' → '.join([*cycle, cycle[0]])}). The definition itself has "
                                   f"no cycle: a link between these nodes closes it — e.g. a subgraph node's output "
                                   f"fed back into its own input; remove that link.",
                          loop[0], details={**error.details, "outer_nodes": loop})

    def _where_written(self, error: GraphError, written: tuple[str, str]) -> GraphError:
        """An error about a literal an inner input got through exposed inputs, on the node and input it was
        written on (what the editor highlights and the user edits), naming the inner input it reached."""
        node_id, input_name = written
        path, names = self.origin.get(error.node_id, ((error.node_id,), ()))
        return GraphError(error.code, f"input {input_name!r} of subgraph node {node_id!r} reaches {' → '.join(path)} "
                                      f"(subgraph {' > '.join(names)}) as its input {error.input!r}: {error.message}",
                          node_id, input_name,
                          {**error.details, "path": list(path), "inner_node": error.node_id,
                           "inner_input": error.input})

    def _no_outputs_left(self) -> GraphError:
        """`no_outputs` for a graph whose output nodes are all muted, skipped or bypassed: name the muted nodes that
        cause it first (the skipped list starts with every muted node and may not say which one the user meant to
        run), then the skipped and bypassed ones."""
        def shown(ids: tuple[str, ...], most: int = 8) -> str:
            return ", ".join(repr(n) for n in ids[:most]) + (", …" if len(ids) > most else "")
        causes = self.mute_causes
        muting = ", ".join(f"{n!r} ({t})" for n, t in causes[:3]) + (f" and {len(causes) - 3} more" if len(causes) > 3
                                                                     else "")
        why = []
        if causes:
            why.append(f"are muted or depend on a muted node (skipped: {shown(self.skipped)})")
        if self.bypassed_outputs:
            why.append(f"are bypassed (a bypassed node passes an input through and does not run: "
                       f"{shown(self.bypassed_outputs)})")
        unmute = "unmute it" if len(causes) == 1 else "unmute one"
        fixes = ((f"{unmute} (Ctrl+M in the editor)", causes), ("un-bypass one (Ctrl+B)", self.bypassed_outputs))
        fix = " or ".join(f for f, there in fixes if there)
        head = f"muting {muting} leaves no output to run" if causes else "no output node would run"
        return GraphError("no_outputs", f"{head}: the output nodes {' or '.join(why)}; {fix}",
                          details={"skipped": list(self.skipped), "bypassed": list(self.bypassed_outputs),
                                   "muted": [n for n, _type in causes]})

    def _with_path(self, error: GraphError) -> GraphError:
        origin = self.origin.get(error.node_id) if error.node_id is not None else None
        if origin is None or len(origin[0]) < 2 or "path" in error.details:
            return error
        path, names = origin
        where = " > ".join(names)
        return GraphError(error.code, f"in subgraph {where} (node {' → '.join(path)}): {error.message}",
                          error.node_id, error.input, {**error.details, "path": list(path)})


@dataclass(frozen=True)
class _NoPassThrough:
    """Why a virtual output has no link behind it (reported when something uses it)."""

    error: GraphError


def effective_graph(graph: Graph, registry: Registry) -> EffectiveGraph:
    """The effective graph of `graph` (memoised per registry; a plain graph is returned as is)."""
    if graph.is_plain:
        return EffectiveGraph(graph)
    memo_key = ("effective", id(registry))
    memo = graph.compiled.get(memo_key)
    if memo is not None and memo[0] is registry:
        return memo[1]
    too_big = expansion_error(graph)
    if too_big is not None:      # refused before anything is expanded: a 5 KB file can declare 2^40 nodes
        result = EffectiveGraph(Graph({}), errors=[too_big])
        graph.compiled[memo_key] = (registry, result)
        return result
    expander = _Expander(graph.subgraphs or {}, registry)
    expander.flatten(graph.nodes, "", (), (), False, (), None)
    result = expander.resolve(graph)
    graph.compiled[memo_key] = (registry, result)
    return result


def requested_targets(graph: Graph, registry: Registry, requested: Any) -> list[str] | None:
    """Requested outputs as the effective graph knows them: a subgraph node stands for its inner output nodes
    (expanded ids `outer/inner`); any other id is kept (a missing one is then `unknown_node`)."""
    if requested is None or graph.is_plain:
        return None if requested is None else list(requested)
    effective = effective_graph(graph, registry).graph.nodes
    targets: list[str] = []
    for node_id in requested:
        node = graph.nodes.get(node_id)
        if node is None or not node.type.startswith(SUBGRAPH_TYPE_PREFIX):
            targets.append(node_id)
            continue
        inner = [n for n, inner_node in effective.items() if n.startswith(node_id + "/")
                 and getattr(registry.nodes.get(inner_node.type), "spec", None) is not None
                 and registry.nodes[inner_node.type].spec.output_node]
        targets.extend(inner or _exposed_output_sources(graph.subgraphs or {}, node, node_id, effective) or [node_id])
    return targets


def _exposed_output_sources(definitions: dict[str, Any], node: GraphNode, node_id: str,
                            effective: dict[str, GraphNode], depth: int = 0) -> list[str]:
    """The expanded inner nodes a subgraph node's exposed outputs come from (through nested subgraphs): what
    requesting a subgraph without output nodes of its own computes."""
    definition = definitions.get(node.type[len(SUBGRAPH_TYPE_PREFIX):])
    if definition is None or depth > MAX_SUBGRAPH_DEPTH:
        return []
    sources: list[str] = []
    for spec in definition.outputs.values():
        inner_id, inner = f"{node_id}/{spec['node']}", definition.nodes.get(spec["node"])
        if inner_id in effective:
            sources.append(inner_id)
        elif inner is not None and inner.type.startswith(SUBGRAPH_TYPE_PREFIX):
            sources.extend(_exposed_output_sources(definitions, inner, inner_id, effective, depth + 1))
    return list(dict.fromkeys(sources))


MAX_SUBGRAPH_DEPTH = 64            # definitions inside definitions
# nodes once every subgraph is expanded: 50,000 validate in ~0.6 s (an operator's machine), far more than a graph
# people build needs; at 200,000 a 2 KB file of nested definitions took 15 s of a shared server's CPU to check
MAX_EXPANDED_NODES = 50_000


def expansion_error(graph: Graph) -> GraphError | None:
    """`subgraph_too_large` when expanding `graph` would pass MAX_EXPANDED_NODES nodes or MAX_SUBGRAPH_DEPTH
    levels, else None. Counted per definition with a memo and an explicit stack (linear in the file, no
    recursion), before anything is expanded; definitions in a cycle count as one node (the expander reports
    the cycle)."""
    definitions = graph.subgraphs or {}
    sizes: dict[str, tuple[int, int]] = {}        # definition → (expanded nodes, nesting depth)

    def used(nodes: dict[str, GraphNode]) -> list[str]:
        return [n.type[len(SUBGRAPH_TYPE_PREFIX):] for n in nodes.values()
                if n.type.startswith(SUBGRAPH_TYPE_PREFIX) and n.type[len(SUBGRAPH_TYPE_PREFIX):] in definitions]

    def measure(nodes: dict[str, GraphNode]) -> tuple[int, int]:
        count, depth = 0, 0
        for node in nodes.values():
            name = node.type[len(SUBGRAPH_TYPE_PREFIX):] if node.type.startswith(SUBGRAPH_TYPE_PREFIX) else None
            inner = sizes.get(name, (1, 0)) if name in definitions else (1, 0)
            count, depth = count + inner[0], max(depth, inner[1] + (1 if name in definitions else 0))
            if count > MAX_EXPANDED_NODES:
                break
        return count, depth

    on_stack: set[str] = set()
    for root in used(graph.nodes):
        stack = [(root, iter(used(definitions[root].nodes)))]
        on_stack.add(root)
        while stack:
            name, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                on_stack.discard(name)
                sizes[name] = measure(definitions[name].nodes)
            elif child not in sizes and child not in on_stack:
                on_stack.add(child)
                stack.append((child, iter(used(definitions[child].nodes))))
    count, depth = measure(graph.nodes)
    if depth > MAX_SUBGRAPH_DEPTH or count > MAX_EXPANDED_NODES:
        what = (f"subgraphs nested {depth} levels deep (at most {MAX_SUBGRAPH_DEPTH})" if depth > MAX_SUBGRAPH_DEPTH
                else f"over {MAX_EXPANDED_NODES:,} nodes once its subgraphs are expanded (each use of a definition "
                     f"copies it)")
        return GraphError("subgraph_too_large", f"the graph has {what}; use fewer or flatter subgraphs",
                          details={"depth": depth, "nodes": count, "max_depth": MAX_SUBGRAPH_DEPTH,
                                   "max_nodes": MAX_EXPANDED_NODES})
    return None


def subgraph_interface(graph: Graph, name: str, registry: Registry) -> SubgraphInterface:
    """The typed ports of definition `name` in `graph` (KeyError when it is not defined)."""
    expander = _Expander(graph.subgraphs or {}, registry)
    if name not in expander.definitions:
        raise KeyError(name)
    return expander.interface(name, (), None)


class _Expander:
    """The two passes described in the module docstring; one instance per expansion."""

    def __init__(self, definitions: dict[str, SubgraphDefinition], registry: Registry):
        self.definitions = definitions
        self.registry = registry
        self.flat: dict[str, GraphNode] = {}
        self.virtual: dict[tuple[str, str], Link | _NoPassThrough] = {}
        self.virtual_nodes: set[str] = set()
        self.bypassed_outputs: list[str] = []
        self.bypassed_nodes: list[str] = []
        # (subgraph node id, exposed input) → (node id, input) in the file where its literal value was written
        self.exposed_source: dict[tuple[str, str], tuple[str, str]] = {}
        # (expanded node id, input) → the same, for inner inputs that got a literal through an exposed input
        self.literal_source: dict[tuple[str, str], tuple[str, str]] = {}
        # (expanded node id, input) whose link crosses a subgraph's edge: fed through an exposed input, or
        # reading a subgraph node's (or a bypassed node's) output — a cycle through them is the outer graph's
        self.crossing: set[tuple[str, str]] = set()
        self.errors: list[GraphError] = []
        self.origin: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self.suppressed: set[tuple[str, str]] = set()
        self.reported: set[str] = set()
        self.interfaces: dict[str, SubgraphInterface] = {}
        self.resolved: dict[tuple[str, str], Link | _NoPassThrough] = {}    # virtual output → what it stands for

    # --- ports ------------------------------------------------------------------

    def _input_port(self, node_type: str, input_name: str, stack: tuple[str, ...]) -> str | None:
        if node_type.startswith(SUBGRAPH_TYPE_PREFIX):
            name = node_type[len(SUBGRAPH_TYPE_PREFIX):]
            if name in self.definitions and name not in stack:
                return self.interface(name, stack, None).input_port(input_name)
            return None
        cls = self.registry.nodes.get(node_type)
        spec = cls.spec.inputs.get(input_name) if cls is not None else None
        return spec.port if spec is not None else None

    def _output_port(self, node_type: str, output_name: str, stack: tuple[str, ...]) -> str | None:
        if node_type.startswith(SUBGRAPH_TYPE_PREFIX):
            name = node_type[len(SUBGRAPH_TYPE_PREFIX):]
            if name in self.definitions and name not in stack:
                return self.interface(name, stack, None).output_port(output_name)
            return None
        cls = self.registry.nodes.get(node_type)
        if cls is None or output_name not in cls.spec.output_index:
            return None
        return cls.spec.outputs[cls.spec.output_index[output_name]].port

    def interface(self, name: str, stack: tuple[str, ...], used_by: str | None) -> SubgraphInterface:
        """Ports of definition `name`, typed from its inner nodes (memoised; conflicts reported once)."""
        known = self.interfaces.get(name)
        if known is not None:
            return known
        definition = self.definitions[name]
        inner_stack = (*stack, name)
        inputs = []
        for port_name in definition.inputs:
            ports = []
            for node in definition.nodes.values():
                for input_name, value in node.inputs.items():
                    if isinstance(value, Link) and value.node == SUBGRAPH_INPUTS_NODE and value.output == port_name:
                        port = self._input_port(node.type, input_name, inner_stack)
                        if port is not None and port != ANY_PORT:
                            ports.append(port)
            distinct = sorted(set(ports))
            if len(distinct) > 1:
                self.errors.append(GraphError(
                    "subgraph_port_conflict",
                    f"exposed input {port_name!r} of subgraph {name!r} feeds inner inputs of different types "
                    f"({', '.join(distinct)}); expose one input per type",
                    node_id=used_by, input=port_name,
                    details={"subgraph": name, "input": port_name, "ports": distinct}))
            inputs.append((port_name, distinct[0] if distinct else ANY_PORT))
        outputs = []
        for port_name, spec in definition.outputs.items():
            inner = definition.nodes.get(spec["node"])
            port = self._output_port(inner.type, spec["output"], inner_stack) if inner is not None else None
            outputs.append((port_name, port or ANY_PORT))
        result = SubgraphInterface(tuple(inputs), tuple(outputs))
        self.interfaces[name] = result
        return result

    # --- pass 1 -----------------------------------------------------------------

    def flatten(self, nodes: dict[str, GraphNode], prefix: str, path: tuple[str, ...], names: tuple[str, ...],
                muted: bool, stack: tuple[str, ...], exposed: dict[str, Any] | None) -> None:
        """Copy `nodes` (one graph level) into the flat namespace under `prefix`."""
        for local_id, node in nodes.items():
            node_id = prefix + local_id
            if node_id in self.flat or node_id in self.virtual_nodes:
                self.errors.append(GraphError(
                    "invalid_format",
                    f"node id {node_id!r} is used twice once subgraphs are expanded (expanded ids are "
                    f"<outer id>/<inner id>); rename one of them", node_id=node_id))
                continue
            self.origin[node_id] = ((*path, local_id), names)
            inputs = self._translate_inputs(node_id, node, prefix, names, exposed, nodes)
            mode = "mute" if muted else node.mode
            if node.type.startswith(SUBGRAPH_TYPE_PREFIX):
                self._flatten_subgraph_node(node_id, node, inputs, mode, path + (local_id,), names, stack)
            elif mode == "bypass" and node.type in self.registry.nodes:
                self._bypass(node_id, node, inputs, self.registry.nodes[node.type].spec)
            else:   # an unknown bypassed type stays, so validation names it
                self.flat[node_id] = GraphNode(node.type, inputs, node.title, "mute" if mode == "mute" else None)

    def _translate_inputs(self, node_id: str, node: GraphNode, prefix: str, names: tuple[str, ...],
                          exposed: dict[str, Any] | None, level: dict[str, GraphNode]) -> dict[str, Any]:
        inputs: dict[str, Any] = {}
        for input_name, value in node.inputs.items():
            if not isinstance(value, Link):
                inputs[input_name] = value
            elif value.node == SUBGRAPH_INPUTS_NODE and exposed is not None:
                if value.output not in exposed:
                    self.errors.append(GraphError(
                        "unknown_output",
                        f"input {input_name!r} reads exposed input {value.output!r}, which subgraph {names[-1]!r} "
                        f"does not declare (it declares: {', '.join(repr(n) for n in exposed) or 'none'}); add it "
                        f"to the definition's \"inputs\"", node_id=node_id, input=input_name,
                        details={"subgraph": names[-1], "output": value.output}))
                    self.suppressed.add((node_id, input_name))
                elif exposed[value.output] is _MISSING:
                    self.suppressed.add((node_id, input_name))   # reported on the outer node
                else:
                    inputs[input_name] = exposed[value.output]
                    if isinstance(inputs[input_name], Link):
                        self.crossing.add((node_id, input_name))
                    written = self.exposed_source.get((prefix[:-1], value.output))
                    if written is not None and not isinstance(inputs[input_name], Link):
                        self.literal_source[(node_id, input_name)] = written
            elif value.node not in level and "/" in value.node:   # into a subgraph's inner node, by expanded id
                self.errors.append(GraphError(
                    "dangling_link",
                    f"input {input_name!r} links to node {value.node!r}, an inner node of a subgraph by its expanded "
                    f"id; link to the subgraph node's exposed output instead (a definition's inner ids are its "
                    f"own)", node_id=node_id, input=input_name, details={"source_node": value.node}))
                self.suppressed.add((node_id, input_name))
            else:
                inputs[input_name] = Link(prefix + value.node, value.output)
        return inputs

    def _flatten_subgraph_node(self, node_id: str, node: GraphNode, inputs: dict[str, Any], mode: str | None,
                               path: tuple[str, ...], names: tuple[str, ...], stack: tuple[str, ...]) -> None:
        name = node.type[len(SUBGRAPH_TYPE_PREFIX):]
        definition = self.definitions.get(name)
        if definition is None or mode == "mute":
            # unknown: validation reports unknown_node_type (with the definitions there are); muted: one muted
            # node, left out of validation like any muted node (docs/graph-format.md), not expanded at all
            self.flat[node_id] = GraphNode(node.type, inputs, node.title, "mute" if mode == "mute" else None)
            return
        if name in stack:
            chain = [*stack[stack.index(name):], name]
            self.errors.append(GraphError(
                "subgraph_cycle",
                f"subgraph definitions use each other in a cycle: {' → '.join(chain)}; a subgraph cannot "
                f"contain itself, directly or through others — remove one of these uses",
                node_id=node_id, details={"chain": chain}))
            self.reported.add(node_id)
            self.flat[node_id] = GraphNode(node.type, inputs, node.title)
            return
        interface = self.interface(name, stack, node_id)
        for input_name in inputs:
            if interface.input_port(input_name) is None:
                self.errors.append(GraphError(
                    "unknown_input",
                    f"subgraph {name!r} has no exposed input {input_name!r}. Its inputs are: "
                    f"{', '.join(n for n, _ in interface.inputs) or '(none)'}.",
                    node_id=node_id, input=input_name, details={"subgraph": name}))
        self.virtual_nodes.add(node_id)
        if mode == "bypass":
            for output_name, port in interface.outputs:
                source = next((inputs[n] for n, p in interface.inputs
                               if p == port and isinstance(inputs.get(n), Link)), None)
                self.virtual[(node_id, output_name)] = source if source is not None else self._no_match(
                    node_id, node.type, output_name, port,
                    [(n, p) for n, p in interface.inputs if isinstance(inputs.get(n), Link)])
            return
        read = {v.output for n in definition.nodes.values() for v in n.inputs.values()
                if isinstance(v, Link) and v.node == SUBGRAPH_INPUTS_NODE}
        exposed: dict[str, Any] = {}
        for input_name, spec in definition.inputs.items():
            if input_name in inputs:
                exposed[input_name] = inputs[input_name]
                if not isinstance(inputs[input_name], Link):
                    self.exposed_source[(node_id, input_name)] = self.literal_source.get(
                        (node_id, input_name), (node_id, input_name))
            elif "default" in spec:
                exposed[input_name] = spec["default"]
            else:
                exposed[input_name] = _MISSING
                if input_name in read:
                    port = interface.input_port(input_name)
                    self.errors.append(GraphError(
                        "missing_input",
                        f"subgraph {name!r} needs input {input_name!r} ({port}); connect {_article(port)} {port} "
                        f"output or write a value to it (or give the exposed input a \"default\" in the definition).",
                        node_id=node_id, input=input_name, details={"subgraph": name}))
        for output_name, spec in definition.outputs.items():
            if spec["node"] not in definition.nodes:
                self.virtual[(node_id, output_name)] = _NoPassThrough(GraphError(
                    "dangling_link",
                    f"exposed output {output_name!r} of subgraph {name!r} names inner node {spec['node']!r}, "
                    f"which is not in the definition; point it at an inner node's output",
                    node_id=node_id, details={"subgraph": name, "output": output_name, "source_node": spec["node"]}))
            elif (missing := self._missing_inner_output(definition.nodes[spec["node"]], spec["output"],
                                                        (*stack, name))) is not None:
                self.virtual[(node_id, output_name)] = _NoPassThrough(GraphError(
                    "unknown_output",
                    f"exposed output {output_name!r} of subgraph {name!r} names output {spec['output']!r} of inner "
                    f"node {spec['node']!r}, which has none of that name; its outputs are: {missing}",
                    node_id=node_id, details={"subgraph": name, "output": output_name, "source_node": spec["node"],
                                              "source_output": spec["output"]}))
            else:
                self.virtual[(node_id, output_name)] = Link(f"{node_id}/{spec['node']}", spec["output"])
        self.flatten(definition.nodes, node_id + "/", path, (*names, name), mode == "mute", (*stack, name), exposed)

    def _missing_inner_output(self, inner: GraphNode, output: str, stack: tuple[str, ...]) -> str | None:
        """None when `inner` has output `output` (or its type is unknown: reported on its own), else the
        names of the outputs it has, for the error."""
        if inner.type.startswith(SUBGRAPH_TYPE_PREFIX):
            name = inner.type[len(SUBGRAPH_TYPE_PREFIX):]
            if name not in self.definitions or name in stack:
                return None
            names = [n for n, _ in self.interface(name, stack, None).outputs]
        else:
            cls = self.registry.nodes.get(inner.type)
            if cls is None:
                return None
            names = [o.name for o in cls.spec.outputs]
        return None if output in names else (", ".join(names) or "(none)")

    def _bypass(self, node_id: str, node: GraphNode, inputs: dict[str, Any], spec: Any) -> None:
        """A bypassed node becomes virtual: output k → its k-th declared input when that is linked with output k's
        port type (ApplyControlNet's negative passes its negative, as in ComfyUI), else the first linked input
        declared with that port type."""
        self.virtual_nodes.add(node_id)
        self.bypassed_nodes.append(node_id)
        if self.registry.nodes[node.type].output_node:
            self.bypassed_outputs.append(node_id)
        declared = list(spec.inputs.items())
        linked = [(n, s.port) for n, s in declared if isinstance(inputs.get(n), Link)]
        for index, output in enumerate(spec.outputs):
            same_slot = declared[index] if index < len(declared) else None
            if same_slot is not None and same_slot[1].port == output.port and isinstance(inputs.get(same_slot[0]), Link):
                source = inputs[same_slot[0]]
            else:
                source = next((inputs[n] for n, port in linked if port == output.port), None)
            self.virtual[(node_id, output.name)] = source if source is not None else self._no_match(
                node_id, node.type, output.name, output.port, linked)

    @staticmethod
    def _no_match(node_id: str, node_type: str, output: str, port: str,
                  linked: list[tuple[str, str]]) -> _NoPassThrough:
        have = ", ".join(f"{n} ({p})" for n, p in linked) or "none"
        return _NoPassThrough(GraphError(
            "bypass_no_match",
            f"{node_type} is bypassed, but its output {output!r} ({port}) is used and none of its linked inputs "
            f"is {_article(port)} {port} to pass through (linked inputs: {have}); un-bypass it, mute it, or connect "
            f"{_article(port)} {port} input",
            node_id=node_id, details={"output": output, "port": port,
                                      "inputs": [{"input": n, "port": p} for n, p in linked]}))

    # --- pass 2 -----------------------------------------------------------------

    def _resolve_link(self, link: Link) -> Link | _NoPassThrough:
        """The real link behind `link` through virtual nodes; every virtual output passed on the way remembers the
        answer, so resolving all the links of a bypass chain is linear, not quadratic in its length."""
        seen: list[tuple[str, str]] = []
        answer = self._walk(link, seen)
        for key in seen:
            self.resolved[key] = answer
        return answer

    def _walk(self, link: Link, seen: list[tuple[str, str]]) -> Link | _NoPassThrough:
        visited = set()
        while link.node in self.virtual_nodes:
            key = (link.node, link.output)
            known = self.resolved.get(key)
            if known is not None:
                return known
            target = self.virtual.get(key)
            if target is None:
                return _NoPassThrough(GraphError(
                    "unknown_output",
                    f"links to output {link.output!r} of {link.node!r}, which has no such output; its outputs are: "
                    f"{', '.join(o for n, o in self.virtual if n == link.node) or '(none)'}.",
                    details={"source_node": link.node, "output": link.output}))
            if key in visited or not isinstance(target, Link):
                return target if isinstance(target, _NoPassThrough) else _NoPassThrough(GraphError(
                    "cycle", f"bypassed nodes pass {link.node!r} through itself; remove one of these links",
                    node_id=link.node, details={"nodes": sorted(n for n, _ in visited)}))
            visited.add(key)
            seen.append(key)
            link = target
        return link

    def resolve(self, graph: Graph) -> EffectiveGraph:
        """Resolve links through virtual nodes, drop muted nodes and their dependents."""
        unresolved: list[tuple[str, str, _NoPassThrough]] = []     # (consumer, input, why)
        nodes: dict[str, GraphNode] = {}
        dependents: dict[str, list[str]] = {}
        for node_id, node in self.flat.items():
            inputs = {}
            for input_name, value in node.inputs.items():
                if isinstance(value, Link):
                    resolved = self._resolve_link(value)
                    if isinstance(resolved, _NoPassThrough):
                        self.suppressed.add((node_id, input_name))
                        unresolved.append((node_id, input_name, resolved))
                        continue
                    dependents.setdefault(resolved.node, []).append(node_id)
                    if value.node in self.virtual_nodes:      # through a subgraph node's (or a bypass's) output
                        self.crossing.add((node_id, input_name))
                    value = resolved
                inputs[input_name] = value
            nodes[node_id] = GraphNode(node.type, inputs, node.title, node.mode)
        muted = [n for n, node in nodes.items() if node.mode == "mute"]
        gone = set(muted)
        stack = list(muted)
        while stack:
            for dependent in dependents.get(stack.pop(), ()):
                if dependent not in gone:
                    gone.add(dependent)
                    stack.append(dependent)
        reported: set[int] = set()
        for node_id, input_name, why in unresolved:     # only what a kept node uses is an error
            if node_id in gone:
                continue
            error = why.error
            if error.node_id is None:
                self.errors.append(GraphError(error.code, f"input {input_name!r} {error.message}", node_id,
                                              input_name, error.details))
            elif id(why) not in reported:
                reported.add(id(why))
                self.errors.append(error)
        skipped = tuple(muted) + tuple(n for n in nodes if n in gone and nodes[n].mode != "mute")
        kept = {n: node for n, node in nodes.items() if n not in gone}
        plain = Graph(kept, graph.metadata, graph.ui, graph.has_ui)
        return EffectiveGraph(plain, self.errors, skipped, self.origin, self.suppressed, self.reported,
                              tuple(self.definitions), tuple(self.bypassed_outputs), self.literal_source,
                              self.crossing, tuple(self.bypassed_nodes), self._mute_causes(nodes, gone, muted))

    def _mute_causes(self, nodes: dict[str, GraphNode], gone: set[str],
                     muted: list[str]) -> tuple[tuple[str, str], ...]:
        """(id, type) of the muted nodes that are output nodes or feed one through skipped nodes, in file order: one
        walk upstream from the skipped output nodes, linear in the skipped part of the graph."""
        def is_output(node: GraphNode) -> bool:
            spec = getattr(self.registry.nodes.get(node.type), "spec", None)
            return spec is not None and bool(spec.output_node)

        stack = [n for n in gone if is_output(nodes[n])]
        reached = set(stack)
        while stack:
            for value in nodes[stack.pop()].inputs.values():
                if isinstance(value, Link) and value.node in gone and value.node not in reached:
                    reached.add(value.node)
                    stack.append(value.node)
        return tuple((n, nodes[n].type) for n in muted if n in reached)


class _Missing:
    def __repr__(self) -> str:
        return "<no value>"


_MISSING = _Missing()
