"""Quality of the shipped tiny-world model, measured with the world's own detector.

    .venv/bin/python benchmarks/quality.py [--checkpoint models/checkpoints/tiny_world.safetensors]
                                           [--count 200] [--steps 20] [--sampler dpmpp_2m] [--scheduler karras]

For CFG 1 and CFG 5 it generates --count images from prompts of HELD-OUT scenes
(colour/shape pairs the model never saw, e.g. "a green triangle") and --count from
ordinary scenes, detects background colour, object colour, shape, size and position
in each (nodes/training/world_detector.py), and prints per-attribute accuracy and
"all five right". Targets (issue 5), held-out prompts at CFG ≈ 5, 20 steps: each
attribute ≥ 95 %, all five ≥ 90 %; CFG must beat CFG 1.

It also prints a Fréchet distance on the detector's 64-d features between generated
held-out images and renders of the same intended scenes, next to the distance between
two independent sets of renders of held-out scenes of the same size (the floor).

Images are generated in batches through the same library code the nodes use
(LoadCheckpoint's loader, the CLIP tokenizer/encoder, the CFG guider and samplers).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nodes.models.loading import load_checkpoint  # noqa: E402
from nodes.models.nodes import diffusion_model  # noqa: E402
from nodes.sampling.guidance import CFGGuider  # noqa: E402
from nodes.sampling.noise import make_noise_sampler, seeded_noise  # noqa: E402
from nodes.sampling.samplers import sample  # noqa: E402
from nodes.sampling.schedules import get_sigmas  # noqa: E402
from nodes.training import world, world_detector  # noqa: E402


def scenes(count: int, held_out: bool, seed: int) -> list:
    rng = random.Random(f"quality/{seed}/{held_out}")
    if held_out:
        return [world.sample_held_out_scene(rng) for _ in range(count)]
    return [world.sample_scene(rng) for _ in range(count)]


@torch.no_grad()
def generate(ckpt, prompts: list[str], cfg: float, steps: int, sampler: str, scheduler: str, seed: int,
             batch: int = 50) -> np.ndarray:
    """uint8 images (N, H, W, 3) for the prompts."""
    model = diffusion_model(ckpt.unet, "tiny_world", preview=ckpt.vae.preview)
    denoiser = model.denoiser()
    sigmas = get_sigmas(scheduler, denoiser, steps)
    negative = ckpt.text_encoder.encode("")
    out = []
    factor, channels = ckpt.vae.config.downscale, ckpt.vae.config.z_channels
    for start in range(0, len(prompts), batch):
        chunk = prompts[start:start + batch]
        positive = ckpt.text_encoder.encode(chunk)
        guider = CFGGuider(denoiser, {"context": positive.context}, {"context": negative.context}, scale=cfg)
        shape = (len(chunk), channels, 64 // factor, 64 // factor)
        x = seeded_noise(shape, seed + start) * float(sigmas[0])
        latents = sample(sampler, guider, x, sigmas, noise_sampler=make_noise_sampler(x, seed + start))
        images = ((ckpt.vae.decode(latents).float() + 1) / 2).clamp(0, 1)
        out.append((images.movedim(1, -1).numpy() * 255).round().astype(np.uint8))
    return np.concatenate(out)


def render_all(scene_list: list) -> np.ndarray:
    return np.stack([world.render(scene) for scene in scene_list])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "models" / "checkpoints" / "tiny_world.safetensors"))
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--sampler", default="dpmpp_2m")
    parser.add_argument("--scheduler", default="karras")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    torch.set_num_threads(2)
    ckpt = load_checkpoint(args.checkpoint, dtype=torch.float32)
    classifier = world_detector.load_classifier()
    print(f"{args.checkpoint}: {args.count} images per row, {args.steps} steps, {args.sampler}/{args.scheduler}")
    header = f"{'prompts':<10} {'cfg':>4} | " + " ".join(f"{k:>10}" for k in
                                                        ("background", "colour", "shape", "size", "position", "all"))
    print(header)
    generated_held_out = None
    for held_out in (True, False):
        scene_list = scenes(args.count, held_out, args.seed)
        prompts = [world.caption(scene, i % len(world.TEMPLATES)) for i, scene in enumerate(scene_list)]
        for cfg in (1.0, 5.0):
            t0 = time.perf_counter()
            images = generate(ckpt, prompts, cfg, args.steps, args.sampler, args.scheduler, args.seed)
            result = world_detector.score(world_detector.detect_many(images, classifier), scene_list)
            seconds = time.perf_counter() - t0
            label = "held-out" if held_out else "seen"
            print(f"{label:<10} {cfg:>4.1f} | " + " ".join(f"{100 * result[k]:>9.1f}%" for k in
                  ("background", "colour", "shape", "size", "position", "all")) + f"   ({seconds:.0f} s)")
            if held_out and cfg == 5.0:
                generated_held_out = images
    intended = scenes(args.count, True, args.seed)
    other = scenes(args.count, True, args.seed + 1)
    fd_model = world_detector.frechet_distance(world_detector.features(generated_held_out, classifier),
                                               world_detector.features(render_all(intended), classifier))
    fd_floor = world_detector.frechet_distance(world_detector.features(render_all(other), classifier),
                                               world_detector.features(render_all(intended), classifier))
    print(f"Fréchet distance (detector features, n={args.count}): generated held-out @ CFG 5 vs renders of the "
          f"same scenes {fd_model:.1f}; two independent render sets {fd_floor:.1f}")
    print("targets (held-out, CFG 5): every attribute >= 95 %, all five >= 90 %; CFG 5 > CFG 1")


if __name__ == "__main__":
    main()
