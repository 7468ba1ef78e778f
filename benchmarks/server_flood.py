"""One client floods the server with costly small submits; how long does another client wait?

    .venv/bin/python benchmarks/server_flood.py [--submits 20] [--pings 5]

A server (`nodegraph.server.Server` in a child process, as benchmarks/server_overhead.py starts it)
gets two clients. The first sends --submits graphs that fill a frame of just under 64 KiB (the
largest handled on the event loop) with ~480 nodes whose links all point nowhere: each is rejected
as invalid, after every error is written out (~20 ms each here). While they are handled, the second
client sends --pings pings, one every 30 ms, and the script prints how long each took, then how
long the whole flood took. Small messages are handled on the event loop; a connection whose
message took over `Server.ON_LOOP_SECONDS` there is handled in the pool for `POOLED_SECONDS`, so
the flood should delay the other client's pings by about one costly message at most
(docs/protocol.md, "What the websocket path costs").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import server_overhead  # noqa: E402  (its server child process and its setup)


def invalid_graph(limit: int) -> str:
    """A submit frame of at most `limit` characters whose every node links to a node that does not exist."""
    count = 1000
    while True:
        nodes = {f"n{i}": {"type": "IntMath", "inputs": {"a": {"node": f"missing{i}", "output": "q"},
                                                        "b": {"node": "n0", "output": "nope"}, "op": "add"}}
                 for i in range(count)}
        frame = json.dumps({"type": "submit", "graph": {"format_version": 1, "nodes": nodes}})
        if len(frame) <= limit:
            return frame
        count = int(count * 0.95)


async def measure(port: int, submits: int, pings: int) -> None:
    from websockets.asyncio.client import connect

    from nodegraph.protocol import ServerProtocol

    url = f"ws://127.0.0.1:{port}/ws"
    async with connect(url, max_size=None) as flooder, connect(url, max_size=None) as other:
        for ws in (flooder, other):
            await ws.send(json.dumps({"type": "hello", "protocol_version": 1}))
            while json.loads(await ws.recv())["type"] != "welcome":
                pass
        frame = invalid_graph(ServerProtocol.ON_LOOP_MAX_CHARS)
        print(f"flood: {submits} submits of {len(frame)} characters, every link dangling")
        started = time.perf_counter()

        async def flood() -> None:
            for _ in range(submits):
                await flooder.send(frame)

        sending = asyncio.create_task(flood())
        await asyncio.sleep(0.1)
        waits = []
        for _ in range(pings):
            t0 = time.perf_counter()
            await other.send(json.dumps({"type": "ping"}))
            while json.loads(await other.recv())["type"] != "pong":
                pass
            waits.append((time.perf_counter() - t0) * 1e3)
            await asyncio.sleep(0.03)
        await sending
        answered = 0
        while answered < submits:
            answered += json.loads(await flooder.recv()).get("code") == "invalid_graph"
        print(f"the other client's pings during the flood: {', '.join(f'{w:.0f}' for w in waits)} ms")
        print(f"all {submits} submits answered invalid_graph after {(time.perf_counter() - started) * 1e3:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submits", type=int, default=20)
    parser.add_argument("--pings", type=int, default=5)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    with tempfile.TemporaryDirectory() as tmp:
        process = context.Process(target=server_overhead._serve, args=(child, tmp, None, None), daemon=True)
        process.start()
        port = parent.recv()
        try:
            asyncio.run(measure(port, args.submits, args.pings))
        finally:
            parent.send("stop")
            parent.recv()
            process.join(10)


if __name__ == "__main__":
    main()
