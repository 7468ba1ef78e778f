"""LoRA: reading low-rank weight updates in the formats users meet, and patching them into our models.

Reference: Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models" (§4.1: a frozen
weight ``W`` gets ``ΔW = B A``, scaled by ``alpha / r``); LoCon / LyCORIS extend it to convs.

Map
- ``load_lora(path) -> LoraWeights``: parse a LoRA file; ``lora_from_state_dict`` does the same
  for tensors in memory. Entries are grouped by target (``"unet"``, ``"text_encoder"``,
  ``"text_encoder_2"``) and keyed by the file's module name, normalised (see below).
- ``apply_loras(model, [(lora, strength), ...]) -> [LoraReport, ...]``: set the LoRAs patched
  into a ``UNetModel``, a ``PromptEncoder`` (each encoder gets its target) or a single
  ``CLIPTextModel``; an empty list removes them. ``remove_loras(model)`` is that empty list.
- ``LoraReport``: per LoRA, the modules patched and the entries that fit nothing, with reasons;
  ``summary()`` is a one-line warning.
- ``diffusers_unet_names(unet)``: our UNet's module names -> diffusers ``UNet2DConditionModel``
  names (the inverse of ``convert.unet_from_diffusers``), used to match diffusers-named LoRAs.

Formats read (``lora_down`` = ``lora_A`` = ``down`` is (rank, in[, kh, kw]), ``lora_up`` =
``lora_B`` = ``up`` is (out, rank[, 1, 1]))
- kohya / A1111 (sd-scripts, LyCORIS LoCon): ``lora_unet_<name>.lora_down.weight``,
  ``.lora_up.weight``, ``.alpha``; ``lora_te_`` (SD 1.x / 2.x) or ``lora_te1_`` / ``lora_te2_``
  (SDXL) for text encoders. ``<name>`` is a module path with dots turned into underscores, in
  our (LDM) naming (``input_blocks_4_1_proj_in``, SDXL files) or in diffusers naming
  (``down_blocks_1_attentions_0_proj_in``, sd-scripts' SD 1.x files).
- diffusers / peft: ``unet.<diffusers name>.lora_A.weight`` / ``.lora_B.weight``,
  ``text_encoder.`` / ``text_encoder_2.`` + HF CLIP names; alpha from ``.alpha`` keys or from
  the ``lora_adapter_metadata`` JSON that diffusers writes (``lora_alpha``, ``alpha_pattern``,
  ``use_rslora``; checked when read, its pattern keys matched as plain dotted suffixes, never as
  regexes); without either, alpha = rank (scale 1). Also the older diffusers spellings
  ``...to_q_lora.down.weight``, ``...to_q.lora.down.weight``, ``...lora_linear_layer.down.weight``
  (with or without ``.processor``), peft's ``base_model.model.`` prefix, and ComfyUI's
  ``diffusion_model.<LDM name>``.

Kohya names are not split back into dots (``proj_in`` vs ``proj.in`` is ambiguous), and
diffusers names cannot be turned into ours without the UNet's layout (ResBlocks per level,
which up-levels have attention). So ``LoraWeights`` keeps the file's names and matching happens
in ``apply_loras`` against the model itself: every Linear / Conv2d of the model is known by its
own name, its diffusers name, and both with dots turned into underscores.

Patching (exact by construction): for every patched module the untouched weight ``W0`` is
kept (as the module attribute ``lora_original_weight``), and each ``apply_loras`` computes

    W = cast( W0.float() + Σ_k (strength_k · alpha_k / rank_k) · (up_k.float() @ down_k.float()) )

on the weight's device (convs: ``up.flatten(1) @ down.flatten(1)`` reshaped to the weight).
So stacking is order-independent up to float addition, removal restores ``W0`` bitwise, and
strength 0 touches nothing. ``W0`` is the very tensor the model held (no copy, e.g. still the
memory-mapped file on CPU) unless ``backup_device`` asks to move it (e.g. to ``"cpu"`` to save
GPU memory). Not read: LoHa / LoKr, DoRA, LoCon's CP-decomposed ``lora_mid``, full-weight
``diff`` entries, bias updates; they are reported, never applied half-way.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from .clip import CLIPTextModel, PromptEncoder
from .detect import ModelLoadError, describe_file_kind, read_json_text
from .flux import FluxModel
from .mmdit import MMDiT
from .sd3 import SD3TextEncoder
from .loading import open_state_dict
from .unet import Downsample, ResBlock, SpatialTransformer, UNetModel, Upsample

__all__ = [
    "LoraPatch",
    "LoraReport",
    "LoraWeights",
    "apply_loras",
    "diffusers_unet_names",
    "load_lora",
    "lora_from_state_dict",
    "remove_loras",
]

Target = Literal["unet", "text_encoder", "text_encoder_2"]
TARGETS: tuple[Target, ...] = ("unet", "text_encoder", "text_encoder_2")
ORIGINAL_ATTRIBUTE = "lora_original_weight"  # on each patched module: the weight before any LoRA
_APPLIED_ATTRIBUTE = "lora_applied"  # on each patched module: ((patch, coefficient), ...) now in its weight

# Key suffix -> which part of a module's LoRA it is. Order matters only for readability: no
# suffix ends another one.
_PARTS = (
    (".lora_down.weight", "down"),
    (".lora_up.weight", "up"),
    (".lora_A.weight", "down"),
    (".lora_B.weight", "up"),
    (".lora.down.weight", "down"),
    (".lora.up.weight", "up"),
    (".lora_linear_layer.down.weight", "down"),
    (".lora_linear_layer.up.weight", "up"),
    ("_lora.down.weight", "down"),  # old diffusers attention processors: to_q_lora.down.weight
    ("_lora.up.weight", "up"),
    (".alpha", "alpha"),
    (".lora_mid.weight", "unsupported: LoCon CP-decomposed lora_mid"),
    (".dora_scale", "unsupported: DoRA"),
    (".lora_magnitude_vector", "unsupported: DoRA"),
    (".lora_B.bias", "unsupported: LoRA bias update"),
    (".diff", "unsupported: full-weight diff"),
    (".diff_b", "unsupported: full-weight diff"),
)
_UNSUPPORTED_NETWORKS = re.compile(r"\.(hada_|lokr_|oft_|boft_|glora_)")  # LoHa, LoKr, OFT, BOFT, GLoRA
# File prefix -> (target, names are kohya-flattened).
_PREFIXES: tuple[tuple[str, Target, bool], ...] = (
    ("lora_unet_", "unet", True),
    ("lora_te1_", "text_encoder", True),
    ("lora_te2_", "text_encoder_2", True),
    ("lora_te_", "text_encoder", True),
    ("unet.", "unet", False),
    ("text_encoder.", "text_encoder", False),
    ("text_encoder_2.", "text_encoder_2", False),
    ("model.diffusion_model.", "unet", False),
    ("diffusion_model.", "unet", False),
)
_UNET_ROOTS = (
    "down_blocks.", "mid_block.", "up_blocks.", "conv_in", "conv_out", "time_embedding.", "add_embedding.",
    "input_blocks.", "middle_block.", "output_blocks.", "time_embed.", "label_emb.", "out.",
)  # fmt: skip
_METADATA_KEY = "lora_adapter_metadata"  # diffusers' peft LoraConfig per target, keys "unet.lora_alpha" ...


# --- parsed LoRA files --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LoraPatch:
    """One module's low-rank update ``ΔW = scale · up @ down`` (Hu et al. 2021, eq. 3)."""

    down: torch.Tensor  # (rank, in) for Linear, (rank, in, kh, kw) for Conv2d
    up: torch.Tensor  # (out, rank) or (out, rank, 1, 1)
    scale: float  # alpha / rank (1.0 when the file gives no alpha); rsLoRA: alpha / sqrt(rank)

    @property
    def rank(self) -> int:
        return self.down.shape[0]

    def delta(self, device: torch.device) -> torch.Tensor:
        """``up @ down`` in float32 on `device`, flattened to (out, in·kh·kw); ``scale`` not applied."""
        up = self.up.to(device=device, dtype=torch.float32).flatten(1)  # (out, rank)
        down = self.down.to(device=device, dtype=torch.float32).flatten(1)  # (rank, in*kh*kw)
        return up @ down  # (out, in*kh*kw)


@dataclass(frozen=True, eq=False)
class LoraWeights:
    """A parsed LoRA file.

    ``patches[target][name]``: ``name`` is the file's module name after its target prefix:
    kohya-flattened (``input_blocks_4_1_proj_in``) or dotted (``down_blocks.1.attentions.0.proj_in``,
    with the old diffusers spellings normalised to current module names). ``unsupported``
    holds entries of known targets that cannot be applied (name -> reason); ``ignored`` holds
    keys that belong to no SD target or are not LoRA parts at all (key -> reason).
    """

    name: str
    patches: dict[Target, dict[str, LoraPatch]]
    unsupported: dict[Target, dict[str, str]] = field(default_factory=dict)
    ignored: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)     # the safetensors header's (kohya's ss_* keys)

    def __len__(self) -> int:
        return sum(len(entries) for entries in self.patches.values())

    @property
    def targets(self) -> tuple[Target, ...]:
        return tuple(target for target in TARGETS if self.patches.get(target))


def trigger_words(lora: LoraWeights) -> set[str]:
    """The lower-case words of a LoRA's caption tags (kohya's `ss_tag_frequency` header: {dataset: {tag: count}},
    which TrainLoRA writes too); an empty set when the header has none or it is not that JSON."""
    import json
    import re

    try:
        datasets = json.loads(lora.metadata.get("ss_tag_frequency") or "{}")
    except (ValueError, RecursionError):       # a header nested 100,000 deep failed EncodeText itself
        return set()
    tags = [tag for counts in (datasets.values() if isinstance(datasets, dict) else ()) if isinstance(counts, dict)
            for tag in counts if isinstance(tag, str)]
    return {word for tag in tags[:100_000] for word in re.findall(r"[^\W_]+(?:'[^\W_]+)*", tag.lower())}


def load_lora(path: str | os.PathLike, *, allow_pickle: bool = False) -> LoraWeights:
    """Read a LoRA file (``.safetensors``; pickles only with ``allow_pickle``) into ``LoraWeights``.

    Raises:
        ModelLoadError: the file is missing or damaged, is not a LoRA (e.g. a checkpoint), or
            holds no LoRA entry this loader can apply to an SD UNet or CLIP text encoder.
    """
    tensors = open_state_dict(path, allow_pickle=allow_pickle)
    return lora_from_state_dict(tensors, tensors.metadata, name=Path(path).name, path=Path(path))


def lora_from_state_dict(
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str] | None = None,
    *,
    name: str = "LoRA",
    path: Path | None = None,
) -> LoraWeights:
    """Parse a LoRA state dict (any format in the module docstring); `metadata` is the safetensors header's."""
    parts: dict[tuple[Target, str], dict[str, str]] = {}  # (target, module) -> part -> file key
    unsupported: dict[Target, dict[str, str]] = {}
    ignored: dict[str, str] = {}
    for key in tensors:
        if _UNSUPPORTED_NETWORKS.search(key):
            ignored[key] = "LyCORIS LoHa / LoKr / OFT / GLoRA weights are not supported"
            continue
        suffix, part = next(((s, p) for s, p in _PARTS if key.endswith(s)), (None, None))
        if suffix is None:
            ignored[key] = "not a LoRA part (lora_down / lora_up / lora_A / lora_B / alpha)"
            continue
        located = _locate(key[: -len(suffix)])
        if located is None:
            ignored[key] = "targets no SD UNet or CLIP text encoder (unknown key prefix)"
            continue
        target, module = located
        if part.startswith("unsupported"):
            unsupported.setdefault(target, {})[module] = part.removeprefix("unsupported: ") + " is not supported"
        else:
            parts.setdefault((target, module), {})[part] = key

    config_alpha = _metadata_alphas(metadata, path)
    patches: dict[Target, dict[str, LoraPatch]] = {}
    for (target, module), found in parts.items():
        if module in unsupported.get(target, {}):
            continue  # e.g. a DoRA module: applying its plain low-rank part would be wrong
        if "down" not in found or "up" not in found:
            missing = "lora_up" if "down" in found else "lora_down"
            unsupported.setdefault(target, {})[module] = f"incomplete: no {missing} weight"
            continue
        down, up = tensors[found["down"]], tensors[found["up"]]
        rank = down.shape[0]
        if down.ndim not in (2, 4) or up.ndim not in (2, 4) or up.flatten(1).shape[1] != rank or rank == 0:
            unsupported.setdefault(target, {})[module] = (
                f"malformed: lora_down {list(down.shape)} and lora_up {list(up.shape)} do not share a rank of 1 "
                f"or more"
            )
            continue
        if "alpha" in found:
            scale = _alpha_tensor_scale(tensors[found["alpha"]], found["alpha"], rank, path)
        else:
            scale = config_alpha(target, module, rank)
        patches.setdefault(target, {})[module] = LoraPatch(down=down, up=up, scale=scale)

    header = {k: v for k, v in (metadata or {}).items() if isinstance(k, str) and isinstance(v, str)}
    lora = LoraWeights(name=name, patches=patches, unsupported=unsupported, ignored=ignored, path=path,
                       metadata=header)
    if not len(lora):
        kind = describe_file_kind(tensors)
        if kind != "a LoRA":
            raise ModelLoadError(
                f"expected a LoRA (keys like lora_unet_*.lora_down.weight or unet.*.lora_A.weight), found {kind}; "
                "load checkpoints, VAEs and ControlNets with their own loaders",
                path,
            )
        reasons = {**{f"{t}/{m}": r for t, entries in unsupported.items() for m, r in entries.items()}, **ignored}
        raise ModelLoadError(
            f"this LoRA has no entry that can patch an SD UNet or CLIP text encoder: "
            f"{_examples(f'{name}: {reason}' for name, reason in reasons.items())}; "
            "it is for another architecture or uses a network type (LoHa, LoKr, DoRA...) that is not supported",
            path,
        )
    return lora


def _locate(module: str) -> tuple[Target, str] | None:
    """(target, normalised module name) of a key with its part suffix removed; None if no target."""
    module = module.removeprefix("base_model.model.")  # peft's PeftModel.save_pretrained
    for prefix, target, flat in _PREFIXES:
        if module.startswith(prefix):
            name = module[len(prefix) :]
            return target, name if flat else _normalise(name, target)
    if module.startswith(_UNET_ROOTS):
        return "unet", _normalise(module, "unet")
    if module.startswith("text_model."):
        return "text_encoder", _normalise(module, "text_encoder")
    return None


def _normalise(name: str, target: Target) -> str:
    """Current module names for old diffusers spellings (``attn1.processor.to_out`` -> ``attn1.to_out.0``)."""
    name = name.replace(".processor.", ".")
    if target == "unet":
        return re.sub(r"\.to_out$", ".to_out.0", name)
    return re.sub(r"self_attn\.to_(q|k|v|out)$", lambda m: f"self_attn.{m[1]}_proj", name)


MAX_ALPHA = 1e5  # real files use alpha <= a few times the rank (ranks reach the thousands); beyond is no LoRA


def _adapter_config(metadata: Mapping[str, str] | None, path: Path | None) -> dict:
    """The checked ``lora_adapter_metadata`` JSON ({} when absent): a present but unreadable one is an error."""
    text = (metadata or {}).get(_METADATA_KEY)
    if not text:
        return {}
    what = f'metadata "{_METADATA_KEY}"'
    config = read_json_text(text, what, path)
    if not isinstance(config, dict):
        raise ModelLoadError(f"{what} must be a JSON object, found {type(config).__name__}; fix or remove it", path)
    for target in TARGETS:
        if f"{target}.lora_alpha" in config:
            _check_alpha(config[f"{target}.lora_alpha"], f"{what} {target}.lora_alpha", path)
        if f"{target}.r" in config:
            _check_rank(config[f"{target}.r"], f"{what} {target}.r", path)
        if not isinstance(config.get(f"{target}.use_rslora", False), bool):
            raise ModelLoadError(f"{what} {target}.use_rslora must be true or false", path)
        for field, check in ((f"{target}.alpha_pattern", _check_alpha), (f"{target}.rank_pattern", _check_rank)):
            patterns = config.get(field) or {}
            if not isinstance(patterns, dict):
                raise ModelLoadError(f"{what} {field} must map module names to numbers, found "
                                     f"{type(patterns).__name__}", path)
            for name, value in patterns.items():
                check(value, f"{what} {field}[{name[:80]!r}]", path)
    return config


def _check_alpha(value: object, what: str, path: Path | None) -> float:
    """A LoRA alpha: a finite number in [0, MAX_ALPHA], else a ModelLoadError naming `what`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_ALPHA:
        raise ModelLoadError(f"{what} is {value!r}; a LoRA alpha is a number from 0 to {MAX_ALPHA:g} (usually the "
                             f"rank or half of it): the file is damaged or was not written as a LoRA", path)
    return float(value)


def _check_rank(value: object, what: str, path: Path | None) -> int:
    """A LoRA rank: a whole number of at least 1, else a ModelLoadError naming `what`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelLoadError(f"{what} is {value!r}; a LoRA rank is a whole number of at least 1", path)
    return value


def matches_module(pattern: str, module: str) -> bool:
    """peft's pattern rule, without regexes: `pattern` is `module` or a suffix of it after a '.'."""
    return module == pattern or module.endswith("." + pattern)


def _metadata_alphas(metadata: Mapping[str, str] | None, path: Path | None = None):
    """``scale(target, module, rank)`` from diffusers' ``lora_adapter_metadata`` (peft LoraConfig per target).

    ``alpha_pattern`` keys are module names or dotted suffixes of them (peft's ``get_pattern_key``); they come
    from the file, so they are compared as plain strings, never compiled as regular expressions.
    """
    config = _adapter_config(metadata, path)

    def scale(target: Target, module: str, rank: int) -> float:
        alpha = config.get(f"{target}.lora_alpha")
        if alpha is None:
            return 1.0  # what diffusers and peft assume when nothing says otherwise
        patterns = config.get(f"{target}.alpha_pattern") or {}
        alpha = next((value for pattern, value in patterns.items() if matches_module(pattern, module)), alpha)
        root = math.sqrt(rank) if config.get(f"{target}.use_rslora") else rank
        return float(alpha) / root

    return scale


def _alpha_tensor_scale(tensor: torch.Tensor, key: str, rank: int, path: Path | None) -> float:
    """alpha / rank from a ``.alpha`` key: one finite number in [0, MAX_ALPHA], else a ModelLoadError naming the key.
    An alpha of 0 means "the rank" (scale 1), as in kohya's sd-scripts, which wrote these files."""
    if tensor.numel() != 1:
        raise ModelLoadError(f"{key} holds {tensor.numel()} numbers; a LoRA alpha is one number", path)
    alpha = _check_alpha(float(tensor), key, path)
    return 1.0 if alpha == 0 else alpha / rank


# --- matching file names to our modules ---------------------------------------------------------

_RESBLOCK_TO_DIFFUSERS = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "skip_connection": "conv_shortcut",
}


def diffusers_unet_names(unet: UNetModel) -> dict[str, str]:
    """Our UNet's module names (with weights) -> diffusers ``UNet2DConditionModel`` module names."""
    per_level = unet.config.num_res_blocks + 1  # LDM counts the downsample as an input block
    blocks = {  # our prefix -> (diffusers prefix, is a ResBlock)
        "time_embed.0": ("time_embedding.linear_1", False),
        "time_embed.2": ("time_embedding.linear_2", False),
        "label_emb.0.0": ("add_embedding.linear_1", False),
        "label_emb.0.2": ("add_embedding.linear_2", False),
        "input_blocks.0.0": ("conv_in", False),
        "out.0": ("conv_norm_out", False),
        "out.2": ("conv_out", False),
    }

    def add(prefix: str, block: nn.Sequential, theirs: str, position: int) -> None:
        for child, layer in enumerate(block):
            if isinstance(layer, ResBlock):
                blocks[f"{prefix}.{child}"] = (f"{theirs}.resnets.{position}", True)
            elif isinstance(layer, SpatialTransformer):
                blocks[f"{prefix}.{child}"] = (f"{theirs}.attentions.{position}", False)
            elif isinstance(layer, Downsample):
                blocks[f"{prefix}.{child}.op"] = (f"{theirs}.downsamplers.0.conv", False)
            elif isinstance(layer, Upsample):
                blocks[f"{prefix}.{child}.conv"] = (f"{theirs}.upsamplers.0.conv", False)

    for index in range(1, len(unet.input_blocks)):
        level, position = divmod(index - 1, per_level)
        add(f"input_blocks.{index}", unet.input_blocks[index], f"down_blocks.{level}", position)
    for index, block in enumerate(unet.output_blocks):
        level, position = divmod(index, per_level)
        add(f"output_blocks.{index}", block, f"up_blocks.{level}", position)
    resnets = 0
    for child, layer in enumerate(unet.middle_block):
        if isinstance(layer, ResBlock):
            blocks[f"middle_block.{child}"] = (f"mid_block.resnets.{resnets}", True)
            resnets += 1
        else:
            blocks[f"middle_block.{child}"] = ("mid_block.attentions.0", False)

    names = {}
    for name, module in unet.named_modules():
        if not isinstance(getattr(module, "weight", None), torch.Tensor):
            continue
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):  # the longest known block prefix
            prefix, rest = ".".join(parts[:cut]), ".".join(parts[cut:])
            if prefix in blocks:
                theirs, resnet = blocks[prefix]
                if resnet:
                    rest = _RESBLOCK_TO_DIFFUSERS.get(rest)
                if rest is not None:
                    names[name] = f"{theirs}.{rest}" if rest else theirs
                break
    return names


def _aliases(module: nn.Module) -> dict[str, str]:
    """Every name a LoRA file may use for each patchable (Linear / Conv2d) module -> our name."""
    ours = [name for name, m in module.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if isinstance(module, UNetModel):
        diffusers = diffusers_unet_names(module)
        spellings = {name: (name, diffusers.get(name, name)) for name in ours}
    else:  # CLIP text model: HF names, also without the text_model. level (transformers >= 5)
        spellings = {name: (name, name.removeprefix("text_model.")) for name in ours}
    aliases: dict[str, str] = {}
    for name, names in spellings.items():
        for alias in names:
            for spelling in (alias, alias.replace(".", "_")):
                assert aliases.setdefault(spelling, name) == name, f"{spelling} names two modules"
    return aliases


def _parts_of(model: nn.Module, target: Target | None) -> dict[Target, tuple[str, nn.Module]]:
    """target -> (name prefix inside `model`, the module that target patches)."""
    if isinstance(model, (UNetModel, FluxModel, MMDiT)):   # Flux / SD3: kohya names are their original keys
        parts: dict[Target, tuple[str, nn.Module]] = {"unet": ("", model)}
    elif isinstance(model, PromptEncoder):
        # SDXL: text_encoder = CLIP-L, text_encoder_2 = bigG (diffusers' and kohya's te1 / te2);
        # SD 1.x / 2.x: text_encoder = its only encoder; the refiner's bigG is text_encoder_2.
        parts = {
            ("text_encoder_2" if name == "clip_g" else "text_encoder"): (f"encoders.{name}.", encoder)
            for name, encoder in model.encoders.items()
        }
    elif isinstance(model, CLIPTextModel):
        parts = {target or "text_encoder": ("", model)}
    elif isinstance(model, SD3TextEncoder):  # CLIP-L = text_encoder, CLIP-G = text_encoder_2 (T5: none)
        parts = {role: (f"{name}.encoders.{name}.", getattr(model, name).encoders[name])
                 for role, name in (("text_encoder", "clip_l"), ("text_encoder_2", "clip_g"))
                 if getattr(model, name) is not None}
    else:
        raise TypeError(
            f"apply_loras patches a UNetModel, a FluxModel, an MMDiT, a PromptEncoder, an SD3TextEncoder or a "
            f"CLIPTextModel, got "
            f"{type(model).__name__}"
        )
    if target is not None:
        if target not in parts:
            raise ValueError(f"target={target!r} is not one of this model's targets {sorted(parts)}")
        parts = {target: parts[target]}
    return parts


# --- patching -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoraReport:
    """What one LoRA did to one model.

    ``patched``: our module names (relative to the model given) that received this LoRA's update.
    ``unmatched``: ``"<target>/<file module name>: reason"`` for entries of this model's targets
    that fit no module (no such name, wrong shape) or cannot be applied (LoHa, DoRA...).
    ``ignored``: file keys that target nothing this loader knows (same for every model).
    Counts are modules; a module is one down / up (/ alpha) group of keys.
    """

    lora: str
    strength: float
    patched: tuple[str, ...]
    unmatched: tuple[str, ...]
    ignored: tuple[str, ...]

    @property
    def complete(self) -> bool:
        """Every entry of the file for this model's targets was applied and nothing was ignored."""
        return not self.unmatched and not self.ignored

    def summary(self) -> str:
        """One line for a warning: counts and a few examples of what was not applied."""
        total = len(self.patched) + len(self.unmatched)
        text = f"{self.lora}: patched {len(self.patched)} of {total} modules"
        if self.unmatched:
            text += f"; {len(self.unmatched)} not applied ({_examples(self.unmatched)})"
        if self.ignored:
            text += f"; {len(self.ignored)} keys ignored ({_examples(self.ignored)})"
        return text


def apply_loras(
    model: nn.Module,
    loras: Sequence[tuple[LoraWeights, float]],
    *,
    target: Target | None = None,
    backup_device: torch.device | str | None = None,
) -> list[LoraReport]:
    """Make `loras` exactly the LoRAs patched into `model` (replacing earlier ones; ``[]`` removes all).

    Args:
        model: a ``UNetModel`` (target ``"unet"``), a ``PromptEncoder`` (``clip_l`` / ``clip_h``
            get ``"text_encoder"``, ``clip_g`` gets ``"text_encoder_2"``), or a single
            ``CLIPTextModel`` (``"text_encoder"`` unless `target` says otherwise).
        loras: ``(lora, strength)`` pairs; several stack (their updates add). Use separate
            calls on the UNet and on the text encoder to give them separate strengths.
        target: restrict a ``PromptEncoder`` to one target, or name a ``CLIPTextModel``'s.
        backup_device: where to keep the untouched weights (None: keep the original tensor
            where it is, no copy; ``"cpu"`` saves GPU memory at the price of one copy).

    Returns:
        One ``LoraReport`` per LoRA, in order (``summary()`` for a warning when not ``complete``).

    Raises:
        ModelLoadError: a LoRA has entries for this model's targets but none fits (e.g. an SDXL
            LoRA on an SD 1.x UNet); nothing is changed then.
    """
    parts = _parts_of(model, target)
    modules = {prefix: dict(module.named_modules()) for prefix, module in parts.values()}
    aliases = {prefix: _aliases(module) for prefix, module in parts.values()}
    plan: dict[str, list[tuple[LoraPatch, float]]] = {}  # our full module name -> updates in order
    reports = []
    for lora, strength in loras:
        patched, unmatched = [], []
        for part_target, (prefix, _) in parts.items():
            for file_name, reason in lora.unsupported.get(part_target, {}).items():
                unmatched.append(f"{part_target}/{file_name}: {reason}")
            for file_name, patch in lora.patches.get(part_target, {}).items():
                ours = aliases[prefix].get(file_name)
                if ours is None:
                    unmatched.append(f"{part_target}/{file_name}: no such module")
                    continue
                weight = modules[prefix][ours].weight
                out_features, in_features = weight.shape[0], math.prod(weight.shape[1:])
                if (patch.up.shape[0], math.prod(patch.down.shape[1:])) != (out_features, in_features):
                    unmatched.append(
                        f"{part_target}/{file_name}: update {patch.up.shape[0]}x{math.prod(patch.down.shape[1:])} "
                        f"does not fit weight {list(weight.shape)}"
                    )
                    continue
                patched.append(prefix + ours)
                if strength != 0:
                    plan.setdefault(prefix + ours, []).append((patch, strength * patch.scale))
        entries = sum(len(lora.patches.get(t, {})) for t in parts)
        if entries and not patched:
            raise ModelLoadError(_nothing_fits(lora, model, entries, unmatched), lora.path)
        reports.append(
            LoraReport(
                lora=lora.name,
                strength=strength,
                patched=tuple(patched),
                unmatched=tuple(unmatched),
                ignored=tuple(f"{key}: {reason}" for key, reason in lora.ignored.items()),
            )
        )
    named = ((prefix + name, sub) for prefix, part in parts.values() for name, sub in part.named_modules())
    _write(named, plan, backup_device)
    return reports


def remove_loras(model: nn.Module) -> None:
    """Restore every weight a LoRA patched in `model` (any module) to its original tensor, bitwise."""
    _write(model.named_modules(), {}, None)


@torch.no_grad()
def _write(named_modules, plan: dict[str, list[tuple[LoraPatch, float]]], backup_device) -> None:
    """Set each module's weight to its original plus the planned updates; restore modules not in `plan`."""
    for name, module in named_modules:
        updates = tuple(plan.get(name, ()))
        applied = getattr(module, _APPLIED_ATTRIBUTE, ())
        if len(updates) == len(applied) and all(
            a is b and x == y for (a, x), (b, y) in zip(updates, applied)
        ):  # fmt: skip
            continue  # already holds exactly these updates (or none, and was never patched)
        stored = getattr(getattr(module, "parametrizations", None), "weight", None)  # FP8-stored: precision.py
        weight = module.weight if stored is None else stored.original  # patched in FP8 (sum in fp32, rounded)
        if not hasattr(module, ORIGINAL_ATTRIBUTE):
            original = weight.data if backup_device is None else weight.data.to(backup_device, copy=True)
            setattr(module, ORIGINAL_ATTRIBUTE, original)
        original = getattr(module, ORIGINAL_ATTRIBUTE)
        if not updates:
            weight.data = original.to(device=weight.device, dtype=weight.dtype)
            delattr(module, ORIGINAL_ATTRIBUTE)
            delattr(module, _APPLIED_ATTRIBUTE)
            continue
        total = original.to(device=weight.device, dtype=torch.float32)  # a copy unless it is float32 already
        for patch, coefficient in updates:
            total = total + coefficient * patch.delta(weight.device).reshape(weight.shape)
        weight.data = total.to(weight.dtype)
        setattr(module, _APPLIED_ATTRIBUTE, updates)


def _nothing_fits(lora: LoraWeights, model: nn.Module, entries: int, unmatched: list[str]) -> str:
    """Why a LoRA fits none of a model's modules, with a family hint from cross-attention widths."""
    message = f"none of this LoRA's {entries} entries for this {type(model).__name__} fit it ({_examples(unmatched)})"
    lora_width = next(
        (p.down.shape[1] for n, p in lora.patches.get("unet", {}).items() if re.search(r"attn2[._]to_k$", n)), None
    )
    if isinstance(model, UNetModel) and lora_width and lora_width != model.config.context_dim:
        family = {768: "SD 1.x", 1024: "SD 2.x", 2048: "SDXL"}.get(lora_width)
        message += (
            f"; its cross-attention reads {lora_width}-wide text" + (f" ({family})" if family else "")
            + f" but this UNet's reads {model.config.context_dim}: use it with "
            + (f"an {family} checkpoint" if family and family.startswith("SD") else "the checkpoint it was made for")
        )
    return message + "; if the file is for another model family, load a matching checkpoint"


def _examples(items, count: int = 3) -> str:
    items = list(items)
    shown = "; ".join(items[:count])
    return shown + (f"; ... {len(items) - count} more" if len(items) > count else "")
