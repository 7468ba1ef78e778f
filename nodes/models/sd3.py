"""Stable Diffusion 3 / 3.5: detection, loading (single file and diffusers folder) and prompt encoding.

An SD3 checkpoint is an MMDiT (mmdit.py) under ``model.diffusion_model.``, the 16-channel VAE
(vae.SD3_VAE) under ``first_stage_model.``, and up to three text encoders under
``text_encoders.{clip_l,clip_g,t5xxl}.transformer.`` (Hugging Face key layout); any of the
encoders may be absent (the SD3-medium release ships files with none, with the two CLIPs, and
with all three). A diffusers folder holds ``transformer/``, ``vae/``, ``text_encoder{,_2,_3}/``
and ``tokenizer_3/spiece.model``.

Objects:

* :func:`is_sd3_checkpoint`, :func:`detect_sd3_checkpoint` -> :class:`SD3Info`.
* :func:`load_sd3_checkpoint` / :func:`load_sd3_diffusers` -> ``loading.Checkpoint`` with
  family ``"sd3"``, prediction ``"flow"``, ``unet`` = the MMDiT, ``text_encoder`` = :class:`SD3TextEncoder`.
* :func:`load_t5_file` -- a T5 encoder on its own (``t5xxl_fp16.safetensors`` + its ``spiece.model``).
* :class:`SD3TextEncoder` -- prompt -> ``{"context": (B, 77 + T5 tokens, 4096), "y": (B, 2048)}``
  as diffusers' ``StableDiffusion3Pipeline.encode_prompt``: CLIP-L and CLIP-G penultimate hidden
  states (no final norm) side by side (768 + 1280), zero-padded to T5's width, followed on the
  token axis by T5's output; ``y`` = CLIP-L pooled ‖ CLIP-G pooled (both projected). A missing
  encoder contributes zeros of its shape (no T5: 77 zero tokens, as the reference does).

The library never imports the engine; errors are ``detect.ModelLoadError`` naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from .clip import CLIP_G, CLIP_L, CLIPTextModel, PromptEncoder, TextEncoderConfig
from .convert import KeySource, clip_from_hf, from_prefix, vae_from_diffusers, vae_from_ldm
from .detect import ModelLoadError, UNET_PREFIX, VAE_PREFIX, CheckpointInfo, detect_text_encoder_config, detect_vae_config
from .mmdit import MMDiT, MMDiTConfig, detect_mmdit_config, diffusers_key_map
from .t5 import T5Config, T5EncoderModel, detect_t5_config
from .t5_tokenizer import T5Tokenizer, TokenizerModelMissing, find_spiece_model
from .vae import SD3_VAE, AutoencoderKL, VAEConfig

__all__ = ["SD3_TEXT_PREFIXES", "CLIP_L_SD3", "CLIP_G_SD3", "SD3_SHIFT", "SD3Info", "SD3TextEncoder",
           "is_sd3_checkpoint", "is_sd3_folder", "detect_sd3_checkpoint", "load_text_encoder_file", "load_clip_file", "load_sd3_checkpoint", "load_sd3_diffusers", "load_t5_file"]

SD3_TEXT_PREFIXES = {
    "clip_l": "text_encoders.clip_l.transformer.",
    "clip_g": "text_encoders.clip_g.transformer.",
    "t5xxl": "text_encoders.t5xxl.transformer.",
}
# SD3 takes the penultimate hidden state of both CLIPs without the final LayerNorm, and both pooled
# outputs through their projections (diffusers: CLIPTextModelWithProjection, hidden_states[-2]).
CLIP_L_SD3 = replace(CLIP_L, output_layer=-2, final_norm=False, projection_dim=768)
CLIP_G_SD3 = CLIP_G
SD3_SHIFT = 3.0            # timestep shift of SD3 / SD3.5 (scheduler_config.json "shift"); not in the weights
CLIP_TOKENS = 77
T5_TOKENS = 256            # diffusers' max_sequence_length default for SD3
_MMDIT_KEY = "joint_blocks.0.x_block.attn.qkv.weight"
_T5_TIED = "encoder.embed_tokens.weight"  # tied to shared.weight: never loaded separately


def is_sd3_checkpoint(keys: Mapping[str, object] | Sequence[str]) -> bool:
    """True when the keys hold an MMDiT under ``model.diffusion_model.`` (or bare, as a transformer-only file)."""
    return UNET_PREFIX + _MMDIT_KEY in keys or _MMDIT_KEY in keys


def is_sd3_folder(folder: str | os.PathLike) -> bool:
    """True for a diffusers folder whose transformer/config.json is an SD3Transformer2DModel."""
    return _json(Path(folder) / "transformer" / "config.json").get("_class_name") == "SD3Transformer2DModel"


@dataclass(frozen=True)
class SD3Info:
    """What an SD3 single file holds: the MMDiT config, VAE config (or None), encoder configs (None = absent)."""

    mmdit: MMDiTConfig
    vae: VAEConfig | None
    clip_l: TextEncoderConfig | None
    clip_g: TextEncoderConfig | None
    t5: T5Config | None
    prefix: str = UNET_PREFIX
    text_layout: Mapping[str, object] = field(default_factory=dict)   # SD3TextEncoder keywords from the metadata
    shift: float | None = None             # the sampling shift the metadata records (None: SD3_SHIFT)

    @property
    def encoders(self) -> list[str]:
        return [name for name in ("clip_l", "clip_g", "t5xxl") if getattr(self, "t5" if name == "t5xxl" else name)]


def _under(shapes: Mapping[str, Sequence[int]], prefix: str) -> dict[str, tuple[int, ...]]:
    return {k[len(prefix):]: tuple(v) for k, v in shapes.items() if k.startswith(prefix)}


def _clip_shapes(shapes, prefix: str) -> dict[str, tuple[int, ...]]:
    return {target: tuple(shapes[source.key]) for target, source in clip_from_hf(shapes, prefix).items()}


def detect_sd3_checkpoint(shapes: Mapping[str, Sequence[int]], path: str | os.PathLike | None = None,
                          metadata: Mapping[str, str] | None = None) -> SD3Info:
    """Detect an SD3 / SD3.5 single file from its header (ModelLoadError naming the file and the part).

    A ``nodegraph.config`` metadata entry (written by nodegraph's own savers, e.g. the tiny flow
    model of nodes/training/flow_checkpoint.py) gives exact configs: ``mmdit``, ``vae`` and
    ``text_encoders.{clip_l,clip_g}`` fields override what the shapes show, ``sd3_text`` holds
    SD3TextEncoder keywords (``clip_widths``, ``pooled_dims``, ``clip_tokens``, ``empty_t5_tokens``)
    and ``shift`` the sampling shift.
    """
    from .detect import apply_fields, parse_config_override

    override = parse_config_override(metadata, path)
    prefix = UNET_PREFIX if UNET_PREFIX + _MMDIT_KEY in shapes else ""
    try:
        mmdit = detect_mmdit_config(shapes, prefix)
    except (KeyError, ValueError) as error:
        raise ModelLoadError(f"SD3 MMDiT not recognised: missing {error}; the file looks truncated or mixed", path) from None
    mmdit = apply_fields(mmdit, override.get("mmdit"), "mmdit", path)
    vae = None
    if f"{VAE_PREFIX}encoder.conv_in.weight" in shapes:
        try:
            detected = detect_vae_config(shapes, VAE_PREFIX)
        except (KeyError, ValueError) as error:
            raise ModelLoadError(f"SD3 VAE at {VAE_PREFIX}* not recognised ({error})", path) from None
        vae = replace(SD3_VAE, **{f: getattr(detected, f) for f in ("in_channels", "out_channels", "ch", "ch_mult",
                                                                       "num_res_blocks", "z_channels", "use_quant_conv")})
        vae = apply_fields(vae, override.get("vae"), "vae", path)
        if vae.z_channels != mmdit.in_channels:
            raise ModelLoadError(f"the VAE has {vae.z_channels} latent channels but the MMDiT takes "
                                 f"{mmdit.in_channels}; the file mixes models", path)
    encoders: dict[str, object] = {}
    for name, base in (("clip_l", CLIP_L_SD3), ("clip_g", CLIP_G_SD3)):
        text_prefix = SD3_TEXT_PREFIXES[name]
        if any(k.startswith(text_prefix) for k in shapes):
            try:
                exact = (override.get("text_encoders") or {}).get(name) or {}
                encoders[name] = apply_fields(detect_text_encoder_config(_clip_shapes(shapes, text_prefix), base,
                                                                         heads=exact.get("heads")),
                                              exact, f"text encoder {name}", path)
            except (KeyError, ValueError) as error:
                raise ModelLoadError(f"text encoder {name} at {text_prefix}* not recognised ({error})", path) from None
    t5 = None
    if any(k.startswith(SD3_TEXT_PREFIXES["t5xxl"]) for k in shapes):
        try:
            t5 = detect_t5_config(shapes, SD3_TEXT_PREFIXES["t5xxl"])
        except (KeyError, ValueError) as error:
            raise ModelLoadError(f"T5 encoder at {SD3_TEXT_PREFIXES['t5xxl']}* not recognised (missing {error})",
                                 path) from None
    _check_widths(mmdit, encoders.get("clip_l"), encoders.get("clip_g"), t5, path)
    layout = dict(override.get("sd3_text") or {})
    unknown = sorted(set(layout) - {"clip_widths", "pooled_dims", "clip_tokens", "empty_t5_tokens"})
    if unknown:
        raise ModelLoadError(f'metadata "sd3_text" names unknown keys {unknown}; known: clip_widths, pooled_dims, '
                             f'clip_tokens, empty_t5_tokens', path)
    layout = {k: tuple(v) if isinstance(v, list) else v for k, v in layout.items()}
    shift = override.get("shift")
    if shift is not None and not (isinstance(shift, (int, float)) and shift > 0):
        raise ModelLoadError(f'metadata "shift" must be a positive number, got {shift!r}', path)
    return SD3Info(mmdit, vae, encoders.get("clip_l"), encoders.get("clip_g"), t5, prefix, layout,
                   None if shift is None else float(shift))


def _check_widths(mmdit: MMDiTConfig, clip_l, clip_g, t5, path) -> None:
    """The encoders must produce the widths the MMDiT reads (mismatched text encoders for the family)."""
    if t5 is not None and t5.d_model != mmdit.context_dim:
        raise ModelLoadError(f"the T5 encoder is {t5.d_model} wide but this MMDiT reads {mmdit.context_dim}-wide "
                             f"context; use the T5 that belongs to this model", path)
    if clip_l is not None and clip_g is not None:
        pooled = clip_l.projection_dim + clip_g.projection_dim
        if pooled != mmdit.pooled_dim or clip_l.width + clip_g.width > mmdit.context_dim:
            raise ModelLoadError(f"CLIP-L ({clip_l.width}, pooled {clip_l.projection_dim}) + CLIP-G ({clip_g.width}, "
                                 f"pooled {clip_g.projection_dim}) do not fit this MMDiT (pooled {mmdit.pooled_dim}, "
                                 f"context {mmdit.context_dim}); these are not SD3's text encoders", path)


class SD3TextEncoder(nn.Module):
    """SD3's three text encoders, each optional: prompt -> ``{"context", "y"}`` (see the module docstring).

    Args:
        clip_l, clip_g: CLIP text models with projections (configs CLIP_L_SD3 / CLIP_G_SD3), or None.
        t5: the T5 encoder or None; ``t5_tokenizer`` is required with it.
        context_dim: the MMDiT's context width (4096); pooled_dims: (CLIP-L, CLIP-G) pooled widths
            used for zeros when an encoder is absent (0: that encoder has no slot at all).
        clip_tokens: keep only the first N CLIP tokens (None: all 77 per chunk, as SD3); small models
            trained on short prompts (the tiny flow model) read fewer tokens for speed.
        empty_t5_tokens: zero tokens standing in for an absent T5 (77 as the reference; 0 = none).
    """

    def __init__(self, clip_l: CLIPTextModel | None, clip_g: CLIPTextModel | None, t5: T5EncoderModel | None = None,
                 t5_tokenizer: T5Tokenizer | None = None, *, context_dim: int = 4096,
                 pooled_dims: tuple[int, int] = (768, 1280), clip_widths: tuple[int, int] = (768, 1280),
                 clip_tokens: int | None = None, empty_t5_tokens: int = CLIP_TOKENS):
        super().__init__()
        if t5 is not None and t5_tokenizer is None:
            raise ValueError("t5_tokenizer: a T5 encoder needs its SentencePiece tokenizer (spiece.model)")
        self.clip_l = PromptEncoder({"clip_l": clip_l}, pooled_from="clip_l") if clip_l is not None else None
        self.clip_g = PromptEncoder({"clip_g": clip_g}, pooled_from="clip_g") if clip_g is not None else None
        self.t5 = t5
        self.t5_tokenizer = t5_tokenizer
        self.context_dim = context_dim
        self.pooled_dims = ((clip_l.config.projection_dim or clip_l.config.width) if clip_l else pooled_dims[0],
                            (clip_g.config.projection_dim or clip_g.config.width) if clip_g else pooled_dims[1])
        self.clip_tokens, self.empty_t5_tokens = clip_tokens, empty_t5_tokens
        self.clip_widths = (clip_l.config.width if clip_l else clip_widths[0],
                            clip_g.config.width if clip_g else clip_widths[1])

    @property
    def encoders(self) -> list[str]:
        return [n for n, m in (("clip_l", self.clip_l), ("clip_g", self.clip_g), ("t5xxl", self.t5)) if m is not None]

    def _device(self) -> torch.device:
        for parameter in self.parameters():
            return parameter.device
        return torch.device("cpu")

    @torch.no_grad()
    def encode(self, prompts: str | Sequence[str], *, use: Sequence[str] = ("clip_l", "clip_g", "t5xxl"),
               clip_skip: int = 1, t5_from: SD3TextEncoder | None = None) -> dict[str, torch.Tensor]:
        """``{"context": (B, 77*chunks + T5 tokens, context_dim), "y": (B, pooled)}`` in float32 on the CPU.

        ``use`` drops encoders at run time (zeros in their place, as when they are absent);
        ``t5_from`` takes the T5 (and its tokenizer) of another encoder, e.g. a separately loaded T5 file.
        """
        if t5_from is not None and t5_from.t5 is not None:
            if t5_from.t5.config.d_model != self.context_dim:
                raise ValueError(f"t5: the T5 encoder is {t5_from.t5.config.d_model} wide, this model reads "
                                 f"{self.context_dim}-wide context; load the T5 that belongs to this model")
            view = SD3TextEncoder.__new__(SD3TextEncoder)
            nn.Module.__init__(view)
            view.clip_l, view.clip_g, view.t5, view.t5_tokenizer = self.clip_l, self.clip_g, t5_from.t5, \
                t5_from.t5_tokenizer
            view.context_dim, view.pooled_dims, view.clip_widths = self.context_dim, self.pooled_dims, self.clip_widths
            view.clip_tokens, view.empty_t5_tokens = self.clip_tokens, self.empty_t5_tokens
            return view.encode(prompts, use=use, clip_skip=clip_skip)
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        batch = len(prompts)
        clip_parts, pooled_parts = [], []
        for encoder, width, pooled_width, name in ((self.clip_l, self.clip_widths[0], self.pooled_dims[0], "clip_l"),
                                                    (self.clip_g, self.clip_widths[1], self.pooled_dims[1], "clip_g")):
            if encoder is not None and name in use:
                cond = encoder.encode(prompts, clip_skip=clip_skip)
                clip_parts.append(cond.context.float().cpu())
                pooled_parts.append(cond.pooled.float().cpu())
            else:
                clip_parts.append(None)
                pooled_parts.append(torch.zeros(batch, pooled_width))
        tokens = max([p.shape[1] for p in clip_parts if p is not None], default=CLIP_TOKENS)
        clip_parts = [p if p is not None else torch.zeros(batch, tokens, w) for p, w in zip(clip_parts, self.clip_widths)]
        clip_context = torch.cat(clip_parts, dim=-1)  # (B, 77*chunks, 768 + 1280)
        clip_context = nn.functional.pad(clip_context, (0, self.context_dim - clip_context.shape[-1]))
        if self.clip_tokens:
            clip_context = clip_context[:, :self.clip_tokens]
        if self.t5 is not None and "t5xxl" in use:
            ids, _ = self.t5_tokenizer(prompts)
            t5_context = self.t5(ids.to(self._device())).float().cpu()  # (B, 256, d_model)
        else:
            t5_context = torch.zeros(batch, self.empty_t5_tokens, self.context_dim)
        return {"context": torch.cat([clip_context, t5_context], dim=1), "y": torch.cat(pooled_parts, dim=-1)}


# --- loading -----------------------------------------------------------------------------------


def _build(module_class, config, key_map, tensors, what, dtype, device):
    from .loading import build_module  # loading imports this module lazily too

    return build_module(module_class, config, key_map, tensors, what=what, dtype=dtype, device=device)


def _t5_key_map(keys, prefix: str):
    return {k: v for k, v in from_prefix(keys, prefix).items() if k != _T5_TIED}


def _tokenizer_for(weights: Path, t5: T5Config | None, max_length: int = T5_TOKENS) -> T5Tokenizer | None:
    if t5 is None:
        return None
    try:
        tokenizer = T5Tokenizer(find_spiece_model(weights), max_length=max_length)
    except TokenizerModelMissing as error:
        raise ModelLoadError(f"detected SD3 with a T5 encoder, but {error}", None) from None
    if tokenizer.vocab_size > t5.vocab_size:
        raise ModelLoadError(f"{tokenizer.model_file} has {tokenizer.vocab_size} pieces but the T5 embedding has "
                             f"{t5.vocab_size} rows: the tokenizer model belongs to another T5", weights)
    return tokenizer


def load_sd3_checkpoint(path: str | os.PathLike, *, components: Sequence[str] = ("unet", "vae", "text_encoder"),
                        dtype=None, device="cpu", allow_pickle: bool = False):
    """An SD3 single file as ``loading.Checkpoint`` (family ``"sd3"``); absent parts are None."""
    from .loading import Checkpoint, open_state_dict

    path = Path(path)
    tensors = open_state_dict(path, allow_pickle=allow_pickle)
    info = detect_sd3_checkpoint(tensors.shapes, path, tensors.metadata)
    mmdit = vae = text_encoder = None
    if "unet" in components:
        mmdit = _build(MMDiT, info.mmdit, from_prefix(tensors.shapes, info.prefix), tensors, "MMDiT", dtype, device)
    if "vae" in components and info.vae is not None:
        vae = _build(AutoencoderKL, info.vae, vae_from_ldm(tensors.shapes, VAE_PREFIX), tensors, "VAE", dtype, device)
    if "text_encoder" in components and (info.clip_l or info.clip_g or info.t5):
        clips = {name: _build(CLIPTextModel, config, clip_from_hf(tensors.shapes, SD3_TEXT_PREFIXES[name]), tensors,
                              f"text encoder {name}", dtype, device)
                 for name, config in (("clip_l", info.clip_l), ("clip_g", info.clip_g)) if config is not None}
        t5 = None
        if info.t5 is not None:
            tokenizer = _tokenizer_for(path, info.t5)
            t5 = _build(T5EncoderModel, info.t5, _t5_key_map(tensors.shapes, SD3_TEXT_PREFIXES["t5xxl"]), tensors,
                        "text encoder t5xxl", dtype, device)
        else:
            tokenizer = None
        text_encoder = SD3TextEncoder(clips.get("clip_l"), clips.get("clip_g"), t5, tokenizer,
                                      context_dim=info.mmdit.context_dim, **info.text_layout)
    if mmdit is not None and info.shift is not None:
        mmdit.sampling_shift = info.shift   # read by the MODEL wrapper (nodes.py sd3_diffusion_model)
    notes = (f"SD3 MMDiT depth {info.mmdit.depth}, hidden {info.mmdit.hidden}, qk_norm {info.mmdit.qk_norm}, "
             f"dual-attention blocks {len(info.mmdit.dual_attention_layers)}; text encoders {info.encoders or 'none'}",)
    checkpoint_info = CheckpointInfo(family="sd3", prediction="flow", unet=None, vae=info.vae, text_encoders=(),
                                     pooled_from=None, custom=False, inpainting=False, notes=notes)
    return Checkpoint(info=checkpoint_info, unet=mmdit, vae=vae, text_encoder=text_encoder)


def _json(path: Path) -> dict:
    import json

    return json.loads(path.read_text()) if path.is_file() else {}


def load_sd3_diffusers(folder: str | os.PathLike, *, components: Sequence[str] = ("unet", "vae", "text_encoder"),
                       dtype=None, device="cpu"):
    """An SD3 diffusers pipeline folder (``transformer/``, ``vae/``, ``text_encoder{,_2,_3}/``, ``tokenizer_3/``)."""
    from .loading import Checkpoint, _weights_in

    folder = Path(folder)
    mmdit = vae = text_encoder = None
    transformer_json = _json(folder / "transformer" / "config.json")
    if not transformer_json:
        raise ModelLoadError("expected an SD3 diffusers folder with transformer/config.json", folder)
    config = MMDiTConfig(
        depth=transformer_json["num_layers"], num_heads=transformer_json["num_attention_heads"],
        head_dim=transformer_json["attention_head_dim"], patch_size=transformer_json["patch_size"],
        in_channels=transformer_json["in_channels"], out_channels=transformer_json.get("out_channels") or
        transformer_json["in_channels"], context_dim=transformer_json["joint_attention_dim"],
        pooled_dim=transformer_json["pooled_projection_dim"], pos_embed_max_size=transformer_json["pos_embed_max_size"],
        qk_norm=transformer_json.get("qk_norm") is not None,
        dual_attention_layers=tuple(transformer_json.get("dual_attention_layers") or ()))
    if "unet" in components:
        tensors = _weights_in(folder / "transformer")
        key_map = {ours: _JoinedSource(sources, how) for ours, (sources, how) in diffusers_key_map(config).items()}
        missing = sorted({k for source in key_map.values() for k in source.keys if k not in tensors.shapes})
        if missing:
            raise ModelLoadError(f"transformer weights lack {len(missing)} keys the config needs, e.g. {missing[:3]}",
                                 folder / "transformer")
        mmdit = _build_joined(MMDiT, config, key_map, tensors, dtype, device)
    if "vae" in components and (folder / "vae").is_dir():
        tensors = _weights_in(folder / "vae")
        key_map = vae_from_diffusers(tensors.shapes)
        shapes = {t: tuple(tensors.shapes[s.key]) for t, s in key_map.items()}
        detected = detect_vae_config({t: _converted(s, shapes[t]) for t, s in key_map.items()})
        vae_json = _json(folder / "vae" / "config.json")
        vae_config = replace(SD3_VAE, **{f: getattr(detected, f) for f in (
            "in_channels", "out_channels", "ch", "ch_mult", "num_res_blocks", "z_channels", "use_quant_conv")},
            scale_factor=vae_json.get("scaling_factor", SD3_VAE.scale_factor),
            shift_factor=vae_json.get("shift_factor") or 0.0)
        vae = _build(AutoencoderKL, vae_config, key_map, tensors, "VAE", dtype, device)
    if "text_encoder" in components:
        clips = {}
        for name, sub, base in (("clip_l", "text_encoder", CLIP_L_SD3), ("clip_g", "text_encoder_2", CLIP_G_SD3)):
            if (folder / sub).is_dir():
                tensors = _weights_in(folder / sub)
                key_map = clip_from_hf(tensors.shapes)
                clip_json = _json(folder / sub / "config.json")
                clip_config = detect_text_encoder_config({t: tuple(tensors.shapes[s.key]) for t, s in key_map.items()},
                                                         base, heads=clip_json.get("num_attention_heads"))
                if clip_json.get("hidden_act") in ("gelu", "quick_gelu"):
                    clip_config = replace(clip_config, activation=clip_json["hidden_act"])
                clips[name] = _build(CLIPTextModel, clip_config, key_map, tensors, f"text encoder {name}", dtype, device)
        t5 = tokenizer = None
        if (folder / "text_encoder_3").is_dir():
            tensors = _weights_in(folder / "text_encoder_3")
            t5_config = detect_t5_config(tensors.shapes)
            tokenizer = _tokenizer_for(folder, t5_config)
            t5 = _build(T5EncoderModel, t5_config, _t5_key_map(tensors.shapes, ""), tensors, "text encoder t5xxl",
                        dtype, device)
        if clips or t5 is not None:
            _check_widths(config, clips["clip_l"].config if "clip_l" in clips else None,
                          clips["clip_g"].config if "clip_g" in clips else None, t5.config if t5 else None, folder)
            text_encoder = SD3TextEncoder(clips.get("clip_l"), clips.get("clip_g"), t5, tokenizer,
                                          context_dim=config.context_dim)
    info = CheckpointInfo(family="sd3", prediction="flow", unet=None, vae=vae.config if vae else None,
                          text_encoders=(), pooled_from=None, custom=False, inpainting=False,
                          notes=(f"SD3 diffusers folder, MMDiT depth {config.depth}",))
    return Checkpoint(info=info, unet=mmdit, vae=vae, text_encoder=text_encoder)


def _converted(source: KeySource, shape: tuple[int, ...]) -> tuple[int, ...]:
    from .detect import converted_shape

    return converted_shape(source, shape)


@dataclass(frozen=True)
class _JoinedSource:
    """One of our tensors made from several diffusers tensors (fused qkv, swapped adaLN halves)."""

    keys: list[str]
    how: object


def _build_joined(module_class, config, key_map: dict[str, _JoinedSource], tensors, dtype, device) -> nn.Module:
    """Build on meta, then fill from several file tensors per parameter (build_module handles one-to-one maps).

    ``dtype`` is what build_module accepts: a torch dtype, None (the file's), or FP8 storage
    (a float8 dtype or ``precision.WeightStorage``: Linear / Conv weights kept narrow, upcast on use).
    """
    from .loading import _SkipInitialisation
    from .precision import narrow_weight_names, split_precision, store_weights, to_float8

    with torch.device("meta"), _SkipInitialisation():
        module = module_class(config)
    expected = module.state_dict()
    if set(expected) != set(key_map):
        raise ModelLoadError(f"MMDiT key map does not fit the config: {sorted(set(expected) ^ set(key_map))[:3]}",
                             tensors.path)
    storage, dtype = split_precision(dtype, device)
    narrow = narrow_weight_names(module) if storage is not None else set()
    loaded = {}
    for name, source in key_map.items():
        tensor = source.how([tensors[k] for k in source.keys])
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise ModelLoadError(f"transformer tensors for {name} have shape {list(tensor.shape)}, the config needs "
                                 f"{list(expected[name].shape)}; config.json does not match the weights", tensors.path)
        if name in narrow:
            loaded[name] = to_float8(tensor.to(device=device), storage)
        else:
            loaded[name] = tensor.to(device=device, dtype=dtype if dtype is not None else tensor.dtype)
    module.load_state_dict(loaded, strict=True, assign=True)
    if storage is not None:
        store_weights(module, storage, dtype)
    return module.eval().requires_grad_(False)


def load_t5_file(path: str | os.PathLike, *, dtype=None, device="cpu", allow_pickle: bool = False,
                 max_length: int = T5_TOKENS) -> tuple[T5EncoderModel, T5Tokenizer]:
    """A T5 encoder file (HF keys, optionally under ``text_encoders.t5xxl.transformer.``) and its tokenizer."""
    from .loading import open_state_dict

    path = Path(path)
    if path.is_dir():
        weights_folder = path / "text_encoder_3" if (path / "text_encoder_3").is_dir() else path
        from .loading import _weights_in

        tensors = _weights_in(weights_folder)
    else:
        tensors = open_state_dict(path, allow_pickle=allow_pickle)
    prefix = next((p for p in ("", SD3_TEXT_PREFIXES["t5xxl"], "encoder.", "text_encoder_3.")
                   if f"{p}shared.weight" in tensors.shapes), None)
    if prefix is None:
        raise ModelLoadError("expected a T5 encoder (shared.weight, encoder.block.N...), found other keys", path)
    try:
        config = detect_t5_config(tensors.shapes, prefix)
    except (KeyError, ValueError) as error:
        raise ModelLoadError(f"T5 encoder not recognised (missing {error}); the file may be truncated", path) from None
    try:
        tokenizer = T5Tokenizer(find_spiece_model(path), max_length=max_length)
    except TokenizerModelMissing as error:
        raise ModelLoadError(f"detected a T5 encoder ({config.num_layers} layers, width {config.d_model}), but "
                             f"{error}", None) from None
    model = _build(T5EncoderModel, config, _t5_key_map(tensors.shapes, prefix), tensors, "T5 encoder", dtype, device)
    return model, tokenizer


def load_text_encoder_file(path: str | os.PathLike, *, dtype=None, device="cpu",
                           allow_pickle: bool = False) -> tuple[SD3TextEncoder, str] | None:
    """(encoder, family) for an SD3 checkpoint (``"sd3"``) or a T5-only file (``"t5"``); None for other files."""
    from .loading import open_state_dict

    path = Path(path)
    if path.is_dir():
        if is_sd3_folder(path):
            return load_sd3_diffusers(path, components=("text_encoder",), dtype=dtype, device=device).text_encoder, "sd3"
        return None
    shapes = open_state_dict(path, allow_pickle=allow_pickle).shapes
    if is_sd3_checkpoint(shapes):
        ckpt = load_sd3_checkpoint(path, components=("text_encoder",), dtype=dtype, device=device,
                                   allow_pickle=allow_pickle)
        if ckpt.text_encoder is None:
            raise ModelLoadError("detected an SD3 checkpoint without text encoders (no text_encoders.* keys); load "
                                 "CLIP-L / CLIP-G / T5 files separately", path)
        return ckpt.text_encoder, "sd3"
    if any(f"{p}shared.weight" in shapes for p in ("", SD3_TEXT_PREFIXES["t5xxl"], "encoder.")) and any(
            ".SelfAttention." in k for k in shapes):
        t5, tokenizer = load_t5_file(path, dtype=dtype, device=device, allow_pickle=allow_pickle)
        return SD3TextEncoder(None, None, t5, tokenizer, context_dim=t5.config.d_model), "t5"
    return None


def load_clip_file(path: str | os.PathLike, role: str, *, dtype=None, device="cpu",
                   allow_pickle: bool = False) -> CLIPTextModel:
    """SD3's CLIP-L (``role="clip_l"``) or CLIP-G (``"clip_g"``) saved on its own: Hugging Face keys (with or
    without ``text_model.``, or under ``text_encoders.<role>.transformer.``) or OpenCLIP keys (bigG)."""
    from .convert import clip_from_openclip
    from .detect import describe_file_kind
    from .loading import open_state_dict

    base = {"clip_l": CLIP_L_SD3, "clip_g": CLIP_G_SD3}[role]
    tensors = open_state_dict(path, allow_pickle=allow_pickle)
    keys = tensors.shapes
    prefix = SD3_TEXT_PREFIXES[role] if any(k.startswith(SD3_TEXT_PREFIXES[role]) for k in keys) else ""
    if any(k.startswith(prefix + "transformer.resblocks.") for k in keys):
        key_map = clip_from_openclip(keys, prefix)
    else:
        key_map = clip_from_hf(keys, prefix)
    if "text_model.embeddings.token_embedding.weight" not in key_map:
        raise ModelLoadError(f"expected a {role.replace('_', '-').upper()} text encoder (text_model.* keys), found "
                             f"{describe_file_kind(keys)}", path)
    shapes = {target: _converted(source, tuple(keys[source.key])) for target, source in key_map.items()}
    try:
        config = detect_text_encoder_config(shapes, base)
    except (KeyError, ValueError) as error:
        raise ModelLoadError(f"{role} text encoder not recognised ({error})", path) from None
    if not config.projection_dim:
        raise ModelLoadError(f"this {role} file has no text_projection, which SD3 needs for its pooled vector; use "
                             f"the {role} file from the SD3 release (text_encoders/{role}.safetensors)", path)
    return _build(CLIPTextModel, config, key_map, tensors, f"text encoder {role}", dtype, device)
