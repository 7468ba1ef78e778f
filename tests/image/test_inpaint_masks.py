"""Inpainting masks from files and around edges: PNG colour keys, LoadImageMask, tapered growing, CropToMask's
multiple_of at the image's edges, and inpainting errors that say what to do (an inpainting user's pass)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nodegraph import NodeExecutionError, NodeInputError, Session
from nodegraph.node import NodeContext
from nodes.image.masks import grow_mask, mask_bounds
from nodes.image.pixels import load_image_file
from nodes.models.nodes import VAEEncodeForInpaint


def link(node, output):
    return {"node": node, "output": output}


def scene(width: int = 8, height: int = 6) -> np.ndarray:
    """A white picture with a red 2×2 square at (1, 1): white is the colour key below."""
    rgb = np.full((height, width, 3), 255, dtype=np.uint8)
    rgb[1:3, 1:3] = (220, 20, 20)
    return rgb


@pytest.mark.parametrize("kind", ["RGB", "L", "I;16"])
def test_a_png_colour_key_is_transparency_in_the_mask(tmp_path, kind):
    """A PNG whose tRNS names one colour (white) as transparent: the browser's mask editor and ComfyUI see the
    white as masked, LoadImage saw no mask at all (#4). 16-bit grey compares its 16-bit key exactly (a grey one
    step below the key stays opaque) and keeps its tones."""
    path = tmp_path / "keyed.png"
    rgb = scene()
    if kind == "RGB":
        Image.fromarray(rgb).save(path, transparency=(255, 255, 255))
    elif kind == "L":
        Image.fromarray(rgb[..., 0]).save(path, transparency=255)
    else:
        grey = rgb[..., 0].astype(np.uint16) * 257
        grey[5, 7] = 65534                                   # not the key: opaque
        Image.fromarray(grey).save(path, transparency=65535)
    image, mask = load_image_file(path)
    expected = np.ones((6, 8), dtype=np.float32)
    expected[1:3, 1:3] = 0
    if kind == "I;16":
        expected[5, 7] = 0
        assert float(image[0, 1, 1, 0]) == pytest.approx(220 / 255)     # tones kept, not clipped to white
    assert torch.equal(mask[0], torch.from_numpy(expected))


def test_an_opaque_file_and_a_palette_key_still_load_as_before(tmp_path):
    """A file without a key has an empty mask; a palette PNG's alpha table still gives its mask."""
    Image.fromarray(scene()).save(tmp_path / "plain.png")
    palette = Image.fromarray(scene()).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    white = palette.getpixel((0, 0))
    palette.save(tmp_path / "palette.png", transparency=white)
    assert float(load_image_file(tmp_path / "plain.png")[1].max()) == 0.0
    assert float(load_image_file(tmp_path / "palette.png")[1].sum()) == 8 * 6 - 4


@pytest.fixture
def mask_files(tmp_path):
    """In the input folder: `shape.png` (RGBA: red channel 200 on the square, alpha 0 there, 255 elsewhere) and
    `grey.png` (black, with a white square)."""
    folder = tmp_path / "in"
    folder.mkdir()
    rgba = np.zeros((6, 8, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[1:3, 1:3] = (200, 0, 0, 0)
    Image.fromarray(rgba).save(folder / "shape.png")
    grey = np.zeros((6, 8), dtype=np.uint8)
    grey[2:5, 3:6] = 255
    Image.fromarray(grey).save(folder / "grey.png")
    return folder


@pytest.mark.parametrize(("file", "channel", "masked"), [
    ("shape.png", "alpha", (slice(1, 3), slice(1, 3), 1.0)),      # 1 − alpha, as LoadImage's mask
    ("shape.png", "red", (slice(1, 3), slice(1, 3), 200 / 255)),  # the channel as it is
    ("grey.png", "green", (slice(2, 5), slice(3, 6), 1.0)),
    ("grey.png", "alpha", None),                                  # no alpha: nothing masked
])
def test_load_image_mask_gives_one_channel_as_comfyuis_does(tmp_path, mask_files, file, channel, masked):
    """LoadImageMask (ComfyUI's "Load Image (as Mask)", missing here, #7): alpha gives 1 − alpha, a colour its
    value; the same file reading as LoadImage."""
    session = Session(input_dir=mask_files, output_dir=tmp_path / "out")
    graph = {"format_version": 2, "nodes": {
        "load": {"type": "LoadImageMask", "inputs": {"image": file, "channel": channel}},
        "show": {"type": "ShowValue", "inputs": {"value": link("load", "mask")}}}}
    mask = session.run(graph).outputs["show"]["value"]
    expected = torch.zeros(1, 6, 8)
    if masked is not None:
        rows, cols, value = masked
        expected[0, rows, cols] = value
    assert mask.shape == (1, 6, 8) and torch.allclose(mask, expected)


def test_load_image_mask_names_a_missing_file_and_refuses_a_path_outside(tmp_path, mask_files):
    """Validation refuses a missing file (listing what is there) and an escaping name on `image`, as for
    LoadImage: the input is declared the same way (an upload in the input folder)."""
    session = Session(input_dir=mask_files, output_dir=tmp_path / "out")
    for name, said in (("nothere.png", "grey.png"), ("../secret.png", "'..'")):
        graph = {"format_version": 2, "nodes": {
            "load": {"type": "LoadImageMask", "inputs": {"image": name}},
            "show": {"type": "ShowValue", "inputs": {"value": link("load", "mask")}}}}
        (error,) = session.validate(graph)
        assert error.input == "image" and said in error.message


@pytest.mark.parametrize("pixels", [1, 3, -2])
def test_tapered_growing_matches_comfyuis_cross_steps(pixels):
    """ComfyUI's GrowMask (tapered_corners, its default) dilates `expand` times by a 3×3 cross; ours matches
    scipy's grey dilation / erosion step for step on a soft mask, edges included; square growing is unchanged."""
    ndimage = pytest.importorskip("scipy.ndimage")
    generator = torch.Generator().manual_seed(0)
    mask = (torch.rand(1, 13, 11, generator=generator) > 0.8).float() * torch.rand(1, 13, 11, generator=generator)
    if pixels < 0:
        mask = 1 - mask
    cross = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    expected = mask[0].numpy()
    for _ in range(abs(pixels)):
        step = ndimage.grey_dilation if pixels > 0 else ndimage.grey_erosion
        expected = step(expected, footprint=cross)
    assert torch.equal(grow_mask(mask, pixels, tapered_corners=True)[0], torch.from_numpy(expected))
    square = np.ones((3, 3))
    expected = mask[0].numpy()
    for _ in range(abs(pixels)):
        step = ndimage.grey_dilation if pixels > 0 else ndimage.grey_erosion
        expected = step(expected, footprint=square)
    assert torch.equal(grow_mask(mask, pixels)[0], torch.from_numpy(expected))


@pytest.mark.parametrize(("width", "height", "expected"), [
    (61, 45, (2, 2, 56, 40)), (63, 63, (4, 4, 56, 56)), (8, 9, (0, 0, 8, 8)), (64, 48, (0, 0, 64, 48))])
def test_crop_to_mask_sides_are_multiples_even_at_the_image_edges(width, height, expected):
    """A mask filling an image whose sides are not multiples of 8 gave a 61×45 crop, which the next
    VAEEncodeForInpaint refused (#6): the crop shrinks to the largest multiple that fits, centred."""
    assert mask_bounds(torch.ones(1, height, width), padding=32, multiple=8) == expected


def test_a_shrunk_crop_keeps_a_mask_that_fits_and_stays_on_it():
    """Shrinking keeps the masked span whole when it fits in the shrunk side (only context is cut), and keeps the
    mask's centre inside when it does not; away from the edges nothing changes."""
    mask = torch.zeros(1, 45, 61)
    mask[:, 38:45, 0:3] = 1                                   # bottom-left corner, context 32 reaches the edges
    x, y, w, h = mask_bounds(mask, padding=32, multiple=8)
    assert (w, h) == (40, 40) and x == 0 and y + h == 45       # the whole mask inside
    mask = torch.zeros(1, 45, 61)
    mask[:, 2:43, 1:60] = 1                                   # wider than 56: up to 7 columns cut, centred
    x, y, w, h = mask_bounds(mask, padding=0, multiple=8)
    assert (w, h) == (56, 40) and x <= 30 < x + w and y <= 22 < y + h
    mask = torch.zeros(1, 64, 64)
    mask[:, 20:30, 20:30] = 1
    assert mask_bounds(mask, padding=2, multiple=8) == (18, 18, 16, 16)


def test_crop_to_mask_refuses_an_image_smaller_than_multiple_of(tmp_path):
    """A 7×7 image has no crop with sides multiples of 8: said on multiple_of, with the fix."""
    with pytest.raises(ValueError, match="smaller than 8"):
        mask_bounds(torch.ones(1, 7, 7), multiple=8)
    (tmp_path / "in").mkdir()
    Image.new("RGB", (7, 7)).save(tmp_path / "in" / "small.png")
    session = Session(input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    graph = {"format_version": 2, "nodes": {
        "load": {"type": "LoadImage", "inputs": {"image": "small.png"}},
        "all": {"type": "MaskOperation", "inputs": {"mask": link("load", "mask"), "operation": "invert"}},
        "crop": {"type": "CropToMask", "inputs": {"images": link("load", "image"), "mask": link("all", "mask")}},
        "show": {"type": "ShowValue", "inputs": {"value": link("crop", "region")}}}}
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph)
    error = info.value.exception
    assert isinstance(error, NodeInputError) and error.input == "multiple_of"
    assert "7×7" in str(error) and "ImageScale" in str(error)


def test_crop_inpaint_paste_runs_on_an_odd_sized_image_filled_by_the_mask(tmp_path):
    """The "inpaint only masked" pipeline CropToMask → VAEEncodeForInpaint → KSampler → VAEDecode →
    PasteToRegion on a 61×45 image whose mask is everything (the report's repro) runs, and keeps the size."""
    (tmp_path / "in").mkdir()
    Image.fromarray(scene(61, 45)).save(tmp_path / "in" / "odd.png")
    session = Session(input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    graph = {"format_version": 2, "nodes": {
        "checkpoint": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world_v6f.safetensors"}},
        "prompt": {"type": "EncodeText", "inputs": {"text_encoder": link("checkpoint", "text_encoder"),
                                                    "text": "a blue star"}},
        "negative": {"type": "EncodeText", "inputs": {"text_encoder": link("checkpoint", "text_encoder"),
                                                      "text": ""}},
        "source": {"type": "LoadImage", "inputs": {"image": "odd.png"}},
        "mask": {"type": "MaskOperation", "inputs": {"mask": link("source", "mask"), "operation": "invert"}},
        "crop": {"type": "CropToMask", "inputs": {"images": link("source", "image"), "mask": link("mask", "mask"),
                                                  "context": 32, "multiple_of": 8}},
        "encode": {"type": "VAEEncodeForInpaint", "inputs": {"vae": link("checkpoint", "vae"),
                                                             "image": link("crop", "image"),
                                                             "mask": link("crop", "mask")}},
        "sample": {"type": "KSampler", "inputs": {"model": link("checkpoint", "model"),
                                                  "positive": link("prompt", "conditioning"),
                                                  "negative": link("negative", "conditioning"),
                                                  "latent": link("encode", "latent"), "seed": 1, "steps": 2}},
        "decode": {"type": "VAEDecode", "inputs": {"vae": link("checkpoint", "vae"), "latent": link("sample",
                                                                                                    "latent")}},
        "paste": {"type": "PasteToRegion", "inputs": {"destination": link("source", "image"),
                                                      "patch": link("decode", "image"),
                                                      "region": link("crop", "region"), "mask": link("mask", "mask")}},
        "region": {"type": "ShowValue", "inputs": {"value": link("crop", "region")}},
        "show": {"type": "ShowValue", "inputs": {"value": link("paste", "image")}}}}
    out = session.run(graph).outputs
    assert out["region"]["value"] == {"x": 2, "y": 2, "width": 56, "height": 40}
    assert out["show"]["value"].shape == (1, 45, 61, 3)


class FactorFourVAE(torch.nn.Module):
    """A stand-in VAE (factor 4) that is never reached: the inputs are refused first."""

    class config:
        downscale = 4

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))


def encode_for_inpaint(image: torch.Tensor, mask: torch.Tensor) -> NodeInputError:
    node = VAEEncodeForInpaint()
    node.context = NodeContext("encode", "VAEEncodeForInpaint", lambda *a: None, lambda nid: None, {})
    with pytest.raises(NodeInputError) as info:
        node.run(FactorFourVAE(), image, mask, 6)
    return info.value


def test_an_empty_inpainting_mask_says_why_and_what_to_do():
    """An opaque photo's LoadImage mask is empty: "nothing to inpaint" said neither that the mask is the file's
    transparency nor how to give one (#5)."""
    error = encode_for_inpaint(torch.ones(1, 8, 8, 3), torch.zeros(1, 8, 8))
    text = str(error)
    assert error.input == "mask" and "nothing to inpaint" in text
    assert "transparency" in text and "Edit mask" in text and "LoadImageMask" in text and "ImageToMask" in text


def test_an_inpainting_image_of_the_wrong_size_says_how_to_fix_it():
    """"must be a multiple of 4" had no fix in it, unlike VAEEncode's (#5)."""
    error = encode_for_inpaint(torch.ones(1, 45, 61, 3), torch.ones(1, 45, 61))
    text = str(error)
    assert error.input == "image" and "61×45" in text and "multiple of 4" in text
    assert "ImageScale" in text and "CropToMask" in text


def _raw_png(path, width, height, depth, colour_type, rows, trns=None, plte=b"", broken=False):
    """A PNG written byte by byte (Pillow writes no 1/2/4-bit grey with a colour key, nor a tRNS longer than the
    palette); `broken`: the pixels' second half in a chunk whose type is not letters (Pillow's "broken PNG file",
    a SyntaxError, raised while loading the pixels, after the header opened fine)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    body = zlib.compress(b"".join(b"\0" + row for row in rows))
    pixels = chunk(b"IDAT", body)
    if broken:
        pixels = chunk(b"IDAT", body[:len(body) // 2]) + chunk(b"\x00\x80\x0b\x00", body[len(body) // 2:])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + (chunk(b"PLTE", plte) if plte else b"")
                     + (chunk(b"tRNS", trns) if trns else b"") + pixels + chunk(b"IEND", b""))


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_a_colour_key_in_a_low_bit_depth_grey_png_is_transparency(tmp_path, depth):
    """Pillow widens 1/2/4-bit grey to 0..255 but keeps the key as stored (2-bit key 3 vs pixel 255): LoadImage
    found no mask where the mask editor showed one (a hostile re-test)."""
    import struct

    from nodes.image.pixels import load_image_file

    top = 2 ** depth - 1

    def pack(values):                       # MSB first, as PNG packs sub-byte samples
        bits = "".join(format(v, f"0{depth}b") for v in values)
        bits += "0" * (-len(bits) % 8)
        return bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))

    rows = [pack([top if x < 4 else 0 for x in range(8)]) for _ in range(8)]
    path = tmp_path / "keyed.png"
    _raw_png(path, 8, 8, depth, 0, rows, trns=struct.pack(">H", top))
    _image, mask = load_image_file(path)
    assert mask[0, :, :4].eq(1).all() and mask[0, :, 4:].eq(0).all()


def test_a_damaged_trns_chunk_is_an_unreadable_file(tmp_path):
    """A truncated tRNS chunk raised a bare ValueError from PIL, naming no file."""
    from nodes.image.pixels import load_image_file

    path = tmp_path / "bad.png"
    _raw_png(path, 2, 2, 8, 0, [b"\0\0", b"\0\0"], trns=b"\x00")        # a grey key needs 2 bytes
    with pytest.raises(OSError, match="damaged"):
        load_image_file(path)


def test_a_palette_alpha_table_longer_than_the_palette_uses_the_palettes_entries(tmp_path):
    """A 2-colour palette PNG with a 300-byte tRNS: the upload accepted it, then LoadImage failed with a raw
    "ValueError: palette index out of range" (and a Pillow warning on stderr), and its thumbnail was "not a
    readable image". libpng and the browsers ignore the extra entries; so do LoadImage and the upload check."""
    import warnings

    from nodegraph.files import FileStore

    rows = [bytes([0, 1, 1, 0])] * 2                                  # colour 0 half transparent, colour 1 clear
    path = tmp_path / "long.png"
    _raw_png(path, 4, 2, 8, 3, rows, trns=b"\x80\x00" + b"\x00" * 298, plte=b"\xff\x00\x00\x00\xff\x00")
    store = FileStore(tmp_path / "in", tmp_path / "out")
    assert store.save_upload("long.png", path.read_bytes()) == "input/long.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                # Pillow's UserWarning would fail here
        image, mask = load_image_file(tmp_path / "in" / "long.png")
    assert torch.allclose(mask[0, :, 0], torch.tensor(1 - 128 / 255)) and mask[0, :, 1:3].eq(1).all()
    assert float(image[0, 0, 0, 0]) == 1.0 and float(image[0, 0, 1, 1]) == 1.0     # the palette's red and green


def test_a_broken_chunk_in_the_pixels_is_a_damaged_file_that_the_upload_refuses_too(tmp_path):
    """A PNG whose header opens but whose pixel data runs into a broken chunk (a file copied into the input
    folder): Pillow raises SyntaxError while loading, and LoadImage failed with "SyntaxError: broken PNG file".
    It is a damaged, unreadable file that says what to do; the upload check refuses the same bytes."""
    from nodegraph.files import FileAccessError, FileStore

    path = tmp_path / "broken.png"
    _raw_png(path, 16, 16, 8, 2, [bytes(range(48))] * 16, broken=True)
    with pytest.raises(OSError, match=r"damaged \(SyntaxError: broken PNG file.*save it again"):
        load_image_file(path)
    with pytest.raises(FileAccessError, match="not a readable image"):
        FileStore(tmp_path / "in", tmp_path / "out").save_upload("broken.png", path.read_bytes())
    session = Session(input_dir=tmp_path, output_dir=tmp_path / "out")
    graph = {"format_version": 2, "nodes": {
        "load": {"type": "LoadImage", "inputs": {"image": "broken.png"}},
        "show": {"type": "ShowValue", "inputs": {"value": link("load", "mask")}}}}
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph)
    error = info.value.exception
    assert isinstance(error, NodeInputError) and error.input == "image"
    assert "'broken.png' is not a readable image: the file is damaged (SyntaxError" in str(error)
