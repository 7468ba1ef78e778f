"""Uploads into a subfolder of the user's input folder, and caption sidecars: how a plain user on a server builds a
training dataset (an attacker's finding: uploads dropped every folder, `10_x/a.png` became `input/a.png`, and no
`.txt` / `.caption` was ever accepted, so neither kohya `N_name` folders nor captions were possible)."""

from __future__ import annotations

import io
import json
import struct

import pytest

from nodegraph import Session
from nodegraph.files import MAX_CAPTION_BYTES, FileAccessError, FileStore
from nodegraph.protocol import ServerProtocol
from nodegraph.run_queue import RunQueue
from nodegraph.users import User, UserBook


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _frame(header: dict, data: bytes) -> bytes:
    head = json.dumps({"type": "upload", "request_id": 1, **header}).encode()
    return struct.pack(">I", len(head)) + head + data


@pytest.fixture
def lee(tmp_path):
    """A plain user's connection; returns upload(header, data) -> the reply message."""
    book = UserBook(path=tmp_path / "users.json")
    book.add(User("lee", max_bytes=10_000))
    session = Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in")
    proto = ServerProtocol(session, RunQueue(), FileStore(tmp_path / "in", tmp_path / "out"), users=book)
    proto.connect("c", book.get("lee"))
    proto.receive("c", json.dumps({"type": "hello", "protocol_version": 1}))

    def upload(header: dict, data: bytes) -> dict:
        (reply,) = proto.receive("c", _frame(header, data))
        return reply.message
    return upload


def test_a_kohya_dataset_is_uploaded_into_subfolders_with_its_captions(lee, tmp_path):
    """An image and its caption go into `img/10_zorb/` of the user's own input folder, under the ids a graph names."""
    image = lee({"name": "a.png", "subfolder": "img/10_zorb"}, _png())
    caption = lee({"name": "a.txt", "kind": "caption", "subfolder": "img/10_zorb"}, "a zorb, smiling".encode())
    other = lee({"name": "b.caption", "kind": "caption", "subfolder": "img/10_zorb"}, "\ufeffzorb".encode())
    assert (image["file_id"], image["name"]) == ("input/img/10_zorb/a.png", "img/10_zorb/a.png")
    assert (caption["file_id"], caption["kind"]) == ("input/img/10_zorb/a.txt", "caption")
    assert other["file_id"] == "input/img/10_zorb/b.caption"
    folder = tmp_path / "in" / "lee" / "img" / "10_zorb"
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "a.txt", "b.caption"]
    assert (folder / "a.txt").read_text() == "a zorb, smiling"
    assert lee({"name": "a.png"}, _png())["file_id"] == "input/a.png"      # no subfolder: the input folder itself


@pytest.mark.parametrize("subfolder, rule", [
    ("../bob", "'..'"), ("/etc", "absolute"), ("img/../../bob", "'..'"), ("CON", "device name"),
    (".hidden", "starts with '.'"), ("a/.git", "starts with '.'"), ("a/b/c/d/e", "5 folders deep; at most 4"),
    ("a//b", "empty component"), ("a\\b", "backslash"), ("x" * 201, "longer than 200 bytes"), ("a/", "ends in '/'"),
])
def test_a_subfolder_is_checked_by_the_rules_of_upload_names(lee, tmp_path, subfolder, rule):
    """Each folder of `subfolder` stays inside the user's own input folder; a refusal says which rule, and nothing
    is created."""
    reply = lee({"name": "a.png", "subfolder": subfolder}, _png())
    assert reply["type"] == "error" and reply["code"] == "invalid_upload", reply
    assert rule in reply["message"]
    assert not (tmp_path / "in" / "bob").exists() and not (tmp_path / "etc").exists()
    assert [p.name for p in (tmp_path / "in").rglob("*") if p.is_file()] == []


def test_a_subfolder_where_a_file_stands_is_refused(lee):
    """`a.png/x.png` when `a.png` is a file: said, not an OSError."""
    assert lee({"name": "a.png"}, _png())["type"] == "uploaded"
    reply = lee({"name": "x.png", "subfolder": "a.png"}, _png())
    assert reply["code"] == "invalid_upload" and "already has that name" in reply["message"]


def test_captions_must_be_small_utf8_text_and_count_in_the_quota(lee, tmp_path):
    """A caption is UTF-8 text without NUL of at most MAX_CAPTION_BYTES; other names are stored as .txt; what a
    subfolder holds counts in the user's max_bytes like any upload."""
    latin1 = lee({"name": "a.txt", "kind": "caption"}, "café".encode("latin-1"))
    assert latin1["code"] == "invalid_upload" and "not UTF-8" in latin1["message"]
    assert "NUL" in lee({"name": "a.txt", "kind": "caption"}, b"a\0b")["message"]
    assert f"at most {MAX_CAPTION_BYTES} bytes" in lee({"name": "a.txt", "kind": "caption"},
                                                        b"x" * (MAX_CAPTION_BYTES + 1))["message"]
    assert lee({"name": "a.png", "kind": "caption"}, b"zorb")["name"] == "a.txt"
    assert lee({"name": "big.txt", "kind": "caption", "subfolder": "d"}, b"y" * 9_000)["type"] == "uploaded"
    over = lee({"name": "more.txt", "kind": "caption", "subfolder": "d/e"}, b"z" * 2_000)
    assert over["code"] == "quota_exceeded", over


def test_the_file_store_names_the_subfolder_rule_for_a_library_caller(tmp_path):
    """FileStore.save_upload takes `subfolder` too, refusing with a FileAccessError."""
    store = FileStore(tmp_path / "in", tmp_path / "out")
    assert store.save_upload("a.png", _png(), subfolder="set") == "input/set/a.png"
    assert store.save_upload("a.png", _png(), subfolder="set") == "input/set/a.png"       # the same bytes again
    assert store.resolve("input/set/a.png") == (tmp_path / "in" / "set" / "a.png").resolve()
    with pytest.raises(FileAccessError, match="upload subfolder"):
        store.save_upload("a.png", _png(), subfolder="../x")
