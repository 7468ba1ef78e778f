"""T5's SentencePiece tokenizer, read from the ``spiece.model`` that ships with a T5 checkpoint.

Reference: Kudo & Richardson 2018, "SentencePiece"; T5 (Raffel et al. 2020 §2.2) uses a
unigram model of 32,000 pieces with pad = 0, eos = 1, unk = 2 and appends ``</s>`` to every
text. The ``sentencepiece`` package does the segmentation; this module adds T5's framing:
ids + eos, truncation (eos kept), padding with pad to a fixed length (SD3 pads to 256 or 77).

Objects: :class:`T5Tokenizer` (``encode(text) -> ids``, ``__call__(texts) -> (ids, mask)``),
:func:`find_spiece_model` (the file next to a checkpoint) and :class:`TokenizerModelMissing`.
No vocabulary is downloaded: without the checkpoint's ``spiece.model`` there is no tokenizer.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["T5Tokenizer", "TokenizerModelMissing", "find_spiece_model", "SPIECE_NAMES"]

#: File names a T5 tokenizer model is looked for under, next to the weights.
SPIECE_NAMES = ("spiece.model", "tokenizer/spiece.model", "tokenizer_3/spiece.model", "t5xxl.spiece.model")


class TokenizerModelMissing(FileNotFoundError):
    """A T5 checkpoint without its SentencePiece model: names the file and where the model was looked for."""


def find_spiece_model(weights: str | os.PathLike) -> Path:
    """The ``spiece.model`` belonging to ``weights`` (a file or folder): same folder, ``<stem>.spiece.model``,
    or the diffusers sub-folders ``tokenizer_3/`` / ``tokenizer/``."""
    weights = Path(weights)
    folder = weights if weights.is_dir() else weights.parent
    candidates = [folder / name for name in SPIECE_NAMES]
    if not weights.is_dir():
        candidates.insert(0, weights.with_name(weights.name.split(".")[0] + ".spiece.model"))
    if weights.is_dir() or weights.parent.name.startswith("text_encoder"):  # diffusers: text_encoder_3/ beside tokenizer_3/
        root = folder if weights.is_dir() else folder.parent
        candidates += [root / "tokenizer_3" / "spiece.model", root / "tokenizer" / "spiece.model"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise TokenizerModelMissing(
        f"{weights}: a T5 text encoder needs its SentencePiece tokenizer model, which is not downloaded at run "
        f"time; looked for {looked}. Copy the spiece.model that came with the checkpoint (e.g. the "
        f"tokenizer_3/ folder of the SD3 diffusers repository) next to the weights.")


class T5Tokenizer:
    """Text -> T5 token ids with ``</s>`` appended.

    Args:
        model_file: the SentencePiece ``spiece.model``.
        max_length: pad / truncate to this many ids (eos included); SD3 uses 256 (77 in the original code).
    """

    def __init__(self, model_file: str | os.PathLike, max_length: int = 256):
        import sentencepiece  # optional dependency: only T5-based models need it

        model_file = Path(model_file)
        if not model_file.is_file():
            raise TokenizerModelMissing(f"{model_file}: SentencePiece model not found; pass the checkpoint's "
                                        f"spiece.model")
        self.processor = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
        self.model_file = model_file
        self.max_length = max_length
        self.pad_id = max(self.processor.pad_id(), 0)  # T5 models define pad = 0
        self.eos_id = self.processor.eos_id()
        if self.eos_id < 0:
            raise ValueError(f"{model_file}: this SentencePiece model has no end-of-sequence piece; it is not a "
                             f"T5 tokenizer model")

    @property
    def vocab_size(self) -> int:
        return self.processor.get_piece_size()

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` plus eos, truncated to ``max_length`` (the eos is kept), not padded."""
        ids = self.processor.encode(text)
        return ids[: self.max_length - 1] + [self.eos_id]

    def __call__(self, texts: str | list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, attention_mask), each (B, max_length) int64; padding has id pad and mask 0."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        ids = torch.full((len(texts), self.max_length), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, text in enumerate(texts):
            encoded = self.encode(text)
            ids[row, : len(encoded)] = torch.tensor(encoded)
            mask[row, : len(encoded)] = 1
        return ids, mask
