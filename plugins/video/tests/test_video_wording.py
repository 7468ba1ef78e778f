"""What the video nodes say about bad input: the input named is the node's own, rates read cleanly."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from nodegraph import NodeInputError, Session
from nodegraph.errors import NodeExecutionError
from nodegraph.model_paths import ModelPaths
from nodegraph_video.video_io import clean_frame_rate

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[3]
CLIP = "a small red circle moving from left to right, on a blue background"


@pytest.fixture()
def session(tmp_path) -> Session:
    (tmp_path / "in").mkdir()
    paths = ModelPaths(roots=[tmp_path / "models"], extra={"checkpoints": [ROOT / "models" / "checkpoints"]})
    return Session(autoload=True, allow=["video"], model_paths=paths, input_dir=tmp_path / "in",
                   output_dir=tmp_path / "out")


def _input_error(session: Session, nodes: dict, output: str) -> NodeInputError:
    with pytest.raises(NodeExecutionError) as info:
        session.run({"format_version": 1, "nodes": nodes}, outputs=[output])
    assert isinstance(info.value.exception, NodeInputError), info.value
    return info.value.exception


def _link(node: str, output: str) -> dict:
    return {"node": node, "output": output}


def test_video_to_video_on_an_odd_size_clip_names_its_images_input(session):
    """A 63x47 clip is refused by the VAE's size rule naming `images` (VideoToVideo's input), not 'image'."""
    nodes = {
        "checkpoint": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world.safetensors"}},
        "clip": {"type": "video.RenderTinyWorldClip", "inputs": {"caption": CLIP, "frames": 2, "size": 64}},
        "odd": {"type": "ImageScale", "inputs": {"images": _link("clip", "images"), "width": 63, "height": 47}},
        "prompt": {"type": "EncodeText", "inputs": {"text_encoder": _link("checkpoint", "text_encoder"),
                                                    "text": "a red circle"}},
        "v2v": {"type": "video.VideoToVideo", "inputs": {
            "model": _link("checkpoint", "model"), "positive": _link("prompt", "conditioning"),
            "negative": _link("prompt", "conditioning"), "vae": _link("checkpoint", "vae"),
            "images": _link("odd", "image"), "steps": 1}},
    }
    error = _input_error(session, nodes, "v2v")
    assert error.input == "images" and "63×47" in error.message


@pytest.mark.parametrize("clip_input", ["first", "last"])
def test_crossfade_names_the_input_that_holds_several_frames(session, clip_input):
    """An 8-frame clip given as `first` is blamed on `first` (it blamed `last`), with the fix."""
    nodes = {
        "clip": {"type": "video.RenderTinyWorldClip", "inputs": {"caption": CLIP, "frames": 8, "size": 64}},
        "still": {"type": "RenderTinyWorld", "inputs": {"caption": "a small red circle, on a blue background",
                                                        "size": 64}},
        "fade": {"type": "video.CrossfadeFrames", "inputs": {"first": _link("still", "image"),
                                                             "last": _link("still", "image"), "frames": 4}},
    }
    nodes["fade"]["inputs"][clip_input] = _link("clip", "images")
    error = _input_error(session, nodes, "fade")
    assert error.input == clip_input and "give one frame, found 8" in error.message and "PickFrames" in error.message


def _write_mp4(path: Path, rate: Fraction, frames: int = 6) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for index in range(frames):
            pixels = np.full((32, 32, 3), index * 40, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.mark.parametrize("rate, reported", [(Fraction(30000, 1001), 29.97003), (Fraction(25), 25.0),
                                            (Fraction(24000, 1001), 23.976024)])
def test_load_video_reports_a_clean_frame_rate(session, tmp_path, rate, reported):
    """An NTSC clip's rate is 29.97003 (it was 29.970029970029966), 25 fps is 25.0; SaveVideo turns the reported
    value back into the exact rational."""
    _write_mp4(tmp_path / "in" / "clip.mp4", rate)
    result = session.run({"format_version": 1, "nodes": {
        "load": {"type": "video.LoadVideo", "inputs": {"video": "clip.mp4"}}}}, outputs=["load"])
    assert result.outputs["load"]["fps"] == reported
    assert Fraction(reported).limit_denominator(1001) == rate


def test_clean_frame_rate_rounds_measured_rates():
    """Frames / seconds as measured is rounded to the rational it stands for."""
    assert clean_frame_rate(24.999999999999996) == 25.0
    assert clean_frame_rate(29.970029970029966) == 29.97003
    assert clean_frame_rate(1000 / 120) == 8.333333          # a gif's 120 ms frames
    assert clean_frame_rate(12.5) == 12.5


def test_an_empty_video_file_says_it_is_empty(session, tmp_path):
    """A 0-byte .mp4 is 'an empty file (0 bytes)', as LoadAudio says of an empty WAV (it said 'Invalid data found')."""
    (tmp_path / "in" / "empty.mp4").write_bytes(b"")
    error = _input_error(session, {"load": {"type": "video.LoadVideo", "inputs": {"video": "empty.mp4"}}}, "load")
    assert error.input == "video" and "empty.mp4 is an empty file (0 bytes)" in error.message
