"""World detector: its ceiling on fresh renders, image layouts, scoring, Fréchet distance, classifier cache."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from nodes.training import world_detector
from nodes.training.world import COLOURS, ObjectSpec, SceneSpec, TinyWorld, render, sample_held_out_scene
from nodes.training.world_detector import (
    DetectorError,
    detect,
    detect_many,
    features,
    frechet_distance,
    load_classifier,
    score,
    train_classifier,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def classifier():
    return load_classifier()


@pytest.fixture(scope="module")
def reference_features(classifier):
    world = TinyWorld(seed=101, holdout=())
    return features(np.stack([world.example(i).image for i in range(300)]), classifier)


def test_ceiling_on_fresh_renders(classifier):
    """On 400 new one-object renders (100 of them held-out combinations) every attribute is read >= 99 % right."""
    world = TinyWorld(seed=2024, holdout=())
    scenes = [world.scene(i) for i in range(300)]
    rng = random.Random(2024)
    scenes += [sample_held_out_scene(rng) for _ in range(100)]
    result = score(detect_many(np.stack([render(scene) for scene in scenes]), classifier), scenes)
    assert result["n"] == 400
    for attribute in ("background", "colour", "shape", "size", "position", "all", "count"):
        assert result[attribute] >= 0.99, (attribute, result)


def test_two_object_scenes_are_read(classifier):
    """Two-object renders are read object by object (matched to their positions)."""
    world = TinyWorld(seed=77, two_object_fraction=1.0)
    scenes = [world.scene(i) for i in range(100)]
    result = score(detect_many(np.stack([render(scene) for scene in scenes]), classifier), scenes)
    assert result["all"] >= 0.98 and result["count"] >= 0.98, result


def test_detect_accepts_every_image_layout(classifier):
    """uint8 HWC, [-1, 1] CHW tensors, [0, 1] HWC tensors, PIL images and other sizes give the same reading."""
    scene = SceneSpec((ObjectSpec("star", "orange", "large", "top"),), "cyan")
    image = render(scene)
    tensor_chw = torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1
    tensor_hwc = torch.from_numpy(image).float()[None] / 255
    layouts = [image, tensor_chw, tensor_hwc, Image.fromarray(image), render(scene, 128)]
    for layout in layouts:
        detection = detect(layout, classifier)
        assert detection.scene() == scene
        assert detection.objects[0].shape_confidence > 0.9
    with pytest.raises(DetectorError, match="expected one image"):
        detect(np.stack([image, image]), classifier)
    with pytest.raises(DetectorError, match="expected"):
        detect(np.zeros((64, 64), dtype=np.uint8), classifier)


def test_blank_image_has_no_object(classifier):
    """A flat image has a background and no objects; scoring counts it wrong on every object attribute."""
    blank = np.full((64, 64, 3), COLOURS["gray"], dtype=np.uint8)
    detection = detect(blank, classifier)
    assert detection.background == "gray" and detection.objects == () and detection.scene() is None
    intended = SceneSpec((ObjectSpec("circle", "red", "small", "left"),), "gray")
    result = score([detection], [intended])
    assert result["background"] == 1.0 and result["shape"] == 0.0 and result["all"] == 0.0


def test_score_counts_each_attribute():
    """score averages each attribute separately and 'all' needs every attribute right."""
    right = world_detector.DetectedObject("ring", "red", "small", "left", (0, 0, 0), (0, 0, 1, 1), 1, 1.0)
    wrong_size = world_detector.DetectedObject("ring", "red", "large", "left", (0, 0, 0), (0, 0, 1, 1), 1, 1.0)
    intended = SceneSpec((ObjectSpec("ring", "red", "small", "left"),), "white")
    detections = [world_detector.Detection("white", (0, 0, 0), (right,)), world_detector.Detection("black", (0, 0, 0), (wrong_size,))]
    result = score(detections, [intended, intended])
    assert result == {"background": 0.5, "colour": 1.0, "shape": 1.0, "size": 0.5, "position": 1.0, "all": 0.5, "count": 1.0, "n": 2}
    with pytest.raises(DetectorError, match="equal lengths"):
        score(detections, [intended])


def test_frechet_distance_small_between_dataset_samples_large_to_noise_and_blank(classifier, reference_features):
    """FD(two dataset samples) is far below FD(dataset, noise) and FD(dataset, flat images)."""
    world = TinyWorld(seed=202, holdout=())
    other = features(np.stack([world.example(i).image for i in range(300)]), classifier)
    rng = np.random.default_rng(0)
    noise = features(rng.integers(0, 256, size=(300, 64, 64, 3), dtype=np.uint8), classifier)
    palette = np.array(list(COLOURS.values()), dtype=np.uint8)
    blank = features(np.broadcast_to(palette[rng.integers(0, len(palette), 300)][:, None, None], (300, 64, 64, 3)), classifier)
    same = frechet_distance(reference_features, other)
    assert abs(frechet_distance(reference_features, reference_features)) < 1e-3  # rounding only
    assert frechet_distance(reference_features, noise) > 10 * same
    assert frechet_distance(reference_features, blank) > 10 * same


def test_frechet_distance_matches_scipy_sqrtm():
    """The eigen-based formula equals the usual one with scipy.linalg.sqrtm."""
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(1)
    a = rng.normal(size=(200, 8)) @ rng.normal(size=(8, 8))
    b = rng.normal(size=(150, 8)) @ rng.normal(size=(8, 8)) + 0.5
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b).real
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(DetectorError, match="same D"):
        frechet_distance(a, b[:, :4])


def test_training_is_deterministic_and_leaves_global_rng_alone():
    """Two short trainings with one seed give identical weights; torch's global RNG is untouched."""
    torch.manual_seed(5)
    state = torch.get_rng_state().clone()
    first = train_classifier(seed=3, samples=128, epochs=1)
    second = train_classifier(seed=3, samples=128, epochs=1)
    assert torch.equal(torch.get_rng_state(), state)
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, second.state_dict()[name]), name


def test_stale_weights_are_not_used(tmp_path):
    """A weights file made for another world version is ignored (retrained, or an error if training is off)."""
    from safetensors.torch import save_file

    path = tmp_path / "detector.safetensors"
    model = world_detector.WorldClassifier()
    save_file(dict(model.state_dict()), str(path), metadata={"fingerprint": "another world"})
    with pytest.raises(DetectorError, match="another world version"):
        load_classifier(path, train_if_missing=False)
