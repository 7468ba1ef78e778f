"""Ray worker pool: txt2img throughput with 1 vs 2 workers, scheduling overhead, first image warm vs cold.

    .venv/bin/python benchmarks/ray_scaling.py [--runs 40] [--overhead-runs 200] [--steps 20] [--json FILE]

One local Ray cluster on 127.0.0.1 (this machine's CPUs), workers of 1 CPU (1 torch thread) each.
Prints:
- throughput: --runs txt2img runs of the shipped tiny-world model (graphs/txt2img.json, a different
  seed each, so nothing is served from cache) in this process, then through Session.map on a pool
  of 1 worker and of 2 workers; runs/s and speed-up over 1 worker. This machine has CPUs only: the
  GPU figure (one worker per GPU, `--worker-gpus 1`) needs a GPU machine.
- scheduling overhead: a trivial graph (Int → ShowValue) run one at a time, --overhead-runs times,
  here (Session.run) and on the pool (acquire + stream + outcome); the difference per run is the
  overhead the pool adds (target ≤ 20 ms per run, issue 18).
- first image, warm vs cold: a fresh worker's first txt2img run (imports done, model not loaded),
  and the same worker's next run with another seed (model warm in its cache) — what model-affinity
  scheduling saves each time it sends a run to the warm worker.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from nodegraph import Session  # noqa: E402
from nodegraph.distributed.pool import WorkerPool, needs_for  # noqa: E402

TXT2IMG = json.loads((ROOT / "graphs" / "txt2img.json").read_text())
TRIVIAL = {"format_version": 1, "nodes": {"v": {"type": "Int", "inputs": {"value": 1}},
                                          "s": {"type": "ShowValue", "inputs": {"value": {"node": "v", "output": "value"}}}}}


def throughput(session: Session, pool: WorkerPool | None, runs: int, steps: int, first_seed: int, out: Path) -> float:
    """Runs per second of `runs` txt2img variants (distinct seeds)."""
    variants = [{"sampler.seed": first_seed + i, "sampler.steps": steps} for i in range(runs)]
    started = time.perf_counter()
    items = session.map(TXT2IMG, variants, output_dir=out, pool=pool)
    seconds = time.perf_counter() - started
    failed = [i for i in items if i.status != "succeeded"]
    if failed:
        raise SystemExit(f"{len(failed)} run(s) failed: {failed[0].error}")
    return runs / seconds


def scheduling_overhead(session: Session, pool: WorkerPool, runs: int) -> tuple[float, float]:
    """(median ms per trivial run here, median ms per trivial run on the pool), one run at a time."""
    graph = session.load(TRIVIAL)
    needs = needs_for(session.registry, graph)
    here, remote = [], []
    for i in range(runs):
        overrides = {"v.value": i}
        started = time.perf_counter()
        session.run(graph, overrides=overrides)
        here.append(time.perf_counter() - started)
        request = {"run_id": f"overhead-{i}", "graph": graph.with_overrides(overrides).to_dict(), "outputs": None,
                   "inputs": {}}
        started = time.perf_counter()
        outcome = pool.execute(request, needs)
        remote.append(time.perf_counter() - started)
        assert outcome["status"] == "succeeded", outcome
    return statistics.median(here) * 1000, statistics.median(remote) * 1000


def first_image(session: Session, pool: WorkerPool, steps: int, out: Path) -> tuple[float, float]:
    """(seconds to the first image on a fresh worker, on the same worker once warm)."""
    cold = session.map(TXT2IMG, [{"sampler.seed": 90_001, "sampler.steps": steps}], output_dir=out, pool=pool)[0]
    warm = session.map(TXT2IMG, [{"sampler.seed": 90_002, "sampler.steps": steps}], output_dir=out, pool=pool)[0]
    assert cold.status == warm.status == "succeeded" and cold.worker == warm.worker
    return cold.seconds, warm.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--overhead-runs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path("/tmp/nodegraph-ray-scaling")
    session = Session(output_dir=out)
    figures: dict[str, float] = {}

    figures["here_runs_per_s"] = throughput(session, None, max(4, args.runs // 4), args.steps, 0, out / "here")
    print(f"txt2img here (1 thread, {max(4, args.runs // 4)} runs): {figures['here_runs_per_s']:.2f} runs/s", flush=True)

    # Both pools live on one local cluster (3 logical CPUs: idle actors use none) and the throughput
    # rounds alternate between them, so a change in the machine's load hits both alike.
    one = WorkerPool(workers=1, local_cpus=3, session_options={"autoload": False})
    one.start()
    two = WorkerPool(workers=2, session_options={"autoload": False})
    two.start()
    cold, warm = first_image(session, one, args.steps, out / "first")
    figures["first_image_cold_s"], figures["first_image_warm_s"] = cold, warm
    print(f"first image on a fresh worker: {cold:.2f} s; on the same worker once warm: {warm:.2f} s", flush=True)
    here_ms, pool_ms = scheduling_overhead(session, one, args.overhead_runs)
    figures["trivial_here_ms"], figures["trivial_pool_ms"] = here_ms, pool_ms
    figures["overhead_ms"] = pool_ms - here_ms
    print(f"trivial graph, median of {args.overhead_runs}: here {here_ms:.2f} ms, on a worker {pool_ms:.2f} ms "
          f"→ scheduling overhead {pool_ms - here_ms:.2f} ms per run (target ≤ 20 ms)", flush=True)
    throughput(session, two, 2, args.steps, 5000, out / "warmup")      # both workers load the model
    rounds = 4
    per_round = max(1, args.runs // rounds)
    seconds = {1: 0.0, 2: 0.0}
    for r in range(rounds):
        for count, pool in ((1, one), (2, two)):
            seconds[count] += per_round / throughput(session, pool, per_round, args.steps,
                                                     10_000 * count + per_round * r, out / f"pool{count}")
    runs = per_round * rounds
    figures["one_worker_runs_per_s"] = runs / seconds[1]
    figures["two_workers_runs_per_s"] = runs / seconds[2]
    figures["speedup"] = speedup = seconds[1] / seconds[2]
    print(f"txt2img, {runs} runs each in {rounds} alternating rounds: 1 worker {runs / seconds[1]:.2f} runs/s, "
          f"2 workers {runs / seconds[2]:.2f} runs/s (×{speedup:.2f}; {os.cpu_count()} CPUs here, load average "
          f"{os.getloadavg()[0]:.1f}; GPU figures need a GPU machine)", flush=True)
    one.close(shutdown=False)
    two.close()
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
