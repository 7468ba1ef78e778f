"""The safety checker: parity with diffusers' StableDiffusionSafetyChecker, the decision rule, and file loading."""

import pytest
import torch

from nodegraph_safety.checker import (
    CheckerConfig,
    CheckerError,
    SafetyChecker,
    checker_from_state_dict,
    concept_scores,
    load_safety_checker,
    preprocess,
    save_safety_checker,
)
from nodegraph_safety.clip_vision import VisionConfig

torch.set_num_threads(1)


def _reference_checker(seed: int, clip_input: torch.Tensor):
    """A diffusers StableDiffusionSafetyChecker at a small CLIPVisionConfig with random weights.

    Thresholds are set from the inputs' own similarities (concept 0 and special-care concept 0 at their
    medians, the rest unreachable), so about half the images fire and both decisions are exercised.
    """
    transformers = pytest.importorskip("transformers")
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker

    torch.manual_seed(seed)
    config = transformers.CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4, "num_hidden_layers": 2},
        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4,
                       "num_hidden_layers": 2, "image_size": 32, "patch_size": 4, "hidden_act": "quick_gelu"},
        projection_dim=16,
    )
    reference = StableDiffusionSafetyChecker(config).eval()
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.2)
        from diffusers.pipelines.stable_diffusion.safety_checker import cosine_distance

        embeds = reference.visual_projection(reference.vision_model(clip_input)[1])
        concept_cos = cosine_distance(embeds, reference.concept_embeds)
        special_cos = cosine_distance(embeds, reference.special_care_embeds)
        reference.concept_embeds_weights.copy_(torch.full((17,), 2.0))
        reference.concept_embeds_weights[0] = concept_cos[:, 0].median() - 0.002
        reference.special_care_embeds_weights.copy_(torch.full((3,), 2.0))
        reference.special_care_embeds_weights[0] = special_cos[:, 0].median()
    return reference


@pytest.mark.parity
def test_parity_with_diffusers_on_random_weights():
    """Our checker loads diffusers' state dict and matches its embeddings (<= 1e-4), scores and flags."""
    torch.manual_seed(1)
    clip_input = torch.randn(16, 3, 32, 32)
    reference = _reference_checker(0, clip_input)
    ours = checker_from_state_dict(reference.state_dict(), heads=4)
    assert ours.config.vision == VisionConfig(image_size=32, patch_size=4, width=32, layers=2, heads=4,
                                              intermediate=37, activation="quick_gelu")
    with torch.no_grad():
        expected_embeds = reference.visual_projection(reference.vision_model(clip_input)[1])
        _, expected_flags = reference(clip_input, torch.zeros(16, 3, 8, 8))
    result = ours.check(clip_input)
    assert torch.allclose(result.image_embeds, expected_embeds, atol=1e-4)
    assert result.flagged.tolist() == list(expected_flags)
    assert 0 < sum(expected_flags) < 16  # the case exercises both decisions


@pytest.mark.parity
def test_scores_match_the_reference_loop_including_special_care():
    """Per-concept scores equal the reference's rounded scores, with the 0.01 special-care adjustment."""
    torch.manual_seed(4)
    clip_input = torch.randn(12, 3, 32, 32)
    reference = _reference_checker(3, clip_input)
    ours = checker_from_state_dict(reference.state_dict(), heads=4)
    result = ours.check(clip_input)
    # replay diffusers' own per-image loop on its embeddings
    with torch.no_grad():
        embeds = reference.visual_projection(reference.vision_model(clip_input)[1])
    from diffusers.pipelines.stable_diffusion.safety_checker import cosine_distance

    special_cos = cosine_distance(embeds, reference.special_care_embeds).numpy()
    cos = cosine_distance(embeds, reference.concept_embeds).numpy()
    adjusted = 0
    for i in range(12):
        adjustment = 0.0
        for k in range(3):
            score = round(special_cos[i][k] - reference.special_care_embeds_weights[k].item() + adjustment, 3)
            assert result.special_scores[i, k].item() == pytest.approx(score, abs=1.1e-3)
            if score > 0:
                adjustment = 0.01
        adjusted += adjustment > 0
        for k in range(17):
            score = round(cos[i][k] - reference.concept_embeds_weights[k].item() + adjustment, 3)
            assert result.concept_scores[i, k].item() == pytest.approx(score, abs=1.1e-3)
    assert 0 < adjusted < 12


def test_special_care_lowers_every_threshold_by_one_hundredth():
    """A special-care hit turns a concept at -0.005 below its threshold into a flag; without it, no flag."""
    thresholds = torch.tensor([0.5])
    concept = torch.tensor([[0.495], [0.495]])
    special = torch.tensor([[0.9], [0.1]])
    flagged, scores, special_scores = concept_scores(concept, thresholds, special, torch.tensor([0.5]))
    assert flagged.tolist() == [True, False]
    assert scores[:, 0].tolist() == pytest.approx([0.005, -0.005])
    assert special_scores[:, 0].tolist() == pytest.approx([0.4, -0.4])


def test_file_round_trip_and_real_layout_keys(tmp_path):
    """save/load keeps every tensor; the keys are the released checkpoint's names."""
    torch.manual_seed(0)
    config = CheckerConfig(vision=VisionConfig(image_size=16, patch_size=8, width=16, layers=1, heads=2,
                                               intermediate=32), projection_dim=8, concepts=2, special_care=1,
                           concept_names=("star", "ring"))
    checker = SafetyChecker(config)
    path = save_safety_checker(tmp_path / "c.safetensors", checker)
    loaded = load_safety_checker(path)
    assert loaded.config == config
    for key, value in checker.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    keys = set(checker.state_dict())
    assert {"vision_model.vision_model.pre_layrnorm.weight", "visual_projection.weight", "concept_embeds",
            "special_care_embeds_weights",
            "vision_model.vision_model.encoder.layers.0.self_attn.q_proj.weight"} <= keys


def test_library_loader_reads_only_safetensors(tmp_path):
    """A .pt checker is refused by the library loader with a message pointing to the node and the owner's opt-in."""
    torch.manual_seed(0)
    config = CheckerConfig(vision=VisionConfig(image_size=16, patch_size=8, width=16, layers=1, heads=2,
                                               intermediate=32), projection_dim=8, concepts=1, special_care=1)
    path = tmp_path / "checker.pt"
    torch.save(SafetyChecker(config).state_dict(), path)
    with pytest.raises(CheckerError, match="NODEGRAPH_ALLOW_PICKLE"):
        load_safety_checker(path)


def test_other_models_are_refused_with_a_clear_error():
    """A state dict of another model names what is missing and what file to pass."""
    with pytest.raises(CheckerError, match="not a Stable Diffusion safety checker"):
        checker_from_state_dict({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4, 4, 3, 3)})


def test_preprocess_resizes_crops_and_normalises():
    """A 40x64 image becomes 3x32x32, a grey 0.5 image normalises to (0.5 - mean) / std."""
    images = torch.full((2, 40, 64, 3), 0.5)
    out = preprocess(images, 32)
    assert out.shape == (2, 3, 32, 32)
    assert out[0, 0, 5, 5].item() == pytest.approx((0.5 - 0.48145466) / 0.26862954, abs=1e-4)
    with pytest.raises(CheckerError, match="images"):
        preprocess(torch.zeros(3, 32, 32), 32)


@pytest.mark.parametrize(("height", "width", "count"), [(64, 64, 1), (48, 80, 2), (80, 48, 2), (64, 200, 4),
                                                          (31, 30, 2), (64, 128, 2)])
def test_square_windows_are_the_fewest_squares_that_cover_the_image(height, width, count):
    from nodegraph_safety.checker import square_windows

    windows = square_windows(height, width)
    covered = torch.zeros(height, width, dtype=torch.bool)
    for top, left, side in windows:
        assert side == min(height, width) and top + side <= height and left + side <= width
        covered[top:top + side, left:left + side] = True
    assert len(windows) == count and bool(covered.all())


def test_check_images_judges_the_sides_of_a_wide_image():
    """A checker whose concept is "red pixels": a red patch at the left edge of a 32x96 image is outside the
    reference's centre crop, but check_images (square windows) flags it and reports that window's score; a
    square image gets exactly check(preprocess(...))."""
    config = CheckerConfig(vision=VisionConfig(image_size=32, patch_size=8, width=16, layers=1, heads=2,
                                               intermediate=32), projection_dim=2, concepts=1, special_care=0)
    checker = SafetyChecker(config).eval()
    with torch.no_grad():  # the tower's pooled output ignored: the projection reads the patch embedding's mean
        for parameter in checker.parameters():
            parameter.zero_()
    checker.embed = lambda clip_input: torch.stack(  # red minus green, per image: a stand-in "unsafe" feature
        [clip_input[:, 0].mean((1, 2)) - clip_input[:, 1].mean((1, 2)), torch.ones(clip_input.shape[0])], dim=1)
    checker.concept_embeds = torch.nn.Parameter(torch.tensor([[1.0, 0.0]]))
    checker.concept_embeds_weights = torch.nn.Parameter(torch.tensor([0.3]))
    wide = torch.ones(1, 32, 96, 3)
    wide[:, 4:28, 2:26, 1:] = 0.0                      # a red square at the left edge
    centre_only = checker.check(preprocess(wide, 32))
    whole = checker.check_images(wide)
    assert not bool(centre_only.flagged[0]) and bool(whole.flagged[0])
    left = checker.check(preprocess(wide[:, :, :32], 32))
    assert torch.equal(whole.concept_scores, left.concept_scores)
    square = wide[:, :, :32]
    assert torch.equal(checker.check_images(square).concept_scores, left.concept_scores)


def test_flagged_at_shifts_every_concept_score():
    """flagged_at(0) is the reference's decision; a sensitivity is added to each concept score before the > 0 test."""
    from nodegraph_safety.checker import CheckResult

    scores = torch.tensor([[-0.05, 0.02], [-0.2, -0.1], [0.0, -0.3]])
    result = CheckResult((scores > 0).any(dim=1), scores, torch.zeros(3, 0), torch.zeros(3, 4))
    assert result.flagged_at(0.0).tolist() == [True, False, False]
    assert result.flagged_at(-0.03).tolist() == [False, False, False]
    assert result.flagged_at(0.06).tolist() == [True, False, True]
    assert result.flagged_at(0.15).tolist() == [True, True, True]
    empty = CheckResult(torch.zeros(2, dtype=torch.bool), torch.zeros(2, 0), torch.zeros(2, 0), torch.zeros(2, 4))
    assert empty.flagged_at(0.5).tolist() == [False, False]
