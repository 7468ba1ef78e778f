"""A PointNet shape classifier: the judge of the text-to-points benchmark ("is it the shape the prompt asked for?").

PointNet (Qi et al. 2017, the classification network without the input/feature transforms): a shared
per-point MLP 3 → 64 → 128 → 256, a max over points (order- and count-invariant), and an MLP to the
6 solids. Clouds are normalised first (centred on the 2nd-98th percentile box, largest half-extent 1),
so the classifier judges shape, not size or position; stretches are kept (a tall cube is still a cube).

Training data are the procedural shapes of every spec (the judge is not the generator, so the
held-out combinations are fine here), with the imperfections of generated clouds as augmentation:
Gaussian jitter (σ up to 0.08 of the half-extent), 0-3 % stray points (up to 1.4 × the half-extent
away), 256-1024 points.

    ShapeClassifier               the network: logits = model(points (B, N, 3))
    normalise_xyz(points)         the normalisation above
    make_classifier_batch(...)    one augmented batch, a pure function of (seed, step)
    train_classifier(...)         Adam, cross-entropy; returns the trained model and accuracy on fresh clouds
    classify(model, clouds)       predicted shape names
    save_classifier / load_classifier   safetensors with the shape names in the metadata
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .shapes import SHAPES, all_specs, sample_spec

CLASSIFIER_FORMAT = "nodegraph_threed.shape_classifier/1"


class ShapeClassifier(nn.Module):
    """PointNet classifier over xyz: shared MLP, max pool, MLP head."""

    def __init__(self, classes: int = len(SHAPES), width: int = 256):
        super().__init__()
        self.point_mlp = nn.Sequential(nn.Linear(3, 64), nn.ReLU(), nn.Linear(64, 128), nn.ReLU(),
                                       nn.Linear(128, width))
        self.head = nn.Sequential(nn.Linear(width, 128), nn.ReLU(), nn.Linear(128, classes))

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        features = self.point_mlp(normalise_xyz(points[..., :3]))                    # (B, N, width)
        return self.head(features.max(dim=1).values)                                  # (B, classes)


def normalise_xyz(xyz: torch.Tensor) -> torch.Tensor:
    """Centre each cloud (B, N, 3) on its robust bounding box (2nd-98th percentiles per axis, so a few
    stray points do not move or shrink it) and scale its largest half-extent to 1."""
    low, high = xyz.quantile(0.02, dim=1, keepdim=True), xyz.quantile(0.98, dim=1, keepdim=True)
    half = ((high - low) / 2).amax(-1, keepdim=True).clamp_min(1e-6)
    return (xyz - (low + high) / 2) / half


def make_classifier_batch(batch_size: int, seed: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(clouds (B, N, 3), labels (B,)) with jitter and outliers; N drawn in 256 … 1024 per batch."""
    generator = torch.Generator().manual_seed(seed * 7919 + step)
    specs = all_specs()
    count = int(torch.randint(256, 1025, (), generator=generator))
    clouds, labels = [], []
    for _ in range(batch_size):
        spec = specs[int(torch.randint(len(specs), (), generator=generator))]
        xyz = sample_spec(spec, count, generator, size_jitter=0.1)[:, :3]
        half = float((xyz.amax(0) - xyz.amin(0)).max() / 2)
        xyz = xyz + torch.randn(xyz.shape, generator=generator) * half * 0.08 * float(torch.rand((), generator=generator))
        outliers = int(count * 0.03 * float(torch.rand((), generator=generator)))
        if outliers:                                   # strays around the shape, some outside its box
            xyz[:outliers] = (torch.rand(outliers, 3, generator=generator) * 2 - 1) * half * 1.4
        clouds.append(xyz)
        labels.append(SHAPES.index(spec.shape))
    return torch.stack(clouds), torch.tensor(labels)


def train_classifier(steps: int = 600, batch_size: int = 32, lr: float = 2e-3, seed: int = 0,
                     progress: Callable[[int, int, float], None] | None = None,
                     eval_batches: int = 10) -> tuple[ShapeClassifier, float]:
    """Train on fresh augmented batches; returns (model in eval mode, accuracy on `eval_batches` unseen batches)."""
    torch.manual_seed(seed)
    model = ShapeClassifier()
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    for step in range(steps):
        clouds, labels = make_classifier_batch(batch_size, seed, step)
        loss = F.cross_entropy(model(clouds), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if progress:
            progress(step + 1, steps, loss.item())
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for k in range(eval_batches):
            clouds, labels = make_classifier_batch(batch_size, seed + 1, 10_000_000 + k)
            correct += int((model(clouds).argmax(1) == labels).sum())
            total += len(labels)
    return model, correct / total


@torch.no_grad()
def classify(model: ShapeClassifier, clouds: torch.Tensor) -> list[str]:
    """Shape names of clouds (B, N, ≥3)."""
    return [SHAPES[int(k)] for k in model(clouds[..., :3].float()).argmax(1)]


def save_classifier(path: str | Path, model: ShapeClassifier, accuracy: float) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"format": CLASSIFIER_FORMAT, "shapes": json.dumps(SHAPES), "accuracy": f"{accuracy:.4f}"})


def load_classifier(path: str | Path) -> ShapeClassifier:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    if metadata.get("format") != CLASSIFIER_FORMAT or tuple(json.loads(metadata.get("shapes", "[]"))) != SHAPES:
        raise ValueError(f"{path}: not a shape classifier for this plugin's shapes ({metadata.get('format')!r})")
    model = ShapeClassifier()
    model.load_state_dict(tensors)
    return model.eval()
