"""Batch variants: `--sweep` specifications → a list of override dicts (no Ray, no torch).

    nodegraph run GRAPH --sweep seed=0..99                 100 variants, sampler seed 0 … 99
    nodegraph run GRAPH --sweep sampler.cfg=3,5.5,7 --sweep seed=0..3    3 × 4 = 12 variants (product)
    nodegraph run GRAPH --sweep variants.csv               one variant per row (header = NODE.INPUT names)
    nodegraph run GRAPH --sweep variants.jsonl             one JSON object of overrides per line

Grammar of one `KEY=VALUES` spec:

    KEY      NODE.INPUT, or a bare INPUT name that exactly one node of the graph has (e.g. `seed`)
    VALUES   A..B          integers A, A+1, …, B (inclusive; B < A counts down)
             A..B:STEP     A, A+STEP, … up to B inclusive (STEP may be a float, e.g. 0..1:0.25)
             V1,V2,...     a list; each item is JSON (numbers, true, "text") or else a plain string

Several specs multiply (cartesian product, the first spec varying slowest);
files give their rows as they are and multiply with the other specs.

Main objects: `parse_sweep(specs, graph) -> list[dict]` and `SweepError` (names
the spec, what is wrong and the fix). The result drives `Session.map` and the
batch runner (batch.py).
"""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path
from typing import Any

from ..errors import NodegraphError

MAX_VARIANTS = 100_000     # a sweep beyond this is almost certainly a typo (e.g. 0..1e9)


class SweepError(NodegraphError, ValueError):
    """A `--sweep` specification that cannot be read; the message names it and the fix."""

    def __init__(self, spec: str, problem: str, fix: str):
        self.spec, self.problem, self.fix = spec, problem, fix
        super().__init__(f"--sweep {spec!r}: {problem}. Fix: {fix}")


def _number(text: str, spec: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise SweepError(spec, f"{text!r} is not a number",
                             "write a range as A..B or A..B:STEP with numbers, e.g. seed=0..99") from None


def _range_values(text: str, spec: str) -> list[Any]:
    bounds, _, step_text = text.partition(":")
    start_text, _, stop_text = bounds.partition("..")
    start, stop = _number(start_text, spec), _number(stop_text, spec)
    step = _number(step_text, spec) if step_text else (1 if stop >= start else -1)
    if step == 0 or (stop - start) * step < 0:
        raise SweepError(spec, f"step {step} never reaches {stop} from {start}",
                         "use a step with the sign of B - A, e.g. 0..1:0.25 or 10..0:-2")
    count = int((stop - start) / step + 1e-9) + 1
    if count > MAX_VARIANTS:
        raise SweepError(spec, f"the range has {count} values (more than {MAX_VARIANTS})",
                         "narrow the range or raise the step")
    if all(isinstance(v, int) for v in (start, stop, step)):
        return [start + i * step for i in range(count)]
    return [round(start + i * step, 12) for i in range(count)]


def _list_values(text: str) -> list[Any]:
    values = []
    for item in text.split(","):
        try:
            values.append(json.loads(item))
        except json.JSONDecodeError:
            values.append(item)
    return values


def resolve_key(key: str, graph: dict | None, spec: str) -> str:
    """NODE.INPUT as given, or the one node input named `key` in the graph."""
    if "." in key:
        node_id = key.split(".", 1)[0]
        nodes = (graph or {}).get("nodes")
        if isinstance(nodes, dict) and node_id not in nodes:
            raise SweepError(spec, f"the graph has no node {node_id!r}",
                             f"use one of its node ids: {', '.join(sorted(nodes)[:20])}")
        return key
    if graph is None:
        raise SweepError(spec, f"{key!r} names no node", f"write it as NODE.{key}")
    nodes = graph.get("nodes") or {}
    owners = sorted(nid for nid, node in nodes.items()
                    if isinstance(node, dict) and key in (node.get("inputs") or {}))
    if len(owners) == 1:
        return f"{owners[0]}.{key}"
    if not owners:
        raise SweepError(spec, f"no node of the graph has an input named {key!r}",
                         "write it as NODE.INPUT (`nodegraph validate` lists the node ids)")
    raise SweepError(spec, f"several nodes have an input named {key!r}: {', '.join(owners)}",
                     f"say which, e.g. {owners[0]}.{key}=...")


def _file_rows(path: Path, spec: str, graph: dict | None) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SweepError(spec, f"cannot read the file ({exc.strerror or exc})", "check the path") from None
    rows: list[dict[str, Any]] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames:
            raise SweepError(spec, "the CSV file has no header row", "start it with NODE.INPUT column names")
        for row in reader:
            rows.append({resolve_key(k, graph, spec): _list_values(v)[0] if v != "" else ""
                         for k, v in row.items() if k is not None})
    else:
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SweepError(spec, f"line {number} is not JSON ({exc.msg})",
                                 'write one object per line, e.g. {"sampler.seed": 3}') from None
            if not isinstance(row, dict):
                raise SweepError(spec, f"line {number} is not a JSON object",
                                 'write one object per line, e.g. {"sampler.seed": 3}')
            rows.append({resolve_key(k, graph, spec): v for k, v in row.items()})
    if not rows:
        raise SweepError(spec, "the file has no rows", "add at least one row of overrides")
    return rows


def parse_sweep(specs: list[str], graph: dict | None = None) -> list[dict[str, Any]]:
    """Every variant (a dict of `NODE.INPUT` overrides) that `specs` describe, in order.

    Args:
        specs: `KEY=VALUES` strings or paths of .csv / .jsonl files (see the module docstring).
        graph: the graph as a dict, to resolve bare input names like `seed`.

    Raises:
        SweepError: a spec is malformed, names an input no node has (or several have),
            or describes more than MAX_VARIANTS variants.
    """
    axes: list[list[dict[str, Any]]] = []
    for spec in specs:
        path = Path(spec)
        if "=" not in spec or (path.suffix.lower() in (".csv", ".jsonl", ".json") and path.is_file()):
            if path.suffix.lower() not in (".csv", ".jsonl"):
                raise SweepError(spec, "it is neither KEY=VALUES nor a .csv / .jsonl file",
                                 "write e.g. seed=0..99, sampler.cfg=3,5,7 or variants.csv")
            axes.append(_file_rows(path, spec, graph))
            continue
        key, _, values_text = spec.partition("=")
        key = resolve_key(key.strip(), graph, spec)
        if not values_text:
            raise SweepError(spec, "no values after '='", "give a range A..B or a list V1,V2")
        is_range = ".." in values_text and "," not in values_text
        values = _range_values(values_text, spec) if is_range else _list_values(values_text)
        axes.append([{key: value} for value in values])
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
