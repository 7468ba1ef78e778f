"""Key conversion: our diffusers -> LDM maps are the exact inverse of diffusers' own LDM -> diffusers converters."""

import pytest
import torch

from nodes.models.convert import ConversionError, unet_from_diffusers
from nodes.models.loading import open_state_dict

pytestmark = pytest.mark.parity


def _assert_same_state(converted: dict, reference: dict) -> None:
    assert sorted(converted) == sorted(reference)
    for key, tensor in reference.items():
        assert torch.equal(converted[key].reshape(tensor.shape), tensor), key


def _read_all(path) -> dict:
    tensors = open_state_dict(path)
    return {key: tensors[key] for key in tensors}


@pytest.mark.parametrize("name", ["sd1", "sdxl"])
def test_unet_and_vae_single_files_read_back_exactly_with_diffusers_converters(name, request):
    """convert_ldm_unet_checkpoint / convert_ldm_vae_checkpoint turn our LDM files back into the diffusers weights."""
    from diffusers.loaders.single_file_utils import (
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
    )

    reference = request.getfixturevalue(name)
    checkpoint = _read_all(reference.single_file)
    _assert_same_state(convert_ldm_unet_checkpoint(checkpoint, reference.unet.config), reference.unet.state_dict())
    _assert_same_state(convert_ldm_vae_checkpoint(checkpoint, reference.vae.config), reference.vae.state_dict())


def test_text_encoders_read_back_exactly_with_diffusers_converters(sd1, sdxl):
    """diffusers' CLIP and OpenCLIP converters recover the transformers weights from our single files."""
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_open_clip_checkpoint,
    )

    sd1_checkpoint = _read_all(sd1.single_file)
    clip_l = {k if k.startswith("text_model.") else "text_model." + k: v for k, v in sd1.clip.state_dict().items()}
    _assert_same_state(convert_ldm_clip_checkpoint(sd1_checkpoint), clip_l)

    sdxl_checkpoint = _read_all(sdxl.single_file)
    clip_g = convert_open_clip_checkpoint(sdxl.clip_g, sdxl_checkpoint, prefix="conditioner.embedders.1.model.")
    _assert_same_state(clip_g, sdxl.clip_g.state_dict())


def test_unknown_diffusers_keys_are_listed():
    """A diffusers UNet key that no rule maps is reported by name instead of being dropped."""
    keys = ["down_blocks.0.resnets.0.conv1.weight", "time_embedding.cond_proj.weight"]
    with pytest.raises(ConversionError, match="time_embedding.cond_proj.weight"):
        unet_from_diffusers(keys)
