"""Text encoders: parity with transformers' CLIP models, clip skip, SDXL conditioning, prompt weights."""

import pytest
import torch

from nodes.models.clip import CLIP_L, CLIPTextModel, PromptEncoder
from nodes.models.loading import load_checkpoint, load_text_encoder
from nodes.models.tokenizer import EOS, default_tokenizer

from .conftest import max_relative_error

PROMPTS = ["a photo of a cat", "an astronaut riding a horse, highly detailed"]


def _ids(prompts, pad):
    tokenizer = default_tokenizer()
    return torch.tensor([tokenizer.pad(tokenizer.encode(p), pad) for p in prompts])


@pytest.mark.parity
@torch.no_grad()
@pytest.mark.parametrize("layout", ["single_file", "folder"])
def test_sd1_text_encoder_with_clip_skip_matches_transformers(sd1, layout):
    """SD1 conditioning is the last hidden state; clip_skip=2 is the penultimate one, final-normed."""
    encoder = load_text_encoder(getattr(sd1, layout))
    reference = sd1.clip(_ids(PROMPTS, EOS), output_hidden_states=True)
    cond = encoder.encode(PROMPTS)
    assert cond.context.shape == (2, 77, 64)
    assert max_relative_error(cond.context, reference.last_hidden_state) <= 1e-4
    assert max_relative_error(cond.pooled, reference.pooler_output) <= 1e-4
    skipped = encoder.encode(PROMPTS, clip_skip=2).context
    expected = sd1.clip.final_layer_norm(reference.hidden_states[-2])
    assert max_relative_error(skipped, expected) <= 1e-4


@pytest.mark.parity
@torch.no_grad()
@pytest.mark.parametrize("layout", ["single_file", "folder"])
def test_sdxl_conditioning_matches_transformers(sdxl, layout):
    """SDXL context = [CLIP-L, bigG] penultimate states; pooled = bigG's projected EOS (OpenCLIP keys converted)."""
    encoder = load_checkpoint(getattr(sdxl, layout), components=("text_encoder",)).text_encoder
    assert list(encoder.encoders) == ["clip_l", "clip_g"]
    clip_l = sdxl.clip_l(_ids(PROMPTS, EOS), output_hidden_states=True)
    clip_g = sdxl.clip_g(_ids(PROMPTS, 0), output_hidden_states=True)  # OpenCLIP pads with 0
    cond = encoder.encode(PROMPTS)
    expected = torch.cat([clip_l.hidden_states[-2], clip_g.hidden_states[-2]], dim=-1)
    assert cond.context.shape == (2, 77, 192)
    assert max_relative_error(cond.context, expected) <= 1e-4
    assert max_relative_error(cond.pooled, clip_g.text_embeds) <= 1e-4


def _tiny_encoder(seed=0) -> PromptEncoder:
    torch.manual_seed(seed)
    config = CLIP_L.__class__(width=64, heads=1, layers=2, intermediate=128)
    return PromptEncoder({"clip_l": CLIPTextModel(config).eval()}, pooled_from="clip_l")


def test_unit_weights_change_nothing():
    """ "(cat:1.0)" and "cat" give identical conditioning."""
    encoder = _tiny_encoder()
    assert torch.equal(encoder.encode("a (cat:1.0)").context, encoder.encode("a cat").context)


def test_towards_empty_weight_zero_gives_the_empty_prompt_state():
    """With towards_empty weighting, weight 0 replaces the token's state by the empty prompt's there."""
    encoder = _tiny_encoder()
    plain = encoder.encode("a cat").context
    erased = encoder.encode("a (cat:0)").context
    empty = encoder.encode("").context
    assert torch.allclose(erased[:, 2], empty[:, 2], atol=1e-6)  # BOS, "a", "cat": position 2
    assert torch.equal(erased[:, :2], plain[:, :2]) and torch.equal(erased[:, 3:], plain[:, 3:])
    doubled = encoder.encode("a (cat:2)").context
    assert torch.allclose(doubled[:, 2], empty[:, 2] + 2 * (plain[:, 2] - empty[:, 2]), atol=1e-5)


def test_scale_mean_weighting_keeps_each_chunk_mean():
    """A1111-style weighting scales token states but restores the chunk's mean."""
    encoder = _tiny_encoder()
    plain = encoder.encode("a cat on a mat").context
    weighted = encoder.encode("a (cat:1.5) on a [mat]", weighting="scale_mean").context
    assert torch.allclose(weighted.mean(), plain.mean(), atol=1e-6)
    assert not torch.allclose(weighted, plain)


def test_long_prompts_are_encoded_chunk_by_chunk_and_concatenated():
    """A 100-token prompt gives two 77-token chunks, each encoded on its own."""
    encoder = _tiny_encoder()
    words = " ".join(["cat"] * 100)
    cond = encoder.encode(words)
    assert cond.context.shape == (1, 154, 64)
    second_chunk = encoder.encode(" ".join(["cat"] * 25)).context
    assert torch.allclose(cond.context[:, 77:], second_chunk, atol=1e-6)
    first_chunk = encoder.encode(" ".join(["cat"] * 75)).context
    assert torch.allclose(cond.pooled, encoder.encode(" ".join(["cat"] * 75)).pooled)
    assert torch.allclose(cond.context[:, :77], first_chunk, atol=1e-6)


def test_min_chunks_pads_with_empty_prompt_chunks():
    """min_chunks lets a short negative prompt match a long positive one's length."""
    encoder = _tiny_encoder()
    cond = encoder.encode("", min_chunks=3).context
    assert cond.shape == (1, 231, 64)
    assert torch.equal(cond[:, :77], cond[:, 154:])


def test_clip_skip_past_the_first_layer_is_refused():
    """clip_skip larger than the number of layers raises a ValueError naming the encoder."""
    with pytest.raises(ValueError, match="clip_l"):
        _tiny_encoder().encode("x", clip_skip=3)


@pytest.fixture(scope="module")
def sd2(tmp_path_factory):
    """An SD 2.x-structured file (OpenCLIP-H-style tower, 3 layers) and a diffusers folder whose
    text encoder, as diffusers ships SD 2.x, lacks the unused last layer; its scheduler says v."""
    pytest.importorskip("diffusers")
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig
    from transformers import CLIPTextModel as ReferenceCLIP

    from nodes.models.convert import clip_to_openclip
    from nodes.models.unet import UNetConfig, UNetModel

    from .conftest import _hf_state, _jitter, _write_pipeline

    settings = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 1, "hidden_act": "gelu"}
    clip = _jitter(ReferenceCLIP(CLIPTextConfig(num_hidden_layers=3, **settings)), 8)
    truncated = ReferenceCLIP(CLIPTextConfig(num_hidden_layers=2, **settings)).eval()
    truncated.load_state_dict({k: v for k, v in clip.state_dict().items() if "layers.2." not in k})
    unet_config = UNetConfig(
        model_channels=64,
        channel_mult=(1, 1),
        num_res_blocks=1,
        transformer_depth=(1, 1),
        context_dim=64,
        num_heads=-1,
        num_head_channels=64,
        use_linear_in_transformer=True,
    )
    state = {"model.diffusion_model." + k: v for k, v in UNetModel(unet_config).state_dict().items()}
    state.update({"cond_stage_model.model." + k: v for k, v in clip_to_openclip(_hf_state(clip)).items()})
    root = tmp_path_factory.mktemp("sd2")
    save_file(state, str(root / "sd2.safetensors"))
    unet = UNet2DConditionModel(
        block_out_channels=(64, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D",) * 2,
        up_block_types=("CrossAttnUpBlock2D",) * 2,
        attention_head_dim=(1, 1),
        use_linear_projection=True,
        cross_attention_dim=64,
        sample_size=8,
    )
    _write_pipeline(root / "diffusers", {"unet": unet, "text_encoder": truncated}, "StableDiffusionPipeline")
    (root / "diffusers" / "scheduler" / "scheduler_config.json").write_text('{"prediction_type": "v_prediction"}')
    return clip, root / "sd2.safetensors", root / "diffusers"


@pytest.mark.parity
@torch.no_grad()
def test_sd2_conditioning_is_the_penultimate_layer_final_normed(sd2):
    """SD 2.x: penultimate OpenCLIP-H state through ln_final, padded with 0; the diffusers folder agrees."""
    clip, single_file, folder = sd2
    reference = clip(_ids(PROMPTS, 0), output_hidden_states=True)
    expected = clip.final_layer_norm(reference.hidden_states[-2])
    single = load_checkpoint(single_file, components=("text_encoder",))
    assert single.family == "sd2" and list(single.text_encoder.encoders) == ["clip_h"]
    assert max_relative_error(single.text_encoder.encode(PROMPTS).context, expected) <= 1e-4
    from_folder = load_checkpoint(folder, components=("text_encoder",))
    assert from_folder.family == "sd2" and from_folder.prediction == "v"
    assert max_relative_error(from_folder.text_encoder.encode(PROMPTS).context, expected) <= 1e-4
    assert (
        max_relative_error(
            from_folder.text_encoder.encode(PROMPTS, clip_skip=2).context,
            single.text_encoder.encode(PROMPTS, clip_skip=2).context,
        )
        <= 1e-4
    )
