"""Where an expanded ComfyUI subgraph's inner nodes and groups land (`comfyui.expand_subgraphs`): as a block where the
instance stood, the outer nodes and groups moved right / down to make room for it (the editor shows it so)."""

from __future__ import annotations

from nodegraph.comfyui import expand_subgraphs, workflow_groups
from nodegraph.graph import import_foreign

SUB = "5c0ffee0-1234-4abc-8def-000000000001"


def instance_workflow():
    """An instance 530×660 at (130, -210) of a 6-node definition 1380 wide (our repro wf_subgraph_proxywidgets.json's
    shape), Save Image right of it, a Preview below it, a group around Save Image and one inside the definition."""
    inner = [{"id": i, "type": "Note", "pos": list(pos), "size": [270, 100], "widgets_values": [f"n{i}"]}
             for i, pos in ((4, (110, 200)), (6, (430, 200)), (13, (110, 630)), (3, (880, 270)), (8, (1220, 160)))]
    definition = {"id": SUB, "name": "SD Text to Image", "nodes": inner, "links": [],
                  "groups": [{"id": 2, "title": "Step2 - Image size", "bounding": [100, 560, 290, 200]}]}
    return {"nodes": [{"id": 83, "type": SUB, "pos": [130, -210], "size": [530, 660], "inputs": []},
                      {"id": 60, "type": "SaveImage", "pos": [690, -210], "size": [300, 300], "inputs": []},
                      {"id": 61, "type": "PreviewImage", "pos": [130, 600], "size": [300, 300], "inputs": []}],
            "links": [], "groups": [{"id": 1, "title": "Out", "bounding": [680, -250, 320, 360]}],
            "definitions": {"subgraphs": [definition]}}


def test_the_outer_nodes_make_room_for_the_expanded_block():
    expanded = expand_subgraphs(instance_workflow())
    pos = {str(n["id"]): n["pos"] for n in expanded["nodes"]}
    # the block starts where the instance stood: its top-left inner node at the instance's corner
    assert pos["83:4"] == [130, -210 + 40] and pos["83:8"] == [130 + 1110, -210]
    block_right = max(x for key, (x, _) in pos.items() if key.startswith("83:")) + 270
    # Save Image (right of the instance) moved right past the block; Preview (below it) down past the block
    assert pos["60"][0] >= block_right and pos["60"][1] == -210
    block_bottom = max(y for key, (_, y) in pos.items() if key.startswith("83:")) + 100
    assert pos["61"][1] >= block_bottom and pos["61"][0] == 130


def test_the_definitions_groups_come_with_the_block_and_outer_groups_move_with_their_nodes():
    groups = {g["title"]: g["bounds"] for g in workflow_groups(expand_subgraphs(instance_workflow()))}
    assert groups["Step2 - Image size"] == [120, 190, 290, 200]          # around inner node 13, at (130, 260)
    save_x = next(n["pos"][0] for n in expand_subgraphs(instance_workflow())["nodes"] if n["id"] == 60)
    assert groups["Out"][0] == save_x - 10                                # still around Save Image


def test_the_import_keeps_the_inner_groups_and_lists_the_expansion():
    graph = import_foreign(instance_workflow())
    assert [g["title"] for g in graph["ui"]["groups"]] == ["Out", "Step2 - Image size"]
    assert graph["metadata"]["comfyui_subgraphs"] == [{"node": "83", "subgraph": "SD Text to Image", "nodes": 5}]
