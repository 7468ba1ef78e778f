"""Textual-inversion embeddings: learned token vectors a prompt names as ``embedding:name``.

Reference: Gal et al. 2022, "An Image is Worth One Word: Personalizing Text-to-Image Generation
using Textual Inversion" (§3: new pseudo-words whose input embeddings are learned while the text
encoder stays frozen). At encode time each ``embedding:name`` in a prompt becomes as many
placeholder tokens as the embedding has vectors, and the text encoder's token-embedding lookup
returns the learned vectors for them (clip.py ``CLIPEmbeddings``; tokenizer.py ``tokenize_prompt``).

Map
- ``TextualInversion``: name, vectors per encoder role (``"clip_l"``, ``"clip_g"``, or ``"*"`` for
  files that do not say), ``for_encoder(role, width)``: the ``(n, width)`` vectors one encoder gets.
- ``load_embedding(path, allow_pickle=False)``: the layouts people have:
  A1111 ``.pt`` (``{"string_to_param": {"*": (n, 768)}, "name": ...}``; a pickle, read only under the
  owner's opt-in and then with ``torch.load(weights_only=True)``), A1111 ``.safetensors``
  (``emb_params``), SDXL ``.safetensors`` (``clip_l`` (n, 768) + ``clip_g`` (n, 1280)), and the
  diffusers ``learned_embeds`` layout (``{"<token>": (768,)}``, ``.bin`` or ``.safetensors``).
- ``embedding_names(prompt)``: the names a prompt uses, for loaders that resolve them to files.
- ``EMBEDDING_PATTERN``: ``embedding:`` followed by a name (letters, digits, ``_ - .``, no spaces,
  colons or brackets, so ``(embedding:name:1.2)`` weights it as any word).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .detect import ModelLoadError, unpickling_refusal
from .prompt_syntax import EMBEDDING_PATTERN, EMBEDDING_SUFFIXES, embedding_names

KNOWN_SUFFIXES = EMBEDDING_SUFFIXES


def strip_suffix(name: str) -> str:
    """``"easynegative.safetensors"`` -> ``"easynegative"`` (a prompt may name the file)."""
    for suffix in KNOWN_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


@dataclass(frozen=True)
class TextualInversion:
    """Learned vectors of one embedding file, per text-encoder role."""

    name: str
    vectors: dict[str, torch.Tensor]  # role ("clip_l", "clip_g", "*") -> (n, width) float32
    path: str | None = field(default=None, compare=False)

    @property
    def num_vectors(self) -> int:
        return next(iter(self.vectors.values())).shape[0]

    def for_encoder(self, role: str, width: int) -> torch.Tensor:
        """The ``(n, width)`` vectors for the encoder `role`; a ValueError says which widths the file has."""
        candidates = [self.vectors[role]] if role in self.vectors else []
        candidates += [v for k, v in self.vectors.items() if k == "*"]
        for vectors in candidates:
            if vectors.shape[1] == width:
                return vectors
        have = ", ".join(f"{v.shape[1]}-wide" if k == "*" else f"{k} {v.shape[1]}-wide"   # "*": A1111's one role
                         for k, v in self.vectors.items())
        family = {768: "SD 1.x (CLIP-L)", 1024: "SD 2.x (OpenCLIP-H)", 1280: "SDXL (bigG)"}
        guess = "; ".join(family.get(v.shape[1], f"{v.shape[1]}-wide text") for v in self.vectors.values())
        raise ValueError(f"embedding {self.name!r} has vectors {have} (made for {guess}); this model's "
                         f"{role} text encoder is {width}-wide: use an embedding trained for this model family")


def load_embedding(path: str | os.PathLike, *, allow_pickle: bool = False, name: str | None = None
                   ) -> TextualInversion:
    """Read a textual-inversion file in any of the layouts of the module docstring."""
    from .loading import open_state_dict

    path = Path(path)
    name = name or strip_suffix(path.name)
    if path.suffix.lower() in (".pt", ".bin", ".pth", ".ckpt"):
        if not allow_pickle:
            open_state_dict(path)   # raises the loader's one refusal message (and names the opt-in)
        raw = _read_pickle(path)
    else:
        tensors = open_state_dict(path, allow_pickle=allow_pickle)
        raw = {key: tensors[key] for key in tensors}
    vectors = _vectors(raw, path)
    counts = {v.shape[0] for v in vectors.values()}
    if len(counts) != 1:
        raise ModelLoadError(f"the embedding's encoders have different vector counts {sorted(counts)}", path)
    return TextualInversion(name=name, vectors=vectors, path=str(path))


def _read_pickle(path: Path) -> dict:
    import pickle

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ModelLoadError(f"torch.load(weights_only=True) refused this embedding: it holds Python objects "
                             f"besides tensors ({unpickling_refusal(error)}); convert it to safetensors",
                             path) from None
    except (EOFError, RuntimeError, OSError) as error:
        raise ModelLoadError(f"could not read this embedding ({error}); it is damaged or truncated", path) from None
    if not isinstance(loaded, dict):
        raise ModelLoadError(f"expected a dict in the embedding file, found {type(loaded).__name__}", path)
    return loaded


def _vectors(raw: dict, path: Path) -> dict[str, torch.Tensor]:
    """Role -> (n, width) float32 vectors from one of the known layouts."""
    def matrix(tensor) -> torch.Tensor:
        if not isinstance(tensor, torch.Tensor) or tensor.ndim not in (1, 2):
            raise ModelLoadError(f"expected embedding vectors (n, width), found {type(tensor).__name__} "
                                 f"{tuple(getattr(tensor, 'shape', ()))}", path)
        if not tensor.is_floating_point():
            raise ModelLoadError(f"the embedding's vectors {tuple(tensor.shape)} are {str(tensor.dtype)[6:]}, not "
                                 f"floating point (a quantised file?); an embedding holds float vectors", path)
        vectors = tensor[None] if tensor.ndim == 1 else tensor
        if vectors.shape[0] == 0 or vectors.shape[-1] == 0:
            raise ModelLoadError(f"the embedding holds no vectors (shape {tuple(tensor.shape)}); the file is empty "
                                 f"or damaged: train or download it again", path)
        if not bool(torch.isfinite(vectors).all()):
            raise ModelLoadError("the embedding's vectors hold NaN or infinite values (a training run that "
                                 "diverged, or a damaged file); it would turn every image to noise", path)
        return vectors.float()

    if isinstance(raw.get("string_to_param"), dict) and raw["string_to_param"]:   # A1111 .pt
        return {"*": matrix(next(iter(raw["string_to_param"].values())))}
    flat = [k for k in raw if k.startswith("string_to_param.")]
    if flat:
        return {"*": matrix(raw[flat[0]])}
    if "emb_params" in raw:                                                          # A1111 .safetensors
        return {"*": matrix(raw["emb_params"])}
    if "clip_l" in raw or "clip_g" in raw:                                           # SDXL
        return {role: matrix(raw[role]) for role in ("clip_l", "clip_g") if role in raw}
    tensors = {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if len(tensors) == 1:                                                            # diffusers learned_embeds
        return {"*": matrix(next(iter(tensors.values())))}
    raise ModelLoadError(f"expected a textual-inversion embedding (string_to_param, emb_params, clip_l / "
                         f"clip_g, or one learned token), found keys {sorted(raw)[:8]}", path)
