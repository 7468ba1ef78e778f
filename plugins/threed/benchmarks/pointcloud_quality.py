"""Text-to-points quality on held-out prompts: shape and colour accuracy, Chamfer distance, time per sample.

    .venv/bin/python plugins/threed/benchmarks/pointcloud_quality.py [--limit N] [--steps 24] [--cfg 3]

For each of the 108 held-out shape specs (attribute combinations the model never trained on; shapes.py)
the shipped model is sampled through the public API (`api.diffusion_model` + `api.sample`: the core
samplers and CFG, the same path as the KSampler node) at 1024 points, then judged:

* shape correct — the PointNet classifier (benchmarks/shape_classifier.safetensors, trained on the
  procedural shapes) names the prompt's solid; and, as a second judge, a 1-nearest-neighbour
  classifier (Chamfer distance to one normalised ground-truth cloud of each of the 432 specs);
* colour correct — the palette colour nearest the cloud's median rgb is the prompt's;
* Chamfer distance (metrics.chamfer_distance, scene units) to a fresh ground-truth cloud of the prompt's
  spec, against two references: a *random-shape baseline* (a random other spec's ground truth vs the
  prompt's) and the *floor* (two independent ground-truth clouds of the prompt's spec);
* extent error — mean relative error of the bounding-box size per axis (size and stretch);
* time per sample on the CPU (batched sampling, wall time / samples, with the thread count used), and the
  process's CPU time per sample (what the sampling costs, whatever else the machine is running).

Writes the numbers to benchmarks/pointcloud_quality.json (the generated clouds beside it, .safetensors)
and a contact sheet of the first 24 samples
(with their prompts' ground truth beside them) to benchmarks/pointcloud_quality.png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
MODELS = HERE.parent / "models"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODELS / "text_to_points.safetensors")
    parser.add_argument("--classifier", type=Path, default=Path(__file__).resolve().parent / "shape_classifier.safetensors")
    parser.add_argument("--points", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--cfg", type=float, default=1.0)
    parser.add_argument("--sampler", default="dpmpp_2m")
    parser.add_argument("--scheduler", default="karras")
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--limit", type=int, default=0, help="only N held-out prompts, spread evenly over the list (0 = all 108)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "pointcloud_quality.json")
    parser.add_argument("--sheet", type=Path, default=HERE / "pointcloud_quality.png")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from nodegraph import NodeContext, Session, api

    import nodegraph_threed.nodes as plugin
    from nodegraph_threed.classifier import classify, load_classifier
    from nodegraph_threed.metrics import chamfer_distance, colour_name, extents, nearest_shape, reference_bank
    from nodegraph_threed.points import latent_to_points
    from nodegraph_threed.shapes import all_specs, held_out_specs, sample_spec
    from nodegraph_threed.text import encode_batch, encode_words
    from nodegraph_threed.training import load_model

    session = Session(plugins=[plugin], autoload=False)
    context = NodeContext("benchmark", "pointcloud_quality", lambda *event: None, lambda node_id: None,
                          session.services)
    net = load_model(args.model)
    model = plugin.wrap_model(context, net, "text-to-points (benchmark)")
    judge = load_classifier(args.classifier)
    bank = reference_bank()
    specs = held_out_specs()
    if args.limit:                                   # an even spread over the shapes, not the first N
        specs = specs[:: max(1, len(specs) // args.limit)][: args.limit]
    everything = all_specs()
    negative = {"words": encode_words("")}
    rows, clouds, seconds, cpu_seconds = [], [], 0.0, 0.0
    for start in range(0, len(specs), args.batch):
        chunk = specs[start:start + args.batch]
        positive = {"words": encode_batch([s.caption for s in chunk])}
        latent = {"samples": torch.zeros(len(chunk), 6, args.points)}
        began, began_cpu = time.perf_counter(), time.process_time()
        out = api.sample(context, model, positive, negative, latent, seed=args.seed + start, steps=args.steps,
                         cfg=args.cfg, sampler=args.sampler, scheduler=args.scheduler)
        seconds += time.perf_counter() - began
        cpu_seconds += time.process_time() - began_cpu
        points = latent_to_points(out["samples"])
        shapes = classify(judge, points)
        for k, (spec, cloud, shape) in enumerate(zip(chunk, points, shapes)):
            index = start + k
            generator = torch.Generator().manual_seed(10_000 + index)
            truth = sample_spec(spec, args.points, generator)
            truth_again = sample_spec(spec, args.points, generator)
            other = everything[int(torch.randint(len(everything), (), generator=generator))]
            while other == spec:
                other = everything[int(torch.randint(len(everything), (), generator=generator))]
            target_extent = extents(truth)
            rows.append({
                "prompt": spec.caption, "shape": spec.shape, "predicted_shape": shape,
                "nearest_shape": nearest_shape(cloud, bank),
                "colour": spec.colour, "predicted_colour": colour_name(cloud),
                "chamfer": chamfer_distance(cloud, truth),
                "chamfer_random_shape": chamfer_distance(sample_spec(other, args.points, generator), truth),
                "chamfer_floor": chamfer_distance(truth_again, truth),
                "extent_error": float(((extents(cloud) - target_extent).abs() / target_extent).mean()),
            })
            clouds.append((cloud, truth))
        done = len(rows)
        print(f"{done}/{len(specs)}: shape {sum(r['shape'] == r['predicted_shape'] for r in rows) / done:.3f} "
              f"colour {sum(r['colour'] == r['predicted_colour'] for r in rows) / done:.3f} "
              f"({seconds / done:.2f} s/sample)", flush=True)

    count = len(rows)
    mean = lambda key: sum(r[key] for r in rows) / count                      # noqa: E731
    summary = {
        "prompts": count, "held_out": True, "points": args.points, "steps": args.steps, "cfg": args.cfg,
        "sampler": args.sampler, "scheduler": args.scheduler, "threads": args.threads, "batch": args.batch,
        "shape_accuracy": sum(r["shape"] == r["predicted_shape"] for r in rows) / count,
        "shape_accuracy_nearest_neighbour": sum(r["shape"] == r["nearest_shape"] for r in rows) / count,
        "colour_accuracy": sum(r["colour"] == r["predicted_colour"] for r in rows) / count,
        "chamfer": mean("chamfer"), "chamfer_random_shape_baseline": mean("chamfer_random_shape"),
        "chamfer_floor_same_shape": mean("chamfer_floor"), "extent_relative_error": mean("extent_error"),
        "seconds_per_sample": seconds / count, "cpu_seconds_per_sample": cpu_seconds / count,
        "per_shape_accuracy": {shape: sum(r["predicted_shape"] == shape for r in rows if r["shape"] == shape)
                               / max(1, sum(r["shape"] == shape for r in rows))
                               for shape in sorted({r["shape"] for r in rows})},
        "model": args.model.name, "model_bytes": args.model.stat().st_size,
    }
    args.out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    from safetensors.torch import save_file

    save_file({"generated": torch.stack([c for c, _ in clouds]).contiguous()}, str(args.out.with_suffix(".safetensors")),
              metadata={"prompts": json.dumps([r["prompt"] for r in rows])})
    print(json.dumps(summary, indent=1))
    _contact_sheet(args.sheet, clouds[:24], [r["prompt"] for r in rows[:24]])


def _contact_sheet(path: Path, pairs: list, prompts: list[str]) -> None:
    """Generated (left) and ground truth (right) for each prompt, 4 pairs per row, captions underneath."""
    from PIL import Image, ImageDraw

    from nodegraph_threed.render import render_points

    tile, label = 128, 14
    columns = 4
    rows = (len(pairs) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * 2 * tile, rows * (tile + label)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, ((cloud, truth), prompt) in enumerate(zip(pairs, prompts)):
        images = render_points(torch.stack([cloud, truth]), tile, [30.0], projection="perspective", radius=1.4)
        x, y = (k % columns) * 2 * tile, (k // columns) * (tile + label)
        for j in range(2):
            sheet.paste(Image.fromarray((images[j] * 255).byte().numpy()), (x + j * tile, y))
        draw.text((x + 3, y + tile + 1), prompt, fill=(0, 0, 0))
    sheet.save(path)


if __name__ == "__main__":
    main()
