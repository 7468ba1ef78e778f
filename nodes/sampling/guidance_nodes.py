"""Guidance nodes: each appends one guidance term factory to a GUIDANCE list (thin adapters).

    PerturbedAttentionGuidance   PAG (Ahn et al. 2024): identity self-attention in chosen blocks
    SelfAttentionGuidance        SAG (Hong et al. 2023): blur where self-attention looks, guide away
    ColourClassifierGuidance     classifier guidance towards a tiny-world object colour (VAE decode +
                                 a differentiable colour classifier, nodes/training/world_guidance.py)

A GUIDANCE value is a tuple of term FACTORIES (``guidance.GuidanceFactory``), never terms:
the sampling code makes fresh terms for every run (``CFGGuider.for_run``), so a cached
GUIDANCE or GUIDER value stays pure even for terms with per-run state (SLD momentum). Every
node takes an optional ``guidance`` input and returns it with its own factory appended, so
nodes stack; CFGGuider and KSampler take the result. The terms live in guidance_terms.py.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

from nodegraph import Input, Node, NodeInputError, NodeInputs, Output, PortType

GUIDANCE = PortType("GUIDANCE", "Guidance terms added after CFG (PAG, SAG, classifier, safety...): a stack of "
                                "term factories; CFGGuider and KSampler take it.", color="#ce93d8")

COLOURS = Literal["red", "green", "blue", "yellow", "white", "black", "purple", "orange", "cyan", "gray"]


def _stacked(guidance: Any, factory: Any) -> tuple:
    """`guidance` (None or a GUIDANCE tuple) with `factory` appended."""
    if guidance is None:
        return (factory,)
    if not isinstance(guidance, (tuple, list)) or not all(callable(f) for f in guidance):
        raise NodeInputError("guidance", f"expected a GUIDANCE value (a tuple of term factories from a guidance "
                                         f"node), found {type(guidance).__name__}")
    return (*guidance, factory)


def _made(node_input: str, factory: Any) -> Any:
    """Build the term once now so bad settings fail here, naming the node input, not mid-sampling."""
    from .errors import SamplingError

    try:
        factory()
    except SamplingError as exc:
        inputs = {"sigma_range": "sigma_low", "scale": "scale", "blocks": "blocks", "blur_sigma": "blur_sigma"}
        raise NodeInputError(inputs.get(exc.argument, node_input), str(exc)) from None
    return factory


class PerturbedAttentionGuidance(Node):
    """Perturbed-attention guidance (PAG, Ahn et al. 2024): push away from the prediction whose
    self-attention in `blocks` is the identity: D + scale·(D_pos − D_perturbed). One extra model
    call per step; works with CFG or alone (cfg 1)."""

    category = "sampling/guidance"

    class Inputs(NodeInputs):
        guidance: Any = Input(None, port="GUIDANCE", description="optional: guidance to stack onto")
        scale: float = Input(3.0, ge=0.0, le=100.0, step=0.1, description="PAG scale (paper: 3.0; 0 = off)")
        blocks: str = Input("middle_block", description="UNet key paths whose self-attention is perturbed, "
                                                        "comma-separated (e.g. middle_block, input_blocks.4)")

        sigma_low: float = Input(0.0, ge=0.0, le=1e6, description="apply only for sigma in [low, high]")
        sigma_high: float = Input(1e6, ge=0.0, le=1e6)

    outputs = (Output("guidance", "GUIDANCE"),)

    def run(self, guidance: Any, scale: float, blocks: str, sigma_low: float, sigma_high: float) -> dict:
        from .guidance_terms import PerturbedAttentionGuidance as Term

        factory = _made("blocks", partial(Term, scale=scale, blocks=blocks, sigma_range=(sigma_low, sigma_high)))
        return {"guidance": _stacked(guidance, factory)}


class SelfAttentionGuidance(Node):
    """Self-attention guidance (SAG, Hong et al. 2023): blur the regions the self-attention map of
    `blocks` marks, predict again, and guide away from that prediction. One extra model call per step."""

    category = "sampling/guidance"

    class Inputs(NodeInputs):
        guidance: Any = Input(None, port="GUIDANCE", description="optional: guidance to stack onto")
        scale: float = Input(0.75, ge=0.0, le=100.0, step=0.05, description="SAG scale (paper: 0.75; 0 = off)")
        blur_sigma: float = Input(1.0, gt=0.0, le=10.0, step=0.1, description="Gaussian blur sigma, latent pixels")
        blocks: str = Input("middle_block", description="UNet key paths whose self-attention map is read")

        sigma_low: float = Input(0.0, ge=0.0, le=1e6, description="apply only for sigma in [low, high]")
        sigma_high: float = Input(1e6, ge=0.0, le=1e6)

    outputs = (Output("guidance", "GUIDANCE"),)

    def run(self, guidance: Any, scale: float, blur_sigma: float, blocks: str, sigma_low: float,
            sigma_high: float) -> dict:
        from .guidance_terms import SelfAttentionGuidance as Term

        factory = _made("blocks", partial(Term, scale=scale, blur_sigma=blur_sigma, blocks=blocks,
                                          sigma_range=(sigma_low, sigma_high)))
        return {"guidance": _stacked(guidance, factory)}


class _VAEDecoder:
    """Differentiable ``latents -> images in [-1, 1]`` on the VAE's device (gradients flow back across devices)."""

    def __init__(self, vae: Any):
        self.vae = vae

    def __call__(self, latents: Any) -> Any:
        parameter = next(self.vae.parameters(), None)
        device = parameter.device if parameter is not None else latents.device
        return self.vae.decode(latents.to(device))


def _colour_log_likelihood(images: Any, colour: str) -> Any:
    from nodes.training.world_guidance import colour_log_likelihood

    return colour_log_likelihood(images, colour)


class ColourClassifierGuidance(Node):
    """Classifier guidance towards an object colour of the tiny world: the denoised latent is decoded
    by the VAE and scored by a differentiable version of the world detector's colour step; the
    gradient of log p(colour) moves the denoised estimate (scaled by the posterior variance)."""

    category = "sampling/guidance"

    class Inputs(NodeInputs):
        vae: Any = Input(port="VAE")
        colour: COLOURS = Input("red")
        guidance: Any = Input(None, port="GUIDANCE", description="optional: guidance to stack onto")
        scale: float = Input(1.0, ge=0.0, le=1000.0, step=0.1, description="guidance scale (0 = off)")

        sigma_low: float = Input(0.0, ge=0.0, le=1e6, description="apply only for sigma in [low, high]")
        sigma_high: float = Input(1e6, ge=0.0, le=1e6)

    outputs = (Output("guidance", "GUIDANCE"),)

    def run(self, vae: Any, colour: str, guidance: Any, scale: float, sigma_low: float, sigma_high: float) -> dict:
        from .guidance_terms import DenoisedClassifierGuidance as Term

        if not callable(getattr(vae, "decode", None)) or not callable(getattr(vae, "parameters", None)):
            raise NodeInputError("vae", f"expected a VAE (e.g. from LoadCheckpoint), found {type(vae).__name__}")
        factory = _made("scale", partial(Term, partial(_colour_log_likelihood, colour=colour), scale=scale,
                                         decode=_VAEDecoder(vae), sigma_range=(sigma_low, sigma_high)))
        return {"guidance": _stacked(guidance, factory)}


NODES = [PerturbedAttentionGuidance, SelfAttentionGuidance, ColourClassifierGuidance]
