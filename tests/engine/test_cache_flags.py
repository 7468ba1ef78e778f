"""Setting the output cache from the command line (--cache, --cache-budget) and refusing budgets that are not sizes."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from nodegraph.cache import OutputCache
from nodegraph.cli import _session, build_parser, main
from nodegraph.distributed.options import cache_options, parse_cache_budget, worker_session_options

ARITHMETIC = str(Path(__file__).resolve().parents[2] / "graphs" / "arithmetic.json")


@pytest.mark.parametrize("budget", [True, False, -1, 1.5, "1G"])
def test_cache_refuses_budgets_that_are_not_byte_counts(budget):
    """A bool (an int to Python), a negative, a float or a text budget is refused with the fix."""
    with pytest.raises(ValueError, match="cache budget must be a non-negative int number of bytes"):
        OutputCache().set_policy("lru", budget)
    with pytest.raises(ValueError, match="non-negative int"):
        OutputCache("lru", budget)


def test_cache_budget_sizes():
    """--cache-budget reads 4GiB, 512M, plain bytes and 0; junk, negatives and inf are refused by value."""
    assert parse_cache_budget("4GiB") == 4 * 1024**3 and parse_cache_budget("512M") == 512 * 1024**2
    assert parse_cache_budget("0") == 0 and parse_cache_budget("1000") == 1000
    for text in ("True", "-1", "inf", "nan", "1e400G", "lots", "", "9999999999999999999999999GiB"):
        with pytest.raises(argparse.ArgumentTypeError, match="is not a size of 0 or more bytes"):
            parse_cache_budget(text)


def test_run_flags_reach_the_session():
    """`run --cache-budget 4GiB` gives the session's cache that budget; --cache none its policy; workers get both."""
    args = build_parser().parse_args(["run", ARITHMETIC, "--cache-budget", "4GiB", "--no-plugins"])
    assert _session(args).cache.info()["budget_bytes"] == 4 * 1024**3
    assert worker_session_options(args)["cache_budget_bytes"] == 4 * 1024**3
    args = build_parser().parse_args(["run", ARITHMETIC, "--cache", "none", "--no-plugins"])
    assert _session(args).cache.policy == "none" and cache_options(args) == {"cache_policy": "none"}
    args = build_parser().parse_args(["run", ARITHMETIC, "--cache-budget", "0", "--no-plugins"])
    assert worker_session_options(args)["cache_policy"] == "none"    # a worker would read budget 0 as "unset"


@pytest.mark.parametrize("flags, words", [
    (["--cache-budget", "True"], "argument --cache-budget: 'True' is not a size"),
    (["--cache-budget=-5G"], "argument --cache-budget: '-5G' is not a size"),
    (["--cache", "most"], "argument --cache: invalid choice: 'most'"),
    (["--threads", "0"], "argument --threads: --threads '0': give a whole number of threads from 1 to 1024"),
    (["--threads", "two"], "argument --threads: --threads 'two'"),
])
def test_run_refuses_bad_cache_flags(flags, words, capsys):
    """Bad --cache / --cache-budget values are usage errors (exit 2) naming the flag."""
    with pytest.raises(SystemExit) as info:
        main(["run", ARITHMETIC, *flags])
    assert info.value.code == 2 and words in capsys.readouterr().err


def test_threads_flag_sets_torchs_threads(tmp_path, monkeypatch):
    """`run --threads 1` runs with torch.set_num_threads(1); without the flag torch's default is left alone."""
    import torch

    from nodegraph.cli import main as cli_main

    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    assert cli_main(["run", ARITHMETIC, "--threads", "1", "--no-plugins", "--output-dir", str(tmp_path)]) == 0
    assert calls == [1]
    assert cli_main(["run", ARITHMETIC, "--no-plugins", "--output-dir", str(tmp_path)]) == 0
    assert calls == [1]
    from nodegraph.server import build_parser as serve_parser

    assert serve_parser().parse_args(["--threads", "3"]).threads == 3


def test_run_refuses_a_budget_for_a_policy_without_one(tmp_path, capsys):
    """--cache-budget with --cache all is a usage error, not silently ignored."""
    assert main(["run", ARITHMETIC, "--cache", "all", "--cache-budget", "1G", "--output-dir", str(tmp_path)]) == 2
    assert "--cache-budget applies to --cache lru only" in capsys.readouterr().err
    assert main(["run", ARITHMETIC, "--cache", "all", "--output-dir", str(tmp_path)]) == 0


def test_a_value_holding_itself_is_sized_once():
    """A plugin output that held itself (`x.append(x)`) made the cache's size estimate recurse until Python gave up,
    and the RecursionError escaped Session.run (a re-test). Containers met again count once."""
    from nodegraph.cache import estimate_bytes

    looped: list = [1, 2]
    looped.append(looped)
    nested: dict = {"a": [0] * 10}
    nested["self"] = nested
    assert 0 < estimate_bytes(looped) < 10_000 and 0 < estimate_bytes(nested) < 10_000
    shared = [0] * 100
    assert estimate_bytes([shared, shared]) < 2 * estimate_bytes(shared)


def test_a_storage_two_entries_share_is_counted_once():
    """A model and the same model with a LoRA patch share their network: the cache counted it in full for each
    (a small-machine user's pass: 6 LoRA variants of one 60 MB model counted 425 MB for 301 MB of memory), so it
    evicted what it had room for. Shared storages count once, and leave the total with the last entry holding
    them."""
    import torch

    weights = torch.zeros(1024, 1024)                         # 4 MiB
    cache = OutputCache("lru", budget_bytes=6 * 1024**2)
    cache.put("plain", {"model": weights})
    cache.put("lora", {"model": weights, "patch": torch.zeros(256, 256)})     # + 0.25 MiB of its own
    assert "plain" in cache and "lora" in cache               # 8.25 MiB counted before: 'plain' was evicted
    assert 4.25 * 1024**2 <= cache.total_bytes < 4.3 * 1024**2
    cache.discard("plain")
    assert cache.total_bytes >= 4.25 * 1024**2                # still held by 'lora'
    cache.discard("lora")
    assert cache.total_bytes == 0
    cache.put("a", weights)
    cache.put("b", torch.zeros(1024, 1024))                    # another 4 MiB: over the budget, 'a' goes
    assert "a" not in cache and "b" in cache and cache.total_bytes == 4 * 1024**2


def test_a_budget_past_the_machines_memory_is_warned(tmp_path, capsys, monkeypatch):
    """`serve --cache-budget 100TiB` and `run` took what the websocket's set_cache_policy refuses (a small-machine
    user's pass): both say so now (a warning: with --ray the budget is the workers')."""
    monkeypatch.setattr("nodegraph.memory.system_memory", lambda: (2 * 1024**3, 4 * 1024**3))
    assert main(["run", ARITHMETIC, "--cache-budget", "100TiB", "--no-plugins", "--no-progress",
                 "--output-dir", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "warning: --cache-budget 109951162777600 bytes is more than this machine's memory" in err
    assert main(["run", ARITHMETIC, "--cache-budget", "64MiB", "--no-plugins", "--no-progress",
                 "--output-dir", str(tmp_path)]) == 0
    assert "--cache-budget" not in capsys.readouterr().err


def test_memory_reserve_flag_sets_the_reserve_runs_keep_free(tmp_path, monkeypatch, capsys):
    """The reserve was an environment variable only (`run --help` named no memory flag). `--memory-reserve SIZE`
    sets it for this process: with more than the machine has, the first node is refused before it starts
    (exit 3, the message naming the flag); 0 turns the check off."""
    from nodegraph.memory import RESERVE_ENV, memory_reserve

    monkeypatch.setenv(RESERVE_ENV, "512")      # recorded, so what the flag sets is undone after the test
    graph = ARITHMETIC
    common = ["--no-plugins", "--no-progress", "--output-dir", str(tmp_path / "out")]
    import nodegraph.memory as memory

    total = memory.system_memory()[1]
    assert main(["run", graph, "--memory-reserve", f"{total - 1}", *common]) == 3       # just under: every node
    assert "--memory-reserve" in capsys.readouterr().err                                # refused, the flag named
    assert memory_reserve(16 * 1024**3) == total - 1
    assert main(["run", graph, "--memory-reserve", "0", *common]) == 0
    assert memory_reserve(16 * 1024**3) == 0
    with pytest.raises(SystemExit) as exited:
        main(["run", graph, "--memory-reserve", "lots", *common])
    assert exited.value.code == 2 and "'lots' is not a size of 0 or more bytes" in capsys.readouterr().err
    # a bare 512 was 512 bytes (the check silently off; the variable counts MiB); more than the machine: exit 2
    with pytest.raises(SystemExit) as exited:
        main(["run", graph, "--memory-reserve", "512", *common])
    assert exited.value.code == 2 and "give a unit: 512M or 512G" in capsys.readouterr().err
    assert main(["run", graph, "--memory-reserve", "999TiB", *common]) == 2
    assert "at least this machine's memory" in capsys.readouterr().err
