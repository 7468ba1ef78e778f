"""Teach a model your own images as a LoRA (kohya's / diffusers' train_dreambooth_lora): the diffusion loss of
`trainer.train_diffusion`, with only LoRA adapters on the UNet's attention projections learning.

Map
- ``ATTENTION_PROJECTIONS``          which Linear layers get adapters (q, k, v, out of every attention: LoRA's
                                     original target, Hu et al. 2021 §4.2, and diffusers' DreamBooth-LoRA default)
- ``add_attention_lora(unet, ...)``  wrap them (frozen base + zero-started up): {module name: adapter}
- ``train_lora(...)``                the loop: resumable through a TrainingRun, deterministic for a seed;
                                     returns (adapters, report); the UNet passed in is never changed

The adapters save in the kohya layout (``lcm.lora_state_dict``) that LoadLoRA reads, so the result is used like
any downloaded LoRA: LoadLoRA with a strength. The text encoder stays frozen (kohya's `--network_train_unet_only`).
"""

from __future__ import annotations

import copy
import re
from typing import Any, Callable

import torch
from torch import nn

from .lcm import LoraAdapter
from .trainer import (DiffusionData, DivergenceWatch, TrainConfig, TrainingRun, _autocast, _denoising_loss,
                      _noised_batch, _optimiser_step, lr_at)

ATTENTION_PROJECTIONS = re.compile(r"(^|\.)attn[12]\.(to_q|to_k|to_v|to_out\.0)$")


def add_attention_lora(unet: nn.Module, rank: int, alpha: float) -> dict[str, LoraAdapter]:
    """Freeze `unet` and wrap each attention projection (ATTENTION_PROJECTIONS) in a LoraAdapter."""
    unet.requires_grad_(False)
    targets = [(name, child) for name, child in unet.named_modules()
               if isinstance(child, nn.Linear) and ATTENTION_PROJECTIONS.search(name)]
    if not targets:
        raise ValueError("this network has no attention projections (attn1 / attn2 to_q, to_k, to_v, to_out) to "
                         "put LoRA adapters on")
    adapters = {}
    for name, child in targets:
        parent_name, _, attribute = name.rpartition(".")
        adapter = LoraAdapter(child, rank, alpha)
        setattr(unet.get_submodule(parent_name), attribute, adapter)
        adapters[name] = adapter
    return adapters


def _adapter_weights(adapters: dict[str, LoraAdapter]) -> dict[str, torch.Tensor]:
    return {f"{name}.{part}": getattr(adapter, part).weight for name, adapter in adapters.items()
            for part in ("down", "up")}


def train_lora(unet: nn.Module, text_encoder: Any, data: DiffusionData, alphas_cumprod: torch.Tensor,
               config: TrainConfig, progress: Callable[..., Any], run: TrainingRun | None = None, *,
               rank: int = 8, alpha: float | None = None, objective: str = "eps",
               caption_dropout: float = 0.0) -> tuple[dict[str, LoraAdapter], dict]:
    """Train LoRA adapters on a copy of `unet` to denoise `data.latents` with their captions.

    `alpha` defaults to `rank` (scale alpha / rank = 1; kohya's network_alpha). The text encoder is frozen.
    ``config``'s lr_scheduler, grad_accumulation, noise_offset and min_snr_gamma apply as in `train_diffusion`;
    a loss or gradient that goes inf / NaN stops the run (TrainingDivergedError), a gradient norm far past its
    start is warned about (DivergenceWatch). Returns (adapters by the UNet's module names, report with the last
    step's loss); the adapters' weights are the trained ones (no EMA: a LoRA is small and short-trained).
    Deterministic for `config.seed`; resumable through `run` (its state holds the adapters and the optimiser).
    """
    run = run or TrainingRun(None, {})
    torch.manual_seed(config.seed)
    student = copy.deepcopy(unet)
    alpha = float(alpha if alpha is not None else rank)
    adapters = add_attention_lora(student, rank, alpha)
    text_encoder.requires_grad_(False)
    weights = _adapter_weights(adapters)
    parameters = list(weights.values())
    optimiser = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.99))
    start = 0
    state = run.resume()
    if state is not None:
        with run.restoring(), torch.no_grad():
            for key, value in state["adapters"].items():
                weights[key].copy_(value)
            optimiser.load_state_dict(state["optimiser"])
        start = state["step"]
    device = next(student.parameters()).device
    alphas_cumprod = alphas_cumprod.to(device=device, dtype=torch.float32)
    layer = text_encoder.config.output_layer
    student.train()
    text_encoder.eval()
    info: dict = dict(run.last_info)
    watch = DivergenceWatch(run.warn, run.shown, config.lr)
    for step in range(start, config.steps):
        for micro in range(config.grad_accumulation):
            _, ids, t, x_t, target = _noised_batch(data, alphas_cumprod, config, step, micro, caption_dropout,
                                                   objective)
            with _autocast(config, device):
                with torch.no_grad():
                    context, _ = text_encoder(ids.to(device), layer=layer, pooled=False)
                prediction = student(x_t, t.to(device).float(), context=context)
            loss = _denoising_loss(prediction, target, alphas_cumprod[t.to(device)], config, objective)
            (loss / config.grad_accumulation).backward()
        watch.step, watch.loss = step, loss.item()
        info = {"loss": watch.loss, "lr": lr_at(step, config),
                "grad_norm": _optimiser_step(parameters, optimiser, config, step, check=watch.check)}
        done = step + 1
        if done == config.steps or (config.checkpoint_every and done % config.checkpoint_every == 0):
            run.save({"step": done, "adapters": {k: v.detach() for k, v in weights.items()},
                      "optimiser": optimiser.state_dict(), "info": info})
        progress(done, config.steps, info)
    student.eval()
    return adapters, {**info, "steps": config.steps, "rank": rank, "alpha": alpha, "adapted_layers": len(adapters),
                      "objective": objective}
