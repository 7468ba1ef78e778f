"""TrainLoRA: a LoRA of your own images (kohya's / diffusers' DreamBooth-LoRA), saved and loaded back like any LoRA.

A hobbyist's pass found no way to teach a model a subject as a LoRA (only DistillLCM made LoRAs, and those learn
few-step sampling, not the images).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from nodegraph import NodeExecutionError, Session
from nodegraph.model_paths import ModelPaths
from nodes.training.lora_train import ATTENTION_PROJECTIONS, add_attention_lora

ROOT = Path(__file__).resolve().parents[2]
torch.set_num_threads(1)


def test_adapters_sit_on_the_attention_projections_and_start_as_no_change():
    from nodes.models.unet import UNetConfig, UNetModel

    torch.manual_seed(0)
    unet = UNetModel(UNetConfig(in_channels=2, out_channels=2, model_channels=32, channel_mult=(1,), num_res_blocks=1,
                                transformer_depth=(1,), transformer_depth_middle=1, context_dim=16, num_heads=2))
    x, t, context = torch.randn(1, 2, 8, 8), torch.tensor([500.0]), torch.randn(1, 4, 16)
    before = unet(x, t, context=context)
    adapters = add_attention_lora(unet, rank=4, alpha=4.0)
    assert adapters and all(ATTENTION_PROJECTIONS.search(name) for name in adapters)
    assert {name.rsplit(".", 1)[-1] if not name.endswith("to_out.0") else "to_out.0" for name in adapters} == \
        {"to_q", "to_k", "to_v", "to_out.0"}
    assert torch.equal(unet(x, t, context=context), before)            # up starts at zero
    trainable = [p for p in unet.parameters() if p.requires_grad]
    assert len(trainable) == 2 * len(adapters)                          # only the adapters learn


def _pictures(folder: Path) -> None:
    """Eight 32×32 pictures of a pattern the tiny world has not seen (magenta / cyan checks), no captions."""
    folder.mkdir(parents=True)
    for k in range(8):
        image = Image.new("RGB", (32, 32), (255, 0, 255))
        for y in range(0, 32, 8):
            for x in range((y // 8 + k) % 2 * 8, 32, 16):
                image.paste((0, 255, 255), (x, y, x + 8, y + 8))
        image.save(folder / f"zorb_{k}.png")


def _graph(steps: int) -> dict:
    link = lambda node, output: {"node": node, "output": output}      # noqa: E731
    return {"format_version": 2, "nodes": {
        "load": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world_v6f.safetensors", "weight_dtype": "fp32"}},
        "data": {"type": "ImageFolderDataset", "inputs": {"folder": "zorb", "size": 32,
                                                          "default_caption": "a zorb pattern"}},
        "train": {"type": "TrainLoRA", "inputs": {"dataset": link("data", "dataset"), "model": link("load", "model"),
                                                  "text_encoder": link("load", "text_encoder"),
                                                  "vae": link("load", "vae"), "rank": 4, "steps": steps,
                                                  "batch_size": 2, "lr": 1e-3, "warmup_steps": 1,
                                                  "checkpoint_every": 2, "run_name": "zorb"}},
        "save": {"type": "SaveLoRA", "inputs": {"lora": link("train", "lora"), "filename": "zorb.safetensors"}},
    }}


def test_train_lora_saves_a_kohya_file_that_loads_back_as_the_trained_model(tmp_path):
    """The LoRA TrainLoRA applies is the one SaveLoRA writes: LoadLoRA of the file gives the same network output;
    the base model is untouched; a rerun resumes the finished run (no step trained again)."""
    _pictures(tmp_path / "in" / "zorb")
    session = Session(builtins=True, model_paths=ModelPaths(roots=[tmp_path / "models", ROOT / "models"]),
                      input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    graph = _graph(steps=3)
    assert session.validate(graph) == []
    first_events = []
    result = session.run(graph, outputs=["train", "save", "load"], on_event=first_events.append)
    assert _trained_steps(first_events) == [1, 2, 3]
    report = json.loads(result.outputs["train"]["report"])
    assert report["steps"] == 3 and report["rank"] == 4 and report["adapted_layers"] > 0
    assert (tmp_path / "models" / "loras" / "zorb.safetensors").is_file()
    trained = result.outputs["train"]["model"]
    base = result.outputs["load"]["model"]
    x, t = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1)), torch.tensor([400.0])
    context = torch.randn(1, 77, base.net.config.context_dim, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        trained.apply_patches()
        taught = trained.net(x, t, context=context)
        base.apply_patches()
        plain = base.net(x, t, context=context)
    assert not torch.allclose(taught, plain)                               # the LoRA changes the model
    loaded = session.run({"format_version": 2, "nodes": {
        "load": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world_v6f.safetensors", "weight_dtype": "fp32"}},
        "lora": {"type": "LoadLoRAModelOnly", "inputs": {"model": {"node": "load", "output": "model"},
                                                         "lora_name": "zorb.safetensors"}}}},
        outputs=["lora"]).outputs["lora"]["model"]
    with torch.no_grad():
        loaded.apply_patches()
        again = loaded.net(x, t, context=context)
    assert torch.allclose(again, taught, atol=1e-4)
    # its captions are its trigger words (kohya's ss_tag_frequency), so prompting with them warns of no unknown word
    from safetensors import safe_open

    with safe_open(str(tmp_path / "models" / "loras" / "zorb.safetensors"), "pt") as file:
        assert json.loads(file.metadata()["ss_tag_frequency"]) == {"zorb": {"a zorb pattern": 8}}
    for applied, unknown in ((False, "'zorb', 'pattern'"), (True, None)):
        encoder = {"node": "lora" if applied else "load", "output": "text_encoder"}
        warnings = session.run({"format_version": 2, "nodes": {
            "load": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world_v6f.safetensors"}},
            "lora": {"type": "LoadLoRA", "inputs": {"model": {"node": "load", "output": "model"},
                                                    "text_encoder": {"node": "load", "output": "text_encoder"},
                                                    "lora_name": "zorb.safetensors"}},
            "prompt": {"type": "EncodeText", "inputs": {"text_encoder": encoder, "text": "a zorb pattern, big"}}}},
            outputs=["prompt"]).warnings
        said = [w["message"] for w in warnings if "never learnt" in w["message"]]
        assert (said and unknown in said[0]) if unknown else not said, said
    fresh = Session(builtins=True, model_paths=ModelPaths(roots=[tmp_path / "models", ROOT / "models"]),
                    input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    events = []
    rerun = fresh.run(_graph(steps=3), outputs=["train"], on_event=events.append)   # a new process, say
    assert "train" in rerun.executed and _trained_steps(events) == []     # the finished state resumed: no step again
    # a state whose settings were edited by hand (rank 4 → 8) said torch's "The size of tensor a (8) must match..."
    state = next((tmp_path / "out").rglob("training_state.json"))
    assert '\\"rank\\": 4' in state.read_text()                     # inside the JSON-encoded identity
    state.write_text(state.read_text().replace('\\"rank\\": 4', '\\"rank\\": 8'))
    tampered = _graph(steps=3)
    tampered["nodes"]["train"]["inputs"]["rank"] = 8
    with pytest.raises(NodeExecutionError) as caught:
        fresh.run(tampered, outputs=["train"])
    assert caught.value.exception_type == "NodeInputError" and "does not fit this run's networks" in \
        str(caught.value.exception) and "choose another run_name" in str(caught.value.exception)


def _trained_steps(events) -> list[int]:
    return [e.value for e in events if getattr(e, "type", "") == "node_progress" and e.node_id == "train"
            and "loss" in (e.info or {})]


def test_a_flow_model_is_refused_by_name(tmp_path):
    _pictures(tmp_path / "in" / "zorb")
    session = Session(builtins=True, input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    graph = _graph(steps=1)
    graph["nodes"]["load"]["inputs"]["ckpt_name"] = "tiny_world_flow.safetensors"
    del graph["nodes"]["load"]["inputs"]["weight_dtype"]
    from nodegraph import NodeExecutionError

    with pytest.raises(NodeExecutionError, match="input 'model'"):
        session.run(graph, outputs=["train"])


def test_the_shipped_own_images_graph_runs_at_smoke_size(tmp_path):
    """graphs/train/train_lora_own_images.json (input/my_subject/ without captions: the default caption) validates,
    trains 2 steps and writes models/loras/my_subject.safetensors under tmp."""
    graph = json.loads((ROOT / "graphs" / "train" / "train_lora_own_images.json").read_text())
    graph["nodes"]["lora"]["inputs"].update({"steps": 2, "batch_size": 2, "checkpoint_every": 0})
    graph["nodes"]["data"]["inputs"]["size"] = 32
    _pictures(tmp_path / "in" / "my_subject")
    session = Session(builtins=True, model_paths=ModelPaths(roots=[tmp_path / "models", ROOT / "models"]),
                      input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    assert session.validate(graph) == []
    session.run(graph)
    assert (tmp_path / "models" / "loras" / "my_subject.safetensors").is_file()


def test_a_hostile_tag_header_gives_no_trigger_words():
    """An ss_tag_frequency nested 100,000 deep raised RecursionError out of EncodeText's unknown-word check."""
    from nodes.models.lora import LoraWeights, trigger_words

    deep = LoraWeights(name="x", patches={}, metadata={"ss_tag_frequency": "[" * 100_000 + "]" * 100_000})
    assert trigger_words(deep) == set()
    fine = LoraWeights(name="y", patches={}, metadata={"ss_tag_frequency": '{"d": {"zorb pattern, big": 3}}'})
    assert trigger_words(fine) == {"zorb", "pattern", "big"}
