"""The live preview of the shipped tiny-world model looks like its image (a new user's first hour, finding 4).

TrainVAE fitted the preview map to pixels in [0, 1] while ``latent_preview`` maps [-1, 1] to [0, 1]: the KSampler's
preview was ``0.5 + image / 2``, a washed-out lavender picture (mean absolute difference 0.31 from the decoded image
of a red circle on blue). Such maps are now read in [-1, 1] terms (``detect.signed_preview_map``: 0.07 here) and new
fits and saves use them directly (``"preview_map": "signed"``).
"""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from nodes.models.detect import PREVIEW_MAP_SIGNED, signed_preview_map
from nodes.models.loading import load_checkpoint, load_vae, save_checkpoint
from nodes.models.vae import SD1_LATENT_RGB_FACTORS, SD_VAE, AutoencoderKL, VAEConfig

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "checkpoints" / "tiny_world_v6f.safetensors"


def _red_circle_on_blue() -> torch.Tensor:
    """A 64×64 tiny-world picture in [0, 1], (1, 3, 64, 64)."""
    y, x = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    circle = ((x - 20) ** 2 + (y - 32) ** 2) < 144
    image = torch.tensor([0.1, 0.2, 0.9])[:, None, None].expand(3, 64, 64).clone()
    image[:, circle] = torch.tensor([0.9, 0.1, 0.1])[:, None]
    return image[None]


def _preview_difference(vae: AutoencoderKL) -> float:
    """Mean absolute difference (0..1) between the preview of a picture's latents and its decoded image."""
    with torch.no_grad():
        latents = vae.encode(_red_circle_on_blue() * 2 - 1)
        decoded = (vae.decode(latents).clamp(-1, 1) + 1) / 2
        preview = vae.preview(latents)
    return float((preview - F.interpolate(decoded, size=preview.shape[-2:], mode="area")).abs().mean())


@pytest.mark.skipif(not SHIPPED.is_file(), reason="the shipped tiny-world checkpoint is not downloaded")
def test_shipped_models_preview_resembles_its_image():
    vae = load_checkpoint(SHIPPED, components=("vae",)).vae
    assert _preview_difference(vae) < 0.12  # 0.31 before: every pixel half-way to white


def test_a_map_fitted_to_unit_pixels_is_read_in_signed_terms():
    old = {"vae": {"latent_rgb_factors": [[0.5, 0.0, 0.0]] * 4, "latent_rgb_bias": [0.5, 0.25, 0.0]}}
    new = signed_preview_map(old)["vae"]
    assert new["latent_rgb_factors"] == [[1.0, 0.0, 0.0]] * 4 and new["latent_rgb_bias"] == [0.0, -0.5, -1.0]
    # a published map (no bias: SD's, saved with a stock VAE) and a marked one are kept
    published = {"vae": {"latent_rgb_factors": [list(r) for r in SD1_LATENT_RGB_FACTORS], "latent_rgb_bias": [0, 0, 0]}}
    assert signed_preview_map(published) == published
    assert signed_preview_map({**old, "preview_map": PREVIEW_MAP_SIGNED}) == {**old, "preview_map": PREVIEW_MAP_SIGNED}


def test_a_saved_fit_loads_unchanged(tmp_path):
    """Saved now (marked "signed"), a fitted map is not converted a second time."""
    config = VAEConfig(ch=32, ch_mult=(1, 2), num_res_blocks=1, latent_rgb_factors=((0.3, 0.1, -0.2),) * 4,
                       latent_rgb_bias=(0.1, -0.2, 0.05))
    path = tmp_path / "fit.safetensors"
    save_checkpoint(path, family="sd1", vae=AutoencoderKL(config))
    loaded = load_vae(path).config
    assert [list(r) for r in loaded.latent_rgb_factors] == [pytest.approx(r) for r in config.latent_rgb_factors]
    assert loaded.latent_rgb_bias == pytest.approx(config.latent_rgb_bias)
    assert SD_VAE.latent_rgb_bias == (0.0, 0.0, 0.0)
