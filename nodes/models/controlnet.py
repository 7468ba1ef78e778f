"""ControlNet, shaped like its original checkpoint, and the stack of ControlNets applied to one prompt.

Reference: Zhang, Rao & Agrawala 2023, "Adding Conditional Control to Text-to-Image Diffusion
Models" (ControlNet; seed notes Q18): a trainable copy of the UNet's encoder and middle block,
fed the noisy latent plus an encoded hint image, whose features reach the frozen UNet through
zero-initialised 1×1 convolutions added to its skip connections and middle block.

Map
- ``ControlNetConfig``: the encoder copy's ``UNetConfig`` (the base model's), the hint image's
  channels and the hint encoder's widths (each step after the first halves the resolution:
  (16, 32, 96, 256) = 8× for SD's f=8 VAE; (16, 32, 96) = 4× for the shipped tiny model).
- ``ControlNet(config)``: ``forward(x, hint, timesteps, context, y=None) ->
  {"input": [one residual per UNet input block], "middle": [one]}`` — exactly the UNet's
  ``control`` argument (unet.py). Submodules are named as the LDM checkpoint keys (``cldm.py``):
  ``time_embed``, ``label_emb`` (SDXL), ``input_hint_block``, ``input_blocks``, ``zero_convs``,
  ``middle_block``, ``middle_block_out``. ``check_compatible(unet_config)`` names both models
  when they do not fit together.
- ``ControlStack``: what ApplyControlNet puts into a conditioning (key ``"control"``): one or
  more ``ControlEntry`` (net, hint, strength, start / end as fractions of the schedule). The UNet
  calls it with its own inputs and gets the summed, strength-scaled residuals of the entries
  active at that timestep (unet.py accepts a callable ``control``).

Hints are images in [0, 1], (B, C, H, W), at the latent size × ``hint_downscale``; other
sizes are resized (bilinear, antialiased) with a logged warning, as ComfyUI and diffusers'
pipelines resize them too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .unet import UNetConfig, _broadcast_batch, encoder_blocks, timestep_embedding, timestep_embedders

log = logging.getLogger("nodegraph.controlnet")

SD_HINT_WIDTHS = (16, 32, 96, 256)


@dataclass(frozen=True)
class ControlNetConfig:
    """A ControlNet: the UNet config of its encoder copy, and its hint encoder."""

    unet: UNetConfig
    hint_channels: int = 3                        # RGB hint images; a latent-space ControlNet takes the VAE's channels
    hint_widths: tuple[int, ...] = SD_HINT_WIDTHS  # conv widths of the hint encoder; len - 1 stride-2 steps

    def __post_init__(self) -> None:
        if len(self.hint_widths) < 1:
            raise ValueError("hint_widths needs at least one width")

    @property
    def hint_downscale(self) -> int:
        """Pixels of hint per latent cell."""
        return 2 ** (len(self.hint_widths) - 1)


def hint_encoder(config: ControlNetConfig) -> nn.Sequential:
    """``input_hint_block``: conv+SiLU pairs, every second conv strided, then a conv to the UNet width.

    Indices match the checkpoints: convs at 0, 2, 4, …; the last conv is zero-initialised.
    """
    widths = config.hint_widths
    layers: list[nn.Module] = [nn.Conv2d(config.hint_channels, widths[0], 3, padding=1), nn.SiLU()]
    for here, there in zip(widths, widths[1:]):
        layers += [nn.Conv2d(here, here, 3, padding=1), nn.SiLU(),
                   nn.Conv2d(here, there, 3, padding=1, stride=2), nn.SiLU()]
    layers.append(_zero(nn.Conv2d(widths[-1], config.unet.model_channels, 3, padding=1)))
    return nn.Sequential(*layers)


def _zero(module: nn.Module) -> nn.Module:
    for parameter in module.parameters():
        nn.init.zeros_(parameter)
    return module


class ControlNet(nn.Module):
    """The trainable encoder copy; ``forward`` returns the UNet's ``control`` residuals."""

    def __init__(self, config: ControlNetConfig):
        super().__init__()
        self.config = config
        self.time_embed, label_emb = timestep_embedders(config.unet)
        if label_emb is not None:
            self.label_emb = label_emb
        self.input_hint_block = hint_encoder(config)
        self.input_blocks, self.middle_block, skip_channels = encoder_blocks(config.unet)
        self.zero_convs = nn.ModuleList(nn.Sequential(_zero(nn.Conv2d(ch, ch, 1))) for ch in skip_channels)
        self.middle_block_out = nn.Sequential(_zero(nn.Conv2d(skip_channels[-1], skip_channels[-1], 1)))

    @property
    def dtype(self) -> torch.dtype:
        return self.time_embed[0].weight.dtype

    def check_compatible(self, unet: UNetConfig, name: str = "this ControlNet", model: str = "the model") -> None:
        """Raise ValueError, naming both, unless this ControlNet's residuals fit `unet`."""
        mine = self.config.unet
        fields = ("in_channels", "model_channels", "channel_mult", "num_res_blocks", "context_dim", "adm_in_channels")
        if not all(hasattr(unet, f) for f in fields):     # an MMDiT / Flux transformer: no UNet skips to add to
            raise ValueError(f"{name} adds its residuals to a UNet's skips (SD 1.x / 2.x / SDXL), and {model} is "
                             f"no UNet ({type(unet).__name__.removesuffix('Config')}: no such skips); use a UNet "
                             f"checkpoint with it (or a ControlNet made for that model)")
        different = [f for f in fields if getattr(mine, f) != getattr(unet, f)]
        if different:
            def describe(config: UNetConfig) -> str:
                return (f"context width {config.context_dim}, {config.in_channels}-channel latents, "
                        f"widths {tuple(config.model_channels * m for m in config.channel_mult)}, "
                        f"{'SDXL label embedding' if config.adm_in_channels else 'no label embedding'}")
            raise ValueError(f"{name} was made for a different model family than {model}: "
                             f"ControlNet: {describe(mine)}; model: {describe(unet)} (differs in "
                             f"{', '.join(different)}); load a ControlNet trained for this model")

    def forward(self, x: torch.Tensor, hint: torch.Tensor, timesteps: torch.Tensor | float,
                context: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, list[torch.Tensor]]:
        """Residuals for the UNet's skips and middle block.

        Args:
            x: the noisy latent the UNet sees ``(B, C, h, w)``.
            hint: ``(B or 1, hint_channels, h · hint_downscale, w · hint_downscale)``, in [0, 1].
            timesteps: as for the UNet, ``(B,)`` or a scalar.
            context: text hidden states ``(B or 1, T, context_dim)``.
            y: SDXL's label vector, as for the UNet.

        Returns:
            ``{"input": [(B, C_i, h_i, w_i) per input block], "middle": [(B, C_mid, h_mid, w_mid)]}``.
        """
        batch, dtype, config = x.shape[0], self.dtype, self.config.unet
        expected = (x.shape[-2] * self.config.hint_downscale, x.shape[-1] * self.config.hint_downscale)
        if tuple(hint.shape[-2:]) != expected or hint.shape[1] != self.config.hint_channels:
            raise ValueError(f"hint has shape {tuple(hint.shape)}; this ControlNet needs (B, "
                             f"{self.config.hint_channels}, {expected[0]}, {expected[1]}) for latents of shape "
                             f"{tuple(x.shape)}")
        timesteps = torch.as_tensor(timesteps, device=x.device)
        if timesteps.ndim == 0:
            timesteps = timesteps.expand(batch)
        context = _broadcast_batch(context, batch, "context").to(dtype)
        emb = self.time_embed(timestep_embedding(timesteps, config.model_channels).to(dtype))
        if config.adm_in_channels:
            if y is None:
                raise ValueError("this ControlNet has a label embedding (SDXL): pass y=sdxl_vector(pooled, ...)")
            emb = emb + self.label_emb(_broadcast_batch(y, batch, "y").to(dtype))
        guided = self.input_hint_block(_broadcast_batch(hint, batch, "hint").to(dtype))   # (B, mc, h, w)
        h = x.to(dtype)
        outs = []
        for index, (block, zero_conv) in enumerate(zip(self.input_blocks, self.zero_convs)):
            h = block(h, emb, context)
            if index == 0:
                h = h + guided
            outs.append(zero_conv(h))
        h = self.middle_block(h, emb, context)
        return {"input": outs, "middle": [self.middle_block_out(h)]}


# --- applying ControlNets while sampling -----------------------------------------------------------

def add_residuals(total: dict | None, residuals: dict, scale: float) -> dict:
    """total + scale · residuals, list entry by list entry (None = nothing yet)."""
    scaled = {key: [r * scale for r in values] for key, values in residuals.items()}
    if total is None:
        return scaled
    return {key: [a + b for a, b in zip(total[key], scaled[key])] for key in total}


@dataclass(eq=False)
class ControlEntry:
    """One ApplyControlNet: a net, its hint, how strongly and over which part of the schedule.

    start / end are fractions of the schedule (0 = the first, noisiest step; 1 = the end),
    compared with the UNet's timestep t: active while (1 − end)·999 ≤ t ≤ (1 − start)·999.
    """

    net: ControlNet
    hint: torch.Tensor                    # (B or 1, C, H, W) in [0, 1]
    strength: float = 1.0
    start: float = 0.0
    end: float = 1.0
    name: str = "ControlNet"
    _resized: dict = field(default_factory=dict, repr=False)

    def active(self, timesteps: torch.Tensor) -> bool:
        if self.start <= 0.0 and self.end >= 1.0:
            return True
        t = float(timesteps.flatten()[0])
        return (1.0 - self.end) * 999.0 - 1e-3 <= t <= (1.0 - self.start) * 999.0 + 1e-3

    def hint_for(self, x: torch.Tensor) -> torch.Tensor:
        """The hint at this latent's size × the net's downscale, batch-matched to x (CFG doubles it)."""
        size = (x.shape[-2] * self.net.config.hint_downscale, x.shape[-1] * self.net.config.hint_downscale)
        key = (size, x.device, x.dtype)
        hint = self._resized.get(key)
        if hint is None:
            hint = self.hint
            if tuple(hint.shape[-2:]) != size:
                log.debug("%s: hint image %s×%s resized to %s×%s to match the latent", self.name,
                            hint.shape[-1], hint.shape[-2], size[1], size[0])
                hint = F.interpolate(hint.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
            hint = hint.to(x.device, x.dtype)
            self._resized = {key: hint}
        batch = x.shape[0]
        if hint.shape[0] in (1, batch):
            return hint
        if batch % hint.shape[0] == 0:
            return hint.repeat(batch // hint.shape[0], 1, 1, 1)
        raise ValueError(f"{self.name}: the hint has batch {hint.shape[0]}, the latent {batch}; "
                         f"give one hint or one per latent")


class ControlStack:
    """The ControlNets applied to one conditioning; the UNet calls it for its ``control`` residuals."""

    def __init__(self, entries: tuple[ControlEntry, ...] = ()):
        self.entries = tuple(entries)

    def plus(self, entry: ControlEntry) -> ControlStack:
        """A new stack with `entry` added (chained ApplyControlNet nodes add up)."""
        return ControlStack(self.entries + (entry,))

    def resized_hints(self, latent_height: int, latent_width: int) -> list[tuple[str, tuple[int, int], tuple[int, int]]]:
        """(name, hint width×height, the width×height it is resized to) of each hint that does not match a
        latent of this size (`ControlEntry.hint_for` resizes it, stretching it if the aspect differs)."""
        out = []
        for entry in self.entries:
            scale = entry.net.config.hint_downscale
            size = (latent_width * scale, latent_height * scale)
            hint = (int(entry.hint.shape[-1]), int(entry.hint.shape[-2]))
            if hint != size:
                out.append((entry.name, hint, size))
        return out

    def check_compatible(self, unet: UNetConfig, model: str = "the model") -> None:
        for entry in self.entries:
            entry.net.check_compatible(unet, repr(entry.name), model)

    def __call__(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor,
                 y: torch.Tensor | None = None) -> dict | None:
        total = None
        for entry in self.entries:
            if entry.strength == 0 or not entry.active(timesteps):
                continue
            net = entry.net
            if next(net.parameters()).device != x.device:
                net.to(x.device)
            residuals = net(x, entry.hint_for(x), timesteps, context, y)
            total = add_residuals(total, residuals, entry.strength)
        return total

    def __nodegraph_sizeof__(self) -> int:
        return sum(entry.hint.numel() * entry.hint.element_size() for entry in self.entries)

    def __repr__(self) -> str:
        return f"ControlStack({', '.join(e.name for e in self.entries)})"
