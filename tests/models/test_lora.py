"""LoRA: exact patch arithmetic, stacking and removal, file formats, parity with diffusers / peft, mismatch reports."""

import copy
import json
import re

import pytest
import torch
from safetensors.torch import load_file, save_file

from nodes.models.clip import CLIP_L, CLIPTextModel, PromptEncoder
from nodes.models.convert import unet_from_diffusers
from nodes.models.detect import ModelLoadError
from nodes.models.loading import load_checkpoint, load_unet
from nodes.models.lora import (
    ORIGINAL_ATTRIBUTE,
    apply_loras,
    diffusers_unet_names,
    load_lora,
    remove_loras,
)

from .conftest import max_relative_error


pytestmark = pytest.mark.usefixtures("one_thread")


# Random LoRA entries: {(target, our module name): (down, up, alpha)}; our names are LDM / HF names.
Entries = dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor, float]]


def _load(sd1, dtype=None):
    checkpoint = load_checkpoint(sd1.single_file, components=("unet", "text_encoder"), dtype=dtype)
    return checkpoint.unet, checkpoint.text_encoder


def _patchable(module: torch.nn.Module) -> dict[str, torch.nn.Module]:
    return {n: m for n, m in module.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))}


def _random_entries(unet, text_encoder, seed: int, rank: int = 4, alpha: float | None = None) -> Entries:
    """A LoRA over every Linear / Conv2d of the UNet (LoCon convs included) and every CLIP block Linear."""
    generator = torch.Generator().manual_seed(seed)
    entries: Entries = {}
    modules = [("unet", n, m) for n, m in _patchable(unet).items()]
    encoder = text_encoder.encoders["clip_l"]
    modules += [("text_encoder", n, m) for n, m in _patchable(encoder).items() if ".layers." in n]
    for index, (target, name, module) in enumerate(modules):
        weight = module.weight
        down_shape = (rank, *weight.shape[1:])  # conv: (rank, in, kh, kw) as LoCon writes it
        up_shape = (weight.shape[0], rank) + ((1, 1) if weight.ndim == 4 else ())
        down = 0.1 * torch.randn(down_shape, generator=generator)
        up = 0.1 * torch.randn(up_shape, generator=generator)
        entries[(target, name)] = (down, up, alpha if alpha is not None else float(1 + index % 8))
    return entries


def _diffusers_module_names(reference_unet) -> dict[str, str]:
    """Our UNet module name -> diffusers name, from the colleague's diffusers -> LDM key map (not lora.py's)."""
    key_map = unet_from_diffusers(reference_unet.state_dict())
    return {ours.rsplit(".", 1)[0]: source.key.rsplit(".", 1)[0] for ours, source in key_map.items()}


def _write_kohya(path, entries: Entries, unet_names: dict[str, str] | None = None) -> None:
    """kohya / A1111 layout; UNet names in LDM naming, or in diffusers naming when `unet_names` maps them."""
    state = {}
    for (target, name), (down, up, alpha) in entries.items():
        if target == "unet":
            name = unet_names[name] if unet_names else name
        prefix = {"unet": "lora_unet_", "text_encoder": "lora_te_", "text_encoder_2": "lora_te2_"}[target]
        flat = prefix + name.replace(".", "_")
        state |= {f"{flat}.lora_down.weight": down, f"{flat}.lora_up.weight": up, f"{flat}.alpha": torch.tensor(alpha)}
    save_file(state, str(path))


def _write_peft(path, entries: Entries, unet_names: dict[str, str], alpha: float) -> None:
    """diffusers / peft layout (unet.<diffusers name>.lora_A.weight) with alpha in diffusers' adapter metadata."""
    state = {}
    for (target, name), (down, up, _) in entries.items():
        module = f"unet.{unet_names[name]}" if target == "unet" else f"{target}.{name}"
        state |= {f"{module}.lora_A.weight": down, f"{module}.lora_B.weight": up}
    config = {"unet.lora_alpha": alpha, "unet.r": 4, "text_encoder.lora_alpha": alpha, "text_encoder.r": 4}
    save_file(state, str(path), metadata={"lora_adapter_metadata": json.dumps(config)})


def _write_old_diffusers(path, entries: Entries, unet_names: dict[str, str]) -> None:
    """The pre-peft diffusers spellings: attn1.processor.to_q_lora.down.weight, ...lora.down.weight, .alpha keys."""
    state = {}
    for (target, name), (down, up, alpha) in entries.items():
        module = f"unet.{unet_names[name]}" if target == "unet" else f"{target}.{name}"
        if target == "unet" and (m := re.fullmatch(r"(.+\.attn[12])\.(to_[qkv]|to_out)(\.0)?", module)):
            stem = f"{m[1]}.processor.{m[2]}_lora"
            state |= {f"{stem}.down.weight": down, f"{stem}.up.weight": up}
        elif target == "text_encoder" and (m := re.fullmatch(r"(.+\.self_attn)\.(q|k|v|out)_proj", module)):
            stem = f"{m[1]}.to_{m[2]}_lora"
            state |= {f"{stem}.down.weight": down, f"{stem}.up.weight": up}
        else:
            state |= {f"{module}.lora.down.weight": down, f"{module}.lora.up.weight": up}
        state[f"{module}.alpha"] = torch.tensor(alpha)
    save_file(state, str(path))


def _expected(weight, terms) -> torch.Tensor:
    """W + Σ strength·(alpha/rank)·up@down in float32, cast once to the weight's dtype (the documented formula)."""
    total = weight.float()
    for strength, (down, up, alpha) in terms:
        delta = (up.flatten(1) @ down.flatten(1)).reshape(weight.shape)
        total = total + (strength * (alpha / down.shape[0])) * delta
    return total.to(weight.dtype)


def _weights(module) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in module.state_dict().items()}


def _assert_same(module, reference: dict[str, torch.Tensor]) -> None:
    for name, tensor in module.state_dict().items():
        assert torch.equal(tensor, reference[name]), name


def _our_weight(unet, text_encoder, target: str, name: str) -> torch.Tensor:
    root = unet if target == "unet" else text_encoder.encoders["clip_l"]
    return root.get_submodule(name).weight


def test_kohya_lora_patches_exactly_and_strength_zero_changes_nothing(sd1, tmp_path):
    """A kohya LoRA gives exactly W + s·(alpha/r)·up@down per module, with separate UNet / CLIP strengths; s=0 is a no-op."""
    unet, text_encoder = _load(sd1)
    originals = _weights(unet), _weights(text_encoder)
    entries = _random_entries(unet, text_encoder, seed=1)
    _write_kohya(tmp_path / "style.safetensors", entries)
    lora = load_lora(tmp_path / "style.safetensors")

    assert apply_loras(unet, [(lora, 0.0)])[0].patched  # matched, but nothing written
    apply_loras(text_encoder, [(lora, 0.0)])
    _assert_same(unet, originals[0])
    _assert_same(text_encoder, originals[1])
    assert not any(hasattr(m, ORIGINAL_ATTRIBUTE) for m in [*unet.modules(), *text_encoder.modules()])

    unet_report = apply_loras(unet, [(lora, 0.7)])[0]
    clip_report = apply_loras(text_encoder, [(lora, -1.3)])[0]
    assert unet_report.complete and len(unet_report.patched) == sum(t == "unet" for t, _ in entries)
    assert clip_report.complete and len(clip_report.patched) == len(entries) - len(unet_report.patched)
    for (target, name), entry in entries.items():
        strength = 0.7 if target == "unet" else -1.3
        original = originals[0 if target == "unet" else 1][
            f"{name}.weight" if target == "unet" else f"encoders.clip_l.{name}.weight"
        ]
        assert torch.equal(_our_weight(unet, text_encoder, target, name), _expected(original, [(strength, entry)]))
    assert torch.equal(unet.out[0].weight, originals[0]["out.0.weight"])  # norms are never patched


def test_stacked_loras_add_and_removal_restores_bitwise(sd1, tmp_path):
    """Two LoRAs stack to W + d1 + d2; re-applying one alone leaves no trace of the other; removal restores W exactly."""
    unet, text_encoder = _load(sd1)
    original = _weights(unet)
    pointers = {name: p.data_ptr() for name, p in unet.named_parameters()}
    first, second = _random_entries(unet, text_encoder, seed=2), _random_entries(unet, text_encoder, seed=3, rank=2)
    _write_kohya(tmp_path / "a.safetensors", first)
    _write_kohya(tmp_path / "b.safetensors", second)
    a, b = load_lora(tmp_path / "a.safetensors"), load_lora(tmp_path / "b.safetensors")

    apply_loras(unet, [(a, 0.8), (b, -0.5)])
    for (target, name), entry in first.items():
        if target == "unet":
            expected = _expected(original[f"{name}.weight"], [(0.8, entry), (-0.5, second[(target, name)])])
            assert torch.equal(unet.get_submodule(name).weight, expected), name
    apply_loras(unet, [(b, 1.0)])  # replaces the set: computed from the untouched weights
    for (target, name), entry in second.items():
        if target == "unet":
            assert torch.equal(unet.get_submodule(name).weight, _expected(original[f"{name}.weight"], [(1.0, entry)]))
    remove_loras(unet)
    _assert_same(unet, original)
    assert {name: p.data_ptr() for name, p in unet.named_parameters()} == pointers  # the very same tensors
    assert not any(hasattr(m, ORIGINAL_ATTRIBUTE) for m in unet.modules())


def test_half_precision_weights_get_a_float32_delta_cast_once(sd1, tmp_path):
    """fp16 and bf16 models are patched as cast(W.float() + delta), and removal restores them bitwise."""
    entries = None
    for dtype in (torch.float16, torch.bfloat16):
        unet, text_encoder = _load(sd1, dtype=dtype)
        original = _weights(unet)
        if entries is None:
            entries = _random_entries(unet, text_encoder, seed=4)
            _write_kohya(tmp_path / "lora.safetensors", entries)
        apply_loras(unet, [(load_lora(tmp_path / "lora.safetensors"), 1.0)])
        for (target, name), entry in entries.items():
            if target == "unet":
                weight = unet.get_submodule(name).weight
                assert weight.dtype == dtype
                assert torch.equal(weight, _expected(original[f"{name}.weight"], [(1.0, entry)])), name
        remove_loras(unet)
        _assert_same(unet, original)


def test_kohya_ldm_kohya_diffusers_peft_and_old_diffusers_files_patch_identical_weights(sd1, tmp_path):
    """The same LoRA in four key layouts (diffusers names from convert.py's map) patches bitwise-identical weights."""
    unet, text_encoder = _load(sd1)
    entries = _random_entries(unet, text_encoder, seed=5, alpha=8.0)
    names = _diffusers_module_names(sd1.unet)
    _write_kohya(tmp_path / "kohya_ldm.safetensors", entries)
    _write_kohya(tmp_path / "kohya_diffusers.safetensors", entries, unet_names=names)
    _write_peft(tmp_path / "peft.safetensors", entries, names, alpha=8.0)
    _write_old_diffusers(tmp_path / "old_diffusers.safetensors", entries, names)

    patched = {}
    for layout in ("kohya_ldm", "kohya_diffusers", "peft", "old_diffusers"):
        lora = load_lora(tmp_path / f"{layout}.safetensors")
        reports = apply_loras(unet, [(lora, 0.9)]) + apply_loras(text_encoder, [(lora, 0.6)])
        assert all(r.complete for r in reports), [r.summary() for r in reports]
        assert sum(len(r.patched) for r in reports) == len(entries), layout
        patched[layout] = _weights(unet) | {f"te.{k}": v for k, v in _weights(text_encoder).items()}
        remove_loras(unet)
        remove_loras(text_encoder)
    for layout in ("kohya_diffusers", "peft", "old_diffusers"):
        for key, tensor in patched["kohya_ldm"].items():
            assert torch.equal(patched[layout][key], tensor), (layout, key)


@pytest.mark.parametrize("name", ["sd1", "sdxl"])
def test_diffusers_names_invert_the_diffusers_to_ldm_key_map(name, request):
    """diffusers_unet_names gives back, for every weight of our UNet, the diffusers module convert.py maps from."""
    reference = request.getfixturevalue(name)
    unet = load_unet(reference.folder)
    expected = _diffusers_module_names(reference.unet)
    ours = diffusers_unet_names(unet)
    assert {k: v for k, v in ours.items() if k in expected} == expected
    assert set(expected) <= set(ours)


def test_sdxl_te1_and_te2_entries_go_to_clip_l_and_clip_g():
    """lora_te1_ / lora_te2_ (kohya SDXL) patch a PromptEncoder's CLIP-L and bigG towers respectively."""
    torch.manual_seed(0)
    clip_l = CLIPTextModel(CLIP_L.__class__(width=64, heads=1, layers=2, intermediate=128)).eval()
    clip_g = CLIPTextModel(CLIP_L.__class__(width=96, heads=2, layers=2, intermediate=192, projection_dim=96)).eval()
    encoder = PromptEncoder({"clip_l": clip_l, "clip_g": clip_g}, pooled_from="clip_g")
    entries = {
        ("text_encoder", "text_model.encoder.layers.1.self_attn.q_proj"): (torch.randn(2, 64), torch.randn(64, 2), 1.0),
        ("text_encoder_2", "text_model.encoder.layers.0.mlp.fc2"): (torch.randn(2, 192), torch.randn(96, 2), 2.0),
    }
    path = "sdxl_lora.safetensors"
    state = {}
    for (target, name), (down, up, alpha) in entries.items():
        flat = ("lora_te1_" if target == "text_encoder" else "lora_te2_") + name.replace(".", "_")
        state |= {f"{flat}.lora_down.weight": down, f"{flat}.lora_up.weight": up, f"{flat}.alpha": torch.tensor(alpha)}
    save_file(state, path)
    original_q = clip_l.text_model.encoder.layers[1].self_attn.q_proj.weight.clone()
    original_fc2 = clip_g.text_model.encoder.layers[0].mlp.fc2.weight.clone()
    (report,) = apply_loras(encoder, [(load_lora(path), 1.0)])
    assert report.complete and report.patched == (
        "encoders.clip_l.text_model.encoder.layers.1.self_attn.q_proj",
        "encoders.clip_g.text_model.encoder.layers.0.mlp.fc2",
    )
    q = entries[("text_encoder", "text_model.encoder.layers.1.self_attn.q_proj")]
    fc2 = entries[("text_encoder_2", "text_model.encoder.layers.0.mlp.fc2")]
    assert torch.equal(clip_l.text_model.encoder.layers[1].self_attn.q_proj.weight, _expected(original_q, [(1.0, q)]))
    assert torch.equal(clip_g.text_model.encoder.layers[0].mlp.fc2.weight, _expected(original_fc2, [(1.0, fc2)]))


def test_partially_matching_lora_is_refused_or_with_allow_partial_applies_what_fits(sd1, tmp_path):
    """Unknown modules, wrong shapes and OFT parts are named and refuse the LoRA, changing nothing; with
    allow_partial the rest is applied and they are reported, with the foreign keys."""
    unet, text_encoder = _load(sd1)
    entries = {k: v for k, v in _random_entries(unet, text_encoder, seed=6).items() if k[0] == "unet"}
    name = "input_blocks.1.1.transformer_blocks.0.attn2.to_k"
    path = tmp_path / "partial.safetensors"
    _write_kohya(path, entries)
    tensors = load_file(str(path))
    tensors["lora_unet_input_blocks_1_1_transformer_blocks_0_attn2_to_k.lora_down.weight"] = torch.randn(4, 77)
    tensors["lora_unet_no_such_block_0_proj.lora_down.weight"] = torch.randn(4, 8)
    tensors["lora_unet_no_such_block_0_proj.lora_up.weight"] = torch.randn(8, 4)
    tensors["lora_unet_input_blocks_1_1_proj_in.oft_blocks"] = torch.ones(4, 8, 8)  # LyCORIS OFT: not read
    tensors["transformer.single_blocks.0.attn.to_q.lora_A.weight"] = torch.randn(4, 8)  # a Flux LoRA part
    save_file(tensors, str(path))
    lora = load_lora(path)
    original = _weights(unet)

    with pytest.raises(ModelLoadError, match=r"3 of this LoRA's .* cannot be applied \(unet/.*none is applied"):
        apply_loras(unet, [(lora, 1.0)])
    _assert_same(unet, original)
    (report,) = apply_loras(unet, [(lora, 1.0)], allow_partial=True)
    assert len(report.patched) == len(entries) - 2  # attn2.to_k: wrong shape; proj_in: OFT
    assert len(report.unmatched) == 3 and len(report.ignored) == 1
    summary = report.summary()
    assert f"patched {len(entries) - 2} of {len(entries) + 1} modules" in summary
    assert any("attn2_to_k: update 32x77 does not fit weight [32, 64]" in u for u in report.unmatched)
    assert any("no such module" in u for u in report.unmatched)
    assert any("proj_in: LyCORIS OFT / BOFT / GLoRA is not supported" in u for u in report.unmatched)
    assert "transformer.single_blocks" in report.ignored[0]
    assert torch.equal(unet.get_submodule(name).weight, original[f"{name}.weight"])  # the misfit is not applied
    assert apply_loras(text_encoder, [(lora, 1.0)])[0].patched == ()  # no text-encoder entries: no error


def test_non_lora_files_and_loras_for_another_family_raise_clear_errors(sd1, tmp_path):
    """A checkpoint given as a LoRA, and a LoRA whose every entry misfits (SDXL widths), raise ModelLoadError."""
    with pytest.raises(ModelLoadError, match="expected a LoRA .* found a full Stable Diffusion checkpoint"):
        load_lora(sd1.single_file)
    save_file({"lora_unet_x.hada_w1_a": torch.randn(4, 4)}, str(tmp_path / "loha.safetensors"))
    with pytest.raises(ModelLoadError, match="no entry that can patch.*LoHa"):
        load_lora(tmp_path / "loha.safetensors")

    unet, _ = _load(sd1)
    original = _weights(unet)
    flat = "lora_unet_input_blocks_1_1_transformer_blocks_0_attn2_to_k"
    save_file(
        {f"{flat}.lora_down.weight": torch.randn(4, 2048), f"{flat}.lora_up.weight": torch.randn(640, 4)},
        str(tmp_path / "sdxl_style.safetensors"),
    )
    with pytest.raises(ModelLoadError, match=r"sdxl_style.safetensors: none of .*2048-wide text \(SDXL\)"):
        apply_loras(unet, [(load_lora(tmp_path / "sdxl_style.safetensors"), 1.0)])
    _assert_same(unet, original)


def test_lora_file_whose_header_length_starts_with_0x80_is_not_taken_for_a_pickle(tmp_path):
    """A safetensors header length with low byte 0x80 (1 file in 32) looks like pickle magic; the suffix wins."""
    path = tmp_path / "lora.safetensors"
    flat = "lora_unet_input_blocks_1_1_proj_in"
    tensors = {f"{flat}.lora_down.weight": torch.randn(4, 32, 1, 1), f"{flat}.lora_up.weight": torch.randn(32, 4, 1, 1)}
    for padding in range(256):
        save_file(tensors, str(path), metadata={"pad": "x" * padding})
        if path.read_bytes()[0] == 0x80:
            break
    assert path.read_bytes()[0] == 0x80
    assert list(load_lora(path).patches["unet"]) == ["input_blocks_1_1_proj_in"]


@pytest.mark.parity
@torch.no_grad()
def test_peft_lora_saved_by_diffusers_matches_diffusers_and_transformers_outputs(sd1, tmp_path):
    """A peft LoRA (alpha 8, rank 4, convs included) saved by diffusers gives our UNet / CLIP the reference outputs."""
    pytest.importorskip("peft")
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(0)
    unet_config = LoraConfig(
        r=4,
        lora_alpha=8,
        init_lora_weights=False,  # random A and B, so the update is not zero
        target_modules=["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2"]
        + ["conv1", "conv2", "time_emb_proj", "conv_shortcut", "conv", "conv_in", "linear_1"],
    )
    clip_config = LoraConfig(
        r=4, lora_alpha=2, init_lora_weights=False, target_modules=["q_proj", "k_proj", "v_proj", "out_proj", "fc1"]
    )
    reference_unet = inject_adapter_in_model(unet_config, copy.deepcopy(sd1.unet))
    reference_clip = inject_adapter_in_model(clip_config, copy.deepcopy(sd1.clip))
    StableDiffusionPipeline.save_lora_weights(
        tmp_path,
        unet_lora_layers=get_peft_model_state_dict(reference_unet),
        text_encoder_lora_layers=get_peft_model_state_dict(reference_clip),
        unet_lora_adapter_metadata=unet_config.to_dict(),
        text_encoder_lora_adapter_metadata=clip_config.to_dict(),
    )
    lora = load_lora(tmp_path / "pytorch_lora_weights.safetensors")

    unet, text_encoder = _load(sd1)
    reports = apply_loras(unet, [(lora, 1.0)]) + apply_loras(text_encoder, [(lora, 1.0)])
    assert all(r.complete for r in reports), [r.summary() for r in reports]
    generator = torch.Generator().manual_seed(0)
    x, context = torch.randn(2, 4, 16, 16, generator=generator), torch.randn(2, 77, 64, generator=generator)
    t = torch.tensor([10.0, 700.0])
    expected = reference_unet(x, t, encoder_hidden_states=context).sample
    assert max_relative_error(unet(x, t, context=context), expected) <= 1e-4
    plain = sd1.unet(x, t, encoder_hidden_states=context).sample
    assert max_relative_error(plain, expected) > 1e-2  # the LoRA changes the output a lot

    ids = torch.randint(0, 1000, (2, 77), generator=generator)
    hidden, _ = text_encoder.encoders["clip_l"](ids)
    assert max_relative_error(hidden, reference_clip(ids).last_hidden_state) <= 1e-4


@pytest.mark.parity
@torch.no_grad()
def test_kohya_lora_read_by_diffusers_gives_our_unet_output(sd1, tmp_path):
    """A kohya LoCon file (per-module alphas, every conv and linear) means the same to diffusers' kohya loader and to us."""
    pytest.importorskip("peft")
    from diffusers import StableDiffusionPipeline

    unet, text_encoder = _load(sd1)
    entries = {k: v for k, v in _random_entries(unet, text_encoder, seed=8).items() if k[0] == "unet"}
    # diffusers 0.42 drops per-module alphas of attention projections in kohya files (its alpha_pattern
    # keeps the old "processor.to_q_lora" spelling), so they share the most common alpha; others vary.
    attention = (".to_q", ".to_k", ".to_v", ".to_out.0")
    entries = {
        (t, n): (down, up, 4.0 if n.endswith(attention) else 1.0 + len(n) % 3)
        for (t, n), (down, up, _) in entries.items()
    }
    path = tmp_path / "locon.safetensors"
    _write_kohya(path, entries, unet_names=_diffusers_module_names(sd1.unet))
    state, network_alphas = StableDiffusionPipeline.lora_state_dict(str(path))
    reference = copy.deepcopy(sd1.unet)
    reference.load_lora_adapter(state, network_alphas=network_alphas, prefix="unet")

    (report,) = apply_loras(unet, [(load_lora(path), 1.0)])
    assert report.complete and len(report.patched) == len(entries)
    generator = torch.Generator().manual_seed(1)
    x, context = torch.randn(1, 4, 16, 16, generator=generator), torch.randn(1, 77, 64, generator=generator)
    t = torch.tensor([400.0])
    expected = reference(x, t, encoder_hidden_states=context).sample
    assert max_relative_error(unet(x, t, context=context), expected) <= 1e-4
    assert max_relative_error(sd1.unet(x, t, encoder_hidden_states=context).sample, expected) > 1e-2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fp16_model_on_cuda_is_patched_on_its_device_with_cpu_backups(sd1, tmp_path):
    """On CUDA the update is computed on the GPU (close to the CPU result), originals can live on the CPU, removal is exact."""
    unet, text_encoder = _load(sd1, dtype=torch.float16)
    entries = _random_entries(unet, text_encoder, seed=7)
    _write_kohya(tmp_path / "lora.safetensors", entries)
    lora = load_lora(tmp_path / "lora.safetensors")
    cuda_unet = copy.deepcopy(unet).to("cuda")
    original = _weights(cuda_unet)
    apply_loras(unet, [(lora, 1.0)])
    apply_loras(cuda_unet, [(lora, 1.0)], backup_device="cpu")
    for name, module in _patchable(cuda_unet).items():
        assert module.weight.device.type == "cuda"
        assert getattr(module, ORIGINAL_ATTRIBUTE).device.type == "cpu"
        assert max_relative_error(module.weight.cpu(), unet.get_submodule(name).weight) <= 2e-3
    remove_loras(cuda_unet)
    _assert_same(cuda_unet, original)


def test_a_kohya_alpha_of_zero_means_the_rank():
    """sd-scripts reads `.alpha` 0 as alpha = rank (scale 1); a LoRA saved so must not silently do nothing."""
    from nodes.models.lora import _alpha_tensor_scale

    assert _alpha_tensor_scale(torch.tensor(0.0), "x.alpha", 8, None) == 1.0
    assert _alpha_tensor_scale(torch.tensor(4.0), "x.alpha", 8, None) == 0.5
