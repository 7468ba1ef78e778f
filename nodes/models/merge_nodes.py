"""Checkpoint merging as nodes: a weighted average of two models' (or text encoders') weights.

What ComfyUI's ModelMergeSimple / CLIPMergeSimple do, and A1111's "weighted sum" checkpoint merger:
every weight becomes ``ratio × a + (1 − ratio) × b``. Two fine-tunes of one base average into a model
between them (a "model soup", Wortsman et al. 2022; docs/training.md measures one); two unrelated models
of one architecture average too, but nothing promises the result draws anything.

Map
- ``merged_weights(a, b, ratio)``  the pure function: two state dicts of the same keys and shapes → one
- ``weights_of(module)``            a module's weights as they are now (a variant's LoRAs patched in)
- ``MergeModels``, ``MergeTextEncoders``  the nodes (registered by nodes.py)

A merged model is a network of its own (one more copy of the weights in memory, asked for first), with
the LoRAs of both inputs baked in; LoRAs and model patches can be applied to it like to any model, and
SaveCheckpoint writes it. Model patches that are not weights (an attention patch) come from `model_a`.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from nodegraph import Input, Node, NodeInputError, NodeInputs, Output
from nodegraph.memory import ensure_free

if TYPE_CHECKING:        # torch is imported where weights are touched: registering the nodes needs none
    import torch
    from torch import nn

__all__ = ["MERGE_NODES", "MergeModels", "MergeTextEncoders", "merged_weights", "weights_of"]


def merged_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], ratio: float) -> dict[str, torch.Tensor]:
    """``ratio × a + (1 − ratio) × b`` for every floating-point tensor (computed in float32, kept in a's
    dtype); other tensors (integer buffers) are a's. ValueError naming the first key that is missing from
    either or has another shape."""
    if a.keys() != b.keys():
        only_a, only_b = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
        example = f"{only_a[0]!r} only in the first" if only_a else f"{only_b[0]!r} only in the second"
        raise ValueError(f"the two hold different weights ({len(only_a)} only in the first, {len(only_b)} only in "
                         f"the second; e.g. {example}): they are not the same architecture")
    import torch

    merged = {}
    for key, first in a.items():
        second = b[key]
        if first.shape != second.shape:
            raise ValueError(f"weight {key!r} is {tuple(first.shape)} in the first and {tuple(second.shape)} in the "
                             f"second: they are not the same architecture (or not the same size of it)")
        if not first.is_floating_point():
            merged[key] = first.clone()
            continue
        total = first.float() * ratio + second.to(first.device, torch.float32) * (1.0 - ratio)
        merged[key] = total.to(first.dtype)
    return merged


def weights_of(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's state dict as it is now (detached tensors, shared with the module: copy before changing)."""
    return {key: value.detach() for key, value in module.state_dict().items()}


def _state_bytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


def _fresh_copy(module: nn.Module, weights: dict[str, torch.Tensor]) -> nn.Module:
    """A new module like `module` holding `weights`, with no LoRA bookkeeping or model patches of the original."""
    from .lora import remove_loras

    made = copy.deepcopy(module)
    remove_loras(made)                       # drops the copied "original weight" records of patched layers
    if hasattr(made, "model_patches"):
        made.model_patches = ()
    made.load_state_dict(weights)
    return made


def _merged_module(memory: Any, first: tuple[nn.Module, Any, str], second: tuple[nn.Module, Any, str],
                   ratio: float) -> nn.Module:
    """A new module holding ratio × first + (1 − ratio) × second. Each is (module, make its variant's patches the
    module's — LoRAs are baked in —, the input that holds it); a misfit is a NodeInputError on the second's input."""
    (module_a, patch_a, name_a), (module_b, patch_b, name_b) = first, second
    ensure_free(3 * _state_bytes(module_a), f"a merge of {name_a} and {name_b} (its weights, a copy, the sum)")
    with memory.using(module_a):
        patch_a()
        weights_a = {key: value.clone() for key, value in weights_of(module_a).items()}
    with memory.using(module_b):
        patch_b()
        try:
            merged = merged_weights(weights_a, weights_of(module_b), ratio)
        except ValueError as exc:
            raise NodeInputError(name_b, f"cannot merge with {name_a}: {exc}") from None
    return _fresh_copy(module_a, merged)


class MergeModels(Node):
    """A weighted average of two models' weights: ratio × model_a + (1 − ratio) × model_b (ComfyUI's
    ModelMergeSimple). Both must be the same architecture and size; each one's LoRAs are baked in. The
    result is a model of its own (it takes memory like one more loaded model)."""

    category = "models/merging"

    class Inputs(NodeInputs):
        model_a: Any = Input(port="MODEL")
        model_b: Any = Input(port="MODEL")
        ratio: float = Input(0.5, ge=0.0, le=1.0, step=0.05, description="model_a's share: 1 = model_a, 0 = model_b")

    outputs = (Output("model", "MODEL"),)

    def run(self, model_a: Any, model_b: Any, ratio: float) -> dict:
        from torch import nn

        for name, model in (("model_a", model_a), ("model_b", model_b)):
            if not isinstance(getattr(model, "net", None), nn.Module):
                raise NodeInputError(name, f"{getattr(model, 'name', type(model).__name__)} is not a network whose "
                                           f"weights can be merged (no torch module)")
        if model_a.prediction != model_b.prediction:
            raise NodeInputError("model_b", f"model_a predicts {model_a.prediction!r} and model_b "
                                            f"{model_b.prediction!r}: a merge of the two predicts neither")
        memory = self.context.service("memory")
        net = _merged_module(memory, (model_a.net, model_a.apply_patches, "model_a"),
                             (model_b.net, model_b.apply_patches, "model_b"), ratio)
        name = f"merge({model_a.name} × {ratio:g}, {model_b.name})"
        memory.register(net, name)
        kept = tuple(p for p in model_a.patches if not isinstance(p, tuple))     # its non-weight patches
        return {"model": replace(model_a, net=net, patches=kept, name=name, _denoiser=None)}


class MergeTextEncoders(Node):
    """A weighted average of two text encoders' weights: ratio × text_encoder_a + (1 − ratio) × text_encoder_b
    (ComfyUI's CLIPMergeSimple). Both must be the same family; each one's LoRAs are baked in."""

    category = "models/merging"

    class Inputs(NodeInputs):
        text_encoder_a: Any = Input(port="TEXT_ENCODER")
        text_encoder_b: Any = Input(port="TEXT_ENCODER")
        ratio: float = Input(0.5, ge=0.0, le=1.0, step=0.05,
                             description="text_encoder_a's share: 1 = text_encoder_a, 0 = text_encoder_b")

    outputs = (Output("text_encoder", "TEXT_ENCODER"),)

    def run(self, text_encoder_a: Any, text_encoder_b: Any, ratio: float) -> dict:
        from torch import nn

        from .nodes import TextEncoder, set_loras

        for name, value in (("text_encoder_a", text_encoder_a), ("text_encoder_b", text_encoder_b)):
            if not isinstance(value, TextEncoder) or not isinstance(value.encoder, nn.Module):
                raise NodeInputError(name, f"expected a TEXT_ENCODER of a checkpoint, found {type(value).__name__}")
        if text_encoder_a.family != text_encoder_b.family:
            raise NodeInputError("text_encoder_b", f"text_encoder_a is {text_encoder_a.family!r} and text_encoder_b "
                                                   f"{text_encoder_b.family!r}: merge encoders of one family")
        memory = self.context.service("memory")
        patched = [lambda value=value: set_loras(value.encoder, list(value.loras))
                   for value in (text_encoder_a, text_encoder_b)]
        encoder = _merged_module(memory, (text_encoder_a.encoder, patched[0], "text_encoder_a"),
                                 (text_encoder_b.encoder, patched[1], "text_encoder_b"), ratio)
        memory.register(encoder, f"merged text encoder ({text_encoder_a.family})")
        return {"text_encoder": TextEncoder(encoder, text_encoder_a.family)}


MERGE_NODES = [MergeModels, MergeTextEncoders]
