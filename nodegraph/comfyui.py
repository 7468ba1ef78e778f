"""ComfyUI node classes that have an equivalent here, and how their inputs and outputs translate.

`import_foreign` (graph.py) turns a ComfyUI API-format prompt into a graph: an entry whose
`class_type` is in `EQUIVALENTS` becomes our node (inputs renamed, a few values translated,
inputs set to their no-op value dropped, links to its outputs named by our output names in
ComfyUI's output order); any other entry keeps its ComfyUI type and data, and validation names
it as unknown (a red placeholder in the editor, round-tripped as it was).

Only equivalents are listed: the same operation, the same meaning of every kept input (ImageScale:
ours antialiases when it shrinks, ComfyUI's does not). Not listed, on purpose: KSamplerAdvanced
(start/end steps and leftover noise are SplitSigmas + Sample here), ControlNetApply (one
conditioning; ours applies to positive and negative together),
CLIPSetLastLayer (ours is EncodeText's `clip_skip`), LatentUpscale (its width 0 keeps the aspect
ratio; ours then scales by `factor`). Values are not approximated either: "nearest-exact" stays
as it is and validation suggests what is here. docs/editor.md ("ComfyUI files") lists the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Equivalent:
    """Our node for one ComfyUI class."""

    type: str                                    # our node type
    outputs: tuple[str, ...]                     # our output names, in ComfyUI's output order
    inputs: dict[str, str] = field(default_factory=dict)           # ComfyUI input name → ours (others as they are)
    values: dict[str, dict[str, str]] = field(default_factory=dict)   # our input → {ComfyUI value: ours}
    no_ops: dict[str, Any] = field(default_factory=dict)           # ComfyUI input → the value that changes nothing


# ComfyUI's uni_pc is UniPC with B(h) = h (bh1), its uni_pc_bh2 ours (diffusers' default, bh2)
_SAMPLER_NAMES = {"uni_pc_bh2": "unipc"}

# The official Real-ESRGAN release files ComfyUI users have in models/upscale_models → the built-in of the same
# weights (nodes/upscale/ncnn.py); a graph naming them runs here without the file.
_UPSCALER_FILES = {f"{stem}.{ext}": ours for stem, ours in (
    ("RealESRGAN_x4plus", "realesrgan-x4plus"), ("RealESRGAN_x4plus_anime_6B", "realesrgan-x4plus-anime"),
    ("realesr-animevideov3", "realesr-animevideov3-x4")) for ext in ("pth", "safetensors")}

EQUIVALENTS: dict[str, Equivalent] = {
    "CheckpointLoaderSimple": Equivalent("LoadCheckpoint", ("model", "text_encoder", "vae")),
    "CLIPTextEncode": Equivalent("EncodeText", ("conditioning",), {"clip": "text_encoder"}),
    "EmptyLatentImage": Equivalent("EmptyLatent", ("latent",)),
    "KSampler": Equivalent("KSampler", ("latent",), {"latent_image": "latent", "sampler_name": "sampler"},
                           {"sampler": _SAMPLER_NAMES}),
    "VAEDecode": Equivalent("VAEDecode", ("image",), {"samples": "latent"}),
    "VAEEncode": Equivalent("VAEEncode", ("latent",), {"pixels": "image"}),
    "VAEEncodeForInpaint": Equivalent("VAEEncodeForInpaint", ("latent",), {"pixels": "image"}),
    "SetLatentNoiseMask": Equivalent("SetLatentNoiseMask", ("latent",), {"samples": "latent"}),
    "VAELoader": Equivalent("LoadVAE", ("vae",)),
    "LoraLoader": Equivalent("LoadLoRA", ("model", "text_encoder"), {"clip": "text_encoder",
                                                                      "strength_clip": "strength_text"}),
    "LoraLoaderModelOnly": Equivalent("LoadLoRAModelOnly", ("model",)),
    "ControlNetLoader": Equivalent("LoadControlNet", ("control_net",)),
    "ControlNetApplyAdvanced": Equivalent("ApplyControlNet", ("positive", "negative"),
                                          {"start_percent": "start", "end_percent": "end"}),
    "UpscaleModelLoader": Equivalent("LoadUpscaleModel", ("upscale_model",), values={"model_name": _UPSCALER_FILES}),
    "ImageUpscaleWithModel": Equivalent("UpscaleImageWithModel", ("image",)),
    "ImageScale": Equivalent("ImageScale", ("image",), {"image": "images", "upscale_method": "method"},
                             values={"method": {"nearest-exact": "nearest"}}),
    "LoadImage": Equivalent("LoadImage", ("image", "mask"), no_ops={"upload": "image"}),
    "SaveImage": Equivalent("SaveImage", ()),
    "PreviewImage": Equivalent("PreviewImage", ()),
}


def translate_inputs(equivalent: Equivalent, inputs: dict[str, Any]) -> dict[str, Any]:
    """A ComfyUI entry's inputs as our node's: renamed, known values translated, no-op inputs dropped."""
    out: dict[str, Any] = {}
    for name, value in inputs.items():
        if name in equivalent.no_ops and value == equivalent.no_ops[name]:
            continue
        ours = equivalent.inputs.get(name, name)
        table = equivalent.values.get(ours)
        if table is not None and isinstance(value, str):
            value = table.get(value, value)
        out[ours] = value
    return out
