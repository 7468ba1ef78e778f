"""The files people already have: VAE files with training leftovers, SD 2.x / SDXL refiner / inpainting UNets
(diffusers parity in both layouts), and bad input (unknown families, truncated files) named clearly."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from nodes.models.detect import METADATA_KEY
from nodes.models.loading import ModelLoadError, load_checkpoint, load_unet, load_vae
from nodes.models.unet import sdxl_vector

from .conftest import SD1_UNET, VAE, _jitter, _ldm_checkpoint, _write_pipeline, max_relative_error

torch.set_num_threads(1)

# SD 2.x: 64-wide heads, Linear proj_in / proj_out, 1024-wide (OpenCLIP-H) context; 4 levels as SD 2.1.
SD2_UNET = {
    **SD1_UNET,
    "block_out_channels": (64, 64, 128, 128),
    "attention_head_dim": (1, 1, 2, 2),   # heads per level: a fixed head width of 64
    "use_linear_projection": True,
    "cross_attention_dim": 1024,
}
# SDXL refiner: attention only on the middle levels, 1280-wide (bigG) context, pooled + 5 size/score scalars.
REFINER_UNET = {
    "sample_size": 8,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (64, 128, 128, 128),
    "layers_per_block": 2,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "attention_head_dim": (1, 2, 2, 2),
    "use_linear_projection": True,
    "cross_attention_dim": 1280,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 1280 + 5 * 256,
}
INPAINT_UNET = {**SD1_UNET, "in_channels": 9}


def _reference(tmp_path_factory, name: str, config: dict, seed: int, metadata: dict | None = None):
    pytest.importorskip("diffusers")
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    unet = _jitter(UNet2DConditionModel(**config), seed)
    vae = _jitter(AutoencoderKL(**VAE), seed + 1)
    root = tmp_path_factory.mktemp(name)
    single = root / f"{name}.safetensors"
    save_file(_ldm_checkpoint(unet, vae, {}), str(single),
              metadata={METADATA_KEY: json.dumps(metadata)} if metadata else None)
    _write_pipeline(root / "diffusers", {"unet": unet, "vae": vae}, "StableDiffusionPipeline")
    return SimpleNamespace(unet=unet, single_file=single, folder=root / "diffusers")


@pytest.fixture(scope="module")
def sd2(tmp_path_factory):
    """An SD 2.x-structured diffusers UNet in both layouts (family from its 1024-wide context)."""
    return _reference(tmp_path_factory, "sd2", SD2_UNET, 11)


@pytest.fixture(scope="module")
def refiner(tmp_path_factory):
    """An SDXL-refiner-structured diffusers UNet in both layouts (family from context 1280 + label embedding)."""
    return _reference(tmp_path_factory, "refiner", REFINER_UNET, 12)


@pytest.fixture(scope="module")
def inpainting(tmp_path_factory):
    """A 9-channel (latent + mask + masked-image latent) SD1-structured UNet in both layouts."""
    return _reference(tmp_path_factory, "inpaint", INPAINT_UNET, 13, metadata={"family": "sd1"})  # 64-wide context


def _inputs(channels=4, context_width=1024, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(2, channels, 8, 8, generator=generator)
    context = torch.randn(2, 77, context_width, generator=generator)
    return x, torch.tensor([17.0, 803.0]), context


@pytest.mark.parity
@torch.no_grad()
@pytest.mark.parametrize("layout", ["single_file", "folder"])
def test_sd2_unet_matches_diffusers(sd2, layout):
    """An SD 2.x UNet (64-wide heads, Linear projections) is detected as sd2 and matches diffusers."""
    if layout == "single_file":
        checkpoint = load_checkpoint(sd2.single_file, components=("unet",))
        assert checkpoint.family == "sd2"
        unet = checkpoint.unet
    else:
        unet = load_unet(sd2.folder)
    assert unet.config.num_head_channels == 64 and unet.config.use_linear_in_transformer
    x, t, context = _inputs(seed=1)
    expected = sd2.unet(x, t, encoder_hidden_states=context).sample
    assert max_relative_error(unet(x, t, context), expected) <= 1e-4


@pytest.mark.parity
@torch.no_grad()
@pytest.mark.parametrize("layout", ["single_file", "folder"])
def test_sdxl_refiner_unet_matches_diffusers(refiner, layout):
    """An SDXL refiner UNet (aesthetic-score conditioning, attention on inner levels) matches diffusers."""
    if layout == "single_file":
        checkpoint = load_checkpoint(refiner.single_file, components=("unet",))
        assert checkpoint.family == "sdxl-refiner"
        unet = checkpoint.unet
    else:
        unet = load_unet(refiner.folder)
    assert unet.config.transformer_depth == (0, 1, 1, 0) and unet.config.adm_in_channels == 2560
    x, t, context = _inputs(context_width=1280, seed=2)
    pooled = torch.randn(2, 1280, generator=torch.Generator().manual_seed(3))
    y = sdxl_vector(pooled, original_size=(1024, 768), crop_coords=(16, 32), aesthetic_score=2.5)
    time_ids = torch.tensor([[1024, 768, 16, 32, 2.5]] * 2)
    expected = refiner.unet(x, t, encoder_hidden_states=context,
                            added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}).sample
    assert max_relative_error(unet(x, t, context, y=y), expected) <= 1e-4


@pytest.mark.parity
@torch.no_grad()
@pytest.mark.parametrize("layout", ["single_file", "folder"])
def test_inpainting_unet_matches_diffusers(inpainting, layout):
    """A 9-channel inpainting UNet is flagged as inpainting and matches diffusers on latent + mask + masked latent."""
    if layout == "single_file":
        checkpoint = load_checkpoint(inpainting.single_file, components=("unet",))
        assert checkpoint.info.inpainting and checkpoint.family == "sd1"
        unet = checkpoint.unet
    else:
        unet = load_unet(inpainting.folder)
    assert unet.config.in_channels == 9 and unet.config.out_channels == 4
    x, t, context = _inputs(channels=9, context_width=64, seed=4)
    expected = inpainting.unet(x, t, encoder_hidden_states=context).sample
    assert max_relative_error(unet(x, t, context), expected) <= 1e-4


# --- VAE files with training leftovers ------------------------------------------------------------


@pytest.fixture(scope="module")
def vae_state(tmp_path_factory):
    """An LDM-layout VAE state dict (from a diffusers reference) and the reference itself."""
    pytest.importorskip("diffusers")
    from diffusers import AutoencoderKL

    from nodes.models.convert import vae_from_diffusers

    torch.manual_seed(5)
    reference = _jitter(AutoencoderKL(**VAE), 5)
    state = reference.state_dict()
    ldm = {ours: source.read(state).contiguous() for ours, source in vae_from_diffusers(state).items()}
    return SimpleNamespace(reference=reference, ldm=ldm)


@torch.no_grad()
def test_vae_with_ema_counters_and_loss_weights_loads(vae_state, tmp_path):
    """A VAE file carrying model_ema.decay / num_updates and loss.* (as released fine-tuned VAEs do) loads exactly."""
    from safetensors.torch import save_file

    leftovers = {"model_ema.decay": torch.tensor(0.9999), "model_ema.num_updates": torch.tensor(840000),
                 "loss.logvar": torch.zeros(()), "loss.discriminator.main.0.weight": torch.zeros(8, 3, 4, 4),
                 "loss.perceptual_loss.lin0.model.1.weight": torch.zeros(1, 64, 1, 1)}
    path = tmp_path / "vae-ft-mse.safetensors"
    save_file({**vae_state.ldm, **leftovers}, str(path))
    vae = load_vae(path)
    images = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(6)) * 2 - 1
    expected = vae_state.reference.encode(images).latent_dist.mean
    ours = vae.quant_conv(vae.encoder(images))[:, :4]
    assert max_relative_error(ours, expected) <= 1e-4


def test_vae_with_unknown_extra_keys_names_them(vae_state, tmp_path):
    """Keys that are not known training leftovers are still refused, by name."""
    from safetensors.torch import save_file

    path = tmp_path / "odd_vae.safetensors"
    save_file({**vae_state.ldm, "model_ema.decay": torch.tensor(0.9), "adapter.extra.weight": torch.zeros(2)},
              str(path))
    with pytest.raises(ModelLoadError, match=r"adapter\.extra\.weight") as error:
        load_vae(path)
    assert "model_ema" not in str(error.value) and str(path) in str(error.value)


# --- bad input ------------------------------------------------------------------------------------


def test_file_of_an_unknown_family_names_what_was_found(tmp_path):
    """A checkpoint of an architecture no loader knows: the error names the file and its top-level keys."""
    from safetensors.torch import save_file

    path = tmp_path / "mystery.safetensors"
    save_file({"backbone.layers.0.weight": torch.zeros(4, 4), "head.proj.weight": torch.zeros(2, 4)}, str(path))
    with pytest.raises(ModelLoadError, match=r"mystery\.safetensors.*unknown architecture.*backbone"):
        load_checkpoint(path)


def test_a_flux_file_given_to_the_sd_loader_says_what_it_is(tmp_path):
    """A Flux transformer given to load_checkpoint is named as a Flux transformer, with the loader to use."""
    from safetensors.torch import save_file

    path = tmp_path / "flux1-dev.safetensors"
    save_file({"img_in.weight": torch.zeros(8, 4), "double_blocks.0.img_attn.qkv.weight": torch.zeros(24, 8)},
              str(path))
    with pytest.raises(ModelLoadError, match="found a Flux transformer.*LoadFlux"):
        load_checkpoint(path)


def test_truncated_files_name_the_file_and_the_fix(sd2, tmp_path):
    """A checkpoint cut short (an interrupted download) is refused before any tensor is read, naming the fix."""
    data = sd2.single_file.read_bytes()
    for cut, expected in ((len(data) // 2, "truncated safetensors file"), (5, "found only 5 bytes"),
                          (100, "truncated safetensors file: the header needs")):
        path = tmp_path / f"cut_{cut}.safetensors"
        path.write_bytes(data[:cut])
        with pytest.raises(ModelLoadError, match=expected) as error:
            load_checkpoint(path)
        assert str(path) in str(error.value) and "copy it again" in str(error.value)
