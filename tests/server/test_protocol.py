"""Protocol logic without sockets: feed messages, check replies."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from nodegraph import Session
from nodegraph.files import FileStore
from nodegraph.protocol import PROTOCOL_VERSION, ServerProtocol, decode_frame, encode_frame, message_schemas
from nodegraph.run_queue import RunQueue

ROOT = Path(__file__).resolve().parents[2]
ARITHMETIC = json.loads((ROOT / "graphs" / "arithmetic.json").read_text())


@pytest.fixture
def proto(tmp_path):
    session = Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in")
    woken = []
    interrupted = []
    protocol = ServerProtocol(session, RunQueue(), FileStore(tmp_path / "in", tmp_path / "out"),
                              wake_worker=lambda: woken.append(1),
                              interrupt_run=lambda run_id: interrupted.append(run_id) or True)
    protocol.woken, protocol.interrupted = woken, interrupted
    protocol.connect("c1")
    protocol.connect("c2")
    for client in ("c1", "c2"):
        protocol.receive(client, json.dumps({"type": "hello", "protocol_version": PROTOCOL_VERSION}))
    return protocol


def send(proto, message, client="c1"):
    return proto.receive(client, json.dumps(message) if isinstance(message, dict) else message)


def test_hello_is_required_first(tmp_path):
    """Before hello every message gets hello_required; hello gets welcome with the schema hash."""
    session = Session()
    protocol = ServerProtocol(session, RunQueue(), FileStore(tmp_path, tmp_path))
    protocol.connect("x")
    (reply,) = protocol.receive("x", json.dumps({"type": "ping"}))
    assert reply.message["code"] == "hello_required"
    (reply,) = protocol.receive("x", json.dumps({"type": "hello", "protocol_version": 1, "request_id": 7}))
    assert reply.message["type"] == "welcome" and reply.message["request_id"] == 7
    assert reply.message["schema_hash"] == session.registry.schema_hash()
    (reply,) = protocol.receive("x", json.dumps({"type": "hello", "protocol_version": 99}))
    assert reply.message["code"] == "unsupported_protocol"


def test_parse_then_dispatch_is_receive(proto):
    """`receive` is `dispatch(parse(frame))`: parse answers bad frames itself, dispatch carries out the message."""
    for bad, code in (("{nope", "invalid_json"), ('{"type": "nope"}', "unknown_message_type"),
                      ('{"type": "submit"}', "invalid_message")):
        (reply,) = proto.parse("c1", bad)
        assert reply.message["code"] == code
    message = proto.parse("c1", json.dumps({"type": "submit", "graph": ARITHMETIC, "request_id": 3}))
    assert message.type == "submit" and message._graph_text is not None
    (submitted, *_) = proto.dispatch("c1", message)
    assert submitted.message["type"] == "submitted" and submitted.message["request_id"] == 3
    assert proto.parse("gone", "{}") == [] and proto.dispatch("gone", message) == []
    proto.connect("new")                          # not greeted: dispatch refuses all but hello
    (reply,) = proto.dispatch("new", proto.parse("new", json.dumps({"type": "ping"})))
    assert reply.message["code"] == "hello_required"


def test_a_handler_bug_answers_internal_error(proto, monkeypatch):
    """A bug in a handler becomes an internal_error reply naming no internals; the client can go on."""
    monkeypatch.setattr(proto, "_on_ping", lambda client, message: 1 / 0)
    (reply,) = send(proto, {"type": "ping"})
    assert reply.message["code"] == "internal_error" and "ZeroDivisionError" in reply.message["message"]
    (reply,) = send(proto, {"type": "queue_status"})
    assert reply.message["type"] == "queue"


def test_which_messages_a_shell_may_handle_on_its_loop(proto, tmp_path):
    """Small text frames are parsed where they arrive; only quick messages are carried out there, and
    not for a user with a file quota (checking it walks their folder)."""
    from nodegraph.users import User

    small = json.dumps({"type": "submit", "graph": ARITHMETIC})
    assert proto.handled_on_loop("c1", small)
    assert not proto.handled_on_loop("c1", small + " " * proto.ON_LOOP_MAX_CHARS)
    assert not proto.handled_on_loop("c1", small.encode())          # binary frames: uploads
    for fields, quick in (({"type": "submit", "graph": ARITHMETIC}, True), ({"type": "interrupt", "run_id": "x"}, True),
                          ({"type": "cancel", "run_id": "x"}, True), ({"type": "ping"}, True),
                          ({"type": "history"}, False), ({"type": "list_models"}, False),
                          ({"type": "list_nodes"}, False),
                          ({"type": "hello", "protocol_version": PROTOCOL_VERSION}, False)):
        message = proto.parse("c1", json.dumps(fields))
        assert not isinstance(message, list), message
        assert proto.dispatched_on_loop("c1", message) is quick, fields["type"]
    submit = proto.parse("c1", small)
    proto.clients["c1"].user = User(name="ann", max_bytes=10**9)
    assert not proto.dispatched_on_loop("c1", submit)
    proto.clients["c1"].user = User(name="ann", max_bytes=None)
    assert proto.dispatched_on_loop("c1", submit)
    # a small file of nested subgraphs can expand to 100,000 nodes (a hostile pass held every client for 2 s)
    nested = proto.parse("c1", json.dumps({"type": "submit", "graph": {**ARITHMETIC, "subgraphs": {"s": {
        "nodes": {}}}}}))
    assert not isinstance(nested, list) and not proto.dispatched_on_loop("c1", nested)


def test_list_nodes_uses_the_hash_cache(proto):
    """Schemas are sent once; a client that knows the hash gets only the hash."""
    (reply,) = send(proto, {"type": "list_nodes"})
    assert {n["type"] for n in reply.message["nodes"]} >= {"Int", "ShowValue"}
    (reply,) = send(proto, {"type": "list_nodes", "known_hash": reply.message["schema_hash"]})
    assert "nodes" not in reply.message


def test_submit_queues_and_broadcasts(proto):
    """A valid graph is queued: the submitter gets run id and position, everyone gets queue_changed."""
    replies = send(proto, {"type": "submit", "graph": ARITHMETIC, "request_id": "a"})
    submitted, broadcast = replies
    assert submitted.to == "c1" and submitted.message["type"] == "submitted"
    assert submitted.message["position"] == 0 and submitted.message["request_id"] == "a"
    assert broadcast.to is None and broadcast.message == {
        "type": "queue_changed", "run_id": submitted.message["run_id"], "status": "queued", "pending": 1}
    assert proto.woken


@pytest.mark.parametrize("text", [
    '{"type": "submit", "graph": {"format_version": 1, "nodes": {}}}',
    ' \n{ "a" :[1, 2.5e3, {"b": null}] ,\t"c":"\\u00e9\\"}" , "a": true }\r\n',     # spaces, escapes, a duplicate
    '{}', '{ }', '[1, 2]', '"text"', '3',
    '{"a": 1,}', '{"a" 1}', '{"a": 1} x', '{"a": NaN}', '{"a": 1e999}', '{a: 1}', '{"a": [1, }', '',
])
def test_decode_message_is_json_loads_with_spans(text):
    """decode_message gives json.loads's value or error (strict: no NaN, no float overflow) and, for an
    object, each member's value as a span of the text that decodes to it."""
    from nodegraph.protocol import _finite_float, _reject_constant, decode_message

    try:
        expected = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except ValueError as exc:
        with pytest.raises(ValueError) as raised:
            decode_message(text)
        assert str(raised.value) == str(exc)
        return
    value, spans = decode_message(text)
    assert value == expected and type(value) is type(expected)
    assert {key: json.loads(text[start:end]) for key, (start, end) in spans.items()} == (
        expected if isinstance(expected, dict) else {})


def test_submit_stores_the_graph_text_as_sent(proto):
    """The stored graph is the client's own text of it (pretty-printed here), not a re-encoding; text that
    SQLite cannot hold (a lone surrogate) is encoded from the decoded graph instead."""
    text = json.dumps({"type": "submit", "graph": ARITHMETIC}, indent=2)
    submitted = send(proto, text)[0].message
    stored = proto.queue._one("SELECT graph FROM run_graphs WHERE id = ?", submitted["run_id"])["graph"]
    assert stored == json.dumps(ARITHMETIC, indent=2).replace("\n", "\n  ") and json.loads(stored) == ARITHMETIC
    assert proto.queue.get(submitted["run_id"]).graph == ARITHMETIC
    odd = {**ARITHMETIC, "metadata": {"title": "\ud800"}}
    submitted = send(proto, json.dumps({"type": "submit", "graph": odd}, ensure_ascii=False))[0].message
    assert submitted["type"] == "submitted" and proto.queue.get(submitted["run_id"]).graph == odd


def test_a_submit_to_an_idle_worker_is_stored_running(proto):
    """When the shell's worker is idle (reserve_worker says so) a submit stores the run as running and hands it
    over instead of waking the worker to claim it; behind a queued run it is queued and the worker claims it."""
    handed = []
    proto.reserve_worker, proto.hand_over = (lambda: True), handed.append
    submitted, note = send(proto, {"type": "submit", "graph": ARITHMETIC})
    run_id = submitted.message["run_id"]
    assert [r.id for r in handed] == [run_id] and handed[0].status == "running" and not proto.woken
    assert submitted.message["position"] == 0 and note.message["status"] == "running"
    stored = proto.queue.get(run_id)
    assert stored.status == "running" and stored.started_at is not None and proto.queue.claim_next() is None
    proto.queue.finish(run_id, "succeeded", result={})
    waiting = proto.queue.enqueue(ARITHMETIC)                     # a queued run goes first
    submitted, note = send(proto, {"type": "submit", "graph": ARITHMETIC})
    assert handed[-1] is None and proto.woken and note.message["status"] == "queued"
    assert submitted.message["position"] == 1
    assert [proto.queue.claim_next().id for _ in range(2)] == [waiting.id, submitted.message["run_id"]]


def test_invalid_graph_is_not_queued(proto):
    """A graph that fails validation returns structured errors and queues nothing."""
    bad = {"format_version": 1, "nodes": {"x": {"type": "Nope"}, "s": {"type": "ShowValue", "inputs": {}}}}
    (reply,) = send(proto, {"type": "submit", "graph": bad})
    assert reply.message["code"] == "invalid_graph"
    codes = {e["code"] for e in reply.message["details"]["errors"]}
    assert codes == {"unknown_node_type", "missing_input"}
    assert proto.queue.pending() == []


def test_invalid_graph_errors_name_the_model_folders_as_clients_know_them(proto):
    """`embedding:nope` listed the folders searched as absolute paths (the install's too) in the invalid_graph
    reply of a plain user (a hostile pass): they are written as `models/…` now."""
    from nodegraph.model_paths import PROJECT_ROOT

    graph = {"format_version": 1, "nodes": {
        "ck": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world_v4.safetensors"}},
        "enc": {"type": "EncodeText", "inputs": {"text_encoder": {"node": "ck", "output": "text_encoder"},
                                                 "text": "a red circle embedding:nope"}},
        "s": {"type": "ShowValue", "inputs": {"value": {"node": "enc", "output": "conditioning"}}}}}
    (reply,) = send(proto, {"type": "submit", "graph": graph})
    (error,) = reply.message["details"]["errors"]
    assert "nope" in error["message"] and "models/embeddings" in error["message"], error
    shown = error["message"].replace(" models/", "").replace("<nodegraph>/models/", "")    # the install's, as shown
    assert str(PROJECT_ROOT) not in error["message"] and "/models" not in shown, error
    extra = PROJECT_ROOT.parent / "elsewhere_ckpts"                           # an absolute extra model folder
    proto.session.model_paths.extra["checkpoints"] = [extra]
    proto._path_pattern = None
    graph["nodes"]["ck"]["inputs"]["ckpt_name"] = "missing.safetensors"          # details.searched too
    (reply,) = send(proto, {"type": "submit", "graph": graph})
    assert str(extra) not in json.dumps(reply.message) and "models/checkpoints" in json.dumps(reply.message)


@pytest.mark.parametrize("frame, code", [
    ("{not json", "invalid_json"),
    ("[1, 2]", "invalid_message"),
    (json.dumps({"type": "teleport"}), "unknown_message_type"),
    (json.dumps({"type": "history", "limit": "many"}), "invalid_message"),
    (json.dumps({"type": "cancel"}), "invalid_message"),
    (json.dumps({"type": "submit", "graph": [1]}), "invalid_message"),
    (json.dumps({"type": "ping", "surprise": 1}), "invalid_message"),
])
def test_bad_messages_get_errors_and_the_connection_stays(proto, frame, code):
    """Malformed frames are answered with an error code; the client can go on."""
    (reply,) = send(proto, frame)
    assert reply.message["type"] == "error" and reply.message["code"] == code
    (reply,) = send(proto, {"type": "ping"})
    assert reply.message["type"] == "pong"


def test_cancel_requeue_and_history(proto):
    """Queued runs can be cancelled, re-queued, and appear in history."""
    run_id = send(proto, {"type": "submit", "graph": ARITHMETIC})[0].message["run_id"]
    replies = send(proto, {"type": "cancel", "run_id": run_id})
    assert replies[0].message == {"type": "cancelled", "run_id": run_id}
    (reply,) = send(proto, {"type": "cancel", "run_id": run_id})
    assert reply.message["code"] == "invalid_state"
    (reply,) = send(proto, {"type": "history"})
    assert reply.message["total"] == 1 and reply.message["runs"][0]["status"] == "cancelled"
    replies = send(proto, {"type": "requeue", "run_id": run_id})
    assert replies[0].message["type"] == "requeued"
    (reply,) = send(proto, {"type": "cancel", "run_id": "nope"})
    assert reply.message["code"] == "not_found"


def test_interrupt_only_the_running_run(proto):
    """interrupt is refused for a queued run and forwarded for the running one."""
    run_id = send(proto, {"type": "submit", "graph": ARITHMETIC})[0].message["run_id"]
    (reply,) = send(proto, {"type": "interrupt", "run_id": run_id})
    assert reply.message["code"] == "invalid_state"
    proto.queue.claim_next()
    (reply,) = send(proto, {"type": "interrupt", "run_id": run_id})
    assert reply.message["type"] == "interrupting" and proto.interrupted == [run_id]


def test_run_events_go_only_to_the_submitter(proto):
    """Engine events of a run reach its submitter; lifecycle changes are broadcast."""
    run_id = send(proto, {"type": "submit", "graph": ARITHMETIC})[0].message["run_id"]
    out = proto.run_event(run_id, {"type": "node_started", "run_id": run_id, "node_id": "a", "node_type": "Int"})
    assert [o.to for o in out] == ["c1"]
    out = proto.run_event(run_id, {"type": "run_finished", "run_id": run_id}, None)
    assert [o.to for o in out] == ["c1", None]
    out = proto.run_event(run_id, {"type": "node_progress", "run_id": run_id, "node_id": "k", "value": 3},
                          preview=b"JPEGDATA")
    header, payload = decode_frame(out[1].binary)
    assert header == {"type": "preview", "run_id": run_id, "node_id": "k", "format": "jpeg", "step": 3}
    assert payload == b"JPEGDATA"


def test_disconnected_client_runs_continue(proto):
    """After the submitter leaves, its run stays queued and events are simply not delivered."""
    run_id = send(proto, {"type": "submit", "graph": ARITHMETIC})[0].message["run_id"]
    proto.disconnect("c1")
    assert proto.queue.get(run_id).status == "queued"
    out = proto.run_event(run_id, {"type": "node_started", "run_id": run_id})
    assert out == []


def test_a_reconnecting_client_resumes_its_earlier_connections_runs(proto):
    """After a drop the editor connects again with `hello.resume` = its earlier client_id: the events of the runs
    it submitted (still queued or running) come to the new connection, through several reconnects; without
    `resume` (or naming a connection that is still open) nothing changes."""
    run_id = send(proto, {"type": "submit", "graph": ARITHMETIC})[0].message["run_id"]
    proto.disconnect("c1")
    proto.connect("c3")
    [welcome] = [o.message for o in send(proto, {"type": "hello", "protocol_version": PROTOCOL_VERSION,
                                                 "resume": "c1"}, client="c3")]
    assert welcome["client_id"] == "c3" and welcome["resumed"] == "c1"
    out = proto.run_event(run_id, {"type": "node_started", "run_id": run_id, "node_id": "a", "node_type": "Int"})
    assert [o.to for o in out] == ["c3"]
    proto.disconnect("c3")
    proto.connect("c4")
    send(proto, {"type": "hello", "protocol_version": PROTOCOL_VERSION, "resume": "c3"}, client="c4")
    assert [o.to for o in proto.node_events(run_id, [])] == ["c4"]
    assert [o.to for o in proto.output_file(run_id, {"file_id": "output/x.wav"})] == ["c4"]
    [welcome] = [o.message for o in send(proto, {"type": "hello", "protocol_version": PROTOCOL_VERSION,
                                                 "resume": "c2"}, client="c4")]
    assert welcome["resumed"] is None               # c2 is connected: not taken over
    out = proto.run_event(run_id, {"type": "run_finished", "run_id": run_id})
    assert [o.to for o in out] == ["c4", None]


def test_a_resume_never_routes_one_users_runs_to_another(tmp_path):
    """With users, a connection that names another user's earlier client_id gets none of that user's events."""
    from nodegraph.users import User, UserBook

    book = UserBook(path=tmp_path / "users.json")
    alice, bob = (book.authenticate(book.add(User(name))) for name in ("alice", "bob"))
    protocol = ServerProtocol(Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in"),
                              RunQueue(tmp_path / "runs.sqlite"), FileStore(tmp_path / "in", tmp_path / "out"),
                              users=book)
    hello = {"type": "hello", "protocol_version": PROTOCOL_VERSION}
    protocol.connect("a1", alice)
    protocol.receive("a1", json.dumps(hello))
    run_id = protocol.receive("a1", json.dumps({"type": "submit", "graph": ARITHMETIC}))[0].message["run_id"]
    protocol.disconnect("a1")
    protocol.connect("b1", bob)
    welcome = protocol.receive("b1", json.dumps({**hello, "resume": "a1"}))[0].message
    assert welcome["resumed"] is None          # it took nothing, and says so (it echoed alice's id before)
    event = {"type": "node_started", "run_id": run_id, "node_id": "a", "node_type": "Int"}
    assert [o.to for o in protocol.run_event(run_id, event)] == []
    protocol.connect("a2", alice)
    protocol.receive("a2", json.dumps({**hello, "resume": "a1"}))
    protocol.connect("b2", bob)
    protocol.receive("b2", json.dumps({**hello, "resume": "a1"}))       # after alice: takes nothing from her
    assert [o.to for o in protocol.run_event(run_id, event)] == ["a2"]


def _png_bytes() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (255, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_upload_binary_frame(proto, tmp_path):
    """An upload frame stores a sanitised, unique file in the input folder; the same bytes uploaded again are the
    same file (a stranger's 300 uploads of one image were 300 copies), other bytes under that name a new one."""
    frame = encode_frame({"type": "upload", "name": "../../etc/cat picture.png", "request_id": 3}, _png_bytes())
    (reply,) = proto.receive("c1", frame)
    assert reply.message == {"type": "uploaded", "file_id": "input/cat_picture.png", "name": "cat_picture.png",
                             "kind": "image", "request_id": 3}
    (reply,) = proto.receive("c1", frame)
    assert reply.message["file_id"] == "input/cat_picture.png"
    other = encode_frame({"type": "upload", "name": "cat picture.png", "request_id": 4}, _image_bytes("PNG"))
    (reply,) = proto.receive("c1", other)
    assert reply.message["file_id"] == "input/cat_picture_1.png"
    (reply,) = proto.receive("c1", other)
    assert reply.message["file_id"] == "input/cat_picture_1.png"
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == ["cat_picture.png", "cat_picture_1.png"]
    assert (tmp_path / "in" / "cat_picture.png").read_bytes() == _png_bytes()


def _image_bytes(fmt: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 20, 20)).save(buffer, format=fmt)
    return buffer.getvalue()


def test_image_uploads_keep_names_in_any_script_and_take_the_extension_their_bytes_show(proto, tmp_path):
    """'ünïcødé 😀.png' lost every non-ASCII letter; TIFF bytes named .png kept .png (served as image/png, a broken
    preview); a truncated PNG passed (verify() reads chunks, not pixels); an existing symlink's name (even one
    leading out) refused the upload instead of taking the next name."""
    def upload(name: str, data: bytes):
        (reply,) = proto.receive("c1", encode_frame({"type": "upload", "name": name, "request_id": 1}, data))
        return reply.message

    assert upload("ünïcødé 😀.png", _png_bytes())["name"] == "ünïcødé_.png"
    assert upload("日本語.png", _png_bytes())["name"] == "日本語.png"
    assert upload("scan.png", _image_bytes("TIFF"))["name"] == "scan.tif"
    assert upload("photo.jpeg", _image_bytes("JPEG"))["name"] == "photo.jpeg"
    assert upload("photo.png", _image_bytes("WEBP"))["name"] == "photo.webp"
    truncated = upload("cut.png", _png_bytes()[:-20])
    assert truncated["type"] == "error" and "not a readable image" in truncated["message"]
    (tmp_path / "outside.png").write_bytes(b"secret")
    os.symlink(tmp_path / "outside.png", tmp_path / "in" / "link.png")
    stored = upload("link.png", _png_bytes())
    assert stored["name"] == "link_1.png" and (tmp_path / "outside.png").read_bytes() == b"secret"


def _wav_bytes() -> bytes:
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x01" * 800)
    return buffer.getvalue()


OBJ_TEXT = b"# a triangle\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"
PLY_TEXT = b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\nend_header\n0 0 0\n"


@pytest.mark.parametrize("kind, name, data, stored", [
    ("audio", "voice.WAV", _wav_bytes(), "voice.wav"),
    ("audio", "voice.mp3", _wav_bytes(), "voice.wav"),           # the bytes say WAV: stored as what it is
    ("audio", "no extension", b"fLaC" + bytes(60), "no_extension.flac"),
    ("video", "clip.mov", b"\x00\x00\x00\x18ftypqt  " + bytes(40), "clip.mov"),
    ("video", "clip.webm", b"\x1a\x45\xdf\xa3" + bytes(40), "clip.webm"),
    # LoadAudio reads a video container's sound track: the audio Upload refused an .m4a / .mp4 (a media pass)
    ("audio", "voice.m4a", b"\x00\x00\x00\x18ftypM4A " + bytes(40), "voice.m4a"),
    ("audio", "clip_snd.mp4", b"\x00\x00\x00\x18ftypisom" + bytes(40), "clip_snd.mp4"),
    ("mesh", "tri.obj", OBJ_TEXT, "tri.obj"),
    ("mesh", "tri.txt", OBJ_TEXT, "tri.obj"),
    ("pointcloud", "points.ply", PLY_TEXT, "points.ply"),
])
def test_media_uploads_are_stored_as_the_format_their_bytes_show(proto, tmp_path, kind, name, data, stored):
    """audio / video / mesh / pointcloud uploads: a format the loaders read, stored under that format's extension."""
    (reply,) = proto.receive("c1", encode_frame({"type": "upload", "name": name, "kind": kind}, data))
    assert reply.message == {"type": "uploaded", "file_id": f"input/{stored}", "name": stored, "kind": kind}
    assert (tmp_path / "in" / stored).read_bytes() == data


@pytest.mark.parametrize("kind, data, words", [
    ("audio", _png_bytes(), "is not an audio file"),                 # an image is no audio file
    ("video", _wav_bytes(), "(a WAV file)"),
    ("mesh", b"\x00\x00\x00\x18ftypisom" + bytes(40), "(an MP4 file)"),        # "a MP4" before
    ("mesh", b"<html><script>alert(1)</script></html>", "no format the loaders read"),
    ("pointcloud", b"\x00" * 64, "send .ply, .glb, .obj"),
])
def test_media_uploads_of_another_format_are_refused_naming_the_formats(proto, kind, data, words):
    (reply,) = proto.receive("c1", encode_frame({"type": "upload", "name": "x.bin", "kind": kind}, data))
    assert reply.message["code"] == "invalid_upload" and words in reply.message["message"], reply.message


@pytest.mark.parametrize("frame, code", [
    (b"\x00\x00", "invalid_frame"),
    (b"\xff\xff\xff\xff{}", "invalid_frame"),
    (encode_frame({"type": "upload", "name": "x.png"}, b"not an image"), "invalid_upload"),
    (encode_frame({"type": "upload", "name": "x.png"}, b""), "invalid_upload"),
    (encode_frame({"type": "mystery"}, b"123"), "invalid_message"),
    (encode_frame({"type": "upload", "name": "x.pdf", "kind": "pdf"}, b"%PDF-1.4"), "invalid_message"),
])
def test_bad_binary_frames(proto, frame, code):
    """Corrupt frames and uploads are refused with a clear error code."""
    (reply,) = proto.receive("c1", frame)
    assert reply.message["code"] == code


def test_settings_messages(proto):
    """list_models, set_cache_policy, free_memory and queue_status reply with their data."""
    (reply,) = send(proto, {"type": "list_models"})
    assert "checkpoints" in reply.message["folders"]
    (reply,) = send(proto, {"type": "set_cache_policy", "policy": "none"})
    assert reply.message["policy"] == "none"
    (reply,) = send(proto, {"type": "free_memory"})
    assert reply.message["type"] == "memory_freed"
    (reply,) = send(proto, {"type": "queue_status"})
    assert reply.message == {"type": "queue", "running": None, "running_all": [], "pending": [], "pending_total": 0,
                             "running_total": 0, "ahead_total": 0}


def test_message_schemas_cover_every_type():
    """Each client message type has a JSON Schema (documented in docs/protocol.md)."""
    from nodegraph.protocol import MESSAGE_TYPES

    schemas = message_schemas()
    assert set(MESSAGE_TYPES) | {"upload"} == set(schemas)
    docs = (ROOT / "docs" / "protocol.md").read_text()
    for name in schemas:
        assert f"`{name}`" in docs


def test_history_pruning_keeps_the_newest():
    """prune(keep=n) deletes older finished runs and never queued ones."""
    queue = RunQueue()
    ids = []
    for i in range(5):
        record = queue.enqueue({"format_version": 1, "nodes": {}})
        queue.claim_next()
        queue.finish(record.id, "succeeded")
        ids.append(record.id)
    waiting = queue.enqueue({"format_version": 1, "nodes": {}})
    assert queue.prune(keep=2) == 3
    runs, total = queue.history()
    assert total == 2 and {r.id for r in runs} == set(ids[-2:])
    assert queue.get(waiting.id).status == "queued"


def test_history_is_pruned_per_user():
    """A history limit holds per user: bob's eight runs pushed alice's one out of a limit of five (a sweep by one
    member wiped the team's history)."""
    queue = RunQueue()

    def finished(user: str) -> str:
        record = queue.enqueue({"format_version": 1, "nodes": {}}, user=user)
        queue.claim_next()
        queue.finish(record.id, "succeeded")
        return record.id

    alice = finished("alice")
    bobs = [finished("bob") for _ in range(8)]
    assert queue.prune(keep=5) == 3
    assert [r.id for r in queue.history(user="alice")[0]] == [alice]
    assert {r.id for r in queue.history(user="bob")[0]} == set(bobs[-5:])


def test_tracebacks_reach_clients_only_from_a_loopback_server_without_users(proto, tmp_path):
    """A node's traceback names the install's files: a shared server keeps it in its log, out of node_error
    events and of stored errors (history, get_run, get_outputs); the person at a local server still gets it."""
    from nodegraph.server import Server
    from nodegraph.users import UserBook

    event = {"type": "node_error", "run_id": "r", "node_id": "n", "node_type": "T", "exception_type": "E",
             "message": "boom", "traceback": 'Traceback (most recent call last):\n  File "/srv/nodegraph/x.py"'}
    proto.run_owner["r"] = "c1"
    (sent,) = [out.message for out in proto.run_event("r", event) if out.message is not None]
    assert sent["message"] == "boom" and "traceback" not in sent
    assert proto.stored_error({"node_id": "n", "message": "boom", "traceback": "..."}) == {"node_id": "n",
                                                                                         "message": "boom"}
    proto.send_tracebacks = True
    (sent,) = [out.message for out in proto.run_event("r", event) if out.message is not None]
    assert sent["traceback"].startswith("Traceback")

    session = Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in")
    assert Server(session, data_dir=tmp_path / "a").protocol.send_tracebacks
    shared = Server(session, data_dir=tmp_path / "b", users=UserBook(path=tmp_path / "users.json"))
    assert not shared.protocol.send_tracebacks
    assert not Server(session, data_dir=tmp_path / "c", host="0.0.0.0").protocol.send_tracebacks
    assert not Server(session, data_dir=tmp_path / "d", token="t").protocol.send_tracebacks
    assert not Server(session, data_dir=tmp_path / "e", allowed_hosts=["studio.lan"]).protocol.send_tracebacks


def test_a_cache_budget_of_true_is_refused(proto):
    """pydantic's lax ints turned `true` into a budget of 1 byte; the message field is strict."""
    replies = [out.message for out in send(proto, {"type": "set_cache_policy", "policy": "lru", "budget_bytes": True})
               if out.message is not None]
    assert replies[0]["type"] == "error" and replies[0]["code"] == "invalid_message", replies
    assert proto.session.cache.budget_bytes != 1


def test_a_cache_budget_past_the_machines_memory_is_refused(proto, monkeypatch):
    """budget_bytes 10^26 was taken, and the cache never gave anything back (6.5 GB held; a hostile pass)."""
    from nodegraph import memory

    monkeypatch.setattr(memory, "system_memory", lambda: (4 * 2**30, 16 * 2**30))
    before = proto.session.cache.budget_bytes
    (reply,) = send(proto, {"type": "set_cache_policy", "policy": "lru", "budget_bytes": 10**26, "request_id": 3})
    assert reply.message["code"] == "invalid_value" and reply.message["request_id"] == 3
    assert "more than this machine's memory less the reserve" in reply.message["message"]
    assert proto.session.cache.budget_bytes == before
    (reply,) = send(proto, {"type": "set_cache_policy", "policy": "lru", "budget_bytes": 16 * 2**30})   # all of it
    assert reply.message["code"] == "invalid_value"
    (reply,) = send(proto, {"type": "set_cache_policy", "policy": "none", "budget_bytes": 10**26})  # kept for lru
    assert reply.message["code"] == "invalid_value"
    (reply,) = send(proto, {"type": "set_cache_policy", "policy": "lru", "budget_bytes": 2**30})
    assert reply.message["type"] == "cache_policy" and proto.session.cache.budget_bytes == 2**30


def test_a_binary_frame_whose_header_cannot_be_read_is_answered_with_its_request_id(proto):
    """A header over the limit (a 100,000-character file name) got an error without request_id, so a client
    waiting on it hung; the id is found in the raw header when it is there."""
    import struct

    head = json.dumps({"type": "upload", "name": "x" * 100_000, "kind": "image", "request_id": "r7"}).encode()
    (reply,) = [out.message for out in proto.receive("c1", struct.pack(">I", len(head)) + head + b"png")
                if out.message is not None]
    assert reply["code"] == "invalid_frame" and reply["request_id"] == "r7"
    assert "at most 65536 bytes" in reply["message"]


def test_parallel_uploads_of_one_name_never_share_a_file(tmp_path):
    """Uploads run in the server's handler threads; two uploads of one name with different bytes could both be
    given the same free name, and one's bytes were lost (a hostile pass: 25–35 wrong ids in 20 rounds of 6)."""
    from concurrent.futures import ThreadPoolExecutor

    from nodegraph.files import FileStore

    store = FileStore(tmp_path / "in", tmp_path / "out")
    payloads = [_png_of(i) for i in range(12)]
    for _round in range(3):
        with ThreadPoolExecutor(6) as pool:
            ids = list(pool.map(lambda data: store.save_upload("clip.png", data), payloads))
        for file_id, data in zip(ids, payloads):
            assert (tmp_path / "in" / file_id.removeprefix("input/")).read_bytes() == data   # each id: its bytes
        assert len(set(ids)) == len(payloads)
        assert not [p for p in (tmp_path / "in").iterdir() if p.name.startswith(".upload-")]   # no temporary left


def _png_of(value: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (value * 20, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_remembered_pending_count_follows_every_change_of_the_queue(tmp_path):
    """pending_count is remembered between writes (it cost every run three queries); each write that can move a
    run into or out of 'queued' makes it count again, so it always equals the table's count."""
    from nodegraph.run_queue import RunQueue

    queue = RunQueue(tmp_path / "runs.sqlite")
    graph = {"format_version": 1, "nodes": {}}

    def check():
        actual = queue._one("SELECT COUNT(*) AS n FROM runs WHERE status = 'queued'")["n"]
        assert queue.pending_count() == actual
        return actual

    started = queue.enqueue(graph, start=True)            # an idle worker: stored running
    assert started.status == "running" and check() == 0
    first, second = queue.enqueue(graph), queue.enqueue(graph)
    assert check() == 2
    assert queue.enqueue(graph, start=True).status == "queued" and check() == 3   # runs queued: no jump
    queue.finish(started.id, "succeeded")
    assert check() == 3
    claimed = queue.claim_next()
    assert claimed.id == first.id and check() == 2
    assert queue.cancel(second.id) and check() == 1
    assert queue.requeue(second.id) and check() == 2
    queue.finish(claimed.id, "failed")
    assert queue.requeue(claimed.id) and check() == 3
    assert queue.recover() == [] and check() == 3
    queue.close()


def test_node_errors_name_the_servers_folders_as_clients_know_them(tmp_path, monkeypatch):
    """A library's error inside a node ("Error opening 'in/carol/evil.wav'") told a user where the server keeps
    files: stored errors and run_failed events name the input, output and install folders as `input/`,
    `output/` and `<nodegraph>/` (absolute or relative, as the server was started), unless it sends tracebacks."""
    from nodegraph.model_paths import PROJECT_ROOT

    monkeypatch.chdir(tmp_path)
    protocol = ServerProtocol(Session(output_dir="out", input_dir="in", autoload=False),
                              RunQueue(tmp_path / "runs.sqlite"), FileStore(tmp_path / "in", tmp_path / "out"))
    message = (f"evil.wav is not a readable audio file (Error opening 'in/carol/evil.wav'); also {tmp_path}/out/x.png, "
               f"{PROJECT_ROOT}/nodes/audio.py, {tmp_path}/in, file://{tmp_path}/in/a.png, ./in/b.png; but not "
               f"plugin/in/x, /within/in, in the, channels in/out mismatch, checked out/in, {tmp_path}/inx")
    stored = protocol.stored_error({"message": message, "traceback": "File ..."})
    assert stored == {"message": "evil.wav is not a readable audio file (Error opening 'input/carol/evil.wav'); also "
                                 f"output/x.png, <nodegraph>/nodes/audio.py, input, file://input/a.png, ./input/b.png; "
                                 f"but not plugin/in/x, /within/in, in the, channels in/out mismatch, checked out/in, "
                                 f"{tmp_path}/inx"}
    # the run's user sees their own file as their file id names it
    assert "'input/evil.wav'" in protocol.stored_error({"message": message}, user="carol")["message"]
    protocol.connect("c1", None)
    protocol.run_owner["r"] = "c1"
    (event,) = [o.message for o in protocol.run_event("r", {"type": "run_failed", "run_id": "r", "message": message})
                if o.to == "c1"]
    assert event["message"] == stored["message"]
    # the model folders: a loader's "<root>/checkpoints/evil.ckpt: this is a pickle checkpoint" (a hostile pass)
    loader = (f"input 'ckpt_name': {tmp_path}/models/checkpoints/evil.ckpt: this is a pickle checkpoint; also "
              f"{PROJECT_ROOT}/models/embeddings")
    assert protocol.stored_error({"message": loader})["message"] == (
        "input 'ckpt_name': models/checkpoints/evil.ckpt: this is a pickle checkpoint; also models/embeddings")
    # a path ending a sentence, and paths in an error's details (a re-test's finding: "Looked in: /srv/extra." and
    # details.searched were left as they were)
    ended = protocol.stored_error({"message": f"Looked in: {tmp_path}/in, {tmp_path}/in.", "details": {
        "searched": [f"{tmp_path}/models/checkpoints", f"{tmp_path}/in"]}})
    assert ended == {"message": "Looked in: input, input.", "details": {"searched": ["models/checkpoints", "input"]}}
    assert protocol.stored_error({"message": f"{tmp_path}/in.bak"})["message"] == f"{tmp_path}/in.bak"
    protocol.send_tracebacks = True              # the person at the keyboard sees it all
    assert protocol.stored_error({"message": message})["message"] == message


def test_get_outputs_of_a_remote_run_names_its_worker(proto):
    """docs/distributed.md promised the worker in get_outputs of a --ray run; the reply left it out (a docs-literal
    pass). A local run's reply has no `worker`."""
    remote, local = proto.queue.enqueue(ARITHMETIC), proto.queue.enqueue(ARITHMETIC)
    proto.queue.finish(remote.id, "succeeded", result={"outputs": {}, "files": [], "worker": "w1"})
    proto.queue.finish(local.id, "succeeded", result={"outputs": {}, "files": []})
    (reply,) = send(proto, {"type": "get_outputs", "run_id": remote.id})
    assert reply.message["worker"] == "w1"
    (reply,) = send(proto, {"type": "get_outputs", "run_id": local.id})
    assert "worker" not in reply.message


def test_an_upload_header_missing_fields_names_them(proto):
    """A binary frame with the header {} got "...; Field required; Field required", naming no field (a hostile
    pass); the reply names each, in `problems` too, as text messages do."""
    (reply,) = proto.receive("c1", encode_frame({"request_id": 9}, b"x"))
    assert reply.message["code"] == "invalid_message" and reply.message["request_id"] == 9
    fields = {p["field"] for p in reply.message["details"]["problems"]}
    assert {"type", "name"} <= fields and "type: Field required" in reply.message["message"]


def test_history_paging_and_front_take_numbers_and_booleans_only(proto):
    """`limit: "5"`, `limit: true` and `front: "yes"` were coerced (a hostile pass); they are refused by field."""
    for message, field in (({"type": "history", "limit": "5"}, "limit"), ({"type": "history", "limit": True}, "limit"),
                           ({"type": "history", "offset": "0"}, "offset"),
                           ({"type": "submit", "graph": ARITHMETIC, "front": "yes"}, "front")):
        (reply,) = send(proto, message)
        assert reply.message["code"] == "invalid_message", message
        assert field in {p["field"] for p in reply.message["details"]["problems"]}, reply.message
    (reply,) = send(proto, {"type": "history", "limit": 5, "offset": 0})
    assert reply.message["type"] == "history"


def test_a_message_without_a_type_still_gets_its_request_id_back(proto):
    """{"request_id": 1} and {"type": 5, "request_id": 1} got invalid_message without the id: a client matching
    replies by id waited for ever (a client writer's pass)."""
    for message in ({"request_id": 1}, {"type": 5, "request_id": 1}, {"type": None, "request_id": "a"}):
        (reply,) = send(proto, message)
        assert reply.message["code"] == "invalid_message" and reply.message["request_id"] == message["request_id"]
    (reply,) = send(proto, "[1, 2]")                      # not an object: nothing to echo
    assert reply.message["code"] == "invalid_message" and "request_id" not in reply.message
