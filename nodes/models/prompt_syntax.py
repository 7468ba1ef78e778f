"""The prompt syntax people type, read without torch (so `validate` checks prompts without importing it).

Map
- ``parse_prompt_weights(prompt) -> [Segment]``: the A1111 / ComfyUI weighting syntax — ``(word:1.3)`` sets
  x1.3, ``(word)`` x1.1, ``[word]`` /1.1, nesting multiplies, ``\\(`` ``\\)`` ``\\[`` ``\\]`` ``\\\\`` are
  literal, an unclosed bracket runs to the end of the prompt, a stray closer is literal text, ``BREAK``
  (upper case, a word of its own) starts a new 75-token chunk (``tokenizer.tokenize_prompt``).
- ``EMBEDDING_PATTERN`` / ``embedding_names(prompt)``: ``embedding:name`` textual-inversion references
  (``embeddings.py`` loads them); ``EMBEDDING_SUFFIXES`` the files such a name may be;
  ``find_embedding_file(name, listing)`` the file it means (the exact spelling, else the one differing in case).
- ``weight_problem(prompt)``: why a prompt's weights cannot be used (a weight past ±MAX_PROMPT_WEIGHT, or
  not finite: 1e30 gave a NaN image blamed on the sampler), else None.
- ``syntax_notes(prompt)``: other tools' syntax this one reads as plain words — InvokeAI / compel ``red++`` /
  ``red--``, A1111 ``<lora:name:1>`` tags, prompt editing ``[from:to:when]``, alternation ``[a|b]`` and
  composable ``a AND b`` — each with what to write here.
- ``bare_embedding_notes(prompt, embedding_files)``: words of a prompt that are the file name of an embedding
  (A1111 uses "EasyNegative" bare; here only ``embedding:EasyNegative`` loads it).

Every function here is linear in the prompt's length: they run at validation and per EncodeText in a server's
threads, and a regular expression holds the GIL for its whole search, so one user's 20,000-character prompt
that made a pattern rescan the rest of the text at each position stalled every other user for seconds. A
pattern's repeated class must not match what ends it (``<lora:`` ends at a ``<`` too), and a lazy or
optional run never starts at every position of a long run (tests/security/test_regex_bounds.py).
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
_BREAK = re.compile(r"\bBREAK\b")
ROUND_FACTOR = 1.1  # "(word)" emphasises by 1.1, "[word]" de-emphasises by 1/1.1 (A1111 convention)


def _group_factors(tokens: list[re.Match]) -> dict[int, float]:
    """{index of an opening "(" / "[" token: its group's factor} — the explicit weight of its ":1.3)", 1.1 for ")"
    or an unclosed "(", 1/1.1 for "]" or an unclosed "[" — and {index of a closer that closes a group: 0.0}; a
    closer missing from the table is literal text. One pass with a stack per bracket kind."""
    factors: dict[int, float] = {}
    open_round: list[int] = []
    open_square: list[int] = []
    for index, match in enumerate(tokens):
        token, explicit = match.group(0), match.group(1)
        if token == "(":
            open_round.append(index)
        elif token == "[":
            open_square.append(index)
        elif explicit is not None and open_round:
            factors[open_round.pop()], factors[index] = float(explicit), 0.0
        elif token == ")" and open_round:
            factors[open_round.pop()], factors[index] = ROUND_FACTOR, 0.0
        elif token == "]" and open_square:
            factors[open_square.pop()], factors[index] = 1 / ROUND_FACTOR, 0.0
    factors.update({index: ROUND_FACTOR for index in open_round})
    factors.update({index: 1 / ROUND_FACTOR for index in open_square})
    return factors


def parse_prompt_weights(prompt: str) -> list[Segment]:
    """Split a prompt into weighted segments (A1111 / ComfyUI syntax, see the module docstring).

    ``"a (red:1.3) [cat]"`` -> ``[("a ", 1.0), ("red", 1.3), (" ", 1.0), ("cat", 1/1.1)]``.

    Linear in the prompt's length (it runs at validation and per EncodeText, holding the GIL: a pass that
    re-weighted every earlier segment at each ")" took 2 s for "(a" * 10000): each group's factor is found
    first, then one pass keeps the product of the open groups' factors on a stack per bracket kind.
    """
    tokens = list(_WEIGHT_TOKEN.finditer(prompt))
    factors = _group_factors(tokens)
    round_weights, square_weights = [1.0], [1.0]     # products of the open groups' factors, outermost first
    segments: list[Segment] = []
    for index, match in enumerate(tokens):
        token = match.group(0)
        weight = round_weights[-1] * square_weights[-1]
        if len(token) == 2 and token[0] == "\\":
            segments.append(Segment(token[1], weight))
        elif token in ("(", "["):
            stack = round_weights if token == "(" else square_weights
            stack.append(stack[-1] * factors[index])
        elif index in factors:               # a closer that closes a group
            (square_weights if token == "]" else round_weights).pop()
        else:
            parts = _BREAK.split(token)
            for i, part in enumerate(parts):
                if i:
                    segments.append(Segment("", weight, True))
                part = part.lstrip() if i else part                     # a BREAK takes the spaces around it
                part = part.rstrip() if i < len(parts) - 1 else part
                if part:
                    segments.append(Segment(part, weight))
    return _merged(segments)


def _merged(segments: list[Segment]) -> list[Segment]:
    """Neighbouring text segments of one weight as one segment (their texts joined once, not re-copied per part)."""
    merged: list[Segment] = []
    run: list[str] = []
    for segment in segments + [Segment("", math.nan, True)]:       # a sentinel ends the last run
        if run and not segment.is_break and segment.weight == merged[-1].weight:
            run.append(segment.text)
            continue
        if run:
            merged[-1] = merged[-1]._replace(text="".join(run))
        merged.append(segment)
        run = [] if segment.is_break else [segment.text]
    return merged[:-1]


# ``embedding:name`` in a prompt: a textual-inversion embedding (embeddings.py); the name has no spaces,
# colons or brackets, so ``(embedding:name:1.2)`` weights it like any word.
EMBEDDING_PATTERN = re.compile(r"embedding:([^\s,()\[\]:]+)")


EMBEDDING_SUFFIXES = (".safetensors", ".pt", ".bin", ".pth")


def embedding_names(prompt: str) -> list[str]:
    """Names used as ``embedding:name`` in `prompt`, in order, each once."""
    return list(dict.fromkeys(m[1] for m in EMBEDDING_PATTERN.finditer(prompt)))


def embedding_file_names(name: str) -> list[str]:
    """The file names ``embedding:name`` may mean, in the order they are tried: `name` itself when it has an
    embedding file's suffix, else `name` with each suffix."""
    return [name] if name.lower().endswith(EMBEDDING_SUFFIXES) else [name + suffix for suffix in EMBEDDING_SUFFIXES]


def find_embedding_file(name: str, available: list[str]) -> tuple[str | None, str | None]:
    """(the file of the embeddings folder's listing `available` that ``embedding:name`` means, None) — or (None, why
    not) when several files differ from it only in case, or (None, None) when none is there.

    The exact spelling first; else the one file whose name differs only in case: A1111 users type embedding names
    in any case (A1111 matched them so; its folders were often on case-blind disks). Validation and the loader
    both ask this, so a name that passes validation loads."""
    listed = set(available)
    candidates = embedding_file_names(name)
    for candidate in candidates:
        if candidate in listed:
            return candidate, None
    by_folded: dict[str, list[str]] = {}
    for file in available:
        by_folded.setdefault(file.lower(), []).append(file)
    for candidate in candidates:
        same = by_folded.get(candidate.lower(), [])
        if len(same) == 1:
            return same[0], None
        if same:
            shown = " or ".join(f"embedding:{strip_embedding_suffix(file)}" for file in sorted(same))
            return None, (f"several embedding files differ from embedding:{name} only in case "
                          f"({', '.join(sorted(same))}); did you mean {shown}? Write the name as the file spells it")
    return None, None


def strip_embedding_suffix(file: str) -> str:
    """``"EasyNegative.safetensors"`` -> ``"EasyNegative"``: the name a prompt writes for an embedding file."""
    return next((file[: -len(suffix)] for suffix in EMBEDDING_SUFFIXES if file.lower().endswith(suffix)), file)


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


# InvokeAI / compel's "red++" / "red--": a run of word characters and ")" (compel weights "(red cat)++" too), then
# "+"s or two or more "-"s, then a space, punctuation or the end. Found run by run, linearly: a lazy regex that began
# at each word in turn rescanned the run after it ("a)" * 10000 held the server for 5 s).
_COMPEL_WORD_RUN = re.compile(r"[\w)]+")
_COMPEL_MARKS = re.compile(r"(\++|-{2,})(?=[\s,.;)]|$)")
# A1111's extra-network tags; no "<" inside one, so an unclosed "<lora:" stops at the next "<" (with "[^>]" each
# unclosed tag scanned to the end of the prompt: quadratic)
LORA_TAG = re.compile(r"<(lora|lyco|hypernet):([^:<>]+)(?::[^<>]*)?>", re.IGNORECASE)


def compel_weights(prompt: str) -> list[tuple[str, str, str]]:
    """(text, word, marks) of each InvokeAI ``word++`` / ``word--`` in `prompt`, in order. The word starts where a
    run of word characters and ")" does when no "+" / "-" comes before it (``a+b++`` is no weighting), else just
    after the run's first ")" that has more of the run after it (``x+y)z++`` is ``z++``)."""
    found = []
    for run in _COMPEL_WORD_RUN.finditer(prompt):
        marks = _COMPEL_MARKS.match(prompt, run.end())
        if marks is None:
            continue
        start = run.start()
        if start > 0 and prompt[start - 1] in "+-":
            bracket = prompt.find(")", start, run.end() - 1)      # a ")" with a word character or ")" after it
            if bracket < 0:
                continue
            start = bracket + 1
        found.append((prompt[start:marks.end()], prompt[start:run.end()], marks.group(1)))
    return found


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
    compel = compel_weights(prompt)
    if compel:
        _text, word, marks = compel[0]
        factor = 1.1 ** len(marks) if marks[0] == "+" else 0.9 ** len(marks)
        notes.append(f"{', '.join(_shown(c) for c, _word, _marks in compel[:5])}: InvokeAI's +/- weighting is not "
                     f"read here (the marks are words to the text encoder); write ({word}:{factor:.2f}) instead")
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
    first_spelling: dict[str, str] = {}          # lower case → the word as the prompt first writes it
    for word in words:
        if word:
            first_spelling.setdefault(word.lower(), word)
    notes = []
    for word, shown in first_spelling.items():
        file = by_stem.get(word)
        if file is not None:
            notes.append(f"{_shown(shown)} matches the embedding file {file}; write embedding:{file.rsplit('.', 1)[0]} "
                         f"to use it (a bare name is plain words here)")
    return notes
