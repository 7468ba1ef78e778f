"""Batch variants: `--sweep` specifications → a list of override dicts (no Ray, no torch).

    nodegraph run GRAPH --sweep seed=0..99                 100 variants, sampler seed 0 … 99
    nodegraph run GRAPH --sweep sampler.cfg=3,5.5,7 --sweep seed=0..3    3 × 4 = 12 variants (product)
    nodegraph run GRAPH --sweep variants.csv               one variant per row (header = NODE.INPUT names)
    nodegraph run GRAPH --sweep variants.jsonl             one JSON object of overrides per line

Grammar of one `KEY=VALUES` spec:

    KEY      NODE.INPUT, or a bare INPUT name that exactly one node of the graph has (e.g. `seed`)
    VALUES   A..B          integers A, A+1, …, B (inclusive; B < A counts down)
             A..B:STEP     A, A+STEP, … up to B inclusive (STEP may be a float, e.g. 0..1:0.25)
             V1,V2,...     a list; each item is JSON (numbers, true, "text", [1, 2]) or else a plain string.
                           A JSON item may hold commas: `prompt.text="a red, round cat",dog` is two items,
                           and `[1,2]` is one item (a list value).

Numbers must be finite (NaN, Infinity and 1e400 are refused, as `--set` refuses them). A CSV
cell is one item (JSON, else text); every row has one cell per header column.
Several specs multiply (cartesian product, the first spec varying slowest);
files give their rows as they are and multiply with the other specs.

Main objects: `parse_sweep(specs, graph, check) -> list[dict]` and `SweepError` (names
the spec, what is wrong and the fix). `check` lets the caller refuse a key up front (the
CLI checks each input against the node's declaration: batch.py `sweep_target_check`).
The result drives `Session.map` and the batch runner (batch.py).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from pathlib import Path
from typing import Any, Callable

from ..errors import NodegraphError

MAX_VARIANTS = 100_000     # a sweep beyond this is almost certainly a typo (e.g. 0..1e9)
KeyCheck = Callable[[str], "tuple[str, str] | None"]     # NODE.INPUT → (problem, fix), or None when it is fine
Owners = Callable[[str], "list[str]"]     # a bare input name → the ids of the nodes whose type declares it


def declared_inputs(graph: Any, registry: Any) -> Owners:
    """`declared_by` for a Graph and a Registry: the ids of the graph's nodes whose type declares an input."""
    def owners(name: str) -> list[str]:
        classes = {nid: registry.nodes.get(node.type) for nid, node in graph.nodes.items()}
        return sorted(nid for nid, cls in classes.items() if cls is not None and name in cls.spec.inputs)
    return owners


class SweepError(NodegraphError, ValueError):
    """A `--sweep` specification that cannot be read; the message names it and the fix."""

    def __init__(self, spec: str, problem: str, fix: str):
        self.spec, self.problem, self.fix = spec, problem, fix
        end = "" if problem.endswith(("?", ".", "!")) else "."     # "Did you mean 'sampler'?" ends itself
        super().__init__(f"--sweep {spec!r}: {problem}{end} Fix: {fix}")


class _NotFinite(ValueError):
    """A JSON value a graph cannot hold (NaN, Infinity, a float beyond the float range)."""


def _refuse_constant(name: str) -> Any:
    raise _NotFinite(name)


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _NotFinite(text)
    return number


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def _json(text: str, spec: str) -> Any:
    """`text` read as JSON (json.JSONDecodeError if it is not), refusing what a graph cannot hold."""
    try:
        return _DECODER.decode(text)
    except _NotFinite as exc:
        raise SweepError(spec, f"{exc} is not a number a graph can hold", "give finite numbers") from None
    except RecursionError:
        raise SweepError(spec, "a value is nested too deeply", "a graph literal is a few levels at most") from None


def _number(text: str, spec: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            raise SweepError(spec, f"{text!r} is not a number",
                             "write a range as A..B or A..B:STEP with numbers, e.g. seed=0..99") from None
    if not math.isfinite(number):
        raise SweepError(spec, f"{text.strip()!r} is not a finite number",
                         "write a range as A..B or A..B:STEP with finite numbers, e.g. 0..1:0.25")
    return number


def _range_values(text: str, spec: str) -> list[Any]:
    bounds, _, step_text = text.partition(":")
    start_text, _, stop_text = bounds.partition("..")
    start, stop = _number(start_text, spec), _number(stop_text, spec)
    step = _number(step_text, spec) if step_text else (1 if stop >= start else -1)
    if step == 0 or (stop != start and (stop > start) != (step > 0)):   # compared: a product can overflow
        raise SweepError(spec, f"step {step} never reaches {stop} from {start}",
                         "use a step with the sign of B - A, e.g. 0..1:0.25 or 10..0:-2")
    too_many = SweepError(spec, f"the range has more than {MAX_VARIANTS} values",
                          "narrow the range or raise the step")
    if all(isinstance(v, int) for v in (start, stop, step)):
        count = (stop - start) // step + 1          # exact for integers of any size
        if count > MAX_VARIANTS:
            raise too_many
        return [start + i * step for i in range(count)]
    try:
        steps = (stop - start) / step               # inf for a tiny step (0..10:1e-320)
        if math.isinf(stop - start):                # or for a span beyond the float range (1e308..-1e308)
            steps = stop / step - start / step
    except OverflowError:                           # an integer bound beyond the float range
        raise too_many from None
    if not math.isfinite(steps) or steps + 1 > MAX_VARIANTS:
        raise too_many
    count = int(steps + 1e-9) + 1
    values = [round(start + i * step, 12) for i in range(count)]
    if not all(math.isfinite(v) for v in values):   # a span wider than the float range (1e308..-1e308)
        raise SweepError(spec, "its values leave the float range", "sweep numbers within ±1e308")
    return values


class SweepText:
    """A list item or CSV cell that read as JSON but not as text (`1.50`, `1e5`, `true`), kept with the text
    as typed (`parse_sweep(..., keep_text=True)`): a text input takes `text`, any other input `value`, as
    `--set` does (the command line's `batch._text_items` decides, knowing the input's type)."""

    __slots__ = ("text", "value")

    def __init__(self, text: str, value: Any):
        self.text, self.value = text, value

    def __repr__(self) -> str:
        return self.text


def _item(text: str, spec: str, keep_text: bool = False) -> Any:
    """One list item or CSV cell: JSON, else the text as typed (with `keep_text`, a number, true, false or
    null is a SweepText holding both)."""
    try:
        value = _json(text, spec)
        if keep_text and (value is None or isinstance(value, (bool, int, float))):
            return SweepText(text.strip(), value)
        return value
    except json.JSONDecodeError:
        if text.strip()[:1] in ('"', "[", "{"):
            raise SweepError(spec, f"the item {text!r} starts like JSON but is not JSON",
                             'close its quotes or brackets (e.g. "a, b" or [1, 2]), or leave them out for '
                             "plain text") from None
        return text


def _list_values(text: str, spec: str, keep_text: bool = False) -> list[Any]:
    """Comma-separated items; an item that is a JSON string, array or object may contain commas."""
    values, position = [], 0
    while True:
        start = position + len(text[position:]) - len(text[position:].lstrip())
        if text[start:start + 1] in ('"', "[", "{"):
            try:
                end = _DECODER.raw_decode(text, start)[1]
            except json.JSONDecodeError:
                end = None
            except (_NotFinite, RecursionError):
                _json(text[start:], spec)                   # raises the SweepError that says why
                raise AssertionError("unreachable") from None
            after = text[end:].lstrip() if end is not None else None
            if after is not None and after[:1] in ("", ","):
                values.append(_item(text[start:end], spec, keep_text))    # again through _item: its checks
                if not after:
                    return values
                position = text.index(",", end) + 1
                continue
        comma = text.find(",", position)
        values.append(_item(text[position:] if comma < 0 else text[position:comma], spec, keep_text))
        if comma < 0:
            return values
        position = comma + 1


def resolve_key(key: str, graph: dict | None, spec: str, check: KeyCheck | None = None,
                declared_by: Owners | None = None) -> str:
    """NODE.INPUT as given, or the one node input named `key` in the graph — written in the file, else (with
    `declared_by`: bare name → the node ids whose type declares it) declared by its node type (`quality` where
    SaveImage leaves it at its default, as `--set` finds it); `check` may refuse it."""
    if "." in key:
        node_id, _, input_name = key.rpartition(".")       # as Graph.with_overrides splits it
        if not node_id or not input_name:
            raise SweepError(spec, f"{key!r} is not NODE.INPUT", "write e.g. sampler.seed=0..9")
        nodes = (graph or {}).get("nodes")
        if isinstance(nodes, dict) and node_id not in nodes:
            raise SweepError(spec, f"the graph has no node {node_id!r}",
                             f"use one of its node ids: {', '.join(sorted(nodes)[:20])}")
        resolved = key
    elif graph is None:
        raise SweepError(spec, f"{key!r} names no node", f"write it as NODE.{key}")
    else:
        nodes = graph.get("nodes") or {}
        owners = sorted(nid for nid, node in nodes.items()
                        if isinstance(node, dict) and key in (node.get("inputs") or {}))
        if not owners and declared_by is not None:
            owners = declared_by(key)
        if not owners:
            shown = ", ".join(f"{nid} ({node.get('type')})" for nid, node in sorted(nodes.items())[:20]
                              if isinstance(node, dict))
            raise SweepError(spec, f"no node of the graph has an input named {key!r}",
                             f"write it as NODE.INPUT; the graph's nodes: {shown}" if shown
                             else "write it as NODE.INPUT")
        targets = sorted({_through_primitive(nodes, owner, key) for owner in owners})
        if len(targets) > 1:     # (one primitive box feeding every one of them, as ComfyUI's shared seed, is one)
            raise SweepError(spec, f"several nodes have an input named {key!r}: {', '.join(owners)}",
                             f"say which, e.g. {owners[0]}.{key}=...")
        resolved = targets[0]
    refused = check(resolved) if check is not None else None
    if refused is not None:
        raise SweepError(spec, *refused)
    return resolved


def _through_primitive(nodes: dict, node_id: str, name: str) -> str:
    """`NODE.INPUT` for a bare name, or — when that input is linked from a primitive box (Int, String, …; an
    imported ComfyUI PrimitiveNode) with a written value — the box's `value`: `seed=5` sets the seed where it is
    written (it was `override_replaces_link` on every imported graph whose seed a primitive gives)."""
    from ..graph import PRIMITIVE_TYPES

    value = ((nodes.get(node_id) or {}).get("inputs") or {}).get(name)
    if isinstance(value, dict) and value.get("output") == "value" and isinstance(value.get("node"), str):
        source = nodes.get(value["node"])
        written = (source.get("inputs") or {}).get("value", None) if isinstance(source, dict) else None
        if isinstance(source, dict) and str(source.get("type")).rpartition(".")[2] in PRIMITIVE_TYPES and \
                written is not None and not (isinstance(written, dict) and "node" in written):
            return f"{value['node']}.value"
    return f"{node_id}.{name}"


def _csv_rows(text: str, spec: str, graph: dict | None, check: KeyCheck | None,
              keep_text: bool = False, declared_by: Owners | None = None) -> list[dict[str, Any]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header or not any(cell.strip() for cell in header):
        raise SweepError(spec, "the CSV file has no header row", "start it with NODE.INPUT column names")
    keys = [resolve_key(cell.strip(), graph, spec, check, declared_by) for cell in header]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise SweepError(spec, f"the header names {', '.join(repeated)} more than once", "keep one column each")
    rows = []
    for cells in reader:
        if not cells:                                     # a blank line
            continue
        if len(cells) != len(keys):
            raise SweepError(spec, f"line {reader.line_num} has {len(cells)} cell(s) but the header names "
                                   f"{len(keys)} column(s)",
                             "give every row one cell per column (quote a cell that holds a comma: \"a, b\")")
        rows.append({key: _item(cell, spec, keep_text) if cell != "" else "" for key, cell in zip(keys, cells)})
    return rows


def _file_rows(path: Path, spec: str, graph: dict | None, check: KeyCheck | None,
               keep_text: bool = False, declared_by: Owners | None = None) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:          # ValueError: not UTF-8, a NUL in the path
        raise SweepError(spec, f"cannot read the file ({getattr(exc, 'strerror', None) or exc})",
                         "check the path; the file must be UTF-8 text") from None
    rows: list[dict[str, Any]] = []
    if path.suffix.lower() == ".csv":
        rows = _csv_rows(text, spec, graph, check, keep_text, declared_by)
    else:
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = _json(line, spec)
            except json.JSONDecodeError as exc:
                raise SweepError(spec, f"line {number} is not JSON ({exc.msg})",
                                 'write one object per line, e.g. {"sampler.seed": 3}') from None
            if not isinstance(row, dict):
                raise SweepError(spec, f"line {number} is not a JSON object",
                                 'write one object per line, e.g. {"sampler.seed": 3}')
            rows.append({resolve_key(k, graph, spec, check, declared_by): v for k, v in row.items()})
    if not rows:
        raise SweepError(spec, "the file has no rows", "add at least one row of overrides")
    return rows


def _axis(spec: str, graph: dict | None, check: KeyCheck | None, keep_text: bool,
          declared_by: Owners | None) -> list[dict[str, Any]]:
    """One spec's variants: a file's rows, or `KEY=VALUES`' values, each a dict of overrides."""
    path = Path(spec)
    if "=" not in spec or (path.suffix.lower() in (".csv", ".jsonl", ".json") and path.is_file()):
        if path.suffix.lower() not in (".csv", ".jsonl"):
            raise SweepError(spec, "it is neither KEY=VALUES nor a .csv / .jsonl file",
                             "write e.g. seed=0..99, sampler.cfg=3,5,7 or variants.csv")
        return _file_rows(path, spec, graph, check, keep_text, declared_by)
    key, _, values_text = spec.partition("=")
    key = resolve_key(key.strip(), graph, spec, check, declared_by)
    if not values_text:
        raise SweepError(spec, "no values after '='", "give a range A..B or a list V1,V2")
    is_range = ".." in values_text and "," not in values_text and values_text.lstrip()[:1] not in '"[{'
    values = _range_values(values_text, spec) if is_range else _list_values(values_text, spec, keep_text)
    return [{key: value} for value in values]


def _refuse_swept_twice(axis: list[dict[str, Any]], spec: str, swept_by: dict[str, str]) -> None:
    """Note the keys one spec sweeps; a key an earlier spec sweeps too is a SweepError (the later list replaced the
    earlier in every variant: `--sweep w=1,2 --sweep w=3,4` ran 3, 4, 3, 4 and never 1 or 2)."""
    keys = {key for row in axis for key in row}
    for key in sorted(keys):
        if key in swept_by:
            raise SweepError(spec, f"{key} is swept twice (also by {swept_by[key]!r}): the second list would "
                             f"replace the first in every variant", f"give {key} one list of all its values")
        swept_by[key] = spec


def parse_sweep(specs: list[str], graph: dict | None = None, check: KeyCheck | None = None,
                keep_text: bool = False, declared_by: Owners | None = None) -> list[dict[str, Any]]:
    """Every variant (a dict of `NODE.INPUT` overrides) that `specs` describe, in order.

    Args:
        specs: `KEY=VALUES` strings or paths of .csv / .jsonl files (see the module docstring).
        graph: the graph as a dict, to resolve bare input names like `seed`.
        check: called with each resolved `NODE.INPUT`; returns (problem, fix) to refuse it, else None.
        declared_by: a bare input name → the ids of the nodes whose type declares it (for an input the file
            leaves at its default; `declared_inputs(graph, registry)`).
        keep_text: list items and CSV cells that read as numbers, true, false or null come as `SweepText`
            (the text as typed and the JSON value), for a caller that gives text inputs the text.

    Raises:
        SweepError: a spec is malformed, names an input no node has (or several have), is refused
            by `check`, sweeps an input another spec sweeps, or describes more than MAX_VARIANTS variants.
    """
    axes: list[list[dict[str, Any]]] = []
    swept_by: dict[str, str] = {}      # key → the spec that sweeps it: two specs of one key would overwrite each other
    for spec in specs:
        axis = _axis(spec, graph, check, keep_text, declared_by)
        _refuse_swept_twice(axis, spec, swept_by)
        axes.append(axis)
    total = 1
    for axis in axes:
        total *= len(axis)
    if total > MAX_VARIANTS:
        raise SweepError(" ".join(specs), f"the sweep has {total} variants (more than {MAX_VARIANTS})",
                         "sweep fewer values at once")
    variants = []
    for combination in itertools.product(*axes):
        merged: dict[str, Any] = {}
        for part in combination:
            merged.update(part)
        variants.append(merged)
    return variants
