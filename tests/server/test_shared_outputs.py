"""Output files that several runs show (a run served from the cache reports the files of the run that made
them): deleting one run keeps the files another still lists; a cached entry whose files are gone runs
again; a run whose results cannot be collected is recorded failed, never left running."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from PIL import Image

from .test_server import Client, RunningServer


def save_graph(prefix: str) -> dict:
    return {"format_version": 1, "nodes": {
        "l": {"type": "LoadImage", "inputs": {"image": "a.png"}},
        "s": {"type": "SaveImage", "inputs": {"images": {"node": "l", "output": "image"}, "filename_prefix": prefix}}}}


def run(client: Client, graph: dict) -> tuple[str, dict]:
    """Submit; (how it ended: run_finished / run_failed, the `outputs` reply for it)."""
    client.send({"type": "submit", "graph": graph})
    run_id = client.next_of("submitted")["run_id"]
    deadline = time.monotonic() + 30
    ended = None
    while ended is None and time.monotonic() < deadline:
        frame = client.ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        body = json.loads(frame) if isinstance(frame, str) else {}
        client.received.append(body)
        if body.get("run_id") == run_id and body.get("type") in ("run_finished", "run_failed"):
            ended = body["type"]
    time.sleep(0.05)
    client.send({"type": "get_outputs", "run_id": run_id})
    return ended, client.next_of("outputs", run_id=run_id)


@pytest.fixture
def running(tmp_path):
    (tmp_path / "in").mkdir(parents=True)
    Image.new("RGB", (8, 8), (200, 30, 30)).save(tmp_path / "in" / "a.png")
    server = RunningServer(tmp_path)
    yield server
    server.stop()


def test_deleting_a_run_keeps_the_files_a_cached_run_still_shows(running, tmp_path):
    client = Client(running.url())
    try:
        _, first = run(client, save_graph("dup"))
        _, second = run(client, save_graph("dup"))                   # from the cache: the same file
        assert [f["file_id"] for f in first["files"]] == [f["file_id"] for f in second["files"]]
        path = tmp_path / "out" / Path(first["files"][0]["file_id"]).relative_to("output")
        client.send({"type": "delete_run", "run_id": second["run_id"]})
        reply = client.next_of("run_deleted")
        assert (reply["files_deleted"], reply["files_kept"]) == (0, 1) and path.is_file()
        client.send({"type": "delete_run", "run_id": first["run_id"]})
        reply = client.next_of("run_deleted")
        assert (reply["files_deleted"], reply["files_kept"]) == (1, 0) and not path.exists()
        ended, third = run(client, save_graph("dup"))                # the cached entry's file is gone: runs again
        assert ended == "run_finished" and third["status"] == "succeeded"
        assert all((tmp_path / "out" / Path(f["file_id"]).relative_to("output")).is_file() for f in third["files"])
    finally:
        client.close()


def test_a_run_whose_results_cannot_be_collected_is_recorded_failed(running, monkeypatch):
    def broken(*args, **kwargs):
        raise FileNotFoundError("output/x.png")

    monkeypatch.setattr(running.server, "_send_files", broken)
    client = Client(running.url())
    try:
        ended, outputs = run(client, save_graph("broken"))
        assert ended == "run_failed" and outputs["status"] == "failed"
        client.send({"type": "queue_status"})
        assert client.next_of("queue")["running_all"] == []
        monkeypatch.undo()
        ended, outputs = run(client, save_graph("fine"))             # the worker goes on
        assert ended == "run_finished" and outputs["status"] == "succeeded"
    finally:
        client.close()
