"""The Stable Diffusion UNet (LDM "openaimodel"), shaped like its single-file checkpoint.

Reference: Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion Models"
(LDM; §3.3 conditioning mechanisms: a UNet whose attention layers cross-attend to text
features); Podell et al. 2023, "SDXL: Improving Latent Diffusion Models for High-Resolution
Image Synthesis" (§2.1 heterogeneous transformer depth, §2.2 size / crop conditioning
added to the timestep embedding).

Map
- ``UNetConfig`` (dataclass) and the named configs ``SD1``, ``SD1_INPAINT``, ``SD2``, ``SD2_V``,
  ``SDXL_BASE``, ``SDXL_REFINER``, ``TINY``.
- ``UNetModel(config)``: ``forward(x, timesteps, context, y=None, control=None) -> eps or v``
  (which one is ``config.prediction``). Submodule names equal the LDM checkpoint keys after
  stripping ``model.diffusion_model.``: ``time_embed``, ``label_emb``, ``input_blocks``,
  ``middle_block``, ``output_blocks``, ``out`` ...
- ``timestep_embedding``: sinusoidal features of the timestep (Vaswani et al. 2017 §3.5,
  cos half first, as LDM does).
- ``sdxl_vector``: builds SDXL's ``y`` = pooled text embedding + embedded size / crop
  (base) or size / crop / aesthetic score (refiner).
- Blocks, named as in LDM's ``openaimodel.py`` / ``attention.py``: ``ResBlock``,
  ``SpatialTransformer`` -> ``BasicTransformerBlock`` -> ``CrossAttention`` and ``FeedForward``
  (GEGLU), ``Downsample``, ``Upsample``, and ``TimestepEmbedSequential``, the container that
  hands each child the inputs it needs.

Block layout (SD 1.x; SDXL drops the last level and has no attention at level 0)::

    input_blocks.0          conv_in                          -> skip 0
    input_blocks.1..2       ResBlock (+ SpatialTransformer)   -> skips 1, 2     level 0
    input_blocks.3          Downsample (".0.op")             -> skip 3
    ...                                                                          level 1..3
    middle_block            ResBlock, SpatialTransformer, ResBlock
    output_blocks.0..2      ResBlock(cat(h, skip)) (+ SpatialTransformer) (+ Upsample on the 3rd)
    ...
    out                     GroupNorm, SiLU, conv_out

Attention goes through ``torch.nn.functional.scaled_dot_product_attention`` (flash /
memory-efficient kernels where the device has them), in slices of the queries with an interrupt
point between them at large sizes (``patches.default_attention``).

Model patches (``patches.py``): ``UNetModel.model_patches`` (set by the MODEL value's patcher)
and the ``patches`` argument of ``forward`` (per call, e.g. from a guidance term) wrap or
replace blocks and layers by key path, replace attention processors and insert modules.
Without any, ``forward`` takes the plain path (each module checks one ``None``); with some,
it threads an ``ActivePatches`` and each module's key path through the same modules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import partial
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn

from nodegraph.interrupts import interrupt_point

from .patches import ActivePatches, ModelPatch, default_attention

Prediction = Literal["eps", "v"]


class UNetInputError(ValueError):
    """What the UNet was called with does not fit it (conditioning from another model's text encoder, an inpainting
    model without its concat); `argument` names the forward argument ("context", "y", "concat")."""

    def __init__(self, argument: str, message: str):
        self.argument = argument
        super().__init__(message)

@dataclass(frozen=True)
class UNetConfig:
    """Hyper-parameters of the LDM UNet; the defaults are Stable Diffusion 1.x."""

    in_channels: int = 4  # VAE latent channels; 9 for inpainting (latent + mask + masked-image latent)
    out_channels: int = 4  # one eps / v value per latent channel
    model_channels: int = 320  # width of level 0; every SD family uses 320 except the SDXL refiner (384)
    # width of each level = model_channels * mult, with a 2x downsample between levels
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    # ResBlocks per level going down; the up path has one more (it also eats the downsample's skip)
    num_res_blocks: int = 2
    # SpatialTransformer blocks per level going down; 0 = no attention (SD1: attention_resolutions 4, 2, 1)
    transformer_depth: tuple[int, ...] = (1, 1, 1, 0)
    transformer_depth_middle: int = 1  # in the middle block (SDXL base: 10); 0 = two ResBlocks only
    transformer_depth_output: tuple[int, ...] | None = None  # per level going up; None = as going down (SD1/2/XL)
    context_dim: int = 768  # text hidden-state width: CLIP-L 768, OpenCLIP-H 1024, CLIP-L + bigG 2048
    num_heads: int = 8  # SD1 fixes the head COUNT (8 at every level) ...
    num_head_channels: int = -1  # ... SD2/SDXL fix the head WIDTH (64) instead; exactly one of the two is > 0
    use_linear_in_transformer: bool = False  # SD2/SDXL project in/out of transformers with Linear, SD1 a 1x1 conv
    # width of `y` for label_emb (SDXL base 2816 = 1280 pooled + 6 x 256 sizes, refiner 2560); 0 = no label_emb
    adm_in_channels: int = 0
    size_embed_dim: int = 256  # sinusoidal width per SDXL size / crop / score scalar (used by sdxl_vector)
    prediction: Prediction = "eps"  # what the network predicts; not in the weights (see detect.py)

    def __post_init__(self) -> None:
        levels = len(self.channel_mult)
        if len(self.transformer_depth) != levels:
            raise ValueError(
                f"transformer_depth has {len(self.transformer_depth)} entries but channel_mult has {levels} levels; "
                "give one depth per level (0 = no attention at that level)"
            )
        if self.transformer_depth_output is not None and len(self.transformer_depth_output) != levels:
            raise ValueError(
                f"transformer_depth_output needs {levels} entries (one per level), got {self.transformer_depth_output}"
            )
        if (self.num_heads > 0) == (self.num_head_channels > 0):
            raise ValueError(
                f"set exactly one of num_heads ({self.num_heads}) and num_head_channels ({self.num_head_channels}); "
                "SD1 uses num_heads=8, SD2/SDXL num_head_channels=64 (the other one -1)"
            )
        if self.prediction not in ("eps", "v"):
            raise ValueError(f"prediction must be 'eps' or 'v', got {self.prediction!r}")

    @property
    def time_embed_dim(self) -> int:
        """Width of the timestep embedding: 4x model_channels, as in LDM."""
        return 4 * self.model_channels

    def heads_for(self, channels: int) -> tuple[int, int]:
        """(number of heads, head width) for a transformer of `channels` width."""
        if self.num_head_channels > 0:
            if channels % self.num_head_channels:
                raise ValueError(
                    f"transformer width {channels} is not a multiple of num_head_channels={self.num_head_channels}"
                )
            return channels // self.num_head_channels, self.num_head_channels
        if channels % self.num_heads:
            raise ValueError(f"transformer width {channels} is not a multiple of num_heads={self.num_heads}")
        return self.num_heads, channels // self.num_heads


SD1 = UNetConfig()
SD1_INPAINT = replace(SD1, in_channels=9)
SD2 = replace(SD1, num_heads=-1, num_head_channels=64, use_linear_in_transformer=True, context_dim=1024)
SD2_V = replace(SD2, prediction="v")  # SD 2.x 768-v: same weights layout, v-prediction
SDXL_BASE = UNetConfig(
    channel_mult=(1, 2, 4),
    transformer_depth=(0, 2, 10),
    transformer_depth_middle=10,
    context_dim=2048,
    num_heads=-1,
    num_head_channels=64,
    use_linear_in_transformer=True,
    adm_in_channels=2816,
)
SDXL_REFINER = replace(
    SDXL_BASE,
    model_channels=384,
    channel_mult=(1, 2, 4, 4),
    transformer_depth=(0, 4, 4, 0),
    transformer_depth_middle=4,
    context_dim=1280,
    adm_in_channels=2560,
)
# A CPU-trainable toy with the SD1 block structure (two levels, one ResBlock each).
TINY = UNetConfig(
    model_channels=32,
    channel_mult=(1, 2),
    num_res_blocks=1,
    transformer_depth=(1, 1),
    context_dim=64,
    num_heads=4,
)


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal timestep features, [cos | sin] halves (LDM; Vaswani et al. 2017 §3.5)."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half
    )  # (half,)
    args = timesteps.float()[:, None] * freqs[None]  # (B, half)
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, 2*half)
    if dim % 2:
        embedding = F.pad(embedding, (0, 1))  # (B, dim)
    return embedding


def sdxl_vector(
    pooled: torch.Tensor,
    original_size: tuple[int, int] = (1024, 1024),
    crop_coords: tuple[int, int] = (0, 0),
    target_size: tuple[int, int] = (1024, 1024),
    aesthetic_score: float | None = None,
    embed_dim: int = 256,
) -> torch.Tensor:
    """SDXL's `y`: pooled text + sinusoidal (h, w) sizes and (top, left) crop (Podell et al. 2023 §2.2).

    Base: ``[pooled, emb(orig_h), emb(orig_w), emb(top), emb(left), emb(target_h), emb(target_w)]``;
    refiner (``aesthetic_score`` given): ``[pooled, orig_h, orig_w, top, left, score]`` embedded alike.
    Sizes are in pixels, height first. ``embed_dim`` is ``UNetConfig.size_embed_dim``.
    """
    values = [*original_size, *crop_coords]
    values += [aesthetic_score] if aesthetic_score is not None else [*target_size]
    scalars = torch.tensor(values, dtype=torch.float32, device=pooled.device)  # (n,)
    embedded = timestep_embedding(scalars, embed_dim).reshape(1, -1)  # (1, n*embed_dim)
    embedded = embedded.expand(pooled.shape[0], -1)  # (B, n*embed_dim)
    return torch.cat([pooled.float(), embedded], dim=-1).to(pooled.dtype)  # (B, pooled + n*embed_dim)


class GroupNorm32(nn.GroupNorm):
    """GroupNorm with 32 groups, computed in float32 (LDM's ``normalization``) so fp16 stays stable."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__(32, channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(), self.eps).to(x.dtype)


class ResBlock(nn.Module):
    """Two 3x3 convs with the timestep embedding added in between, plus a (1x1) skip."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int):
        super().__init__()
        self.in_layers = nn.Sequential(
            GroupNorm32(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(
            GroupNorm32(out_channels), nn.SiLU(), nn.Dropout(0.0), nn.Conv2d(out_channels, out_channels, 3, padding=1)
        )
        self.skip_connection = nn.Identity() if channels == out_channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x)  # (B, C_out, H, W)
        h = h + self.emb_layers(emb)[:, :, None, None]  # (B, C_out, 1, 1) broadcast over H, W
        h = self.out_layers(h)  # (B, C_out, H, W)
        return self.skip_connection(x) + h


class CrossAttention(nn.Module):
    """Multi-head attention of x over `context` (or over itself when context is None)."""

    def __init__(self, query_dim: int, context_dim: int, heads: int, head_dim: int):
        super().__init__()
        inner = heads * head_dim
        self.heads, self.head_dim = heads, head_dim
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, key: str = "",
                patches: ActivePatches | None = None, spatial: tuple[int, int] = (0, 0)) -> torch.Tensor:
        kind = "self" if context is None else "cross"
        context = x if context is None else context
        batch = x.shape[0]
        q = self.to_q(x).view(batch, -1, self.heads, self.head_dim).transpose(1, 2)  # (B, heads, T, head_dim)
        k = self.to_k(context).view(batch, -1, self.heads, self.head_dim).transpose(1, 2)  # (B, heads, S, head_dim)
        v = self.to_v(context).view(batch, -1, self.heads, self.head_dim).transpose(1, 2)  # (B, heads, S, head_dim)
        if patches is None:
            out = default_attention(q, k, v)  # (B, heads, T, head_dim); interruptible at large sizes
        else:
            out = patches.attend(key, kind, q, k, v, self.heads, spatial)  # (B, heads, T, head_dim)
        out = out.transpose(1, 2).reshape(batch, -1, self.heads * self.head_dim)  # (B, T, inner)
        return self.to_out(out)


class GEGLU(nn.Module):
    """Gated GELU: one Linear produces value and gate (Shazeer 2020)."""

    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)  # (B, T, inner) each
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU MLP with 4x expansion; keys ``ff.net.0.proj`` and ``ff.net.2``."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """Pre-norm self-attention, cross-attention to the text, GEGLU feed-forward; each residual."""

    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: int):
        super().__init__()
        self.attn1 = CrossAttention(dim, dim, heads, head_dim)
        self.ff = FeedForward(dim)
        self.attn2 = CrossAttention(dim, context_dim, heads, head_dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor, key: str = "",
                patches: ActivePatches | None = None, spatial: tuple[int, int] = (0, 0)) -> torch.Tensor:
        if patches is None:
            x = x + self.attn1(self.norm1(x))  # (B, T, dim)
            x = x + self.attn2(self.norm2(x), context)  # (B, T, dim)
        else:
            x = x + self.attn1(self.norm1(x), None, f"{key}.attn1", patches, spatial)  # (B, T, dim)
            x = x + self.attn2(self.norm2(x), context, f"{key}.attn2", patches, spatial)  # (B, T, dim)
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    """Runs transformer blocks over the H*W positions of a feature map, residually."""

    def __init__(self, channels: int, heads: int, head_dim: int, depth: int, context_dim: int, use_linear: bool):
        super().__init__()
        inner = heads * head_dim
        self.use_linear = use_linear
        self.norm = GroupNorm32(channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner) if use_linear else nn.Conv2d(channels, inner, 1)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(inner, heads, head_dim, context_dim) for _ in range(depth)
        )
        self.proj_out = nn.Linear(inner, channels) if use_linear else nn.Conv2d(inner, channels, 1)

    def forward(self, x: torch.Tensor, context: torch.Tensor, key: str = "",
                patches: ActivePatches | None = None) -> torch.Tensor:
        batch, _, height, width = x.shape
        h = self.norm(x)  # (B, C, H, W)
        if not self.use_linear:
            h = self.proj_in(h)  # (B, inner, H, W)
        h = h.flatten(2).transpose(1, 2)  # (B, H*W, C or inner)
        if self.use_linear:
            h = self.proj_in(h)  # (B, H*W, inner)
        if patches is None:
            for block in self.transformer_blocks:
                h = block(h, context)  # (B, H*W, inner)
        else:
            for index, block in enumerate(self.transformer_blocks):
                h = block(h, context, f"{key}.transformer_blocks.{index}", patches, (height, width))
        if self.use_linear:
            h = self.proj_out(h)  # (B, H*W, C)
        h = h.transpose(1, 2).reshape(batch, -1, height, width)  # (B, C or inner, H, W)
        if not self.use_linear:
            h = self.proj_out(h)  # (B, C, H, W)
        return h + x


class Downsample(nn.Module):
    """Strided 3x3 conv halving H and W (key ``op``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest-neighbour 2x (or to the skip's size, for odd latents) then a 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, output_size: torch.Size | None = None) -> torch.Tensor:
        if output_size is None:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")  # (B, C, 2H, 2W)
        else:
            x = F.interpolate(x, size=tuple(output_size), mode="nearest")  # (B, C, H_skip, W_skip)
        return self.conv(x)


class TimestepEmbedSequential(nn.Sequential):
    """A Sequential that gives ResBlocks the embedding and transformers the context.

    With ``patches`` (an ``ActivePatches``) the block, each layer (key ``f"{key}.{index}"``)
    and each attention module run through the patches set at their key paths.
    """

    def forward(self, x, emb, context, output_size=None, key: str = "", patches: ActivePatches | None = None):
        if patches is not None:
            return patches.run(key, lambda h: self._patched_layers(h, emb, context, output_size, key, patches),
                               x, emb, context)
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            elif isinstance(layer, Upsample):
                x = layer(x, output_size)
            else:
                x = layer(x)
        return x

    def _patched_layers(self, x, emb, context, output_size, key: str, patches: ActivePatches):
        for index, layer in enumerate(self):
            layer_key = f"{key}.{index}"
            if isinstance(layer, ResBlock):
                forward = partial(layer, emb=emb)
            elif isinstance(layer, SpatialTransformer):
                forward = partial(layer, context=context, key=layer_key, patches=patches)
            elif isinstance(layer, Upsample):
                forward = partial(layer, output_size=output_size)
            else:
                forward = layer
            x = patches.run(layer_key, forward, x, emb, context)
        return x


def timestep_embedders(config: UNetConfig) -> tuple[nn.Sequential, nn.Sequential | None]:
    """``time_embed`` (and SDXL's ``label_emb``, else None), shared by the UNet and ControlNet."""
    mc, emb_dim = config.model_channels, config.time_embed_dim
    time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
    if not config.adm_in_channels:
        return time_embed, None
    # SDXL's "sequential" label embedding: keys label_emb.0.0 / label_emb.0.2
    label_emb = nn.Sequential(
        nn.Sequential(nn.Linear(config.adm_in_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
    )
    return time_embed, label_emb


def _transformer(config: UNetConfig, channels: int, depth: int) -> SpatialTransformer:
    heads, head_dim = config.heads_for(channels)
    return SpatialTransformer(channels, heads, head_dim, depth, config.context_dim, config.use_linear_in_transformer)


def encoder_blocks(config: UNetConfig) -> tuple[nn.ModuleList, TimestepEmbedSequential, list[int]]:
    """The down path: (``input_blocks``, ``middle_block``, channels of each skip connection).

    Shared by the UNet and ControlNet (whose trainable copy is exactly this half).
    """
    mc, emb_dim = config.model_channels, config.time_embed_dim
    input_blocks = nn.ModuleList([TimestepEmbedSequential(nn.Conv2d(config.in_channels, mc, 3, padding=1))])
    skip_channels = [mc]
    ch = mc
    last_level = len(config.channel_mult) - 1
    for level, mult in enumerate(config.channel_mult):
        for _ in range(config.num_res_blocks):
            layers: list[nn.Module] = [ResBlock(ch, emb_dim, mc * mult)]
            ch = mc * mult
            if config.transformer_depth[level] > 0:
                layers.append(_transformer(config, ch, config.transformer_depth[level]))
            input_blocks.append(TimestepEmbedSequential(*layers))
            skip_channels.append(ch)
        if level != last_level:
            input_blocks.append(TimestepEmbedSequential(Downsample(ch)))
            skip_channels.append(ch)

    middle: list[nn.Module] = [ResBlock(ch, emb_dim, ch)]
    if config.transformer_depth_middle > 0:
        middle.append(_transformer(config, ch, config.transformer_depth_middle))
    middle.append(ResBlock(ch, emb_dim, ch))
    return input_blocks, TimestepEmbedSequential(*middle), skip_channels


class UNetModel(nn.Module):
    """The LDM / Stable Diffusion UNet; ``forward`` predicts eps or v (``config.prediction``).

    This is the raw eps / v network ``net(x, t, **cond)`` with ``cond`` = ``context``, ``y``,
    ``control``; a sampling adapter maps sigma to ``t`` and eps / v to the denoised image.
    """

    def __init__(self, config: UNetConfig = SD1):
        super().__init__()
        self.config = config
        mc, emb_dim = config.model_channels, config.time_embed_dim
        self.time_embed, label_emb = timestep_embedders(config)
        if label_emb is not None:
            self.label_emb = label_emb
        self.input_blocks, self.middle_block, skip_channels = encoder_blocks(config)
        ch = skip_channels[-1]
        transformer = partial(_transformer, config)

        depth_out = config.transformer_depth_output or config.transformer_depth
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(config.channel_mult))):
            for i in range(config.num_res_blocks + 1):
                layers = [ResBlock(ch + skip_channels.pop(), emb_dim, mc * mult)]
                ch = mc * mult
                if depth_out[level] > 0:
                    layers.append(transformer(ch, depth_out[level]))
                if level and i == config.num_res_blocks:
                    layers.append(Upsample(ch))
                self.output_blocks.append(TimestepEmbedSequential(*layers))

        self.out = nn.Sequential(GroupNorm32(ch), nn.SiLU(), nn.Conv2d(mc, config.out_channels, 3, padding=1))
        # patches.ModelPatch objects this network runs with (set by patches.set_model_patches); a plain
        # tuple attribute, so never part of the state dict or moved by .to()
        self.model_patches: tuple[ModelPatch, ...] = ()

    @property
    def dtype(self) -> torch.dtype:
        return self.time_embed[0].weight.dtype

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor | float,
        context: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        control: dict[str, list[torch.Tensor | None]] | Callable[..., dict | None] | None = None,
        concat: torch.Tensor | None = None,
        patches: tuple[ModelPatch, ...] | None = None,
    ) -> torch.Tensor:
        """Predict eps (or v) for noisy latents.

        Args:
            x: noisy latents ``(B, in_channels, H, W)`` (any float dtype; computed in the
                weights' dtype, returned in x's dtype). H, W need not be multiples of 8.
            timesteps: discrete-time steps in ``[0, 1000)`` as a float tensor ``(B,)`` or a scalar.
            context: text hidden states ``(B or 1, T, context_dim)``; T is any multiple of 77
                (long prompts concatenate chunks). A batch of 1 is broadcast.
            y: ``(B or 1, adm_in_channels)`` for SDXL (``sdxl_vector``); must be None otherwise.
            control: ControlNet residuals, the original ControlNet contract: a dict with
                ``"input"``: a list with one entry per input block (``len(self.input_blocks)``,
                12 for SD 1.x, 9 for SDXL), in input-block order; entry ``i`` is added to the
                skip connection saved after ``input_blocks[i]`` (the one ``output_blocks[N-1-i]``
                concatenates), and ``"middle"``: a one-element list added to the middle-block
                output. Entries may be None (skipped); missing keys mean no residual there.
                ControlNet's 13 zero-conv outputs map as ``{"input": outs[:12], "middle": outs[12:]}``.
                Residuals are added in the UNet's dtype. Or a callable ``control(x, t, context, y)``
                returning such a dict (or None), e.g. a ``controlnet.ControlStack``.
            concat: extra input channels appended to ``x`` for UNets with more input than
                output channels: SD inpainting models (9 = 4 latent + 1 mask + 4 masked-image
                latent) take ``cat(mask, masked_image_latent)`` here, unscaled, ``(B or 1, 5, H, W)``.
            patches: model patches for this call only (``patches.py``), applied after
                ``self.model_patches`` (e.g. perturbed self-attention from a guidance term).

        Returns:
            ``(B, out_channels, H, W)``: eps or v, as ``config.prediction`` says.
        """
        batch, in_dtype, dtype = x.shape[0], x.dtype, self.dtype
        missing = self.config.in_channels - x.shape[1]
        if missing > 0:
            if concat is None or concat.shape[1] != missing:
                found = "none" if concat is None else f"{concat.shape[1]}"
                raise UNetInputError(
                    "concat", f"this UNet takes {self.config.in_channels} input channels ({x.shape[1]} latent + "
                    f"{missing} more, an inpainting model); it needs `concat` with {missing} channels (mask + "
                    f"masked-image latent: "
                    f"encode with VAEEncodeForInpaint), found {found}")
            x = torch.cat([x, _broadcast_batch(concat, batch, "concat").to(x)], dim=1)
        elif concat is not None:
            raise UNetInputError("concat", f"concat was given but this UNet takes {self.config.in_channels}-channel "
                                           f"latents as they are")
        timesteps = torch.as_tensor(timesteps, device=x.device)
        if timesteps.ndim == 0:
            timesteps = timesteps.expand(batch)  # (B,)
        if context is None:
            raise UNetInputError("context", "UNetModel.forward needs `context` (text hidden states "
                                            "(B, T, context_dim))")
        if context.shape[-1] != self.config.context_dim:
            raise UNetInputError(
                "context", f"context has width {context.shape[-1]} but this UNet expects "
                f"context_dim={self.config.context_dim}; "
                "was the prompt encoded with the text encoder of this checkpoint?"
            )
        context = _broadcast_batch(context, batch, "context").to(dtype)  # (B, T, context_dim)

        emb = self.time_embed(timestep_embedding(timesteps, self.config.model_channels).to(dtype))  # (B, 4*mc)
        if self.config.adm_in_channels:
            if y is None:
                raise UNetInputError("y", "this UNet has a label embedding (SDXL): its prompts need pooled text "
                                          "(encode them with EncodeTextSDXL; in code pass y=sdxl_vector(pooled, ...))")
            emb = emb + self.label_emb(_broadcast_batch(y, batch, "y").to(dtype))  # (B, 4*mc)
        elif y is not None:
            raise UNetInputError("y", "the prompts carry pooled text (y), but this UNet has no label embedding "
                                      "(adm_in_channels=0): encode them with the text encoder of this model's "
                                      "checkpoint (EncodeText for SD 1.x/2.x)")

        if callable(control):      # a ControlStack (controlnet.py): residuals computed from this call's inputs
            control = control(x, timesteps, context, y)
        control = control or {}
        input_residuals = control.get("input") or [None] * len(self.input_blocks)
        if len(input_residuals) != len(self.input_blocks):
            raise ValueError(
                f"control['input'] has {len(input_residuals)} entries; this UNet has {len(self.input_blocks)} "
                "input blocks (one residual per input block, None to skip)"
            )

        active = ActivePatches.build(self.model_patches, patches or ()) if self.model_patches or patches else None
        h = x.to(dtype)
        skips = []
        for index, block in enumerate(self.input_blocks):
            interrupt_point()     # one step at a large size takes minutes: an interrupt stops between blocks
            if active is None:
                h = block(h, emb, context)  # (B, C_level, H_level, W_level)
            else:
                h = block(h, emb, context, key=f"input_blocks.{index}", patches=active)
            skips.append(h)
        h = self.middle_block(h, emb, context, key="middle_block", patches=active)  # (B, C_mid, H/2^L, W/2^L)
        for residual in control.get("middle") or []:
            if residual is not None:
                h = h + residual.to(dtype)
        for index, block in enumerate(self.output_blocks):
            interrupt_point()
            skip = skips.pop()
            residual = input_residuals[len(skips)]
            if residual is not None:
                skip = skip + residual.to(dtype)
            h = torch.cat([h, skip], dim=1)  # (B, C + C_skip, H_level, W_level)
            output_size = skips[-1].shape[-2:] if skips else None
            if active is None:
                h = block(h, emb, context, output_size=output_size)
            else:
                h = block(h, emb, context, output_size, f"output_blocks.{index}", active)
        return self.out(h).to(in_dtype)  # (B, out_channels, H, W)


def _broadcast_batch(t: torch.Tensor, batch: int, name: str) -> torch.Tensor:
    """Expand a batch-1 conditioning tensor to `batch`; refuse other mismatches."""
    if t.shape[0] == batch:
        return t
    if t.shape[0] == 1:
        return t.expand(batch, *t.shape[1:])
    raise ValueError(f"{name} has batch {t.shape[0]} but x has batch {batch}; give one row per sample or a single row")
