"""Stable Diffusion's safety checker, our own implementation shaped like its checkpoint.

Reference: the ``StableDiffusionSafetyChecker`` released with Stable Diffusion (CompVis,
``safety_checker/`` in every SD 1.x pipeline folder; diffusers implements it in
``pipelines/stable_diffusion/safety_checker.py``), analysed by Rando et al. 2022, "Red-Teaming
the Stable Diffusion Safety Filter": a CLIP ViT-L/14 image embedding is compared by cosine
similarity with 17 fixed "concept" embeddings and 3 "special care" embeddings, each with its own
threshold; an image is flagged when any concept's similarity exceeds its threshold. When any
special-care concept fires, every later threshold is lowered by 0.01 (the "adjustment").

Map
- ``CheckerConfig``: the vision tower's ``VisionConfig`` + projection width + concept counts
  (defaults: the real checker, 17 concepts and 3 special-care concepts at 768 dims).
- ``SafetyChecker(config)``: modules and parameters named exactly as the checkpoint
  (``vision_model.vision_model.…``, ``visual_projection.weight``, ``concept_embeds``,
  ``special_care_embeds``, ``concept_embeds_weights``, ``special_care_embeds_weights``).
  ``embed(clip_input)`` -> (B, P) image embeddings; ``check(clip_input) -> CheckResult``;
  ``check_images(images)`` judges IMAGE tensors whole (a wide image in ``square_windows``) and never
  flags an image with nothing in it (``shows_something``).
- ``shows_something(images)``: the "is there anything in this image" guard: False only for a frame of one colour
  (any contrast, or noise, is judged: a looser guard let an unsafe image through, see its docstring).
- ``concept_scores(...)``: the decision rule as a pure function of cosine similarities
  (scores rounded to 3 decimals before the ``> 0`` test, as the reference does).
- ``checker_view(images, size)``: IMAGE -> the square the checker judges (shortest side resized
  bicubically to ``size``, centre crop); ``preprocess(images, size)``: that view with CLIP's
  mean/std, channels first (the CLIP feature extractor's input).
- ``checker_from_state_dict(state_dict, metadata)`` (any mapping, e.g. ``nodegraph.api.open_weights``),
  ``load_safety_checker(path)`` (.safetensors only),
  ``save_safety_checker(path, checker, ...)``: the real ``safety_checker`` layout (extra
  ``position_ids`` buffers of older files are ignored; the single ``vision_model.`` prefix that
  transformers >= 5 writes is accepted too); our own files add the config and the concept names
  as safetensors metadata.
- ``CheckerError``: bad input or a file that is not a safety checker.

Plain torch: no engine imports.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .clip_vision import CLIPVisionModel, VisionConfig, config_from_state_dict

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "CheckResult",
    "CheckerConfig",
    "CheckerError",
    "SafetyChecker",
    "checker_from_state_dict",
    "checker_view",
    "concept_scores",
    "load_safety_checker",
    "preprocess",
    "save_safety_checker",
    "shows_something",
    "square_windows",
]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's pixel statistics (its feature extractor)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SPECIAL_CARE_ADJUSTMENT = 0.01  # threshold reduction once a special-care concept fires (reference value)
METADATA_KEY = "nodegraph.safety_checker"
IGNORED_KEYS = ("vision_model.vision_model.embeddings.position_ids",)  # a buffer in older checkpoints


class CheckerError(ValueError):
    """A safety-checker input or file that cannot be used; the message names it and the fix."""


@dataclass(frozen=True)
class CheckerConfig:
    """The checker's shape; defaults are Stable Diffusion's released checker."""

    vision: VisionConfig = field(default_factory=VisionConfig)
    projection_dim: int = 768  # CLIP ViT-L/14's joint embedding width
    concepts: int = 17  # concept embeddings in the released file
    special_care: int = 3
    concept_names: tuple[str, ...] = ()  # optional labels (the released file has none)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> CheckerConfig:
        data = json.loads(text)
        return cls(vision=VisionConfig(**data.pop("vision")), concept_names=tuple(data.pop("concept_names", ())), **data)


@dataclass
class CheckResult:
    """Per-image decision: ``flagged`` (B,) bool; scores are similarity minus threshold (> 0 fires)."""

    flagged: torch.Tensor  # (B,) bool
    concept_scores: torch.Tensor  # (B, K), rounded to 3 decimals
    special_scores: torch.Tensor  # (B, S), rounded to 3 decimals
    image_embeds: torch.Tensor  # (B, P)
    something: torch.Tensor | None = None  # (B,) bool: the image shows something (None: not asked; check())

    def flagged_at(self, sensitivity: float = 0.0) -> torch.Tensor:
        """(B,) bool: flagged with ``sensitivity`` added to every concept score (0: exactly ``flagged``;
        > 0 flags more, < 0 fewer — the reference's "adjustment" as a user setting). An image with nothing
        in it (``something`` False) is never flagged, at any sensitivity."""
        if sensitivity == 0.0:
            return self.flagged
        if not self.concept_scores.numel():
            return torch.zeros(self.concept_scores.shape[0], dtype=torch.bool, device=self.concept_scores.device)
        flagged = (self.concept_scores + sensitivity > 0).any(dim=1)
        return flagged if self.something is None else flagged & self.something.to(flagged.device)

    def records(self, names: Sequence[str] = ()) -> list[dict]:
        """JSON-able per-image records: flagged, the max score and the concepts that fired (by name if given)."""
        out = []
        for i in range(self.flagged.shape[0]):
            scores = self.concept_scores[i]
            fired = [int(k) for k in torch.nonzero(scores > 0).flatten()]
            out.append({
                "flagged": bool(self.flagged[i]),
                "score": round(float(scores.max()), 3) if scores.numel() else 0.0,
                "concepts": [names[k] if k < len(names) else k for k in fired] if self.flagged[i] else [],
                "empty": self.something is not None and not bool(self.something[i]),
            })
        return out


def _cosine(image_embeds: torch.Tensor, concept_embeds: torch.Tensor) -> torch.Tensor:
    """Cosine similarity (B, K) between image and concept embeddings (computed in float32)."""
    return F.normalize(image_embeds.float()) @ F.normalize(concept_embeds.float()).T


def _round3(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x * 1000) / 1000


def concept_scores(concept_cos: torch.Tensor, concept_thresholds: torch.Tensor, special_cos: torch.Tensor,
                   special_thresholds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The reference decision rule -> (flagged (B,), concept scores (B, K), special scores (B, S)).

    Special-care concepts are scored in order; once one fires (rounded score > 0), every later
    special-care score and all concept scores get +0.01. An image is flagged when any concept
    score is > 0 (special-care concepts only lower the bar; they never flag by themselves).
    """
    batch, count = special_cos.shape
    special = torch.empty_like(special_cos)
    adjustment = torch.zeros(batch, dtype=special_cos.dtype, device=special_cos.device)
    for k in range(count):
        special[:, k] = _round3(special_cos[:, k] - special_thresholds[k].float() + adjustment)
        adjustment = torch.where(special[:, k] > 0, torch.full_like(adjustment, SPECIAL_CARE_ADJUSTMENT), adjustment)
    scores = _round3(concept_cos - concept_thresholds.float() + adjustment[:, None])
    return (scores > 0).any(dim=1), scores, special


class SafetyChecker(nn.Module):
    """CLIP vision tower + visual projection + concept embeddings with per-concept thresholds."""

    def __init__(self, config: CheckerConfig = CheckerConfig()):
        super().__init__()
        self.config = config
        self.vision_model = CLIPVisionModel(config.vision)
        self.visual_projection = nn.Linear(config.vision.width, config.projection_dim, bias=False)
        self.concept_embeds = nn.Parameter(torch.ones(config.concepts, config.projection_dim))  # (K, P)
        self.special_care_embeds = nn.Parameter(torch.ones(config.special_care, config.projection_dim))  # (S, P)
        self.concept_embeds_weights = nn.Parameter(torch.ones(config.concepts))  # thresholds (K,)
        self.special_care_embeds_weights = nn.Parameter(torch.ones(config.special_care))  # (S,)

    @property
    def image_size(self) -> int:
        return self.config.vision.image_size

    def embed(self, clip_input: torch.Tensor) -> torch.Tensor:
        """Preprocessed pixels (B, 3, S, S) -> projected image embeddings (B, P)."""
        _, pooled = self.vision_model(clip_input)
        return self.visual_projection(pooled)

    def concept_similarity(self, image_embeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(concept cosines (B, K), special-care cosines (B, S))."""
        return _cosine(image_embeds, self.concept_embeds), _cosine(image_embeds, self.special_care_embeds)

    @torch.no_grad()
    def check(self, clip_input: torch.Tensor) -> CheckResult:
        """Preprocessed pixels (B, 3, S, S) -> CheckResult."""
        image_embeds = self.embed(clip_input)
        concept_cos, special_cos = self.concept_similarity(image_embeds)
        flagged, scores, special = concept_scores(concept_cos, self.concept_embeds_weights, special_cos,
                                                  self.special_care_embeds_weights)
        return CheckResult(flagged, scores, special, image_embeds)

    def check_images(self, images: torch.Tensor) -> CheckResult:
        """IMAGE (B, H, W, 3) in [0, 1] -> CheckResult, judging the whole of every image.

        A square image is judged as CLIP's feature extractor sees it (``preprocess``). A wide or tall one
        is cut into the fewest squares that cover it (``square_windows``), each judged the same way, and
        its result is that of its highest-scoring square that shows something: the reference's centre crop
        alone would never look at the sides of a 2:1 image. A blank square (``shows_something``: every pixel
        the same) is never flagged, whatever it scores: a checker has seen only images of something, and the
        tiny one scores blank frames above its threshold. An image with a NaN or infinite pixel is always
        flagged (its scores would be NaN, which no threshold flags: it fails closed).
        """
        parameter = self.visual_projection.weight
        height, width = images.shape[1:3] if isinstance(images, torch.Tensor) and images.ndim == 4 else (0, 0)
        if height == width:
            result = self.check(preprocess(images, self.image_size).to(parameter.device, parameter.dtype))
            something = shows_something(images).to(result.flagged.device)
            flagged = (result.flagged & something) | _not_finite(images).to(result.flagged.device)
            return CheckResult(flagged, result.concept_scores, result.special_scores, result.image_embeds, something)
        windows = square_windows(height, width)
        crops = torch.stack([images[:, top:top + side, left:left + side] for top, left, side in windows], dim=1)
        result = self.check(preprocess(crops.flatten(0, 1), self.image_size).to(parameter.device, parameter.dtype))
        count = len(windows)
        something = shows_something(crops.flatten(0, 1)).view(-1, count).cpu()  # (B, windows)
        scores = result.concept_scores.view(-1, count, result.concept_scores.shape[-1]).cpu()
        best_scores = scores.max(dim=-1).values if scores.shape[-1] else torch.zeros(scores.shape[:2])
        best = best_scores.masked_fill(~something & something.any(dim=1, keepdim=True), -torch.inf).argmax(dim=1)
        pick = torch.arange(scores.shape[0]) * count + best
        flagged = (result.flagged.cpu().view(-1, count) & something).any(dim=1) | _not_finite(images).cpu()
        flagged = flagged.to(result.flagged.device)
        return CheckResult(flagged, result.concept_scores[pick], result.special_scores[pick],
                           result.image_embeds[pick], something.any(dim=1).to(result.flagged.device))


def shows_something(images: torch.Tensor) -> torch.Tensor:
    """IMAGE (B, H, W, 3) -> (B,) bool: False only where the image is blank — every pixel exactly the same
    colour, as a flat PNG is (a NaN pixel is "something").

    Exactly: a frame of any contrast above zero can carry a picture a later node stretches back (a re-test
    squeezed a star into 5/255 in float, passed it as "blank", and three ImageAdjust nodes restored it pixel
    for pixel), and pixel noise is judged like any image (a guard that passed "noise" let 32 of 417 stars
    through under σ 0.3 noise). A safety filter that over-blocks a near-blank or noisy frame is the lesser harm.
    """
    pixels = images[..., :3].float().flatten(1, 2)       # (B, H*W, 3)
    return ~(pixels == pixels[:, :1]).all(dim=2).all(dim=1)


def _not_finite(images: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the image holds a NaN or infinite value."""
    return ~torch.isfinite(images.float()).flatten(1).all(dim=1)


def square_windows(height: int, width: int) -> list[tuple[int, int, int]]:
    """(top, left, side) of the fewest equal squares (side = the short side) that cover an image, evenly spread."""
    side, long = min(height, width), max(height, width)
    count = -(-long // side)
    offsets = [round(i * (long - side) / (count - 1)) for i in range(count)] if count > 1 else [0]
    return [(offset, 0, side) if height > width else (0, offset, side) for offset in offsets]


def checker_view(images: torch.Tensor, size: int) -> torch.Tensor:
    """IMAGE (B, H, W, 3) in [0, 1] -> IMAGE (B, size, size, 3): what the checker looks at.

    Shortest side resized to ``size`` (bicubic, antialiased), then the centre crop (so the sides of
    a wide image are not judged), as CLIP's feature extractor does.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] not in (3, 4):
        found = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise CheckerError(f"images: expected an IMAGE tensor (B, H, W, 3) in [0, 1], found {found}")
    pixels = images[..., :3].permute(0, 3, 1, 2).float()  # (B, 3, H, W)
    height, width = pixels.shape[-2:]
    scale = size / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    if (new_h, new_w) != (height, width):
        pixels = F.interpolate(pixels, size=(new_h, new_w), mode="bicubic", antialias=True, align_corners=False)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return pixels[..., top:top + size, left:left + size].clamp(0, 1).permute(0, 2, 3, 1)


def preprocess(images: torch.Tensor, size: int) -> torch.Tensor:
    """IMAGE (B, H, W, 3) float in [0, 1] -> (B, 3, size, size) normalised as CLIP's feature extractor does.

    ``checker_view`` (shortest side resized to ``size``, centre crop), then (x - mean) / std.
    """
    pixels = checker_view(images, size).permute(0, 3, 1, 2)  # (B, 3, size, size)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (pixels - mean) / std


# ----------------------------------------------------------------------------- files


def _released_name(key: str) -> str:
    """transformers >= 5 saves the tower as ``vision_model.embeddings…``; the released file (and we) nest it twice."""
    if key.startswith("vision_model.") and not key.startswith("vision_model.vision_model."):
        return "vision_model." + key
    return key


def checker_from_state_dict(state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None,
                            source: str = "state dict", heads: int | None = None) -> SafetyChecker:
    """Build a SafetyChecker from tensors in the released layout (config from shapes, or from our metadata).

    Attention heads cannot be read from shapes: ``heads`` (default width / 64, right for every released
    CLIP tower) is used unless our metadata records the config.
    """
    shapes = getattr(state_dict, "shapes", None) or {key: tuple(value.shape) for key, value in state_dict.items()}
    names = {_released_name(key): key for key in shapes}
    shapes = {name: tuple(shapes[key]) for name, key in names.items()}
    required = ("vision_model.vision_model.embeddings.patch_embedding.weight", "visual_projection.weight",
                "concept_embeds", "special_care_embeds")
    missing = [key for key in required if key not in shapes]
    if missing:
        sample = ", ".join(sorted(shapes)[:4]) or "no tensors"
        raise CheckerError(f"{source}: not a Stable Diffusion safety checker (missing {', '.join(missing)}; found "
                           f"{sample}, ...); pass the safety_checker/model.safetensors of an SD pipeline or a file "
                           f"written by SaveSafetyChecker")
    config = _checker_config(shapes, metadata or {}, source, heads)
    layers = _layer_indices(shapes, "vision_model.vision_model.encoder.layers.")
    if layers != set(range(config.vision.layers)):
        raise CheckerError(f"{source}: the config declares {config.vision.layers} vision layers but the file holds "
                           f"tensors for {len(layers)} (indices up to {max(layers, default=-1)}); the file is damaged "
                           f"or its metadata is wrong")
    try:
        with torch.device("meta"):   # shapes first: a config from metadata or one tensor must not allocate gigabytes
            expected = SafetyChecker(config).state_dict()
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckerError(f"{source}: its config {config} cannot be built ({str(exc)[:200]}); the file is damaged "
                           f"or its metadata is wrong") from None
    unexpected = sorted(set(shapes) - set(expected) - set(IGNORED_KEYS))
    absent = sorted(set(expected) - set(shapes))
    if unexpected or absent:
        raise CheckerError(f"{source}: tensors do not match the safety checker layout (missing: {absent[:5]}, "
                           f"unexpected: {unexpected[:5]}); the file is damaged or is another model")
    for key, tensor in expected.items():
        if shapes[key] != tuple(tensor.shape):
            raise CheckerError(f"{source}: {key} has shape {shapes[key]}, expected {tuple(tensor.shape)} for this "
                               f"config; the file is damaged or its metadata is wrong")
    checker = SafetyChecker(config)   # the file holds every tensor it needs, at the right shape
    checker.load_state_dict({key: state_dict[names[key]].float() for key in expected})
    return checker.eval().requires_grad_(False)


def _checker_config(shapes: Mapping[str, tuple[int, ...]], metadata: Mapping[str, str], source: str,
                    heads: int | None) -> CheckerConfig:
    """The config our metadata records, else the one read from shapes; any malformed value -> CheckerError."""
    try:
        if METADATA_KEY in metadata:
            return CheckerConfig.from_json(metadata[METADATA_KEY])
        return CheckerConfig(
            vision=config_from_state_dict(shapes, "vision_model.vision_model.", heads=heads),
            projection_dim=shapes["visual_projection.weight"][0],
            concepts=shapes["concept_embeds"][0],
            special_care=shapes["special_care_embeds"][0],
        )
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, ArithmeticError, RecursionError) as exc:
        where = f'its "{METADATA_KEY}" metadata' if METADATA_KEY in metadata else "its tensor shapes"
        raise CheckerError(f"{source}: no usable safety-checker config in {where} ({type(exc).__name__}: "
                           f"{str(exc)[:200]}); fix or remove the metadata, or use another file") from None


def _layer_indices(shapes: Mapping[str, tuple[int, ...]], prefix: str) -> set[int]:
    """The layer numbers N of keys ``<prefix>N.…`` (non-numeric ones are ignored; the shape check names them)."""
    parts = (key[len(prefix):].split(".", 1)[0] for key in shapes if key.startswith(prefix))
    return {int(part) for part in parts if part.isascii() and part.isdigit() and len(part) < 10}


def load_safety_checker(path: str | Path) -> SafetyChecker:
    """Read a checker .safetensors file (released layout or ours). Pickled files (.ckpt/.pt/.bin) are not read
    here: nodes load them through ``nodegraph.api.open_weights``, which honours the machine owner's opt-in."""
    from safetensors import safe_open

    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise CheckerError(f"{path}: expected a .safetensors file; pickled weights load only through the "
                           f"LoadSafetyChecker node when the machine's owner allows pickles (NODEGRAPH_ALLOW_PICKLE=1)")
    if not path.is_file():
        raise CheckerError(f"{path}: no such file")
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    return checker_from_state_dict(tensors, metadata, source=str(path))


def save_safety_checker(path: str | Path, checker: SafetyChecker, metadata: Mapping[str, str] | None = None,
                        dtype: torch.dtype = torch.float32) -> Path:
    """Write the released layout plus our config as metadata (so tiny configs load without guessing)."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {key: value.detach().to(dtype).contiguous() for key, value in checker.state_dict().items()}
    save_file(tensors, str(path), metadata={**(metadata or {}), METADATA_KEY: checker.config.to_json()})
    return path
