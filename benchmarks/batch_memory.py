"""Peak memory of one large batch: txt2img on the shipped model, with and without batch slicing.

    .venv/bin/python benchmarks/batch_memory.py [--batch 1024] [--size 128] [--steps 1]

A graph that validation allows (EmptyLatent's cap is on the latent, not on what the networks need) can ask for
4,096 images at once; the networks' activations are hundreds of times the latent's size. The denoising network
now sees at most `ModelDenoiser.MAX_ELEMENTS_AT_ONCE` latent elements a call and the VAE at most
`VAE_CHUNK_PIXELS` image pixels (docs/security.md). Each mode runs in a fresh process (peak RSS is per process):
- sliced: as shipped;
- whole:  both limits lifted (the batch in one call, as before).
Prints per mode: the decoded batch's shape, peak RSS (MB, ru_maxrss), wall seconds, and the largest difference
between the two modes' images (slicing must not change the result).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _child(mode: str, batch: int, size: int, steps: int, out: str) -> None:
    sys.path.insert(0, str(ROOT))
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    from nodegraph import Session
    from nodes.models import nodes as model_nodes
    from nodes.sampling.denoisers import ModelDenoiser

    if mode == "whole":
        ModelDenoiser.MAX_ELEMENTS_AT_ONCE = 1 << 40
        model_nodes.VAE_CHUNK_PIXELS = 1 << 40
    graph = json.loads((ROOT / "graphs" / "txt2img.json").read_text())
    graph["nodes"]["latent"]["inputs"].update(width=size, height=size, batch_size=batch)
    graph["nodes"]["sampler"]["inputs"]["steps"] = steps
    del graph["nodes"]["save"]
    session = Session()
    started = time.perf_counter()
    image = session.run(graph, outputs=["decode"]).outputs["decode"]["image"]
    seconds = time.perf_counter() - started
    torch.save(image[:: max(1, batch // 16)].clone(), out)       # a sample of the batch, to compare the modes
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(json.dumps({"mode": mode, "shape": list(image.shape), "peak_mb": peak, "seconds": round(seconds, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--modes", nargs="+", default=["sliced", "whole"], choices=["sliced", "whole"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.batch, args.size, args.steps, args.out)
        return
    import torch

    samples = {}
    print(f"txt2img, batch {args.batch} at {args.size}x{args.size}, {args.steps} step(s), CFG 5")
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes:
            out = str(Path(tmp) / f"{mode}.pt")
            done = subprocess.run([sys.executable, __file__, "--child", mode, "--batch", str(args.batch),
                                   "--size", str(args.size), "--steps", str(args.steps), "--out", out],
                                  capture_output=True, text=True, cwd=ROOT)
            if done.returncode:
                print(f"{mode:>7}: failed ({done.returncode}): {done.stderr.strip()[-500:]}")
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            samples[mode] = torch.load(out)
            print(f"{mode:>7}: image {tuple(row['shape'])}, peak RSS {row['peak_mb']} MB, {row['seconds']} s")
    if len(samples) == 2:
        difference = float((samples["sliced"] - samples["whole"]).abs().max())
        print(f"largest difference between the modes' images: {difference:.2e}")


if __name__ == "__main__":
    main()
