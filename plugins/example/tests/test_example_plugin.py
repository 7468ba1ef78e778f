"""Tests of the example plugin, written the way a plugin author would test theirs."""

import pytest

import nodegraph_example
from nodegraph import GraphValidationError, Session


def _graph(hex_a: str = "#ff0000") -> dict:
    return {
        "format_version": 1,
        "nodes": {
            "a": {"type": "HexColor", "inputs": {"hex": hex_a}},
            "b": {"type": "HexColor", "inputs": {"hex": "#0000ff"}},
            "mix": {"type": "MixColors", "inputs": {"a": {"node": "a", "output": "color"},
                                                    "b": {"node": "b", "output": "color"}, "t": 0.5}},
            "show": {"type": "ShowValue", "inputs": {"value": {"node": "mix", "output": "color"}}},
        },
    }


def test_plugin_registers_through_explicit_loading():
    """Passing the module to Session registers its type and nodes."""
    session = Session(plugins=[nodegraph_example], autoload=False)
    assert "COLOR" in session.registry.types
    assert session.run(_graph()).outputs["show"]["value"] == (0.5, 0.0, 0.5)


def test_plugin_is_found_by_entry_point():
    """The installed package is discovered through the `nodegraph` entry-point group."""
    session = Session(autoload=True, allow=["example"])
    assert {"HexColor", "MixColors"} <= set(session.registry.nodes)
    assert session.registry.node_plugin["HexColor"] == "example"


def test_nodes_listing_names_the_plugin(capsys, monkeypatch):
    """`nodegraph nodes` says which plugin a node comes from (only --json did); built-in nodes carry no tag."""
    from nodegraph.cli import main

    monkeypatch.delenv("NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD", raising=False)     # (the test suite's default)
    assert main(["nodes", "HexColor", "Int", "--allow-plugin", "example"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "(plugin example)" in next(line for line in lines if line.startswith("HexColor"))
    assert "(plugin" not in next(line for line in lines if line.startswith("Int "))


def test_color_ports_refuse_other_types():
    """A STRING output cannot feed a COLOR input."""
    session = Session(plugins=[nodegraph_example], autoload=False)
    graph = _graph()
    graph["nodes"]["s"] = {"type": "String", "inputs": {"value": "red"}}
    graph["nodes"]["mix"]["inputs"]["a"] = {"node": "s", "output": "value"}
    with pytest.raises(GraphValidationError) as info:
        session.run(graph)
    assert [e.code for e in info.value.errors] == ["type_mismatch"]


def _txt2img_graphs() -> dict:
    """The built-in txt2img chain and the plugin's one-node TextToImage, side by side, same settings."""
    def link(node, output):
        return {"node": node, "output": output}

    settings = {"seed": 9, "steps": 4, "cfg": 5.0, "sampler": "euler", "scheduler": "karras"}
    prompt = "a big yellow star in the middle, on a black background"
    return {"format_version": 1, "nodes": {
        "ckpt": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world.safetensors"}},
        "pos": {"type": "EncodeText", "inputs": {"text_encoder": link("ckpt", "text_encoder"), "text": prompt}},
        "neg": {"type": "EncodeText", "inputs": {"text_encoder": link("ckpt", "text_encoder"), "text": ""}},
        "empty": {"type": "EmptyLatent", "inputs": {"width": 64, "height": 64, "vae": link("ckpt", "vae")}},
        "k": {"type": "KSampler", "inputs": {"model": link("ckpt", "model"), "positive": link("pos", "conditioning"),
                                             "negative": link("neg", "conditioning"),
                                             "latent": link("empty", "latent"), **settings}},
        "decode": {"type": "VAEDecode", "inputs": {"vae": link("ckpt", "vae"), "latent": link("k", "latent")}},
        "t2i": {"type": "TextToImage", "inputs": {"model": link("ckpt", "model"),
                                                  "text_encoder": link("ckpt", "text_encoder"),
                                                  "vae": link("ckpt", "vae"), "prompt": prompt, **settings}},
        "builtin": {"type": "ShowValue", "inputs": {"value": link("decode", "image")}},
        "plugin": {"type": "ShowValue", "inputs": {"value": link("t2i", "image")}},
    }}


def test_text_to_image_through_the_api_equals_the_builtin_chain(tmp_path):
    """TextToImage (api.empty_latent/encode_text/sample/vae_decode) gives the built-in chain's pixels bit for bit."""
    import torch

    session = Session(plugins=[nodegraph_example], autoload=False, output_dir=tmp_path / "out")
    out = session.run(_txt2img_graphs()).outputs
    builtin, plugin = out["builtin"]["value"], out["plugin"]["value"]
    assert plugin.shape == (1, 64, 64, 3) and torch.equal(builtin, plugin)


def test_swatch_and_saved_colours_follow_the_contracts(tmp_path):
    """ColorSwatch makes an IMAGE (B, H, W, 3); SaveColors writes a JSON text file reported as a valid file result."""
    import json

    from nodegraph.results import collect_files

    session = Session(plugins=[nodegraph_example], autoload=False, output_dir=tmp_path / "out")
    graph = _graph()
    graph["nodes"]["swatch"] = {"type": "ColorSwatch", "inputs": {"color": {"node": "mix", "output": "color"},
                                                                  "width": 16, "height": 8}}
    graph["nodes"]["show_swatch"] = {"type": "ShowValue", "inputs": {"value": {"node": "swatch", "output": "image"}}}
    graph["nodes"]["save"] = {"type": "SaveColors", "inputs": {"a": {"node": "a", "output": "color"},
                                                               "b": {"node": "mix", "output": "color"},
                                                               "filename_prefix": "palettes/p"}}
    result = session.run(graph)
    swatch = result.outputs["show_swatch"]["value"]
    assert swatch.shape == (1, 8, 16, 3) and swatch[0, 0, 0].tolist() == [0.5, 0.0, 0.5]
    (file,) = collect_files(result.outputs, tmp_path / "out")
    assert (file["kind"], file["mime"], file["name"]) == ("text", "application/json", "palettes/p_00001.json")
    assert json.loads(open(file["path"]).read()) == {"colors": ["#ff0000", "#800080"]}


def test_short_and_bad_hex_colours(tmp_path):
    """"#f00" is "#ff0000"; anything else that is no colour names `hex` and shows the form to write."""
    from nodegraph import NodeExecutionError

    session = Session(plugins=[nodegraph_example], autoload=False, output_dir=tmp_path)
    assert session.run(_graph("#f00")).outputs["show"]["value"] == (0.5, 0.0, 0.5)
    for bad in ("red", "#ff00", "#gg0000"):
        with pytest.raises(NodeExecutionError) as info:
            session.run(_graph(bad))
        assert info.value.exception.input == "hex" and "'#rrggbb' or '#rgb'" in str(info.value.exception)


def test_the_shipped_graph_runs_and_writes_a_purple_swatch(tmp_path):
    """graphs/mix_colors.json: red and blue mixed half and half, as a PNG swatch and a JSON file of both colours."""
    import json
    from pathlib import Path

    from PIL import Image

    from nodegraph.results import collect_files

    graph = Path(nodegraph_example.__file__).resolve().parents[1] / "graphs" / "mix_colors.json"
    session = Session(plugins=[("example", nodegraph_example)], autoload=False, output_dir=tmp_path)
    files = {f["kind"]: f for f in collect_files(session.run(json.loads(graph.read_text())).outputs, tmp_path)}
    assert Image.open(files["image"]["path"]).getpixel((5, 5)) == (128, 16, 144)
    assert json.loads(Path(files["text"]["path"]).read_text()) == {"colors": ["#ff2020", "#0000ff"]}


@pytest.mark.parametrize("model_from, encoder_from", [("v4", "flow"), ("flow", "v4")])
def test_text_to_image_refuses_another_checkpoints_text_encoder(tmp_path, model_from, encoder_from):
    """The SD1 UNet with the flow checkpoint's text encoder (or the reverse) fails up front on `text_encoder`,
    naming the fix, not inside the network."""
    from nodegraph import NodeExecutionError, NodeInputError

    def link(node, output):
        return {"node": node, "output": output}

    session = Session(plugins=[nodegraph_example], autoload=False, output_dir=tmp_path / "out")
    graph = {"format_version": 1, "nodes": {
        "v4": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world_v4.safetensors"}},
        "flow": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world_flow.safetensors"}},
        "t2i": {"type": "TextToImage", "inputs": {"model": link(model_from, "model"),
                                                  "text_encoder": link(encoder_from, "text_encoder"),
                                                  "vae": link(model_from, "vae"), "steps": 1, "width": 32,
                                                  "height": 32}},
        "show": {"type": "ShowValue", "inputs": {"value": link("t2i", "image")}}}}
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph)
    error = info.value.exception
    assert isinstance(error, NodeInputError) and error.input == "text_encoder"
    assert "model's own checkpoint" in str(error)
