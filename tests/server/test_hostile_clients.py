"""What a hostile client's test pass found: thumbnails off the event loop, file ids that need percent-encoding,
listings that never decode stored graphs, and a per-user queue limit that holds under parallel submits."""

from __future__ import annotations

import asyncio
import os
import http.client
import io
import json
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from nodegraph import Input, Node, NodeInputs, Session, hookimpl
from nodegraph import run_queue as run_queue_module
from nodegraph.files import FileStore
from nodegraph.protocol import PROTOCOL_VERSION, ServerProtocol
from nodegraph.run_queue import RunQueue
from nodegraph.server import THUMBNAIL_STEPS, Server, file_id_from_url_path, thumbnail_side
from nodegraph.users import User, UserBook

from .test_server import Client, RunningServer, http_get, wait_graph
from .test_server_history_templates import SeededValue, seeded_graph


def http_request(port: int, path: str, headers: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    return response.status, response.read()


def save_png(path, size=(200, 100)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 30, 30)).save(path)


@pytest.fixture
def server(tmp_path):
    running = RunningServer(tmp_path)
    yield running
    running.stop()


# --- thumbnails (finding 4) ----------------------------------------------------------------------

def slow_image_open(monkeypatch, seconds: float, seen: list) -> None:
    """Make PIL's Image.open slow and record, per call, whether it ran on a thread with an event loop."""
    from PIL import Image

    real_open = Image.open

    def slow_open(*args, **kwargs):
        try:
            asyncio.get_running_loop()
            seen.append("event loop")
        except RuntimeError:
            seen.append("thread")
        time.sleep(seconds)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(Image, "open", slow_open)


def test_thumbnails_are_made_off_the_event_loop(server, tmp_path, monkeypatch):
    """A slow thumbnail is decoded in a thread: a websocket ping is answered while it is being made."""
    save_png(tmp_path / "out" / "big.png")
    seen: list = []
    slow_image_open(monkeypatch, 1.5, seen)
    client = Client(server.url())
    fetch = threading.Thread(target=http_get, args=(server.port, "/files/output/big.png?size=128"))
    fetch.start()
    time.sleep(0.3)
    started = time.perf_counter()
    client.send({"type": "ping"})
    assert client.next_of("pong")
    assert time.perf_counter() - started < 0.8
    fetch.join()
    client.close()
    assert seen == ["thread"]


def test_thumbnail_sizes_snap_to_a_few_cached_steps(server, tmp_path):
    """Every ?size= from 16 to 64 is one cached 64-pixel thumbnail; the editor's 128 is served at 128."""
    from PIL import Image

    save_png(tmp_path / "out" / "big.png", (400, 200))
    bodies = {http_get(server.port, f"/files/output/big.png?size={n}")[1] for n in (16, 17, 40, 64)}
    assert len(bodies) == 1 and len(server.server._thumbnails) == 1
    with Image.open(io.BytesIO(bodies.pop())) as thumb:
        assert thumb.size == (64, 32)
    status, body = http_get(server.port, "/files/output/big.png?size=128")
    with Image.open(io.BytesIO(body)) as thumb:
        assert status == 200 and thumb.size == (128, 64)
    assert [thumbnail_side(str(n)) for n in (16, 65, 128, 129, 1024)] == [64, 128, 128, 256, 1024]
    assert thumbnail_side("1025") is None and thumbnail_side("15") is None and THUMBNAIL_STEPS[-1] == 1024


def test_thumbnail_work_is_bounded(server, tmp_path, monkeypatch):
    """At most THUMBNAIL_WORKERS thumbnails are made at once; past the waiting limit a request gets 503."""
    for i in range(6):
        save_png(tmp_path / "out" / f"img{i}.png")
    seen: list = []
    slow_image_open(monkeypatch, 1.0, seen)
    running = {"now": 0, "most": 0}
    lock = threading.Lock()
    real = Server.THUMBNAIL_WORKERS
    import nodegraph.server as server_module

    real_make = server_module.make_thumbnail

    def counted(*args):
        with lock:
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
        try:
            return real_make(*args)
        finally:
            with lock:
                running["now"] -= 1

    monkeypatch.setattr(server_module, "make_thumbnail", counted)
    server.server.THUMBNAIL_WAITING_LIMIT = 4
    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda i: http_get(server.port, f"/files/output/img{i}.png?size=64")[0], range(6)))
    assert running["most"] <= real == 2
    assert statuses.count(200) >= 4 and set(statuses) <= {200, 503} and 503 in statuses


def test_other_sites_pages_cannot_load_files_from_a_server_without_tokens(server, tmp_path):
    """`Sec-Fetch-Site: cross-site` (an <img> on another site) gets 403; the editor's own requests, a followed
    link and a client that sends no such header (curl) get the file."""
    save_png(tmp_path / "out" / "a.png")
    path = "/files/output/a.png?size=64"
    assert http_request(server.port, path, {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors",
                                            "Sec-Fetch-Dest": "image"})[0] == 403
    assert http_request(server.port, "/files/output/a.png", {"Sec-Fetch-Site": "cross-site"})[0] == 403
    # another port of this host (a local dev server's page at localhost:3000) is "same-site", not same-origin
    assert http_request(server.port, path, {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "no-cors",
                                            "Sec-Fetch-Dest": "image"})[0] == 403
    for headers in ({"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"},
                    {"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"},
                    {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"},
                    {}):
        assert http_request(server.port, path, headers)[0] == 200, headers


# --- file ids that need percent-encoding (finding 6) ----------------------------------------------

def test_file_ids_are_percent_decoded_once_per_segment(server, tmp_path):
    """Names with spaces and non-ASCII letters are fetched as the editor encodes them (encodeURIComponent per
    segment); an encoded '/' in a segment, a bad escape and encoded traversal are refused."""
    out = tmp_path / "out"
    (out / "café").mkdir(parents=True)
    (out / "my cat_00001.txt").write_text("cat")
    (out / "café" / "été_00001.txt").write_text("summer")
    (out / "a+b=c&d.txt").write_text("plus")
    (out / "100%_00001.txt").write_text("full")
    (tmp_path / "secret.txt").write_text("do not serve")
    assert http_get(server.port, "/files/output/my%20cat_00001.txt") == (200, b"cat")
    assert http_get(server.port, "/files/output/caf%C3%A9/%C3%A9t%C3%A9_00001.txt") == (200, b"summer")
    assert http_get(server.port, "/files/output/a%2Bb%3Dc%26d.txt") == (200, b"plus")
    assert http_get(server.port, "/files/output/100%25_00001.txt") == (200, b"full")
    for path in ["/files/output/caf%C3%A9%2F%C3%A9t%C3%A9_00001.txt", "/files/output/%2e%2e/secret.txt",
                 "/files/output/..%2fsecret.txt", "/files/output/%252e%252e/secret.txt", "/files/output/100%.txt",
                 "/files/output/%FF.txt", "/files/output/%00.txt", "/files/output/%5C..%5Csecret.txt"]:
        status, body = http_get(server.port, path)
        assert status == 404 and b"do not serve" not in body, path


def test_a_literal_percent_in_a_name_is_asked_for_as_percent_25():
    """%25 decodes to a literal '%' (once: %2525 is the name '%25'); the id then goes to the store's checks."""
    assert file_id_from_url_path("output/100%25_00001.png") == "output/100%_00001.png"
    assert file_id_from_url_path("output/%2525.png") == "output/%25.png"
    assert file_id_from_url_path("output/a%2Fb.png") is None
    assert file_id_from_url_path("output/100%.png") is None and file_id_from_url_path("output/%zz.png") is None
    assert file_id_from_url_path("output/%C3.png") is None           # not UTF-8
    assert file_id_from_url_path("output/run/x.png") == "output/run/x.png"


# --- listings never decode stored graphs (finding 5) -------------------------------------------------

@pytest.fixture
def proto(tmp_path):
    import sys

    session = Session(plugins=[sys.modules[SeededValue.__module__]], output_dir=tmp_path / "out",
                      input_dir=tmp_path / "in")
    protocol = ServerProtocol(session, RunQueue(tmp_path / "runs.sqlite"), FileStore(tmp_path / "in", tmp_path / "out"))
    protocol.connect("c1")
    protocol.receive("c1", json.dumps({"type": "hello", "protocol_version": PROTOCOL_VERSION}))
    return protocol


def send(proto, message: dict) -> list:
    return [out.message for out in proto.receive("c1", json.dumps(message)) if out.message is not None]


def big_seeded_graph(seed: int) -> dict:
    return {**seeded_graph(seed), "ui": {"blob": [{"k": 0} for _ in range(5_000)]}}


def validated(proto, graph: dict, overrides: dict | None):
    """The Graph a submit stores the listing of: loaded, overrides applied."""
    loaded = proto.session.load(graph)
    return loaded.with_overrides(overrides) if overrides else loaded


def refuse_decoding_graphs(monkeypatch) -> None:
    """json.loads in run_queue fails for any text as long as a stored graph with its ui."""
    real_loads = json.loads

    def loads(text, *args, **kwargs):
        assert len(text) < 20_000, "a listing decoded a stored graph"
        return real_loads(text, *args, **kwargs)

    monkeypatch.setattr(run_queue_module.json, "loads", loads)


def test_history_and_queue_listings_never_decode_stored_graphs(proto, monkeypatch):
    """Title and seeds are stored at submit; history and queue_status show them without reading any graph."""
    for seed in (1, 2):
        overrides = {"s.seed": 7} if seed == 2 else None
        record = proto.queue.enqueue(big_seeded_graph(seed), "c1", overrides=overrides,
                                     listing=proto._listing_extras(validated(proto, big_seeded_graph(seed), overrides)))
        if seed == 1:
            proto.queue.finish(proto.queue.claim_next().id, "succeeded", result={})
    assert record.listing == {"title": "Seeded", "seeds": {"s.seed": 7}}
    refuse_decoding_graphs(monkeypatch)
    history = next(m for m in send(proto, {"type": "history"}) if m["type"] == "history")
    assert [(r["title"], r["seeds"]) for r in history["runs"]] == [("Seeded", {"s.seed": 1})]
    queue = next(m for m in send(proto, {"type": "queue_status"}) if m["type"] == "queue")
    assert [(r["title"], r["run_id"]) for r in queue["pending"]] == [("Seeded", record.id)]


def test_submit_stores_the_listing(proto, monkeypatch):
    """A submitted run's title and seeds come back in history without its graph being decoded."""
    replies = send(proto, {"type": "submit", "graph": big_seeded_graph(5)})
    run_id = next(m for m in replies if m["type"] == "submitted")["run_id"]
    proto.queue.finish(proto.queue.claim_next().id, "succeeded", result={})
    refuse_decoding_graphs(monkeypatch)
    history = next(m for m in send(proto, {"type": "history"}) if m["type"] == "history")
    assert [(r["run_id"], r["title"], r["seed"]) for r in history["runs"]] == [(run_id, "Seeded", 5)]


def test_a_database_from_before_listings_is_migrated_and_each_old_row_described_once(tmp_path, proto, monkeypatch):
    """Opening an old database adds the listing column; an old row's graph is decoded on its first listing only."""
    path = tmp_path / "old.sqlite"
    old_schema = run_queue_module._SCHEMA.replace(",\n    listing TEXT,\n    graph_bytes INTEGER\n", "\n")
    assert "listing" not in old_schema and "graph_bytes" not in old_schema
    with sqlite3.connect(path) as db:
        db.executescript(old_schema)
        db.execute("INSERT INTO runs (id, seq, status, graph, submitted_at, started_at, finished_at) "
                   "VALUES ('old', 1, 'succeeded', ?, 1.0, 1.0, 2.0)", (json.dumps(big_seeded_graph(3)),))
    db.close()
    proto.queue = RunQueue(path)
    history = next(m for m in send(proto, {"type": "history"}) if m["type"] == "history")
    assert [(r["run_id"], r["title"], r["seeds"]) for r in history["runs"]] == [("old", "Seeded", {"s.seed": 3})]
    refuse_decoding_graphs(monkeypatch)          # described and stored: never decoded for a listing again
    history = next(m for m in send(proto, {"type": "history"}) if m["type"] == "history")
    assert [(r["run_id"], r["title"], r["seeds"]) for r in history["runs"]] == [("old", "Seeded", {"s.seed": 3})]
    proto.queue.close()


# --- the per-user queue limit under parallel submits (finding 9) ---------------------------------------

def test_parallel_submits_cannot_pass_the_per_user_queue_limit(tmp_path, monkeypatch):
    """Sixteen submits at once from one user with max_queued=3: exactly three are stored."""
    session = Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in")
    book = UserBook(path=tmp_path / "users.json")
    token = book.add(User("alice", max_queued=3))
    proto = ServerProtocol(session, RunQueue(tmp_path / "runs.sqlite"), FileStore(tmp_path / "in", tmp_path / "out"),
                           users=book)
    alice = book.authenticate(token)
    real_validate = session.validate

    def slow_validate(*args, **kwargs):        # widens the window between the count and the insert
        time.sleep(0.05)
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(session, "validate", slow_validate)
    clients = [f"c{i}" for i in range(16)]
    for client_id in clients:
        proto.connect(client_id, alice)
        proto.receive(client_id, json.dumps({"type": "hello", "protocol_version": PROTOCOL_VERSION}))
    barrier = threading.Barrier(len(clients))

    def submit(client_id):
        barrier.wait()
        replies = proto.receive(client_id, json.dumps({"type": "submit", "graph": wait_graph(30)}))
        return next(out.message for out in replies if out.message and out.message["type"] in ("submitted", "error"))

    with ThreadPoolExecutor(len(clients)) as pool:
        answers = list(pool.map(submit, clients))
    accepted = [a for a in answers if a["type"] == "submitted"]
    assert len(accepted) == 3 and proto.queue.active_count("alice") == 3
    assert all(a["code"] == "quota_exceeded" for a in answers if a["type"] == "error")
    proto.queue.close()


def test_the_queue_counts_and_stores_under_one_lock(tmp_path):
    """RunQueue.enqueue(limit_active=) from many threads stores exactly the limit."""
    queue = RunQueue(tmp_path / "runs.sqlite")
    barrier = threading.Barrier(12)

    def enqueue(_):
        barrier.wait()
        try:
            return queue.enqueue({"format_version": 1, "nodes": {}}, user="bob", limit_active=4)
        except run_queue_module.ActiveLimitReached:
            return None

    with ThreadPoolExecutor(12) as pool:
        stored = [r for r in pool.map(enqueue, range(12)) if r is not None]
    assert len(stored) == 4 and queue.active_count("bob") == 4
    queue.close()


# --- model saves on a server with users ----------------------------------------------------------------

def test_a_plain_user_cannot_save_into_the_shared_model_folders(tmp_path):
    """bob ran SaveCheckpoint with overwrite and replaced the studio checkpoint everyone loads. A plain user's
    graph that saves a model is now refused at submit (model_write_forbidden); an admin's is queued."""
    session = Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in")
    book = UserBook(path=tmp_path / "users.json")
    bob = book.authenticate(book.add(User("bob")))
    root = book.authenticate(book.add(User("root", role="admin")))
    proto = ServerProtocol(session, RunQueue(tmp_path / "runs.sqlite"), FileStore(tmp_path / "in", tmp_path / "out"),
                           users=book)
    checkpoint = {"node": "load", "output": ""}
    saving = {"format_version": 2, "nodes": {
        "load": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world_v4.safetensors"}},
        "save": {"type": "SaveCheckpoint", "inputs": {
            "model": {**checkpoint, "output": "model"}, "text_encoder": {**checkpoint, "output": "text_encoder"},
            "vae": {**checkpoint, "output": "vae"}, "filename": "studio.safetensors", "overwrite": True}}}}
    assert session.validate(saving) == []
    answers = {}
    for client_id, user in (("b", bob), ("r", root)):
        proto.connect(client_id, user)
        proto.receive(client_id, json.dumps({"type": "hello", "protocol_version": PROTOCOL_VERSION}))
        replies = proto.receive(client_id, json.dumps({"type": "submit", "graph": saving}))
        answers[client_id] = next(out.message for out in replies
                                  if out.message and out.message["type"] in ("submitted", "error"))
    assert answers["b"]["type"] == "error" and answers["b"]["code"] == "invalid_graph"
    assert [(e["code"], e["node_id"]) for e in answers["b"]["details"]["errors"]] == [("model_write_forbidden", "save")]
    assert answers["r"]["type"] == "submitted"
    # a run without a user (queued before --users) is not run as an admin either: it is failed (`ownerless_run`)
    assert proto.may_write_models(None) is False and proto.may_write_models("gone") is False


def test_stored_run_graphs_count_in_a_users_byte_limit(tmp_path):
    """A stored graph may be megabytes (its ui and metadata): a user's graphs count in max_bytes with their files,
    so one user cannot fill the server's disk through the history."""
    session = Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in")
    book = UserBook(path=tmp_path / "users.json")
    alice = book.authenticate(book.add(User("alice", max_bytes=60_000, max_queued=None)))
    queue = RunQueue(tmp_path / "runs.sqlite")
    proto = ServerProtocol(session, queue, FileStore(tmp_path / "in", tmp_path / "out"), users=book)
    proto.connect("a", alice)
    proto.receive("a", json.dumps({"type": "hello", "protocol_version": PROTOCOL_VERSION}))
    graph = {**wait_graph(0), "metadata": {"title": "big", "description": "x" * 25_000}}
    answers = []
    for _ in range(4):
        replies = proto.receive("a", json.dumps({"type": "submit", "graph": graph}))
        answers.append(next(out.message for out in replies
                            if out.message and out.message["type"] in ("submitted", "error")))
    assert [a["type"] for a in answers[:2]] == ["submitted"] * 2      # the third would pass 60 KB: refused
    assert all(a["code"] == "quota_exceeded" for a in answers[2:])
    assert "KiB of runs (graphs and results)" in answers[2]["message"] and "this graph" in answers[2]["message"]
    assert 50_000 < queue.stored_bytes("alice") <= 60_000 and queue.stored_bytes("bob") == 0


def test_stored_results_and_overrides_count_in_a_users_byte_limit(tmp_path):
    """A 7.8 KB graph of 40 ShowValue nodes showing 1 MiB texts stored 42 MB of results a run, and overrides were
    stored uncounted too: a user with a 2 MiB limit stored 125 MB (a hostile pass). Both count now."""
    queue = RunQueue(tmp_path / "runs.sqlite")
    small = wait_graph(0)
    run = queue.enqueue(small, "c", None, {"w.seconds": "x" * 50_000}, user="carol", start=True)
    after_submit = queue.stored_bytes("carol")
    assert after_submit > 50_000
    queue.finish(run.id, "succeeded", result={"outputs": {"show": {"value": "y" * 300_000}}})
    assert queue.stored_bytes("carol") > after_submit + 300_000
    assert queue.requeue(run.id) is False         # a succeeded run is not re-queued; a failed one's result goes
    failed = queue.enqueue(small, "c", user="carol", start=True)
    queue.finish(failed.id, "failed", error={"message": "z" * 100_000})
    before = queue.stored_bytes("carol")
    assert queue.requeue(failed.id) and queue.stored_bytes("carol") < before - 90_000


def test_a_huge_title_is_listed_cut():
    """Ten runs titled with 7 MB each made a history reply of 70 MB (a hostile pass): listings show 200 characters."""
    from nodegraph.run_queue import MAX_LISTED_TITLE, listing_of

    title = listing_of({"metadata": {"title": "t" * 7_000_000}})["title"]
    assert len(title) == MAX_LISTED_TITLE and title.endswith("…")
    assert listing_of({"metadata": {"title": "Text to image"}})["title"] == "Text to image"


def test_errors_for_unreadable_frames_and_handler_failures_carry_the_request_id(proto, monkeypatch):
    """A client matching replies by request_id waited forever for the internal_error of a graph that broke a
    handler, and for the invalid_json of a frame holding 1e400."""
    replies = proto.receive("c1", '{"type": "ping", "request_id": 41, "x": 1e400}')
    assert [(m.message["code"], m.message.get("request_id")) for m in replies] == [("invalid_json", 41)]
    replies = proto.receive("c1", '{"type": "ping", "request_id": 42, "x": %s}' % ("9" * 4400))    # past int's limit
    assert [(m.message["code"], m.message.get("request_id")) for m in replies] == [("invalid_json", 42)]

    def broken(*args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(proto.session, "validate", broken)
    replies = proto.receive("c1", json.dumps({"type": "submit", "request_id": "r7", "graph": wait_graph(0)}))
    assert [(m.message["code"], m.message.get("request_id")) for m in replies] == [("internal_error", "r7")]


# --- a node raising KeyboardInterrupt or its own BaseException fails only its run (stranger pass) --------

class _PluginBaseException(BaseException):
    """What a careless plugin might raise: not an Exception."""


class RaisesBase(Node):
    class Inputs(NodeInputs):
        kind: str = Input("keyboard")

    output_node = True
    outputs = ()

    def run(self, kind: str) -> dict:
        raise KeyboardInterrupt() if kind == "keyboard" else _PluginBaseException("custom BaseException")


@hookimpl
def register_raising_nodes():
    return [RaisesBase]


def test_a_node_raising_keyboard_interrupt_or_a_base_exception_fails_only_its_run(tmp_path):
    """Such a node ended the server's worker thread: its run stayed "running" and every later run of every
    client stayed queued until a restart. Each is now that node's failure, and the next run runs."""
    import types

    module = types.ModuleType("raising_base_plugin")
    module.register_nodes = register_raising_nodes
    session = Session(plugins=[module], output_dir=tmp_path / "out", input_dir=tmp_path / "in")
    running = RunningServer(tmp_path, session=session)
    try:
        client = Client(running.url())
        for kind in ("keyboard", "custom"):
            client.send({"type": "submit", "graph": {"format_version": 2, "nodes": {
                "x": {"type": "RaisesBase", "inputs": {"kind": kind}}}}})
            run_id = client.next_of("submitted")["run_id"]
            failed = client.next_of("run_failed", run_id=run_id)
            assert failed["node_id"] == "x", failed
        client.send({"type": "submit", "graph": wait_graph(0)})
        run_id = client.next_of("submitted")["run_id"]
        client.next_of("run_finished", run_id=run_id, timeout=30)
        client.send({"type": "history"})
        statuses = [r["status"] for r in client.next_of("history")["runs"]]
        assert sorted(statuses) == ["failed", "failed", "succeeded"]
        client.close()
    finally:
        running.stop()


# --- a failed run's memory is freed when it ends (hostile pass) ------------------------------------------------

HELD_BY_FAILED_RUNS: list = []      # weak references to what a failing node had made


class HoldsThenFails(Node):
    """Makes a tensor, then fails: the tensor stays reachable only from the failure's traceback."""

    output_node = True
    outputs = ()

    def run(self) -> dict:
        import weakref

        import torch

        made = torch.zeros(1024, 1024)           # what a node refused halfway held: 4 MB here, 3.4 GB in the pass
        HELD_BY_FAILED_RUNS.append(weakref.ref(made))
        raise ValueError("too many images (refused halfway)")


@hookimpl
def register_holding_nodes():
    return [HoldsThenFails]


def test_a_failed_runs_tensors_are_freed_when_it_ends(tmp_path):
    """A hostile pass: after an `ImageBatch` chain refused at 512 images the server's RSS stayed at 5 GB (1.6 GB of
    it cached): the failed node's inputs were kept by its traceback's frames, in a reference cycle that only the
    cyclic GC frees, and a quiet server rarely runs it. The server frees them as the run ends."""
    import gc
    import types

    module = types.ModuleType("holding_plugin")
    module.register_nodes = register_holding_nodes
    session = Session(plugins=[module], output_dir=tmp_path / "out", input_dir=tmp_path / "in")
    running = RunningServer(tmp_path, session=session)
    gc.disable()            # no collection by chance: what frees the tensor is the server's own doing
    try:
        client = Client(running.url())
        client.send({"type": "submit", "graph": {"format_version": 2, "nodes": {
            "x": {"type": "HoldsThenFails", "inputs": {}}}}})
        run_id = client.next_of("submitted")["run_id"]
        assert client.next_of("run_failed", run_id=run_id)["node_id"] == "x"
        deadline = time.monotonic() + 10
        while HELD_BY_FAILED_RUNS[-1]() is not None and time.monotonic() < deadline:   # freed after the answer
            time.sleep(0.02)
        assert HELD_BY_FAILED_RUNS[-1]() is None, "the failed node's tensor is still alive after its run ended"
        client.close()
    finally:
        gc.enable()
        running.stop()


# --- HTTP methods other than GET ------------------------------------------------------------------

@pytest.mark.parametrize("method, path, body", [
    ("POST", "/prompt", b'{"prompt": {"1": {"class_type": "KSampler", "inputs": {}}}}'),   # a script for ComfyUI
    ("POST", "/", b"a=1"),
    ("DELETE", "/files/output/x.png", None),
    ("PUT", "/index.html", b"<html>"),
    ("OPTIONS", "/ws", None),
])
def test_methods_other_than_get_are_refused_with_a_reason(server, method, path, body):
    """websockets' handshake parser served DELETE/PUT/OPTIONS as GET and closed on a POST body without any reply
    ("empty reply from server"); now each gets 405 naming where graphs go, and the server goes on serving."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
    response = conn.getresponse()
    text = response.read().decode()
    assert response.status == 405, (response.status, text)
    assert response.getheader("Allow") == "GET, HEAD"
    assert "/ws" in text and "nodegraph run" in text
    assert ("ComfyUI" in text) == (path == "/prompt")
    status, page = http_request(server.port, "/")
    assert status == 200 and b"<html" in page.lower()
    client = Client(server.url())
    client.send({"type": "ping"})
    assert client.next_of("pong")["type"] == "pong"
    client.close()


def test_a_target_urllib_cannot_split_is_refused_too(server, caplog):
    """`POST http://[/prompt` made the check raise (urllib: "Invalid IPv6 URL"): no reply, and a 16-line traceback
    in the log for each such request (a hostile pass's finding)."""
    import logging
    import socket

    caplog.set_level(logging.INFO)
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(b"POST http://[/prompt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 405"), reply[:100]
    assert "Traceback" not in caplog.text and "Fatal error" not in caplog.text


def _raw(port: int, request: bytes) -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(request)
        return sock.recv(4096)


def test_requests_that_raised_inside_the_checks_get_a_reply_and_no_traceback(tmp_path, caplog):
    """Two Authorization (or X-Forwarded-For, Origin, Range) headers raised inside the token check and were logged
    with a full traceback, unlimited: 4 threads grew the log by 1.85 MB/s without a token. A 5,000-digit
    thumbnail size and an 8 KB or NUL static path did the same, and a failed sign-in logged its ?token= (a hostile
    pass). Each now gets a 4xx reply; what is still logged is limited and never the query."""
    import logging

    caplog.set_level(logging.INFO)
    running = RunningServer(tmp_path, token="tok-secret-123")
    try:
        save_png(tmp_path / "out" / "a.png")
        host = b"Host: 127.0.0.1\r\n"
        bearer = b"Authorization: Bearer tok-secret-123\r\n"
        requests = [
            b"GET / HTTP/1.1\r\n" + host + b"Authorization: Bearer x\r\nAuthorization: Bearer y\r\n\r\n",
            b"GET / HTTP/1.1\r\n" + host + b"X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n\r\n",
            b"GET /ws HTTP/1.1\r\n" + host + bearer + b"Origin: http://a\r\nOrigin: http://b\r\n\r\n",
            b"GET /files/output/a.png HTTP/1.1\r\n" + host + bearer + b"Range: bytes=0-1\r\nRange: bytes=2-3\r\n\r\n",
            b"GET /files/output/a.png?size=" + b"9" * 5000 + b" HTTP/1.1\r\n" + host + bearer + b"\r\n",
            b"GET /" + b"a/" * 4000 + b"x HTTP/1.1\r\n" + host + bearer + b"\r\n",
            b"GET /%00.js HTTP/1.1\r\n" + host + bearer + b"\r\n",
            b"GET /?token=tok-secret-123 HTTP/1.1\r\n" + host + b"X-Forwarded-Proto: a\r\nX-Forwarded-Proto: b\r\n\r\n",
        ]
        for _ in range(3):
            for request in requests:
                reply = _raw(running.port, request)
                assert reply.startswith((b"HTTP/1.1 4", b"HTTP/1.1 3")), (request[:60], reply[:80])
        assert "Traceback" not in caplog.text and "tok-secret-123" not in caplog.text
        ours = [r for r in caplog.records if r.name.startswith("nodegraph")]
        assert len(ours) <= 3 * 10, [r.getMessage()[:80] for r in ours]     # CLIENT_LOG: 10 a minute per kind
        status, page = http_request(running.port, "/?token=tok-secret-123")       # the server goes on serving
        assert status in (200, 303)
    finally:
        running.stop()


def test_a_request_line_split_over_packets_is_still_served(server):
    """The method is read from the first bytes, which may arrive in pieces: a GET sent a few bytes at a time works."""
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        for piece in (b"GE", b"T /", b" HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"\r\n"):
            sock.sendall(piece)
            time.sleep(0.05)
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 ") and not reply.startswith(b"HTTP/1.1 405"), reply[:100]


# --- the log names who did what ---------------------------------------------------------------

def test_the_log_names_each_connection_and_run_with_its_user_and_address(tmp_path, caplog):
    """An admin reading the log sees who connected from where, each run's user, outcome and time, and who was
    refused a token (the log named none of these)."""
    import logging

    from .test_server import ARITHMETIC

    caplog.set_level(logging.INFO, logger="nodegraph.server")
    running = RunningServer(tmp_path, token="s3cret")
    try:
        status, _ = http_request(running.port, "/?token=wrong", headers={"X-Forwarded-For": "203.0.113.9"})
        assert status == 401
        client = Client(running.url("/ws?token=s3cret"))
        client.send({"type": "submit", "graph": ARITHMETIC})
        run_id = client.next_of("run_finished")["run_id"]
        client.close()
    finally:
        running.stop()
    text = caplog.text
    assert "without a valid token from 127.0.0.1:" in text and "forwarded for '203.0.113.9'" in text
    assert "connected: user -, from 127.0.0.1:" in text
    assert f"run {run_id} (user -) succeeded after " in text
    client_id = text.split("client ", 1)[1].split(" connected", 1)[0]
    assert f"client {client_id} disconnected" in text                    # its end too (only connects were logged)


def test_lines_a_client_can_cause_are_logged_a_few_at_a_time():
    """One client's 3,506 unknown message types in 20 s were 3,506 log lines; now at most `burst` per kind and
    window, and the next line says how many were left out."""
    import logging

    from nodegraph.protocol import LimitedLog

    now = [0.0]
    records = []
    logger = logging.getLogger("test.limited")
    logger.addHandler(type("H", (logging.Handler,), {"emit": lambda self, r: records.append(r.getMessage())})())
    logger.setLevel(logging.INFO)
    limited = LimitedLog(burst=3, window=60, clock=lambda: now[0])
    for i in range(100):
        limited.log(logger, logging.WARNING, "unknown_type", "client %s sent %r", "c1", i)
    limited.log(logger, logging.WARNING, "origin", "refused origin %r", "x")      # another kind has its own budget
    assert records == ["client c1 sent 0", "client c1 sent 1", "client c1 sent 2", "refused origin 'x'"]
    now[0] = 61.0
    limited.log(logger, logging.WARNING, "unknown_type", "client %s sent %r", "c1", 100)
    assert records[-1] == "client c1 sent 100 (97 more like this were not logged)"


def test_a_client_hears_how_its_run_ended_when_the_server_stops(tmp_path):
    """On SIGTERM (Server.close) the running run was interrupted and recorded, but its submitter only saw the
    connection close; now `run_interrupted` reaches it first."""
    from .test_server import wait_graph

    running = RunningServer(tmp_path)
    client = Client(running.url())
    client.send({"type": "submit", "graph": wait_graph(30)})
    run_id = client.next_of("submitted")["run_id"]
    client.next_of("node_started", run_id=run_id, node_id="w")
    stopper = threading.Thread(target=running.stop)
    stopper.start()
    try:
        assert client.next_of("run_interrupted", timeout=20, run_id=run_id)
    finally:
        stopper.join(30)
        client._connection.__exit__(None, None, None)
    # recorded as stopped by the server, with a code (it read as a user's interrupt: an operator's pass)
    from nodegraph.run_queue import RunQueue

    queue = RunQueue(tmp_path / "data" / "runs.sqlite")
    try:
        record = queue.get(run_id)
        assert record.status == "interrupted" and record.error["code"] == "server_stopped"
        assert "re-queue it" in record.error["message"]
    finally:
        queue.close()


def test_a_client_that_stopped_reading_does_not_hold_up_shutdown(tmp_path):
    """A client that stopped reading (with thousands of replies waiting) held a SIGTERM shutdown 12-50 s: its
    buffered requests were still handled one by one and its closing handshake waited 10 s. Now buffered frames are
    dropped, and a connection whose outbox still waits after the flush is cut."""
    from websockets.sync.client import connect

    from .test_server import wait_graph

    running = RunningServer(tmp_path, close_timeout=60)
    with connect(running.url()) as ws:
        ws.send(json.dumps({"type": "hello", "protocol_version": 1}))
        ws.recv()
        ws.send(json.dumps({"type": "submit", "graph": wait_graph(30)}))
        for _ in range(5000):
            ws.send(json.dumps({"type": "list_nodes"}))      # replies it never reads
        time.sleep(1)
        started = time.monotonic()
        running.stop()
        assert time.monotonic() - started < 8      # 2 s of flushing at most, then the connection is cut


def test_delete_run_racing_a_requeue_deletes_nothing(proto, tmp_path, monkeypatch):
    """`delete_run` read the run as failed, a `requeue` put it back meanwhile, and the delete answered `run_deleted`
    and removed the old run's output files while the run stayed in the queue (1 time in 30 for a hostile pass).
    The row is deleted first now; when it changed meanwhile, nothing is deleted and the reply says why."""
    queue = proto.queue
    (tmp_path / "out").mkdir(exist_ok=True)
    (tmp_path / "out" / "made.png").write_bytes(b"png")
    run = queue.enqueue(wait_graph(0), "c1", start=True)
    queue.finish(run.id, "failed", error={"message": "x"},
                 result={"files": [{"file_id": "output/made.png", "kind": "image"}]})
    real_delete = queue.delete

    def requeued_first(run_id):
        queue.requeue(run_id)          # another connection's requeue lands between the read and the delete
        return real_delete(run_id)

    monkeypatch.setattr(queue, "delete", requeued_first)
    (reply,) = send(proto, {"type": "delete_run", "run_id": run.id})
    assert reply["type"] == "error" and reply["code"] == "invalid_state" and reply["details"]["status"] == "queued"
    assert (tmp_path / "out" / "made.png").exists() and queue.get(run.id).status == "queued"


def test_a_sender_with_many_frames_gives_other_tasks_turns(tmp_path):
    """A client without batches gets a frame per node event: a 60,000-node run queued 120,000 frames, which its
    sender sent in one go (neither a non-empty queue's get() nor a send under the buffer limit suspends), and every
    other client's messages waited 7 s (a hostile pass). The sender now yields every SEND_TURN frames."""
    server = Server(Session(output_dir=tmp_path / "out"), data_dir=tmp_path / "data", port=0)

    class InstantSocket:
        def __init__(self):
            self.sent = 0

        async def send(self, frame):
            self.sent += 1

    async def scenario():
        socket, outbox, turns = InstantSocket(), asyncio.Queue(), []
        for i in range(10 * Server.SEND_TURN):
            outbox.put_nowait(f"frame {i}")

        async def other_client():
            while socket.sent < 10 * Server.SEND_TURN:
                turns.append(socket.sent)
                await asyncio.sleep(0)

        server._sent_at["c"] = 0.0
        sender = asyncio.create_task(server._send_loop("c", socket, outbox))
        await asyncio.wait_for(other_client(), 10)
        sender.cancel()
        return turns

    turns = asyncio.run(scenario())
    assert len({t for t in turns if 0 < t < 10 * Server.SEND_TURN}) >= 8     # turns while the frames went out


def test_a_folder_with_more_files_than_the_quota_walk_counts_is_over_the_limit(tmp_path, monkeypatch):
    """The quota walk stopped counting after 100,000 files and took what it had counted for the whole: a user made
    102,400 small files, then 130 MB of runs past a 300 MB limit (a hostile pass). Past the count, a user with a
    byte limit is refused, told why."""
    session = Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in")
    book = UserBook(path=tmp_path / "users.json")
    dave = book.authenticate(book.add(User("dave", max_bytes=10**9, max_queued=None)))
    store = FileStore(tmp_path / "in", tmp_path / "out")
    proto = ServerProtocol(session, RunQueue(tmp_path / "runs.sqlite"), store, users=book)
    proto.connect("d", dave)
    proto.receive("d", json.dumps({"type": "hello", "protocol_version": PROTOCOL_VERSION}))
    folder = tmp_path / "out" / "dave"
    folder.mkdir(parents=True)
    for i in range(6):
        (folder / f"{i}.txt").write_text("x")
    monkeypatch.setattr(FileStore, "MAX_COUNTED_FILES", 5)
    (reply,) = [out.message for out in proto.receive("d", json.dumps({"type": "submit", "graph": wait_graph(0)}))
                if out.message and out.message["type"] in ("submitted", "error")]
    assert reply["code"] == "quota_exceeded" and "more than 5 files and folders in their output folder" in reply["message"]
    monkeypatch.setattr(FileStore, "MAX_COUNTED_FILES", 100)
    (reply,) = [out.message for out in proto.receive("d", json.dumps({"type": "submit", "graph": wait_graph(0)}))
                if out.message and out.message["type"] in ("submitted", "error")]
    assert reply["type"] == "submitted"


def test_a_run_cannot_write_past_its_users_storage_limit(tmp_path):
    """max_bytes was checked only before a run: a user with 2 MiB wrote 190 MB in one (a hostile pass). A run of a
    user with a limit gets what is left of it, and the file that would pass it is not kept: the node fails (the
    batch's files before it, which fitted, are kept with the failed run)."""
    from nodegraph import NodeExecutionError
    from nodegraph.files import OutputBudget

    session = Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in")
    graph = {"format_version": 2, "nodes": {
        "img": {"type": "RenderTinyWorld", "inputs": {"caption": "a red circle", "size": 64}},
        "batch": {"type": "ImageBatch", "inputs": {"a": {"node": "img", "output": "image"},
                                                   "b": {"node": "img", "output": "image"}}},
        "save": {"type": "SaveImage", "inputs": {"images": {"node": "batch", "output": "images"},
                                                 "filename_prefix": "big"}}}}
    session.run(graph)
    before = sorted((tmp_path / "out").iterdir())
    size = max(path.stat().st_size for path in before)
    session.cache.clear()
    with pytest.raises(NodeExecutionError, match="would pass user carol's storage limit") as failed:
        session.run(graph, output_budget=OutputBudget(int(size * 1.5), "carol"))
    # the first image fitted: it is kept and listed as the failed run's (a server records it with the run, whose
    # delete_run removes it); the second is not written
    kept = failed.value.files_written["save"]["files"]
    assert len(kept) == 1 and "the 1 file(s) it wrote before this one fitted" in str(failed.value)
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == \
        sorted([path.name for path in before] + [kept[0]["name"]])

    book = UserBook(path=tmp_path / "users.json")
    book.add(User("carol", max_bytes=10_000, max_queued=None))
    book.add(User("root", role="admin"))
    proto = ServerProtocol(session, RunQueue(tmp_path / "runs.sqlite"), FileStore(tmp_path / "in", tmp_path / "out"),
                           users=book)
    assert proto.output_budget("carol").left == 10_000 and proto.output_budget("root") is None
    assert proto.output_budget(None) is None


def test_downloads_nobody_reads_cannot_hold_unbounded_memory(tmp_path, monkeypatch):
    """/files reads a file into memory and keeps it until the client has it: 140 connections that asked for a 15 MB
    file and never read held 1.9 GB (a hostile pass). Past FILE_BYTES_OUT_LIMIT bytes waiting, /files answers 503
    with Retry-After; the bytes count out when the connection ends."""
    import socket

    monkeypatch.setattr(Server, "FILE_BYTES_OUT_LIMIT", 1 << 20)
    running = RunningServer(tmp_path)
    try:
        (tmp_path / "out").mkdir(exist_ok=True)
        (tmp_path / "out" / "big.bin").write_bytes(os.urandom(32 << 20))      # more than socket buffers hold
        request = b"GET /files/output/big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        stuck = socket.create_connection(("127.0.0.1", running.port), timeout=20)
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.sendall(request)
        assert stuck.recv(64).startswith(b"HTTP/1.1 200")         # its answer started; the rest waits for it
        deadline = time.monotonic() + 20
        while not running.server._file_bytes_out and time.monotonic() < deadline:
            time.sleep(0.05)
        reply = _raw(running.port, request)
        assert reply.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in reply, reply[:200]
        stuck.close()
        deadline = time.monotonic() + 20
        while running.server._file_bytes_out and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not running.server._file_bytes_out
        status, body = http_request(running.port, "/files/output/big.bin")
        assert status == 200 and len(body) == 32 << 20
    finally:
        running.stop()


def test_a_head_request_gets_the_headers_without_the_body(server, tmp_path):
    """HEAD got the whole file after its headers (a hostile pass); it gets what a GET's headers say, no body."""
    import socket

    save_png(tmp_path / "out" / "h.png")
    size = (tmp_path / "out" / "h.png").stat().st_size
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(b"HEAD /files/output/h.png HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and f"Content-Length: {size}".encode() in head and body == b""


def test_a_result_past_the_users_limit_is_stored_without_its_values(tmp_path):
    """Stored results were counted only at the next submit: six queued runs, each storing 40 MB of ShowValue texts,
    were all accepted and stored 241 MB against a 2 MiB limit (a re-test). A result takes what is left of its
    user's limit; past it, its output values are replaced by a note and its files kept."""
    from nodegraph.files import OutputBudget

    result = {"outputs": {"show": {"value": "x" * 50_000}}, "files": [{"file_id": "output/a.png"}],
              "executed": ["show"], "cached": []}
    budget = OutputBudget(60_000, "alice")
    assert ServerProtocol.result_within(result, budget) is result and budget.left < 10_000
    stored = ServerProtocol.result_within(result, budget)
    assert stored["files"] == result["files"] and "not stored" in stored["outputs"]["show"]["not_stored"]
    assert "alice's storage limit" in stored["outputs"]["show"]["not_stored"]
    assert ServerProtocol.result_within(result, None) is result
    # the node id lists grow with the graph: a 10 KB graph of nested subgraphs stored a 2 MB `executed` list past
    # a 1 MiB limit (an operator's pass). Past the limit they are stored as counts, and what is stored is counted
    long_ids = [f"top/{'a/' * 60}{n}" * 3 for n in range(5000)]
    big = {"outputs": {"show": {"value": 1}}, "executed": long_ids, "cached": long_ids[:10]}
    budget = OutputBudget(100_000, "carol")
    stored = ServerProtocol.result_within(big, budget)
    assert stored["executed"] == [] and stored["executed_count"] == 5000 and stored["cached_count"] == 10
    assert len(json.dumps(stored)) < 2000 and 98_000 < budget.left < 100_000


def test_a_training_state_past_the_users_limit_is_not_written(tmp_path):
    """Training nodes wrote their state outside api.save_files: a user with a 300 KB limit stored a 242 MB
    training_state.safetensors (a re-test). TrainingRun(budget=) refuses the save that would pass it."""
    import torch

    from nodegraph.errors import StorageLimitError
    from nodegraph.files import OutputBudget
    from nodes.training.trainer import TrainingRun

    run = TrainingRun(tmp_path / "run", {"t": 1}, budget=OutputBudget(10_000, "carol"))
    run.save({"step": 1, "w": torch.zeros(100)})                       # 400 bytes: fits
    with pytest.raises(StorageLimitError, match="carol's storage limit"):
        run.save({"step": 2, "w": torch.zeros(100_000)})               # 400 KB: does not
    assert (tmp_path / "run" / "training_state.safetensors").stat().st_size < 10_000


def test_big_frames_have_a_pool_of_their_own(tmp_path, monkeypatch):
    """Twelve clients submitting 2.2 MB graphs made another client's queue_status wait 2.8 s behind them in the
    4-thread handler pool (a hostile pass): frames over ON_LOOP_MAX_CHARS go to a pool of their own."""
    server = Server(Session(output_dir=tmp_path / "out"), data_dir=tmp_path / "data", port=0)
    used = []

    class Recording:
        def __init__(self, name):
            self.name = name

        def submit(self, fn, *args):        # what run_in_executor calls
            used.append(self.name)
            future = concurrent.futures.Future()
            future.set_result([])
            return future

    import concurrent.futures

    monkeypatch.setattr(server, "_handlers", Recording("small"))
    monkeypatch.setattr(server, "_big_handlers", Recording("big"))

    server.protocol.connect("c")
    server.protocol.receive("c", json.dumps({"type": "hello", "protocol_version": PROTOCOL_VERSION}))
    from types import SimpleNamespace

    from websockets.protocol import State

    server.connections["c"] = (SimpleNamespace(state=State.OPEN), None)     # an open connection's messages are handled

    async def handle(frame):
        return await server._handle(asyncio.get_running_loop(), "c", frame)

    big = json.dumps({"type": "history", "pad": "x" * (server.protocol.ON_LOOP_MAX_CHARS + 1)})
    asyncio.run(handle(big))
    asyncio.run(handle(json.dumps({"type": "history"})))
    asyncio.run(handle(b"\x00" * (server.protocol.ON_LOOP_MAX_CHARS + 1)))       # an upload's binary frame
    assert used == ["big", "small", "big"]


# --- one user's share of the message pools (an operator's pass) ------------------------------------------------

def test_one_users_slow_messages_hold_at_most_their_share_of_the_pools(tmp_path, monkeypatch):
    """bob sent graphs that take seconds to check on many connections: every pool thread was his, and alice's
    history took 30 s. A user has at most POOL_SHARE_PER_USER messages in the pools; a message whose connection
    closed while it waited is dropped (bob's frames were still checked a minute after he hung up)."""
    book = UserBook(path=tmp_path / "users.json")
    tokens = {name: book.add(User(name)) for name in ("alice", "bob")}
    running = RunningServer(tmp_path, users=book)
    protocol = running.server.protocol
    real_history = protocol._on_history
    bobs_handled = []

    def history(client, message):
        if client.user is not None and client.user.name == "bob":
            bobs_handled.append(time.monotonic())
            time.sleep(1.5)                       # a graph of nested subgraphs being checked, say
        return real_history(client, message)

    monkeypatch.setattr(protocol, "_on_history", history)
    bobs = []
    try:
        bobs = [Client(running.url(f"/ws?token={tokens['bob']}")) for _ in range(8)]
        alice = Client(running.url(f"/ws?token={tokens['alice']}"))
        for bob in bobs:
            bob.send({"type": "history"})
        time.sleep(0.3)                           # bob's messages are in (and waiting for) the pool
        started = time.monotonic()
        alice.send({"type": "history"})
        alice.next_of("history", timeout=20)
        assert time.monotonic() - started < 1.4   # never behind a whole round of bob's
        for bob in bobs[2:]:                      # six of bob's are still waiting their turn: he hangs up
            bob.close()
        time.sleep(4)
        assert len(bobs_handled) <= 4             # 2 in the pool when he left, at most 2 more taken meanwhile
        alice.close()
    finally:
        for bob in bobs[:2]:
            bob.close()
        running.stop()


def test_one_users_thumbnails_do_not_starve_anothers_and_a_long_wait_answers_503(tmp_path, monkeypatch):
    """bob asked for 32 thumbnails of 8192² images: both threads were his, alice's thumbnail got 503, and his own
    requests were cut without a status line after websockets' 10 s. On a server with users a user has one
    thumbnail being made at a time; a request that waits past THUMBNAIL_WAIT_SECONDS gets 503 with Retry-After,
    and the thumbnail, made meanwhile, answers the retry from the cache."""
    book = UserBook(path=tmp_path / "users.json")
    tokens = {name: book.add(User(name)) for name in ("alice", "bob")}
    running = RunningServer(tmp_path, users=book)
    try:
        for name, count in (("alice", 1), ("bob", 8)):
            folder = tmp_path / "out" / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                save_png(folder / f"img{i}.png")
        slow_image_open(monkeypatch, 0.8, [])
        monkeypatch.setattr(Server, "THUMBNAIL_WAIT_SECONDS", 3.0, raising=False)

        def get(name, path):       # (status, headers)
            conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=30)
            conn.request("GET", f"/files/{path}?size=64&token={tokens[name]}")
            response = conn.getresponse()
            response.read()
            return response.status, dict(response.getheaders())

        with ThreadPoolExecutor(9) as pool:
            bobs = [pool.submit(get, "bob", f"output/img{i}.png") for i in range(8)]
            time.sleep(0.3)
            started = time.monotonic()
            alice = get("alice", "output/img0.png")
            alice_seconds = time.monotonic() - started
            answers = [future.result() for future in bobs]
        assert alice[0] == 200 and alice_seconds < 2.5         # behind at most one of bob's, not all eight
        statuses = [answer[0] for answer in answers]
        assert 200 in statuses and 503 in statuses and set(statuses) <= {200, 503}
        assert all(answer[1].get("Retry-After") for answer in answers if answer[0] == 503)
        time.sleep(5)                                          # bob's waited-out thumbnails are made meanwhile
        assert [get("bob", f"output/img{i}.png")[0] for i in range(8)] == [200] * 8
        # bob's requests fill at most his share of the waiting list: 40 of his at once left alice none (a re-test)
        monkeypatch.setattr(Server, "THUMBNAIL_WAITING_PER_USER", 2)
        for i in range(8):
            save_png(tmp_path / "out" / "bob" / f"more{i}.png")
        with ThreadPoolExecutor(9) as pool:
            bobs = [pool.submit(get, "bob", f"output/more{i}.png") for i in range(8)]
            time.sleep(0.3)
            save_png(tmp_path / "out" / "alice" / "new.png")
            alice = get("alice", "output/new.png")
            statuses = [future.result()[0] for future in bobs]
        assert alice[0] == 200 and statuses.count(503) >= 5
    finally:
        running.stop()


def test_serve_takes_model_paths_as_run_does(tmp_path, monkeypatch, capsys):
    """`serve --model-paths FILE` was refused ("unrecognized arguments") while run, validate, nodes and plugins took
    it: an editor-first A1111 user could reach their models only through NODEGRAPH_MODEL_PATHS."""
    import nodegraph.server as server_module

    (tmp_path / "sd" / "ckpts").mkdir(parents=True)
    (tmp_path / "sd" / "ckpts" / "mine.safetensors").write_bytes(b"x")
    config = tmp_path / "paths.json"
    config.write_text(json.dumps({"checkpoints": ["sd/ckpts"]}))
    seen = {}


    def fake_server(session, **kwargs):
        seen["session"] = session
        raise server_module.DataFolderInUse("stop here")       # a refusal main() answers with exit 2

    monkeypatch.setattr(server_module, "Server", fake_server)
    assert server_module.main(["--model-paths", str(config), "--port", "0", "--data-dir", str(tmp_path / "d"),
                               "--no-plugins"]) == 2
    names, _folders = seen["session"].model_paths.list("checkpoints")
    assert "mine.safetensors" in names
    assert server_module.main(["--model-paths", str(tmp_path / "missing.json"), "--port", "0", "--no-plugins"]) == 2
    assert "--model-paths" in capsys.readouterr().err
