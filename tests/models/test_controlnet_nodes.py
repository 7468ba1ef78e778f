"""LoadControlNet / ApplyControlNet in graphs on a tiny random checkpoint, and the hint preprocessors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from nodegraph import NodeExecutionError, Session
from nodegraph.model_paths import ModelPaths
from nodes.image.preprocess import canny_edges, distance_depth, foreground_mask
from nodes.models.clip import CLIPTextModel, PromptEncoder
from nodes.models.controlnet import ControlNet, ControlNetConfig
from nodes.models.loading import save_checkpoint, save_controlnet
from nodes.models.unet import TINY, UNetModel
from nodes.models.vae import TINY_VAE, AutoencoderKL
from nodes.training import world

from .conftest import TINY_CLIP, _jitter



@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """A tiny checkpoint, a ControlNet made for it and one made for SD 1.x-sized text (768 wide)."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("models")
    (root / "checkpoints").mkdir()
    (root / "controlnet").mkdir()
    unet_config = replace(TINY, context_dim=64)
    encoder = PromptEncoder({"clip_l": CLIPTextModel(TINY_CLIP)}, pooled_from="clip_l")
    save_checkpoint(root / "checkpoints" / "tiny.safetensors", family="sd1", unet=UNetModel(unet_config),
                    vae=AutoencoderKL(TINY_VAE), text_encoder=encoder)
    save_controlnet(root / "controlnet" / "tiny_control.safetensors",
                    _jitter(ControlNet(ControlNetConfig(unet_config)), 1))
    save_controlnet(root / "controlnet" / "other_family.safetensors",
                    ControlNet(ControlNetConfig(replace(unet_config, context_dim=768))), family="sd1")
    return root


@pytest.fixture
def session(models_dir, tmp_path):
    return Session(model_paths=ModelPaths(roots=[models_dir]), output_dir=tmp_path / "out")


def link(node, output):
    return {"node": node, "output": output}


def graph(controls: list[dict], steps: int = 3) -> dict:
    """txt2img on the tiny checkpoint, with one ApplyControlNet per entry of `controls` (chained)."""
    nodes = {
        "ckpt": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny.safetensors"}},
        "pos": {"type": "EncodeText", "inputs": {"text_encoder": link("ckpt", "text_encoder"), "text": "a circle"}},
        "neg": {"type": "EncodeText", "inputs": {"text_encoder": link("ckpt", "text_encoder"), "text": ""}},
        "hint": {"type": "RenderTinyWorld", "inputs": {"caption": "a large white circle in the centre, on a black "
                                                                  "background", "size": 32}},
        "empty": {"type": "EmptyLatent", "inputs": {"width": 32, "height": 32}},
    }
    positive, negative = link("pos", "conditioning"), link("neg", "conditioning")
    for index, options in enumerate(controls):
        name = options.pop("name", "tiny_control.safetensors")
        nodes[f"load{index}"] = {"type": "LoadControlNet", "inputs": {"control_net_name": name}}
        nodes[f"apply{index}"] = {"type": "ApplyControlNet", "inputs": {
            "positive": positive, "negative": negative, "control_net": link(f"load{index}", "control_net"),
            "image": link("hint", "image"), **options}}
        positive, negative = link(f"apply{index}", "positive"), link(f"apply{index}", "negative")
    nodes["k"] = {"type": "KSampler", "inputs": {"model": link("ckpt", "model"), "positive": positive,
                                                 "negative": negative, "latent": link("empty", "latent"), "seed": 1,
                                                 "steps": steps, "cfg": 4.0, "sampler": "euler",
                                                 "scheduler": "karras"}}
    nodes["show"] = {"type": "ShowValue", "inputs": {"value": link("k", "latent")}}
    return {"format_version": 1, "nodes": nodes}


def latent(session, controls) -> torch.Tensor:
    return session.run(graph(controls)).outputs["show"]["value"]["samples"]


def test_control_changes_the_sample_strength_zero_does_not(session):
    """A ControlNet moves the result; at strength 0, or scheduled past the end, it is the plain sample."""
    plain = latent(session, [])
    controlled = latent(session, [{"strength": 1.0}])
    assert not torch.allclose(plain, controlled, atol=1e-4)
    assert torch.allclose(latent(session, [{"strength": 0.0}]), plain, rtol=1e-5, atol=1e-4)


def test_a_vae_linked_to_an_rgb_hint_controlnet_is_ignored_as_in_comfyui(session):
    """ComfyUI's templates link a VAE to ControlNetApplyAdvanced; ComfyUI uses it only for ControlNets that take
    latent hints. Here it encoded the hint and failed the run ("4 channels, the ControlNet takes 3") after
    validation said the graph was fine; an RGB-hint ControlNet now ignores it."""
    with_vae = graph([{"strength": 1.0, "vae": link("ckpt", "vae")}])
    without = latent(session, [{"strength": 1.0}])
    assert torch.equal(session.run(with_vae).outputs["show"]["value"]["samples"], without)


def test_chained_controls_add_up(session):
    """Two chained ApplyControlNet at strength 0.5 equal one at strength 1 (the same net and hint)."""
    one = latent(session, [{"strength": 1.0}])
    two = latent(session, [{"strength": 0.5}, {"strength": 0.5}])
    assert torch.allclose(one, two, atol=1e-4)


def test_start_end_window_limits_control(session):
    """Control only over the last part of the schedule lands between none and full control."""
    plain, full = latent(session, []), latent(session, [{}])
    late = latent(session, [{"start": 0.5, "end": 1.0}])
    assert not torch.allclose(late, plain, atol=1e-5) and not torch.allclose(late, full, atol=1e-5)


def test_controlnet_of_another_family_is_a_clear_error(session):
    """Sampling with a ControlNet for other text widths fails at KSampler, naming both models."""
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph([{"name": "other_family.safetensors"}]))
    assert info.value.node_id == "k"
    message = str(info.value)
    assert "positive" in message and "context width 768" in message and "context width 64" in message


def test_a_hint_of_another_size_is_named_in_a_node_warning(session):
    """A hint of another size than the image was resized (and stretched, for another aspect) with a line in the
    server log only; the editor and `run` showed nothing. Now the sampling node warns, naming both sizes."""
    same = session.run(graph([{}]))
    assert [w for w in same.warnings if "hint" in w["message"]] == []
    wide = graph([{}])
    wide["nodes"]["empty"]["inputs"]["width"] = 48
    warnings = [w for w in session.run(wide).warnings if "hint" in w["message"]]
    assert [w["node_id"] for w in warnings] == ["k"]
    assert "32x32" in warnings[0]["message"] and "48x32" in warnings[0]["message"]
    assert "stretched" in warnings[0]["message"] and "ImageScale" in warnings[0]["message"]


def test_end_before_start_is_refused(session):
    with pytest.raises(NodeExecutionError, match="end"):
        session.run(graph([{"start": 0.8, "end": 0.2}]))


def test_foreground_mask_finds_a_tiny_world_object():
    """On a rendered scene the foreground mask covers the object and not the background."""
    scene = world.parse_caption("a large red square in the centre, on a blue background")
    image = torch.from_numpy(world.render(scene)).float().div(255).unsqueeze(0)
    mask = foreground_mask(image)[0]
    assert mask[32, 32] == 1 and mask[2, 2] == 0 and mask[60, 5] == 0
    assert 0.15 < mask.mean() < 0.35                                # a 30-px square of 64²: 22 %


def test_canny_outlines_a_square_and_depth_peaks_inside():
    """Canny marks the square's border only; the distance depth is highest at its centre, 0 outside."""
    image = torch.zeros(1, 32, 32, 3)
    image[:, 8:24, 8:24] = 1.0
    edges = canny_edges(image)[0, ..., 0]
    assert edges[8:24, 7:9].sum() > 8 and edges[14:18, 14:18].sum() == 0 and edges[:4].sum() == 0
    depth = distance_depth(foreground_mask(image))[0, ..., 0]
    assert depth[15, 15] == depth.max() and depth[2, 2] == 0 and depth[9, 9] < depth[15, 15]
