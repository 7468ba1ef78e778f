"""LoadAudio reads the sound track of a video (MP4 / MKV / WebM / MOV) or an M4A file through PyAV.

A user's pass: LoadVideo gave frames only and LoadAudio refused an MP4 ("Format not recognised"), so a video's
sound could not be taken out, as ComfyUI's LoadAudio and VideoHelperSuite's Load Video do.
"""

from fractions import Fraction

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


def _multichannel(path, codec: str, channels: int, rate: int = 22050, seconds: float = 0.5) -> np.ndarray:
    """A sound-only MKV / MP4 whose channel k is a (k + 1) · 110 Hz sine at 0.1 · (k + 1) (each channel tells
    which it is); returns the (channels, samples) float32 signal as 16-bit samples / 32768 (FLAC keeps them)."""
    layout = {8: "7.1"}.get(channels, f"{channels} channels")
    t = np.arange(int(rate * seconds)) / rate
    signal = np.stack([0.1 * (k + 1) * np.sin(2 * np.pi * 110 * (k + 1) * t) for k in range(channels)])
    pcm = np.round(signal * 32767).astype(np.int16)
    out = av.open(str(path), "w")
    sound = out.add_stream(codec, rate=rate)
    sound.layout = layout
    # packed frames in, the resampler converts to the encoder's format (building a planar 8-channel frame from an
    # array goes through the same broken plane count as reading one)
    resampler = av.AudioResampler(format=sound.codec_context.format.name, layout=layout, rate=rate)
    for start in range(0, pcm.shape[1], 4096):
        chunk = np.ascontiguousarray(pcm[:, start:start + 4096].T).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)   # the muxer needs times
        for piece in resampler.resample(frame):
            for packet in sound.encode(piece):
                out.mux(packet)
    for piece in resampler.resample(None):
        for packet in sound.encode(piece):
            out.mux(packet)
    for packet in sound.encode(None):
        out.mux(packet)
    out.close()
    return pcm.astype(np.float32) / 32768


LOAD_IN_A_CHILD = """
import sys, numpy as np
from pathlib import Path
from nodegraph import Session
from nodegraph.errors import NodeExecutionError
folder, name = Path(sys.argv[1]), sys.argv[2]
session = Session(autoload=True, allow=["audio"], input_dir=folder, output_dir=folder / "out")
graph = {"format_version": 2, "nodes": {"load": {"type": "LoadAudio", "inputs": {"file": name}}}}
try:
    wave = session.run(graph, outputs=["load"]).outputs["load"]["audio"]["waveform"]
except NodeExecutionError as error:
    print(error)
    sys.exit(3)
np.save(folder / (name + ".npy"), wave.numpy())
"""


def _load_in_a_child(folder, name) -> np.ndarray | str:
    """LoadAudio in a separate Python process (a crash of the decoder fails the test instead of killing pytest):
    the waveform, or the error LoadAudio refused the file with."""
    import subprocess
    import sys

    child = subprocess.run([sys.executable, "-c", LOAD_IN_A_CHILD, str(folder), name], capture_output=True,
                           text=True, timeout=120)
    assert child.returncode in (0, 3), f"LoadAudio of {name} exited with {child.returncode}: {child.stderr[-2000:]}"
    return np.load(folder / (name + ".npy")) if child.returncode == 0 else child.stdout


def test_an_8_channel_sound_track_loads_sample_for_sample_without_crashing(tmp_path):
    """7.1 FLAC in MKV and 7.1 AAC in MP4: PyAV 18.1's to_ndarray() on an 8-channel planar frame crashed the
    process (exit 139, any 8-channel video); the lossless track now comes back sample for sample, in order."""
    (tmp_path / "in").mkdir()
    source = _multichannel(tmp_path / "in" / "surround.mkv", "flac", 8)
    wave = _load_in_a_child(tmp_path / "in", "surround.mkv")
    assert wave.shape == (1, 8, source.shape[1])
    np.testing.assert_array_equal(wave[0], source)                    # every channel in its place, exactly
    _multichannel(tmp_path / "in" / "surround.mp4", "aac", 8)
    wave = _load_in_a_child(tmp_path / "in", "surround.mp4")[0]
    assert wave.shape[0] == 8
    for channel, sound in enumerate(wave):                            # lossy: each channel's pitch and level
        if channel == 3:
            continue                    # 7.1's LFE: AAC keeps only its lowest band (the lossless FLAC checked it)
        spectrum = np.abs(np.fft.rfft(sound))
        assert abs(spectrum.argmax() * RATE / sound.size - 110 * (channel + 1)) < 5
        assert 0.07 * (channel + 1) < np.abs(sound).max() < 0.13 * (channel + 1) + 0.05


def test_a_sound_track_of_more_than_8_channels_is_refused_from_its_header(tmp_path):
    """10 channels (PCM in MKV): refused by name before a frame is decoded, not after building the waveform."""
    (tmp_path / "in").mkdir()
    _multichannel(tmp_path / "in" / "ten.mkv", "pcm_s16le", 10)
    message = _load_in_a_child(tmp_path / "in", "ten.mkv")          # it crashed the decoder as 8 channels did
    assert "ten.mkv's sound track has 10 channels, over the 8" in message
    assert "input 'file'" in message and "mix it down" in message


def _lying_webm(path, seconds: int) -> None:
    """A WebM holding `seconds` of Opus silence (one packet copied) whose Matroska header says it lasts 1 s:
    a decompression bomb in small (the tester's was 1.1 MB, 40 min, 2.1 GB decoded)."""
    import struct

    one = path.with_name("one.webm")
    out = av.open(str(one), "w")
    sound = out.add_stream("libopus", rate=48000)
    sound.layout = "stereo"
    resampler = av.AudioResampler(format=sound.codec_context.format.name, layout="stereo", rate=48000)
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 2 * 48000), np.float32), format="flt", layout="stereo")
    frame.sample_rate = 48000
    for piece in resampler.resample(frame):
        for packet in sound.encode(piece):
            out.mux(packet)
    for packet in sound.encode(None):
        out.mux(packet)
    out.close()
    with av.open(str(one)) as source:
        template = source.streams.audio[0]
        packet = [p for p in source.demux(template) if p.size > 0][5]
        data, step, time_base = bytes(packet), packet.duration, template.time_base
        with av.open(str(path), "w", format="webm") as out:
            stream = out.add_stream_from_template(template)
            for index in range(int(seconds / (step * time_base))):
                copy = av.Packet(data)
                copy.stream, copy.pts, copy.dts, copy.duration, copy.time_base = stream, index * step, index * step, \
                    step, time_base
                out.mux(copy)
    raw = bytearray(path.read_bytes())
    at = raw.find(b"\x44\x89\x88")                                   # Matroska Duration, an 8-byte float in ms
    assert at > 0
    raw[at + 3:at + 11] = struct.pack(">d", 1000.0)
    path.write_bytes(bytes(raw))


def test_a_track_longer_than_its_header_stops_decoding_at_the_sample_budget(tmp_path, monkeypatch):
    """A WebM declaring 1 s that holds 60 s: decoding stops once the samples kept pass the waveform budget (here
    lowered to 4 s of stereo) with the budget's message, instead of decoding all of it and refusing after."""
    import tracemalloc

    from nodegraph_audio import waveform

    (tmp_path / "in").mkdir()
    _lying_webm(tmp_path / "in" / "bomb.webm", 60)
    with av.open(str(tmp_path / "in" / "bomb.webm")) as check:
        assert check.duration <= 1_100_000                           # the header lies
    monkeypatch.setattr(waveform, "MAX_SAMPLES", 4 * 48000 * 2)
    session = Session(autoload=True, allow=["audio"], input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    graph = {"format_version": 2, "nodes": {"load": {"type": "LoadAudio", "inputs": {"file": "bomb.webm"}}}}
    tracemalloc.start()
    try:
        with pytest.raises(NodeExecutionError, match=r"over the 384,000 a waveform may hold") as caught:
            session.run(graph, outputs=["load"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"{peak / 2**20:.1f} MiB held: decoding went on past the budget"   # 60 s: 22 MiB × 2
    assert "input 'file'" in str(caught.value) and "its header said 1.0 s" in str(caught.value)


def test_a_track_longer_than_its_header_within_the_limits_loads_whole(tmp_path):
    """The same lie over 20 s with the budget as shipped: the buffer sized from the header grows and all 20 s
    come back (contiguous, one clip)."""
    (tmp_path / "in").mkdir()
    _lying_webm(tmp_path / "in" / "long.webm", 20)
    audio = _load(tmp_path, "long.webm")
    wave = audio["waveform"]
    assert wave.shape[:2] == (1, 2) and wave.is_contiguous()
    assert 19.5 < wave.shape[2] / 48000 < 20.5 and float(wave.abs().max()) < 1e-3


def test_the_decode_buffer_grows_and_is_trimmed_in_place():
    """grown keeps each channel's decoded samples in its wider row; trimmed gives the first `count` per channel,
    contiguous — both in the buffer's own memory (no second copy of the sound)."""
    from nodegraph_audio.waveform import grown, trimmed

    source = np.arange(30, dtype=np.float32).reshape(3, 10)
    buffer = source.copy()
    bigger = grown(buffer, 7, 12, 1000)
    assert bigger is buffer and bigger.shape == (3, 20)
    np.testing.assert_array_equal(bigger[:, :7], source[:, :7])
    assert grown(source.copy(), 10, 11, 15).shape == (3, 15)         # never past the limit
    np.testing.assert_array_equal(grown(source.copy(), 10, 11, 15)[:, :10], source)
    buffer = source.copy()
    kept = trimmed(buffer, 7)
    assert kept is buffer and kept.flags.c_contiguous and kept.flags.owndata
    np.testing.assert_array_equal(kept, source[:, :7])
    held = source.copy()
    assert trimmed(held, 10) is held
