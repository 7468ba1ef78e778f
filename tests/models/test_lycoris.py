"""LyCORIS networks in LoadLoRA: LoHa, LoKr, LoCon's CP-decomposed lora_mid and DoRA, checked against peft's merged
weights (peft implements LoHa / LoKr / DoRA after LyCORIS), and LoRAs that can only partly be applied are refused."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from nodes.models.detect import ModelLoadError
from nodes.models.lora import LokrPatch, apply_loras, load_lora, lora_from_state_dict, remove_loras
from nodes.models.unet import UNetConfig, UNetModel

peft = pytest.importorskip("peft")

# Our module name -> what it is: non-square Linears, a 3x3 conv that widens, a 1x1 conv.
TARGETS = (
    "input_blocks.1.1.transformer_blocks.0.ff.net.0.proj",  # Linear (256, 32)
    "input_blocks.1.1.transformer_blocks.0.attn2.to_k",  # Linear (32, 16)
    "input_blocks.4.0.in_layers.2",  # Conv2d (64, 32, 3, 3)
    "input_blocks.4.0.skip_connection",  # Conv2d (64, 32, 1, 1)
)
PEFT_TO_KOHYA = {"lora_A.weight": "lora_down.weight", "lora_B.weight": "lora_up.weight"}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def unet() -> UNetModel:
    torch.manual_seed(0)
    config = UNetConfig(model_channels=32, channel_mult=(1, 2), transformer_depth=(1, 0), transformer_depth_middle=0,
                        context_dim=16, num_heads=2)
    return UNetModel(config).eval()


def _peft_reference(module: nn.Module, config, seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """peft's adapter on a copy of `module` with random weights: (its parts as peft names them, its merged weight)."""
    holder = nn.Module()
    holder.layer = copy.deepcopy(module)
    model = peft.get_peft_model(holder, replace(config, target_modules=["layer"]))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "magnitude" in name:  # DoRA's m: positive, and not the initial ‖W‖ (that would test nothing)
                parameter.copy_(0.5 + torch.rand(parameter.shape, generator=generator))
            elif any(part in name for part in ("hada_", "lokr_", "lora_")):
                parameter.copy_(0.2 * torch.randn(parameter.shape, generator=generator))
    parts = {key.removeprefix("base_model.model.layer."): tensor.detach().clone()
             for key, tensor in peft.get_peft_model_state_dict(model).items()}
    merged = model.merge_and_unload().layer.weight.detach().clone()
    return parts, merged


def _lycoris_file(path, adapters: dict[str, dict[str, torch.Tensor]], alpha: float, layout: str = "lycoris"):
    """The adapters in the kohya / LyCORIS layout (lora_unet_<name>.<part>, .alpha, DoRA as .dora_scale (out, 1...));
    layout "peft" keeps peft's names and shapes under ComfyUI's diffusion_model.<name> prefix, with the alpha in
    diffusers' adapter metadata."""
    state = {}
    if layout == "peft":
        for name, parts in adapters.items():
            state |= {f"diffusion_model.{name}.{part}": tensor for part, tensor in parts.items()}
        save_file(state, str(path), metadata={"lora_adapter_metadata": json.dumps({"unet.lora_alpha": alpha})})
        return
    for name, parts in adapters.items():
        stem = "lora_unet_" + name.replace(".", "_")
        for part, tensor in parts.items():
            if part == "lora_magnitude_vector":  # peft: (out,) or (1, out, 1, 1); LyCORIS wd_on_out: (out, 1[, 1, 1])
                shape = (-1, 1) if tensor.ndim == 1 else (-1, 1, 1, 1)
                state[f"{stem}.dora_scale"] = tensor.reshape(shape)
            else:
                state[f"{stem}.{PEFT_TO_KOHYA.get(part, part)}"] = tensor.contiguous()
        state[f"{stem}.alpha"] = torch.tensor(alpha)
    save_file(state, str(path))


PEFT_CONFIGS = {  # id -> (peft config, alpha); target_modules is filled in per module
    "loha": (lambda: peft.LoHaConfig(r=4, alpha=3, target_modules=["layer"], init_weights=False), 3.0),
    "loha-cp-conv": (lambda: peft.LoHaConfig(r=4, alpha=6, target_modules=["layer"], use_effective_conv2d=True,
                                              init_weights=False), 6.0),
    "lokr": (lambda: peft.LoKrConfig(r=2, alpha=3, target_modules=["layer"], init_weights=False), 3.0),
    "lokr-both-factorised": (lambda: peft.LoKrConfig(r=1, alpha=2, target_modules=["layer"], decompose_both=True,
                                                     init_weights=False), 2.0),
    "lokr-cp-conv": (lambda: peft.LoKrConfig(r=2, alpha=5, target_modules=["layer"], use_effective_conv2d=True,
                                             init_weights=False), 5.0),
    "dora": (lambda: peft.LoraConfig(r=4, lora_alpha=8, target_modules=["layer"], use_dora=True,
                                     init_lora_weights=False), 8.0),
}


@pytest.mark.parametrize("network", sorted(PEFT_CONFIGS))
def test_lycoris_file_patches_the_weights_peft_merges(unet, tmp_path, network):
    """A LoHa / LoKr / DoRA file in the LyCORIS layout gives peft's merged weight on every Linear and conv."""
    make_config, alpha = PEFT_CONFIGS[network]
    adapters, expected = {}, {}
    for seed, name in enumerate(TARGETS):
        adapters[name], expected[name] = _peft_reference(unet.get_submodule(name), make_config(), seed)
    if network == "loha-cp-conv":
        assert "hada_t1" in adapters["input_blocks.4.0.in_layers.2"]  # the CP form is really exercised
    if network == "lokr-cp-conv":
        assert "lokr_t2" in adapters["input_blocks.4.0.in_layers.2"]
    path = tmp_path / f"{network}.safetensors"
    _lycoris_file(path, adapters, alpha)
    original = {name: unet.get_submodule(name).weight.clone() for name in TARGETS}

    (report,) = apply_loras(unet, [(load_lora(path), 1.0)])
    assert report.complete and len(report.patched) == len(TARGETS), report.summary()
    for name in TARGETS:
        torch.testing.assert_close(unet.get_submodule(name).weight, expected[name], atol=1e-5, rtol=1e-5,
                                   msg=lambda m, name=name: f"{name}: {m}")
    remove_loras(unet)
    for name in TARGETS:
        assert torch.equal(unet.get_submodule(name).weight, original[name])


def test_dora_in_peft_layout_and_at_half_strength(unet, tmp_path):
    """peft's own names (lora_A / lora_B / lora_magnitude_vector, conv m (1, out, 1, 1)) read the same; strength s
    moves the weight the fraction s of the way to the DoRA weight (ComfyUI's weight_decompose)."""
    make_config, _ = PEFT_CONFIGS["dora"]
    adapters, expected = {}, {}
    for seed, name in enumerate(TARGETS):
        adapters[name], expected[name] = _peft_reference(unet.get_submodule(name), make_config(), seed)
    path = tmp_path / "dora_peft.safetensors"
    _lycoris_file(path, adapters, 8.0, layout="peft")
    original = {name: unet.get_submodule(name).weight.clone() for name in TARGETS}
    lora = load_lora(path)

    apply_loras(unet, [(lora, 1.0)])
    for name in TARGETS:
        torch.testing.assert_close(unet.get_submodule(name).weight, expected[name], atol=1e-5, rtol=1e-5)
    apply_loras(unet, [(lora, 0.5)])
    for name in TARGETS:
        halfway = original[name] + 0.5 * (expected[name] - original[name])
        torch.testing.assert_close(unet.get_submodule(name).weight, halfway, atol=1e-5, rtol=1e-5)


def test_dora_scale_per_input_channel_gives_each_input_column_its_magnitude(unet, tmp_path):
    """A LyCORIS dora_scale of shape (1, in[, 1, 1]) normalises per input channel: each column's norm becomes m."""
    generator = torch.Generator().manual_seed(3)
    state, magnitudes = {}, {}
    for name in ("input_blocks.1.1.transformer_blocks.0.attn2.to_k", "input_blocks.4.0.in_layers.2"):
        weight = unet.get_submodule(name).weight
        stem = "lora_unet_" + name.replace(".", "_")
        magnitudes[name] = 0.5 + torch.rand((1, weight.shape[1], *([1] * (weight.ndim - 2))), generator=generator)
        state |= {f"{stem}.lora_down.weight": 0.2 * torch.randn((4, *weight.shape[1:]), generator=generator),
                  f"{stem}.lora_up.weight": 0.2 * torch.randn((weight.shape[0], 4, *([1] * (weight.ndim - 2))),
                                                              generator=generator),
                  f"{stem}.alpha": torch.tensor(4.0), f"{stem}.dora_scale": magnitudes[name]}
    save_file(state, str(tmp_path / "dora_in.safetensors"))

    apply_loras(unet, [(load_lora(tmp_path / "dora_in.safetensors"), 1.0)])
    for name, magnitude in magnitudes.items():
        weight = unet.get_submodule(name).weight
        column_norms = weight.transpose(0, 1).flatten(1).norm(dim=1)
        torch.testing.assert_close(column_norms, magnitude.flatten(), atol=1e-5, rtol=1e-5)


def test_locon_cp_lora_mid_equals_running_down_mid_up_as_convs(unet, tmp_path):
    """LoCon's CP form (1x1 lora_down, kxk lora_mid, 1x1 lora_up) patches the conv so that it computes exactly
    what LyCORIS' bypass forward computes: conv(x, W0) + scale · up(mid(down(x)))."""
    name = "input_blocks.4.0.in_layers.2"  # Conv2d(32 -> 64, 3x3, padding 1)
    conv = unet.get_submodule(name)
    generator = torch.Generator().manual_seed(4)
    down = 0.2 * torch.randn(4, 32, 1, 1, generator=generator)
    mid = 0.2 * torch.randn(4, 4, 3, 3, generator=generator)
    up = 0.2 * torch.randn(64, 4, 1, 1, generator=generator)
    stem = "lora_unet_" + name.replace(".", "_")
    save_file({f"{stem}.lora_down.weight": down, f"{stem}.lora_mid.weight": mid, f"{stem}.lora_up.weight": up,
               f"{stem}.alpha": torch.tensor(2.0)}, str(tmp_path / "locon_cp.safetensors"))
    x = torch.randn(2, 32, 8, 8, generator=generator)
    expected = F.conv2d(x, conv.weight, padding=1) + (2.0 / 4) * F.conv2d(
        F.conv2d(F.conv2d(x, down), mid, padding=1), up)

    (report,) = apply_loras(unet, [(load_lora(tmp_path / "locon_cp.safetensors"), 1.0)])
    assert report.complete, report.summary()
    torch.testing.assert_close(F.conv2d(x, conv.weight, padding=1), expected, atol=1e-5, rtol=1e-5)


def test_lokr_with_both_sides_whole_is_not_scaled_by_alpha():
    """LyCORIS stores alpha = rank when neither LoKr side is factorised ("use scale = 1"): the alpha is not used."""
    lora = lora_from_state_dict({"lora_unet_x.lokr_w1": torch.randn(2, 2), "lora_unet_x.lokr_w2": torch.randn(3, 3),
                                 "lora_unet_x.alpha": torch.tensor(7.0)})
    patch = lora.patches["unet"]["x"]
    assert isinstance(patch, LokrPatch) and patch.scale == 1.0 and patch.update_shape == (6, 6)


@pytest.mark.parametrize(("parts", "reason"), [
    ({"hada_w1_a": (8, 4), "hada_w1_b": (4, 8), "hada_w2_a": (8, 4), "alpha": ()}, "incomplete LoHa: no hada_w2_b"),
    ({"hada_w1_a": (8, 4), "hada_w1_b": (4, 8), "hada_w2_a": (8, 2), "hada_w2_b": (4, 8)}, "malformed LoHa"),
    ({"lokr_w1": (2, 2), "lokr_w2_a": (4, 2)}, "incomplete LoKr: give lokr_w2, or lokr_w2_a with lokr_w2_b"),
    ({"lora_down.weight": (4, 8), "lora_up.weight": (8, 4), "hada_w1_a": (8, 4)}, "mixes LoRA and LoHa"),
    ({"alpha": ()}, "incomplete: only an alpha"),
    ({"lora_down.weight": (4, 8), "lora_up.weight": (8, 4), "w_norm": (8,)}, "unknown part .w_norm"),
])
def test_modules_that_cannot_be_applied_name_why(parts, reason):
    """Incomplete, mixed, malformed and unknown LyCORIS parts are named per module (never 'no lora_down weight')."""
    state = {f"lora_unet_x.{part}": torch.randn(shape) if shape else torch.tensor(4.0) for part, shape in parts.items()}
    state |= {"lora_unet_y.lora_down.weight": torch.randn(4, 8), "lora_unet_y.lora_up.weight": torch.randn(8, 4)}
    lora = lora_from_state_dict(state)
    assert reason in lora.unsupported["unet"]["x"] and "y" in lora.patches["unet"]


def test_a_lora_that_only_partly_applies_is_refused_and_changes_nothing(unet, tmp_path):
    """One LoHa module with a missing part among good ones: apply_loras raises naming it, leaving every weight."""
    name = "input_blocks.1.1.transformer_blocks.0.attn2.to_k"
    stem = "lora_unet_" + name.replace(".", "_")
    good = "lora_unet_input_blocks_1_1_transformer_blocks_0_ff_net_0_proj"
    save_file({f"{good}.lora_down.weight": torch.randn(4, 32), f"{good}.lora_up.weight": torch.randn(256, 4),
               f"{stem}.hada_w1_a": torch.randn(32, 4), f"{stem}.hada_w1_b": torch.randn(4, 16),
               f"{stem}.alpha": torch.tensor(4.0)}, str(tmp_path / "half.safetensors"))
    before = {key: value.clone() for key, value in unet.state_dict().items()}

    with pytest.raises(ModelLoadError, match=r"1 of this LoRA's 2 modules .*attn2_to_k: incomplete LoHa: no "
                                             r"hada_w2_a, hada_w2_b\).*none is applied"):
        apply_loras(unet, [(load_lora(tmp_path / "half.safetensors"), 1.0)])
    assert all(torch.equal(value, before[key]) for key, value in unet.state_dict().items())


@pytest.fixture
def session(tmp_path):
    """A Session over models/ with a tiny SD1-layout checkpoint (as in test_model_nodes.py) and an empty loras/."""
    from nodegraph import Session
    from nodegraph.model_paths import ModelPaths
    from nodes.models.clip import CLIPTextModel, PromptEncoder
    from nodes.models.loading import save_checkpoint
    from nodes.models.unet import TINY
    from nodes.models.vae import TINY_VAE, AutoencoderKL

    from .conftest import TINY_CLIP

    torch.manual_seed(0)
    root = tmp_path / "models"
    (root / "checkpoints").mkdir(parents=True)
    (root / "loras").mkdir()
    encoder = PromptEncoder({"clip_l": CLIPTextModel(TINY_CLIP)}, pooled_from="clip_l")
    save_checkpoint(root / "checkpoints" / "tiny.safetensors", family="sd1", unet=UNetModel(TINY),
                    vae=AutoencoderKL(TINY_VAE), text_encoder=encoder)
    return Session(model_paths=ModelPaths(roots=[root]), output_dir=tmp_path / "out")


def _lora_graph(lora_name: str) -> dict:
    link = lambda node, output: {"node": node, "output": output}  # noqa: E731
    return {"format_version": 1, "nodes": {
        "ckpt": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny.safetensors"}},
        "lora": {"type": "LoadLoRA", "inputs": {"model": link("ckpt", "model"), "lora_name": lora_name,
                                                "text_encoder": link("ckpt", "text_encoder")}},
        "report": {"type": "ShowValue", "inputs": {"value": link("lora", "report")}}}}


def test_load_lora_node_applies_a_loha_and_fails_on_one_it_can_only_partly_apply(session, tmp_path):
    """Through LoadLoRA a LoHa patches its module; a file with one module it cannot apply is a node failure on
    lora_name naming that module, not a warning under a different picture."""
    from nodegraph import NodeExecutionError

    loras = tmp_path / "models" / "loras"
    stem = "lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q"  # Linear (32, 32) in TINY
    loha = {f"{stem}.hada_w1_a": torch.randn(32, 2), f"{stem}.hada_w1_b": torch.randn(2, 32),
            f"{stem}.hada_w2_a": torch.randn(32, 2), f"{stem}.hada_w2_b": torch.randn(2, 32),
            f"{stem}.alpha": torch.tensor(1.0)}
    save_file(loha, str(loras / "loha.safetensors"))
    report = session.run(_lora_graph("loha.safetensors")).outputs["report"]["value"]
    assert "patched 1 of 1 modules" in report

    other = "lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_k"
    save_file({**loha, f"{other}.oft_blocks": torch.randn(4, 8, 8)}, str(loras / "mixed.safetensors"))
    with pytest.raises(NodeExecutionError) as info:
        session.run(_lora_graph("mixed.safetensors"))
    assert info.value.node_id == "lora" and info.value.exception.input == "lora_name"
    assert "attn1_to_k: LyCORIS OFT / BOFT / GLoRA is not supported" in str(info.value)
