"""A ComfyUI KSamplerAdvanced over part of its schedule (SDXL base + refiner workflows) imports as Schedule →
SplitSigmas → Sample (`comfyui.split_schedule_nodes`), and runs as ComfyUI's does."""

from __future__ import annotations

import copy

import pytest
import torch

from nodegraph import Session
from nodegraph.graph import GraphValidationError, import_foreign


def advanced(add_noise: str, start, end, leftover: str, latent: list, sampler: str = "euler") -> dict:
    return {"class_type": "KSamplerAdvanced", "inputs": {
        "add_noise": add_noise, "noise_seed": 42, "steps": 4, "cfg": 5, "sampler_name": sampler,
        "scheduler": "karras", "start_at_step": start, "end_at_step": end, "return_with_leftover_noise": leftover,
        "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": latent}}


def split_prompt(sampler: str, k: int) -> dict:
    """A 0→k pass (noise added, leftover noise returned) and a k→end pass (no noise added) beside one whole
    KSampler of the same seed (the report's comfy_split.json, smaller)."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_world_v6f.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a small red circle", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "10": advanced("enable", 0, k, "enable", ["5", 0], sampler),
        "11": advanced("disable", k, 10000, "disable", ["10", 0], sampler),
        "12": {"class_type": "KSampler", "inputs": {
            "seed": 42, "steps": 4, "cfg": 5, "sampler_name": sampler, "scheduler": "karras", "denoise": 1.0,
            "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["11", 0], "vae": ["4", 2]}},
        "9": {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}}


def test_a_base_and_refiner_split_imports_as_schedule_split_sigmas_and_sample():
    """A partial KSamplerAdvanced was left a placeholder ("Schedule → SplitSigmas → Sample here"), so no SDXL base +
    refiner workflow imported; each is now those nodes, the Sample keeping the entry's id and links."""
    imported = import_foreign(split_prompt("dpmpp_2m_sde_gpu", 2))
    nodes = imported["nodes"]
    assert nodes["10"]["type"] == "Sample" and nodes["11"]["type"] == "Sample"
    assert nodes["8"]["inputs"]["latent"] == {"node": "11", "output": "latent"}       # links to it as they were
    assert nodes["11"]["inputs"]["latent"] == {"node": "10", "output": "latent"}
    # the first pass: the whole schedule cut at end_at_step (its high part), seeded noise
    assert nodes["10"]["inputs"]["sigmas"] == {"node": "10.split_end", "output": "high"}
    assert nodes["10.split_end"]["inputs"] == {"sigmas": {"node": "10.schedule", "output": "sigmas"}, "step": 2}
    assert "10.split_start" not in nodes                     # starts at 0: nothing to cut
    assert nodes["10.schedule"] == {"type": "Schedule", "inputs": {"model": {"node": "4", "output": "model"},
                                                                    "scheduler": "karras", "steps": 4}}
    assert nodes["10.noise"] == {"type": "RandomNoise", "inputs": {"seed": 42}}
    assert nodes["10.guider"]["inputs"]["cfg"] == 5 and nodes["10.sampler"]["inputs"] == {"sampler": "dpmpp_2m_sde"}
    # the second: from start_at_step to the end, no noise added
    assert nodes["11"]["inputs"]["sigmas"] == {"node": "11.split_start", "output": "low"}
    assert nodes["11.split_start"]["inputs"]["step"] == 2 and "11.split_end" not in nodes
    assert nodes["11.noise"] == {"type": "DisableNoise", "inputs": {}}
    metadata = imported["metadata"]
    assert metadata["comfyui_types"]["10.schedule"] == "KSamplerAdvanced"      # all its nodes count as translated
    assert {"node": "10", "input": "sampler", "from": "dpmpp_2m_sde_gpu", "to": "dpmpp_2m_sde"} \
        in metadata["translated_values"]
    assert Session(builtins=True).validate(imported) == []


def test_a_middle_pass_cuts_both_ends_and_a_whole_one_without_noise_is_no_ksampler():
    """start 1 → end 3 of 4 cuts at 1 (low) then at 3 − 1 (high); add_noise disable over the whole schedule is a
    Sample with DisableNoise (KSampler always adds its noise)."""
    prompt = {"1": advanced("enable", 1, 3, "enable", ["9", 0]), "2": advanced("disable", 0, 10000, "disable",
                                                                               ["9", 0])}
    nodes = import_foreign(prompt)["nodes"]
    assert nodes["1.split_start"]["inputs"]["step"] == 1 and nodes["1.split_end"]["inputs"] == {
        "sigmas": {"node": "1.split_start", "output": "low"}, "step": 2}
    assert nodes["1"]["inputs"]["sigmas"] == {"node": "1.split_end", "output": "high"}
    assert nodes["2"]["type"] == "Sample" and nodes["2.noise"]["type"] == "DisableNoise"
    assert nodes["2"]["inputs"]["sigmas"] == {"node": "2.schedule", "output": "sigmas"}


@pytest.mark.parametrize(("start", "end", "leftover", "why"), [
    (["3", 0], 2, "enable", "must be values"),                     # a link: known only when the graph runs
    (0, ["3", 0], "enable", "must be values"),
    (2, 2, "enable", "runs no step"),                              # ComfyUI passes the latent on
    (4, 10000, "disable", "runs no step"),
    (0, 2, "disable", "its last step goes to 0"),                  # no node here builds that schedule
])
def test_what_has_no_split_here_stays_a_placeholder_that_says_why(start, end, leftover, why):
    """Values that are links, a pass that runs no step, and one that stops early without its leftover noise
    stay KSamplerAdvanced; validation's message names the recipe and the cases it does not cover."""
    graph = import_foreign({"1": advanced("enable", start, end, leftover, ["9", 0])})
    assert graph["nodes"]["1"]["type"] == "KSamplerAdvanced" and set(graph["nodes"]) == {"1"}
    from nodegraph.comfyui import split_schedule_problem

    assert why in split_schedule_problem(advanced("enable", start, end, leftover, ["9", 0])["inputs"])
    (error,) = [e for e in Session(builtins=True).validate(graph) if e.node_id == "1" and e.code == "unknown_node_type"]
    assert "SplitSigmas" in error.message and "link" in error.message and "leftover" in error.message


def test_an_entry_already_named_like_a_split_node_is_refused_naming_it():
    """Ids "<id>.schedule" … must be free: the sampler was left a placeholder whose error listed reasons that did not
    apply (a link, no step, leftover noise); the import now names the taken id and the fix. An id of a part the
    sampler does not make (`1.split_start` when it starts at 0) is no clash."""
    prompt = {"1": advanced("enable", 0, 2, "enable", ["9", 0]),
              "1.noise": {"class_type": "EmptyLatentImage", "inputs": {}}}
    with pytest.raises(GraphValidationError) as caught:
        import_foreign(prompt)
    (error,) = caught.value.errors
    assert error.code == "invalid_format" and error.node_id == "1" and error.details == {"taken_id": "1.noise"}
    assert "'1.noise'" in error.message and "give that entry another id" in error.message
    assert "1.schedule, 1.split_end, 1.guider, 1.sampler, 1.noise" in error.message
    prompt = {"1": advanced("enable", 0, 2, "enable", ["9", 0]),
              "1.split_start": {"class_type": "EmptyLatentImage", "inputs": {}}}
    nodes = import_foreign(prompt)["nodes"]
    assert nodes["1"]["type"] == "Sample" and nodes["1.split_start"]["type"] == "EmptyLatent"


def _run(prompt: dict, extra: dict | None = None, outputs=("10", "11", "12")) -> dict:
    graph = import_foreign(prompt)
    graph["nodes"].update(extra or {})
    result = Session(builtins=True).run(graph, outputs=list(outputs))
    return {node_id: result.outputs[node_id]["latent"]["samples"] for node_id in outputs}


def test_a_split_euler_run_is_the_whole_ksampler_run():
    """0→2 with the leftover noise, then 2→end with no noise added, on the shipped tiny model: the whole KSampler's
    latent (euler keeps no history, so only the wiring — cut points, noise — could differ)."""
    latents = _run(split_prompt("euler", 2))
    torch.testing.assert_close(latents["11"], latents["12"], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(latents["10"], latents["12"], atol=1e-2)      # the first pass alone is not it


def test_a_split_dpmpp_2m_run_follows_the_whole_run_then_restarts_its_history():
    """dpmpp_2m: the first pass is the whole run's latent after its k steps (a SamplerStep chain); the second
    starts without the previous step's prediction, at first order, as each ComfyUI KSamplerAdvanced call does,
    so the split differs from one whole run (within the image's range)."""
    link = lambda node, output: {"node": node, "output": output}     # noqa: E731
    common = {"guider": link("10.guider", "guider"), "sampler": link("10.sampler", "sampler"),
              "sigmas": link("10.schedule", "sigmas"), "noise": link("10.noise", "noise")}
    chain = {"step0": {"type": "SamplerStep", "inputs": {**common, "latent": link("5", "latent"), "step": 0}},
             "step1": {"type": "SamplerStep", "inputs": {**common, "latent": link("step0", "latent"), "step": 1,
                                                         "state": link("step0", "state")}}}
    latents = _run(split_prompt("dpmpp_2m", 2), chain, outputs=("10", "11", "12", "step1"))
    torch.testing.assert_close(latents["10"], latents["step1"], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(latents["11"], latents["12"], atol=1e-3)
    assert bool(torch.isfinite(latents["11"]).all())
