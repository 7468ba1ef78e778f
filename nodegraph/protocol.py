"""The server's message logic, with no I/O: messages in, messages out.

The websocket shell (server.py) feeds `ServerProtocol` what clients send and
what the worker reports, and delivers the `Outgoing` messages it returns. All
of the protocol — validation of messages, replies, routing of run events to
the client that submitted the run, queue broadcasts, binary frame layout — is
here and is tested by feeding messages, without sockets. docs/protocol.md
documents every message; `message_schemas()` gives their JSON Schemas.

Text frames are JSON objects with a `type` (and an optional `request_id` that
the reply echoes). Binary frames are `[uint32 big-endian header length][UTF-8
JSON header][payload]`; `encode_frame` / `decode_frame` implement it.
"""

from __future__ import annotations

import json
import logging
import struct
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .cache import POLICIES
from .errors import GraphValidationError
from .files import FileAccessError, FileStore
from .run_queue import RunQueue

PROTOCOL_VERSION = 1
MAX_FRAME_HEADER = 64 * 1024
log = logging.getLogger("nodegraph.protocol")

RequestId = Union[str, int, None]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: RequestId = Field(None, description="echoed in the reply")


class Hello(_Message):
    """First message of a connection: the client's protocol version."""
    type: Literal["hello"]
    protocol_version: int = Field(ge=1)
    token: str | None = Field(None, description="alternative to the handshake token; must match if given")


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
    front: bool = False


class QueueStatus(_Message):
    """The running run and the queued ones."""
    type: Literal["queue_status"]


class Cancel(_Message):
    """Cancel a queued run."""
    type: Literal["cancel"]
    run_id: str


class Interrupt(_Message):
    """Interrupt the running run (by id)."""
    type: Literal["interrupt"]
    run_id: str


class Requeue(_Message):
    """Queue a failed, interrupted or cancelled run again."""
    type: Literal["requeue"]
    run_id: str


class History(_Message):
    """Finished runs, newest first, paged."""
    type: Literal["history"]
    offset: int = Field(0, ge=0)
    limit: int = Field(50, ge=1, le=200)


class GetOutputs(_Message):
    """A run's outputs and output files."""
    type: Literal["get_outputs"]
    run_id: str


class ListModels(_Message):
    """Model files per folder."""
    type: Literal["list_models"]
    folder: str | None = None


class FreeMemory(_Message):
    """Drop cached outputs and offload models."""
    type: Literal["free_memory"]


class SetCachePolicy(_Message):
    """Switch the output cache policy."""
    type: Literal["set_cache_policy"]
    policy: Literal["lru", "all", "none"]
    budget_bytes: int | None = Field(None, ge=0)


class Ping(_Message):
    """Liveness check."""
    type: Literal["ping"]


class UploadHeader(_Message):
    """Header of a binary upload frame; the payload is the image file's bytes."""
    type: Literal["upload"]
    name: str = Field(min_length=1, max_length=255)
    kind: Literal["image", "mask"] = "image"


ClientMessage = Annotated[
    Union[Hello, ListNodes, Submit, QueueStatus, Cancel, Interrupt, Requeue, History, GetOutputs,
          ListModels, FreeMemory, SetCachePolicy, Ping],
    Field(discriminator="type"),
]
_CLIENT_MESSAGE = TypeAdapter(ClientMessage)
MESSAGE_TYPES = ("hello", "list_nodes", "submit", "queue_status", "cancel", "interrupt", "requeue", "history",
                 "get_outputs", "list_models", "free_memory", "set_cache_policy", "ping")


def message_schemas() -> dict[str, Any]:
    """JSON Schema of every client message (text) and of the upload frame header."""
    models = [Hello, ListNodes, Submit, QueueStatus, Cancel, Interrupt, Requeue, History, GetOutputs,
              ListModels, FreeMemory, SetCachePolicy, Ping, UploadHeader]
    return {m.model_fields["type"].annotation.__args__[0]: m.model_json_schema() for m in models}


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
    header = json.loads(frame[4:4 + size].decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("a binary frame header is a JSON object")
    return header, frame[4 + size:]


@dataclass
class Outgoing:
    """A message to deliver: `to` a client id, or to every client when None."""

    to: str | None
    message: dict[str, Any] | None = None
    binary: bytes | None = None


@dataclass
class ClientState:
    """What the protocol knows about one connection."""

    client_id: str
    greeted: bool = False
    runs: set[str] = field(default_factory=set)


def _error(to: str, code: str, message: str, request_id: RequestId = None, **details: Any) -> Outgoing:
    body: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if request_id is not None:
        body["request_id"] = request_id
    if details:
        body["details"] = details
    return Outgoing(to, body)


class ServerProtocol:
    """Message handling for the server (no sockets, no threads, no event loop).

    Args:
        session: the nodegraph Session (schemas, validation, cache, models).
        queue: the persistent RunQueue.
        files: the FileStore for uploads and outputs.
        wake_worker: called after a run is queued (the shell wakes its worker).
        interrupt_run: called with a run id to interrupt it (the shell forwards to the session).
        server_version: reported in `welcome`.
    """

    def __init__(self, session: Any, queue: RunQueue, files: FileStore,
                 wake_worker: Callable[[], None] = lambda: None,
                 interrupt_run: Callable[[str], bool] = lambda run_id: False,
                 server_version: str = ""):
        self.session = session
        self.queue = queue
        self.files = files
        self.wake_worker = wake_worker
        self.interrupt_run = interrupt_run
        self.server_version = server_version
        self.clients: dict[str, ClientState] = {}
        self.run_owner: dict[str, str] = {}

    # --- connections ----------------------------------------------------------

    def connect(self, client_id: str) -> list[Outgoing]:
        """A client connected (after the handshake checks). Nothing is sent until its hello."""
        self.clients[client_id] = ClientState(client_id)
        return []

    def disconnect(self, client_id: str) -> None:
        """A client went away; its runs go on and stay in history."""
        self.clients.pop(client_id, None)

    # --- incoming -------------------------------------------------------------

    def receive(self, client_id: str, data: str | bytes) -> list[Outgoing]:
        """Handle one frame from a client; always returns replies, never raises for bad input."""
        client = self.clients.get(client_id)
        if client is None:
            return []
        if isinstance(data, bytes):
            return self._receive_binary(client, data)
        try:
            raw = json.loads(data)
        except (json.JSONDecodeError, RecursionError) as exc:
            return [_error(client_id, "invalid_json", f"the message is not JSON: {exc}")]
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            return [_error(client_id, "invalid_message", 'a message is a JSON object with a string "type"')]
        request_id = raw.get("request_id") if isinstance(raw.get("request_id"), (str, int)) else None
        if raw["type"] not in MESSAGE_TYPES:
            log.warning("client %s sent unknown message type %r", client_id, raw["type"])
            return [_error(client_id, "unknown_message_type",
                           f"unknown message type {raw['type']!r}; known types: {', '.join(MESSAGE_TYPES)}",
                           request_id)]
        try:
            message = _CLIENT_MESSAGE.validate_python(raw)
        except ValidationError as exc:
            problems = [{"field": ".".join(str(p) for p in e["loc"][1:]), "message": e["msg"]}
                        for e in exc.errors()]
            text = "; ".join(f"{p['field'] or 'message'}: {p['message']}" for p in problems)
            return [_error(client_id, "invalid_message", f"{raw['type']}: {text}", request_id, problems=problems)]
        if not client.greeted and message.type != "hello":
            return [_error(client_id, "hello_required", "send a hello message first", request_id)]
        handler = getattr(self, f"_on_{message.type}")
        return handler(client, message)

    def _reply(self, client: ClientState, message: _Message, body: dict[str, Any]) -> list[Outgoing]:
        if message.request_id is not None:
            body["request_id"] = message.request_id
        return [Outgoing(client.client_id, body)]

    def _on_hello(self, client: ClientState, message: Hello) -> list[Outgoing]:
        if message.protocol_version != PROTOCOL_VERSION:
            return [_error(client.client_id, "unsupported_protocol",
                           f"this server speaks protocol version {PROTOCOL_VERSION}, the client "
                           f"{message.protocol_version}; reload the editor or upgrade the client",
                           message.request_id, supported=[PROTOCOL_VERSION])]
        client.greeted = True
        return self._reply(client, message, {
            "type": "welcome", "protocol_version": PROTOCOL_VERSION, "server_version": self.server_version,
            "client_id": client.client_id, "schema_hash": self.session.registry.schema_hash()})

    def _on_list_nodes(self, client: ClientState, message: ListNodes) -> list[Outgoing]:
        registry = self.session.registry
        schema_hash = registry.schema_hash()
        body: dict[str, Any] = {"type": "nodes", "schema_hash": schema_hash}
        if message.known_hash != schema_hash:
            body["nodes"] = registry.node_schemas()
            body["types"] = registry.types.to_dict()
        return self._reply(client, message, body)

    def _on_submit(self, client: ClientState, message: Submit) -> list[Outgoing]:
        try:
            graph = self.session.load(message.graph)
            if message.overrides:
                graph = graph.with_overrides(message.overrides)
            errors = self.session.validate(graph, message.outputs)
        except GraphValidationError as exc:
            errors = exc.errors
        if errors:
            return [_error(client.client_id, "invalid_graph",
                           f"the graph is invalid ({len(errors)} error(s)); nothing was queued",
                           message.request_id, errors=[e.to_dict() for e in errors])]
        record = self.queue.enqueue(message.graph, client.client_id, message.outputs, message.overrides,
                                    front=message.front)
        client.runs.add(record.id)
        self.run_owner[record.id] = client.client_id
        self.wake_worker()
        position = self.queue.position(record.id)
        return self._reply(client, message, {"type": "submitted", "run_id": record.id, "position": position}) + [
            self.queue_changed(record.id, "queued")]

    def _on_queue_status(self, client: ClientState, message: QueueStatus) -> list[Outgoing]:
        running = self.queue.running()
        return self._reply(client, message, {
            "type": "queue", "running": running.summary() if running else None,
            "pending": [r.summary() for r in self.queue.pending()]})

    def _on_cancel(self, client: ClientState, message: Cancel) -> list[Outgoing]:
        if not self.queue.cancel(message.run_id):
            return [self._not_queued(client, message.run_id, message.request_id, "cancel")]
        return self._reply(client, message, {"type": "cancelled", "run_id": message.run_id}) + [
            self.queue_changed(message.run_id, "cancelled")]

    def _not_queued(self, client: ClientState, run_id: str, request_id: RequestId, verb: str) -> Outgoing:
        record = self.queue.get(run_id)
        if record is None:
            return _error(client.client_id, "not_found", f"no run {run_id!r}", request_id)
        hint = " (use interrupt for a running run)" if record.status == "running" and verb == "cancel" else ""
        return _error(client.client_id, "invalid_state",
                      f"cannot {verb} run {run_id!r}: it is {record.status}{hint}", request_id, status=record.status)

    def _on_interrupt(self, client: ClientState, message: Interrupt) -> list[Outgoing]:
        running = self.queue.running()
        if running is None or running.id != message.run_id or not self.interrupt_run(message.run_id):
            return [self._not_queued(client, message.run_id, message.request_id, "interrupt")
                    if running is None or running.id != message.run_id
                    else _error(client.client_id, "invalid_state", "the run is finishing", message.request_id)]
        return self._reply(client, message, {"type": "interrupting", "run_id": message.run_id})

    def _on_requeue(self, client: ClientState, message: Requeue) -> list[Outgoing]:
        if not self.queue.requeue(message.run_id):
            return [self._not_queued(client, message.run_id, message.request_id, "requeue")]
        client.runs.add(message.run_id)
        self.run_owner[message.run_id] = client.client_id
        self.wake_worker()
        return self._reply(client, message, {"type": "requeued", "run_id": message.run_id,
                                             "position": self.queue.position(message.run_id)}) + [
            self.queue_changed(message.run_id, "queued")]

    def _on_history(self, client: ClientState, message: History) -> list[Outgoing]:
        runs, total = self.queue.history(message.offset, message.limit)
        return self._reply(client, message, {"type": "history", "runs": [r.summary() for r in runs],
                                             "total": total, "offset": message.offset})

    def _on_get_outputs(self, client: ClientState, message: GetOutputs) -> list[Outgoing]:
        record = self.queue.get(message.run_id)
        if record is None:
            return [_error(client.client_id, "not_found", f"no run {message.run_id!r}", message.request_id)]
        result = record.result or {}
        return self._reply(client, message, {"type": "outputs", "run_id": record.id, "status": record.status,
                                             "outputs": result.get("outputs", {}), "files": result.get("files", []),
                                             "error": record.error})

    def _on_list_models(self, client: ClientState, message: ListModels) -> list[Outgoing]:
        from .model_paths import STANDARD_FOLDERS

        folders = [message.folder] if message.folder else sorted(
            set(STANDARD_FOLDERS) | set(self.session.registry.extensions.get("model_folders", {})))
        listing = {folder: self.session.model_paths.list(folder)[0] for folder in folders}
        return self._reply(client, message, {"type": "models", "folders": listing})

    def _on_free_memory(self, client: ClientState, message: FreeMemory) -> list[Outgoing]:
        self.session.free_memory()
        return self._reply(client, message, {"type": "memory_freed", "memory": self.session.memory.stats()})

    def _on_set_cache_policy(self, client: ClientState, message: SetCachePolicy) -> list[Outgoing]:
        assert message.policy in POLICIES
        self.session.set_cache_policy(message.policy, message.budget_bytes)
        return self._reply(client, message, {"type": "cache_policy", **self.session.cache.info()})

    def _on_ping(self, client: ClientState, message: Ping) -> list[Outgoing]:
        return self._reply(client, message, {"type": "pong"})

    def _receive_binary(self, client: ClientState, data: bytes) -> list[Outgoing]:
        try:
            raw_header, payload = decode_frame(data)
        except (ValueError, UnicodeDecodeError) as exc:
            return [_error(client.client_id, "invalid_frame", f"binary frame: {exc}")]
        request_id = raw_header.get("request_id") if isinstance(raw_header.get("request_id"), (str, int)) else None
        if not client.greeted:
            return [_error(client.client_id, "hello_required", "send a hello message first", request_id)]
        try:
            header = UploadHeader.model_validate(raw_header)
        except ValidationError as exc:
            return [_error(client.client_id, "invalid_message",
                           "binary frames carry uploads: header {type: 'upload', name, kind}; "
                           + "; ".join(e["msg"] for e in exc.errors()), request_id)]
        try:
            file_id = self.files.save_upload(header.name, payload, header.kind)
        except FileAccessError as exc:
            return [_error(client.client_id, "invalid_upload", str(exc), request_id)]
        body = {"type": "uploaded", "file_id": file_id, "name": file_id.split("/", 1)[1], "kind": header.kind}
        if request_id is not None:
            body["request_id"] = request_id
        return [Outgoing(client.client_id, body)]

    # --- from the worker ----------------------------------------------------

    def queue_changed(self, run_id: str, status: str) -> Outgoing:
        """Broadcast: one run changed status (small: never the whole queue)."""
        return Outgoing(None, {"type": "queue_changed", "run_id": run_id, "status": status,
                               "pending": self.queue.pending_count()})

    def run_event(self, run_id: str, event: dict[str, Any], preview: bytes | None = None,
                  preview_format: str = "jpeg") -> list[Outgoing]:
        """Route one engine event (as a dict) to the client that submitted the run."""
        owner = self.run_owner.get(run_id)
        if owner is None:
            record = self.queue.get(run_id)
            owner = record.client_id if record else None
        out: list[Outgoing] = []
        if owner in self.clients:
            out.append(Outgoing(owner, event))
            if preview is not None:
                out.append(Outgoing(owner, binary=encode_frame(
                    {"type": "preview", "run_id": run_id, "node_id": event.get("node_id"),
                     "format": preview_format, "step": event.get("value")}, preview)))
        if event.get("type") in ("run_started", "run_finished", "run_failed", "run_interrupted"):
            status = {"run_started": "running", "run_finished": "succeeded", "run_failed": "failed",
                      "run_interrupted": "interrupted"}[event["type"]]
            out.append(self.queue_changed(run_id, status))
        return out

    def output_image(self, run_id: str, node_id: str, file_id: str, data: bytes, image_format: str,
                     index: int) -> list[Outgoing]:
        """An output image of a finished node, as a binary frame to the run's owner."""
        owner = self.run_owner.get(run_id)
        if owner not in self.clients:
            return []
        return [Outgoing(owner, binary=encode_frame(
            {"type": "image", "run_id": run_id, "node_id": node_id, "file_id": file_id,
             "format": image_format, "index": index}, data))]
