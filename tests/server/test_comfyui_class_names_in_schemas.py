"""A plugin's ComfyUI class names reach the editor with the node schemas (`comfyui_classes`), for its search.

A ported pack's users search with the pack's old class names ("FaceDetailer", "SDXLPromptStyler"); the plugin
registered them with `register_comfyui_classes`, but the schemas the editor got did not carry them, so the search
said "no node matches" while built-in ComfyUI names were found through its synonym table.
"""

from __future__ import annotations

import json

from nodegraph import Input, Node, NodeInputs, Output, Session, api, hookimpl
from nodegraph.files import FileStore
from nodegraph.protocol import PROTOCOL_VERSION, ServerProtocol
from nodegraph.run_queue import RunQueue


class ObjectDetailer(Node):
    """Stands in for a ported Impact-style detailer."""

    class Inputs(NodeInputs):
        text: str = Input("")

    outputs = (Output("text", "STRING"),)

    def run(self, text):
        return {"text": text}


class PromptStyler(Node):
    class Inputs(NodeInputs):
        text: str = Input("")

    outputs = (Output("text", "STRING"),)

    def run(self, text):
        return {"text": text}


class DetailPack:
    @hookimpl
    def register_nodes(self):
        return [ObjectDetailer, PromptStyler]

    @hookimpl
    def register_comfyui_classes(self):
        # a bare and a qualified target, two classes onto one node, a class name with spaces (WAS style)
        return {"FaceDetailer": api.ComfyUIClass("ObjectDetailer", ("text",)),
                "DetailerForEach": api.ComfyUIClass("detail.ObjectDetailer", ("text",)),
                "SDXL Prompt Styler": api.ComfyUIClass("detail.PromptStyler", ("text",))}


def session_with_pack(tmp_path) -> Session:
    return Session(plugins=[("detail", DetailPack())], autoload=False,
                   output_dir=tmp_path / "out", input_dir=tmp_path / "in")


def by_type(schemas: list[dict]) -> dict[str, dict]:
    return {schema["qualified_type"]: schema for schema in schemas}


def test_session_schemas_carry_each_nodes_comfyui_class_names(tmp_path):
    """Each node lists the classes that import as it, sorted; nodes without any have no such key."""
    session = session_with_pack(tmp_path)
    assert session.plugin_report.failed == [], session.plugin_warnings()
    schemas = by_type(session.node_schemas())
    assert schemas["detail.ObjectDetailer"]["comfyui_classes"] == ["DetailerForEach", "FaceDetailer"]
    assert schemas["detail.PromptStyler"]["comfyui_classes"] == ["SDXL Prompt Styler"]
    assert "comfyui_classes" not in schemas["primitives.Int"]
    # the registry's memoised schemas are left as they were (the field is added to copies)
    assert "comfyui_classes" not in by_type(session.registry.node_schemas())["detail.ObjectDetailer"]


def test_list_nodes_reply_carries_them(tmp_path):
    """What the editor asks for (`list_nodes`) holds the field."""
    session = session_with_pack(tmp_path)
    proto = ServerProtocol(session, RunQueue(), FileStore(tmp_path / "in", tmp_path / "out"),
                           wake_worker=lambda: None, interrupt_run=lambda run_id: True)
    proto.connect("c1")
    proto.receive("c1", json.dumps({"type": "hello", "protocol_version": PROTOCOL_VERSION}))
    (reply,) = proto.receive("c1", json.dumps({"type": "list_nodes"}))
    schemas = by_type(reply.message["nodes"])
    assert schemas["detail.ObjectDetailer"]["comfyui_classes"] == ["DetailerForEach", "FaceDetailer"]
    assert schemas["detail.PromptStyler"]["comfyui_classes"] == ["SDXL Prompt Styler"]
