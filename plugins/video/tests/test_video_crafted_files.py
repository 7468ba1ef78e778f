"""Crafted motion-module files: sizes from one tensor or the metadata are checked before memory is allocated."""

from __future__ import annotations

import json

import pytest
import torch
from nodegraph.testing import RealAllocations

from nodegraph_video.motion_module import MotionConfig, MotionModuleError, MotionModuleSet, load_motion_state
from nodegraph_video.motion_training import FORMAT, config_from_metadata

SMALL = MotionConfig(channels=(32, 64), layers_per_block=1, norm_groups=8, max_frames=8)


def test_one_wide_tensor_does_not_allocate_a_wide_network():
    """A proj_in swapped for a (512, 1) tensor is refused on the meta device: no 512-wide module is allocated."""
    state = MotionModuleSet(SMALL).state_dict()
    state["down_blocks.0.motion_modules.0.temporal_transformer.proj_in.weight"] = torch.zeros(512, 1)
    with RealAllocations() as counter, pytest.raises(MotionModuleError, match=r"expected \(512,"):
        load_motion_state(state)
    assert counter.elements < sum(v.numel() for v in state.values())


@pytest.mark.parametrize("heads, message", [("0", "at least 1"), ("3", "cannot be split into 3 heads"),
                                            ("abc", "not a whole number")])
def test_heads_from_metadata_are_checked_at_load(heads, message):
    """heads that are 0, do not divide a level's width, or are not a number: MotionModuleError at load."""
    with pytest.raises(MotionModuleError, match=message):
        load_motion_state(MotionModuleSet(SMALL).state_dict(), {"heads": heads})


@pytest.mark.parametrize("config", ["{oops", json.dumps({"bogus": 1}), json.dumps({"channels": 5})])
def test_malformed_recorded_config_is_a_motion_module_error(config):
    """A recorded config that is not JSON or not a MotionConfig is a MotionModuleError, not a raw exception."""
    with pytest.raises(MotionModuleError, match="metadata config"):
        config_from_metadata({"format": FORMAT, "config": config})
