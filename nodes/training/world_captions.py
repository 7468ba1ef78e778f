"""Captions as people write them: the tiny world's free-form caption grammars and the parser that reads them.

The five fixed templates (``world.TEMPLATES``) name every attribute in one order. Real
prompts leave things out, reorder, use synonyms, articles or none, any case and any
punctuation, and describe two objects ("a red circle and a blue square"). This module
generates such captions from a scene and reads them back. docs/tiny_world.md has the
grammar and its distribution.

Map:

==========================  ============================================================================
``PromptObject``,           What a prompt names: each object's shape (always) and colour / size /
``PromptSpec``              position (each may be None = not named), the background (or None).
                            ``PromptSpec.complete(rng)`` samples what is not named -> ``SceneSpec``;
                            ``PromptSpec.named()`` lists the named attributes (the only ones scored).
``parse_prompt(text)``      text -> ``PromptSpec`` or None (not a tiny-world description).
``unknown_words(text)``     the words no grammar uses ("medium", typos): for clear errors.
``free_caption(scene,       a caption of ``scene`` from the TRAINING grammar ("train") or the
rng, grammar)``             HELD-OUT paraphrase grammar ("heldout", evaluation only; training never
                            uses it) -> (text, PromptSpec of what it names).
``OMIT``                    probability that a caption leaves out size / position / background.
``add_filler_words(text,    ``text`` with 1-3 words that say nothing about the scene inserted at random
rng)``                      places ("please", "drawing", or any other word of the CLIP vocabulary that is
                            no world word): training captions for robustness to words never seen.
``filler_pool()``           those words; the held-out grammar's words are never among them (tested).
``swap_function_words(text, ``text`` with some of its words that carry no attribute ("on", "the", "half",
rng)``                      "with"...) replaced by filler words: only colour, shape, size, position words,
                            "background" and "and" are kept (robustness to other phrasings).
``paraphrase_caption(text,  a training caption with its position / background phrases (version 2: also
rng, rate, version)``       colours) reworded from ``PARAPHRASE_*`` tables that use no held-out-only
                            word: what DistillTextEncoder(paraphrase=p) teaches (models v5, v5b).
==========================  ============================================================================

Both grammars use the same content words (every colour, shape, size and position word of the
held-out grammar appears in training captions); they differ in sentence frames, object-phrase
orders and filler words, so the held-out rows measure paraphrase generalisation, not new words.
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from .world import COLOURS, POSITIONS, SHAPES, SIZES, TWO_OBJECT_LAYOUTS, MAX_JITTER, ObjectSpec, SceneSpec, WorldError

__all__ = ["OMIT", "PromptObject", "PromptSpec", "add_filler_words", "filler_pool", "free_caption", "parse_prompt",
           "paraphrase_caption", "swap_function_words", "unknown_words"]

Grammar = Literal["train", "heldout"]

# ----------------------------------------------------------------------------- vocabulary

# word -> canonical value (attribute words and their synonyms)
SYNONYMS: dict[str, str] = {
    "grey": "gray", "violet": "purple",
    "big": "large", "tiny": "small", "little": "small",
    "center": "centre", "middle": "centre", "upper": "top", "lower": "bottom",
    "backdrop": "background",
}
ATTRIBUTE_OF: dict[str, str] = {
    **{name: "shape" for name in SHAPES},
    **{name: "colour" for name in COLOURS},
    **{name: "size" for name in SIZES},
    **{name: "position" for name in POSITIONS},
}
# How each value may be written (the first spelling is the canonical one).
COLOUR_WORDS: dict[str, tuple[str, ...]] = {**{name: (name,) for name in COLOURS},
                                            "gray": ("gray", "grey"), "purple": ("purple", "violet")}
SIZE_WORDS: dict[str, tuple[str, ...]] = {"small": ("small", "tiny", "little"), "large": ("large", "big")}

# Position phrases. Every content word of the held-out phrases occurs in the training phrases.
POSITION_PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "train": {
        "left": ("on the left", "at the left", "to the left", "on the left side", "left"),
        "right": ("on the right", "at the right", "to the right", "on the right side", "right"),
        "top": ("at the top", "on top", "in the upper half", "top"),
        "bottom": ("at the bottom", "in the lower half", "at the lower side", "bottom"),
        "centre": ("in the centre", "in the center", "in the middle", "centre", "middle"),
    },
    "heldout": {
        "left": ("near the left edge", "in the left part of the picture", "placed left"),
        "right": ("near the right edge", "in the right part of the picture", "placed right"),
        "top": ("near the top edge", "in the upper part of the picture", "placed at the top"),
        "bottom": ("near the bottom edge", "in the lower part of the picture", "placed at the bottom"),
        "centre": ("at the center of the picture", "in the very middle", "placed in the centre"),
    },
}
BACKGROUND_PHRASES: dict[str, tuple[str, ...]] = {
    "train": ("on a {c} background", "{c} background", "with a {c} background", "against a {c} background",
              "the background is {c}"),
    "heldout": ("over a {c} background", "on a plain {c} background", "set against a {c} background",
                "background colour is {c}", "in front of a {c} background"),
}
# Probability that a caption leaves out an attribute (colour and shape are always named).
OMIT: dict[str, float] = {"size": 0.3, "position": 0.3, "background": 0.25}
ARTICLES: tuple[tuple[str, float], ...] = (("a", 0.6), ("the", 0.2), ("", 0.2))
CASES: tuple[tuple[str, float], ...] = (("lower", 0.7), ("sentence", 0.2), ("upper", 0.05), ("title", 0.05))

FUNCTION_WORDS = frozenset(
    "a an the on at in to of with against and is side half part picture image showing there over plain set "
    "front edge near placed very that size coloured colored colour color its it background photo of".split())
_BACKGROUND_BEFORE_SKIP = frozenset({"plain", "coloured", "colored", "solid"})
_BACKGROUND_AFTER_SKIP = frozenset({"is", "colour", "color", "of", "being"})
_NOUN_PHRASE_START = frozenset({"a", "an", "the"})


def _canonical(word: str) -> str:
    return SYNONYMS.get(word, word)


def unknown_words(text: str) -> list[str]:
    """Words of ``text`` that no caption grammar uses (in order, without repeats): e.g. ["medium"]. Numbers and
    runs of other scripts or emoji ("123", "日本語", "🐶") count as words no caption has; a prompt weight's
    number ("(red:1.3)") and an embedding's name ("embedding:x") do not."""
    # composed (NFC): "re" + a combining accent is the one word "ré", not "re" and a stray accent
    cleaned = re.sub(r"embedding:\S+|:\s*[-+]?\d*\.?\d+", " ", unicodedata.normalize("NFC", text).lower())
    seen: list[str] = []
    # numbers whole ("3.5", "1,000"), words of any script with their combining marks, runs of symbols (emoji)
    # ("-3", ".5", "1e3" whole; "don't" one word)
    for word in re.findall(r"[-+]?(?:\d+(?:[.,]\d+)*|\.\d+)(?:e[-+]?\d+)?|(?:[^\W_]|[\u0300-\u036f])+(?:'(?:[^\W_])+)*"
                           r"|[^\w\s]+", cleaned):
        if word.isascii() and not any(c.isalnum() for c in word):    # punctuation: ( ) , [ ] ...
            continue
        if word.isascii() and word.isalpha() and (_canonical(word) in ATTRIBUTE_OF or _canonical(word) in FUNCTION_WORDS
                                                  or word in PARAPHRASE_WORDS):
            continue
        if word not in seen:
            seen.append(word)
    return seen


# ----------------------------------------------------------------------------- prompt specs


@dataclass(frozen=True)
class PromptObject:
    """One object as a prompt names it; None = not named (sampled by ``PromptSpec.complete``)."""

    shape: str
    colour: str | None = None
    size: str | None = None
    position: str | None = None


@dataclass(frozen=True)
class PromptSpec:
    """What a prompt asks for: one or two objects and maybe a background colour."""

    objects: tuple[PromptObject, ...]
    background: str | None = None

    def named(self) -> list[tuple[int | None, str]]:
        """The named attributes as (object index, attribute); the background is (None, "background")."""
        out: list[tuple[int | None, str]] = [(None, "background")] if self.background else []
        for index, item in enumerate(self.objects):
            out += [(index, name) for name in ("shape", "colour", "size", "position") if getattr(item, name)]
        return out

    @property
    def complete_scene(self) -> SceneSpec | None:
        """The scene when every attribute is named (else None)."""
        if self.background is None or any(None in (o.colour, o.size, o.position) for o in self.objects):
            return None
        try:
            return SceneSpec(tuple(ObjectSpec(o.shape, o.colour, o.size, o.position) for o in self.objects),
                             self.background)
        except WorldError:
            return None

    def complete(self, rng: random.Random, jitter: bool = True) -> SceneSpec:
        """A scene with the named attributes and the others sampled uniformly (as the training data does;
        ``jitter`` shifts a single object by up to ``MAX_JITTER`` px as the data does)."""
        used = {o.colour for o in self.objects if o.colour}
        background = self.background or rng.choice([c for c in COLOURS if c not in used])
        positions = _complete_positions([o.position for o in self.objects], rng)
        objects = []
        for item, position in zip(self.objects, positions):
            colour = item.colour or rng.choice([c for c in COLOURS if c != background and c not in used])
            used.add(colour)
            size = item.size or rng.choice(tuple(SIZES))
            offset = (0, 0)
            if len(self.objects) == 1 and jitter:
                half = SIZES[size] / 2
                offset = tuple(rng.randint(max(-MAX_JITTER, int(1 + half - c)), min(MAX_JITTER, int(63 - half - c)))
                               for c in POSITIONS[position])
            objects.append(ObjectSpec(item.shape, colour, size, position, offset=offset))
        return SceneSpec(tuple(objects), background)


def _complete_positions(named: list[str | None], rng: random.Random) -> list[str]:
    if len(named) == 1:
        return [named[0] or rng.choice(tuple(POSITIONS))]
    opposite = {a: b for pair in TWO_OBJECT_LAYOUTS for a, b in (pair, pair[::-1])}
    first, second = named
    if first and second:
        return [first, second]
    if first or second:
        given = first or second
        other = opposite.get(given) or rng.choice([p for p in POSITIONS if p != given])
        return [given, other] if first else [other, given]
    layout = list(rng.choice(TWO_OBJECT_LAYOUTS))
    rng.shuffle(layout)
    return layout


# ----------------------------------------------------------------------------- parsing


def _find_background(words: list[str]) -> tuple[str | None, set[int]] | None:
    """(background colour or None, token indices it used); None when "background" is there but unreadable."""
    marks = [i for i, word in enumerate(words) if word == "background"]
    if not marks:
        return _bare_background(words)
    if len(marks) > 1:
        return None
    mark = marks[0]
    after = mark + 1
    while after < len(words) and after <= mark + 3 and words[after] in _BACKGROUND_AFTER_SKIP:
        after += 1
    linked = after > mark + 1                 # "background is red", "background colour is red"
    before = mark - 1
    while before >= 0 and words[before] in _BACKGROUND_BEFORE_SKIP:
        before -= 1
    before_colour = before >= 0 and ATTRIBUTE_OF.get(words[before]) == "colour"
    if after < len(words) and ATTRIBUTE_OF.get(words[after]) == "colour" and (linked or not before_colour):
        return words[after], {after, mark}
    if before_colour:
        return words[before], {before, mark}
    return None


def _bare_background(words: list[str]) -> tuple[str | None, set[int]]:
    """A background named without the word: "on blue" / "against white" where no shape follows the colour
    before the end or "and", or "with blue behind it" -> (colour, token indices); else (None, set())."""
    for i in range(len(words) - 1):
        if ATTRIBUTE_OF.get(words[i + 1]) != "colour":
            continue
        if words[i] == "with" and words[i + 2:i + 3] == ["behind"]:
            return words[i + 1], {i, i + 1, i + 2}
        if words[i] in ("on", "against") and (i + 2 == len(words) or words[i + 2] == "and"):
            return words[i + 1], {i, i + 1}
    return None, set()


def _split_objects(words: list[str]) -> list[list[str]] | None:
    """Token lists, one per object: split at "and", segments without a shape join the previous one,
    and a segment with two shapes splits where the second shape's noun phrase starts."""
    segments: list[list[str]] = [[]]
    for word in words:
        if word == "and":
            segments.append([])
        else:
            segments[-1].append(word)
    pieces: list[list[str]] = []
    for segment in segments:
        shapes = [i for i, word in enumerate(segment) if ATTRIBUTE_OF.get(word) == "shape"]
        cuts = []
        for index in shapes[1:]:
            start = index
            while start > 0 and (segment[start - 1] in _NOUN_PHRASE_START
                                 or ATTRIBUTE_OF.get(segment[start - 1]) in ("colour", "size")):
                start -= 1
            cuts.append(start)
        bounds = [0] + cuts + [len(segment)]
        pieces += [segment[a:b] for a, b in zip(bounds, bounds[1:])]
    objects: list[list[str]] = []
    pending: list[str] = []
    for piece in pieces:
        if any(ATTRIBUTE_OF.get(word) == "shape" for word in piece):
            objects.append(pending + piece)
            pending = []
        elif objects:
            objects[-1] += piece
        else:
            pending += piece
    if pending:
        if not objects:
            return None
        objects[-1] += pending
    return objects


def parse_prompt(text: str) -> PromptSpec | None:
    """Free-form tiny-world text -> what it names, or None when it describes no valid scene.

    Any case and punctuation; synonyms (``SYNONYMS``); articles or none; attributes in any order;
    size, position and background may be left out (colour too). One or two objects, split at
    "and" (a piece without a shape belongs to the object before it). None when an object has two
    different values for one attribute, when there are more than two objects, when two objects
    name the same position, or when an object has the background's colour.
    """
    words = [_canonical(word) for word in re.findall(r"[a-z]+", text.lower())]
    found = _find_background(words)
    if found is None:
        return None
    background, used = found
    rest = [word for i, word in enumerate(words) if i not in used]
    segments = _split_objects(rest)
    if not segments or len(segments) > 2:
        return None
    objects = []
    for segment in segments:
        values: dict[str, set[str]] = {"shape": set(), "colour": set(), "size": set(), "position": set()}
        for word in segment:
            if word in ATTRIBUTE_OF:
                values[ATTRIBUTE_OF[word]].add(word)
        if any(len(v) > 1 for v in values.values()) or len(values["shape"]) != 1:
            return None
        item = PromptObject(**{name: next(iter(v)) if v else None for name, v in values.items()})
        if background is not None and item.colour == background:
            return None
        objects.append(item)
    positions = [o.position for o in objects if o.position]
    if len(set(positions)) != len(positions):
        return None
    return PromptSpec(tuple(objects), background)


# ----------------------------------------------------------------------------- generation


def _weighted(rng: random.Random, options: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([name for name, _ in options], weights=[w for _, w in options])[0]


def _article(rng: random.Random, following: str) -> str:
    article = _weighted(rng, ARTICLES)
    if article == "a" and following[:1] in "aeiou":
        article = "an"
    return article + " " if article else ""


def _object_phrase(item: ObjectSpec, named: PromptObject, rng: random.Random, grammar: Grammar) -> str:
    colour = rng.choice(COLOUR_WORDS[item.colour])
    size = rng.choice(SIZE_WORDS[item.size]) if named.size else None
    where = rng.choice(POSITION_PHRASES[grammar][item.position]) if named.position else None
    shape = item.shape
    if grammar == "train":
        order = rng.randrange(5)
        if order == 0:      # a big red circle on the left
            core = " ".join(filter(None, [size, colour, shape]))
        elif order == 1:    # a red circle, big, on the left
            core = f"{colour} {shape}" + (f", {size}," if size else "")
        elif order == 2:    # a red big circle on the left
            core = " ".join(filter(None, [colour, size, shape]))
        elif order == 3:    # on the left, a big red circle
            phrase = _article(rng, size or colour) + " ".join(filter(None, [size, colour, shape]))
            return f"{where}, {phrase}" if where else phrase
        else:               # a big circle in red on the left
            core = " ".join(filter(None, [size, shape])) + f" in {colour}"
        phrase = _article(rng, core) + core
        return f"{phrase} {where}".replace(",,", ",") if where else phrase.rstrip(",")
    order = rng.randrange(3)
    if order == 0:          # a circle that is big and red near the left edge
        core = f"{shape} that is " + (f"{size} and {colour}" if size else colour)
    elif order == 1:        # a big circle, coloured red, placed left
        core = " ".join(filter(None, [size, shape])) + f", coloured {colour},"
    else:                   # a red circle of big size in the very middle
        core = f"{colour} {shape}" + (f" of {size} size" if size else "")
    phrase = _article(rng, core) + core
    return f"{phrase} {where}" if where else phrase.rstrip(",")


def _case(text: str, rng: random.Random) -> str:
    style = _weighted(rng, CASES)
    if style == "sentence":
        return text[:1].upper() + text[1:]
    if style == "upper":
        return text.upper()
    if style == "title":
        return " ".join(word[:1].upper() + word[1:] for word in text.split(" "))
    return text


def free_caption(scene: SceneSpec, rng: random.Random, grammar: Grammar = "train",
                 omit: dict[str, float] | None = None) -> tuple[str, PromptSpec]:
    """A free-form caption of ``scene`` and the ``PromptSpec`` of what it names.

    ``grammar`` "train" is the training grammar; "heldout" the paraphrase grammar kept for
    evaluation. Each of size, position (per object) and background is left out with
    probability ``omit`` (default ``OMIT``); colour and shape are always named.
    """
    if grammar not in POSITION_PHRASES:
        raise WorldError("grammar", f"expected 'train' or 'heldout'; found {grammar!r}.", grammar)
    omit = OMIT if omit is None else omit
    named_objects = tuple(PromptObject(item.shape, item.colour,
                                       None if rng.random() < omit.get("size", 0) else item.size,
                                       None if rng.random() < omit.get("position", 0) else item.position)
                          for item in scene.objects)
    background = None if rng.random() < omit.get("background", 0) else scene.background
    phrases = [_object_phrase(item, named, rng, grammar) for item, named in zip(scene.objects, named_objects)]
    objects = (" and " if rng.random() < 0.8 else ", and ").join(phrases)
    if background is None:
        text = objects if grammar == "train" else rng.choice(("there is {o}", "a picture of {o}", "{o}")).format(o=objects)
    else:
        bg = rng.choice(BACKGROUND_PHRASES[grammar]).format(c=rng.choice(COLOUR_WORDS[background]))
        if grammar == "train":
            frame = rng.choice(("{o}, {b}", "{o} {b}", "{o}; {b}", "{b}, {o}", "{b} with {o}"))
            if frame.startswith("{b}") and bg.startswith(("on ", "with ", "against ")):
                frame = "{o}, {b}"        # "on a blue background, a red circle" reads badly; keep it last
        else:
            frame = rng.choice(("there is {o}, {b}", "a picture of {o} {b}", "image showing {o}; {b}",
                                "{o}, {b}"))
        text = frame.format(o=objects, b=bg)
    text = re.sub(r"\s+,", ",", re.sub(r",\s*,", ",", text)).strip(" ,")
    if rng.random() < 0.3:
        text += "."
    return _case(text, rng), PromptSpec(named_objects, background)


# ----------------------------------------------------------------------------- filler words

# Words people put in prompts that say nothing about the scene. With ``filler_pool``'s vocabulary
# words they teach the text encoder to pass over words it has not learnt (TinyWorld(caption_filler=p)).
# Changing this list or ``_NOT_FILLER`` changes the captions graphs/train/train_tiny_world_v4.json trains on.
PROMPT_FILLER = tuple("""
please draw render make create generate show me simple nice cute clean flat minimal minimalist style drawing
illustration art artwork digital vector graphic icon scene composition view shot high quality detailed sharp
beautiful pretty lovely single lone solid filled shaped object thing shape form figure just only exactly some
kind sort really quite rather here we see you can this my our your would like want need so now also then has
have having looks appears sits sitting located positioned drawn painted rendered shown visible standing
floating lying resting canvas photo photograph cartoon sketch painting poster clipart
""".split())
# Words that name or suggest a colour, shape, size or place outside the grammar: never used as filler,
# so the encoder is not taught to ignore words a person may mean.
_NOT_FILLER = frozenset("""
pink brown gold golden silver navy teal magenta crimson scarlet maroon beige tan lime indigo turquoise amber
aqua azure cream ivory olive peach rose ruby salmon violet lavender lilac mint emerald jade coral charcoal
dark light pale bright colorful colourful rainbow color colour colored coloured red blue green yellow orange
purple white black gray grey cyan
oval rectangle rectangular box sphere heart diamond hexagon pentagon octagon cross dot disk disc round line
cube ball circle circular square triangle triangular ring star stars donut polygon blob arrow moon
huge giant massive enormous large big small tiny little mini miniature medium tall short wide narrow thin
thick long size sized
corner corners above below under beneath upper lower side sides edge edges left right top bottom centre center
middle up down north south east west near far inside outside behind front back around
background backdrop foreground
no not without none never nothing
""".split())


@lru_cache(maxsize=1)
def filler_pool() -> tuple[str, ...]:
    """The vocabulary filler: every whole word of the CLIP vocabulary (3-10 letters) that no caption
    grammar or the parser uses (the held-out grammar included) and that names no colour, shape, size
    or place, with the ``PROMPT_FILLER`` words that pass the same test. Sorted, so a seed gives the
    same captions everywhere."""
    from nodes.models.tokenizer import default_tokenizer

    grammar = _grammar_words()
    words = {token[:-4] for token in default_tokenizer().id_to_token
             if token.endswith("</w>") and token[:-4].isalpha() and token[:-4].isascii() and 3 <= len(token) - 4 <= 10}
    words.update(PROMPT_FILLER)
    return tuple(sorted(word for word in words if word not in grammar and word not in _NOT_FILLER))


def _grammar_words() -> frozenset[str]:
    """Every word either grammar (or the parser) uses: attribute words, synonyms, phrases, frames."""
    text = " ".join([*ATTRIBUTE_OF, *SYNONYMS, *FUNCTION_WORDS, *_BACKGROUND_BEFORE_SKIP, *_BACKGROUND_AFTER_SKIP,
                     *(p for grammar in POSITION_PHRASES.values() for phrases in grammar.values() for p in phrases),
                     *(p for phrases in BACKGROUND_PHRASES.values() for p in phrases),
                     "there is a picture of image showing that coloured size"])
    return frozenset(re.findall(r"[a-z]+", text.lower()))


def add_filler_words(text: str, rng: random.Random, most: int = 3, prompt_share: float = 0.3) -> str:
    """``text`` with 1..``most`` filler words inserted between words (or first or last).

    Each word is from ``PROMPT_FILLER`` with probability ``prompt_share``, else any word of
    ``filler_pool()``; the words of ``text`` keep their order.
    """
    words = text.split(" ")
    pool = filler_pool()
    for _ in range(rng.randint(1, most)):
        word = rng.choice(PROMPT_FILLER) if rng.random() < prompt_share else rng.choice(pool)
        words.insert(rng.randint(0, len(words)), word)
    return " ".join(words)


# Words swap_function_words never replaces besides the attribute words: "background" says which colour is
# the background's, "and" separates two objects.
_KEPT_WORDS = frozenset({"background", "and"})


def swap_function_words(text: str, rng: random.Random, rate: float = 1 / 3) -> str:
    """``text`` with each word that names no attribute replaced, with probability ``rate``, by a filler
    word (as ``add_filler_words`` draws them); at least one is replaced when there is any.

    Colour, shape, size and position words (synonyms included), "background" and "and" stay, with
    their punctuation; so "in the upper half" may become "in ford upper half" or "sleek the upper
    onion": the attribute words carry the meaning, not the phrase around them.
    """
    words = text.split(" ")
    replaceable = [i for i, word in enumerate(words)
                   if (bare := re.sub(r"[^a-z]", "", word.lower()))
                   and _canonical(bare) not in ATTRIBUTE_OF and bare not in _KEPT_WORDS]
    if not replaceable:
        return text
    chosen = [i for i in replaceable if rng.random() < rate] or [rng.choice(replaceable)]
    pool = filler_pool()
    for i in chosen:
        word = rng.choice(PROMPT_FILLER) if rng.random() < 0.3 else rng.choice(pool)
        words[i] = re.sub(r"[A-Za-z]+", word, words[i], count=1)
    return " ".join(words)


# ----------------------------------------------------------------------------- training paraphrases

# Other ways to say a training caption's position and background (model v5: DistillTextEncoder(paraphrase=p)
# teaches a student encoder to read them as the teacher reads the original caption). They use the position
# words in frames the training grammar lacks ("upper" alone or before any noun, not only in "upper half"), and
# join the background with "and", which the grammars never do. No word of them is one the held-out grammar
# uses and training captions do not ("part", "picture", "edge", "near", "placed", "very"...: tested), so the
# held-out rows still measure paraphrases of words seen, not the phrases themselves. Changing these tables
# changes the captions graphs/train/train_tiny_world_v5.json trains on.
PARAPHRASE_POSITIONS: dict[str, tuple[str, ...]] = {
    "top": ("upper", "in the upper area", "in the upper region", "on the upper side", "up top", "toward the top",
            "in the top area", "along the top", "top side"),
    "bottom": ("lower", "in the lower area", "in the lower region", "on the lower side", "down at the bottom",
               "toward the bottom", "in the bottom area", "along the bottom", "bottom side"),
    "left": ("in the left area", "in the left region", "on the left hand side", "toward the left", "left side",
             "in the left half", "at left"),
    "right": ("in the right area", "in the right region", "on the right hand side", "toward the right",
              "right side", "in the right half", "at right"),
    "centre": ("in the middle area", "in the centre area", "dead centre", "in the middle spot", "at the centre",
               "at the center", "in the middle region"),
}
# "{c}" is the background colour. The "and" forms only follow the objects; the others may also lead.
PARAPHRASE_BACKGROUNDS: tuple[str, ...] = ("and a {c} background", "and the background is {c}", "and {c} background",
                                           "with {c} behind it", "on {c}", "against {c}", "with a {c} backdrop",
                                           "on a {c} backdrop", "in a {c} background", "with the background {c}")
_LEADING_BACKGROUNDS: tuple[str, ...] = ("{c} backdrop", "a {c} backdrop")
# Version 2 (graphs/train/train_tiny_world_v5b.json): v5 read object colours as the background when no background
# was named (docs/training.md, "Fifth version"); version 2 keeps only the background wordings that say
# "background" / "backdrop", and also moves an object's colour after its shape ("a big circle, red, on the left",
# "a big circle in red"), an order the grammar has only as "in red".
PARAPHRASE_BACKGROUNDS_WORDED: tuple[str, ...] = tuple(w for w in PARAPHRASE_BACKGROUNDS
                                                       if "background" in w or "backdrop" in w)
PARAPHRASE_COLOURS_AFTER: tuple[str, ...] = ("{s}, {c},", "{s} in {c}")
# Version 3 (graphs/train/train_tiny_world_v6c.json): v6 (version 2) swapped the object's and the background's
# colours when a prompt starts with a bare colour ("green circle on a red background"); the suspects are the two
# forms that put a colour first which is not the object's: a leading "blue backdrop, ..." and colours moved after
# their shapes. Version 3 drops both: it rewords positions, and a background that follows the objects (with a
# wording that says "background"); a leading background phrase and every colour stay where they are.
PARAPHRASE_BACKGROUNDS_V3: tuple[str, ...] = tuple(w for w in PARAPHRASE_BACKGROUNDS_WORDED if "background" in w)
# Version 4 (graphs/train/train_tiny_world_v6g.json): v6f reads a colour written after its shape ("a star that is
# green", "a triangle, coloured blue") as the background's -- "there is a star that is green" gives a green canvas
# and no star (docs/training.md, "v6g"). Version 3 plus colours after their shapes again, but only in frames
# where a verb ties the colour to the shape ("a big circle which is red", "a circle which is big and red",
# "a circle painted red"), never the bare "circle, red," / "circle in red" that v6 (version 2) read as a
# leading background colour. A size written before the colour moves with it when the frame allows.
PARAPHRASE_COLOURS_BOUND: tuple[str, ...] = ("{s} which is {c}", "{s} which is {z} and {c}", "{s} painted {c}")
# Version 5 (graphs/train/train_tiny_world_v6h.json): v6g (version 4) learnt "the colour after the shape is the
# object's" and so swapped "green square on a blue background" (a blue square on green; hand-written set 1 fell
# from 95 to 82.5-85 %). Version 5 moves colours after their shapes only in captions that then name no
# background: a trailing background phrase is dropped when a colour moves (the scene still has it: the caption
# leaves it out, as free-form captions do), and a caption that starts with its background moves no colour.
PARAPHRASE_VERSIONS = (1, 2, 3, 4, 5)
# Words of the paraphrases that are no grammar's: known to ``unknown_words`` (not to ``filler_pool``, which
# must not change: it would change the captions of the v4 graphs).
PARAPHRASE_WORDS = frozenset(re.findall(r"[a-z]+", " ".join(
    [p for phrases in PARAPHRASE_POSITIONS.values() for p in phrases] + list(PARAPHRASE_BACKGROUNDS)
    + list(_LEADING_BACKGROUNDS) + list(PARAPHRASE_COLOURS_BOUND))))


@lru_cache(maxsize=1)
def _paraphrase_patterns() -> tuple[re.Pattern, re.Pattern, dict[str, str]]:
    phrase_to_position = {phrase: position for position, phrases in POSITION_PHRASES["train"].items()
                          for phrase in phrases}
    alternatives = "|".join(re.escape(p) for p in sorted(phrase_to_position, key=len, reverse=True))
    positions = re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)
    colours = "|".join(sorted({word for words in COLOUR_WORDS.values() for word in words}, key=len, reverse=True))
    background = re.compile(
        rf"(?P<sep>[,;]?\s*)(?:(?:on|with|against) an? (?P<c1>{colours}) background|the background is (?P<c2>{colours})"
        rf"|(?:(?:an?|the) )?(?P<c3>{colours}) background)\b", re.IGNORECASE)
    return positions, background, phrase_to_position


@lru_cache(maxsize=1)
def _colour_shape_pattern() -> re.Pattern:
    colours = "|".join(sorted({word for words in COLOUR_WORDS.values() for word in words}, key=len, reverse=True))
    return re.compile(rf"\b(?P<c>{colours}) (?P<s>{'|'.join(SHAPES)})\b", re.IGNORECASE)


@lru_cache(maxsize=1)
def _size_colour_shape_pattern() -> re.Pattern:
    """A colour before its shape, with the size word before the colour when there is one (version 4)."""
    colours = "|".join(sorted({word for words in COLOUR_WORDS.values() for word in words}, key=len, reverse=True))
    sizes = "|".join(word for words in SIZE_WORDS.values() for word in words)
    return re.compile(rf"\b(?:(?P<z>{sizes}) )?(?P<c>{colours}) (?P<s>{'|'.join(SHAPES)})\b", re.IGNORECASE)


def paraphrase_caption(text: str, rng: random.Random, rate: float = 0.7, version: int = 1) -> str:
    """``text`` (a training-grammar or template caption) with each position phrase, and the background
    phrase, replaced with probability ``rate`` by a ``PARAPHRASE_POSITIONS`` / ``PARAPHRASE_BACKGROUNDS``
    wording that means the same; at least one is replaced when there is any. Other words are kept (case
    may change: CLIP reads lower case). "a red circle on the left, on a blue background" may become
    "a red circle toward the left and a blue background". ``version`` 2 uses only the background
    wordings that name the background (``PARAPHRASE_BACKGROUNDS_WORDED``) and also moves colours after
    their shapes ("a circle, red, toward the left and a blue background"). ``version`` 3 rewords positions and
    a background that follows the objects only (``PARAPHRASE_BACKGROUNDS_V3``): no colour moves, and a caption
    that starts with its background keeps that phrase. ``version`` 4 is version 3 that also moves colours after
    their shapes in ``PARAPHRASE_COLOURS_BOUND`` frames ("a big red circle" -> "a circle which is big and red")."""
    if version not in PARAPHRASE_VERSIONS:
        raise WorldError("version", f"expected one of {PARAPHRASE_VERSIONS}; found {version!r}.", version)
    positions, background, phrase_to_position = _paraphrase_patterns()
    colour_shape = _colour_shape_pattern() if version == 2 else _size_colour_shape_pattern()
    found = [*positions.finditer(text), *background.finditer(text)]
    leading = any(m.re is background and not text[:m.start()].strip(" ,;") for m in found)
    if version >= 3:        # a background phrase that leads the caption stays as written
        found = [m for m in found if m.re is positions or text[:m.start()].strip(" ,;")]
    if version in (2, 4) or (version == 5 and not leading):
        found += list(colour_shape.finditer(text))   # never inside a background phrase (those end in "background")
    if not found:
        return text
    chosen = {id(m) for m in found if rng.random() < rate} or {id(rng.choice(found))}
    # version 5: a caption whose colour moves names no background (its trailing phrase is dropped)
    drop_background = version == 5 and any(m.re is colour_shape and id(m) in chosen for m in found)
    pieces, end = [], 0
    for match in sorted(found, key=lambda m: m.start()):
        dropped = drop_background and match.re is background
        if (id(match) not in chosen and not dropped) or match.start() < end:
            continue
        pieces.append(text[end:match.start()])
        if match.re is positions:
            pieces.append(rng.choice(PARAPHRASE_POSITIONS[phrase_to_position[match.group(0).lower()]]))
        elif match.re is colour_shape and version == 2:
            pieces.append(rng.choice(PARAPHRASE_COLOURS_AFTER).format(s=match.group("s"), c=match.group("c")))
        elif match.re is colour_shape:
            size = match.group("z")      # kept before the shape unless the frame takes it ("which is big and red")
            frames = PARAPHRASE_COLOURS_BOUND if size else [f for f in PARAPHRASE_COLOURS_BOUND if "{z}" not in f]
            frame = rng.choice(frames)
            if size and "{z}" not in frame:
                frame = "{z} " + frame
            pieces.append(frame.format(s=match.group("s"), c=match.group("c"), z=size))
        elif drop_background:
            pass
        else:
            colour = next(match.group(g) for g in ("c1", "c2", "c3") if match.group(g)).lower()
            sep = match.group("sep")
            if not text[:match.start()].strip(" ,;"):                                    # leads the caption
                pieces.append(sep + rng.choice(_LEADING_BACKGROUNDS).format(c=colour))
            else:
                wording = rng.choice({1: PARAPHRASE_BACKGROUNDS, 2: PARAPHRASE_BACKGROUNDS_WORDED, 3: PARAPHRASE_BACKGROUNDS_V3,
                                      4: PARAPHRASE_BACKGROUNDS_V3, 5: PARAPHRASE_BACKGROUNDS_V3}[version]).format(c=colour)
                pieces.append(" " + wording if wording.startswith("and ") else (sep or " ") + wording)
        end = match.end()
    pieces.append(text[end:])
    out = "".join(pieces).strip()
    if version in (2, 5):     # "a circle, red, , on ..." / "a circle, red,." / "a circle, red, and" read as written
        out = re.sub(r",\s*([,;.])", r"\1", out).rstrip(",;").strip()
    return out
