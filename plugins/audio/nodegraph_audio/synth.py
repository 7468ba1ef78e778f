"""Procedurally synthesised, captioned sounds: the training world of the tiny text-to-audio model.

Every sound is 1.536 s of mono audio at 16 kHz (``CLIP_SAMPLES`` = 24576), band-limited below
4 kHz (the model's spectrogram band), described by a ``SoundSpec`` and captioned from templates.

    SoundSpec           kind + attributes: tone (note), chord (root, quality), sweep (direction),
                        clicks (tempo), noise (a burst); loudness "quiet" / "medium" / "loud"
    NOTE_NAMES, note_frequency(midi), note_name(midi)   equal temperament, A4 = 440 Hz
    synthesize(spec, rng)   the waveform (float32 numpy, (CLIP_SAMPLES,)), scaled to the loudness
    synthesize_timed(spec, rng)   the same waveform and the time of its first click (s; None for other kinds),
                        which the beat-phase conditioning of training is built from (beat.py)
    caption(spec)       the caption (template chosen by ``spec.template``)
    parse_caption(text) the spec a caption asks for (None if it is not a caption of this world)
    read_prompt(text)   the same for prompts in other words and orders ("a loud C major chord", "120bpm metronome")
    prompt_problem(text) why read_prompt reads no sound ("it names two sounds", "C9 is outside ..."), for messages
    read_click_tempo(text)   a click track at a tempo off the world's grid ("clicks at 90 bpm", 60 … 240 bpm):
                        the spec of the nearest grid tempo and the tempo asked (for beat conditioning)
    all_prompts()       every (caption, spec) pair of the world (the grammar is finite)
    is_held_out(text)   a fixed fifth of the captions, never trained on (the benchmark's prompts)
    sample_spec(rng)    a random training spec whose caption is not held out

Loudness is measured as the 95th percentile of 20 ms frame RMS ("active level"), so a sparse click
track and a sustained tone of the same loudness word peak at the same level; detect.py reads it back.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, replace

import numpy as np

SAMPLE_RATE = 16000
CLIP_SAMPLES = 24576                    # 1.536 s: 96 hops of 256 samples
BAND_HZ = 4000.0                        # the model's spectrogram band; everything synthesised stays below it
NOTE_NAMES = ("c", "c#", "d", "d#", "e", "f", "f#", "g", "g#", "a", "a#", "b")
TONE_NOTES = tuple(range(60, 84))       # C4 … B5 (MIDI)
CHORD_ROOTS = tuple(range(60, 72))      # C4 … B4; the fifth of B4 is F#5
TEMPOS = (60, 80, 100, 120, 140, 160, 180)
KINDS = ("tone", "chord", "sweep", "clicks", "noise")
LOUDNESS = ("quiet", "medium", "loud")
#: target active level (95th percentile of 20 ms frame RMS) per loudness word
LOUDNESS_RMS = {"quiet": 0.02, "medium": 0.06, "loud": 0.18}
KIND_WEIGHTS = (0.3, 0.3, 0.1, 0.2, 0.1)
TEMPLATES = {
    "tone": ("{l} tone at {n}", "{l} {n} tone", "{l} note {n}"),
    "chord": ("{l} {n} {q} chord", "{l} {q} chord on {n}", "{l} chord {n} {q}"),
    "sweep": ("{l} {d} sweep", "{l} sweep {d}", "{l} {d} tone sweep"),
    "clicks": ("{l} clicks at {t} bpm", "{l} click track {t} bpm", "{l} metronome at {t} bpm"),
    "noise": ("{l} noise burst", "{l} burst of noise", "{l} white noise burst"),
}


class SynthError(ValueError):
    """A spec that does not describe a sound of this world."""


@dataclass(frozen=True)
class SoundSpec:
    """What a caption asks for. `note` is a MIDI number (tone: the note; chord: the root)."""

    kind: str
    loudness: str = "medium"
    note: int | None = None
    quality: str | None = None          # chord: "major" | "minor"
    direction: str | None = None        # sweep: "rising" | "falling"
    tempo: int | None = None            # clicks: beats per minute
    template: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SynthError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.loudness not in LOUDNESS:
            raise SynthError(f"loudness must be one of {LOUDNESS}, got {self.loudness!r}")
        if self.kind == "tone" and self.note not in TONE_NOTES:
            raise SynthError(f"a tone needs a note in C4 … B5 (MIDI 60 … 83), got {self.note!r}")
        if self.kind == "chord" and (self.note not in CHORD_ROOTS or self.quality not in ("major", "minor")):
            raise SynthError(f"a chord needs a root in C4 … B4 and quality major/minor, got {self.note!r}, "
                             f"{self.quality!r}")
        if self.kind == "sweep" and self.direction not in ("rising", "falling"):
            raise SynthError(f"a sweep needs direction rising/falling, got {self.direction!r}")
        if self.kind == "clicks" and self.tempo not in TEMPOS:
            raise SynthError(f"clicks need a tempo in {TEMPOS}, got {self.tempo!r}")
        if not 0 <= self.template < len(TEMPLATES[self.kind]):
            raise SynthError(f"template must be 0 … {len(TEMPLATES[self.kind]) - 1}, got {self.template!r}")


def note_frequency(midi: float) -> float:
    """Equal-temperament frequency in Hz (A4 = MIDI 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((midi - 69) / 12)


def note_name(midi: int) -> str:
    """'c4', 'f#5', ... (lower case, sharps)."""
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def parse_note(word: str) -> int | None:
    """The MIDI number of a note word such as 'c#4' (None if it is not one)."""
    match = re.fullmatch(r"([a-g]#?)(\d)", word.lower())
    if match is None or match[1] not in NOTE_NAMES:
        return None
    return NOTE_NAMES.index(match[1]) + 12 * (int(match[2]) + 1)


def caption(spec: SoundSpec) -> str:
    """The caption of a spec (its template; loudness "medium" adds no word)."""
    template = TEMPLATES[spec.kind][spec.template]
    text = template.format(l="" if spec.loudness == "medium" else spec.loudness,
                           n=note_name(spec.note) if spec.note is not None else "",
                           q=spec.quality or "", d=spec.direction or "", t=spec.tempo or "")
    return " ".join(text.split())


def all_prompts() -> list[tuple[str, SoundSpec]]:
    """Every caption of the world with its spec (a fixed order)."""
    specs: list[SoundSpec] = []
    for loudness in LOUDNESS:
        for template in range(3):
            specs += [SoundSpec("tone", loudness, note=n, template=template) for n in TONE_NOTES]
            specs += [SoundSpec("chord", loudness, note=n, quality=q, template=template)
                      for n in CHORD_ROOTS for q in ("major", "minor")]
            specs += [SoundSpec("sweep", loudness, direction=d, template=template) for d in ("rising", "falling")]
            specs += [SoundSpec("clicks", loudness, tempo=t, template=template) for t in TEMPOS]
            specs += [SoundSpec("noise", loudness, template=template)]
    return [(caption(s), s) for s in specs]


def is_held_out(text: str) -> bool:
    """Whether a caption belongs to the held-out fifth (a hash of its words; never trained on)."""
    normalised = " ".join(text.lower().split())
    return int(hashlib.md5(normalised.encode()).hexdigest(), 16) % 5 == 0


def held_out_prompts() -> list[tuple[str, SoundSpec]]:
    """The held-out captions and their specs (the benchmark's prompts)."""
    return [(text, spec) for text, spec in all_prompts() if is_held_out(text)]


def parse_caption(text: str) -> SoundSpec | None:
    """The spec a caption of this world asks for (any template), or None."""
    normalised = " ".join(text.lower().split())
    for _, spec in all_prompts():
        if caption(spec) == normalised:
            return spec
    return None


# --- prompts as people write them ---------------------------------------------------------------

_KIND_WORDS = {
    "tone": "tone tones note notes beep beeps sine pitch".split(),
    "chord": "chord chords triad".split(),
    "sweep": "sweep sweeps chirp chirps glide glissando siren".split(),
    "clicks": "clicks click clicking tick ticks ticking metronome beat beats pulse pulses".split(),
    "noise": "noise burst hiss static".split(),
}
_LOUDNESS_WORDS = {"quiet": "quiet soft softly faint gentle quietly".split(),
                   "medium": "medium moderate normal".split(),
                   "loud": "loud loudly strong powerful forte".split()}
_DIRECTION_WORDS = {"rising": "rising rises rise ascending upward upwards up".split(),
                    "falling": "falling falls fall descending downward downwards down".split()}
_QUALITY_WORDS = {"major": "major maj".split(), "minor": "minor min".split()}
_FLATS = {"db": "c#", "eb": "d#", "gb": "f#", "ab": "g#", "bb": "a#"}


def _prompt_words(text: str) -> list[str]:
    """Lower-case words with notes joined ("C sharp 4", "C# 4", "Db4" → "c#4") and tempos split ("120bpm")."""
    text = text.lower().replace("♯", "#").replace("♭", "b")
    text = re.sub(r"\b([a-g])\s*(?:sharp|#)(?:\s*(\d)\b)?", lambda m: f"{m[1]}#{m[2] or ''}", text)
    text = re.sub(r"\b([a-g])\s*flat(?:\s*(\d)\b)?", lambda m: f"{m[1]}b{m[2] or ''}", text)
    text = re.sub(r"\b(\d+)\s*bpm\b", r"\1 bpm", text)
    text = re.sub(r"\bbeats?\s+(?:per|a|each)\s+minute\b", "bpm", text)
    text = re.sub(r"\bmiddle\s+c\b", "c4", text)
    text = re.sub(r"\b([a-g]#?)\s+(\d)\b", r"\1\2", text)        # "c# 4" → "c#4"
    out = []
    for word in re.findall(r"[a-z0-9#]+", text):
        flat = re.fullmatch(r"([a-g]b)(\d?)", word)
        out.append(_FLATS[flat[1]] + flat[2] if flat and flat[1] in _FLATS else word)
    return out


def _bare_chord_roots(words: list[str]) -> set[int]:
    """Roots named without an octave ("C major chord" → C4); a lone "a" counts only right before the quality
    ("a minor chord" is A minor; "a C major chord" is C major)."""
    qualities = _QUALITY_WORDS["major"] + _QUALITY_WORDS["minor"]
    return {parse_note(f"{word}4") for i, word in enumerate(words)
            if re.fullmatch(r"[a-g]#?", word) and (word != "a" or words[i + 1: i + 2] and words[i + 1] in qualities)}


BEAT_TEMPO_RANGE = (60, 240)    # bpm a beat-conditioned model follows off the grid (README "Prompts in other words")


def read_click_tempo(text: str) -> tuple[SoundSpec, int] | None:
    """A click-track prompt whose tempo is off the training grid but inside BEAT_TEMPO_RANGE, or None.

    Returns the spec of the nearest grid tempo (its caption is what the text encoder knows) and the tempo
    asked, which only beat conditioning can carry: "clicks at 90 bpm" → (clicks at 80 bpm, 90). None for
    prompts `read_prompt` reads (grid tempos), for other sounds and for prompts naming no or two tempos.
    """
    words = _prompt_words(text)
    if read_prompt(text) is not None or "bpm" not in words:
        return None
    tempos = {int(w) for w in words if w.isdigit() and BEAT_TEMPO_RANGE[0] <= int(w) <= BEAT_TEMPO_RANGE[1]}
    if len(tempos) != 1:
        return None
    asked = tempos.pop()
    nearest = min(TEMPOS, key=lambda t: (abs(t - asked), t))
    grid_words = [str(nearest) if w == str(asked) else w for w in words]
    spec = read_prompt(" ".join(grid_words))
    return (spec, asked) if spec is not None and spec.kind == "clicks" else None


def read_prompt(text: str) -> SoundSpec | None:
    """The spec a prompt asks for, in any phrasing: "a loud C major chord", "soft beep at A4", "metronome, 120
    bpm", "ascending chirp", "quiet hiss", "middle C" (a note alone is a tone); None when it names no sound of
    this world or names two ("a rising sweep and a loud tone": `prompt_problem` says why).

    Exact captions are `parse_caption`'s; this reads kind, loudness (default medium), note (tones: with an octave,
    C4 … B5; chords: a root C4 … B4, octave 4 when left out), quality, direction and tempo (60 … 180 in steps of
    20) from the words in any order.
    """
    read = _read_prompt(text)
    return read if isinstance(read, SoundSpec) else None


def prompt_problem(text: str) -> str | None:
    """Why `read_prompt` reads no sound in `text` (for a warning or an error), or None when it reads one."""
    read = _read_prompt(text)
    return None if isinstance(read, SoundSpec) else read


_JOINERS = frozenset({"and", "then", "plus", "followed"})


def _read_prompt(text: str) -> SoundSpec | str:
    """`read_prompt`'s work: the spec, or the reason there is none."""
    words = _prompt_words(text)

    def named(table: dict[str, list[str]], part: list[str] = words) -> set[str]:
        return {key for key, spellings in table.items() if any(w in spellings for w in part)}

    segments, current = [], []
    for word in words:                               # "a rising sweep and a loud tone": two sounds
        if word in _JOINERS:
            segments.append(current)
            current = []
        else:
            current.append(word)
    segments.append(current)
    per_segment = [kinds for kinds in (named(_KIND_WORDS, part) for part in segments) if kinds]
    if len(per_segment) > 1 and len(set().union(*per_segment)) > 1:
        found = " and ".join(sorted(set().union(*per_segment)))
        return f"it names two sounds ({found}); the model makes one sound per clip: keep one"
    kinds = named(_KIND_WORDS)
    if "chord" in kinds:
        kinds = {"chord"}                            # "chord notes", "a chord of three tones"
    elif "sweep" in kinds:
        kinds = {"sweep"}                            # "tone sweep"
    elif "noise" in kinds:
        kinds = {"noise"}                            # "white noise burst"
    elif "clicks" in kinds and "bpm" in words:
        kinds = {"clicks"}                           # "beats" in a click track
    loudness, directions, qualities = named(_LOUDNESS_WORDS), named(_DIRECTION_WORDS), named(_QUALITY_WORDS)
    numbers = [int(w) for w in words if w.isdigit()]
    tempos = {n for n in numbers if n in TEMPOS}
    note_words = [w for w in words if re.fullmatch(r"[a-g]#?\d+", w)]
    notes = {n for n in (parse_note(w) for w in words) if n is not None}
    if not kinds and len(notes) == 1 and not (directions or tempos or "bpm" in words):
        kinds = {"chord"} if qualities else {"tone"}  # "middle C", "c sharp 4", "c4 major"
    if not kinds:
        return "it names no sound of the tiny world: tone (with a note, e.g. 'a tone at a4'), chord, sweep, clicks " \
               "or noise"
    if len(kinds) > 1:
        return f"it names {len(kinds)} sounds ({', '.join(sorted(kinds))}); keep one"
    if len(loudness) > 1:
        return f"it names {len(loudness)} loudness words ({', '.join(sorted(loudness))}); keep one"
    kind, level = kinds.pop(), (loudness.pop() if loudness else "medium")
    if kind == "tone":
        if len(notes) == 1 and min(TONE_NOTES) <= next(iter(notes)) <= max(TONE_NOTES):
            return SoundSpec("tone", level, note=notes.pop())
        if not note_words:
            return "a tone needs a note with its octave, C4 … B5 (e.g. 'a tone at a4', 'middle C')"
        if len(notes) > 1:
            return f"it names {len(notes)} notes ({', '.join(note_words)}); a tone has one"
        return (f"{note_words[0].upper()} is outside the notes the model was trained on: tones go from C4 to B5 "
                f"(MIDI 60 … 83)")
    if kind == "chord":
        if len(qualities) != 1:
            return "a chord needs major or minor (e.g. 'a c4 major chord')" if not qualities else \
                "it names both major and minor; keep one"
        roots = notes or _bare_chord_roots(words)
        if len(roots) != 1:
            return "a chord needs one root note, C4 … B4 (e.g. 'a C major chord')"
        root = roots.pop()
        if root not in CHORD_ROOTS:
            return f"the root {note_name(root).upper()} is outside the chord roots the model was trained on (C4 … B4)"
        return SoundSpec("chord", level, note=root, quality=qualities.pop())
    if kind == "sweep":
        if len(directions) == 1:
            return SoundSpec("sweep", level, direction=directions.pop())
        return "a sweep needs one direction: rising or falling"
    if kind == "clicks":
        if len(tempos) == 1:
            return SoundSpec("clicks", level, tempo=tempos.pop())
        if len(tempos) > 1:
            return f"it names {len(tempos)} tempos ({', '.join(map(str, sorted(tempos)))}); keep one"
        if numbers:
            return (f"{numbers[0]} bpm is not a tempo the model was trained on ({TEMPOS[0]} … {TEMPOS[-1]} bpm in "
                    f"steps of 20; a model with beat conditioning follows any whole tempo from "
                    f"{BEAT_TEMPO_RANGE[0]} to {BEAT_TEMPO_RANGE[1]})")
        return "clicks need a tempo (e.g. 'clicks at 120 bpm')"
    return SoundSpec("noise", level)


def sample_spec(rng: random.Random) -> SoundSpec:
    """A random training spec (kinds by KIND_WEIGHTS) whose caption is not held out."""
    while True:
        kind = rng.choices(KINDS, KIND_WEIGHTS)[0]
        loudness = rng.choice(LOUDNESS)
        template = rng.randrange(3)
        if kind == "tone":
            spec = SoundSpec(kind, loudness, note=rng.choice(TONE_NOTES), template=template)
        elif kind == "chord":
            spec = SoundSpec(kind, loudness, note=rng.choice(CHORD_ROOTS), quality=rng.choice(("major", "minor")),
                             template=template)
        elif kind == "sweep":
            spec = SoundSpec(kind, loudness, direction=rng.choice(("rising", "falling")), template=template)
        elif kind == "clicks":
            spec = SoundSpec(kind, loudness, tempo=rng.choice(TEMPOS), template=template)
        else:
            spec = SoundSpec(kind, loudness, template=template)
        if not is_held_out(caption(spec)):
            return spec


# --- synthesis -------------------------------------------------------------------------------------

def _envelope(rng: random.Random, attack: float = 0.01, release: float = 0.05) -> np.ndarray:
    """A gate from a random start (0 … 0.15 s) to a random end (1.1 … 1.5 s) with linear attack / release."""
    n = CLIP_SAMPLES
    start = int(rng.uniform(0.0, 0.15) * SAMPLE_RATE)
    end = int(rng.uniform(1.1, 1.5) * SAMPLE_RATE)
    t = np.arange(n)
    up = np.clip((t - start) / (attack * SAMPLE_RATE), 0, 1)
    down = np.clip((end - t) / (release * SAMPLE_RATE), 0, 1)
    return (up * down).astype(np.float64)


def _harmonic_tone(frequency: float, rng: random.Random) -> np.ndarray:
    """A sine at `frequency` with a weak second harmonic (random phase and level)."""
    t = np.arange(CLIP_SAMPLES) / SAMPLE_RATE
    second = rng.uniform(0.0, 0.25)
    return (np.sin(2 * np.pi * frequency * t + rng.uniform(0, 2 * np.pi))
            + second * np.sin(4 * np.pi * frequency * t + rng.uniform(0, 2 * np.pi)))


def _lowpass_noise(count: int, np_rng: np.random.Generator, cutoff: float = 3600.0) -> np.ndarray:
    """White noise band-limited below `cutoff` Hz (an FFT brick wall: nothing leaks past the band)."""
    spectrum = np.fft.rfft(np_rng.standard_normal(count))
    spectrum[np.fft.rfftfreq(count, 1 / SAMPLE_RATE) > cutoff] = 0
    return np.fft.irfft(spectrum, count)


def active_level(wave: np.ndarray) -> float:
    """The 95th percentile of 20 ms frame RMS (the loudness measure of this world)."""
    frame = SAMPLE_RATE // 50
    usable = len(wave) // frame * frame
    if usable == 0:
        return float(np.sqrt(np.mean(np.square(wave)))) if len(wave) else 0.0
    rms = np.sqrt(np.mean(np.square(wave[:usable].reshape(-1, frame)), axis=1))
    return float(np.percentile(rms, 95))


def synthesize(spec: SoundSpec, rng: random.Random) -> np.ndarray:
    """The waveform of `spec` (float32, (CLIP_SAMPLES,)), scaled to its loudness; `rng` varies timing and timbre."""
    return synthesize_timed(spec, rng)[0]


def synthesize_timed(spec: SoundSpec, rng: random.Random) -> tuple[np.ndarray, float | None]:
    """`synthesize`'s waveform (the same draws from `rng`) and, for click tracks, the first click's onset in
    seconds (the later ones follow every 60 / tempo s); None for the other kinds."""
    first = None
    np_rng = np.random.default_rng(rng.getrandbits(63))
    n = CLIP_SAMPLES
    if spec.kind == "tone":
        wave = _harmonic_tone(note_frequency(spec.note), rng) * _envelope(rng)
    elif spec.kind == "chord":
        intervals = (0, 4, 7) if spec.quality == "major" else (0, 3, 7)
        wave = sum(_harmonic_tone(note_frequency(spec.note + i), rng) * rng.uniform(0.8, 1.0)
                   for i in intervals) * _envelope(rng)
    elif spec.kind == "sweep":
        low, high = rng.uniform(200, 400), rng.uniform(1200, 2000)
        f0, f1 = (low, high) if spec.direction == "rising" else (high, low)
        start = rng.uniform(0.0, 0.2)
        duration = rng.uniform(1.0, 1.3)
        t = np.arange(n) / SAMPLE_RATE
        u = np.clip((t - start) / duration, 0, 1)
        # exponential sweep: f(u) = f0 (f1/f0)^u; phase = 2π ∫ f dt
        k = np.log(f1 / f0)
        phase = 2 * np.pi * f0 * duration * (np.exp(k * u) - 1) / k
        gate = np.clip((t - start) / 0.01, 0, 1) * np.clip((start + duration - t) / 0.03, 0, 1)
        wave = np.sin(phase) * gate
    elif spec.kind == "clicks":
        interval = 60.0 / spec.tempo
        first = rng.uniform(0.02, min(0.3, interval))
        decay = rng.uniform(0.002, 0.005)
        click_len = int(0.03 * SAMPLE_RATE)
        click_t = np.arange(click_len) / SAMPLE_RATE
        wave = np.zeros(n)
        position = first
        while position * SAMPLE_RATE < n - 1:
            start = int(round(position * SAMPLE_RATE))
            click = _lowpass_noise(click_len, np_rng) * np.exp(-click_t / decay)
            stop = min(n, start + click_len)
            wave[start:stop] += click[: stop - start]
            position += interval
    else:  # noise burst
        start = rng.uniform(0.05, 0.6)
        duration = rng.uniform(0.3, 0.8)
        t = np.arange(n) / SAMPLE_RATE
        gate = np.clip((t - start) / 0.02, 0, 1) * np.clip((start + duration - t) / 0.02, 0, 1)
        wave = _lowpass_noise(n, np_rng) * gate
    level = active_level(wave)
    target = LOUDNESS_RMS[spec.loudness] * rng.uniform(0.9, 1.1)
    wave = wave * (target / max(level, 1e-9))
    return np.clip(wave, -1.0, 1.0).astype(np.float32), first


def with_template(spec: SoundSpec, template: int) -> SoundSpec:
    """The same sound under another caption template."""
    return replace(spec, template=template)
