"""The KL autoencoder of Stable Diffusion (f=8, 4 latent channels), shaped like its checkpoint.

Reference: Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion Models"
(§3.1 perceptual image compression: a KL-regularised autoencoder; §4.3.2 / App. G: latents are
rescaled by ``scale_factor`` = 1 / std so the diffusion model sees unit variance). SDXL
(Podell et al. 2023 §2.4) retrained the same architecture; its latents use 0.13025.

Map
- ``VAEConfig`` and the named configs ``SD_VAE`` (SD 1.x / 2.x), ``SDXL_VAE``, ``SD3_VAE`` (16 channels,
  shift + scale, no quant convs), ``TINY_VAE``.
- ``AutoencoderKL(config)``: ``encode(images) -> latents``, ``decode(latents) -> images``,
  ``preview(latents) -> rgb``; ``encode``/``decode`` take ``tile_size`` for large images.
  Submodule names equal LDM checkpoint keys after stripping ``first_stage_model.``
  (``encoder.down.0.block.0.norm1.weight``, ``quant_conv``, ``post_quant_conv``, ...).
- ``Encoder`` / ``Decoder``: conv_in, ``down``/``up`` levels of ``ResnetBlock`` with a
  ``Downsample``/``Upsample`` between levels, ``mid`` = block_1, attn_1 (``AttnBlock``), block_2.
- ``run_tiled``: runs a function over overlapping tiles and blends them with linear ramps.
- ``latent_preview`` and ``fit_latent_rgb_factors``: the cheap latent -> RGB linear map.

Conventions: images are ``(B, 3, H, W)`` floats in ``[-1, 1]``; latents are in *sampler
space*, i.e. ``(mean or sample - shift_factor) * scale_factor`` of the raw posterior.

Preview factors: a fixed 4 -> 3 linear map on sampler-space latents giving RGB in about
[-1, 1]. SD 1.x values by @torridgristle (refining @keturn / @erucipe's fit in
https://discuss.huggingface.co/t/decoding-latents-to-rgb-without-upscaling/23204), SDXL values
by @StAlKeR7779; both as published in InvokeAI's ``invokeai/app/util/step_callback.py``
(Apache-2.0). For any other VAE, fit your own with ``fit_latent_rgb_factors``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from nodegraph.interrupts import interrupt_point

from .patches import default_attention

SD1_LATENT_RGB_FACTORS = (
    (0.3444, 0.1385, 0.0670),
    (0.1247, 0.4027, 0.1494),
    (-0.3192, 0.2513, 0.2103),
    (-0.1307, -0.1874, -0.7445),
)
SDXL_LATENT_RGB_FACTORS = (
    (0.3816, 0.4930, 0.5320),
    (-0.3753, 0.1631, 0.1739),
    (0.1770, 0.3588, -0.2048),
    (-0.4350, -0.2644, -0.4289),
)


@dataclass(frozen=True)
class VAEConfig:
    """Hyper-parameters of the KL autoencoder; the defaults are the SD 1.x / 2.x VAE."""

    in_channels: int = 3  # RGB
    out_channels: int = 3  # RGB
    ch: int = 128  # width of the full-resolution level
    ch_mult: tuple[int, ...] = (1, 2, 4, 4)  # 4 levels -> 3 downsamples -> f = 8
    num_res_blocks: int = 2  # ResnetBlocks per encoder level (the decoder has one more)
    z_channels: int = 4  # latent channels (the encoder outputs 2x: mean and log-variance)
    scale_factor: float = 0.18215  # 1/std of SD 1.x latents (LDM); SDXL 0.13025
    shift_factor: float = 0.0  # subtracted before scaling (0 for SD/SDXL; kept for later VAEs)
    latent_rgb_factors: tuple[tuple[float, ...], ...] = SD1_LATENT_RGB_FACTORS  # preview map, z_channels x 3
    latent_rgb_bias: tuple[float, ...] = (0.0, 0.0, 0.0)  # preview bias (none for SD / SDXL)
    use_quant_conv: bool = True  # the 1x1 quant_conv / post_quant_conv; SD3's VAE has neither

    def __post_init__(self) -> None:
        if not (isinstance(self.scale_factor, (int, float)) and math.isfinite(self.scale_factor)
                and self.scale_factor > 0):
            raise ValueError(f"scale_factor must be a finite positive number, got {self.scale_factor!r}")
        if not (isinstance(self.shift_factor, (int, float)) and math.isfinite(self.shift_factor)):
            raise ValueError(f"shift_factor must be a finite number, got {self.shift_factor!r}")

    @property
    def downscale(self) -> int:
        """Pixels per latent along each axis (8 for every SD VAE)."""
        return 2 ** (len(self.ch_mult) - 1)


SD_VAE = VAEConfig()
SDXL_VAE = replace(SD_VAE, scale_factor=0.13025, latent_rgb_factors=SDXL_LATENT_RGB_FACTORS)
TINY_VAE = VAEConfig(ch=32, ch_mult=(1, 1, 2, 2), num_res_blocks=1)
# SD3 / SD3.5 (Esser et al. 2024 §5.2.1): 16 latent channels, no quant convs, latents shifted then
# scaled (diffusers' AutoencoderKL config of SD3: scaling 1.5305, shift 0.0609). No published preview
# map is used: the placeholder shows latent channels 0-2 as RGB (fit one with fit_latent_rgb_factors).
SD3_VAE = replace(SD_VAE, z_channels=16, scale_factor=1.5305, shift_factor=0.0609, use_quant_conv=False,
                  latent_rgb_factors=tuple(tuple(0.5 if row == col else 0.0 for col in range(3)) for row in range(16)))


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=1e-6)


class ResnetBlock(nn.Module):
    """Two GroupNorm-SiLU-conv3x3 layers with a residual (1x1 ``nin_shortcut`` on width change)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm1 = _group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = _group_norm(out_channels)
        self.dropout = nn.Dropout(0.0)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, H, W)
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))  # (B, C_out, H, W)
        shortcut = self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x
        return shortcut + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all H*W positions, 1x1-conv projections, residual."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = _group_norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        h = self.norm(x)
        # contiguous: with channels strided by H*W, torch's CPU kernel falls back to the plain math, which holds the
        # whole (H*W)² weight matrix — 16 GiB for a 1024² image on the tiny VAE; contiguous, it stays in tiles
        q, k, v = (conv(h).flatten(2).transpose(1, 2)[:, None].contiguous()
                   for conv in (self.q, self.k, self.v))  # (B, 1, H*W, C)
        h = default_attention(q, k, v)  # (B, 1, H*W, C); in interruptible slices at large sizes
        h = h[:, 0].transpose(1, 2).reshape(batch, channels, height, width)  # (B, C, H, W)
        return x + self.proj_out(h)


class Downsample(nn.Module):
    """Pad right/bottom by one, then a stride-2 3x3 conv (LDM's asymmetric downsample)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # (B, C, H/2, W/2)


class Upsample(nn.Module):
    """Nearest-neighbour 2x then a 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # (B, C, 2H, 2W)


class _Mid(nn.Module):
    """block_1 -> attn_1 -> block_2 at the lowest resolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels)
        self.attn_1 = AttnBlock(channels)
        self.block_2 = ResnetBlock(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class _Level(nn.Module):
    """One resolution level: ``block`` (ResnetBlocks), an empty ``attn`` list, and a resampler."""

    def __init__(self, blocks: list[nn.Module], resample: nn.Module | None, resample_name: str):
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = nn.ModuleList()  # SD's VAE has no attention outside the middle block
        self.resample_name = resample_name
        if resample is not None:
            self.add_module(resample_name, resample)


class Encoder(nn.Module):
    """Image (B, 3, H, W) -> posterior moments (B, 2*z_channels, H/8, W/8)."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        ch, mult = config.ch, config.ch_mult
        self.conv_in = nn.Conv2d(config.in_channels, ch, 3, padding=1)
        self.down = nn.ModuleList()
        block_in = ch
        for level, m in enumerate(mult):
            blocks = []
            for _ in range(config.num_res_blocks):
                blocks.append(ResnetBlock(block_in, ch * m))
                block_in = ch * m
            last = level == len(mult) - 1
            self.down.append(_Level(blocks, None if last else Downsample(block_in), "downsample"))
        self.mid = _Mid(block_in)
        self.norm_out = _group_norm(block_in)
        self.conv_out = nn.Conv2d(block_in, 2 * config.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)  # (B, ch, H, W)
        for level in self.down:
            for block in level.block:
                interrupt_point()     # a large image's pass takes minutes: an interrupt stops between blocks
                h = block(h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)  # (B, C, H/2, W/2)
        h = self.mid(h)  # (B, C_top, H/8, W/8)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, 2*z, H/8, W/8)


class Decoder(nn.Module):
    """Latent (B, z_channels, h, w) -> image (B, 3, 8h, 8w). ``up[0]`` is the FULL resolution level."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        ch, mult = config.ch, config.ch_mult
        block_in = ch * mult[-1]
        self.conv_in = nn.Conv2d(config.z_channels, block_in, 3, padding=1)
        self.mid = _Mid(block_in)
        levels: list[_Level] = []
        for level in reversed(range(len(mult))):
            blocks = []
            for _ in range(config.num_res_blocks + 1):
                blocks.append(ResnetBlock(block_in, ch * mult[level]))
                block_in = ch * mult[level]
            levels.insert(0, _Level(blocks, Upsample(block_in) if level else None, "upsample"))
        self.up = nn.ModuleList(levels)
        self.norm_out = _group_norm(block_in)
        self.conv_out = nn.Conv2d(block_in, config.out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))  # (B, C_top, h, w)
        for level in reversed(self.up):
            for block in level.block:
                interrupt_point()
                h = block(h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)  # (B, C, 2h, 2w)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, 3, 8h, 8w)


class AutoencoderKL(nn.Module):
    """Encoder + decoder + the 1x1 ``quant_conv`` / ``post_quant_conv`` around the latent."""

    def __init__(self, config: VAEConfig = SD_VAE):
        super().__init__()
        self.config = config
        z = config.z_channels
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quant_conv = nn.Conv2d(2 * z, 2 * z, 1) if config.use_quant_conv else nn.Identity()
        self.post_quant_conv = nn.Conv2d(z, z, 1) if config.use_quant_conv else nn.Identity()

    @property
    def dtype(self) -> torch.dtype:
        return self.encoder.conv_in.weight.dtype

    def encode_moments(self, images: torch.Tensor) -> torch.Tensor:
        """Raw posterior moments ``(B, 2*z, H/8, W/8)``: mean then log-variance (unscaled)."""
        return self.quant_conv(self.encoder(images.to(self.dtype)))

    def encode(
        self,
        images: torch.Tensor,
        *,
        sample: bool = False,
        generator: torch.Generator | None = None,
        tile_size: int | None = None,
        tile_overlap: int = 64,
        before_tile: Callable[[], None] | None = None,
    ) -> torch.Tensor:
        """Images ``(B, 3, H, W)`` in [-1, 1] (H, W multiples of 8) -> sampler-space latents.

        Args:
            sample: draw from the posterior (``mean + std * noise`` with ``generator``, noise made
                on the generator's device) instead of returning its mean.
            tile_size: encode in overlapping ``tile_size``-pixel tiles (a multiple of 8) to bound
                memory; None encodes in one pass. Tiles are blended with linear ramps over
                ``tile_overlap`` pixels; GroupNorm statistics are per tile, so the result differs
                slightly from a one-pass encode.
        """
        f = self.config.downscale
        if images.shape[-1] % f or images.shape[-2] % f:
            raise ValueError(
                f"image size {images.shape[-1]}×{images.shape[-2]} (width×height) must be a multiple of {f} to "
                f"encode; crop or pad it"
            )
        if tile_size is None:
            moments = self.encode_moments(images)
        else:
            if tile_size % f or tile_overlap % f:
                raise ValueError(f"tile_size ({tile_size}) and tile_overlap ({tile_overlap}) must be multiples of {f}")
            moments = run_tiled(self.encode_moments, images, tile_size // f, tile_overlap // f, in_scale=f,
                                out_scale=1, before_tile=before_tile)
        mean, logvar = moments.float().chunk(2, dim=1)  # (B, z, h, w) each
        latents = mean
        if sample:
            std = torch.exp(0.5 * logvar.clamp(-30.0, 20.0))
            device = generator.device if generator is not None else mean.device
            noise = torch.randn(mean.shape, generator=generator, device=device, dtype=mean.dtype).to(mean.device)
            latents = mean + std * noise
        return ((latents - self.config.shift_factor) * self.config.scale_factor).to(images.dtype)

    def decode(self, latents: torch.Tensor, *, tile_size: int | None = None, tile_overlap: int = 64,
               before_tile: Callable[[], None] | None = None) -> torch.Tensor:
        """Sampler-space latents ``(B, z, h, w)`` -> images ``(B, 3, 8h, 8w)`` in about [-1, 1] (not clamped).

        ``tile_size`` / ``tile_overlap`` are in pixels (multiples of 8), as for ``encode``; ``before_tile`` is
        called before each tile (a node's interrupt check), as for ``encode``.
        """
        z = latents.float() / self.config.scale_factor + self.config.shift_factor

        def decode_raw(z_tile: torch.Tensor) -> torch.Tensor:
            return self.decoder(self.post_quant_conv(z_tile.to(self.dtype)))

        if tile_size is None:
            images = decode_raw(z)
        else:
            f = self.config.downscale
            if tile_size % f or tile_overlap % f:
                raise ValueError(f"tile_size ({tile_size}) and tile_overlap ({tile_overlap}) must be multiples of {f}")
            images = run_tiled(decode_raw, z, tile_size // f, tile_overlap // f, in_scale=1, out_scale=f,
                               before_tile=before_tile)
        return images.to(latents.dtype)

    def preview(self, latents: torch.Tensor) -> torch.Tensor:
        """Cheap RGB preview ``(B, 3, h, w)`` in [0, 1] of sampler-space latents (no decoder)."""
        return latent_preview(latents, self.config.latent_rgb_factors, self.config.latent_rgb_bias)


def latent_preview(
    latents: torch.Tensor,
    factors: tuple[tuple[float, ...], ...] = SD1_LATENT_RGB_FACTORS,
    bias: tuple[float, ...] = (0.0, 0.0, 0.0),
) -> torch.Tensor:
    """Linear latent -> RGB approximation, ``(B, z, h, w)`` -> ``(B, 3, h, w)`` in [0, 1]."""
    weight = torch.tensor(factors, dtype=torch.float32, device=latents.device)  # (z, 3)
    offset = torch.tensor(bias, dtype=torch.float32, device=latents.device)  # (3,)
    rgb = torch.einsum("bchw,cr->brhw", latents.float(), weight) + offset[None, :, None, None]  # (B, 3, h, w) ~[-1, 1]
    return ((rgb + 1.0) / 2.0).clamp(0.0, 1.0)


def fit_latent_rgb_factors(latents: torch.Tensor, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares fit of preview ``factors (z, 3)`` and ``bias (3,)`` from latents and their images.

    ``latents``: sampler-space ``(B, z, h, w)``; ``images``: ``(B, 3, H, W)`` in [-1, 1], area-resized
    to ``(h, w)`` before fitting. Feed the result to ``latent_preview`` or ``VAEConfig``.
    """
    target = F.interpolate(images.float(), size=latents.shape[-2:], mode="area")  # (B, 3, h, w)
    x = latents.float().permute(0, 2, 3, 1).reshape(-1, latents.shape[1])  # (N, z)
    x = torch.cat([x, torch.ones(x.shape[0], 1)], dim=1)  # (N, z+1)
    y = target.permute(0, 2, 3, 1).reshape(-1, 3)  # (N, 3)
    solution = torch.linalg.lstsq(x, y).solution  # (z+1, 3)
    return solution[:-1], solution[-1]


def run_tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tile: int,
    overlap: int,
    *,
    in_scale: int,
    out_scale: int,
    before_tile: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Apply ``fn`` to overlapping tiles of ``x`` and blend the results (``before_tile()`` before each: a
    node's interrupt check, so a large image stops between tiles).

    Tiles are laid on a grid of "units": a tile is ``tile`` units square, neighbours overlap by
    ``overlap`` units, one unit is ``in_scale`` pixels of ``x`` and ``out_scale`` pixels of the output
    (decode: 1 -> 8, encode: 8 -> 1). Where tiles overlap, each output is weighted by a linear
    ramp that falls towards the tile's inner edges, so seams fade instead of showing.
    """
    if overlap * 2 > tile:
        raise ValueError(f"tile overlap ({overlap}) must be at most half the tile ({tile})")
    height, width = x.shape[-2] // in_scale, x.shape[-1] // in_scale
    out = weights = None
    for top in _tile_starts(height, tile, tile - overlap):
        for left in _tile_starts(width, tile, tile - overlap):
            if before_tile is not None:
                before_tile()
            th, tw = min(tile, height), min(tile, width)
            piece = x[..., top * in_scale : (top + th) * in_scale, left * in_scale : (left + tw) * in_scale]
            result = fn(piece).float()  # (B, C_out, th*out_scale, tw*out_scale)
            if out is None:
                out = result.new_zeros(*result.shape[:2], height * out_scale, width * out_scale)
                weights = result.new_zeros(1, 1, height * out_scale, width * out_scale)
            ramp_y = _ramp(th * out_scale, overlap * out_scale, top > 0, top + th < height, result.device)  # (th*s,)
            ramp_x = _ramp(tw * out_scale, overlap * out_scale, left > 0, left + tw < width, result.device)  # (tw*s,)
            mask = ramp_y[:, None] * ramp_x[None, :]  # (th*s, tw*s)
            ys, xs = slice(top * out_scale, (top + th) * out_scale), slice(left * out_scale, (left + tw) * out_scale)
            out[..., ys, xs] += result * mask
            weights[..., ys, xs] += mask
    return out / weights


def _tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Tile offsets covering [0, length): a regular stride, the last tile flush with the end."""
    if length <= tile:
        return [0]
    return list(range(0, length - tile, stride)) + [length - tile]


def _ramp(size: int, overlap: int, fade_start: bool, fade_end: bool, device: torch.device) -> torch.Tensor:
    """1-D blend weights: rising over `overlap` at a shared start edge, falling at a shared end edge."""
    position = torch.arange(size, dtype=torch.float32, device=device) + 0.5
    ramp = torch.ones(size, device=device)
    if overlap > 0 and fade_start:
        ramp = torch.minimum(ramp, position / overlap)
    if overlap > 0 and fade_end:
        ramp = torch.minimum(ramp, (size - position) / overlap)
    return ramp
