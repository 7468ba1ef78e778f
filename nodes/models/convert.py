"""Key maps between checkpoint layouts, so every layout loads into our LDM-shaped modules.

Our modules are named like the original single-file (LDM / CompVis, Rombach et al. 2022)
checkpoints for the UNet and VAE, and like Hugging Face ``CLIPTextModel`` for text encoders
(which SD 1.x single files already use). Other layouts are renamed here:

- diffusers folders (``unet/``, ``vae/``): ``unet_from_diffusers``, ``vae_from_diffusers``
  (the inverse of ``diffusers.loaders.single_file_utils.convert_ldm_*_checkpoint``);
  diffusers ``ControlNetModel``: ``controlnet_from_diffusers``.
- OpenCLIP text encoders (SD 2.x ``cond_stage_model.model.``, SDXL ``conditioner.embedders.1.model.``):
  ``clip_from_openclip`` (fused ``in_proj`` split into q/k/v, ``text_projection`` transposed) and,
  for writing files, ``clip_to_openclip``.
- HF CLIP text encoders saved with or without the ``text_model.`` prefix (transformers >= 5 and
  very old transformers omit it): ``clip_from_hf``.
- LDM layout itself: ``from_prefix`` (strip a prefix), ``vae_from_ldm`` (also accepts mid-block
  attention weights stored as 2-D Linear weights, as diffusers' exporter writes them).

A map is ``{our_key: KeySource(file_key, transform)}``; the loader reads each file tensor when
its module is built, so conversion needs only key names, never the tensors themselves.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial

import torch

# Keys that carry no weights our modules need: HF position-id buffers, OpenCLIP's logit scale
# and causal-mask buffer.
IGNORED_SUFFIXES = ("position_ids", "logit_scale", "attn_mask")


@dataclass(frozen=True)
class KeySource:
    """Where one of our tensors comes from: a key of the file and an optional transform."""

    key: str
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None

    def read(self, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        tensor = tensors[self.key]
        return tensor if self.transform is None else self.transform(tensor)


KeyMap = dict[str, KeySource]


def from_prefix(keys: Iterable[str], prefix: str) -> KeyMap:
    """Identity map of the keys under `prefix`, with the prefix stripped."""
    return {key[len(prefix) :]: KeySource(key) for key in keys if key.startswith(prefix) and not _ignored(key)}


def _ignored(key: str) -> bool:
    return key.endswith(IGNORED_SUFFIXES)


class ConversionError(ValueError):
    """Keys that no rule of a layout conversion knows; the loader reports them with the file name."""

    def __init__(self, what: str, unknown: list[str]):
        self.unknown = unknown
        shown = ", ".join(unknown[:8]) + (f" ... ({len(unknown)} in all)" if len(unknown) > 8 else "")
        super().__init__(f"{what}: no conversion rule for {shown}")


# --- UNet: diffusers -> LDM -------------------------------------------------------------------

_RESNET_FROM_DIFFUSERS = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}


def unet_from_diffusers(keys: Iterable[str], prefix: str = "") -> KeyMap:
    """Map diffusers ``UNet2DConditionModel`` keys to LDM UNet keys (``input_blocks.N.M...``)."""
    keys = [k for k in keys if k.startswith(prefix) and not _ignored(k)]
    names = [k[len(prefix) :] for k in keys]
    resnets_per_down = 1 + max(
        (int(m[1]) for n in names if (m := re.match(r"down_blocks\.0\.resnets\.(\d+)\.", n))), default=-1
    )
    if resnets_per_down == 0:
        raise ConversionError("diffusers UNet", ["(no down_blocks.0.resnets.* keys)"])
    per_level = resnets_per_down + 1  # ResBlocks + the downsample (LDM counts both as input blocks)
    up_with_attention = {int(m[1]) for n in names if (m := re.match(r"up_blocks\.(\d+)\.attentions\.", n))}
    mid_has_attention = any(n.startswith("mid_block.attentions.") for n in names)

    def convert(name: str) -> str | None:
        if m := re.fullmatch(r"time_embedding\.linear_([12])\.(.+)", name):
            return f"time_embed.{0 if m[1] == '1' else 2}.{m[2]}"
        if m := re.fullmatch(r"(?:add_embedding|class_embedding)\.linear_([12])\.(.+)", name):
            return f"label_emb.0.{0 if m[1] == '1' else 2}.{m[2]}"
        if m := re.fullmatch(r"conv_in\.(.+)", name):
            return f"input_blocks.0.0.{m[1]}"
        if m := re.fullmatch(r"conv_norm_out\.(.+)", name):
            return f"out.0.{m[1]}"
        if m := re.fullmatch(r"conv_out\.(.+)", name):
            return f"out.2.{m[1]}"
        if m := re.fullmatch(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)\.(.+)", name):
            index = 1 + int(m[1]) * per_level + int(m[2])
            return (
                f"input_blocks.{index}.0.{_RESNET_FROM_DIFFUSERS[m[3]]}.{m[4]}"
                if m[3] in _RESNET_FROM_DIFFUSERS
                else None
            )
        if m := re.fullmatch(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", name):
            return f"input_blocks.{1 + int(m[1]) * per_level + int(m[2])}.1.{m[3]}"
        if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", name):
            return f"input_blocks.{(int(m[1]) + 1) * per_level}.0.op.{m[2]}"
        if m := re.fullmatch(r"mid_block\.resnets\.([01])\.(\w+)\.(.+)", name):
            index = 0 if m[1] == "0" else (2 if mid_has_attention else 1)
            return (
                f"middle_block.{index}.{_RESNET_FROM_DIFFUSERS[m[2]]}.{m[3]}"
                if m[2] in _RESNET_FROM_DIFFUSERS
                else None
            )
        if m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", name):
            return f"middle_block.1.{m[1]}"
        if m := re.fullmatch(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)\.(.+)", name):
            index = int(m[1]) * per_level + int(m[2])
            return (
                f"output_blocks.{index}.0.{_RESNET_FROM_DIFFUSERS[m[3]]}.{m[4]}"
                if m[3] in _RESNET_FROM_DIFFUSERS
                else None
            )
        if m := re.fullmatch(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", name):
            return f"output_blocks.{int(m[1]) * per_level + int(m[2])}.1.{m[3]}"
        if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", name):
            block = int(m[1])
            position = 2 if block in up_with_attention else 1
            return f"output_blocks.{block * per_level + resnets_per_down}.{position}.conv.{m[2]}"
        return None

    return _apply(convert, keys, names, "diffusers UNet")


def controlnet_from_diffusers(keys: Iterable[str], prefix: str = "") -> KeyMap:
    """Map diffusers ``ControlNetModel`` keys to the original ControlNet (``cldm``) keys.

    The encoder copy is named as in the UNet (``unet_from_diffusers``); the rest:
    ``controlnet_down_blocks.i`` → ``zero_convs.i.0``, ``controlnet_mid_block`` →
    ``middle_block_out.0``, ``controlnet_cond_embedding`` (conv_in, blocks.j, conv_out) →
    ``input_hint_block`` convs 0, 2(j+1), and the last.
    """
    keys = [k for k in keys if k.startswith(prefix) and not _ignored(k)]
    names = [k[len(prefix) :] for k in keys]
    hint_blocks = 1 + max((int(m[1]) for n in names
                           if (m := re.match(r"controlnet_cond_embedding\.blocks\.(\d+)\.", n))), default=-1)

    def convert(name: str) -> str | None:
        if m := re.fullmatch(r"controlnet_down_blocks\.(\d+)\.(.+)", name):
            return f"zero_convs.{m[1]}.0.{m[2]}"
        if m := re.fullmatch(r"controlnet_mid_block\.(.+)", name):
            return f"middle_block_out.0.{m[1]}"
        if m := re.fullmatch(r"controlnet_cond_embedding\.conv_in\.(.+)", name):
            return f"input_hint_block.0.{m[1]}"
        if m := re.fullmatch(r"controlnet_cond_embedding\.blocks\.(\d+)\.(.+)", name):
            return f"input_hint_block.{2 * (int(m[1]) + 1)}.{m[2]}"
        if m := re.fullmatch(r"controlnet_cond_embedding\.conv_out\.(.+)", name):
            return f"input_hint_block.{2 * (hint_blocks + 1)}.{m[1]}"
        return None

    own = {i for i, n in enumerate(names) if convert(n) is not None}
    mapping = _apply(convert, [keys[i] for i in sorted(own)], [names[i] for i in sorted(own)], "diffusers ControlNet")
    mapping.update(unet_from_diffusers([k for i, k in enumerate(keys) if i not in own], prefix))
    return mapping


def _apply(
    convert: Callable[[str], str | None], keys: list[str], names: list[str], what: str, transforms=None
) -> KeyMap:
    """Build a KeyMap from a per-name rule; collect every name no rule knows into one error."""
    mapping: KeyMap = {}
    unknown = []
    for key, name in zip(keys, names):
        target = convert(name)
        if target is None:
            unknown.append(key)
            continue
        transform = transforms(target) if transforms else None
        mapping[target] = KeySource(key, transform)
    if unknown:
        raise ConversionError(what, unknown)
    return mapping


# --- VAE: diffusers -> LDM ----------------------------------------------------------------------

_VAE_ATTENTION_FROM_DIFFUSERS = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
    # diffusers < 0.14 names
    "query": "q",
    "key": "k",
    "value": "v",
    "proj_attn": "proj_out",
}


def as_conv_weight(tensor: torch.Tensor) -> torch.Tensor:
    """A Linear weight (out, in) as the equivalent 1x1 conv weight (out, in, 1, 1)."""
    return tensor[:, :, None, None] if tensor.ndim == 2 else tensor


def _vae_attention_transform(target: str):
    return as_conv_weight if re.search(r"mid\.attn_1\.(q|k|v|proj_out)\.weight$", target) else None


def vae_from_diffusers(keys: Iterable[str], prefix: str = "") -> KeyMap:
    """Map diffusers ``AutoencoderKL`` keys to LDM VAE keys (``encoder.down.0.block.0...``)."""
    keys = [k for k in keys if k.startswith(prefix) and not _ignored(k)]
    names = [k[len(prefix) :] for k in keys]
    levels = 1 + max((int(m[1]) for n in names if (m := re.match(r"decoder\.up_blocks\.(\d+)\.", n))), default=-1)

    def convert(name: str) -> str | None:
        if name.split(".")[0] in ("quant_conv", "post_quant_conv"):
            return name
        if m := re.fullmatch(r"(encoder|decoder)\.(conv_in|conv_out)\.(.+)", name):
            return name
        if m := re.fullmatch(r"(encoder|decoder)\.conv_norm_out\.(.+)", name):
            return f"{m[1]}.norm_out.{m[2]}"
        if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", name):
            return f"encoder.down.{m[1]}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", name):
            return f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
        if m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", name):
            return f"decoder.up.{levels - 1 - int(m[1])}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        if m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", name):
            return f"decoder.up.{levels - 1 - int(m[1])}.upsample.conv.{m[2]}"
        if m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.([01])\.(.+)", name):
            return f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        m = re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", name)
        if m and m[2] in _VAE_ATTENTION_FROM_DIFFUSERS:
            return f"{m[1]}.mid.attn_1.{_VAE_ATTENTION_FROM_DIFFUSERS[m[2]]}.{m[3]}"
        return None

    return _apply(convert, keys, names, "diffusers VAE", transforms=_vae_attention_transform)


def vae_from_ldm(keys: Iterable[str], prefix: str = "") -> KeyMap:
    """LDM VAE keys under `prefix`, accepting 2-D mid-attention weights (reshaped to 1x1 convs)."""
    mapping = from_prefix(keys, prefix)
    return {target: KeySource(source.key, _vae_attention_transform(target)) for target, source in mapping.items()}


# --- CLIP text encoders -------------------------------------------------------------------------


def clip_from_hf(keys: Iterable[str], prefix: str = "") -> KeyMap:
    """HF CLIP keys under `prefix`, adding the ``text_model.`` level where the file omits it."""
    mapping: KeyMap = {}
    for target, source in from_prefix(keys, prefix).items():
        if target.startswith(("embeddings.", "encoder.", "final_layer_norm.")):
            target = "text_model." + target
        mapping[target] = source
    return mapping


_OPENCLIP_BLOCK = {
    "ln_1": "layer_norm1",
    "ln_2": "layer_norm2",
    "attn.out_proj": "self_attn.out_proj",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
}


def _qkv_part(tensor: torch.Tensor, index: int) -> torch.Tensor:
    """One of q, k, v from OpenCLIP's fused in_proj weight (3*width, width) or bias (3*width,)."""
    return tensor.chunk(3, dim=0)[index].clone()


def _transpose(tensor: torch.Tensor) -> torch.Tensor:
    """OpenCLIP's text_projection is applied as x @ P; a Linear weight is P transposed."""
    return tensor.t().contiguous()


def clip_from_openclip(keys: Iterable[str], prefix: str = "") -> KeyMap:
    """Map OpenCLIP text-tower keys (``transformer.resblocks.N.attn.in_proj_weight``...) to HF CLIP keys."""
    keys = [k for k in keys if k.startswith(prefix) and not _ignored(k) and not k[len(prefix) :].startswith("visual.")]
    mapping: KeyMap = {}
    unknown = []
    for key in keys:
        name = key[len(prefix) :]
        if name == "token_embedding.weight":
            mapping["text_model.embeddings.token_embedding.weight"] = KeySource(key)
        elif name == "positional_embedding":
            mapping["text_model.embeddings.position_embedding.weight"] = KeySource(key)
        elif m := re.fullmatch(r"ln_final\.(weight|bias)", name):
            mapping[f"text_model.final_layer_norm.{m[1]}"] = KeySource(key)
        elif name == "text_projection":
            mapping["text_projection.weight"] = KeySource(key, _transpose)
        elif m := re.fullmatch(r"transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)", name):
            for index, part in enumerate("qkv"):
                target = f"text_model.encoder.layers.{m[1]}.self_attn.{part}_proj.{m[2]}"
                mapping[target] = KeySource(key, partial(_qkv_part, index=index))
        elif (m := re.fullmatch(r"transformer\.resblocks\.(\d+)\.(.+)\.(weight|bias)", name)) and m[
            2
        ] in _OPENCLIP_BLOCK:
            mapping[f"text_model.encoder.layers.{m[1]}.{_OPENCLIP_BLOCK[m[2]]}.{m[3]}"] = KeySource(key)
        else:
            unknown.append(key)
    if unknown:
        raise ConversionError("OpenCLIP text encoder", unknown)
    return mapping


def clip_to_openclip(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our (HF-layout) CLIP state dict in OpenCLIP layout, as SD 2.x / SDXL single files store it."""
    block_names = {ours: theirs for theirs, ours in _OPENCLIP_BLOCK.items()}
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        if key == "text_model.embeddings.token_embedding.weight":
            out["token_embedding.weight"] = tensor
        elif key == "text_model.embeddings.position_embedding.weight":
            out["positional_embedding"] = tensor
        elif m := re.fullmatch(r"text_model\.final_layer_norm\.(weight|bias)", key):
            out[f"ln_final.{m[1]}"] = tensor
        elif key == "text_projection.weight":
            out["text_projection"] = tensor.t().contiguous()
        elif m := re.fullmatch(r"text_model\.encoder\.layers\.(\d+)\.self_attn\.q_proj\.(weight|bias)", key):
            parts = [state_dict[f"text_model.encoder.layers.{m[1]}.self_attn.{p}_proj.{m[2]}"] for p in "qkv"]
            out[f"transformer.resblocks.{m[1]}.attn.in_proj_{m[2]}"] = torch.cat(parts, dim=0)
        elif re.fullmatch(r"text_model\.encoder\.layers\.\d+\.self_attn\.[kv]_proj\.(weight|bias)", key):
            continue  # fused with q above
        elif (m := re.fullmatch(r"text_model\.encoder\.layers\.(\d+)\.(.+)\.(weight|bias)", key)) and m[
            2
        ] in block_names:
            out[f"transformer.resblocks.{m[1]}.{block_names[m[2]]}.{m[3]}"] = tensor
        else:
            raise ConversionError("CLIP -> OpenCLIP", [key])
    return out
