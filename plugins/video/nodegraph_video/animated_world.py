"""Animated tiny-world clips: one shape that moves, grows, shrinks or changes colour, with captions.

The still world (docs/tiny_world.md) is one flat shape on a flat background; a clip animates one
attribute linearly over its frames (frame k at time k / (F - 1)):

| motion | what changes | caption |
|---|---|---|
| left_to_right, right_to_left, top_to_bottom, bottom_to_top | centre, between two anchors (16 px → 48 px) | a small red circle moving from left to right, on a blue background |
| grow, shrink | side 16 px ↔ 30 px at one anchor | a red circle growing from small to large in the centre, on a blue background |
| colour | RGB blend between two named colours | a small circle changing from red to green on the left, on a blue background |
| still | nothing | a small red circle on the left, on a blue background (a still world caption) |

Map
- ``ClipSpec``: one clip (motion, shape, colours, size, position, perpendicular offset).
- ``ClipSpec.keyframes(world)`` -> (first scene, last scene): still-world ``SceneSpec`` values whose
  captions the shipped text encoder knows; ``prompt_schedule`` turns a clip into per-frame weights.
- ``video_caption(clip)`` / ``parse_video_caption(text, world)``: the video grammar and its inverse.
- ``render_clip(clip, world, frames, size)`` -> uint8 (F, H, W, 3).
- ``sample_clip(rng, world, held_out=False)``: a random clip; ``VIDEO_HOLDOUT`` (motion, shape) pairs
  and the world's held-out colour-shape pairs never appear unless ``held_out`` asks for them.
- ``read_motion(detections)``: what a clip's per-frame detections show (direction, size and colour trend).

`world` is the tiny-world kit (``nodegraph.api.tiny_world()``); it is passed in, so this module
imports no engine code.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

MOVES: dict[str, tuple[str, str]] = {
    "left_to_right": ("left", "right"),
    "right_to_left": ("right", "left"),
    "top_to_bottom": ("top", "bottom"),
    "bottom_to_top": ("bottom", "top"),
}
MOTIONS: tuple[str, ...] = (*MOVES, "grow", "shrink", "colour", "still")
# share of each motion in training data: moves are the hardest to learn (4 of 8 kinds, 56 %)
MOTION_WEIGHTS: dict[str, float] = {**{m: 0.14 for m in MOVES}, "grow": 0.12, "shrink": 0.12, "colour": 0.12,
                                    "still": 0.08}
# (motion, shape) pairs never shown in training: held-out prompts test composition of motion and shape
VIDEO_HOLDOUT: frozenset[tuple[str, str]] = frozenset({
    ("left_to_right", "star"), ("right_to_left", "triangle"), ("top_to_bottom", "ring"), ("bottom_to_top", "square"),
    ("grow", "circle"), ("shrink", "triangle"), ("colour", "star"),
})
WHERE: dict[str, str] = {"left": "on the left", "right": "on the right", "top": "at the top",
                         "bottom": "at the bottom", "centre": "in the centre"}
MAX_OFFSET = 2      # px a move is shifted across its direction (the still world's jitter)


class ClipError(ValueError):
    """A clip that cannot exist (unknown motion, colour equal to the background, ...)."""


@dataclass(frozen=True)
class ClipSpec:
    """One animated clip of one shape.

    Args:
        motion: one of ``MOTIONS``.
        shape, colour, background: the world's vocabulary; ``colour`` is the first frame's colour.
        size: "small" / "large" (grow starts small, shrink large; ignored there).
        position: where grow / shrink / colour / still clips stand (moves go between their anchors).
        end_colour: the last frame's colour (motion "colour" only).
        offset: px across the direction of a move (as the still world jitters), 0 elsewhere.
    """

    motion: str
    shape: str
    colour: str
    background: str
    size: str = "small"
    position: str = "centre"
    end_colour: str | None = None
    offset: int = 0

    def __post_init__(self) -> None:
        if self.motion not in MOTIONS:
            raise ClipError(f"motion must be one of {', '.join(MOTIONS)}, found {self.motion!r}")
        if self.motion == "colour" and (self.end_colour is None or self.end_colour == self.colour):
            raise ClipError("a colour change needs an end_colour different from colour")
        if self.motion != "colour" and self.end_colour is not None:
            raise ClipError(f"end_colour is only for motion 'colour', not {self.motion!r}")
        if self.background in (self.colour, self.end_colour):
            raise ClipError(f"the object's colour cannot be the background's ({self.background})")
        if self.motion == "grow":
            object.__setattr__(self, "size", "small")
        elif self.motion == "shrink":
            object.__setattr__(self, "size", "large")

    def keyframes(self, world: Any) -> tuple[Any, Any]:
        """(first, last) still scenes: what the clip shows at its first and last frame."""
        start_position, end_position = MOVES.get(self.motion, (self.position, self.position))
        end_size = {"grow": "large", "shrink": "small"}.get(self.motion, self.size)
        first = world.SceneSpec((world.ObjectSpec(self.shape, self.colour, self.size, start_position),),
                                self.background)
        last = world.SceneSpec((world.ObjectSpec(self.shape, self.end_colour or self.colour, end_size,
                                                 end_position),), self.background)
        return first, last

    def is_held_out(self, world: Any) -> bool:
        """Whether training never shows this clip: a held-out (motion, shape) or colour-shape pair."""
        if (self.motion, self.shape) in VIDEO_HOLDOUT:
            return True
        first, last = self.keyframes(world)
        return world.is_held_out(first) or world.is_held_out(last)


def video_caption(clip: ClipSpec) -> str:
    """The clip's caption in the video grammar (see the module docstring)."""
    tail = f", on a {clip.background} background"
    if clip.motion in MOVES:
        a, b = MOVES[clip.motion]
        return f"a {clip.size} {clip.colour} {clip.shape} moving from {a} to {b}{tail}"
    if clip.motion == "grow":
        return f"a {clip.colour} {clip.shape} growing from small to large {WHERE[clip.position]}{tail}"
    if clip.motion == "shrink":
        return f"a {clip.colour} {clip.shape} shrinking from large to small {WHERE[clip.position]}{tail}"
    if clip.motion == "colour":
        return (f"a {clip.size} {clip.shape} changing from {clip.colour} to {clip.end_colour} "
                f"{WHERE[clip.position]}{tail}")
    return f"a {clip.size} {clip.colour} {clip.shape} {WHERE[clip.position]}{tail}"


_SYNONYMS = {"grey": "gray", "center": "centre", "middle": "centre", "violet": "purple", "up": "top",
             "down": "bottom", "color": "colour", "bigger": "large", "smaller": "small", "big": "large"}


def parse_video_caption(text: str, world: Any) -> ClipSpec | None:
    """Invert ``video_caption`` (any case, extra words and punctuation ignored); None if it is not a clip caption."""
    words = [_SYNONYMS.get(w, w) for w in re.findall(r"[a-z]+", text.lower())]
    colours, shapes = set(world.COLOURS), set(world.SHAPES)
    if "background" not in words:
        return None
    b = words.index("background")
    if b == 0 or words[b - 1] not in colours:
        return None
    background, words = words[b - 1], words[: b - 1] + words[b + 1:]
    shape = [w for w in words if w in shapes]
    if len(shape) != 1:
        return None
    sizes = [w for w in words if w in ("small", "large")]
    places = [w for w in words if w in WHERE]
    named = [w for w in words if w in colours]
    position = places[0] if len(places) == 1 else "centre"
    try:
        if "from" in words and "to" in words:
            f, t = words.index("from"), words.index("to")
            if t != f + 2:
                return None
            a, z = words[f + 1], words[t + 1]
            if (a, z) in MOVES.values():
                motion = next(m for m, pair in MOVES.items() if pair == (a, z))
                return ClipSpec(motion, shape[0], _one(named), background, size=_one(sizes), offset=0)
            if (a, z) in (("small", "large"), ("large", "small")):
                return ClipSpec("grow" if a == "small" else "shrink", shape[0], _one(named), background,
                                position=_place(words, f))
            if a in colours and z in colours:
                size = [w for i, w in enumerate(words) if w in ("small", "large") and not f <= i <= f + 3]
                return ClipSpec("colour", shape[0], a, background, size=_one(size) if size else "small",
                                position=_place(words, f), end_colour=z)
            return None
        if len(places) == 1 and len(sizes) == 1:
            return ClipSpec("still", shape[0], _one(named), background, size=sizes[0], position=position)
    except (ClipError, ValueError):
        return None
    return None


def _one(values: list[str]) -> str:
    if len(values) != 1:
        raise ValueError(f"expected exactly one word, found {values}")
    return values[0]


def _place(words: list[str], skip_from: int) -> str:
    """The position word outside the 'from X to Y' phrase (centre when none)."""
    places = [w for i, w in enumerate(words) if w in WHERE and not skip_from <= i <= skip_from + 3]
    return places[0] if len(places) == 1 else "centre"


def frame_times(frames: int) -> np.ndarray:
    """Time of each frame in [0, 1]: k / (F - 1) (a single frame is time 0)."""
    return np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)


def render_clip(clip: ClipSpec, world: Any, frames: int = 8, size: int = 64) -> np.ndarray:
    """The clip as uint8 frames (F, size, size, 3), each painted with the world's anti-aliased renderer."""
    scale = size / world.REFERENCE_SIZE
    out = np.empty((frames, size, size, 3), dtype=np.uint8)
    background = np.asarray(world.COLOURS[clip.background], dtype=np.float32)
    start, end = (world.POSITIONS[p] for p in MOVES.get(clip.motion, (clip.position, clip.position)))
    small, large = world.SIZES["small"], world.SIZES["large"]
    side_from, side_to = {"grow": (small, large), "shrink": (large, small)}.get(
        clip.motion, (world.SIZES[clip.size],) * 2)
    rgb_from = np.asarray(world.COLOURS[clip.colour], dtype=np.float32)
    rgb_to = np.asarray(world.COLOURS[clip.end_colour or clip.colour], dtype=np.float32)
    horizontal = clip.motion in ("left_to_right", "right_to_left")
    for k, t in enumerate(frame_times(frames)):
        canvas = np.empty((size, size, 3), dtype=np.float32)
        canvas[...] = background
        cx, cy = start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t
        if clip.motion in MOVES:
            cy, cx = (cy + clip.offset, cx) if horizontal else (cy, cx + clip.offset)
        side = side_from + (side_to - side_from) * t
        world.paint_shape(canvas, clip.shape, rgb_from + (rgb_to - rgb_from) * t, (cx * scale, cy * scale),
                          side * scale)
        out[k] = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    return out


def sample_clip(rng: random.Random, world: Any, held_out: bool = False) -> ClipSpec:
    """A random clip: training clips (held_out False) avoid every held-out pair; held_out True gives only those."""
    for _ in range(10_000):
        motion = rng.choices(MOTIONS, weights=[MOTION_WEIGHTS[m] for m in MOTIONS])[0]
        if held_out and motion == "still":
            continue
        colours = list(world.COLOURS)
        shape = rng.choice(world.SHAPES)
        background = rng.choice(colours)
        colour = rng.choice([c for c in colours if c != background])
        end_colour = rng.choice([c for c in colours if c not in (background, colour)]) if motion == "colour" else None
        size = rng.choice(("small", "large"))
        position = rng.choice(tuple(WHERE)) if motion not in MOVES else "centre"
        offset = rng.randint(-MAX_OFFSET, MAX_OFFSET) if motion in MOVES else 0
        clip = ClipSpec(motion, shape, colour, background, size=size, position=position, end_colour=end_colour,
                        offset=offset)
        if clip.is_held_out(world) == held_out:
            return clip
    raise ClipError("no clip satisfies the hold-out rules")


def prompt_weights(frames: int) -> np.ndarray:
    """Weight of the LAST keyframe's prompt at each frame (1 - weight for the first): the frame times."""
    return frame_times(frames)


# --- reading clips back (benchmark, tests) ------------------------------------------------------


def read_motion(detections: list[Any]) -> dict[str, Any]:
    """Summarise per-frame detections of one clip: direction of travel, size and colour trend, constancy.

    Returns ``direction`` (a MOVES key, or "none" when the centre moved < 12 px), ``grew`` /
    ``shrank`` (the bounding box's larger side changed by ≥ 8 px), ``colours`` and ``shapes`` (per
    frame, None where no object was found) and ``found`` (frames with an object).
    """
    centres, sides, colours, shapes = [], [], [], []
    for detection in detections:
        objects = getattr(detection, "objects", ())
        if not objects:
            colours.append(None)
            shapes.append(None)
            continue
        obj = objects[0]
        x0, y0, x1, y1 = obj.bbox
        centres.append(((x0 + x1) / 2, (y0 + y1) / 2))
        sides.append(max(x1 - x0, y1 - y0))
        colours.append(obj.colour)
        shapes.append(obj.shape)
    summary: dict[str, Any] = {"colours": colours, "shapes": shapes, "found": len(centres), "direction": "none",
                               "grew": False, "shrank": False}
    if len(centres) >= 2:
        dx, dy = centres[-1][0] - centres[0][0], centres[-1][1] - centres[0][1]
        if max(abs(dx), abs(dy)) >= 12:
            if abs(dx) >= abs(dy):
                summary["direction"] = "left_to_right" if dx > 0 else "right_to_left"
            else:
                summary["direction"] = "top_to_bottom" if dy > 0 else "bottom_to_top"
        summary["grew"] = sides[-1] - sides[0] >= 8
        summary["shrank"] = sides[0] - sides[-1] >= 8
    return summary


def with_offset(clip: ClipSpec, offset: int) -> ClipSpec:
    """The same clip shifted across its direction of travel (moves only)."""
    return replace(clip, offset=offset if clip.motion in MOVES else 0)
