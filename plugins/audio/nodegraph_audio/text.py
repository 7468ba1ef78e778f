"""Word-level tokenizer of the tiny text-to-audio model.

The captions of the synthesised world (synth.py) use a few dozen words; a fixed word list is
enough and keeps the model small. Unknown words become ``<unk>`` (so any prompt encodes), every
sequence starts with ``<bos>`` (so an empty prompt — the unconditional branch of CFG — still has
one token to attend to) and is padded with ``<pad>`` (id 0) to ``MAX_TOKENS``.

    VOCABULARY            the word list (index = id); stored in the model file's metadata
    tokenize(text, vocabulary, max_tokens) → list of ids (length max_tokens)
    words(text)           lower-cased words; '#' stays part of a note name ("c#4")
"""

from __future__ import annotations

import re

from .synth import LOUDNESS, NOTE_NAMES, TEMPLATES, TEMPOS

MAX_TOKENS = 12
SPECIALS = ("<pad>", "<bos>", "<unk>")


def words(text: str) -> list[str]:
    """Lower-cased words of `text` (letters of any script, digits and '#': "très" is one word, not "tr" + "s")."""
    return re.findall(r"(?:[^\W_]|#)+", text.lower())


def _build_vocabulary() -> tuple[str, ...]:
    found: list[str] = []
    notes = [f"{name}{octave}" for octave in (3, 4, 5, 6) for name in NOTE_NAMES]
    template_words = [w for templates in TEMPLATES.values() for t in templates
                      for w in words(t.replace("{", " ").replace("}", " "))]
    for word in [*LOUDNESS, *notes, *map(str, TEMPOS), "major", "minor", "rising", "falling", *template_words]:
        if word not in found and word not in ("l", "n", "q", "d", "t"):
            found.append(word)
    return SPECIALS + tuple(found)


VOCABULARY = _build_vocabulary()


def tokenize(text: str, vocabulary: tuple[str, ...] = VOCABULARY, max_tokens: int = MAX_TOKENS) -> list[int]:
    """Token ids: <bos>, the words (unknown → <unk>, cut at max_tokens), then <pad> (0)."""
    index = {word: i for i, word in enumerate(vocabulary)}
    ids = [index["<bos>"]] + [index.get(word, index["<unk>"]) for word in words(text)]
    ids = ids[:max_tokens]
    return ids + [index["<pad>"]] * (max_tokens - len(ids))
