"""Training the tiny text-to-audio model on synthesised captioned sounds (plain torch; no engine imports).

The loop uses the training kit's pieces (``api.training()``: TrainConfig, lr_at through optimiser_step,
EMA, TrainingRun for checkpoints and exact resume), passed in as ``kit`` so this module never imports
the engine. Batches are a pure function of (seed, step): sounds are synthesised on the fly
(synth.sample_spec / synthesize), so a resumed run sees exactly the batches it would have seen.

Objective: rectified flow (denoiser.py). t is drawn logit-normal (SD3's "lognorm(0, 1)") for 80 % of
the batch and uniform for 20 % (so the ends of the path are trained too); x_t = (1 - t) x0 + t ε. The net
predicts x̂0 (its velocity is (x_t − x̂0) / t), and the loss is the velocity loss ‖v̂ − (ε − x0)‖² =
‖x̂0 − x0‖² / t² with the weight 1 / t² capped at MAX_WEIGHT (16: t < 0.25 weighs as t = 0.25), so nearly
clean inputs do not dominate. Captions are dropped (→ the empty prompt) with probability
`caption_dropout`, which is what classifier-free guidance needs; a dropped caption drops its beat-phase
features too (beat.py: zeros, as the empty prompt encodes), so the unconditional branch knows no beat.

    make_batch(step, batch_size, seed)   → (x0 (B, 1, F, T), tokens (B, L), beat (B, 4, T), specs); beat holds
                                           the true click phase of each synthesised click track
    train_audio_model(net, kit, config, run, progress, caption_dropout) → the EMA net (eval mode)
"""

from __future__ import annotations

import random
from typing import Any, Callable

import numpy as np
import torch

from . import features, synth
from .beat import batch_beat_features
from .text import tokenize

Progress = Callable[[int, int, dict], None]
TIME_SCALE = 1000.0
MAX_WEIGHT = 16.0


def make_batch(step: int, batch_size: int, seed: int, micro: int = 0,
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list]:
    """A deterministic batch: synthesised sounds → spectrogram latents, their captions → tokens, their click
    times → beat-phase features (zeros for sounds without a beat)."""
    rng = random.Random(seed * 1_000_003 + step * 97 + micro)
    specs = [synth.sample_spec(rng) for _ in range(batch_size)]
    waves, first_clicks = zip(*(synth.synthesize_timed(spec, rng) for spec in specs))
    x0 = features.encode(torch.from_numpy(np.stack(waves)))
    tokens = torch.tensor([tokenize(synth.caption(spec)) for spec in specs])
    beat = batch_beat_features(specs, first_clicks, features.DEFAULT_SPEC)
    return x0, tokens, beat, specs


def flow_loss(net: torch.nn.Module, x0: torch.Tensor, tokens: torch.Tensor, generator: torch.Generator,
              caption_dropout: float, beat: torch.Tensor | None = None) -> torch.Tensor:
    """Rectified-flow velocity loss on one batch (noise, times and dropout from `generator`); `beat` (B, 4, T) is
    zeroed with the dropped captions (a net without beat conditioning ignores it)."""
    b = x0.shape[0]
    noise = torch.randn(x0.shape, generator=generator)
    logit_normal = torch.sigmoid(torch.randn(b, generator=generator))
    uniform = torch.rand(b, generator=generator)
    t = torch.where(torch.rand(b, generator=generator) < 0.8, logit_normal, uniform).clamp(1e-4, 1 - 1e-4)
    drop = torch.rand(b, generator=generator) < caption_dropout
    tokens = tokens.clone()
    tokens[drop] = torch.tensor(tokenize(""))
    x_t = (1 - t.view(-1, 1, 1, 1)) * x0 + t.view(-1, 1, 1, 1) * noise
    if beat is not None:
        beat = beat.masked_fill(drop.view(-1, 1, 1), 0.0)                       # (B, 4, T)
    x0_hat = net.predict_x0(x_t, t * TIME_SCALE, tokens, beat)
    weight = (1.0 / t ** 2).clamp(max=MAX_WEIGHT).view(-1, 1, 1, 1)
    return torch.mean(weight * (x0_hat - x0) ** 2)


def train_audio_model(net: torch.nn.Module, kit: Any, config: Any, run: Any, progress: Progress | None = None,
                      caption_dropout: float = 0.1) -> torch.nn.Module:
    """Train `net` for `config.steps` optimiser steps (resuming `run` if it holds this run's state).

    Args:
        net: an AudioDenoiser (trained in place; the EMA weights are loaded into it at the end).
        kit: the training kit (``api.training()``).
        config: a kit.TrainConfig.
        run: a kit.TrainingRun (checkpoints every config.checkpoint_every steps and at the end).
        progress: progress(step, total, info) after every step (info: loss, lr).
        caption_dropout: probability of training a sample on the empty prompt (for CFG).
    Returns:
        `net` with the EMA weights (or the last weights when EMA is off), in eval mode.
    """
    net.train()
    optimiser, ema, start = kit.start_or_resume(net, config, run)
    for step in range(start, config.steps):
        loss_total = 0.0
        for micro in range(config.grad_accumulation):
            x0, tokens, beat, _ = make_batch(step, config.batch_size, config.seed, micro)
            generator = torch.Generator().manual_seed(config.seed * 7_919 + step * 31 + micro)
            loss = flow_loss(net, x0, tokens, generator, caption_dropout, beat) / config.grad_accumulation
            loss.backward()
            loss_total += float(loss.detach())
        norm = kit.optimiser_step(list(net.parameters()), optimiser, config, step)
        if ema is not None:
            ema.update(net)
        done = step + 1
        kit.checkpoint(run, config, done, net, optimiser, ema)
        if progress is not None:
            progress(done, config.steps, {"loss": loss_total, "lr": kit.lr_at(step, config), "grad_norm": norm})
    if ema is not None:
        ema.copy_to(net)
    return net.eval()
