"""Tiny world: a procedural, captioned image world that a small text-to-image model can learn.

Every image is one or two flat-coloured shapes on a flat background, rendered with
exact 4x4 supersampled anti-aliasing; every caption names all of it
("a small red circle on the left, on a blue background"). Because the world is
known, generated images can be checked attribute by attribute
(``world_detector.py``), and combinations kept out of training ("green triangle")
test compositional generalisation. docs/tiny_world.md has the vocabularies,
templates and decisions.

Map:

========================  ====================================================================
vocabularies              ``SHAPES``, ``COLOURS`` (name -> RGB), ``SIZES`` (name -> side in
                          px of a 64-px image), ``POSITIONS`` (name -> centre), ``TEMPLATES``,
                          ``TWO_OBJECT_LAYOUTS``, ``DEFAULT_HOLDOUT``.
``ObjectSpec``,           Frozen dataclasses describing a scene; validated on construction.
``SceneSpec``             An object's pixel ``offset`` (jitter) is not part of equality.
holdout rules             ``normalise_holdout`` (("green", "triangle") -> attribute rules),
                          ``is_held_out``.
sampling                  ``sample_scene`` (never held out; optional ``shape_weights``, checked by
                          ``normalise_shape_weights``; text "star: 3" read by ``parse_shape_weights``),
                          ``sample_held_out_scene`` (always).
rendering                 ``paint_shape`` (one anti-aliased shape onto a float canvas, any
                          centre and side), ``render`` (scene -> uint8 (H, W, 3)).
                          ``sample_layout`` -> ``Placement`` per object: continuous centres and
                          sides, irregular outlines (``render(scene, size, layout)``); any
                          (height, width) via ``image_shape``.
captions                  ``caption`` (scene + template index -> text), ``parse_caption``
                          (text -> scene or None; every template and the free-form grammars of
                          ``world_captions.py``, which also reads partial prompts).
``TinyWorld``             Map-style dataset, deterministic per index from a seed:
                          ``world[i] -> (image (3, H, W) float in [-1, 1], caption, scene)``;
                          ``collate`` batches such items.
``WorldError``            The module's one error type (a ``ValueError``).
========================  ====================================================================

Randomness always comes in as a ``random.Random``; the global RNGs are never used.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

__all__ = [
    "COLOURS",
    "DEFAULT_HOLDOUT",
    "POSITIONS",
    "REFERENCE_SIZE",
    "SHAPES",
    "SIZES",
    "TEMPLATES",
    "TWO_OBJECT_LAYOUTS",
    "FREE_CAPTION_FRACTION",
    "ObjectSpec",
    "Placement",
    "SceneSpec",
    "TinyWorld",
    "WorldError",
    "caption",
    "collate",
    "image_shape",
    "is_held_out",
    "normalise_holdout",
    "normalise_shape_weights",
    "parse_shape_weights",
    "paint_shape",
    "parse_caption",
    "render",
    "sample_held_out_scene",
    "sample_layout",
    "sample_scene",
]

Shape = Literal["circle", "square", "triangle", "star", "ring"]
Size = Literal["small", "large"]
Position = Literal["left", "right", "top", "bottom", "centre"]
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring")

# Flat colours at least 112 apart in RGB (closest pairs: red/orange 112, yellow/orange 117),
# so a slightly-off generated colour still lands on its name.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (210, 20, 40),
    "green": (30, 170, 50),
    "blue": (30, 70, 220),
    "yellow": (250, 230, 40),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "purple": (150, 40, 210),
    "orange": (240, 120, 0),
    "cyan": (40, 210, 220),
    "gray": (128, 128, 128),
}

# Geometry is defined on a 64-px canvas and scaled for other image sizes.
REFERENCE_SIZE = 64
# Side of the shape's bounding box (its larger side). Two sizes, almost 2x apart, so the
# size is unmistakable at 64 px; a small star or ring is still clearly a star or ring.
SIZES: dict[str, int] = {"small": 16, "large": 30}
# Centre of the shape's bounding box: a plus-shaped grid a quarter of the image apart.
POSITIONS: dict[str, tuple[int, int]] = {
    "left": (16, 32),
    "right": (48, 32),
    "top": (32, 16),
    "bottom": (32, 48),
    "centre": (32, 32),
}
# Two-object scenes use opposite positions, so two large shapes never overlap.
TWO_OBJECT_LAYOUTS: tuple[tuple[str, str], ...] = (("left", "right"), ("top", "bottom"))
# Single objects are shifted by up to this many px per axis (never out of the image);
# two-object scenes are not jittered.
MAX_JITTER = 2
# Ring hole diameter / outer diameter; star inner radius / outer radius.
RING_HOLE_RATIO = 0.5
STAR_INNER_RATIO = 0.45
SUPERSAMPLE = 4

# TinyWorld(caption_style="mixed"): the fraction of free-form captions (the rest use TEMPLATES).
FREE_CAPTION_FRACTION = 0.7

# One colour-shape pair kept out per shape (and per colour), so held-out prompts
# exercise every shape.
DEFAULT_HOLDOUT: tuple[tuple[str, ...], ...] = (
    ("green", "triangle"),
    ("blue", "star"),
    ("yellow", "ring"),
    ("purple", "circle"),
    ("orange", "square"),
)

WHERE_PHRASES: dict[str, str] = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "centre": "in the centre",
}

# (object phrase, scene phrase). Objects are joined with " and "; every template names the
# background as "<colour> background", which is what parse_caption keys on.
TEMPLATES: tuple[tuple[str, str], ...] = (
    ("a {size} {colour} {shape} {where}", "{objects}, on a {background} background"),
    ("a {size} {colour} {shape} {where}", "a {background} background with {objects}"),
    ("a {size} {colour} {shape} {where}", "{objects} against a {background} background"),
    ("a {colour} {shape}, {size}, {where}", "{objects}; {background} background"),
    ("{size} {colour} {shape} {where}", "{objects}, {background} background"),
)

OBJECT_ATTRIBUTES = ("shape", "colour", "size", "position")
_VOCABULARIES: dict[str, tuple[str, ...]] = {
    "shape": SHAPES,
    "colour": tuple(COLOURS),
    "size": tuple(SIZES),
    "position": tuple(POSITIONS),
}


class WorldError(ValueError):
    """A scene, holdout rule or dataset argument that the tiny world cannot honour.

    Args:
        argument: the offending argument as the caller spelled it.
        message: the rule that was broken and how to fix it.
        value: the offending object (kept for programmatic access).
    """

    def __init__(self, argument: str, message: str, value: object = None):
        self.argument = argument
        self.value = value
        super().__init__(f"{argument}: {message}")

    def __reduce__(self):
        return (WorldError, (self.argument, str(self).split(": ", 1)[1], self.value))


# ----------------------------------------------------------------------------- scenes


def _check_choice(argument: str, value: str, choices: Iterable[str]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise WorldError(argument, f"expected one of {', '.join(choices)}; found {value!r}.", value)


@dataclass(frozen=True)
class ObjectSpec:
    """One shape in a scene.

    Args:
        shape: one of ``SHAPES``.
        colour: one of ``COLOURS``.
        size: one of ``SIZES``.
        position: one of ``POSITIONS``.
        offset: (dx, dy) jitter in px of a 64-px image; rendering detail, ignored by ``==``.
    """

    shape: Shape
    colour: str
    size: Size
    position: Position
    offset: tuple[int, int] = field(default=(0, 0), compare=False)

    def __post_init__(self):
        _check_choice("shape", self.shape, SHAPES)
        _check_choice("colour", self.colour, COLOURS)
        _check_choice("size", self.size, SIZES)
        _check_choice("position", self.position, POSITIONS)


@dataclass(frozen=True)
class SceneSpec:
    """A whole image: one or two objects on a flat background.

    Args:
        objects: the shapes, painted in order; positions must differ.
        background: one of ``COLOURS``; no object may share it (it would be invisible).
    """

    objects: tuple[ObjectSpec, ...]
    background: str

    def __post_init__(self):
        object.__setattr__(self, "objects", tuple(self.objects))
        _check_choice("background", self.background, COLOURS)
        if not 1 <= len(self.objects) <= 2:
            raise WorldError("objects", f"expected one or two objects; found {len(self.objects)}.", self.objects)
        for index, item in enumerate(self.objects):
            if item.colour == self.background:
                raise WorldError(
                    f"objects[{index}].colour",
                    f"an object cannot have the background colour ({self.background}); pick another colour.",
                    item,
                )
        positions = [item.position for item in self.objects]
        if len(set(positions)) != len(positions):
            raise WorldError("objects", f"objects must stand at different positions; found {positions}.", self.objects)

    @property
    def single(self) -> ObjectSpec:
        """The object of a one-object scene (the one the quality targets are about)."""
        if len(self.objects) != 1:
            raise WorldError("scene", f"expected a one-object scene; found {len(self.objects)} objects.", self)
        return self.objects[0]


# ----------------------------------------------------------------------------- holdout

HoldoutRule = frozenset  # frozenset of (attribute, value) pairs; attribute in OBJECT_ATTRIBUTES + "background"


def _attribute_of(value: str) -> str:
    for attribute, vocabulary in (("shape", SHAPES), ("colour", COLOURS), ("size", SIZES), ("position", POSITIONS)):
        if value in vocabulary:
            return attribute
    raise WorldError("holdout", f"{value!r} is not a shape, colour, size or position of the tiny world.", value)


def normalise_holdout(rules: Iterable[Sequence[str] | Mapping[str, str]]) -> tuple[HoldoutRule, ...]:
    """Holdout rules -> tuple of frozensets of (attribute, value).

    A rule is either a tuple of values, each resolved to its attribute (``("green", "triangle")``
    means one object that is green and a triangle), or a mapping that names attributes,
    which is how a background is given (``{"background": "blue", "shape": "ring"}``).
    Already-normalised rules pass through unchanged.
    """
    normalised = []
    for rule in rules:
        if isinstance(rule, frozenset):  # already normalised
            rule = dict(rule)
        if isinstance(rule, Mapping):
            pairs = []
            for attribute, value in rule.items():
                if attribute == "background":
                    _check_choice("holdout background", value, COLOURS)
                elif attribute in OBJECT_ATTRIBUTES:
                    _check_choice(f"holdout {attribute}", value, _VOCABULARIES[attribute])
                else:
                    raise WorldError(
                        "holdout", f"unknown attribute {attribute!r}; use shape, colour, size, position or background.", rule
                    )
                pairs.append((attribute, value))
        elif isinstance(rule, str):
            raise WorldError(
                "holdout", f"expected a list of rules (tuples of values), found the string {rule!r}; write [(..., ...)].", rule
            )
        else:
            pairs = [(_attribute_of(value), value) for value in rule]
        attributes = [attribute for attribute, _ in pairs]
        if not pairs or len(set(attributes)) != len(attributes):
            raise WorldError("holdout", f"a rule needs at least one value and each attribute once; found {rule!r}.", rule)
        normalised.append(frozenset(pairs))
    return tuple(normalised)


def _rule_matches(scene: SceneSpec, rule: HoldoutRule) -> bool:
    wanted = dict(rule)
    if "background" in wanted and wanted.pop("background") != scene.background:
        return False
    return any(all(getattr(item, attribute) == value for attribute, value in wanted.items()) for item in scene.objects)


def is_held_out(scene: SceneSpec, holdout: Iterable = DEFAULT_HOLDOUT) -> bool:
    """True when any object of the scene (with the background) matches any holdout rule."""
    return any(_rule_matches(scene, rule) for rule in normalise_holdout(holdout))


# ----------------------------------------------------------------------------- sampling

def _jitter(rng: random.Random, size: str, position: str) -> tuple[int, int]:
    """Random (dx, dy) in [-MAX_JITTER, MAX_JITTER] that keeps the shape >= 1 px inside the image."""
    half = SIZES[size] / 2
    offset = []
    for centre in POSITIONS[position]:
        low = max(-MAX_JITTER, math.ceil(1 + half - centre))
        high = min(MAX_JITTER, math.floor(REFERENCE_SIZE - 1 - half - centre))
        offset.append(rng.randint(low, high))
    return (offset[0], offset[1])


def _random_object(rng: random.Random, position: str, avoid_colour: str, fixed: Mapping[str, str] | None = None,
                   shape_weights: Sequence[float] | None = None) -> ObjectSpec:
    fixed = fixed or {}
    colours = [name for name in COLOURS if name != avoid_colour]
    if fixed.get("shape"):
        shape = fixed["shape"]
    elif shape_weights is None:   # uniform: the draw every earlier version made (same RNG calls)
        shape = rng.choice(SHAPES)
    else:
        shape = rng.choices(SHAPES, weights=shape_weights)[0]
    return ObjectSpec(
        shape=shape,
        colour=fixed.get("colour") or rng.choice(colours),
        size=fixed.get("size") or rng.choice(tuple(SIZES)),
        position=position,
    )


def _draw_scene(rng: random.Random, two_object_fraction: float, shape_weights: Sequence[float] | None = None) -> SceneSpec:
    background = rng.choice(tuple(COLOURS))
    if rng.random() < two_object_fraction:
        layout = list(rng.choice(TWO_OBJECT_LAYOUTS))
        rng.shuffle(layout)
        first = _random_object(rng, layout[0], background, shape_weights=shape_weights)
        second = _random_object(rng, layout[1], background, shape_weights=shape_weights)
        while (second.shape, second.colour) == (first.shape, first.colour):
            second = _random_object(rng, layout[1], background, shape_weights=shape_weights)
        return SceneSpec((first, second), background)
    item = _random_object(rng, rng.choice(tuple(POSITIONS)), background, shape_weights=shape_weights)
    return SceneSpec((replace(item, offset=_jitter(rng, item.size, item.position)),), background)


def parse_shape_weights(text: str) -> dict[str, float]:
    """"star: 3; ring: 0.5" → {"star": 3.0, "ring": 0.5}; "" → {} (uniform): a node input's text form.

    Raises ValueError saying what is wrong and how to write it (nodes report it against their input).
    """
    weights: dict[str, float] = {}
    for part in text.replace(",", ";").split(";"):
        if not part.strip():
            continue
        name, colon, value = part.partition(":")
        name = name.strip().lower()
        if not colon or name not in SHAPES:
            raise ValueError(f"entry {part.strip()!r} is not 'shape: weight' with a shape among {', '.join(SHAPES)} "
                             "(separate entries with ';' or ',', e.g. 'star: 3')")
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if not 0 <= weight < float("inf"):
            raise ValueError(f"the weight of {name!r} must be a finite number >= 0 (e.g. 'star: 3'), "
                             f"not {value.strip()!r}")
        if name in weights:
            raise ValueError(f"{name!r} is given twice; give each shape once")
        weights[name] = weight
    if weights and not any(weights.get(name, 1.0) for name in SHAPES):
        raise ValueError(f"every shape has weight 0 in {text!r}; give at least one shape a positive weight "
                         "(unnamed shapes weigh 1)")
    return weights


def normalise_shape_weights(shape_weights: Mapping[str, float] | None) -> tuple[float, ...] | None:
    """{"star": 3} -> relative weights in ``SHAPES`` order (unnamed shapes 1); None or {} -> None (uniform)."""
    if not shape_weights:
        return None
    for name, weight in shape_weights.items():
        _check_choice("shape_weights", name, SHAPES)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
            raise WorldError("shape_weights", f"expected a finite weight >= 0 for {name!r}; found {weight!r}.", weight)
    weights = tuple(float(shape_weights.get(name, 1.0)) for name in SHAPES)
    if not any(weights):
        raise WorldError("shape_weights", "every shape has weight 0; give at least one shape a positive weight.",
                         shape_weights)
    return weights


def sample_scene(rng: random.Random, holdout: Iterable = DEFAULT_HOLDOUT, two_object_fraction: float = 0.0,
                 shape_weights: Mapping[str, float] | None = None) -> SceneSpec:
    """A uniformly random scene that no holdout rule matches (rejection sampling).

    ``two_object_fraction`` is the probability of a two-object scene (positions from
    ``TWO_OBJECT_LAYOUTS``, not jittered). ``shape_weights`` ({"star": 3}; unnamed shapes 1)
    draws each object's shape with those relative weights before the holdout rejection, so a
    held-out pair is still never returned; None or {} is the uniform draw, identical to earlier
    versions for the same RNG state.
    """
    if not 0.0 <= two_object_fraction <= 1.0:
        raise WorldError("two_object_fraction", f"expected a probability in [0, 1]; found {two_object_fraction}.")
    rules = normalise_holdout(holdout)
    weights = normalise_shape_weights(shape_weights)
    for _ in range(1000):
        scene = _draw_scene(rng, two_object_fraction, weights)
        if not any(_rule_matches(scene, rule) for rule in rules):
            return scene
    raise WorldError("holdout", "the rules exclude almost every scene (1000 draws held out); hold out fewer.", holdout)


def sample_held_out_scene(rng: random.Random, holdout: Iterable = DEFAULT_HOLDOUT) -> SceneSpec:
    """A random one-object scene that matches a holdout rule (rule picked uniformly, rest random)."""
    rules = normalise_holdout(holdout)
    if not rules:
        raise WorldError("holdout", "no rules given, so there is no held-out scene to sample.", holdout)
    wanted = dict(rng.choice(rules))
    background = wanted.pop("background", None)
    if background is None:
        background = rng.choice([name for name in COLOURS if name != wanted.get("colour")])
    if wanted.get("colour") == background:
        raise WorldError("holdout", f"rule {sorted(wanted.items())} puts the object colour on the same background.")
    item = _random_object(rng, wanted.get("position") or rng.choice(tuple(POSITIONS)), background, wanted)
    return SceneSpec((replace(item, offset=_jitter(rng, item.size, item.position)),), background)


# ----------------------------------------------------------------------------- rendering


def _unit_polygon(shape: str) -> np.ndarray:
    """Vertices (N, 2) of a triangle or star, scaled so the bounding box's larger side is 1, centred."""
    if shape == "triangle":
        angles = -math.pi / 2 + np.arange(3) * 2 * math.pi / 3
        radii = np.ones(3)
    else:  # star
        angles = -math.pi / 2 + np.arange(10) * math.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 1.0, STAR_INNER_RATIO)
    points = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    low, high = points.min(axis=0), points.max(axis=0)
    return (points - (low + high) / 2) / (high - low).max()


def _inside_polygon(x: np.ndarray, y: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule point-in-polygon test for arrays of points."""
    x, y = np.broadcast_arrays(x, y)
    inside = np.zeros(x.shape, dtype=bool)
    for (x1, y1), (x2, y2) in zip(polygon, np.roll(polygon, -1, axis=0)):
        crosses = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (x < x_cross)
    return inside


def _inside_shape(shape: str, x: np.ndarray, y: np.ndarray, side: float) -> np.ndarray:
    """Membership of points (relative to the shape's centre, in px) in a shape whose box side is ``side``."""
    half = side / 2
    if shape == "circle":
        return x * x + y * y <= half * half
    if shape == "ring":
        radius2 = x * x + y * y
        return (radius2 <= half * half) & (radius2 >= (half * RING_HOLE_RATIO) ** 2)
    if shape == "square":
        return (np.abs(x) <= half) & (np.abs(y) <= half)
    if shape in ("triangle", "star"):
        return _inside_polygon(x, y, _unit_polygon(shape) * side)
    raise WorldError("shape", f"expected one of {', '.join(SHAPES)}; found {shape!r}.", shape)


def paint_shape(
    canvas: np.ndarray, shape: str, rgb: Sequence[float], centre: tuple[float, float], side: float,
    supersample: int = SUPERSAMPLE, wobble: Sequence[tuple[float, int, float]] = (), angle: float = 0.0,
) -> None:
    """Paint one anti-aliased shape in place onto a float canvas (H, W, 3).

    ``centre`` (x, y) and ``side`` are in pixels of ``canvas``; a pixel (i, j) covers
    [j, j + 1) x [i, i + 1). Coverage is the fraction of ``supersample``² sub-pixel
    centres inside the shape; the pixel becomes a coverage-weighted blend. ``wobble`` and
    ``angle`` (see ``Placement``) make an irregular, turned silhouette.
    """
    height, width = canvas.shape[:2]
    cx, cy = centre
    reach = side / 2 * (1 + sum(abs(a) for a, _, _ in wobble)) * (1.42 if angle else 1) + 1
    x0, x1 = max(0, math.floor(cx - reach)), min(width, math.ceil(cx + reach))
    y0, y1 = max(0, math.floor(cy - reach)), min(height, math.ceil(cy + reach))
    if x0 >= x1 or y0 >= y1:
        return
    steps = (np.arange(supersample) + 0.5) / supersample
    xs = (np.arange(x0, x1)[:, None] + steps[None, :]).reshape(-1) - cx
    ys = (np.arange(y0, y1)[:, None] + steps[None, :]).reshape(-1) - cy
    x, y = np.broadcast_arrays(xs[None, :], ys[:, None])  # (rows * s, cols * s)
    if angle:
        x, y = x * math.cos(angle) + y * math.sin(angle), -x * math.sin(angle) + y * math.cos(angle)
    if wobble:   # radius scaled by 1 + Σ a sin(kθ + φ): test the point pulled back by that factor
        theta = np.arctan2(y, x)
        factor = 1 + sum(a * np.sin(k * theta + phase) for a, k, phase in wobble)
        x, y = x / factor, y / factor
    inside = _inside_shape(shape, x, y, side)  # (rows * s, cols * s)
    coverage = inside.reshape(y1 - y0, supersample, x1 - x0, supersample).mean(axis=(1, 3))[..., None]
    window = canvas[y0:y1, x0:x1]
    window[...] = window * (1 - coverage) + np.asarray(rgb, dtype=canvas.dtype) * coverage


def image_shape(size: int | Sequence[int]) -> tuple[int, int]:
    """``size`` (a side, or (height, width)) -> (height, width), each at least 16 px."""
    height, width = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if min(height, width) < 16:
        raise WorldError("size", f"expected an image side of at least 16 px; found {height}x{width}.", size)
    return int(height), int(width)


def render(scene: SceneSpec, size: int | Sequence[int] = REFERENCE_SIZE, layout: Sequence | None = None) -> np.ndarray:
    """Scene -> uint8 image (H, W, 3): flat background, shapes painted in order, 4x4 anti-aliasing.

    ``size`` is a side or (height, width). Positions scale with each axis (the left anchor is a
    quarter of the width in), shape sides with the shorter side, so a 48x80 image shows the
    same scene as a 64x64 one, wider. ``layout`` (``sample_layout``) overrides each object's
    centre, side and outline with continuous values (ControlNet data); the scene still names
    the nearest grid position and size.
    """
    height, width = image_shape(size)
    scale_x, scale_y, scale = width / REFERENCE_SIZE, height / REFERENCE_SIZE, min(height, width) / REFERENCE_SIZE
    canvas = np.empty((height, width, 3), dtype=np.float32)
    canvas[...] = COLOURS[scene.background]
    for index, item in enumerate(scene.objects):
        if layout is not None:
            placed = layout[index]
            centre = (placed.centre[0] * scale_x, placed.centre[1] * scale_y)
            paint_shape(canvas, item.shape, COLOURS[item.colour], centre, placed.side * scale,
                        wobble=placed.wobble, angle=placed.angle)
            continue
        anchor_x, anchor_y = POSITIONS[item.position]
        centre = ((anchor_x + item.offset[0]) * scale_x, (anchor_y + item.offset[1]) * scale_y)
        paint_shape(canvas, item.shape, COLOURS[item.colour], centre, SIZES[item.size] * scale)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Placement:
    """A continuous placement of one object (64-px units): bounding-box centre (x, y), side, outline wobble.

    ``wobble`` is a tuple of (amplitude, frequency, phase) terms: the outline's radius is
    multiplied by 1 + Σ amplitude·sin(frequency·θ + phase), a hand-drawn irregular silhouette;
    ``angle`` rotates the shape (radians).
    """

    centre: tuple[float, float]
    side: float
    wobble: tuple[tuple[float, int, float], ...] = ()
    angle: float = 0.0


def sample_layout(scene: SceneSpec, rng: random.Random, irregular: float = 0.5) -> tuple[Placement, ...]:
    """Continuous placements for a scene's objects (ControlNet training data: hints off the grid).

    Each object's side is uniform in [12, 34] px and its centre uniform where the shape stays
    inside the image and nearest to its named grid position (so the caption stays true); with
    probability ``irregular`` the outline wobbles (1-3 sine terms, amplitude up to 0.12) and the
    shape is turned by up to ±0.3 rad, like a hand-drawn silhouette.
    """
    placements = []
    for item in scene.objects:
        side = rng.uniform(12.0, 34.0) if len(scene.objects) == 1 else rng.uniform(12.0, 26.0)
        half = side / 2 + 1
        anchor = POSITIONS[item.position]
        for _ in range(100):
            centre = (rng.uniform(half, REFERENCE_SIZE - half), rng.uniform(half, REFERENCE_SIZE - half))
            nearest = min(POSITIONS, key=lambda name: math.dist(POSITIONS[name], centre))
            if nearest == item.position:
                break
        else:
            centre = (float(anchor[0]), float(anchor[1]))
        wobble: tuple = ()
        angle = 0.0
        if rng.random() < irregular:
            wobble = tuple((rng.uniform(0.03, 0.12), rng.randint(2, 7), rng.uniform(0, 2 * math.pi))
                           for _ in range(rng.randint(1, 3)))
            angle = rng.uniform(-0.3, 0.3)
        placements.append(Placement(centre, side, wobble, angle))
    return tuple(placements)


# ----------------------------------------------------------------------------- captions


def caption(scene: SceneSpec, template: int = 0) -> str:
    """Scene -> caption text with ``TEMPLATES[template]``; objects joined with " and "."""
    if not 0 <= template < len(TEMPLATES):
        raise WorldError("template", f"expected an index in [0, {len(TEMPLATES) - 1}]; found {template}.", template)
    object_phrase, scene_phrase = TEMPLATES[template]
    objects = " and ".join(
        object_phrase.format(size=item.size, colour=item.colour, shape=item.shape, where=WHERE_PHRASES[item.position])
        for item in scene.objects
    )
    return scene_phrase.format(objects=objects, background=scene.background)


def parse_caption(text: str) -> SceneSpec | None:
    """Caption text -> the scene it describes, or None if it does not name a complete tiny-world scene.

    Reads every template and the free-form grammars (``world_captions.parse_prompt``: any order,
    case, punctuation, articles, synonyms such as "grey", "center", "middle", "violet", "big",
    "tiny", "upper", "lower"); returns a scene only when each object's shape, colour, size and
    position and the background are all named. ``parse_caption(caption(s, t)) == s`` for every
    scene and template (jitter offsets are not in captions). ``world_captions.parse_prompt``
    returns what a partial prompt names.
    """
    from .world_captions import parse_prompt

    prompt = parse_prompt(text)
    return None if prompt is None else prompt.complete_scene


# ----------------------------------------------------------------------------- dataset


@dataclass(frozen=True)
class WorldExample:
    """One item of ``TinyWorld`` before tensor conversion."""

    image: np.ndarray  # (H, W, 3) uint8
    caption: str
    scene: SceneSpec
    layout: tuple | None = None   # continuous placements (layout="continuous"), else None


class TinyWorld:
    """Map-style dataset of tiny-world images, deterministic per index from ``seed``.

    Item ``i`` depends only on (seed, i): its scene and template come from
    ``random.Random(f"tinyworld/{seed}/{i}")``, so any subset, order or worker split
    reproduces it, and the global RNGs are untouched.

    Args:
        seed: which world sample; different seeds give different items.
        size: image side in px (geometry is defined at 64 and scaled).
        holdout: rules (see ``normalise_holdout``) no item ever matches; () keeps everything.
        two_object_fraction: probability that an item has two objects.
        length: number of items (the world itself is unbounded).
        templates: caption template indices to choose from (uniformly); default all.
        caption_style: "template" (``TEMPLATES`` only), "free" (the free-form training grammar of
            ``world_captions``: attributes left out, reordered, synonyms, any case) or "mixed"
            (free-form with probability ``FREE_CAPTION_FRACTION``). The held-out paraphrase
            grammar is never used here.
        sizes: image sizes to draw from (a side or (height, width) each); item i takes
            ``sizes[i % len(sizes)]`` (balanced buckets); default ``(size,)``.
        layout: "grid" (the named positions and sizes) or "continuous" (``sample_layout``:
            continuous centres and sides, irregular outlines; for ControlNet hints).
        shape_weights: relative sampling weights of shapes (``{"star": 3}``; unnamed shapes 1),
            applied before the holdout rejection; None or {} = uniform, the items of earlier versions.
        caption_filler: probability that an item's caption gets 1-3 filler words
            (``world_captions.add_filler_words``: words that say nothing about the scene); the
            scene and image do not change. 0 gives the captions of earlier versions.
        caption_word_swap: probability that an item's caption has some of its words that name no
            attribute replaced by filler words (``world_captions.swap_function_words``; applied
            before ``caption_filler``); the scene and image do not change; 0 = never.
        caption_paraphrase: probability that an item's caption has its position / background phrases
            (and colours before shapes) reworded by ``world_captions.paraphrase_caption``
            (applied first, before the word swap and the filler); the scene and image do not change;
            0 = never (the captions of earlier versions).
        paraphrase_version: the ``paraphrase_caption`` version (2: model v6's; 3: v6c's, no leading
            backdrop and no colour after its shape; 4: v6g's, 3 with colours after shapes in verb frames;
            5: v6h's, 4 where a caption whose colour moved names no background).

    ``world[i]`` -> ``(image, caption, scene)`` with image a float32 tensor (3, H, W) in
    [-1, 1]; ``world.example(i)`` gives the uint8 (H, W, 3) image instead. Batch with
    ``DataLoader(world, collate_fn=collate)``.
    """

    def __init__(
        self,
        seed: int = 0,
        size: int = REFERENCE_SIZE,
        holdout: Iterable = DEFAULT_HOLDOUT,
        two_object_fraction: float = 0.0,
        length: int = 100_000,
        templates: Sequence[int] | None = None,
        caption_style: str = "template",
        sizes: Sequence | None = None,
        layout: str = "grid",
        shape_weights: Mapping[str, float] | None = None,
        caption_filler: float = 0.0,
        caption_word_swap: float = 0.0,
        caption_paraphrase: float = 0.0,
        paraphrase_version: int = 2,
    ):
        if caption_style not in ("template", "free", "mixed"):
            raise WorldError("caption_style", f"expected 'template', 'free' or 'mixed'; found {caption_style!r}.")
        if layout not in ("grid", "continuous"):
            raise WorldError("layout", f"expected 'grid' or 'continuous'; found {layout!r}.")
        self.caption_style, self.layout = caption_style, layout
        self.sizes = tuple(image_shape(s) for s in (sizes or (size,)))
        if length < 1:
            raise WorldError("length", f"expected at least 1 item; found {length}.", length)
        if size < 16:
            raise WorldError("size", f"expected an image size of at least 16 px; found {size}.", size)
        if not 0.0 <= two_object_fraction <= 1.0:
            raise WorldError("two_object_fraction", f"expected a probability in [0, 1]; found {two_object_fraction}.")
        if not 0.0 <= caption_filler <= 1.0:
            raise WorldError("caption_filler", f"expected a probability in [0, 1]; found {caption_filler}.")
        if not 0.0 <= caption_word_swap <= 1.0:
            raise WorldError("caption_word_swap", f"expected a probability in [0, 1]; found {caption_word_swap}.")
        if not 0.0 <= caption_paraphrase <= 1.0:
            raise WorldError("caption_paraphrase", f"expected a probability in [0, 1]; found {caption_paraphrase}.")
        self.caption_filler, self.caption_word_swap = float(caption_filler), float(caption_word_swap)
        self.caption_paraphrase = float(caption_paraphrase)
        from .world_captions import PARAPHRASE_VERSIONS

        if paraphrase_version not in PARAPHRASE_VERSIONS:
            raise WorldError("paraphrase_version", f"expected one of {PARAPHRASE_VERSIONS}; found {paraphrase_version!r}.")
        self.paraphrase_version = paraphrase_version
        self.templates = tuple(range(len(TEMPLATES))) if templates is None else tuple(templates)
        for template in self.templates:
            if not 0 <= template < len(TEMPLATES):
                raise WorldError("templates", f"expected indices in [0, {len(TEMPLATES) - 1}]; found {template}.")
        if not self.templates:
            raise WorldError("templates", "expected at least one template index.")
        self.seed = int(seed)
        self.size = int(size)
        self.holdout = normalise_holdout(holdout)
        self.two_object_fraction = float(two_object_fraction)
        self.length = int(length)
        normalise_shape_weights(shape_weights)  # validate now, not at the first item
        self.shape_weights = dict(shape_weights or {})

    def __len__(self) -> int:
        return self.length

    def _index(self, index: int) -> int:
        if index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a TinyWorld of length {self.length}")
        return index

    def _scene_and_caption(self, index: int) -> tuple[SceneSpec, str, random.Random]:
        """(scene, caption, the item's RNG after both) — template-style items are as in earlier versions."""
        rng = random.Random(f"tinyworld/{self.seed}/{self._index(index)}")
        scene = sample_scene(rng, self.holdout, self.two_object_fraction, self.shape_weights)
        template = rng.choice(self.templates)
        if self.caption_style == "free" or (self.caption_style == "mixed" and rng.random() < FREE_CAPTION_FRACTION):
            from .world_captions import free_caption

            text = free_caption(scene, rng, "train")[0]
        else:
            text = caption(scene, template)
        # each on its own RNG: the scene, layout and image (and the other's words) do not depend on them
        if self.caption_paraphrase:
            from .world_captions import paraphrase_caption

            paraphrase_rng = random.Random(f"tinyworld/{self.seed}/{self._index(index)}/paraphrase")
            if paraphrase_rng.random() < self.caption_paraphrase:
                text = paraphrase_caption(text, paraphrase_rng, version=self.paraphrase_version)
        if self.caption_word_swap:
            from .world_captions import swap_function_words

            swap_rng = random.Random(f"tinyworld/{self.seed}/{self._index(index)}/swap")
            if swap_rng.random() < self.caption_word_swap:
                text = swap_function_words(text, swap_rng)
        if self.caption_filler:
            from .world_captions import add_filler_words

            filler_rng = random.Random(f"tinyworld/{self.seed}/{self._index(index)}/filler")
            if filler_rng.random() < self.caption_filler:
                text = add_filler_words(text, filler_rng)
        return scene, text, rng

    def scene(self, index: int) -> SceneSpec:
        """The scene of item ``index`` (cheap: nothing is rendered)."""
        return self._scene_and_caption(index)[0]

    def caption(self, index: int) -> str:
        """The caption of item ``index`` (cheap: nothing is rendered)."""
        return self._scene_and_caption(index)[1]

    def image_size(self, index: int) -> tuple[int, int]:
        """(height, width) of item ``index``."""
        return self.sizes[self._index(index) % len(self.sizes)]

    def example(self, index: int) -> WorldExample:
        """Item ``index`` with its image as uint8 (H, W, 3)."""
        scene, text, rng = self._scene_and_caption(index)
        layout = sample_layout(scene, rng) if self.layout == "continuous" else None
        return WorldExample(render(scene, self.image_size(index), layout), text, scene, layout)

    def __getitem__(self, index: int):
        import torch

        item = self.example(index)
        image = torch.from_numpy(item.image).permute(2, 0, 1).float() / 127.5 - 1.0  # (3, H, W)
        return image, item.caption, item.scene


def collate(batch: Sequence[tuple]) -> tuple:
    """Batch ``TinyWorld`` items -> (images (B, 3, H, W), captions list, scenes list)."""
    import torch

    images, captions, scenes = zip(*batch)
    return torch.stack(images), list(captions), list(scenes)
