"""Spectral transforms over waveforms (plain torch): STFT, mel filterbanks, dB scaling, Griffin-Lim.

    stft(wave, n_fft, hop, win)            complex spectrogram (..., n_fft/2+1, frames), Hann window, centred
    istft(spec, n_fft, hop, win, length)   its inverse (overlap-add, Hann window)
    mel_filterbank(...)                    (n_mels, n_fft/2+1) triangular filters on the HTK or Slaney mel
                                           scale, Slaney area normalisation optional (as librosa / transformers)
    mel_spectrogram(wave, ...)             |STFT|^power projected on the filterbank
    mel_to_linear(mel, filterbank)         non-negative least-squares-style inverse (projected gradient)
    amplitude_to_db / db_to_amplitude      10·log10 of power (or 20·log10 of magnitude), with a floor
    griffin_lim(magnitude, ...)            phase recovery (Griffin & Lim 1984) with the fast momentum of
                                           Perraudin et al. 2013 ("a fast Griffin-Lim algorithm")

Shapes: a waveform is (..., samples); a spectrogram (..., bins, frames). Everything is differentiable
torch and runs on the waveform's device. The iterative ones (mel_to_linear, griffin_lim) call
`before_iteration()` before each iteration: a node passes its `context.check_interrupted`, so an interrupt
or a server's run-time limit stops them (a 4,000 s clip held a server's only worker 13 minutes in them).
"""

from __future__ import annotations

import math
from typing import Callable

import torch


def _window(win_length: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.hann_window(win_length, periodic=True, device=device, dtype=dtype)


def stft(wave: torch.Tensor, n_fft: int = 1024, hop: int = 256, win_length: int | None = None) -> torch.Tensor:
    """Complex STFT (..., n_fft // 2 + 1, frames) of (..., samples), centred with reflect padding."""
    win_length = win_length or n_fft
    shape = wave.shape
    flat = wave.reshape(-1, shape[-1])
    mode = "reflect" if shape[-1] > n_fft // 2 else "constant"
    spec = torch.stft(flat, n_fft, hop_length=hop, win_length=win_length,
                      window=_window(win_length, wave.device, wave.dtype), center=True, pad_mode=mode,
                      return_complex=True)
    return spec.reshape(*shape[:-1], *spec.shape[-2:])


def istft(spec: torch.Tensor, n_fft: int = 1024, hop: int = 256, win_length: int | None = None,
          length: int | None = None) -> torch.Tensor:
    """Inverse of `stft`: (..., bins, frames) complex → (..., samples)."""
    win_length = win_length or n_fft
    shape = spec.shape
    flat = spec.reshape(-1, *shape[-2:])
    real_dtype = flat.real.dtype
    wave = torch.istft(flat, n_fft, hop_length=hop, win_length=win_length,
                       window=_window(win_length, spec.device, real_dtype), center=True, length=length)
    return wave.reshape(*shape[:-2], wave.shape[-1])


def hz_to_mel(frequency: torch.Tensor, scale: str = "slaney") -> torch.Tensor:
    """Hz → mel: HTK (2595·log10(1 + f/700)) or Slaney (linear below 1 kHz, logarithmic above)."""
    if scale == "htk":
        return 2595.0 * torch.log10(1.0 + frequency / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    linear = frequency / f_sp
    return torch.where(frequency >= min_log_hz,
                       min_log_mel + torch.log(frequency.clamp_min(1e-10) / min_log_hz) / logstep, linear)


def mel_to_hz(mel: torch.Tensor, scale: str = "slaney") -> torch.Tensor:
    """mel → Hz, the inverse of `hz_to_mel`."""
    if scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return torch.where(mel >= min_log_mel, min_log_hz * torch.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int = 80, f_min: float = 0.0, f_max: float | None = None,
                   scale: str = "slaney", norm: str | None = "slaney") -> torch.Tensor:
    """Triangular mel filters (n_mels, n_fft // 2 + 1), as librosa.filters.mel computes them."""
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2, got f_min={f_min}, f_max={f_max}, "
                         f"sample_rate={sample_rate}")
    fft_freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    mels = torch.linspace(float(hz_to_mel(torch.tensor(f_min, dtype=torch.float64), scale)),
                          float(hz_to_mel(torch.tensor(f_max, dtype=torch.float64), scale)), n_mels + 2,
                          dtype=torch.float64)
    edges = mel_to_hz(mels, scale)                                           # (n_mels + 2,)
    widths = edges[1:] - edges[:-1]
    ramps = edges[:, None] - fft_freqs[None, :]                              # (n_mels + 2, bins)
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = torch.clamp(torch.minimum(lower, upper), min=0.0)
    if norm == "slaney":
        weights *= (2.0 / (edges[2:n_mels + 2] - edges[:n_mels]))[:, None]
    return weights.to(torch.float32)


def magnitude(wave: torch.Tensor, n_fft: int = 1024, hop: int = 256, win_length: int | None = None,
              power: float = 1.0) -> torch.Tensor:
    """|STFT|^power (..., bins, frames)."""
    return stft(wave, n_fft, hop, win_length).abs().pow(power)


def mel_spectrogram(wave: torch.Tensor, sample_rate: int, n_fft: int = 1024, hop: int = 256,
                    win_length: int | None = None, n_mels: int = 80, f_min: float = 0.0,
                    f_max: float | None = None, power: float = 2.0, scale: str = "slaney",
                    norm: str | None = "slaney") -> torch.Tensor:
    """Mel spectrogram (..., n_mels, frames): the filterbank applied to |STFT|^power."""
    filters = mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max, scale, norm).to(wave.device, wave.dtype)
    return torch.matmul(filters, magnitude(wave, n_fft, hop, win_length, power))


def mel_to_linear(mel: torch.Tensor, filterbank: torch.Tensor, iterations: int = 200,
                  before_iteration: Callable[[], None] = lambda: None) -> torch.Tensor:
    """A non-negative linear spectrogram S with filterbank @ S ≈ mel (projected gradient on the least squares,
    from the pseudo-inverse's estimate; 0 iterations: that estimate, clamped)."""
    fb = filterbank.to(mel.device, mel.dtype)
    estimate = torch.clamp(torch.matmul(torch.linalg.pinv(fb), mel), min=0.0)
    step = 1.0 / float(torch.linalg.matrix_norm(fb, ord=2) ** 2)
    for _ in range(iterations):
        before_iteration()
        gradient = torch.matmul(fb.T, torch.matmul(fb, estimate) - mel)
        estimate = torch.clamp(estimate - step * gradient, min=0.0)
    return estimate


def amplitude_to_db(values: torch.Tensor, power: bool = True, floor_db: float = -100.0) -> torch.Tensor:
    """10·log10(power) (power=True) or 20·log10(magnitude), floored at `floor_db`."""
    factor = 10.0 if power else 20.0
    return torch.clamp(factor * torch.log10(values.clamp_min(1e-20)), min=floor_db)


def db_to_amplitude(db: torch.Tensor, power: bool = True) -> torch.Tensor:
    """The inverse of `amplitude_to_db` (above the floor)."""
    return 10.0 ** (db / (10.0 if power else 20.0))


def griffin_lim(magnitude_spec: torch.Tensor, n_fft: int = 1024, hop: int = 256, win_length: int | None = None,
                iterations: int = 32, momentum: float = 0.99, length: int | None = None,
                generator: torch.Generator | None = None,
                before_iteration: Callable[[], None] = lambda: None) -> torch.Tensor:
    """A waveform whose |STFT| approximates `magnitude_spec` (..., n_fft/2+1, frames) (fast Griffin-Lim).

    Starts from random phases (seeded by `generator`) and alternates projections onto consistent
    spectrograms and onto the given magnitude, with Perraudin et al.'s momentum (0.99).
    """
    mag = magnitude_spec
    phase = torch.rand(mag.shape, generator=generator, dtype=mag.dtype).to(mag.device) * 2 * math.pi
    angles = torch.polar(torch.ones_like(mag), phase)
    previous = torch.zeros_like(angles)
    for _ in range(iterations):
        before_iteration()
        wave = istft(mag * angles, n_fft, hop, win_length, length)
        rebuilt = stft(wave, n_fft, hop, win_length)
        accelerated = rebuilt - (momentum / (1 + momentum)) * previous if momentum else rebuilt
        previous = rebuilt
        angles = accelerated / accelerated.abs().clamp_min(1e-16)
    return istft(mag * angles, n_fft, hop, win_length, length)
