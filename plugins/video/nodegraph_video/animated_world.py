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

import difflib
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


# --- reading captions as people write them -----------------------------------------------------
#
# A caption is split into a motion phrase and a still description. The motion phrase is found and
# removed here; the rest is read by the still world's free-form parser (``world.parse_prompt``:
# any order, synonyms, articles or none, size / position / background may be left out).

# words the video grammar adds to the still world's synonyms (``world.SYNONYMS``: grey, violet, big, ...)
_MOTION_SYNONYMS = {"color": "colour", "leftward": "left", "leftwards": "left", "rightward": "right",
                    "rightwards": "right"}
_MOVE_VERBS = frozenset(
    "moving moves move going goes sliding slides slide travelling traveling travels travel drifting drifts gliding "
    "glides heading heads flying flies rolling rolls floating floats running runs passing passes crossing crosses "
    "shifting shifts".split())
_TOWARDS = frozenset("to towards toward into the over across".split())
_DIRECTION = {"right": "left_to_right", "left": "right_to_left", "up": "bottom_to_top", "upward": "bottom_to_top",
              "upwards": "bottom_to_top", "top": "bottom_to_top", "down": "top_to_bottom",
              "downward": "top_to_bottom", "downwards": "top_to_bottom", "bottom": "top_to_bottom"}
_RISE = frozenset("rising rises rise climbing climbs ascending ascends".split())
_FALL = frozenset("falling falls fall dropping drops sinking sinks descending descends".split())
_GROW = frozenset("growing grows grow expanding expands enlarging enlarges swelling swells".split())
_SHRINK = frozenset("shrinking shrinks shrink contracting contracts".split())
_GETTING = frozenset("getting gets becoming becomes".split())
_BIGGER, _SMALLER = frozenset({"bigger", "larger"}), frozenset({"smaller"})
_CHANGE = frozenset("changing changes change turning turns turn fading fades becoming becomes".split())
_POSITION_WORDS = frozenset(WHERE)
MOTION_WORDS = (_MOVE_VERBS | _RISE | _FALL | _GROW | _SHRINK | _GETTING | _BIGGER | _SMALLER | _CHANGE
                | frozenset(_DIRECTION) | frozenset({"from", "to", "towards", "toward", "into", "across", "over",
                                                     "then", "slowly", "smoothly", "gradually", "colour"}))
DEFAULT_BACKGROUNDS = ("black", "white")    # when a caption names none: the first not used by the object


def _canonical(word: str, world: Any) -> str:
    return _MOTION_SYNONYMS.get(word) or world.SYNONYMS.get(word, word)


def _tokens(text: str, world: Any) -> list[str]:
    return [_canonical(w, world) for w in re.findall(r"[a-z]+", text.lower()) if w not in ("a", "an", "the")]


def _motion_phrase(words: list[str], colours: set[str]) -> tuple[dict[str, Any], list[str]] | str:
    """(what the motion phrase says, the words left for the still description); {} = no motion phrase.
    The reason (text) when the motion is unreadable: two motions, a motion verb without a direction, "left to left"."""
    found: list[tuple[dict[str, Any], set[int]]] = []
    for i, word in enumerate(words):
        if word != "to" or i == 0 or i + 1 >= len(words):
            continue
        a, z = words[i - 1], words[i + 1]
        used = {i - 1, i, i + 1} | ({i - 2} if i >= 2 and words[i - 2] == "from" else set())
        if (a, z) in MOVES.values():
            found.append(({"motion": next(m for m, pair in MOVES.items() if pair == (a, z))}, used))
        elif (a, z) in (("small", "large"), ("large", "small")):
            found.append(({"motion": "grow" if a == "small" else "shrink"}, used))
        elif a in colours and z in colours and i >= 2 and (words[i - 2] == "from" or words[i - 2] in _CHANGE):
            found.append(({"motion": "colour", "from": a, "to": z}, used))
        elif a in _POSITION_WORDS and z in _POSITION_WORDS:    # "from left to left", "from centre to top"
            return (f"'{a} to {z}' is not a move the model knows: a move goes between opposite sides (left to "
                    f"right, right to left, top to bottom, bottom to top)")
    taken = set().union(*(used for _, used in found)) if found else set()
    for i, word in enumerate(words):
        if i in taken:
            continue
        if word in _RISE or word in _FALL:
            found.append(({"motion": "bottom_to_top" if word in _RISE else "top_to_bottom"}, {i}))
        elif word in _GROW or word in _SHRINK:
            found.append(({"motion": "grow" if word in _GROW else "shrink"}, {i}))
        elif word in _GETTING and i + 1 < len(words) and words[i + 1] in _BIGGER | _SMALLER:
            found.append(({"motion": "grow" if words[i + 1] in _BIGGER else "shrink"}, {i, i + 1}))
        elif word in _MOVE_VERBS:
            j = i + 1
            while j < len(words) and words[j] in _TOWARDS:
                j += 1
            if j < len(words) and j in taken:
                continue                                       # "moving from left to right": read above
            if j < len(words) and words[j] in _DIRECTION:
                found.append(({"motion": _DIRECTION[words[j]]}, set(range(i, j + 1))))
            else:                                              # "moving" with no direction
                return (f"'{word}' has no direction; say where it goes: '{word} up', '{word} to the left', "
                        f"'{word} from left to right'")
        elif word in _CHANGE:
            j = i + 1
            while j < len(words) and words[j] in ("to", "into", "colour"):
                j += 1
            if j < len(words) and words[j] in colours:
                found.append(({"motion": "colour", "to": words[j]}, set(range(i, j + 1))))
    motions = {tuple(sorted(spec.items())) for spec, _ in found}
    if len(motions) > 1:
        named = sorted({_motion_name(spec) for spec, _ in found})
        return (f"it names {len(motions)} motions ({', '.join(named)}); a clip animates one thing: keep one "
                f"motion" if len(named) > 1 else f"it names {len(motions)} different colour changes; keep one")
    if not found:
        return {}, words
    used = set().union(*(u for _, u in found))
    return found[0][0], [w for i, w in enumerate(words) if i not in used]


def _motion_name(spec: dict[str, Any]) -> str:
    """A motion for a message: "left to right", "grow", "colour change"."""
    kind = spec["motion"]
    return " to ".join(MOVES[kind]) if kind in MOVES else {"colour": "colour change"}.get(kind, kind)


def parse_video_caption(text: str, world: Any) -> ClipSpec | None:
    """A video caption as people write it → ``ClipSpec``; None if it is not one clip of one shape.

    Reads the module's grammar (``video_caption``) and free phrasings: "a red circle moving up",
    "red square sliding to the right on a white background", "a big blue star shrinking", "a circle turning from red
    to green", "the yellow triangle falls", any case, synonyms, articles or none. Left out: size →
    small (grow / shrink set their own), position → centre, background → the first of
    ``DEFAULT_BACKGROUNDS`` the object does not use. A move may name its starting side, not another.
    ``caption_problem`` says why a caption was refused.
    """
    read = _read_caption(text, world)
    return read if isinstance(read, ClipSpec) else None


_COUNT_WORDS = {"two", "three", "four", "five", "several", "many", "some", "both", "pair", "couple"}


def _read_caption(text: str, world: Any) -> ClipSpec | str:
    """``parse_video_caption``'s work: the clip, or the reason it is not one (text for an error message)."""
    colours = set(world.COLOURS)
    unknown = _unknown_words(text, world)
    counted = [w for w in unknown if w.lower() in _COUNT_WORDS]
    if counted:           # "two red circles moving right": not a typo of "to"
        return (f"a clip shows one moving shape, so {counted[0]!r} cannot be drawn; describe one shape, e.g. "
                f"'a red circle moving right'")
    if unknown:
        vocabulary = sorted({*world.SHAPES, *world.COLOURS, *world.SIZES, *world.POSITIONS, *world.SYNONYMS,
                             *MOTION_WORDS, *_MOTION_SYNONYMS})
        guesses = [f"{w!r} → {close[0]!r}" for w in unknown[:10]
                   if (close := difflib.get_close_matches(w.lower(), vocabulary, n=1, cutoff=0.75))]
        return (f"it has words the tiny world does not know ({', '.join(map(repr, unknown[:10]))})"
                + (f"; did you mean {', '.join(guesses)}?" if guesses else ""))
    read = _motion_phrase(_tokens(text, world), colours)
    if isinstance(read, str):
        return read
    motion, rest = read
    still = world.parse_prompt(" ".join(rest))
    if still is None or len(still.objects) != 1:
        return _still_problem(rest, world)
    item, background = still.objects[0], still.background
    kind = motion.get("motion", "still")
    try:
        if kind == "colour":
            start = motion.get("from") or item.colour
            if start is None:
                return (f"a change to {motion['to']} needs the colour it starts from: 'a red {item.shape} turning "
                        f"{motion['to']}' or 'a {item.shape} changing from red to {motion['to']}'")
            if item.colour not in (None, start):
                return (f"the {item.shape} is {item.colour} but the change starts from {start}; name the starting "
                        f"colour once")
            if motion["to"] == start:
                return f"it changes from {start} to {start}; name an end colour other than the start"
            used = {start, motion["to"]}
            background = background or next(c for c in DEFAULT_BACKGROUNDS if c not in used)
            return ClipSpec("colour", item.shape, start, background, size=item.size or "small",
                            position=item.position or "centre", end_colour=motion["to"])
        if item.colour is None:
            return f"it names no colour for the {item.shape}; add one, e.g. 'a red {item.shape}'"
        background = background or next(c for c in DEFAULT_BACKGROUNDS if c != item.colour)
        if kind in MOVES:
            if item.position not in (None, MOVES[kind][0]):        # "at the top moving to the right"
                return (f"a move {_motion_name(motion)} starts {WHERE[MOVES[kind][0]]}, but the caption puts the "
                        f"{item.shape} {WHERE[item.position]}; leave the position out or name the start that fits")
            return ClipSpec(kind, item.shape, item.colour, background, size=item.size or "small")
        return ClipSpec(kind, item.shape, item.colour, background, size=item.size or "small",
                        position=item.position or "centre")
    except ClipError as exc:
        return f"{exc}; choose another background or colour"


def _still_problem(words: list[str], world: Any) -> str:
    """Why the words left after the motion phrase are not one shape with its attributes."""
    shapes = sorted({w for w in words if w in world.SHAPES})
    if not shapes:
        return f"it names no shape; add one of {', '.join(world.SHAPES)}"
    if len(shapes) > 1 or words.count("and"):
        return (f"it names more than one object ({', '.join(shapes)}); a video caption describes one shape: "
                f"keep one")
    background = next((words[i - 1] for i, w in enumerate(words) if w == "background" and i), None)
    named = {w for i, w in enumerate(words)                          # the object's colours, not the background's
             if w in world.COLOURS and i + 1 < len(words) and words[i + 1] != "background"}
    if background in named:
        return (f"the {shapes[0]} is {background}, the background's colour, so it would not show; choose another "
                f"background or colour")
    for values, what in ((named, "colours"), ({w for w in words if w in world.SIZES}, "sizes"),
                         ({w for w in words if w in world.POSITIONS}, "positions")):
        if len(values) > 1:
            return f"it gives the {shapes[0]} two {what} ({', '.join(sorted(values))}); keep one"
    return f"the words left after the motion phrase ({' '.join(words)!r}) do not describe one shape"


def _unknown_words(text: str, world: Any) -> list[str]:
    """Words neither the still world nor the motion phrases use ("bouncing", "medium", typos)."""
    return [w for w in world.unknown_words(text)
            if _canonical(w, world) not in MOTION_WORDS | _POSITION_WORDS]


def caption_problem(text: str, world: Any) -> str:
    """Why ``parse_video_caption`` refused ``text``, for an error message: the reason, then the fix."""
    read = _read_caption(text, world)
    reason = read if isinstance(read, str) else "it reads as a caption"
    shown = repr(text if len(text) <= 80 else text[:77] + "...")
    hint = ("write one shape with its colour and, if it moves, how: e.g. 'a red circle moving up', 'a small blue "
            "square sliding from left to right on a white background', 'a star growing', 'a circle turning from "
            "red to green'")
    return f"{shown} is not a tiny-world video caption: {reason}. {hint[0].upper()}{hint[1:]}"


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


def sample_clip(rng: random.Random, world: Any, held_out: bool = False,
                shape_weights: dict[str, float] | None = None) -> ClipSpec:
    """A random clip: training clips (held_out False) avoid every held-out pair; held_out True gives only those.

    ``shape_weights`` ({"star": 3}; unnamed shapes 1) draws shapes with those relative weights before the
    hold-out rejection; None or {} is the uniform draw of earlier versions (the same clips per seed).
    """
    weights = world.normalise_shape_weights(shape_weights)
    for _ in range(10_000):
        motion = rng.choices(MOTIONS, weights=[MOTION_WEIGHTS[m] for m in MOTIONS])[0]
        if held_out and motion == "still":
            continue
        colours = list(world.COLOURS)
        shape = rng.choice(world.SHAPES) if weights is None else rng.choices(world.SHAPES, weights=weights)[0]
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
