"""Fine-tuning the text encoder alone through a frozen UNet (TrainDiffusion train_unet=false, #16 §1)."""

from __future__ import annotations

import pytest
import torch

from nodegraph import NodeExecutionError, Session
from nodegraph.model_paths import ModelPaths
from nodes.training.trainer import TrainConfig, train_diffusion

from .test_lcm_distill import ALPHAS, tiny_data, tiny_pair


def test_a_frozen_unet_stays_bit_identical_while_the_text_encoder_learns():
    unet, clip = tiny_pair()
    unet_before = {k: v.clone() for k, v in unet.state_dict().items()}
    clip_before = {k: v.clone() for k, v in clip.state_dict().items()}
    config = TrainConfig(steps=6, batch_size=6, lr=1e-3, warmup_steps=1, ema_decay=0.0)
    train_diffusion(unet, clip, tiny_data(), ALPHAS, config, lambda *a: None, train_unet=False)
    assert all(torch.equal(unet_before[k], v) for k, v in unet.state_dict().items())
    assert any(not torch.equal(clip_before[k], v) for k, v in clip.state_dict().items())
    assert all(p.grad is None for p in unet.parameters())


def test_train_unet_false_needs_a_model_to_keep(tmp_path):
    """Without init_model (nothing to keep) or with the text encoder frozen too, the node names train_unet."""
    session = Session(model_paths=ModelPaths(roots=[tmp_path / "models"]), output_dir=tmp_path / "out")
    link = lambda node, output: {"node": node, "output": output}  # noqa: E731
    graph = {"format_version": 1, "nodes": {
        "data": {"type": "TinyWorldDataset", "inputs": {"count": 4, "size": 32, "caption_filler": 0.5}},
        "vae": {"type": "TrainVAE", "inputs": {"dataset": link("data", "dataset"), "width": 32,
                                               "channel_mult": "1,1", "steps": 1, "batch_size": 2}},
        "unet": {"type": "TrainDiffusion", "inputs": {
            "dataset": link("data", "dataset"), "vae": link("vae", "vae"), "model_channels": 32, "channel_mult": "1,1",
            "res_blocks": 1, "attention_levels": "0,1", "heads": 2, "text_width": 32, "text_layers": 1,
            "steps": 1, "batch_size": 2, "warmup_steps": 1, "train_unet": False}},
        "show": {"type": "ShowValue", "inputs": {"value": link("unet", "report")}}}}
    with pytest.raises(NodeExecutionError) as error:
        session.run(graph)
    assert error.value.node_id == "unet"
    assert "train_unet" in str(error.value) and "init_model" in str(error.value), str(error.value)
