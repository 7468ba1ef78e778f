"""The prompt syntax people type, read without torch (so `validate` checks prompts without importing it).

Map
- ``parse_prompt_weights(prompt) -> [Segment]``: the A1111 / ComfyUI weighting syntax — ``(word:1.3)`` sets
  x1.3, ``(word)`` x1.1, ``[word]`` /1.1, nesting multiplies, ``\\(`` ``\\)`` ``\\[`` ``\\]`` ``\\\\`` are
  literal, an unclosed bracket runs to the end of the prompt, a stray closer is literal text, ``BREAK``
  (upper case, a word of its own) starts a new 75-token chunk (``tokenizer.tokenize_prompt``).
- ``EMBEDDING_PATTERN`` / ``embedding_names(prompt)``: ``embedding:name`` textual-inversion references
  (``embeddings.py`` loads them); ``EMBEDDING_SUFFIXES`` the files such a name may be.
- ``weight_problem(prompt)``: why a prompt's weights cannot be used (a weight past ±MAX_PROMPT_WEIGHT, or
  not finite: 1e30 gave a NaN image blamed on the sampler), else None.
- ``syntax_notes(prompt)``: other tools' syntax this one reads as plain words — InvokeAI / compel ``red++`` /
  ``red--``, A1111 ``<lora:name:1>`` tags, prompt editing ``[from:to:when]``, alternation ``[a|b]`` and
  composable ``a AND b`` — each with what to write here.
- ``bare_embedding_notes(prompt, embedding_files)``: words of a prompt that are the file name of an embedding
  (A1111 uses "EasyNegative" bare; here only ``embedding:EasyNegative`` loads it).
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

MAX_PROMPT_WEIGHT = 100.0    # A1111 and ComfyUI cap nothing; past this the conditioning overflows to NaN


class Segment(NamedTuple):
    """A run of prompt text with one attention weight; ``is_break`` marks a BREAK."""

    text: str
    weight: float
    is_break: bool = False


_WEIGHT_TOKEN = re.compile(
    r"""
      \\[\\()\[\]]                                   # escaped bracket or backslash: literal
    | [(\[]                                          # open a group
    | :\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*\)        # ":1.3)" closes a round group with an explicit weight
    | [)\]]                                          # close a group
    | [^\\()\[\]:]+                                  # plain text
    | [\\:]                                          # a lone colon or backslash is text
    """,
    re.VERBOSE,
)
_BREAK = re.compile(r"\s*\bBREAK\b\s*")
ROUND_FACTOR = 1.1  # "(word)" emphasises by 1.1, "[word]" de-emphasises by 1/1.1 (A1111 convention)


def parse_prompt_weights(prompt: str) -> list[Segment]:
    """Split a prompt into weighted segments (A1111 / ComfyUI syntax, see the module docstring).

    ``"a (red:1.3) [cat]"`` -> ``[("a ", 1.0), ("red", 1.3), (" ", 1.0), ("cat", 1/1.1)]``.
    """
    segments: list[list] = []  # [text, weight, is_break]
    open_round: list[int] = []  # index of the first segment inside each open "(" / "["
    open_square: list[int] = []

    def scale_from(start: int, factor: float) -> None:
        for segment in segments[start:]:
            segment[1] *= factor

    for match in _WEIGHT_TOKEN.finditer(prompt):
        token, explicit = match.group(0), match.group(1)
        if len(token) == 2 and token[0] == "\\":
            segments.append([token[1], 1.0, False])
        elif token == "(":
            open_round.append(len(segments))
        elif token == "[":
            open_square.append(len(segments))
        elif explicit is not None and open_round:
            scale_from(open_round.pop(), float(explicit))
        elif token == ")" and open_round:
            scale_from(open_round.pop(), ROUND_FACTOR)
        elif token == "]" and open_square:
            scale_from(open_square.pop(), 1 / ROUND_FACTOR)
        else:
            for i, part in enumerate(_BREAK.split(token)):
                if i:
                    segments.append(["", 1.0, True])
                if part:
                    segments.append([part, 1.0, False])
    for start in open_round:
        scale_from(start, ROUND_FACTOR)
    for start in open_square:
        scale_from(start, 1 / ROUND_FACTOR)

    merged: list[Segment] = []
    for text, weight, is_break in segments:
        if merged and not is_break and not merged[-1].is_break and merged[-1].weight == weight:
            merged[-1] = Segment(merged[-1].text + text, weight)
        else:
            merged.append(Segment(text, weight, is_break))
    return merged


# ``embedding:name`` in a prompt: a textual-inversion embedding (embeddings.py); the name has no spaces,
# colons or brackets, so ``(embedding:name:1.2)`` weights it like any word.
EMBEDDING_PATTERN = re.compile(r"embedding:([^\s,()\[\]:]+)")


EMBEDDING_SUFFIXES = (".safetensors", ".pt", ".bin", ".pth")


def embedding_names(prompt: str) -> list[str]:
    """Names used as ``embedding:name`` in `prompt`, in order, each once."""
    return list(dict.fromkeys(m[1] for m in EMBEDDING_PATTERN.finditer(prompt)))


def weight_problem(prompt: str) -> str | None:
    """Why the prompt's weights cannot be used (the first weight past ±MAX_PROMPT_WEIGHT or not finite), or None."""
    if "(" not in prompt and "[" not in prompt:
        return None
    for segment in parse_prompt_weights(prompt):
        if not math.isfinite(segment.weight) or abs(segment.weight) > MAX_PROMPT_WEIGHT:
            text = segment.text.strip()
            shown = repr(text if len(text) <= 40 else text[:39] + "…")
            return (f"the weight of {shown} is {segment.weight:.4g}, past the ±{MAX_PROMPT_WEIGHT:g} a prompt weight "
                    f"may have (it overflows the conditioning to NaN); write it as (word:1.5) or so — weights "
                    f"from 0.5 to 2 are usual")
    return None


_COMPEL_WEIGHT = re.compile(r"(?<![\w+-])([\w)]+?)(\+{1,}|-{2,})(?=[\s,.;)]|$)")
LORA_TAG = re.compile(r"<(lora|lyco|hypernet):([^:>]+)(?::[^>]*)?>", re.IGNORECASE)


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:59] + "…")


# A1111's prompt editing: "[from:to:when]", "[to:when]", "[from::when]" — a square group (not escaped) whose text
# ends in ":number". "[red]" (de-emphasis), "(red:1.3)" (a weight: round brackets) and "10:30" outside square
# brackets do not match; "[embedding:name]" does not either (no number after the last colon).
_PROMPT_EDITING = re.compile(r"(?<!\\)\[[^\[\]]*:\s*(?:\d+(?:\.\d*)?|\.\d+)\s*\]")
_ALTERNATION = re.compile(r"(?<!\\)\[[^\[\]|]*\|[^\[\]]*\]")          # A1111's "[red|green]": a word per step
_COMPOSABLE_AND = re.compile(r"(?<=\s)AND(?=\s)")     # A1111's composable diffusion: upper case, a word of its own


def _a1111_notes(prompt: str) -> list[str]:
    """Notes on A1111's prompt editing, alternation and AND: each is one prompt of plain words here, silently."""
    notes = []
    editing = [m.group(0) for m in _PROMPT_EDITING.finditer(prompt)]
    if editing:
        notes.append(f"{', '.join(_shown(e) for e in editing[:5])}: A1111's prompt editing [from:to:when] is not read "
                     f"here (the text encoder gets the words, colons and number as plain text for every step); write "
                     f"one prompt, or sample the early steps with one prompt and the rest with another (Schedule → "
                     f"SplitSigmas → two Sample nodes)")
    alternation = [m.group(0) for m in _ALTERNATION.finditer(prompt)]
    if alternation:
        notes.append(f"{', '.join(_shown(a) for a in alternation[:5])}: A1111's alternation [a|b] (another word each "
                     f"step) is not read here (the text encoder gets the words and the '|' as plain text); write the "
                     f"word you want, or both")
    if _COMPOSABLE_AND.search(prompt):
        notes.append("'AND': A1111's composable diffusion (each part a prompt of its own, their predictions added) is "
                     "not read here (AND is a word to the text encoder, and the parts blend into one prompt); write "
                     "one prompt and weight a part with (words:1.2), or write 'and' if you meant the word")
    return notes


def syntax_notes(prompt: str) -> list[str]:
    """Notes on other tools' prompt syntax that this one reads as plain words (empty when there is none)."""
    notes = []
    compel = [m.group(0) for m in _COMPEL_WEIGHT.finditer(prompt)]
    if compel:
        word, marks = _COMPEL_WEIGHT.match(compel[0]).groups()
        factor = 1.1 ** len(marks) if marks[0] == "+" else 0.9 ** len(marks)
        notes.append(f"{', '.join(_shown(c) for c in compel[:5])}: InvokeAI's +/- weighting is not read here (the "
                     f"marks are words to the text encoder); write ({word}:{factor:.2f}) instead")
    tags = [m.group(0) for m in LORA_TAG.finditer(prompt)]
    if tags:
        notes.append(f"{', '.join(_shown(t) for t in tags[:5])}: A1111's LoRA tags are not read from the prompt here "
                     f"(they are words to the text encoder); load the file with a LoadLoRA node and take the tag out")
    return notes + _a1111_notes(prompt)


_PROMPT_WORD_SEPARATORS = re.compile(r"[\s,()\[\]:|<>{}]+")


def bare_embedding_notes(prompt: str, embedding_files: list[str]) -> list[str]:
    """Notes on words of `prompt` that are the name of an embedding file without ``embedding:`` in front.

    A1111 uses an embedding by its file name alone ("EasyNegative"); here such a word is plain text, and on
    a real model nothing else says so. `embedding_files`: the embeddings folder's listing (relative paths,
    e.g. ``"sub/redthing.safetensors"``); names are compared in lower case, as A1111's tokenizer does."""
    by_stem: dict[str, str] = {}
    for file in embedding_files:
        base = file.rsplit("/", 1)[-1]
        if base.lower().endswith(EMBEDDING_SUFFIXES):
            by_stem.setdefault(base.rsplit(".", 1)[0].lower(), file)
    if not by_stem:
        return []
    words = _PROMPT_WORD_SEPARATORS.split(EMBEDDING_PATTERN.sub(" ", prompt))
    notes = []
    for word in dict.fromkeys(word.lower() for word in words if word):
        file = by_stem.get(word)
        if file is not None:
            shown = next(w for w in words if w.lower() == word)
            notes.append(f"{_shown(shown)} matches the embedding file {file}; write embedding:{file.rsplit('.', 1)[0]} "
                         f"to use it (a bare name is plain words here)")
    return notes
