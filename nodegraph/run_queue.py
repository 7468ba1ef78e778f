"""The persistent run queue and history (SQLite, stdlib `sqlite3`, WAL journal).

One table, `runs`, holds every submitted run from `queued` to its end:

    queued → running → succeeded | failed | interrupted
    queued → cancelled
    interrupted | failed | cancelled → queued   (requeue, same id)

After a crash or restart, `recover()` marks runs left `running` as
`interrupted` (they can be re-queued); `queued` runs simply stay queued, so
nothing submitted is lost. History (finished runs) survives restarts and can
be pruned. All methods are thread-safe (one connection, one lock): the server's
event loop and its worker thread share one RunQueue.

Columns: id, seq (queue order), client_id, status, graph (JSON text), outputs
(JSON list or null), overrides (JSON), submitted_at, started_at, finished_at,
error (JSON or null), result (JSON: output values and file references, or null).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATUSES = ("queued", "running", "succeeded", "failed", "interrupted", "cancelled")
FINISHED = ("succeeded", "failed", "interrupted", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    client_id TEXT,
    status TEXT NOT NULL,
    graph TEXT NOT NULL,
    outputs TEXT,
    overrides TEXT,
    submitted_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    error TEXT,
    result TEXT
);
CREATE INDEX IF NOT EXISTS runs_status_seq ON runs (status, seq);
CREATE INDEX IF NOT EXISTS runs_finished ON runs (finished_at);
"""


@dataclass(frozen=True)
class RunRecord:
    """One row of the runs table, decoded."""

    id: str
    seq: int
    client_id: str | None
    status: str
    graph: dict
    outputs: list[str] | None
    overrides: dict | None
    submitted_at: float
    started_at: float | None
    finished_at: float | None
    error: dict | None
    result: dict | None

    def summary(self) -> dict[str, Any]:
        """The run without its graph (what queue and history listings send)."""
        return {"run_id": self.id, "status": self.status, "client_id": self.client_id,
                "submitted_at": self.submitted_at, "started_at": self.started_at,
                "finished_at": self.finished_at, "error": self.error,
                "title": (self.graph.get("metadata") or {}).get("title") if isinstance(self.graph, dict) else None}


def _decode(row: sqlite3.Row) -> RunRecord:
    loads = lambda text: None if text is None else json.loads(text)  # noqa: E731
    return RunRecord(row["id"], row["seq"], row["client_id"], row["status"], json.loads(row["graph"]),
                     loads(row["outputs"]), loads(row["overrides"]), row["submitted_at"], row["started_at"],
                     row["finished_at"], loads(row["error"]), loads(row["result"]))


class RunQueue:
    """Queued runs and history in one SQLite file (":memory:" for tests)."""

    def __init__(self, path: str | Path = ":memory:"):
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database; safe to call twice."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None  # type: ignore[assignment]

    def _one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    def enqueue(self, graph: dict, client_id: str | None = None, outputs: list[str] | None = None,
                overrides: dict | None = None, front: bool = False) -> RunRecord:
        """Add a run at the back (or front) of the queue; returns its record."""
        run_id = uuid.uuid4().hex
        with self._lock:
            bound = self._one("SELECT MIN(seq) AS lo, MAX(seq) AS hi FROM runs")
            lo, hi = (bound["lo"] or 0), (bound["hi"] or 0)
            seq = lo - 1 if front else hi + 1
            self._db.execute(
                "INSERT INTO runs (id, seq, client_id, status, graph, outputs, overrides, submitted_at) "
                "VALUES (?, ?, ?, 'queued', ?, ?, ?, ?)",
                (run_id, seq, client_id, json.dumps(graph), json.dumps(outputs) if outputs is not None else None,
                 json.dumps(overrides) if overrides else None, time.time()))
        return self.get(run_id)  # type: ignore[return-value]

    def get(self, run_id: str) -> RunRecord | None:
        row = self._one("SELECT * FROM runs WHERE id = ?", run_id)
        return _decode(row) if row else None

    def position(self, run_id: str) -> int | None:
        """0-based place among queued runs, or None if the run is not queued."""
        row = self._one("SELECT seq FROM runs WHERE id = ? AND status = 'queued'", run_id)
        if row is None:
            return None
        ahead = self._one("SELECT COUNT(*) AS n FROM runs WHERE status = 'queued' AND seq < ?", row["seq"])
        return int(ahead["n"])

    def claim_next(self) -> RunRecord | None:
        """Mark the first queued run as running and return it (None if the queue is empty)."""
        with self._lock:
            row = self._one("SELECT id FROM runs WHERE status = 'queued' ORDER BY seq LIMIT 1")
            if row is None:
                return None
            self._db.execute("UPDATE runs SET status = 'running', started_at = ? WHERE id = ?",
                             (time.time(), row["id"]))
            return self.get(row["id"])

    def finish(self, run_id: str, status: str, error: dict | None = None, result: dict | None = None) -> None:
        """Record how a running run ended."""
        if status not in FINISHED:
            raise ValueError(f"finish status must be one of {FINISHED}, got {status!r}")
        with self._lock:
            self._db.execute(
                "UPDATE runs SET status = ?, finished_at = ?, error = ?, result = ? WHERE id = ?",
                (status, time.time(), json.dumps(error) if error else None,
                 json.dumps(result, default=str) if result is not None else None, run_id))

    def cancel(self, run_id: str) -> bool:
        """Cancel a queued run; False if it is not queued (running runs are interrupted instead)."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE runs SET status = 'cancelled', finished_at = ? WHERE id = ? AND status = 'queued'",
                (time.time(), run_id))
            return cursor.rowcount == 1

    def requeue(self, run_id: str) -> bool:
        """Put a failed, interrupted or cancelled run back at the end of the queue (same id)."""
        with self._lock:
            hi = self._one("SELECT MAX(seq) AS hi FROM runs")["hi"] or 0
            cursor = self._db.execute(
                "UPDATE runs SET status = 'queued', seq = ?, started_at = NULL, finished_at = NULL, "
                "error = NULL, result = NULL WHERE id = ? AND status IN ('failed', 'interrupted', 'cancelled')",
                (hi + 1, run_id))
            return cursor.rowcount == 1

    def recover(self) -> list[str]:
        """After a restart: runs left `running` become `interrupted`; returns their ids."""
        with self._lock:
            rows = self._db.execute("SELECT id FROM runs WHERE status = 'running'").fetchall()
            ids = [r["id"] for r in rows]
            self._db.execute(
                "UPDATE runs SET status = 'interrupted', finished_at = ?, "
                "error = '{\"message\": \"the server stopped while this run was executing; re-queue it\"}' "
                "WHERE status = 'running'", (time.time(),))
            return ids

    def pending(self) -> list[RunRecord]:
        """Queued runs in order."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM runs WHERE status = 'queued' ORDER BY seq").fetchall()
        return [_decode(r) for r in rows]

    def pending_count(self) -> int:
        """How many runs are queued."""
        return int(self._one("SELECT COUNT(*) AS n FROM runs WHERE status = 'queued'")["n"])

    def running(self) -> RunRecord | None:
        row = self._one("SELECT * FROM runs WHERE status = 'running' ORDER BY started_at LIMIT 1")
        return _decode(row) if row else None

    def history(self, offset: int = 0, limit: int = 50) -> tuple[list[RunRecord], int]:
        """Finished runs, newest first, and how many there are in all."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM runs WHERE status IN ('succeeded', 'failed', 'interrupted', 'cancelled') "
                "ORDER BY finished_at DESC, seq DESC LIMIT ? OFFSET ?", (limit, offset)).fetchall()
            total = self._one("SELECT COUNT(*) AS n FROM runs WHERE status IN "
                              "('succeeded', 'failed', 'interrupted', 'cancelled')")["n"]
        return [_decode(r) for r in rows], int(total)

    def prune(self, keep: int = 1000, older_than: float | None = None) -> int:
        """Delete finished runs beyond the newest `keep` (and/or finished before `older_than`)."""
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM runs WHERE status IN ('succeeded', 'failed', 'interrupted', 'cancelled') AND ("
                "id NOT IN (SELECT id FROM runs WHERE status IN ('succeeded', 'failed', 'interrupted', 'cancelled') "
                "ORDER BY finished_at DESC LIMIT ?) OR finished_at < ?)",
                (keep, older_than if older_than is not None else float("-inf")))
            return cursor.rowcount
