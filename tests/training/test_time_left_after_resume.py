"""The CLI's time left for a training node that resumes or trains longer (a kohya user's pass, finding 2).

Continuing a finished 300-step run to 600 printed "352/600 … 0:30 elapsed, ~0:21 left" where 2:24 were left:
`_timing_text` divided this run's 30 s by the absolute step 352, as if all 352 steps had been taken in it.
"""

from __future__ import annotations

import io
import time

from nodegraph.cli import _Progress, _timing_text
from nodegraph.events import NodeProgress, NodeStarted


def test_the_pace_comes_from_the_steps_taken_since_the_first_one_seen():
    """52 steps in 29.5 s since step 300 leave 248 steps of about 0.57 s: ~2:21, not ~0:21."""
    assert _timing_text(30.0, 352, 600, since=(0.5, 300)) == "0:30 elapsed, ~2:21 left"
    assert _timing_text(30.0, 352, 600) == "0:30 elapsed, ~0:21 left"        # counted from 0: the old pace
    assert _timing_text(30.0, 300, 600, since=(0.5, 300)) == ""              # no step since the start yet


def _fake_clock(monkeypatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    return now


def test_a_resumed_training_run_shows_the_time_its_own_steps_take(monkeypatch):
    """A log line of a run resumed at step 300: its first step seen (301) is the start of its pace."""
    now = _fake_clock(monkeypatch)
    log = io.StringIO()                                       # not a terminal: timed lines
    progress = _Progress(enabled=True, stream=log)
    progress(NodeStarted("r", node_id="lora", node_type="TrainLoRA"))
    now[0] += 1.0                                             # the state is loaded, step 301 done
    progress(NodeProgress("r", node_id="lora", value=301, total=600, info={"loss": 0.1}))
    now[0] += 51 * 0.58                                       # 51 more steps at 0.58 s
    progress.LOG_EVERY = 0.0
    progress(NodeProgress("r", node_id="lora", value=352, total=600, info={"loss": 0.1}))
    assert log.getvalue().splitlines()[-1].endswith("352/600 loss 0.1 (avg 0.1) · 0:31 elapsed, ~2:24 left")


def test_the_encoding_stage_and_a_new_node_start_the_pace_again(monkeypatch):
    """Minutes of "encoding images" before step 1 do not count as training time, and the next node (a sampler
    from step 1) does not inherit the training node's start."""
    now = _fake_clock(monkeypatch)
    log = io.StringIO()
    progress = _Progress(enabled=True, stream=log)
    progress.LOG_EVERY = 0.0
    progress(NodeStarted("r", node_id="lora", node_type="TrainLoRA"))
    for done in (100, 200):
        progress(NodeProgress("r", node_id="lora", value=done, total=200, info={"stage": "encoding images"}))
        now[0] += 60.0                                        # 2 minutes of encoding
    progress(NodeProgress("r", node_id="lora", value=1, total=10, info={"loss": 0.2}))
    now[0] += 2.0
    progress(NodeProgress("r", node_id="lora", value=2, total=10, info={"loss": 0.2}))
    assert log.getvalue().splitlines()[-1].endswith("2/10 loss 0.2 (avg 0.2) · 2:02 elapsed, ~0:16 left")
    progress(NodeStarted("r", node_id="sample", node_type="KSampler"))
    progress(NodeProgress("r", node_id="sample", value=0, total=20, info={}))
    now[0] += 5.0
    progress(NodeProgress("r", node_id="sample", value=5, total=20, info={}))
    assert log.getvalue().splitlines()[-1].endswith("5/20 · 0:05 elapsed, ~0:15 left")
