"""AnimateDiff motion modules: temporal transformers inserted into an image UNet, shaped like their checkpoints.

Reference: Guo et al. 2023, "AnimateDiff: Animate Your Personalized Text-to-Image Diffusion
Models without Specific Tuning" (§4.2: a motion module is a temporal transformer — self-attention
along the frame axis at every spatial position, with sinusoidal position encoding — inserted after
every resolution level's layers of a frozen image UNet; its output projection starts at zero, so
an untrained module is the identity). Window fusion for long clips follows Qiu et al. 2023,
"FreeNoise" (§3.3, window-based attention fusion).

Map
- ``MotionConfig``: channels per UNet level, layers per block, heads, groups, position-table length.
- ``MotionModuleSet(config)``: the whole file: ``down_blocks.{i}.motion_modules.{j}``,
  ``mid_block.motion_modules.0``, ``up_blocks.{i}.motion_modules.{j}``; each a
  ``VanillaTemporalModule`` -> ``temporal_transformer`` (``TemporalTransformer3DModel``: GroupNorm,
  proj_in, ``transformer_blocks.N`` of two temporal self-attentions + GEGLU feed-forward, proj_out).
  Submodule names are AnimateDiff's original checkpoint keys.
- ``load_motion_state(state)``: a state dict in the original layout or in diffusers' ``MotionAdapter``
  layout -> (MotionModuleSet, layout name); ``to_diffusers_keys`` / ``from_diffusers_keys`` convert.
- ``insertion_points(layer_keys, transformer_keys, config)``: which UNet layer each module follows
  (LDM key paths: ``input_blocks.4.1`` ...), the layout diffusers' ``UNetMotionModel`` uses.
- ``frames_context(F)`` / ``current_frames()``: the clip length a sampling call runs with (frames are
  folded into the batch axis; a call's batch is clips × F, or 2 × that under CFG); ``clip_frames``
  checks it for a patch.
- ``windows(frames, length, overlap)``: the sliding context windows (start, stop) covering a clip.

Layout of the activations: ``h`` (B·F, C, H, W), clip-major (frames of clip 0 first). Every module
unfolds it as (B, F, C, H, W), normalises with GroupNorm over (C/groups, F, H, W) — as diffusers'
``AnimateDiffTransformer3D`` does — and attends over F at each of the B·H·W positions.

Nothing here imports the engine; ``MotionModuleError(ValueError)`` carries the name of the input
at fault (``input``) so node adapters can report it.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LoadedMotionModule", "MotionConfig", "MotionModuleError", "MotionModuleSet", "MotionInsertion", "current_frames", "frames_context",
    "from_diffusers_keys", "infer_config", "insertion_points", "load_motion_state", "to_diffusers_keys", "windows",
]


class MotionModuleError(ValueError):
    """A motion module that cannot run here; ``input`` names the node input at fault, the message the fix.

    ``node`` names the node that holds ``input`` (e.g. "Apply Motion Module 'animated'") when the problem is found
    while another node runs: a patched model's setting checked during sampling, once the clip length is known.
    """

    def __init__(self, input: str, message: str, node: str | None = None):
        self.input = input
        self.node = node
        super().__init__(message)


@dataclass(frozen=True)
class MotionConfig:
    """Hyper-parameters of a motion-module file; defaults are AnimateDiff v2 for SD 1.5."""

    channels: tuple[int, ...] = (320, 640, 1280, 1280)   # UNet width per level (block_out_channels)
    layers_per_block: int = 2                            # modules per level going down; up has one more
    transformer_layers: int = 1                          # temporal transformer blocks per module
    heads: int = 8                                       # AnimateDiff fixes the head count at 8
    norm_groups: int = 32
    max_frames: int = 32                                 # position table: v1 24, v2 / v3 32
    mid_block: bool = True                               # v2+ have a module in the middle block

    def describe(self) -> str:
        return (f"channels {list(self.channels)}, {self.layers_per_block} per level, "
                f"{'with' if self.mid_block else 'no'} middle module, up to {self.max_frames} frames")


# --- frames of the current call ----------------------------------------------------------------

_FRAMES: contextvars.ContextVar[int | None] = contextvars.ContextVar("nodegraph_video_frames", default=None)


@contextlib.contextmanager
def frames_context(frames: int) -> Iterator[None]:
    """Within this block, motion modules treat every F = `frames` consecutive batch items as one clip."""
    token = _FRAMES.set(int(frames))
    try:
        yield
    finally:
        _FRAMES.reset(token)


def current_frames() -> int | None:
    """The clip length set by ``frames_context`` around the running sampling call (None outside one)."""
    return _FRAMES.get()


def clip_frames(batch: int, own: int, what: str, node: str) -> int:
    """F for a model call of `batch` items: the sampling call's clip length, else `own` (a node's `frames`).

    Raises MotionModuleError("frames") when neither is known or F does not divide the batch; `what` and
    `node` name the patch and the node whose `frames` input would fix it.
    """
    frames = current_frames() or own
    if not frames:
        raise MotionModuleError(
            "frames", f"{what} does not know the clip length: sample with the video plugin's nodes (SampleVideo, "
                      f"ImageToVideo, VideoToVideo, InterpolateFrames), which pass the latent's frames, or set "
                      f"`frames` on {node} to use KSampler")
    if batch % frames:
        raise MotionModuleError("frames", f"the model was called with a batch of {batch}, not a multiple of "
                                          f"the clip length {frames}: the latent's 'frames' must divide its batch")
    return frames


def windows(frames: int, length: int, overlap: int) -> list[tuple[int, int]]:
    """Sliding windows [start, stop) of `length` frames, stride length - overlap, the last one flush with the end."""
    if length >= frames:
        return [(0, frames)]
    stride = length - overlap
    starts = list(range(0, frames - length + 1, stride))
    if starts[-1] + length < frames:
        starts.append(frames - length)
    return [(s, s + length) for s in starts]


# --- the architecture (original AnimateDiff key names) -----------------------------------------


class PositionalEncoding(nn.Module):
    """Sinusoidal frame-position encoding added before each temporal attention (Vaswani et al. 2017 §3.5)."""

    def __init__(self, dim: int, max_len: int):
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
        pe = torch.zeros(1, max_len, dim)
        pe[0, :, 0::2] = torch.sin(position * div_term)
        pe[0, :, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)  # (1, max_len, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[:, : x.shape[1]].to(x.dtype)  # (N, F, dim)


class TemporalAttention(nn.Module):
    """Self-attention along the frame axis (AnimateDiff's "VersatileAttention", Temporal_Self)."""

    def __init__(self, dim: int, heads: int, max_len: int):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(0.0)])
        self.pos_encoder = PositionalEncoding(dim, max_len)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pos_encoder(x)  # (N, F, dim), N = clips·H·W
        n, frames, dim = x.shape
        q, k, v = (proj(x).view(n, frames, self.heads, dim // self.heads).transpose(1, 2)
                   for proj in (self.to_q, self.to_k, self.to_v))  # (N, heads, F, head_dim)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, frames, dim)
        return self.to_out[1](self.to_out[0](out))


class GEGLU(nn.Module):
    """Gated GELU projection (Shazeer 2020): proj -> (value, gate), value · gelu(gate)."""

    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU feed-forward with 4x inner width (keys ``net.0.proj``, ``net.2``)."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TemporalTransformerBlock(nn.Module):
    """Two pre-norm temporal self-attentions and a pre-norm feed-forward, each residual."""

    def __init__(self, dim: int, heads: int, max_len: int):
        super().__init__()
        self.attention_blocks = nn.ModuleList([TemporalAttention(dim, heads, max_len) for _ in range(2)])
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(2)])
        self.ff = FeedForward(dim)
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attention, norm in zip(self.attention_blocks, self.norms):
            x = attention(norm(x)) + x  # (N, F, dim)
        return self.ff(self.ff_norm(x)) + x


class TemporalTransformer3DModel(nn.Module):
    """GroupNorm -> proj_in -> temporal blocks -> proj_out, added to the input (residual)."""

    def __init__(self, channels: int, config: MotionConfig):
        super().__init__()
        self.norm = nn.GroupNorm(config.norm_groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList(
            [TemporalTransformerBlock(channels, config.heads, config.max_frames)
             for _ in range(config.transformer_layers)])
        self.proj_out = nn.Linear(channels, channels)

    def forward(self, h: torch.Tensor, frames: int) -> torch.Tensor:
        batch_frames, channels, height, width = h.shape
        clips = batch_frames // frames
        # contiguous: a permuted 5-D input can look channels-last to GroupNorm, whose CPU backward kernel for
        # that layout crashed (segfault) on 4-frame clips (torch 2.13)
        x = h.view(clips, frames, channels, height, width).permute(0, 2, 1, 3, 4).contiguous()  # (B, C, F, H, W)
        x = self.norm(x)
        x = x.permute(0, 3, 4, 2, 1).reshape(clips * height * width, frames, channels)  # (B·H·W, F, C)
        x = self.proj_in(x)
        for block in self.transformer_blocks:
            x = block(x)
        x = self.proj_out(x)
        x = x.view(clips, height, width, frames, channels).permute(0, 3, 4, 1, 2)  # (B, F, C, H, W)
        return x.reshape(batch_frames, channels, height, width) + h


class VanillaTemporalModule(nn.Module):
    """One motion module (key ``temporal_transformer``)."""

    def __init__(self, channels: int, config: MotionConfig):
        super().__init__()
        self.temporal_transformer = TemporalTransformer3DModel(channels, config)

    def forward(self, h: torch.Tensor, frames: int) -> torch.Tensor:
        return self.temporal_transformer(h, frames)


class MotionBlock(nn.Module):
    """The modules of one UNet level (key ``motion_modules``)."""

    def __init__(self, channels: int, count: int, config: MotionConfig):
        super().__init__()
        self.motion_modules = nn.ModuleList([VanillaTemporalModule(channels, config) for _ in range(count)])


class MotionModuleSet(nn.Module):
    """Every motion module of one file, named as AnimateDiff's checkpoints name them."""

    def __init__(self, config: MotionConfig = MotionConfig()):
        super().__init__()
        self.config = config
        per_level = config.layers_per_block
        self.down_blocks = nn.ModuleList([MotionBlock(c, per_level, config) for c in config.channels])
        if config.mid_block:
            self.mid_block = MotionBlock(config.channels[-1], 1, config)
        self.up_blocks = nn.ModuleList([MotionBlock(c, per_level + 1, config) for c in reversed(config.channels)])

    def zero_output_projections(self) -> None:
        """Start as the identity (AnimateDiff's initialisation): every proj_out weight and bias zero."""
        for name, parameter in self.named_parameters():
            if ".proj_out." in name:
                nn.init.zeros_(parameter)

    def modules_by_key(self) -> dict[str, VanillaTemporalModule]:
        """Checkpoint-key prefix (``down_blocks.0.motion_modules.1``) -> module, in UNet order."""
        out: dict[str, VanillaTemporalModule] = {}
        for level, block in enumerate(self.down_blocks):
            for j, module in enumerate(block.motion_modules):
                out[f"down_blocks.{level}.motion_modules.{j}"] = module
        if self.config.mid_block:
            out["mid_block.motion_modules.0"] = self.mid_block.motion_modules[0]
        for level, block in enumerate(self.up_blocks):
            for j, module in enumerate(block.motion_modules):
                out[f"up_blocks.{level}.motion_modules.{j}"] = module
        return out


@dataclass(eq=False)
class LoadedMotionModule:
    """What flows through a MOTION_MODULE port: the modules, the file (or run) name, its layout, a training report."""

    modules: MotionModuleSet
    name: str
    layout: str = "animatediff"
    training: dict | None = None

    @property
    def config(self) -> MotionConfig:
        return self.modules.config

    def __nodegraph_sizeof__(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.modules.parameters())


# --- where the modules go in an LDM UNet -------------------------------------------------------


def insertion_points(layer_keys: Sequence[str], transformer_keys: Sequence[str],
                     config: MotionConfig) -> dict[str, str]:
    """Motion-module key prefix -> the LDM UNet layer it runs after (as diffusers' UNetMotionModel places it).

    Down level i, module j follows ``input_blocks.{1 + i(n+1) + j}``'s transformer (or its ResBlock when
    the level has no attention); the middle module follows ``middle_block.1``; up level i, module j
    follows ``output_blocks.{i(n+2) + j}``'s transformer or ResBlock, before any Upsample. n = layers
    per block. Raises MotionModuleError (input "motion_module") when the UNet's blocks do not match.
    """
    layers = set(layer_keys)
    transformers = set(transformer_keys)
    levels, n = len(config.channels), config.layers_per_block
    input_blocks = sorted({int(m[1]) for k in layers if (m := re.match(r"input_blocks\.(\d+)$", k))})
    output_blocks = sorted({int(m[1]) for k in layers if (m := re.match(r"output_blocks\.(\d+)$", k))})
    want_in, want_out = 1 + levels * n + (levels - 1), levels * (n + 1)
    if len(input_blocks) != want_in or len(output_blocks) != want_out:
        raise MotionModuleError(
            "motion_module",
            f"this motion module is for a UNet with {levels} levels of {n} blocks ({want_in} input and {want_out} "
            f"output blocks; {config.describe()}), but the model has {len(input_blocks)} input and "
            f"{len(output_blocks)} output blocks: load the motion module made for this model's family")

    def after(block: str) -> str:
        return f"{block}.1" if f"{block}.1" in transformers else f"{block}.0"

    points: dict[str, str] = {}
    for level in range(levels):
        for j in range(n):
            points[f"down_blocks.{level}.motion_modules.{j}"] = after(f"input_blocks.{1 + level * (n + 1) + j}")
    if config.mid_block:
        if "middle_block.1" not in transformers:
            raise MotionModuleError("motion_module", "this motion module has a middle-block module but the model's "
                                                     "middle block has no transformer; use a module without one")
        points["mid_block.motion_modules.0"] = "middle_block.1"
    for level in range(levels):
        for j in range(n + 1):
            points[f"up_blocks.{level}.motion_modules.{j}"] = after(f"output_blocks.{level * (n + 1) + j}")
    return points


class MotionInsertion(nn.Module):
    """The module a model patch inserts after one UNet layer: ``module(h, call) -> h``.

    Holds one ``VanillaTemporalModule`` (shared with its MotionModuleSet) and the clip settings:
    ``frames`` (0 = take F from ``frames_context``), ``context_length`` (0 = the whole clip in one
    window, else sliding windows of that many frames) and ``context_overlap``. ``strength`` scales
    the module's residual (1 = as trained). ``owner`` names the node that set them, for the errors found
    while sampling (the clip length is known only then), which the sampling node reports.
    """

    def __init__(self, module: VanillaTemporalModule, key: str, *, frames: int = 0, context_length: int = 0,
                 context_overlap: int = 0, strength: float = 1.0, owner: str = "Apply Motion Module"):
        super().__init__()
        self.module = module
        self.key = key
        self.owner = owner
        self.frames = frames
        self.context_length = context_length
        self.context_overlap = context_overlap
        pe = module.temporal_transformer.transformer_blocks[0].attention_blocks[0].pos_encoder.pe
        self.max_frames = int(pe.shape[1])        # the position table's length
        self.strength = strength

    def clip_length(self, batch: int) -> int:
        """F for a call of `batch` items (the sampling call's frames, else the patch's), checked."""
        frames = clip_frames(batch, self.frames, "the motion module", "ApplyMotionModule")
        window = self.context_length or frames
        if self.context_length and self.context_length > frames:
            raise MotionModuleError(
                "context_length", f"the context window ({self.context_length} frames) is longer than the clip "
                                  f"({frames} frames): set context_length on {self.owner} to {frames} or less "
                                  f"(0 = the whole clip in one window), or make the clip {self.context_length} "
                                  f"frames or longer", node=self.owner)
        if window > self.max_frames:
            raise MotionModuleError(
                "context_length", f"this motion module knows frame positions up to {self.max_frames}, and the "
                                  f"clip has {frames} frames in one window: set context_length on {self.owner} "
                                  f"to {self.max_frames} or less (sliding windows with overlap)", node=self.owner)
        return frames

    def forward(self, h: torch.Tensor, call: object = None) -> torch.Tensor:
        channels = self.module.temporal_transformer.proj_in.in_features
        if h.shape[1] != channels:
            raise MotionModuleError("motion_module", f"{self.key} is {channels} channels wide but the model's layer "
                                                     f"there has {h.shape[1]}: this motion module is for another "
                                                     f"model family; load the one made for this model")
        frames = self.clip_length(h.shape[0])
        spans = windows(frames, self.context_length or frames, self.context_overlap)
        if len(spans) == 1:
            out = self.module(h, frames)
        else:
            out = self._fused(h, frames, spans)
        return h + self.strength * (out - h) if self.strength != 1.0 else out

    def _fused(self, h: torch.Tensor, frames: int, spans: list[tuple[int, int]]) -> torch.Tensor:
        """Each window through the module; frames covered twice are averaged with ramp weights (FreeNoise §3.3)."""
        batch_frames, channels, height, width = h.shape
        clips = batch_frames // frames
        video = h.view(clips, frames, channels, height, width)
        total = torch.zeros_like(video)
        weight_sum = torch.zeros(frames, dtype=h.dtype, device=h.device)
        for start, stop in spans:
            length = stop - start
            part = video[:, start:stop].reshape(clips * length, channels, height, width)
            out = self.module(part, length).view(clips, length, channels, height, width)
            ramp = torch.arange(length, device=h.device, dtype=h.dtype)
            weight = torch.minimum(ramp + 1, length - ramp)  # 1, 2, ..., 2, 1: window edges count least
            total[:, start:stop] += out * weight.view(1, length, 1, 1, 1)
            weight_sum[start:stop] += weight
        return (total / weight_sum.view(1, frames, 1, 1, 1)).reshape(batch_frames, channels, height, width)


# --- checkpoint layouts ------------------------------------------------------------------------

_DIFFUSERS_RENAMES = ((".norms.0.", ".norm1."), (".norms.1.", ".norm2."), (".ff_norm.", ".norm3."),
                      (".attention_blocks.0.", ".attn1."), (".attention_blocks.1.", ".attn2."))


def to_diffusers_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original AnimateDiff keys -> diffusers MotionAdapter keys (position tables become ``pos_embed.pe``)."""
    out = {}
    for key, value in state.items():
        new = key.replace(".temporal_transformer.", ".")
        if ".pos_encoder.pe" in new:
            if ".attention_blocks.1." in new:
                continue  # diffusers keeps one table per block, shared by both attentions
            new = re.sub(r"\.attention_blocks\.0\.pos_encoder\.pe$", ".pos_embed.pe", new)
        for old, replacement in _DIFFUSERS_RENAMES:
            new = new.replace(old, replacement)
        out[new] = value
    return out


def from_diffusers_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers MotionAdapter keys -> original AnimateDiff keys (``pos_embed.pe`` feeds both attentions)."""
    out = {}
    for key, value in state.items():
        if key.startswith("conv_in."):
            raise MotionModuleError("motion_module", "this MotionAdapter has a conv_in (a SparseCtrl / v3 "
                                                     "adapter variant), which is not a plain motion module")
        new = re.sub(r"(\.motion_modules\.\d+)\.", r"\1.temporal_transformer.", key, count=1)
        if new.endswith(".pos_embed.pe"):
            base = new[: -len(".pos_embed.pe")]
            out[f"{base}.attention_blocks.0.pos_encoder.pe"] = value
            out[f"{base}.attention_blocks.1.pos_encoder.pe"] = value
            continue
        for old, replacement in _DIFFUSERS_RENAMES:
            new = new.replace(replacement, old)
        out[new] = value
    return out


def infer_config(state: Mapping[str, torch.Tensor]) -> MotionConfig:
    """The MotionConfig of an original-layout state dict, read from its keys and shapes."""
    levels = sorted({int(m[1]) for k in state if (m := re.match(r"down_blocks\.(\d+)\.", k))})
    if not levels:
        raise MotionModuleError("motion_module", "no 'down_blocks.N.motion_modules' keys: this is not an "
                                                 "AnimateDiff motion module (original or MotionAdapter layout)")
    try:
        channels = tuple(state[f"down_blocks.{i}.motion_modules.0.temporal_transformer.proj_in.weight"].shape[0]
                         for i in levels)
    except KeyError as exc:
        raise MotionModuleError("motion_module", f"no {exc} tensor: the file is damaged or not a whole motion "
                                                 f"module") from None
    per_level = len({int(m[1]) for k in state if (m := re.match(r"down_blocks\.0\.motion_modules\.(\d+)\.", k))})
    depth = len({int(m[1]) for k in state if (m := re.match(
        r"down_blocks\.0\.motion_modules\.0\.temporal_transformer\.transformer_blocks\.(\d+)\.", k))})
    pe_key = "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.pos_encoder.pe"
    max_frames = state[pe_key].shape[1] if pe_key in state and state[pe_key].ndim == 3 else 32
    groups = 32
    metadata_heads = 8
    return MotionConfig(channels=channels, layers_per_block=per_level, transformer_layers=depth,
                        heads=metadata_heads, norm_groups=groups, max_frames=int(max_frames),
                        mid_block=any(k.startswith("mid_block.") for k in state))


def check_config(config: MotionConfig) -> None:
    """Refuse sizes the modules cannot run with: heads and groups must divide every width (MotionModuleError)."""
    for name in ("heads", "norm_groups", "layers_per_block", "transformer_layers", "max_frames"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise MotionModuleError("motion_module", f"{name} must be a whole number of at least 1, got {value!r}")
    for width in config.channels:
        if width < 1 or width % config.heads or width % config.norm_groups:
            raise MotionModuleError("motion_module", f"a level {width} channels wide cannot be split into "
                                                     f"{config.heads} heads and {config.norm_groups} norm groups; "
                                                     f"fix heads / norm_groups in the file's metadata")


def _metadata_counts(metadata: Mapping[str, str]) -> dict[str, int]:
    """``heads`` / ``norm_groups`` from the file's metadata, as whole numbers (MotionModuleError otherwise)."""
    counts = {}
    for key in ("heads", "norm_groups"):
        if key in metadata:
            text = str(metadata[key]).strip()
            if not (text.isascii() and text.isdigit() and len(text) < 7):
                raise MotionModuleError("motion_module", f"metadata {key} {text[:40]!r} is not a whole number")
            counts[key] = int(text)
    return counts


def load_motion_state(state: Mapping[str, torch.Tensor],
                      metadata: Mapping[str, str] | None = None) -> tuple[MotionModuleSet, str]:
    """Build a MotionModuleSet from a state dict in either layout -> (module set, "animatediff" | "diffusers").

    `metadata` may carry ``heads`` / ``norm_groups`` (files this plugin writes record the whole config);
    files without it get AnimateDiff's 8 heads and 32 groups. Missing, unexpected or wrongly shaped keys
    raise MotionModuleError naming the first few; they are found on the meta device, before any memory is
    allocated for a size that one tensor's shape (or the metadata) declares.
    """
    diffusers = any(".attn1." in k or ".pos_embed." in k for k in state) and not any(
        ".temporal_transformer." in k for k in state)
    original = from_diffusers_keys(state) if diffusers else dict(state)
    config = infer_config(original)
    if metadata:
        extra = _metadata_counts(metadata)
        if extra:
            config = MotionConfig(**{**asdict(config), **extra})
    check_config(config)
    with torch.device("meta"):
        expected = MotionModuleSet(config).state_dict()   # shapes only
    tables_given = any(k.endswith("pos_encoder.pe") for k in original)   # diffusers files may omit them
    needed = {k: v for k, v in expected.items() if tables_given or not k.endswith("pos_encoder.pe")}
    missing = sorted(set(needed) - set(original))
    unexpected = sorted(set(original) - set(needed))
    if missing or unexpected:
        raise MotionModuleError("motion_module", f"the file does not match an AnimateDiff motion module "
                                                 f"({config.describe()}): missing {missing[:3]}, unexpected "
                                                 f"{unexpected[:3]}")
    for key, value in original.items():
        if tuple(value.shape) != tuple(needed[key].shape):
            raise MotionModuleError("motion_module", f"{key}: shape {tuple(value.shape)}, expected "
                                                     f"{tuple(needed[key].shape)} for {config.describe()}")
    modules = MotionModuleSet(config)   # the file holds every tensor it needs, at the right shape
    if not tables_given:
        original.update({k: v for k, v in modules.state_dict().items() if k.endswith("pos_encoder.pe")})
    modules.load_state_dict({k: v.float() for k, v in original.items()})
    return modules, ("diffusers" if diffusers else "animatediff")
