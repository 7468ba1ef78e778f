"""Rectified-flow training of an MMDiT (SD3's objective) on precomputed latents and text (plain torch).

Reference: Esser et al. 2024, "Scaling Rectified Flow Transformers for High-Resolution Image
Synthesis" (SD3): §2 (flow matching, eq. 1-3), §3.1 (rectified flow x_t = (1 - t) x0 + t ε with
the velocity target v = ε - x0), §3.1 "Tailored SNR samplers" (logit-normal t, eq. 19) and the
DiT initialisation (Peebles & Xie 2023, "adaLN-Zero").

    flow_targets(x0, noise, t)        (x_t, v): the noised latent and the velocity the net must predict
    sample_flow_times(n, generator)   training times: logit-normal (SD3's "rf/lognorm(0, 1)") or uniform
    logit_normal_density(t)           the density of those times (for tests and the report)
    init_mmdit_weights(mmdit)         DiT's initialisation: Xavier linears, adaLN-Zero (every block
                                      starts as the identity), a zero output layer
    FlowData                          latents (N, C, h, w) and the text conditioning of every caption
                                      (context (N, T, D), pooled y (N, D)) and of the empty prompt
    train_flow(...)                   the loop: AdamW + warm-up/cosine lr, EMA, bf16 autocast, caption
                                      dropout (the empty prompt, for CFG), loss by time bucket, exact resume
                                      (TrainingRun from trainer.py)

The network sees ``net(x_t, 1000 t, context=, y=)`` -- SD3's time scale, the one the sampling
adapter (nodes/sampling/denoisers.py FlowTimeMap) feeds it -- and predicts v; the sampler recovers
x0 = x_t - t v. Batches, times, noise and dropped captions are pure functions of (seed, step), so
a resumed run continues exactly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

from .trainer import (EMA, Progress, TrainConfig, TrainingRun, _autocast, _batch_indices, _optimiser_step,
                      _loss_buckets, _start_or_resume, lr_at)

TimeSampling = Literal["logit_normal", "uniform"]
NET_TIME_SCALE = 1000.0   # SD3 nets take t * 1000 (FlowTimeMap's multiplier)


def flow_targets(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t, v): x_t = (1 - t) x0 + t ε and v = dx_t/dt = ε - x0 (SD3 §3.1); t has one value per batch item."""
    if t.ndim != 1 or t.shape[0] != x0.shape[0]:
        raise ValueError(f"t: expected one time per batch item ({x0.shape[0]},), got shape {tuple(t.shape)}")
    if noise.shape != x0.shape:
        raise ValueError(f"noise: expected the latents' shape {tuple(x0.shape)}, got {tuple(noise.shape)}")
    s = t.to(x0.dtype).view(-1, *([1] * (x0.ndim - 1)))
    return (1 - s) * x0 + s * noise, noise - x0


def sample_flow_times(n: int, generator: torch.Generator, distribution: TimeSampling = "logit_normal",
                      mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """n training times in (0, 1): sigmoid(N(mean, std²)) (SD3 eq. 19, "lognorm") or uniform."""
    if distribution == "logit_normal":
        if not std > 0:
            raise ValueError(f"std: the logit-normal spread must be positive, got {std}")
        return torch.sigmoid(mean + std * torch.randn(n, generator=generator))
    if distribution == "uniform":
        return torch.rand(n, generator=generator).clamp(1e-5, 1 - 1e-5)
    raise ValueError(f"distribution must be 'logit_normal' or 'uniform', got {distribution!r}")


def logit_normal_density(t: torch.Tensor, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """π(t) = 1 / (std √(2π)) · 1 / (t (1 - t)) · exp(-(logit t - mean)² / (2 std²))  (SD3 eq. 19)."""
    logit = torch.log(t) - torch.log1p(-t)
    return torch.exp(-(logit - mean) ** 2 / (2 * std ** 2)) / (std * math.sqrt(2 * math.pi) * t * (1 - t))


@torch.no_grad()
def init_mmdit_weights(mmdit: nn.Module, generator: torch.Generator | None = None) -> None:
    """DiT's initialisation for training from scratch: Xavier-uniform linears with zero biases, the patch
    embedding like a linear, N(0, 0.02) time/text embedders, and zero adaLN modulations and output layer
    (adaLN-Zero: every block starts as the identity, so early training is stable at a high learning rate)."""
    def xavier(weight: torch.Tensor) -> None:
        fan_out, fan_in = weight.shape[0], weight[0].numel()
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        weight.copy_(torch.rand(weight.shape, generator=generator) * 2 * bound - bound)

    for module in mmdit.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            xavier(module.weight)
            if module.bias is not None:
                module.bias.zero_()
    for embedder in (mmdit.t_embedder, mmdit.y_embedder):
        for layer in (embedder.mlp[0], embedder.mlp[2]):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * 0.02)
    for block in mmdit.joint_blocks:
        for stream in (block.context_block, block.x_block):
            stream.adaLN_modulation[-1].weight.zero_()
            stream.adaLN_modulation[-1].bias.zero_()
    final = mmdit.final_layer
    final.adaLN_modulation[-1].weight.zero_()
    final.adaLN_modulation[-1].bias.zero_()
    final.linear.weight.zero_()
    final.linear.bias.zero_()


@dataclass
class FlowData:
    """Training data for a frozen text encoder: latents and the conditioning of every caption.

    latents (N, C, h, w) already scaled (the VAE's encode); context (N, T, D) and y (N, Dy) exactly
    what the model's text encoder gives at inference; empty_context (T, D) / empty_y (Dy) those of
    the empty prompt (the unconditional input that caption dropout trains).
    """

    latents: torch.Tensor
    context: torch.Tensor
    y: torch.Tensor
    empty_context: torch.Tensor
    empty_y: torch.Tensor

    def __post_init__(self) -> None:
        n = len(self.latents)
        if len(self.context) != n or len(self.y) != n:
            raise ValueError(f"latents ({n}), context ({len(self.context)}) and y ({len(self.y)}) must have the "
                             f"same count")
        if tuple(self.empty_context.shape) != tuple(self.context.shape[1:]) or \
                tuple(self.empty_y.shape) != tuple(self.y.shape[1:]):
            raise ValueError("empty_context / empty_y must have the shape of one item of context / y")


def flow_batch(data: FlowData, config: TrainConfig, step: int, micro: int, caption_dropout: float,
               time_sampling: TimeSampling = "logit_normal", mean: float = 0.0,
               std: float = 1.0) -> tuple[torch.Tensor, ...]:
    """One micro-batch, a pure function of (seed, step, micro): (t, x_t, v, context, y) on the CPU."""
    idx = _batch_indices(len(data.latents), config.batch_size, step, micro, config.seed)
    generator = torch.Generator().manual_seed(config.seed * 1_000_033 + step * 131 + micro)
    x0 = data.latents[idx].float()
    context, y = data.context[idx].float(), data.y[idx].float()
    dropped = torch.rand(len(idx), generator=generator) < caption_dropout
    context[dropped] = data.empty_context.float()
    y[dropped] = data.empty_y.float()
    t = sample_flow_times(len(idx), generator, time_sampling, mean, std)
    noise = torch.randn(x0.shape, generator=generator)
    x_t, v = flow_targets(x0, noise, t)
    return t, x_t, v, context, y


def train_flow(mmdit: nn.Module, data: FlowData, config: TrainConfig, progress: Progress,
               run: TrainingRun | None = None, *, caption_dropout: float = 0.1,
               time_sampling: TimeSampling = "logit_normal", logit_mean: float = 0.0, logit_std: float = 1.0,
               time_buckets: int = 10) -> dict:
    """Train `mmdit` (velocity prediction) on `data` with the rectified-flow objective; EMA weights end up in it.

    Loss: mean over the batch of ||net(x_t, 1000 t, context, y) - (ε - x0)||² (SD3 eq. 6 with the
    rectified-flow weighting, i.e. plain velocity MSE under logit-normal t). Returns a report with the
    final loss and the mean loss per time bucket (t in [0, 0.1), ...: where the model struggles).
    """
    run = run or TrainingRun(None, {})
    torch.manual_seed(config.seed)
    optimiser, ema, start = _start_or_resume(mmdit, config, run)
    device = next(mmdit.parameters()).device
    bucket_sum, bucket_count = _loss_buckets(run, time_buckets)
    mmdit.train()
    info: dict = dict(run.last_info)
    for step in range(start, config.steps):
        for micro in range(config.grad_accumulation):
            t, x_t, v, context, y = flow_batch(data, config, step, micro, caption_dropout, time_sampling,
                                               logit_mean, logit_std)
            with _autocast(config, device):
                prediction = mmdit(x_t.to(device), (t * NET_TIME_SCALE).to(device), context=context.to(device),
                                   y=y.to(device))
            per_item = (prediction.float() - v.to(device)).pow(2).mean(dim=tuple(range(1, v.ndim)))
            loss = per_item.mean()
            (loss / config.grad_accumulation).backward()
            bucket = (t * time_buckets).long().clamp(0, time_buckets - 1)
            bucket_sum.index_add_(0, bucket, per_item.detach().double().cpu())
            bucket_count.index_add_(0, bucket, torch.ones_like(bucket, dtype=torch.float64))
        info = {"loss": loss.item(), "lr": lr_at(step, config),
                "grad_norm": _optimiser_step(list(mmdit.parameters()), optimiser, config, step)}
        if ema is not None:
            ema.update(mmdit)
        done = step + 1
        if done == config.steps or (config.checkpoint_every and done % config.checkpoint_every == 0):
            run.save({"step": done, "model": mmdit.state_dict(), "optimiser": optimiser.state_dict(),
                      "ema": ema.shadow if ema else None, "info": info,
                      "loss_buckets": torch.stack([bucket_sum, bucket_count])})
        progress(done, config.steps, info)
    if ema is not None:
        ema.copy_to(mmdit)
    mmdit.eval()
    by_time = {f"{i / time_buckets:.1f}-{(i + 1) / time_buckets:.1f}":
               (float(bucket_sum[i] / bucket_count[i]) if bucket_count[i] else None) for i in range(time_buckets)}
    return {**info, "loss_by_time": by_time, "steps": config.steps, "objective": "rectified_flow_velocity",
            "time_sampling": time_sampling, "config": asdict(config)}


__all__ = ["FlowData", "NET_TIME_SCALE", "TimeSampling", "flow_batch", "flow_targets", "init_mmdit_weights",
           "logit_normal_density", "sample_flow_times", "train_flow", "EMA"]
