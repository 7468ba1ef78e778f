"""nodegraph-safety: safety checking, safe guidance, output filtering and watermarking for nodegraph.

Library modules (plain torch / numpy, no engine imports, usable on their own):

    clip_vision.py    the CLIP vision tower (ViT) in the Hugging Face key layout
    checker.py        Stable Diffusion's safety checker: tower + projection + concept embeddings and
                      thresholds; the real checkpoint loads; file read / write
    concepts.py       "unsafe" concepts of the tiny world ("star", "red on black", ...) as scene predicates
    training.py       training a tiny checker of the same architecture on tiny-world renders
    sld.py            Safe Latent Diffusion (Schramowski et al. 2023) and negative-concept guidance math
    output_filter.py  blur / replace / drop flagged images
    watermark.py      invisible watermark (the invisible-watermark package, dwtDctSvd)

Adapters: ``nodes.py`` (the nodes and the plugin hooks; the entry point in group ``nodegraph``).
Models: ``models/tiny_world_safety.safetensors`` (the shipped tiny checker, concept "star").
"""

from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
#: The plugin's shipped models (the tiny-world checker); searched after the model folder "safety_checker".
SHIPPED_MODELS = PACKAGE_ROOT.parent / "models"
