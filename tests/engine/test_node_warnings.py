"""NodeContext.warn (events, RunResult, the CLI); a node's sys.exit and outputs off their port's layout are its failures."""

from __future__ import annotations

import json
import sys
import types
from typing import Any

import pytest

from nodegraph import Input, Node, NodeInputs, Output, Session, hookimpl
from nodegraph.cli import main


class Grumble(Node):
    output_node = True

    class Inputs(NodeInputs):
        times: int = Input(1, ge=0, le=100)

    outputs = (Output("value", "INT"),)

    def run(self, times: int) -> dict:
        for index in range(times):
            self.context.warn(f"grumble {index} " + "!" * (2000 if index == 0 else 1))
        return {"value": times}


@pytest.fixture
def plugin():
    module = types.ModuleType("warning_test_plugin")
    module.register_nodes = hookimpl(lambda: [Grumble])
    sys.modules[module.__name__] = module
    return module


def _graph(times: int) -> dict:
    return {"format_version": 2, "nodes": {"g": {"type": "Grumble", "inputs": {"times": times}}}}


def test_warnings_become_events_and_run_result_entries_capped_per_node(plugin):
    session = Session(plugins=[plugin])
    events = []
    result = session.run(_graph(30), on_event=events.append)
    warnings = [e for e in events if e.type == "node_warning"]
    assert len(warnings) == len(result.warnings) == 20
    assert result.warnings[0]["node_id"] == "g" and result.warnings[0]["node_type"] == "Grumble"
    assert len(result.warnings[0]["message"]) == 1000 and result.warnings[1]["message"] == "grumble 1 !"
    assert warnings[0].to_dict()["type"] == "node_warning"
    again = session.run(_graph(30), on_event=events.append)   # from the cache: the same result, the same warnings
    assert [w["message"] for w in again.warnings] == [w["message"] for w in result.warnings]
    assert all(w["cached"] for w in again.warnings) and events[-1].type == "run_finished"
    assert [e for e in events if e.type == "node_warning"][-1].to_dict()["cached"] is True


def test_a_cached_result_repeats_the_warnings_of_the_nodes_it_came_from(plugin):
    """Re-running an unchanged graph served only the output node from the cache, so the warnings of the nodes
    before it (a prompt's unknown words) were gone; the cached result now carries them, each given once."""
    graph = {"format_version": 2, "nodes": {
        "g": {"type": "Grumble", "inputs": {"times": 2}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "g", "output": "value"}}},
        "show2": {"type": "ShowValue", "inputs": {"value": {"node": "g", "output": "value"}}, "title": "again"}}}
    session = Session(plugins=[plugin])
    first = session.run(graph)
    assert [w["node_id"] for w in first.warnings] == ["g", "g"]
    second = session.run(graph)
    assert second.executed == [] and set(second.cached) == {"g", "show", "show2"}
    assert [(w["node_id"], w["cached"]) for w in second.warnings] == [("g", True), ("g", True)]
    third = session.run({**graph, "nodes": {**graph["nodes"], "g": {"type": "Grumble", "inputs": {"times": 0}}}})
    assert third.warnings == []                               # a new result: no warnings of the old one


def test_the_cli_prints_warnings_and_writes_them_to_the_summary(plugin, tmp_path, monkeypatch, capsys):
    import nodegraph.session as session_module

    graph = tmp_path / "g.json"
    graph.write_text(json.dumps(_graph(2)))
    real = session_module.load_plugins
    monkeypatch.setattr(session_module, "load_plugins",
                        lambda **kwargs: real(**{**kwargs, "plugins": [*kwargs.get("plugins", ()), plugin]}))
    assert main(["run", str(graph), "--output-dir", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "warning: node 'g' (Grumble): grumble 1 !" in err
    summary = json.loads((tmp_path / "out" / "g.outputs.json").read_text())
    assert [w["message"][:9] for w in summary["warnings"]] == ["grumble 0", "grumble 1"]


class Exits(Node):
    output_node = True
    outputs = ()

    def run(self) -> dict:
        raise SystemExit(3)


def test_sys_exit_inside_run_is_that_nodes_failure():
    """A plugin node calling sys.exit ended the CLI with exit 3 and no word of which node; it is a node failure."""
    from nodegraph import NodeExecutionError

    module = types.ModuleType("exit_test_plugin")
    module.register_nodes = hookimpl(lambda: [Exits])
    sys.modules[module.__name__] = module
    with pytest.raises(NodeExecutionError) as info:
        Session(plugins=[module]).run({"format_version": 2, "nodes": {"x": {"type": "Exits", "inputs": {}}}})
    assert info.value.node_id == "x" and info.value.exception_type == "SystemExit"


class WrongLayouts(Node):
    class Inputs(NodeInputs):
        mistake: str = Input("float")

    outputs = (Output("number", "FLOAT"), Output("image", "IMAGE"), Output("audio", "AUDIO"), Output("mesh", "MESH"),
               Output("points", "POINT_CLOUD"))

    def run(self, mistake: str) -> dict:
        import torch

        fine = {"number": 2, "image": torch.zeros(1, 8, 8, 3), "audio": None, "mesh": None, "points": None}
        wrong = {       # the core media types are checked too (a plugin's AUDIO output was text)
            "float": {"number": "not a float"}, "bool": {"number": True},
            "channels_first": {"image": torch.zeros(1, 3, 8, 8)},
            "audio_text": {"audio": "not audio"},
            "audio_2d": {"audio": {"waveform": torch.zeros(2, 100), "sample_rate": 16000}},
            "mesh": {"mesh": [{"vertices": torch.zeros(4, 3), "faces": torch.zeros(2, 4)}]},
            "points": {"points": torch.zeros(1, 10, 2)},
            # dtype and values (a plugin author's finding: these reached ImageScale, which clamped 0-255 to white)
            "uint8": {"image": torch.zeros(1, 8, 8, 3, dtype=torch.uint8)},
            "float64": {"image": torch.zeros(1, 8, 8, 3, dtype=torch.float64)},
            "pixels_255": {"image": torch.full((1, 8, 8, 3), 200.0)},
            "nan": {"image": torch.full((1, 8, 8, 3), float("nan"))},
            "grad": {"image": torch.zeros(1, 8, 8, 3, requires_grad=True) * 1},
            # a plugin author's pass: these failed the threed / audio plugins' save nodes, or wrote a clipped WAV
            "mesh_float_faces": {"mesh": {"vertices": torch.zeros(4, 3), "faces": torch.zeros(2, 3)}},
            "mesh_index": {"mesh": {"vertices": torch.zeros(4, 3), "faces": torch.tensor([[0, 1, 99]])}},
            "mesh_numpy": {"mesh": {"vertices": torch.zeros(4, 3).numpy(), "faces": torch.zeros(2, 3).numpy()}},
            "points_channels_first": {"points": torch.zeros(1, 3, 100)},
            "audio_pcm": {"audio": {"waveform": torch.full((1, 1, 100), 30000.0), "sample_rate": 16000}},
            "audio_int": {"audio": {"waveform": torch.zeros(1, 1, 100, dtype=torch.int16), "sample_rate": 16000}},
            "fine_media": {"audio": {"waveform": torch.full((1, 2, 100), 1.5), "sample_rate": 16000},
                           "mesh": {"vertices": torch.zeros(4, 3), "faces": torch.tensor([[0, 1, 3]])},
                           "points": torch.zeros(1, 5, 6)},
        }
        return {**fine, **wrong.get(mistake, {})}        # "fine": an int is a number


@pytest.mark.parametrize(("mistake", "output", "words"), [
    ("float", "number", "expected a number, found str"), ("bool", "number", "found bool"),
    ("channels_first", "image", "channels-last, found shape (1, 3, 8, 8)"),
    ("audio_text", "audio", "expected {'waveform'"), ("audio_2d", "audio", "(B, channels, samples), found shape (2, 100)"),
    ("mesh", "mesh", "faces (F, 3), found (4, 3) and (2, 4)"), ("points", "points", "xyz first (C >= 3)"),
    ("uint8", "image", "dtype uint8 (tensor.float() / 255"), ("float64", "image", "dtype float64"),
    ("pixels_255", "image", "divide 0-255 pixel values by 255"), ("nan", "image", "NaN"),
    ("grad", "image", "detach()"),
    ("mesh_float_faces", "mesh", "integer faces (vertex indices), found float32 and float32"),
    ("mesh_index", "mesh", "faces index vertices 0 … 99, but the mesh has 4 vertices"),
    ("mesh_numpy", "mesh", "vertices as ndarray, faces as ndarray (convert with torch.as_tensor)"),
    ("points_channels_first", "points", "3 points of 100 channels — a channels-first (B, C, N)"),
    ("audio_pcm", "audio", "a peak of 30000 (int16 PCM scale: divide by 32768)"),
    ("audio_int", "audio", "found dtype int16")])
def test_an_output_that_breaks_its_ports_layout_fails_the_node_that_made_it(mistake, output, words):
    """A FLOAT output holding text failed in an innocent node downstream (which was told to report it to its own
    plugin's authors); now the node that made it fails, naming the output."""
    from nodegraph import NodeExecutionError
    from nodegraph.errors import NodeOutputError

    module = types.ModuleType("layout_test_plugin")
    module.register_nodes = hookimpl(lambda: [WrongLayouts])
    sys.modules[module.__name__] = module
    session = Session(plugins=[module])
    graph = {"format_version": 2, "nodes": {"w": {"type": "WrongLayouts", "inputs": {"mistake": mistake}},
                                            "show": {"type": "ShowValue", "inputs": {"value": {"node": "w",
                                                                                                "output": "number"}}}}}
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph)
    assert info.value.node_id == "w" and isinstance(info.value.exception, NodeOutputError)
    assert info.value.exception.output == output and words in str(info.value.exception)
    for fine in ("fine", "fine_media"):
        graph["nodes"]["w"]["inputs"]["mistake"] = fine
        assert session.run(graph).outputs["show"]["value"] == 2


class Reporter(Node):
    """Reports progress with what its `how` input names (a plugin author's mistakes among them)."""

    output_node = True

    class Inputs(NodeInputs):
        how: str = Input("numpy")

    outputs = (Output("value", "INT"),)

    def run(self, how: str) -> dict:
        import numpy as np
        import torch

        calls = {
            "numpy": lambda: self.context.progress(np.int64(1), np.int32(2), preview=torch.zeros(2, 4, 4, 3),
                                                   info={"loss": np.float32(0.5), "diverged": float("nan")}),
            "fraction": lambda: self.context.progress(0.5, 1),
            "bad_preview": lambda: self.context.progress(1, 2, preview=torch.zeros(4, 4)),
            "bad_info": lambda: self.context.progress(1, 2, info={"weights": np.zeros(10)}),
        }
        calls[how]()
        return {"value": 1}


def test_progress_reports_are_held_to_the_contract():
    """numpy/torch scalars are taken and NaN becomes null (every client can decode the event); a preview that
    is not an image, a fraction of a step or info that is not JSON fail the node naming the fix."""
    from nodegraph import NodeExecutionError

    module = types.ModuleType("progress_test_plugin")
    module.register_nodes = hookimpl(lambda: [Reporter])
    session = Session(plugins=[module])
    events = []
    session.run({"format_version": 2, "nodes": {"r": {"type": "Reporter", "inputs": {"how": "numpy"}}}},
                on_event=events.append)
    (progress,) = [e for e in events if e.type == "node_progress"]
    assert (progress.value, progress.total, progress.info) == (1, 2, {"loss": 0.5, "diverged": None})
    assert type(progress.value) is int and json.dumps(progress.to_dict())
    for how, expected in (("fraction", "whole number"), ("bad_preview", "C of 1, 3 or 4"),
                          ("bad_info", "float(x), x.tolist()")):
        with pytest.raises(NodeExecutionError, match=expected.replace("(", r"\(").replace(")", r"\)")):
            session.run({"format_version": 2, "nodes": {"r": {"type": "Reporter", "inputs": {"how": how}}}})


class ForgetsReturn(Node):
    outputs = (Output("number", "FLOAT"),)

    def run(self) -> dict:
        self.context  # computes, then forgets `return`


def test_a_node_returning_none_for_its_output_is_that_nodes_failure():
    """`return` forgotten: None went downstream and the node that read it was blamed; now the node itself fails,
    naming the missing return and its outputs."""
    from nodegraph import NodeExecutionError

    module = types.ModuleType("forgets_return_plugin")
    module.register_nodes = hookimpl(lambda: [ForgetsReturn])
    sys.modules[module.__name__] = module
    graph = {"format_version": 2, "nodes": {"x": {"type": "ForgetsReturn", "inputs": {}},
                                            "show": {"type": "ShowValue", "inputs": {"value": {"node": "x",
                                                                                               "output": "number"}}}}}
    with pytest.raises(NodeExecutionError) as info:
        Session(plugins=[module]).run(graph)
    assert info.value.node_id == "x" and "returned None (a missing `return`?)" in str(info.value.exception)
    assert "['number']" in str(info.value.exception)


class ComfyStyleSave(Node):
    output_node = True

    def run(self) -> dict:
        return {"ui": {"images": [{"filename": "x_00001_.png", "subfolder": "", "type": "output"}]}}


def test_an_output_node_returning_comfyuis_ui_form_is_told_how_to_show_files():
    """A ported ComfyUI save node returned {"ui": {"images": [...]}}: the run succeeded and showed nothing. Now the
    node fails naming `api.save_image` and the porting guide."""
    from nodegraph import NodeExecutionError

    module = types.ModuleType("comfy_style_save_plugin")
    module.register_nodes = hookimpl(lambda: [ComfyStyleSave])
    sys.modules[module.__name__] = module
    with pytest.raises(NodeExecutionError) as info:
        Session(plugins=[module]).run({"format_version": 2, "nodes": {"s": {"type": "ComfyStyleSave", "inputs": {}}}})
    assert info.value.node_id == "s" and "'ui'" in str(info.value.exception)
    assert "api.save_image" in str(info.value.exception) and "Porting a ComfyUI node" in str(info.value.exception)


class ReturnsWhatItWasTold(Node):
    """One IMAGE output; returns whatever the test puts in `returned`."""
    deterministic = False
    returned: Any = None
    outputs = (Output("image", "IMAGE"),)

    def run(self) -> Any:
        return self.returned


@pytest.mark.parametrize("returned, words", [
    # ComfyUI's combined form: the 'ui' hint was lost behind "no value for output(s) ['image']"
    ({"ui": {"images": []}, "result": ("an image",)}, ["'ui' entry", "under 'result'", "{'image': ...}"]),
    # a misspelt output name: only the missing one was named, not the key that was returned instead
    ({"images": "an image"}, ["no value for output(s) ['image']", "returned ['images'] instead",
                              "'images' for 'image'"]),
    ({"picture": "an image"}, ["no value for output(s) ['image']", "returned ['picture'] instead"]),
])
def test_a_wrong_return_names_what_was_returned(returned, words):
    """A plugin author's finding: which mistake was said depended on the order of the checks, and the helpful
    part (ComfyUI's `ui`/`result`, the stray key) was lost."""
    from nodegraph import NodeExecutionError

    module = types.ModuleType("returns_what_it_was_told_plugin")
    module.register_nodes = hookimpl(lambda: [ReturnsWhatItWasTold])
    sys.modules[module.__name__] = module
    ReturnsWhatItWasTold.returned = returned
    try:
        with pytest.raises(NodeExecutionError) as info:
            Session(plugins=[module]).run({"format_version": 2, "nodes": {
                "r": {"type": "ReturnsWhatItWasTold", "inputs": {}},
                "show": {"type": "ShowValue", "inputs": {"value": {"node": "r", "output": "image"}}}}})
    finally:
        ReturnsWhatItWasTold.returned = None
    message = str(info.value.exception)
    assert all(word in message for word in words), message
    assert "'picture' for" not in message


class MisspeltFiles(Node):
    output_node = True
    deterministic = False          # runs every time: the test changes what it returns
    returned: dict | None = None   # what to return instead (set by the test)

    def run(self) -> dict:
        from nodegraph import api

        if self.returned is not None:
            return self.returned
        return {"file": api.save_files(self.context, ["hello"], kind="text", prefix="typo", suffix=".txt"),
                "model_files": [{"path": "/x/lora.safetensors", "kind": "lora"}]}     # not media: allowed


def test_file_results_under_another_key_than_files_fail_the_node(tmp_path):
    """`return {"file": api.save_files(...)}` wrote the file and showed nothing (the run succeeded)."""
    from nodegraph import NodeExecutionError

    module = types.ModuleType("misspelt_files_plugin")
    module.register_nodes = hookimpl(lambda: [MisspeltFiles])
    sys.modules[module.__name__] = module
    session = Session(plugins=[module], output_dir=tmp_path)
    with pytest.raises(NodeExecutionError) as info:
        session.run({"format_version": 2, "nodes": {"s": {"type": "MisspeltFiles", "inputs": {}}}})
    assert "under ['file']" in str(info.value.exception) and "'files' only" in str(info.value.exception)
    # other shapes were still accepted silently: one record, a tuple, a mixed list, a nested "files", a wrong
    # kind on a media file, ComfyUI's {"filename", "subfolder", "type"}
    record = {"path": str(tmp_path / "a.png"), "name": "a.png", "kind": "image", "mime": "image/png"}
    for value in (record, (record,), [record, {"path": "x"}], {"files": [record]},
                  [{"path": str(tmp_path / "a.png"), "kind": "png"}],
                  [{"filename": "a.png", "subfolder": "", "type": "output"}]):
        MisspeltFiles.returned = {"shown": value}
        with pytest.raises(NodeExecutionError) as info:
            session.run({"format_version": 2, "nodes": {"s": {"type": "MisspeltFiles", "inputs": {}}}})
        assert "under ['shown']" in str(info.value.exception), value


class PlainPrefix(Node):
    output_node = True

    class Inputs(NodeInputs):
        prefix: str = Input("x", file_name_in="output")

    def run(self, prefix: str) -> dict:
        return {}


def test_a_subfolder_refused_by_a_plain_name_input_tells_the_author_about_subfolders():
    """A plugin copying SaveImage's prefix without `subfolders=True` got only "only a plain name is allowed"."""
    module = types.ModuleType("plain_prefix_plugin")
    module.register_nodes = hookimpl(lambda: [PlainPrefix])
    sys.modules[module.__name__] = module
    (error,) = Session(plugins=[module]).validate(
        {"format_version": 2, "nodes": {"p": {"type": "PlainPrefix", "inputs": {"prefix": "pack/anim"}}}})
    assert "only a plain name is allowed" in error.message and "subfolders=True" in error.message
    assert "put the file directly in the folder" in error.message        # said to the user, not only the author
    (error,) = Session(plugins=[module]).validate(
        {"format_version": 2, "nodes": {"p": {"type": "PlainPrefix", "inputs": {"prefix": "../secret"}}}})
    assert "contains a '..' component" in error.message and "subfolders" not in error.message   # a way out first
    # a built-in node's user can do nothing with the author's hint: SaveLoRA says only what to write
    (error,) = [e for e in Session(autoload=False).validate({"format_version": 2, "nodes": {
        "s": {"type": "SaveLoRA", "inputs": {"filename": "sub/x.safetensors"}}}})
        if e.input == "filename"]
    assert "only a plain name is allowed" in error.message and "node's author" not in error.message


def test_a_sparse_or_complex_image_output_is_named_not_a_torch_error():
    """A sparse IMAGE failed the check itself with NotImplementedError ('aten::amax' on SparseCPU); a complex one
    was told to divide by 255."""
    import torch

    from nodegraph.types import pixel_values_problem

    assert "sparse_coo one (tensor.to_dense())" in pixel_values_problem(torch.zeros(1, 2, 2, 3).to_sparse())
    assert "tensor.real.float()" in pixel_values_problem(torch.zeros(1, 2, 2, 3, dtype=torch.complex64))
