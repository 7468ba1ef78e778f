"""The server's message logic, with no I/O: messages in, messages out.

The websocket shell (server.py) feeds `ServerProtocol` what clients send and
what the worker reports, and delivers the `Outgoing` messages it returns. All
of the protocol — validation of messages, replies, routing of run events to
the client that submitted the run (and to the connections that `watch` it),
queue broadcasts, binary frame layout — is
here and is tested by feeding messages, without sockets. docs/protocol.md
documents every message; `message_schemas()` gives their JSON Schemas.

Text frames are JSON objects with a `type` (and an optional `request_id` that
the reply echoes). Binary frames are `[uint32 big-endian header length][UTF-8
JSON header][payload]`; `encode_frame` / `decode_frame` implement it.

Listings (`history`, `queue_status`) never read a stored graph: a run's title and
seeds are stored with it at submit (`_listing_extras`), and only `get_run` reads
the graph. The per-user run limit is checked again where the run is stored
(`RunQueue.enqueue(limit_active=)`), so parallel submits cannot pass it together.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import math
import operator
import os
import re
import sqlite3
import stat
import struct
import threading
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from itertools import groupby
from typing import Annotated, Any, Callable, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictInt, StrictStr, TypeAdapter, ValidationError

from .cache import POLICIES
from .errors import GraphValidationError
from .events import Event, NodeCached, NodeFinished, NodeStarted
from .files import FileAccessError, FileStore, OutputBudget, StorageQuotaError, UploadStorageError, amount_text
from .effective_graph import effective_graph
from .graph import Graph, GraphNode, Link, json_value_problem
from .run_queue import ActiveLimitReached, RunQueue, RunRecord, members_within_storage_caps, storable_problem
from .templates import TemplateError, TemplateLibrary
from .users import User, UserBook

PROTOCOL_VERSION = 1
MAX_FRAME_HEADER = 64 * 1024
log = logging.getLogger("nodegraph.protocol")


class LimitedLog:
    """Log lines that clients can cause (an unknown message type, a refused origin or token), at most `burst`
    per kind and `window` seconds: one client sent 3,506 frames in 20 s and the log grew by as many lines. The
    next line logged of a kind says how many were left out.

    `log(logger, level, kind, message, *args)`: thread-safe enough for a log (a lost count is harmless)."""

    def __init__(self, burst: int = 10, window: float = 60.0, clock: Callable[[], float] | None = None):
        import time

        self.burst, self.window, self._clock = burst, window, clock or time.monotonic
        self._state: dict[str, list[float | int]] = {}    # kind → [window start, logged in it, left out]
        # the `within` kinds, apart: new kinds (made-up forwarded addresses) never forget them. Kept with the
        # others, the proxy's own kind was the oldest, so each 4,096 spoofed X-Forwarded-For values reset its cap
        # (200 lines in 5 s instead of 50 a minute)
        self._within: dict[str, list[float | int]] = {}

    MAX_KINDS = 4096     # kinds remembered (a kind per client address): the oldest are forgotten beyond it
    WITHIN_BURSTS = 5    # a `within` kind (one proxy's address) logs this many kinds' bursts per window

    def _state_of(self, kind: str, now: float, states: dict[str, list[float | int]] | None = None
                  ) -> list[float | int]:
        """The count of `kind` in `states` (the kinds, or the `within` kinds: each its own MAX_KINDS), its window
        restarted when it has passed; the oldest kind of the same dict is forgotten to make room."""
        states = self._state if states is None else states
        if kind not in states and len(states) >= self.MAX_KINDS:
            states.pop(next(iter(states)), None)
        state = states.setdefault(kind, [now, 0, 0])
        if now - state[0] >= self.window:
            state[0], state[1] = now, 0
        return state

    def log(self, logger: logging.Logger, level: int, kind: str, message: str, *args: Any,
            within: str | None = None) -> None:
        """`within`: a wider kind that also caps the line (WITHIN_BURSTS × burst): behind a proxy each forwarded
        client address is its own kind, so one client's flood cannot hide another's lines, and the proxy's own
        address is `within`, so made-up X-Forwarded-For values cannot flood the log either."""
        now = self._clock()
        state = self._state_of(kind, now)
        outer = self._state_of(within, now, self._within) if within is not None else None
        if state[1] >= self.burst:
            state[2] += 1
            return
        if outer is not None and outer[1] >= self.burst * self.WITHIN_BURSTS:
            outer[2] += 1
            return
        left_out = 0
        for counted in (state, outer):
            if counted is not None:
                counted[1] += 1
                left_out, counted[2] = left_out + int(counted[2]), 0
        if left_out:
            message += f" ({left_out} more like this were not logged)"
        logger.log(level, message, *args)


CLIENT_LOG = LimitedLog()       # the lines the clients of this process can cause

RequestId = Union[StrictStr, StrictInt, None]     # strict: `true` is not the request id 1
# Run ids are the server's own (32 hex digits); anything else is refused as a malformed message, so text
# that is not a run id (a lone surrogate, 10 kB) never reaches the database.
RunId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: RequestId = Field(None, description="echoed in the reply")


class Hello(_Message):
    """First message of a connection: the client's protocol version."""
    type: Literal["hello"]
    protocol_version: int = Field(ge=1, strict=True)
    token: str | None = Field(None, description="alternative to the handshake token; must match if given")
    batch: bool = Field(False, strict=True,
                        description="receive messages that are ready together as one `batch` frame "
                                    "(same messages, same order; far fewer frames on big graphs)")
    compact_events: bool = Field(False, strict=True,
                                 description="with `batch`: consecutive node events of one run inside a "
                                             "batch travel as one `node_events` message (field names once, "
                                             "one row per event)")
    resume: str | None = Field(None, max_length=64,
                               description="the client_id of this client's earlier connection (after a drop or "
                                           "a server restart): the events of its runs come to this one")


class ListNodes(_Message):
    """Node schemas; omitted from the reply when `known_hash` matches."""
    type: Literal["list_nodes"]
    known_hash: str | None = None


class Submit(_Message):
    """Validate a graph and queue it."""
    type: Literal["submit"]
    graph: dict[str, Any]
    outputs: list[str] | None = None
    overrides: dict[str, Any] | None = None
    front: bool = Field(False, strict=True)      # strict: "yes" or 1 is no answer to "at the front?"
    _graph_text: str | None = PrivateAttr(None)    # the graph's JSON text as received (stored as is)


class QueueStatus(_Message):
    """The running run and the queued ones."""
    type: Literal["queue_status"]


class Cancel(_Message):
    """Cancel a queued run."""
    type: Literal["cancel"]
    run_id: RunId


class Interrupt(_Message):
    """Interrupt the running run (by id)."""
    type: Literal["interrupt"]
    run_id: RunId


class Watch(_Message):
    """Also receive a run's progress (run_started, node events, node_progress without previews, its end), e.g.
    a second tab of the same user; its submitter gets them anyway. Output images and files stay the submitter's."""
    type: Literal["watch"]
    run_id: RunId


class Requeue(_Message):
    """Queue a failed, interrupted or cancelled run again."""
    type: Literal["requeue"]
    run_id: RunId


class History(_Message):
    """Finished runs, newest first, paged; optionally only some statuses."""
    type: Literal["history"]
    offset: int = Field(0, ge=0, le=10**9, strict=True)
    limit: int = Field(50, ge=1, le=200, strict=True)
    status: list[Literal["succeeded", "failed", "interrupted", "cancelled"]] | None = Field(
        None, min_length=1, description="only runs that ended so (default: every finished run)")


class GetRun(_Message):
    """One run with its graph (to load a past run into the editor)."""
    type: Literal["get_run"]
    run_id: RunId


class ListTemplates(_Message):
    """Workflow templates: the project's graphs/ and every loaded plugin's graphs/."""
    type: Literal["list_templates"]


class ImportGraph(_Message):
    """Convert a graph file of another tool (a ComfyUI API-format prompt) into a nodegraph graph."""
    type: Literal["import_graph"]
    data: dict[str, Any]


class GetTemplate(_Message):
    """The graph of one template, by the id `list_templates` gave."""
    type: Literal["get_template"]
    template_id: str = Field(min_length=1, max_length=512)


class GetOutputs(_Message):
    """A run's outputs and output files."""
    type: Literal["get_outputs"]
    run_id: RunId


class ListModels(_Message):
    """Model files per registered model folder (a folder *name* such as "checkpoints", never a path)."""
    type: Literal["list_models"]
    folder: str | None = Field(None, max_length=64)


class DeleteRun(_Message):
    """Remove a finished run from history and delete the output files it reported."""
    type: Literal["delete_run"]
    run_id: RunId


class DeleteFile(_Message):
    """Delete one of your files by id (an upload in `input/`, or an output): frees quota."""
    type: Literal["delete_file"]
    file_id: str = Field(min_length=1, max_length=1024)


class ListFiles(_Message):
    """Your files (uploads in `input/`, outputs in `output/`), newest first, paged, with what your storage holds:
    the way to files no run in the history names any more (the history keeps the newest runs; theirs stay)."""
    type: Literal["list_files"]
    folder: Literal["input", "output"] | None = None
    offset: StrictInt = Field(0, ge=0, le=10**9)
    limit: StrictInt = Field(100, ge=1, le=1000)       # FileStore.MAX_LISTED_FILES


class ListPlugins(_Message):
    """Loaded, failed and skipped plugins, node-name clashes, and their warnings."""
    type: Literal["list_plugins"]


class FreeMemory(_Message):
    """Drop cached outputs and offload models."""
    type: Literal["free_memory"]


class SetCachePolicy(_Message):
    """Switch the output cache policy."""
    type: Literal["set_cache_policy"]
    policy: Literal["lru", "all", "none"]
    budget_bytes: StrictInt | None = Field(None, ge=0)      # strict: true would be 1 byte


class Ping(_Message):
    """Liveness check."""
    type: Literal["ping"]


class UploadHeader(_Message):
    """Header of a binary upload frame; the payload is the file's bytes (an image, or a media file of `kind`)."""
    type: Literal["upload"]
    name: str = Field(min_length=1, max_length=255)
    # files.UPLOAD_KINDS, and "caption": a training caption sidecar (NAME.txt / NAME.caption, UTF-8)
    kind: Literal["image", "mask", "audio", "video", "mesh", "pointcloud", "caption"] = "image"
    # a folder inside the uploader's input folder ("img/10_zorb": a kohya dataset), created; "" the folder itself
    subfolder: str = Field(default="", max_length=255)


_MODELS = (Hello, ListNodes, Submit, QueueStatus, Cancel, Interrupt, Requeue, History, GetOutputs,
           ListModels, FreeMemory, SetCachePolicy, Ping, DeleteRun, ListPlugins, GetRun, ListTemplates,
           GetTemplate, ImportGraph, Watch, DeleteFile, ListFiles)
ClientMessage = Annotated[Union[_MODELS], Field(discriminator="type")]  # type: ignore[valid-type]
_CLIENT_MESSAGE = TypeAdapter(ClientMessage)
MESSAGE_TYPES = tuple(m.model_fields["type"].annotation.__args__[0] for m in _MODELS)


def message_schemas() -> dict[str, Any]:
    """JSON Schema of every client message (text) and of the upload frame header."""
    models = [*_MODELS, UploadHeader]
    return {m.model_fields["type"].annotation.__args__[0]: m.model_json_schema() for m in models}


_REQUEST_ID = re.compile(rb'"request_id"\s*:\s*("(?:[^"\\]|\\.){0,128}"|-?\d{1,18})')


def _request_id_in(head: bytes) -> str | int | None:
    """The request_id of a binary frame whose header cannot be decoded (too long, cut short), when it is
    there to find: a client waiting on it gets its error instead of waiting forever."""
    found = _REQUEST_ID.search(head)
    if found is None:
        return None
    try:
        value = json.loads(found.group(1))
    except ValueError:
        return None
    return value if isinstance(value, (str, int)) else None


def encode_frame(header: dict[str, Any], payload: bytes) -> bytes:
    """A binary frame: 4-byte big-endian header length, JSON header, payload."""
    head = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack(">I", len(head)) + head + payload


def decode_frame(frame: bytes) -> tuple[dict[str, Any], bytes]:
    """Split a binary frame; ValueError if it is malformed."""
    if len(frame) < 4:
        raise ValueError("a binary frame starts with a 4-byte header length")
    (size,) = struct.unpack(">I", frame[:4])
    if size > MAX_FRAME_HEADER or 4 + size > len(frame):
        raise ValueError(f"binary frame header length {size} is invalid")
    try:
        header = json.loads(frame[4:4 + size].decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("binary frame header is nested too deeply") from None
    if not isinstance(header, dict):
        raise ValueError("a binary frame header is a JSON object")
    return header, frame[4 + size:]


@dataclass
class Outgoing:
    """A message to deliver: `to` a client id, or to every client when None."""

    to: str | None
    message: dict[str, Any] | None = None
    binary: bytes | None = None
    run_id: str | None = None      # the run a binary frame or `events` belong to (text messages carry it inside)
    events: EngineEvents | None = None    # node events not yet made messages (see `expand_node_events`)


class EngineEvents(list):
    """Consecutive node_started / node_cached / node_finished events of one run, as the engine's Event objects.

    The worker hands a run's node events to the shell this way (`ServerProtocol.node_events`; the
    shell appends to the newest group while it waits to be delivered), and they become messages only
    for their recipient, at delivery (`expand_node_events`): on the way no dict is built per event,
    and a compact-events client's rows are read straight from the events.
    """

    __slots__ = ()


MAX_RESUMED = 10_000        # remembered resumes (oldest forgotten first)
MAX_RESUME_HOPS = 16        # reconnects followed from a run's submitter to its current connection


@dataclass
class UserStorage:
    """One storage-limited user's bookkeeping. `lock` makes a quota check and the store it allows one step: two
    uploads at once each passed the check before either was written, and ended 1.7 MB past a 2 MiB limit.
    `budget` is the one OutputBudget the user's running runs share (made from what is stored when the first
    starts, dropped when the last ends; `runs` counts them): while runs are writing, what they may still write
    is not on disk yet, so uploads and submits meanwhile are checked against and take from it too."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    budget: OutputBudget | None = None
    runs: int = 0


@dataclass
class ClientState:
    """What the protocol knows about one connection: who it is and how it wants its messages."""

    client_id: str
    user: User | None = None          # None: the single-user server (no users file)
    greeted: bool = False
    batch: bool = False               # asked (in hello) for `batch` frames
    compact_events: bool = False      # ... and for `node_events` rows inside them


SETTLED_NODE_EVENTS = frozenset({"node_finished", "node_cached", "node_error"})


def without_settled_starts(messages: list[Any]) -> list[Any]:
    """The messages of one batch frame without the `node_started` of nodes that finish in the same frame.

    A batch client reads a node's `node_finished` (or `node_cached` / `node_error`) as "it ran", so a
    `node_started` followed by it in one frame says nothing the client acts on; fast nodes are most of a
    graph, so this removes about a third of a run's messages. Only dict messages are looked at (encoded
    strings and binary frames pass unchanged); the order of what is kept does not change.
    """
    settled = {(m.get("run_id"), m.get("node_id")) for m in messages
               if isinstance(m, dict) and m.get("type") in SETTLED_NODE_EVENTS}
    if not settled:
        return messages
    return [m for m in messages if not (isinstance(m, dict) and m.get("type") == "node_started"
                                        and (m.get("run_id"), m.get("node_id")) in settled)]


COMPACTED_NODE_EVENTS = frozenset({"node_started", "node_finished", "node_cached"})
def same_second(recorded_ns: int | None, mtime_ns: int) -> bool:
    """Whether a file's modification time is the one recorded (None: a run recorded none), to the whole second: a
    backup restored with tar keeps whole seconds only, and the nanoseconds compared exactly lost every run's link
    to its files (history showed none, delete_run left them, the quota counted them)."""
    return recorded_ns is None or (isinstance(recorded_ns, int) and recorded_ns // 10**9 == mtime_ns // 10**9)


# The stored error of a run queued before the server had users (no owner), failed when its turn comes.
OWNERLESS_RUN_ERROR = {"code": "ownerless_run", "node_id": None,
                       "message": "not run: it was queued before this server had users (it has no owner, so no "
                                  "user's limits, folders or rights apply); re-submit it as a user"}
MAX_STORED_IDS = 1000      # output node ids kept in a result over its user's storage limit (their notes)
MAX_STORED_ID_CHARS = 200  # ... each cut to this (a nested subgraph's inner id may be kilobytes long)
MAX_EVENT_ROWS = 2000      # rows in one `node_events` message (~100 KB of JSON for short node ids)
_EVENT_FIELDS: dict[type, tuple[str, ...]] = {}


def event_dict(event: Any) -> dict[str, Any]:
    """`event.to_dict()`, without dataclasses.asdict's deep copy for events that use the default form."""
    cls = type(event)
    if cls.to_dict is not Event.to_dict:
        return event.to_dict()
    names = _EVENT_FIELDS.get(cls)
    if names is None:
        names = _EVENT_FIELDS[cls] = tuple(f.name for f in dataclasses.fields(event))
    out = {"type": event.type}
    for name in names:
        out[name] = getattr(event, name)
    return out


def _row_form(cls: type) -> tuple[list[str], Callable[[Any], tuple]]:
    """(the `fields` of a `node_events` message of this event class, a function giving one event's row)."""
    fields = [f.name for f in dataclasses.fields(cls) if f.name != "run_id"]     # event_dict's order
    assert len(fields) >= 2, "attrgetter of one name gives a value, not a row"
    return fields, operator.attrgetter(*fields)


ROW_EVENTS: dict[type, tuple[list[str], Callable[[Any], tuple]]] = {
    cls: _row_form(cls) for cls in (NodeStarted, NodeCached, NodeFinished)}     # what EngineEvents hold


def expand_node_events(payloads: list[Any], batch: bool, compact: bool) -> list[Any]:
    """One recipient's payloads with each EngineEvents group replaced by the messages it stands for.

    For a batch client (`batch`), a group's `node_started` is left out when the node finishes, is
    cached or fails among these payloads (`without_settled_starts`, which the shell applies to the
    rest); with `compact`, each run of two or more events of one kind becomes one `node_events`
    message whose rows are read from the events (as `compacted` would write them), at most
    MAX_EVENT_ROWS rows each. Otherwise each event becomes its message (`event_dict`).
    Everything else passes unchanged, in order.
    """
    settled: set[tuple[str, Any]] = set()
    if batch:
        for payload in payloads:
            if type(payload) is EngineEvents:
                settled.update([(e.run_id, e.node_id) for e in payload if type(e) is not NodeStarted])
            elif isinstance(payload, dict) and payload.get("type") in SETTLED_NODE_EVENTS:
                settled.add((payload.get("run_id"), payload.get("node_id")))
    out: list[Any] = []
    for payload in payloads:
        if type(payload) is not EngineEvents:
            out.append(payload)
            continue
        events = payload
        if settled:
            events = [e for e in payload if type(e) is not NodeStarted or (e.run_id, e.node_id) not in settled]
        if not compact:
            out.extend(map(event_dict, events))
            continue
        for cls, same_kind in groupby(events, type):
            fields, row = ROW_EVENTS[cls]
            group = list(same_kind)
            for start in range(0, len(group), MAX_EVENT_ROWS):
                chunk = group[start:start + MAX_EVENT_ROWS]
                if len(chunk) == 1:
                    out.append(event_dict(chunk[0]))
                else:
                    out.append({"type": "node_events", "event": cls.type, "run_id": chunk[0].run_id,
                                "fields": fields, "rows": list(map(row, chunk))})
    return out


def compacted(messages: list[Any]) -> list[Any]:
    """A batch's messages with each run of consecutive node events written once as `node_events`.

    Consecutive dict messages of one type in COMPACTED_NODE_EVENTS, one `run_id` and the same keys
    become `{"type": "node_events", "event": type, "run_id": id, "fields": [...], "rows": [[...], ...]}`
    — the field names and the run id once, one row of values per event, in order; a client expands
    each row back into `{"type": event, "run_id": id, field: value, ...}` (docs/protocol.md,
    "Compact node events"). A run of one message, and everything else, passes unchanged.
    """
    out: list[Any] = []
    group: list[dict] = []
    group_key: tuple | None = None

    def flush() -> None:
        if len(group) == 1:
            out.append(group[0])
        elif group:
            fields = [k for k in group[0] if k not in ("type", "run_id")]
            out.append({"type": "node_events", "event": group[0]["type"], "run_id": group[0].get("run_id"),
                        "fields": fields, "rows": [[m[k] for k in fields] for m in group]})
        group.clear()

    for message in messages:
        key = None
        if isinstance(message, dict) and message.get("type") in COMPACTED_NODE_EVENTS:
            key = (message["type"], message.get("run_id"), tuple(message))
        if key is None or key != group_key or len(group) >= MAX_EVENT_ROWS:
            flush()
        group_key = key
        if key is None:
            out.append(message)
        else:
            group.append(message)
    flush()
    return out


def _error(to: str, code: str, message: str, request_id: RequestId = None, **details: Any) -> Outgoing:
    body: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if request_id is not None:
        body["request_id"] = request_id
    if details:
        body["details"] = details
    return Outgoing(to, body)


def interrupting_node(node: dict[str, Any] | None) -> dict[str, Any]:
    """What an `interrupting` reply says of the node the run is in: `node` ({node_id, type, checks}) and, for a node
    that has not checked for interrupts since it started, a `message` saying the run stops only when it is done
    (the editor showed "interrupting…" for as long as such a node ran, with no word why)."""
    if node is None:
        return {}
    if node.get("checks", True):
        return {"node": node}
    return {"node": node, "message": f"node {node['node_id']!r} ({node['type']}) does not check for interrupts: the "
                                     f"run stops when it finishes"}


def cancelled_by_admin(admin: str) -> dict[str, Any]:
    """A queued run's stored error once an admin cancelled it for its owner, as `server.interrupted_by_admin` is for
    an interrupt: the log said who, but the owner's history showed a cancel they never made."""
    return {"code": "cancelled_by_admin", "message": f"cancelled by admin {admin}", "cancelled_by": admin}


def _lenient_request_id(data: str) -> RequestId:
    """The request_id of a frame strict JSON refused (a 1e400, a NaN), read with Python's lenient parser, so the
    client waiting on that id gets its error; None when even that cannot read it. An integer too long for
    Python's int conversion limit (4,300 digits) is kept as its text here, so such a frame's id is found too."""
    try:
        raw = json.loads(data, parse_int=lambda digits: int(digits) if len(digits) <= 4000 else digits)
    except (ValueError, RecursionError):
        return None
    request_id = raw.get("request_id") if isinstance(raw, dict) else None
    return request_id if isinstance(request_id, (str, int)) and not isinstance(request_id, bool) else None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (strict JSON has no NaN or Infinity); send a number or null")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"the number {text[:40]} is too large for a 64-bit float (strict JSON has no Infinity); "
                         f"send a smaller number or null")
    return value


_MESSAGE_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
_SPACE = re.compile(r"[ \t\n\r]*")     # JSON whitespace, as the json module reads it


def decode_message(text: str) -> tuple[Any, dict[str, tuple[int, int]]]:
    """A text frame strictly decoded (no NaN/Infinity, no float overflow), and where each member's value lies.

    For a JSON object the members are decoded one by one by the json module's own scanner, so the
    value is what `json.loads` gives; the spans `{key: (start, end)}` let `submit` store the graph as
    the text the client sent instead of encoding the decoded graph again. Whatever this member walk
    does not take (not an object, invalid JSON) is decoded whole by the same decoder: the usual
    value or error, and no spans.
    """
    decoder, space = _MESSAGE_DECODER, _SPACE.match
    value: dict[str, Any] = {}
    spans: dict[str, tuple[int, int]] = {}
    try:
        i = space(text).end()
        if text[i:i + 1] != "{":
            raise ValueError("not an object")
        i = space(text, i + 1).end()
        if text[i:i + 1] == "}":
            i += 1
        else:
            while True:
                if text[i:i + 1] != '"':
                    raise ValueError("a key expected")
                key, i = json.decoder.scanstring(text, i + 1)
                i = space(text, i).end()
                if text[i:i + 1] != ":":
                    raise ValueError("':' expected")
                start = space(text, i + 1).end()
                value[key], i = decoder.raw_decode(text, start)
                spans[key] = (start, i)
                i = space(text, i).end()
                i, separator = i + 1, text[i:i + 1]
                if separator == "}":
                    break
                if separator != ",":
                    raise ValueError("',' or '}' expected")
                i = space(text, i).end()
        if space(text, i).end() != len(text):
            raise ValueError("extra data")
    except ValueError:       # including JSONDecodeError: the whole decoder says what is wrong (or decodes it)
        return decoder.decode(text), {}
    return value, spans


class ServerProtocol:
    """Message handling for the server (no sockets, no event loop; safe to call from worker threads).

    Args:
        session: the nodegraph Session (schemas, validation, cache, models).
        queue: the persistent RunQueue.
        files: the FileStore for uploads and outputs (per-user stores are derived from it).
        wake_worker: called after a run is queued (the shell wakes its worker).
        reserve_worker, hand_over: a submit calls `reserve_worker()` before it stores the run; True
            means the shell's worker is idle and now waits for this run, which is then stored as
            running (if no run is queued before it; one database write instead of a queue and a
            claim) and given to `hand_over(record)` — or `hand_over(None)` when it was queued,
            so the worker claims it as usual. `hand_over` is called whenever `reserve_worker`
            said True. The default never reserves.
        interrupt_run: called with a run id to interrupt it (the shell forwards to the session).
        running_node: called with a run id: the node it is running, `{node_id, type, checks}` (`checks`: false
            when the node has not checked for interrupts since it started), or None when unknown — said in the
            `interrupting` reply, so "interrupting…" on a node that never checks is explained.
        server_version: reported in `welcome`.
        token: the server's single token, if any (a `hello` that carries a token must match it).
        users: the UserBook of a multi-user server (None: one anonymous user who may do everything).
        templates: the TemplateLibrary behind `list_templates` / `get_template` (None: no templates).
    """

    def __init__(self, session: Any, queue: RunQueue, files: FileStore,
                 wake_worker: Callable[[], None] = lambda: None,
                 reserve_worker: Callable[[], bool] = lambda: False,
                 hand_over: Callable[[RunRecord | None], None] = lambda record: None,
                 interrupt_run: Callable[[str], bool] = lambda run_id: False,
                 running_node: Callable[[str], dict[str, Any] | None] = lambda run_id: None,
                 server_version: str = "", token: str | None = None, users: UserBook | None = None,
                 templates: TemplateLibrary | None = None):
        self.session = session
        self.templates = templates
        self.queue = queue
        # A failed node's traceback names the install's files and lines: clients get it only where the server
        # says so (a loopback server without users: the person at the keyboard); it is always in the server log.
        self.send_tracebacks = False
        self._path_pattern: re.Pattern | None = None      # `without_server_paths`, made on first use
        self._path_names: dict[str, str] = {}
        self.max_message_bytes: int | None = None     # the shell's frame limit, told in `welcome` (None: unknown)
        self.files = files
        self.wake_worker = wake_worker
        self.reserve_worker = reserve_worker
        self.hand_over = hand_over
        self.interrupt_run = interrupt_run
        self.running_node = running_node
        self.server_version = server_version
        self.token = token
        self.users = users
        self.clients: dict[str, ClientState] = {}
        self.run_owner: dict[str, str] = {}    # run id → the client that submitted it, until its last event
        self.interrupted_by: dict[str, str] = {}     # run id → the admin who interrupted another user's run
        self.watchers: dict[str, set[str]] = {}   # run id → other clients that asked for its progress (`watch`)
        # An earlier connection's client id → the connection that resumed it (`hello.resume`): its runs'
        # events go there (followed through several reconnects; a user's runs only to that user).
        self.resumed: dict[tuple[str | None, str], str] = {}     # keyed by (user name or None, earlier id)
        # Runs queued whose `submitted`/`requeued` reply the shell has not delivered yet: it holds
        # their events until then, so a client never hears of a run before its own reply.
        self.unannounced: set[str] = set()
        # run id → the Graph `submit` parsed and validated (overrides applied): the worker runs
        # that object, so a run is parsed, validated and compiled once, not twice.
        self.prepared: dict[str, Any] = {}
        self.keep_prepared = True      # the shell turns this off when another process runs the graphs
        # connections that went away → their user's name (None: no users), so a resume of another user's
        # connection is answered `resumed: null` (it never routed their runs, but said it had been taken)
        self.departed: dict[str, str | None] = {}
        self._storage: dict[str, UserStorage] = {}     # user name → their storage bookkeeping (limited users)
        self._storage_guard = threading.Lock()

    # --- connections ----------------------------------------------------------

    def connect(self, client_id: str, user: User | None = None) -> list[Outgoing]:
        """A client connected (after the handshake checks, which found `user`). Nothing is sent until its hello."""
        self.clients[client_id] = ClientState(client_id, user)
        return []

    def disconnect(self, client_id: str) -> None:
        """A client went away; its runs go on and stay in history."""
        gone = self.clients.pop(client_id, None)
        if gone is not None:
            self.departed[client_id] = gone.user.name if gone.user is not None else None
            while len(self.departed) > MAX_RESUMED:
                self.departed.pop(next(iter(self.departed)))
        for run_id, watching in list(self.watchers.items()):
            watching.discard(client_id)
            if not watching:
                self.watchers.pop(run_id, None)

    # --- who may see what -----------------------------------------------------

    def store_for(self, user: User | None) -> FileStore:
        """The file store a user reads and writes (the whole store for the single user and admins)."""
        return self.files if user is None or user.is_admin else self.files.for_user(user.name)

    def may_write_models(self, user_name: str | None) -> bool:
        """Whether runs of `user_name` may save into the model folders: without users, and for admins (a model
        folder is shared by every user: a plain user's save could replace what everyone loads). A user no
        longer in the users file may not, nor a run without a user on a server with users (`removed_user_error`)."""
        if self.users is None:
            return True
        if user_name is None:
            return False
        return any(user.name == user_name and user.is_admin for user in self.users.users())

    def output_budget(self, user_name: str | None) -> OutputBudget | None:
        """What a run of `user_name` may write into their output folder, or None: no limit (no users, an admin, a
        user without `max_bytes`, one no longer in the file). Their running runs share one budget (`UserStorage`):
        their `max_bytes` less what they stored when the first of them started. Give it back with
        `release_budget` when the run ends."""
        if self.users is None or user_name is None:
            return None
        user = self.users.get(user_name)
        if user is None or user.is_admin or user.max_bytes is None:
            return None
        state = self.storage_of(user_name)
        with state.lock:
            if state.budget is None:
                uploads, outputs, runs_stored = self._storage_used(user_name)
                left = 0 if uploads is None or outputs is None else user.max_bytes - uploads - outputs - runs_stored
                state.budget = OutputBudget(max(left, 0), user_name)
            state.runs += 1
            return state.budget

    def release_budget(self, budget: OutputBudget | None) -> None:
        """A run that had `budget` (from `output_budget`) ended: the last of its user's runs drops it, and the
        next check counts what is stored again."""
        if budget is None:
            return
        state = self.storage_of(budget.owner)
        with state.lock:
            state.runs -= 1
            if state.runs <= 0:
                state.budget, state.runs = None, 0

    def storage_of(self, user_name: str) -> UserStorage:
        with self._storage_guard:
            return self._storage.setdefault(user_name, UserStorage())

    @contextmanager
    def _storage_step(self, client: ClientState):
        """Hold the client's user's storage lock (a user with `max_bytes`) for a check and the store it allows;
        yields their UserStorage, or None where no byte limit applies."""
        user = client.user
        if user is None or user.is_admin or user.max_bytes is None:
            yield None
            return
        state = self.storage_of(user.name)
        with state.lock:
            yield state

    def run_time_limit(self, user_name: str | None) -> int | None:
        """Seconds a run of `user_name` may execute before the server stops it (their `max_run_seconds`), or
        None: no limit (no users, an admin, a user without one, one no longer in the file)."""
        if self.users is None or user_name is None:
            return None
        user = self.users.get(user_name)
        if user is None or user.is_admin or user.max_run_seconds is None:
            return None
        # past ~32 years: no limit (a timer cannot wait that long: OverflowError in its thread)
        return user.max_run_seconds if user.max_run_seconds < 10**9 else None

    def removed_user_error(self, user_name: str | None) -> dict[str, Any] | None:
        """The stored error of a run whose user left the users file after queueing it — it is not run (it would
        run with no limits: those are the file's) —, or None: the user is there, or there are no users.
        A run with no user on a server with users was queued before `--users` was turned on: it is not run either
        (it ran as no one, with an admin's rights: it overwrote a shared checkpoint, with no time limit)."""
        if self.users is None:
            return None
        if user_name is None:
            return dict(OWNERLESS_RUN_ERROR)
        if self.users.get(user_name) is not None:
            return None
        return {"code": "user_removed", "node_id": None,
                "message": f"not run: user {user_name!r} was removed from the server's users file after queueing it"}

    @staticmethod
    def removed_while_running_error(user_name: str, node_id: str | None) -> dict[str, Any]:
        """The stored error of a run stopped because its user left the users file while it ran."""
        where = f" while node {node_id!r} was running" if node_id else ""
        return {"code": "user_removed", "node_id": node_id,
                "message": f"stopped{where}: user {user_name!r} was removed from the server's users file"}

    @staticmethod
    def over_time_error(user_name: str, seconds: int, node_id: str | None, elapsed: float) -> dict[str, Any]:
        """The stored error of a run stopped at its user's `max_run_seconds`, `elapsed` seconds after it started
        (more than the limit when a step could not be interrupted sooner)."""
        where = f" while node {node_id!r} was running" if node_id else ""
        return {"code": "run_time_limit", "node_id": node_id, "seconds": round(elapsed, 1),
                "message": f"the run was stopped after {elapsed:.0f} s{where}: {user_name}'s runs may execute for at "
                           f"most {seconds} s (max_run_seconds in the users file). Make it shorter (fewer steps, "
                           f"a smaller image or batch) or ask the server's admin to raise the limit"}

    def _storage_used(self, user_name: str) -> tuple[int | None, int | None, int]:
        """(bytes of uploads, of output files — None past FileStore.MAX_COUNTED_FILES files —, of stored runs)."""
        store = self.files.for_user(user_name)
        return store.folder_bytes("input"), store.folder_bytes("output"), self.queue.stored_bytes(user_name)

    @staticmethod
    def result_within(result: dict[str, Any], budget: OutputBudget | None) -> dict[str, Any]:
        """A finished run's result as stored: whole when it fits what is left of its user's storage limit (taken
        from `budget`), else with each output's values replaced by a note (its files are kept): 40 ShowValue
        nodes of 1 MiB texts stored 42 MB a run, and every queued run added its own. Its size is counted only up
        to what is left (`json_text_size`): writing it first to measure it built 978 MiB of text for 1,000 node ids
        showing one cached 1 MiB text."""
        if budget is None:
            return result
        from .comfyui import json_text_size

        left = max(budget.left, 0)
        size = json_text_size(result, left)
        if size <= left and budget.spend(size) is None:
            return result
        measured = amount_text(size) if size <= left else f"over {amount_text(left)}"     # counted no further
        note = (f"not stored: this run's result ({measured} as text: its outputs and the ids "
                f"of the nodes it ran) would pass user {budget.owner}'s storage limit; show smaller values, or free "
                f"space (delete old runs)")
        outputs = {node_id[:MAX_STORED_ID_CHARS]: {"not_stored": note}
                   for node_id in list(result.get("outputs") or {})[:MAX_STORED_IDS]}
        # the executed / cached lists grow with the graph (a 10 KB graph of nested subgraphs ran 65,536 nodes with
        # ids of kilobytes each, 5.6 MB kept past a 1 MiB limit): kept as counts, the stored result stays small
        reduced = {**result, "outputs": outputs}
        for key in ("executed", "cached"):
            if isinstance(result.get(key), list):
                reduced[key], reduced[f"{key}_count"] = [], len(result[key])
        budget.take(len(json.dumps(reduced, default=str)))      # what is stored counts, small as it is
        return reduced

    def run_folders(self, user_name: str | None) -> tuple[Any, Any] | None:
        """(input dir, output dir) for runs of `user_name`, or None for the session's own folders."""
        if self.users is None or user_name is None:
            return None
        store = self.files.for_user(user_name)
        return store.folders["input"], store.folders["output"]

    @staticmethod
    def _sees(client: ClientState, record: RunRecord) -> bool:
        return client.user is None or client.user.is_admin or record.user == client.user.name

    def _visible_record(self, client: ClientState, run_id: str, graph: bool = False) -> RunRecord | None:
        """The run if this client may see it (its graph only with `graph=True`: it may be megabytes)."""
        record = self.queue.get(run_id, graph=graph)
        return record if record is not None and self._sees(client, record) else None

    def _audience(self, user_name: str | None) -> list[str]:
        """Client ids that may see a run of `user_name`: its own clients and admins (everyone without users)."""
        return [cid for cid, c in list(self.clients.items())
                if c.user is None or c.user.is_admin or c.user.name == user_name]

    # --- incoming -------------------------------------------------------------

    def receive(self, client_id: str, data: str | bytes) -> list[Outgoing]:
        """Handle one frame from a client; always returns replies, never raises for bad input.

        The same as `dispatch(parse(...))`; a shell that wants to choose where each message is
        handled (see `handled_on_loop`) calls the two steps itself.
        """
        parsed = self.parse(client_id, data)
        return parsed if isinstance(parsed, list) else self.dispatch(client_id, parsed)

    def parse(self, client_id: str, data: str | bytes) -> _Message | list[Outgoing]:
        """Step 1 of `receive`: a text frame decoded and checked into its message, or the replies
        that answer it (an error, or what a binary upload frame gets). Costs about what `json.loads`
        of the frame costs; never raises."""
        client = self.clients.get(client_id)
        if client is None:
            return []
        handle = self._receive_binary if isinstance(data, bytes) else self._parse_text
        return self._guarded(client_id, handle, client, data)

    def dispatch(self, client_id: str, message: _Message) -> list[Outgoing]:
        """Step 2 of `receive`: carry out a parsed message; never raises."""
        client = self.clients.get(client_id)
        if client is None:
            return []
        if not client.greeted and message.type != "hello":
            return [_error(client_id, "hello_required", "send a hello message first", message.request_id)]
        return self._guarded(client_id, getattr(self, f"_on_{message.type}"), client, message)

    # A message whose handling is short and bounded by its own size may be handled where it
    # arrives (an asyncio shell: on the event loop), without the two thread hand-offs that a
    # worker pool costs (docs/protocol.md, "What the websocket path costs"): a submit of a graph
    # in a frame of at most this many characters (parse + validate + one SQLite insert: about
    # 1 ms at 200 nodes), an interrupt, a cancel or a ping.
    ON_LOOP_MAX_CHARS = 64 * 1024
    _ON_LOOP_TYPES = frozenset({"submit", "interrupt", "cancel", "ping"})

    def handled_on_loop(self, client_id: str, data: str | bytes) -> bool:
        """Whether a frame is small enough to parse where it arrives (`parse` costs ~`json.loads`)."""
        return isinstance(data, str) and len(data) <= self.ON_LOOP_MAX_CHARS

    def dispatched_on_loop(self, client_id: str, message: _Message) -> bool:
        """Whether a parsed message may be carried out where it arrived: a quick type (see
        `ON_LOOP_MAX_CHARS`), from a client without a file quota (checking one walks its folder). A submit
        whose graph declares subgraphs goes to the pool: a 5 KB file of nested subgraphs expands to 100,000
        nodes, whose validation held the loop (every client's messages) for seconds."""
        if message.type not in self._ON_LOOP_TYPES:
            return False
        if isinstance(message, Submit) and isinstance(message.graph, dict) and message.graph.get("subgraphs"):
            return False
        client = self.clients.get(client_id)
        user = client.user if client is not None else None
        return user is None or user.is_admin or user.max_bytes is None

    @staticmethod
    def _guarded(client_id: str, handle: Callable[..., Any], *args: Any) -> Any:
        """`handle(*args)`, with a handler bug turned into an `internal_error` reply."""
        try:
            return handle(*args)
        except Exception as exc:  # noqa: BLE001 — a handler bug must answer, not close the connection
            log.exception("message handler failed for client %s", client_id)
            request_id = getattr(args[-1], "request_id", None) if args else None    # the client waits on it
            return [_error(client_id, "internal_error",
                           f"the server could not handle this message ({type(exc).__name__}); "
                           f"it was not carried out — the server log has the details", request_id)]

    def _parse_text(self, client: ClientState, data: str) -> _Message | list[Outgoing]:
        client_id = client.client_id
        try:
            raw, spans = decode_message(data)
        except (ValueError, RecursionError) as exc:
            text = "nested too deeply" if isinstance(exc, RecursionError) else json_value_problem(exc)
            return [_error(client_id, "invalid_json", f"the message is not strict JSON: {text}",
                           _lenient_request_id(data))]
        request_id = raw.get("request_id") if isinstance(raw, dict) else None
        request_id = request_id if isinstance(request_id, (str, int)) and not isinstance(request_id, bool) else None
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):     # its request_id echoed all the same:
            return [_error(client_id, "invalid_message", 'a message is a JSON object with a string "type"',
                           request_id)]      # a client matching replies by id waited for ever
        if raw["type"] not in MESSAGE_TYPES:
            CLIENT_LOG.log(log, logging.WARNING, "unknown_type", "client %s sent unknown message type %r", client_id,
                           raw["type"][:64])
            return [_error(client_id, "unknown_message_type",
                           f"unknown message type {raw['type'][:64]!r}; known types: {', '.join(MESSAGE_TYPES)}",
                           request_id)]
        if not members_within_storage_caps(data):     # one cap on everything that gets stored; the walk
            for name in ("graph", "overrides", "outputs"):    # only when the cheap bound cannot clear it
                problem = storable_problem(raw.get(name), name)
                if problem:
                    return [_error(client_id, "value_too_large", problem, request_id, field=name)]
        try:
            message = _CLIENT_MESSAGE.validate_python(raw)
        except ValidationError as exc:
            problems = [{"field": ".".join(str(p) for p in e["loc"][1:]), "message": e["msg"]}
                        for e in exc.errors()]
            text = "; ".join(f"{p['field'] or 'message'}: {p['message']}" for p in problems)
            return [_error(client_id, "invalid_message", f"{raw['type']}: {text}"[:2000], request_id,
                           problems=problems[:20])]
        if isinstance(message, Submit) and "graph" in spans:
            message._graph_text = data[slice(*spans["graph"])]
        return message

    def _reply(self, client: ClientState, message: _Message, body: dict[str, Any]) -> list[Outgoing]:
        if message.request_id is not None:
            body["request_id"] = message.request_id
        return [Outgoing(client.client_id, body)]

    def _token_matches(self, client: ClientState, token: str) -> bool:
        if self.users is not None:
            return client.user is not None and self.users.authenticate(token) == client.user
        return self.token is not None and hmac.compare_digest(token.encode("utf-8", "surrogatepass"),
                                                              self.token.encode())      # "\ud800" is no token

    def _on_hello(self, client: ClientState, message: Hello) -> list[Outgoing]:
        if message.protocol_version != PROTOCOL_VERSION:
            return [_error(client.client_id, "unsupported_protocol",
                           f"this server speaks protocol version {PROTOCOL_VERSION}, the client "
                           f"{message.protocol_version}; reload the editor or upgrade the client",
                           message.request_id, supported=[PROTOCOL_VERSION])]
        if message.token is not None and not self._token_matches(client, message.token):
            hint = ("this server has no token: leave `token` out" if self.token is None and self.users is None
                    else "send the token this connection was opened with (or none)")
            return [_error(client.client_id, "invalid_token", f"the hello's token is wrong; {hint}",
                           message.request_id)]
        client.greeted = True
        client.batch = message.batch
        client.compact_events = message.batch and message.compact_events
        user_name = client.user.name if client.user else None
        resumed = message.resume if message.resume not in (None, client.client_id) \
            and message.resume not in self.clients \
            and self.departed.get(message.resume, user_name) == user_name else None     # never another user's
        if resumed is not None:
            self.resumed[(client.user.name if client.user else None, resumed)] = client.client_id
            while len(self.resumed) > MAX_RESUMED:
                self.resumed.pop(next(iter(self.resumed)))
        warnings = self._plugin_warnings()
        return self._reply(client, message, {
            "type": "welcome", "protocol_version": PROTOCOL_VERSION, "server_version": self.server_version,
            "client_id": client.client_id, "resumed": resumed, "max_message_bytes": self.max_message_bytes,
            "schema_hash": self.session.registry.schema_hash(),
            "user": None if client.user is None else {"name": client.user.name, "role": client.user.role},
            "plugin_warnings": [w for w in warnings if w.get("level") != "info"]})

    def _plugin_warnings(self) -> list[dict[str, Any]]:
        getter = getattr(self.session, "plugin_warnings", None)
        warnings = getter() if callable(getter) else []
        return [{k: v for k, v in w.items() if k != "traceback"} for w in warnings]

    def _on_list_plugins(self, client: ClientState, message: ListPlugins) -> list[Outgoing]:
        report = self.session.plugin_report.to_dict(self.session.registry)
        for failure in report.get("failed", []):
            failure.pop("traceback", None)       # tracebacks stay in the server log
        return self._reply(client, message, {"type": "plugins", **report, "warnings": self._plugin_warnings()})

    def _on_list_nodes(self, client: ClientState, message: ListNodes) -> list[Outgoing]:
        registry = self.session.registry
        schema_hash = registry.schema_hash()
        body: dict[str, Any] = {"type": "nodes", "schema_hash": schema_hash}
        if message.known_hash != schema_hash:
            body["nodes"] = self.session.node_schemas()     # the registry's, with each node's ComfyUI class names
            body["types"] = registry.types.to_dict()
        return self._reply(client, message, body)

    def _quota_problem(self, client: ClientState, adding: int = 0, runs: bool = True,
                       adding_what: str = "this upload") -> str | None:
        """Why this client's user may not queue another run (`runs`) or store `adding` more bytes (`adding_what`:
        the upload, or a submit's graph — counted before it is stored, so no submit overshoots), or None."""
        user = client.user
        if user is None or user.is_admin:
            return None
        if runs and user.max_queued is not None and self.queue.active_count(user.name) >= user.max_queued:
            return self._active_limit_problem(user)
        if user.max_bytes is not None:
            running = self._storage.get(user.name)
            budget = running.budget if running is not None else None
            if budget is not None:          # their runs are writing: what they may still write is taken
                if adding >= budget.left:
                    more = f" ({adding_what}: {amount_text(adding)})" if adding else ""
                    return (f"user {user.name!r} has {amount_text(max(budget.left, 0))} of the "
                            f"{amount_text(user.max_bytes)} limit left while their running run(s) may still "
                            f"write into it{more}. Wait for the run to end, or free space: delete old runs with "
                            f"their files (the editor's history, or delete_run), or uploads and files you no "
                            f"longer need (list_files, then delete_file)")
                return None
            uploads, outputs, runs_stored = self._storage_used(user.name)
            if uploads is None or outputs is None:
                return (f"user {user.name!r} has more than {FileStore.MAX_COUNTED_FILES:,} files and folders in their "
                        f"{'upload' if uploads is None else 'output'} folder, more than the server counts for the "
                        f"{amount_text(user.max_bytes)} limit; delete old runs with their files (the editor's "
                        f"history, or delete_run) or files you no longer need (list_files, then delete_file)")
            if uploads + outputs + runs_stored + adding >= user.max_bytes:
                more = f" ({adding_what}: {amount_text(adding)})" if adding else ""
                return (f"user {user.name!r} stores {amount_text(uploads)} of uploads, {amount_text(outputs)} "
                        f"of output files and {amount_text(runs_stored)} of runs (graphs and results){more}; the "
                        f"limit is {amount_text(user.max_bytes)}. Free space: delete old runs with their files (the "
                        f"editor's history, or delete_run), or uploads and files you no longer need (list_files, then "
                        f"delete_file)")
        return None

    def _quota_error(self, client: ClientState, problem: str, request_id: RequestId) -> Outgoing:
        """`quota_exceeded` for a `_quota_problem`, with `details.limit`: which limit it is (`max_queued`, or
        `max_bytes`: a client offers its storage listing)."""
        queued = client.user is not None and problem == self._active_limit_problem(client.user)
        return _error(client.client_id, "quota_exceeded", problem, request_id,
                      limit="max_queued" if queued else "max_bytes")

    @staticmethod
    def _active_limit_problem(user: User) -> str:
        if user.max_queued == 0:
            return (f"user {user.name!r} is paused (max_queued 0): no run is taken or started until an admin "
                    f"raises it (`nodegraph users set {user.name} --max-queued N`)")
        return (f"user {user.name!r} already has {user.max_queued} run(s) queued or running (the limit); "
                f"wait for one to finish or cancel one")

    def held_users(self) -> frozenset[str]:
        """The users whose queued runs wait: paused ones (`max_queued` 0; admins have no limits)."""
        if self.users is None:
            return frozenset()
        return frozenset(user.name for user in self.users.users() if user.max_queued == 0 and not user.is_admin)

    @staticmethod
    def _active_limit(client: ClientState) -> int | None:
        """The user's `max_queued`, checked again where the run is stored (`RunQueue.enqueue(limit_active=)`)."""
        user = client.user
        return None if user is None or user.is_admin else user.max_queued

    def _on_submit(self, client: ClientState, message: Submit) -> list[Outgoing]:
        with self._storage_step(client):       # the check and the store, one step for the user (`UserStorage`)
            return self._submit(client, message)

    def _taken_while_running(self, user_name: str | None, size: int) -> None:
        """`size` bytes were stored for a user (negative: freed) while their runs write files: those runs'
        shared budget shrinks (grows) by as much. Called with the user's storage lock held."""
        state = self._storage.get(user_name) if user_name is not None else None
        if state is not None and state.budget is not None and size:
            state.budget.take(size)

    def _submit(self, client: ClientState, message: Submit) -> list[Outgoing]:
        quota = self._quota_problem(client, adding=self._submit_bytes(client, message), adding_what="this graph")
        if quota:
            return [self._quota_error(client, quota, message.request_id)]
        if message.front and client.user is not None and not client.user.is_admin:
            return [_error(client.client_id, "forbidden", "only an admin may put a run at the front of the queue; "
                           "submit without `front`", message.request_id)]
        try:
            graph = self.session.load(message.graph)
            if message.overrides:
                graph = self.session.with_overrides(graph, message.overrides)
            user_name = client.user.name if client.user is not None else None
            folders = self.run_folders(user_name)
            errors = self.session.validate(graph, message.outputs, model_writes=self.may_write_models(user_name),
                                           input_dir=folders[0] if folders else None)
        except GraphValidationError as exc:
            errors = exc.errors
        if errors:
            user_name = client.user.name if client.user is not None else None
            # "no embedding 'x' in (/srv/models/embeddings, …)" and details.searched: folders as clients name them
            shown = [self._without_paths_in(e.to_dict(), user_name) for e in errors[:200]]
            return [_error(client.client_id, "invalid_graph",
                           f"the graph is invalid ({len(errors)} error{'' if len(errors) == 1 else 's'}); nothing was queued",
                           message.request_id, errors=shown)]
        user_name = client.user.name if client.user is not None else None
        reserved = self.reserve_worker()        # the idle worker waits for this run: stored running, not queued
        record = None
        try:
            record = self.queue.enqueue(message.graph, client.client_id, message.outputs, message.overrides,
                                        front=message.front, user=user_name, checked=True,
                                        graph_text=message._graph_text, start=reserved,
                                        listing=self._listing_extras(graph),
                                        limit_active=self._active_limit(client))
            self._taken_while_running(user_name, self._submit_bytes(client, message))
            replies = self._submitted(client, message, record, graph, user_name)
        except ActiveLimitReached:     # parallel submits: the count at the top passed, the one at storing did not
            return [_error(client.client_id, "quota_exceeded", self._active_limit_problem(client.user),
                           message.request_id, limit="max_queued")]
        except sqlite3.Error as exc:   # the queue database refuses writes: a full disk, a read-only data folder
            log.warning("could not store a run: %s", exc)
            text = (f"the server could not store the run ({exc}; its disk may be full); nothing was queued — the "
                    f"server's admin can free space under its data folder")
            return [_error(client.client_id, "storage_error", text, message.request_id)]
        finally:
            if reserved:     # last, as wake_worker: once the worker runs, this thread competes with it for the GIL
                self.hand_over(record if record is not None and record.status == "running" else None)
        if record.status == "queued":
            self.wake_worker()
        return replies

    @staticmethod
    def _submit_bytes(client: ClientState, message: Submit) -> int:
        """What storing a submit adds to its user's stored bytes (0 where no byte limit applies: not measured)."""
        user = client.user
        if user is None or user.is_admin or user.max_bytes is None:
            return 0
        graph = message._graph_text if message._graph_text is not None else json.dumps(message.graph, default=str)
        return len(graph) + (len(json.dumps(message.overrides, default=str)) if message.overrides else 0)

    def _submitted(self, client: ClientState, message: Submit, record: RunRecord, graph: Any,
                   user_name: str | None) -> list[Outgoing]:
        """Bookkeeping of a stored run (before the worker may start it) and the replies to its submit."""
        if self.keep_prepared:
            self.prepared[record.id] = graph
            while len(self.prepared) > self.MAX_PREPARED:     # a long queue: the oldest re-parse when they run
                try:
                    self.prepared.pop(next(iter(self.prepared)), None)
                except (RuntimeError, StopIteration):        # the worker took one meanwhile
                    break
        self.run_owner[record.id] = client.client_id
        self.unannounced.add(record.id)
        position = self.queue.position(record.id) if record.status == "queued" else 0     # running: none ahead
        return self._reply(client, message, {"type": "submitted", "run_id": record.id, "position": position,
                                             **self.wait_counts(user_name, record.id)}) + \
            self.queue_changed(record.id, record.status, user_name)

    MAX_PREPARED = 256

    def _on_queue_status(self, client: ClientState, message: QueueStatus) -> list[Outgoing]:
        running = [r for r in self.queue.running_runs(describe=self._describe) if self._sees(client, r)]
        mine = None if client.user is None or client.user.is_admin else client.user.name
        return self._reply(client, message, {
            "type": "queue", "running": running[-1].summary() if running else None,
            "running_all": [r.summary() for r in running],
            "pending": [r.summary() for r in self.queue.pending(user=mine, describe=self._describe)],
            "pending_total": self.queue.pending_count(),
            **self.wait_counts(client.user.name if client.user is not None else None)})

    def wait_counts(self, user_name: str | None, run_id: str | None = None) -> dict[str, int]:
        """Counts that explain a wait without revealing another user's runs: `running_total` (runs running, any
        user's) and `ahead_total` (other users' queued runs that start before `run_id`, or before this user's next
        queued run; 0 when none is queued). A plain user behind another's run saw `running: None`, position 0."""
        running_total = len(self.queue.running_runs())
        order = self.queue.queued_in_turn()
        own = {r.id for r in self.queue.pending(user=user_name)} if user_name is not None else set(order)
        mine = [index for index, queued in enumerate(order) if queued == run_id or (run_id is None and queued in own)]
        ahead = sum(1 for queued in order[:mine[0]] if queued not in own) if mine else 0
        return {"running_total": running_total, "ahead_total": ahead}

    def _on_cancel(self, client: ClientState, message: Cancel) -> list[Outgoing]:
        record = self._visible_record(client, message.run_id)
        by_admin = self._admin_acting_for_another(client, record.user) if record is not None else None
        # an admin's cancel is stored with the run (as an admin's interrupt is): its owner learns who, not only the log
        error = cancelled_by_admin(by_admin) if by_admin is not None else None
        if record is None or not self.queue.cancel(message.run_id, error=error):
            return [self._not_queued(client, message.run_id, message.request_id, "cancel")]
        self.prepared.pop(message.run_id, None)
        if by_admin is not None:
            log.info("admin %s cancelled queued run %s of user %s", by_admin, message.run_id, record.user or "-")
        return self._reply(client, message, {"type": "cancelled", "run_id": message.run_id}) + \
            self.queue_changed(message.run_id, "cancelled", record.user)

    def _not_queued(self, client: ClientState, run_id: str, request_id: RequestId, verb: str) -> Outgoing:
        record = self._visible_record(client, run_id)
        if record is None:      # another user's run is "not found", not "forbidden": ids reveal nothing
            return _error(client.client_id, "not_found", f"no run {run_id[:64]!r}", request_id)
        hint = " (use interrupt for a running run)" if record.status == "running" and verb == "cancel" else ""
        state = {"running": "running", "queued": "queued"}.get(record.status, f"finished ({record.status})")
        return _error(client.client_id, "invalid_state",
                      f"cannot {verb} run {run_id!r}: it is {state}{hint}", request_id, status=record.status)

    def _on_interrupt(self, client: ClientState, message: Interrupt) -> list[Outgoing]:
        running = self.queue.get(message.run_id, graph=False)    # by id: with Ray workers several runs are running
        if running is None or running.status != "running" or not self._sees(client, running):
            return [self._not_queued(client, message.run_id, message.request_id, "interrupt")]
        by_admin = self._admin_acting_for_another(client, running.user)
        if by_admin is not None:         # said in the log and in the run's stored error (`Server._finish`)
            self.interrupted_by[message.run_id] = by_admin
        if not self.interrupt_run(message.run_id):
            self.interrupted_by.pop(message.run_id, None)
            return [_error(client.client_id, "invalid_state", "the run is finishing", message.request_id,
                           status="finishing")]
        if by_admin is not None:
            log.info("admin %s interrupted run %s of user %s", by_admin, message.run_id, running.user or "-")
        return self._reply(client, message, {"type": "interrupting", "run_id": message.run_id,
                                             **interrupting_node(self.running_node(message.run_id))})

    @staticmethod
    def _admin_acting_for_another(client: ClientState, owner: str | None) -> str | None:
        """The admin's name when `client` is an admin acting on a run that is not their own (for the audit lines
        of the log), else None."""
        user = client.user
        return user.name if user is not None and user.is_admin and owner != user.name else None

    MAX_WATCHERS = 64       # clients watching one run

    def _on_watch(self, client: ClientState, message: Watch) -> list[Outgoing]:
        record = self._visible_record(client, message.run_id)
        if record is None:      # another user's run is "not found": ids reveal nothing
            return [_error(client.client_id, "not_found", f"no run {message.run_id[:64]!r}", message.request_id)]
        watching = record.status in ("queued", "running")
        if watching and client.client_id != self._recipient(record.id):
            watchers = self.watchers.setdefault(record.id, set())
            if len(watchers) >= self.MAX_WATCHERS and client.client_id not in watchers:
                return [_error(client.client_id, "quota_exceeded", f"{self.MAX_WATCHERS} clients already watch "
                                                                     f"this run", message.request_id,
                               limit="watchers")]
            watchers.add(client.client_id)
        # an ended run: nothing more will come (get_outputs has its results)
        return self._reply(client, message, {"type": "watching", "run_id": record.id, "status": record.status,
                                             "watching": watching})

    def _on_requeue(self, client: ClientState, message: Requeue) -> list[Outgoing]:
        record = self._visible_record(client, message.run_id)
        if record is not None:
            quota = self._quota_problem(client)
            if quota:
                return [self._quota_error(client, quota, message.request_id)]
        try:
            requeued = record is not None and self.queue.requeue(message.run_id, self._active_limit(client))
        except ActiveLimitReached:
            return [_error(client.client_id, "quota_exceeded", self._active_limit_problem(client.user),
                           message.request_id, limit="max_queued")]
        if not requeued:
            return [self._not_queued(client, message.run_id, message.request_id, "requeue")]
        self.run_owner[message.run_id] = client.client_id
        self.unannounced.add(message.run_id)
        self.wake_worker()
        return self._reply(client, message, {"type": "requeued", "run_id": message.run_id,
                                             "position": self.queue.position(message.run_id)}) + \
            self.queue_changed(message.run_id, "queued", record.user)

    def _on_history(self, client: ClientState, message: History) -> list[Outgoing]:
        mine = None if client.user is None or client.user.is_admin else client.user.name
        runs, total = self.queue.history(message.offset, message.limit, user=mine, statuses=message.status,
                                         describe=self._describe)
        return self._reply(client, message, {"type": "history", "runs": [self.history_entry(client, r) for r in runs],
                                             "total": total, "offset": message.offset})

    def history_entry(self, client: ClientState, record: RunRecord) -> dict[str, Any]:
        """A run summary plus what a history list shows: duration, seed, thumbnail and file count."""
        entry = record.summary()
        entry["duration"] = (record.finished_at - record.started_at
                             if record.finished_at is not None and record.started_at is not None else None)
        seeds = (record.listing or {}).get("seeds")
        if not isinstance(seeds, dict):     # a record read with its graph from a row stored before listings
            seeds = self._stored_seeds(record)
        entry["seeds"] = seeds
        entry["seed"] = next(iter(seeds.values()), None)
        files = [f for f in self._files_as_seen_by(client, record, (record.result or {}).get("files", []))
                 if not f.get("missing")]
        entry["files"] = len(files)
        entry["thumbnail"] = next((f.get("file_id") for f in files if f.get("kind") == "image"), None)
        return entry

    MAX_SEEDS_LISTED = 8

    def _listing_extras(self, graph: Graph) -> dict[str, Any]:
        """What listings show of a run besides its title, stored with it at submit (the graph is not read again).

        `graph` is the validated Graph, overrides applied."""
        return {"seeds": self._seeds(graph)}

    def _describe(self, record: RunRecord) -> dict[str, Any]:
        """`_listing_extras` of a run stored before listings were (`RunQueue.history(describe=)`)."""
        return {"seeds": self._stored_seeds(record)}

    def _stored_seeds(self, record: RunRecord) -> dict[str, Any]:
        """The seeds of a stored run's graph dict (rows stored before listings); {} when it no longer loads."""
        try:
            graph = self.session.load(record.graph)
            return self._seeds(graph.with_overrides(record.overrides) if record.overrides else graph)
        except Exception:  # noqa: BLE001 - a listing never fails over an old row's graph
            return {}

    def _seeds(self, graph: Graph) -> dict[str, Any]:
        """`{"node.input": value}` of the seed inputs (declared `seed=True`) of the nodes a run executes, those
        of sampling nodes first.

        Read from the effective graph (docs/graph-format.md): muted nodes and what depends on them are not
        there, a bypassed node has no seed of its own, and a subgraph's inner seeds appear under their
        expanded ids (`outer/inner.seed`). A seed linked from a primitive (an `Int` node's `value`) is
        listed with that primitive's value."""
        registry = self.session.registry
        nodes = effective_graph(graph, registry).graph.nodes
        found: list[tuple[bool, str, GraphNode, tuple[str, ...]]] = []     # (not sampling, id, node, seed inputs)
        for node_id, node in nodes.items():
            cls = registry.nodes.get(node.type)
            if cls is not None and cls.spec.seed_inputs:
                found.append((cls.spec.category != "sampling", node_id, node, cls.spec.seed_inputs))
        # samplers' seeds first: `seed` in history is the first, and the one that reproduces a run is the
        # sampler's (img2img's source render has a seed of its own, listed after); a stable sort keeps file order
        found.sort(key=lambda item: item[0])
        seeds: dict[str, Any] = {}
        for _, node_id, node, names in found:
            spec_inputs = registry.nodes[node.type].spec.inputs
            for name in names:
                value = node.inputs.get(name, spec_inputs[name].default)
                if isinstance(value, Link):
                    source = nodes.get(value.node)
                    value = source.inputs.get(value.output) if source is not None else None
                if isinstance(value, int) and not isinstance(value, bool):
                    seeds[f"{node_id}.{name}"] = value
                if len(seeds) >= self.MAX_SEEDS_LISTED:
                    return seeds
        return seeds

    def _on_get_run(self, client: ClientState, message: GetRun) -> list[Outgoing]:
        record = self._visible_record(client, message.run_id, graph=True)
        if record is None:
            return [_error(client.client_id, "not_found", f"no run {message.run_id[:64]!r}", message.request_id)]
        return self._reply(client, message, {"type": "run", **self.history_entry(client, record),
                                             "graph": record.graph, "overrides": record.overrides,
                                             "outputs": record.outputs})

    def _on_list_templates(self, client: ClientState, message: ListTemplates) -> list[Outgoing]:
        templates = self.templates.list() if self.templates is not None else []
        return self._reply(client, message, {"type": "templates", "templates": templates})

    # the largest imported graph sent back when the shell did not tell its frame limit (`max_message_bytes`): the
    # server's default one (server.DEFAULT_MAX_MESSAGE)
    IMPORTED_GRAPH_DEFAULT_LIMIT = 16 * 2**20

    def _on_import_graph(self, client: ClientState, message: ImportGraph) -> list[Outgoing]:
        from .graph import import_foreign, parse_graph

        user_name = client.user.name if client.user is not None else None
        try:
            graph = parse_graph(import_foreign(message.data, self.session.output_names, self.session.widget_names,
                                               self.session.comfyui_classes(), self.session.model_paths.list)).to_dict()
        except GraphValidationError as exc:
            return [_error(client.client_id, "invalid_graph", f"the file cannot be imported: {exc.errors[0].message}",
                           message.request_id,
                           errors=[self._without_paths_in(e.to_dict(), user_name) for e in exc.errors[:200]])]
        if too_large := self._imported_graph_too_large(graph):
            return [_error(client.client_id, "invalid_graph", f"the file cannot be imported: {too_large}",
                           message.request_id)]
        return self._reply(client, message, {"type": "imported_graph", "graph": graph,
                                             "errors": self._import_errors(graph, user_name)})

    def _imported_graph_too_large(self, graph: dict[str, Any]) -> str | None:
        """Why the imported `graph` is not sent back, or None: past the server's frame limit its `submit` would be
        refused anyway, and a 53 KB workflow became a 1 GB reply that held every client's messages while it was
        encoded. Counted up to the limit only (`json_text_size`), never written whole."""
        from .comfyui import json_text_size

        limit = self.max_message_bytes or self.IMPORTED_GRAPH_DEFAULT_LIMIT
        if json_text_size(graph, limit) <= limit:
            return None
        return (f"the graph it makes is over {amount_text(limit)} as JSON, this server's message limit "
                f"(--max-message-bytes), so it could not be submitted either; import a smaller workflow (subgraphs "
                f"used fewer times, shorter texts)")

    def _import_errors(self, graph: dict[str, Any], user_name: str | None) -> list[dict[str, Any]]:
        """The validation of an imported graph as `submit` would check it for this user — their own input folder
        (the shared one let alice probe bob's uploads and listed every user's folder, and called her own upload
        missing) and their model-write rule — with the server's folders named as clients name them."""
        folders = self.run_folders(user_name)
        errors = self.session.validate(graph, model_writes=self.may_write_models(user_name),
                                       input_dir=folders[0] if folders else None)
        return [self._without_paths_in(e.to_dict(), user_name) for e in errors[:200]]

    def _on_get_template(self, client: ClientState, message: GetTemplate) -> list[Outgoing]:
        if self.templates is None:
            return [_error(client.client_id, "not_found", "this server has no templates", message.request_id)]
        try:
            graph = self.templates.read(message.template_id)
        except TemplateError as exc:
            return [_error(client.client_id, exc.code, exc.message, message.request_id)]
        return self._reply(client, message, {"type": "template", "template_id": message.template_id,
                                             "graph": graph})

    def _files_as_seen_by(self, client: ClientState, record: RunRecord, files: list[dict]) -> list[dict]:
        """A run's output files as `client` sees them: ids are relative to the run owner's folders (an admin sees
        them under the owner's subfolder), and a file that is no longer the one the run wrote is marked
        `missing: true` (`_still_written`)."""
        store = self._store_of(record)
        admin_view = record.user is not None and client.user is not None and client.user.is_admin
        out = []
        for item in files:
            if not self._still_written(store, item):
                item = {**item, "missing": True}
            if admin_view:
                kind, _, rel = str(item.get("file_id", "")).partition("/")
                item = {**item, "file_id": f"{kind}/{record.user}/{rel}"}
            out.append(item)
        return out

    def _store_of(self, record: RunRecord) -> FileStore:
        """The file store a run's file ids are relative to: its owner's."""
        return self.files if record.user is None else self.files.for_user(record.user)

    @staticmethod
    def _still_written(store: FileStore, item: dict[str, Any]) -> bool:
        """Whether the output file a run reported is still the file it wrote: there, and (for runs recorded with
        them) of the size its run saw and its modification time to the second (`same_second`). A deleted file's
        name is taken by the next run's file of that prefix: its history showed the new image and `delete_run`
        deleted the new run's file."""
        kind, _, rel = str(item.get("file_id", "")).partition("/")
        if kind != "output" or not rel:
            return False
        try:
            info = os.stat(store.folders["output"] / rel)
        except (OSError, ValueError):
            return False
        if not stat.S_ISREG(info.st_mode):
            return False
        return same_second(item.get("mtime_ns"), info.st_mtime_ns) and item.get("bytes") in (None, info.st_size)

    def _on_get_outputs(self, client: ClientState, message: GetOutputs) -> list[Outgoing]:
        record = self._visible_record(client, message.run_id)
        if record is None:
            return [_error(client.client_id, "not_found", f"no run {message.run_id[:64]!r}", message.request_id)]
        result = record.result or {}
        files = self._files_as_seen_by(client, record, result.get("files", []))
        body = {"type": "outputs", "run_id": record.id, "status": record.status,
                "outputs": result.get("outputs", {}), "files": files, "error": record.error}
        if result.get("drawn"):     # what RandomInt-like nodes gave: the graph with them pinned repeats the run
            body["drawn"] = result["drawn"]
        if result.get("worker"):    # a remote run (--ray): the worker that ran it (docs/distributed.md)
            body["worker"] = result["worker"]
        return self._reply(client, message, body)

    def _on_delete_file(self, client: ClientState, message: DeleteFile) -> list[Outgoing]:
        """One of the client's own files (uploads, outputs; an admin or the single user: any file)."""
        try:
            store = self.store_for(client.user)
            store.resolve(message.file_id)
            kind, _, rel = message.file_id.partition("/")
            size = os.lstat(store.folders[kind] / rel).st_size      # the entry deleted (a link: the link)
            owner = self._file_owner(client, rel)
            with self.storage_of(owner).lock if owner is not None else nullcontext():
                store.delete(message.file_id)
                self._taken_while_running(owner, -size)      # freed: the owner's running runs may write as much
        except (FileAccessError, OSError) as exc:
            text = str(exc) if isinstance(exc, FileAccessError) else f"cannot delete it ({exc.strerror or exc})"
            return [_error(client.client_id, "not_found", text, message.request_id)]
        return self._reply(client, message, {"type": "file_deleted", "file_id": message.file_id})

    def _file_owner(self, client: ClientState, rel: str) -> str | None:
        """The user whose storage a file (`rel`: its id without the folder) counts in: the client's own, or for an
        admin the user whose folder it is in (`output/<name>/...`); None without users."""
        user = client.user
        if user is None:
            return None
        if not user.is_admin:
            return user.name
        first = rel.split("/", 1)[0]
        return first if "/" in rel and self.users is not None and self.users.get(first) is not None else None

    def _on_list_files(self, client: ClientState, message: ListFiles) -> list[Outgoing]:
        """A page of the client's own files (an admin or the single user: every file) and the storage they use."""
        page, total, complete = self.store_for(client.user).list_files(message.folder, message.offset, message.limit)
        return self._reply(client, message, {"type": "files", "files": page, "total": total, "complete": complete,
                                             "offset": message.offset, "usage": self._usage(client)})

    def _usage(self, client: ClientState) -> dict[str, Any] | None:
        """What a user with `max_bytes` stores against it (bytes; a folder past FileStore.MAX_COUNTED_FILES files
        is None), or None: no storage limit applies (no users, an admin, a user without one)."""
        user = client.user
        if user is None or user.is_admin or user.max_bytes is None:
            return None
        uploads, outputs, runs_stored = self._storage_used(user.name)
        return {"uploads": uploads, "outputs": outputs, "runs": runs_stored, "max_bytes": user.max_bytes}

    def _on_delete_run(self, client: ClientState, message: DeleteRun) -> list[Outgoing]:
        record = self._visible_record(client, message.run_id)
        if record is None:
            return [_error(client.client_id, "not_found", f"no run {message.run_id[:64]!r}", message.request_id)]
        if record.status in ("queued", "running"):
            return [_error(client.client_id, "invalid_state",
                           f"run {record.id} is {record.status}; cancel or interrupt it first", message.request_id)]
        if not self.queue.delete(record.id):      # re-queued (or deleted) meanwhile: its files are not the past's
            now = self._visible_record(client, message.run_id)
            state = now.status if now is not None else "deleted"
            return [_error(client.client_id, "invalid_state", f"run {record.id} is {state} now (it changed while "
                                                              f"this was asked); nothing was deleted",
                           message.request_id, status=state)]
        store = self._store_of(record)
        deleted = kept = freed = 0
        for item in (record.result or {}).get("files", []):
            file_id = str(item.get("file_id", ""))
            try:
                path = store.resolve(file_id)
            except FileAccessError:
                continue
            if not (path.is_file() and file_id.startswith("output/")):
                continue
            if not self._still_written(store, item):       # its name holds a later run's file now: not this run's
                continue
            if self.queue.file_shared(file_id, record.id, record.user):   # a cached rerun shows the same file
                kept += 1
                continue
            freed += path.stat().st_size
            path.unlink(missing_ok=True)
            deleted += 1
        if record.user is not None and freed:
            with self.storage_of(record.user).lock:
                self._taken_while_running(record.user, -freed)     # freed: running runs may write as much more
        by_admin = self._admin_acting_for_another(client, record.user)
        if by_admin is not None:
            log.info("admin %s deleted run %s of user %s (%d file(s) deleted, %d kept)", by_admin, record.id,
                     record.user or "-", deleted, kept)
        return self._reply(client, message, {"type": "run_deleted", "run_id": record.id, "files_deleted": deleted,
                                             "files_kept": kept})

    def _on_list_models(self, client: ClientState, message: ListModels) -> list[Outgoing]:
        from .model_paths import STANDARD_FOLDERS

        known = sorted(set(STANDARD_FOLDERS) | set(self.session.registry.extensions.get("model_folders", {})))
        if message.folder is not None and message.folder not in known:
            return [_error(client.client_id, "unknown_model_folder",
                           f"{message.folder[:64]!r} is not a model folder; ask for one of: {', '.join(known)} "
                           f"(model folders are named, never given as paths)", message.request_id, folders=known)]
        folders = [message.folder] if message.folder else known
        listing = {folder: self.session.model_paths.list(folder)[0] for folder in folders}
        return self._reply(client, message, {"type": "models", "folders": listing})

    def _on_free_memory(self, client: ClientState, message: FreeMemory) -> list[Outgoing]:
        if client.user is not None and not client.user.is_admin:
            return [_error(client.client_id, "forbidden", "only an admin may free the server's memory",
                           message.request_id)]
        self.session.free_memory()
        log.info("%s freed the server's memory", self._actor(client))
        return self._reply(client, message, {"type": "memory_freed", "memory": self.session.memory.stats()})

    @staticmethod
    def _actor(client: ClientState) -> str:
        """Who did an admin action, for the log: "admin NAME", or "client ID" on a server without users."""
        return f"admin {client.user.name}" if client.user is not None else f"client {client.client_id}"

    def _on_set_cache_policy(self, client: ClientState, message: SetCachePolicy) -> list[Outgoing]:
        if client.user is not None and not client.user.is_admin:
            return [_error(client.client_id, "forbidden", "only an admin may change the cache policy",
                           message.request_id)]
        assert message.policy in POLICIES
        from .memory import memory_reserve, system_memory

        memory = system_memory()
        usable = memory[1] - memory_reserve(memory[1]) if memory is not None else None
        if message.budget_bytes is not None and usable is not None and message.budget_bytes > usable:   # kept for
            # a later "lru" whatever the policy now
            # a budget past the RAM never evicts: one admin's 10^26 kept 6.5 GB of outputs (a hostile pass)
            return [_error(client.client_id, "invalid_value",
                           f"budget_bytes {message.budget_bytes} is more than this machine's memory less the reserve "
                           f"runs keep free ({usable} bytes), so the cache would never give any back; give at most "
                           f"that (a quarter of the memory is usual)", message.request_id, field="budget_bytes")]
        self.session.set_cache_policy(message.policy, message.budget_bytes)
        log.info("%s set the cache policy to %s (budget %s bytes)", self._actor(client), message.policy,
                 message.budget_bytes)
        return self._reply(client, message, {"type": "cache_policy", **self.session.cache.info()})

    def _on_ping(self, client: ClientState, message: Ping) -> list[Outgoing]:
        return self._reply(client, message, {"type": "pong"})

    def _receive_binary(self, client: ClientState, data: bytes) -> list[Outgoing]:
        try:
            raw_header, payload = decode_frame(data)
        except (ValueError, UnicodeDecodeError) as exc:     # answered with its request_id when one can be read
            return [_error(client.client_id, "invalid_frame",
                           f"binary frame: {exc}; a frame is a 4-byte big-endian header length (at most "
                           f"{MAX_FRAME_HEADER} bytes), the JSON header {{type: 'upload', name, kind, request_id}}, "
                           f"then the file's bytes", _request_id_in(data[4:4 + MAX_FRAME_HEADER * 4]))]
        request_id = raw_header.get("request_id") if isinstance(raw_header.get("request_id"), (str, int)) else None
        if not client.greeted:
            return [_error(client.client_id, "hello_required", "send a hello message first", request_id)]
        try:
            header = UploadHeader.model_validate(raw_header)
        except ValidationError as exc:       # each problem with its field, as text messages say them
            problems = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
            text = "; ".join(f"{p['field'] or 'header'}: {p['message']}" for p in problems)
            return [_error(client.client_id, "invalid_message",
                           f"binary frames carry uploads: header {{type: 'upload', name, kind}}; {text}"[:1000],
                           request_id, problems=problems[:20])]
        user = client.user
        written: list[int] = []

        def within_quota(size: int) -> str | None:
            """Asked when new bytes are about to be written (not for the very bytes of a stored file): the
            upload's own size counts (one upload could overshoot the limit by a whole frame and lock the user
            out); the run count does not: a file is not a run."""
            problem = self._quota_problem(client, adding=size, runs=False) if user is not None else None
            if problem is None:
                written.append(size)
            return problem

        try:     # into the uploader's own input folder, where their runs read (an admin's too: `run_folders`)
            own = self.files if user is None else self.files.for_user(user.name)
            with self._storage_step(client):        # the check and the write, one step for the user
                file_id = own.save_upload(header.name, payload, header.kind, check=within_quota,
                                          subfolder=header.subfolder)
                self._taken_while_running(user.name if user is not None else None, sum(written))
        except StorageQuotaError as exc:
            return [_error(client.client_id, "quota_exceeded", str(exc), request_id, limit="max_bytes")]
        except FileAccessError as exc:
            return [_error(client.client_id, "invalid_upload", str(exc), request_id)]
        except OSError as exc:          # UploadStorageError, or another write failure: the reply the client awaits
            log.warning("could not store an upload: %s", exc)
            text = str(exc) if isinstance(exc, UploadStorageError) else \
                f"the server could not store the upload ({type(exc).__name__}); nothing was saved"
            return [_error(client.client_id, "storage_error", text, request_id)]
        name = file_id.split("/", 1)[1]
        if user is not None and user.is_admin:       # an admin's ids are the whole store's (`_files_as_seen_by`)
            file_id = f"input/{user.name}/{name}"
        body = {"type": "uploaded", "file_id": file_id, "name": name, "kind": header.kind}
        if request_id is not None:
            body["request_id"] = request_id
        return [Outgoing(client.client_id, body)]

    # --- from the worker ----------------------------------------------------

    def queue_changed(self, run_id: str, status: str, user_name: str | None = None) -> list[Outgoing]:
        """One run changed status: told to the clients who may see the run (small: never the whole queue)."""
        body = {"type": "queue_changed", "run_id": run_id, "status": status, "pending": self.queue.pending_count()}
        if self.users is None:
            return [Outgoing(None, body)]
        return [Outgoing(client_id, body) for client_id in self._audience(user_name)]

    def _owner_user(self, run_id: str) -> str | None:
        if self.users is None:
            return None
        record = self.queue.get(run_id, graph=False)
        return record.user if record else None

    def stored_error(self, error: dict[str, Any] | None, user: str | None = None) -> dict[str, Any] | None:
        """A run's error as it is stored (and so as history, get_run and get_outputs show it): without the
        traceback, and with the server's folders named as clients name them, unless this server sends
        tracebacks (`send_tracebacks`)."""
        if error is None or self.send_tracebacks:
            return error
        return self._without_paths_in({k: v for k, v in error.items() if k != "traceback"}, user)

    def _without_paths_in(self, value: Any, user: str | None) -> Any:
        """`value` (an error dict, its details) with `without_server_paths` applied to every string in it."""
        if isinstance(value, str):
            return self.without_server_paths(value, user)
        if isinstance(value, dict):
            return {key: self._without_paths_in(item, user) for key, item in value.items()}
        if isinstance(value, list):
            return [self._without_paths_in(item, user) for item in value]
        return value

    def without_server_paths(self, text: str, user: str | None = None) -> str:
        """`text` with the server's input, output, model and install folders written as clients know them (`input/…`,
        `output/…`, `models/…`, `<nodegraph>/…`): a library's error inside a node ("Error opening 'in/carol/evil.wav'")
        told users where the server keeps files, relative or absolute as it was started. With the run's `user`,
        their own folder is written as their file ids name it (`input/bad.wav`, not `input/carol/bad.wav`)."""
        if self._path_pattern is None:
            from pathlib import Path

            from .model_paths import PROJECT_ROOT

            names = {}
            model_paths = self.session.model_paths
            # the model folders too (a loader's "…/models/checkpoints/evil.ckpt: this is a pickle checkpoint"), each
            # before the install folder that may hold it: the longer path is matched first
            folders = [(self.session.input_dir, "input"), (self.session.output_dir, "output")]
            folders += [(root, "models") for root in model_paths.roots]
            folders += [(folder, f"models/{name}") for name, dirs in model_paths.extra.items() for folder in dirs]
            for folder, name in (*folders, (PROJECT_ROOT, "<nodegraph>")):
                folder = Path(folder)
                for form in (str(folder), str(folder.resolve()), os.path.relpath(folder.resolve())):
                    form = form.rstrip("/")
                    if form and not form.startswith("."):        # never ".", "..", "../x"
                        names.setdefault(form, name)
            # a path ("/srv/in", "data/in") alone or before "/…"; a bare name ("in") only before a path that goes
            # on to a file or folder ("in/carol/x.wav", "in/x.png"; not "in the", "channels in/out mismatch")
            paths = sorted((f for f in names if "/" in f), key=len, reverse=True)
            bare = sorted((f for f in names if "/" not in f), key=len, reverse=True)
            # not inside a longer name ("/srv/inx", "/srv/in.bak"); a full stop ending the sentence is no name
            alternatives = [f"(?:{'|'.join(map(re.escape, paths))})(?![\\w-]|\\.\\w)"] if paths else []
            alternatives += [f"(?:{'|'.join(map(re.escape, bare))})(?=/[^\\s/'\"]+[/.])"] if bare else []
            self._path_names = names
            # "file:///srv/in/x" and "./in/x" name the folder too
            self._path_pattern = re.compile(r"(?:(?<=file://)|(?<=\./)|(?<![\w.~/-]))(" + "|".join(alternatives) + ")")
        text = self._path_pattern.sub(lambda m: self._path_names[m.group(1)], text)
        if user:
            text = re.sub(rf"(?<![\w.~/-])(input|output)/{re.escape(user)}/", r"\1/", text)
        return text

    def _recipient(self, run_id: str, stored: bool = True) -> str | None:
        """The connected client a run's events go to: its submitter, or the connection that resumed it (`stored`:
        look the submitter up in the queue when the run has no live owner, e.g. after a restart)."""
        owner = self.run_owner.get(run_id)
        if owner is None and stored:
            record = self.queue.get(run_id, graph=False)
            owner = record.client_id if record else None
        if owner is None or not self.resumed or owner in self.clients:
            return owner if owner in self.clients else None
        user = self._owner_user(run_id)      # a resume by another user's connection is never followed
        for _ in range(MAX_RESUME_HOPS):
            owner = self.resumed.get((user, owner))
            if owner is None:
                return None
            if owner in self.clients:
                return owner
        return None

    def run_event(self, run_id: str, event: dict[str, Any], preview: bytes | None = None,
                  preview_format: str = "jpeg") -> list[Outgoing]:
        """Route one engine event (as a dict) to the client that submitted the run (or resumed its connection)."""
        owner = self._recipient(run_id)
        if not self.send_tracebacks and ("traceback" in event or event.get("type") in ("run_failed", "node_warning")):
            event = {k: v for k, v in event.items() if k != "traceback"}
            if isinstance(event.get("message"), str):
                event["message"] = self.without_server_paths(event["message"], self._owner_user(run_id))
        out: list[Outgoing] = []
        if owner in self.clients:
            out.append(Outgoing(owner, event))
            if preview is not None:
                out.append(Outgoing(owner, binary=encode_frame(
                    {"type": "preview", "run_id": run_id, "node_id": event.get("node_id"),
                     "format": preview_format, "step": event.get("value")}, preview), run_id=run_id))
        out += [Outgoing(client_id, event) for client_id in self._watchers(run_id, owner)]
        if event.get("type") in ("run_finished", "run_failed", "run_interrupted"):
            self.run_owner.pop(run_id, None)     # its last event: later lookups read the stored record
            self.watchers.pop(run_id, None)
        if event.get("type") in ("run_started", "run_finished", "run_failed", "run_interrupted"):
            status = {"run_started": "running", "run_finished": "succeeded", "run_failed": "failed",
                      "run_interrupted": "interrupted"}[event["type"]]
            out += self.queue_changed(run_id, status, self._owner_user(run_id))
        return out

    def node_events(self, run_id: str, events: list[Any]) -> list[Outgoing]:
        """Route node_started / node_cached / node_finished Event objects (not dicts) of one run to its submitter.

        What `run_event` does for those events, once for a group of them: the shell keeps adding the
        run's next node events to the returned group until it delivers it (see EngineEvents).
        """
        owner = self._recipient(run_id)
        recipients = ([owner] if owner is not None else []) + self._watchers(run_id, owner)
        group = EngineEvents(events)      # one list for all: the shell appends the run's next events to it
        return [Outgoing(client_id, run_id=run_id, events=group) for client_id in recipients]

    def _watchers(self, run_id: str, owner: str | None) -> list[str]:
        """The connected clients watching a run (`watch`), its submitter left out."""
        watching = self.watchers.get(run_id)
        if not watching:
            return []
        return [client_id for client_id in watching if client_id != owner and client_id in self.clients]

    def output_image(self, run_id: str, node_id: str, file_id: str, data: bytes, image_format: str,
                     index: int) -> list[Outgoing]:
        """An output image of a finished node, as a binary frame to the run's owner."""
        owner = self._recipient(run_id, stored=False)
        if owner is None:
            return []
        return [Outgoing(owner, binary=encode_frame(
            {"type": "image", "run_id": run_id, "node_id": node_id, "file_id": file_id,
             "format": image_format, "index": index}, data), run_id=run_id)]

    def output_file(self, run_id: str, item: dict[str, Any]) -> list[Outgoing]:
        """An output file that is not sent inline (video, audio, mesh, ...): its id, kind and mime, to the owner."""
        owner = self._recipient(run_id, stored=False)
        if owner is None:
            return []
        return [Outgoing(owner, {"type": "output_file", "run_id": run_id, **item})]
