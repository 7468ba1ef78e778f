"""SD3 / SD3.5 MMDiT, its 16-channel VAE and three text encoders: parity with diffusers / transformers on tiny
random models, detection at the real SD3 configs' shapes, loading from the single file and the diffusers folder."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file

from nodes.models.convert import vae_from_diffusers
from nodes.models.detect import UNET_PREFIX, VAE_PREFIX, ModelLoadError
from nodes.models.mmdit import (
    SD3_MEDIUM,
    SD35_LARGE,
    SD35_MEDIUM,
    MMDiT,
    MMDiTConfig,
    MMDiTInputError,
    convert_diffusers_state_dict,
    detect_mmdit_config,
)
from nodes.models.sd3 import SD3_TEXT_PREFIXES, detect_sd3_checkpoint, load_sd3_checkpoint, load_sd3_diffusers

from .conftest import _hf_state, max_relative_error

torch.set_num_threads(1)

# Tiny SD3-shaped sizes: 64-wide heads as in every released SD3, 2 heads, 3 joint blocks (the last pre-only).
TRANSFORMER = dict(sample_size=8, patch_size=2, in_channels=16, num_layers=3, attention_head_dim=64,
                   num_attention_heads=2, joint_attention_dim=160, caption_projection_dim=128,
                   pooled_projection_dim=64, out_channels=16, pos_embed_max_size=12)
OURS = MMDiTConfig(depth=3, num_heads=2, head_dim=64, context_dim=160, pooled_dim=64, pos_embed_max_size=12)


def _reference_transformer(seed: int = 0, **overrides):
    """diffusers' SD3Transformer2DModel at a tiny size with every weight random (adaLN included)."""
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(seed)
    model = diffusers.SD3Transformer2DModel(**{**TRANSFORMER, **overrides}).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.2)
    return model


def _inputs(batch: int = 2, size=(8, 6), seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 16, *size, generator=generator), torch.tensor([13.0, 870.0][:batch]),
            torch.randn(batch, 5, 160, generator=generator), torch.randn(batch, 64, generator=generator))


@pytest.mark.parity
@pytest.mark.parametrize("variant", ["sd3", "sd35-large-qk-norm", "sd35-medium-dual-attention"])
@torch.no_grad()
def test_mmdit_matches_diffusers_sd3_transformer(variant):
    """Our MMDiT, loaded through the diffusers key map, predicts what SD3Transformer2DModel predicts (<= 1e-4)."""
    overrides = {"sd3": {}, "sd35-large-qk-norm": {"qk_norm": "rms_norm"},
                 "sd35-medium-dual-attention": {"qk_norm": "rms_norm", "dual_attention_layers": (0, 1)}}[variant]
    reference = _reference_transformer(**overrides)
    config = MMDiTConfig(**{**OURS.__dict__, "qk_norm": "qk_norm" in overrides,
                            "dual_attention_layers": overrides.get("dual_attention_layers", ())})
    ours = MMDiT(config).eval()
    ours.load_state_dict(convert_diffusers_state_dict(reference.state_dict(), config), strict=True)
    x, t, context, pooled = _inputs()
    expected = reference(x, context, pooled, t).sample
    assert max_relative_error(ours(x, t, context, pooled), expected) <= 1e-4


@pytest.mark.parity
def test_key_map_agrees_with_diffusers_single_file_converter():
    """diffusers' own original->diffusers converter reads our original-layout keys back to the exact tensors."""
    pytest.importorskip("diffusers")
    from diffusers.loaders.single_file_utils import convert_sd3_transformer_checkpoint_to_diffusers

    reference = _reference_transformer(qk_norm="rms_norm", dual_attention_layers=(0,))
    config = replace_config(qk_norm=True, dual_attention_layers=(0,))
    original = {UNET_PREFIX + k: v for k, v in convert_diffusers_state_dict(reference.state_dict(), config).items()}
    back = convert_sd3_transformer_checkpoint_to_diffusers(dict(original))
    state = reference.state_dict()
    assert set(back) == set(state)
    assert all(torch.equal(back[k], state[k]) for k in state)


def replace_config(**fields) -> MMDiTConfig:
    return MMDiTConfig(**{**OURS.__dict__, **fields})


@pytest.mark.parametrize("config", [SD3_MEDIUM, SD35_MEDIUM, SD35_LARGE], ids=["sd3-medium", "sd3.5-medium",
                                                                             "sd3.5-large"])
def test_real_configs_build_on_meta_and_are_detected_from_shapes(config):
    """At the released sizes (2B / 2.5B / 8.1B weights) the model builds on meta and detection recovers its config."""
    with torch.device("meta"):
        model = MMDiT(config)
    shapes = {UNET_PREFIX + k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert detect_mmdit_config(shapes, UNET_PREFIX) == config
    info = detect_sd3_checkpoint(shapes)
    assert info.mmdit == config and info.encoders == []
    billions = sum(t.numel() for t in model.state_dict().values()) / 1e9  # the position table is a stored buffer
    assert billions == pytest.approx({SD3_MEDIUM: 2.09, SD35_MEDIUM: 2.47, SD35_LARGE: 8.15}[config], rel=0.01)


def test_mmdit_input_errors_name_the_argument():
    """Wrong latent channels, odd sizes and missing text give errors naming the input and the fix."""
    model = MMDiT(OURS)
    x, t, context, pooled = _inputs(batch=1)
    with pytest.raises(MMDiTInputError, match="x: expected latents \\(B, 16, H, W\\)"):
        model(x[:, :4], t, context, pooled)
    with pytest.raises(MMDiTInputError, match="multiples of the patch size 2"):
        model(x[..., :5], t, context, pooled)
    with pytest.raises(MMDiTInputError, match="context: expected \\(B, T, 160\\).*EncodeTextSD3"):
        model(x, t, None, pooled)
    with pytest.raises(MMDiTInputError, match="exceeds this model's position table"):
        model(torch.randn(1, 16, 26, 26), t, context, pooled)


# --- a tiny SD3 checkpoint, both layouts ----------------------------------------------------------


def _spiece(folder: Path) -> Path:
    sentencepiece = pytest.importorskip("sentencepiece")
    text = ["a photo of a cat sitting on a red mat", "the quick brown fox jumps over the lazy dog"] * 30
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(text), model_prefix=str(folder / "spiece"), vocab_size=32, hard_vocab_limit=False,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2)
    return folder / "spiece.model"


@pytest.fixture(scope="module")
def sd3(tmp_path_factory) -> SimpleNamespace:
    """Tiny SD3 reference parts (diffusers / transformers, random weights) written as a single file and a folder."""
    diffusers = pytest.importorskip("diffusers")
    transformers = pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("sd3")
    transformer = _reference_transformer(seed=3)
    torch.manual_seed(4)
    vae = diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, block_out_channels=(32, 64), layers_per_block=1, latent_channels=16,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        scaling_factor=1.5305, shift_factor=0.0609, use_quant_conv=False, use_post_quant_conv=False).eval()
    clip_kwargs = dict(vocab_size=49408, intermediate_size=64, num_hidden_layers=2, max_position_embeddings=77,
                       hidden_act="quick_gelu", bos_token_id=49406, eos_token_id=49407)
    clip_l = transformers.CLIPTextModelWithProjection(transformers.CLIPTextConfig(
        hidden_size=64, num_attention_heads=1, projection_dim=32, **clip_kwargs)).eval()
    clip_g = transformers.CLIPTextModelWithProjection(transformers.CLIPTextConfig(
        hidden_size=64, num_attention_heads=1, projection_dim=32, **{**clip_kwargs, "hidden_act": "gelu"})).eval()
    t5 = transformers.T5EncoderModel(transformers.T5Config(
        vocab_size=64, d_model=160, d_kv=16, num_heads=2, d_ff=128, num_layers=2, feed_forward_proj="gated-gelu",
        dropout_rate=0.0)).eval()
    for module in (vae, clip_l, clip_g, t5):
        with torch.no_grad():
            for parameter in module.parameters():
                parameter.add_(0.02 * torch.randn_like(parameter))

    state = {UNET_PREFIX + k: v.contiguous() for k, v in
             convert_diffusers_state_dict(transformer.state_dict(), OURS).items()}
    vae_state = vae.state_dict()
    state.update({VAE_PREFIX + k: s.read(vae_state).contiguous() for k, s in vae_from_diffusers(vae_state).items()})
    for name, model in (("clip_l", clip_l), ("clip_g", clip_g)):
        state.update({SD3_TEXT_PREFIXES[name] + k: v.contiguous() for k, v in _hf_state(model).items()})
    state.update({SD3_TEXT_PREFIXES["t5xxl"] + k: v.clone() for k, v in t5.state_dict().items()})  # tied: 2 copies
    single = root / "single"
    single.mkdir()
    save_file(state, single / "sd3_tiny.safetensors")
    save_file({k: v for k, v in state.items() if not k.startswith(SD3_TEXT_PREFIXES["t5xxl"])},
              single / "sd3_tiny_no_t5.safetensors")
    _spiece(single)

    folder = root / "folder"
    for name, module in (("transformer", transformer), ("vae", vae), ("text_encoder", clip_l),
                         ("text_encoder_2", clip_g), ("text_encoder_3", t5)):
        module.save_pretrained(folder / name)
    (folder / "tokenizer_3").mkdir()
    _spiece(folder / "tokenizer_3")
    return SimpleNamespace(transformer=transformer, vae=vae, clip_l=clip_l, clip_g=clip_g, t5=t5,
                           single_file=single / "sd3_tiny.safetensors",
                           no_t5=single / "sd3_tiny_no_t5.safetensors", folder=folder)


@pytest.mark.parity
@pytest.mark.parametrize("layout", ["single_file", "folder"])
@torch.no_grad()
def test_sd3_checkpoint_loads_and_matches_the_references(sd3, layout):
    """Both layouts load MMDiT, 16-channel VAE and three encoders that match diffusers / transformers (<= 1e-4)."""
    if layout == "single_file":
        ckpt = load_sd3_checkpoint(sd3.single_file)
    else:
        ckpt = load_sd3_diffusers(sd3.folder)
    assert ckpt.family == "sd3" and ckpt.prediction == "flow"
    x, t, context, pooled = _inputs()
    assert max_relative_error(ckpt.unet(x, t, context, pooled), sd3.transformer(x, context, pooled, t).sample) <= 1e-4

    images = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(5)) * 2 - 1
    reference_latents = sd3.vae.encode(images).latent_dist.mean
    config = ckpt.vae.config
    assert (config.z_channels, config.scale_factor, config.shift_factor, config.use_quant_conv) == (
        16, 1.5305, 0.0609, False)
    latents = ckpt.vae.encode(images)
    assert max_relative_error(latents, (reference_latents - 0.0609) * 1.5305) <= 1e-4
    expected_images = sd3.vae.decode(reference_latents).sample
    assert max_relative_error(ckpt.vae.decode(latents), expected_images) <= 1e-4

    encoder = ckpt.text_encoder
    assert encoder.encoders == ["clip_l", "clip_g", "t5xxl"]
    cond = encoder.encode("a photo of a cat")
    assert cond["context"].shape == (1, 77 + 256, 160) and cond["y"].shape == (1, 64)
    from nodes.models.tokenizer import default_tokenizer, tokenize_prompt

    tokens = tokenize_prompt(default_tokenizer(), "a photo of a cat")
    ids_l, ids_g = tokens.ids(49407), tokens.ids(0)  # SD3: CLIP-L pads with end-of-text, CLIP-G with "!" (0)
    out_l = sd3.clip_l(ids_l, output_hidden_states=True)
    out_g = sd3.clip_g(ids_g, output_hidden_states=True)
    clip_context = torch.cat([out_l.hidden_states[-2], out_g.hidden_states[-2]], dim=-1)
    assert max_relative_error(cond["context"][:, :77, :128], clip_context) <= 1e-4
    assert float(cond["context"][:, :77, 128:].abs().max()) == 0.0  # zero padding up to T5's width
    assert max_relative_error(cond["y"], torch.cat([out_l.text_embeds, out_g.text_embeds], dim=-1)) <= 1e-4
    t5_ids, _ = encoder.t5_tokenizer("a photo of a cat")
    assert max_relative_error(cond["context"][:, 77:], sd3.t5(t5_ids).last_hidden_state) <= 1e-4


@torch.no_grad()
def test_missing_encoders_contribute_zeros(sd3):
    """Without T5 (file lacks it) the context ends in 77 zero tokens; dropping CLIP-G at run time zeros its part."""
    encoder = load_sd3_checkpoint(sd3.no_t5, components=("text_encoder",)).text_encoder
    assert encoder.encoders == ["clip_l", "clip_g"]
    cond = encoder.encode("a cat")
    assert cond["context"].shape == (1, 154, 160)
    assert float(cond["context"][:, 77:].abs().max()) == 0.0
    without_g = encoder.encode("a cat", use=("clip_l",))
    assert float(without_g["context"][:, :77, 64:].abs().max()) == 0.0
    assert float(without_g["y"][:, 32:].abs().max()) == 0.0
    assert torch.equal(without_g["y"][:, :32], cond["y"][:, :32])


def test_t5_without_tokenizer_model_is_a_clear_error(sd3, tmp_path):
    """A checkpoint with T5 but no spiece.model beside it names the file, the detection and what to copy."""
    lonely = tmp_path / "sd3_alone.safetensors"
    lonely.write_bytes(sd3.single_file.read_bytes())
    with pytest.raises(ModelLoadError, match="detected SD3 with a T5 encoder.*sd3_alone.safetensors.*spiece.model"):
        load_sd3_checkpoint(lonely, components=("text_encoder",))


def test_truncated_mmdit_is_reported_with_the_missing_part(tmp_path):
    """An MMDiT without its final layer (a truncated file) is refused with the missing key."""
    state = {UNET_PREFIX + k: v for k, v in MMDiT(OURS).state_dict().items() if not k.startswith("final_layer")}
    path = tmp_path / "cut.safetensors"
    save_file(state, path)
    with pytest.raises(ModelLoadError, match="cut.safetensors: SD3 MMDiT not recognised: missing.*final_layer"):
        load_sd3_checkpoint(path)


# --- nodes: a graph samples SD3 -----------------------------------------------------------------


def _link(node, output):
    return {"node": node, "output": output}


def _sd3_graph(ckpt: str, steps: int = 3, **encode_inputs) -> dict:
    encode = {"text_encoder": _link("ckpt", "text_encoder"), **encode_inputs}
    return {"format_version": 1, "nodes": {
        "ckpt": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": ckpt}},
        "pos": {"type": "EncodeTextSD3", "inputs": {**encode, "text": "a photo of a cat"}},
        "neg": {"type": "EncodeTextSD3", "inputs": {**encode, "text": ""}},
        "empty": {"type": "EmptyLatent", "inputs": {"width": 32, "height": 32, "vae": _link("ckpt", "vae")}},
        "k": {"type": "KSampler", "inputs": {"model": _link("ckpt", "model"), "positive": _link("pos", "conditioning"),
                                             "negative": _link("neg", "conditioning"),
                                             "latent": _link("empty", "latent"), "seed": 1, "steps": steps,
                                             "cfg": 4.0, "sampler": "euler", "scheduler": "normal"}},
        "decode": {"type": "VAEDecode", "inputs": {"vae": _link("ckpt", "vae"), "latent": _link("k", "latent")}},
        "save": {"type": "SaveImage", "inputs": {"images": _link("decode", "image"), "filename_prefix": "sd3"}}}}


@pytest.fixture(scope="module")
def sd3_models(sd3, tmp_path_factory):
    """models/ holding the tiny SD3 single file (with spiece.model) and a T5-only file."""
    root = tmp_path_factory.mktemp("sd3_models")
    (root / "checkpoints").mkdir()
    for name in ("sd3_tiny.safetensors", "sd3_tiny_no_t5.safetensors", "spiece.model"):
        (root / "checkpoints" / name).write_bytes((sd3.single_file.parent / name).read_bytes())
    save_file({k: v.clone() for k, v in sd3.t5.state_dict().items()}, root / "checkpoints" / "t5_tiny.safetensors")
    from dataclasses import replace

    from nodes.models.clip import CLIPTextModel, PromptEncoder
    from nodes.models.loading import save_checkpoint
    from nodes.models.unet import TINY, UNetModel
    from nodes.models.vae import TINY_VAE, AutoencoderKL

    from .conftest import TINY_CLIP

    save_checkpoint(root / "checkpoints" / "sd1_tiny.safetensors", family="sd1",
                    unet=UNetModel(replace(TINY, context_dim=64)), vae=AutoencoderKL(TINY_VAE),
                    text_encoder=PromptEncoder({"clip_l": CLIPTextModel(TINY_CLIP)}, pooled_from="clip_l"))
    return root


@pytest.fixture
def session(sd3_models, tmp_path):
    from nodegraph import Session
    from nodegraph.model_paths import ModelPaths

    return Session(model_paths=ModelPaths(roots=[sd3_models]), output_dir=tmp_path / "out")


def test_graph_samples_sd3_with_the_flow_model(session):
    """LoadCheckpoint detects SD3 → EncodeTextSD3 → KSampler (flow, shifted `normal` schedule) → VAEDecode → PNG."""
    from PIL import Image

    events = []
    result = session.run(_sd3_graph("sd3_tiny.safetensors"), on_event=events.append)
    (file,) = result.outputs["save"]["files"]
    with Image.open(file["path"]) as image:
        assert image.size == (32, 32)
    assert len([e for e in events if e.type == "node_progress" and e.node_id == "k"]) == 3


def test_separate_t5_file_replaces_the_missing_one(session):
    """A checkpoint without T5 plus LoadTextEncoder of a T5 file: EncodeTextSD3 uses that T5 (256 tokens)."""
    graph = _sd3_graph("sd3_tiny_no_t5.safetensors", t5=_link("t5", "text_encoder"))
    graph["nodes"]["t5"] = {"type": "LoadTextEncoder", "inputs": {"ckpt_name": "t5_tiny.safetensors"}}
    graph["nodes"]["pos"]["inputs"]["text"] = "a cat"
    result = session.run(graph)
    assert result.outputs["save"]["files"]


def test_generic_encode_text_on_sd3_equals_encode_text_sd3(session):
    """EncodeText on an SD3 text encoder uses all three encoders, exactly as EncodeTextSD3 with its defaults."""
    graph = {"format_version": 1, "nodes": {
        "ckpt": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "sd3_tiny.safetensors"}},
        "generic": {"type": "EncodeText", "inputs": {"text_encoder": _link("ckpt", "text_encoder"), "text": "a cat"}},
        "sd3": {"type": "EncodeTextSD3", "inputs": {"text_encoder": _link("ckpt", "text_encoder"), "text": "a cat"}}}}
    outputs = session.run(graph, outputs=["generic", "sd3"]).outputs
    generic, sd3 = outputs["generic"]["conditioning"], outputs["sd3"]["conditioning"]
    assert generic.keys() == sd3.keys() == {"context", "y"}
    assert all(torch.equal(generic[k], sd3[k]) for k in generic)


@pytest.fixture(scope="module")
def sd3_separate_files(sd3, tmp_path_factory):
    """The released SD3.5 layout: model + VAE in one file (no encoders), CLIP-L / CLIP-G / T5 files apart."""
    from safetensors.torch import load_file

    root = tmp_path_factory.mktemp("sd35_layout")
    state = load_file(sd3.single_file)
    for folder in ("unet", "vae", "checkpoints", "text_encoders"):
        (root / folder).mkdir()
    no_text = {k: v for k, v in state.items() if not k.startswith("text_encoders.")}
    for folder in ("unet", "vae", "checkpoints"):
        save_file(no_text, root / folder / "sd35_tiny.safetensors")
    save_file({k: v.contiguous() for k, v in _hf_state(sd3.clip_l).items()}, root / "text_encoders" / "clip_l.safetensors")
    save_file({k: v.contiguous() for k, v in _hf_state(sd3.clip_g).items()}, root / "text_encoders" / "clip_g.safetensors")
    save_file({k: v.clone() for k, v in sd3.t5.state_dict().items()}, root / "text_encoders" / "t5_tiny.safetensors")
    (root / "text_encoders" / "spiece.model").write_bytes((sd3.single_file.parent / "spiece.model").read_bytes())
    return root


def test_separate_files_load_and_sample_like_the_bundled_checkpoint(sd3_separate_files, sd3, tmp_path):
    """LoadUNet + LoadVAE + LoadSD3TextEncoders on SD3.5-style separate files give the same image as the bundle."""
    from nodegraph import Session
    from nodegraph.model_paths import ModelPaths

    (sd3_separate_files / "checkpoints" / "bundle.safetensors").write_bytes(sd3.single_file.read_bytes())
    (sd3_separate_files / "checkpoints" / "spiece.model").write_bytes(
        (sd3.single_file.parent / "spiece.model").read_bytes())
    session = Session(model_paths=ModelPaths(roots=[sd3_separate_files]), output_dir=tmp_path / "out")
    bundled = _sd3_graph("bundle.safetensors")
    separate = _sd3_graph("bundle.safetensors")
    separate["nodes"].pop("ckpt")
    separate["nodes"].update({
        "unet": {"type": "LoadUNet", "inputs": {"unet_name": "sd35_tiny.safetensors"}},
        "vae": {"type": "LoadVAE", "inputs": {"vae_name": "sd35_tiny.safetensors"}},
        "text": {"type": "LoadSD3TextEncoders", "inputs": {"clip_l_name": "clip_l.safetensors",
                                                            "clip_g_name": "clip_g.safetensors",
                                                            "t5_name": "t5_tiny.safetensors"}},
        "shift": {"type": "ModelSamplingSD3", "inputs": {"model": _link("unet", "model"), "shift": 3.0}}})
    for node in ("pos", "neg"):
        separate["nodes"][node]["inputs"]["text_encoder"] = _link("text", "text_encoder")
    separate["nodes"]["empty"]["inputs"]["vae"] = _link("vae", "vae")
    separate["nodes"]["k"]["inputs"]["model"] = _link("shift", "model")
    separate["nodes"]["decode"]["inputs"]["vae"] = _link("vae", "vae")
    import numpy as np
    from PIL import Image

    images = []
    for graph in (bundled, separate):
        (file,) = session.run(graph).outputs["save"]["files"]
        with Image.open(file["path"]) as image:
            images.append(np.asarray(image, dtype=np.int16))
    assert images[0].shape == (32, 32, 3) and images[0].std() > 1  # not a flat image
    assert np.abs(images[0] - images[1]).max() <= 1  # 8-bit PNGs of the same float image


def test_checkpoint_without_encoders_points_to_the_separate_loaders(sd3_separate_files, tmp_path):
    """LoadCheckpoint on a model + VAE file names what is missing and the SD3 loaders to use."""
    from nodegraph import NodeExecutionError, Session
    from nodegraph.model_paths import ModelPaths

    session = Session(model_paths=ModelPaths(roots=[sd3_separate_files]), output_dir=tmp_path / "out")
    with pytest.raises(NodeExecutionError, match="has no text encoder.*LoadSD3TextEncoders"):
        session.run(_sd3_graph("sd35_tiny.safetensors"))


def test_full_sd3_medium_file_layout_is_detected_at_real_shapes():
    """sd3_medium_incl_clips_t5xxlfp16's layout on meta: MMDiT, 16-channel VAE, CLIP-L/G with projections, T5-XXL."""
    from nodes.models.clip import CLIPTextModel
    from nodes.models.sd3 import CLIP_G_SD3, CLIP_L_SD3
    from nodes.models.t5 import T5_XXL, T5EncoderModel
    from nodes.models.vae import SD3_VAE, AutoencoderKL

    shapes = {}
    with torch.device("meta"):
        parts = [(UNET_PREFIX, MMDiT(SD3_MEDIUM)), (VAE_PREFIX, AutoencoderKL(SD3_VAE)),
                 (SD3_TEXT_PREFIXES["clip_l"], CLIPTextModel(CLIP_L_SD3)),
                 (SD3_TEXT_PREFIXES["clip_g"], CLIPTextModel(CLIP_G_SD3)),
                 (SD3_TEXT_PREFIXES["t5xxl"], T5EncoderModel(T5_XXL))]
        for prefix, module in parts:
            shapes.update({prefix + k: tuple(v.shape) for k, v in module.state_dict().items()})
    info = detect_sd3_checkpoint(shapes)
    assert info.mmdit == SD3_MEDIUM and info.t5 == T5_XXL and info.encoders == ["clip_l", "clip_g", "t5xxl"]
    assert (info.clip_l.width, info.clip_l.projection_dim, info.clip_g.width, info.clip_g.projection_dim) == (
        768, 768, 1280, 1280)
    assert (info.vae.z_channels, info.vae.use_quant_conv, info.vae.scale_factor) == (16, False, 1.5305)
    shapes[SD3_TEXT_PREFIXES["t5xxl"] + "shared.weight"] = (32128, 2048)  # a T5 of the wrong width
    with pytest.raises(ModelLoadError, match="T5 encoder is 2048 wide but this MMDiT reads 4096"):
        detect_sd3_checkpoint(shapes, "mixed.safetensors")


def test_encode_text_sd3_refuses_another_familys_encoders(session):
    """EncodeTextSD3 given an SD 1.x text encoder names the input, what it found and the node to use instead."""
    from nodegraph import NodeExecutionError

    graph = _sd3_graph("sd3_tiny.safetensors")
    graph["nodes"]["sd1"] = {"type": "LoadTextEncoder", "inputs": {"ckpt_name": "sd1_tiny.safetensors"}}
    graph["nodes"]["pos"]["inputs"]["text_encoder"] = _link("sd1", "text_encoder")
    with pytest.raises(NodeExecutionError, match="text_encoder.*found a sd1 one; use EncodeText"):
        session.run(graph)


@pytest.mark.parametrize("layout", ["single_file", "folder"])
@torch.no_grad()
def test_fp8_stored_mmdit_stays_close_to_float32(sd3, layout):
    """Linear / Conv weights stored in float8 and computed in fp32 give exactly the fp32 model with those weights
    rounded to float8 (the random tiny net amplifies rounding, so closeness to fp32 itself says little)."""
    from nodes.models.precision import WeightStorage, stored_dtype

    fp8 = WeightStorage(torch.float8_e4m3fn, torch.float32)
    if layout == "single_file":
        wide = load_sd3_checkpoint(sd3.single_file, components=("unet",)).unet
        narrow = load_sd3_checkpoint(sd3.single_file, components=("unet",), dtype=fp8).unet
    else:
        wide = load_sd3_diffusers(sd3.folder, components=("unet",)).unet
        narrow = load_sd3_diffusers(sd3.folder, components=("unet",), dtype=fp8).unet
    assert stored_dtype(narrow) == torch.float8_e4m3fn
    for module in wide.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            module.weight.copy_(module.weight.to(torch.float8_e4m3fn).float())
    x, t, context, pooled = _inputs()
    assert max_relative_error(narrow(x, t, context, pooled), wide(x, t, context, pooled)) <= 1e-6


@pytest.mark.parity
@torch.no_grad()
def test_flow_sampling_of_the_tiny_sd3_matches_a_diffusers_flow_match_euler_loop(sd3):
    """Our MODEL (flow, shift 3, net time 1000 t) + euler over `normal` ends where diffusers' transformer stepped by
    FlowMatchEulerDiscreteScheduler does (the only difference: our first step starts at t = 1 - 1e-4)."""
    diffusers = pytest.importorskip("diffusers")
    from nodes.models.nodes import sd3_diffusion_model
    from nodes.sampling.samplers import SAMPLERS
    from nodes.sampling.schedules import get_sigmas

    _, _, context, pooled = _inputs(batch=1)
    noise = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(9))
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
    scheduler.set_timesteps(10)
    latents = noise.clone()
    for timestep in scheduler.timesteps:
        velocity = sd3.transformer(latents, context, pooled, timestep.reshape(1)).sample
        latents = scheduler.step(velocity, timestep, latents).prev_sample

    model = sd3_diffusion_model(load_sd3_checkpoint(sd3.single_file, components=("unet",)).unet, "tiny")
    denoiser = model.denoiser()
    sigmas = get_sigmas("normal", denoiser, 10)
    ours = SAMPLERS["euler"](denoiser, noise * sigmas[0], sigmas, extra_args={"context": context, "y": pooled})
    assert max_relative_error(ours, latents) <= 1e-3  # measured 1.7e-4


def test_kohya_sd3_lora_patches_through_load_lora(session, sd3_models):
    """A kohya-format SD3 LoRA (lora_unet_joint_blocks_... = original key names, lora_te1_ for CLIP-L) applies
    through LoadLoRA to the MMDiT and the CLIP-L; strength 0 is exact."""
    model = load_sd3_checkpoint(sd3_models / "checkpoints" / "sd3_tiny.safetensors", components=("unet",)).unet
    generator = torch.Generator().manual_seed(9)
    state = {}
    for name in ("joint_blocks.0.x_block.attn.qkv", "joint_blocks.1.context_block.mlp.fc1", "final_layer.linear"):
        weight = model.get_submodule(name).weight
        flat = "lora_unet_" + name.replace(".", "_")
        state |= {f"{flat}.lora_down.weight": torch.randn(4, weight.shape[1], generator=generator),
                  f"{flat}.lora_up.weight": torch.randn(weight.shape[0], 4, generator=generator),
                  f"{flat}.alpha": torch.tensor(4.0)}
    state |= {"lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": torch.randn(2, 64, generator=generator),
              "lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_up.weight": torch.randn(64, 2, generator=generator)}
    (sd3_models / "loras").mkdir(exist_ok=True)
    save_file(state, sd3_models / "loras" / "sd3_style.safetensors")

    def run(strength_model, strength_text):
        graph = _sd3_graph("sd3_tiny.safetensors")
        graph["nodes"]["lora"] = {"type": "LoadLoRA", "inputs": {
            "model": _link("ckpt", "model"), "text_encoder": _link("ckpt", "text_encoder"),
            "lora_name": "sd3_style.safetensors", "strength_model": strength_model, "strength_text": strength_text}}
        graph["nodes"]["k"]["inputs"]["model"] = _link("lora", "model")
        for node in ("pos", "neg"):
            graph["nodes"][node]["inputs"]["text_encoder"] = _link("lora", "text_encoder")
        graph["nodes"].pop("save")
        outputs = session.run(graph, outputs=["k", "lora", "pos"]).outputs
        return outputs

    plain = session.run({**_sd3_graph("sd3_tiny.safetensors")}, outputs=["k", "pos"]).outputs
    zero = run(0.0, 0.0)
    assert torch.equal(zero["k"]["latent"]["samples"], plain["k"]["latent"]["samples"])
    patched = run(0.5, 0.0)
    assert (patched["k"]["latent"]["samples"] - plain["k"]["latent"]["samples"]).abs().max() > 1e-3
    assert "patched 3 of 3" in patched["lora"]["report"]
    text = run(0.0, 1.0)
    assert not torch.equal(text["pos"]["conditioning"]["context"], plain["pos"]["conditioning"]["context"])
    later = _sd3_graph("sd3_tiny.safetensors")  # the base encoder again, on a prompt not encoded before
    later["nodes"]["pos"]["inputs"]["text"] = "a dog"
    again = session.run(later, outputs=["pos"]).outputs["pos"]["conditioning"]["context"]
    fresh = load_sd3_checkpoint(sd3_models / "checkpoints" / "sd3_tiny.safetensors", components=("text_encoder",))
    assert torch.equal(again, fresh.text_encoder.encode("a dog")["context"])  # the LoRA did not leak


def test_an_mmdit_given_where_a_vae_is_expected_is_named(tmp_path):
    """load_vae on a bare SD3 transformer file says it found an SD3 MMDiT, not an unknown architecture."""
    from nodes.models.loading import load_vae

    path = tmp_path / "sd3_transformer_only.safetensors"
    save_file(MMDiT(OURS).state_dict(), path)
    with pytest.raises(ModelLoadError, match="sd3_transformer_only.safetensors: expected a VAE, found an SD3 / SD3.5 "
                                             "MMDiT"):
        load_vae(path)
