"""Image nodes: alpha → mask, PNG with the graph embedded (and loading it back), grid and scale."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from nodegraph import NodeExecutionError, Session, load_graph
from nodegraph.cli import main as cli_main
from nodes.image.pixels import image_grid, load_image_file, resize_image


def link(node, output):
    return {"node": node, "output": output}


@pytest.fixture
def session(tmp_path):
    (tmp_path / "in").mkdir()
    rgba = np.zeros((8, 6, 4), dtype=np.uint8)
    rgba[..., 0] = 255                 # red
    rgba[..., 3] = 255
    rgba[:4, :, 3] = 0                 # top half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "in" / "red.png")
    return Session(input_dir=tmp_path / "in", output_dir=tmp_path / "out")


def pipeline(prefix="test"):
    return {"format_version": 1, "nodes": {
        "load": {"type": "LoadImage", "inputs": {"image": "red.png"}},
        "scale": {"type": "ImageScale", "inputs": {"images": link("load", "image"), "width": 12, "height": 16,
                                                   "method": "nearest"}},
        "save": {"type": "SaveImage", "inputs": {"images": link("scale", "image"), "filename_prefix": prefix}}}}


def test_alpha_becomes_mask(session, tmp_path):
    """Transparent pixels give mask 1, opaque ones 0; colours survive."""
    image, mask = load_image_file(tmp_path / "in" / "red.png")
    assert image.shape == (1, 8, 6, 3) and mask.shape == (1, 8, 6)
    assert torch.all(mask[0, :4] == 1) and torch.all(mask[0, 4:] == 0)
    assert torch.allclose(image[0, 5, 0], torch.tensor([1.0, 0.0, 0.0]))


@pytest.mark.parametrize("kind", ["uint16", "float32"])
def test_high_bit_depth_grey_keeps_its_tones(tmp_path, kind):
    """A 16-bit grey PNG (Pillow "I;16") and a float grey TIFF ("F") load as their tones, not as pure white
    (Pillow's own conversion to RGB clips them at 255); the same goes for datasets and thumbnails."""
    from nodegraph.files import eight_bit
    from nodes.training.image_folder import load_square_image

    ramp = np.linspace(0, 1, 32 * 32).reshape(32, 32)
    if kind == "uint16":
        path = tmp_path / "ramp.png"
        Image.fromarray((ramp * 65535).astype(np.uint16)).save(path)
    else:
        path = tmp_path / "ramp.tif"
        Image.fromarray(ramp.astype(np.float32), mode="F").save(path)
    image, _ = load_image_file(path)
    assert np.allclose(image[0, :, :, 0].numpy(), ramp, atol=1 / 255 + 1e-6)
    assert np.allclose(image[0, :, :, 1].numpy(), image[0, :, :, 0].numpy())
    square = load_square_image(path, 32)
    assert abs(float(square[..., 0].mean()) - 127.5) < 2
    with Image.open(path) as opened:
        assert eight_bit(opened).mode == "L"


def test_save_embeds_the_graph_and_it_loads_back(session, tmp_path):
    """SaveImage writes numbered PNGs carrying the graph, which load_graph and `nodegraph run` accept."""
    result = session.run(pipeline())
    (file,) = result.outputs["save"]["files"]
    assert file["path"].endswith("test_00001.png") and file["kind"] == "image"
    with Image.open(file["path"]) as saved:
        assert saved.size == (12, 16)
    graph = load_graph(file["path"])
    assert graph.to_dict() == {**pipeline(), "format_version": 2}      # saved at the current version
    session.clear_cache()
    second = session.run(graph).outputs["save"]["files"][0]["path"]
    assert second.endswith("test_00002.png")


def test_png_without_graph_is_a_clear_error(session, tmp_path):
    """A PNG that SaveImage did not write is refused with a structured error."""
    from nodegraph import GraphValidationError

    with pytest.raises(GraphValidationError, match="without an embedded graph"):
        load_graph(tmp_path / "in" / "red.png")


def test_cli_runs_a_saved_png(session, tmp_path, monkeypatch):
    """`nodegraph run image.png` re-runs the graph stored in the image."""
    path = session.run(pipeline("cli")).outputs["save"]["files"][0]["path"]
    assert cli_main(["run", path, "--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "o2")]) == 0
    assert (tmp_path / "o2" / "cli_00001.png").exists()


def test_missing_input_file_names_the_input(session, tmp_path):
    """LoadImage of a missing file is refused before anything runs — by validate and by run — naming the input,
    the close name that is there and the fix; a file removed after validation still fails at the node."""
    from nodegraph import GraphValidationError

    graph = pipeline()
    graph["nodes"]["load"]["inputs"]["image"] = "nope.png"
    (error,) = session.validate(graph)
    assert (error.code, error.node_id, error.input) == ("not_in_choices", "load", "image")
    assert "Did you mean 'red.png'?" in error.message and "Upload it" in error.message and ".;" not in error.message
    with pytest.raises(GraphValidationError) as info:
        session.run(graph)
    assert [(e.node_id, e.input) for e in info.value.errors] == [("load", "image")]
    graph["nodes"]["load"]["inputs"]["image"] = "red.png"
    checked = session.load(graph)
    assert session.validate(checked) == []
    (tmp_path / "in" / "red.png").unlink()                       # gone between validation and the run
    with pytest.raises(NodeExecutionError) as failed:
        session.run(checked)
    assert failed.value.exception_type == "NodeInputError" and "Upload it" in str(failed.value.exception)


def test_grid_and_resize_shapes():
    """A 5-image grid is 3×2 tiles with padding; centre crop keeps the aspect ratio."""
    images = torch.rand(5, 4, 6, 3)
    grid = image_grid(images, columns=3, padding=1)
    assert grid.shape == (1, 2 * 4 + 3, 3 * 6 + 4, 3)
    assert torch.equal(grid[0, 1:5, 1:7], images[0])
    wide = torch.zeros(1, 10, 40, 3)
    wide[:, :, 15:25] = 1.0
    cropped = resize_image(wide, 10, 10, "nearest", "center")
    assert cropped.shape == (1, 10, 10, 3) and cropped.mean() == 1.0
    for method in ("nearest", "bilinear", "bicubic", "area", "lanczos"):
        assert resize_image(images, 3, 2, method).shape == (5, 2, 3, 3)


def test_saved_images_record_versions_batch_index_and_model_hashes(session, tmp_path, monkeypatch):
    """PNG: `nodegraph_run` next to the graph; JPEG/WebP: both in EXIF ImageDescription (they kept nothing). Model
    files the graph names are recorded by SHA-256 (computed once per file version, remembered on disk)."""
    import hashlib
    import json
    import types

    from nodegraph import __version__, provenance

    graph = pipeline()
    graph["nodes"]["batch"] = {"type": "ImageBatch",
                               "inputs": {"a": link("scale", "image"), "b": link("scale", "image")}}
    graph["nodes"]["save"]["inputs"]["images"] = link("batch", "images")
    files = session.run(graph).outputs["save"]["files"]
    records = [json.loads(Image.open(f["path"]).info["nodegraph_run"]) for f in files]
    assert [(r["batch_index"], r["batch_size"]) for r in records] == [(0, 2), (1, 2)]
    assert records[0]["nodegraph"] == __version__ and records[0]["torch"] == torch.__version__
    assert records[0]["models"] == {}

    graph["nodes"]["save"]["inputs"]["format"] = "jpeg"
    (first, _) = session.run(graph).outputs["save"]["files"]
    described = json.loads(Image.open(first["path"]).getexif()[0x010E])
    assert described["nodegraph"]["nodes"]["save"]["inputs"]["format"] == "jpeg"
    assert described["nodegraph_run"]["batch_index"] == 0

    folder = tmp_path / "models" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "m.safetensors").write_bytes(b"weights")
    loader = Session(model_paths=None)
    with_model = load_graph_dict({"format_version": 2, "nodes": {
        "ckpt": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "m.safetensors"}}}})
    context = types.SimpleNamespace(graph=with_model, services={
        "registry": loader.registry, "resolve_file": lambda f, n: loader.model_paths.resolve(f, n)})
    expected = hashlib.sha256(b"weights").hexdigest()
    record = provenance.run_record(context)
    assert record["models"] == {
        "ckpt.ckpt_name": {"folder": "checkpoints", "name": "m.safetensors", "sha256": expected}}
    assert record["threads"] == torch.get_num_threads()      # on the CPU the thread count moves the last bits
    monkeypatch.setattr(hashlib, "sha256", None)      # remembered: not hashed again
    assert provenance.file_sha256(folder / "m.safetensors") == expected
    monkeypatch.undo()
    # a name a String box gives (an imported ComfyUI PrimitiveString) is recorded too: it recorded "models": {}
    linked = load_graph_dict({"format_version": 2, "nodes": {
        "name": {"type": "String", "inputs": {"value": "m.safetensors"}},
        "ckpt": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": link("name", "value")}}}})
    context = types.SimpleNamespace(graph=linked, services=context.services)
    assert provenance.run_record(context)["models"]["ckpt.ckpt_name"]["sha256"] == expected
    # new content under the old size and mtime (written, then `touch -r` back): the old hash was recorded
    stat = (folder / "m.safetensors").stat()
    (folder / "m.safetensors").write_bytes(b"WEIGHTS")
    os.utime(folder / "m.safetensors", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert provenance.file_sha256(folder / "m.safetensors") == hashlib.sha256(b"WEIGHTS").hexdigest()
    # the input folder's files a graph reads are recorded too (the same name with other pixels: another image)
    inputs = tmp_path / "record_inputs"
    inputs.mkdir()
    (inputs / "src.png").write_bytes(b"not really a png")
    reads = load_graph_dict({"format_version": 2, "nodes": {
        "load": {"type": "LoadImage", "inputs": {"image": "src.png"}},
        "gone": {"type": "LoadImage", "inputs": {"image": "missing.png"}}}})
    context = types.SimpleNamespace(graph=reads, services={"registry": loader.registry, "input_dir": inputs})
    assert provenance.run_record(context)["inputs"] == {
        "load.image": {"name": "src.png", "sha256": hashlib.sha256(b"not really a png").hexdigest()}}


def load_graph_dict(data):
    from nodegraph.graph import parse_graph

    return parse_graph(data)


def test_an_image_with_nan_values_is_refused_not_saved(session, tmp_path):
    """A diverged upstream node's NaN image was written as a garbage PNG with only a numpy warning."""
    from nodegraph import api
    from nodegraph.api import ApiArgumentError
    from nodegraph.node import NodeContext

    images = torch.rand(1, 8, 8, 3)
    images[0, 2, 3, 1] = float("nan")
    context = NodeContext("save", "SaveImage", lambda *a: None, lambda n: None, session.services)
    with pytest.raises(ApiArgumentError, match="1 of 192 values are NaN or infinite"):
        api.save_image(context, images, "nan")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.png"))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width × height RGB pixels (and holds none): 57 bytes that decode to gigabytes."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("width, height", [(30000, 30000), (9000, 9000)])   # over PIL's bomb limit; over ours only
def test_load_image_refuses_a_file_declaring_too_many_pixels(session, tmp_path, width, height):
    """A file in the input folder whose header claims more than 8192×8192 pixels is a NodeInputError naming the
    input and the limit (a raw DecompressionBombError before, or gigabytes decoded), as uploads already are."""
    (tmp_path / "in" / "bomb.png").write_bytes(_png_header_only(width, height))
    graph = pipeline()
    graph["nodes"]["load"]["inputs"]["image"] = "bomb.png"
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph)
    assert info.value.exception_type == "NodeInputError"
    message = str(info.value.exception)
    assert "'image'" in message and "too large" in message and "8192×8192" in message, message


@pytest.mark.parametrize("content", [b"hello, this is text\n", None])
def test_an_unreadable_image_error_names_the_file_not_where_the_input_folder_is(session, tmp_path, content):
    """Pillow's message held the absolute path ('cannot identify image file '/srv/.../in/text.png''), which a
    server sends to its clients: the node's error names the file by its name only."""
    if content is None:                                  # a truncated PNG
        content = (tmp_path / "in" / "red.png").read_bytes()[:60]
    (tmp_path / "in" / "bad.png").write_bytes(content)
    graph = pipeline()
    graph["nodes"]["load"]["inputs"]["image"] = "bad.png"
    with pytest.raises(NodeExecutionError) as failed:
        session.run(graph)
    message = str(failed.value.exception)
    assert "'bad.png' is not a readable image" in message and str(tmp_path) not in message


def test_an_animation_loads_its_first_frame_with_a_warning(session, tmp_path):
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    frames[0].save(tmp_path / "in" / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    graph = pipeline()
    graph["nodes"]["load"]["inputs"]["image"] = "anim.gif"
    result = session.run(graph, outputs=["load"])
    assert result.outputs["load"]["image"].shape[0] == 1
    assert [w["message"] for w in result.warnings] == ["'anim.gif' has 3 frames (an animation, or pages); only the first is loaded"]


def test_scale_mask_resizes_a_mask_to_the_image(session):
    import torch

    mask = torch.zeros(1, 30, 50)
    mask[:, 10:20, 20:30] = 1.0
    from nodes.image.nodes import ScaleMask

    scaled = ScaleMask().run(mask=mask, width=100, height=60, method="nearest")["mask"]
    assert scaled.shape == (1, 60, 100) and set(scaled.unique().tolist()) == {0.0, 1.0}
    assert scaled[0, 20:40, 40:60].min() == 1.0 and scaled[0, :18].max() == 0.0


def test_the_files_offered_for_a_missing_image_leave_out_links_leading_outside(session, tmp_path):
    (tmp_path / "secret.png").write_bytes((tmp_path / "in" / "red.png").read_bytes())
    (tmp_path / "in" / "linkfile.png").symlink_to(tmp_path / "secret.png")
    (tmp_path / "in" / "inner.png").symlink_to(tmp_path / "in" / "red.png")
    graph = pipeline()
    graph["nodes"]["load"]["inputs"]["image"] = "nope.png"
    (error,) = session.validate(graph)
    assert "'red.png'" in error.message and "'inner.png'" in error.message and "linkfile" not in error.message


def test_an_output_folder_that_is_a_file_is_named_not_the_prefix(tmp_path):
    (tmp_path / "in").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "in" / "red.png")
    (tmp_path / "out").write_text("a file where the output folder should be")
    session = Session(input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    with pytest.raises(NodeExecutionError) as failed:
        session.run(pipeline())
    message = str(failed.value.exception)
    assert "the output folder cannot be used" in message and "choose another prefix" not in message


def test_an_exif_record_too_large_even_without_the_graph_is_left_out_not_an_error():
    """A graph reading 500 input files hashed each in its run record: the record alone passed EXIF's 64 KB and
    SaveImage as JPEG failed with PIL's "EXIF data is too long". Both are left out, saying so."""
    import io
    import json

    from PIL import Image

    from nodes.image.nodes import exif_record

    run = json.dumps({"inputs": {f"load{k}.image": {"name": f"{k}.png", "sha256": "0" * 64} for k in range(800)}})
    exif = exif_record(json.dumps({"format_version": 2, "nodes": {}}), run)
    assert b"record_omitted" in exif and b"graph_omitted" in exif
    Image.new("RGB", (8, 8)).save(io.BytesIO(), format="JPEG", exif=exif)        # PIL takes it
