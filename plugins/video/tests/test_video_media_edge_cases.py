"""Video edge cases a video / audio creator found (2026-12-07): sound at a rate AAC cannot code, very slow and
very fast clips, WebM / MKV rates read from whole-millisecond stamps, GIF frame times in centiseconds, AVI."""

from fractions import Fraction

import numpy as np
import pytest
import torch

from nodegraph import Session

av = pytest.importorskip("av")

from nodegraph_video import video_io  # noqa: E402


def _frames(count: int, size: int = 32) -> torch.Tensor:
    return torch.rand(count, size, size, 3, generator=torch.Generator().manual_seed(count))


def _mux(path, stamps_s: list[float], rate: Fraction, time_base: Fraction, fmt: str) -> None:
    """A clip whose frames are at `stamps_s` seconds, in a container of `fmt` (as another program writes it)."""
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream("mpeg4" if fmt == "avi" else "libx264", rate=rate)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = time_base
        for index, stamp in enumerate(stamps_s):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 40 * index % 256, np.uint8), format="rgb24")
            frame.pts, frame.time_base = round(stamp / time_base), time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _session(tmp_path, **nodes) -> Session:
    return Session(autoload=True, allow=["video"], input_dir=tmp_path, output_dir=tmp_path / "out")


@pytest.mark.parametrize("rate", [37800, 10000, 12345])
def test_sound_at_a_rate_aac_cannot_code_is_resampled_to_the_nearest_with_a_warning(tmp_path, rate):
    """SaveVideo mp4 with sound at 37,800 Hz (CD-ROM XA), 10,000 or 12,345 Hz failed with FFmpeg's bare
    `avcodec_open2("aac") returned 22`: the track is coded at the nearest AAC rate, and a warning names both."""
    from test_video_sound import _run, _sound_of

    result = _run(tmp_path, "mp4", {"waveform": 0.5 * torch.sin(torch.arange(rate) / rate * 2 * torch.pi * 440)
                                    .reshape(1, 1, -1), "sample_rate": rate})
    nearest = video_io.track_rate("mp4", rate)
    assert nearest in video_io.AAC_RATES and nearest != rate
    (warning,) = [w["message"] for w in result.warnings if "AAC" in w["message"]]
    assert f"{rate:,} Hz" in warning and f"{nearest:,} Hz" in warning and "ResampleAudio" in warning
    path = result.outputs["save"]["files"][0]["path"]
    sound, written, codec = _sound_of(path)
    assert (written, codec) == (nearest, "aac")
    assert sound.shape[-1] >= 0.9 * nearest and np.abs(sound).max() > 0.3      # the whole second, with its tone


def test_track_rate_picks_the_nearest_aac_rate_and_opus_48k():
    assert [video_io.track_rate("mp4", r) for r in (44100, 37800, 10000, 12345, 8000)] == [44100, 32000, 11025,
                                                                                            12000, 8000]
    assert video_io.track_rate("webm", 37800) == 48000


def test_a_very_slow_clip_reports_a_positive_rate_that_saves_back(tmp_path):
    """3 frames an hour apart read as fps 0.0 (`limit_denominator(1001)` rounded 1/3600 to 0), and SaveVideo then
    refused fps 0: the rate is kept (1/3600 fps) and SaveVideo writes that rate back."""
    _mux(tmp_path / "slow.mp4", [0.0, 3600.0, 7200.0], Fraction(1, 3600), Fraction(1, 16384), "mp4")
    clip = video_io.read_video(tmp_path / "slow.mp4")
    assert clip.fps > 0 and Fraction(clip.fps).limit_denominator(10**9) == Fraction(1, 3600)
    assert video_io.frame_rate_fraction(clip.fps) == Fraction(1, 3600)
    video_io.write_video(tmp_path / "again.mp4", clip.frames, clip.fps, "mp4")
    with av.open(str(tmp_path / "again.mp4")) as container:
        assert container.streams.video[0].average_rate == Fraction(1, 3600)


def test_clean_frame_rate_keeps_slow_rates_and_the_usual_ones():
    assert video_io.clean_frame_rate(1 / 3600) == 1 / 3600
    assert video_io.clean_frame_rate(24000 / 1001) == 23.976024 and video_io.clean_frame_rate(0.5) == 0.5
    assert video_io.frame_rate_fraction(video_io.clean_frame_rate(30000 / 1001)) == Fraction(30000, 1001)
    assert video_io.frame_rate_fraction(1 / 7200.5) == Fraction(2, 14401)


@pytest.mark.parametrize("fmt,rate", [("webm", Fraction(24000, 1001)), ("webm", Fraction(30000, 1001)),
                                      ("webm", Fraction(60)), ("mkv", Fraction(30000, 1001)),
                                      ("mkv", Fraction(300))])
def test_webm_and_mkv_rates_read_back_exactly(tmp_path, fmt, rate):
    """Matroska stamps are whole milliseconds: SaveVideo's own 24000/1001 WebM read back as 23.983012 and was
    re-saved at that rate (an MKV at 29.97 as 4225/141). Evenly spaced frames now give the stream's own rate,
    and a re-save writes the same rational."""
    if fmt == "webm":
        video_io.write_video(tmp_path / "clip.webm", _frames(24), float(rate), "webm")
    else:
        _mux(tmp_path / "clip.mkv", [k / rate for k in range(24)], rate, Fraction(1, 1000), "matroska")
    clip = video_io.read_video(tmp_path / f"clip.{fmt}")
    assert video_io.frame_rate_fraction(clip.fps) == rate, clip.fps
    assert not clip.uneven_durations
    video_io.write_video(tmp_path / "again.mp4", clip.frames, clip.fps, "mp4")
    with av.open(str(tmp_path / "again.mp4")) as container:
        assert container.streams.video[0].average_rate == rate


def test_a_variable_rate_mkv_still_reads_its_own_times(tmp_path):
    """Only evenly spaced frames take the stream's rate: a VFR clip keeps its measured times and its warning."""
    _mux(tmp_path / "vfr.mkv", [0.0, 0.04, 0.08, 0.5, 0.54], Fraction(25), Fraction(1, 1000), "matroska")
    clip = video_io.read_video(tmp_path / "vfr.mkv")
    assert clip.uneven_durations


def test_a_1000_fps_clip_goes_from_load_video_to_save_video(tmp_path):
    """A 1000 fps source (a high-speed camera) was refused by SaveVideo's (and LoadVideo's) fps ≤ 240."""
    video_io.write_video(tmp_path / "fast.mp4", _frames(20), 1000.0, "mp4")
    session = _session(tmp_path)
    result = session.run({"format_version": 2, "nodes": {
        "load": {"type": "LoadVideo", "inputs": {"video": "fast.mp4"}},
        "save": {"type": "SaveVideo", "inputs": {"images": {"node": "load", "output": "images"},
                                                 "fps": {"node": "load", "output": "fps"}, "filename_prefix": "f"}}}})
    assert result.outputs["save"]["files"][0]["fps"] == 1000.0


@pytest.mark.parametrize("fps", [60.0, 30000 / 1001, 24000 / 1001, 12.0, 8.0])
def test_a_gif_keeps_the_clip_length_within_a_centisecond(tmp_path, fps):
    """GIF delays are whole centiseconds, and one delay for every frame made 60 fps play as 50 (1.2 s for 1.0 s)
    and 29.97 as 33.33: the delays now alternate so the clip ends within 10 ms of frames / fps."""
    from PIL import Image

    frames = 60
    video_io.write_video(tmp_path / "clip.gif", _frames(frames), fps, "gif")
    with Image.open(tmp_path / "clip.gif") as image:
        delays = []
        for index in range(image.n_frames):
            image.seek(index)
            delays.append(image.info["duration"])
    assert len(delays) == frames and abs(sum(delays) / 1000 - frames / fps) <= 0.005 + 1e-9
    assert abs(video_io.written_fps(fps, "gif", frames) - fps) / fps < 0.01
    clip = video_io.read_video(tmp_path / "clip.gif")      # its own alternating delays are not "uneven"
    assert not clip.uneven_durations and abs(clip.fps - fps) / fps < 0.01


def test_load_video_reads_avi(tmp_path):
    """LoadAudio read an .avi's sound while LoadVideo refused the file: both read it now."""
    _mux(tmp_path / "clip.avi", [k / 10 for k in range(5)], Fraction(10), Fraction(1, 10), "avi")
    clip = video_io.read_video(tmp_path / "clip.avi")
    assert clip.frames.shape[0] == 5 and clip.fps == 10.0
