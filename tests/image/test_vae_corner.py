"""The shipped VAE's top-right corner blob (#16 §5): a known defect until the decoder is retrained.

Cause (docs/training.md, "The corner blob"): the encoder's mid-block attention writes a code into
the top-right latent cells and the decoder undoes exactly that code, so latents that miss it (all
sampled ones) decode with a blob there. The measurement below is strict-xfail: when a retrained
VAE removes the blob, it XPASSes and fails the suite, so the marker must go.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nodes.models.loading import load_checkpoint
from nodes.training import world

CHECKPOINT = Path(__file__).resolve().parents[2] / "models" / "checkpoints" / "tiny_world.safetensors"


def corner_errors() -> tuple[float, float]:
    """Mean |error| (0-255) of decoding each flat colour's mean latent: top-right 4x4 px, and the other corners."""
    vae = load_checkpoint(CHECKPOINT, components=("vae",), dtype=torch.float32).vae
    rgb = torch.tensor(list(world.COLOURS.values()), dtype=torch.float32)            # (10, 3)
    images = (rgb / 127.5 - 1).view(-1, 3, 1, 1).expand(-1, 3, 64, 64)
    with torch.no_grad():
        latents = vae.encode(images)
        flat = latents.mean(dim=(2, 3), keepdim=True).expand_as(latents)             # the code removed
        error = ((vae.decode(flat).float() - images).abs().mean(1) * 127.5)          # (10, 64, 64)
    top_right = float(error[:, :4, -4:].mean())
    others = float(torch.stack([error[:, :4, :4], error[:, -4:, :4], error[:, -4:, -4:]]).mean())
    return top_right, others


@pytest.mark.xfail(strict=True, reason="#16: the shipped decoder depends on a top-right latent code; needs a VAE "
                                       "retrain (docs/training.md, 'The corner blob')")
def test_decoder_has_no_top_right_blob():
    """A latent without the encoder's corner code decodes as cleanly in the top-right as in the other corners."""
    top_right, others = corner_errors()
    assert top_right < 1.3 * others + 1.0, (top_right, others)         # shipped: 11.1 vs 5.5
