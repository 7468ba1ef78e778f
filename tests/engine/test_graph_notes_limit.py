"""A native graph file keeps at most MAX_NOTES (500) entries of `ui.notes`, as a ComfyUI import does: 20,000 notes
in a file someone sent froze the editor for 21 s (an attacker's finding). The rest are left out with a warning."""

from __future__ import annotations

import pytest

from nodegraph import comfyui
from nodegraph.graph import MAX_NOTES, NotesLimitWarning, graph_from_dict


def _note(index: int) -> dict:
    return {"id": f"n{index}", "text": f"note {index}", "bounds": [0, index * 10, 100, 50]}


def _file(note_count: int) -> dict:
    return {"format_version": 2, "nodes": {"seed": {"type": "Int", "inputs": {"value": 1}}},
            "ui": {"notes": [_note(i) for i in range(note_count)], "groups": []},
            "subgraphs": {"Inner": {"nodes": {"x": {"type": "Int", "inputs": {"value": 2}}},
                                    "outputs": {"v": {"node": "x", "output": "value"}},
                                    "ui": {"notes": [_note(i) for i in range(note_count)]}}}}


def test_the_first_notes_are_kept_and_the_count_is_said():
    """20,000 notes: the first 500 stay (in order, the rest of `ui` untouched), and a warning names both counts."""
    with pytest.warns(NotesLimitWarning, match="ui.notes holds 20000 notes; a graph keeps the first 500") as caught:
        graph = graph_from_dict(_file(20_000))
    assert [note["id"] for note in graph.ui["notes"]] == [f"n{i}" for i in range(MAX_NOTES)]
    assert graph.ui["groups"] == [] and graph.to_dict()["ui"]["notes"] == graph.ui["notes"]
    assert len(graph.subgraphs["Inner"].ui["notes"]) == MAX_NOTES
    assert any("subgraph 'Inner': ui.notes holds 20000" in str(w.message) for w in caught)


def test_a_graph_within_the_cap_is_untouched_and_the_cap_is_comfyuis(recwarn):
    """500 notes load as written, without a warning; the cap is the ComfyUI import's."""
    assert len(graph_from_dict(_file(MAX_NOTES)).ui["notes"]) == MAX_NOTES
    assert not [w for w in recwarn if issubclass(w.category, NotesLimitWarning)]
    assert MAX_NOTES == comfyui.MAX_NOTES
