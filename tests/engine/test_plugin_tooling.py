"""Plugin tooling seen by a plugin author: what a plugin prints at import, its failures' distribution in
`plugins --json`, a ComfyUI pack given in code, literal port types, result kinds, folder extensions."""

from __future__ import annotations

import sys
import types
import warnings

import pytest

from nodegraph import Output, Session, hookimpl
from nodegraph import plugins as plugin_loading
from nodegraph.plugins import PluginLoadWarning


class _EntryPoint:
    """An installed plugin's entry point: `load()` runs `action` (the import), `dist` its distribution."""

    def __init__(self, name, action, dist=None):
        self.name, self.action, self.dist, self.value = name, action, dist, f"{name}_module"

    def load(self):
        return self.action()


class _Dist:
    def __init__(self, name, version):
        self.name, self.version = name, version


def _install(monkeypatch, installed) -> None:
    real = plugin_loading._entry_points
    monkeypatch.setattr(plugin_loading, "_entry_points",
                        lambda group: installed if group == plugin_loading.PLUGIN_GROUP else real(group))


class _NoHooks:
    """A plugin that loads (no nodes): what it printed while imported is the point of the test."""

    @hookimpl
    def register_samplers(self):
        return {}


def test_what_a_plugin_prints_at_import_is_prefixed_with_its_name(monkeypatch, capsys):
    """argparse at a plugin's module level printed `usage: cli.py ...` raw before every command, reading as
    nodegraph's own usage error: each line it prints while imported now starts with `[plugin NAME]`."""
    def argparse_at_import():
        print("usage: cli.py [-h] --must MUST", file=sys.stderr)
        sys.stderr.write("cli.py: error: the following arguments ")
        sys.stderr.write("are required: --must\n")
        raise SystemExit(2)

    def chatty():
        print("chatty says hello")               # stdout goes to stderr too (stdout carries --json)
        return _NoHooks()

    _install(monkeypatch, [_EntryPoint("argy", argparse_at_import), _EntryPoint("chatty", chatty)])
    session = Session(autoload=True)
    err = capsys.readouterr().err
    assert "[plugin argy] usage: cli.py [-h] --must MUST\n" in err
    assert "[plugin argy] cli.py: error: the following arguments are required: --must\n" in err
    assert "[plugin chatty] chatty says hello\n" in err
    assert not [line for line in err.splitlines() if line.startswith(("usage:", "cli.py:"))]
    (failure,) = session.plugin_report.failed
    assert failure.name == "argy" and "SystemExit: 2" in failure.error and "--must" in failure.error


def test_plugins_json_failures_name_the_distribution_and_version(monkeypatch):
    """`loaded` entries had distribution/version, `failed` ones not: a bug report could not say which release of
    the plugin failed. Both an import failure and a hook failure carry them now."""
    class BadHook:
        @hookimpl
        def register_nodes(self):
            return {"not": "a list"}

    def broken():
        raise ImportError("No module named 'missing_dep'")

    _install(monkeypatch, [_EntryPoint("imports_badly", broken, _Dist("nodegraph-imports-badly", "1.2.3")),
                           _EntryPoint("hooks_badly", BadHook, _Dist("nodegraph-hooks-badly", "0.4.0"))])
    session = Session(autoload=True, plugins=[("given_bad", BadHook())])
    failed = {f["name"]: f for f in session.plugin_report.to_dict()["failed"]}
    assert (failed["imports_badly"]["distribution"], failed["imports_badly"]["version"]) == (
        "nodegraph-imports-badly", "1.2.3")
    assert (failed["hooks_badly"]["distribution"], failed["hooks_badly"]["version"]) == (
        "nodegraph-hooks-badly", "0.4.0")
    assert failed["given_bad"]["distribution"] is None and failed["given_bad"]["version"] is None
    (warned,) = [w for w in session.plugin_warnings() if w["kind"] == "failed" and w["plugin"] == "imports_badly"]
    assert (warned["distribution"], warned["version"]) == ("nodegraph-imports-badly", "1.2.3")


def test_a_comfyui_pack_given_in_code_warns_like_a_failure():
    """A NODE_CLASS_MAPPINGS module given to Session(plugins=...) gave only a `no_nodes` entry in plugin_warnings(),
    while other plugins given in code that add nothing usable raise a PluginLoadWarning: now it warns too."""
    class ComfyNode:
        RETURN_TYPES = ("INT",)
        FUNCTION = "go"

    pack = types.ModuleType("my_comfy_pack")
    pack.NODE_CLASS_MAPPINGS = {"ComfyNode": ComfyNode}
    with pytest.warns(PluginLoadWarning, match=r"plugin 'mypack' registered no nodes.*ComfyUI.*Fix: port"):
        session = Session(plugins=[("mypack", pack)], autoload=False)
    assert [w["kind"] for w in session.plugin_warnings() if w["plugin"] == "mypack"] == ["no_nodes"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginLoadWarning)        # a plain module with hooks: no warning
        plain = types.ModuleType("plain_pack")
        plain.register_samplers = hookimpl(lambda: {})
        Session(plugins=[("plain", plain)], autoload=False)



def _hex_plugin(literal, annotation):
    """A plugin with port type HEXCOLOR (its `literal` as given) and a node whose input `a` is annotated so."""
    from nodegraph import Input, Node, NodeInputs, PortType

    class UseHex(Node):
        """Takes a colour."""

        # built with type(): this file's `from __future__ import annotations` would make `a: annotation` a string
        Inputs = type("Inputs", (NodeInputs,), {"__annotations__": {"a": annotation},
                                                "a": Input("#ff0000", port="HEXCOLOR")})
        outputs = (Output("a", "HEXCOLOR"),)

        def run(self, a):
            return {"a": a}

    module = types.ModuleType("hex_plugin")
    module.register_types = hookimpl(lambda: [PortType("HEXCOLOR", "A colour as #rrggbb.", literal=literal)])
    module.register_nodes = hookimpl(lambda: [UseHex])
    return module


def test_an_unknown_port_type_literal_is_refused_naming_the_plugin_and_type():
    """`PortType(literal="banana")` loaded silently (and then every literal of it was refused)."""
    with pytest.warns(PluginLoadWarning):
        session = Session(plugins=[("hexp", _hex_plugin("banana", str))], autoload=False)
    (failure,) = session.plugin_report.failed
    assert failure.name == "hexp"
    assert "port type 'HEXCOLOR' declares literal='banana'" in failure.error
    assert "'integer', 'number', 'string', 'boolean'" in failure.error


def test_a_port_type_literal_and_the_input_annotation_must_agree():
    """`PortType("HEXCOLOR", literal="string")` with `a: Any = Input(port="HEXCOLOR")` loaded and then refused
    every literal ("only comes from another node's output"): refused at load, naming node, input and the fix; with
    `a: str` the literal is taken."""
    from typing import Any

    with pytest.warns(PluginLoadWarning):
        session = Session(plugins=[("hexp", _hex_plugin("string", Any))], autoload=False)
    (failure,) = session.plugin_report.failed
    assert "node UseHex: input 'a' takes port type 'HEXCOLOR', whose literal is 'string'" in failure.error
    assert "a: str = Input(..., port='HEXCOLOR')" in failure.error
    with pytest.warns(PluginLoadWarning, match="takes INT literals"):
        Session(plugins=[("hexp", _hex_plugin("string", int))], autoload=False)
    session = Session(plugins=[("hexp", _hex_plugin("string", str))], autoload=False)
    assert not session.plugin_report.failed
    graph = {"format_version": 2, "nodes": {"u": {"type": "hexp.UseHex", "inputs": {"a": "#123456"}}}}
    assert session.run(graph, outputs=["u"]).outputs["u"]["a"] == "#123456"


def test_a_list_input_is_told_lists_are_not_literals():
    """`numbers: list[float] = Input([1.0])` was told to declare `Input(port='LATENT')`: it is told that lists are
    not literal inputs and the two ways to take one (a port type, or a string parsed by the node)."""
    from nodegraph import Input, Node, NodeInputs
    from nodegraph.errors import PluginError

    with pytest.raises(PluginError) as info:
        class Numbers(Node):
            class Inputs(NodeInputs):
                numbers: list[float] = Input([1.0, 2.0])

            outputs = ()

            def run(self, numbers):
                return {}
    message = str(info.value)
    assert "lists (and tuples, sets, dicts) are not literal inputs" in message
    assert "register_types" in message and "parse it in run()" in message and "LATENT" not in message


def test_a_plugin_adds_extensions_to_a_built_in_model_folder(tmp_path):
    """`register_model_folders` → `{"checkpoints": [".gguf"]}` (ComfyUI's GGUF pack does this) was a `clash`
    and ignored: the extensions are added to the built-in folder's (never removing one), with no warning, and a
    .gguf file there is listed."""
    from nodegraph.model_paths import ModelPaths

    module = types.ModuleType("gguf_pack")
    module.register_model_folders = hookimpl(lambda: {"checkpoints": [".gguf"]})
    other = types.ModuleType("other_pack")
    other.register_model_folders = hookimpl(lambda: {"checkpoints": [".q4", ".gguf"]})
    (tmp_path / "checkpoints").mkdir()
    for name in ("a.gguf", "b.safetensors", "c.q4", "d.txt"):
        (tmp_path / "checkpoints" / name).write_bytes(b"x")
    session = Session(plugins=[("gguf_pack", module), ("other_pack", other)], autoload=False,
                      model_paths=ModelPaths(roots=[tmp_path]))
    assert not [w for w in session.plugin_warnings() if w["kind"] == "clash"]
    extensions = session.model_paths.extensions["checkpoints"]
    assert ".safetensors" in extensions and extensions[-2:] == (".gguf", ".q4")
    assert {"a.gguf", "b.safetensors", "c.q4"} <= set(session.model_paths.list("checkpoints")[0])
    assert "d.txt" not in session.model_paths.list("checkpoints")[0]


def _save_node(kind, suffix, mime):
    """An output node saving 4 bytes through api.save_files with the given kind, suffix and mime."""
    from nodegraph import Node, NodeInputs, api

    class SaveBlob(Node):
        """Saves a blob."""

        output_node = True
        Inputs = NodeInputs
        outputs = ()

        def run(self):
            return {"files": api.save_files(self.context, [b"MThd"], kind=kind, prefix="blob", suffix=suffix,
                                            mime=mime)}

    return SaveBlob


def test_kind_file_reports_any_media_and_text_refuses_binary(tmp_path):
    """A plugin could not report MIDI (`kind="midi"` failed with no way forward) and `kind="text"` with
    `mime="audio/midi"` showed binary as text: kind "file" takes any MIME type (a download tile), text refuses a
    non-text MIME type, and an unknown kind lists the kinds and points at 'file'."""
    from nodegraph.results import FILE_KINDS, ResultFileError, validate_file

    assert "file" in FILE_KINDS
    session = Session(plugins=[_save_node("file", ".mid", "audio/midi")], autoload=False, output_dir=tmp_path)
    (entry,) = session.run({"format_version": 2, "nodes": {"s": {"type": "SaveBlob"}}}).outputs["s"]["files"]
    assert (entry["kind"], entry["mime"], entry["format"]) == ("file", "audio/midi", "mid")
    with pytest.raises(ResultFileError, match=r"kind 'text' shows the file as text, but mime 'audio/midi'.*'file'"):
        validate_file({"path": "x.mid", "kind": "text", "mime": "audio/midi"})
    assert validate_file({"path": "x.log", "kind": "text", "mime": "text/x-log"})["kind"] == "text"
    assert validate_file({"path": "x.geojson", "kind": "text", "mime": "application/geo+json"})["kind"] == "text"
    with pytest.raises(ResultFileError) as info:
        validate_file({"path": "x.mid", "kind": "midi", "mime": "audio/midi"}, "m", 0)
    assert "kind 'midi' is not a result kind" in str(info.value) and "kind 'file' reports any other media" in \
        str(info.value) and str(info.value).startswith("node 'm', files[0]:")


def test_a_hand_made_result_naming_a_missing_file_is_refused_at_the_node(tmp_path):
    """A hand-made file result inside the output folder for a file that does not exist was accepted (the editor
    got a 404 later): the node fails, named, with the fix."""
    from nodegraph import Node, NodeInputs
    from nodegraph.errors import NodeExecutionError

    class HandMade(Node):
        """Reports a file it never wrote."""

        output_node = True
        Inputs = NodeInputs
        outputs = ()

        def run(self):
            return {"files": [{"path": str(tmp_path / "nothere.txt"), "kind": "text", "mime": "text/plain"}]}

    session = Session(plugins=[HandMade], autoload=False, output_dir=tmp_path)
    with pytest.raises(NodeExecutionError) as info:
        session.run({"format_version": 2, "nodes": {"h": {"type": "HandMade"}}})
    assert info.value.node_id == "h"
    assert "nothere.txt' does not exist" in str(info.value) and "save_files" in str(info.value)
