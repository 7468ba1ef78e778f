"""Sampling nodes in graphs, on an analytic model: KSampler, Sample, SamplerStep, inversion, errors."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from nodegraph import GraphValidationError, Input, Node, NodeExecutionError, NodeInputs, Output, Session, hookimpl
from nodes.sampling import nodes as sampling_nodes
from nodes.sampling.denoisers import DiscreteTimeMap
from nodes.sampling.diffusion_model import DiffusionModel
from nodes.sampling.samplers import SAMPLERS
from nodes.sampling.schedules import SCHEDULES, scaled_linear_betas

DATA_STD = 0.5


class GaussianEpsNet(torch.nn.Module):
    """The exact eps-predictor for data ~ N(mu, DATA_STD²), mu given by the conditioning."""

    def __init__(self, time_map: DiscreteTimeMap):
        super().__init__()
        self.time_map = time_map
        self.dummy = torch.nn.Parameter(torch.zeros(()))   # so the model has a device

    def forward(self, x_in, t, context):
        sigma = self.time_map.t_to_sigma(t).view(-1, 1, 1, 1)
        x = x_in * torch.sqrt(sigma**2 + 1)                 # undo c_in
        mu = context.view(-1, 1, 1, 1)
        denoised = (DATA_STD**2 * x + sigma**2 * mu) / (DATA_STD**2 + sigma**2)
        return (x - denoised) / sigma


class ToyModel(Node):
    """An analytic Gaussian model (tests only)."""

    class Inputs(NodeInputs):
        pass

    outputs = (Output("model", "MODEL"),)

    def run(self):
        time_map = DiscreteTimeMap.from_betas(scaled_linear_betas())
        return {"model": DiffusionModel(GaussianEpsNet(time_map), "eps", time_map, latent_channels=4, name="toy")}


class ToyCondition(Node):
    """Conditioning that sets the data mean (tests only)."""

    class Inputs(NodeInputs):
        mean: float = Input(0.0)
        batch: int = Input(1)

    outputs = (Output("cond", "CONDITIONING"),)

    def run(self, mean, batch):
        return {"cond": {"context": torch.full((batch, 1, 1), float(mean))}}


class HalfMask(Node):
    """A 32×32 pixel mask covering the right half (tests only)."""

    class Inputs(NodeInputs):
        pass

    outputs = (Output("mask", "MASK"),)

    def run(self):
        mask = torch.zeros(1, 32, 32)
        mask[..., 16:] = 1
        return {"mask": mask}


class CountingTerm:
    """A stateful guidance term (no correction) that counts its calls; MADE lists every instance."""

    nodegraph_guidance_term = True
    sigma_range = (0.0, math.inf)
    main_call_patches = ()
    MADE: list = []

    def __init__(self):
        self.calls = 0
        CountingTerm.MADE.append(self)

    def __call__(self, state):
        self.calls += 1
        return None

    def check_model(self, net):
        pass

    def active_at(self, sigma):
        return True


class CountingGuidance(Node):
    """GUIDANCE with one CountingTerm factory (tests only)."""

    class Inputs(NodeInputs):
        pass

    outputs = (Output("guidance", "GUIDANCE"),)

    def run(self):
        return {"guidance": (CountingTerm,)}


class NoiseMaskAs(Node):
    """Sets the LATENT's noise_mask from a MASK in a given layout, as a plugin node would (tests only)."""

    class Inputs(NodeInputs):
        latent: Any = Input(port="LATENT")
        mask: Any = Input(port="MASK")
        layout: str = Input("pixels_b1hw")

    outputs = (Output("latent", "LATENT"),)

    def run(self, latent, mask, layout):
        if layout == "pixels_b1hw":          # ComfyUI's SetLatentNoiseMask: mask.reshape((-1, 1, H, W))
            mask = mask.reshape((-1, 1, *mask.shape[-2:]))
        elif layout == "latent_b1hw":        # (B, 1, h, w) at the latent's size
            mask = torch.nn.functional.interpolate(mask[:, None], size=latent["samples"].shape[-2:], mode="area")
        elif layout == "broken":
            mask = mask[:, None, None]
        return {"latent": {**latent, "noise_mask": mask}}


class QuarterLatent(Node):
    """An 8×8 latent laid out for a VAE of 4 pixels per cell, as EmptyLatent records it (tests only)."""

    class Inputs(NodeInputs):
        pass

    outputs = (Output("latent", "LATENT"),)

    def run(self):
        return {"latent": {"samples": torch.zeros(1, 4, 8, 8), "pixels_per_cell": 4}}


@hookimpl
def register_nodes():
    return [ToyModel, ToyCondition, HalfMask, CountingGuidance, NoiseMaskAs, QuarterLatent]


def link(node, output):
    return {"node": node, "output": output}


@pytest.fixture
def session():
    import sys

    return Session(plugins=[("toy", sys.modules[__name__])])


def ksampler_graph(**overrides) -> dict:
    inputs = {"model": link("model", "model"), "positive": link("pos", "cond"), "negative": link("neg", "cond"),
              "latent": link("empty", "latent"), "seed": 7, "steps": 12, "cfg": 1.0, "sampler": "euler",
              "scheduler": "karras", "denoise": 1.0, **overrides}
    return {"format_version": 1, "nodes": {
        "model": {"type": "ToyModel", "inputs": {}},
        "pos": {"type": "ToyCondition", "inputs": {"mean": 2.0}},
        "neg": {"type": "ToyCondition", "inputs": {"mean": 0.0}},
        "empty": {"type": "EmptyLatent", "inputs": {"width": 64, "height": 64, "batch_size": 4}},
        "k": {"type": "KSampler", "inputs": inputs},
        "show": {"type": "ShowValue", "inputs": {"value": link("k", "latent")}}}}


def test_library_names_match_the_hook_lists():
    """The names the pack registers equal the library's registries."""
    assert set(sampling_nodes.LIBRARY_SAMPLERS) == set(SAMPLERS)
    assert set(sampling_nodes.LIBRARY_SCHEDULES) == set(SCHEDULES)


def expected_mean(mu: float) -> float:
    """Mean of the exact PF-ODE solution started from N(0, sigma_max²) instead of N(mu, sigma_max² + std²)."""
    sigma_max = DiscreteTimeMap.from_betas(scaled_linear_betas()).sigma_max
    return mu * (1 - DATA_STD / math.sqrt(DATA_STD**2 + sigma_max**2))


def test_ksampler_reaches_the_data_distribution(session):
    """KSampler on the analytic model gives samples with the conditioned mean and the data spread."""
    samples = session.run(ksampler_graph(steps=30)).outputs["show"]["value"]["samples"]
    assert samples.shape == (4, 4, 8, 8)
    assert abs(samples.mean().item() - expected_mean(2.0)) < 0.05   # 1024 values: standard error 0.016
    assert abs(samples.std().item() - DATA_STD) < 0.05


def test_cfg_scale_moves_the_mean(session):
    """cfg 2 between means 0 and 2 extrapolates to mean 4 (guidance in denoised space)."""
    samples = session.run(ksampler_graph(cfg=2.0, steps=30)).outputs["show"]["value"]["samples"]
    assert abs(samples.mean().item() - expected_mean(4.0)) < 0.1


def test_same_seed_is_bitwise_reproducible(session):
    """Two runs with the same seed (cache cleared) give bitwise-identical latents; another seed differs."""
    graph = ksampler_graph(sampler="euler_ancestral")
    first = session.run(graph).outputs["show"]["value"]["samples"]
    session.clear_cache()
    second = session.run(graph).outputs["show"]["value"]["samples"]
    assert torch.equal(first, second)
    other = session.run(ksampler_graph(sampler="euler_ancestral", seed=8)).outputs["show"]["value"]["samples"]
    assert not torch.equal(first, other)


def modular_graph(sampler="dpmpp_2m", steps=6) -> dict:
    return {"format_version": 1, "nodes": {
        "model": {"type": "ToyModel", "inputs": {}},
        "pos": {"type": "ToyCondition", "inputs": {"mean": 1.0}},
        "neg": {"type": "ToyCondition", "inputs": {"mean": 0.0}},
        "empty": {"type": "EmptyLatent", "inputs": {"width": 32, "height": 32, "batch_size": 2}},
        "sigmas": {"type": "Schedule", "inputs": {"model": link("model", "model"), "scheduler": "karras",
                                                  "steps": steps}},
        "sampler": {"type": "SelectSampler", "inputs": {"sampler": sampler}},
        "guider": {"type": "CFGGuider", "inputs": {"model": link("model", "model"), "positive": link("pos", "cond"),
                                                   "negative": link("neg", "cond"), "cfg": 1.5}},
        "noise": {"type": "RandomNoise", "inputs": {"seed": 3}},
        "sample": {"type": "Sample", "inputs": {"guider": link("guider", "guider"), "sampler": link("sampler", "sampler"),
                                                "sigmas": link("sigmas", "sigmas"), "noise": link("noise", "noise"),
                                                "latent": link("empty", "latent")}},
        "show": {"type": "ShowValue", "inputs": {"value": link("sample", "latent")}}}}


@pytest.mark.parametrize("sampler", ["dpmpp_2m", "euler_ancestral", "lms"])
def test_chained_sampler_steps_equal_sample(session, sampler):
    """SamplerStep nodes for steps 0..n-1, state chained, reproduce Sample bit for bit."""
    steps = 5
    graph = modular_graph(sampler, steps)
    reference = session.run(graph).outputs["show"]["value"]["samples"]
    nodes = graph["nodes"]
    previous = None
    for i in range(steps):
        inputs = {"guider": link("guider", "guider"), "sampler": link("sampler", "sampler"),
                  "sigmas": link("sigmas", "sigmas"), "noise": link("noise", "noise"), "step": i,
                  "latent": link(previous, "latent") if previous else link("empty", "latent")}
        if previous:
            inputs["state"] = link(previous, "state")
        nodes[f"step{i}"] = {"type": "SamplerStep", "inputs": inputs}
        previous = f"step{i}"
    nodes["show"]["inputs"]["value"] = link(previous, "latent")
    stepped = session.run(graph).outputs["show"]["value"]["samples"]
    assert torch.equal(reference, stepped)


def test_step_and_inversion_nodes_run_guidance_on_fresh_terms(session):
    """SamplerStep and DDIMInvert take the guider's per-run copy: each node gets its own terms, so the
    cached GUIDER value holds no term state between nodes (a term made for step 0 never sees step 1)."""
    graph = modular_graph("euler", 3)
    nodes = graph["nodes"]
    nodes["guidance"] = {"type": "CountingGuidance", "inputs": {}}
    nodes["guider"]["inputs"]["guidance"] = link("guidance", "guidance")
    previous = None
    for i in range(3):
        inputs = {"guider": link("guider", "guider"), "sampler": link("sampler", "sampler"),
                  "sigmas": link("sigmas", "sigmas"), "noise": link("noise", "noise"), "step": i,
                  "latent": link(previous, "latent") if previous else link("empty", "latent")}
        if previous:
            inputs["state"] = link(previous, "state")
        nodes[f"step{i}"] = {"type": "SamplerStep", "inputs": inputs}
        previous = f"step{i}"
    nodes["invert"] = {"type": "DDIMInvert", "inputs": {"guider": link("guider", "guider"),
                                                        "sigmas": link("sigmas", "sigmas"),
                                                        "latent": link(previous, "latent")}}
    nodes["show"]["inputs"]["value"] = link("invert", "latent")
    del nodes["sample"]
    CountingTerm.MADE.clear()
    session.run(graph)
    called = [term.calls for term in CountingTerm.MADE if term.calls]     # (CFGGuider checks one unused term)
    assert called == [1, 1, 1, 3]                                         # three step nodes, then 3 inversion steps


def test_sample_reports_progress_with_previews(session):
    """Sample emits one progress event per step, each with a preview image."""
    events = []
    session.run(modular_graph(steps=4), on_event=events.append)
    progress = [e for e in events if e.type == "node_progress" and e.node_id == "sample"]
    assert [e.value for e in progress] == [1, 2, 3, 4]
    assert all(e.preview is not None and e.preview.shape == (1, 4, 4, 3) for e in progress)


def test_ddim_inversion_round_trip(session):
    """A sample, inverted with DDIMInvert and sampled back with DDIM and DisableNoise, comes back."""
    graph = modular_graph("ddim", steps=25)
    nodes = graph["nodes"]
    nodes["guider"]["inputs"]["cfg"] = 1.0
    nodes["invert"] = {"type": "DDIMInvert", "inputs": {"guider": link("guider", "guider"),
                                                        "sigmas": link("sigmas", "sigmas"),
                                                        "latent": link("sample", "latent"), "refinement": 3}}
    nodes["off"] = {"type": "DisableNoise", "inputs": {}}
    nodes["back"] = {"type": "Sample", "inputs": {**nodes["sample"]["inputs"], "latent": link("invert", "latent"),
                                                  "noise": link("off", "noise")}}
    nodes["restored"] = {"type": "ShowValue", "inputs": {"value": link("back", "latent")}}
    result = session.run(graph)
    original = result.outputs["show"]["value"]["samples"]
    restored = result.outputs["restored"]["value"]["samples"]
    assert (restored - original).norm() / original.norm() < 1e-3


def test_forward_diffuse_matches_q_sample_statistics(session):
    """ForwardDiffuse at t=999 gives (nearly) unit-variance noise; at t=0 (nearly) the input."""
    graph = {"format_version": 1, "nodes": {
        "model": {"type": "ToyModel", "inputs": {}},
        "empty": {"type": "EmptyLatent", "inputs": {"width": 256, "height": 256}},
        "late": {"type": "ForwardDiffuse", "inputs": {"model": link("model", "model"), "latent": link("empty", "latent"),
                                                      "timestep": 999, "seed": 1}},
        "early": {"type": "ForwardDiffuse", "inputs": {"model": link("model", "model"),
                                                       "latent": link("empty", "latent"), "timestep": 0, "seed": 1}},
        "a": {"type": "ShowValue", "inputs": {"value": link("late", "latent")}},
        "b": {"type": "ShowValue", "inputs": {"value": link("early", "latent")}}}}
    out = session.run(graph).outputs
    assert abs(out["a"]["value"]["samples"].std().item() - 1.0) < 0.02
    assert out["b"]["value"]["samples"].abs().max().item() < 0.2


def test_split_sigmas_two_stage_equals_one_stage(session):
    """Sampling the high half then the low half (DisableNoise) equals one full deterministic run."""
    graph = modular_graph("euler", steps=8)
    nodes = graph["nodes"]
    reference = session.run(graph).outputs["show"]["value"]["samples"]
    nodes["split"] = {"type": "SplitSigmas", "inputs": {"sigmas": link("sigmas", "sigmas"), "step": 3}}
    nodes["sample"]["inputs"]["sigmas"] = link("split", "high")
    nodes["off"] = {"type": "DisableNoise", "inputs": {}}
    nodes["second"] = {"type": "Sample", "inputs": {**nodes["sample"]["inputs"], "sigmas": link("split", "low"),
                                                    "noise": link("off", "noise"), "latent": link("sample", "latent")}}
    nodes["show"]["inputs"]["value"] = link("second", "latent")
    two_stage = session.run(graph).outputs["show"]["value"]["samples"]
    assert torch.allclose(reference, two_stage, atol=1e-6)


def test_validation_names_bad_sampler_scheduler_steps_denoise(session):
    """Unknown names (with the valid list), steps 0, denoise -0.1 and 1.5 are validation errors."""
    graph = ksampler_graph(sampler="eulr", scheduler="karass", steps=0, denoise=-0.1)
    with pytest.raises(GraphValidationError) as info:
        session.run(graph)
    found = {(e.code, e.input) for e in info.value.errors}
    assert found == {("not_in_choices", "sampler"), ("not_in_choices", "scheduler"), ("out_of_range", "steps"),
                     ("out_of_range", "denoise")}
    messages = " ".join(e.message for e in info.value.errors)
    assert "Did you mean 'euler'" in messages and "'dpmpp_2m'" in messages
    graph = ksampler_graph()
    graph["nodes"]["empty"]["inputs"]["width"] = 60
    with pytest.raises(GraphValidationError, match="multiple of 8"):
        session.run(graph)


def test_runtime_input_errors_name_the_input(session):
    """A conditioning batch that matches neither 1 nor the latent, and a wrong channel count, name their input."""
    graph = ksampler_graph()
    graph["nodes"]["pos"]["inputs"]["batch"] = 3
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph)
    assert info.value.exception.input == "positive" and "batch" in str(info.value.exception)
    graph = ksampler_graph()
    graph["nodes"]["empty"]["inputs"]["channels"] = 3
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph)
    assert info.value.exception.input == "latent" and "4-channel" in str(info.value.exception)


def test_sampler_step_errors(session):
    """A step past the schedule, or step > 0 without state, is refused naming the input."""
    graph = modular_graph(steps=3)
    nodes = graph["nodes"]
    nodes["one"] = {"type": "SamplerStep", "inputs": {"guider": link("guider", "guider"),
                                                     "sampler": link("sampler", "sampler"),
                                                     "sigmas": link("sigmas", "sigmas"), "noise": link("noise", "noise"),
                                                     "latent": link("empty", "latent"), "step": 1}}
    nodes["show"]["inputs"]["value"] = link("one", "latent")
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph)
    assert info.value.exception.input == "state"
    nodes["one"]["inputs"]["step"] = 3
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph)
    assert info.value.exception.input == "step"


def test_eta_only_for_samplers_that_take_it(session):
    """SelectSampler refuses eta for a sampler without that option."""
    graph = modular_graph("euler")
    graph["nodes"]["sampler"]["inputs"]["eta"] = 0.5
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph)
    assert info.value.exception.input == "eta"
    graph["nodes"]["sampler"]["inputs"]["sampler"] = "euler_ancestral"
    assert session.run(graph).outputs["show"]["value"]["samples"].shape == (2, 4, 4, 4)


def test_plugin_samplers_appear_in_choices():
    """A sampler registered through register_samplers is listed and runnable."""
    import sys

    from nodes.sampling.samplers import euler_step, sampler_from_step

    class Plugin:
        @hookimpl
        def register_samplers(self):
            return {"my_euler": sampler_from_step(euler_step)}

    session = Session(plugins=[("toy", sys.modules[__name__]), ("mine", Plugin())])
    schema = next(s for s in session.node_schemas() if s["type"] == "SelectSampler")
    assert "my_euler" in schema["inputs"]["sampler"]["choices"]
    graph = modular_graph("my_euler")
    reference = modular_graph("euler")
    assert torch.equal(session.run(graph).outputs["show"]["value"]["samples"],
                       session.run(reference).outputs["show"]["value"]["samples"])


def test_noise_mask_keeps_the_unmasked_latent(session):
    """With SetLatentNoiseMask only the masked half changes; the other half is the input latent exactly."""
    graph = modular_graph("dpmpp_2m", steps=6)
    nodes = graph["nodes"]
    nodes["start"] = {"type": "AddNoise", "inputs": {"noise": link("noise", "noise"), "sigmas": link("one", "sigmas"),
                                                     "latent": link("empty", "latent")}}
    nodes["one"] = {"type": "Schedule", "inputs": {"model": link("model", "model"), "steps": 1, "denoise": 0.1}}
    nodes["maskimg"] = {"type": "HalfMask", "inputs": {}}
    nodes["masked"] = {"type": "SetLatentNoiseMask", "inputs": {"latent": link("start", "latent"),
                                                                "mask": link("maskimg", "mask")}}
    nodes["sample"]["inputs"]["latent"] = link("masked", "latent")
    nodes["orig"] = {"type": "ShowValue", "inputs": {"value": link("start", "latent")}}
    out = session.run(graph).outputs
    before, after = out["orig"]["value"]["samples"], out["show"]["value"]["samples"]
    assert torch.equal(after[..., :2], before[..., :2])            # left half (mask 0) untouched
    assert (after[..., 2:] - before[..., 2:]).abs().mean() > 0.1   # right half regenerated


@pytest.mark.parametrize("layout", ["pixels_b1hw", "latent_b1hw"])
def test_a_noise_mask_in_either_documented_layout_samples_as_set_latent_noise_mask(session, layout):
    """docs/plugins.md allows a noise_mask of (B, H, W) or (B, 1, h, w); a (B, 1, H, W) one (ComfyUI's layout)
    crashed KSampler inside torch's interpolate and a (B, 1, h, w) one was refused as (1, 1, 1, h, w) (a ComfyUI
    porter's finding). Both now sample as SetLatentNoiseMask does; another layout is named as the latent's."""
    from nodegraph import NodeExecutionError

    graph = modular_graph("euler", steps=4)
    nodes = graph["nodes"]
    nodes["maskimg"] = {"type": "HalfMask", "inputs": {}}
    nodes["masked"] = {"type": "SetLatentNoiseMask", "inputs": {"latent": link("empty", "latent"),
                                                                "mask": link("maskimg", "mask")}}
    nodes["sample"]["inputs"]["latent"] = link("masked", "latent")
    expected = session.run(graph).outputs["show"]["value"]["samples"]
    nodes["masked"] = {"type": "NoiseMaskAs", "inputs": {"latent": link("empty", "latent"),
                                                         "mask": link("maskimg", "mask"), "layout": layout}}
    assert torch.allclose(session.run(graph).outputs["show"]["value"]["samples"], expected, atol=1e-6)
    nodes["masked"]["inputs"]["layout"] = "broken"
    with pytest.raises(NodeExecutionError) as failure:
        session.run(graph)
    assert failure.value.exception.input == "latent"
    assert "'noise_mask' must be a mask (B, H, W) or (B, 1, H, W)" in str(failure.value.exception)


def test_latent_upscale_sizes(session):
    """LatentUpscale by factor and to a pixel size."""
    graph = modular_graph()
    graph["nodes"]["up"] = {"type": "LatentUpscale", "inputs": {"latent": link("empty", "latent"), "factor": 1.5}}
    graph["nodes"]["to"] = {"type": "LatentUpscale", "inputs": {"latent": link("empty", "latent"), "width": 64,
                                                               "height": 48}}
    graph["nodes"]["a"] = {"type": "ShowValue", "inputs": {"value": link("up", "latent")}}
    graph["nodes"]["b"] = {"type": "ShowValue", "inputs": {"value": link("to", "latent")}}
    out = session.run(graph, outputs=["a", "b"]).outputs
    assert out["a"]["value"]["samples"].shape[-2:] == (6, 6)
    assert out["b"]["value"]["samples"].shape[-2:] == (6, 8)
    # a latent of 4 pixels a cell (the tiny VAE's): 64×48 px is 16×12 cells, not 8×6 (a 1024² request made 512²)
    graph["nodes"]["quarter"] = {"type": "QuarterLatent", "inputs": {}}
    graph["nodes"]["to"]["inputs"]["latent"] = link("quarter", "latent")
    assert session.run(graph, outputs=["b"]).outputs["b"]["value"]["samples"].shape[-2:] == (12, 16)
    graph["nodes"]["to"]["inputs"]["downscale"] = 8              # said outright, as before
    assert session.run(graph, outputs=["b"]).outputs["b"]["value"]["samples"].shape[-2:] == (6, 8)
    # one side 0 keeps the aspect ratio, as ComfyUI's LatentUpscale does (it scaled by `factor` before)
    graph["nodes"]["to"]["inputs"]["downscale"] = 0                               # 12×16 cells of 4 px again
    graph["nodes"]["aspect"] = {"type": "LatentUpscale", "inputs": {"latent": link("to", "latent"), "height": 96}}
    graph["nodes"]["c"] = {"type": "ShowValue", "inputs": {"value": link("aspect", "latent")}}
    assert session.run(graph, outputs=["c"]).outputs["c"]["value"]["samples"].shape[-2:] == (24, 32)
    graph["nodes"]["aspect"]["inputs"].update(width=32, height=0)                # 32 px = 8 cells wide → 6 tall
    assert session.run(graph, outputs=["c"]).outputs["c"]["value"]["samples"].shape[-2:] == (6, 8)


def test_latent_upscale_past_the_latent_limit_is_refused_before_it_allocates(session):
    """An 8×8 latent upscaled to 16384² with downscale 1 ran to a 4 GiB latent (16× MAX_LATENT_ELEMENTS), and with
    batch 4096 asked for 16 TiB (a hostile pass): the size is checked first, naming the input to change."""
    from nodegraph import NodeExecutionError

    graph = modular_graph()
    graph["nodes"]["up"] = {"type": "LatentUpscale", "inputs": {"latent": link("empty", "latent"), "width": 16384,
                                                               "height": 16384, "downscale": 1}}
    graph["nodes"]["a"] = {"type": "ShowValue", "inputs": {"value": link("up", "latent")}}
    with pytest.raises(NodeExecutionError) as failure:
        session.run(graph, outputs=["a"])
    assert failure.value.exception.input == "width" and "GiB" in str(failure.value.exception)
    graph["nodes"]["up"]["inputs"] = {"latent": link("empty", "latent"), "factor": 8.0}
    assert session.run(graph, outputs=["a"]).outputs["a"]["value"]["samples"].shape[-1] == 32


def test_denoising_trajectory_matches_sample_and_keeps_every_kth_prediction(session):
    """DenoisingTrajectory's final latent equals Sample's; it keeps x̂₀ at steps 0, k, 2k, … and the last."""
    graph = modular_graph("euler", steps=7)
    nodes = graph["nodes"]
    reference = session.run(graph).outputs["show"]["value"]["samples"]
    nodes["trajectory"] = {"type": "DenoisingTrajectory", "inputs": {**nodes["sample"]["inputs"], "every": 3}}
    nodes["show"]["inputs"]["value"] = link("trajectory", "latent")
    nodes["x0"] = {"type": "ShowValue", "inputs": {"value": link("trajectory", "predictions")}}
    nodes["xt"] = {"type": "ShowValue", "inputs": {"value": link("trajectory", "noisy")}}
    outputs = session.run(graph).outputs
    assert torch.equal(outputs["show"]["value"]["samples"], reference)
    predictions, noisy = outputs["x0"]["value"]["samples"], outputs["xt"]["value"]["samples"]
    assert predictions.shape == noisy.shape == (3 * 2, 4, 4, 4)           # steps 0, 3, 6 (last) × batch 2
    # the last prediction of Euler is the final sample (sigma → 0 step lands on x̂₀)
    assert torch.allclose(predictions[-2:], reference, atol=1e-6)
    # x̂₀ approaches the conditioned mean as sampling goes on; the noisy latents are in VP scale (std ≤ ~1)
    assert noisy[:2].std() < 1.5


def test_forward_diffuse_image_shows_the_schedules(session):
    """ForwardDiffuseImage: t=0 is the image, later t are noisier, and cosine keeps more signal than linear."""
    image = torch.rand(1, 16, 16, 3)

    class Source(Node):
        class Inputs(NodeInputs):
            pass

        outputs = (Output("image", "IMAGE"),)

        def run(self):
            return {"image": image}

    class Plugin:
        @staticmethod
        @hookimpl
        def register_nodes():
            return [Source]

    session = Session(plugins=[("source", Plugin)])
    graph = {"format_version": 1, "nodes": {"src": {"type": "Source", "inputs": {}}}}
    for schedule in ("linear", "cosine"):
        graph["nodes"][schedule] = {"type": "ForwardDiffuseImage", "inputs": {
            "images": link("src", "image"), "beta_schedule": schedule, "timesteps": "0, 300, 999", "seed": 1}}
        graph["nodes"]["show_" + schedule] = {"type": "ShowValue", "inputs": {"value": link(schedule, "images")}}
    outputs = session.run(graph).outputs
    linear, cosine = outputs["show_linear"]["value"], outputs["show_cosine"]["value"]
    assert linear.shape == (3, 16, 16, 3)
    assert torch.allclose(linear[0], image, atol=0.02) and torch.allclose(cosine[0], image, atol=0.02)
    error = lambda x: (x - image[0]).abs().mean().item()        # noqa: E731
    assert error(linear[1]) < error(linear[2])
    assert error(cosine[1]) < error(linear[1])                  # ᾱ_300: cosine 0.63, linear 0.28


@pytest.mark.parametrize("timesteps", ["", "0,1000", "a,b"])
def test_forward_diffuse_image_rejects_bad_timesteps(session, timesteps):
    """Timesteps outside 0 … 999 or not integers are a validation-time input error naming the input."""
    graph = {"format_version": 1, "nodes": {
        "img": {"type": "MaskToImage", "inputs": {"mask": link("mask", "mask")}},
        "mask": {"type": "HalfMask", "inputs": {}},
        "fwd": {"type": "ForwardDiffuseImage", "inputs": {"images": link("img", "image"), "timesteps": timesteps}},
        "show": {"type": "ShowValue", "inputs": {"value": link("fwd", "images")}}}}
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph)
    assert info.value.node_id == "fwd" and "timesteps" in str(info.value)


class ConstantMask(Node):
    """A 32×32 mask filled with one value (tests only)."""

    class Inputs(NodeInputs):
        value: float = Input(0.0)
        width: int = Input(32)

    outputs = (Output("mask", "MASK"),)

    def run(self, value, width):
        return {"mask": torch.full((1, 32, width), float(value))}


def masked_session_and_graph(sampler: str, steps: int) -> tuple[Session, dict]:
    """A session with the toy model and ConstantMask, and the toy model's sampling graph."""
    import sys

    class Plugin:
        @staticmethod
        @hookimpl
        def register_nodes():
            return [ConstantMask]

    return Session(plugins=[("toy", sys.modules[__name__]), ("mask", Plugin)]), modular_graph(sampler, steps=steps)


def add_noise_mask(graph: dict, **mask_inputs) -> None:
    """Sample `graph` through SetLatentNoiseMask with a ConstantMask of `mask_inputs`."""
    nodes = graph["nodes"]
    nodes["maskimg"] = {"type": "ConstantMask", "inputs": mask_inputs}
    nodes["masked"] = {"type": "SetLatentNoiseMask", "inputs": {"latent": link("empty", "latent"),
                                                                "mask": link("maskimg", "mask")}}
    nodes["sample"]["inputs"]["latent"] = link("masked", "latent")


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_empty_mask_keeps_everything_full_mask_regenerates_everything(value):
    """An all-zero noise mask is refused with a clear error (nothing would change); an all-one mask samples
    exactly as if unmasked."""
    session, graph = masked_session_and_graph("dpmpp_2m", steps=5)
    plain = session.run(graph).outputs["show"]["value"]["samples"]
    add_noise_mask(graph, value=value)
    if value == 0.0:
        with pytest.raises(NodeExecutionError, match="the mask is empty"):
            session.run(graph)
        return
    assert torch.allclose(session.run(graph).outputs["show"]["value"]["samples"], plain, atol=1e-6)


def test_an_empty_latent_too_big_for_the_machine_names_its_size(monkeypatch):
    """When torch cannot allocate the latent, EmptyLatent says how many GiB it asked for and which input to
    lower, instead of torch's allocator message."""
    from nodegraph import NodeInputError

    def refuse(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1099511627776 bytes")

    monkeypatch.setattr(torch, "zeros", refuse)
    with pytest.raises(NodeInputError) as info:
        sampling_nodes.api_empty_latent(None, 4096, 4096, batch_size=1, channels=4, vae=None)
    assert info.value.input == "width" and "0.0 GiB" in str(info.value)      # 4 × 512² float32: 4 MiB


def test_an_empty_latent_over_the_size_limit_is_refused_before_allocating(tmp_path):
    """Each bound alone let 16384² × batch 4096 through to torch (a server kept a 512 MiB latent in its cache):
    over MAX_LATENT_ELEMENTS, validation refuses it (no VAE linked: factor 8) and so does the run (any VAE)."""
    from nodegraph import NodeInputError

    session = Session(output_dir=tmp_path)
    graph = {"format_version": 1, "nodes": {
        "empty": {"type": "EmptyLatent", "inputs": {"width": 16384, "height": 16384, "batch_size": 64}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "empty", "output": "latent"}}}}}
    (error,) = session.validate(graph)
    assert (error.node_id, error.input) == ("empty", "batch_size") and "4.0 GiB" in error.message
    assert "lower batch_size" in error.message
    graph["nodes"]["empty"]["inputs"]["batch_size"] = 4
    assert session.validate(graph) == []                  # 4 × 4 × 2048² float32 = 256 MiB: the limit itself
    with pytest.raises(NodeInputError, match="over the 256 MiB"):
        sampling_nodes.api_empty_latent(None, 16384, 16384, batch_size=5, channels=4, vae=None)


@pytest.mark.parametrize("width, warned", [(32, False), (64, True)])
def test_a_mask_of_another_aspect_than_the_latent_is_warned(width, warned):
    """SetLatentNoiseMask stretches a mask to the latent; one of another aspect (painted for another image) was
    used without a word, so the area kept was not where it was painted."""
    session, graph = masked_session_and_graph("euler", steps=2)
    add_noise_mask(graph, value=1.0, width=width)
    warnings = [w["message"] for w in session.run(graph).warnings if w["node_id"] == "masked"]
    assert bool(warnings) == warned
    if warned:
        assert "the mask is 64×32" in warnings[0] and "ScaleMask" in warnings[0]


def test_a_full_denoise_starts_from_noise_of_the_spread_comfyui_and_diffusers_use():
    """KSampler started from seed noise × sigmas[0]; ComfyUI (noise_scaling with max_denoise) and diffusers'
    SD pipelines (init_noise_sigma) start a full denoise from noise × sqrt(1 + sigma_max²) — 0.23 % more at
    SD's sigma_max, so a seed's image differed from theirs. A partial denoise (img2img) is noise × sigmas[0]
    in all three (a numerics reviewer's check)."""
    import sys

    from nodes.sampling.noise import seeded_noise, start_noise_scale

    def start_only(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None):
        return x                                       # the latent the sampler was handed

    class Plugin:
        @hookimpl
        def register_samplers(self):
            return {"start_only": start_only}

    session = Session(plugins=[("toy", sys.modules[__name__]), ("mine", Plugin())])
    sigma_max = DiscreteTimeMap.from_betas(scaled_linear_betas()).sigma_max
    noise = seeded_noise((4, 4, 8, 8), 7)
    for scheduler, denoise in (("karras", 1.0), ("normal", 1.0), ("karras", 0.5), ("ddim_uniform", 1.0)):
        run = session.run(ksampler_graph(sampler="start_only", scheduler=scheduler, denoise=denoise))
        start = run.outputs["show"]["value"]["samples"]
        ratio = (start / noise).median().item()
        if denoise == 1.0 and scheduler != "ddim_uniform":      # ddim_uniform starts below sigma_max (t = 951)
            assert ratio == pytest.approx(math.sqrt(1 + sigma_max**2), rel=1e-5), scheduler
        else:
            assert ratio < sigma_max * 0.9, (scheduler, denoise, ratio)
            assert start_noise_scale(ratio, sigma_max, "eps") == pytest.approx(ratio)
    assert start_noise_scale(sigma_max, sigma_max, "flow") == sigma_max           # t = 1 is pure noise anyway
    assert start_noise_scale(sigma_max * 2, sigma_max, "v") == pytest.approx(math.sqrt(1 + 4 * sigma_max**2))


def test_ksampler_at_denoise_0_passes_its_latent_unchanged(session):
    """ComfyUI's KSampler returns its latent for denoise 0 (graphs use it as an off switch); it was refused, so
    such a workflow did not validate here (a numerics reviewer's check)."""
    graph = ksampler_graph(denoise=0.0)
    graph["nodes"]["show"]["inputs"]["value"] = link("k", "latent")
    out = session.run(graph).outputs["show"]["value"]["samples"]
    assert torch.equal(out, torch.zeros(4, 4, 8, 8))             # EmptyLatent's zeros: no noise, no steps


def test_a_full_denoise_starting_far_below_sigma_max_is_warned_about(session):
    """ddim_uniform at 1 step starts at sigma 0.041 of SD's 14.6 (so do ComfyUI's and diffusers'): a text-to-image
    run gives a flat image with no word why (a numerics reviewer's check). karras at 1 step starts at sigma_max."""
    warned = session.run(ksampler_graph(scheduler="ddim_uniform", steps=1)).warnings
    assert any("starts at sigma 0.0413, far below" in w["message"] for w in warned), warned
    assert not session.run(ksampler_graph(scheduler="karras", steps=1)).warnings
    assert not session.run(ksampler_graph(scheduler="ddim_uniform", steps=1, denoise=0.5)).warnings


def test_unipc_bh1_is_unipc_with_b_of_h_equal_to_h():
    """ComfyUI's `uni_pc` (B(h) = h) was refused, with `unipc` — its `uni_pc_bh2` — suggested: `unipc_bh1` is it."""
    import torch

    from nodes.sampling.samplers import SAMPLERS

    def model(x, sigma, **_):
        return x / (1 + sigma.view(-1, 1, 1, 1) ** 2)

    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * 14.6
    sigmas = torch.tensor([14.6, 6.0, 2.0, 0.7, 0.2, 0.0])
    bh1 = SAMPLERS["unipc_bh1"](model, x, sigmas)
    assert torch.equal(bh1, SAMPLERS["unipc"](model, x, sigmas, variant="bh1"))
    assert not torch.equal(bh1, SAMPLERS["unipc"](model, x, sigmas))
