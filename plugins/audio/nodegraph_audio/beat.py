"""Beat-phase conditioning: per frame, where in the beat a click track is (issue 14's tempo target).

A click track at `tempo` bpm whose first click starts at `first_click` seconds has, at time τ, the beat
phase φ(τ) = (τ − first_click) · tempo / 60 mod 1 (0 on a click). The spectrogram's frame f is centred
at τ_f = f · hop / sample_rate (features.py: a centred STFT with a Hann window of n_fft samples), so the
network gets, per frame,

    [present, sin 2π φ(τ_f), cos 2π φ(τ_f), window(τ_f)]      (4, frames); present = 1 for a click track

where window(τ_f) = Σ_k hann(τ_f − τ_k) is the STFT window's weight on the clicks τ_k = first_click + k · 60 / tempo
(hann(d) = cos²(π d · sample_rate / n_fft) for |d| < n_fft / 2 samples, else 0): how much of a click frame f
sees. Every other sound, the empty prompt and dropped captions (classifier-free guidance's unconditional
branch) get all zeros. The sinusoid pair states the period directly; the window channel says which frames
hold a click to the sample (measured: the pair alone left clicks 2–5 frames off at slow tempi, where cos φ is
flat over several frames around the click — README "Decisions").

    BEAT_FEATURES                 4 (the channel count)
    DEFAULT_FIRST_CLICK           where sampling puts the first click (s): inside training's range 0.02 … 0.3 s
    beat_phase(tempo, first_click, spec)      φ per frame, (frames,) in [0, 1)
    click_window(tempo, first_click, spec)    the STFT window's weight on the clicks per frame, (frames,)
    beat_features(tempo, first_click, spec)   → (4, frames); zeros when tempo is None
    batch_beat_features(sounds, first_clicks, spec)   → (B, 4, frames) for a batch of SoundSpecs

`spec` is a features.SpectrogramSpec (sample_rate, n_fft, hop, frames).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

BEAT_FEATURES = 4
DEFAULT_FIRST_CLICK = 0.05


def _frame_times(spec: Any) -> torch.Tensor:
    """Frame centres in seconds (float64, (frames,)): frame f of a centred STFT is centred on sample f · hop."""
    return torch.arange(spec.frames, dtype=torch.float64) * (spec.hop / spec.sample_rate)


def beat_phase(tempo: float, first_click: float, spec: Any) -> torch.Tensor:
    """The beat phase in [0, 1) at each frame centre (float64, (frames,)); 0 where a click starts."""
    return torch.remainder((_frame_times(spec) - first_click) * (tempo / 60.0), 1.0)


def click_window(tempo: float, first_click: float, spec: Any) -> torch.Tensor:
    """Σ_k hann(τ_f − τ_k): the Hann analysis window of each frame evaluated at the clicks (float64, (frames,))."""
    interval, half = 60.0 / tempo, spec.n_fft / 2 / spec.sample_rate
    offset = torch.remainder(_frame_times(spec) - first_click, interval)         # time since the last click
    total = torch.zeros(spec.frames, dtype=torch.float64)
    for distance in (offset, interval - offset):                                # the click before, the click after
        total += torch.where(distance < half, torch.cos(math.pi * distance / (2 * half)) ** 2, 0.0)
    return total.clamp(max=1.0)


def beat_features(tempo: float | None, first_click: float | None, spec: Any) -> torch.Tensor:
    """[present, sin 2πφ, cos 2πφ, window] per frame, (4, frames) float32; all zeros when `tempo` is None."""
    if tempo is None:
        return torch.zeros(BEAT_FEATURES, spec.frames)
    if not tempo > 0 or first_click is None or not math.isfinite(first_click):
        raise ValueError(f"beat features need a positive tempo and a finite first-click time, found "
                         f"tempo={tempo!r}, first_click={first_click!r}")
    angle = 2 * math.pi * beat_phase(tempo, first_click, spec)
    present = torch.ones(spec.frames, dtype=torch.float64)
    return torch.stack([present, torch.sin(angle), torch.cos(angle), click_window(tempo, first_click, spec)]).float()


def batch_beat_features(sounds: Sequence[Any], first_clicks: Sequence[float | None], spec: Any) -> torch.Tensor:
    """(B, 4, frames) beat features of SoundSpecs (synth.py; only click tracks have a beat, None is no sound) and
    their first-click times."""
    return torch.stack([beat_features(sound.tempo if sound is not None and sound.kind == "clicks" else None, first,
                                      spec) for sound, first in zip(sounds, first_clicks)])
