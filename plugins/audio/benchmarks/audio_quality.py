"""The tiny text-to-audio model measured on held-out prompts by the analytic detector (issue 14's targets).

    .venv/bin/python plugins/audio/benchmarks/audio_quality.py [--model FILE] [--seeds 2] [--steps 20]
        [--cfg 2.0] [--sampler euler] [--scheduler normal] [--threads 1] [--json OUT.json] [--save-dir DIR]

Prompts: every held-out caption of the synthesised world (synth.held_out_prompts(): a fixed fifth of the
captions, never trained on — 107 prompts: 43 tones, 45 chords, 11 click tracks, 4 sweeps, 4 noise bursts),
each generated with `--seeds` seeds. Each run is done twice, with classifier-free guidance at `--cfg` and
without (cfg 1), same seeds, so the CFG gain is measured on identical noise.

Generation goes through the plugin's nodes and the public API only: a Session runs a graph of
audio.LoadAudioModel → a benchmark node that calls api.sample (the core sampler stack, batched) →
Griffin-Lim (features.decode, as LatentToAudio does). The conditioning is built as EncodeAudioPrompt
builds it, batched: tokens, and for a model with beat conditioning the beat-phase features (first click at
beat.DEFAULT_FIRST_CLICK, EncodeAudioPrompt's default; zeros for other prompts and the empty one).

Detector (detect.py; no learned parts): pitch = strongest peak of a zero-padded FFT in 200–1100 Hz,
"within a semitone" = |12·log2(f / f_note)| < 1 (also reported: nearest note right, < 0.5); chord quality =
best of 24 triad templates on a chroma vector has the right major/minor (root reported too); tempo =
60 / median inter-onset interval of log-energy onsets, within 5 %; sweep direction, noisiness, loudness word.
Targets (issue 14): pitch ≥ 90 %, chord quality ≥ 85 %, tempo ≥ 85 %, CFG helps. Time per clip: sampling
+ vocoding of a batch, divided by the clips, on this machine's CPU with `--threads` threads.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nodegraph import Input, Node, NodeInputs, Session, api, hookimpl
from nodegraph.model_paths import ModelPaths

from nodegraph_audio import detect, synth
from nodegraph_audio import nodes as audio_nodes

METRICS = ("pitch_semitone", "pitch_note", "chord_quality", "chord_root", "tempo_5pct", "sweep", "noise", "loudness")


class GenerateAudioBatch(Node):
    """Benchmark node: one batch of prompts → waveforms, through api.sample and Griffin-Lim."""

    category = "benchmark"
    output_node = True

    class Inputs(NodeInputs):
        model: Any = Input(port="MODEL")
        audio_model: Any = Input(port="AUDIO_MODEL")
        prompts: str = Input("[]")
        seed: int = Input(0)
        steps: int = Input(20)
        cfg: float = Input(3.0)
        sampler: str = Input("euler")
        scheduler: str = Input("normal")
        iterations: int = Input(48)

    outputs = ()

    def run(self, model: Any, audio_model: Any, prompts: str, seed: int, steps: int, cfg: float, sampler: str,
            scheduler: str, iterations: int) -> dict:
        from nodegraph_audio.beat import DEFAULT_FIRST_CLICK, batch_beat_features
        from nodegraph_audio.features import decode
        from nodegraph_audio.text import tokenize

        texts = json.loads(prompts)
        spec = audio_model.spec
        positive = {"tokens": torch.tensor([tokenize(t) for t in texts])}
        negative = {"tokens": torch.tensor([tokenize("")])}
        if audio_model.net.config.beat_conditioning:
            sounds = [synth.parse_caption(t) for t in texts]
            positive["beat"] = batch_beat_features(sounds, [DEFAULT_FIRST_CLICK] * len(texts), spec)   # (B, 4, T)
            negative["beat"] = batch_beat_features([None], [None], spec)                                # zeros
        latent = {"samples": torch.zeros(len(texts), 1, spec.bins, spec.frames)}
        started = time.perf_counter()
        with torch.no_grad():
            out = api.sample(self.context, model, positive, negative, latent, seed=seed, steps=steps, cfg=cfg,
                             sampler=sampler, scheduler=scheduler)
        sampled = time.perf_counter()
        waves = decode(out["samples"], spec, iterations=iterations, seed=seed)
        return {"waves": waves.numpy(), "latents": out["samples"], "seconds_sampling": sampled - started,
                "seconds_vocoding": time.perf_counter() - sampled}


class BenchmarkPlugin:
    """Registers the benchmark node."""

    @hookimpl
    def register_nodes(self) -> list:
        return [GenerateAudioBatch]


def generate(session: Session, model_name: str, prompts: list[str], seed: int, args: argparse.Namespace,
             cfg: float) -> tuple[np.ndarray, float, float]:
    """Waveforms for `prompts` (in batches), and the seconds spent sampling and vocoding."""
    waves, sampling, vocoding = [], 0.0, 0.0
    for start in range(0, len(prompts), args.batch):
        chunk = prompts[start:start + args.batch]
        graph = {"format_version": 1, "nodes": {
            "load": {"type": "audio.LoadAudioModel", "inputs": {"model_name": model_name, "shift": args.shift}},
            "gen": {"type": "bench.GenerateAudioBatch", "inputs": {
                "model": {"node": "load", "output": "model"}, "audio_model": {"node": "load", "output": "audio_model"},
                "prompts": json.dumps(chunk), "seed": seed + start, "steps": args.steps, "cfg": cfg,
                "sampler": args.sampler, "scheduler": args.scheduler, "iterations": args.iterations}}}}
        result = session.run(graph).outputs["gen"]
        waves.append(result["waves"])
        sampling += result["seconds_sampling"]
        vocoding += result["seconds_vocoding"]
    return np.concatenate(waves), sampling, vocoding


def score(waves: np.ndarray, specs: list) -> dict[str, Any]:
    """Mean of each detector hit over the clips that ask for it, plus the clip counts."""
    hits: dict[str, list[float]] = {m: [] for m in METRICS}
    for wave, spec in zip(waves, specs):
        for key, value in detect.score_clip(wave, spec).items():
            if key in hits:
                hits[key].append(value)
    return {m: (float(np.mean(v)) if v else None, len(v)) for m, v in hits.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="a model file (default: the shipped tiny_t2a.safetensors)")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cfg", type=float, default=2.0)
    parser.add_argument("--shift", type=float, default=1.0)
    parser.add_argument("--sampler", default="euler")
    parser.add_argument("--scheduler", default="normal")
    parser.add_argument("--iterations", type=int, default=48, help="Griffin-Lim iterations")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, default=0, help="only the first N prompts (quick checks)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the cfg 1 run")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--save-dir", default=None, help="write the first seed's clips as WAV files here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model_name, model_paths = audio_nodes.DEFAULT_MODEL, None
    if args.model:   # only that file's folder is searched (no root models/audio file of the same name can shadow it)
        path = Path(args.model).resolve()
        model_paths = ModelPaths(roots=[], extra={audio_nodes.MODEL_FOLDER: [path.parent]})
        model_name = path.name
    session = Session(plugins=[("audio", audio_nodes), ("bench", BenchmarkPlugin())], autoload=False,
                      model_paths=model_paths)

    held_out = synth.held_out_prompts()
    if args.limit:
        held_out = held_out[: args.limit]
    prompts = [text for text, _ in held_out] * args.seeds
    specs = [spec for _, spec in held_out] * args.seeds
    rows = {}
    for label, cfg in [(f"cfg {args.cfg:g}", args.cfg)] + ([] if args.no_baseline else [("cfg 1 (no guidance)", 1.0)]):
        waves, sampling, vocoding = generate(session, model_name, prompts, 1000, args, cfg)
        rows[label] = {"scores": score(waves, specs), "seconds_per_clip_sampling": sampling / len(prompts),
                       "seconds_per_clip_vocoding": vocoding / len(prompts)}
        if args.save_dir and cfg == args.cfg:
            from nodegraph_audio.waveform import write_audio

            folder = Path(args.save_dir)
            folder.mkdir(parents=True, exist_ok=True)
            for index, (text, _) in enumerate(held_out):
                write_audio(folder / f"{index:03d}_{text.replace(' ', '_')}.wav", torch.from_numpy(waves[index][None]),
                            synth.SAMPLE_RATE)

    print(f"held-out prompts: {len(held_out)} × {args.seeds} seeds = {len(prompts)} clips; {args.steps} steps "
          f"{args.sampler}/{args.scheduler}, shift {args.shift:g}, Griffin-Lim {args.iterations} it., "
          f"{args.threads} thread(s)")
    header = "| metric | " + " | ".join(rows) + " |"
    print(header)
    print("|" + "---|" * (len(rows) + 1))
    for metric in METRICS:
        cells = []
        for row in rows.values():
            value, count = row["scores"][metric]
            cells.append("–" if value is None else f"{100 * value:.1f} % (n={count})")
        print(f"| {metric} | " + " | ".join(cells) + " |")
    for label, row in rows.items():
        print(f"{label}: {row['seconds_per_clip_sampling']:.3f} s/clip sampling + "
              f"{row['seconds_per_clip_vocoding']:.3f} s/clip Griffin-Lim")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
