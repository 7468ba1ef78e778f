"""History entries, past runs, workflow templates, thumbnails, batch frames and format-2 graphs over the server."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from nodegraph import Input, Node, NodeInputs, Output, Session, hookimpl
from nodegraph.files import FileStore
from nodegraph.protocol import PROTOCOL_VERSION, ServerProtocol
from nodegraph.run_queue import RunQueue
from nodegraph.server import Server
from nodegraph.templates import TemplateError, TemplateLibrary, plugin_graph_folders

from .test_server import Client, RunningServer, http_get

ROOT = Path(__file__).resolve().parents[2]


class SeededValue(Node):
    """Returns its seed (a node with a declared seed input, for history tests)."""

    category = "test"

    class Inputs(NodeInputs):
        seed: int = Input(0, seed=True)

    outputs = (Output("value", "INT"),)

    def run(self, seed: int) -> dict:
        return {"value": seed}


@hookimpl
def register_nodes():
    return [SeededValue]


def seeded_graph(seed: int) -> dict:
    return {"format_version": 2, "metadata": {"title": "Seeded"}, "nodes": {
        "s": {"type": "SeededValue", "inputs": {"seed": seed}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "s", "output": "value"}}}}}


@pytest.fixture
def proto(tmp_path):
    session = Session(plugins=[sys.modules[__name__]], output_dir=tmp_path / "out", input_dir=tmp_path / "in")
    templates = TemplateLibrary({"project": ROOT / "graphs"})
    protocol = ServerProtocol(session, RunQueue(), FileStore(tmp_path / "in", tmp_path / "out"), templates=templates)
    protocol.connect("c1")
    protocol.receive("c1", json.dumps({"type": "hello", "protocol_version": PROTOCOL_VERSION}))
    return protocol


def send(proto, message: dict, client: str = "c1") -> list:
    return proto.receive(client, json.dumps(message))


def finish_next(proto, status: str = "succeeded", files: list | None = None) -> str:
    """Play the worker: claim the next queued run and record how it ended."""
    record = proto.queue.claim_next()
    proto.prepared.pop(record.id, None)
    proto.queue.finish(record.id, status, result={"outputs": {}, "files": files or []}
                       if status == "succeeded" else None, error=None if status == "succeeded" else {"message": "x"})
    return record.id


def test_history_entries_carry_duration_seed_thumbnail_and_files(proto):
    """A finished run's history entry names its duration, seeds (overrides applied), first image and file count."""
    send(proto, {"type": "submit", "graph": seeded_graph(5), "overrides": {"s.seed": 1234}})
    files = [{"file_id": "output/a.mp4", "node_id": "v", "kind": "video", "index": 0},
             {"file_id": "output/b.png", "node_id": "i", "kind": "image", "index": 0}]
    for item in files:          # a history lists the files that are there (a deleted one is `missing`)
        path = proto.files.folders["output"] / item["file_id"].removeprefix("output/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    run_id = finish_next(proto, files=files)
    (reply,) = send(proto, {"type": "history"})
    (entry,) = reply.message["runs"]
    assert entry["run_id"] == run_id and entry["status"] == "succeeded" and entry["title"] == "Seeded"
    assert entry["seed"] == 1234 and entry["seeds"] == {"s.seed": 1234}
    assert entry["thumbnail"] == "output/b.png" and entry["files"] == 2
    assert isinstance(entry["duration"], float) and entry["duration"] >= 0


def test_history_seeds_are_those_the_run_executes(proto):
    """Seeds come from the effective graph: a muted node's seed is not listed, a subgraph's inner seed is
    (under its expanded id), and a seed linked from an Int primitive is listed with the Int's value."""
    graph = {"format_version": 2, "metadata": {"title": "Seeded"}, "nodes": {
        "muted": {"type": "SeededValue", "inputs": {"seed": 11}, "mode": "mute"},
        "seed_box": {"type": "Int", "inputs": {"value": 42}},
        "linked": {"type": "SeededValue", "inputs": {"seed": {"node": "seed_box", "output": "value"}}},
        "inner": {"type": "subgraph:seeded"},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "linked", "output": "value"}}},
        "show2": {"type": "ShowValue", "inputs": {"value": {"node": "inner", "output": "value"}}}},
        "subgraphs": {"seeded": {"inputs": {}, "outputs": {"value": {"node": "s", "output": "value"}},
                                 "nodes": {"s": {"type": "SeededValue", "inputs": {"seed": 9}}}}}}
    replies = [out.message for out in send(proto, {"type": "submit", "graph": graph}) if out.message is not None]
    assert any(m["type"] == "submitted" for m in replies), replies
    finish_next(proto)
    (reply,) = send(proto, {"type": "history"})
    (entry,) = reply.message["runs"]
    assert entry["seeds"] == {"linked.seed": 42, "inner/s.seed": 9}


def test_history_filters_by_status(proto):
    """`status` keeps only runs that ended so, and `total` counts only those."""
    for seed in range(3):
        send(proto, {"type": "submit", "graph": seeded_graph(seed)})
    finish_next(proto, "succeeded")
    failed = finish_next(proto, "failed")
    finish_next(proto, "succeeded")
    (reply,) = send(proto, {"type": "history", "status": ["failed"]})
    assert [r["run_id"] for r in reply.message["runs"]] == [failed] and reply.message["total"] == 1
    (reply,) = send(proto, {"type": "history", "status": ["succeeded", "failed"]})
    assert reply.message["total"] == 3
    (reply,) = send(proto, {"type": "history", "status": ["running"]})
    assert reply.message["code"] == "invalid_message"


def test_get_run_returns_the_graph_as_submitted(proto):
    """A past run's graph comes back exactly as submitted, with its overrides, to reload in the editor."""
    graph = seeded_graph(9)
    (submitted, _) = send(proto, {"type": "submit", "graph": graph, "overrides": {"s.seed": 3}})
    run_id = finish_next(proto)
    (reply,) = send(proto, {"type": "get_run", "run_id": run_id})
    assert reply.message["type"] == "run" and reply.message["graph"] == graph
    assert reply.message["overrides"] == {"s.seed": 3} and reply.message["seed"] == 3
    (reply,) = send(proto, {"type": "get_run", "run_id": "nope"})
    assert reply.message["code"] == "not_found"


def test_submit_prepares_the_validated_graph_for_the_worker(proto):
    """The graph submit validated (overrides applied) waits for the worker; cancel drops it."""
    (submitted, _) = send(proto, {"type": "submit", "graph": seeded_graph(1), "overrides": {"s.seed": 8}})
    run_id = submitted.message["run_id"]
    prepared = proto.prepared[run_id]
    assert prepared.nodes["s"].inputs["seed"] == 8
    assert proto.session.run(prepared).outputs["show"]["value"] == 8
    send(proto, {"type": "cancel", "run_id": run_id})
    assert run_id not in proto.prepared


def test_list_templates_names_project_graphs_with_their_metadata(proto):
    """list_templates lists graphs/ (subfolders too) with titles and descriptions from metadata."""
    (reply,) = send(proto, {"type": "list_templates"})
    templates = {t["id"]: t for t in reply.message["templates"]}
    txt2img = templates["project/txt2img.json"]
    metadata = json.loads((ROOT / "graphs" / "txt2img.json").read_text())["metadata"]
    assert txt2img["title"] == metadata["title"] and txt2img["source"] == "project"
    assert txt2img["description"] == metadata.get("description", "") and txt2img["nodes"] > 0
    assert any(t["folder"] == "train" for t in templates.values())
    (reply,) = send(proto, {"type": "get_template", "template_id": "project/txt2img.json"})
    assert reply.message["graph"] == json.loads((ROOT / "graphs" / "txt2img.json").read_text())


def test_get_template_is_confined_to_template_folders(tmp_path, proto):
    """Traversal, absolute paths, other sources, non-JSON files and links out are all not_found."""
    secret = tmp_path / "secret.json"
    secret.write_text("{}")
    root = tmp_path / "graphs"
    root.mkdir()
    (root / "ok.json").write_text(json.dumps({"format_version": 2, "nodes": {}, "metadata": {"title": "OK"}}))
    (root / "notes.txt").write_text("hi")
    (root / "link.json").symlink_to(secret)
    os.mkfifo(root / "fifo.json")                   # listing it blocked for ever (a hostile re-test)
    proto.templates = TemplateLibrary({"project": root})
    for bad in ("project/../secret.json", "project//etc/passwd.json", "project/notes.txt", "other/ok.json",
                "project/link.json", "project", "project/./ok.json", "project/fifo.json",
                "project/" + "a" * 300 + "/x.json", "project/a\u0000b.json"):    # OSError, ValueError: not_found
        (reply,) = send(proto, {"type": "get_template", "template_id": bad})
        assert reply.message["code"] == "not_found", bad
    (reply,) = send(proto, {"type": "list_templates"})
    assert [t["id"] for t in reply.message["templates"]] == ["project/ok.json"]


def test_a_broken_template_is_listed_with_its_error(tmp_path):
    """A template file that is not JSON shows up with `error` (and get_template says invalid_template)."""
    root = tmp_path / "graphs"
    root.mkdir()
    (root / "broken.json").write_text("{nope")
    library = TemplateLibrary({"project": root})
    (entry,) = library.list()
    assert entry["id"] == "project/broken.json" and "not a readable JSON graph" in entry["error"]
    with pytest.raises(TemplateError) as info:
        library.read("project/broken.json")
    assert info.value.code == "invalid_template"


def test_plugin_graph_folders_are_found_beside_a_source_checkout(tmp_path, monkeypatch):
    """A plugin installed from a checkout (pyproject.toml beside its package) lists that checkout's graphs/."""
    checkout = tmp_path / "plugins" / "demo"
    (checkout / "demo_pkg").mkdir(parents=True)
    (checkout / "demo_pkg" / "__init__.py").write_text("")
    (checkout / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    (checkout / "graphs").mkdir()
    (checkout / "graphs" / "demo.json").write_text(json.dumps({"format_version": 2, "nodes": {},
                                                               "metadata": {"title": "Demo graph"}}))
    monkeypatch.syspath_prepend(str(checkout))
    __import__("demo_pkg")
    report = SimpleNamespace(loaded=[SimpleNamespace(name="demo", source="entry_point", module="demo_pkg"),
                                     SimpleNamespace(name="primitives", source="builtin", module="nodes.primitives")])
    assert plugin_graph_folders(report) == {"demo": (checkout / "graphs").resolve()}
    library = TemplateLibrary(plugin_graph_folders(report))
    assert [(t["id"], t["title"]) for t in library.list()] == [("demo/demo.json", "Demo graph")]



def test_a_plugin_named_project_hides_no_project_template_and_a_module_plugin_no_stray_folder(tmp_path, monkeypatch):
    """A plugin named "project" replaced the project's templates (`project/txt2img.json` vanished); a one-module
    plugin in site-packages listed `site-packages/graphs` (another package's) as its own (a hostile re-test)."""
    site = tmp_path / "site"
    (site / "graphs").mkdir(parents=True)
    (site / "graphs" / "stray.json").write_text(json.dumps({"format_version": 2, "nodes": {}}))
    (site / "lonely_mod.py").write_text("")
    (site / "project_pkg").mkdir()
    (site / "project_pkg" / "__init__.py").write_text("")
    (site / "project_pkg" / "graphs").mkdir()
    (site / "project_pkg" / "graphs" / "scale.json").write_text(json.dumps({"format_version": 2, "nodes": {}}))
    monkeypatch.syspath_prepend(str(site))
    __import__("lonely_mod")
    __import__("project_pkg")
    report = SimpleNamespace(loaded=[SimpleNamespace(name="lonely", source="entry_point", module="lonely_mod"),
                                     SimpleNamespace(name="project", source="entry_point", module="project_pkg")])
    assert "lonely" not in plugin_graph_folders(report)
    session = SimpleNamespace(plugin_report=report)
    ids = [t["id"] for t in TemplateLibrary.for_session(session, ROOT / "graphs").list()]
    assert "project/txt2img.json" in ids and "project/scale.json" not in ids
    from nodegraph.plugin_template import PluginTemplateError, check_plugin_name

    with pytest.raises(PluginTemplateError, match="a name nodegraph uses"):
        check_plugin_name("project")


# --- the real server ------------------------------------------------------------

@pytest.fixture
def server(tmp_path):
    running = RunningServer(tmp_path)
    yield running
    running.stop()


def chain_graph(n: int) -> dict:
    nodes = {"n0": {"type": "Int", "inputs": {"value": 0}}}
    for i in range(1, n - 1):
        nodes[f"n{i}"] = {"type": "IntMath", "inputs": {
            "a": {"node": f"n{i-1}", "output": "value" if i == 1 else "result"}, "b": 1}}
    nodes["s"] = {"type": "ShowValue", "inputs": {"value": {"node": f"n{n-2}", "output": "result"}}}
    return {"format_version": 2, "nodes": nodes}


def run_messages(client: Client, graph: dict) -> tuple[list[dict], int]:
    """Submit; every text message up to run_finished (batches unpacked in order) and the frame count."""
    client.send({"type": "submit", "graph": graph})
    messages = []
    frames = 0
    while True:
        frame = client.ws.recv(timeout=30)
        frames += 1
        if not isinstance(frame, str):
            continue
        body = json.loads(frame)
        unpacked = body["messages"] if body["type"] == "batch" else [body]
        messages.extend(unpacked)
        if any(m["type"] == "run_finished" for m in unpacked):
            return messages, frames


def test_batch_frames_carry_the_same_messages_in_the_same_order(server):
    """A batching client gets the messages a plain client gets, in order, in far fewer frames — less the
    `node_started` of nodes whose `node_finished` travels in the same frame."""
    plain = Client(server.url())
    batching = Client(server.url())
    batching.send({"type": "hello", "protocol_version": 1, "batch": True})
    batching.next_of("welcome")
    graph = chain_graph(60)
    graph["nodes"]["n0"]["inputs"]["value"] = 1
    first, plain_frames = run_messages(plain, graph)
    graph["nodes"]["n0"]["inputs"]["value"] = 2
    second, batch_frames = run_messages(batching, graph)

    def shape(messages):
        return [(m["type"], m.get("node_id")) for m in messages if m["type"] != "queue_changed"]

    settled = [item for item in shape(first) if item[0] != "node_started"]
    assert [item for item in shape(second) if item[0] != "node_started"] == settled
    started = [item for item in shape(second) if item[0] == "node_started"]
    assert len(started) < 60 and all(item in shape(first) for item in started)
    for node in {node for kind, node in started}:             # a start the client gets comes before its end
        assert shape(second).index(("node_started", node)) < shape(second).index(("node_finished", node))
    assert shape(second)[0] == ("submitted", None) and shape(second)[-1] == ("run_finished", None)
    assert len([m for m in second if m["type"] == "node_finished"]) == 60
    assert plain_frames >= 122 and batch_frames < plain_frames     # usually ~5 against ~125
    plain.close()
    batching.close()


def expanded(messages):
    """Messages as a compact-events client reads them: each `node_events` row back as its own message."""
    out = []
    for m in messages:
        if m["type"] == "node_events":
            out += [{"type": m["event"], "run_id": m["run_id"], **dict(zip(m["fields"], row))} for row in m["rows"]]
        else:
            out.append(m)
    return out


def test_compact_events_carry_the_same_events_as_batches(server):
    """A client asking for compact events gets the same node events as a plain batching client — as
    `node_events` rows, with the field names and run id once — in fewer bytes."""
    results = []
    for compact, first in ((False, 11), (True, 12)):
        client = Client(server.url())
        client.send({"type": "hello", "protocol_version": 1, "batch": True, "compact_events": compact})
        client.next_of("welcome")
        graph = chain_graph(80)
        graph["nodes"]["n0"]["inputs"]["value"] = first
        messages, _frames = run_messages(client, graph)
        results.append(messages)
        client.close()
    plain, compact = results
    assert not any(m["type"] == "node_events" for m in plain)
    groups = [m for m in compact if m["type"] == "node_events"]
    assert groups and all(len(g["rows"]) >= 2 and g["run_id"] == compact[0]["run_id"] for g in groups)
    assert groups[0]["fields"][:2] == ["node_id", "node_type"]

    def finished(messages):
        return [(m["node_id"], m["node_type"]) for m in messages if m["type"] == "node_finished"]

    assert finished(expanded(compact)) == finished(plain) and len(finished(plain)) == 80
    assert len(json.dumps(compact)) < 0.6 * len(json.dumps(plain))


def test_compacted_groups_only_consecutive_events_of_one_kind_and_run():
    """compacted() merges runs of ≥ 2 same-type node events of one run with the same fields, and keeps
    everything else — other messages, encoded strings, binary frames — in place."""
    from nodegraph.protocol import MAX_EVENT_ROWS, compacted

    def event(kind, node, run="r", **more):
        return {"type": kind, "run_id": run, "node_id": node, "node_type": "T", **more}

    messages = [event("node_finished", "a"), event("node_finished", "b"), b"\x00", event("node_finished", "c"),
                event("node_cached", "d"), event("node_cached", "e", run="other"), event("node_progress", "f"),
                event("node_started", "g"), event("node_started", "h"), event("node_started", "i", extra=1),
                '{"type":"pong"}']
    out = compacted(messages)
    assert out[0] == {"type": "node_events", "event": "node_finished", "run_id": "r",
                      "fields": ["node_id", "node_type"], "rows": [["a", "T"], ["b", "T"]]}
    assert out[1:6] == messages[2:7]
    assert out[6]["event"] == "node_started" and [row[0] for row in out[6]["rows"]] == ["g", "h"]
    assert out[7:] == messages[9:]
    assert expanded([m for m in out if isinstance(m, dict)]) == [m for m in messages if isinstance(m, dict)]
    many = [event("node_finished", str(i)) for i in range(MAX_EVENT_ROWS + 5)]
    assert [len(m["rows"]) for m in compacted(many)] == [MAX_EVENT_ROWS, 5]
    from nodegraph.server import Server      # a lone `node_events` between binary frames still travels in a batch

    frames = Server._batched([b"\x00", compacted(messages[:2])[0], b"\x01", event("node_finished", "z")])
    assert frames[0] == b"\x00" and frames[2] == b"\x01"
    assert json.loads(frames[1])["type"] == "batch" and json.loads(frames[3])["type"] == "node_finished"
    long_ids = [event("node_finished", "n" * 300 + str(i)) for i in range(MAX_EVENT_ROWS)]   # one group > the cap
    frames = Server._batched([b"\x00", *compacted(long_ids), b"\x01"])
    assert len(frames) == 3 and len(frames[1]) > Server.BATCH_MAX_CHARS
    assert len(json.loads(frames[1])["messages"][0]["rows"]) == MAX_EVENT_ROWS


def test_thumbnails_of_output_images(server, tmp_path):
    """/files/<id>?size=N gives a JPEG no larger than the next thumbnail step ≥ N; bad sizes and non-images are
    refused."""
    from PIL import Image

    out = tmp_path / "out"
    out.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (200, 100), (200, 30, 30)).save(out / "big.png")
    (out / "notes.txt").write_text("hello")
    status, body = http_get(server.port, "/files/output/big.png?size=40")
    assert status == 200
    with Image.open(io.BytesIO(body)) as thumb:
        assert thumb.format == "JPEG" and thumb.size == (64, 32)      # 40 is served at the next step, 64
    status, again = http_get(server.port, "/files/output/big.png?size=40")
    assert status == 200 and again == body
    assert http_get(server.port, "/files/output/big.png?size=9999")[0] == 400
    assert http_get(server.port, "/files/output/big.png?size=abc")[0] == 400
    assert http_get(server.port, "/files/output/big.png?size=")[0] == 400            # not the whole file
    assert http_get(server.port, "/files/output/big.png?size=%C2%B2")[0] == 400      # "²" is a digit to isdigit
    assert http_get(server.port, "/files/output/notes.txt?size=40")[0] == 404
    assert http_get(server.port, "/files/output/big.png")[1].startswith(b"\x89PNG")


def test_format_2_graph_runs_over_the_server_with_skipped_and_inner_ids(server):
    """A muted node is announced in run_started.skipped; subgraph inner nodes report as outer/inner."""
    graph = {"format_version": 2, "nodes": {
        "a": {"type": "Int", "inputs": {"value": 3}},
        "sq": {"type": "subgraph:double", "inputs": {"x": {"node": "a", "output": "value"}}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "sq", "output": "y"}}},
        "off": {"type": "Int", "mode": "mute", "inputs": {"value": 1}},
        "show_off": {"type": "ShowValue", "inputs": {"value": {"node": "off", "output": "value"}}}},
        "subgraphs": {"double": {
            "inputs": {"x": {}}, "outputs": {"y": {"node": "add", "output": "result"}},
            "nodes": {"add": {"type": "IntMath", "inputs": {"a": {"node": "$inputs", "output": "x"},
                                                             "b": {"node": "$inputs", "output": "x"}}}}}}}
    client = Client(server.url())
    client.send({"type": "submit", "graph": graph})
    run_id = client.next_of("submitted")["run_id"]
    started = client.next_of("run_started", run_id=run_id)
    assert started["skipped"] == ["off", "show_off"]
    client.next_of("node_finished", node_id="sq/add")
    client.next_of("run_finished", run_id=run_id)
    client.send({"type": "get_outputs", "run_id": run_id})
    assert client.next_of("outputs")["outputs"]["show"]["value"] == 6
    assert server.server.protocol.prepared == {}
    client.close()


def test_the_server_offers_project_templates(server):
    """A real server lists graphs/ as templates."""
    client = Client(server.url())
    client.send({"type": "list_templates"})
    ids = {t["id"] for t in client.next_of("templates")["templates"]}
    assert "project/txt2img.json" in ids and "project/arithmetic.json" in ids
    client.close()


def test_claim_next_can_leave_the_stored_graph_undecoded():
    """A worker that holds the validated graph claims the run without decoding the stored JSON again."""
    queue = RunQueue()
    first = queue.enqueue(seeded_graph(1), "c")
    second = queue.enqueue(seeded_graph(2), "c")
    claimed = queue.claim_next(needs_graph=lambda run_id: run_id != first.id)
    assert claimed.id == first.id and claimed.graph == {} and claimed.status == "running"
    claimed = queue.claim_next(needs_graph=lambda run_id: run_id != first.id)
    assert claimed.id == second.id and claimed.graph == seeded_graph(2)
    assert queue.get(first.id).graph == seeded_graph(1)          # the stored graph is untouched


def test_graphs_live_apart_from_run_rows_and_old_rows_still_read(tmp_path):
    """A run's graph text is written once, to run_graphs (status updates rewrite only the small runs row); a row
    stored before that table existed (its graph in runs.graph) reads as before; deleting a run deletes its graph."""
    queue = RunQueue(tmp_path / "runs.sqlite")
    new = queue.enqueue(seeded_graph(1), "c")
    old = queue.enqueue(seeded_graph(2), "c")
    with queue._lock:
        assert queue._db.execute("SELECT graph FROM runs WHERE id = ?", (new.id,)).fetchone()["graph"] == ""
        queue._db.execute("DELETE FROM run_graphs WHERE id = ?", (old.id,))
        queue._db.execute("UPDATE runs SET graph = ? WHERE id = ?", (json.dumps(seeded_graph(2)), old.id))
    assert [queue.get(r.id).graph for r in queue.pending()] == [seeded_graph(1), seeded_graph(2)]
    for _ in range(2):
        queue.finish(queue.claim_next().id, "succeeded", result={})
    assert queue.get(new.id).graph == seeded_graph(1) and queue.get(old.id).graph == seeded_graph(2)
    assert queue.delete(new.id) and queue.prune(keep=0) == 1
    with queue._lock:
        assert queue._db.execute("SELECT COUNT(*) AS n FROM run_graphs").fetchone()["n"] == 0
    queue.close()


def test_a_batch_leaves_out_starts_of_nodes_that_settle_in_it():
    """without_settled_starts drops node_started only when the same run's node finishes, is cached or fails in
    the same list; other messages, encoded strings and binary frames stay in order."""
    from nodegraph.protocol import without_settled_starts

    def event(kind, node, run="r"):
        return {"type": kind, "run_id": run, "node_id": node}

    messages = [event("node_started", "a"), event("node_started", "b"), b"\x00", event("node_progress", "b"),
                event("node_finished", "a"), event("node_started", "c"), event("node_error", "c"),
                event("node_started", "d", run="other"), event("node_finished", "d"), "{\"type\":\"pong\"}"]
    kept = without_settled_starts(messages)
    assert kept == [messages[1], b"\x00", messages[3], messages[4], messages[6], messages[7], messages[8],
                    messages[9]]
    assert without_settled_starts(messages[:2]) == messages[:2]


def test_engine_event_groups_become_the_messages_of_the_dict_path():
    """expand_node_events turns EngineEvents (Event objects) into exactly what the dict path sends: one
    message each for a plain client, settled starts left out for a batch client, `node_events` rows as
    `compacted` writes them for a compact-events client; other payloads stay in place."""
    from nodegraph.events import NodeCached, NodeFinished, NodeStarted
    from nodegraph.protocol import (MAX_EVENT_ROWS, EngineEvents, compacted, event_dict, expand_node_events,
                                    without_settled_starts)

    group = EngineEvents([NodeStarted("r", "a", "Int"), NodeFinished("r", "a", "Int", 0.5, 7),
                          NodeStarted("r", "b", "IntMath"), NodeFinished("r", "b", "IntMath", 0.25, None),
                          NodeStarted("r", "c", "IntMath"), NodeCached("r", "d", "ShowValue")])
    error = {"type": "node_error", "run_id": "r", "node_id": "c", "message": "boom"}
    payloads = [b"\x00", group, error, '{"type":"pong"}']
    as_dicts = [b"\x00", *map(event_dict, group), error, '{"type":"pong"}']
    assert expand_node_events(payloads, batch=False, compact=False) == as_dicts
    assert expand_node_events(payloads, batch=True, compact=False) == without_settled_starts(as_dicts)
    compact = expand_node_events(payloads, batch=True, compact=True)
    assert json.loads(json.dumps(compact[1:-1])) == compacted(without_settled_starts(as_dicts))[1:-1]
    assert compact[1]["rows"] == [("a", "Int", 0.5, 7), ("b", "IntMath", 0.25, None)]
    assert compact[2] == event_dict(group[-1])         # a run of one stays a plain message
    many = EngineEvents(NodeCached("r", str(i), "T") for i in range(MAX_EVENT_ROWS + 1))
    assert [m["type"] for m in expand_node_events([many], batch=True, compact=True)] == ["node_events", "node_cached"]


def test_batching_keeps_order_binary_frames_and_size_bounds():
    """_batched keeps binary frames in place, message order, and splits a batch over the size cap."""
    small = [{"type": "node_started", "node_id": f"n{i}"} for i in range(3)]
    big = {"type": "run_finished", "executed": ["x" * 1000] * 300}      # ~300 KB alone
    frames = Server._batched([small[0], small[1], b"\x00\x00\x00\x02{}", small[2], "{\"type\":\"pong\"}", big])
    assert frames[1] == b"\x00\x00\x00\x02{}"
    assert json.loads(frames[0]) == {"type": "batch", "messages": small[:2]}
    unpacked = []
    for frame in frames[2:]:
        body = json.loads(frame)
        unpacked += body["messages"] if body["type"] == "batch" else [body]
    assert unpacked == [small[2], {"type": "pong"}, big]
    assert all(len(f) <= Server.BATCH_MAX_CHARS for f in frames[2:] if json.loads(f)["type"] == "batch")


def test_import_graph_converts_a_comfyui_prompt_keeping_unknown_nodes(proto):
    """import_graph turns an API prompt into a graph: known types get output names, unknown ones keep their data."""
    prompt = {"1": {"class_type": "Int", "inputs": {"value": 4}},
              "2": {"class_type": "MyCustomLoader", "inputs": {"model_name": "x.pth", "n": ["1", 0]}},
              "3": {"class_type": "ShowValue", "inputs": {"value": ["1", 0]}, "_meta": {"title": "Show"}}}
    (reply,) = send(proto, {"type": "import_graph", "data": prompt})
    assert reply.message["type"] == "imported_graph"
    nodes = reply.message["graph"]["nodes"]
    assert nodes["3"] == {"type": "ShowValue", "title": "Show", "inputs": {"value": {"node": "1", "output": "value"}}}
    assert nodes["2"]["inputs"] == {"model_name": "x.pth", "n": {"node": "1", "output": "value"}}
    assert [(e["code"], e["node_id"]) for e in reply.message["errors"]] == [("unknown_node_type", "2")]
    workflow = {"nodes": [{"id": 1, "type": "KSampler", "widgets_values": [1, "fixed", 4]}], "links": []}
    (reply,) = send(proto, {"type": "import_graph", "data": workflow})         # a UI workflow: named by position
    assert reply.message["type"] == "imported_graph"
    assert reply.message["graph"]["nodes"]["1"]["inputs"] == {"seed": 1, "steps": 4}
    (reply,) = send(proto, {"type": "import_graph", "data": {"nodes": [{"id": 1}], "links": []}})   # no type
    assert reply.message["code"] == "invalid_graph"
    assert reply.message["details"]["errors"][0]["details"] == {"tool": "comfyui", "format": "workflow"}
    for bad in ({"1": {"class_type": "LoadImage", "inputs": ["x"]}}, {"1": {"class_type": ["Int"], "inputs": {}}}):
        (reply,) = send(proto, {"type": "import_graph", "data": bad})          # was internal_error (AttributeError)
        assert reply.message["code"] == "invalid_graph", reply.message
        (error,) = reply.message["details"]["errors"]
        assert error["code"] == "invalid_format" and error["node_id"] == "1"


def test_import_graph_makes_a_graph_of_a1111_parameters(proto):
    """The editor sends an A1111 image's "parameters" text as {"parameters": TEXT}; the reply is a txt2img graph
    that names what it could not translate (nodegraph/a1111.py)."""
    text = "a red circle\nSteps: 4, Sampler: Euler a, CFG scale: 5, Seed: 9, Size: 64x64, Hires upscale: 2, Model: m"
    (reply,) = send(proto, {"type": "import_graph", "data": {"parameters": text}})
    assert reply.message["type"] == "imported_graph", reply.message
    graph = reply.message["graph"]
    assert graph["nodes"]["sampler"]["inputs"]["sampler"] == "euler_ancestral"
    assert graph["metadata"]["a1111_untranslated"] == ["Hires upscale: 2"]
    (reply,) = send(proto, {"type": "import_graph", "data": {"parameters": ""}})
    assert reply.message["code"] == "invalid_graph"


def test_import_graph_translates_comfyuis_default_workflow_into_a_graph_that_validates(proto):
    """ComfyUI's default txt2img export (Export (API)): CheckpointLoaderSimple, CLIPTextEncode, EmptyLatentImage,
    KSampler, VAEDecode and SaveImage become our nodes with our input and output names (6 of 9 nodes were
    red placeholders before), so it validates — and runs: checked by hand, a red circle on blue."""
    prompt = {
        "3": {"class_type": "KSampler", "inputs": {
            "seed": 156680208700286, "steps": 8, "cfg": 6.0, "sampler_name": "uni_pc_bh2", "scheduler": "normal",
            "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_world_v4.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}}}
    (reply,) = send(proto, {"type": "import_graph", "data": prompt})
    graph = reply.message["graph"]
    assert reply.message["errors"] == [], reply.message["errors"]
    assert graph["nodes"]["3"]["inputs"]["latent"] == {"node": "5", "output": "latent"}
    assert graph["nodes"]["3"]["inputs"]["sampler"] == "unipc"          # ComfyUI's uni_pc_bh2 is ours
    assert graph["nodes"]["8"]["inputs"] == {"latent": {"node": "3", "output": "latent"},
                                             "vae": {"node": "4", "output": "vae"}}
    assert graph["nodes"]["6"]["inputs"]["text_encoder"] == {"node": "4", "output": "text_encoder"}
    assert graph["metadata"]["comfyui_types"]["4"] == "CheckpointLoaderSimple"
    prompt["10"] = {"class_type": "PrimitiveInt", "inputs": {"value": 42}}     # ComfyUI's core primitives
    prompt["11"] = {"class_type": "PrimitiveStringMultiline", "inputs": {"value": "a blue star"}}
    prompt["3"]["inputs"].update(seed=["10", 0], control_after_generate="randomize")    # a UI widget: dropped
    prompt["6"]["inputs"]["text"] = ["11", 0]
    (reply,) = send(proto, {"type": "import_graph", "data": prompt})
    nodes = reply.message["graph"]["nodes"]
    assert reply.message["errors"] == [], reply.message["errors"]
    assert nodes["10"] == {"type": "Int", "inputs": {"value": 42}} and nodes["11"]["type"] == "String"
    assert nodes["3"]["inputs"]["seed"] == {"node": "10", "output": "value"}
    assert nodes["6"]["inputs"]["text"] == {"node": "11", "output": "value"}
    prompt["3"]["inputs"]["sampler_name"] = "uni_pc"                  # ComfyUI's plain UniPC: B(h) = h
    (reply,) = send(proto, {"type": "import_graph", "data": prompt})
    assert reply.message["graph"]["nodes"]["3"]["inputs"]["sampler"] == "unipc_bh1" and not reply.message["errors"]


def test_prune_with_slack_waits_until_the_history_is_over_the_limit_plus_slack():
    """prune(keep, slack) deletes nothing up to keep + slack finished runs, then back down to keep."""
    queue = RunQueue()
    for seed in range(5):
        queue.enqueue(seeded_graph(seed), "c")
        queue.finish(queue.claim_next().id, "succeeded", result={})
    assert queue.prune(keep=3, slack=2) == 0 and queue.history()[1] == 5
    queue.enqueue(seeded_graph(9), "c")
    queue.finish(queue.claim_next().id, "succeeded", result={})
    assert queue.prune(keep=3, slack=2) == 3 and queue.history()[1] == 3


def test_the_history_seed_is_the_samplers_not_the_first_in_the_file(proto):
    """img2img's history row said "seed 0": the source render's seed, first in the file, not the KSampler's."""
    graph = json.loads((ROOT / "graphs" / "img2img.json").read_text())
    replies = [out.message for out in send(proto, {"type": "submit", "graph": graph}) if out.message is not None]
    assert any(m["type"] == "submitted" for m in replies), replies
    finish_next(proto)
    (reply,) = send(proto, {"type": "history"})
    (entry,) = reply.message["runs"]
    sampler_seed = graph["nodes"]["sampler"]["inputs"]["seed"]
    assert entry["seed"] == sampler_seed and list(entry["seeds"])[0] == "sampler.seed", entry["seeds"]


def test_users_take_turns_in_the_queue():
    """One user's 25 queued runs made the whole team wait (a long-running stranger's finding): users now take
    turns — one run each per round, each user's runs in their order, the one whose last run started longest ago
    first — while a single user (or a server without users) keeps the plain order. Positions and the pending
    listing follow the same order; a run put at the front is still first."""
    import time as time_module

    from .test_server import ARITHMETIC

    queue = RunQueue(":memory:")
    alice = [queue.enqueue(ARITHMETIC, user="alice") for _ in range(3)]
    assert queue.queued_in_turn() == [r.id for r in alice]                 # one user: as queued
    queue.finish(queue.claim_next().id, "succeeded", result={})          # alice's first ran (started just now)
    time_module.sleep(0.01)
    bob = [queue.enqueue(ARITHMETIC, user="bob") for _ in range(2)]
    carol = queue.enqueue(ARITHMETIC, user="carol")
    order = queue.queued_in_turn()
    # bob and carol never ran: their runs come first (bob queued first), then alice, round by round
    assert order == [bob[0].id, carol.id, alice[1].id, bob[1].id, alice[2].id]
    assert [queue.position(run_id) for run_id in order] == [0, 1, 2, 3, 4]
    assert [r.id for r in queue.pending()] == order
    assert [r.id for r in queue.pending(user="alice")] == [alice[1].id, alice[2].id]
    urgent = queue.enqueue(ARITHMETIC, user="admin", front=True)
    assert queue.queued_in_turn()[0] == urgent.id and queue.claim_next().id == urgent.id
    assert queue.claim_next().id == bob[0].id
    queue.close()
