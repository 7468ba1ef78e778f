"""Upload subfolders are bounded (hostile5, finding 2): deleting a folder's last upload removes the folders it
leaves empty, folders count toward the per-user entry cap, and a user's input folder holds at most
MAX_UPLOAD_FOLDERS folders. An upload of a 1-byte caption into `z{i}/e/f/g` and its delete, repeated, made a plain
user unlimited empty folders at zero quota."""

from __future__ import annotations

import json
import struct

import pytest

from nodegraph import Session, files
from nodegraph.files import FileAccessError, FileStore
from nodegraph.protocol import ServerProtocol
from nodegraph.run_queue import RunQueue
from nodegraph.users import User, UserBook


@pytest.fixture
def bob(tmp_path):
    """A plain user's connection; returns (upload(name, subfolder) -> reply, send(message) -> reply)."""
    book = UserBook(path=tmp_path / "users.json")
    book.add(User("bob", max_bytes=1_000_000))
    session = Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in")
    proto = ServerProtocol(session, RunQueue(), FileStore(tmp_path / "in", tmp_path / "out"), users=book)
    proto.connect("c", book.get("bob"))
    proto.receive("c", json.dumps({"type": "hello", "protocol_version": 1}))

    def upload(name: str, subfolder: str) -> dict:
        head = json.dumps({"type": "upload", "request_id": 1, "name": name, "kind": "caption",
                           "subfolder": subfolder}).encode()
        (reply,) = proto.receive("c", struct.pack(">I", len(head)) + head + b"y")
        return reply.message

    def send(message: dict) -> dict:
        (reply,) = proto.receive("c", json.dumps({"request_id": 2, **message}))
        return reply.message
    return upload, send


def folders_under(path) -> list[str]:
    """The folders below `path`, as sorted relative paths."""
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_dir())


def test_deleting_the_last_upload_of_a_folder_removes_the_folders_it_leaves_empty(bob, tmp_path):
    """`z0/e/f/g/c.txt` deleted: z0/e/f/g, z0/e/f, z0/e and z0 go; a folder that still holds a file stays, and
    the user's own input folder is never removed."""
    upload, send = bob
    keep = upload("k.txt", "z0/e")
    gone = upload("c.txt", "z0/e/f/g")
    assert send({"type": "delete_file", "file_id": gone["file_id"]})["type"] == "file_deleted"
    assert folders_under(tmp_path / "in" / "bob") == ["z0", "z0/e"]
    assert send({"type": "delete_file", "file_id": keep["file_id"]})["type"] == "file_deleted"
    assert folders_under(tmp_path / "in" / "bob") == [] and (tmp_path / "in" / "bob").is_dir()


def test_upload_and_delete_repeated_leaves_no_folders(bob, tmp_path):
    """hostile5's loop (upload into z{i}/e/f/g, delete it) leaves nothing behind: it made 4 folders a round."""
    upload, send = bob
    for i in range(20):
        reply = upload("c.txt", f"z{i}/e/f/g")
        assert send({"type": "delete_file", "file_id": reply["file_id"]})["type"] == "file_deleted"
    assert folders_under(tmp_path / "in" / "bob") == []


def test_a_user_holds_at_most_max_upload_folders(bob, monkeypatch, tmp_path):
    """Past MAX_UPLOAD_FOLDERS folders an upload that would make a new one is refused, saying the limit and the
    fix; uploads into folders that exist go on."""
    upload, _send = bob
    monkeypatch.setattr(files, "MAX_UPLOAD_FOLDERS", 3)
    assert upload("a.txt", "a/b")["type"] == "uploaded"
    assert upload("c.txt", "c")["type"] == "uploaded"
    refused = upload("d.txt", "d")
    assert refused["code"] == "invalid_upload" and "more than 3 folders" in refused["message"], refused
    assert "delete_file" in refused["message"] and not (tmp_path / "in" / "bob" / "d").exists()
    assert upload("b.txt", "a/b")["type"] == "uploaded"


def test_folders_count_toward_the_entry_cap_of_the_quota(tmp_path):
    """`folder_bytes` gives None (more than it counts) past its entry limit of files and folders: empty folders
    counted as nothing before."""
    store = FileStore(tmp_path / "in", tmp_path / "out")
    for i in range(5):
        (tmp_path / "in" / f"d{i}").mkdir(parents=True)
    assert store.folder_bytes("input", limit_entries=4) is None
    assert store.folder_bytes("input", limit_entries=5) == 0


def test_the_folder_limit_holds_for_a_library_caller(monkeypatch, tmp_path):
    """FileStore.save_upload refuses a folder past the limit with a FileAccessError too."""
    monkeypatch.setattr(files, "MAX_UPLOAD_FOLDERS", 1)
    store = FileStore(tmp_path / "in", tmp_path / "out")
    assert store.save_upload("a.txt", b"x", kind="caption", subfolder="one") == "input/one/a.txt"
    with pytest.raises(FileAccessError, match="more than 1 folders"):
        store.save_upload("a.txt", b"x", kind="caption", subfolder="two")
