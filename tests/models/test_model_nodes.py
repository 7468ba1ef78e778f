"""Model nodes in graphs on a tiny random checkpoint: load, encode, sample, decode, errors, memory."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from nodegraph import GraphValidationError, NodeExecutionError, Session
from nodegraph.model_paths import ModelPaths
from nodes.models.clip import CLIPTextModel, PromptEncoder
from nodes.models.loading import save_checkpoint
from nodes.models.unet import TINY, UNetModel
from nodes.models.vae import TINY_VAE, AutoencoderKL

from .conftest import TINY_CLIP



@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """models/ with a tiny random SD1-layout checkpoint and a VAE-only file."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("models")
    (root / "checkpoints").mkdir()
    (root / "vae").mkdir()
    unet = UNetModel(replace(TINY, context_dim=64))
    vae = AutoencoderKL(TINY_VAE)
    encoder = PromptEncoder({"clip_l": CLIPTextModel(TINY_CLIP)}, pooled_from="clip_l")
    save_checkpoint(root / "checkpoints" / "tiny.safetensors", family="sd1", unet=unet, vae=vae,
                    text_encoder=encoder, dtype=torch.float16)
    save_checkpoint(root / "vae" / "tiny_vae.safetensors", family="sd1", vae=vae)
    (root / "checkpoints" / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header")
    return root


@pytest.fixture
def session(models_dir, tmp_path):
    return Session(model_paths=ModelPaths(roots=[models_dir]), output_dir=tmp_path / "out")


def link(node, output):
    return {"node": node, "output": output}


def txt2img(ckpt="tiny.safetensors", prompt="a red circle", steps=4) -> dict:
    return {"format_version": 1, "nodes": {
        "ckpt": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": ckpt}},
        "pos": {"type": "EncodeText", "inputs": {"text_encoder": link("ckpt", "text_encoder"), "text": prompt}},
        "neg": {"type": "EncodeText", "inputs": {"text_encoder": link("ckpt", "text_encoder"), "text": ""}},
        "empty": {"type": "EmptyLatent", "inputs": {"width": 32, "height": 32}},
        "k": {"type": "KSampler", "inputs": {"model": link("ckpt", "model"), "positive": link("pos", "conditioning"),
                                             "negative": link("neg", "conditioning"), "latent": link("empty", "latent"),
                                             "seed": 1, "steps": steps, "cfg": 5.0, "sampler": "euler",
                                             "scheduler": "karras"}},
        "decode": {"type": "VAEDecode", "inputs": {"vae": link("ckpt", "vae"), "latent": link("k", "latent")}},
        "save": {"type": "SaveImage", "inputs": {"images": link("decode", "image"), "filename_prefix": "tiny"}}}}


def test_txt2img_on_a_tiny_checkpoint(session, tmp_path):
    """LoadCheckpoint → EncodeText → KSampler → VAEDecode → SaveImage writes a 32×32 PNG."""
    from PIL import Image

    events = []
    result = session.run(txt2img(), on_event=events.append)
    (file,) = result.outputs["save"]["files"]
    with Image.open(file["path"]) as image:
        assert image.size == (32, 32)
    progress = [e for e in events if e.type == "node_progress" and e.node_id == "k"]
    assert len(progress) == 4 and progress[0].preview.shape == (1, 4, 4, 3)


def test_prompt_change_reuses_the_loaded_model(session):
    """Changing the prompt re-runs encode and sampling but not the checkpoint load."""
    session.run(txt2img())
    result = session.run(txt2img(prompt="a blue square"))
    assert "ckpt" not in result.executed and "pos" in result.executed and "k" in result.executed


def test_vae_round_trip_shapes(session, tmp_path):
    """VAEEncode then VAEDecode (one pass and tiled) keep the image size; the latent is 1/8."""
    from PIL import Image

    (tmp_path / "in").mkdir()
    Image.new("RGB", (48, 40), (200, 30, 30)).save(tmp_path / "in" / "red.png")
    session.input_dir = tmp_path / "in"
    session.services["input_dir"] = session.input_dir
    graph = {"format_version": 1, "nodes": {
        "vae": {"type": "LoadVAE", "inputs": {"vae_name": "tiny_vae.safetensors"}},
        "img": {"type": "LoadImage", "inputs": {"image": "red.png"}},
        "enc": {"type": "VAEEncode", "inputs": {"vae": link("vae", "vae"), "image": link("img", "image")}},
        "dec": {"type": "VAEDecode", "inputs": {"vae": link("vae", "vae"), "latent": link("enc", "latent")}},
        "tiled": {"type": "VAEDecode", "inputs": {"vae": link("vae", "vae"), "latent": link("enc", "latent"),
                                                  "tile_size": 32}},
        "a": {"type": "ShowValue", "inputs": {"value": link("enc", "latent")}},
        "b": {"type": "ShowValue", "inputs": {"value": link("dec", "image")}},
        "c": {"type": "ShowValue", "inputs": {"value": link("tiled", "image")}}}}
    out = session.run(graph).outputs
    assert out["a"]["value"]["samples"].shape == (1, 4, 5, 6)
    assert out["b"]["value"].shape == (1, 40, 48, 3) and out["c"]["value"].shape == (1, 40, 48, 3)


def test_missing_model_lists_what_is_there(session, models_dir):
    """A model name not in the folder is a validation error listing the files and where it looked."""
    with pytest.raises(GraphValidationError) as info:
        session.run(txt2img(ckpt="sd15.safetensors"))
    (error,) = info.value.errors
    assert error.code == "not_in_choices" and error.input == "ckpt_name"
    assert "tiny.safetensors" in error.message and str(models_dir / "checkpoints") in error.message


def test_wrong_or_corrupt_files_name_the_input(session, models_dir):
    """A VAE file given as a checkpoint, and a corrupt file, fail with a clear error on ckpt_name."""
    import shutil

    shutil.copy(models_dir / "vae" / "tiny_vae.safetensors", models_dir / "checkpoints" / "just_vae.safetensors")
    for name, words in (("just_vae.safetensors", "VAE"), ("broken.safetensors", "")):
        with pytest.raises(NodeExecutionError) as info:
            session.run(txt2img(ckpt=name))
        assert info.value.node_id == "ckpt" and info.value.exception.input == "ckpt_name"
        assert words in str(info.value.exception)


def test_models_are_tracked_and_freed(session):
    """Loaded modules are registered with the memory manager; FreeMemory empties it and the cache."""
    graph = txt2img()
    session.run(graph)
    names = {m["name"] for m in session.memory.stats()["models"]}
    assert {"tiny.safetensors:unet", "tiny.safetensors:vae", "tiny.safetensors:text encoder"} <= names
    graph["nodes"]["free"] = {"type": "FreeMemory", "inputs": {"value": link("decode", "image")}}
    graph["nodes"]["show"] = {"type": "ShowValue", "inputs": {"value": link("free", "value")}}
    session.run(graph)
    import gc

    gc.collect()
    assert session.memory.stats()["models"] == []
    assert "ckpt" in session.run(txt2img(), outputs=["decode"]).executed   # the checkpoint left the cache too


def test_repeated_runs_do_not_grow_memory(session):
    """Ten runs without caching leave at most one generation of models tracked (weak references)."""
    import gc

    session.set_cache_policy("none")
    for seed in range(10):
        graph = txt2img()
        graph["nodes"]["k"]["inputs"]["seed"] = seed
        session.run(graph)
    gc.collect()
    assert len(session.memory.stats()["models"]) <= 3


def test_text_encoder_alone_and_sdxl_node_refuses_sd1(session):
    """LoadTextEncoder gives a working TEXT_ENCODER; EncodeTextSDXL refuses an SD1 encoder with a clear error."""
    graph = {"format_version": 1, "nodes": {
        "te": {"type": "LoadTextEncoder", "inputs": {"ckpt_name": "tiny.safetensors"}},
        "enc": {"type": "EncodeText", "inputs": {"text_encoder": link("te", "text_encoder"),
                                                 "text": "a (red:1.3) circle " * 40}},
        "show": {"type": "ShowValue", "inputs": {"value": link("enc", "conditioning")}}}}
    context = session.run(graph).outputs["show"]["value"]["context"]
    assert context.shape[0] == 1 and context.shape[1] % 77 == 0 and context.shape[1] > 77   # long prompt: chunks
    graph["nodes"]["enc"]["type"] = "EncodeTextSDXL"
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph)
    assert info.value.exception.input == "text_encoder"


def _write_lora(path, module: str, shape=(32, 32), rank=4, seed=0):
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    key = "lora_unet_" + module.replace(".", "_")
    save_file({f"{key}.lora_down.weight": torch.randn(rank, shape[1], generator=generator),
               f"{key}.lora_up.weight": torch.randn(shape[0], rank, generator=generator),
               f"{key}.alpha": torch.tensor(float(rank))}, str(path))


def test_lora_node_patches_variants_without_touching_the_base(session, models_dir):
    """LoadLoRA changes the result; strength 0 and the base model afterwards give the base result."""
    (models_dir / "loras").mkdir(exist_ok=True)
    _write_lora(models_dir / "loras" / "style.safetensors", "input_blocks.1.1.transformer_blocks.0.attn1.to_q")

    def graph(strength=None):
        g = txt2img()
        del g["nodes"]["save"]
        g["nodes"]["show"] = {"type": "ShowValue", "inputs": {"value": link("k", "latent")}}
        if strength is not None:
            g["nodes"]["lora"] = {"type": "LoadLoRA", "inputs": {
                "model": link("ckpt", "model"), "text_encoder": link("ckpt", "text_encoder"),
                "lora_name": "style.safetensors", "strength_model": strength, "strength_text": 1.0}}
            g["nodes"]["k"]["inputs"]["model"] = link("lora", "model")
            g["nodes"]["r"] = {"type": "ShowValue", "inputs": {"value": link("lora", "report")}}
        return g

    base = session.run(graph()).outputs["show"]["value"]["samples"]
    out = session.run(graph(1.0)).outputs
    assert not torch.allclose(out["show"]["value"]["samples"], base)
    assert "patched 1 of 1 modules" in out["r"]["value"]
    zero = session.run(graph(0.0)).outputs["show"]["value"]["samples"]
    assert torch.equal(zero, base)
    session.clear_cache()
    again = session.run(graph()).outputs["show"]["value"]["samples"]
    assert torch.equal(again, base)


def test_lora_that_fits_nothing_is_a_clear_error(session, models_dir):
    """A LoRA for other module names fails on lora_name, naming the problem."""
    (models_dir / "loras").mkdir(exist_ok=True)
    _write_lora(models_dir / "loras" / "other.safetensors", "input_blocks.7.1.transformer_blocks.0.attn1.to_q",
                shape=(640, 640))
    g = txt2img()
    g["nodes"]["lora"] = {"type": "LoadLoRA", "inputs": {"model": link("ckpt", "model"),
                                                        "text_encoder": link("ckpt", "text_encoder"),
                                                        "lora_name": "other.safetensors"}}
    g["nodes"]["k"]["inputs"]["model"] = link("lora", "model")
    with pytest.raises(NodeExecutionError) as info:
        session.run(g)
    assert info.value.node_id == "lora" and info.value.exception.input == "lora_name"


def test_out_of_memory_on_load_frees_and_retries_once(session, monkeypatch):
    """A load that runs out of memory frees the cache and retries; a second failure is a clear error."""
    import nodes.models.loading as loading

    real = loading.load_checkpoint
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise MemoryError("simulated")
        return real(*args, **kwargs)

    monkeypatch.setattr(loading, "load_checkpoint", flaky)
    session.run(txt2img())
    assert len(calls) == 2
    monkeypatch.setattr(loading, "load_checkpoint", lambda *a, **k: (_ for _ in ()).throw(MemoryError("again")))
    session.clear_cache()
    with pytest.raises(NodeExecutionError) as info:
        session.run(txt2img())
    assert info.value.exception_type == "ModelMemoryError" and "after freeing" in str(info.value.exception)


def test_vae_encode_for_inpaint(session, tmp_path):
    """VAEEncodeForInpaint grows the mask, carries it in the latent, and KSampler then samples only there."""
    from PIL import Image

    (tmp_path / "in").mkdir(exist_ok=True)
    rgba = Image.new("RGBA", (32, 32), (200, 30, 30, 255))
    rgba.paste((0, 0, 0, 0), (16, 0, 32, 32))            # right half transparent = to inpaint
    rgba.save(tmp_path / "in" / "half.png")
    session.input_dir = session.services["input_dir"] = tmp_path / "in"
    graph = txt2img()
    graph["nodes"]["load"] = {"type": "LoadImage", "inputs": {"image": "half.png"}}
    graph["nodes"]["enc"] = {"type": "VAEEncodeForInpaint", "inputs": {
        "vae": link("ckpt", "vae"), "image": link("load", "image"), "mask": link("load", "mask"), "grow_mask_by": 4}}
    graph["nodes"]["k"]["inputs"]["latent"] = link("enc", "latent")
    graph["nodes"]["show"] = {"type": "ShowValue", "inputs": {"value": link("enc", "latent")}}
    out = session.run(graph).outputs
    mask = out["show"]["value"]["noise_mask"]
    assert mask.shape == (1, 32, 32) and mask[0, :, 12:].min() == 1 and mask[0, :, :11].max() == 0
    assert out["save"]["files"]


def test_a_link_that_points_nowhere_is_named_as_such_and_folders_are_listed_once(tmp_path):
    """A model linked from an unmounted disk was "no file 'x'. Did you mean …"; and a folder that --model-paths names
    again was searched and listed twice ("Looked in: models/embeddings, …, models/embeddings")."""
    from nodegraph import Session
    from nodegraph.model_paths import ModelPaths

    folder = tmp_path / "models" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "gone.safetensors").symlink_to(tmp_path / "unmounted" / "model.safetensors")
    paths = ModelPaths(roots=[tmp_path / "models"], extra={"checkpoints": [folder, tmp_path / "other"]})
    assert paths.directories("checkpoints") == [folder, tmp_path / "other"]
    session = Session(model_paths=paths)
    graph = {"format_version": 2, "nodes": {
        "c": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "gone.safetensors"}},
        "m": {"type": "ShowValue", "inputs": {"value": {"node": "c", "output": "model"}}}}}
    (error,) = [e for e in session.validate(graph) if e.node_id == "c"]
    assert "link that points nowhere" in error.message and error.details["dangling_link"]
    graph["nodes"]["c"]["inputs"]["ckpt_name"] = "absent.safetensors"
    (error,) = [e for e in session.validate(graph) if e.node_id == "c"]
    assert "points nowhere" not in error.message and error.details["searched"] == ["models/checkpoints", "other"]


def test_a_large_batch_goes_through_the_vae_in_slices_that_can_be_interrupted(session, monkeypatch):
    """A batch of 4,096 small images was decoded in one call: 16 GB of activations, and no interrupt until it
    ended. Slices of at most VAE_CHUNK_PIXELS give the same images, and an interrupt stops between slices."""
    from nodegraph import RunInterrupted, api
    from nodegraph.node import NodeContext
    from nodes.models import nodes as model_nodes

    torch.manual_seed(0)
    vae = AutoencoderKL(TINY_VAE).eval()
    latent = {"samples": torch.randn(5, TINY_VAE.z_channels, 4, 4)}
    context = NodeContext("d", "VAEDecode", lambda *a: None, lambda node_id: None, session.services)
    whole = api.vae_decode(context, vae, latent)
    image_pixels = 16 * vae.config.downscale ** 2
    monkeypatch.setattr(model_nodes, "VAE_CHUNK_PIXELS", 2 * image_pixels)    # slices of 2, 2 and 1
    assert torch.allclose(api.vae_decode(context, vae, latent), whole, atol=1e-6)
    encoded = api.vae_encode(context, vae, whole)["samples"]
    assert encoded.shape == latent["samples"].shape
    monkeypatch.setattr(model_nodes, "VAE_CHUNK_PIXELS", 1 << 40)
    assert torch.allclose(api.vae_encode(context, vae, whole)["samples"], encoded, atol=1e-5)

    monkeypatch.setattr(model_nodes, "VAE_CHUNK_PIXELS", 2 * image_pixels)
    checks = []

    def interrupt_on_second(node_id):
        checks.append(node_id)
        if len(checks) == 2:
            raise RunInterrupted(node_id)

    stopping = NodeContext("d", "VAEDecode", lambda *a: None, interrupt_on_second, session.services)
    with pytest.raises(RunInterrupted):
        api.vae_decode(stopping, vae, latent)
    assert len(checks) == 2
