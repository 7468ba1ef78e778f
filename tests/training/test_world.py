"""Tiny world: determinism, holdouts, caption round trips, and a renderer that draws what the scene says."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest
import torch

from nodes.training.world import (
    COLOURS,
    DEFAULT_HOLDOUT,
    POSITIONS,
    SHAPES,
    SIZES,
    TEMPLATES,
    ObjectSpec,
    SceneSpec,
    TinyWorld,
    WorldError,
    caption,
    collate,
    is_held_out,
    normalise_holdout,
    parse_caption,
    render,
    sample_held_out_scene,
    sample_scene,
)

torch.set_num_threads(1)


def test_colours_are_far_apart():
    """Every pair of named colours is at least 100 apart in RGB, so nearest-colour reading is safe."""
    assert len(COLOURS) >= 8 and {"red", "green", "blue", "yellow", "white", "black"} <= set(COLOURS)
    assert min(math.dist(COLOURS[a], COLOURS[b]) for a, b in itertools.combinations(COLOURS, 2)) >= 100


def test_same_seed_same_items_different_seed_differs():
    """Items depend only on (seed, index): same seed gives identical images and captions, another seed differs."""
    first, second, other = TinyWorld(seed=3, two_object_fraction=0.3), TinyWorld(seed=3, two_object_fraction=0.3), TinyWorld(seed=4)
    for index in (0, 7, 99, 12345):
        a, b = first.example(index), second.example(index)
        assert a.caption == b.caption and a.scene == b.scene and np.array_equal(a.image, b.image)
    assert [first.caption(i) for i in range(20)] != [other.caption(i) for i in range(20)]
    assert first.example(5).caption == TinyWorld(seed=3, two_object_fraction=0.3).example(5).caption  # order-free


def test_global_rng_untouched():
    """Sampling a world neither reads nor advances the global random, numpy or torch RNGs."""
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    state = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    world = TinyWorld(seed=0)
    _ = [world[i] for i in range(5)]
    assert random.getstate() == state[0]
    assert np.array_equal(np.random.get_state()[1], state[1]) and torch.equal(torch.get_rng_state(), state[2])


def test_dataset_item_layout_and_collate():
    """world[i] is a (3, H, W) float tensor in [-1, 1] with its caption and scene; collate stacks a batch."""
    world = TinyWorld(seed=0, size=32, length=10)
    image, text, scene = world[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert image.min() >= -1 and image.max() <= 1 and parse_caption(text) == scene
    images, captions, scenes = collate([world[i] for i in range(4)])
    assert images.shape == (4, 3, 32, 32) and len(captions) == len(scenes) == 4
    assert len(world) == 10 and world[-1][1] == world.caption(9)
    with pytest.raises(IndexError):
        world[10]


def test_holdouts_never_appear():
    """No item of a world with holdout rules matches them; held-out sampling always does."""
    world = TinyWorld(seed=0, two_object_fraction=0.5)
    scenes = [world.scene(i) for i in range(3000)]
    assert not any(is_held_out(scene, DEFAULT_HOLDOUT) for scene in scenes)
    pairs = {(item.colour, item.shape) for scene in scenes for item in scene.objects}
    assert ("green", "triangle") not in pairs and len(pairs) == len(COLOURS) * len(SHAPES) - len(DEFAULT_HOLDOUT)
    rng = random.Random(0)
    held_out = [sample_held_out_scene(rng) for _ in range(200)]
    assert all(is_held_out(scene) for scene in held_out)
    assert {scene.single.shape for scene in held_out} == set(SHAPES)


def test_holdout_rules_with_attributes_and_background():
    """Rules may name any object attributes and the background; a rule matches only when all of it holds."""
    rules = [{"background": "blue", "shape": "ring"}, ("small", "left")]
    rng = random.Random(1)
    scenes = [sample_scene(rng, rules) for _ in range(1500)]
    assert not any(s.background == "blue" and s.single.shape == "ring" for s in scenes)
    assert not any(s.single.size == "small" and s.single.position == "left" for s in scenes)
    assert any(s.single.shape == "ring" for s in scenes) and any(s.background == "blue" for s in scenes)
    assert normalise_holdout(normalise_holdout(rules)) == normalise_holdout(rules)
    for bad in [("green", "nonsense"), "green", {"hue": "red"}]:
        with pytest.raises(WorldError):
            normalise_holdout([bad])
    with pytest.raises(WorldError, match="exclude almost every scene"):
        sample_scene(random.Random(0), [(shape,) for shape in SHAPES])


def test_caption_round_trip_every_template():
    """parse_caption(caption(scene, t)) == scene for one- and two-object scenes and every template."""
    world = TinyWorld(seed=9, two_object_fraction=0.5, holdout=())
    for index in range(200):
        scene = world.scene(index)
        for template in range(len(TEMPLATES)):
            assert parse_caption(caption(scene, template)) == scene


def test_parse_caption_variants_and_rejections():
    """Spelling variants parse; incomplete or ambiguous text gives None."""
    expected = SceneSpec((ObjectSpec("star", "gray", "large", "centre"),), "white")
    assert parse_caption("A LARGE grey star in the center, on a white background.") == expected
    assert parse_caption("a large gray star in the centre") is None  # no background
    assert parse_caption("a gray star in the centre, white background") is None  # no size
    assert parse_caption("a large gray red star in the centre, white background") is None  # two colours
    assert parse_caption("a large white star in the centre, white background") is None  # invisible object
    assert parse_caption("") is None


def test_scene_validation():
    """Unknown words, an object coloured like the background and shared positions are refused."""
    with pytest.raises(WorldError, match="shape"):
        ObjectSpec("hexagon", "red", "small", "left")
    with pytest.raises(WorldError, match="background colour"):
        SceneSpec((ObjectSpec("circle", "red", "small", "left"),), "red")
    with pytest.raises(WorldError, match="different positions"):
        item = ObjectSpec("circle", "red", "small", "left")
        SceneSpec((item, ObjectSpec("ring", "blue", "small", "left")), "white")


def _object_pixels(image: np.ndarray, rgb) -> np.ndarray:
    return np.abs(image.astype(int) - np.array(rgb)).sum(axis=2) < 30


@pytest.mark.parametrize("shape", SHAPES)
def test_render_draws_requested_colour_size_position(shape):
    """Pixels that are not background form a box of the requested side centred on the requested
    anchor; its interior is the object colour; edges are anti-aliased blends."""
    for size, position in itertools.product(SIZES, POSITIONS):
        scene = SceneSpec((ObjectSpec(shape, "red", size, position),), "blue")
        image = render(scene)
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
        background = np.all(image == COLOURS["blue"], axis=2)
        assert background[0].all() and background[-1].all()
        rows, cols = np.nonzero(~background)
        width, height = cols.max() + 1 - cols.min(), rows.max() + 1 - rows.min()
        assert abs(max(width, height) - SIZES[size]) <= 1
        centre = ((cols.min() + cols.max() + 1) / 2, (rows.min() + rows.max() + 1) / 2)
        assert math.dist(centre, POSITIONS[position]) <= 1.0
        solid = np.all(image == COLOURS["red"], axis=2)
        assert solid.sum() > 0.3 * (~background).sum()
        blended = ~(solid | background)
        assert blended.any() or shape == "square"  # anti-aliased edges (a grid-aligned square has none)
    small = _object_pixels(render(SceneSpec((ObjectSpec(shape, "red", "small", "centre"),), "blue")), COLOURS["red"]).sum()
    large = _object_pixels(render(SceneSpec((ObjectSpec(shape, "red", "large", "centre"),), "blue")), COLOURS["red"]).sum()
    assert large > 2.5 * small


def test_render_scales_with_image_size():
    """At 128 px the same scene is the 64-px scene scaled by two."""
    scene = SceneSpec((ObjectSpec("ring", "yellow", "large", "right"),), "black")
    mask = _object_pixels(render(scene, 128), COLOURS["yellow"])
    _, cols = np.nonzero(mask)
    assert abs(cols.max() + 1 - cols.min() - 60) <= 1 and abs((cols.min() + cols.max() + 1) / 2 - 96) <= 1
    assert not mask[64, 96]  # the ring's hole


def test_two_object_scenes_render_both_objects():
    """Both objects of a two-object scene are drawn, apart, in their colours."""
    world = TinyWorld(seed=2, two_object_fraction=1.0)
    for index in range(20):
        item = world.example(index)
        first, second = item.scene.objects
        assert {first.position, second.position} in ({"left", "right"}, {"top", "bottom"})
        for obj in (first, second):
            x, y = POSITIONS[obj.position]
            assert _object_pixels(item.image[y - 8 : y + 8, x - 8 : x + 8], COLOURS[obj.colour]).sum() > 20


def _world_digest(world: TinyWorld, count: int) -> str:
    import hashlib

    digest = hashlib.sha256()
    for index in range(count):
        example = world.example(index)
        digest.update(example.caption.encode())
        digest.update(example.image.tobytes())
        digest.update(repr(example.scene.objects[0].offset).encode())
    return digest.hexdigest()


@pytest.mark.parametrize("shape_weights", [None, {}])
def test_uniform_shape_weights_reproduce_earlier_worlds(shape_weights):
    """No shape weights give the exact items (captions, pixels, jitter) the world drew before shape_weights existed.

    The digests were computed with nodes/training/world.py as of commit 8c28b7e (before the change).
    """
    one = TinyWorld(seed=6, size=32, length=64, shape_weights=shape_weights)
    two = TinyWorld(seed=6, size=32, length=64, two_object_fraction=0.5, shape_weights=shape_weights)
    assert _world_digest(one, 64) == "3a76c09b3f90a87c0d34d437f9071c17991ee277f213079cbd33c8ee1f74b4cd"
    assert _world_digest(two, 64) == "3d632f6b5ad5af3e8ff52cd3ad8b28518aa8e8dcbcff0004ffac4398e6f7814d"


def test_shape_weights_change_shape_frequencies_and_keep_holdouts():
    """{"star": 3, "ring": 0} draws about half stars, a sixth of each other shape and no rings, never a held-out pair."""
    world = TinyWorld(seed=3, length=3000, shape_weights={"star": 3, "ring": 0})
    shapes = [world.scene(i).objects[0].shape for i in range(len(world))]
    assert 0.45 < shapes.count("star") / len(shapes) < 0.55  # weights 3 : 1 : 1 : 1 : 0 (ring)
    assert "ring" not in shapes
    assert all(0.13 < shapes.count(shape) / len(shapes) < 0.21 for shape in ("circle", "square", "triangle"))
    assert not any(is_held_out(world.scene(i)) for i in range(len(world)))
    held = TinyWorld(seed=3, length=500, holdout=[("star",)], shape_weights={"star": 5})
    assert all(held.scene(i).objects[0].shape != "star" for i in range(len(held)))
    two = TinyWorld(seed=3, length=300, two_object_fraction=1.0, shape_weights={"star": 0, "ring": 0})
    assert {item.shape for i in range(len(two)) for item in two.scene(i).objects} == {"circle", "square", "triangle"}


@pytest.mark.parametrize("weights, words", [
    ({"moon": 2}, "'moon'"),
    ({"star": -1}, "-1"),
    ({"star": float("nan")}, "nan"),
    ({"star": "3"}, "'3'"),
    (dict.fromkeys(SHAPES, 0), "weight 0"),
])
def test_bad_shape_weights_are_world_errors(weights, words):
    """Unknown shapes, negative, non-finite or non-numeric weights and all-zero weights raise WorldError('shape_weights')."""
    with pytest.raises(WorldError) as info:
        TinyWorld(length=4, shape_weights=weights)
    assert info.value.argument == "shape_weights" and words in str(info.value)
    with pytest.raises(WorldError):
        sample_scene(random.Random(0), shape_weights=weights)
