"""The #16 training graphs (graphs/train/, v2, v3 and v4) run at smoke size: 8 images, 2 steps per trainer, files written to tmp."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodegraph import Session
from nodegraph.model_paths import ModelPaths

ROOT = Path(__file__).resolve().parents[2]
SMOKE = {"TinyWorldDataset": {"count": 8}, "TrainVAE": {"steps": 2, "batch_size": 2, "checkpoint_every": 0},
         "TrainDiffusion": {"steps": 2, "batch_size": 2, "warmup_steps": 1, "checkpoint_every": 0},
         "DistillLCM": {"steps": 2, "batch_size": 2, "warmup_steps": 1, "checkpoint_every": 0},
         "TrainControlNet": {"steps": 2, "batch_size": 2, "warmup_steps": 1, "checkpoint_every": 0},
         "DistillTextEncoder": {"steps": 2, "batch_size": 2, "warmup_steps": 1, "checkpoint_every": 0}}


def smoke(name: str) -> dict:
    """graphs/train/<name> with every dataset and trainer shrunk to smoke size."""
    graph = json.loads((ROOT / "graphs" / "train" / name).read_text())
    for node in graph["nodes"].values():
        node["inputs"].update(SMOKE.get(node["type"], {}))
    return graph


@pytest.mark.parametrize("name, written", [
    ("train_tiny_world_v2.json", "checkpoints/tiny_world_v2.safetensors"),
    ("train_tiny_lcm.json", "loras/tiny_world_lcm.safetensors"),
    ("train_tiny_controlnet.json", "controlnet/tiny_world_mask_v2.safetensors"),
    ("train_tiny_world_v3.json", "checkpoints/tiny_world_v3.safetensors"),
    ("train_tiny_lcm_v3.json", "loras/tiny_world_lcm_v3.safetensors"),
    ("train_tiny_controlnet_v3.json", "controlnet/tiny_world_mask_v3.safetensors"),
    ("train_tiny_world_v4.json", "checkpoints/tiny_world_v4.safetensors"),
    ("train_tiny_world_v4_distill.json", "checkpoints/tiny_world_v4_distill.safetensors"),
])
def test_training_graph_runs_at_smoke_size(tmp_path, name, written):
    """The graph validates, trains for 2 steps from the shipped model and writes its file under tmp, not models/
    (as NAME_1 when the shipped file has the name: the models/ root is searched too)."""
    session = Session(model_paths=ModelPaths(roots=[tmp_path / "models", ROOT / "models"]),
                      output_dir=tmp_path / "out")
    graph = smoke(name)
    assert session.validate(graph) == []
    shipped = ROOT / "models" / written
    before = shipped.stat().st_mtime_ns if shipped.exists() else None
    session.run(graph)
    if shipped.exists():        # a name the loaders would resolve to the shipped file is not taken: NAME_1
        written = written.replace(".safetensors", "_1.safetensors")
    assert (tmp_path / "models" / written).is_file()
    assert (shipped.stat().st_mtime_ns if shipped.exists() else None) == before    # the shipped file is untouched
