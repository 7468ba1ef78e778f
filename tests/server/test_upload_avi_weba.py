"""LoadVideo / LoadAudio read .avi and .weba (plugins/video READABLE, plugins/audio VIDEO_CONTAINERS) but their Upload
button was refused them: "not a video file of a format the loaders read (no format the loaders read)" for an AVI, and
a .weba (WebM audio) was stored as .mka. The server now knows an AVI by its RIFF "AVI " header and keeps both names."""

from __future__ import annotations

import json

import pytest

from nodegraph import Session
from nodegraph.files import FileStore, media_format
from nodegraph.protocol import PROTOCOL_VERSION, ServerProtocol, encode_frame
from nodegraph.run_queue import RunQueue

AVI = b"RIFF" + (1000).to_bytes(4, "little") + b"AVI LIST" + bytes(40)
WEBM = b"\x1a\x45\xdf\xa3" + bytes(40)


@pytest.fixture
def proto(tmp_path):
    protocol = ServerProtocol(Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in"), RunQueue(),
                              FileStore(tmp_path / "in", tmp_path / "out"))
    protocol.connect("c1")
    protocol.receive("c1", json.dumps({"type": "hello", "protocol_version": PROTOCOL_VERSION}))
    return protocol


def test_an_avi_is_known_by_its_bytes():
    assert media_format(AVI) == "AVI"
    assert media_format(b"RIFF" + bytes(4) + b"WAVE" + bytes(40)) == "WAV"      # the other RIFF forms as before
    assert media_format(b"RIFF" + bytes(4) + b"WEBP" + bytes(40)) == "WebP"


@pytest.mark.parametrize("kind, name, data, stored", [
    ("video", "clip.avi", AVI, "clip.avi"),
    ("video", "clip.AVI", AVI, "clip.avi"),
    ("video", "clip.bin", AVI, "clip.avi"),            # the bytes say AVI
    ("audio", "sound.avi", AVI, "sound.avi"),          # LoadAudio reads an AVI's sound track
    ("audio", "voice.weba", WEBM, "voice.weba"),       # WebM audio keeps its name (was stored as .mka)
])
def test_avi_and_weba_uploads_are_stored_under_their_names(proto, tmp_path, kind, name, data, stored):
    (reply,) = proto.receive("c1", encode_frame({"type": "upload", "name": name, "kind": kind}, data))
    assert reply.message == {"type": "uploaded", "file_id": f"input/{stored}", "name": stored, "kind": kind}
    assert (tmp_path / "in" / stored).read_bytes() == data


def test_an_avi_is_no_image_or_mesh(proto):
    (reply,) = proto.receive("c1", encode_frame({"type": "upload", "name": "x.avi", "kind": "mesh"}, AVI))
    assert reply.message["code"] == "invalid_upload" and "(an AVI file)" in reply.message["message"], reply.message
