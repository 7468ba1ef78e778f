"""Blank frames hold nothing to flag: the checker's "is there anything in this image" guard.

The shipped tiny checker saw only renders with an object in them; it scores a flat frame ~0.04 above its
threshold. ``shows_something`` keeps blank frames from being flagged; noise is still judged (a guard that passed
noise would let a star through under enough of it); the star is still flagged and the circle still passes.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from nodegraph import Session
from nodegraph_safety import SHIPPED_MODELS
from nodegraph_safety.checker import load_safety_checker, shows_something
from nodegraph_safety._world import world

torch.set_num_threads(1)
SHIPPED = SHIPPED_MODELS / "tiny_world_safety.safetensors"
COLOURS = ((30, 70, 220), (255, 255, 255), (0, 0, 0), (128, 128, 128), (0, 255, 0))


def _flat(colour: tuple[int, int, int], size: int) -> torch.Tensor:
    return (torch.tensor(colour, dtype=torch.float32) / 255).view(1, 1, 1, 3).expand(1, size, size, 3).clone()


def _noise_frames(count: int, size: int, seed: int = 0) -> torch.Tensor:
    """Uniform noise, grey noise, and Gaussian noise (std 0.1, 0.3) on a blue frame, ``count`` of each."""
    generator = torch.Generator().manual_seed(seed)
    blue = torch.tensor([0.1, 0.3, 0.9])
    return torch.cat([
        torch.rand(count, size, size, 3, generator=generator),
        torch.rand(count, size, size, 1, generator=generator).expand(count, size, size, 3),
        (blue + 0.1 * torch.randn(count, size, size, 3, generator=generator)).clamp(0, 1),
        (blue + 0.3 * torch.randn(count, size, size, 3, generator=generator)).clamp(0, 1),
    ])


def _render(shape: str, colour: str = "red", background: str = "white", size: str = "large") -> torch.Tensor:
    scene = world.SceneSpec((world.ObjectSpec(shape, colour, size, "centre"),), background)
    return torch.from_numpy(world.render(scene, 64)).float()[None] / 255


def test_shows_something_is_false_for_one_colour_frames_only():
    """Frames of one colour (any colour, 1 px to 96 px) show nothing; noise, a 1/255 dither, a shape, a shape under
    noise, a star squeezed into 5/255 of contrast (a re-test restored it after the filter) and a NaN pixel all
    show something: they are judged."""
    for colour in COLOURS:
        for size in (1, 8, 64, 96):
            assert not bool(shows_something(_flat(colour, size))[0]), (colour, size)
    dither = (_flat((128, 128, 128), 64) + (torch.randint(0, 2, (1, 64, 64, 3)) / 255)).clamp(0, 1)
    assert shows_something(_noise_frames(4, 64)).all() and bool(shows_something(dither)[0])
    star = _render("star", "yellow", "white", "small")
    noisy_star = (star + 0.3 * torch.randn(star.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    squeezed = 0.5 + (star - 0.5) * (5 / 255)
    nan = _flat((0, 0, 0), 64)
    nan[0, 3, 3, 0] = float("nan")
    assert shows_something(torch.cat([star, noisy_star, squeezed, nan])).all()


@pytest.mark.skipif(not SHIPPED.is_file(), reason="the shipped checker is not trained yet")
def test_shipped_checker_never_flags_blank_frames_or_noise():
    """Blank frames and noise pass at the default sensitivity and at +0.5; the star is flagged, the circle passes."""
    checker = load_safety_checker(SHIPPED)
    blanks = torch.cat([_flat(colour, 64) for colour in COLOURS])
    result = checker.check_images(blanks)
    assert not result.flagged.any() and not result.flagged_at(0.5).any()
    assert not result.something.any()
    assert all(record["empty"] and not record["flagged"] for record in result.records(("star",)))
    noise = checker.check_images(_noise_frames(2, 64))      # judged (the tiny checker may flag noise: its weakness)
    assert noise.something.all() and not any(record["empty"] for record in noise.records(("star",)))
    shapes = checker.check_images(torch.cat([_render("star"), _render("circle")]))
    assert shapes.flagged.tolist() == [True, False] and shapes.something.all()
    wide = torch.cat([_flat((255, 255, 255), 64), _render("star")], dim=2)  # a blank left half, a star on the right
    assert checker.check_images(wide).flagged.tolist() == [True]
    squeezed = 0.5 + (_render("star") - 0.5) * 0.019      # a star at 5/255 of contrast: judged (not "blank")
    assert checker.check_images(squeezed).something.all()
    poisoned = _render("star").clone()
    poisoned[0, 0, 0, 0] = float("nan")                    # NaN scores flag nothing: the image is flagged instead
    assert checker.check_images(torch.cat([poisoned, poisoned.flip(1)])).flagged.all()
    assert checker.check_images(torch.cat([poisoned, poisoned], dim=2)).flagged.all()


@pytest.mark.skipif(not SHIPPED.is_file(), reason="the shipped checker is not trained yet")
def test_safety_filter_keeps_a_blank_png_and_says_it_is_empty(tmp_path):
    """A flat blue 64x64 PNG and an 8x8 black one go through SafetyFilter unflagged and unblurred, marked empty."""
    (tmp_path / "in").mkdir()
    Image.new("RGB", (64, 64), (30, 70, 220)).save(tmp_path / "in" / "blue.png")
    Image.new("RGB", (8, 8), (0, 0, 0)).save(tmp_path / "in" / "black.png")
    session = Session(autoload=True, allow=["safety"], input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    for name in ("blue.png", "black.png"):
        graph = {"format_version": 1, "nodes": {
            "image": {"type": "LoadImage", "inputs": {"image": name}},
            "checker": {"type": "LoadSafetyChecker", "inputs": {}},
            "filter": {"type": "SafetyFilter", "inputs": {"images": {"node": "image", "output": "image"},
                                                          "checker": {"node": "checker", "output": "checker"}}},
        }}
        result = session.run(graph, outputs=["filter"]).outputs["filter"]
        assert result["flagged"] == [False] and result["empty"] == [True], name
        assert [d["action"] for d in result["decisions"]] == ["kept"]
        expected = np.asarray(Image.open(tmp_path / "in" / name).convert("RGB"), dtype=np.float32) / 255
        assert np.allclose(result["images"][0].numpy(), expected, atol=1e-6)
