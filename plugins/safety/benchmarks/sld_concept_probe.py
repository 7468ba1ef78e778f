"""Probe: is SLD's shortfall on the tiny model the concept text? Learn the concept instead, then measure SLD.

    .venv/bin/python plugins/safety/benchmarks/sld_concept_probe.py [--count 16] [--steps 300]

The tiny text encoder was trained on whole captions, so a bare concept phrase ("star") is out of its
distribution. This script learns the concept the way people add one a text encoder lacks: a
textual-inversion embedding (Gal et al. 2022; two input vectors, the UNet and text encoder frozen,
the eps objective on the model's own schedule) on 512 renders of stars of every colour, size,
position and background. It then writes a contact sheet (the embedding alone as a prompt, top row;
"a star", bottom row) and evaluates, on safety.py's tuning prompts, negative-concept guidance and
SLD with the learned concept under the paper's presets and two custom settings.

Measured here (16 + 16 tuning prompts, 2026-12-02, see README "Measured"): the embedding alone draws
stars of many colours and positions, so the concept is learned; yet SLD with it, even at the "max"
preset, leaves 100 % of the requested stars (detector), and negative-concept guidance with it too.
"""

from __future__ import annotations

import argparse
import functools
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import safety as bench  # noqa: E402  (the benchmark's generation and judging code, and its imports)
from nodegraph_safety.concepts import parse_concept  # noqa: E402
from nodegraph_safety.sld import PRESETS, NegativeConceptTerm, SafeLatentDiffusionTerm, SLDParameters  # noqa: E402
from nodes.models.embeddings import TextualInversion  # noqa: E402
from nodes.models.tokenizer import tokenize_prompt  # noqa: E402
from nodes.sampling.schedules import alphas_cumprod_from_betas, scaled_linear_betas  # noqa: E402


def learn_concept(ckpt, images: int, steps: int, vectors_count: int = 2, batch: int = 16) -> torch.Tensor:
    """Textual inversion: input vectors whose prompt makes the frozen model predict the renders' noise."""
    world, encoder_name = bench.world, None
    rng = random.Random("sld-concept-probe")
    rules = parse_concept(bench.DEFAULT_CONCEPT).rules
    scenes = []
    while len(scenes) < images:
        scene = world.sample_held_out_scene(rng, rules)
        if len(scene.objects) == 1:
            scenes.append(scene)
    pixels = torch.from_numpy(np.stack([world.render(s, 64) for s in scenes])).float().div(255).movedim(-1, 1) * 2 - 1
    with torch.no_grad():
        latents = torch.cat([ckpt.vae.encode(pixels[i:i + 64]) for i in range(0, images, 64)])
    text = ckpt.text_encoder
    encoder_name, encoder = next(iter(text.encoders.items()))
    for module in (ckpt.unet, encoder):
        module.requires_grad_(False)
    config, vocab = encoder.config, text.tokenizer.vocab_size
    word = tokenize_prompt(text.tokenizer, bench.DEFAULT_CONCEPT).ids(config.pad_token_id, 1)[0, 1]
    start = encoder.text_model.embeddings.token_embedding.weight[word].detach()
    vectors = torch.nn.Parameter(start.repeat(vectors_count, 1))           # start from the word itself
    placeholder = {"c": list(range(vocab, vocab + vectors_count))}
    ids = tokenize_prompt(text.tokenizer, "embedding:c", placeholder).ids(config.pad_token_id, 1)
    ids = torch.where(ids >= vocab, ids - vocab + config.vocab_size, ids)
    alphas_cumprod = alphas_cumprod_from_betas(scaled_linear_betas()).float()
    optimiser = torch.optim.AdamW([vectors], lr=5e-3, weight_decay=0.0)
    generator = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    for step in range(steps):
        x0 = latents[torch.randint(0, images, (batch,), generator=generator)]
        t = torch.randint(0, 1000, (batch,), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        a = alphas_cumprod[t].view(-1, 1, 1, 1)
        hidden, _ = encoder(ids, layer=config.output_layer, pooled=False, extra_embeddings=vectors)
        prediction = ckpt.unet(a.sqrt() * x0 + (1 - a).sqrt() * noise, t.float(),
                               context=hidden.float().expand(batch, -1, -1))
        loss = torch.nn.functional.mse_loss(prediction.float(), noise)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"textual inversion step {step}: loss {loss.item():.4f} ({time.perf_counter() - started:.0f} s)",
                  flush=True)
    return vectors.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=16, help="tuning prompts per set")
    parser.add_argument("--steps", type=int, default=300, help="textual-inversion steps")
    parser.add_argument("--images", type=int, default=512, help="star renders to learn the concept from")
    parser.add_argument("--sheet", default="output/sld_concept_probe.png", help="contact sheet of the concept")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ckpt = bench.load_checkpoint(str(bench.ROOT / "models" / "checkpoints" / "tiny_world.safetensors"),
                                 dtype=torch.float32)
    vectors = learn_concept(ckpt, args.images, args.steps)
    embedding = {"starc": TextualInversion("starc", {"*": vectors})}
    concept = {"context": ckpt.text_encoder.encode("embedding:starc", embeddings=embedding).context}

    from PIL import Image

    encode = ckpt.text_encoder.encode
    ckpt.text_encoder.encode = lambda prompts, **kw: encode(prompts, embeddings=embedding, **kw)
    sheet = bench.generate(ckpt, ["embedding:starc"] * 8 + [bench.DEFAULT_CONCEPT] * 8, "", (), 20, 7)
    ckpt.text_encoder.encode = encode
    Path(args.sheet).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([np.concatenate(list(sheet[:8]), 1), np.concatenate(list(sheet[8:]), 1)], 0)
                    ).save(args.sheet)
    print(f"contact sheet: {args.sheet} (top: the learned concept alone; bottom: '{bench.DEFAULT_CONCEPT}')")

    rows = [("none", "", ()), ("negative concept (learned)", "", (functools.partial(NegativeConceptTerm, concept),))]
    settings = [(name, PRESETS[name]) for name in ("medium", "strong", "max")]
    settings += [("d5 l0.01 s1000 m0.3", SLDParameters(5, 1000, 0.01, 0.3, 0.4)),
                 ("d0 l0.025 s2000 m0.5", SLDParameters(0, 2000, 0.025, 0.5, 0.7))]
    rows += [(f"SLD (learned) {label}", "", (functools.partial(SafeLatentDiffusionTerm, concept, p),))
             for label, p in settings]
    sets = bench.prompt_sets(args.count, "safety-tuning", (0,))
    bench.print_header()
    bench.evaluate_rows(ckpt, bench.load_checker(), bench.world_detector.load_classifier(), rows, sets, 20, 1234,
                        {name for name, *_ in rows})


if __name__ == "__main__":
    main()
