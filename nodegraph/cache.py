"""The session's output cache: node outputs by content-addressed key, bounded by bytes.

Policies (switchable at run time with `set_policy`):

- `"lru"`  (default) keep entries until their total size exceeds `budget_bytes`,
  then evict least-recently-used ones; an entry larger than the budget is not kept.
- `"all"`  keep everything (no eviction) — fastest re-runs, unbounded memory.
- `"none"` keep nothing; every run recomputes (intermediates still flow within a run).

Sizes are estimated by `measure` / `estimate_bytes`: tensors by their storage (a storage shared by
several entries — a model and the same model with a LoRA patch — counted once in `total_bytes`),
arrays by their bytes, PIL images by pixels × bands, containers recursively, objects that name their
tensors (`__nodegraph_tensors__()`) by those, objects that define `__nodegraph_sizeof__()` by what
they report, everything else by `sys.getsizeof`.

Thread-safe: the server changes the policy from another thread than the one running.

Entries are the values nodes returned, and `Session.run` hands the output nodes' values to
its caller as they are (no copy: a 1 GB latent is not copied per run). A caller who changes
a returned tensor in place (`image.mul_(0)`) would change the cached entry, and every later
run served from it: each entry remembers its tensors' version counters (`_tensor_versions`,
the first MAX_VERSIONED_TENSORS, WATCH_DEPTH levels into dicts, lists and tuples), and `get`
treats an entry whose tensor moved as a miss and drops it (logged once per entry), so the
node runs again. Writes torch does not count (through `.data`, a numpy view) are not seen
here; the executor's own checks of nodes changing their inputs see those (executor.py).

An output node's entry lists files (`files`: results.py) that live on disk, not in the entry: it remembers
each file's size and modification time (`_file_stamps`), and `get` treats an entry whose file is gone or
replaced (a later run's file under its freed name) as a miss, so the node writes its file again.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

CachePolicy = Literal["lru", "all", "none"]
POLICIES: tuple[str, ...] = ("lru", "all", "none")
DEFAULT_BUDGET_BYTES = 2 * 1024**3
MISSING = object()
MAX_VERSIONED_TENSORS = 64
WATCH_DEPTH = 5              # levels of dicts, lists and tuples looked into (here and by the executor's checks)
log = logging.getLogger(__name__)


def _tensor_versions(value: Any) -> tuple:
    """((tensor, version counter), ...) of the tensors in `value` — itself, or up to WATCH_DEPTH levels into
    dicts, lists and tuples; () when there are none (or torch is not loaded). Inference-mode tensors keep no
    counter and are left out."""
    torch = sys.modules.get("torch")
    if torch is None:
        return ()
    found: list[tuple[Any, int]] = []
    pending = [(value, 0)]
    while pending and len(found) < MAX_VERSIONED_TENSORS:
        item, depth = pending.pop()
        if isinstance(item, torch.Tensor):
            try:
                found.append((item, item._version))
            except RuntimeError:
                pass
        elif depth < WATCH_DEPTH and isinstance(item, (dict, list, tuple)):
            pending.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return tuple(found)


def _file_stamps(value: Any) -> tuple:
    """((path, size, modification time), ...) of the files an output node's value lists (the file-result
    contract's `files`: results.py); () when it lists none, or one is already gone."""
    files = value.get("files") if isinstance(value, dict) else None
    if not isinstance(files, list):
        return ()
    stamps = []
    for item in files:
        path = item.get("path") if isinstance(item, dict) else None
        if isinstance(path, (str, os.PathLike)):
            try:
                info = os.stat(path)
            except OSError:
                return ((os.fspath(path), -1, -1, -1),)      # already gone: a miss on the next get
            stamps.append((os.fspath(path), info.st_size, info.st_mtime_ns, info.st_ctime_ns))
    return tuple(stamps)


def _files_changed(stamps: tuple) -> bool:
    """Whether a file an entry lists is gone or is no longer the file its node wrote (a later run's file took
    its freed name: a cached re-run reported that run's image as its own)."""
    for path, size, mtime, ctime in stamps:
        try:
            info = os.stat(path)
        except OSError:
            return True
        if (info.st_size, info.st_mtime_ns, info.st_ctime_ns) != (size, mtime, ctime):
            return True
    return False


def _moved(versions: tuple) -> bool:
    """Whether a tensor of an entry was changed in place since it was stored."""
    try:
        return any(tensor._version != version for tensor, version in versions)
    except RuntimeError:
        return False


def estimate_bytes(value: Any, _seen: set | None = None) -> int:
    """Approximate memory held by `value` (tensors/arrays by storage, shared storage once)."""
    storages: dict[int, int] = {}
    other = measure(value, storages, _seen)
    return other + sum(storages.values())


def measure(value: Any, storages: dict[int, int], _seen: set | None = None) -> int:
    """The memory `value` holds: its tensors' storages go into `storages` (data pointer → bytes, each once), and
    the rest is returned (containers, numpy arrays, PIL images, `__nodegraph_sizeof__`). An object that names
    its tensors (`__nodegraph_tensors__()`: a MODEL value's network parameters) is measured by them, so two
    entries holding one network (a model and the same model with a LoRA patch) count its weights once."""
    seen = set() if _seen is None else _seen
    tensors = getattr(type(value), "__nodegraph_tensors__", None)
    if tensors is not None:
        return sum(measure(t, storages, seen) for t in tensors(value))
    sizer = getattr(type(value), "__nodegraph_sizeof__", None)
    if sizer is not None:
        return int(sizer(value))
    module = type(value).__module__
    if module.startswith("torch"):
        if hasattr(value, "untyped_storage"):
            storage = value.untyped_storage()
            storages.setdefault(storage.data_ptr(), int(storage.nbytes()))
            return 0
        if hasattr(value, "parameters"):  # nn.Module
            return sum(measure(t, storages, seen) for t in (*value.parameters(), *value.buffers()))
    if module.startswith("numpy") and hasattr(value, "nbytes"):
        return int(value.nbytes)
    if module.startswith("PIL") and hasattr(value, "getbands"):
        return int(value.width * value.height * len(value.getbands()))
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        key = ("container", id(value))
        if key in seen:              # a container met again (shared, or holding itself: a plugin's `x.append(x)`)
            return 0
        seen.add(key)
        items = value.values() if isinstance(value, dict) else value
        return sys.getsizeof(value) + sum(measure(v, storages, seen) for v in items)
    return sys.getsizeof(value)


@dataclass
class CacheStats:
    """Counters since the cache was created (or cleared)."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0


class OutputCache:
    """Node outputs by cache key, under a policy and a byte budget (LRU)."""

    def __init__(self, policy: CachePolicy = "lru", budget_bytes: int = DEFAULT_BUDGET_BYTES):
        # key → (value, bytes outside tensor storages, tensor versions, file stamps, its storages' data pointers)
        self._entries: OrderedDict[str, tuple[Any, int, tuple, tuple, tuple[int, ...]]] = OrderedDict()
        # data pointer → [bytes, entries holding it]: a storage several entries share is counted once in
        # total_bytes (a LoRA-patched model shares its network with the plain one: each counted in full, a
        # LoRA switched on and off evicted the checkpoint every time — a small-machine user's pass)
        self._storages: dict[int, list[int]] = {}
        self._warnings: dict[str, tuple] = {}      # key → the node warnings its result carries (see `put`)
        self._lock = threading.RLock()
        self.total_bytes = 0
        self.stats = CacheStats()
        self.policy: CachePolicy = "lru"
        self.budget_bytes = budget_bytes
        self.set_policy(policy, budget_bytes)

    def set_policy(self, policy: CachePolicy, budget_bytes: int | None = None) -> None:
        """Switch policy (and budget); entries over the new budget are evicted at once."""
        if policy not in POLICIES:
            raise ValueError(f"cache policy {policy!r} is not one of {', '.join(POLICIES)}")
        if budget_bytes is not None and (not isinstance(budget_bytes, int) or isinstance(budget_bytes, bool)
                                         or budget_bytes < 0):     # True is an int: it would mean 1 byte
            raise ValueError(f"cache budget must be a non-negative int number of bytes, got {budget_bytes!r}; "
                             f"give e.g. 4 * 1024**3 for 4 GiB, 0 to keep nothing, or None to keep the budget")
        with self._lock:
            self.policy = policy
            if budget_bytes is not None:
                self.budget_bytes = budget_bytes
            if policy == "none":
                self.clear()
            elif policy == "lru":
                self._evict_to(self.budget_bytes)

    def get(self, key: str) -> Any:
        """The cached value for `key` (marking it recently used), or MISSING."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[2] and _moved(entry[2]):
                log.warning("a cached node output was changed in place after it was stored (a caller changed a "
                            "tensor of a RunResult: copy it with .clone() first); the node runs again")
                self.discard(key)
                entry = None
            if entry is not None and entry[3] and _files_changed(entry[3]):    # e.g. a deleted run took them
                log.info("a file a cached output lists was deleted or replaced; its node runs again")
                self.discard(key)
                entry = None
            if entry is None:
                self.stats.misses += 1
                return MISSING
            self._entries.move_to_end(key)
            self.stats.hits += 1
            return entry[0]

    def put(self, key: str, value: Any, warnings: tuple = ()) -> bool:
        """Store `value` under `key` if the policy allows; True if it was kept. `warnings` (the node warnings
        the result carries: its own node's and its inputs') are kept with it and given back by `warnings_of`."""
        if self.policy == "none":
            return False
        storages: dict[int, int] = {}
        other = measure(value, storages)
        with self._lock:
            if self.policy == "lru" and other + sum(storages.values()) > self.budget_bytes:
                return False
            self.discard(key)
            if warnings:
                self._warnings[key] = tuple(warnings)
            for pointer, size in storages.items():
                held = self._storages.get(pointer)
                if held is None:
                    self._storages[pointer] = [size, 1]
                    self.total_bytes += size
                else:
                    held[1] += 1
            self._entries[key] = (value, other, _tensor_versions(value), _file_stamps(value), tuple(storages))
            self.total_bytes += other
            if self.policy == "lru":
                self._evict_to(self.budget_bytes)
            return True

    def _release(self, entry: tuple) -> None:
        """Take a removed entry's bytes out of total_bytes (its storages' once no other entry holds them)."""
        self.total_bytes -= entry[1]
        for pointer in entry[4]:
            held = self._storages[pointer]
            held[1] -= 1
            if not held[1]:
                del self._storages[pointer]
                self.total_bytes -= held[0]

    def trim(self, budget_bytes: int) -> int:
        """Evict least-recently-used entries until at most `budget_bytes` are held (the budget itself is kept:
        e.g. when the machine runs short of memory); returns the bytes freed."""
        with self._lock:
            before = self.total_bytes
            self._evict_to(max(0, budget_bytes))
            return before - self.total_bytes

    def discard(self, key: str) -> None:
        """Drop the entry for `key`, if any (a value found changed after it was stored)."""
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._release(old)
            self._warnings.pop(key, None)

    def warnings_of(self, key: str) -> tuple:
        """The node warnings stored with the entry for `key` (empty when none, or no entry)."""
        return self._warnings.get(key, ())

    def _evict_to(self, budget: int) -> None:
        while self.total_bytes > budget and self._entries:
            key, entry = self._entries.popitem(last=False)
            self._warnings.pop(key, None)
            self._release(entry)
            self.stats.evictions += 1

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()
            self._warnings.clear()
            self._storages.clear()
            self.total_bytes = 0

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def info(self) -> dict[str, Any]:
        return {"policy": self.policy, "budget_bytes": self.budget_bytes, "entries": len(self._entries),
                "total_bytes": self.total_bytes, "hits": self.stats.hits, "misses": self.stats.misses,
                "evictions": self.stats.evictions}
