"""The plugin API on the shipped tiny model: a node written only against nodegraph.api samples exactly
as KSampler / Sample / VAEDecode do, reports progress with previews, stops when interrupted, and
applies guidance terms; bad arguments are refused before model work, naming the argument."""

from __future__ import annotations

import functools
import math
import sys
import types
from typing import Any

import pytest
import torch

from nodegraph import Input, Node, NodeInputs, Output, RunInterrupted, Session, api, hookimpl
from nodegraph.errors import NodeExecutionError

PROMPT = "a small red circle on the left, on a blue background"


class ShiftTerm(api.GuidanceTerm):
    """A plugin's guidance term: adds a constant to the guided prediction (optionally only in a sigma range)."""

    def __init__(self, amount: float, sigma_range: tuple[float, float] = (0.0, math.inf)):
        self.amount = amount
        self.sigma_range = sigma_range
        self.calls = 0

    def __call__(self, state) -> torch.Tensor:
        self.calls += 1
        return torch.full_like(state.denoised, self.amount)


class PluginTextToImage(Node):
    """What a plugin author writes: prompt → image through the public API only (no built-in node used)."""

    category = "test"

    class Inputs(NodeInputs):
        model: Any = Input(port="MODEL")
        text_encoder: Any = Input(port="TEXT_ENCODER")
        vae: Any = Input(port="VAE")
        text: str = Input("")
        seed: int = Input(0, seed=True)
        steps: int = Input(4, ge=1, le=100)
        sampler: str = Input("euler")
        extra: str = Input("none", description="none | zero_term | shift_term | out_of_range_term | frames")

    outputs = (Output("latent", "LATENT"), Output("image", "IMAGE"))

    def run(self, model, text_encoder, vae, text, seed, steps, sampler, extra) -> dict:
        positive = api.encode_text(self.context, text_encoder, text)
        negative = api.encode_text(self.context, text_encoder, "")
        latent = {"samples": torch.zeros(1, 4, 16, 16)}
        guidance = None
        if extra == "zero_term":
            guidance = (functools.partial(ShiftTerm, 0.0),)
        elif extra == "shift_term":
            guidance = (functools.partial(ShiftTerm, 0.5),)
        elif extra == "out_of_range_term":                     # the shipped model's sigmas stay below 1e5
            guidance = (functools.partial(ShiftTerm, 0.5, (1e5, 1e6)),)
        elif extra == "frames":
            latent["frames"] = 1
        out = api.sample(self.context, model, positive, negative, latent, seed=seed, steps=steps, cfg=5.0,
                         sampler=sampler, scheduler="karras", guidance=guidance)
        return {"latent": out, "image": api.vae_decode(self.context, vae, out)}


class PluginSampleCustom(Node):
    """sample_custom with the convenience forms: a sampler name and an int seed as noise."""

    category = "test"

    class Inputs(NodeInputs):
        guider: Any = Input(port="GUIDER")
        sigmas: Any = Input(port="SIGMAS")
        latent: Any = Input(port="LATENT")
        seed: int = Input(0, seed=True)

    outputs = (Output("latent", "LATENT"),)

    def run(self, guider, sigmas, latent, seed) -> dict:
        return {"latent": api.sample_custom(self.context, guider, "euler_ancestral", sigmas, seed, latent)}


class PluginOwnGuider(Node):
    """What a plugin writes for its own two-part loop: a GUIDER from api.cfg_guider, then api.sample_custom."""

    category = "test"

    class Inputs(NodeInputs):
        model: Any = Input(port="MODEL")
        positive: Any = Input(port="CONDITIONING")
        negative: Any = Input(port="CONDITIONING")
        sigmas: Any = Input(port="SIGMAS")
        latent: Any = Input(port="LATENT")
        seed: int = Input(0, seed=True)
        cfg: float = Input(4.0)

    outputs = (Output("latent", "LATENT"),)

    def run(self, model, positive, negative, sigmas, latent, seed, cfg) -> dict:
        guider = api.cfg_guider(self.context, model, positive, negative, cfg=cfg)
        return {"latent": api.sample_custom(self.context, guider, "euler_ancestral", sigmas, seed, latent)}


class PluginBadCall(Node):
    """Calls the API wrongly in one of several ways (to check the errors)."""

    category = "test"

    class Inputs(NodeInputs):
        model: Any = Input(port="MODEL")
        text_encoder: Any = Input(port="TEXT_ENCODER")
        mistake: str = Input("no_negative")

    outputs = (Output("latent", "LATENT"),)

    def run(self, model, text_encoder, mistake) -> dict:
        positive = api.encode_text(self.context, text_encoder, "a star")
        latent = {"samples": torch.zeros(1, 4, 16, 16)}
        if mistake == "no_negative":
            return {"latent": api.sample(self.context, model, positive, None, latent, cfg=5.0)}
        if mistake == "unknown_sampler":
            return {"latent": api.sample(self.context, model, positive, positive, latent, sampler="magic")}
        if mistake == "audio_layout":
            return {"latent": api.sample(self.context, model, positive, positive, {"samples": torch.zeros(1, 4, 16)})}
        if mistake == "wrong_channels":
            return {"latent": api.sample(self.context, model, positive, positive,
                                         {"samples": torch.zeros(1, 3, 16, 16)})}
        if mistake == "guider_no_negative":
            return {"latent": api.cfg_guider(self.context, model, positive, None, cfg=5.0)}
        if mistake == "guider_sigma_range":
            return {"latent": api.cfg_guider(self.context, model, positive, positive, sigma_low=5.0, sigma_high=1.0)}
        if mistake == "guider_not_a_model":
            return {"latent": api.cfg_guider(self.context, text_encoder, positive, positive)}
        if mistake == "guidance_not_a_list":
            return {"latent": api.sample(self.context, model, positive, positive, latent, guidance=lambda *a: 0)}
        if mistake == "guidance_term_not_factory":
            return {"latent": api.sample(self.context, model, positive, positive, latent, guidance=[ShiftTerm(1.0)])}
        if mistake in BadTerm.MISTAKES:
            return {"latent": api.sample(self.context, model, positive, positive, latent, steps=2,
                                         guidance=[functools.partial(BadTerm, mistake)])}
        raise AssertionError(mistake)


class BadTerm(api.GuidanceTerm):
    """A plugin's guidance term that goes wrong in one of several ways."""

    MISTAKES = ("term_raises", "term_wrong_shape", "term_not_a_tensor", "term_nan", "term_inverted_range",
                "term_evaluate_refused")

    def __init__(self, mistake: str):
        self.mistake = mistake
        if mistake == "term_inverted_range":
            self.sigma_range = (5.0, 1.0)

    def __call__(self, state):
        if self.mistake == "term_raises":
            raise RuntimeError("exploded")
        if self.mistake == "term_wrong_shape":
            return torch.zeros(1, 3, 5, 5)
        if self.mistake == "term_not_a_tensor":
            return "x"
        if self.mistake == "term_evaluate_refused":       # state.evaluate refuses what the term passes it
            return state.evaluate(conditioning={"nonsense": 1}) - state.denoised
        return state.denoised * float("nan")


class TestPlugin:
    """The test nodes as a plugin."""

    @hookimpl
    def register_nodes(self) -> list:
        return [PluginTextToImage, PluginSampleCustom, PluginOwnGuider, PluginBadCall]


def link(node: str, output: str) -> dict:
    return {"node": node, "output": output}


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Session:
    return Session(plugins=[("apitest", TestPlugin())], output_dir=tmp_path_factory.mktemp("out"))


def base_graph() -> dict:
    """The shipped checkpoint, loaded once, with both prompts encoded by the built-in node."""
    return {"format_version": 1, "nodes": {
        "ckpt": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world.safetensors"}},
        "pos": {"type": "EncodeText", "inputs": {"text_encoder": link("ckpt", "text_encoder"), "text": PROMPT}},
        "neg": {"type": "EncodeText", "inputs": {"text_encoder": link("ckpt", "text_encoder"), "text": ""}},
        "empty": {"type": "EmptyLatent", "inputs": {"width": 64, "height": 64, "vae": link("ckpt", "vae")}},
    }}


def plugin_node(**inputs: Any) -> dict:
    return {"type": "PluginTextToImage", "inputs": {"model": link("ckpt", "model"),
                                                    "text_encoder": link("ckpt", "text_encoder"),
                                                    "vae": link("ckpt", "vae"), "text": PROMPT, **inputs}}


def show(graph: dict, label: str, node: str, output: str) -> None:
    graph["nodes"][label] = {"type": "ShowValue", "inputs": {"value": link(node, output)}}


def test_a_plugin_node_samples_exactly_like_ksampler_and_vaedecode(session):
    """Same model, prompts, seed, steps, sampler: the API node's latent and image equal the built-ins' bit for bit."""
    graph = base_graph()
    graph["nodes"]["k"] = {"type": "KSampler", "inputs": {
        "model": link("ckpt", "model"), "positive": link("pos", "conditioning"),
        "negative": link("neg", "conditioning"),
        "latent": link("empty", "latent"), "seed": 11, "steps": 4, "cfg": 5.0, "sampler": "dpmpp_2m",
        "scheduler": "karras"}}
    graph["nodes"]["decode"] = {"type": "VAEDecode",
                                "inputs": {"vae": link("ckpt", "vae"), "latent": link("k", "latent")}}
    graph["nodes"]["plugin"] = plugin_node(seed=11, steps=4, sampler="dpmpp_2m")
    for label, node, output in [("k_latent", "k", "latent"), ("k_image", "decode", "image"),
                                ("p_latent", "plugin", "latent"), ("p_image", "plugin", "image")]:
        show(graph, label, node, output)
    out = session.run(graph).outputs
    builtin, plugin = out["k_latent"]["value"]["samples"], out["p_latent"]["value"]["samples"]
    assert builtin.shape == (1, 4, 16, 16) and builtin.dtype == torch.float32
    assert torch.equal(builtin, plugin)
    assert torch.equal(out["k_image"]["value"], out["p_image"]["value"])
    assert out["p_image"]["value"].shape == (1, 64, 64, 3)
    assert builtin.std() > 0.1                      # it really sampled something


def test_sample_custom_with_a_name_and_a_seed_equals_the_sample_node(session):
    """sample_custom(guider, "euler_ancestral", sigmas, 5, latent) equals Sample with SelectSampler and RandomNoise."""
    graph = base_graph()
    graph["nodes"].update({
        "guider": {"type": "CFGGuider", "inputs": {"model": link("ckpt", "model"),
                                                   "positive": link("pos", "conditioning"),
                                                   "negative": link("neg", "conditioning"), "cfg": 4.0}},
        "sigmas": {"type": "Schedule", "inputs": {"model": link("ckpt", "model"), "scheduler": "normal", "steps": 3}},
        "select": {"type": "SelectSampler", "inputs": {"sampler": "euler_ancestral"}},
        "noise": {"type": "RandomNoise", "inputs": {"seed": 5}},
        "sample": {"type": "Sample", "inputs": {"guider": link("guider", "guider"),
                                                "sampler": link("select", "sampler"),
                                                "sigmas": link("sigmas", "sigmas"), "noise": link("noise", "noise"),
                                                "latent": link("empty", "latent")}},
        "custom": {"type": "PluginSampleCustom", "inputs": {"guider": link("guider", "guider"),
                                                            "sigmas": link("sigmas", "sigmas"),
                                                            "latent": link("empty", "latent"), "seed": 5}},
    })
    show(graph, "a", "sample", "latent")
    show(graph, "b", "custom", "latent")
    out = session.run(graph).outputs
    assert torch.equal(out["a"]["value"]["samples"], out["b"]["value"]["samples"])


def test_a_plugin_guider_from_cfg_guider_equals_the_cfgguider_node(session):
    """api.cfg_guider + api.sample_custom in one plugin node equals CFGGuider → Sample; another cfg differs."""
    graph = base_graph()
    graph["nodes"].update({
        "guider": {"type": "CFGGuider", "inputs": {"model": link("ckpt", "model"),
                                                   "positive": link("pos", "conditioning"),
                                                   "negative": link("neg", "conditioning"), "cfg": 4.0}},
        "sigmas": {"type": "Schedule", "inputs": {"model": link("ckpt", "model"), "scheduler": "normal", "steps": 3}},
        "custom": {"type": "PluginSampleCustom", "inputs": {"guider": link("guider", "guider"),
                                                            "sigmas": link("sigmas", "sigmas"),
                                                            "latent": link("empty", "latent"), "seed": 5}},
    })
    for label, cfg in (("own", 4.0), ("other", 1.5)):
        graph["nodes"][label] = {"type": "PluginOwnGuider", "inputs": {
            "model": link("ckpt", "model"), "positive": link("pos", "conditioning"),
            "negative": link("neg", "conditioning"), "sigmas": link("sigmas", "sigmas"),
            "latent": link("empty", "latent"), "seed": 5, "cfg": cfg}}
        show(graph, label + "_out", label, "latent")
    show(graph, "node_out", "custom", "latent")
    out = session.run(graph).outputs
    builtin = out["node_out"]["value"]["samples"]
    assert torch.equal(builtin, out["own_out"]["value"]["samples"])
    assert not torch.equal(builtin, out["other_out"]["value"]["samples"])


def test_progress_with_previews_and_interruption_through_the_api(session):
    """api.sample reports each step with a preview, and an interrupt at the first step stops the plugin node."""
    graph = base_graph()
    graph["nodes"]["plugin"] = plugin_node(seed=1, steps=6)
    show(graph, "out", "plugin", "latent")
    events = []
    session.run(graph, on_event=events.append)
    steps = [e for e in events if e.type == "node_progress" and e.node_id == "plugin"]
    assert [(e.value, e.total) for e in steps] == [(i, 6) for i in range(1, 7)]
    assert all(e.preview is not None and e.preview.shape == (1, 16, 16, 3) for e in steps)

    graph["nodes"]["plugin"]["inputs"]["seed"] = 2            # not cached: a new key
    seen = []

    def interrupt_at_first_step(event) -> None:
        if event.type == "node_progress" and event.node_id == "plugin":
            seen.append(event.value)
            session.interrupt()

    with pytest.raises(RunInterrupted) as info:
        session.run(graph, on_event=interrupt_at_first_step)
    assert info.value.node_id == "plugin" and seen == [1]     # stopped at the next check, after step 1


def test_guidance_terms_are_added_after_cfg(session):
    """A plugin's GuidanceTerm: zero changes nothing, a constant moves the sample, outside its sigma range it
    never runs; extra latent keys are kept."""
    graph = base_graph()
    for label, extra in [("plain", "none"), ("zero", "zero_term"), ("shift", "shift_term"),
                         ("outside", "out_of_range_term"), ("frames", "frames")]:
        graph["nodes"][label] = plugin_node(seed=3, steps=3, extra=extra)
        show(graph, f"show_{label}", label, "latent")
    out = session.run(graph).outputs
    plain, zero, shift, outside = (out[f"show_{k}"]["value"]["samples"] for k in ("plain", "zero", "shift", "outside"))
    assert torch.equal(plain, zero) and torch.equal(plain, outside)
    assert (shift - plain).mean() > 0.1
    assert out["show_frames"]["value"]["frames"] == 1
    assert torch.equal(out["show_frames"]["value"]["samples"], plain)


@pytest.mark.parametrize("mistake, argument, words", [
    ("no_negative", "negative", "encode an empty prompt"),
    ("unknown_sampler", "sampler", "installed: euler"),
    ("audio_layout", "latent", "fold frames into the batch axis"),
    ("wrong_channels", "latent", "4-channel"),
    ("guider_no_negative", "negative", "encode an empty prompt"),
    ("guider_sigma_range", "sigma_low", "is above sigma_high"),
    ("guider_not_a_model", "model", "expected a MODEL"),
    ("guidance_not_a_list", "guidance", "a sequence of guidance-term factories"),
    ("guidance_term_not_factory", "guidance", "a zero-argument factory"),
    ("term_raises", "guidance", "BadTerm (from tests.sampling.test_api) to return a correction, found RuntimeError: "
                                "exploded"),
    ("term_wrong_shape", "guidance", "found shape (1, 3, 5, 5)"),
    ("term_not_a_tensor", "guidance", "found str"),
    ("term_nan", "guidance", "NaN or infinite values"),
    ("term_inverted_range", "guidance", "low <= high, found (5.0, 1.0)"),
    # it was said of KSampler's `sampler` input, without the term's name
    ("term_evaluate_refused", "guidance", "BadTerm (from tests.sampling.test_api) to call state.evaluate with "
                                          "conditioning['nonsense'] as a tensor with a batch dimension, found int"),
])
def test_bad_arguments_are_refused_naming_the_argument(session, mistake, argument, words):
    """Each mistake fails with an error whose input is the API argument and whose message says the fix."""
    graph = base_graph()
    graph["nodes"]["bad"] = {"type": "PluginBadCall", "inputs": {"model": link("ckpt", "model"),
                                                                 "text_encoder": link("ckpt", "text_encoder"),
                                                                 "mistake": mistake}}
    show(graph, "out", "bad", "latent")
    events = []
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph, on_event=events.append)
    assert info.value.node_id == "bad"
    assert info.value.exception.input == argument and words in str(info.value.exception)
    assert not [e for e in events if e.type == "node_progress" and e.node_id == "bad"]   # no model step ran


def test_vae_encode_and_save_image_through_the_api(session):
    """VAEEncode → VAEDecode (api.vae_encode / vae_decode) reproduces an image; SaveImage returns contract entries."""
    from nodegraph.results import collect_files

    graph = base_graph()
    graph["nodes"]["plugin"] = plugin_node(seed=4, steps=12)
    vae, image = link("ckpt", "vae"), link("plugin", "image")
    graph["nodes"]["encode"] = {"type": "VAEEncode", "inputs": {"vae": vae, "image": image}}
    graph["nodes"]["save"] = {"type": "SaveImage", "inputs": {"images": image, "filename_prefix": "api/t"}}
    graph["nodes"]["decode"] = {"type": "VAEDecode", "inputs": {"vae": vae, "latent": link("encode", "latent")}}
    show(graph, "image", "plugin", "image")
    show(graph, "encoded", "encode", "latent")
    show(graph, "round_trip", "decode", "image")
    result = session.run(graph)
    assert result.outputs["encoded"]["value"]["samples"].shape == (1, 4, 16, 16)
    image, round_trip = result.outputs["image"]["value"], result.outputs["round_trip"]["value"]
    assert (image - round_trip).abs().mean() < 0.05            # the tiny VAE's reconstruction error
    (file,) = collect_files(result.outputs, session.output_dir)
    assert file["kind"] == "image" and file["mime"] == "image/png" and (file["width"], file["height"]) == (64, 64)
    assert file["name"].startswith("api/t_") and file["node_id"] == "save"


def test_results_are_float32_on_the_cpu_whatever_the_weight_dtype(session):
    """With bf16 weights, api.encode_text / sample / vae_decode still return float32 CPU tensors (the contract)."""
    graph = base_graph()
    graph["nodes"]["ckpt"]["inputs"]["weight_dtype"] = "bf16"
    graph["nodes"]["plugin"] = plugin_node(seed=5, steps=2)
    show(graph, "latent", "plugin", "latent")
    show(graph, "image", "plugin", "image")
    show(graph, "cond", "pos", "conditioning")
    out = session.run(graph).outputs
    tensors = [out["latent"]["value"]["samples"], out["image"]["value"], out["cond"]["value"]["context"]]
    assert [(t.dtype, t.device.type) for t in tensors] == [(torch.float32, "cpu")] * 3


class NaNLatent(Node):
    """Samples from a latent that holds NaN (as a broken plugin upstream would hand over)."""

    category = "test"

    class Inputs(NodeInputs):
        model: Any = Input(port="MODEL")
        text_encoder: Any = Input(port="TEXT_ENCODER")

    outputs = (Output("latent", "LATENT"),)

    def run(self, model, text_encoder) -> dict:
        positive = api.encode_text(self.context, text_encoder, "a star")
        latent = {"samples": torch.full((1, 4, 16, 16), float("nan"), dtype=torch.float16)}
        return {"latent": api.sample(self.context, model, positive, positive, latent, steps=2, denoise=0.5)}


def test_a_non_finite_result_is_a_warning_and_results_are_cpu_float32():
    """NaN anywhere upstream gave a blank image and exit 0 with nothing said; api.sample now warns. Its result is
    CPU float32 as documented, even for a half-precision latent."""
    plugin = types.ModuleType("nan_latent_plugin")
    plugin.register_nodes = hookimpl(lambda: [NaNLatent])
    sys.modules[plugin.__name__] = plugin
    graph = base_graph()
    graph["nodes"]["nan"] = {"type": "NaNLatent", "inputs": {"model": link("ckpt", "model"),
                                                             "text_encoder": link("ckpt", "text_encoder")}}
    show(graph, "show_nan", "nan", "latent")
    result = Session(plugins=[plugin]).run(graph, outputs=["show_nan"])
    assert result.outputs["show_nan"]["value"]["samples"].dtype == torch.float32
    assert [w["node_id"] for w in result.warnings] == ["nan"] and "NaN or infinite" in result.warnings[0]["message"]
