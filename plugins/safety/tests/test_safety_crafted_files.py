"""Crafted safety-checker files: sizes from metadata or key names are checked before memory is allocated."""

from __future__ import annotations

import json

import pytest
import torch
from nodegraph.testing import RealAllocations

from nodegraph_safety.checker import METADATA_KEY, CheckerConfig, CheckerError, SafetyChecker, checker_from_state_dict
from nodegraph_safety.clip_vision import VisionConfig

SMALL = CheckerConfig(vision=VisionConfig(image_size=16, patch_size=8, width=16, layers=1, heads=2, intermediate=32),
                      projection_dim=8, concepts=2, special_care=1)


def _metadata(**vision) -> dict:
    data = json.loads(SMALL.to_json())
    data["vision"].update(vision)
    return {METADATA_KEY: json.dumps(data)}


def test_metadata_width_is_checked_before_allocation():
    """Metadata declaring a 2048-wide tower over 16-wide tensors is refused without allocating the wide tower."""
    state = SafetyChecker(SMALL).state_dict()
    with RealAllocations() as counter, pytest.raises(CheckerError, match="expected"):
        checker_from_state_dict(state, _metadata(width=2048, heads=32, intermediate=8192), source="wide.safetensors")
    assert counter.elements < sum(v.numel() for v in state.values())


@pytest.mark.parametrize("metadata_layers", [200, None])
def test_layer_count_must_match_the_files_layers(metadata_layers):
    """200 layers in the metadata, or a key naming layer 199, over a file holding one layer: refused by count."""
    state = SafetyChecker(SMALL).state_dict()
    metadata = None
    if metadata_layers:
        metadata = _metadata(layers=metadata_layers)
    else:
        state["vision_model.vision_model.encoder.layers.199.mlp.fc1.weight"] = torch.zeros(1)
    with pytest.raises(CheckerError, match="declares 200 vision layers but the file holds tensors for"):
        checker_from_state_dict(state, metadata, source="deep.safetensors")


@pytest.mark.parametrize("metadata", [{METADATA_KEY: "{oops"}, {METADATA_KEY: json.dumps({"bogus": 1})},
                                      {METADATA_KEY: json.dumps({"projection_dim": 8})}, _metadata(heads=0)])
def test_malformed_metadata_is_a_checker_error(metadata):
    """Not JSON, unknown keys, no vision config, zero heads: a CheckerError naming the file."""
    with pytest.raises(CheckerError, match="odd.safetensors"):
        checker_from_state_dict(SafetyChecker(SMALL).state_dict(), metadata, source="odd.safetensors")
