"""Image operations and masks: the pure functions and the nodes in a graph."""

from __future__ import annotations

import pytest
import torch

from nodegraph import NodeExecutionError, NodeInputError, Session
from nodes.image.adjust import adjust, blend
from nodes.image.masks import (combine_masks, composite, feather_mask, grow_mask, mask_bounds, mask_from_colour,
                               pad_image, paste, crop)


def square_mask(size=16, lo=6, hi=10):
    mask = torch.zeros(1, size, size)
    mask[:, lo:hi, lo:hi] = 1
    return mask


def test_grow_shrink_feather_threshold():
    """Growing adds a ring, shrinking removes one, feathering softens only the edge."""
    mask = square_mask()
    assert grow_mask(mask, 2).sum() == 8 * 8 and grow_mask(mask, -1).sum() == 2 * 2
    soft = feather_mask(mask, 4)
    assert 0 < soft[0, 5, 8] < 1 and soft[0, 0, 0] < 0.05 and soft.max() <= 1
    assert torch.equal(feather_mask(mask, 0), mask)


def test_combine_and_colour_masks():
    """Union, intersection and subtraction behave as sets; colour masks pick matching pixels."""
    a, b = square_mask(lo=2, hi=8), square_mask(lo=6, hi=12)
    assert combine_masks(a, b, "max").sum() == 36 + 36 - 4
    assert combine_masks(a, b, "min").sum() == 4
    assert combine_masks(a, b, "subtract").sum() == 32
    with pytest.raises(ValueError, match="sizes differ"):
        combine_masks(a, torch.zeros(1, 8, 8), "max")
    image = torch.zeros(1, 4, 4, 3)
    image[0, 1, 1] = torch.tensor([1.0, 0.5, 0.0])
    assert mask_from_colour(image, (1.0, 0.5, 0.0), 0.01).sum() == 1


def test_composite_crop_paste_round_trip():
    """CropToMask's region and paste put a patch back exactly where it came from, only inside the mask."""
    image = torch.rand(1, 32, 32, 3)
    mask = square_mask(32, 10, 18)
    bounds = mask_bounds(mask, padding=2, multiple=8)
    x, y, w, h = bounds
    assert w % 8 == 0 and h % 8 == 0 and x <= 8 and y <= 8 and x + w >= 20
    patch = torch.zeros_like(crop(image, bounds))
    out = paste(image, patch, bounds, mask)
    assert torch.equal(out[mask.bool()], torch.zeros(int(mask.sum()), 3))
    assert torch.equal(out[~mask.bool()], image[~mask.bool()])
    assert mask_bounds(torch.zeros(1, 8, 8)) is None
    assert torch.equal(composite(image, image[:, :4, :4], None, 40, 40), image)   # outside: no change


def test_pad_for_outpainting():
    """Padding extends the canvas with edge colours and masks exactly the new area (feathered inwards)."""
    image = torch.rand(1, 8, 8, 3)
    padded, mask = pad_image(image, 4, 0, 0, 2, feather=0)
    assert padded.shape == (1, 10, 12, 3) and torch.equal(padded[:, :8, 4:], image)
    assert mask.sum() == 10 * 12 - 64
    _, soft = pad_image(image, 4, 0, 0, 0, feather=4)
    assert soft[0, 0, 4] == 1.0 and 0 < soft[0, 0, 5] < 1 and soft[0, 0, 11] == 0


def test_adjust_and_blend():
    """Neutral adjustments change nothing; saturation 0 gives grey; blend factor 0 keeps a."""
    image = torch.rand(2, 4, 4, 3)
    assert torch.allclose(adjust(image), image)
    grey = adjust(image, saturation=0.0)
    assert torch.allclose(grey[..., 0], grey[..., 1])
    other = torch.rand(2, 4, 4, 3)
    assert torch.equal(blend(image, other, 0.0, "multiply"), image)
    assert torch.allclose(blend(image, other, 1.0, "screen"), 1 - (1 - image) * (1 - other))


def test_nodes_in_a_graph(tmp_path):
    """Pad → mask ops → crop/paste, flips, picks and saving as JPEG run as a graph; bad inputs name their input."""
    from PIL import Image

    (tmp_path / "in").mkdir()
    Image.new("RGB", (16, 12), (10, 200, 30)).save(tmp_path / "in" / "g.png")
    session = Session(input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    link = lambda n, o: {"node": n, "output": o}  # noqa: E731
    graph = {"format_version": 1, "nodes": {
        "load": {"type": "LoadImage", "inputs": {"image": "g.png"}},
        "pad": {"type": "ImagePad", "inputs": {"images": link("load", "image"), "right": 8, "feather": 4}},
        "grow": {"type": "MaskOperation", "inputs": {"mask": link("pad", "mask"), "operation": "grow", "amount": 2}},
        "cut": {"type": "CropToMask", "inputs": {"images": link("pad", "image"), "mask": link("grow", "mask")}},
        "flip": {"type": "ImageFlipRotate", "inputs": {"images": link("cut", "image"), "operation": "rotate 90"}},
        "back": {"type": "ImageFlipRotate", "inputs": {"images": link("flip", "image"), "operation": "rotate 270"}},
        "paste": {"type": "PasteToRegion", "inputs": {"destination": link("pad", "image"), "patch": link("back", "image"),
                                                      "region": link("cut", "region")}},
        "big": {"type": "ImageScaleBy", "inputs": {"images": link("paste", "image"), "amount": 2.0, "multiple_of": 8}},
        "save": {"type": "SaveImage", "inputs": {"images": link("big", "image"), "format": "jpeg", "quality": 80}},
        "show": {"type": "ShowValue", "inputs": {"value": link("cut", "region")}}}}
    out = session.run(graph).outputs
    assert out["save"]["files"][0]["path"].endswith(".jpg")
    with Image.open(out["save"]["files"][0]["path"]) as saved:
        assert saved.size == (48, 24)
    assert out["show"]["value"]["width"] % 8 == 0
    graph["nodes"]["grow"]["inputs"]["operation"] = "invert"
    graph["nodes"]["zero"] = {"type": "MaskOperation", "inputs": {"mask": link("load", "mask"), "operation": "threshold",
                                                                  "amount": 0.5}}
    graph["nodes"]["cut"]["inputs"].update(mask=link("zero", "mask"), images=link("load", "image"))
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph)
    assert info.value.exception.input == "mask" and "empty" in str(info.value.exception)


@pytest.mark.parametrize(("node", "inputs", "blamed"), [
    ("ImagePad", {"left": 8192, "top": 0, "right": 8192, "bottom": 0, "feather": 0}, "images"),
    ("ImageBatch", {"b": "same"}, "b"),
    ("ImageScale", {"width": 16384, "height": 16384, "method": "nearest", "crop": "disabled"}, "width"),
    ("ImageScaleBy", {"mode": "factor", "amount": 1.2, "method": "nearest", "multiple_of": 1}, "amount"),
    ("ImageGrid", {"columns": 0, "padding": 256}, "images"),
])
def test_image_results_over_the_size_limit_are_refused_before_they_are_made(node, inputs, blamed):
    """A stranger's note: chained pads or batches grow without bound until the process is killed for memory.
    The inputs are expanded views (no memory); the refusal comes before any allocation."""
    from nodes.image import nodes as image_nodes

    big = torch.zeros(1, 1, 1, 3).expand(2, 12000, 12000, 3)
    cls = getattr(image_nodes, node)
    arguments = dict(inputs)
    if node == "ImageBatch":
        arguments = {"a": big, "b": big}
    elif node == "ImageGrid":
        arguments["images"] = torch.zeros(1, 1, 1, 3).expand(4096, 8, 8, 3)
    else:
        arguments["images"] = big
    with pytest.raises(NodeInputError) as info:
        cls().run(**arguments)
    assert info.value.input == blamed and "over the limit" in str(info.value)


def test_an_image_result_the_machine_cannot_hold_now_is_refused_before_it_is_made(monkeypatch):
    """Eight ImageScale nodes of 16384×4096 (each within the limit) took a server past 6 GB and towards the OOM
    killer: a result is refused when it would leave the machine under its reserve, before allocating it."""
    import nodegraph.memory as memory
    from nodegraph.errors import NodeOutOfMemory
    from nodes.image import nodes as image_nodes

    monkeypatch.setattr(memory, "system_memory", lambda: (3 * 1024**3, 16 * 1024**3))      # 3 GiB available
    monkeypatch.setenv("NODEGRAPH_MEMORY_RESERVE_MB", "512")
    image = torch.zeros(1, 1, 1, 3).expand(1, 64, 64, 3)
    with pytest.raises(NodeOutOfMemory, match=r"16384×8192, needs about 3.0 GiB.*2.5 GiB free"):
        image_nodes.ImageScale().run(images=image, width=16384, height=8192, method="nearest", crop="disabled")
    assert image_nodes.ImageScale().run(images=image, width=1024, height=1024, method="nearest",
                                        crop="disabled")["image"].shape == (1, 1024, 1024, 3)
