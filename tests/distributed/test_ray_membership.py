"""Ray nodes joining and leaving: a `workers="auto"` pool grows and shrinks with the cluster.

Its own multi-node cluster on 127.0.0.1 (ray.cluster_utils.Cluster: a head and one extra raylet of
1 CPU each), shut down at the end. Fails loudly if Ray cannot start; nothing is skipped.
"""

from __future__ import annotations

import os
import time

from nodegraph import Session
from nodegraph.distributed.pool import LOCAL_RAY_ENV, WorkerPool


def wait_until(condition, pool: WorkerPool, seconds: float = 120) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pool.refresh()
        if condition():
            return True
        time.sleep(0.5)
    return False


def test_auto_pool_follows_nodes_joining_and_leaving(tmp_path):
    """A node joining adds a worker on it (which runs graphs); a node leaving removes it; runs go on."""
    for key, value in LOCAL_RAY_ENV.items():
        os.environ.setdefault(key, value)
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    pool = WorkerPool(address=cluster.address, workers="auto", session_options={"autoload": False})
    try:
        pool.start()
        assert len(pool.workers()) == 1
        head_node = pool.workers()[0].node_id
        extra = cluster.add_node(num_cpus=1)
        assert wait_until(lambda: len([w for w in pool.workers() if w.alive]) == 2, pool), pool.workers()
        joined = next(w for w in pool.workers() if w.node_id != head_node)
        graph = {"format_version": 1, "nodes": {
            "v": {"type": "Int", "inputs": {"value": 5}},
            "s": {"type": "ShowValue", "inputs": {"value": {"node": "v", "output": "value"}}}}}
        session = Session(output_dir=tmp_path / "out")
        items = session.map(graph, [{"v.value": i} for i in range(4)], pool=pool)
        assert [i.status for i in items] == ["succeeded"] * 4
        assert joined.name in {i.worker for i in items}
        cluster.remove_node(extra)
        assert wait_until(lambda: [w.node_id for w in pool.workers()] == [head_node]
                          and all(w.alive for w in pool.workers()), pool), pool.workers()
        again = session.map(graph, [{"v.value": 9}], pool=pool)[0]
        assert again.status == "succeeded" and again.outputs["s"]["value"] == 9
    finally:
        pool.close()
        cluster.shutdown()
