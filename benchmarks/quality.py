"""Quality of the shipped tiny-world model, measured with the world's own detector.

    .venv/bin/python benchmarks/quality.py [--checkpoint models/checkpoints/tiny_world.safetensors]
                                           [--rows legacy,attributes,sizes,steps] [--count 50]
                                           [--steps 20] [--sampler dpmpp_2m] [--scheduler karras]
                                           [--lcm-lora models/loras/NAME.safetensors]
                                           [--rows controlnet --controlnet models/controlnet/NAME.safetensors]

Row groups (--rows; default all; --count images per row):

legacy      For CFG 1 and CFG 5, prompts of HELD-OUT scenes (colour/shape pairs the model never
            saw) and of ordinary scenes, templates; per-attribute accuracy and "all five right";
            a Fréchet distance on the detector's features vs renders (and the render-vs-render floor).
attributes  (#16 §1, CFG 5, --steps) template prompts; free-form prompts from the HELD-OUT
            paraphrase grammar (world_captions, never used in training), every attribute named;
            the same grammar with omitted attributes (only named attributes are scored); and
            two-object prompts ("a red circle and a blue square ...": binding = both objects
            found with their own colour and shape); and the 40 prompts written by hand in
            benchmarks/handwritten_prompts.txt (the same every run; --count does not apply).
            Targets: each named attribute >= 95 %, all named >= 90 % on free-form and omitted;
            binding >= 80 %.
sizes       (#16 §2) template prompts generated at 32x32, 48x80 (HxW), 64, 96x96 and 128x128;
            images are resized to 64x64 for the detector (48x80 anisotropically: positions and
            sizes keep their meaning, shapes are squeezed).
steps       (#16 §3) template prompts at 1, 2, 4, 8 steps with DPM++ 2M, Euler, UniPC (Karras
            schedule, CFG 5; --cfg-sigma-max S applies CFG only at sigmas <= S) and LCM (CFG 1;
            with --lcm-lora the LoRA is applied first), plus 5-step DPM++ 2M; seconds per image.
controlnet  (#16 §4; not in the default set) the mask ControlNet on hand-drawn-style silhouettes
            (world.sample_layout: continuous size and place, irregular outlines) with prompts
            that name no position or size, and with prompts naming another position than the
            hint; mean IoU and share >= 0.7, with and without the ControlNet. Targets: IoU
            >= 0.7; contradicting prompts: the hint wins (IoU >= 0.6).

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
from nodes.sampling.noise import make_noise_sampler, seeded_noise, start_noise_scale  # noqa: E402
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
             batch: int = 50, height: int = 64, width: int = 64, cfg_sigma_max: float = 1e6) -> np.ndarray:
    """uint8 images (N, H, W, 3) for the prompts; CFG applies at sigmas up to `cfg_sigma_max` (the
    CFGGuider node's sigma_high: a guidance interval), the positive branch alone above it."""
    model = diffusion_model(ckpt.unet, "tiny_world", preview=ckpt.vae.preview, schedule=ckpt.schedule)
    denoiser = model.denoiser()
    sigmas = get_sigmas(scheduler, denoiser, steps)
    negative = ckpt.text_encoder.encode("")
    out = []
    factor, channels = ckpt.vae.config.downscale, ckpt.vae.config.z_channels
    for start in range(0, len(prompts), batch):
        chunk = prompts[start:start + batch]
        positive = ckpt.text_encoder.encode(chunk)
        guider = CFGGuider(denoiser, {"context": positive.context}, {"context": negative.context}, scale=cfg,
                           cfg_sigma_range=(0.0, cfg_sigma_max))
        if cfg == 1.0:   # no unconditional pass (as KSampler skips it at CFG 1)
            guider = lambda x, sigma, _d=denoiser, _c=positive.context: _d(x, sigma, context=_c)  # noqa: E731
        shape = (len(chunk), channels, height // factor, width // factor)
        x = seeded_noise(shape, seed + start) * start_noise_scale(float(sigmas[0]), denoiser.sigma_max)   # as KSampler
        latents = sample(sampler, guider, x, sigmas, noise_sampler=make_noise_sampler(x, seed + start))
        images = ((ckpt.vae.decode(latents).float() + 1) / 2).clamp(0, 1)
        out.append((images.movedim(1, -1).numpy() * 255).round().astype(np.uint8))
    return np.concatenate(out)


def render_all(scene_list: list) -> np.ndarray:
    return np.stack([world.render(scene) for scene in scene_list])


PERCENT_KEYS = ("background", "colour", "shape", "size", "position", "all")


def _row(label: str, result: dict, seconds: float, count: int, extra: str = "") -> None:
    cells = " ".join(f"{'-':>9} " if result.get(k) is None else f"{100 * result[k]:>9.1f}%" for k in PERCENT_KEYS)
    print(f"{label:<28} | {cells} {extra}  ({seconds / count:.3f} s/image)", flush=True)


def _header(first: str) -> None:
    print(f"{first:<28} | " + " ".join(f"{k:>10}" for k in PERCENT_KEYS))


def _to_64(images: np.ndarray) -> np.ndarray:
    """Resize uint8 (N, H, W, 3) to 64x64 (bilinear) for the detector."""
    if images.shape[1:3] == (64, 64):
        return images
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    resized = torch.nn.functional.interpolate(tensor, size=(64, 64), mode="bilinear", antialias=True,
                                              align_corners=False)
    return resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


HANDWRITTEN = ("handwritten_prompts.txt", "handwritten_prompts_2.txt")


def handwritten_prompts(name: str = HANDWRITTEN[0]) -> list[str]:
    """benchmarks/<name>: prompts written by hand in phrasings of neither grammar (one per line, '#' comments)."""
    lines = (ROOT / "benchmarks" / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def attribute_rows(ckpt, classifier, args) -> None:
    """Template, held-out free-form, omitted-attribute and two-object rows (score_prompts)."""
    from nodes.training.world_captions import PromptSpec, free_caption, parse_prompt

    rng = random.Random(f"quality-attributes/{args.seed}")
    single = [world.sample_scene(rng) for _ in range(args.count)]
    pairs = [world.sample_scene(rng, two_object_fraction=1.0) for _ in range(args.count)]
    rows = []
    templated = [world.caption(scene, i % len(world.TEMPLATES)) for i, scene in enumerate(single)]
    rows.append(("template", templated, [parse_prompt(t) for t in templated]))
    free = [free_caption(scene, rng, "heldout", omit={}) for scene in single]
    rows.append(("free-form (held-out grammar)", [t for t, _ in free], [p for _, p in free]))
    omitted = []
    for scene in single:
        while True:
            text, named = free_caption(scene, rng, "heldout", omit={"size": 0.5, "position": 0.5, "background": 0.5})
            if len(named.named()) < 5:       # at least one attribute left out
                break
        omitted.append((text, named))
    rows.append(("omitted (held-out grammar)", [t for t, _ in omitted], [p for _, p in omitted]))
    two = [free_caption(scene, rng, "heldout", omit={"size": 0.5, "position": 0.5}) for scene in pairs]
    rows.append(("two objects (held-out gr.)", [t for t, _ in two], [p for _, p in two]))
    for number, name in enumerate(HANDWRITTEN, 1):
        handwritten = handwritten_prompts(name)
        label = f"hand-written ({len(handwritten)})" + (f", set {number}" if number > 1 else "")
        rows.append((label, handwritten, [parse_prompt(t) for t in handwritten]))
    print(f"\nattributes: CFG 5, {args.steps} steps, {args.sampler}/{args.scheduler}, {args.count} prompts per row; "
          f"only named attributes are scored")
    _header("prompts")
    for label, prompts, specs in rows:
        assert all(isinstance(spec, PromptSpec) for spec in specs)
        t0 = time.perf_counter()
        images = generate(ckpt, prompts, 5.0, args.steps, args.sampler, args.scheduler, args.seed)
        seconds = time.perf_counter() - t0
        result = world_detector.score_prompts(world_detector.detect_many(images, classifier), specs)
        binding = f" binding {100 * result['binding']:.1f}%" if result.get("binding") is not None else ""
        _row(label, result, seconds, len(prompts), binding)
    print("targets: free-form and omitted rows: each named attribute >= 95 %, all named >= 90 %; binding >= 80 %")


def size_rows(ckpt, classifier, args) -> None:
    """Template prompts generated at each size, scored at 64x64."""
    rng = random.Random(f"quality-sizes/{args.seed}")
    scene_list = [world.sample_scene(rng) for _ in range(args.count)]
    prompts = [world.caption(scene, i % len(world.TEMPLATES)) for i, scene in enumerate(scene_list)]
    print(f"\nsizes: template prompts, CFG 5, {args.steps} steps, {args.sampler}/{args.scheduler}")
    _header("size (HxW)")
    for height, width in ((32, 32), (48, 80), (64, 64), (96, 96), (128, 128)):
        t0 = time.perf_counter()
        images = generate(ckpt, prompts, 5.0, args.steps, args.sampler, args.scheduler, args.seed,
                          batch=max(5, 50 * 64 * 64 // (height * width)), height=height, width=width)
        seconds = time.perf_counter() - t0
        result = world_detector.score(world_detector.detect_many(_to_64(images), classifier), scene_list)
        _row(f"{height}x{width}", result, seconds, len(prompts))


def step_rows(ckpt, classifier, args) -> None:
    """Template prompts at few steps: base samplers at CFG 5, LCM at CFG 1 (with --lcm-lora applied)."""
    rng = random.Random(f"quality-steps/{args.seed}")
    scene_list = [world.sample_scene(rng) for _ in range(args.count)]
    prompts = [world.caption(scene, i % len(world.TEMPLATES)) for i, scene in enumerate(scene_list)]
    lora_note = f" (LCM with {args.lcm_lora})" if args.lcm_lora else " (LCM on the base model: not distilled)"
    interval = f"; CFG only at sigma <= {args.cfg_sigma_max:g}" if args.cfg_sigma_max < 1e6 else ""
    print(f"\nsteps: template prompts, {args.count} per row{lora_note}{interval}")
    _header("sampler / steps / cfg")
    configs = [(sampler, steps, 5.0) for sampler in ("dpmpp_2m", "euler", "unipc") for steps in (1, 2, 4, 8)]
    configs.insert(7, ("dpmpp_2m", 5, 5.0))
    for sampler, steps, cfg in configs:
        t0 = time.perf_counter()
        images = generate(ckpt, prompts, cfg, steps, sampler, "karras", args.seed, cfg_sigma_max=args.cfg_sigma_max)
        seconds = time.perf_counter() - t0
        result = world_detector.score(world_detector.detect_many(images, classifier), scene_list)
        _row(f"{sampler} {steps} cfg {cfg:g}", result, seconds, len(prompts))
    if args.lcm_lora:
        from nodes.models.lora import apply_loras, load_lora

        apply_loras(ckpt.unet, [(load_lora(args.lcm_lora), 1.0)])
    for steps in (1, 2, 4, 8):
        t0 = time.perf_counter()
        images = generate(ckpt, prompts, args.lcm_cfg, steps, "lcm", "sgm_uniform", args.seed)
        seconds = time.perf_counter() - t0
        result = world_detector.score(world_detector.detect_many(images, classifier), scene_list)
        _row(f"lcm {steps} cfg {args.lcm_cfg:g}", result, seconds, len(prompts))
    if args.lcm_lora:
        from nodes.models.lora import remove_loras

        remove_loras(ckpt.unet)


def legacy_rows(ckpt, classifier, args) -> None:
    """Held-out and seen template prompts at CFG 1 and 5, and the Fréchet distance (the first benchmark)."""
    print(f"\nlegacy: {args.count} images per row, {args.steps} steps, {args.sampler}/{args.scheduler}")
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


def controlnet_rows(ckpt, classifier, args) -> None:
    """Mask ControlNet on hand-drawn-style silhouettes (continuous size and place, irregular outlines):
    prompts without position or size, and prompts naming another position than the hint (#16 §4)."""
    from dataclasses import replace as replace_field

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import controlnet as controlnet_bench  # noqa: E402  (benchmarks/controlnet.py: generate, iou)

    from nodes.image.preprocess import foreground_mask
    from nodes.models.loading import load_controlnet
    from nodes.training.world_captions import free_caption

    net = load_controlnet(args.controlnet, dtype=torch.float32)
    rng = random.Random(f"quality-controlnet/{args.seed}")
    scene_list = [world.sample_scene(rng) for _ in range(args.count)]
    layouts = [world.sample_layout(scene, rng, irregular=1.0) for scene in scene_list]
    images = torch.from_numpy(np.stack([world.render(s, 64, lay) for s, lay in zip(scene_list, layouts)])).float()
    hints = foreground_mask(images / 255)
    unplaced = [free_caption(scene, rng, "heldout", omit={"size": 1.0, "position": 1.0})[0] for scene in scene_list]
    contradicting = []
    for scene in scene_list:
        item = scene.single
        other = rng.choice([p for p in world.POSITIONS if p != item.position])
        contradicting.append(world.caption(replace_field(scene, objects=(replace_field(item, position=other),))))
    print(f"\ncontrolnet: {Path(args.controlnet).name}, {args.count} hand-drawn-style silhouettes (continuous size "
          f"and place, irregular outlines), {args.steps} steps DPM++ 2M, CFG 5")
    print(f"{'prompts':<28} | {'IoU without':>12} {'>=0.7':>6} | {'IoU with':>9} {'>=0.7':>6}")
    for label, prompts in (("no position or size", unplaced), ("position contradicts hint", contradicting)):
        t0 = time.perf_counter()
        without = controlnet_bench.iou(controlnet_bench.generate(ckpt, prompts, hints, None, args.steps, args.seed),
                                       hints)
        with_net = controlnet_bench.iou(controlnet_bench.generate(ckpt, prompts, hints, net, args.steps, args.seed),
                                        hints)
        seconds = time.perf_counter() - t0
        print(f"{label:<28} | {without.mean():>12.3f} {100 * (without >= 0.7).float().mean():>5.0f}% | "
              f"{with_net.mean():>9.3f} {100 * (with_net >= 0.7).float().mean():>5.0f}%   "
              f"({seconds / (2 * len(prompts)):.3f} s/image)", flush=True)
    print("targets: no position: mean IoU >= 0.7 with the ControlNet; contradicting: the hint wins, IoU >= 0.6")


ROW_GROUPS = {"legacy": legacy_rows, "attributes": attribute_rows, "sizes": size_rows, "steps": step_rows,
              "controlnet": controlnet_rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "models" / "checkpoints" / "tiny_world.safetensors"))
    parser.add_argument("--rows", default="legacy,attributes,sizes,steps",
                        help="comma-separated row groups: " + ", ".join(ROW_GROUPS))
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--sampler", default="dpmpp_2m")
    parser.add_argument("--scheduler", default="karras")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--lcm-lora", default=None, help="an LCM-LoRA (e.g. from DistillLCM) for the LCM rows")
    parser.add_argument("--lcm-cfg", type=float, default=1.0)
    parser.add_argument("--cfg-sigma-max", type=float, default=1e6,
                        help="steps rows: CFG only at sigmas up to this (a guidance interval); default everywhere")
    parser.add_argument("--controlnet", default=str(ROOT / "models" / "controlnet" / "tiny_world_mask.safetensors"),
                        help="the mask ControlNet for the controlnet rows")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    groups = [name.strip() for name in args.rows.split(",") if name.strip()]
    unknown = [name for name in groups if name not in ROW_GROUPS]
    if unknown:
        parser.error(f"--rows: unknown group(s) {unknown}; choose from {', '.join(ROW_GROUPS)}")
    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint, dtype=torch.float32)
    classifier = world_detector.load_classifier()
    print(f"{args.checkpoint}: rows {', '.join(groups)}")
    for name in groups:
        ROW_GROUPS[name](ckpt, classifier, args)


if __name__ == "__main__":
    main()
