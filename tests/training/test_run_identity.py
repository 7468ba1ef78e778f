"""What a saved training state is resumed by (docs/training.md, "Re-running a training graph").

An outside check found that a run resumed the old weights after an image was replaced (the identity
held only the image count), that "train longer" (steps 3 → 5) silently restarted from step 0 and
overwrote the saved state, that a fine-tune of a trained VAE retrained on every run (its identity held
the preview map, a fit that varies in its last bits), and that a finished run's report lost its losses.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from nodegraph import NodeExecutionError, Session
from nodes.models.vae import AutoencoderKL, VAEConfig
from nodes.training.trainer import STATE_JSON, STATE_TENSORS, TrainConfig, TrainingRun, train_vae

torch.set_num_threads(1)


def _images() -> torch.Tensor:
    return torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1


def _vae() -> AutoencoderKL:
    torch.manual_seed(0)
    return AutoencoderKL(VAEConfig(ch=32, ch_mult=(1,), num_res_blocks=1, z_channels=2))


def _config(**changes) -> TrainConfig:
    settings = {"steps": 2, "batch_size": 2, "lr": 1e-3, "warmup_steps": 1, "ema_decay": 0.9, "checkpoint_every": 1}
    return TrainConfig(**{**settings, **changes})


def _train(folder, config: TrainConfig, identity_extra: dict | None = None) -> tuple[list[int], list[str], dict]:
    """Train a tiny VAE in `folder`: (steps run, warnings, report)."""
    steps, warnings = [], []
    run = TrainingRun(folder, {"train": repr(config), "data": "6 items", **(identity_extra or {})},
                      warn=warnings.append, shown_as="training run 'v'")
    report = train_vae(_vae(), _images(), config, lambda step, total, info: steps.append(step), run)
    return steps, warnings, report


def _saved_step(path) -> int:
    return json.loads(path.read_text())["step"]


def test_raising_steps_continues_the_saved_run(tmp_path):
    """steps 2 → 4 trains steps 3 and 4 from the saved state (with a warning saying so); the state is kept."""
    assert _train(tmp_path, _config())[0] == [1, 2]
    steps, warnings, _ = _train(tmp_path, _config(steps=4))
    assert steps == [3, 4]
    assert len(warnings) == 1 and "continuing" in warnings[0] and "train.steps 2 → 4" in warnings[0]
    assert _saved_step(tmp_path / STATE_JSON) == 4 and not list(tmp_path.glob("training_state_*"))
    steps, warnings, _ = _train(tmp_path, _config(steps=4, checkpoint_every=3))   # the interval alone: finished
    assert (steps, len(warnings)) == ([], 1)


def test_other_settings_start_again_and_keep_the_old_state(tmp_path):
    """Another lr starts at step 1, warns naming the change, and keeps the old state as training_state_1.*."""
    _train(tmp_path, _config())
    old = (tmp_path / STATE_TENSORS).read_bytes()
    steps, warnings, _ = _train(tmp_path, _config(lr=2e-3))
    assert steps == [1, 2]
    assert len(warnings) == 1 and "train.lr 0.001 → 0.002" in warnings[0] and "training_state_1.*" in warnings[0]
    assert "Training starts again from step 0" in warnings[0] and "training run 'v'" in warnings[0]
    assert (tmp_path / "training_state_1.safetensors").read_bytes() == old
    assert _saved_step(tmp_path / "training_state_1.json") == 2
    assert (tmp_path / STATE_TENSORS).read_bytes() != old
    _, warnings, _ = _train(tmp_path, _config(lr=3e-3))     # a second change keeps the second state too
    assert "kept as training_state_2.*" in warnings[0]
    assert (tmp_path / "training_state_2.json").is_file() and (tmp_path / "training_state_1.json").is_file()


def test_fewer_steps_than_saved_start_again(tmp_path):
    """steps 4 → 2 after a finished 4-step run cannot continue: it starts again, keeping the 4-step state."""
    _train(tmp_path, _config(steps=4))
    steps, warnings, _ = _train(tmp_path, _config(steps=2))
    assert steps == [1, 2] and "past the new length" in warnings[0]
    assert _saved_step(tmp_path / "training_state_1.json") == 4


def test_an_interrupted_run_with_other_settings_keeps_the_old_state_in_place(tmp_path):
    """The old state moves aside only at the new run's first checkpoint: before that it stays where it is."""
    _train(tmp_path, _config())
    run = TrainingRun(tmp_path, {"train": repr(_config(lr=5e-3)), "data": "6 items"}, warn=lambda message: None)
    assert run.resume() is None
    assert (tmp_path / STATE_JSON).is_file() and not list(tmp_path.glob("training_state_*"))


def test_a_finished_run_reports_its_losses(tmp_path):
    """A re-run of a finished run trains 0 steps and its report still has the last step's losses."""
    _, _, first = _train(tmp_path, _config())
    steps, _, again = _train(tmp_path, _config())
    assert steps == []
    for key in ("l1", "mse", "kl", "loss", "grad_norm"):
        assert again[key] == pytest.approx(first[key])


def test_a_finished_diffusion_run_reports_its_loss_by_timestep(tmp_path):
    """train_diffusion's report keeps its loss-by-timestep figures when the finished run is resumed."""
    from dataclasses import replace

    from nodes.models.clip import CLIP_L, CLIPTextModel
    from nodes.models.unet import UNetConfig, UNetModel
    from nodes.sampling.schedules import alphas_cumprod_from_betas, scaled_linear_betas
    from nodes.training.trainer import DiffusionData, train_diffusion

    text = replace(CLIP_L, width=16, layers=1, heads=2, intermediate=32)
    unet_config = UNetConfig(in_channels=2, out_channels=2, model_channels=32, channel_mult=(1,), num_res_blocks=1,
                             transformer_depth=(0,), transformer_depth_middle=0, context_dim=16, num_heads=2)
    data = DiffusionData(torch.randn(4, 2, 4, 4), torch.randint(0, 100, (4, 77)), torch.zeros(77, dtype=torch.long))
    alphas = alphas_cumprod_from_betas(scaled_linear_betas(1000))
    reports = []
    for _ in range(2):
        torch.manual_seed(0)
        unet, clip = UNetModel(unet_config), CLIPTextModel(text)
        reports.append(train_diffusion(unet, clip, data, alphas, _config(ema_decay=0.0), lambda *a: None,
                                       TrainingRun(tmp_path, {"x": 1})))
    assert reports[1]["loss_by_timestep"] == reports[0]["loss_by_timestep"]
    assert reports[1]["loss"] == reports[0]["loss"]


# --- through the nodes -----------------------------------------------------------------------------

def _picture(path, colour) -> None:
    Image.fromarray(np.full((8, 8, 3), colour, np.uint8)).save(path)


def _folder_graph(**vae_inputs) -> dict:
    vae = {"dataset": {"node": "data", "output": "dataset"}, "width": 32, "channel_mult": "1", "latent_channels": 2,
           "steps": 2, "batch_size": 2, "warmup_steps": 1, "checkpoint_every": 1, "run_name": "v", **vae_inputs}
    return {"format_version": 2, "nodes": {
        "data": {"type": "ImageFolderDataset", "inputs": {"folder": "pics", "size": 8}},
        "vae": {"type": "TrainVAE", "inputs": vae},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "vae", "output": "report"}}}}}


def _steps(session: Session, graph: dict, node: str = "vae") -> tuple[list[int], list[str]]:
    """(progress steps of `node`, its warnings) in a run from a fresh cache."""
    session.clear_cache()
    events = []
    result = session.run(graph, on_event=events.append)
    steps = [e.value for e in events if e.type == "node_progress" and e.node_id == node]
    return steps, [w["message"] for w in result.warnings if w["node_id"] == node]


def test_a_replaced_image_of_the_same_count_trains_again(tmp_path):
    """Replacing an image (same count) is other data: the VAE trains again, warning that the data changed."""
    (tmp_path / "in" / "pics").mkdir(parents=True)
    _picture(tmp_path / "in" / "pics" / "a.png", (200, 10, 10))
    (tmp_path / "in" / "pics" / "a.txt").write_text("a red square")
    _picture(tmp_path / "in" / "pics" / "b.png", (10, 10, 200))
    (tmp_path / "in" / "pics" / "b.txt").write_text("a blue square")
    session = Session(input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    assert _steps(session, _folder_graph())[0] == [1, 2]
    assert _steps(session, _folder_graph()) == ([], [])                      # unchanged: resumed, finished
    _picture(tmp_path / "in" / "pics" / "a.png", (10, 200, 10))
    steps, warnings = _steps(session, _folder_graph())
    assert steps == [1, 2]
    assert len(warnings) == 1 and "data 2 items, content" in warnings[0]
    assert "kept as training_state_1.*" in warnings[0]              # the file it will be, not "training_state_N"
    assert (tmp_path / "out" / "training" / "v" / "training_state_1.json").is_file()


def test_latent_data_identity_follows_images_and_captions_not_the_latents_last_bits(monkeypatch):
    """A diffusion fine-tune interrupted under --threads 2 and run again under --threads 1 started over ("data
    changed"): the VAE's latents differ by ~5e-7 between thread counts and the identity digested them. It now
    digests what they were encoded from (images, captions, the VAE's weights)."""
    from nodes.training import nodes as training_nodes

    reported = []

    class Node:
        class context:
            services: dict = {}

            @staticmethod
            def progress(value, total, info=None):
                reported.append((value, total, info))

    images = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(2)) * 2 - 1
    dataset = [(image, caption) for image, caption in zip(images, ("a red square", "a cat", "x"))]
    vae = _vae()

    def encoded(data, jitter=0.0):
        real = training_nodes._encode_pixels
        monkeypatch.setattr(training_nodes, "_encode_pixels", lambda v, p: real(v, p) + jitter)
        return training_nodes._encode_dataset(Node(), data, vae, 0)

    first, jittered = encoded(dataset), encoded(dataset, 5e-7)
    assert not torch.equal(first.latents, jittered.latents)
    assert training_nodes._data_text(3, first) == training_nodes._data_text(3, jittered)
    recaptioned = encoded([*dataset[:2], (dataset[2][0], "y")])
    repainted = encoded([*dataset[:2], (dataset[2][0] * 0.5, "x")])
    assert len({training_nodes._data_text(3, d) for d in (first, recaptioned, repainted)}) == 3
    # the encoding reports progress (a 24,000-image run showed nothing for minutes before step 1)
    assert reported[-1] == (3, 3, {"stage": "encoding images"})


def test_a_fine_tune_of_a_trained_vae_is_resumed_though_its_preview_map_varies(tmp_path):
    """TrainVAE's identity leaves out the init VAE's preview map (latent_rgb_*): a least-squares fit whose
    last bits differ from run to run once multi-threaded; the same weights with another map resume."""
    from nodes.training.nodes import TrainVAE

    class Context:
        def __init__(self, output_dir):
            self.services, self.output_dir, self.steps = {}, output_dir, []

        def service(self, name):
            assert name == "output_dir"
            return self.output_dir

        def progress(self, value, total, info=None):
            self.steps.append(value)

        def warn(self, message):
            raise AssertionError(f"unexpected warning: {message}")

    images = torch.rand(4, 8, 8, 3, generator=torch.Generator().manual_seed(1))
    dataset = [(image.permute(2, 0, 1) * 2 - 1, "x") for image in images]
    init = _vae()
    inputs = dict(dataset=dataset, width=32, channel_mult="1", res_blocks=1, latent_channels=2, steps=2, batch_size=2,
                  crop_size=0, lr=1e-3, warmup_steps=1, kl_weight=1e-6, ema_decay=0.9, seed=0, checkpoint_every=1,
                  run_name="full")
    seen = []
    for shift in (0.0, 1e-7):
        init.config = VAEConfig(ch=32, ch_mult=(1,), num_res_blocks=1, z_channels=2,
                                latent_rgb_factors=((0.1 + shift, 0.2, 0.3), (0.3, 0.2, 0.1)),
                                latent_rgb_bias=(shift, 0.0, 0.0))
        node = TrainVAE()
        node.context = Context(tmp_path)
        node.run(init=init, **inputs)
        seen.append(node.context.steps)
    assert seen == [[1, 2], []]


def test_dataset_folder_errors_name_the_input_and_the_fix(tmp_path):
    """An empty dataset folder fails naming `folder` (no internal argument name) and saying how to fix it."""
    (tmp_path / "in" / "empty").mkdir(parents=True)
    session = Session(input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    graph = _folder_graph()
    graph["nodes"]["data"]["inputs"]["folder"] = "empty"
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph)
    message = str(info.value.exception)
    assert info.value.exception.input == "folder" and "root:" not in message
    assert "no usable image" in message and "Fix:" in message and ".txt" in message
    assert str(tmp_path) not in message


def test_channel_counts_the_group_norms_cannot_split_are_refused_at_validation():
    """TrainVAE width=8 and TrainDiffusion model_channels=8 were allowed and failed inside torch's GroupNorm(32)."""
    from nodegraph import Session

    dataset = {"type": "TinyWorldDataset", "inputs": {"count": 4, "size": 16}}
    graph = {"format_version": 2, "nodes": {
        "ds": dataset,
        "vae": {"type": "TrainVAE", "inputs": {"dataset": {"node": "ds", "output": "dataset"}, "width": 8}},
        "unet": {"type": "TrainDiffusion", "inputs": {"dataset": {"node": "ds", "output": "dataset"},
                                                      "vae": {"node": "vae", "output": "vae"}, "model_channels": 48}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "unet", "output": "report"}}}}}
    errors = Session().validate(graph)
    assert {(e.node_id, e.input) for e in errors} == {("vae", "width"), ("unet", "model_channels")}
    assert all("multiple of 32" in e.message for e in errors)


def test_a_zero_channel_multiplier_is_refused_at_validation():
    """channel_mult '0,2' passed validation and failed inside torch (a convolution of 0 channels)."""
    from nodegraph import Session

    dataset = {"type": "TinyWorldDataset", "inputs": {"count": 4, "size": 16}}
    graph = {"format_version": 2, "nodes": {
        "ds": dataset,
        "vae": {"type": "TrainVAE", "inputs": {"dataset": {"node": "ds", "output": "dataset"}, "channel_mult": "0,2"}},
        "unet": {"type": "TrainDiffusion", "inputs": {"dataset": {"node": "ds", "output": "dataset"},
                                                      "vae": {"node": "vae", "output": "vae"}, "channel_mult": "1,0"}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "unet", "output": "report"}}}}}
    errors = Session().validate(graph)
    assert {(e.node_id, e.input) for e in errors} == {("vae", "channel_mult"), ("unet", "channel_mult")}
    assert all("positive integers" in e.message for e in errors)


def test_a_crop_size_not_smaller_than_the_images_warns(tmp_path):
    """crop_size 128 on 64 px images was silently ignored (whole images trained)."""
    from nodegraph import Session

    graph = {"format_version": 2, "nodes": {
        "ds": {"type": "TinyWorldDataset", "inputs": {"count": 4, "size": 16}},
        "vae": {"type": "TrainVAE", "inputs": {"dataset": {"node": "ds", "output": "dataset"}, "width": 32,
                                               "channel_mult": "1", "steps": 1, "batch_size": 2, "crop_size": 32,
                                               "run_name": "crop"}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "vae", "output": "report"}}}}}
    result = Session(output_dir=tmp_path).run(graph)
    assert any("crop_size 32 is not smaller than the images (16×16)" in w["message"] for w in result.warnings)


def test_a_run_stopped_before_its_first_state_says_the_steps_are_lost(tmp_path):
    """Stopped before any state was saved (checkpoint_every 0 saves only at the end), a run printed only
    "interrupted": a hobbyist's pass lost 14 steps without a word. Now it says so, and what keeps more."""
    from nodegraph.errors import RunInterrupted
    from nodes.training.nodes import _train as train_through_node

    warnings: list[str] = []
    run = TrainingRun(tmp_path / "state", {"x": 1}, warn=warnings.append, shown_as="run 'mine'")

    def stopped(config, run):
        raise RunInterrupted("stopped at step 14")

    with pytest.raises(RunInterrupted):
        train_through_node(stopped, _config(checkpoint_every=0), run)
    assert warnings == ["run 'mine': interrupted before its first training state was saved (checkpoint_every 0 "
                        "saves one only at the end), so a rerun starts from step 0; a smaller checkpoint_every keeps "
                        "more of a stopped run"]
