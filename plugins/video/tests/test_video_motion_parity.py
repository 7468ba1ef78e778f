"""Motion modules against diffusers: UNetMotionModel / MotionAdapter on random weights, both checkpoint layouts.

The reference is a small SD1-shaped UNet (a cross-attention level, then a plain level, 2 ResBlocks
per level, a middle transformer) wrapped by diffusers' UNetMotionModel with a MotionAdapter whose
every weight is random (proj_out included, so the temporal layers really act). Our side is the
project's LDM UNet loaded from the same weights with the motion modules inserted as model patches.
"""

from __future__ import annotations

import functools

import pytest
import torch

from nodegraph_video.motion_module import (
    MotionInsertion,
    MotionModuleError,
    from_diffusers_keys,
    insertion_points,
    load_motion_state,
    to_diffusers_keys,
    windows,
)

diffusers = pytest.importorskip("diffusers")
torch.set_num_threads(1)

FRAMES = 6


@functools.lru_cache(maxsize=1)
def _reference():
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=4)
    adapter = MotionAdapter(block_out_channels=(32, 64), motion_layers_per_block=2, motion_num_attention_heads=8,
                            motion_norm_num_groups=32, motion_max_seq_length=16, use_motion_mid_block=True)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in list(unet.parameters()) + list(adapter.parameters()):
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.08)
    motion = UNetMotionModel.from_unet2d(unet, adapter).eval()
    return unet, adapter, motion


def _ours(unet, motion_state, frames=FRAMES, **insertion):
    from nodes.models.convert import unet_from_diffusers
    from nodes.models.patches import ModuleInsertion, set_model_patches, transformer_keys
    from nodes.models.patches import layer_keys as unet_layer_keys
    from nodes.models.unet import UNetConfig, UNetModel

    state = unet.state_dict()
    key_map = unet_from_diffusers(state.keys())
    ours_state = {k: (s.transform(state[s.key]) if s.transform else state[s.key]) for k, s in key_map.items()}
    ours = UNetModel(UNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=2, transformer_depth=(1, 0),
                                transformer_depth_middle=1, context_dim=32, num_heads=4)).eval()
    ours.load_state_dict(ours_state)
    modules, layout = load_motion_state(motion_state)
    points = insertion_points(unet_layer_keys(ours), transformer_keys(ours), modules.config)
    patches = [ModuleInsertion(name="motion", module=MotionInsertion(modules.modules_by_key()[key], key,
                                                                      frames=frames, **insertion), after=(layer,))
               for key, layer in points.items()]
    set_model_patches(ours, patches)
    return ours, layout, points


def _inputs(clips=1, frames=FRAMES):
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(clips, 4, frames, 8, 8, generator=generator)
    context = torch.randn(clips, 7, 32, generator=generator)
    t = torch.tensor([321.0] * clips)
    return x, t, context


def _run_ours(ours, x, t, context):
    clips, channels, frames, h, w = x.shape
    folded = x.permute(0, 2, 1, 3, 4).reshape(clips * frames, channels, h, w)     # frames into the batch
    out = ours(folded, t.repeat_interleave(frames), context.repeat_interleave(frames, 0))
    return out.view(clips, frames, channels, h, w).permute(0, 2, 1, 3, 4)


def test_diffusers_layout_matches_unet_motion_model():
    """Our UNet + motion patches equal diffusers' UNetMotionModel (MotionAdapter layout) within 1e-4."""
    unet, adapter, motion = _reference()
    ours, layout, points = _ours(unet, adapter.state_dict())
    assert layout == "diffusers"
    assert len(points) == 2 * 2 + 1 + 2 * 3
    x, t, context = _inputs(clips=2)
    with torch.no_grad():
        expected = motion(x, t, context.repeat_interleave(FRAMES, 0)).sample
        found = _run_ours(ours, x, t, context)
    assert (found - expected).abs().max().item() <= 1e-4
    assert expected.std() > 0.05


def test_original_layout_matches_unet_motion_model():
    """The same weights in AnimateDiff's original key layout load and give the same output."""
    unet, adapter, motion = _reference()
    original = from_diffusers_keys(adapter.state_dict())
    assert any(".temporal_transformer.transformer_blocks.0.attention_blocks.1.pos_encoder.pe" in k for k in original)
    assert to_diffusers_keys(original).keys() == adapter.state_dict().keys()
    ours, layout, _ = _ours(unet, original)
    assert layout == "animatediff"
    x, t, context = _inputs()
    with torch.no_grad():
        assert (_run_ours(ours, x, t, context) - motion(x, t, context.repeat_interleave(FRAMES, 0)).sample).abs().max().item() <= 1e-4


def test_motion_modules_make_frames_depend_on_each_other():
    """With the modules, changing one frame's input changes other frames' outputs; without them it does not."""
    unet, adapter, _ = _reference()
    ours, _, _ = _ours(unet, adapter.state_dict())
    x, t, context = _inputs()
    changed = x.clone()
    changed[:, :, 0] += 1.0
    with torch.no_grad():
        delta = (_run_ours(ours, changed, t, context) - _run_ours(ours, x, t, context))[:, :, 1:].abs().max()
        ours.model_patches = ()
        plain = (_run_ours(ours, changed, t, context) - _run_ours(ours, x, t, context))[:, :, 1:].abs().max()
    assert delta > 1e-3 and plain < 1e-6


def test_context_windows_cover_a_long_clip_and_equal_one_window_when_it_fits():
    """Sliding windows cover every frame; a window as long as the clip gives exactly the unwindowed result."""
    assert windows(16, 8, 4) == [(0, 8), (4, 12), (8, 16)]
    assert windows(10, 8, 2) == [(0, 8), (2, 10)]
    assert windows(8, 8, 4) == [(0, 8)]
    unet, adapter, _ = _reference()
    x, t, context = _inputs(frames=12)
    whole, _, _ = _ours(unet, adapter.state_dict(), frames=12)
    fitted, _, _ = _ours(unet, adapter.state_dict(), frames=12, context_length=12, context_overlap=4)
    windowed, _, _ = _ours(unet, adapter.state_dict(), frames=12, context_length=8, context_overlap=4)
    with torch.no_grad():
        a = _run_ours(whole, x, t, context)
        assert torch.equal(a, _run_ours(fitted, x, t, context))
        b = _run_ours(windowed, x, t, context)
    assert b.shape == a.shape and torch.isfinite(b).all() and not torch.equal(a, b)


def test_window_longer_than_clip_and_clip_longer_than_positions_are_refused():
    """A context window longer than the clip, or a clip past the position table, names context_length."""
    unet, adapter, _ = _reference()
    x, t, context = _inputs(frames=6)
    too_wide, _, _ = _ours(unet, adapter.state_dict(), frames=6, context_length=8, context_overlap=2)
    with pytest.raises(MotionModuleError, match="longer than the clip") as caught:
        _run_ours(too_wide, x, t, context)
    assert caught.value.input == "context_length"
    x, t, context = _inputs(frames=20)
    too_long, _, _ = _ours(unet, adapter.state_dict(), frames=20)
    with pytest.raises(MotionModuleError, match="up to 16") as caught:
        _run_ours(too_long, x, t, context)
    assert caught.value.input == "context_length"


def test_module_for_another_unet_family_is_refused():
    """A motion module with a different number of levels than the UNet names motion_module."""
    from nodes.models.patches import layer_keys as unet_layer_keys
    from nodes.models.patches import transformer_keys
    from nodes.models.unet import UNetConfig, UNetModel

    _, adapter, _ = _reference()
    modules, _ = load_motion_state(adapter.state_dict())
    three_levels = UNetModel(UNetConfig(model_channels=32, channel_mult=(1, 2, 2), num_res_blocks=2,
                                        transformer_depth=(0, 1, 1), context_dim=32, num_heads=4))
    with pytest.raises(MotionModuleError, match="2 levels") as caught:
        insertion_points(unet_layer_keys(three_levels), transformer_keys(three_levels), modules.config)
    assert caught.value.input == "motion_module"
