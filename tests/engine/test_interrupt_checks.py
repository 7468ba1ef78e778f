"""`Session.running_node_checks`: whether the node a run is executing has checked for interrupts since it started.

A node that never checks runs on past an interrupt until it ends; a server tells whoever interrupts it so (the
`interrupting` reply). It learnt that by swapping the session's private interrupt flag for one that counted its
reads; the session now says it itself.
"""

from __future__ import annotations

import threading

import pytest

from nodegraph import RunInterrupted, Session
from nodegraph.interrupts import NodeChecks, interrupt_point

from . import helpers
from .helpers import chain, link


@pytest.fixture
def session() -> Session:
    helpers.CALLS.clear()
    helpers.PROBES.clear()
    return Session(plugins=[helpers])


def probed(name: str) -> dict:
    """c0 → probe 'p' (calling PROBES[name]) → c1 → show."""
    graph = chain(2)
    graph["nodes"]["p"] = {"type": "Probe", "inputs": {"value": link("c0", "y"), "name": name}}
    graph["nodes"]["c1"]["inputs"]["x"] = link("p", "value")
    return graph


def test_the_running_node_counts_its_own_checks_from_zero(session):
    """Inside a node that has not checked: ("p", 0); after two interrupt points: ("p", 2) — the executor's own
    checks before the node (and the nodes before it) are not counted for it."""
    seen = []
    helpers.PROBES["look"] = lambda value: seen.append(session.running_node_checks("r1"))
    session.run(probed("look"), run_id="r1")
    helpers.PROBES["check twice"] = lambda value: (interrupt_point(), interrupt_point(),
                                                   seen.append(session.running_node_checks("r2")))
    session.run(probed("check twice"), run_id="r2")
    assert seen == [("p", 0), ("p", 2)]


def test_only_the_executing_run_is_answered_and_never_between_nodes(session):
    """Another run id, a run that has ended, and the moments between nodes (a node's start event comes with its
    count at 0, its end event with none) answer None: nothing there can run on past an interrupt."""
    seen = []
    helpers.PROBES["look"] = lambda value: seen.append(("other run", session.running_node_checks("r0")))

    def sink(event):
        if event.type in ("node_started", "node_finished"):
            seen.append((event.type, event.node_id, session.running_node_checks("r1")))

    session.run(probed("look"), run_id="r1", on_event=sink)
    assert ("other run", None) in seen
    assert ("node_started", "p", ("p", 0)) in seen and ("node_finished", "p", None) in seen
    assert ("node_started", "c1", ("c1", 0)) in seen
    assert session.running_node_checks("r1") is None


def test_another_thread_sees_the_checks_of_a_node_that_reports_progress(session):
    """A server reads the count from its handler thread while the worker runs the node: a Wait node (it reports
    progress, which checks) shows a count above 0 and stops when interrupted."""
    graph = {"format_version": 2, "nodes": {
        "v": {"type": "Int", "inputs": {"value": 1}},
        "wait": {"type": "Wait", "inputs": {"value": link("v", "value"), "seconds": 30}},
        "show": {"type": "ShowValue", "inputs": {"value": link("wait", "value")}}}}
    progressed, outcome = threading.Event(), {}

    def run():
        try:
            session.run(graph, run_id="w", on_event=lambda e: e.type == "node_progress" and progressed.set())
        except RunInterrupted as exc:
            outcome["interrupted"] = exc.node_id

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    assert progressed.wait(10)
    node_id, count = session.running_node_checks("w")
    assert node_id == "wait" and count > 0
    session.interrupt("w")
    worker.join(10)
    assert outcome == {"interrupted": "wait"}


def test_node_checks_restart_at_each_node_and_forget_it_at_its_end():
    """The counter the executor keeps (no lock: one int add per check)."""
    checks = NodeChecks()
    assert checks.running() is None
    checks.count = 7                  # the executor's checks before a node
    checks.started("a")
    assert checks.running() == ("a", 0)
    checks.count += 1
    assert checks.running() == ("a", 1)
    checks.ended()
    assert checks.running() is None
