"""VAEEncodeForInpaint greys only what sampling regenerates fully: no grey seam in outpainting (#16 §5)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from nodegraph import Session
from nodegraph.node import NodeContext
from nodes.models.nodes import VAEEncodeForInpaint

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"


class RecordingVAE(torch.nn.Module):
    """A stand-in VAE (factor 4) that records the pixels it is asked to encode."""

    class config:
        downscale = 4

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[torch.Tensor] = []

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        self.seen.append(pixels.clone())
        return torch.nn.functional.avg_pool2d(pixels, 4)[:, :1].repeat(1, 4, 1, 1)


class Memory:
    def using(self, module):
        from contextlib import nullcontext

        return nullcontext()


def _encode(image: torch.Tensor, mask: torch.Tensor, grow: int) -> tuple[torch.Tensor, dict]:
    node = VAEEncodeForInpaint()
    node.context = NodeContext("encode", "VAEEncodeForInpaint", lambda *a: None, lambda nid: None,
                               {"memory": Memory()})
    vae = RecordingVAE()
    latent = node.run(vae, image, mask, grow)["latent"]
    return vae.seen[0], latent


def test_soft_mask_edge_keeps_the_original_pixels():
    """Under a feathered edge (0 < mask < 1) the encoder sees the image itself, not a grey blend."""
    image = torch.ones(1, 32, 32, 3)                                        # white, [0, 1]
    mask = torch.zeros(1, 32, 32)
    mask[:, :, 24:] = 1.0
    mask[:, :, 16:24] = torch.linspace(0.1, 0.9, 8)                         # an 8-px feather
    seen, latent = _encode(image, mask, 0)
    assert torch.equal(seen[0, :, :, :16], torch.ones(3, 32, 16))           # untouched outside the mask
    assert torch.equal(seen[0, :, :, 16:24], torch.ones(3, 32, 8))          # soft edge: the image (1 = white)
    assert float(seen[0, :, :, 24:].abs().max()) == 0.0                     # fully masked: grey (0 in [-1, 1])
    assert torch.equal(latent["noise_mask"], mask)                          # sampling still blends softly


def test_grey_area_is_whole_latent_cells():
    """Pixels are greyed only inside latent cells the sampler regenerates completely."""
    image = torch.ones(1, 16, 16, 3)
    mask = torch.zeros(1, 16, 16)
    mask[:, :, 6:] = 1.0                                                    # cell 1 (px 4-7) is half masked
    seen, _ = _encode(image, mask, 0)
    assert torch.equal(seen[0, :, :, :8], torch.ones(3, 16, 8))             # cells 0 and 1 keep the image
    assert float(seen[0, :, :, 8:].abs().max()) == 0.0                      # cells 2 and 3 are grey


def test_outpaint_graph_has_no_grey_seam():
    """In graphs/outpaint.json the background rows above the object stay as bright across the pad edge
    as on either side of it (the old node left a 20/255 dip there)."""
    graph = json.loads((GRAPHS / "outpaint.json").read_text())
    graph["nodes"]["show"] = {"type": "ShowValue", "inputs": {"value": {"node": "decode", "output": "image"}}}
    result = Session().run(graph).outputs["show"]["value"]                 # (1, 64, 64, 3)
    brightness = result[0, :8].mean(-1).mean(0) * 255                       # rows 0-7: background only
    reference = float(torch.cat([brightness[8:20], brightness[52:64]]).median())
    seam = brightness[24:48]                                                # the 8-px feather and 4 px growth
    assert reference - float(seam.min()) < 6.0, [round(float(v)) for v in seam]
