"""The shipped tiny-world model through the shipped graphs: inpainting keeps what is outside the mask,
outpainting keeps the original canvas, txt2img is reproducible, and the ControlNet moves the object."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nodegraph import Session

GRAPHS = Path(__file__).resolve().parents[1] / "graphs"


@pytest.fixture(scope="module")
def session() -> Session:
    return Session()


def load(name: str, **show: tuple[str, str]) -> dict:
    """A shipped graph with a ShowValue node per keyword (name → (node, output))."""
    graph = json.loads((GRAPHS / name).read_text())
    for label, (node, output) in show.items():
        graph["nodes"][f"show_{label}"] = {"type": "ShowValue", "inputs": {"value": {"node": node, "output": output}}}
    return graph


def dilate(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    return torch.nn.functional.max_pool2d(mask[:, None], 2 * pixels + 1, stride=1, padding=pixels)[:, 0]


def test_inpaint_keeps_unmasked_pixels_and_changes_masked_ones(session):
    """Decoded (before pasting back), pixels away from the mask stay within the VAE's error of the source;
    pixels inside the mask change."""
    out = session.run(load("inpaint.json", source=("source", "image"), result=("decode", "image"),
                           mask=("mask", "mask"))).outputs
    source, result, mask = out["show_source"]["value"], out["show_result"]["value"], out["show_mask"]["value"]
    outside = dilate(mask, 4 + 4)[0] == 0                       # VAEEncodeForInpaint grows by 4; 4 px of seam
    inside = mask[0] > 0.5
    difference = (result[0] - source[0]).abs().mean(-1)          # (H, W)
    assert outside.sum() > 500 and inside.sum() > 200             # a 64×64 image: 4096 pixels
    assert difference[outside].mean() < 0.03
    assert difference[inside].mean() > 0.15


def test_outpaint_keeps_the_original_canvas(session):
    """The decoded image is close to the input over the 40 px that existed before padding, and the pasted
    result (CompositeImages through the pad's mask) is exactly the input there outside the 8 px feather."""
    out = session.run(load("outpaint.json", padded=("pad", "image"), decoded=("decode", "image"),
                           result=("composite", "image"))).outputs
    padded, decoded, result = (out[f"show_{name}"]["value"] for name in ("padded", "decoded", "result"))
    assert result.shape == padded.shape == (1, 64, 64, 3)
    kept = (decoded[0, :, :28] - padded[0, :, :28]).abs().mean()    # 40 px minus the 8 px feather and 4 px growth
    assert kept < 0.03
    assert torch.equal(result[0, :, :32], padded[0, :, :32])
    assert (result[0, :, 40:] - padded[0, :, 40:]).abs().mean() > 0   # the new strip is generated, not copied


def test_txt2img_is_reproducible_across_sessions():
    """The README's main graph gives the same pixels in a new session (same seed, same CPU)."""
    first = Session().run(load("txt2img.json", image=("decode", "image"))).outputs["show_image"]["value"]
    second = Session().run(load("txt2img.json", image=("decode", "image"))).outputs["show_image"]["value"]
    assert first.shape == (1, 64, 64, 3) and torch.equal(first, second)
def test_controlnet_graph_puts_the_object_where_the_hint_is(session):
    """With the mask ControlNet the generated object overlaps the hint silhouette far more than without
    (benchmarks/controlnet.py measures this over many prompts)."""
    from nodes.image.preprocess import foreground_mask

    out = session.run(load("controlnet.json", hint=("silhouette", "mask"), plain=("decode_plain", "image"),
                           controlled=("decode_controlled", "image"))).outputs
    hint = out["show_hint"]["value"][0] > 0.5

    def iou(image: torch.Tensor) -> float:
        generated = foreground_mask(image)[0] > 0.5
        return float((generated & hint).sum() / (generated | hint).sum())

    # the prompt asks for a large triangle on the right, the hint shows a small one at the top:
    # without the ControlNet the object misses the hint; with it the object moves onto it
    assert iou(out["show_plain"]["value"]) < 0.1
    assert iou(out["show_controlled"]["value"]) > iou(out["show_plain"]["value"]) + 0.2


@pytest.mark.parametrize(("prompt", "flagged"), [
    ("a smal purpel trinagle on the rigth, on a yelow backround", ["smal", "purpel", "trinagle", "yelow"]),
    ("a dog running in a park", ["dog", "park"]),
    ("A Yellow Triangle, top left, green background", []),
    ("(red:1.3) circle in the centre of the picture", []),
    ("a red circle BREAK on a blue background", []),        # BREAK is syntax (a new chunk), not a word it lacks
])
def test_prompt_words_the_tiny_world_never_uses_are_named_in_a_warning(session, prompt, flagged):
    """A newcomer's misspelt prompt gave a plain grey canvas and said nothing; EncodeText on a tiny-world
    checkpoint now warns, naming the words (other phrasings of known words pass quietly)."""
    graph = {"format_version": 2, "nodes": {
        "checkpoint": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world_v4.safetensors"}},
        "prompt": {"type": "EncodeText", "inputs": {"text_encoder": {"node": "checkpoint", "output": "text_encoder"},
                                                    "text": prompt}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "prompt", "output": "conditioning"}}}}}
    warnings = session.run(graph).warnings
    if not flagged:
        assert warnings == []
        return
    assert [w["node_id"] for w in warnings] == ["prompt"]
    assert all(f"'{word}'" in warnings[0]["message"] for word in flagged)


@pytest.mark.parametrize(("width", "height", "warned"), [(256, 256, True), (16, 64, True), (48, 80, False),
                                                         (128, 128, False)])
def test_sizes_outside_the_tiny_worlds_training_range_are_warned_about(session, width, height, warned):
    """A newcomer's 256×256 drew two circles for one and said nothing; KSampler now warns outside 32-128 px
    (only for checkpoints that say they are tiny-world ones). The warning comes before any step is taken."""
    graph = load("txt2img.json")
    graph["nodes"]["latent"]["inputs"].update(width=width, height=height)
    graph["nodes"]["sampler"]["inputs"]["steps"] = 1
    warnings = session.run(graph).warnings
    assert bool(warnings) == warned
    if warned:
        assert warnings[0]["node_id"] == "sampler" and f"at {width}x{height}" in warnings[0]["message"]
        assert "32-128 px" in warnings[0]["message"]


def test_an_empty_latent_laid_out_for_another_vae_is_warned_about(session):
    """EmptyLatent without its vae input assumes SD's 8 pixels a cell; the tiny world's VAE has 4, so ComfyUI's
    default workflow (imported) asked for 64×64 and silently got 32×32. KSampler now says so and how to fix it."""
    graph = load("txt2img.json", image=("decode", "image"))
    graph["nodes"]["sampler"]["inputs"]["steps"] = 1
    del graph["nodes"]["latent"]["inputs"]["vae"]
    result = session.run(graph)
    (warning,) = result.warnings
    assert warning["node_id"] == "sampler" and "will be 32x32 px, not 64x64" in warning["message"]
    assert "vae input" in warning["message"] and result.outputs["show_image"]["value"].shape[1:3] == (32, 32)
    graph["nodes"]["latent"]["inputs"]["vae"] = {"node": "checkpoint", "output": "vae"}
    assert session.run(graph).warnings == []


def test_an_unchanged_rerun_repeats_the_prompts_warning_from_the_cache(session):
    """The second run of an unchanged graph serves only SaveImage from the cache (nothing before it is looked
    at), so the prompt's unknown-word warning was gone; the cached result carries it."""
    graph = load("txt2img.json")
    graph["nodes"]["prompt"]["inputs"]["text"] = "a purpel circle, on a blue background"
    graph["nodes"]["sampler"]["inputs"]["steps"] = 1
    first = session.run(graph)
    assert [w["node_id"] for w in first.warnings] == ["prompt"]
    second = session.run(graph)
    assert second.executed == [] and second.cached == ["save"]
    assert [(w["node_id"], w.get("cached")) for w in second.warnings] == [("prompt", True)]
    assert second.warnings[0]["message"] == first.warnings[0]["message"]
