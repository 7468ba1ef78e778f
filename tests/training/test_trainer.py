"""Training loops and nodes on tiny synthetic data: learning happens, resume is exact, the result loads."""

from __future__ import annotations

import sys
from dataclasses import replace

import pytest
import torch

from nodegraph import Input, Node, NodeInputs, Output, Session, hookimpl
from nodegraph.model_paths import ModelPaths
from nodes.models.clip import CLIP_L, CLIPTextModel
from nodes.models.unet import UNetConfig, UNetModel
from nodes.models.vae import AutoencoderKL, VAEConfig
from nodes.sampling.schedules import alphas_cumprod_from_betas, scaled_linear_betas
from nodes.training.trainer import (DiffusionData, TrainConfig, TrainingRun, lr_at, random_crops, train_diffusion,
                                    train_vae)

from ..interrupt import StopTraining, stop_at

COLOURS = [(-1.0, -1.0, 1.0), (1.0, -1.0, -1.0), (-1.0, 1.0, -1.0)]
WORDS = ["blue", "red", "green"]


def squares(count: int, size: int = 16) -> tuple[torch.Tensor, list[str]]:
    """A coloured square on black; the caption names the colour."""
    images = torch.full((count, 3, size, size), -1.0)
    captions = []
    for i in range(count):
        k = i % 3
        images[i, :, 4:12, 4:12] = torch.tensor(COLOURS[k]).view(3, 1, 1)
        captions.append(f"a {WORDS[k]} square")
    return images, captions


def tiny_vae() -> AutoencoderKL:
    torch.manual_seed(0)
    return AutoencoderKL(VAEConfig(ch=32, ch_mult=(1, 1), num_res_blocks=1, z_channels=4))


def test_lr_schedule_warms_up_then_decays():
    """The learning rate rises linearly, peaks at lr, and ends at min_lr."""
    config = TrainConfig(steps=100, lr=1.0, min_lr=0.1, warmup_steps=10)
    assert lr_at(0, config) == pytest.approx(0.1) and lr_at(9, config) == pytest.approx(1.0)
    assert lr_at(99, config) == pytest.approx(0.1, abs=1e-3)
    assert lr_at(55, config) < lr_at(20, config)


def test_vae_learns_to_reconstruct():
    """A few hundred steps bring the reconstruction error well below the start."""
    images, _ = squares(30)
    vae = tiny_vae()
    losses = []
    report = train_vae(vae, images, TrainConfig(steps=150, batch_size=8, lr=3e-3, warmup_steps=10, ema_decay=0.0),
                       lambda step, total, info: losses.append(info["l1"]))
    assert losses[-1] < 0.4 * losses[0]
    assert report["latent_std"] > 0


def test_random_crops_are_windows_of_each_image():
    """Each crop is a size×size window of its own image, at a position drawn from the generator."""
    images = torch.arange(2 * 3 * 10 * 12, dtype=torch.float32).view(2, 3, 10, 12)
    crops = random_crops(images, 4, torch.Generator().manual_seed(0))
    assert crops.shape == (2, 3, 4, 4)
    for image, crop in zip(images, crops):
        top, left = divmod(int(crop[0, 0, 0].item()) % 120, 12)
        assert torch.equal(crop, image[:, top:top + 4, left:left + 4])
    again = random_crops(images, 4, torch.Generator().manual_seed(0))
    assert torch.equal(crops, again)
    assert random_crops(images, 0, torch.Generator()) is images            # 0 = whole images
    assert random_crops(images, 64, torch.Generator()) is images           # larger than the image


def test_vae_trained_on_crops_reconstructs_whole_images():
    """A convolutional VAE trained on 8×8 crops reconstructs the full 16×16 images it never saw whole."""
    images, _ = squares(30)
    vae = tiny_vae()
    with torch.no_grad():
        before = (vae.decode(vae.encode(images[:6])) - images[:6]).abs().mean().item()
    train_vae(vae, images, TrainConfig(steps=120, batch_size=8, lr=3e-3, warmup_steps=10, ema_decay=0.0),
              lambda step, total, info: None, crop=8)
    with torch.no_grad():
        after = (vae.decode(vae.encode(images[:6])) - images[:6]).abs().mean().item()
    assert after < 0.5 * before     # less than training on whole images gives: GroupNorm sees other statistics


def test_resume_is_exact(tmp_path):
    """Training interrupted after a checkpoint and resumed ends bitwise equal to an uninterrupted run."""
    images, _ = squares(12)
    config = TrainConfig(steps=8, batch_size=4, lr=1e-3, warmup_steps=2, ema_decay=0.9, checkpoint_every=4)
    whole = tiny_vae()
    train_vae(whole, images, config, lambda *a: None, TrainingRun(tmp_path / "a", {"x": 1}))

    run = TrainingRun(tmp_path / "b", {"x": 1})
    with pytest.raises(StopTraining):
        train_vae(tiny_vae(), images, config, stop_at(6), run)
    resumed = tiny_vae()
    steps_seen = []
    train_vae(resumed, images, config, lambda step, total, info: steps_seen.append(step), run)
    assert steps_seen[0] == 5   # restarted from the step-4 checkpoint: lost less than one interval
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    assert TrainingRun(tmp_path / "b", {"x": 2}).resume() is None   # other settings never resume this state


def test_diffusion_loss_falls_and_reports_by_timestep():
    """The UNet + text encoder loss falls; the report has a loss for every timestep bucket."""
    torch.manual_seed(0)
    text_config = replace(CLIP_L, width=32, layers=1, heads=2, intermediate=64)
    unet = UNetModel(UNetConfig(model_channels=32, channel_mult=(1, 1), num_res_blocks=1, transformer_depth=(0, 1),
                                context_dim=32, num_heads=2))
    clip = CLIPTextModel(text_config)
    latents = torch.randn(3, 4, 8, 8).repeat(10, 1, 1, 1) * 0.5
    ids = torch.randint(1, 1000, (3, 77)).repeat(10, 1)
    data = DiffusionData(latents, ids, torch.full((77,), 49407))
    losses = []
    report = train_diffusion(unet, clip, data, alphas_cumprod_from_betas(scaled_linear_betas()),
                             TrainConfig(steps=120, batch_size=8, lr=2e-3, warmup_steps=10, ema_decay=0.0),
                             lambda step, total, info: losses.append(info["loss"]), objective="v")
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.8 * first
    assert len(report["loss_by_timestep"]) == 10 and report["objective"] == "v"


class Squares(Node):
    """The synthetic squares as a DATASET (tests only)."""

    class Inputs(NodeInputs):
        count: int = Input(30)

    outputs = (Output("dataset", "DATASET"),)

    def run(self, count):
        images, captions = squares(count)
        return {"dataset": [(images[i], captions[i]) for i in range(count)]}


@hookimpl
def register_nodes():
    return [Squares]


def test_training_graph_saves_a_loadable_checkpoint(tmp_path):
    """TrainVAE → TrainDiffusion → SaveCheckpoint, then LoadCheckpoint samples from the saved file."""
    session = Session(plugins=[("squares", sys.modules[__name__])], model_paths=ModelPaths(roots=[tmp_path / "models"]),
                      output_dir=tmp_path / "out")
    link = lambda node, output: {"node": node, "output": output}  # noqa: E731
    train = {"format_version": 1, "nodes": {
        "data": {"type": "Squares", "inputs": {"count": 30}},
        "vae": {"type": "TrainVAE", "inputs": {"dataset": link("data", "dataset"), "width": 32, "channel_mult": "1,1",
                                               "steps": 20, "batch_size": 8, "checkpoint_every": 10}},
        "unet": {"type": "TrainDiffusion", "inputs": {
            "dataset": link("data", "dataset"), "vae": link("vae", "vae"), "model_channels": 32, "channel_mult": "1,1",
            "res_blocks": 1, "attention_levels": "0,1", "heads": 2, "text_width": 32, "text_layers": 1,
            "steps": 10, "batch_size": 8, "warmup_steps": 2}},
        "save": {"type": "SaveCheckpoint", "inputs": {"model": link("unet", "model"),
                                                      "text_encoder": link("unet", "text_encoder"),
                                                      "vae": link("vae", "vae"), "filename": "squares.safetensors"}}}}
    events = []
    result = session.run(train, on_event=events.append)
    assert (tmp_path / "models" / "checkpoints" / "squares.safetensors").is_file()
    losses = [e.info["loss"] for e in events                 # the steps (the dataset encoding reports a stage)
              if e.type == "node_progress" and e.node_id == "unet" and "loss" in e.info]
    assert len(losses) == 10
    assert (tmp_path / "out" / "training" / "vae" / "training_state.safetensors").is_file()
    sample = {"format_version": 1, "nodes": {
        "ckpt": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "squares.safetensors"}},
        "pos": {"type": "EncodeText", "inputs": {"text_encoder": link("ckpt", "text_encoder"), "text": "a red square"}},
        "neg": {"type": "EncodeText", "inputs": {"text_encoder": link("ckpt", "text_encoder"), "text": ""}},
        "empty": {"type": "EmptyLatent", "inputs": {"width": 16, "height": 16, "vae": link("ckpt", "vae")}},
        "k": {"type": "KSampler", "inputs": {"model": link("ckpt", "model"), "positive": link("pos", "conditioning"),
                                             "negative": link("neg", "conditioning"),
                                             "latent": link("empty", "latent"), "steps": 3}},
        "dec": {"type": "VAEDecode", "inputs": {"vae": link("ckpt", "vae"), "latent": link("k", "latent")}},
        "show": {"type": "ShowValue", "inputs": {"value": link("dec", "image")}}}}
    image = session.run(sample).outputs["show"]["value"]
    assert image.shape == (1, 16, 16, 3)
    assert result.outputs["save"]["bytes"] > 10_000


def test_train_vae_fine_tunes_an_init_vae_without_changing_it(tmp_path):
    """TrainVAE with `init` starts from that VAE (its architecture, not the width inputs) and leaves it intact."""
    session = Session(plugins=[("squares", sys.modules[__name__])], output_dir=tmp_path / "out")
    link = lambda node, output: {"node": node, "output": output}  # noqa: E731
    graph = {"format_version": 1, "nodes": {
        "data": {"type": "Squares", "inputs": {"count": 12}},
        "base": {"type": "TrainVAE", "inputs": {"dataset": link("data", "dataset"), "width": 32, "channel_mult": "1,1",
                                                "steps": 4, "batch_size": 4, "crop_size": 8, "run_name": "base"}},
        "tuned": {"type": "TrainVAE", "inputs": {"dataset": link("data", "dataset"), "init": link("base", "vae"),
                                                 "width": 64, "steps": 3, "batch_size": 4, "run_name": "tuned"}},
        "show_base": {"type": "ShowValue", "inputs": {"value": link("base", "vae")}},
        "show_tuned": {"type": "ShowValue", "inputs": {"value": link("tuned", "vae")}}}}
    outputs = session.run(graph).outputs
    base, tuned = outputs["show_base"]["value"], outputs["show_tuned"]["value"]
    assert tuned.config.ch == base.config.ch == 32                  # the init's architecture, not width=64
    assert tuned is not base
    base_weights = {k: v.clone() for k, v in base.state_dict().items()}
    assert any(not torch.equal(base_weights[k], v) for k, v in tuned.state_dict().items())
    session.run(graph)                                              # cached: nothing retrains, base untouched
    assert all(torch.equal(base_weights[k], v) for k, v in base.state_dict().items())
    assert (tmp_path / "out" / "training" / "tuned" / "training_state.safetensors").is_file()


def test_controlnet_training_graph_saves_a_loadable_controlnet(tmp_path):
    """TrainVAE → TrainDiffusion → TrainControlNet → SaveControlNet; the file loads and steers sampling."""
    session = Session(plugins=[("squares", sys.modules[__name__])], model_paths=ModelPaths(roots=[tmp_path / "models"]),
                      output_dir=tmp_path / "out")
    link = lambda node, output: {"node": node, "output": output}  # noqa: E731
    graph = {"format_version": 1, "nodes": {
        "data": {"type": "Squares", "inputs": {"count": 24}},
        "vae": {"type": "TrainVAE", "inputs": {"dataset": link("data", "dataset"), "width": 32, "channel_mult": "1,1",
                                               "steps": 10, "batch_size": 8}},
        "unet": {"type": "TrainDiffusion", "inputs": {
            "dataset": link("data", "dataset"), "vae": link("vae", "vae"), "model_channels": 32, "channel_mult": "1,1",
            "res_blocks": 1, "attention_levels": "0,1", "heads": 2, "text_width": 32, "text_layers": 1,
            "steps": 4, "batch_size": 8, "warmup_steps": 1}},
        "control": {"type": "TrainControlNet", "inputs": {
            "dataset": link("data", "dataset"), "model": link("unet", "model"),
            "text_encoder": link("unet", "text_encoder"), "vae": link("vae", "vae"), "hint": "mask", "steps": 6,
            "batch_size": 4, "lr": 1e-3, "warmup_steps": 1, "checkpoint_every": 3}},
        "save": {"type": "SaveControlNet", "inputs": {"control_net": link("control", "control_net"),
                                                      "filename": "squares_mask.safetensors"}}}}
    events = []
    session.run(graph, on_event=events.append)
    losses = [e.info["loss"] for e in events
              if e.type == "node_progress" and e.node_id == "control" and "loss" in e.info]
    assert len(losses) == 6
    assert (tmp_path / "out" / "training" / "controlnet" / "training_state.safetensors").is_file()
    from nodes.models.loading import load_controlnet

    net = load_controlnet(tmp_path / "models" / "controlnet" / "squares_mask.safetensors")
    assert net.config.hint_widths == (16, 32) and net.config.unet.context_dim == 32
    # trained zero convs are no longer zero: the ControlNet now changes the UNet's prediction
    assert any(float(p.abs().sum()) > 0 for p in net.zero_convs.parameters())


def test_two_runs_sharing_a_run_name_at_once_are_told(tmp_path):
    """Two runs with one run_name at the same time: the last save won and the other's state was gone without a
    word (a stranger's finding); now each is warned once, at its first save after the other's."""
    from nodes.training.trainer import TrainingRun

    said_a, said_b = [], []
    first = TrainingRun(tmp_path / "run", {"lr": 1}, warn=said_a.append, shown_as="run 'race'")
    second = TrainingRun(tmp_path / "run", {"lr": 2}, warn=said_b.append, shown_as="run 'race'")
    assert first.resume() is None and second.resume() is None
    first.save({"step": 1, "w": torch.zeros(2)})
    first.save({"step": 2, "w": torch.zeros(2)})
    assert said_a == [] and said_b == []          # a run's own saves say nothing
    second.save({"step": 1, "w": torch.ones(2)})
    assert len(said_b) == 1 and "same run_name used twice at once" in said_b[0]
    first.save({"step": 3, "w": torch.zeros(2)})
    second.save({"step": 2, "w": torch.ones(2)})
    assert len(said_a) == 1 and len(said_b) == 1    # once each
    alone = TrainingRun(tmp_path / "alone", {"lr": 1}, warn=said_a.append)
    alone.resume()
    alone.save({"step": 1})
    again = TrainingRun(tmp_path / "alone", {"lr": 1}, warn=said_a.append)
    again.resume()
    again.save({"step": 2})
    assert len(said_a) == 2 and "resuming" in said_a[-1]        # a resumed run is no second run
