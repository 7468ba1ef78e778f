"""score_prompts scores only what a prompt names, and two-object binding fails on swapped colours (#16 §1)."""

from __future__ import annotations

import random

import numpy as np

from nodes.training import world, world_detector
from nodes.training.world_captions import free_caption, parse_prompt


def test_renders_of_the_named_scene_score_full_marks():
    """Renders of scenes score 100 % on every attribute their free-form (partly omitted) captions name."""
    rng = random.Random(0)
    scenes = [world.sample_scene(rng, two_object_fraction=0.5) for _ in range(40)]
    prompts = [free_caption(scene, rng, "heldout")[1] for scene in scenes]
    result = world_detector.score_prompts(world_detector.detect_many(np.stack([world.render(s) for s in scenes])),
                                          prompts)
    assert result["all"] == 1.0 and result["binding"] == 1.0
    assert all(result[k] == 1.0 for k in ("colour", "shape"))


def test_unnamed_attributes_are_not_scored_and_swaps_break_binding():
    """A prompt without size/position ignores them; a picture with the colours swapped fails binding."""
    image = world.render(world.parse_caption("a large red circle on the left and a large blue square on the right, "
                                             "on a white background"))
    detection = world_detector.detect_many(image[None])
    right = world_detector.score_prompts(detection, [parse_prompt("a red circle and a blue square")])
    swapped = world_detector.score_prompts(detection, [parse_prompt("a blue circle and a red square")])
    assert right["binding"] == 1.0 and right["size"] is None and right["background"] is None
    assert swapped["binding"] == 0.0 and swapped["all"] == 0.0
