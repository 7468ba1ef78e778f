"""HiFi-GAN generator (Kong et al. 2020, "HiFi-GAN", generator V1 layout) with the module and key names of
transformers' ``SpeechT5HifiGan`` — the vocoder AudioLDM and SpeechT5 ship — so their weights load as is.

    HifiGanConfig              model_in_dim (mel bins), sampling_rate, upsample rates / kernels,
                               resblock kernels / dilations, leaky slope, normalize_before (mean / scale)
    HifiGanGenerator           forward(log_mel (B, frames, mel)) → waveform (B, frames × hop)
    config_from_state_dict     the architecture read from weight shapes (no config file needed)
    generator_from_state_dict  build + load; weight-norm parametrisations (weight_g / weight_v, or
                               parametrizations.weight.original0 / original1) are folded into plain weights
    HifiGanError               weights that are not a SpeechT5HifiGan generator (names what is wrong)

Input convention (as SpeechT5 / AudioLDM): natural-log mel magnitudes, (B, frames, mel); with
normalize_before the buffers ``mean`` and ``scale`` standardise each mel bin first. One frame
becomes ``hop = prod(upsample_rates)`` samples.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn


_KNOWN_RATES = {(8, 8, 8, 8): (4, 4, 4, 4), (16, 16, 8, 4, 4): (5, 4, 2, 2, 2), (16, 16, 4, 4): (8, 8, 2, 2)}


class HifiGanError(ValueError):
    """Weights or a config that do not describe a SpeechT5HifiGan-layout generator."""


@dataclass(frozen=True)
class HifiGanConfig:
    """The generator's shape; defaults are SpeechT5's (80 mels, 16 kHz, hop 256)."""

    model_in_dim: int = 80
    sampling_rate: int = 16000
    upsample_initial_channel: int = 512
    upsample_rates: tuple[int, ...] = (4, 4, 4, 4)
    upsample_kernel_sizes: tuple[int, ...] = (8, 8, 8, 8)
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    leaky_relu_slope: float = 0.1
    normalize_before: bool = True

    @property
    def hop(self) -> int:
        """Samples per spectrogram frame."""
        return math.prod(self.upsample_rates)

    @classmethod
    def from_transformers(cls, values: Mapping) -> "HifiGanConfig":
        """From a transformers SpeechT5HifiGanConfig dict (config.json); unknown keys are ignored."""
        keys = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in values.items() if k in keys}
        for name in ("upsample_rates", "upsample_kernel_sizes", "resblock_kernel_sizes"):
            if name in kwargs:
                kwargs[name] = tuple(kwargs[name])
        if "resblock_dilation_sizes" in kwargs:
            kwargs["resblock_dilation_sizes"] = tuple(tuple(d) for d in kwargs["resblock_dilation_sizes"])
        return cls(**kwargs)

    def to_json(self) -> str:
        """JSON (for file metadata)."""
        return json.dumps(asdict(self))


class HifiGanResidualBlock(nn.Module):
    """Three (dilated conv → conv) pairs with leaky ReLUs and residual adds (HiFi-GAN's ResBlock1)."""

    def __init__(self, channels: int, kernel_size: int, dilation: tuple[int, ...], slope: float):
        super().__init__()
        self.slope = slope
        self.convs1 = nn.ModuleList(nn.Conv1d(channels, channels, kernel_size, dilation=d,
                                              padding=(kernel_size * d - d) // 2) for d in dilation)
        self.convs2 = nn.ModuleList(nn.Conv1d(channels, channels, kernel_size, padding=(kernel_size - 1) // 2)
                                    for _ in dilation)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for conv1, conv2 in zip(self.convs1, self.convs2):
            h = h + conv2(F.leaky_relu(conv1(F.leaky_relu(h, self.slope)), self.slope))
        return h


class HifiGanGenerator(nn.Module):
    """log-mel (B, frames, model_in_dim) → waveform (B, frames × hop) in [-1, 1]."""

    def __init__(self, config: HifiGanConfig = HifiGanConfig()):
        super().__init__()
        self.config = config
        self.num_kernels = len(config.resblock_kernel_sizes)
        c0 = config.upsample_initial_channel
        self.conv_pre = nn.Conv1d(config.model_in_dim, c0, 7, padding=3)
        self.upsampler = nn.ModuleList(
            nn.ConvTranspose1d(c0 // 2 ** i, c0 // 2 ** (i + 1), k, stride=u, padding=(k - u) // 2)
            for i, (u, k) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes)))
        self.resblocks = nn.ModuleList(
            HifiGanResidualBlock(c0 // 2 ** (i + 1), k, d, config.leaky_relu_slope)
            for i in range(len(config.upsample_rates))
            for k, d in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes))
        self.conv_post = nn.Conv1d(c0 // 2 ** len(config.upsample_rates), 1, 7, padding=3)
        self.register_buffer("mean", torch.zeros(config.model_in_dim))
        self.register_buffer("scale", torch.ones(config.model_in_dim))

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        if self.config.normalize_before:
            log_mel = (log_mel - self.mean) / self.scale
        h = self.conv_pre(log_mel.transpose(1, 2))                                   # (B, C0, frames)
        for i, upsample in enumerate(self.upsampler):
            h = upsample(F.leaky_relu(h, self.config.leaky_relu_slope))              # (B, C0 / 2^(i+1), ×u)
            blocks = self.resblocks[i * self.num_kernels:(i + 1) * self.num_kernels]
            h = sum(block(h) for block in blocks) / self.num_kernels
        h = self.conv_post(F.leaky_relu(h))                                          # default slope 0.01, as reference
        return torch.tanh(h).squeeze(1)                                              # (B, samples)


def fold_weight_norm(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace weight-norm pairs (g, v) by the plain weight g · v / ‖v‖ (norm over all dims but 0)."""
    out: dict[str, torch.Tensor] = {}
    pairs = {}
    for key, value in state.items():
        for g_suffix, v_suffix in ((".weight_g", ".weight_v"),
                                   (".parametrizations.weight.original0", ".parametrizations.weight.original1")):
            if key.endswith(g_suffix):
                pairs.setdefault(key[: -len(g_suffix)], {})["g"] = value
                break
            if key.endswith(v_suffix):
                pairs.setdefault(key[: -len(v_suffix)], {})["v"] = value
                break
        else:
            out[key] = value
    for prefix, pair in pairs.items():
        if set(pair) != {"g", "v"}:
            raise HifiGanError(f"{prefix}: a weight-norm parametrisation with only {sorted(pair)}; the file is damaged")
        v = pair["v"].float()
        norm = v.flatten(1).norm(dim=1).view(-1, *([1] * (v.ndim - 1))) if pair["g"].shape[0] == v.shape[0] \
            else v.transpose(0, 1).flatten(1).norm(dim=1).view(1, -1, *([1] * (v.ndim - 2)))
        out[f"{prefix}.weight"] = pair["g"].float() * v / norm
    return out


def config_from_state_dict(state: Mapping[str, torch.Tensor], sampling_rate: int = 16000,
                           leaky_relu_slope: float = 0.1) -> HifiGanConfig:
    """The architecture of SpeechT5HifiGan weights, read from their shapes (sampling rate and slope are given)."""
    if "conv_pre.weight" not in state or "conv_post.weight" not in state:
        raise HifiGanError("not a SpeechT5HifiGan generator: conv_pre.weight / conv_post.weight are missing "
                           f"(found keys such as {sorted(state)[:4]})")
    c0, in_dim = state["conv_pre.weight"].shape[:2]
    ups = sorted({int(k.split(".")[1]) for k in state if k.startswith("upsampler.")})
    kernels = tuple(int(state[f"upsampler.{i}.weight"].shape[-1]) for i in ups)
    # strides are not in the weights: HiFi-GAN's published generators (V1 / SpeechT5, AudioLDM, V2-style),
    # else the V1 rule kernel = 2 × rate; a config.json / metadata config overrides this guess
    rates = _KNOWN_RATES.get(kernels, tuple(k // 2 for k in kernels))
    blocks = sorted({int(k.split(".")[1]) for k in state if k.startswith("resblocks.")})
    if not ups or not blocks or len(blocks) % len(ups):
        raise HifiGanError(f"{len(ups)} upsamplers and {len(blocks)} residual blocks do not form a HiFi-GAN")
    per_level = len(blocks) // len(ups)
    block_kernels = tuple(int(state[f"resblocks.{j}.convs1.0.weight"].shape[-1]) for j in range(per_level))
    convs = [len({k.split(".")[3] for k in state if k.startswith(f"resblocks.{j}.convs1.")}) for j in range(per_level)]
    dilations = tuple((1, 3, 5)[:n] if n <= 3 else tuple(range(1, 2 * n, 2)) for n in convs)
    return HifiGanConfig(model_in_dim=int(in_dim), sampling_rate=sampling_rate, upsample_initial_channel=int(c0),
                         upsample_rates=tuple(rates), upsample_kernel_sizes=tuple(kernels),
                         resblock_kernel_sizes=block_kernels, resblock_dilation_sizes=dilations,
                         leaky_relu_slope=leaky_relu_slope, normalize_before=True)


def generator_from_state_dict(state: Mapping[str, torch.Tensor], config: HifiGanConfig) -> HifiGanGenerator:
    """A generator of `config` with `state` loaded (weight norm folded); HifiGanError if keys or shapes differ."""
    state = fold_weight_norm(state)
    generator = HifiGanGenerator(config)
    expected = generator.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise HifiGanError(f"the weights do not fit a SpeechT5HifiGan of this config: missing {missing[:4]}, "
                           f"unexpected {unexpected[:4]}")
    for key, value in expected.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise HifiGanError(f"{key}: shape {tuple(state[key].shape)} in the weights, {tuple(value.shape)} for "
                               f"this config")
    generator.load_state_dict({k: state[k].to(expected[k].dtype) for k in expected})
    return generator.eval()
