"""SD3 / SD3.5 MMDiT: the multimodal diffusion transformer of Stable Diffusion 3.

Reference: Esser et al. 2024, "Scaling Rectified Flow Transformers for
High-Resolution Image Synthesis" (SD3), §4 and Fig. 2; SD3.5 adds RMS q/k
normalisation (Large) and a second, image-only attention in the first blocks
("MMDiT-X", Medium). Module and parameter names equal the original single-file
checkpoint keys under ``model.diffusion_model.``; :func:`diffusers_key_map`
maps diffusers' ``SD3Transformer2DModel`` names onto them.

Objects:

* :class:`MMDiTConfig` -- sizes; :data:`SD3_MEDIUM`, :data:`SD35_MEDIUM`, :data:`SD35_LARGE`.
* :class:`MMDiT` -- ``net(x, t, context=(B, T, 4096), y=(B, 2048)) -> velocity (B, C, H, W)``;
  ``t`` is the flow time times 1000 (rectified flow, x_t = (1 - t) x0 + t eps).
* :class:`JointBlock` -- one ``context_block`` + one ``x_block`` (each a :class:`DismantledBlock`)
  sharing one attention over the concatenated text and image tokens.
* :func:`diffusers_key_map` -- (our key -> (diffusers key, converter)) for the diffusers folder layout.

Tokens: the image is cut into p x p patches (``x_embedder``), a fixed 2-D sin-cos table
(``pos_embed``, a max_size² grid) is cropped at its centre to the latent's grid and added;
the conditioning vector c = t_embedder(t) + y_embedder(pooled text) modulates every
block through adaLN (shift, scale, gate).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MMDiTConfig", "SD3_MEDIUM", "SD35_MEDIUM", "SD35_LARGE", "MMDiT", "JointBlock",
           "DismantledBlock", "timestep_embedding", "diffusers_key_map", "convert_diffusers_state_dict",
           "detect_mmdit_config", "MMDiTInputError"]


class MMDiTInputError(ValueError):
    """Bad input to the MMDiT: names the argument, what was expected and the fix."""


@dataclass(frozen=True)
class MMDiTConfig:
    """Sizes of an MMDiT. hidden = heads * head_dim; in SD3 heads == depth (the paper's scaling rule)."""

    depth: int = 24                    # joint blocks; SD3-medium 24, SD3.5-large 38
    num_heads: int = 24                # SD3 uses heads = depth
    head_dim: int = 64                 # fixed 64 across all SD3 sizes
    patch_size: int = 2                # 2x2 latent patches -> a 128x128 latent (1024 px) gives 4096 tokens
    in_channels: int = 16              # the SD3 VAE has 16 latent channels
    out_channels: int = 16
    context_dim: int = 4096            # T5-XXL width; CLIP-L/G outputs are zero-padded to it
    pooled_dim: int = 2048             # pooled CLIP-L (768) + pooled CLIP-G (1280)
    pos_embed_max_size: int = 192      # the sin-cos grid is 192x192 patches (SD3.5-medium: 384)
    qk_norm: bool = False              # RMS norm on q and k per head (SD3.5)
    dual_attention_layers: tuple[int, ...] = ()   # blocks with the extra image-only attention (SD3.5-medium)
    mlp_ratio: float = 4.0

    @property
    def hidden(self) -> int:
        return self.num_heads * self.head_dim


SD3_MEDIUM = MMDiTConfig()
SD35_LARGE = MMDiTConfig(depth=38, num_heads=38, qk_norm=True)
SD35_MEDIUM = MMDiTConfig(pos_embed_max_size=384, qk_norm=True, dual_attention_layers=tuple(range(13)))


def timestep_embedding(t: torch.Tensor, dim: int = 256, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding [cos, sin] of t (DiT's ``TimestepEmbedder``; Vaswani et al. 2017)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, dim)


def sincos_pos_embed_2d(dim: int, grid_size: int) -> torch.Tensor:
    """2-D sin-cos position table (grid_size², dim) of MAE/DiT: half the channels for each axis."""
    coords = torch.arange(grid_size, dtype=torch.float64)
    grid_h, grid_w = torch.meshgrid(coords, coords, indexing="ij")

    def one_axis(positions: torch.Tensor) -> torch.Tensor:
        omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))
        out = positions.reshape(-1)[:, None] * omega[None]
        return torch.cat([torch.sin(out), torch.cos(out)], dim=1)

    return torch.cat([one_axis(grid_w), one_axis(grid_h)], dim=1).float()


class _MLP(nn.Sequential):
    """Linear -> SiLU -> Linear, named ``mlp.0`` / ``mlp.2`` as in the checkpoint."""

    def __init__(self, in_dim: int, hidden: int):
        super().__init__(nn.Linear(in_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))


class _Embedder(nn.Module):
    """Holds ``mlp`` so keys read ``t_embedder.mlp.0.weight`` / ``y_embedder.mlp.0.weight``."""

    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        self.mlp = _MLP(in_dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


class PatchEmbed(nn.Module):
    """p x p patches -> tokens by a strided conv (``x_embedder.proj``)."""

    def __init__(self, patch_size: int, in_channels: int, hidden: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, hidden, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, h*w, hidden)


class RMSNorm(nn.Module):
    """RMS norm with a learned scale (Zhang & Sennrich 2019), applied per head to q and k in SD3.5."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return (x.float() * torch.rsqrt(variance + self.eps)).to(x.dtype) * self.weight


class SelfAttention(nn.Module):
    """q, k, v from one fused ``qkv`` projection; optional ``ln_q``/``ln_k``; output ``proj`` (absent if pre-only)."""

    def __init__(self, hidden: int, num_heads: int, qk_norm: bool, pre_only: bool = False):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        if qk_norm:
            self.ln_q = RMSNorm(hidden // num_heads)
            self.ln_k = RMSNorm(hidden // num_heads)
        else:
            self.ln_q = self.ln_k = None
        self.proj = None if pre_only else nn.Linear(hidden, hidden)

    def pre_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(q, k, v), each (B, heads, T, head_dim), with q/k normalised when the model has ln_q/ln_k."""
        batch, tokens, _ = x.shape
        q, k, v = self.qkv(x).view(batch, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)  # 3 x (B, heads, T, d)
        if self.ln_q is not None:
            q, k = self.ln_q(q), self.ln_k(k)
        return q, k, v


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Softmax attention over (B, heads, T, d) -> (B, T, heads*d)."""
    out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, T, d)
    return out.transpose(1, 2).flatten(2)


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: x * (1 + scale) + shift, per batch item (DiT, Peebles & Xie 2023)."""
    return x * (1 + scale[:, None]) + shift[:, None]


class DismantledBlock(nn.Module):
    """One stream (text or image) of a joint block: adaLN, attention parts, MLP.

    ``adaLN_modulation`` gives 6 vectors (shift/scale/gate for attention and MLP), 2 for the
    last text block (pre-only: shift/scale, no attention output or MLP), or 9 with the
    image-only second attention ``attn2`` of SD3.5-medium.
    """

    def __init__(self, hidden: int, num_heads: int, mlp_ratio: float, qk_norm: bool,
                 pre_only: bool = False, dual_attention: bool = False):
        super().__init__()
        self.pre_only = pre_only
        self.dual_attention = dual_attention
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(hidden, num_heads, qk_norm, pre_only)
        self.attn2 = SelfAttention(hidden, num_heads, qk_norm) if dual_attention else None
        if not pre_only:
            self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
            mlp_hidden = int(hidden * mlp_ratio)
            self.mlp = nn.Module()
            self.mlp.fc1 = nn.Linear(hidden, mlp_hidden)
            self.mlp.fc2 = nn.Linear(mlp_hidden, hidden)
        chunks = 2 if pre_only else (9 if dual_attention else 6)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, chunks * hidden))

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp.fc2(F.gelu(self.mlp.fc1(x), approximate="tanh"))

    def forward_after_attention(self, x: torch.Tensor, attn_out: torch.Tensor, mods: list[torch.Tensor],
                                attn2_out: torch.Tensor | None = None) -> torch.Tensor:
        """Residual updates after the joint attention: gated attention (and attn2), then gated MLP."""
        _, _, gate_msa, shift_mlp, scale_mlp, gate_mlp = mods[:6]
        x = x + gate_msa[:, None] * self.attn.proj(attn_out)
        if attn2_out is not None:
            x = x + mods[8][:, None] * self.attn2.proj(attn2_out)
        return x + gate_mlp[:, None] * self.feed_forward(_modulate(self.norm2(x), shift_mlp, scale_mlp))


class JointBlock(nn.Module):
    """Text and image tokens attend jointly: q/k/v of both streams are concatenated (SD3 paper, Fig. 2b)."""

    def __init__(self, config: MMDiTConfig, pre_only: bool, dual_attention: bool):
        super().__init__()
        hidden = config.hidden
        self.context_block = DismantledBlock(hidden, config.num_heads, config.mlp_ratio, config.qk_norm, pre_only)
        self.x_block = DismantledBlock(hidden, config.num_heads, config.mlp_ratio, config.qk_norm,
                                       dual_attention=dual_attention)

    def forward(self, context: torch.Tensor, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        ctx_block, x_block = self.context_block, self.x_block
        ctx_mods = ctx_block.adaLN_modulation(c).chunk(2 if ctx_block.pre_only else 6, dim=1)
        x_mods = x_block.adaLN_modulation(c).chunk(9 if x_block.dual_attention else 6, dim=1)
        ctx_q, ctx_k, ctx_v = ctx_block.attn.pre_attention(_modulate(ctx_block.norm1(context), *ctx_mods[:2]))
        x_normed = x_block.norm1(x)
        x_q, x_k, x_v = x_block.attn.pre_attention(_modulate(x_normed, *x_mods[:2]))
        joint = _attention(torch.cat([ctx_q, x_q], 2), torch.cat([ctx_k, x_k], 2), torch.cat([ctx_v, x_v], 2))
        ctx_out, x_out = joint[:, :context.shape[1]], joint[:, context.shape[1]:]  # (B, T_ctx, D), (B, T_x, D)
        attn2_out = None
        if x_block.dual_attention:
            attn2_out = _attention(*x_block.attn2.pre_attention(_modulate(x_normed, x_mods[6], x_mods[7])))
        x = x_block.forward_after_attention(x, x_out, list(x_mods), attn2_out)
        if ctx_block.pre_only:
            return None, x
        return ctx_block.forward_after_attention(context, ctx_out, list(ctx_mods)), x


class FinalLayer(nn.Module):
    """adaLN (shift, scale) + linear to p*p*C values per token."""

    def __init__(self, hidden: int, patch_size: int, out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(_modulate(self.norm_final(x), shift, scale))


class MMDiT(nn.Module):
    """The SD3 denoiser: ``forward(x, t, context, y) -> velocity`` (see the module docstring)."""

    def __init__(self, config: MMDiTConfig = SD3_MEDIUM):
        super().__init__()
        self.config = config
        hidden = config.hidden
        self.x_embedder = PatchEmbed(config.patch_size, config.in_channels, hidden)
        self.register_buffer("pos_embed", sincos_pos_embed_2d(hidden, config.pos_embed_max_size)[None])  # (1, M², D)
        self.t_embedder = _Embedder(256, hidden)
        self.y_embedder = _Embedder(config.pooled_dim, hidden)
        self.context_embedder = nn.Linear(config.context_dim, hidden)
        self.joint_blocks = nn.ModuleList(
            JointBlock(config, pre_only=i == config.depth - 1, dual_attention=i in config.dual_attention_layers)
            for i in range(config.depth))
        self.final_layer = FinalLayer(hidden, config.patch_size, config.out_channels)

    def cropped_pos_embed(self, h: int, w: int) -> torch.Tensor:
        """The centre h x w window of the position table, as (1, h*w, D)."""
        size = self.config.pos_embed_max_size
        if h > size or w > size:
            raise MMDiTInputError(
                f"x: latent of {h}x{w} patches exceeds this model's position table ({size}x{size} patches); "
                f"sample at most {size * self.config.patch_size * 8} px per side.")
        top, left = (size - h) // 2, (size - w) // 2
        table = self.pos_embed.reshape(1, size, size, -1)[:, top:top + h, left:left + w]
        return table.reshape(1, h * w, -1)

    def _check(self, x: torch.Tensor, context: torch.Tensor | None, y: torch.Tensor | None) -> None:
        c, p = self.config, self.config.patch_size
        if x.ndim != 4 or x.shape[1] != c.in_channels:
            raise MMDiTInputError(f"x: expected latents (B, {c.in_channels}, H, W), got shape {tuple(x.shape)}; "
                                  f"SD3 latents come from its 16-channel VAE.")
        if x.shape[-2] % p or x.shape[-1] % p:
            raise MMDiTInputError(f"x: latent height and width must be multiples of the patch size {p}, got "
                                  f"{tuple(x.shape[-2:])}; use image sizes that are multiples of {8 * p} px.")
        if context is None or context.ndim != 3 or context.shape[-1] != c.context_dim:
            raise MMDiTInputError(f"context: expected (B, T, {c.context_dim}) text tokens, got "
                                  f"{None if context is None else tuple(context.shape)}; encode the prompt with "
                                  f"EncodeTextSD3.")
        if y is None or y.ndim != 2 or y.shape[-1] != c.pooled_dim:
            raise MMDiTInputError(f"y: expected pooled text (B, {c.pooled_dim}), got "
                                  f"{None if y is None else tuple(y.shape)}; encode the prompt with EncodeTextSD3.")

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor | None = None,
                y: torch.Tensor | None = None, **_unused) -> torch.Tensor:
        self._check(x, context, y)
        batch, _, height, width = x.shape
        p = self.config.patch_size
        h, w = height // p, width // p
        tokens = self.x_embedder(x) + self.cropped_pos_embed(h, w).to(x.dtype)  # (B, h*w, D)
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(batch)
        c = self.t_embedder(timestep_embedding(t).to(x.dtype)) + self.y_embedder(y.to(x.dtype))  # (B, D)
        context = self.context_embedder(context.to(x.dtype))  # (B, T, D)
        if context.shape[0] != batch:
            context = context.expand(batch, -1, -1)
        for block in self.joint_blocks:
            context, tokens = block(context, tokens, c)
        out = self.final_layer(tokens, c)  # (B, h*w, p*p*C)
        out = out.reshape(batch, h, w, p, p, self.config.out_channels)
        return torch.einsum("nhwpqc->nchpwq", out).reshape(batch, self.config.out_channels, height, width)


# --- diffusers layout ---------------------------------------------------------------------

Converter = Callable[[list[torch.Tensor]], torch.Tensor]


def _same(tensors: list[torch.Tensor]) -> torch.Tensor:
    return tensors[0]


def _concat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(tensors, dim=0)


def _swap_halves(tensors: list[torch.Tensor]) -> torch.Tensor:
    """diffusers' AdaLayerNormContinuous orders (scale, shift); the original orders (shift, scale)."""
    scale, shift = tensors[0].chunk(2, dim=0)
    return torch.cat([shift, scale], dim=0)


def diffusers_key_map(config: MMDiTConfig) -> dict[str, tuple[list[str], Converter]]:
    """Our (original) key -> (the diffusers keys it is made from, how to combine them)."""
    m: dict[str, tuple[list[str], Converter]] = {}

    def one(ours: str, theirs: str, how: Converter = _same) -> None:
        for suffix in ("weight", "bias"):
            m[f"{ours}.{suffix}"] = ([f"{theirs}.{suffix}"], how)

    m["pos_embed"] = (["pos_embed.pos_embed"], _same)
    one("x_embedder.proj", "pos_embed.proj")
    one("t_embedder.mlp.0", "time_text_embed.timestep_embedder.linear_1")
    one("t_embedder.mlp.2", "time_text_embed.timestep_embedder.linear_2")
    one("y_embedder.mlp.0", "time_text_embed.text_embedder.linear_1")
    one("y_embedder.mlp.2", "time_text_embed.text_embedder.linear_2")
    one("context_embedder", "context_embedder")
    for i in range(config.depth):
        ours, theirs = f"joint_blocks.{i}", f"transformer_blocks.{i}"
        last = i == config.depth - 1
        for suffix in ("weight", "bias"):
            m[f"{ours}.x_block.attn.qkv.{suffix}"] = (
                [f"{theirs}.attn.to_{n}.{suffix}" for n in "qkv"], _concat)
            m[f"{ours}.context_block.attn.qkv.{suffix}"] = (
                [f"{theirs}.attn.add_{n}_proj.{suffix}" for n in "qkv"], _concat)
        one(f"{ours}.x_block.attn.proj", f"{theirs}.attn.to_out.0")
        one(f"{ours}.x_block.adaLN_modulation.1", f"{theirs}.norm1.linear")
        one(f"{ours}.x_block.mlp.fc1", f"{theirs}.ff.net.0.proj")
        one(f"{ours}.x_block.mlp.fc2", f"{theirs}.ff.net.2")
        one(f"{ours}.context_block.adaLN_modulation.1", f"{theirs}.norm1_context.linear",
            _swap_halves if last else _same)
        if not last:
            one(f"{ours}.context_block.attn.proj", f"{theirs}.attn.to_add_out")
            one(f"{ours}.context_block.mlp.fc1", f"{theirs}.ff_context.net.0.proj")
            one(f"{ours}.context_block.mlp.fc2", f"{theirs}.ff_context.net.2")
        if config.qk_norm:
            for ours_norm, theirs_norm in (("x_block.attn.ln_q", "attn.norm_q"), ("x_block.attn.ln_k", "attn.norm_k"),
                                           ("context_block.attn.ln_q", "attn.norm_added_q"),
                                           ("context_block.attn.ln_k", "attn.norm_added_k")):
                m[f"{ours}.{ours_norm}.weight"] = ([f"{theirs}.{theirs_norm}.weight"], _same)
        if i in config.dual_attention_layers:
            for suffix in ("weight", "bias"):
                m[f"{ours}.x_block.attn2.qkv.{suffix}"] = (
                    [f"{theirs}.attn2.to_{n}.{suffix}" for n in "qkv"], _concat)
            one(f"{ours}.x_block.attn2.proj", f"{theirs}.attn2.to_out.0")
            if config.qk_norm:
                m[f"{ours}.x_block.attn2.ln_q.weight"] = ([f"{theirs}.attn2.norm_q.weight"], _same)
                m[f"{ours}.x_block.attn2.ln_k.weight"] = ([f"{theirs}.attn2.norm_k.weight"], _same)
    one("final_layer.linear", "proj_out")
    one("final_layer.adaLN_modulation.1", "norm_out.linear", _swap_halves)
    return m


def convert_diffusers_state_dict(tensors: Mapping[str, torch.Tensor], config: MMDiTConfig) -> dict[str, torch.Tensor]:
    """A diffusers ``SD3Transformer2DModel`` state dict in the original key layout (missing keys: KeyError naming them)."""
    key_map = diffusers_key_map(config)
    missing = sorted({name for sources, _ in key_map.values() for name in sources if name not in tensors})
    if missing:
        raise KeyError(f"diffusers SD3 transformer weights lack {len(missing)} keys, e.g. {missing[:3]}")
    return {ours: how([tensors[name] for name in sources]) for ours, (sources, how) in key_map.items()}


def detect_mmdit_config(shapes: Mapping[str, tuple[int, ...]], prefix: str = "") -> MMDiTConfig:
    """The MMDiTConfig of original-layout weights from their key names and shapes (KeyError if not an MMDiT)."""
    def shape(name: str) -> tuple[int, ...]:
        return tuple(shapes[prefix + name])

    proj = shape("x_embedder.proj.weight")  # (hidden, C_in, p, p)
    hidden, patch = proj[0], proj[-1]
    blocks = {int(k[len(prefix):].split(".")[1]) for k in shapes
              if k.startswith(prefix + "joint_blocks.") and k.endswith("x_block.attn.qkv.weight")}
    if not blocks:
        raise KeyError(f"{prefix}joint_blocks.N.x_block.attn.qkv.weight")
    dual = tuple(sorted(i for i in blocks if f"{prefix}joint_blocks.{i}.x_block.attn2.qkv.weight" in shapes))
    head_dim = 64  # every released SD3 / SD3.5 size; the weights do not record the head count
    return MMDiTConfig(
        depth=max(blocks) + 1, num_heads=hidden // head_dim, head_dim=head_dim, patch_size=patch,
        in_channels=proj[1], out_channels=shape("final_layer.linear.weight")[0] // (patch * patch),
        context_dim=shape("context_embedder.weight")[1], pooled_dim=shape("y_embedder.mlp.0.weight")[1],
        pos_embed_max_size=math.isqrt(shape("pos_embed")[1]),
        qk_norm=f"{prefix}joint_blocks.0.x_block.attn.ln_q.weight" in shapes, dual_attention_layers=dual,
        mlp_ratio=shape("joint_blocks.0.x_block.mlp.fc1.weight")[0] / hidden)
