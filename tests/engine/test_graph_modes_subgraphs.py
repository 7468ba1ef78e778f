"""Format version 2: bypass and mute, subgraphs (expansion, caching, nesting, errors), migration, foreign files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from nodegraph import FORMAT_VERSION, GraphValidationError, Session, parse_graph
from nodegraph.effective_graph import effective_graph, subgraph_interface
from nodegraph.graph import MIGRATIONS, foreign_format, import_foreign

from . import helpers
from .helpers import chain, link

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def session() -> Session:
    helpers.CALLS.clear()
    helpers.PROBES.clear()
    return Session(plugins=[helpers])


def codes(errors) -> list[str]:
    return [e.code for e in errors]


def square_plus_graph(x: int = 6, k: int | None = 1) -> dict:
    """`show` ← subgraph square_plus(x, k) = x*x + k, with x from an Int node."""
    inputs: dict = {"x": link("a", "value")}
    if k is not None:
        inputs["k"] = k
    return {
        "format_version": 2,
        "nodes": {
            "a": {"type": "Int", "inputs": {"value": x}},
            "sq": {"type": "subgraph:square_plus", "title": "x² + k", "inputs": inputs},
            "show": {"type": "ShowValue", "inputs": {"value": link("sq", "result")}},
        },
        "subgraphs": {
            "square_plus": {
                "metadata": {"title": "Square plus"},
                "inputs": {"x": {}, "k": {"default": 0}},
                "outputs": {"result": {"node": "add", "output": "result"}},
                "nodes": {
                    "mul": {"type": "IntMath", "inputs": {"a": link("$inputs", "x"), "b": link("$inputs", "x"),
                                                          "op": "multiply"}},
                    "add": {"type": "IntMath", "inputs": {"a": link("mul", "result"), "b": link("$inputs", "k"),
                                                          "op": "add"}},
                },
                "ui": {"nodes": {"mul": {"position": [0, 0]}}},
            }
        },
        "ui": {"groups": [{"id": "g1", "title": "Maths", "color": "#335577", "bounds": [0, 0, 400, 200]}],
               "reroutes": [{"id": "r1", "position": [120, 40], "to": {"node": "show", "input": "value"}}]},
    }


# --- bypass -------------------------------------------------------------------

def test_bypass_passes_the_first_matching_input_through(session):
    """A bypassed Counter passes its INT input x to its INT output y, and does not run."""
    graph = chain(3)
    graph["nodes"]["c1"]["mode"] = "bypass"
    result = session.run(graph)
    assert result.outputs["show"]["value"] == 2          # c0 → (c1 bypassed) → c2: 1 + 1
    assert "c1" not in result.executed and helpers.CALLS == ["c0", "c2"]


def test_bypass_passes_the_input_in_the_outputs_own_slot_first():
    """A bypassed ApplyControlNet (inputs positive, negative, …; outputs positive, negative) gave BOTH outputs the
    positive prompt ("first matching input"): CFG between two equal prompts does nothing, silently (a ComfyUI
    migrant's pass, comparing with ComfyUI, which tries the input in the output's slot first)."""
    graph = parse_graph({"format_version": 2, "nodes": {
        "load": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world_v6f.safetensors"}},
        "pos": {"type": "EncodeText", "inputs": {"text_encoder": link("load", "text_encoder"), "text": "a"}},
        "neg": {"type": "EncodeText", "inputs": {"text_encoder": link("load", "text_encoder"), "text": ""}},
        "cn": {"type": "ApplyControlNet", "mode": "bypass", "inputs": {
            "positive": link("pos", "conditioning"), "negative": link("neg", "conditioning"), "strength": 1.0}},
        "show": {"type": "ShowValue", "inputs": {"value": link("cn", "negative")}},
        "show2": {"type": "ShowValue", "inputs": {"value": link("cn", "positive")}}}})
    plain = effective_graph(graph, Session(builtins=True).registry).graph
    assert plain.nodes["show"].inputs["value"].node == "neg" and plain.nodes["show2"].inputs["value"].node == "pos"


def test_bypass_chains_resolve_transitively(session):
    """Consecutive bypassed nodes pass the value straight through all of them."""
    graph = chain(5)
    for nid in ("c1", "c2", "c3"):
        graph["nodes"][nid]["mode"] = "bypass"
    assert session.run(graph).outputs["show"]["value"] == 2


def test_bypass_without_a_matching_input_is_a_validation_error_naming_the_node(session):
    """A used output with no linked input of its port type is bypass_no_match on the bypassed node."""
    graph = {"format_version": 2, "nodes": {
        "s": {"type": "String", "inputs": {"value": "hi"}},
        "c": {"type": "Counter", "mode": "bypass", "inputs": {"tag": link("s", "value")}},
        "show": {"type": "ShowValue", "inputs": {"value": link("c", "y")}}}}
    errors = session.validate(graph)
    assert codes(errors) == ["bypass_no_match"]
    assert errors[0].node_id == "c" and errors[0].details["output"] == "y" and errors[0].details["port"] == "INT"
    assert errors[0].details["inputs"] == [{"input": "tag", "port": "STRING"}]
    with pytest.raises(GraphValidationError):
        session.run(graph)


def test_bypass_of_an_unused_output_needs_no_match(session):
    """A bypassed node whose outputs nobody links is simply left out, without error."""
    graph = chain(2)
    graph["nodes"]["spare"] = {"type": "Counter", "mode": "bypass", "inputs": {}}
    assert session.validate(graph) == []
    assert session.run(graph).outputs["show"]["value"] == 2


def test_bypass_never_passes_literals_and_requires_exact_port_types(session):
    """A literal input is not a pass-through candidate, even when its port matches."""
    graph = {"format_version": 2, "nodes": {
        "c": {"type": "Counter", "mode": "bypass", "inputs": {"x": 5}},
        "show": {"type": "ShowValue", "inputs": {"value": link("c", "y")}}}}
    assert codes(session.validate(graph)) == ["bypass_no_match"]


# --- mute ---------------------------------------------------------------------

def test_mute_skips_the_node_and_its_dependents_without_failing(session):
    """Muting c1 skips c1, c2 and the show node that depend on it; another output still runs."""
    graph = chain(3)
    graph["nodes"]["c1"]["mode"] = "mute"
    graph["nodes"]["other"] = {"type": "ShowValue", "inputs": {"value": link("c0", "y")}}
    events = []
    result = session.run(graph, on_event=events.append)
    assert result.skipped == ["c1", "c2", "show"]
    assert result.executed == ["c0", "other"]
    assert result.outputs["other"]["value"] == 1
    started = next(e for e in events if e.type == "run_started")
    assert started.skipped == ("c1", "c2", "show") and list(started.to_dict()["skipped"]) == ["c1", "c2", "show"]


def test_a_muted_broken_node_does_not_block_the_run(session):
    """A muted node with an unknown type and bad inputs is not validated: the rest runs."""
    graph = chain(2)
    graph["nodes"]["broken"] = {"type": "NoSuchNode", "mode": "mute", "inputs": {"zzz": 1}}
    assert session.validate(graph) == []
    assert session.run(graph).outputs["show"]["value"] == 2


def test_muting_every_output_is_no_outputs(session):
    """When muting leaves no output node, validation says no_outputs as usual."""
    graph = chain(2)
    graph["nodes"]["c0"]["mode"] = "mute"
    assert codes(session.validate(graph)) == ["no_outputs"]


def test_modes_round_trip_and_bad_modes_are_refused():
    """`mode` is saved back as written; an unknown mode is invalid_format naming the node."""
    graph = chain(2)
    graph["nodes"]["c0"]["mode"] = "bypass"
    graph["format_version"] = 2
    assert parse_graph(graph).to_dict() == graph
    graph["nodes"]["c0"]["mode"] = "off"
    with pytest.raises(GraphValidationError) as info:
        parse_graph(graph)
    assert codes(info.value.errors) == ["invalid_format"] and info.value.errors[0].node_id == "c0"


# --- subgraphs ----------------------------------------------------------------

def test_subgraph_runs_with_namespaced_inner_nodes(session):
    """A subgraph node computes x*x + k through its inner nodes, reported as sq/mul and sq/add."""
    result = session.run(square_plus_graph(6, 1))
    assert result.outputs["show"]["value"] == 37
    assert result.executed == ["a", "sq/mul", "sq/add", "show"]


def test_subgraph_input_default_applies_when_the_outer_node_gives_none(session):
    """An exposed input left out on the outer node takes the definition's default."""
    assert session.run(square_plus_graph(4, None)).outputs["show"]["value"] == 16


def test_subgraph_inner_nodes_are_cached_like_any_other(session):
    """Re-running with a changed outer literal k re-runs only sq/add and what follows."""
    session.run(square_plus_graph(6, 1))
    result = session.run(square_plus_graph(6, 2))
    assert result.executed == ["sq/add", "show"]
    assert result.cached == ["sq/mul"]
    assert result.outputs["show"]["value"] == 38


def test_two_uses_of_one_subgraph_with_equal_inputs_compute_once(session):
    """Content-addressed keys: a second use of the same subgraph on the same input is a cache hit."""
    graph = square_plus_graph(3, 1)
    graph["nodes"]["sq2"] = copy.deepcopy(graph["nodes"]["sq"])
    graph["nodes"]["show2"] = {"type": "ShowValue", "inputs": {"value": link("sq2", "result")}}
    result = session.run(graph)
    assert result.outputs["show"]["value"] == result.outputs["show2"]["value"] == 10
    inner_runs = [n for n in result.executed if "/" in n]
    assert sorted(n.split("/")[1] for n in inner_runs) == ["add", "mul"]     # one copy ran, not both
    assert len(result.executed) == 4                                          # a, one mul, one add, one show


def test_nested_subgraphs_expand_with_paths(session):
    """A definition that uses another expands to a/b/c ids and computes through both levels."""
    graph = square_plus_graph(2, 0)
    graph["subgraphs"]["twice"] = {
        "inputs": {"v": {}},
        "outputs": {"result": {"node": "second", "output": "result"}},
        "nodes": {"first": {"type": "subgraph:square_plus", "inputs": {"x": link("$inputs", "v")}},
                  "second": {"type": "subgraph:square_plus", "inputs": {"x": link("first", "result")}}}}
    graph["nodes"]["sq"] = {"type": "subgraph:twice", "inputs": {"v": link("a", "value")}}
    result = session.run(graph)
    assert result.outputs["show"]["value"] == 16            # (2²)² with k = 0
    assert "sq/first/mul" in result.executed and "sq/second/add" in result.executed


def test_cycles_between_definitions_are_refused(session):
    """A uses B uses A is subgraph_cycle naming the chain, not a hang or a recursion error."""
    graph = {"format_version": 2, "nodes": {
        "n": {"type": "subgraph:A", "inputs": {}},
        "show": {"type": "ShowValue", "inputs": {"value": link("n", "out")}}},
        "subgraphs": {
            "A": {"outputs": {"out": {"node": "b", "output": "out"}}, "nodes": {"b": {"type": "subgraph:B", "inputs": {}}}},
            "B": {"outputs": {"out": {"node": "a", "output": "out"}}, "nodes": {"a": {"type": "subgraph:A", "inputs": {}}}},
        }}
    errors = session.validate(graph)
    assert "subgraph_cycle" in codes(errors)
    cycle = next(e for e in errors if e.code == "subgraph_cycle")
    assert cycle.details["chain"] == ["A", "B", "A"]
    assert cycle.node_id == "n/b/a" and cycle.details["path"] == ["n", "b", "a"]
    assert "unknown_node_type" not in codes(errors)


def test_errors_inside_a_subgraph_name_the_path(session):
    """An out-of-range literal on an inner node names outer node → inner node."""
    graph = square_plus_graph()
    graph["subgraphs"]["square_plus"]["nodes"]["mul"]["inputs"]["op"] = "power-of"
    errors = session.validate(graph)
    assert codes(errors) == ["not_in_choices"]
    assert errors[0].node_id == "sq/mul" and errors[0].details["path"] == ["sq", "mul"]
    assert errors[0].message.startswith("in subgraph square_plus (node sq → mul):")


def test_exposed_ports_are_typed_from_inner_nodes():
    """Exposed inputs take the port of the inner inputs that read them; outputs the inner output's port."""
    session = Session()
    graph = parse_graph(square_plus_graph())
    interface = subgraph_interface(graph, "square_plus", session.registry)
    assert interface.inputs == (("x", "INT"), ("k", "INT"))
    assert interface.outputs == (("result", "INT"),)


def test_exposed_input_feeding_two_port_types_is_a_conflict(session):
    """One exposed input read by an INT and a STRING input is subgraph_port_conflict."""
    graph = square_plus_graph()
    graph["subgraphs"]["square_plus"]["nodes"]["txt"] = {"type": "String", "inputs": {"value": link("$inputs", "x")}}
    errors = session.validate(graph)
    assert "subgraph_port_conflict" in codes(errors)
    conflict = next(e for e in errors if e.code == "subgraph_port_conflict")
    assert conflict.details["ports"] == ["INT", "STRING"] and conflict.node_id == "sq"


def test_missing_and_unknown_exposed_inputs_are_reported_on_the_outer_node(session):
    """No value and no default is missing_input on the outer node; an undeclared input is unknown_input."""
    graph = square_plus_graph()
    del graph["nodes"]["sq"]["inputs"]["x"]
    graph["nodes"]["sq"]["inputs"]["y"] = 3
    errors = session.validate(graph)
    assert sorted((e.code, e.node_id, e.input) for e in errors) == [
        ("missing_input", "sq", "x"), ("unknown_input", "sq", "y")]


def test_a_missing_definition_is_an_unknown_type_listing_definitions(session):
    """subgraph:nope without a definition is unknown_node_type saying which definitions exist."""
    graph = square_plus_graph()
    graph["nodes"]["sq"]["type"] = "subgraph:nope"
    errors = session.validate(graph)
    assert codes(errors) == ["unknown_node_type"]
    assert "'square_plus'" in errors[0].message and errors[0].details["subgraph"] == "nope"


def test_bypassed_and_muted_subgraph_nodes(session):
    """A bypassed subgraph node passes its INT input through; a muted one is one muted node (not expanded)."""
    graph = square_plus_graph(5, 1)
    graph["nodes"]["sq"]["mode"] = "bypass"
    assert session.run(graph).outputs["show"]["value"] == 5
    graph["nodes"]["sq"]["mode"] = "mute"
    graph["nodes"]["other"] = {"type": "ShowValue", "inputs": {"value": link("a", "value")}}
    result = session.run(graph)
    assert result.skipped == ["sq", "show"]


def test_a_muted_subgraph_node_is_left_out_of_validation_as_any_muted_node(session):
    """Muting a broken subgraph node is how a user runs the rest of the graph: its missing or unknown exposed
    inputs, and a definition that uses itself, failed the whole run."""
    graph = square_plus_graph(5, 1)
    graph["nodes"]["sq"]["inputs"] = {"nope": 1}                        # unknown, and 'x' missing
    graph["subgraphs"]["square_plus"]["nodes"]["self"] = {"type": "subgraph:square_plus", "inputs": {}}
    graph["nodes"]["other"] = {"type": "ShowValue", "inputs": {"value": link("a", "value")}}
    assert {e.code for e in session.validate(graph)} >= {"unknown_input", "subgraph_cycle"}
    graph["nodes"]["sq"]["mode"] = "mute"
    assert session.validate(graph) == []
    assert session.run(graph).outputs["other"]["value"] == 5


def test_subgraph_file_round_trips_unchanged():
    """Definitions, modes, groups and reroutes save back exactly as loaded."""
    graph = square_plus_graph()
    graph["nodes"]["a"]["mode"] = "mute"
    assert parse_graph(json.dumps(graph)).to_dict() == graph


def test_subgraph_definition_format_errors_name_the_definition():
    """Unknown keys, a reserved $inputs node and a bad exposed output are invalid_format naming the subgraph."""
    graph = square_plus_graph()
    body = graph["subgraphs"]["square_plus"]
    body["extra"] = 1
    body["nodes"]["$inputs"] = {"type": "Int", "inputs": {}}
    body["outputs"]["bad"] = {"node": 3}
    with pytest.raises(GraphValidationError) as info:
        parse_graph(graph)
    errors = info.value.errors
    assert codes(errors) == ["invalid_format"] * 3
    assert all(e.details["subgraph"] == "square_plus" for e in errors)


def test_expanded_id_collision_is_reported(session):
    """A top-level node id equal to an expanded inner id is invalid_format, not a silent overwrite."""
    graph = square_plus_graph()
    graph["nodes"]["sq/mul"] = {"type": "Int", "inputs": {}}
    assert "invalid_format" in codes(session.validate(graph))


def test_effective_graph_of_a_plain_graph_is_the_graph_itself(session):
    """A graph without modes or subgraphs skips expansion entirely (no copy, no cost)."""
    graph = parse_graph(chain(3))
    assert effective_graph(graph, session.registry).graph is graph


# --- versions, unknown types, foreign files -----------------------------------

def test_v1_files_migrate_to_v2_unchanged_but_for_the_number():
    """Every shipped graph (version 1) loads, and saves as version 2 with nothing else changed."""
    assert FORMAT_VERSION == 2 and set(MIGRATIONS) == {0, 1}
    for path in sorted((ROOT / "graphs").glob("*.json")):
        original = json.loads(path.read_text())
        saved = parse_graph(path.read_bytes()).to_dict()
        assert {**original, "format_version": FORMAT_VERSION} == saved, path.name


def test_v1_graph_runs_exactly_as_before(session):
    """A version-1 chain gives the same result and executed list as ever."""
    result = session.run(chain(4))
    assert result.outputs["show"]["value"] == 4 and result.skipped == []


def test_unknown_node_types_round_trip_and_are_named_on_validate(session):
    """A node of an unknown type keeps its type, inputs, title and mode through load → save."""
    graph = chain(2)
    graph["format_version"] = 2
    graph["nodes"]["alien"] = {"type": "OtherTool.Sharpen", "title": "Sharpen", "mode": "bypass",
                               "inputs": {"radius": 2.5, "image": link("c0", "y"), "opts": {"a": [1, 2]}}}
    assert parse_graph(json.dumps(graph)).to_dict() == graph
    errors = session.validate(graph)
    assert [(e.code, e.node_id, e.details["type"]) for e in errors] == [
        ("unknown_node_type", "alien", "OtherTool.Sharpen")]


def test_comfyui_files_are_recognised_and_api_prompts_import():
    """A ComfyUI workflow or API prompt is foreign_format naming the tool; both convert with their data."""
    prompt = {"3": {"class_type": "KSampler", "inputs": {"seed": 5, "model": ["4", 0], "cfg": 7.5},
                    "_meta": {"title": "Sampler"}},
              "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x.safetensors"}}}
    workflow = {"last_node_id": 2, "nodes": [{"id": 1, "type": "KSampler", "widgets_values": [5]}],
                "links": [], "version": 0.4}
    assert foreign_format(prompt) == ("comfyui", "api") and foreign_format(workflow) == ("comfyui", "workflow")
    for data, kind in ((prompt, "api"), (workflow, "workflow")):
        with pytest.raises(GraphValidationError) as info:
            parse_graph(json.dumps(data))
        assert codes(info.value.errors) == ["foreign_format"]
        assert info.value.errors[0].details == {"tool": "comfyui", "format": kind}
    prompt["5"] = {"class_type": "MyLoader", "inputs": {}}
    prompt["3"]["inputs"]["vae"] = ["5", 2]
    imported = parse_graph(import_foreign(prompt, lambda t: ["A", "B", "C"] if t == "MyLoader" else None))
    node = imported.nodes["3"]
    assert node.type == "KSampler" and node.title == "Sampler" and node.inputs["cfg"] == 7.5
    assert node.inputs["model"].node == "4" and node.inputs["model"].output == "model"   # our LoadCheckpoint's
    assert imported.nodes["4"].type == "LoadCheckpoint" and node.inputs["vae"].output == "C"   # output_names'
    assert imported.nodes["5"].type == "MyLoader"
    converted = import_foreign(workflow)           # a UI workflow: its widget values named by position
    assert converted["nodes"]["1"] == {"type": "KSampler", "inputs": {"seed": 5}}
    assert converted["metadata"]["imported_from"] == "comfyui-workflow" and "ui" not in converted
    workflow["nodes"][0].update(pos=[120.4, -30], widgets_values=[5, "randomize", 8])    # its canvas position
    converted = import_foreign(workflow)
    assert converted["ui"] == {"nodes": {"1": {"position": [120, -30],             # its "control after generate":
                                               "seed_modes": {"seed": "randomize"}}}}   # the editor's seed mode
    assert converted["nodes"]["1"]["inputs"] == {"seed": 5, "steps": 8}


def test_parse_errors_give_line_and_column():
    """A graph that fails to parse reports invalid_json with 1-based line and column."""
    with pytest.raises(GraphValidationError) as info:
        parse_graph('{"format_version": 2,\n  "nodes": {,}}')
    error = info.value.errors[0]
    assert error.code == "invalid_json" and error.details == {"line": 2, "column": 13}


def test_file_schema_accepts_version_2_features():
    """The published JSON Schema accepts modes and subgraph definitions and refuses an unknown mode."""
    import jsonschema

    from nodegraph.graph import graph_file_schema

    schema = graph_file_schema()
    graph = square_plus_graph()
    graph["nodes"]["a"]["mode"] = "bypass"
    jsonschema.validate(graph, schema)
    graph["nodes"]["a"]["mode"] = None          # the loader reads null as "run"; so does the schema
    jsonschema.validate(graph, schema)
    graph["nodes"]["a"]["mode"] = "off"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(graph, schema)


def test_ray_placement_needs_come_from_the_effective_graph(session):
    """A Ray worker is chosen by the node types a run really has: inner nodes, not subgraph:<name>."""
    from nodegraph.distributed.pool import needs_for

    graph = parse_graph(square_plus_graph())
    needs = needs_for(session.registry, graph)
    assert set(needs.node_types) == {"primitives.Int", "primitives.IntMath", "primitives.ShowValue"}


def test_bypass_inside_a_subgraph_passes_the_exposed_input_through(session):
    """A bypassed inner node passes the outer node's linked value through, as at top level."""
    graph = square_plus_graph(7, 1)
    graph["subgraphs"]["square_plus"]["nodes"]["mul"]["mode"] = "bypass"
    result = session.run(graph)
    assert result.outputs["show"]["value"] == 8          # mul passes x (7) through; + k (1)
    assert "sq/mul" not in result.executed


def test_bypass_whose_source_is_muted_skips_the_consumer(session):
    """A value passed through a bypassed node from a muted node is skipped downstream, not failed."""
    graph = chain(4)
    graph["nodes"]["c0"]["mode"] = "mute"
    graph["nodes"]["c1"]["mode"] = "bypass"
    graph["nodes"]["five"] = {"type": "Int", "inputs": {"value": 5}}
    graph["nodes"]["other"] = {"type": "ShowValue", "inputs": {"value": link("five", "value")}}
    result = session.run(graph)
    assert result.skipped == ["c0", "c2", "c3", "show"] and result.executed == ["five", "other"]


def test_output_nodes_inside_a_subgraph_run_as_outputs(session):
    """A ShowValue inside a definition is an output of the run, under its expanded id."""
    graph = square_plus_graph(3, 0)
    graph["subgraphs"]["square_plus"]["nodes"]["peek"] = {
        "type": "ShowValue", "inputs": {"value": link("mul", "result")}}
    result = session.run(graph)
    assert result.outputs["sq/peek"]["value"] == 9 and result.outputs["show"]["value"] == 9


def test_nested_error_paths_name_every_level(session):
    """An error two levels down names both subgraphs and the whole path of node ids."""
    graph = square_plus_graph()
    graph["subgraphs"]["outer"] = {"inputs": {"v": {}}, "outputs": {"result": {"node": "inner", "output": "result"}},
                                   "nodes": {"inner": {"type": "subgraph:square_plus",
                                                       "inputs": {"x": link("$inputs", "v")}}}}
    graph["subgraphs"]["square_plus"]["nodes"]["add"]["inputs"]["op"] = "nope"
    graph["nodes"]["sq"] = {"type": "subgraph:outer", "inputs": {"v": link("a", "value")}}
    (error,) = session.validate(graph)
    assert error.node_id == "sq/inner/add" and error.details["path"] == ["sq", "inner", "add"]
    assert error.message.startswith("in subgraph outer > square_plus (node sq → inner → add):")


def test_a_bypass_mismatch_used_only_by_skipped_nodes_is_no_error(session):
    """bypass_no_match counts only for kept consumers: a muted consumer makes it harmless."""
    graph = {"format_version": 2, "nodes": {
        "s": {"type": "String", "inputs": {"value": "hi"}},
        "c": {"type": "Counter", "mode": "bypass", "inputs": {"tag": link("s", "value")}},
        "use": {"type": "ShowValue", "mode": "mute", "inputs": {"value": link("c", "y")}},
        "show": {"type": "ShowValue", "inputs": {"value": link("s", "value")}}}}
    assert session.validate(graph) == []
    assert session.run(graph).outputs["show"]["value"] == "hi"


def _doubling_definitions(levels: int) -> dict:
    """L0 uses L1 twice, L1 uses L2 twice, ...: a few KB that expand to 2^levels nodes."""
    subgraphs = {f"L{i}": {"nodes": {"a": {"type": f"subgraph:L{i + 1}", "inputs": {}},
                                     "b": {"type": f"subgraph:L{i + 1}", "inputs": {}}}} for i in range(levels)}
    subgraphs[f"L{levels}"] = {"nodes": {"m": {"type": "IntMath", "inputs": {"a": 1, "b": 2}}}}
    return {"format_version": 2, "subgraphs": subgraphs,
            "nodes": {"top": {"type": "subgraph:L0", "inputs": {}}, "one": {"type": "Int", "inputs": {"value": 1}},
                      "show": {"type": "ShowValue", "inputs": {"value": link("one", "value")}}}}


def _nested_definitions(depth: int) -> dict:
    subgraphs = {f"L{i}": {"nodes": {"n": {"type": f"subgraph:L{i + 1}", "inputs": {}}}} for i in range(depth)}
    subgraphs[f"L{depth}"] = {"nodes": {"m": {"type": "IntMath", "inputs": {"a": 1, "b": 2}}}}
    return {"format_version": 2, "subgraphs": subgraphs,
            "nodes": {"top": {"type": "subgraph:L0", "inputs": {}}, "one": {"type": "Int", "inputs": {"value": 1}},
                      "show": {"type": "ShowValue", "inputs": {"value": link("one", "value")}}}}


@pytest.mark.parametrize(("graph", "words"), [
    (_doubling_definitions(40), "over 50,000 nodes once its subgraphs are expanded"),
    (_nested_definitions(1000), "levels deep (at most 64)"),
])
def test_expansion_bombs_and_deep_nesting_are_refused_before_expanding(session, graph, words):
    """A stranger's 10 KB file of doubling definitions took the server's event loop and its memory (2^40 nodes);
    1000 nested definitions crashed validation with a RecursionError. Both are one structured error now."""
    errors = session.validate(graph)
    assert [e.code for e in errors] == ["subgraph_too_large"] and words in errors[0].message
    with pytest.raises(GraphValidationError):
        session.run(graph)


def test_expansion_within_the_limits_still_runs(session):
    assert session.validate(_doubling_definitions(10)) == []      # 1024 copies of the inner node
    assert session.validate(_nested_definitions(60)) == []


def test_a_long_bypass_chain_read_at_every_link_resolves_each_link_once(session):
    """Each of N bypassed IntMath nodes is also read by a consumer: resolving walked the chain again per link
    (16.8 s for 10 000). The memo gives every consumer the chain's head."""
    n = 3000
    nodes = {"src": {"type": "Int", "inputs": {"value": 7}}}
    previous = "src"
    for i in range(n):
        nodes[f"b{i}"] = {"type": "IntMath", "mode": "bypass", "inputs": {"a": link(previous, "value" if i == 0
                                                                                    else "result"), "b": 1}}
        previous = f"b{i}"
    nodes["show"] = {"type": "ShowValue", "inputs": {"value": link(previous, "result")}}
    result = session.run({"format_version": 2, "nodes": nodes})
    assert result.outputs["show"]["value"] == 7


def test_a_link_or_override_into_a_subgraphs_inner_node_is_refused(session):
    """`{"node": "sq/mul"}` from outside validated and ran: outer graphs coupled to a definition's inner ids."""
    graph = square_plus_graph()
    graph["nodes"]["show"]["inputs"]["value"] = link("sq/mul", "result")
    errors = session.validate(graph)
    assert [(e.code, e.node_id, e.input) for e in errors] == [("dangling_link", "show", "value")]
    assert "exposed output" in errors[0].message
    with pytest.raises(GraphValidationError):
        session.run(square_plus_graph(), overrides={"show.value": {"node": "sq/mul", "output": "result"}})
    assert session.run(square_plus_graph()).outputs["show"]["value"] == 37


def test_no_outputs_says_when_the_output_nodes_are_muted(session):
    """The graph has an output node; it is muted: the message said "add one"."""
    graph = {"format_version": 2, "nodes": {"a": {"type": "Int", "inputs": {"value": 1}},
                                            "s": {"type": "ShowValue", "mode": "mute",
                                                  "inputs": {"value": link("a", "value")}}}}
    errors = session.validate(graph)
    assert [e.code for e in errors] == ["no_outputs"] and "muted" in errors[0].message and "'s'" in errors[0].message


def test_a_subgraph_node_can_be_requested_as_an_output(session):
    """Requesting the subgraph node runs its inner output nodes (it was `unknown_node`: 'not a node')."""
    graph = square_plus_graph(3, 1)
    graph["subgraphs"]["square_plus"]["nodes"]["inner_show"] = {"type": "ShowValue",
                                                                "inputs": {"value": link("add", "result")}}
    assert session.validate(graph, outputs=["sq"]) == []
    result = session.run(graph, outputs=["sq"])
    assert list(result.outputs) == ["sq/inner_show"] and result.outputs["sq/inner_show"]["value"] == 10
    plain = square_plus_graph(3, 1)      # no inner output node: what its exposed outputs come from runs
    assert session.validate(plain, outputs=["sq"]) == []
    result = session.run(plain, outputs=["sq"])
    assert list(result.outputs) == ["sq/add"] and result.outputs["sq/add"]["result"] == 10


def test_no_outputs_names_the_muted_node_that_leaves_no_output(session):
    """The refusal listed every skipped node and "unmute one" but not which muted node caused it; it names the
    muted node(s) the output nodes depend on, with their types, and not a muted node that feeds no output."""
    graph = chain(3)
    graph["nodes"]["c1"]["mode"] = "mute"
    graph["nodes"]["aside"] = {"type": "Counter", "mode": "mute", "inputs": {"x": 0}}   # feeds nothing
    (error,) = session.validate(graph)
    assert error.code == "no_outputs"
    assert error.message.startswith("muting 'c1' (Counter) leaves no output to run: ")
    assert "unmute it (Ctrl+M in the editor)" in error.message and "'aside' (" not in error.message
    assert error.details["muted"] == ["c1"] and set(error.details["skipped"]) == {"c1", "aside", "c2", "show"}


def test_no_outputs_names_the_first_few_muted_causes(session):
    """Several muted output branches: the first three causes by type, then how many more, and "unmute one"."""
    nodes = {f"m{i}": {"type": "Counter", "mode": "mute", "inputs": {"x": 0}} for i in range(5)}
    nodes.update({f"s{i}": {"type": "ShowValue", "inputs": {"value": link(f"m{i}", "y")}} for i in range(5)})
    (error,) = session.validate({"format_version": 2, "nodes": nodes})
    assert error.message.startswith("muting 'm0' (Counter), 'm1' (Counter), 'm2' (Counter) and 2 more leaves no "
                                    "output to run: ")
    assert "unmute one (Ctrl+M in the editor)" in error.message
    assert error.details["muted"] == [f"m{i}" for i in range(5)]


def test_a_graph_without_output_nodes_is_not_blamed_on_a_muted_node(session):
    """A muted node in a graph that has no output node at all: the usual "add one", not "unmute"."""
    graph = chain(2, show=False)
    graph["nodes"]["c0"]["mode"] = "mute"
    (error,) = session.validate(graph)
    assert error.code == "no_outputs" and "add one" in error.message and "mut" not in error.message


def test_run_says_what_validate_says_of_muted_output_nodes(session):
    """`run` told the user to add an output node the graph has (muted); it now gives validate's message."""
    from nodegraph.errors import GraphValidationError

    graph = {"format_version": 2, "nodes": {"a": {"type": "Int", "inputs": {"value": 1}},
                                            "s": {"type": "ShowValue", "mode": "mute",
                                                  "inputs": {"value": link("a", "value")}}}}
    with pytest.raises(GraphValidationError) as info:
        session.run(graph)
    assert [e.message for e in info.value.errors] == [e.message for e in session.validate(graph)]
    assert "are muted" in info.value.errors[0].message


def test_a_muted_requested_output_is_named_as_muted(session):
    """It was "not a node in the graph"."""
    graph = {"format_version": 2, "nodes": {"a": {"type": "Int", "inputs": {"value": 1}},
                                            "s": {"type": "ShowValue", "mode": "mute",
                                                  "inputs": {"value": link("a", "value")}},
                                            "t": {"type": "ShowValue", "inputs": {"value": link("a", "value")}}}}
    errors = session.validate(graph, outputs=["s"])
    assert [(e.code, e.node_id) for e in errors] == [("unknown_node", "s")] and "is muted" in errors[0].message


def test_no_outputs_says_when_the_output_nodes_are_bypassed(session):
    """A bypassed output node does not run; `no_outputs` names it and the fix instead of 'no output node'."""
    graph = {"format_version": 2, "nodes": {
        "a": {"type": "Int", "inputs": {"value": 3}, "mode": None},
        "s": {"type": "ShowValue", "inputs": {"value": {"node": "a", "output": "value"}}, "mode": "bypass"}}}
    (error,) = session.validate(graph)
    assert error.code == "no_outputs" and "bypassed" in error.message and "'s'" in error.message
    assert "un-bypass" in error.message and error.details == {"skipped": [], "bypassed": ["s"], "muted": []}


def test_a_bad_value_for_an_exposed_input_is_reported_where_it_was_written(session):
    """`k: "abc"` on the subgraph node was reported on inner node sq/add input b, which the user never sees;
    it is on node sq, input k (what the editor highlights), naming the inner input it reached — through two
    levels too. A bad default in a definition stays on the inner node."""
    graph = square_plus_graph(k="abc")
    (error,) = session.validate(graph)
    assert (error.code, error.node_id, error.input) == ("type_mismatch", "sq", "k")
    assert "reaches sq → add" in error.message and "as its input 'b'" in error.message
    assert error.details["inner_node"] == "sq/add" and error.details["path"] == ["sq", "add"]

    nested = square_plus_graph()
    nested["subgraphs"]["outer"] = {"inputs": {"k2": {}}, "outputs": {"result": {"node": "in", "output": "result"}},
                                    "nodes": {"seed": {"type": "Int", "inputs": {"value": 2}},
                                              "in": {"type": "subgraph:square_plus",
                                                     "inputs": {"x": link("seed", "value"), "k": link("$inputs", "k2")}}}}
    nested["nodes"]["o"] = {"type": "subgraph:outer", "inputs": {"k2": 10 ** 30}}
    nested["nodes"]["show2"] = {"type": "ShowValue", "inputs": {"value": link("o", "result")}}
    (error,) = session.validate(nested)
    assert (error.node_id, error.input) == ("o", "k2") and "reaches o → in → add" in error.message

    bad_default = square_plus_graph(k=None)
    bad_default["subgraphs"]["square_plus"]["inputs"]["k"] = {"default": "abc"}
    (error,) = session.validate(bad_default)
    assert (error.node_id, error.input) == ("sq/add", "b")


def test_a_cycle_closed_by_an_outer_link_is_named_on_the_outer_nodes():
    """A subgraph node whose output feeds its own input was reported as a cycle inside the definition ("in
    subgraph square_plus: sq/mul → sq/add → sq/mul"), which has none: the outer link closes it, and the error now
    says so on the outer node. A cycle that is in the definition is still reported there."""
    from nodegraph import Session

    definition = {"inputs": {"x": {"default": 2}, "k": {"default": 1}},
                  "nodes": {"mul": {"type": "IntMath", "inputs": {"a": {"node": "$inputs", "output": "x"},
                                                                  "b": {"node": "$inputs", "output": "x"},
                                                                  "op": "multiply"}},
                            "add": {"type": "IntMath", "inputs": {"a": {"node": "mul", "output": "result"},
                                                                  "b": {"node": "$inputs", "output": "k"},
                                                                  "op": "add"}}},
                  "outputs": {"result": {"node": "add", "output": "result"}}}
    graph = {"format_version": 2, "subgraphs": {"square_plus": definition},
             "nodes": {"sq": {"type": "subgraph:square_plus", "inputs": {"x": {"node": "sq", "output": "result"}}},
                       "s": {"type": "ShowValue", "inputs": {"value": {"node": "sq", "output": "result"}}}}}
    session = Session(autoload=False)
    (error,) = session.validate(graph)
    assert error.code == "cycle" and error.node_id == "sq"
    assert "through subgraph node(s) 'sq': sq → sq" in error.message
    assert "in subgraph" not in error.message
    definition["nodes"]["mul"]["inputs"]["a"] = {"node": "add", "output": "result"}      # a cycle of its own
    graph["nodes"]["sq"]["inputs"]["x"] = 3
    (error,) = session.validate(graph)
    assert error.code == "cycle" and error.message.startswith("in subgraph square_plus")


@pytest.mark.parametrize("workflow", [
    {"nodes": [{"id": 1, "type": "Reroute", "inputs": ["x"]}, {"id": 2, "type": "SaveImage",
                                                              "inputs": [{"name": "images", "link": 5}]}],
     "links": [[5, 1, 0, 2, 0, "IMAGE"]]},
    {"nodes": [{"id": 2, "type": "KSampler", "inputs": [{"name": "seed", "widget": "seed", "link": 5}]},
               {"id": 1, "type": "PrimitiveNode", "widgets_values": 3}], "links": [[5, 1, 0, 2, 0, "INT"]]},
    {"nodes": [{"id": 2, "type": "SaveImage", "inputs": [{"name": "images", "link": [1]}]}],
     "links": [[[1], 1, 0, 2, 0, "IMAGE"], {"id": {"a": 1}}, "junk"]},
    {"nodes": [{"id": 2, "type": "SaveImage", "inputs": {"images": 1}}], "links": [{"id": 1, "origin_id": [2]}]},
])
def test_a_malformed_ui_workflow_imports_what_it_can_and_never_crashes(workflow):
    """Hand-written or damaged workflows (a Reroute whose input is text, a widget that is not an object, links whose
    ids are lists) crashed the importer (TypeError / AttributeError: a traceback from `nodegraph run`, an
    internal_error from the server); what cannot be read is simply not linked, and validation says what is
    missing. A node id that is no number or text is refused by name."""
    graph = import_foreign(workflow)
    assert graph["metadata"]["imported_from"] == "comfyui-workflow" and "2" in graph["nodes"]
    with pytest.raises(GraphValidationError, match='"id" \\(a number\\)'):
        import_foreign({"nodes": [{"id": [1], "type": "VAEDecode"}], "links": []})


def test_a_misspelt_exposed_output_is_named_in_the_definition_not_on_its_consumer(session):
    """An exposed output naming an inner node's output that does not exist: the error names the subgraph's
    exposed output and the inner node's real outputs (it was an unknown_output on the outer consumer, under an
    expanded id the user never wrote)."""
    data = square_plus_graph()
    data["subgraphs"]["square_plus"]["outputs"] = {"result": {"node": "add", "output": "reslt"}}
    errors = session.validate(parse_graph(data))
    assert codes(errors) == ["unknown_output"]
    assert errors[0].node_id == "sq" and "exposed output 'result' of subgraph 'square_plus'" in errors[0].message
    assert "'reslt'" in errors[0].message and "its outputs are: result" in errors[0].message


def test_reroutes_are_followed_to_the_end_and_a_loop_of_them_is_named():
    """A chain of 65 Reroute nodes, or two feeding each other, became "KSampler needs input 'model'" with no word of
    the reroutes (a stranger's CLI pass)."""
    chain = [{"id": 100 + i, "type": "Reroute", "inputs": [{"name": "", "link": 1000 + i}]} for i in range(200)]
    links = [[1000 + i, 101 + i, 0, 100 + i, 0, "*"] for i in range(199)] + [[1199, 1, 0, 299, 0, "INT"]]
    workflow = {"nodes": [{"id": 1, "type": "PrimitiveNode", "widgets_values": [7]},
                          {"id": 2, "type": "KSampler", "inputs": [{"name": "seed", "widget": {"name": "seed"},
                                                                   "link": 5}]}, *chain],
                "links": [[5, 100, 0, 2, 0, "INT"], *links]}
    graph = import_foreign(workflow)
    assert graph["nodes"]["2"]["inputs"]["seed"] == 7                      # through 200 reroutes
    workflow["links"][-1] = [1199, 100, 0, 299, 0, "*"]                    # the last reroute fed by the first
    with pytest.raises(GraphValidationError, match=r"Reroute nodes 100 → 101 → .* → 299 → 100 feed each other"):
        import_foreign(workflow)


def test_a_requested_bypassed_node_is_told_it_is_bypassed():
    """Requesting a bypassed node as an output said "is not a node in the graph" (it is there, passed through)."""
    from nodegraph import Session

    session = Session(builtins=True)
    graph = {"format_version": 2, "nodes": {
        "a": {"type": "Int", "inputs": {"value": 3}},
        "b": {"type": "ShowValue", "inputs": {"value": {"node": "a", "output": "value"}}, "mode": "bypass"},
        "c": {"type": "ShowValue", "inputs": {"value": {"node": "b", "output": "value"}}}}}
    (error,) = session.validate(graph, ["b"])
    assert error.code == "unknown_node" and "is bypassed" in error.message and error.details == {"bypassed": True}
    assert session.validate(graph, ["c"]) == []


def test_a_loaded_graph_refuses_changes_in_place_and_says_how_to_change_it():
    """A Python user set `graph.nodes["sampler"].inputs["seed"] = 1234` on a loaded graph: the next run served the
    memoised plan (seed 42's image, nothing re-ran), and after clear_cache the PNG's embedded graph said 1234 over
    seed 42's pixels. A loaded graph's nodes and inputs now refuse changes, naming with_overrides."""
    import copy
    import pickle

    from nodegraph.graph import parse_graph

    graph = parse_graph({"format_version": 2, "nodes": {
        "a": {"type": "Int", "inputs": {"value": 1}},
        "s": {"type": "ShowValue", "inputs": {"value": {"node": "a", "output": "value"}}}}})
    for change in (lambda: graph.nodes["a"].inputs.__setitem__("value", 2),
                   lambda: graph.nodes["a"].inputs.update(value=2),
                   lambda: graph.nodes["a"].inputs.pop("value"),
                   lambda: graph.nodes.__setitem__("b", graph.nodes["a"]),
                   lambda: graph.nodes.__delitem__("a")):
        with pytest.raises(TypeError, match=r"does not change in place.*with_overrides"):
            change()
    with pytest.raises(AttributeError):          # dataclasses.FrozenInstanceError
        graph.nodes["a"].inputs = {"value": 2}
    assert graph.nodes["a"].inputs == {"value": 1} and list(graph.nodes) == ["a", "s"]
    changed = graph.with_overrides({"a.value": 2})
    assert changed.nodes["a"].inputs["value"] == 2 and graph.nodes["a"].inputs["value"] == 1
    # a frozen graph still pickles (Ray workers) and copies, and a copy is as frozen
    for twin in (pickle.loads(pickle.dumps(graph)), copy.deepcopy(graph)):
        assert twin.to_dict() == graph.to_dict()
        with pytest.raises(TypeError):
            twin.nodes["a"].inputs["value"] = 3


def test_the_bytes_of_an_image_saved_with_a_graph_load_as_that_graph(tmp_path):
    """A Python user passed a SaveImage PNG's bytes to Session.load: "the file is not UTF-8 text (byte 0 is
    b'\\x89')", while its path loaded. Bytes of an image load as the graph it holds, or say what they are."""
    import io

    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from nodegraph import GraphValidationError
    from nodegraph.graph import parse_graph

    graph = {"format_version": 2, "nodes": {"a": {"type": "Int", "inputs": {"value": 7}}}}
    info = PngInfo()
    info.add_text("nodegraph", json.dumps(graph))
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG", pnginfo=info)
    assert parse_graph(buffer.getvalue()).to_dict()["nodes"] == graph["nodes"]
    plain = io.BytesIO()
    Image.new("RGB", (4, 4)).save(plain, format="PNG")
    with pytest.raises(GraphValidationError, match="the image given is a PNG without an embedded graph"):
        parse_graph(plain.getvalue())
    jpeg = io.BytesIO()
    Image.new("RGB", (4, 4)).save(jpeg, format="JPEG")
    with pytest.raises(GraphValidationError, match="the image given is a JPEG image, not a graph file"):
        parse_graph(jpeg.getvalue())
    from nodegraph.graph import MAX_FILE_BYTES, PNG_SIGNATURE

    with pytest.raises(GraphValidationError, match="the image given is .* bytes; the limit for a graph is"):
        parse_graph(PNG_SIGNATURE + bytes(MAX_FILE_BYTES))       # bounded as a file's bytes are


def test_a_value_drawn_inside_a_subgraph_is_pinned_in_a_copy_for_its_instance():
    """A RandomInt inside a subgraph was not pinned in the recorded graph (its link is inside the definition): the
    saved PNG drew a new seed on every run (a reproducibility audit). Each instance's drawn values are pinned in
    its own copy of the definition — nested instances too, and exposed outputs that are drawn values."""
    from nodegraph.graph import pin_values

    session = Session(autoload=False)
    graph = {"format_version": 2, "nodes": {
        "a": {"type": "subgraph:seeder", "inputs": {}},
        "b/2": {"type": "subgraph:seeder", "inputs": {}},                   # ids may hold '/'
        "dice/1": {"type": "RandomInt", "inputs": {"low": 0, "high": 10**9}},
        "show_dice": {"type": "ShowValue", "inputs": {"value": {"node": "dice/1", "output": "value"}}},
        "outer": {"type": "subgraph:wrapper", "inputs": {}},
        "show_a": {"type": "ShowValue", "inputs": {"value": {"node": "a", "output": "seed"}}},
        "show_b": {"type": "ShowValue", "inputs": {"value": {"node": "b/2", "output": "raw"}}},
        "show_outer": {"type": "ShowValue", "inputs": {"value": {"node": "outer", "output": "seed"}}}},
        "subgraphs": {
            "seeder": {"outputs": {"seed": {"node": "plus", "output": "result"}, "raw": {"node": "gen", "output": "value"}},
                       "nodes": {"gen": {"type": "RandomInt", "inputs": {"low": 0, "high": 10**9}},
                                 "plus": {"type": "IntMath", "inputs": {"a": {"node": "gen", "output": "value"},
                                                                        "b": 1, "op": "add"}}}},
            "wrapper": {"outputs": {"seed": {"node": "inner", "output": "seed"}},
                        "nodes": {"inner": {"type": "subgraph:seeder", "inputs": {}}}}}}
    first = session.run(graph)
    assert set(first.drawn) == {"a/gen", "b/2/gen", "outer/inner/gen", "dice/1"}
    pinned = pin_values(session.load(graph).to_dict(), first.drawn, session.registry.takes_literal)
    shown = {k: first.outputs[k]["value"] for k in ("show_a", "show_b", "show_outer", "show_dice")}
    for _ in range(2):
        again = session.run(pinned)
        assert {k: again.outputs[k]["value"] for k in shown} == shown
        assert again.drawn == {}                                  # nothing is drawn any more
    assert pinned["nodes"]["a"]["type"] != pinned["nodes"]["b/2"]["type"]    # a copy each: they drew apart
    assert "seeder" in pinned["subgraphs"] and graph["subgraphs"]["seeder"]["nodes"]["plus"]["inputs"]["a"] == {
        "node": "gen", "output": "value"}                       # the given graph is not changed


def test_pinned_definition_copies_keep_to_the_name_limit_however_many():
    """The 100th copy of a definition with a long name was called `<46 chars>.drawn.<hash>.100`: 65 characters,
    an invalid graph (a hostile re-test)."""
    from nodegraph.graph import _pinned_definition_name

    taken: dict = {}
    for k in range(300):
        name = _pinned_definition_name("I" * 64, "same", taken)
        assert len(name) <= 64 and name not in taken
        taken[name] = {}
