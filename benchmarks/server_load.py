"""Server load and message size, over loopback.

    .venv/bin/python benchmarks/server_load.py [--clients 20] [--graphs 5]

1. Load: a long run is executing; then --clients concurrent clients each submit
   --graphs small graphs. Reports submission latency (submit → `submitted`)
   p50/p95, total time until all runs finished, and checks none were lost or
   duplicated. Target (issue 6): p95 <= 50 ms while a run is executing.
2. Bytes sent to the submitting client for one 200-node run (no previews),
   vs ComfyUI's ~8 MB. Target: <= 100 KB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import connect  # noqa: E402

from nodegraph import Session  # noqa: E402
from nodegraph.server import Server  # noqa: E402


def small_graph(i: int) -> dict:
    return {"format_version": 1, "nodes": {
        "a": {"type": "Int", "inputs": {"value": i}},
        "b": {"type": "IntMath", "inputs": {"a": {"node": "a", "output": "value"}, "b": 1}},
        "s": {"type": "ShowValue", "inputs": {"value": {"node": "b", "output": "result"}}}}}


def chain_graph(n: int) -> dict:
    nodes = {"n0": {"type": "Int", "inputs": {"value": 0}}}
    for i in range(1, n - 1):
        nodes[f"n{i}"] = {"type": "IntMath", "inputs": {
            "a": {"node": f"n{i-1}", "output": "value" if i == 1 else "result"}, "b": 1}}
    nodes["s"] = {"type": "ShowValue", "inputs": {"value": {"node": f"n{n-2}", "output": "result"}}}
    return {"format_version": 1, "nodes": nodes}


async def hello(ws) -> None:
    await ws.send(json.dumps({"type": "hello", "protocol_version": 1}))
    while json.loads(await ws.recv())["type"] != "welcome":
        pass


async def client_task(url: str, graphs: int, offset: int, latencies: list, run_ids: list, done: dict) -> None:
    # max_queue=None: a client that stops reading at the end must not stall its own close handshake
    async with connect(url, max_size=None, max_queue=None) as ws:
        await hello(ws)
        mine = set()
        for k in range(graphs):
            t0 = time.perf_counter()
            await ws.send(json.dumps({"type": "submit", "graph": small_graph(offset + k), "request_id": k}))
            while True:
                message = json.loads(await ws.recv())
                if message["type"] == "submitted" and message.get("request_id") == k:
                    latencies.append(time.perf_counter() - t0)
                    run_ids.append(message["run_id"])
                    mine.add(message["run_id"])
                    break
                if message["type"] in ("run_finished", "run_failed"):
                    done[message["run_id"]] = message["type"]
        while not mine <= set(done):
            message = json.loads(await ws.recv())
            if message["type"] in ("run_finished", "run_failed"):
                done[message["run_id"]] = message["type"]


async def load_test(server: Server, clients: int, graphs: int) -> None:
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with connect(url, max_queue=None) as blocker:
        await hello(blocker)
        wait = {"format_version": 1, "nodes": {
            "v": {"type": "Int", "inputs": {"value": 1}},
            "w": {"type": "Wait", "inputs": {"value": {"node": "v", "output": "value"}, "seconds": 1.0}},
            "s": {"type": "ShowValue", "inputs": {"value": {"node": "w", "output": "value"}}}}}
        await blocker.send(json.dumps({"type": "submit", "graph": wait}))
        while json.loads(await blocker.recv())["type"] != "node_progress":
            pass
        latencies: list[float] = []
        run_ids: list[str] = []
        done: dict[str, str] = {}
        t0 = time.perf_counter()
        await asyncio.gather(*(client_task(url, graphs, 1000 * c, latencies, run_ids, done) for c in range(clients)))
        total = time.perf_counter() - t0
    expected = clients * graphs
    ok = sum(1 for v in done.values() if v == "run_finished")
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(f"load: {clients} clients x {graphs} graphs, submitted while a 1 s run was executing")
    print(f"  submitted {len(run_ids)}/{expected}, distinct run ids {len(set(run_ids))}, finished ok {ok}")
    print(f"  submission latency p50 {statistics.median(latencies) * 1e3:.1f} ms, p95 {p95 * 1e3:.1f} ms "
          f"(target p95 <= 50 ms); all done in {total:.2f} s")
    assert len(set(run_ids)) == expected and ok == expected, "runs were lost or duplicated"


async def bytes_test(server: Server, n: int) -> None:
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with connect(url, max_size=None) as ws:
        await hello(ws)
        graph = chain_graph(n)
        await ws.send(json.dumps({"type": "submit", "graph": graph}))
        received = 0
        frames = 0
        while True:
            frame = await ws.recv()
            received += len(frame if isinstance(frame, bytes) else frame.encode())
            frames += 1
            if isinstance(frame, str) and json.loads(frame)["type"] in ("run_finished", "run_failed"):
                break
    print(f"bytes to the client for one {n}-node run: {received / 1024:.1f} KB in {frames} frames "
          f"(target <= 100 KB; ComfyUI ~8 MB)")


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        session = Session(output_dir=Path(tmp) / "out", input_dir=Path(tmp) / "in")
        server = Server(session, data_dir=tmp, port=0)
        await server.start()
        try:
            await load_test(server, args.clients, args.graphs)
            await bytes_test(server, 200)
        finally:
            await server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--graphs", type=int, default=5)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
