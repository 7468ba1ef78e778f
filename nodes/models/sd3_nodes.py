"""SD3 / SD3.5 nodes (registered by nodes.py's ``register_nodes``): thin adapters over sd3.py.

    LoadSD3TextEncoders   CLIP-L, CLIP-G and T5-XXL files (models/text_encoders; each optional; the
                          T5 needs its spiece.model beside it) → TEXT_ENCODER for EncodeTextSD3
    ModelSamplingSD3      set the timestep shift of an SD3 (flow) MODEL (3.0 as released)

LoadCheckpoint loads SD3 single files and diffusers folders; files without text encoders
(``sd3.5_large.safetensors``, ``sd3_medium.safetensors``) load their MODEL with LoadUNet and VAE
with LoadVAE, their encoders with LoadSD3TextEncoders. EncodeTextSD3 lives in nodes.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from nodegraph import Input, Node, NodeInputError, NodeInputs, Output

from .nodes import TextEncoder, WeightDtype, _load_errors, _torch_dtype, allow_pickle_files, resolve_model


class LoadSD3TextEncoders(Node):
    """Load SD3's text encoders from separate files in models/text_encoders; a missing one gives zeros when encoding."""

    category = "loaders/sd3"
    shared_cache = True     # its output depends only on model files: users of a server share it

    class Inputs(NodeInputs):
        clip_l_name: str | None = Input(None, model_folder="text_encoders", description="e.g. clip_l.safetensors")
        clip_g_name: str | None = Input(None, model_folder="text_encoders", description="e.g. clip_g.safetensors")
        t5_name: str | None = Input(None, model_folder="text_encoders",
                                    description="e.g. t5xxl_fp16.safetensors (its spiece.model beside it)")
        weight_dtype: WeightDtype = Input("auto")

    outputs = (Output("text_encoder", "TEXT_ENCODER"),)

    def run(self, clip_l_name: str | None, clip_g_name: str | None, t5_name: str | None, weight_dtype: str) -> dict:
        from .sd3 import SD3TextEncoder, load_clip_file, load_t5_file

        if not (clip_l_name or clip_g_name or t5_name):
            raise NodeInputError("clip_l_name", "give at least one of clip_l_name, clip_g_name, t5_name")
        memory = self.context.service("memory")
        dtype = _torch_dtype(weight_dtype, memory)
        clips = {}
        for role, name, input_name in (("clip_l", clip_l_name, "clip_l_name"), ("clip_g", clip_g_name, "clip_g_name")):
            if name:
                path = resolve_model(self, "text_encoders", input_name, name)
                with _load_errors(input_name):
                    clips[role] = load_clip_file(path, role, dtype=dtype, allow_pickle=allow_pickle_files(self))
        t5 = tokenizer = None
        if t5_name:
            path = resolve_model(self, "text_encoders", "t5_name", t5_name)
            with _load_errors("t5_name"):
                t5, tokenizer = load_t5_file(path, dtype=dtype, allow_pickle=allow_pickle_files(self))
        encoder = SD3TextEncoder(clips.get("clip_l"), clips.get("clip_g"), t5, tokenizer,
                                 context_dim=t5.config.d_model if t5 is not None else 4096)
        memory.register(encoder, "+".join(n for n in (clip_l_name, clip_g_name, t5_name) if n))
        return {"text_encoder": TextEncoder(encoder, "sd3")}


class ModelSamplingSD3(Node):
    """Set the timestep shift of a flow MODEL (SD3 / SD3.5 use 3.0; higher spends more steps at high noise)."""

    category = "model_patches"

    class Inputs(NodeInputs):
        model: Any = Input(port="MODEL")
        shift: float = Input(3.0, gt=0.0, le=100.0, step=0.1)

    outputs = (Output("model", "MODEL"),)

    def run(self, model: Any, shift: float) -> dict:
        from nodes.sampling.denoisers import FlowTimeMap

        if getattr(model, "prediction", None) != "flow" or not isinstance(model.time_map, FlowTimeMap):
            raise NodeInputError("model", f"ModelSamplingSD3 needs a flow model (SD3 / SD3.5), found a "
                                          f"{getattr(model, 'prediction', type(model).__name__)} one")
        time_map = FlowTimeMap(shift=shift, multiplier=model.time_map.multiplier)
        return {"model": replace(model, time_map=time_map, _denoiser=None)}


SD3_NODES = [LoadSD3TextEncoders, ModelSamplingSD3]
