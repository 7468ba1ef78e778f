"""Quality and speed of the tiny text-to-video model, read back by the tiny world's detector frame by frame.

    .venv/bin/python plugins/video/benchmarks/video_quality.py [--count 120] [--steps 12] [--frames 8]
        [--motion tiny_world_motion.safetensors] [--checkpoint tiny_world.safetensors] [--strength S]
        [--noise-correlation C] [--cross-frame MODE] [--steady S [--steady-statistic median|mean]
        [--steady-sigma-low L]] [--baseline] [--timing] [--sheet PATH]

Each prompt is a held-out clip (a motion–shape pair or a colour–shape pair training never showed;
``animated_world.sample_clip(held_out=True)``), sampled with the plugin's txt2vid graph (the shipped
checkpoint + motion module, or --checkpoint's; TinyWorldVideoPrompt, SampleVideo, DPM++ 2M / Karras, CFG 5)
and decoded;
every frame goes through ``detect``. Per clip:

- motion correct: moves — the detected centre travelled ≥ 12 px the right way (``read_motion``);
  grow / shrink — the bounding box's side grew / shrank by ≥ 8 px; colour change — the first frame
  has the first colour and the last frame the second.
- colour and shape constant: an object is found in every frame and its colour and shape are the same
  in every frame and are the prompt's (colour-change clips: shape only).
- attributes: the first and the last frame each match their keyframe scene in background, colour,
  shape, size and position.
- smooth (not a target; what the motion module is for): one object in every frame, and its path
  follows the intended one — moves: every frame's centre within 6 px of the straight path between
  the anchors; grow / shrink: every frame's size within 5 px of the linear ramp; still and colour
  clips: the centre never moves more than 4 px.

``--baseline`` also runs the same prompts without the motion module (frames sampled independently
from the same per-frame conditioning), which shows what the motion module adds. ``--timing`` measures
one 16-frame clip (20 steps) whole and in 8-frame context windows. Targets (issue 13): motion ≥ 90 %,
constant ≥ 95 %, attributes ≥ 90 %.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

PLUGIN = Path(__file__).resolve().parents[1]
ROOT = PLUGIN.parents[1]
sys.path.insert(0, str(ROOT))

from nodegraph import Session, api  # noqa: E402
from nodegraph_video.animated_world import MOVES, parse_video_caption, read_motion, sample_clip, video_caption  # noqa: E402


def clip_graph(caption: str, seed: int, steps: int, frames: int, motion: str | None,
               context_length: int = 0, strength: float = 1.0, noise_correlation: float = 0.0,
               cross_frame: str = "", cross_strength: float = 1.0, free_init: int = 1,
               checkpoint: str = "", steady: dict | None = None) -> dict:
    """The txt2vid graph for one caption, ending at the decoded frames (no files written).

    ``steady``: ClipConsistencyGuidance inputs for the sampler's guidance (node "steady", added when the graph has
    none); ``{"scale": 0}`` removes the node; None keeps the graph's.
    """
    graph = json.loads((PLUGIN / "graphs" / "txt2vid.json").read_text())
    nodes = graph["nodes"]
    if checkpoint:
        nodes["checkpoint"]["inputs"]["ckpt_name"] = checkpoint
    for name in ("video", "gif", "sheet", "save_sheet"):
        del nodes[name]
    nodes["prompt"]["inputs"].update(text=caption, frames=frames)
    nodes["latent"]["inputs"]["frames"] = frames
    nodes["sample"]["inputs"].update(seed=seed, steps=steps, noise_correlation=noise_correlation,
                                     free_init_iterations=free_init)
    if steady is not None and steady.get("scale", 1.0) == 0:
        nodes.pop("steady", None)
        nodes["sample"]["inputs"].pop("guidance", None)
    elif steady is not None:
        nodes.setdefault("steady", {"type": "ClipConsistencyGuidance", "inputs": {}})["inputs"].update(steady)
        nodes["sample"]["inputs"]["guidance"] = {"node": "steady", "output": "guidance"}
    # The shipped graph has CrossFrameAttention ("consistent") after the motion module; the rows choose.
    if cross_frame:
        nodes["consistent"]["inputs"].update(mode=cross_frame, strength=cross_strength)
    else:
        nodes["sample"]["inputs"]["model"] = nodes["consistent"]["inputs"]["model"]
        del nodes["consistent"]
    if motion is None:
        if cross_frame:
            nodes["consistent"]["inputs"]["model"] = {"node": "checkpoint", "output": "model"}
        else:
            nodes["sample"]["inputs"]["model"] = {"node": "checkpoint", "output": "model"}
        del nodes["motion"], nodes["animated"]
    else:
        nodes["motion"]["inputs"]["motion_module_name"] = motion
        nodes["animated"]["inputs"].update(context_length=context_length, strength=strength)
    return graph


def steady_inputs(args) -> dict | None:
    """ClipConsistencyGuidance inputs from --steady* (None: the graph's own, if any)."""
    if args.steady is None:
        return None
    return {"scale": args.steady, "statistic": args.steady_statistic, "sigma_low": args.steady_sigma_low,
            "sigma_high": args.steady_sigma_high}


def judge(clip, detections, world) -> dict:
    """motion / constant / attributes for one clip (see the module docstring)."""
    summary = read_motion(detections)
    if clip.motion in MOVES:
        motion_ok = summary["direction"] == clip.motion
    elif clip.motion == "grow":
        motion_ok = summary["grew"]
    elif clip.motion == "shrink":
        motion_ok = summary["shrank"]
    elif clip.motion == "colour":
        motion_ok = summary["colours"][0] == clip.colour and summary["colours"][-1] == clip.end_colour
    else:
        motion_ok = summary["direction"] == "none"
    shapes_ok = all(s == clip.shape for s in summary["shapes"])
    colours_ok = clip.motion == "colour" or all(c == clip.colour for c in summary["colours"])
    first, last = clip.keyframes(world)
    ends = world.score([detections[0], detections[-1]], [first, last])
    return {"motion": bool(motion_ok), "constant": bool(shapes_ok and colours_ok), "attributes": ends["all"] == 1.0,
            "smooth": smooth(clip, detections, world), "kind": "move" if clip.motion in MOVES else clip.motion}


def smooth(clip, detections, world) -> bool:
    """One object per frame on the intended path (see the module docstring)."""
    if any(len(d.objects) != 1 for d in detections):
        return False
    times = np.linspace(0, 1, len(detections))
    centres = np.array([d.objects[0].centre for d in detections])
    sides = np.array([max(d.objects[0].bbox[2] - d.objects[0].bbox[0], d.objects[0].bbox[3] - d.objects[0].bbox[1])
                      for d in detections])
    if clip.motion in MOVES:
        a, b = (np.array(world.POSITIONS[p], dtype=float) for p in MOVES[clip.motion])
        path = a[None] + (b - a)[None] * times[:, None]
        axis = 0 if clip.motion in ("left_to_right", "right_to_left") else 1
        return bool(np.abs(centres[:, axis] - path[:, axis]).max() <= 6)
    if clip.motion in ("grow", "shrink"):
        small, large = world.SIZES["small"], world.SIZES["large"]
        ramp = small + (large - small) * (times if clip.motion == "grow" else 1 - times)
        return bool(np.abs(sides - ramp).max() <= 5)
    return bool(np.abs(centres - centres[0]).max() <= 4)


def run_rows(session: Session, clips, args, motion: str | None, sheet_rows: list, indices=None) -> dict:
    world = api.tiny_world()
    indices = indices or list(range(len(clips)))
    results, started, cpu = [], time.time(), time.process_time()
    for index, clip in zip(indices, clips):
        graph = clip_graph(video_caption(clip), 1000 + index, args.steps, args.frames, motion,
                           strength=args.strength, noise_correlation=args.noise_correlation,
                           cross_frame=args.cross_frame, cross_strength=args.cross_strength,
                           free_init=args.free_init, checkpoint=args.checkpoint, steady=steady_inputs(args))
        frames = session.run(graph, outputs=["decode"]).outputs["decode"]["image"]
        detections = world.detect_many(frames)
        results.append({**judge(clip, detections, world), "index": index, "caption": video_caption(clip)})
        if len(sheet_rows) < args.sheet_clips * (2 if args.baseline else 1) and index < args.sheet_clips:
            sheet_rows.append((frames.numpy() * 255).round().astype(np.uint8))
        if len(results) % 10 == 0:
            print(f"  {len(results)}/{len(clips)} clips, {time.time() - started:.0f} s", flush=True)
    seconds, cpu_seconds = time.time() - started, time.process_time() - cpu
    return summarise(results, seconds, cpu_seconds)


def summarise(results: list[dict], seconds: float, cpu_seconds: float) -> dict:
    """The row of the table from per-clip judgments."""
    row = {key: float(np.mean([r[key] for r in results])) for key in ("motion", "constant", "attributes", "smooth")}
    moves = [r["motion"] for r in results if r["kind"] == "move"]
    row.update(direction=float(np.mean(moves)) if moves else float("nan"), n=len(results), moves=len(moves),
               seconds_per_clip=seconds / len(results), cpu_per_clip=cpu_seconds / len(results),
               seconds=seconds, cpu_seconds=cpu_seconds, clips=results)
    for kind in ("grow", "shrink", "colour"):
        chosen = [r["motion"] for r in results if r["kind"] == kind]
        row[kind] = float(np.mean(chosen)) if chosen else float("nan")
    return row


def timing(session: Session, motion: str, frames: int = 16, steps: int = 20, checkpoint: str = "") -> list[str]:
    """Wall and CPU seconds for one clip of `frames` frames, whole and in 8-frame windows (overlap 4)."""
    lines = []
    for length in (0, 8):
        graph = clip_graph("a small red circle moving from left to right, on a blue background", 5, steps, frames,
                           motion, context_length=length, checkpoint=checkpoint)
        session.run(graph, outputs=["decode"])                               # warm (models loaded, cached)
        graph["nodes"]["sample"]["inputs"]["seed"] = 6
        wall, cpu = time.time(), time.process_time()
        session.run(graph, outputs=["decode"])
        label = "whole clip" if not length else "windows of 8, overlap 4"
        lines.append(f"{frames}-frame clip, {steps} steps, {label}: {time.time() - wall:.1f} s wall, "
                     f"{time.process_time() - cpu:.1f} s CPU (1 thread)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=120)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--motion", default="tiny_world_motion.safetensors")
    parser.add_argument("--checkpoint", default="", help="the image model (default: the one txt2vid.json loads)")
    parser.add_argument("--strength", type=float, default=1.0, help="ApplyMotionModule strength")
    parser.add_argument("--noise-correlation", type=float, default=0.0,
                        help="SampleVideo noise_correlation (initial noise shared by a clip's frames)")
    parser.add_argument("--cross-frame", default="", choices=["", "first_and_self", "first", "first_and_previous"],
                        help="add a CrossFrameAttention node in this mode before the sampler ('' = none)")
    parser.add_argument("--cross-strength", type=float, default=1.0, help="its strength")
    parser.add_argument("--free-init", type=int, default=1, help="SampleVideo free_init_iterations (1 = off)")
    parser.add_argument("--steady", type=float, default=None,
                        help="ClipConsistencyGuidance scale (0 = none; default: as txt2vid.json)")
    parser.add_argument("--steady-statistic", default="median", choices=["mean", "median"])
    parser.add_argument("--steady-sigma-low", type=float, default=1.5)
    parser.add_argument("--steady-sigma-high", type=float, default=1e6)
    parser.add_argument("--baseline", action="store_true", help="also sample without the motion module")
    parser.add_argument("--only-baseline", action="store_true")
    parser.add_argument("--timing", action="store_true")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--sheet", default="",
                        help="write a contact sheet (the first --sheet-clips prompts, frames side by side) here; "
                             f"the README's is {PLUGIN / 'benchmarks' / 'video_quality_sheet.png'}")
    parser.add_argument("--sheet-clips", type=int, default=8)
    parser.add_argument("--part", default="0/1", help="k/n: run clips k, k+n, ... (parallel shards)")
    parser.add_argument("--save", help="write the rows (with per-clip results) to this JSON file")
    parser.add_argument("--merge", nargs="+", help="print the table of these --save files combined, and stop")
    args = parser.parse_args()
    if args.merge:
        rows: dict = {}
        for path in args.merge:
            for name, row in json.loads(Path(path).read_text()).items():
                rows.setdefault(name, []).append(row)
        print_table({name: summarise([c for r in parts for c in r["clips"]], sum(r["seconds"] for r in parts),
                                     sum(r["cpu_seconds"] for r in parts)) for name, parts in rows.items()})
        return
    torch.set_num_threads(1)
    session = Session(autoload=True, allow=["video"], output_dir="/tmp/video_benchmark")
    world = api.tiny_world()
    rng = random.Random(args.seed)
    clips = [sample_clip(rng, world, held_out=True) for _ in range(args.count)]
    assert all(parse_video_caption(video_caption(c), world) is not None for c in clips)
    k, n = (int(v) for v in args.part.split("/"))
    indices = list(range(k, len(clips), n))
    clips = [clips[i] for i in indices]
    print(f"{args.count} held-out prompts, {args.frames} frames, {args.steps} steps dpmpp_2m/karras, CFG 5")
    rows, sheet = {}, []
    if not args.only_baseline:
        label = f"motion module ({args.motion})" + (f" on {args.checkpoint}" if args.checkpoint else "") \
            + (f", strength {args.strength}" if args.strength != 1 else "") \
            + (f", noise corr. {args.noise_correlation}" if args.noise_correlation else "") \
            + (f", cross-frame {args.cross_frame}" if args.cross_frame else "") \
            + (f" {args.cross_strength}" if args.cross_frame and args.cross_strength != 1 else "") \
            + (f", FreeInit x{args.free_init}" if args.free_init > 1 else "") \
            + (f", steady {args.steady} {args.steady_statistic} sigma {args.steady_sigma_low:g}-"
               f"{args.steady_sigma_high:g}" if args.steady else "")
        rows[label] = run_rows(session, clips, args, args.motion, sheet, indices)
    if args.baseline or args.only_baseline:
        rows["no motion module (prompt travel only)"] = run_rows(session, clips, args, None, sheet, indices)
    if args.save:
        Path(args.save).write_text(json.dumps(rows))
    print_table(rows)
    if args.timing and not args.only_baseline:
        for line in timing(session, args.motion, checkpoint=args.checkpoint):
            print(line)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if sheet and args.sheet:
        from PIL import Image

        grid = np.concatenate([np.concatenate(list(frames), axis=1) for frames in sheet], axis=0)
        Image.fromarray(grid).save(args.sheet)
        print(f"contact sheet: {args.sheet} (rows: first {args.sheet_clips} prompts"
              f"{', then the same without the motion module' if len(rows) > 1 else ''})")


def print_table(rows: dict) -> None:
    header = (f"{'row':40s} | motion  (moves  grow shrink colour) | constant | attributes | smooth | "
              f"s/clip (CPU)")
    print(header)
    for name, row in rows.items():
        print(f"{name:40s} | {row['motion']:6.1%} ({row['direction']:6.1%} {row['grow']:6.1%} {row['shrink']:6.1%} "
              f"{row['colour']:6.1%}) | {row['constant']:8.1%} | {row['attributes']:10.1%} | {row['smooth']:6.1%} | "
              f"{row['seconds_per_clip']:.1f} ({row['cpu_per_clip']:.1f})")
    print(f"n = {next(iter(rows.values()))['n']} clips ({next(iter(rows.values()))['moves']} moves); targets: motion "
          f"direction >= 90 %, colour and shape constant >= 95 %, attributes >= 90 %")


if __name__ == "__main__":
    main()
