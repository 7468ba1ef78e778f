"""Command-line flags of the Ray path (`run`, `serve`) and of the output cache (imports no Ray until a pool starts).

    --ray [ADDRESS]        run on Ray: a local cluster on 127.0.0.1 when no ADDRESS, else HOST:PORT of a head
    --workers N|auto       worker actors (default 2; auto: as many as the cluster's resources hold)
    --worker-cpus C        CPUs each worker reserves (default 1; also its torch threads)
    --worker-gpus G        GPUs each worker reserves (default 0; e.g. 1 or 0.5)
    --worker-memory BYTES  memory each worker reserves (e.g. 8G; default: none reserved)
    --retry once|never     a run whose worker dies: retried once on another worker, or reported interrupted

    --cache lru|all|none   the output cache's policy (default lru; docs/executor.md "Cache policy")
    --cache-budget SIZE    the lru policy's budget, e.g. 4GiB, 512M or 0 (default 2GiB; with --ray, each worker's too)
    --threads N            torch's CPU threads in this process (default: torch's own, one per core)
    --memory-reserve SIZE  RAM runs keep free: a node that would leave less is refused before it allocates
                           (default 5 % of RAM, at least 512 MiB; 0 turns the check off; sets
                           NODEGRAPH_MEMORY_RESERVE_MB, so Ray workers started here inherit it)

Main functions: `add_ray_arguments(parser)`, `add_cache_arguments(parser)` (with --threads), `cache_options(args)`
(the Session's cache keyword arguments), `apply_cpu_threads(args)`, `apply_memory_reserve(args)`, `worker_session_options(args)`,
`pool_from_args(args)`, `backend_from_args(args, session)` (the server), `parse_bytes("8G")` and
`parse_cache_budget("4GiB")`.
"""

from __future__ import annotations

import argparse
import os
import re
from decimal import Decimal, localcontext
from typing import Any

from ..plugins import ENV_DISABLE_AUTOLOAD, plugin_options


def parse_bytes(text: str, allow_zero: bool = False) -> int:
    """"8G" / "512M" / "1024" → bytes (ArgumentTypeError naming the value otherwise)."""
    units = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    cleaned = text.strip().upper().removesuffix("B").removesuffix("I")
    factor = units.get(cleaned[-1:], 1)
    number = cleaned[:-1] if cleaned[-1:] in units else cleaned
    try:       # Decimal: a 25-digit size is that number of bytes, not a float's nearest (it printed other digits)
        # ASCII digits only: Decimal also reads other scripts' digits ("١٢MiB" was 12 MiB)
        if not re.fullmatch(r"([0-9]+(\.[0-9]*)?|\.[0-9]+)(E[+-]?[0-9]+)?", number.strip()):
            raise ValueError(text)
        with localcontext() as exact:
            exact.prec = 200           # every digit a size can be written with
            value = Decimal(number.strip()) * factor
        if not value.is_finite():
            raise ValueError(text)
    except (ValueError, ArithmeticError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; write e.g. 8G, 512M or 1000000") from None
    if value >= 2**63:        # no machine's memory or disk; a 25-digit size printed rounded digits back
        raise argparse.ArgumentTypeError(f"{text!r} is more bytes than any machine has; write e.g. 8G or 512M")
    if value < 0 or (value < 1 and not allow_zero):
        raise argparse.ArgumentTypeError(f"{text!r}: a size must be {'0 or more' if allow_zero else 'positive'}")
    if 0 < value < 1:        # "0.0000001B" was 0: for --memory-reserve, the check silently off
        raise argparse.ArgumentTypeError(f"{text!r} is less than one byte; write 0 or a size such as 512M")
    return int(value)


def _parse_size_or_zero(text: str, zero_means: str) -> int:
    """`parse_bytes(text, allow_zero=True)`, refused in the words of a flag whose 0 means `zero_means`."""
    try:
        return parse_bytes(text, allow_zero=True)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size of 0 or more bytes; write e.g. 4GiB, 512M or 0 "
                                         f"(0: {zero_means})") from None


def parse_cache_budget(text: str) -> int:
    """`--cache-budget`: "4GiB", "512M", "1000000" or "0" (keep nothing) → bytes."""
    return _parse_size_or_zero(text, "keep nothing")


def parse_memory_reserve(text: str) -> int:
    """`--memory-reserve`: "1GiB", "512M" or "0" (the check off) → bytes. A bare number under 1 MiB is refused:
    `--memory-reserve 512` (MiB, as NODEGRAPH_MEMORY_RESERVE_MB counts, or GB as ComfyUI's --reserve-vram) was 512
    bytes, which turned the check off without a word."""
    value = _parse_size_or_zero(text, "no reserve, nodes are not checked")
    if 0 < value < 1024**2 and text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} would be {value} bytes, which keeps nothing free; give a unit: "
                                         f"{text.strip()}M or {text.strip()}G")
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
    group.add_argument("--workers", type=_workers, default=None, metavar="N|auto",
                       help="worker actors, each with its own Session (default 2; auto: what the cluster holds)")
    group.add_argument("--worker-cpus", type=float, default=None, metavar="C", help="CPUs per worker (default 1)")
    group.add_argument("--worker-gpus", type=float, default=None, metavar="G", help="GPUs per worker (default 0)")
    group.add_argument("--worker-memory", type=parse_bytes, default=None, metavar="BYTES",
                       help="memory each worker reserves, e.g. 8G (default: none reserved)")
    group.add_argument("--retry", choices=("once", "never"), default=None,
                       help="a run whose worker dies: retried once on another worker (default) or interrupted")
    return parser


# The Ray flags' defaults (None in the parser, so that a flag given without --ray is noticed: ray_flags_problem)
RAY_DEFAULTS = {"workers": 2, "worker_cpus": 1.0, "worker_gpus": 0.0, "worker_memory": None, "retry": "once"}


def ray_flags_problem(args: argparse.Namespace) -> str | None:
    """A usage error for worker flags given without --ray (they were accepted and ignored), else None."""
    if getattr(args, "ray", None) is not None:
        return None
    given = [f"--{name.replace('_', '-')}" for name in RAY_DEFAULTS if getattr(args, name, None) is not None]
    if not given:
        return None
    return (f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to Ray workers only; add --ray "
            f"(a local Ray cluster) or --ray HOST:PORT, or leave {'it' if len(given) == 1 else 'them'} out")


def ray_setting(args: argparse.Namespace, name: str) -> Any:
    """A Ray flag's value, its default when not given."""
    value = getattr(args, name, None)
    return RAY_DEFAULTS[name] if value is None else value


def add_cache_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add --cache and --cache-budget (see the module docstring) to a parser."""
    from ..cache import POLICIES

    group = parser.add_argument_group("output cache (docs/executor.md, \"Cache policy\")")
    group.add_argument("--cache", choices=POLICIES, default=None, dest="cache_policy",
                       help="lru (default): keep outputs up to --cache-budget, least recently used out first; "
                            "all: keep everything; none: keep nothing between runs")
    group.add_argument("--cache-budget", type=parse_cache_budget, default=None, metavar="SIZE",
                       help="what the lru cache may hold, e.g. 4GiB, 512M or 0 (default 2GiB); raise it above "
                            "your largest model so that model stays loaded between runs")
    group = parser.add_argument_group("CPU and memory")
    group.add_argument("--threads", type=_threads, default=None, metavar="N",
                       help="torch's CPU threads for running nodes (default: torch's own, one per core); on a "
                            "machine busy with other work 1 or 2 can be much faster (docs/executor.md); Ray "
                            "workers use --worker-cpus instead")
    group.add_argument("--memory-reserve", type=parse_memory_reserve, default=None, metavar="SIZE",
                       help="RAM runs keep free, e.g. 1GiB or 0 (off): a node whose output would leave less is "
                            "refused before it allocates (default 5%% of RAM, at least 512 MiB; the same as "
                            "NODEGRAPH_MEMORY_RESERVE_MB)")
    return parser


def _threads(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1024:
        raise argparse.ArgumentTypeError(f"--threads {text!r}: give a whole number of threads from 1 to 1024, "
                                         f"e.g. --threads 2")
    return value


def apply_cpu_threads(args: argparse.Namespace) -> None:
    """--threads N: torch.set_num_threads(N) in this process (imports torch only when the flag was given)."""
    threads = getattr(args, "threads", None)
    if threads is None:
        return
    import torch

    torch.set_num_threads(threads)


def apply_memory_reserve(args: argparse.Namespace) -> None:
    """--memory-reserve SIZE: NODEGRAPH_MEMORY_RESERVE_MB for this process (and the Ray workers it starts), which
    `memory.memory_reserve` reads; nothing when the flag was not given. Raises ValueError (a usage error) for a
    reserve of at least this machine's memory: every node would be refused (exit 3 at the first one)."""
    reserve = getattr(args, "memory_reserve", None)
    if reserve is None:
        return
    from ..memory import RESERVE_ENV, system_memory

    memory = system_memory()
    if memory is not None and reserve >= memory[1] and getattr(args, "ray", None) is None:
        raise ValueError(f"--memory-reserve {reserve} bytes is at least this machine's memory ({memory[1]} bytes): "
                         f"no node could run; give less, e.g. {max(memory[1] // 20 // 2**20, 1)}M (5 %), or 0 to "
                         f"turn the check off")

    os.environ[RESERVE_ENV] = repr(reserve / 1024**2)


def cache_options(args: argparse.Namespace) -> dict[str, Any]:
    """The Session's cache keyword arguments from --cache / --cache-budget ({} when neither was given).

    Raises ValueError (a usage error) for --cache-budget with a policy that has no budget."""
    policy, budget = getattr(args, "cache_policy", None), getattr(args, "cache_budget", None)
    if budget is not None and policy not in (None, "lru"):
        raise ValueError(f"--cache-budget applies to --cache lru only, not --cache {policy}; "
                         f"leave out one of the two")
    options: dict[str, Any] = {}
    if policy is not None:
        options["cache_policy"] = policy
    if budget is not None:
        options["cache_budget_bytes"] = budget
    return options


def cache_budget_warning(args: argparse.Namespace) -> str | None:
    """A warning when --cache-budget is more than this machine's memory less the reserve runs keep free: such a
    cache never gives memory back before the machine runs short (the websocket's `set_cache_policy` refuses that
    budget; here it is only said — with --ray it is the workers' budget, on machines of their own)."""
    budget = getattr(args, "cache_budget", None)
    if budget is None:
        return None
    from ..memory import memory_reserve, system_memory

    memory = system_memory()
    usable = memory[1] - memory_reserve(memory[1]) if memory is not None else None
    if usable is None or budget <= usable:
        return None
    where = " (--ray: the workers' machines may have more)" if getattr(args, "ray", None) else ""
    return (f"--cache-budget {budget} bytes is more than this machine's memory less the reserve runs keep free "
            f"({usable} bytes){where}: the cache would hold outputs until memory runs short; give at most "
            f"{usable // 2**20} MiB")


def worker_session_options(args: argparse.Namespace) -> dict[str, Any]:
    """The workers' Session options: the same plugin choices, model paths and cache settings as this process."""
    options = plugin_options(args)
    cache = cache_options(args)
    if cache.get("cache_budget_bytes") == 0:        # the worker's Session would take 0 as "no budget given":
        cache = {"cache_policy": "none"}            # an lru budget of 0 keeps nothing, as "none" does
    options.update(cache)
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
    return WorkerPool(address=address, workers=ray_setting(args, "workers"),
                      resources=WorkerResources(ray_setting(args, "worker_cpus"), ray_setting(args, "worker_gpus"),
                                                ray_setting(args, "worker_memory")),
                      session_options=worker_session_options(args), retry=ray_setting(args, "retry"))


def backend_from_args(args: argparse.Namespace, session: Any):
    """The server's RayBackend (it connects in the server's worker thread, so the server starts at once)."""
    from .backend import RayBackend

    return RayBackend(pool_from_args(args))
