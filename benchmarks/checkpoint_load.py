"""Checkpoint loading time and peak memory on a full-size SD 1.5 single file (random fp16 weights).

Writes once, to ``benchmarks/.cache/`` (git-ignored), a ~2.1 GB ``.safetensors`` file with the
real SD 1.5 layout (LDM UNet, KL VAE, CLIP-L text encoder: every key and shape of the original
``v1-5-pruned-emaonly`` file) and random fp16 weights. Then runs ``load_checkpoint`` in fresh
subprocesses and reports, per run, the load time, the time to then touch every weight page once
(one element per 4 KiB page: what the first forward pass pays when loading is lazy), and the
child's peak RSS (its ``VmHWM``, i.e. ``ru_maxrss`` without the parent's peak that Linux carries
across exec; it counts the file pages mapped in, and the ~0.2 GB of importing torch, which is
also shown on its own).

Cold runs first evict the file from the page cache with ``posix_fadvise(POSIX_FADV_DONTNEED)``
(``/proc/sys/vm/drop_caches`` needs privileges containers rarely have) and print how much of the
file was still cached (``mincore``); warm runs read the file once beforehand. Medians of
``--repeats`` runs are printed next to the targets: warm load <= 2 s, peak RSS <= 1.3 x file size.

    python benchmarks/checkpoint_load.py [--repeats 3] [--dtype keep|float32]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import mmap
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"
CHECKPOINT = CACHE / "sd15_layout_random_fp16.safetensors"
ROOT = Path(__file__).resolve().parent.parent
PAGE = os.sysconf("SC_PAGE_SIZE")


# --- the cached checkpoint ----------------------------------------------------------------------


def _sd15_shapes() -> dict[str, tuple[int, ...]]:
    """Every tensor key and shape of an SD 1.5 single file, from our modules built on the meta device."""
    import torch

    from nodes.models.clip import CLIP_L, CLIPTextModel
    from nodes.models.unet import SD1, UNetModel
    from nodes.models.vae import SD_VAE, AutoencoderKL

    parts = {
        "model.diffusion_model.": lambda: UNetModel(SD1),
        "first_stage_model.": lambda: AutoencoderKL(SD_VAE),
        "cond_stage_model.transformer.": lambda: CLIPTextModel(CLIP_L),
    }
    shapes = {}
    for prefix, build in parts.items():
        with torch.device("meta"):
            module = build()
        shapes |= {prefix + key: tuple(tensor.shape) for key, tensor in module.state_dict().items()}
    return shapes


def write_checkpoint(path: Path) -> None:
    """Stream random fp16 tensors into a safetensors file (never more than one tensor in RAM)."""
    import torch

    shapes = _sd15_shapes()
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for key, shape in shapes.items():
        size = 2 * _numel(shape)
        header[key] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # safetensors aligns the data start to 8 bytes
    generator = torch.Generator().manual_seed(0)
    partial = path.with_suffix(".partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    with partial.open("wb") as handle:
        handle.write(len(raw).to_bytes(8, "little") + raw)
        for shape in shapes.values():
            tensor = (0.02 * torch.randn(shape, generator=generator)).half()
            handle.write(tensor.numpy().tobytes())
        handle.flush()
        os.fsync(handle.fileno())
    partial.rename(path)


def _numel(shape) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


# --- page cache ---------------------------------------------------------------------------------


def cached_fraction(path: Path) -> float:
    """Fraction of the file's pages in the page cache (mincore on a fresh read-only mapping)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = path.stat().st_size
    pages = (size + PAGE - 1) // PAGE
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap failed")
        try:
            vector = (ctypes.c_ubyte * pages)()
            if libc.mincore(address, size, vector) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
            return sum(v & 1 for v in vector) / pages
        finally:
            libc.munmap(address, size)
    finally:
        os.close(fd)


def evict(path: Path) -> None:
    """Drop the file's clean pages from the page cache (POSIX_FADV_DONTNEED)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def warm(path: Path) -> None:
    """Read the whole file once so that its pages are cached."""
    with path.open("rb", buffering=0) as handle:
        while handle.read(64 << 20):
            pass


# --- one measured load (runs in a fresh process) ------------------------------------------------


def child(path: Path, dtype_name: str) -> None:
    import torch

    from nodes.models.loading import load_checkpoint

    torch.set_num_threads(1)
    dtype = None if dtype_name == "keep" else getattr(torch, dtype_name)
    before = _peak_rss()
    start = time.perf_counter()
    checkpoint = load_checkpoint(path, dtype=dtype)
    load_s = time.perf_counter() - start
    after_load = _peak_rss()
    start = time.perf_counter()
    total = 0.0
    for module in (checkpoint.unet, checkpoint.vae, checkpoint.text_encoder):
        for tensor in module.state_dict().values():
            flat = tensor.reshape(-1)
            step = max(1, PAGE // flat.element_size())
            total += float(flat[::step].float().sum())  # one element per page: faults every page in
    touch_s = time.perf_counter() - start
    print(json.dumps({"load_s": load_s, "touch_s": touch_s, "rss_import": before, "rss_load": after_load,
                      "rss_touch": _peak_rss(), "checksum": total}))  # fmt: skip


def _peak_rss() -> int:
    """Peak resident set size of this process so far, in bytes.

    ``VmHWM`` of /proc/self/status: the same high-water mark as ``getrusage().ru_maxrss``, but
    reset by exec; ru_maxrss keeps the parent's peak across fork + exec, and would report this
    script's own (file-writing) memory for every child.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # not Linux: KiB on Linux, bytes on macOS


def _run_child(path: Path, dtype_name: str) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(
        [sys.executable, __file__, "--child", str(path), "--dtype", dtype_name],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"child failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- report -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per condition (median printed)")
    parser.add_argument("--dtype", default="keep", help="keep (the file's fp16) or a torch dtype name, e.g. float32")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.dtype)
        return

    if not CHECKPOINT.is_file():
        print(f"writing {CHECKPOINT} (once) ...", flush=True)
        start = time.perf_counter()
        write_checkpoint(CHECKPOINT)
        print(f"  written in {time.perf_counter() - start:.1f} s")
    size = CHECKPOINT.stat().st_size
    gb = 1e9
    print(f"file: {CHECKPOINT.relative_to(ROOT)}  {size / gb:.3f} GB (SD 1.5 layout, fp16), load dtype: {args.dtype}")

    results: dict[str, list[dict]] = {"cold": [], "warm": []}
    residency = []
    for _ in range(args.repeats):
        evict(CHECKPOINT)
        residency.append(cached_fraction(CHECKPOINT))
        results["cold"].append(_run_child(CHECKPOINT, args.dtype))
    warm(CHECKPOINT)
    for _ in range(args.repeats):
        results["warm"].append(_run_child(CHECKPOINT, args.dtype))
    print(
        f"cold runs: file evicted with posix_fadvise(DONTNEED); still cached before each run: "
        f"{', '.join(f'{r:.1%}' for r in residency)}"
    )

    print(f"{'':6} {'load_checkpoint':>16} {'+ touch all weights':>20} {'peak RSS':>10} {'/ file':>7} "
          f"{'(import alone)':>15}")  # fmt: skip
    for condition, runs in results.items():

        def median(key: str, runs=runs) -> float:
            return statistics.median(run[key] for run in runs)

        peak = median("rss_touch")
        print(
            f"{condition:6} {median('load_s'):>14.2f} s {median('touch_s'):>18.2f} s "
            f"{peak / gb:>8.2f} GB {peak / size:>6.2f}x {median('rss_import') / gb:>12.2f} GB"
        )
    warm_load = statistics.median(run["load_s"] for run in results["warm"])
    peak_ratio = max(statistics.median(run["rss_touch"] for run in runs) for runs in results.values()) / size
    print(f"target warm load <= 2 s:          {warm_load:.2f} s  {'OK' if warm_load <= 2 else 'MISSED'}")
    print(f"target peak RSS <= 1.3 x file:    {peak_ratio:.2f} x  {'OK' if peak_ratio <= 1.3 else 'MISSED'}")
    if args.dtype not in ("keep", "float16"):
        print(f"  (a {args.dtype} load holds the weights at a different size than the file: peak RSS / loaded "
              f"weights = {peak_ratio * size / (size * _SIZE_FACTOR.get(args.dtype, 1.0)):.2f} x)")  # fmt: skip
    print(
        f"(medians of {args.repeats}; times exclude importing torch in each child; 'touch' reads one element per page)"
    )


_SIZE_FACTOR = {"float32": 2.0, "float64": 4.0, "bfloat16": 1.0}  # loaded bytes / fp16 file bytes

if __name__ == "__main__":
    main()
