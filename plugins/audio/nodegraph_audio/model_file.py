"""The tiny text-to-audio model file: safetensors weights (float16) + JSON metadata (config, vocabulary, spectrogram).

    save_audio_model(path, net, spec, info)   write (the caller handles temp-file-then-rename)
    audio_model_from_weights(weights)         a mapping key → tensor with `.metadata` (api.open_weights, or
                                              safetensors' own reader) → (AudioDenoiser in float32, SpectrogramSpec)
    AudioModelError                           a file that is not such a model (names what is missing)

Metadata keys: "format" = "nodegraph_audio.tiny_t2a/1", "config" (AudioDenoiserConfig as JSON),
"vocabulary" (the word list, JSON), "spectrogram" (SpectrogramSpec as JSON), "info" (training notes).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

import torch

from .denoiser import AudioDenoiser, AudioDenoiserConfig
from .features import SpectrogramSpec
from .text import VOCABULARY

FORMAT = "nodegraph_audio.tiny_t2a/1"


class AudioModelError(ValueError):
    """A weights file that is not a tiny text-to-audio model of this plugin (or not a compatible one)."""


def save_audio_model(path: str | Path, net: AudioDenoiser, spec: SpectrogramSpec, info: Mapping[str, Any]) -> None:
    """Write the model's weights in float16 and its metadata to `path` (a .safetensors file)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu", torch.float16 if v.is_floating_point() else v.dtype).contiguous()
               for k, v in net.state_dict().items()}
    metadata = {"format": FORMAT, "config": json.dumps(net.config.to_dict()), "vocabulary": json.dumps(VOCABULARY),
                "spectrogram": json.dumps(asdict(spec)), "info": json.dumps(dict(info), default=str)}
    save_file(tensors, str(path), metadata=metadata)


def audio_model_from_weights(weights: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None,
                             ) -> tuple[AudioDenoiser, SpectrogramSpec]:
    """Build the denoiser (float32, eval) and its spectrogram spec from a weights mapping and its metadata."""
    metadata = dict(metadata if metadata is not None else getattr(weights, "metadata", None) or {})
    if metadata.get("format") != FORMAT:
        raise AudioModelError(f"not a tiny text-to-audio model of nodegraph-audio: metadata 'format' is "
                              f"{metadata.get('format')!r}, expected {FORMAT!r}")
    try:
        config = AudioDenoiserConfig.from_dict(json.loads(metadata["config"]))
        spec = SpectrogramSpec(**json.loads(metadata["spectrogram"]))
        vocabulary = tuple(json.loads(metadata["vocabulary"]))
    except (KeyError, TypeError, ValueError) as error:
        raise AudioModelError(f"the model file's metadata is damaged ({error!r})") from None
    if vocabulary != VOCABULARY:
        raise AudioModelError("the model was trained with another word list than this plugin's tokenizer; "
                              "retrain it with this version of nodegraph-audio")
    net = AudioDenoiser(config)
    expected = net.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise AudioModelError(f"the weights do not fit the config: missing {missing[:4]}, unexpected {unexpected[:4]}")
    state = {}
    for key, value in expected.items():
        tensor = weights[key]
        if tuple(tensor.shape) != tuple(value.shape):
            raise AudioModelError(f"{key}: shape {tuple(tensor.shape)} in the file, {tuple(value.shape)} expected")
        state[key] = tensor.to(value.dtype)
    net.load_state_dict(state)
    return net.eval(), spec
