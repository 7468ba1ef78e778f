"""Batch jobs: one graph, many variants (override dicts), locally or across a Ray WorkerPool.

    items = session.map("graphs/txt2img.json", [{"sampler.seed": s} for s in range(100)],
                        output_dir="out/sweep", pool=pool)          # pool=None: in this process, in order
    nodegraph run graphs/txt2img.json --ray --sweep seed=0..99 --output-dir out/sweep

Every variant's files land in the one output folder (never replacing a file), and
`index.json` there lists every variant in order:

    {"graph": ..., "variants": 100, "succeeded": 100, "failed": 0, "interrupted": 0, "not_run": 0, "seconds": ...,
     "items": [{"index": 0, "overrides": {"sampler.seed": 0}, "status": "succeeded", "run_id": ...,
                "worker": "w1", "seconds": ..., "files": [{"node_id": "save", "name": "txt2img_00001.png",
                "kind": "image", ...}], "outputs": {...}, "error": null, "warnings": [...]}, ...],
     "base_graph": {...}, "provenance": {...}}

A variant whose non-deterministic nodes drew values (a RandomInt feeding the seed) also has `drawn` in its
item (`{"rand": {"value": 720008}}`, `RunResult.drawn`) and `graph`: the base graph with its overrides applied
and those values pinned in place of their links (`graph.pin_values`), which runs that variant again
(`jq '.items[0].graph' index.json > g.json`); a variant that drew nothing has neither (its `overrides` on
`base_graph` are what it ran). The CLI prints the drawn values as a single run does (`drawn_line`).

A batch stopped by Ctrl+C lists the variant that was running as "interrupted" and counts the variants it
never started in `not_run` (0 when the batch ran to its end).

`base_graph` is the graph every variant starts from (an item's `overrides` applied to it, and its `drawn`
values pinned — its `graph` —, is what that variant ran: the graph as a run's record holds it), `provenance` this process's versions and device and
the SHA-256 of the base graph's model and input files (nodegraph/provenance.py); an item's own `provenance`
holds the `models` / `inputs` entries in which its variant differs (a sweep over `ckpt_name` or a LoadImage's
`image`), absent when it reads the base's files. `warnings`: what the variant's nodes told the user (a sweep
prints each once, naming the variants: `warning_lines`).

A file's `name` is its path inside the output folder, '/'-separated (`sub/a_00001.png` for
`filename_prefix` "sub/a"). A local variant whose output node was served from the session's cache
(the same graph and overrides as an earlier variant) wrote no file of its own: its entries name the
earlier file and carry `"from_cache": true`. `index.json` holds the latest batch only; every batch
also appends the same object as one line to `index.jsonl` there, so earlier batches into the folder
keep their record.

Files from Ray workers are written in variant order (as each variant's turn comes, whatever order
the workers finish in), so a file's number follows the variant order as in a local batch.

Main objects: `BatchItem` (one variant's outcome), `run_batch` (what `Session.map` calls),
`sweep_target_check` (refuses a swept input the node does not declare, or one fed by a link),
`cmd_batch` (the CLI's `--sweep` / `--ray` path, one progress bar over the variants).
A failing variant never stops the others; its error is in its item.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

INDEX_FILE = "index.json"      # the latest batch; every batch is also a line of index.jsonl


@dataclass
class BatchItem:
    """One variant's outcome: status "succeeded" | "failed" | "interrupted", its files and outputs.

    `files`: one dict per output file, as a run's file results are (`path` absolute, as `RunResult` has it),
    plus `name`: its path inside the output folder. index.json keeps the `name` only (no machine's paths)."""

    index: int
    overrides: dict[str, Any]
    status: str
    run_id: str
    worker: str | None = None
    seconds: float = 0.0
    files: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)     # what nodes told the user (RunResult.warnings)
    # the model / input files this variant read where they differ from the base graph's (a sweep over
    # ckpt_name or a LoadImage's image): {"models": {...}, "inputs": {...}} as provenance.py writes them; None if none
    provenance: dict[str, Any] | None = None
    # node id → {output: value} that non-deterministic nodes (a RandomInt) gave this variant (RunResult.drawn)
    drawn: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the graph this variant ran, drawn values pinned (`pinned_variant`); None when it drew nothing
    graph: dict[str, Any] | None = None


def _run_local(session: Any, graph: Any, index: int, overrides: dict, outputs: list[str] | None,
               output_dir: Path, on_event: Callable | None) -> BatchItem:
    from ..errors import GraphValidationError, NodeExecutionError, RunInterrupted
    from ..memory import release_failed_run
    from ..results import collect_files, jsonable

    run_id = uuid.uuid4().hex
    started = time.perf_counter()
    item = BatchItem(index, overrides, "failed", run_id)
    try:
        result = session.run(graph, overrides=overrides, outputs=outputs, run_id=run_id, output_dir=output_dir,
                             on_event=on_event)
    except GraphValidationError as exc:
        item.error = {"message": str(exc), "errors": exc.to_list()}
    except NodeExecutionError as exc:
        item.error = {"node_id": exc.node_id, "node_type": exc.node_type, "exception_type": exc.exception_type,
                      "message": str(exc.exception)}
        release_failed_run(exc)     # the next variants need that memory (nodegraph.memory)
    except RunInterrupted as exc:
        item.status, item.error = "interrupted", {"message": str(exc), "node_id": exc.node_id}
        release_failed_run(exc)
    else:
        item.status, item.warnings, item.drawn = "succeeded", list(result.warnings), dict(result.drawn or {})
        item.outputs = {n: jsonable({k: v for k, v in values.items() if k != "files"})
                        for n, values in result.outputs.items()}
        item.files = [{**f, **({"from_cache": True} if f["node_id"] in result.cached else {})}   # name: inside
                      for f in collect_files(result.outputs, output_dir)]                      # output_dir; path
    item.seconds = time.perf_counter() - started
    return item


def _run_remote(pool: Any, registry: Any, graph: Any, index: int, overrides: dict, outputs: list[str] | None,
                input_dir: Path, on_event: Callable | None, run_id: str,
                stop: threading.Event, validate: Callable[..., list] | None = None) -> tuple[BatchItem, dict | None]:
    """One variant on the pool; its files are not written yet (`_write_remote_files`, in variant order).
    Once `stop` is set, a variant still waiting for a worker ends interrupted without running. With
    `validate` (`_checked_here`) an invalid variant fails here instead of on a worker."""
    from ..errors import GraphValidationError
    from .pool import input_files_for, needs_for
    from .scheduling import NoCapableWorker

    started = time.perf_counter()
    item = BatchItem(index, overrides, "failed", run_id)
    outcome = None
    try:
        variant = graph.with_overrides(overrides) if overrides else graph
        problems = validate(variant, outputs) if validate is not None else []
        if problems:       # refused here, as a local run would be: never shipped to a worker to fail there
            raise GraphValidationError(problems)
        request = {"run_id": run_id, "graph": variant.to_dict(), "outputs": outputs,
                   "inputs": input_files_for(variant, input_dir)}
        outcome = pool.execute(request, needs_for(registry, variant),
                               (lambda event, preview: on_event(event)) if on_event else (lambda e, p: None), stop)
    except GraphValidationError as exc:
        item.error = {"message": str(exc), "errors": exc.to_list()}
    except NoCapableWorker as exc:
        item.error = {"message": str(exc), "code": "no_capable_worker", "workers": exc.lacks}
    else:
        item.status, item.worker, item.error = outcome["status"], outcome.get("worker"), outcome.get("error")
        if item.status == "succeeded":
            item.outputs, item.warnings = outcome.get("outputs") or {}, list(outcome.get("warnings") or [])
            item.drawn = dict(outcome.get("drawn") or {})
    item.seconds = time.perf_counter() - started
    return item, outcome if item.status == "succeeded" else None


def _write_remote_files(item: BatchItem, outcome: dict | None, output_dir: Path) -> BatchItem:
    """Write a remote variant's files into `output_dir` (never replacing one); a file that cannot be
    written fails the variant with the reason."""
    from .backend import outputs_with_files

    if outcome is None:
        return item
    try:
        written = outputs_with_files(outcome, output_dir)
    except (OSError, ValueError) as exc:          # ValueError: a name that leaves the folder
        item.status, item.outputs = "failed", {}
        item.error = {"message": f"cannot write the run's files into {str(output_dir)!r}: {exc}"}
        return item
    root = os.path.realpath(output_dir)
    item.files = [{"node_id": node_id, **f, "path": os.path.realpath(f["path"]),
                   "name": Path(os.path.relpath(os.path.realpath(f["path"]), root)).as_posix()}
                  for node_id, values in written.items() for f in values.get("files", [])]
    return item


POOL_REFRESH_SECONDS = 5.0      # how often a batch on a pool re-checks its workers (a restarted one rejoins)


def run_batch(session: Any, source: Any, variants: list[dict[str, Any]], *, outputs: list[str] | None = None,
              output_dir: str | Path | None = None, pool: Any = None,
              on_item: Callable[[BatchItem], None] | None = None,
              on_event: Callable[[Any], None] | None = None, index_file: str | None = INDEX_FILE,
              stop: threading.Event | None = None, source_name: str | None = None) -> list[BatchItem]:
    """Run `source` once per variant; items in variant order; `index.json` written in `output_dir`.

    Stopping a batch: `stop.set()` (from any thread), Ctrl+C (KeyboardInterrupt, re-raised once the
    batch has stopped), or `session.interrupt()` while a variant runs here: variants not started
    are not run, running ones are interrupted (on a pool, on their workers), and the items returned
    (and the index) are the variants that ended. A variant that fails never stops the others.

    Args:
        session: the Session whose registry checks the graph (and that runs it when `pool` is None).
        source: a graph (path, JSON, dict or Graph).
        variants: override dicts (`{"node.input": value}`), e.g. from `sweep.parse_sweep`.
        outputs: node ids to produce (default: every output node).
        output_dir: the one folder for every variant's files (default: the session's output folder).
        pool: a started WorkerPool to spread the variants over, or None to run here in order.
        on_item: called with each BatchItem once it is done, in variant order (with a pool, a variant that
            finished early waits for the ones before it: its files are written then).
        on_event: receives every run's events (Event objects locally, dicts from a pool).
        index_file: the index's file name in `output_dir` (None: no index); each batch is also appended
            as a line to the same name with the suffix `.jsonl`.
        stop: an Event that stops the batch when set (see above).
        source_name: the file the graph came from, for the index (default: `source` when it is a path).
    """
    graph = session.load(source)
    variants = [session.renamed_overrides(graph, overrides) for overrides in variants]    # old input names too
    folder = Path(output_dir) if output_dir is not None else Path(session.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    items: list[BatchItem | None] = [None] * len(variants)
    lock = threading.Lock()
    stop = stop if stop is not None else threading.Event()

    def done(item: BatchItem) -> None:
        with lock:
            items[item.index] = item
        if on_item is not None:
            on_item(item)

    try:
        if pool is None:
            for index, overrides in enumerate(variants):
                if stop.is_set():
                    break
                try:
                    item = _run_local(session, graph, index, overrides, outputs, folder, on_event)
                except KeyboardInterrupt as exc:      # Ctrl+C in this variant: the index counts it
                    done(BatchItem(index, overrides, "interrupted", None,
                                   error={"message": str(exc) or "interrupted (Ctrl+C)"}))
                    raise
                done(item)
                if item.status == "interrupted":      # session.interrupt(): the script stops the batch
                    break
        else:
            _run_on_pool(pool, session, graph, variants, outputs, folder, on_event, stop, done)
    finally:
        if index_file:
            base = _provenance(session, graph)
            ended = [i for i in items if i is not None]
            for item in ended:
                item.provenance = _variant_files(session, graph, item.overrides, base)
                item.graph = pinned_variant(session.registry, graph, item.overrides, item.drawn)
            write_index(folder / index_file, source_name if source_name is not None else source, ended,
                        len(variants), time.perf_counter() - started, graph=graph, provenance=base)
    return [item for item in items if item is not None]


def _run_on_pool(pool: Any, session: Any, graph: Any, variants: list[dict[str, Any]], outputs: list[str] | None,
                 folder: Path, on_event: Callable | None, stop: threading.Event,
                 done: Callable[[BatchItem], None]) -> None:
    """`run_batch` across a pool: every variant submitted at once (the pool hands out worker slots),
    results taken in variant order; `stop` (or an exception here, e.g. Ctrl+C) cancels what has not
    started and interrupts what runs, before this returns or raises."""
    run_ids = [uuid.uuid4().hex for _ in variants]
    halt, finished = threading.Event(), threading.Event()     # ours: the caller's `stop` is only read
    refresher = threading.Thread(target=_refresh_while, args=(pool, halt), name="nodegraph-batch-refresh",
                                 daemon=True)
    refresher.start()
    with ThreadPoolExecutor(max_workers=max(1, pool.total_slots), thread_name_prefix="nodegraph-batch") as executor:
        futures = [executor.submit(_run_remote, pool, session.registry, graph, index, overrides, outputs,
                                   Path(session.input_dir), on_event, run_ids[index], halt,
                                   lambda variant, wanted: _checked_here(session, variant, wanted))
                   for index, overrides in enumerate(variants)]
        watcher = threading.Thread(target=_stop_when_asked, args=(pool, stop, halt, finished, futures, run_ids),
                                   name="nodegraph-batch-stop", daemon=True)
        watcher.start()
        try:
            for future in futures:            # in variant order: file numbers follow the variants
                if future.cancelled():
                    continue
                done(_write_remote_files(*future.result(), folder))
            finished.set()
        finally:
            halt.set()                        # a stop on the way out: nothing new starts, running runs end
            watcher.join()


STOP_POLL_SECONDS = 0.1


def _checked_here(session: Any, variant: Any, outputs: list[str] | None) -> list:
    """A variant's errors that do not depend on the worker: the graph, its values and its input files (shipped
    from here). Model files are the workers' to have (a driver may hold none), so they are not checked here."""
    from ..validation import validate

    checked = variant if outputs is None else variant.upstream_of(outputs)     # what the chosen outputs need
    return validate(checked, session.registry, outputs, None, session.input_dir)


def _stop_when_asked(pool: Any, stop: threading.Event, halt: threading.Event, finished: threading.Event,
                     futures: list, run_ids: list[str]) -> None:
    """Until the batch ends: once `stop` or `halt` is set before it finished, cancel the variants that have
    not started and interrupt the running ones (`halt` also keeps waiting ones from taking a worker)."""
    while not halt.wait(STOP_POLL_SECONDS):
        if stop.is_set():
            halt.set()
    if finished.is_set():
        return
    for future, run_id in zip(futures, run_ids):
        if not future.cancel() and not future.done():
            pool.interrupt(run_id)


def _refresh_while(pool: Any, halt: threading.Event) -> None:
    """Re-check the pool's workers every POOL_REFRESH_SECONDS until `halt`: a worker whose process died
    and was restarted by Ray serves the batch again (as the server's dispatcher does)."""
    import logging

    while not halt.wait(POOL_REFRESH_SECONDS):
        try:
            pool.refresh()
        except Exception:  # noqa: BLE001 — e.g. the cluster went away: the variants report it
            logging.getLogger(__name__).debug("could not refresh the Ray workers", exc_info=True)


SEED_INPUTS = ("seed", "noise_seed")


def seed_overlap_warning(graph: Any, variants: list[dict[str, Any]]) -> str | None:
    """A warning when a swept seed's values lie closer together than the graph's batch size: batch item k of a run
    uses seed + k (docs/sampling.md), so `--set batch_size=2 --sweep seed=42..43` made seed 43's image twice (A1111's
    "batch count × batch size" written as a sweep); None when the seeds give distinct images."""
    batch_sizes = [value for variant in variants or [{}] for value in _batch_sizes(graph, variant)]
    batch = max(batch_sizes, default=1)
    if batch < 2:
        return None
    for key in dict.fromkeys(k for variant in variants for k in variant if k.rpartition(".")[2] in SEED_INPUTS):
        seeds = sorted({v[key] for v in variants if type(v.get(key)) is int})
        close = [(a, b) for a, b in zip(seeds, seeds[1:]) if b - a < batch]
        if close:
            first, name = seeds[0], key.rpartition(".")[2]
            return (f"--sweep {key}: batch item k of a run uses seed + k and the batch size is {batch}, so seeds "
                    f"{close[0][0]} and {close[0][1]} draw {batch - (close[0][1] - close[0][0])} image(s) twice; for "
                    f"{len(seeds)} × {batch} different images step the seed by the batch size: "
                    f"{name}={first}..{first + batch * (len(seeds) - 1)}:{batch}")
    return None


def _batch_sizes(graph: Any, variant: dict[str, Any]) -> list[int]:
    """The `batch_size` literals of `graph` with `variant`'s overrides applied."""
    sizes = []
    for node_id, node in graph.nodes.items():
        value = variant.get(f"{node_id}.batch_size", node.inputs.get("batch_size"))
        if type(value) is int:
            sizes.append(value)
    return sizes


def _provenance(session: Any, graph: Any) -> dict[str, Any] | None:
    """This process's versions and device and the SHA-256 of the base graph's model files (provenance.py);
    None when they cannot be read (the index is written anyway)."""
    from types import SimpleNamespace

    from ..provenance import run_record

    try:
        return run_record(SimpleNamespace(graph=graph, services=session.services))
    except Exception:  # noqa: BLE001 — a record that cannot be made must not lose the batch's index
        return None


def _variant_files(session: Any, graph: Any, overrides: dict[str, Any], base: dict[str, Any] | None
                   ) -> dict[str, Any] | None:
    """The `models` / `inputs` entries of a variant's provenance that differ from the base graph's `base` (a
    sweep that swaps the checkpoint or the source image), keyed as there; None when the variant reads the base's
    files, when it changes no input, or when they cannot be read (the index is written anyway)."""
    if not overrides or base is None:
        return None
    from types import SimpleNamespace

    from ..provenance import input_files, model_files

    try:
        context = SimpleNamespace(graph=graph.with_overrides(overrides), services=session.services)
        read = {"models": model_files(context), "inputs": input_files(context)}
    except Exception:  # noqa: BLE001 — an invalid variant (its item says why) or an unreadable file
        return None
    changed = {kind: entries for kind, entries in read.items() if entries != base.get(kind, {})}
    return changed or None


def pinned_variant(registry: Any, graph: Any, overrides: dict[str, Any], drawn: dict[str, dict[str, Any]]
                   ) -> dict[str, Any] | None:
    """The graph file (dict) a variant ran: `graph` with its `overrides` applied and the values its
    non-deterministic nodes `drawn` pinned in place of their links (`graph.pin_values`, as a single run's record
    holds it), so it runs that variant again; None when it drew nothing (overrides on the base graph say it all)."""
    if not drawn:
        return None
    from ..graph import pin_values

    try:
        return pin_values((graph.with_overrides(overrides) if overrides else graph).to_dict(), drawn,
                          registry.takes_literal)
    except Exception:  # noqa: BLE001 — the item keeps its `drawn`; a graph that cannot be made must not lose the index
        return None


MAX_DRAWN_SHOWN = 10     # variants whose drawn values the CLI prints; the rest are counted


def drawn_line(items: list[BatchItem]) -> str | None:
    """The values the variants' non-deterministic nodes drew, as a single run prints them ("drawn: ..."), one
    variant after another, the first MAX_DRAWN_SHOWN of them and a count of the rest; None when none drew any."""
    drew = [item for item in items if item.drawn]
    if not drew:
        return None
    shown = "; ".join(
        f"variant {item.index}: " + ", ".join(f"{node_id}.{name} = {value}"
                                                for node_id, values in sorted(item.drawn.items())
                                                for name, value in values.items())
        for item in drew[:MAX_DRAWN_SHOWN])
    more = f"; and {len(drew) - MAX_DRAWN_SHOWN} more variant(s)" if len(drew) > MAX_DRAWN_SHOWN else ""
    return (f"drawn: {shown[:1000]}{more} (pinned in {INDEX_FILE}: each item's `drawn`, and its `graph`, which "
            f"makes that variant's result again)")


def _portable(item: dict[str, Any]) -> dict[str, Any]:
    """An item as the index keeps it: files by `name` (inside the folder), without this machine's absolute path;
    `provenance` only for a variant whose files differ from the base graph's, `drawn` and `graph` only for one
    that drew values."""
    kept = {k: v for k, v in item.items() if not (k == "provenance" and v is None or k == "drawn" and not v
                                                   or k == "graph" and v is None)}
    return {**kept, "files": [{k: v for k, v in f.items() if k != "path"} for f in item["files"]]}


def write_index(path: Path, source: Any, items: list[BatchItem], total: int, seconds: float, *,
                graph: Any = None, provenance: dict[str, Any] | None = None) -> None:
    """The batch's index.json (see the module docstring): replaced by the next batch, and appended as one
    line to index.jsonl, which keeps every batch's record."""
    from ..files import append_record, replace_file

    counts = {status: sum(1 for i in items if i.status == status) for status in ("succeeded", "failed", "interrupted")}
    body = {"graph": str(source) if isinstance(source, (str, Path)) and len(str(source)) < 4096 else None,
            "variants": total, **counts, "not_run": total - len(items), "seconds": round(seconds, 3),
            **({"base_graph": graph.to_dict()} if graph is not None else {}),
            **({"provenance": provenance} if provenance is not None else {}),
            "items": [_portable(asdict(i)) for i in items]}
    replace_file(path, json.dumps(body, indent=2, default=str) + "\n")
    try:
        append_record(path.with_suffix(".jsonl"), json.dumps(body, default=str))
    except OSError as exc:
        print(f"warning: the batch's record was not appended to {str(path.with_suffix('.jsonl'))!r}: "
              f"{exc.strerror or exc}", file=sys.stderr)


def warning_lines(items: list[BatchItem]) -> list[str]:
    """What nodes told the user, once per node and message, with the variants it was said in (a run prints
    each warning; a sweep of 100 variants must not print the same one 100 times, nor drop it)."""
    said: dict[tuple[str, str, str], list[int]] = {}
    for item in items:
        for warning in item.warnings:
            key = (warning.get("node_id", ""), warning.get("node_type", ""), warning.get("message", ""))
            said.setdefault(key, []).append(item.index)
    lines = []
    for (node_id, node_type, message), indexes in said.items():
        where = ("in every variant" if len(indexes) == len(items) else
                 f"in variant(s) {', '.join(map(str, indexes[:10]))}{', …' if len(indexes) > 10 else ''}")
        lines.append(f"warning: node {node_id!r} ({node_type}) {where}: {message}")
    return lines


def sweep_target_check(registry: Any, graph: Any) -> Callable[[str], tuple[str, str] | None]:
    """A `parse_sweep` check: refuses NODE.INPUT when the node's type declares no such input, or when the
    input is fed by a link (an override would cut it) — reported once, before any variant runs."""
    from ..graph import Link
    from ..validation import suggest

    def check(key: str) -> tuple[str, str] | None:
        node_id, _, name = key.rpartition(".")
        node = graph.nodes.get(node_id)
        if node is None:
            ids = ", ".join(sorted(graph.nodes)[:20])
            return f"the graph has no node {node_id!r}", f"use one of its node ids: {ids}"
        cls = registry.nodes.get(node.type)
        if cls is None:                        # an unknown type, or a subgraph: the run reports it
            return None
        inputs = cls.spec.inputs
        if name not in inputs:
            return (f"node {node_id!r} ({node.type}) has no input {name!r}.{suggest(name, inputs)}".rstrip("."),
                    f"use one of its inputs: {', '.join(inputs) or '(none)'}")
        current = node.inputs.get(name)
        if isinstance(current, Link):
            return (f"input {name!r} of node {node_id!r} comes from node {current.node!r} through a link",
                    f"sweep the value where it comes from (e.g. {current.node}.value=...), or unlink the input")
        return None

    return check


def sweep_value_problem(registry: Any, graph: Any, variants: list[dict[str, Any]]) -> str | None:
    """The first swept value its input refuses (`1e20` for an INT input, a size off its multiple), as a usage
    error naming the key and the value — checked once per distinct value, before any variant runs."""
    from ..validation import _check_literal

    seen: set[tuple[str, str]] = set()
    for variant in variants:
        for key, value in variant.items():
            node_id, _, name = key.rpartition(".")
            node = graph.nodes.get(node_id)
            cls = registry.nodes.get(node.type) if node is not None else None
            ispec = cls.spec.inputs.get(name) if cls is not None else None
            marker = (key, json.dumps(value, sort_keys=True, default=repr))
            if ispec is None or marker in seen:
                continue
            seen.add(marker)
            errors: list = []          # 20.0 for an INT input is 20, as a graph file and --set read it
            _check_literal(node_id, node.type, name, ispec, ispec.as_literal(value), None, errors)
            if errors:
                return f"--sweep {key}={value!r}: {errors[0].message}"
    return None


def _text_items(registry: Any, graph: Any, variant: dict[str, Any]) -> dict[str, Any]:
    """A swept number or true/false/null for a text (STRING) input becomes its text as typed, as `--set`
    does: `--sweep t.template=1.50,1e5` gives the texts "1.50" and "1e5" (a range's numbers as JSON writes
    them); any other input gets the value. `graph` None (it does not load): values, for the run to report."""
    from ..cli import _input_port
    from .sweep import SweepText

    def text(key: str, value: Any) -> Any:
        typed = isinstance(value, SweepText)
        plain = value.value if typed else value
        if graph is not None and (plain is None or isinstance(plain, (bool, int, float))):
            node_id, _, name = key.rpartition(".")
            if _input_port(registry, graph, node_id, name) == "STRING":
                return value.text if typed else json.dumps(plain)
        return plain

    return {key: text(key, value) for key, value in variant.items()}


def cmd_batch(args: Any, make_session: Callable[..., Any]) -> int:
    """`nodegraph run GRAPH [--ray [ADDRESS]] [--sweep SPEC ...]`: exit 0 if every variant succeeded."""
    from ..cli import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, EXIT_USAGE, _load, _parse_overrides,
                       _print_errors, _resolve_bare_overrides, _shown, _typed_overrides)
    from ..errors import GraphValidationError
    from .sweep import declared_inputs, parse_sweep

    try:
        base = _parse_overrides(args.overrides)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    session = make_session(args, output_dir=args.output_dir, input_dir=args.input_dir)
    try:       # as `run` reads it: a graph file, a PNG holding one, a ComfyUI prompt or workflow (imported)
        graph = _load(session, args.graph)
        base = _resolve_bare_overrides(graph, base, session.registry)    # --set seed=4, as --sweep reads seed=0..9
    except GraphValidationError as exc:
        _print_errors(exc.errors, sys.stderr)
        return EXIT_INVALID
    graph_dict = graph.to_dict()
    check = sweep_target_check(session.registry, graph)
    try:                                    # then every key against the node's inputs: once, not once a variant
        swept = parse_sweep(args.sweep, graph_dict, check, keep_text=True,
                            declared_by=declared_inputs(graph, session.registry)) if args.sweep else [{}]
        swept = [_text_items(session.registry, graph, variant) for variant in swept]
        refused_value = sweep_value_problem(session.registry, graph, swept)
        if refused_value is not None:
            raise ValueError(refused_value)
        for key in base:
            refused = check(key) if check is not None else None
            if refused is not None:
                end = "" if refused[0].endswith(("?", ".", "!")) else "."
                raise ValueError(f"--set {key}: {refused[0]}{end} Fix: {refused[1]}")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    base = _typed_overrides(session.registry, graph, base)
    variants = [{**base, **v} for v in swept]
    if (overlap := seed_overlap_warning(graph, variants)) is not None:
        print(f"warning: {overlap}", file=sys.stderr)
    pool = None
    if args.ray is not None:
        from .options import pool_from_args
        from .pool import ClusterUnreachableError, RayNotInstalledError

        pool = pool_from_args(args)
        from ..cli import _stop_on_sigterm_as_on_ctrl_c

        try:
            pool.start_cluster()
            # ray.init put its own SIGTERM handler in place of run's, which aborted the process (SIGABRT, exit
            # 134, a crash dump) instead of recording the batch interrupted and exiting 130
            _stop_on_sigterm_as_on_ctrl_c()
            pool.start()
        except (ClusterUnreachableError, RayNotInstalledError, TimeoutError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            pool.close()
            return EXIT_USAGE
        except KeyboardInterrupt:          # Ctrl+C or SIGTERM while the workers start
            pool.close()
            print("interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(variants), unit="run", file=sys.stderr, dynamic_ncols=True, disable=None)
    failures: list[BatchItem] = []

    def on_item(item: BatchItem) -> None:
        if item.status != "succeeded":
            failures.append(item)
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"{len(failures)} failed" if failures else "")

    try:
        items = run_batch(session, graph, variants, outputs=args.outputs, output_dir=args.output_dir,
                          pool=pool, on_item=on_item, source_name=_shown(str(args.graph)))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.close()
    for item in sorted(failures, key=lambda i: i.index)[:10]:
        print(f"variant {item.index} {item.overrides}: {item.status}: {(item.error or {}).get('message')}",
              file=sys.stderr)
    for line in warning_lines(items):
        print(line, file=sys.stderr)
    if (drawn := drawn_line(items)) is not None:    # a RandomInt's seeds: as a single run prints them
        from ..cli import _terminal_safe

        print(_terminal_safe(drawn))
    ok = sum(1 for i in items if i.status == "succeeded")
    where = "on Ray workers" if pool is not None else "here"
    print(f"{ok}/{len(items)} variant(s) succeeded {where}; files and {INDEX_FILE} in {args.output_dir}")
    if ok == len(items):
        return EXIT_OK
    return EXIT_INTERRUPTED if all(i.status == "interrupted" for i in failures) else EXIT_FAILED
