"""Detection: family, exact config and prediction type from key names and shapes of real-size checkpoints."""

import json

import pytest
import torch

from nodes.models.clip import CLIP_G, CLIP_H, CLIP_L, CLIP_L_SDXL, CLIPTextModel
from nodes.models.convert import clip_to_openclip, unet_from_diffusers
from nodes.models.detect import (
    METADATA_KEY,
    UNET_PREFIX,
    VAE_PREFIX,
    ModelLoadError,
    detect_checkpoint,
    detect_unet_config,
)
from nodes.models.loading import open_state_dict
from nodes.models.unet import (
    SD1,
    SD1_INPAINT,
    SD2,
    SDXL_BASE,
    SDXL_REFINER,
    UNetConfig,
    UNetModel,
)
from nodes.models.vae import SD_VAE, AutoencoderKL

# family -> (UNet config, [(encoder config, key prefix, layout)])
REAL_SIZES = {
    "sd1": (SD1, [(CLIP_L, "cond_stage_model.transformer.", "hf")]),
    "sd1-inpaint": (SD1_INPAINT, [(CLIP_L, "cond_stage_model.transformer.", "hf")]),
    "sd2": (SD2, [(CLIP_H, "cond_stage_model.model.", "openclip")]),
    "sdxl-base": (
        SDXL_BASE,
        [
            (CLIP_L_SDXL, "conditioner.embedders.0.transformer.", "hf"),
            (CLIP_G, "conditioner.embedders.1.model.", "openclip"),
        ],
    ),
    "sdxl-refiner": (SDXL_REFINER, [(CLIP_G, "conditioner.embedders.0.model.", "openclip")]),
}


def _shapes(prefix: str, state: dict) -> dict:
    return {prefix + key: tuple(tensor.shape) for key, tensor in state.items()}


def _meta_checkpoint(unet_config, encoders, vae=True) -> dict:
    """Key -> shape of a full-size single-file checkpoint, built on the meta device (no memory)."""
    with torch.device("meta"):
        shapes = _shapes(UNET_PREFIX, UNetModel(unet_config).state_dict())
        if vae:
            shapes.update(_shapes(VAE_PREFIX, AutoencoderKL(SD_VAE).state_dict()))
        for config, prefix, layout in encoders:
            state = CLIPTextModel(config).state_dict()
            shapes.update(_shapes(prefix, clip_to_openclip(state) if layout == "openclip" else state))
    return shapes


@pytest.mark.parametrize("variant", list(REAL_SIZES))
def test_real_size_checkpoints_are_detected_exactly(variant):
    """Each family's full-size key layout gives its family and exactly its standard configs."""
    unet_config, encoders = REAL_SIZES[variant]
    info = detect_checkpoint(_meta_checkpoint(unet_config, encoders))
    assert info.family == variant.replace("-inpaint", "")
    assert info.unet == unet_config
    assert info.inpainting == (variant == "sd1-inpaint") and not info.custom
    assert [spec.config for spec in info.text_encoders] == [config for config, _, _ in encoders]
    assert info.vae.scale_factor == (0.13025 if variant.startswith("sdxl") else 0.18215)
    assert info.pooled_from == {"sd1": "clip_l", "sd2": "clip_h"}.get(info.family, "clip_g")


@pytest.mark.parametrize(
    "metadata, keys, argument, expected",
    [
        ({}, [], None, "eps"),
        ({"modelspec.prediction_type": "v"}, [], None, "v"),
        ({"modelspec.prediction_type": "v_prediction"}, [], None, "v"),
        ({"modelspec.architecture": "stable-diffusion-v2-768-v"}, [], None, "v"),
        ({}, ["v_pred"], None, "v"),
        ({METADATA_KEY: json.dumps({"prediction": "v"})}, [], None, "v"),
        ({"modelspec.prediction_type": "v"}, [], "eps", "eps"),
        ({}, [], "v", "v"),
    ],
)
def test_prediction_type_sources(metadata, keys, argument, expected):
    """v-prediction (invisible in weights) comes from the argument, metadata or a v_pred marker key."""
    shapes = _meta_checkpoint(SD2, REAL_SIZES["sd2"][1], vae=False)
    shapes.update({key: (0,) for key in keys})
    info = detect_checkpoint(shapes, metadata, prediction=argument)
    assert info.prediction == expected and info.unet.prediction == expected


def test_diffusers_sdxl_unet_keys_give_the_sdxl_config():
    """A real-size diffusers SDXL UNet, renamed by unet_from_diffusers, detects as SDXL base."""
    from diffusers import UNet2DConditionModel

    config = {
        "block_out_channels": (320, 640, 1280),
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        "transformer_layers_per_block": (1, 2, 10),
        "attention_head_dim": (5, 10, 20),
        "use_linear_projection": True,
        "cross_attention_dim": 2048,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 256,
        "projection_class_embeddings_input_dim": 2816,
    }
    with torch.device("meta"):
        state = UNet2DConditionModel(**config).state_dict()
    key_map = unet_from_diffusers(state)
    shapes = {ours: tuple(state[source.key].shape) for ours, source in key_map.items()}
    assert detect_unet_config(shapes, family="sdxl-base") == SDXL_BASE


def test_small_checkpoints_are_flagged_custom(sd1):
    """A small SD1-structured file is family sd1 with custom=True and its own sizes."""
    info = detect_checkpoint(open_state_dict(sd1.single_file).shapes)
    assert info.family == "sd1" and info.custom
    assert info.unet.channel_mult == (1, 1, 2, 2) and info.unet.context_dim == 64


def test_unplaceable_unet_asks_for_the_family():
    """A UNet-only checkpoint with an unknown context width: LoadCheckpoint's reading says to move it to
    models/unet for LoadUNet (no family makes it a full checkpoint); other callers get the metadata fix."""
    config = UNetConfig(
        model_channels=32, channel_mult=(1, 2), num_res_blocks=1, transformer_depth=(1, 1), context_dim=40
    )
    with pytest.raises(ModelLoadError, match="move it to models/unet and load it with LoadUNet"):
        detect_checkpoint(_meta_checkpoint(config, []))
    with pytest.raises(ModelLoadError, match='"family"'):
        detect_checkpoint(_meta_checkpoint(config, []), choose_family="")


def test_heads_that_break_the_family_convention_ask_for_the_metadata_override():
    """An SDXL-like UNet whose width is not a multiple of 64 cannot guess its heads and says how to fix it."""
    config = UNetConfig(
        model_channels=32,
        channel_mult=(1, 3),
        num_res_blocks=1,
        transformer_depth=(0, 1),
        context_dim=2048,
        num_heads=-1,
        num_head_channels=32,
        use_linear_in_transformer=True,
        adm_in_channels=2816,
    )
    with pytest.raises(ModelLoadError, match="num_head_channels"):
        detect_checkpoint(_meta_checkpoint(config, []))
    override = {METADATA_KEY: json.dumps({"unet": {"num_head_channels": 32}})}
    assert detect_checkpoint(_meta_checkpoint(config, []), override).unet == config
