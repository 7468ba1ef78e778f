"""ComfyUI node classes that have an equivalent here, and how their inputs and outputs translate.

`import_foreign` (graph.py) turns a ComfyUI API-format prompt — or a UI-format workflow, first made one by
`workflow_to_prompt` (widget values named by position, `WIDGET_NAMES`) — into a graph: an entry whose
`class_type` is in `EQUIVALENTS` becomes our node (inputs renamed, a few values translated,
inputs set to their no-op value dropped, links to its outputs named by our output names in
ComfyUI's output order); any other entry keeps its ComfyUI type and data, and validation names
it as unknown (a red placeholder in the editor, round-tripped as it was).

Only equivalents are listed: the same operation, the same meaning of every kept input (ImageScale:
ours antialiases when it shrinks, ComfyUI's does not); `equivalent_for` also reads an entry's values (a
KSamplerAdvanced over the whole schedule is KSampler, an ImageCompositeMasked without resize_source
CompositeImages), and a KSamplerAdvanced over part of its schedule becomes several nodes (Schedule → SplitSigmas →
Sample: `split_schedule_nodes`). Not listed, on purpose: an ImageCompositeMasked with resize_source,
ControlNetApply (one
conditioning; ours applies to positive and negative together). CLIPSetLastLayer is no node here but EncodeText's
`clip_skip`: `fold_clip_set_last_layer` leaves it out and sets the clip_skip on the encoders it feeds. Values
are translated where ours is the same choice: sampler names, and ImageScale's `nearest-exact` → our `nearest`
(torch's `nearest`: on a non-integer scale it picks source pixels up to half a pixel off from `nearest-exact`'s);
anything else stays as it is and validation suggests what is here. docs/editor.md ("ComfyUI files") lists the table.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .graph import MAX_NOTE_TEXT


@dataclass(frozen=True)
class Equivalent:
    """Our node for one ComfyUI class."""

    type: str                                    # our node type
    outputs: tuple[str, ...]                     # our output names, in ComfyUI's output order
    inputs: dict[str, str] = field(default_factory=dict)           # ComfyUI input name → ours (others as they are)
    values: dict[str, dict[str, Any]] = field(default_factory=dict)   # our input → {ComfyUI value: ours (any JSON)}
    no_ops: dict[str, Any] = field(default_factory=dict)           # ComfyUI input → the value that changes nothing
    fixed: dict[str, Any] = field(default_factory=dict)            # our input → the value giving ComfyUI's meaning
    dropped: frozenset[str] = frozenset()                          # inputs whose meaning `equivalent_for` checked
    input_files: frozenset[str] = frozenset()                      # inputs naming an input-folder file ("x.png [input]")
    scaled: dict[str, float] = field(default_factory=dict)         # our input → factor from ComfyUI's unit to ours
    widgets: tuple[str | None, ...] | None = None      # a UI workflow's widget order, named as ComfyUI names them
    #                                                    (None: a seed's "control after generate"); plugins' classes


# the upload button's widget of ComfyUI's LoadImage / LoadImageMask, as an API prompt may carry it (older ComfyUI
# wrote "choose file to upload"): its value is always "image", and it loads nothing
_UPLOAD_WIDGETS = {"upload": "image", "choose file to upload": "image"}

# ComfyUI's uni_pc is UniPC with B(h) = h (bh1), its uni_pc_bh2 ours (diffusers' default, bh2)
_SAMPLER_NAMES = {"uni_pc_bh2": "unipc", "uni_pc": "unipc_bh1",
                  # "_gpu": the same sampler with its Brownian noise drawn on the GPU (ours: on the latent's device)
                  "dpmpp_2m_sde_gpu": "dpmpp_2m_sde", "dpmpp_sde_gpu": "dpmpp_sde"}

#: ComfyUI classes with no equivalent, and what does their work here (said by validation's unknown-type error)
INSTEAD: dict[str, str] = {
    "CLIPSetLastLayer": "ComfyUI's CLIPSetLastLayer is EncodeText's `clip_skip` here: remove the node, link the "
                        "text encoder straight to each EncodeText and set its clip_skip (stop_at_clip_layer -2 is "
                        "clip_skip 2, -1 is 1; an imported ComfyUI prompt has that done when stop_at_clip_layer is a "
                        "number from -24 to -1)",
    "KSamplerAdvanced": "a KSamplerAdvanced that runs the whole schedule (add_noise enable, start_at_step 0, "
                        "end_at_step at least steps) is imported as KSampler, one that runs part of it as Schedule → "
                        "SplitSigmas → Sample (RandomNoise, or DisableNoise for add_noise disable); it stays this "
                        "placeholder when steps, start_at_step or end_at_step is a link (write the numbers), when it "
                        "runs no step (link its latent_image on instead), or when it stops before the last step "
                        "with return_with_leftover_noise disable (set it to enable, or run to the end); the recipe: "
                        "docs/editor.md, 'ComfyUI files'",
    "ConditioningCombine": "nodegraph has no conditioning combine, area or concat nodes (regional prompting); write "
                           "both prompts in one EncodeText, or weight a part with (words:1.2)",
    "ConditioningSetArea": "nodegraph has no area conditioning (regional prompting) yet; remove the node and link "
                           "its conditioning input on, or inpaint the region with a mask instead",
    "ConditioningConcat": "nodegraph has no conditioning concat; write both prompts in one EncodeText (a prompt past "
                          "75 tokens is encoded in chunks, as ComfyUI's)",
    "ControlNetApply": "ControlNetApply (one conditioning) is ApplyControlNet here, which takes positive and "
                       "negative together",
    "ImageCompositeMasked": "an ImageCompositeMasked with resize_source on is ImageScale (to the destination's "
                            "size) → CompositeImages here; with it off it is imported as CompositeImages",
    "CLIPLoader": "a single text encoder file is LoadTextEncoder here (a checkpoint's encoders or a T5 file; "
                  "ComfyUI's `type` is read from the file): replace the node with it",
    "DualCLIPLoader": "a DualCLIPLoader of type flux is imported as LoadFluxTextEncoders when one of its file names "
                      "says t5 (that one is the T5-XXL, the other the CLIP-L); for type sd3 use LoadSD3TextEncoders, "
                      "other types have no loader here",
    "SamplerCustom": "ComfyUI's SamplerCustom is CFGGuider (model, positive, negative, cfg) → Sample here, with "
                     "RandomNoise (noise_seed) — or DisableNoise for add_noise off — as its noise",
    "Canny": "ComfyUI's Canny is CannyEdges here, but its thresholds are not on the same scale: set CannyEdges' "
             "low_threshold and high_threshold by eye",
    "CheckpointSave": "ComfyUI's CheckpointSave is SaveCheckpoint here, which writes a file of the name you give to "
                      "models/checkpoints (ComfyUI: output/checkpoints/<prefix>_00001_.safetensors) in the dtype "
                      "you choose",
}

#: ComfyUI core classes (its nodes.py and comfy_extras) by name: an unknown type among them is no plugin to install
#: (validation says it is ComfyUI's and what to use, `COMFYUI_NEAREST`), and a node type here of the same name must
#: have its widget order in WIDGET_NAMES (a UI workflow writes ComfyUI's, which need not be our inputs' order)
COMFYUI_CORE_CLASSES: frozenset[str] = frozenset("""
    KSampler KSamplerAdvanced CheckpointLoaderSimple CheckpointLoader CLIPTextEncode CLIPSetLastLayer VAEDecode VAEEncode
    VAEEncodeForInpaint VAELoader VAEDecodeTiled VAEEncodeTiled EmptyLatentImage LatentUpscale LatentUpscaleBy
    LatentFromBatch RepeatLatentBatch LatentComposite LatentBlend LatentRotate LatentFlip LatentCrop SetLatentNoiseMask
    SaveImage PreviewImage LoadImage LoadImageMask LoadImageOutput ImageScale ImageScaleBy ImageInvert ImageBatch
    ImagePadForOutpaint EmptyImage ConditioningAverage ConditioningCombine ConditioningConcat ConditioningSetArea
    ConditioningSetAreaPercentage ConditioningSetAreaStrength ConditioningSetMask ConditioningZeroOut
    ConditioningSetTimestepRange LoraLoader LoraLoaderModelOnly CLIPLoader UNETLoader DualCLIPLoader TripleCLIPLoader
    CLIPVisionEncode CLIPVisionLoader StyleModelApply StyleModelLoader unCLIPConditioning unCLIPCheckpointLoader
    ReferenceLatent GetImageSize ImageScaleToMaxDimension ControlNetApply ControlNetApplyAdvanced ControlNetApplySD3 ControlNetLoader DiffControlNetLoader GLIGENLoader
    GLIGENTextBoxApply InpaintModelConditioning DiffusersLoader LoadLatent SaveLatent
    SamplerCustom SamplerCustomAdvanced BasicScheduler KarrasScheduler ExponentialScheduler PolyexponentialScheduler
    LaplaceScheduler VPScheduler BetaSamplingScheduler SDTurboScheduler KSamplerSelect SplitSigmas SplitSigmasDenoise
    FlipSigmas SetFirstSigma CFGGuider DualCFGGuider BasicGuider RandomNoise DisableNoise AddNoise
    SamplerEulerAncestral SamplerLMS SamplerDPMPP_2M_SDE SamplerDPMPP_3M_SDE SamplerDPMPP_SDE
    CLIPTextEncodeFlux FluxGuidance FluxDisableGuidance FluxKontextImageScale ModelSamplingDiscrete
    ModelSamplingContinuousEDM ModelSamplingContinuousV ModelSamplingStableCascade ModelSamplingSD3
    ModelSamplingAuraFlow ModelSamplingFlux RescaleCFG EmptySD3LatentImage CLIPTextEncodeSD3 SkipLayerGuidanceSD3
    LatentCompositeMasked ImageCompositeMasked MaskToImage ImageToMask ImageColorToMask SolidMask InvertMask CropMask
    MaskComposite FeatherMask GrowMask ThresholdMask ImageBlend ImageBlur ImageQuantize ImageSharpen
    ImageScaleToTotalPixels ImageCrop RepeatImageBatch ImageFromBatch SaveAnimatedWEBP SaveAnimatedPNG ImageStitch
    Canny ModelMergeSimple ModelMergeBlocks ModelMergeSubtract ModelMergeAdd CheckpointSave CLIPMergeSimple CLIPSave
    VAESave ModelSave UpscaleModelLoader ImageUpscaleWithModel SelfAttentionGuidance PerturbedAttentionGuidance
    CLIPTextEncodeSDXL CLIPTextEncodeSDXLRefiner EmptyLatentAudio VAEEncodeAudio VAEDecodeAudio SaveAudio PreviewAudio
    LoadAudio SaveWEBM SaveVideo CreateVideo GetVideoComponents LoadVideo PrimitiveInt PrimitiveFloat PrimitiveBoolean
    PrimitiveString PrimitiveStringMultiline InstructPixToPixConditioning StableCascade_EmptyLatentImage
    StableCascade_StageB_Conditioning StableCascade_StageC_VAEEncode ImageOnlyCheckpointLoader SVD_img2vid_Conditioning
    VideoLinearCFGGuidance WanImageToVideo EmptyHunyuanLatentVideo EmptyMochiLatentVideo EmptyLTXVLatentVideo
    DifferentialDiffusion FreeU FreeU_V2 PerpNeg PerpNegGuider AlignYourStepsScheduler HypernetworkLoader Morphology
""".split())

#: what does the work of a ComfyUI core class here, for the "Did you mean" of its unknown-type error: the classes the
#: import translates (EQUIVALENTS) add their own; these are the ones left to the user (the editor's search synonyms,
#: web/src/schema/search.ts SYNONYMS, name the same nodes)
COMFYUI_NEAREST: dict[str, tuple[str, ...]] = {
    "CLIPLoader": ("LoadTextEncoder",),
    "DualCLIPLoader": ("LoadFluxTextEncoders",), "TripleCLIPLoader": ("LoadSD3TextEncoders",),
    "CheckpointLoader": ("LoadCheckpoint",), "SamplerCustom": ("CFGGuider", "Sample"),
    "Canny": ("CannyEdges",), "CheckpointSave": ("SaveCheckpoint",),
    "ControlNetApply": ("ApplyControlNet",), "ControlNetApplySD3": ("ApplyControlNet",),
    "CLIPSetLastLayer": ("EncodeText",), "CLIPTextEncodeSDXL": ("EncodeTextSDXL",),
    "CLIPTextEncodeFlux": ("EncodeTextFlux",), "CLIPTextEncodeSD3": ("EncodeTextSD3",),
    "ImagePadForOutpaint": ("ImagePad",), "ImageCompositeMasked": ("CompositeImages",),
    "SaveAnimatedWEBP": ("SaveVideo",),
}


def comfyui_nearest(class_type: str) -> tuple[str, ...]:
    """Our node types that do a ComfyUI core class's work (`COMFYUI_NEAREST`, else its equivalent's type), or ()."""
    if class_type in COMFYUI_NEAREST:
        return COMFYUI_NEAREST[class_type]
    equivalent = translated_as(class_type)
    return (equivalent.type,) if equivalent is not None else ()


def subgraph_kind(node_type: str) -> str | None:
    """'subgraph' for a ComfyUI subgraph instance (its type is the definition's UUID), 'group node' for a
    legacy group node ('workflow>NAME' / 'workflow/NAME'), else None."""
    if re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", node_type):
        return "subgraph"
    if node_type.startswith(("workflow>", "workflow/")):
        return "group node"
    return None

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
    # ComfyUI's "Load Diffusion Model": LoadUNet tells a Flux transformer, an MMDiT and an SD UNet apart by their
    # weights as ComfyUI does (a Flux file loads as LoadFlux would); fp8_e4m3fn_fast stores as fp8_e4m3fn (its fast
    # matmul is a speed choice, not another result)
    "UNETLoader": Equivalent("LoadUNet", ("model",), values={"weight_dtype": {"default": "auto",
                                                                              "fp8_e4m3fn_fast": "fp8_e4m3fn"}}),
    "LoraLoader": Equivalent("LoadLoRA", ("model", "text_encoder"), {"clip": "text_encoder",
                                                                      "strength_clip": "strength_text"}),
    "LoraLoaderModelOnly": Equivalent("LoadLoRAModelOnly", ("model",)),
    "ControlNetLoader": Equivalent("LoadControlNet", ("control_net",)),
    "ControlNetApplyAdvanced": Equivalent("ApplyControlNet", ("positive", "negative"),
                                          {"start_percent": "start", "end_percent": "end"}),
    "UpscaleModelLoader": Equivalent("LoadUpscaleModel", ("upscale_model",), values={"model_name": _UPSCALER_FILES}),
    "ImageUpscaleWithModel": Equivalent("UpscaleImageWithModel", ("image",)),
    # ratio is the first model's share in both (ratio × model1 + (1 − ratio) × model2)
    "ModelMergeSimple": Equivalent("MergeModels", ("model",), {"model1": "model_a", "model2": "model_b"}),
    "CLIPMergeSimple": Equivalent("MergeTextEncoders", ("text_encoder",), {"clip1": "text_encoder_a",
                                                                           "clip2": "text_encoder_b"}),
    "ImageScale": Equivalent("ImageScale", ("image",), {"image": "images", "upscale_method": "method"},
                             values={"method": {"nearest-exact": "nearest"}}),
    # ComfyUI's rounds each side of w × scale_by as ours does (ours antialiases when it shrinks, as ImageScale)
    "ImageScaleBy": Equivalent("ImageScaleBy", ("image",), {"image": "images", "upscale_method": "method",
                                                            "scale_by": "amount"},
                               values={"method": {"nearest-exact": "nearest"}}, fixed={"mode": "factor"}),
    # ComfyUI's megapixel is 1024 × 1024 pixels, ours 10^6; its resolution_steps our multiple_of
    "ImageScaleToTotalPixels": Equivalent("ImageScaleBy", ("image",), {"image": "images", "upscale_method": "method",
                                                                       "megapixels": "amount",
                                                                       "resolution_steps": "multiple_of"},
                                          values={"method": {"nearest-exact": "nearest"}},
                                          fixed={"mode": "megapixels"}, scaled={"amount": 1024 * 1024 / 1e6}),
    # ComfyUI's width / height are pixels at 8 a latent cell; ours are the latent's own pixels (an imported
    # EmptyLatent gets the graph's VAE), and as there one side 0 keeps the aspect ratio (LatentUpscale 1.2)
    "LatentUpscale": Equivalent("LatentUpscale", ("latent",), {"samples": "latent", "upscale_method": "method"},
                                values={"method": {"nearest-exact": "nearest"}}, no_ops={"crop": "disabled"}),
    # each side round(side × scale_by), as ComfyUI's (our `factor` when width and height are 0, their defaults)
    "LatentUpscaleBy": Equivalent("LatentUpscale", ("latent",), {"samples": "latent", "upscale_method": "method",
                                                                 "scale_by": "factor"},
                                  values={"method": {"nearest-exact": "nearest"}}),
    # "upload" (older ComfyUI: "choose file to upload") is the upload button's widget, its value "image"
    "LoadImage": Equivalent("LoadImage", ("image", "mask"), no_ops=_UPLOAD_WIDGETS,
                            input_files=frozenset({"image"})),
    # channel alpha is 1 − alpha (as LoadImage's mask), red / green / blue the channel itself, in both
    "LoadImageMask": Equivalent("LoadImageMask", ("mask",), no_ops=_UPLOAD_WIDGETS,
                                input_files=frozenset({"image"})),
    # both take the largest value within `expand` pixels (negative: the smallest), a square step, or with
    # tapered_corners a cross-shaped one (a diamond: ComfyUI's default); the image's edge changes nothing in both
    "GrowMask": Equivalent("MaskOperation", ("mask",), {"expand": "amount"}, fixed={"operation": "grow"}),
    "SaveImage": Equivalent("SaveImage", ()),
    "PreviewImage": Equivalent("PreviewImage", ()),
    # ComfyUI's core primitive nodes (comfy_extras): one `value` input, one output
    "PrimitiveInt": Equivalent("Int", ("value",)),
    "PrimitiveFloat": Equivalent("Float", ("value",)),
    "PrimitiveBoolean": Equivalent("Boolean", ("value",)),
    "PrimitiveString": Equivalent("String", ("value",)),
    "PrimitiveStringMultiline": Equivalent("String", ("value",)),
    # --- ComfyUI's custom-sampling classes (comfy_extras/nodes_custom_sampler.py), and same-named nodes here whose
    # inputs ComfyUI names otherwise: listed so an API prompt's names are renamed (a UI workflow's widget order is
    # WIDGET_NAMES'). Each input kept means the same in both.
    "RandomNoise": Equivalent("RandomNoise", ("noise",), {"noise_seed": "seed"}),    # the CPU noise of that seed
    "DisableNoise": Equivalent("DisableNoise", ("noise",)),
    "CFGGuider": Equivalent("CFGGuider", ("guider",)),          # ComfyUI's has no rescale / sigma range: defaults
    # ComfyUI's Guider_Basic evaluates the positive only; ours with cfg 1 and no negative does the same (a negative
    # is needed only for another cfg)
    "BasicGuider": Equivalent("CFGGuider", ("guider",), {"conditioning": "positive"}, fixed={"cfg": 1.0}),
    "KSamplerSelect": Equivalent("SelectSampler", ("sampler",), {"sampler_name": "sampler"},
                                 {"sampler": _SAMPLER_NAMES}),
    # ComfyUI's second output (denoised_output, the last x0 prediction) has no equivalent: a link to it is named so
    # and validation says Sample has no such output
    "SamplerCustomAdvanced": Equivalent("Sample", ("latent", "denoised_output"), {"latent_image": "latent"}),
    # both: high = sigmas[:step + 1], low = sigmas[step:] (ComfyUI's step 0, no high part, is refused by ours)
    "SplitSigmas": Equivalent("SplitSigmas", ("high", "low")),
    "FluxGuidance": Equivalent("FluxGuidance", ("conditioning",)),
    # both: mu linear in the image's 16-pixel patches, from base_shift at 256 to max_shift at 4096
    "ModelSamplingFlux": Equivalent("ModelSamplingFlux", ("model",)),
    "ModelSamplingSD3": Equivalent("ModelSamplingSD3", ("model",)),
    # ComfyUI's SD3 / Flux empty latent: zeros of 16 channels at 1/8 of the size (ours without a VAE linked)
    "EmptySD3LatentImage": Equivalent("EmptyLatent", ("latent",), fixed={"channels": 16}),
    "InvertMask": Equivalent("MaskOperation", ("mask",), fixed={"operation": "invert"}),     # 1 − mask in both
    "MaskToImage": Equivalent("MaskToImage", ("image",)),
    # ComfyUI's channel red / green / blue / alpha (ours has no alpha: validation names what it has)
    "ImageToMask": Equivalent("ImageToMask", ("mask",), {"image": "images"}),
    # a crop past the image: ComfyUI clamps it, ours refuses it by name
    "ImageCrop": Equivalent("ImageCrop", ("image",), {"image": "images"}),
    # images of another size: ComfyUI scales the second to the first's, ours refuses them by name
    "ImageBatch": Equivalent("ImageBatch", ("images",), {"image1": "a", "image2": "b"}),
    # both: `steps` steps from the end of a schedule of int(steps / denoise) (ComfyUI's denoise 0, no step, is
    # refused by ours)
    "BasicScheduler": Equivalent("Schedule", ("sigmas",)),
}
# ComfyUI's default titles (its display names) of the classes above: a UI workflow omits a title left at its default,
# and ComfyUI's %Title.input% file-name tokens match them (`prefix_tokens`)
DISPLAY_NAMES: dict[str, tuple[str, ...]] = {
    "CheckpointLoaderSimple": ("Load Checkpoint",), "CLIPTextEncode": ("CLIP Text Encode (Prompt)",),
    "EmptyLatentImage": ("Empty Latent Image",), "KSampler": ("KSampler",),
    "KSamplerAdvanced": ("KSampler (Advanced)",),
    "VAEDecode": ("VAE Decode",), "VAEEncode": ("VAE Encode",), "VAEEncodeForInpaint": ("VAE Encode (for Inpainting)",),
    "SetLatentNoiseMask": ("Set Latent Noise Mask",), "VAELoader": ("Load VAE",), "LoraLoader": ("Load LoRA",),
    "ControlNetLoader": ("Load ControlNet Model",),
    "ControlNetApplyAdvanced": ("Apply ControlNet", "Apply ControlNet (Advanced)"),
    "UpscaleModelLoader": ("Load Upscale Model",), "ImageUpscaleWithModel": ("Upscale Image (using Model)",),
    "ImageScale": ("Upscale Image",), "ImageScaleBy": ("Upscale Image By",), "LatentUpscale": ("Upscale Latent",),
    "LatentUpscaleBy": ("Upscale Latent By",), "LoadImage": ("Load Image",),
    "LoadImageMask": ("Load Image (as Mask)",), "SaveImage": ("Save Image",),
    "PreviewImage": ("Preview Image",),
}
# Widgets of ComfyUI's UI, not inputs of a node (a hand-written or older API prompt may carry them): dropped.
UI_WIDGETS = frozenset({"control_after_generate", "control_before_generate"})


def translate_inputs(equivalent: Equivalent, inputs: dict[str, Any],
                     changed: list[tuple[str, str, str]] | None = None) -> dict[str, Any]:
    """A ComfyUI entry's inputs as our node's: renamed, known values translated, no-op inputs dropped.

    Each translated value is appended to `changed` as (our input, ComfyUI's value, ours), so an import
    can say what it changed (a file name that now means a built-in model, say)."""
    out: dict[str, Any] = {}
    for name, value in inputs.items():
        if ((name in equivalent.no_ops and value == equivalent.no_ops[name]) or name in UI_WIDGETS
                or name in equivalent.dropped):
            continue
        ours = equivalent.inputs.get(name, name)
        table = equivalent.values.get(ours)
        if table is not None and isinstance(value, str) and value in table:
            if changed is not None:
                changed.append((ours, value, table[value]))
            value = table[value]
        elif name in equivalent.input_files and isinstance(value, str) and value.endswith(" [input]"):
            if changed is not None:      # ComfyUI's LoadImage list writes where a file is: here it is the input folder
                changed.append((ours, value, value.removesuffix(" [input]")))
            value = value.removesuffix(" [input]")
        if ours in equivalent.scaled and isinstance(value, (int, float)) and not isinstance(value, bool):
            scaled = value * equivalent.scaled[ours]
            if changed is not None:      # said, so a range error on `amount` is read against what the user wrote
                changed.append((ours, f"{name}={value:g} (ComfyUI's unit)", scaled))
            value = scaled
        out[ours] = value
    return {**out, **equivalent.fixed}


# KSamplerAdvanced over the whole schedule, with its noise added and none left over, is KSampler (noise_seed its seed)
_WHOLE_SCHEDULE_KSAMPLER = Equivalent("KSampler", ("latent",), {"noise_seed": "seed", "latent_image": "latent",
                                                                "sampler_name": "sampler"}, {"sampler": _SAMPLER_NAMES},
                                      dropped=frozenset({"add_noise", "start_at_step", "end_at_step",
                                                         "return_with_leftover_noise",
                                                         "denoise"}))    # not an input of KSamplerAdvanced


def _runs_whole_schedule(inputs: dict[str, Any]) -> bool:
    """A KSamplerAdvanced that adds its noise and runs from step 0 to at least `steps` (literal values): a
    KSampler, its leftover-noise switch changing nothing."""
    steps, start, end = (_as_count(inputs.get("steps")), _as_count(inputs.get("start_at_step", 0)),
                         _as_count(inputs.get("end_at_step", 10000)))
    return (None not in (steps, start, end) and inputs.get("add_noise", "enable") == "enable"
            and start == 0 and end >= steps)


def _as_count(value: Any) -> int | None:
    """A step count as ComfyUI reads an INT (it takes `int(value)`: "4" and 4.0 are 4), or None: only to decide
    what a KSamplerAdvanced is — the value itself is translated as written, and validation names its type (a
    "4" read as partial-schedule was refused as one, a message about the wrong thing)."""
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 20:
        return int(value)
    return None


# classes whose equivalent depends on the entry's values: class → (when it applies, the equivalent)
# ImageCompositeMasked without resize_source is CompositeImages: source pasted with its top-left at (x, y), through
# the mask (1 = source); ComfyUI stretches a mask of another size to the source's, ours refuses it by name
_COMPOSITE_AS_IS = Equivalent("CompositeImages", ("image",), dropped=frozenset({"resize_source"}))

BY_VALUES: dict[str, tuple[Callable[[dict[str, Any]], bool], Equivalent]] = {
    "KSamplerAdvanced": (_runs_whole_schedule, _WHOLE_SCHEDULE_KSAMPLER),
    "ImageCompositeMasked": (lambda inputs: inputs.get("resize_source", False) is False, _COMPOSITE_AS_IS),
}

# DualCLIPLoader of type flux is LoadFluxTextEncoders: ComfyUI tells its two files apart by their weights, ours takes
# the CLIP-L and the T5-XXL by name, so the file whose name says T5 is the T5 (either order); its `device` "default"
# changes nothing. Another type, or names that do not say which is the T5, stay a placeholder (`INSTEAD`).
_FLUX_ENCODERS_T5_FIRST = Equivalent("LoadFluxTextEncoders", ("text_encoder",),
                                     {"clip_name1": "t5_name", "clip_name2": "clip_name"},
                                     no_ops={"device": "default"}, dropped=frozenset({"type"}))
_FLUX_ENCODERS_T5_SECOND = Equivalent("LoadFluxTextEncoders", ("text_encoder",),
                                      {"clip_name1": "clip_name", "clip_name2": "t5_name"},
                                      no_ops={"device": "default"}, dropped=frozenset({"type"}))


def _dual_clip_loader(inputs: dict[str, Any]) -> Equivalent | None:
    """The LoadFluxTextEncoders a DualCLIPLoader is (`_FLUX_ENCODERS_T5_FIRST` / `_SECOND`), or None."""
    names = [inputs.get("clip_name1"), inputs.get("clip_name2")]
    if inputs.get("type") != "flux" or not all(isinstance(name, str) for name in names):
        return None
    says_t5 = ["t5" in name.lower() for name in names]
    if says_t5 == [True, False]:
        return _FLUX_ENCODERS_T5_FIRST
    if says_t5 == [False, True]:
        return _FLUX_ENCODERS_T5_SECOND
    return None


def translated_as(class_type: str) -> Equivalent | None:
    """The equivalent an entry of `class_type` got when it was translated (`metadata.comfyui_types` lists those)."""
    if class_type == "DualCLIPLoader":
        return _FLUX_ENCODERS_T5_FIRST       # the same type and outputs either way
    return BY_VALUES[class_type][1] if class_type in BY_VALUES else EQUIVALENTS.get(class_type)


def equivalent_for(class_type: str, inputs: dict[str, Any],
                   plugin_classes: Mapping[str, Equivalent] | None = None) -> Equivalent | None:
    """Our node for one ComfyUI entry: its class's equivalent, or, for a class in BY_VALUES, its equivalent when
    the entry's values allow it (a KSamplerAdvanced over the whole schedule is KSampler), else a plugin's for its
    class (`register_comfyui_classes`: a core class such as LoadAudio, or its own pack's); None when there is none
    (the entry keeps its type: a built-in node type's name such as `Int` or `CFGGuider` is then our node). The
    built-in table comes first, and the loader refuses a plugin entry named as a class of that table or as a
    built-in node type (`plugins._comfyui_class_problems`), so no plugin changes how those import."""
    if class_type in BY_VALUES:
        applies, equivalent = BY_VALUES[class_type]
        if applies(inputs):
            return equivalent
        if class_type == "KSamplerAdvanced" and split_schedule_problem(inputs) is None:
            return SPLIT_SCHEDULE_SAMPLE     # Schedule → SplitSigmas → Sample (`split_schedule_nodes`)
        return None
    if class_type == "DualCLIPLoader":
        return _dual_clip_loader(inputs)
    return EQUIVALENTS.get(class_type) or (plugin_classes or {}).get(class_type)


# --- a KSamplerAdvanced over part of a schedule: several of our nodes ------------------------------------------
# ComfyUI's KSamplerAdvanced (nodes.py `common_ksampler`, comfy/samplers.py `KSampler.sample`): the schedule of
# `steps` is cut to sigmas[:end_at_step + 1] when end_at_step < steps — its last sigma set to 0 unless
# return_with_leftover_noise is enable — then to sigmas[start_at_step:]; a cut that leaves no step returns the
# latent unchanged. add_noise enable adds noise_seed's noise (drawn on the CPU, as our RandomNoise's is) × the
# first sigma; disable adds none. Both the same as our Schedule → SplitSigmas (`low` from start_at_step, `high`
# up to end_at_step) → Sample with RandomNoise / DisableNoise, except the last sigma set to 0 (no node here
# builds that schedule): that one case stays a placeholder (`INSTEAD`).

#: the node a KSamplerAdvanced over part of its schedule becomes (keeping the entry's id and output), with the
#: other nodes `split_schedule_nodes` makes beside it
SPLIT_SCHEDULE_SAMPLE = Equivalent("Sample", ("latent",))
# the ids of those other nodes: the entry's id and these suffixes ("10.schedule"), in the order they feed
SPLIT_SCHEDULE_PARTS = ("schedule", "split_start", "split_end", "guider", "sampler", "noise")


def split_schedule_problem(inputs: dict[str, Any]) -> str | None:
    """Why a KSamplerAdvanced that is not a KSampler cannot be Schedule → SplitSigmas → Sample here, or None.

    Decided on literal values only (a link's value is known when the graph runs, not when it is imported)."""
    steps, start, end = (_as_count(inputs.get("steps")), _as_count(inputs.get("start_at_step", 0)),
                         _as_count(inputs.get("end_at_step", 10000)))
    if None in (steps, start, end) or any(isinstance(inputs.get(name), (list, dict))
                                          for name in ("add_noise", "return_with_leftover_noise")):
        return "its steps, start_at_step, end_at_step, add_noise and return_with_leftover_noise must be values"
    if steps < 1 or start < 0 or start >= min(end, steps):
        return "it runs no step (start_at_step at or past end_at_step or steps: ComfyUI passes the latent on)"
    if end < steps and inputs.get("return_with_leftover_noise", "disable") != "enable":
        return "it stops before the last step with return_with_leftover_noise disable (its last step goes to 0)"
    return None


def split_schedule_nodes(node_id: str, inputs: dict[str, Any],
                         changed: list[tuple[str, str, str]] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """A KSamplerAdvanced over part of its schedule as our nodes: (the Sample's inputs, the other nodes by id).

    `inputs` are the entry's, its links already ours ({"node", "output"}). The Sample keeps the entry's id, so
    links to it stay as they were; the others are `<id>.schedule` (Schedule over all `steps`), `<id>.split_start`
    (SplitSigmas at start_at_step, its `low`; only when that is past 0), `<id>.split_end` (SplitSigmas at
    end_at_step − start_at_step, its `high`; only when end_at_step is before `steps`), `<id>.guider`
    (CFGGuider), `<id>.sampler` (SelectSampler) and `<id>.noise` (RandomNoise with noise_seed, or DisableNoise
    for add_noise disable). Values translated (the sampler name) are appended to `changed` as translate_inputs
    does. Call it only where `split_schedule_problem(inputs)` is None."""
    steps, start, end = (_as_count(inputs.get("steps")), _as_count(inputs.get("start_at_step", 0)),
                         _as_count(inputs.get("end_at_step", 10000)))
    ids = {part: f"{node_id}.{part}" for part in SPLIT_SCHEDULE_PARTS}
    made: dict[str, Any] = {ids["schedule"]: {"type": "Schedule", "inputs": {
        **_present(inputs, "model", "scheduler"), "steps": inputs["steps"]}}}
    sigmas = {"node": ids["schedule"], "output": "sigmas"}
    if start > 0:
        made[ids["split_start"]] = {"type": "SplitSigmas", "inputs": {"sigmas": sigmas, "step": start}}
        sigmas = {"node": ids["split_start"], "output": "low"}
    if end < steps:
        made[ids["split_end"]] = {"type": "SplitSigmas", "inputs": {"sigmas": sigmas, "step": end - start}}
        sigmas = {"node": ids["split_end"], "output": "high"}
    made[ids["guider"]] = {"type": "CFGGuider", "inputs": _present(inputs, "model", "positive", "negative", "cfg")}
    sampler = inputs.get("sampler_name")
    if isinstance(sampler, str) and sampler in _SAMPLER_NAMES:
        if changed is not None:
            changed.append(("sampler", sampler, _SAMPLER_NAMES[sampler]))
        sampler = _SAMPLER_NAMES[sampler]
    made[ids["sampler"]] = {"type": "SelectSampler", "inputs": {} if sampler is None else {"sampler": sampler}}
    if inputs.get("add_noise", "enable") == "disable":
        made[ids["noise"]] = {"type": "DisableNoise", "inputs": {}}
    else:
        made[ids["noise"]] = {"type": "RandomNoise",
                              "inputs": {"seed": inputs["noise_seed"]} if "noise_seed" in inputs else {}}
    handled = {"model", "scheduler", "steps", "start_at_step", "end_at_step", "positive", "negative", "cfg",
               "sampler_name", "add_noise", "noise_seed", "return_with_leftover_noise", "latent_image",
               "denoise"} | UI_WIDGETS     # denoise: no input of KSamplerAdvanced (ComfyUI ignores a stray one)
    sample = {"guider": {"node": ids["guider"], "output": "guider"},
              "sampler": {"node": ids["sampler"], "output": "sampler"}, "sigmas": sigmas,
              "noise": {"node": ids["noise"], "output": "noise"},
              **({"latent": inputs["latent_image"]} if "latent_image" in inputs else {}),
              # anything else stays on the Sample, so validation names it rather than it vanishing
              **{name: value for name, value in inputs.items() if name not in handled}}
    return sample, made


def _present(inputs: dict[str, Any], *names: str) -> dict[str, Any]:
    """The entry's inputs of these names that it has (a missing one is left for validation to name)."""
    return {name: inputs[name] for name in names if name in inputs}


MAX_CLIP_SKIP = 24       # EncodeText's clip_skip bound; ComfyUI's stop_at_clip_layer goes down to -24


def _is_link(value: Any) -> bool:
    """Whether an API prompt's input value is a link `[source id, output index]` (as ComfyUI reads one)."""
    return isinstance(value, list) and len(value) == 2 and type(value[0]) in (str, int) and type(value[1]) is int


def fold_clip_set_last_layer(prompt: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An API prompt without its CLIPSetLastLayer entries, their layer set as `clip_skip` on the encoders they feed.

    CLIPSetLastLayer (in nearly every SD1.5 workflow) has no node here: it is EncodeText's `clip_skip`
    (stop_at_clip_layer -1 is clip_skip 1, -2 is 2, …). Each one with a literal stop_at_clip_layer from -24 to -1 is
    left out, the links from it go to its own `clip` source (so on up to the checkpoint's or a LoRA's text
    encoder), and every CLIPTextEncode its CLIP reaches — straight, or through LoraLoaders, which keep the layer
    in ComfyUI too — gets the clip_skip. A later CLIPSetLastLayer on the way sets its own (ComfyUI's last one
    wins). A consumer of another type cannot take a clip_skip: it is named in `not_reached`. A muted or bypassed
    one, or one whose value is a link or out of range, stays (validation says what to do: `INSTEAD`).

    Returns the prompt (entries changed are copies) and one record per fold: {"node", "stop_at_clip_layer",
    "clip_skip", "encoders": ids given the clip_skip, "not_reached": [{"node", "type"}]}."""
    entries = {str(key): value for key, value in prompt.items()}

    def foldable(entry: Any) -> bool:
        if not isinstance(entry, dict) or entry.get("class_type") != "CLIPSetLastLayer":
            return False
        inputs, meta = entry.get("inputs"), entry.get("_meta")
        stop = inputs.get("stop_at_clip_layer") if isinstance(inputs, dict) else None
        return (type(stop) is int
                and -MAX_CLIP_SKIP <= stop <= -1 and _is_link(inputs.get("clip"))
                and str(inputs["clip"][0]) in entries
                and not (isinstance(meta, dict) and meta.get("mode") in ("mute", "bypass")))

    folds = {node_id for node_id, entry in entries.items() if foldable(entry)}

    def root(link: list) -> list | None:
        """The CLIP a link to a folded entry carries: the first source up its `clip` inputs that is not folded
        (None for a loop of them, which stay as they are)."""
        seen: set[str] = set()
        while str(link[0]) in folds:
            if str(link[0]) in seen:
                return None
            seen.add(str(link[0]))
            link = entries[str(link[0])]["inputs"]["clip"]
        return link

    folds = {node_id for node_id in folds if root([node_id, 0]) is not None}
    if not folds:
        return prompt, []
    consumers: dict[tuple[str, int], list[tuple[str, str]]] = {}    # (source id, output) → (consumer id, its input)
    for node_id, entry in entries.items():
        inputs = entry.get("inputs") if isinstance(entry, dict) else None
        for name, value in (inputs or {}).items() if isinstance(inputs, dict) else ():
            if _is_link(value):
                consumers.setdefault((str(value[0]), value[1]), []).append((node_id, name))
    out = {node_id: entry for node_id, entry in entries.items() if node_id not in folds}
    records = []
    for fold_id in [node_id for node_id in entries if node_id in folds]:
        stop = entries[fold_id]["inputs"]["stop_at_clip_layer"]
        record: dict[str, Any] = {"node": fold_id, "stop_at_clip_layer": stop, "clip_skip": -stop, "encoders": [],
                                  "not_reached": []}
        pending, seen = [((fold_id, 0), True)], set()
        while pending:                     # the CLIP's users, on through LoraLoaders' clip output (index 1)
            source, from_fold = pending.pop()
            for consumer, name in consumers.get(source, []):
                if consumer in folds or (consumer, name) in seen:
                    continue                # a later CLIPSetLastLayer sets its own layer
                seen.add((consumer, name))
                entry = out[consumer] = {**out[consumer], "inputs": dict(out[consumer]["inputs"])}
                if from_fold:
                    entry["inputs"][name] = list(root([fold_id, 0]))
                kind = entry.get("class_type")
                if kind == "CLIPTextEncode":
                    entry["inputs"]["clip_skip"] = -stop
                    record["encoders"].append(consumer)
                elif kind == "LoraLoader" and name == "clip":
                    pending.append(((consumer, 1), False))
                else:
                    record["not_reached"].append({"node": consumer, "type": str(kind)[:200]})
        records.append(record)
    return out, records


def fold_note(record: dict[str, Any]) -> dict[str, Any]:
    """A `fold_clip_set_last_layer` record as a `metadata.translated_values` entry (`nodegraph run` prints those)."""
    encoders = ", ".join(record["encoders"][:20]) + (" …" if len(record["encoders"]) > 20 else "")
    to = f"clip_skip {record['clip_skip']} on EncodeText {encoders}" if encoders else "no EncodeText's clip_skip"
    missed = ", ".join(f"{n['node']} ({n['type']})" for n in record["not_reached"][:5])
    if missed:
        to += f"; not set on {missed}: they take no clip_skip here"
    return {"node": record["node"], "input": "stop_at_clip_layer", "from": record["stop_at_clip_layer"],
            "to": f"{to} (CLIPSetLastLayer left out)"}


# --- UI-format workflows -----------------------------------------------------------------------------

# A UI workflow (what ComfyUI's Save writes, and the "workflow" chunk of its PNGs) lists each node's widget
# values by position; these are the positions of the classes above (and the seed's "control after
# generate" widget, which is the UI's, not an input). Other classes keep their values unnamed (`widgets_values`).
WIDGET_NAMES: dict[str, tuple[str, ...]] = {
    "CheckpointLoaderSimple": ("ckpt_name",),
    "CLIPTextEncode": ("text",),
    "EmptyLatentImage": ("width", "height", "batch_size"),
    "KSampler": ("seed", None, "steps", "cfg", "sampler_name", "scheduler", "denoise"),
    "VAEDecode": (), "VAEEncode": (), "SetLatentNoiseMask": (), "ImageUpscaleWithModel": (), "PreviewImage": (),
    "VAEEncodeForInpaint": ("grow_mask_by",),
    "KSamplerAdvanced": ("add_noise", "noise_seed", None, "steps", "cfg", "sampler_name", "scheduler",
                         "start_at_step", "end_at_step", "return_with_leftover_noise"),
    "LatentUpscaleBy": ("upscale_method", "scale_by"), "ImageScaleBy": ("upscale_method", "scale_by"),
    "ModelMergeSimple": ("ratio",), "CLIPMergeSimple": ("ratio",),
    "ImageScaleToTotalPixels": ("upscale_method", "megapixels", "resolution_steps"),
    "VAELoader": ("vae_name",),
    "UNETLoader": ("unet_name", "weight_dtype"),
    "LoraLoader": ("lora_name", "strength_model", "strength_clip"),
    "LoraLoaderModelOnly": ("lora_name", "strength_model"),
    "ControlNetLoader": ("control_net_name",),
    "ControlNetApplyAdvanced": ("strength", "start_percent", "end_percent"),
    "UpscaleModelLoader": ("model_name",),
    "ImageScale": ("upscale_method", "width", "height", "crop"),
    "LatentUpscale": ("upscale_method", "width", "height", "crop"),
    "LoadImage": ("image", "upload"),
    "LoadImageMask": ("image", "channel", "upload"),
    "CLIPSetLastLayer": ("stop_at_clip_layer",),      # folded into EncodeText's clip_skip on import
    "GrowMask": ("expand", "tapered_corners"),
    "ImageCompositeMasked": ("x", "y", "resize_source"),
    "SaveImage": ("filename_prefix",),
    "PrimitiveInt": ("value", None), "PrimitiveFloat": ("value",), "PrimitiveBoolean": ("value",),
    "PrimitiveString": ("value",), "PrimitiveStringMultiline": ("value",),
    # custom sampling and the same-named nodes here: ComfyUI's widget order, which need not be our inputs' order
    # (ModelSamplingFlux: max_shift, base_shift, width, height; ours width first). A core class's type here must
    # have its entry (tests/engine/test_comfyui_core_classes.py), so none is named by our order.
    "RandomNoise": ("noise_seed", None), "DisableNoise": (), "CFGGuider": ("cfg",), "BasicGuider": (),
    "KSamplerSelect": ("sampler_name",), "BasicScheduler": ("scheduler", "steps", "denoise"),
    "SamplerCustomAdvanced": (), "SplitSigmas": ("step",), "AddNoise": (),
    "FluxGuidance": ("guidance",), "ModelSamplingFlux": ("max_shift", "base_shift", "width", "height"),
    "ModelSamplingSD3": ("shift",), "EmptySD3LatentImage": ("width", "height", "batch_size"),
    "DualCLIPLoader": ("clip_name1", "clip_name2", "type", "device"),
    "InvertMask": (), "MaskToImage": (), "ImageToMask": ("channel",), "ImageBatch": (),
    "ImageCrop": ("width", "height", "x", "y"), "ImageBlend": ("blend_factor", "blend_mode"),
    "SelfAttentionGuidance": ("scale", "blur_sigma"), "PerturbedAttentionGuidance": ("scale",),
}
_UI_ONLY = ("Note", "MarkdownNote", "PrimitiveNode", "Reroute")    # no node of the prompt: resolved, or notes
_NOTE_TYPES = ("Note", "MarkdownNote")                               # text on the canvas: `workflow_notes`
_MODES = {2: "mute", 4: "bypass"}                                    # ComfyUI's "never" and "bypass"
_SEED_CONTROLS = ("fixed", "increment", "decrement", "randomize")    # a seed widget's "control after generate"


_SEED_MODES = {"randomize": "randomize", "increment": "increment", "decrement": "decrement"}   # ComfyUI's → the editor's
_HEX_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")


def _seed_modes(controls: Mapping[str, Any], renamed: Mapping[str, str]) -> dict[str, str]:
    """The editor's `ui.nodes.<id>.seed_modes` for a node's "control after generate" widgets ({ComfyUI input: its
    value}), named by our input (`renamed`: the equivalent's ComfyUI → our names, noise_seed → seed): "randomize" and
    "increment" / "decrement" as they are, "fixed" (the editor's default for a loaded seed) and anything else left
    out, so a ComfyUI user's Run again draws or steps the seed as in ComfyUI (an import that made them all fixed
    gave the same image, from the cache)."""
    return {renamed.get(name, name): _SEED_MODES[value] for name, value in controls.items()
            if isinstance(value, str) and value in _SEED_MODES}


def _node_colors(node: Mapping[str, Any]) -> dict[str, str]:
    """A UI workflow node's `color` (its title bar) and `bgcolor` (its body) when each is a hex colour ("#322", as
    ComfyUI's colour menu writes): the editor shows them from `ui.nodes.<id>`; anything else is left out (never CSS
    text)."""
    return {key: node[key].lower() for key in ("color", "bgcolor")
            if isinstance(node.get(key), str) and _HEX_COLOR.fullmatch(node[key])}


class WidgetValuesWarning(UserWarning):
    """A UI workflow's node has more or fewer `widgets_values` than the widgets its type is known to have: they
    were named in order, so a value may have landed on the wrong input or been left out (`workflow_to_prompt`)."""


def _without_sockets(names: tuple[str | None, ...], slots: Any,
                     plugin_class: Equivalent | None = None) -> tuple[str | None, ...]:
    """Widget names less the inputs the workflow has as sockets only — listed in the node's `inputs` without a
    `widget` (ComfyUI's `forceInput`, a STRING that only takes a link): they have no value in `widgets_values`,
    and naming values by position without skipping them put each value on the next input (a Save Text File's
    path landed in its filename_prefix). A seed's control slot (None) after a skipped input goes with it. (ComfyUI
    marks a widget converted to an input with `widget`; a hand-written file that does not, its value still
    written, gets a `WidgetValuesWarning` for the extra value: the link is used either way.)"""
    sockets = {slot["name"] for slot in slots if isinstance(slot, dict) and isinstance(slot.get("name"), str)
               and not isinstance(slot.get("widget"), dict)} if isinstance(slots, list) else set()
    if plugin_class is not None:         # our names for them too, as `widget_names(type)` gives ours
        sockets |= {plugin_class.inputs.get(name, name) for name in sockets}
    out: list[str | None] = []
    skipped = False
    for name in names:
        if name is None and skipped:
            continue
        skipped = name is not None and name in sockets
        if not skipped:
            out.append(name)
    return tuple(out)


def _ui_only_extras(names: tuple[str | None, ...], values: list) -> bool:
    """Whether the values past the widgets are only empty ones ("" or null): the state of a widget of ComfyUI's UI
    that is no input (SaveAnimatedWEBP's preview writes a trailing ""), nothing lost by leaving them out."""
    return len(values) > len(names) and all(value in ("", None) for value in values[len(names):])


def _widget_count_message(node_id: str, node_type: str, names: tuple[str | None, ...], values: list) -> str:
    """What `WidgetValuesWarning` says: the node, both counts, what became of the difference, and who can fix the
    order (a ComfyUI core class's is nodegraph's own table, comfyui.WIDGET_NAMES; a pack's, its plugin)."""
    shown = ", ".join(name or "(control after generate)" for name in names)
    what = (f"the last {len(values) - len(names)} value(s) were left out ({values[len(names):]!r:.120})"
            if len(values) > len(names) else f"input(s) {', '.join(n for n in names[len(values):] if n)} kept "
                                              f"their defaults")
    if node_type in COMFYUI_CORE_CLASSES:
        fix = (f"{node_type} is a ComfyUI core class: check those inputs' values, and report it to nodegraph "
               f"(its widget order belongs in nodegraph/comfyui.py WIDGET_NAMES)")
    else:
        fix = ("if the node's widgets are in another order than its inputs, the plugin that ports it can give that "
               "order with register_comfyui_classes(..., widgets=(...)) (docs/plugins.md, 'Porting a ComfyUI node')")
    return (f"ComfyUI workflow node {node_id} ({node_type}) has {len(values)} widget values for {len(names)} "
            f"widgets ({shown}): they were named in order and {what}; {fix}")


class WorkflowError(ValueError):
    """A UI workflow that cannot be read (its nodes or links are not what ComfyUI writes)."""


MAX_CANVAS = 10_000_000     # canvas coordinates beyond this are no layout a person made (a group there is left out)


def workflow_groups(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """A UI workflow's groups (`groups[]`: title, `bounding` [x, y, w, h], color) as our `ui.groups` entries
    ({id, title, color "#rrggbb", bounds}); malformed ones are left out, at most 500. Give it the workflow with
    its subgraphs expanded (`expand_subgraphs`, as `import_foreign` does once for groups, notes and nodes): the
    groups of each definition come along there, offset with its inner nodes, and the outer ones are moved with the
    room made for them."""
    groups = []
    raw = workflow.get("groups")
    for group in raw[:500] if isinstance(raw, list) else []:
        if not isinstance(group, dict):
            continue
        bounds = group.get("bounding")
        if not (isinstance(bounds, list) and len(bounds) == 4
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                        and abs(v) <= MAX_CANVAS for v in bounds)
                and bounds[2] > 0 and bounds[3] > 0):
            continue
        title = group.get("title") if isinstance(group.get("title"), str) else "Group"
        color = group.get("color") if isinstance(group.get("color"), str) else ""
        if re.fullmatch(r"#[0-9a-fA-F]{3}", color):
            color = "#" + "".join(ch * 2 for ch in color[1:])
        groups.append({"id": f"comfyui-group-{len(groups) + 1}", "title": title[:200],
                       "color": color.lower() if re.fullmatch(r"#[0-9a-fA-F]{6}", color) else "#3f789e",
                       "bounds": [round(v) for v in bounds]})
    return groups


MAX_NOTES = 500            # notes kept from one workflow (a note's text: at most graph.MAX_NOTE_TEXT characters)
_NOTE_SIZE = (300, 120)     # a note written without a size: about ComfyUI's


def _canvas_size(value: Any) -> list[float] | None:
    """`[w, h]` of a size written as ComfyUI writes one (a list, or {"0": w, "1": h}), each finite, above 0 and at
    most MAX_CANVAS; else None."""
    if isinstance(value, dict):
        value = [value.get("0"), value.get("1")]
    point = _canvas_point(value)
    return point if point is not None and point[0] > 0 and point[1] > 0 else None


def workflow_notes(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """A UI workflow's Note and MarkdownNote nodes (their text is `widgets_values[0]`) as our `ui.notes` entries
    ({"id": "comfyui-note-<node id>", "text", "bounds": [x, y, w, h], "color"?}: the node's `pos` and `size`, its
    body colour `bgcolor` — else its title colour — when that is hex), in workflow order; the text plain, cut to
    MAX_NOTE_TEXT characters, Markdown as written. A note without a position, or past MAX_NOTES, is left out.
    Call it on the workflow with its subgraphs expanded (`expand_subgraphs`): a note inside one is then where
    its instance stood. The editor shows them as notes on the canvas; nothing runs them."""
    notes: list[dict[str, Any]] = []
    raw = workflow.get("nodes")
    for node in raw if isinstance(raw, list) else []:
        if len(notes) >= MAX_NOTES:
            break
        if not isinstance(node, dict) or node.get("type") not in _NOTE_TYPES or type(node.get("id")) not in (int, str):
            continue
        position = node.get("pos")
        if isinstance(position, dict):
            position = [position.get("0"), position.get("1")]
        point = _canvas_point(position)
        if point is None:
            continue
        size = _canvas_size(node.get("size")) or list(_NOTE_SIZE)
        values = node.get("widgets_values")
        text = values[0] if isinstance(values, list) and values and isinstance(values[0], str) else ""
        note: dict[str, Any] = {"id": f"comfyui-note-{str(node['id'])[:100]}", "text": text[:MAX_NOTE_TEXT],
                                "bounds": [round(point[0]), round(point[1]), round(size[0]), round(size[1])]}
        colors = _node_colors(node)
        if color := colors.get("bgcolor") or colors.get("color"):
            note["color"] = color
        notes.append(note)
    return notes


def _bypass_input_link(node: dict[str, Any], slot: int, wanted: Any = None) -> Any:
    """The link a bypassed UI node passes to its output `slot`: its input of the same slot when that has the
    type `wanted` (the consuming input's, as ComfyUI's frontend matches it; without one or for "*", the output's) and a
    link, else its first linked input of that type (by the types the workflow wrote); None."""
    outputs = node.get("outputs") if isinstance(node.get("outputs"), list) else []
    inputs = [i for i in node.get("inputs") if isinstance(i, dict)] if isinstance(node.get("inputs"), list) else []
    if not isinstance(wanted, str) or wanted == "*":       # a consumer that takes anything: by the output's type
        wanted = outputs[slot].get("type") if 0 <= slot < len(outputs) and isinstance(outputs[slot], dict) else None
    if not isinstance(wanted, str):
        return None
    same = inputs[slot] if slot < len(inputs) else None
    if same is not None and same.get("type") == wanted and same.get("link") is not None:
        return same["link"]
    return next((i["link"] for i in inputs if i.get("type") == wanted and i.get("link") is not None), None)


# --- subgraphs (ComfyUI's frontend, 2025: `definitions.subgraphs`) -----------------------------------------

MAX_SUBGRAPH_DEPTH = 32             # subgraphs inside subgraphs, deeper than any workflow a person made
MAX_EXPANDED_WORKFLOW_NODES = 50_000    # nodes once every instance is expanded (a definition used 100 × 100 times…)
# the expanded nodes' text too: copies share their widget values, so a 53 KB workflow (one 50 KB text in a leaf
# definition used 12⁴ times) expanded to 1 GB of JSON within the node cap and froze a shared server sending it
MAX_EXPANDED_WORKFLOW_BYTES = 32 * 2**20
_IO_NODE_IDS = (-10, -20)           # the ids ComfyUI gives a definition's input and output nodes


class _PastLimit(Exception):
    """`json_text_size` counted past its limit (internal: it returns a count over the limit)."""


def json_text_size(value: Any, limit: int | None = None, memo: dict[int, tuple[Any, int]] | None = None) -> int:
    """The length of `json.dumps(value, default=str)`, counted without writing that text, and not counted on once
    past `limit` (the count returned is then over `limit`, not the whole length). Writing it first made the text:
    a 2.6 KB graph's result (1,000 node ids, each showing one 1 MiB text that the cache shares) built 978 MiB of
    JSON only to find it too large. A text or a container is measured once (by identity, in `memo`; pass one dict
    to several calls to share it), so a value written many times costs one measure."""
    memo = {} if memo is None else memo
    count = [0]
    open_containers: set[int] = set()

    def add(size: int) -> None:
        count[0] += size
        if limit is not None and count[0] > limit:
            raise _PastLimit

    def measure(item: Any) -> None:
        known = memo.get(id(item))
        if known is not None:
            add(known[1])
            return
        if item is None or isinstance(item, (bool, int, float)):
            add(len(json.dumps(item)))
            return
        start = count[0]
        if isinstance(item, str):
            add(len(json.dumps(item)))
        elif isinstance(item, (dict, list, tuple)):
            if id(item) in open_containers:
                raise ValueError("Circular reference detected")
            open_containers.add(id(item))
            add(2 + 2 * max(len(item) - 1, 0) + (2 * len(item) if isinstance(item, dict) else 0))
            if isinstance(item, dict):
                for key, inner in item.items():
                    add(len(json.dumps(key if isinstance(key, str) else json.dumps(key))))
                    measure(inner)
            elif all(v is None or isinstance(v, (bool, int, float)) for v in item):    # numbers: one dumps
                add(len(json.dumps(item)) - 2 - 2 * max(len(item) - 1, 0))
            else:
                for inner in item:
                    measure(inner)
            open_containers.discard(id(item))
        else:
            measure(str(item))                  # json.dumps(default=str)
        if not isinstance(item, str) or len(item) > 64:
            memo[id(item)] = (item, count[0] - start)       # the item is kept: its id is not reused meanwhile

    try:
        measure(value)
    except _PastLimit:
        pass
    return count[0]


def _definitions(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`definitions.subgraphs` by id: the entries with an id (text) and a node list; others are left out."""
    definitions = workflow.get("definitions")
    listed = definitions.get("subgraphs") if isinstance(definitions, dict) else None
    return {d["id"]: d for d in listed if isinstance(d, dict) and isinstance(d.get("id"), str)
            and isinstance(d.get("nodes"), list)} if isinstance(listed, list) else {}


def _link_fields(link: Any) -> tuple[Any, Any, int, Any, int] | None:
    """(id, origin, origin slot, target, target slot) of a link written as ComfyUI's list or object; None when
    it is neither (such a link links nothing)."""
    if isinstance(link, list) and len(link) >= 5:
        fields = link[:5]
    elif isinstance(link, dict):
        fields = [link.get(k) for k in ("id", "origin_id", "origin_slot", "target_id", "target_slot")]
    else:
        return None
    link_id, origin, origin_slot, target, target_slot = fields
    if type(link_id) not in (int, str) or type(origin) not in (int, str):
        return None
    return (link_id, origin, origin_slot if type(origin_slot) is int else 0, target,
            target_slot if type(target_slot) is int else 0)


def expand_subgraphs(workflow: dict[str, Any], expanded: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A UI workflow whose nodes include instances of its own subgraph definitions (`definitions.subgraphs`;
    an instance's `type` is its definition's id) → the same workflow with every instance replaced by its
    inner nodes, as ComfyUI runs it; a workflow without instances comes back as it is.

    Inner nodes get ComfyUI's own path ids (`"12:5"`: node 5 of the instance 12; nested `"12:5:3"`). A link
    from the definition's input node (id -10) carries what the instance's input of that slot carries — its
    link, else the value of the instance's widget for it (a promoted widget), else nothing (the inner node's own
    widget value stays); links out of the instance come from the inner link into the output node (-20) of that
    slot. A muted or bypassed instance mutes or bypasses its inner nodes. Inner canvas positions are moved so the
    inner nodes start where the instance stood, as a block; the definition's groups (`groups`) move with them. The
    block is larger than the instance it replaces (ComfyUI draws an instance as one node), so the outer nodes,
    groups and the other blocks make room as the editor's push-apart would: what starts right of the instance
    moves right by the extra width, what starts below it (and not right of it) down by the extra height. Each instance expanded is appended to `expanded` as {"node": its
    id, "subgraph": the definition's name, "nodes": how many nodes it became}. Raises WorkflowError for a
    definition that contains itself, nesting past MAX_SUBGRAPH_DEPTH, or an expansion past
    MAX_EXPANDED_WORKFLOW_NODES nodes or MAX_EXPANDED_WORKFLOW_BYTES of JSON text (counted as it expands: each copied
    node and promoted widget value by its size, `json_text_size`)."""
    definitions = _definitions(workflow)
    raw_nodes = workflow.get("nodes")
    if not definitions or not isinstance(raw_nodes, list) or not any(
            isinstance(n, dict) and isinstance(n.get("type"), str) and n["type"] in definitions for n in raw_nodes):
        return workflow
    flat_nodes: list[dict[str, Any]] = []
    flat_links: list[list[Any]] = []
    # (flat node id, output slot) of an instance or a definition's input node → where its value really comes from:
    # another (flat id, slot), ("literal", value) for a promoted widget's value, or None (nothing connected)
    redirect: dict[tuple[str, int], Any] = {}
    origins: dict[str, tuple[str, int]] = {}       # flat link id → its (flat origin, slot), as written
    stand_ins: set[str] = set()     # flat ids of the instances and their definitions' input nodes (no node of ours)
    node_ids: set[str] = set()      # every flat node id given (real nodes and instances): none may come twice
    link_ids: set[str] = set()
    visited = [0, 0]                # nodes (instances included) and links walked: the expansion's work, capped
    sizes: dict[int, tuple[Any, int]] = {}      # json_text_size's memo: the copies of one node share its values
    written = [0]                   # bytes of JSON text the expanded nodes take, capped
    # room made for each top-level block: instance id → (its [x, y], extra width, extra height), and the inner
    # groups with the top-level instance they are drawn in (they move with its block)
    rooms: dict[str, tuple[list[float], list[float], tuple[float, float]]] = {}
    inner_groups: list[tuple[str, dict[str, Any]]] = []

    def count_text(value: Any) -> None:
        written[0] += json_text_size(value, memo=sizes)
        if written[0] > MAX_EXPANDED_WORKFLOW_BYTES:
            raise WorkflowError(f"its subgraphs expand to more than {MAX_EXPANDED_WORKFLOW_BYTES // 2**20} MiB of "
                                f"JSON text (each use of a definition copies its nodes' widget values); use a "
                                f"definition fewer times, or keep long texts out of nested subgraphs")

    def claim(kind: str, flat_id: str, taken: set[str]) -> None:
        if flat_id in taken:        # "20:6" written as an outer id, or an inner one of instance 20
            raise WorkflowError(f"{kind} id {flat_id[:100]!r} comes twice once the subgraph instances are expanded "
                                f"(an inner {kind} of instance {flat_id.rpartition(':')[0][:100]!r} has it too); "
                                f"ComfyUI writes {kind} ids as numbers: give it another id")
        taken.add(flat_id)

    def expand(nodes: list[Any], links: list[Any], prefix: str, stack: tuple[str, ...],
               io_ids: tuple[Any, Any] = (None, None), offset: tuple[float, float] = (0.0, 0.0)) -> None:
        output_id = str(io_ids[1]) if io_ids[1] is not None else None
        scope_links: dict[Any, str] = {}          # this scope's link id → its flat id
        for link in links if isinstance(links, list) else []:
            fields = _link_fields(link)
            if fields is None:
                continue
            link_id, origin, origin_slot, target, target_slot = fields
            flat_id = f"{prefix}{link_id}"
            visited[1] += 1
            if visited[1] > 4 * MAX_EXPANDED_WORKFLOW_NODES:
                raise WorkflowError(f"its subgraphs expand to more than {4 * MAX_EXPANDED_WORKFLOW_NODES} links")
            claim("link", flat_id, link_ids)
            scope_links[link_id] = flat_id
            if output_id is not None and str(target) == output_id:     # into the definition's output node
                redirect[(prefix.removesuffix(":"), target_slot)] = (f"{prefix}{origin}", origin_slot)
                continue
            flat_links.append([flat_id, f"{prefix}{origin}", origin_slot, f"{prefix}{target}", target_slot])
            origins[flat_id] = (f"{prefix}{origin}", origin_slot)
        for node in nodes:
            if not isinstance(node, dict) or type(node.get("id")) not in (int, str):
                continue
            flat_id = f"{prefix}{node['id']}"
            visited[0] += 1              # an instance counts too: instances of empty definitions are no free lunch
            if visited[0] > MAX_EXPANDED_WORKFLOW_NODES:
                raise WorkflowError(f"its subgraphs expand to more than {MAX_EXPANDED_WORKFLOW_NODES} nodes")
            claim("node", flat_id, node_ids)
            inputs = node.get("inputs") if isinstance(node.get("inputs"), list) else []
            node_type = node.get("type")
            definition = definitions.get(node_type) if isinstance(node_type, str) else None
            if definition is None:
                count_text(node)
                copy = {**node, "id": flat_id if prefix else node["id"]}
                copy["inputs"] = [{**slot, "link": scope_links.get(_link_id(slot.get("link")))}
                                  if isinstance(slot, dict) and slot.get("link") is not None else slot
                                  for slot in inputs]
                if prefix:
                    position = _canvas_point(node.get("pos"))
                    moved = _canvas_point([position[0] + offset[0], position[1] + offset[1]]) if position else None
                    if moved is not None:
                        copy["pos"] = moved
                    else:
                        copy.pop("pos", None)
                flat_nodes.append(copy)
                continue
            name = definition.get("name") if isinstance(definition.get("name"), str) else node["type"]
            if node["type"] in stack:
                raise WorkflowError(f"subgraph {name!r} contains itself (through {' → '.join(stack)}), so it "
                                    f"never ends; remove the inner instance in ComfyUI and save again")
            if len(stack) >= MAX_SUBGRAPH_DEPTH:
                raise WorkflowError(f"its subgraphs are nested more than {MAX_SUBGRAPH_DEPTH} deep")
            inner_prefix = f"{flat_id}:"
            count_before = len(flat_nodes)
            ids = tuple((definition.get(key) or {}).get("id", default) if isinstance(definition.get(key), dict)
                        else default for key, default in zip(("inputNode", "outputNode"), _IO_NODE_IDS))
            inputs_at = f"{inner_prefix}{ids[0]}"        # the definition's input node, as links inside name it
            stand_ins.update((flat_id, inputs_at))
            widgets = node.get("widgets_values") if isinstance(node.get("widgets_values"), list) else []
            widget_slots = [slot for slot in inputs if isinstance(slot, dict) and isinstance(slot.get("widget"), dict)]
            if len(widgets) != len(widget_slots):      # a promoted seed may carry its "control after generate" too
                widgets = [v for k, v in enumerate(widgets) if not (v in _SEED_CONTROLS and k and isinstance(
                    widgets[k - 1], int) and not isinstance(widgets[k - 1], bool))]
            promoted = dict(zip(map(id, widget_slots), widgets)) if len(widgets) == len(widget_slots) else {}
            for index, slot in enumerate(inputs):
                if not isinstance(slot, dict):
                    continue
                link = _link_id(slot.get("link"))
                if link is not None and link in scope_links:
                    redirect[(inputs_at, index)] = origins.get(scope_links[link])
                elif id(slot) in promoted:
                    redirect[(inputs_at, index)] = ("literal", promoted[id(slot)])
            inner_nodes = definition["nodes"]
            mode = node.get("mode")
            if type(mode) is int and mode in _MODES:          # a muted / bypassed instance: its inner nodes so
                inner_nodes = [{**n, "mode": mode} if isinstance(n, dict) and n.get("mode") in (0, None) else n
                               for n in inner_nodes]
            positions = [p for p in (_canvas_point(n.get("pos")) for n in inner_nodes if isinstance(n, dict)) if p]
            here = _canvas_point(node.get("pos"))
            if here and prefix:                 # a nested instance: where its outer block put it
                here = _canvas_point([here[0] + offset[0], here[1] + offset[1]])
            if positions and here:
                inner_offset = (here[0] - min(p[0] for p in positions), here[1] - min(p[1] for p in positions))
                if not stack:
                    size = _canvas_size(node.get("size")) or [0.0, 0.0]
                    rooms[str(flat_id)] = (here, size, _extra_room(size, inner_nodes))
            else:
                inner_offset = (0.0, 0.0)
            inner_groups.extend((flat_id.partition(":")[0], group) for group in
                                _moved_groups(definition.get("groups"), inner_offset))
            inner_ids = {str(n.get("id")) for n in inner_nodes if isinstance(n, dict)}
            if clash := [str(i) for i in ids if str(i) in inner_ids]:
                raise WorkflowError(f"subgraph {name!r}: its input / output node id {clash[0][:40]} is also the id "
                                    f"of one of its inner nodes, so links to the one would read the other; save the "
                                    f"workflow again in ComfyUI")
            inner_links = definition.get("links") if isinstance(definition.get("links"), list) else []
            expand(inner_nodes, inner_links, inner_prefix, (*stack, node["type"]), ids, inner_offset)
            if expanded is not None and not stack:
                expanded.append({"node": flat_id, "subgraph": name[:200], "nodes": len(flat_nodes) - count_before})

    expand(raw_nodes, workflow.get("links"), "", ())

    def resolve(origin: str, slot: int) -> Any:
        seen = set()
        while (origin, slot) in redirect:
            if (origin, slot) in seen:
                return None
            seen.add((origin, slot))
            target = redirect[(origin, slot)]
            if target is None or target[0] == "literal":
                return target
            origin, slot = target
        return None if origin in stand_ins else (origin, slot)     # an instance input nothing feeds: no link

    links_out: list[list[Any]] = []
    for link_id, origin, slot, target, target_slot in flat_links:
        resolved = resolve(origin, slot)
        if resolved is None:
            continue
        if resolved[0] == "literal":           # a promoted widget's value: the literal a PrimitiveNode feeds
            count_text(resolved[1])
            primitive = f"{link_id}:value"
            flat_nodes.append({"id": primitive, "type": "PrimitiveNode", "widgets_values": [resolved[1]]})
            resolved = (primitive, 0)
        links_out.append([link_id, resolved[0], resolved[1], target, target_slot])
    groups: list[Any] = workflow["groups"] if isinstance(workflow.get("groups"), list) else []
    if rooms:
        for flat in flat_nodes:             # an inner node moves with its instance, an outer one by its own place
            inner = (top := str(flat["id"]).partition(":")[0]) in rooms and ":" in str(flat["id"])
            anchor = rooms[top][0] if inner else _canvas_point(flat.get("pos"))
            if anchor and flat.get("pos") is not None and (shift := _room_shift(anchor, rooms, top)) != (0, 0):
                flat["pos"] = [flat["pos"][0] + shift[0], flat["pos"][1] + shift[1]]
        groups = _moved_groups(groups, None, rooms)
        inner_groups = [(top, moved) for top, group in inner_groups for moved in
                        _moved_groups([group], _room_shift(rooms[top][0], rooms, top) if top in rooms else None)]
    return {**workflow, "nodes": flat_nodes, "links": links_out,
            **({"groups": groups + [group for _, group in inner_groups]} if groups or inner_groups else {})}


def _extra_room(size: list[float], inner_nodes: list[Any]) -> tuple[float, float]:
    """How much wider and taller than its instance (`size`, as written) the block of a definition's inner nodes is
    (their positions and sizes), never below 0: the room `expand_subgraphs` makes for the block."""
    boxes = [(p, _canvas_size(n.get("size")) or [0.0, 0.0])
             for n in inner_nodes if isinstance(n, dict) and (p := _canvas_point(n.get("pos")))]
    width = max(p[0] + s[0] for p, s in boxes) - min(p[0] for p, _ in boxes)
    height = max(p[1] + s[1] for p, s in boxes) - min(p[1] for p, _ in boxes)
    return max(0.0, width - size[0]), max(0.0, height - size[1])


def _room_shift(point: list[float], rooms: dict[str, tuple[list[float], list[float], tuple[float, float]]],
                own: str | None = None) -> tuple[float, float]:
    """How far a thing at `point` (an outer node's, group's or instance's top-left, as written) moves for the
    blocks of `rooms` (`expand_subgraphs`): right by the extra width of each instance it starts right of (at or past
    its right edge), else down by the extra height of each it starts below. A block never moves for itself (`own`:
    its instance's id; an instance written without a size is 0 wide)."""
    dx = dy = 0.0
    for instance, ((x, y), (width, height), (extra_width, extra_height)) in rooms.items():
        if instance == own:
            continue
        if point[0] >= x + width:
            dx += extra_width
        elif point[1] >= y + height:
            dy += extra_height
    return dx, dy


Rooms = dict[str, tuple[list[float], list[float], tuple[float, float]]]   # `expand_subgraphs`' room per block


def _moved_groups(groups: Any, offset: tuple[float, float] | None, rooms: Rooms | None = None) -> list[Any]:
    """ComfyUI groups (`bounding` [x, y, w, h]) moved by `offset`, or each by its `_room_shift` in `rooms`; entries
    whose top-left is not two numbers are left as they are (workflow_groups leaves malformed ones out)."""
    moved = []
    for group in groups if isinstance(groups, list) else []:
        bounds = group.get("bounding") if isinstance(group, dict) else None
        corner = _canvas_point(bounds[:2]) if isinstance(bounds, list) and len(bounds) == 4 else None
        shift = offset if rooms is None else (_room_shift(corner, rooms) if corner else None)
        if corner and shift and shift != (0, 0) and isinstance(bounds, list):
            group = {**group, "bounding": [corner[0] + shift[0], corner[1] + shift[1], *bounds[2:]]}
        moved.append(group)
    return moved


def _group_definitions(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A UI workflow's legacy group node definitions (`extra.groupNodes`: name → {"nodes", "links", "external",
    "config"}), the entries whose nodes and links are lists; others are left out (such an instance stays a
    placeholder)."""
    extra = workflow.get("extra")
    listed = extra.get("groupNodes") if isinstance(extra, dict) else None
    return {name: d for name, d in listed.items() if isinstance(d, dict) and isinstance(d.get("nodes"), list)
            and isinstance(d.get("links"), list)} if isinstance(listed, dict) else {}


def _hidden(config: Any, index: int, kind: str, key: Any) -> bool:
    """Whether a group definition's `config` hides inner node `index`'s input or output `key` (visible: false)."""
    entry = config.get(str(index)) if isinstance(config, dict) else None
    slots = entry.get(kind) if isinstance(entry, dict) else None
    slot = slots.get(str(key)) if isinstance(slots, dict) else None
    return isinstance(slot, dict) and slot.get("visible") is False


def _group_ports(definition: dict[str, Any]) -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[int]]:
    """How a legacy group node's slots map onto its inner nodes, as ComfyUI's frontend builds them (by inner node
    index, then slot order): (its inputs as (inner index, input slot) — each inner input that no inner link feeds and
    that is no widget; its outputs as (inner index, output slot) — each inner output that no inner link uses, or one
    listed in `external`, unless the config hides it; how many widget values each inner node takes, its own
    `widgets_values` count)."""
    nodes = {n["index"]: n for n in definition["nodes"] if isinstance(n, dict) and type(n.get("index")) is int}
    fed, used = set(), set()
    for link in definition["links"]:
        if isinstance(link, list) and len(link) >= 4 and type(link[0]) is int:
            used.add((link[0], link[1]))
            fed.add((link[2], link[3]))
    external = {(e[0]["index"] if isinstance(e[0], dict) else e[0], e[1]) for e in definition.get("external") or []
                if isinstance(e, list) and len(e) >= 2}
    inputs, outputs, widgets = [], [], []
    for index in sorted(nodes):
        node = nodes[index]
        for slot, port in enumerate(node.get("inputs") if isinstance(node.get("inputs"), list) else []):
            if isinstance(port, dict) and not isinstance(port.get("widget"), dict) and (index, slot) not in fed \
                    and not _hidden(definition.get("config"), index, "input", port.get("name")):
                inputs.append((index, slot))
        for slot, _port in enumerate(node.get("outputs") if isinstance(node.get("outputs"), list) else []):
            if ((index, slot) not in used or (index, slot) in external) \
                    and not _hidden(definition.get("config"), index, "output", slot):
                outputs.append((index, slot))
        values = node.get("widgets_values")
        widgets.append(len(values) if isinstance(values, list) else 0)
    return inputs, outputs, widgets


def expand_group_nodes(workflow: dict[str, Any]) -> dict[str, Any]:
    """A UI workflow whose nodes include legacy group nodes (`workflow>NAME` / `workflow/NAME`, ComfyUI's frontend
    before subgraphs) whose definition the file carries (`extra.groupNodes`) → the same workflow with each replaced
    by its inner nodes, as ComfyUI runs it (its API prompt names them `"37:0"`, `"37:1"`, …: node `index` of
    instance 37; so do we). The instance's widget values go to the inner nodes in index order, each taking as many
    as its own `widgets_values` holds; its input and output slots map onto inner slots as `_group_ports` says; a
    muted or bypassed instance mutes or bypasses its inner nodes; inner positions are moved to start where the
    instance stood. An instance whose slots or widget values do not match its definition stays as it is (a
    placeholder that names the fix). Bounded as `expand_subgraphs` is: WorkflowError past
    MAX_EXPANDED_WORKFLOW_NODES nodes, 4 × MAX_EXPANDED_WORKFLOW_NODES links or MAX_EXPANDED_WORKFLOW_BYTES of
    copied JSON text. Nodes and links are counted before an instance is copied (its definition's nodes and links,
    all of them), so a refusal costs no copying: a 62 KB file (500 instances of a definition with 2,000 links)
    copied a million links, each instance re-reading every link copied before it, and held a server thread 4.5
    minutes."""
    definitions = _group_definitions(workflow)
    raw_nodes = workflow.get("nodes")
    if not definitions or not isinstance(raw_nodes, list):
        return workflow
    links = [list(link) if isinstance(link, list) else dict(link) if isinstance(link, dict) else link
             for link in (workflow.get("links") if isinstance(workflow.get("links"), list) else [])]
    touching = _links_by_end(links)
    out_nodes: list[Any] = []
    written, count, linked = 0, 0, 0
    for node in raw_nodes:
        kind = node.get("type") if isinstance(node, dict) else None
        name = kind.split(">", 1)[-1].split("/", 1)[-1] if isinstance(kind, str) and subgraph_kind(kind) == \
            "group node" else None
        definition = definitions.get(name) if name is not None else None
        if definition is not None:
            linked += len(definition["links"])
            _check_group_budget(count + len(definition["nodes"]), linked, written)
        made = _group_instance_nodes(node, definition, links, touching.get(str(node.get("id")), [])) \
            if definition is not None else None
        for item in made if made is not None else [node]:
            count += 1
            written += json_text_size(item, MAX_EXPANDED_WORKFLOW_BYTES + 1) if made is not None else 0
            _check_group_budget(count, linked, written)
            out_nodes.append(item)
    return {**workflow, "nodes": out_nodes, "links": links}


def _check_group_budget(nodes: int, links: int, written: int) -> None:
    """WorkflowError when legacy group nodes expand past MAX_EXPANDED_WORKFLOW_NODES nodes, 4 × that many links
    (the cap `expand_subgraphs` has) or MAX_EXPANDED_WORKFLOW_BYTES of JSON text."""
    if nodes > MAX_EXPANDED_WORKFLOW_NODES or links > 4 * MAX_EXPANDED_WORKFLOW_NODES \
            or written > MAX_EXPANDED_WORKFLOW_BYTES:
        raise WorkflowError(f"its group nodes expand to more than {MAX_EXPANDED_WORKFLOW_NODES} nodes, "
                            f"{4 * MAX_EXPANDED_WORKFLOW_NODES} links or {MAX_EXPANDED_WORKFLOW_BYTES // 2**20} MiB "
                            f"of JSON text (each use of a group node copies its definition's nodes and links); use "
                            f"the group node fewer times, or make its definition smaller")


def _links_by_end(links: list[Any]) -> dict[str, list[int]]:
    """Node id (as text) → the indexes in `links` of the links that start or end at it, so an instance finds its
    outer links without reading every link (each instance reading them all was quadratic)."""
    ends: dict[str, list[int]] = {}
    for k, link in enumerate(links):
        fields = _link_fields(link)
        if fields is not None and isinstance(link, list):
            for end in {str(fields[1]), str(fields[3])}:
                ends.setdefault(end, []).append(k)
    return ends


def _group_instance_nodes(node: dict[str, Any], definition: dict[str, Any], links: list[Any],
                          outer: list[int]) -> list[Any] | None:
    """One legacy group node's inner nodes (ids "<instance>:<index>"), `links` rewritten in place to reach them
    (outer links into and out of the instance — those at the indexes `outer` lists —, the definition's inner links
    added); None when the instance's slots or widget values do not match its definition (`links` untouched)."""
    inputs, outputs, widths = _group_ports(definition)
    slots_in = node.get("inputs") if isinstance(node.get("inputs"), list) else []
    slots_out = node.get("outputs") if isinstance(node.get("outputs"), list) else []
    values = node.get("widgets_values") if isinstance(node.get("widgets_values"), list) else []
    if len(slots_in) != len(inputs) or len(slots_out) != len(outputs) or len(values) != sum(widths):
        return None
    instance = str(node["id"])
    inner = sorted((n for n in definition["nodes"] if isinstance(n, dict) and type(n.get("index")) is int),
                   key=lambda n: n["index"])
    positions = [p for p in (_canvas_point(n.get("pos")) for n in inner) if p]
    here = _canvas_point(node.get("pos"))
    shift = (here[0] - min(p[0] for p in positions), here[1] - min(p[1] for p in positions)) \
        if positions and here else (0.0, 0.0)
    made: dict[int, dict[str, Any]] = {}
    start = 0
    for inner_node, width in zip(inner, widths):
        copy = {key: value for key, value in inner_node.items() if key != "index"}
        copy["id"] = f"{instance}:{inner_node['index']}"
        copy["inputs"] = [dict(slot) if isinstance(slot, dict) else slot for slot in inner_node.get("inputs") or []]
        copy["widgets_values"] = values[start:start + width]
        start += width
        position = _canvas_point(inner_node.get("pos"))
        if position is not None:
            copy["pos"] = [position[0] + shift[0], position[1] + shift[1]]
        if type(node.get("mode")) is int and node["mode"] in _MODES and copy.get("mode") in (0, None):
            copy["mode"] = node["mode"]
        made[inner_node["index"]] = copy

    def feed(target: int, slot: int, link_id: Any) -> None:
        ports = made[target]["inputs"] if target in made else []
        if 0 <= slot < len(ports) and isinstance(ports[slot], dict):
            ports[slot]["link"] = link_id

    for k, link in enumerate(definition["links"]):      # [origin index, slot, target index, slot, ...]
        if isinstance(link, list) and len(link) >= 4 and type(link[0]) is int and link[0] in made \
                and link[2] in made and type(link[1]) is int and type(link[3]) is int:
            link_id = f"{instance}:link{k}"
            links.append([link_id, made[link[0]]["id"], link[1], made[link[2]]["id"], link[3]])
            feed(link[2], link[3], link_id)
    for j, slot in enumerate(slots_in):                 # the instance's input j → inner (index, slot)
        link_id = _link_id(slot.get("link")) if isinstance(slot, dict) else None
        if link_id is not None:
            feed(*inputs[j], link_id)
    for k in outer:                                     # outer links into / out of the instance
        link = links[k]
        fields = _link_fields(link)
        if fields is None or not isinstance(link, list):
            continue
        _, origin, origin_slot, target, target_slot = fields
        if str(origin) == instance and 0 <= origin_slot < len(outputs):
            index, slot = outputs[origin_slot]
            links[k] = [link[0], made[index]["id"] if index in made else origin, slot, *link[3:]]
        if str(target) == instance and 0 <= target_slot < len(inputs):
            index, slot = inputs[target_slot]
            links[k] = [*links[k][:3], made[index]["id"] if index in made else target, slot, *links[k][5:]]
    return list(made.values())


def _link_id(value: Any) -> int | str | None:
    """A slot's `link` when it is an id ComfyUI writes (a number or text); anything else links nothing."""
    return value if type(value) in (int, str) else None


def _canvas_point(value: Any) -> list[float] | None:
    """`[x, y]` of a position written as ComfyUI writes one, finite and on a canvas (|v| <= MAX_CANVAS); else None."""
    if not isinstance(value, list) or len(value) < 2:
        return None
    point = value[:2]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and abs(v) <= MAX_CANVAS
               for v in point):
        return None
    return list(point)


def workflow_to_prompt(workflow: dict[str, Any], known: Callable[[str], bool] | None = None,
                       left_out: list[dict[str, Any]] | None = None,
                       widget_names: Callable[[str], tuple[str | None, ...] | None] | None = None,
                       plugin_classes: Mapping[str, Equivalent] | None = None) -> dict[str, Any]:
    """A ComfyUI UI-format workflow → an API-format prompt (then imported like one: `graph.import_foreign`).

    Links become `[source id, output slot]` pairs (through Reroute nodes; a PrimitiveNode's value becomes the
    literal it feeds); widget values are named by `WIDGET_NAMES`, else — for a type this session has, a plugin's
    port of a ComfyUI pack — by `widget_names(type)` (its inputs that take a value, in declared order, as ComfyUI
    orders widgets; None where ComfyUI adds a seed's "control after generate"); others are kept, unnamed, as
    `widgets_values`, and such a node stays a placeholder of its ComfyUI type; a muted or bypassed node keeps
    its mode (`_meta.mode`); notes are no nodes of the prompt (`workflow_notes` keeps them as the editor's notes), and
    a minimised node (`flags.collapsed`) is `_meta.collapsed`. Each node's canvas position goes to `_meta.position` (the
    imported graph's `ui`: the editor shows ComfyUI's layout), its output names to `_meta.output_names` (a link
    out of a type nodegraph lacks is named by them, not by its slot number). A seed's "control after generate" (its
    own widget, or that of the PrimitiveNode feeding it) goes to `_meta.seed_modes` by our input name (`_seed_modes`:
    the editor's random / +1 / −1 per run; "fixed", the default, is left out), and the node's colours to
    `_meta.color` / `_meta.bgcolor` (`_node_colors`). A bypassed node of a type nodegraph lacks (`known(type)` False; without
    `known`, any class not in EQUIVALENTS) is left out as ComfyUI's frontend leaves bypassed nodes out of what it
    runs: a link from its output k goes on from its input of the same slot and type, else its first linked input
    of that type (the types the workflow wrote), else links nothing; each is appended to `left_out` as {"node",
    "type"}. Raises WorkflowError naming what is not as ComfyUI writes it.
    """
    workflow = expand_group_nodes(expand_subgraphs(workflow))
    raw_nodes = workflow.get("nodes")
    if not isinstance(raw_nodes, list) or not all(
            isinstance(n, dict) and type(n.get("id")) in (int, str) and isinstance(n.get("type"), str)
            for n in raw_nodes):
        raise WorkflowError('"nodes" must be a list of objects with an "id" (a number) and a "type" (as ComfyUI '
                            'saves them)')
    nodes = {str(n["id"]): n for n in raw_nodes}
    is_known = known if known is not None else EQUIVALENTS.__contains__
    passed_over = {node_id for node_id, n in nodes.items()         # bypassed, of a type we lack: left out
                   if n.get("mode") == 4 and n["type"] not in _UI_ONLY and not is_known(n["type"])}
    if left_out is not None:
        left_out.extend({"node": node_id, "type": nodes[node_id]["type"][:200]} for node_id in passed_over)
    links: dict[Any, tuple[str, int]] = {}
    for link in workflow.get("links") or []:     # [id, origin, slot, target, slot, type], or the same as an object
        if isinstance(link, list) and len(link) >= 5:
            link_id, origin, slot = link[0], link[1], link[2]
        elif isinstance(link, dict):
            link_id, origin, slot = link.get("id"), link.get("origin_id"), link.get("origin_slot", 0)
        else:
            continue
        if type(link_id) in (int, str) and type(origin) in (int, str):     # anything else links nothing
            links[link_id] = (str(origin), slot if type(slot) is int else 0)

    def source(link_id: Any, wanted: Any = None) -> Any:
        """What a link carries: [origin id, slot], a primitive's literal, or None (dangling). A chain of Reroute
        nodes is followed to its end (a loop of them is a WorkflowError: it became "needs input 'model'"); a
        left-out bypassed node passes on its input of the type `wanted` (the consuming input's, as ComfyUI
        matches it)."""
        reroutes: list[str] = []
        seen: set[str] = set()
        while True:
            if type(link_id) not in (int, str) or link_id not in links:
                return None
            origin, slot = links[link_id]
            node = nodes.get(origin)
            if node is not None and origin in passed_over:
                if origin in seen:
                    return None
                seen.add(origin)
                link_id = _bypass_input_link(node, slot, wanted)
                continue
            if node is None or node["type"] != "Reroute":
                break
            if origin in seen:
                loop = " → ".join(reroutes[reroutes.index(origin):] + [origin])
                raise WorkflowError(f"Reroute nodes {loop} feed each other in a loop, so they carry nothing; "
                                    f"connect the first of them to an output in ComfyUI and save again")
            reroutes.append(origin)
            seen.add(origin)
            inputs = node.get("inputs")
            first = inputs[0] if isinstance(inputs, list) and inputs and isinstance(inputs[0], dict) else {}
            link_id = first.get("link")
        if node is not None and node["type"] == "PrimitiveNode":
            values = node.get("widgets_values")
            control = values[1] if isinstance(values, list) and len(values) > 1 else None
            return {"literal": values[0] if isinstance(values, list) and values else None, "control": control,
                    "primitive": origin}
        return [origin, slot]

    shared = _shared_primitives(nodes, passed_over, source)

    prompt: dict[str, Any] = {}
    for node_id, node in nodes.items():
        if node["type"] in _UI_ONLY or node_id in passed_over:
            continue
        inputs: dict[str, Any] = {}
        values = node.get("widgets_values")
        names = WIDGET_NAMES.get(node["type"])
        plugin_class = (plugin_classes or {}).get(node["type"]) if node["type"] not in EQUIVALENTS else None
        if names is None and plugin_class is not None:
            names = plugin_class.widgets
        if names is None and widget_names is not None and node["type"] not in EQUIVALENTS:
            names = widget_names(plugin_class.type if plugin_class is not None else node["type"])
        meta: dict[str, Any] = {}
        controls: dict[str, Any] = {}            # ComfyUI input name → its "control after generate"
        if names is not None and isinstance(values, list):
            names = _without_sockets(names, node.get("inputs"), plugin_class)
            if None in names and len(values) == len(names) - 1:     # written without the seed's control widget
                names = tuple(name for name in names if name is not None)
            if len(values) != len(names) and node["type"] not in WIDGET_NAMES and not _ui_only_extras(names, values):
                # (a core class from an older ComfyUI has fewer widgets: their defaults are its defaults)
                warnings.warn(WidgetValuesWarning(_widget_count_message(node_id, node["type"], names, values)),
                              stacklevel=2)
            inputs.update({name: value for name, value in zip(names, values) if name is not None})
            controls.update({names[i - 1]: value for i, (name, value) in enumerate(zip(names, values))
                             if name is None and i > 0 and names[i - 1] is not None})
        elif values not in (None, [], {}):
            inputs["widgets_values"] = values
        for slot in node.get("inputs") if isinstance(node.get("inputs"), list) else []:
            if not isinstance(slot, dict) or not isinstance(slot.get("name"), str) or slot.get("link") is None:
                continue
            carried = source(slot["link"], slot.get("type"))
            widget = slot.get("widget")         # an input made of a widget: named after it
            name = widget["name"] if isinstance(widget, dict) and isinstance(widget.get("name"), str) else slot["name"]
            if isinstance(carried, dict) and carried["primitive"] in shared \
                    and not _decides_the_translation(node["type"], name):
                inputs[name] = [carried["primitive"], 0]       # our Int / Float / String / Boolean, shared
            elif isinstance(carried, dict):
                inputs[name] = carried["literal"]
                controls[name] = carried["control"]
            elif carried is not None:
                inputs[name] = carried
        position = node.get("pos")
        if isinstance(position, dict):          # some ComfyUI versions write {"0": x, "1": y}
            position = [position.get("0"), position.get("1")]
        if (point := _canvas_point(position)) is not None:       # not inf (round() raised), not 1e308 away
            meta["position"] = [round(point[0]), round(point[1])]
        if isinstance(node.get("title"), str):
            meta["title"] = node["title"]
        outputs = node.get("outputs")
        names_out = [slot.get("name") for slot in outputs if isinstance(slot, dict)] if isinstance(outputs, list) else []
        if names_out and all(isinstance(n, str) and n for n in names_out) and len(set(names_out)) == len(names_out):
            meta["output_names"] = names_out      # a type nodegraph lacks keeps its links' output names
        mode = node.get("mode")
        if type(mode) is int and mode in _MODES:       # anything else (a list, text) is no mode ComfyUI writes
            meta["mode"] = _MODES[mode]
        equivalent = equivalent_for(node["type"], inputs, plugin_classes)
        if seed_modes := _seed_modes(controls, equivalent.inputs if equivalent is not None else {}):
            meta["seed_modes"] = seed_modes
        meta.update(_node_colors(node))
        flags = node.get("flags")
        if isinstance(flags, dict) and flags.get("collapsed") is True:    # ComfyUI's collapse: the editor's minimise
            meta["collapsed"] = True
        prompt[node_id] = {"class_type": node["type"], "inputs": inputs, **({"_meta": meta} if meta else {})}
    for node_id, class_type in shared.items():
        prompt[node_id] = _primitive_entry(nodes[node_id], class_type)
    return prompt


# ComfyUI's PrimitiveNode output types → its core primitive class (EQUIVALENTS: our Int / Float / String / Boolean)
# and the values it holds; a COMBO (a choice) or any other type stays a literal in each input it feeds
_PRIMITIVE_CLASSES = {"INT": ("PrimitiveInt", (int,)), "FLOAT": ("PrimitiveFloat", (int, float)),
                      "STRING": ("PrimitiveString", (str,)), "BOOLEAN": ("PrimitiveBoolean", (bool,))}
# inputs whose literal value decides which of our nodes an entry becomes (BY_VALUES, fold_clip_set_last_layer): a
# link there is known only when the graph runs, so a shared PrimitiveNode stays a literal in them
_DECIDING_INPUTS = {"KSamplerAdvanced": frozenset({"steps", "start_at_step", "end_at_step", "add_noise",
                                                   "return_with_leftover_noise"}),
                    "ImageCompositeMasked": frozenset({"resize_source"}),
                    "CLIPSetLastLayer": frozenset({"stop_at_clip_layer"})}


def _decides_the_translation(class_type: str, name: str) -> bool:
    """Whether a shared PrimitiveNode must stay a literal in input `name` of a `class_type` entry: the input decides
    what the entry becomes (`_DECIDING_INPUTS`), or its equivalent changes the value (a table, a unit, a no-op
    value, an input-folder file) — which a link would carry past unchanged."""
    if name in _DECIDING_INPUTS.get(class_type, ()):
        return True
    equivalent = EQUIVALENTS.get(class_type)
    ours = equivalent.inputs.get(name, name) if equivalent is not None else name
    return equivalent is not None and (name in equivalent.no_ops or name in equivalent.input_files
                                       or ours in equivalent.values or ours in equivalent.scaled)


def _shared_primitives(nodes: dict[str, Any], passed_over: set[str], source: Callable[..., Any]) -> dict[str, str]:
    """The PrimitiveNodes that feed two or more inputs (through Reroutes) and become a node of ours, by id → the
    ComfyUI primitive class they become (`_PRIMITIVE_CLASSES`, by the output type the workflow wrote, else by the
    value's): ComfyUI's one value for the base and the refiner stays one value here (inlined, it was one copy per
    input to keep in step). One that feeds one input stays inlined; so does a seed whose "control after generate"
    draws or steps it (the editor's seed modes act on a seed input's own value, not on a linked one), a value of
    another type, and one whose every input needs a literal (`_decides_the_translation`)."""
    uses: dict[str, list[bool]] = {}
    for node_id, node in nodes.items():
        if node["type"] in _UI_ONLY or node_id in passed_over:
            continue
        for slot in node.get("inputs") if isinstance(node.get("inputs"), list) else []:
            if not isinstance(slot, dict) or not isinstance(slot.get("name"), str) or slot.get("link") is None:
                continue
            carried = source(slot["link"], slot.get("type"))
            if isinstance(carried, dict):
                widget = slot.get("widget")
                name = widget["name"] if isinstance(widget, dict) and isinstance(widget.get("name"), str) \
                    else slot["name"]
                uses.setdefault(carried["primitive"], []).append(_decides_the_translation(node["type"], name))
    shared: dict[str, str] = {}
    for node_id, needs_literal in uses.items():
        node = nodes[node_id]
        values = node.get("widgets_values") if isinstance(node.get("widgets_values"), list) else []
        outputs = node.get("outputs") if isinstance(node.get("outputs"), list) else []
        written = outputs[0].get("type") if outputs and isinstance(outputs[0], dict) else None
        value = values[0] if values else None
        kind = written if written in _PRIMITIVE_CLASSES else next(
            (k for k, (_, types) in _PRIMITIVE_CLASSES.items() if type(value) in types), None)
        if (len(needs_literal) < 2 or all(needs_literal) or kind is None
                or type(value) not in _PRIMITIVE_CLASSES[kind][1] or (len(values) > 1 and values[1] in _SEED_MODES)):
            continue
        shared[node_id] = _PRIMITIVE_CLASSES[kind][0]
    return shared


def _primitive_entry(node: dict[str, Any], class_type: str) -> dict[str, Any]:
    """A shared PrimitiveNode as a prompt entry of ComfyUI's primitive class: its value (a float for FLOAT), its
    title, canvas position (so it stays in its group) and colours."""
    value = node["widgets_values"][0]
    meta: dict[str, Any] = {"output_names": ["value"]}
    position = node.get("pos")
    if isinstance(position, dict):
        position = [position.get("0"), position.get("1")]
    if (point := _canvas_point(position)) is not None:
        meta["position"] = [round(point[0]), round(point[1])]
    if isinstance(node.get("title"), str):
        meta["title"] = node["title"]
    meta.update(_node_colors(node))
    return {"class_type": class_type, "inputs": {"value": float(value) if class_type == "PrimitiveFloat" else value},
            "_meta": meta}
