"""Inputs that fit their port type but not the node (another model family's MODEL or TEXT_ENCODER, sizes the
node cannot use) fail with a NodeInputError naming the input and the fix — never the AttributeError,
ZeroDivisionError or torch RuntimeError a fuzz check found inside (session 16)."""

from __future__ import annotations

import pytest

from nodegraph import NodeExecutionError, NodeInputError, Session


def link(node: str, output: str) -> dict:
    return {"node": node, "output": output}


V4 = {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world_v4.safetensors"}}
FLOW = {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world_flow.safetensors"}}
DATA = {"type": "TinyWorldDataset", "inputs": {"count": 4, "size": 16}}
TRAIN = {"steps": 1, "batch_size": 1, "warmup_steps": 0, "checkpoint_every": 0}

CASES = {
    "save a flow model as a UNet checkpoint": ({"ck": V4, "f": FLOW, "T": {"type": "SaveCheckpoint", "inputs": {
        "model": link("f", "model"), "text_encoder": link("ck", "text_encoder"), "vae": link("ck", "vae"),
        "filename": "never.safetensors"}}}, "model", "UNet model"),
    "ControlNet training on a flow model": ({"ds": DATA, "ck": V4, "f": FLOW, "T": {
        "type": "TrainControlNet", "inputs": {
        "dataset": link("ds", "dataset"), "model": link("f", "model"), "text_encoder": link("ck", "text_encoder"),
        "vae": link("ck", "vae"), **TRAIN}}}, "model", "UNet model"),
    "LCM distillation with the flow text encoder": ({"ds": DATA, "ck": V4, "f": FLOW, "T": {
        "type": "DistillLCM", "inputs": {
        "dataset": link("ds", "dataset"), "model": link("ck", "model"), "text_encoder": link("f", "text_encoder"),
        "vae": link("ck", "vae"), "lora_rank": 1, **TRAIN}}}, "text_encoder", "CLIP text encoder"),
    "LCM distillation of a flow model": ({"ds": DATA, "ck": V4, "f": FLOW, "T": {"type": "DistillLCM", "inputs": {
        "dataset": link("ds", "dataset"), "model": link("f", "model"), "text_encoder": link("ck", "text_encoder"),
        "vae": link("ck", "vae"), "lora_rank": 1, **TRAIN}}}, "model", "discrete schedule"),
    "KSampler: flow model, SD prompts": ({"ck": V4, "f": FLOW, "p": {"type": "EncodeText", "inputs": {
        "text_encoder": link("ck", "text_encoder"), "text": "a red circle"}},
        "l": {"type": "EmptyLatent", "inputs": {"width": 32, "height": 32}},
        "T": {"type": "KSampler", "inputs": {"model": link("f", "model"), "positive": link("p", "conditioning"),
                                             "negative": link("p", "conditioning"), "latent": link("l", "latent"),
                                             "steps": 1}}}, "positive", "EncodeTextSD3"),
    "LatentUpscale below one cell": ({"l": {"type": "EmptyLatent", "inputs": {"width": 64, "height": 64}},
                                      "T": {"type": "LatentUpscale", "inputs": {"latent": link("l", "latent"),
                                                                                "width": 32, "height": 32,
                                                                                "downscale": 64}}},
                                     "width", "less than one latent cell"),
    "ModelSamplingFlux with mu 100": ({"f": FLOW, "T": {"type": "ModelSamplingFlux", "inputs": {
        "model": link("f", "model"), "width": 32, "height": 32, "base_shift": 100.0}}}, "base_shift", "Flux's 0.5"),
    "CompositeImages of 2 onto 1": ({"d": {"type": "RenderTinyWorld", "inputs": {"size": 32}},
                                    "s": {"type": "ImageBatch", "inputs": {"a": link("d", "image"),
                                                                           "b": link("d", "image")}},
                                    "T": {"type": "CompositeImages", "inputs": {"destination": link("d", "image"),
                                                                                "source": link("s", "images")}}},
                                   "source", "source has a batch of 2"),
}


@pytest.fixture(scope="module")
def session():
    return Session()


@pytest.mark.parametrize("case", list(CASES))
def test_the_input_that_does_not_fit_is_named(session, case):
    nodes, input_name, words = CASES[case]
    with pytest.raises(NodeExecutionError) as info:
        session.run({"format_version": 2, "nodes": nodes}, outputs=["T"])
    assert isinstance(info.value.exception, NodeInputError), repr(info.value.exception)
    assert info.value.exception.input == input_name and words in str(info.value.exception)
