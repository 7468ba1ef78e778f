"""Quality of the tiny-world flow model (a rectified-flow MMDiT), measured as benchmarks/quality.py measures the UNet.

    .venv/bin/python benchmarks/quality_flow.py [--checkpoint models/checkpoints/tiny_world_flow.safetensors]
        [--count 200] [--steps 20] [--sampler euler] [--scheduler normal] [--shift FILE'S] [--cfg 1,5]

The same rows as quality.py: for each CFG scale, --count images from prompts of HELD-OUT scenes
(colour/shape pairs the model never saw) and --count from ordinary scenes (the world's caption
templates), each attribute read back by the world's detector (nodes/training/world_detector.py), and
"all five right". Targets (issue 19 §3, as issue 5 for the UNet): every attribute >= 95 % on
template prompts. It also prints the Fréchet distance on the detector's features (generated
held-out at the largest CFG vs renders of the same scenes, next to two independent render sets).

Images go through the code the nodes use: LoadCheckpoint's loader (SD3 single-file layout with
nodegraph metadata), the SD3 text layout (SD3TextEncoder), the flow MODEL wrapper
(sd3_diffusion_model: FlowTimeMap with the file's shift), the CFG guider and the samplers.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from quality import render_all, scenes  # noqa: E402  (the UNet benchmark's scene lists: same prompts)

from nodes.models.loading import load_checkpoint  # noqa: E402
from nodes.models.nodes import sd3_diffusion_model  # noqa: E402
from nodes.sampling.guidance import CFGGuider  # noqa: E402
from nodes.sampling.noise import make_noise_sampler, seeded_noise  # noqa: E402
from nodes.sampling.samplers import sample  # noqa: E402
from nodes.sampling.schedules import get_sigmas  # noqa: E402
from nodes.training import world, world_detector  # noqa: E402

ATTRIBUTES = ("background", "colour", "shape", "size", "position", "all")


@torch.no_grad()
def generate(ckpt, prompts: list[str], cfg: float, steps: int, sampler: str, scheduler: str, seed: int,
             shift: float | None = None, batch: int = 50) -> np.ndarray:
    """uint8 images (N, H, W, 3) for the prompts, from the flow checkpoint."""
    model = sd3_diffusion_model(ckpt.unet, "tiny_world_flow", preview=ckpt.vae.preview, shift=shift)
    denoiser = model.denoiser()
    sigmas = get_sigmas(scheduler, denoiser, steps)
    negative = ckpt.text_encoder.encode("")
    out = []
    factor, channels = ckpt.vae.config.downscale, ckpt.vae.config.z_channels
    for start in range(0, len(prompts), batch):
        chunk = prompts[start:start + batch]
        positive = ckpt.text_encoder.encode(chunk)
        guider = CFGGuider(denoiser, positive, negative, scale=cfg)
        shape = (len(chunk), channels, 64 // factor, 64 // factor)
        x = seeded_noise(shape, seed + start) * float(sigmas[0])
        latents = sample(sampler, guider, x, sigmas, noise_sampler=make_noise_sampler(x, seed + start))
        images = ((ckpt.vae.decode(latents).float() + 1) / 2).clamp(0, 1)
        out.append((images.movedim(1, -1).numpy() * 255).round().astype(np.uint8))
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "models" / "checkpoints" / "tiny_world_flow.safetensors"))
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--sampler", default="euler")
    parser.add_argument("--scheduler", default="normal")
    parser.add_argument("--shift", type=float, default=None, help="sampling shift (default: the file's)")
    parser.add_argument("--cfg", default="1,5", help="comma-separated CFG scales")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--save-grid", default=None, help="write a PNG grid of the first 32 held-out images at the "
                                                          "largest CFG here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint, dtype=torch.float32)
    shift = args.shift if args.shift is not None else getattr(ckpt.unet, "sampling_shift", None)
    scales = [float(v) for v in args.cfg.split(",")]
    classifier = world_detector.load_classifier()
    size_mb = Path(args.checkpoint).stat().st_size / 1e6
    print(f"{args.checkpoint} ({size_mb:.1f} MB): {args.count} images per row, {args.steps} steps, "
          f"{args.sampler}/{args.scheduler}, shift {model_shift(ckpt, shift)}")
    print(f"{'prompts':<10} {'cfg':>4} | " + " ".join(f"{k:>10}" for k in ATTRIBUTES))
    generated_held_out = None
    for held_out in (True, False):
        scene_list = scenes(args.count, held_out, args.seed)
        prompts = [world.caption(scene, i % len(world.TEMPLATES)) for i, scene in enumerate(scene_list)]
        for cfg in scales:
            t0 = time.perf_counter()
            images = generate(ckpt, prompts, cfg, args.steps, args.sampler, args.scheduler, args.seed, shift)
            result = world_detector.score(world_detector.detect_many(images, classifier), scene_list)
            label = "held-out" if held_out else "seen"
            print(f"{label:<10} {cfg:>4.1f} | " + " ".join(f"{100 * result[k]:>9.1f}%" for k in ATTRIBUTES)
                  + f"   ({time.perf_counter() - t0:.0f} s)", flush=True)
            if held_out and cfg == max(scales):
                generated_held_out = images
    if args.save_grid:
        from PIL import Image

        tiles = generated_held_out[:32]
        grid = tiles.reshape(4, 8, *tiles.shape[1:]).transpose(0, 2, 1, 3, 4).reshape(4 * tiles.shape[1],
                                                                                      8 * tiles.shape[2], 3)
        Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(args.save_grid)
    intended = scenes(args.count, True, args.seed)
    other = scenes(args.count, True, args.seed + 1)
    fd_model = world_detector.frechet_distance(world_detector.features(generated_held_out, classifier),
                                               world_detector.features(render_all(intended), classifier))
    fd_floor = world_detector.frechet_distance(world_detector.features(render_all(other), classifier),
                                               world_detector.features(render_all(intended), classifier))
    print(f"Fréchet distance (detector features, n={args.count}): generated held-out @ CFG {max(scales):g} vs renders "
          f"of the same scenes {fd_model:.1f}; two independent render sets {fd_floor:.1f}")
    print("target (issue 19 §3): every attribute >= 95 % on template prompts")


def model_shift(ckpt, shift: float | None) -> float:
    """The shift sampling actually uses (the wrapper's default when neither the file nor --shift gives one)."""
    return sd3_diffusion_model(ckpt.unet, "probe", shift=shift).time_map.shift


if __name__ == "__main__":
    main()
