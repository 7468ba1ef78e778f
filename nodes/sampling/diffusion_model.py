"""What flows through MODEL, GUIDER and NOISE ports: small value types over the library.

- `DiffusionModel` (MODEL): a raw network ``net(x_in, t, **cond)`` plus what it
  predicts (eps / v / x0 ...), its sigma↔t map, its latent channels and an
  optional cheap latent → RGB preview. ``denoiser()`` gives the k-diffusion
  style denoiser (denoisers.ModelDenoiser) that samplers use. The models pack
  builds one from a checkpoint; tests build one around an analytic network.
  Weight patches (LoRA) are values too: ``patches`` lists them and ``patcher``
  applies exactly that list to the shared network; sampling nodes call
  ``apply_patches()`` before use, so a cached base model and its LoRA'd
  variants can share one set of weights.
- `Guidance` (GUIDER): a guided denoiser (guidance.CFGGuider) with the model it
  wraps, so a sampling node can place the model on the device and draw previews.
- `Noise` (NOISE): a seed (or none, for latents that are already noised); item k
  of a batch gets seed + k (noise.seeded_noise).
- CONDITIONING values are plain dicts of tensors with a batch dimension,
  e.g. ``{"context": (B, T, D), "y": (B, Dy)}`` — the keyword arguments the
  network receives. LATENT values are dicts ``{"samples": (B, C, h, w)}``; a latent that knows its latent
  space carries ``LATENT_SCALE_KEY``: ``{"scale_factor", "shift_factor", "made_by"}`` (VAEEncode writes it, and
  a sampler whose model knows its ``latent_scale``), which VAEDecode checks against its VAE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .denoisers import ContinuousTimeMap, DiscreteTimeMap, FlowTimeMap, ModelDenoiser
from .noise import seeded_noise


from .nodes import LATENT_SCALE_KEY, latent_in_models_space  # noqa: F401 — the LATENT contract, here too


@dataclass(eq=False)
class DiffusionModel:
    """A denoising network with everything needed to sample from it.

    Args:
        net: ``net(x_in, t, **cond) -> prediction``; usually a torch module.
        prediction: what ``net`` predicts ("eps", "v", "x0", "edm", "flow").
        time_map: the sigma ↔ t mapping (a DiscreteTimeMap for DDPM-trained models).
        latent_channels: channels of the latents it denoises.
        preview: ``latents (B, C, h, w) -> RGB (B, 3, h, w) in [0, 1]``, cheap; None = first channels.
        name: shown in errors and memory reports.
        patches: weight patches for this variant (e.g. ``(lora, strength)`` pairs).
        patcher: ``patcher(net, patches)`` sets exactly those patches on the network.
        trained_sides: (smallest, largest) latent side it was trained at, in latent cells, when known;
            sampling a latent outside it warns (the picture repeats or breaks up): the shipped tiny-world
            models, 8–32 cells (32–128 px with their VAE).
        pixels_per_cell: the VAE's downscale factor, for messages in pixels (8 for SD).
        vae_downscale: the downscale factor of the VAE the model came with, when a loader knows it (a full
            checkpoint); sampling a latent laid out for another factor warns (`_warn_latent_for_another_vae`).
        latent_scale: (scale_factor, shift_factor) of the latent space it was trained in, when a loader knows it
            (a full checkpoint's VAE); samplers record it in their output (`latent_in_models_space`).
    """

    net: Callable[..., torch.Tensor]
    prediction: str
    time_map: DiscreteTimeMap | ContinuousTimeMap | FlowTimeMap
    latent_channels: int = 4
    preview: Callable[[torch.Tensor], torch.Tensor] | None = None
    name: str = "model"
    patches: tuple = ()
    patcher: Callable[[Any, list], Any] | None = None
    trained_sides: tuple[int, int] | None = None
    pixels_per_cell: int = 8
    vae_downscale: int | None = None
    latent_scale: tuple[float, float] | None = None
    _denoiser: ModelDenoiser | None = field(default=None, repr=False)

    def apply_patches(self) -> Any:
        """Make `patches` exactly what is patched into the shared network (none = the base weights)."""
        if self.patcher is not None:
            return self.patcher(self.net, list(self.patches))
        return None

    def denoiser(self) -> ModelDenoiser:
        """The samplers' view of this model (made once)."""
        if self._denoiser is None:
            self._denoiser = ModelDenoiser(self.net, self.time_map, self.prediction)
        return self._denoiser

    @property
    def device(self) -> torch.device:
        parameters = getattr(self.net, "parameters", None)
        if parameters is not None:
            for parameter in parameters():
                return parameter.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        parameters = getattr(self.net, "parameters", None)
        if parameters is not None:
            for parameter in parameters():
                return parameter.dtype
        return torch.float32

    def preview_image(self, latents: torch.Tensor) -> torch.Tensor | None:
        """First latent of the batch as an IMAGE (1, h, w, 3) in [0, 1], for progress previews.

        None (no preview) for latents that are not images (B, C, h, w) when the model has no
        `preview` function of its own (point sets, waveforms): a plugin passes one to draw them.
        """
        latent = latents[:1].detach().float()
        if self.preview is not None:
            rgb = self.preview(latent)
            if rgb is None:
                return None
        elif latent.ndim != 4:
            return None
        else:  # no known map: show the first three channels, normalised
            rgb = latent[:, :3]
            if rgb.shape[1] < 3:
                rgb = rgb[:, :1].expand(-1, 3, -1, -1)
            low, high = rgb.amin(), rgb.amax()
            rgb = (rgb - low) / (high - low + 1e-8)
        return rgb.clamp(0, 1).movedim(1, -1).cpu()

    def __nodegraph_tensors__(self) -> list:
        """The network's weights, for the output cache (cache.measure): a MODEL with a LoRA patch shares them with
        the plain MODEL, and they are counted once."""
        parameters, buffers = getattr(self.net, "parameters", None), getattr(self.net, "buffers", None)
        return [*(parameters() if parameters else ()), *(buffers() if buffers else ())]


@dataclass(eq=False)
class Guidance:
    """A guided denoiser (what samplers call) and the DiffusionModel inside it."""

    denoiser: Callable[..., torch.Tensor]
    model: DiffusionModel

    def __nodegraph_sizeof__(self) -> int:
        return 0  # the model is accounted for where it was loaded


@dataclass(frozen=True)
class Noise:
    """Initial noise: seeded (item k uses seed + k), or none when ``seed`` is None."""

    seed: int | None

    def generate(self, latent: torch.Tensor) -> torch.Tensor:
        """Noise shaped like ``latent`` (zeros when disabled), drawn on the CPU, moved to its device."""
        if self.seed is None:
            return torch.zeros_like(latent)
        return seeded_noise(latent.shape, self.seed, device=latent.device, dtype=latent.dtype)


def conditioning_to(cond: dict[str, Any], device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """Move the floating tensors of a conditioning dict to the model's device and dtype."""
    return {k: v.to(device=device, dtype=dtype) if isinstance(v, torch.Tensor) and v.is_floating_point()
            else v for k, v in cond.items()}
