"""LoadUNet's models record their family's latent space, as LoadCheckpoint's do: a latent sampled from a LoadUNet
model and decoded by a VAE file that records no scale was decoded at the guessed SD 1.x scale (a tester's
finding), without the "the latent's own model decides" rule (docs/models.md, VAE scale)."""

from __future__ import annotations

import shutil

import torch

from nodegraph import Session, api
from nodegraph.model_paths import ModelPaths
from nodegraph.node import NodeContext
from nodes.models.loading import load_vae
from nodes.models.nodes import family_latent_scale
from nodes.sampling.diffusion_model import LATENT_SCALE_KEY, latent_in_models_space


def _load_unet(root, inputs: dict):
    """The MODEL LoadUNet gives for `inputs` (models under `root`)."""
    session = Session(model_paths=ModelPaths(roots=[root]), output_dir=root / "out")
    graph = {"format_version": 1, "nodes": {"load": {"type": "LoadUNet", "inputs": inputs}}}
    return session.run(graph, outputs=["load"]).outputs["load"]["model"]


def test_load_unet_of_an_sdxl_file_and_a_vae_without_a_scale_decodes_in_sdxls_space(sdxl, tmp_path):
    """An SDXL file in models/unet (family detected) gives a model in SDXL's space (0.13025); its sampler's latent
    decoded by a bare SDXL VAE file (SD 1.x's 0.18215 guessed) comes out as the pipeline's own VAE decodes it."""
    (tmp_path / "unet").mkdir()
    shutil.copy(sdxl.single_file, tmp_path / "unet" / "sdxl.safetensors")
    model = _load_unet(tmp_path, {"unet_name": "sdxl.safetensors"})
    assert model.latent_scale == (0.13025, 0.0)
    own = load_vae(sdxl.folder / "vae" / "diffusion_pytorch_model.safetensors")
    shutil.copy(sdxl.folder / "vae" / "diffusion_pytorch_model.safetensors", tmp_path / "bare_vae.safetensors")
    guessed = load_vae(tmp_path / "bare_vae.safetensors")
    assert guessed.scale_guessed and guessed.config.scale_factor == 0.18215
    latent = latent_in_models_space({"samples": torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(0))},
                                    model)
    assert latent[LATENT_SCALE_KEY]["scale_factor"] == 0.13025
    warnings = []
    context = NodeContext("d", "VAEDecode", lambda *a: None, lambda node_id: None,
                          Session(output_dir=tmp_path).services, emit_warning=lambda node_id, text: warnings.append(text))
    with torch.no_grad():
        reference = api.vae_decode(context, own, latent)
        decoded = api.vae_decode(context, guessed, latent)
    assert torch.allclose(decoded, reference, atol=1e-5)
    assert "decoded in that space" in warnings[-1]


def test_the_family_given_decides_and_an_unknown_family_records_nothing(sd1, tmp_path):
    """A diffusers pipeline folder in models/unet is placed in no family: its model records no scale (the VAE
    decodes as loaded); LoadUNet's family input, when given, sets it."""
    (tmp_path / "unet").mkdir()
    shutil.copytree(sd1.folder, tmp_path / "unet" / "sd1_pipeline")
    assert _load_unet(tmp_path, {"unet_name": "sd1_pipeline"}).latent_scale is None
    assert _load_unet(tmp_path, {"unet_name": "sd1_pipeline", "family": "sd1"}).latent_scale == (0.18215, 0.0)
    shutil.copy(sd1.single_file, tmp_path / "unet" / "sd1.safetensors")
    assert _load_unet(tmp_path, {"unet_name": "sd1.safetensors"}).latent_scale == (0.18215, 0.0)


def test_each_family_takes_the_scale_of_its_vae_constants():
    """The scales are the VAE configs' own (no second copy of the numbers): SD 1.x/2.x, SDXL, SD3, Flux."""
    from nodes.models.flux import FLUX_VAE
    from nodes.models.vae import SD3_VAE, SD_VAE, SDXL_VAE

    assert family_latent_scale("sd1") == family_latent_scale("sd2") == (SD_VAE.scale_factor, 0.0) == (0.18215, 0.0)
    assert family_latent_scale("sdxl-base") == family_latent_scale("sdxl-refiner") == (SDXL_VAE.scale_factor, 0.0)
    assert family_latent_scale("sd3") == (SD3_VAE.scale_factor, SD3_VAE.shift_factor) == (1.5305, 0.0609)
    assert family_latent_scale("flux") == (FLUX_VAE.scale_factor, FLUX_VAE.shift_factor) == (0.3611, 0.1159)
    assert family_latent_scale(None) is None and family_latent_scale("custom") is None


def test_load_unet_of_a_flux_file_records_fluxs_space(tmp_path):
    """A Flux transformer loaded by LoadUNet samples in Flux's latent space (scale 0.3611, shift 0.1159)."""
    from nodes.models.flux import FluxConfig, FluxModel, save_flux

    (tmp_path / "unet").mkdir()
    config = FluxConfig(in_channels=64, out_channels=64, vec_in_dim=64, context_in_dim=32, hidden_size=32,
                        num_heads=2, depth=1, depth_single_blocks=1, axes_dim=(4, 6, 6), guidance_embed=True)
    save_flux(tmp_path / "unet" / "flux_tiny.safetensors", FluxModel(config))
    assert _load_unet(tmp_path, {"unet_name": "flux_tiny.safetensors"}).latent_scale == (0.3611, 0.1159)


def test_load_flux_records_fluxs_space_as_load_unet_does(tmp_path):
    """LoadFlux's model knows Flux's latent space as LoadUNet's of the same file does."""
    from nodes.models.flux import FluxConfig, FluxModel, save_flux

    (tmp_path / "unet").mkdir()
    config = FluxConfig(in_channels=64, out_channels=64, vec_in_dim=64, context_in_dim=32, hidden_size=32,
                        num_heads=2, depth=1, depth_single_blocks=1, axes_dim=(4, 6, 6), guidance_embed=True)
    save_flux(tmp_path / "unet" / "flux_tiny.safetensors", FluxModel(config))
    session = Session(model_paths=ModelPaths(roots=[tmp_path]), output_dir=tmp_path / "out")
    graph = {"format_version": 1, "nodes": {"load": {"type": "LoadFlux", "inputs": {"unet_name": "flux_tiny.safetensors"}}}}
    assert session.run(graph, outputs=["load"]).outputs["load"]["model"].latent_scale == (0.3611, 0.1159)
