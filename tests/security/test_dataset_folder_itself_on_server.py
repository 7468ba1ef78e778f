"""A plain user's ImageFolderDataset `folder: "."` on a server with users: her own input folder itself (where her
uploads without a `subfolder` go), never the shared input folder or another user's (an attacker's finding: '.'
was refused, so a flat dataset of uploads could not be named at all)."""

from __future__ import annotations

import io
import json
import struct

from PIL import Image

from nodegraph import Session
from nodegraph.files import FileStore
from nodegraph.protocol import PROTOCOL_VERSION, ServerProtocol
from nodegraph.run_queue import RunQueue
from nodegraph.users import User, UserBook


def _png(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (shade, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def _dataset_graph() -> dict:
    return {"format_version": 2, "nodes": {
        "data": {"type": "ImageFolderDataset", "inputs": {"folder": ".", "size": 8}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "data", "output": "report"}}}}}


def _send(proto: ServerProtocol, client: str, message: dict, data: bytes | None = None) -> dict:
    if data is None:
        replies = proto.receive(client, json.dumps(message))
    else:
        head = json.dumps(message).encode()
        replies = proto.receive(client, struct.pack(">I", len(head)) + head + data)
    return next(r.message for r in replies if r.to == client)


def test_a_plain_users_dot_is_her_own_input_folder_only(tmp_path):
    book = UserBook(path=tmp_path / "users.json")
    book.add(User("lee"))
    book.add(User("bob"))
    session = Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in")
    proto = ServerProtocol(session, RunQueue(), FileStore(tmp_path / "in", tmp_path / "out"), users=book,
                           wake_worker=lambda: None)
    for client, user in (("l", "lee"), ("b", "bob")):
        proto.connect(client, book.get(user))
        _send(proto, client, {"type": "hello", "protocol_version": PROTOCOL_VERSION})
    shared = tmp_path / "in"          # the server's own input folder, above every user's
    shared.mkdir(exist_ok=True)
    for index in range(4):            # the admin's images, captioned: read were '.' the shared folder
        Image.new("RGB", (16, 16)).save(shared / f"shared{index}.png")
        (shared / f"shared{index}.txt").write_text("shared")

    refused = _send(proto, "l", {"type": "submit", "request_id": 1, "graph": _dataset_graph()})
    assert refused["type"] == "error" and "does not exist yet" in json.dumps(refused), refused

    for index in range(5):            # bob's dataset, flat in his own folder
        _send(proto, "b", {"type": "upload", "request_id": 2, "name": f"b{index}.png"}, _png(index * 40))
        _send(proto, "b", {"type": "upload", "request_id": 3, "name": f"b{index}.txt", "kind": "caption"}, b"bob")
    for index in range(2):            # lee's: two captioned images uploaded into her input folder itself
        assert _send(proto, "l", {"type": "upload", "request_id": 4, "name": f"l{index}.png"},
                     _png(200 + index))["file_id"] == f"input/l{index}.png"
        _send(proto, "l", {"type": "upload", "request_id": 5, "name": f"l{index}.txt", "kind": "caption"}, b"lee")

    submitted = _send(proto, "l", {"type": "submit", "request_id": 6, "graph": _dataset_graph()})
    assert submitted["type"] == "submitted", submitted
    input_dir, output_dir = proto.run_folders("lee")        # what the server's worker runs her graph with
    result = session.run(_dataset_graph(), input_dir=input_dir, output_dir=output_dir, cache_scope="lee")
    report = result.outputs["show"]["value"]
    assert report.startswith("2 images used, 0 skipped"), report      # not bob's 5, not the shared 4
