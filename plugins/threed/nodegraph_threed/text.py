"""The caption vocabulary and its encoding into CONDITIONING for the text-to-points model.

The tiny model's text encoder is its own (denoiser.TextEncoder): a word embedding over this closed
vocabulary, one transformer layer, and a masked mean. What flows through the CONDITIONING port is
the prompt's words as a float one-hot matrix, so the sampling stack can concatenate, broadcast and
cast it like any conditioning tensor (integer ids would not survive a cast to the model's dtype):

    {"words": (B, MAX_WORDS, len(VOCABULARY)) float32}     row k = one-hot of word k, zeros = no word

The empty prompt "" is all zeros: the unconditional branch of classifier-free guidance (the model
was trained with 10 % of captions dropped to it).

    VOCABULARY, MAX_WORDS        the closed word list (order = embedding rows) and the prompt length limit
    SYNONYMS                     everyday words read as vocabulary words ("big" → large, "ball" → sphere)
    encode_words(text)           prompt → (1, MAX_WORDS, V) float one-hot; PromptError names the bad word
    encode_batch(texts)          many prompts → (B, MAX_WORDS, V)
    prompt_warnings(text)        what the model will likely get wrong about a readable prompt (no shape, order)
"""

from __future__ import annotations

import torch

from .shapes import COLOURS, SHAPES, SIZES, STRETCHES

VOCABULARY = ("a", "an", "the", *SIZES, *[s for s in STRETCHES], *COLOURS, *SHAPES)
MAX_WORDS = 8
_INDEX = {word: k for k, word in enumerate(VOCABULARY)}
# Everyday words people type for the same things, read as the vocabulary word (the model never saw them).
SYNONYMS = {"big": "large", "huge": "large", "little": "small", "tiny": "small", "ball": "sphere",
            "box": "cube", "block": "cube", "donut": "torus", "doughnut": "torus", "ring": "torus",
            "tube": "cylinder", "violet": "purple", "high": "tall", "flat": "wide"}


class PromptError(ValueError):
    """A prompt the tiny text encoder cannot read: an unknown word, or too many words."""


def tokenize(text: str) -> list[int]:
    """Word indices of a prompt (lower-cased, split on spaces and commas)."""
    if not isinstance(text, str):
        raise PromptError(f"expected a prompt string, found {type(text).__name__}")
    words = [SYNONYMS.get(w, w) for w in text.lower().replace(",", " ").replace(".", " ").split()]
    unknown = [w for w in words if w not in _INDEX]
    if unknown:
        raise PromptError(f"the word {unknown[0]!r} is not in the model's vocabulary ({len(VOCABULARY)} words: "
                          f"{', '.join(VOCABULARY)}); describe a shape with those words, e.g. 'a tall red cylinder'")
    if len(words) > MAX_WORDS:
        raise PromptError(f"the prompt has {len(words)} words; the model reads at most {MAX_WORDS}")
    return [_INDEX[w] for w in words]


def prompt_warnings(text: str) -> list[str]:
    """What about a readable prompt the model will likely get wrong: no shape word (it draws an average blob),
    or the shape word not last (captions were "a [size] [stretch] [colour] SHAPE"; another order changes the
    shape the model draws). Empty for "" (unconditional) and for prompts in the trained order."""
    words = [SYNONYMS.get(w, w) for w in text.lower().replace(",", " ").replace(".", " ").split()]
    if not words:
        return []
    shapes = [k for k, w in enumerate(words) if w in SHAPES]
    if not shapes:
        return [f"the prompt names no shape ({', '.join(SHAPES)}): the model draws an average blob; add one, "
                f"e.g. 'a red cube'"]
    if shapes[-1] != len(words) - 1:
        return [f"the shape word {words[shapes[-1]]!r} is not last: the model learnt 'a [size] [stretch] [colour] "
                f"shape' and other orders change what it draws; write e.g. 'a tall red cylinder'"]
    return []


def encode_words(text: str) -> torch.Tensor:
    """(1, MAX_WORDS, V) float32 one-hot rows of the prompt's words (zeros after the last word)."""
    out = torch.zeros(1, MAX_WORDS, len(VOCABULARY))
    for position, index in enumerate(tokenize(text)):
        out[0, position, index] = 1.0
    return out


def encode_batch(texts: list[str]) -> torch.Tensor:
    """(B, MAX_WORDS, V) one-hot words of several prompts."""
    return torch.cat([encode_words(t) for t in texts]) if texts else torch.zeros(0, MAX_WORDS, len(VOCABULARY))
