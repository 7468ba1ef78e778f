"""nodegraph.api — the public plugin API: what plugin nodes call to sample, encode, decode and save.

    from nodegraph import api
    latent = api.sample(self.context, model, positive, negative, latent, seed=3, steps=20, cfg=7.0)
    images = api.vae_decode(self.context, vae, latent)
    return {"files": api.save_image(self.context, images, "my_plugin/result")}

Version and stability promise
    `API_VERSION` is "MAJOR.MINOR" (semver). Within major version 1 every name in
    `__all__`, every documented argument and default, the tensor layouts and the
    file-result contract (docs/plugins.md) keep working: additions (functions,
    keyword arguments with defaults, optional result fields) bump the minor
    version; removals or changes of meaning bump the major version, after at
    least one minor version in which the old form warns with a
    DeprecationWarning naming its replacement. `require("1.1")` lets a plugin
    state what it needs. Anything not in `__all__` (and every module of the
    built-in packs, `nodes.*`) is private and may change without notice.

Map
    sample          KSampler: schedule + CFG + seeded noise + sampler, progress and previews per step
    sample_custom   Sample: guider, sampler, sigmas and noise chosen separately
    cfg_guider      CFGGuider: the GUIDER sample_custom takes — CFG (+ rescale, sigma range, GUIDANCE terms) (1.4)
    sigmas          Schedule: a model's noise levels for a scheduler, steps and denoise
    empty_latent    EmptyLatent: zeros in the latent layout of a VAE (or of an SD VAE)
    diffusion_model a plugin's own denoising network → MODEL, sampled by all of the above (1.1)
    model_denoiser  a MODEL's denoiser with its patches, base weights frozen, for a plugin's own loop (1.1)
    vae_encode      IMAGE → LATENT;  vae_decode  LATENT → IMAGE
    encode_text     prompt → CONDITIONING
    make_patch, patch_model, unpatch_model, model_keys   model patches as values (docs "Model patches")
    open_weights    a weights file (from a model folder, or shipped by the plugin) under the loader policy
    model_file      any other file in a model folder (a LUT, wildcards, a config), confined to it (1.6)
    save_files      write files (bytes, text or a writer callable) into the output folder → file results
    save_image      IMAGE → PNG / JPEG / WebP files → file results
    tiny_world      the procedural captioned world and its detector, for training data and scoring (1.1)
    training        the training loop pieces: TrainConfig, EMA, TrainingRun (exact resume), ... (1.1)
    check_latent, check_image, check_mask   the layout checks the API applies (results.py, docs)
    to_pil          IMAGE → PIL images (a run's result in a script, as diffusers' `.images`) (1.8)
    GuidanceTerm    base class of a plugin's guidance term (the GUIDANCE port carries factories of them)
    ApiArgumentError  bad argument: names the function, the argument, expected and found
    ApiError          no implementation loaded, or an API version a plugin needs is missing

How it dispatches
    The engine (`nodegraph/`) knows nothing about diffusion and never imports the
    node packs. The packs provide the implementations through the `register_api`
    hook (name → function, same signature as the public function); every public
    function takes the running node's `context` first, checks its arguments, and
    calls the implementation found in `context.service("registry")`. The built-in
    nodes (KSampler, Sample, Schedule, EmptyLatent, VAEEncode, VAEDecode,
    EncodeText, SaveImage, PreviewImage) call these same functions, so plugins and
    built-ins share one code path. `save_files` needs no pack: it lives here, as do
    the checks and `GuidanceTerm` (which the sampling pack recognises by a marker).

Nothing here imports torch at import time.
"""

from __future__ import annotations

import errno
import math
import os
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

from .comfyui import Equivalent as ComfyUIClass     # register_comfyui_classes' entries (1.9)
from .errors import NodegraphError, NodeInputError, StorageLimitError
from .node import NodeContext
from .results import FILE_KINDS, MIME_TYPES, ResultFileError, default_mime, file_result, unknown_kind_message
from .types import pixel_values_problem

API_VERSION = "1.10"

__all__ = [
    "API_VERSION", "ApiArgumentError", "ApiError", "ComfyUIClass", "FILE_KINDS", "GuidanceTerm", "StepResult",
    "cfg_guider",
    "check_image", "check_latent", "check_mask", "confine", "diffusion_model", "empty_latent", "encode_text",
    "input_file", "make_patch", "model_denoiser", "model_file", "model_keys", "open_weights",
    "patch_model", "require", "sample", "sample_custom", "sampler_from_step", "save_files", "save_image", "sigmas",
    "tiny_world", "to_pil", "training", "unpatch_model", "vae_decode", "vae_encode",
]

SEED_MAX = 2**64 - 1
FileKind = Literal["image", "video", "audio", "mesh", "pointcloud", "text", "file"]
FileItem = bytes | str | Callable[[Path], Any]

#: which built-in pack provides each implementation (named when it is missing)
_PROVIDERS = {"sample": "sampling", "sample_custom": "sampling", "cfg_guider": "sampling", "sigmas": "sampling",
              "empty_latent": "sampling",
              "make_patch": "models", "patch_model": "models", "unpatch_model": "models", "model_keys": "models",
              "open_weights": "models", "vae_encode": "models", "diffusion_model": "sampling",
              "model_denoiser": "sampling",
              "tiny_world": "training", "training": "training", "model_patcher": "models",
              "vae_decode": "models", "encode_text": "models", "save_image": "image", "sampler_from_step": "sampling"}


class ApiError(NodegraphError):
    """The API cannot serve a call: its implementation is not loaded, or a plugin needs a newer API."""


class ApiArgumentError(NodeInputError):
    """A `nodegraph.api` function was given a wrong value; names the function and the argument.

    A NodeInputError, so a run reports it against the calling node; `input` is the argument name.
    """

    def __init__(self, function: str, argument: str, message: str):
        self.function = function
        self.input = argument
        self.problem = message      # what is wrong, without the function and argument (to re-raise as another)
        where = f"nodegraph.api.{function}()" if function in __all__ else function   # or a plugin's node / function
        ValueError.__init__(self, f"{where}: argument {argument!r}: {message}")


def require(minimum: str) -> None:
    """Raise ApiError unless the installed API is `minimum` ("MAJOR.MINOR") or newer within the same major."""
    match = re.fullmatch(r"(\d+)\.(\d+)", minimum) if isinstance(minimum, str) else None
    if match is None:
        raise ApiArgumentError("require", "minimum", f"expected 'MAJOR.MINOR' such as '1.0', found {minimum!r}")
    wanted = (int(match[1]), int(match[2]))
    have = tuple(int(p) for p in API_VERSION.split("."))
    if have[0] != wanted[0] or have < wanted:
        raise ApiError(f"this plugin needs nodegraph plugin API {minimum} (major {wanted[0]}, minor ≥ {wanted[1]}); "
                       f"the installed nodegraph provides API {API_VERSION}: install a nodegraph that does")


class GuidanceTerm:
    """Base class of a guidance term: ``term(state) -> correction | None``, added to the guided prediction.

    Subclass it in a plugin (docs/plugins.md "Guidance"); the sampling pack's guider accepts
    these exactly like its own terms (it recognises the `nodegraph_guidance_term` marker).
    A GUIDANCE value is a tuple of zero-argument factories returning fresh terms, e.g.
    ``(functools.partial(MyTerm, scale=2.0),)``, so per-run state never leaks between runs.

    ``state`` carries ``x`` (B, ...), ``sigma`` (B,), ``denoised`` (the CFG result),
    ``denoised_positive``, ``denoised_negative`` (None when CFG did not run), ``scale``,
    ``step``, ``sigmas``, ``positive``, ``negative``, ``shared`` and
    ``evaluate(conditioning=None, patches=(), x=None) -> denoised`` (the model again).
    The correction is in denoised (x0) units; return None for "no correction".

    Attributes:
        sigma_range: (low, high), inclusive: the term runs only while every sigma of the batch is inside.
        main_call_patches: model patches active during the guider's own CFG call (e.g. an attention reader).
    """

    nodegraph_guidance_term: ClassVar[bool] = True
    sigma_range: tuple[float, float] = (0.0, math.inf)
    main_call_patches: tuple = ()

    def __call__(self, state: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(state) -> correction or None")

    def check_model(self, net: Any) -> None:
        """Raise ValueError when this term cannot guide the network `net` (default: any network)."""

    def active_at(self, sigma: Any) -> bool:
        """Whether every sigma of the batch lies in `sigma_range` (inclusive)."""
        low, high = self.sigma_range
        if low <= 0 and high == math.inf:
            return True
        return low <= float(sigma.min()) and float(sigma.max()) <= high


# --- checks ----------------------------------------------------------------------------------------

class StepResult(NamedTuple):
    """What one sampler step returns (docs/sampling.md, "Samplers as steps"): the built-in steps and a plugin's
    own step for `sampler_from_step` alike."""

    x: Any              # the latent at sigmas[i + 1]
    state: Any          # a dict: the step's history for step i + 1 (only its own keys)
    denoised: Any       # the denoiser's output, reported to the progress callback
    sigma_hat: float    # the sigma the model was first evaluated at
    x_evaluated: Any    # the latent the model was first evaluated at


# --- files ----------------------------------------------------------------------------------------

def confine(root: str | os.PathLike, name: Any, *, what: str = "file name", input_name: str | None = None,
            subfolders: bool = False) -> Path:
    """`root / name` when `name` stays inside `root`, else a NodeInputError naming `input_name` (or `what`): no
    `..`, absolute path, drive, NUL or control character, device name (`CON`), or link leading out of `root`.
    For a text input that names a file or folder a node writes (or reads) itself; validation already refuses
    such names in inputs declared `file_name_in=` (docs/security.md, "One confinement rule")."""
    from .paths import confine as confine_name

    if isinstance(name, os.PathLike):      # a Path a plugin built: its text is the name
        name = os.fspath(name)
    return confine_name(root, name, what=what, input_name=input_name, subfolders=subfolders)


def input_file(context: NodeContext, name: str, *, argument: str = "file") -> Path:
    """The path of file `name` in the run's input folder (on a server with users, that user's own), for a node
    that reads an uploaded file; a NodeInputError naming `argument` when the name would leave the folder or no
    such file is there (the message lists close names)."""
    context = _check_context("input_file", context)
    try:
        return Path(context.service("resolve_file")("input", name))
    except LookupError as exc:
        raise NodeInputError(argument, str(exc).strip("'\"")) from None


def model_file(context: NodeContext, folder: str, name: str, *, argument: str = "name") -> Path:
    """The path of file `name` in model folder `folder` (`models/<folder>`, the configured extra paths, plugins'
    shipped directories: what the folder's combo lists), for a node that reads a file of its own format (a LUT,
    wildcards, a JSON config) rather than weights (`open_weights`); a NodeInputError naming `argument` when
    the name would leave the folder (`..`, an absolute path) or no such file is there. A symlink inside a model
    folder is followed, as for weights (people link model folders to other disks: docs/models.md)."""
    context = _check_context("model_file", context)
    if (not isinstance(folder, str) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", folder)
            or folder.startswith("input") or folder in (".", "..")):     # a folder name, never a path
        raise ApiArgumentError("model_file", "folder", f"expected a model folder name (e.g. 'loras'), found "
                                                       f"{folder!r:.80}; for an uploaded file use api.input_file")
    try:
        return Path(context.service("resolve_file")(folder, name))
    except LookupError as exc:
        from .validation import unlisted_ending_problem

        directories = context.service("model_paths").directories(folder)
        raise NodeInputError(argument, unlisted_ending_problem(folder, name, directories)
                             or str(exc).strip("'\"")) from None


def sampler_from_step(step: Callable[..., StepResult], context: NodeContext | None = None) -> Callable[..., Any]:
    """A full sampler for `register_samplers` that iterates `step`, a one-step function
    `step(model, x, sigmas, i, state, extra_args, noise_sampler, **options) -> StepResult` (docs/sampling.md);
    the SamplerStep node can take single steps of it too. `context`: the running node's, or None (the
    built-in sampling pack's implementation)."""
    return _kit("sampler_from_step", context, call=False)(step)


def _describe(value: Any) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"{type(value).__name__} of shape {tuple(shape)} ({getattr(value, 'dtype', '?')})"
    if isinstance(value, dict):
        return f"dict with keys {sorted(map(str, value))[:8]}"
    return type(value).__name__


def _is_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "is_floating_point")


def check_latent(latent: Any, argument: str = "latent", function: str = "check_latent") -> Any:
    """The `samples` tensor of a LATENT dict `{"samples": (B, C, ...) float}`, or ApiArgumentError.

    `argument` and `function` name the value in the error (a plugin passes its input and node names).
    """
    samples = latent.get("samples") if isinstance(latent, Mapping) else None
    if not _is_tensor(samples) or not samples.is_floating_point() or samples.ndim < 3:
        raise ApiArgumentError(function, argument,
                               "expected a LATENT dict with a float tensor under 'samples', shaped (B, C, ...) "
                               "(images: (B, C, h, w)), found "
                               + (_describe(latent) if samples is None else f"samples = {_describe(samples)}"))
    if samples.shape[0] < 1:
        raise ApiArgumentError(function, argument, "the latent batch is empty (B = 0)")
    mask = latent.get("noise_mask")
    if mask is not None and (not _is_tensor(mask) or mask.ndim not in (2, 3, 4) or (mask.ndim == 4
                                                                                 and mask.shape[1] != 1)):
        raise ApiArgumentError(function, argument, f"'noise_mask' must be a mask (B, H, W) or (B, 1, H, W), at the "
                                                   f"image's or the latent's size, found {_describe(mask)}")
    frames = latent.get("frames")
    if frames is not None and (not isinstance(frames, int) or frames < 1 or samples.shape[0] % frames):
        raise ApiArgumentError(function, argument, f"'frames' ({frames!r}) must be a positive int dividing the batch "
                                                   f"{samples.shape[0]} (frames are folded into the batch axis)")
    return samples




def check_image(image: Any, argument: str = "image", function: str = "check_image") -> Any:
    """An IMAGE tensor (B, H, W, 3) float32 in [0, 1], or ApiArgumentError (an integer or float64 dtype, NaN,
    values of another scale such as 0-255: `nodegraph.types.pixel_values_problem`, the check on node outputs)."""
    if not _is_tensor(image) or image.ndim != 4 or image.shape[-1] != 3 or not image.is_floating_point():
        raise ApiArgumentError(function, argument, f"expected an IMAGE float tensor (B, H, W, 3) in [0, 1], "
                                                   f"found {_describe(image)}")
    if image.shape[0] < 1:
        raise ApiArgumentError(function, argument, "the image batch is empty (B = 0)")
    problem = pixel_values_problem(image.detach(), "an IMAGE")
    if problem is not None:
        raise ApiArgumentError(function, argument, problem)
    return image


def to_pil(image: Any) -> list:
    """An IMAGE tensor (B, H, W, 3) in [0, 1] → a list of B RGB PIL images (8 bits a channel, rounded), e.g.
    `api.to_pil(session.run(graph).outputs["decode"]["image"])[0].save("out.png")` (1.8). A single image
    (H, W, 3) is taken as a batch of one; values slightly outside [0, 1] are clipped (float64 and a tensor that
    tracks gradients are fine); no context is needed. Refused (ApiArgumentError, saying the fix): an integer or
    complex dtype, NaN or infinite values, 0-255 or [-1, 1] values, an empty image — each made a wrong picture
    without a word (a uint8 200 came out white)."""
    import numpy as np
    from PIL import Image

    if _is_tensor(image) and image.ndim == 3 and image.shape[-1] == 3:
        image = image.unsqueeze(0)
    if not _is_tensor(image) or image.ndim != 4 or image.shape[-1] != 3:
        raise ApiArgumentError("to_pil", "image", f"expected an IMAGE tensor (B, H, W, 3) in [0, 1], found "
                                                  f"{_describe(image)}")
    if not image.shape[1] or not image.shape[2]:
        raise ApiArgumentError("to_pil", "image", f"the image is empty ({tuple(image.shape)}): no pixels to convert")
    plain = image.detach()
    if plain.is_floating_point():         # float64 / float16 / bfloat16: their values are what counts
        plain = plain.float()
    problem = pixel_values_problem(plain, "an IMAGE")
    if problem is not None:
        raise ApiArgumentError("to_pil", "image", problem)
    array = (plain.float().clamp(0, 1).cpu().numpy() * 255.0).round().astype(np.uint8)
    return [Image.fromarray(item) for item in array]


def check_mask(mask: Any, argument: str = "mask", function: str = "check_mask") -> Any:
    """A MASK tensor (B, H, W) float32 in [0, 1], or ApiArgumentError."""
    if not _is_tensor(mask) or mask.ndim != 3 or not mask.is_floating_point():
        raise ApiArgumentError(function, argument, f"expected a MASK float tensor (B, H, W) in [0, 1], "
                                                   f"found {_describe(mask)}")
    problem = pixel_values_problem(mask.detach(), "a MASK")
    if problem is not None:
        raise ApiArgumentError(function, argument, problem)
    return mask


def _check_context(function: str, context: Any) -> NodeContext:
    if not isinstance(context, NodeContext):
        raise ApiArgumentError(function, "context", f"expected the running node's context (self.context), found "
                                                    f"{type(context).__name__}; pass self.context first")
    return context


def _check_int(function: str, argument: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiArgumentError(function, argument, f"expected an int in {low} … {high}, found {value!r}")
    return value


def _check_number(function: str, argument: str, value: Any, low: float, high: float, low_open: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and (value < low or value > high or (low_open and value == low)):
        ok = False
    if not ok:
        bracket = "(" if low_open else "["
        raise ApiArgumentError(function, argument, f"expected a number in {bracket}{low}, {high}], found {value!r}")
    return float(value)


def _check_conditioning(function: str, argument: str, value: Any, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, Mapping) or not value:
        raise ApiArgumentError(function, argument, "expected CONDITIONING: a dict of name → tensor with a batch "
                                                   f"axis (e.g. from EncodeText / api.encode_text), found "
                                                   f"{_describe(value)}")


def _check_choice(function: str, argument: str, context: NodeContext, kind: str, value: Any) -> None:
    names = context.service("registry").extension_names(kind)
    if value not in names:
        raise ApiArgumentError(function, argument, f"unknown {argument} {value!r}; installed: {', '.join(names)}")


def _implementation(context: NodeContext, name: str) -> Callable[..., Any]:
    table = context.service("registry").extensions.get("api", {})
    implementation = table.get(name)
    if implementation is None:
        provider = _PROVIDERS.get(name, "a built-in")
        raise ApiError(f"nodegraph.api.{name}() has no implementation in this session: the built-in {provider!r} "
                       f"pack provides it through the register_api hook, and it is not loaded (a Session with "
                       f"builtins=False, or the pack is on the deny list); load it")
    return implementation


# --- sampling --------------------------------------------------------------------------------------

def sample(context: NodeContext, model: Any, positive: Any, negative: Any, latent: Mapping[str, Any], *,
           seed: int = 0, steps: int = 20, cfg: float = 7.0, sampler: str = "euler", scheduler: str = "karras",
           denoise: float = 1.0, guidance: Sequence[Callable[..., Any]] | None = None,
           noise: Any = None) -> dict[str, Any]:
    """Sample latents the way KSampler does: schedule, classifier-free guidance, seeded noise, a sampler.

    Args:
        context: the running node's context (`self.context`).
        model: a MODEL value (LoadCheckpoint, LoadUNet, LoadLoRA, patch nodes).
        positive: CONDITIONING of the prompt.
        negative: CONDITIONING of the negative prompt; None only when cfg == 1.
        latent: a LATENT dict; `samples` (B, C, ...) is the start (zeros for text-to-image).
        seed: 0 … 2**64-1; batch item k uses seed + k, drawn on the CPU.
        steps: sampler steps (≥ 1) over the denoised part of the schedule.
        cfg: guidance scale (≥ 0); 1 evaluates only the positive branch.
        sampler: a registered sampler name (`register_samplers`), e.g. "euler", "dpmpp_2m".
        scheduler: a registered schedule name (`register_schedules`), e.g. "karras", "normal".
        denoise: in (0, 1]; 1 starts from pure noise, less keeps more of `latent` (img2img).
        guidance: a GUIDANCE value — a sequence of zero-argument factories of GuidanceTerm objects
            (docs/plugins.md "Guidance"); each run gets fresh terms, added after CFG.
        noise: the initial noise, when not the seeded one (1.1): an object with `seed` (seeds the
            samplers' per-step noise) and `generate(samples) -> tensor` shaped like `samples`, unit
            variance (e.g. noise correlated across a clip's frames). None: seeded by `seed`.

    Returns:
        A copy of `latent` with new `samples` (CPU, float32); other keys are kept.
    Emits one progress event (with a preview) per step; raises RunInterrupted when interrupted.
    """
    name = "sample"
    _check_context(name, context)
    check_latent(latent, "latent", name)
    _check_conditioning(name, "positive", positive)
    _check_conditioning(name, "negative", negative, optional=True)
    _check_int(name, "seed", seed, 0, SEED_MAX)
    _check_int(name, "steps", steps, 1, 10000)
    cfg = _check_number(name, "cfg", cfg, 0.0, 100.0)
    denoise = _check_number(name, "denoise", denoise, 0.0, 1.0, low_open=True)
    if negative is None and cfg != 1.0:
        raise ApiArgumentError(name, "negative", f"negative conditioning is needed for cfg {cfg}; encode an empty "
                                                 f"prompt as the negative, or use cfg=1")
    _check_choice(name, "sampler", context, "samplers", sampler)
    _check_choice(name, "scheduler", context, "schedules", scheduler)
    if guidance is not None and (isinstance(guidance, (str, bytes)) or not isinstance(guidance, Sequence)):
        raise ApiArgumentError(name, "guidance", f"expected a GUIDANCE value (a sequence of guidance-term "
                                                 f"factories) or None, found {_describe(guidance)}")
    if noise is not None and not (callable(getattr(noise, "generate", None)) and hasattr(noise, "seed")):
        raise ApiArgumentError(name, "noise", f"expected None or an object with `seed` and `generate(samples)`, "
                                              f"found {_describe(noise)}")
    return _implementation(context, name)(context, model, positive, negative, latent, seed=seed, steps=steps,
                                          cfg=cfg, sampler=sampler, scheduler=scheduler, denoise=denoise,
                                          guidance=guidance, **({"noise": noise} if noise is not None else {}))


def sample_custom(context: NodeContext, guider: Any, sampler: Any, sigmas: Any, noise: Any,
                  latent: Mapping[str, Any]) -> dict[str, Any]:
    """Sample with the parts chosen separately, the way the Sample node does.

    Args:
        context: the running node's context.
        guider: a GUIDER value (CFGGuider node, or a plugin's guider) — the guided denoiser and its model.
        sampler: a SAMPLER value (SelectSampler), or a registered sampler name.
        sigmas: a SIGMAS tensor (steps + 1,) of decreasing noise levels (Schedule, api.sigmas).
        noise: a NOISE value (RandomNoise / DisableNoise), an int seed, or None for no added noise.
        latent: a LATENT dict; noise × sigmas[0] is added to `samples` (× sqrt(1 + sigmas[0]²) when the
            schedule starts at the model's largest sigma: docs/sampling.md, "The starting noise"), then it
            is denoised step by step.

    Returns:
        A copy of `latent` with new `samples` (CPU, float32).
    """
    name = "sample_custom"
    _check_context(name, context)
    check_latent(latent, "latent", name)
    if isinstance(sampler, str):
        _check_choice(name, "sampler", context, "samplers", sampler)
    elif not (isinstance(sampler, Mapping) and callable(sampler.get("function"))):
        raise ApiArgumentError(name, "sampler", f"expected a SAMPLER value (from SelectSampler) or a sampler name, "
                                                f"found {_describe(sampler)}")
    if not _is_tensor(sigmas) or sigmas.ndim != 1 or len(sigmas) < 2:
        raise ApiArgumentError(name, "sigmas", f"expected a SIGMAS tensor (steps + 1,), found {_describe(sigmas)}")
    if isinstance(noise, bool) or (isinstance(noise, int) and not 0 <= noise <= SEED_MAX):
        raise ApiArgumentError(name, "noise", f"a seed must be in 0 … {SEED_MAX}, found {noise!r}")
    return _implementation(context, name)(context, guider, sampler, sigmas, noise, latent)


def cfg_guider(context: NodeContext, model: Any, positive: Any, negative: Any = None, *, cfg: float = 7.0,
               rescale: float = 0.0, sigma_low: float = 0.0, sigma_high: float = 1e6,
               guidance: Sequence[Callable[..., Any]] | None = None) -> Any:
    """A GUIDER for `sample_custom`, the way the CFGGuider node makes it (1.4).

    Args:
        context: the running node's context.
        model: a MODEL value.
        positive: CONDITIONING of the prompt.
        negative: CONDITIONING of the negative prompt; None only when cfg == 1.
        cfg: guidance scale (>= 0): uncond + cfg × (cond − uncond), both branches in one batched call.
        rescale: CFG rescale in [0, 1] (Lin et al. 2023; 0.7 suits v-prediction models).
        sigma_low, sigma_high: CFG applies for sigma in [low, high]; outside, the positive branch alone.
        guidance: a GUIDANCE value (factories of GuidanceTerm objects), added after CFG; None for none.

    Returns:
        A GUIDER value: `sample_custom(context, guider, sampler, sigmas, noise, latent)` samples with it.
    """
    name = "cfg_guider"
    _check_context(name, context)
    _check_conditioning(name, "positive", positive)
    _check_conditioning(name, "negative", negative, optional=True)
    cfg = _check_number(name, "cfg", cfg, 0.0, 100.0)
    rescale = _check_number(name, "rescale", rescale, 0.0, 1.0)
    sigma_low = _check_number(name, "sigma_low", sigma_low, 0.0, 1e6)
    sigma_high = _check_number(name, "sigma_high", sigma_high, 0.0, 1e6)
    if sigma_low > sigma_high:
        raise ApiArgumentError(name, "sigma_low", f"sigma_low ({sigma_low}) is above sigma_high ({sigma_high}); "
                                                  f"CFG applies for sigma in [sigma_low, sigma_high]")
    if negative is None and cfg != 1.0:
        raise ApiArgumentError(name, "negative", f"negative conditioning is needed for cfg {cfg}; encode an empty "
                                                 f"prompt as the negative, or use cfg=1")
    if guidance is not None and (isinstance(guidance, (str, bytes)) or not isinstance(guidance, Sequence)):
        raise ApiArgumentError(name, "guidance", f"expected a GUIDANCE value (a sequence of guidance-term "
                                                 f"factories) or None, found {_describe(guidance)}")
    return _implementation(context, name)(context, model, positive, negative, cfg=cfg, rescale=rescale,
                                          sigma_low=sigma_low, sigma_high=sigma_high, guidance=guidance)


def sigmas(context: NodeContext, model: Any, *, scheduler: str = "karras", steps: int = 20,
           denoise: float = 1.0) -> Any:
    """The noise levels (a 1-D tensor ending in 0) a model is sampled over, as the Schedule node makes them.

    Args:
        context: the running node's context.
        model: a MODEL value (its training schedule bounds the sigmas).
        scheduler: a registered schedule name.
        steps: number of steps (≥ 1) after truncation for `denoise`.
        denoise: in (0, 1]; less than 1 keeps the last `steps` of a longer schedule (img2img).
    """
    name = "sigmas"
    _check_context(name, context)
    _check_choice(name, "scheduler", context, "schedules", scheduler)
    _check_int(name, "steps", steps, 1, 10000)
    denoise = _check_number(name, "denoise", denoise, 0.0, 1.0, low_open=True)
    return _implementation(context, name)(context, model, scheduler=scheduler, steps=steps, denoise=denoise)


def empty_latent(context: NodeContext, width: int, height: int, *, batch_size: int = 1, channels: int = 4,
                 vae: Any = None) -> dict[str, Any]:
    """A LATENT of zeros for images of `width` × `height` pixels (the start of text-to-image), as EmptyLatent makes it.

    Args:
        context: the running node's context.
        width, height: image size in pixels; multiples of 8 (and of the VAE's factor).
        batch_size: images in the batch (a video of F frames: clips × F, then set the "frames" key).
        channels: latent channels when no VAE is given (4 for SD / SDXL: size / 8).
        vae: a VAE value; when given, its downscale factor and latent channels are used.
    """
    name = "empty_latent"
    _check_context(name, context)
    for argument, value in (("width", width), ("height", height)):
        _check_int(name, argument, value, 8, 16384)
        if value % 8:
            raise ApiArgumentError(name, argument, f"must be a multiple of 8, found {value}")
    _check_int(name, "batch_size", batch_size, 1, 4096)
    _check_int(name, "channels", channels, 1, 64)
    return _implementation(context, name)(context, width, height, batch_size=batch_size, channels=channels, vae=vae)


_PREDICTIONS = ("eps", "v", "x0", "flow")


def diffusion_model(context: NodeContext, net: Callable[..., Any], *, prediction: str = "eps",
                    schedule: str | Sequence[float] | Any = "scaled_linear", shift: float = 1.0,
                    time_scale: float = 1000.0, latent_channels: int, preview: Callable[[Any], Any] | None = None,
                    name: str = "plugin model") -> Any:
    """Wrap a plugin's own denoising network as a MODEL value that `sample`, `sample_custom`, `sigmas`,
    the Sample / KSampler nodes and every sampler, schedule and guidance term accept (API 1.1).

    Any latent layout works — (B, C, h, w) images and frame batches, (B, C, N) point sets or
    spectrograms — as long as C is `latent_channels` and the network keeps the shape.

    Args:
        context: the running node's context.
        net: ``net(x, t, **conditioning) -> prediction`` (usually a torch module), with `x` shaped like
            the latent (scaled to unit variance the way DDPM training saw it) and `t` the training
            timestep (B,) as floats — 0 … T-1 for DDPM schedules, ``time_scale`` × flow time for flow.
            CONDITIONING dicts reach it as keyword arguments.
        prediction: what the network predicts: "eps" (noise), "v" (velocity), "x0" (the clean sample),
            or "flow" (rectified-flow velocity eps - x0, with x_t = (1 - t) x0 + t eps).
        schedule: for DDPM models, the training schedule: "linear", "scaled_linear", "cosine" (1000
            steps each, as `api.training().diffusion_targets` trains them) or a 1-D table of ᾱ_t.
        shift: flow models only: the timestep shift (SD3's 3.0; 1.0 = none).
        time_scale: flow models only: the network's time is time_scale × t (SD3: 1000; Flux: 1).
        latent_channels: channels (axis 1) of the latents it denoises; checked on every sampling call.
        preview: ``latents[:1] -> (1, 3, h, w)`` RGB in [0, 1] (or None) for progress previews;
            without it, image-shaped latents show their first channels and other layouts none.
        name: shown in errors and memory reports.
    """
    function = "diffusion_model"
    _check_context(function, context)
    if not callable(net):
        raise ApiArgumentError(function, "net", f"expected a callable net(x, t, **cond), found {_describe(net)}")
    if prediction not in _PREDICTIONS:
        raise ApiArgumentError(function, "prediction", f"expected one of {', '.join(_PREDICTIONS)}, "
                                                       f"found {prediction!r}")
    if not isinstance(schedule, str) and not (_is_tensor(schedule) or isinstance(schedule, Sequence)):
        raise ApiArgumentError(function, "schedule", f"expected a schedule name or a 1-D table of alphas_cumprod, "
                                                     f"found {_describe(schedule)}")
    shift = _check_number(function, "shift", shift, 0.0, 1000.0, low_open=True)
    time_scale = _check_number(function, "time_scale", time_scale, 0.0, 1e6, low_open=True)
    _check_int(function, "latent_channels", latent_channels, 1, 4096)
    if preview is not None and not callable(preview):
        raise ApiArgumentError(function, "preview", f"expected a callable or None, found {_describe(preview)}")
    if not isinstance(name, str) or not name:
        raise ApiArgumentError(function, "name", f"expected a non-empty str, found {name!r}")
    model = _implementation(context, function)(context, net, prediction=prediction, schedule=schedule, shift=shift,
                                               time_scale=time_scale, latent_channels=latent_channels,
                                               preview=preview, name=name)
    # a network with patch points (the models pack's UNet) gets that pack's patcher, so patch_model works on it
    patcher_of = context.service("registry").extensions.get("api", {}).get("model_patcher")
    if patcher_of is not None and hasattr(net, "model_patches") and getattr(model, "patcher", 0) is None:
        from dataclasses import replace

        model = replace(model, patcher=patcher_of(context))
    return model


def model_denoiser(context: NodeContext, model: Any) -> Any:
    """A MODEL's denoiser for a plugin's own loop (training a patch's module, a custom sampler): a context manager.

        with api.model_denoiser(self.context, model) as denoiser:
            denoised = denoiser(x, sigma, **conditioning)      # x = x0 + sigma * noise (k-diffusion scale)

    Inside the block the network is on the compute device (within the memory budget), exactly the
    MODEL's patches are set, and the network's own weights are frozen (requires_grad False, restored
    on exit): gradients reach `x`, the conditioning and the modules the MODEL's patches insert, never
    the shared base weights. For an eps model, ``((denoised - x0) / sigma)²`` is the usual noise-prediction
    loss. ``denoiser.sigmas`` is the model's discrete sigma table (None for continuous models);
    ``sigma_min`` / ``sigma_max`` bound it.

    Args:
        context: the running node's context.
        model: a MODEL value (LoadCheckpoint, a patch node, api.diffusion_model).
    """
    function = "model_denoiser"
    _check_context(function, context)
    return _implementation(context, function)(context, model)


# --- the training pack's kits (1.1) ----------------------------------------------------------------

_DEFAULT_REGISTRY: Any = None


def _kit(function: str, context: NodeContext | None, call: bool = True) -> Any:
    """The kit the training pack registers, from the running session or (context None) the built-ins."""
    global _DEFAULT_REGISTRY
    if context is None:
        if _DEFAULT_REGISTRY is None:
            from .plugins import load_plugins

            _DEFAULT_REGISTRY = load_plugins(builtins=True, autoload=False)[1]
        registry = _DEFAULT_REGISTRY
    else:
        registry = _check_context(function, context).service("registry")
    implementation = registry.extensions.get("api", {}).get(function)
    if implementation is None:
        raise ApiError(f"nodegraph.api.{function}() has no implementation in this session: the built-in "
                       f"{_PROVIDERS.get(function, 'training')!r} pack provides it through the register_api hook, "
                       f"and it is not loaded; load it")
    return implementation(context) if call else implementation


def tiny_world(context: NodeContext | None = None) -> Any:
    """The tiny world kit (docs/tiny_world.md): a read-only namespace of the training pack's world library.

    Scenes: SceneSpec, ObjectSpec, SHAPES, COLOURS, SIZES, POSITIONS, REFERENCE_SIZE, DEFAULT_HOLDOUT,
    TEMPLATES; sample_scene / sample_held_out_scene / is_held_out; parse_shape_weights (text
    "star: 3" → dict) / normalise_shape_weights; render(scene, size) → (H, W, 3) uint8,
    paint_shape (draw one shape anywhere, for animations), caption(scene, template), parse_caption(text),
    TinyWorld (the dataset), WorldError. The detector: detect / detect_many (image(s) → Detection),
    score(detections, scenes) → per-attribute accuracy, load_classifier, features, frechet_distance,
    DetectorError. `names` lists them. With no context (scripts, benchmarks, tests) the built-in packs
    are loaded once for it.
    """
    return _kit("tiny_world", context)


def training(context: NodeContext | None = None) -> Any:
    """The training kit: the loop pieces the built-in training nodes use, for a plugin's own training node.

    TrainConfig (steps, batch, lr, warm-up, EMA decay, clipping, autocast, seed, checkpoint_every),
    lr_at(step, config), EMA, TrainingRun(folder, identity, warn=None, shown_as=None) (atomic safetensors + JSON
    checkpoints, exact resume, never a pickle; a longer `steps` continues, other changes start again and keep
    the old state, `warn` hears which), TrainingStateError, content_digest(*values) (1.3: an exact digest of
    tensors, modules and containers, for the data and starting weights in a run's identity),
    start_or_resume(module, config, run) → (optimiser, ema, step), checkpoint(run, config, done, module, optimiser, ema),
    optimiser_step(parameters, optimiser, config, step) → grad norm, batch_indices(count, batch, step,
    micro, seed), diffusion_targets(x0, noise, alphas_cumprod_t, objective), and
    write_new_file(path, overwrite, write, searched=()) (the save rule: never replace a file unless asked, never
    take a name a file in a `searched` folder has; NAME_1, …).
    `names` lists them. With no context the built-in packs are loaded once for it.
    """
    return _kit("training", context)


# --- VAE and text ----------------------------------------------------------------------------------

def vae_encode(context: NodeContext, vae: Any, image: Any, *, tile_size: int = 0) -> dict[str, Any]:
    """Encode images into a LATENT `{"samples": (B, C, H/f, W/f)}` (the posterior mean).

    Args:
        context: the running node's context.
        vae: a VAE value (LoadCheckpoint, LoadVAE).
        image: an IMAGE (B, H, W, 3) in [0, 1]; H and W multiples of the VAE's factor (8 for SD).
        tile_size: 0 = one pass (an image over 2048² in 1024-pixel tiles, with a warning); else tiles of this many
            pixels (a multiple of 8), for large images.
    """
    name = "vae_encode"
    _check_context(name, context)
    check_image(image, "image", name)
    _check_int(name, "tile_size", tile_size, 0, 8192)
    if tile_size % 8:
        raise ApiArgumentError(name, "tile_size", f"must be a multiple of 8, found {tile_size}")
    return _implementation(context, name)(context, vae, image, tile_size=tile_size)


def vae_decode(context: NodeContext, vae: Any, latent: Mapping[str, Any], *, tile_size: int = 0) -> Any:
    """Decode a LATENT into an IMAGE (B, H, W, 3) float32 in [0, 1] on the CPU.

    Args:
        context: the running node's context.
        vae: a VAE value.
        latent: a LATENT dict whose `samples` has the VAE's latent channels.
        tile_size: 0 = one pass (an image over 2048² in 1024-pixel tiles, with a warning); else tiles of this many
            pixels (a multiple of 8).
    """
    name = "vae_decode"
    _check_context(name, context)
    check_latent(latent, "latent", name)
    _check_int(name, "tile_size", tile_size, 0, 8192)
    if tile_size % 8:
        raise ApiArgumentError(name, "tile_size", f"must be a multiple of 8, found {tile_size}")
    return _implementation(context, name)(context, vae, latent, tile_size=tile_size)


def encode_text(context: NodeContext, text_encoder: Any, text: str, *, clip_skip: int = 1,
                weighting: str = "comfyui") -> dict[str, Any]:
    """Encode a prompt into CONDITIONING (batch 1), as EncodeText does.

    Args:
        context: the running node's context.
        text_encoder: a TEXT_ENCODER value (LoadCheckpoint, LoadTextEncoder, LoadLoRA).
        text: the prompt; `(word:1.3)`, `(word)` and `[word]` weight words; "" is the unconditional prompt;
            prompts longer than the encoder's window are encoded in chunks.
        clip_skip: 1 = the model's usual layer; 2 = one layer earlier (as in A1111).
        weighting: how `(word:1.3)` acts — "comfyui" (default: the word's reading moved away from the empty
            prompt's) or "a1111" (scaled, the prompt's mean kept: A1111's images) (1.9).
    """
    name = "encode_text"
    _check_context(name, context)
    if not isinstance(text, str):
        raise ApiArgumentError(name, "text", f"expected a str prompt, found {type(text).__name__}")
    _check_int(name, "clip_skip", clip_skip, 1, 24)
    if weighting not in ("comfyui", "a1111"):
        raise ApiArgumentError(name, "weighting", f"expected 'comfyui' or 'a1111', found {weighting!r}")
    chosen = {"weighting": weighting} if weighting != "comfyui" else {}    # an implementation older than 1.9 has none
    return _implementation(context, name)(context, text_encoder, text, clip_skip=clip_skip, **chosen)


# --- model patches and weights ---------------------------------------------------------------------

PatchForm = Literal["layer", "module", "attention", "attention_maps"]
_PATCH_FIELDS = {"layer": {"target", "wrapper"}, "module": {"module", "after"},
                 "attention": {"processor", "kind", "targets"}, "attention_maps": {"kind", "targets"}}
_PATCH_REQUIRED = {"layer": {"target", "wrapper"}, "module": {"module", "after"}, "attention": {"processor"},
                   "attention_maps": set()}


def make_patch(context: NodeContext, form: PatchForm, *, name: str, priority: int = 0, **fields: Any) -> Any:
    """A model patch value (apply it with patch_model); the four forms of docs/plugins.md "Model patches".

    Args:
        context: the running node's context.
        form: "layer" — wrap or replace one block / layer: `target` (a key from model_keys(..., "layers")),
                `wrapper(forward, h, call) -> h` (call forward(h) to run the original);
              "module" — run `module(h, call) -> h` (a torch module) after each layer in `after` (keys);
              "attention" — `processor(q, k, v, call, attend) -> out` replaces / wraps attention;
                `kind` "self" (default), "cross" or "both"; `targets`: key prefixes (empty = all);
              "attention_maps" — a recorder whose `maps[key]` holds each attention map (B, heads, T, S)
                of the last call; `kind`, `targets` as for "attention".
        name: shown in errors; unpatch_model removes patches by name.
        priority: lower first; a later patch wraps the earlier ones (ties: the order they were added).
        fields: the form's fields, as listed above.
    """
    function = "make_patch"
    _check_context(function, context)
    if form not in _PATCH_FIELDS:
        raise ApiArgumentError(function, "form", f"expected one of {', '.join(_PATCH_FIELDS)}, found {form!r}")
    if not isinstance(name, str) or not name:
        raise ApiArgumentError(function, "name", f"expected a non-empty str, found {name!r}")
    _check_int(function, "priority", priority, -10**6, 10**6)
    unknown = set(fields) - _PATCH_FIELDS[form]
    missing = _PATCH_REQUIRED[form] - set(fields)
    if unknown or missing:
        argument = sorted(unknown or missing)[0]
        raise ApiArgumentError(function, argument, f"a {form!r} patch takes {', '.join(sorted(_PATCH_FIELDS[form]))}"
                                                   f" (required: {', '.join(sorted(_PATCH_REQUIRED[form])) or 'none'})"
                                                   f"; {'unknown' if unknown else 'missing'}: {argument!r}")
    for argument in ("wrapper", "processor"):
        if argument in fields and not callable(fields[argument]):
            raise ApiArgumentError(function, argument, f"expected a callable, found {type(fields[argument]).__name__}")
    for argument in ("after", "targets"):
        if argument in fields and (isinstance(fields[argument], str)
                                   or not all(isinstance(k, str) for k in fields[argument])):
            raise ApiArgumentError(function, argument, "expected a list of key paths (str), e.g. "
                                                       "model_keys(context, model, 'transformers')")
    return _implementation(context, function)(context, form, name=name, priority=priority, **fields)


def patch_model(context: NodeContext, model: Any, *patches: Any) -> Any:
    """A new MODEL value with `patches` added last (the given model, cached upstream, is unchanged).

    Patches run only while this MODEL value is sampled; the shared network's weights never change.
    Targets are checked against the network now, so a wrong key fails here, naming valid keys.
    """
    function = "patch_model"
    _check_context(function, context)
    if not patches:
        raise ApiArgumentError(function, "patches", "give at least one patch (from make_patch)")
    return _implementation(context, function)(context, model, *patches)


def unpatch_model(context: NodeContext, model: Any, name: str) -> Any:
    """A new MODEL value without the patches called `name` (an error lists the names present)."""
    function = "unpatch_model"
    _check_context(function, context)
    if not isinstance(name, str):
        raise ApiArgumentError(function, "name", f"expected a str, found {type(name).__name__}")
    return _implementation(context, function)(context, model, name)


def model_keys(context: NodeContext, model: Any,
               what: Literal["layers", "attention", "transformers"] = "layers") -> list[str]:
    """Key paths a patch can address: "layers" (blocks and their layers), "attention" (every attention
    module, `...attn1` self / `...attn2` cross) or "transformers" (where video models add temporal layers)."""
    function = "model_keys"
    _check_context(function, context)
    if what not in ("layers", "attention", "transformers"):
        raise ApiArgumentError(function, "what", f"expected 'layers', 'attention' or 'transformers', found {what!r}")
    return _implementation(context, function)(context, model, what)


def open_weights(context: NodeContext, name: str | os.PathLike, *, folder: str | None = None) -> Any:
    """Open a weights file lazily: a read-only mapping key → tensor with `.metadata` and `.shapes`.

    Args:
        context: the running node's context.
        name: with `folder`, a file name chosen in the graph (resolved and confined inside that model
            folder); without, a path the plugin's own code gives (e.g. weights it ships).
        folder: a model folder ("checkpoints", "loras", or one the plugin registers with
            register_model_folders).
    Safetensors only, unless the machine's owner opted in to pickle files (then loaded weights-only).
    """
    function = "open_weights"
    _check_context(function, context)
    if not isinstance(name, (str, os.PathLike)) or not os.fspath(name):
        raise ApiArgumentError(function, "name", f"expected a file name or path, found {name!r}")
    if folder is not None and not isinstance(folder, str):
        raise ApiArgumentError(function, "folder", f"expected a model folder name, found {folder!r}")
    return _implementation(context, function)(context, name, folder=folder)


# --- output files ----------------------------------------------------------------------------------

def _confined_prefix(function: str, output_dir: Path, prefix: Any, argument: str = "prefix") -> Path:
    """`output_dir / prefix`, refusing names that leave the output folder (nodegraph.paths.confine) and hidden
    names (a file or folder part starting with "."); errors name `argument` (the node input the prefix came from).
    A hidden output counted in its user's quota while `list_files` never showed it, and one named like a
    half-written file (".partial-0123456789ab.x") was deleted by the next start's sweep."""
    from .paths import confine

    try:
        target = confine(output_dir, prefix, what="file name prefix", input_name=argument, subfolders=True)
    except NodeInputError as exc:
        message = str(exc).split(": ", 1)[-1]
        raise ApiArgumentError(function, argument, message) from None
    hidden = next((part for part in prefix.split("/") if part.startswith(".")), None)
    if hidden is not None:
        raise ApiArgumentError(function, argument, f"file name prefix {prefix[:200]!r}: {hidden[:100]!r} starts with "
                                                   f"'.', which hides a file (the file list leaves it out, and "
                                                   f"'.partial-…' names are half-written files deleted at the next "
                                                   f"start); give a prefix whose parts start with a letter or digit")
    return target


def _expanded_prefix(function: str, prefix: Any, argument: str = "prefix", **values: Any) -> Any:
    """`prefix` with ComfyUI's save-time tokens (`%width%`, `%height%`: nodegraph.prefix_tokens) replaced (the
    others were when the run started); a token without a value is an ApiArgumentError naming it."""
    from .prefix_tokens import PrefixTokenError, expand_at_save, has_tokens

    if not isinstance(prefix, str) or not has_tokens(prefix):
        return prefix
    try:
        return expand_at_save(prefix, **values)
    except PrefixTokenError as exc:
        raise ApiArgumentError(function, argument, str(exc)) from None


def _prefix_argument(function: str, argument: Any) -> str:
    """The `argument=` of save_files / save_image: the name of the node input a prefix came from."""
    if not isinstance(argument, str) or not argument.isidentifier() or len(argument) > 100:
        raise ApiArgumentError(function, "argument", f"expected the name of the node input the prefix came from "
                                                     f"(such as 'filename_prefix'), found {argument!r:.60}")
    return argument


def _reserve(folder: Path, stem: str, suffix: str) -> Path:
    """Create (exclusively) and return the next free `stem_NNNNN<suffix>` in `folder` (numbers shared by suffixes)."""
    return _claim_next(folder, stem, suffix, lambda path: open(path, "xb").close())


def _claim_next(folder: Path, stem: str, suffix: str, claim: Callable[[Path], None]) -> Path:
    """The next free `stem_NNNNN<suffix>` in `folder`, claimed by `claim(path)` (which raises FileExistsError
    when another writer took it first)."""
    folder.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(re.escape(stem) + r"_(\d{5,})\.[A-Za-z0-9]+$")
    number = max((int(m.group(1)) for p in folder.iterdir() if (m := pattern.match(p.name))), default=0)
    while True:
        number += 1
        path = folder / f"{stem}_{number:05d}{suffix}"
        try:
            claim(path)
            return path
        except FileExistsError:
            continue


def _publish(partial: Path, folder: Path, stem: str, suffix: str) -> Path:
    """Give a fully written `partial` file the next free result name, atomically and without overwriting (a
    hard link, then the partial name goes); where the file system has no hard links, reserve the name and move
    the file over it."""
    try:
        path = _claim_next(folder, stem, suffix, lambda path: os.link(partial, path))
    except OSError:             # no hard links here (a taken name is FileExistsError, handled by _claim_next)
        path = _reserve(folder, stem, suffix)
        os.replace(partial, path)
        return path
    partial.unlink()
    return path


def save_files(context: NodeContext, items: Sequence[FileItem], *, kind: FileKind, prefix: str, suffix: str,
               mime: str | None = None,
               fields: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
               argument: str = "prefix") -> list[dict[str, Any]]:
    """Write files into the session's output folder and return their file results (docs/plugins.md "Output files").

    Args:
        context: the running node's context (its `output_dir` service is the output folder).
        items: one per file: bytes (written as is), str (written as UTF-8) or a callable
            `write(path)` that writes the file at the reserved path.
        kind: "image", "video", "audio", "mesh", "pointcloud" or "text" — how front ends show it.
        prefix: files are named PREFIX_00001<suffix>, ... (next free number); may contain
            "/"-separated subfolders, never leaves the output folder. ComfyUI's `%width%` / `%height%` are
            expanded where `fields` give one size (a graph's other tokens were when its run started:
            nodegraph.prefix_tokens).
        suffix: the extension with its dot, e.g. ".mp4"; it must suit `kind`.
        mime: the MIME type; default from the extension (required for extensions nodegraph does not know).
        fields: optional result fields (width, height, frames, fps, duration, sample_rate, channels, points,
            vertices, faces, info): one dict for all files, or one dict per item.
        argument: the name of the node input the prefix came from (e.g. "filename_prefix"): errors about
            the prefix name it, so the user knows which input to change (API 1.7).

    Returns:
        One validated file result per item: {path, name, kind, mime, format, ...fields}.
    """
    name = "save_files"
    _check_context(name, context)
    argument = _prefix_argument(name, argument)
    if kind not in FILE_KINDS:
        raise ApiArgumentError(name, "kind", unknown_kind_message(kind))
    if not isinstance(suffix, str) or not re.fullmatch(r"\.[A-Za-z0-9]{1,10}", suffix):
        raise ApiArgumentError(name, "suffix", f"expected an extension with its dot such as '.png', found {suffix!r}")
    if mime is None and default_mime(suffix) is None:
        raise ApiArgumentError(name, "mime", f"nodegraph does not know the MIME type of {suffix} files; "
                                             f"pass mime='type/subtype'")
    known = MIME_TYPES.get(suffix.lower())
    if known is not None and kind not in known[0]:
        raise ApiArgumentError(name, "suffix", f"a {suffix} file cannot be reported as kind {kind!r}; its kind is "
                                               f"{' or '.join(map(repr, known[0]))} (or pick the suffix for {kind!r})")
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise ApiArgumentError(name, "items", f"expected a list of bytes, str or write(path) callables, found "
                                              f"{type(items).__name__}")
    for index, item in enumerate(items):
        if not isinstance(item, (bytes, bytearray, str)) and not callable(item):
            raise ApiArgumentError(name, f"items[{index}]", f"expected bytes, str or a write(path) callable, found "
                                                            f"{type(item).__name__}")
    if fields is None:
        per_item: list[Mapping[str, Any]] = [{}] * len(items)
    elif isinstance(fields, Mapping):
        per_item = [fields] * len(items)
    elif isinstance(fields, Sequence) and len(fields) == len(items) and all(isinstance(f, Mapping) for f in fields):
        per_item = list(fields)
    else:
        raise ApiArgumentError(name, "fields", f"expected one dict, or a list of {len(items)} dicts (one per item)")
    reserved = sorted({key for extra in per_item for key in extra} & {"path", "output_dir", "kind", "mime"})
    if reserved:
        raise ApiArgumentError(name, "fields", f"{', '.join(map(repr, reserved))} is set by save_files itself (from "
                                               f"the written file, `kind` and `mime`); leave it out of fields")
    output_dir = Path(context.service("output_dir"))
    sizes = {(extra.get("width"), extra.get("height")) for extra in per_item}
    width, height = next(iter(sizes)) if len(sizes) == 1 else (None, None)
    prefix = _expanded_prefix(name, prefix, argument, width=width, height=height)
    target = _confined_prefix(name, output_dir, prefix, argument)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:      # the output folder itself: not the prefix's fault (no server path in the message)
        raise ApiArgumentError(name, argument, f"the output folder cannot be used ({exc.strerror or type(exc).__name__}"
                                               f": is it a file?); give the session (or --output-dir) a folder") \
            from None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:      # a file where a folder of the prefix should be; no server path in the message
        raise ApiArgumentError(name, argument, f"cannot make the folder of {prefix!r} in the output folder "
                                               f"({exc.strerror or type(exc).__name__}: a file there has the name of "
                                               f"one of its folders?); choose another prefix") from None
    results: list[dict[str, Any]] = []
    budget = context.services.get("output_budget")     # a server user's storage limit (files.OutputBudget), if any
    run_files = context.services.get("written_files")   # (node id, file results) the run lists, though it fails
    kept = False        # this call's files that fitted, kept and listed as the run's when the storage limit ends it
    for index, (item, extra) in enumerate(zip(items, per_item)):
        # written under a short hidden name, then given its result name whole: a process killed mid-write leaves
        # no truncated or empty file under a result's name (the suffix stays last: writers such as ffmpeg choose
        # the format by it; the name is short: a long prefix must still fit the file system's name limit)
        partial = target.parent / f".partial-{secrets.token_hex(6)}{suffix.lower()}"
        path = partial
        try:
            partial.touch(exist_ok=False)       # where the writer finds it (a reserved empty file, as before)
            if isinstance(item, (bytes, bytearray)):
                partial.write_bytes(item)
            elif isinstance(item, str):
                partial.write_text(item, encoding="utf-8")
            else:
                item(partial)
            size = partial.stat().st_size if partial.is_file() else None
            if size is None or (size == 0 and kind != "text"):     # an empty text file is a text; nothing else is
                problem = ("is empty" if not callable(item) else
                           "the write(path) callable left no file at the path it was given" if size is None else
                           "the write(path) callable left the file at the path it was given empty (did it write "
                           "nothing, or somewhere else?)")
                raise ApiArgumentError(name, f"items[{index}]", f"{problem}: a {kind} result needs the file's bytes "
                                                                f"(nothing was saved)")
            over = budget.spend(size) if budget is not None else None
            if over is not None:
                if results and isinstance(run_files, list):   # those that fitted stay, the failed run's files
                    run_files.append((context.node_id, results))
                    kept = True
                    raise StorageLimitError(f"{over}; the {len(results)} file(s) it wrote before this one fitted "
                                            f"and are kept with the failed run (deleting the run deletes them)")
                raise StorageLimitError(over)
            path = _publish(partial, target.parent, target.name, suffix.lower())
            results.append(file_result(path, output_dir, kind, mime, **dict(extra)))
            if index == len(items) - 1 and isinstance(run_files, list):
                run_files.append((context.node_id, results))   # the run's, if it fails
        except BaseException as exc:
            # this call's files go too, unless the storage limit ended it and the run lists them (`kept`): a node
            # that failed left its first files in the folder, linked to no run (its delete_run could not remove
            # them) and counted in the quota; then a batch's 7 images that fitted went with the 8th that did not
            for written in [path, partial, *([] if kept else (Path(result["path"]) for result in results))]:
                written.unlink(missing_ok=True)
            if isinstance(exc, ResultFileError):
                raise ApiArgumentError(name, "fields", str(exc)) from None
            if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:     # no server path in the message
                shown = target.name if len(target.name) <= 60 else target.name[:60] + "…"
                raise ApiArgumentError(name, argument, f"the file name {shown!r}_NNNNN{suffix} is too long for the "
                                                       f"file system; shorten the prefix") from None
            raise
    return results


def save_image(context: NodeContext, images: Any, prefix: str = "nodegraph", *,
               format: Literal["png", "jpeg", "webp"] = "png", quality: int = 95,
               embed_graph: bool = True, argument: str = "prefix") -> list[dict[str, Any]]:
    """Save each image of an IMAGE batch as a file in the output folder; returns their file results.

    Args:
        context: the running node's context.
        images: an IMAGE (B, H, W, 3) in [0, 1].
        prefix: as for save_files (PREFIX_00001.png, ...); `%width%` / `%height%` are the images'.
        format: "png" (lossless; carries the graph), "jpeg" or "webp".
        quality: 1 … 100 for JPEG / WebP.
        embed_graph: PNG only: store the running graph in the file, so dropping it on the editor reloads it.
        argument: as for save_files: the node input the prefix came from, named in errors (API 1.7).

    An image holding NaN or infinite values is refused (ApiArgumentError naming `images`), never written.
    """
    name = "save_image"
    _check_context(name, context)
    check_image(images, "images", name)
    finite = images.isfinite()
    if not bool(finite.all()):
        bad = images.numel() - int(finite.sum())
        raise ApiArgumentError(name, "images", f"{bad} of {images.numel()} values are NaN or infinite, which no file "
                                               f"can hold: the node that made this image went wrong (a sampler "
                                               f"that diverged, cfg far too high, fp16 weights that overflowed, a "
                                               f"filter with a zero width); fix that node's inputs")
    if format not in ("png", "jpeg", "webp"):
        raise ApiArgumentError(name, "format", f"expected 'png', 'jpeg' or 'webp', found {format!r}")
    _check_int(name, "quality", quality, 1, 100)
    argument = _prefix_argument(name, argument)
    _confined_prefix(name, Path(context.service("output_dir")),
                     _expanded_prefix(name, prefix, argument, width=images.shape[2], height=images.shape[1]), argument)
    try:
        return _implementation(context, name)(context, images, prefix, format=format, quality=quality,
                                              embed_graph=bool(embed_graph))
    except ApiArgumentError as exc:     # the implementation's save_files names its own argument, 'prefix'
        if exc.input != "prefix" or argument == "prefix":
            raise
        raise ApiArgumentError(name, argument, exc.problem) from None

