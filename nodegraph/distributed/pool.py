"""The Ray worker pool: connect to a cluster, keep N `SessionWorker` actors, run requests on them.

    pool = WorkerPool(address=None, workers=2)      # None: a local cluster on 127.0.0.1
    pool.start()                                    # ClusterUnreachableError if the address does not answer
    outcome = pool.execute(request, needs, on_event)   # blocks; events stream to on_event in order
    pool.close()

Main objects:

    WorkerResources        CPUs / GPUs / memory each worker actor reserves (Ray resources)
    WorkerPool             the actors, their scheduler view (scheduling.WorkerInfo), execute / interrupt
    ClusterUnreachableError  the address does not answer; names it and the fix
    RayNotInstalledError   Ray is missing from this environment; names the install command
    needs_for              what a graph needs from a worker (node types with their plugins, model files)
    input_files_for        the run's input files (uploads) that travel with the request
    local_ray_environment  the environment variables that keep a local cluster on 127.0.0.1

Faults (docs/distributed.md): actors restart when their process dies (`max_restarts=-1`), but Ray
never re-runs a method (`max_task_retries=0`): the pool decides. A run whose worker dies mid-run is
retried once on another worker (`retry="once"`, the default) or reported interrupted
(`retry="never"`); only the outcome the pool accepts is recorded and only its files are written, so
a run is never lost or duplicated. `refresh()` (called by the server every few seconds) re-checks
every actor, re-describes restarted ones, and with `workers="auto"` grows or shrinks the pool to what
the cluster's resources allow — a Ray node joining or leaving is picked up there.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

from ..errors import NodegraphError
from .scheduling import NoCapableWorker, RunNeeds, WorkerInfo, capable_workers, choose_worker

log = logging.getLogger("nodegraph.distributed")

LOCAL_RAY_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",   # bind every listener to 127.0.0.1 (not the external interface)
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",                # else Ray writes ~/.ray/auth_token
}
DESCRIBE_TIMEOUT = 120.0        # a new actor imports torch and loads plugins: slow on a busy machine
LISTING_TTL = 10.0              # seconds a worker's model listing is trusted
MAX_INPUT_BYTES = 512 * 1024 * 1024
RetryPolicy = Literal["once", "never"]


RAY_START_WARN_SECONDS = 30.0   # ray.init has no timeout of its own: after this, say what may be holding it


class _SlowStartWarning:
    """While `ray.init` runs (it blocks in Ray's C++ core, with no timeout), warn on stderr and in the log
    every `every` seconds from `after` on, naming where Ray's own errors are and the usual causes — a Ray
    that cannot map its shared memory (a `ulimit -v`, systemd's LimitAS, a container's memory limit) waited
    silently for ever before the server printed anything (an operator's pass)."""

    def __init__(self, what: str, after: float = RAY_START_WARN_SECONDS, every: float = 60.0):
        self.what, self.after, self.every = what, after, every
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="ray-start-watch", daemon=True)

    def __enter__(self) -> _SlowStartWarning:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._done.set()

    def _watch(self) -> None:
        import sys

        wait = self.after
        while not self._done.wait(wait):
            message = (f"{self.what} has not finished after {time.monotonic() - self._started:.0f} s. Ray's own "
                       f"errors are in /tmp/ray/session_latest/logs (raylet.err, worker-*.err); the usual causes: a "
                       f"memory limit that stops Ray mapping its shared memory (`ulimit -v`, systemd's LimitAS=, a "
                       f"container's limit), a full /dev/shm or /tmp, or a firewall between Ray's processes. "
                       f"Still waiting; Ctrl+C / SIGTERM to stop")
            log.warning("%s", message)
            print(f"warning: {message}", file=sys.stderr, flush=True)
            wait = self.every


def failed_plugins(warnings: list[dict[str, Any]]) -> dict[str, str]:
    """plugin → message, for the `failed` entries of a worker's plugin warnings (`Session.plugin_warnings`)."""
    return {str(w.get("plugin")): str(w.get("message", "")) for w in warnings
            if isinstance(w, dict) and w.get("kind") == "failed"}


def local_ray_environment() -> None:
    """Set (unless already set) what keeps a local Ray cluster on loopback and quiet."""
    for key, value in LOCAL_RAY_ENV.items():
        os.environ.setdefault(key, value)


class ClusterUnreachableError(NodegraphError):
    """The Ray cluster address does not answer (or Ray refused to connect)."""

    def __init__(self, address: str, reason: str):
        self.address, self.reason = address, reason
        super().__init__(
            f"cannot reach the Ray cluster at {address!r}: {reason}. Fix: start the head node there "
            f"(`ray start --head --port 6379`), check the address and firewall, or leave out the address "
            f"to start a local cluster (`--ray` alone)")


class WorkerResourcesError(ClusterUnreachableError):
    """The cluster has less than one worker asks for (a GPU on a cluster without one): no worker could ever
    start, so say so at once instead of waiting for DESCRIBE_TIMEOUT with nothing printed."""

    def __init__(self, address: str, reason: str):
        self.address, self.reason = address, reason
        NodegraphError.__init__(self, f"the Ray cluster at {address!r} cannot start a worker: {reason}. Fix: ask for "
                                      f"less per worker (--worker-cpus / --worker-gpus / --worker-memory), or add "
                                      f"nodes that have it")


class RayNotInstalledError(NodegraphError):
    """The distributed backend was asked for in an environment without Ray (an extra)."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(
            f"the Ray backend needs Ray, which this Python environment lacks ({reason}). Fix: install the extra, "
            f"`pip install 'nodegraph[ray]'` (in a checkout: `.venv/bin/pip install -e '.[ray]'`), or leave out "
            f"--ray to run here")


def worker_resources_problem(resources: Any, total: dict[str, float]) -> str | None:
    """Why a cluster whose resources add up to `total` (ray.cluster_resources()) can start no worker that asks
    for `resources` (WorkerResources), or None."""
    for key, asked, flag in (("CPU", resources.cpus, "--worker-cpus"), ("GPU", resources.gpus, "--worker-gpus"),
                             ("memory", resources.memory_bytes, "--worker-memory")):
        have = float(total.get(key, 0) or 0)
        if asked and asked > have:
            unit = " bytes" if key == "memory" else ""
            return f"each worker asks for {asked:g}{unit} {key} ({flag}) and the cluster has {have:g}{unit} in all"
    return None


def import_ray() -> Any:
    """The `ray` module, or RayNotInstalledError naming the install command."""
    try:
        import ray
    except ImportError as exc:
        raise RayNotInstalledError(f"{type(exc).__name__}: {exc}") from None
    return ray


@dataclass(frozen=True)
class WorkerResources:
    """What each worker actor reserves: Ray schedules at most as many as the nodes can hold."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_bytes: int | None = None

    def options(self) -> dict[str, Any]:
        out: dict[str, Any] = {"num_cpus": self.cpus, "num_gpus": self.gpus}
        if self.memory_bytes:
            out["memory"] = self.memory_bytes
        return out


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A TCP connection to `host:port` (or `ray://host:port`) within `timeout`, else ClusterUnreachableError."""
    target = address.split("://", 1)[-1]
    host, _, port_text = target.rpartition(":")
    if not host or not port_text.isdigit():
        raise ClusterUnreachableError(address, "it is not HOST:PORT (e.g. 10.0.0.5:6379)")
    try:
        with socket.create_connection((host.strip("[]"), int(port_text)), timeout=timeout):
            pass
    except OSError as exc:
        raise ClusterUnreachableError(address, f"{type(exc).__name__}: {exc.strerror or exc}") from None


class native_stderr_held:
    """Holds what is written to file descriptor 2 (Ray's C++ core logs there, a line a second while it
    retries an address that answers but is no Ray head) until `replay()`; dropped when the block raises,
    where ClusterUnreachableError says what went wrong in one line."""

    def __enter__(self) -> "native_stderr_held":
        import sys
        import tempfile

        sys.stderr.flush()
        self._file = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc_info: object) -> None:
        import sys

        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)

    def replay(self) -> None:
        """Write what was held to stderr (after a successful connection: Ray's notices stay visible)."""
        import sys

        self._file.seek(0)
        text = self._file.read().decode("utf-8", "replace")
        self._file.close()
        if text:
            sys.stderr.write(text)


def needs_for(registry: Any, graph: Any) -> RunNeeds:
    """Node types (qualified, with the plugin that provides each here) and model files a Graph needs."""
    from ..effective_graph import effective_graph

    node_types: dict[str, str | None] = {}
    model_files: list[tuple[str, str]] = []
    for node in effective_graph(graph, registry).graph.nodes.values():   # subgraphs expanded, modes applied
        cls = registry.nodes.get(node.type)
        if cls is None:
            node_types[node.type] = None
            continue
        node_types[registry.qualified_name(cls)] = registry.plugin_of(cls)
        for name, spec in cls.spec.inputs.items():
            value = node.inputs.get(name)
            if spec.model_folder and isinstance(value, str) and (spec.model_folder, value) not in model_files:
                model_files.append((spec.model_folder, value))
    return RunNeeds(node_types, tuple(model_files))


def input_files_for(graph: Any, input_dir: Path) -> dict[str, bytes]:
    """Files of the run's input folder that a literal of the graph names (uploads travel with the run)."""
    root = Path(input_dir).resolve()
    found: dict[str, bytes] = {}
    total = 0
    inner = [n for d in (getattr(graph, "subgraphs", None) or {}).values() for n in d.nodes.values()]
    for node in [*graph.nodes.values(), *inner]:
        for value in node.inputs.values():
            if not isinstance(value, str) or not value or len(value) > 255 or value in found:
                continue
            try:
                path = (root / value).resolve()
            except (OSError, ValueError):
                continue
            if root in path.parents and path.is_file():
                total += path.stat().st_size
                if total > MAX_INPUT_BYTES:
                    raise ValueError(f"the run's input files exceed {MAX_INPUT_BYTES // 2**20} MiB; "
                                     f"keep large inputs in a model folder the workers share")
                found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


class WorkerPool:
    """Ray actors that each hold a Session; a scheduler that hands runs to them.

    Args:
        address: a Ray cluster (`HOST:PORT` of its head, or `ray://HOST:PORT`); None starts a
            local cluster on 127.0.0.1 (with `local_cpus` CPUs, default: this machine's).
        workers: how many worker actors, or "auto": as many as the cluster's resources hold
            (re-checked by `refresh`, so nodes joining or leaving resize the pool).
        resources: what each worker reserves (CPUs, GPUs, memory).
        session_options: the workers' Session options (worker.session_from_options).
        retry: what happens to a run whose worker dies: "once" (retried on another worker) or "never".
        slots: runs one worker holds at once (1: a Session runs one graph at a time).
    """

    def __init__(self, address: str | None = None, workers: int | Literal["auto"] = 2,
                 resources: WorkerResources = WorkerResources(), session_options: dict[str, Any] | None = None,
                 retry: RetryPolicy = "once", local_cpus: int | None = None, slots: int = 1,
                 connect_timeout: float = 5.0):
        if workers != "auto" and (not isinstance(workers, int) or workers < 1):
            raise ValueError(f"workers must be a positive number or 'auto', got {workers!r}")
        if retry not in ("once", "never"):
            raise ValueError(f"retry must be 'once' or 'never', got {retry!r}")
        self.address = address
        self.workers_wanted = workers
        self.resources = resources
        self.session_options = dict(session_options or {})
        self.retry = retry
        self.local_cpus = local_cpus
        self.slots = slots
        self.connect_timeout = connect_timeout
        self.connected = False
        self._started_cluster = False
        self._actor_class: Any = None
        self._handles: dict[str, Any] = {}
        self._info: dict[str, WorkerInfo] = {}
        self._listed_at: dict[str, dict[str, float]] = {}
        self._starting: dict[str, Any] = {}           # name → describe ref of an actor not yet up
        self._running: dict[str, str] = {}            # run id → worker name
        self._interrupts: set[str] = set()            # run ids interrupted before they reached a worker
        self._cond = threading.Condition()
        self._counter = 0
        self._closed = False

    # --- lifecycle ---------------------------------------------------------------

    def start(self, wait: bool = True) -> None:
        """Connect (or start a local cluster) and start the workers; with `wait`, until all answer.

        A local cluster is best started from the main thread (`start_cluster`): started from another
        thread, Ray sets no SIGTERM handler and its agent processes outlive `close()`.
        """
        ray = self.start_cluster()
        problem = worker_resources_problem(self.resources, ray.cluster_resources())
        if problem:
            raise WorkerResourcesError(self.address or "local", problem)
        from .worker import SessionWorker

        self._actor_class = ray.remote(SessionWorker)
        self.connected = True
        for _ in range(self._target_count()):
            self._spawn()
        if wait:
            self.wait_ready()

    def start_cluster(self) -> Any:
        """Connect to the cluster, or start the local one (`address` None) — the part of `start` that the
        main thread should do for a local cluster; no workers yet. Returns the `ray` module."""
        if self.address is None:      # before Ray is imported: it reads these at import time
            local_ray_environment()
        else:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            check_reachable(self.address, self.connect_timeout)
        ray = import_ray()
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
            what = "starting the local Ray cluster" if self.address is None else f"connecting to Ray at {self.address}"
            try:
                with _SlowStartWarning(what):
                    if self.address is None:
                        ray.init(num_cpus=self.local_cpus or os.cpu_count(), **kwargs)
                        self._started_cluster = True
                    else:
                        with native_stderr_held() as held:
                            ray.init(address=self.address, **kwargs)
                        held.replay()
            except Exception as exc:  # noqa: BLE001 — Ray's own errors vary by version
                raise ClusterUnreachableError(self.address or "local", f"{type(exc).__name__}: {exc}") from None
        return ray

    def _target_count(self) -> int:
        if self.workers_wanted != "auto":
            return int(self.workers_wanted)
        import ray

        total = ray.cluster_resources()
        counts = [math.floor(total.get("CPU", 0) / self.resources.cpus) if self.resources.cpus else math.inf]
        if self.resources.gpus:
            counts.append(math.floor(total.get("GPU", 0) / self.resources.gpus))
        if self.resources.memory_bytes:
            counts.append(math.floor(total.get("memory", 0) / self.resources.memory_bytes))
        count = min(counts)
        return max(1, int(count)) if count != math.inf else 1

    def _spawn(self) -> str:
        name = f"w{self._counter}"
        self._counter += 1
        threads = max(1, int(self.resources.cpus)) if self.resources.cpus >= 1 else 1
        handle = self._actor_class.options(max_restarts=-1, max_task_retries=0, max_concurrency=4,
                                           **self.resources.options()).remote(name, self.session_options, threads)
        with self._cond:
            self._handles[name] = handle
            self._starting[name] = handle.describe.remote()
        return name

    def wait_ready(self, timeout: float = DESCRIBE_TIMEOUT) -> list[WorkerInfo]:
        """Wait until every started worker answers `describe`; their infos."""
        import ray

        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                pending = dict(self._starting)
            if not pending:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"workers {', '.join(sorted(pending))} did not start within {timeout:.0f} s; "
                                   f"the cluster may lack the resources each worker asks for "
                                   f"({self.resources.options()})")
            ready, _ = ray.wait(list(pending.values()), num_returns=1, timeout=min(left, 1.0))
            for name, ref in pending.items():
                if ref in ready:
                    self._describe_done(name, ref)
        return self.workers()

    def _describe_done(self, name: str, ref: Any) -> None:
        import ray

        try:
            described = ray.get(ref)
        except ray.exceptions.RayError:
            with self._cond:          # the actor died while starting: ask again (it restarts)
                if name in self._handles:
                    self._starting[name] = self._handles[name].describe.remote()
            return
        with self._cond:
            self._starting.pop(name, None)
            old = self._info.get(name)
            self._info[name] = WorkerInfo(
                name=name, host=described["host"], node_id=described["node_id"],
                node_types=frozenset(described["node_types"]), warm=frozenset(described["warm"]),
                failed_plugins=failed_plugins(described.get("plugin_warnings") or []),
                slots=self.slots, in_flight=old.in_flight if old else 0, last_used=old.last_used if old else 0.0)
            for plugin, why in self._info[name].failed_plugins.items():      # said where the operator looks
                log.warning("Ray worker %s (host %s): plugin %s failed to load: %s", name, described["host"],
                            plugin, why)
            self._listed_at[name] = {}
            self._cond.notify_all()

    def workers(self) -> list[WorkerInfo]:
        """The scheduler's view of every ready worker."""
        with self._cond:
            return list(self._info.values())

    @property
    def total_slots(self) -> int:
        with self._cond:
            return sum(w.slots for w in self._info.values() if w.alive) or 0

    def refresh(self) -> None:
        """Re-check actors (restarted ones are re-described), finish starting ones, resize an "auto" pool."""
        import ray

        with self._cond:
            starting = dict(self._starting)
            known = {name: self._handles[name] for name in self._info}
        if starting:
            ready, _ = ray.wait(list(starting.values()), num_returns=len(starting), timeout=0)
            for name, ref in starting.items():
                if ref in ready:
                    self._describe_done(name, ref)
        pings = {name: handle.describe.remote() for name, handle in known.items()}
        for name, ref in pings.items():
            try:
                described = ray.get(ref, timeout=30)
            except Exception:  # noqa: BLE001 — dead, restarting or its node left
                with self._cond:
                    if name in self._info:
                        self._info[name].alive = False
                continue
            with self._cond:
                info = self._info.get(name)
                if info is not None:
                    if not info.alive or info.node_id != described["node_id"]:
                        self._listed_at[name] = {}
                        info.models = {}
                    info.alive = True
                    info.host, info.node_id = described["host"], described["node_id"]
                    info.node_types = frozenset(described["node_types"])
                    info.warm = frozenset(described["warm"])
                    self._cond.notify_all()
        if self.workers_wanted == "auto":
            self._resize(self._target_count())

    def _resize(self, target: int) -> None:
        import ray

        with self._cond:
            count = len(self._handles)
            idle = [w.name for w in sorted(self._info.values(), key=lambda w: w.alive) if w.in_flight == 0]
        for _ in range(max(0, target - count)):
            self._spawn()
        for name in idle[:max(0, count - target)]:
            with self._cond:
                handle = self._handles.pop(name, None)
                self._info.pop(name, None)
                self._starting.pop(name, None)
            if handle is not None:
                ray.kill(handle, no_restart=True)

    def close(self, shutdown: bool = True) -> None:
        """Stop every worker and disconnect from Ray (`shutdown=False`: stay connected, e.g. for
        another pool in this process); a local cluster this pool started stops too. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        with self._cond:
            self._cond.notify_all()
            handles = list(self._handles.values())
            self._handles.clear()
            self._info.clear()
        if not self.connected and not self._started_cluster:
            return
        import ray

        for handle in handles:
            try:
                ray.kill(handle, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
        if shutdown and ray.is_initialized():
            ray.shutdown()
        self.connected = False

    # --- scheduling ------------------------------------------------------------------

    def _refresh_listings(self, needs: RunNeeds) -> None:
        """Fetch model listings of the run's folders from workers whose listing is missing or stale."""
        import ray

        folders = sorted({folder for folder, _ in needs.model_files})
        if not folders:
            return
        now = time.monotonic()
        with self._cond:
            stale = {name: [f for f in folders if now - self._listed_at.get(name, {}).get(f, -1e9) > LISTING_TTL]
                     for name, info in self._info.items() if info.alive}
            refs = {name: self._handles[name].list_models.remote(fs) for name, fs in stale.items() if fs}
        for name, ref in refs.items():
            try:
                listing = ray.get(ref, timeout=30)
            except Exception:  # noqa: BLE001 — the worker is dying; refresh() will notice
                continue
            with self._cond:
                info = self._info.get(name)
                if info is not None:
                    info.models = {**info.models, **{f: frozenset(v) for f, v in listing.items()}}
                    self._listed_at.setdefault(name, {}).update({f: now for f in listing})

    def check(self, needs: RunNeeds) -> list[WorkerInfo]:
        """Workers able to run `needs` (NoCapableWorker naming each worker's gaps if none)."""
        self._refresh_listings(needs)
        return capable_workers(self.workers(), needs)

    def acquire(self, needs: RunNeeds, exclude: frozenset[str] = frozenset(),
                stop: threading.Event | None = None) -> WorkerInfo | None:
        """Reserve a slot on the best worker for `needs` (waits for one); None if `stop` is set first."""
        self._refresh_listings(needs)
        waited_since: float | None = None
        while not self._closed and not (stop is not None and stop.is_set()):
            every_worker_down = False
            with self._cond:
                try:
                    worker = choose_worker(self._info.values(), needs, exclude)
                except NoCapableWorker as exc:
                    waited_since = waited_since or time.monotonic()
                    if exc.lacks or time.monotonic() - waited_since > DESCRIBE_TIMEOUT:
                        raise
                    worker, every_worker_down = None, True     # all restarting: wait for them
                if worker is not None:
                    worker.in_flight += 1
                    worker.last_used = time.monotonic()
                    return worker
                self._cond.wait(timeout=1.0)
            if every_worker_down:
                self.refresh()
        return None

    def release(self, worker: WorkerInfo, warm: list[str] | None = None) -> None:
        with self._cond:
            worker.in_flight = max(0, worker.in_flight - 1)
            if warm is not None:
                worker.warm = frozenset(warm)
            self._cond.notify_all()

    def free_slots(self) -> int:
        with self._cond:
            return sum(max(0, w.slots - w.in_flight) for w in self._info.values() if w.alive)

    # --- running ------------------------------------------------------------------------

    def interrupt(self, run_id: str) -> bool:
        """Interrupt a run wherever it is (on a worker, or still waiting for one)."""
        with self._cond:
            name = self._running.get(run_id)
            handle = self._handles.get(name) if name else None
            self._interrupts.add(run_id)
            self._cond.notify_all()
        if handle is not None:
            handle.interrupt.remote(run_id)
        return True

    def execute(self, request: dict[str, Any], needs: RunNeeds,
                on_event: Callable[[dict, bytes | None], None] = lambda event, preview: None,
                stop: threading.Event | None = None) -> dict[str, Any]:
        """Run `request` on a worker (retrying once elsewhere if its worker dies); the outcome dict.

        `on_event(event_dict, preview_bytes)` receives the run's events in order; a retried run
        first gets `{"type": "run_retrying", "worker": ..., "message": ...}`. Raises
        NoCapableWorker when no worker can run the graph.
        """
        try:
            return self._execute(request, needs, on_event, stop)
        finally:
            self.run_finished(request["run_id"])

    def _execute(self, request: dict[str, Any], needs: RunNeeds, on_event: Callable[[dict, bytes | None], None],
                 stop: threading.Event | None) -> dict[str, Any]:
        import ray

        run_id = request["run_id"]
        lost_on: set[str] = set()
        attempts = 2 if self.retry == "once" else 1
        for attempt in range(1, attempts + 1):
            worker = self.acquire(needs, frozenset(lost_on), stop)
            if worker is None or run_id in self._interrupts:
                if worker is not None:
                    self.release(worker)
                self._interrupts.discard(run_id)
                return {"status": "interrupted", "worker": None, "host": None,
                        "error": {"message": "interrupted before it reached a worker", "node_id": None}}
            with self._cond:
                handle = self._handles.get(worker.name)
                self._running[run_id] = worker.name
            warm = None
            try:
                if handle is None:
                    raise ray.exceptions.RayActorError()
                stream = handle.run.remote(request)
                if run_id in self._interrupts:
                    handle.interrupt.remote(run_id)
                outcome = None
                for ref in stream:
                    item = ray.get(ref)
                    if item[0] == "event":
                        on_event(item[1], item[2])
                    else:
                        outcome = item[1]
                if outcome is None:
                    raise RuntimeError(f"worker {worker.label} ended the run without an outcome")
                warm = outcome.get("warm")
                outcome["attempts"] = attempt
                return outcome
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                    ray.exceptions.ObjectLostError, ray.exceptions.OwnerDiedError) as exc:
                with self._cond:
                    worker.alive = False           # refresh() brings it back once it has restarted
                    worker.warm = frozenset()
                    self._cond.notify_all()
                lost_on.add(worker.name)
                reason = f"worker {worker.label} died while running this run ({type(exc).__name__})"
                retrying = attempt < attempts and run_id not in self._interrupts
                log.warning("run %s: %s; %s", run_id, reason,       # the operator's own line (Ray's is a raylet blob)
                            "retrying on another worker" if retrying else "not retried (interrupted)")
                if retrying:
                    on_event({"type": "run_retrying", "run_id": run_id, "worker": worker.name,
                              "attempt": attempt + 1, "message": f"{reason}; retrying on another worker"}, None)
                    continue
                self._interrupts.discard(run_id)
                why = "it was already retried once" if attempt > 1 else "the retry policy is 'never'"
                return {"status": "interrupted", "worker": worker.name, "host": worker.host, "attempts": attempt,
                        "error": {"message": f"{reason}; {why}: re-queue it", "node_id": None,
                                  "worker": worker.name}}
            finally:
                with self._cond:
                    self._running.pop(run_id, None)
                self.release(worker, warm)
        raise AssertionError("unreachable")

    def run_finished(self, run_id: str) -> None:
        """Forget an interrupt request for a run that has ended."""
        with self._cond:
            self._interrupts.discard(run_id)
