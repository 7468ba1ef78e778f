"""Super-resolution networks, with the key names of their standard PyTorch checkpoints.

    RRDBNet          ESRGAN / Real-ESRGAN generator (x4plus, x4plus_anime_6B, x2plus): Wang et al. 2018,
                     "ESRGAN: Enhanced Super-Resolution GANs" (residual-in-residual dense blocks, §3.1);
                     keys as in the Real-ESRGAN / BasicSR release (`conv_first`, `body.N.rdbK.convM`, ...)
    SRVGGNetCompact  the small Real-ESRGAN net (realesr-animevideov3, realesr-general-x4v3): a plain
                     conv/PReLU stack, pixel shuffle, plus a nearest-upsampled copy of the input
                     (Wang et al. 2021, "Real-ESRGAN", github.com/xinntao/Real-ESRGAN `srvgg_arch.py`)
    standard_key_names(keys)        → {file key: key above}: unwraps BasicSR `params_ema.` / `params.` and a
                                      `module.` prefix, renames old-style ESRGAN (`model.N`) and ESRGAN-repo
                                      (`RRDB_trunk.N`) files to the Real-ESRGAN names
    detect_architecture(state_dict) → RRDBNetConfig | SRVGGNetCompactConfig, from key names and shapes
    build_upscaler(state_dict)      → the network with the weights loaded (strict)

Both networks map (B, 3, H, W) in [0, 1] to (B, 3, H·scale, W·scale) and accept any H, W
(`size_multiple` says what the input must be divisible by; the tiler pads to it).
Old-style ESRGAN checkpoints (`model.0.weight`, ...: 4x-UltraSharp, Remacri and most A1111 upscalers) hold
the same network under the names of its original `nn.Sequential`; `standard_key_names` renames them (1×, 2×, 4×
and 8× files: 0-3 upsampling stages). Other architectures (SwinIR, DAT, ...) and old-style variants with
pixel-shuffle upsampling are not supported: UnknownUpscalerError names what was found.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class UnknownUpscalerError(ValueError):
    """A state dict that is none of the supported upscaler architectures (or is malformed)."""


# --------------------------------------------------------------------------------------------- RRDBNet

@dataclass(frozen=True)
class RRDBNetConfig:
    num_in_ch: int = 3
    num_out_ch: int = 3
    scale: int = 4          # the output scale: 2 ** num_upsample, or less when the input is pixel-unshuffled
                            # first (Real-ESRGAN x2plus: scale 2 with two ×2 stages)
    num_feat: int = 64
    num_block: int = 23     # 23 for x4plus, 6 for x4plus_anime_6B
    num_grow_ch: int = 32
    num_upsample: int = 2   # nearest ×2 stages (conv_up1..N): Real-ESRGAN always 2; old ESRGAN 1× / 2× / 8× files
                            # have 0 / 1 / 3


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3×3 convs; the output is scaled by 0.2 and added to the input (ESRGAN §3.1)."""

    def __init__(self, num_feat: int, num_grow_ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lrelu = F.leaky_relu
        x1 = lrelu(self.conv1(x), 0.2)
        x2 = lrelu(self.conv2(torch.cat((x, x1), 1)), 0.2)
        x3 = lrelu(self.conv3(torch.cat((x, x1, x2), 1)), 0.2)
        x4 = lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)), 0.2)
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, residual scaled by 0.2."""

    def __init__(self, num_feat: int, num_grow_ch: int):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN generator; a `scale` below 2 ** num_upsample pixel-unshuffles the input first (Real-ESRGAN x2plus
    and x1: the body still upsamples ×4)."""

    def __init__(self, config: RRDBNetConfig = RRDBNetConfig()):
        super().__init__()
        self.config = config
        self.scale = config.scale
        self.size_multiple = 2 ** config.num_upsample // config.scale
        in_ch = config.num_in_ch * self.size_multiple ** 2
        f = config.num_feat
        self.conv_first = nn.Conv2d(in_ch, f, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(f, config.num_grow_ch) for _ in range(config.num_block)])
        self.conv_body = nn.Conv2d(f, f, 3, 1, 1)
        for stage in range(1, config.num_upsample + 1):
            setattr(self, f"conv_up{stage}", nn.Conv2d(f, f, 3, 1, 1))     # conv_up1, conv_up2, ...
        self.conv_hr = nn.Conv2d(f, f, 3, 1, 1)
        self.conv_last = nn.Conv2d(f, config.num_out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size_multiple > 1:
            x = F.pixel_unshuffle(x, self.size_multiple)                           # (B, 3·s², H/s, W/s)
        feat = self.conv_first(x)                                                  # (B, F, h, w)
        feat = feat + self.conv_body(self.body(feat))
        for stage in range(1, self.config.num_upsample + 1):
            conv_up = getattr(self, f"conv_up{stage}")
            feat = F.leaky_relu(conv_up(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))              # (B, 3, 2^N·h, 2^N·w)


# ------------------------------------------------------------------------------------- SRVGGNetCompact

@dataclass(frozen=True)
class SRVGGNetCompactConfig:
    num_in_ch: int = 3
    num_out_ch: int = 3
    num_feat: int = 64
    num_conv: int = 16      # 16 for animevideov3 / 32 for general-x4v3: the convs between first and last
    upscale: int = 4


class SRVGGNetCompact(nn.Module):
    """`body` = [conv, PReLU] + num_conv × [conv, PReLU] + [conv to out·upscale²]; then pixel shuffle
    and add the nearest-upsampled input (so the network only learns the residual)."""

    def __init__(self, config: SRVGGNetCompactConfig = SRVGGNetCompactConfig()):
        super().__init__()
        self.config = config
        self.scale = config.upscale
        self.size_multiple = 1
        f = config.num_feat
        layers: list[nn.Module] = [nn.Conv2d(config.num_in_ch, f, 3, 1, 1), nn.PReLU(num_parameters=f)]
        for _ in range(config.num_conv):
            layers += [nn.Conv2d(f, f, 3, 1, 1), nn.PReLU(num_parameters=f)]
        layers.append(nn.Conv2d(f, config.num_out_ch * config.upscale ** 2, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(config.upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)                                                  # (B, 3, sH, sW)
        return out + F.interpolate(x, scale_factor=self.scale, mode="nearest")


# ------------------------------------------------------------------------------------------- key names

WRAPPER_PREFIXES = ("params_ema.", "params.")   # BasicSR: the EMA weights are the ones to use, so they come first

_OLD_ESRGAN_DENSE = re.compile(r"model\.1\.sub\.(\d+)\.RDB([123])\.conv([1-5])\.0\.(weight|bias)$")
_OLD_ESRGAN_TRUNK = re.compile(r"model\.1\.sub\.(\d+)\.(weight|bias)$")
_OLD_ESRGAN_TOP = re.compile(r"model\.(\d+)\.(weight|bias)$")
_ESRGAN_REPO_NAMES = (                           # github.com/xinntao/ESRGAN RRDBNet_arch.py (2019) → Real-ESRGAN
    (re.compile(r"RRDB_trunk\.(\d+)\.RDB([123])\.(conv[1-5])\."), r"body.\1.rdb\2.\3."),
    (re.compile(r"trunk_conv\."), "conv_body."),
    (re.compile(r"upconv(\d+)\."), r"conv_up\1."),
    (re.compile(r"HRconv\."), "conv_hr."),
)


def unwrapped_key_names(keys: Iterable[str]) -> dict[str, str]:
    """{file key: key without BasicSR's `params_ema.` / `params.` wrapper and DataParallel's `module.`}.

    A flattened BasicSR file (safetensors cannot nest) holds `params_ema.*` and often `params.*` too: only the
    first wrapper present is kept, EMA first, as BasicSR's own loader does; keys outside it are left out.
    """
    keys = list(keys)
    prefix = next((p for p in WRAPPER_PREFIXES if any(k.startswith(p) for k in keys)), "")
    return {key: key.removeprefix(prefix).removeprefix("module.") for key in keys if key.startswith(prefix)}


def old_esrgan_key_names(keys: Iterable[str]) -> dict[str, str]:
    """{old-style ESRGAN key: Real-ESRGAN key} for every key (unknown ones unchanged, so the strict load names them).

    The old generator (ESRGAN 2018, used by 4x-UltraSharp, Remacri and most A1111 upscalers) is one flattened
    `nn.Sequential`: model.0 is conv_first; model.1 a shortcut whose `sub` holds the RRDBs (`sub.N.RDBk.convj.0`:
    each conv sits in a [conv, LeakyReLU] Sequential) and then the trunk conv (`sub.<blocks>`, conv_body); then
    [Upsample, conv, LeakyReLU] per ×2 stage, [conv_hr, LeakyReLU] and conv_last. Only convs have weights, so
    N stages put the convs at model.3, 6, ..., 3N, then 3N+2 and 3N+4 (4×: 3, 6, 8, 10; 2×: 3, 5, 7; 1×: 2, 4).
    Raises UnknownUpscalerError for other positions (pixel-shuffle upsampling puts its convs at 2, 5, ...).
    """
    keys = list(keys)
    top = sorted({int(m.group(1)) for k in keys if (m := _OLD_ESRGAN_TOP.match(k)) and m.group(1) not in ("0", "1")})
    stages = len(top) - 2
    expected = [3 * stage for stage in range(1, stages + 1)] + [3 * stages + 2, 3 * stages + 4]
    if top != expected:
        raise UnknownUpscalerError(f"old-style ESRGAN file with convs at model.{top}; the plain ESRGAN layout "
                                   f"(nearest-neighbour ×2 stages) has them at model.3, 6, ..., then 3N+2 and 3N+4: "
                                   f"a variant (pixel-shuffle upsampling, extra layers) that is not supported")
    top_names = {0: "conv_first", expected[-2]: "conv_hr", expected[-1]: "conv_last",
                 **{index: f"conv_up{stage}" for stage, index in enumerate(expected[:-2], start=1)}}
    trunk = {m.group(1) for k in keys if (m := _OLD_ESRGAN_TRUNK.match(k))}
    names = {}
    for key in keys:
        if (m := _OLD_ESRGAN_DENSE.match(key)):
            names[key] = f"body.{m.group(1)}.rdb{m.group(2)}.conv{m.group(3)}.{m.group(4)}"
        elif (m := _OLD_ESRGAN_TRUNK.match(key)) and len(trunk) == 1:
            names[key] = f"conv_body.{m.group(2)}"
        elif (m := _OLD_ESRGAN_TOP.match(key)) and int(m.group(1)) in top_names:
            names[key] = f"{top_names[int(m.group(1))]}.{m.group(2)}"
        else:
            names[key] = key
    return names


def esrgan_repo_key_names(keys: Iterable[str]) -> dict[str, str]:
    """{key: Real-ESRGAN key} for the ESRGAN repository's 2019 names (`RRDB_trunk.N.RDBk`, `trunk_conv`, `upconvN`,
    `HRconv`; RRDB_ESRGAN_x4.pth): the same network, renamed when BasicSR took it over."""
    names = {}
    for key in keys:
        name = key
        for pattern, replacement in _ESRGAN_REPO_NAMES:
            name = pattern.sub(replacement, name, count=1) if pattern.match(name) else name
        names[key] = name
    return names


def standard_key_names(keys: Iterable[str]) -> dict[str, str]:
    """{file key: the key RRDBNet / SRVGGNetCompact use}: wrappers and `module.` removed, old ESRGAN names renamed.

    Keys outside a BasicSR wrapper are left out. Raises UnknownUpscalerError when two file keys would give the same
    name (say `conv_first.weight` and `module.conv_first.weight`): which one the file means cannot be told.
    """
    unwrapped = unwrapped_key_names(keys)
    bare = list(unwrapped.values())
    if "model.0.weight" in bare:
        renamed = old_esrgan_key_names(bare)
    elif any(key.startswith("RRDB_trunk.") for key in bare):
        renamed = esrgan_repo_key_names(bare)
    else:
        renamed = {key: key for key in bare}
    names = {key: renamed[name] for key, name in unwrapped.items()}
    if len(set(names.values())) < len(names):
        seen: dict[str, str] = {}
        clash = next((seen[n], k) for k, n in names.items() if seen.setdefault(n, k) != k)
        raise UnknownUpscalerError(f"keys {clash[0]} and {clash[1]} both name {names[clash[0]]}; the file holds "
                                   f"two copies of the network: keep one")
    return names


# ------------------------------------------------------------------------------------------- detection

def _shape(state_dict: dict, key: str) -> tuple[int, ...]:
    return tuple(state_dict[key].shape)


def detect_architecture(state_dict: dict) -> RRDBNetConfig | SRVGGNetCompactConfig:
    """The architecture and configuration a state dict was saved from, from its keys and shapes."""
    keys = set(state_dict)
    try:
        if "conv_first.weight" in keys and "conv_last.weight" in keys:
            num_feat, in_ch = _shape(state_dict, "conv_first.weight")[:2]
            num_out_ch = _shape(state_dict, "conv_last.weight")[0]
            if num_out_ch < 1 or num_feat < 1:
                raise UnknownUpscalerError(f"RRDBNet conv_first / conv_last with {num_feat} / {num_out_ch} "
                                           f"output channels (a damaged file)")
            blocks = {int(m.group(1)) for k in keys if (m := re.match(r"body\.(\d+)\.rdb1\.conv1\.weight$", k))}
            if not blocks:
                raise UnknownUpscalerError("has conv_first / conv_last but no body.N.rdb1 blocks (not an RRDBNet)")
            num_grow_ch = _shape(state_dict, "body.0.rdb1.conv1.weight")[0]
            stages = sorted(int(m.group(1)) for k in keys if (m := re.match(r"conv_up(\d+)\.weight$", k)))
            if stages != list(range(1, len(stages) + 1)):
                raise UnknownUpscalerError(f"RRDBNet upsampling convs conv_up{stages} are not numbered 1..N "
                                           f"(a damaged file)")
            upsample = 2 ** len(stages)
            size_multiple = {1: 1, 4: 2, 16: 4}.get(in_ch // num_out_ch) if in_ch % num_out_ch == 0 else None
            if size_multiple is None or size_multiple > upsample:
                raise UnknownUpscalerError(f"RRDBNet conv_first takes {in_ch} channels for {num_out_ch} output "
                                           f"channels with {len(stages)} ×2 upsampling stages; expected ×1, or ×4 / "
                                           f"×16 (pixel-unshuffled input) with enough stages to undo it")
            return RRDBNetConfig(num_in_ch=in_ch // size_multiple ** 2, num_out_ch=num_out_ch,
                                 scale=upsample // size_multiple, num_feat=num_feat, num_block=max(blocks) + 1,
                                 num_grow_ch=num_grow_ch, num_upsample=len(stages))
        conv_ids = sorted(int(m.group(1)) for k in keys if (m := re.match(r"body\.(\d+)\.weight$", k))
                          and len(state_dict[k].shape) == 4)
        if conv_ids and "body.0.bias" in keys:
            if "body.1.weight" not in keys:
                raise UnknownUpscalerError("SRVGGNetCompact without PReLU weights (relu / leakyrelu variants) "
                                           "is not supported")
            num_feat, in_ch = _shape(state_dict, "body.0.weight")[:2]
            last_out = _shape(state_dict, f"body.{conv_ids[-1]}.weight")[0]
            if in_ch < 1 or num_feat < 1:
                raise UnknownUpscalerError(f"SRVGGNetCompact first conv with {in_ch} inputs / {num_feat} outputs "
                                           f"(a damaged file)")
            num_conv = len(conv_ids) - 2
            if conv_ids != list(range(0, 2 * (num_conv + 1) + 1, 2)):
                raise UnknownUpscalerError(f"SRVGGNetCompact body convs at unexpected indices {conv_ids[:6]}...")
            upscale = round((last_out / in_ch) ** 0.5)
            if upscale ** 2 * in_ch != last_out:
                raise UnknownUpscalerError(f"SRVGGNetCompact last conv gives {last_out} channels, not in·scale²")
            return SRVGGNetCompactConfig(num_in_ch=in_ch, num_out_ch=in_ch, num_feat=num_feat, num_conv=num_conv,
                                         upscale=upscale)
    except (KeyError, AttributeError) as exc:
        raise UnknownUpscalerError(f"malformed upscaler state dict: missing or bad {exc}") from None
    sample = ", ".join(sorted(keys)[:6])
    hint = (" (old-style ESRGAN keys `model.N`: rename them with standard_key_names first)"
            if "model.0.weight" in keys else "")
    raise UnknownUpscalerError(f"unknown upscaler architecture{hint}: {len(keys)} keys such as {sample}; "
                               f"supported: RRDBNet (ESRGAN / Real-ESRGAN) and SRVGGNetCompact")


def build_upscaler(state_dict: dict) -> RRDBNet | SRVGGNetCompact:
    """Detect the architecture, build it and load the weights strictly (eval mode, float32).

    The sizes come from key names and single tensor shapes, so the network is built on the meta device
    first (stopped as soon as it outgrows the file's tensors) and its shapes compared with the file's:
    memory is allocated only for a network the file fills exactly.
    """
    from nodes.models.loading import ModelLoadError, build_on_meta

    config = detect_architecture(state_dict)
    architecture = RRDBNet if isinstance(config, RRDBNetConfig) else SRVGGNetCompact
    try:
        net = build_on_meta(lambda: architecture(config), tensors=len(state_dict), what=architecture.__name__,
                            elements=sum(v.numel() for v in state_dict.values()))
    except ModelLoadError as exc:
        raise UnknownUpscalerError(str(exc)) from None
    mismatch = _mismatch(net.state_dict(), state_dict)
    if mismatch:
        raise UnknownUpscalerError(f"{architecture.__name__} {config}: the weights do not fit: {mismatch}")
    net.load_state_dict({k: v.float() for k, v in state_dict.items()}, strict=True, assign=True)
    return net.eval().requires_grad_(False)


def _mismatch(expected: dict, state_dict: dict) -> str:
    """The first few missing, unexpected or wrongly shaped keys ('' when the file fits exactly)."""
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [f"{k} {list(state_dict[k].shape)} (needs {list(v.shape)})" for k, v in expected.items()
              if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
    parts = [(label, items) for label, items in (("missing", missing), ("unexpected", unexpected),
                                                 ("wrong shape", shapes)) if items]
    return "; ".join(f"{label} {len(items)}: {', '.join(items[:3])}{', ...' if len(items) > 3 else ''}"
                     for label, items in parts)
