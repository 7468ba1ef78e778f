"""Model memory: which models sit on the compute device, within a budget.

Domain-agnostic: a "model" is anything with `.to(device)` whose size
`cache.estimate_bytes` can tell (torch modules: parameters + buffers).

    manager = ModelMemoryManager(compute_device="cuda", budget_bytes=None)  # None: from free memory
    unet = manager.load(unet)            # on the compute device now; others offloaded LRU if needed
    with manager.using(unet, controlnet): ...   # both loaded and protected from offload meanwhile
    manager.free()                       # offload everything and forget it (the session also clears caches)

Rules
- The manager tracks models weakly: a model nobody else holds disappears from
  it, so repeated runs (even with caching off) never make it grow.
- Loading a model that does not fit offloads least-recently-used loaded
  models (never those in use) to the offload device (CPU) until it fits. A
  model larger than the whole budget is loaded anyway, alone (and reported in
  `stats()`), because refusing would make the graph impossible to run.
- Out of memory while moving: offload everything else, empty the allocator's
  cache, retry once, then raise `ModelMemoryError` naming the model, its size
  and the budget.
- On a CPU-only machine compute and offload devices are the same and the
  budget is unlimited: `load` is a cheap bookkeeping call.

The machine's RAM (what the executor checks before each node, docs/executor.md):
`system_memory()` → (available, total) from /proc/meminfo, bounded by a container's
cgroup limit; `memory_reserve(total)` → the bytes a run keeps free; `ensure_free(nbytes, what)`
→ refuse, before allocating it, a result the machine cannot hold beside what the run holds.
"""

from __future__ import annotations

import gc
import itertools
import sys
import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from .cache import estimate_bytes
from .errors import NodegraphError


class ModelMemoryError(NodegraphError, MemoryError):
    """A model could not be placed on the compute device even after freeing everything else."""


@dataclass
class _Entry:
    ref: weakref.ReferenceType
    name: str
    bytes: int
    device: str
    last_used: int
    in_use: int = 0


def default_compute_device() -> str:
    torch = sys.modules.get("torch")
    if torch is None:
        import torch  # noqa: F811 — only when a model is actually managed
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def device_problem(name: Any) -> str | None:
    """What is wrong with a device name given in code, or None: "gpu" is no torch device, and "cuda" on a build of
    torch without CUDA failed only inside the first node that ran ("Torch not compiled with CUDA enabled")."""
    if not isinstance(name, str):
        return f"a device is a str such as 'cpu' or 'cuda:0', found {type(name).__name__} {name!r:.40}"
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        return f"{name!r} is no torch device: use 'cpu', 'cuda', 'cuda:N' or 'mps'"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return f"{name!r}: this torch ({torch.__version__}) sees no CUDA device; use 'cpu' (or leave it out: the best available)"
        if device.index is not None and device.index >= torch.cuda.device_count():
            return f"{name!r}: there are {torch.cuda.device_count()} CUDA devices (cuda:0 … cuda:{torch.cuda.device_count() - 1})"
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) is not None
                                     and torch.backends.mps.is_available()):
        return f"{name!r}: MPS (Apple GPUs) is not available here; use 'cpu' (or leave it out: the best available)"
    return None


# --- system memory (RAM) headroom -------------------------------------------------------------------

RESERVE_FRACTION = 0.05              # of the machine's RAM kept free for the node about to run, the OS, the server
RESERVE_MIN_BYTES = 512 * 1024**2    # ... but at least this much
RESERVE_ENV = "NODEGRAPH_MEMORY_RESERVE_MB"   # set the reserve in MiB; 0 turns the check off


def system_memory() -> tuple[int, int] | None:
    """(available, total) bytes of RAM as the kernel estimates them (Linux /proc/meminfo); None elsewhere.

    In a container with a memory limit (cgroup v2 `memory.max`, v1 `memory.limit_in_bytes`) the limit is the
    total and what the group may still use is the available, when smaller: /proc/meminfo there shows the
    host's memory, and the group is killed at its own limit. Reclaimable file cache (`inactive_file`) counts
    as available, as the kernel's MemAvailable does."""
    try:
        with open("/proc/meminfo", "rb") as file:
            text = file.read(4096)
    except OSError:
        return None
    fields = {}
    for line in text.splitlines():
        name, _, rest = line.partition(b":")
        if name in (b"MemTotal", b"MemAvailable"):
            fields[name] = int(rest.split()[0]) * 1024
    if len(fields) < 2:
        return None
    available, total = fields[b"MemAvailable"], fields[b"MemTotal"]
    if _cgroup_limited[0]:
        group = _cgroup_memory()
        if group is not None and group[1] < total:
            available, total = min(available, group[0]), group[1]
        else:               # no limit below the machine's RAM: not looked for again (≈ 100 µs a look)
            _cgroup_limited[0] = False
    return available, total


_cgroup_limited = [True]     # until a look finds no memory limit below the machine's RAM


_CGROUP_FILES = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory.stat",
                  b"inactive_file"),
                 ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes",
                  "/sys/fs/cgroup/memory/memory.stat", b"total_inactive_file"))


def _cgroup_memory() -> tuple[int, int] | None:
    """(available, limit) of this process's memory cgroup (v2, else v1) when it has a limit; else None."""
    for limit_file, usage_file, stat_file, inactive_key in _CGROUP_FILES:
        try:
            with open(limit_file, "rb") as file:
                limit_text = file.read(64).strip()
            if limit_text == b"max":
                return None
            limit = int(limit_text)
            with open(usage_file, "rb") as file:
                usage = int(file.read(64).strip())
            inactive = 0
            with open(stat_file, "rb") as file:
                for line in file.read(16384).splitlines():
                    key, _, value = line.partition(b" ")
                    if key == inactive_key:
                        inactive = int(value)
                        break
        except (OSError, ValueError):
            continue
        return max(0, limit - max(0, usage - inactive)), limit
    return None


def memory_reserve(total: int) -> int:
    """Bytes of RAM a run keeps free: RESERVE_ENV if set (MiB; 0 = off), else RESERVE_FRACTION of `total`,
    at least RESERVE_MIN_BYTES."""
    import os

    configured = os.environ.get(RESERVE_ENV, "").strip()
    if configured:
        try:
            return max(0, int(float(configured) * 1024**2))
        except ValueError:
            pass          # a malformed value: the default (the CLI names it; a run never fails over it)
    return max(RESERVE_MIN_BYTES, int(total * RESERVE_FRACTION))


def ensure_free(nbytes: int, what: str) -> None:
    """Raise NodeOutOfMemory when allocating `nbytes` (for `what`, as the message names it: "an image of
    16384×4096") would leave the machine's RAM under the reserve; nothing when it fits or RAM is unknown. The
    check before each node sees only what is free then: eight ImageScale nodes of a 3.2 GB result each fit
    alone, and together reached the kernel's OOM killer (a server, with every user's runs)."""
    memory = system_memory()
    if memory is None:
        return
    available, total = memory
    free = available - memory_reserve(total)
    if nbytes <= free:
        return
    from .errors import NodeOutOfMemory

    gib = 1024**3
    raise NodeOutOfMemory(
        f"{what} needs about {nbytes / gib:.1f} GiB and the machine has {max(free, 0) / gib:.1f} GiB free to give "
        f"(of {total / gib:.1f} GiB, with what this run already holds); nothing was allocated. Make it smaller, "
        f"split the batch or the graph into several runs, or free memory (the reserve kept free is --memory-reserve "
        f"of run / serve, or NODEGRAPH_MEMORY_RESERVE_MB)")


def _free_device_bytes(device: str) -> int | None:
    torch = sys.modules.get("torch")
    if torch is not None and device.startswith("cuda") and torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    return None


def _empty_device_cache() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
    return_freed_memory()


_LIBC: Any = None


def return_freed_memory() -> bool:
    """Give the heap's freed pages back to the system (glibc's malloc_trim): freed tensors and cache entries stay
    in the process's heap otherwise, so RSS did not fall after `free_memory` (txt2img ×60 on the tiny model:
    387 MB → 363 MB after freeing, 303 MB with this). False where there is no glibc (macOS, musl, Windows)."""
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes

            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _LIBC = False
    if not _LIBC:
        return False
    _LIBC.malloc_trim(0)
    return True


def release_failed_run(exc: BaseException) -> None:
    """After a run that ended in `exc` (a node failed, it was interrupted): free what its frames still hold.

    A failed node's exception keeps its traceback, whose frames keep their locals — the node's inputs and
    what it made before it raised — and the exception is in a reference cycle with them, so reference
    counting never frees them and a long-lived process (the server, a Ray worker) kept gigabytes past the
    cache's budget until the cyclic GC happened to run (a hostile pass: 3.4 GB after an `ImageBatch` refused at
    512 images). The frames of every exception in the chain are cleared (their locals dropped; the formatted
    traceback a run reports was taken before), then cycles are collected and freed pages go back to the system.
    A library caller of `Session.run` is not touched: its exception keeps its frames for a debugger.
    """
    import gc
    import traceback

    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if current.__traceback__ is not None:
            traceback.clear_frames(current.__traceback__)
        inner = getattr(current, "exception", None)       # NodeExecutionError: the node's own exception
        pending += [current.__cause__, current.__context__, inner if isinstance(inner, BaseException) else None]
    gc.collect()
    return_freed_memory()


def _is_oom(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")
    oom_type = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None) if torch else None
    return (oom_type is not None and isinstance(exc, oom_type)) or "out of memory" in str(exc).lower()


class ModelMemoryManager:
    """Places models on the compute device within a byte budget, offloading LRU ones.

    Args:
        compute_device: where models run ("cuda", "cuda:1", "mps", "cpu"); default: best available.
        offload_device: where offloaded models wait (default "cpu").
        budget_bytes: bytes of models allowed on the compute device at once; default: 90 % of
            the device's free memory at start-up minus a 1 GiB reserve for activations
            (unlimited on CPU).
        check_devices: refuse (ValueError) a device torch has not got ("gpu", "cuda" without CUDA) here rather than
            in the first node that runs; False for stand-in models whose devices are labels only.
    """

    RESERVE_BYTES = 1024**3

    def __init__(self, compute_device: str | None = None, offload_device: str = "cpu",
                 budget_bytes: int | None = None, *, check_devices: bool = True):
        for argument, device in (("compute_device", compute_device), ("offload_device", offload_device)):
            # "cpu": no torch import; check_devices=False: the names are labels only (stand-in models in tests)
            problem = device_problem(device) if check_devices and device not in (None, "cpu") else None
            if problem:
                raise ValueError(f"ModelMemoryManager({argument}=...): {problem}")
        self._compute_device = compute_device
        self.offload_device = offload_device
        self._budget_bytes = budget_bytes
        self._entries: dict[int, _Entry] = {}
        self._clock = itertools.count(1)
        self._lock = threading.RLock()
        self.oversized_loads = 0

    @property
    def compute_device(self) -> str:
        if self._compute_device is None:
            self._compute_device = default_compute_device()
        return self._compute_device

    @property
    def budget_bytes(self) -> int | None:
        """The budget (None = unlimited)."""
        if self._budget_bytes is None and self.compute_device != self.offload_device:
            free = _free_device_bytes(self.compute_device)
            if free is not None:
                self._budget_bytes = max(0, int(free * 0.9) - self.RESERVE_BYTES)
        return self._budget_bytes

    def _entry(self, model: Any, name: str | None) -> _Entry:
        key = id(model)
        entry = self._entries.get(key)
        if entry is None or entry.ref() is not model:
            entry = _Entry(weakref.ref(model, lambda _, k=key: self._forget(k)),
                           name or type(model).__name__, estimate_bytes(model),
                           self.offload_device, 0)
            self._entries[key] = entry
        return entry

    def _forget(self, key: int) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def register(self, model: Any, name: str | None = None) -> Any:
        """Start tracking a model (where it is now is assumed to be the offload device)."""
        with self._lock:
            self._entry(model, name)
        return model

    def loaded_bytes(self) -> int:
        """Bytes of tracked models currently on the compute device."""
        return sum(e.bytes for e in self._entries.values() if e.device == self.compute_device)

    def load(self, model: Any, name: str | None = None) -> Any:
        """Make sure `model` is on the compute device (offloading LRU others if needed); returns it."""
        with self._lock:
            entry = self._entry(model, name)
            entry.last_used = next(self._clock)
            if entry.device == self.compute_device:
                return model
            self._make_room(entry.bytes, keep=entry)
            try:
                model.to(self.compute_device)
            except Exception as exc:  # noqa: BLE001 — only OOM is retried
                if not _is_oom(exc):
                    raise
                self._offload_all(except_=entry)
                gc.collect()
                _empty_device_cache()
                try:
                    model.to(self.compute_device)
                except Exception as retry_exc:  # noqa: BLE001
                    if not _is_oom(retry_exc):
                        raise
                    model.to(self.offload_device)
                    raise ModelMemoryError(
                        f"model {entry.name!r} ({entry.bytes / 2**20:.0f} MiB) does not fit on "
                        f"{self.compute_device} even after offloading every other model "
                        f"(budget {self._fmt_budget()}); use a smaller or fp16 model, a smaller "
                        f"batch/resolution, or run on CPU") from retry_exc
            entry.device = self.compute_device
            return model

    def _fmt_budget(self) -> str:
        budget = self.budget_bytes
        return "unlimited" if budget is None else f"{budget / 2**20:.0f} MiB"

    def _make_room(self, needed: int, keep: _Entry) -> None:
        budget = self.budget_bytes
        if budget is None:
            return
        if needed > budget:
            self.oversized_loads += 1
        loaded = sorted((e for e in self._entries.values()
                         if e.device == self.compute_device and e is not keep and not e.in_use),
                        key=lambda e: e.last_used)
        for victim in loaded:
            if self.loaded_bytes() + needed <= budget:
                break
            self._offload(victim)

    def _offload(self, entry: _Entry) -> None:
        model = entry.ref()
        if model is not None:
            model.to(self.offload_device)
        entry.device = self.offload_device

    def _offload_all(self, except_: _Entry | None = None) -> None:
        for entry in list(self._entries.values()):
            if entry is not except_ and entry.device == self.compute_device and not entry.in_use:
                self._offload(entry)

    @contextmanager
    def using(self, *models: Any) -> Iterator[tuple[Any, ...]]:
        """Load all `models` and protect them from offloading while the block runs."""
        with self._lock:
            entries = [self._entry(m, None) for m in models]
            for entry in entries:
                entry.in_use += 1
        try:
            for model in models:
                self.load(model)
            yield models
        finally:
            with self._lock:
                for entry in entries:
                    entry.in_use -= 1

    def free(self) -> None:
        """Offload every model, forget them all, and return memory to the system."""
        with self._lock:
            self._offload_all()
            self._entries.clear()
        gc.collect()
        _empty_device_cache()

    def stats(self) -> dict[str, Any]:
        """Tracked models with their size and device, and the budget."""
        with self._lock:
            return {
                "compute_device": self.compute_device,
                "budget_bytes": self._budget_bytes,
                "loaded_bytes": self.loaded_bytes(),
                "oversized_loads": self.oversized_loads,
                "models": [{"name": e.name, "bytes": e.bytes, "device": e.device}
                           for e in self._entries.values() if e.ref() is not None],
            }
