"""LoRA: reading low-rank weight updates in the formats users meet, and patching them into our models.

Reference: Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models" (§4.1: a frozen
weight ``W`` gets ``ΔW = B A``, scaled by ``alpha / r``); LoCon / LyCORIS extend it to convs and add
LoHa (Hadamard product of two low-rank products, Hyeon-Woo et al. 2022 "FedPara") and LoKr (Kronecker
product, Yeh et al. 2024 "Navigating Text-To-Image Customization: From LyCORIS Fine-Tuning to Model
Evaluation"); DoRA (Liu et al. 2024, "DoRA: Weight-Decomposed Low-Rank Adaptation", eq. 5) rescales
``W + ΔW`` to a learned magnitude.

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
- LyCORIS, in the kohya naming above (``lora_unet_<name>.<part>``) or peft's (``<name>.<part>``):
  LoCon's CP-decomposed convs (``lora_mid.weight`` between a 1x1 ``lora_down`` and ``lora_up``);
  LoHa (``hada_w1_a``, ``hada_w1_b``, ``hada_w2_a``, ``hada_w2_b``, CP convs add ``hada_t1`` /
  ``hada_t2``); LoKr (``lokr_w1`` or ``lokr_w1_a`` / ``lokr_w1_b``, ``lokr_w2`` or ``lokr_w2_a`` /
  ``lokr_w2_b``, CP convs add ``lokr_t2``); DoRA on any of them (LyCORIS' ``dora_scale``, peft's
  ``lora_magnitude_vector``). ``LoraPatch``, ``LohaPatch`` and ``LokrPatch`` hold one module each.

Kohya names are not split back into dots (``proj_in`` vs ``proj.in`` is ambiguous), and
diffusers names cannot be turned into ours without the UNet's layout (ResBlocks per level,
which up-levels have attention). So ``LoraWeights`` keeps the file's names and matching happens
in ``apply_loras`` against the model itself: every Linear / Conv2d of the model is known by its
own name, its diffusers name, and both with dots turned into underscores.

Patching (exact by construction): for every patched module the untouched weight ``W0`` is
kept (as the module attribute ``lora_original_weight``), and each ``apply_loras`` computes

    W = cast( W0.float() + Σ_k (strength_k · scale_k) · ΔW_k )

on the weight's device, in float32, with ``ΔW`` flattened to (out, in·kh·kw) and reshaped to the
weight, ``scale`` = alpha / rank, and per network type
    LoRA / LoCon   ΔW = up @ down                   (CP conv: up @ (mid ×₂ down))
    LoHa           ΔW = (w1_a @ w1_b) ⊙ (w2_a @ w2_b)   (CP conv: (t1 ×₁ w1_a ×₂ w1_b) ⊙ (t2 ...))
    LoKr           ΔW = w1 ⊗ w2, each side full or a product ``_a @ _b`` (``w2`` also CP); scale 1
                   unless a side is factorised (LyCORIS ``modules/lokr.py``: "use scale = 1")
    DoRA           W ← W + strength · (m · V / ‖V‖ − W) with V = W + scale · ΔW, the norm taken per
                   output (peft, LyCORIS ``wd_on_out``: m is (out,) or (out, 1[, 1, 1])) or per
                   input channel (m is (1, in[, 1, 1])), as the magnitude's shape says (ComfyUI
                   ``weight_adapter/base.py:weight_decompose``; at strength 1 it is peft's merged weight)
So stacking is order-independent up to float addition (a DoRA rescales the sum of the updates
before it in the list), removal restores ``W0`` bitwise, and strength 0 touches nothing. ``W0`` is
the very tensor the model held (no copy, e.g. still the memory-mapped file on CPU) unless
``backup_device`` asks to move it (e.g. to ``"cpu"`` to save GPU memory).

Never applied half-way: a module whose weights cannot be applied (OFT / BOFT / GLoRA / IA3,
full-weight ``diff``, bias updates, a part this loader does not know, a shape that fits nothing)
makes ``apply_loras`` raise and change nothing, because the other modules alone would draw a
picture the LoRA does not make; ``allow_partial=True`` (Python only) applies the rest and reports.
Keys that target no part of an SD model at all (``ignored``) are only reported.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
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
    "LohaPatch",
    "LokrPatch",
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
    (".lora_mid.weight", "mid"),  # LoCon CP-decomposed conv (LyCORIS use_tucker)
    (".dora_scale", "dora_scale"),  # DoRA magnitude, LyCORIS: (out, 1[, 1, 1]) or (1, in[, 1, 1])
    (".lora_magnitude_vector", "magnitude_vector"),  # DoRA magnitude, peft: one per output
    (".lora_magnitude_vector.weight", "magnitude_vector"),
    *((f".hada_{name}", f"hada_{name}") for name in ("w1_a", "w1_b", "w2_a", "w2_b", "t1", "t2")),  # LoHa
    *((f".lokr_{name}", f"lokr_{name}") for name in ("w1", "w1_a", "w1_b", "w2", "w2_a", "w2_b", "t2")),  # LoKr
    (".lora_B.bias", "unsupported: LoRA bias update"),
    (".diff", "unsupported: full-weight diff"),
    (".diff_b", "unsupported: full-weight diff"),
)
_UNSUPPORTED_NETWORKS = re.compile(r"\.(oft_|boft_|glora_)")  # LyCORIS OFT, BOFT, GLoRA
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
_KOHYA_PREFIXES = tuple(prefix for prefix, _, flat in _PREFIXES if flat)
_METADATA_KEY = "lora_adapter_metadata"  # diffusers' peft LoraConfig per target, keys "unet.lora_alpha" ...


# --- parsed LoRA files --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LoraPatch:
    """One module's low-rank update ``ΔW = scale · up @ down`` (Hu et al. 2021, eq. 3).

    LoCon's CP-decomposed convs (LyCORIS ``use_tucker``) add ``mid``: ``down`` is then a 1x1 conv to the
    rank, ``mid`` the rank x rank kernel, so ``ΔW[o, i, kh, kw] = Σ up[o, r] · mid[r, s, kh, kw] · down[s, i]``
    (LyCORIS ``modules/locon.py:make_weight``).
    """

    down: torch.Tensor  # (rank, in) for Linear, (rank, in, kh, kw) for Conv2d; (rank, in, 1, 1) with mid
    up: torch.Tensor  # (out, rank) or (out, rank, 1, 1)
    scale: float  # alpha / rank (1.0 when the file gives no alpha); rsLoRA: alpha / sqrt(rank)
    mid: torch.Tensor | None = None  # (rank, rank, kh, kw): LoCon CP
    magnitude: torch.Tensor | None = None  # DoRA's m: see _decomposed

    @property
    def rank(self) -> int:
        return self.down.shape[0]

    @cached_property
    def update_shape(self) -> tuple[int, int]:
        """(out, in·kh·kw) of the weight this update fits (found on the meta device: no arithmetic)."""
        return tuple(self.delta(torch.device("meta")).shape)

    def delta(self, device: torch.device) -> torch.Tensor:
        """``up @ down`` in float32 on `device`, flattened to (out, in·kh·kw); ``scale`` not applied."""
        up = _float32(self.up, device).flatten(1)  # (out, rank)
        down = _float32(self.down, device).flatten(1)  # (rank, in*kh*kw); with mid (rank, in)
        if self.mid is not None:
            down = torch.einsum("rskl,si->rikl", _float32(self.mid, device), down).flatten(1)  # (rank, in*kh*kw)
        return up @ down  # (out, in*kh*kw)


@dataclass(frozen=True, eq=False)
class LohaPatch:
    """LyCORIS LoHa: ``ΔW = scale · (w1_a @ w1_b) ⊙ (w2_a @ w2_b)`` (Hadamard product; FedPara, eq. 2).

    With ``t1`` / ``t2`` (CP-decomposed convs) each factor is the Tucker product ``t ×₁ w_a ×₂ w_b``, with
    ``w_a`` (rank, out) and ``w_b`` (rank, in) (LyCORIS ``functional/loha.py``, peft ``loha/layer.py``).
    """

    w1_a: torch.Tensor  # (out, rank); (rank, out) with t1
    w1_b: torch.Tensor  # (rank, in·kh·kw); (rank, in) with t1
    w2_a: torch.Tensor
    w2_b: torch.Tensor
    scale: float  # alpha / rank, rank = w1_b.shape[0] (as in ComfyUI's and A1111's LoHa)
    t1: torch.Tensor | None = None  # (rank, rank, kh, kw)
    t2: torch.Tensor | None = None
    magnitude: torch.Tensor | None = None  # DoRA's m: see _decomposed

    @property
    def rank(self) -> int:
        return self.w1_b.shape[0]

    @cached_property
    def update_shape(self) -> tuple[int, int]:
        """(out, in·kh·kw) of the weight this update fits."""
        return tuple(self.delta(torch.device("meta")).shape)

    def delta(self, device: torch.device) -> torch.Tensor:
        """The Hadamard product in float32 on `device`, flattened to (out, in·kh·kw); ``scale`` not applied."""
        first = _low_rank_factor(self.w1_a, self.w1_b, self.t1, device)
        second = _low_rank_factor(self.w2_a, self.w2_b, self.t2, device)
        if first.shape != second.shape:  # a Hadamard product must not broadcast
            raise ValueError(f"the two factors are {list(first.shape)} and {list(second.shape)}")
        return first * second


@dataclass(frozen=True, eq=False)
class LokrPatch:
    """LyCORIS LoKr: ``ΔW = scale · w1 ⊗ w2`` (Kronecker product; LyCORIS ``functional/lokr.py:diff_weight``).

    Each side is stored whole (``w1`` (a, c), ``w2`` (b, d[, kh, kw])) or as a product ``_a @ _b``; ``w2``
    may be CP-decomposed (``t2`` ×₁ ``w2_a`` ×₂ ``w2_b``). The weight is (a·b, c·d[, kh, kw]).
    """

    w1: torch.Tensor | None
    w1_a: torch.Tensor | None
    w1_b: torch.Tensor | None
    w2: torch.Tensor | None
    w2_a: torch.Tensor | None
    w2_b: torch.Tensor | None
    scale: float  # alpha / rank when a side is factorised, else 1 (LyCORIS sets alpha = rank then)
    t2: torch.Tensor | None = None
    magnitude: torch.Tensor | None = None  # DoRA's m: see _decomposed

    @cached_property
    def update_shape(self) -> tuple[int, int]:
        """(out, in·kh·kw) of the weight this update fits."""
        return tuple(self.delta(torch.device("meta")).shape)

    def delta(self, device: torch.device) -> torch.Tensor:
        """``w1 ⊗ w2`` in float32 on `device`, flattened to (out, in·kh·kw); ``scale`` not applied.

        Flattening ``w2`` to (b, d·kh·kw) before the product gives the same numbers as LyCORIS' 4-D
        ``kron(w1[..., None, None], w2)`` flattened: column c·(d·kh·kw) + j is input c·d + j // (kh·kw).
        """
        w1 = _float32(self.w1, device) if self.w1 is not None else _low_rank_factor(self.w1_a, self.w1_b, None, device)
        if self.w2 is not None:
            w2 = _float32(self.w2, device)
        else:
            w2 = _low_rank_factor(self.w2_a, self.w2_b, self.t2, device)
        if w1.ndim != 2 and math.prod(w1.shape[2:]) != 1:
            raise ValueError(f"lokr_w1 is {list(w1.shape)}; LoKr's first factor is a matrix")
        return torch.kron(w1.flatten(1).contiguous(), w2.flatten(1).contiguous())  # (a*b, c*d*kh*kw); kron views


AnyPatch = LoraPatch | LohaPatch | LokrPatch


def _float32(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    return tensor.to(device=device, dtype=torch.float32)


def _low_rank_factor(a: torch.Tensor, b: torch.Tensor, core: torch.Tensor | None, device) -> torch.Tensor:
    """``a @ b`` flattened to (out, in·kh·kw), or with a CP core the Tucker product ``core ×₁ a ×₂ b``
    (a (rank, out), b (rank, in), core (rank, rank, kh, kw); peft ``make_weight_cp``) flattened the same way."""
    a, b = _float32(a, device), _float32(b, device)
    if core is None:
        return a.flatten(1) @ b.flatten(1)
    return torch.einsum("ijkl,jr,ip->prkl", _float32(core, device), b, a).flatten(1)  # (out, in*kh*kw)


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
    patches: dict[Target, dict[str, AnyPatch]]
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
        if network := _UNSUPPORTED_NETWORKS.search(key):
            if located := _locate(key[: network.start()]):
                unsupported.setdefault(located[0], {})[located[1]] = "LyCORIS OFT / BOFT / GLoRA is not supported"
            else:
                ignored[key] = "LyCORIS OFT / BOFT / GLoRA weights are not supported"
            continue
        suffix, part = next(((s, p) for s, p in _PARTS if key.endswith(s)), (None, None))
        if suffix is None:
            stem, dot, rest = key.partition(".")  # kohya names hold no dot: the module ends at the first one
            if dot and stem.startswith(_KOHYA_PREFIXES) and (located := _locate(stem)):
                unsupported.setdefault(located[0], {})[located[1]] = (
                    f"unknown part .{rest[:60]} (not LoRA, LoCon, LoHa, LoKr or DoRA) is not supported")
            else:
                ignored[key] = "not a LoRA part (lora_down / lora_up / lora_A / lora_B / alpha / hada_* / lokr_*)"
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
    patches: dict[Target, dict[str, AnyPatch]] = {}
    for (target, module), found in parts.items():
        if module in unsupported.get(target, {}):
            continue  # e.g. a module with an OFT part: applying its other parts alone would be wrong
        try:
            patch = _patch_from_parts({part: tensors[key] for part, key in found.items()}, found, path,
                                      lambda rank: config_alpha(target, module, rank))
        except _NotApplicable as why:
            unsupported.setdefault(target, {})[module] = str(why)
            continue
        patches.setdefault(target, {})[module] = patch

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
            "it is for another architecture or uses a network type this loader does not read (it reads LoRA, "
            "LoCon, LoHa and LoKr, with or without DoRA; not OFT, BOFT, GLoRA, IA3 or full-weight diffs)",
            path,
        )
    return lora


class _NotApplicable(Exception):
    """A module's parts that cannot be applied; the message is the reason shown to the user."""


_NETWORK_PARTS = {  # network -> (parts it needs, parts it may have); alpha and DoRA's magnitude go with any
    "LoRA": ({"down", "up"}, {"mid"}),
    "LoHa": ({"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"}, {"hada_t1", "hada_t2"}),
    "LoKr": (set(), {"lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2"}),
}
_FILE_PART_NAMES = {"down": "lora_down", "up": "lora_up", "mid": "lora_mid"}


def _patch_from_parts(weights: dict[str, torch.Tensor], keys: dict[str, str], path: Path | None,
                      config_scale) -> AnyPatch:
    """One module's patch from its parts (part name -> tensor; `keys`: part name -> file key).

    `config_scale(rank)` is the scale a LoRA without an ``.alpha`` key gets (diffusers' metadata).
    Raises _NotApplicable naming what is missing, mixed or malformed.
    """
    names = set(weights) - {"alpha", "dora_scale", "magnitude_vector"}
    networks = [net for net, (needed, optional) in _NETWORK_PARTS.items() if names & (needed | optional)]
    if len(networks) != 1:
        raise _NotApplicable("incomplete: only an alpha or DoRA magnitude, no weights" if not networks else
                             f"malformed: mixes {' and '.join(networks)} weights in one module")
    network = networks[0]
    needed = _NETWORK_PARTS[network][0]
    if missing := sorted(needed - names):
        shown = ", ".join(_FILE_PART_NAMES.get(part, part) for part in missing)
        raise _NotApplicable(f"incomplete {network}: no {shown} weight" if network == "LoRA" else
                             f"incomplete {network}: no {shown}")
    magnitude = _dora_magnitude(weights)

    def scale(rank: int) -> float:
        if rank < 1:
            raise _NotApplicable(f"malformed {network}: a rank of {rank}")
        if "alpha" in weights:
            return _alpha_tensor_scale(weights["alpha"], keys["alpha"], rank, path)
        return config_scale(rank) if network == "LoRA" else 1.0     # LyCORIS: no alpha means alpha = rank

    if network == "LoRA":
        down, up = weights["down"], weights["up"]
        if down.ndim not in (2, 4) or up.ndim not in (2, 4) or up.flatten(1).shape[1] != down.shape[0]:
            raise _NotApplicable(f"malformed: lora_down {list(down.shape)} and lora_up {list(up.shape)} do not share "
                                 f"a rank of 1 or more")
        patch = LoraPatch(down=down, up=up, scale=scale(down.shape[0]), mid=weights.get("mid"), magnitude=magnitude)
    elif network == "LoHa":
        if ("hada_t1" in names) != ("hada_t2" in names):
            raise _NotApplicable("incomplete LoHa: hada_t1 and hada_t2 come together")
        w = {part.removeprefix("hada_"): tensor for part, tensor in weights.items() if part.startswith("hada_")}
        patch = LohaPatch(**w, scale=scale(w["w1_b"].shape[0] if w["w1_b"].ndim else 0), magnitude=magnitude)
    else:
        w = {part.removeprefix("lokr_"): tensor for part, tensor in weights.items() if part.startswith("lokr_")}
        for side in ("w1", "w2"):
            whole, factors = side in w, f"{side}_a" in w and f"{side}_b" in w
            if whole == factors or (not factors and (f"{side}_a" in w or f"{side}_b" in w)):
                raise _NotApplicable(f"incomplete LoKr: give lokr_{side}, or lokr_{side}_a with lokr_{side}_b")
        if "t2" in w and "w2" in w:
            raise _NotApplicable("malformed LoKr: lokr_t2 goes with lokr_w2_a / lokr_w2_b, not lokr_w2")
        factorised = w.get("w2_b", w.get("w1_b"))  # the rank, as ComfyUI's LoKr reads it (LyCORIS: the same)
        rank_scale = scale(factorised.shape[0] if factorised.ndim else 0) if factorised is not None else 1.0
        patch = LokrPatch(**{name: w.get(name) for name in ("w1", "w1_a", "w1_b", "w2", "w2_a", "w2_b", "t2")},
                          scale=rank_scale, magnitude=magnitude)
    try:
        patch.update_shape  # noqa: B018 - multiplies the shapes on the meta device: malformed files fail here
    except (RuntimeError, ValueError, IndexError) as exc:
        shapes = ", ".join(f"{_FILE_PART_NAMES.get(part, part)} {list(tensor.shape)}"
                           for part, tensor in weights.items() if part in names)
        raise _NotApplicable(f"malformed {network}: {shapes} do not combine ({str(exc).splitlines()[0][:120]})")
    return patch


def _dora_magnitude(weights: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """DoRA's magnitude m, or None: LyCORIS' ``dora_scale`` as stored, peft's per-output vector as (out, 1)."""
    if "dora_scale" in weights and "magnitude_vector" in weights:
        raise _NotApplicable("malformed DoRA: both a dora_scale and a lora_magnitude_vector")
    if "magnitude_vector" in weights:   # peft: (out,) for Linear, (1, out, 1, 1) for Conv2d, always per output
        return weights["magnitude_vector"].reshape(-1, 1)
    return weights.get("dora_scale")


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
    that fit no module (no such name, wrong shape) or cannot be applied (OFT, a missing part...);
    ``apply_loras`` raises instead of applying such a LoRA unless ``allow_partial``.
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
    allow_partial: bool = False,
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
        allow_partial: apply a LoRA of which some modules cannot be applied (their reasons are in
            its report's ``unmatched``) instead of raising. The nodes never set it: the rest of
            such a LoRA draws a picture the LoRA does not make.

    Returns:
        One ``LoraReport`` per LoRA, in order (``summary()`` for a warning when not ``complete``).

    Raises:
        ModelLoadError: a LoRA has entries for this model's targets but none fits (e.g. an SDXL
            LoRA on an SD 1.x UNet), or (without `allow_partial`) some of them cannot be applied
            (a network type or part this loader does not read, a module this model lacks, a
            shape that does not fit); nothing is changed then.
    """
    parts = _parts_of(model, target)
    modules = {prefix: dict(module.named_modules()) for prefix, module in parts.values()}
    aliases = {prefix: _aliases(module) for prefix, module in parts.values()}
    plan: dict[str, list[tuple[AnyPatch, float]]] = {}  # our full module name -> (update, strength) in order
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
                if patch.update_shape != (out_features, in_features):
                    unmatched.append(
                        f"{part_target}/{file_name}: update {patch.update_shape[0]}x{patch.update_shape[1]} "
                        f"does not fit weight {list(weight.shape)}"
                    )
                    continue
                if patch.magnitude is not None and _dora_axis(patch.magnitude, weight.shape) is None:
                    unmatched.append(
                        f"{part_target}/{file_name}: DoRA magnitude {list(patch.magnitude.shape)} fits neither the "
                        f"outputs nor the inputs of weight {list(weight.shape)}"
                    )
                    continue
                patched.append(prefix + ours)
                if strength != 0:
                    plan.setdefault(prefix + ours, []).append((patch, strength))
        entries = sum(len(lora.patches.get(t, {})) for t in parts)
        if entries and not patched:
            raise ModelLoadError(_nothing_fits(lora, model, entries, unmatched), lora.path)
        if unmatched and not allow_partial:
            raise ModelLoadError(_partly_fits(lora, model, len(patched), unmatched), lora.path)
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
def _write(named_modules, plan: dict[str, list[tuple[AnyPatch, float]]], backup_device) -> None:
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
        for patch, strength in updates:
            total = _updated(total, patch, strength)
        weight.data = total.to(weight.dtype)
        setattr(module, _APPLIED_ATTRIBUTE, updates)


def _nothing_fits(lora: LoraWeights, model: nn.Module, entries: int, unmatched: list[str]) -> str:
    """Why a LoRA fits none of a model's modules, with a family hint from cross-attention widths."""
    message = f"none of this LoRA's {entries} entries for this {type(model).__name__} fit it ({_examples(unmatched)})"
    lora_width = next(
        (p.update_shape[1] for n, p in lora.patches.get("unet", {}).items() if re.search(r"attn2[._]to_k$", n)),
        None,
    )
    if isinstance(model, UNetModel) and lora_width and lora_width != model.config.context_dim:
        family = {768: "SD 1.x", 1024: "SD 2.x", 2048: "SDXL"}.get(lora_width)
        message += (
            f"; its cross-attention reads {lora_width}-wide text" + (f" ({family})" if family else "")
            + f" but this UNet's reads {model.config.context_dim}: use it with "
            + (f"an {family} checkpoint" if family and family.startswith("SD") else "the checkpoint it was made for")
        )
    return message + "; if the file is for another model family, load a matching checkpoint"


def _partly_fits(lora: LoraWeights, model: nn.Module, fitting: int, unmatched: list[str]) -> str:
    """Why a LoRA of which only some modules can be applied is refused, naming those that cannot."""
    return (f"{len(unmatched)} of this LoRA's {fitting + len(unmatched)} modules for this {type(model).__name__} "
            f"cannot be applied ({_examples(unmatched)}); the other {fitting} alone would draw a different picture "
            f"than the LoRA makes, so none is applied. Use a LoRA made for this model family in a format this "
            f"loader reads (LoRA, LoCon, LoHa, LoKr, with or without DoRA; docs/models.md, LoRA)")


def _updated(weight: torch.Tensor, patch: AnyPatch, strength: float) -> torch.Tensor:
    """`weight` (float32) with one update at `strength`: ``+ strength·scale·ΔW``, or for a DoRA
    ``+ strength·(m·V/‖V‖ − weight)`` with ``V = weight + scale·ΔW`` (ComfyUI's weight_decompose)."""
    delta = patch.delta(weight.device).reshape(weight.shape)
    if patch.magnitude is None:
        return weight + (strength * patch.scale) * delta
    decomposed = _decomposed(weight + patch.scale * delta, patch.magnitude)
    return decomposed if strength == 1 else weight + strength * (decomposed - weight)


def _dora_axis(magnitude: torch.Tensor, weight_shape: Sequence[int]) -> int | None:
    """0 when DoRA's magnitude has one number per output ((out,) or (out, 1[, 1, 1])), 1 when one per input
    channel ((1, in[, 1, 1])), None when it fits neither."""
    shape = tuple(magnitude.shape)
    if shape and shape[0] == weight_shape[0] and math.prod(shape[1:]) == 1:
        return 0
    if len(shape) >= 2 and shape[0] == 1 and shape[1] == weight_shape[1] and math.prod(shape[2:]) == 1:
        return 1
    return None


def _decomposed(merged: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """DoRA (Liu et al. 2024, eq. 5): ``m · V / ‖V‖``, the norm per output row or per input channel."""
    axis = _dora_axis(magnitude, merged.shape)
    assert axis is not None, "apply_loras checks the magnitude's shape"
    norm = merged.transpose(0, axis).flatten(1).norm(dim=1)  # (out,) or (in,): over everything else
    norm = norm.clamp_min(torch.finfo(torch.float32).tiny)  # an all-zero row stays zero instead of NaN
    shape = [1] * merged.ndim
    shape[axis] = -1
    return merged * (magnitude.to(merged).flatten() / norm).reshape(shape)


def _examples(items, count: int = 3) -> str:
    items = list(items)
    shown = "; ".join(items[:count])
    return shown + (f"; ... {len(items) - count} more" if len(items) > count else "")
