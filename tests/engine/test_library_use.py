"""nodegraph as a library (a Python developer's pass): interrupting a run that is still starting, bare override
names, ComfyUI graphs from Python, `api.to_pil`, the public names and their error messages."""

from __future__ import annotations

import json
import threading
from typing import Any
from pathlib import Path

import pytest
import torch

import nodegraph
from nodegraph import GraphValidationError, RunInterrupted, RunResult, Session, api

ROOT = Path(__file__).resolve().parents[2]
ARITHMETIC = ROOT / "graphs" / "arithmetic.json"


@pytest.fixture(scope="module")
def session() -> Session:
    return Session(autoload=False)


def chain() -> dict:
    return {"format_version": 2, "nodes": {
        "a": {"type": "Int", "inputs": {"value": 2}},
        "b": {"type": "IntMath", "inputs": {"a": {"node": "a", "output": "value"}, "b": 3, "op": "add"}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "b", "output": "result"}}}}}


# --- interrupt() while run() is still starting ------------------------------------------------------------


def test_interrupt_without_id_while_the_run_is_validated_stops_it(monkeypatch):
    """A Cancel pressed right after a run was started from another thread arrives while the run is loaded and
    validated; run() then cleared the flag and the run went to the end (3 of 5 cancels lost)."""
    session = Session(autoload=False)
    real_load = session.load

    def load_then_cancelled(source):
        graph = real_load(source)
        session.interrupt()          # what another thread's Cancel does at this moment
        return graph

    monkeypatch.setattr(session, "load", load_then_cancelled)
    with pytest.raises(RunInterrupted):
        session.run(chain())
    monkeypatch.undo()
    assert session.run(chain()).outputs["show"]["value"] == 5      # the request was that run's only


def test_interrupt_with_no_run_in_flight_does_not_stop_a_later_run(session):
    session.interrupt()
    assert session.run(chain()).outputs["show"]["value"] == 5


def test_a_cancelled_starting_run_that_was_invalid_leaves_nothing_behind(monkeypatch):
    session = Session(autoload=False)
    real_load = session.load

    def load_then_cancelled(source):
        session.interrupt()
        return real_load(source)

    monkeypatch.setattr(session, "load", load_then_cancelled)
    with pytest.raises(GraphValidationError):
        session.run({"format_version": 2, "nodes": {"x": {"type": "NoSuchType"}}}, run_id="r1")
    monkeypatch.undo()
    assert not session._interrupt_requests and not session._starting
    assert session.run(chain(), run_id="r2").outputs["show"]["value"] == 5


def test_interrupt_without_id_leaves_a_run_waiting_behind_an_executing_one():
    """As after ComfyUI's Cancel, only the run executing stops; one queued behind it (another thread) runs."""
    session = Session(autoload=False)
    started, release = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def on_event(event):
        if event.type == "node_started" and not started.is_set():
            started.set()
            release.wait(10)

    def first():
        try:
            session.run(chain() | {"nodes": {**chain()["nodes"], "a": {"type": "Int", "inputs": {"value": 40}}}},
                        on_event=on_event)
            results["first"] = "finished"
        except RunInterrupted:
            results["first"] = "interrupted"

    def second():
        results["second"] = session.run(chain()).outputs["show"]["value"]

    one = threading.Thread(target=first)
    one.start()
    assert started.wait(10)
    two = threading.Thread(target=second)
    two.start()
    deadline = threading.Event()
    while not session._starting and not deadline.wait(0.01):    # the second run is in run(), waiting for the lock
        pass
    session.interrupt()
    release.set()
    one.join(20)
    two.join(20)
    assert results == {"first": "interrupted", "second": 5}


# --- overrides --------------------------------------------------------------------------------------------


def test_a_bare_input_name_overrides_the_one_node_that_has_it(session):
    result = session.run(ARITHMETIC, overrides={"template": "{a} wide"})
    assert result.outputs["show"]["value"] == "512 wide"


def test_an_ambiguous_or_unknown_bare_name_is_an_error_listed_with_the_others(session):
    errors = session.validate(ARITHMETIC, overrides={"value": 3, "nosuch": 1, "width.value": "x"})
    messages = [e.message for e in errors]
    assert any("override 'value'" in m and "several nodes" in m and "width" in m for m in messages), messages
    assert any("override 'nosuch'" in m and "no node of the graph has an input named 'nosuch'" in m
               for m in messages), messages
    assert any(e.code == "type_mismatch" and e.node_id == "width" for e in errors), messages
    with pytest.raises(GraphValidationError, match="several nodes have an input named 'value'"):
        session.run(ARITHMETIC, overrides={"value": 3})


def test_a_bare_name_and_its_full_name_together_are_refused(session):
    with pytest.raises(GraphValidationError, match=r"set one input \(message.template\) twice"):
        session.run(ARITHMETIC, overrides={"template": "x", "message.template": "y"})


def test_the_module_docstring_example_runs(session, monkeypatch):
    monkeypatch.chdir(ROOT)
    lines = [line.strip() for line in nodegraph.session.__doc__.splitlines() if line.startswith("    ")]
    namespace: dict = {}
    exec("\n".join(lines[:3]), namespace)                   # import, Session(), run(...)
    assert namespace["result"].outputs["show"]["value"].startswith("1024x768")


# --- ComfyUI graphs from Python -----------------------------------------------------------------------------

PROMPT = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_world_v6f.safetensors"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
    "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 2, "cfg": 5.0, "sampler_name": "euler",
                                               "scheduler": "normal", "denoise": 1.0, "model": ["4", 0],
                                               "positive": ["6", 0], "negative": ["7", 0],
                                               "latent_image": ["5", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}},
}


def _comfyui_png(prompt: dict) -> bytes:
    import io

    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(prompt))
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


@pytest.mark.parametrize("form", ["dict", "text", "file", "bracket file name", "png bytes", "png bytearray"])
def test_import_comfyui_takes_a_prompt_as_dict_text_or_file(session, tmp_path, form, monkeypatch):
    """A file name starting with "[" was parsed as JSON text ("[v2] workflow.json"), and a PNG's bytes as UTF-8."""
    monkeypatch.chdir(tmp_path)
    source = {"dict": PROMPT, "text": json.dumps(PROMPT), "file": tmp_path / "prompt.json",
              "bracket file name": "[v2] workflow.json", "png bytes": _comfyui_png(PROMPT),
              "png bytearray": bytearray(_comfyui_png(PROMPT))}[form]
    if form in ("file", "bracket file name"):
        Path(source).write_text(json.dumps(PROMPT))
    graph = session.import_comfyui(source)
    assert {node.type for node in graph.nodes.values()} >= {"LoadCheckpoint", "EncodeText", "KSampler", "VAEDecode"}
    assert graph.nodes["8"].inputs["latent"].node == "3"
    assert session.validate(graph) == []


def test_import_comfyui_refuses_what_is_not_a_comfyui_graph(session, tmp_path):
    (tmp_path / "notes.json").write_text('{"hello": 1}')
    import os

    os.mkfifo(tmp_path / "fifo.json")                 # would block; /dev/zero would never end (a hostile re-test)
    for source in (tmp_path / "notes.json", tmp_path / "missing.json", {"hello": 1}, "{not json", "[]",
                   tmp_path / "fifo.json", "/dev/zero", "x" * 5000,
                   "{" + '"a":[' * 100_000, b"{" + b" " * (64 * 1024 * 1024)):
        with pytest.raises(GraphValidationError) as caught:
            session.import_comfyui(source)
        assert caught.value.errors[0].code == "invalid_format"


def test_running_a_comfyui_prompt_names_the_python_function(session):
    with pytest.raises(GraphValidationError, match="Session.import_comfyui"):
        session.run(PROMPT)


# --- images, names, messages ----------------------------------------------------------------------------


def test_to_pil_turns_an_image_batch_into_pil_images():
    image = torch.zeros(2, 4, 6, 3)
    image[1, 0, 0] = torch.tensor([1.0, 0.5, 2.0])
    pictures = api.to_pil(image)
    assert [p.size for p in pictures] == [(6, 4), (6, 4)] and pictures[0].mode == "RGB"
    assert pictures[1].getpixel((0, 0)) == (255, 128, 255)          # rounded, clipped
    assert api.to_pil(image[1])[0].getpixel((0, 0)) == (255, 128, 255)     # one (H, W, 3) image
    with pytest.raises(api.ApiArgumentError, match="to_pil"):
        api.to_pil(torch.zeros(4, 6))
    assert api.to_pil(image.double().requires_grad_())[1].getpixel((0, 0)) == (255, 128, 255)
    # each of these made a wrong picture without a word (a uint8 200 came out white; NaN black)
    for bad, words in ((torch.full((1, 2, 2, 3), 200, dtype=torch.uint8), "dtype uint8"),
                       (torch.full((1, 2, 2, 3), float("nan")), "NaN or infinite"),
                       (torch.zeros(1, 2, 2, 3, dtype=torch.complex64), "dtype complex64"),
                       (torch.full((1, 2, 2, 3), 200.0), "divide 0-255"),
                       (torch.zeros(1, 0, 4, 3), "empty")):
        with pytest.raises(api.ApiArgumentError, match=words):
            api.to_pil(bad)


def test_public_names_and_type_marker():
    assert nodegraph.RunResult is RunResult and "RunResult" in nodegraph.__all__
    assert (Path(nodegraph.__file__).parent / "py.typed").is_file()
    assert 'nodegraph = ["py.typed"]' in (ROOT / "pyproject.toml").read_text()


@pytest.mark.parametrize("value, fix", [((1, 2), "write a list"), (torch.tensor(8), ".item()")])
def test_python_values_that_are_not_json_say_what_to_write(session, value, fix):
    with pytest.raises(GraphValidationError, match=fix):
        session.run({"format_version": 2, "nodes": {"a": {"type": "Int", "inputs": {"value": value}}}})


def test_a_bare_name_sets_the_primitive_box_that_feeds_the_input(session):
    """An imported ComfyUI graph's seed comes from a PrimitiveNode (an Int box here): `--set seed=5` / `{"seed": 5}`
    was an override_replaces_link error naming the box; a bare name now sets the box's value, as a sweep does."""
    from nodegraph.distributed.sweep import parse_sweep

    graph = {"format_version": 2, "nodes": {
        "10": {"type": "Int", "inputs": {"value": 3}},
        "m": {"type": "IntMath", "inputs": {"a": {"node": "10", "output": "value"}, "b": 2, "op": "add"}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "m", "output": "result"}}}}}
    assert session.run(graph, overrides={"a": 7}).outputs["show"]["value"] == 9
    assert parse_sweep(["a=1,2"], graph) == [{"10.value": 1}, {"10.value": 2}]
    assert [e.code for e in session.validate(graph, overrides={"m.a": 7})] == ["override_replaces_link"]  # named: as written
    graph["nodes"]["m2"] = {"type": "IntMath", "inputs": {"a": {"node": "10", "output": "value"}, "b": 5, "op": "add"}}
    assert parse_sweep(["a=4"], graph) == [{"10.value": 4}]       # one box feeding both (ComfyUI's shared seed)


def test_a_ui_workflow_names_a_plugins_widget_values_by_its_declared_inputs():
    """A ported pack's ComfyUI UI workflows failed: "ImageResize has no input 'widgets_values'" — only the
    built-in equivalents had widget names. A type this session has names them by its declared inputs that take
    a value (a seed's control-after-generate skipped), as ComfyUI orders its widgets."""
    from nodegraph import Input, Node, NodeInputs, Output, hookimpl

    class ImageResize(Node):
        class Inputs(NodeInputs):
            image: Any = Input(port="IMAGE")
            width: int = Input(512, ge=8, le=4096)
            height: int = Input(512, ge=8, le=4096)
            seed: int = Input(0, ge=0)
            method: str = Input("nearest")

        outputs = (Output("image", "IMAGE"),)

        def run(self, image, width, height, seed, method):
            return {"image": image}

    class Plugin:
        @hookimpl
        def register_nodes(self):
            return [ImageResize]

    session = Session(plugins=[("imgutils", Plugin())], autoload=False)
    assert session.widget_names("ImageResize") == ("width", "height", "seed", None, "method")
    workflow = {"nodes": [{"id": 1, "type": "ImageResize", "widgets_values": [64, 48, 7, "randomize", "bilinear"],
                           "inputs": [{"name": "image", "type": "IMAGE", "link": None}]}], "links": []}
    graph = session.import_comfyui(workflow)
    assert graph.nodes["1"].inputs == {"width": 64, "height": 48, "seed": 7, "method": "bilinear"}


def test_a_plugin_maps_comfyui_classes_to_its_nodes_but_cannot_take_over_the_built_in_ones():
    """ComfyUI's core LoadAudio imported as a node "with no input 'audio'": only the built-in table mapped classes.
    `register_comfyui_classes` lets a plugin say how a class imports (input names, fixed values, widget order);
    a class the built-in table translates is refused (a silent takeover would change every imported workflow): that
    entry is left out with a warning, the plugin loads."""
    from nodegraph import Input, Node, NodeInputs, Output, api, hookimpl

    class ReadSound(Node):
        class Inputs(NodeInputs):
            file: str = Input("a.wav")
            gain: float = Input(1.0)

        outputs = (Output("text", "STRING"),)

        def run(self, file, gain):
            return {"text": f"{file}@{gain}"}

    class Plugin:
        @hookimpl
        def register_nodes(self):
            return [ReadSound]

        @hookimpl
        def register_comfyui_classes(self):
            return {"LoadAudio": api.ComfyUIClass("ReadSound", ("text",), inputs={"audio": "file"},
                                                  fixed={"gain": 0.5}, widgets=("file",))}

    class Takeover:
        @hookimpl
        def register_comfyui_classes(self):
            return {"KSampler": api.ComfyUIClass("ReadSound", ("text",))}

    session = Session(plugins=[("sound", Plugin()), ("takeover", Takeover())], autoload=False)
    assert session.plugin_report.failed == [] and "KSampler" not in session.comfyui_classes()
    (refused,) = [w for w in session.plugin_warnings() if w.get("refused")]
    assert refused["plugin"] == "takeover" and "cannot take it over" in refused["message"]
    prompt = {"1": {"class_type": "LoadAudio", "inputs": {"audio": "tone.wav"}},
              "2": {"class_type": "ShowValue", "inputs": {"value": ["1", 0]}}}
    graph = session.import_comfyui(prompt)
    assert graph.nodes["1"].type == "ReadSound" and graph.nodes["1"].inputs == {"file": "tone.wav", "gain": 0.5}
    workflow = {"nodes": [{"id": 1, "type": "LoadAudio", "widgets_values": ["song.wav", None]}], "links": []}
    assert session.import_comfyui(workflow).nodes["1"].inputs == {"file": "song.wav", "gain": 0.5}

    class BadWidgets:           # a string where a tuple belongs: a bare TypeError at import before (a re-test)
        @hookimpl
        def register_comfyui_classes(self):
            return {"ReadIt": api.ComfyUIClass("ReadSound", ("text",), widgets="file")}

    class NoWidgets:            # no widget order given: the node's declared inputs name them
        @hookimpl
        def register_comfyui_classes(self):
            return {"ReadOther": api.ComfyUIClass("ReadSound", ("text",))}

    class Typo:                 # a node type and an input nobody has: said at load, not at validation
        @hookimpl
        def register_comfyui_classes(self):
            return {"ReadTypo": api.ComfyUIClass("ReadSond", ("text",)),
                    "ReadWrong": api.ComfyUIClass("ReadSound", ("txt",), inputs={"audio": "fil"})}

    session = Session(plugins=[("sound", Plugin()), ("bad", BadWidgets()), ("plain", NoWidgets()), ("typo", Typo())],
                      autoload=False)
    assert session.plugin_report.failed == [] and "ReadIt" not in session.comfyui_classes()
    told = {w["type"]: w["message"] for w in session.plugin_warnings() if w["kind"] == "comfyui_class"}
    assert "widgets 'file', not a tuple of input names" in told["ReadIt"]
    assert "'ReadSond', which no loaded plugin has" in told["ReadTypo"]
    assert "no input(s) 'fil' and no output(s) 'txt'" in told["ReadWrong"]
    workflow = {"nodes": [{"id": 1, "type": "ReadOther", "widgets_values": ["x.wav", 2.0]}], "links": []}
    assert session.import_comfyui(workflow).nodes["1"].inputs == {"file": "x.wav", "gain": 2.0}


def _echo_node(type_name: str) -> type:
    """A node class of type `type_name` taking and giving one INT (for the ComfyUI class tests below)."""
    from nodegraph import Input, Node, NodeInputs, Output

    class Echo(Node):
        class Inputs(NodeInputs):
            value: int = Input(0)

        outputs = (Output("value", "INT"),)

        def run(self, value):
            return {"value": value + 1000}

    Echo.type = type_name
    return Echo


def _comfyui_plugin(nodes: list, classes: dict) -> Any:
    """A plugin object registering these node classes and this `register_comfyui_classes` table."""
    from nodegraph import hookimpl

    class Plugin:
        @hookimpl
        def register_nodes(self):
            return nodes

        @hookimpl
        def register_comfyui_classes(self):
            return classes

    return Plugin()


def test_a_plugin_cannot_take_over_how_a_built_in_node_type_imports():
    """A plugin mapping ComfyUI classes named as built-in node types ("Int", "ShowValue", core ComfyUI's "CFGGuider",
    the qualified "primitives.Int") made prompts naming them import as its node, silently (a hostile re-test): each
    such entry is left out with a comfyui_class warning naming it, and the prompt imports as the built-ins."""
    marker = api.ComfyUIClass("evil.Marker", ("value",))
    names = ("Int", "ShowValue", "CFGGuider", "primitives.Int", "Reroute", "EvilMarker")
    session = Session(plugins=[("evil", _comfyui_plugin([_echo_node("Marker")], dict.fromkeys(names, marker)))],
                      autoload=False)
    assert session.plugin_report.failed == [] and list(session.comfyui_classes()) == ["EvilMarker"]
    refused = {w["type"]: w for w in session.plugin_warnings() if w["kind"] == "comfyui_class" and w.get("refused")}
    assert sorted(refused) == ["CFGGuider", "Int", "Reroute", "ShowValue", "primitives.Int"]
    assert refused["Int"]["plugin"] == "evil" and refused["Int"]["level"] == "warning"
    assert ("built-in node type 'primitives.Int': a prompt naming 'Int' imports as that node"
            in refused["Int"]["message"])
    assert "'CFGGuider'" in refused["CFGGuider"]["message"] and "leave the entry out" in refused["CFGGuider"]["fix"]
    prompt = {"1": {"class_type": "Int", "inputs": {"value": 4}},
              "2": {"class_type": "ShowValue", "inputs": {"value": ["1", 0]}}}
    graph = session.import_comfyui(prompt)
    assert {key: node.type for key, node in graph.nodes.items()} == {"1": "Int", "2": "ShowValue"}
    assert session.run(graph).outputs["2"]["value"] == 4
    assert session.import_comfyui({"1": {"class_type": "EvilMarker", "inputs": {}}}).nodes["1"].type == "evil.Marker"


def test_one_bad_comfyui_class_entry_is_left_out_and_the_plugin_still_loads():
    """One bad entry (a name with a zero-width space, a value that is not an api.ComfyUIClass, a name that is no
    text) made the whole plugin fail to load, its nodes included: that entry alone is now left out, with a warning
    naming it and saying how to fix it. A bad entry of another hook still fails the plugin, as before."""
    good = api.ComfyUIClass("mixed.Echo", ("value",))
    classes = {"KSampler\u200b": good, "EchoDict": {"type": "mixed.Echo"}, 42: good, "EchoGood": good}
    session = Session(plugins=[("mixed", _comfyui_plugin([_echo_node("Echo")], classes))], autoload=False)
    assert session.plugin_report.failed == [] and session.registry.resolve("Echo") == "mixed.Echo"
    assert list(session.comfyui_classes()) == ["EchoGood"]
    refused = {w["type"]: w for w in session.plugin_warnings() if w["kind"] == "comfyui_class" and w.get("refused")}
    assert sorted(refused) == ["42", "EchoDict", "KSampler\u200b"]
    assert "'KSampler\\u200b' is not a ComfyUI class name" in refused["KSampler\u200b"]["message"]
    assert "invisible or control characters" in refused["KSampler\u200b"]["fix"]
    assert "found dict" in refused["EchoDict"]["message"] and "api.ComfyUIClass(type=" in refused["EchoDict"]["fix"]
    assert "the entry was left out (the plugin's nodes and other entries loaded)" in refused["42"]["message"]

    from nodegraph import hookimpl

    class BadSampler:
        @hookimpl
        def register_samplers(self):
            return {"mine": 42}

    (failed,) = Session(plugins=[("badsampler", BadSampler())], autoload=False).plugin_report.failed
    assert failed.name == "badsampler" and "must be a function" in failed.error


def test_two_plugins_mapping_one_comfyui_class_the_first_loaded_keeps_it_and_the_clash_is_shown():
    """Two plugins both mapping "LoadAudio": the first loaded keeps it (plugins given in code in their order,
    installed ones by name), the conflict is recorded and is a `clash` warning naming both; denying the first gives
    the class to the other. `--prefer-plugin` chooses node types only: here it is a `preference` warning saying it
    has no effect (docs/plugins.md, register_comfyui_classes)."""
    alpha = ("alpha", _comfyui_plugin([_echo_node("EchoA")],
                                      {"LoadAudio": api.ComfyUIClass("alpha.EchoA", ("value",))}))
    beta = ("beta", _comfyui_plugin([_echo_node("EchoB")], {"LoadAudio": api.ComfyUIClass("beta.EchoB", ("value",))}))
    session = Session(plugins=[alpha, beta], autoload=False)
    assert session.comfyui_classes()["LoadAudio"].type == "alpha.EchoA"
    assert [(c.kind, c.name, c.winner, c.loser) for c in session.registry.conflicts] == [
        ("comfyui_classes", "LoadAudio", "alpha", "beta")]
    (clash,) = [w for w in session.plugin_warnings() if w["kind"] == "clash"]
    assert clash["extension"] == "comfyui_classes" and clash["plugins"] == ["alpha", "beta"]
    assert "using 'alpha'" in clash["message"] and "--deny-plugin beta" in clash["fix"]
    assert Session(plugins=[beta, alpha], autoload=False).comfyui_classes()["LoadAudio"].type == "beta.EchoB"
    denied = Session(plugins=[alpha, beta], autoload=False, deny=["alpha"])
    assert denied.comfyui_classes()["LoadAudio"].type == "beta.EchoB" and denied.registry.conflicts == []
    preferred = Session(plugins=[alpha, beta], autoload=False, prefer={"LoadAudio": "beta"})
    assert preferred.comfyui_classes()["LoadAudio"].type == "alpha.EchoA"
    assert any(w["kind"] == "preference" and "LoadAudio=beta has no effect" in w["message"]
               for w in preferred.plugin_warnings())
