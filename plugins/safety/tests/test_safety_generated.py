"""Checker examples from a model's own images (generated.py, GenerateCheckerExamples, TrainSafetyChecker's
`generated` input) and the checker training graph that uses them."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nodegraph import NodeExecutionError, Session
from nodegraph.model_paths import ModelPaths
from nodegraph_safety.concepts import parse_concept
from nodegraph_safety.generated import (CheckerExamples, PredictionRecorder, detection_matches, example_scenes,
                                        parse_sizes, split_groups)

torch.set_num_threads(1)
PLUGIN = Path(__file__).resolve().parents[1]
ROOT = PLUGIN.parents[1]
SECOND_MODEL = ROOT / "models" / "checkpoints" / "tiny_world_v2.safetensors"
needs_model = pytest.mark.skipif(not SECOND_MODEL.is_file(), reason="the second model is not committed")


@pytest.fixture(scope="module")
def session():
    return Session(autoload=True, allow=["safety"])


def test_parse_sizes_reads_width_by_height_and_names_the_bad_part():
    assert parse_sizes("64x64, 96X96; 80 × 48") == [(64, 64), (96, 96), (80, 48)]
    for text, words in (("64", "not WIDTHxHEIGHT"), ("60x64", "multiple of 8"), ("1024x64", "from 32 to 512"),
                        (" , ", "no size")):
        with pytest.raises(ValueError, match=words):
            parse_sizes(text)


def test_example_scenes_mix_a_third_of_concept_scenes_and_are_deterministic():
    concept = parse_concept("star")
    pairs = example_scenes(concept, 90, seed=3)
    assert pairs == example_scenes(concept, 90, seed=3) and pairs != example_scenes(concept, 90, seed=4)
    matching = [concept.matches(scene) for scene, _ in pairs]
    assert all(matching[0::3]) and not any(matching[1::3])      # forced in, forced out
    assert all("star" in caption for (scene, caption), hit in zip(pairs, matching) if hit)


def test_detection_matches_reads_rules_with_backgrounds():
    from nodes.training.world_detector import DetectedObject, Detection

    def item(shape, colour):
        return DetectedObject(shape, colour, "large", "centre", (0.0, 0.0, 0.0), (0, 0, 8, 8), 64, 0.9)

    star_on_white = Detection("white", (1.0, 1.0, 1.0), (item("circle", "blue"), item("star", "red")))
    assert detection_matches(parse_concept("star"), star_on_white)
    assert not detection_matches(parse_concept("ring"), star_on_white)
    assert detection_matches(parse_concept("red star on white"), star_on_white)
    assert not detection_matches(parse_concept("red on black"), star_on_white)
    assert not detection_matches(parse_concept("star"), Detection("white", (1.0, 1.0, 1.0), ()))


def test_split_groups_keeps_each_sampling_run_in_one_part():
    groups = np.repeat(np.arange(40), 5)
    parts = split_groups(groups, (0.7, 0.15, 0.15), seed=1)
    assert sum(int(p.sum()) for p in parts) == len(groups) and not np.any(parts[0] & parts[1])
    assert [len(np.unique(groups[p])) for p in parts] == [28, 6, 6]
    for part in parts:
        assert not np.isin(np.unique(groups[part]), np.unique(groups[~part])).any()
    with pytest.raises(ValueError, match="add up to 1"):
        split_groups(groups, (0.5, 0.2))


def test_prediction_recorder_keeps_one_prediction_per_step_below_its_sigma():
    from types import SimpleNamespace

    sink: list = []
    recorder = PredictionRecorder(sink, max_sigma=2.0)
    calls = ((0, 5.0), (1, 2.0), (1, 2.0), (2, 1.0))     # (step, sigma): step 1 is called twice (2nd order)
    for call, (step, sigma) in enumerate(calls):
        state = SimpleNamespace(step=step, sigma=torch.tensor([sigma]), denoised=torch.full((1, 4, 2, 2), float(call)))
        assert recorder(state) is None                   # it only looks
    assert [(sigma, float(d[0, 0, 0, 0])) for sigma, d in sink] == [(2.0, 1.0), (1.0, 3.0)]


def test_examples_subset_and_concatenate_keep_the_columns_aligned():
    examples = CheckerExamples(np.arange(4 * 12, dtype=np.uint8).reshape(4, 2, 2, 3), np.array([1, 0, 1, 0], bool),
                               np.array([0, 0, 1, 1]), np.array([0, 2, 0, 2], np.float32))
    both = CheckerExamples.concatenate([examples.subset(examples.groups == 1), examples.subset(examples.groups == 0)])
    assert len(both) == 4 and both.groups.tolist() == [1, 1, 0, 0] and both.images[0, 0, 0, 0] == 24


def _generate_graph(**inputs) -> dict:
    model = {"node": "model", "output": "model"}
    return {"format_version": 1, "nodes": {
        "model": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world_v2.safetensors"}},
        "generate": {"type": "safety.GenerateCheckerExamples", "inputs": {
            "model": model, "text_encoder": {"node": "model", "output": "text_encoder"},
            "vae": {"node": "model", "output": "vae"}, "count": 6, "steps": 4, "sizes": "64x64, 48x80",
            "max_sigma": 3.5, "label_rule": "detector", **inputs}},
    }}


@needs_model
def test_generate_checker_examples_labels_each_run_by_its_finished_image(session):
    """Six runs at two sizes: one finished view per run (sigma 0) plus its predictions below max_sigma, all 64-px
    views, every example of a run labelled alike; the concept rate is over finished images."""
    result = session.run(_generate_graph(), outputs=["generate"]).outputs["generate"]
    examples = result["examples"]
    assert examples.images.shape[1:] == (64, 64, 3) and examples.images.dtype == np.uint8
    assert sorted(np.unique(examples.groups).tolist()) == list(range(6))
    assert int((examples.sigmas == 0).sum()) == 6 and examples.sigmas.max() <= 3.5
    assert len(examples) > 6                                   # predictions were recorded too
    for group in range(6):
        assert len(np.unique(examples.labels[examples.groups == group])) == 1
    assert result["concept_rate"] == pytest.approx(examples.labels[examples.sigmas == 0].mean())


@needs_model
def test_label_rule_agree_keeps_only_runs_whose_image_matches_the_prompt(session):
    """With label_rule 'agree' every kept run's label is what its prompt asked (a third of the prompts ask for a
    star), and `kept` is the share of runs kept."""
    from nodegraph_safety.concepts import parse_concept

    result = session.run(_generate_graph(count=9, steps=12, sizes="64x64", label_rule="agree"),
                         outputs=["generate"]).outputs["generate"]
    examples, asked = result["examples"], [parse_concept("star").matches(scene)
                                           for scene, _ in example_scenes(parse_concept("star"), 9, 0)]
    kept = np.unique(examples.groups)
    assert result["kept"] == pytest.approx(len(kept) / 9) and len(kept) >= 6
    for group in kept:
        assert set(examples.labels[examples.groups == group].tolist()) == {asked[group]}


@needs_model
@pytest.mark.parametrize(("inputs", "name", "words"), [
    ({"sizes": "64x60"}, "sizes", "multiple of 8"),
    ({"concept": "dragon"}, "concept", "not a word of the tiny world"),
])
def test_generate_checker_examples_bad_inputs_name_the_input(session, inputs, name, words):
    with pytest.raises(NodeExecutionError, match=words) as info:
        session.run(_generate_graph(**inputs), outputs=["generate"])
    assert info.value.exception.input == name


def test_generate_checker_examples_refuses_another_checkpoints_text_encoder(session):
    """The SD1 UNet with the flow checkpoint's text encoder fails up front on `text_encoder`, naming the fix."""
    graph = _generate_graph()
    graph["nodes"]["model"]["inputs"]["ckpt_name"] = "tiny_world_v4.safetensors"
    graph["nodes"]["flow"] = {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world_flow.safetensors"}}
    graph["nodes"]["generate"]["inputs"]["text_encoder"] = {"node": "flow", "output": "text_encoder"}
    with pytest.raises(NodeExecutionError, match="connect the one of the model's own checkpoint") as info:
        session.run(graph, outputs=["generate"])
    assert info.value.exception.input == "text_encoder"


@needs_model
def test_training_graph_runs_small_and_too_few_runs_name_generated(tmp_path):
    """plugins/safety/graphs/train_safety_checker_generated.json, shrunk: it generates, trains on renders + generated
    examples, reports both accuracies and writes the checker into the model folder; 3 runs cannot be split."""
    session = Session(autoload=True, allow=["safety"],
                      model_paths=ModelPaths(roots=[tmp_path / "models", ROOT / "models"]))
    graph = json.loads((PLUGIN / "graphs" / "train_safety_checker_generated.json").read_text())
    small = {"generate.count": 24, "generate.steps": 3, "generate.sizes": "64x64", "generate.label_rule": "detector",
             "train.count": 120, "train.steps": 3, "train.eval_count": 60}
    result = session.run(graph, overrides=small, output_dir=tmp_path / "out")
    [written] = result.outputs["save"]["model_files"]
    assert Path(written["path"]).parent == tmp_path / "models" / "safety_checker"
    for name in ("accuracy", "render_accuracy", "star_rate", "kept"):
        assert 0.0 <= result.outputs[name]["value"] <= 1.0
    with pytest.raises(NodeExecutionError, match="too few") as info:
        session.run(graph, overrides={**small, "generate.count": 3}, outputs=["train"])
    assert info.value.exception.input == "generated"
