"""The spectrogram the tiny text-to-audio model diffuses over: a band-limited linear log-magnitude STFT.

Why linear and not mel: pitch must come back within a semitone after vocoding. A semitone at C4 is
15.6 Hz; an 80-bin mel scale over 0–8 kHz has ~31 Hz bins there (two semitones). A 1024-point STFT
at 16 kHz has 15.6 Hz bins everywhere, so a peak put in the right bin is at most half a semitone
off at C4 and less above; keeping only the bins below 4 kHz (256 of 513) keeps the model small.

    SpectrogramSpec     sample rate 16 kHz, n_fft 1024, hop 256, 256 bins (0 … 3984 Hz), 96 frames
                        (1.536 s), log-magnitude scaling constants
    encode(wave)        (B, samples) → LATENT samples (B, 1, 256, 96), roughly in [-1, 1]
    decode_magnitude(x) (B, 1, 256, 96) → linear magnitude (B, 513, 97) (bins above the band are zero)
    decode(x)           → waveform (B, samples) through Griffin-Lim (the no-weights vocoder)

The layout (B, 1, F, T) is an image-like LATENT: low frequencies at row 0, time along the columns,
so spectrogram images, masks (B, F, T) and the image nodes apply directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import spectral


@dataclass(frozen=True)
class SpectrogramSpec:
    """The representation's constants (defaults: what the shipped model was trained on)."""

    sample_rate: int = 16000
    n_fft: int = 1024          # 15.6 Hz bins: one semitone at C4
    hop: int = 256             # 16 ms frames: clicks placed within a frame
    bins: int = 256            # 0 … 3984 Hz; the synthesised world lives below 4 kHz
    frames: int = 96           # 1.536 s
    floor: float = 1e-2        # magnitudes below this are silence (x = -1)
    offset: float = 0.2        # x = (ln(max(|S|, floor)) + offset) / scale
    scale: float = 4.4

    @property
    def samples(self) -> int:
        """Waveform length of one clip."""
        return self.frames * self.hop

    @property
    def bin_hz(self) -> float:
        """Frequency spacing of the bins."""
        return self.sample_rate / self.n_fft


DEFAULT_SPEC = SpectrogramSpec()


def encode(wave: torch.Tensor, spec: SpectrogramSpec = DEFAULT_SPEC) -> torch.Tensor:
    """(B, samples) waveforms (padded / cut to the clip length) → (B, 1, bins, frames) log magnitudes."""
    if wave.shape[-1] < spec.samples:
        wave = torch.nn.functional.pad(wave, (0, spec.samples - wave.shape[-1]))
    wave = wave[..., : spec.samples]
    mag = spectral.magnitude(wave.float(), spec.n_fft, spec.hop)[..., : spec.bins, : spec.frames]
    x = (torch.log(mag.clamp_min(spec.floor)) + spec.offset) / spec.scale
    return x.unsqueeze(1)


def decode_magnitude(x: torch.Tensor, spec: SpectrogramSpec = DEFAULT_SPEC) -> torch.Tensor:
    """(B, 1, bins, frames) → linear magnitude (B, n_fft/2+1, frames+1), the floor subtracted (silence = 0)."""
    log_mag = x[:, 0].float() * spec.scale - spec.offset
    mag = (torch.exp(log_mag.clamp(max=math.log(1e4))) - spec.floor).clamp_min(0.0)
    full = torch.zeros(x.shape[0], spec.n_fft // 2 + 1, spec.frames + 1, dtype=mag.dtype, device=mag.device)
    full[:, : spec.bins, : spec.frames] = mag
    return full


def decode(x: torch.Tensor, spec: SpectrogramSpec = DEFAULT_SPEC, iterations: int = 48, seed: int = 0) -> torch.Tensor:
    """(B, 1, bins, frames) → (B, samples) waveforms by Griffin-Lim (seeded phases)."""
    generator = torch.Generator().manual_seed(seed)
    return spectral.griffin_lim(decode_magnitude(x, spec), spec.n_fft, spec.hop, iterations=iterations,
                                length=spec.samples, generator=generator)
