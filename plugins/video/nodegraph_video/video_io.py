"""Video files in and out: MP4 (H.264) and WebM (VP9) through PyAV, animated GIF and WebP through Pillow.

    read_video(path, fps=0, start_frame=0, max_frames=64, max_pixels=...) -> VideoClip
        frames (F, H, W, 3) float32 in [0, 1], the source and output frame rates, the graph if embedded
    clean_frame_rate(rate) -> float
        a measured rate as its exact rational (denominator <= 1001) rounded to 6 decimals: 25.0, 29.97003
    write_video(path, frames, fps, format, quality=..., graph_json=None)
        writes a temporary file beside `path` and renames it onto `path` (nothing half-written is left)
    FORMATS: the writable formats, with their codec, extension and where the graph goes

Frame-rate conversion picks, for output frame k (time k / fps), the source frame shown at that time
(nearest earlier), so lowering the rate drops frames and raising it repeats them; no blending. Output times
run to the clip's end (the last frame's start plus its duration): 1.2 s at 25 fps is 30 frames.
A clip stored turned (a phone's portrait video: landscape frames plus a display rotation in the container) is
read upright, as players show it (`display_rotation`).
The graph (JSON) is stored where the container has a text field: MP4 / WebM "comment" metadata,
the GIF comment extension; animated WebP has none Pillow can write, so none is stored there.

Errors are VideoFileError(ValueError) with ``input`` naming the node input at fault.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nodegraph.errors import NodeOutOfMemory, RunInterrupted

READABLE = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".gif", ".webp")   # LoadAudio reads the sound of all but gif / webp
FORMATS: dict[str, dict] = {
    "mp4": {"suffix": ".mp4", "codec": "libx264", "mime": "video/mp4", "graph": "comment metadata"},
    "webm": {"suffix": ".webm", "codec": "libvpx-vp9", "mime": "video/webm", "graph": "comment metadata"},
    "gif": {"suffix": ".gif", "codec": None, "mime": "image/gif", "graph": "GIF comment"},
    "webp": {"suffix": ".webp", "codec": None, "mime": "image/webp", "graph": None},
}
INTERRUPT_EVERY = 16               # decoded frames between looks at whether the run was asked to stop
MAX_PIXELS = 16384 * 16384         # frames × height × width loaded at most: as an IMAGE may hold (3.2 GB float32 RGB)


class VideoFileError(ValueError):
    """A video file that cannot be read or written; ``input`` names the node input at fault."""

    def __init__(self, input: str, message: str):
        self.input = input
        super().__init__(message)


@dataclass
class VideoClip:
    """Decoded frames (F, H, W, 3) float32 in [0, 1], the source's frame rate and the output rate, metadata."""

    frames: torch.Tensor
    source_fps: float
    fps: float
    source_frames: int | None        # frames decoded (decoding stops once the requested frames are read)
    graph_json: str | None = None
    frames_left: bool = False        # the file goes on past the last frame loaded (max_frames stopped it)
    file_frames: int | None = None   # the file's frame count when it goes on (None: the container does not say)
    uneven_durations: bool = False   # the source's frames last different times (fps 0 plays them evenly)
    transparent: bool = False        # the source has transparent pixels (dropped: frames are RGB)
    rotation: int = 0                # degrees clockwise the stored frames were turned to stand upright (phones)


def _pick(times_source: list[float], fps: float, count_limit: int, start: int, end: float) -> list[int]:
    """Indices of source frames shown at output times start_time + k / fps (nearest earlier frame), for the
    times before `end` (the last frame's start plus its duration: that frame is on screen until then)."""
    if not times_source:
        return []
    base = times_source[min(start, len(times_source) - 1)]
    picked, k, j = [], 0, start
    while len(picked) < count_limit:
        t = base + k / fps
        if not _before_end(t, end):
            break
        while j + 1 < len(times_source) and times_source[j + 1] <= t + 1e-6:
            j += 1
        picked.append(j)
        k += 1
    return picked


def _before_end(time: float, end: float) -> bool:
    """Whether an output frame at `time` falls inside a clip ending at `end` (a frame exactly at the end does not:
    1.2 s at 25 fps is the 30 frames at 0, 0.04, ... 1.16 s)."""
    return time < end - 1e-6


def _shown_at(time: float, next_time: float, base: float, fps: float, count: int) -> bool:
    """Whether `_pick` (output times base + k / fps, k < count) would pick the source frame shown from `time` until
    `next_time`: the decoders drop the frames it will not, so a resampled read keeps at most `count` + 1 of them."""
    slack = 1e-7          # kept when in doubt: `_pick` compares the times with a tolerance of 1e-6
    k = max(0, math.floor((time - base) * fps) - 1)
    while k < count:
        shown = base + k / fps
        if not shown + 1e-6 < next_time + slack:
            return False
        if shown + 1e-6 >= time - slack:
            return True
        k += 1
    return False


class _KeptFrames:
    """The frames a decoder keeps, bounded while it decodes (not after): frames before `start` are counted, not
    kept (but the first, for its size); a resampled read (`fps` > 0) drops each frame `_pick` will not pick once
    the next one's time is known; more kept frames than `max_pixels` allows is refused at once (a few-KB GIF of
    300 2048×2048 frames decoded 3 GB before the check on what was picked)."""

    def __init__(self, start: int, fps: float, count: int, max_pixels: int, ask_memory: bool = False,
                 check: Any = None):
        self.start, self.fps, self.count, self.max_pixels = start, fps, count, max_pixels
        self.ask_memory = ask_memory          # read_video: ask for the free memory once the frame size is known
        self.check = check                    # called every INTERRUPT_EVERY frames (raises to stop the read)
        self.images: list[np.ndarray | None] = []
        self.times: list[float] = []
        self.kept = 0

    def add(self, time: float, decode: Any) -> None:
        """Frame number len(images), shown from `time` (seconds from the first frame); `decode()` gives its pixels."""
        index = len(self.images)
        if self.check is not None and index % INTERRUPT_EVERY == 0:
            self.check()
        previous = index - 1
        if self.fps > 0 and previous > self.start and self.images[previous] is not None and not _shown_at(
                self.times[previous], time, self.times[self.start], self.fps, self.count):
            self.images[previous] = None
            self.kept -= 1
        keep = index >= self.start or index == 0
        image = decode() if keep else None
        self.images.append(image)
        self.times.append(time)
        if image is not None and index >= self.start:
            self.kept += 1
            height, width = image.shape[:2]
            allowed = max(1, self.max_pixels // max(1, width * height))
            if self.kept == 1 and self.ask_memory:     # the frames it may keep (uint8) and the float IMAGE of them
                from nodegraph.memory import ensure_free

                frames = min(self.count, allowed) + 1
                ensure_free(frames * height * width * 3 * (1 + 4), f"the video's frames (up to {frames} of "
                                                                  f"{width}×{height})")
            if self.kept > allowed + 1:     # one more than is picked is kept (the last frame's duration)
                raise VideoFileError("max_frames", f"more than {allowed} frames of {width}×{height} is more than this "
                                                   f"node loads at once ({allowed} frames at this size); lower "
                                                   f"max_frames")


def frame_rate_fraction(rate: float) -> Fraction:
    """The rational a frame rate stands for: a rate with a denominator of at most 1001 (25, 30000/1001), or, for a
    clip slower than that can hold (one frame an hour: 1/3600 fps, which `limit_denominator(1001)` rounded to 0),
    one over a frame time with a denominator of at most 1001 (1/3600, 1001/2002). Whichever is nearer; never 0."""
    per_second = Fraction(rate).limit_denominator(1001)
    per_frame = 1 / Fraction(1 / rate).limit_denominator(1001)
    return per_second if per_second and abs(per_second - Fraction(rate)) <= abs(per_frame - Fraction(rate)) \
        else per_frame


def clean_frame_rate(rate: float) -> float:
    """A rate measured as frames / seconds (24.999999999999996, 29.970029970029966) as the rational it stands for
    (frame_rate_fraction: 25, 30000/1001), as a float rounded to 6 decimals (25.0, 29.97003): clean to read, and
    SaveVideo's own `frame_rate_fraction` turns it back into the same rational. A rate under 1 fps is kept whole
    (1/3600 fps as 0.0002777…: 6 decimals would turn it into another rate, or 0)."""
    exact = frame_rate_fraction(rate)
    return round(float(exact), 6) if exact >= 1 else float(exact)


def read_video(path: str | os.PathLike, *, fps: float = 0.0, start_frame: int = 0, max_frames: int = 64,
               max_pixels: int = MAX_PIXELS, check_interrupted: Any = None) -> VideoClip:
    """Decode a video file (see READABLE) into frames; `fps` 0 keeps the source rate. `check_interrupted` (a
    node's `context.check_interrupted`) is called every INTERRUPT_EVERY decoded frames: a 3,000-frame GIF read
    from frame 2,990 took 80 s to stop."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in READABLE:
        raise VideoFileError("video", f"{path.name}: unsupported file type {suffix or '(none)'}; LoadVideo reads "
                                      f"{', '.join(READABLE)}")
    if path.is_file() and path.stat().st_size == 0:
        raise VideoFileError("video", f"{path.name} is an empty file (0 bytes) and holds no frames; give an "
                                      f"{', '.join(s.lstrip('.') for s in READABLE)} file with video in it")
    try:
        # decode only what is needed: the frames up to start + max_frames (at the source rate), or up to the
        # time the last output frame is shown (resampled) — long files are never decoded whole
        limit = start_frame + max_frames if fps <= 0 else None
        kept = _KeptFrames(start_frame, fps, max_frames, max_pixels, ask_memory=True, check=check_interrupted)
        rotation = 0
        if suffix in (".gif", ".webp"):
            images, durations, graph, transparent = _read_pillow(path, limit, start_frame,
                                                                 max_frames / fps if fps > 0 else None, kept)
        else:
            images, durations, graph, rotation = _read_av(path, limit, start_frame,
                                                          max_frames / fps if fps > 0 else None, kept)
            transparent = False
    except (VideoFileError, NodeOutOfMemory, RunInterrupted):
        raise
    except Exception as exc:  # noqa: BLE001 — any decoder failure means the file is corrupt or not a video
        raise VideoFileError("video", f"{path.name} is not a readable video ({type(exc).__name__}: {exc}); "
                                      f"check the file, or re-encode it as mp4 / webm / gif") from None
    if not images:
        raise VideoFileError("video", f"{path.name} has no video frames")
    if start_frame >= len(images):
        raise VideoFileError("start_frame", f"{path.name} has {len(images)} frames; start_frame {start_frame} is past "
                                            f"the end (use 0 … {len(images) - 1})")
    times = np.cumsum([0.0, *durations[:-1]]).tolist()
    total = float(sum(durations))
    source_fps = clean_frame_rate(len(images) / total) if total > 0 else 24.0
    out_fps = fps if fps > 0 else source_fps
    indices = _pick(times, out_fps, max_frames, start_frame, total) if fps > 0 else \
        list(range(start_frame, min(len(images), start_frame + max_frames)))
    if any(images[index] is None for index in indices):      # the decoders keep what _pick picks (tested)
        raise RuntimeError(f"{path.name}: a frame to show was dropped while decoding (a nodegraph bug)")
    height, width = images[0].shape[:2]      # the first frame is always kept, for its size
    if len(indices) * height * width > max_pixels:
        raise VideoFileError("max_frames", f"{len(indices)} frames of {width}×{height} is more than this node loads at "
                                           f"once ({max_pixels // (width * height)} frames at this size); lower "
                                           f"max_frames")
    # filled frame by frame and scaled in place: a stacked uint8 copy and a second float tensor for `/ 255`
    # doubled the peak (a 3.2 GB IMAGE at the cap peaked at 7.2 GB)
    frames = torch.empty((len(indices), *images[0].shape), dtype=torch.float32)
    rows = frames.numpy()       # the same memory; numpy converts the decoded uint8 frames as it writes them (a
    for row, index in enumerate(indices):     # torch view of a read-only decoded frame warned "not writable")
        rows[row] = images[index]
    frames.div_(255.0)
    if fps > 0:     # resampled: another output frame would still fall inside the decoded source
        frames_left = len(indices) == max_frames and _before_end(times[start_frame] + max_frames / fps, total)
    else:           # decoding reads one frame past start + max_frames when the file has it
        frames_left = start_frame + max_frames < len(images)
    shown = [durations[i] for i in indices]   # uneven beyond the file's tick (SaveVideo's 60 fps gif: 20, 10 ms)
    uneven = fps <= 0 and len(indices) > 1 and max(shown) > 1.5 * min(shown) and \
        max(shown) - min(shown) > FRAME_TICK_MS.get(suffix.lstrip("."), 0) / 1000 + 1e-9
    return VideoClip(frames=frames, source_fps=source_fps, fps=out_fps, source_frames=len(images), graph_json=graph,
                     frames_left=frames_left, file_frames=count_frames(path) if frames_left else None,
                     uneven_durations=uneven, transparent=transparent, rotation=rotation)


def count_frames(path: str | os.PathLike) -> int | None:
    """The number of frames a video file holds, as its container states it (None when it does not)."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".gif", ".webp"):
            from PIL import Image

            with Image.open(path) as image:
                return int(getattr(image, "n_frames", 1))
        import av

        with av.open(str(path)) as container:
            count = int(container.streams.video[0].frames or 0)
            return count or None
    except Exception:  # noqa: BLE001 — only for a message; the frames were read already
        return None


def display_rotation(frame: Any, rotate_tag: str | None = None) -> int:
    """Degrees clockwise (0, 90, 180 or 270) a decoded frame is turned to stand as players show it.

    Phones record portrait video as landscape frames plus a display matrix in the container (MP4 `tkhd`); PyAV
    gives its angle as `frame.rotation`, counter-clockwise (a portrait phone clip says -90: turn it 90°
    clockwise, as Chromium does). Files from older muxers carry a "rotate" tag instead (clockwise degrees), read
    when the frame has no rotation. Rounded to a quarter turn (a display matrix may hold any angle; players
    turn by quarters too)."""
    counter_clockwise = _degrees(getattr(frame, "rotation", 0))
    clockwise = -counter_clockwise if counter_clockwise else _degrees(rotate_tag)
    return round(clockwise / 90) % 4 * 90


def _degrees(value: Any) -> float:
    """An angle as a finite float; 0.0 (nothing to turn) for none, a tag that is not a number, or one that is not
    finite — "nan", "inf", "1e400", or FFmpeg's NaN for a degenerate display matrix: players ignore them, and
    round() of them raised, so LoadVideo called a playable clip "not a readable video"."""
    try:
        degrees = float(value or 0)
    except (TypeError, ValueError):
        return 0.0
    return degrees if math.isfinite(degrees) else 0.0


def upright(pixels: np.ndarray, clockwise: int) -> np.ndarray:
    """(H, W, 3) pixels turned `clockwise` degrees (a multiple of 90): np.rot90 turns counter-clockwise for k > 0."""
    return np.ascontiguousarray(np.rot90(pixels, -(clockwise // 90))) if clockwise else pixels


def _read_av(path: Path, limit: int | None = None, start: int = 0, span: float | None = None,
             kept: _KeptFrames | None = None) -> tuple[list[np.ndarray | None], list[float], str | None, int]:
    """Frames (None for those before `start` but the first, and those `kept` drops), their durations, the
    comment metadata and the rotation turned (degrees clockwise, `display_rotation`: frames come out upright);
    stops after `limit` frames or `span` s past frame `start`."""
    import av

    kept = kept or _KeptFrames(start, 0.0, limit or 1 << 30, 1 << 62)

    with av.open(str(path)) as container:
        streams = container.streams.video
        if not streams:
            raise VideoFileError("video", f"{path.name} has no video stream")
        stream = streams[0]
        rate = float(stream.average_rate or stream.base_rate or 24)
        stamps: list[float] = []
        shown_from = 0.0      # the frame's time as read_video reckons it: the durations before it, summed in order
        rotate_tag = {k.lower(): v for k, v in stream.metadata.items()}.get("rotate")
        rotation = 0          # the first frame's: every frame is turned alike (read_video stacks them)
        for frame in container.decode(stream):
            if not stamps:
                rotation = display_rotation(frame, rotate_tag)
            stamp = float(frame.time) if frame.time is not None else len(stamps) / rate
            if span is not None and len(stamps) > start and stamp > stamps[start] + span + 1.0 / rate:
                break
            if stamps:
                shown_from += max(1e-3, stamp - stamps[-1])
            # frames before `start` are counted, not kept (a 1080p clip from frame 2000 held 12 GB of them)
            kept.add(shown_from, lambda frame=frame: upright(frame.to_ndarray(format="rgb24"), rotation))
            stamps.append(stamp)
            if limit is not None and len(stamps) >= limit + 1:   # one more, for the last frame's duration
                break
        graph = {k.lower(): v for k, v in container.metadata.items()}.get("comment")
        even = even_rate(stamps, (stream.average_rate, stream.guessed_rate, stream.base_rate),
                         float(stream.time_base or 0))
    # the stream's own rate: WebM / MKV stamps are whole ms (24000/1001 read as 23.983); not when resampling, where
    # `kept` dropped frames by the stamps as read (the output rate is the one asked for then)
    if even is not None and kept.fps <= 0:
        return kept.images, [float(1 / even)] * len(stamps), graph, rotation
    durations = [max(1e-3, b - a) for a, b in zip(stamps, stamps[1:])] + [1.0 / rate] if stamps else []
    return kept.images, durations, graph, rotation


def even_rate(stamps: list[float], rates: tuple[Any, ...], tick: float) -> Fraction | None:
    """The first of the stream's stated `rates` (average, guessed, base) whose frame grid every stamp lies on, to
    within one tick of the time base (Matroska / WebM store whole milliseconds, so a 24000/1001 clip's frames last
    41 or 42 ms); a 1001 rate (30000/1001) before a rounded one (2997/100, FFmpeg's guess for such an MKV) that
    fits as well (NTSC rates are 1001 ones; an integer rate is taken as it is). None when none fits (a clip with
    uneven frame times)."""
    if len(stamps) < 2:
        return None
    tolerance = tick + 1e-9
    for stated in rates:
        if not stated or stated <= 0:
            continue
        stated = Fraction(stated)
        ntsc = Fraction(round(stated * Fraction(1001, 1000)) * 1000, 1001)
        near = stated.denominator > 1 and ntsc != stated and abs(ntsc - stated) < stated / 10_000
        for rate in (ntsc, stated) if near else (stated,):
            if rate > 0 and all(abs(stamp - stamps[0] - k / rate) <= tolerance for k, stamp in enumerate(stamps)):
                return rate
    return None


def _read_pillow(path: Path, limit: int | None = None, start: int = 0, span: float | None = None,
                 kept: _KeptFrames | None = None) -> tuple[list[np.ndarray | None], list[float], str | None, bool]:
    """As _read_av, for animated GIF / WebP; also whether any frame has transparent pixels (dropped here)."""
    from PIL import Image, ImageSequence

    kept = kept or _KeptFrames(start, 0.0, limit or 1 << 30, 1 << 62)
    transparent = False
    with Image.open(path) as image:
        graph = image.info.get("comment")
        durations: list[float] = []
        shown_from = 0.0          # the frame's time: the durations before it, summed in order (as np.cumsum does)
        for frame in ImageSequence.Iterator(image):
            if not transparent and (frame.mode in ("RGBA", "LA", "PA") or "transparency" in frame.info):
                alpha = frame.convert("RGBA").getchannel("A")
                transparent = alpha.getextrema()[0] < 255
            kept.add(shown_from, lambda frame=frame: np.asarray(frame.convert("RGB")))
            durations.append(max(0.01, float(frame.info.get("duration", 100) or 100) / 1000.0))
            shown_from += durations[-1]
            if limit is not None and len(durations) >= limit + 1:
                break
            if span is not None and len(durations) > start and sum(durations[start:]) > span + durations[-1]:
                break
    if isinstance(graph, bytes):
        graph = graph.decode("utf-8", "replace")
    return kept.images, durations, graph, transparent


def _as_uint8(frames: torch.Tensor) -> np.ndarray:
    return (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def write_video(path: str | os.PathLike, frames: torch.Tensor, fps: float, format: str, *, quality: int = 80,
                graph_json: str | None = None, sound: tuple[np.ndarray, int] | None = None) -> None:
    """Write frames (F, H, W, 3) in [0, 1] to `path` in `format` (FORMATS), atomically (temp file, then rename).
    `sound` ((channels, samples) float32 in [-1, 1], sample rate), mp4 / webm only, becomes the file's sound
    track (AAC / Opus), cut to the frames' duration (`sound_track`)."""
    if format not in FORMATS:
        raise VideoFileError("format", f"expected one of {', '.join(FORMATS)}, found {format!r}")
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{os.urandom(4).hex()}.tmp{path.suffix}")
    pixels = _as_uint8(frames)
    try:
        if format in ("gif", "webp"):
            if sound is not None:
                raise VideoFileError("audio", f"a {format} file holds no sound; save as mp4 or webm to keep it")
            _write_pillow(tmp, pixels, fps, format, quality, graph_json)
        else:
            _write_av(tmp, pixels, fps, format, quality, graph_json, sound)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


AUDIO_CODECS = {"mp4": "aac", "webm": "libopus"}       # the sound track's codec in each container
OPUS_RATE = 48000                                       # Opus encodes at 48 kHz: other rates are resampled
# The rates FFmpeg's AAC encoder opens at (the MPEG-4 sampling frequency table); another (37,800 Hz, CD-ROM XA)
# failed with a bare `avcodec_open2("aac") returned 22`, so a sound at another rate is resampled to the nearest
AAC_RATES = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)


def track_rate(format: str, rate: int) -> int:
    """The sample rate a sound at `rate` is coded at in a `format` file: Opus always 48 kHz; AAC the nearest of
    AAC_RATES (the higher of two as near); `_mux_sound` resamples to it."""
    if AUDIO_CODECS[format] == "libopus":
        return OPUS_RATE
    return min(AAC_RATES, key=lambda allowed: (abs(allowed - rate), -allowed))


def sound_length(samples: int, rate: int, seconds: float) -> int:
    """How many of a sound's `samples` (per channel) its track keeps: those of `seconds` (a longer sound stops with
    the picture, as ffmpeg's -shortest); a shorter sound is kept whole (the picture goes on silent)."""
    return min(samples, max(1, round(seconds * rate)))


def sound_track(waveform: np.ndarray, rate: int, seconds: float) -> np.ndarray:
    """(channels, samples) cut to `seconds` (sound_length) and clipped to [-1, 1] (AAC / Opus code full scale;
    SaveVideo warns when that clips)."""
    return np.clip(waveform[:, :sound_length(waveform.shape[-1], rate, seconds)], -1.0, 1.0).astype(np.float32)


def _sound_stream(container: Any, format: str, sound: tuple[np.ndarray, int]) -> Any:
    """Add the sound track's stream (before anything is muxed: the container's header names every stream)."""
    data, rate = sound
    stream = container.add_stream(AUDIO_CODECS[format], rate=track_rate(format, rate))
    stream.layout = "mono" if data.shape[0] == 1 else "stereo"
    return stream


def _mux_sound(container: Any, stream: Any, sound: tuple[np.ndarray, int]) -> None:
    """Encode (channels, samples) at its rate into `stream` (resampled to the encoder's format and rate)."""
    import av

    data, rate = sound
    layout = "mono" if data.shape[0] == 1 else "stereo"
    resampler = av.AudioResampler(format=stream.codec_context.format.name, layout=layout, rate=stream.rate)
    size = 1024
    for start in range(0, data.shape[1], size):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, start:start + size]), format="fltp",
                                           layout=layout)
        frame.sample_rate = rate
        frame.pts, frame.time_base = start, Fraction(1, rate)     # the resampler and encoder rebase from these
        for piece in resampler.resample(frame):
            for packet in stream.encode(piece):
                container.mux(packet)
    for piece in resampler.resample(None):
        for packet in stream.encode(piece):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


# The same frames give the same file, run after run (README "Same frames, same bytes"):
# - libx264's macroblock-tree rate control (its B-frame lookahead) reads uninitialised memory in its SIMD code on
#   small frames (64×64 here): MALLOC_PERTURB_ alone changed the H.264 stream. mbtree=0 keeps B-frames and
#   stops it, for a few % more bytes at the same crf.
# - FFmpeg's muxers draw a random Matroska TrackUID and write the library's "Lavf…" version unless bitexact.
X264_OPTIONS = {"x264-params": "mbtree=0"}
BITEXACT_CONTAINER = {"fflags": "+bitexact"}


def _write_av(path: Path, pixels: np.ndarray, fps: float, format: str, quality: int, graph_json: str | None,
              sound: tuple[np.ndarray, int] | None = None) -> None:
    import av

    height, width = pixels.shape[1:3]
    if height % 2 or width % 2:   # 4:2:0 chroma needs even sizes: repeat the last row / column
        pixels = np.pad(pixels, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    rate = frame_rate_fraction(fps)
    crf = round(51 - quality * 0.33) if format == "mp4" else round(63 - quality * 0.5)   # quality 80 → crf 25 / 23
    with av.open(str(path), mode="w", format=format, container_options=BITEXACT_CONTAINER) as container:
        stream = container.add_stream(FORMATS[format]["codec"], rate=rate)
        stream.width, stream.height = pixels.shape[2], pixels.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), **X264_OPTIONS} if format == "mp4" else {"crf": str(crf), "b:v": "0"}
        if graph_json:
            container.metadata["comment"] = graph_json
        sound_stream = _sound_stream(container, format, sound) if sound is not None else None
        for image in pixels:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if sound_stream is not None:
            _mux_sound(container, sound_stream, sound)


FRAME_TICK_MS = {"gif": 10, "webp": 1}      # the unit of a frame's time: GIF delays are centiseconds, WebP's ms


def frame_milliseconds(count: int, fps: float, format: str) -> list[int]:
    """How long each of `count` frames lasts in a gif (whole centiseconds, at least 10 ms) or webp (whole ms):
    frame k ends at the tick nearest (k + 1) / fps, so the times alternate (60 fps: 20, 10, 20, ... ms; 29.97:
    30, 40, 30, ...) and the clip keeps its length to a tick; one time for every frame (60 fps as 20 ms) made a
    clip up to 20 % longer or shorter. Faster than a tick per frame, each frame lasts one tick."""
    tick = FRAME_TICK_MS[format]
    ticks_per_frame = 1000 / fps / tick
    if ticks_per_frame <= 1:
        return [tick] * count
    ends = [round((k + 1) * ticks_per_frame) for k in range(count)]
    return [(end - start) * tick for start, end in zip([0, *ends[:-1]], ends)]


def written_fps(fps: float, format: str, count: int = 1) -> float:
    """The frame rate a file of `format` with `count` frames really plays at when asked for `fps`: frames / its
    length (gif / webp store frame times in ticks: frame_milliseconds); `fps` itself for mp4 / webm."""
    if format not in FRAME_TICK_MS:
        return fps
    return 1000 * count / sum(frame_milliseconds(count, fps, format))


def gif_frames(pixels: np.ndarray) -> list:
    """Palette images for a GIF that keeps every frame: Pillow merges a frame identical to the one before
    into it (summing their times), so a still stretch would be written as one long frame and read back as
    fewer frames. Each frame gets an adaptive palette of 255 colours plus entry 255 = the colour of its
    top-left pixel; in a run of identical frames that pixel alternates between its own index and 255 —
    the same colour, different bytes — so each frame is written (as a 1×1 update)."""
    from PIL import Image

    out, previous = [], None
    for array in pixels:
        image = Image.fromarray(array).convert("P", palette=Image.Palette.ADAPTIVE, colors=255)
        palette = (image.getpalette() or [])[:765]
        palette += [0] * (765 - len(palette))
        own = image.getpixel((0, 0))
        image.putpalette(palette + palette[3 * own:3 * own + 3])
        key = (image.tobytes(), bytes(image.getpalette()))
        if previous is not None and key == previous[0]:
            image = out[-1].copy()
            image.putpixel((0, 0), own if out[-1].getpixel((0, 0)) == 255 else 255)
        previous = (key,)
        out.append(image)
    return out


def webp_frames(pixels: np.ndarray, quality: int) -> list:
    """RGB images for an animated WebP that keeps every frame: libwebp merges a frame into the one before
    when no pixel differs by more than its lossy tolerance (31·(1 − √q) + √q levels at quality q / 100,
    1 lossless). In a run of identical frames every other frame's top-left pixel is nudged by one level
    more than that, so each frame is written; one pixel, and the encoder's own loss is far larger."""
    from PIL import Image

    root = math.sqrt(quality / 100)
    step = min(255, math.ceil(31 * (1 - root) + root) + 1) if quality < 100 else 1
    out, nudge = [], False
    for index, array in enumerate(pixels):
        nudge = index > 0 and np.array_equal(array, pixels[index - 1]) and not nudge
        if nudge:
            array = array.copy()
            value = int(array[0, 0, 0])
            array[0, 0, 0] = value + step if value + step <= 255 else value - step
        out.append(Image.fromarray(array))
    return out


def _write_pillow(path: Path, pixels: np.ndarray, fps: float, format: str, quality: int,
                  graph_json: str | None) -> None:
    images = gif_frames(pixels) if format == "gif" else webp_frames(pixels, quality)
    durations = frame_milliseconds(len(images), fps, format)
    options: dict = {"save_all": True, "append_images": images[1:], "duration": durations, "loop": 0}
    if format == "gif":
        options["optimize"] = False
        if graph_json:
            options["comment"] = graph_json.encode("utf-8")
    else:
        options.update(quality=quality, lossless=quality >= 100)
    images[0].save(path, format=format.upper(), **options)
