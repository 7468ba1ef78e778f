"""Guidance on the shipped tiny-world model: attribute accuracy and time per step for CFG, PAG, SAG, classifier.

    .venv/bin/python benchmarks/guidance.py [--count 100] [--steps 20] [--batch 50] [--threads 2]
                                            [--configs cfg,cfg+pag,cfg+sag,pag,cfg1,cfg+classifier]

Prompts: --count captions of HELD-OUT scenes (colour/shape pairs the model never saw, e.g.
"a green triangle"), each in a randomly drawn caption template of the world's generator
(nodes/training/world.py), seed-fixed. Images: 64x64 (16x16 latents), --steps steps of
dpmpp_2m on a karras schedule, the same seeds for every configuration. Each image is read
back by the world detector (nodes/training/world_detector.py) and scored against its prompt.

Configurations (the terms come from nodes/sampling/guidance_terms.py, through CFGGuider's
``guidance`` factories and ``for_run``, the path the nodes use):

    cfg             CFG 5
    cfg+pag         CFG 5 + PAG (scale --pag-scale, blocks --pag-blocks, default the middle block)
    cfg+sag         CFG 5 + SAG (scale --sag-scale, blur 1, middle block)
    pag             CFG 1 + PAG (PAG without CFG)
    cfg1            CFG 1 (the baseline for "pag" and "cfg1+classifier")
    cfg1+classifier CFG 1 + classifier guidance towards each prompt's own object colour
                    (VAE decode + nodes/training/world_guidance.py, scale --classifier-scale)
    cfg+classifier-other  CFG 5 + classifier guidance towards ANOTHER colour (the next named
                    colour that is neither the object's nor the background's): the "→target"
                    column is the fraction of images whose detected object has that colour

Printed per configuration: accuracy of background, colour, shape, size, position and "all
five" against the prompt, the fraction of images whose object has the classifier's target
colour (→target; for the others, the rate at which that colour appears anyway), seconds
per sampler step for the whole batch and per image, and images evaluated per image and step.
Then, because a shared machine's load changes between configurations, the cost of one
guided step measured fairly: every configuration's guided denoiser called in turn (batch
8, one sigma) for --timing-rounds rounds, median per image, relative to CFG.
Runs in about 15 minutes on 2 CPU cores at the defaults (all configurations).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nodes.models.loading import load_checkpoint  # noqa: E402
from nodes.models.nodes import diffusion_model  # noqa: E402
from nodes.sampling.guidance import CFGGuider  # noqa: E402
from nodes.sampling.guidance_terms import (  # noqa: E402
    DenoisedClassifierGuidance,
    PerturbedAttentionGuidance,
    SelfAttentionGuidance,
)
from nodes.sampling.noise import make_noise_sampler, seeded_noise  # noqa: E402
from nodes.sampling.samplers import sample  # noqa: E402
from nodes.sampling.schedules import get_sigmas  # noqa: E402
from nodes.training import world, world_detector  # noqa: E402
from nodes.training.world_guidance import colour_log_likelihood  # noqa: E402

CONFIGS = ("cfg", "cfg+pag", "cfg+sag", "pag", "cfg1", "cfg1+classifier", "cfg+classifier-other")


def other_colour(scene) -> str:
    """The first named colour after the object's (in COLOURS order) that is neither it nor the background."""
    names = list(world.COLOURS)
    used = {scene.background, scene.objects[0].colour}
    start = names.index(scene.objects[0].colour)
    return next(names[(start + k) % len(names)] for k in range(1, len(names)) if names[(start + k) % len(names)]
                not in used)


def classifier_targets(config: str, scene_list: list) -> list[str] | None:
    """Per-prompt target colours of a classifier configuration (None for the others)."""
    if config == "cfg1+classifier":
        return [scene.objects[0].colour for scene in scene_list]
    if config == "cfg+classifier-other":
        return [other_colour(scene) for scene in scene_list]
    return None


def prompts_and_scenes(count: int, seed: int) -> tuple[list[str], list]:
    """Held-out scenes, each captioned with a randomly drawn template."""
    rng = random.Random(f"guidance/{seed}")
    scene_list = [world.sample_held_out_scene(rng) for _ in range(count)]
    texts = [world.caption(scene, rng.randrange(len(world.TEMPLATES))) for scene in scene_list]
    return texts, scene_list


class CountingDenoiser:
    """Wraps a denoiser and counts the images it evaluates (batch items per call, summed)."""

    def __init__(self, denoiser):
        self.denoiser, self.images = denoiser, 0
        for name in ("sigma_min", "sigma_max", "sigmas", "sigma_to_t", "t_to_sigma"):
            setattr(self, name, getattr(denoiser, name))

    def __call__(self, x, sigma, **cond):
        self.images += x.shape[0]
        return self.denoiser(x, sigma, **cond)


def guidance_for(config: str, args, scenes_chunk: list, vae) -> tuple[float, tuple]:
    """(CFG scale, guidance factories) of a configuration."""
    pag = partial(PerturbedAttentionGuidance, scale=args.pag_scale, blocks=args.pag_blocks)
    if config == "cfg":
        return args.cfg, ()
    if config == "cfg+pag":
        return args.cfg, (pag,)
    if config == "cfg+sag":
        return args.cfg, (partial(SelfAttentionGuidance, scale=args.sag_scale),)
    if config == "pag":
        return 1.0, (pag,)
    if config == "cfg1":
        return 1.0, ()
    targets = classifier_targets(config, scenes_chunk)
    if targets is not None:
        log_likelihood = partial(colour_log_likelihood, targets=targets)
        cfg = 1.0 if config.startswith("cfg1") else args.cfg
        return cfg, (partial(DenoisedClassifierGuidance, log_likelihood, scale=args.classifier_scale,
                             decode=vae.decode),)
    raise SystemExit(f"--configs: unknown configuration {config!r}; choose from {', '.join(CONFIGS)}")


def generate(ckpt, config: str, texts: list[str], scene_list: list, args) -> tuple[np.ndarray, float, float]:
    """uint8 images (N, 64, 64, 3), seconds per sampler step (per batch, averaged), model images per step."""
    model = diffusion_model(ckpt.unet, "tiny_world", preview=ckpt.vae.preview)
    model.apply_patches()
    counting = CountingDenoiser(model.denoiser())
    sigmas = get_sigmas("karras", counting, args.steps)
    negative = ckpt.text_encoder.encode("")
    factor, channels = ckpt.vae.config.downscale, ckpt.vae.config.z_channels
    images, seconds, steps = [], 0.0, 0
    for start in range(0, len(texts), args.batch):
        chunk = texts[start:start + args.batch]
        with torch.no_grad():
            positive = ckpt.text_encoder.encode(chunk)
        scale, guidance = guidance_for(config, args, scene_list[start:start + args.batch], ckpt.vae)
        guider = CFGGuider(counting, {"context": positive.context}, {"context": negative.context}, scale=scale,
                           guidance=guidance)
        shape = (len(chunk), channels, 64 // factor, 64 // factor)
        x = seeded_noise(shape, args.seed + start) * float(sigmas[0])
        began = time.perf_counter()
        with torch.no_grad():
            latents = sample(args.sampler, guider.for_run(sigmas), x, sigmas,
                             noise_sampler=make_noise_sampler(x, args.seed + start))
        seconds += time.perf_counter() - began
        steps += args.steps
        with torch.no_grad():
            decoded = ((ckpt.vae.decode(latents).float() + 1) / 2).clamp(0, 1)
        images.append((decoded.movedim(1, -1).numpy() * 255).round().astype(np.uint8))
    return np.concatenate(images), seconds / steps, counting.images / steps / min(args.batch, len(texts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "models" / "checkpoints" / "tiny_world.safetensors"))
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--cfg", type=float, default=5.0)
    parser.add_argument("--pag-scale", type=float, default=3.0)
    parser.add_argument("--pag-blocks", default="middle_block", help="comma-separated UNet key paths (PAG)")
    parser.add_argument("--sag-scale", type=float, default=0.75)
    parser.add_argument("--classifier-scale", type=float, default=30.0)
    parser.add_argument("--sampler", default="dpmpp_2m")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--timing-rounds", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    ckpt = load_checkpoint(args.checkpoint, dtype=torch.float32)  # fp16 matmuls are slow on CPU
    texts, scene_list = prompts_and_scenes(args.count, args.seed)
    print(f"{args.count} held-out prompts (e.g. {texts[0]!r}), 64x64, {args.steps} steps {args.sampler}/karras, "
          f"batch {args.batch}, {args.threads} threads; CFG {args.cfg}, PAG {args.pag_scale} on {args.pag_blocks}, "
          f"SAG {args.sag_scale}, "
          f"classifier {args.classifier_scale}")
    header = (f"{'configuration':<22}" + "".join(f"{name:>11}" for name in world_detector.ATTRIBUTES)
              + f"{'all five':>10}{'→target':>9}{'s/step':>9}{'ms/img/step':>13}{'evals/img':>11}")
    print(header)
    for config in args.configs.split(","):
        images, step_seconds, evaluations = generate(ckpt, config.strip(), texts, scene_list, args)
        detections = world_detector.detect_many(images)
        scores = world_detector.score(detections, scene_list)
        targets = classifier_targets(config.strip(), scene_list) or classifier_targets("cfg+classifier-other",
                                                                                        scene_list)
        hits = sum(bool(d.objects) and d.objects[0].colour == t for d, t in zip(detections, targets)) / len(targets)
        per_image_ms = 1000 * step_seconds / min(args.batch, len(texts))
        print(f"{config:<22}" + "".join(f"{100 * scores[name]:>10.1f}%" for name in world_detector.ATTRIBUTES)
              + f"{100 * scores['all']:>9.1f}%{100 * hits:>8.1f}%{step_seconds:>9.2f}{per_image_ms:>13.1f}{evaluations:>11.1f}",
              flush=True)
    interleaved_timing(ckpt, [c.strip() for c in args.configs.split(",")], scene_list, args)


def interleaved_timing(ckpt, configs: list[str], scene_list: list, args) -> None:
    """Median time of one guided call per configuration, the configurations called in turn (batch 8)."""
    model = diffusion_model(ckpt.unet, "tiny_world")
    model.apply_patches()
    denoiser = model.denoiser()
    texts = [world.caption(scene) for scene in scene_list[:8]]
    with torch.no_grad():
        positive, negative = ckpt.text_encoder.encode(texts).context, ckpt.text_encoder.encode("").context
    guiders = {}
    for config in configs:
        scale, guidance = guidance_for(config, args, scene_list[:8], ckpt.vae)
        guiders[config] = CFGGuider(denoiser, {"context": positive}, {"context": negative}, scale=scale,
                                    guidance=guidance).for_run()
    x = seeded_noise((len(texts), ckpt.vae.config.z_channels, 16, 16), 1) * 3.0
    sigma = torch.full((len(texts),), 3.0)
    times: dict[str, list[float]] = {config: [] for config in configs}
    with torch.no_grad():
        for _ in range(args.timing_rounds):
            for config, guider in guiders.items():
                began = time.perf_counter()
                guider(x, sigma)
                times[config].append(time.perf_counter() - began)
    medians = {config: sorted(values)[len(values) // 2] / len(texts) for config, values in times.items()}
    reference = medians.get("cfg")
    print(f"\ninterleaved timing ({args.timing_rounds} rounds, batch {len(texts)}, sigma 3): ms per image per step")
    for config, seconds in medians.items():
        relative = f"  ({seconds / reference:.2f}x CFG)" if reference else ""
        print(f"{config:<22}{1000 * seconds:>8.1f}{relative}")


if __name__ == "__main__":
    main()
