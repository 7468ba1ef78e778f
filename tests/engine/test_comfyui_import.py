"""ComfyUI UI workflows: subgraphs (the frontend's `definitions.subgraphs`, 2025) expanded, bypassed nodes, names."""

from __future__ import annotations

import json
import time

import pytest

from nodegraph import GraphValidationError, Session
from nodegraph.cli import main
from nodegraph.comfyui import MAX_EXPANDED_WORKFLOW_NODES, expand_subgraphs
from nodegraph.graph import import_foreign

PROMPTS = "11111111-2222-3333-4444-555555555555"
PASS = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"


def node(node_id, kind, inputs=(), widgets=None, mode=0, pos=(0, 0)):
    return {"id": node_id, "type": kind, "mode": mode, "pos": list(pos),
            "inputs": [{"name": n, "type": "*", "link": link} for n, link in inputs],
            **({"widgets_values": widgets} if widgets is not None else {})}


def link(link_id, origin, origin_slot, target, target_slot):
    """A link inside a definition, written as the frontend writes them there (an object)."""
    return {"id": link_id, "origin_id": origin, "origin_slot": origin_slot, "target_id": target,
            "target_slot": target_slot, "type": "*"}


def prompts_definition() -> dict:
    """Two CLIPTextEncodes as one subgraph: inputs clip (slot 0) and text (slot 1, a promoted widget of the first
    encoder); outputs positive and negative."""
    first = node(6, "CLIPTextEncode", [("clip", 1)], ["the inner value, overridden"], pos=(100, 100))
    first["inputs"].append({"name": "text", "type": "STRING", "widget": {"name": "text"}, "link": 3})
    return {"id": PROMPTS, "name": "Prompts", "version": 1,
            "inputNode": {"id": -10, "bounding": [0, 0, 10, 10]}, "outputNode": {"id": -20, "bounding": [0, 0, 10, 10]},
            "inputs": [{"id": "i0", "name": "clip", "type": "CLIP", "linkIds": [1, 2]},
                       {"id": "i1", "name": "text", "type": "STRING", "linkIds": [3]}],
            "outputs": [{"id": "o0", "name": "positive", "type": "CONDITIONING", "linkIds": [4]},
                        {"id": "o1", "name": "negative", "type": "CONDITIONING", "linkIds": [5]}],
            "nodes": [first, node(7, "CLIPTextEncode", [("clip", 2)], [""], pos=(100, 300))],
            "links": [link(1, -10, 0, 6, 0), link(2, -10, 0, 7, 0), link(3, -10, 1, 6, 1),
                      link(4, 6, 0, -20, 0), link(5, 7, 0, -20, 1)]}


def txt2img_workflow(prompt_inside: bool) -> dict:
    """ComfyUI's default txt2img; with `prompt_inside`, its two text encoders are one subgraph instance (node 20)."""
    outer = [node(4, "CheckpointLoaderSimple", widgets=["tiny_world_v6f.safetensors"]),
             node(5, "EmptyLatentImage", widgets=[64, 64, 1]),
             node(3, "KSampler", [("model", 1), ("positive", 4), ("negative", 6), ("latent_image", 2)],
                  [42, "randomize", 20, 5, "dpmpp_2m", "karras", 1]),
             node(8, "VAEDecode", [("samples", 7), ("vae", 8)]), node(9, "SaveImage", [("images", 9)], ["ComfyUI"])]
    links = [[1, 4, 0, 3, 0, "MODEL"], [2, 5, 0, 3, 3, "LATENT"], [7, 3, 0, 8, 0, "LATENT"], [8, 4, 2, 8, 1, "VAE"],
             [9, 8, 0, 9, 0, "IMAGE"]]
    prompt = "a small red circle on the left, on a blue background"
    if not prompt_inside:
        return {"version": 0.4, "nodes": [*outer, node(6, "CLIPTextEncode", [("clip", 3)], [prompt]),
                                          node(7, "CLIPTextEncode", [("clip", 5)], [""])],
                "links": [*links, [3, 4, 1, 6, 0, "CLIP"], [5, 4, 1, 7, 0, "CLIP"], [4, 6, 0, 3, 1, "CONDITIONING"],
                          [6, 7, 0, 3, 2, "CONDITIONING"]]}
    instance = node(20, PROMPTS, [("clip", 3)], [prompt], pos=(500, 400))
    instance["inputs"].append({"name": "text", "type": "STRING", "widget": {"name": "text"}, "link": None})
    return {"version": 0.4, "nodes": [*outer, instance],
            "links": [*links, [3, 4, 1, 20, 0, "CLIP"], [4, 20, 0, 3, 1, "CONDITIONING"],
                      [6, 20, 1, 3, 2, "CONDITIONING"]],
            "definitions": {"subgraphs": [prompts_definition()]}}


def test_a_subgraph_instance_imports_as_its_inner_nodes_and_means_what_the_flat_workflow_means():
    """A workflow saved by ComfyUI's frontend since 2025 keeps its subgraphs under `definitions.subgraphs` and each
    instance as a node whose type is the definition's id: the import refused it as an unknown type ("unpack it in
    ComfyUI"). Now the instance becomes its inner nodes (ids `20:6`, as ComfyUI's own API export writes them): links
    into and out of it, and the promoted `text` widget's value, land where the flat workflow puts them."""
    flat = import_foreign(txt2img_workflow(prompt_inside=False))
    nested = import_foreign(txt2img_workflow(prompt_inside=True))
    renamed = {"20:6": "6", "20:7": "7"}

    def plain(graph):
        text = json.dumps(graph["nodes"], sort_keys=True)
        for new, old in renamed.items():
            text = text.replace(f'"{new}"', f'"{old}"')
        return json.loads(text)

    assert plain(nested) == plain(flat)
    assert nested["nodes"]["20:6"]["inputs"]["text"] == "a small red circle on the left, on a blue background"
    assert nested["metadata"]["comfyui_subgraphs"] == [{"node": "20", "subgraph": "Prompts", "nodes": 2}]
    # the inner nodes start where the instance stood, in their own layout
    assert nested["ui"]["nodes"]["20:6"] == {"position": [500, 400]}
    assert nested["ui"]["nodes"]["20:7"] == {"position": [500, 600]}
    assert Session(builtins=True).validate(nested) == []


def test_run_names_the_expanded_subgraph(tmp_path, capsys):
    (tmp_path / "workflow.json").write_text(json.dumps(txt2img_workflow(prompt_inside=True)))
    assert main(["validate", str(tmp_path / "workflow.json"), "--no-plugins"]) == 0
    err = capsys.readouterr().err
    assert "note: subgraph 'Prompts' (node '20') is expanded into its 2 node(s), ids 20:…" in err


def pass_definition(inner: dict | None = None) -> dict:
    """A subgraph whose one output is its one input (a wire straight through), optionally around an instance."""
    nodes, links = [], [link(1, -10, 0, -20, 0)]
    if inner is not None:
        nodes = [inner]
        links = [link(1, -10, 0, inner["id"], 0), link(2, inner["id"], 0, -20, 0)]
    return {"id": PASS, "name": "Pass", "inputNode": {"id": -10}, "outputNode": {"id": -20},
            "inputs": [{"id": "x", "name": "x", "type": "*"}], "outputs": [{"id": "y", "name": "y", "type": "*"}],
            "nodes": nodes, "links": links}


def test_nested_and_chained_instances_and_wires_straight_through():
    """An instance inside an instance (Outer holds Pass), an instance feeding another, and a definition whose output
    is its input: every link ends at the real node that makes the value."""
    outer_id = "00000000-0000-4000-8000-000000000001"
    outer = {"id": outer_id, "name": "Outer", "inputNode": {"id": -10}, "outputNode": {"id": -20},
             "inputs": [{"id": "a", "name": "image", "type": "IMAGE"}], "outputs": [{"id": "b", "name": "out"}],
             "nodes": [node(1, PASS, [("x", 11)]), node(2, "ImageInvert", [("image", 12)])],
             "links": [link(11, -10, 0, 1, 0), link(12, 1, 0, 2, 0), link(13, 2, 0, -20, 0)]}
    workflow = {"nodes": [node(1, "LoadImage", widgets=["a.png", "image"]), node(2, outer_id, [("image", 1)]),
                          node(3, PASS, [("x", 2)]), node(4, "SaveImage", [("images", 3)], ["x"])],
                "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"], [3, 3, 0, 4, 0, "IMAGE"]],
                "definitions": {"subgraphs": [outer, pass_definition()]}}
    graph = import_foreign(workflow)
    assert sorted(graph["nodes"]) == ["1", "2:2", "4"]
    assert graph["nodes"]["2:2"]["inputs"]["image"] == {"node": "1", "output": "image"}     # through 2:1 (Pass)
    assert graph["nodes"]["4"]["inputs"]["images"] == {"node": "2:2", "output": "0"}        # through 3 (Pass)


def test_a_muted_or_bypassed_instance_mutes_or_bypasses_its_inner_nodes():
    for mode, ours in ((2, "mute"), (4, "bypass")):
        workflow = txt2img_workflow(prompt_inside=True)
        workflow["nodes"][-1]["mode"] = mode
        graph = import_foreign(workflow)
        assert graph["nodes"]["20:6"]["mode"] == ours and graph["nodes"]["20:7"]["mode"] == ours


def test_an_unconnected_instance_input_leaves_the_inner_widget_value():
    workflow = txt2img_workflow(prompt_inside=True)
    instance = workflow["nodes"][-1]
    instance["widgets_values"] = []          # no promoted value written: the inner node's own value stays
    graph = import_foreign(workflow)
    assert graph["nodes"]["20:6"]["inputs"]["text"] == "the inner value, overridden"
    instance["inputs"][0]["link"] = None     # the clip input unconnected: the inner encoders need one (validation)
    graph = import_foreign(workflow)
    assert "text_encoder" not in graph["nodes"]["20:7"]["inputs"]


def test_a_subgraph_that_contains_itself_is_refused_by_name():
    for definitions in ([pass_definition(node(1, PASS, [("x", 1)]))],
                        [{**pass_definition(node(1, "00000000-0000-4000-8000-00000000000b", [("x", 1)])),
                          "name": "A"},
                         {**pass_definition(node(1, PASS, [("x", 1)])), "id": "00000000-0000-4000-8000-00000000000b",
                          "name": "B"}]):
        workflow = {"nodes": [node(1, PASS)], "links": [], "definitions": {"subgraphs": definitions}}
        with pytest.raises(GraphValidationError, match="contains itself"):
            import_foreign(workflow)


def test_an_expansion_bomb_is_refused_quickly():
    """Six levels of a definition holding ten instances of the next: a million nodes from a 3 KB file."""
    ids = [f"00000000-0000-4000-8000-{level:012d}" for level in range(7)]
    definitions = [{"id": ids[level], "name": f"L{level}", "links": [],
                    "nodes": [node(k, ids[level + 1] if level < 6 else "Int", widgets=[1]) for k in range(10)]}
                   for level in range(7)]
    workflow = {"nodes": [node(1, ids[0])], "links": [], "definitions": {"subgraphs": definitions}}
    started = time.perf_counter()
    with pytest.raises(GraphValidationError, match=f"more than {MAX_EXPANDED_WORKFLOW_NODES} nodes"):
        import_foreign(workflow)
    assert time.perf_counter() - started < 20


def test_an_instance_without_its_definition_says_the_definition_is_missing():
    workflow = txt2img_workflow(prompt_inside=True)
    del workflow["definitions"]
    errors = Session(builtins=True).validate(import_foreign(workflow))
    (error,) = [e for e in errors if e.node_id == "20"]
    assert error.code == "unknown_node_type" and "definition is not in the file" in error.message


@pytest.mark.parametrize("definitions", [
    {"subgraphs": "junk"}, {"subgraphs": [None, 3, {"id": PROMPTS}, {"id": PROMPTS, "nodes": "x"}]},
    {"subgraphs": [{"id": PROMPTS, "nodes": [None, {"id": [1]}, {"id": 6, "type": 5}], "links": "x",
                    "inputNode": 3}]},
    {"subgraphs": [{**prompts_definition(), "links": [None, [1], {"id": {"a": 1}}, ["a", "b", "c", "d", "e"]]}]},
])
def test_a_malformed_definition_imports_what_it_can_and_never_crashes(definitions):
    workflow = txt2img_workflow(prompt_inside=True)
    workflow["definitions"] = definitions
    workflow["nodes"][-1]["widgets_values"] = {"not": "a list"}
    try:
        graph = import_foreign(workflow)
    except GraphValidationError as exc:       # what is not as ComfyUI writes it is named
        assert exc.errors[0].code == "invalid_format"
    else:
        assert graph["metadata"]["imported_from"] == "comfyui-workflow"


def test_a_workflow_without_instances_is_left_as_it_is():
    workflow = txt2img_workflow(prompt_inside=False)
    workflow["definitions"] = {"subgraphs": [prompts_definition()]}        # defined, never used
    assert expand_subgraphs(workflow) is workflow


def test_a_bypassed_node_of_a_type_we_lack_is_left_out_with_its_links_passed_through(tmp_path, capsys):
    """A txt2img with a bypassed "Image Film Grain" (a custom node nobody here has) before SaveImage was refused
    ("unknown node type … Did you mean 'ImageGrid'?"); ComfyUI leaves a bypassed node out of what it runs, so the
    workflow ran there. Now it is left out at import, the SaveImage fed from the decode (by the types the workflow
    wrote: the input of the output's slot first), and the run says so."""
    workflow = txt2img_workflow(prompt_inside=False)
    grain = {"id": 30, "type": "Image Film Grain", "mode": 4, "widgets_values": [0.5, 1.0],
             "inputs": [{"name": "mask", "type": "MASK", "link": None}, {"name": "image", "type": "IMAGE", "link": 9}],
             "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [31]}]}
    workflow["nodes"].append(grain)
    save = next(n for n in workflow["nodes"] if n["type"] == "SaveImage")
    save["inputs"][0]["link"] = 31
    workflow["links"].append([31, 30, 0, 9, 0, "IMAGE"])
    graph = import_foreign(workflow, lambda node_type: None)
    assert "30" not in graph["nodes"] and graph["nodes"]["9"]["inputs"]["images"] == {"node": "8", "output": "image"}
    assert graph["metadata"]["comfyui_bypassed_left_out"] == [{"node": "30", "type": "Image Film Grain"}]
    assert Session(builtins=True).validate(graph) == []
    (tmp_path / "w.json").write_text(json.dumps(workflow))
    assert main(["validate", str(tmp_path / "w.json"), "--no-plugins"]) == 0
    assert "node '30' (Image Film Grain) is bypassed and of a type nodegraph lacks: left out" in capsys.readouterr().err
    # a bypassed node of a type we have stays, bypassed (the editor can turn it back on)
    decode = next(n for n in workflow["nodes"] if n["type"] == "VAEDecode")
    decode["mode"] = 4
    assert import_foreign(workflow, lambda node_type: None)["nodes"]["8"]["mode"] == "bypass"
    # nothing of its type to pass: the consumer's input is left unlinked (validation names it)
    grain["inputs"][1]["type"] = "LATENT"
    assert "images" not in import_foreign(workflow, lambda node_type: None)["nodes"]["9"]["inputs"]


def test_latent_upscale_by_image_scale_by_and_a_whole_schedule_ksampler_advanced_are_translated():
    """LatentUpscaleBy ("Did you mean 'LatentUpscale'?" without saying scale_by is its factor), ImageScaleBy,
    ImageScaleToTotalPixels and a KSamplerAdvanced that runs the whole schedule (the case its own message called
    "KSampler here") were refused; a partial KSamplerAdvanced is Schedule → SplitSigmas → Sample now
    (test_comfyui_split_schedule), one that stops early without its leftover noise still refused, with the recipe."""
    workflow = {"nodes": [
        node(1, "KSamplerAdvanced", [("latent_image", 9)],
             ["enable", 42, "fixed", 20, 6.5, "dpmpp_2m_sde_gpu", "karras", 0, 10000, "disable"]),
        node(2, "LatentUpscaleBy", [("samples", 1)], ["nearest-exact", 1.5]),
        node(3, "ImageScaleBy", [("image", 2)], ["lanczos", 0.5]),
        node(4, "ImageScaleToTotalPixels", [("image", 3)], ["bilinear", 1.0]),
        node(5, "KSamplerAdvanced", [], ["enable", 1, "fixed", 20, 6.5, "euler", "karras", 5, 10, "disable"]),
        node(9, "EmptyLatentImage", widgets=[64, 64, 1])],
        "links": [[1, 1, 0, 2, 0, "LATENT"], [2, 2, 0, 3, 0, "LATENT"], [3, 3, 0, 4, 0, "IMAGE"],
                  [9, 9, 0, 1, 0, "LATENT"]]}
    nodes = import_foreign(workflow)["nodes"]
    assert nodes["1"] == {"type": "KSampler", "inputs": {"seed": 42, "steps": 20, "cfg": 6.5, "sampler": "dpmpp_2m_sde",
                                                         "scheduler": "karras", "latent": {"node": "9", "output": "latent"}}}
    assert nodes["2"] == {"type": "LatentUpscale", "inputs": {"method": "nearest", "factor": 1.5,
                                                              "latent": {"node": "1", "output": "latent"}}}
    assert nodes["3"]["type"] == "ImageScaleBy" and nodes["3"]["inputs"] == {
        "method": "lanczos", "amount": 0.5, "images": {"node": "2", "output": "latent"}, "mode": "factor"}
    # ComfyUI's megapixel is 1024²: 1.0 of theirs is 1.048576 of ours (a re-test: 512² at 1.0 became 1000², not 1024²)
    assert nodes["4"]["inputs"]["mode"] == "megapixels" and nodes["4"]["inputs"]["amount"] == 1.048576
    assert nodes["5"]["type"] == "KSamplerAdvanced"          # stops at 10 of 20, its last step to 0: no split here
    # a stray "denoise" (no input of KSamplerAdvanced; ComfyUI ignores it) does not make a partial denoise
    stray = {"1": {"class_type": "KSamplerAdvanced", "inputs": {"add_noise": "enable", "noise_seed": 1, "steps": 20,
                                                                "start_at_step": 0, "end_at_step": 20, "denoise": 0.5}}}
    assert "denoise" not in import_foreign(stray)["nodes"]["1"]["inputs"]
    errors = Session(builtins=True).validate(import_foreign(workflow))
    (partial,) = [e for e in errors if e.node_id == "5"]
    assert "SplitSigmas" in partial.message and "docs/editor.md" in partial.message


def test_a_ksampler_advanced_with_steps_written_as_text_is_told_about_the_type():
    """ComfyUI reads an INT as int(value), so "4" and 4.0 run there; here "4" made the node a partial-schedule
    sampler, refused with the SplitSigmas recipe — a message about the wrong thing (a hostile pass). It is
    translated as KSampler now, and validation names the steps' type; a megapixel amount out of range is said
    against the value the user wrote (the import's note)."""
    for steps in ("4", 4.0):
        prompt = {"1": {"class_type": "KSamplerAdvanced", "inputs": {"add_noise": "enable", "noise_seed": 1,
                                                                     "steps": steps, "start_at_step": 0,
                                                                     "end_at_step": 10000}}}
        assert import_foreign(prompt)["nodes"]["1"]["type"] == "KSampler", steps
    errors = Session(builtins=True).validate(import_foreign(prompt | {"1": {**prompt["1"], "inputs": {
        **prompt["1"]["inputs"], "steps": "4"}}}))
    (wrong,) = [e for e in errors if e.node_id == "1" and e.input == "steps"]
    assert wrong.code == "type_mismatch" and "SplitSigmas" not in wrong.message
    scaled = {"2": {"class_type": "ImageScaleToTotalPixels", "inputs": {"upscale_method": "bilinear",
                                                                        "megapixels": 1e9, "image": ["1", 0]}}}
    (note,) = import_foreign(scaled)["metadata"]["translated_values"]
    assert note == {"node": "2", "input": "amount", "from": "megapixels=1e+09 (ComfyUI's unit)", "to": 1048576000.0}


@pytest.mark.parametrize("class_type", ["ConditioningCombine", "ConditioningSetArea", "ConditioningConcat"])
def test_conditioning_nodes_we_lack_say_so_instead_of_install_the_plugin(class_type):
    graph = {"format_version": 2, "nodes": {"c": {"type": class_type, "inputs": {}}}}
    (error,) = [e for e in Session(builtins=True).validate(graph) if e.node_id == "c"]
    assert "Install the plugin" not in error.message and "nodegraph has no" in error.message


def test_a_promoted_seed_with_its_control_value_keeps_the_instances_seed():
    """An instance's `widgets_values` [1234, "fixed"] for one promoted seed (the seed's "control after generate"
    beside it) did not match the one widget input, so every promoted value was dropped and the inner seed (42)
    ran instead, silently (a ComfyUI migrant's pass)."""
    sampler_id = "22222222-2222-4222-8222-222222222222"
    inner = node(3, "KSampler", [], [42, "randomize", 20, 5, "euler", "karras", 1])
    inner["inputs"] = [{"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": 1}]
    definition = {"id": sampler_id, "name": "Sampler", "inputNode": {"id": -10}, "outputNode": {"id": -20},
                  "inputs": [{"id": "s", "name": "seed", "type": "INT"}], "nodes": [inner],
                  "links": [link(1, -10, 0, 3, 0)]}
    for values in ([1234], [1234, "fixed"], [1234, "increment"]):
        instance = node(7, sampler_id, widgets=values)
        instance["inputs"] = [{"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": None}]
        workflow = {"nodes": [instance], "links": [], "definitions": {"subgraphs": [definition]}}
        assert import_foreign(workflow)["nodes"]["7:3"]["inputs"]["seed"] == 1234, values


def test_comfyuis_annotated_input_file_names_and_default_titles_are_understood(tmp_path):
    """ComfyUI's LoadImage writes "photo.png [input]" (its list names the folder); a %Empty Latent Image.width%
    token names a node by its default title, which a saved workflow leaves out. Both were refused."""
    from nodegraph.prefix_tokens import expand_graph

    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "photo.png [input]", "upload": "image"}},
              "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 1}},
              "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0],
                                                          "filename_prefix": "x_%Empty Latent Image.width%"}}}
    graph = import_foreign(prompt)
    assert graph["nodes"]["1"]["inputs"]["image"] == "photo.png"
    assert {"node": "1", "input": "image", "from": "photo.png [input]", "to": "photo.png"} in \
        graph["metadata"]["translated_values"]
    session = Session(builtins=True)
    expanded, errors = expand_graph(session.load(graph), session.registry)
    assert errors == [] and expanded.nodes["3"].inputs["filename_prefix"] == "x_64"


def test_hostile_subgraph_workflows_are_refused_by_name_and_quickly():
    """A hostile re-test: an outer node (or link) id "20:6" silently replaced instance 20's inner node (a prompt
    swapped in); instances of EMPTY definitions escaped the node cap (depth 7: 54 s, 3 GB); junk link values and
    1e308 positions raised TypeError / OverflowError; a definition whose input node has an inner node's id rewired
    that node."""
    workflow = txt2img_workflow(prompt_inside=True)
    workflow["nodes"].append(node("20:6", "CLIPTextEncode", [("clip", 3)], ["EVIL"]))
    with pytest.raises(GraphValidationError, match="node id '20:6' comes twice"):
        import_foreign(workflow)
    workflow = txt2img_workflow(prompt_inside=True)
    workflow["links"].append(["20:1", 4, 1, 5, 0, "CLIP"])
    with pytest.raises(GraphValidationError, match="link id '20:1' comes twice"):
        import_foreign(workflow)
    ids = [f"00000000-0000-4000-8000-{level:012d}" for level in range(8)]
    bomb = {"nodes": [node(1, ids[0])], "links": [], "definitions": {"subgraphs": [
        {"id": ids[level], "name": f"L{level}", "links": [],
         "nodes": [node(k, ids[level + 1]) for k in range(10)] if level < 7 else []} for level in range(8)]}}
    started = time.perf_counter()
    with pytest.raises(GraphValidationError, match="more than 50000 nodes"):
        import_foreign(bomb)
    assert time.perf_counter() - started < 10
    workflow = txt2img_workflow(prompt_inside=True)
    workflow["nodes"][-1]["inputs"][0]["link"] = [3]
    workflow["nodes"][-1]["pos"] = [1e308, 0]
    workflow["definitions"]["subgraphs"][0]["nodes"][0]["pos"] = [-1e308, 0]
    workflow["definitions"]["subgraphs"][0]["nodes"][1]["inputs"][0]["link"] = {"id": 2}
    graph = import_foreign(workflow)                  # no crash: what cannot be read links nothing
    assert "text_encoder" not in graph["nodes"]["20:7"]["inputs"]
    workflow = txt2img_workflow(prompt_inside=True)
    workflow["definitions"]["subgraphs"][0]["inputNode"]["id"] = 6
    with pytest.raises(GraphValidationError, match="input / output node id 6 is also the id of one of its inner"):
        import_foreign(workflow)


def test_a_left_out_bypassed_node_passes_by_the_consuming_inputs_type():
    """A bypassed unknown node whose output is typed "*" passed nothing ("KSampler needs input 'positive'"): ComfyUI
    matches the bypassed node's inputs against the consuming input's type."""
    workflow = txt2img_workflow(prompt_inside=False)
    workflow["nodes"].append({"id": 40, "type": "AnyFilter", "mode": 4,
                              "inputs": [{"name": "x", "type": "CONDITIONING", "link": 4}],
                              "outputs": [{"name": "out", "type": "*", "links": [41]}]})
    workflow["links"] = [link for link in workflow["links"] if link[0] != 4] + [[4, 6, 0, 40, 0, "CONDITIONING"],
                                                                              [41, 40, 0, 3, 1, "*"]]
    sampler = next(n for n in workflow["nodes"] if n["type"] == "KSampler")
    sampler["inputs"][1] = {"name": "positive", "type": "CONDITIONING", "link": 41}
    graph = import_foreign(workflow, lambda node_type: None)
    assert graph["nodes"]["3"]["inputs"]["positive"] == {"node": "6", "output": "conditioning"}


def clip_prompt(stop=-2, mode=None) -> dict:
    """ComfyUI's usual SD1.5 chain: checkpoint → LoraLoader → CLIPSetLastLayer → two CLIPTextEncodes."""
    layer = {"class_type": "CLIPSetLastLayer", "inputs": {"clip": ["10", 1], "stop_at_clip_layer": stop},
             **({"_meta": {"mode": mode}} if mode else {})}
    return {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
            "10": {"class_type": "LoraLoader", "inputs": {"model": ["4", 0], "clip": ["4", 1], "lora_name": "l.pt",
                                                          "strength_model": 0.8, "strength_clip": 0.8}},
            "11": layer,
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["11", 0]}},
            "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["11", 0]}}}


def test_clip_set_last_layer_becomes_the_clip_skip_of_the_encoders_it_feeds(tmp_path, capsys):
    """A real-models user's SD1.5 workflow was refused with the rewrite to do by hand; the import does it now."""
    graph = import_foreign(clip_prompt())
    nodes = graph["nodes"]
    assert "11" not in nodes
    for encoder in ("6", "7"):
        assert nodes[encoder]["inputs"]["clip_skip"] == 2
        assert nodes[encoder]["inputs"]["text_encoder"] == {"node": "10", "output": "text_encoder"}
    assert graph["metadata"]["comfyui_folded"] == [{"node": "11", "stop_at_clip_layer": -2, "clip_skip": 2,
                                                    "encoders": ["6", "7"], "not_reached": []}]
    assert graph["metadata"]["translated_values"] == [{
        "node": "11", "input": "stop_at_clip_layer", "from": -2,
        "to": "clip_skip 2 on EncodeText 6, 7 (CLIPSetLastLayer left out)"}]
    (tmp_path / "p.json").write_text(json.dumps(clip_prompt(-1)))
    main(["validate", str(tmp_path / "p.json"), "--no-plugins"])
    captured = capsys.readouterr()
    assert "note: node '11': stop_at_clip_layer -1 is 'clip_skip 1 on EncodeText 6, 7" in captured.err
    assert "unknown_node_type" not in captured.out


def test_clip_set_last_layer_is_followed_through_loras_and_stops_at_the_next_one():
    """Its layer reaches encoders behind a LoraLoader (ComfyUI's clone keeps it); a later CLIPSetLastLayer sets its
    own; a consumer that takes no clip_skip is named; the same in a UI workflow (widget value named)."""
    prompt = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
        "11": {"class_type": "CLIPSetLastLayer", "inputs": {"clip": ["4", 1], "stop_at_clip_layer": -3}},
        "10": {"class_type": "LoraLoader", "inputs": {"model": ["4", 0], "clip": ["11", 0], "lora_name": "l.pt"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a", "clip": ["10", 1]}},
        "12": {"class_type": "CLIPSetLastLayer", "inputs": {"clip": ["10", 1], "stop_at_clip_layer": -1}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "b", "clip": ["12", 0]}},
        "8": {"class_type": "CLIPTextEncodeSDXL", "inputs": {"clip": ["11", 0]}},
        "9": {"class_type": "CLIPTextEncode", "inputs": {"text": "c", "clip": ["4", 1]}}}
    graph = import_foreign(prompt)
    nodes = graph["nodes"]
    assert "11" not in nodes and "12" not in nodes
    assert nodes["10"]["inputs"]["text_encoder"] == {"node": "4", "output": "text_encoder"}
    assert nodes["6"]["inputs"]["clip_skip"] == 3 and nodes["7"]["inputs"]["clip_skip"] == 1
    assert nodes["7"]["inputs"]["text_encoder"] == {"node": "10", "output": "text_encoder"}
    assert "clip_skip" not in nodes["9"]["inputs"]                       # straight from the checkpoint: untouched
    assert nodes["8"]["inputs"]["clip"] == {"node": "4", "output": "text_encoder"}
    first = graph["metadata"]["comfyui_folded"][0]
    assert first["encoders"] == ["6"] and first["not_reached"] == [{"node": "8", "type": "CLIPTextEncodeSDXL"}]
    assert "not set on 8 (CLIPTextEncodeSDXL)" in graph["metadata"]["translated_values"][0]["to"]
    workflow = {"nodes": [node(4, "CheckpointLoaderSimple", widgets=["sd15.safetensors"]),
                          node(11, "CLIPSetLastLayer", [("clip", 1)], [-2]),
                          node(6, "CLIPTextEncode", [("clip", 2)], ["a cat"])],
                "links": [[1, 4, 1, 11, 0, "CLIP"], [2, 11, 0, 6, 0, "CLIP"]]}
    nodes = import_foreign(workflow)["nodes"]
    assert "11" not in nodes and nodes["6"]["inputs"]["clip_skip"] == 2


@pytest.mark.parametrize("prompt", [clip_prompt(["20", 0]), clip_prompt(-30), clip_prompt(mode="mute")])
def test_a_clip_set_last_layer_that_cannot_be_folded_stays_and_says_the_rewrite(prompt):
    """A layer from a link, one past EncodeText's 24 or a muted node is left as it was: validation's error says
    what to do (comfyui.INSTEAD)."""
    graph = import_foreign(prompt)
    assert graph["nodes"]["11"]["type"] == "CLIPSetLastLayer" and "comfyui_folded" not in graph["metadata"]
    assert graph["nodes"]["6"]["inputs"]["text_encoder"] == {"node": "11", "output": "0"}
