"""Shared fixtures: small diffusers / transformers reference models saved in both checkpoint layouts.

Each reference keeps the real block structure and key names of SD 1.5 or SDXL (4 / 3 UNet
levels, CrossAttn / plain blocks in the same places, 2 ResBlocks per level, 4-level f=8 VAE,
CLIP-L-style and bigG-style text towers) with small widths and few layers, random weights.
They are written once per session as
- an original single-file checkpoint (LDM / SGM key layout), made with our diffusers -> LDM
  maps and ``clip_to_openclip`` (test_convert.py checks diffusers' own converters read it back
  exactly), and
- a diffusers pipeline folder written by ``save_pretrained``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from nodes.models.clip import CLIP_L
from nodes.models.convert import (
    clip_to_openclip,
    unet_from_diffusers,
    vae_from_diffusers,
)
from nodes.models.detect import METADATA_KEY, UNET_PREFIX, VAE_PREFIX

torch.set_num_threads(1)

# A 2-layer, 64-wide CLIP-L-shaped text encoder for tiny random checkpoints in graph tests.
TINY_CLIP = replace(CLIP_L, width=64, layers=2, heads=2, intermediate=128)

SD1_UNET = {
    "sample_size": 8,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (32, 32, 64, 64),
    "layers_per_block": 2,
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 64,
    "attention_head_dim": 8,  # diffusers' name for the head COUNT of SD 1.x
}
VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": (32, 32, 64, 64),
    "layers_per_block": 2,
    "latent_channels": 4,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "sample_size": 32,
}
CLIP_L_SMALL = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 3,
    "num_attention_heads": 1,
    "hidden_act": "quick_gelu",
}
CLIP_G_SMALL = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 3,
    "num_attention_heads": 2,
    "hidden_act": "gelu",
    "projection_dim": 128,
}
SDXL_UNET = {
    "sample_size": 8,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (32, 64, 64),
    "layers_per_block": 2,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "transformer_layers_per_block": (1, 1, 2),
    "attention_head_dim": (2, 4, 4),  # heads per level: a fixed head width of 16
    "use_linear_projection": True,
    "cross_attention_dim": 64 + 128,  # CLIP-L-style + bigG-style widths
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 128 + 6 * 256,  # pooled bigG + six size scalars
}


def max_relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """max |ours - reference| / max |reference|."""
    return ((ours.float() - reference.float()).abs().max() / reference.float().abs().max()).item()


def _jitter(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Perturb every parameter so no weight keeps its tidy initial value (ones, zeros)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.02 * torch.randn(parameter.shape, generator=generator))
    return module.eval()


def _hf_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A transformers CLIP model's state dict in the single-file layout (``text_model.`` prefix)."""
    return {
        (k if k.startswith(("text_model.", "text_projection")) else "text_model." + k): v
        for k, v in model.state_dict().items()
    }


def _ldm_checkpoint(unet, vae, encoders: dict[str, tuple[torch.nn.Module, str, str]]) -> dict[str, torch.Tensor]:
    """Assemble an LDM / SGM single-file state dict from diffusers / transformers modules."""
    state: dict[str, torch.Tensor] = {}
    unet_state = unet.state_dict()
    for ours, source in unet_from_diffusers(unet_state).items():
        state[UNET_PREFIX + ours] = source.read(unet_state).contiguous()
    vae_state = vae.state_dict()
    for ours, source in vae_from_diffusers(vae_state).items():
        state[VAE_PREFIX + ours] = source.read(vae_state).contiguous()
    for model, prefix, layout in encoders.values():
        hf = _hf_state(model)
        for key, tensor in (clip_to_openclip(hf) if layout == "openclip" else hf).items():
            state[prefix + key] = tensor.contiguous()
    return state


def _write_pipeline(folder: Path, parts: dict[str, torch.nn.Module], pipeline: str) -> None:
    """A diffusers pipeline folder: each part's save_pretrained, model_index.json, scheduler config."""
    for name, module in parts.items():
        module.save_pretrained(folder / name)
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({"prediction_type": "epsilon"}))
    (folder / "model_index.json").write_text(json.dumps({"_class_name": pipeline}))


@pytest.fixture(scope="session")
def sd1(tmp_path_factory) -> SimpleNamespace:
    """SD 1.5-structured reference models and their single-file / diffusers-folder checkpoints."""
    pytest.importorskip("diffusers")
    pytest.importorskip("transformers")
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = _jitter(UNet2DConditionModel(**SD1_UNET), 1)
    vae = _jitter(AutoencoderKL(**VAE), 2)
    clip = _jitter(CLIPTextModel(CLIPTextConfig(**CLIP_L_SMALL)), 3)
    root = tmp_path_factory.mktemp("sd1")
    single = root / "sd1.safetensors"
    save_file(_ldm_checkpoint(unet, vae, {"clip_l": (clip, "cond_stage_model.transformer.", "hf")}), str(single))
    _write_pipeline(root / "diffusers", {"unet": unet, "vae": vae, "text_encoder": clip}, "StableDiffusionPipeline")
    return SimpleNamespace(unet=unet, vae=vae, clip=clip, single_file=single, folder=root / "diffusers", root=root)


@pytest.fixture(scope="session")
def sdxl(tmp_path_factory) -> SimpleNamespace:
    """SDXL-base-structured reference models (CLIP-L + bigG-style towers) in both layouts."""
    pytest.importorskip("diffusers")
    pytest.importorskip("transformers")
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(1)
    unet = _jitter(UNet2DConditionModel(**SDXL_UNET), 4)
    vae = _jitter(AutoencoderKL(**VAE, scaling_factor=0.13025), 5)
    clip_l = _jitter(CLIPTextModel(CLIPTextConfig(**CLIP_L_SMALL)), 6)
    clip_g = _jitter(CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_G_SMALL)), 7)
    root = tmp_path_factory.mktemp("sdxl")
    single = root / "sdxl.safetensors"
    state = _ldm_checkpoint(
        unet,
        vae,
        {
            "clip_l": (clip_l, "conditioner.embedders.0.transformer.", "hf"),
            "clip_g": (clip_g, "conditioner.embedders.1.model.", "openclip"),
        },
    )
    # Head width 16 is not SDXL's 64 and cannot be seen in the weights: say it in the metadata.
    metadata = {METADATA_KEY: json.dumps({"unet": {"num_heads": -1, "num_head_channels": 16}})}
    save_file(state, str(single), metadata=metadata)
    _write_pipeline(
        root / "diffusers",
        {"unet": unet, "vae": vae, "text_encoder": clip_l, "text_encoder_2": clip_g},
        "StableDiffusionXLPipeline",
    )
    return SimpleNamespace(
        unet=unet, vae=vae, clip_l=clip_l, clip_g=clip_g, single_file=single, folder=root / "diffusers", root=root
    )


def write_tiny_checkpoint(root: Path) -> Path:
    """`root/checkpoints/tiny.safetensors`: a seeded tiny SD1-layout checkpoint (UNet with a non-zero
    output layer, so patches and guidance change its prediction); returns `root` (a model-folder root)."""
    from nodes.models.clip import CLIPTextModel, PromptEncoder
    from nodes.models.loading import save_checkpoint
    from nodes.models.unet import TINY, UNetModel
    from nodes.models.vae import TINY_VAE, AutoencoderKL

    torch.manual_seed(0)
    (root / "checkpoints").mkdir(parents=True, exist_ok=True)
    unet = UNetModel(replace(TINY, context_dim=64))
    for parameter in unet.out.parameters():
        torch.nn.init.normal_(parameter, 0, 0.1)
    encoder = PromptEncoder({"clip_l": CLIPTextModel(TINY_CLIP)}, pooled_from="clip_l")
    save_checkpoint(root / "checkpoints" / "tiny.safetensors", family="sd1", unet=unet, vae=AutoencoderKL(TINY_VAE),
                    text_encoder=encoder)
    return root


@pytest.fixture()
def one_thread():
    """One torch thread for the test: the suite's pytest_configure sets 2, and on a busy 2-core machine tiny matmuls
    then spin (`pytestmark = pytest.mark.usefixtures("one_thread")` in a module)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
