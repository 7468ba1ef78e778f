"""Checker training examples drawn by a diffusion model: what the checker judges when it is used.

The checker trained on renders alone (``training.render_examples``) meets generated images only at
use: as ``SafetyFilter`` on finished images, and as SLD's gate (``sld.CheckerGate``) on the decoded
x0 predictions of the last sampling steps. On the second model it flagged 11 % of finished images
whose prompts asked for no star, and more of their mid-sampling predictions, and it missed stars at
96 and 80×48 px. These examples show it that distribution:

- prompts: tiny-world captions (every template) of scenes mixed as the render set mixes them — a
  third forced to match the concept, a third that match no rule (a third of those with two
  objects), a third unconstrained two-object scenes — at several image sizes;
- per sampling run, the CFG x0 prediction of every step with σ <= ``max_sigma`` (recorded by
  ``PredictionRecorder``, a guidance term that only looks) and the finished image, each decoded and
  cut to the checker's view (``checker.checker_view``: shortest side to 64, centre crop; a wide
  image is judged in several such squares, ``SafetyChecker.check_images``, and its centre square
  stands for them here);
- labels from the world detector on the **finished** image's view: whether what the model drew
  matches the concept (``detection_matches``). A mid-sampling prediction gets its run's label, so the
  checker learns to tell early where a run is going — the question the gate asks.

``group`` numbers the sampling runs, so a split by group keeps one run's predictions together
(``split_groups``).

Map: ``CheckerExamples`` (images, labels, groups, sigmas; ``subset``, ``concatenate``),
``example_scenes``, ``PredictionRecorder``, ``views_uint8`` (decoded images -> uint8 checker views),
``detection_matches``, ``label_views``, ``split_groups``, ``parse_sizes``. Plain torch + the world kit; the sampling itself is the node's (``nodes.py``,
through ``nodegraph.api``).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from nodegraph import api

from ._world import world
from .concepts import UnsafeConcept
from .training import mixed_scene

__all__ = ["CheckerExamples", "PredictionRecorder", "detection_matches", "example_scenes", "label_views",
           "parse_sizes", "split_groups", "views_uint8"]

MAX_SIDE = 512  # generated sizes are bounded (a 512-px tiny-world image already costs 64 times a 64-px one)


@dataclass(frozen=True)
class CheckerExamples:
    """Labelled checker views of generated images.

    images: uint8 (N, S, S, 3), the checker's view; labels: bool (N,), the concept is in the finished
    image; groups: int64 (N,), the sampling run each came from; sigmas: float32 (N,), the noise level
    of the prediction (0 for the finished image).
    """

    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    sigmas: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, keep: np.ndarray) -> CheckerExamples:
        return CheckerExamples(self.images[keep], self.labels[keep], self.groups[keep], self.sigmas[keep])

    @staticmethod
    def concatenate(parts: Sequence[CheckerExamples]) -> CheckerExamples:
        return CheckerExamples(*(np.concatenate([getattr(p, name) for p in parts])
                                 for name in ("images", "labels", "groups", "sigmas")))


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """'64x64, 96x96, 80x48' -> [(64, 64), (96, 96), (80, 48)] as (width, height); multiples of 8, 32 … 512."""
    sizes = []
    for part in (p.strip() for p in re.split(r"[,;]", text) if p.strip()):
        match = re.fullmatch(r"(\d{1,4})\s*[x×]\s*(\d{1,4})", part.lower())
        if not match:
            raise ValueError(f"sizes: {part!r} is not WIDTHxHEIGHT; write e.g. '64x64, 96x96, 80x48'")
        width, height = int(match[1]), int(match[2])
        for value in (width, height):
            if value % 8 or not 32 <= value <= MAX_SIDE:
                raise ValueError(f"sizes: {part!r}: each side must be a multiple of 8 from 32 to {MAX_SIDE}")
        sizes.append((width, height))
    if not sizes:
        raise ValueError("sizes: no size given; write e.g. '64x64, 96x96'")
    return sizes


def example_scenes(concept: UnsafeConcept, count: int, seed: int = 0) -> list[tuple[object, str]]:
    """``count`` (scene, caption) pairs of the renders' mix (``training.mixed_scene``), caption template drawn
    at random; deterministic."""
    pairs = []
    for index in range(count):
        rng = random.Random(f"safety-generated/{seed}/{index}")
        scene = mixed_scene(concept, rng, index)
        pairs.append((scene, world.caption(scene, rng.randrange(len(world.TEMPLATES)))))
    return pairs


class PredictionRecorder(api.GuidanceTerm):
    """A guidance term that corrects nothing: it keeps the CFG x0 prediction of each step with σ <= max_sigma.

    ``sink`` gets ``(sigma, denoised)`` once per step (a second-order sampler's later calls in a step
    are skipped), on the CPU.
    """

    def __init__(self, sink: list, max_sigma: float):
        self.sink = sink
        self.max_sigma = max_sigma
        self._step: int | None = None

    def __call__(self, state) -> None:
        step = state.step
        if step is not None and step == self._step:
            return None
        self._step = step
        sigma = float(state.sigma.max())
        if sigma <= self.max_sigma:
            self.sink.append((sigma, state.denoised.detach().float().cpu().clone()))
        return None


def detection_matches(concept: UnsafeConcept, detection) -> bool:
    """Whether the world detector's reading of an image matches the concept: any detected object (with the
    detected background) has every attribute of any rule — ``UnsafeConcept.matches`` on what was read."""
    for rule in concept.rules:
        wanted = dict(rule)
        if "background" in wanted and wanted.pop("background") != detection.background:
            continue
        if any(all(getattr(item, attribute) == value for attribute, value in wanted.items())
               for item in detection.objects):
            return True
    return False


def label_views(concept: UnsafeConcept, views: np.ndarray, classifier=None) -> np.ndarray:
    """uint8 views (N, S, S, 3) of finished images -> bool (N,): the detector reads the concept in them."""
    detections = world.detect_many(views, classifier)
    return np.array([detection_matches(concept, d) for d in detections], dtype=bool)


def split_groups(groups: np.ndarray, fractions: Sequence[float], seed: int = 0) -> list[np.ndarray]:
    """Boolean masks over the examples, one per fraction, splitting whole groups (sampling runs) at random."""
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must add up to 1, found {sum(fractions)}")
    unique = np.unique(groups)
    order = np.random.default_rng(seed).permutation(len(unique))
    bounds = np.round(np.cumsum([0.0, *fractions]) * len(unique)).astype(int)
    return [np.isin(groups, unique[order[start:end]]) for start, end in zip(bounds[:-1], bounds[1:])]


def views_uint8(images: torch.Tensor, size: int) -> np.ndarray:
    """IMAGE (B, H, W, 3) in [0, 1] -> uint8 checker views (B, size, size, 3)."""
    from .checker import checker_view

    return (checker_view(images, size) * 255).round().to(torch.uint8).numpy()
