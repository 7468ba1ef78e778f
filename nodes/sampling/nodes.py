"""Sampling nodes: thin adapters from the node graph to the sampling library.

    EmptyLatent      width, height, batch → LATENT of zeros (sizes multiple of 8)
    Schedule         model, scheduler, steps, denoise → SIGMAS
    SplitSigmas      sigmas, step → high, low (multi-stage / refiner graphs)
    SelectSampler    sampler (+ eta) → SAMPLER
    CFGGuider        model, positive, negative, cfg, rescale, sigma range → GUIDER
    RandomNoise      seed → NOISE;  DisableNoise → NOISE (for latents already noised)
    Sample           guider, sampler, sigmas, noise, latent → LATENT (progress + previews per step)
    DenoisingTrajectory  Sample, plus the x̂₀ prediction every few steps (Q2's visualisation)
    SamplerStep      one step i of a sampler, with its history carried in a SAMPLER_STATE
    AddNoise         latent + noise × sigmas[0] (VE form; Sample's start short of a full denoise)
    ForwardDiffuse   q_sample at a training timestep (VP form: √ᾱ x0 + √(1−ᾱ) ε), for visualising
    ForwardDiffuseImage  an image noised at several timesteps under a linear / cosine schedule (Q1)
    DDIMInvert       latent → the noise latent that DDIM (eta 0) maps back to it
    KSampler         the common case in one node
    SetLatentNoiseMask  sample only inside a mask (RePaint-style blending, inpainting.py)
    LatentUpscale    resize latents (hires fix)

Samplers and schedules come from the `register_samplers` / `register_schedules`
hooks (this pack registers the library's; plugins add more), so the sampler and
scheduler inputs list whatever is installed. Library errors (SamplingError)
become NodeInputError naming the node input, raised before heavy work starts.
"""

from __future__ import annotations

import inspect
import math
from contextlib import contextmanager
from typing import Any, Iterator, Literal

from nodegraph import Input, Node, NodeContext, NodeInputError, NodeInputs, Output, PortType, api, hookimpl

SAMPLER_STATE = PortType("SAMPLER_STATE", "The history a multistep sampler carries from one SamplerStep to the next.",
                         color="#a1887f")


@contextmanager
def _as_input_errors(mapping: dict[str, str], default: str) -> Iterator[None]:
    """Turn the library's SamplingError into NodeInputError naming the node input."""
    from .errors import SamplingError

    try:
        yield
    except SamplingError as exc:
        argument = exc.argument.split("[")[0]
        raise NodeInputError(mapping.get(argument, default), str(exc)) from None


@contextmanager
def _network_input_errors() -> Iterator[None]:
    """The UNet's and the MMDiT's refusals of what they were called with, as NodeInputError naming the node input
    it came from: conditioning (context, pooled y) → `positive`, the latent or an inpainting concat → `latent`."""
    try:
        yield
    except ValueError as exc:       # the model modules are imported only when something failed
        from nodes.models.mmdit import MMDiTInputError
        from nodes.models.unet import UNetInputError

        if not isinstance(exc, (UNetInputError, MMDiTInputError)):
            raise
        argument = getattr(exc, "argument", None) or str(exc).split(":", 1)[0]
        raise NodeInputError("latent" if argument in ("x", "concat") else "positive", str(exc)) from None


def _check_latent(latent: Any, name: str = "latent") -> Any:
    import torch

    samples = latent.get("samples") if isinstance(latent, dict) else None
    if not isinstance(samples, torch.Tensor) or samples.ndim != 4 or not samples.is_floating_point():
        raise NodeInputError(name, "expected a LATENT {'samples': float tensor (B, C, h, w)}, found "
                                   f"{type(samples).__name__ if samples is not None else type(latent).__name__}")
    return samples


def _check_channels(samples: Any, model: Any, name: str = "latent") -> None:
    if samples.shape[1] != model.latent_channels:
        raise NodeInputError(name, f"the latent has {samples.shape[1]} channels but model {model.name!r} "
                                   f"denoises {model.latent_channels}-channel latents; make the latent for this model")


class EmptyLatent(Node):
    """A batch of empty (zero) latents for text-to-image; the size is in pixels.

    Without a VAE the latent is size / 8 with `channels` channels (every SD VAE); with a VAE
    connected, its own downscale factor and latent channels are used (e.g. the shipped tiny model's 4×).
    """

    category = "latent"
    version = "1.1.1"

    class Inputs(NodeInputs):
        width: int = Input(512, ge=8, le=16384, multiple_of=8)
        height: int = Input(512, ge=8, le=16384, multiple_of=8)
        batch_size: int = Input(1, ge=1, le=4096)
        channels: int = Input(4, ge=1, le=64, description="latent channels of the model (4 for SD/SDXL)")
        vae: Any = Input(None, port="VAE", description="optional: take the latent layout from this VAE")

    outputs = (Output("latent", "LATENT"),)

    @classmethod
    def check_literals(cls, literals: dict[str, Any], list_model_files: Any) -> dict[str, str]:
        """The latent's size against MAX_LATENT_ELEMENTS (each bound alone let 16384² × 4096 through), when no VAE
        is linked (a linked one's factor is known at run time, where `api_empty_latent` checks again)."""
        if "vae" not in literals:
            return {}
        width, height, batch, channels = (literals.get(k) for k in ("width", "height", "batch_size", "channels"))
        if not all(isinstance(v, int) for v in (width, height, batch, channels)):
            return {}
        problem = latent_size_problem(batch, channels, height // 8, width // 8, width, height)
        return {("batch_size" if batch > 1 else "width"): problem} if problem else {}

    def run(self, width: int, height: int, batch_size: int, channels: int, vae: Any) -> dict:
        return {"latent": api.empty_latent(self.context, width, height, batch_size=batch_size, channels=channels,
                                           vae=vae)}


class Schedule(Node):
    """Noise levels (sigmas, ending in 0) for a model: spacing, steps, and denoise strength for img2img."""

    category = "sampling"

    class Inputs(NodeInputs):
        model: Any = Input(port="MODEL")
        scheduler: str = Input("karras", choices_from="schedules",
                               description="the noise schedule; discrete = every training timestep (steps 1000 for SD)")
        steps: int = Input(20, ge=1, le=10000)
        denoise: float = Input(1.0, gt=0.0, le=1.0, step=0.01,
                               description="1 = from pure noise; less keeps more of the input latent")

    outputs = (Output("sigmas", "SIGMAS"),)

    def run(self, model: Any, scheduler: str, steps: int, denoise: float) -> dict:
        return {"sigmas": api.sigmas(self.context, model, scheduler=scheduler, steps=steps, denoise=denoise)}


class SplitSigmas(Node):
    """Split a schedule at a step: the high-noise part, then the low-noise part (sharing the boundary)."""

    category = "sampling"

    class Inputs(NodeInputs):
        sigmas: Any = Input(port="SIGMAS")
        step: int = Input(10, ge=1, le=10000)

    outputs = (Output("high", "SIGMAS"), Output("low", "SIGMAS"))

    def run(self, sigmas: Any, step: int) -> dict:
        from .schedules import split_sigmas

        with _as_input_errors({"step": "step", "sigmas": "sigmas"}, "sigmas"):
            high, low = split_sigmas(sigmas, step)
        return {"high": high, "low": low}


class SelectSampler(Node):
    """Choose a sampling algorithm (and, for ancestral / SDE samplers, its eta)."""

    category = "sampling"
    version = "1.0.1"     # 1.0.1: higher-order samplers take too-uneven steps at first order

    class Inputs(NodeInputs):
        sampler: str = Input("euler", choices_from="samplers")
        eta: float | None = Input(None, ge=0.0, le=10.0, description="noise amount; empty = the sampler's default")

    outputs = (Output("sampler", "SAMPLER"),)

    def run(self, sampler: str, eta: float | None) -> dict:
        function = sampler_function(self.context.service("registry"), sampler)
        options = {}
        if eta is not None:
            if "eta" not in inspect.signature(function).parameters:
                raise NodeInputError("eta", f"sampler {sampler!r} has no eta option; leave eta empty")
            options["eta"] = eta
        return {"sampler": {"name": sampler, "function": function, "options": options}}


class CFGGuider(Node):
    """Classifier-free guidance: uncond + cfg × (cond − uncond), both branches in one batched model call.

    An optional GUIDANCE input (PAG, SAG, classifier guidance, plugins' terms) adds its terms after CFG.
    """

    category = "sampling"
    version = "1.1.0"

    class Inputs(NodeInputs):
        model: Any = Input(port="MODEL")
        positive: Any = Input(port="CONDITIONING")
        negative: Any = Input(None, port="CONDITIONING", description="needed unless cfg is 1")
        cfg: float = Input(7.0, ge=0.0, le=100.0, step=0.1)
        rescale: float = Input(0.0, ge=0.0, le=1.0, step=0.05, description="CFG rescale (Lin et al. 2023); 0.7 suits v-models")
        sigma_low: float = Input(0.0, ge=0.0, le=1e6, description="apply CFG only for sigma in [low, high]")
        sigma_high: float = Input(1e6, ge=0.0, le=1e6)
        guidance: Any = Input(None, port="GUIDANCE", description="optional guidance terms added after CFG")

    outputs = (Output("guider", "GUIDER"),)

    def run(self, model: Any, positive: Any, negative: Any, cfg: float, rescale: float,
            sigma_low: float, sigma_high: float, guidance: Any) -> dict:
        return {"guider": api.cfg_guider(self.context, model, positive, negative, cfg=cfg, rescale=rescale,
                                         sigma_low=sigma_low, sigma_high=sigma_high, guidance=guidance)}


class RandomNoise(Node):
    """Seeded initial noise: the same seed gives the same image on any device (batch item k uses seed + k)."""

    category = "sampling"

    class Inputs(NodeInputs):
        seed: int = Input(0, seed=True)

    outputs = (Output("noise", "NOISE"),)

    def run(self, seed: int) -> dict:
        from .diffusion_model import Noise

        return {"noise": Noise(seed)}


class DisableNoise(Node):
    """No initial noise: for latents that are already noised (AddNoise, DDIMInvert, a split schedule's second half)."""

    category = "sampling"

    class Inputs(NodeInputs):
        pass

    outputs = (Output("noise", "NOISE"),)

    def run(self) -> dict:
        from .diffusion_model import Noise

        return {"noise": Noise(None)}


def _prepare(node: Node, guider: Any, sigmas: Any, noise: Any, latent: Any) -> tuple[Any, Any, Any]:
    """Check inputs before any model work; returns (samples, sigma values checked, model)."""
    from .schedules import check_schedule

    samples = _check_latent(latent)
    model = guider.model
    _check_channels(samples, model)
    with _as_input_errors({"sigmas": "sigmas"}, "sigmas"):
        check_schedule(sigmas, must_end_in_zero=False)
    with _as_input_errors({}, "guider"):
        guider.denoiser.check_latent(samples)
    return samples, sigmas, model


def _for_run(denoiser: Any, sigmas: Any) -> Any:
    """The guider's per-run copy (fresh guidance terms, so a cached GUIDER never carries state between nodes).

    A SamplerStep node is one run of one step: per-run term state (SLD momentum) starts afresh at
    every step node; sampling nodes that run the whole schedule keep it across their steps.
    """
    start_run = getattr(denoiser, "for_run", None)
    return start_run(sigmas) if start_run is not None else denoiser


def _check_conditioning_fits(model: Any, **conditionings: Any) -> None:
    """Per-call conditioning inputs (a ControlNet stack) must fit the model's network; the error names both."""
    config = getattr(model.net, "config", None)
    for input_name, cond in conditionings.items():
        for value in (cond or {}).values():
            check = getattr(value, "check_compatible", None)
            if check is not None and config is not None:
                try:
                    check(config, f"the model {model.name!r}")
                except ValueError as exc:
                    raise NodeInputError(input_name, str(exc)) from None


def _progress_callback(context: NodeContext, model: Any, total: int, on_step: Any = None):
    def callback(info: dict) -> None:
        if on_step is not None:
            on_step(info)
        context.progress(info["i"] + 1, total, preview=model.preview_image(info["denoised"]))
    return callback


class Sample(Node):
    """Run a sampler over a schedule: adds noise × sigmas[0] to the latent (× sqrt(1 + sigmas[0]²) from the
    model's largest sigma, as ComfyUI and diffusers do), then denoises step by step."""

    category = "sampling"

    class Inputs(NodeInputs):
        guider: Any = Input(port="GUIDER")
        sampler: Any = Input(port="SAMPLER")
        sigmas: Any = Input(port="SIGMAS")
        noise: Any = Input(port="NOISE")
        latent: Any = Input(port="LATENT")

    outputs = (Output("latent", "LATENT"),)

    def run(self, guider: Any, sampler: Any, sigmas: Any, noise: Any, latent: Any) -> dict:
        return {"latent": api.sample_custom(self.context, guider, sampler, sigmas, noise, latent)}


def _warn_outside_trained_sizes(context: NodeContext, model: Any, samples: Any) -> None:
    """A node_warning when the latent's sides are outside what the model was trained at (when it says)."""
    sides = getattr(model, "trained_sides", None)
    if sides is None or samples.ndim != 4:
        return
    low, high = sides
    height, width = samples.shape[-2:]
    scale = getattr(model, "pixels_per_cell", 8)
    if not (low <= height <= high and low <= width <= high):
        context.warn(f"{model.name} was trained at {low * scale}-{high * scale} px a side; at {width * scale}x"
                     f"{height * scale} "
                     f"it draws repeated, broken or empty pictures. Sample inside that range, then upscale "
                     f"(graphs/hires_fix.json, graphs/upscale.json).")


LOW_START_FRACTION = 0.1     # a full denoise starting below this share of the model's largest sigma draws little


def _warn_low_start(context: NodeContext, guider: Any, sigmas: Any, scheduler: str, steps: int, denoise: float) -> None:
    """A node_warning when a full denoise (text to image) starts far below the model's largest sigma —
    `ddim_uniform` at 1 or 2 steps starts at sigma 0.04 / 1.6 of SD's 14.6, as it does in ComfyUI and diffusers:
    from so little noise the sampler keeps most of the starting latent (an empty latent stays flat)."""
    sigma_max = getattr(guider, "sigma_max", None)
    if denoise < 1 or sigma_max is None or not len(sigmas) or float(sigmas[0]) >= LOW_START_FRACTION * sigma_max:
        return
    context.warn(f"schedule {scheduler!r} at {steps} step(s) starts at sigma {float(sigmas[0]):.3g}, far below the "
                 f"model's largest ({sigma_max:.3g}): a full denoise from so little noise keeps most of the starting "
                 f"latent (an empty one gives a flat image). Use more steps, or karras / normal / simple.")


def _warn_resized_hints(context: NodeContext, samples: Any, *conditionings: Any) -> None:
    """A node_warning per ControlNet hint that is not the image's size: it is resized to it while sampling,
    and stretched when its aspect differs (a hint drawn for a square image on a wide one moves the shapes)."""
    if getattr(samples, "ndim", 0) < 4:
        return
    height, width = samples.shape[-2:]
    said = set()
    for cond in conditionings:
        stack = cond.get("control") if isinstance(cond, dict) else None
        for name, (hint_w, hint_h), (to_w, to_h) in getattr(stack, "resized_hints", lambda h, w: [])(height, width):
            if (name, hint_w, hint_h) in said:
                continue
            said.add((name, hint_w, hint_h))
            stretched = abs(hint_w * to_h - hint_h * to_w) > max(to_w, to_h)     # aspect differs by over a pixel
            context.warn(f"ControlNet {name!r}: its hint image is {hint_w}x{hint_h} and the image being made is "
                         f"{to_w}x{to_h}, so the hint is resized" + (" and stretched (another aspect)" if stretched
                                                                     else "") +
                         f". Give a hint of the image's size (ImageScale before ApplyControlNet) or make the image "
                         f"the hint's size.")


def _warn_latent_for_another_vae(context: NodeContext, model: Any, latent: dict) -> None:
    """A node_warning when an empty latent was laid out for another VAE than the model's: EmptyLatent without its
    `vae` input assumes SD's 8 pixels per latent cell, and the tiny-world VAE has 4 — a 64×64 request then
    comes out 32×32 with no word said."""
    made_for, has = latent.get("pixels_per_cell"), getattr(model, "vae_downscale", None)
    samples = latent.get("samples")
    if not isinstance(made_for, int) or not isinstance(has, int) or made_for == has or getattr(samples, "ndim", 0) != 4:
        return
    height, width = samples.shape[-2:]
    context.warn(f"this latent was laid out for {made_for} pixels per latent cell (EmptyLatent without its vae "
                 f"input assumes SD's 8), but {model.name}'s VAE has {has}: the image will be {width * has}x"
                 f"{height * has} px, not {width * made_for}x{height * made_for}. Link EmptyLatent's vae input to "
                 f"the checkpoint's vae output.")


def unet_activation_bytes(config: Any, samples: Any, element_size: int = 4, sliced: bool = True) -> int | None:
    """A lower estimate of the activations one UNet call holds for `samples` (B, C, h, w), with CFG's two
    halves, as many at once as the denoiser gives the network (its batch slices): the skip connections of every
    level plus ~6 of the largest activation at work (measured on the shipped UNet: 0.37 GB estimated, 0.39 GB
    of peak RSS at a 256² latent). None for other networks (no `model_channels`); attention maps are not
    counted (torch's fused attention does not hold them)."""
    channels, mult = getattr(config, "model_channels", None), getattr(config, "channel_mult", None)
    if not channels or not mult or getattr(samples, "ndim", 0) != 4:
        return None
    from .denoisers import ModelDenoiser

    pixels = samples.shape[-2] * samples.shape[-1]
    per_level = [channels * m * pixels / 4**level for level, m in enumerate(mult)]
    floats = (config.num_res_blocks + 1) * sum(per_level) + 6 * max(per_level)
    # the network sees at most MAX_ELEMENTS_AT_ONCE latent elements per call (a larger batch goes in slices):
    # counting the whole batch refused 4,096 images of 128 px that need 1/64 of that
    at_once = 2 * samples.shape[0]
    if sliced:       # (a ControlNet's conditioning keeps the batch whole: `sliced` False)
        at_once = min(at_once, max(1, ModelDenoiser.MAX_ELEMENTS_AT_ONCE // samples[0].numel()))
    # ×2: the measured peak of one item (256² latents go one at a time) is twice the activations counted above
    return int(2 * at_once * floats * element_size)


def _check_activation_memory(model: Any, samples: Any, sliced: bool = True) -> None:
    """Refuse, before the first step, a latent whose activations cannot fit in the machine's free memory (a
    16384² image asked the shipped UNet for ~90 GB: the kernel killed the process, a server with every
    user's runs, and no record was written). Under the estimate nothing is refused."""
    from nodegraph.errors import NodeOutOfMemory
    from nodegraph.memory import memory_reserve, system_memory

    net = getattr(model, "net", None)
    parameter = next(net.parameters(), None) if net is not None else None
    if parameter is None or parameter.device.type != "cpu":      # a GPU's allocator raises its own error
        return
    needed = unet_activation_bytes(getattr(net, "config", None), samples, parameter.element_size(), sliced)
    memory = system_memory()
    if needed is None or memory is None:
        return
    available, total = memory
    free = available - memory_reserve(total)
    if needed > free:
        gib = 1024**3
        raise NodeOutOfMemory(
            f"sampling a {samples.shape[-1]}×{samples.shape[-2]} latent (batch {samples.shape[0]}) needs about "
            f"{needed / gib:.1f} GiB of activations and the machine has {max(free, 0) / gib:.1f} GiB free to give; "
            f"nothing was started. Generate smaller (then upscale: graphs/hires_fix.json, UpscaleImageWithModel) "
            f"or a smaller batch")


def _start_noise_scale(guider: Any, sigmas: Any) -> float:
    """The initial noise's factor for this guider's model and schedule (noise.start_noise_scale)."""
    from .noise import start_noise_scale

    sigma_max = next((value for holder in (getattr(guider, "denoiser", None), getattr(guider, "model", None))
                      if (value := getattr(holder, "sigma_max", None)) is not None), None)
    return start_noise_scale(float(sigmas[0]), float(sigma_max) if sigma_max is not None else math.inf,
                             getattr(getattr(guider, "model", None), "prediction", None))


def run_sampling(context: NodeContext, guider: Any, sampler: Any, sigmas: Any, noise: Any, samples: Any,
                 noise_mask: Any = None, on_step: Any = None) -> Any:
    """Shared by Sample, KSampler and DenoisingTrajectory: place the model, noise the latent, run the sampler.

    With a `noise_mask` (from SetLatentNoiseMask / VAEEncodeForInpaint) only the masked
    region is generated; the rest stays the input latent (inpainting.MaskedDenoiser).
    `on_step(info)` sees every step's {"i", "x", "sigma", "denoised"}.
    """
    import torch

    from .inpainting import MaskedDenoiser, latent_mask
    from .noise import make_noise_sampler, seeded_noise
    from .samplers import uneven_step_guards

    model = guider.model
    _warn_outside_trained_sizes(context, model, samples)
    conditionings = (getattr(guider, "positive", None), getattr(guider, "negative", None))
    controlled = any(isinstance(cond, dict) and cond.get("control") is not None for cond in conditionings)
    _check_activation_memory(model, samples, sliced=not controlled)     # a ControlNet keeps the batch whole
    memory = context.service("memory")
    with memory.using(model.net):
        model.apply_patches()
        device = model.device
        x0 = samples.to(device)
        initial_noise = noise.generate(x0)
        x = x0 + initial_noise * _start_noise_scale(guider, sigmas)
        denoiser = guider.denoiser
        start_run = getattr(denoiser, "for_run", None)
        if start_run is not None:   # fresh guidance terms (per-run state) and exact step indices for this run
            denoiser = start_run(sigmas)
        if noise_mask is not None:
            try:
                mask = latent_mask(noise_mask, x0).to(device)
            except ValueError as exc:       # a plugin node's own noise_mask: said against the latent input
                raise NodeInputError("latent", str(exc)) from None
            if mask.shape[0] not in (1, x0.shape[0]):
                raise NodeInputError("latent", f"the noise mask has batch {mask.shape[0]}, the latent {x0.shape[0]}")
            # a seeded noise for the known region even when the latent arrives already noised
            known_noise = initial_noise if noise.seed is not None else seeded_noise(x0.shape, 0, x0.device, x0.dtype)
            denoiser = MaskedDenoiser(denoiser, x0, known_noise, mask)
        noise_sampler = make_noise_sampler(x, noise.seed if noise.seed is not None else 0)
        extra = _inpainting_inputs(model, x0, noise_mask)
        # no autograd graph through the network (a plugin's net may still have trainable weights); guidance
        # terms that need gradients (classifier guidance) turn them on for their own computation
        with _as_input_errors({"sigmas": "sigmas", "x": "latent", "options": "sampler", "guidance": "guidance"},
                              "sampler"), _network_input_errors(), torch.no_grad(), \
                uneven_step_guards(getattr(model, "prediction", None) == "flow"):      # flow models only
            out = sampler["function"](denoiser, x, sigmas.to(device), extra,
                                      _progress_callback(context, model, len(sigmas) - 1, on_step), None, noise_sampler,
                                      **sampler["options"])
        if noise_mask is not None:
            out = denoiser.finish(out)
    if not bool(torch.isfinite(out).all()):     # a silent grey or black picture otherwise
        context.warn(f"the sampled latent holds NaN or infinite values ({int((~torch.isfinite(out)).sum())} of "
                     f"{out.numel()}): the image will be blank. Usual causes: a model patch returning NaN, fp16 "
                     f"overflow (try weight_dtype fp32 or bf16), or NaN in the input latent or conditioning.")
    return out.to("cpu", torch.float32)    # the API's promise: CPU float32 whatever the model ran in


def _inpainting_inputs(model: Any, x0: Any, noise_mask: Any) -> dict | None:
    """For inpainting UNets (9 input channels): {"concat": cat(mask, masked-image latent)}, else None.

    The masked-image latent is the input latent (VAEEncodeForInpaint already greyed the masked
    pixels before encoding); without a noise mask the whole image is to be generated (mask 1,
    an empty latent), as for text-to-image with an inpainting model.
    """
    import torch

    from .inpainting import latent_mask

    in_channels = getattr(getattr(model.net, "config", None), "in_channels", None)
    if in_channels is None or in_channels <= x0.shape[1]:
        return None
    if noise_mask is None:
        mask = torch.ones_like(x0[:, :1])
        masked = torch.zeros_like(x0)
    else:
        try:
            mask = latent_mask(noise_mask, x0).to(x0)
        except ValueError as exc:
            raise NodeInputError("latent", str(exc)) from None
        mask = mask.expand(x0.shape[0], *mask.shape[1:]) if mask.shape[0] == 1 else mask
        masked = x0
    return {"concat": torch.cat([mask, masked], dim=1)}


class DenoisingTrajectory(Node):
    """Sample, and also return the model's clean-image guess x̂₀ every few steps.

    `predictions` holds x̂₀ of steps 0, every, 2·every, … (counting from 0) and always
    of the last step (step-major: all batch items of one step, then the next step), ready
    for VAEDecode → ImageGrid; `noisy` holds the latent the sampler was at when each
    prediction was made, in the variance-preserving scale x_t / √(1 + σ²) so that it
    decodes to a recognisable noisy image.
    """

    category = "sampling"

    class Inputs(Sample.Inputs):
        every: int = Input(4, ge=1, le=10000, description="keep x̂₀ every this many steps (and the last)")

    outputs = (Output("latent", "LATENT"), Output("predictions", "LATENT"), Output("noisy", "LATENT"))

    def run(self, guider: Any, sampler: Any, sigmas: Any, noise: Any, latent: Any, every: int) -> dict:
        import torch

        samples, sigmas, model = _prepare(self, guider, sigmas, noise, latent)
        last = len(sigmas) - 2
        predictions, noisy = [], []

        def keep(info: dict) -> None:
            if info["i"] % every == 0 or info["i"] == last:
                predictions.append(info["denoised"].detach().to("cpu", samples.dtype))
                scale = 1.0 / (1.0 + float(info["sigma_hat"]) ** 2) ** 0.5       # VE → VP: what q(x_t | x0) shows
                noisy.append((info["x"].detach() * scale).to("cpu", samples.dtype))

        _warn_latent_for_another_vae(self.context, model, latent)
        out = run_sampling(self.context, guider, sampler, sigmas, noise, samples, latent.get("noise_mask"),
                           on_step=keep)
        base = {k: v for k, v in latent.items() if k != "noise_mask"}
        return {"latent": latent_in_models_space({**latent, "samples": out}, model),
                "predictions": {**base, "samples": torch.cat(predictions)},
                "noisy": {**base, "samples": torch.cat(noisy)}}


class ForwardDiffuseImage(Node):
    """The forward process on an image, for seeing a noise schedule.

    Each image is noised to every listed training timestep t under the chosen beta
    schedule — x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε in the [-1, 1] pixel range, with the same ε
    for every t — and shown back in [0, 1]. Output: per input image, one image per
    timestep, in the listed order (ImageGrid with columns = number of timesteps).
    """

    category = "sampling/visualise"

    class Inputs(NodeInputs):
        images: Any = Input(port="IMAGE")
        beta_schedule: Literal["linear", "scaled_linear", "cosine"] = Input("linear")
        timesteps: str = Input("0,50,100,200,300,500,700,999", description="comma-separated, each 0 … 999")
        seed: int = Input(0, seed=True)

    outputs = (Output("images", "IMAGE"),)

    def run(self, images: Any, beta_schedule: str, timesteps: str, seed: int) -> dict:
        import torch

        from .forward_diffusion import q_sample
        from .noise import seeded_noise
        from .schedules import alphas_cumprod_from_betas, cosine_betas, linear_betas, scaled_linear_betas

        try:
            steps = [int(t) for t in timesteps.replace(" ", "").split(",") if t]
        except ValueError:
            raise NodeInputError("timesteps", f"expected comma-separated integers such as '0,100,500,999', "
                                              f"found {timesteps!r}") from None
        if not steps or any(not 0 <= t <= 999 for t in steps):
            raise NodeInputError("timesteps", f"expected one or more timesteps in 0 … 999, found {timesteps!r}")
        betas = {"linear": linear_betas, "scaled_linear": scaled_linear_betas, "cosine": cosine_betas}[beta_schedule]()
        alphas_cumprod = alphas_cumprod_from_betas(betas)
        x0 = images.movedim(-1, 1).float() * 2 - 1                            # (B, 3, H, W) in [-1, 1]
        eps = seeded_noise(x0.shape, seed, dtype=x0.dtype)
        rows = [torch.stack([q_sample(x0[b:b + 1], t, alphas_cumprod, noise=eps[b:b + 1])[0] for t in steps])
                for b in range(len(x0))]
        out = ((torch.cat(rows) + 1) / 2).clamp(0, 1).movedim(1, -1)
        return {"images": out.to(images.dtype)}


class SamplerStep(Node):
    """One step (sigmas[step] → sigmas[step+1]) of a sampler; multistep history travels in `state`.

    At step 0 (with no state) the latent is noised exactly as Sample does; later steps take
    the latent as it is. Chaining SamplerStep nodes for steps 0..n-1 reproduces Sample bit for bit.
    """

    category = "sampling"

    class Inputs(NodeInputs):
        guider: Any = Input(port="GUIDER")
        sampler: Any = Input(port="SAMPLER")
        sigmas: Any = Input(port="SIGMAS")
        noise: Any = Input(port="NOISE")
        latent: Any = Input(port="LATENT")
        step: int = Input(0, ge=0, le=10000)
        state: Any = Input(None, port="SAMPLER_STATE", description="the state output of the previous step")

    outputs = (Output("latent", "LATENT"), Output("denoised", "LATENT"), Output("state", "SAMPLER_STATE"))

    def run(self, guider: Any, sampler: Any, sigmas: Any, noise: Any, latent: Any, step: int, state: Any) -> dict:
        from .samplers import SAMPLER_STEPS, sampler_step, uneven_step_guards

        samples, sigmas, model = _prepare(self, guider, sigmas, noise, latent)
        if step >= len(sigmas) - 1:
            raise NodeInputError("step", f"the schedule has {len(sigmas) - 1} steps (0 … {len(sigmas) - 2}); "
                                         f"found step {step}")
        if step > 0 and state is None:
            raise NodeInputError("state", f"step {step} needs the state output of step {step - 1}")
        step_function = getattr(sampler["function"], "step", None) or SAMPLER_STEPS.get(sampler["name"])
        if step_function is None:
            raise NodeInputError("sampler", f"sampler {sampler['name']!r} has no single-step form; use Sample")
        seen: dict = {}
        with self.context.service("memory").using(model.net):
            model.apply_patches()
            device, dtype = model.device, samples.dtype
            x = samples.to(device)
            if step == 0 and state is None:
                x = x + noise.generate(x) * _start_noise_scale(guider, sigmas)
            with _as_input_errors({"state": "state", "i": "step", "sigmas": "sigmas", "options": "sampler"},
                                  "sampler"), uneven_step_guards(getattr(model, "prediction", None) == "flow"):
                x_next, new_state = sampler_step(
                    sampler["name"], _for_run(guider.denoiser, sigmas), x, sigmas.to(device), step, state,
                    seed=noise.seed if noise.seed is not None else 0, step_function=step_function,
                    callback=lambda info: seen.update(info), **sampler["options"])
        self.context.progress(1, 1, preview=model.preview_image(seen["denoised"]))
        return {"latent": {**latent, "samples": x_next.to("cpu", dtype)},
                "denoised": {"samples": seen["denoised"].to("cpu", dtype)}, "state": new_state}


class AddNoise(Node):
    """latent + noise × sigmas[0]: the noised latent a sampler starts from (VE form; a full denoise in Sample
    adds noise × sqrt(1 + sigmas[0]²) instead, which this node, seeing no model, cannot tell)."""

    category = "sampling"

    class Inputs(NodeInputs):
        noise: Any = Input(port="NOISE")
        sigmas: Any = Input(port="SIGMAS")
        latent: Any = Input(port="LATENT")

    outputs = (Output("latent", "LATENT"),)

    def run(self, noise: Any, sigmas: Any, latent: Any) -> dict:
        samples = _check_latent(latent)
        if getattr(sigmas, "ndim", 0) != 1 or len(sigmas) < 1:
            raise NodeInputError("sigmas", "expected a 1-D SIGMAS tensor")
        return {"latent": {**latent, "samples": samples + noise.generate(samples) * float(sigmas[0])}}


class ForwardDiffuse(Node):
    """The forward process at a training timestep: √ᾱ_t·x0 + √(1−ᾱ_t)·ε (VP form, for visualising q(x_t | x0))."""

    category = "sampling"

    class Inputs(NodeInputs):
        model: Any = Input(port="MODEL")
        latent: Any = Input(port="LATENT")
        timestep: int = Input(500, ge=0, le=100000)
        seed: int = Input(0, seed=True)

    outputs = (Output("latent", "LATENT"),)

    def run(self, model: Any, latent: Any, timestep: int, seed: int) -> dict:
        from .forward_diffusion import q_sample

        samples = _check_latent(latent)
        training_sigmas = getattr(model.time_map, "sigmas", None)
        if training_sigmas is None:
            raise NodeInputError("model", f"model {model.name!r} has no discrete training schedule")
        alphas_cumprod = 1.0 / (1.0 + training_sigmas.double() ** 2)    # sigma_t² = (1 - ᾱ_t) / ᾱ_t
        if timestep >= len(alphas_cumprod):
            raise NodeInputError("timestep", f"the model was trained on timesteps 0 … {len(alphas_cumprod) - 1}")
        with _as_input_errors({"timesteps": "timestep"}, "latent"):
            noised = q_sample(samples, timestep, alphas_cumprod, seed=seed)
        return {"latent": {**latent, "samples": noised}}


class DDIMInvert(Node):
    """Invert deterministic DDIM: the noised latent that sampling back (DDIM, eta 0, DisableNoise) maps to the input."""

    category = "sampling"

    class Inputs(NodeInputs):
        guider: Any = Input(port="GUIDER")
        sigmas: Any = Input(port="SIGMAS")
        latent: Any = Input(port="LATENT")
        refinement: int = Input(0, ge=0, le=20, description="fixed-point iterations per step (tighter round trip)")

    outputs = (Output("latent", "LATENT"),)

    def run(self, guider: Any, sigmas: Any, latent: Any, refinement: int) -> dict:
        from .inversion import invert_ddim

        samples = _check_latent(latent)
        model = guider.model
        _check_channels(samples, model)
        with self.context.service("memory").using(model.net):
            model.apply_patches()
            device = model.device
            with _as_input_errors({"sigmas": "sigmas", "x0": "latent"}, "guider"):
                guider.denoiser.check_latent(samples)
                inverted = invert_ddim(_for_run(guider.denoiser, sigmas), samples.to(device), sigmas.to(device),
                                       callback=_progress_callback(self.context, model, len(sigmas) - 1),
                                       fixed_point_iterations=refinement)
        return {"latent": {**latent, "samples": inverted.to("cpu", samples.dtype)}}


class KSampler(Node):
    """Text-to-image / image-to-image in one node: schedule, CFG, seeded noise and a sampler (+ optional GUIDANCE)."""

    category = "sampling"
    version = "1.1.1"     # 1.1.1: heun / lms / unipc / dpmpp_2m(_sde) take too-uneven steps at first order

    class Inputs(NodeInputs):
        model: Any = Input(port="MODEL")
        positive: Any = Input(port="CONDITIONING")
        negative: Any = Input(port="CONDITIONING")
        latent: Any = Input(port="LATENT")
        seed: int = Input(0, seed=True)
        steps: int = Input(20, ge=1, le=10000)
        cfg: float = Input(7.0, ge=0.0, le=100.0, step=0.1)
        sampler: str = Input("euler", choices_from="samplers")
        scheduler: str = Input("karras", choices_from="schedules",
                               description="the noise schedule; discrete = every training timestep (steps 1000 for SD)")
        denoise: float = Input(1.0, ge=0.0, le=1.0, step=0.01,
                               description="how much of the latent is redone: 1 = all (text to image), 0 = none "
                                           "(the latent passes unchanged, as in ComfyUI)")
        guidance: Any = Input(None, port="GUIDANCE", description="optional guidance terms added after CFG")

    outputs = (Output("latent", "LATENT"),)

    def run(self, model: Any, positive: Any, negative: Any, latent: Any, seed: int, steps: int, cfg: float,
            sampler: str, scheduler: str, denoise: float, guidance: Any) -> dict:
        if denoise == 0:      # ComfyUI's KSampler returns its latent for denoise 0 (graphs use it as an off switch)
            _check_latent(latent)
            return {"latent": dict(latent)}
        return {"latent": api.sample(self.context, model, positive, negative, latent, seed=seed, steps=steps,
                                     cfg=cfg, sampler=sampler, scheduler=scheduler, denoise=denoise,
                                     guidance=guidance)}


class SetLatentNoiseMask(Node):
    """Limit sampling to the masked area (1 = regenerate); the rest of the latent is kept (any model can inpaint)."""

    category = "latent/inpaint"

    class Inputs(NodeInputs):
        latent: Any = Input(port="LATENT")
        mask: Any = Input(port="MASK")

    outputs = (Output("latent", "LATENT"),)

    def run(self, latent: Any, mask: Any) -> dict:
        samples = _check_latent(latent)
        if getattr(mask, "ndim", 0) != 3:
            raise NodeInputError("mask", f"expected a MASK (B, H, W), found {type(mask).__name__}")
        if mask.shape[0] not in (1, samples.shape[0]):
            raise NodeInputError("mask", f"mask batch {mask.shape[0]} does not match the latent batch "
                                         f"{samples.shape[0]}")
        if float(mask.max()) <= 0:
            raise NodeInputError("mask", "the mask is empty: nothing would change (paint the area to regenerate)")
        (mask_h, mask_w), (latent_h, latent_w) = mask.shape[-2:], samples.shape[-2:]
        if abs(mask_w / mask_h - latent_w / latent_h) > 0.02 * latent_w / latent_h:
            self.context.warn(f"the mask is {mask_w}×{mask_h} but the latent's image has the aspect of "
                              f"{latent_w}×{latent_h} latent cells: the mask is stretched to it, so the area kept "
                              f"is not where it was painted; give a mask of the image's size (ScaleMask)")
        return {"latent": {**latent, "noise_mask": mask.float()}}


class LatentUpscale(Node):
    """Resize latents (for hires fix: upscale, then sample again with partial denoise)."""

    category = "latent"
    version = "1.2.0"      # 1.1: downscale 0 (the default) reads the latent's own pixels per cell; 1.2: one of
    #                        width / height 0 keeps the aspect ratio (as ComfyUI's LatentUpscale)

    class Inputs(NodeInputs):
        latent: Any = Input(port="LATENT")
        factor: float = Input(2.0, gt=0.0, le=8.0, step=0.05, description="used when width and height are both 0")
        width: int = Input(0, ge=0, le=16384, multiple_of=8, description="target in pixels (0 and height 0 = use "
                                                                         "factor; 0 alone = keep the aspect ratio)")
        height: int = Input(0, ge=0, le=16384, multiple_of=8, description="target in pixels (0 alone = keep the "
                                                                          "aspect ratio)")
        method: Literal["nearest", "bilinear", "bicubic"] = Input("bilinear")
        downscale: int = Input(0, ge=0, le=64, description="pixels per latent cell of the VAE, for width/height: "
                                                          "0 = the latent's own (EmptyLatent records its VAE's), "
                                                          "else 8 as SD's")

    outputs = (Output("latent", "LATENT"),)

    def run(self, latent: Any, factor: float, width: int, height: int, method: str, downscale: int) -> dict:
        import torch.nn.functional as F

        samples = _check_latent(latent)
        h, w = samples.shape[-2:]
        if not downscale:       # the latent's own layout (a 1024 request on the tiny VAE, 4 px a cell, made 512)
            recorded = latent.get("pixels_per_cell")
            downscale = recorded if isinstance(recorded, int) and recorded > 0 else 8
        if (width and width < downscale) or (height and height < downscale):
            raise NodeInputError("width" if width and width < downscale else "height",
                                 f"{width}x{height} px is less than one latent cell of {downscale} px a side; give "
                                 f"a size of at least {downscale} px (or 0 and 0 to scale by `factor`)")
        if width and height:
            size = (height // downscale, width // downscale)
        elif width or height:          # one side given: the other keeps the latent's aspect ratio
            rows = height // downscale if height else max(1, round(h * (width // downscale) / w))
            size = (rows, width // downscale if width else max(1, round(w * rows / h)))
        else:
            size = (max(1, round(h * factor)), max(1, round(w * factor)))
        batch, channels = samples.shape[0], samples.shape[1] if samples.ndim > 1 else 1
        too_big = latent_size_problem(batch, channels, size[0], size[1], size[1] * downscale, size[0] * downscale)
        if too_big:       # checked before F.interpolate allocates it (an 8×8 latent was upscaled to 16384² × 4096)
            raise NodeInputError("width" if width or height else "factor", too_big)
        kwargs = {"align_corners": False} if method != "nearest" else {}
        out = {**latent, "samples": F.interpolate(samples, size=size, mode=method, **kwargs)}
        if "noise_mask" in latent:
            out.pop("noise_mask")     # the mask is in pixels of the old size; set it again if needed
        return {"latent": out}


NODES = [SetLatentNoiseMask, LatentUpscale, EmptyLatent, Schedule, SplitSigmas, SelectSampler, CFGGuider, RandomNoise,
         DisableNoise, Sample, DenoisingTrajectory, SamplerStep, AddNoise, ForwardDiffuse, ForwardDiffuseImage,
         DDIMInvert, KSampler]


@hookimpl
def register_types() -> list[PortType]:
    from .guidance_nodes import GUIDANCE

    return [SAMPLER_STATE, GUIDANCE]


@hookimpl
def register_nodes() -> list[type[Node]]:
    from .guidance_nodes import NODES as GUIDANCE_NODES

    return [*NODES, *GUIDANCE_NODES]


# The library's samplers and schedules, by name. Registered as names (resolved on use)
# so that loading this pack does not import torch; a test keeps these lists in step
# with samplers.SAMPLERS and schedules.SCHEDULES.
LIBRARY_SAMPLERS = ("euler", "euler_ancestral", "heun", "ddim", "ddpm", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_sde",
                    "lms", "unipc", "unipc_bh1", "lcm")
LIBRARY_SCHEDULES = ("karras", "exponential", "normal", "simple", "sgm_uniform", "ddim_uniform", "beta", "discrete")


def sampler_function(registry: Any, name: str) -> Any:
    """The sampler registered as `name`: a plugin's callable, or the library's function of that name."""
    value = registry.extensions["samplers"][name]
    if callable(value):
        return value
    from .samplers import SAMPLERS

    return SAMPLERS[value]


def schedule_function(registry: Any, name: str) -> Any:
    """The sigma spacing registered as `name` (a plugin's callable, or the library's)."""
    value = registry.extensions["schedules"][name]
    if callable(value):
        return value
    from .schedules import SCHEDULES

    return SCHEDULES[value]


# --- the nodegraph.api implementations this pack provides (register_api) -----------------------------
# nodegraph.api checks the plain arguments (types, ranges, names) before calling these; the checks
# that need the library (model channels, conditioning batch, schedule) happen here, before model work.

def _check_model(model: Any, argument: str = "model") -> None:
    if not (callable(getattr(model, "denoiser", None)) and hasattr(model, "net")):
        raise NodeInputError(argument, f"expected a MODEL (e.g. from LoadCheckpoint), found {type(model).__name__}")


def _check_layout(samples: Any, model: Any, name: str = "latent") -> None:
    """Channels must match the model; our UNets take image latents (B, C, h, w) (video: frames in the batch)."""
    _check_channels(samples, model, name)
    if getattr(getattr(model.net, "config", None), "in_channels", None) is not None and samples.ndim != 4:
        raise NodeInputError(name, f"model {model.name!r} denoises image latents (B, C, h, w), found "
                                   f"{samples.ndim}-D samples {tuple(samples.shape)}; fold frames into the batch axis")


def api_sigmas(context: NodeContext, model: Any, *, scheduler: str, steps: int, denoise: float) -> Any:
    """nodegraph.api.sigmas: the schedule's sigmas for `model`, truncated for `denoise`."""
    from .schedules import truncate_for_denoise

    _check_model(model)
    make = schedule_function(context.service("registry"), scheduler)
    denoiser = model.denoiser()
    with _as_input_errors({"steps": "steps", "denoise": "denoise"}, "scheduler"):
        return truncate_for_denoise(lambda n: make(denoiser, n), steps, denoise)


MAX_LATENT_ELEMENTS = 2**26     # 256 MiB of float32 per latent: 4096 SD latents of 512², or 1 of 16384²


def latent_size_problem(batch: int, channels: int, rows: int, columns: int, width: int, height: int) -> str | None:
    """Why a (batch, channels, rows, columns) latent for width×height images is too large, or None."""
    elements = batch * channels * rows * columns
    if elements <= MAX_LATENT_ELEMENTS:
        return None
    return (f"{batch} latent(s) of {width}×{height} ({channels} channels) are {elements * 4 / 2**30:,.1f} GiB, over "
            f"the {MAX_LATENT_ELEMENTS * 4 // 2**20} MiB a latent may take (sampling and decoding need many times "
            f"more); lower batch_size (run several batches, or a sweep over seeds), width or height")


LATENT_SCALE_KEY = "latent_scale"     # LATENT key: {"scale_factor", "shift_factor", "made_by"} of its latent space


def latent_scale_entry(scale: tuple[float, float], made_by: str) -> dict:
    """The `LATENT_SCALE_KEY` entry of a latent in the space scaled by `scale` (scale_factor, shift_factor), made by
    `made_by` (VAEEncode's VAE, a sampler's model): what VAEDecode compares with its own VAE's scale."""
    return {"scale_factor": scale[0], "shift_factor": scale[1], "made_by": made_by}


def latent_in_models_space(latent: dict, model: Any) -> dict:
    """A sampler's output `latent` with its model's latent-space record (`DiffusionModel.latent_scale`), when the
    model knows it: what VAEDecode needs to decode an SDXL latent right with a VAE file that records no scale."""
    scale = getattr(model, "latent_scale", None)
    if scale is None:
        return latent
    return {**latent, LATENT_SCALE_KEY: latent_scale_entry(scale, f"sampled by {getattr(model, 'name', 'the model')}")}


def api_empty_latent(context: NodeContext, width: int, height: int, *, batch_size: int, channels: int,
                     vae: Any) -> dict:
    """nodegraph.api.empty_latent (EmptyLatent): zeros (B, C, H/f, W/f); f and C from the VAE, else 8 and `channels`."""
    import torch

    factor = 8
    if vae is not None:
        config = getattr(vae, "config", None)
        if not (hasattr(config, "downscale") and hasattr(config, "z_channels")):
            raise NodeInputError("vae", f"expected a VAE (e.g. from LoadCheckpoint), found {type(vae).__name__}")
        factor, channels = config.downscale, config.z_channels
        if width % factor or height % factor:
            raise NodeInputError("width", f"this VAE needs sizes that are multiples of {factor}")
    shape = (batch_size, channels, height // factor, width // factor)
    if (problem := latent_size_problem(*shape, width, height)) is not None:
        raise NodeInputError("batch_size" if batch_size > 1 else "width", problem)
    try:
        return {"samples": torch.zeros(shape), "pixels_per_cell": factor}
    except (RuntimeError, MemoryError) as exc:      # torch: "can't allocate memory: you tried to allocate N bytes"
        gib = math.prod(shape) * 4 / 2**30
        raise NodeInputError("batch_size" if batch_size > 1 else "width",
                             f"{batch_size} latent(s) of {width}×{height} need {gib:,.1f} GiB, more than this "
                             f"machine can give ({type(exc).__name__}); lower batch_size, width or height — and "
                             f"sampling needs many times the latent's own memory") from None


def api_sample(context: NodeContext, model: Any, positive: Any, negative: Any, latent: dict, *, seed: int,
               steps: int, cfg: float, sampler: str, scheduler: str, denoise: float, guidance: Any,
               noise: Any = None) -> dict:
    """nodegraph.api.sample (KSampler): schedule, CFG (+ guidance terms), seeded (or given) noise, sampler."""
    from .denoisers import batch_groups
    from .diffusion_model import Guidance, Noise
    from .guidance import CFGGuider as Guider

    _check_model(model)
    samples = latent["samples"]
    _check_layout(samples, model)
    _check_conditioning_fits(model, positive=positive, negative=negative)
    sigmas = api_sigmas(context, model, scheduler=scheduler, steps=steps, denoise=denoise)
    with _as_input_errors({"positive": "positive", "negative": "negative", "scale": "cfg",
                           "guidance": "guidance"}, "positive"):
        guider = Guider(model.denoiser(), positive, negative, scale=cfg, guidance=tuple(guidance or ()))
        guider.check_latent(samples)
        guider.check_model(model.net)
    chosen = {"name": sampler, "function": sampler_function(context.service("registry"), sampler), "options": {}}
    _warn_latent_for_another_vae(context, model, latent)
    _warn_resized_hints(context, samples, positive, negative)
    _warn_low_start(context, guider, sigmas, scheduler, steps, denoise)
    with batch_groups(latent.get("frames"), context.check_interrupted):    # whole clips a call
        out = run_sampling(context, Guidance(guider, model), chosen, sigmas, noise or Noise(seed), samples,
                           latent.get("noise_mask"))
    return latent_in_models_space({**latent, "samples": out}, model)


def api_sample_custom(context: NodeContext, guider: Any, sampler: Any, sigmas: Any, noise: Any,
                      latent: dict) -> dict:
    """nodegraph.api.sample_custom (Sample): a GUIDER, SAMPLER, SIGMAS and NOISE chosen separately."""
    from .denoisers import batch_groups
    from .diffusion_model import Noise
    from .schedules import check_schedule

    if not (hasattr(guider, "model") and callable(getattr(guider, "denoiser", None))):
        raise NodeInputError("guider", f"expected a GUIDER (e.g. from CFGGuider), found {type(guider).__name__}")
    if isinstance(sampler, str):
        sampler = {"name": sampler, "function": sampler_function(context.service("registry"), sampler),
                   "options": {}}
    if noise is None or isinstance(noise, int):
        noise = Noise(noise)
    elif not callable(getattr(noise, "generate", None)):
        raise NodeInputError("noise", f"expected a NOISE (RandomNoise / DisableNoise), an int seed or None, "
                                      f"found {type(noise).__name__}")
    samples = latent["samples"]
    model = guider.model
    _check_layout(samples, model)
    with _as_input_errors({"sigmas": "sigmas"}, "sigmas"):
        check_schedule(sigmas, must_end_in_zero=False)
    with _as_input_errors({}, "guider"):
        guider.denoiser.check_latent(samples)
    _warn_latent_for_another_vae(context, model, latent)
    cfg = getattr(guider, "denoiser", None)
    _warn_resized_hints(context, samples, getattr(cfg, "positive", None), getattr(cfg, "negative", None))
    with batch_groups(latent.get("frames"), context.check_interrupted):
        out = run_sampling(context, guider, sampler, sigmas, noise, samples, latent.get("noise_mask"))
    return latent_in_models_space({**latent, "samples": out}, model)


def api_cfg_guider(context: NodeContext, model: Any, positive: Any, negative: Any, *, cfg: float, rescale: float,
                   sigma_low: float, sigma_high: float, guidance: Any) -> Any:
    """nodegraph.api.cfg_guider (CFGGuider): CFG over the model's denoiser, GUIDANCE terms after it → GUIDER."""
    from .diffusion_model import Guidance
    from .guidance import CFGGuider as Guider

    _check_model(model)
    _check_conditioning_fits(model, positive=positive, negative=negative)
    with _as_input_errors({"positive": "positive", "negative": "negative", "scale": "cfg",
                           "rescale": "rescale", "cfg_sigma_range": "sigma_low"}, "positive"):
        guider = Guider(model.denoiser(), positive, negative, scale=cfg, rescale=rescale,
                        cfg_sigma_range=(sigma_low, sigma_high), guidance=tuple(guidance or ()))
    with _as_input_errors({}, "guidance"):
        guider.check_model(model.net)
    return Guidance(guider, model)


def api_diffusion_model(context: NodeContext, net: Any, *, prediction: str, schedule: Any, shift: float,
                        time_scale: float, latent_channels: int, preview: Any, name: str) -> Any:
    """nodegraph.api.diffusion_model: a plugin's network as a MODEL the whole sampling stack accepts."""
    import torch

    from .denoisers import DiscreteTimeMap, FlowTimeMap
    from .diffusion_model import DiffusionModel
    from .errors import SamplingError
    from .schedules import alphas_cumprod_from_betas, cosine_betas, linear_betas, scaled_linear_betas

    if prediction == "flow":
        time_map = FlowTimeMap(shift=shift, multiplier=time_scale)
    else:
        named = {"linear": linear_betas, "scaled_linear": scaled_linear_betas, "cosine": cosine_betas}
        if isinstance(schedule, str):
            if schedule not in named:
                raise NodeInputError("schedule", f"unknown training schedule {schedule!r}; expected one of "
                                                 f"{', '.join(named)} or a 1-D table of alphas_cumprod")
            alphas_cumprod = alphas_cumprod_from_betas(named[schedule]())
        else:
            alphas_cumprod = torch.as_tensor(schedule, dtype=torch.float64)
        try:
            time_map = DiscreteTimeMap(alphas_cumprod)
        except SamplingError as exc:
            raise NodeInputError("schedule", str(exc)) from None
    return DiffusionModel(net=net, prediction=prediction, time_map=time_map, latent_channels=latent_channels,
                          preview=preview, name=name)


@contextmanager
def api_model_denoiser(context: NodeContext, model: Any) -> Iterator[Any]:
    """nodegraph.api.model_denoiser: the MODEL's denoiser, placed and patched, base weights frozen meanwhile."""
    _check_model(model)
    parameters = list(model.net.parameters()) if hasattr(model.net, "parameters") else []
    flags = [p.requires_grad for p in parameters]
    with context.service("memory").using(model.net):
        model.apply_patches()
        try:
            for parameter in parameters:
                parameter.requires_grad_(False)
            yield model.denoiser()
        finally:
            for parameter, flag in zip(parameters, flags):
                parameter.requires_grad_(flag)


def api_sampler_from_step(step: Any) -> Any:
    """nodegraph.api.sampler_from_step (imports the library, and torch, only when called)."""
    from .samplers import sampler_from_step

    return sampler_from_step(step)


@hookimpl
def register_api() -> dict[str, Any]:
    return {"sample": api_sample, "sample_custom": api_sample_custom, "cfg_guider": api_cfg_guider,
            "sigmas": api_sigmas, "empty_latent": api_empty_latent, "diffusion_model": api_diffusion_model,
            "model_denoiser": api_model_denoiser, "sampler_from_step": api_sampler_from_step}


@hookimpl
def register_samplers() -> dict[str, Any]:
    return {name: name for name in LIBRARY_SAMPLERS}


@hookimpl
def register_schedules() -> dict[str, Any]:
    return {name: name for name in LIBRARY_SCHEDULES}
