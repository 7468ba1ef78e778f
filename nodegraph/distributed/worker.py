"""The worker actor: one `Session` (its own plugins, cache and model memory manager) in a Ray process.

The pool (pool.py) wraps `SessionWorker` with `ray.remote(...)`; the class itself imports no Ray,
so it is tested in-process too. One run at a time per worker (the Session's lock); the actor is
threaded (`max_concurrency` > 1) so that `interrupt` and `describe` answer while a run executes.

    describe()            name, host, node id, pid, node types it can run, plugin warnings
    list_models(folders)  folder → model file names present on this worker's node
    run(request)          a generator (a Ray streaming generator): yields ("event", dict, preview bytes|None)
                          for every engine event in order, then one ("outcome", dict)
    interrupt(run_id)     stop that run (also if it has not started yet)
    warm_models()         "folder/name" of model files whose loader outputs the cache still holds

A run's files: the worker runs in a scratch folder of its own (input files the request carries
are written there first); output files are read back and travel in the outcome as bytes through
Ray's object store, so the server needs no folder shared with the workers (docs/distributed.md).
The scratch folder is removed when the run ends. Outcome dict:

    {"status": "succeeded"|"failed"|"interrupted", "worker": name, "host": host,
     "error": {...} | None, "outputs": {node: jsonable values}, "executed": [...], "cached": [...],
     "warnings": [{"node_id", "node_type", "message"[, "cached"]}, ...] (what nodes told the user),
     "drawn": {node: {output: value}} (what non-deterministic nodes drew: RunResult.drawn, for the batch's index),
     "files": [{**file result without path, "node_id", "index", "name", "data": bytes}],
     "warm": ["folder/name", ...], "seconds": float}
"""

from __future__ import annotations

import os
import queue
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

STREAM_END = object()


def session_from_options(options: dict[str, Any]):
    """A Session from plain options (what crosses to a worker): plugin names and module paths, cache, models."""
    import importlib

    from ..model_paths import ModelPaths
    from ..session import Session

    roots = options.get("model_roots")
    if roots is not None:
        model_paths = ModelPaths(roots=[Path(r) for r in roots])
    else:
        model_paths = ModelPaths.default(options.get("model_paths_config"))
    plugins = [importlib.import_module(name) for name in options.get("plugin_modules", ())]
    return Session(plugins=plugins, builtins=options.get("builtins", True), autoload=options.get("autoload"),
                   allow=options.get("allow"), deny=options.get("deny"), prefer=options.get("prefer"),
                   cache_policy=options.get("cache_policy", "lru"),
                   **({"cache_budget_bytes": options["cache_budget_bytes"]}
                      if options.get("cache_budget_bytes") is not None else {}),
                   model_paths=model_paths)


class SessionWorker:
    """A Session serving runs for the pool (see the module docstring).

    Args:
        name: the worker's name in errors and events (`w0`, `w1`, ...).
        options: Session options (see `session_from_options`).
        threads: torch threads for this worker (its CPU share; keeps runs reproducible).
    """

    def __init__(self, name: str, options: dict[str, Any], threads: int = 1):
        if threads:
            import torch

            torch.set_num_threads(max(1, int(threads)))
        self.name = name
        self.session = session_from_options(options)
        self.host = _host_address()
        self.scratch = Path(tempfile.mkdtemp(prefix=f"nodegraph-{name}-"))
        self._warm: dict[str, str] = {}      # "folder/name" → cache key of the node that loaded it
        self._warm_lock = threading.Lock()

    # --- what the pool asks -----------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Who this worker is and which node types it can run."""
        node_id = ""
        try:
            import ray

            node_id = ray.get_runtime_context().get_node_id()
        except Exception:  # noqa: BLE001 — not inside Ray (tests of the class itself)
            pass
        registry = self.session.registry
        return {"name": self.name, "host": self.host, "node_id": node_id, "pid": os.getpid(),
                "node_types": sorted(registry.nodes),
                "plugin_warnings": [{k: v for k, v in w.items() if k != "traceback"}
                                    for w in self.session.plugin_warnings()],
                "warm": self.warm_models()}

    def list_models(self, folders: list[str]) -> dict[str, list[str]]:
        """Folder → model file names this worker's node has."""
        return {folder: self.session.model_paths.list(folder)[0] for folder in folders}

    def warm_models(self) -> list[str]:
        """Model files ("folder/name") whose loader node outputs this worker's cache holds now."""
        with self._warm_lock:
            return sorted(key for key, cache_key in self._warm.items() if cache_key in self.session.cache)

    def interrupt(self, run_id: str) -> bool:
        """Stop `run_id` (at once if it runs; as soon as it starts if it is being validated)."""
        self.session.interrupt(run_id)
        return True

    def ping(self) -> str:
        return self.name

    # --- running ------------------------------------------------------------------

    def run(self, request: dict[str, Any]) -> Iterator[tuple]:
        """Run one request; yield its events in order, then ("outcome", dict). Never raises for a bad run."""
        events: queue.Queue = queue.Queue()
        holder: dict[str, Any] = {}

        def work() -> None:
            try:
                holder["outcome"] = self._run(request, lambda item: events.put(item))
            except BaseException as exc:  # noqa: BLE001 — reported as the run's outcome
                holder["outcome"] = {"status": "failed", "worker": self.name, "host": self.host,
                                     "error": {"message": f"worker {self.name} (host {self.host}): "
                                                          f"{type(exc).__name__}: {exc}"}}
            finally:
                events.put(STREAM_END)

        thread = threading.Thread(target=work, name=f"nodegraph-{self.name}-run", daemon=True)
        thread.start()
        while True:
            item = events.get()
            if item is STREAM_END:
                break
            yield item
        thread.join()
        yield ("outcome", holder["outcome"])

    def _run(self, request: dict[str, Any], emit) -> dict[str, Any]:
        run_id = request["run_id"]
        folder = self.scratch / run_id
        input_dir, output_dir = folder / "input", folder / "output"
        input_dir.mkdir(parents=True, exist_ok=True)
        output_dir.mkdir(parents=True, exist_ok=True)
        try:
            from ..paths import confine

            for name, data in (request.get("inputs") or {}).items():
                target = confine(input_dir, name, what="input file name", subfolders=True)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            return self._run_in(request, emit, input_dir, output_dir)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _run_in(self, request: dict[str, Any], emit, input_dir: Path, output_dir: Path) -> dict[str, Any]:
        from ..errors import GraphValidationError, NodeExecutionError, RunInterrupted
        from ..memory import release_failed_run
        from ..results import collect_files, jsonable

        run_id = request["run_id"]
        started = time.perf_counter()
        base = {"worker": self.name, "host": self.host}

        def on_event(event: Any) -> None:
            preview = None
            if event.type == "node_progress" and getattr(event, "preview", None) is not None:
                try:
                    from ..server import encode_image

                    preview = encode_image(event.preview)
                except Exception:  # noqa: BLE001 — a bad preview must not fail the run
                    preview = None
            emit(("event", event.to_dict(), preview))

        try:
            graph = self.session.load(request["graph"])
            if request.get("overrides"):
                graph = graph.with_overrides(request["overrides"])
            result = self.session.run(graph, outputs=request.get("outputs"), on_event=on_event,
                                      run_id=run_id, input_dir=input_dir, output_dir=output_dir,
                                      cache_scope=request.get("cache_scope"))
        except GraphValidationError as exc:
            errors = exc.to_list()
            message = f"on worker {self.name} (host {self.host}): {exc}"
            return {**base, "status": "failed", "error": {"message": message, "errors": errors}}
        except NodeExecutionError as exc:
            release_failed_run(exc)      # a worker lives long: the failed node's inputs go now (nodegraph.memory)
            return {**base, "status": "failed", "error": {
                "node_id": exc.node_id, "node_type": exc.node_type, "exception_type": exc.exception_type,
                "message": str(exc.exception), "traceback": exc.traceback, "worker": self.name}}
        except RunInterrupted as exc:
            release_failed_run(exc)
            return {**base, "status": "interrupted", "error": {"message": str(exc), "node_id": exc.node_id}}
        files = []
        for item in collect_files(result.outputs, output_dir):
            path = Path(item["path"])
            entry = {k: v for k, v in item.items() if k != "path"}
            entry["name"] = path.relative_to(output_dir.resolve()).as_posix() \
                if path.resolve().is_relative_to(output_dir.resolve()) else path.name
            entry["data"] = path.read_bytes()
            files.append(entry)
        self._remember_models(graph)
        outputs = {node_id: jsonable({k: v for k, v in values.items() if k != "files"})
                   for node_id, values in result.outputs.items()}
        return {**base, "status": "succeeded", "error": None, "outputs": outputs, "files": files,
                "executed": result.executed, "cached": result.cached, "warnings": result.warnings,
                "drawn": result.drawn, "warm": self.warm_models(), "seconds": time.perf_counter() - started}

    def _remember_models(self, graph: Any) -> None:
        """Note the cache key of each model-loading node of the run (what `warm_models` checks)."""
        from ..executor import ListingResolver, RunState, compile_graph, compute_keys, needed_nodes

        plan = compile_graph(graph, self.session.registry)
        loaders = {node_id for node_id, _, _, _ in plan.model_file_inputs}
        if not loaders:
            return
        state = RunState(run_id="affinity", plan=plan, targets=tuple(loaders))
        compute_keys(state, needed_nodes(plan, tuple(loaders)),        # keys as the session's run computes them
                     ListingResolver(self.session.resolve_file, self.session.model_paths.list))
        with self._warm_lock:
            for node_id, _, folder, name in plan.model_file_inputs:
                self._warm[f"{folder}/{name}"] = state.keys[node_id]


def _host_address() -> str:
    """This node's address as the Ray cluster knows it (else the host name)."""
    try:
        import ray

        node_id = ray.get_runtime_context().get_node_id()
        for node in ray.nodes():
            if node.get("NodeID") == node_id:
                return node["NodeManagerAddress"]
    except Exception:  # noqa: BLE001 — not inside Ray (tests of the class itself)
        pass
    return socket.gethostname()
