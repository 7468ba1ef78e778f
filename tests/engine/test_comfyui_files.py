"""ComfyUI files as ComfyUI writes them: WebPs with the graph in EXIF, PrimitiveNodes shared by several inputs, and
legacy group nodes (`workflow>NAME`) whose definition the file carries (`extra.groupNodes`)."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from nodegraph import Session
from nodegraph.cli import main
from nodegraph.comfyui import workflow_to_prompt
from nodegraph.errors import GraphValidationError
from nodegraph.graph import foreign_prompt, foreign_prompt_from_bytes, graph_from_bytes, import_foreign

PROMPT = {"5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}}
WORKFLOW = {"last_node_id": 5, "links": [], "nodes": [
    {"id": 5, "type": "EmptyLatentImage", "pos": [0, 0], "widgets_values": [64, 64, 1]}]}


def comfyui_webp(prompt: dict | None = PROMPT, workflow: dict | None = WORKFLOW) -> bytes:
    """A WebP as ComfyUI's SaveAnimatedWEBP writes it: "prompt:<json>" in EXIF 0x0110 (Model), each extra_pnginfo
    entry as "<key>:<json>" from 0x010F (Make) down."""
    exif = Image.Exif()
    if prompt is not None:
        exif[0x0110] = "prompt:" + json.dumps(prompt)
    if workflow is not None:
        exif[0x010F] = "workflow:" + json.dumps(workflow)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="WEBP", exif=exif)
    return buffer.getvalue()


def test_a_comfyui_webp_gives_its_prompt_first_then_its_workflow():
    """The CLI / Session read a ComfyUI WebP's API prompt (as a PNG's prompt chunk), else its workflow."""
    assert foreign_prompt_from_bytes(comfyui_webp()) == PROMPT
    assert foreign_prompt_from_bytes(comfyui_webp(prompt=None)) == WORKFLOW


def test_a_comfyui_webp_is_named_as_such_and_run_imports_it(tmp_path, capsys):
    """`validate` on a ComfyUI WebP imports it (it said "a WebP image … holds no graph", invalid_json)."""
    path = tmp_path / "clip.webp"
    path.write_bytes(comfyui_webp())
    with pytest.raises(GraphValidationError) as caught:
        graph_from_bytes(path.read_bytes(), path.name)
    assert [e.code for e in caught.value.errors] == ["foreign_format"]
    assert caught.value.errors[0].details == {"tool": "comfyui", "format": "api"}
    assert foreign_prompt(path) == PROMPT
    main(["validate", str(path)])
    assert "is a ComfyUI API prompt; imported it" in capsys.readouterr().err
    graph = Session().import_comfyui(path)
    assert graph.to_dict()["nodes"]["5"]["type"] == "EmptyLatent"
    assert Session().import_comfyui(path.read_bytes()).to_dict()["nodes"]["5"]["type"] == "EmptyLatent"


def test_a_webp_without_any_graph_is_refused_with_its_own_code_and_a_true_message():
    """A plain WebP is `invalid_format` (not invalid_json) and the message names ComfyUI's records too."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="WEBP")
    with pytest.raises(GraphValidationError) as caught:
        graph_from_bytes(buffer.getvalue(), "photo.webp")
    error = caught.value.errors[0]
    assert error.code == "invalid_format" and error.details == {"file_kind": "a WebP image"}
    assert "only images saved by SaveImage" not in error.message and "ComfyUI's prompt / workflow" in error.message


def test_a_comfyui_webp_whose_text_is_not_json_says_so():
    """ComfyUI's EXIF text that is not a prompt is `invalid_json` naming ComfyUI, not "holds no graph"."""
    exif = Image.Exif()
    exif[0x0110] = "prompt:{not json"
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="WEBP", exif=exif)
    with pytest.raises(GraphValidationError, match="ComfyUI's \"prompt\" / \"workflow\" EXIF text"):
        graph_from_bytes(buffer.getvalue(), "x.webp")
    assert foreign_prompt_from_bytes(buffer.getvalue()) is None


def primitive(node_id: int, value, links: list[int], kind: str = "INT", title: str | None = None, control=None):
    values = [value] if control is None else [value, control]
    return {"id": node_id, "type": "PrimitiveNode", "pos": [10, 20], "widgets_values": values,
            "outputs": [{"name": kind, "type": kind, "links": links, "widget": {"name": "x"}}],
            **({"title": title} if title else {})}


def encoder(node_id: int, link: int) -> dict:
    return {"id": node_id, "type": "CLIPTextEncode", "pos": [300, node_id * 100], "widgets_values": ["ignored"],
            "inputs": [{"name": "clip", "type": "CLIP", "link": None},
                       {"name": "text", "type": "STRING", "link": link, "widget": {"name": "text"}}]}


def test_a_primitive_node_feeding_two_inputs_becomes_one_shared_node():
    """A PrimitiveNode feeding two encoders is one String linked to both, with its title and place (was two copies)."""
    data = {"nodes": [primitive(1, "a cat", [11, 12], "STRING", title="Prompt"), encoder(2, 11), encoder(3, 12)],
            "links": [[11, 1, 0, 2, 1, "STRING"], [12, 1, 0, 3, 1, "STRING"]]}
    graph = import_foreign(data)
    assert graph["nodes"]["1"] == {"type": "String", "inputs": {"value": "a cat"}, "title": "Prompt"}
    assert graph["nodes"]["2"]["inputs"]["text"] == {"node": "1", "output": "value"}
    assert graph["nodes"]["3"]["inputs"]["text"] == {"node": "1", "output": "value"}
    assert graph["ui"]["nodes"]["1"]["position"] == [10, 20]


def test_a_primitive_node_feeding_one_input_or_a_drawn_seed_stays_inlined():
    """One input: a literal, as before; a seed drawn each run ("randomize") keeps its seed mode on each input."""
    one = {"nodes": [primitive(1, "a cat", [11], "STRING"), encoder(2, 11)], "links": [[11, 1, 0, 2, 1, "STRING"]]}
    assert workflow_to_prompt(one)["2"]["inputs"]["text"] == "a cat"
    sampler = {"id": 4, "type": "KSampler", "inputs": [{"name": "seed", "type": "INT", "link": 21,
                                                        "widget": {"name": "seed"}}],
               "widgets_values": [0, "fixed", 20, 8, "euler", "normal", 1]}
    other = {**sampler, "id": 5, "inputs": [{**sampler["inputs"][0], "link": 22}]}
    seeds = {"nodes": [primitive(1, 7, [21, 22], control="randomize"), sampler, other],
             "links": [[21, 1, 0, 4, 0, "INT"], [22, 1, 0, 5, 0, "INT"]]}
    prompt = workflow_to_prompt(seeds)
    assert "1" not in prompt and prompt["4"]["inputs"]["seed"] == 7 and prompt["5"]["inputs"]["seed"] == 7
    assert prompt["4"]["_meta"]["seed_modes"] == {"seed": "randomize"}
    fixed = workflow_to_prompt({**seeds, "nodes": [primitive(1, 7, [21, 22], control="fixed"), sampler, other]})
    assert fixed["1"]["class_type"] == "PrimitiveInt" and fixed["4"]["inputs"]["seed"] == ["1", 0]


def test_a_shared_primitive_stays_a_literal_where_the_value_decides_the_translation():
    """KSamplerAdvanced's steps decide its split at import: a shared steps value stays a literal there."""
    def advanced(node_id: int, link: int) -> dict:
        return {"id": node_id, "type": "KSamplerAdvanced", "inputs": [
            {"name": "steps", "type": "INT", "link": link, "widget": {"name": "steps"}}],
            "widgets_values": ["enable", 1, "fixed", 25, 8, "euler", "normal", 0, 25, "disable"]}
    data = {"nodes": [primitive(1, 25, [21, 22]), advanced(4, 21), advanced(5, 22)],
            "links": [[21, 1, 0, 4, 0, "INT"], [22, 1, 0, 5, 0, "INT"]]}
    prompt = workflow_to_prompt(data)
    assert "1" not in prompt and prompt["4"]["inputs"]["steps"] == 25 and prompt["5"]["inputs"]["steps"] == 25


def group_workflow(widgets: list) -> dict:
    """A workflow with one legacy group node "Pair" (an EmptyLatentImage feeding a VAEDecode), as ComfyUI's frontend
    saved them: the instance's widgets are its inner nodes', its input the VAEDecode's vae, its output the image."""
    definition = {
        "nodes": [{"index": 0, "type": "EmptyLatentImage", "pos": [100, 100], "widgets_values": [512, 512, 1],
                   "outputs": [{"name": "LATENT", "type": "LATENT", "links": []}]},
                  {"index": 1, "type": "VAEDecode", "pos": [400, 100],
                   "inputs": [{"name": "samples", "type": "LATENT", "link": None},
                              {"name": "vae", "type": "VAE", "link": None}],
                   "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": []}]}],
        "links": [[0, 0, 1, 0, 1, "LATENT"], [None, 2, 1, 1, 4, "VAE"]],
        "external": [[1, 0, "IMAGE"]]}
    return {"extra": {"groupNodes": {"Pair": definition}}, "links": [[7, 4, 0, 37, 0, "VAE"], [8, 37, 0, 9, 0, "IMAGE"]],
            "nodes": [{"id": 4, "type": "VAELoader", "widgets_values": ["vae.safetensors"],
                       "outputs": [{"name": "VAE", "type": "VAE", "links": [7]}]},
                      {"id": 37, "type": "workflow>Pair", "pos": [1000, 500], "widgets_values": widgets,
                       "inputs": [{"name": "vae", "type": "VAE", "link": 7}],
                       "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [8]}]},
                      {"id": 9, "type": "SaveImage", "widgets_values": ["out"],
                       "inputs": [{"name": "images", "type": "IMAGE", "link": 8}]}]}


def test_a_legacy_group_node_is_expanded_from_its_definition():
    """`workflow>Pair` becomes its inner nodes "37:0", "37:1" (as ComfyUI's API prompt names them), its widget
    values and links mapped by the definition (it was one placeholder)."""
    prompt = workflow_to_prompt(group_workflow([640, 384, 2]))
    assert prompt["37:0"]["class_type"] == "EmptyLatentImage"
    assert prompt["37:0"]["inputs"] == {"width": 640, "height": 384, "batch_size": 2}
    assert prompt["37:1"]["inputs"] == {"samples": ["37:0", 0], "vae": ["4", 0]}
    assert prompt["9"]["inputs"]["images"] == ["37:1", 0]
    assert prompt["37:0"]["_meta"]["position"] == [1000, 500]
    assert "37" not in prompt


def test_a_group_node_that_does_not_match_its_definition_stays_a_placeholder():
    """Widget values of another count than the definition's: left as it is (the message names the fix)."""
    prompt = workflow_to_prompt(group_workflow([640, 384]))
    assert prompt["37"]["class_type"] == "workflow>Pair" and "37:0" not in prompt


def group_bomb(instances: int, inner_links: int, outer_links: int = 0) -> dict:
    """A workflow of `instances` uses of one legacy group node whose definition is one node and `inner_links`
    links, beside `outer_links` links between two other nodes (hostile5's bomb: 500 × 2,000 links in 62 KB)."""
    definition = {"nodes": [{"index": 0, "type": "EmptyLatentImage", "widgets_values": []}],
                  "links": [[0, 0, 0, 0]] * inner_links}
    nodes = [{"id": i, "type": "workflow>g", "inputs": [], "outputs": [], "widgets_values": []}
             for i in range(1, instances + 1)]
    links = [[k, "a", 0, "b", 0, "LATENT"] for k in range(outer_links)]
    return {"extra": {"groupNodes": {"g": definition}}, "nodes": nodes, "links": links}


def test_group_node_links_are_bounded_before_they_are_copied():
    """500 instances of a definition with 2,000 links (a million copied links) are refused at once: only nodes
    and bytes were bounded, and the 62 KB file held a server thread for 4.5 minutes."""
    import time

    from nodegraph import comfyui

    started = time.monotonic()
    with pytest.raises(comfyui.WorkflowError, match="200000 links"):
        comfyui.expand_group_nodes(group_bomb(500, 2_000))
    assert time.monotonic() - started < 1.0


def test_group_node_instances_do_not_each_read_every_link():
    """20,000 instances beside 100,000 outer links expand in well under a second (each instance read every link:
    two billion reads)."""
    import time

    from nodegraph import comfyui

    started = time.monotonic()
    expanded = comfyui.expand_group_nodes(group_bomb(20_000, 0, 100_000))
    assert len(expanded["nodes"]) == 20_000 and len(expanded["links"]) == 100_000
    assert time.monotonic() - started < 3.0


def test_group_node_expansion_is_bounded(monkeypatch):
    """Past MAX_EXPANDED_WORKFLOW_NODES the expansion stops with a WorkflowError, as subgraphs do."""
    from nodegraph import comfyui

    monkeypatch.setattr(comfyui, "MAX_EXPANDED_WORKFLOW_NODES", 3)
    with pytest.raises(comfyui.WorkflowError, match="group nodes expand to more than 3 nodes"):
        workflow_to_prompt(group_workflow([640, 384, 2]))
