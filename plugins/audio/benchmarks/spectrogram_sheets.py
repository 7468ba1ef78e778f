"""Pictures of what the shipped audio model makes: the README's two spectrogram sheets.

    .venv/bin/python plugins/audio/benchmarks/spectrogram_sheets.py [--out plugins/audio/benchmarks]

- held_out_sheet.png: row 1, one prompt of every kind (tones, chords, sweeps, clicks, noise); row 2, the
  held-out click and sweep prompts (never trained on). txt2audio.json at its defaults (cfg 2, 20 euler
  steps), seed 1, drawn by AudioSpectrogramImage (0–4 kHz, bottom to top; time left to right).
- demo_graphs_sheet.png: the spectrograms the three demo graphs save (txt2audio, audio_inpaint with its
  source, audio2audio with its source), labelled.
Both read only shipped files; a run takes well under a minute on one thread.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from nodegraph import Session
from nodegraph_audio import synth

PLUGIN = Path(__file__).resolve().parents[1]
KINDS_ROW = ["loud c4 tone", "quiet a5 tone", "c4 major chord", "a4 minor chord", "rising sweep", "falling sweep",
             "clicks at 60 bpm", "clicks at 180 bpm", "loud noise burst", "quiet noise burst"]
DEMO_PICTURES = [("txt2audio", "txt2audio", "txt2audio_spectrogram"),
                 ("inpaint_source", "audio_inpaint", "inpaint_source_spectrogram"),
                 ("inpaint", "audio_inpaint", "inpaint_spectrogram"),
                 ("audio2audio_source", "audio2audio", "audio2audio_source_spectrogram"),
                 ("audio2audio", "audio2audio", "audio2audio_spectrogram")]


def graph(name: str) -> dict:
    return json.loads((PLUGIN / "graphs" / f"{name}.json").read_text())


def as_image(tensor: torch.Tensor) -> Image.Image:
    """An IMAGE batch's first image (H, W, 3 in [0, 1]) as a PIL image."""
    return Image.fromarray((tensor[0].numpy() * 255).round().astype(np.uint8))


def sheet(rows: list[tuple[str, list[Image.Image]]], tile: tuple[int, int], gap: int = 4) -> Image.Image:
    """Labelled rows of equally sized tiles."""
    width = max(len(images) for _, images in rows) * (tile[0] + gap)
    out = Image.new("RGB", (width, len(rows) * (tile[1] + 18)), "white")
    draw = ImageDraw.Draw(out)
    for i, (label, images) in enumerate(rows):
        top = i * (tile[1] + 18)
        draw.text((2, top + 2), label, fill="black")
        for j, image in enumerate(images):
            out.paste(image.convert("RGB").resize(tile), (j * (tile[0] + gap), top + 18))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(PLUGIN / "benchmarks"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        session = Session(autoload=True, allow=["audio"], output_dir=tmp)
        txt2audio = graph("txt2audio")

        def picture(text: str) -> Image.Image:
            g = copy.deepcopy(txt2audio)
            g["nodes"]["prompt"]["inputs"]["text"] = text
            g["nodes"]["sample"]["inputs"]["seed"] = 1
            return as_image(session.run(g, outputs=["picture"]).outputs["picture"]["image"])

        held_out = [c for c, spec in synth.all_prompts() if synth.is_held_out(c) and spec.kind in ("clicks", "sweep")]
        sampler = txt2audio["nodes"]["sample"]["inputs"]
        setting = f"cfg {sampler['cfg']:g}, {sampler['steps']} {sampler['sampler']} steps, seed 1"
        sheet([(f"shipped model, {setting}: " + ", ".join(KINDS_ROW), [picture(t) for t in KINDS_ROW]),
               (f"held-out click and sweep prompts, {setting}: " + ", ".join(held_out), [picture(t) for t in held_out])],
              (96, 256)).save(out / "held_out_sheet.png")
        tiles = []
        for name in ("txt2audio", "audio_inpaint", "audio2audio"):
            session.run(graph(name))
        for label, _graph_name, prefix in DEMO_PICTURES:
            tiles.append(Image.open(sorted(Path(tmp).rglob(f"{prefix}_*.png"))[-1]))
        sheet([("demo graphs: " + ", ".join(label for label, _, _ in DEMO_PICTURES), tiles)],
              tiles[0].size, gap=10).save(out / "demo_graphs_sheet.png")
    print(f"wrote {out / 'held_out_sheet.png'} and {out / 'demo_graphs_sheet.png'}")


if __name__ == "__main__":
    main()
