"""The executor: what runs, what is cached, what is released, and how runs end."""

from __future__ import annotations

import gc
import os
import threading
import time
import weakref

import pytest

from nodegraph import GraphValidationError, NodeExecutionError, RunInterrupted, Session

from . import helpers
from .helpers import chain, link


@pytest.fixture
def session() -> Session:
    helpers.CALLS.clear()
    helpers.PROBES.clear()
    return Session(plugins=[helpers])


def test_runs_only_what_feeds_outputs(session):
    """A branch that feeds no output node never runs."""
    graph = chain(3)
    graph["nodes"]["orphan"] = {"type": "Counter", "inputs": {"x": 5}}
    result = session.run(graph)
    assert result.outputs["show"]["value"] == 3
    assert "orphan" not in result.executed
    assert result.executed == ["c0", "c1", "c2", "show"]


def test_rerun_is_fully_cached(session):
    """Running the same graph twice executes nothing the second time."""
    session.run(chain(5))
    helpers.CALLS.clear()
    result = session.run(chain(5))
    assert result.executed == []
    assert result.cached == ["show"]
    assert helpers.CALLS == []
    assert result.outputs["show"]["value"] == 5


def test_changed_middle_node_reruns_only_downstream(session):
    """Changing one literal re-runs that node and what depends on it, nothing upstream."""
    graph = chain(6)
    session.run(graph)
    graph["nodes"]["c3"]["inputs"]["tag"] = "changed"
    result = session.run(graph)
    assert result.executed == ["c3", "c4", "c5", "show"]
    assert result.cached == ["c2"]


def test_cache_is_shared_across_graphs(session):
    """Two different graphs with an identical sub-chain share cache entries."""
    session.run(chain(4))
    other = chain(4)
    other["nodes"]["extra"] = {"type": "Counter", "inputs": {"x": link("c3", "y")}}
    other["nodes"]["show"]["inputs"]["value"] = link("extra", "y")
    result = session.run(other)
    assert result.executed == ["extra", "show"]
    assert result.cached == ["c3"]


def test_non_deterministic_nodes_are_never_cached(session):
    """RandomInt and everything downstream of it run again on every run."""
    graph = {"format_version": 1, "nodes": {
        "r": {"type": "RandomInt", "inputs": {"low": 0, "high": 10**9}},
        "add": {"type": "IntMath", "inputs": {"a": link("r", "value"), "b": 1}},
        "show": {"type": "ShowValue", "inputs": {"value": link("add", "result")}},
    }}
    first = session.run(graph)
    second = session.run(graph)
    assert second.executed == ["r", "add", "show"]
    assert first.outputs["show"]["value"] != second.outputs["show"]["value"]


def test_switch_runs_only_the_chosen_branch(session):
    """A lazy Switch evaluates only the branch its condition selects."""
    graph = {"format_version": 1, "nodes": {
        "cond": {"type": "Boolean", "inputs": {"value": True}},
        "yes": {"type": "Counter", "inputs": {"x": 10}},
        "no": {"type": "Boom", "inputs": {"x": 1}},
        "sw": {"type": "Switch", "inputs": {"condition": link("cond", "value"),
                                            "on_true": link("yes", "y"), "on_false": link("no", "y")}},
        "show": {"type": "ShowValue", "inputs": {"value": link("sw", "value")}},
    }}
    result = session.run(graph)
    assert result.outputs["show"]["value"] == 11
    assert "no" not in result.executed
    graph["nodes"]["cond"]["inputs"]["value"] = False
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph)
    assert info.value.node_id == "no"


def test_switch_refuses_a_condition_that_is_not_a_boolean(session):
    """The text "false" through a `*` output picked on_true (any truthy value did); neither branch runs now."""
    graph = {"format_version": 2, "nodes": {
        "text": {"type": "String", "inputs": {"value": "false"}},
        "any": {"type": "Switch", "inputs": {"condition": True, "on_true": link("text", "value")}},
        "yes": {"type": "Counter", "inputs": {"x": 10}},
        "no": {"type": "Boom", "inputs": {"x": 1}},
        "sw": {"type": "Switch", "inputs": {"condition": link("any", "value"),
                                            "on_true": link("yes", "y"), "on_false": link("no", "y")}},
        "show": {"type": "ShowValue", "inputs": {"value": link("sw", "value")}},
    }}
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph)
    assert info.value.node_id == "sw" and info.value.exception.input == "condition"
    assert "found str 'false'" in str(info.value.exception)


@pytest.mark.parametrize("policy, released", [("none", True), ("all", False)])
def test_intermediates_are_released_after_last_consumer(session, policy, released):
    """A value is freed once its last consumer has run, unless the cache keeps it."""
    session.set_cache_policy(policy)
    refs = []
    seen = {}
    helpers.PROBES["keep"] = lambda blob: refs.append(weakref.ref(blob))

    def check(_):
        gc.collect()
        seen["alive"] = refs[0]() is not None

    helpers.PROBES["check"] = check
    graph = {"format_version": 1, "nodes": {
        "blob": {"type": "MakeBlob", "inputs": {"n": 1}},
        "size1": {"type": "BlobSize", "inputs": {"blob": link("blob", "blob"), "name": "keep"}},
        "other": {"type": "MakeBlob", "inputs": {"n": 2}},
        "size2": {"type": "BlobSize", "inputs": {"blob": link("other", "blob"), "name": "check"}},
        "join": {"type": "FormatText", "inputs": {"template": "{a}{b}", "a": link("size1", "n"),
                                                  "b": link("size2", "n")}},
        "show": {"type": "ShowValue", "inputs": {"value": link("join", "text")}},
    }}
    result = session.run(graph)
    assert result.executed == ["blob", "size1", "other", "size2", "join", "show"]
    assert result.outputs["show"]["value"] == "12"
    assert seen["alive"] is (not released)


def test_cache_budget_evicts_least_recently_used(session):
    """An LRU budget smaller than the outputs keeps the total under the budget."""
    session.set_cache_policy("lru", budget_bytes=300)
    session.run(chain(20))
    assert session.cache.total_bytes <= 300
    assert session.cache.stats.evictions > 0


def test_cache_policy_all_and_clear(session):
    """Policy "all" keeps everything; clear() empties it and the next run recomputes."""
    session.set_cache_policy("all")
    session.run(chain(10))
    assert len(session.cache) == 11
    session.clear_cache()
    assert session.run(chain(10)).cached == []


def test_bad_cache_policy_is_rejected(session):
    """An unknown policy name is an error naming the valid ones."""
    with pytest.raises(ValueError, match="lru, all, none"):
        session.set_cache_policy("sometimes")


def test_failing_node_reports_and_leaves_session_healthy(session):
    """A node error carries id, type, exception and traceback; the next run works."""
    events = []
    graph = chain(2)
    graph["nodes"]["bad"] = {"type": "Boom", "inputs": {"x": link("c1", "y")}}
    graph["nodes"]["show"]["inputs"]["value"] = link("bad", "y")
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph, on_event=events.append)
    err = info.value
    assert (err.node_id, err.node_type, err.exception_type) == ("bad", "Boom", "RuntimeError")
    assert "boom at 2" in str(err) and "Traceback" in err.traceback
    kinds = [e.type for e in events]
    assert kinds[-2:] == ["node_error", "run_failed"]
    error_event = events[-2]
    assert error_event.node_id == "bad" and error_event.exception_type == "RuntimeError"
    # The nodes that did finish were cached; a fixed graph continues from them.
    graph["nodes"]["show"]["inputs"]["value"] = link("c1", "y")
    result = session.run(graph)
    assert result.cached == ["c1"] and result.executed == ["show"]


def test_interrupt_inside_a_long_node(session):
    """interrupt() stops a running Wait node cooperatively; the session runs again afterwards."""
    graph = {"format_version": 1, "nodes": {
        "v": {"type": "Int", "inputs": {"value": 1}},
        "wait": {"type": "Wait", "inputs": {"value": link("v", "value"), "seconds": 30}},
        "show": {"type": "ShowValue", "inputs": {"value": link("wait", "value")}},
    }}
    events = []
    started = threading.Event()

    def sink(event):
        events.append(event)
        if event.type == "node_progress":
            started.set()

    threading.Thread(target=lambda: (started.wait(5), session.interrupt()), daemon=True).start()
    t0 = time.perf_counter()
    with pytest.raises(RunInterrupted) as info:
        session.run(graph, on_event=sink)
    assert time.perf_counter() - t0 < 5
    assert info.value.node_id == "wait"
    assert events[-1].type == "run_interrupted" and events[-1].node_id == "wait"
    graph["nodes"]["wait"]["inputs"]["seconds"] = 0
    assert session.run(graph).outputs["show"]["value"] == 1


def test_interrupt_with_a_run_id_stops_only_that_run(session):
    """interrupt("B") while run A executes and B waits for it: B stops as it starts, A goes on to the end; a
    request for an id that never runs does not stop a later run with another id."""
    def graph(seconds: float, value: int) -> dict:
        return {"format_version": 1, "nodes": {
            "v": {"type": "Int", "inputs": {"value": value}},
            "wait": {"type": "Wait", "inputs": {"value": link("v", "value"), "seconds": seconds}},
            "show": {"type": "ShowValue", "inputs": {"value": link("wait", "value")}}}}

    started, outcome = threading.Event(), {}

    def run(name: str, seconds: float, value: int) -> None:
        try:
            sink = (lambda e: started.set() if e.type == "node_progress" else None) if name == "A" else None
            outcome[name] = session.run(graph(seconds, value), run_id=name, on_event=sink).outputs["show"]["value"]
        except RunInterrupted:
            outcome[name] = "interrupted"

    a = threading.Thread(target=run, args=("A", 1.5, 1))
    a.start()
    assert started.wait(10)
    b = threading.Thread(target=run, args=("B", 0.0, 2))
    b.start()
    time.sleep(0.2)                  # B is waiting for A
    session.interrupt("B")
    a.join(20)
    b.join(20)
    assert outcome == {"A": 1, "B": "interrupted"}
    session.interrupt("never-runs")
    assert session.run(graph(0.0, 3), run_id="C").outputs["show"]["value"] == 3
    session.interrupt("A")                      # A has ended: a later run reusing its id is not stopped
    assert session.run(graph(0.0, 4), run_id="A").outputs["show"]["value"] == 4


def test_events_of_a_run(session):
    """A run emits started, per-node started/finished or cached, and finished, in order."""
    session.run(chain(2))
    events = []
    graph = chain(3)
    session.run(graph, on_event=events.append)
    kinds = [(e.type, getattr(e, "node_id", None)) for e in events]
    assert kinds[0][0] == "run_started"
    assert ("node_cached", "c1") in kinds
    assert ("node_started", "c2") in kinds and ("node_finished", "c2") in kinds
    assert kinds[-1][0] == "run_finished"
    finished = [e for e in events if e.type == "node_finished"]
    assert all(e.seconds >= 0 and e.peak_memory_bytes for e in finished)
    assert all(isinstance(e.to_dict(), dict) for e in events)


def test_subscriber_errors_do_not_break_runs(session):
    """A subscriber that raises is logged; the run still succeeds."""
    session.subscribe(lambda event: 1 / 0)
    assert session.run(chain(2)).outputs["show"]["value"] == 2


def test_long_chain_has_no_recursion_limit(session):
    """A 5,000-node chain runs (the executor uses an explicit stack)."""
    result = session.run(chain(5000))
    assert result.outputs["show"]["value"] == 5000


def test_overrides_change_literals(session):
    """Overrides replace literals without editing the graph; bad keys are errors."""
    assert session.run(chain(3), overrides={"c0.x": 10}).outputs["show"]["value"] == 13
    with pytest.raises(GraphValidationError) as info:
        session.run(chain(3), overrides={"nope.x": 1})
    assert info.value.errors[0].code == "unknown_node"


def test_requested_outputs_subset(session):
    """outputs= runs only what the named nodes need."""
    result = session.run(chain(4), outputs=["c1"])
    assert result.executed == ["c0", "c1"]
    assert result.outputs == {"c1": {"y": 2}}


def test_model_file_fingerprint_invalidates_cache(tmp_path):
    """A model file changed on disk gives its node a new cache key."""
    from nodegraph import Input, Node, NodeInputs, Output, hookimpl
    from nodegraph.model_paths import ModelPaths

    class ReadModel(Node):
        """Reads a model file's text."""

        class Inputs(NodeInputs):
            name: str = Input(model_folder="checkpoints")

        outputs = (Output("text", "STRING"),)

        def run(self, name: str) -> dict:
            path = self.context.service("model_paths").resolve("checkpoints", name)
            return {"text": path.read_text()}

    class Plugin:
        @hookimpl
        def register_nodes(self):
            return [ReadModel]

    folder = tmp_path / "models" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "m.safetensors").write_text("one")
    session = Session(plugins=[("files", Plugin())], model_paths=ModelPaths(roots=[tmp_path / "models"]))
    graph = {"format_version": 1, "nodes": {
        "m": {"type": "ReadModel", "inputs": {"name": "m.safetensors"}},
        "show": {"type": "ShowValue", "inputs": {"value": link("m", "text")}}}}
    assert session.run(graph).outputs["show"]["value"] == "one"
    assert session.run(graph).executed == []
    (folder / "m.safetensors").write_text("two!")
    result = session.run(graph)
    assert result.executed == ["m", "show"] and result.outputs["show"]["value"] == "two!"
    graph["nodes"]["m"]["inputs"]["name"] = "missing.safetensors"
    with pytest.raises(GraphValidationError) as info:
        session.run(graph)
    err = info.value.errors[0]
    from nodegraph.validation import shown_folder      # relative when inside the working folder

    assert err.code == "not_in_choices" and "m.safetensors" in err.message and shown_folder(str(folder)) in err.message
    # a name given by a String box (an imported ComfyUI PrimitiveString) is fingerprinted as well: the file
    # changed under it was served from the cache (a reproducibility audit)
    graph["nodes"]["name"] = {"type": "String", "inputs": {"value": "m.safetensors"}}
    graph["nodes"]["m"]["inputs"]["name"] = link("name", "value")
    assert session.run(graph).outputs["show"]["value"] == "two!"
    assert session.run(graph).executed == []
    stat = (folder / "m.safetensors").stat()
    (folder / "m.safetensors").write_text("TWO!")                   # same size, and the old mtime put back
    os.utime(folder / "m.safetensors", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    result = session.run(graph)
    assert result.executed == ["m", "show"] and result.outputs["show"]["value"] == "TWO!"
    # a name computed by another node (FormatText, a switch) is unknown when keys are made: no fingerprint can see
    # its file change, so the node runs every time (it served the old file's result before: a hostile re-test)
    graph["nodes"]["stem"] = {"type": "String", "inputs": {"value": "m"}}
    graph["nodes"]["name"] = {"type": "FormatText", "inputs": {"template": "{a}.safetensors", "a": link("stem", "value")}}
    graph["nodes"]["m"]["inputs"]["name"] = link("name", "text")
    assert session.run(graph).outputs["show"]["value"] == "TWO!"
    (folder / "m.safetensors").write_text("three")
    result = session.run(graph)
    assert "m" in result.executed and result.outputs["show"]["value"] == "three"
    assert "name" in result.cached          # the text node itself stays cached


def test_interrupt_between_nodes(session):
    """An interrupt requested while one node runs stops the run before the next node starts, naming the node
    that was running (it did not check; node_id was None)."""
    helpers.PROBES["stop"] = lambda value: session.interrupt()
    graph = chain(3)
    graph["nodes"]["p"] = {"type": "Probe", "inputs": {"value": link("c0", "y"), "name": "stop"}}
    graph["nodes"]["c1"]["inputs"]["x"] = link("p", "value")
    with pytest.raises(RunInterrupted) as info:
        session.run(graph)
    assert info.value.node_id == "p"
    assert helpers.CALLS == ["c0"]
    helpers.PROBES["stop"] = lambda value: None
    graph["nodes"]["p"]["inputs"]["name"] = "stop"
    result = session.run(graph)
    assert result.cached == ["p"] and result.outputs["show"]["value"] == 3  # p finished before the stop


def test_an_interrupt_during_the_last_node_ends_the_run_interrupted(session):
    """A one-node graph whose node ignores interrupts reported success for a run asked to stop (in a two-node
    graph the same request ended it interrupted): it ends interrupted either way, the node's outputs cached."""
    helpers.PROBES["stop"] = lambda value: session.interrupt()
    graph = {"format_version": 2, "nodes": {"i": {"type": "Int", "inputs": {"value": 5}},
                                            "p": {"type": "Probe", "inputs": {"value": link("i", "value"),
                                                                              "name": "stop"}}}}
    with pytest.raises(RunInterrupted) as info:
        session.run(graph, outputs=["p"])
    assert info.value.node_id == "p"
    helpers.PROBES["stop"] = lambda value: None
    assert session.run(graph, outputs=["p"]).cached == ["p"]        # the node had finished: kept


def test_a_fingerprint_that_raises_leaves_the_error_to_the_node(tmp_path):
    """A node's own fingerprint that raises (e.g. a NUL byte in a file name) does not crash the run: the node
    runs uncached and reports its input error itself."""
    from nodegraph import Input, Node, NodeInputError, NodeInputs, Output, hookimpl

    class FragileFingerprint(Node):
        """Fingerprints a file path built from its input, as a plugin loader might."""

        class Inputs(NodeInputs):
            name: str = Input("a")

        outputs = (Output("text", "STRING"),)

        @classmethod
        def fingerprint(cls, literals, resolve_file):
            return str((tmp_path / literals["name"]).stat().st_size)   # ValueError for an embedded NUL

        def run(self, name: str) -> dict:
            if "\0" in name:
                raise NodeInputError("name", "a file name cannot contain NUL")
            return {"text": name}

    class Plugin:
        @hookimpl
        def register_nodes(self):
            return [FragileFingerprint]

    session = Session(plugins=[("fragile", Plugin())])
    graph = {"format_version": 1, "nodes": {"f": {"type": "FragileFingerprint", "inputs": {"name": "x\0y"}},
                                            "show": {"type": "ShowValue", "inputs": {"value": link("f", "text")}}}}
    with pytest.raises(NodeExecutionError, match="cannot contain NUL"):
        session.run(graph)
    graph["nodes"]["f"]["inputs"]["name"] = "missing"                  # FileNotFoundError: runs, uncached
    assert session.run(graph).outputs["show"]["value"] == "missing"
    assert session.run(graph).executed == ["f", "show"]
    # sys.exit() / a KeyboardInterrupt raised by the fingerprint's own code (not on the main thread, or SystemExit
    # anywhere) ended `nodegraph run` with exit 0, no record and no word: it is a failing fingerprint like any other
    for escape in (SystemExit(0), KeyboardInterrupt()):
        def leave(cls, literals, resolve_file, escape=escape):
            raise escape
        FragileFingerprint.fingerprint = classmethod(leave)
        if isinstance(escape, KeyboardInterrupt):     # on the main thread it is Ctrl+C; a server runs nodes elsewhere
            outcome = []
            worker = threading.Thread(target=lambda: outcome.append(session.run(graph)))
            worker.start()
            worker.join()
            assert outcome and outcome[0].outputs["show"]["value"] == "missing"
        else:
            assert session.run(graph).outputs["show"]["value"] == "missing"


def test_a_fingerprint_may_return_what_comfyuis_is_changed_returns(tmp_path, caplog):
    """IS_CHANGED ported as `return os.path.getmtime(path)` returned a float; the key's `.encode()` raised
    AttributeError out of the run (no node named; the CLI exited 1, 'graph invalid'). Numbers, bytes and tuples
    are keys now; any other value makes the node run uncached, its class named in the log once."""
    import logging

    from nodegraph import Input, Node, NodeInputs, Output, hookimpl

    returned = {"value": 1.5}
    runs = []

    class StampedFile(Node):
        class Inputs(NodeInputs):
            name: str = Input("a")

        outputs = (Output("text", "STRING"),)

        @classmethod
        def fingerprint(cls, literals, resolve_file):
            return returned["value"]

        def run(self, name: str) -> dict:
            runs.append(name)
            return {"text": name}

    class Plugin:
        @hookimpl
        def register_nodes(self):
            return [StampedFile]

    session = Session(plugins=[("stamped", Plugin())])
    graph = {"format_version": 2, "nodes": {"f": {"type": "StampedFile", "inputs": {"name": "x"}},
                                            "show": {"type": "ShowValue", "inputs": {"value": link("f", "text")}}}}
    for value, reruns in ((1.5, True), (1.5, False), (2.5, True), (float("nan"), True), (float("nan"), True),
                          (("a", float("nan")), True),        # NaN is IS_CHANGED's "always changed"
                          (("a", 3), True), (("a", 3), False), (b"\x00", True), (7, True), (None, True), (None, False)):
        returned["value"] = value
        before = len(runs)
        assert session.run(graph).outputs["show"]["value"] == "x"
        assert (len(runs) > before) is reruns, (value, reruns)
    returned["value"] = object()
    with caplog.at_level(logging.WARNING, logger="nodegraph.executor"):
        session.run(graph)
        session.run(graph)
    assert session.run(graph).executed == ["f", "show"]              # never cached: an object's repr may change
    warned = [r.getMessage() for r in caplog.records if "StampedFile.fingerprint" in r.getMessage()]
    assert len(warned) == 1 and "returned a value of type object" in warned[0] and "run every time" in warned[0]
    # values a key cannot be made of (a hostile re-test: each raised out of the run, naming no node)
    import numpy as np

    class BadEq:
        def __eq__(self, other):
            raise RuntimeError("eq boom")

    for odd in (np.arange(3), 10 ** 5000, BadEq(), ("x", BadEq())):
        returned["value"] = odd
        assert session.run(graph).executed == ["f", "show"]


def test_library_code_inside_a_node_stops_at_its_interrupt_points():
    """Model code (a UNet's blocks) has no node context: it calls interrupt_point(), which the executor points
    at the running node's check, so an interrupt lands inside one long call (a 43 s sampler step)."""
    import types

    from nodegraph import Node, NodeInputs, Output, hookimpl
    from nodegraph.interrupts import interrupt_point

    class LongLibraryCall(Node):
        class Inputs(NodeInputs):
            pass

        outputs = (Output("value", "INT"),)

        def run(self) -> dict:
            for _ in range(1000):           # a library loop: no self.context in sight
                interrupt_point()
                time.sleep(0.01)
            return {"value": 1}

    module = types.ModuleType("long_library_call_plugin")
    module.register_nodes = hookimpl(lambda: [LongLibraryCall])
    session = Session(plugins=[module])
    threading.Timer(0.2, session.interrupt).start()
    started = time.monotonic()
    with pytest.raises(RunInterrupted) as info:
        session.run({"format_version": 2, "nodes": {
            "l": {"type": "LongLibraryCall", "inputs": {}},
            "s": {"type": "ShowValue", "inputs": {"value": {"node": "l", "output": "value"}}}}})
    assert info.value.node_id == "l" and time.monotonic() - started < 5
    interrupt_point()                       # after the run: nothing to check against


def test_runs_of_different_cache_scopes_share_only_model_loaders(tmp_path):
    """On a server with users, bob learnt that alice had run an exact prompt: his identical graph came back
    `cached` (and fast). With a cache scope per user, only nodes that declare `shared_cache` (model loaders)
    are shared; within one scope everything is cached as before."""
    import json
    from pathlib import Path

    graph = json.loads((Path(__file__).resolve().parents[2] / "graphs" / "txt2img.json").read_text())
    session = Session(autoload=False, output_dir=tmp_path)
    overrides = {"sampler.steps": 2}
    first = session.run(graph, overrides=overrides, cache_scope="alice", outputs=["prompt"])
    assert "checkpoint" in first.executed and "prompt" in first.executed
    again = session.run(graph, overrides=overrides, cache_scope="alice", outputs=["prompt"])
    assert again.executed == [] and "prompt" in again.cached
    other = session.run(graph, overrides=overrides, cache_scope="bob", outputs=["prompt"])
    assert "checkpoint" in other.cached and "prompt" in other.executed


def test_a_cached_save_whose_file_name_a_later_run_took_saves_again(tmp_path):
    """Run A saved out_00001.png; its file was deleted (a run deleted from the history) and run B's image took
    the freed name; running A again was served from the cache and reported B's file — a black square for a red
    circle. A cached output remembers its files' size and time: a file gone or replaced is a miss."""
    from PIL import Image

    session = Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in")

    def graph(caption: str) -> dict:
        return {"format_version": 1, "nodes": {
            "r": {"type": "RenderTinyWorld", "inputs": {"caption": caption, "size": 32}},
            "s": {"type": "SaveImage", "inputs": {"images": {"node": "r", "output": "image"},
                                                  "filename_prefix": "out"}}}}

    a, b = graph("a large red circle on a white background"), graph("a large blue square on a black background")
    first = session.run(a).outputs["s"]["files"][0]["path"]
    assert "s" in session.run(a).cached                                              # unchanged: from the cache
    os.unlink(first)
    assert session.run(b).outputs["s"]["files"][0]["path"] == first                  # B takes the freed name
    again = session.run(a)
    assert "s" in again.executed                                                    # not B's file
    path = again.outputs["s"]["files"][0]["path"]
    assert path != first and Image.open(path).getpixel((16, 16))[0] > 200          # a red circle, its own file
    os.unlink(path)
    assert "s" in session.run(a).executed                                           # a file merely gone: too


@pytest.mark.parametrize("answer, words", [
    (ValueError("lazy boom"), "lazy boom"), (None, "returned NoneType"), ("on_true", "returned str"),
    (["elsewhere"], "asked for 'elsewhere', which is not one of its lazy inputs")])
def test_a_failing_lazy_inputs_needed_fails_its_node(answer, words):
    """A plugin's lazy_inputs_needed that raised went out of the run as a bare ValueError (the CLI printed a
    traceback; a server's run failed naming no node), None crashed the same way, and an unknown name was dropped.
    Each is the node's failure, named, as its run's would be."""
    from nodegraph import Input, Node, NodeInputs, Output, hookimpl

    class Choose(Node):
        class Inputs(NodeInputs):
            on_true: int = Input(1, lazy=True)
            on_false: int = Input(2, lazy=True)

        outputs = (Output("value", "INT"),)

        def lazy_inputs_needed(self, available):
            if isinstance(answer, BaseException):
                raise answer
            return answer

        def run(self, on_true, on_false):
            return {"value": on_true}

    class Plugin:
        @hookimpl
        def register_nodes(self):
            return [Choose]

    session = Session(plugins=[("lazy_pack", Plugin())])
    graph = {"format_version": 2, "nodes": {"c": {"type": "Choose", "inputs": {}},
                                            "show": {"type": "ShowValue", "inputs": {"value": link("c", "value")}}}}
    with pytest.raises(NodeExecutionError) as failed:
        session.run(graph)
    assert failed.value.node_id == "c" and failed.value.plugin == "lazy_pack" and words in str(failed.value.exception)


def test_a_malformed_named_model_files_is_logged_and_loses_no_record(tmp_path, caplog):
    """named_model_files returning a 2-tuple crashed the CLI's record after the run, and a SaveImage beside the
    node failed in its place (the provenance it writes unpacked the entry). Malformed entries are left out, logged
    once naming the class; the run, its record and the files it saves go on."""
    import logging
    from types import SimpleNamespace

    from nodegraph import Input, Node, NodeInputs, Output, hookimpl
    from nodegraph.provenance import run_record

    class Wildcards(Node):
        class Inputs(NodeInputs):
            text: str = Input("a __colour__ circle")

        outputs = (Output("text", "STRING"),)

        @classmethod
        def named_model_files(cls, literals):
            return [("text", "wildcards")]           # the candidates forgotten

        def run(self, text):
            return {"text": text}

    class Plugin:
        @hookimpl
        def register_nodes(self):
            return [Wildcards]

    session = Session(plugins=[("wild", Plugin())], output_dir=tmp_path)
    graph = {"format_version": 2, "nodes": {"w": {"type": "Wildcards", "inputs": {}},
                                            "show": {"type": "ShowValue", "inputs": {"value": link("w", "text")}}}}
    with caplog.at_level(logging.WARNING):
        assert session.run(graph).outputs["show"]["value"] == "a __colour__ circle"
        record = run_record(SimpleNamespace(graph=session.load(graph), services=session.services))
    assert record["models"] == {}
    warned = [r.getMessage() for r in caplog.records if "Wildcards.named_model_files" in r.getMessage()]
    assert len(warned) == 1 and "not (input, folder, (names, ...))" in warned[0]
