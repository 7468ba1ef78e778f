"""An analytic detector: reads pitch, chord, tempo, sweep direction, noisiness and loudness back from audio.

No learned parts, so it measures the generator and not a second model. All functions take a mono
float numpy waveform at 16 kHz (``synth.SAMPLE_RATE``).

    pitch(wave)          fundamental in Hz: the strongest peak of a zero-padded Hann FFT in 200–1100 Hz,
                         refined by parabolic interpolation of the log spectrum (resolution ≪ 1 cent)
    semitone_error(f, midi)   12·log2(f / note_frequency(midi)), signed
    chord(wave)          (root MIDI class 0–11, "major" | "minor"): a 12-bin chroma vector of the spectrum
                         (180–1600 Hz, each FFT bin credited to its nearest pitch class) matched against
                         the 24 triad templates (Fujishima 1999, "pitch class profiles")
    tempo(wave)          beats per minute from onset detection: log-energy novelty at 4 ms hops, peaks over
                         an adaptive threshold at least 120 ms apart, 60 / median inter-onset interval
    sweep_direction(wave)  "rising" / "falling" / None: the slope of the per-frame peak frequency (log Hz)
    spectral_flatness(wave)  geometric / arithmetic mean of the power spectrum over the active frames
    loudness(wave)       the nearest loudness word to synth.active_level (log distance)
    score_clip(wave, spec)  a dict of per-attribute hits for the attributes `spec` asks for
"""

from __future__ import annotations

import math

import numpy as np

from .synth import LOUDNESS_RMS, SAMPLE_RATE, NOTE_NAMES, SoundSpec, active_level, note_frequency

_MAJOR = (0, 4, 7)
_MINOR = (0, 3, 7)


def _spectrum(wave: np.ndarray, padded: int = 1 << 17) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies, power) of the Hann-windowed, zero-padded clip."""
    windowed = wave * np.hanning(len(wave))
    power = np.abs(np.fft.rfft(windowed, max(padded, len(wave)))) ** 2
    return np.fft.rfftfreq(max(padded, len(wave)), 1 / SAMPLE_RATE), power


def pitch(wave: np.ndarray, low: float = 200.0, high: float = 1100.0) -> float | None:
    """The fundamental (Hz) as the strongest spectral peak in [low, high]; None for silence."""
    if not np.any(wave):
        return None
    freqs, power = _spectrum(wave)
    band = np.nonzero((freqs >= low) & (freqs <= high))[0]
    k = band[np.argmax(power[band])]
    a, b, c = np.log(power[k - 1: k + 2] + 1e-30)
    denominator = a - 2 * b + c
    offset = 0.5 * (a - c) / denominator if denominator < 0 else 0.0
    return float(freqs[k] + offset * (freqs[1] - freqs[0]))


def semitone_error(frequency: float | None, midi: int) -> float:
    """Signed distance in semitones from the note (inf when no pitch was found)."""
    if frequency is None or frequency <= 0:
        return math.inf
    return 12 * math.log2(frequency / note_frequency(midi))


def chroma(wave: np.ndarray, low: float = 180.0, high: float = 1600.0) -> np.ndarray:
    """Energy per pitch class (12,), normalised to sum 1."""
    freqs, power = _spectrum(wave, 1 << 15)
    band = (freqs >= low) & (freqs <= high)
    midi = np.round(69 + 12 * np.log2(freqs[band] / 440.0)).astype(int)
    profile = np.bincount(midi % 12, weights=power[band], minlength=12)
    return profile / max(profile.sum(), 1e-30)


def chord(wave: np.ndarray) -> tuple[int, str] | None:
    """(root pitch class, "major" | "minor") of the best-matching triad template; None for silence."""
    if not np.any(wave):
        return None
    profile = chroma(wave)
    best, best_score = None, -1.0
    for root in range(12):
        for quality, intervals in (("major", _MAJOR), ("minor", _MINOR)):
            score = sum(profile[(root + i) % 12] for i in intervals)
            if score > best_score:
                best, best_score = (root, quality), score
    return best


def onsets(wave: np.ndarray, hop: int = 64, frame: int = 256, min_gap: float = 0.12) -> np.ndarray:
    """Onset times (s): peaks of the positive log-energy difference over an adaptive threshold."""
    count = 1 + max(0, len(wave) - frame) // hop
    if count < 3:
        return np.zeros(0)
    index = np.arange(frame)[None, :] + hop * np.arange(count)[:, None]
    energy = np.log(np.mean(np.square(wave[index]), axis=1) + 1e-10)
    novelty = np.maximum(np.diff(energy, prepend=energy[0]), 0.0)
    threshold = max(0.35 * novelty.max(), 1.0)
    gap = int(min_gap * SAMPLE_RATE / hop)
    found: list[int] = []
    for k in np.argsort(-novelty):
        if novelty[k] < threshold:
            break
        if all(abs(k - j) >= gap for j in found):
            found.append(int(k))
    return np.sort(np.array(found)) * hop / SAMPLE_RATE


def tempo(wave: np.ndarray) -> float | None:
    """Beats per minute from the median inter-onset interval; None with fewer than two onsets."""
    times = onsets(wave)
    if len(times) < 2:
        return None
    return float(60.0 / np.median(np.diff(times)))


def _frames_power(wave: np.ndarray, n_fft: int = 1024, hop: int = 256) -> tuple[np.ndarray, np.ndarray]:
    count = 1 + max(0, len(wave) - n_fft) // hop
    index = np.arange(n_fft)[None, :] + hop * np.arange(count)[:, None]
    power = np.abs(np.fft.rfft(wave[index] * np.hanning(n_fft), axis=1)) ** 2
    return np.fft.rfftfreq(n_fft, 1 / SAMPLE_RATE), power


def sweep_direction(wave: np.ndarray) -> str | None:
    """"rising" / "falling" from the slope of the peak frequency over the loud frames; None if flat or silent."""
    freqs, power = _frames_power(wave)
    energy = power.sum(axis=1)
    if energy.max() <= 0:
        return None
    active = np.nonzero(energy > 0.1 * energy.max())[0]
    if len(active) < 4:
        return None
    peaks = np.log(freqs[np.argmax(power[active][:, 1:], axis=1) + 1])
    slope = np.polyfit(active.astype(float), peaks, 1)[0] * len(active)   # log-Hz change over the active span
    if abs(slope) < 0.3:
        return None
    return "rising" if slope > 0 else "falling"


def spectral_flatness(wave: np.ndarray) -> float:
    """Wiener entropy of the loud frames' power below 4 kHz (1 = white noise, → 0 = pure tones)."""
    freqs, power = _frames_power(wave)
    power = power[:, (freqs > 50) & (freqs < 3500)]
    energy = power.sum(axis=1)
    if energy.max() <= 0:
        return 0.0
    active = power[energy > 0.1 * energy.max()] + 1e-20
    return float(np.mean(np.exp(np.mean(np.log(active), axis=1)) / np.mean(active, axis=1)))


def loudness(wave: np.ndarray) -> str:
    """The loudness word whose target level is nearest (in log) to the clip's active level."""
    level = max(active_level(wave), 1e-9)
    return min(LOUDNESS_RMS, key=lambda word: abs(math.log(level / LOUDNESS_RMS[word])))


def score_clip(wave: np.ndarray, spec: SoundSpec) -> dict[str, float]:
    """Per-attribute hits (1.0 / 0.0) for what `spec` asks for, plus measured values.

    Keys: pitch_semitone (|error| < 1 semitone), pitch_note (nearest note right: |error| < 0.5),
    chord_quality, chord_root, tempo_5pct, sweep, noise (flatness > 0.3), loudness; and the
    measured values pitch_error, tempo_bpm.
    """
    wave = np.asarray(wave, dtype=np.float64)
    result: dict[str, float] = {"loudness": float(loudness(wave) == spec.loudness)}
    if spec.kind == "tone":
        error = semitone_error(pitch(wave), spec.note)
        result.update(pitch_semitone=float(abs(error) < 1.0), pitch_note=float(abs(error) < 0.5),
                      pitch_error=error)
    elif spec.kind == "chord":
        found = chord(wave)
        result.update(chord_quality=float(found is not None and found[1] == spec.quality),
                      chord_root=float(found is not None and found[0] == spec.note % 12))
    elif spec.kind == "clicks":
        bpm = tempo(wave)
        result.update(tempo_5pct=float(bpm is not None and abs(bpm / spec.tempo - 1) <= 0.05),
                      tempo_bpm=bpm if bpm is not None else math.nan)
    elif spec.kind == "sweep":
        result.update(sweep=float(sweep_direction(wave) == spec.direction))
    else:
        result.update(noise=float(spectral_flatness(wave) > 0.3))
    return result


def describe_note(midi: int) -> str:
    """'C#4'-style name for reports."""
    return f"{NOTE_NAMES[midi % 12].upper()}{midi // 12 - 1}"
