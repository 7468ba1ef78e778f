"""The shipped mask ControlNet: how well generated objects follow the hint, and what it costs per step.

    .venv/bin/python benchmarks/controlnet.py [--count 100] [--steps 20] [--threads 2]

1. IoU between the generated object (ForegroundMask of the image) and the hint silhouette,
   for --count tiny-world prompts, with the ControlNet and without (same seeds):
   - "matching": the hint is the silhouette of the scene the prompt describes;
   - "moved":    the hint is the same shape at another size and place than the prompt says,
                 so only the ControlNet can put the object there.
   Printed: mean IoU and the share of images with IoU ≥ 0.7. Target (issue 7): IoU ≥ 0.7 with it.
2. Overhead: seconds per sampling step (batch 1, CFG 5: one batched UNet call per step) with and
   without ApplyControlNet's stack, median of --repeats runs, and the ratio.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nodes.image.preprocess import foreground_mask  # noqa: E402
from nodes.models.controlnet import ControlEntry, ControlStack  # noqa: E402
from nodes.models.loading import load_checkpoint, load_controlnet  # noqa: E402
from nodes.models.nodes import diffusion_model  # noqa: E402
from nodes.sampling.guidance import CFGGuider  # noqa: E402
from nodes.sampling.noise import make_noise_sampler, seeded_noise  # noqa: E402
from nodes.sampling.samplers import sample  # noqa: E402
from nodes.sampling.schedules import get_sigmas  # noqa: E402
from nodes.training import world  # noqa: E402


def moved(scene: world.SceneSpec, rng: random.Random) -> world.SceneSpec:
    """The scene's object at another size and position than its caption says."""
    item = scene.objects[0]
    size = rng.choice([s for s in world.SIZES if s != item.size])
    position = rng.choice([p for p in world.POSITIONS if p != item.position])
    return replace(scene, objects=(replace(item, size=size, position=position, offset=(0, 0)),))


def silhouettes(scenes: list) -> torch.Tensor:
    """(N, 64, 64) masks of the rendered scenes."""
    images = torch.from_numpy(np.stack([world.render(s) for s in scenes])).float().div(255)
    return foreground_mask(images)


@torch.no_grad()
def generate(ckpt, prompts: list[str], hints: torch.Tensor | None, net, steps: int, seed: int,
             batch: int = 25) -> torch.Tensor:
    """Images (N, 64, 64, 3) in [0, 1]; with `net`, each prompt is steered by its hint."""
    denoiser = diffusion_model(ckpt.unet, "tiny_world").denoiser()
    sigmas = get_sigmas("karras", denoiser, steps)
    negative = ckpt.text_encoder.encode("")
    factor, channels = ckpt.vae.config.downscale, ckpt.vae.config.z_channels
    out = []
    for start in range(0, len(prompts), batch):
        chunk = prompts[start:start + batch]
        positive = {"context": ckpt.text_encoder.encode(chunk).context}
        negative_cond = {"context": negative.context}
        if net is not None:
            hint = hints[start:start + batch, None].expand(-1, 3, -1, -1)
            stack = ControlStack().plus(ControlEntry(net, hint))
            positive["control"] = negative_cond["control"] = stack
        guider = CFGGuider(denoiser, positive, negative_cond, scale=5.0)
        x = seeded_noise((len(chunk), channels, 64 // factor, 64 // factor), seed + start) * float(sigmas[0])
        latents = sample("dpmpp_2m", guider, x, sigmas, noise_sampler=make_noise_sampler(x, seed + start))
        out.append(((ckpt.vae.decode(latents).float() + 1) / 2).clamp(0, 1).movedim(1, -1))
    return torch.cat(out)


def iou(generated: torch.Tensor, hints: torch.Tensor) -> torch.Tensor:
    masks = foreground_mask(generated) > 0.5
    target = hints > 0.5
    return (masks & target).flatten(1).sum(1) / (masks | target).flatten(1).sum(1).clamp(min=1)


def step_time(ckpt, net, steps: int, repeats: int) -> tuple[float, float]:
    """Median seconds per step of a batch-1 CFG loop without and with the ControlNet."""
    hint = silhouettes([world.sample_scene(random.Random(0))])[:, None].expand(-1, 3, -1, -1)
    prompt = ["a large red circle in the centre, on a white background"]
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for index, control in enumerate((None, net)):
            start = time.perf_counter()
            generate(ckpt, prompt, hint[:, 0] if control is not None else None, control, steps, seed=1)
            times[index].append((time.perf_counter() - start) / steps)
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "models" / "checkpoints" / "tiny_world.safetensors"))
    parser.add_argument("--controlnet", default=str(ROOT / "models" / "controlnet" / "tiny_world_mask.safetensors"))
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=77)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint, dtype=torch.float32)
    net = load_controlnet(args.controlnet, dtype=torch.float32)
    rng = random.Random(f"controlnet/{args.seed}")
    scenes = [world.sample_scene(rng) for _ in range(args.count)]
    prompts = [world.caption(scene) for scene in scenes]
    print(f"{Path(args.controlnet).name}: {args.count} prompts, {args.steps} steps DPM++ 2M, CFG 5")
    print(f"{'hint':<9} | {'IoU without':>12} {'≥0.7':>6} | {'IoU with':>9} {'≥0.7':>6}")
    for label, hint_scenes in (("matching", scenes), ("moved", [moved(s, rng) for s in scenes])):
        hints = silhouettes(hint_scenes)
        without = iou(generate(ckpt, prompts, hints, None, args.steps, args.seed), hints)
        with_net = iou(generate(ckpt, prompts, hints, net, args.steps, args.seed), hints)
        print(f"{label:<9} | {without.mean():>12.3f} {100 * (without >= 0.7).float().mean():>5.0f}% | "
              f"{with_net.mean():>9.3f} {100 * (with_net >= 0.7).float().mean():>5.0f}%")
    plain, controlled = step_time(ckpt, net, args.steps, args.repeats)
    print(f"per step (batch 1, CFG): plain {1000 * plain:.1f} ms, with ControlNet {1000 * controlled:.1f} ms, "
          f"overhead ×{controlled / plain:.2f}")
    print("target (issue 7): IoU ≥ 0.7 with the ControlNet")


if __name__ == "__main__":
    main()
