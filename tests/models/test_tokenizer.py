"""CLIP tokenizer: exact ids against transformers and OpenAI's tokenizer; weighting syntax; chunking."""

import gzip
import importlib.util
import json
import random
import string

import pytest
import torch

from nodes.models.tokenizer import (
    BOS,
    EOS,
    Segment,
    default_tokenizer,
    default_vocab_path,
    parse_prompt_weights,
    tokenize_prompt,
)

PROMPTS = [
    "a photo of a cat",
    "A Photo Of A CAT",
    "masterpiece, best quality, 1girl, solo, looking at viewer!!",
    "don't stop believin' -- it's 100% (really) worth $5.99?",
    "über café naïve résumé, Ærøskøbing",
    "日本語のテキスト、中文字符 и кириллица 😀🎉",
    "tabs\tand\nnewlines   and    spaces",
    "hyper-detailed 8k_uhd photo|render #trending @artstation",
    " ".join(["a very long prompt about a red fox in a snowy forest at dawn"] * 8),  # > 77 tokens
]


@pytest.fixture(scope="module")
def transformers_tokenizer(tmp_path_factory):
    """transformers' CLIPTokenizer over vocab.json / merges.txt made from the same BPE file."""
    pytest.importorskip("transformers")
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    with gzip.open(default_vocab_path(), "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    merges = lines[1 : 1 + 48894]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder = tmp_path_factory.mktemp("clip_tokenizer")
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return CLIPTokenizer.from_pretrained(str(folder))


@pytest.fixture(scope="module")
def openai_tokenizer():
    """OpenAI's own SimpleTokenizer, loaded from its file (importing `clip` would import torchvision)."""
    pytest.importorskip("ftfy")
    path = default_vocab_path().parent / "simple_tokenizer.py"
    spec = importlib.util.spec_from_file_location("openai_simple_tokenizer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SimpleTokenizer(str(default_vocab_path()))


def test_known_ids():
    """ "a photo of a cat" is [49406, 320, 1125, 539, 320, 2368, 49407], padded with 49407 to 77."""
    tokenizer = default_tokenizer()
    ids = tokenizer.pad(tokenizer.encode("a photo of a cat"))
    assert ids[:7] == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert len(ids) == 77 and set(ids[7:]) == {EOS}
    assert tokenizer.vocab_size == 49408


@pytest.mark.parity
@pytest.mark.parametrize("prompt", PROMPTS)
def test_ids_match_transformers_and_openai(prompt, transformers_tokenizer, openai_tokenizer):
    """Token ids equal transformers' CLIPTokenizer and OpenAI's SimpleTokenizer, untruncated and padded."""
    ours = default_tokenizer().encode(prompt)
    assert ours == transformers_tokenizer(prompt, add_special_tokens=False).input_ids
    assert ours == openai_tokenizer.encode(prompt)
    padded = transformers_tokenizer(prompt, padding="max_length", max_length=77, truncation=True).input_ids
    assert default_tokenizer().pad(ours) == padded


@pytest.mark.parity
def test_long_words_match_transformers_and_openai(transformers_tokenizer, openai_tokenizer):
    """BPE with a heap of candidate pairs fuses the same pieces as the reference loop on long words of many merges
    (random letters, repeated letters, CJK, mixed bytes)."""
    rng = random.Random(0)
    words = ["".join(rng.choices(string.ascii_lowercase, k=3000)), "a" * 999, "ab" * 700,
             "".join(map(chr, rng.choices(range(0x4E00, 0x4E00 + 2000), k=500))),
             "".join(rng.choices("éüßæø日本кир", k=800))]
    for word in words:
        ours = default_tokenizer().encode(word)
        assert ours == transformers_tokenizer(word, add_special_tokens=False).input_ids
        assert ours == openai_tokenizer.encode(word)


@pytest.mark.parametrize(
    "prompt, expected",
    [
        ("a (red:1.3) cat", [("a ", 1.0), ("red", 1.3), (" cat", 1.0)]),
        ("(red)", [("red", 1.1)]),
        ("[red]", [("red", 1 / 1.1)]),
        ("((red))", [("red", 1.1 * 1.1)]),
        ("(a (b:2) c:0.5)", [("a ", 0.5), ("b", 1.0), (" c", 0.5)]),
        (r"\(not weighted\) \[x\] a\\b", [("(not weighted) [x] a\\b", 1.0)]),
        ("(unclosed red cat", [("unclosed red cat", 1.1)]),
        ("stray) bracket]", [("stray) bracket]", 1.0)]),
        ("ratio 16:9", [("ratio 16:9", 1.0)]),
        ("", []),
    ],
)
def test_weighting_syntax(prompt, expected):
    """The A1111 / ComfyUI weighting syntax gives the expected (text, weight) segments."""
    segments = parse_prompt_weights(prompt)
    assert [s.text for s in segments] == [text for text, _ in expected]
    assert [s.weight for s in segments] == pytest.approx([weight for _, weight in expected])


@pytest.mark.parity
def test_weighted_prompt_tokens_equal_the_stripped_text(transformers_tokenizer):
    """Tokens of a weighted prompt are the reference tokens of its text with the syntax removed."""
    prompt = "a (beautiful:1.2) [blurry] photo of ((a cat)), \\(escaped\\) text"
    stripped = "a beautiful blurry photo of a cat, (escaped) text"
    tokens = tokenize_prompt(default_tokenizer(), prompt)
    assert tokens.chunks[0] == transformers_tokenizer(stripped, add_special_tokens=False).input_ids
    weights = dict(zip(tokens.chunks[0], tokens.chunk_weights[0]))
    beautiful, blurry, cat = (default_tokenizer().encode(w)[0] for w in ("beautiful", "blurry", "cat"))
    assert weights[beautiful] == pytest.approx(1.2)
    assert weights[blurry] == pytest.approx(1 / 1.1)
    assert weights[cat] == pytest.approx(1.21)


def test_long_prompts_split_into_77_token_chunks():
    """Content is cut every 75 tokens; each chunk is [BOS, content, EOS] padded with the pad id."""
    tokens = tokenize_prompt(default_tokenizer(), " ".join(["cat"] * 160))
    assert [len(c) for c in tokens.chunks] == [75, 75, 10]
    ids = tokens.ids(pad_token_id=0)
    assert ids.shape == (3, 77)
    assert ids[:, 0].tolist() == [BOS] * 3 and ids[:, 76].tolist() == [EOS, EOS, 0]
    assert ids[2, 11].item() == EOS and ids[2, 12:].eq(0).all()
    assert tokens.weights().shape == (3, 77)


def test_break_starts_a_new_chunk():
    """BREAK closes the current chunk early, as in A1111."""
    tokens = tokenize_prompt(default_tokenizer(), "a red cat BREAK a blue dog")
    assert len(tokens.chunks) == 2
    assert tokens.chunks[1] == default_tokenizer().encode("a blue dog")
    assert Segment("", 1.0, True) in parse_prompt_weights("x BREAK y")


def test_empty_prompt_is_one_empty_chunk():
    """The unconditional prompt "" is BOS, EOS, then padding."""
    ids = tokenize_prompt(default_tokenizer(), "").ids(pad_token_id=EOS, num_chunks=2)
    assert ids.shape == (2, 77)
    assert ids[0, :2].tolist() == [BOS, EOS] and torch.equal(ids[0], ids[1])


def test_decode_reverses_encode():
    """decode(encode(text)) gives the normalised text back."""
    tokenizer = default_tokenizer()
    assert tokenizer.decode(tokenizer.encode("Hello, Wörld! 😀")) == "hello , wörld ! 😀"


def test_the_word_cache_is_bounded(monkeypatch):
    """A server tokenises prompts for weeks: the word cache starts again past WORD_CACHE_ENTRIES, same ids."""
    from nodes.models.tokenizer import CLIPTokenizer, default_vocab_path

    tokenizer = CLIPTokenizer(default_vocab_path())
    monkeypatch.setattr(CLIPTokenizer, "WORD_CACHE_ENTRIES", 8)
    words = [f"word{i}" for i in range(30)]
    first = tokenizer.encode(" ".join(words))
    assert len(tokenizer._word_cache) <= 8
    assert tokenizer.encode(" ".join(words)) == first


def test_the_word_cache_is_bounded_by_what_it_holds(monkeypatch):
    """The cache is shared by every user of a loaded encoder: 50,000 cached 20,000-letter words held 5.6 GB. A word
    longer than MAX_CACHED_WORD_CHARS is not cached, and the cache starts again past WORD_CACHE_IDS ids; same ids."""
    from nodes.models.tokenizer import CLIPTokenizer, default_vocab_path

    tokenizer = CLIPTokenizer(default_vocab_path())
    long_word = "".join(random.Random(0).choices(string.ascii_lowercase, k=20_000))
    ids = tokenizer.encode(long_word)
    assert tokenizer._word_cache == {} and tokenizer.encode(long_word) == ids
    monkeypatch.setattr(CLIPTokenizer, "WORD_CACHE_IDS", 40)
    words = ["".join(random.Random(i).choices(string.ascii_lowercase, k=12)) for i in range(30)]
    first = tokenizer.encode(" ".join(words))
    assert 0 < sum(map(len, tokenizer._word_cache.values())) <= 40
    assert tokenizer.encode(" ".join(words)) == first


@pytest.mark.parametrize("text, expected", [
    ("a cat &#" + "9" * 5000, "a cat \ufffd"),                    # past U+10FFFF, as html.unescape and a browser read it
    ("a cat &amp;#" + "9" * 5000 + ";", "a cat \ufffd"),          # made by the first of the two unescapes
    ("&#" + "0" * 5000 + "65;x", "ax"),                           # leading zeros count toward int()'s limit too
    ("&#x" + "f" * 5000 + ";", "\ufffd"),
])
def test_a_character_reference_of_thousands_of_digits_is_read_as_a_browser_reads_it(text, expected):
    """`&#` and 5,000 digits failed EncodeText with Python's "Exceeds the limit (4300 digits) for integer string
    conversion" (from html.unescape); it is the replacement character, as any reference out of range is."""
    from nodes.models.tokenizer import normalize_text

    assert normalize_text(text) == expected


REFERENCES = "&#65;&#0000066;&#67 &#99999999;&#1114111;&#1114112;&#x110000;&#x41;&amp;#68;&#55296;&#128;&#0;&#;&#x;"


def test_character_references_unescape_as_html_does():
    """Every reference of at most 4,300 digits reads as html.unescape (twice, as OpenAI's tokenizer) reads it."""
    import html

    from nodes.models.tokenizer import _unescape_html

    for text in (REFERENCES, "&#" + "0" * 4000 + "70", "&#" + "1" * 4000, "&&#65;&#x&#66"):
        assert _unescape_html(_unescape_html(text)) == html.unescape(html.unescape(text))


@pytest.mark.parity
def test_character_references_match_openai(openai_tokenizer):
    """The ids of a prompt of character references equal OpenAI's SimpleTokenizer's (which unescapes twice)."""
    prompt = "a cat " + REFERENCES + " &#" + "0" * 4000 + "72;"
    assert default_tokenizer().encode(prompt) == openai_tokenizer.encode(prompt)
