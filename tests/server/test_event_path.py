"""The run queue's bookkeeping on the websocket path: where a submit goes in the queue, and how often the
history is pruned (docs/protocol.md, "What the websocket path costs")."""

from __future__ import annotations

import time

from nodegraph.run_queue import RunQueue

from .test_server import Client, RunningServer, wait_graph


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


def test_history_is_pruned_every_two_percent_of_its_limit(tmp_path):
    """A server keeps at most history_limit + 2 × prune_every finished runs (pruned every prune_every runs)."""
    running = RunningServer(tmp_path, history_limit=3)
    assert running.server.prune_every == 1
    client = Client(running.url())
    try:
        for value in range(8):
            graph = wait_graph(0)
            graph["nodes"]["v"]["inputs"]["value"] = value
            client.send({"type": "submit", "graph": graph})
            client.next_of("run_finished", run_id=client.next_of("submitted")["run_id"])
        time.sleep(0.2)
        _runs, total = running.server.queue.history()
        assert 3 <= total <= 3 + 2 * running.server.prune_every
    finally:
        client.close()
        running.stop()
