"""Model patches as values: hook points in the UNet, composition order, removal, base model untouched, cache keys."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import replace
from typing import Any

import pytest
import torch
from torch import nn

from nodegraph import Input, Node, NodeInputs, Output, Session, hookimpl
from nodegraph.model_paths import ModelPaths
from nodes.models.patches import (
    AttentionMapRecorder,
    AttentionPatch,
    LayerPatch,
    ModuleInsertion,
    PatchError,
    attention_keys,
    default_attention,
    layer_keys,
    set_model_patches,
    transformer_keys,
    with_patch,
    without_patches,
)
from nodes.models.unet import TINY, UNetModel

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def unet() -> UNetModel:
    torch.manual_seed(0)
    model = UNetModel(replace(TINY, context_dim=16)).eval()
    with torch.no_grad():  # a non-trivial output layer (LDM initialises it to zero)
        for parameter in model.out.parameters():
            parameter.normal_(0, 0.1)
    return model


def inputs(batch: int = 2, size: int = 8) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(1)
    return {"x": torch.randn(batch, 4, size, size, generator=generator),
            "timesteps": torch.tensor([500.0] * batch),
            "context": torch.randn(batch, 7, 16, generator=generator)}


def state_hash(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


def run(unet: UNetModel, patches=None) -> torch.Tensor:
    with torch.no_grad():
        return unet(**inputs(), patches=patches)


class Doubler(nn.Module):
    """A module with a parameter: h -> h * weight (weight starts at 2)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(2.0))

    def forward(self, h, call):
        return h * self.weight


def test_identity_patches_give_bitwise_the_unpatched_output(unet):
    """A wrapper that only calls forward, and a processor that only calls attend, change nothing."""
    plain = run(unet)
    wrap = LayerPatch(name="wrap", target="input_blocks.1", wrapper=lambda forward, h, call: forward(h))
    attend = AttentionPatch(name="attend", processor=lambda q, k, v, call, attend: attend(q, k, v), kind="both")
    assert torch.equal(run(unet, (wrap, attend)), plain)


def test_patches_leave_the_base_model_untouched_and_are_removable(unet):
    """Setting, running and removing every kind of patch keeps the state dict hash and the base output."""
    before, plain = state_hash(unet), run(unet)
    patches = [LayerPatch(name="zero", target="middle_block", wrapper=lambda forward, h, call: torch.zeros_like(h)),
               ModuleInsertion(name="double", module=Doubler(), after=tuple(transformer_keys(unet))),
               AttentionPatch(name="identity", processor=lambda q, k, v, call, attend: v)]
    set_model_patches(unet, patches)
    try:
        patched = run(unet)
        assert not torch.allclose(patched, plain)
        assert set(unet.state_dict()) == set(UNetModel(unet.config).state_dict())  # no module was registered
    finally:
        set_model_patches(unet, [])
    assert state_hash(unet) == before
    assert torch.equal(run(unet), plain)


def test_layer_wrappers_compose_in_priority_then_applied_order(unet):
    """Later patches wrap earlier ones (outermost); a lower priority is applied first whatever the list order."""
    seen: list[str] = []

    def tracer(label):
        def wrapper(forward, h, call):
            seen.append(f"{label} in")
            h = forward(h)
            seen.append(f"{label} out")
            return h
        return wrapper

    first = LayerPatch(name="first", target="input_blocks.1.0", wrapper=tracer("first"))
    second = LayerPatch(name="second", target="input_blocks.1.0", wrapper=tracer("second"))
    run(unet, (first, second))
    assert seen == ["second in", "first in", "first out", "second out"]
    seen.clear()
    early = LayerPatch(name="early", target="input_blocks.1.0", wrapper=tracer("early"), priority=-1)
    run(unet, (first, early))
    assert seen == ["first in", "early in", "early out", "first out"]


def test_attention_processors_chain_with_the_later_one_outermost(unet):
    """Two processors on the same module: the later sees the inputs first and calls the earlier via attend."""
    order: list[str] = []

    def processor(label):
        def process(q, k, v, call, attend):
            order.append(label)
            return attend(q, k, v)
        return process

    target = ("middle_block",)
    patches = (AttentionPatch(name="a", processor=processor("a"), targets=target),
               AttentionPatch(name="b", processor=processor("b"), targets=target))
    run(unet, patches)
    assert order == ["b", "a"] * len([k for k in attention_keys(unet)
                                      if k.startswith("middle_block") and k.endswith("attn1")])


def test_modules_inserted_after_the_same_layer_run_in_applied_order(unet):
    """Two inserted modules after one layer: the first added runs first (h*2 then +1, not (h+1)*2)."""
    layer = transformer_keys(unet)[0]

    class Add(nn.Module):
        def forward(self, h, call):
            return h + 1

    captured = {}

    def capture(forward, h, call):
        captured["h"] = forward(h)
        return captured["h"]

    baseline = {}
    run(unet, (LayerPatch(name="capture", target=layer, wrapper=capture),))
    baseline["h"] = captured["h"]
    outer = LayerPatch(name="outer", target=layer, wrapper=capture, priority=1)  # sees the inserted modules' result
    run(unet, (ModuleInsertion(name="double", module=Doubler(), after=(layer,)),
               ModuleInsertion(name="add", module=Add(), after=(layer,)), outer))
    assert torch.allclose(captured["h"], baseline["h"] * 2 + 1)


def test_inserted_module_moves_to_the_activation_dtype(unet):
    """An inserted module is moved to the activations' dtype on first use and never joins the base model."""
    module = Doubler().double()
    run(unet, (ModuleInsertion(name="double", module=module, after=(transformer_keys(unet)[0],)),))
    assert module.weight.dtype == torch.float32
    assert all(not name.startswith("double") for name in unet.state_dict())


def test_attention_map_reader_sees_self_and_cross_maps(unet):
    """The recorder sees (B, heads, T, T) self-attention maps with T = H*W, rows summing to 1, (B, heads, T, 7) cross."""
    recorder = AttentionMapRecorder(kind="both")
    plain = run(unet)
    recorded = run(unet, (recorder,))
    assert torch.allclose(recorded, plain, atol=1e-5)
    self_keys = [k for k in recorder.maps if k.endswith("attn1")]
    assert self_keys and set(recorder.maps) == set(attention_keys(unet))
    for key in self_keys:
        maps, (height, width) = recorder.maps[key], recorder.spatial[key]
        assert maps.shape == (2, unet.config.num_heads, height * width, height * width)
        assert torch.allclose(maps.sum(-1), torch.ones(()), atol=1e-5)
    cross = recorder.maps[self_keys[0].replace("attn1", "attn2")]
    assert cross.shape[-1] == 7


def test_identity_self_attention_in_one_block_changes_only_that_attention(unet):
    """A processor returning v (PAG's perturbation) in the middle block is seen only there."""
    keys: list[str] = []

    def identity(q, k, v, call, attend):
        keys.append(call.key)
        assert call.kind == "self" and q.shape == v.shape
        return v

    out = run(unet, (AttentionPatch(name="pag", processor=identity, targets=("middle_block",)),))
    assert keys and all(key.startswith("middle_block.") and key.endswith(".attn1") for key in keys)
    assert not torch.allclose(out, run(unet))


def test_unknown_targets_and_non_patches_are_refused_with_the_valid_keys(unet):
    """A target that does not exist, or an object that is not a ModelPatch, raises PatchError naming the fix."""
    with pytest.raises(PatchError, match=r"no block or layer 'input_blocks\.99'.*input_blocks\.0"):
        set_model_patches(unet, [LayerPatch(name="bad", target="input_blocks.99", wrapper=lambda f, h, c: f(h))])
    with pytest.raises(PatchError, match="no attention module under 'input_blocks.0'"):
        set_model_patches(unet, [AttentionPatch(name="bad", processor=lambda *a: a[2], targets=("input_blocks.0",))])
    # a misspelt block is named with the close key (a plugin author's "middle_blok" got a list of six examples)
    with pytest.raises(PatchError, match="no block or layer 'middle_blok'; did you mean 'middle_block'"):
        set_model_patches(unet, [LayerPatch(name="bad", target="middle_blok", wrapper=lambda f, h, c: f(h))])
    with pytest.raises(PatchError, match="under 'midle_block'; did you mean 'middle_block"):
        set_model_patches(unet, [AttentionPatch(name="bad", processor=lambda *a: a[2], targets=("midle_block",))])
    with pytest.raises(PatchError, match="expected a ModelPatch"):
        set_model_patches(unet, ["not a patch"])
    with pytest.raises(PatchError, match="kind must be"):
        AttentionPatch(name="bad", processor=default_attention, kind="sideways")
    assert unet.model_patches == ()
    assert "middle_block.1" in layer_keys(unet)


def test_model_values_carry_patches_without_changing_the_original(unet):
    """with_patch / without_patches make new MODEL values; applying each sets exactly its own patches."""
    from nodes.models.nodes import diffusion_model

    base = diffusion_model(unet, "tiny")
    patch = LayerPatch(name="zero mid", target="middle_block", wrapper=lambda forward, h, call: torch.zeros_like(h))
    variant = with_patch(base, patch)
    assert base.patches == () and variant.patches == (patch,)
    variant.apply_patches()
    patched = run(unet)
    base.apply_patches()
    assert unet.model_patches == () and not torch.allclose(patched, run(unet))
    restored = without_patches(variant, "zero mid")
    assert restored.patches == ()
    with pytest.raises(PatchError, match="no patch named 'other'"):
        without_patches(variant, "other")


# --- cache identity through a graph ---------------------------------------------------------------


class ZeroMiddleBlock(Node):
    """Test node: a MODEL variant whose middle block output is scaled by `factor` (a LayerPatch)."""

    category = "test"

    class Inputs(NodeInputs):
        model: Any = Input(port="MODEL")
        factor: float = Input(0.0, ge=0.0, le=10.0)

    outputs = (Output("model", "MODEL"),)

    def run(self, model: Any, factor: float) -> dict:
        patch = LayerPatch(name="scale middle", target="middle_block",
                           wrapper=lambda forward, h, call: forward(h) * factor)
        return {"model": with_patch(model, patch)}


@hookimpl
def register_nodes():
    return [ZeroMiddleBlock]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    from .conftest import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("models"))


def graph(patched: bool, factor: float = 0.0) -> dict:
    link = lambda node, output: {"node": node, "output": output}  # noqa: E731
    model = link("patch", "model") if patched else link("ckpt", "model")
    nodes = {
        "ckpt": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny.safetensors"}},
        "pos": {"type": "EncodeText", "inputs": {"text_encoder": link("ckpt", "text_encoder"), "text": "a circle"}},
        "empty": {"type": "EmptyLatent", "inputs": {"width": 32, "height": 32}},
        "k": {"type": "KSampler", "inputs": {"model": model, "positive": link("pos", "conditioning"),
                                             "negative": link("pos", "conditioning"), "latent": link("empty", "latent"),
                                             "seed": 3, "steps": 2, "cfg": 1.0, "sampler": "euler"}},
    }
    if patched:
        nodes["patch"] = {"type": "ZeroMiddleBlock", "inputs": {"model": link("ckpt", "model"), "factor": factor}}
    return {"format_version": 1, "nodes": nodes}


def test_patched_models_get_their_own_cache_keys_and_removing_the_patch_restores_the_base(models_dir, tmp_path):
    """Adding a patch node re-runs the sampler (new key), another factor too; removing it hits the base's cache."""
    session = Session(plugins=[("patch_test", sys.modules[__name__])],
                      model_paths=ModelPaths(roots=[models_dir]), output_dir=tmp_path)
    base = session.run(graph(False), outputs=["k"])
    patched = session.run(graph(True, 0.0), outputs=["k"])
    other = session.run(graph(True, 0.5), outputs=["k"])
    again = session.run(graph(False), outputs=["k"])
    assert "k" in patched.executed and "k" in other.executed and "k" in again.cached
    latents = [r.outputs["k"]["latent"]["samples"] for r in (base, patched, other, again)]
    assert not torch.equal(latents[0], latents[1]) and not torch.equal(latents[1], latents[2])
    assert torch.equal(latents[0], latents[3])


def test_the_documented_module_patch_example_runs_in_a_graph(models_dir, tmp_path):
    """docs/plugins.md's AddFrameMixer node (zero-gated, so the identity) patches the model and samples as the base."""
    import re
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", docs, re.DOTALL) if "class AddFrameMixer" in b]
    namespace: dict = {}
    exec(compile(block, "docs/plugins.md", "exec"), namespace)

    class Plugin:
        @hookimpl
        def register_nodes(self):
            return [namespace["AddFrameMixer"]]

    session = Session(plugins=[("frames", Plugin())], model_paths=ModelPaths(roots=[models_dir]), output_dir=tmp_path)
    patched_graph = graph(True)
    patched_graph["nodes"]["patch"] = {"type": "AddFrameMixer", "inputs": {"model": {"node": "ckpt", "output": "model"},
                                                                            "frames": 1}}
    result = session.run(patched_graph, outputs=["k", "patch"])
    assert [p.name for p in result.outputs["patch"]["model"].patches] == ["frame mixer"]
    base = session.run(graph(False), outputs=["k"])
    assert torch.equal(result.outputs["k"]["latent"]["samples"], base.outputs["k"]["latent"]["samples"])
