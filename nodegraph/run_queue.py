"""The persistent run queue and history (SQLite, stdlib `sqlite3`, WAL journal).

One table, `runs`, holds every submitted run from `queued` to its end:

    queued → running → succeeded | failed | interrupted
    queued → cancelled
    (stored) running   (`enqueue(start=True)`: the server's worker is idle and runs it now)
    interrupted | failed | cancelled → queued   (requeue, same id)

After a crash or restart, `recover()` marks runs left `running` as
`interrupted` (they can be re-queued); `queued` runs simply stay queued, so
nothing submitted is lost. History (finished runs) survives restarts and can
be pruned. All methods are thread-safe (one connection, one lock): the server's
event loop and its worker thread share one RunQueue.

Columns: id, seq (queue order), client_id, user (the owner's name on a server
with users, else null), status, graph (JSON text), outputs (JSON list or null),
overrides (JSON), submitted_at, started_at, finished_at, error (JSON or null),
result (JSON: output values and file references, or null), listing (JSON: what a
queue or history listing shows of the graph — its title, and what the caller adds at
submit, e.g. seeds — or null for a row stored before this column). A run's graph text
lives in a table of its own, `run_graphs` (id, graph), written once: SQLite
rewrites a whole row on every update, and a status change (claim, finish) would
otherwise copy the graph again (~1 ms per 100 KB). Rows written before that
table existed keep their graph in `runs.graph` (new rows store '' there); reads
take `run_graphs`' text when there is one (`_SELECT_RUNS`).

Listings (`pending`, `running_runs`, `history`) never read a graph: a graph may be
megabytes of `ui`, and decoding every listed one cost ~90 MB per run listed. A row
stored before `listing` existed is described once, on its first listing (its graph
alone is decoded, then `listing` is written), and never again.

`enqueue(limit_active=N)` / `requeue(limit_active=N)` count the user's queued and
running runs and store the run under one lock, so parallel submits cannot pass a
per-user limit together (`ActiveLimitReached`).

A row that cannot be decoded (a corrupt or hostile value written before limits
existed, a disk error) never breaks a listing: it is returned as a `failed`
record whose error says why, and marked failed in the table.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

STATUSES = ("queued", "running", "succeeded", "failed", "interrupted", "cancelled")
FINISHED = ("succeeded", "failed", "interrupted", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    client_id TEXT,
    user TEXT,
    status TEXT NOT NULL,
    graph TEXT NOT NULL,
    outputs TEXT,
    overrides TEXT,
    submitted_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    error TEXT,
    result TEXT,
    listing TEXT,
    graph_bytes INTEGER
);
CREATE INDEX IF NOT EXISTS runs_status_seq ON runs (status, seq);
CREATE INDEX IF NOT EXISTS runs_finished ON runs (finished_at);
CREATE INDEX IF NOT EXISTS runs_seq ON runs (seq);
CREATE TABLE IF NOT EXISTS run_graphs (
    id TEXT PRIMARY KEY,
    graph TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS run_graphs_go_with_runs AFTER DELETE ON runs BEGIN
    DELETE FROM run_graphs WHERE id = old.id;
END;
"""


@dataclass(frozen=True)
class RunRecord:
    """One row of the runs table, decoded."""

    id: str
    seq: int
    client_id: str | None
    user: str | None
    status: str
    graph: dict
    outputs: list[str] | None
    overrides: dict | None
    submitted_at: float
    started_at: float | None
    finished_at: float | None
    error: dict | None
    result: dict | None
    listing: dict | None = None     # {"title": ..., and what the submitter added}; None: a row from before

    def summary(self) -> dict[str, Any]:
        """The run without its graph (what queue and history listings send)."""
        title = self.listing.get("title") if self.listing is not None else _title(self.graph)
        return {"run_id": self.id, "status": self.status, "client_id": self.client_id, "user": self.user,
                "submitted_at": self.submitted_at, "started_at": self.started_at,
                "finished_at": self.finished_at, "error": self.error,
                "title": title if isinstance(title, str) else None}


MAX_LISTED_TITLE = 200      # characters of a graph's title a listing shows (a 7 MB title made each history row 7 MB)


def _title(graph: Any) -> str | None:
    """A stored graph's metadata title, if it is text (rows stored before titles were checked may hold anything),
    cut to MAX_LISTED_TITLE characters."""
    metadata = graph.get("metadata") if isinstance(graph, dict) else None
    title = metadata.get("title") if isinstance(metadata, dict) else None
    if not isinstance(title, str):
        return None
    return title if len(title) <= MAX_LISTED_TITLE else title[:MAX_LISTED_TITLE - 1] + "…"


class Pruned(int):
    """How many runs `RunQueue.prune` deleted, with `by_user`: how many of each user's (None: runs without one).
    A restart with a lower --history-limit deleted history and logged nothing."""

    by_user: dict[str | None, int]

    def __new__(cls, count: int, by_user: dict[str | None, int] | None = None) -> Pruned:
        pruned = super().__new__(cls, count)
        pruned.by_user = dict(by_user or {})
        return pruned


class UnreadableRow(Exception):
    """A stored row whose JSON columns cannot be decoded."""


class ActiveLimitReached(Exception):
    """`enqueue` / `requeue` with `limit_active`: the user already has that many runs queued or running."""

    def __init__(self, user: str | None, limit: int):
        super().__init__(f"user {user!r} already has {limit} run(s) queued or running (the limit)")
        self.user, self.limit = user, limit


MAX_STORED_DEPTH = 48          # a graph is ~4 levels, literals ≤ 32 (graph.MAX_VALUE_DEPTH), ui a few more
MAX_STORED_ITEMS = 1_000_000    # containers + scalars in one stored value
MAX_STORED_TEXT = 8 * 1024 * 1024   # characters of strings and keys in one stored value


def storable_problem(value: Any, name: str) -> str | None:
    """Why `value` may not be stored in the queue (too deep, too many items, too much text), or None.

    The one cap on every JSON value the server stores (graph with its `ui` and `metadata`,
    overrides, outputs): checked iteratively at submit time, so no stored row can later
    fail to load for being too deep or too large.
    """
    stack = [(value, 1)]
    items = text = 0
    while stack:
        item, depth = stack.pop()
        items += 1
        if depth > MAX_STORED_DEPTH:
            return f"{name} is nested deeper than {MAX_STORED_DEPTH} levels; flatten it (e.g. the ui or metadata)"
        if items > MAX_STORED_ITEMS:
            return f"{name} has more than {MAX_STORED_ITEMS} values; a graph is far smaller"
        if isinstance(item, dict):
            for key, child in item.items():
                text += len(key) if isinstance(key, str) else 0
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            text += len(item)
        elif isinstance(item, float) and (item != item or item in (float("inf"), float("-inf"))):
            return f"{name} contains NaN or Infinity, which strict JSON cannot hold; use a number or null"
        if text > MAX_STORED_TEXT:
            where, size = _longest_text(value)
            return (f"{name} holds more than {MAX_STORED_TEXT // (1024 * 1024)} MiB of text (the longest piece: "
                    f"{where or name}, {size / 1e6:.1f} M characters); shorten it, and put files such as images in "
                    f"the input folder (upload them) instead of in the graph")
    return None


def _longest_text(value: Any) -> tuple[str, int]:
    """("nodes.prompt.inputs.text", length) of the longest string or key in `value` (depth already checked)."""
    best, best_path = -1, ""
    stack: list[tuple[Any, tuple]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and len(key) > best:
                    best, best_path = len(key), ".".join(map(str, (*path, "<key>")))
                stack.append((child, (*path, key)))
        elif isinstance(item, list):
            stack.extend((child, (*path, index)) for index, child in enumerate(item))
        elif isinstance(item, str) and len(item) > best:
            best, best_path = len(item), ".".join(map(str, path))
    return best_path, max(best, 0)


_NOT_BRACKETS_OR_QUOTES = bytes(c for c in range(256) if chr(c) not in '[]{}"')   # translate() deletes these
_SQUARE_AS_CURLY = bytes.maketrans(b"[]", b"{}")     # nesting depth does not depend on the bracket kind


def members_within_storage_caps(text: str) -> bool:
    """True when no member value of this (decoded, so valid) JSON object text can break `storable_problem`'s caps.

    A cheap bound on the raw text of a message (bytes translate and replace; no walk over the decoded
    value): every value and every character of its strings costs at least one character of
    text, so text no longer than both caps holds no value over them; and the brackets outside
    strings, with innermost pairs removed once per level, give the deepest nesting — a member
    value sits one level inside the object, so its own depth (scalars counted) is at most the
    object's bracket depth. False means "walk it" (`storable_problem` gives the exact answer
    and its message), not "refuse it". Non-finite numbers are not looked for here: the
    protocol's parser rejects NaN, Infinity and numbers that overflow a float.
    """
    if len(text) > min(MAX_STORED_ITEMS, MAX_STORED_TEXT):
        return False
    if "\\" in text:        # escapes, paired left to right as JSON does: \\ first, then \" (no longer a quote)
        text = text.replace("\\\\", "").replace('\\"', "")
    quotes_and_brackets = text.encode("utf-8", "surrogatepass").translate(_SQUARE_AS_CURLY, _NOT_BRACKETS_OR_QUOTES)
    # A string with no bracket in it is left as "": drop those pairs. If a quote is left, some string holds a
    # bracket (the first such string keeps its opening quote): then cut out every string, quote to quote.
    brackets = quotes_and_brackets.replace(b'""', b"")
    if b'"' in brackets:
        brackets = b"".join(quotes_and_brackets.split(b'"')[::2])    # every other piece lies outside strings
    for _ in range(MAX_STORED_DEPTH):      # after k passes only nesting deeper than k is left
        if not brackets:
            return True
        brackets = brackets.replace(b"{}", b"")
    return not brackets


def strict_json(value: Any) -> Any:
    """`value` with NaN/±Infinity replaced by the strings "NaN", "Infinity", "-Infinity" (strict JSON)."""
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


_COLUMNS_BUT_GRAPH = ("id, seq, client_id, user, status, outputs, overrides, submitted_at, started_at, "
                      "finished_at, error, result, listing")
_GRAPH_TEXT = "COALESCE((SELECT g.graph FROM run_graphs AS g WHERE g.id = runs.id), runs.graph)"
Describe = Callable[["RunRecord"], dict]     # a run (graph included) → what listings show besides its title
_SELECT_RUNS = f"SELECT {_COLUMNS_BUT_GRAPH}, {_GRAPH_TEXT} AS graph FROM runs"    # the graph from run_graphs if there
_SELECT_LISTED = f"SELECT {_COLUMNS_BUT_GRAPH} FROM runs"      # what listings read: never the graph


def strict_dumps(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """`json.dumps(strict_json(value), default=default)`, walking the value only when it holds a NaN or Infinity."""
    try:
        return json.dumps(value, default=default, allow_nan=False)
    except ValueError:
        return json.dumps(strict_json(value), default=default)


def _decode(row: sqlite3.Row, graph: bool = True) -> RunRecord:
    """A row → RunRecord (with `graph=False`, its graph is left as {} and the row need not hold it);
    UnreadableRow for a bad row."""
    def loads(column: str) -> Any:
        text = row[column]
        if text is None:
            return None
        try:
            return json.loads(text)
        except (ValueError, RecursionError, MemoryError) as exc:
            raise UnreadableRow(f"stored {column} of run {row['id']} cannot be read "
                                f"({type(exc).__name__}); the run is marked failed") from None
    listing = loads("listing")
    return RunRecord(row["id"], row["seq"], row["client_id"], row["user"], row["status"],
                     loads("graph") if graph else {},
                     loads("outputs"), loads("overrides"), row["submitted_at"], row["started_at"],
                     row["finished_at"], loads("error"), loads("result"),
                     listing if isinstance(listing, dict) else None)


def listing_of(graph: Any, extra: dict | None = None) -> dict:
    """What listings show of a run's graph: its title, and `extra` (what the submitter adds, e.g. seeds)."""
    return {"title": _title(graph), **(extra or {})}


def _unreadable(row: sqlite3.Row, message: str) -> RunRecord:
    """What a listing shows for a row that cannot be decoded."""
    return RunRecord(row["id"], row["seq"], row["client_id"], row["user"], "failed", {}, None, None,
                     row["submitted_at"], row["started_at"], row["finished_at"] or time.time(),
                     {"message": message, "code": "unreadable_row"}, None)


class RunQueue:
    """Queued runs and history in one SQLite file (":memory:" for tests)."""

    def __init__(self, path: str | Path = ":memory:"):
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        # How many runs are queued, remembered between the writes that can change it (None: count again). Every
        # run asked the database twice (its queue_changed messages) and once more at submit; this process is the
        # database's only writer (one server per data folder: `server.lock_data_folder`).
        self._pending: int | None = None
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            columns = {r["name"] for r in self._db.execute("PRAGMA table_info(runs)")}
            if "user" not in columns:      # a database from before users existed
                self._db.execute("ALTER TABLE runs ADD COLUMN user TEXT")
            if "listing" not in columns:   # from before listings: each old row is described on its first listing
                self._db.execute("ALTER TABLE runs ADD COLUMN listing TEXT")
            if "graph_bytes" not in columns:   # from before stored graphs counted in quotas: theirs count as 0
                self._db.execute("ALTER TABLE runs ADD COLUMN graph_bytes INTEGER")
            if "front" not in columns:     # from before users took turns: no run was put at the front
                self._db.execute("ALTER TABLE runs ADD COLUMN front INTEGER")
            if "result_bytes" not in columns:   # from before stored results counted in quotas: theirs count as 0
                self._db.execute("ALTER TABLE runs ADD COLUMN result_bytes INTEGER")

    def close(self) -> None:
        """Close the database; safe to call twice."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None  # type: ignore[assignment]

    def _one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    def _records(self, rows: list[sqlite3.Row], graph: bool = True) -> list[RunRecord]:
        """Decode rows (`graph=False`: rows without the graph column); an unreadable one is returned as
        failed and marked failed in the table."""
        records = []
        for row in rows:
            try:
                records.append(_decode(row, graph))
            except UnreadableRow as exc:
                records.append(_unreadable(row, str(exc)))
                self._mark_unreadable(row["id"], str(exc))
        return records

    def _listed(self, rows: list[sqlite3.Row], describe: Describe | None) -> list[RunRecord]:
        """Decode listed rows (`_SELECT_LISTED`: no graph, `record.graph` is {}); a row from before the
        `listing` column is described once (`_describe_old`)."""
        records = []
        for record in self._records(rows, graph=False):
            if record.listing is None:
                record = self._describe_old(record, describe)
            if record is not None:
                records.append(record)
        return records

    def _describe_old(self, record: RunRecord, describe: Describe | None) -> RunRecord | None:
        """A row stored before listings: decode its graph alone, store its listing; the record without its graph."""
        full = self.get(record.id)
        if full is None or full.status != record.status:     # deleted meanwhile, or its graph is unreadable
            return full
        listing = listing_of(full.graph, describe(full) if describe is not None else None)
        with self._lock:
            self._db.execute("UPDATE runs SET listing = ? WHERE id = ?", (strict_dumps(listing), record.id))
        return replace(full, graph={}, listing=listing)

    def _mark_unreadable(self, run_id: str, message: str) -> None:
        with self._lock:
            self._pending = None
            self._db.execute("DELETE FROM run_graphs WHERE id = ?", (run_id,))
            self._db.execute(
                "UPDATE runs SET status = 'failed', finished_at = COALESCE(finished_at, ?), graph = '{}', "
                "outputs = NULL, overrides = NULL, result = NULL, error = ? WHERE id = ?",
                (time.time(), json.dumps({"message": message, "code": "unreadable_row"}), run_id))

    def enqueue(self, graph: dict, client_id: str | None = None, outputs: list[str] | None = None,
                overrides: dict | None = None, front: bool = False, user: str | None = None,
                checked: bool = False, graph_text: str | None = None, start: bool = False,
                listing: dict | None = None, limit_active: int | None = None) -> RunRecord:
        """Add a run at the back (or front) of the queue; returns its record (ValueError if not storable).

        `checked=True`: the caller already applied `storable_problem` to graph, outputs and
        overrides (the protocol does, on every message), so the values are not walked twice.
        `graph_text`: JSON text that decodes to `graph` (a submit's own text of it, which the
        protocol keeps), stored as it is instead of encoding `graph` again.
        `start=True`: the caller's worker is idle and runs this run now, so when no run is queued
        it is stored as running, started now (one write where queueing and `claim_next` take two);
        the record's status says whether it was (else it is queued as usual).
        `listing`: what queue and history listings show besides the title (e.g. seeds), stored with
        the title so that no listing reads the graph.
        `limit_active`: ActiveLimitReached, nothing stored, when `user` already has that many runs
        queued or running (counted and stored under one lock: parallel submits cannot both pass).
        """
        for name, value in (("graph", graph), ("outputs", outputs), ("overrides", overrides)):
            problem = None if checked else storable_problem(value, name)
            if problem:
                raise ValueError(problem)
        if graph_text is not None and not graph_text.isascii():
            try:
                graph_text.encode("utf-8")
            except UnicodeEncodeError:      # a lone surrogate: not text SQLite can hold; JSON escapes it
                graph_text = None
        if graph_text is None:
            graph_text = json.dumps(graph, allow_nan=False)
        listing_text = strict_dumps(listing_of(graph, listing))
        outputs_text = json.dumps(outputs) if outputs is not None else None
        overrides_text = json.dumps(overrides) if overrides else None
        stored = len(graph_text) + len(listing_text) + len(outputs_text or "") + len(overrides_text or "")
        run_id = uuid.uuid4().hex
        submitted_at = time.time()
        with self._lock:
            if limit_active is not None and self.active_count(user) >= limit_active:
                raise ActiveLimitReached(user, limit_active)
            # Two subqueries: each is one index lookup; MIN and MAX in one SELECT scan the whole table.
            bound = self._one("SELECT (SELECT MIN(seq) FROM runs) AS lo, (SELECT MAX(seq) FROM runs) AS hi")
            lo, hi = (bound["lo"] or 0), (bound["hi"] or 0)
            seq = lo - 1 if front else hi + 1
            started_at = None
            if start and self.pending_count() == 0:
                started_at = submitted_at
            if started_at is None:
                self._pending = None
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO runs (id, seq, client_id, user, status, graph, outputs, overrides, submitted_at, "
                    "started_at, listing, graph_bytes, front) VALUES (?, ?, ?, ?, ?, '', ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, seq, client_id, user, "queued" if started_at is None else "running",
                     outputs_text, overrides_text, submitted_at, started_at, listing_text,
                     stored, 1 if front else None))
                self._db.execute("INSERT INTO run_graphs (id, graph) VALUES (?, ?)", (run_id, graph_text))
                self._db.execute("COMMIT")
            except BaseException:
                # SQLite has already rolled back after some errors (SQLITE_FULL): a ROLLBACK then raised "no
                # transaction is active" in place of "database or disk is full"
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        # The record as stored (no read-back: the JSON round trip is exact for storable values).
        return RunRecord(run_id, seq, client_id, user, "queued" if started_at is None else "running", graph,
                         outputs, overrides or None, submitted_at, started_at, None, None, None,
                         json.loads(listing_text))

    def get(self, run_id: str, graph: bool = True) -> RunRecord | None:
        """One run by id (`graph=False`: without reading its graph, `record.graph` is {}), or None."""
        row = self._one(f"{_SELECT_RUNS if graph else _SELECT_LISTED} WHERE id = ?", run_id)
        return self._records([row], graph)[0] if row else None

    def position(self, run_id: str) -> int | None:
        """0-based place among queued runs in the order they will run (`queued_in_turn`), or None if the run is
        not queued."""
        with self._lock:
            row = self._one("SELECT seq FROM runs WHERE id = ? AND status = 'queued'", run_id)
            if row is None:
                return None
            if self._one("SELECT COUNT(DISTINCT COALESCE(user, '')) AS n FROM runs WHERE status = 'queued'")["n"] <= 1:
                ahead = self._one("SELECT COUNT(*) AS n FROM runs WHERE status = 'queued' AND seq < ?", row["seq"])
                return int(ahead["n"])
            order = self.queued_in_turn()
            return order.index(run_id) if run_id in order else None

    def queued_in_turn(self, held: Collection[str] = ()) -> list[str]:
        """The queued runs' ids in the order they will run: runs put at the front first, then users take turns
        — one run each in every round, their own runs in the order they queued them, the user whose last run
        started longest ago (or never) first — so one user's 25 queued runs do not make everyone else wait
        behind them. With one user (or none: a server without a users file) this is the order they queued.
        The runs of `held` users (paused: `max_queued` 0) are left out: they wait."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, seq, user, front FROM runs WHERE status = 'queued' ORDER BY seq").fetchall()
            if held:
                rows = [row for row in rows if row["user"] not in held]
            users = {row["user"] for row in rows}
            if len(users) <= 1:
                return [row["id"] for row in rows]
            started = {row["user"]: row["last"] for row in self._db.execute(
                "SELECT user, MAX(started_at) AS last FROM runs WHERE started_at IS NOT NULL GROUP BY user")}
        front = [row["id"] for row in rows if row["front"]]
        by_user: dict[Any, list[str]] = {}
        first_seq: dict[Any, int] = {}
        for row in rows:
            if not row["front"]:
                by_user.setdefault(row["user"], []).append(row["id"])
                first_seq.setdefault(row["user"], row["seq"])
        turn = sorted(by_user, key=lambda user: (started.get(user) or 0.0, first_seq[user]))
        dealt = [runs[depth] for depth in range(max(map(len, by_user.values()), default=0))
                 for runs in (by_user[user] for user in turn) if depth < len(runs)]
        return front + dealt

    def claim_next(self, needs_graph: Callable[[str], bool] | None = None,
                   held: Collection[str] = ()) -> RunRecord | None:
        """Mark the first readable queued run as running and return it (None if the queue is empty, or holds
        only runs of `held` users: paused ones, whose runs wait).

        `needs_graph(run_id)` False: the caller holds the run's graph already (the server keeps the
        Graph it validated at submit), so the stored JSON is not decoded again (`record.graph` is {}).
        """
        with self._lock:
            while True:
                self._pending = None
                row = self._one("SELECT id FROM runs WHERE status = 'queued' ORDER BY seq LIMIT 1")
                if row is None:
                    return None
                if held:
                    order = self.queued_in_turn(held)
                    if not order:
                        return None
                    row = {"id": order[0]}
                elif self._one("SELECT COUNT(DISTINCT COALESCE(user, '')) AS n FROM runs "
                               "WHERE status = 'queued'")["n"] > 1:       # users take turns (`queued_in_turn`)
                    row = {"id": self.queued_in_turn()[0]}
                self._db.execute("UPDATE runs SET status = 'running', started_at = ? WHERE id = ?",
                                 (time.time(), row["id"]))
                if needs_graph is not None and not needs_graph(row["id"]):     # the graph's text is not even read
                    full = self._one(f"SELECT {_COLUMNS_BUT_GRAPH} FROM runs WHERE id = ?", row["id"])
                    try:
                        return _decode(full, graph=False)
                    except UnreadableRow as exc:
                        self._mark_unreadable(row["id"], str(exc))
                        continue
                record = self.get(row["id"])     # an unreadable row comes back failed: skip it
                if record is not None and record.status == "running":
                    return record

    def finish(self, run_id: str, status: str, error: dict | None = None, result: dict | None = None) -> None:
        """Record how a running run ended."""
        if status not in FINISHED:
            raise ValueError(f"finish status must be one of {FINISHED}, got {status!r}")
        error_text = strict_dumps(error) if error else None
        result_text = strict_dumps(result, default=str) if result is not None else None
        with self._lock:
            self._db.execute(
                "UPDATE runs SET status = ?, finished_at = ?, error = ?, result = ?, result_bytes = ? WHERE id = ?",
                (status, time.time(), error_text, result_text, len(error_text or "") + len(result_text or ""),
                 run_id))

    def cancel(self, run_id: str, error: dict | None = None) -> bool:
        """Cancel a queued run; False if it is not queued (running runs are interrupted instead). `error`: what
        its record says about it (an admin's cancel of another user's run says who, `cancelled_by`)."""
        error_text = strict_dumps(error) if error else None
        with self._lock:
            self._pending = None
            cursor = self._db.execute(
                "UPDATE runs SET status = 'cancelled', finished_at = ?, error = ?, result_bytes = ? "
                "WHERE id = ? AND status = 'queued'",
                (time.time(), error_text, len(error_text or ""), run_id))
            return cursor.rowcount == 1

    def requeue(self, run_id: str, limit_active: int | None = None) -> bool:
        """Put a failed, interrupted or cancelled run back at the end of the queue (same id); with
        `limit_active`, ActiveLimitReached when its user already has that many queued or running."""
        with self._lock:
            if limit_active is not None:
                row = self._one("SELECT user FROM runs WHERE id = ?", run_id)
                if row is not None and self.active_count(row["user"]) >= limit_active:
                    raise ActiveLimitReached(row["user"], limit_active)
            hi = self._one("SELECT MAX(seq) AS hi FROM runs")["hi"] or 0
            self._pending = None
            cursor = self._db.execute(
                "UPDATE runs SET status = 'queued', seq = ?, started_at = NULL, finished_at = NULL, "
                "error = NULL, result = NULL, result_bytes = NULL "
                "WHERE id = ? AND status IN ('failed', 'interrupted', 'cancelled')",
                (hi + 1, run_id))
            return cursor.rowcount == 1

    def recover(self) -> list[str]:
        """After a restart: runs left `running` become `interrupted`; returns their ids."""
        with self._lock:
            rows = self._db.execute("SELECT id FROM runs WHERE status = 'running'").fetchall()
            ids = [r["id"] for r in rows]
            self._db.execute(
                "UPDATE runs SET status = 'interrupted', finished_at = ?, "
                "error = '{\"code\": \"server_stopped\", \"message\": \"the server stopped while this run was "
                "executing; re-queue it\"}' "
                "WHERE status = 'running'", (time.time(),))
            return ids

    def pending(self, user: str | None = None, describe: Describe | None = None) -> list[RunRecord]:
        """Queued runs in the order they will run (`queued_in_turn`; only `user`'s when given), without their
        graphs (`describe`: see `history`)."""
        with self._lock:
            rows = self._db.execute(
                f"{_SELECT_LISTED} WHERE status = 'queued' AND (? IS NULL OR user = ?) ORDER BY seq",
                (user, user)).fetchall()
            turn = {run_id: place for place, run_id in enumerate(self.queued_in_turn())} if user is None else None
        records = [r for r in self._listed(rows, describe) if r.status == "queued"]    # unreadable rows: failed
        return sorted(records, key=lambda r: turn.get(r.id, len(turn))) if turn else records

    def pending_count(self) -> int:
        """How many runs are queued (counted once between the writes that may change it)."""
        with self._lock:
            if self._pending is None:
                self._pending = int(self._one("SELECT COUNT(*) AS n FROM runs WHERE status = 'queued'")["n"])
            return self._pending

    def stored_bytes(self, user: str | None) -> int:
        """The size (characters) of what is stored for `user`'s runs — graphs, overrides, outputs asked for,
        listings, results and errors — counted in the per-user `max_bytes` (results were not: 40 ShowValue nodes
        of 1 MiB texts stored 42 MB a run against a 2 MiB limit)."""
        return int(self._one("SELECT COALESCE(SUM(COALESCE(graph_bytes, 0) + COALESCE(result_bytes, 0)), 0) AS n "
                             "FROM runs WHERE user IS ?", user)["n"])

    def active_count(self, user: str | None) -> int:
        """How many of `user`'s runs are queued or running (what the per-user limit counts)."""
        return int(self._one("SELECT COUNT(*) AS n FROM runs WHERE status IN ('queued', 'running') AND user IS ?",
                             user)["n"])

    def running(self) -> RunRecord | None:
        row = self._one(f"{_SELECT_RUNS} WHERE status = 'running' ORDER BY started_at DESC LIMIT 1")
        return self._records([row])[0] if row else None

    def running_runs(self, describe: Describe | None = None) -> list[RunRecord]:
        """Every running run, oldest first (several at once on a Ray cluster), without their graphs."""
        with self._lock:
            rows = self._db.execute(f"{_SELECT_LISTED} WHERE status = 'running' ORDER BY started_at").fetchall()
        return [r for r in self._listed(rows, describe) if r.status == "running"]

    def history(self, offset: int = 0, limit: int = 50, user: str | None = None,
                statuses: list[str] | None = None, describe: Describe | None = None) -> tuple[list[RunRecord], int]:
        """Finished runs, newest first (only `user`'s, only `statuses`, when given), and how many match.

        The records carry no graph (`graph` is {}): what a listing shows of it is `listing`.
        `describe(record)` gives what the submitter would have added to the listing, for a row
        stored before listings were (that row's graph is decoded once, then its listing stored).
        """
        wanted = tuple(s for s in (statuses or FINISHED) if s in FINISHED) or FINISHED
        marks = ", ".join("?" * len(wanted))
        with self._lock:
            rows = self._db.execute(
                f"{_SELECT_LISTED} WHERE status IN ({marks}) "
                "AND (? IS NULL OR user = ?) ORDER BY finished_at DESC, seq DESC LIMIT ? OFFSET ?",
                (*wanted, user, user, limit, offset)).fetchall()
            total = self._one(f"SELECT COUNT(*) AS n FROM runs WHERE status IN ({marks}) "
                              "AND (? IS NULL OR user = ?)", *wanted, user, user)["n"]
        return self._listed(rows, describe), int(total)

    def file_shared(self, file_id: str, run_id: str, user: str | None) -> bool:
        """Whether another run of `user` (same file store) lists output file `file_id` in its result: a run
        served from the cache reports the files of the run that made them."""
        needle = '"file_id": ' + json.dumps(file_id)
        row = self._one("SELECT 1 FROM runs WHERE id != ? AND user IS ? AND instr(result, ?) > 0 LIMIT 1",
                        run_id, user, needle)
        return row is not None

    def delete(self, run_id: str) -> bool:
        """Remove a finished run from history."""
        with self._lock:
            cursor = self._db.execute(f"DELETE FROM runs WHERE id = ? AND status IN {FINISHED!r}", (run_id,))
            return cursor.rowcount == 1

    def prune(self, keep: int = 1000, older_than: float | None = None, slack: int = 0) -> Pruned:
        """Delete each user's finished runs beyond their newest `keep` (and/or finished before `older_than`);
        returns how many (`Pruned`: a count that also says how many of whose, for the server's log line).

        Per user (runs without a user are one history): one user's sweep of a thousand runs used to push
        everyone else's history out. With `slack`, nothing happens until some user has more than
        `keep + slack` finished runs: the deletion (a sort of the history) then runs once per `slack`
        runs, not after each.
        """
        finished = "status IN ('succeeded', 'failed', 'interrupted', 'cancelled')"
        with self._lock:
            if older_than is None:
                most = self._one(f"SELECT COALESCE(MAX(n), 0) AS n FROM (SELECT COUNT(*) AS n FROM runs WHERE "
                                 f"{finished} GROUP BY user)")["n"]
                if most <= keep + max(0, slack):
                    return Pruned(0)
            doomed = (f"{finished} AND (id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY user "
                      f"ORDER BY finished_at DESC, seq DESC) AS age FROM runs WHERE {finished}) WHERE age > ?) "
                      f"OR finished_at < ?)")
            bounds = (keep, older_than if older_than is not None else float("-inf"))
            by_user = {row["user"]: int(row["n"]) for row in self._db.execute(
                f"SELECT user, COUNT(*) AS n FROM runs WHERE {doomed} GROUP BY user", bounds)}
            cursor = self._db.execute(f"DELETE FROM runs WHERE {doomed}", bounds)
            return Pruned(cursor.rowcount, by_user)
