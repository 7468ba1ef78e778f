"""LoadAudio reads the sound track of a video (MP4 / MKV / WebM / MOV) or an M4A file through PyAV.

A user's pass: LoadVideo gave frames only and LoadAudio refused an MP4 ("Format not recognised"), so a video's
sound could not be taken out, as ComfyUI's LoadAudio and VideoHelperSuite's Load Video do.
"""

import numpy as np
import pytest

from nodegraph import Session
from nodegraph.errors import NodeExecutionError

av = pytest.importorskip("av")
RATE = 22050


def _video(path, seconds=1.0, audio=True, container="mp4", video_codec="mpeg4", audio_codec="aac"):
    """A 32×32 clip with a stereo sound track: 440 Hz at 0.5 on the left, 880 Hz at 0.25 on the right."""
    out = av.open(str(path), "w")
    video = out.add_stream(video_codec, rate=8)
    video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
    sound = out.add_stream(audio_codec, rate=RATE) if audio else None
    if sound is not None:
        sound.layout = "stereo"
    for index in range(int(8 * seconds)):
        frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), index * 20 % 256, np.uint8), format="rgb24")
        for packet in video.encode(frame):
            out.mux(packet)
    if sound is not None:
        t = np.arange(int(RATE * seconds)) / RATE
        data = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 880 * t)]).astype(np.float32)
        for start in range(0, data.shape[1], 1024):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, start:start + 1024]), format="fltp",
                                               layout="stereo")
            chunk.sample_rate = RATE
            for packet in sound.encode(chunk):
                out.mux(packet)
        for packet in sound.encode(None):
            out.mux(packet)
    for packet in video.encode(None):
        out.mux(packet)
    out.close()


def _load(tmp_path, name, **inputs):
    session = Session(autoload=True, allow=["audio"], input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    graph = {"format_version": 2, "nodes": {"load": {"type": "LoadAudio", "inputs": {"file": name, **inputs}}}}
    return session.run(graph, outputs=["load"]).outputs["load"]["audio"]


def test_the_sound_of_an_mp4_loads_with_its_rate_and_channel_order(tmp_path):
    (tmp_path / "in").mkdir()
    _video(tmp_path / "in" / "clip.mp4")
    audio = _load(tmp_path, "clip.mp4")
    wave = audio["waveform"]
    assert audio["sample_rate"] == RATE and wave.shape[:2] == (1, 2)
    assert RATE <= wave.shape[2] <= RATE + 4096                  # AAC's encoder delay and last frame's padding
    left, right = wave[0, 0].abs().max().item(), wave[0, 1].abs().max().item()
    assert 0.45 < left < 0.55 and 0.2 < right < 0.3               # left stays left
    spectrum = np.abs(np.fft.rfft(wave[0, 1].numpy()))
    peak_hz = spectrum.argmax() * RATE / wave.shape[2]
    assert abs(peak_hz - 880) < 5


def test_a_video_without_sound_or_too_long_is_refused_by_name(tmp_path):
    (tmp_path / "in").mkdir()
    _video(tmp_path / "in" / "silent.mp4", audio=False)
    with pytest.raises(NodeExecutionError, match="silent.mp4 has no sound track"):
        _load(tmp_path, "silent.mp4")
    _video(tmp_path / "in" / "long.mp4", seconds=2.0)
    with pytest.raises(NodeExecutionError, match=r"long.mp4's sound is 2\.\d s long, over the limit of 1 s"):
        _load(tmp_path, "long.mp4", max_seconds=1.0)
    (tmp_path / "in" / "junk.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x9f" * 200)
    with pytest.raises(NodeExecutionError, match="junk.mp4 is not a readable video or audio file"):
        _load(tmp_path, "junk.mp4")
