"""A shared server's plain users against small messages that cost it much (an attacker's third pass):
import_graph replies of gigabytes, results written whole to be measured, checks of 190,000 nodes, and
import_graph checking files against the shared input folder instead of the user's own."""

from __future__ import annotations

import json
import time

import pytest

from nodegraph import Session
from nodegraph.comfyui import MAX_EXPANDED_WORKFLOW_BYTES, json_text_size
from nodegraph.effective_graph import MAX_EXPANDED_NODES
from nodegraph.files import FileStore, OutputBudget
from nodegraph.protocol import PROTOCOL_VERSION, ServerProtocol
from nodegraph.run_queue import RunQueue
from nodegraph.users import User, UserBook


def _protocol(tmp_path, users: UserBook | None = None) -> ServerProtocol:
    session = Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in")
    return ServerProtocol(session, RunQueue(), FileStore(tmp_path / "in", tmp_path / "out"), users=users,
                          wake_worker=lambda: None)


def _greeted(protocol: ServerProtocol, client: str, user: User | None = None) -> None:
    protocol.connect(client, user)
    protocol.receive(client, json.dumps({"type": "hello", "protocol_version": PROTOCOL_VERSION}))


def _ask(protocol: ServerProtocol, client: str, message: dict) -> dict:
    (reply,) = [r for r in protocol.receive(client, json.dumps(message)) if r.to == client][:1]
    return reply.message


def _nested_workflow(levels: int, fan: int, text_chars: int) -> dict:
    """A ComfyUI UI workflow: one leaf definition holding one long widget text, used `fan` times per level."""
    definitions = [{"id": "d0", "name": "leaf", "links": [],
                    "nodes": [{"id": 1, "type": "FooNode", "widgets_values": ["x" * text_chars], "inputs": [],
                               "outputs": []}]}]
    definitions += [{"id": f"d{level}", "name": f"level{level}", "links": [],
                     "nodes": [{"id": i + 1, "type": f"d{level - 1}", "inputs": [], "outputs": []}
                               for i in range(fan)]} for level in range(1, levels + 1)]
    return {"nodes": [{"id": 1, "type": f"d{levels}", "inputs": [], "outputs": []}], "links": [],
            "definitions": {"subgraphs": definitions}, "version": 0.4}


# --- json_text_size ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    {"a": [1, 2.5, None, True, "x" * 100], "b": {"c": (1, 2)}, 3: "é\n\"", None: [], "e": {}, 1.5: False},
    [[1, [2]], [], "", {"k": [{"z": 0}]}], "plain", 7, None, float("nan"),
])
def test_json_text_size_is_the_length_json_dumps_writes(value):
    assert json_text_size(value) == len(json.dumps(value, default=str))
    assert json_text_size(object()) == len(json.dumps(object(), default=str))


def test_json_text_size_stops_at_its_limit_and_measures_a_shared_text_once():
    shared = "y" * 1_000_000
    result = {"outputs": {f"n{i}": {"value": shared} for i in range(100_000)}}      # 100 GB as JSON
    started = time.perf_counter()
    assert 5_000 < json_text_size(result, 5_000) < 1_100_000
    assert json_text_size(result) > 100_000 * 1_000_000         # counted, not written
    assert time.perf_counter() - started < 5


# --- 1. import_graph: a 53 KB workflow became a 1 GB reply -----------------------------------------------------

def test_a_workflow_whose_subgraphs_copy_a_long_text_is_refused_before_the_reply_is_made(tmp_path):
    """4 levels × 12 uses of a definition holding one 50 KB text: 53 KB sent, a 1,038 MB `imported_graph` reply
    (2.5 GB of server memory; every client waited 14 s). Its expansion is now counted in bytes as it goes."""
    workflow = _nested_workflow(4, 12, 50_000)
    assert len(json.dumps(workflow)) < 60_000
    protocol = _protocol(tmp_path)
    _greeted(protocol, "c1")
    started = time.perf_counter()
    reply = _ask(protocol, "c1", {"type": "import_graph", "data": workflow})
    assert time.perf_counter() - started < 5
    assert reply["type"] == "error" and reply["code"] == "invalid_graph", reply
    assert f"more than {MAX_EXPANDED_WORKFLOW_BYTES // 2**20} MiB of JSON text" in reply["message"]
    # within the byte cap a workflow still imports, with its copies
    reply = _ask(protocol, "c1", {"type": "import_graph", "data": _nested_workflow(2, 3, 1000)})
    assert reply["type"] == "imported_graph" and len(reply["graph"]["nodes"]) == 9


def test_an_imported_graph_past_the_message_limit_is_refused_saying_which_limit(tmp_path):
    """Within the expansion caps a graph can still be larger than the server takes back as a `submit`: it is not
    sent (the editor could never run it), and the error names the limit."""
    protocol = _protocol(tmp_path)
    protocol.max_message_bytes = 200_000            # the shell's --max-message-bytes
    _greeted(protocol, "c1")
    reply = _ask(protocol, "c1", {"type": "import_graph", "data": _nested_workflow(2, 4, 20_000)})   # ~320 KB
    assert reply["type"] == "error" and reply["code"] == "invalid_graph", reply
    assert "--max-message-bytes" in reply["message"] and "over 0.19 MiB" in reply["message"], reply["message"]
    protocol.max_message_bytes = 16 * 2**20
    assert _ask(protocol, "c1", {"type": "import_graph",
                                 "data": _nested_workflow(2, 4, 20_000)})["type"] == "imported_graph"


# --- 2. a result written whole to be measured --------------------------------------------------------------------

def test_a_result_past_the_budget_is_not_written_out_to_be_measured(monkeypatch):
    """1,000 node ids each showing one cached 1 MiB text: `json.dumps(result)` built 978 MiB before the budget
    was looked at. The size is counted up to what is left; past it the result keeps its note per output."""
    shared = "x" * 2**20
    result = {"outputs": {f"top/u{i}/show": {"value": shared} for i in range(1000)}, "files": [],
              "executed": [f"top/u{i}/show" for i in range(1000)], "cached": []}
    written = []
    real_dumps = json.dumps

    def dumps(value, *args, **kwargs):
        text = real_dumps(value, *args, **kwargs)
        written.append(len(text))
        return text

    monkeypatch.setattr(json, "dumps", dumps)
    budget = OutputBudget(20 * 2**20, "alice")
    stored = ServerProtocol.result_within(result, budget)
    assert max(written, default=0) < 2 * 2**20, "the result was written whole to measure it"
    note = stored["outputs"]["top/u0/show"]["not_stored"]
    assert "over 20.0 MiB as text" in note and "alice's storage limit" in note
    assert stored["executed"] == [] and stored["executed_count"] == 1000
    small = {"outputs": {"show": {"value": "ok"}}, "executed": ["show"], "cached": []}
    assert ServerProtocol.result_within(small, budget) is small        # what fits is stored whole, and counted
    assert budget.left < 20 * 2**20


# --- 3. import_graph checked files against the shared input folder ------------------------------------------------

def test_import_graph_checks_files_in_the_users_own_folder_and_shows_no_server_paths(tmp_path):
    """alice could tell whether bob had uploaded 'secret_plans.png' (no error for 'bob/secret_plans.png'), learn
    every user's name from the folder listing, and read the embeddings folders' absolute paths; her own upload
    was 'no file'. import_graph now checks as submit does, for her."""
    book = UserBook(path=tmp_path / "users.json")
    book.add(User("alice"))
    book.add(User("bob"))
    protocol = _protocol(tmp_path, book)
    (tmp_path / "in" / "bob").mkdir(parents=True)
    (tmp_path / "in" / "alice").mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "in" / "bob" / "secret_plans.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "in" / "alice" / "photo.png")
    _greeted(protocol, "a", book.get("alice"))

    def errors_for(node: str, name: str, value: str) -> list[str]:
        prompt = {"1": {"class_type": node, "inputs": {name: value}},
                  "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
        reply = _ask(protocol, "a", {"type": "import_graph", "data": prompt})
        assert reply["type"] == "imported_graph", reply
        return [e["message"] for e in reply["errors"] if e.get("node_id") == "1"]

    assert errors_for("LoadImage", "image", "photo.png") == []              # her own upload
    probe = errors_for("LoadImage", "image", "bob/secret_plans.png")
    assert probe and "no file" in probe[0]                                  # bob's file: as missing as any
    other = errors_for("LoadImage", "image", "bob/other.png")
    assert "bob/" not in other[0].replace("'bob/other.png'", "") and "'alice/'" not in other[0], other
    assert errors_for("ImageFolderDataset", "folder", "bob")                # no user names either
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_world.safetensors"}},
              "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "embedding:nosuch"}}}
    reply = _ask(protocol, "a", {"type": "import_graph", "data": prompt})
    text = json.dumps(reply["errors"])
    shown = text.replace("<nodegraph>/models/embeddings", "")        # the install's folder, as messages show it
    assert "embedding" in text and str(tmp_path) not in text and "/models/embeddings" not in shown, text


# --- 4. a 2 KB submit that costs 15 s to check ---------------------------------------------------------------------

def _nested_definitions(levels: int, fan: int, leaf_nodes: int) -> dict:
    subgraphs = {"L0": {"nodes": {f"n{i}": {"type": "String", "inputs": {"value": ""}} for i in range(leaf_nodes)},
                        "outputs": {"out": {"node": "n0", "output": "value"}}}}
    for level in range(1, levels + 1):
        subgraphs[f"L{level}"] = {"nodes": {f"u{i}": {"type": f"subgraph:L{level - 1}"} for i in range(fan)},
                                  "outputs": {"out": {"node": "u0", "output": "out"}}}
    return {"format_version": 2, "subgraphs": subgraphs,
            "nodes": {"top": {"type": f"subgraph:L{levels}"},
                      "show": {"type": "ShowValue", "inputs": {"value": {"node": "top", "output": "out"}}}}}


def test_the_expansion_cap_refuses_what_took_seconds_to_check():
    """4 levels × 10 uses × 19 nodes: 190,000 nodes under the former 200,000 cap, 15 s of a shared server's CPU
    for a 2.2 KB submit. The cap is what real graphs need: 50,000 (about a second to check)."""
    assert MAX_EXPANDED_NODES == 50_000
    session = Session()
    errors = session.validate(_nested_definitions(4, 10, 19))
    assert [e.code for e in errors] == ["subgraph_too_large"] and "over 50,000 nodes" in errors[0].message
    assert session.validate(_nested_definitions(2, 10, 10)) == []


# --- 5. messages ----------------------------------------------------------------------------------------------------

def test_a_token_that_expands_past_the_inputs_length_is_named():
    """`%String.value%` (14 characters) expanding to 300 was "String should have at most 120 characters; found
    'aaaa…'", which named neither the token nor the expansion."""
    graph = {"format_version": 2, "nodes": {
        "s": {"type": "String", "inputs": {"value": "a" * 300}},
        "c": {"type": "HexColor", "inputs": {}},
        "sw": {"type": "ColorSwatch", "inputs": {"color": {"node": "c", "output": "color"}, "width": 8,
                                                 "height": 8}},
        "save": {"type": "SaveImage", "inputs": {"images": {"node": "sw", "output": "image"},
                                                 "filename_prefix": "%String.value%"}}}}
    errors = [e for e in Session().validate(graph) if e.node_id == "save"]     # (no plugins: sw is unknown)
    assert len(errors) == 1, errors                         # one error, about the token (none about its result)
    assert "'%String.value%' expand it to 300 characters" in errors[0].message
    assert "longer than the 120 characters" in errors[0].message


def test_an_a1111_size_too_large_is_not_called_another_form():
    from nodegraph.a1111 import parameters_graph

    graph = parameters_graph("x\nSteps: 4, Size: 99999999999x99999999999, Seed: 1")
    untranslated = graph["metadata"]["a1111_untranslated"]
    assert any("99999999999x99999999999 (too large" in item for item in untranslated), untranslated
    assert not any("not WIDTHxHEIGHT" in item for item in untranslated)
