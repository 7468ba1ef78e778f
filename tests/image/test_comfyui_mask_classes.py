"""ComfyUI's core mask classes import: LoadImageMask, GrowMask and ImageCompositeMasked (a typical ComfyUI
inpainting workflow was refused though every node has an equivalent here, #7)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nodegraph import Session
from nodegraph.comfyui import workflow_to_prompt
from nodegraph.graph import import_foreign


def inpaint_prompt(resize_source: bool = False) -> dict:
    """ComfyUI's "inpaint with a mask image" API prompt: LoadImageMask → GrowMask → SetLatentNoiseMask, the
    result composited back onto the photo through the grown mask."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_world_v6f.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a large blue star", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "10": {"class_type": "LoadImage", "inputs": {"image": "photo.png", "upload": "image"}},
        "12": {"class_type": "LoadImageMask", "inputs": {"image": "mask.png [input]", "channel": "red",
                                                         "upload": "image"}},
        "13": {"class_type": "GrowMask", "inputs": {"mask": ["12", 0], "expand": 2, "tapered_corners": True}},
        "14": {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}},
        "15": {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["14", 0], "mask": ["13", 0]}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 2, "cfg": 5, "sampler_name": "euler",
                                                   "scheduler": "karras", "denoise": 0.8, "model": ["4", 0],
                                                   "positive": ["6", 0], "negative": ["7", 0],
                                                   "latent_image": ["15", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "16": {"class_type": "ImageCompositeMasked", "inputs": {"destination": ["10", 0], "source": ["8", 0],
                                                                "x": 0, "y": 0, "resize_source": resize_source,
                                                                "mask": ["13", 0]}},
        "17": {"class_type": "PreviewImage", "inputs": {"images": ["16", 0]}},
    }


@pytest.fixture
def session(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    photo = np.full((32, 32, 3), 255, dtype=np.uint8)
    photo[:8, :8] = (20, 20, 220)
    Image.fromarray(photo).save(folder / "photo.png")
    mask = np.zeros((32, 32), dtype=np.uint8)
    mask[12:20, 12:20] = 255
    Image.fromarray(mask).save(folder / "mask.png")
    return Session(input_dir=folder, output_dir=tmp_path / "out")


def test_an_inpainting_prompt_with_the_mask_classes_imports_and_runs(session):
    """Each class becomes its equivalent with its inputs' meaning kept, the prompt validates and runs, and the
    photo outside the grown mask comes back exactly (ImageCompositeMasked's mask: 1 = the source)."""
    graph = import_foreign(inpaint_prompt())
    nodes = graph["nodes"]
    assert nodes["12"] == {"type": "LoadImageMask", "inputs": {"image": "mask.png", "channel": "red"}}
    assert nodes["13"] == {"type": "MaskOperation", "inputs": {"mask": {"node": "12", "output": "mask"},
                                                               "amount": 2, "tapered_corners": True,
                                                               "operation": "grow"}}
    assert nodes["16"]["type"] == "CompositeImages" and "resize_source" not in nodes["16"]["inputs"]
    assert nodes["16"]["inputs"]["mask"] == {"node": "13", "output": "mask"}
    assert session.validate(graph) == []
    graph["nodes"]["mask"] = {"type": "ShowValue", "inputs": {"value": {"node": "13", "output": "mask"}}}
    graph["nodes"]["result"] = {"type": "ShowValue", "inputs": {"value": {"node": "16", "output": "image"}}}
    graph["nodes"]["photo"] = {"type": "ShowValue", "inputs": {"value": {"node": "10", "output": "image"}}}
    out = session.run(graph).outputs
    mask, result, photo = out["mask"]["value"], out["result"]["value"], out["photo"]["value"]
    grown = torch.zeros(1, 32, 32)
    grown[0, 10:22, 12:20] = grown[0, 12:20, 10:22] = 1                 # 2 pixels, tapered: corners cut
    grown[0, 11, 11] = grown[0, 11, 20] = grown[0, 20, 11] = grown[0, 20, 20] = 1
    assert torch.equal(mask, grown)
    assert torch.equal(result[0][mask[0] == 0], photo[0][mask[0] == 0])


def test_the_ui_workflow_widgets_of_the_mask_classes_are_named():
    """A UI workflow lists widget values by position: ComfyUI's LoadImageMask [image, channel, upload],
    GrowMask [expand, tapered_corners] and ImageCompositeMasked [x, y, resize_source]."""
    workflow = {"nodes": [
        {"id": 1, "type": "LoadImageMask", "widgets_values": ["m.png", "green", "image"]},
        {"id": 2, "type": "GrowMask", "inputs": [{"name": "mask", "type": "MASK", "link": 1}],
         "widgets_values": [-3, False]},
        {"id": 3, "type": "ImageCompositeMasked", "widgets_values": [4, 5, False]}],
        "links": [[1, 1, 0, 2, 0, "MASK"]]}
    prompt = workflow_to_prompt(workflow)
    assert prompt["1"]["inputs"] == {"image": "m.png", "channel": "green", "upload": "image"}
    assert prompt["2"]["inputs"] == {"expand": -3, "tapered_corners": False, "mask": ["1", 0]}
    assert prompt["3"]["inputs"] == {"x": 4, "y": 5, "resize_source": False}
    nodes = import_foreign(workflow)["nodes"]
    assert nodes["1"]["inputs"] == {"image": "m.png", "channel": "green"}
    assert nodes["2"]["inputs"]["amount"] == -3 and nodes["2"]["inputs"]["tapered_corners"] is False
    assert nodes["3"] == {"type": "CompositeImages", "inputs": {"x": 4, "y": 5}}


def test_an_image_composite_that_resizes_its_source_says_what_does_that_here(session):
    """resize_source stretches the source to the destination, which CompositeImages does not: that entry stays
    ComfyUI's, and its error names ImageScale → CompositeImages instead of guessing a name."""
    graph = import_foreign(inpaint_prompt(resize_source=True))
    assert graph["nodes"]["16"]["type"] == "ImageCompositeMasked"
    (error,) = [e for e in session.validate(graph) if e.node_id == "16"]
    assert "ImageScale" in error.message and "CompositeImages" in error.message
    assert "Did you mean" not in error.message


def test_grow_mask_is_not_mistaken_for_crop_to_mask(session):
    """Unmapped, GrowMask's error said "Did you mean 'CropToMask'?"; now it imports as MaskOperation grow."""
    prompt = {"1": {"class_type": "LoadImageMask", "inputs": {"image": "mask.png", "channel": "red"}},
              "2": {"class_type": "GrowMask", "inputs": {"mask": ["1", 0], "expand": 1, "tapered_corners": False}}}
    graph = import_foreign(prompt)
    assert graph["nodes"]["2"]["type"] == "MaskOperation"
    assert not [e for e in session.validate(graph) if "CropToMask" in e.message]
