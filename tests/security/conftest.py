"""Shared helpers for the security tests: one thread, a tiny random checkpoint folder, links."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)


def link(node: str, output: str) -> dict:
    return {"node": node, "output": output}


@pytest.fixture(scope="package")
def tiny_parts():
    """(unet, vae, prompt encoder) of a tiny random SD1-layout model."""
    from nodes.models.clip import CLIP_L, CLIPTextModel, PromptEncoder
    from nodes.models.unet import TINY, UNetModel
    from nodes.models.vae import TINY_VAE, AutoencoderKL

    torch.manual_seed(0)
    clip = replace(CLIP_L, width=64, layers=2, heads=2, intermediate=128)
    unet = UNetModel(replace(TINY, context_dim=64))
    vae = AutoencoderKL(TINY_VAE)
    encoder = PromptEncoder({"clip_l": CLIPTextModel(clip)}, pooled_from="clip_l")
    return unet, vae, encoder


@pytest.fixture(scope="package")
def tiny_checkpoint(tiny_parts, tmp_path_factory) -> Path:
    """A valid tiny single-file checkpoint (fp16)."""
    from nodes.models.loading import save_checkpoint

    unet, vae, encoder = tiny_parts
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_checkpoint(path, family="sd1", unet=unet, vae=vae, text_encoder=encoder, dtype=torch.float16)
    return path
