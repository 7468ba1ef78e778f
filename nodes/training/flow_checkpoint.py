"""Write a trained flow model (MMDiT + VAE + SD3-style text encoder) as an SD3-layout single file.

The layout is SD3's own (nodes/models/sd3.py): the MMDiT under ``model.diffusion_model.``, the VAE
under ``first_stage_model.``, CLIP text encoders under ``text_encoders.{clip_l,clip_g}.transformer.``
(Hugging Face keys). The ``nodegraph.config`` metadata records what shapes cannot show -- the exact
MMDiT / VAE / text-encoder configs, the text layout of ``SD3TextEncoder`` (widths, the number of CLIP
tokens the model reads, the zero tokens standing in for T5) and the sampling shift -- so
``LoadCheckpoint`` (``load_sd3_checkpoint``) reads the file with no arguments.

    save_flow_checkpoint(path, mmdit=, vae=, text_encoder=, shift=, dtype=, metadata=)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import torch

from nodes.models.detect import METADATA_KEY, PREVIEW_MAP_SIGNED, UNET_PREFIX, VAE_PREFIX
from nodes.models.sd3 import SD3_TEXT_PREFIXES


def save_flow_checkpoint(path: str | os.PathLike, *, mmdit: Any, vae: Any, text_encoder: Any,
                         shift: float | None = None, dtype: torch.dtype | None = torch.float16,
                         metadata: Mapping[str, str] | None = None) -> None:
    """Write `mmdit` (an MMDiT), `vae` and `text_encoder` (an SD3TextEncoder with CLIPs, no T5) to `path`."""
    if getattr(text_encoder, "t5", None) is not None:
        raise ValueError("text_encoder: this writer stores CLIP encoders only; a T5 needs its tokenizer model "
                         "beside the file")
    tensors: dict[str, torch.Tensor] = {}

    def add(prefix: str, state: Mapping[str, torch.Tensor]) -> None:
        for key, tensor in state.items():
            tensor = tensor.detach().to("cpu")
            if dtype is not None and tensor.is_floating_point():
                tensor = tensor.to(dtype)
            tensors[prefix + key] = tensor.contiguous()

    add(UNET_PREFIX, mmdit.state_dict())
    add(VAE_PREFIX, vae.state_dict())
    encoders = {}
    for name in ("clip_l", "clip_g"):
        prompt_encoder = getattr(text_encoder, name, None)
        if prompt_encoder is not None:
            clip = prompt_encoder.encoders[name]
            add(SD3_TEXT_PREFIXES[name], clip.state_dict())
            encoders[name] = asdict(clip.config)
    override = {
        "family": "sd3", "prediction": "flow",
        "mmdit": asdict(mmdit.config), "vae": asdict(vae.config), "preview_map": PREVIEW_MAP_SIGNED, "text_encoders": encoders,
        "sd3_text": {"clip_widths": list(text_encoder.clip_widths), "pooled_dims": list(text_encoder.pooled_dims),
                     "clip_tokens": text_encoder.clip_tokens, "empty_t5_tokens": text_encoder.empty_t5_tokens},
    }
    if shift is not None:
        override["shift"] = float(shift)
    from safetensors.torch import save_file

    save_file(tensors, os.fspath(path), metadata={**(metadata or {}), METADATA_KEY: json.dumps(override)})
