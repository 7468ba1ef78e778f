"""The tiny text-to-audio denoiser: a 1-D U-Net over time with frequency bins as channels, and its text encoder.

A spectrogram latent (B, 1, F, T) (features.py: F = 256 linear bins below 4 kHz, T = 96 frames) is read
as a sequence of T frames with F channels. Pitch is then *which channel* lights up — a linear map the
first convolution learns at once — and time structure (sweeps, click periods) is handled by
convolutions plus self-attention over frames at the coarser levels. The caption is encoded by a small
transformer over word tokens (text.py); its pooled vector joins the timestep embedding (FiLM in every
residual block) and its tokens are attended to by cross-attention. With ``beat_conditioning`` the network
also reads per-frame beat-phase features (B, 4, T) (beat.py: [present, sin 2πφ, cos 2πφ, the STFT
window's weight on the clicks], zeros for sounds without a beat): a zero-initialised 1×1 projection of
them is added to the hidden state at the start of every level, down and up, at that level's frames (frame
j of level l is centred on input frame 2^l·j, so the features are subsampled, not averaged).

Trained as a rectified flow (Liu et al. 2023; SD3's convention, Esser et al. 2024): x_t = (1 - t) x0 + t ε,
the network returns the velocity v = ε - x0 and receives ``t × 1000``; ``api.diffusion_model(prediction="flow")``
wraps it for the one sampler stack. Internally the U-Net predicts the clean spectrogram x̂0 and the velocity is
computed exactly from it, v = (x_t - x̂0) / t (``forward``); the identity path x_t / t carries the per-bin noise,
which a U-Net whose first level is narrower than the 256 bins cannot pass through (a direct v head left a
speckle of unremoved noise: measured, README "Decisions").

    AudioDenoiserConfig   sizes (defaults: the shipped model)
    TextEncoder           tokens (B, L) → (B, L, text_width), pad mask
    AudioDenoiser         forward(x (B, 1, F, T), t (B,), tokens (B, L), beat (B, 4, T) | None) → v (B, 1, F, T);
                          predict_x0(...) → x̂0 (what training regresses)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .beat import BEAT_FEATURES
from .text import MAX_TOKENS, VOCABULARY

TIME_SCALE = 1000.0        # the network's time is 1000 × flow time (api.diffusion_model's default time_scale)
MIN_FLOW_TIME = 1e-4       # v = (x - x̂0) / t is evaluated with t >= this (the samplers' smallest t is 1e-3)


@dataclass(frozen=True)
class AudioDenoiserConfig:
    """Sizes of the denoiser; the defaults are the shipped model's."""

    bins: int = 256                       # spectrogram rows (frequency bins) = input channels
    widths: tuple[int, ...] = (160, 224, 288)   # channels at T, T/2, T/4 frames
    blocks: int = 2                       # residual blocks per level (down path; up path has one more)
    attention_levels: tuple[int, ...] = (1, 2)  # levels with self- and cross-attention (T/2, T/4)
    heads: int = 4
    embed_width: int = 256                # timestep + pooled caption embedding
    text_width: int = 128
    text_layers: int = 2
    vocab_size: int = len(VOCABULARY)
    max_tokens: int = MAX_TOKENS
    max_frames: int = 96                  # learned frame positions at each attention level
    positions: str = "learned"            # "learned": a position table added before self-attention;
                                          # "rope": rotary embeddings of q and k (relative offsets; README)
    beat_conditioning: bool = False       # per-frame beat-phase features (beat.py) added at every level; off in
                                          # files from before it, which load unchanged

    def __post_init__(self) -> None:
        if self.positions not in ("learned", "rope"):
            raise ValueError(f"positions must be 'learned' or 'rope', found {self.positions!r}")

    def to_dict(self) -> dict:
        """A JSON-able dict (for the model file's metadata)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> "AudioDenoiserConfig":
        """The inverse of `to_dict` (unknown keys are refused by the dataclass; files from before `positions`
        existed used learned positions, those from before `beat_conditioning` had none)."""
        values = {"positions": "learned", "beat_conditioning": False, **values}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def timestep_embedding(t: torch.Tensor, width: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (B,) times (Vaswani et al. 2017; DDPM's timestep encoding)."""
    half = width // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * frequencies[None]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


def rotary(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotary position embedding (Su et al. 2021, RoFormer) of (B, H, T, d) queries or keys along T.

    Channel pairs (i, i + d/2) are rotated by angle position × base^(-2i/d), so q_m · k_n depends on the
    offset m - n only: attention can look "one beat back" at any frame, which is what a periodic click
    track needs (learned absolute positions make every offset a separate thing to learn).
    """
    t, d = x.shape[-2], x.shape[-1]
    half = d // 2
    frequencies = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = torch.arange(t, device=x.device, dtype=torch.float32)[:, None] * frequencies[None]     # (T, d/2)
    cos, sin = torch.cos(angles).to(x.dtype), torch.sin(angles).to(x.dtype)
    a, b = x[..., :half], x[..., half: 2 * half]
    rotated = torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)
    return torch.cat([rotated, x[..., 2 * half:]], dim=-1) if d % 2 else rotated


class TextEncoder(nn.Module):
    """Word embeddings + learned positions + a small pre-norm transformer encoder."""

    def __init__(self, config: AudioDenoiserConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(config.vocab_size, config.text_width)
        self.position_embedding = nn.Parameter(torch.zeros(config.max_tokens, config.text_width))
        layer = nn.TransformerEncoderLayer(config.text_width, config.heads, 2 * config.text_width, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, config.text_layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(config.text_width)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) ids → hidden (B, L, D) and keep mask (B, L) (False at <pad>)."""
        keep = tokens != 0
        h = self.token_embedding(tokens) + self.position_embedding[: tokens.shape[1]]   # (B, L, D)
        h = self.layers(h, src_key_padding_mask=~keep)
        return self.final_norm(h), keep


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv3 → FiLM(embedding) → GroupNorm → SiLU → conv3, plus a (1×1) skip."""

    def __init__(self, channels_in: int, channels_out: int, embed_width: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(8, channels_in)
        self.conv1 = nn.Conv1d(channels_in, channels_out, 3, padding=1)
        self.film = nn.Linear(embed_width, 2 * channels_out)
        self.norm2 = nn.GroupNorm(8, channels_out)
        self.conv2 = nn.Conv1d(channels_out, channels_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv1d(channels_in, channels_out, 1) if channels_in != channels_out else nn.Identity()

    def forward(self, h: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.silu(self.norm1(h)))                          # (B, C, T)
        scale, shift = self.film(F.silu(embedding)).unsqueeze(-1).chunk(2, dim=1)
        out = self.norm2(out) * (1 + scale) + shift
        return self.skip(h) + self.conv2(F.silu(out))


class AttentionBlock(nn.Module):
    """Self-attention over frames (learned or rotary positions), then cross-attention to the caption tokens."""

    def __init__(self, channels: int, text_width: int, heads: int, max_frames: int, positions: str = "learned"):
        super().__init__()
        self.heads = heads
        self.rope = positions == "rope"
        if not self.rope:
            self.position = nn.Parameter(torch.zeros(1, channels, max_frames))
        self.norm_self = nn.GroupNorm(8, channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.out_self = nn.Conv1d(channels, channels, 1)
        self.norm_cross = nn.GroupNorm(8, channels)
        self.q_cross = nn.Conv1d(channels, channels, 1)
        self.kv_cross = nn.Linear(text_width, 2 * channels)
        self.out_cross = nn.Conv1d(channels, channels, 1)
        for layer in (self.out_self, self.out_cross):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, N) → (B, heads, N, C / heads)."""
        b, c, n = x.shape
        return x.view(b, self.heads, c // self.heads, n).transpose(2, 3)

    def forward(self, h: torch.Tensor, text: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        b, c, t = h.shape
        if self.rope:
            q, k, v = (self._split(part) for part in self.qkv(self.norm_self(h)).chunk(3, dim=1))
            q, k = rotary(q), rotary(k)
        else:
            mixed = self.qkv(self.norm_self(h) + self.position[..., :t])
            q, k, v = (self._split(part) for part in mixed.chunk(3, dim=1))
        attended = F.scaled_dot_product_attention(q, k, v)                                        # (B, H, T, c)
        h = h + self.out_self(attended.transpose(2, 3).reshape(b, c, t))
        q = self._split(self.q_cross(self.norm_cross(h)))
        k, v = self.kv_cross(text).transpose(1, 2).chunk(2, dim=1)                                  # (B, C, L)
        mask = keep[:, None, None, :]                                                                # (B, 1, 1, L)
        attended = F.scaled_dot_product_attention(q, self._split(k), self._split(v), attn_mask=mask)
        return h + self.out_cross(attended.transpose(2, 3).reshape(b, c, t))


class AudioDenoiser(nn.Module):
    """v-prediction network for (B, 1, F, T) spectrogram latents conditioned on caption tokens."""

    def __init__(self, config: AudioDenoiserConfig = AudioDenoiserConfig()):
        super().__init__()
        self.config = config
        widths, e = config.widths, config.embed_width
        self.text_encoder = TextEncoder(config)
        self.time_mlp = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        self.text_pool = nn.Linear(config.text_width, e)
        self.conv_in = nn.Conv1d(config.bins, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.down_attention = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips = [widths[0]]
        channels = widths[0]
        frames = config.max_frames
        for level, width in enumerate(widths):
            blocks = nn.ModuleList()
            for _ in range(config.blocks):
                blocks.append(ResBlock(channels, width, e))
                channels = width
                skips.append(channels)
            self.down.append(blocks)
            self.down_attention.append(
                AttentionBlock(width, config.text_width, config.heads, frames, config.positions)
                if level in config.attention_levels else nn.Identity())
            if level < len(widths) - 1:
                self.downsample.append(nn.Conv1d(channels, channels, 3, stride=2, padding=1))
                skips.append(channels)
                frames = (frames + 1) // 2
        self.mid = ResBlock(channels, channels, e)
        self.mid_attention = AttentionBlock(channels, config.text_width, config.heads, frames, config.positions)
        self.up = nn.ModuleList()
        self.up_attention = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(len(widths))):
            blocks = nn.ModuleList()
            for _ in range(config.blocks + 1):
                blocks.append(ResBlock(channels + skips.pop(), widths[level], e))
                channels = widths[level]
            self.up.append(blocks)
            self.up_attention.append(
                AttentionBlock(channels, config.text_width, config.heads, frames, config.positions)
                if level in config.attention_levels else nn.Identity())
            if level > 0:
                self.upsample.append(nn.Conv1d(channels, channels, 3, padding=1))
                frames = frames * 2
        self.norm_out = nn.GroupNorm(8, channels)
        self.conv_out = nn.Conv1d(channels, config.bins, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        if config.beat_conditioning:
            # no bias: all-zero features (no beat, the unconditional branch) add exactly nothing
            entering_down = (widths[0], *widths[:-1])            # channels after conv_in / each downsample
            entering_up = (widths[-1], *reversed(widths[1:]))    # channels at the start of each up level
            self.beat_down = nn.ModuleList(nn.Conv1d(BEAT_FEATURES, w, 1, bias=False) for w in entering_down)
            self.beat_up = nn.ModuleList(nn.Conv1d(BEAT_FEATURES, w, 1, bias=False) for w in entering_up)
            for layer in (*self.beat_down, *self.beat_up):
                nn.init.zeros_(layer.weight)

    def forward(self, x: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor, beat: torch.Tensor | None = None,
                **unused) -> torch.Tensor:
        """x (B, 1, F, T), t (B,) network time (1000 × flow time), tokens (B, L), beat (B, 4, T) or None
        → v = (x - x̂0) / t."""
        t = t.expand(x.shape[0]) if t.ndim == 0 else t
        flow_time = (t.float() / TIME_SCALE).clamp_min(MIN_FLOW_TIME).view(-1, 1, 1, 1)
        return ((x.float() - self.predict_x0(x, t, tokens, beat).float()) / flow_time).to(x.dtype)

    def _beat(self, beat: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
        """The beat features (B, 4, T) on x's device and dtype (None → zeros); None when the net has no beat input
        (a model without `beat_conditioning` ignores them)."""
        if not self.config.beat_conditioning:
            return None
        b, _, _, frames = x.shape
        if beat is None:
            return x.new_zeros(b, BEAT_FEATURES, frames)
        if beat.ndim != 3 or beat.shape[0] not in (1, b) or beat.shape[1:] != (BEAT_FEATURES, frames):
            raise ValueError(f"beat must be (B, {BEAT_FEATURES}, {frames}) for a latent of batch {b} and {frames} "
                             f"frames (beat.py), found shape {tuple(beat.shape)}")
        return beat.to(x.device, x.dtype).expand(b, -1, -1)

    def predict_x0(self, x: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor,
                   beat: torch.Tensor | None = None) -> torch.Tensor:
        """The clean spectrogram x̂0 (B, 1, F, T) from x_t, network time t (B,), caption tokens (B, L) and, for a
        net with `beat_conditioning`, beat-phase features (B, 4, T) (None = no beat)."""
        b, _, bins, frames = x.shape
        beat = self._beat(beat, x)                                                # (B, 4, T) or None
        # integer tokens stay on the CPU when the sampler moves the (floating) conditioning to the device
        text, keep = self.text_encoder(tokens.to(x.device).long())               # (B, L, D), (B, L)
        pooled = (text * keep[..., None]).sum(1) / keep.sum(1, keepdim=True).clamp_min(1)
        embedding = self.time_mlp(timestep_embedding(t.expand(b) if t.ndim == 0 else t, self.config.embed_width))
        embedding = embedding + self.text_pool(pooled)                           # (B, E)
        h = self.conv_in(x.reshape(b, bins, frames))                             # (B, C0, T)
        if beat is not None:
            h = h + self.beat_down[0](beat)
        skips = [h]
        for level, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, embedding)
                skips.append(h)
            if not isinstance(self.down_attention[level], nn.Identity):
                h = self.down_attention[level](h, text, keep)
                skips[-1] = h
            if level < len(self.downsample):
                h = self.downsample[level](h)
                if beat is not None:
                    h = h + self.beat_down[level + 1](beat[..., :: 2 ** (level + 1)])   # (B, C, T / 2^l)
                skips.append(h)
        h = self.mid_attention(self.mid(h, embedding), text, keep)
        levels = len(self.up)
        for index, blocks in enumerate(self.up):
            if beat is not None:
                h = h + self.beat_up[index](beat[..., :: 2 ** (levels - 1 - index)])
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), embedding)
            if not isinstance(self.up_attention[index], nn.Identity):
                h = self.up_attention[index](h, text, keep)
            if index < len(self.upsample):
                h = self.upsample[index](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        out = self.conv_out(F.silu(self.norm_out(h)))                            # (B, F, T)
        return out.reshape(b, 1, bins, frames)
