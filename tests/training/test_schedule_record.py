"""Checkpoints remember their training noise schedule (#16 §5), and EMA warms up its decay."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from nodegraph import Session
from nodegraph.model_paths import ModelPaths
from nodegraph.node import NodeContext
from nodes.models.clip import CLIP_L, CLIPTextModel, PromptEncoder
from nodes.models.detect import ModelLoadError
from nodes.models.loading import (describe_schedule, load_checkpoint, read_schedule, rescale_zero_terminal_snr,
                                  schedule_alphas_cumprod, training_betas)
from nodes.models.nodes import TextEncoder, diffusion_model
from nodes.models.unet import TINY, UNetModel
from nodes.models.vae import TINY_VAE, AutoencoderKL
from nodes.sampling.schedules import get_sigmas
from nodes.training.nodes import SaveCheckpoint
from nodes.training.trainer import EMA, ema_decay_at


class Memory:
    def register(self, module, name):
        pass


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    unet = UNetModel(replace(TINY, context_dim=64, prediction="v"))
    encoder = PromptEncoder({"clip_l": CLIPTextModel(replace(CLIP_L, width=64, layers=1, heads=2, intermediate=128))},
                            pooled_from="clip_l")
    return unet, AutoencoderKL(TINY_VAE), encoder


def _context(tmp_path):
    return NodeContext("n", "N", lambda *a: None, lambda nid: None,
                       {"model_paths": ModelPaths(roots=[tmp_path / "models"]), "memory": Memory()})


def _save_and_load(tmp_path, parts, schedule):
    unet, vae, encoder = parts
    save = SaveCheckpoint()
    save.context = _context(tmp_path)
    model = diffusion_model(unet, "m", schedule=schedule)
    save.run(model, TextEncoder(encoder, "sd1"), vae, "m.safetensors", "fp32", "", False)
    session = Session(model_paths=ModelPaths(roots=[tmp_path / "models"]))
    graph = {"format_version": 1, "nodes": {
        "load": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "m.safetensors"}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "load", "output": "model"}}}}}
    return model, session.run(graph).outputs["show"]["value"]


@pytest.mark.parametrize("schedule", [
    {"betas": "cosine", "timesteps": 1000, "zero_terminal_snr": False},
    {"betas": "linear", "timesteps": 1000, "zero_terminal_snr": False},
    {"betas": "scaled_linear", "timesteps": 1000, "zero_terminal_snr": True},
])
def test_saved_checkpoint_reloads_on_its_training_schedule(tmp_path, parts, schedule):
    """SaveCheckpoint → LoadCheckpoint gives the same sigmas (the old loader turned a cosine model's
    Karras range 20291→0.0064 into scaled-linear's 14.6→0.029) and the same prediction type."""
    model, loaded = _save_and_load(tmp_path, parts, schedule)
    before = get_sigmas("karras", model.denoiser(), 10)
    after = get_sigmas("karras", loaded.denoiser(), 10)
    assert torch.allclose(before, after)
    assert loaded.prediction == "v"
    assert load_checkpoint(tmp_path / "models" / "checkpoints" / "m.safetensors").schedule == schedule
    if schedule["betas"] == "cosine":
        assert float(after[0]) > 1000                                    # not scaled-linear's 14.6


def test_files_without_a_schedule_load_as_scaled_linear(tmp_path, parts):
    """A checkpoint that records nothing (every SD file) is sampled on SD's scaled-linear schedule."""
    from nodes.models.loading import save_checkpoint

    unet, vae, encoder = parts
    path = tmp_path / "plain.safetensors"
    save_checkpoint(path, family="sd1", unet=unet, vae=vae, text_encoder=encoder)
    ckpt = load_checkpoint(path)
    assert ckpt.schedule is None
    sigmas = diffusion_model(ckpt.unet, "m", schedule=ckpt.schedule).time_map.sigmas
    assert float(sigmas[-1]) == pytest.approx(14.6146, rel=1e-3)


def test_unnamed_tables_round_trip_as_tables():
    """A ᾱ table that no named schedule matches is recorded as the table itself."""
    table = torch.linspace(0.999, 0.01, 50, dtype=torch.float64)
    record = describe_schedule(table)
    assert set(record) == {"alphas_cumprod"}
    assert torch.allclose(schedule_alphas_cumprod(record), table)


def test_bad_schedule_records_are_refused_with_the_fix():
    """An unknown betas name or a rising table is a ModelLoadError that says what to write."""
    with pytest.raises(ModelLoadError, match="betas"):
        read_schedule({"schedule": {"betas": "quadratic"}})
    with pytest.raises(ModelLoadError, match="decreasing"):
        read_schedule({"schedule": {"alphas_cumprod": [0.1, 0.5]}})


def test_zero_terminal_snr_ends_in_pure_noise_and_keeps_the_start():
    """Rescaled betas give ᾱ_T = 0 and the same ᾱ_0 (Lin et al. 2024, Alg. 1)."""
    betas = training_betas("scaled_linear")
    rescaled = rescale_zero_terminal_snr(betas)
    alphas_cumprod = torch.cumprod(1 - rescaled, 0)
    assert float(alphas_cumprod[-1]) == pytest.approx(0.0, abs=1e-12)
    assert float(alphas_cumprod[0]) == pytest.approx(float(1 - betas[0]), rel=1e-9)
    assert float(schedule_alphas_cumprod({"betas": "scaled_linear", "zero_terminal_snr": True})[-1]) > 0


def test_ema_decay_warms_up():
    """The decay follows (1 + k) / (10 + k) until it reaches the configured decay."""
    assert ema_decay_at(0, 0.998) == pytest.approx(0.1)
    assert ema_decay_at(90, 0.998) == pytest.approx(91 / 100)
    assert ema_decay_at(10_000, 0.998) == 0.998
    assert ema_decay_at(0, 0.998, warmup=False) == 0.998


def test_ema_forgets_the_random_init():
    """After 500 updates towards constant weights, under 1 % of the initial value remains (37 % without warm-up)."""
    module = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        module.weight.fill_(1.0)
    warm, cold = EMA(module, 0.998), EMA(module, 0.998, warmup=False)
    with torch.no_grad():
        module.weight.fill_(0.0)
    for _ in range(500):
        warm.update(module)
        cold.update(module)
    assert float(warm.shadow["weight"]) < 0.01
    assert float(cold.shadow["weight"]) == pytest.approx(0.998**500, rel=1e-3)
