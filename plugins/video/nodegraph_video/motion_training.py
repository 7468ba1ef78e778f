"""Training a motion module on a frozen image UNet (AnimateDiff's recipe at tiny-world size; plain torch).

    ClipBatchData           encoded training clips: latents (N, F, C, h, w) and the conditioning of each
                            clip's first and last keyframe caption (+ the empty prompt for dropout)
    keyframe_conditioning   per-frame conditioning: linear interpolation from the first to the last
                            keyframe's (prompt travel), one row per frame → batch N·F
    train_motion_module     eps-objective training of the module only (Guo et al. 2023 §4.3: the image
                            model stays frozen); AdamW, warm-up + cosine lr, EMA, exact resume
    save_motion_module      safetensors in AnimateDiff's original key layout + the config in the metadata

The loss uses the MODEL's k-diffusion denoiser D(x, σ) (``nodegraph.api.model_denoiser``): with
x = x0 + σ ε, the noise-prediction MSE is ‖(x − D)/σ − ε‖² = ‖(D − x0)/σ‖², so any eps / v model
trains the same way. One timestep per clip (every frame of a clip shares the noise level), fresh
noise per frame. The training kit (`nodegraph.api.training()`) and the frames context are passed in
or imported from this package, so no engine code is imported here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from .motion_module import MotionConfig, MotionModuleError, MotionModuleSet, frames_context

FORMAT = "nodegraph_video.motion_module/1"


@dataclass
class ClipBatchData:
    """Encoded clips: ``latents`` (N, F, C, h, w); ``first`` / ``last``: conditioning dicts of (N, ...) tensors;
    ``empty``: the empty prompt's conditioning (batch 1), used for caption dropout."""

    latents: torch.Tensor
    first: dict[str, torch.Tensor]
    last: dict[str, torch.Tensor]
    empty: dict[str, torch.Tensor]


def keyframe_conditioning(first: dict[str, torch.Tensor], last: dict[str, torch.Tensor], frames: int,
                          weights: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per-frame conditioning (B·F rows, clip-major): row (b, k) = lerp(first[b], last[b], w_k), w_k = k / (F − 1)."""
    if weights is None:
        weights = torch.linspace(0.0, 1.0, frames) if frames > 1 else torch.zeros(1)
    out = {}
    for key, a in first.items():
        b = last[key]
        w = weights.to(a.dtype).view(1, frames, *([1] * (a.ndim - 1)))
        rows = a.unsqueeze(1) + (b - a).unsqueeze(1) * w  # (B, F, ...)
        out[key] = rows.reshape(a.shape[0] * frames, *a.shape[1:])
    return out


def _batch(data: ClipBatchData, indices: torch.Tensor, drop: torch.Tensor) -> dict[str, torch.Tensor]:
    frames = data.latents.shape[1]
    first = {k: v[indices].clone() for k, v in data.first.items()}
    last = {k: v[indices].clone() for k, v in data.last.items()}
    for key in first:
        empty = data.empty[key].expand_as(first[key][:1])
        first[key][drop] = empty
        last[key][drop] = empty
    return keyframe_conditioning(first, last, frames)


def train_motion_module(denoiser: Callable[..., torch.Tensor], modules: MotionModuleSet, data: ClipBatchData,
                        kit: Any, config: Any, run: Any, progress: Callable[[int, int, dict], None], *,
                        caption_dropout: float = 0.1) -> dict:
    """Train `modules` (inserted into the model `denoiser` evaluates) with the eps objective; EMA weights end in it.

    Args:
        denoiser: ``denoiser(x, sigma, **conditioning) -> denoised`` of the patched MODEL, base weights frozen,
            with a discrete ``sigmas`` table (``api.model_denoiser``).
        modules: the motion modules the MODEL's patch inserts (their parameters are trained).
        data: encoded clips (ClipBatchData).
        kit: the training kit (``api.training()``): start_or_resume, optimiser_step, checkpoint, batch_indices.
        config: kit.TrainConfig; ``batch_size`` counts clips (each of F frames).
        run: kit.TrainingRun (checkpoints, exact resume).
        progress: progress(done, total, info) after every step (info: loss, lr, grad_norm).
        caption_dropout: fraction of clips trained with the empty prompt (CFG's unconditional branch).
    """
    sigmas = denoiser.sigmas
    if sigmas is None:
        raise ValueError("the model has no discrete sigma table (a continuous-time model); train on a DDPM model")
    sigmas = sigmas.detach().float().cpu()
    count, frames = data.latents.shape[:2]
    optimiser, ema, start = kit.start_or_resume(modules, config, run)
    modules.train()
    parameters = [p for p in modules.parameters() if p.requires_grad]
    device = next(modules.parameters()).device
    losses: list[float] = []
    for step in range(start, config.steps):
        total = 0.0
        for micro in range(config.grad_accumulation):
            indices = kit.batch_indices(count, config.batch_size, step, micro, config.seed)
            generator = torch.Generator().manual_seed(config.seed * 7_919 + step * 131 + micro)
            t = torch.randint(0, len(sigmas), (config.batch_size,), generator=generator)
            drop = torch.rand(config.batch_size, generator=generator) < caption_dropout
            x0 = data.latents[indices]                                         # (B, F, C, h, w)
            noise = torch.randn(x0.shape, generator=generator)
            sigma = sigmas[t].view(-1, 1, 1, 1, 1)
            x = (x0 + sigma * noise).flatten(0, 1).to(device)                  # (B·F, C, h, w), clip-major
            sigma_rows = sigma.view(-1).repeat_interleave(frames).to(device)   # (B·F,)
            conditioning = {k: v.to(device) for k, v in _batch(data, indices, drop).items()}
            with frames_context(frames):
                denoised = denoiser(x, sigma_rows, **conditioning)
            target = x0.flatten(0, 1).to(device)
            loss = (((denoised.float() - target) / sigma_rows.view(-1, 1, 1, 1)) ** 2).mean()
            (loss / config.grad_accumulation).backward()
            total += float(loss.detach()) / config.grad_accumulation
        grad_norm = kit.optimiser_step(parameters, optimiser, config, step)
        if ema is not None:
            ema.update(modules)
        losses.append(total)
        done = step + 1
        if config.checkpoint_every and done % config.checkpoint_every == 0 and done < config.steps:
            kit.checkpoint(run, config, done, modules, optimiser, ema)
        progress(done, config.steps, {"loss": round(total, 5), "grad_norm": round(grad_norm, 4),
                                      "lr": optimiser.param_groups[0]["lr"]})
    if config.steps > start:
        kit.checkpoint(run, config, config.steps, modules, optimiser, ema)
    if ema is not None:
        modules.load_state_dict(ema.shadow, strict=False)      # copied into the modules' own dtype
    modules.eval()
    tail = losses[-50:]
    return {"steps": config.steps, "resumed_at": start, "final_loss": sum(tail) / len(tail) if tail else None}


def save_motion_module(path: Path, modules: MotionModuleSet, extra: dict | None = None,
                       dtype: torch.dtype = torch.float16) -> None:
    """Write `modules` to `path`: AnimateDiff's original keys (fp16 by default), config + `extra` as metadata."""
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in modules.state_dict().items()}
    metadata = {"format": FORMAT, "config": json.dumps(asdict(modules.config)),
                "heads": str(modules.config.heads), "norm_groups": str(modules.config.norm_groups)}
    if extra:
        metadata["training"] = json.dumps(extra, default=str)
    save_file(state, str(path), metadata=metadata)


def config_from_metadata(metadata: dict | None) -> MotionConfig | None:
    """The MotionConfig a file written by save_motion_module records (None for other files)."""
    if not metadata or metadata.get("format") != FORMAT or "config" not in metadata:
        return None
    try:
        raw = json.loads(metadata["config"])
        raw["channels"] = tuple(raw["channels"])
        return MotionConfig(**raw)
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        reason = f"{type(exc).__name__}: {str(exc)[:200]}"
        raise MotionModuleError("motion_module", f"its metadata config is not a motion-module config ({reason}); "
                                                 f"fix or remove it") from None
