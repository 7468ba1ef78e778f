"""Ray-free parts of the distributed path: sweeps, the affinity policy, bad-input errors, batch jobs here."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from nodegraph import Session
from nodegraph.distributed.backend import RayBackend, write_output_file
from nodegraph.distributed.options import parse_bytes
from nodegraph.distributed.pool import (ClusterUnreachableError, WorkerPool, check_reachable, native_stderr_held,
                                       needs_for)
from nodegraph.distributed.scheduling import NoCapableWorker, RunNeeds, WorkerInfo, choose_worker, missing_on
from nodegraph.distributed.sweep import SweepError, parse_sweep
from nodegraph.server import Server

ROOT = Path(__file__).resolve().parents[2]
TXT2IMG = json.loads((ROOT / "graphs" / "txt2img.json").read_text())
ARITHMETIC = json.loads((ROOT / "graphs" / "arithmetic.json").read_text())
CKPT = ("checkpoints", TXT2IMG["nodes"]["checkpoint"]["inputs"]["ckpt_name"])   # the default model


def test_sweep_range_list_product_and_bare_names():
    """A range, a list and a bare input name (`seed`) expand to their product, first spec slowest."""
    variants = parse_sweep(["sampler.cfg=3,5.5", "seed=0..2"], TXT2IMG)
    assert variants == [{"sampler.cfg": c, "sampler.seed": s} for c in (3, 5.5) for s in (0, 1, 2)]
    assert parse_sweep(["sampler.denoise=0..1:0.25"], TXT2IMG)[-1] == {"sampler.denoise": 1.0}
    assert len(parse_sweep(["seed=0..99"], TXT2IMG)) == 100
    assert parse_sweep(["sampler.sampler=euler,\"dpmpp_2m\""], TXT2IMG)[0] == {"sampler.sampler": "euler"}


def test_sweep_files(tmp_path):
    """CSV and JSONL files give one variant per row, resolving bare names."""
    (tmp_path / "v.csv").write_text("seed,prompt.text\n1,a red circle\n2,a blue square\n")
    (tmp_path / "v.jsonl").write_text('{"seed": 5}\n\n{"sampler.steps": 3}\n')
    assert parse_sweep([str(tmp_path / "v.csv")], TXT2IMG) == [
        {"sampler.seed": 1, "prompt.text": "a red circle"}, {"sampler.seed": 2, "prompt.text": "a blue square"}]
    assert parse_sweep([str(tmp_path / "v.jsonl"), "sampler.cfg=1,2"], TXT2IMG) == [
        {"sampler.seed": 5, "sampler.cfg": 1}, {"sampler.seed": 5, "sampler.cfg": 2},
        {"sampler.steps": 3, "sampler.cfg": 1}, {"sampler.steps": 3, "sampler.cfg": 2}]


@pytest.mark.parametrize("spec, words", [
    ("seed", "neither KEY=VALUES"),
    ("nothing=1,2", "no node of the graph has an input named 'nothing'"),
    ("text=a,b", "several nodes have an input named 'text'"),
    ("ghost.seed=1", "the graph has no node 'ghost'"),
    ("seed=0..x", "'x' is not a number"),
    ("seed=5..0:1", "never reaches"),
    ("seed=0..10000000", "more than"),
    ("seed=", "no values"),
])
def test_sweep_errors_name_the_spec_and_fix(spec, words):
    """A bad sweep spec raises SweepError naming the spec, the problem and a fix."""
    with pytest.raises(SweepError) as info:
        parse_sweep([spec], TXT2IMG)
    assert words in str(info.value) and f"--sweep {spec!r}" in str(info.value) and "Fix:" in str(info.value)


@pytest.mark.parametrize("specs", [
    ["sampler.cfg=1,2", "sampler.cfg=3,4"],          # the second list replaced the first: 3, 4, 3, 4
    ["seed=1,2", "sampler.seed=3"],                  # one input under its bare and its full name
    ["seed=1,2", "seed=1,2"],
    ["CSV", "seed=7"],                               # a file's column and a KEY=VALUES
])
def test_sweeping_one_input_twice_is_refused(tmp_path, specs):
    """Two specs sweeping one input are refused naming both (the later list silently replaced the earlier one)."""
    (tmp_path / "v.csv").write_text("seed\n1\n2\n")
    specs = [str(tmp_path / "v.csv") if spec == "CSV" else spec for spec in specs]
    with pytest.raises(SweepError) as info:
        parse_sweep(specs, TXT2IMG)
    assert "sampler.seed" in str(info.value) or "sampler.cfg" in str(info.value)
    assert "swept twice" in str(info.value) and repr(specs[0]) in str(info.value)


def _worker(name, warm=(), in_flight=0, types=("LoadCheckpoint",), models=None, last_used=0.0):
    return WorkerInfo(name=name, host="10.0.0.1", node_types=frozenset(types), warm=frozenset(warm),
                      models=models or {}, in_flight=in_flight, last_used=last_used)


def test_policy_prefers_warm_then_least_loaded_then_longest_idle():
    """Affinity: the warm free worker wins; among cold ones the least recently used; busy ones wait."""
    needs = RunNeeds({"LoadCheckpoint": "models"}, (CKPT,))
    warm = "/".join(CKPT)
    a, b = _worker("a", last_used=1.0), _worker("b", warm=[warm], last_used=5.0)
    assert choose_worker([a, b], needs).name == "b"
    b.in_flight = 1
    assert choose_worker([a, b], needs).name == "a"          # the warm one is busy: a free cold one runs it
    a.in_flight = 1
    assert choose_worker([a, b], needs) is None              # every worker busy: the run waits
    c, d = _worker("c", last_used=9.0), _worker("d", last_used=2.0)
    assert choose_worker([c, d], needs).name == "d"
    assert choose_worker([c, d], needs, exclude=frozenset({"d"})).name == "c"


def test_no_capable_worker_names_each_worker_and_what_it_lacks():
    """A missing plugin node type and a missing model file are named per worker, with fixes."""
    needs = RunNeeds({"probe.ServerOnlyProbe": "probe", "LoadCheckpoint": "models"}, (CKPT,))
    a = _worker("w0", models={"checkpoints": frozenset({"other.safetensors"})})
    b = _worker("w1", types=("LoadCheckpoint", "probe.ServerOnlyProbe"), models={"checkpoints": frozenset()})
    assert missing_on(b, needs) == [f"model file '{CKPT[1]}' in its 'checkpoints' folder"]
    with pytest.raises(NoCapableWorker) as info:
        choose_worker([a, b], needs)
    text = str(info.value)
    assert "w0 (host 10.0.0.1) lacks node type 'probe.ServerOnlyProbe' (plugin 'probe' is not installed there)" in text
    assert f"w1 (host 10.0.0.1) lacks model file '{CKPT[1]}'" in text
    assert "install the plugin on every Ray node" in text and "copy the model file" in text


def test_needs_for_reads_types_plugins_and_model_files():
    """A graph's needs: qualified node types with their plugins, and its model files."""
    session = Session()
    needs = needs_for(session.registry, session.load(TXT2IMG))
    assert needs.node_types["models.LoadCheckpoint"] == "models" and CKPT in needs.model_files


def test_unreachable_address_is_a_clear_error():
    """A cluster address that does not answer fails fast, naming the address and the fix."""
    with pytest.raises(ClusterUnreachableError) as info:
        check_reachable("127.0.0.1:1", timeout=2)
    assert "'127.0.0.1:1'" in str(info.value) and "ray start --head" in str(info.value)
    with pytest.raises(ClusterUnreachableError, match="not HOST:PORT"):
        WorkerPool(address="nowhere").start()


def test_native_stderr_is_held_while_connecting(capfd):
    """What Ray's C++ core writes to fd 2 while it retries an address is dropped when the connection fails
    (the one-line ClusterUnreachableError says why) and replayed when it succeeds."""
    with pytest.raises(ConnectionError):
        with native_stderr_held():
            os.write(2, b"gcs_client.cc:210: Failed to get cluster ID\n" * 20)
            raise ConnectionError("Failed to connect")
    with native_stderr_held() as held:
        os.write(2, b"connected to the cluster\n")
    assert capfd.readouterr().err == ""
    held.replay()
    assert capfd.readouterr().err == "connected to the cluster\n"
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


def test_output_files_never_replace_and_go_on_numbering(tmp_path):
    """Files from workers keep their names unless taken: PREFIX_00001 → _00002; others get -2."""
    names = [write_output_file(tmp_path, "img_00001.png", b"x").name for _ in range(3)]
    assert names == ["img_00001.png", "img_00002.png", "img_00003.png"]
    assert write_output_file(tmp_path, "sub/a.glb", b"1").name == "a.glb"
    assert write_output_file(tmp_path, "sub/a.glb", b"2").name == "a-2.glb"
    with pytest.raises(Exception, match="output file name"):
        write_output_file(tmp_path, "../escape.png", b"x")


def test_parse_bytes():
    """Worker memory sizes: 8G, 512M, plain bytes; nonsense is refused by name."""
    assert parse_bytes("8G") == 8 * 1024**3 and parse_bytes("512MiB") == 512 * 1024**2 and parse_bytes("10") == 10
    with pytest.raises(Exception, match="'lots' is not a size"):
        parse_bytes("lots")
    assert parse_bytes("1.5K") == 1536 and parse_bytes("2e3") == 2000 and parse_bytes("0", allow_zero=True) == 0
    with pytest.raises(Exception, match="is not a size"):          # Decimal reads other scripts' digits
        parse_bytes("\u0661\u0662MiB")
    with pytest.raises(Exception, match="less than one byte"):     # was 0: --memory-reserve silently off
        parse_bytes("0.0000001B", allow_zero=True)


def test_session_map_here_writes_one_folder_and_an_index(tmp_path):
    """Session.map without a pool runs each variant here; failures stay per variant; index.json lists all."""
    session = Session(output_dir=tmp_path / "out")
    variants = [{"width.value": 3}, {"width.value": 40}, {"width.value": -5000}]
    items = session.map(ARITHMETIC, variants, output_dir=tmp_path / "sweep")
    assert [i.status for i in items][:2] == ["succeeded", "succeeded"]
    assert items[0].outputs["show"] != items[1].outputs["show"]
    index = json.loads((tmp_path / "sweep" / "index.json").read_text())
    assert index["variants"] == 3 and [i["overrides"] for i in index["items"]] == variants
    assert index["succeeded"] + index["failed"] == 3


def test_cli_sweep_here_one_folder_with_index(tmp_path):
    """`nodegraph run --sweep` without Ray runs every variant into one folder with index.json."""
    out = tmp_path / "sweep"
    done = subprocess.run([sys.executable, "-m", "nodegraph.cli", "run", str(ROOT / "graphs" / "txt2img.json"),
                           "--sweep", "seed=0..1", "--set", "sampler.steps=2", "--output-dir", str(out),
                           "--no-progress"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    index = json.loads((out / "index.json").read_text())
    assert index["succeeded"] == 2
    names = [f["name"] for item in index["items"] for f in item["files"]]
    assert len(set(names)) == 2 and all((out / n).is_file() for n in names)
    bad = subprocess.run([sys.executable, "-m", "nodegraph.cli", "run", str(ROOT / "graphs" / "txt2img.json"),
                          "--sweep", "text=a,b"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "several nodes have an input named 'text'" in bad.stderr


def test_server_keeps_serving_while_the_cluster_is_down(tmp_path):
    """With an unreachable cluster the server answers, keeps runs queued and tells clients why."""
    from tests.server.test_server import Client

    session = Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in")
    backend = RayBackend(WorkerPool(address="127.0.0.1:1", connect_timeout=1), reconnect_seconds=0.5)
    server = Server(session, data_dir=tmp_path / "data", port=0, backend=backend)
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        client = Client(f"ws://127.0.0.1:{server.port}/ws")
        client.send({"type": "submit", "graph": ARITHMETIC})
        run_id = client.next_of("submitted")["run_id"]
        status = client.next_of("cluster_status", timeout=30, state="down")
        assert "127.0.0.1:1" in status["message"] and status["pending"] >= 1
        client.send({"type": "queue_status"})
        queue = client.next_of("queue")
        assert [r["run_id"] for r in queue["pending"]] == [run_id]
        client.close()
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_help_validate_and_serve_flags_import_neither_ray_nor_torch():
    """The Ray flags cost nothing until used: `--help`, `validate` and the serve parser import no Ray or torch."""
    code = ("import sys\nfrom nodegraph.cli import main\nfrom nodegraph.server import build_parser\n"
            f"main(['validate', {str(ROOT / 'graphs' / 'arithmetic.json')!r}])\nbuild_parser()\n"
            "try:\n    main(['run', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('LOADED', 'ray' in sys.modules, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "LOADED False False" in done.stdout and "--sweep" in done.stdout and "--ray" in done.stdout


WAIT_GRAPH = {"format_version": 2, "nodes": {
    "n": {"type": "Int", "inputs": {"value": 1}},
    "wait": {"type": "Wait", "inputs": {"value": {"node": "n", "output": "value"}, "seconds": 0.3}},
    "show": {"type": "ShowValue", "inputs": {"value": {"node": "wait", "output": "value"}}}}}


class _FakePool:
    """What run_batch uses of a WorkerPool, without Ray: each run waits until interrupted or released."""

    total_slots = 2

    def __init__(self):
        self.lock = threading.Lock()
        self.started: list[str] = []
        self.interrupted: list[str] = []
        self.refreshes = 0
        self.release = threading.Event()
        self.two_running = threading.Event()
        self._events: dict[str, threading.Event] = {}

    def execute(self, request, needs, on_event, stop=None):
        run_id = request["run_id"]
        with self.lock:
            self.started.append(run_id)
            event = self._events.setdefault(run_id, threading.Event())
            if len(self.started) == 2:
                self.two_running.set()
        while not (event.wait(0.01) or self.release.is_set()):
            pass
        if event.is_set():
            return {"status": "interrupted", "worker": "w0", "error": {"message": "interrupted"}}
        return {"status": "succeeded", "worker": "w0", "outputs": {}, "files": {}}

    def interrupt(self, run_id):
        with self.lock:
            self.interrupted.append(run_id)
            self._events.setdefault(run_id, threading.Event()).set()
        return True

    def refresh(self):
        self.refreshes += 1


def test_a_pool_batch_stops_when_asked_and_on_ctrl_c(tmp_path, monkeypatch):
    """`stop` (or Ctrl+C) ends a pool batch at once: variants not started never run, the running ones are
    interrupted on their workers; a restarted worker rejoins while a batch runs (the pool is refreshed)."""
    from nodegraph.distributed import batch

    monkeypatch.setattr(batch, "POOL_REFRESH_SECONDS", 0.05)
    session = Session(output_dir=tmp_path / "out")
    pool, stop = _FakePool(), threading.Event()
    threading.Thread(target=lambda: (pool.two_running.wait(10), stop.set()), daemon=True).start()
    items = session.map(WAIT_GRAPH, [{"n.value": i} for i in range(10)], output_dir=tmp_path / "a", pool=pool,
                        stop=stop)
    assert len(pool.started) == 2 and sorted(pool.interrupted) == sorted(pool.started)   # 8 never started
    assert [i.status for i in items] == ["interrupted", "interrupted"]
    index = json.loads((tmp_path / "a" / "index.json").read_text())
    assert index["variants"] == 10 and index["interrupted"] == 2

    pool = _FakePool()

    def ctrl_c(item):
        raise KeyboardInterrupt

    pool.release.set()              # the first variants finish; on_item raises as a Ctrl+C would
    with pytest.raises(KeyboardInterrupt):
        session.map(WAIT_GRAPH, [{"n.value": i} for i in range(50)], output_dir=tmp_path / "b", pool=pool,
                    on_item=ctrl_c)
    assert len(pool.started) < 50

    pool, slow = _FakePool(), threading.Event()
    threading.Thread(target=lambda: (slow.wait(0.3), pool.release.set()), daemon=True).start()
    session.map(WAIT_GRAPH, [{"n.value": 1}], output_dir=tmp_path / "c", pool=pool)
    assert pool.refreshes >= 2


def test_interrupt_stops_a_batch_here(tmp_path):
    """session.interrupt() during a local session.map stops the running variant and the rest of the batch."""
    session = Session(output_dir=tmp_path / "out")
    seen: list[str] = []

    def on_event(event):
        if event.type == "node_started" and event.node_id == "wait":
            seen.append(event.run_id)
            if len(seen) == 2:
                session.interrupt()

    items = session.map(WAIT_GRAPH, [{"n.value": i} for i in range(5)], output_dir=tmp_path / "s",
                        on_event=on_event)
    assert [i.status for i in items] == ["succeeded", "interrupted"]
    assert json.loads((tmp_path / "s" / "index.json").read_text())["variants"] == 5


def test_without_ray_the_backend_names_the_install(monkeypatch, tmp_path):
    """--ray in an environment without Ray: one line naming the extra to install, exit 2 — not a traceback."""
    from nodegraph.distributed.pool import RayNotInstalledError

    monkeypatch.setitem(sys.modules, "ray", None)      # `import ray` raises ImportError
    with pytest.raises(RayNotInstalledError, match=r"pip install 'nodegraph\[ray\]'"):
        WorkerPool().start()
    stub = tmp_path / "stub" / "ray"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'ray'\")\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "stub"), "NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD": "1"}
    for command in (["-m", "nodegraph", "run", str(ROOT / "graphs" / "arithmetic.json"), "--ray", "--sweep",
                     "width.value=1,2", "--output-dir", str(tmp_path / "o")],
                    ["-m", "nodegraph.server", "--ray", "--port", "0", "--data-dir", str(tmp_path / "d")]):
        done = subprocess.run([sys.executable, *command], capture_output=True, text=True, timeout=120, env=env,
                              cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and "nodegraph[ray]" in done.stderr, done.stderr


def test_batch_items_carry_the_file_paths_a_run_result_has(tmp_path):
    """A script that read `result.outputs[...]["files"][i]["path"]` after `run` found no path in `map`'s items
    (only `name`); items have both now, and index.json still only names (no machine's absolute paths)."""
    from pathlib import Path as _Path

    graph = json.loads((ROOT / "graphs" / "txt2img.json").read_text())
    session = Session(output_dir=tmp_path / "out")
    (item,) = session.map(graph, [{"sampler.steps": 1}], output_dir=tmp_path / "sweep")
    (file,) = item.files
    assert _Path(file["path"]).is_file() and _Path(file["path"]) == (tmp_path / "sweep" / file["name"]).resolve()
    index = json.loads((tmp_path / "sweep" / "index.json").read_text())
    assert "path" not in index["items"][0]["files"][0] and index["items"][0]["files"][0]["name"] == file["name"]


def test_an_invalid_variant_fails_here_and_is_never_sent_to_a_worker(tmp_path):
    """A variant with a value its input refuses was shipped to a worker to fail there; it now fails in the
    driver with the errors a local run gives, and only the valid variants reach the pool."""
    session = Session(output_dir=tmp_path / "out")
    pool = _FakePool()
    pool.release.set()
    items = session.map(WAIT_GRAPH, [{"wait.seconds": 0.0}, {"wait.seconds": -5.0}, {"n.value": "text"}],
                        output_dir=tmp_path / "a", pool=pool)
    assert [i.status for i in items] == ["succeeded", "failed", "failed"]
    assert len(pool.started) == 1
    assert items[1].error["errors"][0]["input"] == "seconds" and items[2].error["errors"][0]["input"] == "value"


def test_chosen_outputs_of_a_sweep_check_only_what_they_need(tmp_path):
    """A sweep with `--output show` of a graph whose other branch is broken runs (locally) and passes the
    driver's check before a variant goes to a Ray worker (`_checked_here`); without chosen outputs it fails."""
    from nodegraph.distributed.batch import _checked_here, run_batch

    session = Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in")
    graph = session.load({"format_version": 1, "nodes": {
        "a": {"type": "Int", "inputs": {"value": 3}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "a", "output": "value"}}},
        "broken": {"type": "NoSuchNode", "inputs": {}}}})
    assert _checked_here(session, graph, ["show"]) == []
    assert [e.code for e in _checked_here(session, graph, None)] == ["unknown_node_type"]
    items = run_batch(session, graph, [{"a.value": 1}, {"a.value": 2}], outputs=["show"], output_dir=tmp_path / "o")
    assert [(item.status, item.outputs["show"]["value"]) for item in items] == [("succeeded", 1), ("succeeded", 2)]


def test_a_plugin_that_failed_to_load_on_a_worker_is_named_with_its_error():
    """A plugin installed on the worker whose import raised there ("No module named 'fancylib'") was reported as
    "not installed there" and its ImportError was logged nowhere (an operator's pass)."""
    from nodegraph.distributed.pool import failed_plugins

    needs = RunNeeds({"opsplug.OpsUpper": "opsplug"}, ())
    worker = _worker("w0")
    worker.failed_plugins = failed_plugins([
        {"kind": "failed", "plugin": "opsplug", "message": "ImportError: No module named 'fancylib'"},
        {"kind": "clash", "plugin": "other", "message": "x"}])
    assert worker.failed_plugins == {"opsplug": "ImportError: No module named 'fancylib'"}
    with pytest.raises(NoCapableWorker) as info:
        choose_worker([worker], needs)
    text = str(info.value)
    assert ("lacks node type 'opsplug.OpsUpper' (plugin 'opsplug' failed to load there: ImportError: No module "
            "named 'fancylib')") in text
    assert "make the plugin import on those nodes" in text and "install the plugin" not in text


def test_a_server_stops_its_remote_runs_before_it_says_goodbye(tmp_path):
    """On SIGTERM a `--ray` server closed its clients first and recorded the runs' interruption after, so a client
    never heard `run_interrupted` (an operator's pass): the backend's runs are stopped before the outboxes are
    flushed and the connections closed."""
    calls = []

    class Backend:                      # the server's seam to a backend (distributed/backend.py RayBackend)
        def serve(self, server):
            server._stopping.wait()

        def stop_runs(self):
            calls.append("stop_runs")

        def close(self):
            calls.append("close")

        def interrupt(self, run_id):
            return False

    server = Server(Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in"), data_dir=tmp_path / "data",
                    port=0, backend=Backend())
    flush = server._flush_outboxes

    async def flushed(seconds):
        calls.append("flush")
        await flush(seconds)

    server._flush_outboxes = flushed

    async def main():
        await server.start()
        await server.close()

    asyncio.run(main())
    assert calls == ["stop_runs", "flush", "close"]
