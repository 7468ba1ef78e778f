"""Weights stored narrow (FP8), computed wide (bf16 / fp16 / fp32), one layer at a time.

A float8 tensor cannot go through most kernels (``"silu_cpu" not implemented for
Float8_e4m3fn``), so a model whose weights are all FP8 cannot run. Here only the large matrices
(the ``weight`` of every ``Linear`` and ``Conv1d/2d/3d``: >95 % of a diffusion model's parameters)
stay in FP8; a parametrization upcasts such a weight to the compute dtype each time the layer
uses it, so at most one layer's weight exists in the wide dtype at a time. Biases, norms and
embeddings are kept in the compute dtype. Code that reads ``module.weight`` (dtype probes,
shape checks) sees the upcast tensor, so models need no change.

Map
- ``FLOAT8_DTYPES``, ``is_float8(dtype)``.
- ``WeightStorage(storage, compute)``: what a loader's ``dtype=`` may be besides a torch dtype:
  "store in `storage`, compute in `compute`". A bare float8 dtype means compute in
  ``default_compute_dtype(device)`` (fp32 on the CPU, bf16 on an accelerator that has it, else fp16).
- ``split_precision(dtype, device) -> (storage | None, compute | None)``: how ``build_module`` reads it.
- ``narrow_weight_names(module)``: the state-dict names that are stored narrow.
- ``to_float8(tensor, dtype)``: round to FP8, saturating at the format's largest finite value
  (e4m3fn has no infinity: an unclamped cast of a large value would give NaN).
- ``store_weights(module, storage, compute)``: convert a built module in place; state dicts keep
  the plain key names (``x.weight``), holding the FP8 tensors, so saved files are ordinary FP8 files.
- ``stored_dtype(module)`` (None when not narrow-stored), ``resident_bytes(module)``.

Accuracy: e4m3 keeps 3 mantissa bits (relative rounding error <= 2^-4 per weight), e5m2 keeps 2
(<= 2^-3), against 8 for bf16. Errors of independent weights average out in each dot product; the
documented tolerances (docs/models.md, tests/models/test_precision.py) are measured on the shipped
model and a UNet. LoRAs patch FP8 weights by computing in float32 and rounding the sum back to FP8.
Not supported: "scaled FP8" files that carry a per-tensor ``scale_weight`` (they are refused by the
key check, naming the extra keys).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

FLOAT8_DTYPES: tuple[torch.dtype, ...] = tuple(
    d for d in (getattr(torch, "float8_e4m3fn", None), getattr(torch, "float8_e5m2", None)) if d is not None
)
NARROW_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_PARAMETRIZED_KEY = "parametrizations.weight.original"


def is_float8(dtype: object) -> bool:
    """True for torch.float8_e4m3fn / torch.float8_e5m2."""
    return dtype in FLOAT8_DTYPES


@dataclass(frozen=True)
class WeightStorage:
    """Store the large weights in `storage` (a float8 dtype) and compute in `compute`."""

    storage: torch.dtype
    compute: torch.dtype | None = None  # None: default_compute_dtype of the device loaded to

    def __post_init__(self) -> None:
        if not is_float8(self.storage):
            raise ValueError(f"storage must be torch.float8_e4m3fn or torch.float8_e5m2, got {self.storage}; "
                             "for other dtypes pass the dtype itself")
        if self.compute is not None and (is_float8(self.compute) or not self.compute.is_floating_point):
            raise ValueError(f"compute must be float32, float16 or bfloat16, got {self.compute}")


def default_compute_dtype(device: torch.device | str) -> torch.dtype:
    """fp32 on the CPU (fast and exact there), bf16 on a CUDA device that supports it, else fp16."""
    device = torch.device(device)
    if device.type == "cpu" or device.type == "meta":
        return torch.float32
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def split_precision(dtype: object, device: torch.device | str) -> tuple[torch.dtype | None, torch.dtype | None]:
    """``(storage, compute)`` for a loader's dtype argument: narrow storage or None, and the compute dtype."""
    if isinstance(dtype, WeightStorage):
        return dtype.storage, dtype.compute or default_compute_dtype(device)
    if is_float8(dtype):
        return dtype, default_compute_dtype(device)
    return None, dtype


def narrow_weight_names(module: nn.Module) -> set[str]:
    """State-dict names of the weights stored narrow: ``weight`` of every Linear / Conv layer."""
    return {f"{name}.weight" if name else "weight" for name, sub in module.named_modules()
            if isinstance(sub, NARROW_MODULES) and sub.weight is not None}


def to_float8(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Round to `dtype` (FP8), saturating at its largest finite magnitude."""
    if tensor.dtype == dtype:
        return tensor
    limit = torch.finfo(dtype).max
    return tensor.float().clamp(-limit, limit).to(dtype)


class UpcastOnUse(nn.Module):
    """Parametrization: the stored (FP8) tensor, cast to the compute dtype whenever it is read."""

    def __init__(self, compute: torch.dtype):
        super().__init__()
        self.compute = compute

    def forward(self, stored: torch.Tensor) -> torch.Tensor:
        return stored.to(self.compute)


def store_weights(module: nn.Module, storage: torch.dtype, compute: torch.dtype) -> nn.Module:
    """Store `module`'s Linear / Conv weights in `storage`, everything else in `compute` (in place; returns it)."""
    if not is_float8(storage):
        raise ValueError(f"storage must be a float8 dtype, got {storage}")
    for sub in list(module.modules()):
        if not isinstance(sub, NARROW_MODULES) or sub.weight is None:
            continue
        if parametrize.is_parametrized(sub, "weight"):
            sub.parametrizations.weight[0].compute = compute
            continue
        weight = sub.weight
        sub.weight = nn.Parameter(to_float8(weight.detach(), storage), requires_grad=False)
        parametrize.register_parametrization(sub, "weight", UpcastOnUse(compute), unsafe=True)
        sub._register_state_dict_hook(_plain_keys)
        sub._register_load_state_dict_pre_hook(_parametrized_keys)
    for sub in module.modules():   # the rest (biases, norms, embeddings) in the compute dtype
        if isinstance(sub, parametrize.ParametrizationList):
            continue   # holds the stored FP8 tensor
        for key, tensor in list(sub.named_parameters(recurse=False)):
            if tensor.is_floating_point() and tensor.dtype != compute:
                setattr(sub, key, nn.Parameter(tensor.detach().to(compute), requires_grad=False))
        for key, tensor in list(sub.named_buffers(recurse=False)):
            if tensor.is_floating_point() and tensor.dtype != compute and not is_float8(tensor.dtype):
                sub._buffers[key] = tensor.to(compute)
    return module


def _plain_keys(module, state_dict, prefix, local_metadata) -> None:
    """State-dict hook: ``x.parametrizations.weight.original`` -> ``x.weight`` (the stored FP8 tensor)."""
    key = prefix + _PARAMETRIZED_KEY
    if key in state_dict:
        state_dict[prefix + "weight"] = state_dict.pop(key)


def _parametrized_keys(state_dict, prefix, *args) -> None:
    """Load hook: a plain ``x.weight`` goes into the stored tensor, rounded to its FP8 dtype."""
    key = prefix + "weight"
    if key in state_dict:
        state_dict[prefix + _PARAMETRIZED_KEY] = state_dict.pop(key)


def stored_dtype(module: nn.Module) -> torch.dtype | None:
    """The narrow storage dtype of a module converted by ``store_weights`` (None if it was not)."""
    for sub in module.modules():
        if isinstance(sub, NARROW_MODULES) and parametrize.is_parametrized(sub, "weight"):
            return sub.parametrizations.weight.original.dtype
    return None


def resident_bytes(module: nn.Module) -> int:
    """Bytes held by a module's parameters and buffers (each storage counted once)."""
    seen: dict[int, int] = {}
    for tensor in [*module.parameters(), *module.buffers()]:
        storage = tensor.untyped_storage()
        seen[storage.data_ptr() or id(storage)] = storage.nbytes()
    return sum(seen.values())
