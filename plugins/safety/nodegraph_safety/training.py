"""Training a tiny safety checker (the released architecture at tiny size) on tiny-world renders.

The checker is ``checker.SafetyChecker`` with a small CLIP vision tower (``TINY_CONFIG``: 64 px
input, 8-px patches, width 96, 4 layers) and one concept embedding per concept rule. Its decision
is the released one: cosine(image embedding, concept embedding) minus the concept's threshold
> 0. Training fits tower, projection, concept embeddings and thresholds jointly with a binary
cross-entropy on ``TEMPERATURE * max_k(cos_k - threshold_k)`` (the max over concepts mirrors
"any concept fires").

Data (``render_examples``): one third positives (a one-object scene forced to match a concept
rule, ``world.sample_held_out_scene``), one third negatives (a scene no rule matches, a third of
them with two objects), one third unconstrained two-object scenes labelled by the predicate (a
star beside a circle is unsafe; a circle beside a square is not). ``augment`` blurs, shifts,
jitters colours and adds noise so the checker also reads the softer images a diffusion model
draws.

After training, ``calibrate_thresholds`` moves each concept's threshold to the cut that
classifies a fresh calibration set best (the decision rule itself is unchanged).

Map: ``TINY_CONFIG``, ``mixed_scene`` (the mix above), ``render_examples``, ``augment``,
``train_checker`` (-> checker, history; ``extra`` mixes in a second example set),
``calibrate_thresholds``, ``evaluate`` (accuracy, precision, recall, counts). Plain torch + the world
library.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from ._world import world

from .checker import CheckerConfig, SafetyChecker, preprocess
from .clip_vision import VisionConfig
from .concepts import UnsafeConcept

__all__ = ["TEMPERATURE", "TINY_CONFIG", "augment", "calibrate_thresholds", "evaluate", "mixed_scene",
           "render_examples", "train_checker"]

# 64 px renders, 8-px patches -> 64 tokens + class token; ~0.45 M parameters (1.8 MB in fp32).
TINY_CONFIG = CheckerConfig(
    vision=VisionConfig(image_size=64, patch_size=8, width=96, layers=4, heads=4, intermediate=192),
    projection_dim=64,
    concepts=1,
    special_care=0,
)
# Cosines live in [-1, 1]; a logit scale of 10 lets the sigmoid saturate (CLIP learns ~100 for softmax).
TEMPERATURE = 10.0


def mixed_scene(concept: UnsafeConcept, rng: random.Random, index: int):
    """Scene ``index`` of the training mix: forced to match the concept (index % 3 == 0), matching no rule
    (1; a third of them with two objects), or an unconstrained two-object scene (2)."""
    kind = index % 3
    if kind == 0:
        return world.sample_held_out_scene(rng, concept.rules)
    if kind == 1:
        return world.sample_scene(rng, concept.rules, two_object_fraction=1 / 3)
    return world.sample_scene(rng, (), two_object_fraction=1.0)


def render_examples(concept: UnsafeConcept, count: int, seed: int = 0, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``count`` labelled renders -> (uint8 images (N, size, size, 3), bool labels (N,)); deterministic per seed."""
    images = np.empty((count, size, size, 3), dtype=np.uint8)
    labels = np.empty(count, dtype=bool)
    for index in range(count):
        scene = mixed_scene(concept, random.Random(f"safety/{seed}/{index}"), index)
        images[index] = world.render(scene, size)
        labels[index] = concept.matches(scene)
    return images, labels


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(2 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-x**2 / (2 * sigma**2))
    return kernel / kernel.sum()


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """IMAGE batch (B, H, W, 3) in [0, 1] -> randomly blurred, shifted (<= 3 px), colour-jittered, noisy copy."""
    batch = images.shape[0]
    x = images.permute(0, 3, 1, 2)  # (B, 3, H, W)
    sigma = float(torch.rand((), generator=generator)) * 0.6 + 0.1  # more blurs a small star into a pentagon
    kernel = _gaussian_kernel(sigma)
    pad = kernel.numel() // 2
    blurred = F.conv2d(F.pad(x.reshape(-1, 1, *x.shape[-2:]), (pad, pad, 0, 0), mode="replicate"),
                       kernel.view(1, 1, 1, -1))
    blurred = F.conv2d(F.pad(blurred, (0, 0, pad, pad), mode="replicate"), kernel.view(1, 1, -1, 1))
    keep = (torch.rand(batch, 1, 1, 1, generator=generator) < 0.3).float()  # 30 % stay sharp
    x = keep * x + (1 - keep) * blurred.view_as(x)
    shift = torch.randint(-3, 4, (2,), generator=generator)
    x = torch.roll(x, shifts=(int(shift[0]), int(shift[1])), dims=(2, 3))
    gain = 1 + (torch.rand(batch, 3, 1, 1, generator=generator) - 0.5) * 0.2
    bias = (torch.rand(batch, 3, 1, 1, generator=generator) - 0.5) * 0.1
    noise = torch.randn(x.shape, generator=generator) * torch.rand(batch, 1, 1, 1, generator=generator) * 0.05
    return (x * gain + bias + noise).clamp(0, 1).permute(0, 2, 3, 1)


def _logits(checker: SafetyChecker, clip_input: torch.Tensor) -> torch.Tensor:
    """TEMPERATURE * max over concepts of (cosine - threshold): > 0 exactly when the checker flags."""
    concept_cos, _ = checker.concept_similarity(checker.embed(clip_input))
    return TEMPERATURE * (concept_cos - checker.concept_embeds_weights).max(dim=1).values


def _one_cycle(optimiser: torch.optim.Optimizer, lr: float, steps: int):
    """One-cycle schedule, 5 % warm-up (at least two steps); runs of under 4 steps keep ``lr`` constant
    (torch's OneCycleLR divides by zero when its warm-up or decay phase is shorter than a step)."""
    if steps < 4:
        return torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: 1.0)
    return torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps,
                                               pct_start=max(0.05, 2 / steps))


def train_checker(concept: UnsafeConcept, images: np.ndarray, labels: np.ndarray, steps: int = 1500,
                  batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
                  progress: Callable[[int, int, float], None] | None = None,
                  extra: tuple[np.ndarray, np.ndarray, float] | None = None,
                  patch_size: int = 8) -> tuple[SafetyChecker, list[float]]:
    """Fit a TINY_CONFIG checker (one concept embedding per rule) -> (checker in eval mode, loss per step).

    ``extra`` = (images, labels, fraction): a second example set (e.g. a model's generated images,
    generated.py) from which ``round(fraction * batch_size)`` of every batch is drawn.
    ``patch_size``: the vision tower's patch side (8: TINY_CONFIG's 64 tokens; 4: 256 tokens, so a
    16-px shape spans 4 x 4 patches instead of 2 x 2, at ~2.5x the time per step on a CPU).
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    config = replace(TINY_CONFIG, vision=replace(TINY_CONFIG.vision, patch_size=patch_size),
                     concepts=len(concept.rules), concept_names=(concept.phrase,) * len(concept.rules))
    checker = SafetyChecker(config)
    with torch.no_grad():  # CLIP-like init: small random concept directions, thresholds at 0
        checker.concept_embeds.normal_(0, 0.02)
        checker.concept_embeds_weights.zero_()
        for module in checker.modules():
            if isinstance(module, torch.nn.Linear):
                torch.nn.init.normal_(module.weight, std=0.02)
                if module.bias is not None:
                    torch.nn.init.zeros_(module.bias)
    checker.train().requires_grad_(True)
    pixels = torch.from_numpy(images)  # uint8 (N, H, W, 3); each batch becomes float in [0, 1] when drawn
    targets = torch.from_numpy(labels).float()
    extra_count = 0
    if extra is not None and len(extra[1]):
        extra_pixels = torch.from_numpy(extra[0])
        extra_targets = torch.from_numpy(extra[1]).float()
        extra_count = min(batch_size, round(extra[2] * batch_size))
    optimiser = torch.optim.AdamW(checker.parameters(), lr=lr, weight_decay=0.01)
    schedule = _one_cycle(optimiser, lr, steps)
    history = []
    for step in range(steps):
        index = torch.randint(0, len(targets), (batch_size - extra_count,), generator=generator)
        batch, batch_targets = pixels[index].float().div(255), targets[index]
        if extra_count:
            extra_index = torch.randint(0, len(extra_targets), (extra_count,), generator=generator)
            batch = torch.cat([batch, extra_pixels[extra_index].float().div(255)])
            batch_targets = torch.cat([batch_targets, extra_targets[extra_index]])
        clip_input = preprocess(augment(batch, generator), checker.image_size)
        loss = F.binary_cross_entropy_with_logits(_logits(checker, clip_input), batch_targets)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        history.append(loss.item())
        if progress is not None:
            progress(step + 1, steps, history[-1])
    return checker.eval().requires_grad_(False), history


@torch.no_grad()
def calibrate_thresholds(checker: SafetyChecker, images: np.ndarray, labels: np.ndarray) -> float:
    """Set each concept's threshold to the cut that classifies ``images`` best (as SD's thresholds were set
    per concept); returns the accuracy reached. One concept per rule: each is fitted on its own rule's data."""
    pixels = torch.from_numpy(images)  # uint8; each chunk becomes float in [0, 1]
    concept_cos = torch.cat([checker.concept_similarity(checker.embed(preprocess(pixels[i:i + 256].float() / 255,
                                                                                 checker.image_size)))[0]
                             for i in range(0, len(pixels), 256)])  # (N, K)
    targets = torch.from_numpy(labels)
    for k in range(concept_cos.shape[1]):
        others = torch.cat([concept_cos[:, :k], concept_cos[:, k + 1:]], dim=1)
        fired_elsewhere = (others - torch.cat([checker.concept_embeds_weights[:k],
                                               checker.concept_embeds_weights[k + 1:]])).gt(0).any(dim=1)
        values = concept_cos[:, k].sort().values
        cuts = torch.cat([values[:1] - 1e-3, (values[1:] + values[:-1]) / 2, values[-1:] + 1e-3])
        accuracy = torch.stack([((concept_cos[:, k] > cut) | fired_elsewhere).eq(targets).float().mean()
                                for cut in cuts])
        checker.concept_embeds_weights[k] = cuts[int(accuracy.argmax())]
    flagged = (concept_cos - checker.concept_embeds_weights).gt(0).any(dim=1)
    return float(flagged.eq(targets).float().mean())


@torch.no_grad()
def evaluate(checker: SafetyChecker, images: torch.Tensor, labels: torch.Tensor | np.ndarray,
             batch_size: int = 256) -> dict[str, float]:
    """IMAGE (N, H, W, 3) in [0, 1] + bool labels -> accuracy, precision, recall (of "unsafe") and counts."""
    labels = torch.as_tensor(labels, dtype=torch.bool)
    flagged = torch.cat([checker.check_images(images[i:i + batch_size]).flagged
                         for i in range(0, images.shape[0], batch_size)])
    true_positive = int((flagged & labels).sum())
    return {
        "accuracy": float((flagged == labels).float().mean()),
        "precision": true_positive / max(1, int(flagged.sum())),
        "recall": true_positive / max(1, int(labels.sum())),
        "n": int(labels.numel()),
        "positives": int(labels.sum()),
        "flagged": int(flagged.sum()),
    }
