"""Our UNet's forward time against diffusers' UNet2DConditionModel on the same weights (CPU).

Builds a small SD 1.5-structured diffusers UNet with random weights, saves it as a diffusers
folder, loads that with our ``load_unet``, checks both give the same output, then times
``--repeats`` alternating forward passes of each (after a warm-up) and prints the medians and the ratio.

    python benchmarks/unet_forward.py [--threads 1] [--size 32] [--batch 2] [--repeats 10] [--sdxl]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def _time_interleaved(first, second, repeats: int) -> tuple[float, float]:
    """Median seconds of each function, alternating calls so machine load drifts hit both alike."""
    first(), second()  # warm-up
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, samples in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--size", type=int, default=32, help="latent height and width")
    parser.add_argument("--batch", type=int, default=2, help="batch size (2 = one CFG pair)")
    parser.add_argument("--repeats", type=int, default=10, help="timed forward passes per model")
    parser.add_argument("--sdxl", action="store_true", help="SDXL block structure instead of SD 1.5")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import tempfile

    from diffusers import UNet2DConditionModel

    from nodes.models.loading import load_unet
    from nodes.models.unet import sdxl_vector

    if args.sdxl:
        config = {
            "block_out_channels": (64, 128, 256),
            "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            "transformer_layers_per_block": (1, 2, 2),
            "attention_head_dim": (1, 2, 4),
            "use_linear_projection": True,
            "cross_attention_dim": 256,
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": 256,
            "projection_class_embeddings_input_dim": 128 + 6 * 256,
        }
    else:
        config = {
            "block_out_channels": (64, 128, 256, 256),
            "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            "cross_attention_dim": 256,
            "attention_head_dim": 8,
        }
    reference = UNet2DConditionModel(**config).eval()
    with tempfile.TemporaryDirectory() as folder:
        reference.save_pretrained(folder)
        ours = load_unet(folder)
        # copy the weights out of the memory-mapped (temporary) file, as diffusers' are in RAM
        ours.load_state_dict({k: v.clone() for k, v in ours.state_dict().items()}, assign=True)

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 4, args.size, args.size, generator=generator)
    t = torch.full((args.batch,), 500.0)
    context = torch.randn(args.batch, 77, config["cross_attention_dim"], generator=generator)
    extra, kwargs = {}, {}
    if args.sdxl:
        pooled = torch.randn(args.batch, 128, generator=generator)
        time_ids = torch.tensor([[1024.0, 1024.0, 0.0, 0.0, 1024.0, 1024.0]] * args.batch)
        extra = {"y": sdxl_vector(pooled)}
        kwargs = {"added_cond_kwargs": {"text_embeds": pooled, "time_ids": time_ids}}

    with torch.inference_mode():
        a = ours(x, t, context, **extra)
        b = reference(x, t, encoder_hidden_states=context, **kwargs).sample
        error = ((a - b).abs().max() / b.abs().max()).item()
        ours_s, theirs_s = _time_interleaved(
            lambda: ours(x, t, context, **extra),
            lambda: reference(x, t, encoder_hidden_states=context, **kwargs),
            args.repeats,
        )

    structure = "SDXL" if args.sdxl else "SD 1.5"
    print(
        f"{structure}-structured UNet, widths {config['block_out_channels']}, "
        f"latent {args.batch}x4x{args.size}x{args.size}, {args.threads} thread(s), max relative difference {error:.1e}"
    )
    print(f"ours      {ours_s * 1000:8.1f} ms / forward (median of {args.repeats})")
    print(f"diffusers {theirs_s * 1000:8.1f} ms / forward")
    print(f"ratio ours / diffusers = {ours_s / theirs_s:.2f}")


if __name__ == "__main__":
    main()
