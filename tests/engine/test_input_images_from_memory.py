"""`Session.save_input_image`: an image held in memory (PIL, numpy, an IMAGE tensor) becomes an input file named by
its content, for LoadImage — what a diffusers user passes as `image=` (a library user's pass: "no way to pass an
in-memory image into a graph")."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nodegraph import Session


def _graph(name: str) -> dict:
    return {"format_version": 2, "nodes": {"load": {"type": "LoadImage", "inputs": {"image": name}}}}


def test_pil_numpy_and_tensor_images_load_back_exactly(tmp_path):
    session = Session(autoload=False, input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    pixels = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    names = {session.save_input_image(Image.fromarray(pixels)), session.save_input_image(pixels),
             session.save_input_image(torch.from_numpy(pixels).float()[None] / 255.0)}
    assert len(names) == 1                                   # the same pixels, the same name
    [name] = names
    assert name.startswith("memory/") and name.endswith(".png")
    result = session.run(_graph(name), outputs=["load"])
    assert torch.equal((result.outputs["load"]["image"][0] * 255).round().to(torch.uint8), torch.from_numpy(pixels))
    other = session.save_input_image(pixels[::-1].copy())
    assert other != name                                     # other pixels: another file, so no stale cache entry


def test_alpha_is_kept_as_the_mask_and_bad_images_are_named(tmp_path):
    session = Session(autoload=False, input_dir=tmp_path)
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[0, 0, 3] = 0
    mask = session.run(_graph(session.save_input_image(rgba)), outputs=["load"]).outputs["load"]["mask"]
    assert mask[0, 0, 0] == 1.0 and mask[0, 1, 1] == 0.0
    with pytest.raises(ValueError, match="one image"):
        session.save_input_image(torch.zeros(2, 4, 4, 3))
    with pytest.raises(ValueError, match="floats in \\[0, 1\\]"):
        session.save_input_image(np.full((4, 4, 3), 2.0))
    with pytest.raises(TypeError, match="PIL image, a numpy array or an IMAGE tensor"):
        session.save_input_image("photo.png")


def _loaded_grey(session: Session, image) -> float:
    """The 0-255 grey LoadImage gives the top-left pixel of `image` once saved by save_input_image."""
    result = session.run(_graph(session.save_input_image(image)), outputs=["load"])
    return float(result.outputs["load"]["image"][0, 0, 0, 0]) * 255.0


def test_float_and_16_bit_pil_images_keep_their_tones(tmp_path):
    """A PIL "F" image in [0, 1] and a 16-bit one are scaled, not clipped (0.5 saved black, 40000 white)."""
    session = Session(autoload=False, input_dir=tmp_path)
    assert _loaded_grey(session, Image.new("F", (4, 4), 0.5)) == pytest.approx(128, abs=0.01)
    assert _loaded_grey(session, Image.new("F", (4, 4), 1.0)) == pytest.approx(255, abs=0.01)
    assert _loaded_grey(session, Image.new("I;16", (4, 4), 40000)) == pytest.approx(156, abs=0.01)
    assert _loaded_grey(session, Image.new("I", (4, 4), 40000)) == pytest.approx(156, abs=0.01)
    assert _loaded_grey(session, np.full((4, 4), 40000, dtype=np.uint16)) == pytest.approx(156, abs=0.01)
    assert _loaded_grey(session, np.full((4, 4, 3), 40000, dtype=np.uint16)) == pytest.approx(156, abs=0.01)
    assert _loaded_grey(session, Image.new("CMYK", (4, 4), (0, 0, 0, 0))) == pytest.approx(255, abs=0.01)
    with pytest.raises(ValueError, match="floats in \\[0, 1\\].*from 2.0 to 2.0"):
        session.save_input_image(Image.new("F", (4, 4), 2.0))
    with pytest.raises(ValueError, match="0..65535.*70000"):
        session.save_input_image(Image.new("I", (4, 4), 70000))


def test_uint8_tensors_are_taken_and_a_channels_first_one_is_named(tmp_path):
    """A uint8 tensor is taken as a uint8 array is; a (C, H, W) tensor's error names save_input_image and the
    layout it wants, not a function the caller never called."""
    session = Session(autoload=False, input_dir=tmp_path)
    pixels = np.random.default_rng(1).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    assert session.save_input_image(torch.from_numpy(pixels)) == session.save_input_image(pixels)
    with pytest.raises(ValueError, match="save_input_image.*\\(H, W, 3\\).*channels last.*permute\\(1, 2, 0\\)"):
        session.save_input_image(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="^save_input_image: .*NaN"):
        session.save_input_image(torch.full((1, 4, 4, 3), float("nan")))
