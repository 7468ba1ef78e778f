"""What the websocket path costs on top of the engine: in-process `Session.run` vs end to end.

    .venv/bin/python benchmarks/server_overhead.py [--sizes 200 1000] [--repeats 7] [--profile FILE]

For chains of N trivial nodes (Int → IntMath(+1) × (N-2) → ShowValue), full (every node runs:
the first literal differs each time) and cached (the same graph again: one cache hit), prints
side by side, median of --repeats interleaved measurements:
- in-process: `Session.run(graph dict)` (parse, validate, compile, keys, run), timed inside a child
              process that holds the engine;
- websocket:  a client in this process (it holds no engine, like a browser or a small script)
              submits the same graph to a server in another child process (`nodegraph.server.Server`
              on loopback, port 0, compression as `nodegraph serve` chooses) and waits for
              `run_finished`: submit → reply → queued → worker → events → client, everything a user
              waits for;
  Both engine processes freeze their startup heap first (`freeze_startup_heap`, as `nodegraph
  serve` does), so the cyclic GC treats them alike;
- ratio websocket / in-process (target <= 1.5 for 200 and 1,000 nodes, full and cached);
- CPU: mean CPU time per run in-process, and of server + client together over websockets (from
  process_time and /proc, summed over the measured repeats): on a loaded machine wall time mostly
  measures waiting for a core at each thread/process hand-off, CPU time what the path itself costs;
- bytes and frames the client received per run (target for 200 nodes: <= 100 KB).
The client asks for `batch` frames with compact node events (hello {batch: true, compact_events: true},
as the editor does); --no-compact measures batches of plain messages, --no-batch one frame per message.
With --profile FILE the server process runs under cProfile and writes its stats to FILE
(read with `python -m pstats FILE`).
The issue's baseline on this machine: 200 nodes, full run, websocket 3-5x the in-process run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def chain(n: int, first: int = 0) -> dict:
    """Int → IntMath(+1) × (n-2) → ShowValue: n nodes in all."""
    nodes = {"n0": {"type": "Int", "inputs": {"value": first}}}
    for i in range(1, n - 1):
        source = {"node": f"n{i-1}", "output": "value" if i == 1 else "result"}
        nodes[f"n{i}"] = {"type": "IntMath", "inputs": {"a": source, "b": 1, "op": "add"}}
    nodes["show"] = {"type": "ShowValue", "inputs": {"value": {"node": f"n{n-2}", "output": "result"}}}
    return {"format_version": 1, "nodes": nodes}     # version 1 loads unchanged everywhere (a v2 reader migrates it)


def _serve(conn, data_dir: str, profile: str | None, compression: str | None) -> None:
    """Child process: a Server on a free loopback port until the parent says stop."""
    import torch

    torch.set_num_threads(1)
    from nodegraph import Session
    from nodegraph.server import Server, freeze_startup_heap

    async def main() -> None:
        session = Session(output_dir=Path(data_dir) / "out", input_dir=Path(data_dir) / "in")
        server = Server(session, data_dir=data_dir, port=0, compression=compression)
        await server.start()
        freeze_startup_heap()       # as `nodegraph serve` does
        conn.send(server.port)
        await asyncio.to_thread(conn.recv)
        await server.close()

    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        asyncio.run(main())
        profiler.disable()
        profiler.dump_stats(profile)
    else:
        asyncio.run(main())
    conn.send("stopped")


async def _run_over_websocket(ws, graph: dict) -> tuple[float, int, int]:
    """(seconds from submit to run_finished, bytes received, frames received)."""
    message = json.dumps({"type": "submit", "graph": graph})
    received = frames = 0
    t0 = time.perf_counter()
    await ws.send(message)
    while True:
        frame = await ws.recv()
        received += len(frame) if isinstance(frame, bytes) else len(frame.encode())
        frames += 1
        if isinstance(frame, str):
            body = json.loads(frame)
            kinds = [body["type"]] if body.get("type") != "batch" else [m["type"] for m in body["messages"]]
            kinds += [m["event"] for m in body.get("messages", ()) if m["type"] == "node_events"]
            if "run_finished" in kinds:
                return time.perf_counter() - t0, received, frames
            if "run_failed" in kinds or body.get("type") == "error":
                raise RuntimeError(f"the run failed: {frame[:500]}")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (Linux /proc; clock-tick resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _engine(conn) -> None:
    """Child process: `Session.run` each graph the parent sends, answering (seconds, CPU seconds)."""
    import torch

    torch.set_num_threads(1)
    from nodegraph import Session
    from nodegraph.server import freeze_startup_heap

    session = Session()
    freeze_startup_heap()
    conn.send("ready")
    while (graph := conn.recv()) is not None:
        c0, t0 = time.process_time(), time.perf_counter()
        session.run(graph)
        conn.send((time.perf_counter() - t0, time.process_time() - c0))


def _in_process(engine, graph: dict) -> tuple[float, float]:
    engine.send(graph)
    return engine.recv()


async def measure(port: int, sizes: list[int], repeats: int, engine, batch: bool = True, compact: bool = True,
                  server_pid: int | None = None) -> list[dict]:
    from websockets.asyncio.client import connect

    rows = []
    async with connect(f"ws://127.0.0.1:{port}/ws", max_size=None, max_queue=None) as ws:
        await ws.send(json.dumps({"type": "hello", "protocol_version": 1,
                                  **({"batch": True, "compact_events": compact} if batch else {})}))
        while json.loads(await ws.recv())["type"] != "welcome":
            pass
        counter = 1000
        for n in sizes:
            for mode in ("full", "cached"):
                local, remote, sizes_bytes, frame_counts = [], [], [], []
                cpu_local = cpu_client = 0.0
                fixed = chain(n, first=-n)
                _in_process(engine, fixed)                     # warm both caches for "cached"
                await _run_over_websocket(ws, fixed)
                await asyncio.sleep(0.1)                       # the server's bookkeeping after it
                server_before = process_cpu_seconds(server_pid) if server_pid else 0.0
                for _ in range(repeats):
                    counter += 1
                    graph = chain(n, first=counter) if mode == "full" else fixed
                    seconds, cpu = _in_process(engine, graph)
                    local.append(seconds)
                    cpu_local += cpu
                    c0 = time.process_time()
                    seconds, size, frames = await _run_over_websocket(ws, graph)
                    cpu_client += time.process_time() - c0
                    remote.append(seconds)
                    sizes_bytes.append(size)
                    frame_counts.append(frames)
                await asyncio.sleep(0.1)      # the server's bookkeeping after the last run_finished
                cpu_server = process_cpu_seconds(server_pid) - server_before if server_pid else 0.0
                rows.append({"nodes": n, "mode": mode, "in_process": statistics.median(local),
                             "websocket": statistics.median(remote), "bytes": statistics.median(sizes_bytes),
                             "frames": statistics.median(frame_counts), "cpu_local": cpu_local / repeats,
                             "cpu_ws": (cpu_client + cpu_server) / repeats})
                row = rows[-1]
                print(f"{n:>6} {mode:<7} {row['in_process'] * 1e3:10.1f} {row['websocket'] * 1e3:10.1f} "
                      f"{row['websocket'] / row['in_process']:7.2f}x {row['bytes'] / 1024:9.1f} KB "
                      f"{row['frames']:7.0f} {row['cpu_local'] * 1e3:9.1f} {row['cpu_ws'] * 1e3:9.1f} "
                      f"{row['cpu_ws'] / max(row['cpu_local'], 1e-9):6.2f}x", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--profile", help="write the server process's cProfile stats here")
    parser.add_argument("--compression", choices=["auto", "deflate", "none"], default="auto",
                        help="the server's websocket compression (auto, the default of `nodegraph serve`: "
                             "none on loopback; deflate: permessage-deflate, as beyond loopback)")
    parser.add_argument("--no-compact", action="store_true",
                        help="batch frames without `node_events` rows (every node event a message of its own)")
    parser.add_argument("--no-batch", action="store_true",
                        help="the client does not ask for batch frames (one frame per message, as before)")
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    engine, engine_end = context.Pipe()
    with tempfile.TemporaryDirectory() as tmp:
        compression = None if args.compression == "none" else args.compression
        process = context.Process(target=_serve, args=(child, tmp, args.profile, compression), daemon=True)
        process.start()
        engine_process = context.Process(target=_engine, args=(engine_end,), daemon=True)
        engine_process.start()
        port = parent.recv()
        engine.recv()
        print(f"{'nodes':>6} {'run':<7} {'in-proc ms':>10} {'ws ms':>10} {'ratio':>8} {'bytes':>12} {'frames':>7} "
              f"{'cpu in ms':>9} {'cpu ws ms':>9} {'cpu x':>7}")
        try:
            rows = asyncio.run(measure(port, args.sizes, args.repeats, engine, batch=not args.no_batch,
                                       compact=not args.no_compact,
                                       server_pid=process.pid))
        finally:
            engine.send(None)
            engine_process.join(10)
            parent.send("stop")
            parent.recv()
            process.join(10)
    worst = max(r["websocket"] / r["in_process"] for r in rows)
    small = [r for r in rows if r["nodes"] == 200]
    print(f"worst ratio {worst:.2f}x (target <= 1.5x)"
          + (f"; bytes per 200-node run: full {small[0]['bytes'] / 1024:.1f} KB, cached "
             f"{small[1]['bytes'] / 1024:.1f} KB (target <= 100 KB)" if len(small) == 2 else ""))


if __name__ == "__main__":
    main()
