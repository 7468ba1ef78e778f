"""Training loops for the VAE and the text-conditioned diffusion model (plain torch, no engine imports).

    TrainConfig            steps, batch, AdamW lr with its schedule (warm-up + cosine decay by default),
                           accumulation, clipping, EMA, bf16 autocast, seed, checkpoint interval
    lr_at(step, config)    the learning-rate schedule: cosine (linear warm-up, then cosine to min_lr),
                           linear (warm-up, then a straight line to min_lr), constant_with_warmup, constant
    min_snr_weights        per-item loss weights of min-SNR-γ (Hang et al. 2023) for eps / v targets
    DivergenceWatch        a run that blows up: an error when the loss or gradient goes inf / NaN (before
                           that step is taken), a warning when the gradient norm grows far past its start
    EMA, ema_decay_at      exponential moving average of weights (Polyak; seed notes Q29), with the decay
                           warm-up min(decay, (1+k)/(10+k)) so the random init does not linger
    train_vae(...)         KL autoencoder: L1 + MSE reconstruction + a small KL term, optionally on
                           random crops (the VAE is convolutional; crops cut the cost per step)
    train_diffusion(...)   UNet (+ text encoder) on precomputed latents: eps or v objective (Q26),
                           any training beta schedule (Q1, Q20), caption dropout for CFG,
                           loss-by-timestep report (Q3); multi-resolution size buckets
                           (DiffusionData.parts: one bucket per micro-batch)
    distill_text_encoder(...)  a student text encoder reads rewritten captions (filler words, word swaps) as
                           the teacher reads the originals: the frozen UNet's predictions must match
    train_controlnet(...)  a ControlNet on (latent, caption, hint) triples, the UNet and text encoder frozen:
                           the same eps / v objective, with the UNet taking the ControlNet's residuals
    TrainingRun            periodic checkpoints in a folder (and the final state) and exact resume
                           (model, EMA, optimiser, step, global RNG; batches and noise are functions
                           of the step), so an interrupted run loses at most one interval and a
                           finished one is not repeated. The state is training_state.safetensors
                           (tensors; RNG states as uint8) + training_state.json (step, scalars, the
                           tree's shape): nothing is unpickled; an old training_state.pt is refused
                           (TrainingStateError). A state whose settings differ only in `steps` (not
                           past the saved step) or `checkpoint_every` is continued; any other
                           difference starts again from step 0 with a warning naming the changes, and
                           the old state is kept as training_state_N.* (never overwritten)

Both loops call `progress(step, total, info)` every step (info: loss, lr, ...) — the
node layer turns that into progress events and interruption checks — and are
deterministic for a seed (single thread, same batches, same noise).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Literal, Sequence, get_args

import torch
import torch.nn.functional as F

Progress = Callable[[int, int, dict], None]
LrScheduler = Literal["cosine", "linear", "constant", "constant_with_warmup"]   # kohya's / diffusers' names
LR_SCHEDULERS: tuple[str, ...] = get_args(LrScheduler)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by both loops."""

    steps: int = 1000
    batch_size: int = 32
    lr: float = 4e-4
    min_lr: float = 1e-5             # the cosine / linear schedule decays to this
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_accumulation: int = 1       # micro-batches per optimiser step (effective batch = batch_size × this)
    grad_clip: float = 1.0           # max global grad norm; 0 = off
    ema_decay: float = 0.998         # 0 = no EMA
    mixed_precision: str = "no"      # "no" or "bf16" (autocast; CPU and CUDA)
    seed: int = 0
    checkpoint_every: int = 250      # optimiser steps between checkpoints (0 = only at the end)
    lr_scheduler: LrScheduler = "cosine"   # `lr_at`; cosine was the only one before
    noise_offset: float = 0.0        # noise + this · N(0, 1) per (item, channel); the loops of `_noised_batch`
    min_snr_gamma: float = 0.0       # min-SNR-γ loss weights (`min_snr_weights`), 0 = off; train_diffusion,
                                     # train_controlnet, train_lora (the other loops have losses of their own)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "grad_accumulation"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.mixed_precision not in ("no", "bf16"):
            raise ValueError(f"mixed_precision must be 'no' or 'bf16', got {self.mixed_precision!r}")
        if self.lr_scheduler not in LR_SCHEDULERS:
            raise ValueError(f"lr_scheduler must be one of {', '.join(LR_SCHEDULERS)}, got {self.lr_scheduler!r}")
        for name in ("noise_offset", "min_snr_gamma"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0 (0 = off), got {getattr(self, name)}")

    def __repr__(self) -> str:
        """The dataclass repr, less the fields added later while they hold their defaults: a run's identity is
        this text, so a state saved before a field existed still resumes (and its messages name the field when
        it changes, `_identity_settings` filling in the default)."""
        shown = [f for f in fields(self) if not (f.name in _LATER_FIELDS and getattr(self, f.name) == f.default)]
        return f"TrainConfig({', '.join(f'{f.name}={getattr(self, f.name)!r}' for f in shown)})"


_LATER_FIELDS = frozenset({"lr_scheduler", "noise_offset", "min_snr_gamma"})   # left out of its repr at their default


def lr_at(step: int, config: TrainConfig) -> float:
    """The learning rate of optimiser step `step` (0-based) under ``config.lr_scheduler``.

    cosine: linear warm-up to `lr`, then cosine decay to `min_lr` at the last step (Loshchilov & Hutter 2017);
    linear: the same warm-up, then a straight line to `min_lr`; constant_with_warmup: the warm-up, then `lr`;
    constant: `lr` from the first step (no warm-up, as kohya's and diffusers' "constant"). The warm-up reaches
    `lr` at its last step ((step + 1) / warmup_steps).
    """
    if config.lr_scheduler == "constant":
        return config.lr
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.lr_scheduler == "constant_with_warmup":
        return config.lr
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    if config.lr_scheduler == "linear":
        return config.lr + (config.min_lr - config.lr) * progress
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * progress))


def min_snr_weights(alphas_cumprod_t: torch.Tensor, gamma: float, objective: str) -> torch.Tensor:
    """Per-item loss weights of min-SNR-γ (Hang et al. 2023, §3.4), SNR = ᾱ / (1 − ᾱ): min(SNR, γ) / SNR for an
    eps target, min(SNR, γ) / (SNR + 1) for a v target (kohya's `apply_snr_weight`, diffusers' `snr_gamma`). The
    nearly clean timesteps, whose easy targets dominate the gradient, count less; an eps item at SNR 0 counts 1."""
    snr = alphas_cumprod_t / (1 - alphas_cumprod_t)
    if objective == "eps":
        return (gamma / snr).clamp(max=1.0)                     # = min(SNR, γ) / SNR, and 1 at SNR 0
    if objective == "v":
        return snr.clamp(max=gamma) / (snr + 1)
    raise ValueError(f"objective must be 'eps' or 'v', got {objective!r}")


def ema_decay_at(updates: int, decay: float, warmup: bool = True) -> float:
    """EMA decay for update number ``updates`` (0-based): min(decay, (1 + k) / (10 + k)) with warm-up.

    The warm-up (TensorFlow's ExponentialMovingAverage ``num_updates``; used by LDM and diffusers)
    stops the random initial weights from lingering: with a fixed decay 0.998 a fraction
    0.998^500 = 37 % of the initialisation remains after 500 updates, with the warm-up
    Π (1+k)/(10+k) = 9! · 500! / 509! ≈ 2e-19.
    """
    return min(decay, (1 + updates) / (10 + updates)) if warmup else decay


class EMA:
    """Exponential moving average of a module's floating-point parameters and buffers, with decay warm-up.

    ``updates`` counts the updates made (the trainers set it to the resumed step, one update
    per optimiser step), so a resumed run continues the same decay sequence.
    """

    def __init__(self, module: torch.nn.Module, decay: float, warmup: bool = True):
        self.decay = decay
        self.warmup = warmup
        self.updates = 0
        self.shadow = {k: v.detach().clone().float() for k, v in module.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        """shadow ← d · shadow + (1 − d) · weights, d = ``ema_decay_at(updates, decay)``."""
        decay = ema_decay_at(self.updates, self.decay, self.warmup)
        for key, value in module.state_dict().items():
            if key in self.shadow:
                self.shadow[key].lerp_(value.detach().float(), 1 - decay)
        self.updates += 1

    def load(self, shadow: dict[str, torch.Tensor], updates: int | None = None) -> None:
        """Restore a saved shadow (read on the CPU) onto the devices of the current one, after ``updates`` updates."""
        self.shadow = {key: value.to(self.shadow[key].device) for key, value in shadow.items()}
        if updates is not None:
            self.updates = updates

    @torch.no_grad()
    def copy_to(self, module: torch.nn.Module) -> None:
        """Load the averaged weights into `module`."""
        state = module.state_dict()
        for key, value in self.shadow.items():
            state[key].copy_(value.to(state[key].dtype))


def _autocast(config: TrainConfig, device: torch.device):
    if config.mixed_precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


class TrainingStateError(ValueError):
    """A saved training state that cannot be used (a pickle from an older version, a damaged file)."""


STATE_TENSORS = "training_state.safetensors"   # every tensor: model, optimiser, EMA, RNG states (uint8)
STATE_JSON = "training_state.json"             # everything else: step, identity, scalars, the tree's shape
LEGACY_STATE = "training_state.pt"             # pickled by earlier versions; refused, never unpickled
_MAX_STATE_JSON = 64 * 1024 * 1024


def _encode_state(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """A JSON tree for `value`: tensors go to `tensors` and are replaced by {"$tensor": key}.

    Dicts with non-string keys (the optimiser's parameter indices) and tuples keep their
    types through {"$dict": [[key, value], ...]} and {"$tuple": [...]}; anything else that
    is not JSON (a module, a function) is a TypeError: the state holds data only.
    """
    if isinstance(value, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value.detach().to("cpu").clone().contiguous()   # a copy: safetensors refuses shared storage
        return {"$tensor": key}
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: _encode_state(v, tensors) for k, v in value.items()}
        if not all(isinstance(k, (str, int, float, bool)) or k is None for k in value):
            raise TypeError(f"training state keys must be str / int / float / bool, found {list(value)[:5]}")
        return {"$dict": [[k, _encode_state(v, tensors)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"$tuple": [_encode_state(v, tensors) for v in value]}
    if isinstance(value, list):
        return [_encode_state(v, tensors) for v in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise TypeError(f"training state holds a {type(value).__name__}; only tensors, numbers, text, lists, "
                    f"tuples and dicts are saved")


def _decode_state(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of `_encode_state` (builds only dicts, lists, tuples, scalars and the file's tensors)."""
    if isinstance(tree, dict):
        if set(tree) == {"$tensor"}:
            return tensors[tree["$tensor"]]
        if set(tree) == {"$dict"}:
            return {k: _decode_state(v, tensors) for k, v in tree["$dict"]}
        if set(tree) == {"$tuple"}:
            return tuple(_decode_state(v, tensors) for v in tree["$tuple"])
        return {k: _decode_state(v, tensors) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_decode_state(v, tensors) for v in tree]
    return tree


def _rng_states() -> dict[str, Any]:
    """The global torch RNG states as uint8 tensors (CPU, and each CUDA device once CUDA is in use)."""
    states: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_rng_states(states: dict[str, Any] | None) -> None:
    if not states:
        return
    torch.set_rng_state(states["cpu"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


class TrainingRun:
    """A folder with the latest training state; `resume` restores it exactly, `save` writes it atomically.

    The state is two files, neither of them a pickle: `training_state.safetensors` (every
    tensor) and `training_state.json` (the step, the run's identity, scalars and the shape
    of the state tree, whose tensors are referenced by key). Both carry the same random
    `token`, so a tensor file from one save is never paired with the JSON of another. A
    `training_state.pt` left by an earlier version is refused with TrainingStateError,
    never unpickled.

    `identity` is what the state must match to be resumed (the nodes put the model
    config, the TrainConfig, a digest of the training data and of any starting weights in
    it). A saved state whose identity differs only in the TrainConfig's `steps` (raised, or
    lowered but not below the saved step) or `checkpoint_every` is continued from its step
    ("train longer", like `--resume_from_checkpoint`; the cosine schedule then stretches to
    the new length). Any other difference starts from step 0: `warn` is told which
    settings changed, and the first save moves the old files aside as
    `training_state_N.safetensors` / `.json` (the next free N) instead of replacing them.

    Args:
        folder: the run folder (None: no checkpoints, nothing resumed).
        identity: JSON-able settings (values that are not JSON are written with str()).
        warn: receives a one-paragraph message when a saved state is continued with a new
            length or set aside (a node passes ``self.context.warn``); default: the
            "nodegraph" logger.
        shown_as: how messages name the run (default: the folder's path).

    A save writes the pair under an exclusive lock of the folder and `resume` reads it under a shared one,
    so two runs that share a folder at the same time never mix their files (the last save wins).
    """

    def __init__(self, folder: str | os.PathLike | None, identity: dict, warn: Callable[[str], None] | None = None,
                 shown_as: str | None = None, budget: Any = None):
        self.folder = Path(folder) if folder else None
        self.budget = budget               # a server user's files.OutputBudget (context.services["output_budget"])
        self.identity = json.dumps(identity, sort_keys=True, default=str)
        self.warn = warn or logging.getLogger("nodegraph").warning
        self.shown = shown_as or str(self.folder)
        self.last_info: dict = {}          # the loop's last progress numbers, as saved (a finished run's report)
        self.last_loss_buckets: torch.Tensor | None = None   # (2, buckets) loss sums and counts, as saved
        self._set_aside = False            # an incompatible state was found: the first save moves it aside
        self.kept_step: int | None = None  # the step of the state in the folder (resumed or last saved), if any
        self._seen_token: str | None = None     # the token of the state this run read or last wrote
        self._told_shared = False

    @contextmanager
    def _folder_lock(self, exclusive: bool) -> Iterator[None]:
        """An flock on the run folder itself while the state pair is written (exclusive) or read (shared): two
        runs sharing a run_name at once (two processes, a sweep) wrote the same temporary files, and one died
        in os.replace or left one save's tensors beside the other's JSON. Each save is now whole; the last
        one wins. Without fcntl (Windows) there is no lock, as before."""
        try:
            import fcntl
        except ImportError:
            yield
            return
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)          # closing releases the lock

    @property
    def state_path(self) -> Path | None:
        """The tensor file of the state (the JSON file sits beside it)."""
        return self.folder / STATE_TENSORS if self.folder else None

    @contextmanager
    def restoring(self) -> Iterator[None]:
        """Around putting a resumed state into the modules and optimiser: a state that does not fit them (its
        JSON edited by hand, a damaged file) is a TrainingStateError naming the folder and the fix, not torch's
        "The size of tensor a (8) must match..."."""
        try:
            yield
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
            raise TrainingStateError(
                f"{self.shown}: its saved training state does not fit this run's networks ({type(exc).__name__}: "
                f"{str(exc)[:200]}): it was edited or damaged; delete that folder's training_state.* files to "
                f"start again, or choose another run_name") from None

    def resume(self) -> dict | None:
        """The saved state if it belongs to this run (same settings), else None; restores the global RNG too."""
        if self.folder is None:
            return None
        if not self.folder.is_dir():
            return None
        with self._folder_lock(exclusive=False):     # never half of another run's save
            return self._resume()

    def _resume(self) -> dict | None:
        tensors_path, json_path = self.folder / STATE_TENSORS, self.folder / STATE_JSON
        if not json_path.is_file() or not tensors_path.is_file():
            if (self.folder / LEGACY_STATE).is_file():
                raise TrainingStateError(
                    f"{self.folder / LEGACY_STATE}: a training state in the old pickle format; pickles are never "
                    f"opened (they can run code). Delete it (or the run folder) to start this run again, or "
                    f"choose another run_name")
            return None
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file

        fix = "delete the run folder (or choose another run_name) to start again"
        try:
            if json_path.stat().st_size > _MAX_STATE_JSON:
                raise ValueError(f"over {_MAX_STATE_JSON} bytes")
            saved = json.loads(json_path.read_text(encoding="utf-8"))
            tensors = load_file(str(tensors_path), device="cpu")
            with safe_open(str(tensors_path), framework="pt") as handle:   # the token is in its metadata
                token = (handle.metadata() or {}).get("token")
        except (OSError, ValueError, RecursionError, SafetensorError) as error:
            raise TrainingStateError(f"{self.folder}: the saved training state is damaged ({error}); {fix}") from None
        if not isinstance(saved, dict) or saved.get("token") != token or "state" not in saved:
            raise TrainingStateError(f"{self.folder}: {STATE_JSON} and {STATE_TENSORS} come from different saves "
                                     f"(or are damaged); {fix}")
        self._seen_token = token
        if saved.get("identity") != self.identity and not self._continues(saved):
            return None
        try:
            state = _decode_state(saved["state"], tensors)
        except (KeyError, TypeError, ValueError) as error:
            raise TrainingStateError(f"{self.folder}: the saved training state is damaged ({error}); {fix}") from None
        _restore_rng_states(state.pop("rng", None))
        step = saved.get("step")
        if isinstance(step, int) and step > 0:
            self.kept_step = step
            totals = _step_counts(self.identity)
            unfinished = not totals or step < max(totals)        # a finished run's re-run says nothing
            if saved.get("identity") == self.identity and unfinished:   # (a changed length said so already)
                self.warn(f"{self.shown}: resuming the saved training state from step {step} (the same settings); "
                          f"choose another run_name to train from the start")
        info, buckets = state.pop("info", None), state.pop("loss_buckets", None)
        self.last_info = dict(info) if isinstance(info, dict) else {}
        self.last_loss_buckets = buckets if isinstance(buckets, torch.Tensor) else None
        return state

    def _continues(self, saved: dict) -> bool:
        """Whether a state saved with other settings is continued (only its length changed); warns either way."""
        old, _ = _identity_settings(saved.get("identity"))
        new, lengths = _identity_settings(self.identity)
        changed = {key: (old.get(key, "(none)"), new.get(key, "(none)"))
                   for key in sorted(old.keys() | new.keys()) if old.get(key) != new.get(key)}
        step = saved.get("step") if isinstance(saved.get("step"), int) else None
        new_steps = _step_counts(self.identity)
        described = "; ".join(f"{key} {_shorten(a)} → {_shorten(b)}" for key, (a, b) in list(changed.items())[:6])
        described += f"; and {len(changed) - 6} more" if len(changed) > 6 else ""
        if not changed:
            return True                    # the same settings, written differently
        if step is not None and set(changed) <= lengths and all(step <= n for n in new_steps):
            longer = any(key.endswith(".steps") for key in changed)
            self.warn(f"{self.shown}: continuing the saved training state from step {step} ({described})"
                      + ("; the learning-rate schedule now runs to the new length" if longer else ""))
            return True
        past = (f" (the saved state is at step {step}, past the new length)"
                if step is not None and any(step > n for n in new_steps) else "")
        self.warn(f"{self.shown}: the saved training state (step {step}) was made with other settings: "
                  f"{described or 'unreadable settings'}{past}. Training starts again from step 0; the old state is "
                  f"kept as training_state_{self._next_free_number()}.* beside the new one (at the first "
                  f"checkpoint). To continue it instead, "
                  f"restore those settings (only `steps` may grow) and rename its two files back to "
                  f"training_state.*, or choose another run_name for the new run")
        self._set_aside = True
        return False

    def _kept_paths(self, number: int) -> list[Path]:
        return [self.folder / f"{Path(name).stem}_{number}{Path(name).suffix}" for name in (STATE_TENSORS, STATE_JSON)]

    def _next_free_number(self) -> int:
        """The N of the next free training_state_N.* pair."""
        for number in range(1, 10_000):
            if not any(path.exists() for path in self._kept_paths(number)):
                return number
        raise TrainingStateError(f"{self.shown}: 10000 kept training states exist; delete some of the "
                                 f"training_state_N.* files or choose another run_name")

    def _keep_old_state(self) -> None:
        """Move the incompatible saved state aside as training_state_N.{safetensors,json} (the next free N)."""
        self._set_aside = False
        kept = self._kept_paths(self._next_free_number())
        for current, target in zip((self.folder / STATE_TENSORS, self.folder / STATE_JSON), kept):
            if current.exists():
                os.replace(current, target)

    def save(self, state: dict) -> None:
        """Write `state` (tensors, numbers, text, lists, tuples, dicts) and the global RNG states."""
        if self.folder is None:
            return
        from safetensors.torch import save_file

        self.folder.mkdir(parents=True, exist_ok=True)
        tensors: dict[str, torch.Tensor] = {}
        tree = _encode_state({**state, "rng": _rng_states()}, tensors)
        if self.budget is not None:        # a user's storage limit holds for training states too (it did not: 242 MB)
            size = sum(t.numel() * t.element_size() for t in tensors.values())
            try:
                size -= (self.folder / STATE_TENSORS).stat().st_size       # it replaces the state before it
            except OSError:
                pass
            over = self.budget.spend(size) if size > 0 else None
            if over is not None:
                from nodegraph.errors import StorageLimitError

                raise StorageLimitError(f"{self.shown}: the training state {over}")
        token = os.urandom(16).hex()
        tensors_tmp, json_tmp = self.folder / (STATE_TENSORS + ".tmp"), self.folder / (STATE_JSON + ".tmp")
        with self._folder_lock(exclusive=True):     # one save at a time: its two files stay a pair
            self._tell_if_shared()
            if self._set_aside:
                self._keep_old_state()
            for stale in (tensors_tmp, json_tmp):   # left by a run killed mid-save (SIGTERM): ours to replace
                stale.unlink(missing_ok=True)
            save_file(tensors, str(tensors_tmp), metadata={"token": token, "format": "nodegraph.training_state/1"})
            json_tmp.write_text(json.dumps({"format": "nodegraph.training_state/1", "token": token,
                                            "identity": self.identity, "step": state.get("step"), "state": tree}),
                                encoding="utf-8")
            os.replace(tensors_tmp, self.folder / STATE_TENSORS)
            os.replace(json_tmp, self.folder / STATE_JSON)
            self._seen_token = token
        if isinstance(state.get("step"), int):
            self.kept_step = state["step"]

    def _tell_if_shared(self) -> None:
        """Warn once when the folder's state is no longer the one this run read or wrote: another run with the
        same run_name saved into it meanwhile (two at once: each save is whole, the last one wins, and the
        other's state is gone)."""
        if self._told_shared:
            return
        try:
            current = json.loads((self.folder / STATE_JSON).read_text(encoding="utf-8")).get("token")
        except (OSError, ValueError, AttributeError):
            return
        if current is not None and current != self._seen_token:
            self._told_shared = True
            self.warn(f"{self.shown}: another run saved its training state into this run folder while this one "
                      f"was training (the same run_name used twice at once); each save is whole, the last one "
                      f"wins and the other's state is replaced: give runs that train at the same time their own "
                      f"run_name")


def _step_counts(identity: str) -> list[int]:
    """The `steps` settings (TrainConfig's, ...) an identity records."""
    settings, lengths = _identity_settings(identity)
    return [int(settings[key]) for key in lengths if key.endswith(".steps") and settings[key].isdigit()]


_CALL = re.compile(r"([A-Za-z_]\w*)\((.*)\)", re.DOTALL)
_FIELD = re.compile(r"([A-Za-z_]\w*)=(.*)", re.DOTALL)


def _split_fields(text: str) -> list[str]:
    """Split a dataclass repr's argument list at its top-level ", " (brackets and quotes kept whole)."""
    parts, depth, quote, start, index = [], 0, "", 0, 0
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index].strip())
            start = index + 1
        index += 1
    parts.append(text[start:].strip())
    return parts


def _identity_settings(identity: Any) -> tuple[dict[str, str], set[str]]:
    """A saved identity (JSON text) as flat settings {"train.steps": "3", "data": "...", ...}, and the keys
    that only set the run's length (the TrainConfig's steps and checkpoint_every).

    Values that are dataclass reprs (``TrainConfig(steps=3, ...)``, ``VAEConfig(...)``) are split into
    one setting per field, and dicts ({"rank": 8, ...}) into one per key, so a message can name the field
    that changed ("lora.alpha", not the whole dict). A TrainConfig's later fields that its repr leaves out
    at their defaults are filled in, so a message says "train.lr_scheduler 'cosine' → 'linear'".
    """
    try:
        tree = json.loads(identity) if isinstance(identity, str) else None
    except ValueError:
        tree = None
    if not isinstance(tree, dict):
        return {"identity": str(identity)}, set()
    flat: dict[str, str] = {}
    lengths: set[str] = set()
    for key, value in tree.items():
        call = _CALL.fullmatch(value) if isinstance(value, str) else None
        parts = [_FIELD.fullmatch(part) for part in _split_fields(call.group(2))] if call else []
        if parts and all(parts):
            for part in parts:
                flat[f"{key}.{part.group(1)}"] = part.group(2)
            if call.group(1) == "TrainConfig":
                lengths |= {f"{key}.steps", f"{key}.checkpoint_every"}
                for later in fields(TrainConfig):
                    if later.name in _LATER_FIELDS:
                        flat.setdefault(f"{key}.{later.name}", repr(later.default))
        elif isinstance(value, dict) and value:
            for name, setting in value.items():
                flat[f"{key}.{name}"] = json.dumps(setting, sort_keys=True)
        else:
            flat[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return flat, lengths


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _batch_indices(count: int, batch: int, step: int, micro: int, seed: int) -> torch.Tensor:
    """Indices of one micro-batch, a pure function of (seed, step, micro): resumable without RNG state."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step * 97 + micro)
    return torch.randint(0, count, (batch,), generator=generator)


def _optimiser_step(parameters: Sequence[torch.nn.Parameter], optimiser: torch.optim.Optimizer,
                    config: TrainConfig, step: int, check: Callable[[float], None] | None = None) -> float:
    """Set the step's lr, clip the gradient, step and clear it; returns the gradient norm before clipping.
    `check` sees that norm before the step is taken (DivergenceWatch: an inf / NaN norm must not reach the
    weights)."""
    for group in optimiser.param_groups:
        group["lr"] = lr_at(step, config)
    norm = torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip) if config.grad_clip > 0 else torch.tensor(0.0)
    if check is not None:
        check(float(norm))
    optimiser.step()
    optimiser.zero_grad(set_to_none=True)
    return float(norm)


class TrainingDivergedError(ArithmeticError):
    """The loss or the gradient norm went inf / NaN: the next optimiser step would turn the weights into NaN."""


@dataclass
class DivergenceWatch:
    """Watches one run's loss and gradient norm for a blow-up (too high a learning rate, almost always).

    - A loss or gradient norm that is inf / NaN stops the run with TrainingDivergedError before that step
      reaches the weights: nothing useful can come out of it, and the saved state stays the last good one.
    - A gradient norm over GROWTH × the median of this run's first START_STEPS norms is warned about once,
      naming lr: the run goes on (a spike can settle), but its result is likely damaged. Measured on the tiny
      model (rank 4, batch 4): healthy runs grew to 15× (lr 2e-3) and 70× (lr 2e-2) their start, lr 0.1 hit
      75 000× (loss 0.2 → 1.5) and lr 1.0 10⁹× (report finding: 7.8e14); 1000× sits between them.

    A resumed run measures its start from the steps it trains itself. `check` is `_optimiser_step`'s check.
    """

    GROWTH = 1000.0
    START_STEPS = 10

    warn: Callable[[str], None]
    shown: str                             # how messages name the run ("training run 'zorb'")
    lr: float
    step: int = 0                          # the optimiser step being taken (set by the loop)
    loss: float = 0.0                      # its loss (set by the loop)
    start_norms: list = field(default_factory=list)    # this run's first START_STEPS gradient norms
    warned: bool = False

    def check(self, grad_norm: float) -> None:
        """Raise on an inf / NaN loss or norm; warn once on a norm far past the start's."""
        if not (math.isfinite(self.loss) and math.isfinite(grad_norm)):
            what = f"the loss is {self.loss}" if not math.isfinite(self.loss) else f"the gradient norm is {grad_norm}"
            raise TrainingDivergedError(
                f"{self.shown}: at step {self.step + 1} {what}: training diverged, and that step would turn every "
                f"weight into NaN, so the run stops (its saved state is the last checkpoint before it). The learning "
                f"rate {self.lr:g} is the likely cause: lower it (e.g. to {self.lr / 10:g}) and run again")
        if len(self.start_norms) < self.START_STEPS:
            self.start_norms.append(grad_norm)
        start = sorted(self.start_norms)[len(self.start_norms) // 2]
        if not self.warned and start > 0 and grad_norm > self.GROWTH * start:
            self.warned = True
            self.warn(f"{self.shown}: the gradient norm at step {self.step + 1} is {grad_norm:.3g}, "
                      f"{grad_norm / start:.0f}× its {start:.3g} at the start: the run is diverging and its result "
                      f"is likely damaged. The learning rate {self.lr:g} is the likely cause: lower it (e.g. to "
                      f"{self.lr / 10:g}) and train again")


def _start_or_resume(module: torch.nn.Module, config: TrainConfig,
                     run: TrainingRun) -> tuple[torch.optim.Optimizer, EMA | None, int]:
    """AdamW and EMA for one module, restored from the run's saved state if there is one: (optimiser, ema, step)."""
    optimiser = torch.optim.AdamW(module.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                  betas=(0.9, 0.99))
    ema = EMA(module, config.ema_decay) if config.ema_decay > 0 else None
    state = run.resume()
    if state is None:
        return optimiser, ema, 0
    with run.restoring():
        module.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        if ema is not None:
            ema.load(state["ema"], updates=state["step"])
    return optimiser, ema, state["step"]


def _loss_buckets(run: TrainingRun, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum, count) float64 accumulators of the loss per time bucket: zeros, or those the resumed state
    saved (``run.last_loss_buckets``, 2 × count), so a resumed run reports the whole run's figures."""
    saved = run.last_loss_buckets
    if saved is not None and tuple(saved.shape) == (2, count):
        return saved[0].double().clone(), saved[1].double().clone()
    return torch.zeros(count, dtype=torch.float64), torch.zeros(count, dtype=torch.float64)


def _checkpoint(run: TrainingRun, config: TrainConfig, done: int, module: torch.nn.Module,
                optimiser: torch.optim.Optimizer, ema: EMA | None, info: dict | None = None) -> None:
    """Save one module's training state every `checkpoint_every` steps and at the end (with the step's
    progress numbers `info`, which a resumed finished run reports: ``run.last_info``)."""
    if done == config.steps or (config.checkpoint_every and done % config.checkpoint_every == 0):
        run.save({"step": done, "model": module.state_dict(), "optimiser": optimiser.state_dict(),
                  "ema": ema.shadow if ema else None, **({"info": info} if info else {})})


# --- VAE ------------------------------------------------------------------------------------------

def vae_loss(vae: Any, images: torch.Tensor, generator: torch.Generator, kl_weight: float,
             sample_weight: float = 0.0, latent_noise: float = 0.0) -> tuple[torch.Tensor, dict]:
    """L1 + MSE reconstruction, plus kl_weight · KL(q(z|x) || N(0, I)) (Kingma & Welling 2014).

    The decoder sees mean + sample_weight · std · ε. Decoding a full posterior sample from
    the start (sample_weight 1) drowns the small initial means in unit noise and a small
    VAE then barely learns; the mean (sample_weight 0) with a small KL term trains quickly,
    and inference decodes the mean anyway (encode(sample=False)).

    ``latent_noise`` adds Gaussian noise of that std in the SCALED latent space (what the
    diffusion model sees) before decoding, so the decoder learns to decode latents that a
    sampler only approximates. (Tried against the shipped VAE's top-right corner code at 0.1
    and 0.5: it did not remove that blob; docs/training.md, "The corner blob".)
    """
    moments = vae.encode_moments(images)                            # (B, 2z, h, w)
    mean, logvar = moments.float().chunk(2, dim=1)
    logvar = logvar.clamp(-30.0, 20.0)
    z = mean
    if sample_weight > 0:
        z = mean + sample_weight * torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=generator)
    if latent_noise > 0:
        z = z + (latent_noise / vae.config.scale_factor) * torch.randn(mean.shape, generator=generator).to(z.device)
    recon = vae.decoder(vae.post_quant_conv(z.to(moments.dtype))).float()   # (B, 3, H, W)
    l1 = (recon - images).abs().mean()
    mse = F.mse_loss(recon, images)
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(dim=(1, 2, 3)).mean()
    return l1 + mse + kl_weight * kl, {"l1": l1.item(), "mse": mse.item(), "kl": kl.item()}


def random_crops(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """One random size×size window of each image (B, C, H, W) → (B, C, size, size); size 0 = whole images."""
    height, width = images.shape[-2:]
    if size <= 0 or (size >= height and size >= width):
        return images
    size_h, size_w = min(size, height), min(size, width)
    tops = torch.randint(0, height - size_h + 1, (len(images),), generator=generator).tolist()
    lefts = torch.randint(0, width - size_w + 1, (len(images),), generator=generator).tolist()
    return torch.stack([image[:, top:top + size_h, left:left + size_w]
                        for image, top, left in zip(images, tops, lefts)])


def train_vae(vae: Any, images: torch.Tensor, config: TrainConfig, progress: Progress,
              run: TrainingRun | None = None, kl_weight: float = 1e-6, crop: int = 0,
              train_encoder: bool = True, latent_noise: float = 0.0) -> dict:
    """Train a KL autoencoder on `images` (N, 3, H, W) in [-1, 1]; EMA weights end up in `vae`.

    With `crop` > 0 each step sees a random crop×crop window of every image (as SD's VAE
    was trained on 256² crops): a convolutional autoencoder learns the same local code
    at a fraction of the cost. With ``train_encoder`` False only the decoder side trains
    (the latent space, and so any diffusion model trained on it, stays valid);
    ``latent_noise`` see ``vae_loss``. Returns a report: final losses and the latent std
    (from which scale_factor = 1 / std).
    """
    run = run or TrainingRun(None, {})
    torch.manual_seed(config.seed)
    vae.requires_grad_(True)
    if not train_encoder:
        vae.encoder.requires_grad_(False)
        vae.quant_conv.requires_grad_(False)
    optimiser, ema, start = _start_or_resume(vae, config, run)
    device = next(vae.parameters()).device
    vae.train()
    info: dict = dict(run.last_info)
    for step in range(start, config.steps):
        for micro in range(config.grad_accumulation):
            idx = _batch_indices(len(images), config.batch_size, step, micro, config.seed)
            generator = torch.Generator().manual_seed(config.seed + 7 * step + micro)
            batch = random_crops(images[idx], crop, generator).to(device)
            with _autocast(config, device):
                loss, info = vae_loss(vae, batch, generator, kl_weight, latent_noise=latent_noise)
            (loss / config.grad_accumulation).backward()
        info["grad_norm"] = _optimiser_step([p for p in vae.parameters() if p.requires_grad], optimiser, config, step)
        if ema is not None:
            ema.update(vae)
        info.update(loss=loss.item(), lr=lr_at(step, config))
        done = step + 1
        _checkpoint(run, config, done, vae, optimiser, ema, info)
        progress(done, config.steps, info)
    if ema is not None:
        ema.copy_to(vae)
    vae.eval()
    with torch.no_grad():
        sample = images[_batch_indices(len(images), min(256, len(images)), 0, 0, config.seed + 1)].to(device)
        std = float(vae.encode_moments(sample).float().chunk(2, dim=1)[0].std())
    return {**info, "latent_std": std, "steps": config.steps}


# --- diffusion ------------------------------------------------------------------------------------

def diffusion_targets(x0: torch.Tensor, noise: torch.Tensor, alphas_cumprod_t: torch.Tensor,
                      objective: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t, target): x_t = √ᾱ x0 + √(1−ᾱ) ε; target ε (eps) or v = √ᾱ ε − √(1−ᾱ) x0 (Salimans & Ho 2022)."""
    a = alphas_cumprod_t.view(-1, *([1] * (x0.ndim - 1)))   # any layout (B, C, ...)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
    if objective == "eps":
        return x_t, noise
    if objective == "v":
        return x_t, a.sqrt() * noise - (1 - a).sqrt() * x0
    raise ValueError(f"objective must be 'eps' or 'v', got {objective!r}")


@dataclass
class DiffusionData:
    """Precomputed training data: VAE latents (N, C, h, w), scaled, and token ids (N, 77).

    Multi-resolution data has ``parts``: one DiffusionData per image-size bucket (``latents``
    and ``token_ids`` are then those of the first part). Each micro-batch comes from one part,
    drawn with probability proportional to its size (aspect-ratio bucketing, as SDXL trains).
    """

    latents: torch.Tensor
    token_ids: torch.Tensor
    empty_ids: torch.Tensor          # (77,) ids of the empty prompt (for caption dropout)
    parts: tuple = ()                # DiffusionData per size bucket (multi-resolution), else ()
    source: str = ""                 # digest of what the latents were encoded from (images, captions, VAE weights):
                                     # a run's identity, since the latents' last bits follow the CPU thread count
    weights: torch.Tensor | None = None   # (N,) how often each item is drawn relative to the others (kohya's
                                          # folder repeats: ImageFolderDataset's `repeats`); None: all alike

    def __len__(self) -> int:
        return sum(len(part.latents) for part in self.parts) if self.parts else len(self.latents)

    def batch_indices(self, batch: int, step: int, micro: int, seed: int) -> torch.Tensor:
        """Indices of micro-batch (step, micro) of this part, a pure function of (seed, step, micro): uniform
        draws (`_batch_indices`), or drawn in proportion to `weights` (an image of a 10_ folder ten times as
        often as one of a 1_ folder: kohya's repeats, without copies of the latents)."""
        if self.weights is None:
            return _batch_indices(len(self.latents), batch, step, micro, seed)
        generator = torch.Generator().manual_seed(seed * 1_000_003 + step * 97 + micro)
        return torch.multinomial(self.weights, batch, replacement=True, generator=generator)

    def bucket(self, seed: int, step: int, micro: int) -> "DiffusionData":
        """The part micro-batch (step, micro) draws from: a pure function of (seed, step, micro)."""
        if not self.parts:
            return self
        generator = torch.Generator().manual_seed(seed * 7919 + step * 13 + micro + 1)
        weights = torch.tensor([float(len(part.latents)) for part in self.parts])
        return self.parts[int(torch.multinomial(weights, 1, generator=generator))]


def _noised_batch(data: DiffusionData, alphas_cumprod: torch.Tensor, config: TrainConfig, step: int, micro: int,
                  caption_dropout: float, objective: str) -> tuple[torch.Tensor, ...]:
    """One micro-batch, a pure function of (seed, step, micro): (indices, token ids with captions dropped,
    timesteps, noised latents x_t, targets), on the device of `alphas_cumprod`. Multi-resolution data
    gives a batch of one size bucket; indices are within that bucket.

    ``config.noise_offset`` adds offset · N(0, 1) per (item, channel) to the noise, a shift of each channel's
    mean (Guttenberg 2023, "Diffusion with Offset Noise"; kohya's `--noise_offset`): the model learns to change
    an image's overall brightness, which unit noise keeps it from. The target is made from that noise."""
    device = alphas_cumprod.device
    data = data.bucket(config.seed, step, micro)
    idx = data.batch_indices(config.batch_size, step, micro, config.seed)
    generator = torch.Generator().manual_seed(config.seed * 31 + step * 7 + micro)
    x0 = data.latents[idx].to(device)
    ids = data.token_ids[idx].clone()
    ids[torch.rand(len(idx), generator=generator) < caption_dropout] = data.empty_ids
    t = torch.randint(0, len(alphas_cumprod), (len(idx),), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    if config.noise_offset:                  # drawn after the rest: an offset of 0 leaves every other draw as it was
        noise = noise + config.noise_offset * torch.randn((*x0.shape[:2], *[1] * (x0.ndim - 2)), generator=generator)
    x_t, target = diffusion_targets(x0, noise.to(device), alphas_cumprod[t.to(device)], objective)
    return idx, ids, t, x_t, target


def _denoising_loss(prediction: torch.Tensor, target: torch.Tensor, alphas_cumprod_t: torch.Tensor,
                    config: TrainConfig, objective: str) -> torch.Tensor:
    """The mean squared error of a batch, each item weighted by `min_snr_weights` when ``config.min_snr_gamma`` is
    set (0: the plain mean over every element, as before)."""
    if not config.min_snr_gamma:
        return (prediction.float() - target).pow(2).mean()
    per_item = (prediction.float() - target).pow(2).mean(dim=tuple(range(1, prediction.ndim)))
    return (min_snr_weights(alphas_cumprod_t.float(), config.min_snr_gamma, objective) * per_item).mean()


def train_diffusion(unet: Any, text_encoder: Any, data: DiffusionData, alphas_cumprod: torch.Tensor,
                    config: TrainConfig, progress: Progress, run: TrainingRun | None = None,
                    objective: str = "eps", caption_dropout: float = 0.1, train_text_encoder: bool = True,
                    timestep_buckets: int = 10, train_unet: bool = True) -> dict:
    """Train `unet` (and `text_encoder`, a CLIPTextModel, unless frozen) to denoise `data.latents`.

    With `train_unet` False the UNet is frozen and only the text encoder learns (its gradient
    flows through the UNet's cross-attention).

    The text encoder's chosen hidden state is the UNet's context, as at inference. EMA
    weights of both end up in the modules. Returns a report with the final loss and
    the mean loss per timestep bucket (where the model struggles: Q3's debugging view).
    """
    run = run or TrainingRun(None, {})
    torch.manual_seed(config.seed)
    modules = ([unet] if train_unet else []) + ([text_encoder] if train_text_encoder else [])
    if not modules:
        raise ValueError("nothing to train: train_unet and train_text_encoder are both False")
    parameters = [p for m in modules for p in m.parameters()]
    for module, trained in ((unet, train_unet), (text_encoder, train_text_encoder)):
        if not trained:
            module.requires_grad_(False)
    optimiser = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.99))
    emas = [EMA(m, config.ema_decay) for m in modules] if config.ema_decay > 0 else []
    start = 0
    state = run.resume()
    if state is not None:
        with run.restoring():
            for module, weights in zip(modules, state["models"]):
                module.load_state_dict(weights)
            optimiser.load_state_dict(state["optimiser"])
            for ema, shadow in zip(emas, state["emas"]):
                ema.load(shadow, updates=state["step"])
        start = state["step"]
    device = next(unet.parameters()).device
    alphas_cumprod = alphas_cumprod.to(device=device, dtype=torch.float32)
    steps_total = len(alphas_cumprod)
    bucket_sum, bucket_count = _loss_buckets(run, timestep_buckets)
    layer = text_encoder.config.output_layer
    for module in (unet, text_encoder):
        module.train(module in modules)    # a frozen module runs as at inference
    info: dict = dict(run.last_info)
    for step in range(start, config.steps):
        for micro in range(config.grad_accumulation):
            idx, ids, t, x_t, target = _noised_batch(data, alphas_cumprod, config, step, micro, caption_dropout,
                                                     objective)
            with _autocast(config, device):
                context_grad = torch.enable_grad() if train_text_encoder else torch.no_grad()
                with context_grad:
                    context, _ = text_encoder(ids.to(device), layer=layer, pooled=False)   # (B, 77, D)
                prediction = unet(x_t, t.to(device).float(), context=context)
            per_item = (prediction.float() - target).pow(2).mean(dim=(1, 2, 3))
            loss = (min_snr_weights(alphas_cumprod[t.to(device)], config.min_snr_gamma, objective) * per_item).mean() \
                if config.min_snr_gamma else per_item.mean()
            (loss / config.grad_accumulation).backward()
            bucket = (t * timestep_buckets // steps_total).clamp(max=timestep_buckets - 1)
            bucket_sum.index_add_(0, bucket, per_item.detach().double().cpu())
            bucket_count.index_add_(0, bucket, torch.ones_like(bucket, dtype=torch.float64))
        info = {"loss": loss.item(), "lr": lr_at(step, config),
                "grad_norm": _optimiser_step(parameters, optimiser, config, step)}
        for ema, module in zip(emas, modules):
            ema.update(module)
        done = step + 1
        if done == config.steps or (config.checkpoint_every and done % config.checkpoint_every == 0):
            run.save({"step": done, "models": [m.state_dict() for m in modules], "optimiser": optimiser.state_dict(),
                      "emas": [e.shadow for e in emas], "info": info,
                      "loss_buckets": torch.stack([bucket_sum, bucket_count])})
        progress(done, config.steps, info)
    for ema, module in zip(emas, modules):
        ema.copy_to(module)
    for module in (unet, text_encoder):
        module.eval()
    edges = [round(i * steps_total / timestep_buckets) for i in range(timestep_buckets + 1)]
    by_timestep = {f"{edges[i]}-{edges[i + 1] - 1}": (float(bucket_sum[i] / bucket_count[i]) if bucket_count[i] else None)
                   for i in range(timestep_buckets)}
    return {**info, "loss_by_timestep": by_timestep, "steps": config.steps, "objective": objective,
            "config": asdict(config)}


# --- Text-encoder distillation --------------------------------------------------------------------

def distill_text_encoder(unet: Any, teacher: Any, student: Any, data: DiffusionData, captions: Sequence[str],
                         rewrite: Callable[[str, random.Random], str], tokenize: Callable[[str], torch.Tensor],
                         alphas_cumprod: torch.Tensor, config: TrainConfig, progress: Progress,
                         run: TrainingRun | None = None, keep_share: float = 0.2, empty_share: float = 0.05,
                         min_snr_gamma: float = 5.0) -> dict:
    """Teach `student` (a copy of `teacher`, CLIPTextModels) to read rewritten captions as `teacher` reads the
    originals, through the frozen `unet`.

    Per item: a noised latent x_t of the caption's image, the target UNet(x_t, t, teacher(caption)) and the
    prediction UNet(x_t, t, student(rewrite(caption))); loss = mean squared difference. A share of items keeps
    the caption unchanged (`keep_share`: the student must still read the originals like the teacher) and a
    share uses the empty prompt on both sides (`empty_share`: the unconditional branch of CFG stays). The
    rewrite RNG is seeded by (seed, step, item), so a resumed run sees the same captions. Matching the
    teacher's prediction instead of the noise gives each rewritten caption a definite target: the
    denoising loss barely depends on the wording when the image is mostly noise. Items are weighted by
    min(SNR, gamma) / SNR (Hang et al. 2023, min-SNR): the nearly clean timesteps, where the caption
    hardly matters, count less; the noisy ones, where the layout is decided, count fully.
    """
    run = run or TrainingRun(None, {})
    torch.manual_seed(config.seed)
    unet.requires_grad_(False)
    teacher.requires_grad_(False)
    student.requires_grad_(True)
    parameters = list(student.parameters())
    optimiser, ema, start = _start_or_resume(student, config, run)
    device = next(unet.parameters()).device
    alphas_cumprod = alphas_cumprod.to(device=device, dtype=torch.float32)
    layer = student.config.output_layer
    unet.eval()
    teacher.eval()
    student.train()
    empty = data.empty_ids
    info: dict = dict(run.last_info)
    for step in range(start, config.steps):
        for micro in range(config.grad_accumulation):
            idx, ids, t, x_t, _ = _noised_batch(data, alphas_cumprod, config, step, micro, 0.0, "eps")
            rewritten = []
            for row, i in enumerate(idx.tolist()):
                rng = random.Random(f"distill-text/{config.seed}/{step}/{micro}/{row}")
                draw = rng.random()
                if draw < empty_share:
                    ids[row] = empty
                    rewritten.append(empty)
                elif draw < empty_share + keep_share:
                    rewritten.append(ids[row])
                else:
                    rewritten.append(tokenize(rewrite(captions[i], rng)))
            with _autocast(config, device):
                with torch.no_grad():
                    target = unet(x_t, t.to(device).float(), context=teacher(ids.to(device), layer=layer,
                                                                             pooled=False)[0])
                context, _ = student(torch.stack(rewritten).to(device), layer=layer, pooled=False)
                prediction = unet(x_t, t.to(device).float(), context=context)
            alpha = alphas_cumprod[t.to(device)]
            weight = ((1 - alpha) / alpha * min_snr_gamma).clamp(max=1.0)      # min(SNR, gamma) / SNR
            per_item = (prediction.float() - target.float()).pow(2).mean(dim=(1, 2, 3))
            loss = (weight * per_item).mean()
            (loss / config.grad_accumulation).backward()
        info = {"loss": loss.item(), "lr": lr_at(step, config),
                "grad_norm": _optimiser_step(parameters, optimiser, config, step)}
        if ema is not None:
            ema.update(student)
        _checkpoint(run, config, step + 1, student, optimiser, ema, info)
        progress(step + 1, config.steps, info)
    if ema is not None:
        ema.copy_to(student)
    student.eval()
    student.requires_grad_(False)
    return {**info, "steps": config.steps, "keep_share": keep_share, "empty_share": empty_share,
            "min_snr_gamma": min_snr_gamma, "config": asdict(config)}


# --- ControlNet -----------------------------------------------------------------------------------

def init_controlnet_from_unet(controlnet: Any, unet: Any) -> None:
    """Start the ControlNet's encoder as a copy of the UNet's (Zhang et al. 2023 §3.2); zero convs stay 0."""
    own = controlnet.state_dict()
    copied = {k: v for k, v in unet.state_dict().items()
              if k.startswith(("time_embed.", "label_emb.", "input_blocks.", "middle_block.")) and k in own}
    controlnet.load_state_dict(copied, strict=False)


def train_controlnet(controlnet: Any, unet: Any, text_encoder: Any, data: DiffusionData, hints: torch.Tensor,
                     alphas_cumprod: torch.Tensor, config: TrainConfig, progress: Progress,
                     run: TrainingRun | None = None, objective: str = "eps", caption_dropout: float = 0.1) -> dict:
    """Train `controlnet` to steer the frozen `unet` from `hints` (N, H, W) uint8 (one channel, shown as grey).

    Each step: noise latents at random timesteps, run the ControlNet on them and the hint, and
    fit the UNet's prediction (with those residuals) to the target. Captions are dropped as
    for the UNet, so the control also works in the unconditional branch of CFG. EMA weights
    (if any) end up in `controlnet`.
    """
    run = run or TrainingRun(None, {})
    torch.manual_seed(config.seed)
    unet.requires_grad_(False)
    text_encoder.requires_grad_(False)
    parameters = list(controlnet.parameters())
    optimiser, ema, start = _start_or_resume(controlnet, config, run)
    device = next(controlnet.parameters()).device
    alphas_cumprod = alphas_cumprod.to(device=device, dtype=torch.float32)
    layer = text_encoder.config.output_layer
    controlnet.train()
    unet.eval()
    text_encoder.eval()
    info: dict = dict(run.last_info)
    for step in range(start, config.steps):
        for micro in range(config.grad_accumulation):
            idx, ids, t, x_t, target = _noised_batch(data, alphas_cumprod, config, step, micro, caption_dropout,
                                                     objective)
            hint = (hints[idx].float() / 255).unsqueeze(1).expand(-1, 3, -1, -1).to(device)   # (B, 3, H, W)
            with _autocast(config, device):
                with torch.no_grad():
                    context, _ = text_encoder(ids.to(device), layer=layer, pooled=False)
                residuals = controlnet(x_t, hint, t.to(device).float(), context)
                prediction = unet(x_t, t.to(device).float(), context=context, control=residuals)
            loss = _denoising_loss(prediction, target, alphas_cumprod[t.to(device)], config, objective)
            (loss / config.grad_accumulation).backward()
        info = {"loss": loss.item(), "lr": lr_at(step, config),
                "grad_norm": _optimiser_step(parameters, optimiser, config, step)}
        if ema is not None:
            ema.update(controlnet)
        done = step + 1
        _checkpoint(run, config, done, controlnet, optimiser, ema, info)
        progress(done, config.steps, info)
    if ema is not None:
        ema.copy_to(controlnet)
    controlnet.eval()
    return {**info, "steps": config.steps, "objective": objective, "config": asdict(config)}
