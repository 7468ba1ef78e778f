"""The websocket + HTTP server: a thin asyncio shell around protocol.py.

    nodegraph serve [--host 127.0.0.1] [--port 8188] [--data-dir DIR] [--token T] [--allow-origin URL]
    python server.py ...   (the same)

Pieces:
- `Server.handler`: one coroutine per websocket connection (`async for`), feeding
  frames to `ServerProtocol.receive`; what it returns goes into each recipient's
  outbox, drained by a sender task per connection, so a slow client never
  delays the others (one that stops reading is disconnected). Clean-up in `finally`.
- `Server.process_request`: the HTTP side of the same port — token and Origin
  checks for the websocket handshake, `/files/<id>` (by id only, see files.py),
  and the editor's static files from `web/dist`.
- The worker: one thread that takes queued runs in order and runs them on the
  Session; engine events are handed to the event loop with
  `call_soon_threadsafe`, so queue operations never wait for a running graph.
- `Server.close()` is safe to call twice.

Security defaults: loopback only; any other address requires a token (printed
at start when not given); browsers' `Origin` must be allowed; message size capped.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import io
import ipaddress
import json
import logging
import mimetypes
import os
import secrets
import sys
import threading
import uuid
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from . import __version__
from .errors import GraphValidationError, NodeExecutionError, RunInterrupted
from .events import RunFailed
from .files import FileAccessError, FileStore
from .protocol import Outgoing, ServerProtocol, message_schemas
from .results import collect_files, jsonable
from .run_queue import RunQueue

log = logging.getLogger("nodegraph.server")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
WEB_DIST = PROJECT_ROOT / "web" / "dist"
DEFAULT_PORT = 8188
DEFAULT_MAX_MESSAGE = 16 * 1024 * 1024


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def encode_image(image: Any, image_format: str = "JPEG", quality: int = 85) -> bytes | None:
    """PIL image, or (H, W, 3) / (1, H, W, 3) float tensor in [0, 1] → encoded bytes; None if not an image."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        shape = getattr(image, "shape", None)
        if shape is None:
            return None
        array = image.detach().float().cpu().numpy() if hasattr(image, "detach") else image
        if array.ndim == 4:
            array = array[0]
        if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
            return None
        import numpy as np

        image = Image.fromarray((np.clip(array, 0, 1) * 255).round().astype("uint8").squeeze())
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=image_format, quality=quality)
    return buffer.getvalue()


class Server:
    """Session + queue + protocol + websocket connections + one worker thread.

    Args:
        session: a nodegraph Session (its output/input dirs are used for files).
        data_dir: where runs.sqlite lives.
        host, port: where to listen (port 0 picks a free one; see `port` after `start`).
        token: required at the handshake; generated when listening beyond loopback and not given.
        allowed_origins: extra allowed browser origins (the server's own are always allowed).
        max_message_bytes: largest frame accepted (uploads included).
        web_dist: the editor's build folder.
        history_limit: finished runs kept in history (older ones are pruned after each run).
    """

    def __init__(self, session: Any, data_dir: str | os.PathLike = ".nodegraph", host: str = "127.0.0.1",
                 port: int = DEFAULT_PORT, token: str | None = None, allowed_origins: list[str] | None = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE, web_dist: Path = WEB_DIST,
                 history_limit: int = 1000):
        self.session = session
        self.host, self.port = host, port
        if token is None and not is_loopback(host):
            token = secrets.token_urlsafe(24)
            self.generated_token = True
        else:
            self.generated_token = False
        self.token = token
        self.extra_origins = set(allowed_origins or [])
        self.max_message_bytes = max_message_bytes
        self.web_dist = web_dist
        self.history_limit = history_limit
        self.queue = RunQueue(Path(data_dir) / "runs.sqlite")
        self.files = FileStore(session.input_dir, session.output_dir)
        self.protocol = ServerProtocol(session, self.queue, self.files, wake_worker=self._wake,
                                       interrupt_run=self._interrupt_run, server_version=__version__)
        self.connections: dict[str, tuple[ServerConnection, asyncio.Queue]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._wake_event = threading.Event()
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None
        self._current_run: str | None = None
        self._terminal_event: Any = None
        self._closed = False

    # --- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Recover the queue, start listening and start the worker."""
        self._loop = asyncio.get_running_loop()
        recovered = self.queue.recover()
        self.queue.prune(keep=self.history_limit)
        if recovered:
            log.warning("marked %d run(s) interrupted by the last shutdown: %s", len(recovered), recovered)
        self._server = await serve(self.handler, self.host, self.port, process_request=self.process_request,
                                   max_size=self.max_message_bytes, origins=None, server_header=None)
        self.port = self._server.sockets[0].getsockname()[1]
        self._worker = threading.Thread(target=self._work, name="nodegraph-worker", daemon=True)
        self._worker.start()
        self._wake()

    async def close(self) -> None:
        """Stop accepting, stop the worker (interrupting its run), close the queue; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self.session.interrupt()
        self._wake_event.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._worker is not None:
            await asyncio.to_thread(self._worker.join, 10)
        self.queue.close()

    @property
    def own_origins(self) -> set[str]:
        hosts = {self.host}
        if is_loopback(self.host) or self.host in ("0.0.0.0", "::"):
            hosts |= {"localhost", "127.0.0.1", "[::1]"}
        return {f"http://{h}:{self.port}" for h in hosts} | {f"https://{h}:{self.port}" for h in hosts}

    # --- HTTP side ------------------------------------------------------------

    def _token_ok(self, request: Request) -> bool:
        if self.token is None:
            return True
        query = parse_qs(urlsplit(request.path).query)
        given = (query.get("token") or [None])[0]
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            given = auth[len("Bearer "):]
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Handshake checks for /ws; files and static assets for everything else."""
        path = urlsplit(request.path).path
        if not self._token_ok(request):
            return connection.respond(HTTPStatus.UNAUTHORIZED, "a valid token is required (?token=...)\n")
        if path == "/ws":
            origin = request.headers.get("Origin")
            if origin is not None and origin not in self.own_origins | self.extra_origins:
                log.warning("refused websocket from origin %r", origin)
                return connection.respond(HTTPStatus.FORBIDDEN, f"origin {origin} is not allowed\n")
            return None
        if path.startswith("/files/"):
            if "%" in path:  # ids never need encoding; refusing it closes off %2e%2e-style traversal
                return connection.respond(HTTPStatus.NOT_FOUND, "file ids are not percent-encoded\n")
            try:
                file_path = self.files.resolve(path[len("/files/"):])
            except FileAccessError as exc:
                return connection.respond(HTTPStatus.NOT_FOUND, f"{exc}\n")
            return self._file_response(file_path)
        return self._static(connection, path)

    def _file_response(self, file_path: Path, cache: str = "no-cache") -> Response:
        body = file_path.read_bytes()
        kind = mimetypes.guess_type(file_path.name)[0] or "application/octet-stream"
        headers = Headers([("Content-Type", kind), ("Content-Length", str(len(body))),
                           ("Cache-Control", cache), ("X-Content-Type-Options", "nosniff")])
        return Response(200, "OK", headers, body)

    def _static(self, connection: ServerConnection, path: str) -> Response:
        root = self.web_dist.resolve()
        if not (root / "index.html").is_file():
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE,
                                      "the editor is not built: run scripts/setup (it builds web/dist)\n")
        rel = path.lstrip("/") or "index.html"
        candidate = (root / rel).resolve()
        if root not in candidate.parents or not candidate.is_file():
            if "." in rel.rsplit("/", 1)[-1]:
                return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
            candidate = root / "index.html"
        return self._file_response(candidate, cache="no-cache" if candidate.name == "index.html" else "max-age=3600")

    # --- websocket side ---------------------------------------------------------

    async def handler(self, websocket: ServerConnection) -> None:
        """One connection: feed frames to the protocol; a sender task drains its outbox."""
        client_id = uuid.uuid4().hex[:12]
        outbox: asyncio.Queue = asyncio.Queue(maxsize=self.OUTBOX_LIMIT)
        self.connections[client_id] = (websocket, outbox)
        sender = asyncio.create_task(self._send_loop(websocket, outbox))
        try:
            self._deliver(self.protocol.connect(client_id))
            async for frame in websocket:
                self._deliver(self.protocol.receive(client_id, frame))
        except ConnectionClosed:
            pass
        finally:
            self.connections.pop(client_id, None)
            self.protocol.disconnect(client_id)
            sender.cancel()

    OUTBOX_LIMIT = 10_000   # frames waiting for one slow client before it is disconnected

    @staticmethod
    async def _send_loop(websocket: ServerConnection, outbox: asyncio.Queue) -> None:
        try:
            while True:
                await websocket.send(await outbox.get())
        except (ConnectionClosed, asyncio.CancelledError):
            pass

    def _deliver(self, outgoing: list[Outgoing]) -> None:
        """Queue each message on its recipients' outboxes (never waits for a slow client)."""
        for out in outgoing:
            payload = out.binary if out.binary is not None else json.dumps(out.message, default=str)
            targets = list(self.connections.items()) if out.to is None else (
                [(out.to, self.connections[out.to])] if out.to in self.connections else [])
            for client_id, (websocket, outbox) in targets:
                try:
                    outbox.put_nowait(payload)
                except asyncio.QueueFull:
                    log.warning("client %s is not reading; disconnecting it", client_id)
                    self.connections.pop(client_id, None)
                    asyncio.ensure_future(websocket.close(1008, "too many unread messages"))

    def _post(self, outgoing: list[Outgoing]) -> None:
        """From the worker thread: deliver on the event loop."""
        if outgoing and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._deliver, outgoing)

    # --- worker -----------------------------------------------------------------

    def _wake(self) -> None:
        self._wake_event.set()

    def _interrupt_run(self, run_id: str) -> bool:
        if self._current_run != run_id:
            return False
        self.session.interrupt()
        return True

    def _work(self) -> None:
        while not self._stopping.is_set():
            self._wake_event.wait()
            self._wake_event.clear()
            while not self._stopping.is_set():
                record = self.queue.claim_next()
                if record is None:
                    break
                self._execute(record)

    TERMINAL_EVENTS = ("run_finished", "run_failed", "run_interrupted")

    def _on_event(self, run_id: str, event: Any) -> None:
        if event.type in self.TERMINAL_EVENTS:   # sent after the queue records the outcome (see _execute)
            self._terminal_event = event
            return
        preview = None
        if event.type == "node_progress" and event.preview is not None:
            try:
                preview = encode_image(event.preview)
            except Exception:  # noqa: BLE001 — a bad preview must not fail the run
                log.exception("could not encode a preview")
        self._post(self.protocol.run_event(run_id, event.to_dict(), preview))

    def _execute(self, record: Any) -> None:
        run_id = record.id
        self._current_run = run_id
        self._terminal_event = None
        try:
            result = self.session.run(record.graph, overrides=record.overrides, outputs=record.outputs,
                                      on_event=lambda e: self._on_event(run_id, e), run_id=run_id)
        except GraphValidationError as exc:
            self.queue.finish(run_id, "failed", error={"message": str(exc), "errors": exc.to_list()})
            self._terminal_event = RunFailed(run_id, None, str(exc))
        except NodeExecutionError as exc:
            self.queue.finish(run_id, "failed", error={
                "node_id": exc.node_id, "node_type": exc.node_type, "exception_type": exc.exception_type,
                "message": str(exc.exception), "traceback": exc.traceback})
        except RunInterrupted as exc:
            self.queue.finish(run_id, "interrupted", error={"message": str(exc), "node_id": exc.node_id})
        except Exception as exc:  # noqa: BLE001 — the worker must survive anything
            log.exception("run %s crashed the worker loop", run_id)
            self.queue.finish(run_id, "failed", error={"message": f"{type(exc).__name__}: {exc}"})
            self._terminal_event = RunFailed(run_id, None, f"{type(exc).__name__}: {exc}")
        else:
            files = []
            for item in collect_files(result.outputs):
                try:
                    file_id = self.files.file_id(item["path"])
                except ValueError:
                    continue
                files.append({"file_id": file_id, "node_id": item["node_id"], "kind": item["kind"]})
                if item["kind"] == "image":
                    data = Path(item["path"]).read_bytes()
                    self._post(self.protocol.output_image(run_id, item["node_id"], file_id, data,
                                                          item.get("format") or "png", item["index"]))
            outputs = {node_id: jsonable({k: v for k, v in values.items() if k != "files"})
                       for node_id, values in result.outputs.items()}
            self.queue.finish(run_id, "succeeded", result={"outputs": outputs, "files": files,
                                                           "executed": result.executed, "cached": result.cached})
        finally:
            self._current_run = None
            self.queue.prune(keep=self.history_limit)
            if self._terminal_event is not None:   # now get_outputs / queue_status see the final status
                self._post(self.protocol.run_event(run_id, self._terminal_event.to_dict()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nodegraph serve", description="Serve the editor and the websocket API.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free)")
    parser.add_argument("--data-dir", default=".nodegraph", help="where the run queue database lives")
    parser.add_argument("--output-dir", default="output")
    parser.add_argument("--input-dir", default="input")
    parser.add_argument("--token", default=os.environ.get("NODEGRAPH_TOKEN"),
                        help="required from clients (env NODEGRAPH_TOKEN); generated if listening beyond loopback")
    parser.add_argument("--allow-origin", action="append", default=[], metavar="URL",
                        help="another browser origin allowed to connect (repeatable)")
    parser.add_argument("--max-message-bytes", type=int, default=DEFAULT_MAX_MESSAGE)
    parser.add_argument("--history-limit", type=int, default=1000, help="finished runs kept in history")
    parser.add_argument("--no-plugins", action="store_true", help="load only the built-in nodes")
    parser.add_argument("--print-schemas", action="store_true", help="print the JSON Schemas of client messages")
    return parser


async def serve_forever(args: argparse.Namespace) -> None:
    from .session import Session

    session = Session(autoload=False if args.no_plugins else None, output_dir=args.output_dir,
                      input_dir=args.input_dir)
    server = Server(session, data_dir=args.data_dir, host=args.host, port=args.port, token=args.token,
                    allowed_origins=args.allow_origin, max_message_bytes=args.max_message_bytes,
                    history_limit=args.history_limit)
    await server.start()
    url = f"http://{args.host if ':' not in args.host else f'[{args.host}]'}:{server.port}/"
    if server.token:
        url += f"?token={server.token}"
    print(f"nodegraph {__version__} serving on {url}", flush=True)
    if server.generated_token:
        print(f"token (generated; clients must send it): {server.token}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.print_schemas:
        print(json.dumps(message_schemas(), indent=2))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        asyncio.run(serve_forever(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
