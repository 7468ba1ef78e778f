"""The websocket + HTTP server: a thin asyncio shell around protocol.py.

    nodegraph serve [--host 127.0.0.1] [--port 8188] [--data-dir DIR] [--token T | --users FILE]
                    [--allow-origin URL] [--allow-host NAME] [plugin flags as for `nodegraph run`]
    python server.py ...   (the same)

Pieces:
- `Server.handler`: one coroutine per websocket connection (`async for`), feeding
  frames to the protocol (`_handle`): a small frame is parsed on the event loop and,
  when it is a quick message (a submit of a graph under 64 KiB, an interrupt, a
  cancel, a ping: work bounded by the frame's size), carried out there too; every
  other message, big graphs and model-folder listings among them, is handled *in a
  thread pool* (frames over 64 KiB — big graphs, uploads — in a pool of their own, so
  they never hold up small requests; one user's messages take at most `POOL_SHARE_PER_USER` of their threads at
  once, and one whose connection closed while it waited is dropped: `_in_pool`) and never blocks the loop (a submit's validation reads the cached
  model-folder listing, refreshed at most once per `LISTING_TTL`). Two thread hand-offs per submit cost more
  than the handling of a small one on this path (docs/protocol.md). A connection
  whose message took over 5 ms on the loop (a graph full of errors) is handled in
  the pool for the next second, so its flood does not delay the others. What a frame
  returns goes into each recipient's outbox, drained by a sender task per
  connection, so a slow client never delays the others (one that stops reading is
  disconnected). Clean-up in `finally`. Replies are strict JSON (no NaN/Infinity).
- `_MethodCheckingConnection`: a method other than GET/HEAD gets 405 (`method_refusal`) before websockets
  parses the request (it would serve it as GET, or drop a request with a body without a reply).
- `Server.process_request`: the HTTP side of the same port — Host, token and
  Origin checks, `/files/<id>` (by id only, see files.py; per user on a server
  with users; each path segment percent-decoded once, `file_id_from_url_path`;
  read in a thread; refused to other sites' pages on a server without tokens,
  `cross_site_read`), and the editor's static files from `web/dist` (never framed by other
  sites). `/?token=T` sets an HttpOnly, SameSite=Lax cookie named for the port
  (`cookie_name`) and redirects to the same page, relative (`sign_in_redirect`: a proxy's
  path prefix is kept, never another site), so the editor's assets and websocket
  carry the token without it staying in the URL. Listening on every address, any IP
  address is an accepted Host (`any_address`). A server with users follows its
  users file (`_watch_users`): revoked tokens stop working and their connections close.
- The worker: one thread that takes queued runs in order and runs them on the
  Session — the very Graph object `submit` validated (`ServerProtocol.prepared`),
  so a run is parsed, validated and compiled once. A submit that finds the
  worker idle stores the run as running and hands it over (`_reserve_worker`,
  `_hand_over`): one SQLite write instead of queueing and claiming. Engine
  events are handed to the event loop in batches (`_post`: one `call_soon_threadsafe` wakes the loop
  for everything posted since it last drained), so queue operations never wait
  for a running graph and a 1,000-node run does not cost 2,000 loop wake-ups.
  Node started / cached / finished events travel as the engine's Event objects,
  appended to one group per run (`protocol.EngineEvents`), and become messages
  only at delivery, for their recipient (`protocol.expand_node_events`): no dict
  per event on the way, and a compact-events client's rows are read from them.
  It survives any exception (a database error included): the run is reported
  failed and the next one runs. A run of a user with `max_run_seconds` is interrupted by a timer past it and
  recorded failed (`run_time_limit`), so one user cannot hold the worker for hours.
- Delivery (`_deliver`): each message is JSON-encoded once, whatever the number
  of recipients; a client that asked for batches (`hello {batch: true}`) gets
  the text messages that are ready together as one `batch` frame whose
  `messages` are those same encoded messages in order, and with
  `compact_events: true` runs of node events as `node_events` rows
  (`protocol.compacted`; docs/protocol.md).
- Process set-up: `nodegraph serve` freezes the startup heap out of the cyclic
  GC (`freeze_startup_heap`) and, on loopback, negotiates no compression.
- `/files/<id>?size=N` serves a thumbnail of an image file (upright; JPEG, or WebP keeping the alpha of an
  image with transparency: `thumbnail_type`), for history lists, galleries and LoadImage's preview: N is
  snapped up to one of `THUMBNAIL_STEPS` (`thumbnail_side`), so a few cached sizes answer every request; thumbnails are
  made in a pool of `THUMBNAIL_WORKERS` threads (`make_thumbnail`), never on the
  event loop, the same thumbnail once however many ask for it, and past
  `THUMBNAIL_WAITING_LIMIT` waiting requests the answer is 503.
- `/files/<id>` with a `Range` header gets those bytes (`byte_range`: 206, 416 past the end), so media seeks;
  the Content-Type is the file results' mime (`results.default_mime`).
- `/files/<id>` answers wait for their clients within each user's own budget (`_downloads_busy`: bytes and answers).
  An answer over DOWNLOAD_PIECE_BYTES is sent in pieces (`_send_in_pieces`): never cut while its client takes them,
  cut after DOWNLOAD_STALL_SECONDS without progress; a smaller one must be over OPEN_TIMEOUT_SECONDS after its
  connection opened (`_MethodCheckingConnection.handshake`, our own timeout in place of serve()'s open_timeout).
- One server per data folder: `start` takes `<data dir>/server.lock` (`lock_data_folder`, DataFolderInUse), then
  refuses an output or input folder it cannot write (FolderNotWritable), removes what killed saves and uploads
  left half-written (`files.remove_unfinished_files`) and logs what `--history-limit` pruned.
  A run whose end the database refused (a full disk) is recorded once it can (`_record_unrecorded`).
- `Server.close()` is safe to call twice; `nodegraph serve` closes on SIGTERM as on Ctrl+C, and with `--ray`
  alone starts its local cluster on the main thread first (`RayBackend.prepare`: Ray's cleanup needs it).
  Closing stops listening, interrupts the running run and lets its `run_interrupted` reach the clients
  (`_flush_outboxes`) before the connections close; queued runs stay queued for the next start.
- Lines a client can cause in the log (unknown message types, refused hosts, origins, tokens, methods) go
  through `protocol.CLIENT_LOG`: at most a few per kind and minute. A run that fails on its graph's
  mistake (a NodeInputError) is logged in one line; other node failures with their traceback.

Security defaults (docs/security.md): loopback only; any other address, or a name
given with --allow-host (a proxy in front), requires a token (generated and printed
at start when not given) or a users file; the Host header must
name this server (DNS rebinding); browsers' `Origin` must be allowed; message
size capped; each user sees only their own runs and files.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import dataclasses
import errno
import gc
import hmac
import io
import ipaddress
import json
import logging
import mimetypes
import os
import re
import secrets
import signal
import socket
import sqlite3
import sys
import tempfile
import threading
import traceback
import time
import uuid
from http import HTTPStatus
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, parse_qsl, unquote, urlencode, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers, MultipleValuesError
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from . import __version__
from .distributed.pool import ClusterUnreachableError, RayNotInstalledError
from .errors import GraphValidationError, NodeExecutionError, NodeInputError, RunInterrupted, StorageLimitError
from .events import RunFailed
from .files import (FileAccessError, FileStore, amount_text, eight_bit, image_opacity, remove_unfinished_files,
                    stored_mode)
from .memory import release_failed_run
from .model_paths import ModelPathsError
from .plugins import PluginOptionError, add_plugin_arguments, plugin_options
from .protocol import (CLIENT_LOG, ROW_EVENTS, EngineEvents, Outgoing, ServerProtocol, compacted, event_dict,
                       expand_node_events, message_schemas, without_settled_starts)
from .results import collect_files, default_mime, jsonable
from .run_queue import RunQueue, strict_json
from .templates import TemplateLibrary
from .users import User, UserBook, UsersFileError

log = logging.getLogger("nodegraph.server")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
WEB_DIST = PROJECT_ROOT / "web" / "dist"
DEFAULT_PORT = 8188
DEFAULT_MAX_MESSAGE = 16 * 1024 * 1024
TOKEN_COOKIE = "nodegraph_token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# Where a sign-in link may send the browser: a path of this server. Not "//host" or "/\host" (a backslash),
# which browsers read as another site; so only plain path characters, and no "/" twice at the start.
SAFE_REDIRECT = re.compile(r"/(?!/)(?:[A-Za-z0-9._~/-]|%(?!2[Ff]|5[Cc])[0-9A-Fa-f]{2})*")   # our path; no %2F / %5C


HTTP_METHODS_SERVED = (b"GET", b"HEAD")
REQUEST_LINE_LIMIT = 8192      # websockets' own limit on a request line


def method_refusal(head: bytes) -> bytes | None:
    """The whole HTTP response for a request whose method this server does not serve (405, saying where
    graphs go instead), or None for GET/HEAD. `head`: the request's first bytes, its request line complete
    (or REQUEST_LINE_LIMIT bytes of it).

    websockets' handshake parser takes any method as GET and drops a request with a body without a word
    (a script's POST to ComfyUI's `/prompt` saw "empty reply from server"); this answers first."""
    line = head.partition(b"\r\n")[0][:REQUEST_LINE_LIMIT]
    method, _, rest = line.partition(b" ")
    if method in HTTP_METHODS_SERVED:
        return None
    path = rest.partition(b" ")[0].decode("ascii", "replace")[:200]
    try:
        is_prompt = urlsplit(path).path.rstrip("/") == "/prompt"
    except ValueError:          # "http://[/prompt": not a URL urllib can split
        is_prompt = False
    text = ("this server's HTTP side answers only GET (the editor, /files/<id>); graphs are submitted over the "
            "websocket at /ws (docs/protocol.md: a `submit` message) or run with `nodegraph run GRAPH.json`\n")
    if is_prompt:
        text += ("this is not ComfyUI's HTTP API: a ComfyUI API prompt (its Export (API) file) is imported by "
                 "`nodegraph run prompt.json` or the websocket's `import_graph` message\n")
    body = text.encode()
    return (b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))


class _MethodCheckingConnection(ServerConnection):
    """A ServerConnection that answers a request for a method other than GET/HEAD with `method_refusal` before
    websockets parses it (its parser would serve it as GET, or close on a body without a reply)."""

    _head: bytes | None = b""       # the request's first bytes until the method is known; then None
    is_head = False                 # a HEAD request: answered with the headers a GET would get, no body

    def data_received(self, data: bytes) -> None:
        if self._head is not None:
            self._head += data
            if b"\r\n" not in self._head and len(self._head) < REQUEST_LINE_LIMIT:
                return                   # the request line is not complete yet
            data, self._head = self._head, None
            try:
                refusal = method_refusal(data)
            except Exception:  # noqa: BLE001 — never a traceback per request: let websockets answer it
                refusal = None
            if refusal is not None:
                CLIENT_LOG.log(log, logging.INFO, "method", "refused an HTTP %r request", data.partition(b" ")[0][:20])
                self.transport.write(refusal)
                self.transport.close()
                return
            self.is_head = data.startswith(b"HEAD ")
        super().data_received(data)

    open_timeout: float | None = 10.0     # the server's OPEN_TIMEOUT_SECONDS (`Server.start` makes a subclass)
    opening: asyncio.Timeout | None = None      # that timeout while the handshake runs

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        """websockets' handshake (the request, its answer) within `open_timeout`: our own timeout, not serve()'s
        open_timeout, so that an answer sent in pieces (`Server._send_in_pieces`) can lift it for a timeout on its
        progress instead (serve()'s cut every download at 10 s, however steadily its client read)."""
        async with asyncio.timeout(self.open_timeout) as self.opening:
            await super().handshake(*args, **kwargs)


def peer_host(connection: ServerConnection) -> str:
    """The connection's own address, without port (what X-Forwarded-For says is not taken: a client chooses it)."""
    address = connection.remote_address
    return str(address[0]) if isinstance(address, tuple) and address else str(address)


def peer_of(connection: ServerConnection) -> str:
    """Where a connection comes from, for the log: its address, and what a proxy says it forwards for (as told)."""
    address = connection.remote_address
    text = f"{address[0]}:{address[1]}" if isinstance(address, tuple) and len(address) >= 2 else str(address)
    request = connection.request
    forwarded = ", ".join(request.headers.get_all("X-Forwarded-For"))[:100] if request is not None else None
    return f"{text} (forwarded for {forwarded!r})" if forwarded else text


def refusal_log_kinds(connection: ServerConnection, proxied: bool) -> tuple[str, str | None]:
    """(kind, within) for `CLIENT_LOG` of a refused token: each client address its own budget of lines. Behind an
    allowed proxy (`proxied`: the Host is an --allow-host name) every client has the proxy's address, so the kind is
    the forwarded address (X-Forwarded-For's last entry, the one the proxy itself added) within the connecting
    address's wider cap: one client's guessing flood hid every other client's refusals."""
    peer = f"token {peer_host(connection)}"
    request = connection.request
    forwarded = ",".join(request.headers.get_all("X-Forwarded-For")) if proxied and request is not None else ""
    client = forwarded.rsplit(",", 1)[-1].strip()[:64]
    return (f"{peer} for {client}", f"{peer} proxied") if client else (peer, None)


def interrupted_by_admin(error: dict | None, admin: str) -> dict:
    """A run's stored error once an admin interrupted it for its owner: "interrupted by admin NAME: ..." (the owner
    saw only "run interrupted while node 'w' was running", and could not tell it from their own interrupt)."""
    message = (error or {}).get("message")
    return {**(error or {}), "message": f"interrupted by admin {admin}" + (f": {message}" if message else ""),
            "interrupted_by": admin}


def node_count(graph: Any) -> int | str:
    """How many nodes a run's graph has, for its start line in the log ("?" when it is not at hand)."""
    nodes = graph.get("nodes") if isinstance(graph, dict) else getattr(graph, "nodes", None)
    return len(nodes) if isinstance(nodes, (dict, list)) else "?"


def database_problem(data_dir: Path) -> str | None:
    """"database_unwritable" when the data folder takes no write now (read-only, full, gone), else None: a small
    file is written, synced and removed beside the run database."""
    probe = data_dir / f".health-{os.getpid()}-{threading.get_ident()}"
    try:
        with open(probe, "wb") as handle:
            handle.write(b"0" * 4096)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        return "database_unwritable"
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    return None


def host_name(header: str | None) -> str | None:
    """The host part of a Host header ("example.com:8188" → "example.com", "[::1]:80" → "::1")."""
    if not header:
        return None
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        rest = header[end + 1:] if end > 0 else ""
        if end <= 0 or not (rest in ("", ":") or (rest.startswith(":") and rest[1:].isascii() and rest[1:].isdigit())):
            return None         # "[::1]evil.com", "[::1]:x": not a host and port
        return header[1:end]
    if header.count(":") == 1:
        host, port = header.split(":")
        return host if port == "" or (port.isascii() and port.isdigit()) else None   # "localhost:evil.com": no
    return header


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def file_id_from_url_path(encoded: str) -> str | None:
    """The file id in a `/files/` URL path (what follows the prefix), or None when it cannot be one.

    Each `/`-separated segment is percent-decoded exactly once, as the editor encodes it
    (`encodeURIComponent` per segment): `my%20cat.png` → `my cat.png`, `100%25.png` → `100%.png`.
    None for a `%` not followed by two hex digits, bytes that are not UTF-8, or an encoded `/`
    (`%2F`) inside a segment, which must not act as a separator. The decoded id then goes through
    the file store's confinement checks (`..`, absolute, NUL, backslash, symlinks) like any other.
    """
    if _BAD_ESCAPE.search(encoded):
        return None
    segments = []
    for segment in encoded.split("/"):
        try:
            decoded = unquote(segment, errors="strict")
        except UnicodeDecodeError:
            return None
        if "/" in decoded:
            return None
        segments.append(decoded)
    return "/".join(segments)


def cross_site_read(headers: Headers) -> bool:
    """Whether a browser says another origin's page makes this request (`Sec-Fetch-Site: cross-site`, or
    `same-site`: another port of this host, e.g. any local dev server at localhost:3000), other than a top-level
    navigation (a link the user follows: the other page learns nothing of what it loads)."""
    if headers.get("Sec-Fetch-Site", "").strip().lower() not in ("cross-site", "same-site"):
        return False
    navigation = (headers.get("Sec-Fetch-Mode", "").strip().lower() == "navigate"
                  and headers.get("Sec-Fetch-Dest", "document").strip().lower() == "document")
    return not navigation


THUMBNAIL_STEPS = (64, 128, 256, 512, 1024)     # the sides thumbnails are made at; the editor asks for 128
THUMBNAIL_REQUEST_RANGE = (16, 1024)            # what `?size=` accepts


def thumbnail_side(size: str) -> int | None:
    """`?size=N` → the thumbnail side served: the smallest of THUMBNAIL_STEPS ≥ N; None for a bad size."""
    low, high = THUMBNAIL_REQUEST_RANGE
    if not (size.isascii() and size.isdigit()) or len(size) > 6 or not low <= int(size) <= high:     # "²" is a digit
        return None
    return next(step for step in THUMBNAIL_STEPS if step >= int(size))


def make_thumbnail(file_path: Path, side: int) -> bytes | None:
    """A thumbnail of an image file, upright (its EXIF orientation applied, as LoadImage and the mask editor
    read it) and at most `side` pixels on its longest side: a JPEG, or for an image with transparent pixels
    (LoadImage's mask) a WebP that keeps them, so a LoadImage preview shows the masked area as ComfyUI's does;
    None if it is not a readable image. Decodes the whole image: the server calls it in its thumbnail threads,
    never on the event loop."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(file_path) as image:
            stored = stored_mode(image)            # before loading: how a PNG colour key compares (LoadImage's way)
            image.draft("RGB", (side, side))       # JPEG: decode at a reduced scale
            ImageOps.exif_transpose(image, in_place=True)
            alpha = _alpha_band(image, stored)     # at full size: a colour key does not survive resampling
            if alpha is not None:
                image = eight_bit(image).convert("RGB")
                image.putalpha(alpha)
            image.thumbnail((side, side))
            buffer = io.BytesIO()
            if alpha is None:
                eight_bit(image).convert("RGB").save(buffer, format="JPEG", quality=85)
            else:
                image.save(buffer, format="WEBP", quality=85)
            return buffer.getvalue()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError, EOFError):
        return None          # SyntaxError: how Pillow says "broken PNG file" (a bad chunk), as the upload check knows


def _alpha_band(image: Any, stored: str | None) -> Any:
    """An image's alpha as a PIL "L" band when some pixel is not opaque (`files.image_opacity`: an A band or a PNG
    colour key, read as LoadImage reads it), else None."""
    import numpy as np
    from PIL import Image

    alpha = image_opacity(image, stored)
    if alpha is None or float(alpha.min()) >= 1.0:
        return None
    return Image.fromarray(np.rint(alpha * 255).astype(np.uint8))


def thumbnail_type(body: bytes) -> str:
    """The Content-Type of a `make_thumbnail` result: WebP (an image with transparency) or JPEG."""
    return "image/webp" if body[8:12] == b"WEBP" else "image/jpeg"


RANGE_CHUNK = 8 * 1024 * 1024      # bytes sent for an open-ended range (`bytes=N-`): media players ask on


COOKIE_SECONDS = 30 * 24 * 3600   # how long a browser keeps the token cookie (a rotated token ends it at once)


def byte_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """The inclusive (first, last) byte a `Range` header asks of a `size`-byte file; "unsatisfiable" (416)
    when it starts past the end; None for the whole file (no header, another unit, several ranges or a
    malformed one: RFC 9110 lets a server ignore those). An open-ended range (`bytes=N-`) gets at most
    RANGE_CHUNK bytes: a 206 says which bytes came, and players ask for the rest as they need it."""
    if not header:
        return None
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if match is None or match.group(1) == match.group(2) == "":
        return None
    # a number of more than 18 digits is past any file's end (and int() refuses 4,300 or more): read it so
    first, last = (str(size) if len(digits) > 18 else digits for digits in match.groups())
    if first == "":                      # the last N bytes
        length = int(last)
        return (max(0, size - length), size - 1) if length and size else "unsatisfiable"
    start = int(first)
    if start >= size:
        return "unsatisfiable"
    if last == "":
        return start, min(size - 1, start + RANGE_CHUNK - 1)
    end = int(last)
    return (start, min(end, size - 1)) if end >= start else None


class _UserRemoved(Exception):
    """A run's user left the users file while it was queued: it is recorded failed with `error`, not run."""

    def __init__(self, error: dict[str, Any]):
        super().__init__(error["message"])
        self.error = error


class DataFolderInUse(RuntimeError):
    """Another server holds the data folder (its queue and history): two would run each other's runs."""


class FolderNotWritable(RuntimeError):
    """The output or input folder cannot be written: refused at start (every SaveImage failed, blaming `prefix`)."""


def folder_write_problem(folder: Path, flag: str) -> str | None:
    """Why the server cannot write files into `folder` (made if missing), as one line naming `flag`, or None."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as exc:
        return (f"the {flag[2:-4]} folder {str(folder)!r} cannot be written ({exc.strerror or exc}); give a writable "
                f"{flag}")
    return None


def lock_data_folder(folder: Path) -> Any:
    """An exclusive lock on `folder/server.lock` for as long as the returned file stays open; DataFolderInUse when
    another process holds it. A second server on the same folder marked the first one's running run interrupted
    and ran its queued runs, whose submitters never heard of them."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / "server.lock", "a+")     # noqa: SIM115 — held open: the lock lives with it
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip()[:40]
        handle.close()
        raise DataFolderInUse(f"another nodegraph server{f' (pid {holder})' if holder.isdigit() else ''} uses the "
                              f"data folder {str(folder)!r} (its queue and history); stop it first, or give this one "
                              f"its own --data-dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def dump_message(message: dict[str, Any]) -> str:
    """A message as strict JSON: NaN/Infinity become strings rather than invalid JSON."""
    try:
        return json.dumps(message, default=str, allow_nan=False)
    except ValueError:
        return json.dumps(strict_json(message), default=str, allow_nan=False)


def url_host(host: str) -> str:
    """A host as it goes in a URL: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def machine_addresses() -> list[str]:
    """Names a client on the network can use for this machine: its non-loopback IP addresses (the one with
    the default route first, found without sending anything), then its host name."""
    found: list[str] = []
    with contextlib.suppress(OSError):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))         # a documentation address: UDP connect sends no packet
            found.append(probe.getsockname()[0])
    with contextlib.suppress(OSError, UnicodeError):
        for info in socket.getaddrinfo(socket.gethostname(), None, type=socket.SOCK_STREAM):
            found.append(str(info[4][0]).split("%")[0])
    addresses = [a for a in dict.fromkeys(found) if is_ip_address(a) and not is_loopback(a)
                 and not ipaddress.ip_address(a).is_unspecified]
    return [*addresses, socket.gethostname()]


def is_ip_address(host: str) -> bool:
    """True for an IPv4 or IPv6 address literal (no name): "192.0.2.7", "::1", "fe80::1"."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


_COOKIE_PREFIX = re.compile(r"(?:/[A-Za-z0-9._~-]+)+/?")      # a proxy's X-Forwarded-Prefix fit for a cookie Path


def cookie_path_attribute(forwarded_prefix: str | None) -> str:
    """The sign-in cookie's `; Path=...`: the path the editor is served under, never the whole host. `Path=/`
    sent a prefix proxy's users' token to every other app on that host (`/grafana/`) and let two servers behind
    one proxy (`/a/`, `/b/`) sign each other out. A proxy's `X-Forwarded-Prefix` (`/nodegraph`) names it; without
    one no Path is set, and the browser scopes the cookie to the sign-in page's folder (`/nodegraph/?token=T` →
    `/nodegraph`, `/?token=T` → `/`). A prefix with anything but plain path characters is ignored (no `;`)."""
    prefix = (forwarded_prefix or "").strip()
    if not _COOKIE_PREFIX.fullmatch(prefix):
        return ""
    return f"; Path={prefix.rstrip('/')}"


def sign_in_redirect(path: str, query: str) -> str:
    """Where `/?token=T` sends the browser once the cookie is set: the same page without the token, as a
    relative reference ("./", "./x.png?size=128") so a reverse proxy's path prefix is kept; never another
    site (a path outside `SAFE_REDIRECT`, e.g. "//evil.example", goes to "./")."""
    last = path.rsplit("/", 1)[-1] if SAFE_REDIRECT.fullmatch(path) else ""
    return f"./{last}" + (f"?{query}" if query else "")


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# What a user's file may do when a browser opens it from this origin: nothing. Shown by <img>/<video>/<audio> in the
# editor (this header does not apply to them there) or opened in a tab, an HTML, SVG or XML file a plugin wrote is
# inert: a sandboxed unique origin, no scripts, no requests; images and media still display.
FILE_CSP = "sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'"


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
        token: required at the handshake; generated when not given and others can reach the server
            (listening beyond loopback, or `allowed_hosts` naming a proxy in front)
            (unless `users` is given: then each user's own token is required instead).
        users: a UserBook (users.py): named users who see only their own runs and files.
        allowed_origins: extra allowed browser origins (the server's own are always allowed).
        allowed_hosts: extra names the Host header may carry (loopback names and the bound
            address always; when listening beyond loopback, also this machine's host names).
        max_message_bytes: largest frame accepted (uploads included).
        web_dist: the editor's build folder.
        history_limit: finished runs kept in history (looked at every 2 % of it in runs, and
            pruned once it holds 2 % more, so neither the count nor the sort runs after every run).
        backend: where queued runs execute: None for this process's Session (one worker thread),
            or an object with `serve(server)`, `interrupt(run_id)` and `close()` (the Ray pool).
        compression: "deflate" (permessage-deflate, for clients that ask), None, or "auto"
            (the default): deflate when listening beyond loopback, none on loopback — there
            compression saves no time, and compressing every frame on the event loop costs
            the thread that also runs graphs (docs/protocol.md, "Compression").
    """

    def __init__(self, session: Any, data_dir: str | os.PathLike = ".nodegraph", host: str = "127.0.0.1",
                 port: int = DEFAULT_PORT, token: str | None = None, allowed_origins: list[str] | None = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE, web_dist: Path = WEB_DIST,
                 history_limit: int = 1000, users: UserBook | None = None,
                 allowed_hosts: list[str] | None = None, backend: Any = None,
                 compression: str | None = "auto"):
        self.session = session
        if compression not in ("auto", "deflate", None):
            raise ValueError(f'compression must be "auto", "deflate" or None, got {compression!r}')
        self.compression = compression if compression != "auto" else (None if is_loopback(host) else "deflate")
        self.backend = backend     # None: runs execute here; else e.g. distributed.RayBackend (docs/distributed.md)
        self.host, self.port = host, port
        self.users = users
        if users is not None:
            token = None
        # reachable by others: listening beyond loopback, or named by a proxy in front (--allow-host)
        reachable = not is_loopback(host) or any(not is_loopback(name) for name in allowed_hosts or [])
        if token is None and users is None and reachable:
            token = secrets.token_urlsafe(24)
            self.generated_token = True
        else:
            self.generated_token = False
        self.token = token
        self.extra_origins = {origin.rstrip("/").lower() for origin in allowed_origins or []}
        # the names given with --allow-host are this server's own (a reverse proxy's): pages served from them on
        # the default ports (https://gen.example.com) are its own origins too
        self.proxy_hosts = {h.lower().strip("[]") for h in (allowed_hosts or [])}
        self.allowed_hosts = set(self.proxy_hosts) | set(LOOPBACK_NAMES)
        if host not in ("0.0.0.0", "::", ""):
            self.allowed_hosts.add(host.lower().strip("[]"))
        if not is_loopback(host):
            for name in (socket.gethostname(), socket.getfqdn()):
                self.allowed_hosts.add(name.lower())
        # listening on every address (0.0.0.0, ::): any IP address of this machine reaches it, so a Host header
        # that is an IP address is accepted (DNS rebinding needs a name; such a server always has a token)
        self.any_address = host in ("0.0.0.0", "::", "")
        self.max_message_bytes = max_message_bytes
        self.web_dist = web_dist
        self.history_limit = history_limit
        self.queue_path = Path(data_dir) / "runs.sqlite"
        self.queue = RunQueue(self.queue_path)
        self._data_lock: Any = None       # the data folder's lock file, held from start() to close()
        self._unrecorded: dict[str, dict] = {}     # run id → the error to record: its end the database refused
        self.files = FileStore(session.input_dir, session.output_dir)
        # The worker is woken from the handler thread as soon as a run is queued, in parallel with
        # the `submitted` reply; `_in_order` holds the run's events until that reply has gone out,
        # so a client still always gets `submitted` before the run's first event.
        self.protocol = ServerProtocol(session, self.queue, self.files, wake_worker=self._wake,
                                       reserve_worker=self._reserve_worker if backend is None else lambda: False,
                                       hand_over=self._hand_over,
                                       interrupt_run=self._interrupt_run, running_node=self._running_node,
                                       server_version=__version__,
                                       token=self.token, users=users,
                                       templates=TemplateLibrary.for_session(session, PROJECT_ROOT / "graphs"))
        self.protocol.keep_prepared = backend is None     # a Ray worker parses the stored graph itself
        self.protocol.max_message_bytes = max_message_bytes    # told in `welcome`: the editor checks uploads first
        # the person at the keyboard: loopback, no users, no token, no other host names (a proxy in front)
        self.protocol.send_tracebacks = (is_loopback(host) and users is None and token is None
                                         and not allowed_hosts)
        self.connections: dict[str, tuple[ServerConnection, asyncio.Queue]] = {}
        # Message handling runs here, off the event loop (see the module docstring).
        self._handlers = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="nodegraph-msg")
        # Frames over ON_LOOP_MAX_CHARS (big graphs, uploads) have a pool of their own: twelve clients submitting
        # 2 MB graphs made everyone's small requests (queue_status, history) wait behind them for seconds.
        self._big_handlers = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="nodegraph-big")
        self._pool_shares: dict[str | None, asyncio.Semaphore] = {}     # a user's share of the pools (`_in_pool`)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._wake_event = threading.Event()
        # A submit that finds the worker idle hands it the run directly (stored running: no claim):
        # `_worker_idle` — it found the queue empty and waits; `_reserved` — a handler is storing a
        # run for it (it waits for that run, so none queued after it can pass it); `_handed` — that run.
        self._handoff_lock = threading.Lock()
        self._worker_idle = False
        self._reserved = False
        self._handed: Any = None
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None
        self._current_run: str | None = None
        self._run_started: tuple[float, str | None] = (time.perf_counter(), None)   # of the running run
        # (run id, node id, type) of the node the running run started last: /health details, the `interrupting` reply
        self._node_started: tuple[str, str | None, str] | None = None
        self._started_at = time.monotonic()            # for /health's uptime
        self._health_checked: tuple[float, str | None] = (float("-inf"), None)   # (when, database problem)
        self._held: dict[str, list[Outgoing]] = {}     # run id → its events, until its reply is out
        self._queue_notes: dict[str, dict] = {}        # client id → queue_changed throttle state
        self._pooled_until: dict[str, float] = {}      # client id → until when its messages go to the pool
        self._sent_at: dict[str, float] = {}           # client id → loop time its last frame went out
        self._outbox_bytes: dict[str, int] = {}        # client id → bytes (characters) waiting in its outbox
        self._open_connections: dict[str | None, int] = {}   # user name (None: no users) → open websockets
        # per user (None: no users): (bytes, responses) of /files answers not yet taken by their clients (`_files`)
        self._file_bytes_out: dict[str | None, tuple[int, int]] = {}
        self._sending: set[ServerConnection] = set()   # connections whose HTTP answer goes in pieces (`_send_in_pieces`)
        self._users_watch: asyncio.Task | None = None  # follows the users file (a server with users)
        self._terminal_event: Any = None
        self._closed = False
        # The history is looked at every `prune_every` runs (counting it scans the finished runs) and
        # pruned once it holds `prune_every` more than history_limit: at most limit + 2 × prune_every.
        self.prune_every = max(1, history_limit // 50)
        self._runs_since_prune = 0
        self._posted: list[Outgoing] = []              # from the worker, not yet drained by the loop
        self._posted_lock = threading.Lock()
        self._thumbnails: dict[tuple, bytes] = {}      # (path, mtime, size, side) → JPEG, LRU by insertion
        self._thumbnail_jobs: dict[tuple, asyncio.Future] = {}     # thumbnails being made, by the same key
        self._thumbnail_shares: dict[str | None, asyncio.Semaphore] = {}    # one being made per user at a time
        self._thumbnail_waiting: dict[str | None, int] = {}     # thumbnails being made or waiting, per user
        self._thumbnail_pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.THUMBNAIL_WORKERS,
                                                                     thread_name_prefix="nodegraph-thumbnail")

    # --- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Take the data folder (one server per folder), recover the queue, start listening and start the worker."""
        self._loop = asyncio.get_running_loop()
        self._data_lock = lock_data_folder(Path(self.queue_path).parent)
        folders = self.files.folders
        for flag, folder in (("--output-dir", folders["output"]), ("--input-dir", folders["input"])):
            problem = folder_write_problem(folder, flag)
            if problem:
                self._data_lock.close()
                self._data_lock = None
                raise FolderNotWritable(problem)
        # the lock is held: no save or upload can be in progress, so what a killed one left is removed
        removed, removed_bytes = remove_unfinished_files(*self.files.folders.values())
        if removed:
            log.info("removed %d half-written file(s) (%s) left by a save or upload that was cut off", removed,
                     amount_text(removed_bytes))
        recovered = self.queue.recover()
        pruned = self.queue.prune(keep=self.history_limit)
        if pruned:
            log.warning("pruned %d finished run(s) past --history-limit %d: %s", pruned, self.history_limit,
                        ", ".join(f"{'(no user)' if user is None else user} {count}"
                                  for user, count in sorted(pruned.by_user.items(), key=lambda kv: str(kv[0]))))
        if recovered:
            log.warning("marked %d run(s) interrupted by the last shutdown: %s", len(recovered), recovered)
        kept = self.queue.pending_count()
        if kept:
            log.info("%d queued run(s) kept from before this start; they run in turn", kept)
        if self.users is not None:
            ownerless = sum(1 for record in self.queue.pending() if record.user is None)
            if ownerless:
                log.warning("%d queued run(s) have no user (queued before this server had users): each fails when "
                            "its turn comes, unrun (re-submit them as a user)", ownerless)
        # open_timeout=None: each connection keeps OPEN_TIMEOUT_SECONDS itself (`_MethodCheckingConnection.handshake`),
        # so that a download that is making progress can outlast it (`_send_in_pieces`)
        self._server = await serve(self.handler, self.host, self.port, process_request=self.process_request,
                                   open_timeout=None,
                                   max_size=self.max_message_bytes, origins=None, server_header=None,
                                   compression=self.compression,
                                   create_connection=type("ServerConnection", (_MethodCheckingConnection,),
                                                          {"open_timeout": self.OPEN_TIMEOUT_SECONDS}))
        self.port = self._server.sockets[0].getsockname()[1]
        work = self._work if self.backend is None else (lambda: self.backend.serve(self))
        self._worker = threading.Thread(target=work, name="nodegraph-worker", daemon=True)
        self._worker.start()
        self._wake()
        if self.users is not None:
            self._users_watch = asyncio.create_task(self._watch_users())

    USERS_CHECK_SECONDS = 1.0
    # A request (its answer sent) or a websocket handshake must be over this long after its connection opened,
    # else it is cut — except an answer of more than DOWNLOAD_PIECE_BYTES, sent in pieces (`_send_in_pieces`)
    OPEN_TIMEOUT_SECONDS = 10.0
    # An answer sent in pieces is cut when its client takes no piece for this long (a stalled download), so an
    # unread /files answer holds its user's budget this long at most; one that makes progress is never cut
    DOWNLOAD_STALL_SECONDS = 10.0
    DOWNLOAD_PIECE_BYTES = 64 * 1024

    async def _watch_users(self) -> None:
        """Follow the users file: a removed user or a replaced token stops working, and its connections close."""
        while True:
            await asyncio.sleep(self.USERS_CHECK_SECONDS)
            if self.users.refresh():
                log.info("the users file changed: %d user(s) now (%s)", len(self.users), self.users.last_changes)
                self._interrupt_removed_users_runs()
                self._wake()           # a paused user's runs may go now (or a newly paused one's must wait)
                for client_id, (websocket, _outbox) in list(self.connections.items()):
                    allowed, user = self.authenticate(websocket.request)
                    state = self.protocol.clients.get(client_id)
                    if not allowed:
                        log.warning("closing client %s: its token is no longer in the users file", client_id)
                        asyncio.ensure_future(websocket.close(1008, "the token was revoked"))
                    elif state is not None and state.user is not None and state.user != user:
                        log.info("closing client %s: its user's role or limits changed", client_id)
                        asyncio.ensure_future(websocket.close(
                            1008, "this user's role or limits changed in the users file; connect again"))
            elif self.users.last_refresh_error:
                log.warning("the users file changed but cannot be read, so the users stay as they were: %s",
                            self.users.last_refresh_error)

    def _interrupt_removed_users_runs(self) -> None:
        """Interrupt the running runs of users no longer in the users file — here or on a cluster's workers
        (their queued runs are not started: `removed_user_error`)."""
        try:
            running = self.queue.running_runs()
        except Exception:  # noqa: BLE001 — the database refused: the worker's own run, at least
            log.exception("could not read the running runs")
            running = []
        owners = {record.id: record.user for record in running}
        if self.backend is None and self._current_run is not None:
            owners.setdefault(self._current_run, self._run_started[1])
        for run_id, owner in owners.items():
            if owner is not None and self.users.get(owner) is None:
                log.info("interrupting run %s: its user %s was removed", run_id, owner)
                self._interrupt_run(run_id)

    async def close(self) -> None:
        """Stop accepting, stop the worker (interrupting its run), close the queue; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        if self._users_watch is not None:
            self._users_watch.cancel()
        self.session.interrupt()
        self._wake_event.set()
        if self._server is not None:
            self._server.server.close()          # no new connections; the open ones hear how their runs ended
        for connection in list(self._sending):   # downloads in progress end now (none is bounded in time)
            connection.transport.abort()
        if self._worker is not None:
            await asyncio.to_thread(self._worker.join, 10)
        if self.backend is not None and hasattr(self.backend, "stop_runs"):     # remote runs end before the goodbye
            await asyncio.to_thread(self.backend.stop_runs)
        await self._flush_outboxes(self.CLOSE_FLUSH_SECONDS)
        for websocket, outbox in list(self.connections.values()):
            websocket.close_timeout = self.CLOSE_HANDSHAKE_SECONDS
            if not outbox.empty():          # it stopped reading: no closing handshake can reach it; drop it now
                websocket.transport.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self.backend is not None:
            await asyncio.to_thread(self.backend.close)
        self._handlers.shutdown(wait=False, cancel_futures=True)
        self._big_handlers.shutdown(wait=False, cancel_futures=True)
        self._thumbnail_pool.shutdown(wait=False, cancel_futures=True)
        self.queue.close()
        if self._data_lock is not None:
            self._data_lock.close()          # the lock goes with the file
            self._data_lock = None

    CLOSE_FLUSH_SECONDS = 2.0
    CLOSE_HANDSHAKE_SECONDS = 1.0     # at shutdown, per connection (websockets' default is 10 s)

    async def _flush_outboxes(self, seconds: float) -> None:
        """Deliver what the worker posted last (a run's `run_interrupted`) and give the senders up to `seconds`
        to send what waits, so a client learns how its run ended before the connection closes (it got only
        the close, and saw the run's end after a restart)."""
        self._drain_posted()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and any(not outbox.empty() for _, outbox in self.connections.values()):
            await asyncio.sleep(0.02)

    @property
    def own_origins(self) -> set[str]:
        hosts = {f"[{h}]" if ":" in h else h for h in self.allowed_hosts}
        proxied = {f"[{h}]" if ":" in h else h for h in self.proxy_hosts}
        return ({f"http://{h}:{self.port}" for h in hosts} | {f"https://{h}:{self.port}" for h in hosts}
                | {f"{scheme}://{h}" for h in proxied for scheme in ("http", "https")})

    def _origin_allowed(self, origin: str, host_header: str) -> bool:
        """May a page of `origin` open the websocket: this server's own origins, --allow-origin ones, and on a
        server listening on every address a page served from the very IP address and port the request names."""
        origin = origin.lower()
        if origin in self.own_origins or origin in self.extra_origins:
            return True
        parts = urlsplit(origin)
        return (self.any_address and parts.scheme in ("http", "https") and is_ip_address(host_name(parts.netloc) or "")
                and parts.netloc == host_header.strip().lower())

    @property
    def cookie_name(self) -> str:
        """The token cookie's name: one per port, since browsers share cookies between the ports of a host
        (two servers on one machine would otherwise sign each other's users out)."""
        return f"{TOKEN_COOKIE}_{self.port}"

    # --- HTTP side ------------------------------------------------------------

    def _given_tokens(self, request: Request) -> list[tuple[str, bool]]:
        """Every token a request offers as (token, came in the query), in order of precedence: the query, a
        Bearer header, then cookies (a browser may hold two `nodegraph_token` cookies, say a stale one for
        another path). A stale `?token=` in a bookmark must not hide a valid cookie, so all are offered."""
        query = parse_qs(urlsplit(request.path).query)
        offered = [(given, True) for given in (query.get("token") or [])[:1]]
        auth = request.headers.get("Authorization", "")
        scheme, _, credentials = auth.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():     # the scheme is case-insensitive (RFC 7235)
            offered.append((credentials.strip(), False))
        cookies = []
        for header in request.headers.get_all("Cookie"):
            for part in header.split(";"):
                name, _, value = part.strip().partition("=")
                if name == self.cookie_name and value:
                    cookies.append((value, False))
        return offered + cookies[:8]

    def authenticate(self, request: Request) -> tuple[bool, User | None]:
        """(may this request go on, and as which user — None on a server without users); the first of the
        request's tokens that is valid counts."""
        allowed, user, _token = self._authenticate(request)
        return allowed, user

    def _authenticate(self, request: Request) -> tuple[bool, User | None, tuple[str, bool] | None]:
        """`authenticate`, and which of the offered tokens was the valid one (None when none was needed)."""
        offered = self._given_tokens(request)
        if self.users is not None:
            for given in offered:
                user = self.users.authenticate(given[0])
                if user is not None:
                    return True, user, given
            return False, None, None
        if self.token is None:
            return True, None, None
        for given in offered:
            if hmac.compare_digest(given[0].encode(), self.token.encode()):
                return True, None, given
        return False, None, None

    async def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Host/token/Origin checks; the websocket handshake, files and static assets. Never a traceback."""
        try:
            response = await self._process_request(connection, request)
            if response is not None and getattr(connection, "is_head", False):      # HEAD: the headers only
                response = dataclasses.replace(response, body=b"")
            opening = getattr(connection, "opening", None)        # `_MethodCheckingConnection.handshake`'s timeout
            if response is not None and len(response.body) > self.DOWNLOAD_PIECE_BYTES and isinstance(
                    opening, asyncio.Timeout):
                await self._send_in_pieces(connection, response, opening)
            return response
        except MultipleValuesError as exc:     # a header given twice (Authorization, Origin, Range, ...)
            CLIENT_LOG.log(log, logging.WARNING, "duplicate_header", "refused a request with the header %s twice",
                           str(exc)[:60])
            return connection.respond(HTTPStatus.BAD_REQUEST, f"the header {str(exc)[:60]} was given more than once; "
                                                              f"send it once\n")
        except Exception:  # noqa: BLE001 — an HTTP request must never see a traceback
            # a client can cause this line: at most a few a minute, and never the query (it may hold a token)
            CLIENT_LOG.log(log, logging.ERROR, "http_failed", "HTTP request %r failed:\n%s",
                           urlsplit(request.path).path[:200], traceback.format_exc(limit=8)[-4000:])
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")

    async def _send_in_pieces(self, connection: ServerConnection, response: Response, opening: asyncio.Timeout) -> None:
        """Send an HTTP answer `DOWNLOAD_PIECE_BYTES` at a time, cut only when its client takes no piece for
        DOWNLOAD_STALL_SECONDS, then end the connection (as websockets does after an HTTP answer). websockets writes
        an answer whole and must finish within the open timeout: a big download over a slow link was cut at 10 s.

        The connection is closed when this returns, so websockets sends nothing more (it answers only a connection
        still opening) and the answer's bytes count out of its user's budget (`_release_file_bytes`)."""
        opening.reschedule(None)        # progress, not the time since the connection opened, decides
        transport, loop = connection.transport, asyncio.get_running_loop()
        self._sending.add(connection)
        started, body, handed_over = loop.time(), memoryview(response.body), False
        try:
            head = dataclasses.replace(response, body=b"")
            if "Content-Length" not in head.headers:        # the client knows the answer's end by its length
                head.headers["Content-Length"] = str(len(body))
            transport.write(head.serialize())
            for start in range(0, len(body), self.DOWNLOAD_PIECE_BYTES):
                if transport.is_closing():       # the client went away
                    return
                transport.write(body[start:start + self.DOWNLOAD_PIECE_BYTES])
                async with asyncio.timeout(self.DOWNLOAD_STALL_SECONDS):
                    await connection.drain()
            # The last bytes may still wait in the kernel's send buffer: give the client the time they take at
            # the rate it has read so far, then the stall allowance, to read them and close its side.
            sock = transport.get_extra_info("socket")
            buffered = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) if sock is not None else 0
            rate = len(body) / max(loop.time() - started, 1e-3)
            handed_over = True           # all of it left this process: a client that does not close is only dropped
            if transport.can_write_eof():
                transport.write_eof()
            async with asyncio.timeout(self.DOWNLOAD_STALL_SECONDS + buffered / rate):
                await connection.wait_closed()
        except TimeoutError:
            if not handed_over:
                CLIENT_LOG.log(log, logging.INFO, "download_stalled", "cut an HTTP answer (%d bytes) to %s: its "
                               "client took nothing for %.0f s", len(body), peer_of(connection),
                               self.DOWNLOAD_STALL_SECONDS)
        except (OSError, ConnectionClosed):      # the client went away mid-way
            pass
        finally:
            self._sending.discard(connection)
            transport.abort()           # a no-op once the client closed
            await connection.wait_closed()

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == "/health":        # before the Host and token checks: a load balancer or uptime check asks it
            return await self._health(connection, request)
        hosts = request.headers.get_all("Host")
        host = host_name(hosts[0]) if len(hosts) == 1 else None
        if host is None or not (host in self.allowed_hosts or (self.any_address and is_ip_address(host))):
            CLIENT_LOG.log(log, logging.WARNING, "host", "refused a request for host %r", ",".join(hosts)[:100])
            return connection.respond(HTTPStatus.MISDIRECTED_REQUEST, (
                f"the request has {len(hosts)} Host headers; send exactly one (a client library may add its own "
                f"beside yours)\n" if len(hosts) > 1 else
                "this server does not answer for that host name; start it with --allow-host NAME to add one\n"))
        allowed, user, valid = self._authenticate(request)
        if not allowed:
            kind, within = refusal_log_kinds(connection, host in self.proxy_hosts)   # each address its own budget
            CLIENT_LOG.log(log, logging.WARNING, kind, "refused a request for %r without a valid token from %s",
                           path[:100], peer_of(connection), within=within)
            return connection.respond(HTTPStatus.UNAUTHORIZED, "a valid token is required (?token=..., an "
                                      "'Authorization: Bearer TOKEN' header, or the cookie /?token=... sets)\n")
        in_query = "token" in parse_qs(urlsplit(request.path).query)
        # a file asked for with ?token= is served as it is: a script's GET (urllib, curl -L without a cookie jar)
        # got a redirect it could not follow; a page is redirected, trading the token for a cookie
        if in_query and path != "/ws" and not path.startswith("/files/") and (self.token is not None
                                                                               or self.users is not None):
            # Trade the token in the URL for a cookie, so that the editor's assets and websocket carry it; a stale
            # one (a bookmark from before a rotation) beside a valid cookie is only taken out of the URL.
            signed_in = valid is not None and valid[1]
            response = connection.respond(HTTPStatus.SEE_OTHER, "signed in\n" if signed_in else "already signed in\n")
            kept = urlencode([(k, v) for k, v in parse_qsl(urlsplit(request.path).query, keep_blank_values=True)
                              if k != "token"])                # e.g. a thumbnail's ?size=
            # relative ("./", "./x.png"): behind a proxy at a path prefix (/nodegraph/) the browser stays under it
            response.headers["Location"] = sign_in_redirect(path, kept)
            # Lax, not Strict: a link to the editor opened from chat or mail (a top-level navigation) carries it;
            # other sites' images, scripts, fetches and websockets still never do. 30 days, not the browser session.
            if signed_in:
                response.headers["Set-Cookie"] = (f"{self.cookie_name}={valid[0]}; HttpOnly; SameSite=Lax; "
                                                  f"Max-Age={COOKIE_SECONDS}"
                                                  + cookie_path_attribute(request.headers.get("X-Forwarded-Prefix"))
                                                  + ("; Secure" if request.headers.get("X-Forwarded-Proto") == "https"
                                                     else ""))
            response.headers["Cache-Control"] = "no-store"
            return response
        if path == "/ws":
            origin = request.headers.get("Origin")
            if origin is not None and not self._origin_allowed(origin, hosts[0]):
                CLIENT_LOG.log(log, logging.WARNING, "origin", "refused websocket from origin %r", origin)
                opaque = origin == "null" or origin.startswith("file:")      # a file:// page, a sandboxed frame
                return connection.respond(HTTPStatus.FORBIDDEN, (
                    f"origin {origin} is not allowed: a page opened from a file (or a sandboxed frame) has no origin "
                    f"a server can allow; serve the page over http(s) and allow that address with --allow-origin\n"
                    if opaque else
                    f"origin {origin} is not allowed: a page served from another address needs --allow-origin "
                    f"{origin} (behind a reverse proxy, --allow-host NAME allows the proxy's own http(s)://NAME)\n"))
            return None
        if path.startswith("/files/"):
            return await self._files(connection, request, user, path[len("/files/"):])
        return self._static(connection, path)

    HEALTH_PROBE_SECONDS = 2.0      # the data folder's write probe is reused this long (/health needs no token)

    async def _health(self, connection: ServerConnection, request: Request) -> Response:
        """`GET /health`: `{"status": "ok"}` (200), or `"degraded"` with a `reason` (503) — "worker_stopped" (the
        thread that runs the queue is dead) or "database_unwritable" (the data folder takes no write). It needs no
        token and tells nothing else. `?details=1` (or `true`; any other value is plain /health) adds, with a valid
        token (an admin's on a server with users), the queue's length, the running run's age and node, the worker's
        state, uptime and version. Without one it answers 401 — for a plain user's token as for a wrong one: a 403
        told a valid token from a guess — and logs the refusal as every other path does (through CLIENT_LOG)."""
        problem = "worker_stopped" if self._worker is None or not self._worker.is_alive() else None
        checked_at, database = self._health_checked
        if time.monotonic() - checked_at >= self.HEALTH_PROBE_SECONDS:
            self._health_checked = (time.monotonic(), database)          # one probe at a time, however many ask
            database = await asyncio.to_thread(database_problem, Path(self.queue_path).parent)
            self._health_checked = (time.monotonic(), database)
        problem = problem or database
        body: dict[str, Any] = {"status": "degraded" if problem else "ok", **({"reason": problem} if problem else {})}
        asked = parse_qs(urlsplit(request.path).query).get("details", [""])[-1].lower()
        if asked in ("1", "true"):
            allowed, user = self.authenticate(request)
            if not allowed or (user is not None and not user.is_admin):
                hosts = request.headers.get_all("Host")
                proxied = len(hosts) == 1 and host_name(hosts[0]) in self.proxy_hosts
                kind, within = refusal_log_kinds(connection, proxied)
                CLIENT_LOG.log(log, logging.WARNING, kind, "refused a request for %r without a valid token from %s",
                               "/health?details=1", peer_of(connection), within=within)
                return connection.respond(HTTPStatus.UNAUTHORIZED, "/health?details=1 needs an admin's token "
                                                                   "(plain /health needs none)\n")
            body |= await asyncio.to_thread(self._health_details)
        response = connection.respond(HTTPStatus.SERVICE_UNAVAILABLE if problem else HTTPStatus.OK,
                                      json.dumps(body) + "\n")
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        response.headers["Cache-Control"] = "no-store"
        return response

    def _health_details(self) -> dict[str, Any]:
        """What an operator's monitor reads (`/health?details=1`): counts, ages and names, no run's graph."""
        started, user = self._run_started
        running = self._current_run is not None
        node = self._node_started
        return {"version": __version__, "uptime_seconds": round(time.monotonic() - self._started_at, 1),
                "worker": "alive" if self._worker is not None and self._worker.is_alive() else "stopped",
                "queued": self.queue.pending_count(), "running_total": len(self.queue.running_runs()),
                "running": {"run_id": self._current_run, "user": user, "node": node[1] if node and node[0] == self._current_run else None,
                            "age_seconds": round(time.perf_counter() - started, 1)} if running else None}

    async def _files(self, connection: ServerConnection, request: Request, user: User | None,
                     encoded_id: str) -> Response:
        """`/files/<id>`: the file, or with `?size=N` its thumbnail; read in a thread, never on the event loop."""
        if self.token is None and self.users is None and cross_site_read(request.headers):
            # Nothing else guards a server without tokens: an <img> on any site could probe (and load) its files.
            return connection.respond(HTTPStatus.FORBIDDEN, "files are not served to pages of other origins\n")
        file_id = file_id_from_url_path(encoded_id)
        if file_id is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "not a file id: each path segment is percent-encoded "
                                      "once, as encodeURIComponent does (a '%' needs two hex digits after it, the "
                                      "bytes must be UTF-8, and a %2F inside a segment is refused)\n")
        try:
            file_path = self.protocol.store_for(user).resolve(file_id)
        except FileAccessError as exc:
            return connection.respond(HTTPStatus.NOT_FOUND, f"{exc}\n")
        size = parse_qs(urlsplit(request.path).query, keep_blank_values=True).get("size")
        if size is not None:          # `?size=` (empty) is a bad size, not a request for the whole file
            return await self._thumbnail_response(connection, file_path, size[0], user.name if user else None)
        range_header = request.headers.get("Range")
        try:
            stored = file_path.stat().st_size
        except OSError:
            return connection.respond(HTTPStatus.NOT_FOUND, "no such file\n")
        wanted = byte_range(range_header, stored)
        planned = wanted[1] - wanted[0] + 1 if isinstance(wanted, tuple) else 0 if wanted else stored
        owner = user.name if user is not None else None
        busy = self._downloads_busy(owner, planned)
        if busy:
            return self._busy(connection, busy, 1)
        self._count_file_bytes(owner, planned, 1)
        try:
            response = await asyncio.to_thread(self._file_response, file_path, "no-cache", range_header)
        except BaseException:
            self._count_file_bytes(owner, -planned, -1)
            raise
        asyncio.ensure_future(self._release_file_bytes(connection, owner, planned))
        response.headers["Content-Security-Policy"] = FILE_CSP
        return response

    # A /files answer is held in memory until its client has taken it (clients that asked and never read held
    # 1.9 GB), or until its client stops taking it (DOWNLOAD_STALL_SECONDS without progress; a small answer:
    # OPEN_TIMEOUT_SECONDS after its connection opened): then its connection is cut and its bytes count out. The budget is
    # each user's own: one server-wide budget let one user's 25 unread requests answer every other user 503.
    FILE_BYTES_OUT_LIMIT = 256 * 2**20      # one user's bytes waiting (one file may be more when none waits)
    FILE_RESPONSES_PER_USER = 16            # one user's /files answers waiting (a browser opens ~6 at once)
    FILE_BYTES_OUT_TOTAL = 1024 * 2**20     # all users' bytes waiting, past which only a user with none gets one

    def _downloads_busy(self, owner: str | None, planned: int) -> str | None:
        """Why `owner` may not have another /files answer of `planned` bytes now (503, try again), or None. A user
        with nothing waiting always gets one, so no user's downloads can shut out another's."""
        mine, responses = self._file_bytes_out.get(owner, (0, 0))
        if not responses:
            return None
        if responses >= self.FILE_RESPONSES_PER_USER:
            return (f"too many downloads at once: {responses} of yours are still being sent (at most "
                    f"{self.FILE_RESPONSES_PER_USER}); try again\n")
        everyone = sum(size for size, _count in self._file_bytes_out.values())
        if mine + planned > self.FILE_BYTES_OUT_LIMIT or everyone + planned > self.FILE_BYTES_OUT_TOTAL:
            return "too many downloads at once; try again\n"
        return None

    def _count_file_bytes(self, owner: str | None, size: int, responses: int) -> None:
        """Add (or with negative numbers take back) `owner`'s /files bytes and answers waiting for their clients."""
        mine, count = self._file_bytes_out.get(owner, (0, 0))
        mine, count = mine + size, count + responses
        if count > 0:
            self._file_bytes_out[owner] = (mine, count)
        else:
            self._file_bytes_out.pop(owner, None)

    async def _release_file_bytes(self, connection: ServerConnection, owner: str | None, planned: int) -> None:
        """Count a /files answer out once its connection is over: sent, or cut — a small answer OPEN_TIMEOUT_SECONDS
        after its connection opened, one sent in pieces after DOWNLOAD_STALL_SECONDS without progress."""
        try:
            await connection.wait_closed()
        finally:
            self._count_file_bytes(owner, -planned, -1)

    THUMBNAIL_CACHE = 256            # thumbnails kept in memory
    THUMBNAIL_WORKERS = 2            # threads making thumbnails (each holds one decoded image)
    THUMBNAIL_WAITING_LIMIT = 32     # thumbnails being made or waiting for a thread; past it: 503
    # ... of one user, on a server with users: one user's 40 requests filled the 32 and everyone else got 503
    THUMBNAIL_WAITING_PER_USER = 8
    # A request waits at most this long for its thumbnail, then gets 503 with Retry-After (the thumbnail goes on
    # being made and is cached for the retry): past websockets' 10 s opening timeout a waiting request was cut
    # without a status line, and the editor's history thumbnails broke
    THUMBNAIL_WAIT_SECONDS = 8.0

    async def _thumbnail_response(self, connection: ServerConnection, file_path: Path, size: str,
                                  owner: str | None = None) -> Response:
        """A JPEG or WebP of an image file, longest side `thumbnail_side(size)` at most (cached; made in the pool,
        one at a time per user: `_made_thumbnail`)."""
        side = thumbnail_side(size)
        if side is None:
            low, high = THUMBNAIL_REQUEST_RANGE
            return connection.respond(HTTPStatus.BAD_REQUEST, f"size must be an integer from {low} to {high}\n")
        if not (mimetypes.guess_type(file_path.name)[0] or "").startswith("image/"):
            return connection.respond(HTTPStatus.NOT_FOUND, "thumbnails exist only for image files\n")
        stat = file_path.stat()
        key = (str(file_path), stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, side)
        body = self._thumbnails.pop(key, None)
        if body is not None:
            self._thumbnails[key] = body          # the most recently used last
        else:
            job = self._thumbnail_jobs.get(key)
            if job is None:
                mine = self._thumbnail_waiting.get(owner, 0)
                if len(self._thumbnail_jobs) >= self.THUMBNAIL_WAITING_LIMIT or (
                        self.users is not None and mine >= self.THUMBNAIL_WAITING_PER_USER):
                    return self._busy(connection, "too many thumbnails are being made; try again shortly\n", 1)
                job = asyncio.ensure_future(self._made_thumbnail(owner, key, file_path, side))
                self._thumbnail_jobs[key] = job
                self._thumbnail_waiting[owner] = mine + 1

                def done(_job: Any, owner: str | None = owner) -> None:
                    self._thumbnail_jobs.pop(key, None)
                    left = self._thumbnail_waiting.get(owner, 1) - 1
                    if left > 0:
                        self._thumbnail_waiting[owner] = left
                    else:
                        self._thumbnail_waiting.pop(owner, None)
                job.add_done_callback(done)
            try:      # shielded: one client giving up does not cancel the others' thumbnail
                body = await asyncio.wait_for(asyncio.shield(job), self.THUMBNAIL_WAIT_SECONDS)
            except asyncio.TimeoutError:
                return self._busy(connection, "the thumbnail is still being made; try again shortly\n", 2)
            if body is None:
                return connection.respond(HTTPStatus.NOT_FOUND, "the file is not a readable image\n")
        headers = Headers([("Content-Type", thumbnail_type(body)), ("Content-Length", str(len(body))),
                           ("Cache-Control", "no-cache"), ("X-Content-Type-Options", "nosniff"),
                           ("Content-Security-Policy", FILE_CSP)])      # as every /files/ response
        return Response(200, "OK", headers, body)

    @staticmethod
    def _busy(connection: ServerConnection, text: str, retry_after: int) -> Response:
        response = connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, text)
        response.headers["Retry-After"] = str(retry_after)
        return response

    async def _made_thumbnail(self, owner: str | None, key: tuple, file_path: Path, side: int) -> bytes | None:
        """Make one thumbnail in the pool — on a server with users at most one of `owner`'s at a time, so another
        user's waits for no more than what is being made (one user's 32 thumbnails of 8192² images held both
        threads, and everyone's thumbnails got 503) — and keep it in the cache."""
        gate = self._thumbnail_shares.get(owner)
        if gate is None:           # without users every request is the one person's: both threads are theirs
            share = 1 if self.users is not None else self.THUMBNAIL_WORKERS
            gate = self._thumbnail_shares[owner] = asyncio.Semaphore(share)
        async with gate:
            body = await asyncio.get_running_loop().run_in_executor(self._thumbnail_pool, make_thumbnail,
                                                                    file_path, side)
        if body is not None:
            self._thumbnails.pop(key, None)
            while len(self._thumbnails) >= self.THUMBNAIL_CACHE:
                self._thumbnails.pop(next(iter(self._thumbnails)))
            self._thumbnails[key] = body
        return body

    def _file_response(self, file_path: Path, cache: str = "no-cache", range_header: str | None = None) -> Response:
        """The file (or the bytes a `Range` header asks for: 206, so `<video>` / `<audio>` can seek), typed as
        the file results' `mime` says (results.MIME_TYPES), else as the system's MIME table guesses."""
        kind = (default_mime(file_path.suffix) or mimetypes.guess_type(file_path.name)[0]
                or "application/octet-stream")
        headers = Headers([("Content-Type", kind), ("Accept-Ranges", "bytes"), ("Cache-Control", cache),
                           ("X-Content-Type-Options", "nosniff")])
        with open(file_path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            wanted = byte_range(range_header, size)
            if wanted == "unsatisfiable":
                headers["Content-Range"] = f"bytes */{size}"
                headers["Content-Length"] = "0"
                return Response(416, "Range Not Satisfiable", headers, b"")
            if wanted is None:
                body = file.read()
                headers["Content-Length"] = str(len(body))
                return Response(200, "OK", headers, body)
            first, last = wanted
            file.seek(first)
            body = file.read(last - first + 1)
        headers["Content-Range"] = f"bytes {first}-{first + len(body) - 1}/{size}"
        headers["Content-Length"] = str(len(body))
        return Response(206, "Partial Content", headers, body)

    def _static(self, connection: ServerConnection, path: str) -> Response:
        root = self.web_dist.resolve()
        if not (root / "index.html").is_file():
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE,
                                      "the editor is not built: run scripts/setup (it builds web/dist)\n")
        rel = path.lstrip("/") or "index.html"
        if len(rel) > 512 or "\0" in rel or rel.count("/") > 16:      # no asset of the editor looks like this
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        try:
            candidate = (root / rel).resolve()
            found = root in candidate.parents and candidate.is_file()
        except (OSError, ValueError):       # a name the file system refuses
            found = False
        if not found:
            if "." in rel.rsplit("/", 1)[-1]:
                return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
            candidate = root / "index.html"
        response = self._file_response(candidate, cache="no-cache" if candidate.name == "index.html"
                                       else "max-age=3600")
        # the editor is never shown inside another site's page (clickjacking: a hidden frame and a lure to click)
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
        response.headers["Content-Security-Policy"] = "frame-ancestors 'self'"
        return response

    # --- websocket side ---------------------------------------------------------

    async def handler(self, websocket: ServerConnection) -> None:
        """One connection: feed frames to the protocol (off the loop); a sender task drains its outbox."""
        client_id = uuid.uuid4().hex[:12]
        _allowed, user = self.authenticate(websocket.request)
        owner = user.name if user is not None else None
        if self._open_connections.get(owner, 0) >= self.MAX_CONNECTIONS_PER_USER:
            CLIENT_LOG.log(log, logging.WARNING, "connections", "refused a websocket of user %s from %s: %d open "
                           "(the limit)", owner or "-", peer_of(websocket), self.MAX_CONNECTIONS_PER_USER)
            await websocket.close(1008, f"too many connections ({self.MAX_CONNECTIONS_PER_USER} open for this user); "
                                        f"close other tabs or clients")
            return
        self._open_connections[owner] = self._open_connections.get(owner, 0) + 1
        outbox: asyncio.Queue = asyncio.Queue()       # bounded in `_put`, by progress as well as size
        self._sent_at[client_id] = asyncio.get_running_loop().time()
        self._outbox_bytes[client_id] = 0
        self.connections[client_id] = (websocket, outbox)
        sender = asyncio.create_task(self._send_loop(client_id, websocket, outbox))
        loop = asyncio.get_running_loop()
        try:
            log.info("client %s connected: user %s, from %s", client_id, user.name if user else "-", peer_of(websocket))
            self._deliver(self.protocol.connect(client_id, user))
            async for frame in websocket:
                if self._closed:        # shutting down: frames still buffered are dropped, not handled
                    continue
                try:
                    replies = await self._handle(loop, client_id, frame, owner)
                except RuntimeError:      # the pool is shut down: the server is closing
                    break
                self._deliver(replies)
                if any(out.message and out.message.get("type") in ("submitted", "requeued") for out in replies):
                    self._wake()
        except ConnectionClosed:
            pass
        finally:
            self.connections.pop(client_id, None)
            self._queue_notes.pop(client_id, None)
            self._pooled_until.pop(client_id, None)
            self._sent_at.pop(client_id, None)
            self._outbox_bytes.pop(client_id, None)
            self._open_connections[owner] -= 1
            if not self._open_connections[owner]:
                del self._open_connections[owner]
                gate = self._pool_shares.get(owner)
                if gate is not None and not gate.locked():
                    del self._pool_shares[owner]
            self.protocol.disconnect(client_id)
            sender.cancel()
            log.info("client %s disconnected", client_id)

    async def _handle(self, loop: asyncio.AbstractEventLoop, client_id: str, frame: str | bytes,
                      owner: str | None = None) -> list[Outgoing]:
        """One frame's replies: small frames are parsed here, and quick messages among them carried
        out here too (`ServerProtocol.handled_on_loop`, `dispatched_on_loop`; not with a cluster backend,
        whose interrupt talks to a remote worker); everything else in the pool (`_in_pool`: a share per user)."""
        protocol = self.protocol
        pooled = self._pooled_until.get(client_id)
        if (pooled is not None and time.monotonic() < pooled) or not protocol.handled_on_loop(client_id, frame):
            pool = self._big_handlers if len(frame) > protocol.ON_LOOP_MAX_CHARS else self._handlers
            return await self._in_pool(loop, client_id, owner, pool, protocol.receive, client_id, frame)
        message = protocol.parse(client_id, frame)
        if isinstance(message, list):
            return message
        if self.backend is None and protocol.dispatched_on_loop(client_id, message):    # a cluster: all in the pool
            # the message's own CPU time: wall time also counts waiting for the GIL while the worker holds it,
            # which can send a cheap submit to the pool (two more thread hops) for a second
            started = time.thread_time()
            replies = protocol.dispatch(client_id, message)
            if time.thread_time() - started > self.ON_LOOP_SECONDS:     # e.g. a graph full of errors
                self._pooled_until[client_id] = time.monotonic() + self.POOLED_SECONDS
            await asyncio.sleep(0)      # other connections get their turn before this one's next frame
            return replies
        return await self._in_pool(loop, client_id, owner, self._handlers, protocol.dispatch, client_id, message)

    # Messages of one user in the handler pools at once (all their connections together): a user with 64
    # connections each sending a graph that takes seconds to check held every pool thread, and everyone's history,
    # uploads and submits waited 30-90 s behind them (an operator's pass). Past it their next message waits here.
    POOL_SHARE_PER_USER = 2

    async def _in_pool(self, loop: asyncio.AbstractEventLoop, client_id: str, owner: str | None, pool: Any,
                       function: Callable[..., list[Outgoing]], *args: Any) -> list[Outgoing]:
        """`function(*args)` in `pool` once `owner` has fewer than POOL_SHARE_PER_USER messages there; a message
        whose connection closed while it waited is dropped unhandled (no one is left to read its reply; flooding and
        hanging up made the server check frames for a minute after their clients left)."""
        gate = self._pool_shares.get(owner)
        if gate is None:
            gate = self._pool_shares[owner] = asyncio.Semaphore(self.POOL_SHARE_PER_USER)
        async with gate:
            entry = self.connections.get(client_id)
            if entry is None or entry[0].state in (State.CLOSING, State.CLOSED):
                return []
            return await loop.run_in_executor(pool, function, *args)

    # A connection whose message took longer than ON_LOOP_SECONDS on the event loop has its messages
    # handled in the pool for the next POOLED_SECONDS: small frames are cheap unless they are, say,
    # graphs full of misspellings (every error is written out), and one client's flood of those must
    # not delay the others (at most one such message per connection and POOLED_SECONDS on the loop).
    ON_LOOP_SECONDS = 0.005
    POOLED_SECONDS = 1.0

    # A client is "not reading" when over OUTBOX_LIMIT frames wait for it and its sender has not finished a
    # send for STALL_SECONDS — one run's events for a client without batches may be ~2 frames per node, so
    # a count alone would drop a client that reads as fast as it can — or when OUTBOX_HARD_LIMIT frames wait.
    OUTBOX_LIMIT = 10_000
    STALL_SECONDS = 10.0
    OUTBOX_HARD_LIMIT = 500_000
    # The same in bytes: a count alone let a client that stopped reading hold 10,000 replies of 628 KB
    # (list_nodes) — 6 GB — and it sent 3,000 such requests for 75 KB.
    OUTBOX_BYTES_LIMIT = 64 * 1024**2
    OUTBOX_BYTES_HARD_LIMIT = 512 * 1024**2
    # Websockets one user (or, without users, everyone) may hold open: an editor tab holds one; 800 idle
    # connections opened in 5 s multiplied what each may hold.
    MAX_CONNECTIONS_PER_USER = 64

    SEND_TURN = 32      # frames a sender sends before the other tasks get a turn

    async def _send_loop(self, client_id: str, websocket: ServerConnection, outbox: asyncio.Queue) -> None:
        loop = asyncio.get_running_loop()
        sent = 0
        try:
            while True:
                frame = await outbox.get()
                await websocket.send(frame)
                self._sent_at[client_id] = loop.time()      # progress: see OUTBOX_LIMIT
                if client_id in self._outbox_bytes:
                    self._outbox_bytes[client_id] -= len(frame)
                sent += 1
                if sent % self.SEND_TURN == 0:
                    # neither get() of a non-empty queue nor a send below the write buffer's limit suspends: a
                    # client without batches had 120,000 frames of one big run sent in one go, every other
                    # client's messages waiting 7 s
                    await asyncio.sleep(0)
        except (ConnectionClosed, asyncio.CancelledError):
            pass

    def _deliver(self, outgoing: list[Outgoing]) -> None:
        """Queue each message on its recipients' outboxes (never waits for a slow client).

        A run's events wait (in `_held`) until its `submitted`/`requeued` reply has gone out:
        the reply is computed in a handler thread while the worker may already be running the run.
        Each message is encoded once: a broadcast once for all recipients, a batch (clients
        that asked for them get consecutive text messages as one `batch` frame, `_batched`)
        in one call for all its messages.
        """
        frames: dict[str, list[str | bytes | dict | EngineEvents]] = {}
        grouped: set[str] = set()       # recipients of EngineEvents (made messages below, per recipient)
        for out in self._in_order(outgoing):
            if out.events is not None:
                frames.setdefault(out.to, []).append(out.events)
                grouped.add(out.to)
                continue
            if out.message is not None and out.message.get("type") == "queue_changed":
                self._throttled_queue_note(out, frames)
                continue
            if out.to is None:
                payload = out.binary if out.binary is not None else dump_message(out.message)
                for client_id in list(self.connections):
                    frames.setdefault(client_id, []).append(payload)
            else:     # one recipient: encoded below, alone or with its batch
                frames.setdefault(out.to, []).append(out.binary if out.binary is not None else out.message)
        clients = self.protocol.clients
        for client_id, payloads in frames.items():
            state = clients.get(client_id)
            if client_id in grouped:
                batch = state is not None and state.batch
                payloads = expand_node_events(payloads, batch, batch and state.compact_events)
            if state is not None and state.batch and len(payloads) > 1:
                payloads = without_settled_starts(payloads)
                payloads = self._batched(compacted(payloads) if state.compact_events else payloads)
            for payload in payloads:
                self._put(client_id, payload if isinstance(payload, (str, bytes)) else dump_message(payload))

    BATCH_MAX_MESSAGES = 500        # ~75 KB of node events; a batch stays far below clients' frame limits
    BATCH_MAX_CHARS = 256 * 1024

    @classmethod
    def _batched(cls, payloads: list[str | bytes | dict]) -> list[str | bytes]:
        """Consecutive text messages → `{"type": "batch", "messages": [...]}` frames, binary frames kept in place.

        Messages not yet encoded (dicts) are encoded together, in one call; a batch over
        BATCH_MAX_CHARS is split in two (so one huge message travels alone).
        """
        out: list[str | bytes] = []
        run: list[str | dict] = []

        def encode(group: list[str | dict]) -> None:
            if len(group) == 1 and not (isinstance(group[0], dict) and group[0].get("type") == "node_events"):
                only = group[0]       # alone: a plain frame (`node_events` rows exist only inside batches)
                out.append(only if isinstance(only, str) else dump_message(only))
                return
            if all(isinstance(m, dict) for m in group):
                text = dump_message({"type": "batch", "messages": group})
            else:
                text = '{"type":"batch","messages":[' + ",".join(
                    m if isinstance(m, str) else dump_message(m) for m in group) + "]}"
            if len(text) > cls.BATCH_MAX_CHARS and len(group) > 1:     # one huge message travels alone
                half = len(group) // 2
                encode(group[:half])
                encode(group[half:])
                return
            out.append(text)

        for payload in payloads:
            if isinstance(payload, bytes):
                if run:
                    encode(run)
                    run = []
                out.append(payload)
                continue
            run.append(payload)
            if len(run) >= cls.BATCH_MAX_MESSAGES:
                encode(run)
                run = []
        if run:
            encode(run)
        return out

    def _put(self, client_id: str, payload: str | bytes) -> None:
        """One frame onto one client's outbox; a client that stopped reading is disconnected."""
        entry = self.connections.get(client_id)
        if entry is None:
            return
        websocket, outbox = entry
        outbox.put_nowait(payload)
        waiting = outbox.qsize()
        waiting_bytes = self._outbox_bytes[client_id] = self._outbox_bytes.get(client_id, 0) + len(payload)
        over = waiting > self.OUTBOX_LIMIT or waiting_bytes > self.OUTBOX_BYTES_LIMIT
        if over and (waiting > self.OUTBOX_HARD_LIMIT or waiting_bytes > self.OUTBOX_BYTES_HARD_LIMIT
                     or asyncio.get_running_loop().time() - self._sent_at.get(client_id, 0.0) > self.STALL_SECONDS):
            log.warning("client %s is not reading (%d frames, %.0f MB wait for it); disconnecting it", client_id,
                        waiting, waiting_bytes / 1e6)
            self.connections.pop(client_id, None)
            asyncio.ensure_future(websocket.close(1008, "too many unread messages"))

    QUEUE_NOTE_INTERVAL = 0.1   # seconds: at most ~10 queue_changed messages per client per second

    def _throttled_queue_note(self, out: Outgoing, frames: dict[str, list[str | bytes | dict]]) -> None:
        """`queue_changed` to each recipient at most once per QUEUE_NOTE_INTERVAL (leading + trailing).

        Without this, N clients and M queue changes cost N×M messages (and N×M refreshes by editors);
        a change inside the interval is folded into one trailing message that carries the latest
        change and `coalesced`: how many changes it stands for. Run events are never throttled.
        """
        loop = asyncio.get_running_loop()
        targets = list(self.connections) if out.to is None else [out.to]
        for client_id in targets:
            note = self._queue_notes.setdefault(client_id, {"last": 0.0, "waiting": None, "count": 0})
            now = loop.time()
            if note["waiting"] is None and now - note["last"] >= self.QUEUE_NOTE_INTERVAL:
                note["last"] = now
                frames.setdefault(client_id, []).append(dump_message(out.message))
                continue
            if note["waiting"] is None:
                loop.call_later(self.QUEUE_NOTE_INTERVAL - (now - note["last"]), self._flush_queue_note, client_id)
            note["waiting"] = out.message
            note["count"] += 1

    def _flush_queue_note(self, client_id: str) -> None:
        note = self._queue_notes.get(client_id)
        if note is None or note["waiting"] is None:
            return
        message = {**note["waiting"], "coalesced": note["count"]}
        note.update(last=asyncio.get_running_loop().time(), waiting=None, count=0)
        self._put(client_id, dump_message(message))

    def _in_order(self, outgoing: list[Outgoing]) -> list[Outgoing]:
        ready: list[Outgoing] = []
        unannounced = self.protocol.unannounced
        for out in outgoing:
            run_id = out.run_id or (out.message or {}).get("run_id")
            if run_id is None or run_id not in unannounced:
                ready.append(out)
            elif (out.message or {}).get("type") in ("submitted", "requeued"):
                ready.append(out)
                unannounced.discard(run_id)
                ready.extend(self._held.pop(run_id, []))
            else:
                self._held.setdefault(run_id, []).append(out)
        return ready

    def _post(self, outgoing: list[Outgoing], urgent: bool = False) -> None:
        """From the worker thread: deliver on the event loop, batched.

        Messages wait in `_posted`; only the first one posted since the loop last drained
        schedules a drain, POST_DELAY later, so the events of a burst of fast nodes travel
        together: one loop wake-up and (for batching clients) one frame, not one per event.
        The delay bounds how late any event can be; nothing waits for a next event.
        `urgent` (a run's terminal event) drains at once, taking whatever is waiting with it.
        """
        if not outgoing or self._loop is None or self._loop.is_closed():
            return
        with self._posted_lock:
            first = not self._posted
            self._posted.extend(outgoing)
        try:
            if urgent:
                self._loop.call_soon_threadsafe(self._drain_posted)
            elif first:
                self._loop.call_soon_threadsafe(self._loop.call_later, self.POST_DELAY, self._drain_posted)
        except RuntimeError:      # the loop closed meanwhile
            pass

    POST_DELAY = 0.002    # seconds an event may wait for others to travel with it

    def _drain_posted(self) -> None:
        with self._posted_lock:
            outgoing, self._posted = self._posted, []
        self._deliver(outgoing)

    # --- worker -----------------------------------------------------------------

    def _wake(self) -> None:
        self._wake_event.set()

    def _running_node(self, run_id: str) -> dict[str, Any] | None:
        """The node run `run_id` started last, `{node_id, type, checks}`: `checks` is false when it has not checked
        for interrupts since it started (`Session.running_node_checks`); true when the session cannot tell (a Ray
        worker runs it, or it is between nodes). None when this process does not run it."""
        started = self._node_started
        if started is None or started[0] != run_id or self._current_run != run_id:
            return None
        _run_id, node_id, node_type = started
        seen = self.session.running_node_checks(run_id) if self.backend is None else None
        checks = seen is None or seen[0] != node_id or seen[1] > 0
        return {"node_id": node_id, "type": node_type, "checks": checks}

    def _interrupt_run(self, run_id: str) -> bool:
        """Interrupt a run the queue shows running — even while it is still being validated."""
        if self.backend is not None:
            return self.backend.interrupt(run_id)
        self.session.interrupt(run_id)
        return True

    WORKER_RETRY_SECONDS = 1.0

    def _reserve_worker(self) -> bool:
        """From a handler thread: if the worker is idle, make it wait for the run being submitted (see protocol)."""
        with self._handoff_lock:
            if not self._worker_idle or self._reserved or self._handed is not None or self._stopping.is_set():
                return False
            self._reserved = True
            return True

    def _hand_over(self, record: Any) -> None:
        """From a handler thread: the reserved run, stored as running (None: it was queued; claim as usual)."""
        with self._handoff_lock:
            self._reserved = False
            self._handed = record
        self._wake()

    def _work(self) -> None:
        """Take queued runs in order, forever: no exception ends this loop (it is logged and reported)."""
        while not self._stopping.is_set():
            self._wake_event.wait(timeout=self.WORKER_RETRY_SECONDS * 5)
            self._wake_event.clear()
            if self._unrecorded:
                self._record_unrecorded()
            with self._handoff_lock:
                if self._reserved:          # a submit is storing the run this worker runs next: wait for it
                    continue
                self._worker_idle = False
                record, self._handed = self._handed, None
            while not self._stopping.is_set():
                if record is None:
                    try:
                        record = self.queue.claim_next(
                            needs_graph=lambda run_id: run_id not in self.protocol.prepared,
                            held=self.protocol.held_users())
                    except Exception:  # noqa: BLE001 — e.g. a disk I/O error: try again shortly
                        log.exception("could not read the run queue; retrying")
                        time.sleep(self.WORKER_RETRY_SECONDS)
                        break
                    if record is None:
                        break
                try:
                    self._execute(record)
                except BaseException:  # noqa: BLE001 — the worker must survive anything
                    log.exception("the worker failed around run %s; going on with the next run", record.id)
                record = None
            with self._handoff_lock:
                self._worker_idle = True

    TERMINAL_EVENTS = ("run_finished", "run_failed", "run_interrupted")

    def _on_event(self, run_id: str, event: Any) -> None:
        if event.type == "node_started":    # for /health?details=1: which node a long run is in
            self._node_started = (run_id, getattr(event, "node_id", None), getattr(event, "node_type", ""))
        if type(event) in ROW_EVENTS:     # node started / cached / finished: the Event object joins its group
            with self._posted_lock:
                last = self._posted[-1] if self._posted else None
                if last is not None and last.events is not None and last.run_id == run_id:
                    last.events.append(event)
                    return
            self._post(self.protocol.node_events(run_id, [event]))
            return
        if event.type in self.TERMINAL_EVENTS:   # sent after the queue records the outcome (see _execute)
            self._terminal_event = event
            return
        preview = None
        if event.type == "node_progress" and event.preview is not None:
            try:
                preview = encode_image(event.preview)
            except Exception:  # noqa: BLE001 — a bad preview must not fail the run
                log.exception("could not encode a preview")
        self._post(self.protocol.run_event(run_id, event_dict(event), preview))

    def _finish(self, run_id: str, status: str, error: dict | None = None, result: dict | None = None) -> None:
        """Record a run's end; if the database refuses (disk full, I/O error), the run is reported failed."""
        started, user = self._run_started
        by_admin = self.protocol.interrupted_by.pop(run_id, None) if status == "interrupted" else None
        if by_admin is not None:          # its owner (and the history) learn who stopped it, as the log does
            error = interrupted_by_admin(error, by_admin)
        error = self.protocol.stored_error(error, user)
        log.info("run %s (user %s) %s after %.2f s%s", run_id, user or "-", status, time.perf_counter() - started,
                 f" (interrupted by admin {by_admin})" if by_admin is not None else "")
        for attempt in range(2):
            try:
                self.queue.finish(run_id, status, error=error, result=result)
                return
            except Exception as exc:  # noqa: BLE001
                log.exception("could not record the end of run %s (attempt %d)", run_id, attempt + 1)
                failure = exc
                time.sleep(0.2)
        message = (f"the run ended ({status}) but the server could not record it: "
                   f"{type(failure).__name__}: {failure}; check the disk under the data folder")
        self._terminal_event = RunFailed(run_id, None, message)
        # recorded as failed as soon as the database takes writes again (`_record_unrecorded`): left "running", the
        # run held one of its user's slots and could be neither interrupted, cancelled nor deleted until a restart
        self._unrecorded[run_id] = {"message": message}

    def _record_unrecorded(self) -> None:
        """From the worker: record the runs whose end the database refused (`_finish`) as failed, when it can."""
        for run_id, error in list(self._unrecorded.items()):
            try:
                self.queue.finish(run_id, "failed", error=error)
            except Exception:  # noqa: BLE001 — still refused: try again after the next run or wake-up
                return
            self._unrecorded.pop(run_id, None)
            self._post(self.protocol.queue_changed(run_id, "failed", self.protocol._owner_user(run_id)))

    def _execute(self, record: Any) -> None:
        run_id = record.id
        self._current_run = run_id
        self._run_started = (time.perf_counter(), record.user)     # for the log line of its end (`_finish`)
        self._terminal_event = None
        folders = self.protocol.run_folders(record.user)
        store = self.files if record.user is None else self.files.for_user(record.user)
        prepared = self.protocol.prepared.pop(run_id, None)     # validated at submit, overrides applied
        if prepared is None and not record.graph:    # claimed without its graph, then evicted: read it
            record = self.queue.get(run_id) or record
        source, overrides = (prepared, None) if prepared is not None else (record.graph, record.overrides)
        self._node_started = None
        log.info("run %s (user %s) started: %s node(s)", run_id, record.user or "-", node_count(source))
        budget = self.protocol.output_budget(record.user)
        time_limit = self.protocol.run_time_limit(record.user)
        over_time = threading.Event()
        timer = None
        if time_limit is not None:       # stopped at its next check (a sampler's step, the next node)
            timer = threading.Timer(time_limit, lambda: (over_time.set(), self.session.interrupt(run_id)))
            timer.daemon = True
            timer.start()
        failure: BaseException | None = None      # how the run ended, when it did not succeed
        try:
            removed = self.protocol.removed_user_error(record.user)
            if removed is not None:
                raise _UserRemoved(removed)
            result = self.session.run(source, overrides=overrides, outputs=record.outputs,
                                      on_event=lambda e: self._on_event(run_id, e), run_id=run_id,
                                      model_writes=self.protocol.may_write_models(record.user),
                                      output_budget=budget, cache_scope=record.user,
                                      # a plain user's FreeMemory frees their own entries only: the models are
                                      # everyone's (the rule of the free_memory message: admins, or no users)
                                      free_shared_memory=self.protocol.may_write_models(record.user),
                                      **({"input_dir": folders[0], "output_dir": folders[1]} if folders else {}))
        except _UserRemoved as exc:
            failure = exc
            log.info("run %s (user %s) %s", run_id, record.user or "-", exc.error["message"])
            self._terminal_event = RunFailed(run_id, None, exc.error["message"])
            self._finish(run_id, "failed", error=exc.error)
        except GraphValidationError as exc:
            failure = exc
            self._terminal_event = RunFailed(run_id, None, str(exc))
            self._finish(run_id, "failed", error={"message": str(exc), "errors": exc.to_list()})
        except NodeExecutionError as exc:
            failure = exc
            if isinstance(exc.exception, (NodeInputError, StorageLimitError)):     # said to its user: no traceback
                log.info("run %s failed at node %r (%s): %s", run_id, exc.node_id, exc.node_type, exc.exception)
            else:
                log.warning("run %s failed at node %r (%s):\n%s", run_id, exc.node_id, exc.node_type, exc.traceback)
            self._finish(run_id, "failed", error={
                "node_id": exc.node_id, "node_type": exc.node_type, "exception_type": exc.exception_type,
                "message": str(exc.exception), "traceback": exc.traceback},
                result=self._files_of_stopped_run(run_id, store, exc))
        except RunInterrupted as exc:
            failure = exc
            saved = self._files_of_stopped_run(run_id, store, exc)
            removed = self.protocol.removed_user_error(record.user)
            if removed is not None:      # stopped because its user left the users file: said so, as queued ones are
                error = self.protocol.removed_while_running_error(record.user, exc.node_id)
                self._terminal_event = RunFailed(run_id, exc.node_id, error["message"])
                self._finish(run_id, "failed", error=error, result=saved)
            elif over_time.is_set():       # the server stopped it, not its user: failed, saying why
                error = self.protocol.over_time_error(record.user, time_limit, exc.node_id,
                                                      time.perf_counter() - self._run_started[0])
                log.info("run %s (user %s) stopped at its %d s limit", run_id, record.user, time_limit)
                self._terminal_event = RunFailed(run_id, exc.node_id, error["message"])
                self._finish(run_id, "failed", error=error, result=saved)
            elif self._stopping.is_set():     # the server is shutting down: said so, with a code scripts can read
                self._finish(run_id, "interrupted", error=SERVER_STOPPED_ERROR | {"node_id": exc.node_id},
                             result=saved)
            else:
                self._finish(run_id, "interrupted", error={"message": str(exc), "node_id": exc.node_id}, result=saved)
        except BaseException as exc:  # noqa: BLE001 — the worker must survive anything
            failure = exc
            log.exception("run %s crashed the worker loop", run_id)
            self._terminal_event = RunFailed(run_id, None, f"{type(exc).__name__}: {exc}")
            self._finish(run_id, "failed", error={"message": f"{type(exc).__name__}: {exc}"})
        else:
            try:
                files = self._send_files(run_id, store, result.outputs)
                outputs = {node_id: jsonable({k: v for k, v in values.items() if k != "files"})
                           for node_id, values in result.outputs.items()}
            except Exception as exc:  # noqa: BLE001 — e.g. an output file removed meanwhile: the run failed
                log.exception("could not collect the results of run %s", run_id)
                message = f"the run ended but its results could not be collected: {type(exc).__name__}: {exc}"
                self._terminal_event = RunFailed(run_id, None, message)
                self._finish(run_id, "failed", error={"message": message})
            else:
                self._finish(run_id, "succeeded", result=self.protocol.result_within(
                    {"outputs": outputs, "files": files, "executed": result.executed, "cached": result.cached,
                     **({"drawn": jsonable(result.drawn)} if result.drawn else {})},     # RandomInt's values
                    budget))
        finally:
            if timer is not None:
                timer.cancel()
            self.protocol.release_budget(budget)
            self._current_run = None
            if self._terminal_event is not None:   # now get_outputs / queue_status see the final status
                self._post(self.protocol.run_event(run_id, event_dict(self._terminal_event)), urgent=True)
                time.sleep(0)     # the GIL to the event loop now: the result leaves before this thread looks for work
            if failure is not None:       # its frames hold the failed node's inputs: freed now, not at some later GC
                release_failed_run(failure)
                failure = None
            self._runs_since_prune += 1
            if self._runs_since_prune >= self.prune_every:    # maintenance, after the client has its answer
                self._runs_since_prune = 0
                try:
                    self.queue.prune(keep=self.history_limit, slack=self.prune_every)
                except Exception:  # noqa: BLE001
                    log.exception("could not prune the history")

    def _files_of_stopped_run(self, run_id: str, store: FileStore, exc: BaseException) -> dict[str, Any] | None:
        """The stored result of a failed or interrupted run that saved files before it stopped: those files, so
        its history shows them and `delete_run` removes them (they stayed in no run, counted in the quota)."""
        written = getattr(exc, "files_written", None)
        if not written:
            return None
        try:
            files = self._send_files(run_id, store, written)
        except Exception:  # noqa: BLE001 — the run's outcome is recorded either way
            log.exception("could not collect the files run %s saved before it stopped", run_id)
            return None
        return {"outputs": {}, "files": files} if files else None

    def _send_files(self, run_id: str, store: FileStore, outputs: dict[str, Any]) -> list[dict[str, Any]]:
        """Output files → file ids in the run owner's store; images go to the owner as binary frames,
        other kinds (video, audio, mesh, ...) as `output_file` messages."""
        files = []
        try:
            items = collect_files(outputs, store.folders["output"])
        except ValueError as exc:       # ResultFileError: the executor checks files first, so rarely here
            log.warning("run %s reported output files that break the result contract: %s", run_id, exc)
            items = []
        for item in items:
            try:
                file_id = store.file_id(item["path"])
            except ValueError:
                log.warning("run %s reported a file outside its output folder: %r", run_id, item["path"])
                continue
            entry = {"file_id": file_id, **{k: v for k, v in item.items() if k not in ("path", "name")}}
            try:       # which file the run wrote: a later file under the same name is not its (_still_written)
                info = os.stat(item["path"])
                entry.update(bytes=info.st_size, mtime_ns=info.st_mtime_ns)
            except OSError:
                pass
            files.append(entry)
            if item["kind"] == "image":
                data = Path(item["path"]).read_bytes()
                self._post(self.protocol.output_image(run_id, item["node_id"], file_id, data,
                                                      item.get("format") or "png", item["index"]))
            else:
                self._post(self.protocol.output_file(run_id, entry))
        return files


def _origin_argument(text: str) -> str:
    """`--allow-origin`: scheme://host[:port] as browsers send it (a trailing / is dropped; a path is refused)."""
    origin = text.strip().rstrip("/")
    if not re.fullmatch(r"https?://[^/?#\s]+", origin):
        raise argparse.ArgumentTypeError(f"{text!r} is not an origin; write it as the browser sends it: "
                                         f"https://NAME or http://NAME:PORT (no path)")
    return origin


def _host_argument(text: str) -> str:
    """`--allow-host`: a host name or address as in a Host header (no scheme, no path)."""
    name = text.strip()
    if "://" in name or "/" in name or not name:
        bare = urlsplit(name).hostname if "://" in name else None
        raise argparse.ArgumentTypeError(f"{text!r} is not a host name; give the name alone"
                                         + (f" (--allow-host {bare})" if bare else ""))
    if name.count(":") == 1 or (name.startswith("[") and "]:" in name):
        # a Host header is compared by its name alone (its port stripped): NAME:443 was taken and never matched
        bare = name.rsplit(":", 1)[0]
        raise argparse.ArgumentTypeError(f"{text!r} has a port; the Host check compares names only (any port), so "
                                         f"it would never match: give the name alone (--allow-host {bare})")
    return name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nodegraph serve", description="Serve the editor and the websocket API.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free)")
    parser.add_argument("--data-dir", default=".nodegraph",
                        help="the run queue and history database, uploads' records, the server lock (default: "
                             "./.nodegraph, relative to the folder the server starts in; back it up whole)")
    parser.add_argument("--output-dir", default="output", help="where runs write their files (default: ./output)")
    parser.add_argument("--input-dir", default="input", help="uploads and input files (default: ./input)")
    parser.add_argument("--token", default=os.environ.get("NODEGRAPH_TOKEN"),
                        help="required from clients (env NODEGRAPH_TOKEN); generated if listening beyond loopback "
                             "or with --allow-host (a proxy in front)")
    parser.add_argument("--users", metavar="FILE",
                        help="named users, each with a token, seeing only their own runs and files "
                             "(create with `nodegraph users add NAME --file FILE`; see docs/security.md)")
    parser.add_argument("--allow-origin", action="append", default=[], metavar="URL", type=_origin_argument,
                        help="another browser origin allowed to connect, e.g. https://tools.example.com (repeatable)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME", type=_host_argument,
                        help="another host name clients may use to reach this server (repeatable; "
                             "loopback names and the bound address are always allowed)")
    parser.add_argument("--max-message-bytes", type=int, default=DEFAULT_MAX_MESSAGE, metavar="BYTES",
                        help=f"the largest websocket frame a client may send (default {DEFAULT_MAX_MESSAGE // 2**20} "
                             f"MiB; bounds an upload; a larger frame closes the connection with code 1009; at least "
                             f"{MIN_MESSAGE_BYTES // 1024} KiB)")
    parser.add_argument("--model-paths", metavar="FILE",
                        help='JSON file of extra model folders, e.g. an A1111/ComfyUI install: {"checkpoints": '
                             '["/path", ...], "loras": [...]} (env NODEGRAPH_MODEL_PATHS; as `nodegraph run` takes it; '
                             'docs/models.md)')
    parser.add_argument("--history-limit", type=int, default=1000, metavar="N",
                        help="finished runs kept in history, per user (default 1000; the oldest go first)")
    parser.add_argument("--compression", choices=["auto", "deflate", "none"], default="auto",
                        help="websocket permessage-deflate: auto (default) = only when listening beyond loopback")
    add_plugin_arguments(parser)
    from .distributed.options import add_cache_arguments, add_ray_arguments

    add_cache_arguments(parser)
    add_ray_arguments(parser)
    parser.add_argument("--print-schemas", action="store_true", help="print the JSON Schemas of client messages")
    return parser


def freeze_startup_heap() -> None:
    """Move everything alive now (torch, the node registry, plugins) out of the cyclic GC's reach.

    A server allocates a little per message and per node event, which keeps triggering
    collections; without this each full collection walks the whole startup heap (≈ half a
    million objects once torch is imported), and the websocket path spent more CPU in the
    collector than in validating the graph (benchmarks/server_overhead.py). Objects frozen here
    are still freed by reference counting; only cycles among them outlive the process, and
    startup objects live as long as the server anyway. `nodegraph serve` calls this once, after
    the session is built (not `Server.start`: a process that starts many servers, like the
    tests, would keep every earlier one's cycles).
    """
    gc.collect()
    gc.freeze()


# a run interrupted because the server stopped (SIGTERM, Ctrl+C), told apart from a user's interrupt by its code
SERVER_STOPPED_ERROR = {"code": "server_stopped",
                        "message": "the server stopped while this run was executing; re-queue it"}


async def serve_forever(args: argparse.Namespace) -> None:
    from .session import Session

    from .distributed.options import apply_cpu_threads, cache_options

    apply_cpu_threads(args)
    users = UserBook.load(args.users) if args.users else None
    from .model_paths import ModelPaths

    model_paths = ModelPaths.default(args.model_paths, source="--model-paths")    # ModelPathsError: exit 2
    session = Session(**plugin_options(args), **cache_options(args), model_paths=model_paths,
                      output_dir=args.output_dir, input_dir=args.input_dir)
    for warning in session.plugin_warnings():
        level = {"error": logging.ERROR, "warning": logging.WARNING}.get(warning.get("level"), logging.INFO)
        log.log(level, "plugin %s: %s (%s)", warning.get("plugin"), warning.get("message"), warning.get("fix"))
    for line in session.model_path_warnings():
        log.warning("%s", line)
    backend = None
    if args.ray is not None:
        from .distributed.options import backend_from_args

        backend = backend_from_args(args, session)
        backend.prepare()        # a local cluster starts on this (the main) thread, before Ray's workers
    stopping = asyncio.Event()
    with contextlib.suppress(NotImplementedError, RuntimeError):     # (no signal handlers on Windows' loop)
        # after `prepare`: Ray's own SIGTERM handler exits at once; this one closes the server first
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    server = Server(session, data_dir=args.data_dir, host=args.host, port=args.port, token=args.token,
                    allowed_origins=args.allow_origin, max_message_bytes=args.max_message_bytes,
                    history_limit=args.history_limit, users=users, allowed_hosts=args.allow_host,
                    backend=backend, compression=None if args.compression == "none" else args.compression)
    await server.start()
    freeze_startup_heap()
    addresses = machine_addresses() if server.any_address else [args.host]   # 0.0.0.0 is no address to open
    url = f"http://{url_host(addresses[0])}:{server.port}/"
    if server.token:
        url += f"?token={server.token}"
    banner(f"nodegraph {__version__} serving on {url}")
    if server.any_address:
        others = ", ".join(f"http://{url_host(name)}:{server.port}/" for name in addresses[1:])
        banner(f"listening on every address of this machine{f' (also {others})' if others else ''}; another host "
               f"name (a DNS name, a reverse proxy's) needs --allow-host NAME")
    if not (server.web_dist / "index.html").is_file():
        banner("note: the editor is not built, so the page answers 503 (the websocket API works); build it with "
               "`scripts/setup` (or `cd web && npm ci && npm run build`)")
    banner(f"data in {Path(args.data_dir).resolve()}, outputs in {Path(args.output_dir).resolve()}, inputs in "
           f"{Path(args.input_dir).resolve()}")      # an operator sees where the history is kept
    if users is not None:
        banner(f"{len(users)} user(s) from {args.users}; open {opening_url(url, args.allow_host)}?token=YOUR_TOKEN")
    if args.allow_host and server.token:
        banner(f"through the proxy: {opening_url(url, args.allow_host)}?token={server.token} (add its path prefix)")
    if server.generated_token:
        banner(f"token (generated; clients must send it): {server.token}")
    try:
        await stopping.wait()
        log.info("SIGTERM: stopping (the running run is interrupted and recorded as such)")
    except asyncio.CancelledError:        # Ctrl+C: asyncio.run cancels this task
        log.info("Ctrl+C (SIGINT): stopping (the running run is interrupted and recorded as such)")
        raise
    finally:
        await server.close()


def banner(line: str) -> None:
    """A start-up line on stdout, timestamped as the log's lines are (which a restart's lines are told apart by)."""
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}", flush=True)


def opening_url(local_url: str, allowed_hosts: list[str]) -> str:
    """The address users open: through the proxy named first with --allow-host (TLS assumed; a path prefix is the
    proxy's to add), else this server's own."""
    return f"https://{url_host(allowed_hosts[0])}/" if allowed_hosts else local_url.split("?", 1)[0]


MIN_MESSAGE_BYTES = 64 * 1024      # below it an ordinary graph or upload no longer fits in a frame


def serve_flags_problem(args: argparse.Namespace) -> str | None:
    """Flags that were accepted and then ignored or unusable, as one line with the fix; None when they are fine."""
    if args.users and (args.token or os.environ.get("NODEGRAPH_TOKEN")):
        return ("--token (or NODEGRAPH_TOKEN) and --users do not go together: with a users file every user has their "
                "own token (nodegraph users add); drop one")
    if args.history_limit < 1:
        return f"--history-limit must be 1 or more (finished runs kept per user), not {args.history_limit}"
    if args.max_message_bytes < MIN_MESSAGE_BYTES:
        return (f"--max-message-bytes {args.max_message_bytes} is below {MIN_MESSAGE_BYTES}: a graph or an upload "
                f"would not fit in one message")
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.print_schemas:
        print(json.dumps(message_schemas(), indent=2))
        return 0
    from .distributed.options import apply_memory_reserve, cache_budget_warning, cache_options, ray_flags_problem

    try:
        cache_options(args)
    except ValueError as exc:          # --cache-budget with --cache all|none
        print(f"nodegraph serve: {exc}", file=sys.stderr)
        return 2
    try:
        apply_memory_reserve(args)     # before the budget's check, which measures against the reserve
    except ValueError as exc:
        print(f"nodegraph serve: {exc}", file=sys.stderr)
        return 2
    if (too_big := cache_budget_warning(args)) is not None:     # set_cache_policy refuses it; the flag is warned
        print(f"nodegraph serve: warning: {too_big}", file=sys.stderr)
    if ray_flags_problem(args):        # --workers 3 without --ray: accepted and ignored before
        print(f"nodegraph serve: {ray_flags_problem(args)}", file=sys.stderr)
        return 2
    problem = serve_flags_problem(args)
    if problem:
        print(f"nodegraph serve: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # websockets logs every connection's open, close and HTTP answer at INFO: a line per request that anyone
    # can cause by connecting; ours (who connected, what was refused) say what an admin needs
    logging.getLogger("websockets").setLevel(logging.WARNING)
    try:
        asyncio.run(serve_forever(args))
    except KeyboardInterrupt:
        pass
    except (UsersFileError, PluginOptionError, ModelPathsError, RayNotInstalledError, ClusterUnreachableError,
            DataFolderInUse, FolderNotWritable) as exc:
        print(f"nodegraph serve: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:     # the address (port in use, no such interface) or the data folder (not writable)
        if exc.errno == errno.EADDRINUSE:
            why = f"port {args.port} on {args.host} is in use (another server?); stop it or give --port"
        else:
            why = f"{exc.strerror or exc}{f': {exc.filename!r}' if exc.filename else ''}"
        print(f"nodegraph serve: cannot start: {why}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:       # a data folder where the queue database cannot be made or opened
        print(f"nodegraph serve: cannot open the run queue {str(Path(args.data_dir) / 'runs.sqlite')!r}: {exc}; "
              f"give a writable --data-dir", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
