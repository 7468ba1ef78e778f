"""CLIP text encoders of Stable Diffusion and the prompt -> conditioning step.

Reference: Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
Supervision" (CLIP §2.4: a causal pre-norm Transformer over BPE tokens; the [EOS] activation
after the final LayerNorm, linearly projected, is the text embedding); Rombach et al. 2022
(LDM: the UNet cross-attends to the token hidden states); Podell et al. 2023 (SDXL §2.1:
CLIP ViT-L and OpenCLIP ViT-bigG penultimate hidden states concatenated, bigG's pooled
embedding added to the timestep embedding).

Map
- ``TextEncoderConfig`` and the named configs ``CLIP_L`` (SD 1.x), ``CLIP_H`` (SD 2.x OpenCLIP
  ViT-H), ``CLIP_L_SDXL``, ``CLIP_G`` (SDXL OpenCLIP ViT-bigG, with projection).
- ``CLIPTextModel(config)``: ``forward(input_ids, layer=None) -> (hidden (B, 77, width), pooled)``.
  Submodule names are the Hugging Face ``CLIPTextModel`` / ``CLIPTextModelWithProjection``
  layout (``text_model.encoder.layers.0.self_attn.q_proj.weight``, ``text_projection.weight``),
  which SD 1.x single files use directly; OpenCLIP files are renamed by ``convert.py``.
- ``PromptEncoder``: the text encoders of one checkpoint + the tokenizer; ``encode(prompt)``
  -> ``TextConditioning(context, pooled)``, with clip skip, long prompts, weighting and
  textual-inversion embeddings (``embedding:name``, embeddings.py).

Which hidden state feeds the UNet (``output_layer``, ``final_norm`` in the config):
SD 1.x the last layer after the final LayerNorm; SD 2.x the penultimate layer after the final
LayerNorm (LDM ``FrozenOpenCLIPEmbedder(layer="penultimate")``); SDXL the penultimate layer
without it, for both encoders. ``clip_skip`` counts A1111-style on top: 1 = that default,
2 = one layer earlier, ... (ComfyUI's "CLIP Set Last Layer -2" on SD 1.x = clip_skip 2).

Prompt weights (``weighting``): ``"towards_empty"`` (default) moves each token's hidden state
from the empty prompt's hidden state at the same position: ``z = e + w * (z - e)``, so weight 1
changes nothing and 0 erases the token (the ComfyUI interpretation);
``"scale_mean"`` multiplies hidden states by their weights and rescales each chunk so its mean
is unchanged (the A1111 interpretation). The pooled output is never weighted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .tokenizer import EOS, CLIPTokenizer, default_tokenizer, tokenize_prompt

if TYPE_CHECKING:
    from .embeddings import TextualInversion

Weighting = Literal["towards_empty", "scale_mean"]


@dataclass(frozen=True)
class TextEncoderConfig:
    """Hyper-parameters of a CLIP text transformer; the defaults are OpenAI CLIP ViT-L/14 (SD 1.x)."""

    vocab_size: int = 49408  # CLIP BPE vocabulary
    max_positions: int = 77  # CLIP context length
    width: int = 768  # hidden size: CLIP-L 768, OpenCLIP ViT-H 1024, ViT-bigG 1280
    layers: int = 12  # transformer blocks: 12, 24, 32
    heads: int = 12  # width / 64 for all three
    intermediate: int = 3072  # MLP width, 4 x width
    # OpenAI CLIP was trained with quick GELU, x * sigmoid(1.702 x); OpenCLIP with GELU
    activation: Literal["quick_gelu", "gelu"] = "quick_gelu"
    projection_dim: int = 0  # text_projection output width (bigG: 1280); 0 = no projection
    output_layer: int = -1  # hidden state fed to the UNet: -1 = output of the last block, -2 = penultimate
    final_norm: bool = True  # apply final_layer_norm to that hidden state (SD 1.x / 2.x yes, SDXL no)
    pad_token_id: int = EOS  # OpenAI CLIP pads with end-of-text (49407), OpenCLIP with 0
    layer_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.heads < 1:
            raise ValueError(f"heads must be at least 1, got {self.heads}")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"pad_token_id {self.pad_token_id} is outside the vocabulary (0 to {self.vocab_size - 1})")
        if not self.layer_norm_eps > 0 or not math.isfinite(self.layer_norm_eps):
            raise ValueError(f"layer_norm_eps must be a small positive number, got {self.layer_norm_eps}")
        if self.activation not in ("quick_gelu", "gelu"):
            raise ValueError(f"activation must be 'quick_gelu' or 'gelu', got {self.activation!r}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        if not -self.layers <= self.output_layer <= -1:
            raise ValueError(
                f"output_layer must be in [-{self.layers}, -1] (negative, from the end), got {self.output_layer}"
            )


CLIP_L = TextEncoderConfig()
CLIP_H = TextEncoderConfig(  # SD 2.x files carry ViT-H's text_projection too, though SD 2.x never uses it
    width=1024,
    layers=24,
    heads=16,
    intermediate=4096,
    activation="gelu",
    projection_dim=1024,
    output_layer=-2,
    pad_token_id=0,
)
CLIP_L_SDXL = replace(CLIP_L, output_layer=-2, final_norm=False)
CLIP_G = TextEncoderConfig(
    width=1280,
    layers=32,
    heads=20,
    intermediate=5120,
    activation="gelu",
    projection_dim=1280,
    output_layer=-2,
    final_norm=False,
    pad_token_id=0,
)


class CLIPAttention(nn.Module):
    """Causal multi-head self-attention with biased q/k/v/out projections."""

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.heads = config.heads
        self.q_proj = nn.Linear(config.width, config.width)
        self.k_proj = nn.Linear(config.width, config.width)
        self.v_proj = nn.Linear(config.width, config.width)
        self.out_proj = nn.Linear(config.width, config.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = (
            proj(x).view(batch, length, self.heads, -1).transpose(1, 2)  # (B, heads, T, head_dim)
            for proj in (self.q_proj, self.k_proj, self.v_proj)
        )
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, heads, T, head_dim)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, width))  # (B, T, width)


class CLIPMLP(nn.Module):
    """fc1 -> activation -> fc2."""

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.quick = config.activation == "quick_gelu"
        self.fc1 = nn.Linear(config.width, config.intermediate)
        self.fc2 = nn.Linear(config.intermediate, config.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)  # (B, T, intermediate)
        h = h * torch.sigmoid(1.702 * h) if self.quick else F.gelu(h)
        return self.fc2(h)


class CLIPEncoderLayer(nn.Module):
    """Pre-norm residual block: attention, then MLP."""

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.self_attn = CLIPAttention(config)
        self.layer_norm1 = nn.LayerNorm(config.width, eps=config.layer_norm_eps)
        self.mlp = CLIPMLP(config)
        self.layer_norm2 = nn.LayerNorm(config.width, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x))  # (B, T, width)
        return x + self.mlp(self.layer_norm2(x))


class CLIPEmbeddings(nn.Module):
    """Token + learned absolute position embeddings."""

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(config.vocab_size, config.width)
        self.position_embedding = nn.Embedding(config.max_positions, config.width)

    def forward(self, input_ids: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """``extra (n, width)``: vectors for ids vocab_size .. vocab_size + n - 1 (textual inversion)."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # (T,)
        if extra is None:
            return self.token_embedding(input_ids) + self.position_embedding(positions)[None]  # (B, T, width)
        vocab = self.token_embedding.num_embeddings
        tokens = self.token_embedding(input_ids.clamp(max=vocab - 1))  # (B, T, width)
        placeholder = input_ids >= vocab  # (B, T)
        rows = extra.to(tokens)[(input_ids - vocab).clamp(0, extra.shape[0] - 1)]  # (B, T, width)
        tokens = torch.where(placeholder[..., None], rows, tokens)
        return tokens + self.position_embedding(positions)[None]  # (B, T, width)


class CLIPEncoder(nn.Module):
    """The stack of encoder layers (key ``encoder.layers.N``)."""

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.layers = nn.ModuleList(CLIPEncoderLayer(config) for _ in range(config.layers))


class CLIPTextTransformer(nn.Module):
    """Embeddings, encoder, final LayerNorm (key prefix ``text_model.``)."""

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.embeddings = CLIPEmbeddings(config)
        self.encoder = CLIPEncoder(config)
        self.final_layer_norm = nn.LayerNorm(config.width, eps=config.layer_norm_eps)


class CLIPTextModel(nn.Module):
    """CLIP text encoder returning a chosen hidden state and the pooled (projected) EOS embedding."""

    def __init__(self, config: TextEncoderConfig = CLIP_L):
        super().__init__()
        self.config = config
        self.text_model = CLIPTextTransformer(config)
        if config.projection_dim:
            self.text_projection = nn.Linear(config.width, config.projection_dim, bias=False)

    @property
    def dtype(self) -> torch.dtype:
        return self.text_model.final_layer_norm.weight.dtype

    def forward(
        self,
        input_ids: torch.Tensor,
        layer: int | None = None,
        final_norm: bool | None = None,
        pooled: bool = True,
        extra_embeddings: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Encode token ids ``(B, T)``.

        Args:
            layer: which block's output to return, negative from the end (-1 = last); None =
                ``config.output_layer``.
            final_norm: apply ``final_layer_norm`` to it; None = ``config.final_norm``.
            pooled: also compute the pooled embedding: the last block's output, final-normed,
                at each row's first end-of-text token (the highest id, as CLIP's ``argmax``),
                through ``text_projection`` when the model has one.
            extra_embeddings: ``(n, width)`` vectors for the placeholder ids ``vocab_size + i``
                (textual-inversion embeddings, see embeddings.py).

        Returns:
            ``hidden (B, T, width)`` and ``pooled (B, projection_dim or width)`` or None.
        """
        config = self.config
        layer = config.output_layer if layer is None else layer
        final_norm = config.final_norm if final_norm is None else final_norm
        if not -config.layers <= layer <= -1:
            raise ValueError(
                f"layer must be in [-{config.layers}, -1] for this {config.layers}-layer encoder, got {layer}"
            )
        stop = config.layers if pooled else config.layers + 1 + layer  # run only the blocks we need
        text = self.text_model
        h = text.embeddings(input_ids, extra_embeddings).to(self.dtype)  # (B, T, width)
        hidden = None
        for index, block in enumerate(text.encoder.layers[:stop]):
            h = block(h)  # (B, T, width)
            if index == config.layers + layer:
                hidden = h
        assert hidden is not None
        if final_norm:
            hidden = text.final_layer_norm(hidden)
        pooled_out = None
        if pooled:
            last = text.final_layer_norm(h)  # (B, T, width)
            real = input_ids.to(torch.int64).masked_fill(input_ids >= config.vocab_size, 0)  # placeholders aside
            eos_positions = real.argmax(dim=-1)  # (B,) first EOS: it is the largest id
            pooled_out = last[torch.arange(last.shape[0], device=last.device), eos_positions]  # (B, width)
            if config.projection_dim:
                pooled_out = self.text_projection(pooled_out)  # (B, projection_dim)
        return hidden, pooled_out


@dataclass
class TextConditioning:
    """What a prompt gives the UNet: ``context`` (B, 77*chunks, context_dim) and ``pooled`` (B, D) or None."""

    context: torch.Tensor
    pooled: torch.Tensor | None


class PromptEncoder(nn.Module):
    """The text encoders of one checkpoint and the tokenizer: prompt -> ``TextConditioning``.

    Args:
        encoders: name -> encoder, in the order their hidden states are concatenated on the
            feature axis (SDXL: ``clip_l`` then ``clip_g`` -> 768 + 1280 = 2048).
        pooled_from: the encoder whose pooled output is returned (SDXL ``clip_g``; SD 1.x
            ``clip_l``, unused by its UNet), or None.
        tokenizer: defaults to the shared CLIP tokenizer (``openai-clip`` vocabulary).
    """

    def __init__(
        self,
        encoders: dict[str, CLIPTextModel],
        pooled_from: str | None = None,
        tokenizer: CLIPTokenizer | None = None,
    ):
        super().__init__()
        if pooled_from is not None and pooled_from not in encoders:
            raise ValueError(f"pooled_from={pooled_from!r} is not one of the encoders {list(encoders)}")
        self.encoders = nn.ModuleDict(encoders)
        self.pooled_from = pooled_from
        self._tokenizer = tokenizer

    @property
    def tokenizer(self) -> CLIPTokenizer:
        if self._tokenizer is None:
            self._tokenizer = default_tokenizer()
        return self._tokenizer

    @property
    def context_dim(self) -> int:
        return sum(encoder.config.width for encoder in self.encoders.values())

    @torch.no_grad()
    def encode(
        self,
        prompts: str | Sequence[str],
        *,
        clip_skip: int = 1,
        weighting: Weighting = "towards_empty",
        min_chunks: int = 1,
        embeddings: Mapping[str, TextualInversion] | None = None,
    ) -> TextConditioning:
        """Encode one prompt or a batch (weighting syntax allowed; "" is the unconditional prompt).

        Args:
            clip_skip: 1 = the family's default layer, 2 = one block earlier, ... (A1111 style).
            weighting: how token weights act, see the module docstring.
            min_chunks: pad with empty-prompt chunks to at least this many 77-token chunks, so a
                positive and a negative prompt can share one batch (give both the larger count).
            embeddings: ``embedding:name`` of the prompts -> its TextualInversion (embeddings.py);
                each becomes placeholder tokens whose input vectors are the embedding's.
        """
        if clip_skip < 1:
            raise ValueError(f"clip_skip counts from 1 (1 = no skip), got {clip_skip}")
        if weighting not in ("towards_empty", "scale_mean"):
            raise ValueError(f"weighting must be 'towards_empty' or 'scale_mean', got {weighting!r}")
        prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
        placeholders, start = {}, self.tokenizer.vocab_size  # embedding name -> ids past the vocabulary
        for name, embedding in (embeddings or {}).items():
            placeholders[name] = list(range(start, start + embedding.num_vectors))
            start += embedding.num_vectors
        tokens = [tokenize_prompt(self.tokenizer, prompt, placeholders) for prompt in prompt_list]
        chunks = max([min_chunks, *(len(t) for t in tokens)])
        weights = torch.stack([t.weights(chunks) for t in tokens])  # (B, chunks, 77)
        features, pooled = [], None
        for name, encoder in self.encoders.items():
            config = encoder.config
            device = encoder.text_model.final_layer_norm.weight.device
            layer = config.output_layer - (clip_skip - 1)
            if layer < -config.layers:
                raise ValueError(f"clip_skip={clip_skip} goes past the first of {config.layers} layers of {name}")
            ids = torch.stack([t.ids(config.pad_token_id, chunks) for t in tokens]).to(device)  # (B, chunks, 77)
            want_pooled = name == self.pooled_from
            extra = None
            if embeddings:
                extra = torch.cat([e.for_encoder(name, config.width) for e in embeddings.values()]).to(device)
                ids = torch.where(ids >= self.tokenizer.vocab_size, ids - self.tokenizer.vocab_size + config.vocab_size,
                                  ids)
            hidden, pooled_rows = encoder(ids.flatten(0, 1), layer=layer, pooled=want_pooled,
                                          extra_embeddings=extra)  # (B*chunks, 77, W)
            hidden = hidden.float().unflatten(0, ids.shape[:2])  # (B, chunks, 77, W)
            if want_pooled:
                pooled = pooled_rows.float().unflatten(0, ids.shape[:2])[:, 0]  # (B, D): the first chunk's
            w = weights.to(hidden.device)
            if (w != 1.0).any():
                hidden = self._apply_weights(encoder, hidden, w, layer, weighting)
            features.append(hidden.flatten(1, 2))  # (B, chunks*77, W)
        context = torch.cat(features, dim=-1)  # (B, chunks*77, sum of widths)
        return TextConditioning(context=context, pooled=pooled)

    def _apply_weights(
        self, encoder: CLIPTextModel, hidden: torch.Tensor, weights: torch.Tensor, layer: int, weighting: Weighting
    ) -> torch.Tensor:
        """Apply per-token weights ``(B, chunks, 77)`` to hidden states ``(B, chunks, 77, W)``."""
        w = weights[..., None]  # (B, chunks, 77, 1)
        if weighting == "towards_empty":
            empty = tokenize_prompt(self.tokenizer, "").ids(encoder.config.pad_token_id)  # (1, 77)
            empty_hidden, _ = encoder(empty.to(hidden.device), layer=layer, pooled=False)  # (1, 77, W)
            empty_hidden = empty_hidden.float()[:, None]  # (1, 1, 77, W)
            return torch.where(w == 1.0, hidden, empty_hidden + (hidden - empty_hidden) * w)  # exact where unweighted
        mean_before = hidden.mean(dim=(-2, -1), keepdim=True)  # "scale_mean": (B, chunks, 1, 1)
        scaled = hidden * w
        return scaled * (mean_before / scaled.mean(dim=(-2, -1), keepdim=True))
