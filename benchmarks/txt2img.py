"""The README's main command, timed: cold (a new process), warm (in a session), peak RSS, and diffusers.

    .venv/bin/python benchmarks/txt2img.py [--graph graphs/txt2img.json] [--cold 3] [--warm 5] [--threads 2]

1. cold    `python -m nodegraph.cli run GRAPH` in a fresh process, --cold times: median wall
           seconds (interpreter start, imports, plugin loading, checkpoint load, 20 steps,
           decode, PNG write) and the child's peak RSS.
2. warm    the same graph in one Session after a first run, with a new seed each time (so the
           sampler and decoder really run; the loaded model and encoded prompts stay cached):
           median wall seconds of --warm runs.
3. loop    the 20-step CFG sampling loop alone, ours (DPM++ 2M, Karras sigmas: what KSampler
           runs) next to diffusers' UNet2DConditionModel + DPMSolverMultistepScheduler
           (use_karras_sigmas) on the same weights converted to the diffusers layout, same
           prompt embeddings, same start latent, interleaved, median; the ratio ours / diffusers.
           Both outputs are compared, so the two loops are known to compute the same thing.

Targets (issue 5, 2 CPU cores, 64×64, batch 1, 20 steps with CFG): warm ≤ 1.5 s, cold ≤ 10 s,
peak RSS ≤ 1.5 GB; ours no slower than diffusers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cold_runs(graph: Path, count: int, threads: int) -> tuple[float, float]:
    """Median wall seconds of `count` fresh-process runs, and the largest child peak RSS in MB."""
    walls, peak_kb = [], 0
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    for _ in range(count):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            process = subprocess.Popen([sys.executable, "-m", "nodegraph.cli", "run", str(graph),
                                        "--output-dir", out], cwd=ROOT, env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _, stderr = process.communicate()
            walls.append(time.perf_counter() - start)
            if process.returncode != 0:
                raise SystemExit(f"cold run failed:\n{stderr.decode()}")
        # ru_maxrss of RUSAGE_CHILDREN is the largest of the waited-for children (KB on Linux)
        peak_kb = max(peak_kb, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return statistics.median(walls), peak_kb / 1024


def warm_runs(graph: Path, count: int) -> tuple[float, float]:
    """(first run seconds, median seconds of `count` later runs with fresh seeds) in one Session."""
    from nodegraph import Session

    data = json.loads(graph.read_text())
    samplers = [node_id for node_id, node in data["nodes"].items() if node["type"] == "KSampler"]
    with tempfile.TemporaryDirectory() as out:
        session = Session(output_dir=out)
        start = time.perf_counter()
        session.run(data)
        first = time.perf_counter() - start
        walls = []
        for k in range(count):
            for node_id in samplers:
                data["nodes"][node_id]["inputs"]["seed"] = 1000 + k
            start = time.perf_counter()
            session.run(data)
            walls.append(time.perf_counter() - start)
    return first, statistics.median(walls)


def diffusers_unet(unet) -> torch.nn.Module:
    """Our LDM-layout UNet as a diffusers UNet2DConditionModel with the same weights (SD1-style configs)."""
    from diffusers import UNet2DConditionModel

    from nodes.models.convert import unet_from_diffusers

    config = unet.config
    if config.adm_in_channels or config.transformer_depth_output is not None:
        raise SystemExit("this comparison handles SD1/SD2-structured UNets only")
    down = tuple("CrossAttnDownBlock2D" if depth else "DownBlock2D" for depth in config.transformer_depth)
    up = tuple("CrossAttnUpBlock2D" if depth else "UpBlock2D" for depth in reversed(config.transformer_depth))
    heads = config.num_heads if config.num_heads > 0 else None
    reference = UNet2DConditionModel(
        sample_size=16, in_channels=config.in_channels, out_channels=config.out_channels,
        block_out_channels=tuple(config.model_channels * m for m in config.channel_mult),
        layers_per_block=config.num_res_blocks, down_block_types=down, up_block_types=up,
        transformer_layers_per_block=tuple(max(1, d) for d in config.transformer_depth),
        cross_attention_dim=config.context_dim, use_linear_projection=config.use_linear_in_transformer,
        attention_head_dim=heads if heads else tuple(config.model_channels * m // config.num_head_channels
                                                     for m in config.channel_mult))
    target = reference.state_dict()
    ours = unet.state_dict()
    for our_key, source in unet_from_diffusers(target.keys()).items():
        target[source.key] = ours[our_key].reshape(target[source.key].shape).to(target[source.key].dtype)
    reference.load_state_dict(target)
    return reference.eval()


def loop_comparison(checkpoint: Path, prompt: str, cfg: float, steps: int, repeats: int) -> dict:
    """Our dpmpp_2m/karras CFG loop vs diffusers' on the same weights: medians, ratio, max difference."""
    from diffusers import DPMSolverMultistepScheduler

    from nodes.models.loading import load_checkpoint
    from nodes.models.nodes import diffusion_model
    from nodes.sampling.guidance import CFGGuider
    from nodes.sampling.noise import seeded_noise, start_noise_scale
    from nodes.sampling.samplers import sample
    from nodes.sampling.schedules import get_sigmas

    ckpt = load_checkpoint(checkpoint, dtype=torch.float32)
    positive = ckpt.text_encoder.encode(prompt).context
    negative = ckpt.text_encoder.encode("").context
    factor, channels = ckpt.vae.config.downscale, ckpt.vae.config.z_channels
    noise = seeded_noise((1, channels, 64 // factor, 64 // factor), 42)
    denoiser = diffusion_model(ckpt.unet, "tiny_world").denoiser()
    sigmas = get_sigmas("karras", denoiser, steps)
    guider = CFGGuider(denoiser, {"context": positive}, {"context": negative}, scale=cfg)

    reference = diffusers_unet(ckpt.unet)
    scheduler = DPMSolverMultistepScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                            num_train_timesteps=1000, use_karras_sigmas=True,
                                            algorithm_type="dpmsolver++", solver_order=2,
                                            final_sigmas_type="zero")
    context = torch.cat([negative, positive])

    @torch.no_grad()
    def ours() -> torch.Tensor:
        return sample("dpmpp_2m", guider, noise * start_noise_scale(float(sigmas[0]), denoiser.sigma_max), sigmas)

    @torch.no_grad()
    def theirs() -> torch.Tensor:
        scheduler.set_timesteps(steps)
        latents = noise * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            model_input = scheduler.scale_model_input(torch.cat([latents] * 2), t)
            uncond, cond = reference(model_input, t, encoder_hidden_states=context).sample.chunk(2)
            latents = scheduler.step(uncond + cfg * (cond - uncond), t, latents).prev_sample
        return latents

    ours_out, theirs_out = ours(), theirs()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, bucket in ((ours, times[0]), (theirs, times[1])):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return {"ours": statistics.median(times[0]), "diffusers": statistics.median(times[1]),
            "max_abs_diff": float((ours_out - theirs_out).abs().max()),
            "latent_std": float(ours_out.std())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", default=str(ROOT / "graphs" / "txt2img.json"))
    parser.add_argument("--checkpoint", default=str(ROOT / "models" / "checkpoints" / "tiny_world.safetensors"))
    parser.add_argument("--cold", type=int, default=3, help="fresh-process runs")
    parser.add_argument("--warm", type=int, default=5, help="in-session runs after the first")
    parser.add_argument("--loop-repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    graph = Path(args.graph)
    data = json.loads(graph.read_text())
    ksampler = next(node for node in data["nodes"].values() if node["type"] == "KSampler")["inputs"]
    prompt = next(node for node in data["nodes"].values() if node["type"] == "EncodeText")["inputs"]["text"]

    print(f"{graph.name}: {ksampler['steps']} steps {ksampler['sampler']}/{ksampler['scheduler']}, "
          f"CFG {ksampler['cfg']}, torch threads {args.threads}")
    cold, rss = cold_runs(graph, args.cold, args.threads)
    print(f"cold  (new process, median of {args.cold}): {cold:6.2f} s   peak RSS {rss:6.0f} MB"
          f"   [targets ≤ 10 s, ≤ 1536 MB]")
    first, warm = warm_runs(graph, args.warm)
    print(f"warm  (same session, new seed, median of {args.warm}): {warm:6.3f} s   (first run {first:.2f} s)"
          f"   [target ≤ 1.5 s]")
    loop = loop_comparison(Path(args.checkpoint), prompt, float(ksampler["cfg"]), int(ksampler["steps"]),
                           args.loop_repeats)
    print(f"loop  ({ksampler['steps']} CFG steps, median of {args.loop_repeats}): ours {loop['ours']:.3f} s   "
          f"diffusers {loop['diffusers']:.3f} s   ratio {loop['ours'] / loop['diffusers']:.2f}   "
          f"(max |Δ latent| {loop['max_abs_diff']:.1e} on latents of std {loop['latent_std']:.2f})")


if __name__ == "__main__":
    main()
