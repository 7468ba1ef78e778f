"""What an operator of a shared server runs into: one user's unread downloads, runs queued before `--users`, a
restored backup, files a killed save left, a full disk at submit, a lower --history-limit, a read-only output
folder (an operator's pass)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sqlite3
import time

import pytest

from nodegraph import Session
from nodegraph.files import FileStore, remove_unfinished_files
from nodegraph.protocol import ServerProtocol
from nodegraph.run_queue import RunQueue
from nodegraph.server import FolderNotWritable, Server
from nodegraph.users import User, UserBook

from .test_server import Client, RunningServer, wait_graph


def _unread_get(port: int, path: str, token: str) -> socket.socket:
    """A connection that asks for `path` and never reads the answer (a small receive buffer: it stays unsent)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    return sock


def _status(port: int, path: str, token: str) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                     f"Connection: close\r\n\r\n".encode())
        return int(sock.recv(64).split()[1])


def _wait_until(condition, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_one_users_unread_downloads_do_not_make_other_users_downloads_fail(tmp_path, monkeypatch):
    """One server-wide /files budget let a plain user's 25 unread GETs answer every other user 503. The budget
    and a cap on answers waiting are each user's own, and an unread answer holds them OPEN_TIMEOUT_SECONDS (a small
    one) or DOWNLOAD_STALL_SECONDS (one sent in pieces) at most."""
    monkeypatch.setattr(Server, "FILE_BYTES_OUT_LIMIT", 1 << 20)
    monkeypatch.setattr(Server, "FILE_RESPONSES_PER_USER", 3)
    monkeypatch.setattr(Server, "OPEN_TIMEOUT_SECONDS", 2.0)
    monkeypatch.setattr(Server, "DOWNLOAD_STALL_SECONDS", 2.0)
    book = UserBook(path=tmp_path / "users.json")
    bob, alice = book.add(User("bob")), book.add(User("alice"))
    for name, size in (("bob", 8 << 20), ("alice", 200_000)):
        (tmp_path / "out" / name).mkdir(parents=True)
        (tmp_path / "out" / name / "f.bin").write_bytes(os.urandom(size))
    (tmp_path / "out" / "bob" / "small.bin").write_bytes(b"x" * 1000)
    running = RunningServer(tmp_path, users=book)
    stuck = []
    try:
        stuck.append(_unread_get(running.port, "/files/output/f.bin", bob))     # 8 MiB: past bob's budget
        assert _wait_until(lambda: running.server._file_bytes_out)
        assert _status(running.port, "/files/output/f.bin", bob) == 503        # bob's own budget is spent ...
        assert _status(running.port, "/files/output/f.bin", alice) == 200      # ... not alice's
        # nobody reads, nobody closes: the answer is cut after DOWNLOAD_STALL_SECONDS and bob may download again
        assert _wait_until(lambda: not running.server._file_bytes_out, 10)
        stuck += [_unread_get(running.port, "/files/output/small.bin", bob) for _ in range(3)]
        assert _wait_until(lambda: sum(n for _, n in running.server._file_bytes_out.values()) == 3)
        assert _status(running.port, "/files/output/small.bin", bob) == 503    # 3 answers of his wait: no 4th
        assert _status(running.port, "/files/output/f.bin", alice) == 200
        assert _wait_until(lambda: not running.server._file_bytes_out, 10)
        assert _status(running.port, "/files/output/small.bin", bob) == 200
    finally:
        for sock in stuck:
            sock.close()
        running.stop()


def _slow_download(port: int, path: str, bytes_per_second: int) -> bytes:
    """GET `path` and read the answer steadily at about `bytes_per_second`, in small recv()s (a slow link)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        received, started, piece = bytearray(), time.monotonic(), 16384
        while chunk := sock.recv(piece):
            received += chunk
            ahead = len(received) / bytes_per_second - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        return bytes(received)


def test_a_download_that_keeps_progressing_is_not_cut_after_the_open_timeout(tmp_path, monkeypatch):
    """A /files answer had to be over OPEN_TIMEOUT_SECONDS (10 s) after its connection opened: a 200 MB video over
    a slow link was cut mid-way. An answer that makes progress is sent to its end, however long that takes; one
    whose client stops reading is cut after DOWNLOAD_STALL_SECONDS without progress, and its bytes count out."""
    monkeypatch.setattr(Server, "OPEN_TIMEOUT_SECONDS", 1.0)
    monkeypatch.setattr(Server, "DOWNLOAD_STALL_SECONDS", 1.5)
    (tmp_path / "out").mkdir()
    content = os.urandom(12 << 20)      # more than the kernel buffers hold
    (tmp_path / "out" / "video.bin").write_bytes(content)
    running = RunningServer(tmp_path)
    try:
        started = time.monotonic()
        reply = _slow_download(running.port, "/files/output/video.bin", 4 << 20)      # ~3 s at 4 MiB/s
        assert time.monotonic() - started > 2 * Server.OPEN_TIMEOUT_SECONDS
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and body == content, (head, len(body))
        assert _wait_until(lambda: not running.server._file_bytes_out, 5)
        stuck = _unread_get(running.port, "/files/output/video.bin", "")      # reads nothing: no progress
        try:
            assert _wait_until(lambda: running.server._file_bytes_out, 5)
            cut_at = time.monotonic()
            assert _wait_until(lambda: not running.server._file_bytes_out, 10)
            assert time.monotonic() - cut_at < 6
        finally:
            stuck.close()
    finally:
        running.stop()


GRAPH = {"format_version": 2, "nodes": {"a": {"type": "ShowValue", "inputs": {"value": 1}}}}


def test_runs_queued_before_the_server_had_users_are_failed_not_run_as_no_one(tmp_path, caplog):
    """A run queued on a server without users ran, after a restart with `--users`, with an admin's rights (it
    overwrote a shared checkpoint) and no time limit. It now fails unrun, saying why, and the start logs how many."""
    caplog.set_level(logging.INFO)
    (tmp_path / "data").mkdir()
    queue = RunQueue(tmp_path / "data" / "runs.sqlite")
    ownerless = queue.enqueue(wait_graph(0)).id
    queue.close()
    book = UserBook(path=tmp_path / "users.json")
    book.add(User("alice"))
    running = RunningServer(tmp_path, users=book)
    try:
        assert _wait_until(lambda: running.server.queue.get(ownerless).status == "failed")
        record = running.server.queue.get(ownerless)
        assert record.error["code"] == "ownerless_run" and "re-submit it as a user" in record.error["message"]
        assert "1 queued run(s) have no user" in caplog.text
        assert not running.server.protocol.may_write_models(None)
    finally:
        running.stop()


def test_an_output_restored_with_whole_second_times_is_still_its_runs_file(tmp_path):
    """tar keeps modification times to the second: every run of a restored backup lost its files (history showed
    none, delete_run left them). The same size and second is the same file; another size or second is not."""
    store = FileStore(tmp_path / "in", tmp_path / "out")
    path = tmp_path / "out" / "img_00001.png"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"p" * 100)
    os.utime(path, ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
    item = {"file_id": "output/img_00001.png", "bytes": 100, "mtime_ns": 1_700_000_000_123_456_789}
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))      # as tar restores it
    assert ServerProtocol._still_written(store, item)
    os.utime(path, ns=(1_700_000_001_000_000_000, 1_700_000_001_000_000_000))      # written a second later
    assert not ServerProtocol._still_written(store, item)
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    path.write_bytes(b"q" * 101)
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    assert not ServerProtocol._still_written(store, item)                          # another size


def test_half_written_files_are_removed_at_start(tmp_path, caplog):
    """A save killed by kill -9 (or a SIGTERM during a long PNG encode) left `.partial-*` files hidden from
    list_files yet counted in the user's quota; a cut-off upload left `.upload-*.tmp`. Start removes them."""
    caplog.set_level(logging.INFO)
    left = [tmp_path / "out" / "bob" / ".partial-0e9375637401.png", tmp_path / "out" / "a b" / ".partial-d99567e4b93a",
            tmp_path / "in" / "bob" / ".upload-4242-0123456789ab.tmp"]
    kept = [tmp_path / "out" / "bob" / "img_00001.png", tmp_path / "out" / "bob" / ".partial-notmine.png"]
    for path in left + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 1000)
    running = RunningServer(tmp_path)
    running.stop()
    assert not any(path.exists() for path in left) and all(path.exists() for path in kept)
    assert "removed 3 half-written file(s)" in caplog.text
    assert remove_unfinished_files(tmp_path / "out", tmp_path / "in") == (0, 0)


def test_a_full_disk_at_submit_is_reported_as_a_full_disk(tmp_path):
    """SQLite rolls back itself after "database or disk is full"; enqueue's own ROLLBACK then raised "no
    transaction is active", and that was what the submitter and the log were told."""
    queue = RunQueue(tmp_path / "runs.sqlite")
    pages = queue._db.execute("PRAGMA page_count").fetchone()[0]
    queue._db.execute(f"PRAGMA max_page_count = {pages + 2}")
    with pytest.raises(sqlite3.OperationalError, match="full"):
        for _ in range(50):
            queue.enqueue({"format_version": 2, "nodes": {"a": {"type": "ShowValue", "inputs": {"value": "x" * 9000}}}})
    queue._db.execute("PRAGMA max_page_count = 1000000")
    assert queue.enqueue(GRAPH).status == "queued"        # nothing left half-done: the next one is stored
    queue.close()


def test_a_lower_history_limit_at_start_says_what_it_pruned(tmp_path, caplog):
    """A restart with a lower --history-limit deleted history and logged nothing; it logs how many of whose."""
    caplog.set_level(logging.INFO)
    (tmp_path / "data").mkdir()
    queue = RunQueue(tmp_path / "data" / "runs.sqlite")
    for user, count in (("bob", 5), ("alice", 2)):
        for _ in range(count):
            queue.finish(queue.enqueue(GRAPH, user=user).id, "succeeded")
    queue.close()
    running = RunningServer(tmp_path, history_limit=2)
    running.stop()
    assert "pruned 3 finished run(s) past --history-limit 2: bob 3" in caplog.text


def test_an_output_folder_that_cannot_be_written_is_refused_at_start(tmp_path, capsys):
    """A read-only --output-dir started fine, then every SaveImage failed blaming its `prefix`; it is refused at
    start with one line and exit 2, as a data folder is."""
    (tmp_path / "taken").write_text("a file where the folder should be")
    session = Session(output_dir=tmp_path / "taken" / "out", input_dir=tmp_path / "in")
    server = Server(session, data_dir=tmp_path / "data", port=0)
    with pytest.raises(FolderNotWritable, match="output folder .* cannot be written.*--output-dir"):
        asyncio.run(server.start())
    server.queue.close()
    from nodegraph.server import main as serve_main

    assert serve_main(["--port", "0", "--data-dir", str(tmp_path / "d2"), "--output-dir",
                       str(tmp_path / "taken" / "out")]) == 2
    assert "give a writable --output-dir" in capsys.readouterr().err
