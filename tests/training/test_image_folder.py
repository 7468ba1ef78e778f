"""Image-folder dataset: captions beside images, recursive and ordered, bad files skipped and counted."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nodes.training.image_folder import DatasetError, ImageFolderDataset, load_square_image

torch.set_num_threads(1)


def _image(path, size=(40, 30), colour=(200, 10, 10), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "data"
    _image(root / "b.png")
    (root / "b.txt").write_text("a red rectangle\n")
    _image(root / "sub" / "a.jpg", colour=(0, 0, 250))
    (root / "sub" / "a.txt").write_text("a blue one")
    _image(root / "a.png", colour=(0, 200, 0))
    (root / "a.txt").write_text("green")
    _image(root / "uncaptioned.png")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (root / "broken.txt").write_text("never read")
    truncated = root / "truncated.png"
    _image(truncated, size=(64, 64))
    truncated.write_bytes(truncated.read_bytes()[:60])
    (root / "truncated.txt").write_text("cut short")
    _image(root / "empty.png")
    (root / "empty.txt").write_text("   \n")
    (root / "notes.txt").write_text("a caption with no image is ignored")
    return root


def test_skips_corrupt_and_uncaptioned_with_counts(folder):
    """Corrupt, uncaptioned and empty-caption images are left out and counted; the rest are used."""
    dataset = ImageFolderDataset(folder, size=16)
    report = dataset.report
    assert [p.name for p in report.used] == ["a.png", "b.png", "a.jpg"]
    assert sorted(p.name for p in report.corrupt) == ["broken.png", "truncated.png"]
    assert [p.name for p in report.missing_caption] == ["uncaptioned.png"]
    assert [p.name for p in report.empty_caption] == ["empty.png"]
    assert report.skipped == 4 and len(dataset) == 3
    assert report.summary() == "3 images used, 4 skipped (2 corrupt, 1 missing caption, 1 empty caption)"
    # PIL's message named the file by its absolute path ("cannot identify image file '/srv/…/broken.png'"), which
    # a server must not hand to a client; the report keeps the file's name only
    named = report.skipped_files()
    assert any("broken.png (cannot be decoded: UnidentifiedImageError" in row for row in named), named
    assert not any(str(folder) in row for row in named), named


def test_captions_any_case_with_a_bom_or_not_utf8_and_skipped_files_named(tmp_path):
    """IMG.PNG + IMG.TXT was "missing caption"; a UTF-8 BOM stayed in the caption; a Latin-1 caption became
    'carr\ufffd' silently; the report counted skipped files without naming one."""
    _image(tmp_path / "IMG_0001.PNG")
    (tmp_path / "IMG_0001.TXT").write_text("an upper-case caption file")
    _image(tmp_path / "bom.png")
    (tmp_path / "bom.txt").write_bytes("\ufeffa caption after a BOM".encode("utf-8"))
    _image(tmp_path / "latin.png")
    (tmp_path / "latin.txt").write_bytes("carr\xe9 rouge".encode("latin-1"))
    _image(tmp_path / "alone.png")
    dataset = ImageFolderDataset(tmp_path, size=16)
    assert dataset.captions == ["an upper-case caption file", "a caption after a BOM"]
    assert dataset.report.summary() == ("2 images used, 2 skipped (0 corrupt, 1 missing caption, 0 empty caption, "
                                        "1 caption not UTF-8)")
    assert dataset.report.skipped_files() == [
        "alone.png (no caption: add alone.txt (or .caption), or set default_caption)",
        "latin.png (caption latin.txt is not UTF-8 text: save it as UTF-8)"]


def test_items_are_square_tensors_with_captions_in_path_order(folder):
    """Items come in relative-path order as (3, S, S) tensors in [-1, 1] with their stripped captions."""
    dataset = ImageFolderDataset(folder, size=16)
    captions = [dataset[i][1] for i in range(len(dataset))]
    assert captions == ["green", "a red rectangle", "a blue one"]
    image, _ = dataset[1]
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32
    assert image[0].mean() > 0.5 and image[1].mean() < -0.8  # red
    assert ImageFolderDataset(folder, size=16).paths == dataset.paths


def test_resize_and_centre_crop(tmp_path):
    """The shorter side is resized to S and the centre kept; transparency becomes white."""
    wide = np.zeros((20, 60, 3), dtype=np.uint8)
    wide[:, 20:40] = 255  # white centre third, black sides
    Image.fromarray(wide).save(tmp_path / "wide.png")
    square = load_square_image(tmp_path / "wide.png", 10)
    assert square.shape == (10, 10, 3) and square.min() > 200
    _image(tmp_path / "clear.png", size=(8, 8), colour=(0, 0, 0, 0), mode="RGBA")
    assert load_square_image(tmp_path / "clear.png", 8).min() == 255


def test_unusable_folder_raises_dataset_error(tmp_path):
    """A missing folder, or one without any usable image, raises DatasetError naming the problem."""
    with pytest.raises(DatasetError, match="not a folder"):
        ImageFolderDataset(tmp_path / "nowhere")
    _image(tmp_path / "lonely.png")
    with pytest.raises(DatasetError, match="1 missing caption"):
        ImageFolderDataset(tmp_path)


def test_long_and_prompt_like_captions_train_cut_at_75_tokens_with_a_warning(tmp_path):
    """A 132-word caption (or one with the word BREAK) ended TrainDiffusion with "num_chunks=1 is fewer than the
    prompt's 2 chunks". Captions are plain text (no weights, no BREAK) cut at 75 tokens, with one warning."""
    import torch

    from nodegraph import Session
    from nodes.models.tokenizer import caption_ids, default_tokenizer

    tokenizer = default_tokenizer()
    ids, cut = caption_ids(tokenizer, "a PRISON BREAK style poster, (tabby:1.5)")
    assert not cut and ids.shape == (77,)
    assert tokenizer.decode([t for t in ids.tolist()[1:] if t != 49407]).replace(" ", "") == \
        "aprisonbreakstyleposter,(tabby:1.5)"
    long_ids, cut = caption_ids(tokenizer, " ".join(["red"] * 132))
    assert cut and long_ids.shape == (77,) and long_ids[76].item() == 49407     # BOS, 75 words, EOS

    data = tmp_path / "in" / "mine"
    for i, caption in enumerate([" ".join(["a red square"] * 44), "a PRISON BREAK style poster"]):
        _image(data / f"{i}.png", size=(16, 16))
        (data / f"{i}.txt").write_text(caption)
    link = lambda node, output: {"node": node, "output": output}  # noqa: E731
    graph = {"format_version": 1, "nodes": {
        "data": {"type": "ImageFolderDataset", "inputs": {"folder": "mine", "size": 16}},
        "vae": {"type": "TrainVAE", "inputs": {"dataset": link("data", "dataset"), "width": 32, "channel_mult": "1",
                                               "steps": 1, "batch_size": 2, "run_name": "vae"}},
        "unet": {"type": "TrainDiffusion", "inputs": {
            "dataset": link("data", "dataset"), "vae": link("vae", "vae"), "model_channels": 32, "channel_mult": "1",
            "res_blocks": 1, "attention_levels": "1", "heads": 2, "text_width": 32, "text_layers": 1, "steps": 1,
            "batch_size": 2, "warmup_steps": 0, "run_name": "unet"}},
        "show": {"type": "ShowValue", "inputs": {"value": link("unet", "report")}}}}
    torch.manual_seed(0)
    result = Session(input_dir=tmp_path / "in", output_dir=tmp_path / "out").run(graph)
    warnings = [w["message"] for w in result.warnings if w["node_id"] == "unet"]
    assert any("1 caption(s) are longer than the 75 tokens" in m for m in warnings), warnings
    # a training size this small is accepted, with a word (an 8 px size passed silently: a hobbyist's pass)
    assert any("size 16 px makes a 2x2 latent" in w["message"] for w in result.warnings if w["node_id"] == "data")


def test_a_strip_image_is_not_enlarged_whole_before_its_crop(tmp_path):
    """5000×20 at size 2048 was enlarged to 512,000×2048 (4.2 GB) and then cropped: a tiny upload could take a
    server's memory. A strip beyond 16:1 now resamples only its centre square: the same colours, a small peak."""
    import tracemalloc

    from PIL import Image

    strip = Image.new("RGB", (5000, 20), (200, 10, 10))
    strip.paste((10, 200, 10), (2490, 0, 2510, 20))          # a green square in the middle
    strip.save(tmp_path / "strip.png")
    tracemalloc.start()
    square = load_square_image(tmp_path / "strip.png", 512)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert square.shape == (512, 512, 3)
    assert tuple(square[256, 256]) == (10, 200, 10) and tuple(square[256, 60]) == (10, 200, 10)   # the centre square
    assert peak < 64 * 2**20, peak       # numpy's share; Pillow's own buffers are bounded likewise


def test_a_default_caption_takes_images_without_one(folder):
    """A folder without captions could not be used at all (a hobbyist's pass; kohya / DreamBooth give one
    instance prompt): `default_caption` captions the images with no (or an empty) .txt; captioned ones keep theirs."""
    dataset = ImageFolderDataset(folder, size=16, default_caption="a photo of zorb")
    assert [p.name for p in dataset.report.used] == ["a.png", "b.png", "empty.png", "a.jpg", "uncaptioned.png"]
    assert dict(zip((p.name for p in dataset.paths), dataset.captions)) == {
        "a.png": "green", "b.png": "a red rectangle", "empty.png": "a photo of zorb", "a.jpg": "a blue one",
        "uncaptioned.png": "a photo of zorb"}
    assert dataset.report.summary().endswith("; 2 with the default caption")
    assert dataset.report.missing_caption == [] and dataset.report.empty_caption == []


def test_a_folder_without_captions_names_default_caption_and_a_blank_one(tmp_path):
    """A folder of uncaptioned images (and a default_caption of only spaces) was refused with a fix that never
    named default_caption (a hostile pass)."""
    Image.new("RGB", (16, 16), "red").save(tmp_path / "x.png")
    for given, blank in (("", False), ("   ", True)):
        with pytest.raises(DatasetError) as caught:
            ImageFolderDataset(tmp_path, size=16, default_caption=given)
        message = str(caught.value)
        assert "or set default_caption to the caption every uncaptioned image gets" in message, message
        assert ("default_caption is blank" in message) is blank, message


def test_a_palette_png_whose_alpha_table_outruns_its_palette_loads_composited_on_white(tmp_path):
    """libpng reads only the palette's entries of a tRNS that is longer; Pillow's convert("RGBA") raised "palette
    index out of range" (LoadImage was fixed; a training folder failed the same way)."""
    import struct
    import zlib

    from nodes.training.image_folder import load_square_image

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = [bytes([0, 0, 1, 1]) for _ in range(4)]          # left half colour 0 (red, clear), right colour 1 (blue)
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 3, 0, 0, 0))
           + chunk(b"PLTE", bytes([255, 0, 0, 0, 0, 255])) + chunk(b"tRNS", bytes([0, 255]) + bytes(298))
           + chunk(b"IDAT", zlib.compress(b"".join(b"\0" + r for r in rows))) + chunk(b"IEND", b""))
    (tmp_path / "p.png").write_bytes(png)
    pixels = load_square_image(tmp_path / "p.png", 4)
    assert pixels[0, 0].tolist() == [255, 255, 255] and pixels[0, 3].tolist() == [0, 0, 255]
