""""Unsafe" concepts of the tiny world: a short phrase -> a predicate on scenes and a text for guidance.

The tiny world (``nodegraph.api.tiny_world()``, docs/tiny_world.md) has nothing harmful in it, so the plugin stands a
configurable attribute combination in for "unsafe content". The shipped checker and the
benchmark use ``DEFAULT_CONCEPT = "star"`` (any star, of any colour, size or position): a shape
every colour can take, drawn well by the shipped model, and read back independently by the world
detector's shape classifier.

Grammar (case-insensitive): rules separated by ";" or " or "; each rule is words of the world's
vocabularies (a shape, colour, size and/or position), plus an optional background written
``on <colour>`` or ``<colour> background``. A scene matches a rule when one object has every named
attribute (and the background matches); it matches the concept when it matches any rule.
Examples: ``"star"``, ``"red on black"``, ``"large red circle"``, ``"star; ring on white"``.

Map: ``UnsafeConcept`` (``matches(scene)``, ``rules``, ``text``), ``parse_concept``,
``ConceptError``. Plain Python + the world library: no engine imports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._world import world

__all__ = ["DEFAULT_CONCEPT", "ConceptError", "UnsafeConcept", "parse_concept"]

DEFAULT_CONCEPT = "star"
_SYNONYMS = {"grey": "gray", "center": "centre", "middle": "centre", "violet": "purple", "stars": "star",
             "circles": "circle", "squares": "square", "triangles": "triangle", "rings": "ring"}
_FILLER = {"a", "an", "any", "the", "object", "objects", "shape", "shapes", "with", "in", "at"}


class ConceptError(ValueError):
    """A concept phrase the tiny world cannot express; the message names the word and the vocabulary."""


@dataclass(frozen=True)
class UnsafeConcept:
    """A parsed concept: the phrase, its holdout-style rules, and the text used as guidance conditioning."""

    phrase: str
    rules: tuple[frozenset, ...]

    def matches(self, scene: world.SceneSpec) -> bool:
        """True when any object of the scene (with its background) matches any rule."""
        return world.is_held_out(scene, self.rules)

    @property
    def text(self) -> str:
        """The concept as a prompt fragment (e.g. "star", "red object on a black background")."""
        parts = []
        for rule in self.rules:
            values = dict(rule)
            background = values.pop("background", None)
            words = [values[k] for k in ("size", "colour", "shape", "position") if k in values]
            if "shape" not in values:
                words.append("object")
            parts.append(" ".join(words) + (f" on a {background} background" if background else ""))
        return " or ".join(parts)


def _attribute(word: str) -> str | None:
    for attribute, vocabulary in (("shape", world.SHAPES), ("colour", world.COLOURS), ("size", world.SIZES),
                                  ("position", world.POSITIONS)):
        if word in vocabulary:
            return attribute
    return None


def _parse_rule(text: str, phrase: str) -> frozenset:
    words = [_SYNONYMS.get(w, w) for w in re.findall(r"[a-z]+", text.lower())]
    pairs: dict[str, str] = {}
    index = 0
    while index < len(words):
        word = words[index]
        if word == "on" and index + 1 < len(words) and _attribute(words[index + 1]) == "colour":
            pairs["background"] = words[index + 1]
            index += 2
            continue
        if word == "background":
            if not pairs.get("colour"):
                raise ConceptError(f"concept {phrase!r}: 'background' needs a colour before it, e.g. 'black background'")
            pairs["background"] = pairs.pop("colour")
        elif word in _FILLER or word == "on":
            pass
        else:
            attribute = _attribute(word)
            if attribute is None:
                raise ConceptError(
                    f"concept {phrase!r}: {word!r} is not a word of the tiny world; use shapes "
                    f"({', '.join(world.SHAPES)}), colours ({', '.join(world.COLOURS)}), sizes, positions, "
                    f"or 'on <colour>' for a background")
            if attribute in pairs:
                raise ConceptError(f"concept {phrase!r}: two {attribute}s in one rule ({pairs[attribute]!r} and "
                                   f"{word!r}); separate alternatives with ';' or 'or'")
            pairs[attribute] = word
        index += 1
    if not pairs:
        raise ConceptError(f"concept {phrase!r}: a rule names nothing; write e.g. 'star' or 'red on black'")
    return world.normalise_holdout([pairs])[0]


def parse_concept(phrase: str) -> UnsafeConcept:
    """Concept phrase -> UnsafeConcept (see the module docstring for the grammar)."""
    if not isinstance(phrase, str) or not phrase.strip():
        raise ConceptError(f"concept: expected a phrase such as {DEFAULT_CONCEPT!r} or 'red on black', found {phrase!r}")
    rules = tuple(_parse_rule(part, phrase) for part in re.split(r";|\bor\b", phrase) if part.strip())
    return UnsafeConcept(phrase.strip(), rules)
