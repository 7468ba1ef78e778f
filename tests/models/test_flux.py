"""Flux: parity with diffusers' FluxTransformer2DModel (both layouts), detection, real-config shapes, packing."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from types import SimpleNamespace

import pytest
import torch

from nodes.models.detect import ModelLoadError, describe_file_kind
from nodes.models.flux import (
    FLUX_DEV,
    FLUX_SCHNELL,
    FluxConfig,
    FluxModel,
    detect_flux_config,
    flux_from_diffusers,
    image_ids,
    is_flux,
    load_flux,
    pack_latents,
    resolution_mu,
    save_flux,
    shift_sigmas,
    text_ids,
    unpack_latents,
)

from .conftest import max_relative_error

torch.set_num_threads(1)

# A 2 + 2 block Flux with 2 heads of width 16 (RoPE axes 4 + 6 + 6), 4-channel latents, tiny encoders.
SMALL = {
    "in_channels": 16,
    "num_layers": 2,
    "num_single_layers": 2,
    "attention_head_dim": 16,
    "num_attention_heads": 2,
    "joint_attention_dim": 24,
    "pooled_projection_dim": 20,
    "axes_dims_rope": (4, 6, 6),
}


def _jitter(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Perturb every parameter so zero-initialised layers (final projection, norms) carry signal."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return module.eval()


def _reference(tmp_path_factory, guidance: bool) -> SimpleNamespace:
    pytest.importorskip("diffusers")
    from diffusers import FluxTransformer2DModel
    from safetensors.torch import save_file

    torch.manual_seed(0)
    reference = _jitter(FluxTransformer2DModel(**SMALL, guidance_embeds=guidance), 1 + guidance)
    root = tmp_path_factory.mktemp("flux")
    reference.save_pretrained(root / "diffusers" / "transformer")
    (root / "diffusers" / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    state = reference.state_dict()
    original = {ours: source.read(state).contiguous() for ours, source in flux_from_diffusers(state).items()}
    config = {"flux": {"num_heads": 2, "hidden_size": 32, "axes_dim": [4, 6, 6]}}
    save_file(original, str(root / "flux.safetensors"), metadata={"nodegraph.config": json.dumps(config)})
    return SimpleNamespace(model=reference, single_file=root / "flux.safetensors", folder=root / "diffusers",
                           original=original)


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    """A guidance-distilled (dev-structured) diffusers reference in both layouts."""
    return _reference(tmp_path_factory, guidance=True)


@pytest.fixture(scope="module")
def schnell(tmp_path_factory):
    """A schnell-structured (no guidance embedder) diffusers reference in both layouts."""
    return _reference(tmp_path_factory, guidance=False)


def _inputs(batch=2, height=6, width=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(batch, 4, height, width, generator=generator)
    context = torch.randn(batch, 7, 24, generator=generator)
    pooled = torch.randn(batch, 20, generator=generator)
    t = torch.tensor([0.3, 0.9][:batch])
    return latents, context, pooled, t


def _diffusers(reference, latents, context, pooled, t, guidance=None):
    batch, _, height, width = latents.shape
    out = reference(
        hidden_states=pack_latents(latents),
        encoder_hidden_states=context,
        pooled_projections=pooled,
        timestep=t,
        img_ids=image_ids(1, height, width)[0],
        txt_ids=text_ids(1, context.shape[1])[0],
        guidance=guidance,
    ).sample
    return unpack_latents(out, height, width)


@pytest.mark.parity
@torch.no_grad()
@pytest.mark.parametrize("layout", ["single_file", "folder"])
def test_dev_matches_diffusers_in_both_layouts(dev, layout):
    """A dev-structured Flux loaded from either layout predicts what diffusers predicts (guidance embedded)."""
    model = load_flux(getattr(dev, layout))
    assert model.config.guidance_embed and model.config.axes_dim == (4, 6, 6)
    latents, context, pooled, t = _inputs()
    guidance = torch.tensor([3.5, 1.0])
    expected = _diffusers(dev.model, latents, context, pooled, t, guidance)
    ours = model(latents, t, context, y=pooled, guidance=guidance)
    assert max_relative_error(ours, expected) <= 1e-4
    assert max_relative_error(ours, model(latents, t, context, y=pooled, guidance=torch.tensor([1.0, 3.5]))) > 1e-3


@pytest.mark.parity
@torch.no_grad()
@pytest.mark.parametrize("layout", ["single_file", "folder"])
def test_schnell_matches_diffusers_in_both_layouts(schnell, layout):
    """A schnell-structured Flux (no guidance_in) matches diffusers, and guidance is ignored."""
    model = load_flux(getattr(schnell, layout))
    assert not model.config.guidance_embed and not hasattr(model, "guidance_in")
    latents, context, pooled, t = _inputs(seed=1)
    expected = _diffusers(schnell.model, latents, context, pooled, t)
    assert max_relative_error(model(latents, t, context, y=pooled), expected) <= 1e-4


@torch.no_grad()
def test_odd_latent_sizes_are_padded_and_cropped(schnell):
    """A latent with odd height / width is padded to whole 2x2 patches and cropped back to its size."""
    model = load_flux(schnell.single_file)
    latents, context, pooled, t = _inputs(height=5, width=7, seed=2)
    out = model(latents, t, context, y=pooled)
    assert out.shape == latents.shape and torch.isfinite(out).all()


@torch.no_grad()
def test_comfy_style_prefixed_single_file_loads(dev, tmp_path):
    """Original keys under model.diffusion_model. (all-in-one files) load to the same model."""
    from safetensors.torch import save_file

    prefixed = {"model.diffusion_model." + k: v for k, v in dev.original.items()}
    path = tmp_path / "prefixed.safetensors"
    config = {"flux": {"num_heads": 2, "hidden_size": 32, "axes_dim": [4, 6, 6]}}
    save_file(prefixed, str(path), metadata={"nodegraph.config": json.dumps(config)})
    assert is_flux(prefixed) == "model.diffusion_model."
    a, b = load_flux(path), load_flux(dev.single_file)
    latents, context, pooled, t = _inputs(seed=3)
    assert torch.equal(a(latents, t, context, y=pooled, guidance=3.5), b(latents, t, context, y=pooled, guidance=3.5))


def test_save_flux_round_trips_a_custom_config(tmp_path):
    """save_flux writes the exact config, so a non-standard Flux loads back with the same weights."""
    config = FluxConfig(in_channels=16, out_channels=16, vec_in_dim=8, context_in_dim=12, hidden_size=32,
                        num_heads=2, depth=1, depth_single_blocks=1, axes_dim=(4, 6, 6), guidance_embed=False)
    model = FluxModel(config)
    save_flux(tmp_path / "f.safetensors", model)
    loaded = load_flux(tmp_path / "f.safetensors")
    assert loaded.config == config
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("reference", [FLUX_DEV, FLUX_SCHNELL], ids=["dev", "schnell"])
def test_real_config_shapes_are_detected(reference):
    """At FLUX.1's real sizes (built on meta: no memory), detection recovers dev or schnell exactly."""
    with torch.device("meta"):
        model = FluxModel(reference)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert len(model.double_blocks) == 19 and len(model.single_blocks) == 38
    assert ("guidance_in.in_layer.weight" in shapes) == reference.guidance_embed
    assert detect_flux_config(shapes) == reference
    parameters = sum(v.numel() for v in model.state_dict().values())
    assert 11.8e9 < parameters < 12.0e9   # FLUX.1 is a 12B-parameter transformer
    assert describe_file_kind(shapes) == "a Flux transformer (original layout)"


def test_real_config_diffusers_key_map_covers_every_tensor():
    """The diffusers key map of a real-size FluxTransformer2DModel (meta) yields exactly our keys and shapes."""
    pytest.importorskip("diffusers")
    from diffusers import FluxTransformer2DModel

    from nodes.models.detect import converted_shape

    with torch.device("meta"):
        reference = FluxTransformer2DModel(guidance_embeds=True)
        ours = FluxModel(FLUX_DEV)
    theirs = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    key_map = flux_from_diffusers(theirs)
    expected = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert set(key_map) == set(expected)
    assert all(converted_shape(s, theirs[s.key]) == expected[k] for k, s in key_map.items())


def test_pack_and_unpack_are_inverse():
    """2x2 patch packing is a lossless permutation: unpack(pack(x)) == x, and ids follow rows and columns."""
    x = torch.randn(2, 16, 6, 10)
    tokens = pack_latents(x)
    assert tokens.shape == (2, 15, 64)
    assert torch.equal(unpack_latents(tokens, 6, 10), x)
    ids = image_ids(2, 6, 10)
    assert ids.shape == (2, 15, 3) and ids[0, 5].tolist() == [0, 1, 0] and ids[0, 4].tolist() == [0, 0, 4]
    assert torch.equal(tokens[0, 6, :4], x[0, 0, 2:4, 2:4].reshape(-1))   # token (row 1, col 1), channel 0


def test_resolution_mu_matches_flux_endpoints_and_the_sampler_shift():
    """mu is 0.5 at 256 tokens (a 32x32 latent, 256 px) and 1.15 at 4096 (128x128, 1024 px); e^mu is the sampler shift."""
    assert resolution_mu(32, 32) == pytest.approx(0.5)
    assert resolution_mu(128, 128) == pytest.approx(1.15)
    sigmas = torch.tensor([1.0, 0.5, 0.0])
    shifted = shift_sigmas(sigmas, 1.15)
    assert shifted[0] == 1.0 and shifted[-1] == 0.0
    assert shifted[1] == pytest.approx(torch.e**1.15 / (torch.e**1.15 + 1))
    from nodes.sampling.denoisers import flow_shift, resolution_shift   # the sampler's view: shift = e^mu

    assert resolution_shift(48 * 40 // 4) == pytest.approx(math.exp(resolution_mu(48, 40)))
    t = torch.linspace(0.05, 0.95, 7)
    assert torch.allclose(flow_shift(t, math.exp(0.8)), shift_sigmas(t, 0.8))


def test_dev_without_guidance_names_the_fix():
    """Calling a guidance-distilled model without guidance says to use FluxGuidance."""
    model = FluxModel(FluxConfig(in_channels=16, out_channels=16, vec_in_dim=8, context_in_dim=12, hidden_size=32,
                                 num_heads=2, depth=1, depth_single_blocks=1, axes_dim=(4, 6, 6)))
    with pytest.raises(ValueError, match="FluxGuidance"):
        model(torch.zeros(1, 4, 4, 4), torch.tensor([0.5]), torch.zeros(1, 3, 12))


def test_a_vae_is_not_taken_for_flux(tmp_path):
    """load_flux on a file of another kind names what it found."""
    from safetensors.torch import save_file

    path = tmp_path / "vae.safetensors"
    save_file({"encoder.conv_in.weight": torch.zeros(8, 3, 3, 3), "decoder.conv_out.weight": torch.zeros(3, 8, 3, 3),
               "encoder.down.0.block.0.conv1.weight": torch.zeros(8, 8, 3, 3)}, str(path))
    with pytest.raises(ModelLoadError, match="expected a Flux transformer.*found a VAE"):
        load_flux(path)


def test_bad_config_is_refused():
    """RoPE axes that do not sum to the head width are refused with both numbers named."""
    with pytest.raises(ValueError, match="summing to the head width 16"):
        FluxConfig(hidden_size=32, num_heads=2, axes_dim=(4, 4, 4))
    assert asdict(FLUX_SCHNELL)["guidance_embed"] is False


# --- nodes: LoadFlux, LoadFluxTextEncoders, EncodeTextFlux, FluxGuidance, ModelSamplingFlux ----------------


@pytest.fixture(scope="module")
def flux_models(tmp_path_factory):
    """models/ with a tiny Flux (16-channel latents), a tiny CLIP-L file and a tiny T5 file with its spiece.model."""
    sentencepiece = pytest.importorskip("sentencepiece")
    from safetensors.torch import save_file

    from nodes.models.clip import CLIPTextModel
    from nodes.models.t5 import T5Config, T5EncoderModel

    from .conftest import TINY_CLIP

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("models")
    for folder in ("unet", "text_encoders", "checkpoints"):
        (root / folder).mkdir()
    config = FluxConfig(in_channels=64, out_channels=64, vec_in_dim=64, context_in_dim=32, hidden_size=32,
                        num_heads=2, depth=1, depth_single_blocks=1, axes_dim=(4, 6, 6), guidance_embed=True)
    flux = _jitter(FluxModel(config), 7)
    save_flux(root / "unet" / "flux_tiny.safetensors", flux)
    save_flux(root / "unet" / "flux_tiny_fp8.safetensors", flux, dtype=torch.float8_e4m3fn)
    clip = CLIPTextModel(TINY_CLIP)
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(root / "text_encoders" / "clip_l.safetensors"))
    t5 = T5EncoderModel(T5Config(vocab_size=64, d_model=32, d_kv=8, num_heads=4, d_ff=48, num_layers=2))
    save_file({k: v.contiguous() for k, v in t5.state_dict().items()}, str(root / "text_encoders" / "t5_tiny.safetensors"))
    text = ["a red circle on a blue background", "a small green square on the left"] * 30
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(text), model_prefix=str(root / "text_encoders" / "t5_tiny"), vocab_size=40,
        hard_vocab_limit=False, model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2)
    (root / "text_encoders" / "t5_tiny.model").rename(root / "text_encoders" / "t5_tiny.spiece.model")
    (root / "text_encoders" / "t5_tiny.vocab").unlink()
    return root


def _link(node, output):
    return {"node": node, "output": output}


def _flux_graph(guidance=3.5, unet="flux_tiny.safetensors", width=64, seed=1):
    return {"format_version": 1, "nodes": {
        "flux": {"type": "LoadFlux", "inputs": {"unet_name": unet}},
        "shift": {"type": "ModelSamplingFlux", "inputs": {"model": _link("flux", "model"), "width": width,
                                                          "height": 64}},
        "te": {"type": "LoadFluxTextEncoders", "inputs": {"clip_name": "clip_l.safetensors",
                                                          "t5_name": "t5_tiny.safetensors"}},
        "pos": {"type": "EncodeTextFlux", "inputs": {"text_encoder": _link("te", "text_encoder"),
                                                     "text": "a red circle"}},
        "neg": {"type": "EncodeTextFlux", "inputs": {"text_encoder": _link("te", "text_encoder"), "text": ""}},
        "guide": {"type": "FluxGuidance", "inputs": {"conditioning": _link("pos", "conditioning"),
                                                     "guidance": guidance}},
        "empty": {"type": "EmptyLatent", "inputs": {"width": width, "height": 64, "channels": 16}},
        "k": {"type": "KSampler", "inputs": {"model": _link("shift", "model"), "positive": _link("guide", "conditioning"),
                                             "negative": _link("neg", "conditioning"), "latent": _link("empty", "latent"),
                                             "seed": seed, "steps": 4, "cfg": 1.0, "sampler": "euler",
                                             "scheduler": "normal"}},
        "out": {"type": "ShowValue", "inputs": {"value": _link("k", "latent")}}}}


def test_flux_graph_samples_with_guidance_shift_and_fp8(flux_models, tmp_path):
    """LoadFlux → ModelSamplingFlux → EncodeTextFlux → FluxGuidance → KSampler runs; guidance matters; fp8 is close."""
    from nodegraph import Session
    from nodegraph.model_paths import ModelPaths

    session = Session(model_paths=ModelPaths(roots=[flux_models]), output_dir=tmp_path)
    latent = session.run(_flux_graph()).outputs["out"]["value"]["samples"]
    assert latent.shape == (1, 16, 8, 8) and torch.isfinite(latent).all()
    other = session.run(_flux_graph(guidance=8.0)).outputs["out"]["value"]["samples"]
    assert (other - latent).abs().max() > 1e-4
    fp8 = session.run(_flux_graph(unet="flux_tiny_fp8.safetensors")).outputs["out"]["value"]["samples"]
    assert ((fp8 - latent).norm() / latent.norm()).item() < 0.1


def test_encode_text_flux_gives_t5_context_and_unprojected_clip_pooled(flux_models):
    """EncodeTextFlux's context is T5's output (padded to 512 for dev) and y is CLIP-L's final-normed EOS state."""
    from nodes.models.flux import load_flux_text_encoder
    from nodes.models.tokenizer import EOS, default_tokenizer, tokenize_prompt

    folder = flux_models / "text_encoders"
    encoder = load_flux_text_encoder(folder / "clip_l.safetensors", folder / "t5_tiny.safetensors")
    cond = encoder.encode(["a red circle", "a green square"])
    assert cond["context"].shape == (2, 512, 32) and cond["y"].shape == (2, 64)
    ids = tokenize_prompt(default_tokenizer(), "a red circle").ids(EOS)
    hidden, _ = encoder.clip_l(ids, layer=-1, final_norm=True, pooled=False)
    assert torch.equal(cond["y"][0], hidden[0, int((ids[0] == EOS).nonzero()[0])])
    assert encoder.encode("a red circle", t5_prompts="a green square")["context"].equal(cond["context"][1:])


def test_flux_nodes_refuse_mismatched_text_encoders(flux_models, tmp_path):
    """EncodeTextFlux given an SD text encoder, or a context of the wrong width for the model, names the mismatch."""
    from pathlib import Path

    from nodegraph import NodeExecutionError, Session
    from nodegraph.model_paths import ModelPaths

    model = load_flux(flux_models / "unet" / "flux_tiny.safetensors")
    with pytest.raises(ValueError, match="context is 40 wide, this Flux model reads 32-wide T5 states"):
        model(torch.zeros(1, 16, 4, 4), torch.tensor([0.5]), torch.zeros(1, 5, 40), y=torch.zeros(1, 64),
              guidance=3.5)
    shipped = Path(__file__).resolve().parents[2] / "models" / "checkpoints" / "tiny_world.safetensors"
    link = flux_models / "checkpoints" / "tiny_world.safetensors"
    if not link.exists():
        link.symlink_to(shipped)
    session = Session(model_paths=ModelPaths(roots=[flux_models]), output_dir=tmp_path)
    graph = _flux_graph()
    graph["nodes"]["te"] = {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world.safetensors"}}
    with pytest.raises(NodeExecutionError, match="expected Flux's text encoders.*found a sd1 text encoder"):
        session.run(graph)


def test_flux_vae_file_gets_flux_latent_statistics(tmp_path):
    """A 16-channel VAE-only file loads with Flux's scale / shift when family="flux" (SD3's otherwise)."""
    from dataclasses import replace

    from safetensors.torch import save_file

    from nodes.models.flux import FLUX_VAE
    from nodes.models.loading import load_vae
    from nodes.models.vae import SD3_VAE, AutoencoderKL

    small = replace(FLUX_VAE, ch=32, ch_mult=(1, 2), num_res_blocks=1)
    vae = AutoencoderKL(small)
    save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, str(tmp_path / "ae.safetensors"))
    flux = load_vae(tmp_path / "ae.safetensors", family="flux")
    assert (flux.config.scale_factor, flux.config.shift_factor) == (0.3611, 0.1159)
    assert load_vae(tmp_path / "ae.safetensors").config.scale_factor == SD3_VAE.scale_factor
    images = torch.rand(1, 3, 16, 16) * 2 - 1
    assert torch.equal(flux.encode(images), vae.encode(images))


def test_load_unet_takes_flux_files_like_load_flux(flux_models, tmp_path):
    """LoadUNet (ComfyUI's "Load Diffusion Model" habit) on a Flux file gives the same flow MODEL as LoadFlux."""
    from nodegraph import Session
    from nodegraph.model_paths import ModelPaths

    session = Session(model_paths=ModelPaths(roots=[flux_models]), output_dir=tmp_path)
    expected = session.run(_flux_graph()).outputs["out"]["value"]["samples"]
    graph = _flux_graph()
    graph["nodes"]["flux"] = {"type": "LoadUNet", "inputs": {"unet_name": "flux_tiny.safetensors"}}
    assert torch.equal(session.run(graph).outputs["out"]["value"]["samples"], expected)


def test_kohya_flux_lora_patches_through_load_lora(flux_models, tmp_path):
    """A kohya-format Flux LoRA (lora_unet_double_blocks_... names) applies through LoadLoRA; strength 0 is exact."""
    from safetensors.torch import save_file

    from nodegraph import Session
    from nodegraph.model_paths import ModelPaths

    (flux_models / "loras").mkdir(exist_ok=True)
    model = load_flux(flux_models / "unet" / "flux_tiny.safetensors")
    generator = torch.Generator().manual_seed(9)
    state = {}
    for name in ("double_blocks.0.img_attn.qkv", "double_blocks.0.txt_mlp.0", "single_blocks.0.linear1"):
        weight = model.get_submodule(name).weight
        flat = "lora_unet_" + name.replace(".", "_")
        state |= {f"{flat}.lora_down.weight": torch.randn(4, weight.shape[1], generator=generator),
                  f"{flat}.lora_up.weight": torch.randn(weight.shape[0], 4, generator=generator),
                  f"{flat}.alpha": torch.tensor(4.0)}
    save_file(state, str(flux_models / "loras" / "flux_style.safetensors"))
    session = Session(model_paths=ModelPaths(roots=[flux_models]), output_dir=tmp_path)

    def run(strength):
        graph = _flux_graph()
        graph["nodes"]["lora"] = {"type": "LoadLoRA", "inputs": {
            "model": _link("flux", "model"), "text_encoder": _link("te", "text_encoder"),
            "lora_name": "flux_style.safetensors", "strength_model": strength, "strength_text": 0.0}}
        graph["nodes"]["shift"]["inputs"]["model"] = _link("lora", "model")
        outputs = session.run(graph, outputs=["out", "lora"]).outputs
        return outputs["out"]["value"]["samples"], outputs

    plain = session.run(_flux_graph()).outputs["out"]["value"]["samples"]
    zero, _ = run(0.0)
    assert torch.equal(zero, plain)
    patched, outputs = run(0.5)
    assert (patched - plain).abs().max() > 1e-3
    assert "patched 3 of 3" in outputs["lora"]["report"]


@pytest.fixture(scope="module")
def flux_pipeline(tmp_path_factory):
    """A diffusers FluxPipeline folder with tiny random parts (transformer, 16-channel VAE, CLIP-L, sharded T5)."""
    sentencepiece = pytest.importorskip("sentencepiece")
    transformers = pytest.importorskip("transformers")
    from diffusers import AutoencoderKL, FluxTransformer2DModel

    torch.manual_seed(3)
    root = tmp_path_factory.mktemp("flux_pipeline")
    folder = root / "checkpoints" / "flux-tiny"
    transformer = _jitter(FluxTransformer2DModel(**{**SMALL, "in_channels": 64, "joint_attention_dim": 32,
                                                    "pooled_projection_dim": 64}, guidance_embeds=True), 4)
    transformer.save_pretrained(folder / "transformer")
    vae = AutoencoderKL(block_out_channels=(32, 32), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=16, use_quant_conv=False,
                        use_post_quant_conv=False, scaling_factor=0.3611, shift_factor=0.1159, layers_per_block=1)
    vae.save_pretrained(folder / "vae")
    clip = transformers.CLIPTextModel(transformers.CLIPTextConfig(hidden_size=64, intermediate_size=128,
                                                                  num_hidden_layers=2, num_attention_heads=2)).eval()
    clip.save_pretrained(folder / "text_encoder")
    t5 = transformers.T5EncoderModel(transformers.T5Config(vocab_size=64, d_model=32, d_kv=8, num_heads=4, d_ff=48,
                                                           num_layers=2, feed_forward_proj="gated-gelu")).eval()
    t5.save_pretrained(folder / "text_encoder_2", max_shard_size="20KB")
    (folder / "tokenizer_2").mkdir()
    text = ["a red circle on a blue background", "a small green square on the left"] * 30
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(text), model_prefix=str(folder / "tokenizer_2" / "spiece"), vocab_size=40,
        hard_vocab_limit=False, model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    return SimpleNamespace(root=root, folder=folder, transformer=transformer, clip=clip, t5=t5)


@torch.no_grad()
def test_flux_pipeline_folder_loads_with_reference_conditioning(flux_pipeline):
    """A FluxPipeline folder loads; CLIP-L pooled and T5 states match transformers (pooler_output, last_hidden_state)."""
    from nodes.models.flux import is_flux_pipeline, load_flux_pipeline
    from nodes.models.t5_tokenizer import T5Tokenizer
    from nodes.models.tokenizer import EOS, default_tokenizer, tokenize_prompt

    assert is_flux_pipeline(flux_pipeline.folder)
    flux, vae, encoder = load_flux_pipeline(flux_pipeline.folder)
    assert (vae.config.scale_factor, vae.config.shift_factor, vae.config.z_channels) == (0.3611, 0.1159, 16)
    cond = encoder.encode("a red circle")
    ids = tokenize_prompt(default_tokenizer(), "a red circle").ids(EOS)
    assert max_relative_error(cond["y"], flux_pipeline.clip(ids).pooler_output) <= 1e-5
    t5_ids, _ = T5Tokenizer(flux_pipeline.folder / "tokenizer_2" / "spiece.model", max_length=512)("a red circle")
    assert max_relative_error(cond["context"], flux_pipeline.t5(t5_ids).last_hidden_state) <= 1e-5
    latents, t = torch.randn(1, 16, 4, 6), torch.tensor([0.4])
    expected = _diffusers(flux_pipeline.transformer, latents, cond["context"], cond["y"], t, torch.tensor([3.5]))
    assert max_relative_error(flux(latents, t, cond["context"], y=cond["y"], guidance=3.5), expected) <= 1e-4


def test_load_checkpoint_node_takes_a_flux_pipeline_folder(flux_pipeline, tmp_path):
    """LoadCheckpoint on a FluxPipeline folder gives MODEL, TEXT_ENCODER and VAE that sample and decode."""
    from nodegraph import Session
    from nodegraph.model_paths import ModelPaths

    session = Session(model_paths=ModelPaths(roots=[flux_pipeline.root]), output_dir=tmp_path)
    graph = _flux_graph()
    nodes = graph["nodes"]
    nodes["flux"] = {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "flux-tiny"}}
    del nodes["te"]
    nodes["pos"]["inputs"]["text_encoder"] = nodes["neg"]["inputs"]["text_encoder"] = _link("flux", "text_encoder")
    nodes["decode"] = {"type": "VAEDecode", "inputs": {"vae": _link("flux", "vae"), "latent": _link("k", "latent")}}
    nodes["out"] = {"type": "ShowValue", "inputs": {"value": _link("decode", "image")}}
    image = session.run(graph).outputs["out"]["value"]
    assert image.shape == (1, 16, 16, 3) and torch.isfinite(image).all()   # the tiny VAE scales by 2
