"""The server's Ray path: queued runs go to a `WorkerPool` instead of the server's own Session.

`Server(session, backend=RayBackend(pool))` runs `RayBackend.serve` in its worker thread instead of
the local loop (server.py keeps that loop unchanged). The SQLite queue stays the one source of truth:

- the dispatcher claims the next queued run only while a worker slot is free (so runs wait in the
  queue, not in memory, and a restart loses nothing: `RunQueue.recover` covers runs in flight);
- each claimed run gets a thread that streams its events from the worker to the run's client through
  the same `ServerProtocol.run_event` as local runs (same messages, previews as binary frames);
- the run's outcome is recorded in the queue *before* its terminal event (`run_finished`,
  `run_failed`, `run_interrupted`) is posted — the protocol's order guarantee;
- output files arrive as bytes in the outcome (Ray's object store) and are written into the run
  owner's output folder with a fresh name, then announced exactly as local ones (`_send_files`);
- a user's limits hold as on the local path: the files that would pass their `max_bytes` are not
  written (the run fails, `StorageLimitError`), and a run past their `max_run_seconds` is interrupted on
  its worker and recorded failed (`run_time_limit`). (The worker itself writes no files of the user's.)

While the cluster cannot be reached the server keeps serving: runs stay queued, and every client
is told why with `{"type": "cluster_status", "state": "down", "message": ..., "pending": N}` (and
`"state": "up"` once workers answer again). Bad input (no worker with the model file, a plugin
missing on the workers) fails the run with a message naming each worker and what it lacks.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import StorageLimitError
from ..events import RunFailed, RunInterruptedEvent
from ..files import OutputBudget
from ..paths import PathConfinementError, confine
from ..protocol import Outgoing
from .pool import ClusterUnreachableError, WorkerPool, input_files_for, needs_for
from .scheduling import NoCapableWorker

log = logging.getLogger("nodegraph.distributed")
TERMINAL_EVENTS = ("run_finished", "run_failed", "run_interrupted")


def write_output_file(output_dir: Path, name: str, data: bytes) -> Path:
    """Write `data` as `name` inside `output_dir`, never replacing a file (PREFIX_00002.png or stem-2.png, ...)."""
    target = confine(output_dir, name, what="output file name", subfolders=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    stem, suffix = target.stem, target.suffix
    numbered = re.fullmatch(r"(.*_)(\d{5})", stem)      # PREFIX_00001: go on with the numbering
    for number in range(1, 100_000):
        if number == 1:
            candidate = target
        elif numbered:
            candidate = target.with_name(f"{numbered[1]}{int(numbered[2]) + number - 1:05d}{suffix}")
        else:
            candidate = target.with_name(f"{stem}-{number}{suffix}")
        try:
            with open(candidate, "xb") as handle:
                handle.write(data)
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"no free name for {name!r} in {output_dir}")


def outputs_with_files(outcome: dict[str, Any], output_dir: Path,
                       budget: OutputBudget | None = None) -> dict[str, dict[str, Any]]:
    """The outcome's outputs with its files written under `output_dir` (entries get their local path). With a
    `budget` (the run owner's storage limit), the file that would pass it is not written: StorageLimitError."""
    outputs: dict[str, dict[str, Any]] = {node: dict(values) for node, values in (outcome.get("outputs") or {}).items()}
    for item in outcome.get("files") or []:
        problem = budget.spend(len(item["data"])) if budget is not None else None
        if problem:
            raise StorageLimitError(f"node {item['node_id']!r}: {problem}")
        path = write_output_file(output_dir, item["name"], item["data"])
        entry = {k: v for k, v in item.items() if k not in ("data", "node_id", "index")}
        entry.update(path=str(path), name=path.name)
        outputs.setdefault(item["node_id"], {}).setdefault("files", []).append(entry)
    return outputs


class RayBackend:
    """Hands the server's queued runs to a WorkerPool (see the module docstring).

    Args:
        pool: a WorkerPool, not yet started (the backend connects it, and reconnects while it is down).
        reconnect_seconds: wait between connection attempts while the cluster is down.
        refresh_seconds: how often workers are re-checked (restarts, nodes joining or leaving).
        owns_pool: close the pool (its workers, and a local cluster it started) when the server closes.
    """

    def __init__(self, pool: WorkerPool, reconnect_seconds: float = 5.0, refresh_seconds: float = 5.0,
                 owns_pool: bool = True):
        self.pool = pool
        self.owns_pool = owns_pool
        self.reconnect_seconds = reconnect_seconds
        self.refresh_seconds = refresh_seconds
        self.state = "starting"
        self.message = "connecting to the Ray cluster"
        self._active: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._server: Any = None
        self._closed = False

    # --- the server's seam ---------------------------------------------------------

    def prepare(self) -> None:
        """Before the server starts, on the main thread: start the local cluster (no address) here, since
        a cluster started from the dispatcher's thread gets no SIGTERM handler and leaves Ray's agent
        processes behind when it stops. Workers still start in `serve`; a remote cluster is connected there
        (the server starts even while it is down). Raises RayNotInstalledError / ClusterUnreachableError."""
        if self.pool.address is None:
            self.pool.start_cluster()

    def serve(self, server: Any) -> None:
        """The dispatcher loop (the server's worker thread): connect, claim runs while slots are free."""
        self._server = server
        last_refresh = time.monotonic()
        while not server._stopping.is_set():
            if not self.pool.connected:
                if not self._connect(server):
                    server._wake_event.wait(timeout=self.reconnect_seconds)
                    server._wake_event.clear()
                    continue
            if time.monotonic() - last_refresh > self.refresh_seconds:
                last_refresh = time.monotonic()
                try:
                    self.pool.refresh()
                except Exception:  # noqa: BLE001 — e.g. the cluster went away; runs wait
                    log.exception("could not refresh the Ray workers")
            slots = self.pool.total_slots
            if slots == 0:      # every worker is restarting, or the cluster went away: runs wait
                self._set_state(server, "down", "no Ray worker answers (restarting, or the cluster is down); "
                                                "queued runs wait")
                server._wake_event.wait(timeout=self.reconnect_seconds)
                server._wake_event.clear()
                last_refresh = 0.0
                continue
            if self.state != "up":
                names = ", ".join(w.label for w in self.pool.workers() if w.alive)
                self._set_state(server, "up", f"{slots} Ray worker slot(s): {names}")
            with self._lock:
                busy = len(self._active)
            if busy >= slots:
                server._wake_event.wait(timeout=self.refresh_seconds)
                server._wake_event.clear()
                continue
            try:
                record = server.queue.claim_next(held=server.protocol.held_users())
            except Exception:  # noqa: BLE001 — a disk error: try again shortly
                log.exception("could not read the run queue; retrying")
                time.sleep(server.WORKER_RETRY_SECONDS)
                continue
            if record is None:
                server._wake_event.wait(timeout=self.refresh_seconds)
                server._wake_event.clear()
                continue
            thread = threading.Thread(target=self._run_guarded, args=(server, record),
                                      name=f"nodegraph-ray-{record.id[:8]}", daemon=True)
            with self._lock:
                self._active[record.id] = thread
            thread.start()

    def _connect(self, server: Any) -> bool:
        try:
            self.pool.start(wait=True)
        except (ClusterUnreachableError, TimeoutError) as exc:
            self._set_state(server, "down", str(exc))
            return False
        except Exception as exc:  # noqa: BLE001
            log.exception("could not start the Ray workers")
            self._set_state(server, "down", f"{type(exc).__name__}: {exc}")
            return False
        names = ", ".join(w.label for w in self.pool.workers())
        self._set_state(server, "up", f"{len(self.pool.workers())} Ray worker(s): {names}")
        return True

    def _set_state(self, server: Any, state: str, message: str) -> None:
        changed = (state, message) != (self.state, self.message)
        self.state, self.message = state, message
        pending = server.queue.pending_count()
        if changed or (state == "down" and pending):
            (log.warning if state == "down" else log.info)("cluster %s: %s", state, message)
            server._post([Outgoing(None, {"type": "cluster_status", "state": state, "message": message,
                                          "pending": pending})])

    def interrupt(self, run_id: str) -> bool:
        """Interrupt a run on whichever worker holds it (or before it reaches one)."""
        return self.pool.interrupt(run_id)

    def stop_runs(self, seconds: float = 10.0) -> None:
        """Interrupt the runs in flight and wait up to `seconds` for their outcomes to be recorded and posted: the
        server calls this before it tells its clients goodbye, so a client hears `run_interrupted` (it heard
        nothing: the outcome came after the connections closed, an operator's pass)."""
        with self._lock:
            active = dict(self._active)
        for run_id in active:
            self.pool.interrupt(run_id)
        deadline = time.monotonic() + seconds
        for thread in active.values():
            thread.join(max(0.1, deadline - time.monotonic()))

    def close(self) -> None:
        """Interrupt runs in flight, wait a little for them, stop the workers; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.stop_runs()
        if self.owns_pool:
            self.pool.close()

    # --- one run --------------------------------------------------------------------

    def _run_guarded(self, server: Any, record: Any) -> None:
        try:
            self._run(server, record)
        except Exception:  # noqa: BLE001 — a run thread must never take the server down
            log.exception("run %s failed around its Ray execution", record.id)
        finally:
            with self._lock:
                self._active.pop(record.id, None)
            server._wake()

    def _run(self, server: Any, record: Any) -> None:
        budget = server.protocol.output_budget(record.user)      # shared by the user's running runs
        try:
            self._run_within(server, record, budget)
        finally:
            server.protocol.release_budget(budget)

    def _run_within(self, server: Any, record: Any, budget: OutputBudget | None) -> None:
        run_id = record.id
        folders = server.protocol.run_folders(record.user)
        input_dir, output_dir = folders if folders else (server.session.input_dir, server.session.output_dir)
        store = server.files if record.user is None else server.files.for_user(record.user)
        terminal: dict[str, Any] | None = None
        time_limit = server.protocol.run_time_limit(record.user)
        over_time, started = threading.Event(), time.monotonic()
        timer = None
        if time_limit is not None:      # as on the local path: stopped past its user's max_run_seconds
            timer = threading.Timer(time_limit, lambda: (over_time.set(), self.pool.interrupt(run_id)))
            timer.daemon = True
            timer.start()

        def on_event(event: dict[str, Any], preview: bytes | None) -> None:
            nonlocal terminal
            if event.get("type") in TERMINAL_EVENTS:    # posted after the queue records the outcome
                terminal = event
                return
            server._post(server.protocol.run_event(run_id, event, preview))

        try:
            removed = server.protocol.removed_user_error(record.user)
            if removed is not None:      # left the users file while queued: not run (its limits went with it)
                outcome = {"status": "failed", "error": removed}
            else:
                graph = server.session.load(record.graph)
                if record.overrides:
                    graph = graph.with_overrides(record.overrides)
                request = {"run_id": run_id, "graph": graph.to_dict(), "outputs": record.outputs,
                           "inputs": input_files_for(graph, Path(input_dir)),
                           "cache_scope": record.user}      # a user's results are cached for that user only
                outcome = self.pool.execute(request, needs_for(server.session.registry, graph), on_event,
                                            stop=server._stopping)
        except NoCapableWorker as exc:
            outcome = {"status": "failed", "error": {"message": str(exc), "code": "no_capable_worker",
                                                     "workers": exc.lacks}}
        except Exception as exc:  # noqa: BLE001 — reported to the client, the server goes on
            log.exception("run %s could not be sent to a Ray worker", run_id)
            outcome = {"status": "failed", "error": {"message": f"{type(exc).__name__}: {exc}"}}
        finally:
            if timer is not None:
                timer.cancel()
        status = outcome["status"]
        if status == "interrupted" and server.protocol.removed_user_error(record.user) is not None:
            node_id = (outcome.get("error") or {}).get("node_id")      # stopped because its user was removed
            status, outcome = "failed", {**outcome, "status": "failed",
                                         "error": server.protocol.removed_while_running_error(record.user, node_id)}
            terminal = None
        elif status == "interrupted" and over_time.is_set():      # the server stopped it, not its user
            node_id = (outcome.get("error") or {}).get("node_id")
            status, outcome = "failed", {**outcome, "status": "failed",
                                         "error": server.protocol.over_time_error(record.user, time_limit, node_id,
                                                                                  time.monotonic() - started)}
            terminal = None
        result = None
        if status == "succeeded":
            try:
                outputs = outputs_with_files(outcome, Path(output_dir), budget)
                files = server._send_files(run_id, store, outputs)
                result = {"outputs": {n: {k: v for k, v in values.items() if k != "files"}
                                      for n, values in outputs.items()},
                          "files": files, "executed": outcome.get("executed", []),
                          "cached": outcome.get("cached", []), "worker": outcome.get("worker")}
                result = server.protocol.result_within(result, budget)
            except StorageLimitError as exc:
                status, outcome = "failed", {"error": {"message": str(exc), "exception_type": "StorageLimitError"}}
                terminal = None
            except (OSError, PathConfinementError, ValueError) as exc:
                status, outcome = "failed", {"error": {"message": f"could not store the run's output files: {exc}"}}
                terminal = None
        error = outcome.get("error")
        if status == "interrupted" and server._stopping.is_set():     # the server is shutting down: said so
            from ..server import SERVER_STOPPED_ERROR

            error = SERVER_STOPPED_ERROR | {k: v for k, v in (error or {}).items() if k in ("node_id", "worker")}
        if status == "failed" and (terminal is None or terminal.get("type") != "run_failed"):
            terminal = RunFailed(run_id, (error or {}).get("node_id"), (error or {}).get("message", "")).to_dict()
        elif status == "interrupted" and (terminal is None or terminal.get("type") != "run_interrupted"):
            terminal = RunInterruptedEvent(run_id, (error or {}).get("node_id")).to_dict()
            terminal["message"] = (error or {}).get("message")
        log.info("run %s (user %s) %s on worker %s", run_id, record.user or "-", status,
                 outcome.get("worker") or (error or {}).get("worker") or "-")
        terminal = self._finish(server, run_id, status, error, result) or terminal
        try:
            server.queue.prune(keep=server.history_limit)
        except Exception:  # noqa: BLE001
            log.exception("could not prune the history")
        if terminal is not None:
            server._post(server.protocol.run_event(run_id, terminal))

    @staticmethod
    def _finish(server: Any, run_id: str, status: str, error: dict | None, result: dict | None) -> dict | None:
        """Record the outcome; if the database refuses, the terminal event reports that instead."""
        if error is not None and error.get("traceback"):
            log.warning("run %s failed at node %r on worker %s:\n%s", run_id, error.get("node_id"),
                        error.get("worker"), error["traceback"])
        error = server.protocol.stored_error(error)
        for attempt in range(2):
            try:
                server.queue.finish(run_id, status, error=error, result=result)
                return None
            except Exception as exc:  # noqa: BLE001
                log.exception("could not record the end of run %s (attempt %d)", run_id, attempt + 1)
                failure = exc
                time.sleep(0.2)
        return RunFailed(run_id, None, f"the run ended ({status}) but the server could not record it: "
                                       f"{type(failure).__name__}: {failure}").to_dict()
