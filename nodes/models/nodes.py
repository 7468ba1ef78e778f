"""Model nodes: load checkpoints and their parts, encode prompts, move between pixels and latents.

    LoadCheckpoint     a full SD checkpoint (single file or diffusers folder) → MODEL, TEXT_ENCODER, VAE
    LoadUNet           a UNet alone → MODEL;  LoadVAE → VAE;  LoadTextEncoder → TEXT_ENCODER
    LoadLoRA           MODEL, TEXT_ENCODER + a LoRA file (kohya / diffusers / peft) → patched variants;
                       strengths separate; chain several to stack them
    LoadLoRAModelOnly  the same for the MODEL alone (ComfyUI's LoraLoaderModelOnly)
    EncodeText         prompt (with (word:1.2) weighting) → CONDITIONING
    EncodeTextSDXL     the same plus SDXL's size / crop conditioning
    VAEEncode          IMAGE → LATENT (tiled on request or past 2048²);  VAEDecode  LATENT → IMAGE (the same)
    VAEEncodeForInpaint  IMAGE + MASK → LATENT with a noise mask, masked pixels neutralised
    LoadControlNet     a ControlNet file → CONTROL_NET
    ApplyControlNet    CONDITIONING (+ negative) + CONTROL_NET + hint IMAGE → both with a ControlStack
                       (strength, start / end of the schedule; chained ones add up)
    FreeMemory         drop cached outputs and offload every model, then pass a value on
    Flux nodes         LoadFlux, LoadFluxTextEncoders, EncodeTextFlux, FluxGuidance, ModelSamplingFlux
                       (flux_nodes.py, registered here)

weight_dtype fp8_e4m3fn / fp8_e5m2 keeps Linear / Conv weights in FP8, computed wider (precision.py);
prompts may use textual-inversion embeddings as embedding:name (models/embeddings, embeddings.py).

Values on the ports: MODEL is a sampling `DiffusionModel` around our UNet (the
UNet's forward is already the raw network ``net(x, t, context=, y=, control=)``);
TEXT_ENCODER is a `TextEncoder` (the checkpoint's PromptEncoder and family);
VAE is the `AutoencoderKL` module. Every loaded module is registered with the
session's memory manager, and nodes that run one wrap the work in
``memory.using(module)`` so it is on the compute device only while needed.
Loaders share one policy and one error shape: a model name is resolved inside its
model folder (`ModelPaths.resolve`, through nodegraph.paths.confine); pickles are
refused unless the machine's owner opted in (`allow_pickle_files`: the session
service "allow_pickle" or NODEGRAPH_ALLOW_PICKLE=1, never a graph input), and
even then read with torch.load(weights_only=True); every failure to find or read
the file (missing, truncated, random bytes, a pickle, the wrong kind of model)
is a NodeInputError naming the input, the file and the fix.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Iterator, Literal

from nodegraph import Input, Node, NodeContext, NodeInputError, NodeInputs, Output, api, hookimpl
from nodes.sampling.nodes import LATENT_SCALE_KEY, latent_scale_entry

WeightDtype = Literal["auto", "fp32", "fp16", "bf16", "fp8_e4m3fn", "fp8_e5m2"]  # fp8: stored, computed wider


@dataclass(eq=False)
class TextEncoder:
    """What a TEXT_ENCODER port carries: the prompt encoder(s) of a checkpoint, its family, its LoRAs."""

    encoder: Any          # nodes.models.clip.PromptEncoder
    family: str           # "sd1", "sd2", "sdxl-base", "sdxl-refiner", ...
    loras: tuple = ()     # (LoraWeights, strength) pairs patched in before encoding

    def __nodegraph_tensors__(self) -> list:
        """The encoder's weights, for the output cache (shared with the same encoder with a LoRA: counted once)."""
        return [*self.encoder.parameters(), *self.encoder.buffers()]


def _load_with_retry(node: Node, input_name: str, load: Any) -> Any:
    """Run `load()`; out of memory → free every cached output and model, retry once, then a clear error."""
    from nodegraph.memory import ModelMemoryError

    for attempt in (1, 2):
        try:
            with _load_errors(input_name):
                return load()
        except (MemoryError, RuntimeError) as exc:
            if isinstance(exc, NodeInputError) or (
                    not isinstance(exc, MemoryError) and "out of memory" not in str(exc).lower()):
                raise
            if attempt == 2:
                raise ModelMemoryError(f"not enough memory to load {input_name} even after freeing every cached "
                                       f"model ({exc}); use weight_dtype fp16 or close other programs") from exc
            node.context.service("free_memory")()


@contextmanager
def _load_errors(input_name: str) -> Iterator[None]:
    """ModelLoadError (and a damaged file's raw library errors) → NodeInputError naming the input and the file."""
    from safetensors import SafetensorError

    from .loading import ModelLoadError

    try:
        yield
    except ModelLoadError as exc:
        raise NodeInputError(input_name, str(exc)) from None
    except (SafetensorError, OSError, EOFError) as exc:
        raise NodeInputError(input_name, f"could not read the file ({type(exc).__name__}: {exc}); it is damaged "
                                         f"or not a model file: copy it again or choose another") from None


def allow_pickle_files(node: Node) -> bool:
    """The owner's opt-in to read pickle weights (session service "allow_pickle", or NODEGRAPH_ALLOW_PICKLE=1).

    Never a node input: a graph comes from a client, the opt-in from whoever runs the server.
    """
    from .loading import pickle_allowed_by_environment

    return bool(node.context.services.get("allow_pickle", False)) or pickle_allowed_by_environment()


def resolve_model(node: Node, folder: str, input_name: str, name: str) -> Any:
    """The path of model `name` in model folder `folder`; a NodeInputError naming the input otherwise."""
    try:
        return node.context.service("resolve_file")(folder, name)
    except LookupError as exc:
        message = str(exc).strip("'\"")
        raise NodeInputError(input_name, f"{message}; put the file in models/{folder} or pick a listed name") from None


def _torch_dtype(choice: str, memory: Any) -> Any:
    import torch

    if choice == "auto":   # half precision only where it is fast: on an accelerator
        return torch.float32 if memory.compute_device == "cpu" else torch.float16
    if choice.startswith("fp8"):   # Linear / Conv weights stay FP8, computed in fp32 (CPU) / bf16 (GPU)
        from .precision import WeightStorage, default_compute_dtype

        return WeightStorage(getattr(torch, "float8_" + choice[4:]),
                             default_compute_dtype(memory.compute_device))
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[choice]


def set_loras(module: Any, loras: list) -> Any:
    """Patch exactly `loras` into a UNet or PromptEncoder (none: restore the base weights)."""
    from .lora import apply_loras

    return apply_loras(module, loras)


TINY_WORLD_SIDES = (32, 128)      # the pixel sides the shipped tiny-world models were trained at


def diffusion_model(unet: Any, name: str, preview: Any = None, schedule: dict | None = None) -> Any:
    """Wrap our UNet as a sampling DiffusionModel on its training schedule (a ``loading.describe_schedule``
    record, e.g. from the checkpoint's metadata; None = SD's scaled-linear 1000-step schedule)."""
    from nodes.sampling.denoisers import DiscreteTimeMap
    from nodes.sampling.diffusion_model import DiffusionModel

    from .loading import schedule_alphas_cumprod

    return DiffusionModel(net=unet, prediction=unet.config.prediction,
                          time_map=DiscreteTimeMap(schedule_alphas_cumprod(schedule or {})),
                          latent_channels=unet.config.out_channels, preview=preview, name=name,
                          patcher=set_model_patches)


def model_schedule(model: Any) -> dict | None:
    """The training-schedule record of a MODEL sampled on a discrete ᾱ table (None for continuous-time models)."""
    if getattr(model.time_map, "_sigmas64", None) is None:     # a continuous-time or flow map: no table
        return None
    from .loading import describe_schedule

    return describe_schedule(1.0 / (1.0 + model.time_map._sigmas64.double() ** 2))   # sigma² = (1 − ᾱ) / ᾱ


def sd3_diffusion_model(mmdit: Any, name: str, preview: Any = None, shift: float | None = None) -> Any:
    """Wrap an SD3 MMDiT as a rectified-flow DiffusionModel (velocity, SD3's timestep shift 3.0, net time t*1000)."""
    from nodes.sampling.denoisers import FlowTimeMap
    from nodes.sampling.diffusion_model import DiffusionModel

    from .sd3 import SD3_SHIFT

    shift = shift or getattr(mmdit, "sampling_shift", None) or SD3_SHIFT   # a file's recorded shift (sd3.py)
    return DiffusionModel(net=mmdit, prediction="flow", time_map=FlowTimeMap(shift=shift),
                          latent_channels=mmdit.config.out_channels, preview=preview, name=name,
                          patcher=set_model_patches)


def set_model_patches(unet: Any, patches: list) -> Any:
    """The MODEL patcher: LoRA pairs and model patches (patches.py) set exactly on the shared UNet."""
    from .patches import set_model_patches as set_patches

    return set_patches(unet, patches)


class LoadCheckpoint(Node):
    """Load a Stable Diffusion checkpoint (SD 1.x, 2.x, XL, SD3 / SD3.5; single file or diffusers folder) from models/checkpoints."""

    category = "loaders"
    shared_cache = True     # its output depends only on model files: users of a server share it

    class Inputs(NodeInputs):
        ckpt_name: str = Input(model_folder="checkpoints")
        prediction: Literal["auto", "eps", "v"] = Input(
            "auto", description="what the UNet predicts; auto reads the file (SD 2.x 768-v files need 'v')")
        weight_dtype: WeightDtype = Input("auto", description="auto: fp32 on CPU, fp16 on a GPU; fp8: UNet and "
                                                               "text encoder weights stored in FP8, the VAE wide")

    outputs = (Output("model", "MODEL"), Output("text_encoder", "TEXT_ENCODER"), Output("vae", "VAE"))

    def run(self, ckpt_name: str, prediction: str, weight_dtype: str) -> dict:
        from .loading import load_checkpoint

        memory = self.context.service("memory")
        path = resolve_model(self, "checkpoints", "ckpt_name", ckpt_name)
        from .flux import is_flux_pipeline

        if path.is_dir() and is_flux_pipeline(path):   # a diffusers FluxPipeline folder
            from .flux_nodes import load_flux_pipeline_outputs

            return load_flux_pipeline_outputs(self, path, ckpt_name, weight_dtype)
        fp8 = weight_dtype.startswith("fp8")   # FP8 blurs a VAE's output: its VAE is loaded wide, below
        ckpt = _load_with_retry(self, "ckpt_name", lambda: load_checkpoint(
            path, dtype=_torch_dtype(weight_dtype, memory), prediction=None if prediction == "auto" else prediction,
            allow_pickle=allow_pickle_files(self), components=("unet", "text_encoder") if fp8 else
            ("unet", "vae", "text_encoder")))
        if fp8:
            ckpt.vae = _load_with_retry(self, "ckpt_name", lambda: load_checkpoint(
                path, components=("vae",), dtype=_torch_dtype(weight_dtype, memory).compute,
                allow_pickle=allow_pickle_files(self)).vae)
        if ckpt.unet is None or ckpt.vae is None or ckpt.text_encoder is None:
            raise NodeInputError("ckpt_name", _missing_parts(ckpt, ckpt_name))
        for module, part in ((ckpt.unet, "unet"), (ckpt.vae, "vae"), (ckpt.text_encoder, "text encoder")):
            memory.register(module, f"{ckpt_name}:{part}")
        if ckpt.family == "sd3":
            model = sd3_diffusion_model(ckpt.unet, ckpt_name, preview=ckpt.vae.preview)
            _mark_tiny_world_vocabulary(ckpt.text_encoder, path)
        else:   # sampled on the schedule it was trained on (recorded by SaveCheckpoint; SD's by default)
            model = diffusion_model(ckpt.unet, ckpt_name, preview=ckpt.vae.preview, schedule=ckpt.schedule)
            if getattr(ckpt.text_encoder, "vocabulary", None) == "tiny_world":     # trained at 32-128 px
                factor = ckpt.vae.config.downscale
                model.trained_sides = (TINY_WORLD_SIDES[0] // factor, TINY_WORLD_SIDES[1] // factor)
        downscale = getattr(getattr(ckpt.vae, "config", None), "downscale", None)
        if isinstance(downscale, int):          # the checkpoint's own VAE: what its latents are laid out for
            model.pixels_per_cell = model.vae_downscale = downscale
        model.latent_scale = _vae_scale(ckpt.vae)     # ... and scaled by: its samplers' latents record it
        return {"model": model, "text_encoder": TextEncoder(ckpt.text_encoder, ckpt.family), "vae": ckpt.vae}


def _missing_parts(ckpt: Any, ckpt_name: str) -> str:
    """Why LoadCheckpoint cannot give all three outputs of `ckpt`, and which loader reads each part from where:
    LoadUNet and LoadVAE look in their own folders, so this file must be moved or copied there for them."""
    encoder = "LoadSD3TextEncoders" if ckpt.family == "sd3" else "LoadTextEncoder"
    missing = [part for part in ("unet", "vae", "text_encoder") if getattr(ckpt, part) is None]
    how = {"unet": "its UNet with LoadUNet, which reads models/unet: move or copy the file there",
           "vae": "its VAE with LoadVAE, which reads models/vae: move or copy the file there",
           "text_encoder": f"its text encoder with {encoder}, which reads models/checkpoints, where it is"}
    other = {"unet": "a UNet from another file (LoadUNet)", "vae": "a VAE from another file (LoadVAE)",
             "text_encoder": f"a text encoder from another file ({encoder})"}
    parts = [other[part] if part in missing else how[part] for part in ("unet", "vae", "text_encoder")]
    return (f"{ckpt_name} has no {', '.join(missing).replace('_', ' ')}, so LoadCheckpoint cannot load it; load "
            f"the parts separately: {'; '.join(parts)}")


class LoadUNet(Node):
    """Load a UNet alone (a UNet-only file in models/unet, or the UNet of a full checkpoint; SD3 MMDiTs and
    Flux transformers too)."""

    category = "loaders"
    shared_cache = True     # its output depends only on model files: users of a server share it
    version = "1.1.0"     # 1.1: the model records its family's latent space (a guessed VAE decodes in it)

    class Inputs(NodeInputs):
        unet_name: str = Input(model_folder="unet")
        family: Literal["auto", "sd1", "sd2", "sdxl-base", "sdxl-refiner"] = Input(
            "auto", description="head layout for UNet-only files that do not say (auto: from shapes/metadata)")
        prediction: Literal["auto", "eps", "v"] = Input("auto")
        weight_dtype: WeightDtype = Input("auto")

    outputs = (Output("model", "MODEL"),)

    def run(self, unet_name: str, family: str, prediction: str, weight_dtype: str) -> dict:
        from .loading import load_unet

        memory = self.context.service("memory")
        path = resolve_model(self, "unet", "unet_name", unet_name)
        from .flux_nodes import is_flux_weights, load_flux_model

        with _load_errors("unet_name"):
            flux = is_flux_weights(path, allow_pickle_files(self))
        if flux:   # a Flux transformer: as LoadFlux (in Flux's latent space)
            return {"model": load_flux_model(self, unet_name, weight_dtype)}
        unet = _load_with_retry(self, "unet_name", lambda: load_unet(
            path, family=None if family == "auto" else family,
            prediction=None if prediction == "auto" else prediction, dtype=_torch_dtype(weight_dtype, memory),
            allow_pickle=allow_pickle_files(self)))
        memory.register(unet, unet_name)
        from .mmdit import MMDiT

        model = (sd3_diffusion_model if isinstance(unet, MMDiT) else diffusion_model)(unet, unet_name)
        known = "sd3" if isinstance(unet, MMDiT) else family if family != "auto" else getattr(unet, "family", None)
        model.latent_scale = family_latent_scale(known)     # its samplers' latents record it, as LoadCheckpoint's
        return {"model": model}


def family_latent_scale(family: str | None) -> tuple[float, float] | None:
    """(scale_factor, shift_factor) of a model family's latent space — its VAE's (vae.py, flux.py) — or None for
    a family not known (a diffusers UNet folder LoadUNet was not told the family of): nothing is recorded then."""
    from .flux import FLUX_VAE
    from .vae import SD3_VAE, SD_VAE, SDXL_VAE

    reference = {"sd1": SD_VAE, "sd2": SD_VAE, "sdxl-base": SDXL_VAE, "sdxl-refiner": SDXL_VAE, "sd3": SD3_VAE,
                 "flux": FLUX_VAE}.get(family or "")
    return None if reference is None else (float(reference.scale_factor), float(reference.shift_factor))


class LoadVAE(Node):
    """Load a VAE from models/vae: a VAE-only file, or a full checkpoint placed there (its VAE is taken). The VAE of
    a checkpoint in models/checkpoints is LoadCheckpoint's vae output."""

    category = "loaders"
    shared_cache = True     # its output depends only on model files: users of a server share it
    version = "1.1.0"     # 1.1: the scale a config.json beside the file records (a diffusers vae/ folder) is used

    class Inputs(NodeInputs):
        vae_name: str = Input(model_folder="vae")
        family: Literal["sd", "sdxl", "flux"] = Input(
            "sd", description="the latent space (scale factor) when the file does not record it: a diffusers "
                              "config.json beside it or its metadata wins; a bare SDXL VAE file needs sdxl; "
                              "16-channel VAEs: SD3 unless flux")

    outputs = (Output("vae", "VAE"),)

    def run(self, vae_name: str, family: str) -> dict:
        from .loading import load_vae

        path = resolve_model(self, "vae", "vae_name", vae_name)
        vae = _load_with_retry(self, "vae_name",
                               lambda: load_vae(path, family={"sdxl": "sdxl-base", "flux": "flux"}.get(family),
                                                allow_pickle=allow_pickle_files(self)))
        self.context.service("memory").register(vae, vae_name)
        return {"vae": vae}


class LoadTextEncoder(Node):
    """Load only the text encoder(s) of a checkpoint in models/checkpoints, or a T5 file (its spiece.model beside it)."""

    category = "loaders"
    shared_cache = True     # its output depends only on model files: users of a server share it

    class Inputs(NodeInputs):
        ckpt_name: str = Input(model_folder="checkpoints")
        weight_dtype: WeightDtype = Input("auto")

    outputs = (Output("text_encoder", "TEXT_ENCODER"),)

    def run(self, ckpt_name: str, weight_dtype: str) -> dict:
        from .detect import detect_checkpoint
        from .loading import load_text_encoder, open_state_dict

        memory = self.context.service("memory")
        path = resolve_model(self, "checkpoints", "ckpt_name", ckpt_name)
        from .sd3 import load_text_encoder_file

        with _load_errors("ckpt_name"):   # SD3 checkpoints and T5-only files (with their spiece.model) first
            found = load_text_encoder_file(path, dtype=_torch_dtype(weight_dtype, memory),
                                           allow_pickle=allow_pickle_files(self))
        if found is not None:
            memory.register(found[0], ckpt_name)
            return {"text_encoder": TextEncoder(*found)}
        with _load_errors("ckpt_name"):
            encoder = load_text_encoder(path, dtype=_torch_dtype(weight_dtype, memory),
                                        allow_pickle=allow_pickle_files(self))
            family = "sd1"
            if path.is_file():
                tensors = open_state_dict(path, allow_pickle=allow_pickle_files(self))
                family = detect_checkpoint(tensors.shapes, tensors.metadata, path=path).family
        memory.register(encoder, ckpt_name)
        return {"text_encoder": TextEncoder(encoder, family)}


class LoadLoRA(Node):
    """Apply a LoRA (kohya/A1111, diffusers/peft, or LyCORIS LoHa / LoKr / LoCon / DoRA) to a model and its text
    encoder.

    The outputs are patched variants; the loaded base model is untouched (patches are applied
    exactly when the variant is used, from the original weights), so removing the node needs no
    reload. Chain LoadLoRA nodes to stack LoRAs. A LoRA that can only partly be applied (a module
    type or part it cannot read, a module the model lacks, a shape that does not fit) fails on
    `lora_name`, naming those modules: it would draw another picture than the LoRA makes.
    """

    category = "loaders"
    shared_cache = True     # its output depends only on model files: users of a server share it

    class Inputs(NodeInputs):
        model: Any = Input(port="MODEL")
        text_encoder: Any = Input(port="TEXT_ENCODER")
        lora_name: str = Input(model_folder="loras")
        strength_model: float = Input(1.0, ge=-10.0, le=10.0, step=0.05)
        strength_text: float = Input(1.0, ge=-10.0, le=10.0, step=0.05)

    outputs = (Output("model", "MODEL"), Output("text_encoder", "TEXT_ENCODER"), Output("report", "STRING"))

    def run(self, model: Any, text_encoder: Any, lora_name: str, strength_model: float,
            strength_text: float) -> dict:
        lora = _read_lora(self, lora_name)
        new_model, reports = _patched_model(self, model, lora, strength_model)
        new_encoder = replace(text_encoder, loras=(*text_encoder.loras, (lora, strength_text)))
        with _load_errors("lora_name"):
            if "text_encoder" in lora.targets or "text_encoder_2" in lora.targets:
                reports += set_loras(text_encoder.encoder, list(new_encoder.loras))
        return {"model": new_model, "text_encoder": new_encoder, "report": _lora_summary(lora, lora_name, reports)}


class LoadLoRAModelOnly(Node):
    """Apply a LoRA to a model only (its UNet / transformer), leaving text encoders as they are — ComfyUI's
    LoraLoaderModelOnly: for LoRAs without text-encoder weights (an LCM-LoRA) or to keep the prompt's
    reading unchanged. Chain with LoadLoRA to stack."""

    category = "loaders"
    shared_cache = True     # its output depends only on model files: users of a server share it

    class Inputs(NodeInputs):
        model: Any = Input(port="MODEL")
        lora_name: str = Input(model_folder="loras")
        strength_model: float = Input(1.0, ge=-10.0, le=10.0, step=0.05)

    outputs = (Output("model", "MODEL"), Output("report", "STRING"))

    def run(self, model: Any, lora_name: str, strength_model: float) -> dict:
        lora = _read_lora(self, lora_name)
        new_model, reports = _patched_model(self, model, lora, strength_model)
        return {"model": new_model, "report": _lora_summary(lora, lora_name, reports)}


def _read_lora(node: Node, lora_name: str) -> Any:
    """The LoRA file named by input `lora_name` (its problems named on that input)."""
    from .lora import load_lora

    path = resolve_model(node, "loras", "lora_name", lora_name)
    with _load_errors("lora_name"):      # the file first: a bad file is named whatever the model is
        return load_lora(path, allow_pickle=allow_pickle_files(node))


def _patched_model(node: Node, model: Any, lora: Any, strength: float) -> tuple[Any, list]:
    """`model` with the LoRA as one more patch, and the fit reports (a LoRA that fits nothing fails here,
    not mid-sampling)."""
    if getattr(model, "patcher", None) is None:
        raise NodeInputError("model", f"{getattr(model, 'name', '?')} takes no weight patches (its MODEL has no "
                                      f"patcher), so a LoRA cannot be applied to it")
    new_model = replace(model, patches=(*model.patches, (lora, strength)), _denoiser=None)
    with _load_errors("lora_name"):
        with node.context.service("memory").using(model.net):
            reports = list(new_model.apply_patches() or [])
    return new_model, reports


def _lora_summary(lora: Any, lora_name: str, reports: list) -> str:
    """One line per part the LoRA patched (what fitted, what did not); partial fits are logged too."""
    import logging

    summary = "; ".join(r.summary() for r in reports if r.lora == lora.name) or f"{lora_name}: nothing to apply"
    if any(not r.complete for r in reports):
        logging.getLogger("nodegraph.lora").warning("%s", summary)
    return summary


# EncodeText's `weighting` choices → PromptEncoder's (nodes/models/clip.py, "Prompt weights")
PROMPT_WEIGHTINGS = {"comfyui": "towards_empty", "a1111": "scale_mean"}


def _encode(context: NodeContext, text_encoder: Any, text: str, clip_skip: int, weighting: str = "comfyui") -> Any:
    if not isinstance(text_encoder, TextEncoder):
        raise NodeInputError("text_encoder", f"expected a TEXT_ENCODER, found {type(text_encoder).__name__}")
    if text_encoder.family in ("sd3", "t5"):
        raise NodeInputError("text_encoder", f"this is an {text_encoder.family.upper()} text encoder; encode its "
                                             f"prompts with EncodeTextSD3")
    embeddings = _prompt_embeddings(context, text)
    with context.service("memory").using(text_encoder.encoder):
        set_loras(text_encoder.encoder, list(text_encoder.loras))
        try:
            return text_encoder.encoder.encode(text, clip_skip=clip_skip, weighting=PROMPT_WEIGHTINGS[weighting],
                                               **({"embeddings": embeddings} if embeddings else {}))
        except ValueError as exc:
            raise NodeInputError("clip_skip" if "clip_skip" in str(exc) else "text", str(exc)) from None


def _missing_embeddings(text: Any, list_model_files: Any) -> dict[str, str]:
    """{"text": why} when the prompt names an `embedding:NAME` that no embeddings folder holds (or several hold
    in spellings differing only in case); {} otherwise. A name differing from its one file only in case passes:
    the loader finds that file the same way (`find_embedding_file`)."""
    from nodegraph.validation import shown_folder      # a server's clients do not learn where it is installed

    from .prompt_syntax import embedding_file_names, embedding_names, find_embedding_file     # torch-free

    if not isinstance(text, str) or "embedding:" not in text:
        return {}
    available, searched = list_model_files("embeddings")
    for name in embedding_names(text):
        file, ambiguous = find_embedding_file(name, available)
        if ambiguous:
            return {"text": ambiguous}
        if file is None:
            where = ", ".join(shown_folder(folder) for folder in searched) or "models/embeddings"
            return {"text": f"the prompt uses embedding:{name}, but no {embedding_file_names(name)[0]!r} is in the "
                            f"embeddings folder(s) ({where}); put it there (.safetensors, or .pt with the owner's "
                            f"pickle opt-in), or take embedding:{name} out of the prompt"}
    return {}


def _embedding_files(text: Any) -> list[tuple[str, str, tuple[str, ...]]]:
    """`Node.named_model_files` of a prompt input `text`: ("text", "embeddings", the file names NAME may be)."""
    from .prompt_syntax import EMBEDDING_SUFFIXES as KNOWN_SUFFIXES, embedding_names     # torch-free

    if not isinstance(text, str) or "embedding:" not in text:
        return []
    return [("text", "embeddings", (name,) if name.lower().endswith(KNOWN_SUFFIXES)
             else tuple(name + suffix for suffix in KNOWN_SUFFIXES)) for name in embedding_names(text)]


def _prompt_embeddings(context: NodeContext, text: str) -> dict:
    """The textual-inversion embeddings a prompt names (``embedding:name``), read from models/embeddings."""
    from .embeddings import KNOWN_SUFFIXES, embedding_names, load_embedding
    from .loading import ModelLoadError, pickle_allowed_by_environment

    allow = bool(context.services.get("allow_pickle", False)) or pickle_allowed_by_environment()
    found = {}
    for name in embedding_names(text):
        candidates = [name] if name.lower().endswith(KNOWN_SUFFIXES) else [name + s for s in KNOWN_SUFFIXES]
        missing = None
        for candidate in candidates:
            try:
                path = context.service("resolve_file")("embeddings", candidate)
                break
            except LookupError as exc:
                missing = missing or str(exc).strip("'\"")
        else:
            path = _embedding_in_other_case(context, name)
            if path is None:
                raise NodeInputError("text", f"the prompt uses embedding:{name}, but {missing}; put the embedding "
                                             f"(.safetensors, or .pt with the owner's pickle opt-in) in "
                                             f"models/embeddings")
        try:
            found[name] = load_embedding(path, allow_pickle=allow, name=name)
        except ModelLoadError as exc:
            raise NodeInputError("text", f"embedding:{name}: {exc}") from None
    return found


def _embedding_in_other_case(context: NodeContext, name: str) -> Any:
    """The path of the one embeddings-folder file whose name differs from `embedding:name` only in case (said as
    a warning), as validation accepted it (`_missing_embeddings`); None when there is none. Several such files are
    a NodeInputError asking which."""
    from .prompt_syntax import find_embedding_file

    model_paths = (getattr(context, "services", None) or {}).get("model_paths")
    if model_paths is None:
        return None
    file, ambiguous = find_embedding_file(name, model_paths.list("embeddings")[0])
    if ambiguous:
        raise NodeInputError("text", ambiguous)
    if file is None:
        return None
    context.warn(f"embedding:{name} is the file {file} (the names differ only in case); write it as the file "
                 f"spells it to silence this")
    return context.service("resolve_file")("embeddings", file)


class EncodeText(Node):
    """Encode a prompt for the UNet: (word:1.3) / (word) / [word] weighting, prompts longer than 77 tokens chunked."""

    category = "conditioning"

    class Inputs(NodeInputs):
        text_encoder: Any = Input(port="TEXT_ENCODER")
        text: str = Input("", multiline=True, max_length=20000, description="empty = the unconditional prompt")
        clip_skip: int = Input(1, ge=1, le=24, description="1 = the model's usual layer; 2 = one earlier (A1111)")
        weighting: Literal["comfyui", "a1111"] = Input(
            "comfyui", description="how (word:1.3) acts: comfyui moves the word from the empty prompt's reading; "
                                   "a1111 scales it and keeps the prompt's mean (A1111's images)")

    outputs = (Output("conditioning", "CONDITIONING"),)

    @classmethod
    def check_literals(cls, literals: dict[str, Any], list_model_files: Any) -> dict[str, str]:
        """An `embedding:NAME` the embeddings folders do not hold, or a weight past ±100, fails at validation, not
        after the run began."""
        from .prompt_syntax import weight_problem

        text = literals.get("text")
        problem = weight_problem(text) if isinstance(text, str) else None
        return {"text": problem} if problem else _missing_embeddings(text, list_model_files)

    @classmethod
    def named_model_files(cls, literals: dict[str, Any]) -> list[tuple[str, str, tuple[str, ...]]]:
        """The prompt's `embedding:NAME` files: a file replaced under its name runs the node again, and a saved
        image records its SHA-256 (A1111's "TI hashes")."""
        return _embedding_files(literals.get("text"))

    def run(self, text_encoder: Any, text: str, clip_skip: int, weighting: str = "comfyui") -> dict:
        _warn_about_tiny_world_prompt(self.context, text_encoder, text)
        _warn_bare_embedding_names(self.context, text)
        return {"conditioning": api.encode_text(self.context, text_encoder, text, clip_skip=clip_skip,
                                                weighting=weighting)}


def _warn_bare_embedding_names(context: Any, text: str) -> None:
    """Warn (NodeContext.warn) about words of the prompt that name an embedding file without `embedding:`: A1111
    reads "EasyNegative" alone as the embedding, here it is plain words and the image silently lacks it. The
    embeddings folders are listed once (ModelPaths.list keeps the listing), so a run pays a directory walk at most."""
    from .prompt_syntax import bare_embedding_notes

    model_paths = (getattr(context, "services", None) or {}).get("model_paths")
    if not text or model_paths is None:
        return
    files, _searched = model_paths.list("embeddings")
    for note in bare_embedding_notes(text, files):
        context.warn(note)


def _mark_tiny_world_vocabulary(text_encoder: Any, path: Any) -> None:
    """Record on an SD3-family checkpoint's text encoder whether it is a tiny-world one (the shipped flow model),
    as `loading.load_checkpoint` does for the others: EncodeTextSD3 then warns about prompts it cannot draw."""
    from .loading import open_state_dict, vocabulary_of

    # only a .safetensors header holds the description (a pickle would be read whole, a folder has none)
    if text_encoder is not None and str(path).endswith(".safetensors") and path.is_file():
        text_encoder.vocabulary = vocabulary_of(open_state_dict(path).metadata)


def _warn_about_tiny_world_prompt(context: Any, text_encoder: Any, text: str, templates_only: bool = False) -> None:
    """Warn about a prompt the shipped tiny-world models cannot draw well, when `text_encoder` is one of theirs:
    unknown words, two objects (weak binding) and, for the flow model (`templates_only`), phrasings other than
    its five caption templates. Other checkpoints know other words: nothing is said for them."""
    if getattr(getattr(text_encoder, "encoder", None), "vocabulary", None) != "tiny_world" or not text.strip():
        return
    _warn_unknown_world_words(context, text, getattr(text_encoder, "loras", ()))
    _warn_two_object_prompt(context, text)
    if templates_only:
        _warn_non_template_prompt(context, text)


# words a newcomer writes for several objects: the tiny world draws one or two, and never learnt counting
_COUNT_WORDS = frozenset("two three four five six seven eight nine ten several many some".split())


def _singular_world_word(word: str) -> str | None:
    """The tiny-world word a plural stands for ("circles" -> "circle", "stars" -> "star"), or None."""
    from nodes.training.world_captions import ATTRIBUTE_OF

    for ending in ("es", "s"):
        if word.endswith(ending) and word[: -len(ending)] in ATTRIBUTE_OF:
            return word[: -len(ending)]
    return None


def _warn_unknown_world_words(context: Any, text: str, loras: Any = ()) -> None:
    """Warn (NodeContext.warn) about words of a prompt that no tiny-world caption uses: a misspelt colour or a
    thing the world does not have gives a blank or wrong picture, with nothing else to say why. Words of the
    captions a LoRA applied by LoadLoRA was trained on (its `ss_tag_frequency`: `lora.trigger_words`) are known.
    A plural of a known word ("circles") and a count ("two") are spelt right: the warning says what to write
    instead rather than "check the spelling"."""
    import re

    from nodes.training.world_captions import unknown_words

    from .lora import trigger_words
    from .prompt_syntax import LORA_TAG

    # BREAK is prompt syntax (a new chunk), no word; a <lora:name:1> tag has its own warning (syntax_notes)
    words = unknown_words(LORA_TAG.sub(" ", re.sub(r"\bBREAK\b", " ", text)))
    if words:
        known = {word for lora, strength in loras if strength for word in trigger_words(lora)}
        words = [word for word in words if word not in known]
    if not words:
        return
    shown = ", ".join(repr(word if len(word) <= 30 else word[:29] + "…") for word in words[:12]) + (
        ", …" if len(words) > 12 else "")
    plurals = {word: _singular_world_word(word) for word in words if _singular_world_word(word)}
    counts = [word for word in words if word in _COUNT_WORDS]
    hints = []
    if plurals:
        hints.append("it knows only the singular: write " + ", ".join(
            f"'{singular}' for '{plural}'" for plural, singular in plurals.items()))
    if counts:
        hints.append("it draws one object (two at most, joined by \"and\") and never learnt counting words")
    if len(plurals) + len(counts) < len(words):
        hints.append("check the spelling")
    advice = "; ".join(hints)
    context.warn(f"the tiny-world model never learnt the word(s) {shown}: it may draw the wrong thing or "
                 f"nothing. {advice[0].upper() + advice[1:]}; it knows shapes, colours, sizes, positions and "
                 f"backgrounds (docs/tiny_world.md; the words of a LoRA's training captions are known once LoadLoRA "
                 f"applies it).")


def _warn_two_object_prompt(context: Any, text: str) -> None:
    """Warn that a two-object prompt is drawn unreliably: the shipped models bind each colour and shape to its
    object in about one image in five (binding 18-20 %, docs/training.md "v6f"), even in the templates' words."""
    from nodes.training.world_captions import parse_prompt

    prompt = parse_prompt(text)
    if prompt is not None and len(prompt.objects) == 2:
        context.warn("binding is weak: the tiny-world model draws two objects with the right colour on the right "
                     "shape in about one image in five (expect swapped colours, a wrong shape or one object "
                     "missing); one object per prompt is what it draws reliably (docs/training.md).")


def _warn_non_template_prompt(context: Any, text: str) -> None:
    """Warn that the flow model learnt only the five caption templates (docs/training.md, "Template phrasings
    only"): a prompt in other words, or one that leaves out the size, position or background, mostly gives a plain
    canvas in the object's colour."""
    from nodes.training.world import TEMPLATES, caption, parse_caption

    written = " ".join(text.lower().split())
    scene = parse_caption(written)
    if scene is not None and any(caption(scene, template) == written for template in range(len(TEMPLATES))):
        return
    context.warn("the tiny flow model learnt only its five caption templates, each naming the size, colour, "
                 "shape, position and background, e.g. \"a small red circle on the left, on a blue background\"; "
                 "other phrasings, or a prompt that leaves an attribute out, mostly give a plain canvas "
                 "(docs/tiny_world.md \"Captions\"). The default model (graphs/txt2img.json) reads free phrasings.")


class EncodeTextSDXL(Node):
    """Encode a prompt for SDXL with its size and crop conditioning (or the refiner's aesthetic score)."""

    category = "conditioning"

    class Inputs(NodeInputs):
        text_encoder: Any = Input(port="TEXT_ENCODER")
        text: str = Input("", multiline=True, max_length=20000)
        width: int = Input(1024, ge=8, le=16384, multiple_of=8, description="original image width (pixels)")
        height: int = Input(1024, ge=8, le=16384, multiple_of=8)
        crop_left: int = Input(0, ge=0, le=16384)
        crop_top: int = Input(0, ge=0, le=16384)
        target_width: int = Input(1024, ge=8, le=16384, multiple_of=8)
        target_height: int = Input(1024, ge=8, le=16384, multiple_of=8)
        aesthetic_score: float = Input(6.0, ge=0.0, le=10.0, description="refiner only")
        clip_skip: int = Input(1, ge=1, le=24)

    outputs = (Output("conditioning", "CONDITIONING"),)

    @classmethod
    def named_model_files(cls, literals: dict[str, Any]) -> list[tuple[str, str, tuple[str, ...]]]:
        """The prompt's `embedding:NAME` files (as EncodeText's)."""
        return _embedding_files(literals.get("text"))

    def run(self, text_encoder: Any, text: str, width: int, height: int, crop_left: int, crop_top: int,
            target_width: int, target_height: int, aesthetic_score: float, clip_skip: int) -> dict:
        from .unet import sdxl_vector

        if not getattr(text_encoder, "family", "").startswith("sdxl"):
            raise NodeInputError("text_encoder", f"EncodeTextSDXL needs an SDXL text encoder, found a "
                                                 f"{getattr(text_encoder, 'family', '?')} one; use EncodeText")
        _check_prompt(self.context, text)
        _warn_about_tiny_world_prompt(self.context, text_encoder, text)
        _warn_bare_embedding_names(self.context, text)
        cond = _encode(self.context, text_encoder, text, clip_skip)
        refiner = text_encoder.family == "sdxl-refiner"
        y = sdxl_vector(cond.pooled.cpu(), (height, width), (crop_top, crop_left), (target_height, target_width),
                        aesthetic_score=aesthetic_score if refiner else None)
        return {"conditioning": {"context": cond.context.cpu(), "y": y}}


class EncodeTextSD3(Node):
    """Encode a prompt for SD3 / SD3.5: CLIP-L + CLIP-G (77 tokens, side by side) then T5 (256 tokens), pooled CLIPs.

    Any encoder may be missing from the checkpoint or switched off here: zeros take its place,
    as in diffusers' StableDiffusion3Pipeline. ``t5`` takes the T5 of a separately loaded file
    (LoadTextEncoder on ``t5xxl_*.safetensors`` with its ``spiece.model``) instead of the checkpoint's.
    """

    category = "conditioning"

    class Inputs(NodeInputs):
        text_encoder: Any = Input(port="TEXT_ENCODER", description="an SD3 checkpoint's encoders (or a T5 alone)")
        text: str = Input("", multiline=True, max_length=20000, description="empty = the unconditional prompt")
        t5: Any = Input(None, port="TEXT_ENCODER", description="optional: a separately loaded T5 encoder")
        use_clip_l: bool = Input(True)
        use_clip_g: bool = Input(True)
        use_t5: bool = Input(True, description="off: 77 zero tokens in T5's place (faster, less prompt detail)")

    outputs = (Output("conditioning", "CONDITIONING"),)

    def run(self, text_encoder: Any, text: str, t5: Any, use_clip_l: bool, use_clip_g: bool, use_t5: bool) -> dict:
        for name, value in (("text_encoder", text_encoder), ("t5", t5)):
            if value is not None and getattr(value, "family", None) not in ("sd3", "t5"):
                raise NodeInputError(name, f"EncodeTextSD3 needs an SD3 checkpoint's text encoders or a T5 file, "
                                           f"found a {getattr(value, 'family', type(value).__name__)} one; use "
                                           f"EncodeText / EncodeTextSDXL for it")
        if t5 is not None and t5.encoder.t5 is None:
            raise NodeInputError("t5", "this text encoder holds no T5; connect a LoadTextEncoder of a T5 file")
        use = [n for n, on in (("clip_l", use_clip_l), ("clip_g", use_clip_g), ("t5xxl", use_t5)) if on]
        _check_prompt(self.context, text)
        _warn_about_tiny_world_prompt(self.context, text_encoder, text, templates_only=True)
        memory = self.context.service("memory")
        with memory.using(text_encoder.encoder):
            set_loras(text_encoder.encoder, list(text_encoder.loras))   # exactly this variant's LoRAs (none: base)
            if t5 is None:
                return {"conditioning": text_encoder.encoder.encode(text, use=use)}
            with memory.using(t5.encoder):
                try:
                    return {"conditioning": text_encoder.encoder.encode(text, use=use, t5_from=t5.encoder)}
                except ValueError as exc:
                    raise NodeInputError("t5", str(exc)) from None


def _tile_overlap(tile_size: int) -> int:
    """Overlap between tiles: a quarter of the tile, a multiple of 8, at most 64 pixels."""
    return max(8, min(64, tile_size // 4 // 8 * 8))


def _images_to_vae(images: Any) -> Any:
    shape = getattr(images, "shape", None)
    if shape is None or len(shape) != 4 or shape[-1] != 3:
        raise NodeInputError("image", f"expected an IMAGE (B, H, W, 3), found shape {shape}")
    return images.movedim(-1, 1) * 2.0 - 1.0           # (B, 3, H, W) in [-1, 1]


class VAEEncode(Node):
    """Encode images into latents (the posterior mean); sizes must be multiples of the VAE's factor (8 for SD)."""

    category = "latent"

    class Inputs(NodeInputs):
        vae: Any = Input(port="VAE")
        image: Any = Input(port="IMAGE")
        tile_size: int = Input(0, ge=0, le=8192, multiple_of=8,
                               description="0 = one pass (images over 2048² in 1024-pixel tiles); else tile in pixels")

    outputs = (Output("latent", "LATENT"),)

    def run(self, vae: Any, image: Any, tile_size: int) -> dict:
        return {"latent": api.vae_encode(self.context, vae, image, tile_size=tile_size)}


class VAEEncodeForInpaint(Node):
    """Encode an image for inpainting: the mask is grown, the area sampling regenerates completely is
    neutralised to grey, and the latent carries the (soft) mask so sampling regenerates only that area.

    Only whole latent cells whose mask is 1 are greyed: under a soft edge the sampler keeps part of
    the encoded image, which must then be the image itself, not a grey blend (that left a grey seam).
    """

    category = "latent/inpaint"
    version = "1.1.0"

    class Inputs(NodeInputs):
        vae: Any = Input(port="VAE")
        image: Any = Input(port="IMAGE")
        mask: Any = Input(port="MASK")
        grow_mask_by: int = Input(6, ge=0, le=256, description="pixels added around the mask (hides seams)")

    outputs = (Output("latent", "LATENT"),)

    def run(self, vae: Any, image: Any, mask: Any, grow_mask_by: int) -> dict:
        import torch

        from nodes.image.masks import grow_mask

        pixels = _images_to_vae(image)
        if getattr(mask, "ndim", 0) != 3 or tuple(mask.shape[-2:]) != tuple(image.shape[1:3]):
            found = (f"{mask.shape[-1]}×{mask.shape[-2]}" if getattr(mask, "ndim", 0) == 3
                     else f"shape {tuple(getattr(mask, 'shape', ()))}")
            raise NodeInputError("mask", f"expected a MASK the size of the image, {image.shape[2]}×{image.shape[1]} "
                                         f"(width×height), found {found}; resize the mask with ScaleMask (or the "
                                         f"image with ImageScale) first")
        if float(mask.max()) <= 0:
            raise NodeInputError("mask", "the mask is empty: nothing to inpaint. A LoadImage's mask is its file's "
                                         "transparency, so an opaque image gives none: paint the area to change "
                                         "with \"Edit mask…\" beside the image in the editor, or give a mask image "
                                         "(white = change) through LoadImageMask, or LoadImage → ImageToMask")
        factor = vae.config.downscale
        if pixels.shape[-1] % factor or pixels.shape[-2] % factor:
            raise NodeInputError("image", f"image size {pixels.shape[-1]}×{pixels.shape[-2]} (width×height) must be "
                                          f"a multiple of {factor}; resize it with ImageScale first (or crop it: "
                                          f"ImageCrop, or CropToMask with multiple_of {factor})")
        grown = grow_mask(mask.float(), grow_mask_by).clamp(0, 1)
        # Grey only where sampling regenerates everything (mask 1). Under a soft edge (0 < mask < 1) the
        # sampler keeps (1 - mask) of the encoded latent, so greying there left a grey seam / halo (#16).
        cells = torch.nn.functional.avg_pool2d(grown[:, None], factor)    # (B, 1, h, w): the sampler's mask
        full = torch.nn.functional.interpolate((cells >= 1.0 - 1e-3).to(pixels.dtype), scale_factor=factor,
                                               mode="nearest")               # (B, 1, H, W)
        neutral = pixels * (1 - full)                                       # 0 in [-1, 1] = mid grey
        tile_size = _tile_size_for(self.context, 0, neutral.shape[-2] * neutral.shape[-1], "encode")
        with self.context.service("memory").using(vae):
            device = next(vae.parameters()).device
            tiles = {"tile_size": tile_size, "tile_overlap": _tile_overlap(tile_size),
                     "before_tile": self.context.check_interrupted} if tile_size else {}
            pixels_per_item = neutral.shape[-2] * neutral.shape[-1]
            latents = torch.cat([vae.encode(chunk.to(device), **tiles).float().cpu()
                                 for chunk in _vae_batches(self.context, neutral, pixels_per_item)])
        return {"latent": _with_scale_record({"samples": latents, "noise_mask": grown}, vae)}


class VAEDecode(Node):
    """Decode latents into images (optionally in tiles, for large images)."""

    category = "latent"

    class Inputs(NodeInputs):
        vae: Any = Input(port="VAE")
        latent: Any = Input(port="LATENT")
        tile_size: int = Input(0, ge=0, le=8192, multiple_of=8,
                               description="0 = one pass (images over 2048² in 1024-pixel tiles); else tile in pixels")

    outputs = (Output("image", "IMAGE"),)

    def run(self, vae: Any, latent: Any, tile_size: int) -> dict:
        return {"image": api.vae_decode(self.context, vae, latent, tile_size=tile_size)}


class FreeMemory(Node):
    """Drop every cached output and offload every model, then pass `value` on (runs every time).

    A plain user's run on a server with users drops only that user's own cached results: the models and other
    users' results are everyone's, and stay (the node warns so; an admin's run, or the admin-only `free_memory`
    message, frees them).
    """

    category = "utils"
    deterministic = False

    class Inputs(NodeInputs):
        value: Any = Input(None, port="*")

    outputs = (Output("value", "*"),)

    def run(self, value: Any) -> dict:
        dropped = self.context.service("free_memory")()
        if dropped is not None:      # a plain user's run (Session.run(free_shared_memory=False)): theirs only
            self.context.warn(f"freed only this user's own cached results ({dropped}); the models and other users' "
                              f"results are shared on this server and stay loaded (an admin's run or free_memory "
                              f"message frees them)")
        return {"value": value}


class LoadControlNet(Node):
    """Load a ControlNet (original or diffusers layout, SD 1.x / 2.x / XL or a custom size) from models/controlnet."""

    category = "loaders"
    shared_cache = True     # its output depends only on model files: users of a server share it

    class Inputs(NodeInputs):
        control_net_name: str = Input(model_folder="controlnet")
        weight_dtype: WeightDtype = Input("auto")
        family: Literal["auto", "sd1", "sd2", "sdxl-base", "sdxl-refiner"] = Input(
            "auto", description="head layout for ControlNets of a custom size that do not say (auto: from the "
                                "file's metadata or its context width)")

    outputs = (Output("control_net", "CONTROL_NET"),)

    def run(self, control_net_name: str, weight_dtype: str, family: str = "auto") -> dict:
        from .loading import load_controlnet

        memory = self.context.service("memory")
        path = resolve_model(self, "controlnet", "control_net_name", control_net_name)
        net = _load_with_retry(self, "control_net_name",
                               lambda: load_controlnet(path, family=None if family == "auto" else family,
                                                       dtype=_torch_dtype(weight_dtype, memory),
                                                       allow_pickle=allow_pickle_files(self)))
        memory.register(net, control_net_name)
        net.nodegraph_name = control_net_name
        return {"control_net": net}


class ApplyControlNet(Node):
    """Steer sampling with a ControlNet and a hint image (edges, a mask, depth ...) on the prompts.

    Applied to both prompts so CFG keeps one batched model call. Chain several: they add up.
    start / end are fractions of the schedule (0 = first, noisiest step). A hint of another
    size than the image being generated is resized (with a warning in the log).
    """

    category = "conditioning/controlnet"

    class Inputs(NodeInputs):
        positive: Any = Input(port="CONDITIONING")
        negative: Any = Input(None, port="CONDITIONING", description="also steer the negative prompt (usual)")
        control_net: Any = Input(port="CONTROL_NET")
        image: Any = Input(port="IMAGE", description="the hint: what the ControlNet was trained on")
        strength: float = Input(1.0, ge=0.0, le=10.0)
        start: float = Input(0.0, ge=0.0, le=1.0, description="fraction of the schedule where control begins")
        end: float = Input(1.0, ge=0.0, le=1.0, description="fraction of the schedule where control ends")
        vae: Any = Input(None, port="VAE", description="for ControlNets whose hints are latents (encoded here); "
                                                       "ControlNets for RGB hints ignore it, as in ComfyUI")

    outputs = (Output("positive", "CONDITIONING"), Output("negative", "CONDITIONING"))

    def run(self, positive: Any, negative: Any, control_net: Any, image: Any, strength: float, start: float,
            end: float, vae: Any) -> dict:
        from .controlnet import ControlEntry, ControlStack

        if end < start:
            raise NodeInputError("end", f"end ({end}) must not be before start ({start})")
        hint = image.movedim(-1, 1).float()                                     # (B, 3, H, W) in [0, 1]
        channels = control_net.config.hint_channels
        if vae is not None and not (channels == 3 and hint.shape[1] == 3):    # an RGB-hint ControlNet ignores it
            with self.context.service("memory").using(vae):
                device = next(vae.parameters()).device
                hint = vae.encode(hint.to(device) * 2 - 1).float().cpu()
        if hint.shape[1] != channels:
            how = ("connect the VAE input: this ControlNet takes latents" if vae is None and channels != 3
                   else "use a ControlNet for RGB hints or remove the VAE input")
            raise NodeInputError("image", f"the hint has {hint.shape[1]} channels, the ControlNet takes {channels}; "
                                          f"{how}")
        entry = ControlEntry(control_net, hint, strength, start, end,
                             name=getattr(control_net, "nodegraph_name", "ControlNet"))
        applied = {}
        stacks: dict[int, Any] = {}          # one new stack per old one: both prompts keep sharing it
        for name, cond in (("positive", positive), ("negative", negative)):
            if cond is None:
                applied[name] = None
                continue
            old = cond.get("control") or ControlStack()
            if id(old) not in stacks:
                stacks[id(old)] = old.plus(entry)
            applied[name] = {**cond, "control": stacks[id(old)]}
        return applied


# --- the nodegraph.api implementations this pack provides (register_api) -----------------------------

def _check_vae(vae: Any) -> None:
    if not (hasattr(vae, "encode") and hasattr(vae, "decode") and hasattr(vae, "config")):
        raise NodeInputError("vae", f"expected a VAE (e.g. from LoadCheckpoint or LoadVAE), found {type(vae).__name__}")


def api_vae_encode(context: NodeContext, vae: Any, image: Any, *, tile_size: int) -> dict:
    """nodegraph.api.vae_encode: IMAGE (B, H, W, 3) → LATENT {"samples": (B, C, H/f, W/f)} (posterior mean)."""
    _check_vae(vae)
    pixels = _images_to_vae(image)
    factor = vae.config.downscale
    if pixels.shape[-1] % factor or pixels.shape[-2] % factor:
        raise NodeInputError("image", f"image size {pixels.shape[-1]}×{pixels.shape[-2]} (width×height) must be a "
                                      f"multiple of {factor}; resize it with ImageScale first")
    with context.service("memory").using(vae):
        device = next(vae.parameters()).device
        latents = []
        tile_size = _tile_size_for(context, tile_size, pixels.shape[-2] * pixels.shape[-1], "encode")
        for chunk in _vae_batches(context, pixels, pixels.shape[-2] * pixels.shape[-1]):
            try:
                latents.append(vae.encode(chunk.to(device), tile_size=tile_size or None,
                                          tile_overlap=_tile_overlap(tile_size),
                                          **({"before_tile": context.check_interrupted} if tile_size else {})
                                          ).float().cpu())
            except ValueError as exc:
                raise NodeInputError("tile_size", str(exc)) from None
    import torch

    return _with_scale_record({"samples": torch.cat(latents)}, vae)


def _with_scale_record(latent: dict, vae: Any) -> dict:
    """`latent` (just encoded by `vae`) with its `LATENT_SCALE_KEY` record, when the VAE has scale numbers."""
    record = latent_scale_record(vae, f"encoded by a VAE whose scale is from {_scale_source(vae)}")
    return {**latent, LATENT_SCALE_KEY: record} if record is not None else latent


def api_vae_decode(context: NodeContext, vae: Any, latent: dict, *, tile_size: int) -> Any:
    """nodegraph.api.vae_decode: LATENT → IMAGE (B, H, W, 3) float32 in [0, 1] on the CPU."""
    _check_vae(vae)
    samples = latent["samples"]
    if samples.ndim != 4:
        raise NodeInputError("latent", f"this VAE decodes image latents (B, C, h, w), found {samples.ndim}-D "
                                       f"samples {tuple(samples.shape)}; fold frames into the batch axis")
    samples = _in_vae_space(context, vae, latent, samples)
    if samples.shape[1] != vae.config.z_channels:
        raise NodeInputError("latent", f"the latent has {samples.shape[1]} channels; this VAE decodes "
                                       f"{vae.config.z_channels}")
    with context.service("memory").using(vae):
        device = next(vae.parameters()).device
        images = []
        pixels_per_item = samples.shape[-2] * samples.shape[-1] * vae.config.downscale ** 2
        tile_size = _tile_size_for(context, tile_size, pixels_per_item, "decode")
        for chunk in _vae_batches(context, samples, pixels_per_item):
            try:
                pixels = vae.decode(chunk.to(device), tile_size=tile_size or None,
                                    tile_overlap=_tile_overlap(tile_size),
                                    **({"before_tile": context.check_interrupted} if tile_size else {}))
            except ValueError as exc:
                raise NodeInputError("tile_size", str(exc)) from None
            images.append(((pixels.float().cpu() + 1.0) / 2.0).clamp(0, 1).movedim(1, -1))   # (b, H, W, 3)
    import torch

    return torch.cat(images)


def latent_scale_record(vae: Any, made_by: str) -> dict | None:
    """The `LATENT_SCALE_KEY` entry of a latent made in `vae`'s latent space (VAEEncode's output): the numbers
    that turn it back into the VAE's own latents, and who made it, for VAEDecode's check (None: a VAE without
    them, e.g. a plugin's)."""
    scale = _vae_scale(vae)
    return None if scale is None else latent_scale_entry(scale, made_by)


def _vae_scale(vae: Any) -> tuple[float, float] | None:
    """(scale_factor, shift_factor) of a VAE's latent space, or None when its config has no such numbers."""
    scale = getattr(vae.config, "scale_factor", None)
    shift = getattr(vae.config, "shift_factor", 0.0) or 0.0
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not isinstance(shift, (int, float)):
        return None
    return float(scale), float(shift)


def _scale_source(vae: Any) -> str:
    """Where a VAE's scale came from, in words (`loading.load_vae` sets `scale_source`; a checkpoint's own VAE
    has its family's)."""
    return getattr(vae, "scale_source", None) or "its checkpoint's family"


def _in_vae_space(context: NodeContext, vae: Any, latent: dict, samples: Any) -> Any:
    """`samples` to decode, when the latent records its latent space's scale (`LATENT_SCALE_KEY`: VAEEncode's, or
    a sampler's whose model knows it) and the VAE's differs. A VAE whose file recorded no scale
    (`scale_guessed`: a bare SDXL VAE file, loaded at SD 1.x's 0.18215 by default) decodes in the latent's space,
    as ComfyUI lets the model decide (said in a warning); a VAE whose scale was chosen (its file, a config.json,
    LoadVAE's family) decodes as loaded, with a warning: an SDXL latent (0.13025) decoded at 0.18215 gives a
    visibly wrong image, and nothing else would say why, but which side is wrong is the user's to say."""
    import math

    made = latent.get(LATENT_SCALE_KEY) if isinstance(latent, dict) else None
    if not isinstance(made, dict):
        return samples
    theirs, ours = (made.get("scale_factor"), made.get("shift_factor", 0.0)), _vae_scale(vae)
    if ours is None or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                               for v in theirs) or not theirs[0] or all(
            math.isclose(a, b, rel_tol=1e-3, abs_tol=1e-6) for a, b in zip(theirs, ours)):
        return samples
    if getattr(vae, "scale_guessed", False):
        context.warn(f"this VAE's file records no latent scale (SD 1.x's {ours[0]:g} was assumed); the latent was "
                     f"{made.get('made_by') or 'made'} in a space scaled by {theirs[0]:g}, shift {theirs[1]:g}, so it "
                     f"was decoded in that space. Set LoadVAE's family to say which VAE this is.")
        # the VAE computes z = samples / ours[0] + ours[1]; the latent's own space needs samples / theirs[0] + theirs[1]
        return (samples / theirs[0] + theirs[1] - ours[1]) * ours[0]
    _warn_other_latent_scale(context, vae, made, theirs, ours)
    return samples


def _warn_other_latent_scale(context: NodeContext, vae: Any, made: dict, theirs: tuple, ours: tuple) -> None:
    """The warning of `_in_vae_space` for a VAE whose scale was chosen: it decodes as loaded."""
    family = {0.13025: " (SDXL's: LoadVAE's family sdxl)", 0.18215: " (SD 1.x / 2.x's: LoadVAE's family sd)"}
    context.warn(f"this latent was made in a latent space scaled by {theirs[0]:g}, shift {theirs[1]:g} "
                 f"({made.get('made_by') or 'by another VAE'}), but this VAE decodes with scale {ours[0]:g}, shift "
                 f"{ours[1]:g} (from {_scale_source(vae)}): the image comes out wrong. "
                 f"Decode with the VAE the latent was made with, or load this one for the latent's space"
                 f"{family.get(round(theirs[0], 5), '')}.")


VAE_CHUNK_PIXELS = 1 << 20     # images of at most this many pixels in all go through the VAE at once (one 1024²)
AUTO_TILE_PIXELS = 2048 * 2048     # one image larger than this goes through the VAE in tiles when tile_size is 0
AUTO_TILE_SIZE = 1024              # pixels: those tiles' side


def _tile_size_for(context: NodeContext, tile_size: int, pixels_per_item: int, verb: str) -> int:
    """`tile_size`, or AUTO_TILE_SIZE for `tile_size` 0 and an image over AUTO_TILE_PIXELS (with a warning):
    one pass over a single image cannot be sliced — its memory grows with its pixels (2048²: +2.8 GB, 8192²:
    ~45 GB) and it cannot be interrupted — so past 2048² tiles bound the memory and are interrupt points.
    Tiles are blended over 64 pixels, but the VAE's normalisation and attention see one tile, so the result
    differs from one pass (a faint seam can show); below the threshold nothing changes."""
    if tile_size or pixels_per_item <= AUTO_TILE_PIXELS:
        return tile_size
    context.warn(f"the image is {pixels_per_item / 1e6:.1f} megapixels: the VAE {verb}s it in {AUTO_TILE_SIZE}-pixel "
                 f"tiles to bound memory (tile_size chooses another size)")
    return AUTO_TILE_SIZE


def _vae_batches(context: NodeContext, batch: Any, pixels_per_item: int) -> Iterator[Any]:
    """`batch` in slices along its first axis of at most VAE_CHUNK_PIXELS image pixels (at least one item),
    checking for an interrupt before each: the VAE's activations are many times an image's size, so a
    batch of 4,096 small images decoded in one call took 16 GB and could not be interrupted."""
    step = max(1, VAE_CHUNK_PIXELS // max(1, pixels_per_item))
    for start in range(0, batch.shape[0], step):
        context.check_interrupted()
        yield batch[start:start + step]


def _check_prompt(context: NodeContext, text: str) -> None:
    """Before encoding a prompt: a weight past ±100 (or not finite) is a NodeInputError naming `text`; another
    tool's syntax that is read as plain words here (`red++`, `<lora:x:1>`) is a warning saying what to write."""
    from .prompt_syntax import syntax_notes, weight_problem

    problem = weight_problem(text)
    if problem:
        raise NodeInputError(_prompt_input(context, text), problem)
    for note in syntax_notes(text):
        context.warn(note)


def _prompt_input(context: NodeContext, text: str) -> str:
    """The input of the running node that holds `text` (a plugin node calling api.encode_text names its own —
    `prompt`, `negative_prompt` — not EncodeText's `text`): one written with that text, else one named like a
    prompt, else "text"."""
    graph = getattr(context, "graph", None)
    node = getattr(graph, "nodes", {}).get(getattr(context, "node_id", None)) if graph is not None else None
    inputs = getattr(node, "inputs", None) or {}
    written = [name for name, value in inputs.items() if value == text]
    named = [name for name in inputs if "prompt" in name] or [name for name in inputs
                                                             if name == "text" or name.endswith("_text")]
    return (written or named or ["text"])[0]


def api_encode_text(context: NodeContext, text_encoder: Any, text: str, *, clip_skip: int,
                    weighting: str = "comfyui") -> dict:
    """nodegraph.api.encode_text: prompt → CONDITIONING {"context": (1, T, D), "y"?: SDXL's / SD3's vector}. A
    weight past ±100 is refused naming `text`; other tools' syntax read as words (`red++`, `<lora:x:1>`) warns."""
    _check_prompt(context, text)
    if isinstance(text_encoder, TextEncoder) and text_encoder.family in ("sd3", "t5"):   # all of SD3's encoders
        if weighting != "comfyui":
            raise NodeInputError("weighting", "SD3's encoders weight prompts one way only; set weighting to comfyui")
        with context.service("memory").using(text_encoder.encoder):
            set_loras(text_encoder.encoder, list(text_encoder.loras))
            return text_encoder.encoder.encode(text, clip_skip=clip_skip)
    cond = _encode(context, text_encoder, text, clip_skip, weighting)
    out = {"context": cond.context.float().cpu()}        # the contract: float32 on the CPU, any encoder dtype
    if text_encoder.family.startswith("sdxl"):
        from .unet import sdxl_vector

        out["y"] = sdxl_vector(cond.pooled.float().cpu(), (1024, 1024), (0, 0), (1024, 1024),
                               aesthetic_score=6.0 if text_encoder.family == "sdxl-refiner" else None)
    return out


def _check_patchable(model: Any) -> Any:
    """The MODEL, if it can apply model patches (a network with patch points and a patcher); else a
    NodeInputError, since patches set on it would silently never run."""
    if not (hasattr(model, "patches") and hasattr(model, "net")):
        raise NodeInputError("model", f"expected a MODEL (e.g. from LoadCheckpoint), found {type(model).__name__}")
    if getattr(model, "patcher", None) is None or not hasattr(model.net, "model_patches"):
        raise NodeInputError("model", f"model {getattr(model, 'name', '?')!r} ({type(model.net).__name__}) has no "
                                      f"patch points: model patches act on UNet checkpoints (LoadCheckpoint, "
                                      f"LoadUNet, or api.diffusion_model around such a UNet)")
    return model


def api_model_patcher(context: NodeContext) -> Any:
    """The patcher api.diffusion_model gives networks with patch points (our UNet): set_model_patches."""
    from .patches import set_model_patches

    return set_model_patches


@contextmanager
def _patch_errors(argument: str) -> Iterator[None]:
    from .patches import PatchError

    try:
        yield
    except (PatchError, TypeError) as exc:
        raise NodeInputError(argument, str(exc)) from None


def api_make_patch(context: NodeContext, form: str, *, name: str, priority: int, **fields: Any) -> Any:
    """nodegraph.api.make_patch: a LayerPatch, ModuleInsertion, AttentionPatch or AttentionMapRecorder."""
    from .patches import AttentionMapRecorder, AttentionPatch, LayerPatch, ModuleInsertion

    for key in ("after", "targets"):
        if key in fields:
            fields[key] = tuple(fields[key])
    make = {"layer": LayerPatch, "module": ModuleInsertion, "attention": AttentionPatch,
            "attention_maps": AttentionMapRecorder}[form]
    with _patch_errors("fields"):
        return make(name=name, priority=priority, **fields)


def api_patch_model(context: NodeContext, model: Any, *patches: Any) -> Any:
    """nodegraph.api.patch_model: a new MODEL with the patches added last (targets checked now)."""
    from .patches import check_patches, with_patch

    from .patches import PatchError

    model = _check_patchable(model)
    try:
        check_patches(model.net, patches)
        for patch in patches:
            model = with_patch(model, patch)
    except (PatchError, TypeError) as exc:
        # said of the calling node's input the bad key came from (a plugin's `target`); else the node's failure
        # naming the patch — "input 'patches'" named an input the plugin's node does not have
        holding = _input_holding_patch_key(context, patches)
        if holding is None:
            raise
        raise NodeInputError(holding, str(exc)) from None
    return model


def _input_holding_patch_key(context: NodeContext, patches: tuple) -> str | None:
    """The calling node's input whose literal is a key one of `patches` addresses (`target`, `after`,
    `targets`), or None."""
    keys: set[str] = set()
    for patch in patches:
        for field in ("target", "after", "targets"):
            value = getattr(patch, field, None)
            if isinstance(value, str):
                keys.add(value)
            elif isinstance(value, (tuple, list)):
                keys.update(k for k in value if isinstance(k, str))
    node = getattr(context.graph, "nodes", {}).get(context.node_id) if context.graph is not None else None
    for name, literal in (getattr(node, "inputs", None) or {}).items():
        if isinstance(literal, str) and literal in keys:
            return name
    return None


def api_unpatch_model(context: NodeContext, model: Any, name: str) -> Any:
    """nodegraph.api.unpatch_model: a new MODEL without the patches called `name`."""
    from .patches import without_patches

    model = _check_patchable(model)
    with _patch_errors("name"):
        return without_patches(model, name)


def api_model_keys(context: NodeContext, model: Any, what: str) -> list[str]:
    """nodegraph.api.model_keys: the key paths patches can address in the model's network."""
    from .patches import attention_keys, layer_keys, transformer_keys

    _check_patchable(model)
    return {"layers": layer_keys, "attention": attention_keys, "transformers": transformer_keys}[what](model.net)


def api_open_weights(context: NodeContext, name: Any, *, folder: str | None) -> Any:
    """nodegraph.api.open_weights: a lazy state dict, resolved in a model folder (confined) or at a given path."""
    from pathlib import Path

    from .loading import ModelLoadError, open_state_dict, pickle_allowed_by_environment

    allow = bool(context.services.get("allow_pickle", False)) or pickle_allowed_by_environment()
    try:
        path = context.service("resolve_file")(folder, name) if folder is not None else Path(name)
        return open_state_dict(path, allow_pickle=allow)
    except (LookupError, ModelLoadError) as exc:
        raise NodeInputError(_input_holding(context, name), str(exc)) from None


def _input_holding(context: NodeContext, value: Any) -> str:
    """The calling node's input whose literal is `value` (so an error names what the user typed), else "name"."""
    node = getattr(context.graph, "nodes", {}).get(context.node_id) if context.graph is not None else None
    for key, literal in (getattr(node, "inputs", None) or {}).items():
        if isinstance(literal, str) and literal == value:
            return key
    return "name"


@hookimpl
def register_api() -> dict[str, Any]:
    return {"vae_encode": api_vae_encode, "vae_decode": api_vae_decode, "encode_text": api_encode_text,
            "make_patch": api_make_patch, "patch_model": api_patch_model, "unpatch_model": api_unpatch_model,
            "model_keys": api_model_keys, "open_weights": api_open_weights, "model_patcher": api_model_patcher}


@hookimpl
def register_nodes() -> list[type[Node]]:
    from .flux_nodes import FLUX_NODES
    from .merge_nodes import MERGE_NODES
    from .sd3_nodes import SD3_NODES

    return [LoadCheckpoint, LoadUNet, LoadVAE, LoadTextEncoder, LoadLoRA, LoadLoRAModelOnly, EncodeText,
            EncodeTextSDXL, EncodeTextSD3, VAEEncode, VAEEncodeForInpaint, VAEDecode, FreeMemory, LoadControlNet,
            ApplyControlNet, *FLUX_NODES, *SD3_NODES, *MERGE_NODES]


@hookimpl
def register_model_folders() -> dict[str, list[str]]:
    weights = [".safetensors", ".sft", ".ckpt", ".pt", ".pth"]
    return {"checkpoints": weights, "unet": weights, "vae": weights, "loras": weights, "text_encoders": weights,
            "controlnet": weights, "embeddings": [".safetensors", ".pt", ".bin", ".pth"]}
