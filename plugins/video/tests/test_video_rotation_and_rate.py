"""LoadVideo reads a clip as players show it: a phone's portrait clip (landscape frames plus a display rotation
in the MP4 `tkhd` matrix) loads upright, and a resampled read lasts as long as the clip (the last frame is on
screen until the clip's end, so 1.2 s at 25 fps is 30 frames, not 29).

The clips are written here with PyAV (video_io.write_video); the rotation is then written into the track header's
display matrix, the way phones store it, and checked against what PyAV reads back (`frame.rotation`).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from nodegraph import Session
from nodegraph_video import video_io

WIDTH, HEIGHT = 48, 32


def _marked_clip(frames: int = 12) -> torch.Tensor:
    """(frames, 32, 48, 3) blue frames with a white 6×6 marker in the top-left corner (shows the orientation)."""
    clip = torch.zeros(frames, HEIGHT, WIDTH, 3)
    clip[..., 2] = 0.8
    clip[:, :6, :6] = 1.0
    return clip


def _set_display_rotation(path: Path, a: int, b: int, c: int, d: int) -> None:
    """Write the 2×2 part (a b / c d, whole numbers as 16.16 fixed point) of the video track's tkhd display matrix."""
    data = bytearray(path.read_bytes())
    box = data.index(b"tkhd")
    version = data[box + 4]
    matrix = box + 4 + 4 + (32 if version == 1 else 20) + 8 + 8    # version/flags, times/id/duration, reserved...
    for offset, value in zip((0, 4, 12, 16), (a, b, c, d)):
        data[matrix + offset:matrix + offset + 4] = struct.pack(">i", value << 16)
    path.write_bytes(bytes(data))


def _marker_corner(frame: torch.Tensor) -> str:
    """Which corner of a frame (H, W, 3) holds the white marker."""
    corners = {"top-left": frame[:3, :3], "top-right": frame[:3, -3:], "bottom-left": frame[-3:, :3],
               "bottom-right": frame[-3:, -3:]}
    (corner,) = [name for name, pixels in corners.items() if float(pixels.mean()) > 0.9]
    return corner


# (tkhd a, b, c, d), PyAV's frame.rotation (counter-clockwise), the turn applied (clockwise), where the marker goes
ROTATIONS = [((0, 1, -1, 0), -90, 90, "top-right"),       # a phone held upright; Chromium shows the marker top-right
             ((-1, 0, 0, -1), 180, 180, "bottom-right"),  # PyAV says 180 or -180
             ((0, -1, 1, 0), 90, 270, "bottom-left")]


@pytest.mark.parametrize("matrix, pyav_rotation, clockwise, corner", ROTATIONS)
def test_a_clip_with_a_display_rotation_is_read_upright(tmp_path, matrix, pyav_rotation, clockwise, corner):
    """A clip whose container says "turn me" is read turned, every frame, as a player shows it."""
    import av

    path = tmp_path / "turned.mp4"
    video_io.write_video(path, _marked_clip(), 10.0, "mp4")
    _set_display_rotation(path, *matrix)
    with av.open(str(path)) as container:
        assert abs(next(container.decode(video=0)).rotation) == abs(pyav_rotation)     # the file is what we meant
    clip = video_io.read_video(path)
    quarter = clockwise in (90, 270)
    assert clip.rotation == clockwise
    assert clip.frames.shape == ((12, WIDTH, HEIGHT, 3) if quarter else (12, HEIGHT, WIDTH, 3))
    assert {_marker_corner(frame) for frame in clip.frames} == {corner}
    resampled = video_io.read_video(path, fps=20.0)
    assert {_marker_corner(frame) for frame in resampled.frames} == {corner}


def test_a_clip_without_rotation_is_read_as_stored(tmp_path):
    """No display rotation (or an identity matrix): frames as stored, rotation 0."""
    path = tmp_path / "plain.mp4"
    video_io.write_video(path, _marked_clip(), 10.0, "mp4")
    clip = video_io.read_video(path)
    assert clip.rotation == 0 and clip.frames.shape == (12, HEIGHT, WIDTH, 3)
    assert _marker_corner(clip.frames[0]) == "top-left"


@pytest.mark.parametrize("tag, clockwise", [("90", 90), ("-90", 270), ("180", 180), ("0", 0), ("sideways", 0),
                                            (None, 0), ("nan", 0), ("inf", 0), ("-inf", 0), ("1e400", 0)])
def test_display_rotation_falls_back_to_the_older_rotate_tag(tag, clockwise):
    """A frame without a display matrix (older files, older FFmpeg) uses the stream's "rotate" tag (clockwise); a
    tag that is not a finite number turns nothing (a re-test: "nan" and "1e400" raised in round())."""
    class Frame:
        rotation = 0

    assert video_io.display_rotation(Frame(), tag) == clockwise
    Frame.rotation = -90                              # the frame's own matrix wins over the tag
    assert video_io.display_rotation(Frame(), "180") == 90
    Frame.rotation = float("nan")                     # FFmpeg's angle of a degenerate matrix: as if none
    assert video_io.display_rotation(Frame(), "180") == 180


@pytest.mark.parametrize("tag", ["nan", "1e400"])
def test_load_video_reads_a_clip_whose_rotate_tag_is_not_a_finite_number(tmp_path, tag):
    """A playable clip tagged rotate=nan / 1e400 (players ignore such a tag) was "not a readable video"; it loads as
    stored, with no turn and no warning."""
    av = pytest.importorskip("av")
    (tmp_path / "in").mkdir()
    with av.open(str(tmp_path / "in" / "tagged.mkv"), "w") as container:
        stream = container.add_stream("ffv1", rate=8)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.metadata["rotate"] = tag
        for frame in _marked_clip(3).numpy():
            for packet in stream.encode(av.VideoFrame.from_ndarray((frame * 255).astype(np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    session = Session(autoload=True, allow=["video"], input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    result = session.run({"format_version": 1, "nodes": {"load": {"type": "video.LoadVideo", "inputs": {
        "video": "tagged.mkv"}}}}, outputs=["load"])
    images = result.outputs["load"]["images"]
    assert images.shape == (3, HEIGHT, WIDTH, 3) and _marker_corner(images[0]) == "top-left"
    assert result.warnings == []


def test_load_video_turns_a_portrait_phone_clip_and_says_so(tmp_path):
    """LoadVideo on a portrait phone clip gives portrait, upright frames and a warning naming the turn."""
    session = Session(autoload=True, allow=["video"], input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    (tmp_path / "in").mkdir()
    path = tmp_path / "in" / "portrait.mp4"
    video_io.write_video(path, _marked_clip(), 10.0, "mp4")
    _set_display_rotation(path, 0, 1, -1, 0)
    result = session.run({"format_version": 1, "nodes": {"load": {"type": "video.LoadVideo", "inputs": {
        "video": "portrait.mp4"}}}}, outputs=["load"])
    images = result.outputs["load"]["images"]
    assert images.shape == (12, WIDTH, HEIGHT, 3) and _marker_corner(images[-1]) == "top-right"
    (warning,) = [w["message"] for w in result.warnings]
    assert "display rotation of 90°" in warning and f"{HEIGHT}×{WIDTH}" in warning


def test_pick_covers_the_last_frames_time():
    """Output times run until the clip's end, not the last frame's middle: 12 frames of 0.1 s at 25 fps → 30."""
    times = [k / 10 for k in range(12)]
    picked = video_io._pick(times, 25.0, 1000, 0, 1.2)
    assert len(picked) == 30 and picked[-1] == 11 and picked[-2] == 11
    assert len(video_io._pick(times, 30.0, 1000, 0, 1.2)) == 36
    assert len(video_io._pick(times, 10.0, 1000, 0, 1.2)) == 12           # the source's rate: every frame once
    assert len(video_io._pick(times, 25.0, 1000, 6, 1.2)) == 15           # from frame 6: 0.6 s left


@pytest.mark.parametrize("fmt", ["mp4", "webm", "gif"])
@pytest.mark.parametrize("fps, frames", [(25.0, 30), (30.0, 36), (15.0, 18), (20.0, 24), (24.0, 29), (10.0, 12)])
def test_a_resampled_clip_lasts_as_long_as_the_source(tmp_path, fmt, fps, frames):
    """A 1.2 s clip (12 frames at 10 fps) read at `fps` gives ⌈1.2 · fps⌉ frames, the last one the source's last
    (29 at 25 fps and 35 at 30 fps before: output times after the last frame's middle were cut)."""
    source = torch.linspace(0, 1, 12)[:, None, None, None].expand(12, 16, 16, 3).contiguous()
    path = tmp_path / f"clip.{fmt}"
    video_io.write_video(path, source, 10.0, fmt)
    clip = video_io.read_video(path, fps=fps)
    assert clip.frames.shape[0] == frames
    whole = video_io.read_video(path)
    assert torch.equal(clip.frames[-1], whole.frames[-1])
    assert not clip.frames_left
    cut = video_io.read_video(path, fps=fps, max_frames=frames - 1)
    assert cut.frames_left and cut.frames.shape[0] == frames - 1      # one output frame more would still fit
    assert np.isclose(clip.frames.shape[0] / fps, 1.2, atol=1 / fps)
