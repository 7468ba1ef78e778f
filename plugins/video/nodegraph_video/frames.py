"""The frame-batch layout and the operations on it; prompt travel; temporal smoothing (plain torch).

Layout (docs/plugins.md "Tensor layouts"): a clip of F frames is an IMAGE (F, H, W, 3) or a LATENT
``{"samples": (F, C, h, w), "frames": F, "fps"?: float}``; B clips are stacked clip-major, (B·F, ...),
clip 0's frames first. Per-frame conditioning has one row per frame (B·F rows; batch 1 = every frame).

Map
- ``FramesError(ValueError)``: bad frame indices or layouts; ``input`` names the node input.
- ``frame_indices(spec, frames)``: "0, 2, -1", "1:5", "::2" → indices (Python slice / index syntax).
- ``pick`` / ``slice_frames`` / ``reverse`` / ``concat``: the same operation on every clip of a batch,
  for IMAGE tensors and LATENT dicts alike (``on_frames``).
- ``parse_keyframes(text, frames)``: "0: prompt | 7: prompt" (or one "N: prompt" per line), or FizzNodes' /
  ComfyUI's quoted schedule ``"0": "prompt", "7": "prompt",`` → [(frame, prompt)].
- ``schedule_warning(text, keyframes)``: the warning when a text looks like a schedule of more keyframes than were
  read from it (its "N:" entries ended up inside one prompt).
- ``travel_weights(keyframes, frames)``: per frame, the two keyframes around it and the blend weight.
- ``temporal_smooth(frames, sigma)``: Gaussian smoothing along time (the non-model interpolation baseline),
  ``crossfade(a, b, count)``: linear in-betweens of two frames.
- ``FrameCorrelatedNoise(seed, frames, correlation)``: initial noise with a component shared by a clip's
  frames (for ``api.sample(noise=...)``); ``GivenNoise(seed, tensor)``: fixed initial noise.
- FreeInit (Wu et al. 2023): ``butterworth_low_pass`` (the spatio-temporal filter), ``filter_clips`` (3-D FFT
  per clip), ``free_init_restart`` (a sampled clip + its noise + fresh noise → the next start latent and noise).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import torch


class FramesError(ValueError):
    """A frame operation that cannot be done; ``input`` names the node input at fault."""

    def __init__(self, input: str, message: str):
        self.input = input
        super().__init__(message)


def frame_indices(spec: str, frames: int, argument: str = "frames") -> list[int]:
    """Indices selected by `spec` in a clip of `frames` frames: comma-separated indices and start:stop:step slices."""
    out: list[int] = []
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise FramesError(argument, "no frames selected; write indices such as '0, 3, -1' or a slice such as '2:6'")
    for part in parts:
        if ":" in part:
            pieces = part.split(":")
            if len(pieces) > 3 or not all(re.fullmatch(r"\s*-?\d*\s*", p) for p in pieces):
                raise FramesError(argument, f"{part!r} is not a slice (start:stop or start:stop:step)")
            start, stop, step = (int(p) if p.strip() else None for p in (pieces + [""] * 3)[:3])
            if step == 0:
                raise FramesError(argument, f"{part!r}: the step cannot be 0")
            out.extend(range(frames)[slice(start, stop, step)])
        else:
            if not re.fullmatch(r"-?\d+", part):
                raise FramesError(argument, f"{part!r} is not a frame index")
            index = int(part)
            if not -frames <= index < frames:
                raise FramesError(argument, f"frame {index} does not exist in a clip of {frames} frames "
                                            f"(valid: 0 … {frames - 1}, or -1 for the last)")
            out.append(index % frames)
    if not out:
        raise FramesError(argument, f"{spec!r} selects no frame of a clip of {frames} frames")
    return out


def _by_clip(tensor: torch.Tensor, frames: int) -> torch.Tensor:
    """(B·F, ...) → (B, F, ...)."""
    return tensor.view(tensor.shape[0] // frames, frames, *tensor.shape[1:])


def select(tensor: torch.Tensor, frames: int, indices: Sequence[int]) -> torch.Tensor:
    """The frames at `indices` (in that order) of every clip: (B·F, ...) → (B·len(indices), ...)."""
    clips = _by_clip(tensor, frames)[:, list(indices)]
    return clips.reshape(-1, *tensor.shape[1:])


def reverse(tensor: torch.Tensor, frames: int) -> torch.Tensor:
    """Every clip played backwards."""
    return _by_clip(tensor, frames).flip(1).reshape(tensor.shape)


def concat(a: torch.Tensor, frames_a: int, b: torch.Tensor, frames_b: int, argument: str = "b") -> torch.Tensor:
    """Clip k of `b` appended to clip k of `a` (same number of clips, same frame size)."""
    if a.shape[1:] != b.shape[1:]:
        raise FramesError(argument, f"frames of shape {tuple(b.shape[1:])} cannot follow frames of shape "
                                    f"{tuple(a.shape[1:])}; resize one clip first")
    clips_a, clips_b = a.shape[0] // frames_a, b.shape[0] // frames_b
    if clips_a != clips_b:
        raise FramesError(argument, f"{clips_b} clip(s) cannot follow {clips_a} clip(s); give the same number")
    return torch.cat([_by_clip(a, frames_a), _by_clip(b, frames_b)], dim=1).reshape(-1, *a.shape[1:])


def on_frames(value: Any, frames: int, operation: Callable[[torch.Tensor], torch.Tensor], new_frames: int) -> Any:
    """Apply `operation` to an IMAGE tensor or to a LATENT's samples (and noise mask); set the LATENT's frames."""
    if isinstance(value, dict):
        out = {**value, "samples": operation(value["samples"]), "frames": new_frames}
        mask = value.get("noise_mask")
        if mask is not None and mask.shape[0] == value["samples"].shape[0]:
            out["noise_mask"] = operation(mask)
        return out
    return operation(value)


# --- prompt travel -----------------------------------------------------------------------------


# A FizzNodes / ComfyUI prompt schedule entry: "N": "prompt" (JSON-style: \" and \\ escaped in the prompt)
_QUOTED_ENTRY = re.compile(r'"\s*(-?\d+)\s*"\s*:\s*"((?:[^"\\]|\\.)*)"', flags=re.S)
# a quoted schedule starts with its first '"N":' (after an optional "{"): a prompt that quotes a number later on
# ('a poster saying "2024": happy new year') is a prompt, not a schedule
_QUOTED_KEY = re.compile(r'\s*\{?\s*"\s*-?\d+\s*"\s*:')
# what reads as a keyframe: a frame number and a colon ("7:", '"7" :') at the start or after a separator
# (newline, "|", ",", "{"); not a time of day ("12:30") or a weight ("(red:1.2)")
_LOOSE_KEY = re.compile(r'(?:^|[\n|,{])\s*["\']?(-?\d+)["\']?\s*:(?!\d)')


def parse_keyframes(text: str, frames: int, argument: str = "prompts") -> list[tuple[int, str]]:
    """Keyframed prompts: "N: prompt" entries separated by newlines or "|"; N may be negative (from the end).

    FizzNodes' BatchPromptSchedule form (what ComfyUI AnimateDiff graphs carry), ``"0": "a red circle",`` with
    the frame numbers and prompts in double quotes, separated by commas and / or newlines (a trailing comma and
    surrounding braces allowed), is read too, as is a quoted prompt after an unquoted number (``0: "a red
    circle",``). A text without any "N:" is one prompt for every frame. Entries are sorted by frame; two entries
    for one frame, or a frame outside the clip, raise FramesError.
    """
    if _QUOTED_KEY.match(text):
        pairs = _quoted_entries(text, argument)
    else:
        entries = [e.strip() for e in re.split(r"\n|\|", text) if e.strip()]
        keyed = [re.fullmatch(r"(-?\d+)\s*:\s*(.*)", e, flags=re.S) for e in entries]
        if not any(keyed):
            return [(0, text.strip())]
        pairs = []
        for entry, match in zip(entries, keyed):
            if match is None:
                raise FramesError(argument, f"{entry!r} has no frame number; write 'N: prompt' (e.g. '0: a red "
                                            f"circle')")
            pairs.append((match[1], _unquoted(match[2].strip())))
    out: dict[int, str] = {}
    for number, prompt in pairs:
        frame = int(number)
        if not -frames <= frame < frames:
            raise FramesError(argument, f"keyframe {frame} is outside the clip of {frames} frames")
        frame %= frames
        if frame in out:
            raise FramesError(argument, f"frame {frame} has two prompts; give each keyframe once")
        out[frame] = prompt
    return sorted(out.items())


def _quoted_entries(text: str, argument: str) -> list[tuple[str, str]]:
    """(frame number, prompt) of each '"N": "prompt"' entry; anything between them but commas, whitespace and
    the braces around them is refused, naming it (a missing quote would otherwise swallow the next entry)."""
    pairs, position = [], 0
    for match in _QUOTED_ENTRY.finditer(text):
        _check_between(text[position:match.start()], argument)
        pairs.append((match[1], re.sub(r"\\(.)", r"\1", match[2], flags=re.S).strip()))
        position = match.end()
    _check_between(text[position:], argument)
    return pairs


def _check_between(gap: str, argument: str) -> None:
    """Refuse text between quoted schedule entries other than separators (",", whitespace, "{", "}")."""
    stray = gap.strip()
    if re.sub(r"[\s,{}]", "", stray):
        raise FramesError(argument, f"{stray[:60]!r} is not a '\"N\": \"prompt\"' entry; in a quoted schedule "
                                    f"write each keyframe as \"N\": \"prompt\", (e.g. \"0\": \"a red circle\",) "
                                    f"with the prompt's own quotes written \\\"")


def _unquoted(prompt: str) -> str:
    """A prompt written "in quotes" (with a trailing comma, as in a quoted schedule) without them; others as given."""
    match = re.fullmatch(r'"((?:[^"\\]|\\.)*)"\s*,?', prompt, flags=re.S)
    return re.sub(r"\\(.)", r"\1", match[1], flags=re.S).strip() if match else prompt


def schedule_warning(text: str, keyframes: Sequence[tuple[int, str]]) -> str | None:
    """The warning when `text` holds more things that read as keyframes ("7:", '"7":') than parse_keyframes read
    from it: entries not at the start of a line (or after "|") end up inside another keyframe's prompt, so the
    model is given the frame numbers as words. None when every one was read as a keyframe."""
    found = _LOOSE_KEY.findall(text)
    if len(found) < 2 or len(found) <= len(keyframes):
        return None
    read = ", ".join(str(frame) for frame, _ in keyframes)
    return (f"the prompts look like a schedule of {len(found)} keyframes (frames {', '.join(found)}) but "
            f"{len(keyframes)} {'was' if len(keyframes) == 1 else 'were'} read (frame {read}), so the others are "
            f"encoded as words of a prompt; write one 'N: prompt' per line or separated by '|' (e.g. '0: a red "
            f"circle | 7: a blue square'), or FizzNodes' '\"0\": \"a red circle\", \"7\": \"a blue square\"'")


def travel_weights(keyframes: Sequence[int], frames: int) -> list[tuple[int, int, float]]:
    """For each frame: (index of the keyframe before, index of the one after, weight of the later one).

    Frames before the first keyframe or after the last hold that keyframe (weight 0); between two
    keyframes the weight rises linearly from 0 to 1.
    """
    out = []
    for frame in range(frames):
        after = next((i for i, k in enumerate(keyframes) if k >= frame), len(keyframes) - 1)
        before = max((i for i, k in enumerate(keyframes) if k <= frame), default=0)
        if keyframes[after] < frame or after == before:
            out.append((before if keyframes[before] <= frame else after,) * 2 + (0.0,))
            continue
        span = keyframes[after] - keyframes[before]
        out.append((before, after, (frame - keyframes[before]) / span if span else 0.0))   # equal keyframes: hold
    return out


def blend_conditioning(conditionings: Sequence[dict], weights: Sequence[tuple[int, int, float]],
                       argument: str = "prompts") -> dict[str, torch.Tensor]:
    """Per-frame CONDITIONING: row k = lerp(cond[a], cond[b], w) for weights[k] = (a, b, w); batch-1 inputs."""
    keys = [k for k, v in conditionings[0].items() if torch.is_tensor(v)]
    for index, conditioning in enumerate(conditionings):
        for key in keys:
            value = conditioning.get(key)
            if not torch.is_tensor(value) or value.shape != conditionings[0][key].shape:
                raise FramesError(argument, f"prompt {index + 1} encodes to a different shape for {key!r} "
                                            f"({None if value is None else tuple(value.shape)} vs "
                                            f"{tuple(conditionings[0][key].shape)}); keep every prompt within one "
                                            f"77-token chunk or give them the same length")
    out = {}
    for key in keys:
        rows = [torch.lerp(conditionings[a][key][:1].float(), conditionings[b][key][:1].float(), w)
                for a, b, w in weights]
        out[key] = torch.cat(rows)
    return out


# --- baselines ---------------------------------------------------------------------------------


def temporal_smooth(tensor: torch.Tensor, frames: int, sigma: float) -> torch.Tensor:
    """Gaussian smoothing along time (std `sigma` frames, edges replicated) of every clip; sigma 0 = unchanged.

    A sigma far below one frame (down to the smallest positive float) gives the identity kernel, never NaN.
    """
    if sigma <= 0:
        return tensor.clone()
    radius = max(1, math.ceil(3 * sigma))
    # float64: in float32 a sigma under ~1e-45 rounds to 0, and 0 / 0 at the centre tap makes the kernel NaN
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).float()
    clips = _by_clip(tensor.float(), frames)
    index = (torch.arange(frames).view(-1, 1) + offsets.long().view(1, -1)).clamp(0, frames - 1)  # (F, K)
    gathered = clips[:, index]                                           # (B, F, K, ...)
    shape = (1, 1, -1) + (1,) * (tensor.ndim - 1)
    return (gathered * kernel.view(shape)).sum(2).reshape(tensor.shape).to(tensor.dtype)


def crossfade(first: torch.Tensor, last: torch.Tensor, count: int) -> torch.Tensor:
    """`count` frames from `first` to `last` inclusive, linearly blended: (count, ...) for (1, ...) inputs."""
    weights = torch.linspace(0.0, 1.0, count).view(-1, *([1] * (first.ndim - 1)))
    return first + (last - first) * weights


def slerp(a: torch.Tensor, b: torch.Tensor, weight: float) -> torch.Tensor:
    """Spherical interpolation of two noise tensors (keeps the Gaussian norm; Shoemake 1985)."""
    a_flat, b_flat = a.flatten().double(), b.flatten().double()
    cos = torch.clamp((a_flat @ b_flat) / (a_flat.norm() * b_flat.norm()), -1.0, 1.0)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-6:
        return torch.lerp(a, b, weight)
    out = (torch.sin((1 - weight) * omega) * a_flat + torch.sin(weight * omega) * b_flat) / torch.sin(omega)
    return out.view(a.shape).to(a.dtype)


class FrameCorrelatedNoise:
    """Initial noise whose frames share a component: ε_f = √c · ε_clip + √(1 - c) · ε_f (unit variance per frame).

    The mixed noise model of PYoCo (Ge et al. 2023, "Preserve Your Own Correlation"): frames of a video are
    far more alike than independent noise, so starting them from correlated noise makes the sampler keep
    one object's colour and shape across frames. `correlation` c = 0 is independent noise per frame.
    Deterministic: clip b's shared draw and frame k's own draw come from seeded CPU generators, so the same
    seed gives the same clip on any device. `seed` also seeds the samplers' per-step noise (api.sample).
    """

    def __init__(self, seed: int, frames: int, correlation: float):
        if not 0.0 <= correlation < 1.0:
            raise FramesError("noise_correlation", f"must be in [0, 1), found {correlation}")
        self.seed, self.frames, self.correlation = seed, frames, correlation

    def _draw(self, shape: tuple[int, ...], seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed % (2 ** 63))
        return torch.randn(shape, generator=generator)

    def generate(self, samples: torch.Tensor) -> torch.Tensor:
        total = samples.shape[0]
        if total % self.frames:
            raise FramesError("latent", f"{total} latent rows are not whole clips of {self.frames} frames")
        own = torch.stack([self._draw(tuple(samples.shape[1:]), self.seed + k) for k in range(total)])
        if self.correlation > 0:
            shared = torch.stack([self._draw(tuple(samples.shape[1:]), self.seed + 1_000_003 * (b + 1))
                                  for b in range(total // self.frames)])
            own = math.sqrt(1.0 - self.correlation) * own + math.sqrt(self.correlation) * \
                shared.repeat_interleave(self.frames, dim=0)
        return own.to(device=samples.device, dtype=samples.dtype)


# --- FreeInit: re-initialise the noise from a sampled clip's low frequencies ---------------------------


def butterworth_low_pass(frames: int, height: int, width: int, spatial_stop: float, temporal_stop: float,
                         order: int = 4) -> torch.Tensor:
    """(F, h, w) gain in FFT order (torch.fft.fftn's bins): 1 / (1 + d^(2·order)), d the normalised distance.

    Frequencies are normalised per axis to [-1, 1) (1 = Nyquist) and divided by the axis' stop frequency,
    d = √((ν_t / temporal_stop)² + (ν_y / spatial_stop)² + (ν_x / spatial_stop)²); the gain is 1/2 at d = 1.
    A zero stop frequency keeps only the axis' zero frequency (the mean along it).
    """
    def axis(count: int, stop: float) -> torch.Tensor:
        nu = torch.fft.fftfreq(count) * 2.0
        if stop <= 0:
            return torch.where(nu == 0, 0.0, math.inf)
        return nu / stop

    t, y, x = torch.meshgrid(axis(frames, temporal_stop), axis(height, spatial_stop), axis(width, spatial_stop),
                             indexing="ij")
    distance_squared = t ** 2 + y ** 2 + x ** 2
    return 1.0 / (1.0 + distance_squared ** order)


def filter_clips(tensor: torch.Tensor, frames: int, gain: torch.Tensor) -> torch.Tensor:
    """Multiply each clip's 3-D spectrum (over frames, rows, columns; per channel) by `gain` (F, h, w)."""
    batch_frames, channels, height, width = tensor.shape
    clips = tensor.float().reshape(batch_frames // frames, frames, channels, height, width).transpose(1, 2)
    spectrum = torch.fft.fftn(clips, dim=(-3, -2, -1)) * gain.to(clips.device)
    out = torch.fft.ifftn(spectrum, dim=(-3, -2, -1)).real
    return out.transpose(1, 2).reshape(batch_frames, channels, height, width).to(tensor.dtype)


def free_init_restart(sampled: torch.Tensor, initial_noise: torch.Tensor, fresh_noise: torch.Tensor, frames: int,
                      gain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """FreeInit's noise re-initialisation (Wu et al. 2023, §4), in the sampler's VE view: (start latent, noise).

    FreeInit diffuses the sampled clip z₀ back to the first noise level with the clip's own initial noise ε,
    z_T = z₀ + σ_max ε, keeps z_T's low spatio-temporal frequencies and replaces the high ones with fresh noise η.
    The filter is linear, so that start is LPF(z₀) + σ_max · (LPF(ε) + HPF(η)), HPF = 1 - LPF: the returned
    latent LPF(z₀) and noise LPF(ε) + HPF(η) give it when a sampler adds noise × σ_max to the latent.
    """
    start = filter_clips(sampled, frames, gain)
    noise = filter_clips(initial_noise, frames, gain) + filter_clips(fresh_noise, frames, 1.0 - gain)
    return start, noise


class GivenNoise:
    """An ``api.sample(noise=...)`` object with fixed initial noise (its shape must match the latent's)."""

    def __init__(self, seed: int, noise: torch.Tensor):
        self.seed, self.noise = seed, noise

    def generate(self, samples: torch.Tensor) -> torch.Tensor:
        if samples.shape != self.noise.shape:
            raise FramesError("latent", f"the latent is {tuple(samples.shape)} but the noise {tuple(self.noise.shape)}")
        return self.noise.to(device=samples.device, dtype=samples.dtype)
