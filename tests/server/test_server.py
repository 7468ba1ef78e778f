"""The real server on port 0: runs, cache hits, cancel, interrupt, restart, security, limits."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.sync.client import connect

from nodegraph import Session
from nodegraph.server import Server

ROOT = Path(__file__).resolve().parents[2]
ARITHMETIC = json.loads((ROOT / "graphs" / "arithmetic.json").read_text())


def wait_graph(seconds: float) -> dict:
    return {"format_version": 1, "nodes": {
        "v": {"type": "Int", "inputs": {"value": 7}},
        "w": {"type": "Wait", "inputs": {"value": {"node": "v", "output": "value"}, "seconds": seconds}},
        "s": {"type": "ShowValue", "inputs": {"value": {"node": "w", "output": "value"}}}}}


class RunningServer:
    """A Server on its own event loop in a thread."""

    def __init__(self, tmp_path: Path, session: Session | None = None, close_timeout: float = 15, **kwargs):
        self.session = session or Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in")
        self.server = Server(self.session, data_dir=tmp_path / "data", port=0, **kwargs)
        self.close_timeout = close_timeout
        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.server.start())
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert started.wait(10)
        self.port = self.server.port

    def url(self, suffix: str = "/ws") -> str:
        return f"ws://127.0.0.1:{self.port}{suffix}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(self.close_timeout)
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(5)   # twice is fine
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def server(tmp_path):
    running = RunningServer(tmp_path)
    yield running
    running.stop()


class Client:
    """A synchronous websocket client that keeps every message it receives."""

    def __init__(self, url: str, **kwargs):
        self._connection = connect(url, **kwargs)
        self.ws = self._connection.__enter__()
        self.received: list = []
        self.send({"type": "hello", "protocol_version": 1})
        assert self.next_of("welcome")

    def send(self, message: dict) -> None:
        self.ws.send(json.dumps(message))

    def next_of(self, kind: str, timeout: float = 20, **match) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frame = self.ws.recv(timeout=max(0.01, deadline - time.monotonic()))
            message = json.loads(frame) if isinstance(frame, str) else {"type": "binary", "data": frame}
            self.received.append(message)
            if message.get("type") == kind and all(message.get(k) == v for k, v in match.items()):
                return message
        raise AssertionError(f"no {kind} {match} within {timeout}s; got {[m.get('type') for m in self.received]}")

    def close(self) -> None:
        self._connection.__exit__(None, None, None)


def test_submit_progress_result_and_cache_hits(server):
    """A submitted graph runs with events to the submitter; resubmitting it is served from cache."""
    client = Client(server.url())
    client.send({"type": "submit", "graph": ARITHMETIC})
    run_id = client.next_of("submitted")["run_id"]
    client.next_of("node_started", run_id=run_id)
    finished = client.next_of("run_finished", run_id=run_id)
    assert "show" in finished["executed"]
    client.send({"type": "get_outputs", "run_id": run_id})
    outputs = client.next_of("outputs")
    assert outputs["status"] == "succeeded"
    assert outputs["outputs"]["show"]["text"].endswith("a large latent")
    client.send({"type": "submit", "graph": ARITHMETIC})
    again = client.next_of("submitted")["run_id"]
    finished = client.next_of("run_finished", run_id=again)
    assert finished["executed"] == [] and finished["cached"] == ["show"]
    client.close()


def test_small_submits_are_handled_on_the_loop_and_the_rest_in_the_pool(server):
    """A small submit is parsed and queued on the event loop (no thread hand-off); a graph over the
    on-loop bound and other messages go to the pool; both run and answer in the same order."""
    protocol = server.server.protocol
    threads: dict[str, list[str]] = {}

    def spy(name):
        handler = getattr(protocol, name)

        def record(*args):
            threads.setdefault(name, []).append(threading.current_thread().name)
            return handler(*args)
        setattr(protocol, name, record)

    for name in ("_on_submit", "_on_history", "_on_ping"):
        spy(name)
    server.server.ON_LOOP_SECONDS = 60      # on a busy machine a small submit may pass 5 ms: not what this tests
    client = Client(server.url())
    client.send({"type": "submit", "graph": ARITHMETIC})
    small = client.next_of("submitted")["run_id"]
    client.next_of("run_finished", run_id=small)
    padded = {**ARITHMETIC, "metadata": {"description": "x" * protocol.ON_LOOP_MAX_CHARS}}
    client.send({"type": "submit", "graph": padded, "overrides": {"width.value": 8}})
    big = client.next_of("submitted")["run_id"]
    client.next_of("run_finished", run_id=big)
    client.send({"type": "ping"})
    client.next_of("pong")
    client.send({"type": "history"})
    assert {r["run_id"] for r in client.next_of("history")["runs"]} == {small, big}
    loop_thread = server.thread.name
    assert threads["_on_submit"][0] == loop_thread and threads["_on_ping"] == [loop_thread]
    assert threads["_on_submit"][1].startswith("nodegraph-big")      # over 64 KiB: the big frames' own pool
    assert threads["_on_history"][0].startswith("nodegraph-msg")
    client.close()


def test_a_connection_whose_message_was_slow_on_the_loop_moves_to_the_pool(server):
    """A message that takes longer than ON_LOOP_SECONDS on the event loop sends that connection's messages
    to the pool for POOLED_SECONDS (one client's costly submits must not delay the others); other
    connections stay on the loop, and so does this one afterwards."""
    protocol = server.server.protocol
    handler, threads = protocol._on_submit, []

    def slow_once(client, message):
        threads.append((client.client_id, threading.current_thread().name))
        if len(threads) == 1:       # its own CPU time counts (waiting for the GIL does not): busy, not asleep
            spent = time.thread_time() + server.server.ON_LOOP_SECONDS * 4
            while time.thread_time() < spent:
                pass
        return handler(client, message)

    protocol._on_submit = slow_once
    first, second = Client(server.url()), Client(server.url())
    for client in (first, first, second):
        client.send({"type": "submit", "graph": ARITHMETIC})
        client.next_of("run_finished", run_id=client.next_of("submitted")["run_id"])
    loop_thread = server.thread.name
    assert [name for _, name in threads][0] == loop_thread
    assert threads[1][1].startswith("nodegraph-msg")        # the same connection, now in the pool
    assert threads[2][1] == loop_thread                     # another connection: still on the loop
    server.server._pooled_until[threads[0][0]] = time.monotonic()      # the pooled second is over
    first.send({"type": "submit", "graph": ARITHMETIC})
    first.next_of("run_finished", run_id=first.next_of("submitted")["run_id"])
    assert threads[3][1] == loop_thread
    first.close(), second.close()


def test_cancel_queued_and_interrupt_running(server):
    """A queued run can be cancelled; the running one interrupted; the queue goes on."""
    client = Client(server.url())
    client.send({"type": "submit", "graph": wait_graph(30)})
    long_run = client.next_of("submitted")["run_id"]
    client.send({"type": "submit", "graph": ARITHMETIC, "overrides": {"width.value": 8}})
    queued = client.next_of("submitted")["run_id"]
    client.send({"type": "cancel", "run_id": queued})
    assert client.next_of("cancelled")["run_id"] == queued
    client.next_of("node_progress", run_id=long_run)
    client.send({"type": "interrupt", "run_id": long_run})
    client.next_of("interrupting")
    client.next_of("run_interrupted", run_id=long_run)
    client.send({"type": "history"})
    statuses = {r["run_id"]: r["status"] for r in client.next_of("history")["runs"]}
    assert statuses == {long_run: "interrupted", queued: "cancelled"}
    client.close()


def test_queue_operations_do_not_wait_for_a_running_graph(server):
    """While a run executes, another client's queue requests answer quickly."""
    first = Client(server.url())
    first.send({"type": "submit", "graph": wait_graph(3)})
    run_id = first.next_of("submitted")["run_id"]
    first.next_of("node_progress", run_id=run_id)
    second = Client(server.url())
    t0 = time.perf_counter()
    second.send({"type": "queue_status"})
    status = second.next_of("queue")
    assert time.perf_counter() - t0 < 1.0
    assert status["running"]["run_id"] == run_id
    first.send({"type": "interrupt", "run_id": run_id})
    first.next_of("run_interrupted")
    first.close(), second.close()


def test_runs_from_many_clients_start_in_submission_order(server):
    """Submits racing from several clients, to an idle or a busy worker (started at submit or queued), each run
    exactly once, in the order the queue stored them."""
    clients = [Client(server.url()) for _ in range(3)]
    run_ids: list[list[str]] = [[] for _ in clients]

    def submit_some(index):
        for seed in range(4):
            graph = {"format_version": 1, "nodes": {
                "v": {"type": "Int", "inputs": {"value": index * 100 + seed}},
                "w": {"type": "Wait", "inputs": {"value": {"node": "v", "output": "value"}, "seconds": 0.01}},
                "s": {"type": "ShowValue", "inputs": {"value": {"node": "w", "output": "value"}}}}}
            clients[index].send({"type": "submit", "graph": graph})
            run_ids[index].append(clients[index].next_of("submitted")["run_id"])

    threads = [threading.Thread(target=submit_some, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for client, ids in zip(clients, run_ids):
        for run_id in ids:        # next_of skips what it does not look for: a run may have finished already
            if not any(m.get("type") == "run_finished" and m.get("run_id") == run_id for m in client.received):
                client.next_of("run_finished", timeout=30, run_id=run_id)
    records = [server.server.queue.get(run_id) for ids in run_ids for run_id in ids]
    assert len(records) == 12 and {r.status for r in records} == {"succeeded"}
    by_seq = sorted(records, key=lambda r: r.seq)
    assert [r.id for r in sorted(records, key=lambda r: r.started_at)] == [r.id for r in by_seq]
    assert all(a.finished_at <= b.started_at for a, b in zip(by_seq, by_seq[1:]))     # one at a time
    for client in clients:
        client.close()


def test_client_disconnect_mid_run_keeps_the_result(server):
    """A client that leaves mid-run does not stop it; the result is in history."""
    client = Client(server.url())
    client.send({"type": "submit", "graph": wait_graph(0.5)})
    run_id = client.next_of("submitted")["run_id"]
    client.close()
    other = Client(server.url())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        other.send({"type": "get_outputs", "run_id": run_id})
        outputs = other.next_of("outputs")
        if outputs["status"] == "succeeded":
            break
        time.sleep(0.1)
    assert outputs["outputs"]["s"]["value"] == 7
    other.close()


def test_foreign_origin_is_rejected(server):
    """A browser page from another site cannot open the websocket (cross-site hijacking)."""
    with pytest.raises(InvalidStatus) as info:
        with connect(server.url(), origin="http://evil.example"):
            pass
    assert info.value.response.status_code == 403
    ok = Client(server.url(), origin=f"http://localhost:{server.port}")
    ok.close()


def test_token_is_required_when_configured(tmp_path):
    """With a token, a missing or wrong one gets 401 at the handshake; the right one connects."""
    running = RunningServer(tmp_path, token="s3cret")
    try:
        for url in (running.url(), running.url("/ws?token=wrong")):
            with pytest.raises(InvalidStatus) as info:
                with connect(url):
                    pass
            assert info.value.response.status_code == 401
        Client(running.url("/ws?token=s3cret")).close()
        Client(running.url(), additional_headers={"Authorization": "Bearer s3cret"}).close()
    finally:
        running.stop()


def test_non_loopback_address_gets_a_generated_token(tmp_path):
    """Listening beyond loopback without a token generates one (nothing is bound in this test)."""
    session = Session()
    assert Server(session, data_dir=tmp_path, host="0.0.0.0").token
    assert Server(session, data_dir=tmp_path, host="127.0.0.1").token is None


def http_get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read()


def test_path_traversal_is_refused(server, tmp_path):
    """../, absolute, encoded and symlinked file ids never leave the folders."""
    out = tmp_path / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ok.txt").write_text("fine")
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    (out / "escape.txt").symlink_to(secret)
    assert http_get(server.port, "/files/output/ok.txt") == (200, b"fine")
    for path in ["/files/output/../secret.txt", "/files/../secret.txt", "/files//etc/passwd",
                 "/files/output/%2e%2e/secret.txt", "/files/output/escape.txt", "/files/output/..%2fsecret.txt",
                 f"/files/{secret}", "/files/input/../../secret.txt"]:
        status, body = http_get(server.port, path)
        assert status == 404 and b"do not serve" not in body, path


def test_files_are_served_inert(server, tmp_path):
    """An HTML or SVG file in the output folder (a plugin may write one) opened from this origin runs no script:
    every /files response carries a sandboxing Content-Security-Policy (checked in Chromium: the script did
    not run, a PNG still displayed in its tab)."""
    out = tmp_path / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "page.html").write_text("<script>document.title = 'ran'</script>")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/files/output/page.html")
    response = conn.getresponse()
    response.read()
    assert response.status == 200 and response.getheader("Content-Type").startswith("text/html")
    policy = response.getheader("Content-Security-Policy") or ""
    assert policy.startswith("sandbox") and "default-src 'none'" in policy and "script-src" not in policy
    assert response.getheader("X-Content-Type-Options") == "nosniff"


def test_files_answer_range_requests_so_media_can_seek(server, tmp_path):
    """`Range: bytes=...` gets 206 with exactly those bytes and a Content-Range (a <video> seeks with it; Safari
    plays no mp4 without it); past the end is 416; a malformed or multi-range header gets the whole file;
    the Content-Type is the one file results carry (audio/wav, not the system table's audio/x-wav)."""
    out = tmp_path / "out"
    out.mkdir(parents=True, exist_ok=True)
    data = bytes(range(256)) * 40                                   # 10 240 bytes
    (out / "clip.wav").write_bytes(data)

    def get(range_header: str | None) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/files/output/clip.wav", headers={"Range": range_header} if range_header else {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()

    status, headers, body = get(None)
    assert (status, body, headers["Accept-Ranges"], headers["Content-Type"]) == (200, data, "bytes", "audio/wav")
    status, headers, body = get("bytes=100-199")
    assert (status, body, headers["Content-Range"]) == (206, data[100:200], "bytes 100-199/10240")
    status, headers, body = get("bytes=10000-")
    assert (status, body, headers["Content-Range"]) == (206, data[10000:], "bytes 10000-10239/10240")
    status, headers, body = get("bytes=-16")
    assert (status, body, headers["Content-Range"]) == (206, data[-16:], "bytes 10224-10239/10240")
    status, headers, body = get("bytes=20000-")
    assert (status, body, headers["Content-Range"]) == (416, b"", "bytes */10240")
    for ignored in ("bytes=0-1,5-6", "lines=1-2", "bytes=9-3", "bytes=abc"):
        assert get(ignored)[0::2] == (200, data), ignored


def test_byte_range_caps_open_ended_ranges():
    """An open-ended range is answered in RANGE_CHUNK pieces (a 206 says which bytes came)."""
    from nodegraph.server import RANGE_CHUNK, byte_range

    size = 3 * RANGE_CHUNK
    assert byte_range("bytes=0-", size) == (0, RANGE_CHUNK - 1)
    assert byte_range("bytes=0-", 10) == (0, 9)
    assert byte_range(f"bytes=0-{size * 2}", size) == (0, size - 1)     # a closed range past the end: up to it
    assert byte_range("bytes=0-", 0) == "unsatisfiable" and byte_range("bytes=-0", 10) == "unsatisfiable"
    assert byte_range(None, 10) is None and byte_range("", 10) is None
    # numbers past any file's end (int() refused 5,000 digits: a 500; 25 digits answered 200, not 206)
    assert byte_range("bytes=" + "9" * 5000 + "-", 10) == "unsatisfiable"
    assert byte_range("bytes=-" + "9" * 5000, 10) == (0, 9)
    assert byte_range("bytes=0-" + "9" * 25, 10) == (0, 9) and byte_range("bytes=3-" + "9" * 5000, 10) == (3, 9)


def test_oversized_message_closes_only_that_connection(tmp_path):
    """A frame over the limit closes that connection (1009); other clients carry on."""
    running = RunningServer(tmp_path, max_message_bytes=10_000)
    try:
        victim = Client(running.url())
        bystander = Client(running.url())
        victim.ws.send("x" * 20_000)
        with pytest.raises(ConnectionClosedError) as info:
            victim.ws.recv(timeout=5)
        assert info.value.rcvd.code == 1009
        bystander.send({"type": "ping"})
        assert bystander.next_of("pong")
        bystander.close()
    finally:
        running.stop()


def test_restart_keeps_queued_runs(tmp_path):
    """Kill the server mid-run: after restart the queued run completes and the running one is interrupted."""
    env = {**os.environ, "NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD": "1"}
    cmd = [sys.executable, "-m", "nodegraph.cli", "serve", "--port", "0", "--data-dir", str(tmp_path / "data"),
           "--output-dir", str(tmp_path / "out")]

    def start():
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
        for line in proc.stdout:
            match = re.search(r"serving on http://127\.0\.0\.1:(\d+)/", line)
            if match:
                return proc, int(match.group(1))
        raise AssertionError("server did not start")

    proc, port = start()
    try:
        client = Client(f"ws://127.0.0.1:{port}/ws")
        client.send({"type": "submit", "graph": wait_graph(60)})
        running_id = client.next_of("submitted")["run_id"]
        client.next_of("node_progress", run_id=running_id)
        client.send({"type": "submit", "graph": ARITHMETIC})
        queued_id = client.next_of("submitted")["run_id"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    proc, port = start()
    try:
        client = Client(f"ws://127.0.0.1:{port}/ws")
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline:
            client.send({"type": "get_outputs", "run_id": queued_id})
            status = client.next_of("outputs")["status"]
            if status == "succeeded":
                break
            time.sleep(0.2)
        assert status == "succeeded"
        client.send({"type": "get_outputs", "run_id": running_id})
        assert client.next_of("outputs")["status"] == "interrupted"
        client.send({"type": "requeue", "run_id": running_id})
        assert client.next_of("requeued")["run_id"] == running_id
        client.close()
    finally:
        proc.send_signal(signal.SIGINT)           # Ctrl+C: said in the log as SIGTERM is (it said nothing)
        rest, _ = proc.communicate(timeout=20)
    assert "Ctrl+C (SIGINT): stopping" in rest and "Traceback" not in rest


def test_a_second_client_watches_a_run_it_did_not_submit(tmp_path):
    """`watch`: a second tab of the same person gets a running run's progress node by node (no previews, images or
    files: those stay the submitter's), then its end; another user's run is "not found"; a run that has ended says
    so. Without it only the submitter heard anything but queue_changed."""
    from nodegraph.users import User, UserBook

    book = UserBook(path=tmp_path / "users.json")
    alice_token, bob_token = book.add(User("alice")), book.add(User("bob"))
    running = RunningServer(tmp_path, users=book)
    try:
        tab1 = Client(running.url(f"/ws?token={alice_token}"))
        tab2 = Client(running.url(f"/ws?token={alice_token}"))
        bob = Client(running.url(f"/ws?token={bob_token}"))
        tab1.send({"type": "submit", "graph": wait_graph(1.5)})
        run_id = tab1.next_of("submitted")["run_id"]
        tab2.next_of("queue_changed", run_id=run_id, status="running")
        tab2.send({"type": "watch", "run_id": run_id, "request_id": 1})
        reply = tab2.next_of("watching")
        assert reply == {"type": "watching", "run_id": run_id, "status": "running", "watching": True, "request_id": 1}
        progress = tab2.next_of("node_progress", run_id=run_id, node_id="w")
        assert progress["total"] > 0
        finished = tab2.next_of("run_finished", run_id=run_id)
        assert "s" in finished["executed"]
        assert not [m for m in tab2.received if m.get("type") in ("binary", "output_file")]
        tab1.next_of("run_finished", run_id=run_id)                   # the submitter as before
        bob.send({"type": "watch", "run_id": run_id})
        assert bob.next_of("error")["code"] == "not_found"
        tab2.send({"type": "watch", "run_id": run_id})
        assert tab2.next_of("watching") == {"type": "watching", "run_id": run_id, "status": "succeeded",
                                            "watching": False}
        assert running.server.protocol.watchers == {}                 # forgotten at the run's end
        for client in (tab1, tab2, bob):
            client.close()
    finally:
        running.stop()


def test_one_server_per_data_folder(tmp_path):
    """A second server on the same data folder marked the first one's running run interrupted and ran its queued
    runs (their submitters never heard of them); it now refuses to start, naming the folder and the fix. Once the
    first one closes, the folder is free."""
    from nodegraph.server import DataFolderInUse

    first = RunningServer(tmp_path)
    second = Server(Session(), data_dir=tmp_path / "data", port=0)
    try:
        with pytest.raises(DataFolderInUse, match="uses the data folder .* give this one its own --data-dir"):
            asyncio.run(second.start())
    finally:
        second.queue.close()
        first.stop()
    again = RunningServer(tmp_path)
    again.stop()


def test_a_run_whose_end_the_database_refused_is_recorded_once_it_can(tmp_path, monkeypatch):
    """On a full disk the submitter heard "the run ended but the server could not record it", yet the run stayed
    `running` for good: holding a slot of its user, refusing interrupt, cancel and delete until a restart. Now it
    is recorded failed as soon as the database takes writes again; a submit the database refuses is
    `storage_error` (it was internal_error naming nothing)."""
    import sqlite3

    from nodegraph.run_queue import RunQueue

    running = RunningServer(tmp_path)
    try:
        client = Client(running.url())
        real_finish = RunQueue.finish
        full = {"on": True}

        def finish(self, *args, **kwargs):
            if full["on"]:
                raise sqlite3.OperationalError("database or disk is full")
            return real_finish(self, *args, **kwargs)

        monkeypatch.setattr(RunQueue, "finish", finish)
        client.send({"type": "submit", "graph": wait_graph(0.0)})
        run_id = client.next_of("submitted")["run_id"]
        failed = client.next_of("run_failed", run_id=run_id)
        assert "could not record it" in failed["message"]
        assert running.server.queue.get(run_id).status == "running"
        full["on"] = False
        running.server._wake()                                     # as a later submit or the 5 s tick does
        deadline = time.monotonic() + 20
        while running.server.queue.get(run_id).status == "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        record = running.server.queue.get(run_id)
        assert record.status == "failed" and "could not record it" in record.error["message"]

        def refuse(self, *args, **kwargs):
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(RunQueue, "enqueue", refuse)
        client.send({"type": "submit", "graph": wait_graph(0.0), "request_id": 5})
        error = client.next_of("error")
        assert error["code"] == "storage_error" and error["request_id"] == 5
        assert "nothing was queued" in error["message"]
        client.close()
    finally:
        monkeypatch.undo()
        running.stop()


def test_the_banner_says_where_the_data_is_kept(tmp_path):
    """An operator could not see where the history lives (`--data-dir` defaults to ./.nodegraph in the folder the
    server starts in; started elsewhere it looked as if the history was lost): the banner names the three folders."""
    env = {**os.environ, "NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "nodegraph.cli", "serve", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "data in " in line:
                break
        # timestamped as the log's lines are, so a restart's banner is told apart from the last one's
        assert lines and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d data in (.*)", lines[-1].strip()).group(1) == (
            f"{(tmp_path / '.nodegraph').resolve()}, outputs in {(tmp_path / 'output').resolve()}, inputs in "
            f"{(tmp_path / 'input').resolve()}"), lines
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
