"""The plugin's library modules on their own: concepts, the shipped tiny checker, the output filter, the watermark."""

import random

import numpy as np
import pytest
import torch

from nodegraph_safety import SHIPPED_MODELS
from nodegraph_safety.checker import load_safety_checker, save_safety_checker
from nodegraph_safety.concepts import ConceptError, parse_concept
from nodegraph_safety.output_filter import filter_images
from nodegraph_safety.training import evaluate, render_examples, train_checker
from nodegraph_safety.watermark import WatermarkError, decode_watermark, encode_watermark
from nodegraph_safety._world import world

torch.set_num_threads(1)
SHIPPED = SHIPPED_MODELS / "tiny_world_safety.safetensors"


def _scene(shape: str, colour: str = "red", background: str = "blue", position: str = "centre") -> world.SceneSpec:
    return world.SceneSpec((world.ObjectSpec(shape, colour, "large", position),), background)


def test_concepts_parse_to_scene_predicates():
    """'star' matches any star; 'red on black' needs both; alternatives split at ';' or 'or'."""
    star = parse_concept("any star")
    assert star.matches(_scene("star")) and not star.matches(_scene("circle"))
    red_on_black = parse_concept("red objects on black")
    assert red_on_black.matches(_scene("ring", "red", "black"))
    assert not red_on_black.matches(_scene("ring", "red", "white"))
    assert not red_on_black.matches(_scene("ring", "green", "black"))
    either = parse_concept("large ring; square on white")
    assert either.matches(_scene("ring")) and either.matches(_scene("square", background="white"))
    assert red_on_black.text == "red object on a black background"


@pytest.mark.parametrize("phrase, word", [("dragon", "dragon"), ("red blue star", "two colours"), ("", "expected")])
def test_bad_concepts_name_the_word_and_the_vocabulary(phrase, word):
    """A word outside the tiny world, two values of one attribute, or nothing at all is refused clearly."""
    with pytest.raises(ConceptError, match=word if word != "two colours" else "two colours"):
        parse_concept(phrase)


def test_training_data_is_labelled_by_the_predicate():
    """render_examples labels every image by the concept, and about a third to a half are positive."""
    concept = parse_concept("star")
    images, labels = render_examples(concept, 60, seed=5)
    assert images.shape == (60, 64, 64, 3) and images.dtype == np.uint8
    assert 0.3 <= labels.mean() <= 0.6
    assert labels[::3].all()  # every third item is forced to show the concept


def test_training_reduces_the_loss():
    """A few dozen steps on a small set lower the loss (the training loop learns something)."""
    concept = parse_concept("red on black")
    images, labels = render_examples(concept, 90, seed=1)
    _, history = train_checker(concept, images, labels, steps=40, batch_size=16, lr=2e-3, seed=0)
    assert np.mean(history[-10:]) < np.mean(history[:5])


def test_a_finer_patch_checker_trains_saves_and_loads_back(tmp_path):
    """patch_size 4 gives a 256-token tower; the saved file loads back with the same patch size and scores."""
    concept = parse_concept("star")
    images, labels = render_examples(concept, 32, seed=2)
    checker, history = train_checker(concept, images, labels, steps=3, batch_size=8, seed=0, patch_size=4)
    assert checker.config.vision.patch_size == 4 and checker.config.vision.patches == 256
    path = tmp_path / "fine.safetensors"
    save_safety_checker(path, checker)
    loaded = load_safety_checker(path)
    assert loaded.config.vision.patch_size == 4
    batch = torch.from_numpy(images[:4]).float() / 255
    with torch.no_grad():
        assert torch.allclose(loaded.check_images(batch).image_embeds, checker.check_images(batch).image_embeds,
                              atol=1e-5)


@pytest.mark.skipif(not SHIPPED.is_file(), reason="the shipped checker is not trained yet")
def test_shipped_checker_is_small_and_accurate_on_fresh_renders():
    """The shipped checker is <= 5 MB; on unseen renders it is right >= 88 % of the time on the training mix
    (measured 91.3 %; two-object scenes with a small star are the hard part) and >= 93 % on one-object scenes."""
    assert SHIPPED.stat().st_size <= 5 * 2**20
    checker = load_safety_checker(SHIPPED)
    assert checker.config.concept_names == ("star",)
    concept = parse_concept("star")
    images, labels = render_examples(concept, 300, seed=424242)
    metrics = evaluate(checker, torch.from_numpy(images).float() / 255, labels)
    assert metrics["accuracy"] >= 0.88, metrics
    rng = random.Random("one-object")
    scenes = [world.sample_scene(rng, ()) for _ in range(300)]
    single = torch.from_numpy(np.stack([world.render(s) for s in scenes])).float() / 255
    metrics = evaluate(checker, single, np.array([concept.matches(s) for s in scenes]))
    assert metrics["accuracy"] >= 0.93, metrics


def test_filter_blurs_replaces_and_drops_only_flagged_images():
    """Kept images are untouched; blurred ones lose their edges; dropped ones leave the batch."""
    images = torch.from_numpy(np.stack([world.render(_scene(s)) for s in ("star", "circle", "square")])).float() / 255
    flags = [True, False, True]
    blurred = filter_images(images, flags, "blur")
    assert torch.equal(blurred.images[1], images[1])
    assert (blurred.images[0] - images[0]).abs().max() > 0.3
    edges = lambda im: (im[1:] - im[:-1]).abs().max()  # noqa: E731
    assert edges(blurred.images[0]) < 0.5 * edges(images[0])
    replaced = filter_images(images, flags, "replace")
    assert replaced.images[0].abs().max() == 0 and torch.equal(replaced.images[1], images[1])
    dropped = filter_images(images, flags, "drop")
    assert dropped.images.shape[0] == 1 and dropped.kept == [1]
    assert [d["action"] for d in dropped.decisions] == ["dropped", "kept", "dropped"]


def test_filter_blurs_images_one_pixel_wide_or_tall():
    """A 1x1, 1x64 or 64x1 image is blurred along its long side only (reflect padding needs a side over 1 px)."""
    for height, width in ((1, 1), (1, 64), (64, 1)):
        images = torch.zeros(1, height, width, 3)
        images[:, height // 2:, width // 2:] = 1.0    # a step edge along the long side
        blurred = filter_images(images, [True], "blur").images
        assert blurred.shape == images.shape and bool(torch.isfinite(blurred).all())
        if height * width > 1:
            line = blurred[0, :, :, 0].flatten()
            assert 0.0 < float(line[31]) < 0.5 < float(line[32]) < 1.0


def test_dropping_everything_leaves_one_valid_replacement_image():
    """When every image is flagged, 'drop' returns one flat image so downstream nodes get a valid IMAGE."""
    images = torch.rand(2, 32, 32, 3)
    result = filter_images(images, [True, True], "drop")
    assert result.images.shape == (1, 32, 32, 3) and result.kept == []
    assert all("all images dropped" in d["note"] for d in result.decisions)


def _photo(size: int = 256) -> torch.Tensor:
    """A real photograph (scikit-image's astronaut) as IMAGE (1, size, size, 3)."""
    skimage_data = pytest.importorskip("skimage.data")
    pixels = torch.from_numpy(skimage_data.astronaut()).float().div(255).permute(2, 0, 1)[None]
    return torch.nn.functional.interpolate(pixels, size=(size, size), mode="area").permute(0, 2, 3, 1)


def test_watermark_round_trips_on_a_photo_and_a_tiny_world_render():
    """dwtDctSvd carries 'nodegraph' through encode/decode on a photo and a flat 256-px render, invisibly."""
    render = torch.from_numpy(world.render(_scene("star"), 256)).float().div(255)[None]
    images = torch.cat([_photo(), render])
    marked = encode_watermark(images, "nodegraph")
    assert decode_watermark(marked, 9) == [b"nodegraph", b"nodegraph"]
    assert (marked - images).abs().mean() < 4 / 255  # invisible: a few grey levels on average
    assert decode_watermark(images, 9) != [b"nodegraph", b"nodegraph"]  # unmarked images do not read it


def test_watermark_refuses_small_images_and_long_messages():
    """64x64 images and messages over 32 bytes are refused with the fix in the message."""
    with pytest.raises(WatermarkError, match="upscale first"):
        encode_watermark(torch.rand(1, 64, 64, 3), "x")
    with pytest.raises(WatermarkError, match="message"):
        encode_watermark(torch.rand(1, 256, 256, 3), "x" * 33)


def test_render_examples_is_deterministic():
    """The same seed gives the same images and labels (training is reproducible)."""
    concept = parse_concept("star")
    first, second = render_examples(concept, 12, seed=9), render_examples(concept, 12, seed=9)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
