"""Executor overhead on chains of trivial nodes, validation time, and CLI start-up time.

    .venv/bin/python benchmarks/executor_overhead.py [--sizes 200 1000 10000] [--repeats 5]

Prints, for each chain length N (median of --repeats runs, one process):
- cold:         empty cache, graph given as a dict (parse + validate + compile + keys + run)
- cached:       the same Graph object again (keys + one cache hit; parse/validate/compile memoised)
- cached(dict): a fully cached re-run from a fresh dict (parse + validate + compile + keys + hit)
- changed:      one literal changed in the middle (a new graph): time and nodes executed
Per-node figures are total / N. Targets (issue 2): cold <= 50 us/node, cached <= 5 us/node,
linear in N. ComfyUI v0.3.64 on this machine (from the issue): 200-node chain 2.35 s end to
end, 1.9 s fully cached; 50 -> 100 -> 200 nodes: 125 -> 505 -> 2353 ms.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nodegraph import Session, parse_graph  # noqa: E402


def chain(n: int) -> dict:
    """Int → IntMath(+1) × (n-2) → ShowValue: n nodes in all."""
    nodes = {"n0": {"type": "Int", "inputs": {"value": 0}}}
    for i in range(1, n - 1):
        source = {"node": f"n{i-1}", "output": "value" if i == 1 else "result"}
        nodes[f"n{i}"] = {"type": "IntMath", "inputs": {"a": source, "b": 1, "op": "add"}}
    nodes["show"] = {"type": "ShowValue", "inputs": {"value": {"node": f"n{n-2}", "output": "result"}}}
    return {"format_version": 1, "nodes": nodes}


def median_time(fn, repeats: int, prepare=lambda: None) -> tuple[float, object]:
    """Median wall time of fn(prepared) over repeats; `prepare` runs untimed before each call."""
    times, result = [], None
    for _ in range(repeats):
        prepared = prepare()
        t0 = time.perf_counter()
        result = fn(prepared)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def bench_chain(n: int, repeats: int) -> dict:
    data = chain(n)
    session = Session(cache_policy="all")

    def fresh_copy():
        session.clear_cache()
        return copy.deepcopy(data)

    cold_s, result = median_time(session.run, repeats, prepare=fresh_copy)
    assert result.outputs["show"]["value"] == n - 2 and len(result.executed) == n
    graph = parse_graph(data)
    session.run(graph)
    cached_s, result = median_time(lambda _: session.run(graph), repeats)
    assert result.executed == []
    cached_dict_s, _ = median_time(session.run, repeats, prepare=lambda: copy.deepcopy(data))
    middle = f"n{n // 2}"
    counter = iter(range(10**9))

    def changed_copy():
        changed = copy.deepcopy(data)
        changed["nodes"][middle]["inputs"]["b"] = 2 + next(counter)
        return changed

    changed_s, result = median_time(session.run, repeats, prepare=changed_copy)
    return {"n": n, "cold": cold_s, "cached": cached_s, "cached_dict": cached_dict_s,
            "changed": changed_s, "changed_executed": len(result.executed)}


def bench_validation(n: int, repeats: int) -> float:
    session = Session()
    data = chain(n)
    seconds, errors = median_time(session.validate, repeats, prepare=lambda: copy.deepcopy(data))
    assert errors == []
    return seconds


def bench_cli(args: list[str], repeats: int) -> float:
    exe = [sys.executable, "-m", "nodegraph.cli", *args]
    env = {**os.environ, "NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD": "1"}
    seconds, _ = median_time(lambda _: subprocess.run(exe, cwd=ROOT, env=env, capture_output=True, check=False),
                             repeats)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000, 10000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    us = 1e6
    print(f"executor overhead, chains of trivial nodes (median of {args.repeats}; python {sys.version.split()[0]})")
    print(f"{'N':>6} | {'cold ms':>9} {'us/node':>8} | {'cached ms':>9} {'us/node':>8} | "
          f"{'cached(dict) ms':>15} {'us/node':>8} | {'1 changed ms':>12} {'executed':>8}")
    for n in args.sizes:
        r = bench_chain(n, args.repeats)
        print(f"{n:>6} | {r['cold'] * 1e3:>9.2f} {r['cold'] / n * us:>8.2f} | "
              f"{r['cached'] * 1e3:>9.3f} {r['cached'] / n * us:>8.2f} | "
              f"{r['cached_dict'] * 1e3:>15.2f} {r['cached_dict'] / n * us:>8.2f} | "
              f"{r['changed'] * 1e3:>12.2f} {r['changed_executed']:>8}")
    print("targets: cold <= 50 us/node, cached <= 5 us/node, linear in N")
    print("ComfyUI v0.3.64 (same machine, from issue 2): N=200 2353 ms cold, 1900 ms cached")
    print()
    seconds = bench_validation(10_000, args.repeats)
    print(f"validate a 10,000-node graph: {seconds * 1e3:.1f} ms ({seconds / 10_000 * us:.2f} us/node)")
    print(f"`nodegraph --help`:            {bench_cli(['--help'], args.repeats) * 1e3:.0f} ms wall")
    print(f"`nodegraph validate`:          "
          f"{bench_cli(['validate', str(ROOT / 'graphs' / 'arithmetic.json')], args.repeats) * 1e3:.0f} ms wall")
    print(f"python -c pass (floor):        {bench_cli_floor(args.repeats) * 1e3:.0f} ms wall")


def bench_cli_floor(repeats: int) -> float:
    seconds, _ = median_time(lambda _: subprocess.run([sys.executable, "-c", "pass"], capture_output=True), repeats)
    return seconds


if __name__ == "__main__":
    main()
