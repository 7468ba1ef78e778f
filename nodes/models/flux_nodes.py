"""Flux nodes (registered by nodes.py's ``register_nodes``): thin adapters over flux.py.

    LoadFlux               a Flux transformer (models/unet; original or diffusers layout, FP8 allowed) → MODEL
                           (rectified flow, velocity; shift for 1024² on dev-type models, none on schnell)
    LoadFluxTextEncoders   CLIP-L + T5-XXL files (models/text_encoders; spiece.model beside the T5) → TEXT_ENCODER
    EncodeTextFlux         prompt(s) + distilled guidance → CONDITIONING {"context": T5, "y": CLIP-L pooled, "guidance"}
    FluxGuidance           set the distilled guidance scale on a CONDITIONING
    ModelSamplingFlux      the resolution-dependent shift for the image size being generated
    (LoadCheckpoint on a diffusers FluxPipeline folder and LoadUNet on a Flux file use the helpers here.)

MODEL is a sampling ``DiffusionModel`` with ``prediction="flow"`` and a ``FlowTimeMap`` whose
network time is t itself (Flux takes t in [0, 1]). Latents have 16 channels (the Flux VAE).
"""

from __future__ import annotations

import math

from dataclasses import replace
from typing import Any, Literal

from nodegraph import Input, Node, NodeInputError, NodeInputs, Output

from .nodes import TextEncoder, WeightDtype, _load_errors, _load_with_retry, _torch_dtype, allow_pickle_files, \
    family_latent_scale, resolve_model

DEFAULT_TOKENS = (1024 // 16) ** 2  # packed tokens of a 1024 x 1024 image: the shift a dev model loads with


def flux_diffusion_model(flux: Any, name: str, tokens: int | None = DEFAULT_TOKENS, *, base_shift: float = 0.5,
                         max_shift: float = 1.15, preview: Any = None) -> Any:
    """Wrap a FluxModel as a rectified-flow DiffusionModel; `tokens` None = no shift (schnell)."""
    from nodes.sampling.denoisers import FlowTimeMap, resolution_shift
    from nodes.sampling.diffusion_model import DiffusionModel

    from .nodes import set_model_patches

    shift = 1.0 if tokens is None else resolution_shift(tokens, base_shift=base_shift, max_shift=max_shift)
    return DiffusionModel(net=flux, prediction="flow", time_map=FlowTimeMap(shift=shift, multiplier=1.0),
                          latent_channels=flux.config.latent_channels, name=name, patcher=set_model_patches,
                          preview=preview)


class LoadFlux(Node):
    """Load a Flux transformer (FLUX.1 dev / schnell or a custom size) from models/unet."""

    category = "loaders/flux"
    shared_cache = True     # its output depends only on model files: users of a server share it
    version = "1.1.0"     # 1.1: the model records Flux's latent space (a VAE whose scale was assumed decodes in it)

    class Inputs(NodeInputs):
        unet_name: str = Input(model_folder="unet", description="e.g. flux1-dev.safetensors (fp8 files load as fp8)")
        weight_dtype: WeightDtype = Input("auto", description="auto: fp32 on the CPU, fp16 on a GPU, an FP8 file "
                                                              "stays FP8; fp8: stored in FP8, computed wider")

    outputs = (Output("model", "MODEL"),)

    def run(self, unet_name: str, weight_dtype: str) -> dict:
        return {"model": load_flux_model(self, unet_name, weight_dtype)}


def load_flux_model(node: Node, unet_name: str, weight_dtype: str) -> Any:
    """LoadFlux's work (LoadUNet calls it for Flux files too): the MODEL of Flux file `unet_name`."""
    from .flux import load_flux

    memory = node.context.service("memory")
    path = resolve_model(node, "unet", "unet_name", unet_name)
    dtype = _torch_dtype(weight_dtype, memory)
    if weight_dtype == "auto":   # an FP8 file stays FP8 (computed in fp32 on the CPU, bf16 on a GPU)
        with _load_errors("unet_name"):
            stored = _file_float8(path, allow_pickle_files(node))
        if stored is not None:
            from .precision import WeightStorage, default_compute_dtype

            dtype = WeightStorage(stored, default_compute_dtype(memory.compute_device))
    flux = _load_with_retry(node, "unet_name", lambda: load_flux(path, dtype=dtype,
                                                                 allow_pickle=allow_pickle_files(node)))
    memory.register(flux, unet_name)
    model = flux_diffusion_model(flux, unet_name, DEFAULT_TOKENS if flux.config.guidance_embed else None)
    model.latent_scale = family_latent_scale("flux")      # its samplers' latents record it (docs/models.md)
    return model


def is_flux_weights(path: Any, allow_pickle: bool) -> bool:
    """Whether a model file or folder holds a Flux transformer (original or diffusers layout)."""
    import json

    from .flux import is_flux
    from .loading import open_state_dict

    if path.is_dir():
        config = path / "transformer" / "config.json" if (path / "transformer").is_dir() else path / "config.json"
        try:
            return json.loads(config.read_text()).get("_class_name") == "FluxTransformer2DModel"
        except (OSError, ValueError):
            return False
    shapes = open_state_dict(path, allow_pickle=allow_pickle).shapes
    return is_flux(shapes) is not None or ("x_embedder.weight" in shapes and
                                           "single_transformer_blocks.0.proj_mlp.weight" in shapes)


def _file_float8(path: Any, allow_pickle: bool) -> Any:
    """The float8 dtype most of a weights file is stored in, or None (folders: None)."""
    from .loading import open_state_dict
    from .precision import is_float8

    if path.is_dir():
        return None
    dtypes = open_state_dict(path, allow_pickle=allow_pickle).dtypes.values()
    narrow = [d for d in dtypes if is_float8(d)]
    return max(set(narrow), key=narrow.count) if len(narrow) * 2 > len(dtypes) else None


class LoadFluxTextEncoders(Node):
    """Load Flux's CLIP-L and T5-XXL text encoders from models/text_encoders (the T5 needs its spiece.model)."""

    category = "loaders/flux"
    shared_cache = True     # its output depends only on model files: users of a server share it

    class Inputs(NodeInputs):
        clip_name: str = Input(model_folder="text_encoders", description="CLIP-L, e.g. clip_l.safetensors")
        t5_name: str = Input(model_folder="text_encoders", description="T5-XXL, e.g. t5xxl_fp16.safetensors")
        model_type: Literal["dev", "schnell"] = Input("dev", description="T5 reads 512 tokens for dev, 256 for "
                                                                          "schnell")
        weight_dtype: WeightDtype = Input("auto")

    outputs = (Output("text_encoder", "TEXT_ENCODER"),)

    def run(self, clip_name: str, t5_name: str, model_type: str, weight_dtype: str) -> dict:
        from .flux import T5_TOKENS, FluxTextEncoder, load_clip_l_file
        from .sd3 import load_t5_file

        memory = self.context.service("memory")
        clip_path = resolve_model(self, "text_encoders", "clip_name", clip_name)
        t5_path = resolve_model(self, "text_encoders", "t5_name", t5_name)
        dtype = _torch_dtype(weight_dtype, memory)
        with _load_errors("clip_name"):
            clip = load_clip_l_file(clip_path, dtype=dtype, allow_pickle=allow_pickle_files(self))
        with _load_errors("t5_name"):
            t5, tokenizer = load_t5_file(t5_path, dtype=dtype, allow_pickle=allow_pickle_files(self),
                                         max_length=T5_TOKENS[model_type == "dev"])
        encoder = FluxTextEncoder(clip, t5, tokenizer)
        memory.register(encoder, f"{clip_name}+{t5_name}")
        return {"text_encoder": TextEncoder(encoder, "flux")}


def _guidance(value: float) -> Any:
    import torch

    return torch.tensor([float(value)])


class EncodeTextFlux(Node):
    """Encode a prompt for Flux: T5-XXL states as context, CLIP-L's pooled output, the distilled guidance."""

    category = "conditioning/flux"

    class Inputs(NodeInputs):
        text_encoder: Any = Input(port="TEXT_ENCODER")
        text: str = Input("", multiline=True, description="the prompt (CLIP-L, and T5 unless t5_text is given)")
        t5_text: str = Input("", multiline=True, description="a separate, longer prompt for T5 ('' = text)")
        guidance: float = Input(3.5, ge=0.0, le=100.0, step=0.1,
                                description="distilled guidance of dev models (3.5 usual; schnell ignores it)")

    outputs = (Output("conditioning", "CONDITIONING"),)

    def run(self, text_encoder: Any, text: str, t5_text: str, guidance: float) -> dict:
        from .flux import FluxTextEncoder

        if not isinstance(text_encoder, TextEncoder) or not isinstance(text_encoder.encoder, FluxTextEncoder):
            family = getattr(text_encoder, "family", type(text_encoder).__name__)
            raise NodeInputError("text_encoder", f"expected Flux's text encoders (CLIP-L + T5-XXL from "
                                                 f"LoadFluxTextEncoders), found a {family} text encoder; a Flux "
                                                 f"model cannot read its conditioning")
        with self.context.service("memory").using(text_encoder.encoder):
            cond = text_encoder.encoder.encode(text, t5_text or None)
        return {"conditioning": {**cond, "guidance": _guidance(guidance)}}


class FluxGuidance(Node):
    """Set the distilled guidance scale of Flux dev on a conditioning (replaces what EncodeTextFlux set)."""

    category = "conditioning/flux"

    class Inputs(NodeInputs):
        conditioning: Any = Input(port="CONDITIONING")
        guidance: float = Input(3.5, ge=0.0, le=100.0, step=0.1)

    outputs = (Output("conditioning", "CONDITIONING"),)

    def run(self, conditioning: Any, guidance: float) -> dict:
        if not isinstance(conditioning, dict) or "context" not in conditioning:
            raise NodeInputError("conditioning", f"expected a CONDITIONING, found {type(conditioning).__name__}")
        return {"conditioning": {**conditioning, "guidance": _guidance(guidance)}}


class ModelSamplingFlux(Node):
    """Flux's resolution-dependent timestep shift for the image size being generated (mu linear in tokens)."""

    category = "advanced/model"

    class Inputs(NodeInputs):
        model: Any = Input(port="MODEL")
        width: int = Input(1024, ge=16, le=16384, multiple_of=16)
        height: int = Input(1024, ge=16, le=16384, multiple_of=16)
        max_shift: float = Input(1.15, ge=0.0, le=100.0, step=0.01, description="mu at 4096 tokens (1024²)")
        base_shift: float = Input(0.5, ge=0.0, le=100.0, step=0.01, description="mu at 256 tokens (256²)")

    outputs = (Output("model", "MODEL"),)

    def run(self, model: Any, width: int, height: int, max_shift: float, base_shift: float) -> dict:
        from nodes.sampling.denoisers import FlowTimeMap, resolution_shift

        if getattr(model, "prediction", None) != "flow":
            raise NodeInputError("model", f"expected a flow model (e.g. from LoadFlux), found prediction "
                                          f"{getattr(model, 'prediction', None)!r}")
        shift = math.inf
        try:
            shift = resolution_shift((width // 16) * (height // 16), base_shift=base_shift, max_shift=max_shift)
            time_map = FlowTimeMap(shift=shift, multiplier=1.0)
        except (ZeroDivisionError, OverflowError, ValueError):     # e^mu so large every level is the noisiest
            name = "base_shift" if base_shift >= max_shift else "max_shift"
            raise NodeInputError(name, f"the shift these give at {width}x{height} (e^mu = {shift:.3g}) puts every "
                                       f"noise level at the top, so nothing could be sampled; keep base_shift and "
                                       f"max_shift near Flux's 0.5 and 1.15 (mu above ~20 is never useful)") from None
        return {"model": replace(model, time_map=time_map, _denoiser=None)}


FLUX_NODES = [LoadFlux, LoadFluxTextEncoders, EncodeTextFlux, FluxGuidance, ModelSamplingFlux]


def load_flux_pipeline_outputs(node: Node, path: Any, name: str, weight_dtype: str) -> dict:
    """LoadCheckpoint's outputs for a diffusers FluxPipeline folder: MODEL, TEXT_ENCODER (family flux), VAE."""
    from .flux import load_flux_pipeline

    memory = node.context.service("memory")
    flux, vae, encoder = _load_with_retry(node, "ckpt_name", lambda: load_flux_pipeline(
        path, dtype=_torch_dtype(weight_dtype, memory)))
    if vae is None:
        raise NodeInputError("ckpt_name", f"{name} has no vae/ folder; load a Flux VAE with LoadVAE (family flux)")
    for module, part in ((flux, "transformer"), (vae, "vae"), (encoder, "text encoders")):
        memory.register(module, f"{name}:{part}")
    model = flux_diffusion_model(flux, name, DEFAULT_TOKENS if flux.config.guidance_embed else None,
                                 preview=vae.preview)
    return {"model": model, "text_encoder": TextEncoder(encoder, "flux"), "vae": vae}
