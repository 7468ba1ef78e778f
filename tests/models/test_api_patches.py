"""The plugin API's model patches and weights on the shipped model: patches made and applied through
nodegraph.api change sampling only for the patched MODEL value, record attention maps, are removable,
and wrong keys or fields are refused by name; open_weights reads model-folder files under the loader policy."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from nodegraph import Input, Node, NodeInputs, Output, Session, api, hookimpl
from nodegraph.errors import NodeExecutionError


class PatchedSample(Node):
    """A plugin node: patch the model through the API, sample, report what the patch saw."""

    category = "test"

    class Inputs(NodeInputs):
        model: Any = Input(port="MODEL")
        positive: Any = Input(port="CONDITIONING")
        mode: str = Input("none")

    outputs = (Output("latent", "LATENT"), Output("info", "STRING"))

    def run(self, model, positive, mode) -> dict:
        context = self.context
        info = ""
        if mode == "identity":
            patch = api.make_patch(context, "layer", name="pass", target="middle_block",
                                   wrapper=lambda forward, h, call: forward(h))
            model = api.patch_model(context, model, patch)
        elif mode in ("mirror", "mirror_removed"):
            assert "input_blocks.1" in api.model_keys(context, model, "layers")
            patch = api.make_patch(context, "layer", name="mirror", target="input_blocks.1",   # mirror its features
                                   wrapper=lambda forward, h, call: forward(h).flip(-1))
            model = api.patch_model(context, model, patch)
            if mode == "mirror_removed":
                model = api.unpatch_model(context, model, "mirror")
        elif mode == "maps":
            recorder = api.make_patch(context, "attention_maps", name="maps", kind="self")
            model = api.patch_model(context, model, recorder)
        elif mode == "raises":
            def explode(forward, h, call):
                raise RuntimeError("exploded")
            model = api.patch_model(context, model, api.make_patch(context, "layer", name="boom",
                                                                   target="input_blocks.1", wrapper=explode))
        elif mode == "short_attention":
            model = api.patch_model(context, model, api.make_patch(
                context, "attention", name="short", processor=lambda q, k, v, call, attend: attend(q, k, v)[:, :, :1]))
        elif mode == "bad_key":
            model = api.patch_model(context, model, api.make_patch(
                context, "layer", name="nowhere", target="output_blocks.99", wrapper=lambda f, h, c: f(h)))
        latent = {"samples": torch.zeros(1, 4, 16, 16)}
        out = api.sample(context, model, positive, None, latent, seed=2, steps=3, cfg=1.0)
        if mode == "maps":
            keys = api.model_keys(context, model, "attention")
            shapes = {tuple(m.shape) for m in recorder.maps.values()}
            info = f"{len(recorder.maps)} maps of {len([k for k in keys if k.endswith('attn1')])}; {sorted(shapes)}"
        return {"latent": out, "info": info}


class Plugin:
    """The test node as a plugin."""

    @hookimpl
    def register_nodes(self) -> list:
        return [PatchedSample]


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Session:
    return Session(plugins=[("patchtest", Plugin())], output_dir=tmp_path_factory.mktemp("out"))


def run_modes(session: Session, *modes: str) -> dict:
    """Run PatchedSample once per mode on the shipped model; returns {mode: (samples, info)}."""
    def link(node, output):
        return {"node": node, "output": output}

    nodes = {"ckpt": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world.safetensors"}},
             "pos": {"type": "EncodeText", "inputs": {"text_encoder": link("ckpt", "text_encoder"),
                                                      "text": "a green square"}}}
    for mode in modes:
        nodes[mode] = {"type": "PatchedSample", "inputs": {"model": link("ckpt", "model"),
                                                           "positive": link("pos", "conditioning"), "mode": mode}}
        nodes[f"show_{mode}"] = {"type": "ShowValue", "inputs": {"value": link(mode, "latent")}}
        nodes[f"info_{mode}"] = {"type": "ShowValue", "inputs": {"value": link(mode, "info")}}
    out = session.run({"format_version": 1, "nodes": nodes}).outputs
    return {mode: (out[f"show_{mode}"]["value"]["samples"], out[f"info_{mode}"]["value"]) for mode in modes}


def test_patches_change_only_the_patched_model_value_and_are_removable(session):
    """An identity wrapper changes nothing, a mirroring wrapper changes the sample, removing it restores it;
    the unpatched model sampled afterwards in the same run is unaffected."""
    results = run_modes(session, "mirror", "none", "identity", "mirror_removed")
    plain = results["none"][0]
    assert torch.equal(results["identity"][0], plain)
    assert torch.equal(results["mirror_removed"][0], plain)
    assert (results["mirror"][0] - plain).abs().mean() > 0.05


def test_an_attention_map_recorder_sees_every_self_attention_map(session):
    """The recorder made with make_patch holds one (B, heads, T, T) map per self-attention module."""
    (_, info), = run_modes(session, "maps").values()
    count, total = info.split(";")[0].split(" maps of ")
    assert int(count) == int(total) > 0
    assert all(shape[2] == shape[3] for shape in eval(info.split("; ")[1]))     # self-attention: T = S


@pytest.mark.parametrize(("mode", "words"), [
    ("raises", "model patch 'boom' (LayerPatch, function from tests.models.test_api_patches) at 'input_blocks.1': "
               "RuntimeError: exploded"),
    ("short_attention", "model patch 'short' (AttentionPatch"),
])
def test_a_failing_or_misshapen_patch_is_named_in_the_error(session, mode, words):
    """A plugin's patch that raised, or whose attention result was cut short (it broadcast silently into a
    plausible picture), failed as the sampler's own error; the message now names the patch and its module."""
    with pytest.raises(NodeExecutionError) as info:
        run_modes(session, mode)
    assert words in str(info.value.exception)
    if mode == "short_attention":
        assert "expected (B, heads, T, head_dim)" in str(info.value.exception)


def test_a_wrong_patch_target_names_the_argument_and_valid_keys(session):
    """A layer key the network lacks fails in patch_model, naming the patch and listing keys that exist; a key
    no input of the node holds is the node's failure (it was "input 'patches'", an input the node lacks)."""
    with pytest.raises(NodeExecutionError) as info:
        run_modes(session, "bad_key")
    error = info.value.exception
    assert not hasattr(error, "input") and "patch 'nowhere'" in str(error)
    assert "output_blocks.99" in str(error) and "valid keys" in str(error)


def _context(session: Session):
    from nodegraph import NodeContext

    return NodeContext("n", "T", lambda *a: None, lambda node_id: None, session.services)


def test_make_patch_refuses_unknown_forms_and_fields(session):
    """The form and its fields are checked before any patch object is built."""
    context = _context(session)
    with pytest.raises(api.ApiArgumentError, match="argument 'form'"):
        api.make_patch(context, "weights", name="x")
    with pytest.raises(api.ApiArgumentError, match="argument 'wrapper'.*missing"):
        api.make_patch(context, "layer", name="x", target="middle_block")
    with pytest.raises(api.ApiArgumentError, match="argument 'colour'.*unknown"):
        api.make_patch(context, "attention", name="x", processor=lambda *a: None, colour="red")
    with pytest.raises(api.ApiArgumentError, match="argument 'after'"):
        api.make_patch(context, "module", name="x", module=torch.nn.Identity(), after="middle_block")


def test_open_weights_reads_a_model_folder_file_and_refuses_escapes(session, tmp_path):
    """A checkpoint opens lazily by folder and name; '..' names and pickle files are refused naming 'name'."""
    context = _context(session)
    weights = api.open_weights(context, "tiny_world.safetensors", folder="checkpoints")
    assert len(weights) > 100 and all(isinstance(k, str) for k in list(weights)[:5])
    with pytest.raises(Exception) as info:
        api.open_weights(context, "../tiny_world.safetensors", folder="checkpoints")
    assert getattr(info.value, "input", None) == "name"
    pickle_file = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, pickle_file)
    with pytest.raises(Exception) as info:
        api.open_weights(context, pickle_file)
    assert getattr(info.value, "input", None) == "name" and "pickle" in str(info.value).lower()
