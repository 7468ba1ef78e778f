"""Write a text-to-points model file from a training run's latest checkpoint (its EMA weights).

    .venv/bin/python plugins/threed/benchmarks/export_checkpoint.py GRAPH OUTPUT_DIR MODEL_FILE

GRAPH is the training graph that started the run (its TrainTextToPoints inputs identify the run),
OUTPUT_DIR the output folder it ran with. For a run that must ship before its last step; a run that
finished writes its model itself (SaveTextToPoints).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from nodegraph import api
from nodegraph_threed.denoiser import PointDiffusionConfig, PointDiffusionTransformer
from nodegraph_threed.training import ema_from_checkpoint, run_identity, save_model


def main() -> None:
    graph_path, output_dir, model_file = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    inputs = json.loads(graph_path.read_text())["nodes"]["train"]["inputs"]
    kit = api.training()
    config = kit.TrainConfig(steps=inputs["steps"], batch_size=inputs["batch_size"], lr=inputs["lr"],
                             warmup_steps=inputs["warmup_steps"], ema_decay=inputs["ema_decay"], seed=inputs["seed"],
                             checkpoint_every=inputs["checkpoint_every"])
    net = PointDiffusionTransformer(PointDiffusionConfig(width=inputs["width"], layers=inputs["layers"],
                                                         heads=inputs["heads"]))
    run = kit.TrainingRun(output_dir / "training" / inputs["run_name"],
                          run_identity(net.config, config, inputs["points"], inputs["caption_dropout"]))
    torch.set_num_threads(1)
    step = ema_from_checkpoint(net, kit, run)
    save_model(model_file, net.eval(), {"exported_from_checkpoint": True, "step": step, "of_steps": config.steps})
    print(f"wrote {model_file} from step {step} of {config.steps}")


if __name__ == "__main__":
    main()
