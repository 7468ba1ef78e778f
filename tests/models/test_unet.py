"""UNet: numerical parity with diffusers' UNet2DConditionModel, loaded from both checkpoint layouts."""

import pytest
import torch

from nodes.models.loading import load_checkpoint, load_unet
from nodes.models.unet import (
    SDXL_BASE,
    SDXL_REFINER,
    UNetConfig,
    UNetModel,
    sdxl_vector,
)

from .conftest import max_relative_error


def _inputs(batch=2, size=(8, 8), context_width=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 4, *size, generator=generator)
    t = torch.tensor([17.0, 803.0][:batch])
    context = torch.randn(batch, 77, context_width, generator=generator)
    return x, t, context


@pytest.mark.parity
@torch.no_grad()
def test_sd1_single_file_unet_matches_diffusers(sd1):
    """An SD1-layout single file loads into our UNet and predicts what diffusers predicts."""
    unet = load_checkpoint(sd1.single_file, components=("unet",)).unet
    x, t, context = _inputs()
    expected = sd1.unet(x, t, encoder_hidden_states=context).sample
    assert max_relative_error(unet(x, t, context), expected) <= 1e-4


@pytest.mark.parity
@torch.no_grad()
def test_sd1_diffusers_folder_unet_matches_diffusers(sd1):
    """A diffusers folder's UNet, renamed to LDM keys, predicts what diffusers predicts."""
    unet = load_unet(sd1.folder)
    x, t, context = _inputs(seed=1)
    expected = sd1.unet(x, t, encoder_hidden_states=context).sample
    assert max_relative_error(unet(x, t, context), expected) <= 1e-4


@pytest.mark.parity
@torch.no_grad()
def test_odd_latent_size_matches_diffusers(sd1):
    """Latents whose size is not a multiple of 8 upsample to the skip's size, as diffusers does."""
    unet = load_unet(sd1.single_file)
    x, t, context = _inputs(size=(13, 11), seed=2)
    expected = sd1.unet(x, t, encoder_hidden_states=context).sample
    assert max_relative_error(unet(x, t, context), expected) <= 1e-4


def _sdxl_reference(reference, x, t, context, pooled, time_ids):
    added = {"text_embeds": pooled, "time_ids": time_ids}
    return reference(x, t, encoder_hidden_states=context, added_cond_kwargs=added).sample


@pytest.mark.parity
@torch.no_grad()
@pytest.mark.parametrize("layout", ["single_file", "folder"])
def test_sdxl_unet_with_size_conditioning_matches_diffusers(sdxl, layout):
    """SDXL-layout UNets (label_emb fed by sdxl_vector) match diffusers' text_time conditioning."""
    unet = load_unet(getattr(sdxl, layout))
    assert unet.config.num_head_channels == 16 and unet.config.adm_in_channels == 128 + 6 * 256
    x, t, context = _inputs(context_width=192, seed=3)
    pooled = torch.randn(2, 128)
    y = sdxl_vector(pooled, original_size=(1024, 768), crop_coords=(16, 32), target_size=(1024, 1024))
    time_ids = torch.tensor([[1024, 768, 16, 32, 1024, 1024]] * 2, dtype=torch.float32)
    expected = _sdxl_reference(sdxl.unet, x, t, context, pooled, time_ids)
    assert max_relative_error(unet(x, t, context, y=y), expected) <= 1e-4


@pytest.mark.parity
@torch.no_grad()
def test_control_residuals_follow_the_controlnet_contract(sd1):
    """control={"input": per-input-block residuals, "middle": [r]} equals diffusers' ControlNet inputs."""
    unet = load_unet(sd1.single_file)
    x, t, context = _inputs(seed=4)
    probe = []
    hooks = [block.register_forward_hook(lambda m, i, o: probe.append(o.shape)) for block in unet.input_blocks]
    unet(x, t, context)
    for hook in hooks:
        hook.remove()
    generator = torch.Generator().manual_seed(5)
    inputs = [torch.randn(shape, generator=generator) for shape in probe]
    middle = torch.randn(probe[-1], generator=generator)
    ours = unet(x, t, context, control={"input": inputs, "middle": [middle]})
    expected = sd1.unet(
        x,
        t,
        encoder_hidden_states=context,
        down_block_additional_residuals=inputs,
        mid_block_additional_residual=middle,
    ).sample
    assert max_relative_error(ours, expected) <= 1e-4
    assert max_relative_error(ours, unet(x, t, context)) > 1e-2  # the residuals did something


def test_control_with_wrong_number_of_residuals_is_refused():
    """A control list that does not have one entry per input block raises a ValueError naming the count."""
    unet = UNetModel(
        UNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1, transformer_depth=(1, 1), context_dim=32)
    )
    x, t, context = _inputs(context_width=32)
    with pytest.raises(ValueError, match="4 input blocks"):
        unet(x, t, context, control={"input": [None, None]})


@torch.no_grad()
def test_low_precision_weights_return_the_input_dtype(sd1):
    """bf16 weights compute in bf16 but hand back float32 for float32 input, close to the fp32 result."""
    unet32 = load_unet(sd1.single_file)
    unet16 = load_unet(sd1.single_file, dtype=torch.bfloat16)
    assert unet16.dtype == torch.bfloat16
    x, t, context = _inputs(seed=6)
    out = unet16(x, t, context)
    assert out.dtype == torch.float32
    assert max_relative_error(out, unet32(x, t, context)) < 0.05


def test_sdxl_unet_without_y_names_the_fix():
    """An SDXL UNet called without y says to pass sdxl_vector(...)."""
    config = UNetConfig(
        model_channels=32,
        channel_mult=(1, 2),
        num_res_blocks=1,
        transformer_depth=(0, 1),
        context_dim=32,
        adm_in_channels=8,
    )
    x, t, context = _inputs(context_width=32)
    with pytest.raises(ValueError, match="sdxl_vector"):
        UNetModel(config)(x, t, context)


def test_sdxl_vector_layout():
    """sdxl_vector concatenates pooled text with one 256-wide embedding per size scalar (refiner: score)."""
    pooled = torch.zeros(3, 1280)
    assert sdxl_vector(pooled).shape == (3, SDXL_BASE.adm_in_channels)
    assert sdxl_vector(pooled, aesthetic_score=6.0).shape == (3, SDXL_REFINER.adm_in_channels)
