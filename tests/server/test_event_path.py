"""The run queue's bookkeeping on the websocket path: where a submit goes in the queue, and how often the
history is pruned (docs/protocol.md, "What the websocket path costs")."""

from __future__ import annotations

import json
import time

import pytest

from nodegraph.run_queue import RunQueue

from .test_server import Client, RunningServer, wait_graph
from .test_server_history_templates import chain_graph


def test_submits_go_behind_and_in_front_of_a_long_history():
    """A new run goes after every run the table holds, a `front` run before them (the lowest and highest
    sequence numbers are read as two index lookups), and a full history does not change that."""
    queue = RunQueue()
    graph = {"format_version": 1, "nodes": {}}
    for _ in range(60):
        record = queue.enqueue(graph, start=True)
        queue.finish(record.id, "succeeded", result={})
    seqs = [r.seq for r in queue.history(limit=100)[0]]
    back = queue.enqueue(graph)
    front = queue.enqueue(graph, front=True)
    assert back.seq == max(seqs) + 1 and front.seq == min(seqs) - 1
    assert [r.id for r in queue.pending()] == [front.id, back.id]


def run_small_graphs(client: Client, count: int) -> None:
    """Run `count` different small graphs one after the other (each is handed to the idle worker)."""
    for value in range(count):
        graph = wait_graph(0)
        graph["nodes"]["v"]["inputs"]["value"] = value
        client.send({"type": "submit", "graph": graph})
        client.next_of("run_finished", run_id=client.next_of("submitted")["run_id"])


def test_history_is_pruned_every_two_percent_of_its_limit(tmp_path):
    """A server keeps at most history_limit + 2 × prune_every finished runs (pruned every prune_every runs)."""
    running = RunningServer(tmp_path, history_limit=3)
    assert running.server.prune_every == 1
    client = Client(running.url())
    try:
        run_small_graphs(client, 8)
        time.sleep(0.2)
        _runs, total = running.server.queue.history()
        assert 3 <= total <= 3 + 2 * running.server.prune_every
    finally:
        client.close()
        running.stop()


def test_a_client_without_batches_that_reads_gets_a_long_run_whole(tmp_path):
    """A plain client (one frame per message) is sent every event of a run with far more frames than
    OUTBOX_LIMIT, because it keeps reading; only a client whose sender makes no progress is dropped."""
    running = RunningServer(tmp_path)
    running.server.OUTBOX_LIMIT = 500
    client = Client(running.url())
    try:
        client.send({"type": "submit", "graph": chain_graph(1500)})
        run_id = client.next_of("submitted")["run_id"]
        client.next_of("run_finished", timeout=60, run_id=run_id)
        assert sum(m.get("type") == "node_finished" for m in client.received) == 1500
    finally:
        client.close()
        running.stop()


def test_a_client_whose_frames_stop_going_out_is_disconnected(tmp_path):
    """Over OUTBOX_LIMIT waiting frames and no finished send for STALL_SECONDS: the server closes it (1008)."""
    import asyncio

    from nodegraph import Session
    from nodegraph.server import Server

    server = Server(Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in"), data_dir=tmp_path / "d", port=0)
    closed = []

    class Stuck:
        async def close(self, code, reason):
            closed.append((code, reason))

    async def scenario():
        outbox: asyncio.Queue = asyncio.Queue()
        server.connections["c"] = (Stuck(), outbox)
        server._sent_at["c"] = asyncio.get_running_loop().time()
        for _ in range(server.OUTBOX_LIMIT + 5):          # a burst, but its sender was just seen sending
            server._put("c", "{}")
        assert "c" in server.connections
        server._sent_at["c"] -= server.STALL_SECONDS + 1  # no progress since
        server._put("c", "{}")
        await asyncio.sleep(0)
        assert "c" not in server.connections

    asyncio.run(scenario())
    assert closed == [(1008, "too many unread messages")]
    server.queue.close()


def test_malformed_ids_and_types_are_refused_as_messages(tmp_path):
    """Run ids that are not ids (a lone surrogate, 10 kB), an offset past any history, `true` as a request id
    or a version: each an `invalid_message` naming the field, never an internal error; a wrong token in a
    second hello leaves the connection greeted."""
    running = RunningServer(tmp_path)
    client = Client(running.url())
    try:
        for message in ({"type": "get_run", "run_id": "\ud800"}, {"type": "cancel", "run_id": "x" * 10_000},
                        {"type": "delete_run", "run_id": "../etc"}, {"type": "history", "offset": 2**63},
                        {"type": "ping", "request_id": True},
                        {"type": "hello", "protocol_version": True}):
            client.ws.send(json.dumps(message))
            error = client.next_of("error")
            assert error["code"] == "invalid_message" and "request_id" not in error, message
        client.send({"type": "hello", "protocol_version": 1, "token": "wrong"})
        assert client.next_of("error")["code"] == "invalid_token"
        client.send({"type": "ping", "request_id": 7})
        assert client.next_of("pong")["request_id"] == 7
    finally:
        client.close()
        running.stop()


def test_finished_runs_leave_no_routing_state_behind(tmp_path):
    """A long-running server forgets which client submitted a run once the run's last event is routed."""
    running = RunningServer(tmp_path)
    client = Client(running.url())
    try:
        run_small_graphs(client, 3)
        time.sleep(0.1)
        assert running.server.protocol.run_owner == {}
    finally:
        client.close()
        running.stop()


def test_a_client_holding_big_unread_replies_is_disconnected_by_their_bytes(tmp_path):
    """3,000 list_nodes (75 KB sent) made the server hold 1.7 GB of 628 KB replies for a client that never read:
    the outbox was capped by frames only. Past OUTBOX_BYTES_LIMIT and no progress, or past the hard byte limit,
    the client is closed (1008)."""
    import asyncio

    from nodegraph import Session
    from nodegraph.server import Server

    server = Server(Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in"), data_dir=tmp_path / "d", port=0)
    closed = []

    class Stuck:
        async def close(self, code, reason):
            closed.append((code, reason))

    big = "x" * (1024**2)

    async def scenario():
        for client, stalled in (("slow", True), ("hard", False)):
            server.connections[client] = (Stuck(), asyncio.Queue())
            server._sent_at[client] = asyncio.get_running_loop().time() - (server.STALL_SECONDS + 1) * stalled
        for _ in range(server.OUTBOX_BYTES_LIMIT // len(big) + 1):       # 65 frames: the soft limit, stalled
            server._put("slow", big)
        assert "slow" not in server.connections
        for _ in range(server.OUTBOX_BYTES_HARD_LIMIT // len(big) - 1):  # reading recently: kept until the hard one
            server._put("hard", big)
        assert "hard" in server.connections
        server._put("hard", big)
        server._put("hard", big)
        assert "hard" not in server.connections
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert closed == [(1008, "too many unread messages")] * 2
    server.queue.close()


def test_one_user_may_hold_at_most_max_connections_per_user_websockets(tmp_path):
    """800 idle websockets opened in 5 s by one user were all kept; past the limit the next is closed, saying
    why, and another user (or a closed slot) still connects."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect


    running = RunningServer(tmp_path)
    running.server.MAX_CONNECTIONS_PER_USER = 3
    try:
        held = [connect(running.url("/ws")) for _ in range(3)]
        for ws in held:
            ws.send('{"type": "ping"}')
            ws.recv(timeout=10)
        extra = connect(running.url("/ws"))
        with pytest.raises(ConnectionClosed) as info:
            extra.recv(timeout=10)
        assert info.value.rcvd.code == 1008 and "too many connections" in info.value.rcvd.reason
        held.pop().close()
        time.sleep(0.3)
        again = connect(running.url("/ws"))
        again.send('{"type": "ping"}')
        assert json.loads(again.recv(timeout=10))["code"] == "hello_required"     # connected and answered
        for ws in (again, *held):
            ws.close()
    finally:
        running.stop()
