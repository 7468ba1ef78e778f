"""The server's security rules, one test (or a few) per class of hole (issue 11, docs/security.md).

Classes: model-folder listings (names only, bounded, off the event loop), stored-JSON caps and
unreadable rows, handler failures answered with error frames, a worker that survives database
errors, interrupts during validation, the token cookie, the Host check, strict JSON, upload
bombs and over-long file ids, the hello token, and named users (visibility, files, quotas).
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import sqlite3
import struct
import time
import zlib
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from nodegraph import Session
from nodegraph.errors import RunInterrupted
from nodegraph.files import FileStore
from nodegraph.hookspecs import hookimpl
from nodegraph.model_paths import ModelPaths
from nodegraph.node import Node, NodeInputs, Output
from nodegraph.protocol import ServerProtocol
from nodegraph.run_queue import RunQueue
from nodegraph.server import Server
from nodegraph.users import User, UserBook, UsersFileError, hash_token
from nodegraph.users import main as users_main

from .test_server import ARITHMETIC, Client, RunningServer, wait_graph

SAVE_IMAGE = {"format_version": 1, "nodes": {
    "render": {"type": "RenderTinyWorld", "inputs": {
        "caption": "a large red circle in the centre, on a white background", "size": 32}},
    "save": {"type": "SaveImage", "inputs": {"images": {"node": "render", "output": "image"},
                                             "filename_prefix": "secret"}}}}


def strict_loads(text: str):
    """json.loads as a browser's JSON.parse: NaN and Infinity are errors."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def http_request(port: int, path: str, headers: dict | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    response.body = response.read()
    return response


@pytest.fixture
def server(tmp_path):
    running = RunningServer(tmp_path)
    yield running
    running.stop()


# --- 2. model listings ---------------------------------------------------------------------------

def test_list_models_accepts_only_registered_folder_names(server):
    """A path, `..` or an unknown name gets unknown_model_folder listing the real names; names work."""
    client = Client(server.url())
    for folder in ("/usr", "../secret_dir", "checkpoints/../../", "nope"):
        client.send({"type": "list_models", "folder": folder})
        error = client.next_of("error")
        assert error["code"] == "unknown_model_folder" and "checkpoints" in error["details"]["folders"]
    client.send({"type": "list_models", "folder": "checkpoints"})
    assert "tiny_world.safetensors" in client.next_of("models")["folders"]["checkpoints"]
    client.close()


def test_model_listing_ends_on_symlink_loops_and_is_bounded(tmp_path):
    """A symlink loop and a very deep tree are walked once, within the depth bound, quickly."""
    root = tmp_path / "models" / "checkpoints"
    (root / "a").mkdir(parents=True)
    (root / "a" / "model.safetensors").write_bytes(b"x")
    (root / "a" / "loop").symlink_to(root)            # checkpoints/a/loop → checkpoints
    deep = root
    for i in range(30):
        deep = deep / f"d{i}"
    deep.mkdir(parents=True)
    (deep / "too_deep.safetensors").write_bytes(b"x")
    paths = ModelPaths(roots=[tmp_path / "models"])
    started = time.perf_counter()
    names, _ = paths.list("checkpoints")
    assert time.perf_counter() - started < 2
    assert names == ["a/model.safetensors"]


def test_a_link_from_one_model_root_into_another_does_not_hide_its_files(tmp_path):
    """A hostile pass: `a/checkpoints/alias` → `b/checkpoints` (extra model paths that cross-link) listed b's
    model only as 'alias/real.safetensors', and a graph naming 'real.safetensors' was refused although the error
    said it looked in b. Each root's files are listed under their plain names; the link adds nothing twice."""
    for root in ("a", "b"):
        (tmp_path / root / "checkpoints").mkdir(parents=True)
    (tmp_path / "b" / "checkpoints" / "real.safetensors").write_bytes(b"x")
    (tmp_path / "a" / "checkpoints" / "own.safetensors").write_bytes(b"x")
    (tmp_path / "a" / "checkpoints" / "alias").symlink_to(tmp_path / "b" / "checkpoints")
    names, _ = ModelPaths(roots=[tmp_path / "a", tmp_path / "b"]).list("checkpoints")
    assert names == ["own.safetensors", "real.safetensors"], names
    # a link into a folder no root lists is still followed (a model folder on another disk)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "far.safetensors").write_bytes(b"x")
    (tmp_path / "a" / "checkpoints" / "disk").symlink_to(tmp_path / "elsewhere")
    names, _ = ModelPaths(roots=[tmp_path / "a", tmp_path / "b"]).list("checkpoints")
    assert names == ["disk/far.safetensors", "own.safetensors", "real.safetensors"], names


def test_a_slow_listing_does_not_hold_up_other_clients(server, tmp_path, monkeypatch):
    """While one client's model listing takes 2 s, another client's ping is answered within 1 s."""
    original = server.session.model_paths.list

    def slow_list(folder):
        time.sleep(2)
        return original(folder)

    monkeypatch.setattr(server.session.model_paths, "list", slow_list)
    slow, fast = Client(server.url()), Client(server.url())
    slow.send({"type": "list_models", "folder": "checkpoints"})
    time.sleep(0.1)
    started = time.perf_counter()
    fast.send({"type": "ping"})
    fast.next_of("pong", timeout=5)
    assert time.perf_counter() - started < 1.0
    assert slow.next_of("models", timeout=10)
    slow.close(), fast.close()


# --- 3. stored JSON ----------------------------------------------------------------------------

def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"x": value}
    return value


def test_deeply_nested_ui_or_metadata_is_refused_at_submit(server):
    """ui/metadata/overrides nested past the cap get value_too_large naming the field; nothing is queued."""
    client = Client(server.url())
    for field, message in (("graph", {**ARITHMETIC, "ui": nested(200)}),
                           ("graph", {**ARITHMETIC, "metadata": nested(900)}),
                           ("overrides", {"overrides": {"show.text": nested(100)}})):
        body = {"type": "submit", "graph": message} if field == "graph" else {"type": "submit", "graph": ARITHMETIC,
                                                                               **message}
        client.send(body)
        error = client.next_of("error")
        assert error["code"] == "value_too_large" and error["details"]["field"] == field
    client.send({"type": "queue_status"})
    assert client.next_of("queue")["pending"] == []
    client.close()


def test_the_cheap_storage_bound_never_clears_what_the_walk_refuses():
    """members_within_storage_caps (the protocol's fast path) says True only when storable_problem finds
    nothing in every member; brackets and escaped quotes inside strings do not fool it."""
    import random

    from nodegraph.run_queue import MAX_STORED_DEPTH, members_within_storage_caps, storable_problem

    def chain_of(depth, leaf):
        value = leaf
        for level in range(depth - 1):
            value = [value] if level % 2 else {'k\\"[{': value}
        return value

    cases = [chain_of(depth, leaf) for depth in (1, 2, MAX_STORED_DEPTH - 1, MAX_STORED_DEPTH,
                                                  MAX_STORED_DEPTH + 1, 80)
             for leaf in (1, "s", [], {}, None, "[[[[", '\\"]', 'x\\', "é}")]
    rng = random.Random(0)
    alphabet = ["[", "]", "{", "}", '"', "\\", "a", "é", "\n"]

    def random_value(depth):
        roll = rng.random()
        if depth > 55 or roll < 0.3:
            return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 5)))
        if roll < 0.4:
            return rng.randint(-9, 9)
        if roll < 0.7:
            return [random_value(depth + 1) for _ in range(rng.randint(0, 2))]
        return {"".join(rng.choice(alphabet) for _ in range(3)): random_value(depth + 1)
                for _ in range(rng.randint(0, 2))}

    cases += [random_value(0) for _ in range(2000)]
    agreed = 0
    for i, value in enumerate(cases):
        storable = storable_problem(value, "graph") is None
        cleared = members_within_storage_caps(json.dumps({"type": "submit", "graph": value}, ensure_ascii=i % 2 == 0))
        assert storable or not cleared, value
        agreed += storable == cleared
    assert agreed >= len(cases) - 20      # conservative only at the exact depth edge (an empty innermost container)
    assert not members_within_storage_caps(json.dumps({"graph": chain_of(MAX_STORED_DEPTH + 1, 1)}))
    assert members_within_storage_caps('{"graph": "\ud800[["}')       # a lone surrogate is text, not an error


def test_numbers_too_large_for_a_float_are_invalid_json(server):
    """1e999 would parse as Infinity, which strict JSON cannot store or send back: refused, nothing queued."""
    client = Client(server.url())
    client.ws.send('{"type": "submit", "graph": {"format_version": 1, "nodes": {"a": {"type": "Float", '
                   '"inputs": {"value": 1e999}}}}}')
    error = client.next_of("error")
    assert error["code"] == "invalid_json" and "1e999" in error["message"]
    client.send({"type": "queue_status"})
    assert client.next_of("queue")["pending"] == []
    client.close()


def test_compression_is_off_on_loopback_by_default_and_on_beyond_it(tmp_path):
    """compression="auto": a loopback server negotiates no permessage-deflate, one on another address (or
    asked for "deflate") does; anything else is refused at construction."""
    from nodegraph.server import Server

    session = Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in")
    assert Server(session, data_dir=tmp_path / "a", host="0.0.0.0").compression == "deflate"
    with pytest.raises(ValueError, match="compression"):
        Server(session, data_dir=tmp_path / "b", compression="zstd")
    for option, negotiated in (({}, False), ({"compression": "deflate"}, True)):
        running = RunningServer(tmp_path / str(negotiated), session=session, **option)
        try:
            with connect(running.url(), compression="deflate") as ws:
                assert bool(ws.protocol.extensions) is negotiated
        finally:
            running.stop()


def test_an_unreadable_stored_row_does_not_break_listings(tmp_path):
    """A row whose graph cannot be decoded shows as failed with a message; the others still list and run."""
    queue = RunQueue(tmp_path / "runs.sqlite")
    good = queue.enqueue(ARITHMETIC)
    poisoned = queue.enqueue(ARITHMETIC)
    deep = "[" * 100_000 + "]" * 100_000
    with queue._lock:
        queue._db.execute("UPDATE run_graphs SET graph = ? WHERE id = ?", (deep, poisoned.id))
        queue._db.execute("DELETE FROM run_graphs WHERE id = ?", (good.id,))      # as stored before run_graphs
        queue._db.execute("UPDATE runs SET graph = ? WHERE id = ?", ("{not json", good.id))
        queue._db.execute("UPDATE runs SET listing = NULL")      # as stored before listings: listed from the graph
    third = queue.enqueue(ARITHMETIC)
    pending = queue.pending()                        # no RecursionError, no JSONDecodeError
    assert [r.id for r in pending] == [third.id]
    record = queue.get(poisoned.id)
    assert record.status == "failed" and "cannot be read" in record.error["message"]
    assert queue.claim_next().id == third.id
    runs, total = queue.history()
    assert {poisoned.id, good.id} <= {r.id for r in runs} and total == 2
    queue.close()
    reopened = RunQueue(tmp_path / "runs.sqlite")    # and across a restart
    assert reopened.get(poisoned.id).status == "failed"
    reopened.close()


# --- handler failures ----------------------------------------------------------------------------

def test_a_failing_handler_answers_with_an_error_frame(server, monkeypatch):
    """A bug in a handler gives internal_error; the connection stays open and usable."""
    def broken(client, message):
        raise RuntimeError("boom")

    monkeypatch.setattr(server.server.protocol, "_on_history", broken)
    client = Client(server.url())
    client.send({"type": "history", "request_id": 5})
    error = client.next_of("error")
    assert error["code"] == "internal_error" and "boom" not in error["message"]
    client.send({"type": "ping"})
    assert client.next_of("pong")
    client.close()


# --- 5. worker survival ------------------------------------------------------------------------------

def test_a_database_error_while_recording_a_run_does_not_kill_the_worker(server, monkeypatch):
    """finish() raising 'disk I/O error' reports that run failed; later runs still execute."""
    queue = server.server.queue
    original = queue.finish
    failures = {"left": 2}

    def failing_finish(*args, **kwargs):
        if failures["left"] > 0:
            failures["left"] -= 1
            raise sqlite3.OperationalError("disk I/O error")
        return original(*args, **kwargs)

    monkeypatch.setattr(queue, "finish", failing_finish)
    client = Client(server.url())
    client.send({"type": "submit", "graph": ARITHMETIC})
    first = client.next_of("submitted")["run_id"]
    failed = client.next_of("run_failed", run_id=first)
    assert "could not record" in failed["message"]
    client.send({"type": "submit", "graph": {**ARITHMETIC, "metadata": {"title": "again"}}})
    second = client.next_of("submitted")["run_id"]
    assert client.next_of("run_finished", run_id=second)
    client.close()


# --- 6. interrupts --------------------------------------------------------------------------------------

def test_an_interrupt_before_the_run_starts_executing_is_kept():
    """session.interrupt(run_id) while the run is still being validated stops it as soon as it starts."""
    session = Session(autoload=False)
    session.interrupt("run-1")
    with pytest.raises(RunInterrupted):
        session.run(ARITHMETIC, run_id="run-1")
    assert session.run(ARITHMETIC, run_id="run-2").outputs     # the request was for run-1 only


def test_interrupt_reaches_a_run_the_queue_shows_running(server):
    """Interrupting a freshly started run ends it interrupted, whatever stage it is in."""
    client = Client(server.url())
    client.send({"type": "submit", "graph": wait_graph(30)})
    run_id = client.next_of("submitted")["run_id"]
    client.next_of("run_started", run_id=run_id)
    client.send({"type": "interrupt", "run_id": run_id})
    assert client.next_of("run_interrupted", run_id=run_id)
    client.close()


# --- 7. token cookie, 8. Host, 13. hello token -------------------------------------------------------------

def test_the_editor_loads_with_a_token_through_an_httponly_cookie(tmp_path):
    """/?token=T sets an HttpOnly SameSite=Lax cookie (kept 30 days) and redirects; assets and the websocket accept
    it. (Strict kept a link opened from chat or mail from carrying it, and it ended with the browser session.)"""
    running = RunningServer(tmp_path, token="s3cret")
    name = f"nodegraph_token_{running.port}"        # one cookie per port: browsers share cookies between ports
    try:
        assert http_request(running.port, "/").status == 401
        response = http_request(running.port, "/?token=s3cret")
        assert response.status == 303 and response.getheader("Location") == "./"
        cookie = response.getheader("Set-Cookie")
        assert cookie.startswith(f"{name}=s3cret") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert "Max-Age=2592000" in cookie
        headers = {"Cookie": f"{name}=s3cret"}
        assert http_request(running.port, "/assets/app.js", headers).status != 401
        assert http_request(running.port, "/", {"Cookie": f"{name}=wrong"}).status == 401
        assert http_request(running.port, "/", {"Cookie": "nodegraph_token_1=s3cret"}).status == 401   # another's
        Client(running.url(), additional_headers=headers).close()
        assert http_request(running.port, "/", {"Authorization": "bearer s3cret"}).status != 401   # any case
        assert http_request(running.port, "/", {"Cookie": f"{name}=stale; {name}=s3cret"}).status \
            != 401                                          # a stale cookie beside the right one
        for path, target in (("/\\evil.example", "./"), ("//evil.example", "./"),
                             ("/%2F%2Fevil.example", "./"), ("/%5C%5Cevil.example", "./"),
                             ("/assets/my%20app.js?v=2&", "./my%20app.js?v=2")):
            # a sign-in link never leads to another site (a relative reference keeps the host, and a reverse
            # proxy's path prefix); a link keeps its encoding and its other query parameters
            response = http_request(running.port, f"{path}{'&' if '?' in path else '?'}token=s3cret".replace("&&", "&"))
            assert response.status == 303 and response.getheader("Location") == target, path
        # a stale ?token= (a bookmark from before a rotation) beside a valid cookie or Bearer header: taken out of
        # the URL, the cookie kept (it was refused, so the bookmark locked a signed-in user out)
        for headers in ({"Cookie": f"{name}=s3cret"}, {"Authorization": "Bearer s3cret"}):
            response = http_request(running.port, "/?token=old", headers)
            assert response.status == 303 and response.getheader("Location") == "./", headers
            assert response.getheader("Set-Cookie") is None
        assert http_request(running.port, "/?token=old").status == 401
        # a file asked for with ?token= is served (a script's urllib or `curl -L` without a cookie jar got a
        # redirect it could not follow, then 401: a client writer's pass)
        out = running.session.output_dir
        out.mkdir(parents=True, exist_ok=True)
        (out / "a.txt").write_text("made")
        response = http_request(running.port, "/files/output/a.txt?token=s3cret")
        assert response.status == 200 and response.body == b"made"
        assert http_request(running.port, "/files/output/a.txt?token=wrong").status == 401
    finally:
        running.stop()


def test_refusals_name_the_real_cause_for_two_host_headers_and_a_file_page(server):
    """Two Host headers (a client library adding its own beside the caller's) were told to use --allow-host; a
    page opened from a file (Origin: null) was told to --allow-origin null, which serve refuses (a client writer's
    pass)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.putrequest("GET", "/files/output/x.txt", skip_host=True)
    conn.putheader("Host", f"127.0.0.1:{server.port}")
    conn.putheader("Host", f"127.0.0.1:{server.port}")
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 421 and b"2 Host headers" in response.read()
    for origin in ("null", "file://"):
        response = http_request(server.port, "/ws", {"Origin": origin})
        assert response.status == 403 and b"opened from a file" in response.body, origin
    assert b"--allow-origin http://evil.example" in http_request(server.port, "/ws", {"Origin": "http://evil.example"}).body


def test_requests_for_other_host_names_are_refused(server):
    """DNS rebinding: a Host header naming another site gets 421, for files and the websocket alike."""
    out = server.session.output_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "a.txt").write_text("private")
    assert http_request(server.port, "/files/output/a.txt").status == 200
    for host in ("evil.example", "evil.example:8188", "127.0.0.1.evil.example", "", "localhost:evil.com",
                 "[::1]evil.com", "[::1]:x"):       # a port that is not digits (a hostile pass)
        response = http_request(server.port, "/files/output/a.txt", {"Host": host})
        assert response.status == 421 and b"private" not in response.body, host
    assert http_request(server.port, "/files/output/a.txt", {"Host": f"localhost:{server.port}"}).status == 200
    assert http_request(server.port, "/files/output/a.txt", {"Host": "localhost:"}).status == 200   # empty port: RFC
    with pytest.raises(InvalidStatus) as info:
        with connect(server.url(), additional_headers={"Host": "evil.example"}):
            pass
    assert info.value.response.status_code == 421


def test_allow_host_adds_a_name(tmp_path):
    """--allow-host NAME makes that Host header acceptable, and pages served from http(s)://NAME (a reverse proxy
    on the default ports) may open the websocket: with --allow-host alone the editor behind a proxy got 403
    "origin https://gen.example.com is not allowed", which named no fix. Other origins still get 403, with one."""
    from websockets.sync.client import connect as ws_connect

    running = RunningServer(tmp_path, allowed_hosts=["studio.lan"], token="s3cret")
    bearer = {"Authorization": "Bearer s3cret"}
    try:
        assert http_request(running.port, "/files/input/x", {"Host": "studio.lan:1", **bearer}).status == 404   # not 421
        for origin in ("https://studio.lan", "http://studio.lan", f"http://studio.lan:{running.port}"):
            with ws_connect(running.url(), origin=origin, additional_headers=bearer):
                pass
        with pytest.raises(InvalidStatus) as info:
            with ws_connect(running.url(), origin="https://evil.example", additional_headers=bearer):
                pass
        assert info.value.response.status_code == 403 and b"--allow-origin" in info.value.response.body
    finally:
        running.stop()


def test_a_server_behind_a_proxy_gets_a_token(tmp_path):
    """--allow-host NAME means others reach the server through NAME (a reverse proxy on this machine): like a
    server listening beyond loopback it needs a token and generates one (it served everyone, admin included,
    with no warning). A loopback name given to --allow-host changes nothing; --users needs no token."""
    session = Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in")
    proxied = Server(session, data_dir=tmp_path / "a", allowed_hosts=["gen.example.com"])
    assert proxied.generated_token and len(proxied.token) >= 24
    assert Server(session, data_dir=tmp_path / "b", allowed_hosts=["gen.example.com"], token="t").token == "t"
    assert Server(session, data_dir=tmp_path / "c", allowed_hosts=["localhost"]).token is None
    assert Server(session, data_dir=tmp_path / "d").token is None


def test_a_server_on_every_address_answers_to_its_ip_addresses(tmp_path):
    """Bound to 0.0.0.0 (a LAN without DNS), a request for http://192.0.2.2:PORT/ got 421 "start it with
    --allow-host", as did the URL it printed. An IP address can be used (DNS rebinding needs a name); a name is
    still refused, and a page may open the websocket only from the very address and port it asked for."""
    from websockets.sync.client import connect as ws_connect

    running = RunningServer(tmp_path, host="0.0.0.0", token="s3cret")
    bearer = {"Authorization": "Bearer s3cret"}
    try:
        for host in (f"192.0.2.2:{running.port}", "10.1.2.3", f"[fe80::1]:{running.port}"):
            assert http_request(running.port, "/files/input/x", {"Host": host, **bearer}).status == 404, host  # not 421
        assert http_request(running.port, "/files/input/x", {"Host": "evil.example", **bearer}).status == 421
        host = f"192.0.2.2:{running.port}"

        def open_from(origin):          # ws://192.0.2.2:PORT/ws over a socket to loopback (the Host it sends)
            return ws_connect(f"ws://{host}/ws", sock=socket.create_connection(("127.0.0.1", running.port)),
                              origin=origin, additional_headers=bearer)

        with open_from(f"http://{host}"):
            pass
        for origin in (f"http://203.0.113.9:{running.port}", "http://192.0.2.2:1", "https://evil.example"):
            with pytest.raises(InvalidStatus) as info:
                with open_from(origin):
                    pass
            assert info.value.response.status_code == 403, origin
    finally:
        running.stop()
    loopback = RunningServer(tmp_path / "lo")          # on loopback an address other than its own is still refused
    try:
        assert http_request(loopback.port, "/files/input/x", {"Host": "192.0.2.2"}).status == 421
    finally:
        loopback.stop()


def test_the_editor_page_is_not_framed_by_other_sites(tmp_path):
    """Clickjacking: the editor's page says it may be framed by its own origin only."""
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text("<!doctype html><title>editor</title>")
    running = RunningServer(tmp_path, web_dist=dist)
    try:
        response = http_request(running.port, "/")
        assert response.status == 200 and response.getheader("X-Frame-Options") == "SAMEORIGIN"
        assert response.getheader("Content-Security-Policy") == "frame-ancestors 'self'"
    finally:
        running.stop()


def test_allow_origin_and_allow_host_values_are_checked():
    """A trailing slash on --allow-origin is dropped (browsers send none); a path, or a URL given to --allow-host,
    is refused naming the form (they were accepted and never matched)."""
    from nodegraph.server import build_parser

    parser = build_parser()
    assert parser.parse_args(["--allow-origin", "https://gen.example.com/"]).allow_origin == ["https://gen.example.com"]
    for bad in (["--allow-origin", "gen.example.com"], ["--allow-origin", "https://gen.example.com/app"],
                ["--allow-host", "https://gen.example.com"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


def test_a_hello_with_a_wrong_token_is_refused(tmp_path):
    """A hello whose token does not match gets invalid_token and the connection stays un-greeted."""
    running = RunningServer(tmp_path, token="s3cret")
    try:
        with connect(running.url("/ws?token=s3cret")) as ws:
            ws.send(json.dumps({"type": "hello", "protocol_version": 1, "token": "wrong"}))
            assert json.loads(ws.recv(timeout=5))["code"] == "invalid_token"
            ws.send(json.dumps({"type": "ping"}))
            assert json.loads(ws.recv(timeout=5))["code"] == "hello_required"
            ws.send(json.dumps({"type": "hello", "protocol_version": 1, "token": "s3cret"}))
            assert json.loads(ws.recv(timeout=5))["type"] == "welcome"
    finally:
        running.stop()


def test_a_hello_token_on_a_server_without_one_is_refused(tmp_path):
    """Without a server token, a hello carrying one is refused rather than silently accepted."""
    protocol = ServerProtocol(Session(autoload=False), RunQueue(), FileStore(tmp_path, tmp_path))
    protocol.connect("c")
    (reply,) = protocol.receive("c", json.dumps({"type": "hello", "protocol_version": 1, "token": "x"}))
    assert reply.message["code"] == "invalid_token"


# --- 9. strict JSON ----------------------------------------------------------------------------

class Overflow(Node):
    """A FLOAT output of Infinity, as a plugin's node may give (no built-in node makes one now: Math refuses overflow)."""

    class Inputs(NodeInputs):
        pass

    outputs = (Output("value", "FLOAT"),)

    def run(self) -> dict:
        return {"value": float("inf")}


class OverflowPlugin:
    @staticmethod
    @hookimpl
    def register_nodes():
        return [Overflow]


def test_nan_in_and_out(tmp_path):
    """NaN/Infinity sent by a client is invalid_json; a non-finite output (a plugin's) arrives as a string, in
    strict JSON."""
    session = Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in", plugins=[("overflow", OverflowPlugin)])
    server = RunningServer(tmp_path, session=session)
    client = Client(server.url())
    client.ws.send('{"type": "submit", "graph": {"format_version": 1, "nodes": {}}, "x": NaN}')
    assert client.next_of("error")["code"] == "invalid_json"
    graph = {"format_version": 1, "nodes": {
        "m": {"type": "Overflow", "inputs": {}},
        "s": {"type": "ShowValue", "inputs": {"value": {"node": "m", "output": "value"}}}}}
    client.send({"type": "submit", "graph": graph})
    run_id = client.next_of("submitted")["run_id"]
    client.next_of("run_finished", run_id=run_id)
    client.send({"type": "get_outputs", "run_id": run_id})
    raw = None
    for _ in range(20):
        frame = client.ws.recv(timeout=10)
        if isinstance(frame, str) and '"outputs"' in frame:
            raw = frame
            break
    message = strict_loads(raw)
    assert "Infinity" in json.dumps(message["outputs"])
    client.close()
    server.stop()


# --- 10. uploads and file ids ------------------------------------------------------------------------

def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width × height (a decompression bomb's calling card)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + \
        chunk(b"IEND", b"")


def upload_frame(name: str, data: bytes) -> bytes:
    head = json.dumps({"type": "upload", "name": name, "request_id": 1}).encode()
    return struct.pack(">I", len(head)) + head + data


def test_a_decompression_bomb_upload_is_refused_cleanly(server):
    """A 60-byte PNG declaring 20000×20000 gets invalid_upload; the connection stays open."""
    client = Client(server.url())
    bomb = png_declaring(20000, 20000)
    assert len(bomb) < 100
    client.ws.send(upload_frame("bomb.png", bomb))
    error = client.next_of("error")
    assert error["code"] == "invalid_upload" and "pixels" in error["message"]
    client.send({"type": "ping"})
    assert client.next_of("pong")
    client.close()


def test_overlong_and_odd_file_ids_get_404_without_a_traceback(server):
    """A file id longer than the file system allows, or full of odd bytes, is a plain 404."""
    for path in ("/files/output/" + "a" * 5000, "/files/input/" + "b" * 300 + ".png",
                 "/files/output/" + "/".join(["c" * 250] * 20)):
        response = http_request(server.port, path)
        assert response.status == 404 and b"Traceback" not in response.body


# --- multi-user -----------------------------------------------------------------------------

@pytest.fixture
def users(tmp_path):
    book = UserBook(path=tmp_path / "users.json")
    tokens = {"alice": book.add(User("alice", max_queued=2)), "bob": book.add(User("bob", max_bytes=10**9)),
              "root": book.add(User("root", role="admin"))}
    book.save()
    running = RunningServer(tmp_path, users=UserBook.load(tmp_path / "users.json"))
    running.tokens = tokens
    yield running
    running.stop()


def as_user(server, name: str) -> Client:
    return Client(server.url(f"/ws?token={server.tokens[name]}"))


def test_users_see_only_their_own_runs(users):
    """Bob cannot see, read, cancel, re-queue or delete Alice's run; an admin sees everything."""
    alice, bob, root = as_user(users, "alice"), as_user(users, "bob"), as_user(users, "root")
    alice.send({"type": "submit", "graph": SAVE_IMAGE})
    run_id = alice.next_of("submitted")["run_id"]
    alice.next_of("run_finished", run_id=run_id)
    alice.send({"type": "get_outputs", "run_id": run_id})
    file_id = alice.next_of("outputs")["files"][0]["file_id"]
    assert file_id.startswith("output/secret")
    for message in ({"type": "get_outputs"}, {"type": "cancel"}, {"type": "requeue"}, {"type": "delete_run"},
                    {"type": "interrupt"}):
        bob.send({**message, "run_id": run_id})
        assert bob.next_of("error")["code"] == "not_found", message
    bob.send({"type": "history"})
    assert bob.next_of("history")["runs"] == []
    root.send({"type": "history"})
    assert [r["run_id"] for r in root.next_of("history")["runs"]] == [run_id]
    root.send({"type": "get_outputs", "run_id": run_id})
    admin_id = root.next_of("outputs")["files"][0]["file_id"]
    assert admin_id == f"output/alice/{file_id.split('/', 1)[1]}"
    # files: by the owner's id for Alice, refused for Bob, by the prefixed id for the admin
    def fetch(name, fid):
        return http_request(users.port, f"/files/{fid}", {"Cookie": f"nodegraph_token_{users.port}={users.tokens[name]}"})
    assert fetch("alice", file_id).status == 200
    assert fetch("bob", file_id).status == 404 and fetch("bob", admin_id).status == 404
    assert fetch("root", admin_id).status == 200
    assert http_request(users.port, f"/files/{file_id}").status == 401
    for client in (alice, bob, root):
        client.close()


def test_a_user_does_not_get_another_users_result_from_the_cache(users):
    """Bob submitting Alice's exact graph got `cached` back (and a fast run): it confirmed what Alice had run.
    Each user's results are cached for that user only; the same user's second run is cached."""
    alice, bob = as_user(users, "alice"), as_user(users, "bob")
    alice.send({"type": "submit", "graph": SAVE_IMAGE})
    run_id = alice.next_of("submitted")["run_id"]
    assert "render" in alice.next_of("run_finished", run_id=run_id)["executed"]
    bob.send({"type": "submit", "graph": SAVE_IMAGE})
    run_id = bob.next_of("submitted")["run_id"]
    finished = bob.next_of("run_finished", run_id=run_id)
    assert "render" in finished["executed"] and "render" not in finished.get("cached", []), finished
    alice.send({"type": "submit", "graph": SAVE_IMAGE})
    run_id = alice.next_of("submitted")["run_id"]
    assert alice.next_of("run_finished", run_id=run_id)["executed"] == []      # her own: from the cache
    alice.close()
    bob.close()


def test_users_graphs_read_only_their_own_uploads(users):
    """An upload lands in the user's own input folder; another user's graph cannot load it by name."""
    alice, bob = as_user(users, "alice"), as_user(users, "bob")
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG")
    alice.ws.send(upload_frame("mine.png", buffer.getvalue()))
    uploaded = alice.next_of("uploaded")
    assert uploaded["file_id"] == "input/mine.png"
    assert (users.session.input_dir / "alice" / "mine.png").is_file()
    graph = {"format_version": 1, "nodes": {
        "load": {"type": "LoadImage", "inputs": {"image": "mine.png"}},
        "save": {"type": "SaveImage", "inputs": {"images": {"node": "load", "output": "image"}}}}}
    alice.send({"type": "submit", "graph": graph})
    run_id = alice.next_of("submitted")["run_id"]
    assert alice.next_of("run_finished", run_id=run_id)
    bob.send({"type": "submit", "graph": graph})
    reply = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        frame = json.loads(bob.ws.recv(timeout=20))
        if frame.get("type") in ("run_failed", "error"):
            reply = frame
            break
    assert reply is not None, "bob's graph must not load alice's upload"
    alice.close(), bob.close()


def test_an_admins_upload_is_where_their_runs_read(users):
    """An admin's upload went to the whole store's input folder, while the admin's runs read their own
    (`input/<name>/`): LoadImage of the file just uploaded failed with "no file". Now it lands in the admin's
    folder, its id is the whole store's view of it (as an admin sees every file) and it can be fetched by it."""
    from PIL import Image

    root = as_user(users, "root")
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "blue").save(buffer, format="PNG")
    root.ws.send(upload_frame("cat.png", buffer.getvalue()))
    uploaded = root.next_of("uploaded")
    assert uploaded["name"] == "cat.png" and uploaded["file_id"] == "input/root/cat.png"
    assert (users.session.input_dir / "root" / "cat.png").is_file()
    graph = {"format_version": 1, "nodes": {
        "load": {"type": "LoadImage", "inputs": {"image": uploaded["name"]}},
        "save": {"type": "SaveImage", "inputs": {"images": {"node": "load", "output": "image"}}}}}
    root.send({"type": "submit", "graph": graph})
    run_id = root.next_of("submitted")["run_id"]
    assert root.next_of("run_finished", run_id=run_id)
    fetched = http_request(users.port, f"/files/{uploaded['file_id']}",
                           {"Cookie": f"nodegraph_token_{users.port}={users.tokens['root']}"})
    assert fetched.status == 200
    root.close()


def test_per_user_queue_limit(users):
    """Past max_queued, submit gets quota_exceeded naming the limit."""
    alice = as_user(users, "alice")
    for i in range(2):
        alice.send({"type": "submit", "graph": wait_graph(20 + i)})
        alice.next_of("submitted")
    alice.send({"type": "submit", "graph": ARITHMETIC})
    error = alice.next_of("error")
    assert error["code"] == "quota_exceeded" and "2 run(s)" in error["message"]
    assert error["details"]["limit"] == "max_queued"
    alice.close()


def test_per_user_storage_limit(tmp_path):
    """Past max_bytes, uploads and submits get quota_exceeded; deleting files frees space. A run cannot write past
    the limit either: its image would pass 600 bytes, so it is not kept and the run fails saying so."""
    book = UserBook(path=tmp_path / "users.json")
    token = book.add(User("carol", max_bytes=600))     # the 286-byte graph fits, its image does not
    running = RunningServer(tmp_path, users=book)
    try:
        carol = Client(running.url(f"/ws?token={token}"))
        carol.send({"type": "submit", "graph": SAVE_IMAGE})
        run_id = carol.next_of("submitted")["run_id"]
        failed = carol.next_of("node_error", run_id=run_id)
        assert "would pass user carol's storage limit" in failed["message"], failed
        assert not list((running.session.output_dir / "carol").rglob("*.png"))
        (running.session.output_dir / "carol" / "old.bin").write_bytes(b"x" * 300)     # earlier files
        carol.send({"type": "submit", "graph": ARITHMETIC})
        error = carol.next_of("error")
        assert error["code"] == "quota_exceeded" and "delete_run" in error["message"]
        assert error["details"]["limit"] == "max_bytes"
        carol.send({"type": "delete_file", "file_id": "output/old.bin"})
        carol.next_of("file_deleted")
        carol.send({"type": "delete_run", "run_id": run_id})      # its stored graph and error count too
        carol.next_of("run_deleted")
        carol.send({"type": "submit", "graph": wait_graph(0)})
        assert carol.next_of("submitted")
        carol.close()
    finally:
        running.stop()


def test_list_files_finds_what_pruned_runs_left_and_what_the_quota_counts(tmp_path):
    """The history keeps a user's newest runs (`--history-limit`); older runs leave it and their files stay,
    counted in `max_bytes` — and the user had no way to find them (no run named them any more). `list_files`
    lists a user's own files newest first with sizes, and what their storage holds against the limit."""
    book = UserBook(path=tmp_path / "users.json")
    tokens = {"hana": book.add(User("hana", max_bytes=10**6)), "ivan": book.add(User("ivan")),
              "root": book.add(User("root", role="admin"))}
    running = RunningServer(tmp_path, users=book, history_limit=2)
    try:
        hana = Client(running.url(f"/ws?token={tokens['hana']}"))
        for size in (32, 40, 48, 56, 64):      # five different images: five files
            graph = json.loads(json.dumps(SAVE_IMAGE))
            graph["nodes"]["render"]["inputs"]["size"] = size
            hana.send({"type": "submit", "graph": graph})
            hana.next_of("run_finished", run_id=hana.next_of("submitted")["run_id"])
            time.sleep(0.02)                   # distinct modification times: newest first is testable
        hana.send({"type": "history"})
        assert hana.next_of("history")["total"] < 5                 # the oldest runs were pruned ...
        hana.send({"type": "list_files", "request_id": 7})
        listing = hana.next_of("files")
        assert listing["request_id"] == 7 and listing["total"] == 5 and listing["complete"]   # ... not their files
        ids = [f["file_id"] for f in listing["files"]]
        assert ids == [f"output/secret_0000{n}.png" for n in (5, 4, 3, 2, 1)], ids
        assert all(f["mime"] == "image/png" and f["bytes"] > 0 for f in listing["files"])
        usage = listing["usage"]
        assert usage["max_bytes"] == 10**6 and usage["outputs"] == sum(f["bytes"] for f in listing["files"])
        assert usage["uploads"] == 0 and usage["runs"] > 0
        hana.send({"type": "list_files", "folder": "output", "offset": 3, "limit": 1})
        page = hana.next_of("files")
        assert [f["file_id"] for f in page["files"]] == [ids[3]] and page["total"] == 5 and page["offset"] == 3
        hana.send({"type": "list_files", "folder": "input"})
        assert hana.next_of("files")["files"] == []
        hana.send({"type": "delete_file", "file_id": ids[-1]})    # the oldest, named by no run in the history
        hana.next_of("file_deleted")
        hana.send({"type": "list_files"})
        after = hana.next_of("files")
        assert after["total"] == 4 and after["usage"]["outputs"] == usage["outputs"] - listing["files"][-1]["bytes"]
        hana.send({"type": "list_files", "limit": 5000})
        assert hana.next_of("error")["code"] == "invalid_message"
        hana.close()

        ivan = Client(running.url(f"/ws?token={tokens['ivan']}"))      # another user sees none of hana's
        ivan.send({"type": "list_files"})
        theirs = ivan.next_of("files")
        assert theirs["files"] == [] and theirs["total"] == 0 and theirs["usage"]["outputs"] == 0
        ivan.close()
        root = Client(running.url(f"/ws?token={tokens['root']}"))       # an admin sees them under her folder
        root.send({"type": "list_files"})
        everything = root.next_of("files")
        assert {f["file_id"] for f in everything["files"]} == {f"output/hana/{i[len('output/'):]}" for i in ids[:-1]}
        assert everything["usage"] is None                         # no limit applies to an admin
        root.close()
    finally:
        running.stop()


def test_a_deleted_files_name_taken_by_a_later_run_is_not_the_earlier_runs_file(tmp_path):
    """After `delete_file`, the next image of that prefix takes the freed name: the earlier run's history showed
    the new run's image as its own, and `delete_run` of the earlier run deleted the new run's file. A run's
    files are checked against the size and time its run saw: the earlier run's is `missing`, and stays."""
    book = UserBook(path=tmp_path / "users.json")
    token = book.add(User("jo", max_bytes=10**6))
    running = RunningServer(tmp_path, users=book)
    try:
        jo = Client(running.url(f"/ws?token={token}"))
        runs = []
        for size in (32, 48):
            graph = json.loads(json.dumps(SAVE_IMAGE))
            graph["nodes"]["render"]["inputs"]["size"] = size
            jo.send({"type": "submit", "graph": graph})
            runs.append(jo.next_of("submitted")["run_id"])
            jo.next_of("run_finished", run_id=runs[-1])
            if size == 32:
                jo.send({"type": "get_outputs", "run_id": runs[0]})
                first = jo.next_of("outputs")["files"][0]
                assert first["file_id"] == "output/secret_00001.png" and "missing" not in first
                assert first["bytes"] > 0 and isinstance(first["mtime_ns"], int)
                jo.send({"type": "delete_file", "file_id": first["file_id"]})
                jo.next_of("file_deleted")
        jo.send({"type": "get_outputs", "run_id": runs[1]})
        second = jo.next_of("outputs")["files"][0]
        assert second["file_id"] == "output/secret_00001.png" and "missing" not in second    # the name, reused
        jo.send({"type": "get_outputs", "run_id": runs[0]})
        assert jo.next_of("outputs")["files"][0]["missing"] is True
        jo.send({"type": "history"})
        entries = {run["run_id"]: run for run in jo.next_of("history")["runs"]}
        assert entries[runs[0]]["thumbnail"] is None and entries[runs[0]]["files"] == 0
        assert entries[runs[1]]["thumbnail"] == "output/secret_00001.png"
        jo.send({"type": "delete_run", "run_id": runs[0]})
        assert jo.next_of("run_deleted")["files_deleted"] == 0
        assert (running.session.output_dir / "jo" / "secret_00001.png").is_file()     # the later run's file stays
        jo.close()
    finally:
        running.stop()


def test_files_saved_before_a_run_failed_belong_to_the_run(tmp_path):
    """A run whose third SaveImage hit the storage limit left the first two's files in no run: history showed no
    files, delete_run removed none, and they counted in the quota until guessed by name. A failed (or stopped)
    run's stored result lists what its nodes saved, and deleting the run deletes them."""
    book = UserBook(path=tmp_path / "users.json")
    token = book.add(User("gina", max_bytes=2_500))     # the graph and the small image fit, the large does not
    running = RunningServer(tmp_path, users=book)
    graph = {"format_version": 2, "nodes": {
        "render": {"type": "RenderTinyWorld", "inputs": {"caption": "a red circle on a white background",
                                                         "size": 32}},
        "big": {"type": "RenderTinyWorld", "inputs": {"caption": "a blue star on a green background", "size": 256}},
        "small": {"type": "SaveImage", "inputs": {"images": {"node": "render", "output": "image"},
                                                  "filename_prefix": "small"}},
        "large": {"type": "SaveImage", "inputs": {"images": {"node": "big", "output": "image"},
                                                  "filename_prefix": "large"}}}}
    try:
        gina = Client(running.url(f"/ws?token={token}"))
        gina.send({"type": "submit", "graph": graph})
        run_id = gina.next_of("submitted")["run_id"]
        assert "storage limit" in gina.next_of("node_error", run_id=run_id)["message"]
        gina.next_of("run_failed", run_id=run_id)          # recorded (node_error comes before the outcome is)
        folder = running.session.output_dir / "gina"
        assert [p.name for p in folder.glob("*.png")] == ["small_00001.png"]
        gina.send({"type": "get_outputs", "run_id": run_id})
        outputs = gina.next_of("outputs")
        assert outputs["status"] == "failed" and [f["file_id"] for f in outputs["files"]] == ["output/small_00001.png"]
        gina.send({"type": "delete_run", "run_id": run_id})
        assert gina.next_of("run_deleted")["files_deleted"] == 1
        assert not list(folder.glob("*.png"))
        gina.close()
    finally:
        running.stop()


def test_a_submit_counts_its_own_graph_against_the_storage_limit(tmp_path):
    """Submits of graphs carrying 2 MiB of `ui` went past a 5 MB limit (6.3 MB stored): the check counted what
    was stored, not the graph about to be. Now the graph counts before it is stored, as an upload does."""
    book = UserBook(path=tmp_path / "users.json")
    token = book.add(User("dave", max_bytes=30_000))
    running = RunningServer(tmp_path, users=book)
    try:
        dave = Client(running.url(f"/ws?token={token}"))
        heavy = {**wait_graph(0), "metadata": {"description": "x" * 12_000}}
        for _ in range(2):
            dave.send({"type": "submit", "graph": heavy})
            run_id = dave.next_of("submitted")["run_id"]
            dave.next_of("run_finished", run_id=run_id)
        dave.send({"type": "submit", "graph": heavy})     # 24 KB stored + 12 KB > 30 KB
        error = dave.next_of("error")
        assert error["code"] == "quota_exceeded" and "this graph: 12.0 KiB" in error["message"], error
        assert running.server.queue.stored_bytes("dave") < 30_000
        dave.close()
    finally:
        running.stop()


def test_a_missing_input_folder_is_not_shown_to_a_user_by_its_path(users):
    """Bob, before any upload, named a file: the reply showed the server's input path (/…/in/bob) and
    advised --input-dir. No absolute path now, and what to do is upload it."""
    bob = as_user(users, "bob")
    bob.send({"type": "submit", "graph": {"format_version": 1, "nodes": {
        "load": {"type": "LoadImage", "inputs": {"image": "secret_alice.png"}},
        "save": {"type": "SaveImage", "inputs": {"images": {"node": "load", "output": "image"}}}}}})
    error = bob.next_of("error")
    text = json.dumps(error)
    assert error["code"] == "invalid_graph" and str(users.session.input_dir) not in text and "/in/bob" not in text
    assert "Upload the file" in text, text
    bob.close()


def test_per_user_run_time_limit_stops_a_long_run_and_frees_the_worker(tmp_path):
    """A plain user could hold the only worker for hours (a KSampler of 100,000 steps); past `max_run_seconds`
    the server stops the run — failed, naming the limit — and the next user's run starts. Queueing does not
    count, a short run is not touched, and an admin is never stopped."""
    book = UserBook(path=tmp_path / "users.json")
    slow_token = book.add(User("slow", max_run_seconds=1))
    other_token = book.add(User("other", max_run_seconds=1))
    root_token = book.add(User("root", role="admin", max_run_seconds=1))
    running = RunningServer(tmp_path, users=book)
    try:
        slow, other = Client(running.url(f"/ws?token={slow_token}")), Client(running.url(f"/ws?token={other_token}"))
        started = time.monotonic()
        slow.send({"type": "submit", "graph": wait_graph(60)})
        long_run = slow.next_of("submitted")["run_id"]
        other.send({"type": "submit", "graph": wait_graph(0.5)})     # queued ~1 s behind it: still within 1 s
        short_run = other.next_of("submitted")["run_id"]
        failed = slow.next_of("run_failed", run_id=long_run, timeout=30)
        assert time.monotonic() - started < 20
        assert "max_run_seconds" in failed["message"] and "'w'" in failed["message"], failed
        assert other.next_of("run_finished", run_id=short_run, timeout=30)
        slow.send({"type": "get_outputs", "run_id": long_run})
        record = slow.next_of("outputs")
        assert record["status"] == "failed" and record["error"]["code"] == "run_time_limit", record
        root = Client(running.url(f"/ws?token={root_token}"))
        root.send({"type": "submit", "graph": wait_graph(1.5)})
        admin_run = root.next_of("submitted")["run_id"]
        assert root.next_of("run_finished", run_id=admin_run, timeout=30)
        for client in (slow, other, root):
            client.close()
    finally:
        running.stop()


def server_with_admin_and(tmp_path: Path, user: User) -> tuple[RunningServer, str, str]:
    """A server following a users file (checked every 0.1 s) of an admin "root" and `user`: (server, root's token,
    the user's token)."""
    book = UserBook(path=tmp_path / "users.json")
    root_token = book.add(User("root", role="admin"))
    user_token = book.add(user)
    book.save()
    running = RunningServer(tmp_path, users=book)
    running.server.USERS_CHECK_SECONDS = 0.1
    return running, root_token, user_token


def queue_behind_root(running: RunningServer, root_token: str, user_token: str, root_seconds: float,
                      user_seconds: float) -> tuple[Client, Client, str, str]:
    """Root submits a Wait of `root_seconds` (it holds the worker), then the user one of `user_seconds`, which
    queues: (root's client, the user's, root's run id, the user's queued run id)."""
    root, user = Client(running.url(f"/ws?token={root_token}")), Client(running.url(f"/ws?token={user_token}"))
    root.send({"type": "submit", "graph": wait_graph(root_seconds)})
    first = root.next_of("submitted")["run_id"]
    user.send({"type": "submit", "graph": wait_graph(user_seconds)})
    return root, user, first, user.next_of("submitted")["run_id"]


def test_a_removed_users_queued_runs_do_not_run(tmp_path):
    """`users remove dave` left dave's queued runs in the queue; they ran later, with no limits at all (those
    were dave's entry). Each is recorded failed (`user_removed`) when its turn comes, and the next runs; a run
    of the user that is running then is interrupted."""
    running, root_token, dave_token = server_with_admin_and(tmp_path, User("dave", max_run_seconds=1))
    try:
        root, dave, first, queued = queue_behind_root(running, root_token, dave_token, 3, 60)
        on_disk = UserBook.load(tmp_path / "users.json")
        on_disk.remove("dave")
        on_disk.save()
        assert root.next_of("run_finished", run_id=first, timeout=30)
        deadline = time.monotonic() + 30
        while running.server.queue.get(queued).status in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.1)
        record = running.server.queue.get(queued)
        assert record.status == "failed" and record.error["code"] == "user_removed", record
        assert "removed" in record.error["message"]
        root.send({"type": "submit", "graph": wait_graph(0.1)})        # the worker goes on
        assert root.next_of("run_finished", run_id=root.next_of("submitted")["run_id"], timeout=30)
        # a run of a user removed while it runs is interrupted (it ran on to its end)
        erin_token = on_disk.add(User("erin"))
        on_disk.save()
        time.sleep(0.5)
        erin = Client(running.url(f"/ws?token={erin_token}"))
        erin.send({"type": "submit", "graph": wait_graph(60)})
        long_run = erin.next_of("submitted")["run_id"]
        erin.next_of("node_started", run_id=long_run, node_id="w")
        on_disk.remove("erin")
        on_disk.save()
        deadline = time.monotonic() + 30
        while running.server.queue.get(long_run).status == "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        stopped = running.server.queue.get(long_run)          # said why (it was a bare "run interrupted")
        assert stopped.status == "failed" and stopped.error["code"] == "user_removed", stopped
        assert "was removed" in stopped.error["message"] and stopped.error["node_id"] == "w"
        root.close()
    finally:
        running.stop()


def test_user_names_that_cannot_be_folders_are_refused(tmp_path, capsys):
    """A user's name becomes their folder's: `users add con` was accepted (Windows refuses the folder CON)."""
    path = tmp_path / "users.json"
    for name in ("con", "nul", "com1", "lpt9"):
        assert users_main(["add", name, "--file", str(path)]) == 2
        assert "device name Windows reserves" in capsys.readouterr().err
    assert users_main(["add", "conan", "--file", str(path)]) == 0
    from nodegraph.files import amount_text

    assert amount_text(150 * 1024) == "0.15 MiB" and amount_text(200 * 1024) == "0.20 MiB"   # not both "0.1"/"0.2"
    assert amount_text(20 * 2**20) == "20.0 MiB" and amount_text(2500) == "2.4 KiB"


def test_users_set_keeps_the_token_and_hand_edits_are_checked(tmp_path, capsys):
    """Changing a limit rotated the token (`users add` was the only way); a misspelt key in a hand-edited file was
    silently no limit; two users with one token_sha256 (a copied entry) let one token sign in as either; a 0 s
    run limit failed every run as it started; `users list` showed limits beside admins that never apply."""
    path = tmp_path / "users.json"
    assert users_main(["add", "carol", "--file", str(path)]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert users_main(["set", "carol", "--max-queued", "1", "--admin", "--file", str(path)]) == 0
    assert "same token" in capsys.readouterr().out
    carol = UserBook.load(path).authenticate(token)
    assert carol is not None and carol.max_queued == 1 and carol.is_admin
    assert users_main(["set", "nobody", "--max-queued", "1", "--file", str(path)]) == 2
    assert "users add nobody" in capsys.readouterr().err
    assert users_main(["list", "--file", str(path)]) == 0
    assert "limits do not apply to admins" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        users_main(["add", "dan", "--max-run-seconds", "0", "--file", str(path)])
    assert "0 s would stop every run" in capsys.readouterr().err
    data = json.loads(path.read_text())
    data["users"]["bob"] = {**data["users"]["carol"], "role": "user"}          # a copied entry: the same token
    path.write_text(json.dumps(data))
    with pytest.raises(UsersFileError, match="'carol' and 'bob' have the same token_sha256.*remove 'bob'"):
        UserBook.load(path)
    del data["users"]["bob"]
    data["users"]["carol"]["max_byts"] = 1000
    path.write_text(json.dumps(data))
    with pytest.raises(UsersFileError, match="unknown key.*'max_byts'.*max_bytes"):
        UserBook.load(path)
    del data["users"]["carol"]["max_byts"]
    data["users"]["carol"]["max_run_seconds"] = 0
    path.write_text(json.dumps(data))
    with pytest.raises(UsersFileError, match="max_run_seconds must be a whole number ≥ 1"):
        UserBook.load(path)
    data["users"]["carol"]["max_run_seconds"] = 60
    path.write_text(json.dumps({**data, "user": {"dan": {}}}))          # an entry outside "users"
    with pytest.raises(UsersFileError, match="unknown top-level key.*'user'"):
        UserBook.load(path)
    upper = {"users": {"carol": {**data["users"]["carol"], "token_sha256": data["users"]["carol"]["token_sha256"].upper()}}}
    path.write_text(json.dumps(upper))                                    # hex in capitals is the same hash
    assert UserBook.load(path).authenticate(token).name == "carol"
    path.write_text(json.dumps(data))
    assert users_main(["set", "carol", "--file", str(path)]) == 2            # no flags: nothing said "changed"
    assert "nothing to change" in capsys.readouterr().err
    # through a symlink the target is written (the link was replaced by a copy a server never read)
    link = tmp_path / "link.json"
    link.symlink_to(path)
    assert users_main(["set", "carol", "--max-queued", "4", "--file", str(link)]) == 0
    assert link.is_symlink() and UserBook.load(path).get("carol").max_queued == 4


def test_users_file_reads_and_writes_max_run_seconds(tmp_path, capsys):
    """`users add --max-run-seconds` is stored and listed; files without it get the default; bad values named."""
    from nodegraph.users import DEFAULT_MAX_RUN_SECONDS

    path = tmp_path / "users.json"
    assert users_main(["add", "ann", "--max-run-seconds", "90", "--file", str(path)]) == 0
    assert users_main(["add", "ben", "--file", str(path)]) == 0
    assert users_main(["add", "cy", "--max-run-seconds", "none", "--file", str(path)]) == 0
    book = UserBook.load(path)
    assert [book.get(n).max_run_seconds for n in ("ann", "ben", "cy")] == [90, DEFAULT_MAX_RUN_SECONDS, None]
    capsys.readouterr()
    assert users_main(["list", "--file", str(path)]) == 0
    assert "max_run_seconds=90" in capsys.readouterr().out
    data = json.loads(path.read_text())
    del data["users"]["ben"]["max_run_seconds"]
    data["users"]["ann"]["max_run_seconds"] = "1h"
    path.write_text(json.dumps(data))
    with pytest.raises(UsersFileError, match="max_run_seconds must be a whole number"):
        UserBook.load(path)
    data["users"]["ann"]["max_run_seconds"] = 90
    path.write_text(json.dumps(data))
    assert UserBook.load(path).get("ben").max_run_seconds == DEFAULT_MAX_RUN_SECONDS
    book = UserBook(path=path)
    book.add(User("huge", max_run_seconds=10**30))      # a timer of that length raised OverflowError
    protocol = ServerProtocol.__new__(ServerProtocol)
    protocol.users = book
    assert protocol.run_time_limit("huge") is None and protocol.run_time_limit(None) is None


def test_unknown_tokens_and_non_admin_settings_are_refused(users):
    """A token not in the users file gets 401; users may not change server-wide settings."""
    with pytest.raises(InvalidStatus) as info:
        with connect(users.url("/ws?token=not-a-user")):
            pass
    assert info.value.response.status_code == 401
    bob = as_user(users, "bob")
    bob.send({"type": "free_memory"})
    assert bob.next_of("error")["code"] == "forbidden"
    bob.send({"type": "set_cache_policy", "policy": "none"})
    assert bob.next_of("error")["code"] == "forbidden"
    bob.send({"type": "submit", "graph": ARITHMETIC, "front": True})
    assert bob.next_of("error")["code"] == "forbidden"
    bob.close()


def test_removing_a_user_or_replacing_a_token_takes_effect_on_a_running_server(users, tmp_path):
    """`nodegraph users remove|add` on a running server: within seconds the old token is refused (401), the
    connections opened with it are closed, the new token works, and a file that no longer reads changes
    nothing."""
    users.server.USERS_CHECK_SECONDS = 0.1
    bob, alice = as_user(users, "bob"), as_user(users, "alice")
    path = tmp_path / "users.json"
    book = UserBook.load(path)
    assert book.remove("bob")
    new_alice = book.add(User("alice", max_queued=2))
    book.save()
    for client in (bob, alice):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.ws.recv(timeout=0.1)
            except TimeoutError:
                continue
            except Exception:  # noqa: BLE001 — closed by the server
                break
        assert client.ws.close_code == 1008
    for name, token in (("bob", users.tokens["bob"]), ("alice", users.tokens["alice"])):
        with pytest.raises(InvalidStatus) as info:
            with connect(users.url(f"/ws?token={token}")):
                pass
        assert info.value.response.status_code == 401, name
    Client(users.url(f"/ws?token={new_alice}")).close()
    path.write_text("{not json")                     # a broken edit: the users stay as they were
    time.sleep(0.5)
    Client(users.url(f"/ws?token={new_alice}")).close()
    Client(users.url(f"/ws?token={users.tokens['root']}")).close()


def test_users_file_stores_only_hashes_and_reports_bad_files(tmp_path, capsys):
    """`nodegraph users add` prints a token once and stores its SHA-256; malformed files are named."""
    path = tmp_path / "users.json"
    assert users_main(["add", "dana", "--file", str(path), "--admin"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    stored = path.read_text()
    assert token not in stored and hash_token(token) in stored
    assert UserBook.load(path).authenticate(token).is_admin
    path.write_text('{"users": {"Bad Name": {"token_sha256": "00"}}}')
    with pytest.raises(UsersFileError, match="Bad Name"):
        UserBook.load(path)
    path.write_text('{"users": {"eve\\n": {"token_sha256": "00"}}}')     # `$` matched before a final newline
    with pytest.raises(UsersFileError, match="eve"):
        UserBook.load(path)
    with pytest.raises(UsersFileError, match="nodegraph users add"):
        UserBook.load(tmp_path / "missing.json")
    path.write_text('{"users": ' + "[" * 100_000 + "]" * 100_000 + "}")      # RecursionError, a traceback
    with pytest.raises(UsersFileError, match="nested too deeply"):
        UserBook.load(path)


def test_users_add_keeps_role_and_limits_when_rotating_and_refuses_bad_limits(tmp_path, capsys):
    """`users add` of an existing user (to rotate a token) turned the only admin into a plain user and reset
    limits; --max-queued -1 wrote a file every later command refused (users list/remove/serve included), and
    --max-bytes took neither sizes (2GiB) nor a way to say "no limit"."""
    path = tmp_path / "users.json"
    assert users_main(["add", "root", "--admin", "--max-bytes", "2GiB", "--max-queued", "none",
                       "--file", str(path)]) == 0
    old_token = capsys.readouterr().out.strip().splitlines()[-1]
    assert users_main(["add", "root", "--file", str(path)]) == 0                 # a new token, nothing else changes
    out = capsys.readouterr().out
    new_token = out.strip().splitlines()[-1]
    assert "a new token (the old one no longer works)" in out
    book = UserBook.load(path)
    root = book.authenticate(new_token)
    assert root.is_admin and root.max_bytes == 2 * 1024**3 and root.max_queued is None
    assert book.authenticate(old_token) is None
    for bad in (["--max-queued", "-1"], ["--max-bytes", "nan"], ["--max-bytes", "-5"], ["--max-queued", "1.5"]):
        with pytest.raises(SystemExit) as info:                                   # argparse: exit 2, one line
            users_main(["add", "carol", *bad, "--file", str(path)])
        assert info.value.code == 2
        capsys.readouterr()
    assert users_main(["list", "--file", str(path)]) == 0                        # the file is still readable
    assert "carol" not in capsys.readouterr().out
    with pytest.raises(UsersFileError, match="must be a whole number ≥ 0"):
        UserBook(path=path).add(User("eve", max_queued=-1))


# --- property: hostile frames never stall or disconnect ---------------------------------------

def test_random_hostile_frames_never_stall_the_server_or_close_the_connection(tmp_path):
    """Random nested / huge / odd JSON (and non-JSON) frames each get an answer, the sender stays
    connected, and another client's ping is answered within 1 s after every one."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from nodegraph.protocol import MESSAGE_TYPES

    scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=50),
                        st.just("x" * 20_000), st.just("\u202e\x00\ud7ff"))
    values = st.recursive(scalars, lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=10), children, max_size=5)), max_leaves=30)
    fields = st.sampled_from(["graph", "run_id", "folder", "offset", "limit", "policy", "outputs", "overrides",
                              "token", "protocol_version", "known_hash", "request_id", "name", "ui"])
    messages = st.builds(lambda kind, body: {**body, "type": kind},
                         st.one_of(st.sampled_from(MESSAGE_TYPES), st.text(max_size=20)),
                         st.dictionaries(fields, values, max_size=4))
    deep = st.integers(min_value=50, max_value=900).map(lambda n: '{"type": "submit", "graph": ' + "[" * n + "]" * n + "}")
    frames = st.one_of(messages.map(json.dumps), deep, st.text(max_size=200),
                       st.just('{"type": "submit", "graph": ' + "[" * 3000 + "]" * 3000 + "}"),
                       st.just('{"type": "ping", "request_id": NaN}'))

    running = RunningServer(tmp_path)
    hostile, bystander = Client(running.url()), Client(running.url())
    try:
        @settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
        @given(frames)
        def check(frame):
            hostile.ws.send(frame)
            reply = hostile.ws.recv(timeout=10)      # every frame gets an answer (never a close)
            assert reply
            started = time.perf_counter()
            bystander.send({"type": "ping"})
            bystander.next_of("pong", timeout=5)
            assert time.perf_counter() - started < 1.0
            while True:                               # drain broadcasts the frame may have caused
                try:
                    hostile.ws.recv(timeout=0.01)
                except TimeoutError:
                    break

        check()
        hostile.send({"type": "ping"})
        assert hostile.next_of("pong")
    finally:
        hostile.close(), bystander.close()
        running.stop()


def test_queue_broadcasts_are_throttled_per_client_with_the_last_change_kept(tmp_path):
    """50 queue changes in a burst reach a client as one message now and one trailing message that
    carries the last change and how many it stands for (N clients × M changes must not cost N×M)."""
    import asyncio

    from nodegraph.protocol import Outgoing
    from nodegraph.server import Server

    server = Server(Session(autoload=False), data_dir=tmp_path, port=0)

    async def scenario():
        outbox: asyncio.Queue = asyncio.Queue()
        server.connections["c"] = (None, outbox)
        server._deliver([Outgoing(None, {"type": "queue_changed", "run_id": f"r{i}", "status": "queued",
                                         "pending": i + 1}) for i in range(50)])
        first = json.loads(outbox.get_nowait())
        assert outbox.empty() and first["run_id"] == "r0"
        trailing = json.loads(await asyncio.wait_for(outbox.get(), timeout=5))
        assert trailing["run_id"] == "r49" and trailing["pending"] == 50 and trailing["coalesced"] == 49
        server._deliver([Outgoing("c", {"type": "run_started", "run_id": "r0"})])    # events are never held
        assert json.loads(outbox.get_nowait())["type"] == "run_started"

    asyncio.run(scenario())
    server.queue.close()


def test_uploads_count_against_the_byte_limit_and_can_be_deleted(tmp_path):
    """One upload could overshoot max_bytes by a whole frame, after which every submit and upload was refused and
    the advice (delete_run) freed nothing: no message deleted an upload. Now the upload's own size is counted
    before it is stored, the refusal names uploads, and `delete_file` deletes one (only your own)."""
    import io
    import os

    from PIL import Image

    book = UserBook(path=tmp_path / "users.json")
    alice_token, bob_token = book.add(User("alice", max_bytes=150_000)), book.add(User("bob"))
    running = RunningServer(tmp_path, users=book)
    try:
        alice = Client(running.url(f"/ws?token={alice_token}"))
        bob = Client(running.url(f"/ws?token={bob_token}"))
        noise = Image.frombytes("RGB", (160, 160), os.urandom(160 * 160 * 3))
        buffer = io.BytesIO()
        noise.save(buffer, format="PNG")
        big = buffer.getvalue()                                        # ~77 KB: two of them pass the limit
        alice.ws.send(upload_frame("a.png", big))
        first = alice.next_of("uploaded")["file_id"]
        alice.ws.send(upload_frame("b.png", big))
        refused = alice.next_of("error")
        assert refused["code"] == "quota_exceeded" and refused["request_id"] == 1
        assert "of uploads" in refused["message"] and "delete_file" in refused["message"]
        bob.send({"type": "delete_file", "file_id": first})             # not his: his own folder has no such file
        assert bob.next_of("error")["code"] == "not_found"
        alice.send({"type": "delete_file", "file_id": first, "request_id": 2})
        assert alice.next_of("file_deleted") == {"type": "file_deleted", "file_id": first, "request_id": 2}
        alice.ws.send(upload_frame("b.png", big))
        assert alice.next_of("uploaded")
        for client in (alice, bob):
            client.close()
    finally:
        running.stop()


def _noise_png(side: int) -> bytes:
    import io
    import os

    from PIL import Image

    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_uploads_at_once_cannot_pass_the_byte_limit_together(tmp_path, monkeypatch):
    """Two connections of one user each sent a 1.8 MB image at once under a 2 MiB limit: both passed the check
    before either was written, and both were kept (1.7 MB over). The check and the write are one step per user
    now: the second upload sees the first and is refused. (The write is slowed here so they overlap.)"""
    import threading

    real_save = FileStore.save_upload

    def slow_save(self, *args, **kwargs):      # after the server decided to take the upload, before it is written
        time.sleep(0.5)
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(FileStore, "save_upload", slow_save)
    book = UserBook(path=tmp_path / "users.json")
    token = book.add(User("kim", max_bytes=150_000))
    running = RunningServer(tmp_path, users=book)
    try:
        clients = [Client(running.url(f"/ws?token={token}")) for _ in range(2)]
        images = [_noise_png(160), _noise_png(160)]             # ~77 KB each: one fits, two do not
        replies: list[dict] = [{}, {}]

        def send(index: int) -> None:
            clients[index].ws.send(upload_frame(f"p{index}.png", images[index]))
            while replies[index].get("type") not in ("uploaded", "error"):
                frame = clients[index].ws.recv(timeout=20)
                replies[index] = json.loads(frame) if isinstance(frame, str) else {}

        threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(reply["type"] for reply in replies) == ["error", "uploaded"], replies
        refused = next(reply for reply in replies if reply["type"] == "error")
        assert refused["code"] == "quota_exceeded" and "of uploads" in refused["message"]
        assert refused["details"]["limit"] == "max_bytes"
        stored = sum(p.stat().st_size for p in (running.session.input_dir / "kim").iterdir())
        assert stored < 150_000
        for client in clients:
            client.close()
    finally:
        running.stop()


def test_uploads_while_a_run_writes_take_from_its_budget_and_the_same_bytes_again_are_free(tmp_path):
    """A run's storage budget was fixed when it started: an upload sent while it wrote its files was checked
    against the disk only, and the run then wrote its whole budget too (0.97 MB over a 2 MiB limit). A user's
    running runs share one budget now, and uploads and submits meanwhile take from it; deletions give back.
    And the very bytes of an upload already stored are that file: nothing is written, so nothing is refused
    (a user past half their limit could not pick the same image again)."""
    book = UserBook(path=tmp_path / "users.json")
    book.add(User("lee", max_bytes=260_000))
    session = Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in")
    proto = ServerProtocol(session, RunQueue(), FileStore(tmp_path / "in", tmp_path / "out"), users=book)
    proto.connect("c", book.get("lee"))
    proto.receive("c", json.dumps({"type": "hello", "protocol_version": 1}))
    image = _noise_png(160)                                          # ~77 KB

    def upload(name: str, data: bytes) -> dict:
        (reply,) = proto.receive("c", upload_frame(name, data))
        return reply.message

    assert upload("a.png", image)["type"] == "uploaded"
    budget = proto.output_budget("lee")                              # a run starts: ~123 KB left for it
    assert proto.output_budget("lee") is budget                      # a second run of hers shares it
    left = budget.left
    assert left == 260_000 - len(image)
    assert upload("a.png", image)["file_id"] == "input/a.png"       # the same bytes: that file, nothing taken
    assert budget.left == left
    other = _noise_png(160)
    assert upload("b.png", other)["type"] == "uploaded"             # fits: taken from the runs' budget
    assert budget.left == left - len(other)
    assert budget.spend(60_000) is None                              # the run writes 60 KB (not on disk here)
    refused = upload("c.png", _noise_png(160))            # the disk holds 154 KB of 260: the runs' budget 46 KB
    assert refused["code"] == "quota_exceeded" and "running run" in refused["message"], refused
    assert budget.spend(len(image)) is not None                      # nor may the run write past what is left
    (deleted,) = proto.receive("c", json.dumps({"type": "delete_file", "file_id": "input/b.png"}))
    assert deleted.message["type"] == "file_deleted" and budget.left == left - 60_000    # given back
    proto.release_budget(budget)
    proto.release_budget(budget)                                     # both runs ended: counted from disk again
    assert proto.output_budget("lee") is not budget
    proto.queue.close()


def test_an_upload_the_disk_refuses_gets_its_reply(tmp_path, monkeypatch):
    """A full disk or read-only input folder answered an upload with internal_error and no request_id (a client
    waiting on its reply hung) and left a 0-byte file; now `storage_error` with the request id, and no file."""
    import errno as errnos
    import io
    from pathlib import Path as _Path

    from PIL import Image

    running = RunningServer(tmp_path)
    try:
        client = Client(running.url())
        real_write = _Path.write_bytes

        def full_disk(self, data):
            real_write(self, data[:10])
            raise OSError(errnos.ENOSPC, "No space left on device")

        monkeypatch.setattr(_Path, "write_bytes", full_disk)
        buffer = io.BytesIO()
        Image.new("RGB", (4, 4), "red").save(buffer, format="PNG")
        client.ws.send(upload_frame("x.png", buffer.getvalue()))
        error = client.next_of("error")
        assert error["code"] == "storage_error" and error["request_id"] == 1 and "disk is full" in error["message"]
        assert not list((tmp_path / "in").glob("x*"))
        client.close()
    finally:
        monkeypatch.undo()
        running.stop()


@pytest.mark.parametrize("flags, words", [
    (["--users", "u.json", "--token", "abc"], "do not go together"),     # the token was silently ignored
    (["--history-limit", "0"], "must be 1 or more"),
    (["--max-message-bytes", "10"], "would not fit"),
])
def test_serve_refuses_flags_it_would_ignore_or_could_not_use(flags, words, capsys):
    """One line and exit 2, before anything starts."""
    from nodegraph.server import main as serve_main

    assert serve_main(flags) == 2
    assert words in capsys.readouterr().err


def test_delete_file_refuses_ids_that_leave_the_folders_and_removes_a_link_not_its_target(tmp_path):
    """`delete_file` with ../, absolute and link-out ids is not_found and deletes nothing; an id naming a link
    inside the folder removes that link — it removed the file the link points to, which another id still named."""
    running = RunningServer(tmp_path)
    try:
        inputs = tmp_path / "in"
        inputs.mkdir(parents=True, exist_ok=True)
        secret = tmp_path / "secret.txt"
        secret.write_text("keep")
        (inputs / "mine.txt").write_text("mine")
        (inputs / "out_link.txt").symlink_to(secret)
        (inputs / "in_link.txt").symlink_to(inputs / "mine.txt")
        client = Client(running.url())
        for file_id in ("../secret.txt", "input/../../secret.txt", "/etc/passwd", "input//etc/passwd",
                        "input/out_link.txt", "output/", "input"):
            client.send({"type": "delete_file", "file_id": file_id})
            assert client.next_of("error")["code"] == "not_found", file_id
        client.send({"type": "delete_file", "file_id": "input/in_link.txt"})
        assert client.next_of("file_deleted")
        assert not (inputs / "in_link.txt").is_symlink() and (inputs / "mine.txt").read_text() == "mine"
        assert secret.read_text() == "keep" and (inputs / "out_link.txt").is_symlink()
        client.close()
    finally:
        running.stop()


def test_a_hello_token_with_a_lone_surrogate_is_an_invalid_token(tmp_path):
    """`"token": "\\ud800"` raised UnicodeEncodeError in the hash: an internal_error with a traceback in the log."""
    book = UserBook()
    book.add(User("alice"))
    protocol = ServerProtocol(Session(autoload=False), RunQueue(), FileStore(tmp_path, tmp_path), users=book)
    protocol.connect("c", user=book.get("alice"))
    (reply,) = protocol.receive("c", '{"type": "hello", "protocol_version": 1, "token": "\\ud800"}')
    assert reply.message["code"] == "invalid_token", reply.message
    protocol = ServerProtocol(Session(autoload=False), RunQueue(), FileStore(tmp_path, tmp_path), token="s3cret")
    protocol.connect("c")                                                  # a --token server: the same
    (reply,) = protocol.receive("c", '{"type": "hello", "protocol_version": 1, "token": "\\ud800"}')
    assert reply.message["code"] == "invalid_token", reply.message


def test_a_paused_user_s_queued_runs_wait_until_the_limit_is_raised(tmp_path):
    """`users set bob --max-queued 0` is documented to hold bob's runs; his queued runs ran anyway, and a submit
    was refused as "already has 0 run(s) queued or running"."""
    running, root_token, bob_token = server_with_admin_and(tmp_path, User("bob"))
    try:
        root, bob, first, held = queue_behind_root(running, root_token, bob_token, 2, 0.1)
        on_disk = UserBook.load(tmp_path / "users.json")
        on_disk.update(User("bob", max_queued=0))
        on_disk.save()
        time.sleep(0.6)                                                         # the server has read the file
        assert root.next_of("run_finished", run_id=first, timeout=30)
        root.send({"type": "submit", "graph": wait_graph(0.1)})                 # others' runs go past it
        assert root.next_of("run_finished", run_id=root.next_of("submitted")["run_id"], timeout=30)
        assert running.server.queue.get(held).status == "queued"
        bob = Client(running.url(f"/ws?token={bob_token}"))                     # (a limit change closed his socket)
        bob.send({"type": "submit", "graph": wait_graph(0.1)})
        refused = bob.next_of("error")
        assert refused["code"] == "quota_exceeded" and "is paused (max_queued 0)" in refused["message"], refused
        on_disk.update(User("bob", max_queued=5))
        on_disk.save()
        deadline = time.monotonic() + 30
        while running.server.queue.get(held).status != "succeeded" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert running.server.queue.get(held).status == "succeeded"
        root.close()
    finally:
        running.stop()


def test_file_ids_and_urls_that_are_not_one_files_id_say_what_is_wrong(server, tmp_path):
    """A stranger's report: `/files/input/%ff.png` was told "a %2F inside a segment is refused", `output/` "must
    start with 'input/' or 'output/'", `output//x.png` "must not leave its folder", and `output/./x.png` was
    served and deleted (a second id for one file). Thumbnails lacked the CSP every /files/ response has."""
    from PIL import Image

    (tmp_path / "out").mkdir(exist_ok=True)
    Image.new("RGB", (40, 20), (200, 30, 30)).save(tmp_path / "out" / "x.png")
    store = FileStore(tmp_path / "in", tmp_path / "out")
    for file_id, words in (("output/", "names no file"), ("output//x.png", "empty or '.' segment"),
                           ("output/./x.png", "empty or '.' segment"), ("output/../x.png", "must not leave")):
        with pytest.raises(Exception) as refused:
            store.resolve(file_id)
        assert words in str(refused.value), (file_id, str(refused.value))
    for path in ("/files/input/%ff.png", "/files/input/%zz.png"):
        response = http_request(server.port, path)
        assert response.status == 404 and b"two hex digits" in response.body and b"UTF-8" in response.body
    assert http_request(server.port, "/files/output/./x.png").status == 404
    thumbnail = http_request(server.port, "/files/output/x.png?size=64")
    assert thumbnail.status == 200 and "default-src 'none'" in (thumbnail.getheader("Content-Security-Policy") or "")
    client = Client(server.url())
    client.send({"type": "list_files", "offset": "1"})            # a number, not text that reads as one
    assert client.next_of("error")["code"] == "invalid_message"
    client.close()


def test_an_admin_deleting_a_users_file_gives_it_back_to_that_users_running_runs(tmp_path):
    """What a user's running runs may still write grows when their files are deleted — by an admin too (an admin's
    delete of `output/<user>/x.png` gave nothing back: the limit only got stricter while a run went on)."""
    book = UserBook(path=tmp_path / "users.json")
    book.add(User("mo", max_bytes=500_000))
    book.add(User("root", role="admin"))
    session = Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in")
    proto = ServerProtocol(session, RunQueue(), FileStore(tmp_path / "in", tmp_path / "out"), users=book)
    (tmp_path / "out" / "mo").mkdir(parents=True)
    (tmp_path / "out" / "mo" / "old.png").write_bytes(b"x" * 100_000)
    budget = proto.output_budget("mo")                       # a run of mo's starts: 400 KB left
    left = budget.left
    proto.connect("admin", book.get("root"))
    proto.receive("admin", json.dumps({"type": "hello", "protocol_version": 1}))
    (reply,) = proto.receive("admin", json.dumps({"type": "delete_file", "file_id": "output/mo/old.png"}))
    assert reply.message["type"] == "file_deleted" and budget.left == left + 100_000
    proto.release_budget(budget)
    proto.queue.close()
