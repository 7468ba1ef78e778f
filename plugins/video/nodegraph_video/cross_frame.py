"""Cross-frame attention: every frame's spatial self-attention also reads an anchor frame, so the clip keeps one look.

References: Khachatryan et al. 2023, "Text2Video-Zero" (§3.3, cross-frame attention: each frame's
self-attention takes its keys and values from the first frame), and Wu et al. 2023, "Tune-A-Video"
(§4.1, sparse-causal attention: the first and the previous frame). Both keep an object's colour,
shape and texture from drifting from frame to frame without training; the motion module still
moves it, because the queries stay each frame's own.

Map
- ``MODES``: how a frame's keys / values are formed:
    ``first``           the first frame's only (Text2Video-Zero)
    ``first_and_self``  the first frame's and its own, side by side (extended attention)
    ``first_and_previous``  the first and the previous frame's (Tune-A-Video's sparse-causal attention)
- ``anchor_keys(x, frames, mode)``: (B·F, heads, S, d) keys or values -> (B·F, heads, S', d) per mode.
- ``CrossFrameProcessor(mode, strength, frames)``: the attention processor a model patch installs on
  the UNet's self-attention layers (``processor(q, k, v, call, attend) -> out``); ``strength`` blends
  the cross-frame output with the plain one (1 = cross-frame only).

Layout: frames are folded into the batch axis clip-major (frames of clip 0 first), as everywhere in
the plugin; the clip length comes from the video samplers (``motion_module.clip_frames``) or the
processor's own ``frames``. Errors are ``MotionModuleError`` naming the input.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from .motion_module import MotionModuleError, clip_frames

__all__ = ["MODES", "CrossFrameProcessor", "anchor_keys"]

MODES = ("first", "first_and_self", "first_and_previous")


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise MotionModuleError("mode", f"unknown cross-frame mode {mode!r}; expected one of {', '.join(MODES)}")
    return mode


def anchor_keys(x: torch.Tensor, frames: int, mode: str) -> torch.Tensor:
    """Keys (or values) of each frame's cross-frame attention, concatenated along the token axis.

    x: (B·F, heads, S, d), clip-major. Returns (B·F, heads, S, d) for ``first`` and (B·F, heads, 2S, d)
    for the two-frame modes. Frame 0 reads itself under every mode (its first / previous frame is itself).
    """
    _check_mode(mode)
    batch_frames, heads, tokens, dim = x.shape
    clip = x.view(batch_frames // frames, frames, heads, tokens, dim)
    first = clip[:, :1].expand_as(clip)
    if mode == "first":
        return first.reshape(batch_frames, heads, tokens, dim)
    other = clip if mode == "first_and_self" else torch.cat([clip[:, :1], clip[:, :-1]], dim=1)
    return torch.cat([first, other], dim=3).reshape(batch_frames, heads, 2 * tokens, dim)


class CrossFrameProcessor:
    """Self-attention processor: queries of each frame, keys and values from the anchor frame(s) (``MODES``).

    ``strength`` in [0, 1] mixes the outputs: (1 - s) · plain + s · cross-frame (1 skips the plain one).
    ``frames`` is the clip length when no video sampler set one (0 = the sampler's).
    """

    def __init__(self, mode: str = "first_and_self", strength: float = 1.0, frames: int = 0):
        self.mode = _check_mode(mode)
        self.strength = float(strength)
        self.frames = int(frames)

    def clip_length(self, batch: int) -> int:
        return clip_frames(batch, self.frames, "cross-frame attention", "CrossFrameAttention")

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, call: Any,
                 attend: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        frames = self.clip_length(q.shape[0])
        if frames == 1 or self.strength == 0.0:
            return attend(q, k, v)
        crossed = attend(q, anchor_keys(k, frames, self.mode), anchor_keys(v, frames, self.mode))
        if self.strength == 1.0:
            return crossed
        return torch.lerp(attend(q, k, v), crossed, self.strength)
