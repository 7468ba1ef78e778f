"""Flow training on tiny configs: learning happens, resume is exact, SD3-layout save → load round trip, graphs run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nodegraph import Session
from nodegraph.errors import NodeExecutionError
from nodegraph.model_paths import ModelPaths
from nodes.models.clip import CLIPTextModel, PromptEncoder, TextEncoderConfig
from nodes.models.detect import METADATA_KEY, ModelLoadError
from nodes.models.loading import load_checkpoint
from nodes.models.mmdit import MMDiT, MMDiTConfig
from nodes.models.nodes import sd3_diffusion_model
from nodes.models.sd3 import SD3TextEncoder
from nodes.models.vae import AutoencoderKL, VAEConfig
from nodes.training.flow import FlowData, flow_targets, init_mmdit_weights, train_flow
from nodes.training.flow_checkpoint import save_flow_checkpoint
from nodes.training.trainer import TrainConfig, TrainingRun

from ..interrupt import StopTraining, stop_at

ROOT = Path(__file__).resolve().parents[2]
CONFIG = MMDiTConfig(depth=2, num_heads=2, head_dim=16, in_channels=4, out_channels=4, context_dim=8, pooled_dim=8,
                     pos_embed_max_size=8)


def _classes_data() -> FlowData:
    """Three classes, each a fixed latent pattern with its own conditioning vector (a learnable mapping)."""
    generator = torch.Generator().manual_seed(0)
    patterns = torch.randn(3, 4, 4, 4, generator=generator)
    codes = torch.eye(3, 8) * 3
    labels = torch.arange(24) % 3
    return FlowData(patterns[labels], codes[labels][:, None].expand(-1, 2, -1).clone(), codes[labels],
                    torch.zeros(2, 8), torch.zeros(8))


def _fixed_loss(mmdit: MMDiT, data: FlowData) -> float:
    """The velocity loss on one fixed set of (t, noise) for every item."""
    generator = torch.Generator().manual_seed(99)
    t = torch.rand(len(data.latents), generator=generator) * 0.9 + 0.05
    x_t, v = flow_targets(data.latents, torch.randn(data.latents.shape, generator=generator), t)
    with torch.no_grad():
        return float((mmdit(x_t, t * 1000, context=data.context, y=data.y) - v).pow(2).mean())


def _fresh() -> MMDiT:
    torch.manual_seed(0)
    mmdit = MMDiT(CONFIG)
    init_mmdit_weights(mmdit, torch.Generator().manual_seed(0))
    return mmdit


def test_a_few_training_steps_lower_the_velocity_loss():
    """80 steps on three conditioned patterns bring the velocity loss on fixed (t, noise) well below the start."""
    data, mmdit = _classes_data(), _fresh()
    before = _fixed_loss(mmdit, data)
    losses = []
    report = train_flow(mmdit, data, TrainConfig(steps=80, batch_size=12, lr=3e-3, warmup_steps=5, ema_decay=0.0),
                        lambda step, total, info: losses.append(info["loss"]), caption_dropout=0.0)
    assert _fixed_loss(mmdit, data) < 0.6 * before
    assert len(losses) == 80 and report["objective"] == "rectified_flow_velocity"
    assert set(report["loss_by_time"]) == {f"{i / 10:.1f}-{(i + 1) / 10:.1f}" for i in range(10)}


def test_interrupted_flow_training_resumes_exactly(tmp_path):
    """Stopping after a checkpoint and resuming gives the same weights as one uninterrupted run."""
    data = _classes_data()
    config = TrainConfig(steps=6, batch_size=6, lr=1e-3, warmup_steps=1, ema_decay=0.9, checkpoint_every=3)
    straight = _fresh()
    train_flow(straight, data, config, lambda *a: None, TrainingRun(tmp_path / "a", {"run": 1}))

    interrupted = _fresh()
    with pytest.raises(StopTraining):
        train_flow(interrupted, data, config, stop_at(4), TrainingRun(tmp_path / "b", {"run": 1}))
    resumed = _fresh()
    train_flow(resumed, data, config, lambda *a: None, TrainingRun(tmp_path / "b", {"run": 1}))
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def _tiny_parts() -> tuple[MMDiT, AutoencoderKL, SD3TextEncoder]:
    torch.manual_seed(1)
    clip = CLIPTextModel(TextEncoderConfig(width=8, layers=1, heads=2, intermediate=16))
    encoder = SD3TextEncoder(clip, None, context_dim=8, clip_widths=(8, 0), pooled_dims=(8, 0), clip_tokens=5,
                             empty_t5_tokens=0)
    vae = AutoencoderKL(VAEConfig(ch=32, ch_mult=(1, 1), num_res_blocks=1, z_channels=4, scale_factor=0.7))
    mmdit = MMDiT(CONFIG)
    for parameter in mmdit.parameters():      # non-zero everywhere, so the round trip compares real outputs
        parameter.data.normal_(0, 0.05)
    return mmdit, vae, encoder


def test_flow_checkpoint_round_trips_through_load_checkpoint(tmp_path):
    """save_flow_checkpoint → load_checkpoint: SD3 family, flow prediction, exact configs, equal outputs, the shift."""
    mmdit, vae, encoder = _tiny_parts()
    path = tmp_path / "flow.safetensors"
    save_flow_checkpoint(path, mmdit=mmdit, vae=vae, text_encoder=encoder, shift=1.5, dtype=torch.float32)
    ckpt = load_checkpoint(path)
    assert ckpt.family == "sd3" and ckpt.prediction == "flow"
    assert ckpt.unet.config == CONFIG and ckpt.vae.config == vae.config
    assert ckpt.text_encoder.clip_l.encoders["clip_l"].config == encoder.clip_l.encoders["clip_l"].config
    prompt = ["a large red circle in the centre, on a white background"]
    original, loaded = encoder.encode(prompt), ckpt.text_encoder.encode(prompt)
    assert loaded["context"].shape == (1, 5, 8) and loaded["y"].shape == (1, 8)
    assert torch.equal(original["context"], loaded["context"]) and torch.equal(original["y"], loaded["y"])
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        expected, found = mmdit(x, torch.tensor([500.0]), **original), ckpt.unet(x, torch.tensor([500.0]), **loaded)
    assert torch.allclose(expected, found, atol=1e-6, rtol=0)      # same weights; kernels may differ in the last bit
    assert sd3_diffusion_model(ckpt.unet, "flow").time_map.shift == 1.5


def test_flow_checkpoint_metadata_errors_name_the_key(tmp_path):
    """An unknown text-layout key or a bad shift in the metadata is a ModelLoadError naming it."""
    from safetensors.torch import load_file, save_file

    mmdit, vae, encoder = _tiny_parts()
    path = tmp_path / "flow.safetensors"
    save_flow_checkpoint(path, mmdit=mmdit, vae=vae, text_encoder=encoder, dtype=torch.float32)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(path))
    for change, message in (({"sd3_text": {"clip_tokenz": 4}}, "clip_tokenz"), ({"shift": -1}, "shift")):
        config = {**json.loads(metadata[METADATA_KEY]), **change}
        save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(config)})
        with pytest.raises(ModelLoadError, match=message):
            load_checkpoint(path)


def _link(node: str, output: str) -> dict:
    return {"node": node, "output": output}


def test_training_graph_smoke_run_saves_a_model_that_samples(tmp_path):
    """graphs/train/train_tiny_flow.json at smoke size (64 images, 3 steps, 1 block) saves a file txt2img samples."""
    session = Session(model_paths=ModelPaths(roots=[tmp_path / "models", ROOT / "models"]),
                      output_dir=tmp_path / "out")
    graph = ROOT / "graphs" / "train" / "train_tiny_flow.json"
    assert session.validate(graph) == []
    overrides = {"data.count": 64, "flow.depth": 1, "flow.steps": 3, "flow.batch_size": 4, "flow.warmup_steps": 1,
                 "flow.checkpoint_every": 2, "flow.run_name": "smoke"}
    events = []
    result = session.run(graph, overrides=overrides, on_event=events.append)
    saved = tmp_path / "models" / "checkpoints" / "tiny_world_flow_1.safetensors"   # the shipped file has the name
    assert result.outputs["save"]["model_files"][0]["path"] == str(saved)
    losses = [e.info["loss"] for e in events if e.type == "node_progress" and e.node_id == "flow"]
    assert len(losses) == 3 and all(0 < loss < 10 for loss in losses)
    assert json.loads(result.outputs["report"]["value"])["steps"] == 3
    sample = {"format_version": 1, "nodes": {
        "ckpt": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": saved.name}},
        "pos": {"type": "EncodeTextSD3", "inputs": {"text_encoder": _link("ckpt", "text_encoder"),
                                                    "text": "a small red circle on the left, on a blue background"}},
        "neg": {"type": "EncodeText", "inputs": {"text_encoder": _link("ckpt", "text_encoder"), "text": ""}},
        "empty": {"type": "EmptyLatent", "inputs": {"width": 64, "height": 64, "vae": _link("ckpt", "vae")}},
        "k": {"type": "KSampler", "inputs": {"model": _link("ckpt", "model"), "positive": _link("pos", "conditioning"),
                                             "negative": _link("neg", "conditioning"),
                                             "latent": _link("empty", "latent"), "steps": 2, "sampler": "euler",
                                             "scheduler": "normal"}},
        "dec": {"type": "VAEDecode", "inputs": {"vae": _link("ckpt", "vae"), "latent": _link("k", "latent")}},
        "show": {"type": "ShowValue", "inputs": {"value": _link("dec", "image")}}}}
    image = session.run(sample).outputs["show"]["value"]
    assert image.shape == (1, 64, 64, 3) and torch.isfinite(image).all()


def test_train_flow_refuses_a_text_encoder_without_one_clip(tmp_path):
    """TrainFlow given an SD3-family text encoder (e.g. its own output) names the text_encoder input."""
    session = Session(model_paths=ModelPaths(roots=[tmp_path / "models", ROOT / "models"]),
                      output_dir=tmp_path / "out")
    graph = {"format_version": 1, "nodes": {
        "base": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world.safetensors", "weight_dtype": "fp32"}},
        "data": {"type": "TinyWorldDataset", "inputs": {"count": 8}},
        "first": {"type": "TrainFlow", "inputs": {"dataset": _link("data", "dataset"),
                                                  "text_encoder": _link("base", "text_encoder"),
                                                  "vae": _link("base", "vae"), "depth": 1, "steps": 1,
                                                  "batch_size": 2, "run_name": "first"}},
        "second": {"type": "TrainFlow", "inputs": {"dataset": _link("data", "dataset"),
                                                   "text_encoder": _link("first", "text_encoder"),
                                                   "vae": _link("base", "vae"), "depth": 1, "steps": 1,
                                                   "batch_size": 2, "run_name": "second"}},
        "show": {"type": "ShowValue", "inputs": {"value": _link("second", "report")}}}}
    with pytest.raises(NodeExecutionError) as error:
        session.run(graph)
    assert error.value.node_id == "second"
    assert "text_encoder" in str(error.value) and "one CLIP" in str(error.value)


def test_continue_training_graph_starts_from_the_given_flow_model(tmp_path):
    """graphs/train/train_tiny_flow_more.json at smoke size: TrainFlow with init_model continues the shipped flow
    model (its first-step loss is far below a fresh model's on the same data); a model of another size names
    init_model."""
    session = Session(model_paths=ModelPaths(roots=[tmp_path / "models", ROOT / "models"]),
                      output_dir=tmp_path / "out")
    graph = ROOT / "graphs" / "train" / "train_tiny_flow_more.json"
    assert session.validate(graph) == []
    overrides = {"data.count": 48, "flow.steps": 1, "flow.batch_size": 16, "flow.warmup_steps": 0,
                 "flow.checkpoint_every": 0, "flow.run_name": "more_smoke", "flow.lr": 1e-9}
    events = []
    result = session.run(graph, overrides=overrides, outputs=["report"], on_event=events.append)
    continued = [e.info["loss"] for e in events if e.type == "node_progress" and e.node_id == "flow"][0]
    assert json.loads(result.outputs["report"]["value"])["steps"] == 1
    fresh = json.loads(graph.read_text())
    del fresh["nodes"]["flow"]["inputs"]["init_model"]
    events = []
    session.run(fresh, overrides={**overrides, "flow.run_name": "fresh_smoke"}, outputs=["report"],
                on_event=events.append)
    scratch = [e.info["loss"] for e in events if e.type == "node_progress" and e.node_id == "flow"][0]
    assert continued < 0.7 * scratch
    with pytest.raises(NodeExecutionError) as error:
        session.run(graph, overrides={**overrides, "flow.depth": 2, "flow.run_name": "other"}, outputs=["report"])
    assert error.value.exception.input == "init_model"


def test_the_flow_checkpoints_own_text_encoder_is_refused_with_the_way_to_connect_one(tmp_path):
    """Wiring one LoadCheckpoint of the flow model into TrainFlow (as for TrainDiffusion) said "found a sd3 one with
    0 CLIP encoders" of a file that holds a CLIP; the message now says why and what to connect."""
    from types import SimpleNamespace

    import pytest

    from nodegraph import NodeInputError
    from nodes.training.flow_nodes import TrainFlow

    node = TrainFlow()
    node.context = SimpleNamespace(service=lambda name: {"output_dir": tmp_path}.get(name))
    with pytest.raises(NodeInputError) as failure:
        node.run(**{**{name: spec.default for name, spec in TrainFlow.spec.inputs.items()},
                    "dataset": None, "vae": None, "text_encoder": SimpleNamespace(family="sd3", encoder=None)})
    assert "second LoadCheckpoint of tiny_world.safetensors" in str(failure.value)
