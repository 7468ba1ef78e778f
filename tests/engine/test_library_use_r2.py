"""nodegraph as a library, second round: errors across process boundaries, `run()` from inside a run, the
caller's own RunResult containers, sinks and run ids checked at the call, Link objects in dict graphs, run records
and buffers given to `run()`."""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import pickle
import threading
from pathlib import Path

import pytest
import torch

from nodegraph import GraphValidationError, Input, Link, Node, NodeInputs, Output, Session, api, hookimpl
from nodegraph.distributed.pool import ClusterUnreachableError, RayNotInstalledError, WorkerResourcesError
from nodegraph.distributed.scheduling import NoCapableWorker
from nodegraph.distributed.sweep import SweepError
from nodegraph.errors import (GraphError, NodeExecutionError, NodeInputError, NodeOutOfMemory, NodeOutputError,
                              PathConfinementError, PluginError, RunInterrupted, StorageLimitError)
from nodegraph.executor import callers_copy
from nodegraph.memory import ModelMemoryError
from nodegraph.model_paths import ModelPathsError
from nodegraph.results import ResultFileError

ROOT = Path(__file__).resolve().parents[2]
ARITHMETIC = ROOT / "graphs" / "arithmetic.json"


@pytest.fixture(scope="module")
def session() -> Session:
    return Session(autoload=False)


def division_by_zero() -> dict:
    return {"format_version": 2, "nodes": {
        "c": {"type": "Math", "inputs": {"a": 1, "b": 0, "op": "divide"}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "c", "output": "result"}}}}}


# --- errors pickle -------------------------------------------------------------------------------------------


class _NeedsArguments(Exception):
    """A node's own exception whose __init__ takes more than its message: it pickles, but does not unpickle."""

    def __init__(self, code: int, text: str):
        super().__init__(f"{code}: {text}")


ERRORS = [
    NodeExecutionError("n", "Math", ZeroDivisionError("float division by zero"), "Traceback ...", plugin="mine"),
    RunInterrupted("sampler"),
    RunInterrupted(),
    NodeInputError("latent", "batch sizes differ"),
    NodeOutputError("text", "over the cap"),
    PathConfinementError("image", "../x.png", "parent", "leaves the input folder"),
    api.ApiArgumentError("to_pil", "image", "expected an IMAGE tensor"),
    api.ApiError("needs API 9.0"),
    NodeOutOfMemory("out of memory; lower width=4096"),
    GraphValidationError([GraphError("cycle", "a → b → a", node_id="a")]),
    StorageLimitError("over the limit"),
    PluginError("bad node class"),
    ModelMemoryError("the model does not fit"),
    ResultFileError("no MIME type", node_id="save", index=0),
    SweepError("seed=x", "not a number", "write seed=1,2"),
    ModelPathsError("paths.json", "not JSON"),
    ClusterUnreachableError("ray://h:1", "refused"),
    WorkerResourcesError("ray://h:1", "no GPU"),
    RayNotInstalledError("no module named ray"),
    NoCapableWorker({"w1": ["LoadCheckpoint"]}),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_every_error_round_trips_through_pickle_with_its_message_and_attributes(error):
    """Each rebuilt error (default pickling called cls(message): a TypeError, or RunInterrupted's text doubled)."""
    error.files_written = {"save": {"files": []}}      # what Session.run adds to a failed run's error
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error)
    assert str(again) == str(error) and again.args == error.args
    plain = {key: value for key, value in vars(error).items() if key != "exception"}
    assert {key: value for key, value in vars(again).items() if key != "exception"} == plain


def test_a_node_execution_error_keeps_the_original_exception_or_its_text():
    """A picklable cause comes back as itself; one that would not unpickle comes back as a RuntimeError."""
    kept = pickle.loads(pickle.dumps(NodeExecutionError("n", "T", ValueError("bad"), "tb")))
    assert type(kept.exception) is ValueError and str(kept.exception) == "bad"
    error = NodeExecutionError("n", "T", _NeedsArguments(7, "broken"), "tb")
    again = pickle.loads(pickle.dumps(error))
    assert again.exception_type == "_NeedsArguments" and str(again) == str(error)
    assert isinstance(again.exception, RuntimeError) and "_NeedsArguments: 7: broken" in str(again.exception)


def _run_failing_graph(_: int) -> dict:
    return Session(autoload=False, output_dir="out").run(division_by_zero()).outputs


def test_a_process_pool_worker_hands_back_the_node_execution_error():
    """ProcessPoolExecutor broke ("terminated abruptly") and a multiprocessing.Pool's get() never returned."""
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        with pytest.raises(NodeExecutionError) as caught:
            pool.submit(_run_failing_graph, 0).result(timeout=60)
    assert caught.value.node_id == "c" and caught.value.node_type == "Math"
    with context.Pool(1) as pool:
        with pytest.raises(NodeExecutionError, match="divide by zero"):
            pool.apply_async(_run_failing_graph, (0,)).get(timeout=60)


# --- run() from inside a run ---------------------------------------------------------------------------------


def test_run_from_an_event_sink_of_the_same_session_raises_instead_of_hanging():
    """A run_finished sink chaining the next run waited for its own lock for ever."""
    session = Session(autoload=False)
    seen: list[BaseException] = []

    def chain_next(event):
        if event.type == "run_finished" and not seen:
            try:
                session.run(ARITHMETIC)
            except RuntimeError as exc:
                seen.append(exc)

    worker = threading.Thread(target=lambda: session.run(ARITHMETIC, on_event=chain_next), daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "the nested run waited for itself"
    assert len(seen) == 1 and "another thread" in str(seen[0]) and "another Session" in str(seen[0])
    assert session.run(ARITHMETIC).executed == []          # the session is still usable (and cached)


class RunsItsSession(Node):
    """A node that calls back into the session running it (what a "sub-run" node might try)."""

    category = "test"
    session: Session | None = None

    class Inputs(NodeInputs):
        x: int = Input(0)

    outputs = (Output("y", "INT"),)

    def run(self, x: int) -> dict:
        assert RunsItsSession.session is not None
        RunsItsSession.session.run(ARITHMETIC)
        return {"y": x}


class _RunsItsSessionPlugin:
    @hookimpl
    def register_nodes(self):
        return [RunsItsSession]


def test_run_from_a_node_of_the_same_session_fails_that_node_instead_of_hanging():
    """The node's run() waited for the lock its own run held."""
    session = RunsItsSession.session = Session(autoload=False, plugins=[_RunsItsSessionPlugin()])
    show = {"type": "ShowValue", "inputs": {"value": {"node": "n", "output": "y"}}}
    graph = {"format_version": 2, "nodes": {"n": {"type": "RunsItsSession", "inputs": {"x": 1}}, "show": show}}
    outcome: list = []
    worker = threading.Thread(target=lambda: outcome.append(_raised(session.run, graph)), daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "the node's run waited for itself"
    assert isinstance(outcome[0], NodeExecutionError) and outcome[0].exception_type == "RuntimeError"
    assert "thread that is running a graph of this session" in str(outcome[0])


def _raised(call, *args) -> BaseException | None:
    try:
        call(*args)
    except BaseException as exc:       # noqa: BLE001 — handed to the test thread
        return exc
    return None


def test_run_from_another_thread_during_a_run_still_waits_its_turn():
    """Only the running thread is refused: a second thread's run starts when the first one ends."""
    session = Session(autoload=False)
    results: list = []

    def start_another(event):
        if event.type == "run_finished" and not results:
            other = threading.Thread(target=lambda: results.append(session.run(ARITHMETIC)))
            other.start()
            results.append(other)

    session.run(ARITHMETIC, on_event=start_another)
    results[0].join(30)
    assert results[1].outputs["show"]["value"].endswith("a large latent")


# --- the caller's own containers ------------------------------------------------------------------------------


def test_replacing_an_item_of_a_result_does_not_change_what_the_cache_gives_later():
    """`r.outputs["show"]["text"] = "HACKED"` was what the next run returned, from the cache."""
    session = Session(autoload=False)
    first = session.run(ARITHMETIC).outputs["show"]
    expected = dict(first)
    first["text"] = "HACKED"
    first.pop("value")
    again = session.run(ARITHMETIC)
    assert again.cached == ["show"] and again.outputs["show"] == expected


def test_a_dict_inside_an_output_is_the_callers_and_its_tensors_the_caches():
    """A LATENT dict whose "samples" a script replaced decoded as zeros for the next consumer of the cache."""
    cached = {"latent": {"samples": torch.ones(1, 4, 2, 2), "sizes": [1, [2, 2]]}, "pair": (1, {"a": [2]})}
    copied = callers_copy(cached)
    assert copied == cached
    assert copied["latent"] is not cached["latent"] and copied["latent"]["sizes"][1] is not cached["latent"]["sizes"][1]
    assert copied["pair"][1] is not cached["pair"][1] and copied["pair"][1]["a"] is not cached["pair"][1]["a"]
    assert copied["latent"]["samples"] is cached["latent"]["samples"]     # tensors are shared, not copied
    copied["latent"]["samples"] = copied["latent"]["samples"] * 0
    assert cached["latent"]["samples"].sum() == 16


def test_callers_copy_keeps_shared_and_self_holding_containers_finite():
    """Two references to one dict stay one dict; a list that holds itself is copied once."""
    inner = {"x": [1]}
    loop: list = [inner]
    loop.append(loop)
    copied = callers_copy({"a": inner, "b": inner, "loop": loop})
    assert copied["a"] is copied["b"] is not inner
    assert copied["loop"][1] is copied["loop"] and copied["loop"][0] is copied["a"]


# --- arguments checked at the call ----------------------------------------------------------------------------


@pytest.mark.parametrize("sink", ["x", 5, lambda: None, lambda a, b: None], ids=["str", "int", "no-args", "two-args"])
def test_a_sink_that_cannot_take_an_event_is_a_type_error_at_the_call(session, sink):
    """It was accepted and logged a traceback per event (subscribe: for every later run)."""
    with pytest.raises(TypeError, match=r"fn\(event\)"):
        session.run(ARITHMETIC, on_event=sink)
    with pytest.raises(TypeError, match=r"subscribe\(\).*fn\(event\)"):
        session.subscribe(sink)
    assert sink not in session._subscribers


def test_sinks_of_one_argument_are_taken(session):
    """Plain functions, bound methods, builtins and callables with defaults all receive the events."""
    got: list = []
    session.run(ARITHMETIC, on_event=got.append)
    session.run(ARITHMETIC, on_event=lambda event, extra=None: got.append(event))
    session.subscribe(print)()          # a builtin without a signature is taken on trust (and unsubscribed)
    assert got and all(hasattr(event, "type") for event in got)


def test_run_id_must_be_a_str_as_interrupt_requires(session):
    """run(run_id=5) ran, and interrupt(5) then refused the id that run had."""
    with pytest.raises(TypeError, match="run_id must be a str"):
        session.run(ARITHMETIC, run_id=5)
    assert session.run(ARITHMETIC, run_id="five").run_id == "five"


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_run_takes_json_bytes_as_bytes_bytearray_or_memoryview(session, wrap):
    """A buffer read from a socket or file was refused: "found a bytearray"."""
    assert session.run(wrap(ARITHMETIC.read_bytes())).outputs["show"]["value"].endswith("a large latent")


# --- Link objects and run records -----------------------------------------------------------------------------


def test_a_link_object_in_a_dict_graph_is_the_link_it_stands_for(session):
    """`{"value": Link("a", "value")}` was refused as "a Python Link, not a JSON value"."""
    graph = {"format_version": 2, "nodes": {"a": {"type": "Int", "inputs": {"value": 4}},
                                            "show": {"type": "ShowValue", "inputs": {"value": Link("a", "value")}}}}
    result = session.run(graph)
    assert result.outputs["show"]["value"] == 4
    assert session.load(graph).to_dict()["nodes"]["show"]["inputs"]["value"] == {"node": "a", "output": "value"}


def test_a_link_object_with_a_non_string_node_says_what_a_link_holds(session):
    graph = {"format_version": 2, "nodes": {"a": {"type": "Int", "inputs": {"value": 4}},
                                            "show": {"type": "ShowValue", "inputs": {"value": Link(1, "value")}}}}
    with pytest.raises(GraphValidationError, match="non-empty strings") as caught:
        session.run(graph)
    assert caught.value.errors[0].code == "invalid_format" and caught.value.errors[0].input == "value"


def test_running_a_run_record_says_the_graph_is_under_its_graph_key(session, tmp_path):
    """A run record (`nodegraph run`'s <graph>.outputs.json) was told to add "format_version"."""
    record = {"run_id": "r", "status": "succeeded", "outputs": {}, "error": None,
              "graph": json.loads(ARITHMETIC.read_text())}
    path = tmp_path / "arithmetic.outputs.json"
    path.write_text(json.dumps(record))
    with pytest.raises(GraphValidationError) as caught:
        session.run(path)
    message = caught.value.errors[0].message
    assert "run record" in message and '"graph"' in message and "format_version" not in message
    assert session.run(record["graph"]).outputs["show"]["value"].endswith("a large latent")   # what it says to run
