"""`nodegraph run --ray --sweep`: a batch on a local Ray cluster started by the command (a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_cli_sweep_on_ray_one_folder_index_and_both_workers(tmp_path):
    """Four seeds on two Ray workers: four distinct images in one folder, index.json naming the workers."""
    out = tmp_path / "sweep"
    done = subprocess.run([sys.executable, "-m", "nodegraph.cli", "run", str(ROOT / "graphs" / "txt2img.json"),
                           "--ray", "--workers", "2", "--sweep", "seed=0..3", "--set", "sampler.steps=2",
                           "--output-dir", str(out), "--no-progress"],
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "4/4 variant(s) succeeded on Ray workers" in done.stdout
    index = json.loads((out / "index.json").read_text())
    assert [i["overrides"]["sampler.seed"] for i in index["items"]] == [0, 1, 2, 3]
    names = [f["name"] for item in index["items"] for f in item["files"]]
    assert len(set(names)) == 4 and all((out / n).is_file() for n in names)
    assert len({(out / n).read_bytes() for n in names}) == 4          # different seeds, different images
    assert {i["worker"] for i in index["items"]} == {"w0", "w1"}          # two runs at once: both workers


def test_cli_unreachable_cluster_exits_2_naming_the_address(tmp_path):
    """`--ray HOST:PORT` that nothing answers: exit code 2 and a message naming the address and the fix."""
    done = subprocess.run([sys.executable, "-m", "nodegraph.cli", "run", str(ROOT / "graphs" / "txt2img.json"),
                           "--ray", "127.0.0.1:1", "--sweep", "seed=0..1", "--output-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "cannot reach the Ray cluster at '127.0.0.1:1'" in done.stderr and "ray start --head" in done.stderr


def test_cli_workers_the_cluster_cannot_hold_exit_2_at_once(tmp_path):
    """`--worker-gpus 1` on a cluster without a GPU waited DESCRIBE_TIMEOUT (120 s) printing nothing (a docs-literal
    pass); the cluster's resources are read first, and the refusal names the flag."""
    from nodegraph.distributed.pool import WorkerResources, worker_resources_problem

    assert worker_resources_problem(WorkerResources(cpus=1, gpus=1), {"CPU": 2.0}) == (
        "each worker asks for 1 GPU (--worker-gpus) and the cluster has 0 in all")
    assert worker_resources_problem(WorkerResources(cpus=1, gpus=1), {"CPU": 2.0, "GPU": 1.0}) is None
    done = subprocess.run([sys.executable, "-m", "nodegraph.cli", "run", str(ROOT / "graphs" / "arithmetic.json"),
                           "--ray", "--worker-gpus", "1", "--output-dir", str(tmp_path), "--no-progress"],
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "cannot start a worker: each worker asks for 1 GPU (--worker-gpus)" in done.stderr


def test_cli_sigterm_on_a_ray_sweep_exits_130_not_abort(tmp_path):
    """ray.init replaced run's SIGTERM handler with Ray's, which aborted the process (exit 134, a crash dump)
    where README promises 130 and an interrupted record (a docs-literal pass). Sent once variants are being
    written (an event, not a fixed sleep)."""
    import signal
    import time

    out = tmp_path / "sweep"
    process = subprocess.Popen([sys.executable, "-m", "nodegraph.cli", "run", str(ROOT / "graphs" / "txt2img.json"),
                                "--ray", "--workers", "1", "--sweep", "seed=0..199", "--set", "sampler.steps=2",
                                "--output-dir", str(out), "--no-progress"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob("*.png")) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert process.poll() is None, process.communicate()[1][-2000:]
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err[-2000:]
    assert "SIGTERM received" not in err and "interrupted" in err


def _ray_processes() -> set[int]:
    """Pids of Ray's processes on this machine (raylet, GCS, agents, workers)."""
    done = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True)
    return {int(line.split(None, 1)[0]) for line in done.stdout.splitlines()[1:]
            if any(word in line for word in ("ray::", "raylet", "gcs_server", "dashboard/agent", "runtime_env/agent"))}


def test_serve_with_ray_stops_on_sigterm_and_leaves_no_ray_process(tmp_path):
    """`nodegraph serve --ray` (a local cluster): SIGTERM closes the server (exit 0, no crash dump) and the
    cluster it started goes with it — Ray's agent processes included (they outlived a cluster started
    from the dispatcher thread)."""
    import os
    import signal
    import time

    before = _ray_processes()
    log = tmp_path / "server.log"
    with open(log, "w") as err:
        server = subprocess.Popen([sys.executable, "-m", "nodegraph.server", "--ray", "--workers", "1", "--port", "0",
                                   "--data-dir", str(tmp_path / "data")], stdout=subprocess.DEVNULL, stderr=err,
                                  cwd=tmp_path, env={**os.environ, "NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD": "1"})
        try:
            deadline = time.monotonic() + 300
            while "cluster up" not in log.read_text() and time.monotonic() < deadline and server.poll() is None:
                time.sleep(0.5)
            assert "cluster up" in log.read_text(), log.read_text()[-3000:]
            server.send_signal(signal.SIGTERM)
            assert server.wait(60) == 0, log.read_text()[-3000:]
        finally:
            if server.poll() is None:
                server.kill()
    text = log.read_text()
    assert "SIGTERM: stopping" in text and "SIGTERM received" not in text, text[-3000:]
    deadline = time.monotonic() + 20
    while _ray_processes() - before and time.monotonic() < deadline:
        time.sleep(0.5)
    left = _ray_processes() - before
    assert not left, f"Ray processes left behind: {left}"
