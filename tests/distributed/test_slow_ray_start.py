"""ray.init has no timeout: a start that hangs (Ray cannot map its shared memory under a memory limit) is said."""

from __future__ import annotations

import time

from nodegraph.distributed import pool


def test_a_slow_ray_start_is_warned_about_with_where_to_look(capsys, caplog):
    """A `serve --ray` under `ulimit -v` sat in ray.init for minutes with nothing printed (an operator's pass):
    the start is watched, and past its threshold stderr and the log say where Ray's errors are and why."""
    with pool._SlowStartWarning("starting the local Ray cluster", after=0.05, every=0.05):
        time.sleep(0.3)
    err = capsys.readouterr().err
    assert "warning: starting the local Ray cluster has not finished after" in err
    assert "/tmp/ray/session_latest/logs" in err and "ulimit -v" in err
    assert any("has not finished" in r.getMessage() for r in caplog.records)
    with pool._SlowStartWarning("quick", after=0.2):           # a start that finishes in time says nothing
        pass
    time.sleep(0.3)
    assert "quick" not in capsys.readouterr().err
