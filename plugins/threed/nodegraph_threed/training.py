"""Training the tiny text-to-points model on procedural shapes (plain torch; the loop pieces come in as a kit).

    cosine_alphas_cumprod()      ᾱ_t of the cosine schedule (Nichol & Dhariwal 2021, eq. 17), 1000 steps —
                                 the table `api.diffusion_model(..., schedule="cosine")` samples with
    make_batch(...)              one batch, a pure function of (seed, step): specs, clouds, one-hot captions
    train_text_to_points(...)    v-objective DDPM training (Salimans & Ho 2022) with caption dropout for CFG,
                                 AdamW + warm-up/cosine lr, EMA, checkpoints and exact resume (the kit's
                                 TrainingRun), progress every step; returns a report
    run_identity(...)            what identifies a run (its checkpoints resume only the same settings)
    ema_from_checkpoint(...)     the EMA weights of a run's latest checkpoint (a run stopped early)
    save_model / load_model      the model file: safetensors weights + the config and vocabulary as metadata

The kit is `nodegraph.api.training(context)` (TrainConfig, EMA, TrainingRun, start_or_resume,
checkpoint, optimiser_step, diffusion_targets, lr_at). Passing it in keeps this module free of
engine imports. Data are generated on the fly from the training specs (held-out combinations never
appear), so a run needs no dataset on disk and every batch is reproducible from its step.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import torch

from .denoiser import PointDiffusionConfig, PointDiffusionTransformer
from .points import points_to_latent
from .shapes import ShapeSpec, sample_spec, training_specs
from .text import MAX_WORDS, VOCABULARY, encode_words

MODEL_FORMAT = "nodegraph_threed.text_to_points/1"


class ModelFileError(ValueError):
    """A text-to-points model file that cannot be loaded (names the file and what is wrong)."""


def cosine_alphas_cumprod(timesteps: int = 1000, offset: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """ᾱ_t, t = 0 … T−1, of the cosine schedule with betas clipped at max_beta (Nichol & Dhariwal 2021, eq. 17)."""
    steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    alpha_bar = torch.cos((steps + offset) / (1 + offset) * math.pi / 2) ** 2
    betas = (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)
    return torch.cumprod(1 - betas, dim=0)


def make_batch(specs: list[ShapeSpec], batch_size: int, points: int, seed: int, step: int, micro: int = 0,
               caption_dropout: float = 0.1, size_jitter: float = 0.05,
               colour_noise: float = 0.02) -> tuple[torch.Tensor, torch.Tensor, list[ShapeSpec]]:
    """(x0 latents (B, 6, N), one-hot words (B, L, V), specs): a pure function of (seed, step, micro)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step * 97 + micro)
    chosen = [specs[int(i)] for i in torch.randint(len(specs), (batch_size,), generator=generator)]
    clouds = torch.stack([sample_spec(s, points, generator, size_jitter=size_jitter, colour_noise=colour_noise)
                          for s in chosen])
    drop = torch.rand(batch_size, generator=generator) < caption_dropout
    words = torch.cat([encode_words("" if d else s.caption) for s, d in zip(chosen, drop.tolist())])
    return points_to_latent(clouds)["samples"], words, chosen


def train_text_to_points(net: PointDiffusionTransformer, kit: Any, config: Any, run: Any,
                         progress: Callable[[int, int, dict], None], *, points: int = 256,
                         caption_dropout: float = 0.1, size_jitter: float = 0.05,
                         specs: list[ShapeSpec] | None = None, timestep_buckets: int = 10) -> dict:
    """Train `net` with the v objective on procedural shapes; EMA weights end up in `net`. Returns a report.

    Args:
        net: the denoiser (fresh, or restored from `run` when it holds a state of the same run).
        kit: the training kit (nodegraph.api.training()).
        config: kit.TrainConfig (steps, batch_size, lr, warm-up, EMA, clipping, seed, checkpoint_every).
        run: kit.TrainingRun for checkpoints / exact resume (folder None = no checkpoints).
        progress: called as progress(done, total, info) every step (info: loss, lr, grad_norm).
        points: points per training cloud (the model samples any number later).
        caption_dropout: fraction of captions replaced by "" (the CFG unconditional branch).
        size_jitter: ± relative size noise per cloud, so sizes are a distribution, not a point.
        specs: the training specs (default: all but the held-out combinations).
    """
    specs = specs or training_specs()
    torch.manual_seed(config.seed)
    optimiser, ema, start = kit.start_or_resume(net, config, run)
    alphas_cumprod = cosine_alphas_cumprod(net.config.timesteps).float()
    parameters = [p for p in net.parameters() if p.requires_grad]
    bucket_sum = torch.zeros(timestep_buckets, dtype=torch.float64)
    bucket_count = torch.zeros(timestep_buckets, dtype=torch.float64)
    net.train()
    info: dict = {}
    for step in range(start, config.steps):
        for micro in range(config.grad_accumulation):
            x0, words, _ = make_batch(specs, config.batch_size, points, config.seed, step, micro,
                                      caption_dropout, size_jitter)
            generator = torch.Generator().manual_seed(config.seed * 31 + step * 7 + micro)
            t = torch.randint(0, len(alphas_cumprod), (len(x0),), generator=generator)
            noise = torch.randn(x0.shape, generator=generator)
            x_t, target = kit.diffusion_targets(x0, noise, alphas_cumprod[t], "v")
            per_item = (net(x_t, t.float(), words=words) - target).pow(2).mean(dim=(1, 2))
            loss = per_item.mean()
            (loss / config.grad_accumulation).backward()
            bucket = (t * timestep_buckets // len(alphas_cumprod)).clamp(max=timestep_buckets - 1)
            bucket_sum.index_add_(0, bucket, per_item.detach().double())
            bucket_count.index_add_(0, bucket, torch.ones_like(bucket, dtype=torch.float64))
        info = {"loss": loss.item(), "lr": kit.lr_at(step, config),
                "grad_norm": kit.optimiser_step(parameters, optimiser, config, step)}
        if ema is not None:
            ema.update(net)
        kit.checkpoint(run, config, step + 1, net, optimiser, ema)
        progress(step + 1, config.steps, info)
    if ema is not None:
        ema.copy_to(net)
    net.eval()
    edges = [round(i * len(alphas_cumprod) / timestep_buckets) for i in range(timestep_buckets + 1)]
    by_timestep = {f"{edges[i]}-{edges[i + 1] - 1}": (float(bucket_sum[i] / bucket_count[i])
                                                      if bucket_count[i] else None) for i in range(timestep_buckets)}
    return {**info, "loss_by_timestep": by_timestep, "steps": config.steps, "points": points,
            "objective": "v", "schedule": "cosine", "config": asdict(config)}


def run_identity(net_config: PointDiffusionConfig, config: Any, points: int, caption_dropout: float) -> dict:
    """What makes two training runs the same run (a saved state resumes only a run with this identity)."""
    return {"kind": "text_to_points", "config": net_config.to_json(), "train": str(config), "points": points,
            "caption_dropout": caption_dropout}


def ema_from_checkpoint(net: PointDiffusionTransformer, kit: Any, run: Any) -> int:
    """Load the EMA weights of a run's latest checkpoint into `net` (e.g. to ship a run stopped early); its step."""
    state = run.resume()
    if state is None:
        raise ModelFileError("no saved training state of this run (same settings) in its folder")
    net.load_state_dict({**state["model"], **(state["ema"] or {})})
    return int(state["step"])


def save_model(path: str | Path, net: PointDiffusionTransformer, report: dict | None = None) -> None:
    """Write the weights (float32 safetensors) with the config, vocabulary and training report as metadata."""
    from safetensors.torch import save_file

    metadata = {"format": MODEL_FORMAT, "config": json.dumps(net.config.to_json()),
                "vocabulary": json.dumps(list(VOCABULARY)), "prediction": "v", "schedule": "cosine",
                "report": json.dumps(report or {}, default=str)}
    save_file({k: v.detach().float().contiguous() for k, v in net.state_dict().items()}, str(path), metadata=metadata)


def load_model(path: str | Path, tensors: Any = None, metadata: dict | None = None) -> PointDiffusionTransformer:
    """A model file → PointDiffusionTransformer (eval mode); ModelFileError names what does not fit.

    `tensors` / `metadata` let a caller pass what it already opened (nodegraph.api.open_weights).
    """
    if tensors is None:
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        except Exception as error:   # safetensors raises several types for damaged files
            raise ModelFileError(f"{path}: not a readable safetensors file ({error})") from None
    metadata = metadata or {}
    if metadata.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path}: not a text-to-points model (format {metadata.get('format')!r}, expected "
                             f"{MODEL_FORMAT!r}); train one with graphs/train_text_to_points.json")
    vocabulary = json.loads(metadata.get("vocabulary", "[]"))
    if tuple(vocabulary) != VOCABULARY or json.loads(metadata["config"]).get("max_words") != MAX_WORDS:
        raise ModelFileError(f"{path}: its caption vocabulary differs from this plugin's; retrain it with this "
                             f"version of nodegraph-threed")
    config = PointDiffusionConfig(**json.loads(metadata["config"]))
    net = PointDiffusionTransformer(config)
    try:
        net.load_state_dict({key: tensors[key] for key in tensors.keys()})
    except (RuntimeError, KeyError) as error:
        raise ModelFileError(f"{path}: the weights do not fit the config in its metadata ({error})") from None
    return net.eval().requires_grad_(False)          # inference only: sampling builds no autograd graph
