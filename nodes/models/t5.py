"""T5 encoder (T5 v1.1 / T5-XXL as used by SD3 and Flux), shaped like the Hugging Face checkpoint keys.

Reference: Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified
Text-to-Text Transformer" (T5), §2.1; v1.1 changes: gated-GELU feed-forward (Shazeer 2020,
"GLU Variants Improve Transformer", FFN_GEGLU), no dropout, untied input embedding.

Objects:

* :class:`T5Config` -- sizes; :data:`T5_XXL` is the 4.7B-parameter encoder of SD3 / Flux.
* :class:`T5EncoderModel` -- ``forward(ids (B, T)) -> hidden states (B, T, d_model)``;
  names equal ``shared.weight``, ``encoder.block.N.layer.0.SelfAttention.q.weight``, ...
* :func:`relative_position_bucket` -- the bidirectional log-bucketed relative position (T5 §2.1).
* :func:`detect_t5_config` -- config from key names and shapes.

Details that differ from a textbook transformer: pre-norm RMS layer norms with a scale and
no bias or mean subtraction (``T5LayerNorm``); attention logits are NOT divided by
sqrt(d_kv) (folded into the initialisation); one learned relative position bias
(num_buckets x heads) lives in block 0 and is shared by every layer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["T5Config", "T5_XXL", "T5EncoderModel", "relative_position_bucket", "detect_t5_config"]


@dataclass(frozen=True)
class T5Config:
    """Sizes of a T5 v1.1 encoder; defaults are T5-XXL (google/t5-v1_1-xxl, as shipped with SD3 / Flux)."""

    vocab_size: int = 32128         # 32000 SentencePiece pieces + 100 sentinel ids, padded to a multiple of 128
    d_model: int = 4096
    d_kv: int = 64                  # per-head width; heads * d_kv need not equal d_model
    num_heads: int = 64
    d_ff: int = 10240
    num_layers: int = 24
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6
    gated_gelu: bool = True         # v1.1 (wi_0 / wi_1); the original T5 uses ReLU with one wi


T5_XXL = T5Config()


def relative_position_bucket(relative_position: torch.Tensor, num_buckets: int = 32,
                             max_distance: int = 128) -> torch.Tensor:
    """Bucket of (key - query) offsets, bidirectional: half the buckets per sign, exact below
    num_buckets/4, log-spaced up to max_distance (T5 §2.1; Shaw et al. 2018)."""
    num_buckets //= 2
    buckets = (relative_position > 0).long() * num_buckets
    distance = relative_position.abs()
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    large = max_exact + (torch.log(distance.float().clamp(min=1) / max_exact)
                         / math.log(max_distance / max_exact) * (num_buckets - max_exact)).long()
    large = large.clamp(max=num_buckets - 1)
    return buckets + torch.where(is_small, distance, large)


class T5LayerNorm(nn.Module):
    """RMS norm with a scale, computed in float32 (T5's ``T5LayerNorm``)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.float().pow(2).mean(-1, keepdim=True)
        x = x.float() * torch.rsqrt(variance + self.eps)
        return self.weight * x.to(self.weight.dtype)


class T5Attention(nn.Module):
    """Unscaled multi-head self-attention with a learned relative position bias (block 0 owns it)."""

    def __init__(self, config: T5Config, has_relative_bias: bool):
        super().__init__()
        inner = config.num_heads * config.d_kv
        self.config = config
        self.q = nn.Linear(config.d_model, inner, bias=False)
        self.k = nn.Linear(config.d_model, inner, bias=False)
        self.v = nn.Linear(config.d_model, inner, bias=False)
        self.o = nn.Linear(inner, config.d_model, bias=False)
        if has_relative_bias:
            self.relative_attention_bias = nn.Embedding(config.relative_attention_num_buckets, config.num_heads)

    def position_bias(self, length: int, device: torch.device) -> torch.Tensor:
        """(1, heads, T, T) additive logits bias from the bucketed relative positions."""
        positions = torch.arange(length, device=device)
        relative = positions[None, :] - positions[:, None]  # (T_q, T_k): key - query
        buckets = relative_position_bucket(relative, self.config.relative_attention_num_buckets,
                                           self.config.relative_attention_max_distance)
        return self.relative_attention_bias(buckets).permute(2, 0, 1)[None]  # (1, heads, T, T)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        heads, d_kv = self.config.num_heads, self.config.d_kv

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, heads, d_kv).transpose(1, 2)  # (B, heads, T, d_kv)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=1.0)  # no 1/sqrt(d)
        return self.o(out.transpose(1, 2).reshape(batch, length, heads * d_kv))


class _SelfAttentionLayer(nn.Module):
    """``layer.0``: pre-norm + SelfAttention + residual."""

    def __init__(self, config: T5Config, has_relative_bias: bool):
        super().__init__()
        self.SelfAttention = T5Attention(config, has_relative_bias)
        self.layer_norm = T5LayerNorm(config.d_model, config.layer_norm_epsilon)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return x + self.SelfAttention(self.layer_norm(x), bias)


class _DenseGatedGelu(nn.Module):
    """FFN_GEGLU: wo(gelu_tanh(wi_0 x) * wi_1 x) (Shazeer 2020, eq. 6); ReLU(wi x) for original T5."""

    def __init__(self, config: T5Config):
        super().__init__()
        self.gated = config.gated_gelu
        if self.gated:
            self.wi_0 = nn.Linear(config.d_model, config.d_ff, bias=False)
            self.wi_1 = nn.Linear(config.d_model, config.d_ff, bias=False)
        else:
            self.wi = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wo = nn.Linear(config.d_ff, config.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gated:
            return self.wo(F.gelu(self.wi_0(x), approximate="tanh") * self.wi_1(x))
        return self.wo(F.relu(self.wi(x)))


class _FeedForwardLayer(nn.Module):
    """``layer.1``: pre-norm + DenseReluDense + residual."""

    def __init__(self, config: T5Config):
        super().__init__()
        self.DenseReluDense = _DenseGatedGelu(config)
        self.layer_norm = T5LayerNorm(config.d_model, config.layer_norm_epsilon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.DenseReluDense(self.layer_norm(x))


class T5Block(nn.Module):
    """``encoder.block.N``: ``layer`` = [self-attention, feed-forward]."""

    def __init__(self, config: T5Config, has_relative_bias: bool):
        super().__init__()
        self.layer = nn.ModuleList([_SelfAttentionLayer(config, has_relative_bias), _FeedForwardLayer(config)])

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = _clamp_fp16(self.layer[0](x, bias))
        return _clamp_fp16(self.layer[1](x))


def _clamp_fp16(x: torch.Tensor) -> torch.Tensor:
    """T5 activations overflow float16; clamp after each sub-layer as transformers' T5 does."""
    if x.dtype != torch.float16:
        return x
    limit = torch.finfo(torch.float16).max - 1000
    return x.clamp(-limit, limit)


class _Encoder(nn.Module):
    def __init__(self, config: T5Config):
        super().__init__()
        self.block = nn.ModuleList(T5Block(config, has_relative_bias=i == 0) for i in range(config.num_layers))
        self.final_layer_norm = T5LayerNorm(config.d_model, config.layer_norm_epsilon)


class T5EncoderModel(nn.Module):
    """T5 encoder stack: ``forward(input_ids (B, T), attention_mask=None) -> (B, T, d_model)``.

    ``attention_mask`` (B, T) of 1 = attend, 0 = padding, as in transformers; SD3 and Flux pass
    none (padding tokens are attended to, as their references do).
    """

    def __init__(self, config: T5Config = T5_XXL):
        super().__init__()
        self.config = config
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = _Encoder(config)

    @property
    def dtype(self) -> torch.dtype:
        return self.shared.weight.dtype

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if input_ids.ndim != 2 or input_ids.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"input_ids: expected integer token ids of shape (B, T), got {input_ids.dtype} "
                             f"{tuple(input_ids.shape)}; tokenize the prompt with T5Tokenizer first")
        if int(input_ids.max()) >= self.config.vocab_size or int(input_ids.min()) < 0:
            raise ValueError(f"input_ids: ids must lie in [0, {self.config.vocab_size}), got "
                             f"[{int(input_ids.min())}, {int(input_ids.max())}]; the tokenizer model does not "
                             f"belong to this T5 checkpoint")
        x = self.shared(input_ids)  # (B, T, d_model)
        bias = self.encoder.block[0].layer[0].SelfAttention.position_bias(input_ids.shape[1], x.device)
        if attention_mask is not None:  # (B, T) -> additive (B, 1, 1, T)
            masked = (1 - attention_mask[:, None, None, :].to(bias.dtype)) * torch.finfo(bias.dtype).min
            bias = bias + masked
        for block in self.encoder.block:
            x = block(x, bias)
        return self.encoder.final_layer_norm(x)


def detect_t5_config(shapes: Mapping[str, tuple[int, ...]], prefix: str = "") -> T5Config:
    """T5Config from HF-layout key names and shapes under ``prefix`` (KeyError if it is not a T5 encoder)."""
    s = {k[len(prefix):]: tuple(v) for k, v in shapes.items() if k.startswith(prefix)}
    vocab, d_model = s["shared.weight"]
    layers = 1 + max(int(k.split(".")[2]) for k in s if k.startswith("encoder.block."))
    buckets, heads = s["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
    inner = s["encoder.block.0.layer.0.SelfAttention.q.weight"][0]
    gated = "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in s
    d_ff = s["encoder.block.0.layer.1.DenseReluDense." + ("wi_0" if gated else "wi") + ".weight"][0]
    return T5Config(vocab_size=vocab, d_model=d_model, d_kv=inner // heads, num_heads=heads, d_ff=d_ff,
                    num_layers=layers, relative_attention_num_buckets=buckets, gated_gelu=gated)
