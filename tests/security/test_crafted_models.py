"""Crafted model files: sizes, patterns and numbers from a file are checked against its tensors before use.

Every file a graph names is untrusted (docs/security.md): its metadata must not reach the regex engine,
declare a network larger than its tensors, point outside its folder, or carry numbers that make NaN
images later. Each refusal is a ModelLoadError naming the file (a NodeInputError naming the input in a node).
"""

from __future__ import annotations

import json
import struct
import sys
import time

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from nodegraph import NodeExecutionError, NodeInputError, Session
from nodegraph.model_paths import ModelPaths
from nodes.models.detect import ModelLoadError
from nodes.models.loading import load_checkpoint, open_state_dict, read_schedule
from nodes.models.lora import load_lora, matches_module

# --- helpers ------------------------------------------------------------------------------------------------


def _tensors_and_config(checkpoint) -> tuple[dict, dict]:
    with safe_open(str(checkpoint), "pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        config = json.loads(handle.metadata()["nodegraph.config"])
    return tensors, config


def _variant(checkpoint, path, **changes) -> object:
    """A copy of `checkpoint` whose nodegraph.config has `changes` ("unet.num_heads": 0 sets a nested field)."""
    tensors, config = _tensors_and_config(checkpoint)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        section = config
        for parent in parents:
            section = section.setdefault(parent, {})
        section[last] = value
    save_file(tensors, str(path), metadata={"nodegraph.config": json.dumps(config)})
    return path


def _raw_safetensors(path, header: str, data: bytes = b"") -> object:
    encoded = header.encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)
    return path


MODULE = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"


def _peft_lora(path, adapter_metadata: object) -> object:
    """A one-module peft-style LoRA with `adapter_metadata` (a JSON-able value or raw text) as its metadata."""
    state = {f"unet.{MODULE}.lora_A.weight": torch.randn(4, 32), f"unet.{MODULE}.lora_B.weight": torch.randn(32, 4)}
    text = adapter_metadata if isinstance(adapter_metadata, str) else json.dumps(adapter_metadata)
    save_file(state, str(path), metadata={"lora_adapter_metadata": text})
    return path


# --- H1: LoRA alpha_pattern keys are module names, never regexes ------------------------------------------


def test_alpha_pattern_keys_match_as_dotted_suffixes():
    """A pattern is the module name or a suffix after a '.'; regex syntax in it is plain text."""
    assert matches_module("attn1.to_q", MODULE) and matches_module(MODULE, MODULE)
    assert not matches_module("1.to_q", "down_blocks.0.attn21.to_q")   # a suffix, but not after a '.'
    assert not matches_module("to_.", MODULE) and not matches_module("(.|.)*X", MODULE)


@pytest.mark.parametrize("pattern, alpha", [("attn1.to_q", 16.0), ("to_.", 8.0), ("(.|.)*q", 8.0), ("(", 8.0)])
def test_alpha_pattern_from_a_file_is_never_compiled(tmp_path, pattern, alpha):
    """Only a real module suffix picks the pattern's alpha; '(' or a catastrophic regex is just a non-matching name."""
    path = _peft_lora(tmp_path / "lora.safetensors",
                      {"unet.lora_alpha": 8, "unet.r": 4, "unet.alpha_pattern": {pattern: 16}})
    started = time.monotonic()
    lora = load_lora(path)
    assert time.monotonic() - started < 5
    assert lora.patches["unet"][MODULE].scale == alpha / 4


@pytest.mark.parametrize("metadata, field", [
    ({"unet.lora_alpha": 8, "unet.alpha_pattern": {"to_q": "x"}}, "alpha_pattern"),
    ({"unet.lora_alpha": 8, "unet.alpha_pattern": ["to_q"]}, "alpha_pattern"),
    ({"unet.lora_alpha": 8, "unet.rank_pattern": {"to_q": 0}}, "rank_pattern"),
    ({"unet.lora_alpha": -1e308, "unet.r": 4}, "lora_alpha"),
    ({"unet.lora_alpha": "x", "unet.r": 4}, "lora_alpha"),
    ({"unet.lora_alpha": 8, "unet.r": 0}, "unet.r"),
    ({"unet.lora_alpha": 8, "unet.use_rslora": "yes"}, "use_rslora"),
    ("{not json", "not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, r"not valid JSON \(nested thousands of levels deep"),   # not RecursionError's
    ('{"unet.r": ' + "9" * 5000 + "}", r"not valid JSON \(a number thousands of digits long"),   # nor Python's advice
    ([1, 2], "must be a JSON object"),
])
def test_unreadable_adapter_metadata_is_an_error_naming_the_file(tmp_path, metadata, field):
    """Present but malformed lora_adapter_metadata is refused (never silently scale 1), naming the file and field."""
    path = _peft_lora(tmp_path / "bad_meta.safetensors", metadata)
    with pytest.raises(ModelLoadError, match=field) as caught:
        load_lora(path)
    assert "bad_meta.safetensors" in str(caught.value)


@pytest.mark.parametrize("alpha", [float("nan"), float("inf"), -4.0, [1.0, 2.0]])
def test_nonsense_alpha_tensors_are_refused(tmp_path, alpha):
    """A kohya .alpha that is not one finite, non-negative number is an error naming the key."""
    key = "lora_unet_down_blocks_0_attentions_0_proj_in"
    save_file({f"{key}.lora_down.weight": torch.randn(4, 32), f"{key}.lora_up.weight": torch.randn(32, 4),
               f"{key}.alpha": torch.tensor(alpha)}, str(tmp_path / "alpha.safetensors"))
    with pytest.raises(ModelLoadError, match=f"{key}.alpha"):
        load_lora(tmp_path / "alpha.safetensors")


def test_rank_zero_lora_entries_are_malformed_not_a_crash(tmp_path):
    """A lora_down with no rows is reported as malformed (here: nothing left to apply), not a ZeroDivisionError."""
    key = "lora_unet_down_blocks_0_attentions_0_proj_in"
    save_file({f"{key}.lora_down.weight": torch.randn(0, 32), f"{key}.lora_up.weight": torch.randn(32, 0),
               f"{key}.alpha": torch.tensor(4.0)}, str(tmp_path / "rank0.safetensors"))
    with pytest.raises(ModelLoadError, match="malformed LoRA: a rank of 0"):
        load_lora(tmp_path / "rank0.safetensors")


def test_load_lora_node_names_the_input_for_a_bad_pattern(tmp_path):
    """Through LoadLoRA the refusal is a NodeInputError on lora_name naming the file."""
    from tests.security import test_loader_errors as fakes

    (tmp_path / "models" / "loras").mkdir(parents=True)
    _peft_lora(tmp_path / "models" / "loras" / "pattern.safetensors",
               {"unet.lora_alpha": 8, "unet.alpha_pattern": {"to_q": None}})
    session = Session(plugins=[("fake_parts", sys.modules[fakes.__name__])],
                      model_paths=ModelPaths(roots=[tmp_path / "models"]), output_dir=tmp_path / "out")
    with pytest.raises(NodeExecutionError) as info:
        session.run(fakes._graph("LoadLoRA", "lora_name", "pattern.safetensors"), outputs=["load"])
    error = info.value.exception
    assert isinstance(error, NodeInputError) and error.input == "lora_name"
    assert "pattern.safetensors" in str(error) and "alpha_pattern" in str(error)


# --- H2: declared sizes are checked against the file's tensors before anything is built --------------------


@pytest.mark.parametrize("changes", [
    {"unet.transformer_depth": [300, 300]},
    {"unet.num_res_blocks": 300},
    {"text_encoders.clip_l.layers": 3000},
    {"vae.ch": 4096},
])
def test_metadata_cannot_declare_a_network_larger_than_the_file(tiny_checkpoint, tmp_path, changes):
    """A few bytes of metadata asking for a huge network are refused before it is built, naming the file."""
    path = _variant(tiny_checkpoint, tmp_path / "huge.safetensors", **changes)
    started = time.monotonic()
    with pytest.raises(ModelLoadError, match="far larger than the file") as caught:
        load_checkpoint(path)
    assert time.monotonic() - started < 10 and "huge.safetensors" in str(caught.value)


def test_upscaler_block_count_from_one_key_name_is_checked_first(tmp_path):
    """An RRDBNet file naming body.19 but holding one block is refused before 20 blocks are allocated."""
    from nodes.upscale.architectures import UnknownUpscalerError, build_upscaler

    state = {"conv_first.weight": torch.zeros(64, 3, 3, 3), "conv_last.weight": torch.zeros(3, 64, 3, 3),
             "body.0.rdb1.conv1.weight": torch.zeros(32, 64, 3, 3), "body.19.rdb1.conv1.weight": torch.zeros(1)}
    with pytest.raises(UnknownUpscalerError, match="far larger than the file"):
        build_upscaler(state)


def test_upscaler_with_no_output_channels_is_named(tmp_path):
    """conv_last with 0 output channels is a clear error, not a ZeroDivisionError."""
    from nodes.upscale.architectures import UnknownUpscalerError, detect_architecture

    state = {"conv_first.weight": torch.zeros(8, 3, 3, 3), "conv_last.weight": torch.zeros(0, 8, 3, 3),
             "body.0.rdb1.conv1.weight": torch.zeros(4, 8, 3, 3)}
    with pytest.raises(UnknownUpscalerError, match="0 output channels"):
        detect_architecture(state)


# --- M1: a shard index names files in its own folder only --------------------------------------------------


@pytest.mark.parametrize("shard", ["../outside.safetensors", "ABSOLUTE", "sub/../../outside.safetensors",
                                   "link.safetensors"])
def test_shard_index_cannot_reach_outside_its_folder(tmp_path, shard):
    """'..', absolute names and symlinks out of the folder are refused, naming the index."""
    folder = tmp_path / "model" / "unet"
    folder.mkdir(parents=True)
    save_file({"w": torch.zeros(2)}, str(tmp_path / "model" / "outside.safetensors"))
    (folder / "link.safetensors").symlink_to(tmp_path / "model" / "outside.safetensors")
    name = str(tmp_path / "model" / "outside.safetensors") if shard == "ABSOLUTE" else shard
    index = folder / "diffusion_pytorch_model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"w": name}}))
    with pytest.raises(ModelLoadError, match="its own folder") as caught:
        open_state_dict(index)
    assert caught.value.path == str(index)


def test_shard_index_in_its_folder_still_loads(tmp_path):
    """A plain shard name beside the index opens as before."""
    save_file({"w": torch.ones(2)}, str(tmp_path / "part-1.safetensors"))
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"w": "part-1.safetensors"}}))
    assert torch.equal(open_state_dict(index)["w"], torch.ones(2))


# --- M2 / M4 / M5: nonsense numbers and contradictions in nodegraph.config ---------------------------------


@pytest.mark.parametrize("changes, field", [
    ({"vae.scale_factor": float("nan")}, "scale_factor"),
    ({"vae.scale_factor": 0}, "scale_factor"),
    ({"vae.shift_factor": float("inf")}, "shift_factor"),
    ({"vae.latent_rgb_factors": "x"}, "latent_rgb_factors"),
    ({"text_encoders.clip_l.pad_token_id": 10**9}, "pad_token_id"),
    ({"text_encoders.clip_l.heads": 0}, "heads"),
    ({"unet.model_channels": "abc"}, "model_channels"),
    ({"unet": 5}, "'unet' must be a JSON object"),
    ({"text_encoders": [1, 2]}, "'text_encoders' must be a JSON object"),
    ({"family": "sdxl-base"}, "label embedding"),
])
def test_nonsense_config_values_are_refused_at_load(tiny_checkpoint, tmp_path, changes, field):
    """Non-finite or impossible numbers, wrong JSON types and a contradicting family: refused naming file and field."""
    path = _variant(tiny_checkpoint, tmp_path / "odd.safetensors", **changes)
    with pytest.raises(ModelLoadError, match=field) as caught:
        load_checkpoint(path, components=("unet", "vae", "text_encoder"))
    assert "odd.safetensors" in str(caught.value)


def test_integer_weights_are_refused_by_name(tiny_checkpoint, tmp_path):
    """An int8 (quantised) checkpoint is named as such, not a torch load_state_dict error per parameter."""
    tensors, config = _tensors_and_config(tiny_checkpoint)
    tensors = {key: value.to(torch.int8) if value.is_floating_point() else value for key, value in tensors.items()}
    save_file(tensors, str(tmp_path / "int8.safetensors"), metadata={"nodegraph.config": json.dumps(config)})
    with pytest.raises(ModelLoadError, match="not floating point"):
        load_checkpoint(tmp_path / "int8.safetensors", components=("unet",))


# --- M3: training schedules are checked where they are read -------------------------------------------------


@pytest.mark.parametrize("schedule", [
    {"betas": "cosine", "timesteps": 100_000},
    {"alphas_cumprod": [1, 0]},
    {"alphas_cumprod": [True, False]},
    {"alphas_cumprod": [1e-300, 1e-301]},
    {"betas": "linear", "timesteps": True},
])
def test_unusable_schedules_are_refused_naming_the_file(schedule):
    """A schedule sampling cannot use (non-monotone after the clamp, ᾱ_0 = 1, booleans) fails at load."""
    with pytest.raises(ModelLoadError, match="schedule") as caught:
        read_schedule({"schedule": schedule}, "ckpt.safetensors")
    assert "ckpt.safetensors" in str(caught.value)


def test_usual_schedules_still_read():
    """The named schedules a trainer writes pass unchanged."""
    for schedule in ({"betas": "scaled_linear", "timesteps": 1000, "zero_terminal_snr": True},
                     {"betas": "cosine", "timesteps": 1000, "zero_terminal_snr": False},
                     {"alphas_cumprod": [0.99, 0.5, 0.01]}):
        assert read_schedule({"schedule": schedule}) is not None


# --- L1: malformed safetensors headers are one error shape ---------------------------------------------------


@pytest.mark.parametrize("header", [
    '{"w": ' + "[" * 200_000 + "]" * 200_000 + "}",
    '{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 1' + "0" * 5000 + "]}}",
    '{"w": {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}}',
    '{"w": {"dtype": "F32", "shape": [1], "data_offsets": ["0", "4"]}}',
    '{"__metadata__": "abc", "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}',
    '{"__metadata__": 5, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}',
])
def test_malformed_headers_are_model_load_errors(tmp_path, header):
    """Deep nesting, huge numbers and wrong JSON types in a header: ModelLoadError naming the file."""
    path = _raw_safetensors(tmp_path / "crafted.safetensors", header, b"\0" * 8)
    with pytest.raises(ModelLoadError, match="corrupt safetensors header") as caught:
        open_state_dict(path)
    assert caught.value.path == str(path)


def test_non_object_folder_configs_are_named(tmp_path):
    """A diffusers config.json that is a list, or not UTF-8, is a ModelLoadError naming that config."""
    from nodes.models.loading import _read_json

    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "bytes.json").write_bytes(b"\xff\xfe{")
    for name in ("list.json", "bytes.json"):
        with pytest.raises(ModelLoadError) as caught:
            _read_json(tmp_path / name)
        assert caught.value.path == str(tmp_path / name)
