"""Loading: errors that explain, pickle policy, dtypes, lazy per-component reads, save / load round trip."""

import json
import shutil

import pytest
import torch
from safetensors.torch import save_file

from nodes.models.clip import CLIPTextModel, PromptEncoder, TextEncoderConfig
from nodes.models.detect import METADATA_KEY, ModelLoadError
from nodes.models.loading import (
    StateDictFile,
    load_checkpoint,
    load_text_encoder,
    load_unet,
    load_vae,
    open_state_dict,
    save_checkpoint,
)
from nodes.models.unet import UNetConfig, UNetModel
from nodes.models.vae import AutoencoderKL, VAEConfig

from .conftest import max_relative_error


def _state(path, prefix="", strip=True) -> dict:
    tensors = open_state_dict(path)
    return {(key[len(prefix) :] if strip else key): tensors[key] for key in tensors if key.startswith(prefix)}


def _unet_inputs(context_width=64):
    generator = torch.Generator().manual_seed(0)
    return (
        torch.randn(1, 4, 8, 8, generator=generator),
        torch.tensor([500.0]),
        torch.randn(1, 77, context_width, generator=generator),
    )


def test_vae_file_given_as_a_checkpoint_says_so(sd1, tmp_path):
    """A VAE-only file passed to load_checkpoint is named as a VAE, with the loader to use instead."""
    path = tmp_path / "vae.safetensors"
    save_file(_state(sd1.single_file, "first_stage_model."), str(path))
    with pytest.raises(ModelLoadError, match=r"vae\.safetensors: expected a full checkpoint .* found a VAE.*LoadVAE"):
        load_checkpoint(path)
    assert load_vae(path).config.ch == 32  # and it loads as a VAE


def test_truncated_file_is_reported_as_truncated(sd1, tmp_path):
    """A safetensors file cut short names the missing bytes and says to copy it again."""
    path = tmp_path / "cut.safetensors"
    data = sd1.single_file.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated safetensors file.*copy it again"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}", "corrupt safetensors header"),
        (b"hello, I am a text file that is not a model", "not a safetensors file"),
        (b"\x01\x02", "only 2 bytes"),
    ],
)
def test_corrupt_files_are_reported(tmp_path, content, message):
    """Garbage, text and tiny files each get an error naming the file and the problem."""
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=message) as caught:
        load_checkpoint(path)
    assert caught.value.path == str(path)


def test_pickle_is_refused_unless_allowed(sd1, tmp_path):
    """.ckpt files are refused with an explanation; allow_pickle=True loads them with weights_only."""
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": _state(sd1.single_file, strip=False)}, path)
    with pytest.raises(ModelLoadError, match="pickle.*allow_pickle=True"):
        load_checkpoint(path)
    unet = load_checkpoint(path, allow_pickle=True, components=("unet",)).unet
    x, t, context = _unet_inputs()
    assert max_relative_error(unet(x, t, context), load_unet(sd1.single_file)(x, t, context)) <= 1e-5


def test_pickle_with_code_objects_is_refused_even_when_allowed(tmp_path):
    """weights_only loading rejects a pickle that holds arbitrary Python objects."""
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "extra": ModelLoadError("an object")}, path)
    with pytest.raises(ModelLoadError, match="weights_only"):
        load_checkpoint(path, allow_pickle=True)


@pytest.mark.parametrize(
    "keys, kind",
    [
        (["foo.bar.weight", "foo.baz.weight", "qux.weight"], "unknown architecture .*foo"),
        (["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"], "a LoRA"),
        (["control_model.input_hint_block.0.weight"], "a ControlNet"),
    ],
)
def test_other_kinds_of_file_are_named(tmp_path, keys, kind):
    """Files that are not checkpoints say what they look like (listing keys when unknown)."""
    path = tmp_path / "other.safetensors"
    save_file({key: torch.zeros(2) for key in keys}, str(path))
    with pytest.raises(ModelLoadError, match=kind):
        load_checkpoint(path)


def test_missing_tensor_is_named(sd1, tmp_path):
    """A checkpoint lacking one UNet tensor reports that key as missing."""
    state = _state(sd1.single_file, strip=False)
    del state["model.diffusion_model.middle_block.1.proj_out.bias"]
    path = tmp_path / "holey.safetensors"
    save_file(state, str(path))
    with pytest.raises(ModelLoadError, match=r"missing \['middle_block.1.proj_out.bias'\]"):
        load_checkpoint(path, components=("unet",))


def test_half_precision_files_load_in_their_dtype_and_cast_on_request(sd1, tmp_path):
    """fp16 weights stay fp16 by default; dtype= casts them while loading."""
    path = tmp_path / "half.safetensors"
    save_file({k: v.half() for k, v in _state(sd1.single_file, strip=False).items()}, str(path))
    assert load_checkpoint(path, components=("unet",)).unet.dtype == torch.float16
    assert load_checkpoint(path, components=("vae",), dtype=torch.float32).vae.dtype == torch.float32
    encoder = load_text_encoder(path, dtype=torch.bfloat16)
    assert encoder.encoders["clip_l"].dtype == torch.bfloat16


def test_only_requested_components_are_read(sd1, monkeypatch):
    """Loading just the VAE reads only first_stage_model.* tensors from the file."""
    read = []
    original = StateDictFile.__getitem__
    monkeypatch.setattr(StateDictFile, "__getitem__", lambda self, key: read.append(key) or original(self, key))
    checkpoint = load_checkpoint(sd1.single_file, components=("vae",))
    assert checkpoint.unet is None and checkpoint.text_encoder is None
    assert read and all(key.startswith("first_stage_model.") for key in read)


@pytest.mark.parity
def test_unet_only_files_in_both_layouts(sd1, tmp_path):
    """Bare LDM UNet files and diffusers UNet files load with load_unet."""
    bare = tmp_path / "unet.safetensors"
    save_file(_state(sd1.single_file, "model.diffusion_model."), str(bare))
    x, t, context = _unet_inputs()
    expected = sd1.unet(x, t, encoder_hidden_states=context).sample
    assert max_relative_error(load_unet(bare, family="sd1")(x, t, context), expected) <= 1e-4
    diffusers_file = sd1.folder / "unet" / "diffusion_pytorch_model.safetensors"
    assert max_relative_error(load_unet(diffusers_file)(x, t, context), expected) <= 1e-4


@pytest.mark.parity
def test_standalone_diffusers_vae_file_takes_the_family_scale(sdxl, tmp_path):
    """A VAE file in diffusers layout loads; its latent scale comes from the family given."""
    path = tmp_path / "sdxl_vae.safetensors"
    shutil.copy(sdxl.folder / "vae" / "diffusion_pytorch_model.safetensors", path)
    vae = load_vae(path, family="sdxl-base")
    assert vae.config.scale_factor == 0.13025
    images = torch.rand(1, 3, 32, 32) * 2 - 1
    expected = sdxl.vae.encode(images).latent_dist.mean * 0.13025
    assert max_relative_error(vae.encode(images), expected) <= 1e-4


def test_diffusers_folder_checkpoint_reports_its_family(sdxl):
    """A diffusers SDXL folder is detected as sdxl-base with eps prediction from its scheduler."""
    checkpoint = load_checkpoint(sdxl.folder, components=())
    assert checkpoint.family == "sdxl-base" and checkpoint.prediction == "eps"
    assert checkpoint.info.unet.num_head_channels == 16 and checkpoint.info.vae.scale_factor == 0.13025
    assert [spec.name for spec in checkpoint.info.text_encoders] == ["clip_l", "clip_g"]


def test_save_checkpoint_round_trips_non_standard_configs(tmp_path):
    """save_checkpoint records configs the shapes cannot show (heads, prediction), so loading reproduces outputs."""
    torch.manual_seed(0)
    unet = UNetModel(
        UNetConfig(
            model_channels=32,
            channel_mult=(1, 2),
            num_res_blocks=1,
            transformer_depth=(1, 1),
            context_dim=48,
            num_heads=2,
            prediction="v",
        )
    ).eval()
    vae = AutoencoderKL(VAEConfig(ch=32, ch_mult=(1, 1, 2, 2), num_res_blocks=1, scale_factor=0.5)).eval()
    encoder = PromptEncoder(
        {
            "clip_h": CLIPTextModel(
                TextEncoderConfig(
                    width=48, heads=3, layers=2, intermediate=96, activation="gelu", output_layer=-2, pad_token_id=0
                )
            ).eval()
        },
        pooled_from="clip_h",
    )
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(path, family="sd2", unet=unet, vae=vae, text_encoder=encoder)
    loaded = load_checkpoint(path)
    assert loaded.unet.config == unet.config and loaded.vae.config == vae.config
    assert loaded.text_encoder.encoders["clip_h"].config == encoder.encoders["clip_h"].config
    assert "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight" in open_state_dict(
        path
    )  # OpenCLIP layout
    cond = encoder.encode("a cat")
    assert max_relative_error(loaded.text_encoder.encode("a cat").context, cond.context) <= 1e-6
    x, t, _ = _unet_inputs()
    assert max_relative_error(loaded.unet(x, t, cond.context), unet(x, t, cond.context)) <= 1e-6
    metadata = json.loads(open_state_dict(path).metadata[METADATA_KEY])
    assert metadata["family"] == "sd2" and metadata["prediction"] == "v"


def test_a_refused_pickle_does_not_pass_on_torchs_advice_to_run_it(tmp_path):
    """torch's refusal says "re-running torch.load with weights_only set to False will likely succeed": not advice
    to pass on in a message about a file that can run code. The object it refused is named."""
    import os as os_module

    class Evil:
        def __reduce__(self):
            return (os_module.system, ("true",))

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": Evil()}, path)
    with pytest.raises(ModelLoadError) as failure:
        load_checkpoint(path, allow_pickle=True)
    message = str(failure.value)
    assert "system" in message
    assert "weights_only` set to `False`" not in message and "will likely succeed" not in message


@pytest.fixture
def lightning_callback(monkeypatch):
    """A class pickled as pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint (Lightning is not installed:
    fake modules let pickle write the name, as Lightning 1.x wrote it into sd-v1-4.ckpt's `callbacks`)."""
    import sys
    import types

    names = ["pytorch_lightning", "pytorch_lightning.callbacks", "pytorch_lightning.callbacks.model_checkpoint"]
    for name in names:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    callback = type("ModelCheckpoint", (), {"__module__": names[-1]})
    sys.modules[names[-1]].ModelCheckpoint = callback
    return callback


def _compvis_ckpt(state_dict: dict, callback: type, path, legacy: bool = False, replace_parts: dict | None = None):
    """Save a checkpoint shaped like the original CompVis .ckpt files (`replace_parts` swaps top-level entries)."""
    checkpoint = {"state_dict": state_dict, "global_step": 470000, "epoch": 6, "pytorch-lightning_version": "1.4.2",
                  "callbacks": {callback: {"best_model_score": None, "best_model_path": "/logs/last.ckpt"}}}
    torch.save({**checkpoint, **(replace_parts or {})}, path, _use_new_zipfile_serialization=not legacy)
    return path


@pytest.mark.parametrize("legacy", [False, True])
def test_compvis_ckpt_with_lightning_callbacks_loads_with_the_opt_in(sd1, tmp_path, lightning_callback, legacy):
    """sd-v1-4.ckpt's layout (a state_dict plus a Lightning ModelCheckpoint class in `callbacks`) loads with
    allow_pickle=True, the callback read as an inert stand-in; without the opt-in it is still refused."""
    path = _compvis_ckpt(_state(sd1.single_file, strip=False), lightning_callback, tmp_path / "sd-v1-4.ckpt", legacy)
    with pytest.raises(ModelLoadError, match="pickle.*allow_pickle=True"):
        load_checkpoint(path)
    unet = load_checkpoint(path, allow_pickle=True, components=("unet",)).unet
    x, t, context = _unet_inputs()
    assert max_relative_error(unet(x, t, context), load_unet(sd1.single_file)(x, t, context)) <= 1e-5


def test_lightning_stand_ins_only_hold_state(lightning_callback, tmp_path):
    """The stand-in found under the Lightning name is a TrainingCallbackState: calling or building it keeps what the
    pickle gave, nothing else; Lightning itself is never imported."""
    import sys

    from nodes.models.loading import TrainingCallbackState, allow_training_callback_globals

    class Rebuilt:
        def __reduce__(self):
            return (lightning_callback, ("monitor", 3))

    path = tmp_path / "callbacks.ckpt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "callbacks": {lightning_callback: Rebuilt()}}, path)
    for name in [n for n in sys.modules if n.startswith("pytorch_lightning")]:
        sys.modules.pop(name)                           # monkeypatch restores them; the loader must not need them
    allow_training_callback_globals()
    ((key, value),) = torch.load(path, weights_only=True)["callbacks"].items()
    assert issubclass(key, TrainingCallbackState) and key is type(value) and value.args == ("monitor", 3)
    assert "pytorch_lightning" not in sys.modules


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("allow", [False, True])
def test_hostile_pickles_never_run_code_with_the_lightning_names_allowed(tmp_path, lightning_callback, legacy, allow):
    """os.system via REDUCE, beside an allowed Lightning callback name or as that callback's state, is refused
    with and without the opt-in, and never runs."""
    import os as os_module

    marker = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self):
            return (os_module.system, (f"touch {marker}",))

    for index, extra in enumerate([{"payload": Evil()}, {"callbacks": {lightning_callback: Evil()}},
                                   {"state_dict": {"x": torch.zeros(1), "y": Evil()}}]):
        path = _compvis_ckpt({"x": torch.zeros(1)}, lightning_callback, tmp_path / f"evil{index}.ckpt", legacy,
                             replace_parts=extra)
        with pytest.raises(ModelLoadError, match="allow_pickle=True" if not allow else "system") as refusal:
            load_checkpoint(path, allow_pickle=allow)
        assert not marker.exists()
        assert "add_safe_globals" not in str(refusal.value)     # torch's advice to programmers, not to users


def test_load_unet_takes_the_chosen_family_for_a_prefixed_unet_only_file(sd1, tmp_path):
    """A UNet-only file that keeps the checkpoint's `model.diffusion_model.` prefix ignored LoadUNet's family."""
    from safetensors.torch import save_file

    from nodes.models.detect import UNET_PREFIX

    state = {k: v.contiguous() for k, v in _state(sd1.single_file, UNET_PREFIX, strip=False).items()}
    save_file(state, str(tmp_path / "prefixed_unet.safetensors"))
    unet = load_unet(tmp_path / "prefixed_unet.safetensors", family="sd1")
    x, t, context = _unet_inputs()
    assert max_relative_error(unet(x, t, context), load_unet(sd1.single_file)(x, t, context)) <= 1e-6


@pytest.mark.parametrize("heads, words", [(7, "do not divide the UNet's widths"), (0, "positive whole number")])
def test_a_diffusers_unet_config_with_impossible_heads_is_a_load_error(sd1, tmp_path, heads, words):
    """`attention_head_dim: 7` raised a bare ValueError from deep in the UNet; 0 was silently taken as 8."""
    import json
    import shutil

    folder = tmp_path / "pipe"
    shutil.copytree(sd1.folder, folder)
    config = json.loads((folder / "unet" / "config.json").read_text())
    config.pop("num_attention_heads", None)
    config["attention_head_dim"] = heads
    (folder / "unet" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=words):
        load_unet(folder)
