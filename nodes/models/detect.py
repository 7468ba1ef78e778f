"""Which model a checkpoint holds, and its config, from key names and tensor shapes alone.

Nothing is read but the safetensors header: detection is instant even for 7 GB files.

Map
- ``ModelLoadError``: the one error type of this package (a ``ValueError``) whose message names
  the file, what was expected, what was found, and the fix.
- ``detect_checkpoint(shapes, metadata) -> CheckpointInfo``: family, prediction type, UNet /
  VAE / text-encoder configs and where each component's keys live in the file.
- ``detect_unet_config`` / ``detect_vae_config`` / ``detect_text_encoder_config``: one
  component's sizes from its LDM-layout (or HF-layout) keys.
- ``describe_file_kind(keys)``: a short name for what a file seems to be (a VAE, a LoRA...),
  for error messages when it is not what the caller expected.
- ``read_json_text(text, what, path)``: the one JSON reader for text that comes from a file (a
  safetensors header, its metadata, a folder's config.json): any parse failure, however deep or
  odd, is a ``ModelLoadError`` naming the file. ``parse_config_override`` and ``apply_fields``
  check the override's types (objects where objects belong, finite numbers where numbers do).

How each property is decided
- family (``sd1``, ``sd2``, ``sdxl-base``, ``sdxl-refiner``), i.e. how text conditions the UNet:
  from where the text encoders live (``cond_stage_model.transformer`` = OpenAI CLIP-L,
  ``cond_stage_model.model`` = OpenCLIP ViT-H, ``conditioner.embedders.0.transformer`` +
  ``conditioner.embedders.1.model`` = SDXL base, ``conditioner.embedders.0.model`` alone = SDXL
  refiner), falling back to the UNet's context width (768 / 1024 / 2048 / 1280) and label
  embedding. ``CheckpointInfo.custom`` says the sizes differ from the family's standard config
  (a small or distilled model); ``inpainting`` says the UNet takes 9 input channels.
- sizes: channel widths from conv / linear weight shapes, ResBlocks per level from the
  number of ``input_blocks``, transformer depth from the ``transformer_blocks.N`` indices,
  Linear vs conv ``proj_in`` from its rank, context width from ``attn2.to_k``.
- attention heads (not visible in shapes): the family convention, SD 1.x 8 heads, SD 2.x /
  SDXL 64-wide heads, CLIP 64-wide heads; a width that does not fit the convention is an error
  asking for the metadata override.
- prediction type (not visible in weights either): the ``prediction`` argument, else the
  metadata override, else safetensors metadata ``modelspec.prediction_type`` (``v`` /
  ``v_prediction`` / ``epsilon``) or a ``modelspec.architecture`` ending in ``-v``, else a
  ``v_pred`` marker key, else ``eps``. SD 2.x 768-v files carry none of these: load them with
  ``prediction="v"``.
- the metadata override: safetensors ``__metadata__["nodegraph.config"]``, a JSON object
  ``{"family": ..., "prediction": ..., "unet": {UNetConfig fields}, "vae": {VAEConfig fields},
  "text_encoders": {"clip_l": {TextEncoderConfig fields}, ...}}``; every part optional, given
  fields replace detected ones. ``loading.save_checkpoint`` writes it.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

import torch

from .clip import CLIP_G, CLIP_H, CLIP_L, CLIP_L_SDXL, TextEncoderConfig
from .controlnet import ControlNetConfig
from .convert import ConversionError, KeySource, clip_from_hf, clip_from_openclip
from .unet import SD1, SD2, SDXL_BASE, SDXL_REFINER, Prediction, UNetConfig
from .vae import SD_VAE, SDXL_VAE, VAEConfig

Family = Literal["sd1", "sd2", "sdxl-base", "sdxl-refiner"]
FAMILIES: tuple[Family, ...] = ("sd1", "sd2", "sdxl-base", "sdxl-refiner")
Shapes = Mapping[str, Sequence[int]]
METADATA_KEY = "nodegraph.config"
UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."


class ModelLoadError(ValueError):
    """A model file could not be loaded: the message says what was expected, what was found, and the fix."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


@dataclass(frozen=True)
class TextEncoderSpec:
    """One text encoder inside a checkpoint: its role name, key prefix, key layout and config."""

    name: str  # "clip_l", "clip_h" (SD 2.x ViT-H) or "clip_g" (SDXL ViT-bigG)
    prefix: str  # e.g. "cond_stage_model.transformer."
    layout: Literal["hf", "openclip"]
    config: TextEncoderConfig


@dataclass(frozen=True)
class CheckpointInfo:
    """What ``detect_checkpoint`` found; ``notes`` explain the decisions shapes could not make."""

    family: Family
    prediction: Prediction
    unet: UNetConfig | None
    vae: VAEConfig | None
    text_encoders: tuple[TextEncoderSpec, ...]
    pooled_from: str | None  # encoder whose pooled output the family uses
    custom: bool  # UNet sizes differ from the family's standard config
    inpainting: bool  # UNet takes latent + mask + masked-image latent (9 channels)
    notes: tuple[str, ...] = ()
    unet_prefix: str = UNET_PREFIX
    vae_prefix: str = VAE_PREFIX


# Where each family keeps its text encoders in LDM / SGM single files: (name, prefix, layout).
_TEXT_ENCODER_SLOTS = (
    ("clip_l", "cond_stage_model.transformer.", "hf"),
    ("clip_h", "cond_stage_model.model.", "openclip"),
    ("clip_l", "conditioner.embedders.0.transformer.", "hf"),
    ("clip_g", "conditioner.embedders.1.model.", "openclip"),
    ("clip_g", "conditioner.embedders.0.model.", "openclip"),
)
STANDARD_UNETS = {"sd1": SD1, "sd2": SD2, "sdxl-base": SDXL_BASE, "sdxl-refiner": SDXL_REFINER}
# Per family and encoder: the settings shapes cannot show (activation, layer, norm, padding).
ENCODER_ROLES = {
    ("sd1", "clip_l"): CLIP_L,
    ("sd2", "clip_h"): CLIP_H,
    ("sdxl-base", "clip_l"): CLIP_L_SDXL,
    ("sdxl-base", "clip_g"): CLIP_G,
    ("sdxl-refiner", "clip_g"): CLIP_G,
}
POOLED_FROM = {"sd1": "clip_l", "sd2": "clip_h", "sdxl-base": "clip_g", "sdxl-refiner": "clip_g"}


def _indices(keys: Iterable[str], pattern: str) -> set[int]:
    """Distinct integers captured by `pattern` (one group) over `keys`."""
    compiled = re.compile(pattern)
    return {int(m[1]) for key in keys if (m := compiled.match(key))}


def _encoder_sizes(s: Mapping[str, tuple[int, ...]], family: Family | None) -> tuple[dict[str, Any], int]:
    """UNetConfig fields readable from the down path (UNet or ControlNet keys), and the ResBlocks per level."""
    model_channels, in_channels = s["input_blocks.0.0.weight"][:2]
    input_count = 1 + max(_indices(s, r"input_blocks\.(\d+)\."))
    downsamples = sorted(_indices(s, r"input_blocks\.(\d+)\.0\.op\.weight"))
    levels = len(downsamples) + 1
    res_blocks, remainder = divmod(input_count - 1 - len(downsamples), levels)
    if remainder or res_blocks < 1:
        raise ValueError(f"{input_count} input blocks with {len(downsamples)} downsamples do not form equal levels")
    channel_mult, depth_in = [], []
    for level in range(levels):
        blocks = [1 + level * (res_blocks + 1) + i for i in range(res_blocks)]
        channel_mult.append(s[f"input_blocks.{blocks[0]}.0.out_layers.3.weight"][0] // model_channels)
        depths = {_depth(s, f"input_blocks.{b}") for b in blocks}
        if len(depths) > 1:
            raise ValueError(f"level {level} mixes transformer depths {sorted(depths)}; "
                             "only one depth per level is supported")
        depth_in.append(depths.pop())
    to_k = next((v for k, v in s.items() if k.endswith("attn2.to_k.weight")), None)
    proj_in = next((v for k, v in s.items() if k.endswith(".proj_in.weight")), None)
    adm = s.get("label_emb.0.0.weight")
    standard_sd1 = family in (None, "sd1")
    return {
        "in_channels": in_channels,
        "model_channels": model_channels,
        "channel_mult": tuple(channel_mult),
        "num_res_blocks": res_blocks,
        "transformer_depth": tuple(depth_in),
        "transformer_depth_middle": len(_indices(s, r"middle_block\.1\.transformer_blocks\.(\d+)\.")),
        "context_dim": to_k[1] if to_k else SD1.context_dim,
        "num_heads": 8 if standard_sd1 else -1,
        "num_head_channels": -1 if standard_sd1 else 64,
        "use_linear_in_transformer": bool(proj_in) and len(proj_in) == 2,
        "adm_in_channels": adm[1] if adm else 0,
    }, res_blocks


def _depth(s: Mapping[str, tuple[int, ...]], block: str) -> int:
    """Transformer blocks in `block`'s SpatialTransformer (0 = none)."""
    return len(_indices(s, re.escape(block) + r"\.1\.transformer_blocks\.(\d+)\."))


def detect_unet_config(shapes: Shapes, prefix: str = "", family: Family | None = None) -> UNetConfig:
    """UNet sizes from LDM-layout keys under `prefix`; heads follow `family`'s convention (None: sd1's)."""
    s = {k[len(prefix) :]: tuple(v) for k, v in shapes.items() if k.startswith(prefix)}
    if "input_blocks.0.0.weight" not in s:
        raise ValueError(f"no UNet keys under {prefix!r} (expected {prefix}input_blocks.0.0.weight)")
    sizes, res_blocks = _encoder_sizes(s, family)
    levels = len(sizes["channel_mult"])
    depth_out = []
    for level in range(levels):
        out_blocks = [(levels - 1 - level) * (res_blocks + 1) + i for i in range(res_blocks + 1)]
        out_depths = {_depth(s, f"output_blocks.{b}") for b in out_blocks}
        if len(out_depths) > 1:
            raise ValueError(f"level {level} mixes transformer depths {sorted(out_depths)}; "
                             "only one depth per level is supported")
        depth_out.append(out_depths.pop())
    depth_out = tuple(depth_out)
    return UNetConfig(
        **sizes,
        out_channels=s["out.2.weight"][0],
        transformer_depth_output=None if depth_out == sizes["transformer_depth"] else depth_out,
    )


def detect_controlnet_config(shapes: Shapes, prefix: str = "", family: Family | None = None) -> ControlNetConfig:
    """ControlNet sizes from original-layout keys under `prefix` (heads: `family`'s convention)."""
    s = {k[len(prefix) :]: tuple(v) for k, v in shapes.items() if k.startswith(prefix)}
    if "input_hint_block.0.weight" not in s or "input_blocks.0.0.weight" not in s:
        raise ValueError(f"no ControlNet keys under {prefix!r} (expected {prefix}input_hint_block.0.weight)")
    sizes, _ = _encoder_sizes(s, family)
    convs = sorted(_indices(s, r"input_hint_block\.(\d+)\.weight"))
    widths = tuple(s[f"input_hint_block.{i}.weight"][0] for i in convs[:-1:2])
    return ControlNetConfig(unet=UNetConfig(**sizes, out_channels=sizes["in_channels"]),
                            hint_channels=s["input_hint_block.0.weight"][1], hint_widths=widths)


def detect_vae_config(shapes: Shapes, prefix: str = "") -> VAEConfig:
    """VAE sizes from LDM-layout keys under `prefix` (scale factor and preview are the SD defaults)."""
    s = {k[len(prefix) :]: tuple(v) for k, v in shapes.items() if k.startswith(prefix)}
    if "encoder.conv_in.weight" not in s:
        raise ValueError(f"no VAE keys under {prefix!r} (expected {prefix}encoder.conv_in.weight)")
    ch, in_channels = s["encoder.conv_in.weight"][:2]
    levels = 1 + max(_indices(s, r"encoder\.down\.(\d+)\."))
    res_blocks = 1 + max(_indices(s, r"encoder\.down\.0\.block\.(\d+)\."))
    ch_mult = tuple(s[f"encoder.down.{i}.block.0.conv1.weight"][0] // ch for i in range(levels))
    return replace(
        SD_VAE,
        in_channels=in_channels,
        out_channels=s["decoder.conv_out.weight"][0],
        ch=ch,
        ch_mult=ch_mult,
        num_res_blocks=res_blocks,
        z_channels=s["decoder.conv_in.weight"][1],
        use_quant_conv="post_quant_conv.weight" in s,  # SD3's 16-channel VAE has no quant convs
    )


def detect_text_encoder_config(
    shapes: Shapes, base: TextEncoderConfig = CLIP_L, heads: int | None = None
) -> TextEncoderConfig:
    """Text-encoder sizes from HF-layout keys (``text_model.`` ...); other settings come from `base`.

    ``heads`` defaults to width / 64 (true of CLIP-L, OpenCLIP-H and bigG).
    """
    s = {k: tuple(v) for k, v in shapes.items()}
    vocab, width = s["text_model.embeddings.token_embedding.weight"]
    if heads is None and width % 64:
        raise ValueError(
            f"text encoder width {width} is not a multiple of 64, so its head count cannot be inferred; "
            f'add {{"text_encoders": {{"<name>": {{"heads": N}}}}}} to the "{METADATA_KEY}" metadata'
        )
    projection = s.get("text_projection.weight")
    layers = 1 + max(_indices(s, r"text_model\.encoder\.layers\.(\d+)\."))
    return replace(
        base,
        vocab_size=vocab,
        max_positions=s["text_model.embeddings.position_embedding.weight"][0],
        width=width,
        layers=layers,
        heads=heads or width // 64,
        intermediate=s["text_model.encoder.layers.0.mlp.fc1.weight"][0],
        projection_dim=projection[0] if projection else 0,
        output_layer=max(base.output_layer, -layers),
    )


def describe_file_kind(keys: Iterable[str]) -> str:
    """What a state dict looks like, in words, judged from its key names."""
    keys = list(keys)

    def has(pattern: str) -> bool:
        compiled = re.compile(pattern)
        return any(compiled.search(k) for k in keys)

    if has(r"^model\.diffusion_model\.input_blocks\.0\.0\.weight$"):
        return "a full Stable Diffusion checkpoint (LDM layout)"
    if has(r"^(model\.diffusion_model\.)?double_blocks\.0\.img_attn\.qkv\.weight$"):
        return "a Flux transformer (original layout)"
    if has(r"^single_transformer_blocks\.0\.") and has(r"^x_embedder\."):
        return "a Flux transformer (diffusers layout)"
    if has(r"^(model\.diffusion_model\.)?joint_blocks\.0\.x_block\.attn\.qkv\.weight$"):
        return "an SD3 / SD3.5 MMDiT (original layout)"
    if has(r"^transformer_blocks\.0\.attn\.add_q_proj\.") and has(r"^pos_embed\.proj\."):
        return "an SD3 / SD3.5 transformer (diffusers layout)"
    if has(r"^(encoder\.)?block\.0\.layer\.0\.SelfAttention\.") or has(r"^text_encoders\.t5xxl\."):
        return "a T5 text encoder"
    if has(r"lora_(unet|te\d?)_|\.lora_(down|up|A|B)\.|\.lora\.(down|up)\."):
        return "a LoRA"
    if has(r"^control_model\.|input_hint_block\.|^controlnet_cond_embedding\."):
        return "a ControlNet"
    if has(r"^(first_stage_model\.)?encoder\.(down\.|down_blocks\.)") and has(r"^(first_stage_model\.)?decoder\."):
        return "a VAE"
    if has(r"^input_blocks\.0\.0\.weight$"):
        return "a bare UNet (LDM keys without model.diffusion_model.)"
    if has(r"^down_blocks\.0\.resnets\.0\.") and has(r"^time_embedding\."):
        return "a diffusers UNet"
    if has(r"(^|\.)text_model\.|^embeddings\.token_embedding|^transformer\.resblocks\.|^token_embedding\."):
        return "a text encoder"
    if has(r"^(string_to_param|emb_params|clip_[lg])$|string_to_param\."):
        return "a textual-inversion embedding"
    prefixes: dict[str, int] = {}
    for key in keys:
        top = key.split(".")[0]
        prefixes[top] = prefixes.get(top, 0) + 1
    summary = ", ".join(f"{p}.* ({n})" for p, n in sorted(prefixes.items(), key=lambda item: -item[1])[:8])
    return f"an unknown architecture (top-level keys: {summary or 'none'})"


def read_json_text(text: str | bytes, what: str, path: str | os.PathLike | None = None) -> Any:
    """`text` parsed as JSON; invalid, too deep (RecursionError) or odd (a 5000-digit number) -> ModelLoadError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ModelLoadError(f"{what}: not valid JSON (nested thousands of levels deep, as no model file is); "
                             f"fix or remove it, or copy the file again", path) from None
    except ValueError as error:   # JSONDecodeError and UnicodeDecodeError are ValueErrors
        reason = ("a number thousands of digits long, as no model file has" if "integer string conversion" in
                  str(error) else str(error) if len(str(error)) <= 200 else str(error)[:200] + "...")
        raise ModelLoadError(f"{what}: not valid JSON ({reason}); fix or remove it, or copy the file again",
                             path) from None


# Sections of the override that must be JSON objects (None: absent), and those that must be strings.
_OVERRIDE_OBJECTS = ("unet", "vae", "text_encoders", "controlnet", "schedule", "flux", "mmdit", "sd3_text")
_OVERRIDE_STRINGS = ("family", "prediction")


def parse_config_override(metadata: Mapping[str, str] | None, path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The ``nodegraph.config`` JSON object from safetensors metadata ({} when absent), its sections type-checked."""
    text = (metadata or {}).get(METADATA_KEY)
    if not text:
        return {}
    override = read_json_text(text, f'metadata "{METADATA_KEY}"', path)
    if not isinstance(override, dict):
        raise ModelLoadError(f'metadata "{METADATA_KEY}" must be a JSON object, got {type(override).__name__}', path)
    for section, value in override.items():
        wrong = ((section in _OVERRIDE_OBJECTS and value is not None and not isinstance(value, dict))
                 or (section in _OVERRIDE_STRINGS and value is not None and not isinstance(value, str)))
        if wrong:
            kind = "a JSON object" if section in _OVERRIDE_OBJECTS else "a string"
            raise ModelLoadError(f'metadata "{METADATA_KEY}" {section!r} must be {kind}, got '
                                 f"{type(value).__name__}; fix or remove it", path)
    for name, encoder in (override.get("text_encoders") or {}).items():
        if not isinstance(encoder, dict):
            raise ModelLoadError(f'metadata "{METADATA_KEY}" text_encoders.{name} must be a JSON object, got '
                                 f"{type(encoder).__name__}; fix or remove it", path)
    if not isinstance((override.get("controlnet") or {}).get("unet") or {}, dict):
        raise ModelLoadError(f'metadata "{METADATA_KEY}" controlnet.unet must be a JSON object', path)
    return signed_preview_map(override)


#: ``nodegraph.config``'s ``"preview_map": "signed"``: its ``vae.latent_rgb_*`` map latents to [-1, 1], as
#: ``latent_preview`` reads every map (SD's, SDXL's, a fit). nodegraph's savers write it.
PREVIEW_MAP_SIGNED = "signed"


def signed_preview_map(override: dict[str, Any]) -> dict[str, Any]:
    """`override` with a preview map written before ``PREVIEW_MAP_SIGNED`` in ``latent_preview``'s [-1, 1] terms.

    TrainVAE fitted its map to pixels in [0, 1] (its bias about 0.5) while ``latent_preview`` maps [-1, 1] to
    [0, 1]: every tiny-world checkpoint's live preview was ``0.5 + image / 2``, a washed-out lavender picture
    nothing like the result (a mean difference of 0.31 from the decoded image). Such a map is ``2 W``, ``2 b - 1``
    in [-1, 1] terms. A map with no bias (SD's or SDXL's, saved with a stock VAE) is a published [-1, 1] one: kept.
    """
    vae = override.get("vae")
    if override.get("preview_map") == PREVIEW_MAP_SIGNED or not isinstance(vae, dict):
        return override
    factors, bias = vae.get("latent_rgb_factors"), vae.get("latent_rgb_bias")
    numbers = lambda v: isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) for x in v)  # noqa: E731
    if not (isinstance(factors, (list, tuple)) and all(numbers(row) for row in factors) and numbers(bias)) or not any(bias):
        return override     # a published map, or malformed: apply_fields says what is wrong with it
    signed = {**vae, "latent_rgb_factors": [[2 * x for x in row] for row in factors],
              "latent_rgb_bias": [2 * b - 1 for b in bias]}
    return {**override, "vae": signed}


def apply_fields(config, override: Mapping[str, Any] | None, what: str, path=None):
    """`config` with the fields named in `override` replaced (lists become tuples), each of the field's type."""
    if not override:
        return config
    known = {f.name for f in fields(config)}
    unknown = sorted(set(override) - known)
    if unknown:
        raise ModelLoadError(f"{what} override names unknown fields {unknown}; known: {sorted(known)}", path)
    for name, value in override.items():
        problem = _field_problem(getattr(config, name), value)
        if problem:
            raise ModelLoadError(f"{what} override field {name!r} = {_shown(value)} {problem}; fix or remove it", path)
    values = {k: _tuples(v) for k, v in override.items()}
    try:
        return replace(config, **values)
    except (TypeError, ValueError, ArithmeticError) as error:
        raise ModelLoadError(f"{what} override is inconsistent: {error}", path) from None


def _field_problem(current: Any, value: Any) -> str | None:
    """Why `value` cannot replace a field now holding `current` (the same JSON type, finite numbers); None if it can."""
    if isinstance(current, bool):
        return None if isinstance(value, bool) else "must be true or false"
    if isinstance(current, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be a whole number"
    if isinstance(current, float):
        return None if _finite_number(value) else "must be a finite number"
    if isinstance(current, str):
        return None if isinstance(value, str) else "must be a string"
    if isinstance(current, tuple) or current is None:
        if value is None and current is None:
            return None
        return None if _flat_list(value) else "must be a list of finite numbers or strings (at most 3 levels deep)"
    return None   # other field types (nested configs) are not set through overrides


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _flat_list(value: Any, depth: int = 3) -> bool:
    """A list of finite numbers or strings, nested at most `depth` levels."""
    if not isinstance(value, (list, tuple)) or depth == 0:
        return False
    return all(_finite_number(v) or isinstance(v, str) or _flat_list(v, depth - 1) for v in value)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "..."


def _tuples(value):
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def decide_prediction(
    prediction: str | None, override: Mapping[str, Any], metadata: Mapping[str, str] | None, keys: Iterable[str]
) -> tuple[Prediction, str]:
    """The prediction type and a note saying where it came from (see the module docstring)."""
    metadata = metadata or {}
    for value, source in (
        (prediction, "the prediction argument"),
        (override.get("prediction"), f'metadata "{METADATA_KEY}"'),
        (metadata.get("modelspec.prediction_type"), "metadata modelspec.prediction_type"),
    ):
        if value:
            normalized = {"eps": "eps", "epsilon": "eps", "v": "v", "v_prediction": "v", "v-prediction": "v"}.get(
                str(value).lower()
            )
            if normalized is None:
                fix = "" if source == "the prediction argument" else (
                    "; set the loader's prediction input to eps or v (LoadCheckpoint / LoadUNet: it overrides the "
                    "file), or fix the file's metadata")
                raise ValueError(
                    f"prediction type {value!r} from {source} is not one of eps / epsilon / v / v_prediction{fix}"
                )
            return normalized, f"prediction {normalized!r} from {source}"
    if str(metadata.get("modelspec.architecture", "")).endswith("-v"):
        return "v", "prediction 'v' from metadata modelspec.architecture"
    if "v_pred" in set(keys):
        return "v", "prediction 'v' from the v_pred marker key"
    return "eps", "prediction 'eps' (default: nothing in the file says otherwise; pass prediction='v' for SD 2.x 768-v)"


# How to name the family of a file `decide_family` cannot place, by the loader that read it (its `choose`).
FAMILY_METADATA_FIX = (f'add {{"family": "sd1" | "sd2" | "sdxl-base" | "sdxl-refiner"}} to the file\'s '
                       f'"{METADATA_KEY}" metadata')
CHOOSE_FAMILY = {
    "unet": f"choose it with LoadUNet's family input, or {FAMILY_METADATA_FIX}",
    "controlnet": f"choose it with LoadControlNet's family input, or {FAMILY_METADATA_FIX}",
    "checkpoint": "this is a UNet-only file (a UNet, no text encoders): move it to models/unet and load it with "
                  "LoadUNet, choosing its family input there",
}


def decide_family(
    unet: UNetConfig | None, encoder_names: Sequence[str], path=None, choose: str | None = None
) -> Family:
    """The family from which text encoders are present, else from the UNet's context and label embedding.

    `choose`: the calling loader's own fix (a CHOOSE_FAMILY entry) for the error when nothing tells the
    family; none: the file's metadata (FAMILY_METADATA_FIX)."""
    names = set(encoder_names)
    if {"clip_l", "clip_g"} <= names:
        return "sdxl-base"
    if names == {"clip_g"}:
        return "sdxl-refiner"
    if "clip_h" in names:
        return "sd2"
    if unet is not None:
        if unet.adm_in_channels:
            if unet.context_dim == 2048:
                return "sdxl-base"
            if unet.context_dim == 1280:
                return "sdxl-refiner"
        elif unet.context_dim == 1024:
            return "sd2"
        elif unet.context_dim == 768 or "clip_l" in names:
            return "sd1"
    if "clip_l" in names:
        return "sd1"
    found = f"context width {unet.context_dim}, label embedding {unet.adm_in_channels or 'none'}" if unet else "no UNet"
    raise ModelLoadError(
        f"cannot tell the model family ({found}, text encoders: {sorted(names) or 'none'}); "
        f"{choose or FAMILY_METADATA_FIX}",
        path,
    )


def detect_checkpoint(
    shapes: Shapes,
    metadata: Mapping[str, str] | None = None,
    *,
    prediction: str | None = None,
    path: str | os.PathLike | None = None,
    choose_family: str | None = None,
) -> CheckpointInfo:
    """Detect a single-file (LDM / SGM layout) checkpoint from its header.

    Args:
        shapes: tensor name -> shape for every tensor in the file.
        metadata: the safetensors ``__metadata__`` (may hold the ``nodegraph.config`` override).
        prediction: ``"eps"`` / ``"v"`` to override the prediction type.
        path: only used in error messages.
        choose_family: the calling loader's way to name a family nothing tells (``decide_family``'s
            ``choose``); None: LoadCheckpoint's (a UNet-only file belongs in models/unet); "": the metadata only.
    """
    keys = list(shapes)
    override = parse_config_override(metadata, path)
    if f"{UNET_PREFIX}input_blocks.0.0.weight" not in shapes:
        kind = describe_file_kind(keys)
        fix = ("put it in models/unet and load it with LoadFlux (flux.load_flux); its text encoders and VAE "
               "are separate files" if kind.startswith("a Flux") else
               "put it in models/loras and apply it to a loaded checkpoint with the LoadLoRA node"
               if "LoRA" in kind else
               "load VAEs, UNets and text encoders on their own with the LoadVAE / LoadUNet / LoadTextEncoder "
               "nodes (models/vae, models/unet, models/text_encoders)")
        raise ModelLoadError(f"expected a full checkpoint (UNet keys {UNET_PREFIX}*), found {kind}; {fix}", path)
    notes: list[str] = []
    try:
        pred, note = decide_prediction(prediction, override, metadata, keys)
    except ValueError as error:
        raise ModelLoadError(str(error), path) from None
    notes.append(note)

    slots = [
        (name, prefix, layout)
        for name, prefix, layout in _TEXT_ENCODER_SLOTS
        if any(k.startswith(prefix) for k in keys)
    ]
    try:
        unet = detect_unet_config(shapes, UNET_PREFIX)
    except (ValueError, KeyError) as error:
        raise ModelLoadError(f"UNet not recognised ({error}); is this an SD 1.x / 2.x / XL checkpoint?", path) from None
    if choose_family is None:
        choose_family = CHOOSE_FAMILY["checkpoint"] if not slots else ""
    family = override.get("family") or decide_family(unet, [name for name, _, _ in slots], path, choose_family)
    if family not in FAMILIES:
        raise ModelLoadError(f"metadata family {family!r} is not one of {FAMILIES}", path)
    notes.append(
        f"family {family} from metadata"
        if override.get("family")
        else f"family {family} from text encoders {[name for name, _, _ in slots]}, "
        f"UNet context width {unet.context_dim}, label embedding {unet.adm_in_channels or 'none'}"
    )
    if family == "sd2":  # SD 2.x keeps its OpenCLIP-H under the name clip_h whatever the layout
        slots = [("clip_h" if name == "clip_l" else name, prefix, layout) for name, prefix, layout in slots]

    standard = STANDARD_UNETS[family]
    unet = replace(unet, num_heads=standard.num_heads, num_head_channels=standard.num_head_channels)
    unet = replace(apply_fields(unet, override.get("unet"), "UNet", path), prediction=pred)
    check_heads(unet, path)
    custom = replace(unet, in_channels=standard.in_channels, prediction=standard.prediction) != standard

    vae = None
    if any(k.startswith(VAE_PREFIX) for k in keys):
        try:
            vae = detect_vae_config(shapes, VAE_PREFIX)
        except (ValueError, KeyError) as error:
            raise ModelLoadError(f"VAE not recognised ({error}); is it a KL autoencoder with f=8?", path) from None
        family_vae = SDXL_VAE if family.startswith("sdxl") else SD_VAE
        vae = replace(vae, scale_factor=family_vae.scale_factor, latent_rgb_factors=family_vae.latent_rgb_factors)
        vae = apply_fields(vae, override.get("vae"), "VAE", path)

    encoders = []
    encoder_overrides = override.get("text_encoders") or {}
    for name, prefix, layout in slots:
        role = ENCODER_ROLES.get((family, name))
        if role is None:
            raise ModelLoadError(f"a {family} checkpoint should not hold a text encoder at {prefix}*", path)
        hf_shapes = _hf_text_shapes(shapes, prefix, layout, path)
        encoder_override = encoder_overrides.get(name) or {}
        try:
            config = detect_text_encoder_config(hf_shapes, role, heads=encoder_override.get("heads"))
        except (ValueError, KeyError) as error:
            raise ModelLoadError(f"text encoder {name} at {prefix}*: {error}", path) from None
        config = apply_fields(config, encoder_override, f"text encoder {name}", path)
        encoders.append(TextEncoderSpec(name, prefix, layout, config))

    _check_family_fits(family, unet, [spec.name for spec in encoders], path)
    return CheckpointInfo(
        family=family,
        prediction=pred,
        unet=unet,
        vae=vae,
        text_encoders=tuple(encoders),
        pooled_from=POOLED_FROM[family] if any(e.name == POOLED_FROM[family] for e in encoders) else None,
        custom=custom,
        inpainting=unet.in_channels == 9,
        notes=tuple(notes),
    )


def _check_family_fits(family: Family, unet: UNetConfig, encoder_names: Sequence[str], path) -> None:
    """Refuse a metadata family the tensors contradict: SDXL needs its label embedding and pooled encoder."""
    if not family.startswith("sdxl"):
        return
    if not unet.adm_in_channels:
        raise ModelLoadError(f"the family is {family}, but the UNet has no label embedding (label_emb.*), which "
                             f"SDXL uses for its size conditioning; fix or remove \"family\" in the "
                             f'"{METADATA_KEY}" metadata', path)
    if encoder_names and POOLED_FROM[family] not in encoder_names:
        raise ModelLoadError(f"the family is {family}, but the file's text encoders {sorted(encoder_names)} lack "
                             f"{POOLED_FROM[family]}, whose pooled output SDXL needs; fix or remove \"family\" in "
                             f'the "{METADATA_KEY}" metadata', path)


def _hf_text_shapes(shapes: Shapes, prefix: str, layout: str, path) -> dict[str, tuple[int, ...]]:
    """Shapes of a text encoder under HF names (converted from OpenCLIP names when needed)."""
    try:
        mapping = clip_from_openclip(shapes, prefix) if layout == "openclip" else clip_from_hf(shapes, prefix)
    except ConversionError as error:
        raise ModelLoadError(str(error), path) from None
    return {target: converted_shape(source, shapes[source.key]) for target, source in mapping.items()}


def converted_shape(source: KeySource, shape: Sequence[int]) -> tuple[int, ...]:
    """The shape `source` yields from a file tensor of `shape` (its transform run on a meta tensor)."""
    if source.transform is None:
        return tuple(shape)
    return tuple(source.transform(torch.empty(tuple(shape), device="meta")).shape)


def unpickling_refusal(error: BaseException) -> str:
    """What torch.load(weights_only=True) refused in a pickle, without torch's advice to load it with
    weights_only=False (which would run the code nodegraph refuses to run): the line naming the object."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    named = [line for line in lines if "GLOBAL" in line or "Unsupported" in line or "WeightsUnpickler" in line]
    text = (named or [line for line in lines if "weights_only" not in line] or ["it holds Python objects"])[0]
    return text.split(" Please use `torch.serialization.add_safe_globals")[0][:300]   # advice for programmers


def check_heads(unet: UNetConfig, path) -> None:
    """Fail early, with the fix, when the head convention does not divide a transformer width."""
    for level, mult in enumerate(unet.channel_mult):
        if unet.transformer_depth[level] or (unet.transformer_depth_output or unet.transformer_depth)[level]:
            try:
                unet.heads_for(unet.model_channels * mult)
            except (ValueError, ArithmeticError) as error:
                raise ModelLoadError(
                    f"{error}: the attention head count of this non-standard UNet cannot be inferred; add "
                    f'{{"unet": {{"num_heads": N, "num_head_channels": -1}}}} to the "{METADATA_KEY}" metadata',
                    path,
                ) from None
