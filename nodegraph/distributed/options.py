"""Command-line flags of the Ray path and what they build (imports no Ray until a pool starts).

    --ray [ADDRESS]        run on Ray: a local cluster on 127.0.0.1 when no ADDRESS, else HOST:PORT of a head
    --workers N|auto       worker actors (default 2; auto: as many as the cluster's resources hold)
    --worker-cpus C        CPUs each worker reserves (default 1; also its torch threads)
    --worker-gpus G        GPUs each worker reserves (default 0; e.g. 1 or 0.5)
    --worker-memory BYTES  memory each worker reserves (e.g. 8G; default: none reserved)
    --retry once|never     a run whose worker dies: retried once on another worker, or reported interrupted

Main functions: `add_ray_arguments(parser)`, `worker_session_options(args)`, `pool_from_args(args)`,
`backend_from_args(args, session)` (the server), and `parse_bytes("8G")`.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..plugins import ENV_DISABLE_AUTOLOAD, plugin_options


def parse_bytes(text: str) -> int:
    """"8G" / "512M" / "1024" → bytes (ArgumentTypeError naming the value otherwise)."""
    units = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    cleaned = text.strip().upper().removesuffix("B").removesuffix("I")
    factor = units.get(cleaned[-1:], 1)
    number = cleaned[:-1] if cleaned[-1:] in units else cleaned
    try:
        value = int(float(number) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; write e.g. 8G, 512M or 1000000") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a size must be positive")
    return value


def _workers(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"--workers {text!r}: give a positive number or 'auto'")
    return value


def add_ray_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the Ray flags (see the module docstring) to a parser."""
    group = parser.add_argument_group("Ray cluster (docs/distributed.md; needs the `ray` extra)")
    group.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                       help="run on Ray worker actors: a local cluster when no ADDRESS, else HOST:PORT of the head")
    group.add_argument("--workers", type=_workers, default=2, metavar="N|auto",
                       help="worker actors, each with its own Session (default 2; auto: what the cluster holds)")
    group.add_argument("--worker-cpus", type=float, default=1.0, metavar="C", help="CPUs per worker (default 1)")
    group.add_argument("--worker-gpus", type=float, default=0.0, metavar="G", help="GPUs per worker (default 0)")
    group.add_argument("--worker-memory", type=parse_bytes, default=None, metavar="BYTES",
                       help="memory each worker reserves, e.g. 8G (default: none reserved)")
    group.add_argument("--retry", choices=("once", "never"), default="once",
                       help="a run whose worker dies: retried once on another worker (default) or interrupted")
    return parser


def worker_session_options(args: argparse.Namespace) -> dict[str, Any]:
    """The workers' Session options: the same plugin choices and model paths as this process."""
    options = plugin_options(args)
    if options.get("autoload") is None:
        options["autoload"] = not os.environ.get(ENV_DISABLE_AUTOLOAD)
    config = getattr(args, "model_paths", None) or os.environ.get("NODEGRAPH_MODEL_PATHS")
    if config:
        options["model_paths_config"] = os.path.abspath(config)
    return options


def pool_from_args(args: argparse.Namespace):
    """A WorkerPool (not started) from the Ray flags."""
    from .pool import WorkerPool, WorkerResources

    address = None if args.ray in (None, "local") else args.ray
    return WorkerPool(address=address, workers=args.workers,
                      resources=WorkerResources(args.worker_cpus, args.worker_gpus, args.worker_memory),
                      session_options=worker_session_options(args), retry=args.retry)


def backend_from_args(args: argparse.Namespace, session: Any):
    """The server's RayBackend (it connects in the server's worker thread, so the server starts at once)."""
    from .backend import RayBackend

    return RayBackend(pool_from_args(args))
