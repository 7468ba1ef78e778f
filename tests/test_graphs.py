"""Every saved graph in graphs/ validates and runs headless."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodegraph import Session

GRAPHS = sorted((Path(__file__).resolve().parents[1] / "graphs").glob("*.json"))


@pytest.fixture(scope="module")
def session() -> Session:
    return Session()


@pytest.mark.parametrize("path", GRAPHS, ids=[p.stem for p in GRAPHS])
def test_graph_validates_and_runs(session, path):
    """The graph has no validation errors and runs to completion."""
    assert session.validate(path) == []
    result = session.run(path)
    assert result.outputs


ROOT = Path(__file__).resolve().parents[1]
TRAINING_GRAPHS = sorted((ROOT / "graphs" / "train").glob("*.json"))


def _description(path: Path) -> str:
    import json

    return json.loads(path.read_text())["metadata"]["description"]


def _default_checkpoint() -> str:
    """The shipped default model: the checkpoint the README's main graph (txt2img.json) loads."""
    import json

    nodes = json.loads((ROOT / "graphs" / "txt2img.json").read_text())["nodes"]
    return nodes["checkpoint"]["inputs"]["ckpt_name"].removesuffix(".safetensors")


@pytest.mark.parametrize("path", GRAPHS + TRAINING_GRAPHS, ids=[p.stem for p in GRAPHS + TRAINING_GRAPHS])
def test_a_description_that_names_the_default_model_names_the_current_one(path):
    """train_tiny_lcm.json said "the default is now tiny_world_v4" long after v6f became the default."""
    import re

    for named in re.findall(r"default is now (tiny_world\w*)", _description(path)):
        assert named == _default_checkpoint(), f"{path.name} says the default is {named}"


@pytest.mark.parametrize("path", GRAPHS, ids=[p.stem for p in GRAPHS])
def test_a_demo_names_the_training_graph_of_the_lora_it_loads(path):
    """sampler_comparison.json loads tiny_world_lcm_v3 but credited train_tiny_lcm.json (which makes
    tiny_world_lcm): a demo that names a training graph for its LoRA names the one that writes that file."""
    import json
    import re

    nodes = json.loads(path.read_text())["nodes"].values()
    loras = {n["inputs"]["lora_name"] for n in nodes if isinstance(n.get("inputs", {}).get("lora_name"), str)}
    named = set(re.findall(r"graphs/train/(train_\w+\.json)", _description(path)))
    for lora in loras:
        makers = {p.name for p in TRAINING_GRAPHS if f'"filename": "{lora}"' in p.read_text()}
        if makers and named & {p.name for p in TRAINING_GRAPHS if "lora" in p.read_text().lower()}:
            assert named & makers, f"{path.name} loads {lora}, made by {sorted(makers)}; it names {sorted(named)}"


def test_the_outpaint_demo_visibly_extends_the_object(session):
    """The outpaint demo padded only flat background, so its result looked like its input: the crop now cuts
    the object, and the generated strip holds some of it (pixels far from the background's colour)."""
    import json

    graph = json.loads((ROOT / "graphs" / "outpaint.json").read_text())
    graph["nodes"]["show"] = {"type": "ShowValue", "inputs": {"value": {"node": "composite", "output": "image"}}}
    result = session.run(graph).outputs["show"]["value"][0]                  # (64, 64, 3)
    background = result[:4].reshape(-1, 3).median(0).values
    strip = result[:, 40:]                                                    # the 24 px ImagePad added
    assert ((strip - background).abs().amax(-1) > 0.3).sum() > 50
