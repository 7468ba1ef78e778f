"""Beat-phase conditioning: per frame, where in the beat a click track is (issue 14's tempo target).

A click track at `tempo` bpm whose first click starts at `first_click` seconds has, at time τ, the beat
phase φ(τ) = (τ − first_click) · tempo / 60 mod 1 (0 on a click). The spectrogram's frame f is centred
at τ_f = f · hop / sample_rate (features.py: a centred STFT), so the network gets, per frame,

    [present, sin 2π φ(τ_f), cos 2π φ(τ_f)]      (3, frames); present = 1 for a click track

and all zeros for every other sound, for the empty prompt and for dropped captions (classifier-free
guidance's unconditional branch). The sinusoid pair states the period directly (a "tempo embedding as a
sinusoid of the beat phase", README "Tried ... not kept"); the network only has to place a click where
φ ≈ 0, a local decision, instead of learning a global period over 96 frames.

    BEAT_FEATURES                 3 (the channel count)
    DEFAULT_FIRST_CLICK           where sampling puts the first click (s): inside training's range 0.02 … 0.3 s
    beat_phase(tempo, first_click, frames, hop, sample_rate)   φ per frame, (frames,) in [0, 1)
    beat_features(tempo, first_click, frames, hop, sample_rate) → (3, frames); zeros when tempo is None
    batch_beat_features(specs, first_clicks, spec)             → (B, 3, frames) for a batch of SoundSpecs
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

BEAT_FEATURES = 3
DEFAULT_FIRST_CLICK = 0.05


def beat_phase(tempo: float, first_click: float, frames: int, hop: int, sample_rate: int) -> torch.Tensor:
    """The beat phase in [0, 1) at each frame centre (float64, (frames,)); 0 where a click starts."""
    times = torch.arange(frames, dtype=torch.float64) * (hop / sample_rate)
    return torch.remainder((times - first_click) * (tempo / 60.0), 1.0)


def beat_features(tempo: float | None, first_click: float | None, frames: int, hop: int,
                  sample_rate: int) -> torch.Tensor:
    """[present, sin 2πφ, cos 2πφ] per frame, (3, frames) float32; all zeros when `tempo` is None (no beat)."""
    if tempo is None:
        return torch.zeros(BEAT_FEATURES, frames)
    if not tempo > 0 or first_click is None or not math.isfinite(first_click):
        raise ValueError(f"beat features need a positive tempo and a finite first-click time, found "
                         f"tempo={tempo!r}, first_click={first_click!r}")
    angle = 2 * math.pi * beat_phase(tempo, first_click, frames, hop, sample_rate)
    return torch.stack([torch.ones(frames, dtype=torch.float64), torch.sin(angle), torch.cos(angle)]).float()


def batch_beat_features(specs: Sequence, first_clicks: Sequence[float | None], spec) -> torch.Tensor:
    """(B, 3, frames) beat features of SoundSpecs (synth.py; tempo only for click tracks) and their first clicks,
    on the frames of a SpectrogramSpec (features.py)."""
    return torch.stack([beat_features(sound.tempo if sound is not None and sound.kind == "clicks" else None, first,
                                      spec.frames, spec.hop, spec.sample_rate)
                        for sound, first in zip(specs, first_clicks)])
