"""The audio plugin's nodes (thin adapters over the library modules) and its plugin hooks.

Audio files and waveforms (AUDIO = {"waveform": (B, channels, samples) float32, "sample_rate": int})
    LoadAudio / SaveAudio        WAV, FLAC, OGG (Vorbis), MP3 through soundfile (LoadAudio: a video's sound too,
                                 through PyAV); results are kind "audio" files
    SynthesizeSound              a sound of the tiny model's synthesised world from its caption
    ResampleAudio, TrimPadAudio, MixAudio, AudioGain, NormalizeAudio, FadeAudio, ConcatenateAudio, SilenceSpan
    DownmixAudio                 channels: mono ↔ stereo, 5.1 / 7.1 → stereo or mono (ITU-R BS.775), one channel
Spectrograms (SPECTROGRAM: values (B·channels, F, T) + how they were made; see spectrogram_value())
    STFT / InverseSTFT, MelSpectrogram, SpectrogramScale (amplitude ↔ dB ↔ natural log), GriffinLim,
    SpectrogramToImage / ImageToSpectrogram (edit with the image nodes), AudioSpectrogramImage (a view)
Vocoders (VOCODER)
    LoadVocoder (Griffin-Lim, or a HiFi-GAN in transformers' SpeechT5HifiGan layout from models/vocoder), Vocode
The tiny text-to-audio model (AUDIO_MODEL; MODEL through api.diffusion_model, sampled by KSampler / api.sample)
    LoadAudioModel, EncodeAudioPrompt, EmptyAudioLatent, AudioToLatent, LatentToAudio, AudioGapMask,
    AudioLatentToImage / ImageToAudioLatent
Training
    TrainAudioModel        synthesised captioned sounds → a tiny text-to-audio model (AUDIO_MODEL)
    SaveAudioModel         AUDIO_MODEL → models/audio/NAME.safetensors (never overwrites unless asked)

Library errors (waveform.AudioError, hifigan.HifiGanError, model_file.AudioModelError) become
NodeInputError naming the node's input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from nodegraph import Input, Node, NodeInputError, NodeInputs, Output, PortType, api, hookimpl

from . import SHIPPED_MODELS

MODEL_FOLDER = "audio"
VOCODER_FOLDER = "vocoder"
DEFAULT_MODEL = "tiny_t2a.safetensors"
SPECTROGRAM = PortType("SPECTROGRAM", "A spectrogram (linear or mel; amplitude, dB or log) with the STFT settings "
                                      "that made it.", color="#7e57c2")
VOCODER = PortType("VOCODER", "Spectrogram → waveform: Griffin-Lim, or a HiFi-GAN generator (SpeechT5HifiGan "
                              "layout).", color="#8d6e63")
AUDIO_MODEL = PortType("AUDIO_MODEL", "The tiny text-to-audio model: its denoiser, tokenizer and spectrogram "
                                      "settings (LoadAudioModel, TrainAudioModel).", color="#00897b")


def _audio(value: Any, input_name: str = "audio") -> tuple[Any, int]:
    """(waveform, rate) of an AUDIO input, or NodeInputError naming it."""
    from .waveform import AudioError, check_audio

    try:
        return check_audio(value, input_name)
    except AudioError as exc:
        raise NodeInputError(exc.argument, exc.message) from None


def _call(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a waveform operation; its AudioError becomes a NodeInputError naming the argument."""
    from .waveform import AudioError

    try:
        return function(*args, **kwargs)
    except AudioError as exc:
        raise NodeInputError(exc.argument, exc.message) from None


# --- files and waveforms ---------------------------------------------------------------------------

class LoadAudio(Node):
    """Load an audio file from the input folder: WAV, FLAC, OGG (Vorbis / Opus), MP3 (soundfile / libsndfile), or
    the sound track of a video (MP4, MOV, MKV, WebM, AVI) or M4A / MKA / WEBA / AAC file (PyAV, the video plugin's
    dependency).

    The result is one clip (batch 1) with the file's channels and sample rate. Files over `max_seconds`,
    empty files, unreadable files and files holding NaN samples are refused with an error naming `file`.
    """

    category = "audio"

    class Inputs(NodeInputs):
        file: str = Input(description="file name in the input folder", min_length=1, max_length=255, upload="audio")
        max_seconds: float = Input(600.0, gt=0.0, le=36000.0, description="refuse longer files (memory guard)")

    outputs = (Output("audio", "AUDIO"),)

    @classmethod
    def fingerprint(cls, literals: dict[str, Any], resolve_file: Any) -> str | None:
        try:
            stat = resolve_file("input", literals["file"]).stat()
        except (OSError, LookupError, KeyError):
            return "missing"
        return f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}"   # ctime: a rewrite with the old mtime put back

    def run(self, file: str, max_seconds: float) -> dict:
        from .waveform import read_audio

        api.confine(self.context.service("input_dir"), file, what="audio file name", input_name="file")
        try:
            path = self.context.service("resolve_file")("input", file)
        except LookupError as exc:
            raise NodeInputError("file", str(exc)) from None
        return {"audio": _call(read_audio, path, max_seconds, "file")}


class SaveAudio(Node):
    """Save each clip of an AUDIO batch as a file in the output folder (kind "audio": the editor plays it).

    WAV (16- or 24-bit PCM, or 32-bit float: `bit_depth`), FLAC (16- or 24-bit), OGG (Vorbis, up to 192 kHz) or
    MP3 (MPEG rates 8–48 kHz, mono or stereo); audio a format cannot hold is refused naming the fix. Samples
    beyond ±1 are clipped on write, except in a 32-bit float WAV, which keeps them.
    Files are numbered PREFIX_00001.wav, ... and never replace an existing file.
    """

    category = "audio"
    output_node = True
    version = "1.1.1"       # 1.1.1: a WAV carries the graph as it ran and the run record; 1.1: bit_depth; 1.0.1:
    #                         audio a format cannot hold is refused (OGG over 192 kHz crashed)

    class Inputs(NodeInputs):
        audio: Any = Input(port="AUDIO")
        filename_prefix: str = Input("audio/nodegraph", file_name_in="output", subfolders=True, min_length=1,
                                     max_length=200)
        format: Literal["wav", "flac", "ogg", "mp3"] = Input("wav")
        bit_depth: Literal["16", "24", "32 float"] = Input("16", description="wav: 16, 24 or 32 float; flac: 16 or "
                                                                             "24; ogg / mp3: 16 (their codec's own)")

    outputs = ()

    @classmethod
    def check_literals(cls, literals: dict[str, Any], list_model_files: Any) -> dict[str, str]:
        from .waveform import bit_depth_problem

        format, bit_depth = literals.get("format"), literals.get("bit_depth", "16")
        problem = bit_depth_problem(format, bit_depth) if isinstance(format, str) and isinstance(bit_depth, str) \
            else None
        return {"bit_depth": problem} if problem else {}

    def run(self, audio: Any, filename_prefix: str, format: str, bit_depth: str = "16") -> dict:
        from .waveform import bit_depth_problem, clipping_warning, format_problem, write_audio

        wave, rate = _audio(audio)
        problem = format_problem(format, rate, int(wave.shape[1]))
        if problem is not None:          # before any file is made (an encoder may crash on what it cannot take)
            raise NodeInputError("format", problem)
        problem = bit_depth_problem(format, bit_depth)
        if problem is not None:
            raise NodeInputError("bit_depth", problem)
        warning = clipping_warning(wave, "SaveAudio") if bit_depth != "32 float" else None   # float WAV keeps them
        if warning:
            self.context.warn(warning)
        graph, records = _graph_and_records(self.context, len(wave)) if format == "wav" else (None, [None] * len(wave))
        writers = [lambda path, clip=clip, run=run: write_audio(path, clip, rate, format, bit_depth, graph, run)
                   for clip, run in zip(wave, records)]
        fields = {"sample_rate": rate, "channels": int(wave.shape[1]), "duration": round(wave.shape[-1] / rate, 6),
                  **({"info": {"bit_depth": bit_depth}} if format in ("wav", "flac") else {})}
        files = api.save_files(self.context, writers, kind="audio", prefix=filename_prefix, suffix=f".{format}",
                               fields=fields, argument="filename_prefix")
        return {"files": files}


def _graph_and_records(context: Any, count: int) -> tuple[str | None, list[str | None]]:
    """What a WAV carries, as a PNG SaveImage writes does: the graph as it ran (a RandomInt's seed pinned, so
    running it again makes the same sound) and one run record per batch item (versions, device, model hashes)."""
    import json

    from nodegraph.provenance import run_record

    if context.graph is None:
        return None, [None] * count
    graph = json.dumps(context.graph_as_run(), separators=(",", ":"))
    record = run_record(context)
    return graph, [json.dumps({**record, "batch_index": k, "batch_size": count}, separators=(",", ":"))
                   for k in range(count)]


class ResampleAudio(Node):
    """Change the sample rate (polyphase anti-aliased resampling, scipy.signal.resample_poly)."""

    category = "audio"

    class Inputs(NodeInputs):
        audio: Any = Input(port="AUDIO")
        sample_rate: int = Input(16000, ge=1000, le=384000)

    outputs = (Output("audio", "AUDIO"),)

    def run(self, audio: Any, sample_rate: int) -> dict:
        from .waveform import resample

        _audio(audio)
        return {"audio": _call(resample, audio, sample_rate)}


class TrimPadAudio(Node):
    """Drop the first `start` seconds, then cut or pad with silence to `duration` seconds (0 = keep the rest)."""

    category = "audio"

    class Inputs(NodeInputs):
        audio: Any = Input(port="AUDIO")
        start: float = Input(0.0, ge=0.0, le=36000.0)
        duration: float = Input(0.0, ge=0.0, le=36000.0)

    outputs = (Output("audio", "AUDIO"),)

    def run(self, audio: Any, start: float, duration: float) -> dict:
        from .waveform import trim_pad

        _audio(audio)
        return {"audio": _call(trim_pad, audio, start, duration)}


class MixAudio(Node):
    """audio_a · gain_a + audio_b · gain_b (dB gains); the shorter clip is padded, mono spreads to stereo."""

    category = "audio"

    class Inputs(NodeInputs):
        audio_a: Any = Input(port="AUDIO")
        audio_b: Any = Input(port="AUDIO")
        gain_a_db: float = Input(0.0, ge=-120.0, le=40.0)
        gain_b_db: float = Input(0.0, ge=-120.0, le=40.0)

    outputs = (Output("audio", "AUDIO"),)

    def run(self, audio_a: Any, audio_b: Any, gain_a_db: float, gain_b_db: float) -> dict:
        from .waveform import mix

        return {"audio": _call(mix, audio_a, audio_b, gain_a_db, gain_b_db)}


class DownmixAudio(Node):
    """Change the channel count: to `stereo` or `mono`, or keep only one `channel`.

    stereo: mono is copied to both sides; 5.1 (6 channels: L, R, C, LFE, Ls, Rs) and 7.1 (8: L, R, C, LFE, Lb, Rb,
    Ls, Rs; the order WAV / FLAC files and video sound tracks store them in) fold into L and R by ITU-R BS.775:
    L' = L + 0.7071·C + 0.7071·Ls (and Lb), R' likewise, the LFE dropped. mono: the mean of that stereo mix
    ((L + R) / 2 for stereo). channel: the `channel`-th alone, as mono (1 = the first, L). Other channel counts
    (3, 4, 5, 7) have no standard layout: take channels one by one and mix them (MixAudio). A down-mix can
    exceed ±1 (SaveAudio and SaveVideo warn when a file would clip; NormalizeAudio with only_louder levels it).
    """

    category = "audio"

    class Inputs(NodeInputs):
        audio: Any = Input(port="AUDIO")
        to: Literal["stereo", "mono", "channel"] = Input("stereo", description="stereo or mono down-mix, or one "
                                                                               "channel alone")
        channel: int = Input(1, ge=1, le=8, description="with to = channel: which one, from 1 (5.1: L R C LFE Ls "
                                                        "Rs)")

    outputs = (Output("audio", "AUDIO"),)

    def run(self, audio: Any, to: str, channel: int) -> dict:
        from .waveform import remix_channels

        return {"audio": _call(remix_channels, audio, to, channel)}


class AudioGain(Node):
    """Multiply by a gain given in dB."""

    category = "audio"

    class Inputs(NodeInputs):
        audio: Any = Input(port="AUDIO")
        gain_db: float = Input(0.0, ge=-120.0, le=40.0)

    outputs = (Output("audio", "AUDIO"),)

    def run(self, audio: Any, gain_db: float) -> dict:
        from .waveform import apply_gain

        return {"audio": _call(apply_gain, audio, gain_db)}


class NormalizeAudio(Node):
    """Scale each clip so its peak sits at `peak_db` dBFS (silence stays silent).

    `only_louder`: lower only the clips whose peak is above `peak_db` and leave quieter ones as they are
    (a limiter before SaveAudio that keeps a quiet clip quiet).
    """

    category = "audio"
    version = "1.1.0"

    class Inputs(NodeInputs):
        audio: Any = Input(port="AUDIO")
        peak_db: float = Input(-1.0, ge=-60.0, le=0.0)
        only_louder: bool = Input(False, description="only lower clips that peak above peak_db; never raise one")

    outputs = (Output("audio", "AUDIO"),)

    def run(self, audio: Any, peak_db: float, only_louder: bool = False) -> dict:
        from .waveform import normalize

        return {"audio": _call(normalize, audio, peak_db, only_louder)}


class FadeAudio(Node):
    """Fade in over the first `fade_in` seconds and out over the last `fade_out` (linear or equal-power)."""

    category = "audio"

    class Inputs(NodeInputs):
        audio: Any = Input(port="AUDIO")
        fade_in: float = Input(0.0, ge=0.0, le=3600.0)
        fade_out: float = Input(0.0, ge=0.0, le=3600.0)
        shape: Literal["linear", "equal_power"] = Input("linear")

    outputs = (Output("audio", "AUDIO"),)

    def run(self, audio: Any, fade_in: float, fade_out: float, shape: str) -> dict:
        from .waveform import fade

        return {"audio": _call(fade, audio, fade_in, fade_out, shape)}


class SilenceSpan(Node):
    """Zero the audio from `start` to `end` seconds: a dropout (e.g. the gap an inpainting graph fills)."""

    category = "audio"

    class Inputs(NodeInputs):
        audio: Any = Input(port="AUDIO")
        start: float = Input(0.5, ge=0.0, le=36000.0)
        end: float = Input(1.0, ge=0.0, le=36000.0)

    outputs = (Output("audio", "AUDIO"),)

    def run(self, audio: Any, start: float, end: float) -> dict:
        from .waveform import silence_span

        return {"audio": _call(silence_span, audio, start, end)}


class ConcatenateAudio(Node):
    """audio_a followed by audio_b (same sample rate), optionally overlapped by an equal-power crossfade.

    A `crossfade` longer than either clip is shortened to the shorter clip's length (the whole of it fades), and a
    node warning says so.
    """

    category = "audio"
    version = "1.0.1"       # 1.0.1: a crossfade longer than a clip warns (it was shortened silently)

    class Inputs(NodeInputs):
        audio_a: Any = Input(port="AUDIO")
        audio_b: Any = Input(port="AUDIO")
        crossfade: float = Input(0.0, ge=0.0, le=60.0, description="seconds of overlap (at most the shorter clip)")

    outputs = (Output("audio", "AUDIO"),)

    def run(self, audio_a: Any, audio_b: Any, crossfade: float) -> dict:
        from .waveform import concatenate, crossfade_overlap

        joined = _call(concatenate, audio_a, audio_b, crossfade)
        rate = audio_a["sample_rate"]
        lengths = audio_a["waveform"].shape[-1], audio_b["waveform"].shape[-1]
        overlap = crossfade_overlap(crossfade, rate, *lengths)
        if overlap < round(crossfade * rate):
            shorter = "audio_a" if lengths[0] <= lengths[1] else "audio_b"
            self.context.warn(f"crossfade {crossfade:g} s is longer than {shorter} ({min(lengths) / rate:.3f} s): the "
                              f"clips overlap by {overlap / rate:.3f} s, all of {shorter}; lower crossfade to at most "
                              f"{min(lengths) / rate:.3f} s to silence this")
        return {"audio": joined}


class SynthesizeSound(Node):
    """Synthesise a sound of the tiny model's world from its caption (test audio, and audio-to-audio sources).

    Captions: "[quiet|loud] tone at c4" … "b5", "[quiet|loud] e4 minor chord", "rising sweep", "clicks at 120 bpm"
    (60 … 180 in steps of 20), "noise burst" — the templates of synth.py — or the same sounds in other words
    ("a loud C major chord", "metronome at 120bpm"; synth.read_prompt). 1.536 s, 16 kHz, mono.
    """

    category = "audio"

    class Inputs(NodeInputs):
        caption: str = Input("loud c4 major chord", max_length=200)
        seed: int = Input(0, seed=True, description="timing and timbre variation")

    outputs = (Output("audio", "AUDIO"),)

    def run(self, caption: str, seed: int) -> dict:
        import random

        import torch

        from . import synth
        from .waveform import make_audio

        spec = synth.parse_caption(caption) or synth.read_prompt(caption)
        if spec is None:
            examples = ", ".join(repr(text) for text, _ in synth.all_prompts()[::97][:5])
            raise NodeInputError("caption", f"{caption!r} is not a caption of the synthesised world; examples: "
                                            f"{examples}")
        wave = synth.synthesize(spec, random.Random(seed))
        return {"audio": make_audio(torch.from_numpy(wave)[None, None], synth.SAMPLE_RATE)}


# --- spectrograms ----------------------------------------------------------------------------------

def spectrogram_value(values: Any, *, sample_rate: int, n_fft: int, hop: int, win_length: int, length: int,
                      channels: int, scale: str = "linear", power: float = 1.0, units: str = "amplitude",
                      mel: dict | None = None, phase: Any = None) -> dict:
    """The SPECTROGRAM value.

    Keys: values (B·channels, F, T) float; sample_rate, n_fft, hop, win_length, length (samples of the
    source), channels (clips are B = len(values) / channels); scale "linear" | "mel"; power (1 magnitude,
    2 power); units "amplitude" | "db" | "log"; mel (the filterbank settings and `filters` (n_mels,
    n_fft/2+1)) for mel; phase (complex unit phasors, linear STFT only, for an exact inverse).
    """
    return {"values": values, "sample_rate": sample_rate, "n_fft": n_fft, "hop": hop, "win_length": win_length,
            "length": length, "channels": channels, "scale": scale, "power": power, "units": units, "mel": mel,
            "phase": phase}


def _spectrogram(value: Any, input_name: str = "spectrogram") -> dict:
    import torch

    if not isinstance(value, dict) or not isinstance(value.get("values"), torch.Tensor) or value["values"].ndim != 3:
        raise NodeInputError(input_name, "expected a SPECTROGRAM value (from STFT or MelSpectrogram)")
    if not bool(torch.isfinite(value["values"]).all()):
        raise NodeInputError(input_name, "the spectrogram holds NaN / infinite values")
    return value


def _amplitude(spec: dict) -> Any:
    """The spectrogram's values as amplitude^power (undoing dB / log)."""
    import torch

    from .spectral import db_to_amplitude

    values = spec["values"].float()
    if spec["units"] == "db":
        return db_to_amplitude(values, power=spec["power"] == 2)
    if spec["units"] == "log":
        return torch.exp(values)
    return values


MAX_SPECTROGRAM_VALUES = 2**27      # bins × frames × clips·channels in one spectrogram, as MAX_SAMPLES for a waveform


def _check_stft(n_fft: int, hop: int, win_length: int, rows: int, samples: int) -> int:
    """The window length (0 = n_fft) after checking the window and hop, and that the spectrogram of `rows`
    signals of `samples` fits MAX_SPECTROGRAM_VALUES (n_fft 16384 at hop 1 on a 5 s clip asked for 4.9 GiB at once)."""
    win_length = win_length or n_fft
    if win_length > n_fft:
        raise NodeInputError("win_length", f"the window ({win_length}) must not exceed n_fft ({n_fft})")
    if hop > win_length:
        raise NodeInputError("hop", f"a hop ({hop}) longer than the window ({win_length}) leaves gaps; use hop <= "
                                    f"win_length")
    _check_spectrogram_size(n_fft, hop, rows, samples)
    return win_length


def _check_spectrogram_size(n_fft: int, hop: int, rows: int, samples: int) -> None:
    """NodeInputError naming `hop` (with the least hop that fits) when the spectrogram is too large to make."""
    bins = n_fft // 2 + 1
    values = rows * bins * (samples // hop + 1)
    if values > MAX_SPECTROGRAM_VALUES:
        frames = MAX_SPECTROGRAM_VALUES // (rows * bins)          # frames = samples // hop + 1 may be at most this
        fix = (f"raise hop (to {samples // (frames - 1) + 1} or more), lower n_fft, or trim the audio" if frames > 1
               else "lower n_fft or trim the audio")
        raise NodeInputError("hop", f"the spectrogram would hold {values:,} values ({bins} bins × "
                                    f"{samples // hop + 1:,} frames × {rows} signal(s)), over the "
                                    f"{MAX_SPECTROGRAM_VALUES:,} one may hold; {fix}")
    from nodegraph.memory import ensure_free

    # within the cap, but does the machine have it now? the complex STFT, its magnitude and phase: ~20 bytes a value
    ensure_free(values * 20, f"the spectrogram ({values:,} values)")


class STFT(Node):
    """Short-time Fourier transform (Hann window, centred): magnitude plus the phase for an exact InverseSTFT."""

    category = "audio/spectrogram"

    class Inputs(NodeInputs):
        audio: Any = Input(port="AUDIO")
        n_fft: int = Input(1024, ge=16, le=16384)
        hop: int = Input(256, ge=1, le=16384)
        win_length: int = Input(0, ge=0, le=16384, description="0 = n_fft")

    outputs = (Output("spectrogram", "SPECTROGRAM"),)

    def run(self, audio: Any, n_fft: int, hop: int, win_length: int) -> dict:
        from .spectral import stft

        wave, rate = _audio(audio)
        win_length = _check_stft(n_fft, hop, win_length, wave.shape[0] * wave.shape[1], wave.shape[-1])
        complex_spec = stft(wave.reshape(-1, wave.shape[-1]), n_fft, hop, win_length)        # (B·C, F, T)
        mag = complex_spec.abs()
        phase = complex_spec / mag.clamp_min(1e-12)
        return {"spectrogram": spectrogram_value(mag, sample_rate=rate, n_fft=n_fft, hop=hop, win_length=win_length,
                                                 length=wave.shape[-1], channels=wave.shape[1], phase=phase)}


class InverseSTFT(Node):
    """Inverse STFT of a linear spectrogram that still carries its phase (from STFT); else use GriffinLim."""

    category = "audio/spectrogram"

    class Inputs(NodeInputs):
        spectrogram: Any = Input(port="SPECTROGRAM")

    outputs = (Output("audio", "AUDIO"),)

    def run(self, spectrogram: Any) -> dict:
        from .spectral import istft
        from .waveform import make_audio

        spec = _spectrogram(spectrogram)
        if spec["scale"] != "linear" or spec["phase"] is None or spec["phase"].shape != spec["values"].shape:
            raise NodeInputError("spectrogram", "this spectrogram has no phase (a mel spectrogram, an edited image, "
                                                "or a changed size); recover one with GriffinLim instead")
        magnitude = _amplitude(spec) ** (1.0 / spec["power"])
        wave = istft(magnitude * spec["phase"], spec["n_fft"], spec["hop"], spec["win_length"], spec["length"])
        return {"audio": make_audio(wave.reshape(-1, spec["channels"], wave.shape[-1]), spec["sample_rate"])}


class MelSpectrogram(Node):
    """Mel spectrogram: |STFT|^power on a triangular mel filterbank (HTK or Slaney scale, as librosa)."""

    category = "audio/spectrogram"

    class Inputs(NodeInputs):
        audio: Any = Input(port="AUDIO")
        n_fft: int = Input(1024, ge=16, le=16384)
        hop: int = Input(256, ge=1, le=16384)
        win_length: int = Input(0, ge=0, le=16384, description="0 = n_fft")
        n_mels: int = Input(80, ge=1, le=512)
        f_min: float = Input(0.0, ge=0.0, le=192000.0)
        f_max: float = Input(0.0, ge=0.0, le=192000.0, description="0 = half the sample rate")
        power: Literal[1.0, 2.0] = Input(2.0, description="1 = magnitude, 2 = power")
        mel_scale: Literal["slaney", "htk"] = Input("slaney")
        norm: Literal["slaney", "none"] = Input("slaney")

    outputs = (Output("spectrogram", "SPECTROGRAM"),)

    def run(self, audio: Any, n_fft: int, hop: int, win_length: int, n_mels: int, f_min: float, f_max: float,
            power: float, mel_scale: str, norm: str) -> dict:
        import torch

        from .spectral import magnitude, mel_filterbank

        wave, rate = _audio(audio)
        win_length = _check_stft(n_fft, hop, win_length, wave.shape[0] * wave.shape[1], wave.shape[-1])
        f_max = f_max or rate / 2
        if f_max > rate / 2:
            raise NodeInputError("f_max", f"{f_max} Hz is above the Nyquist frequency of {rate} Hz audio ({rate / 2})")
        if f_min >= f_max:
            raise NodeInputError("f_min", f"f_min ({f_min}) must be below f_max ({f_max})")
        filters = mel_filterbank(rate, n_fft, n_mels, f_min, f_max, mel_scale, None if norm == "none" else norm)
        values = torch.matmul(filters, magnitude(wave.reshape(-1, wave.shape[-1]), n_fft, hop, win_length, power))
        mel = {"n_mels": n_mels, "f_min": f_min, "f_max": f_max, "mel_scale": mel_scale, "norm": norm,
               "filters": filters}
        return {"spectrogram": spectrogram_value(values, sample_rate=rate, n_fft=n_fft, hop=hop, win_length=win_length,
                                                 length=wave.shape[-1], channels=wave.shape[1], scale="mel",
                                                 power=float(power), mel=mel)}


class SpectrogramScale(Node):
    """Convert a spectrogram's units: amplitude, dB (10·log10 power / 20·log10 magnitude) or natural log.

    "log" is what HiFi-GAN vocoders take (ln of mel magnitudes, floored at 1e-5); "db" suits viewing.
    """

    category = "audio/spectrogram"

    class Inputs(NodeInputs):
        spectrogram: Any = Input(port="SPECTROGRAM")
        units: Literal["db", "log", "amplitude"] = Input("db")
        floor_db: float = Input(-100.0, ge=-300.0, le=0.0, description="dB floor (db units)")

    outputs = (Output("spectrogram", "SPECTROGRAM"),)

    def run(self, spectrogram: Any, units: str, floor_db: float) -> dict:
        import torch

        from .spectral import amplitude_to_db

        spec = _spectrogram(spectrogram)
        amplitude = _amplitude(spec)
        if units == "db":
            values = amplitude_to_db(amplitude, power=spec["power"] == 2, floor_db=floor_db)
        elif units == "log":
            values = torch.log(amplitude.clamp_min(1e-5))
        else:
            values = amplitude
        return {"spectrogram": {**spec, "values": values, "units": units}}


class GriffinLim(Node):
    """Recover a waveform from a magnitude spectrogram (linear or mel, any units) by fast Griffin-Lim."""

    category = "audio/spectrogram"

    class Inputs(NodeInputs):
        spectrogram: Any = Input(port="SPECTROGRAM")
        iterations: int = Input(48, ge=1, le=1000)
        momentum: float = Input(0.99, ge=0.0, lt=1.0)
        seed: int = Input(0, seed=True)

    outputs = (Output("audio", "AUDIO"),)

    def run(self, spectrogram: Any, iterations: int, momentum: float, seed: int) -> dict:
        from .waveform import make_audio

        spec = _spectrogram(spectrogram)
        wave = _griffin_lim(self.context, spec, iterations, momentum, seed)
        return {"audio": make_audio(wave.reshape(-1, spec["channels"], wave.shape[-1]), spec["sample_rate"])}


MEL_INVERSION_ITERATIONS = 200     # mel_to_linear's projected-gradient steps, as long as MEL_INVERSION_WORK allows
MEL_INVERSION_WORK = 2**31         # linear values × iterations of one inversion: ~20 s on 2 CPU cores


def mel_inversion_iterations(linear_values: int) -> int:
    """How many iterations inverting a mel spectrogram of `linear_values` linear values (bins × frames × clips)
    takes: MEL_INVERSION_ITERATIONS, fewer past MEL_INVERSION_WORK (down to 0: the pseudo-inverse's estimate).
    No input bounded them: a 4,000 s clip's 200 took over 12 minutes."""
    return min(MEL_INVERSION_ITERATIONS, MEL_INVERSION_WORK // max(1, linear_values))


def _griffin_lim(context: Any, spec: dict, iterations: int, momentum: float, seed: int) -> Any:
    """Griffin-Lim on a spectrogram value (a mel one inverted to linear first), stopped by the node's interrupt
    between iterations; the node warns when the mel inversion was cut short (`mel_inversion_iterations`)."""
    import torch

    from .spectral import griffin_lim, mel_to_linear

    magnitude = _amplitude(spec) ** (1.0 / spec["power"])
    if spec["scale"] == "mel":
        filters = spec["mel"]["filters"]
        linear_values = magnitude.numel() // magnitude.shape[-2] * filters.shape[-1]
        steps = mel_inversion_iterations(linear_values)
        if steps < MEL_INVERSION_ITERATIONS:
            context.warn(f"this mel spectrogram is long ({linear_values:,} linear values): its inversion ran {steps} "
                         f"of {MEL_INVERSION_ITERATIONS} iterations, so that it takes seconds, not minutes; the "
                         f"sound may be a little rougher (vocode shorter pieces, or a linear spectrogram, for all)")
        if spec["power"] == 2:       # the filterbank summed power: invert in power, then take the root
            magnitude = mel_to_linear(magnitude ** 2, filters, steps, context.check_interrupted).sqrt()
        else:
            magnitude = mel_to_linear(magnitude, filters, steps, context.check_interrupted)
    bins = spec["n_fft"] // 2 + 1
    if magnitude.shape[-2] < bins:   # a band-limited spectrogram: the missing top bins are silent
        magnitude = torch.nn.functional.pad(magnitude, (0, 0, 0, bins - magnitude.shape[-2]))
    generator = torch.Generator().manual_seed(seed % (2**63))
    return griffin_lim(magnitude, spec["n_fft"], spec["hop"], spec["win_length"], iterations, momentum,
                       spec["length"], generator, before_iteration=context.check_interrupted)


class SpectrogramToImage(Node):
    """A spectrogram as an IMAGE (B, F, T, 3): dB from `low_db` (black) to `high_db` (white), low pitches at the bottom.

    Edit it with the image nodes (paint, inpaint, blend) and turn it back with ImageToSpectrogram.
    `colour` gives a false-colour view instead (for looking; ImageToSpectrogram expects grey).
    """

    category = "audio/spectrogram"

    class Inputs(NodeInputs):
        spectrogram: Any = Input(port="SPECTROGRAM")
        low_db: float = Input(-40.0, ge=-300.0, le=300.0)
        high_db: float = Input(60.0, ge=-300.0, le=300.0, description="a full-scale sine peaks at 20·log10(n_fft/2) "
                                                                       "dB (54 dB at n_fft 1024)")
        colour: bool = Input(False)

    outputs = (Output("image", "IMAGE"),)

    def run(self, spectrogram: Any, low_db: float, high_db: float, colour: bool) -> dict:
        from .spectral import amplitude_to_db
        from .spectrogram_image import colourise, to_image

        spec = _spectrogram(spectrogram)
        if high_db <= low_db:
            raise NodeInputError("high_db", f"must be above low_db ({low_db}), found {high_db}")
        values = spec["values"] if spec["units"] == "db" else amplitude_to_db(_amplitude(spec), spec["power"] == 2)
        image = to_image(values, low_db, high_db)
        return {"image": colourise(image) if colour else image}


class ImageToSpectrogram(Node):
    """An IMAGE (grey, from SpectrogramToImage, possibly edited) back into a spectrogram like `reference`.

    The phase is dropped (edits make it invalid): turn the result into audio with GriffinLim or Vocode.
    """

    category = "audio/spectrogram"

    class Inputs(NodeInputs):
        image: Any = Input(port="IMAGE")
        reference: Any = Input(port="SPECTROGRAM", description="the spectrogram the image was made from")
        low_db: float = Input(-40.0, ge=-300.0, le=300.0, description="as given to SpectrogramToImage")
        high_db: float = Input(60.0, ge=-300.0, le=300.0, description="as given to SpectrogramToImage")

    outputs = (Output("spectrogram", "SPECTROGRAM"),)

    def run(self, image: Any, reference: Any, low_db: float, high_db: float) -> dict:
        from .spectrogram_image import from_image

        spec = _spectrogram(reference, "reference")
        api.check_image(image, "image", type(self).__name__)
        if tuple(image.shape[:3]) != tuple(spec["values"].shape):
            raise NodeInputError("image", f"image of {tuple(image.shape[:3])} (batch, height, width) does not match "
                                          f"the reference spectrogram {tuple(spec['values'].shape)} (batch, bins, "
                                          f"frames); keep the image's size when editing it")
        return {"spectrogram": {**spec, "values": from_image(image, low_db, high_db), "units": "db", "phase": None}}


class AudioSpectrogramImage(Node):
    """A false-colour log-magnitude spectrogram picture of audio, for looking at results (SaveImage it)."""

    category = "audio/spectrogram"

    class Inputs(NodeInputs):
        audio: Any = Input(port="AUDIO")
        n_fft: int = Input(1024, ge=64, le=16384)
        hop: int = Input(128, ge=1, le=16384)
        max_hz: float = Input(4000.0, gt=0.0, le=192000.0, description="highest frequency shown")
        low_db: float = Input(-70.0, ge=-300.0, le=-1.0, description="dB below the loudest bin shown as black "
                                                                     "(the loudest bin is 0 dB, white)")

    outputs = (Output("image", "IMAGE"),)

    def run(self, audio: Any, n_fft: int, hop: int, max_hz: float, low_db: float) -> dict:
        from .spectral import amplitude_to_db, magnitude
        from .spectrogram_image import colourise, to_image

        wave, rate = _audio(audio)
        mono = wave.mean(dim=1)                                                      # (B, S)
        _check_spectrogram_size(n_fft, hop, mono.shape[0], mono.shape[-1])
        mag = magnitude(mono, n_fft, hop)
        rows = max(1, min(mag.shape[-2], int(max_hz / (rate / n_fft)) + 1))
        db = amplitude_to_db(mag[:, :rows], power=False, floor_db=-300.0)
        db = db - db.amax(dim=(1, 2), keepdim=True)
        return {"image": colourise(to_image(db, low_db, 0.0))}


# --- vocoders --------------------------------------------------------------------------------------

class VocoderValue:
    """What flows through VOCODER: kind "griffin_lim" (settings) or "hifigan" (generator + its mel settings)."""

    def __init__(self, kind: str, name: str, generator: Any = None, mel: dict | None = None,
                 iterations: int = 48, momentum: float = 0.99):
        self.kind, self.name, self.generator, self.mel = kind, name, generator, mel or {}
        self.iterations, self.momentum = iterations, momentum

    def __nodegraph_sizeof__(self) -> int:
        if self.generator is None:
            return 64
        return sum(p.numel() * p.element_size() for p in self.generator.parameters())


def _vocoder_files(model_paths: Any) -> list[str]:
    try:
        names, _ = model_paths.list(VOCODER_FOLDER)
        return list(names)
    except (KeyError, LookupError, OSError, ValueError):
        return []


class LoadVocoder(Node):
    """A vocoder: "griffin_lim" (no weights; any spectrogram), or a HiFi-GAN file in models/vocoder.

    HiFi-GAN files use transformers' SpeechT5HifiGan layout (SpeechT5's or AudioLDM's vocoder: a
    .safetensors of its state dict, with its config.json beside it as NAME.json or in the file's metadata
    "config"; without one the architecture is read from the weight shapes). `n_fft`, `f_min`, `f_max`
    describe the log-mel the vocoder was trained on (SpeechT5: 1024, 80, 7600; AudioLDM: 1024, 0, 8000).
    """

    category = "audio/vocoder"
    shared_cache = True     # its output depends only on model files: users of a server share it

    class Inputs(NodeInputs):
        vocoder_name: str = Input("griffin_lim", min_length=1, max_length=255,
                                  description="'griffin_lim' or a file in models/vocoder")
        n_fft: int = Input(1024, ge=16, le=16384)
        f_min: float = Input(80.0, ge=0.0, le=192000.0)
        f_max: float = Input(7600.0, ge=0.0, le=192000.0)
        iterations: int = Input(48, ge=1, le=1000, description="Griffin-Lim iterations")

    outputs = (Output("vocoder", "VOCODER"),)

    @classmethod
    def check_literals(cls, literals: dict[str, Any], list_model_files: Any) -> dict[str, str]:
        """A vocoder name that is neither "griffin_lim" nor a file of models/vocoder fails at validation."""
        name = literals.get("vocoder_name")
        if not isinstance(name, str) or name == "griffin_lim":
            return {}
        available, searched = list_model_files(VOCODER_FOLDER)
        if name in available:
            return {}
        from nodegraph.validation import model_file_error

        error = model_file_error("", "vocoder_name", VOCODER_FOLDER, name, ["griffin_lim", *available], searched)
        return {"vocoder_name": f"{error.message} ('griffin_lim' needs no file.)"}

    @classmethod
    def fingerprint(cls, literals: dict[str, Any], resolve_file: Any) -> str | None:
        name = str(literals.get("vocoder_name", ""))
        if name == "griffin_lim":
            return "griffin_lim"
        try:
            stat = resolve_file(VOCODER_FOLDER, name).stat()
        except (OSError, LookupError, ValueError):
            return "missing"
        return f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}"   # ctime: a rewrite with the old mtime put back

    def run(self, vocoder_name: str, n_fft: int, f_min: float, f_max: float, iterations: int) -> dict:
        import json

        from .hifigan import HifiGanConfig, HifiGanError, config_from_state_dict, generator_from_state_dict

        if vocoder_name == "griffin_lim":
            return {"vocoder": VocoderValue("griffin_lim", "griffin_lim", iterations=iterations)}
        weights = api.open_weights(self.context, vocoder_name, folder=VOCODER_FOLDER)    # errors name vocoder_name
        metadata = dict(getattr(weights, "metadata", None) or {})
        try:
            if "config" in metadata:
                config = HifiGanConfig.from_transformers(json.loads(metadata["config"]))
            else:
                config = None
                try:
                    path = self.context.service("resolve_file")(VOCODER_FOLDER, vocoder_name)
                    side = Path(path).with_suffix(".json")
                    if side.is_file():
                        config = HifiGanConfig.from_transformers(json.loads(side.read_text(encoding="utf-8")))
                except (LookupError, OSError, ValueError):
                    config = None
                if config is None:
                    config = config_from_state_dict({k: weights[k] for k in weights})
            generator = generator_from_state_dict({k: weights[k] for k in weights}, config)
        except (HifiGanError, ValueError, TypeError) as exc:
            raise NodeInputError("vocoder_name", f"{vocoder_name}: {exc}") from None
        if not 0 <= f_min < (f_max or config.sampling_rate / 2) <= config.sampling_rate / 2:
            raise NodeInputError("f_max", f"need 0 <= f_min < f_max <= {config.sampling_rate / 2} Hz for a "
                                          f"{config.sampling_rate} Hz vocoder")
        mel = {"n_mels": config.model_in_dim, "sample_rate": config.sampling_rate, "hop": config.hop, "n_fft": n_fft,
               "f_min": f_min, "f_max": f_max or config.sampling_rate / 2}
        return {"vocoder": VocoderValue("hifigan", vocoder_name, generator, mel)}


def _check_vocoder(vocoder: Any, input_name: str = "vocoder") -> VocoderValue:
    if not isinstance(vocoder, VocoderValue):
        raise NodeInputError(input_name, "expected a VOCODER value (from LoadVocoder)")
    return vocoder


def _hifigan_mismatch(vocoder: VocoderValue, sample_rate: int, hop: int) -> str | None:
    """Why a HiFi-GAN vocoder cannot vocode spectrograms of this rate and hop (None when it can)."""
    mel = vocoder.mel
    if sample_rate != mel["sample_rate"]:
        return f"the vocoder makes {mel['sample_rate']} Hz audio, the spectrogram is of {sample_rate} Hz audio"
    if hop != mel["hop"]:
        return f"the vocoder turns one frame into {mel['hop']} samples, the spectrogram's hop is {hop}"
    return None


def _hifigan_log_mel(vocoder: VocoderValue, magnitude: Any) -> Any:
    """Linear magnitudes (B, n_fft/2+1, T) → the vocoder's log-mel input (B, T, n_mels)."""
    import torch

    from .spectral import mel_filterbank

    mel = vocoder.mel
    filters = mel_filterbank(mel["sample_rate"], mel["n_fft"], mel["n_mels"], mel["f_min"], mel["f_max"])
    return torch.log(torch.matmul(filters, magnitude).clamp_min(1e-5)).transpose(1, 2)


class Vocode(Node):
    """Spectrogram → audio with a VOCODER.

    Griffin-Lim takes any spectrogram. A HiFi-GAN takes log-mel spectrograms made like its training data:
    the spectrogram must be a mel spectrogram with the vocoder's bins, sample rate and hop (MelSpectrogram
    with n_mels / hop set to match, SpectrogramScale "log"), or a linear one (projected on its mel filters);
    otherwise the error names what differs.
    """

    category = "audio/vocoder"

    class Inputs(NodeInputs):
        spectrogram: Any = Input(port="SPECTROGRAM")
        vocoder: Any = Input(port="VOCODER")
        seed: int = Input(0, seed=True, description="Griffin-Lim's initial phases")

    outputs = (Output("audio", "AUDIO"),)

    def run(self, spectrogram: Any, vocoder: Any, seed: int) -> dict:
        import torch

        from .waveform import make_audio

        spec = _spectrogram(spectrogram)
        vocoder = _check_vocoder(vocoder)
        if vocoder.kind == "griffin_lim":
            wave = _griffin_lim(self.context, spec, vocoder.iterations, vocoder.momentum, seed)
        else:
            problem = _hifigan_mismatch(vocoder, spec["sample_rate"], spec["hop"])
            if problem is None and spec["scale"] == "mel" and spec["mel"]["n_mels"] != vocoder.mel["n_mels"]:
                problem = f"the vocoder takes {vocoder.mel['n_mels']} mel bins, the spectrogram has " \
                          f"{spec['mel']['n_mels']}"
            if problem is not None:
                raise NodeInputError("vocoder", f"{vocoder.name} does not fit this spectrogram: {problem}; use a "
                                                f"matching spectrogram or the griffin_lim vocoder")
            if spec["scale"] == "mel":
                log_mel = torch.log((_amplitude(spec) ** (1.0 / spec["power"])).clamp_min(1e-5)).transpose(1, 2)
            else:
                log_mel = _hifigan_log_mel(vocoder, _amplitude(spec) ** (1.0 / spec["power"]))
            with torch.no_grad():
                wave = vocoder.generator(log_mel.float())
            wave = wave[..., : spec["length"]]
        return {"audio": make_audio(wave.reshape(-1, spec["channels"], wave.shape[-1]), spec["sample_rate"])}


# --- the tiny text-to-audio model ------------------------------------------------------------------

class AudioModelValue:
    """What flows through AUDIO_MODEL: the denoiser net, its SpectrogramSpec and a name."""

    def __init__(self, net: Any, spec: Any, name: str, info: dict | None = None):
        self.net, self.spec, self.name, self.info = net, spec, name, dict(info or {})

    def __nodegraph_sizeof__(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.net.parameters())


def _widths(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        values = ()
    if not 1 <= len(values) <= 5 or any(v < 8 or v % 8 for v in values):
        raise NodeInputError("widths", f"expected 1 to 5 comma-separated channel counts, multiples of 8 (e.g. "
                                       f"'128,128,160'), found {text!r}")
    return values


def _levels(text: str, count: int) -> tuple[int, ...]:
    """"1,2" → (1, 2): U-Net levels (0 .. count - 1) that get attention."""
    try:
        values = tuple(sorted({int(part) for part in text.replace(" ", "").split(",") if part}))
    except ValueError:
        values = ()
    if any(not 0 <= v < count for v in values) or not values and text.strip():
        raise NodeInputError("attention_levels", f"expected comma-separated levels from 0 to {count - 1} (one per "
                                                 f"width), e.g. '1,2', found {text!r}")
    return values


def _audio_model(value: Any, input_name: str = "audio_model") -> AudioModelValue:
    if not isinstance(value, AudioModelValue):
        raise NodeInputError(input_name, "expected an AUDIO_MODEL (from LoadAudioModel or TrainAudioModel)")
    return value


def _preview(latents: Any) -> Any:
    """latents (1, 1, F, T) → (1, 3, F, T) false-colour spectrogram for progress previews."""
    from .spectrogram_image import colourise, latent_to_image

    return colourise(latent_to_image(latents[:1].float())).permute(0, 3, 1, 2)


def wrap_audio_model(context: Any, audio_model: AudioModelValue, shift: float = 1.0) -> Any:
    """The MODEL value of an AUDIO_MODEL: its flow network through api.diffusion_model (one sampler stack)."""
    return api.diffusion_model(context, audio_model.net, prediction="flow", shift=shift, time_scale=1000.0,
                               latent_channels=1, preview=_preview, name=audio_model.name)


class LoadAudioModel(Node):
    """Load a tiny text-to-audio model: MODEL (for KSampler / Sample) and AUDIO_MODEL (prompts, latents, decoding).

    Looks in the model folder `audio`, then in the plugin's own models/ (`tiny_t2a.safetensors`, trained
    here by graphs/train_tiny_t2a.json). The model is a rectified flow over (B, 1, 256, 96) spectrogram
    latents (1.536 s at 16 kHz); sample it with scheduler "normal" or "simple" and any sampler.
    """

    category = "audio/text_to_audio"
    shared_cache = True     # its output depends only on model files: users of a server share it

    class Inputs(NodeInputs):
        model_name: str = Input(DEFAULT_MODEL, model_folder=MODEL_FOLDER,
                                description="file in models/audio or the plugin's shipped models")
        shift: float = Input(1.0, gt=0.0, le=100.0, description="flow timestep shift (1 = none)")

    outputs = (Output("model", "MODEL"), Output("audio_model", "AUDIO_MODEL"))

    def run(self, model_name: str, shift: float) -> dict:
        from .model_file import AudioModelError, audio_model_from_weights

        # resolved and confined in the model folder, which register_model_dirs extends with models/ here
        weights = api.open_weights(self.context, model_name, folder=MODEL_FOLDER)
        try:
            net, spec = audio_model_from_weights({k: weights[k] for k in weights}, getattr(weights, "metadata", None))
        except AudioModelError as exc:
            raise NodeInputError("model_name", f"{model_name}: {exc}") from None
        value = AudioModelValue(net, spec, Path(model_name).stem)
        return {"model": wrap_audio_model(self.context, value, shift), "audio_model": value}


class EncodeAudioPrompt(Node):
    """A prompt → CONDITIONING for the tiny text-to-audio model ({"tokens": (1, L)}; "" is the unconditional prompt).

    The model learned the captions of its synthesised world: "loud tone at c#4", "quiet a minor chord",
    "rising sweep", "clicks at 120 bpm", "noise burst" (README lists the grammar). A prompt in other words or
    order that names one sound of that world ("a loud C major chord", "soft beep at A4", "metronome, 120bpm",
    "ascending chirp") is encoded as that sound's caption; anything else is encoded word by word, unknown words
    as <unk>. `prompt` says what was encoded (and names the unknown words); a prompt with no known word is an
    error on `text`.

    A model trained with beat conditioning also gets {"beat": (1, 4, frames)}: for a click track with a tempo,
    the beat phase of every frame with the first click at `beat_offset` seconds (beat.py); zeros for any other
    prompt, the empty one included, so the positive and negative conditionings batch together. Such a model
    also follows tempos off the training grid (any whole bpm in 60 … 240, `synth.read_click_tempo`): the
    caption of the nearest grid tempo is encoded, the beat states the tempo asked, and `prompt` says both.
    """

    category = "audio/text_to_audio"
    version = "1.2.2"      # 1.2.2: a word with letters beyond a-z is one (unknown) word, named whole

    class Inputs(NodeInputs):
        audio_model: Any = Input(port="AUDIO_MODEL")
        text: str = Input("", multiline=True, max_length=2000)
        beat_offset: float = Input(0.05, ge=0.0, le=1.5, description="click tracks, models with beat conditioning: "
                                   "when the first click starts (s); the phase repeats every 60 / bpm s "
                                   "(training saw 0.02 … 0.3 s)")

    outputs = (Output("conditioning", "CONDITIONING"), Output("prompt", "STRING"))

    def run(self, audio_model: Any, text: str, beat_offset: float) -> dict:
        import torch

        from . import synth
        from .beat import batch_beat_features, beat_features
        from .text import VOCABULARY, tokenize, words

        model = _audio_model(audio_model)
        beat_model = model.net.config.beat_conditioning
        exact = synth.parse_caption(text)
        spec = None if exact is not None else synth.read_prompt(text)
        off_grid = synth.read_click_tempo(text) if beat_model and exact is None and spec is None else None
        if off_grid is not None:
            spec = off_grid[0]
        prompt = synth.caption(spec) if spec is not None else " ".join(text.split())
        unknown = list(dict.fromkeys(w for w in words(prompt) if w not in VOCABULARY))
        problem = synth.prompt_problem(text) if exact is None and spec is None and text.strip() else None
        if unknown and len(unknown) == len(set(words(prompt))):      # nothing in it the model can hear
            shown = ", ".join(repr(w) for w in unknown[:8])
            raise NodeInputError("text", f"{text[:80]!r} has no word the tiny audio model knows ({shown}), and "
                                         f"{problem}. It makes tones, chords, sweeps, clicks and noise: e.g. 'a loud "
                                         f"C major chord', 'rising sweep', 'clicks at 120 bpm', 'middle C' (the "
                                         f"plugin's README lists the words)")
        if problem:
            self.context.warn(f"{text[:80]!r} is not read as one sound the model learned: {problem}. It is encoded "
                              f"word by word" + (f" (unknown words as <unk>: {', '.join(unknown[:8])})" if unknown
                                                 else "") + ", so expect silence or a sound other than the one "
                              f"asked; the plugin's README lists what the model knows")
        tokens = torch.tensor([tokenize(prompt, max_tokens=model.net.config.max_tokens)])
        conditioning = {"tokens": tokens}
        if beat_model:                                                                    # (1, 4, T)
            conditioning["beat"] = (beat_features(off_grid[1], beat_offset, model.spec)[None] if off_grid is not None
                                    else batch_beat_features([exact or spec], [beat_offset], model.spec))
        if off_grid is not None:
            prompt += f" (beat at {off_grid[1]} bpm)"
        if unknown:
            prompt += f" (unknown words read as <unk>: {', '.join(unknown)})"
        return {"conditioning": conditioning, "prompt": prompt}


class EmptyAudioLatent(Node):
    """Zeros in the tiny model's latent layout (B, 1, 256 bins, 96 frames): the start of text-to-audio."""

    category = "audio/text_to_audio"

    class Inputs(NodeInputs):
        audio_model: Any = Input(port="AUDIO_MODEL")
        batch_size: int = Input(1, ge=1, le=256)

    outputs = (Output("latent", "LATENT"),)

    def run(self, audio_model: Any, batch_size: int) -> dict:
        import torch

        spec = _audio_model(audio_model).spec
        return {"latent": {"samples": torch.zeros(batch_size, 1, spec.bins, spec.frames)}}


class AudioToLatent(Node):
    """AUDIO → the tiny model's spectrogram latent, for audio-to-audio (KSampler denoise < 1) and inpainting.

    The audio must have the model's sample rate (16 kHz: add ResampleAudio) and be at most one clip long
    (1.536 s: add TrimPadAudio); shorter clips are padded with silence; channels are averaged to mono.
    """

    category = "audio/text_to_audio"

    class Inputs(NodeInputs):
        audio: Any = Input(port="AUDIO")
        audio_model: Any = Input(port="AUDIO_MODEL")

    outputs = (Output("latent", "LATENT"),)

    def run(self, audio: Any, audio_model: Any) -> dict:
        from .features import encode

        wave, rate = _audio(audio)
        spec = _audio_model(audio_model).spec
        if rate != spec.sample_rate:
            raise NodeInputError("audio", f"the model works at {spec.sample_rate} Hz, the audio is {rate} Hz; add "
                                          f"ResampleAudio (sample_rate {spec.sample_rate}) before this node")
        if wave.shape[-1] > spec.samples:
            raise NodeInputError("audio", f"the clip is {wave.shape[-1] / rate:.3f} s, over the model's length limit "
                                          f"of {spec.samples / rate:.3f} s; cut it with TrimPadAudio")
        return {"latent": {"samples": encode(wave.mean(dim=1), spec)}}


class LatentToAudio(Node):
    """The tiny model's spectrogram latent → AUDIO (16 kHz mono), by Griffin-Lim or a matching HiFi-GAN vocoder."""

    category = "audio/text_to_audio"

    class Inputs(NodeInputs):
        latent: Any = Input(port="LATENT")
        audio_model: Any = Input(port="AUDIO_MODEL")
        vocoder: Any = Input(None, port="VOCODER", description="default: Griffin-Lim")
        iterations: int = Input(48, ge=1, le=1000, description="Griffin-Lim iterations (no vocoder given)")
        seed: int = Input(0, seed=True, description="Griffin-Lim's initial phases")

    outputs = (Output("audio", "AUDIO"),)

    def run(self, latent: Any, audio_model: Any, vocoder: Any, iterations: int, seed: int) -> dict:
        import torch

        from .features import decode, decode_magnitude
        from .waveform import make_audio

        spec = _audio_model(audio_model).spec
        samples = api.check_latent(latent, "latent", type(self).__name__)
        if tuple(samples.shape[1:]) != (1, spec.bins, spec.frames):
            raise NodeInputError("latent", f"expected the tiny model's latent (B, 1, {spec.bins}, {spec.frames}), "
                                           f"found {tuple(samples.shape)}")
        if not bool(torch.isfinite(samples).all()):
            raise NodeInputError("latent", "the latent holds NaN / infinite values (the sampler diverged?)")
        if vocoder is None or _check_vocoder(vocoder).kind == "griffin_lim":
            steps = iterations if vocoder is None else vocoder.iterations
            wave = decode(samples, spec, iterations=steps, seed=seed % (2**63))
        else:
            problem = _hifigan_mismatch(vocoder, spec.sample_rate, spec.hop)
            if problem is not None:
                raise NodeInputError("vocoder", f"{vocoder.name} does not fit this model's spectrogram: {problem}; "
                                                f"use the griffin_lim vocoder")
            with torch.no_grad():
                wave = vocoder.generator(_hifigan_log_mel(vocoder, decode_magnitude(samples, spec)).float())
            wave = wave[..., : spec.samples]
        return {"audio": make_audio(wave[:, None], spec.sample_rate)}


class AudioGapMask(Node):
    """Mark a time span of an audio latent to be regenerated (inpainting: fill a gap); the rest is kept.

    Sets the latent's noise_mask (B, bins, frames) to 1 from `start` to `end` seconds (optionally only up to
    `max_hz`), with `feather` frames of soft edge; KSampler then regenerates only that span.
    """

    category = "audio/text_to_audio"

    class Inputs(NodeInputs):
        latent: Any = Input(port="LATENT")
        audio_model: Any = Input(port="AUDIO_MODEL")
        start: float = Input(0.5, ge=0.0, le=3600.0)
        end: float = Input(1.0, ge=0.0, le=3600.0)
        feather: int = Input(2, ge=0, le=32, description="frames of soft edge on each side")

    outputs = (Output("latent", "LATENT"), Output("mask", "MASK"))

    def run(self, latent: Any, audio_model: Any, start: float, end: float, feather: int) -> dict:
        import torch

        spec = _audio_model(audio_model).spec
        samples = api.check_latent(latent, "latent", type(self).__name__)
        if samples.ndim != 4:
            raise NodeInputError("latent", f"expected a spectrogram latent (B, 1, bins, frames), found "
                                           f"{tuple(samples.shape)}")
        frames = samples.shape[-1]
        seconds = spec.hop / spec.sample_rate
        first, last = int(start / seconds), int(round(end / seconds))
        if end <= start or first >= frames:
            raise NodeInputError("start" if first >= frames else "end",
                                 f"the gap must lie inside the clip (0 … {frames * seconds:.3f} s) with end > start; "
                                 f"found {start} … {end} s")
        t = torch.arange(frames, dtype=torch.float32)
        ramp_in = ((t - first + feather + 1) / (feather + 1)).clamp(0, 1)
        ramp_out = ((last + feather - t) / (feather + 1)).clamp(0, 1)
        row = torch.minimum(ramp_in, ramp_out)                                   # (T,)
        mask = row.expand(samples.shape[0], samples.shape[-2], frames).contiguous()   # (B, F, T)
        return {"latent": {**latent, "noise_mask": mask}, "mask": mask}


class AudioLatentToImage(Node):
    """The tiny model's spectrogram latent as a grey IMAGE (B, 256, 96, 3), low frequencies at the bottom.

    Paint on it with the image nodes (or make a MASK from it) and turn it back with ImageToAudioLatent.
    """

    category = "audio/text_to_audio"

    class Inputs(NodeInputs):
        latent: Any = Input(port="LATENT")

    outputs = (Output("image", "IMAGE"),)

    def run(self, latent: Any) -> dict:
        from .spectrogram_image import latent_to_image

        samples = api.check_latent(latent, "latent", type(self).__name__)
        if samples.ndim != 4 or samples.shape[1] != 1:
            raise NodeInputError("latent", f"expected a spectrogram latent (B, 1, bins, frames), found "
                                           f"{tuple(samples.shape)}")
        return {"image": latent_to_image(samples)}


class ImageToAudioLatent(Node):
    """A grey IMAGE (from AudioLatentToImage, possibly edited) back into the tiny model's latent."""

    category = "audio/text_to_audio"

    class Inputs(NodeInputs):
        image: Any = Input(port="IMAGE")

    outputs = (Output("latent", "LATENT"),)

    def run(self, image: Any) -> dict:
        from .spectrogram_image import image_to_latent

        api.check_image(image, "image", type(self).__name__)
        return {"latent": {"samples": image_to_latent(image)}}


class TrainAudioModel(Node):
    """Train the tiny text-to-audio model (rectified flow over spectrogram latents) on synthesised sounds.

    The sounds (tones C4…B5, major/minor chords, rising/falling sweeps, clicks at 60…180 bpm, noise
    bursts; quiet / loud) are synthesised on the fly; captions in the held-out fifth are never used.
    Checkpoints go to output/training/<run_name> every `checkpoint_every` steps; running the same graph
    again resumes there (a finished run is not repeated).
    """

    category = "audio/training"
    version = "1.3.0"

    class Inputs(NodeInputs):
        widths: str = Input("128,128,160", description="U-Net channels per level (frames, /2, /4, ...)")
        attention_levels: str = Input("1,2", description="levels with self- and cross-attention (0 = full frame "
                                                         "rate), comma-separated")
        positions: Literal["learned", "rope"] = Input(
            "learned", description="frame positions in self-attention: a learned table, or rotary (relative offsets)")
        beat_conditioning: bool = Input(False, description="also condition on the beat phase of click tracks, per "
                                                           "frame (EncodeAudioPrompt builds it from the tempo)")
        steps: int = Input(2000, ge=1, le=10_000_000)
        batch_size: int = Input(24, ge=1, le=4096)
        lr: float = Input(1e-3, gt=0.0, le=1.0)
        warmup_steps: int = Input(100, ge=0, le=1_000_000)
        ema_decay: float = Input(0.995, ge=0.0, lt=1.0)
        caption_dropout: float = Input(0.1, ge=0.0, le=1.0)
        seed: int = Input(0, seed=True)
        checkpoint_every: int = Input(100, ge=0, le=10_000_000)
        run_name: str = Input("tiny_t2a", file_name_in="output", subfolders=True, min_length=1, max_length=80)

    outputs = (Output("audio_model", "AUDIO_MODEL"), Output("report", "STRING"))

    def run(self, widths: str, attention_levels: str, positions: str, beat_conditioning: bool, steps: int,
            batch_size: int, lr: float, warmup_steps: int, ema_decay: float, caption_dropout: float, seed: int,
            checkpoint_every: int, run_name: str) -> dict:
        import json
        import time

        import torch

        from .denoiser import AudioDenoiser, AudioDenoiserConfig
        from .features import DEFAULT_SPEC
        from .training import train_audio_model

        levels = _widths(widths)
        config_net = AudioDenoiserConfig(widths=levels, attention_levels=_levels(attention_levels, len(levels)),
                                         positions=positions, beat_conditioning=beat_conditioning)
        folder = api.confine(Path(self.context.service("output_dir")) / "training", run_name, what="run name",
                             input_name="run_name", subfolders=True)
        kit = api.training(self.context)
        config = kit.TrainConfig(steps=steps, batch_size=batch_size, lr=lr, min_lr=lr / 40,
                                 warmup_steps=min(warmup_steps, max(0, steps - 1)), ema_decay=ema_decay, seed=seed,
                                 checkpoint_every=checkpoint_every)
        run = kit.TrainingRun(folder, {"net": repr(config_net), "train": repr(config), "dropout": caption_dropout,
                                       "spec": repr(DEFAULT_SPEC), "objective": "flow, x0 head, weight min(1/t^2, 16)"},
                              warn=self.context.warn, shown_as=f"training run {run_name!r}",
                              budget=self.context.services.get("output_budget"))
        torch.manual_seed(seed)
        net = AudioDenoiser(config_net)
        started = time.process_time()
        losses: list[float] = []

        def progress(step: int, total: int, info: dict) -> None:
            losses.append(info["loss"])
            self.context.progress(step, total, info={k: round(v, 6) for k, v in info.items()})
            self.context.check_interrupted()

        try:
            net = train_audio_model(net, kit, config, run, progress, caption_dropout)
        except kit.TrainingStateError as exc:
            raise NodeInputError("run_name", str(exc)) from None
        report = {"steps": steps, "batch_size": batch_size, "params": sum(p.numel() for p in net.parameters()),
                  "cpu_seconds_this_call": round(time.process_time() - started, 1),
                  "final_loss_mean_last_50": round(sum(losses[-50:]) / max(1, len(losses[-50:])), 5)
                  if losses else None}
        return {"audio_model": AudioModelValue(net, DEFAULT_SPEC, run_name, {"training": report}),
                "report": json.dumps(report)}


class SaveAudioModel(Node):
    """Write an AUDIO_MODEL (float16 weights + metadata) to models/audio/FILENAME.

    An existing file is never replaced unless `overwrite` is true: the model is then written as
    NAME_1.safetensors (the next free number); the `model_files` result names the file.
    """

    category = "audio/training"
    output_node = True
    version = "1.0.0"

    class Inputs(NodeInputs):
        audio_model: Any = Input(port="AUDIO_MODEL")
        filename: str = Input("my_audio_model.safetensors", file_name_in="model", file_suffix=".safetensors",
                              min_length=1, max_length=120,
                              description="a plain .safetensors name in models/audio")
        overwrite: bool = Input(False, description="replace an existing file of that name (else NAME_1, ...)")

    outputs = ()

    def run(self, audio_model: Any, filename: str, overwrite: bool) -> dict:
        from .model_file import save_audio_model

        if not filename.endswith(".safetensors") or filename.startswith("."):
            raise NodeInputError("filename", f"expected a plain file name ending in .safetensors (not starting with "
                                             f"'.'), found {filename!r}")
        folder = self.context.service("model_paths").directories(MODEL_FOLDER)[0]
        target = api.confine(folder, filename, what="file name", input_name="filename")
        folder.mkdir(parents=True, exist_ok=True)
        kit = api.training(self.context)
        path = kit.write_new_file(target, overwrite,
                                  lambda tmp: save_audio_model(tmp, audio_model.net, audio_model.spec,
                                                               audio_model.info),
                                  self.context.service("model_paths").directories(MODEL_FOLDER), self.context.warn)
        return {"model_files": [{"path": str(path), "kind": "audio_model", "format": "safetensors"}],
                "bytes": path.stat().st_size}


NODES: list[type[Node]] = [
    LoadAudio, SaveAudio, SynthesizeSound, ResampleAudio, TrimPadAudio, MixAudio, AudioGain, NormalizeAudio,
    FadeAudio, ConcatenateAudio, SilenceSpan, DownmixAudio,
    STFT, InverseSTFT, MelSpectrogram, SpectrogramScale, GriffinLim, SpectrogramToImage, ImageToSpectrogram,
    AudioSpectrogramImage, LoadVocoder, Vocode,
    LoadAudioModel, EncodeAudioPrompt, EmptyAudioLatent, AudioToLatent, LatentToAudio, AudioGapMask,
    AudioLatentToImage, ImageToAudioLatent,
    TrainAudioModel, SaveAudioModel,
]


@hookimpl
def register_types() -> list[PortType]:
    return [SPECTROGRAM, VOCODER, AUDIO_MODEL]   # AUDIO is the engine's (nodegraph/types.py)


@hookimpl
def register_nodes() -> list[type[Node]]:
    return NODES


@hookimpl
def register_model_folders() -> dict[str, list[str]]:
    return {MODEL_FOLDER: [".safetensors"], VOCODER_FOLDER: [".safetensors", ".bin", ".pt", ".pth"]}


@hookimpl
def register_comfyui_classes() -> dict[str, Any]:
    """ComfyUI's core audio nodes (2024): their prompts and workflows import as these nodes. ComfyUI's SaveAudio
    writes FLAC, so the imported SaveAudio does too; its LoadAudio names the file `audio` (its widgets: the file,
    then the upload button's)."""
    return {"LoadAudio": api.ComfyUIClass("audio.LoadAudio", ("audio",), inputs={"audio": "file"},
                                          input_files=frozenset({"audio"}), widgets=("file",)),
            "SaveAudio": api.ComfyUIClass("audio.SaveAudio", (), fixed={"format": "flac"},
                                          widgets=("filename_prefix",))}


@hookimpl
def register_model_dirs() -> dict[str, list[str]]:
    return {MODEL_FOLDER: [str(SHIPPED_MODELS)]}
