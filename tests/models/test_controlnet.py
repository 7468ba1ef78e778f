"""ControlNet: parity with diffusers' ControlNetModel (SD 1.x and SDXL structure), loading every
key layout, the ControlStack contract (strength, schedule window, chaining), and family errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from nodes.models.controlnet import ControlEntry, ControlNet, ControlNetConfig, ControlStack
from nodes.models.convert import controlnet_from_diffusers
from nodes.models.detect import METADATA_KEY, ModelLoadError
from nodes.models.loading import load_controlnet, save_controlnet
from nodes.models.unet import UNetConfig, UNetModel, sdxl_vector

from .conftest import SD1_UNET, SDXL_UNET, _jitter, max_relative_error

HINT_WIDTHS = (16, 32, 96, 256)


def _diffusers_controlnet(unet_config: dict, seed: int):
    from diffusers import ControlNetModel

    keep = {k: v for k, v in unet_config.items() if k not in ("out_channels", "up_block_types", "sample_size")}
    torch.manual_seed(seed)
    return _jitter(ControlNetModel(**keep, conditioning_embedding_out_channels=HINT_WIDTHS), seed)


@pytest.fixture(scope="module")
def sd1_controlnet(tmp_path_factory):
    """A small SD1-structured diffusers ControlNet with random (non-zero) weights, saved in three layouts."""
    reference = _diffusers_controlnet(SD1_UNET, seed=11)
    root = tmp_path_factory.mktemp("controlnet")
    reference.save_pretrained(root / "diffusers")
    state = reference.state_dict()
    ldm = {ours: source.read(state).contiguous() for ours, source in controlnet_from_diffusers(state).items()}
    metadata = {METADATA_KEY: json.dumps({"family": "sd1"})}
    save_file(ldm, root / "bare.safetensors", metadata=metadata)
    save_file({"control_model." + k: v for k, v in ldm.items()}, root / "prefixed.safetensors", metadata=metadata)
    return reference, root


def _inputs(channels=4, size=(8, 8), context_width=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(2, channels, *size, generator=generator)
    t = torch.tensor([17.0, 803.0])
    context = torch.randn(2, 77, context_width, generator=generator)
    hint = torch.rand(2, 3, size[0] * 8, size[1] * 8, generator=generator)
    return x, t, context, hint


@pytest.mark.parity
@torch.no_grad()
@pytest.mark.parametrize("layout", ["diffusers", "bare.safetensors", "prefixed.safetensors"])
def test_sd1_controlnet_matches_diffusers_in_every_layout(sd1_controlnet, layout):
    """Residuals of our ControlNet equal diffusers' down-block and mid-block residuals (≤ 1e-4 relative)."""
    reference, root = sd1_controlnet
    net = load_controlnet(root / layout)
    assert net.config.hint_widths == HINT_WIDTHS and net.config.unet.num_heads == 8
    x, t, context, hint = _inputs()
    ours = net(x, hint, t, context)
    down, mid = reference(x, t, encoder_hidden_states=context, controlnet_cond=hint, return_dict=False)
    assert len(ours["input"]) == len(down) == 12
    for mine, theirs in zip(ours["input"] + ours["middle"], list(down) + [mid]):
        assert max_relative_error(mine, theirs) <= 1e-4


@pytest.mark.parity
@torch.no_grad()
def test_sdxl_controlnet_matches_diffusers():
    """SDXL structure (no attention at level 0, Linear projections, text_time label embedding) matches too."""
    reference = _diffusers_controlnet(SDXL_UNET, seed=12)
    state = reference.state_dict()
    config = ControlNetConfig(UNetConfig(model_channels=32, channel_mult=(1, 2, 2), transformer_depth=(0, 1, 2),
                                         transformer_depth_middle=2, context_dim=192, num_heads=-1,
                                         num_head_channels=16, use_linear_in_transformer=True,
                                         adm_in_channels=128 + 6 * 256))
    net = ControlNet(config).eval()
    net.load_state_dict({ours: source.read(state) for ours, source in controlnet_from_diffusers(state).items()})
    x, t, context, hint = _inputs(context_width=192, seed=3)
    pooled = torch.randn(2, 128)
    y = sdxl_vector(pooled, original_size=(1024, 768), crop_coords=(16, 32), target_size=(1024, 1024))
    time_ids = torch.tensor([[1024, 768, 16, 32, 1024, 1024]] * 2, dtype=torch.float32)
    ours = net(x, hint, t, context, y=y)
    down, mid = reference(x, t, encoder_hidden_states=context, controlnet_cond=hint, return_dict=False,
                          added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids})
    assert len(ours["input"]) == len(down) == 9
    for mine, theirs in zip(ours["input"] + ours["middle"], list(down) + [mid]):
        assert max_relative_error(mine, theirs) <= 1e-4


def _tiny(seed=0, **unet_overrides) -> tuple[UNetModel, ControlNet]:
    unet_config = UNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1, transformer_depth=(0, 1),
                             context_dim=32, num_heads=2, **unet_overrides)
    torch.manual_seed(seed)
    unet = UNetModel(unet_config).eval()
    net = _jitter(ControlNet(ControlNetConfig(unet_config, hint_widths=(16, 32))), seed)
    return unet, net


@torch.no_grad()
def test_stack_scales_by_strength_adds_up_and_respects_the_window():
    """The UNet with a ControlStack equals the UNet given strength-scaled, summed residuals; outside
    the start/end window an entry does nothing."""
    unet, net = _tiny()
    x = torch.randn(2, 4, 8, 8)
    context = torch.randn(2, 77, 32)
    hint = torch.rand(1, 3, 16, 16)
    t = torch.tensor([700.0, 700.0])
    residuals = net(x, hint, t, context)
    expected = unet(x, t, context, control={k: [0.5 * r for r in v] for k, v in residuals.items()})
    single = ControlStack().plus(ControlEntry(net, hint, strength=0.5))
    assert torch.allclose(unet(x, t, context, control=single), expected, atol=1e-5)
    chained = single.plus(ControlEntry(net, hint, strength=0.25))
    expected = unet(x, t, context, control={k: [0.75 * r for r in v] for k, v in residuals.items()})
    assert torch.allclose(unet(x, t, context, control=chained), expected, atol=1e-5)
    # start 0.5 → active while t ≤ 499.5: at t = 700 the entry is off, at t = 300 it is on
    late = ControlStack().plus(ControlEntry(net, hint, start=0.5))
    assert torch.equal(unet(x, t, context, control=late), unet(x, t, context))
    early_t = torch.tensor([300.0, 300.0])
    assert not torch.allclose(unet(x, early_t, context, control=late), unet(x, early_t, context))


@torch.no_grad()
def test_hint_of_another_size_is_resized_with_a_warning(caplog):
    """A hint that does not match latent × downscale is resized (logged at debug level; the sampling node warns the
    user: tests/models/test_controlnet_nodes.py); batch 1 broadcasts to CFG's 2B."""
    _, net = _tiny()
    entry = ControlEntry(net, torch.rand(1, 3, 40, 24), name="edges")
    x = torch.randn(4, 4, 8, 8)
    with caplog.at_level("DEBUG", logger="nodegraph.controlnet"):
        hint = entry.hint_for(x)
    assert hint.shape == (1, 3, 16, 16)
    assert "edges" in caplog.text and "resized" in caplog.text
    per_item = ControlEntry(net, torch.rand(2, 3, 16, 16))
    assert per_item.hint_for(x).shape == (4, 3, 16, 16)          # positive and negative halves
    with pytest.raises(ValueError, match="hint has batch 3"):
        ControlEntry(net, torch.rand(3, 3, 16, 16)).hint_for(x)


def test_controlnet_of_another_family_names_both():
    """A ControlNet whose encoder does not match the UNet fails with both models described."""
    unet, _ = _tiny()
    _, other = _tiny(adm_in_channels=0)
    other.config = ControlNetConfig(UNetConfig(model_channels=64, channel_mult=(1, 2), num_res_blocks=1,
                                               transformer_depth=(0, 1), context_dim=768, num_heads=2))
    with pytest.raises(ValueError, match=r"different model family.*context width 768.*model: context width 32"):
        ControlStack().plus(ControlEntry(other, torch.rand(1, 3, 16, 16), name="canny")).check_compatible(unet.config)


def test_save_and_load_round_trip_a_non_standard_controlnet(tmp_path: Path):
    """save_controlnet records the exact config, so a small custom ControlNet loads back bit for bit."""
    _, net = _tiny()
    save_controlnet(tmp_path / "tiny.safetensors", net)
    loaded = load_controlnet(tmp_path / "tiny.safetensors")
    assert loaded.config == net.config
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_loading_something_else_is_a_clear_error(tmp_path: Path):
    """A file that is not a ControlNet says what it looks like instead."""
    save_file({"encoder.down.0.block.0.conv1.weight": torch.zeros(1), "decoder.conv_in.weight": torch.zeros(1)},
              tmp_path / "vae.safetensors")
    with pytest.raises(ModelLoadError, match="expected a ControlNet, found a VAE"):
        load_controlnet(tmp_path / "vae.safetensors")
