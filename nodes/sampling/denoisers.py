"""Model adapters: turn a raw network into the one denoiser contract samplers use.

Contract (k-diffusion ``external.py``; Karras et al. 2022, "EDM", §5 and
Table 1)::

    denoiser(x, sigma, **cond) -> denoised        # estimate of E[x0 | x]

where ``x = x0 + sigma * noise`` lives in the variance-exploding (VE) view and
``sigma`` is a tensor of shape (B,) or a scalar broadcast over the batch.
Samplers only ever see this; they never branch on what the network predicts.

:class:`ModelDenoiser` wraps a network ``net(x_in, t, **cond)`` with EDM's
preconditioning ``D(x, sigma) = c_skip x + c_out net(c_in x, t(sigma))``.
The scalings per prediction type (all derived from x_vp = alpha x0 + sigma_vp eps
with alpha = 1/sqrt(1 + sigma^2), sigma_vp = sigma alpha, i.e. x_vp = alpha x_ve):

====== ================================= ========================== ===================
type   c_skip                            c_out                      c_in
====== ================================= ========================== ===================
eps    1                                 -sigma                     1/sqrt(sigma²+1)
v      1/(sigma²+1)                      -sigma/sqrt(sigma²+1)      1/sqrt(sigma²+1)
x0     0                                 1                          1/sqrt(sigma²+1)
edm    sd²/(sigma²+sd²)                  sigma sd/sqrt(sigma²+sd²)  1/sqrt(sigma²+sd²)
flow   1/(1+sigma)                       -sigma/(1+sigma)           1/(1+sigma)
====== ================================= ========================== ===================

(v: Salimans & Ho 2022, v = alpha eps - sigma_vp x0; edm: Karras et al. 2022
Table 1 with sd = sigma_data; flow: rectified flow x_t = (1-t) x0 + t eps with
velocity v = eps - x0, viewed in VE with sigma = t/(1-t).)

The network's time input comes from a time map:

* :class:`DiscreteTimeMap` -- models trained on T discrete timesteps of a beta
  schedule: sigma_t = sqrt((1 - ᾱ_t)/ᾱ_t), and sigma <-> t by linear
  interpolation of log sigma between neighbouring timesteps (fractional t).
* :class:`ContinuousTimeMap` -- models trained on continuous time, given by a
  pair of functions; presets :func:`edm_time_map` (t = ln(sigma)/4),
  :func:`vp_linear_time_map` (Song et al. 2021 VP-SDE with linear beta(t)) and
  :func:`rectified_flow_time_map`.
* :class:`FlowTimeMap` -- rectified flow with SD3's timestep shift (:func:`flow_shift`,
  :func:`resolution_shift` for Flux / SD3.5 dynamic shifting): schedules are uniform in the
  unshifted time, the network gets the shifted one (``net_time``).

The adapter exposes ``sigma_min``, ``sigma_max``, ``sigmas`` (discrete table or
None), ``sigma_to_t`` and ``t_to_sigma`` so schedules (schedules.py) can be
built from it directly.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch

from .errors import SamplingError
from .schedules import alphas_cumprod_from_betas, sigmas_from_alphas_cumprod

__all__ = [
    "Denoiser",
    "Prediction",
    "PREDICTION_SCALINGS",
    "DiscreteTimeMap",
    "ContinuousTimeMap",
    "edm_time_map",
    "vp_linear_time_map",
    "rectified_flow_time_map",
    "flow_shift",
    "resolution_shift",
    "FlowTimeMap",
    "ModelDenoiser",
    "batch_sigma",
]

#: ``denoiser(x, sigma, **cond) -> denoised``; sigma of shape (B,) or a scalar.
Denoiser = Callable[..., torch.Tensor]

Prediction = Literal["eps", "v", "x0", "edm", "flow"]

#: (c_skip, c_out, c_in); each a float (scalar sigma) or a tensor shaped like sigma.
Scalings = tuple[float | torch.Tensor, float | torch.Tensor, float | torch.Tensor]

# The scalings use plain arithmetic only, so they work for a Python float sigma (the fast path
# below) and for a tensor of sigmas alike.


def eps_scalings(sigma, sigma_data: float) -> Scalings:
    """(c_skip, c_out, c_in) for an eps-predicting VP model: D = x - sigma eps (Ho et al. 2020)."""
    return 1.0, -sigma, (sigma**2 + 1) ** -0.5


def v_scalings(sigma, sigma_data: float) -> Scalings:
    """(c_skip, c_out, c_in) for a v-predicting VP model (Salimans & Ho 2022, §4)."""
    variance = sigma**2 + 1
    return 1 / variance, -sigma * variance**-0.5, variance**-0.5


def x0_scalings(sigma, sigma_data: float) -> Scalings:
    """(c_skip, c_out, c_in) for a VP model predicting x0 directly."""
    return 0.0, 1.0, (sigma**2 + 1) ** -0.5


def edm_scalings(sigma, sigma_data: float) -> Scalings:
    """(c_skip, c_out, c_in) of EDM preconditioning (Karras et al. 2022, Table 1)."""
    variance = sigma**2 + sigma_data**2
    return sigma_data**2 / variance, sigma * sigma_data * variance**-0.5, variance**-0.5


def flow_scalings(sigma, sigma_data: float) -> Scalings:
    """(c_skip, c_out, c_in) for rectified-flow velocity models viewed in VE (sigma = t/(1-t))."""
    scale = 1 / (1 + sigma)
    return scale, -sigma * scale, scale


PREDICTION_SCALINGS: dict[str, Callable[[torch.Tensor, float], Scalings]] = {
    "eps": eps_scalings,
    "v": v_scalings,
    "x0": x0_scalings,
    "edm": edm_scalings,
    "flow": flow_scalings,
}


def batch_sigma(sigma: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """Sigma as a (B,) tensor on x's device (float32, or float64 when x is float64)."""
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    sigma = torch.as_tensor(sigma, device=x.device, dtype=dtype)
    if sigma.ndim == 0:
        return sigma.expand(x.shape[0])
    if sigma.shape != (x.shape[0],):
        raise SamplingError("sigma", f"a scalar or a tensor of shape ({x.shape[0]},) matching the latent batch",
                            f"shape {tuple(sigma.shape)}", "Pass one sigma per batch item.", sigma)
    return sigma


class DiscreteTimeMap:
    """sigma <-> t for a model trained on T discrete timesteps.

    Args:
        alphas_cumprod: ᾱ_t for t = 0..T-1 (e.g. ``alphas_cumprod_from_betas(scaled_linear_betas())``).

    ``t`` is fractional: between two timesteps, log sigma is interpolated
    linearly (k-diffusion's ``DiscreteSchedule``; diffusers' ``_sigma_to_t``).
    """

    def __init__(self, alphas_cumprod: torch.Tensor):
        alphas_cumprod = torch.as_tensor(alphas_cumprod, dtype=torch.float64).cpu()
        if alphas_cumprod.ndim != 1 or len(alphas_cumprod) < 2 or not bool(
                ((alphas_cumprod > 0) & (alphas_cumprod <= 1)).all()):
            raise SamplingError("alphas_cumprod", "a 1-D tensor of at least 2 values in (0, 1]",
                                f"shape {tuple(alphas_cumprod.shape)}",
                                "Pass the cumulative product of (1 - betas).", alphas_cumprod)
        self._sigmas64 = sigmas_from_alphas_cumprod(alphas_cumprod)
        if not bool((self._sigmas64[1:] > self._sigmas64[:-1]).all()):
            raise SamplingError("alphas_cumprod", "strictly decreasing ᾱ_t (noise grows with t)",
                                "a non-monotone table", "Check the beta schedule.", alphas_cumprod)
        self.sigmas = self._sigmas64.to(torch.float32)
        self.sigma_min = float(self.sigmas[0])
        self.sigma_max = float(self.sigmas[-1])
        self._log_sigmas: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    @classmethod
    def from_betas(cls, betas: torch.Tensor) -> DiscreteTimeMap:
        """Time map of a model trained with these betas."""
        return cls(alphas_cumprod_from_betas(torch.as_tensor(betas)))

    def _log_table(self, like: torch.Tensor) -> torch.Tensor:
        """log sigma table on ``like``'s device and dtype (cached)."""
        dtype = like.dtype if like.dtype in (torch.float32, torch.float64) else torch.float32
        key = (like.device, dtype)
        if key not in self._log_sigmas:
            self._log_sigmas[key] = self._sigmas64.log().to(device=like.device, dtype=dtype)
        return self._log_sigmas[key]

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional timestep of each sigma (log-sigma interpolation, clamped to [0, T-1])."""
        sigma = torch.as_tensor(sigma)
        log_table = self._log_table(sigma)
        log_sigma = sigma.to(log_table.dtype).log()
        low = (torch.searchsorted(log_table, log_sigma.contiguous(), right=True) - 1).clamp(0, len(log_table) - 2)
        low_value, high_value = log_table[low], log_table[low + 1]
        weight = ((log_sigma - low_value) / (high_value - low_value)).clamp(0, 1)
        return low.to(log_table.dtype) + weight

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        """Sigma at fractional timesteps (log-sigma interpolation)."""
        t = torch.as_tensor(t)
        log_table = self._log_table(t if t.is_floating_point() else t.float())
        t = t.to(log_table.dtype).clamp(0, len(log_table) - 1)
        low = t.floor().long().clamp(max=len(log_table) - 2)
        weight = t - low.to(t.dtype)
        return (torch.lerp(log_table[low], log_table[low + 1], weight)).exp()


@dataclass(frozen=True)
class ContinuousTimeMap:
    """sigma <-> t for a model trained on continuous time.

    Attributes:
        sigma_to_t: maps a sigma tensor to the network's time input.
        t_to_sigma: the inverse map.
        sigma_min: smallest sigma the model was trained on (used by schedules).
        sigma_max: largest sigma the model was trained on.
    """

    sigma_to_t: Callable[[torch.Tensor], torch.Tensor]
    t_to_sigma: Callable[[torch.Tensor], torch.Tensor]
    sigma_min: float
    sigma_max: float
    sigmas: None = None


def edm_time_map(sigma_min: float = 0.002, sigma_max: float = 80.0) -> ContinuousTimeMap:
    """EDM noise conditioning c_noise = ln(sigma)/4 (Karras et al. 2022, Table 1)."""
    return ContinuousTimeMap(lambda sigma: sigma.log() / 4, lambda t: (4 * t).exp(), sigma_min, sigma_max)


def vp_linear_time_map(beta_min: float = 0.1, beta_max: float = 20.0, t_min: float = 1e-3) -> ContinuousTimeMap:
    """VP-SDE with linear beta(t) on t in [t_min, 1] (Song et al. 2021, "Score-based SDEs", eq. 33).

    ᾱ(t) = exp(-beta_min t - (beta_max - beta_min) t²/2), so
    sigma(t) = sqrt(exp(beta_min t + beta_d t²/2) - 1) and t(sigma) solves that quadratic.
    """
    beta_d = beta_max - beta_min

    def t_to_sigma(t: torch.Tensor) -> torch.Tensor:
        return torch.expm1(beta_min * t + 0.5 * beta_d * t**2).sqrt()

    def sigma_to_t(sigma: torch.Tensor) -> torch.Tensor:
        return (torch.sqrt(beta_min**2 + 2 * beta_d * torch.log1p(sigma**2)) - beta_min) / beta_d

    sigma_min = math.sqrt(math.expm1(beta_min * t_min + 0.5 * beta_d * t_min**2))
    sigma_max = math.sqrt(math.expm1(beta_min + 0.5 * beta_d))
    return ContinuousTimeMap(sigma_to_t, t_to_sigma, sigma_min, sigma_max)


def rectified_flow_time_map(multiplier: float = 1000.0, sigma_min: float = 1e-3,
                            sigma_max: float = 1e3) -> ContinuousTimeMap:
    """Rectified flow time t = sigma/(1+sigma), times ``multiplier`` (SD3-style nets take t*1000).

    Sampling must start at a finite sigma_max (t < 1) because the VE view of
    x_t = (1-t) x0 + t eps diverges at t = 1.
    """
    return ContinuousTimeMap(lambda sigma: sigma / (1 + sigma) * multiplier,
                             lambda t: (t / multiplier) / (1 - t / multiplier), sigma_min, sigma_max)


def flow_shift(t, shift: float):
    """Timestep shift of SD3 (Esser et al. 2024, §5.3.2, eq. 23): t' = shift t / (1 + (shift - 1) t)."""
    return shift * t / (1 + (shift - 1) * t)


def resolution_shift(image_tokens: int, base_tokens: int = 256, max_tokens: int = 4096,
                     base_shift: float = 0.5, max_shift: float = 1.15) -> float:
    """Resolution-dependent shift of Flux / SD3.5 "dynamic shifting": exp(mu) with mu linear in the token count.

    exp(mu) / (exp(mu) + (1/t - 1)) (diffusers' ``time_shift``) is :func:`flow_shift` with shift = exp(mu).
    """
    slope = (max_shift - base_shift) / (max_tokens - base_tokens)
    return math.exp(base_shift + slope * (image_tokens - base_tokens))


class FlowTimeMap:
    """sigma <-> t for a rectified-flow velocity model with a timestep shift (SD3, Flux).

    Args:
        shift: SD3's shift (3.0 for SD3 / SD3.5; 1.0 = none); see :func:`resolution_shift`.
        multiplier: the network's time scale (SD3 nets take t * 1000; Flux takes t).
        s_min: smallest unshifted time sampled (diffusers' FlowMatchEulerDiscreteScheduler:
            the shifted 1/1000, so ``normal`` spacing reproduces its sigmas).
        t_max: flow time that stands for t = 1 (see below).

    Three times are involved: the flow time t of x_t = (1 - t) x0 + t eps (the adapter's
    scalings see sigma = t/(1-t), the VE view, so every sampler runs unchanged); the
    network's time ``multiplier * t`` (:meth:`net_time`); and the *unshifted* time s with
    t = flow_shift(s), which :meth:`sigma_to_t` returns (times ``multiplier``) so that the
    ``normal`` / ``sgm_uniform`` / ``beta`` spacings, uniform in it, are the shifted
    schedules SD3 and Flux use. The VE view cannot hold t = 1 (sigma = inf): ``sigma_max``
    is sigma at ``t_max`` = 1 - 1e-4, and t >= t_max is read as t = 1 by both time maps,
    so schedules start at s = 1 and the net sees t = 1 exactly as in the reference; the
    latent there is 0.9999 eps + 1e-4 x0 instead of eps. ``sigmas`` is the 1000-entry training
    table (s = k/1000), for the table-based spacings.
    """

    def __init__(self, shift: float = 3.0, multiplier: float = 1000.0, s_min: float | None = None,
                 t_max: float = 1 - 1e-4):
        if not shift > 0:
            raise SamplingError("shift", "a positive number (SD3: 3.0; 1.0 = no shift)", repr(shift),
                                "Pass the model's shift.", shift)
        self.shift = float(shift)
        self.multiplier = float(multiplier)
        self.s_min = flow_shift(1e-3, self.shift) if s_min is None else s_min
        self.t_max = t_max
        self.sigma_max = t_max / (1 - t_max)
        t_min = flow_shift(self.s_min, self.shift)
        self.sigma_min = t_min / (1 - t_min)
        # The training table (s = k/1000, k = 1..1000, shifted; ascending), so the table-based spacings
        # (`simple`, `ddim_uniform`, `discrete`) work as for discrete models (ComfyUI's "simple" on SD3 / Flux).
        steps = torch.arange(1, 1001, dtype=torch.float64) / 1000
        self.sigmas = self.t_to_sigma(steps * self.multiplier).to(torch.float32)

    def _flow_time(self, sigma: torch.Tensor) -> torch.Tensor:
        t = sigma / (1 + sigma)
        return torch.where(t >= self.t_max * (1 - 1e-7), torch.ones_like(t), t)

    def net_time(self, sigma: torch.Tensor) -> torch.Tensor:
        """The network's time input: multiplier * t (t = 1 at the top of the range)."""
        return self._flow_time(torch.as_tensor(sigma)) * self.multiplier

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Unshifted time s (times multiplier) of each sigma: the axis schedules space uniformly."""
        t = self._flow_time(torch.as_tensor(sigma))
        return t / (self.shift - (self.shift - 1) * t) * self.multiplier  # inverse of flow_shift

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        """VE sigma at unshifted time t/multiplier (clamped below t_max)."""
        flow_t = flow_shift(torch.as_tensor(t) / self.multiplier, self.shift).clamp(max=self.t_max)
        return flow_t / (1 - flow_t)

    def __repr__(self) -> str:
        return f"FlowTimeMap(shift={self.shift}, multiplier={self.multiplier})"


_BATCH_GROUP: contextvars.ContextVar[int] = contextvars.ContextVar("nodegraph_batch_group", default=1)
_BETWEEN_SLICES: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "nodegraph_between_slices", default=None)


@contextlib.contextmanager
def batch_groups(size: int | None, between_slices: Callable[[], None] | None = None) -> Iterator[None]:
    """Within this block, a network's batch is made of groups of `size` consecutive items that belong together
    (a LATENT's `frames`: one clip, whose frames a motion module attends across), so batch slices
    (`ModelDenoiser.MAX_ELEMENTS_AT_ONCE`) hold whole groups; `between_slices` (a node's
    `context.check_interrupted`) is called before each slice after the first, so one step of a large batch
    can be interrupted."""
    token = _BATCH_GROUP.set(max(1, int(size or 1)))
    check = _BETWEEN_SLICES.set(between_slices)
    try:
        yield
    finally:
        _BATCH_GROUP.reset(token)
        _BETWEEN_SLICES.reset(check)


def _sliceable(value: Any, batch: int) -> bool:
    """Whether a conditioning value can follow a batch slice: None, a number, or a tensor whose first axis is the
    batch (or 1: broadcast). Anything else (a ControlNet stack, a patch object) keeps the batch whole."""
    if value is None or isinstance(value, (int, float, bool, str)):
        return True
    return isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] in (1, batch)


def _batch_slice(value: Any, part: slice, batch: int) -> Any:
    return value[part] if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == batch \
        and batch > 1 else value


class ModelDenoiser:
    """Adapt ``net(x_in, t, **cond)`` to the contract ``denoiser(x, sigma, **cond) -> denoised``.

    Args:
        net: the raw network; receives ``c_in * x``, the time ``t(sigma)`` of
            shape (B,), and the conditioning keyword arguments unchanged.
        time_map: :class:`DiscreteTimeMap` or :class:`ContinuousTimeMap`.
        prediction: what ``net`` predicts: ``"eps"``, ``"v"``, ``"x0"``, ``"edm"``
            (EDM's F with ``sigma_data``) or ``"flow"`` (rectified-flow velocity).
        sigma_data: data standard deviation, used only by ``"edm"``.
        round_timesteps: round t to the nearest integer (nets that look timesteps up in a table).

    The scalings are cast to x's dtype so a float16 net receives float16 input. When sigma
    is a CPU tensor with one value for the whole batch (what samplers pass on CPU), the
    scalings and t are computed as Python floats; otherwise as tensors on sigma's device.
    """

    def __init__(self, net: Callable[..., torch.Tensor], time_map: DiscreteTimeMap | ContinuousTimeMap | FlowTimeMap,
                 prediction: Prediction = "eps", sigma_data: float = 1.0, round_timesteps: bool = False):
        if prediction not in PREDICTION_SCALINGS:
            raise SamplingError("prediction", f"one of {sorted(PREDICTION_SCALINGS)}", repr(prediction),
                                "Set what the network predicts (eps for SD 1.x, v for SD 2.x-v).", prediction)
        self.net = net
        self.time_map = time_map
        self.prediction = prediction
        self.sigma_data = sigma_data
        self.round_timesteps = round_timesteps
        self._scalings = PREDICTION_SCALINGS[prediction]
        self._time_cache: dict[float, float] = {}

    @property
    def sigma_min(self) -> float:
        return self.time_map.sigma_min

    @property
    def sigma_max(self) -> float:
        return self.time_map.sigma_max

    @property
    def sigmas(self) -> torch.Tensor | None:
        return self.time_map.sigmas

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        return self.time_map.sigma_to_t(sigma)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        return self.time_map.t_to_sigma(t)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor | float, **cond) -> torch.Tensor:
        sigma = batch_sigma(sigma, x)
        if sigma.device.type == "cpu":  # reading CPU values costs no device sync
            values = sigma.tolist()
            if values.count(values[0]) == len(values):
                return self._call_at_one_sigma(x, values[0], sigma.dtype, cond)
        shape = (-1,) + (1,) * (x.ndim - 1)
        c_skip, c_out, c_in = (c.to(x.dtype).reshape(shape) if isinstance(c, torch.Tensor) else c
                               for c in self._scalings(sigma, self.sigma_data))
        t = self._net_time(sigma)
        if self.round_timesteps:
            t = t.round()
        return x * c_skip + self._net(x * c_in, t, cond).to(x.dtype) * c_out

    def _call_at_one_sigma(self, x: torch.Tensor, sigma: float, sigma_dtype: torch.dtype, cond) -> torch.Tensor:
        """Fast path for one noise level over the batch: scalings and t as Python floats (fewer tiny ops)."""
        c_skip, c_out, c_in = self._scalings(sigma, self.sigma_data)
        t = self._time_of(sigma)
        out = self._net(x * c_in, torch.full((x.shape[0],), t, dtype=sigma_dtype, device=x.device), cond)
        out = out.to(x.dtype)
        if c_skip == 0:
            return out * c_out
        return torch.add(x if c_skip == 1 else x * c_skip, out, alpha=c_out)

    #: latent elements the network is given at once: a larger batch is evaluated in slices, so the activations
    #: (hundreds of times the latent's size) stay bounded whatever the batch size (4,096 images of 128 px took
    #: 16 GB in one call). Batches up to this size, and conditioning it cannot slice, go through whole.
    MAX_ELEMENTS_AT_ONCE = 1 << 18

    def _net(self, x: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
        """`net(x, t, **cond)`, in batch slices of at most MAX_ELEMENTS_AT_ONCE latent elements."""
        batch, group = x.shape[0], _BATCH_GROUP.get()
        step = max(1, self.MAX_ELEMENTS_AT_ONCE // max(1, x[0].numel()) // group) * group    # whole groups
        if batch <= step or batch % group or not all(_sliceable(value, batch) for value in cond.values()):
            return self.net(x, t, **cond)
        parts, between = [], _BETWEEN_SLICES.get()
        for start in range(0, batch, step):
            if start and between is not None:
                between()
            part = slice(start, start + step)
            parts.append(self.net(x[part], _batch_slice(t, part, batch),
                                  **{name: _batch_slice(value, part, batch) for name, value in cond.items()}))
        return torch.cat(parts)

    def _net_time(self, sigma: torch.Tensor) -> torch.Tensor:
        """The network's time input at sigma (a FlowTimeMap's differs from its schedule axis)."""
        net_time = getattr(self.time_map, "net_time", None)
        return net_time(sigma) if net_time is not None else self.time_map.sigma_to_t(sigma)

    def _time_of(self, sigma: float) -> float:
        """t(sigma) as a float, memoised (a run revisits the same few dozen sigmas)."""
        t = self._time_cache.get(sigma)
        if t is None:
            if len(self._time_cache) > 4096:
                self._time_cache.clear()
            t = float(self._net_time(torch.tensor([sigma], dtype=torch.float64))[0])
            t = float(round(t)) if self.round_timesteps else t
            self._time_cache[sigma] = t
        return t

    def __repr__(self) -> str:
        return f"ModelDenoiser(prediction={self.prediction!r}, time_map={type(self.time_map).__name__})"
