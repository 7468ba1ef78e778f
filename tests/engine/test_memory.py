"""The model memory manager: budget, LRU offload, in-use protection, weak tracking, OOM retry."""

from __future__ import annotations

import gc

import pytest

from nodegraph.memory import ModelMemoryError, ModelMemoryManager


class FakeModel:
    """Stands in for a torch module: a size and a device that `.to()` changes."""

    def __init__(self, size: int, fail_on: set[str] | None = None, fail_times: int = 0):
        self.size, self.device, self.moves = size, "cpu", []
        self.fail_on, self.fail_times = fail_on or set(), fail_times

    def __nodegraph_sizeof__(self) -> int:
        return self.size

    def to(self, device):
        if device in self.fail_on and self.fail_times > 0:
            self.fail_times -= 1
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        self.device = device
        self.moves.append(device)
        return self


def manager(budget=100):
    return ModelMemoryManager(compute_device="gpu", offload_device="cpu", budget_bytes=budget, check_devices=False)


def test_loads_within_budget_and_offloads_least_recently_used():
    """A model that does not fit pushes the least recently used one back to the offload device."""
    mm = manager(100)
    a, b, c = FakeModel(40), FakeModel(40), FakeModel(40)
    mm.load(a), mm.load(b)
    assert (a.device, b.device) == ("gpu", "gpu")
    mm.load(a)           # a is now more recently used than b
    mm.load(c)
    assert (a.device, b.device, c.device) == ("gpu", "cpu", "gpu")
    assert mm.loaded_bytes() == 80


def test_models_in_use_are_never_offloaded():
    """Inside `using`, models stay put even when another load needs room."""
    mm = manager(100)
    a, b = FakeModel(60), FakeModel(60)
    with mm.using(a):
        mm.load(b)
        assert a.device == "gpu"          # protected; b loads anyway (over budget, alone)
    assert b.device == "gpu"


def test_oversized_model_still_loads():
    """A model larger than the whole budget loads (alone) and is counted."""
    mm = manager(10)
    big = FakeModel(50)
    mm.load(big)
    assert big.device == "gpu" and mm.oversized_loads == 1


def test_tracking_is_weak_so_repeated_loads_do_not_grow():
    """Models that nobody holds disappear from the manager."""
    mm = manager(10**6)
    for _ in range(20):
        mm.load(FakeModel(10))
    gc.collect()
    assert len(mm.stats()["models"]) == 0 and mm.loaded_bytes() == 0


def test_out_of_memory_retries_once_after_freeing():
    """An OOM while moving offloads everything else, retries once, and succeeds."""
    mm = manager(10**6)
    other = mm.load(FakeModel(10))
    flaky = FakeModel(10, fail_on={"gpu"}, fail_times=1)
    mm.load(flaky)
    assert flaky.device == "gpu" and other.device == "cpu"


def test_out_of_memory_twice_is_a_clear_error():
    """A second OOM raises ModelMemoryError naming the model and the budget; the model stays offloaded."""
    mm = manager(10**6)
    hopeless = FakeModel(3 * 2**20, fail_on={"gpu"}, fail_times=2)
    with pytest.raises(ModelMemoryError, match="does not fit on gpu"):
        mm.load(hopeless, name="unet")
    assert hopeless.device == "cpu"


def test_free_offloads_and_forgets():
    """free() moves every model off the compute device and forgets it."""
    mm = manager(1000)
    a = mm.load(FakeModel(10))
    mm.free()
    assert a.device == "cpu" and mm.stats()["models"] == []


def test_cpu_only_is_bookkeeping():
    """With compute == offload device the budget is unlimited and nothing moves."""
    mm = ModelMemoryManager(compute_device="cpu", offload_device="cpu")
    a = FakeModel(10**12)
    mm.load(a)
    assert mm.budget_bytes is None and a.moves == []


# --- system memory headroom (executor) ----------------------------------------------------------------


def _chain() -> dict:
    return {"format_version": 2, "nodes": {
        "a": {"type": "Int", "inputs": {"value": 1}},
        "m": {"type": "IntMath", "inputs": {"a": {"node": "a", "output": "value"}, "b": 2, "op": "add"}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "m", "output": "result"}}}}}


@pytest.fixture
def machine(monkeypatch):
    """A fake /proc/meminfo: set `machine["available"]` (bytes) of 8 GiB; every node checks it."""
    import nodegraph.executor as executor
    import nodegraph.memory as memory

    state = {"available": 4 * 1024**3, "total": 8 * 1024**3, "reads": 0}

    def system_memory():
        state["reads"] += 1
        return state["available"], state["total"]

    monkeypatch.setattr(memory, "system_memory", system_memory)
    monkeypatch.setattr(executor, "MEMORY_CHECK_INTERVAL", 0.0)
    monkeypatch.delenv(memory.RESERVE_ENV, raising=False)
    return state


def test_a_machine_short_of_memory_fails_the_node_not_the_process(machine, monkeypatch):
    """Under the reserve (5 % of RAM, at least 512 MiB) the cache is dropped first; if that does not help, the
    node about to run fails with NodeOutOfMemory naming what is left and the fix — no OOM killer."""
    from nodegraph import NodeExecutionError, Session
    from nodegraph.errors import NodeOutOfMemory

    session = Session()
    assert session.run(_chain()).outputs["show"]["value"] == 3 and machine["reads"] >= 3
    session.cache.put("kept", {"x": 1})
    machine["available"] = 100 * 1024**2
    with pytest.raises(NodeExecutionError) as info:
        session.run({**_chain(), "nodes": {**_chain()["nodes"], "a": {"type": "Int", "inputs": {"value": 5}}}})
    assert isinstance(info.value.exception, NodeOutOfMemory)
    message = str(info.value.exception)
    assert "0.1 GiB of memory left (of 8.0 GiB; 0.5 GiB is kept free)" in message and "smaller inputs" in message
    assert "kept" not in session.cache                       # cached outputs went first
    monkeypatch.setenv("NODEGRAPH_MEMORY_RESERVE_MB", "0")   # the owner turned the check off
    assert session.run(_chain()).outputs["show"]["value"] == 3


def test_freeing_the_cache_can_be_enough(machine):
    """If dropping cached outputs brings the machine back over the reserve, the node runs."""
    from nodegraph import Session

    session = Session()
    real_trim = session.cache.trim

    def trim(budget):
        machine["available"] = 4 * 1024**3      # what the dropped entries held came back
        return real_trim(budget)

    session.cache.trim = trim
    machine["available"] = 100 * 1024**2
    assert session.run(_chain()).outputs["show"]["value"] == 3


def test_a_containers_memory_limit_is_the_machine_it_sees(tmp_path, monkeypatch):
    """In a container /proc/meminfo shows the host; the cgroup's limit and use (file cache counted free) are what
    the OOM killer goes by, so they bound the available memory when smaller."""
    import nodegraph.memory as memory

    limit, usage, stat = tmp_path / "memory.max", tmp_path / "memory.current", tmp_path / "memory.stat"
    limit.write_text(f"{2 * 1024**3}\n")
    usage.write_text(f"{int(1.5 * 1024**3)}\n")
    stat.write_text(f"anon 1\ninactive_file {256 * 1024**2}\n")
    monkeypatch.setattr(memory, "_CGROUP_FILES", ((str(limit), str(usage), str(stat), b"inactive_file"),))
    monkeypatch.setattr(memory, "_cgroup_limited", [True])
    available, total = memory.system_memory()
    assert total == 2 * 1024**3 and available == 768 * 1024**2      # 2 GiB − (1.5 GiB − 256 MiB of file cache)
    limit.write_text("max\n")                                        # no limit: looked for once, then not again
    assert memory.system_memory()[1] > 2 * 1024**3 and memory._cgroup_limited == [False]


def test_freeing_memory_gives_the_heap_back_to_the_system(monkeypatch):
    """After free_memory (and a smaller cache budget) RSS barely fell: glibc kept the freed pages in the heap
    (a long-running server's finding: 611 → 587 MB). malloc_trim is called where memory is given back."""
    from nodegraph import Session
    from nodegraph import memory as memory_module

    calls = []
    monkeypatch.setattr(memory_module, "return_freed_memory", lambda: calls.append(1) or True)
    session = Session()
    session.free_memory()
    assert calls, "free_memory did not give memory back"
    session.cache.put("k", b"x" * 1000)
    calls.clear()
    session.set_cache_policy("lru", budget_bytes=0)
    assert calls
    import platform

    monkeypatch.undo()
    if platform.libc_ver()[0] == "glibc":      # the real call: glibc's malloc_trim is found and called
        assert memory_module.return_freed_memory() is True
    else:
        assert memory_module.return_freed_memory() is False


def test_an_allocation_failure_names_the_size_inputs_and_tiles_only_where_a_node_has_them():
    """ImageScale out of memory was told to "use tiled VAE decoding (tile_size)", which it has not (a small-machine
    user's pass); a decoder that has `tile_size` is."""
    from nodegraph.errors import out_of_memory

    scaled = out_of_memory(MemoryError(), {"width": 16384, "height": 12288})
    assert "lower width=16384, height=12288" in str(scaled) and "tile" not in str(scaled)
    decoded = out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 2147483648 "
                                         "bytes"), {"tile_size": 512})
    assert "2.0 GiB at once" in str(decoded) and "use tiled VAE decoding (tile_size)" in str(decoded)
    assert out_of_memory(ValueError("nope"), {}) is None
