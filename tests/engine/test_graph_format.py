"""The graph file: parsing, round trip, migration, schema and malformed input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodegraph import FORMAT_VERSION, GraphValidationError, Session, load_graph, parse_graph
from nodegraph.graph import Link, graph_file_schema

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"


def codes(exc: GraphValidationError) -> list[str]:
    return [e.code for e in exc.errors]


def test_round_trip_gives_back_the_same_json():
    """Loading and saving a graph (with ui, metadata and titles) yields identical JSON (at the current version)."""
    for path in sorted((ROOT / "graphs").glob("*.json")):
        original = json.loads(path.read_text())
        assert load_graph(path).to_dict() == {**original, "format_version": FORMAT_VERSION}, path.name


def test_links_are_parsed_by_name():
    """A {node, output} object becomes a Link; other objects stay literals."""
    graph = parse_graph({"format_version": 1, "nodes": {
        "a": {"type": "Int", "inputs": {"value": 1}},
        "b": {"type": "ShowValue", "inputs": {"value": {"node": "a", "output": "value"}}}}})
    assert graph.nodes["b"].inputs["value"] == Link("a", "value")


def test_v0_fixture_migrates_and_runs():
    """A version-0 file (node list, [id, output] links, positions in nodes) migrates to v1 and runs."""
    graph = load_graph(FIXTURES / "v0_graph.json")
    data = graph.to_dict()
    assert data["format_version"] == FORMAT_VERSION
    assert data["nodes"]["3"]["inputs"]["a"] == {"node": "1", "output": "value"}
    assert data["nodes"]["3"]["title"] == "product"
    assert data["ui"]["nodes"]["4"]["position"] == [400, 50]
    assert Session().run(graph).outputs["4"]["value"] == 42


def test_v0_migration_keeps_metadata_and_refuses_duplicate_ids():
    """Migrating v0 lost the file's metadata and let a second node with an id silently replace the first."""
    nodes = [{"id": 1, "type": "Int", "inputs": {"value": 6}},
             {"id": 2, "type": "ShowValue", "inputs": {"value": [1, "value"]}}]
    graph = parse_graph({"format_version": 0, "metadata": {"title": "Old"}, "nodes": nodes})
    assert graph.metadata["title"] == "Old"
    with pytest.raises(GraphValidationError) as info:
        parse_graph({"format_version": 0, "nodes": [*nodes, {"id": "1", "type": "Int", "inputs": {"value": 3}}]})
    (error,) = info.value.errors
    assert error.code == "invalid_format" and "'1' appears twice" in error.message


def test_unknown_version_is_refused_with_the_supported_range():
    """A future format version gives unsupported_version naming what is readable."""
    with pytest.raises(GraphValidationError) as info:
        parse_graph({"format_version": 99, "nodes": {}})
    assert codes(info.value) == ["unsupported_version"]
    assert f"0 to {FORMAT_VERSION}" in info.value.errors[0].message


def test_a_whole_float_version_is_read_as_the_number_the_schema_says_it_is():
    """"format_version": 2.0 passed the JSON Schema (integer 2) and was refused by the loader with "write it
    without quotes"; it loads. 2.5 is refused, told to write a whole number (quotes only for text)."""
    assert parse_graph({"format_version": 2.0, "nodes": {}}).nodes == {}
    with pytest.raises(GraphValidationError) as info:
        parse_graph({"format_version": 2.5, "nodes": {}})
    assert "write a whole number" in info.value.errors[0].message and "quotes" not in info.value.errors[0].message
    with pytest.raises(GraphValidationError) as info:
        parse_graph({"format_version": "2", "nodes": {}})
    assert "without quotes" in info.value.errors[0].message


@pytest.mark.parametrize("data, code", [
    (b"{not json", "invalid_json"),
    (b"\xff\xfe{}", "invalid_json"),
    (b'{"format_version": 1, "nodes": {"a": {"type": "Float", "inputs": {"value": NaN}}}}', "invalid_json"),
    (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
    (b"[1, 2]", "invalid_format"),
    (b'{"nodes": {}}', "invalid_format"),
    (b'{"format_version": 1, "nodes": []}', "invalid_format"),
    (b'{"format_version": 1, "nodes": {"a": 5}}', "invalid_format"),
    (b'{"format_version": 1, "nodes": {"a": {"inputs": {}}}}', "invalid_format"),
    (b'{"format_version": 1, "nodes": {"a": {"type": "Int", "inputs": []}}}', "invalid_format"),
    (b'{"format_version": 1, "nodes": {"a": {"type": "Int", "inputs": {"v": {"node": 1, "output": "x"}}}}}',
     "invalid_format"),
    (b'{"format_version": 1, "nodes": {}, "extra": 1}', "invalid_format"),
    (b'{"format_version": "1", "nodes": {}}', "invalid_format"),      # not a whole number: malformed
])
def test_malformed_files_give_structured_errors(data, code):
    """Every malformed file gives a GraphValidationError with the expected code, never a traceback."""
    with pytest.raises(GraphValidationError) as info:
        parse_graph(data)
    assert code in codes(info.value)
    assert all(e.message for e in info.value.errors)


def test_deeply_nested_literal_is_refused():
    """A literal nested deeper than the limit is an invalid_format error on that input."""
    value: list = []
    for _ in range(100):
        value = [value]
    with pytest.raises(GraphValidationError) as info:
        parse_graph({"format_version": 1, "nodes": {"a": {"type": "String", "inputs": {"value": value}}}})
    err = info.value.errors[0]
    assert (err.code, err.node_id, err.input) == ("invalid_format", "a", "value")


def test_huge_file_is_refused(monkeypatch):
    """A file over the size limit is refused before parsing."""
    monkeypatch.setattr("nodegraph.graph.MAX_FILE_BYTES", 1000)
    with pytest.raises(GraphValidationError) as info:
        parse_graph(b" " * 2000)
    assert "limit" in info.value.errors[0].message


def test_missing_file_is_a_structured_error(tmp_path):
    """A path that does not exist, or a folder, is an unreadable_file error naming the file (not invalid_json:
    nothing was read)."""
    for path in (tmp_path / "nope.json", tmp_path):
        with pytest.raises(GraphValidationError) as info:
            load_graph(path)
        error = info.value.errors[0]
        assert error.code == "unreadable_file" and str(path) in error.message and "check the path" in error.message


def test_all_format_errors_are_collected():
    """Several broken nodes give several errors at once."""
    with pytest.raises(GraphValidationError) as info:
        parse_graph({"format_version": 1, "nodes": {"a": 1, "b": {"type": 2}, "c": {"type": "X", "bad": 1}}})
    assert len(info.value.errors) == 3


def test_file_schema_accepts_shipped_graphs(capsys):
    """Every shipped graph (graphs/, plugins/*/graphs/, versions 1 and 2) validates against the schema that
    `nodegraph schema` prints; a version the loader cannot read, and the list-shaped version 0, do not."""
    import jsonschema

    from nodegraph.cli import main

    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    validator = jsonschema.Draft202012Validator(schema)
    shipped = sorted((ROOT / "graphs").glob("*.json")) + sorted(ROOT.glob("plugins/*/graphs/*.json"))
    assert len(shipped) > 30
    versions = set()
    for path in shipped:
        data = json.loads(path.read_text())
        versions.add(data["format_version"])
        problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)]
        assert not problems, f"{path.relative_to(ROOT)}: {problems}"
    assert versions == {1, 2}
    assert not validator.is_valid({"format_version": FORMAT_VERSION + 1, "nodes": {}})
    assert not validator.is_valid(json.loads((FIXTURES / "v0_graph.json").read_text()))


def test_metadata_title_and_description_must_be_text():
    """Front ends show a graph's title and description as text: any other JSON type is a format error naming the
    field (a run titled with an object once blanked every editor that listed it); other metadata stays free."""
    base = {"format_version": FORMAT_VERSION, "nodes": {}}
    with pytest.raises(GraphValidationError) as error:
        parse_graph({**base, "metadata": {"title": {"x": 1}, "description": 3, "author": {"any": "thing"}}})
    messages = [e.message for e in error.value.errors]
    assert any('"metadata.title" must be a string' in m and "found an object" in m for m in messages), messages
    assert any('"metadata.description" must be a string' in m and "found a number" in m for m in messages), messages
    assert len(messages) == 2
    assert parse_graph({**base, "metadata": {"title": "t", "author": {"any": "thing"}}}).metadata["author"]


def test_stored_runs_list_only_text_titles():
    """A run stored before titles were checked lists with no title, not with whatever the metadata held."""
    from nodegraph.run_queue import RunQueue

    queue = RunQueue()
    record = queue.enqueue({"format_version": FORMAT_VERSION, "metadata": {"title": {"x": 1}}, "nodes": {}})
    assert record.summary()["title"] is None
    named = queue.enqueue({"format_version": FORMAT_VERSION, "metadata": {"title": "mine"}, "nodes": {}})
    assert named.summary()["title"] == "mine"


def test_too_much_text_names_the_longest_piece():
    from nodegraph.run_queue import MAX_STORED_TEXT, storable_problem

    graph = {"nodes": {"p": {"type": "Text", "inputs": {"text": "a" * (MAX_STORED_TEXT + 1)}}}}
    problem = storable_problem(graph, "the graph")
    assert "nodes.p.inputs.text" in problem and "8.4 M characters" in problem and "images" in problem


def test_comfyui_shapes_inside_our_format_get_a_hint():
    """A ComfyUI link ["a", 0] inside one of our graphs, and a ComfyUI /prompt request body, said only "a literal"
    and "no format_version"; both now say what they are and what to write instead."""
    from nodegraph import Session

    graph = {"format_version": 2, "nodes": {"a": {"type": "Int", "inputs": {"value": 3}},
                                            "s": {"type": "ShowValue", "inputs": {"value": ["a", 0]}}}}
    (error,) = Session(autoload=False).validate(graph)
    assert 'is how ComfyUI writes a link; here a link is {"node": "a", "output": "<output name>"}' in error.message
    with pytest.raises(GraphValidationError) as info:
        parse_graph({"prompt": {"1": {"class_type": "Int", "inputs": {"value": 4}}}, "client_id": "x"})
    assert info.value.errors[0].code == "foreign_format" and "/prompt" in info.value.errors[0].message


def test_a_missing_upload_is_offered_files_of_its_kind_only(tmp_path):
    """LoadImage's missing file listed (and suggested) the WAVs and meshes of the input folder too."""
    from nodegraph import Session

    for name in ("cat.png", "cat.wav", "cat.glb", "notes.dat"):
        (tmp_path / name).write_bytes(b"x")
    graph = {"format_version": 2, "nodes": {
        "l": {"type": "LoadImage", "inputs": {"image": "cat.jpg"}},
        "s": {"type": "SaveImage", "inputs": {"images": {"node": "l", "output": "image"}}}}}
    (error,) = Session(autoload=False, input_dir=tmp_path).validate(graph)
    assert "'cat.png'" in error.message and "'notes.dat'" in error.message          # an unknown extension may be one
    assert "cat.wav" not in error.message and "cat.glb" not in error.message
    assert "2 file(s) of other kinds than image" in error.message


@pytest.mark.parametrize("node_id", ["\x00", "a\nb", "x\ud800", "n" * 257, "s\u202egnp.exe", "a\u200bb", "\ufeffa",
                                     "a\u2028b", "\ue000", " ", "\u3000"])
def test_node_ids_are_names_people_can_read(node_id):
    """A node id of NUL, a newline, a lone surrogate or 100,000 characters was accepted (a hostile pass) and came
    back in every error, --set key and the editor; ids are at most 256 printable characters."""
    from nodegraph.graph import parse_graph

    with pytest.raises(GraphValidationError) as info:
        parse_graph({"format_version": 2, "nodes": {node_id: {"type": "ShowValue", "inputs": {}}}})
    (error,) = info.value.errors
    assert error.code == "invalid_format" and "at most 256 characters" in error.message
    assert len(error.message) < 400 and all(ch.isascii() for ch in error.message)     # shown escaped
    parse_graph({"format_version": 2, "nodes": {"n" * 256: {"type": "ShowValue"}, "3:5 é": {"type": "ShowValue"}}})


def test_a_graph_path_with_a_nul_is_an_unreadable_file_not_a_value_error():
    """Session.run("\\x00") raised pathlib's bare ValueError "embedded null byte" (found by the property test)."""
    with pytest.raises(GraphValidationError) as info:
        load_graph("graph\x00.json")
    assert info.value.errors[0].code == "unreadable_file" and "embedded null byte" in info.value.errors[0].message


def test_an_error_quoting_a_huge_name_is_cut_to_a_readable_length():
    """A 100,000-character node type, input or subgraph name came back whole in its error (200-300 KB replies;
    a hostile re-test): a message past GraphError.MAX_MESSAGE_CHARS keeps its start and end."""
    from nodegraph.errors import GraphError

    big = "T" * 100_000
    errors = Session(autoload=False).validate({"format_version": 2, "nodes": {"a": {"type": big}}})
    assert errors and all(len(e.message) <= GraphError.MAX_MESSAGE_CHARS for e in errors)
    assert "characters left out" in errors[0].message
    assert GraphError("x", "short").message == "short"
