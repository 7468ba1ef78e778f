"""VAE: parity with diffusers' AutoencoderKL, tiling, seeded sampling and the latent preview."""

import pytest
import torch
import torch.nn.functional as F

from nodes.models.loading import load_checkpoint, load_vae
from nodes.models.vae import (
    SD1_LATENT_RGB_FACTORS,
    AutoencoderKL,
    VAEConfig,
    fit_latent_rgb_factors,
    latent_preview,
    run_tiled,
)

from .conftest import max_relative_error


def _images(batch=2, size=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=generator) * 2 - 1


@pytest.mark.parity
@torch.no_grad()
def test_single_file_vae_encode_decode_matches_diffusers(sd1):
    """The VAE of an SD1-layout single file encodes (posterior mean, scaled) and decodes like diffusers."""
    vae = load_checkpoint(sd1.single_file, components=("vae",)).vae
    assert vae.config.scale_factor == 0.18215
    images = _images()
    latents = vae.encode(images)
    expected = sd1.vae.encode(images).latent_dist.mean * 0.18215
    assert max_relative_error(latents, expected) <= 1e-4
    decoded = vae.decode(latents)
    assert max_relative_error(decoded, sd1.vae.decode(expected / 0.18215).sample) <= 1e-4


@pytest.mark.parity
@torch.no_grad()
def test_diffusers_folder_vae_matches_diffusers_with_its_scaling_factor(sdxl):
    """A diffusers VAE folder loads with config.json's scaling factor and matches diffusers."""
    vae = load_vae(sdxl.folder)
    assert vae.config.scale_factor == 0.13025
    images = _images(seed=1)
    latents = vae.encode(images)
    expected = sdxl.vae.encode(images).latent_dist.mean * 0.13025
    assert max_relative_error(latents, expected) <= 1e-4
    assert max_relative_error(vae.decode(latents), sdxl.vae.decode(expected / 0.13025).sample) <= 1e-4


@torch.no_grad()
def test_sampled_encoding_is_reproducible_from_the_generator():
    """encode(sample=True) draws from the posterior with the given generator, so equal seeds agree."""
    vae = AutoencoderKL(VAEConfig(ch=32, ch_mult=(1, 1, 2, 2), num_res_blocks=1)).eval()
    images = _images(batch=1)
    first = vae.encode(images, sample=True, generator=torch.Generator().manual_seed(7))
    second = vae.encode(images, sample=True, generator=torch.Generator().manual_seed(7))
    mean = vae.encode(images)
    assert torch.equal(first, second)
    assert not torch.allclose(first, mean)


def test_tiles_blend_exactly_for_a_pointwise_function():
    """Overlapping tiles reassemble a per-pixel function's output exactly (weights sum to one)."""
    latents = torch.randn(1, 4, 21, 27)

    def upscale(t):
        return F.interpolate(t, scale_factor=8, mode="nearest") * 2.0

    tiled = run_tiled(upscale, latents, tile=8, overlap=3, in_scale=1, out_scale=8)
    assert torch.allclose(tiled, upscale(latents), atol=1e-6)
    images = torch.randn(1, 3, 8 * 21, 8 * 27)
    pooled = run_tiled(lambda t: F.avg_pool2d(t, 8), images, tile=8, overlap=2, in_scale=8, out_scale=1)
    assert torch.allclose(pooled, F.avg_pool2d(images, 8), atol=1e-6)


@torch.no_grad()
def test_tiled_decode_equals_plain_decode_when_one_tile_covers_the_image():
    """A tile at least as large as the image is one pass, bit for bit; smaller tiles keep the shape."""
    vae = AutoencoderKL(VAEConfig(ch=32, ch_mult=(1, 1, 2, 2), num_res_blocks=1)).eval()
    latents = torch.randn(1, 4, 6, 10)
    plain = vae.decode(latents)
    assert torch.equal(vae.decode(latents, tile_size=128), plain)
    tiled = vae.decode(latents, tile_size=32, tile_overlap=8)
    assert tiled.shape == plain.shape and torch.isfinite(tiled).all()
    assert vae.encode(plain, tile_size=32, tile_overlap=8).shape == latents.shape


def test_a_large_image_goes_through_the_vae_in_tiles_that_can_be_interrupted(monkeypatch, tmp_path):
    """One 2048² decode held a server's worker 200 s (past the user's time limit) and 8192² wanted ~45 GB: a
    single image cannot be sliced by batch. Past AUTO_TILE_PIXELS, tile_size 0 decodes and encodes in tiles (a
    warning says so) and the run's interrupt is checked before each tile."""
    import nodes.models.nodes as model_nodes
    from nodegraph import RunInterrupted, Session

    monkeypatch.setattr(model_nodes, "AUTO_TILE_PIXELS", 64 * 64)      # the shipped 4× VAE at 128²: tiled
    monkeypatch.setattr(model_nodes, "AUTO_TILE_SIZE", 64)
    graph = {"format_version": 2, "nodes": {
        "ck": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world_v4.safetensors"}},
        "e": {"type": "EmptyLatent", "inputs": {"width": 128, "height": 128, "vae": {"node": "ck", "output": "vae"}}},
        "d": {"type": "VAEDecode", "inputs": {"vae": {"node": "ck", "output": "vae"},
                                              "latent": {"node": "e", "output": "latent"}}},
        "v": {"type": "VAEEncode", "inputs": {"vae": {"node": "ck", "output": "vae"},
                                              "image": {"node": "d", "output": "image"}}}}}
    session = Session(autoload=False, output_dir=tmp_path)
    result = session.run(graph, outputs=["v"])
    warned = {w["node_id"]: w["message"] for w in result.warnings}
    assert "in 64-pixel tiles" in warned["d"] and "in 64-pixel tiles" in warned["v"]
    checks = []
    original = AutoencoderKL.decode

    def counting_decode(self, latents, **options):     # the node's interrupt check, counted; stop at tile 2
        check = options["before_tile"]

        def counted():
            checks.append(1)
            if len(checks) == 2:
                session.interrupt()
            check()
        return original(self, latents, **{**options, "before_tile": counted})

    monkeypatch.setattr(AutoencoderKL, "decode", counting_decode)
    graph["nodes"]["e"]["inputs"]["batch_size"] = 2    # not cached
    with pytest.raises(RunInterrupted) as info:
        session.run(graph, outputs=["d"])
    assert info.value.node_id == "d" and len(checks) == 2


def test_the_unet_and_vae_stop_between_blocks_when_the_run_is_interrupted():
    """One KSampler step at 1024² took 43.5 s and a one-pass decode minutes, neither interruptible inside: the
    server's run-time limit was overrun by that much. Model code has interrupt points between blocks now."""
    from nodegraph import RunInterrupted
    from nodegraph.interrupts import CURRENT_CHECK, interrupt_point
    from nodes.models.unet import UNetConfig, UNetModel

    interrupt_point()                                    # outside a run: nothing
    calls = []

    def stop_on_third():
        calls.append(1)
        if len(calls) == 3:
            raise RunInterrupted("inner")

    vae = AutoencoderKL(VAEConfig(ch=32, ch_mult=(1, 1, 2, 2), num_res_blocks=1)).eval()
    token = CURRENT_CHECK.set(stop_on_third)
    try:
        with pytest.raises(RunInterrupted), torch.no_grad():
            vae.decode(torch.randn(1, 4, 6, 10))
        assert len(calls) == 3
        calls.clear()
        with pytest.raises(RunInterrupted), torch.no_grad():
            vae.encode(torch.randn(1, 3, 48, 80))
        assert len(calls) == 3
    finally:
        CURRENT_CHECK.reset(token)
    unet = UNetModel(UNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1, transformer_depth=(0, 1),
                                context_dim=32, num_heads=2)).eval()
    calls.clear()
    token = CURRENT_CHECK.set(stop_on_third)
    try:
        with pytest.raises(RunInterrupted), torch.no_grad():
            unet(torch.randn(1, 4, 8, 8), torch.tensor([500.0]), torch.randn(1, 77, 32))
        assert len(calls) == 3                           # stopped inside one forward pass
    finally:
        CURRENT_CHECK.reset(token)


def test_large_attention_runs_in_slices_with_the_same_result_and_stops_between_them(monkeypatch):
    """The VAE's attention over a 2048² image (65,536 positions) ran for minutes as one call: a cancel, or a
    user's 2 s time limit, waited for it (289 s). Past ATTENTION_SCORES_PER_SLICE it is computed over slices
    of the queries — the same numbers, each query's softmax being its own — with an interrupt point before
    each slice (here the limit is lowered so a small VAE takes that path)."""
    from nodegraph import RunInterrupted
    from nodegraph.interrupts import CURRENT_CHECK
    from nodes.models import patches

    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 700, 16, generator=generator) for _ in range(3))
    whole = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    monkeypatch.setattr(patches, "ATTENTION_SCORES_PER_SLICE", 2 * 3 * 700 * 256)     # 256-query slices: 3 of them
    calls = []
    token = CURRENT_CHECK.set(lambda: calls.append(1))
    try:
        torch.testing.assert_close(patches.default_attention(q, k, v), whole, rtol=0, atol=1e-6)
        assert len(calls) == 3
        vae = AutoencoderKL(VAEConfig(ch=32, ch_mult=(1, 1, 2, 2), num_res_blocks=1)).eval()
        latent = torch.randn(1, 4, 40, 40, generator=generator)     # 1,600 positions: 7 slices in each attention
        with torch.no_grad():
            sliced = vae.decode(latent)
            monkeypatch.setattr(patches, "ATTENTION_SCORES_PER_SLICE", 1 << 40)
            torch.testing.assert_close(sliced, vae.decode(latent), rtol=0, atol=1e-5)
        monkeypatch.setattr(patches, "ATTENTION_SCORES_PER_SLICE", 1600 * 256)
        calls.clear()
        CURRENT_CHECK.set(lambda: calls.append(1) or (len(calls) >= 3 and _raise(RunInterrupted("stop"))))
        with pytest.raises(RunInterrupted), torch.no_grad():
            vae.decode(latent)
        assert len(calls) == 3      # the decoder's mid-block attention: before its first block's check
    finally:
        CURRENT_CHECK.reset(token)


def _raise(error: BaseException) -> None:
    raise error


def test_preview_is_the_linear_map_into_unit_range():
    """latent_preview applies the 4x3 factors and maps [-1, 1] to [0, 1]."""
    latents = torch.zeros(1, 4, 2, 2)
    latents[:, 3] = -1.0  # the fourth SD1 channel is mostly blue, negatively
    rgb = latent_preview(latents)
    expected = (1 - torch.tensor(SD1_LATENT_RGB_FACTORS[3])) / 2
    assert rgb.shape == (1, 3, 2, 2)
    assert torch.allclose(rgb[0, :, 0, 0], expected.clamp(0, 1))


def test_fitted_preview_factors_recover_a_known_linear_map():
    """fit_latent_rgb_factors recovers factors and bias from latents and the images they map to."""
    generator = torch.Generator().manual_seed(0)
    factors = torch.randn(4, 3, generator=generator) * 0.3
    bias = torch.tensor([0.1, -0.2, 0.05])
    latents = torch.randn(2, 4, 8, 8, generator=generator)
    small = torch.einsum("bchw,cr->brhw", latents, factors) + bias[None, :, None, None]
    images = F.interpolate(small, scale_factor=8, mode="nearest")
    fitted, fitted_bias = fit_latent_rgb_factors(latents, images)
    assert torch.allclose(fitted, factors, atol=1e-4) and torch.allclose(fitted_bias, bias, atol=1e-4)


def test_encode_refuses_sizes_that_are_not_multiples_of_eight():
    """Encoding a 30-pixel image raises a ValueError that says to crop or pad."""
    vae = AutoencoderKL(VAEConfig(ch=32, ch_mult=(1, 1, 2, 2), num_res_blocks=1))
    with pytest.raises(ValueError, match="multiple of 8"):
        vae.encode(torch.zeros(1, 3, 30, 32))


def test_vae_attention_hands_contiguous_tensors_to_the_attention_kernel(monkeypatch):
    """With q, k, v strided by H*W (a transpose of the conv output), torch's CPU attention fell back to the plain
    math and held the whole (H*W)² weight matrix: VAEDecode of a 1024² image on the tiny VAE asked for 16 GiB, and
    512² peaked at 2.7 GB (a hostile pass). Contiguous, the tiled kernel runs (1.3 GB peak at 1024², measured)."""
    from nodes.models import vae as vae_module

    seen = []
    real = F.scaled_dot_product_attention

    def watch(q, k, v, *args, **kwargs):
        seen.append(all(t.is_contiguous() for t in (q, k, v)))
        return real(q, k, v, *args, **kwargs)

    monkeypatch.setattr(vae_module.F, "scaled_dot_product_attention", watch)
    block = vae_module.AttnBlock(32)
    with torch.no_grad():
        block(torch.randn(1, 32, 8, 8))
    assert seen == [True]


def test_a_vae_file_takes_the_scale_of_the_diffusers_config_json_beside_it(sdxl, tmp_path):
    """An SDXL VAE file inside a diffusers vae/ folder (config.json: scaling_factor 0.13025) decoded SDXL latents
    at SD 1.x's 0.18215; now the config beside it decides, a bare copy keeps the family default, and `family`
    still places a bare file."""
    import shutil

    inside = sdxl.folder / "vae" / "diffusion_pytorch_model.safetensors"
    vae = load_vae(inside)
    assert vae.config.scale_factor == 0.13025 and "config.json" in vae.scale_source
    bare = tmp_path / "sdxl_vae.safetensors"
    shutil.copy(inside, bare)
    assert load_vae(bare).config.scale_factor == 0.18215
    assert "nothing in the file records its scale" in load_vae(bare).scale_source
    assert load_vae(bare, family="sdxl-base").config.scale_factor == 0.13025
    (tmp_path / "config.json").write_text('{"_class_name": "UNet2DConditionModel", "scaling_factor": 0.5}')
    assert load_vae(bare).config.scale_factor == 0.18215      # another component's config: not the VAE's


def test_vae_decode_warns_when_the_latent_was_made_in_another_scale(tmp_path):
    """A latent encoded by a VAE of scale 0.13025 and decoded by one of 0.18215 decodes wrong: VAEDecode says
    which scales differ and where each came from; the same VAE says nothing."""
    from dataclasses import replace

    from nodegraph import Session, api
    from nodegraph.node import NodeContext
    from nodes.models.nodes import LATENT_SCALE_KEY

    config = VAEConfig(ch=32, ch_mult=(1, 1, 2, 2), num_res_blocks=1)
    sdxl_vae = AutoencoderKL(replace(config, scale_factor=0.13025)).eval()
    sd_vae = AutoencoderKL(config).eval()
    sd_vae.scale_source = "the SD 1.x / 2.x default 0.18215: nothing in the file records its scale"
    warnings = []
    context = NodeContext("d", "VAEDecode", lambda *a: None, lambda node_id: None, Session(output_dir=tmp_path).services,
                          emit_warning=lambda node_id, text: warnings.append(text))
    latent = api.vae_encode(context, sdxl_vae, torch.rand(1, 16, 16, 3))
    assert latent[LATENT_SCALE_KEY]["scale_factor"] == 0.13025
    api.vae_decode(context, sdxl_vae, latent)
    assert warnings == []
    api.vae_decode(context, sd_vae, latent)
    assert len(warnings) == 1 and "scaled by 0.13025" in warnings[0] and "scale 0.18215" in warnings[0]
    assert "LoadVAE's family sdxl" in warnings[0] and "nothing in the file records" in warnings[0]


def test_a_vae_that_records_no_scale_decodes_in_the_latent_models_space(sdxl, tmp_path):
    """The SDXL user's swap: a bare SDXL VAE file (no metadata, no config.json: SD 1.x's 0.18215 assumed) decoding
    what an SDXL checkpoint's sampler made. The sampler's latent records the model's space (0.13025) and the guessed
    VAE decodes in it — what the checkpoint's own VAE gives — with a warning; a VAE whose family was given decodes
    as loaded and warns."""
    import shutil

    from nodegraph import Session, api
    from nodegraph.node import NodeContext
    from nodes.sampling.diffusion_model import LATENT_SCALE_KEY, latent_in_models_space

    own = load_vae(sdxl.folder / "vae" / "diffusion_pytorch_model.safetensors")
    bare = tmp_path / "sdxl_vae.safetensors"
    shutil.copy(sdxl.folder / "vae" / "diffusion_pytorch_model.safetensors", bare)
    guessed, chosen = load_vae(bare), load_vae(bare, family="sd1")
    assert guessed.scale_guessed and not chosen.scale_guessed and not own.scale_guessed
    model = type("Model", (), {"latent_scale": (0.13025, 0.0), "name": "sdxl.safetensors"})()
    latent = latent_in_models_space({"samples": torch.randn(1, 4, 4, 4)}, model)
    assert latent[LATENT_SCALE_KEY]["made_by"] == "sampled by sdxl.safetensors"
    warnings = []
    context = NodeContext("d", "VAEDecode", lambda *a: None, lambda node_id: None,
                          Session(output_dir=tmp_path).services, emit_warning=lambda node_id, text: warnings.append(text))
    with torch.no_grad():
        reference = api.vae_decode(context, own, latent)
        assert warnings == []
        decoded = api.vae_decode(context, guessed, latent)
        assert torch.allclose(decoded, reference, atol=1e-5)
        assert "records no latent scale" in warnings[-1] and "decoded in that space" in warnings[-1]
        wrong = api.vae_decode(context, chosen, latent)
    assert not torch.allclose(wrong, reference, atol=1e-3) and "the image comes out wrong" in warnings[-1]
