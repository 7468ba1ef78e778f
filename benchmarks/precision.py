"""Resident memory, per-step time and output difference of fp32 / bf16 / fp16 / FP8-stored weights.

Loads a UNet checkpoint (default: the shipped tiny-world model) once per precision through the
ordinary loader (``load_checkpoint(dtype=...)``; FP8 = Linear / Conv weights stored in float8,
computed in fp32 on the CPU and bf16 on a GPU, see nodes/models/precision.py) and prints, per row:
resident bytes of the UNet and bytes per parameter, the ratio to bf16, the median time of one
UNet step (a CFG pair, batch 2), and the relative RMS difference of the output from fp32.

    python benchmarks/precision.py [--checkpoint PATH] [--device cpu|cuda] [--size 32] [--repeats 10]
        [--threads 1] [--flux]   # --flux: a 2+4-block, 512-wide Flux transformer with random weights

On a machine without a GPU only CPU rows are printed (it says so); GPU it/s needs a CUDA device
(``--device cuda``), where FP8 computes in bf16.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _unet_case(checkpoint: Path, dtype, device: str, size: int):
    from nodes.models.loading import load_checkpoint

    unet = load_checkpoint(checkpoint, dtype=dtype, components=("unet",)).unet.to(device)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, unet.config.in_channels, size, size, generator=generator).to(device)
    context = torch.randn(2, 77, unet.config.context_dim, generator=generator).to(device)
    t = torch.tensor([50.0, 700.0], device=device)
    return unet, lambda: unet(x, t, context)


def _flux_case(path: Path, dtype, device: str, size: int):
    from nodes.models.flux import load_flux

    model = load_flux(path, dtype=dtype).to(device)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, model.config.latent_channels, size, size, generator=generator).to(device)
    context = torch.randn(1, 64, model.config.context_in_dim, generator=generator).to(device)
    y = torch.randn(1, model.config.vec_in_dim, generator=generator).to(device)
    t = torch.tensor([0.7], device=device)
    return model, lambda: model(x, t, context, y=y, guidance=3.5)


def _write_flux(folder: Path) -> Path:
    from nodes.models.flux import FluxConfig, FluxModel, save_flux

    torch.manual_seed(0)
    config = FluxConfig(in_channels=64, out_channels=64, vec_in_dim=768, context_in_dim=512, hidden_size=512,
                        num_heads=4, depth=2, depth_single_blocks=4)
    path = folder / "flux_small.safetensors"
    save_flux(path, FluxModel(config), dtype=torch.bfloat16)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "models" / "checkpoints" / "tiny_world.safetensors")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=32, help="latent height and width")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--flux", action="store_true", help="a small random Flux transformer instead of the UNet")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from nodes.models.precision import WeightStorage, default_compute_dtype, resident_bytes

    compute = default_compute_dtype(args.device)
    rows = [("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16),
            ("fp8_e4m3fn", WeightStorage(torch.float8_e4m3fn, compute)),
            ("fp8_e5m2", WeightStorage(torch.float8_e5m2, compute))]
    if args.device == "cpu":
        rows = [r for r in rows if r[0] != "fp16"]   # fp16 matmuls on the CPU are emulated: not a real option
        print("no GPU used: CPU rows only (GPU it/s needs --device cuda on a CUDA machine)")
    if args.flux:
        import tempfile

        folder = Path(tempfile.mkdtemp())
        source = _write_flux(folder)
        make = lambda dtype: _flux_case(source, dtype, args.device, args.size)  # noqa: E731
        what = f"Flux (2 double + 4 single blocks, width 512), latent {args.size}x{args.size}"
    else:
        make = lambda dtype: _unet_case(args.checkpoint, dtype, args.device, args.size)  # noqa: E731
        what = f"UNet of {args.checkpoint.name}, latent {args.size}x{args.size}, batch 2"
    print(f"{what}; device {args.device}, FP8 computes in {str(compute).removeprefix('torch.')}, "
          f"{args.threads} thread(s)")
    reference = None
    bf16_bytes = None
    results = []
    for name, dtype in rows:
        model, step = make(dtype)
        parameters = sum(p.numel() for p in model.parameters())
        with torch.no_grad():
            out = step().float()
            times = []
            for _ in range(args.repeats):
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                start = time.perf_counter()
                step()
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
        if reference is None:
            reference = out
        resident = resident_bytes(model)
        if name == "bf16":
            bf16_bytes = resident
        error = ((out - reference).norm() / reference.norm()).item()
        results.append((name, resident, resident / parameters, statistics.median(times), error))
        del model
    print(f"{'weights':<12}{'resident MB':>12}{'B/param':>9}{'x bf16':>8}{'ms/step':>10}{'steps/s':>9}"
          f"{'rel. RMS diff vs fp32':>24}")
    for name, resident, per_parameter, seconds, error in results:
        print(f"{name:<12}{resident / 1e6:>12.2f}{per_parameter:>9.2f}{resident / bf16_bytes:>8.2f}"
              f"{seconds * 1e3:>10.1f}{1 / seconds:>9.1f}{error:>24.4f}")


if __name__ == "__main__":
    main()
