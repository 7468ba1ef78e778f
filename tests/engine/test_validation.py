"""Validation: every error at once, each with a stable code, location and a fix."""

from __future__ import annotations

import pytest

from nodegraph import Session

from .helpers import link


@pytest.fixture(scope="module")
def session() -> Session:
    return Session()


def errors_of(session, nodes):
    return session.validate({"format_version": 1, "nodes": nodes})


def test_valid_graph_has_no_errors(session):
    """A correct graph validates clean."""
    assert errors_of(session, {
        "a": {"type": "Int", "inputs": {"value": 1}},
        "s": {"type": "ShowValue", "inputs": {"value": link("a", "value")}}}) == []


def test_every_error_is_reported_at_once(session):
    """One graph with many problems lists all of them, each with node id, input and code."""
    errors = errors_of(session, {
        "a": {"type": "Itn", "inputs": {}},
        "b": {"type": "Math", "inputs": {"a": "three", "b": 2e300, "op": "plus", "c": 1}},
        "c": {"type": "Math", "inputs": {"a": link("zzz", "value"), "b": link("d", "nope")}},
        "d": {"type": "Int", "inputs": {"value": 1}},
        "e": {"type": "IntMath", "inputs": {"a": link("f", "value")}},
        "f": {"type": "String", "inputs": {"value": "x"}},
        "g": {"type": "ShowValue", "inputs": {}},
        "h": {"type": "Wait", "inputs": {"value": 3}},
    })
    found = {(e.code, e.node_id, e.input) for e in errors}
    assert ("unknown_node_type", "a", None) in found
    assert ("type_mismatch", "b", "a") in found
    assert ("out_of_range", "b", "b") in found
    assert ("not_in_choices", "b", "op") in found
    assert ("unknown_input", "b", "c") in found
    assert ("dangling_link", "c", "a") in found
    assert ("unknown_output", "c", "b") in found
    assert ("type_mismatch", "e", "a") in found
    assert ("missing_input", "g", "value") in found
    assert ("type_mismatch", "h", "value") in found   # a literal where only links can go


def test_messages_name_expected_found_and_fix(session):
    """Messages carry suggestions and both ends of a mismatched link."""
    errors = errors_of(session, {
        "a": {"type": "ShowVaule", "inputs": {}},
        "f": {"type": "String", "inputs": {"value": "x"}},
        "e": {"type": "IntMath", "inputs": {"a": link("f", "value"), "op": "multiplyy"}},
    })
    by_code = {e.code: e for e in errors}
    assert "Did you mean 'ShowValue'" in by_code["unknown_node_type"].message
    mismatch = by_code["type_mismatch"]
    assert "INT" in mismatch.message and "STRING" in mismatch.message and "'f'" in mismatch.message
    assert mismatch.details == {"expected": "INT", "found": "STRING", "source_node": "f", "output": "value"}
    assert "'multiply'" in by_code["not_in_choices"].message


def test_int_feeds_float_but_not_the_reverse(session):
    """INT → FLOAT is allowed; FLOAT → INT is a type mismatch."""
    assert errors_of(session, {
        "i": {"type": "Int", "inputs": {"value": 2}},
        "m": {"type": "Math", "inputs": {"a": link("i", "value")}},
        "s": {"type": "ShowValue", "inputs": {"value": link("m", "result")}}}) == []
    errors = errors_of(session, {
        "f": {"type": "Float", "inputs": {"value": 2.0}},
        "m": {"type": "IntMath", "inputs": {"a": link("f", "value")}},
        "s": {"type": "ShowValue", "inputs": {"value": link("m", "result")}}})
    assert [e.code for e in errors] == ["type_mismatch"]


def test_literal_types_are_strict(session):
    """A string is not an INT and a bool is not a number."""
    errors = errors_of(session, {
        "i": {"type": "Int", "inputs": {"value": "5"}},
        "j": {"type": "Float", "inputs": {"value": True}},
        "s": {"type": "ShowValue", "inputs": {"value": link("i", "value")}}})
    assert sorted(e.code for e in errors) == ["type_mismatch", "type_mismatch"]


def test_a_whole_float_in_an_int_input_is_that_integer(session):
    """"steps": 20.0 (as json.dumps writes a float) was refused as "expects an INT value" though the schema's
    "integer" takes it; it runs as 20 (same cache key, same result). 20.5 and 1e300 are still refused."""
    graph = {"format_version": 1, "nodes": {
        "i": {"type": "Int", "inputs": {"value": 20.0}},
        "s": {"type": "ShowValue", "inputs": {"value": link("i", "value")}}}}
    assert session.validate(graph) == []
    value = session.run(graph, outputs=["i"]).outputs["i"]["value"]
    assert value == 20 and type(value) is int
    for bad in (20.5, 1e300):
        graph["nodes"]["i"]["inputs"]["value"] = bad
        assert [e.code for e in session.validate(graph)] == ["type_mismatch"]
    graph["nodes"]["i"]["inputs"]["value"] = 1e19           # a seed written with an exponent: said why, and the fix
    assert "write the integer itself" in session.validate(graph)[0].message


def test_cycle_names_its_nodes(session):
    """A cycle is reported once with the nodes in it."""
    errors = errors_of(session, {
        "a": {"type": "IntMath", "inputs": {"a": link("c", "result")}},
        "b": {"type": "IntMath", "inputs": {"a": link("a", "result")}},
        "c": {"type": "IntMath", "inputs": {"a": link("b", "result")}},
        "s": {"type": "ShowValue", "inputs": {"value": link("c", "result")}}})
    cycles = [e for e in errors if e.code == "cycle"]
    assert len(cycles) == 1
    assert set(cycles[0].details["nodes"]) == {"a", "b", "c"}
    assert "→" in cycles[0].message


def test_self_loop_is_a_cycle(session):
    """A node linked to itself is a cycle."""
    errors = errors_of(session, {"a": {"type": "IntMath", "inputs": {"a": link("a", "result")}},
                                 "s": {"type": "ShowValue", "inputs": {"value": link("a", "result")}}})
    assert [e.code for e in errors] == ["cycle"]


def test_no_outputs(session):
    """A graph without an output node is reported as no_outputs."""
    errors = errors_of(session, {"a": {"type": "Int", "inputs": {"value": 1}}})
    assert [e.code for e in errors] == ["no_outputs"]


def test_unknown_type_still_loads_for_repair(session):
    """A graph with a missing node type parses (the editor can show it) but fails validation."""
    graph = session.load({"format_version": 1, "nodes": {"x": {"type": "FromMissingPlugin", "inputs": {"q": 1}}}})
    assert graph.nodes["x"].type == "FromMissingPlugin"
    assert "unknown_node_type" in [e.code for e in session.validate(graph)]


def test_error_dicts_are_json_ready(session):
    """to_dict gives code, message, node_id and input."""
    (error,) = errors_of(session, {"g": {"type": "ShowValue", "inputs": {}}})
    assert error.to_dict() == {"code": "missing_input", "message": error.message, "node_id": "g", "input": "value"}


def test_validation_of_10000_nodes_is_linear_enough(session):
    """A 10,000-node graph validates (no quadratic blow-up; generous bound, not a benchmark)."""
    import time

    nodes = {"n0": {"type": "Int", "inputs": {"value": 0}}}
    for i in range(1, 10_000):
        nodes[f"n{i}"] = {"type": "IntMath", "inputs": {"a": link(f"n{i-1}", "value" if i == 1 else "result"), "b": 1}}
    nodes["s"] = {"type": "ShowValue", "inputs": {"value": link("n9999", "result")}}
    t0 = time.perf_counter()
    assert errors_of(session, nodes) == []
    assert time.perf_counter() - t0 < 10


def test_did_you_mean_is_spent_after_a_budget(session):
    """Suggestions cost a comparison per candidate, so only the first SUGGESTED_ERRORS errors of one
    validation get them (each validation has its own budget): a graph of many misspelt links stays cheap."""
    from nodegraph.validation import SUGGESTED_ERRORS

    nodes = {"n0": {"type": "Int", "inputs": {"value": 1}}}
    for i in range(1, SUGGESTED_ERRORS + 20):
        nodes[f"n{i}"] = {"type": "IntMath", "inputs": {"a": link("n0", "valeu"), "b": 1, "op": "add"}}
    for _ in range(2):
        errors = [e for e in errors_of(session, nodes) if e.code == "unknown_output"]
        assert len(errors) == SUGGESTED_ERRORS + 19
        hinted = ["Did you mean 'value'?" in e.message for e in errors]
        assert hinted == [True] * SUGGESTED_ERRORS + [False] * 19


def test_values_are_shown_as_the_user_wrote_them(session):
    """`true` in the file was reported as `found True`, a list as Python's ['a', 1]: messages quote JSON."""
    errors = errors_of(session, {"a": {"type": "Int", "inputs": {"value": True}},
                                 "b": {"type": "Int", "inputs": {"value": ["x", 1, None]}},
                                 "s": {"type": "ShowValue", "inputs": {"value": {"node": "a", "output": "value"}}}})
    text = " ".join(e.message for e in errors)
    assert "found true" in text and '["x", 1, null]' in text and "True" not in text and "None" not in text


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_override_is_named_as_such(value):
    """overrides={"m.a": nan} from Python said "must be <= 1e+300; found nan"."""
    graph = {"format_version": 2, "nodes": {"m": {"type": "Math", "inputs": {"a": 1.0, "b": 1.0}},
                                            "v": {"type": "ShowValue", "inputs": {"value": {"node": "m",
                                                                                            "output": "result"}}}}}
    from nodegraph import GraphValidationError

    with pytest.raises(GraphValidationError) as info:
        Session().run(graph, overrides={"m.a": value})
    (error,) = info.value.errors
    assert (error.code, error.input) == ("invalid_value", "a") and "give a finite number" in error.message


def test_a_graph_with_version_instead_of_format_version_is_told_which_key():
    from nodegraph import GraphValidationError

    with pytest.raises(GraphValidationError) as info:
        Session().load({"version": 5, "nodes": {}})
    assert 'it has "version": is that meant?' in info.value.errors[0].message


def test_chosen_outputs_check_and_run_only_what_they_need(session, tmp_path):
    """`run --output show` refused a graph whose other branch was broken (an unknown node type, a missing
    input, a cycle): the whole file had to be valid. Only the part the chosen outputs need is checked and run
    now, as ComfyUI runs the outputs that validate; the whole graph, or the broken branch chosen, still fails."""
    from nodegraph.errors import GraphValidationError

    graph = {"format_version": 1, "nodes": {
        "a": {"type": "Int", "inputs": {"value": 3}},
        "show": {"type": "ShowValue", "inputs": {"value": link("a", "value")}},
        "x": {"type": "NoSuchNode", "inputs": {}},
        "y": {"type": "ShowValue", "inputs": {}},
        "p": {"type": "ShowValue", "inputs": {"value": link("q", "value")}},
        "q": {"type": "ShowValue", "inputs": {"value": link("p", "value")}}}}
    assert session.validate(graph, ["show"]) == []
    assert session.run(graph, outputs=["show"]).outputs["show"]["value"] == 3
    assert session.run(graph, outputs="show").outputs["show"]["value"] == 3
    whole = {e.code for e in session.validate(graph)}
    assert {"unknown_node_type", "missing_input", "cycle"} <= whole, whole
    with pytest.raises(GraphValidationError) as broken:
        session.run(graph, outputs=["show", "y"])
    assert [(e.code, e.node_id) for e in broken.value.errors] == [("missing_input", "y")]
    unknown = session.validate(graph, ["shwo"])          # a mistyped id is said alone, not under the others
    assert [e.code for e in unknown] == ["unknown_node"] and "'show'" in unknown[0].message
    with pytest.raises(GraphValidationError) as mistyped:
        session.run(graph, outputs=["shwo"])
    assert [e.code for e in mistyped.value.errors] == ["unknown_node"]
    for bad in ([None], [5], 5):                         # not ids: said so (it was "'NoneType' object is not ...")
        with pytest.raises(TypeError, match="outputs must be node ids"):
            session.run(graph, outputs=bad)
    nested = {"format_version": 2, "nodes": {        # an inner node of a subgraph, chosen: `outer/inner`
        "sg": {"type": "subgraph:calc", "inputs": {}},
        "x": {"type": "NoSuchNode", "inputs": {}}},
        "subgraphs": {"calc": {"inputs": {}, "outputs": {"value": {"node": "i", "output": "value"}},
                               "nodes": {"i": {"type": "Int", "inputs": {"value": 5}},
                                         "show": {"type": "ShowValue", "inputs": {"value": link("i", "value")}}}}}}
    assert session.validate(nested, ["sg/show"]) == []
    assert session.run(nested, outputs=["sg/show"]).outputs["sg/show"]["value"] == 5
    assert [e.code for e in session.validate(nested, ["sg/nosuch"])] == ["unknown_node"]
    path = tmp_path / "g.json"
    import json

    path.write_text(json.dumps(graph))
    from nodegraph.cli import main

    assert main(["run", str(path), "--output", "show", "--output-dir", str(tmp_path / "out"), "--no-progress"]) == 0
    assert main(["run", str(path), "--output-dir", str(tmp_path / "out"), "--no-progress"]) == 1


def test_a_missing_input_file_at_run_time_offers_files_of_its_kind(tmp_path):
    """A file gone between validation and the run (deleted meanwhile) was told with .obj and .wav files as
    candidates for an image: the run-time message offers files of the name's kind, as validation's does."""
    (tmp_path / "in").mkdir()
    for name in ("a.obj", "b.wav", "photo.png"):
        (tmp_path / "in" / name).write_bytes(b"x")
    session = Session(input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    with pytest.raises(LookupError) as missing:
        session.resolve_file("input", "phot.png")
    message = str(missing.value)
    assert "'photo.png'" in message and "b.wav" not in message and "2 file(s) of other kinds than image" in message


def test_a_wrong_default_is_said_to_be_the_nodes_default_not_the_graphs_value():
    """A plugin node declared `Input("euler_typo", choices_from="samplers")`; a graph that left the input out was
    told "found 'euler_typo'" as if it had written it (a plugin author's finding)."""
    import sys
    import types
    from typing import Any

    from nodegraph import Input, Node, NodeInputs, Output, hookimpl

    class TypoDefault(Node):
        class Inputs(NodeInputs):
            sampler: str = Input("euler_typo", choices_from="samplers")

        outputs = (Output("value", "STRING"),)

        def run(self, sampler: str) -> Any:
            return {"value": sampler}

    module = types.ModuleType("typo_default_plugin")
    module.register_nodes = hookimpl(lambda: [TypoDefault])
    sys.modules[module.__name__] = module
    session = Session(plugins=[module])
    show = {"type": "ShowValue", "inputs": {"value": link("t", "value")}}
    (error,) = errors_of(session, {"t": {"type": "TypoDefault", "inputs": {}}, "show": show})
    assert error.code == "not_in_choices" and "found 'euler_typo'" in error.message
    assert "this is the node's default" in error.message and error.details["default"] is True
    # a value the graph writes is the graph's: no such note
    (error,) = errors_of(session, {"t": {"type": "TypoDefault", "inputs": {"sampler": "eulr"}}, "show": show})
    assert "default" not in error.message and "default" not in error.details


def test_an_override_naming_no_node_is_reported_with_the_other_overrides_problems(session):
    """A Python user's finding: five bad overrides gave five errors, and adding `"nope.x": 1` gave one error,
    unknown_node, hiding the five (`nodegraph validate --set` listed them all, as docs/graph-format.md says)."""
    from nodegraph import GraphValidationError

    graph = {"format_version": 2, "nodes": {
        "a": {"type": "Int", "inputs": {"value": 1}},
        "m": {"type": "IntMath", "inputs": {"a": link("a", "value"), "b": 2, "op": "add"}},
        "s": {"type": "ShowValue", "inputs": {"value": link("m", "result")}}}}
    overrides = {"nope.x": 1, "m.op": "plus", "m.b": "two"}
    expected = {("unknown_node", "nope", None), ("not_in_choices", "m", "op"), ("type_mismatch", "m", "b")}
    found = {(e.code, e.node_id, e.input) for e in session.validate(graph, overrides=overrides)}
    assert found == expected, found
    with pytest.raises(GraphValidationError) as info:
        session.run(graph, overrides=overrides)
    assert {(e.code, e.node_id, e.input) for e in info.value.errors} == expected
    assert session.run(graph, overrides={"m.b": 5}).outputs["s"]["value"] == 6     # good overrides still run


def test_a_seed_of_minus_one_says_how_to_get_a_random_seed():
    """A1111's seed -1 ("random") got a bare "must be >= 0" (an InvokeAI user's pass): it says what does that here."""
    import json
    from pathlib import Path

    graph = json.loads((Path(__file__).resolve().parents[2] / "graphs" / "txt2img.json").read_text())
    graph["nodes"]["sampler"]["inputs"]["seed"] = -1
    (error,) = Session(autoload=False).validate(graph)
    assert error.code == "out_of_range" and "RandomInt" in error.message and "random seed" in error.message
    graph["nodes"]["sampler"]["inputs"]["seed"] = -2
    (error,) = Session(autoload=False).validate(graph)
    assert "RandomInt" not in error.message


def test_an_unknown_type_with_no_close_name_is_offered_the_types_of_its_first_word():
    """'ShowText' (a ComfyUI custom node people know) got no suggestion, while misspelt inputs did."""
    from nodegraph.validation import suggest_type

    assert suggest_type("ShowText", ["ShowValue", "Int", "example.ShowThing", "Snowy"]) == " Did you mean 'ShowValue'?"
    assert suggest_type("Intt", ["Int", "IntMath", "ShowValue"]) == " Did you mean 'Int' or 'IntMath'?"
    assert suggest_type("Zzz", ["ShowValue"]) == ""
    errors = Session(autoload=False).validate({"format_version": 2, "nodes": {"a": {"type": "ShowText"}}})
    assert any("Did you mean 'ShowValue'" in e.message for e in errors if e.code == "unknown_node_type")


def test_an_audio_inputs_listing_offers_videos_too(tmp_path):
    """LoadAudio reads a video's sound track (.mkv, .mp4), yet its missing-file message counted them as "files of
    other kinds than audio" and offered none (a hostile re-test)."""
    from nodegraph.validation import missing_input_message

    (tmp_path / "in").mkdir()
    for name in ("clip.mkv", "talk.wav", "photo.png"):
        (tmp_path / "in" / name).write_bytes(b"x")
    message = missing_input_message(tmp_path / "in", "clip.mp4", kind="audio")
    assert "'clip.mkv'" in message and "'talk.wav'" in message and "1 file(s) of other kinds than audio" in message


def test_a_comfyui_output_reference_says_where_the_file_is_read_from(tmp_path):
    """ComfyUI's "name [output]" (a result fed back into LoadImage) was only "no file ... in the input folder"."""
    from nodegraph.validation import missing_input_message

    (tmp_path / "in").mkdir()
    message = missing_input_message(tmp_path / "in", "myinpaint_00001.png [output]", kind="image")
    assert "names a file of its output folder" in message and "copy 'myinpaint_00001.png'" in message
    assert "Use as input" in message
