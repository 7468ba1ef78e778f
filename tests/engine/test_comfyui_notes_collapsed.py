"""ComfyUI UI workflows: Note and MarkdownNote nodes become the editor's notes (`ui.notes`) instead of being dropped
silently, and a collapsed node comes in minimised (a ComfyUI user's pass: "Remember: use 64x64…" was gone for good
after an import and a save)."""

from __future__ import annotations

import json

import jsonschema

from nodegraph.graph import MAX_NOTE_TEXT, graph_file_schema, import_foreign, parse_graph


def node(node_id, kind, widgets=None, **extra):
    return {"id": node_id, "type": kind, "mode": 0, "pos": [node_id * 10, 0], "inputs": [], "outputs": [],
            **({"widgets_values": widgets} if widgets is not None else {}), **extra}


def workflow(*nodes) -> dict:
    return {"last_node_id": 20, "last_link_id": 0, "nodes": list(nodes), "links": [], "version": 0.4}


def sampler(node_id=3, **extra):
    return node(node_id, "KSampler", [5, "fixed", 8, 6.5, "euler", "normal", 1], **extra)


def test_notes_become_ui_notes_at_their_place_with_their_text_and_colour():
    """A Note and a MarkdownNote keep their text (widgets_values[0]), position, size and hex colour."""
    graph = import_foreign(workflow(
        sampler(),
        node(12, "Note", ["Remember: use 64x64 for tiny world.\nSecond line."], pos=[30, 100], size=[300, 120],
             color="#432", bgcolor="#653"),
        node(18, "MarkdownNote", ["# Heading\n* list item"], pos=[30.4, 800], size={"0": 315, "1": 100}),
    ))
    assert graph["ui"]["notes"] == [
        {"id": "comfyui-note-12", "text": "Remember: use 64x64 for tiny world.\nSecond line.",
         "bounds": [30, 100, 300, 120], "color": "#653"},
        {"id": "comfyui-note-18", "text": "# Heading\n* list item", "bounds": [30, 800, 315, 100]},
    ]
    assert set(graph["nodes"]) == {"3"}                      # still no node: nothing runs a note
    jsonschema.validate(graph, graph_file_schema())


def test_note_text_is_bounded_and_odd_notes_are_kept_as_far_as_they_can_be():
    """Text past MAX_NOTE_TEXT is cut; no size gives ComfyUI's default; no text is an empty note; no position, or a
    colour that is not hex, leaves that out; text is kept as written (never HTML-escaped or read)."""
    graph = import_foreign(workflow(
        sampler(),
        node(12, "Note", ["x" * (MAX_NOTE_TEXT + 5)], pos=[0, 0]),
        node(13, "Note", None, pos=[10, 20], size=[-5, 3], bgcolor="red; background: url(x)"),
        node(14, "Note", ["<img src=x onerror=alert(1)>"], pos=[1e300, 0]),
        node(15, "MarkdownNote", ["<img src=x onerror=alert(1)>"], pos=[5, 5], size=[200, 80]),
    ))
    notes = {n["id"]: n for n in graph["ui"]["notes"]}
    assert len(notes["comfyui-note-12"]["text"]) == MAX_NOTE_TEXT
    assert notes["comfyui-note-13"] == {"id": "comfyui-note-13", "text": "", "bounds": [10, 20, 300, 120]}
    assert "comfyui-note-14" not in notes
    assert notes["comfyui-note-15"]["text"] == "<img src=x onerror=alert(1)>"


def test_a_workflow_without_notes_writes_no_notes_key():
    """`ui.notes` appears only when there was a note (an import without one is as before)."""
    assert "notes" not in import_foreign(workflow(sampler())).get("ui", {})


def test_imported_notes_load_and_save_back_unchanged():
    """The engine carries `ui.notes` through: the imported graph loads and saves back with its notes as they were."""
    graph = import_foreign(workflow(sampler(), node(12, "Note", ["Remember: 64x64"], pos=[30, 100], size=[300, 120])))
    assert parse_graph(json.loads(json.dumps(graph))).to_dict()["ui"]["notes"] == graph["ui"]["notes"]


def test_a_collapsed_node_comes_in_minimised():
    """ComfyUI's `flags.collapsed` true becomes `ui.nodes.<id>.collapsed` (the editor's minimise); false or odd
    values write nothing."""
    graph = import_foreign(workflow(
        sampler(3, flags={"collapsed": True}),
        sampler(4, flags={"collapsed": False}),
        sampler(5, flags={"collapsed": "yes"}),
        sampler(6, flags=["collapsed"]),
    ))
    nodes = graph["ui"]["nodes"]
    assert nodes["3"]["collapsed"] is True
    assert [("collapsed" in nodes[i]) for i in ("4", "5", "6")] == [False, False, False]


def test_a_note_inside_a_subgraph_is_kept_where_its_instance_stands():
    """A note in a subgraph definition comes in with the instance's inner nodes, moved to where the instance is."""
    definition = {"id": "sub-1", "name": "Prompted", "inputNode": {"id": -10}, "outputNode": {"id": -20},
                  "inputs": [], "outputs": [], "links": [],
                  "nodes": [sampler(1, pos=[0, 0]), node(2, "Note", ["inside"], pos=[0, 200], size=[200, 60])]}
    data = workflow(node(20, "sub-1", pos=[1000, 500]))
    data["definitions"] = {"subgraphs": [definition]}
    graph = import_foreign(data)
    assert graph["ui"]["notes"] == [{"id": "comfyui-note-20:2", "text": "inside", "bounds": [1000, 700, 200, 60]}]


def test_the_cli_import_note_counts_the_notes_kept(tmp_path, capsys):
    """`nodegraph validate` of a UI workflow with a Note said nothing of it (it was dropped; now it is kept)."""
    import json

    from nodegraph.cli import main

    workflow = {"nodes": [{"id": 1, "type": "Note", "pos": [0, 0], "size": [200, 80], "widgets_values": ["hi"]},
                          {"id": 2, "type": "EmptyLatentImage", "pos": [300, 0], "widgets_values": [64, 64, 1],
                           "outputs": [{"name": "LATENT", "type": "LATENT", "links": []}]}],
                "links": []}
    path = tmp_path / "w.json"
    path.write_text(json.dumps(workflow))
    main(["validate", str(path), "--no-plugins"])
    assert "1 note kept as notes on the canvas" in capsys.readouterr().err
