"""Inpainting UNets (9 input channels): the sampler feeds them cat(mask, masked-image latent)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from nodegraph import Session
from nodegraph.model_paths import ModelPaths
from nodes.models.clip import CLIPTextModel, PromptEncoder
from nodes.models.loading import save_checkpoint
from nodes.models.unet import TINY, UNetModel
from nodes.models.vae import TINY_VAE, AutoencoderKL

from .conftest import TINY_CLIP



@pytest.fixture(scope="module")
def session(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("models")
    (root / "checkpoints").mkdir()
    encoder = PromptEncoder({"clip_l": CLIPTextModel(TINY_CLIP)}, pooled_from="clip_l")
    save_checkpoint(root / "checkpoints" / "inpaint.safetensors", family="sd1",
                    unet=UNetModel(replace(TINY, context_dim=64, in_channels=9)), vae=AutoencoderKL(TINY_VAE),
                    text_encoder=encoder)
    return Session(model_paths=ModelPaths(roots=[root]), output_dir=tmp_path_factory.mktemp("out"))


def link(node, output):
    return {"node": node, "output": output}


def graph(latent_node: dict) -> dict:
    return {"format_version": 1, "nodes": {
        "ckpt": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "inpaint.safetensors"}},
        "pos": {"type": "EncodeText", "inputs": {"text_encoder": link("ckpt", "text_encoder"), "text": "a circle"}},
        "neg": {"type": "EncodeText", "inputs": {"text_encoder": link("ckpt", "text_encoder"), "text": ""}},
        "image": {"type": "RenderTinyWorld", "inputs": {"caption": "a large red circle on the left, on a white "
                                                                   "background", "size": 32}},
        "mask": {"type": "ForegroundMask", "inputs": {"images": link("image", "image")}},
        "latent": latent_node,
        "k": {"type": "KSampler", "inputs": {"model": link("ckpt", "model"), "positive": link("pos", "conditioning"),
                                             "negative": link("neg", "conditioning"),
                                             "latent": link("latent", "latent"), "steps": 2, "cfg": 3.0}},
        "show_latent": {"type": "ShowValue", "inputs": {"value": link("latent", "latent")}},
        "show_mask": {"type": "ShowValue", "inputs": {"value": link("mask", "mask")}},
        "show_model": {"type": "ShowValue", "inputs": {"value": link("ckpt", "model")}},
        "show": {"type": "ShowValue", "inputs": {"value": link("k", "latent")}}}}


def run_capturing_concat(session, graph_data) -> tuple[dict, list[torch.Tensor]]:
    unet = session.run({"format_version": 1, "nodes": {k: v for k, v in graph_data["nodes"].items()
                                                       if k in ("ckpt", "show_model")}}).outputs["show_model"]
    seen = []
    hook = unet["value"].net.register_forward_pre_hook(lambda m, args, kwargs: seen.append(kwargs["concat"]),
                                                       with_kwargs=True)
    try:
        return session.run(graph_data).outputs, seen
    finally:
        hook.remove()


def test_inpainting_unet_gets_mask_and_masked_latent(session):
    """With VAEEncodeForInpaint, every UNet call sees cat(mask at latent size, the encoded masked image)."""
    data = graph({"type": "VAEEncodeForInpaint", "inputs": {"vae": link("ckpt", "vae"), "image": link("image", "image"),
                                                            "mask": link("mask", "mask"), "grow_mask_by": 0}})
    outputs, seen = run_capturing_concat(session, data)
    assert len(seen) == 2                                   # two steps, CFG in one batched call each
    concat = seen[0]
    samples = outputs["show_latent"]["value"]["samples"]
    assert concat.shape == (2, 1 + samples.shape[1], *samples.shape[-2:])
    assert torch.allclose(concat[:, 1:], samples.expand(2, -1, -1, -1))
    mask = outputs["show_mask"]["value"]
    factor = mask.shape[-1] // samples.shape[-1]
    expected = torch.nn.functional.avg_pool2d(mask[:, None], factor)
    assert torch.allclose(concat[:1, :1], expected, atol=1e-5)
    assert outputs["show"]["value"]["samples"].shape == samples.shape


def test_inpainting_unet_does_text_to_image_with_an_all_ones_mask(session):
    """From an empty latent the mask is all ones and the masked-image latent all zeros."""
    data = graph({"type": "EmptyLatent", "inputs": {"width": 32, "height": 32, "vae": link("ckpt", "vae")}})
    _, seen = run_capturing_concat(session, data)
    assert torch.equal(seen[0][:, :1], torch.ones_like(seen[0][:, :1]))
    assert torch.equal(seen[0][:, 1:], torch.zeros_like(seen[0][:, 1:]))


def test_inpainting_unet_without_concat_says_what_it_needs():
    unet = UNetModel(replace(TINY, context_dim=64, in_channels=9))
    with pytest.raises(ValueError, match="9 input channels.*VAEEncodeForInpaint"):
        unet(torch.randn(1, 4, 8, 8), 10.0, torch.randn(1, 77, 64))
