"""ComfyUI's file-name prefix tokens, expanded as ComfyUI expands them.

A ComfyUI workflow's SaveImage prefix often holds tokens such as `%date:yyyy-MM-dd%/ComfyUI` or
`ComfyUI_%KSampler.seed%`; a user who imports it expects them to work. ComfyUI expands them in two
places, and so does nodegraph:

When the run starts (ComfyUI: its front end, when a prompt is queued) — `expand_graph`, called by
`Session.run` / `Session.validate` on every input naming a file a node writes (`Input(file_name_in="output")`, and
a save node's name in a model folder, `file_name_in="loras"`: ComfyUI's CheckpointSave expands its prefix too —
SaveLoRA wrote `%date:yyyy%.safetensors` as named; subgraph definitions' inner nodes included), so the
expanded name is part of the node's cache key (a new seed or a new minute is a new file; such a graph is
checked and compiled again at each run, as its names may change — a graph without tokens is scanned once):

    %date:FORMAT%                    the time; FORMAT's letters as ComfyUI's: yyyy yy MM M dd d hh h mm m
                                     ss s (24-hour clock); other characters are kept
    %year% %month% %day% %hour% %minute% %second%    the time (all but the year two digits)
    %NODE.INPUT%                     input INPUT of the node whose id, title or type is NODE — for a graph
                                     imported from ComfyUI also its ComfyUI class and input names
                                     (`%CheckpointLoaderSimple.ckpt_name%`, `%KSampler.sampler_name%`); a value
                                     written on the node, or on the primitive (Int, Float, String, Boolean)
                                     linked to it; '/' and '\\' in it become '_' (as ComfyUI's), and the
                                     '%' of a date token in it (not expanded: a value is expanded once)

When the file is saved (ComfyUI: its server) — `expand_at_save`:

    %width% %height%                 the saved image's size (where the saver knows it)
    %batch_num%                      the image's index in its batch (SaveImage names each image apart)

Any other `%...%` is left as written (as ComfyUI does). A NODE the graph lacks, or an input that is
neither written nor fed by a primitive, is a validation error naming the token. What a token gives is
then checked like any prefix (nodegraph/paths.py): a value that would leave the output folder is refused.

    has_tokens(text)                 whether there is anything to expand
    expand_graph(graph, registry)    (the graph with run-start tokens expanded, the errors)
    expand_at_run_start(prefix, graph, now)   one prefix (PrefixTokenError naming the token)
    expand_at_save(prefix, width=, height=, batch_num=)
    without_date_tokens(text)        `text` with its `%date:...%` tokens taken out (their ':' is not a name's)
    expansion_refused(spec, written, expanded)   why an input refuses a prefix once expanded (too long), or None
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

TOKEN = re.compile(r"%([^%\n]{1,100})%")
DATE_TOKEN = re.compile(r"%date:([^%\n]{0,100})%")
DATE_FIELDS = re.compile(r"yyyy|yy|MM|M|dd|d|hh|h|mm|m|ss|s")
TIME_NAMES = ("year", "month", "day", "hour", "minute", "second")
SAVE_TIME_NAMES = ("width", "height", "batch_num")


class PrefixTokenError(ValueError):
    """A token that cannot be expanded; the message names it and what to write instead."""


def has_tokens(text: str) -> bool:
    return "%" in text and TOKEN.search(text) is not None


def without_date_tokens(text: str) -> str:
    return DATE_TOKEN.sub("", text)


def format_date(pattern: str, now: datetime) -> str:
    """ComfyUI's date format: `yyyy-MM-dd` → 2026-12-06 (M, d, h, m, s unpadded; doubled: two digits)."""
    values = {"yyyy": f"{now.year:04d}", "yy": f"{now.year % 100:02d}", "MM": f"{now.month:02d}",
              "M": str(now.month), "dd": f"{now.day:02d}", "d": str(now.day), "hh": f"{now.hour:02d}",
              "h": str(now.hour), "mm": f"{now.minute:02d}", "m": str(now.minute), "ss": f"{now.second:02d}",
              "s": str(now.second)}
    return DATE_FIELDS.sub(lambda match: values[match.group(0)], pattern)


def expand_at_run_start(prefix: str, graph: Any, now: datetime) -> str:
    """`prefix` with its time and `%NODE.INPUT%` tokens replaced (the save-time ones stay), in one pass: a value
    holding a token is not expanded again."""
    def replace(match: re.Match) -> str:
        token = match.group(1)
        if token.startswith("date:"):
            return format_date(token[len("date:"):], now)
        if token in TIME_NAMES:
            value = getattr(now, token)
            return str(value) if token == "year" else f"{value:02d}"
        if "." in token and token not in SAVE_TIME_NAMES:
            return _node_value(token, graph)
        return match.group(0)

    return TOKEN.sub(replace, prefix) if has_tokens(prefix) else prefix


def expand_at_save(prefix: str, *, width: int | None = None, height: int | None = None,
                   batch_num: int | None = None) -> str:
    """`prefix` with `%width%`, `%height%` and `%batch_num%` replaced; PrefixTokenError for one without a value."""
    def replace(match: re.Match) -> str:
        token = match.group(1)
        if token not in SAVE_TIME_NAMES:
            return match.group(0)
        value = {"width": width, "height": height, "batch_num": batch_num}[token]
        if value is None:
            raise PrefixTokenError(f"%{token}% has no value here (this node does not save an image batch); "
                                   f"take it out of the prefix")
        return str(value)

    return TOKEN.sub(replace, prefix) if has_tokens(prefix) else prefix


def expand_graph(graph: Any, registry: Any, now: datetime | None = None) -> tuple[Any, list[Any]]:
    """`graph` with the run-start tokens of its output-file inputs expanded — its nodes' and its subgraph
    definitions' (a token there names the definition's inner nodes first, then the file's) — the same Graph when
    there are none, and an `invalid_value` GraphError per token that cannot be."""
    from dataclasses import replace
    from types import SimpleNamespace

    from .graph import Graph

    memo_key = ("prefix_tokens", id(registry))      # most graphs have none: one scan per Graph object
    if graph.compiled.get(memo_key) is False:
        return graph, []
    now = now or datetime.now()
    nodes, errors = _expand_nodes(graph.nodes, graph, registry, now, None)
    subgraphs = graph.subgraphs
    for name, definition in (graph.subgraphs or {}).items():
        inside = SimpleNamespace(nodes={**graph.nodes, **definition.nodes}, metadata=graph.metadata)
        inner, inner_errors = _expand_nodes(definition.nodes, inside, registry, now, name)
        errors += inner_errors
        if inner is not definition.nodes:
            subgraphs = {**subgraphs, name: replace(definition, nodes=inner)}
    if nodes is graph.nodes and subgraphs is graph.subgraphs:
        if not errors:
            graph.compiled[memo_key] = False
        return graph, errors
    return Graph(nodes, metadata=graph.metadata, ui=graph.ui, has_ui=graph.has_ui, subgraphs=subgraphs), errors


def _expand_nodes(nodes: dict, lookup: Any, registry: Any, now: datetime,
                  subgraph: str | None) -> tuple[dict, list[Any]]:
    """`nodes` with their output-file inputs' run-start tokens expanded (the same dict when nothing changed),
    and the errors (a subgraph definition's name their inner node in the message)."""
    from .errors import GraphError

    out, errors = nodes, []
    for node_id, node in nodes.items():
        cls = registry.nodes.get(node.type)
        if cls is None:
            continue
        for name, spec in cls.spec.inputs.items():
            value = node.inputs.get(name)
            if not (spec.file_name_in not in (None, "input") and isinstance(value, str) and has_tokens(value)):
                continue
            try:
                expanded = expand_at_run_start(value, lookup, now)
                if expanded != value and (refused := expansion_refused(spec, value, expanded)):
                    raise PrefixTokenError(refused)     # the written value is kept: validation adds no second error
            except PrefixTokenError as exc:
                where = f"in subgraph {subgraph} (node {node_id}): " if subgraph is not None else ""
                errors.append(GraphError("invalid_value", f"{where}input {name!r} of {node.type}: {exc}",
                                         node_id=node_id if subgraph is None else None, input=name))
                continue
            if expanded != value:
                if out is nodes:
                    out = dict(nodes)
                current = out[node_id]
                out[node_id] = type(current)(current.type, {**current.inputs, name: expanded}, current.title,
                                             current.mode)
    return out, errors


def expansion_refused(spec: Any, written: str, expanded: str) -> str | None:
    """Why input `spec` refuses `expanded` — `written` with its tokens expanded — though it takes `written`, said
    about the tokens; None when it takes both, or refuses `written` too (validation then says so). Validation named
    only the result: a 14-character `%String.value%` was "String should have at most 120 characters; found
    'aaaa…'"."""
    from pydantic import ValidationError

    if spec.adapter is None:
        return None
    try:
        spec.adapter.validate_python(expanded)
        return None
    except ValidationError as exc:
        problem = exc.errors()[0]
    try:
        spec.adapter.validate_python(written)
    except ValidationError:
        return None
    limit = (problem.get("ctx") or {}).get("max_length")
    why = (f"longer than the {limit} characters this input takes" if problem.get("type") == "string_too_long"
           else f"refused ({problem.get('msg')})")
    return (f"the tokens in {written[:120]!r} expand it to {len(expanded)} characters ({expanded[:40]!r}…), "
            f"{why}; shorten the values the tokens name (a %NODE.INPUT% token writes that input's whole value), "
            f"or take tokens out of it")


def _node_value(token: str, graph: Any) -> str:
    from .graph import Link, primitive_value

    node_name, _, input_name = token.rpartition(".")
    node_id = _node_named(node_name, graph)
    if node_id is None:
        raise PrefixTokenError(f"%{token}% names node {node_name!r}, which the graph does not have (a node is "
                               f"named by its id, title or type); fix the token or take it out of the prefix")
    node = graph.nodes[node_id]
    ours = _input_named(input_name, node_id, graph)
    value = primitive_value(graph.nodes, node.inputs.get(ours))  # fed by a primitive (ComfyUI's PrimitiveNode)
    if isinstance(value, Link):
        raise PrefixTokenError(f"%{token}%: input {ours!r} of node {node_id!r} ({node.type}) is linked to "
                               f"another node; only a value written on the node (or on a primitive linked "
                               f"to it) can go into a file name")
    if value is None or not isinstance(value, (str, int, float, bool)):
        raise PrefixTokenError(f"%{token}%: input {ours!r} of node {node_id!r} ({node.type}) is not written in "
                               f"the graph; write it, or take the token out of the prefix")
    # a date token in a value is not expanded (one pass), so its '%' go: "%date:..%" from a String box kept its ':'
    # past the reserved-character check (which skips date tokens as expanded later) into the file name
    text = str(value).replace("/", "_").replace("\\", "_")
    return DATE_TOKEN.sub(lambda match: match.group(0).replace("%", "_"), text)


def _node_named(name: str, graph: Any) -> str | None:
    """The id of the node `name` means: its id, its title, its type, or (imported from ComfyUI) its class."""
    nodes = graph.nodes
    if name in nodes:
        return name
    comfyui_types = ((graph.metadata or {}).get("comfyui_types") or {}) if isinstance(graph.metadata, dict) else {}
    from .comfyui import DISPLAY_NAMES

    for matches in (lambda nid, node: node.title == name,
                    lambda nid, node: node.type == name or node.type.rpartition(".")[2] == name,
                    lambda nid, node: comfyui_types.get(nid) == name,
                    # a ComfyUI title left at its default (the class's display name: "Empty Latent Image")
                    lambda nid, node: node.title is None and name in DISPLAY_NAMES.get(comfyui_types.get(nid), ())):
        found = next((nid for nid, node in nodes.items() if matches(nid, node)), None)
        if found is not None:
            return found
    return None


def _input_named(name: str, node_id: str, graph: Any) -> str:
    """Our name of input `name` of a node: a ComfyUI input name of an imported node is translated."""
    comfyui_types = ((graph.metadata or {}).get("comfyui_types") or {}) if isinstance(graph.metadata, dict) else {}
    if name in graph.nodes[node_id].inputs or node_id not in comfyui_types:
        return name
    from .comfyui import translated_as

    equivalent = translated_as(comfyui_types[node_id])
    return equivalent.inputs.get(name, name) if equivalent is not None else name
