"""graphs/inversion_edit.json (#16 §5, Q33): DDIM inversion round-trips, and one changed word changes only the shape."""

from __future__ import annotations

import json
from pathlib import Path

from nodegraph import Session
from nodes.training import world_detector

GRAPH = Path(__file__).resolve().parents[2] / "graphs" / "inversion_edit.json"


def test_inversion_edit_keeps_the_composition_and_changes_the_shape():
    """The round trip is within 0.05 of the input; the edit is detected as a large red square on the left, on white."""
    graph = json.loads(GRAPH.read_text())
    for label, node in (("source", "source"), ("round_trip", "decode_round_trip"), ("edit", "decode_edit")):
        graph["nodes"][f"show_{label}"] = {"type": "ShowValue", "inputs": {"value": {"node": node, "output": "image"}}}
    out = Session().run(graph).outputs
    source, round_trip, edit = (out[f"show_{k}"]["value"] for k in ("source", "round_trip", "edit"))
    assert float((round_trip - source).abs().mean()) < 0.05
    found = world_detector.detect(edit[0])
    item = found.objects[0]
    assert (item.shape, item.colour, item.size, item.position, found.background) == (
        "square", "red", "large", "left", "white")
    assert world_detector.detect(round_trip[0]).objects[0].shape == "circle"
