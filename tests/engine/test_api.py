"""The plugin API's engine side: output files (save_files, the result contract and its schema),
argument errors that name the function and argument, version checks, and dispatch to implementations."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nodegraph import Input, Node, NodeContext, NodeInputs, Output, Session, api, hookimpl
from nodegraph.errors import NodeExecutionError
from nodegraph.registry import Registry
from nodegraph.results import (FILE_KINDS, OutputFile, ResultFileError, collect_files, describe_file, results_schema,
                               validate_file)


def make_context(tmp_path: Path, registry: Registry | None = None) -> NodeContext:
    """A node context whose output folder is tmp_path / "out" (no session needed for file tests)."""
    services = {"output_dir": tmp_path / "out", "registry": registry or Registry()}
    return NodeContext("n", "Test", lambda *a: None, lambda node_id: None, services, run_id="r")


def test_save_files_writes_bytes_text_and_callables_with_numbered_names(tmp_path):
    """Each item becomes PREFIX_0000k.ext inside the output folder; numbers continue across calls."""
    context = make_context(tmp_path)
    first = api.save_files(context, [b"abc", "hello"], kind="text", prefix="notes/run", suffix=".txt")
    second = api.save_files(context, [lambda path: path.write_text("from a writer")], kind="text",
                            prefix="notes/run", suffix=".txt")
    assert [f["name"] for f in first + second] == ["notes/run_00001.txt", "notes/run_00002.txt",
                                                   "notes/run_00003.txt"]
    assert Path(first[1]["path"]).read_text() == "hello"
    assert Path(second[0]["path"]).read_text() == "from a writer"
    assert first[0] == {"path": first[0]["path"], "name": "notes/run_00001.txt", "kind": "text",
                        "mime": "text/plain", "format": "txt"}


def test_save_files_fields_per_item_and_default_mime(tmp_path):
    """Fields given per item land on each result; the MIME type comes from the extension."""
    context = make_context(tmp_path)
    files = api.save_files(context, [b"RIFF0", b"RIFF1"], kind="audio", prefix="clip", suffix=".wav",
                           fields=[{"sample_rate": 16000, "duration": 1.5}, {"sample_rate": 8000, "duration": 2.0}])
    assert [(f["mime"], f["sample_rate"], f["duration"]) for f in files] == [
        ("audio/wav", 16000, 1.5), ("audio/wav", 8000, 2.0)]
    with pytest.raises(api.ApiArgumentError, match=r"argument 'fields': 'path' is set by save_files itself"):
        api.save_files(context, [b"x"], kind="text", prefix="log", suffix=".txt", fields={"path": "elsewhere"})


def test_save_files_refuses_empty_or_missing_files_and_a_suffix_of_another_kind(tmp_path):
    """A write(path) callable that writes nothing (or an empty file), empty bytes for a media kind, and a suffix
    that does not fit `kind` are refused naming the item or `suffix`; nothing is left behind (not the call's
    earlier files either: a failed save left them counted against a quota, in no run). An empty text is a text."""
    context = make_context(tmp_path)
    cases = [([lambda path: None], "video", ".mp4", "items[0]", "did it write nothing"),
             ([lambda path: path.unlink()], "audio", ".flac", "items[0]", "left no file"),
             ([b"RIFF", b""], "audio", ".wav", "items[1]", "is empty"),
             ([b"RIFF"], "video", ".wav", "suffix", "cannot be reported as kind 'video'")]
    for items, kind, suffix, argument, words in cases:
        with pytest.raises(api.ApiArgumentError) as info:
            api.save_files(context, items, kind=kind, prefix="bad/x", suffix=suffix)
        assert info.value.input == argument and words in str(info.value), str(info.value)
    # the good first item goes too when the second fails: the node fails, and its files belonged to no run
    assert [p.name for p in (tmp_path / "out").rglob("*") if p.is_file()] == []
    assert api.save_files(context, [""], kind="text", prefix="empty", suffix=".txt")[0]["name"] == "empty_00001.txt"


def test_save_files_writes_beside_the_result_and_moves_it_into_place(tmp_path):
    """A server killed while SaveImage wrote left a truncated PNG under the result's name (and then an empty
    placeholder). The writer gets a short hidden name with the same suffix (ffmpeg picks the format by it); the
    result name appears only with the whole file; a failure removes the call's files, finished ones included.
    A prefix near the name-length limit still fits (the hidden name does not grow with it)."""
    context = make_context(tmp_path)
    seen = []

    def writer(path):
        seen.append((path.name, sorted(p.name for p in path.parent.iterdir())))
        path.write_bytes(b"GIF89a" + b"\0" * 10)

    (result,) = api.save_files(context, [writer], kind="image", prefix="anim", suffix=".gif")
    ((written, listed),) = seen
    assert written.startswith(".partial-") and written.endswith(".gif") and listed == [written]   # no result name
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["anim_00001.gif"]
    assert Path(result["path"]).read_bytes().startswith(b"GIF89a")

    def fails(path):
        path.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        api.save_files(context, [b"GIF89a", fails], kind="image", prefix="two", suffix=".gif")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["anim_00001.gif"]
    (long,) = api.save_files(context, [b"GIF89a"], kind="image", prefix="日" * 80, suffix=".gif")   # 250 bytes
    assert Path(long["path"]).name == "日" * 80 + "_00001.gif"


@pytest.mark.parametrize("prefix", ["../escape", "/etc/passwd", "a/../../b", "a\\b", "", "a//b"])
def test_save_files_refuses_prefixes_that_leave_the_output_folder(tmp_path, prefix):
    """Parent components, absolute paths, backslashes and empty names are refused before anything is written."""
    context = make_context(tmp_path)
    with pytest.raises(api.ApiArgumentError) as info:
        api.save_files(context, [b"x"], kind="text", prefix=prefix, suffix=".txt")
    assert info.value.input == "prefix" and "nodegraph.api.save_files()" in str(info.value)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_save_files_refuses_a_symlinked_subfolder_pointing_outside(tmp_path):
    """A subfolder of the output folder that links elsewhere is refused (the real path is checked)."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "out").mkdir()
    os.symlink(outside, tmp_path / "out" / "link")
    with pytest.raises(api.ApiArgumentError) as info:
        api.save_files(make_context(tmp_path), [b"x"], kind="text", prefix="link/x", suffix=".txt")
    assert info.value.input == "prefix" and "outside its folder" in str(info.value)
    assert list(outside.iterdir()) == []
    # a plugin node whose input is `filename_prefix` says so (a plugin author's finding: the user was told about
    # an argument 'prefix' that no node of theirs has) — save_files and save_image alike
    with pytest.raises(api.ApiArgumentError) as info:
        api.save_files(make_context(tmp_path), [b"x"], kind="text", prefix="link/x", suffix=".txt",
                       argument="filename_prefix")
    assert info.value.input == "filename_prefix" and "argument 'filename_prefix'" in str(info.value)
    from nodegraph import Session

    registry = Session().registry       # save_image's implementation (the image pack) calls save_files itself
    for prefix in ("link/x", "../up", "a" * 300):    # the last is refused inside it (too long for the file system)
        with pytest.raises(api.ApiArgumentError) as info:
            api.save_image(make_context(tmp_path, registry), __import__("torch").zeros(1, 8, 8, 3), prefix,
                           argument="filename_prefix")
        assert info.value.input == "filename_prefix", (prefix, info.value)
        assert "argument 'filename_prefix'" in str(info.value) and "'prefix'" not in str(info.value), info.value
    for wrong in ("a b", "../x", "/etc/x", "a" * 10_000, ["nested"]):
        with pytest.raises(api.ApiArgumentError, match="argument 'argument': expected the name of the node input"):
            api.save_files(make_context(tmp_path), [b"x"], kind="text", prefix="a", suffix=".txt", argument=wrong)
    assert list(outside.iterdir()) == []


def test_save_files_checks_kind_suffix_and_mime(tmp_path):
    """An unknown kind, a suffix that does not suit the kind, and an unknown extension without mime are refused."""
    context = make_context(tmp_path)
    with pytest.raises(api.ApiArgumentError, match="argument 'kind'.*image, video, audio"):
        api.save_files(context, [b"x"], kind="hologram", prefix="a", suffix=".png")
    with pytest.raises(api.ApiArgumentError, match="cannot be reported as kind 'image'"):
        api.save_files(context, [b"x"], kind="image", prefix="a", suffix=".mp4")
    with pytest.raises(api.ApiArgumentError, match="argument 'mime'"):
        api.save_files(context, [b"x"], kind="mesh", prefix="a", suffix=".usdz")
    assert not any(p.is_file() for p in tmp_path.rglob("*"))       # the refused .mp4 was removed again
    (result,) = api.save_files(context, [b"x"], kind="mesh", prefix="a", suffix=".usdz", mime="model/vnd.usdz+zip")
    assert result["mime"] == "model/vnd.usdz+zip" and result["format"] == "usdz"
    with pytest.raises(api.ApiArgumentError, match="does not fit a .png file"):   # the editor would play a PNG
        api.save_files(context, [b"x"], kind="image", prefix="b", suffix=".png", mime="video/mp4")
    (result,) = api.save_files(context, [b"x"], kind="mesh", prefix="c", suffix=".ply",
                               mime="application/octet-stream")          # generic, not a contradiction
    assert result["mime"] == "application/octet-stream"


def test_save_files_refuses_bad_items_and_fields(tmp_path):
    """Items must be bytes, str or callables; fields one dict or one per item, with contract-valid values."""
    context = make_context(tmp_path)
    with pytest.raises(api.ApiArgumentError, match=r"argument 'items\[1\]'"):
        api.save_files(context, [b"x", 3], kind="text", prefix="a", suffix=".txt")
    with pytest.raises(api.ApiArgumentError, match="argument 'fields'"):
        api.save_files(context, [b"x", b"y"], kind="text", prefix="a", suffix=".txt", fields=[{}])
    with pytest.raises(api.ApiArgumentError, match="width"):
        api.save_files(context, [b"x"], kind="image", prefix="a", suffix=".png", fields={"width": 0})


def test_a_writer_that_fails_leaves_no_file(tmp_path):
    """When the writer raises, the reserved file is removed and the error propagates."""
    def broken(path):
        raise RuntimeError("encoder crashed")

    with pytest.raises(RuntimeError, match="encoder crashed"):
        api.save_files(make_context(tmp_path), [broken], kind="video", prefix="v", suffix=".mp4")
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_save_files_needs_the_running_nodes_context(tmp_path):
    """Passing something else than self.context names the context argument."""
    with pytest.raises(api.ApiArgumentError, match="argument 'context'.*self.context"):
        api.save_files(str(tmp_path), [b"x"], kind="text", prefix="a", suffix=".txt")


def test_output_file_model_accepts_every_kind_and_refuses_unknown_ones():
    """The contract's kinds are the six media kinds and `file` (any other media, a download); anything else fails
    with the list of kinds."""
    assert FILE_KINDS == ("image", "video", "audio", "mesh", "pointcloud", "text", "file")
    for kind, path, mime in [("image", "a.png", "image/png"), ("video", "a.mp4", "video/mp4"),
                             ("audio", "a.flac", "audio/flac"), ("mesh", "a.glb", "model/gltf-binary"),
                             ("pointcloud", "a.ply", "model/ply"), ("text", "a.json", "application/json"),
                             ("file", "a.mid", "audio/midi")]:
        assert validate_file({"path": path, "kind": kind, "mime": mime})["kind"] == kind
    with pytest.raises(ResultFileError, match="kind.*image, video, audio, mesh, pointcloud, text"):
        validate_file({"path": "a.bin", "kind": "checkpoint", "mime": "application/octet-stream"}, "save", 0)
    with pytest.raises(ResultFileError, match="mime"):
        validate_file({"path": "a.png", "kind": "image"})
    with pytest.raises(ResultFileError, match="not a MIME type"):
        validate_file({"path": "a.png", "kind": "image", "mime": "png"})
    with pytest.raises(ResultFileError, match="colour: not a field of the contract; put extra data under 'info'"):
        validate_file({"path": "a.png", "kind": "image", "mime": "image/png", "colour": "red"})


def test_collect_files_validates_and_refuses_paths_outside_the_output_folder(tmp_path):
    """collect_files adds node id and index, recomputes names, and names the node of a bad entry."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"x")
    good = {"path": str(out / "a.png"), "kind": "image", "mime": "image/png"}
    found = collect_files({"save": {"files": [good]}, "show": {"value": 3}}, out)
    assert found == [{**good, "name": "a.png", "node_id": "save", "index": 0}]
    with pytest.raises(ResultFileError) as info:
        collect_files({"save": {"files": [good, {**good, "path": str(tmp_path / "b.png")}]}}, out)
    assert info.value.node_id == "save" and info.value.index == 1 and "not inside the output folder" in str(info.value)
    with pytest.raises(ResultFileError, match="node 'x', files\\[0\\]"):
        collect_files({"x": {"files": [{"path": "c.png", "kind": "picture", "mime": "image/png"}]}})
    with pytest.raises(ResultFileError, match="must be a list"):
        collect_files({"x": {"files": "c.png"}})


def test_results_schema_describes_the_contract():
    """The JSON Schema lists the kinds, requires path/kind/mime and forbids unknown keys; it is JSON."""
    schema = json.loads(json.dumps(results_schema()))
    item = schema["$defs"]["OutputFile"]
    assert schema["type"] == "array" and schema["items"] == {"$ref": "#/$defs/OutputFile"}
    assert set(item["required"]) == {"path", "kind", "mime"}
    assert item["properties"]["kind"]["enum"] == list(FILE_KINDS)
    assert item["additionalProperties"] is False
    assert {"width", "height", "frames", "fps", "duration", "sample_rate"} <= set(item["properties"])
    assert OutputFile.model_json_schema() == item


def test_describe_file_is_one_line_with_kind_and_sizes():
    """The CLI's line names kind, path, MIME type and sizes."""
    line = describe_file({"path": "out/v_00001.mp4", "kind": "video", "mime": "video/mp4", "width": 64,
                          "height": 48, "frames": 16, "fps": 8.0})
    assert line == "video out/v_00001.mp4 (video/mp4, 64×48, 16 frames, 8 fps)"
    short = describe_file({"path": "a.wav", "kind": "audio", "mime": "audio/wav", "duration": 1 / 16000,
                           "sample_rate": 16000})
    assert short == "audio a.wav (audio/wav, 0.0001 s, 16000 Hz)"          # not 6.25e-05
    assert "8.3333 fps" in describe_file({"path": "g.gif", "kind": "video", "mime": "image/gif", "fps": 1000 / 120})
    assert "(video/mp4, 1 frame, 8 fps)" in describe_file({"path": "v.mp4", "kind": "video", "mime": "video/mp4",
                                                            "frames": 1, "fps": 8.0})


def test_require_checks_the_api_version():
    """require passes for the installed or an older minor version and refuses newer or other majors."""
    api.require("1.0")
    installed = api.API_VERSION.replace(".", r"\.")
    with pytest.raises(api.ApiError, match=f"needs nodegraph plugin API 1.99.*provides API {installed}"):
        api.require("1.99")
    with pytest.raises(api.ApiError):
        api.require("2.0")
    with pytest.raises(api.ApiArgumentError, match="MAJOR.MINOR"):
        api.require("latest")


def test_every_public_name_exists_and_the_version_is_semver():
    """__all__ lists real objects and API_VERSION is MAJOR.MINOR."""
    assert all(hasattr(api, name) for name in api.__all__)
    major, minor = api.API_VERSION.split(".")
    assert major.isdigit() and minor.isdigit()


class CallsSample(Node):
    """A plugin-style node that calls api.sample with whatever it is given (to test dispatch)."""

    output_node = True

    class Inputs(NodeInputs):
        steps: int = Input(3, ge=-5, le=10)

    outputs = (Output("latent", "LATENT"),)

    def run(self, steps: int) -> dict:
        return {"latent": api.sample(self.context, object(), {"context": 1}, None, {"latent": 1}, steps=steps,
                                     cfg=1.0)}


class CallsSamplePlugin:
    """Registers CallsSample."""

    @hookimpl
    def register_nodes(self) -> list:
        return [CallsSample]


def test_argument_errors_name_the_function_and_the_argument():
    """A LATENT dict without 'samples' fails before any model work, naming api.sample and 'latent'."""
    session = Session(plugins=[("calls", CallsSamplePlugin())], builtins=False)
    graph = {"format_version": 1, "nodes": {"n": {"type": "CallsSample", "inputs": {}}}}
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph)
    error = info.value.exception
    assert isinstance(error, api.ApiArgumentError) and error.input == "latent" and error.function == "sample"
    assert str(error).startswith("nodegraph.api.sample(): argument 'latent': expected a LATENT dict")
    assert "found dict with keys ['latent']" in str(error)


def test_a_session_without_the_builtin_packs_says_which_pack_provides_the_implementation(tmp_path):
    """With builtins=False there is no implementation of save_image: the error names the 'image' pack."""
    pytest.importorskip("torch")
    import torch

    context = make_context(tmp_path)
    with pytest.raises(api.ApiError, match="built-in 'image' pack provides it"):
        api.save_image(context, torch.zeros(1, 8, 8, 3), "x")


def test_the_cli_prints_every_output_file_with_its_kind(tmp_path, capsys):
    """`nodegraph run` lists each file an output node wrote: node id, kind, path, MIME type and size."""
    pytest.importorskip("torch")
    from nodegraph.cli import main

    graph = Path(__file__).resolve().parents[2] / "graphs" / "txt2img.json"
    code = main(["run", str(graph), "--set", "sampler.steps=1", "--no-progress",
                 "--output-dir", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    assert code == 0
    assert f"save: image {tmp_path / 'out' / 'txt2img_00001.png'} (image/png, 64×64)" in printed.splitlines()


def test_the_cli_prints_the_results_schema(capsys):
    """`nodegraph schema --results` prints the file-result JSON Schema (for docs/protocol.md)."""
    from nodegraph.cli import main

    assert main(["schema", "--results"]) == 0
    assert json.loads(capsys.readouterr().out) == results_schema()


class HandWrittenFiles(Node):
    """An output node that reports its files by hand (not through api.save_files)."""

    output_node = True

    class Inputs(NodeInputs):
        kind: str = Input("image")
        outside: bool = Input(False)

    outputs = ()

    def run(self, kind: str, outside: bool) -> dict:
        folder = Path(self.context.service("output_dir"))
        path = (folder.parent if outside else folder) / "hand.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"png")
        return {"files": [{"path": str(path), "kind": kind, "mime": "image/png"}]}


class HandWrittenPlugin:
    """Registers HandWrittenFiles."""

    @hookimpl
    def register_nodes(self) -> list:
        return [HandWrittenFiles]


@pytest.mark.parametrize("inputs, words", [({"kind": "picture"}, "kind"),
                                           ({"outside": True}, "not inside the output folder")])
def test_an_output_node_with_bad_file_results_fails_naming_the_entry(tmp_path, inputs, words):
    """The executor checks `files` of output nodes: a bad kind or a file outside the output folder fails the node."""
    session = Session(plugins=[("hand", HandWrittenPlugin())], builtins=False, output_dir=tmp_path / "out")
    graph = {"format_version": 1, "nodes": {"h": {"type": "HandWrittenFiles", "inputs": inputs}}}
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph)
    assert info.value.node_id == "h" and isinstance(info.value.exception, ResultFileError)
    assert "files[0]" in str(info.value.exception) and words in str(info.value.exception)
    ok = session.run({"format_version": 1, "nodes": {"h": {"type": "HandWrittenFiles", "inputs": {}}}})
    assert ok.outputs["h"]["files"][0]["kind"] == "image"


def test_layout_checks_name_a_plugins_own_node_and_input():
    """check_image / check_latent / check_mask used by a plugin name its node and input, not nodegraph.api."""
    torch = pytest.importorskip("torch")
    with pytest.raises(api.ApiArgumentError) as info:
        api.check_image(torch.zeros(1, 8, 8), "pixels", "MyFilter")
    assert str(info.value).startswith("MyFilter: argument 'pixels': expected an IMAGE float tensor (B, H, W, 3)")
    with pytest.raises(api.ApiArgumentError, match=r"^nodegraph.api.check_mask\(\): argument 'mask'"):
        api.check_mask(torch.zeros(1, 8, 8, 3))
    with pytest.raises(api.ApiArgumentError, match="'frames' \\(3\\) must be a positive int dividing the batch 4"):
        api.check_latent({"samples": torch.zeros(4, 4, 8, 8), "frames": 3})
    assert api.check_latent({"samples": torch.zeros(4, 4, 8, 8), "frames": 2}).shape == (4, 4, 8, 8)


def test_an_image_of_0_255_values_is_refused_with_the_fix():
    """The most common image mistake in a plugin: 0-255 floats where an IMAGE holds [0, 1]."""
    torch = pytest.importorskip("torch")
    with pytest.raises(api.ApiArgumentError, match=r"found values from 255 to 255 where an IMAGE holds values in \[0, 1\] \(divide 0-255"):
        api.check_image(torch.full((1, 8, 8, 3), 255.0))
    assert api.check_image(torch.full((1, 8, 8, 3), 1.02)).shape == (1, 8, 8, 3)     # an overshoot is fine


class CallsSampleWithNoise(Node):
    """api.sample with a `noise` argument that is not a noise object."""

    output_node = True

    class Inputs(NodeInputs):
        pass

    outputs = (Output("latent", "LATENT"),)

    def run(self) -> dict:
        import torch

        return {"latent": api.sample(self.context, object(), {"context": torch.zeros(1, 2, 4)}, None,
                                     {"samples": torch.zeros(1, 4, 8, 8)}, cfg=1.0, noise="gaussian")}


class CallsSampleWithNoisePlugin:
    @hookimpl
    def register_nodes(self) -> list:
        return [CallsSampleWithNoise]


def test_sample_refuses_a_noise_argument_without_seed_and_generate():
    """api.sample(noise=...) takes an object with `seed` and `generate(samples)`; anything else names 'noise'."""
    session = Session(plugins=[("noise", CallsSampleWithNoisePlugin())])
    with pytest.raises(NodeExecutionError) as info:
        session.run({"format_version": 1, "nodes": {"n": {"type": "CallsSampleWithNoise", "inputs": {}}}})
    error = info.value.exception
    assert isinstance(error, api.ApiArgumentError) and error.input == "noise" and "generate(samples)" in str(error)


def test_check_image_refuses_float64_and_nan_as_save_image_does():
    """api.check_image let float64 and NaN images through (a plugin's animation saver wrote a GIF from NaN)."""
    torch = pytest.importorskip("torch")
    with pytest.raises(api.ApiArgumentError, match="dtype float64"):
        api.check_image(torch.zeros(1, 4, 4, 3, dtype=torch.float64))
    with pytest.raises(api.ApiArgumentError, match="NaN"):
        api.check_image(torch.full((1, 4, 4, 3), float("nan")))
    with pytest.raises(api.ApiArgumentError, match="NaN"):
        api.check_mask(torch.full((1, 4, 4), float("nan")))
    assert api.check_image(torch.rand(1, 4, 4, 3)) is not None


# --- API 1.5: what the shipped plugins imported from private modules ----------------------------------

class ReadsUpload(Node):
    """Reads the size of an uploaded file through api.input_file."""

    output_node = True

    class Inputs(NodeInputs):
        file: str = Input("x.txt")

    outputs = (Output("size", "INT"),)

    def run(self, file):
        return {"size": api.input_file(self.context, file).stat().st_size}


@hookimpl
def register_nodes():
    return [ReadsUpload]


def test_input_file_and_confine_are_public(tmp_path):
    import sys

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("hello")
    session = Session(plugins=[("reads", sys.modules[__name__])], input_dir=tmp_path / "in",
                      output_dir=tmp_path / "out")
    graph = {"format_version": 2, "nodes": {"r": {"type": "ReadsUpload", "inputs": {"file": "notes.txt"}}}}
    assert session.run(graph).outputs["r"]["size"] == 5
    graph["nodes"]["r"]["inputs"]["file"] = "note.txt"
    with pytest.raises(NodeExecutionError) as failure:
        session.run(graph)
    assert failure.value.exception.input == "file" and "notes.txt" in str(failure.value.exception)   # close names
    assert api.confine(tmp_path, "a/b.png", subfolders=True) == tmp_path / "a" / "b.png"
    from nodegraph import NodeInputError

    with pytest.raises(NodeInputError, match="prefix"):
        api.confine(tmp_path, "../up.png", input_name="prefix")


class ReadsLut(Node):
    """Reads a file of its own format from a model folder through api.model_file (API 1.6)."""

    output_node = True

    class Inputs(NodeInputs):
        lut_name: str = Input("warm.cube")

    outputs = (Output("text", "STRING"),)

    def run(self, lut_name):
        return {"text": api.model_file(self.context, "luts", lut_name, argument="lut_name").read_text()}


class _LutPlugin:
    @hookimpl
    def register_nodes(self) -> list:
        return [ReadsLut]

    @hookimpl
    def register_model_folders(self) -> dict:
        return {"luts": [".cube"]}


def test_model_file_reads_a_plugins_own_format_confined_to_its_folder(tmp_path):
    """Plugins reading a LUT or wildcards file used the undocumented `context.service("resolve_file")`, and a name
    linked in from a String node that left the folder failed with a LookupError naming no input and asking the
    user to report the error to the plugin's authors (a plugin author's finding). `api.model_file` names it."""
    from nodegraph.model_paths import ModelPaths

    (tmp_path / "luts").mkdir()
    (tmp_path / "luts" / "warm.cube").write_text("LUT_3D_SIZE 2")
    (tmp_path / "secret.cube").write_text("no")
    session = Session(plugins=[("luts", _LutPlugin())], model_paths=ModelPaths(roots=[tmp_path]),
                      output_dir=tmp_path / "out")
    graph = {"format_version": 2, "nodes": {"r": {"type": "ReadsLut", "inputs": {}}}}
    assert session.run(graph).outputs["r"]["text"] == "LUT_3D_SIZE 2"
    graph["nodes"]["s"] = {"type": "String", "inputs": {"value": "../secret.cube"}}
    graph["nodes"]["r"]["inputs"]["lut_name"] = {"node": "s", "output": "value"}
    with pytest.raises(NodeExecutionError) as failure:
        session.run(graph)
    assert failure.value.exception.input == "lut_name" and "secret" not in str(failure.value.exception).split(":")[0]
    context = NodeContext("n", "T", lambda *e: None, lambda n: None, session.services)
    with pytest.raises(api.ApiArgumentError, match="api.input_file"):
        api.model_file(context, "input", "x")
    for folder in ("../secret_dir", "/etc", "luts/../..", ".."):       # a folder name, never a path (a re-test)
        with pytest.raises(api.ApiArgumentError, match="model folder name"):
            api.model_file(context, folder, "conf.json")


def test_sampler_from_step_builds_a_sampler_from_a_plugins_step():
    """A plugin's Euler step, written against api.StepResult, samples like the built-in euler."""
    torch = pytest.importorskip("torch")

    def my_euler(model, x, sigmas, i, state, extra_args, noise_sampler):
        denoised = model(x, sigmas[i], **extra_args)
        x_next = x + (x - denoised) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
        return api.StepResult(x_next, state, denoised, float(sigmas[i]), x)

    sampler = api.sampler_from_step(my_euler)
    model = lambda x, sigma, **kw: x * 0.5          # noqa: E731 — a toy denoiser
    sigmas = torch.tensor([2.0, 1.0, 0.5, 0.0])
    x = torch.ones(1, 2, 2, 2)
    expected = x.clone()
    for i in range(3):
        expected = expected + (expected - expected * 0.5) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
    assert torch.allclose(sampler(model, x, sigmas), expected)


@pytest.mark.parametrize("returns, words", [
    ("none", "expected a StepResult of 5 values, found NoneType"),
    ("four", "found tuple of 4 values"),
    ("wrong_shape", "result x: expected a float tensor shaped like the latent"),
    ("int", "found int64 tensor"),
    ("state", "result state: expected a dict"),
])
def test_a_plugin_step_that_returns_the_wrong_thing_is_named(returns, words):
    """A step returning None, 4 values, a wrong-shaped or integer x, or no state dict failed with an unpacking or
    torch error blamed on KSampler (a hostile pass); the step is named with what it must return."""
    torch = pytest.importorskip("torch")
    from nodes.sampling.errors import SamplingError

    def bad_step(model, x, sigmas, i, state, extra_args, noise_sampler):
        d = model(x, sigmas[i], **extra_args)
        return {"none": None, "four": (x, state, d, 1.0),
                "wrong_shape": api.StepResult(x[:, :1], state, d, 1.0, x),
                "int": api.StepResult(x.long(), state, d, 1.0, x),
                "state": api.StepResult(x, None, d, 1.0, x)}[returns]

    sampler = api.sampler_from_step(bad_step)
    with pytest.raises(SamplingError, match="bad_step") as failure:
        sampler(lambda x, sigma, **kw: x * 0.5, torch.ones(1, 2, 2, 2), torch.tensor([2.0, 1.0, 0.0]))
    assert words in str(failure.value)


def test_a_file_of_an_ending_its_model_folder_does_not_list_is_named_so(tmp_path):
    """A plugin that shipped `wildcards/colors.txt` through register_model_dirs but registered no endings for the
    folder got "no file 'colors.txt' ... Available: none. Looked in: <the folder holding it>" (a ComfyUI porter's
    finding); the error says the folder lists no .txt files and how a plugin registers the ending."""
    from nodegraph.model_paths import ModelPaths

    (tmp_path / "luts").mkdir()
    (tmp_path / "luts" / "warm.txt").write_text("x")
    class PicksLut(Node):
        output_node = True

        class Inputs(NodeInputs):
            lut_name: str = Input(model_folder="luts")

        outputs = (Output("text", "STRING"),)

        def run(self, lut_name):
            return {"text": lut_name}

    class Plugin(_LutPlugin):
        @hookimpl
        def register_nodes(self) -> list:
            return [PicksLut]

    session = Session(plugins=[("luts", Plugin())], model_paths=ModelPaths(roots=[tmp_path]),
                      output_dir=tmp_path / "out")
    graph = {"format_version": 2, "nodes": {"r": {"type": "PicksLut", "inputs": {"lut_name": "warm.txt"}}}}
    (error,) = session.validate(graph)
    assert error.input == "lut_name" and "lists no files ending in .txt" in error.message
    assert "register_model_folders" in error.message and "{'luts': ['.txt']}" in error.message
    read = {"format_version": 2, "nodes": {"r": {"type": "ReadsLut", "inputs": {"lut_name": "warm.txt"}}}}
    session = Session(plugins=[("luts", _LutPlugin())], model_paths=ModelPaths(roots=[tmp_path]),
                      output_dir=tmp_path / "out")
    with pytest.raises(NodeExecutionError, match="lists no files ending in .txt"):       # api.model_file says so too
        session.run(read)


def test_session_run_reads_what_a_python_caller_writes(tmp_path, monkeypatch):
    """A stranger's Python pass: `outputs="show"` was read letter by letter (four "not a node" errors), a list of
    override pairs failed with "'list' object has no attribute 'items'", and a file named "{x}.json" was parsed
    as JSON text."""
    from nodegraph import Session

    graph = {"format_version": 2, "nodes": {"i": {"type": "Int", "inputs": {"value": 3}},
                                            "show": {"type": "ShowValue", "inputs": {"value": {"node": "i",
                                                                                               "output": "value"}}}}}
    session = Session(autoload=False)
    assert session.run(graph, outputs="show").outputs["show"]["value"] == 3
    assert session.validate(graph, outputs="show") == []
    with pytest.raises(TypeError, match=r"overrides must be a mapping .* found list \(a list of pairs"):
        session.run(graph, overrides=[("i.value", 5)])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "{x}.json").write_text(json.dumps(graph))
    assert session.run("{x}.json").outputs["show"]["value"] == 3
    assert session.run(json.dumps(graph)).outputs["show"]["value"] == 3          # JSON text is still JSON text
