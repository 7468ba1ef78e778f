"""The point-set diffusion transformer: points are tokens; time and text modulate every block.

Point-E (Nichol et al. 2022) denoises a point cloud with a transformer whose tokens are the points
(no positional encoding: the network is permutation-equivariant, a set function). This model keeps
that and, to stay small enough to train on one CPU core, conditions through adaptive layer norm
with zero-initialised gates (adaLN-Zero, DiT, Peebles & Xie 2023, §3.2) instead of extra tokens:
time and the pooled caption give each block a shift, scale and gate, so conditioning reaches every
point however many points there are (the model trains on 256 points and samples 1024; attention is a
weighted mean over points, so it does not depend on their number, only on their density).

    PointDiffusionConfig   sizes (defaults commented with why)
    TextEncoder            one-hot words (B, L, V) → pooled (B, D): embedding + 1 transformer layer + masked mean
    PointDiffusionTransformer   net(x (B, C, N), t (B,), words=(B, L, V)) → prediction (B, C, N)
                           (the `net(x, t, **cond)` contract of nodegraph.api.diffusion_model)
    timestep_embedding(t, dim)   sinusoidal embedding (Vaswani et al. 2017; DDPM's time input)

Tensor layout: the latent is channels-first (B, C, N) like every LATENT (C = 6: xyz, then rgb mapped
to [-1, 1]); inside, tokens are (B, N, D).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .text import MAX_WORDS, VOCABULARY


@dataclass(frozen=True)
class PointDiffusionConfig:
    channels: int = 6            # xyz + rgb
    width: int = 128             # token width D: enough for 6 solids × 8 colours on CPU
    layers: int = 4              # 4 blocks: each point sees the set 4 times
    heads: int = 4               # 32-d heads
    mlp_ratio: int = 2           # the per-point MLP dominates the cost at 256 points; 2 keeps it affordable
    vocab_size: int = len(VOCABULARY)   # the closed caption vocabulary (text.py)
    max_words: int = MAX_WORDS
    text_layers: int = 1         # captions are bags of attributes: one layer is plenty
    timesteps: int = 1000        # DDPM training steps (cosine schedule)

    def to_json(self) -> dict:
        return asdict(self)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (fractional) timesteps t (B,) → (B, dim) (Vaswani et al. 2017, §3.5)."""
    half = dim // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float().unsqueeze(1) * frequencies.unsqueeze(0)                        # (B, half)
    return torch.cat([angles.cos(), angles.sin()], dim=1)


class Attention(nn.Module):
    """Multi-head self-attention over a token set (optionally masked keys)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, h: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, tokens, width = h.shape
        q, k, v = self.qkv(h).view(batch, tokens, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        mask = None if key_mask is None else key_mask[:, None, None, :]                 # (B, 1, 1, T)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)                   # (B, heads, T, dim)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, width))


class MLP(nn.Module):
    def __init__(self, width: int, ratio: int):
        super().__init__()
        self.fc1 = nn.Linear(width, ratio * width)
        self.fc2 = nn.Linear(ratio * width, width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(h), approximate="tanh"))


class TextBlock(nn.Module):
    """Pre-LN transformer layer over the caption's words."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn, self.mlp = Attention(width, heads), MLP(width, 2)

    def forward(self, h: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        h = h + self.attn(self.ln1(h), key_mask)
        return h + self.mlp(self.ln2(h))


class TextEncoder(nn.Module):
    """One-hot words (B, L, V) → pooled caption embedding (B, D); no words → the learned `null` embedding."""

    def __init__(self, config: PointDiffusionConfig):
        super().__init__()
        self.word_embedding = nn.Linear(config.vocab_size, config.width, bias=False)     # one-hot @ table
        self.position_embedding = nn.Parameter(torch.zeros(config.max_words, config.width))
        self.blocks = nn.ModuleList(TextBlock(config.width, config.heads) for _ in range(config.text_layers))
        self.ln = nn.LayerNorm(config.width)
        self.null = nn.Parameter(torch.zeros(config.width))
        nn.init.normal_(self.word_embedding.weight, std=0.5)
        nn.init.normal_(self.position_embedding, std=0.02)

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        present = words.sum(-1) > 0.5                                                    # (B, L)
        h = self.word_embedding(words) + self.position_embedding[: words.shape[1]]      # (B, L, D)
        any_word = present.any(1)                                                       # (B,)
        key_mask = present | ~any_word[:, None]               # an empty caption attends to its (unused) rows
        for block in self.blocks:
            h = block(h, key_mask)
        weights = present.to(h.dtype).unsqueeze(-1)
        pooled = self.ln((h * weights).sum(1) / weights.sum(1).clamp_min(1.0))         # (B, D)
        return torch.where(any_word[:, None], pooled, self.null.to(pooled.dtype).expand_as(pooled))


def modulate(h: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return h * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class PointBlock(nn.Module):
    """adaLN-Zero transformer block over the point tokens (DiT, Peebles & Xie 2023, Fig. 3)."""

    def __init__(self, width: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(width, elementwise_affine=False)
        self.ln2 = nn.LayerNorm(width, elementwise_affine=False)
        self.attn, self.mlp = Attention(width, heads), MLP(width, mlp_ratio)
        self.modulation = nn.Linear(width, 6 * width)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c).chunk(6, dim=1)   # (B, D) each
        h = h + gate1.unsqueeze(1) * self.attn(modulate(self.ln1(h), shift1, scale1))
        return h + gate2.unsqueeze(1) * self.mlp(modulate(self.ln2(h), shift2, scale2))


class PointDiffusionTransformer(nn.Module):
    """net(x (B, C, N), t (B,), words (B, L, V)) → (B, C, N): the v-prediction of a point set."""

    def __init__(self, config: PointDiffusionConfig = PointDiffusionConfig()):
        super().__init__()
        self.config = config
        width = config.width
        self.input_proj = nn.Linear(config.channels, width)
        self.time_mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.text = TextEncoder(config)
        self.blocks = nn.ModuleList(PointBlock(width, config.heads, config.mlp_ratio) for _ in range(config.layers))
        self.final_ln = nn.LayerNorm(width, elementwise_affine=False)
        self.final_modulation = nn.Linear(width, 2 * width)
        self.output_proj = nn.Linear(width, config.channels)
        for layer in (self.final_modulation, self.output_proj):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, words: torch.Tensor | None = None) -> torch.Tensor:
        batch = x.shape[0]
        if words is None:
            words = x.new_zeros(batch, self.config.max_words, self.config.vocab_size)
        c = self.time_mlp(timestep_embedding(t.reshape(-1).expand(batch), self.config.width).to(x.dtype))
        c = F.silu(c + self.text(words.to(x.dtype)))                                      # (B, D)
        h = self.input_proj(x.transpose(1, 2))                                             # (B, N, D)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.final_modulation(c).chunk(2, dim=1)
        return self.output_proj(modulate(self.final_ln(h), shift, scale)).transpose(1, 2)  # (B, C, N)
