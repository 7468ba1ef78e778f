"""Text one user sends is parsed in time linear in its length: the A1111 import, the prompt-syntax checks and the
CLIP tokenizer.

A regular expression holds the GIL for its whole search, so a pattern that rescans the rest of the text from every
position (`<lora:` repeated, each unclosed tag scanning to the end) stalled every user of a server for seconds per
message: 11 s for a 100 KB `import_graph`, 5 s per EncodeText for `"a)" * 10000`. The rule tested here, not a
timing: four times the text takes well under sixteen times as long (a quadratic pass), and the worst text that fits
an input's own limit is parsed in under a second on any machine.
"""

from __future__ import annotations

import random
import string
import time
from typing import Callable

import pytest

from nodegraph.a1111 import MAX_PARAMETERS_CHARS, parameters_graph
from nodes.models.prompt_syntax import (
    bare_embedding_notes,
    compel_weights,
    parse_prompt_weights,
    syntax_notes,
    weight_problem,
)

PROMPT_LIMIT = 20_000          # EncodeText's `text` max_length
CEILING_S = 1.0                # the worst text at its limit; the fixed parsers take milliseconds


def _seconds(parse: Callable[[str], object], text: str) -> float:
    """The fastest of two calls: a busy machine slows one call, not both."""
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        parse(text)
        best = min(best, time.perf_counter() - start)
    return best


def _assert_linear(parse: Callable[[str], object], make: Callable[[int], str], limit: int) -> None:
    """`parse` of the text `make` builds at a quarter of `limit` and at `limit` grows at most about linearly
    (8x for 4x the text, with slack for timer noise; a quadratic pass is 16x), and the larger stays under a second."""
    small, large = make(limit // 4), make(limit)
    assert len(large) <= limit
    small_s, large_s = _seconds(parse, small), _seconds(parse, large)
    assert large_s < CEILING_S, f"{len(large)} characters took {large_s:.2f} s"
    assert large_s < 8 * small_s + 0.05, f"4x the text took {large_s / max(small_s, 1e-9):.0f}x as long"


def _repeated(unit: str, tail: str = "") -> Callable[[int], str]:
    """A text of `unit` repeated to fill `size` characters (less the length of `tail`, which ends it)."""
    return lambda size: unit * ((size - len(tail)) // len(unit)) + tail


PROMPTS = {       # each made one pattern or pass of prompt_syntax quadratic before it was rewritten
    "word and bracket runs (InvokeAI marks)": _repeated("a)"),
    "a long run before + marks": _repeated("a)", "++"),
    "unclosed groups": _repeated("(a"),
    "unclosed prompt editing": _repeated("[a:"),
    "interleaved groups": _repeated("([a)"),
    "spaces inside a group (BREAK)": lambda size: "(" + " " * (size - 1),
    "unclosed LoRA tags": _repeated("<lora:"),
    "LoRA tags with an unclosed weight": _repeated("<lora:a:"),
    "alternation": _repeated("[a|"),
    "escaped brackets": _repeated("\\("),
    "colons and numbers": _repeated(":1"),
}
CHECKS = {
    "syntax_notes": syntax_notes,
    "parse_prompt_weights": parse_prompt_weights,
    "weight_problem": weight_problem,
    "bare_embedding_notes": lambda text: bare_embedding_notes(text, ["EasyNegative.safetensors", "a.pt"]),
}


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("prompt", PROMPTS)
def test_prompt_checks_are_linear_in_the_prompt(check, prompt):
    """Every prompt-syntax check runs at validation or per EncodeText: none is quadratic in a 20,000-character
    prompt (`syntax_notes("a)" * 10000)` took 4-7 s, `weight_problem("(a" * 10000)` 2.3 s, a group of spaces 16 s)."""
    _assert_linear(CHECKS[check], PROMPTS[prompt], PROMPT_LIMIT)


def _random_word(alphabet: str) -> Callable[[int], str]:
    """One word of `size` characters drawn from `alphabet` (seeded): few of its pairs merge, so BPE fuses them one
    by one — the worst case of a loop that rescans the word per merge."""
    return lambda size: "".join(random.Random(0).choices(alphabet, k=size))


TOKENIZER_PROMPTS = {
    "word and bracket runs": _repeated("a)"),
    "one long word of random letters": _random_word(string.ascii_lowercase),
    "one long word of CJK characters": _random_word("".join(map(chr, range(0x4E00, 0x4E00 + 2000)))),
    "one long word of one letter": _repeated("a"),
    # html.unescape's int() refused it past 4,300 digits ("Exceeds the limit"); now the replacement character
    "a character reference of every digit": lambda size: "&#" + "9" * (size - 2),
}


@pytest.mark.parametrize("prompt", TOKENIZER_PROMPTS)
def test_tokenize_prompt_is_linear_in_the_prompt(prompt):
    """EncodeText tokenizes its prompt holding the GIL: BPE rescanning a 20,000-letter word per merge took 16 s
    (1.4 s at 5,000 letters); the heap of candidate pairs makes it O(n log n). Each call starts from an empty word
    cache, or the second of the two timed calls would look the word up."""
    from nodes.models.tokenizer import default_tokenizer, tokenize_prompt

    tokenizer = default_tokenizer()

    def tokenize(text: str) -> object:
        tokenizer._word_cache.clear()
        return tokenize_prompt(tokenizer, text)

    _assert_linear(tokenize, TOKENIZER_PROMPTS[prompt], PROMPT_LIMIT)


A1111_TEXTS = {    # the body of a prompt; the settings line follows
    "unclosed LoRA tags": "<lora:",
    "unclosed LyCORIS tags": "<lyco:x",
    "unclosed extra-network tags, an embedding listed": "<a:",
    "embedding prefixes": "embedding:",
    "unclosed tags with a name": "<lora:a:",
}
SETTINGS = "\nSteps: 2, Seed: 1, Size: 64x64"


@pytest.mark.parametrize("unit", A1111_TEXTS.values(), ids=list(A1111_TEXTS))
def test_a1111_import_is_linear_in_the_text(unit):
    """`import_graph` of A1111 parameters runs `parameters_graph` holding the GIL: 100 KB of `<lora:` took 11-17 s
    (each unclosed tag scanned to the end); now any text under MAX_PARAMETERS_CHARS takes milliseconds."""
    def parse(text: str) -> object:
        return parameters_graph(text, list_model_files=lambda folder: (["EasyNegative.safetensors", "a.safetensors"],
                                                                       []))

    _assert_linear(parse, _repeated(unit, SETTINGS), MAX_PARAMETERS_CHARS)


def test_a1111_settings_line_is_linear():
    """The settings line is split in one pass, quoted values and all (a regex over it was quadratic)."""
    def parse(text: str) -> object:
        return parameters_graph(text)

    _assert_linear(parse, lambda size: "a\nSteps: 2, " + 'K: "\\", ' * ((size - 12) // 9), MAX_PARAMETERS_CHARS)


@pytest.mark.parametrize("prompt, expected", [
    ("red++ cat", ["red++"]),
    ("(red cat)-- x", ["cat)--"]),          # the run of word characters and ")" before the marks
    ("a+b++ c", []),                         # "b" follows a "+": no weighting
    ("x+y)z++", ["z++"]),                    # the word starts after the run's ")"
    ("red+- x", []),
    ("red- x", []),                          # one "-" is a hyphen
    ("red++,blue-- ", ["red++", "blue--"]),
    ("red++x", []),                          # marks are followed by a space, punctuation or the end
])
def test_compel_weights_find_what_the_regex_found(prompt, expected):
    """The linear search for InvokeAI's `word++` finds what the former (quadratic) regex found."""
    assert [text for text, _word, _marks in compel_weights(prompt)] == expected


def test_lora_tags_in_a1111_text_still_read():
    """Ordinary tags are still read after the pattern stopped at "<": two tags, one unclosed tag left as text."""
    graph = parameters_graph("a <lora:one:0.5> <lora:two> <lora:open cat" + SETTINGS)
    loras = [node["inputs"] for node in graph["nodes"].values() if node["type"] == "LoadLoRA"]
    assert [(lora["lora_name"], lora["strength_model"]) for lora in loras] == [("one.safetensors", 0.5),
                                                                              ("two.safetensors", 1.0)]
    assert graph["nodes"]["prompt"]["inputs"]["text"] == "a   <lora:open cat"
