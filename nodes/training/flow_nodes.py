"""TrainFlow: a tiny rectified-flow MMDiT (SD3's architecture and objective) trained as a graph node.

    TrainFlow   DATASET, TEXT_ENCODER (a frozen CLIP, e.g. the tiny world's), VAE (frozen)
                → MODEL (a flow MODEL: velocity, FlowTimeMap), TEXT_ENCODER (family "sd3": the same
                  CLIP in SD3's text layout), report

The MMDiT (nodes/models/mmdit.py) reads the CLIP's hidden states as its context tokens (the first
``context_tokens`` of them) and the CLIP's pooled vector as its ``y``; the returned TEXT_ENCODER is
an ``SD3TextEncoder`` with exactly that layout, so EncodeTextSD3 / EncodeText / api.encode_text give
the model what it was trained on, and SaveCheckpoint writes the trio as an SD3-layout file that
LoadCheckpoint reads with no arguments (flow_checkpoint.py). The loop itself is flow.py.

Registered by nodes.py's ``register_nodes``; shares its run-folder, progress and error helpers.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from nodegraph import Input, Node, NodeInputError, NodeInputs, Output

from .nodes import _content_digest, _data_text, _encode_pixels, _on_compute_device, _progress, _run, _run_folder, _train


def _encode_flow_dataset(node: Node, dataset: Any, vae: Any, encoder: Any) -> Any:
    """VAE latents of every image and the text encoder's (context, y) of every caption, computed once."""
    import torch

    from .flow import FlowData

    latents, contexts, pooled = [], [], []
    images, captions = [], []
    with torch.no_grad(), _on_compute_device(node, vae, encoder):   # the data stays on the CPU
        for i in range(len(dataset)):
            image, caption = dataset[i][:2]
            images.append(image)
            captions.append(caption)
            if len(images) == 128 or i == len(dataset) - 1:
                latents.append(_encode_pixels(vae, torch.stack(images)))
                cond = encoder.encode(captions)
                contexts.append(cond["context"].float().cpu())
                pooled.append(cond["y"].float().cpu())
                images, captions = [], []
                node.context.check_interrupted()
        empty = encoder.encode("")
    return FlowData(torch.cat(latents), torch.cat(contexts), torch.cat(pooled), empty["context"][0].float().cpu(),
                    empty["y"][0].float().cpu())


class TrainFlow(Node):
    """Train a small MMDiT (SD3's joint-attention transformer) with the rectified-flow objective.

    Velocity target v = ε − x0 on x_t = (1 − t) x0 + t ε, times drawn logit-normal (SD3) or
    uniform, in the latent space of a frozen VAE and conditioned on a frozen CLIP text encoder
    (its hidden states as context tokens, its pooled vector through adaLN). Caption dropout
    trains the unconditional branch CFG needs; EMA weights are returned.
    """

    category = "training"

    class Inputs(NodeInputs):
        dataset: Any = Input(port="DATASET")
        text_encoder: Any = Input(port="TEXT_ENCODER", description="a CLIP text encoder, kept frozen (e.g. "
                                                                   "LoadCheckpoint of tiny_world.safetensors)")
        vae: Any = Input(port="VAE", description="kept frozen; the model works in its latent space")
        depth: int = Input(6, ge=1, le=64, description="joint blocks")
        heads: int = Input(2, ge=1, le=64)
        head_dim: int = Input(64, ge=8, le=256, multiple_of=4)
        patch_size: int = Input(2, ge=1, le=8)
        context_tokens: int = Input(24, ge=0, le=77, description="CLIP tokens the model reads (0 = all 77); the "
                                                                 "pooled vector always sees the whole prompt")
        time_sampling: Literal["logit_normal", "uniform"] = Input("logit_normal")
        logit_mean: float = Input(0.0, ge=-5.0, le=5.0)
        logit_std: float = Input(1.0, gt=0.0, le=5.0)
        shift: float = Input(1.0, gt=0.0, le=100.0, description="sampling time shift recorded with the model "
                                                                  "(SD3 at 1024 px: 3.0)")
        steps: int = Input(3000, ge=1, le=10_000_000)
        batch_size: int = Input(64, ge=1, le=4096)
        grad_accumulation: int = Input(1, ge=1, le=1024)
        lr: float = Input(6e-4, gt=0.0, le=1.0)
        warmup_steps: int = Input(100, ge=0, le=1_000_000)
        ema_decay: float = Input(0.995, ge=0.0, lt=1.0)
        caption_dropout: float = Input(0.1, ge=0.0, le=1.0)
        grad_clip: float = Input(1.0, ge=0.0, le=1000.0)
        mixed_precision: Literal["no", "bf16"] = Input("bf16")
        seed: int = Input(0, seed=True)
        checkpoint_every: int = Input(250, ge=0, le=10_000_000)
        run_name: str = Input("flow", file_name_in="output", subfolders=True, min_length=1, max_length=80)
        init_model: Any = Input(None, port="MODEL", description="continue from this flow model's weights (an MMDiT "
                                                                 "of the same size, e.g. a shipped one); empty: start "
                                                                 "from scratch")

    outputs = (Output("model", "MODEL"), Output("text_encoder", "TEXT_ENCODER"), Output("report", "STRING"))

    def run(self, dataset: Any, text_encoder: Any, vae: Any, depth: int, heads: int, head_dim: int,
            patch_size: int, context_tokens: int, time_sampling: str, logit_mean: float, logit_std: float,
            shift: float, steps: int, batch_size: int, grad_accumulation: int, lr: float, warmup_steps: int,
            ema_decay: float, caption_dropout: float, grad_clip: float, mixed_precision: str, seed: int,
            checkpoint_every: int, run_name: str, init_model: Any = None) -> dict:
        import torch

        from nodes.models.clip import PromptEncoder
        from nodes.models.mmdit import MMDiT, MMDiTConfig
        from nodes.models.nodes import TextEncoder, sd3_diffusion_model
        from nodes.models.sd3 import SD3TextEncoder

        from .flow import init_mmdit_weights, train_flow
        from .trainer import TrainConfig

        folder = _run_folder(self, run_name)
        prompt_encoder = getattr(text_encoder, "encoder", None)
        clips = list(prompt_encoder.encoders.values()) if isinstance(prompt_encoder, PromptEncoder) else []
        if getattr(text_encoder, "family", None) in ("sd3", "t5") or len(clips) != 1:
            family = getattr(text_encoder, "family", type(text_encoder).__name__)
            why = (" (an SD3-layout checkpoint's text encoder, the flow model's own among them, is SD3's prompt "
                   "encoder, which this trainer does not take)" if family in ("sd3", "t5") else "")
            raise NodeInputError("text_encoder", f"expected a TEXT_ENCODER holding one CLIP, found a {family} one"
                                                 f"{why}; connect a second LoadCheckpoint of tiny_world.safetensors "
                                                 f"(or another SD 1.x-layout file) to text_encoder, as "
                                                 f"graphs/train/train_tiny_flow.json does")
        factor = vae.config.downscale
        size = int(dataset[0][0].shape[-1])
        if size % (factor * patch_size):
            raise NodeInputError("patch_size", f"images of {size} px give {size // factor}-wide latents, which "
                                               f"{patch_size}×{patch_size} patches do not tile; pick a divisor")
        clip = clips[0].requires_grad_(False).eval()
        width = clip.config.width
        pooled_width = clip.config.projection_dim or width
        encoder = SD3TextEncoder(clip, None, context_dim=width, clip_widths=(width, 0), pooled_dims=(pooled_width, 0),
                                 clip_tokens=context_tokens or None, empty_t5_tokens=0)
        grid = size // factor // patch_size
        config = MMDiTConfig(depth=depth, num_heads=heads, head_dim=head_dim, patch_size=patch_size,
                             in_channels=vae.config.z_channels, out_channels=vae.config.z_channels, context_dim=width,
                             pooled_dim=pooled_width, pos_embed_max_size=max(16, 2 * grid))
        torch.manual_seed(seed)
        mmdit = MMDiT(config)
        init_mmdit_weights(mmdit, torch.Generator().manual_seed(seed))
        if init_model is not None:
            start_net = getattr(init_model, "net", None)
            if not isinstance(start_net, MMDiT) or start_net.config != config:
                found = getattr(start_net, "config", type(start_net).__name__)
                raise NodeInputError("init_model", f"expected an MMDiT flow model of this size ({config}), found "
                                                   f"{found}; match depth, heads, head_dim, patch_size or leave "
                                                   f"init_model empty")
            with torch.no_grad():
                mmdit.load_state_dict({k: v.float() for k, v in start_net.state_dict().items()})
        train = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, min_lr=lr / 20, warmup_steps=warmup_steps,
                            grad_accumulation=grad_accumulation, grad_clip=grad_clip, ema_decay=ema_decay,
                            mixed_precision=mixed_precision, seed=seed, checkpoint_every=checkpoint_every)
        data = _encode_flow_dataset(self, dataset, vae, encoder)
        run = _run(self, run_name, folder, {
            "mmdit": repr(config), "train": repr(train),
            "data": _data_text(len(data.latents), data),
            "time": [time_sampling, logit_mean, logit_std], "dropout": caption_dropout,
            "context_tokens": context_tokens, "text": repr(clip.config),
            **({"start": _content_digest(init_model.net)} if init_model is not None else {})})
        with _on_compute_device(self, mmdit):
            report = _train(train_flow, mmdit, data, train, _progress(self), run, caption_dropout=caption_dropout,
                            time_sampling=time_sampling, logit_mean=logit_mean, logit_std=logit_std)
        mmdit.requires_grad_(False)
        mmdit.sampling_shift = shift
        model = sd3_diffusion_model(mmdit, run_name, preview=vae.preview, shift=shift)
        report["parameters"] = sum(p.numel() for p in mmdit.parameters())
        return {"model": model, "text_encoder": TextEncoder(encoder, "sd3"),
                "report": json.dumps(report, default=str)}
