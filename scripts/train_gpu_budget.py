"""Run training graphs one after another inside a fixed wall-clock budget (how the v3 files were made on a GPU).

    python scripts/train_gpu_budget.py --seconds 420 --out DIR GRAPH:TRAIN_NODE:SHARE [...]

The graphs are ordinary training graphs (graphs/train/); later ones may load the files earlier
ones save. The only thing this script chooses is each training node's ``steps``:

1. calibrate: run the graph's training node alone on a small dataset (``--calibration-count``
   images, ``--calibration-steps`` steps, its own run folder) and time the steps from the
   progress events (the first ``warm`` steps are left out: CUDA start-up, autotuning);
2. run the whole graph with ``steps`` = the stage's share of the time left, minus its estimated
   data preparation, divided by the time per step (rounded down to 100, at least 100).

The graph exactly as run (with that ``steps``) is written to ``--out`` beside a JSON line per
stage (steps, seconds per step, wall time, the training report), so the result can be repeated
with ``nodegraph run`` and checked. Nothing here is specific to a GPU; on a CPU it works the same,
only with fewer steps.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _stage(text: str) -> tuple[Path, str, float]:
    """GRAPH:TRAIN_NODE:SHARE -> (graph path, training node id, share > 0); argparse reports a bad one."""
    parts = text.rsplit(":", 2)
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected GRAPH:TRAIN_NODE:SHARE, found {text!r}")
    path, node, share = parts
    try:
        value = float(share)
    except ValueError:
        raise argparse.ArgumentTypeError(f"the share in {text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"the share in {text!r} must be above 0")
    return Path(path), node, value


def _dataset_node(graph: dict, train_node: str) -> str:
    """The id of the node feeding the training node's `dataset` input (its `count` is calibrated)."""
    source = graph["nodes"][train_node]["inputs"].get("dataset")
    if not isinstance(source, dict) or "node" not in source:
        raise ValueError(f"node {train_node!r} has no linked 'dataset' input: name the graph's training node")
    return source["node"]


def _timed_run(session, graph: dict, train_node: str, overrides: dict, outputs=None) -> dict:
    """Run `graph`; wall time, time of the first and of each training progress event."""
    stamps: dict[int, float] = {}

    def sink(event) -> None:
        if getattr(event, "type", "") == "node_progress" and getattr(event, "node_id", "") == train_node:
            stamps[int(event.value)] = time.monotonic()

    start = time.monotonic()
    result = session.run(graph, overrides=overrides, outputs=outputs, on_event=sink)
    return {"start": start, "end": time.monotonic(), "stamps": stamps, "result": result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stages", nargs="+", type=_stage, help="GRAPH:TRAIN_NODE:SHARE")
    parser.add_argument("--seconds", type=float, required=True, help="wall-clock budget for all stages")
    parser.add_argument("--out", type=Path, required=True, help="folder for the graphs as run and the log")
    parser.add_argument("--calibration-count", type=int, default=2048)
    parser.add_argument("--calibration-steps", type=int, default=60)
    parser.add_argument("--warm", type=int, default=20)
    parser.add_argument("--seconds-per-image", type=float, default=0.0012,
                        help="estimated data preparation per dataset image (render + encode), for the budget")
    args = parser.parse_args(argv)

    from nodegraph import Session

    deadline = time.monotonic() + args.seconds
    args.out.mkdir(parents=True, exist_ok=True)
    session = Session(output_dir=ROOT / "output")
    log = (args.out / "stages.jsonl").open("a", encoding="utf-8")
    graphs = []
    for path, train_node, _ in args.stages:   # every stage checked before any training starts
        try:
            graph = json.loads((ROOT / path).read_text(encoding="utf-8"))
            if train_node not in graph.get("nodes", {}):
                raise ValueError(f"no node {train_node!r}; its nodes: {', '.join(graph.get('nodes', {}))}")
            _dataset_node(graph, train_node)
        except (OSError, ValueError) as exc:
            parser.error(f"{path}: {exc}")
        graphs.append(graph)
    for index, ((path, train_node, share), graph) in enumerate(zip(args.stages, graphs)):
        data_node = _dataset_node(graph, train_node)
        name = graph["nodes"][train_node]["inputs"].get("run_name", train_node)
        calibration = _timed_run(session, graph, train_node, {
            f"{data_node}.count": args.calibration_count, f"{train_node}.steps": args.calibration_steps,
            f"{train_node}.checkpoint_every": 0, f"{train_node}.run_name": f"calibration/{name}"},
            outputs=[train_node])
        stamps = calibration["stamps"]
        last = max(stamps)
        per_step = (stamps[last] - stamps[args.warm]) / (last - args.warm)
        preparation = stamps[1] - calibration["start"]
        count = int(graph["nodes"][data_node]["inputs"].get("count", 20000))
        estimated_preparation = preparation + args.seconds_per_image * count
        shares_left = sum(s for _, _, s in args.stages[index:])
        budget = (deadline - time.monotonic()) * share / shares_left - estimated_preparation
        steps = max(100, int(budget / per_step) // 100 * 100)
        graph["nodes"][train_node]["inputs"]["steps"] = steps
        print(f"[{path.name}] {per_step * 1000:.1f} ms/step (calibration), preparation ~{estimated_preparation:.0f} s, "
              f"budget {budget:.0f} s -> {steps} steps", flush=True)
        run = _timed_run(session, graph, train_node, {})
        stamps = run["stamps"]
        measured = (stamps[max(stamps)] - stamps[1]) / max(1, max(stamps) - 1)
        report = run["result"].outputs.get("report", {})
        (args.out / path.name).write_text(json.dumps(graph, indent=2) + "\n", encoding="utf-8")
        line = {"graph": str(path), "steps": steps, "calibration_s_per_step": per_step,
                "measured_s_per_step": measured, "preparation_s": stamps[1] - run["start"],
                "wall_s": run["end"] - run["start"], "report": str(report)[:4000]}
        log.write(json.dumps(line) + "\n")
        log.flush()
        print(f"[{path.name}] {steps} steps in {line['wall_s']:.0f} s ({measured * 1000:.1f} ms/step, "
              f"preparation {line['preparation_s']:.0f} s)", flush=True)
        session.clear_cache()     # the next stage loads what this one saved; free the datasets
    return 0


if __name__ == "__main__":
    sys.exit(main())
