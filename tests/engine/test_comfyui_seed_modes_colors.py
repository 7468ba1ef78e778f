"""ComfyUI UI workflows: a seed's "control after generate" becomes the editor's seed mode, and node colours stay
(a ComfyUI user's pass: an "increment" seed came in fixed, so Run again gave the same image from the cache, and
the red negative prompt came in plain)."""

from __future__ import annotations

from nodegraph.graph import import_foreign

def node(node_id, kind, widgets=None, inputs=(), **extra):
    return {"id": node_id, "type": kind, "mode": 0, "pos": [node_id * 10, 0],
            "inputs": [{"name": n, "type": "*", "link": link, **({"widget": {"name": n}} if n == "seed" else {})}
                       for n, link in inputs],
            **({"widgets_values": widgets} if widgets is not None else {}), **extra}


def workflow(*nodes, links=()) -> dict:
    return {"last_node_id": 20, "last_link_id": 20, "nodes": list(nodes), "links": list(links), "version": 0.4}


def ui_nodes(graph: dict) -> dict:
    return graph.get("ui", {}).get("nodes", {})


def test_a_seeds_control_after_generate_becomes_its_seed_mode():
    """randomize, increment and decrement are kept by our input name; fixed (the default) writes nothing."""
    graph = import_foreign(workflow(
        node(3, "KSampler", [987654321, "increment", 8, 6.5, "euler", "normal", 1]),
        node(4, "KSampler", [5, "randomize", 8, 6.5, "euler", "normal", 1]),
        node(5, "KSampler", [5, "decrement", 8, 6.5, "euler", "normal", 1]),
        node(6, "KSampler", [5, "fixed", 8, 6.5, "euler", "normal", 1]),
        node(7, "KSampler", [5, 8, 6.5, "euler", "normal", 1]),                      # written without the control
        node(8, "KSamplerAdvanced", ["enable", 11, "increment", 8, 6.5, "euler", "normal", 0, 10000, "disable"]),
    ))
    assert graph["nodes"]["3"]["inputs"]["seed"] == 987654321
    modes = {node_id: entry.get("seed_modes") for node_id, entry in ui_nodes(graph).items()}
    assert modes == {"3": {"seed": "increment"}, "4": {"seed": "randomize"}, "5": {"seed": "decrement"},
                     "6": None, "7": None, "8": {"seed": "increment"}}     # noise_seed is our KSampler's seed
    assert graph["nodes"]["8"]["type"] == "KSampler"


def test_a_primitive_node_feeding_a_seed_gives_it_its_control():
    """A PrimitiveNode's value becomes the seed's literal, its "control after generate" the seed's mode."""
    graph = import_foreign(workflow(
        node(3, "KSampler", [0, "fixed", 8, 6.5, "euler", "normal", 1], inputs=[("seed", 1)]),
        node(11, "PrimitiveNode", [123456789012, "randomize"], outputs=[{"name": "INT", "type": "INT", "links": [1]}]),
        links=[[1, 11, 0, 3, 0, "INT"]],
    ))
    assert graph["nodes"]["3"]["inputs"]["seed"] == 123456789012
    assert ui_nodes(graph)["3"]["seed_modes"] == {"seed": "randomize"}


def test_node_colours_are_kept_when_they_are_hex_colours():
    """ComfyUI's color / bgcolor ("#322", "#533": its red) go to ui.nodes.<id>; anything else is left out."""
    graph = import_foreign(workflow(
        node(7, "CLIPTextEncode", ["text, watermark"], color="#322", bgcolor="#533"),
        node(8, "CLIPTextEncode", ["x"], color="#A1B2C3", bgcolor="#a1b2c3ff"),
        node(9, "CLIPTextEncode", ["x"], color="red; background: url(x)", bgcolor=["#333"]),
    ))
    nodes = ui_nodes(graph)
    assert (nodes["7"]["color"], nodes["7"]["bgcolor"]) == ("#322", "#533")
    assert (nodes["8"]["color"], nodes["8"]["bgcolor"]) == ("#a1b2c3", "#a1b2c3ff")
    assert "color" not in nodes["9"] and "bgcolor" not in nodes["9"]

