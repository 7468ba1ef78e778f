"""API 1.1: a plugin's own network, wrapped by api.diffusion_model, is sampled by the one sampler stack for
any latent layout (point sets (B, C, N) here), with CFG, every prediction type and flow models; and the
training pack's kits (api.tiny_world, api.training) are served with and without a running node."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from nodegraph import Input, Node, NodeInputs, Output, Session, api, hookimpl
from nodegraph.errors import NodeExecutionError

TARGET = torch.tensor([0.5, -1.0, 2.0]).view(1, 3, 1)     # every point of the "data" sits here


class KnowsTheData(torch.nn.Module):
    """An analytic denoiser for data that is exactly TARGET (per point): predicts x0, eps, v or flow exactly."""

    def __init__(self, prediction: str, alphas_cumprod: torch.Tensor | None = None, time_scale: float = 1000.0):
        super().__init__()
        self.prediction, self.alphas_cumprod, self.time_scale = prediction, alphas_cumprod, time_scale
        self.weight = torch.nn.Parameter(torch.zeros(()))       # trainable, as a plugin's net may leave it
        self.seen: list[tuple[tuple[int, ...], tuple[str, ...]]] = []

    def _alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        table = self.alphas_cumprod.to(torch.float64)
        low = t.floor().long().clamp(0, len(table) - 2)
        w = (t.to(torch.float64) - low).clamp(0, 1)
        log_sigma = torch.lerp(((1 - table) / table).sqrt().log()[low], ((1 - table) / table).sqrt().log()[low + 1], w)
        return (1 / (1 + log_sigma.exp() ** 2)).to(torch.float32)

    def forward(self, x: torch.Tensor, t: torch.Tensor, **cond: Any) -> torch.Tensor:
        self.seen.append((tuple(x.shape), tuple(sorted(cond))))
        x0 = TARGET.expand_as(x) + self.weight
        if self.prediction == "x0":
            return x0
        if self.prediction == "flow":
            s = (t / self.time_scale).view(-1, 1, 1)
            return (x - x0) / s                                  # v = eps - x0 with x = (1 - s) x0 + s eps
        a = self._alpha_bar(t).view(-1, 1, 1)
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        return eps if self.prediction == "eps" else a.sqrt() * eps - (1 - a).sqrt() * x0


class SamplePoints(Node):
    """A plugin node: wraps its own network and samples a (1, 3, 64) point set through api.sample."""

    category = "test"
    output_node = True

    class Inputs(NodeInputs):
        prediction: str = Input("eps")
        sampler: str = Input("euler")
        cfg: float = Input(1.0)
        channels: int = Input(3)

    outputs = (Output("latent", "LATENT"), Output("shapes", "STRING"))

    def run(self, prediction: str, sampler: str, cfg: float, channels: int) -> dict:
        from nodes.sampling.schedules import alphas_cumprod_from_betas, scaled_linear_betas   # the test's oracle

        net = KnowsTheData(prediction, alphas_cumprod_from_betas(scaled_linear_betas()))
        model = api.diffusion_model(self.context, net, prediction=prediction, latent_channels=channels,
                                    name="points", shift=3.0 if prediction == "flow" else 1.0)
        positive = {"context": torch.ones(1, 2, 4)}
        negative = {"context": torch.zeros(1, 2, 4)}
        latent = {"samples": torch.zeros(1, 3, 64)}
        out = api.sample(self.context, model, positive, negative, latent, seed=5, steps=12, cfg=cfg,
                         sampler=sampler, scheduler="normal" if prediction == "flow" else "karras")
        return {"latent": out, "shapes": repr(sorted(set(net.seen)))}


class Plugin:
    """Registers SamplePoints."""

    @hookimpl
    def register_nodes(self) -> list:
        return [SamplePoints]


@pytest.fixture(scope="module")
def session() -> Session:
    return Session(plugins=[("points", Plugin())])


def _run(session: Session, **inputs: Any) -> dict:
    graph = {"format_version": 1, "nodes": {"p": {"type": "SamplePoints", "inputs": inputs}}}
    return session.run(graph).outputs["p"]


@pytest.mark.parametrize("prediction", ["eps", "v", "x0", "flow"])
@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m"])
def test_a_plugin_network_on_point_sets_reaches_its_data(session, prediction, sampler):
    """Every prediction type, sampled by the core samplers on a (B, 3, N) layout, ends at the data exactly."""
    out = _run(session, prediction=prediction, sampler=sampler, cfg=3.0)
    samples = out["latent"]["samples"]
    assert samples.shape == (1, 3, 64)
    assert torch.allclose(samples, TARGET.expand(1, 3, 64), atol=2e-3), (samples - TARGET).abs().max()
    assert not samples.requires_grad                      # sampled without an autograd graph through the net
    assert "(2, 3, 64)" in out["shapes"] and "'context'" in out["shapes"]   # CFG: both branches, conditioning passed


def test_channel_mismatch_names_the_latent(session):
    """A latent whose axis 1 is not the model's latent_channels is refused before sampling."""
    with pytest.raises(NodeExecutionError, match="3 channels but model 'points' denoises 6"):
        _run(session, channels=6)


def test_diffusion_model_checks_its_arguments(tmp_path):
    """Bad arguments name the argument: prediction, net, latent_channels and the schedule."""
    from tests.engine.test_api import make_context

    session = Session()
    context = make_context(tmp_path, session.registry)
    with pytest.raises(api.ApiArgumentError, match="'prediction'.*eps, v, x0, flow"):
        api.diffusion_model(context, torch.nn.Identity(), prediction="noise", latent_channels=3)
    with pytest.raises(api.ApiArgumentError, match="'net'"):
        api.diffusion_model(context, 3, latent_channels=3)
    with pytest.raises(api.ApiArgumentError, match="'latent_channels'"):
        api.diffusion_model(context, torch.nn.Identity(), latent_channels=0)
    with pytest.raises(Exception, match="schedule"):
        api.diffusion_model(context, torch.nn.Identity(), schedule="quadratic", latent_channels=3)
    with pytest.raises(Exception, match="alphas_cumprod"):
        api.diffusion_model(context, torch.nn.Identity(), schedule=[0.5, 0.9], latent_channels=3)


def test_non_image_latents_have_no_preview_unless_the_plugin_draws_one(tmp_path):
    """Previews: None for point sets without a preview function; the plugin's function is used when given."""
    from tests.engine.test_api import make_context

    session = Session()
    context = make_context(tmp_path, session.registry)
    plain = api.diffusion_model(context, torch.nn.Identity(), latent_channels=3)
    assert plain.preview_image(torch.zeros(1, 3, 64)) is None
    drawn = api.diffusion_model(context, torch.nn.Identity(), latent_channels=3,
                                preview=lambda x: torch.ones(1, 3, 8, 8))
    assert drawn.preview_image(torch.zeros(1, 3, 64)).shape == (1, 8, 8, 3)


def test_the_kits_are_read_only_namespaces_without_a_context():
    """tiny_world renders and detects a scene; training exposes the loop pieces; both refuse writes."""
    import random

    world = api.tiny_world()
    scene = world.sample_scene(random.Random(1))
    image = world.render(scene, 64)
    assert image.shape == (64, 64, 3)
    assert world.parse_caption(world.caption(scene, 0)) == scene
    training = api.training()
    assert {"TrainConfig", "EMA", "TrainingRun", "start_or_resume", "write_new_file"} <= set(training.names)
    x_t, target = training.diffusion_targets(torch.ones(2, 3, 5), torch.zeros(2, 3, 5), torch.full((2,), 0.25), "eps")
    assert torch.allclose(x_t, torch.full((2, 3, 5), 0.5)) and target.shape == (2, 3, 5)
    with pytest.raises(AttributeError, match="read-only"):
        world.render = None
    with pytest.raises(AttributeError, match="has no 'nothing'"):
        _ = training.nothing


def test_patches_on_a_plugin_model_apply_to_a_unet_and_are_refused_elsewhere(tmp_path):
    """api.patch_model on a diffusion_model around our UNet really patches it; around another net it is refused."""
    from dataclasses import replace

    from nodes.models.unet import TINY, UNetModel
    from tests.engine.test_api import make_context

    session = Session()
    context = make_context(tmp_path, session.registry)
    torch.manual_seed(0)
    unet = UNetModel(replace(TINY, context_dim=16)).eval()
    model = api.diffusion_model(context, unet, latent_channels=TINY.in_channels, name="wrapped unet")
    flip = api.make_patch(context, "layer", name="flip", target="input_blocks.1",
                          wrapper=lambda forward, h, call: forward(h).flip(-1))
    patched = api.patch_model(context, model, flip)
    x, t, ctx = torch.randn(1, TINY.in_channels, 8, 8), torch.tensor([500.0]), torch.randn(1, 3, 16)
    with torch.no_grad():
        model.apply_patches()
        base = unet(x, t, context=ctx)
        patched.apply_patches()
        flipped = unet(x, t, context=ctx)
        model.apply_patches()
        again = unet(x, t, context=ctx)
    assert not torch.allclose(base, flipped)                 # the patch ran (it did not, silently, before)
    assert torch.equal(base, again)                          # and the unpatched model takes it off again
    plain = api.diffusion_model(context, torch.nn.Identity(), latent_channels=3, name="plain")
    with pytest.raises(Exception, match="'plain'.*no patch points"):
        api.patch_model(context, plain, flip)
