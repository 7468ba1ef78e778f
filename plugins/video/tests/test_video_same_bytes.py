"""The same frames give the same mp4 / webm file in any process (README "Same frames, same bytes").

Each encode runs in its own Python process with a different MALLOC_PERTURB_ (glibc then fills freshly allocated
memory with another byte): libx264's macroblock-tree lookahead read uninitialised memory on 64×64 frames, so the
H.264 stream changed with it, and FFmpeg's Matroska muxer drew a random TrackUID for every webm.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ENCODE = """
import sys, torch
from nodegraph_video.video_io import write_video
frames = torch.zeros(8, 64, 64, 3)
frames[..., 2] = 0.8                                   # a red square gliding across a blue clip
for k in range(8):
    x = int(64 * (0.2 + 0.6 * k / 7))
    frames[k, 21:43, max(0, x - 10):x + 10, 0] = 1.0
write_video(sys.argv[1], frames, 8.0, sys.argv[2], quality=85, graph_json='{"format_version": 1}')
"""


def _encoder_missing(codec: str) -> bool:
    import av

    try:
        av.codec.Codec(codec, "w")
    except Exception:  # noqa: BLE001 — PyAV raises UnknownCodecError / ValueError by version
        return True
    return False


def _encode_in_a_new_process(path: Path, format: str, perturb: int) -> bytes:
    """The file write_video makes of the clip above, in a fresh interpreter whose new memory is filled with
    `perturb`."""
    env = {**os.environ, "MALLOC_PERTURB_": str(perturb)}
    subprocess.run([sys.executable, "-c", ENCODE, str(path), format], env=env, check=True, timeout=120)
    return path.read_bytes()


@pytest.mark.parametrize("format,codec", [("mp4", "libx264"), ("webm", "libvpx-vp9")])
def test_the_same_frames_give_the_same_bytes_in_any_process(tmp_path, format, codec):
    if _encoder_missing(codec):
        pytest.skip(f"this PyAV has no {codec} encoder")
    files = [_encode_in_a_new_process(tmp_path / f"clip{k}.{format}", format, perturb)
             for k, perturb in enumerate((1, 170, 33))]
    assert files[0] == files[1] == files[2]
    assert b"Lavf6" not in files[0]         # no library version written (bitexact): it changed with PyAV's FFmpeg
