"""Loader errors name the calling loader's own fix (findings of a user bringing real SD models): a family nothing
tells, a UNet-only or VAE-less file in checkpoints/, hostile config sizes, odd prediction types, embedding widths."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from nodegraph import NodeExecutionError, NodeInputError, Session
from nodegraph.model_paths import ModelPaths
from nodes.models.clip import CLIPTextModel, PromptEncoder
from nodes.models.controlnet import ControlNet, ControlNetConfig
from nodes.models.detect import ModelLoadError, decide_prediction
from nodes.models.embeddings import TextualInversion
from nodes.models.loading import load_checkpoint, load_controlnet, save_checkpoint
from nodes.models.unet import TINY, UNetConfig, UNetModel

from .conftest import TINY_CLIP


def _without_metadata(path: Path) -> Path:
    """Write `path` again with its tensors only: nothing in it names the family any more."""
    with safe_open(str(path), "pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    save_file(tensors, str(path))
    return path


def _run_loader(root: Path, node: dict) -> NodeInputError:
    session = Session(model_paths=ModelPaths(roots=[root]), output_dir=root / "out")
    with pytest.raises(NodeExecutionError) as failed:
        session.run({"format_version": 1, "nodes": {"load": node}}, outputs=["load"])
    assert isinstance(failed.value.exception, NodeInputError)
    return failed.value.exception


def test_a_unet_only_file_in_checkpoints_is_told_to_move_to_models_unet(tmp_path):
    """A UNet-only file of a custom width in checkpoints/ was told to use "LoadUNet's family input", which
    LoadCheckpoint has not: it is now told to move the file to models/unet and load it with LoadUNet."""
    (tmp_path / "checkpoints").mkdir()
    path = tmp_path / "checkpoints" / "unet_only.safetensors"
    save_checkpoint(path, family="sd1", unet=UNetModel(replace(TINY, context_dim=64)))
    _without_metadata(path)
    error = _run_loader(tmp_path, {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "unet_only.safetensors"}})
    assert error.input == "ckpt_name" and "move it to models/unet" in str(error) and "LoadUNet" in str(error)
    assert "family input, or" not in str(error)


def test_a_checkpoint_without_a_vae_says_loadunet_reads_models_unet(tmp_path):
    """"has no vae; load the parts separately (LoadUNet / …)" left out that LoadUNet only looks in models/unet."""
    (tmp_path / "checkpoints").mkdir()
    encoder = PromptEncoder({"clip_l": CLIPTextModel(TINY_CLIP)}, pooled_from="clip_l")
    save_checkpoint(tmp_path / "checkpoints" / "novae.safetensors", family="sd1",
                    unet=UNetModel(replace(TINY, context_dim=64)), text_encoder=encoder)
    error = str(_run_loader(tmp_path, {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "novae.safetensors"}}))
    assert "has no vae" in error and "LoadUNet, which reads models/unet: move or copy the file there" in error
    assert "a VAE from another file (LoadVAE)" in error and "LoadTextEncoder, which reads models/checkpoints" in error


def _tiny_controlnet() -> ControlNet:
    unet = UNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1, transformer_depth=(0, 1),
                      context_dim=32, num_heads=8)
    torch.manual_seed(0)
    return ControlNet(ControlNetConfig(unet, hint_widths=(16, 32))).eval()


def test_a_controlnet_of_unknown_family_takes_loadcontrolnets_own_family_input(tmp_path):
    """A custom-width ControlNet without metadata pointed at "LoadUNet's family input"; LoadControlNet now has
    its own `family` input, named in the error, and choosing sd1 there loads the file."""
    from nodes.models.loading import save_controlnet

    (tmp_path / "controlnet").mkdir()
    path = tmp_path / "controlnet" / "custom.safetensors"
    net = _tiny_controlnet()
    save_controlnet(path, net)
    _without_metadata(path)
    with pytest.raises(ModelLoadError, match="LoadControlNet's family input"):
        load_controlnet(path)
    error = _run_loader(tmp_path, {"type": "LoadControlNet", "inputs": {"control_net_name": "custom.safetensors"}})
    assert "LoadControlNet's family input" in str(error) and "LoadUNet" not in str(error)
    session = Session(model_paths=ModelPaths(roots=[tmp_path]), output_dir=tmp_path / "out")
    loaded = session.run({"format_version": 1, "nodes": {"load": {"type": "LoadControlNet", "inputs": {
        "control_net_name": "custom.safetensors", "family": "sd1"}}}}, outputs=["load"]).outputs["load"]["control_net"]
    assert loaded.config.unet.num_heads == 8
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_a_size_past_what_torch_can_count_is_the_loaders_error_not_torchs(tmp_path):
    """model_channels 1e9 in the metadata raised torch's bare "Storage size calculation overflowed"; it is now
    the error 40000 already got: far larger than the file, damaged or crafted, naming the file."""
    path = tmp_path / "crafted.safetensors"
    save_checkpoint(path, family="sd1", unet=UNetModel(replace(TINY, context_dim=64)))
    with safe_open(str(path), "pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    crafted = {"family": "sd1", "unet": {"model_channels": 10**9}}
    save_file(tensors, str(path), metadata={"nodegraph.config": json.dumps(crafted)})
    with pytest.raises(ModelLoadError, match="far larger than the file.*damaged or crafted") as caught:
        load_checkpoint(path, components=("unet",))
    assert "crafted.safetensors" in str(caught.value)


def test_an_unknown_prediction_type_in_the_metadata_names_the_prediction_input():
    """modelspec.prediction_type "sample" was refused with no fix; the loader's prediction input overrides it."""
    with pytest.raises(ValueError, match="prediction input to eps or v") as caught:
        decide_prediction(None, {}, {"modelspec.prediction_type": "sample"}, [])
    assert "'sample'" in str(caught.value)
    assert decide_prediction("eps", {}, {"modelspec.prediction_type": "sample"}, [])[0] == "eps"


def test_an_a1111_embedding_of_the_wrong_width_does_not_print_its_role_key():
    """A1111 files keep their vectors under the key "*", which the message printed as text ("vectors * 768-wide")."""
    embedding = TextualInversion("EasyNegative", {"*": torch.zeros(2, 768)})
    with pytest.raises(ValueError) as caught:
        embedding.for_encoder("clip_l", 64)
    assert "has vectors 768-wide (made for SD 1.x (CLIP-L))" in str(caught.value) and "*" not in str(caught.value)
