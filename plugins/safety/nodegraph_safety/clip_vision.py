"""The CLIP vision tower (ViT) that Stable Diffusion's safety checker is built on.

Reference: Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
Supervision" (CLIP §2.4: a pre-norm Vision Transformer over image patches; a class token is
prepended, an extra LayerNorm is applied to the embeddings before the Transformer, and the
class token's output after a final LayerNorm is the pooled image feature); Dosovitskiy et al.
2021 (ViT §3.1: patch embedding + learned position embeddings).

Map
- ``VisionConfig``: hyper-parameters (defaults: OpenAI CLIP ViT-L/14, the checker's tower).
- ``CLIPVisionModel(config)``: ``forward(pixels (B, 3, S, S)) -> (hidden (B, 1 + N, D), pooled (B, D))``.
  Submodule names are the Hugging Face ``CLIPVisionModel`` layout
  (``vision_model.embeddings.patch_embedding.weight``,
  ``vision_model.encoder.layers.0.self_attn.q_proj.weight``, ``vision_model.post_layernorm.bias``),
  so the real checkpoint's tensors load without renaming.
- ``config_from_state_dict(shapes, prefix)``: the config read back from tensor shapes.

Plain torch: no engine imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CLIPVisionModel", "VisionConfig", "config_from_state_dict"]


@dataclass(frozen=True)
class VisionConfig:
    """Hyper-parameters of a CLIP vision transformer; defaults are OpenAI CLIP ViT-L/14 (SD's safety checker)."""

    image_size: int = 224  # input side in px (the checker's feature extractor crops to 224)
    patch_size: int = 14  # ViT-L/14: 16 x 16 = 256 patches at 224 px
    width: int = 1024  # hidden size of ViT-L
    layers: int = 24
    heads: int = 16  # width / 64
    intermediate: int = 4096  # MLP width, 4 x width
    # OpenAI CLIP was trained with quick GELU, x * sigmoid(1.702 x)
    activation: Literal["quick_gelu", "gelu"] = "quick_gelu"
    layer_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}; pick heads that divide it")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")

    @property
    def patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


def _activation(name: str, x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x) if name == "quick_gelu" else F.gelu(x)


class Embeddings(nn.Module):
    """Class token + patch embeddings + learned positions (ViT §3.1)."""

    def __init__(self, config: VisionConfig):
        super().__init__()
        self.patch_size = config.patch_size
        self.class_embedding = nn.Parameter(torch.zeros(config.width))  # (D,)
        self.patch_embedding = nn.Conv2d(3, config.width, config.patch_size, config.patch_size, bias=False)
        self.position_embedding = nn.Embedding(config.patches + 1, config.width)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embedding(pixels.to(self.patch_embedding.weight.dtype))  # (B, D, S/p, S/p)
        patches = patches.flatten(2).transpose(1, 2)  # (B, N, D)
        cls = self.class_embedding.expand(patches.shape[0], 1, -1)  # (B, 1, D)
        return torch.cat([cls, patches], dim=1) + self.position_embedding.weight  # (B, 1 + N, D)


class Attention(nn.Module):
    """Multi-head self-attention with the HF ``q_proj/k_proj/v_proj/out_proj`` names."""

    def __init__(self, config: VisionConfig):
        super().__init__()
        self.heads = config.heads
        self.q_proj = nn.Linear(config.width, config.width)
        self.k_proj = nn.Linear(config.width, config.width)
        self.v_proj = nn.Linear(config.width, config.width)
        self.out_proj = nn.Linear(config.width, config.width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = h.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, tokens, self.heads, width // self.heads).transpose(1, 2)  # (B, heads, T, dim)

        out = F.scaled_dot_product_attention(split(self.q_proj(h)), split(self.k_proj(h)), split(self.v_proj(h)))
        return self.out_proj(out.transpose(1, 2).reshape(batch, tokens, width))  # (B, T, D)


class MLP(nn.Module):
    def __init__(self, config: VisionConfig):
        super().__init__()
        self.activation = config.activation
        self.fc1 = nn.Linear(config.width, config.intermediate)
        self.fc2 = nn.Linear(config.intermediate, config.width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc2(_activation(self.activation, self.fc1(h)))


class EncoderLayer(nn.Module):
    """Pre-norm block: h + attn(ln1(h)), then h + mlp(ln2(h))."""

    def __init__(self, config: VisionConfig):
        super().__init__()
        self.self_attn = Attention(config)
        self.layer_norm1 = nn.LayerNorm(config.width, eps=config.layer_norm_eps)
        self.mlp = MLP(config)
        self.layer_norm2 = nn.LayerNorm(config.width, eps=config.layer_norm_eps)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.self_attn(self.layer_norm1(h))
        return h + self.mlp(self.layer_norm2(h))


class Encoder(nn.Module):
    def __init__(self, config: VisionConfig):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.layers))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            h = layer(h)
        return h


class VisionTransformer(nn.Module):
    """Embeddings -> pre_layrnorm (sic, the checkpoint's spelling) -> encoder; pooled = post_layernorm(class token)."""

    def __init__(self, config: VisionConfig):
        super().__init__()
        self.embeddings = Embeddings(config)
        self.pre_layrnorm = nn.LayerNorm(config.width, eps=config.layer_norm_eps)
        self.encoder = Encoder(config)
        self.post_layernorm = nn.LayerNorm(config.width, eps=config.layer_norm_eps)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.encoder(self.pre_layrnorm(self.embeddings(pixels)))  # (B, 1 + N, D)
        return hidden, self.post_layernorm(hidden[:, 0])  # pooled: (B, D)


class CLIPVisionModel(nn.Module):
    """HF ``CLIPVisionModel``: a wrapper whose only child is ``vision_model`` (hence the doubled key prefix)."""

    def __init__(self, config: VisionConfig):
        super().__init__()
        self.config = config
        self.vision_model = VisionTransformer(config)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if pixels.ndim != 4 or pixels.shape[1] != 3:
            raise ValueError(f"pixels: expected (B, 3, H, W), found shape {tuple(pixels.shape)}")
        side = self.config.image_size
        if pixels.shape[-2:] != (side, side):
            raise ValueError(f"pixels: expected {side}x{side} (the tower's image_size), found "
                             f"{pixels.shape[-2]}x{pixels.shape[-1]}; preprocess the images first")
        return self.vision_model(pixels)


def config_from_state_dict(shapes: Mapping[str, tuple[int, ...]], prefix: str = "vision_model.",
                           heads: int | None = None, activation: str = "quick_gelu") -> VisionConfig:
    """VisionConfig read from tensor shapes under ``prefix`` (heads default to width / 64, as every CLIP ViT)."""
    root = f"{prefix}embeddings."
    width, _, patch, _ = shapes[f"{root}patch_embedding.weight"]
    positions = shapes[f"{root}position_embedding.weight"][0]
    side = round((positions - 1) ** 0.5)
    if side * side != positions - 1:
        raise ValueError(f"{root}position_embedding.weight: {positions} positions is not 1 + a square number of patches")
    layers = 1 + max(int(key[len(prefix):].split(".")[2]) for key in shapes
                     if key.startswith(f"{prefix}encoder.layers."))
    intermediate = shapes[f"{prefix}encoder.layers.0.mlp.fc1.weight"][0]
    return VisionConfig(image_size=side * patch, patch_size=patch, width=width, layers=layers,
                        heads=heads or max(1, width // 64), intermediate=intermediate, activation=activation)
