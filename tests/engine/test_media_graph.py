"""A clip the video plugin's SaveVideo wrote opens as the graph that made it (nodegraph/media_graph.py).

A media creator's pass: `nodegraph validate clip.mp4` only offered a hand-run PyAV one-liner, and the editor's Load
said "not valid JSON" for an MP4 and "not a graph" for a GIF, though SaveVideo writes the graph into both.
"""

from __future__ import annotations

import io
import json
import struct

import pytest
from PIL import Image

from nodegraph import GraphValidationError
from nodegraph.graph import graph_from_bytes
from nodegraph.media_graph import graph_text_from_media

GRAPH = {"format_version": 2, "nodes": {"n": {"type": "Int", "inputs": {"value": 3}}}}
TEXT = json.dumps(GRAPH)


def box(kind: bytes, *body: bytes) -> bytes:
    inner = b"".join(body)
    return struct.pack(">I", len(inner) + 8) + kind + inner


def mp4(comment: str) -> bytes:
    data = box(b"data", struct.pack(">II", 1, 0), comment.encode())
    return box(b"ftyp", b"isom", bytes(4)) + box(b"moov", box(b"udta", box(b"meta", bytes(4), box(b"ilst", box(
        b"\xa9cmt", data)))))


def gif(comment: str | None) -> bytes:
    out = io.BytesIO()
    Image.new("P", (2, 2)).save(out, "GIF", **({"comment": comment} if comment is not None else {}))
    return out.getvalue()


def test_the_graph_is_read_from_mp4_gif_and_webm_without_a_video_library():
    assert graph_text_from_media(mp4(TEXT)) == TEXT
    assert graph_text_from_media(gif(TEXT)) == TEXT
    assert graph_text_from_media(gif(None)) is None
    assert graph_text_from_media(mp4(TEXT)[:40]) is None            # truncated: none, no exception
    assert graph_from_bytes(mp4(TEXT), "clip.mp4").nodes["n"].inputs["value"] == 3
    with pytest.raises(GraphValidationError) as caught:
        graph_from_bytes(gif(None), "clip.gif")
    assert "carries no graph" in caught.value.errors[0].message


def test_a_real_webm_and_mp4_written_by_pyav():
    av = pytest.importorskip("av")        # the video plugin's dependency (scripts/setup test installs it)
    import numpy as np

    for suffix, codec in ((".webm", "libvpx-vp9"), (".mp4", "libx264")):
        out = io.BytesIO()
        container = av.open(out, "w", format="webm" if suffix == ".webm" else "mp4")
        container.metadata["comment"] = TEXT
        stream = container.add_stream(codec, rate=4)
        stream.width = stream.height = 16
        stream.pix_fmt = "yuv420p"
        for _ in range(2):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        container.close()
        assert graph_text_from_media(out.getvalue()) == TEXT, suffix


def test_hostile_and_other_writers_clips():
    """A re-test: a GIF of millions of tiny sub-blocks used 45× its size (every block was collected); a MOV keeps its
    comment in QuickTime's own box; VideoHelperSuite's comment wraps a ComfyUI workflow; a BOM; a GIF whose first
    comment is an editor's "Created with GIMP"."""
    import resource
    import time

    head = b"GIF89a" + bytes([1, 0, 1, 0, 0, 0, 0])
    filler = b"\x21\xff" + b"\x02ab" * 300_000 + b"\x00"                 # an application extension: skipped
    started, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert graph_text_from_media(head + filler + b"\x21\xfe" + bytes([len(TEXT)]) + TEXT.encode() + b"\x00;") == TEXT
    assert time.perf_counter() - started < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000      # KiB: nothing piled up
    quicktime = box(b"ftyp", b"qt  ", bytes(4)) + box(b"moov", box(b"udta", box(
        b"\xa9cmt", struct.pack(">HH", len(TEXT), 0), TEXT.encode())))
    assert graph_text_from_media(quicktime) == TEXT
    workflow = {"nodes": [], "links": []}
    assert json.loads(graph_text_from_media(mp4(json.dumps({"prompt": "{}", "workflow": workflow})))) == workflow
    assert graph_text_from_media(mp4("\ufeff" + TEXT)) == TEXT
    gimp = head + b"\x21\xfe\x10Created with GIMP"[:19] + b"\x00" + b"\x21\xfe" + bytes([len(TEXT)]) + TEXT.encode() \
        + b"\x00;"
    assert graph_text_from_media(gimp) == TEXT


def test_a_clip_larger_than_a_graph_file_opens_by_its_comment(tmp_path, monkeypatch):
    """`nodegraph validate` refused an MP4 past 64 MiB (the graph-file limit, applied before the container was walked)
    while the editor opened it: a long clip's frames are no graph's bytes. A file over the limit that is a clip is
    walked through a memory map; anything else stays refused."""
    import nodegraph.graph as graph_module
    from nodegraph.graph import load_graph

    monkeypatch.setattr(graph_module, "MAX_FILE_BYTES", 4096)
    clip = tmp_path / "long.mp4"
    clip.write_bytes(box(b"ftyp", b"isom", bytes(4)) + box(b"mdat", bytes(20_000)) + mp4(TEXT)[16:])   # moov last
    assert load_graph(clip).nodes["n"].inputs["value"] == 3
    other = tmp_path / "big.json"
    other.write_text(" " * 5000 + TEXT)
    with pytest.raises(GraphValidationError, match="the limit for a graph"):
        load_graph(other)


def test_a_gif_comment_cut_into_one_byte_sub_blocks_takes_about_its_own_size():
    """A hostile re-test: a comment extension of millions of 1-byte sub-blocks kept one bytes object per block (a
    20 MB GIF peaked at 947 MB, a 66 MB one read through the memory map at 3 GB); the blocks now go into one
    bytearray. (tracemalloc slows the walk about 15×: 300,000 blocks keep the test near a second.)"""
    import tracemalloc

    blocks = 300_000
    clip = b"GIF89a" + bytes([1, 0, 1, 0, 0, 0, 0]) + b"\x21\xfe" + b"\x01{" + b"\x01 " * (blocks - 1) + b"\x00;"
    tracemalloc.start()
    try:
        comment = graph_text_from_media(clip)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert comment == "{" + " " * (blocks - 1)
    assert peak < 3 * len(clip)          # a list of one object per block: about 45× the file


def test_a_comfyui_prompt_in_a_clip_past_the_graph_limit_imports_as_in_a_small_one(tmp_path, capsys):
    """A hostile re-test: a 70 MB VideoHelperSuite MP4 was called "a ComfyUI API-format prompt ... `nodegraph run`
    does [convert it]", yet `run` refused it and `Session.import_comfyui` said it "holds no ComfyUI prompt":
    `foreign_prompt` read only the first 64 MiB + 1 byte. It now reads a big clip's comment through the memory map
    `load_graph` uses. (A sparse file: the 70 MB of frames take no disk.)"""
    from nodegraph import Session
    from nodegraph.cli import main
    from nodegraph.graph import MAX_FILE_BYTES, foreign_prompt

    prompt = {"1": {"class_type": "Int", "inputs": {"value": 4}},
              "2": {"class_type": "ShowValue", "inputs": {"value": ["1", 0]}}}
    comment = json.dumps({"prompt": json.dumps(prompt)})          # VideoHelperSuite's comment
    frames = MAX_FILE_BYTES + 6 * 1024 * 1024
    clip = tmp_path / "vhs_long.mp4"
    with clip.open("wb") as stream:
        stream.write(box(b"ftyp", b"isom", bytes(4)) + struct.pack(">I4s", 8 + frames, b"mdat"))
        stream.seek(frames, io.SEEK_CUR)                          # the frames: a hole
        stream.write(mp4(comment)[16:])                           # moov last, as a long recording writes it
    assert clip.stat().st_size > MAX_FILE_BYTES
    assert foreign_prompt(clip) == prompt
    assert main(["run", str(clip), "--output-dir", str(tmp_path / "out"), "--no-plugins"]) == 0
    assert "is a ComfyUI API prompt; imported it" in capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "vhs_long.outputs.json").read_text())["outputs"]["2"]["value"] == 4
    graph = Session(autoload=False).import_comfyui(str(clip))
    assert graph.nodes["1"].type == "Int" and graph.nodes["1"].inputs == {"value": 4}
    other = tmp_path / "big.bin"                                  # not a clip: still refused, nothing read whole
    with other.open("wb") as stream:
        stream.seek(MAX_FILE_BYTES + 10)
        stream.write(b"{}")
    assert foreign_prompt(other) is None
