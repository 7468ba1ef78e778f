"""Engine-side failures a plugin author met (pluginauthor6): a slow choice list that crashed `run` with a bare
AssertionError, a node's own KeyboardInterrupt read as the user's Ctrl+C, and an interrupt that named no node."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from nodegraph import Input, Node, NodeExecutionError, NodeInputs, Output, RunInterrupted, Session, hookimpl
from nodegraph import session as session_module


class Styled(Node):
    """Uses a plugin's choice list."""

    class Inputs(NodeInputs):
        style: str = Input("plain", choices_from="slow_pack.styles")

    outputs = (Output("text", "STRING"),)

    def run(self, style):
        return {"text": style}


def styled_session(read_styles) -> Session:
    class SlowPack:
        @hookimpl
        def register_nodes(self):
            return [Styled]

        @hookimpl
        def register_choice_lists(self):
            return {"slow_pack.styles": read_styles}

    return Session(plugins=[("slow_pack", SlowPack())], autoload=False)


def styled_graph(*styles: str) -> dict:
    nodes = {}
    for index, style in enumerate(styles):
        nodes[f"s{index}"] = {"type": "Styled", "inputs": {"style": style}}
        nodes[f"show{index}"] = {"type": "ShowValue", "inputs": {"value": {"node": f"s{index}", "output": "text"}}}
    return {"format_version": 2, "nodes": nodes}


def test_a_list_that_answers_between_runs_two_validations_does_not_crash_the_run(monkeypatch):
    """`run` validated twice when the first pass failed; a list that answered in between left the second pass
    empty, and `GraphValidationError([])` asserted: a bare AssertionError instead of a run."""
    gate = threading.Event()
    session = styled_session(lambda: (gate.wait(10), ["plain", "noir"])[1])
    monkeypatch.setattr("nodegraph.registry.Registry.CHOICES_WAIT", 0.3)
    monkeypatch.setattr(Session, "RUN_CHOICES_WAIT", 0.0)            # the quick wait only: the first pass fails
    real_validate = session_module.validate

    def validate_then_answer(*args, **kwargs):
        errors = real_validate(*args, **kwargs)
        gate.set()                                                   # the list answers after the first pass
        return errors

    monkeypatch.setattr(session_module, "validate", validate_then_answer)
    assert session.run(styled_graph("noir")).outputs["show0"]["value"] == "noir"


def test_run_waits_for_a_slow_choice_list_and_quick_validation_does_not(monkeypatch):
    """A list slower than CHOICES_WAIT failed every one-shot `nodegraph run` (no choices yet in a new process);
    `run` now waits up to RUN_CHOICES_WAIT, while `validate` (a server's submit, the editor) keeps its quick wait."""
    monkeypatch.setattr("nodegraph.registry.Registry.CHOICES_WAIT", 0.05)
    session = styled_session(lambda: (time.sleep(0.5), ["plain", "noir"])[1])
    (error,) = [e for e in session.validate(styled_graph("noir")) if e.input == "style"]
    assert error.code == "not_in_choices" and "took more than 0.05 s to answer" in error.message
    session = styled_session(lambda: (time.sleep(0.5), ["plain", "noir"])[1])       # a new process
    assert session.run(styled_graph("noir")).outputs["show0"]["value"] == "noir"


def test_a_slow_list_that_run_waits_for_is_not_logged_as_offering_no_choices(monkeypatch, caplog):
    """`Registry.choices` logged "took more than 2 s ... no choices are offered" while `run` went on waiting and
    then ran with the list's choices. The caller's wait is handed to it, and only a wait that ran out is logged,
    naming that wait."""
    import logging

    caplog.set_level(logging.WARNING, logger="nodegraph")
    monkeypatch.setattr("nodegraph.registry.Registry.CHOICES_WAIT", 0.05)
    session = styled_session(lambda: (time.sleep(0.5), ["plain", "noir"])[1])
    assert session.run(styled_graph("noir")).outputs["show0"]["value"] == "noir"
    assert "took more than" not in caplog.text
    assert session.registry.choice_list_problem("slow_pack.styles") is None
    monkeypatch.setattr(Session, "RUN_CHOICES_WAIT", 0.2)       # a wait that runs out is logged, with its length
    gate = threading.Event()
    session = styled_session(lambda: (gate.wait(10), ["plain"])[1])
    with pytest.raises(Exception, match="took more than 0.2 s to answer"):
        session.run(styled_graph("plain"))
    gate.set()
    assert "took more than 0.2 s to answer; no choices are offered" in caplog.text


def test_one_validation_waits_for_a_slow_list_once(monkeypatch):
    """Two nodes of one slow list waited CHOICES_WAIT each (4 s where the docs say 2): one wait per list."""
    gate = threading.Event()
    monkeypatch.setattr("nodegraph.registry.Registry.CHOICES_WAIT", 0.5)
    session = styled_session(lambda: (gate.wait(10), ["plain"])[1])
    started = time.monotonic()
    errors = session.validate(styled_graph("plain", "plain", "plain"))
    waited = time.monotonic() - started
    gate.set()
    assert [e.code for e in errors if e.input == "style"] == ["not_in_choices"] * 3
    assert 0.5 <= waited < 0.95, waited


class Raises(Node):
    """A plugin bug (or tqdm / cv2 passing one on): raises KeyboardInterrupt, or sends this process a signal."""

    class Inputs(NodeInputs):
        how: str = Input("raise")

    outputs = (Output("value", "INT"),)

    def run(self, how):
        if how == "raise":
            raise KeyboardInterrupt
        os.kill(os.getpid(), getattr(signal, how))      # a real Ctrl+C (SIGINT) or `timeout`'s SIGTERM
        time.sleep(5)                                   # the handler raises in here
        return {"value": 1}


def raises_graph(how: str) -> dict:
    return {"format_version": 2, "nodes": {"n": {"type": "Raises", "inputs": {"how": how}},
                                           "show": {"type": "ShowValue", "inputs": {"value": {"node": "n",
                                                                                               "output": "value"}}}}}


class NodesPlugin:
    def __init__(self, *nodes):
        self.nodes = list(nodes)

    @hookimpl
    def register_nodes(self):
        return self.nodes


def run_catching(session: Session, graph: dict) -> BaseException:
    try:
        session.run(graph)
    except BaseException as exc:      # noqa: BLE001 — a bare KeyboardInterrupt is what is being tested
        return exc
    raise AssertionError("the run succeeded")


def test_a_nodes_own_keyboard_interrupt_is_its_failure_and_ctrl_c_still_stops():
    """Session.run re-raised a node's own KeyboardInterrupt as the user's Ctrl+C (the CLI exited 130, "interrupted
    (Ctrl+C)"); only a SIGINT the process received is the user's stop now."""
    assert threading.current_thread() is threading.main_thread()
    session = Session(plugins=[("kbd_pack", NodesPlugin(Raises))], autoload=False)
    failure = run_catching(session, raises_graph("raise"))
    assert isinstance(failure, NodeExecutionError), repr(failure)
    assert failure.node_id == "n" and failure.plugin == "kbd_pack" and "KeyboardInterrupt" in str(failure)
    handler = signal.getsignal(signal.SIGINT)
    assert isinstance(run_catching(session, raises_graph("SIGINT")), KeyboardInterrupt)     # Ctrl+C: a stop
    assert signal.getsignal(signal.SIGINT) is handler                                       # put back


def test_nodegraph_runs_sigterm_is_a_stop_not_the_nodes_failure():
    """`nodegraph run` turns SIGTERM into KeyboardInterrupt (as Ctrl+C); its handler notes the signal, so the
    node running then is not blamed."""
    from nodegraph.cli import _stop_on_sigterm_as_on_ctrl_c

    session = Session(plugins=[("kbd_pack", NodesPlugin(Raises))], autoload=False)
    previous = _stop_on_sigterm_as_on_ctrl_c()
    try:
        stopped = run_catching(session, raises_graph("SIGTERM"))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert isinstance(stopped, KeyboardInterrupt) and "SIGTERM" in str(stopped)


class Rude(Node):
    """Never checks for interruption."""

    outputs = (Output("value", "INT"),)

    def run(self):
        time.sleep(0.6)
        return {"value": 1}


def test_an_interrupt_names_the_node_that_did_not_check():
    """An interrupt asked while a node that never checks ran ended the run at the next node with node_id None;
    docs/executor.md says the event names the node that was running."""
    session = Session(plugins=[("rude_pack", NodesPlugin(Rude))], autoload=False)
    graph = {"format_version": 2, "nodes": {
        "rude": {"type": "Rude", "inputs": {}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "rude", "output": "value"}}}}}
    events = []
    timer = threading.Timer(0.2, session.interrupt)
    timer.start()
    with pytest.raises(RunInterrupted) as info:
        session.run(graph, on_event=events.append)
    timer.join()
    assert info.value.node_id == "rude"
    assert [e.node_id for e in events if e.type == "run_interrupted"] == ["rude"]
