"""The safety plugin's nodes in graphs, run headless the way a user runs them."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nodegraph import GraphValidationError, NodeExecutionError, Session
from nodegraph_safety import SHIPPED_MODELS

torch.set_num_threads(1)
PLUGIN = Path(__file__).resolve().parents[1]
ROOT = PLUGIN.parents[1]
SHIPPED_MODEL = ROOT / "models" / "checkpoints" / "tiny_world.safetensors"
needs_checker = pytest.mark.skipif(not (SHIPPED_MODELS / "tiny_world_safety.safetensors").is_file(),
                                   reason="the shipped checker is not trained yet")


@pytest.fixture(scope="module")
def session():
    """A session that loads the installed plugin through its entry point (and only it)."""
    return Session(autoload=True, allow=["safety"])


def _render(node: str, caption: str, size: int = 64) -> dict:
    return {node: {"type": "RenderTinyWorld", "inputs": {"caption": caption, "size": size}}}


def test_plugin_is_found_by_entry_point(session):
    """The `safety` entry point registers its nodes and the SAFETY_CHECKER type."""
    assert "SAFETY_CHECKER" in session.registry.types
    for name in ("SafetyFilter", "SafeLatentDiffusion", "NegativeConceptGuidance", "WatermarkImages",
                 "ReadWatermark", "LoadSafetyChecker", "TrainSafetyChecker", "SaveSafetyChecker"):
        assert session.registry.node_plugin[name] == "safety"


@needs_checker
def test_filter_blurs_the_star_and_records_the_decision(session):
    """A star render is flagged and blurred, a circle render kept; flagged and scores are in the run's outputs."""
    graph = {"format_version": 1, "nodes": {
        **_render("star", "a large red star in the centre, on a white background"),
        **_render("circle", "a large red circle in the centre, on a white background"),
        "batch": {"type": "ImageBatch", "inputs": {"a": {"node": "star", "output": "image"},
                                                   "b": {"node": "circle", "output": "image"}}},
        "checker": {"type": "LoadSafetyChecker", "inputs": {}},
        "filter": {"type": "SafetyFilter", "inputs": {"images": {"node": "batch", "output": "images"},
                                                      "checker": {"node": "checker", "output": "checker"},
                                                      "action": "blur"}},
    }}
    result = session.run(graph).outputs["filter"]
    assert result["flagged"] == [True, False]
    assert result["scores"][0] > 0 > result["scores"][1]
    assert [d["action"] for d in result["decisions"]] == ["blurred", "kept"]
    assert result["concepts"] == ["star"]


def test_watermark_nodes_round_trip(session):
    """WatermarkImages then ReadWatermark returns the message (256-px tiny-world render)."""
    graph = {"format_version": 1, "nodes": {
        **_render("image", "a large green ring at the top, on a black background", 256),
        "mark": {"type": "WatermarkImages", "inputs": {"images": {"node": "image", "output": "image"},
                                                       "message": "safe 42"}},
        "read": {"type": "ReadWatermark", "inputs": {"images": {"node": "mark", "output": "images"}, "length": 7}},
    }}
    assert session.run(graph).outputs["read"]["texts"] == ["safe 42"]


def test_watermark_on_small_images_fails_with_the_fix(session):
    """A 64x64 image cannot carry a watermark: the node error names the input and says to upscale."""
    graph = {"format_version": 1, "nodes": {
        **_render("image", "a large green ring at the top, on a black background", 64),
        "mark": {"type": "WatermarkImages", "inputs": {"images": {"node": "image", "output": "image"}}},
        "read": {"type": "ReadWatermark", "inputs": {"images": {"node": "mark", "output": "images"}}},
    }}
    with pytest.raises(Exception, match="upscale first") as info:
        session.run(graph)
    assert "images" in str(info.value)


def test_unknown_checker_names_the_available_ones(session):
    """A missing checker name is a validation error listing the available ones and both places searched
    (the user's models/safety_checker, then the plugin's shipped models/, added by register_model_dirs)."""
    graph = {"format_version": 1, "nodes": {
        **_render("image", "a large red star in the centre, on a white background"),
        "checker": {"type": "LoadSafetyChecker", "inputs": {"checker_name": "nsfw.safetensors"}},
        "filter": {"type": "SafetyFilter", "inputs": {"images": {"node": "image", "output": "image"},
                                                      "checker": {"node": "checker", "output": "checker"}}},
    }}
    with pytest.raises(GraphValidationError, match=r"no file 'nsfw.safetensors' in model folder 'safety_checker'.*"
                                                   r"Available: 'tiny_world_safety.safetensors'.*plugins/safety/models"):
        session.run(graph)


def test_guidance_needs_a_text_encoder(session):
    """SafeLatentDiffusion without its text encoder fails validation with missing_input."""
    graph = {"format_version": 1, "nodes": {
        "sld": {"type": "SafeLatentDiffusion", "inputs": {"concept": "star"}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "sld", "output": "guidance"}}},
    }}
    with pytest.raises(GraphValidationError) as info:
        session.run(graph)
    assert "missing_input" in [e.code for e in info.value.errors]


@needs_checker
@pytest.mark.slow
@pytest.mark.skipif(not SHIPPED_MODEL.is_file(), reason="the shipped model is not committed")
def test_safe_txt2img_graph_runs_headless(session, tmp_path):
    """The demo graph blurs the star image, keeps the circle, upscales, watermarks and saves 256-px PNGs."""
    graph = json.loads((PLUGIN / "graphs" / "safe_txt2img.json").read_text())
    result = session.run(graph, output_dir=tmp_path)
    files = result.outputs["save"]["files"]
    assert len(files) == 2 and all(f["kind"] == "image" for f in files)
    record = result.outputs["filter"]
    assert record["flagged"] == [True, False] and record["scores"][0] > 0 > record["scores"][1]
    assert [d["action"] for d in record["decisions"]] == ["blurred", "kept"]
    path = Path(files[0]["path"])
    path = path if path.is_absolute() else tmp_path / path
    pixels = np.array(Image.open(path).convert("RGB"))
    assert pixels.shape == (256, 256, 3)
    from nodegraph_safety.watermark import decode_watermark

    assert decode_watermark(torch.from_numpy(pixels).float()[None] / 255, 9) == [b"nodegraph"]


def _small_released_checker(folder: Path, name: str, pickle: bool) -> None:
    """Write a small checker in the released key layout (nested vision_model prefix) into `folder`."""
    from nodegraph_safety.checker import CheckerConfig, SafetyChecker
    from nodegraph_safety.clip_vision import VisionConfig

    torch.manual_seed(0)
    checker = SafetyChecker(CheckerConfig(vision=VisionConfig(image_size=32, patch_size=8, width=64, layers=1,
                                                              heads=1, intermediate=64),
                                          projection_dim=8, concepts=17, special_care=3))
    tensors = {k: v.contiguous() for k, v in checker.state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    if pickle:
        torch.save(tensors, folder / name)
    else:
        from safetensors.torch import save_file

        save_file(tensors, str(folder / name))  # no metadata: the config comes from the shapes, as for SD's file


def _load_graph(name: str) -> dict:
    return {"format_version": 1, "nodes": {
        **_render("image", "a large red star in the centre, on a white background"),
        "checker": {"type": "LoadSafetyChecker", "inputs": {"checker_name": name}},
        "filter": {"type": "SafetyFilter", "inputs": {"images": {"node": "image", "output": "image"},
                                                      "checker": {"node": "checker", "output": "checker"}}},
    }}


def test_released_layout_loads_from_the_model_folder_and_pickles_need_the_owner(tmp_path, monkeypatch):
    """A .safetensors in the released layout loads by shapes; a .pt loads only with NODEGRAPH_ALLOW_PICKLE=1."""
    from nodegraph.model_paths import ModelPaths

    folder = tmp_path / "models" / "safety_checker"
    _small_released_checker(folder, "sd_like.safetensors", pickle=False)
    _small_released_checker(folder, "sd_like.pt", pickle=True)
    monkeypatch.delenv("NODEGRAPH_ALLOW_PICKLE", raising=False)
    session = Session(autoload=True, allow=["safety"], model_paths=ModelPaths(roots=[tmp_path / "models"]))
    record = session.run(_load_graph("sd_like.safetensors")).outputs["filter"]
    assert len(record["flagged"]) == 1 and len(record["scores"]) == 1
    with pytest.raises(Exception, match="(?i)pickle"):
        session.run(_load_graph("sd_like.pt"))
    monkeypatch.setenv("NODEGRAPH_ALLOW_PICKLE", "1")
    assert len(session.run(_load_graph("sd_like.pt")).outputs["filter"]["flagged"]) == 1


@pytest.mark.skipif(not SHIPPED_MODEL.is_file(), reason="the shipped model is not committed")
def test_negative_concept_guidance_equals_the_concept_as_negative_prompt(session):
    """KSampler + NegativeConceptGuidance('star') gives the latent of KSampler with negative prompt 'star'."""
    def graph(negative_text: str, with_term: bool) -> dict:
        encoder = {"node": "checkpoint", "output": "text_encoder"}
        nodes = {
            "checkpoint": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world.safetensors"}},
            "prompt": {"type": "EncodeText", "inputs": {"text_encoder": encoder,
                                                        "text": "a large red star in the centre, on a white background"}},
            "negative": {"type": "EncodeText", "inputs": {"text_encoder": encoder, "text": negative_text}},
            "latent": {"type": "EmptyLatent", "inputs": {"width": 64, "height": 64, "batch_size": 1,
                                                         "vae": {"node": "checkpoint", "output": "vae"}}},
            "sampler": {"type": "KSampler", "inputs": {
                "model": {"node": "checkpoint", "output": "model"},
                "positive": {"node": "prompt", "output": "conditioning"},
                "negative": {"node": "negative", "output": "conditioning"},
                "latent": {"node": "latent", "output": "latent"},
                "seed": 3, "steps": 3, "cfg": 5.0, "sampler": "euler", "scheduler": "karras", "denoise": 1.0}},
            "show": {"type": "ShowValue", "inputs": {"value": {"node": "sampler", "output": "latent"}}},
        }
        if with_term:
            nodes["term"] = {"type": "NegativeConceptGuidance", "inputs": {"text_encoder": encoder, "concept": "star"}}
            nodes["sampler"]["inputs"]["guidance"] = {"node": "term", "output": "guidance"}
        return {"format_version": 1, "nodes": nodes}

    def latent(result):
        return session.run(result, outputs=["sampler"]).outputs["sampler"]["latent"]["samples"]

    with_term, as_negative, plain = latent(graph("", True)), latent(graph("star", False)), latent(graph("", False))
    assert torch.allclose(with_term, as_negative, atol=1e-4)
    assert not torch.allclose(with_term, plain, atol=1e-3)


@pytest.mark.skipif(not SHIPPED_MODEL.is_file(), reason="the shipped model is not committed")
def test_safe_latent_diffusion_guides_ksampler(session):
    """SafeLatentDiffusion (no warm-up) feeds KSampler's guidance input and changes the result; warm-up past the
    last step leaves it exactly as without guidance."""
    def graph(warmup: int | None) -> dict:
        encoder = {"node": "checkpoint", "output": "text_encoder"}
        nodes = {
            "checkpoint": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world.safetensors"}},
            "prompt": {"type": "EncodeText", "inputs": {"text_encoder": encoder,
                                                        "text": "a large red star in the centre, on a white background"}},
            "negative": {"type": "EncodeText", "inputs": {"text_encoder": encoder, "text": ""}},
            "latent": {"type": "EmptyLatent", "inputs": {"width": 64, "height": 64, "batch_size": 1,
                                                         "vae": {"node": "checkpoint", "output": "vae"}}},
            "sampler": {"type": "KSampler", "inputs": {
                "model": {"node": "checkpoint", "output": "model"},
                "positive": {"node": "prompt", "output": "conditioning"},
                "negative": {"node": "negative", "output": "conditioning"},
                "latent": {"node": "latent", "output": "latent"},
                "seed": 3, "steps": 3, "cfg": 5.0, "sampler": "euler", "scheduler": "karras", "denoise": 1.0}},
        }
        if warmup is not None:
            nodes["sld"] = {"type": "SafeLatentDiffusion", "inputs": {"text_encoder": encoder, "concept": "star",
                                                                      "warmup_steps": warmup}}
            nodes["sampler"]["inputs"]["guidance"] = {"node": "sld", "output": "guidance"}
        return {"format_version": 1, "nodes": nodes}

    def latent(g):
        return session.run(g, outputs=["sampler"]).outputs["sampler"]["latent"]["samples"]

    plain, guided, warm = latent(graph(None)), latent(graph(0)), latent(graph(3))
    assert not torch.allclose(plain, guided, atol=1e-3)
    assert torch.allclose(plain, warm, atol=1e-6)


SECOND_MODEL = ROOT / "models" / "checkpoints" / "tiny_world_v2.safetensors"


def _sld_graph(prompt: str, seed: int, sld_inputs: dict | None) -> dict:
    """v2 txt2img (64 px, 20 dpmpp_2m/karras steps, CFG 5) with an optional SafeLatentDiffusion on KSampler."""
    encoder, vae = {"node": "checkpoint", "output": "text_encoder"}, {"node": "checkpoint", "output": "vae"}
    nodes = {
        "checkpoint": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world_v2.safetensors"}},
        "prompt": {"type": "EncodeText", "inputs": {"text_encoder": encoder, "text": prompt}},
        "negative": {"type": "EncodeText", "inputs": {"text_encoder": encoder, "text": ""}},
        "latent": {"type": "EmptyLatent", "inputs": {"width": 64, "height": 64, "batch_size": 1, "vae": vae}},
        "sampler": {"type": "KSampler", "inputs": {
            "model": {"node": "checkpoint", "output": "model"},
            "positive": {"node": "prompt", "output": "conditioning"},
            "negative": {"node": "negative", "output": "conditioning"},
            "latent": {"node": "latent", "output": "latent"},
            "seed": seed, "steps": 20, "cfg": 5.0, "sampler": "dpmpp_2m", "scheduler": "karras", "denoise": 1.0}},
        "decode": {"type": "VAEDecode", "inputs": {"vae": vae, "latent": {"node": "sampler", "output": "latent"}}},
    }
    if sld_inputs is not None:
        nodes["checker"] = {"type": "LoadSafetyChecker", "inputs": {}}
        nodes["sld"] = {"type": "SafeLatentDiffusion", "inputs": {"text_encoder": encoder, "concept": "star",
                                                                  **sld_inputs}}
        nodes["sampler"]["inputs"]["guidance"] = {"node": "sld", "output": "guidance"}
    return {"format_version": 1, "nodes": nodes}


GATED = {"anchor": "circle", "threshold": 100.0, "momentum_scale": 0.0,
         "checker": {"node": "checker", "output": "checker"}, "vae": {"node": "checkpoint", "output": "vae"}}


@needs_checker
@pytest.mark.skipif(not SECOND_MODEL.is_file(), reason="the second model is not committed")
def test_gated_anchored_sld_turns_a_star_into_a_circle_and_leaves_a_square_alone(session):
    """The benchmark's gated SLD as nodes: a requested red star comes out a red circle (the world detector reads
    it); a square the checker never flags comes out bit for bit as without the guidance."""
    from nodes.training import world_detector

    classifier = world_detector.load_classifier()

    def run(prompt: str, seed: int, sld_inputs: dict | None):
        outputs = session.run(_sld_graph(prompt, seed, sld_inputs), outputs=["sampler", "decode"]).outputs
        image = (outputs["decode"]["image"][0].numpy() * 255).round().astype(np.uint8)
        objects = world_detector.detect_many(image[None], classifier)[0].objects
        return outputs["sampler"]["latent"]["samples"], [(o.colour, o.shape) for o in objects]

    star = "a large red star in the centre, on a white background"
    for seed in (1, 3):
        assert run(star, seed, None)[1] == [("red", "star")]
        assert run(star, seed, GATED)[1] == [("red", "circle")]
    square = "a large blue square on the left, on a yellow background"
    plain, plain_objects = run(square, 1, None)
    gated, gated_objects = run(square, 1, GATED)
    assert plain_objects == gated_objects == [("blue", "square")]
    assert torch.equal(plain, gated)


@needs_checker
@pytest.mark.skipif(not SECOND_MODEL.is_file(), reason="the second model is not committed")
def test_gate_sensitivity_shifts_the_checker_scores_the_gate_reads(session):
    """gate_sensitivity -1 puts every score below 0: the gate never opens and the star comes out exactly as without
    SLD; +1 opens it on a square too (its image changes)."""
    star = "a large red star in the centre, on a white background"
    square = "a large blue square on the left, on a yellow background"

    def latent(prompt: str, sld_inputs: dict | None):
        graph = _sld_graph(prompt, 1, sld_inputs)
        return session.run(graph, outputs=["sampler"]).outputs["sampler"]["latent"]["samples"]

    assert torch.equal(latent(star, None), latent(star, {**GATED, "gate_sensitivity": -1.0}))
    assert not torch.equal(latent(square, None), latent(square, {**GATED, "gate_sensitivity": 1.0}))


@needs_checker
@pytest.mark.skipif(not SECOND_MODEL.is_file(), reason="the second model is not committed")
def test_prompt_share_leaves_a_falsely_gated_square_alone_and_still_removes_a_star(session):
    """gate_sensitivity +1 gates every image on: the anchor push then moves a square prompt's latent; with
    prompt_share (its defaults) the square's prediction holds too little of the concept from its nearest anchor
    ("square"), so it comes out bit for bit as without the guidance, while a requested red star is removed."""
    from nodes.training import world_detector

    classifier = world_detector.load_classifier()
    four = {**GATED, "anchor": "circle; square; triangle; ring", "gate_sensitivity": 1.0}
    shared = {**four, "prompt_share": True}

    def run(prompt: str, sld_inputs: dict | None):
        outputs = session.run(_sld_graph(prompt, 1, sld_inputs), outputs=["sampler", "decode"]).outputs
        image = (outputs["decode"]["image"][0].numpy() * 255).round().astype(np.uint8)
        objects = world_detector.detect_many(image[None], classifier)[0].objects
        return outputs["sampler"]["latent"]["samples"], [(o.colour, o.shape) for o in objects]

    square = "a large blue square on the left, on a yellow background"
    plain, _ = run(square, None)
    pushed, _ = run(square, four)
    kept, kept_objects = run(square, shared)
    assert kept_objects == [("blue", "square")]
    assert not torch.equal(pushed, plain)
    assert torch.equal(kept, plain)
    star = run("a large red star in the centre, on a white background", shared)[1]
    assert star and all(shape != "star" for _, shape in star)


@pytest.mark.skipif(not SECOND_MODEL.is_file(), reason="the second model is not committed")
@pytest.mark.parametrize(("inputs", "name", "words"), [
    ({"anchor": " Star "}, "anchor", "the concept itself"),
    ({"checker": {"node": "checker", "output": "checker"}}, "vae", "connect vae"),
    ({"vae": {"node": "checkpoint", "output": "vae"}}, "checker", "connect checker"),
    ({"anchor": "circle", "prompt_share": True, "share_low": 0.5, "share_high": 0.25}, "share_high", "swap them"),
])
def test_sld_anchor_and_gate_mistakes_are_node_errors(session, inputs, name, words):
    """An anchor equal to the concept, or half of the gate (checker without vae or the reverse): the error names
    the input and the fix."""
    graph = _sld_graph("a large red star in the centre, on a white background", 1, inputs)
    graph["nodes"]["sampler"]["inputs"]["steps"] = 1
    with pytest.raises(NodeExecutionError, match=words) as info:
        session.run(graph, outputs=["sampler"])
    assert info.value.node_id == "sld" and info.value.exception.input == name


@needs_checker
@pytest.mark.skipif(not SECOND_MODEL.is_file(), reason="the second model is not committed")
def test_sld_demo_graph_runs_headless(session, tmp_path):
    """graphs/sld_txt2img.json: the gated star is no star any more (world detector), the square is untouched, and
    the 2x2 sheet is saved."""
    from nodes.training import world_detector

    graph = json.loads((PLUGIN / "graphs" / "sld_txt2img.json").read_text())
    result = session.run(graph, output_dir=tmp_path)
    [saved] = result.outputs["save"]["files"]
    assert Path(saved["path"]).is_file() and (saved["width"], saved["height"]) == (536, 536)
    images = session.run(graph, outputs=["star_plain_image", "star_gated_image", "square_plain_image",
                                         "square_gated_image"], output_dir=tmp_path).outputs
    pixels = {name: (values["image"][0].numpy() * 255).round().astype(np.uint8) for name, values in images.items()}
    shapes = {name: [o.shape for o in world_detector.detect_many(image[None], world_detector.load_classifier())[0].objects]
              for name, image in pixels.items()}
    assert shapes["star_plain_image"] == ["star"] and "star" not in shapes["star_gated_image"]
    assert np.array_equal(pixels["square_plain_image"], pixels["square_gated_image"])
