"""A detector that knows the tiny world: reads a 64x64 image back into scene attributes.

It measures how well a text-to-image model draws what its tiny-world prompt asked for
(``benchmarks/quality.py``), and gives the features for a Fréchet distance between
generated and dataset images. docs/tiny_world.md records its measured ceiling.

Pipeline for one image (``detect``):

1. Background: per-channel median of the 2-px border ring -> nearest named colour.
2. Objects: pixels farther than ``COARSE_DISTANCE`` from the background RGB, split into
   8-connected components (smaller than ``MIN_AREA`` px dropped), largest first.
3. Per object: its RGB is the median of its most background-distant pixels (the flat
   interior) -> nearest named colour. Coverage ``t`` = projection of each pixel onto the
   background->object colour line (0 = background, 1 = object); the mask is ``t > 0.5``,
   which puts the edge where the renderer's anti-aliasing put it.
4. Size: larger side of the mask's bounding box vs the midpoint of ``SIZES``.
   Position: bounding-box centre -> nearest of ``POSITIONS`` (the renderer centres every
   shape's bounding box on its anchor).
5. Shape: ``WorldClassifier``, a 91k-parameter CNN on a 32x32 window around the object
   (coverage + RGB channels), trained in ~15-20 s on one CPU core on 4000 single-object
   renders with continuous sizes and positions, colour jitter, noise and blur, seed 0. Weights are cached in
   ``models/detectors/tiny_world_detector.safetensors`` (<1 MB) and retrained when the
   world's geometry or the detector changes (fingerprint in the file's metadata).

Main objects:

- ``detect(image) -> Detection``, ``detect_many(images)``; ``Detection.scene()``.
- ``score(detections, intended) -> dict``: per-attribute accuracy and all-correct.
- ``score_prompts(detections, prompts) -> dict``: the same on what partial prompts name
  (``world_captions.PromptSpec``), plus two-object attribute binding.
- ``features(images) -> (N, 64)``: the classifier's embedding of each image's largest
  object (64 = ``EMBEDDING_DIM``); ``frechet_distance(a, b)`` between two feature sets
  (Heusel et al. 2017, "GANs trained by a two time-scale update rule", eq. for FID:
  ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^{1/2})``).
- ``load_classifier`` / ``train_classifier``.
- ``DetectorError(ValueError)``: the module's one error type.

Images may be uint8 (H, W, 3) / (N, H, W, 3), float channels-first (3, H, W) / (N, 3, H, W)
in [-1, 1] (the ``TinyWorld`` tensor layout), float channels-last (N, H, W, 3) in [0, 1]
(the IMAGE port layout), or PIL images; other sizes are resized to 64x64.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import world

__all__ = [
    "ATTRIBUTES",
    "DEFAULT_WEIGHTS_PATH",
    "EMBEDDING_DIM",
    "DetectedObject",
    "Detection",
    "DetectorError",
    "WorldClassifier",
    "as_uint8_images",
    "detect",
    "detect_many",
    "features",
    "frechet_distance",
    "load_classifier",
    "score",
    "score_prompts",
    "train_classifier",
]

DETECTOR_VERSION = "2"
DEFAULT_WEIGHTS_PATH = Path(__file__).resolve().parents[2] / "models" / "detectors" / "tiny_world_detector.safetensors"

IMAGE_SIZE = world.REFERENCE_SIZE
BORDER = 2  # px of the frame sampled for the background
COARSE_DISTANCE = 40.0  # RGB distance that marks a pixel as "not background" (named colours are >= 112 apart)
MIN_AREA = 8  # px; smaller components are noise
INTERIOR_FRACTION = 0.85  # pixels within this fraction of an object's farthest distance count as interior
SIZE_THRESHOLD = sum(world.SIZES.values()) / len(world.SIZES)  # 23 px: midpoint of small (16) and large (30)
CROP = 32  # classifier window, px; a large (30 px) shape fits
EMBEDDING_DIM = 64
ATTRIBUTES = ("background", "colour", "shape", "size", "position")

_COLOUR_NAMES = tuple(world.COLOURS)
_COLOUR_TABLE = np.array([world.COLOURS[name] for name in _COLOUR_NAMES], dtype=np.float32)  # (10, 3)
_SIZE_NAMES = tuple(world.SIZES)
_POSITION_NAMES = tuple(world.POSITIONS)
_POSITION_TABLE = np.array([world.POSITIONS[name] for name in _POSITION_NAMES], dtype=np.float32)  # (5, 2)


class DetectorError(ValueError):
    """Input the detector cannot read (wrong image layout, mismatched lists, bad weights file)."""


# ----------------------------------------------------------------------------- images


def _to_uint8_hwc(image) -> np.ndarray:
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    array = image.detach().cpu().float().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim != 3 or 3 not in (array.shape[0], array.shape[-1]):
        raise DetectorError(f"image: expected (H, W, 3) or (3, H, W); found shape {tuple(array.shape)}.")
    if array.dtype == np.uint8:
        if array.shape[-1] != 3:
            raise DetectorError(f"image: uint8 images must be channels-last (H, W, 3); found {tuple(array.shape)}.")
        return array
    if array.shape[-1] == 3:  # channels-last float: IMAGE layout, [0, 1]
        return np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)
    return np.clip(np.rint((array.transpose(1, 2, 0) + 1.0) * 127.5), 0, 255).astype(np.uint8)  # [-1, 1]


def as_uint8_images(images) -> list[np.ndarray]:
    """Any supported image or batch -> list of uint8 (64, 64, 3) arrays (resized if needed)."""
    if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4:
        items = list(images)
    elif isinstance(images, (np.ndarray, torch.Tensor)) or hasattr(images, "convert"):
        items = [images]
    else:
        items = list(images)
    converted = []
    for item in items:
        array = _to_uint8_hwc(item)
        if array.shape[:2] != (IMAGE_SIZE, IMAGE_SIZE):
            from PIL import Image

            array = np.asarray(Image.fromarray(array).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BOX), dtype=np.uint8)
        converted.append(array)
    return converted


# ----------------------------------------------------------------------------- segmentation


def _nearest_colour(rgb: np.ndarray) -> str:
    return _COLOUR_NAMES[int(np.argmin(((_COLOUR_TABLE - rgb) ** 2).sum(axis=1)))]


def _label_components(mask: np.ndarray) -> np.ndarray:
    """8-connected component labels (0 = outside): every pixel ends with the largest
    pixel index (+1) of its component, by neighbourhood-max propagation plus pointer jumping."""
    labels = np.zeros(mask.shape, dtype=np.int64)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return labels
    window = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    height, width = window.shape
    current = np.where(window, np.arange(1, height * width + 1).reshape(height, width), 0)
    while True:
        padded = np.pad(current, 1)
        spread = current.copy()
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                np.maximum(spread, padded[dy : dy + height, dx : dx + width], out=spread)
        flat = np.where(window, spread, 0).reshape(-1)
        # A label is the index of a pixel of the same component; take that pixel's label too.
        flat = np.maximum(flat, np.where(flat > 0, flat[np.maximum(flat - 1, 0)], 0))
        spread = flat.reshape(height, width)
        if np.array_equal(spread, current):
            break
        current = spread
    labels[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = current
    return labels


def _dilate(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1)
    height, width = mask.shape
    return np.any([padded[dy : dy + height, dx : dx + width] for dy in (0, 1, 2) for dx in (0, 1, 2)], axis=0)


@dataclass(frozen=True)
class _Segment:
    """One object found by segmentation (internal)."""

    coverage: np.ndarray  # (64, 64) float32 in [0, 1], zero outside this object
    mask: np.ndarray  # (64, 64) bool, coverage > 0.5
    rgb: np.ndarray  # (3,)
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)


def _background_rgb(pixels: np.ndarray) -> np.ndarray:
    frame = np.concatenate(
        [
            pixels[:BORDER].reshape(-1, 3),
            pixels[-BORDER:].reshape(-1, 3),
            pixels[BORDER:-BORDER, :BORDER].reshape(-1, 3),
            pixels[BORDER:-BORDER, -BORDER:].reshape(-1, 3),
        ]
    )
    return np.median(frame, axis=0)


def _segment(pixels: np.ndarray, background: np.ndarray) -> list[_Segment]:
    """Objects of one image (float (64, 64, 3)), largest first."""
    offset = pixels - background
    distance = np.sqrt((offset**2).sum(axis=2))
    labels = _label_components(distance > COARSE_DISTANCE)
    found = []
    for label in np.unique(labels[labels > 0]):
        component = labels == label
        if component.sum() < MIN_AREA:
            continue
        inside = distance[component]
        interior = component & (distance >= INTERIOR_FRACTION * inside.max())
        rgb = np.median(pixels[interior], axis=0)
        direction = rgb - background
        coverage = (offset @ direction) / max(float(direction @ direction), 1e-6)
        coverage = np.clip(coverage, 0.0, 1.0) * _dilate(component)
        mask = coverage > 0.5
        if mask.sum() < MIN_AREA:
            continue
        rows, cols = np.nonzero(mask)
        bbox = (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)
        found.append(_Segment(coverage.astype(np.float32), mask, rgb, bbox))
    found.sort(key=lambda segment: -int(segment.mask.sum()))
    return found


def _crop(pixels: np.ndarray, background: np.ndarray, segment: _Segment | None) -> np.ndarray:
    """Classifier input (4, CROP, CROP): coverage and RGB in [-1, 1], centred on the object's box."""
    if segment is None:
        centre_x = centre_y = IMAGE_SIZE // 2
        coverage = np.zeros(pixels.shape[:2], dtype=np.float32)
    else:
        x0, y0, x1, y1 = segment.bbox
        centre_x, centre_y = (x0 + x1) // 2, (y0 + y1) // 2
        coverage = segment.coverage
    pad = CROP
    canvas = np.empty((IMAGE_SIZE + 2 * pad, IMAGE_SIZE + 2 * pad, 4), dtype=np.float32)
    canvas[..., :3] = background
    canvas[..., 3] = 0.0
    canvas[pad:-pad, pad:-pad, :3] = pixels
    canvas[pad:-pad, pad:-pad, 3] = coverage
    top, left = pad + centre_y - CROP // 2, pad + centre_x - CROP // 2
    window = canvas[top : top + CROP, left : left + CROP]
    channels = np.concatenate([window[..., 3:], window[..., :3] / 127.5 - 1.0], axis=2)
    return channels.transpose(2, 0, 1)


# ----------------------------------------------------------------------------- classifier


class WorldClassifier(nn.Module):
    """Small CNN over a 32x32 object window: shape (the detector's answer), plus object colour,
    background colour and size heads that make its 64-d embedding describe the whole object."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(4, 16, 3, padding=1)  # (B, 16, 32, 32) -> pool 16
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)  # (B, 32, 16, 16) -> pool 8
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)  # (B, 64, 8, 8) -> pool 4
        self.embed = nn.Linear(64 * 4 * 4, EMBEDDING_DIM)
        self.shape_head = nn.Linear(EMBEDDING_DIM, len(world.SHAPES))
        self.colour_head = nn.Linear(EMBEDDING_DIM, len(_COLOUR_NAMES))
        self.background_head = nn.Linear(EMBEDDING_DIM, len(_COLOUR_NAMES))
        self.size_head = nn.Linear(EMBEDDING_DIM, len(_SIZE_NAMES))

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.max_pool2d(F.relu(self.conv3(x)), 2)
        return F.relu(self.embed(x.flatten(1)))  # (B, 64)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.embedding(x)
        return {
            "shape": self.shape_head(h),
            "colour": self.colour_head(h),
            "background": self.background_head(h),
            "size": self.size_head(h),
        }


def _world_fingerprint() -> str:
    """Hash of everything the classifier's training data depends on."""
    description = json.dumps(
        {
            "detector": DETECTOR_VERSION,
            "shapes": world.SHAPES,
            "colours": world.COLOURS,
            "sizes": world.SIZES,
            "positions": world.POSITIONS,
            "ring": world.RING_HOLE_RATIO,
            "star": world.STAR_INNER_RATIO,
            "supersample": world.SUPERSAMPLE,
            "segmentation": [BORDER, COARSE_DISTANCE, MIN_AREA, INTERIOR_FRACTION, CROP, EMBEDDING_DIM],
        },
        sort_keys=True,
    )
    return hashlib.sha256(description.encode()).hexdigest()[:16]


def _random_training_image(rng: np.random.Generator) -> tuple[np.ndarray, dict[str, int]]:
    """One single-object image with continuous size/position, jittered colours, noise, blur."""
    shape = int(rng.integers(len(world.SHAPES)))
    colour, background = rng.choice(len(_COLOUR_NAMES), size=2, replace=False)
    side = float(rng.uniform(12.0, 34.0))
    anchor = _POSITION_TABLE[int(rng.integers(len(_POSITION_NAMES)))]
    half = side / 2
    centre = np.clip(anchor + rng.uniform(-4.0, 4.0, size=2), 1 + half, IMAGE_SIZE - 1 - half)
    canvas = np.empty((IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.float32)
    canvas[...] = _COLOUR_TABLE[background] + rng.uniform(-12, 12, size=3)
    world.paint_shape(
        canvas, world.SHAPES[shape], _COLOUR_TABLE[colour] + rng.uniform(-12, 12, size=3), tuple(centre), side
    )
    for _ in range(int(rng.choice(3, p=[0.6, 0.25, 0.15]))):  # soft edges, as a VAE decoder may produce
        padded = np.pad(canvas, ((1, 1), (1, 1), (0, 0)), mode="edge")
        canvas = sum(padded[dy : dy + IMAGE_SIZE, dx : dx + IMAGE_SIZE] for dy in (0, 1, 2) for dx in (0, 1, 2)) / 9
    canvas = canvas + rng.normal(0.0, rng.uniform(0.0, 6.0), size=canvas.shape)
    labels = {"shape": shape, "colour": int(colour), "background": int(background), "size": int(side >= SIZE_THRESHOLD)}
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), labels


def _training_batch(rng: np.random.Generator, count: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    inputs, labels = [], {name: [] for name in ("shape", "colour", "background", "size")}
    while len(inputs) < count:
        image, label = _random_training_image(rng)
        pixels = image.astype(np.float32)
        background = _background_rgb(pixels)
        segments = _segment(pixels, background)
        if not segments:
            continue
        inputs.append(_crop(pixels, background, segments[0]))
        for name, value in label.items():
            labels[name].append(value)
    return torch.from_numpy(np.stack(inputs)), {name: torch.tensor(values) for name, values in labels.items()}


def train_classifier(seed: int = 0, samples: int = 4000, epochs: int = 8, batch_size: int = 64) -> WorldClassifier:
    """Train a ``WorldClassifier`` on fresh renders; deterministic for a seed (global RNGs untouched)."""
    inputs, labels = _training_batch(np.random.default_rng(seed), samples)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = WorldClassifier()
    generator = torch.Generator().manual_seed(seed)
    steps = epochs * math.ceil(samples / batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.15)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(samples, generator=generator)
        for start in range(0, samples, batch_size):
            index = order[start : start + batch_size]
            outputs = model(inputs[index])
            loss = sum(F.cross_entropy(outputs[name], labels[name][index]) for name in outputs)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


def _save_classifier(model: WorldClassifier, path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(path), metadata={"fingerprint": _world_fingerprint(), "format": "tiny_world_detector"})


def _read_classifier(path: Path) -> WorldClassifier | None:
    """The cached classifier, or None if missing or made for another world/detector version."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from safetensors import SafetensorError

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            if (handle.metadata() or {}).get("fingerprint") != _world_fingerprint():
                return None
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise DetectorError(f"weights file {path}: damaged or not a safetensors file ({error}); "
                            f"delete it to retrain.") from None
    model = WorldClassifier()
    try:
        model.load_state_dict(tensors)
    except RuntimeError as error:
        raise DetectorError(f"weights file {path}: does not fit WorldClassifier ({error}); delete it to retrain.") from error
    return model.eval()


@lru_cache(maxsize=4)
def load_classifier(path: Path | str | None = None, train_if_missing: bool = True) -> WorldClassifier:
    """The shape classifier: read from ``path`` (default ``DEFAULT_WEIGHTS_PATH``), or trained
    (seed 0, ~15 s on one CPU core) and saved there when missing or stale. Cached per process."""
    path = Path(path) if path is not None else DEFAULT_WEIGHTS_PATH
    model = _read_classifier(path)
    if model is not None:
        return model
    if not train_if_missing:
        raise DetectorError(f"weights file {path}: missing or made for another world version; train_if_missing=False.")
    model = train_classifier()
    try:
        _save_classifier(model, path)
    except OSError:
        pass  # read-only install: keep the trained model in memory only
    return model


# ----------------------------------------------------------------------------- detection


@dataclass(frozen=True)
class DetectedObject:
    """One object read from an image. Coordinates are px of a 64x64 image."""

    shape: str
    colour: str
    size: str
    position: str
    rgb: tuple[float, float, float]
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
    area: int  # px with coverage > 0.5
    shape_confidence: float  # softmax probability of the chosen shape

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.bbox
        return ((x0 + x1) / 2, (y0 + y1) / 2)


@dataclass(frozen=True)
class Detection:
    """What ``detect`` read from one image: the background and the objects, largest first."""

    background: str
    background_rgb: tuple[float, float, float]
    objects: tuple[DetectedObject, ...]

    def scene(self) -> world.SceneSpec | None:
        """The detection as a scene (objects with their detected attributes), or None if it is not a valid one."""
        try:
            return world.SceneSpec(
                tuple(world.ObjectSpec(item.shape, item.colour, item.size, item.position) for item in self.objects),
                self.background,
            )
        except world.WorldError:
            return None


def _describe(segment: _Segment, shape: str, confidence: float) -> DetectedObject:
    x0, y0, x1, y1 = segment.bbox
    extent = max(x1 - x0, y1 - y0)
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2], dtype=np.float32)
    position = _POSITION_NAMES[int(np.argmin(((_POSITION_TABLE - centre) ** 2).sum(axis=1)))]
    return DetectedObject(
        shape=shape,
        colour=_nearest_colour(segment.rgb),
        size="small" if extent < SIZE_THRESHOLD else "large",
        position=position,
        rgb=tuple(float(value) for value in segment.rgb),
        bbox=segment.bbox,
        area=int(segment.mask.sum()),
        shape_confidence=confidence,
    )


def _classify(crops: list[np.ndarray], model: WorldClassifier) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 4, 32, 32) crops -> (shape probabilities (N, 5), embeddings (N, 64))."""
    if not crops:
        return torch.zeros(0, len(world.SHAPES)), torch.zeros(0, EMBEDDING_DIM)
    with torch.no_grad():
        x = torch.from_numpy(np.stack(crops))
        embedding = model.embedding(x)
        return model.shape_head(embedding).softmax(dim=1), embedding


def detect_many(images, model: WorldClassifier | None = None) -> list[Detection]:
    """Detect every image of a batch (one classifier call for all objects)."""
    model = model or load_classifier()
    prepared = []
    crops: list[np.ndarray] = []
    for image in as_uint8_images(images):
        pixels = image.astype(np.float32)
        background = _background_rgb(pixels)
        segments = _segment(pixels, background)
        prepared.append((background, segments))
        crops.extend(_crop(pixels, background, segment) for segment in segments)
    probabilities, _ = _classify(crops, model)
    detections, cursor = [], 0
    for background, segments in prepared:
        objects = []
        for segment in segments:
            confidence, index = probabilities[cursor].max(dim=0)
            objects.append(_describe(segment, world.SHAPES[int(index)], float(confidence)))
            cursor += 1
        detections.append(Detection(_nearest_colour(background), tuple(float(v) for v in background), tuple(objects)))
    return detections


def detect(image, model: WorldClassifier | None = None) -> Detection:
    """Read one image (any supported layout) into background, objects and their attributes."""
    images = as_uint8_images(image)
    if len(images) != 1:
        raise DetectorError(f"image: expected one image; found a batch of {len(images)} (use detect_many).")
    return detect_many(images, model)[0]


def features(images, model: WorldClassifier | None = None) -> np.ndarray:
    """Classifier embedding (N, 64) of each image's largest object (an empty window if none)."""
    model = model or load_classifier()
    crops = []
    for image in as_uint8_images(images):
        pixels = image.astype(np.float32)
        background = _background_rgb(pixels)
        segments = _segment(pixels, background)
        crops.append(_crop(pixels, background, segments[0] if segments else None))
    return _classify(crops, model)[1].numpy().astype(np.float64)


# ----------------------------------------------------------------------------- scoring


def _match(intended: Sequence[world.ObjectSpec], found: Sequence[DetectedObject]) -> list[DetectedObject | None]:
    """For each intended object, the detected object nearest its anchor (each used once)."""
    if len(intended) == 1:
        return [found[0] if found else None]
    remaining = list(found)
    matched = []
    for item in intended:
        if not remaining:
            matched.append(None)
            continue
        anchor = np.array(world.POSITIONS[item.position])
        best = min(remaining, key=lambda candidate: float(((np.array(candidate.centre) - anchor) ** 2).sum()))
        remaining.remove(best)
        matched.append(best)
    return matched


def score(detections: Sequence[Detection], intended: Sequence[world.SceneSpec]) -> dict[str, float]:
    """Accuracy of detections against the scenes the images were meant to show.

    Returns ``{"background", "colour", "shape", "size", "position", "all", "count", "n"}``:
    object attributes are averaged over intended objects (a one-object scene is compared
    with the largest detected object); ``all`` is the fraction of scenes with every
    attribute of every object right; ``count`` the fraction with the right number of
    objects (not required by ``all``, since stray specks are common); ``n`` the number of scenes.
    """
    if len(detections) != len(intended):
        raise DetectorError(f"detections/intended: expected equal lengths; found {len(detections)} and {len(intended)}.")
    if not intended:
        raise DetectorError("intended: expected at least one scene to score against.")
    hits = {name: 0 for name in ("colour", "shape", "size", "position")}
    objects = backgrounds = all_right = counts = 0
    for detection, scene in zip(detections, intended):
        background_right = detection.background == scene.background
        backgrounds += background_right
        counts += len(detection.objects) == len(scene.objects)
        scene_right = background_right
        for item, found in zip(scene.objects, _match(scene.objects, detection.objects)):
            objects += 1
            for name in hits:
                right = found is not None and getattr(found, name) == getattr(item, name)
                hits[name] += right
                scene_right &= right
        all_right += scene_right
    n = len(intended)
    result = {"background": backgrounds / n, **{name: value / objects for name, value in hits.items()}}
    result.update({"all": all_right / n, "count": counts / n, "n": n})
    return result


def _assign(named: Sequence, found: Sequence[DetectedObject]) -> list[DetectedObject | None]:
    """Detected objects for a prompt's objects: one object -> the largest; two -> the assignment of two
    distinct detected objects that gets the most named attributes right (ties: larger objects first)."""
    if len(named) == 1:
        return [found[0] if found else None]
    candidates = list(found[:4])
    if len(candidates) < 2:
        return (candidates + [None, None])[:2]
    best, best_hits = None, -1
    for i, first in enumerate(candidates):
        for j, second in enumerate(candidates):
            if i == j:
                continue
            hits = sum(getattr(det, name) == getattr(item, name)
                       for item, det in ((named[0], first), (named[1], second))
                       for name in ("shape", "colour", "size", "position") if getattr(item, name))
            if hits > best_hits:
                best, best_hits = [first, second], hits
    return best


def score_prompts(detections: Sequence[Detection], prompts: Sequence) -> dict[str, float]:
    """Accuracy on what each prompt NAMES (``world_captions.PromptSpec``); unnamed attributes are not scored.

    Returns per attribute the accuracy over the prompts' mentions of it (None when never named),
    ``all`` (fraction of prompts with every named attribute right), ``binding`` (two-object prompts:
    fraction where both objects are found with their own colour AND shape — a swap fails; None
    without two-object prompts) and ``n``.
    """
    if len(detections) != len(prompts):
        raise DetectorError(f"detections/prompts: expected equal lengths; found {len(detections)} and {len(prompts)}.")
    if not prompts:
        raise DetectorError("prompts: expected at least one prompt to score against.")
    hits = {name: 0 for name in ATTRIBUTES}
    totals = {name: 0 for name in ATTRIBUTES}
    all_right = bound = pairs = 0
    for detection, prompt in zip(detections, prompts):
        right_here = True
        if prompt.background:
            totals["background"] += 1
            hits["background"] += detection.background == prompt.background
            right_here &= detection.background == prompt.background
        matched = _assign(prompt.objects, detection.objects)
        for item, found in zip(prompt.objects, matched):
            for name in ("colour", "shape", "size", "position"):
                wanted = getattr(item, name)
                if wanted:
                    ok = found is not None and getattr(found, name) == wanted
                    totals[name] += 1
                    hits[name] += ok
                    right_here &= ok
        if len(prompt.objects) == 2:
            pairs += 1
            bound += all(found is not None and (found.shape, found.colour) == (item.shape, item.colour)
                         for item, found in zip(prompt.objects, matched))
        all_right += right_here
    result: dict[str, float] = {name: (hits[name] / totals[name] if totals[name] else None) for name in ATTRIBUTES}
    result.update({"all": all_right / len(prompts), "binding": bound / pairs if pairs else None, "n": len(prompts)})
    return result


# ----------------------------------------------------------------------------- Fréchet distance


def _symmetric_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D), as in FID.

    ``tr((S_a S_b)^{1/2})`` is computed as ``tr((S_a^{1/2} S_b S_a^{1/2})^{1/2})`` with symmetric
    eigendecompositions, which is exact for PSD matrices and needs no scipy.
    """
    a, b = np.asarray(features_a, dtype=np.float64), np.asarray(features_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise DetectorError(f"features: expected two (N, D) arrays with the same D; found {a.shape} and {b.shape}.")
    if len(a) < 2 or len(b) < 2:
        raise DetectorError(f"features: expected at least 2 rows each to fit a covariance; found {len(a)} and {len(b)}.")
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root_a = _symmetric_sqrt(cov_a)
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_sqrt = float(np.sqrt(np.clip(cross, 0.0, None)).sum())
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_sqrt)
