"""The graph file: one JSON format for the editor and headless runs.

Format (version 2; docs/graph-format.md is the reference)::

    {
      "format_version": 2,
      "metadata": {"title": "...", ...},          # optional, free-form
      "nodes": {
        "seed": {"type": "Int", "inputs": {"value": 42}},
        "show": {"type": "ShowValue", "title": "Result",
                 "inputs": {"value": {"node": "seed", "output": "value"}}},
        "off":  {"type": "Int", "mode": "mute", "inputs": {}}   # optional mode: bypass | mute
      },
      "subgraphs": {"name": {"inputs": {...}, "outputs": {...}, "nodes": {...}}},  # optional
      "ui": {...}                                  # optional, ignored by execution
    }

- Nodes are keyed by string id; inputs are keyed by NAME, never position.
- An input value is a literal, or a link: an object with exactly the keys
  `node` (a node id) and `output` (an output name of that node).
- `ui` holds editor state (positions, groups, notes) and is carried through
  unchanged; `metadata` likewise.
- `mode` and `subgraphs` are stored here as written (`GraphNode.mode`,
  `SubgraphDefinition`); what they mean for a run — pass-through, skipping,
  expansion with namespaced ids — is applied by effective_graph.py.
- Files from other tools are recognised (`foreign_format`); `import_foreign`
  converts a ComfyUI API prompt, keeping unknown node types with their data.

Older versions are migrated on load (`MIGRATIONS`, one function per step, pure
JSON → JSON); a loaded graph saves back to the same JSON (`Graph.to_dict`).

Main objects: `Graph`, `GraphNode`, `Link`, `SubgraphDefinition`; `parse_graph` (bytes, text, dict
or Graph → Graph, raising `GraphValidationError` with `invalid_json` /
`invalid_format` / `unsupported_version` errors, all collected); `load_graph`
(a path; a video, audio, 3D or JPEG file is named as such, with how to get its graph out:
`media_kind`); `graph_file_schema()` (JSON Schema of the file format: versions
`SCHEMA_VERSIONS`, the object-shaped ones; a pre-release v0 file is still migrated
on load but is not described by the schema).
Semantic checks (types, ranges, links) live in validation.py.
"""

from __future__ import annotations

import json
import os
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .errors import GraphError, GraphValidationError

FORMAT_VERSION = 2
SCHEMA_VERSIONS = (1, 2)            # what graph_file_schema accepts: v1 is v2 without the optional mode/subgraphs
MAX_FILE_BYTES = 64 * 1024 * 1024   # a graph is a few KB; 64 MiB is generous and bounded
MAX_VALUE_DEPTH = 32                # literal inputs are scalars or small lists
NODE_MODES = ("bypass", "mute")     # absent = the node runs normally
SUBGRAPH_TYPE_PREFIX = "subgraph:"  # a node of type "subgraph:<name>" uses subgraphs[<name>]
MAX_NODE_ID_CHARS = 256             # a node id is a name people read (in errors, --set, the editor)
# Unicode categories a node id may not hold: control (Cc), format — bidi overrides that make "s\u202egnp.exe" show
# as "sexe.png", zero-width spaces, BOM — (Cf), lone surrogates (Cs), line / paragraph separators (Zl, Zp),
# private use and unassigned (Co, Cn)
_UNREADABLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
SUBGRAPH_INPUTS_NODE = "$inputs"    # the reserved inner node id whose outputs are the exposed inputs
_NODE_KEYS = ("type", "inputs", "title", "mode")
_TOP_KEYS = ("format_version", "metadata", "nodes", "subgraphs", "ui")
_SUBGRAPH_KEYS = ("metadata", "inputs", "outputs", "nodes", "ui")
_SUBGRAPH_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.")


@dataclass(frozen=True, slots=True)
class Link:
    """A reference to output `output` of node `node`."""

    node: str
    output: str

    def to_dict(self) -> dict[str, str]:
        return {"node": self.node, "output": self.output}


class FrozenDict(dict):
    """A dict that refuses changes: a loaded graph's nodes and each node's inputs.

    A Graph's plan, literal digests and cache keys are computed once and memoised on it, so changing it in
    place ran the old values, and a PNG's embedded graph named the new ones (a Python user's finding: seed 1234
    set on a loaded graph drew seed 42's image, labelled 1234). Reading is a plain dict's, at its speed.
    """

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("a loaded graph does not change in place (its plan and cache keys are computed once): "
                        "make a changed copy with graph.with_overrides({'node.input': value}), or edit the graph's "
                        "dict (graph.to_dict()) and load that")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = __ior__ = _refuse

    def __reduce__(self) -> Any:        # pickle / deepcopy (a Ray worker gets graphs pickled)
        return (type(self), (dict(self),))

    def __copy__(self) -> FrozenDict:
        return self


@dataclass(frozen=True, slots=True)
class GraphNode:
    """One node instance in a graph: its type and its inputs (literals or Links; a FrozenDict)."""

    type: str
    inputs: dict[str, Any]
    title: str | None = None
    mode: str | None = None          # None, "bypass" or "mute" (NODE_MODES)

    def __post_init__(self) -> None:
        if type(self.inputs) is not FrozenDict:
            object.__setattr__(self, "inputs", FrozenDict(self.inputs))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type,
                               "inputs": {k: v.to_dict() if isinstance(v, Link) else v
                                          for k, v in self.inputs.items()}}
        if self.title is not None:
            out["title"] = self.title
        if self.mode is not None:
            out["mode"] = self.mode
        return out


@dataclass(slots=True)
class SubgraphDefinition:
    """A graph used as a node (`"type": "subgraph:<name>"`), with its exposed ports.

    inputs: exposed input name → `{"default"?: literal, "title"?: str}`, in port order.
    outputs: exposed output name → `{"node": inner id, "output": name, "title"?: str}`, in port order.
    nodes: inner nodes; they read exposed inputs through links to `SUBGRAPH_INPUTS_NODE`.
    """

    name: str
    nodes: dict[str, GraphNode]
    inputs: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]
    metadata: dict[str, Any] | None = None
    ui: Any = None
    has_ui: bool = False
    present: tuple[str, ...] = ()    # which optional keys the file wrote (so saving round-trips)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.metadata is not None:
            out["metadata"] = self.metadata
        if self.inputs or "inputs" in self.present:
            out["inputs"] = self.inputs
        if self.outputs or "outputs" in self.present:
            out["outputs"] = self.outputs
        out["nodes"] = {nid: node.to_dict() for nid, node in self.nodes.items()}
        if self.has_ui:
            out["ui"] = self.ui
        return out


@dataclass(eq=False)
class Graph:
    """A parsed graph; its nodes and their inputs cannot change (FrozenDict): `with_overrides` returns a
    changed copy.

    `compiled` is a per-registry memo filled by the executor (topological order,
    literal digests) so that re-running the same Graph object costs only the
    cache look-ups.
    """

    nodes: dict[str, GraphNode]
    metadata: dict[str, Any] | None = None
    ui: Any = None
    has_ui: bool = False
    compiled: dict[Any, Any] = field(default_factory=dict, repr=False)
    subgraphs: dict[str, SubgraphDefinition] | None = None   # None: the file has no "subgraphs" key

    def __post_init__(self) -> None:
        if type(self.nodes) is not FrozenDict:
            self.nodes = FrozenDict(self.nodes)

    @property
    def is_plain(self) -> bool:
        """True when no node has a mode and there are no subgraphs: the effective graph is the graph."""
        return not self.subgraphs and all(n.mode is None for n in self.nodes.values())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format_version": FORMAT_VERSION}
        if self.metadata is not None:
            out["metadata"] = self.metadata
        out["nodes"] = {nid: node.to_dict() for nid, node in self.nodes.items()}
        if self.subgraphs is not None:
            out["subgraphs"] = {name: d.to_dict() for name, d in self.subgraphs.items()}
        if self.has_ui:
            out["ui"] = self.ui
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(self.to_json() + "\n", encoding="utf-8")

    def upstream_of(self, node_ids: Iterable[str]) -> Graph:
        """The part of the graph the nodes `node_ids` need: them and every node their links reach, with this
        graph's metadata and subgraph definitions (memoised in `compiled`); an id `outer/inner` (a subgraph's
        inner node) needs its subgraph node `outer`. Returns this graph itself when an id is not a node here
        (`Session` names it first: `unknown_node`) or nothing is left out.

        What a run of chosen outputs checks and runs (`Session.run(outputs=)`, `nodegraph run --output`):
        a broken node elsewhere in the file does not stop it, as ComfyUI runs the outputs that validate."""
        wanted = tuple(dict.fromkeys(node_ids))
        memo_key = ("upstream_of", wanted)
        if memo_key in self.compiled:
            return self.compiled[memo_key]
        # an inner node of a subgraph (`outer/inner`, as the effective graph names it) needs its subgraph node
        roots = [node_id if node_id in self.nodes else node_id.split("/", 1)[0] for node_id in wanted]
        if not roots or any(root not in self.nodes for root in roots):
            return self
        needed: dict[str, None] = {}
        stack = roots
        while stack:
            node_id = stack.pop()
            if node_id in needed or node_id not in self.nodes:      # a dangling link: validation names it
                continue
            needed[node_id] = None
            stack.extend(value.node for value in self.nodes[node_id].inputs.values() if isinstance(value, Link))
        if len(needed) == len(self.nodes):
            part = self
        else:
            part = Graph({node_id: node for node_id, node in self.nodes.items() if node_id in needed},
                         metadata=self.metadata, subgraphs=self.subgraphs)
        self.compiled[memo_key] = part
        return part

    def with_overrides(self, overrides: dict[str, Any]) -> Graph:
        """A copy with literal inputs replaced: `{"node_id.input": value}`.

        Raises GraphValidationError (`unknown_node`, `invalid_format`) for keys
        that do not name an existing node and an input, and `override_replaces_link`
        for a literal given for a linked input (it would silently cut the link).
        """
        errors: list[GraphError] = []
        nodes = dict(self.nodes)
        for key, value in overrides.items():
            node_id, dot, input_name = str(key).rpartition(".")
            if not dot or not node_id or not input_name:
                errors.append(GraphError("invalid_format",
                                         f"override {key!r} must look like 'node_id.input_name'"))
                continue
            if node_id not in nodes:
                errors.append(GraphError("unknown_node",
                                         f"override {key!r} names node {node_id!r}, which is not in the graph; "
                                         f"node ids are: {_preview(sorted(nodes))}", node_id=node_id))
                continue
            old = nodes[node_id]
            parsed = _parse_input_value(value)
            current = old.inputs.get(input_name)
            if isinstance(current, Link) and not isinstance(parsed, Link):
                errors.append(GraphError(
                    "override_replaces_link",
                    f"override {key!r} would replace a link: input {input_name!r} of node {node_id!r} comes from "
                    f"node {current.node!r} (output {current.output!r}); "
                    f"{_where_to_set(current.node, nodes.get(current.node))}, or unlink the input in the graph",
                    node_id=node_id, input=input_name,
                    details={"source_node": current.node, "output": current.output}))
                continue
            nodes[node_id] = GraphNode(old.type, {**old.inputs, input_name: parsed}, old.title, old.mode)
        if errors:
            raise GraphValidationError(errors)
        return Graph(nodes, self.metadata, self.ui, self.has_ui, subgraphs=self.subgraphs)


def _renamed_nodes(nodes: dict[str, GraphNode], renames: dict[str, dict[str, str]]) -> dict[str, GraphNode] | None:
    """`nodes` with each node's inputs renamed by `renames[node type]`, or None when nothing applies."""
    out = None
    for node_id, node in nodes.items():
        mapping = renames.get(node.type)
        if not mapping or not any(name in mapping for name in node.inputs):
            continue
        out = out if out is not None else dict(nodes)
        inputs = {(mapping[name] if name in mapping and mapping[name] not in node.inputs else name): value
                  for name, value in node.inputs.items()}
        out[node_id] = GraphNode(node.type, inputs, node.title, node.mode)
    return out


def with_renamed_inputs(graph: Graph, renames: dict[str, dict[str, str]]) -> Graph:
    """`graph` with each node's inputs renamed by `renames[node type]` (old name → new name; an old name is
    kept when the node also writes the new one, so validation names the clash), inside subgraph definitions
    too (an old graph's subgraph failed with `unknown_input`); the same object when nothing applies."""
    nodes = _renamed_nodes(graph.nodes, renames)
    subgraphs = graph.subgraphs
    if subgraphs:
        changed = {name: _renamed_nodes(definition.nodes, renames) for name, definition in subgraphs.items()}
        if any(inner is not None for inner in changed.values()):
            subgraphs = {name: (definition if changed[name] is None else replace(definition, nodes=changed[name]))
                         for name, definition in subgraphs.items()}
    if nodes is None and subgraphs is graph.subgraphs:
        return graph
    return Graph(graph.nodes if nodes is None else nodes, graph.metadata, graph.ui, graph.has_ui, subgraphs=subgraphs)


def renamed_input_uses(graph: Graph, renames: dict[str, dict[str, str]]) -> list[tuple[str, str, str, str]]:
    """(node id — "subgraph/node" inside a subgraph definition —, node type, old name, new name) for each input
    `graph` still writes under a name its node class renamed: it runs (`with_renamed_inputs`), and a front end
    tells the user to save it with the new name."""
    places = [("", graph.nodes)] + [(f"{name}/", definition.nodes) for name, definition in (graph.subgraphs or {}).items()]
    return [(prefix + node_id, node.type, name, renames[node.type][name])
            for prefix, nodes in places for node_id, node in nodes.items()
            for name in node.inputs if name in renames.get(node.type, {})]


def topological_order(nodes: dict[str, GraphNode]) -> tuple[list[str], list[str]]:
    """Kahn's algorithm over links between existing nodes: (order, nodes left over).

    Linear in nodes + links. Nodes left over lie on or behind a cycle; an empty
    second list means the graph is acyclic. Ties keep the file's node order.
    """
    indegree = dict.fromkeys(nodes, 0)
    dependents: dict[str, list[str]] = {}
    for node_id, node in nodes.items():
        for value in node.inputs.values():
            if isinstance(value, Link) and value.node in indegree:
                indegree[node_id] += 1
                dependents.setdefault(value.node, []).append(node_id)
    ready = [n for n, d in indegree.items() if d == 0]
    ready.reverse()
    order = []
    while ready:
        node_id = ready.pop()
        order.append(node_id)
        for dependent in dependents.get(node_id, ()):
            indegree[dependent] -= 1
            if indegree[dependent] == 0:
                ready.append(dependent)
    if len(order) == len(nodes):
        return order, []
    placed = set(order)
    return order, [n for n in nodes if n not in placed]


def _where_to_set(node_id: str, node: GraphNode | None) -> str:
    """The advice of `override_replaces_link`: set the value on the node it comes from, naming that node's
    literal inputs in the graph (a Float's `value`, an EncodeText's `text`), since only they can be --set."""
    literals = [name for name, value in (node.inputs if node else {}).items() if not isinstance(value, Link)]
    if len(literals) == 1:
        return f"set the value where it comes from: --set {node_id}.{literals[0]}=..."
    if literals:
        return (f"set the value where it comes from, one of node {node_id!r}'s inputs "
                f"({', '.join(literals)}): e.g. --set {node_id}.{literals[0]}=...")
    kind = f" ({node.type})" if node else ""
    return (f"set the value on node {node_id!r}{kind}, where it comes from (`nodegraph nodes "
            f"{node.type if node else 'TYPE'}` lists its inputs)")


def _preview(items: list[str], limit: int = 12) -> str:
    shown = ", ".join(repr(i) for i in items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def _parse_input_value(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"node", "output"} \
            and isinstance(value["node"], str) and isinstance(value["output"], str):
        return Link(value["node"], value["output"])
    return value


# --- migrations --------------------------------------------------------------

def _migrate_v0_to_v1(data: dict) -> dict:
    """v0 (pre-release): nodes were a list with "id" and "pos"; links were [id, output] pairs."""
    nodes_in = data.get("nodes")
    if not isinstance(nodes_in, list):
        raise ValueError('version 0 files have "nodes" as a list of objects with an "id"')
    ids = {str(n.get("id")) for n in nodes_in if isinstance(n, dict)}
    nodes: dict[str, Any] = {}
    ui_nodes: dict[str, Any] = {}
    for n in nodes_in:
        if not isinstance(n, dict) or "id" not in n:
            raise ValueError("every version 0 node must be an object with an \"id\"")
        nid = str(n["id"])
        if nid in nodes:
            raise ValueError(f"node id {nid!r} appears twice (ids compare as text, so 1 and \"1\" are one id); "
                             f"give each node its own id")
        inputs = {}
        for name, value in (n.get("inputs") or {}).items():
            if (isinstance(value, list) and len(value) == 2 and isinstance(value[1], str)
                    and str(value[0]) in ids):
                inputs[name] = {"node": str(value[0]), "output": value[1]}
            else:
                inputs[name] = value
        nodes[nid] = {"type": n.get("type"), "inputs": inputs}
        if "title" in n:
            nodes[nid]["title"] = n["title"]
        if "pos" in n:
            ui_nodes[nid] = {"position": n["pos"]}
    out: dict[str, Any] = {"format_version": 1, "nodes": nodes}
    if isinstance(data.get("metadata"), dict):
        out["metadata"] = data["metadata"]
    if ui_nodes:
        out["ui"] = {"nodes": ui_nodes}
    return out


def _migrate_v1_to_v2(data: dict) -> dict:
    """v1 → v2: v2 only adds optional keys (node `mode`, `subgraphs`), so only the number changes."""
    return {**data, "format_version": 2}


# MIGRATIONS[v] turns a version-v dict into a version-(v+1) dict.
MIGRATIONS: dict[int, Callable[[dict], dict]] = {0: _migrate_v0_to_v1, 1: _migrate_v1_to_v2}


# --- files from other tools ----------------------------------------------------

def foreign_format(data: Any) -> tuple[str, str] | None:
    """(tool, format) when `data` is a graph file of another tool, else None.

    Recognised: a ComfyUI API-format prompt (`{"3": {"class_type": ..., "inputs": ...}}`), a
    ComfyUI UI-format workflow (`{"nodes": [...], "links": [...], ...}`, no "format_version"), and
    AUTOMATIC1111's generation parameters as `{"parameters": TEXT}` (an image's "PNG Info": nodegraph/a1111.py).
    """
    if not isinstance(data, dict) or "format_version" in data:
        return None
    if set(data) == {"parameters"} and isinstance(data["parameters"], str):
        return ("a1111", "parameters")
    if isinstance(data.get("nodes"), list) and isinstance(data.get("links"), list):
        return ("comfyui", "workflow")
    if data and all(isinstance(v, dict) and "class_type" in v for v in data.values()):
        return ("comfyui", "api")
    return None


def _foreign_error(tool: str, kind: str) -> GraphError:
    if kind == "api":
        message = ("this is a ComfyUI API-format prompt, not a nodegraph graph; convert it with "
                   "Session.import_comfyui (or the server's import_graph message; `nodegraph run` does): its nodes keep their "
                   "ComfyUI types and data, and validation names the ones nodegraph lacks")
    else:
        message = ("this is a ComfyUI UI-format workflow, not a nodegraph graph; convert it with "
                   "Session.import_comfyui (or the server's import_graph message; `nodegraph run` and the "
                   "editor do): the widget values of the classes with an equivalent here are named, other nodes "
                   "keep their ComfyUI types and values")
    return GraphError("foreign_format", message, details={"tool": tool, "format": kind})


def import_foreign(data: Any, output_names: Callable[[str], list[str] | None] | None = None,
                   widget_names: Callable[[str], tuple[str | None, ...] | None] | None = None,
                   plugin_classes: Mapping[str, Any] | None = None,
                   list_model_files: Callable[[str], tuple[list[str], list[str]]] | None = None) -> dict:
    """A ComfyUI API-format prompt or UI workflow → a version-2 graph dict (unknown types keep their data).

    An entry whose `class_type` has an equivalent here (`comfyui.EQUIVALENTS`: CheckpointLoaderSimple,
    CLIPTextEncode, KSampler, ...) becomes that node, its inputs renamed (`metadata.comfyui_types` keeps
    the original class of each; `metadata.translated_values` each value translated to ours, e.g. a
    Real-ESRGAN file name to the built-in model of the same weights; a UI workflow's subgraph instances are
    expanded into their inner nodes first, `comfyui.expand_subgraphs`, listed in `metadata.comfyui_subgraphs`). Any
    other entry becomes a node with `type` = its `class_type`,
    `title` = `_meta.title`, literal
    inputs as they are, and `[source_id, index]` pairs naming an entry of the prompt become links
    `{"node": source_id, "output": name}` where name is `output_names(type)[index]` when that
    callable knows the source's type (e.g. `lambda t: [o.name for o in registry.nodes[t].spec.outputs]`),
    else the name a UI workflow gave that output (`_meta.output_names`), else `str(index)`. An imported EmptyLatentImage gets the VAE the prompt decodes with, when there is
    one (`metadata.linked_vae`). A UI workflow is read as ComfyUI runs it (`comfyui.workflow_to_prompt`:
    widget values named — a plugin's node type by `widget_names(type)`, `Session.widget_names` — muted nodes left
    out, bypassed ones passed through; its groups and its Note / MarkdownNote nodes go to `ui.groups` and `ui.notes`,
    `comfyui.workflow_groups` / `workflow_notes`). A CLIPSetLastLayer becomes the `clip_skip` of the encoders it feeds
    (`comfyui.fold_clip_set_last_layer`; `metadata.comfyui_folded`, and a `translated_values` entry). A
    KSamplerAdvanced over part of its schedule becomes a Sample of its id fed by `<id>.schedule`, `<id>.split_start`,
    … (`comfyui.split_schedule_nodes`; each listed in `metadata.comfyui_types` as KSamplerAdvanced; an entry
    already holding one of those ids is refused, `invalid_format` naming it). A1111's
    parameters go to `a1111.parameters_graph` with `list_model_files` (`ModelPaths.list`), which names the LoRA,
    VAE and embedding files they mean. Raises GraphValidationError
    (`invalid_format`) when `data` is neither. `Session.import_comfyui` calls it with the session's output names.
    """
    kind = foreign_format(data)
    if kind is None:
        raise GraphValidationError([GraphError(
            "invalid_format", "not a graph file of a tool nodegraph can import (a ComfyUI API-format prompt or "
                              "UI workflow, or A1111's parameters as {\"parameters\": text})")])
    if kind[0] == "a1111":
        from .a1111 import parameters_graph

        return parameters_graph(data["parameters"], list_model_files=list_model_files)
    source_format = "comfyui-api"
    groups: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []               # Note / MarkdownNote nodes, as the editor's notes (UI workflows)
    subgraphs: list[dict[str, Any]] = []           # the ComfyUI subgraph instances expanded (UI workflows)
    bypassed_left_out: list[dict[str, Any]] = []   # bypassed nodes of types we lack, left out (UI workflows)

    def known_type(class_type: str) -> bool:
        from .comfyui import EQUIVALENTS

        return class_type in EQUIVALENTS or class_type in (plugin_classes or {}) or (
            output_names is not None and output_names(class_type) is not None)

    if kind[1] == "workflow":
        from .comfyui import WorkflowError, expand_subgraphs, workflow_groups, workflow_notes, workflow_to_prompt

        try:
            expanded = expand_subgraphs(data, subgraphs)
            groups = workflow_groups(expanded)         # the editor shows them as ours (ui.groups)
            notes = workflow_notes(expanded)           # text on the canvas, never run (ui.notes)
            data = workflow_to_prompt(expanded, known_type, bypassed_left_out, widget_names, plugin_classes)
        except WorkflowError as exc:
            raise GraphValidationError([GraphError("invalid_format", f"this ComfyUI workflow cannot be read: {exc}",
                                                   details={"tool": "comfyui", "format": "workflow"})]) from None
        if not data:
            raise GraphValidationError([GraphError("invalid_format", "this ComfyUI workflow has no nodes to import",
                                                   details={"tool": "comfyui", "format": "workflow"})])
        source_format = "comfyui-workflow"
    problems = []
    for raw_id, entry in data.items():
        if not isinstance(entry.get("class_type"), str) or not entry["class_type"]:
            problems.append(GraphError("invalid_format", f'entry {str(raw_id)[:64]!r}: "class_type" must be a node '
                                                         f'type name (text), found {_a_json_type(entry["class_type"])}',
                                       node_id=str(raw_id)[:64]))
        if not isinstance(entry.get("inputs", {}), (dict, type(None))):
            problems.append(GraphError("invalid_format", f'entry {str(raw_id)[:64]!r}: "inputs" must be an object of '
                                                         f'input name → value, found {_a_json_type(entry["inputs"])}',
                                       node_id=str(raw_id)[:64]))
    if problems:
        raise GraphValidationError(problems[:50])
    from .comfyui import (SPLIT_SCHEDULE_SAMPLE, equivalent_for, fold_clip_set_last_layer, fold_note,
                          split_schedule_nodes, translate_inputs)

    data, folded = fold_clip_set_last_layer(data)       # CLIPSetLastLayer → its encoders' clip_skip
    # each entry's node here, chosen by its class and, for a few classes, its values (KSamplerAdvanced)
    equivalents = {str(k): equivalent_for(v["class_type"], v.get("inputs") or {}, plugin_classes)
                   for k, v in data.items()}
    # a split KSamplerAdvanced's nodes ("10.schedule") need free ids: one taken is refused, naming it (it was left a
    # placeholder, whose error listed reasons that did not apply: links, no step, leftover noise)
    clashes = []
    for node_id, entry in ((str(k), v) for k, v in data.items() if equivalents[str(k)] is SPLIT_SCHEDULE_SAMPLE):
        made = list(split_schedule_nodes(node_id, dict(entry.get("inputs") or {}))[1])
        clashes += [GraphError("invalid_format", f"entry {node_id[:64]!r} is a KSamplerAdvanced over part of its "
                                                 f"schedule, which imports as a Sample of that id fed by new nodes "
                                                 f"{', '.join(made)[:600]}; but the file already has an entry "
                                                 f"{taken[:80]!r}: give that entry another id (and change the links "
                                                 f"to it), then import again",
                               node_id=node_id[:64], details={"taken_id": taken[:80]})
                    for taken in made if taken in equivalents]
    if clashes:
        raise GraphValidationError(clashes[:50])

    def names_of(source: str) -> list[str] | None:
        equivalent = equivalents[source]
        if equivalent is not None:
            return list(equivalent.outputs)
        return output_names(by_id[source]["class_type"]) if output_names is not None else None

    ids = {str(k) for k in data}
    by_id = {str(k): v for k, v in data.items()}
    nodes: dict[str, Any] = {}
    ui_nodes: dict[str, Any] = {}
    translated: dict[str, str] = {}
    translated_values: list[dict[str, str]] = []
    for raw_id, entry in data.items():
        node_type = entry["class_type"]
        inputs: dict[str, Any] = {}
        for name, value in (entry.get("inputs") or {}).items():
            # ComfyUI reads every [id, index] pair as a link: one to an entry the prompt lacks stays a link
            # (validation names it `dangling_link`), not a list literal nothing would report
            if (isinstance(value, list) and len(value) == 2 and type(value[0]) in (str, int)
                    and type(value[1]) is int):
                source = str(value[0])
                names = (names_of(source) or _workflow_output_names(by_id[source])) \
                    if source in ids else None
                output = names[value[1]] if names and 0 <= value[1] < len(names) else str(value[1])
                inputs[str(name)] = {"node": source, "output": output}
            else:
                inputs[str(name)] = value
        equivalent = equivalents[str(raw_id)]
        made: dict[str, Any] = {}      # a KSamplerAdvanced over part of its schedule: its Schedule, SplitSigmas, …
        if equivalent is not None:
            translated[str(raw_id)] = node_type
            changed: list[tuple[str, str, str]] = []
            if equivalent is SPLIT_SCHEDULE_SAMPLE:
                inputs, made = split_schedule_nodes(str(raw_id), inputs, changed)
                node_type = equivalent.type
            else:
                node_type, inputs = equivalent.type, translate_inputs(equivalent, inputs, changed)
            translated_values += [{"node": str(raw_id), "input": name, "from": before, "to": after}
                                  for name, before, after in changed]
        node: dict[str, Any] = {"type": node_type, "inputs": inputs}
        meta = entry.get("_meta")
        if isinstance(meta, dict) and isinstance(meta.get("title"), str):
            node["title"] = meta["title"]
        if isinstance(meta, dict) and meta.get("mode") in ("mute", "bypass"):     # from a UI workflow
            node["mode"] = meta["mode"]
        if isinstance(meta, dict):                 # a UI workflow's layout, seed controls and colours, for the editor
            shown = {key: meta[key] for key in ("position", "seed_modes", "color", "bgcolor", "collapsed")
                     if key in meta}
            if shown:
                ui_nodes[str(raw_id)] = shown
        nodes[str(raw_id)] = node
        for made_id, made_node in made.items():
            nodes[made_id] = made_node
            translated[made_id] = entry["class_type"]
    metadata = {"imported_from": source_format, "comfyui_types": translated}
    linked = _link_empty_latents_to_their_vae(nodes, translated)
    if linked:
        metadata["linked_vae"] = linked
    if folded:
        metadata["comfyui_folded"] = folded
        translated_values += [fold_note(record) for record in folded]
    if translated_values:
        metadata["translated_values"] = translated_values
    if subgraphs:
        metadata["comfyui_subgraphs"] = subgraphs
    if bypassed_left_out:
        metadata["comfyui_bypassed_left_out"] = bypassed_left_out
    ui = {**({"nodes": ui_nodes} if ui_nodes else {}), **({"groups": groups} if groups else {}),
          **({"notes": notes} if notes else {})}
    return {"format_version": FORMAT_VERSION, "metadata": metadata, "nodes": nodes, **({"ui": ui} if ui else {})}


def _workflow_output_names(entry: dict) -> list[str] | None:
    """The output names a UI workflow wrote for an entry (`comfyui.workflow_to_prompt`'s `_meta.output_names`)."""
    meta = entry.get("_meta")
    names = meta.get("output_names") if isinstance(meta, dict) else None
    return names if isinstance(names, list) and all(isinstance(n, str) for n in names) else None


def _link_empty_latents_to_their_vae(nodes: dict[str, Any], translated: dict[str, str]) -> list[str]:
    """ComfyUI's EmptyLatentImage knows no VAE (every SD latent is 1/8 of the image); ours reads the latent
    layout from the VAE it is given, else assumes SD's. When the prompt decodes with one VAE only, the imported
    EmptyLatents get that VAE, so a 64×64 request is 64×64 pixels on a model whose VAE downsamples by
    another factor (the shipped tiny model's: 4) instead of 32×32. Returns the ids it linked."""
    sources = {json.dumps(node["inputs"]["vae"], sort_keys=True) for node in nodes.values()
               if node["type"] == "VAEDecode" and isinstance(node["inputs"].get("vae"), dict)}
    if len(sources) != 1:
        return []
    vae = json.loads(next(iter(sources)))
    linked = []
    for node_id, node in nodes.items():
        if translated.get(node_id) == "EmptyLatentImage" and "vae" not in node["inputs"]:
            node["inputs"]["vae"] = dict(vae)
            linked.append(node_id)
    return linked


def file_version(data: dict) -> Any:
    """The format version a graph dict declares (v0 files used the key "version")."""
    if "format_version" in data:
        return data["format_version"]
    if data.get("version") == 0:
        return 0
    return None


def migrate(data: dict) -> dict:
    """Apply migrations until the dict is at FORMAT_VERSION; raises GraphValidationError."""
    version = file_version(data)
    if version is None and foreign_format(data) is not None:
        raise GraphValidationError([_foreign_error(*foreign_format(data))])
    if version is None and isinstance(data.get("prompt"), dict) and foreign_format(data["prompt"]) is not None:
        raise GraphValidationError([GraphError(      # the body of a POST to ComfyUI's /prompt
            "foreign_format", 'this is the body of a request to ComfyUI\'s /prompt ({"prompt": {...}, ...}): give '
                              'its "prompt" object alone (ComfyUI\'s Export (API) file), which nodegraph imports',
            details={"tool": "comfyui", "format": "api_request"})])
    if version is None and (held := next((key for key in ("graph", "base_graph") if isinstance(data.get(key), dict)
                                          and "nodes" in data[key]), None)) is not None:
        written = "`nodegraph run`'s <graph>.outputs.json" if held == "graph" else "a sweep's index.json"
        raise GraphValidationError([GraphError(       # a record of a run: the graph it ran is one of its keys
            "invalid_format",
            f'this is a run record ({written}), not a graph: the graph it ran is under its "{held}" key; run that '
            f"(`jq .{held} RECORD > graph.json`, or from Python `session.run(json.load(open(RECORD))[\"{held}\"])`)")])
    if version is None:
        near = next((key for key in ("version", "formatVersion", "format-version", "format") if key in data), None)
        hint = f' (it has "{near}": is that meant?)' if near is not None else ""
        raise GraphValidationError([GraphError(
            "invalid_format",
            f'the graph has no "format_version"{hint}; add "format_version": {FORMAT_VERSION} at the top level')])
    if isinstance(version, float) and version.is_integer():     # 2.0 is 2, as JSON Schema's "integer" reads it
        version = int(version)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        fix = ("write it without quotes" if isinstance(version, str) else
               "versions start at 0" if isinstance(version, int) and not isinstance(version, bool) else
               "write a whole number")
        raise GraphValidationError([GraphError(
            "invalid_format",
            f"format_version must be a whole number (0 to {FORMAT_VERSION}), found {json.dumps(version)}; "
            f'{fix}, e.g. "format_version": {FORMAT_VERSION}',
            details={"found": version, "supported": list(range(FORMAT_VERSION + 1))})])
    if version > FORMAT_VERSION:
        raise GraphValidationError([GraphError(
            "unsupported_version",
            f"format_version {version!r} is not readable by this nodegraph, which reads versions "
            f"0 to {FORMAT_VERSION}; upgrade nodegraph or re-export the graph",
            details={"found": version, "supported": list(range(FORMAT_VERSION + 1))})])
    while version < FORMAT_VERSION:
        try:
            data = MIGRATIONS[version](data)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            raise GraphValidationError([GraphError(
                "invalid_format", f"cannot migrate from format_version {version}: {exc}")]) from None
        version += 1
    return data


# --- parsing -----------------------------------------------------------------

def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON; write a number or null")


def _finite_float(text: str) -> float:
    """A JSON number as a float; 1e999 (which Python reads as inf) is refused by what it is."""
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise ValueError(f"the number {shown} is past the float range (about ±1.8e308); write a smaller number")
    return value


def json_value_problem(exc: ValueError) -> str:
    """A JSON decoder's ValueError in the words of someone who wrote the file (not Python's advice)."""
    text = str(exc)
    if "integer string conversion" in text:      # Python's guard against 4,300+ digit integers
        return "a number has thousands of digits; no input takes a number that long — shorten it"
    return text


class _RepeatedKey(ValueError):
    def __init__(self, key: str, is_node: bool):
        super().__init__(key)
        self.key, self.is_node = key, is_node


def _object_without_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a key given twice (json.loads would keep the last one silently)."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, item in pairs:
            if key in seen:
                raise _RepeatedKey(key, isinstance(item, dict) and "type" in item)
            seen.add(key)
    return value


def decode_json(data: bytes | str) -> Any:
    """Bytes or text → JSON value; every failure becomes an `invalid_json` GraphValidationError."""
    if isinstance(data, bytes):
        if len(data) > MAX_FILE_BYTES:
            raise GraphValidationError([GraphError(
                "invalid_json", f"the graph is {len(data)} bytes; the limit is {MAX_FILE_BYTES}")])
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise GraphValidationError([GraphError(
                "invalid_json",
                f"the file is not UTF-8 text (byte {exc.start} is {data[exc.start:exc.start + 1]!r}); "
                f"save the graph as UTF-8")]) from None
    elif len(data) > MAX_FILE_BYTES:
        raise GraphValidationError([GraphError(
            "invalid_json", f"the graph is {len(data)} characters; the limit is {MAX_FILE_BYTES}")])
    if not data.strip():
        raise GraphValidationError([GraphError(
            "invalid_json", 'the file is empty; a graph is a JSON object such as {"format_version": 2, "nodes": {}}')])
    try:
        return json.loads(data, parse_constant=_reject_constant, parse_float=_finite_float,
                          object_pairs_hook=_object_without_repeats)
    except _RepeatedKey as exc:
        raise GraphValidationError([GraphError(
            "invalid_json", f"the key {exc.key!r} appears twice in one JSON object (a hand-edited file?); JSON "
                            f"would keep only the last, so {'a node is' if exc.is_node else 'a value is'} silently "
                            f"lost — rename or remove one of them", details={"key": exc.key})]) from None
    except json.JSONDecodeError as exc:
        raise GraphValidationError([GraphError(
            "invalid_json", f"not valid JSON: {exc.msg.removesuffix(' at')} at line {exc.lineno}, column {exc.colno}",
            details={"line": exc.lineno, "column": exc.colno})]) from None
    except ValueError as exc:
        raise GraphValidationError([GraphError("invalid_json", f"not valid JSON: {json_value_problem(exc)}")]) \
            from None
    except RecursionError:
        raise GraphValidationError([GraphError(
            "invalid_json", "the JSON is nested too deeply to be a graph")]) from None


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


def _check_json_value(value: Any, link_ok: bool = False) -> str | None:
    """Why `value` is not a JSON-representable literal, or None. With `link_ok` (a node's input) a `Link` object
    is the link it stands for, as `{"node": ..., "output": ...}` is: a script building a dict graph reaches for
    the exported class (it was refused as "a Python Link, not a JSON value", with no fix)."""
    if value is None or isinstance(value, (bool, int, str)):
        return None
    if isinstance(value, Link):
        if not link_ok:
            return 'a Link, which only a node\'s input takes; give a JSON value here'
        if isinstance(value.node, str) and isinstance(value.output, str) and value.node and value.output:
            return None
        return (f"a Link whose node and output must be non-empty strings (a node id and an output name); found "
                f"node={value.node!r:.60}, output={value.output!r:.60}")
    if isinstance(value, float):
        return None if value == value and value not in (float("inf"), float("-inf")) else \
            "NaN or Infinity, which no input takes (a number past ±1.8e308 reads as Infinity); write a finite number"
    if isinstance(value, (list, dict)):
        if _depth_exceeds(value, MAX_VALUE_DEPTH):
            return f"nested deeper than {MAX_VALUE_DEPTH} levels"
        return None
    if isinstance(value, tuple):
        return ("a Python tuple, not a JSON value; write a list ([...]) — or, for a link, "
                "{\"node\": \"<id>\", \"output\": \"<name>\"}")
    if type(value).__module__ == "torch" or type(value).__module__.startswith("numpy"):
        return (f"a {type(value).__module__.split('.')[0]} {type(value).__name__}, not a JSON value; give its Python "
                f"number (.item()) or list (.tolist())")
    return f"a Python {type(value).__name__}, not a JSON value"


def graph_from_dict(data: Any) -> Graph:
    """A JSON value → Graph, migrating old versions; collects every format error."""
    if not isinstance(data, dict):
        raise GraphValidationError([GraphError(
            "invalid_format",
            f"a graph file is a JSON object with \"format_version\" and \"nodes\"; found {_a_json_type(data)}")])
    data = migrate(data)
    errors: list[GraphError] = []
    for key in data:
        if key not in _TOP_KEYS:
            errors.append(GraphError(
                "invalid_format",
                f"unknown top-level key {key!r}; allowed keys are {', '.join(_TOP_KEYS)} "
                f"(put editor state under \"ui\" and free-form data under \"metadata\")"))
    metadata = data.get("metadata")
    errors += _metadata_errors(metadata)
    raw_nodes = data.get("nodes")
    nodes: dict[str, GraphNode] = {}
    if not isinstance(raw_nodes, dict):
        errors.append(GraphError(
            "invalid_format",
            f'"nodes" must be an object keyed by node id, found {_a_json_type(raw_nodes) if "nodes" in data else "nothing"}'))
        raw_nodes = {}
    for node_id, raw in raw_nodes.items():
        node = _parse_node(node_id, raw, errors)
        if node is not None:
            nodes[node_id] = node
    subgraphs = _parse_subgraphs(data["subgraphs"], errors) if "subgraphs" in data else None
    if errors:
        raise GraphValidationError(errors)
    return Graph(nodes, metadata, capped_notes_ui(data.get("ui")), "ui" in data, subgraphs=subgraphs)


def _parse_subgraphs(raw: Any, errors: list[GraphError]) -> dict[str, SubgraphDefinition]:
    """The top-level "subgraphs" object → definitions; format errors name the definition."""
    if not isinstance(raw, dict):
        errors.append(GraphError("invalid_format",
                                 f'"subgraphs" must be an object keyed by subgraph name, found {_a_json_type(raw)}'))
        return {}
    out: dict[str, SubgraphDefinition] = {}
    for name, body in raw.items():
        found: list[GraphError] = []
        definition = _parse_subgraph(name, body, found)
        for e in found:
            errors.append(GraphError(e.code, f"in subgraph definition {name!r}: {e.message}", e.node_id, e.input,
                                     {**e.details, "subgraph": name}))
        if definition is not None and not found:
            out[name] = definition
    return out


def _parse_subgraph(name: str, body: Any, errors: list[GraphError]) -> SubgraphDefinition | None:
    if not name or len(name) > 64 or not set(name) <= _SUBGRAPH_NAME_CHARS:
        errors.append(GraphError("invalid_format", "a subgraph name is 1-64 characters of A-Z a-z 0-9 _ - ."))
        return None
    if not isinstance(body, dict):
        errors.append(GraphError("invalid_format", f'a definition is an object with "nodes", found {_a_json_type(body)}'))
        return None
    for key in body:
        if key not in _SUBGRAPH_KEYS:
            errors.append(GraphError("invalid_format",
                                     f"unknown key {key!r}; allowed keys are {', '.join(_SUBGRAPH_KEYS)}"))
    metadata = body.get("metadata")
    errors += _metadata_errors(metadata)
    raw_nodes = body.get("nodes")
    if not isinstance(raw_nodes, dict):
        errors.append(GraphError("invalid_format", f'"nodes" must be an object keyed by node id, found '
                                                   f'{_a_json_type(raw_nodes) if "nodes" in body else "nothing"}'))
        raw_nodes = {}
    nodes: dict[str, GraphNode] = {}
    for node_id, raw in raw_nodes.items():
        if node_id == SUBGRAPH_INPUTS_NODE:
            errors.append(GraphError("invalid_format", f"{SUBGRAPH_INPUTS_NODE!r} is reserved (links to it read the "
                                                       f"exposed inputs); rename the node", node_id=node_id))
            continue
        node = _parse_node(node_id, raw, errors)
        if node is not None:
            nodes[node_id] = node
    inputs = body.get("inputs", {})
    if not isinstance(inputs, dict) or not all(isinstance(v, dict) for v in inputs.values()):
        errors.append(GraphError("invalid_format", '"inputs" must map each exposed input name to an object '
                                                   '{"default"?: value, "title"?: text}'))
        inputs = {}
    for port, spec in inputs.items():
        extra = set(spec) - {"default", "title"}
        problem = _check_json_value(spec.get("default"))
        if extra or problem or not isinstance(spec.get("title", ""), str):
            errors.append(GraphError("invalid_format", f"exposed input {port!r} is {{\"default\"?: value, \"title\"?: "
                                                       f"text}}; found {json.dumps(spec, default=repr)[:120]}"))
    outputs = body.get("outputs", {})
    if not isinstance(outputs, dict) or not all(isinstance(v, dict) for v in outputs.values()):
        errors.append(GraphError("invalid_format", '"outputs" must map each exposed output name to an object '
                                                   '{"node": inner id, "output": name}'))
        outputs = {}
    for port, spec in outputs.items():
        if (set(spec) - {"node", "output", "title"} or not isinstance(spec.get("node"), str)
                or not isinstance(spec.get("output"), str) or not isinstance(spec.get("title", ""), str)):
            errors.append(GraphError("invalid_format", f"exposed output {port!r} is {{\"node\": inner id, \"output\": "
                                                       f"name, \"title\"?: text}}; found {json.dumps(spec, default=repr)[:120]}"))
    if errors:
        return None
    present = tuple(k for k in ("inputs", "outputs") if k in body)
    return SubgraphDefinition(name, nodes, inputs, outputs, metadata, capped_notes_ui(body.get("ui"), f"subgraph "
                              f"{name!r}: "), "ui" in body, present)


def _parse_node(node_id: Any, raw: Any, errors: list[GraphError]) -> GraphNode | None:
    if not isinstance(node_id, str) or not node_id:
        errors.append(GraphError("invalid_format", f"node id {node_id!r} must be a non-empty string"))
        return None
    if (len(node_id) > MAX_NODE_ID_CHARS or not node_id.strip()
            or any(unicodedata.category(ch) in _UNREADABLE_CATEGORIES for ch in node_id)):
        shown = ascii(node_id[:40]) + ("..." if len(node_id) > 40 else "")
        errors.append(GraphError("invalid_format", f"node id {shown} must be at most {MAX_NODE_ID_CHARS} characters, "
                                                   f"not only spaces, without control or invisible characters (NUL, "
                                                   f"newline, a right-to-left override, a zero-width space, a line "
                                                   f"separator) or lone surrogates; rename the node"))
        return None
    if not isinstance(raw, dict):
        errors.append(GraphError("invalid_format",
                                 f'a node must be an object with "type" and "inputs", found {_a_json_type(raw)}',
                                 node_id=node_id))
        return None
    ok = True
    for key in raw:
        if key not in _NODE_KEYS:
            errors.append(GraphError("invalid_format",
                                     f"unknown key {key!r} in a node; allowed keys are {', '.join(_NODE_KEYS)}",
                                     node_id=node_id))
            ok = False
    node_type = raw.get("type")
    if not isinstance(node_type, str) or not node_type:
        errors.append(GraphError("invalid_format",
                                 f'"type" must be a node type name (a string), found {_a_json_type(node_type)}',
                                 node_id=node_id))
        ok = False
    title = raw.get("title")
    if title is not None and not isinstance(title, str):
        errors.append(GraphError("invalid_format", f'"title" must be a string, found {_a_json_type(title)}',
                                 node_id=node_id))
        ok = False
    mode = raw.get("mode")
    if mode is not None and mode not in NODE_MODES:
        errors.append(GraphError("invalid_format", f'"mode" must be "bypass" or "mute" (null or left out: run '
                                                   f'the node); found {json.dumps(mode)[:60]}', node_id=node_id))
        ok = False
    raw_inputs = raw.get("inputs", {})
    inputs: dict[str, Any] = {}
    if not isinstance(raw_inputs, dict):
        errors.append(GraphError("invalid_format",
                                 f'"inputs" must be an object keyed by input name, found {_a_json_type(raw_inputs)}',
                                 node_id=node_id))
        return None
    for name, value in raw_inputs.items():
        if not isinstance(name, str):
            errors.append(GraphError("invalid_format", f"input name {name!r} must be a string", node_id=node_id))
            ok = False
            continue
        if isinstance(value, dict) and ("node" in value or "output" in value):
            if set(value) != {"node", "output"} or not isinstance(value["node"], str) \
                    or not isinstance(value["output"], str):
                errors.append(GraphError(
                    "invalid_format",
                    'a link is an object with exactly two strings, "node" (a node id) and "output" '
                    f"(an output name); found {json.dumps(value)[:120]}",
                    node_id=node_id, input=name))
                ok = False
                continue
            inputs[name] = Link(value["node"], value["output"])
            continue
        problem = _check_json_value(value, link_ok=True)
        if problem:
            errors.append(GraphError("invalid_format", f"the value is {problem}", node_id=node_id, input=name))
            ok = False
            continue
        inputs[name] = value
    if not ok:
        return None
    return GraphNode(node_type, inputs, title, mode)


_TEXT_METADATA = ("title", "description")    # shown by front ends as text: strings only


def _metadata_errors(metadata: Any) -> list[GraphError]:
    """"metadata" is a free-form object, except that its title and description, when present, are strings."""
    if metadata is None:
        return []
    if not isinstance(metadata, dict):
        return [GraphError("invalid_format", f'"metadata" must be an object, found {_a_json_type(metadata)}')]
    return [GraphError("invalid_format", f'"metadata.{key}" must be a string (front ends show it as text), found '
                                         f'{_a_json_type(metadata[key])}; write it as text or leave it out')
            for key in _TEXT_METADATA if key in metadata and not isinstance(metadata[key], str)]


def _a_json_type(value: Any) -> str:
    """The JSON type of ``value`` with its article, for messages: "an object", "a string", "null"."""
    name = _json_type(value)
    return name if name == "null" else ("an " if name[0] in "aeiou" else "a ") + name


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def parse_graph(source: Graph | dict | str | bytes) -> Graph:
    """Graph, dict, JSON text or bytes (JSON, or an image SaveImage wrote: its graph) → Graph (raises
    GraphValidationError)."""
    if isinstance(source, Graph):
        return source
    if isinstance(source, (bytes, bytearray)) and (bytes(source[:8]) == PNG_SIGNATURE
                                                   or media_kind(bytes(source[:16])) is not None):
        return graph_from_bytes(bytes(source), "the image given")      # an image's bytes: the graph it holds
    if isinstance(source, (bytes, str)):
        source = decode_json(source)
    return graph_from_dict(source)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_GRAPH_KEYWORD = "nodegraph"


#: the primitive node that holds a pinned value of each kind, where the input it fed takes no literal
_CONSTANT_NODES = ((bool, "Boolean"), (int, "Int"), (float, "Float"), (str, "String"))
#: node types that pass their literal `value` on unchanged (the editor's primitives; ComfyUI's PrimitiveNode /
#: PrimitiveString import as them)
PRIMITIVE_TYPES = ("Int", "Float", "String", "Boolean")


def primitive_value(nodes: Mapping[str, GraphNode], value: Any) -> Any:
    """`value`, or — when it is a link from a primitive node (an Int / Float / String / Boolean box) whose `value`
    is written — that written value: what the input gets, known without running anything. Provenance and
    file fingerprints read a model or input file name given so (an imported ComfyUI PrimitiveString)."""
    if isinstance(value, Link):
        source = nodes.get(value.node)
        if source is not None and str(source.type).rpartition(".")[2] in PRIMITIVE_TYPES and value.output == "value":
            written = source.inputs.get("value")
            if written is not None and not isinstance(written, Link):
                return written
    return value


def pin_values(data: dict[str, Any], drawn: dict[str, dict[str, Any]],
               takes_literal: Callable[[str, str], bool] | None = None) -> dict[str, Any]:
    """A graph file (dict) with every link from a node of `drawn` (node id → {output: value}) replaced by the
    value that output gave: the graph as it ran, which draws a RandomInt's image again (its node stays, no
    longer linked). An input that takes no literal (`takes_literal(node_type, input)` False: a ShowValue's
    `*`) is linked instead to an added primitive node holding the value (`<id>_<output>_drawn`).

    A drawn node inside a subgraph instance (its effective id `instance/inner`, nested `a/b/c`) is pinned in a
    copy of the instance's definition that only that instance uses (`<name>.drawn.<hash>`): instances of one
    definition may each have drawn another value, and the file keeps its subgraph."""
    if not drawn:
        return data
    given = data.get("nodes", {}) if isinstance(data.get("nodes"), dict) else {}
    top: dict[str, dict[str, Any]] = {}
    inside: dict[str, dict[str, dict[str, Any]]] = {}      # instance id → {inner effective id: values}
    for node_id, values in drawn.items():
        instance = _instance_of(node_id, given)
        if instance is None:
            top[node_id] = values
        else:
            inside.setdefault(instance, {})[node_id[len(instance) + 1:]] = values
    subgraphs = dict(data.get("subgraphs") or {}) if isinstance(data.get("subgraphs"), dict) else {}
    nodes = _pinned_nodes(data.get("nodes", {}), top, takes_literal)
    for instance, inner in inside.items():
        node = nodes.get(instance)
        kind = node.get("type") if isinstance(node, dict) else None
        name = kind[len(SUBGRAPH_TYPE_PREFIX):] if isinstance(kind, str) and kind.startswith(SUBGRAPH_TYPE_PREFIX) \
            else None
        definition = subgraphs.get(name) if name is not None else None
        if not isinstance(definition, dict) or not isinstance(definition.get("nodes"), dict):
            continue
        pinned = pin_values({**definition, "subgraphs": subgraphs}, inner, takes_literal)
        subgraphs = pinned.pop("subgraphs")          # nested instances' copies were added to the one table
        pinned = _pinned_outputs(pinned, {k: v for k, v in inner.items() if "/" not in k})
        copy = _pinned_definition_name(name, instance, subgraphs)
        subgraphs[copy] = pinned
        nodes[instance] = {**node, "type": SUBGRAPH_TYPE_PREFIX + copy}
    return {**data, "nodes": nodes, **({"subgraphs": subgraphs} if subgraphs or "subgraphs" in data else {})}


def _instance_of(node_id: str, nodes: Mapping[str, Any]) -> str | None:
    """The subgraph instance among `nodes` whose inner node `node_id` is (`instance/inner`: the longest id before a
    '/' that is a subgraph node — ids may hold '/' themselves), or None for a node of `nodes` itself."""
    if node_id in nodes:
        return None
    cut = node_id.rfind("/")
    while cut > 0:
        node = nodes.get(node_id[:cut])
        if isinstance(node, dict) and str(node.get("type", "")).startswith(SUBGRAPH_TYPE_PREFIX):
            return node_id[:cut]
        cut = node_id.rfind("/", 0, cut)
    return None


def _pinned_nodes(source: Any, drawn: dict[str, dict[str, Any]],
                  takes_literal: Callable[[str, str], bool] | None) -> dict[str, Any]:
    """`source` nodes with their links from drawn outputs replaced by the values (or linked to added constants)."""
    if not isinstance(source, dict):
        return source
    nodes: dict[str, Any] = {}
    constants: dict[str, Any] = {}
    for node_id, node in source.items():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if isinstance(inputs, dict) and drawn:
            pinned = {}
            for name, value in inputs.items():
                if isinstance(value, dict) and set(value) == {"node", "output"} and \
                        value["output"] in drawn.get(value["node"], {}):
                    drawn_value = drawn[value["node"]][value["output"]]
                    if takes_literal is None or takes_literal(str(node.get("type")), name):
                        value = drawn_value
                    else:
                        value = _constant_link(value["node"], value["output"], drawn_value, source, constants)
                pinned[name] = value
            node = {**node, "inputs": pinned}
        nodes[node_id] = node
    return {**nodes, **constants}


def _pinned_outputs(definition: dict[str, Any], drawn: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A definition whose exposed outputs that are drawn values read them from added constant nodes."""
    outputs = definition.get("outputs")
    if not drawn or not isinstance(outputs, dict):
        return definition
    nodes, constants, changed = definition["nodes"], {}, {}
    for name, ref in outputs.items():
        if isinstance(ref, dict) and ref.get("output") in drawn.get(ref.get("node"), {}):
            link = _constant_link(ref["node"], ref["output"], drawn[ref["node"]][ref["output"]], nodes, constants)
            changed[name] = {**ref, **link}
    if not changed:
        return definition
    return {**definition, "nodes": {**nodes, **constants}, "outputs": {**outputs, **changed}}


def _pinned_definition_name(name: str, instance: str, taken: dict[str, Any]) -> str:
    """A free definition name for `instance`'s pinned copy of `name` (1–64 of the name characters)."""
    import hashlib

    n = 0
    while True:         # 46 + 7 + 8 = 61 characters at most, however many copies (a counter suffix passed 64)
        digest = hashlib.blake2b(f"{name}\0{instance}\0{n}".encode(), digest_size=4).hexdigest()
        copy = f"{name[:46]}.drawn.{digest}"
        if copy not in taken:
            return copy
        n += 1


def _constant_link(source: str, output: str, value: Any, existing: dict[str, Any],
                   constants: dict[str, Any]) -> dict[str, str]:
    """A link to the primitive node holding `value` (added to `constants` once per drawn output)."""
    node_id = f"{source}_{output}_drawn"
    while node_id in existing and node_id not in constants:
        node_id += "_"
    kind = next(name for python_type, name in _CONSTANT_NODES if isinstance(value, python_type))
    constants[node_id] = {"type": kind, "inputs": {"value": value}}
    return {"node": node_id, "output": "value"}


def _inflate_chunk_text(compressed: bytes) -> bytes:
    """A PNG text chunk's zlib stream, inflated to at most the graph limit (MAX_FILE_BYTES): a 1 MB chunk that
    inflates to 1 GiB took 2.2 GB of memory before its size was refused (zlib inflates ~1000:1)."""
    import zlib

    inflater = zlib.decompressobj()
    text = inflater.decompress(compressed, MAX_FILE_BYTES + 1)
    if len(text) > MAX_FILE_BYTES or inflater.unconsumed_tail:
        raise GraphValidationError([GraphError(
            "invalid_json", f"the PNG's compressed text chunk inflates past {MAX_FILE_BYTES} bytes, the limit for "
                            f"a graph; it is not a graph SaveImage wrote")])
    return text


def graph_text_from_png(data: bytes, keyword: str = PNG_GRAPH_KEYWORD) -> str | None:
    """The graph JSON that SaveImage embeds in a PNG (tEXt/iTXt chunk "nodegraph"; zTXt, which other tools may
    rewrite it into, too), or None; another `keyword` reads another tool's chunk (ComfyUI's API prompt is
    "prompt"). Compressed chunks inflate to at most the graph limit (GraphValidationError past it)."""
    import struct
    import zlib

    keyword_wanted = keyword
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IEND":
            break
        if kind not in (b"tEXt", b"iTXt", b"zTXt"):
            continue
        keyword, _, rest = body.partition(b"\0")
        if keyword.decode("latin-1") != keyword_wanted:
            continue
        if kind == b"tEXt":
            return rest.decode("latin-1")
        try:
            if kind == b"zTXt":             # keyword, method byte, zlib stream; Latin-1 text
                return _inflate_chunk_text(rest[1:]).decode("latin-1")
            compressed, _method, rest = rest[0], rest[1], rest[2:]
            _language, _, rest = rest.partition(b"\0")
            _translated, _, text = rest.partition(b"\0")
            return (_inflate_chunk_text(text) if compressed else text).decode("utf-8")
        except (zlib.error, UnicodeDecodeError, IndexError):
            return None
    return None


_VIDEO_COMMENT = ("this one carries no graph: SaveVideo stores one in its \"comment\" metadata (when embed_graph is "
                  "on), and such a clip opens as its graph; give the graph .json file that made it")
_GIF_COMMENT = ("this one carries no graph: SaveVideo stores one in the GIF comment (when embed_graph is on), and "
                "such a GIF opens as its graph; give the graph .json file that made it")
_NO_GRAPH = "it holds no graph: give the graph .json file that made it"
# the 3D plugin's savers (plugins/threed) write the graph into their files (`media_graph`); a file without one said
# "not valid JSON: Expecting value at line 1, column 1" or "not UTF-8 text"
_MESH_GRAPH = ("no graph could be read from it: {saver} (the threed plugin) stores the graph that made the file in "
               "{where}, and such a file opens as its graph; give the graph .json file that made it")
_GLB_GRAPH = _MESH_GRAPH.format(saver="SaveMesh or SavePointCloud", where="the JSON chunk's asset.extras.nodegraph")
_PLY_GRAPH = _MESH_GRAPH.format(saver="SaveMesh or SavePointCloud", where="a `comment nodegraph` header line")
_OBJ_GRAPH = _MESH_GRAPH.format(saver="SaveMesh", where="a leading `# nodegraph` line")
_OBJ_KIND = ("an OBJ 3D file", _OBJ_GRAPH)     # what `media_kind` says of an OBJ (named .obj: it has no magic bytes)


EXIF_IMAGE_DESCRIPTION = 0x010E


def _exif_block(data: bytes) -> bytes | None:
    """The EXIF (TIFF) block of a JPEG (its APP1 "Exif" segment) or WebP (its EXIF chunk), found by walking the
    file's segments — not through PIL's image open, which refuses a header of more pixels than its bomb limit
    (a 16384×11000 panorama SaveImage wrote could not be read back); None when there is none or the file is
    damaged before it. The same walk as the editor's (web/src/graph/exif.ts)."""
    import struct

    if data.startswith(b"\xff\xd8"):
        offset = 2
        while offset + 4 <= len(data) and data[offset] == 0xFF:
            marker = data[offset + 1]
            if marker == 0xFF:
                offset += 1
                continue
            if marker in (0xDA, 0xD9):       # the scan (or the end): no more headers
                return None
            (length,) = struct.unpack(">H", data[offset + 2:offset + 4])
            end = offset + 2 + length
            if length < 2 or end > len(data):
                return None
            if marker == 0xE1 and data[offset + 4:offset + 10] == b"Exif\0\0":
                return data[offset + 10:end]
            offset = end
        return None
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        offset = 12
        while offset + 8 <= len(data):
            (size,) = struct.unpack("<I", data[offset + 4:offset + 8])
            if offset + 8 + size > len(data):
                return None
            if data[offset:offset + 4] == b"EXIF":
                block = data[offset + 8:offset + 8 + size]
                return block[6:] if block.startswith(b"Exif\0\0") else block
            offset += 8 + size + size % 2
    return None


def _exif_tags(data: bytes) -> dict[int, Any] | None:
    """The tags of IFD 0 of a JPEG's / WebP's EXIF (tag number → value, as PIL reads it), or None when the file has
    no EXIF or it is damaged. Bounded by the file: its bytes are already at most MAX_FILE_BYTES."""
    import warnings
    from struct import error as struct_error

    from PIL import Image

    tiff = _exif_block(data)
    if tiff is None:
        return None
    exif = Image.Exif()
    try:
        with warnings.catch_warnings():       # PIL's "Corrupt EXIF data": the None below says it
            warnings.simplefilter("ignore")
            exif.load(tiff)
            return dict(exif.items())
    except (OSError, ValueError, SyntaxError, struct_error, KeyError, IndexError):
        return None


def _exif_text(value: Any) -> str | None:
    """An EXIF value as text: ASCII (PIL decodes it as Latin-1) read again as UTF-8 where it is (a writer that put
    UTF-8 there), UNDEFINED bytes as UTF-8; its terminating NUL dropped; None for any other value."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    try:
        value = value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass
    return value.rstrip("\0")        # an ASCII value's terminator, where a writer kept it


EXIF_MODEL = 0x0110     # ComfyUI's WebP: "prompt:<API prompt JSON>"
EXIF_MAKE = 0x010F      # ComfyUI's WebP: "workflow:<UI workflow JSON>" (its first extra_pnginfo entry)
_EXIF_COMFYUI_LOWEST = 0x0100     # ComfyUI counts down from 0x010F, one tag per extra_pnginfo entry


def comfyui_texts_from_exif(data: bytes) -> dict[str, str]:
    """ComfyUI's API prompt and UI workflow in a WebP's (or JPEG's) EXIF, as {"prompt": json_text, "workflow":
    json_text} for those present (empty when neither is). ComfyUI saves a WebP (SaveAnimatedWEBP, SaveImage as
    WebP) with no text chunks to put them in, so it writes "prompt:<json>" in tag 0x0110 (Model) and each
    extra_pnginfo entry as "<key>:<json>" from 0x010F (Make) downward — "workflow:<json>" in 0x010F; every IFD 0
    text that starts "prompt:" / "workflow:" is read, whichever tag holds it."""
    found: dict[str, str] = {}
    for tag, value in sorted((_exif_tags(data) or {}).items(), reverse=True):      # 0x0110, 0x010F, ... first
        if not isinstance(tag, int) or not _EXIF_COMFYUI_LOWEST <= tag <= EXIF_MODEL:
            continue
        text = _exif_text(value)
        key, colon, rest = (text or "").partition(":")
        if colon and key in ("prompt", "workflow") and key not in found:
            found[key] = rest
    return found


def graph_from_exif(data: bytes) -> dict | str | None:
    """The graph a JPEG / WebP saved by SaveImage carries (EXIF ImageDescription: {"nodegraph": graph,
    "nodegraph_run": ...}); a message when it was left out (too large for EXIF); None when there is none."""
    text = _exif_text((_exif_tags(data) or {}).get(EXIF_IMAGE_DESCRIPTION))
    if isinstance(text, str) and text.lstrip().startswith('{"nodegraph'):
        try:
            json.loads(text)
        except RecursionError:
            return "the image's graph is nested too deeply to read"
        except ValueError as exc:
            return f"the image's graph record is not valid JSON ({exc}); it was damaged or cut short"
    record = _json_or_none(text) if isinstance(text, str) else None
    if not isinstance(record, dict):
        return None
    if isinstance(record.get("nodegraph"), dict):
        return record["nodegraph"]
    if "graph_omitted" in record:
        return ("the image's record left its graph out (too large for EXIF); save the image as PNG to keep the "
                "graph, or run the graph file itself")
    return None


def media_kind(data: bytes) -> tuple[str, str] | None:
    """(what the file is, how to get a graph out of it) for a video, audio, GLB / PLY (an OBJ by its magic-less
    name: `graph_from_bytes`) or non-PNG image file, else None."""
    riff = data[8:12] if data.startswith(b"RIFF") else b""
    checks = [
        (data[4:8] == b"ftyp", "an MP4 / MOV video", _VIDEO_COMMENT),
        (data.startswith(b"\x1a\x45\xdf\xa3"), "a WebM / Matroska video", _VIDEO_COMMENT),
        (data.startswith((b"GIF87a", b"GIF89a")), "a GIF", _GIF_COMMENT),
        (riff == b"WAVE", "a WAV audio file", _NO_GRAPH),
        (riff == b"WEBP", "a WebP image", _NO_GRAPH + " (only images saved by SaveImage carry one)"),
        (data.startswith((b"fLaC", b"OggS", b"ID3")), "an audio file (FLAC, Ogg or MP3)", _NO_GRAPH),
        (data.startswith(b"\xff\xd8\xff"), "a JPEG image", _NO_GRAPH + " (only images saved by SaveImage carry one)"),
        (data.startswith(b"glTF"), "a GLB (binary glTF) 3D file", _GLB_GRAPH),
        (data.startswith((b"ply\n", b"ply\r\n")), "a PLY 3D file", _PLY_GRAPH),
        (data.startswith(b"# nodegraph "), *_OBJ_KIND),        # SaveMesh's OBJ, its graph line damaged
    ]
    return next(((what, how) for found, what, how in checks if found), None)


def load_graph(path: str | os.PathLike) -> Graph:
    """Read and parse a graph file (or a PNG made by SaveImage); errors are `invalid_json`."""
    path = Path(path)
    too_big = f"the limit for a graph is {MAX_FILE_BYTES} bytes"
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            embedded = _graph_text_of_big_clip(path)       # a long clip SaveVideo wrote: its comment, not its bytes
            if embedded is not None:
                return graph_from_bytes(embedded.encode("utf-8"), path.name)
            raise GraphValidationError([GraphError("invalid_json", f"{path} is {size} bytes; {too_big}")])
        with path.open("rb") as stream:     # a pipe or device reports size 0: read at most one byte past the limit
            data = stream.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise GraphValidationError([GraphError("invalid_json", f"{path} holds more than {MAX_FILE_BYTES} "
                                                                   f"bytes; {too_big}")])
    except (OSError, ValueError) as exc:       # ValueError: a NUL in the name ("embedded null byte")
        raise GraphValidationError([GraphError(
            "unreadable_file", f"cannot read graph file {str(path)[:200]!r}: {getattr(exc, 'strerror', None) or exc}; "
                               f"check the path (a graph is a .json file, or a PNG saved by SaveImage; `nodegraph "
                               f"run` also takes a template id such as project/txt2img.json: `nodegraph templates` "
                               f"lists them)")]) from None
    return graph_from_bytes(data, path.name)


def _graph_text_of_big_clip(path: Path) -> str | None:
    """The graph in the comment field of an MP4 / WebM / GIF file larger than MAX_FILE_BYTES (a long clip: its
    frames are not a graph's bytes), read through a memory map — the container is walked, no frame is read; None for
    any other file (it stays refused as too large)."""
    import mmap

    from .media_graph import graph_text_from_media, may_carry_graph

    try:
        with path.open("rb") as stream:
            head = stream.read(16)
            if not may_carry_graph(head):       # MP4, WebM, GIF; a long WAV, a large GLB / PLY / OBJ
                return None
            with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                text = graph_text_from_media(mapped)
    except (OSError, ValueError):
        return None
    return text if text is not None and len(text.encode("utf-8")) <= MAX_FILE_BYTES else None


def _refuse_a1111(name: str, what: str) -> None:
    """Raise the `foreign_format` error (tool "a1111") for a file that holds A1111's generation parameters (`what`
    it is); `nodegraph run` / `validate`, `Session.import_comfyui` and the editor import it (`foreign_prompt`,
    nodegraph/a1111.py)."""
    raise GraphValidationError([GraphError(
        "foreign_format", f"{name} {what}, not a nodegraph graph; `nodegraph run` / `validate` and the editor make a "
                          f"text-to-image graph of them (nodegraph/a1111.py)",
        details={"tool": "a1111", "format": "parameters"})])


def _refuse_a1111_image(data: bytes, name: str) -> None:
    """`_refuse_a1111` for an image that carries A1111's parameters (a PNG chunk, a JPEG / WebP UserComment)."""
    from .a1111 import parameters_from_image

    if parameters_from_image(data):
        _refuse_a1111(name, 'carries AUTOMATIC1111\'s generation parameters ("PNG Info")')


def _refuse_comfyui_image(data: bytes, name: str) -> None:
    """Raise `foreign_format` (tool "comfyui", as for a ComfyUI PNG) for a WebP / JPEG whose EXIF holds ComfyUI's
    prompt or workflow (`comfyui_texts_from_exif`), `invalid_json` when that text is not one; nothing otherwise."""
    texts = comfyui_texts_from_exif(data)
    if not texts:
        return
    what = "WebP" if data.startswith(b"RIFF") else "JPEG"
    kinds = [foreign_format(_json_or_none(texts[key])) for key in ("prompt", "workflow") if key in texts]
    kind = next((found[1] for found in kinds if found is not None), None)
    if kind is None:
        raise GraphValidationError([GraphError(
            "invalid_json", f"{name} is a {what} with ComfyUI's \"prompt\" / \"workflow\" EXIF text, but it is not a "
                            f"ComfyUI prompt or workflow (not valid JSON, or not its shape), so there is no graph to "
                            f"import; save the image (or the workflow) from ComfyUI again", details={"tool": "comfyui"})])
    carried = "an API prompt" if kind == "api" else "a UI workflow"
    raise GraphValidationError([GraphError(
        "foreign_format", f"{name} is a {what} saved by ComfyUI (SaveAnimatedWEBP): its EXIF carries {carried}, not a "
                          f"nodegraph graph; `nodegraph run`/`validate` and the editor import it "
                          f"(nodegraph.graph.foreign_prompt reads it)", details={"tool": "comfyui", "format": kind})])


def _refuse_image_without_graph(data: bytes, name: str) -> None:
    """Raise `invalid_format` for a JPEG / WebP that carries no graph at all (a photo, most often an input meant
    for LoadImage): not `invalid_json`, as it was never meant to be JSON, and saying which records were looked for —
    ComfyUI's WebPs do hold one, so the message must not say only SaveImage's images do."""
    what = "a WebP image" if data.startswith(b"RIFF") else "a JPEG image"
    raise GraphValidationError([GraphError(
        "invalid_format", f"{name} is {what}, not a graph file; it holds no graph: its EXIF has neither nodegraph's "
                          f"SaveImage record (ImageDescription) nor ComfyUI's prompt / workflow (as SaveAnimatedWEBP "
                          f"writes them) nor AUTOMATIC1111's parameters; give the graph .json file that made it (to "
                          f"use the image as an input, load it with LoadImage)", details={"file_kind": what})])


def graph_from_bytes(data: bytes, name: str) -> Graph:
    """The graph in a file's bytes (`name` says which in messages): a PNG saved by SaveImage (its "nodegraph"
    text chunk), a JPEG / WebP (its EXIF), a video, WAV, GLB, PLY or OBJ (`media_graph`), else JSON text; a ComfyUI
    PNG, or a file of those kinds without a graph, is a GraphValidationError saying what it is."""
    if len(data) > MAX_FILE_BYTES:
        raise GraphValidationError([GraphError(
            "invalid_json", f"{name} is {len(data)} bytes; the limit for a graph is {MAX_FILE_BYTES} bytes")])
    if data.startswith(PNG_SIGNATURE):
        text = graph_text_from_png(data)
        prompt_text = None if text is not None else (graph_text_from_png(data, "prompt")
                                                     or graph_text_from_png(data, "workflow"))
        if prompt_text is not None and foreign_format(_json_or_none(prompt_text)) is None:
            raise GraphValidationError([GraphError(
                "invalid_json", f"{name} has a ComfyUI \"prompt\" / \"workflow\" text chunk, but it is not a "
                                f"ComfyUI prompt or workflow (not valid JSON, or not its shape), so there is no graph "
                                f"to import; save the image (or the workflow) from ComfyUI again",
                details={"tool": "comfyui"})])
        if prompt_text is not None:
            kind = foreign_format(_json_or_none(prompt_text))[1]
            what = "an API prompt" if kind == "api" else "a UI workflow"
            raise GraphValidationError([GraphError(
                "foreign_format", f"{name} is a PNG saved by ComfyUI: it carries {what}, not a nodegraph graph; "
                                  f"`nodegraph run`/`validate` and the editor import it "
                                  f"(nodegraph.graph.foreign_prompt reads it)", details={"tool": "comfyui",
                                                                                        "format": kind})])
        if text is None:
            _refuse_a1111_image(data, name)
            raise GraphValidationError([GraphError(
                "invalid_json", f"{name} is a PNG without an embedded graph: it was not saved by nodegraph's "
                                f"SaveImage, ComfyUI or AUTOMATIC1111 (no \"nodegraph\", \"prompt\", \"workflow\" or "
                                f"\"parameters\" text chunk); to use it as an input image, load it with LoadImage")])
        try:
            return parse_graph(text)
        except GraphValidationError as exc:      # say where the broken JSON came from
            raise GraphValidationError([
                GraphError(e.code, f"the graph embedded in {name} (its \"nodegraph\" text chunk): {e.message}",
                           e.node_id, e.input, e.details) if e.code == "invalid_json" else e
                for e in exc.errors]) from None
    if data.startswith(b"\xff\xd8\xff") or data[8:12] == b"WEBP" and data.startswith(b"RIFF"):
        embedded = graph_from_exif(data)
        if embedded is not None:      # a JPEG / WebP saved by SaveImage: the graph in EXIF ImageDescription
            if isinstance(embedded, str):
                raise GraphValidationError([GraphError("invalid_json", f"{name}: {embedded}")])
            return parse_graph(json.dumps(embedded))
        _refuse_comfyui_image(data, name)     # a WebP ComfyUI saved: its prompt / workflow in EXIF Model / Make
        _refuse_a1111_image(data, name)       # a JPEG / WebP A1111 saved: its parameters in EXIF UserComment
        _refuse_image_without_graph(data, name)
    from .media_graph import graph_text_from_media

    embedded_text = graph_text_from_media(data)       # a clip SaveVideo wrote (MP4, WebM, GIF): its comment field
    if embedded_text is not None:
        try:
            return parse_graph(embedded_text)
        except GraphValidationError as exc:
            raise GraphValidationError([
                GraphError(e.code, f"the graph in {name}'s comment field: {e.message}", e.node_id, e.input, e.details)
                if e.code == "invalid_json" else e for e in exc.errors]) from None
    media = media_kind(data[:16]) or (_OBJ_KIND if name.lower().endswith(".obj") and not _looks_like_json(data)
                                      else None)
    if media is not None:
        what, how = media
        raise GraphValidationError([GraphError(
            "invalid_json", f"{name} is {what}, not a graph file; {how.format(name=name)}",
            details={"file_kind": what})])
    _refuse_a1111_text(data, name)
    return parse_graph(data)


def _looks_like_json(data: bytes) -> bool:
    """Whether a file's first non-blank character opens a JSON object (a graph saved under another suffix)."""
    return data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{"


def _refuse_a1111_text(data: bytes, name: str) -> None:
    """`_refuse_a1111` for A1111's parameters as a text file (its .txt beside an image, or PNG Info pasted into a
    file): it said "not valid JSON: Expecting value"."""
    from .a1111 import looks_like_parameters

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return
    if looks_like_parameters(text):
        _refuse_a1111(name, "is AUTOMATIC1111's generation parameters as text")


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def foreign_prompt(path: str | os.PathLike) -> dict | None:
    """The ComfyUI prompt or UI workflow a file holds — a .json export or save, or the "prompt" chunk of a PNG
    ComfyUI saved — or None (anything else, or a file that cannot be read: `load_graph` says why); both go to
    `import_foreign`. A clip larger than MAX_FILE_BYTES (a long VideoHelperSuite MP4) is read by its comment through
    a memory map, as `load_graph` reads it (`_graph_text_of_big_clip`): `load_graph` calls it a ComfyUI prompt, so
    `nodegraph run` and `Session.import_comfyui` import it."""
    try:
        if not Path(path).is_file():       # a FIFO would block, /dev/zero never end
            return None
        if Path(path).stat().st_size > MAX_FILE_BYTES:
            return _foreign_prompt_of_text(_graph_text_of_big_clip(Path(path)))
        with open(path, "rb") as stream:   # at most one byte past the limit (a 1.5 GB file was read whole first)
            data = stream.read(MAX_FILE_BYTES + 1)
    except (OSError, ValueError):
        return None
    return foreign_prompt_from_bytes(data)


def _foreign_prompt_of_text(text: str | None) -> dict | None:
    """The ComfyUI prompt / workflow (or A1111 parameters) a clip's comment text holds as JSON, else None."""
    try:
        prompt = json.loads(text) if text is not None else None
    except (ValueError, RecursionError):
        return None
    return prompt if foreign_format(prompt) is not None else None


def foreign_prompt_from_bytes(data: bytes) -> dict | None:
    """`foreign_prompt` of a file's bytes: JSON text, a PNG's "prompt" / "workflow" chunk, or a WebP's (JPEG's)
    ComfyUI EXIF text (`comfyui_texts_from_exif`: the prompt first, as a PNG's prompt chunk); None otherwise."""
    if len(data) > MAX_FILE_BYTES:
        return None
    from .a1111 import parameters_from_image

    try:
        is_image = data.startswith((PNG_SIGNATURE, b"\xff\xd8\xff")) or data[8:12] == b"WEBP"
        is_media = data[4:8] == b"ftyp" or data.startswith((b"\x1a\x45\xdf\xa3", b"GIF87a", b"GIF89a"))
        text = ((graph_text_from_png(data, "prompt") or graph_text_from_png(data, "workflow"))
                if data.startswith(PNG_SIGNATURE) else None if is_image or is_media else data.decode("utf-8"))
        from .a1111 import looks_like_parameters

        if text is not None and not is_image and looks_like_parameters(text.removeprefix("\ufeff")):
            prompt = {"parameters": text.removeprefix("\ufeff")}       # A1111's .txt beside an image
        else:
            prompt = json.loads(text) if text is not None else None
        if prompt is None and is_image and not data.startswith(PNG_SIGNATURE):     # a ComfyUI WebP: its EXIF
            texts = comfyui_texts_from_exif(data)
            prompt = next((found for found in (_json_or_none(texts[key]) for key in ("prompt", "workflow")
                                               if key in texts) if foreign_format(found) is not None), None)
        if prompt is None and is_image:      # an A1111 image: its parameters ("PNG Info")
            parameters = parameters_from_image(data)
            prompt = {"parameters": parameters} if parameters else None
        if prompt is None and not is_image:  # a clip whose comment is a ComfyUI prompt / workflow (VideoHelperSuite)
            from .media_graph import graph_text_from_media

            embedded = graph_text_from_media(data)
            prompt = json.loads(embedded) if embedded is not None else None
    except (ValueError, RecursionError, GraphValidationError):   # e.g. a chunk that inflates past the graph limit
        return None
    return prompt if foreign_format(prompt) is not None else None


MAX_NOTE_TEXT = 20_000      # characters of a note's text (`ui.notes`; the editor's limit, web/src/graph/notes.ts)
MAX_NOTES = 500             # entries of `ui.notes` a graph keeps (as comfyui.MAX_NOTES and web/src/graph/notes.ts)


class NotesLimitWarning(UserWarning):
    """A graph's `ui.notes` held more than MAX_NOTES entries; the first MAX_NOTES were kept, the rest left out."""


def capped_notes_ui(ui: Any, where: str = "") -> Any:
    """`ui` with only the first MAX_NOTES entries of `ui.notes`, with a NotesLimitWarning saying how many were left
    out (`where` prefixes it: a subgraph's name). **Decision:** kept, not refused — notes are drawing only, never
    run, so the graph still loads and runs; but a file of 20,000 notes froze the editor for 21 s, and a ComfyUI
    import was already capped at comfyui.MAX_NOTES. Any other `ui` (no notes, not a dict) is returned as it is."""
    notes = ui.get("notes") if isinstance(ui, dict) else None
    if not isinstance(notes, list) or len(notes) <= MAX_NOTES:
        return ui
    import warnings

    warnings.warn(NotesLimitWarning(f"{where}ui.notes holds {len(notes)} notes; a graph keeps the first {MAX_NOTES} "
                                    f"(MAX_NOTES) and leaves out the other {len(notes) - MAX_NOTES}: put long text "
                                    f"in fewer notes (each holds up to {MAX_NOTE_TEXT} characters)"), stacklevel=3)
    return {**ui, "notes": notes[:MAX_NOTES]}
_NOTE_SCHEMA = {
    "type": "object",
    "required": ["id", "text", "bounds"],
    "properties": {
        "id": {"type": "string"},
        "text": {"type": "string", "maxLength": MAX_NOTE_TEXT,
                 "description": "plain text (Markdown is shown as written, never as HTML)"},
        "bounds": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4,
                   "description": "[x, y, width, height] on the canvas"},
        "color": {"type": "string", "description": 'hex ("#653"); other text is not shown'},
    },
}


def graph_file_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the graph file format: versions 1 and 2 (`SCHEMA_VERSIONS`).

    Version 1 files have the shape of version 2 (v2 only added the optional node `mode` and `subgraphs`) and
    are migrated on load, so one schema covers both. Version 0 (pre-release: "version": 0 and a list of
    nodes) is still read by `migrate` but has another shape and is not described here.
    """
    link = {
        "type": "object",
        "description": "A link to an output of another node.",
        "properties": {"node": {"type": "string", "description": "source node id"},
                       "output": {"type": "string", "description": "source output name"}},
        "required": ["node", "output"],
        "additionalProperties": False,
    }
    node = {
        "type": "object",
        "required": ["type"],
        "additionalProperties": False,
        "properties": {
            "type": {"type": "string", "minLength": 1,
                     "description": "registered node type: a bare name (Int), a qualified plugin.Type, "
                                    "or subgraph:<name> for a subgraph defined in this file"},
            "title": {"type": "string"},
            "mode": {"enum": [*NODE_MODES, None], "description": "bypass: pass inputs through; mute: do not run "
                                                                  "(dependents are skipped); null or absent: run"},
            "inputs": {
                "type": "object",
                "description": "inputs by name: a literal value or a link",
                "additionalProperties": {"anyOf": [{"$ref": "#/$defs/link"}, {}]},
            },
        },
    }
    nodes = {"type": "object", "description": "nodes keyed by string id", "propertyNames": {"minLength": 1},
             "additionalProperties": {"$ref": "#/$defs/node"}}
    subgraph = {
        "type": "object",
        "required": ["nodes"],
        "additionalProperties": False,
        "properties": {
            "metadata": {"type": "object", "properties": {"title": {"type": "string"},
                                                          "description": {"type": "string"}}},
            "inputs": {"type": "object", "description": "exposed inputs in port order; inner nodes read them "
                                                         f"with links to node {SUBGRAPH_INPUTS_NODE!r}",
                       "additionalProperties": {"type": "object", "additionalProperties": False,
                                                "properties": {"default": {}, "title": {"type": "string"}}}},
            "outputs": {"type": "object", "description": "exposed outputs in port order",
                        "additionalProperties": {"type": "object", "additionalProperties": False,
                                                 "required": ["node", "output"],
                                                 "properties": {"node": {"type": "string"},
                                                                "output": {"type": "string"},
                                                                "title": {"type": "string"}}}},
            "nodes": nodes,
            "ui": {},
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://nodegraph.dev/schema/graph-v{FORMAT_VERSION}.json",
        "title": "nodegraph graph file",
        "type": "object",
        "required": ["format_version", "nodes"],
        "additionalProperties": False,
        "properties": {
            "format_version": {"enum": list(SCHEMA_VERSIONS),
                               "description": f"{FORMAT_VERSION} for new files; older versions are migrated on "
                                              f"load (docs/graph-format.md)"},
            "metadata": {"type": "object", "description": "free-form: title, author, notes",
                         "properties": {"title": {"type": "string"}, "description": {"type": "string"}}},
            "nodes": nodes,
            "subgraphs": {"type": "object", "description": "subgraph definitions keyed by name",
                          "propertyNames": {"pattern": "^[A-Za-z0-9_.-]{1,64}$"},
                          "additionalProperties": {"$ref": "#/$defs/subgraph"}},
            "ui": {"description": "editor state (positions, groups, reroutes, notes); ignored by execution and "
                                  "carried through as written (docs/graph-format.md)",
                   "properties": {"notes": {"type": "array", "items": _NOTE_SCHEMA,
                                            "description": "text notes on the canvas (ComfyUI's Note / "
                                                           "MarkdownNote): plain text, never executed"}}},
        },
        "$defs": {"link": link, "node": node, "subgraph": subgraph},
    }
