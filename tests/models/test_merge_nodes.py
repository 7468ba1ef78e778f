"""MergeModels / MergeTextEncoders: ratio × a + (1 − ratio) × b, LoRAs baked in, the inputs untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nodegraph import NodeExecutionError, Session
from nodes.models.merge_nodes import merged_weights, weights_of

ROOT = Path(__file__).resolve().parents[2]
V6F, V4 = "tiny_world_v6f.safetensors", "tiny_world_v4.safetensors"


def test_merged_weights_is_the_weighted_sum_in_float32_kept_in_the_first_dtype():
    a = {"w": torch.tensor([1.0, 2.0], dtype=torch.float16), "steps": torch.tensor([3])}
    b = {"w": torch.tensor([3.0, 6.0], dtype=torch.float32), "steps": torch.tensor([9])}
    merged = merged_weights(a, b, 0.25)
    assert merged["w"].dtype == torch.float16 and merged["w"].tolist() == [2.5, 5.0]
    assert merged["steps"].tolist() == [3]                         # integer buffers: the first's
    assert torch.equal(merged_weights(a, b, 1.0)["w"], a["w"])
    with pytest.raises(ValueError, match="'x' only in the second"):
        merged_weights(a, {**b, "x": torch.zeros(1)}, 0.5)
    with pytest.raises(ValueError, match=r"weight 'w' is \(2,\) in the first and \(3,\) in the second"):
        merged_weights(a, {**b, "w": torch.zeros(3)}, 0.5)


def _graph(ratio: float, lora: bool = False) -> dict:
    nodes = {
        "a": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": V6F}},
        "b": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": V4}},
        "merge": {"type": "MergeModels", "inputs": {"model_a": {"node": "a", "output": "model"},
                                                    "model_b": {"node": "b", "output": "model"}, "ratio": ratio}},
        "text": {"type": "MergeTextEncoders", "inputs": {"text_encoder_a": {"node": "a", "output": "text_encoder"},
                                                         "text_encoder_b": {"node": "b", "output": "text_encoder"},
                                                         "ratio": ratio}},
    }
    if lora:
        nodes["lora"] = {"type": "LoadLoRAModelOnly", "inputs": {"model": {"node": "a", "output": "model"},
                                                                 "lora_name": "tiny_world_lcm.safetensors"}}
        nodes["merge"]["inputs"]["model_a"] = {"node": "lora", "output": "model"}
    return {"format_version": 2, "nodes": nodes}


@pytest.fixture(scope="module")
def session() -> Session:
    return Session(builtins=True)


def test_merge_models_and_text_encoders_average_two_checkpoints(session):
    result = session.run(_graph(0.3), outputs=["merge", "text", "a", "b"])
    a, b = result.outputs["a"], result.outputs["b"]
    a["model"].apply_patches()
    b["model"].apply_patches()
    merged = weights_of(result.outputs["merge"]["model"].net)
    key = next(k for k, v in merged.items() if v.is_floating_point() and v.abs().sum() > 0)
    expected = (0.3 * weights_of(a["model"].net)[key].float() + 0.7 * weights_of(b["model"].net)[key].float())
    assert torch.allclose(merged[key].float(), expected.to(merged[key].dtype).float())
    encoder = weights_of(result.outputs["text"]["text_encoder"].encoder)
    name = next(k for k, v in encoder.items() if v.is_floating_point() and v.abs().sum() > 0)
    expected = (0.3 * weights_of(a["text_encoder"].encoder)[name].float()
                + 0.7 * weights_of(b["text_encoder"].encoder)[name].float())
    assert torch.allclose(encoder[name].float(), expected.to(encoder[name].dtype).float())
    # the inputs are untouched: the merge is a network of its own
    assert result.outputs["merge"]["model"].net is not a["model"].net
    assert not torch.equal(weights_of(a["model"].net)[key], merged[key])


def test_ratio_one_is_model_a_with_its_lora_baked_in(session):
    """A LoRA on model_a is in the merge (ratio 1: model_a's weights exactly as the LoRA makes them), and the
    merged model takes no LoRA patches along (they are in its weights now)."""
    result = session.run(_graph(1.0, lora=True), outputs=["merge", "lora"])
    patched = result.outputs["lora"]["model"]
    patched.apply_patches()
    merged = result.outputs["merge"]["model"]
    assert merged.patches == ()
    expected = weights_of(patched.net)
    assert all(torch.equal(value, expected[key]) for key, value in weights_of(merged.net).items())


def test_a_merge_samples_and_saves_as_a_checkpoint_that_loads_back(tmp_path):
    """The merge samples like any model, and SaveCheckpoint writes it: a soup made by a graph, loaded again."""
    from nodegraph.model_paths import ModelPaths

    session = Session(builtins=True, model_paths=ModelPaths(roots=[tmp_path / "models", ROOT / "models"]),
                      output_dir=tmp_path / "out")
    graph = _graph(0.7)
    graph["nodes"].update({
        "pos": {"type": "EncodeText", "inputs": {"text_encoder": {"node": "text", "output": "text_encoder"},
                                                 "text": "a red circle on a blue background"}},
        "neg": {"type": "EncodeText", "inputs": {"text_encoder": {"node": "text", "output": "text_encoder"},
                                                 "text": ""}},
        "latent": {"type": "EmptyLatent", "inputs": {"width": 64, "height": 64, "vae": {"node": "a", "output": "vae"}}},
        "sample": {"type": "KSampler", "inputs": {"model": {"node": "merge", "output": "model"},
                                                  "positive": {"node": "pos", "output": "conditioning"},
                                                  "negative": {"node": "neg", "output": "conditioning"},
                                                  "latent": {"node": "latent", "output": "latent"}, "steps": 4}},
        "decode": {"type": "VAEDecode", "inputs": {"latent": {"node": "sample", "output": "latent"},
                                                   "vae": {"node": "a", "output": "vae"}}},
        "show": {"type": "PreviewImage", "inputs": {"images": {"node": "decode", "output": "image"}}},
        "save": {"type": "SaveCheckpoint", "inputs": {"model": {"node": "merge", "output": "model"},
                                                      "text_encoder": {"node": "text", "output": "text_encoder"},
                                                      "vae": {"node": "a", "output": "vae"}, "dtype": "fp32",
                                                      "filename": "soup.safetensors"}},
    })
    result = session.run(graph)
    assert result.outputs["show"]["files"]
    merged = weights_of(session.run(_graph(0.7), outputs=["merge"]).outputs["merge"]["model"].net)
    reloaded = session.run({"format_version": 2, "nodes": {
        "load": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "soup.safetensors", "weight_dtype": "fp32"}}}},
        outputs=["load"]).outputs["load"]["model"].net
    again = weights_of(reloaded)
    key = next(k for k, v in merged.items() if v.is_floating_point() and v.abs().sum() > 0)
    assert torch.allclose(again[key].float(), merged[key].float(), atol=1e-3)


def test_models_that_cannot_be_merged_are_refused_naming_model_b(session):
    """A flow model and an eps UNet (other prediction, other architecture): refused before any weights are read."""
    graph = _graph(0.5)
    graph["nodes"]["b"] = {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world_flow.safetensors"}}
    with pytest.raises(NodeExecutionError) as caught:
        session.run(graph, outputs=["merge"])
    assert caught.value.node_id == "merge"
    assert "input 'model_b': model_a predicts 'eps' and model_b 'flow'" in str(caught.value)


def test_comfyuis_model_merge_simple_imports_as_merge_models():
    from nodegraph.graph import import_foreign

    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": V6F}},
              "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": V4}},
              "3": {"class_type": "ModelMergeSimple", "inputs": {"model1": ["1", 0], "model2": ["2", 0], "ratio": 0.3}},
              "4": {"class_type": "CLIPMergeSimple", "inputs": {"clip1": ["1", 1], "clip2": ["2", 1], "ratio": 0.3}}}
    nodes = import_foreign(prompt)["nodes"]
    assert nodes["3"] == {"type": "MergeModels", "inputs": {"model_a": {"node": "1", "output": "model"},
                                                            "model_b": {"node": "2", "output": "model"}, "ratio": 0.3}}
    assert nodes["4"]["type"] == "MergeTextEncoders"
    assert nodes["4"]["inputs"]["text_encoder_b"] == {"node": "2", "output": "text_encoder"}
