"""Flux: the rectified-flow transformer of Black Forest Labs (FLUX.1 dev / schnell), shaped like its checkpoint.

Reference: Black Forest Labs, FLUX.1 (2024; the public ``flux`` repository's ``model.py`` /
``modules/layers.py``); Esser et al. 2024, "Scaling Rectified Flow Transformers for
High-Resolution Image Synthesis" (SD3: joint text-image attention, §5.3.2 timestep shift);
Su et al. 2021, "RoFormer" (rotary position embedding, applied here over 3 axes of ids).

Map
- ``FluxConfig`` and the named configs ``FLUX_DEV`` (guidance-distilled: a ``guidance_in``
  embedder) and ``FLUX_SCHNELL`` (timestep-distilled: no ``guidance_in``).
- ``FluxModel(config)``: submodule names equal the original single-file keys (``img_in``,
  ``txt_in``, ``time_in``, ``vector_in``, ``guidance_in``, ``double_blocks.N.img_attn.qkv``,
  ``single_blocks.N.linear1``, ``final_layer.adaLN_modulation.1`` ...).
  ``forward(x, t, context, y, guidance=None)`` is the sampler-facing call on latents
  ``(B, 16, H, W)`` with ``t = sigma`` in [0, 1]; ``forward_packed(img, img_ids, txt, txt_ids,
  timesteps, y, guidance)`` is the original call on packed tokens.
- ``pack_latents`` / ``unpack_latents``: 2x2 patches of the 16-channel latent <-> 64-wide tokens;
  ``image_ids`` / ``text_ids``: the 3-axis position ids (axis 0 unused for images, 1 = row, 2 = column).
- ``resolution_mu(height, width)`` and ``shift_sigmas``: Flux's resolution-dependent timestep
  shift (mu grows linearly with the token count; sigma' = e^mu / (e^mu + 1/sigma - 1)); the
  sampler uses the same shift as ``FlowTimeMap(shift=e^mu)`` (sampling.denoisers.resolution_shift).
- ``flux_from_diffusers(keys)``: the key map from diffusers ``FluxTransformer2DModel``
  (split q / k / v and MLP projections are concatenated back; the final modulation's
  (scale, shift) halves are swapped to the original (shift, scale)).
- ``detect_flux_config(shapes, prefix)``: the config from original-layout key shapes; ``is_flux(keys)``.
- ``load_flux(path)`` / ``save_flux(path, model)``: original single files (bare or
  ``model.diffusion_model.`` keys), diffusers transformer files / folders / pipeline folders.
- ``FluxTextEncoder``: prompt -> ``{"context": T5-XXL states, "y": CLIP-L pooled (unprojected)}``;
  ``load_flux_text_encoder(clip_path, t5_path)``, ``load_clip_l_file(path)``. Nodes: flux_nodes.py.
- ``FLUX_VAE``: the 16-channel autoencoder's config (``load_vae(..., family="flux")``).
- ``is_flux_pipeline(folder)`` / ``load_flux_pipeline(folder)``: a diffusers FluxPipeline folder ->
  (transformer, VAE, FluxTextEncoder).

Block maths (one Modulation = Linear(SiLU(vec)) split into shift / scale / gate):
- double-stream block: image and text tokens each get their own modulation, LayerNorm, qkv
  with RMS-normed q / k, and MLP; attention runs once over [text; image] jointly.
- single-stream block: one stream over [text; image]; ``linear1`` gives q, k, v and the MLP
  input in one matmul, ``linear2`` maps [attention; GELU(mlp)] back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from .convert import ConversionError, KeyMap, KeySource
from .vae import SD3_VAE


@dataclass(frozen=True)
class FluxConfig:
    """Hyper-parameters of a Flux transformer; the defaults are FLUX.1 [dev]."""

    in_channels: int = 64  # 16 latent channels x a 2x2 patch
    out_channels: int = 64
    vec_in_dim: int = 768  # CLIP-L pooled output
    context_in_dim: int = 4096  # T5-XXL hidden width
    hidden_size: int = 3072
    mlp_ratio: float = 4.0
    num_heads: int = 24  # head width 128 = sum(axes_dim)
    depth: int = 19  # double-stream blocks
    depth_single_blocks: int = 38
    axes_dim: tuple[int, ...] = (16, 56, 56)  # rotary widths per id axis (sum = head width)
    theta: int = 10_000
    qkv_bias: bool = True
    guidance_embed: bool = True  # dev: distilled guidance scale is an input; schnell: absent

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        head = self.hidden_size // self.num_heads
        if sum(self.axes_dim) != head or any(d % 2 for d in self.axes_dim):
            raise ValueError(f"axes_dim {self.axes_dim} must be even widths summing to the head width {head}")

    @property
    def mlp_hidden(self) -> int:
        return int(self.hidden_size * self.mlp_ratio)

    @property
    def latent_channels(self) -> int:
        return self.in_channels // 4


FLUX_DEV = FluxConfig()
FLUX_SCHNELL = replace(FLUX_DEV, guidance_embed=False)


# --- embeddings ---------------------------------------------------------------------------------


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0, time_factor: float = 1000.0):
    """Sinusoidal embedding of ``t * time_factor`` as [cos, sin] (``t`` in [0, 1]; Flux's layout)."""
    t = time_factor * t.float()
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None] * freqs[None]  # (B, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, dim)


def rope(positions: torch.Tensor, dim: int, theta: int) -> torch.Tensor:
    """Rotation matrices for one id axis: ``(B, L) -> (B, L, dim/2, 2, 2)`` (RoFormer eq. 13)."""
    scale = torch.arange(0, dim, 2, dtype=torch.float64, device=positions.device) / dim
    omega = 1.0 / theta**scale  # (dim/2,)
    angles = positions.double()[..., None] * omega  # (B, L, dim/2)
    cos, sin = torch.cos(angles), torch.sin(angles)
    return torch.stack([cos, -sin, sin, cos], dim=-1).unflatten(-1, (2, 2)).float()


def apply_rope(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive pairs of ``x (B, H, L, D)`` by ``freqs (B, 1, L, D/2, 2, 2)``."""
    pairs = x.float().unflatten(-1, (-1, 1, 2))  # (B, H, L, D/2, 1, 2)
    rotated = freqs[..., 0] * pairs[..., 0] + freqs[..., 1] * pairs[..., 1]  # (B, H, L, D/2, 2)
    return rotated.flatten(-2).type_as(x)


def position_embedding(ids: torch.Tensor, axes_dim: Sequence[int], theta: int) -> torch.Tensor:
    """RoPE over 3-axis ids ``(B, L, 3) -> (B, 1, L, head/2, 2, 2)``: each axis rotates its own slice."""
    parts = [rope(ids[..., i], dim, theta) for i, dim in enumerate(axes_dim)]
    return torch.cat(parts, dim=-3)[:, None]


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pe: torch.Tensor) -> torch.Tensor:
    """Rotary scaled-dot-product attention: ``(B, H, L, D) -> (B, L, H*D)``."""
    q, k = apply_rope(q, pe), apply_rope(k, pe)
    out = F.scaled_dot_product_attention(q, k, v)  # (B, H, L, D)
    return out.transpose(1, 2).flatten(2)


class MLPEmbedder(nn.Module):
    """in_layer -> SiLU -> out_layer (keys ``time_in.in_layer`` ...)."""

    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        self.in_layer = nn.Linear(in_dim, hidden)
        self.out_layer = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_layer(F.silu(self.in_layer(x)))


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned ``scale`` (computed in float32)."""

    def __init__(self, dim: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-6)
        return (normed * self.scale.float()).to(x.dtype)


class QKNorm(nn.Module):
    """RMS norms on queries and keys (keys ``norm.query_norm.scale`` / ``norm.key_norm.scale``)."""

    def __init__(self, head_dim: int):
        super().__init__()
        self.query_norm = RMSNorm(head_dim)
        self.key_norm = RMSNorm(head_dim)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.query_norm(q).to(v.dtype), self.key_norm(k).to(v.dtype)


class SelfAttention(nn.Module):
    """qkv projection + q/k RMS norm + output projection (the attention itself is joint, in the block)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.norm = QKNorm(dim // num_heads)
        self.proj = nn.Linear(dim, dim)

    def split_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, L, dim) -> q, k, v (B, H, L, D)`` with q / k RMS-normed."""
        q, k, v = self.qkv(x).unflatten(-1, (3, self.num_heads, -1)).permute(2, 0, 3, 1, 4)
        q, k = self.norm(q, k, v)
        return q, k, v


class Modulation(nn.Module):
    """``Linear(SiLU(vec))`` split into (shift, scale, gate) once (single) or twice (double)."""

    def __init__(self, dim: int, double: bool):
        super().__init__()
        self.multiplier = 6 if double else 3
        self.lin = nn.Linear(dim, self.multiplier * dim)

    def forward(self, vec: torch.Tensor) -> list[torch.Tensor]:
        return list(self.lin(F.silu(vec))[:, None, :].chunk(self.multiplier, dim=-1))  # each (B, 1, dim)


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return (1 + scale) * x + shift


class DoubleStreamBlock(nn.Module):
    """Separate weights for image and text tokens, one joint attention over both (MMDiT block)."""

    def __init__(self, config: FluxConfig):
        super().__init__()
        hidden, heads = config.hidden_size, config.num_heads
        for stream in ("img", "txt"):
            setattr(self, f"{stream}_mod", Modulation(hidden, double=True))
            setattr(self, f"{stream}_norm1", nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6))
            setattr(self, f"{stream}_attn", SelfAttention(hidden, heads, config.qkv_bias))
            setattr(self, f"{stream}_norm2", nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6))
            setattr(self, f"{stream}_mlp", nn.Sequential(
                nn.Linear(hidden, config.mlp_hidden), nn.GELU(approximate="tanh"), nn.Linear(config.mlp_hidden, hidden)
            ))

    def forward(self, img: torch.Tensor, txt: torch.Tensor, vec: torch.Tensor, pe: torch.Tensor):
        img_shift1, img_scale1, img_gate1, img_shift2, img_scale2, img_gate2 = self.img_mod(vec)
        txt_shift1, txt_scale1, txt_gate1, txt_shift2, txt_scale2, txt_gate2 = self.txt_mod(vec)
        img_q, img_k, img_v = self.img_attn.split_heads(_modulate(self.img_norm1(img), img_shift1, img_scale1))
        txt_q, txt_k, txt_v = self.txt_attn.split_heads(_modulate(self.txt_norm1(txt), txt_shift1, txt_scale1))
        joint = attention(torch.cat((txt_q, img_q), 2), torch.cat((txt_k, img_k), 2), torch.cat((txt_v, img_v), 2),
                          pe)  # (B, T + N, hidden)
        txt_out, img_out = joint[:, : txt.shape[1]], joint[:, txt.shape[1] :]
        img = img + img_gate1 * self.img_attn.proj(img_out)
        img = img + img_gate2 * self.img_mlp(_modulate(self.img_norm2(img), img_shift2, img_scale2))
        txt = txt + txt_gate1 * self.txt_attn.proj(txt_out)
        txt = txt + txt_gate2 * self.txt_mlp(_modulate(self.txt_norm2(txt), txt_shift2, txt_scale2))
        return img, txt


class SingleStreamBlock(nn.Module):
    """One stream over [text; image]: parallel attention and MLP from one fused ``linear1``."""

    def __init__(self, config: FluxConfig):
        super().__init__()
        hidden = config.hidden_size
        self.num_heads = config.num_heads
        self.hidden_size = hidden
        self.linear1 = nn.Linear(hidden, hidden * 3 + config.mlp_hidden)
        self.linear2 = nn.Linear(hidden + config.mlp_hidden, hidden)
        self.norm = QKNorm(hidden // config.num_heads)
        self.pre_norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.mlp_act = nn.GELU(approximate="tanh")
        self.modulation = Modulation(hidden, double=False)

    def forward(self, x: torch.Tensor, vec: torch.Tensor, pe: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.modulation(vec)
        qkv, mlp = self.linear1(_modulate(self.pre_norm(x), shift, scale)).split(
            [3 * self.hidden_size, self.linear1.out_features - 3 * self.hidden_size], dim=-1)
        q, k, v = qkv.unflatten(-1, (3, self.num_heads, -1)).permute(2, 0, 3, 1, 4)  # each (B, H, L, D)
        q, k = self.norm(q, k, v)
        out = self.linear2(torch.cat((attention(q, k, v, pe), self.mlp_act(mlp)), dim=2))
        return x + gate * out


class LastLayer(nn.Module):
    """Adaptive LayerNorm (shift, scale from vec) and the projection back to patch channels."""

    def __init__(self, hidden: int, out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden, out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))

    def forward(self, x: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(vec).chunk(2, dim=1)  # each (B, hidden)
        return self.linear(_modulate(self.norm_final(x), shift[:, None], scale[:, None]))


# --- packing ------------------------------------------------------------------------------------


def pack_latents(latents: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W) -> (B, H/2 * W/2, C*4)``: 2x2 patches as tokens, channel-major (c, ph, pw)."""
    b, c, h, w = latents.shape
    x = latents.reshape(b, c, h // 2, 2, w // 2, 2)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def unpack_latents(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Inverse of ``pack_latents`` for a latent of ``height x width`` (both even)."""
    b, _, d = tokens.shape
    x = tokens.reshape(b, height // 2, width // 2, d // 4, 2, 2)
    return x.permute(0, 3, 1, 4, 2, 5).reshape(b, d // 4, height, width)


def image_ids(batch: int, height: int, width: int, device=None) -> torch.Tensor:
    """Position ids of the packed tokens of a ``height x width`` latent: ``(B, h*w/4, 3)`` = (0, row, col)."""
    ids = torch.zeros(height // 2, width // 2, 3, device=device)
    ids[..., 1] = torch.arange(height // 2, device=device)[:, None]
    ids[..., 2] = torch.arange(width // 2, device=device)[None, :]
    return ids.reshape(1, -1, 3).expand(batch, -1, -1)


def text_ids(batch: int, length: int, device=None) -> torch.Tensor:
    """Text tokens all sit at position (0, 0, 0): ``(B, T, 3)`` zeros."""
    return torch.zeros(batch, length, 3, device=device)


def resolution_mu(height: int, width: int, *, base_shift: float = 0.5, max_shift: float = 1.15,
                     base_tokens: int = 256, max_tokens: int = 4096) -> float:
    """mu for a latent of ``height x width``: linear in the packed token count (Flux, 256 -> 0.5, 4096 -> 1.15)."""
    tokens = (height // 2) * (width // 2)
    slope = (max_shift - base_shift) / (max_tokens - base_tokens)
    return base_shift + slope * (tokens - base_tokens)


def shift_sigmas(sigmas: torch.Tensor, mu: float) -> torch.Tensor:
    """SD3 / Flux time shift ``e^mu / (e^mu + (1/sigma - 1))`` (SD3 §5.3.2 with shift = e^mu); 0 stays 0."""
    shifted = math.exp(mu) / (math.exp(mu) + (1 / sigmas.clamp_min(1e-12) - 1))
    return torch.where(sigmas > 0, shifted, torch.zeros_like(sigmas))


# --- the model ----------------------------------------------------------------------------------


class FluxModel(nn.Module):
    """The Flux transformer; predicts the flow velocity (noise - data) for latents at sigma = t."""

    def __init__(self, config: FluxConfig = FLUX_DEV):
        super().__init__()
        self.config = config
        hidden = config.hidden_size
        self.img_in = nn.Linear(config.in_channels, hidden)
        self.time_in = MLPEmbedder(256, hidden)
        self.vector_in = MLPEmbedder(config.vec_in_dim, hidden)
        if config.guidance_embed:
            self.guidance_in = MLPEmbedder(256, hidden)
        self.txt_in = nn.Linear(config.context_in_dim, hidden)
        self.double_blocks = nn.ModuleList(DoubleStreamBlock(config) for _ in range(config.depth))
        self.single_blocks = nn.ModuleList(SingleStreamBlock(config) for _ in range(config.depth_single_blocks))
        self.final_layer = LastLayer(hidden, config.out_channels)

    @property
    def dtype(self) -> torch.dtype:
        return self.img_in.weight.dtype

    def forward_packed(
        self,
        img: torch.Tensor,
        img_ids: torch.Tensor,
        txt: torch.Tensor,
        txt_ids: torch.Tensor,
        timesteps: torch.Tensor,
        y: torch.Tensor,
        guidance: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The original call: tokens ``img (B, N, in)``, ``txt (B, T, context)``, ids ``(B, N|T, 3)``,
        ``timesteps (B,)`` in [0, 1], pooled ``y (B, vec_in_dim)``, ``guidance (B,)`` -> ``(B, N, out)``."""
        dtype = self.dtype
        img = self.img_in(img.to(dtype))  # (B, N, hidden)
        vec = self.time_in(timestep_embedding(timesteps, 256).to(dtype))  # (B, hidden)
        if self.config.guidance_embed:
            if guidance is None:
                raise ValueError("this Flux model is guidance-distilled (dev): pass guidance= (e.g. 3.5) "
                                 "through a FluxGuidance node")
            vec = vec + self.guidance_in(timestep_embedding(guidance, 256).to(dtype))
        vec = vec + self.vector_in(y.to(dtype))
        txt = self.txt_in(txt.to(dtype))  # (B, T, hidden)
        pe = position_embedding(torch.cat((txt_ids, img_ids), dim=1), self.config.axes_dim, self.config.theta)
        for block in self.double_blocks:
            img, txt = block(img, txt, vec, pe)
        x = torch.cat((txt, img), dim=1)  # (B, T + N, hidden)
        for block in self.single_blocks:
            x = block(x, vec, pe)
        return self.final_layer(x[:, txt.shape[1] :], vec)  # (B, N, out)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        context: torch.Tensor,
        y: torch.Tensor | None = None,
        guidance: torch.Tensor | float | None = None,
        **unused,
    ) -> torch.Tensor:
        """Velocity for latents ``x (B, C, H, W)`` at ``t`` (= sigma, in [0, 1]).

        Args:
            context: T5 hidden states ``(B, T, context_in_dim)``.
            y: CLIP-L pooled output ``(B, vec_in_dim)`` (zeros when None).
            guidance: the distilled guidance scale (dev; a float or ``(B,)``); ignored by schnell.
        Odd sizes are padded to even (reflect) and cropped back. Returned in x's dtype.
        """
        batch, _, height, width = x.shape
        if x.shape[1] * 4 != self.config.in_channels:
            raise ValueError(f"this Flux model takes {self.config.in_channels // 4}-channel latents, got {x.shape[1]}")
        if context.shape[-1] != self.config.context_in_dim:
            raise ValueError(f"context: the text context is {context.shape[-1]} wide, this Flux model reads "
                             f"{self.config.context_in_dim}-wide T5 states; encode with the T5 that belongs to it "
                             f"(EncodeTextFlux)")
        if y is not None and y.shape[-1] != self.config.vec_in_dim:
            raise ValueError(f"y: the pooled text vector is {y.shape[-1]} wide, this Flux model reads "
                             f"{self.config.vec_in_dim} (CLIP-L's pooled output); encode with EncodeTextFlux")
        pad_h, pad_w = height % 2, width % 2
        xp = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x
        h2, w2 = xp.shape[-2:]
        t = torch.as_tensor(t, device=x.device, dtype=torch.float32).reshape(-1).expand(batch)
        if context.shape[0] != batch:
            context = context.expand(batch, -1, -1)
        y = torch.zeros(batch, self.config.vec_in_dim, device=x.device) if y is None else y.expand(batch, -1)
        if guidance is not None:
            guidance = torch.as_tensor(guidance, device=x.device, dtype=torch.float32).reshape(-1).expand(batch)
        out = self.forward_packed(pack_latents(xp), image_ids(batch, h2, w2, x.device), context,
                                  text_ids(batch, context.shape[1], x.device), t, y, guidance)
        return unpack_latents(out, h2, w2)[..., :height, :width].to(x.dtype)


# --- detection and key maps ---------------------------------------------------------------------


FLUX_PREFIXES = ("", "model.diffusion_model.")  # BFL's transformer files; ComfyUI-style all-in-one files


def is_flux(keys: Iterable[str]) -> str | None:
    """The prefix under which a file holds an original-layout Flux transformer, or None."""
    keys = set(keys)
    for prefix in FLUX_PREFIXES:
        if f"{prefix}double_blocks.0.img_attn.qkv.weight" in keys and f"{prefix}img_in.weight" in keys:
            return prefix
    return None


def _count(keys: Iterable[str], pattern: str) -> int:
    compiled = re.compile(pattern)
    return len({m[1] for k in keys if (m := compiled.match(k))})


def detect_flux_config(shapes: Mapping[str, Sequence[int]], prefix: str = "", head_dim: int = 128,
                       axes_dim: Sequence[int] | None = None) -> FluxConfig:
    """Flux sizes from original-layout keys under `prefix`.

    Head width is not visible in the weights: FLUX.1 uses 128 (``head_dim``), with RoPE axes
    (16, 56, 56); other sizes need ``head_dim`` / ``axes_dim`` (e.g. from the metadata).
    """
    s = {k[len(prefix):]: tuple(v) for k, v in shapes.items() if k.startswith(prefix)}
    if "img_in.weight" not in s or "double_blocks.0.img_attn.qkv.weight" not in s:
        raise ValueError(f"no Flux keys under {prefix!r} (expected {prefix}img_in.weight, "
                         f"{prefix}double_blocks.0.img_attn.qkv.weight)")
    hidden, in_channels = s["img_in.weight"]
    if hidden % head_dim:
        raise ValueError(f"hidden width {hidden} is not a multiple of the head width {head_dim}")
    if axes_dim is None:
        axes_dim = FLUX_DEV.axes_dim if head_dim == 128 else _default_axes(head_dim)
    mlp_hidden = s["double_blocks.0.img_mlp.0.weight"][0]
    return FluxConfig(
        in_channels=in_channels,
        out_channels=s["final_layer.linear.weight"][0],
        vec_in_dim=s["vector_in.in_layer.weight"][1],
        context_in_dim=s["txt_in.weight"][1],
        hidden_size=hidden,
        mlp_ratio=mlp_hidden / hidden,
        num_heads=hidden // head_dim,
        depth=_count(s, r"double_blocks\.(\d+)\."),
        depth_single_blocks=_count(s, r"single_blocks\.(\d+)\."),
        axes_dim=tuple(axes_dim),
        qkv_bias="double_blocks.0.img_attn.qkv.bias" in s,
        guidance_embed="guidance_in.in_layer.weight" in s,
    )


def _default_axes(head_dim: int) -> tuple[int, int, int]:
    """Flux's split for another head width: 1/8 to axis 0, the rest evenly to rows and columns (even widths)."""
    first = max(2, head_dim // 8 // 2 * 2)
    rest = (head_dim - first) // 4 * 2
    return first, rest, head_dim - first - rest


class _ConcatSource(KeySource):
    """Several file tensors concatenated on dim 0 (diffusers' split q / k / v back into a fused qkv).

    ``key`` is the first part (its dtype stands for all); ``transform`` only serves shape checks on
    meta tensors (``detect.converted_shape``): it gives the fused shape. ``read`` does the real work.
    """

    def __init__(self, keys: Sequence[str], rows: int | None):
        object.__setattr__(self, "parts", tuple(keys))
        object.__setattr__(self, "key", keys[0])
        object.__setattr__(self, "transform", None if rows is None else _FusedShape(rows))

    def read(self, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([tensors[k] for k in self.parts], dim=0)


@dataclass(frozen=True)
class _FusedShape:
    rows: int

    def __call__(self, part: torch.Tensor) -> torch.Tensor:
        return torch.empty((self.rows, *part.shape[1:]), dtype=part.dtype, device=part.device)


def _swap_halves(tensor: torch.Tensor) -> torch.Tensor:
    """diffusers' AdaLayerNormContinuous is (scale, shift); the original final layer is (shift, scale)."""
    first, second = tensor.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def flux_from_diffusers(keys: Mapping[str, Sequence[int]] | Iterable[str], prefix: str = "") -> KeyMap:
    """Map diffusers ``FluxTransformer2DModel`` keys to the original single-file keys (our module's).

    Given shapes (a mapping), fused sources also report their fused shape to ``converted_shape``.
    """
    shapes = keys if isinstance(keys, Mapping) else None
    names = {k[len(prefix):] for k in keys if k.startswith(prefix)}
    key_map: KeyMap = {}
    used: set[str] = set()

    def one(ours: str, theirs: str, transform=None) -> None:
        for suffix in ("weight", "bias"):
            if f"{theirs}.{suffix}" in names:
                key_map[f"{ours}.{suffix}"] = KeySource(prefix + f"{theirs}.{suffix}", transform)
                used.add(f"{theirs}.{suffix}")

    def fused(ours: str, parts: Sequence[str]) -> None:
        for suffix in ("weight", "bias"):
            if all(f"{p}.{suffix}" in names for p in parts):
                files = [prefix + f"{p}.{suffix}" for p in parts]
                rows = sum(shapes[f][0] for f in files) if shapes is not None else None
                key_map[f"{ours}.{suffix}"] = _ConcatSource(files, rows)
                used.update(f"{p}.{suffix}" for p in parts)

    def scale(ours: str, theirs: str) -> None:
        if f"{theirs}.weight" in names:
            key_map[f"{ours}.scale"] = KeySource(prefix + f"{theirs}.weight")
            used.add(f"{theirs}.weight")

    one("img_in", "x_embedder")
    one("txt_in", "context_embedder")
    for ours, theirs in (("time_in", "timestep_embedder"), ("vector_in", "text_embedder"),
                         ("guidance_in", "guidance_embedder")):
        one(f"{ours}.in_layer", f"time_text_embed.{theirs}.linear_1")
        one(f"{ours}.out_layer", f"time_text_embed.{theirs}.linear_2")
    double = {int(m[1]) for n in names if (m := re.match(r"transformer_blocks\.(\d+)\.", n))}
    for i in sorted(double):
        d, b = f"double_blocks.{i}", f"transformer_blocks.{i}"
        one(f"{d}.img_mod.lin", f"{b}.norm1.linear")
        one(f"{d}.txt_mod.lin", f"{b}.norm1_context.linear")
        fused(f"{d}.img_attn.qkv", [f"{b}.attn.to_q", f"{b}.attn.to_k", f"{b}.attn.to_v"])
        fused(f"{d}.txt_attn.qkv", [f"{b}.attn.add_q_proj", f"{b}.attn.add_k_proj", f"{b}.attn.add_v_proj"])
        scale(f"{d}.img_attn.norm.query_norm", f"{b}.attn.norm_q")
        scale(f"{d}.img_attn.norm.key_norm", f"{b}.attn.norm_k")
        scale(f"{d}.txt_attn.norm.query_norm", f"{b}.attn.norm_added_q")
        scale(f"{d}.txt_attn.norm.key_norm", f"{b}.attn.norm_added_k")
        one(f"{d}.img_attn.proj", f"{b}.attn.to_out.0")
        one(f"{d}.txt_attn.proj", f"{b}.attn.to_add_out")
        one(f"{d}.img_mlp.0", f"{b}.ff.net.0.proj")
        one(f"{d}.img_mlp.2", f"{b}.ff.net.2")
        one(f"{d}.txt_mlp.0", f"{b}.ff_context.net.0.proj")
        one(f"{d}.txt_mlp.2", f"{b}.ff_context.net.2")
    single = {int(m[1]) for n in names if (m := re.match(r"single_transformer_blocks\.(\d+)\.", n))}
    for i in sorted(single):
        s, b = f"single_blocks.{i}", f"single_transformer_blocks.{i}"
        one(f"{s}.modulation.lin", f"{b}.norm.linear")
        fused(f"{s}.linear1", [f"{b}.attn.to_q", f"{b}.attn.to_k", f"{b}.attn.to_v", f"{b}.proj_mlp"])
        scale(f"{s}.norm.query_norm", f"{b}.attn.norm_q")
        scale(f"{s}.norm.key_norm", f"{b}.attn.norm_k")
        one(f"{s}.linear2", f"{b}.proj_out")
    one("final_layer.adaLN_modulation.1", "norm_out.linear", _swap_halves)
    one("final_layer.linear", "proj_out")
    unknown = sorted(names - used)
    if unknown:
        raise ConversionError("diffusers Flux transformer", unknown)
    if not double:
        raise ConversionError("diffusers Flux transformer", ["(no transformer_blocks.* keys)"])
    return key_map


# --- loading ------------------------------------------------------------------------------------


def load_flux(path, *, dtype: torch.dtype | None = None, device: torch.device | str = "cpu",
              allow_pickle: bool = False) -> FluxModel:
    """A Flux transformer from an original-layout file (bare or ``model.diffusion_model.`` keys), a
    diffusers ``FluxTransformer2DModel`` file or folder, or a diffusers pipeline folder (``transformer/``).

    Sizes come from the shapes; the head width from a diffusers ``config.json``, else the
    ``nodegraph.config`` metadata (``{"flux": {FluxConfig fields}}``, which ``save_flux`` writes),
    else FLUX.1's 128. ``dtype`` may be a float8 dtype (weights stored in FP8, see precision.py).
    """
    from pathlib import Path

    from .detect import ModelLoadError, apply_fields, converted_shape, describe_file_kind, parse_config_override
    from .loading import _read_json, _weights_in, build_module, open_state_dict

    path = Path(path)
    config_json: dict = {}
    if path.is_dir():
        folder = path / "transformer" if (path / "transformer").is_dir() else path
        tensors = _weights_in(folder)
        if (folder / "config.json").is_file():
            config_json = _read_json(folder / "config.json")
    else:
        tensors = open_state_dict(path, allow_pickle=allow_pickle)
        if (path.parent / "config.json").is_file():
            candidate = _read_json(path.parent / "config.json")
            if candidate.get("_class_name") == "FluxTransformer2DModel":
                config_json = candidate
    shapes = tensors.shapes
    prefix = is_flux(shapes)
    if prefix is not None:
        key_map = {k[len(prefix):]: KeySource(k) for k in shapes if k.startswith(prefix)}
    elif "x_embedder.weight" in shapes and "transformer_blocks.0.attn.to_q.weight" in shapes:
        try:
            key_map = flux_from_diffusers(shapes)
        except ConversionError as error:
            raise ModelLoadError(f"{error}; is this file of another architecture?", tensors.path) from None
    else:
        raise ModelLoadError(f"expected a Flux transformer (keys double_blocks.*, img_in.* or diffusers "
                             f"transformer_blocks.*, x_embedder.*), found {describe_file_kind(shapes)}", tensors.path)
    ours = {name: converted_shape(source, shapes[source.key]) for name, source in key_map.items()}
    override = parse_config_override(tensors.metadata, tensors.path).get("flux") or {}
    head_dim = config_json.get("attention_head_dim") or 128
    axes = config_json.get("axes_dims_rope")
    if "hidden_size" in override and "num_heads" in override:
        head_dim = override["hidden_size"] // override["num_heads"]
    try:
        config = detect_flux_config(ours, head_dim=head_dim, axes_dim=override.get("axes_dim") or axes)
    except (ValueError, KeyError) as error:
        raise ModelLoadError(f"Flux transformer not recognised ({error}); give its sizes in the "
                             f'"nodegraph.config" metadata as {{"flux": {{...}}}}', tensors.path) from None
    config = apply_fields(config, override, "Flux", tensors.path)
    return build_module(FluxModel, config, key_map, tensors, what="Flux transformer", dtype=dtype, device=device)


def save_flux(path, model: FluxModel, *, dtype: torch.dtype | None = None, prefix: str = "") -> None:
    """Write a Flux transformer in the original key layout with its exact config in the metadata."""
    import json
    import os
    from dataclasses import asdict

    from safetensors.torch import save_file

    from .detect import METADATA_KEY

    tensors = {prefix + k: (v.detach().cpu().to(dtype) if dtype is not None and v.is_floating_point()
                            else v.detach().cpu()).contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, os.fspath(path), metadata={METADATA_KEY: json.dumps({"flux": asdict(model.config)})})


# --- text conditioning (T5-XXL + CLIP-L) ----------------------------------------------------------


# The Flux autoencoder: SD3's 16-channel architecture (no quant convs) with its own latent statistics
# (diffusers' FLUX.1 vae/config.json: scaling_factor 0.3611, shift_factor 0.1159); preview factors: SD3's.
FLUX_VAE = replace(SD3_VAE, scale_factor=0.3611, shift_factor=0.1159)
T5_TOKENS = {True: 512, False: 256}  # T5 sequence length: dev (guidance-distilled) 512, schnell 256
FLUX_GUIDANCE = 3.5  # the distilled guidance scale FLUX.1 [dev] is usually run at


class FluxTextEncoder(nn.Module):
    """Flux's conditioning: T5-XXL hidden states are the context, CLIP-L's pooled output the vector ``y``.

    As the reference pipeline: CLIP-L's pooled output is the final-normed last hidden state at the
    end-of-text token *without* ``text_projection`` (77 tokens, prompt truncated); T5 runs
    unmasked over the prompt padded to ``max_length``. Either encoder may be absent (zeros of its
    shape: ``(B, 256, context_width)`` / ``(B, 768)``), which degrades images but lets a graph run.
    """

    def __init__(self, clip_l=None, t5=None, t5_tokenizer=None, *, context_width: int = 4096, pooled_width: int = 768):
        super().__init__()
        if t5 is not None and t5_tokenizer is None:
            raise ValueError("t5_tokenizer: a T5 encoder needs its SentencePiece tokenizer (spiece.model)")
        self.clip_l = clip_l
        self.t5 = t5
        self.t5_tokenizer = t5_tokenizer
        self.context_width = t5.config.d_model if t5 is not None else context_width
        self.pooled_width = clip_l.config.width if clip_l is not None else pooled_width

    @property
    def encoders(self) -> list[str]:
        return [n for n, m in (("clip_l", self.clip_l), ("t5xxl", self.t5)) if m is not None]

    @torch.no_grad()
    def encode(self, prompts: str | Sequence[str], t5_prompts: str | Sequence[str] | None = None
               ) -> dict[str, torch.Tensor]:
        """``{"context": (B, T5 tokens, width), "y": (B, 768)}`` in float32 on the CPU; ``t5_prompts``
        (default: the same prompts) go to T5, ``prompts`` to CLIP-L."""
        from .tokenizer import EOS, default_tokenizer, tokenize_prompt

        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        t5_prompts = prompts if t5_prompts is None else ([t5_prompts] if isinstance(t5_prompts, str)
                                                         else list(t5_prompts))
        if len(t5_prompts) != len(prompts):
            raise ValueError(f"t5_prompts: {len(t5_prompts)} prompts for {len(prompts)} CLIP prompts")
        batch = len(prompts)
        if self.clip_l is not None:
            device = self.clip_l.text_model.final_layer_norm.weight.device
            tokenizer = default_tokenizer()
            ids = torch.stack([tokenize_prompt(tokenizer, p).ids(EOS)[0] for p in prompts]).to(device)  # (B, 77)
            hidden, _ = self.clip_l(ids, layer=-1, final_norm=True, pooled=False)  # (B, 77, width)
            eos = (ids == EOS).int().argmax(dim=-1)  # (B,) first end-of-text
            y = hidden[torch.arange(batch, device=device), eos].float().cpu()  # (B, width): no projection
        else:
            y = torch.zeros(batch, self.pooled_width)
        if self.t5 is not None:
            device = next(self.t5.parameters()).device
            ids, _ = self.t5_tokenizer(t5_prompts)
            context = self.t5(ids.to(device)).float().cpu()  # (B, max_length, width)
        else:
            context = torch.zeros(batch, T5_TOKENS[False], self.context_width)
        return {"context": context, "y": y}


def load_clip_l_file(path, *, dtype=None, device="cpu", allow_pickle: bool = False):
    """A CLIP-L text encoder saved on its own (Hugging Face keys, with or without ``text_model.``)."""
    from .clip import CLIP_L, CLIPTextModel
    from .convert import clip_from_hf
    from .detect import ModelLoadError, describe_file_kind, detect_text_encoder_config
    from .loading import build_module, open_state_dict

    tensors = open_state_dict(path, allow_pickle=allow_pickle)
    key_map = clip_from_hf(tensors.shapes)
    if "text_model.embeddings.token_embedding.weight" not in key_map:
        raise ModelLoadError(f"expected a CLIP-L text encoder (text_model.* keys), found "
                             f"{describe_file_kind(tensors.shapes)}", tensors.path)
    shapes = {target: tuple(tensors.shapes[source.key]) for target, source in key_map.items()}
    try:
        config = detect_text_encoder_config(shapes, CLIP_L)
    except (KeyError, ValueError) as error:
        raise ModelLoadError(f"CLIP text encoder not recognised ({error})", tensors.path) from None
    return build_module(CLIPTextModel, config, key_map, tensors, what="CLIP-L text encoder", dtype=dtype,
                        device=device)


def load_flux_text_encoder(clip_path=None, t5_path=None, *, guidance_distilled: bool = True, dtype=None,
                           device="cpu", allow_pickle: bool = False) -> FluxTextEncoder:
    """Flux's text encoders from their usual separate files (``clip_l.safetensors``, ``t5xxl_*.safetensors``
    with its ``spiece.model`` beside it); T5 reads 512 tokens for dev-type models, 256 for schnell."""
    from .detect import ModelLoadError

    if clip_path is None and t5_path is None:
        raise ModelLoadError("Flux needs a CLIP-L and a T5-XXL text encoder; neither file was given")
    clip = load_clip_l_file(clip_path, dtype=dtype, device=device, allow_pickle=allow_pickle) if clip_path else None
    t5 = tokenizer = None
    if t5_path is not None:
        from .sd3 import load_t5_file

        t5, tokenizer = load_t5_file(t5_path, dtype=dtype, device=device, allow_pickle=allow_pickle,
                                     max_length=T5_TOKENS[guidance_distilled])
    return FluxTextEncoder(clip, t5, tokenizer)


# --- diffusers pipeline folders (FluxPipeline) --------------------------------------------------------


def is_flux_pipeline(folder) -> bool:
    """A diffusers FluxPipeline folder (``model_index.json`` naming it, or ``transformer/`` holding a Flux)."""
    import json
    from pathlib import Path

    folder = Path(folder)
    for config in (folder / "model_index.json", folder / "transformer" / "config.json"):
        try:
            if json.loads(config.read_text()).get("_class_name", "").startswith(("Flux", "FluxTransformer")):
                return True
        except (OSError, ValueError):
            continue
    return False


def load_flux_pipeline(folder, *, components: Sequence[str] = ("unet", "vae", "text_encoder"), dtype=None,
                       device="cpu") -> tuple[FluxModel | None, object | None, FluxTextEncoder | None]:
    """(transformer, VAE, FluxTextEncoder) of a diffusers FluxPipeline folder: ``transformer/``, ``vae/``
    (scale / shift from its config.json), ``text_encoder/`` (CLIP-L), ``text_encoder_2/`` (T5, sharded
    or not) with ``tokenizer_2/spiece.model``. The VAE is never stored in FP8 (computed dtype instead)."""
    from pathlib import Path

    from .convert import clip_from_hf, from_prefix
    from .detect import ModelLoadError, detect_text_encoder_config
    from .loading import _read_json, _weights_in, build_module, load_vae
    from .precision import split_precision
    from .t5 import T5EncoderModel, detect_t5_config
    from .t5_tokenizer import T5Tokenizer, TokenizerModelMissing

    folder = Path(folder)
    flux = load_flux(folder, dtype=dtype, device=device) if "unet" in components else None
    vae = text_encoder = None
    if "vae" in components and (folder / "vae").is_dir():
        storage, compute = split_precision(dtype, device)
        vae = load_vae(folder / "vae", family="flux", dtype=compute if storage is not None else dtype, device=device)
    if "text_encoder" in components:
        from .clip import CLIP_L, CLIPTextModel

        clip = t5 = tokenizer = None
        if (folder / "text_encoder").is_dir():
            tensors = _weights_in(folder / "text_encoder")
            key_map = clip_from_hf(tensors.shapes)
            shapes = {k: tuple(tensors.shapes[s.key]) for k, s in key_map.items()}
            config_json = folder / "text_encoder" / "config.json"
            settings = _read_json(config_json) if config_json.is_file() else {}
            config = detect_text_encoder_config(shapes, CLIP_L, heads=settings.get("num_attention_heads"))
            if settings.get("hidden_act") in ("gelu", "quick_gelu"):
                config = replace(config, activation=settings["hidden_act"])
            if settings.get("layer_norm_eps"):
                config = replace(config, layer_norm_eps=float(settings["layer_norm_eps"]))
            clip = build_module(CLIPTextModel, config, key_map, tensors, what="CLIP-L text encoder", dtype=dtype,
                                device=device)
        if (folder / "text_encoder_2").is_dir():
            tensors = _weights_in(folder / "text_encoder_2")
            prefix = next((p for p in ("", "encoder.") if f"{p}shared.weight" in tensors.shapes), "")
            config = detect_t5_config(tensors.shapes, prefix)
            key_map = {k: v for k, v in from_prefix(tensors.shapes, prefix).items()
                       if k != "encoder.embed_tokens.weight"}   # tied to shared.weight
            t5 = build_module(T5EncoderModel, config, key_map, tensors, what="T5 encoder", dtype=dtype, device=device)
            transformer_json = folder / "transformer" / "config.json"
            guidance = flux.config.guidance_embed if flux is not None else (
                _read_json(transformer_json).get("guidance_embeds", True) if transformer_json.is_file() else True)
            try:
                tokenizer = T5Tokenizer(folder / "tokenizer_2" / "spiece.model", max_length=T5_TOKENS[guidance])
            except TokenizerModelMissing as error:
                raise ModelLoadError(f"a Flux pipeline's T5 needs tokenizer_2/spiece.model ({error})", folder) from None
        if clip is None or t5 is None:
            missing = [n for n, m in (("text_encoder/ (CLIP-L)", clip), ("text_encoder_2/ (T5-XXL)", t5)) if m is None]
            raise ModelLoadError(f"this Flux pipeline folder has no {' and no '.join(missing)}; load the text "
                                 f"encoders as files with LoadFluxTextEncoders", folder)
        text_encoder = FluxTextEncoder(clip, t5, tokenizer)
    return flux, vae, text_encoder
