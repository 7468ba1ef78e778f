"""The AUDIO value and the waveform operations on it (plain torch / numpy / soundfile / scipy).

AUDIO layout (the port type's contract, README "The AUDIO value")
    ``{"waveform": (B, channels, samples) float32 tensor, "sample_rate": int}`` — the layout
    ComfyUI's and torchaudio's users know. Full scale is ±1 (not clipped: mixing may exceed it;
    files clip on write). B is a batch of equally long clips; channels is 1 (mono) or 2 (stereo)
    (up to 8 are accepted). Every sample must be finite.

    AudioError(argument, message)        bad input; `argument` names the offending value (nodes turn it
                                         into NodeInputError naming their input)
    check_audio(value, argument)         the (waveform, sample_rate) of a valid AUDIO, or AudioError
    format_problem(format, rate, chans)  why a file format cannot hold such audio (mp3 rates, ogg ≤ 192 kHz)
    make_audio(waveform, sample_rate)    an AUDIO dict (checked)
    read_container_audio(path, ...)      a video's / M4A's sound track through PyAV (read_audio's fallback); stops
                                         decoding once past max_seconds or MAX_SAMPLES (a header can lie)
    read_audio(path, max_seconds)        soundfile: WAV, FLAC, OGG Vorbis/Opus, MP3 (libsndfile ≥ 1.1); a WAV
                                         shorter than its header declares is refused (wav_declared_frames)
    write_audio(path, audio, format, bit_depth)   one file per batch item: "wav" (16 / 24-bit PCM or 32-bit
                                         float), "flac" (16 / 24-bit), "ogg", "mp3"; a WAV with the graph as it ran
                                         and the run record (wav_text_chunks; wav_text reads them back)
    bit_depth_problem(format, bit_depth) why `format` cannot be written at that bit depth (with the fix), or None
    clipping_warning(waveform, node)     the warning when a file clips samples beyond ±1 (SaveAudio, SaveVideo)
    resample(audio, rate)                polyphase FIR resampling (scipy.signal.resample_poly: Kaiser-
                                         windowed sinc, rational up / down factors)
    trim_pad(audio, start, duration)     cut from `start` seconds, then pad with silence / cut to `duration`
    mix(a, b, gain_a_db, gain_b_db)      a + b (same rate; mono is spread to stereo; the shorter is padded)
    apply_gain(audio, db)                × 10^(db / 20);  normalize(audio, peak_db, only_louder)
    fade(audio, fade_in, fade_out, shape)   linear or equal-power (quarter-sine) fades
    concatenate(a, b, crossfade)         a then b along time (same rate), optional equal-power crossfade
    crossfade_overlap(seconds, rate, ...) the samples a crossfade overlaps: at most the shorter clip
    silence_span(audio, start, end)      zero a time span (a dropout: material for gap filling)
    downmix_matrix(channels, to)         the (out, in) gains of a channel change: mono → stereo copies, 5.1 / 7.1 →
                                         stereo by ITU-R BS.775 (LFE dropped, centre and surrounds at −3 dB),
                                         mono = the mean of the stereo down-mix
    remix_channels(audio, to, channel)   AUDIO with its channels changed: "stereo", "mono", or one "channel"
"""

from __future__ import annotations

import math
from math import gcd
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np
import torch

MIN_RATE, MAX_RATE = 1000, 384000
MAX_CHANNELS = 8
# The highest peak an AUDIO may hold: the engine's AUDIO_PEAK_CEILING (+60 dB over full scale; more is taken for PCM
# integers stored as floats and fails the node as a plugin bug), mirrored here (a test keeps them equal) so the
# loaders and gains refuse such a result as a bad input naming the fix.
PEAK_CEILING = 1024.0
MAX_SAMPLES = 2**27        # samples in one waveform (batch × channels × length): 512 MiB as float32, ~25 min stereo
                           # at 44.1 kHz; refused before allocating (as latents over 256 MiB are)
FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS"), "mp3": ("MP3", None)}
# SaveAudio's bit_depth → libsndfile subtype, per format that stores samples as they are (OGG / MP3 are lossy
# codecs with no bit depth; FLAC holds integers only).
BIT_DEPTHS = {"16": "PCM_16", "24": "PCM_24", "32 float": "FLOAT"}
SUBTYPES = {"wav": {"16": "PCM_16", "24": "PCM_24", "32 float": "FLOAT"}, "flac": {"16": "PCM_16", "24": "PCM_24"}}


class AudioError(ValueError):
    """Bad audio input; `argument` names the value and the message says what was expected and the fix."""

    def __init__(self, argument: str, message: str):
        self.argument = argument
        super().__init__(f"{argument}: {message}")
        self.message = message


def check_rate(rate: Any, argument: str = "sample_rate") -> int:
    """A supported sample rate (int in 1 kHz … 384 kHz), or AudioError."""
    if isinstance(rate, bool) or not isinstance(rate, int) or not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(argument, f"sample rate {rate!r} is not supported: expected an int from {MIN_RATE} to "
                                   f"{MAX_RATE} Hz")
    return rate


def check_result_size(shape: tuple[int, int, int], rate: int, argument: str, fix: str) -> None:
    """AudioError naming `argument` when a waveform of `shape` (B, C, S) would exceed MAX_SAMPLES."""
    batch, channels, length = shape
    if batch * channels * length > MAX_SAMPLES:
        raise AudioError(argument, f"the result would hold {batch * channels * length:,} samples "
                                   f"({length / rate:,.0f} s × {channels} channel(s) × batch {batch} at {rate} Hz, "
                                   f"{batch * channels * length * 4 / 2**30:.1f} GiB), over the {MAX_SAMPLES:,} a "
                                   f"waveform may hold; {fix}")


def check_audio(value: Any, argument: str = "audio") -> tuple[torch.Tensor, int]:
    """(waveform (B, C, S) float32, sample_rate) of a valid AUDIO value, or AudioError naming `argument`."""
    if not isinstance(value, Mapping) or "waveform" not in value or "sample_rate" not in value:
        raise AudioError(argument, f"expected an AUDIO value {{'waveform': (B, channels, samples), 'sample_rate': "
                                   f"int}} (from LoadAudio or another audio node), found {type(value).__name__}")
    wave, rate = value["waveform"], value["sample_rate"]
    if not isinstance(wave, torch.Tensor) or wave.ndim != 3 or not wave.is_floating_point():
        shape = tuple(wave.shape) if isinstance(wave, torch.Tensor) else type(wave).__name__
        raise AudioError(argument, f"the waveform must be a float tensor (batch, channels, samples), found {shape}")
    check_rate(rate, argument)
    b, c, s = wave.shape
    if b < 1 or s < 1:
        raise AudioError(argument, f"the audio is empty (shape {tuple(wave.shape)}); give at least one sample")
    if not 1 <= c <= MAX_CHANNELS:
        raise AudioError(argument, f"expected 1 to {MAX_CHANNELS} channels, found {c}")
    check_result_size((b, c, s), rate, argument, "trim it (TrimPadAudio) or split it")   # every AUDIO within the cap
    if not bool(torch.isfinite(wave).all()):
        bad = int((~torch.isfinite(wave)).sum())
        raise AudioError(argument, f"the waveform holds {bad} NaN / infinite sample(s); fix the node that made it "
                                   f"(or clean it with a gain / normalize step upstream of the damage)")
    return wave.float(), rate


def peak_problem(waveform: torch.Tensor) -> float | None:
    """The waveform's peak when it is over PEAK_CEILING (what the engine refuses), else None."""
    peak = float(waveform.abs().max()) if waveform.numel() else 0.0
    return peak if peak > PEAK_CEILING else None


def check_gain_result(waveform: torch.Tensor, argument: str, what: str) -> None:
    """AudioError naming the gain input `argument` when a gain (or mix) took the peak past PEAK_CEILING."""
    peak = peak_problem(waveform)
    if peak is not None:
        raise AudioError(argument, f"{what} peaks at {peak:.4g}, over the {PEAK_CEILING:g} (+60 dB above full scale) "
                                   f"an AUDIO may hold; lower {argument}, or put NormalizeAudio before this node")


def make_audio(waveform: torch.Tensor, sample_rate: int, argument: str = "audio") -> dict[str, Any]:
    """An AUDIO dict, checked."""
    audio = {"waveform": waveform.float().contiguous(), "sample_rate": int(sample_rate)}
    check_audio(audio, argument)
    return audio


# --- files -----------------------------------------------------------------------------------------

def read_audio(path: str | Path, max_seconds: float = 600.0, argument: str = "file") -> dict[str, Any]:
    """Read an audio file into a (1, channels, samples) AUDIO; AudioError when unreadable, empty, too long or NaN."""
    import soundfile

    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise AudioError(argument, f"{path.name} is an empty file (0 bytes) and holds no samples; give a WAV, "
                                   f"FLAC, OGG or MP3 file with sound in it")
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, OSError, soundfile.LibsndfileError) as error:
        if path.suffix.lower() in VIDEO_CONTAINERS:      # a video's (or M4A's) sound track: through PyAV
            return read_container_audio(path, max_seconds, argument)
        raise AudioError(argument, f"{path.name} is not a readable audio file ({error}); give a WAV, FLAC, OGG, "
                                   f"MP3 file, or a video / M4A file with a sound track") from None
    if info.frames <= 0:
        raise AudioError(argument, f"{path.name} holds no samples (an empty recording)")
    seconds = info.frames / info.samplerate
    if seconds > max_seconds:
        raise AudioError(argument, f"{path.name} is {seconds:.1f} s long, over the limit of {max_seconds:g} s; trim "
                                   f"it first or raise max_seconds")
    check_rate(info.samplerate, argument)
    # before decoding: max_seconds bounds the duration, not the samples (a 470 KB FLAC of 8-channel 96 kHz silence
    # decoded 6.8 GB)
    check_result_size((1, info.channels, info.frames), info.samplerate, argument,
                      f"{path.name} is too large to load at once: trim it or lower its sample rate / channel count "
                      f"in an audio editor")
    declared = wav_declared_frames(path) if path.suffix.lower() in (".wav", ".wave") else None
    if declared is not None and declared[1] < declared[0]:
        whole, held = (frames / info.samplerate for frames in declared)
        raise AudioError(argument, f"{path.name} is truncated: its header declares {declared[0]} samples per "
                                   f"channel ({whole:.3f} s) but the file holds {declared[1]} ({held:.3f} s); the "
                                   f"copy or download was cut short: copy the whole file again (to use the part "
                                   f"that is there, re-save it in an audio editor, which rewrites the header)")
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)   # (samples, channels)
    except (RuntimeError, OSError, soundfile.LibsndfileError) as error:
        raise AudioError(argument, f"{path.name} could not be decoded ({error})") from None
    if data.shape[0] == 0:
        raise AudioError(argument, f"{path.name} holds no samples (an empty recording)")
    wave = torch.from_numpy(np.ascontiguousarray(data.T))[None]                  # (1, C, S)
    if not bool(torch.isfinite(wave).all()):
        bad = int((~torch.isfinite(wave)).sum())
        raise AudioError(argument, f"{path.name} holds {bad} NaN / infinite sample(s) (a float file written by a "
                                   f"broken program); re-export it, or replace those samples with 0 in an editor")
    peak = peak_problem(wave)
    if peak is not None:       # a float WAV holding integer PCM values: no node after the loader could fix it
        raise AudioError(argument, f"{path.name} peaks at {peak:.6g}, over the {PEAK_CEILING:g} (+60 dB above full "
                                   f"scale) an AUDIO may hold: a float file storing integer sample values (16-bit "
                                   f"ones reach 32767)? Re-export it with samples in ±1 (normalised), or as 16 / "
                                   f"24-bit PCM")
    return make_audio(wave, rate, argument)


# Files whose sound PyAV reads when libsndfile cannot: every video LoadVideo reads that holds sound (its READABLE but
# gif / webp) and the audio-only forms of those containers (.m4a, .mka, .weba, .aac) — the server accepts .mka
# uploads for LoadAudio, which then refused them (tests keep these tables in step).
VIDEO_CONTAINERS = (".mp4", ".m4v", ".m4a", ".mov", ".mkv", ".mka", ".webm", ".weba", ".avi", ".aac")


def read_container_audio(path: Path, max_seconds: float = 600.0, argument: str = "file") -> dict[str, Any]:
    """The first sound track of a video (MP4, MOV, MKV, WebM, AVI) or M4A / AAC file as a (1, channels, samples)
    AUDIO, decoded by PyAV (the video plugin's dependency) — ComfyUI's LoadAudio and VideoHelperSuite's Load
    Video give a video's sound the same way. The track's channel count, declared length (`max_seconds`) and
    sample budget are checked before decoding, and the decoded samples as they come: a header can lie (a 1 MB
    WebM declaring 1 s held 40 min of Opus silence, 2.1 GB decoded), so decoding stops as soon as either limit
    is passed. AAC's encoder delay at the start is dropped by the decoder (the MP4 edit list), and the silence
    padding AAC's last frame (up to 1,023 samples: a 1.000 s M4A decoded as 45,056 samples) is cut at the track's
    declared length (`declared_samples`)."""
    try:
        import av
    except ImportError:
        raise AudioError(argument, f"{path.name} is a video / MPEG-4 file; reading its sound needs the PyAV package "
                                   f"(`pip install av`, which the video plugin installs)") from None
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise AudioError(argument, f"{path.name} is not a readable video or audio file ({error})") from None
    with container:
        stream = next(iter(container.streams.audio), None)
        if stream is None:
            raise AudioError(argument, f"{path.name} has no sound track (a video without audio); give a file with "
                                       f"sound")
        rate = int(stream.rate or 0)
        channels = int(stream.channels or 0)
        if rate <= 0 or channels <= 0:
            raise AudioError(argument, f"{path.name}'s sound track declares no sample rate or channels")
        if channels > MAX_CHANNELS:
            raise AudioError(argument, f"{path.name}'s sound track has {channels} channels, over the {MAX_CHANNELS} "
                                       f"an AUDIO holds; mix it down first (e.g. `ffmpeg -i {path.name} -ac 2 "
                                       f"sound.wav`)")
        check_rate(rate, argument)
        declared = declared_samples(stream.duration, stream.time_base, rate)
        duration = declared / rate if declared else (container.duration or 0) / 1e6
        if duration > max_seconds:
            raise AudioError(argument, f"{path.name}'s sound is {duration:.1f} s long, over the limit of "
                                       f"{max_seconds:g} s; trim it first or raise max_seconds")
        too_large = (f"{path.name}'s sound is too large to load at once: trim it or lower its sample rate / "
                     f"channel count")
        check_result_size((1, channels, int(duration * rate) + 1), rate, argument, too_large)
        seconds_limit = int(max_seconds * rate) + rate       # decoded samples per channel allowed (a header can lie)
        capacity_limit = min(seconds_limit, MAX_SAMPLES // channels)
        # room for the declared length (plus AAC's delay and a last frame's padding): an honest file fills it once
        buffer = np.empty((channels, min(int(duration * rate) + 8192, capacity_limit)), np.float32)
        count = 0
        # packed "flt" (one interleaved buffer), not planar: PyAV 18.1 counts 9 planes in an 8-channel planar
        # frame and its to_ndarray() crashes the process (a segfault on every 7.1 track)
        resampler = av.AudioResampler(format="flt", layout=stream.layout, rate=rate)
        try:
            for piece in resampled_frames(container.decode(stream), resampler):
                samples = packed_samples(piece, channels, path.name, argument)
                needed = count + samples.shape[1]
                if needed > seconds_limit:
                    raise AudioError(argument, f"{path.name}'s sound runs past {max_seconds:g} s (its header said "
                                               f"{duration:.1f} s); trim it first or raise max_seconds")
                check_result_size((1, channels, needed), rate, argument,          # stop before keeping more
                                  f"{too_large} (decoding stopped there; its header said {duration:.1f} s)")
                if needed > buffer.shape[1]:
                    buffer = grown(buffer, count, needed, capacity_limit)
                buffer[:, count:needed] = samples
                count = needed
        except av.error.FFmpegError as error:
            raise AudioError(argument, f"{path.name}'s sound could not be decoded ({error})") from None
    if count == 0:
        raise AudioError(argument, f"{path.name}'s sound track holds no samples")
    if declared and count > declared:    # AAC's last frame padded with silence: 1.000 s decoded as 1.0217 s
        count = declared
    wave = torch.from_numpy(trimmed(buffer, count))[None]                            # (1, channels, samples)
    if not bool(torch.isfinite(wave).all()):
        raise AudioError(argument, f"{path.name}'s sound holds NaN / infinite samples; re-export it")
    return make_audio(wave, rate, argument)


def declared_samples(duration: Any, time_base: Any, rate: int) -> int | None:
    """The samples per channel a sound track's own header declares (`stream.duration` in its time base: an MP4's
    is exact, after the edit list drops the encoder delay), or None when it declares none (a Matroska / WebM
    track: only the container's length, rounded, is known)."""
    if not duration or not time_base:
        return None
    return round(duration * time_base * rate) or None


def resampled_frames(frames: Any, resampler: Any) -> Any:
    """PyAV audio frames through `resampler`, then what it still holds (its flush)."""
    for frame in frames:
        yield from resampler.resample(frame)
    yield from resampler.resample(None)


def packed_samples(frame: Any, channels: int, name: str, argument: str) -> np.ndarray:
    """(channels, samples) float32 view of a packed "flt" PyAV frame, read from its one interleaved buffer (the
    buffer is padded past the samples, so it is cut to frame.samples). Not frame.to_ndarray(): see the caller."""
    if frame.layout.nb_channels != channels:
        raise AudioError(argument, f"{name}'s sound track changes from {channels} to {frame.layout.nb_channels} "
                                   f"channels while playing; re-export it with one channel layout")
    interleaved = np.frombuffer(frame.planes[0], np.float32, count=frame.samples * channels)
    return interleaved.reshape(frame.samples, channels).T


def grown(buffer: np.ndarray, count: int, needed: int, limit: int) -> np.ndarray:
    """`buffer` (channels, capacity), holding `count` samples per channel, widened in place to room for `needed`
    (the capacity doubles, up to `limit`): realloc (large blocks are remapped, not copied), then each channel's
    samples moved to its new row, the last channel first — so growing never holds two copies of the sound."""
    channels, capacity = buffer.shape
    wider = min(max(needed, 2 * capacity), limit)
    buffer.resize((channels, wider), refcheck=False)     # the decode loop holds no view of it
    flat = buffer.reshape(-1)
    for channel in range(channels - 1, 0, -1):
        flat[channel * wider:channel * wider + count] = flat[channel * capacity:channel * capacity + count]
    return buffer


def trimmed(buffer: np.ndarray, count: int) -> np.ndarray:
    """`buffer` (channels, capacity) cut to its first `count` samples per channel in place — each channel's row
    moved forward, then the spare capacity released — so the decoded sound is not copied a second time."""
    channels, capacity = buffer.shape
    if count == capacity:
        return buffer
    flat = buffer.reshape(-1)
    for channel in range(1, channels):
        flat[channel * count:(channel + 1) * count] = flat[channel * capacity:channel * capacity + count]
    del flat                    # no view may outlive the resize below (refcheck=False: it would point at freed memory)
    buffer.resize((channels, count), refcheck=False)
    return buffer


def wav_declared_frames(path: str | Path) -> tuple[int, int] | None:
    """(sample frames a RIFF/WAVE header declares in its data chunk, whole frames the file holds); None when
    the file is not RIFF/WAVE, has no fmt chunk first, or the size is a streaming placeholder (0, 0xFFFFFFFF)."""
    import struct

    block = 0
    with open(path, "rb") as handle:
        if handle.read(12)[8:12] != b"WAVE":
            return None
        size = handle.seek(0, 2)
        position = 12
        while position + 8 <= size:
            handle.seek(position)
            tag, length = struct.unpack("<4sI", handle.read(8))
            if tag == b"fmt " and length >= 14:
                block = struct.unpack("<H", handle.read(14)[12:14])[0]        # nBlockAlign: bytes per frame
            if tag == b"data":
                if length in (0, 0xFFFFFFFF) or not block:
                    return None
                return length // block, (size - position - 8) // block
            position += 8 + length + (length & 1)
    return None


# What each file format takes (libsndfile's encoders): MP3 is MPEG-1/2/2.5 (nine rates, mono or stereo);
# Vorbis in libsndfile/libvorbis crashes the process (a segfault, not an error) from ~256 kHz, so OGG stops
# at 192 kHz, the highest standard rate. WAV and FLAC take every rate and channel count AUDIO allows.
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
FORMAT_LIMITS: dict[str, dict[str, Any]] = {
    "mp3": {"rates": MP3_RATES, "max_channels": 2},
    "ogg": {"max_rate": 192000},
}


def format_problem(format: str, sample_rate: int, channels: int) -> str | None:
    """Why `format` cannot hold audio of this rate and channel count (with the fix), or None."""
    limits = FORMAT_LIMITS.get(format, {})
    name = {"mp3": "MP3", "ogg": "OGG (Vorbis)"}.get(format, format)
    rates = limits.get("rates")
    if rates is not None and sample_rate not in rates:
        return (f"{name} takes the sample rates {', '.join(map(str, rates))} Hz; this audio is {sample_rate} Hz. "
                f"Fix: put ResampleAudio (e.g. 44100) before SaveAudio, or save as wav or flac")
    if sample_rate > limits.get("max_rate", MAX_RATE):
        return (f"{name} takes sample rates up to {limits['max_rate']} Hz; this audio is {sample_rate} Hz. "
                f"Fix: put ResampleAudio (at most {limits['max_rate']}) before SaveAudio, or save as wav or flac")
    if channels > limits.get("max_channels", MAX_CHANNELS):
        return (f"{name} holds at most {limits['max_channels']} channels; this audio has {channels}. "
                f"Fix: save as wav, flac or ogg (up to {MAX_CHANNELS} channels), or mix it down first")
    return None


def bit_depth_problem(format: str, bit_depth: str) -> str | None:
    """Why `format` cannot be written with `bit_depth` ("16", "24", "32 float"), with the fix; None if it can."""
    if bit_depth == "16" or bit_depth in SUBTYPES.get(format, {}):
        return None
    if format == "flac":
        return (f"FLAC stores integer samples (16 or 24 bit), not {bit_depth!r}; "
                f"Fix: set bit_depth to 24, or save as wav for 32-bit float")
    return (f"{format} is a lossy codec with no bit depth; bit_depth {bit_depth} applies to wav (16, 24, 32 float) "
            f"and flac (16, 24). Fix: set bit_depth to 16, or save as wav or flac")


def clipping_warning(waveform: torch.Tensor | np.ndarray, node: str) -> str | None:
    """The warning for a file that stores full scale as its limit (integer WAV / FLAC, OGG, MP3, a video's AAC /
    Opus track) when samples of `waveform` lie beyond ±1 — they are clipped, which distorts the sound — naming
    the fix before `node` (SaveAudio, SaveVideo); None when none does."""
    magnitude = torch.as_tensor(waveform).detach().abs()
    clipped = int((magnitude > 1.0).sum())
    if not clipped:
        return None
    return (f"{clipped} of {magnitude.numel()} samples ({clipped / magnitude.numel():.2%}) are beyond full scale "
            f"(peak {float(magnitude.max()):.3g}) and were clipped to ±1 in the file, which distorts the sound; put "
            f"NormalizeAudio (peak_db -1) or AudioGain before {node} to lower the level")


def write_audio(path: str | Path, waveform: torch.Tensor, sample_rate: int,
                format: Literal["wav", "flac", "ogg", "mp3"] = "wav", bit_depth: str = "16",
                graph_json: str | None = None, run_json: str | None = None) -> None:
    """Write one clip (channels, samples) to `path` in `format` at `bit_depth` ("16", "24" or "32 float": wav and
    flac; ogg and mp3 take "16" only, meaning their codec's own). Integer formats clip to ±1; a 32-bit float WAV
    keeps samples beyond full scale as they are. AudioError (argument "format" / "bit_depth") when the format
    cannot hold it — checked first: some encoders crash instead of failing. A WAV also carries `graph_json` and
    `run_json` (wav_text_chunks: libsndfile's own comment field drops text over ~16 KB, a graph's size)."""
    import soundfile

    problem = format_problem(format, sample_rate, int(waveform.shape[0]))
    if problem is not None:
        raise AudioError("format", problem)
    problem = bit_depth_problem(format, bit_depth)
    if problem is not None:
        raise AudioError("bit_depth", problem)
    kind, subtype = FORMATS[format]
    subtype = SUBTYPES.get(format, {}).get(bit_depth, subtype)
    data = waveform.detach().float()
    if subtype != "FLOAT":
        data = data.clamp(-1, 1)
    soundfile.write(str(path), data.cpu().numpy().T, sample_rate, format=kind, subtype=subtype)  # (samples, ch)
    if format == "wav" and (graph_json or run_json):
        append_wav_text(Path(path), graph_json, run_json)


MAX_EMBEDDED_TEXT = 64 * 1024 * 1024    # a graph's limit (nodegraph.graph.MAX_FILE_BYTES), as SaveVideo's comment


def _riff_chunk(kind: bytes, body: bytes) -> bytes:
    """A RIFF chunk: id, little-endian size, body, a pad byte when the size is odd (RIFF aligns to 2)."""
    return kind + len(body).to_bytes(4, "little") + body + b"\0" * (len(body) % 2)


def wav_text_chunks(graph_json: str | None, run_json: str | None) -> bytes:
    """The chunks a WAV gets after its audio: LIST/INFO `ICMT` (the comment players and ffprobe show) holding
    the graph as it ran, and `ngrn` holding the run record (nodegraph.provenance) — a PNG's "nodegraph" and
    "nodegraph_run" text. Readers skip chunks they do not know, so the file plays as before. Text over
    MAX_EMBEDDED_TEXT is left out."""
    def text(value: str | None) -> bytes | None:
        data = value.encode("utf-8") + b"\0" if value else None          # INFO strings end in NUL
        return data if data is not None and len(data) <= MAX_EMBEDDED_TEXT else None

    graph, run = text(graph_json), text(run_json)
    chunks = _riff_chunk(b"LIST", b"INFO" + _riff_chunk(b"ICMT", graph)) if graph else b""
    return chunks + (_riff_chunk(b"ngrn", run) if run else b"")


def append_wav_text(path: Path, graph_json: str | None, run_json: str | None) -> None:
    """Add wav_text_chunks to the WAV at `path` and grow its RIFF size; an RF64 / RIFX file is left as it is."""
    extra = wav_text_chunks(graph_json, run_json)
    with open(path, "r+b") as handle:
        head = handle.read(12)
        if not extra or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        size = int.from_bytes(head[4:8], "little")
        if size + len(extra) >= 2 ** 32:
            return
        handle.seek(8 + size + size % 2)
        handle.write(extra)
        handle.truncate()
        handle.seek(4)
        handle.write((size + size % 2 + len(extra)).to_bytes(4, "little"))


def wav_text(data: bytes) -> tuple[str | None, str | None]:
    """(graph, run record) a WAV SaveAudio wrote carries (wav_text_chunks), None for what it lacks."""
    graph = run = None
    position = 12
    while data[:4] == b"RIFF" and position + 8 <= len(data):
        kind, size = data[position:position + 4], int.from_bytes(data[position + 4:position + 8], "little")
        body = data[position + 8:position + 8 + size]
        if kind == b"LIST" and body[:4] == b"INFO":
            inner = 4
            while inner + 8 <= len(body):
                sub, length = body[inner:inner + 4], int.from_bytes(body[inner + 4:inner + 8], "little")
                if sub == b"ICMT":
                    graph = body[inner + 8:inner + 8 + length].rstrip(b"\0").decode("utf-8", "replace")
                inner += 8 + length + length % 2
        elif kind == b"ngrn":
            run = body.rstrip(b"\0").decode("utf-8", "replace")
        position += 8 + size + size % 2
    return graph, run


# --- operations ------------------------------------------------------------------------------------

def resample(audio: Mapping[str, Any], rate: int, argument: str = "audio") -> dict[str, Any]:
    """Polyphase resampling to `rate` Hz (scipy.signal.resample_poly; anti-aliasing Kaiser sinc, beta 5)."""
    from scipy.signal import resample_poly

    wave, old = check_audio(audio, argument)
    check_rate(rate, "sample_rate")
    if rate == old:
        return {"waveform": wave, "sample_rate": old}
    divisor = gcd(rate, old)
    up, down = rate // divisor, old // divisor
    check_result_size((*wave.shape[:2], -(-wave.shape[-1] * up // down)), rate, "sample_rate",
                      "use a lower sample rate or trim the clip first (TrimPadAudio)")
    out = resample_poly(wave.double().numpy(), up, down, axis=-1)
    return make_audio(torch.from_numpy(np.ascontiguousarray(out)).float(), rate, argument)


def trim_pad(audio: Mapping[str, Any], start: float = 0.0, duration: float = 0.0, argument: str = "audio") -> dict:
    """Drop the first `start` seconds, then cut or zero-pad to `duration` seconds (0 = keep the rest)."""
    wave, rate = check_audio(audio, argument)
    first = int(round(start * rate))
    if first >= wave.shape[-1]:
        raise AudioError("start", f"{start} s is past the end of the audio ({wave.shape[-1] / rate:.3f} s)")
    wave = wave[..., first:]
    if duration > 0:
        length = int(round(duration * rate))
        check_result_size((*wave.shape[:2], length), rate, "duration", "use a shorter duration")
        wave = wave[..., :length] if wave.shape[-1] >= length else torch.nn.functional.pad(
            wave, (0, length - wave.shape[-1]))
    return make_audio(wave, rate, argument)


def _match(a: torch.Tensor, b: torch.Tensor, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Broadcast batch (1 → B) and channels (mono → C) of two waveforms."""
    if a.shape[0] != b.shape[0] and 1 not in (a.shape[0], b.shape[0]):
        raise AudioError(what, f"batch sizes {a.shape[0]} and {b.shape[0]} differ (one of them must be 1)")
    if a.shape[1] != b.shape[1] and 1 not in (a.shape[1], b.shape[1]):
        raise AudioError(what, f"channel counts {a.shape[1]} and {b.shape[1]} differ (only mono is spread)")
    batch, channels = max(a.shape[0], b.shape[0]), max(a.shape[1], b.shape[1])
    return a.expand(batch, channels, -1), b.expand(batch, channels, -1)


def mix(a: Mapping[str, Any], b: Mapping[str, Any], gain_a_db: float = 0.0, gain_b_db: float = 0.0) -> dict:
    """a · gain_a + b · gain_b; the shorter clip is padded with silence; rates must match."""
    wave_a, rate_a = check_audio(a, "audio_a")
    wave_b, rate_b = check_audio(b, "audio_b")
    if rate_a != rate_b:
        raise AudioError("audio_b", f"sample rate {rate_b} Hz differs from audio_a's {rate_a} Hz; resample one "
                                    f"of them first (ResampleAudio)")
    wave_a, wave_b = _match(wave_a, wave_b, "audio_b")
    length = max(wave_a.shape[-1], wave_b.shape[-1])
    pad = lambda w: torch.nn.functional.pad(w, (0, length - w.shape[-1]))
    out = pad(wave_a) * 10 ** (gain_a_db / 20) + pad(wave_b) * 10 ** (gain_b_db / 20)
    check_gain_result(out, "gain_a_db" if gain_a_db >= gain_b_db else "gain_b_db", "the mix")
    return make_audio(out, rate_a)


def apply_gain(audio: Mapping[str, Any], db: float, argument: str = "audio") -> dict:
    """× 10^(db / 20)."""
    wave, rate = check_audio(audio, argument)
    out = wave * 10 ** (db / 20)
    check_gain_result(out, "gain_db", f"at {db:+g} dB the audio")
    return make_audio(out, rate, argument)


def normalize(audio: Mapping[str, Any], peak_db: float = -1.0, only_louder: bool = False,
              argument: str = "audio") -> dict:
    """Scale each clip so its peak is `peak_db` dBFS (silent clips stay silent); `only_louder`: never raise one."""
    wave, rate = check_audio(audio, argument)
    peak = wave.abs().amax(dim=(1, 2), keepdim=True)
    scale = torch.where(peak > 0, 10 ** (peak_db / 20) / peak.clamp_min(1e-12), torch.ones_like(peak))
    if only_louder:
        scale = scale.clamp(max=1.0)
    return make_audio(wave * scale, rate, argument)


def _ramp(length: int, shape: str) -> torch.Tensor:
    """0 → 1 over `length` samples: linear, or equal-power (sin of a quarter turn)."""
    u = (torch.arange(length, dtype=torch.float32) + 0.5) / max(length, 1)
    return torch.sin(u * math.pi / 2) if shape == "equal_power" else u


def fade(audio: Mapping[str, Any], fade_in: float = 0.0, fade_out: float = 0.0,
         shape: Literal["linear", "equal_power"] = "linear", argument: str = "audio") -> dict:
    """Fade in over the first `fade_in` seconds and out over the last `fade_out` seconds."""
    wave, rate = check_audio(audio, argument)
    n = wave.shape[-1]
    n_in, n_out = min(n, int(round(fade_in * rate))), min(n, int(round(fade_out * rate)))
    gain = torch.ones(n)
    if n_in:
        gain[:n_in] *= _ramp(n_in, shape)
    if n_out:
        gain[n - n_out:] *= _ramp(n_out, shape).flip(0)
    return make_audio(wave * gain, rate, argument)


def crossfade_overlap(crossfade: float, sample_rate: int, length_a: int, length_b: int) -> int:
    """Samples two clips of these lengths overlap for a `crossfade` of that many seconds: at most the shorter clip."""
    return min(int(round(crossfade * sample_rate)), length_a, length_b)


def concatenate(a: Mapping[str, Any], b: Mapping[str, Any], crossfade: float = 0.0) -> dict:
    """`a` followed by `b` (same rate); with `crossfade` seconds the join overlaps with equal-power fades."""
    wave_a, rate_a = check_audio(a, "audio_a")
    wave_b, rate_b = check_audio(b, "audio_b")
    if rate_a != rate_b:
        raise AudioError("audio_b", f"sample rate {rate_b} Hz differs from audio_a's {rate_a} Hz; resample one "
                                    f"of them first (ResampleAudio)")
    wave_a, wave_b = _match(wave_a, wave_b, "audio_b")
    overlap = crossfade_overlap(crossfade, rate_a, wave_a.shape[-1], wave_b.shape[-1])
    # before torch.cat allocates it: two clips under the cap joined went past it (5.1 GB; a hostile re-test)
    check_result_size((*wave_a.shape[:2], wave_a.shape[-1] + wave_b.shape[-1] - overlap), rate_a, "audio_b",
                      "trim the clips first (TrimPadAudio), or join fewer")
    if overlap == 0:
        return make_audio(torch.cat([wave_a, wave_b], dim=-1), rate_a)
    ramp = _ramp(overlap, "equal_power")
    joined = wave_a[..., -overlap:] * ramp.flip(0) + wave_b[..., :overlap] * ramp
    return make_audio(torch.cat([wave_a[..., :-overlap], joined, wave_b[..., overlap:]], dim=-1), rate_a)


def silence_span(audio: Mapping[str, Any], start: float, end: float, argument: str = "audio") -> dict:
    """Zero the samples from `start` to `end` seconds (a dropout to fill by inpainting)."""
    wave, rate = check_audio(audio, argument)
    first, last = int(round(start * rate)), min(wave.shape[-1], int(round(end * rate)))
    if not 0 <= first < last:
        raise AudioError("start" if first >= wave.shape[-1] else "end",
                         f"the span must lie inside the clip (0 … {wave.shape[-1] / rate:.3f} s) with end > start; "
                         f"found {start} … {end} s")
    out = wave.clone()
    out[..., first:last] = 0.0
    return make_audio(out, rate, argument)


# --- channel layouts ---------------------------------------------------------------------------------

# −3 dB: the centre's and each surround's gain into the front pair of ITU-R BS.775 (Table 2, 3/2 → 2/0 down-mix:
# L' = L + 0.7071·C + 0.7071·Ls, R' = R + 0.7071·C + 0.7071·Rs; the LFE channel is dropped)
CENTRE_LEVEL = SURROUND_LEVEL = 1 / math.sqrt(2)
# the order files store channels in: WAV / FLAC (WAVEFORMATEXTENSIBLE) and FFmpeg (video sound tracks) alike
SURROUND_LAYOUTS = {6: ("L", "R", "C", "LFE", "Ls", "Rs"),                  # 5.1
                    8: ("L", "R", "C", "LFE", "Lb", "Rb", "Ls", "Rs")}      # 7.1: back pair, then side pair
_INTO_LEFT = {"L": 1.0, "C": CENTRE_LEVEL, "Ls": SURROUND_LEVEL, "Lb": SURROUND_LEVEL}
_INTO_RIGHT = {"R": 1.0, "C": CENTRE_LEVEL, "Rs": SURROUND_LEVEL, "Rb": SURROUND_LEVEL}


def downmix_matrix(channels: int, to: Literal["stereo", "mono"], argument: str = "audio") -> torch.Tensor:
    """(2 or 1, channels) gains: output channel o = Σ_c gains[o, c] · input channel c.

    stereo: mono is copied to both sides; stereo is kept; 5.1 and 7.1 (SURROUND_LAYOUTS) fold into L / R by
    BS.775 (7.1's back and side pairs both at the surround level). mono: the mean of the stereo down-mix (stereo
    → (L + R) / 2, so two identical sides keep their level; 5.1 → 0.5·L + 0.5·R + 0.7071·C + 0.3536·(Ls + Rs),
    BS.775's 1/0 equation at −3 dB). Other counts have no standard layout: AudioError naming `argument`.
    """
    if channels == 1:
        stereo = torch.ones(2, 1)
    elif channels == 2:
        stereo = torch.eye(2)
    elif channels in SURROUND_LAYOUTS:
        layout = SURROUND_LAYOUTS[channels]
        stereo = torch.tensor([[_INTO_LEFT.get(name, 0.0) for name in layout],
                               [_INTO_RIGHT.get(name, 0.0) for name in layout]])
    else:
        raise AudioError(argument, f"{channels} channels have no standard layout to down-mix (mono, stereo, 5.1 = 6 "
                                   f"and 7.1 = 8 channels have); take the channels you want one by one (DownmixAudio "
                                   f"to 'channel') and mix them (MixAudio)")
    return stereo.mean(0, keepdim=True) if to == "mono" else stereo


def remix_channels(audio: Mapping[str, Any], to: Literal["stereo", "mono", "channel"], channel: int = 1,
                   argument: str = "audio") -> dict:
    """The audio with `to` = "stereo" / "mono" channels (downmix_matrix), or only its `channel`-th (from 1)."""
    wave, rate = check_audio(audio, argument)
    count = wave.shape[1]
    if to == "channel":
        if not 1 <= channel <= count:
            raise AudioError("channel", f"the audio has {count} channel(s), so there is no channel {channel}; use 1 "
                                        f"to {count}" + (f" ({', '.join(SURROUND_LAYOUTS[count])})"
                                                         if count in SURROUND_LAYOUTS else ""))
        return make_audio(wave[:, channel - 1:channel].clone(), rate, argument)
    gains = downmix_matrix(count, to, argument)
    return make_audio(torch.einsum("oc,bcs->bos", gains, wave), rate, argument)
