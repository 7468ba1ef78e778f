"""FP8-stored weights: load, run, memory, accuracy against fp32, FP8 files, LoRA on FP8, and the loader node.

Tolerances are on the relative RMS error ||out - fp32|| / ||fp32|| (``rms_error``), measured on the
shipped tiny model (docs/models.md "Weights in FP8"): bf16 0.4 %, FP8 e4m3 (3 mantissa bits) 1.7 %,
e5m2 (2 bits) 2.9 %; the tests allow 0.06 (e4m3) and 0.12 (e5m2), twice that for the random-weight
SD1-structured UNet of conftest, whose untrained layers amplify rounding (measured 9 % / 17 %).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from nodegraph import Session
from nodegraph.model_paths import ModelPaths
from nodes.models.flux import FluxConfig, FluxModel, load_flux, save_flux
from nodes.models.loading import load_checkpoint, load_unet, save_checkpoint
from nodes.models.lora import apply_loras, load_lora, remove_loras
from nodes.models.precision import (
    WeightStorage,
    narrow_weight_names,
    resident_bytes,
    store_weights,
    stored_dtype,
    to_float8,
)




def rms_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """||ours - reference|| / ||reference|| (relative RMS error)."""
    return ((ours.float() - reference.float()).norm() / reference.float().norm()).item()

torch.set_num_threads(1)
TINY_WORLD = Path(__file__).resolve().parents[2] / "models" / "checkpoints" / "tiny_world.safetensors"
TOLERANCE = {torch.float8_e4m3fn: 0.06, torch.float8_e5m2: 0.12}
FP8 = list(TOLERANCE)


def _unet_inputs(unet, seed=0, size=16):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(2, unet.config.in_channels, size, size, generator=generator)
    context = torch.randn(2, 77, unet.config.context_dim, generator=generator)
    return x, torch.tensor([50.0, 700.0]), context


@pytest.fixture(scope="module")
def tiny_world_fp32():
    return load_checkpoint(TINY_WORLD, dtype=torch.float32)


@pytest.mark.parametrize("storage", FP8, ids=["e4m3fn", "e5m2"])
@torch.no_grad()
def test_shipped_model_in_fp8_loads_runs_and_is_close(tiny_world_fp32, storage):
    """The shipped tiny model stored in FP8 runs on the CPU, within tolerance of fp32, in <= 0.55x bf16 memory."""
    fp8 = load_checkpoint(TINY_WORLD, dtype=storage, components=("unet", "text_encoder"))
    bf16 = load_checkpoint(TINY_WORLD, dtype=torch.bfloat16, components=("unet",))
    assert stored_dtype(fp8.unet) == storage and fp8.unet.dtype == torch.float32   # computes in fp32 on the CPU
    assert resident_bytes(fp8.unet) <= 0.55 * resident_bytes(bf16.unet)
    x, t, context = _unet_inputs(fp8.unet)
    reference = tiny_world_fp32.unet(x, t, context)
    assert rms_error(fp8.unet(x, t, context), reference) <= TOLERANCE[storage]
    prompt = "a small red circle on the left, on a blue background"
    ours = fp8.text_encoder.encode(prompt).context
    assert rms_error(ours, tiny_world_fp32.text_encoder.encode(prompt).context) <= TOLERANCE[storage]


@torch.no_grad()
def test_raw_fp8_weights_fail_and_stored_fp8_weights_run():
    """A module cast wholesale to FP8 cannot run (the reported silu error); store_weights makes the same module run."""
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.SiLU(), torch.nn.LayerNorm(16), torch.nn.Linear(16, 4))
    x = torch.randn(3, 8)
    expected = module(x)
    with pytest.raises((RuntimeError, NotImplementedError)):
        copy.deepcopy(module).to(torch.float8_e4m3fn)(x.to(torch.float8_e4m3fn))
    stored = store_weights(copy.deepcopy(module), torch.float8_e4m3fn, torch.float32)
    assert narrow_weight_names(stored) == {"0.weight", "3.weight"}
    assert stored[0].weight.dtype == torch.float32 and stored[2].weight.dtype == torch.float32
    assert rms_error(stored(x), expected) <= 0.1
    state = stored.state_dict()   # plain key names, FP8 tensors: saved files are ordinary FP8 files
    assert set(state) == set(module.state_dict()) and state["0.weight"].dtype == torch.float8_e4m3fn
    assert state["0.bias"].dtype == torch.float32


@torch.no_grad()
def test_diffusers_unet_in_fp8_is_close_to_fp32(sd1):
    """An SD1-structured UNet (diffusers reference weights) stored in FP8 is within tolerance of fp32."""
    full = load_unet(sd1.single_file, dtype=torch.float32)
    bf16 = load_unet(sd1.single_file, dtype=torch.bfloat16)
    x, t, context = _unet_inputs(full, seed=1, size=8)
    reference = full(x, t, context)
    errors = {}
    for storage in FP8:
        fp8 = load_unet(sd1.single_file, dtype=storage)
        assert resident_bytes(fp8) <= 0.55 * resident_bytes(bf16)
        errors[storage] = rms_error(fp8(x, t, context), reference)
    bf16_error = rms_error(bf16(x, t, context), reference)
    print(f"random-weight UNet: bf16 {bf16_error:.4f}, " + ", ".join(f"{k} {v:.4f}" for k, v in errors.items()))
    # random weights compound each weight's rounding (RMS 2.6 % e4m3, 5.2 % e5m2) more than trained ones
    assert bf16_error < errors[torch.float8_e4m3fn] <= 2 * TOLERANCE[torch.float8_e4m3fn]
    assert errors[torch.float8_e4m3fn] < errors[torch.float8_e5m2] <= 2 * TOLERANCE[torch.float8_e5m2]


@torch.no_grad()
def test_compute_dtype_is_chosen_per_model(sd1):
    """WeightStorage(fp8, bf16) stores FP8 and computes in bf16, returning the input's dtype."""
    unet = load_unet(sd1.single_file, dtype=WeightStorage(torch.float8_e4m3fn, torch.bfloat16))
    assert unet.dtype == torch.bfloat16 and stored_dtype(unet) == torch.float8_e4m3fn
    x, t, context = _unet_inputs(unet, size=8)
    out = unet(x, t, context)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="float8"):
        WeightStorage(torch.float16)


@torch.no_grad()
def test_fp8_file_loads_as_fp8_and_round_trips(tiny_world_fp32, tmp_path):
    """A checkpoint saved in FP8 loads (dtype=None keeps FP8 storage, computes wider) and saves back bit-exact."""
    fp8 = load_checkpoint(TINY_WORLD, dtype=torch.float8_e4m3fn)
    path = tmp_path / "tiny_fp8.safetensors"
    save_checkpoint(path, family="sd1", unet=fp8.unet, vae=fp8.vae, text_encoder=fp8.text_encoder)
    again = load_checkpoint(path)
    assert stored_dtype(again.unet) == torch.float8_e4m3fn and again.unet.dtype == torch.float32
    for key, tensor in fp8.unet.state_dict().items():
        assert torch.equal(again.unet.state_dict()[key].float(), tensor.float()), key
    x, t, context = _unet_inputs(again.unet, seed=2)
    assert torch.equal(again.unet(x, t, context), fp8.unet(x, t, context))


def test_to_float8_saturates_instead_of_nan():
    """Values beyond FP8's range round to its largest finite value, never NaN."""
    big = torch.tensor([1e6, -1e6, 0.1])
    for storage in FP8:
        out = to_float8(big, storage).float()
        assert torch.isfinite(out).all() and out[0] == torch.finfo(storage).max and out[1] == -out[0]


@torch.no_grad()
def test_lora_patches_fp8_weights_and_removal_restores_them(tmp_path):
    """A LoRA on an FP8-stored UNet changes its output close to the fp32-patched one; removal restores FP8 bits."""
    from safetensors.torch import save_file

    full = load_checkpoint(TINY_WORLD, dtype=torch.float32, components=("unet",)).unet
    fp8 = load_checkpoint(TINY_WORLD, dtype=torch.float8_e4m3fn, components=("unet",)).unet
    name = "output_blocks.5.1.transformer_blocks.0.attn2.to_v"
    weight = full.get_submodule(name).weight
    generator = torch.Generator().manual_seed(3)
    flat = "lora_unet_" + name.replace(".", "_")
    save_file({f"{flat}.lora_down.weight": 0.5 * torch.randn(4, weight.shape[1], generator=generator),
               f"{flat}.lora_up.weight": 0.5 * torch.randn(weight.shape[0], 4, generator=generator),
               f"{flat}.alpha": torch.tensor(4.0)}, str(tmp_path / "lora.safetensors"))
    lora = load_lora(tmp_path / "lora.safetensors")
    before = {k: v.clone() for k, v in fp8.state_dict().items()}
    x, t, context = _unet_inputs(full, seed=4)
    plain = fp8(x, t, context)
    apply_loras(full, [(lora, 1.0)])
    apply_loras(fp8, [(lora, 1.0)])
    patched = fp8(x, t, context)
    assert rms_error(patched, plain) > 1e-3   # the LoRA acted on the FP8 weights
    assert rms_error(patched, full(x, t, context)) <= TOLERANCE[torch.float8_e4m3fn]
    remove_loras(fp8)
    assert all(torch.equal(fp8.state_dict()[k].float(), v.float()) for k, v in before.items())


@torch.no_grad()
def test_flux_in_fp8_runs(tmp_path):
    """A small Flux transformer loads with FP8 storage and stays within tolerance of fp32."""
    torch.manual_seed(0)
    config = FluxConfig(in_channels=16, out_channels=16, vec_in_dim=8, context_in_dim=12, hidden_size=32,
                        num_heads=2, depth=1, depth_single_blocks=2, axes_dim=(4, 6, 6), guidance_embed=True)
    save_flux(tmp_path / "flux.safetensors", FluxModel(config))
    full, fp8 = load_flux(tmp_path / "flux.safetensors"), load_flux(tmp_path / "flux.safetensors",
                                                                   dtype=torch.float8_e4m3fn)
    x, context, y = torch.randn(1, 4, 6, 6), torch.randn(1, 5, 12), torch.randn(1, 8)
    t = torch.tensor([0.6])
    reference = full(x, t, context, y=y, guidance=3.5)
    assert rms_error(fp8(x, t, context, y=y, guidance=3.5), reference) <= TOLERANCE[torch.float8_e4m3fn]


def _graph(weight_dtype: str) -> dict:
    def link(node, output):
        return {"node": node, "output": output}

    return {"format_version": 1, "nodes": {
        "ckpt": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world.safetensors",
                                                      "weight_dtype": weight_dtype}},
        "pos": {"type": "EncodeText", "inputs": {"text_encoder": link("ckpt", "text_encoder"),
                                                 "text": "a small red circle on the left, on a blue background"}},
        "neg": {"type": "EncodeText", "inputs": {"text_encoder": link("ckpt", "text_encoder"), "text": ""}},
        "empty": {"type": "EmptyLatent", "inputs": {"width": 32, "height": 32}},
        "k": {"type": "KSampler", "inputs": {"model": link("ckpt", "model"), "positive": link("pos", "conditioning"),
                                             "negative": link("neg", "conditioning"), "latent": link("empty", "latent"),
                                             "seed": 1, "steps": 6, "cfg": 5.0, "sampler": "euler",
                                             "scheduler": "karras"}},
        "decode": {"type": "VAEDecode", "inputs": {"vae": link("ckpt", "vae"), "latent": link("k", "latent")}},
        "out": {"type": "ShowValue", "inputs": {"value": link("decode", "image")}}}}


def test_loader_node_offers_fp8_and_keeps_the_vae_wide(tmp_path):
    """LoadCheckpoint weight_dtype=fp8_e4m3fn samples an image close to fp32's; its VAE is not FP8."""
    session = Session(model_paths=ModelPaths(roots=[TINY_WORLD.parents[1]]), output_dir=tmp_path)
    images = {}
    for choice in ("fp32", "fp8_e4m3fn"):
        result = session.run(_graph(choice))
        images[choice] = result.outputs["out"]["value"]
    assert images["fp8_e4m3fn"].shape == images["fp32"].shape
    assert (images["fp8_e4m3fn"] - images["fp32"]).abs().mean() < 0.05
