"""Model patches as values: wrap or replace UNet blocks, attention processors, and added modules.

A patch changes how a UNet computes without touching its weights or its module tree: the
MODEL value (``sampling.diffusion_model.DiffusionModel``) lists its patches next to its
LoRAs, and the UNet runs them only while they are set. So a cached base model and any
number of patched variants share one network, a patch is removed by dropping it from the
list, and two variants never see each other's patches. Plugins (video motion modules,
perturbed-attention guidance, attention-map readers) stand on these four kinds:

- ``LayerPatch(name, target, wrapper)``: wrap or replace one block or layer, addressed by
  its checkpoint key path: a block (``input_blocks.4``, ``middle_block``, ``output_blocks.2``)
  or one layer of it (``input_blocks.4.1`` = that block's SpatialTransformer, ``.0`` its
  ResBlock). ``wrapper(forward, h, call) -> h``: ``forward(h)`` runs the original (with the
  patches applied before this one); not calling it replaces the layer. ``call`` is a
  ``LayerCall`` (key, timestep embedding, text context).
- ``ModuleInsertion(name, module, after)``: run ``module(h, call) -> h`` right after each
  listed layer (e.g. a temporal layer after every SpatialTransformer:
  ``after=transformer_keys(unet)``). The module is moved to the activations' device and
  dtype on first use; it is never registered in the base model.
- ``AttentionPatch(name, processor, kind, targets)``: replace or wrap the attention of
  every ``CrossAttention`` whose key path starts with one of ``targets`` (empty: all) and
  whose kind matches (``"self"`` = ``attn1``, ``"cross"`` = ``attn2``, or ``"both"``).
  ``processor(q, k, v, call, attend) -> out`` gets q ``(B, heads, T, head_dim)``, k and v
  ``(B, heads, S, head_dim)`` (S = T for self-attention, the token count for cross), an
  ``AttentionCall`` (key, kind, heads, spatial (H, W) of the feature map) and ``attend``,
  the rest of the chain (finally ``default_attention``); it returns ``(B, heads, T,
  head_dim)``. ``attention_weights(q, k)`` gives the attention map ``(B, heads, T, S)``.
- ``AttentionMapRecorder``: an AttentionPatch that keeps the maps it sees (``maps[key]``).

Order (documented contract): patches are sorted by ``priority`` (ascending, default 0),
ties keep the order in which they were added to the model (the model's own first, then
patches given for one call, e.g. by a guidance term). A patch later in that order is
applied later, i.e. it is the OUTER one: its wrapper receives the layer already wrapped by
the earlier ones, its attention processor's ``attend`` is the earlier processors' chain,
and of two modules inserted after the same layer the earlier runs first.

Entry points: ``set_model_patches(unet, patches)`` (the MODEL value's patcher: LoRA pairs go
to ``lora.apply_loras``, ModelPatches are checked against the UNet and set), ``with_patch`` /
``without_patches`` (new MODEL values), ``check_patches`` (targets exist), ``layer_keys`` /
``attention_keys`` / ``transformer_keys`` (what can be addressed), ``ActivePatches`` (the
resolved set the UNet's forward runs; built only when a patch is set, so an unpatched UNet
pays nothing but a None check). ``PatchError(ValueError)`` is the module's error type.
"""

from __future__ import annotations

import difflib

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from nodegraph.interrupts import interrupt_point

__all__ = [
    "ActivePatches",
    "AttentionCall",
    "AttentionMapRecorder",
    "AttentionPatch",
    "LayerCall",
    "LayerPatch",
    "ModelPatch",
    "ModuleInsertion",
    "PatchError",
    "attention_keys",
    "attention_weights",
    "check_patches",
    "default_attention",
    "identity_attention",
    "layer_keys",
    "set_model_patches",
    "transformer_keys",
    "with_patch",
    "without_patches",
]

AttentionKind = Literal["self", "cross", "both"]
_LAYER_KEY = re.compile(r"^(input_blocks\.\d+|middle_block|output_blocks\.\d+)(\.\d+)?$")


class PatchError(ValueError):
    """A patch that cannot be applied (unknown target, wrong type); the message names the patch and the fix."""


# --- the patches --------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, kw_only=True)
class ModelPatch:
    """Base of every patch: a ``name`` (shown in errors, used to remove it) and a ``priority`` (lower first)."""

    name: str
    priority: int = 0

    def targets_in(self) -> tuple[str, ...]:
        """The layer key paths this patch needs (checked against the UNet when it is set)."""
        return ()


@dataclass(frozen=True, eq=False, kw_only=True)
class LayerCall:
    """What a layer wrapper or inserted module is told about the call: where, and the UNet's shared inputs."""

    key: str                                   # e.g. "input_blocks.4.1"
    emb: torch.Tensor                          # (B, time_embed_dim) timestep (+ label) embedding
    context: torch.Tensor                      # (B, T, context_dim) text hidden states


@dataclass(frozen=True, eq=False, kw_only=True)
class LayerPatch(ModelPatch):
    """Wrap or replace the block / layer at ``target``: ``wrapper(forward, h, call) -> h``."""

    target: str
    wrapper: Callable[[Callable[[torch.Tensor], torch.Tensor], torch.Tensor, LayerCall], torch.Tensor]

    def targets_in(self) -> tuple[str, ...]:
        return (self.target,)


@dataclass(frozen=True, eq=False, kw_only=True)
class ModuleInsertion(ModelPatch):
    """Run ``module(h, call) -> h`` after each layer in ``after`` (e.g. temporal layers after transformers)."""

    module: nn.Module
    after: tuple[str, ...]

    def targets_in(self) -> tuple[str, ...]:
        return tuple(self.after)

    def wrapper(self, forward: Callable, h: torch.Tensor, call: LayerCall) -> torch.Tensor:
        h = forward(h)
        parameter = next(self.module.parameters(), None)
        if parameter is not None and (parameter.device != h.device or parameter.dtype != h.dtype):
            self.module.to(device=h.device, dtype=h.dtype)
        return self.module(h, call)


@dataclass(frozen=True, eq=False, kw_only=True)
class AttentionCall:
    """Where an attention processor runs: module key path, kind, head count, feature-map size."""

    key: str                                   # e.g. "middle_block.1.transformer_blocks.0.attn1"
    kind: Literal["self", "cross"]
    heads: int
    spatial: tuple[int, int]                   # (H, W) of the feature map; T = H * W


@dataclass(frozen=True, eq=False, kw_only=True)
class AttentionPatch(ModelPatch):
    """Replace / wrap attention: ``processor(q, k, v, call, attend) -> out (B, heads, T, head_dim)``."""

    processor: Callable[..., torch.Tensor]
    kind: AttentionKind = "self"
    targets: tuple[str, ...] = ()              # key-path prefixes ("middle_block", "input_blocks.4.1"); () = all

    def __post_init__(self) -> None:
        if self.kind not in ("self", "cross", "both"):
            raise PatchError(f"attention patch {self.name!r}: kind must be 'self', 'cross' or 'both', "
                             f"found {self.kind!r}")

    def targets_in(self) -> tuple[str, ...]:
        return tuple(self.targets)

    def applies_to(self, key: str, kind: str) -> bool:
        """Whether this patch acts on the attention module at `key` of `kind`."""
        if self.kind != "both" and self.kind != kind:
            return False
        return not self.targets or any(key == t or key.startswith(t + ".") for t in self.targets)


class AttentionMapRecorder(AttentionPatch):
    """An AttentionPatch that stores each map it computes in ``maps[key]`` ((B, heads, T, S), detached).

    ``spatial[key]`` is the (H, W) feature grid of that map (T = H * W). The output equals
    default attention up to float rounding (the map is computed explicitly: softmax(q kᵀ /
    sqrt(d)) v). ``clear()`` empties both.
    """

    def __init__(self, name: str = "attention maps", kind: AttentionKind = "self", targets: Sequence[str] = (),
                 priority: int = 0):
        object.__setattr__(self, "maps", {})
        object.__setattr__(self, "spatial", {})
        super().__init__(name=name, processor=self._record, kind=kind, targets=tuple(targets), priority=priority)

    def _record(self, q, k, v, call: AttentionCall, attend) -> torch.Tensor:
        weights = attention_weights(q, k)  # (B, heads, T, S)
        self.maps[call.key] = weights.detach()
        self.spatial[call.key] = call.spatial
        return (weights @ v.float()).to(q.dtype)  # (B, heads, T, head_dim)

    def clear(self) -> None:
        self.maps.clear()
        self.spatial.clear()


# --- attention math -----------------------------------------------------------------------------


#: query-key scores one attention call computes between interrupt points (16 Mi: ~1 s on a 2-core CPU)
ATTENTION_SCORES_PER_SLICE = 1 << 24
MIN_SLICE_QUERIES = 16        # no slice smaller: many tiny calls would cost more than they save


def default_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q kᵀ / sqrt(d)) v via scaled_dot_product_attention (Vaswani et al. 2017, eq. 1).

    Past ATTENTION_SCORES_PER_SLICE scores it runs over slices of the queries with an interrupt point
    (nodegraph/interrupts.py) before each: every query's softmax is its own, so the result is the same, and
    one call at a large size — the VAE's attention over the 65,536 positions of a 2048² image took minutes on
    a CPU — can be stopped by a cancel or a time limit. On a GPU (fast, and where one fused kernel call beats
    many) it is one call."""
    queries, per_query = q.shape[-2], q.shape[:-2].numel() * k.shape[-2]
    if queries * per_query <= ATTENTION_SCORES_PER_SLICE or q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v)  # (B, heads, T, head_dim)
    rows = max(MIN_SLICE_QUERIES, ATTENTION_SCORES_PER_SLICE // per_query)
    out = q.new_empty(*q.shape[:-1], v.shape[-1])  # (B, heads, T, head_dim)
    for start in range(0, queries, rows):
        interrupt_point()
        out[..., start:start + rows, :] = F.scaled_dot_product_attention(q[..., start:start + rows, :], k, v)
    return out


def attention_weights(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The attention map softmax(q kᵀ / sqrt(d)) in float32: (B, heads, T, S), rows sum to 1."""
    scores = q.float() @ k.float().transpose(-1, -2) * q.shape[-1] ** -0.5  # (B, heads, T, S)
    return scores.softmax(dim=-1)


def identity_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Self-attention with the identity map (each token attends only to itself): out = v (Ahn et al. 2024)."""
    return v


# --- what can be addressed ----------------------------------------------------------------------


def layer_keys(unet: nn.Module) -> list[str]:
    """Key paths a LayerPatch / ModuleInsertion can target: every block and every layer of a block."""
    return [name for name, _ in unet.named_modules() if _LAYER_KEY.match(name)]


def attention_keys(unet: nn.Module) -> list[str]:
    """Key paths of every attention module (``...transformer_blocks.N.attn1`` self, ``attn2`` cross)."""
    return [name for name, _ in unet.named_modules() if name.endswith((".attn1", ".attn2"))]


def transformer_keys(unet: nn.Module) -> list[str]:
    """Key paths of every SpatialTransformer layer (where video models insert temporal layers)."""
    return [name for name, module in unet.named_modules()
            if _LAYER_KEY.match(name) and type(module).__name__ == "SpatialTransformer"]


def check_patches(unet: nn.Module, patches: Sequence[ModelPatch]) -> None:
    """Raise PatchError unless every patch is a ModelPatch whose targets exist in `unet`."""
    layers = set(layer_keys(unet))
    attention = attention_keys(unet)
    for index, patch in enumerate(patches):
        if not isinstance(patch, ModelPatch):
            raise PatchError(f"patches[{index}]: expected a ModelPatch (LayerPatch, ModuleInsertion, "
                             f"AttentionPatch), found {type(patch).__name__}")
        for target in patch.targets_in():
            if isinstance(patch, AttentionPatch):
                if not any(key == target or key.startswith(target + ".") for key in attention):
                    places = sorted({_layer_of(k) for k in attention})
                    close = difflib.get_close_matches(target, places, n=1, cutoff=0.8)
                    guess = f"did you mean {close[0]!r}? " if close else ""
                    raise PatchError(f"attention patch {patch.name!r}: no attention module under {target!r}; "
                                     f"{guess}attention lives under {_examples(places)}")
            elif target not in layers:
                close = difflib.get_close_matches(target, layers, n=1, cutoff=0.8)
                guess = f"did you mean {close[0]!r}? " if close else ""
                raise PatchError(f"patch {patch.name!r}: this UNet has no block or layer {target!r}; {guess}"
                                 f"valid keys are blocks and their layers, e.g. {_examples(sorted(layers))}")


def _layer_of(attention_key: str) -> str:
    return attention_key.split(".transformer_blocks.")[0]


def _examples(items: Sequence[str], count: int = 6) -> str:
    shown = ", ".join(items[:count])
    return shown + (f", ... ({len(items)} in all)" if len(items) > count else "")


# --- setting patches on a UNet and on MODEL values ----------------------------------------------


def set_model_patches(unet: nn.Module, patches: Sequence[Any]) -> list:
    """The MODEL value's patcher: make `patches` exactly what `unet` runs with.

    ``(LoraWeights, strength)`` pairs are weight patches (``lora.apply_loras``, whose reports
    are returned); ``ModelPatch`` objects are checked (``check_patches``) and set as the
    UNet's ``model_patches``, in order. ``[]`` restores the base model.
    """
    from .lora import apply_loras

    loras = [p for p in patches if isinstance(p, tuple)]
    model_patches = tuple(p for p in patches if not isinstance(p, tuple))
    if model_patches and not hasattr(unet, "model_patches"):
        raise PatchError(f"{type(unet).__name__} does not take model patches (only the UNet does); "
                         f"remove {model_patches[0].name!r} or use a UNet checkpoint")
    check_patches(unet, model_patches)
    reports = apply_loras(unet, loras)
    if hasattr(unet, "model_patches"):
        unet.model_patches = model_patches
    return reports


def with_patch(model: Any, patch: ModelPatch) -> Any:
    """A new MODEL value (a dataclass with ``patches``) with `patch` added last; `model` is unchanged."""
    if not isinstance(patch, ModelPatch):
        raise PatchError(f"with_patch: expected a ModelPatch, found {type(patch).__name__}")
    return _replace_patches(model, (*model.patches, patch))


def without_patches(model: Any, name: str) -> Any:
    """A new MODEL value without the model patches called `name` (PatchError if there is none)."""
    kept = tuple(p for p in model.patches if not (isinstance(p, ModelPatch) and p.name == name))
    if len(kept) == len(model.patches):
        names = [p.name for p in model.patches if isinstance(p, ModelPatch)]
        raise PatchError(f"without_patches: no patch named {name!r}; this model has {names or 'none'}")
    return _replace_patches(model, kept)


def _replace_patches(model: Any, patches: tuple) -> Any:
    changes: dict[str, Any] = {"patches": patches}
    if any(f.name == "_denoiser" for f in fields(model)):
        changes["_denoiser"] = None  # the adapter is rebuilt for the variant
    return replace(model, **changes)


# --- the resolved set the UNet runs -------------------------------------------------------------


@dataclass(eq=False)
class ActivePatches:
    """Patches resolved for one forward: layer wrappers by key, attention processors in order."""

    wrappers: dict[str, list[tuple[ModelPatch, Callable]]] = field(default_factory=dict)
    attention: list[AttentionPatch] = field(default_factory=list)
    _chains: dict[tuple[str, str], list[AttentionPatch]] = field(default_factory=dict)

    @classmethod
    def build(cls, *groups: Sequence[ModelPatch]) -> ActivePatches | None:
        """Resolve the model's patches then per-call ones (in this order); None when there are none."""
        ordered = [p for group in groups for p in group]
        if not ordered:
            return None
        for index, patch in enumerate(ordered):
            if not isinstance(patch, ModelPatch):
                raise PatchError(f"patches[{index}]: expected a ModelPatch, found {type(patch).__name__}")
        ordered = sorted(ordered, key=lambda p: p.priority)  # stable: ties keep their order
        active = cls()
        for patch in ordered:
            if isinstance(patch, AttentionPatch):
                active.attention.append(patch)
            elif isinstance(patch, (LayerPatch, ModuleInsertion)):
                for key in patch.targets_in():
                    active.wrappers.setdefault(key, []).append((patch, patch.wrapper))
            else:
                raise PatchError(f"patch {patch.name!r}: unknown patch kind {type(patch).__name__}")
        return active

    def run(self, key: str, forward: Callable[[torch.Tensor], torch.Tensor], h: torch.Tensor,
            emb: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """``forward(h)`` wrapped by the wrappers set at `key` (later wrapper outermost)."""
        wrappers = self.wrappers.get(key)
        if not wrappers:
            return forward(h)
        call = LayerCall(key=key, emb=emb, context=context)
        for patch, wrapper in wrappers:
            forward = _bind(patch, wrapper, forward, call)
        return forward(h)

    def attend(self, key: str, kind: Literal["self", "cross"], q: torch.Tensor, k: torch.Tensor,
               v: torch.Tensor, heads: int, spatial: tuple[int, int]) -> torch.Tensor:
        """Attention at `key` through the processors that apply there (default attention if none)."""
        chain = self._chains.get((key, kind))
        if chain is None:
            chain = self._chains[(key, kind)] = [p for p in self.attention if p.applies_to(key, kind)]
        if not chain:
            return default_attention(q, k, v)
        call = AttentionCall(key=key, kind=kind, heads=heads, spatial=spatial)
        attend = default_attention
        for patch in chain:
            attend = _bind_attention(patch, attend, call)
        return attend(q, k, v)


def _patch_failure(patch: ModelPatch, key: str, problem: str) -> PatchError:
    """A patch's failure named after the patch and the module (a plugin's) that made its function."""
    function = getattr(patch, "processor", None) or getattr(patch, "module", None) or getattr(patch, "wrapper", None)
    origin = getattr(function, "__module__", None) or type(function).__module__
    return PatchError(f"model patch {patch.name!r} ({type(patch).__name__}, function from {origin}) at {key!r}: "
                      f"{problem}; fix the patch, or remove it (without_patches / leave its node out)")


def _bind(patch: ModelPatch, wrapper: Callable, forward: Callable, call: LayerCall) -> Callable:
    """`wrapper(forward, h, call)`, its failures and a non-tensor result named after the patch. A ValueError
    passes through: it is a refusal with its own words (an inner patch's PatchError, a plugin's own error)."""
    def bound(h: torch.Tensor) -> torch.Tensor:
        try:
            out = wrapper(forward, h, call)
        except ValueError:      # a deliberate refusal with its own words (PatchError, a plugin's own error)
            raise
        except Exception as exc:  # noqa: BLE001 — the original is kept as __cause__
            raise _patch_failure(patch, call.key, f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(out, torch.Tensor):
            raise _patch_failure(patch, call.key, f"returned {type(out).__name__}, not a tensor")
        return out
    return bound


def _bind_attention(patch: AttentionPatch, attend: Callable, call: AttentionCall) -> Callable:
    """The patch's processor over `attend`; its failures and a result not shaped (B, heads, T, head_dim) named
    after the patch (a shorter result broadcast silently into a plausible picture)."""
    processor = patch.processor

    def bound(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        try:
            out = processor(q, k, v, call, attend)
        except ValueError:      # a deliberate refusal with its own words
            raise
        except Exception as exc:  # noqa: BLE001
            raise _patch_failure(patch, call.key, f"{type(exc).__name__}: {exc}") from exc
        expected = (*q.shape[:-1], v.shape[-1])
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
            found = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise _patch_failure(patch, call.key, f"the processor returned {found}, expected (B, heads, T, "
                                                  f"head_dim) = {expected}")
        return out
    return bound
