"""Samplers: pure functions that integrate a denoiser from sigmas[0] down to sigmas[-1].

Shared signature (k-diffusion ``sampling.py``)::

    sample_x(model, x, sigmas, extra_args=None, callback=None, disable=None,
             noise_sampler=None, **options) -> x at sigmas[-1]

* ``model(x, sigma, **extra_args) -> denoised`` is the one denoiser contract
  (denoisers.py); guidance (guidance.py) is just another denoiser.
* ``x`` is the latent at ``sigmas[0]`` in the variance-exploding view
  (``x = x0 + sigma * noise``), e.g. ``seeded_noise(shape, seed) * sigmas[0]``.
* ``sigmas`` is a strictly decreasing 1-D tensor; it normally ends in 0, but a
  high-noise part of a split schedule (schedules.split_sigmas) works too.
* ``callback`` receives, after every step, the dict
  ``{"i", "sigma", "sigma_hat", "x", "denoised"}``: step index, the step's
  starting sigma and the sigma the model was first evaluated at (floats), the
  latent the model was evaluated at, and the denoised estimate.
* ``noise_sampler(sigma, sigma_next) -> noise`` supplies all randomness
  (noise.py); ``None`` seeds one from torch's global RNG on first use.
* ``disable`` is k-diffusion's progress-bar switch: a tqdm bar is shown only
  when ``disable is False`` (progress normally goes through ``callback``).

Every sampler is written ONCE, as a step function
``step(model, x, sigmas, i, state, extra_args, noise_sampler, **options) -> StepResult``
that takes the plain-float schedule, the step index and an explicit history
``state`` dict, and returns the next latent and the new state. The full
sampler just iterates it (:func:`run_sampler`), and :func:`sampler_step`
exposes one step for the SamplerStep node, so stepping with carried state
reproduces the full run bit for bit.

Samplers and papers (VE form; lambda = -log sigma):

=================  ============================================================  ==========================
name               method                                                        history in ``state``
=================  ============================================================  ==========================
euler              Euler on the PF-ODE, optional churn (Karras et al. 2022 Alg 2)  --
euler_ancestral    Euler + ancestral noise (k-diffusion), ``eta``                  --
heun               Heun 2nd order (Karras et al. 2022, Alg. 2)                     --
ddim               DDIM eq. 12 with sigma_t(eta) of eq. 16 (Song et al. 2021a)     --
ddpm               DDPM posterior q(x_{t-1}|x_t,x0) mean+variance (Ho et al. eq 7)  --
dpmpp_2m           DPM-Solver++(2M) (Lu et al. 2022b, Alg. 2)                      previous_denoised
dpmpp_2m_sde       SDE-DPM-Solver++(2M) (Lu et al. 2022b, §4; k-diffusion)         previous_denoised
dpmpp_sde          SDE-DPM-Solver++ 2S with r=1/2 (k-diffusion "dpmpp_sde")        --
lms                linear multistep on the PF-ODE in sigma, order 4 (k-diffusion)   derivatives
unipc              UniPC, UniP-p + UniC (Zhao et al. 2023, B(h) = bh1 | bh2)        denoised_history, x_before_predictor
unipc_bh1          unipc with B(h) = h (ComfyUI's ``uni_pc``'s rule; it runs order 3, ours 2)  as unipc
lcm                multistep consistency sampling (Luo et al. 2023, Alg. 1)        --
=================  ============================================================  ==========================

Steps too uneven for a higher order (a flow model's first step 9999 -> 18 in the VE view) are taken
at first order: :func:`too_uneven_for_higher_order` (heun, lms, UniC) and :func:`history_usable`
(dpmpp_2m, dpmpp_2m_sde, unipc); ordinary eps / v schedules never reach the bounds.

Stochastic: euler_ancestral, ddpm, dpmpp_2m_sde, dpmpp_sde, lcm, ddim with
eta > 0, euler/heun with s_churn > 0. In exact arithmetic ddpm, ddim(eta=1)
and euler_ancestral(eta=1) are the same update; the tests check that.

Registry: :data:`SAMPLERS` (name -> full sampler) and :data:`SAMPLER_STEPS`
(name -> step function), extended with :func:`register_sampler`.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

import torch

from nodegraph.api import StepResult  # what one step returns: the contract plugins' steps follow too

from .errors import SamplingError
from .noise import IntervalNoiseSampler, NoiseSampler, check_seed, random_seed
from .schedules import check_schedule

__all__ = [
    "SamplerState",
    "Callback",
    "StepResult",
    "StepFunction",
    "SamplerFunction",
    "ancestral_step_sizes",
    "lms_coefficients",
    "euler_step",
    "euler_ancestral_step",
    "heun_step",
    "ddim_step",
    "ddpm_step",
    "dpmpp_2m_step",
    "dpmpp_2m_sde_step",
    "dpmpp_sde_step",
    "lms_step",
    "unipc_step",
    "lcm_step",
    "check_latent",
    "run_sampler",
    "sampler_from_step",
    "sample_euler",
    "sample_euler_ancestral",
    "sample_heun",
    "sample_ddim",
    "sample_ddpm",
    "sample_dpmpp_2m",
    "sample_dpmpp_2m_sde",
    "sample_dpmpp_sde",
    "sample_lms",
    "sample_unipc",
    "sample_lcm",
    "SAMPLERS",
    "SAMPLER_STEPS",
    "register_sampler",
    "get_sampler",
    "get_sampler_step",
    "sample",
    "sampler_step",
]

#: Plain dict carried between steps: tensors, lists of tensors, ints, floats.
SamplerState = dict[str, Any]
#: Called after every step with {"i", "sigma", "sigma_hat", "x", "denoised"}.
Callback = Callable[[dict[str, Any]], None]


StepFunction = Callable[..., StepResult]
SamplerFunction = Callable[..., torch.Tensor]


# --- small numerical helpers -------------------------------------------------------------


def _denoise(model: Callable[..., torch.Tensor], x: torch.Tensor, sigma: float,
             extra_args: Mapping[str, Any]) -> torch.Tensor:
    """One model evaluation with sigma broadcast to shape (B,)."""
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    denoised = model(x, torch.full((x.shape[0],), sigma, dtype=dtype, device=x.device), **extra_args)
    return denoised if denoised.dtype == x.dtype else denoised.to(x.dtype)


def _history(state: SamplerState, key: str, i: int, sampler: str) -> Any:
    """The previous step's ``state[key]``; None at step 0; SamplingError when a later step lacks it."""
    if i == 0:
        return None
    if key not in state:
        raise SamplingError("state", f"the state returned by step {i - 1} of sampler {sampler!r} "
                            f"(it carries {key!r})", f"a state with keys {sorted(state)}",
                            "Pass the new_state of the previous step, or restart from step 0.", state)
    return state[key]


def ancestral_step_sizes(sigma: float, sigma_next: float, eta: float = 1.0) -> tuple[float, float]:
    """Split sigma -> sigma_next into a deterministic step to sigma_down plus fresh noise sigma_up.

    sigma_up = min(sigma_next, eta sqrt(sigma_next² (sigma² - sigma_next²) / sigma²)) and
    sigma_down = sqrt(sigma_next² - sigma_up²) (k-diffusion ``get_ancestral_step``;
    DDIM's sigma_t(eta) of Song et al. 2021a eq. 16 written in the VE view).
    """
    if not eta or sigma_next == 0:
        return sigma_next, 0.0
    sigma_up = min(sigma_next, eta * math.sqrt(sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2))
    return math.sqrt(sigma_next**2 - sigma_up**2), sigma_up


def _churn(x: torch.Tensor, sigma: float, step_count: int, noise_sampler: NoiseSampler, s_churn: float,
           s_tmin: float, s_tmax: float, s_noise: float) -> tuple[torch.Tensor, float]:
    """Karras et al. 2022, Alg. 2 lines 4-6: raise the noise level to sigma_hat = sigma (1 + gamma)."""
    gamma = min(s_churn / step_count, 2**0.5 - 1) if s_tmin <= sigma <= s_tmax else 0.0
    if gamma <= 0:
        return x, sigma
    sigma_hat = sigma * (1 + gamma)
    return x + noise_sampler(sigma, sigma_hat) * (s_noise * math.sqrt(sigma_hat**2 - sigma**2)), sigma_hat


# --- steps too uneven for a higher order ----------------------------------------------------------
# A higher-order update weighs the change of the denoised estimate between its evaluation points by a
# factor that grows with how uneven the steps are: Heun's trapezoid by (sigma/sigma_next - 1)/2 (in the
# VE view), DPM-Solver++(2M) by 1/(2r) with r = h_prev/h. Flow models seen in the VE view start at
# sigma 9999 (t = 1) and their usual schedules end at t ~ 1e-3, so the first and last steps span factors
# of hundreds: second-order updates there multiplied the estimate's change by ~300 and drew colour
# smears. Such steps are taken at first order (the exact DDIM / Euler update) -- for flow models only
# (`uneven_step_guards`, on when the sampling node's MODEL predicts "flow"): eps / v schedules reach the same
# ratios too (karras at 2 steps: 501; `normal` near its end; zero-terminal-SNR's first step: 226), and there
# the samplers must stay the ones diffusers, k-diffusion and ComfyUI run, image for image.

#: heun and lms take a step at first order when sigma / sigma_next exceeds this.
MAX_HIGHER_ORDER_RATIO = 50.0
#: dpmpp_2m, dpmpp_2m_sde and unipc use a previous step's estimate only while that step (in
#: lambda = -log sigma) is at least this fraction of the current one.
MIN_HISTORY_STEP_RATIO = 0.25

_UNEVEN_GUARDS: contextvars.ContextVar[bool] = contextvars.ContextVar("nodegraph_uneven_guards", default=False)


@contextlib.contextmanager
def uneven_step_guards(on: bool) -> Iterator[None]:
    """Within this block (a flow model's sampling), the two rules above apply; outside it they do not."""
    token = _UNEVEN_GUARDS.set(bool(on))
    try:
        yield
    finally:
        _UNEVEN_GUARDS.reset(token)


def too_uneven_for_higher_order(sigma: float, sigma_next: float) -> bool:
    """Whether a step to sigma_next > 0 falls by more than MAX_HIGHER_ORDER_RATIO in sigma (first order then);
    always False outside `uneven_step_guards(True)`."""
    return _UNEVEN_GUARDS.get() and sigma_next > 0 and sigma / sigma_next > MAX_HIGHER_ORDER_RATIO


def history_usable(sigmas: Sequence[float], i: int, back: int = 1) -> bool:
    """Whether the step ``back`` steps before step i can be extrapolated from: it exists and the step ends above
    0 (as in k-diffusion), and, under `uneven_step_guards(True)`, it is long enough (vs step i, in lambda)."""
    if i - back < 0 or sigmas[i + 1] <= 0:
        return False
    if not _UNEVEN_GUARDS.get():
        return True
    h = math.log(sigmas[i] / sigmas[i + 1])
    return math.log(sigmas[i - back] / sigmas[i]) >= MIN_HISTORY_STEP_RATIO * back * h


def _lagrange_basis_integral(nodes: Sequence[float], j: int, lower: float, upper: float) -> float:
    """Exact integral over [lower, upper] of the j-th Lagrange basis polynomial on ``nodes``."""
    coefficients = [1.0]  # ascending powers of (tau - lower), for conditioning
    denominator = 1.0
    for k, node in enumerate(nodes):
        if k == j:
            continue
        shifted = node - lower
        coefficients = [(coefficients[p - 1] if p > 0 else 0.0)
                        - shifted * (coefficients[p] if p < len(coefficients) else 0.0)
                        for p in range(len(coefficients) + 1)]
        denominator *= nodes[j] - node
    width = upper - lower
    return sum(c * width ** (p + 1) / (p + 1) for p, c in enumerate(coefficients)) / denominator


def lms_coefficients(sigmas: Sequence[float], i: int, order: int) -> list[float]:
    """Adams-Bashforth weights in sigma: integrals over [sigma_i, sigma_{i+1}] of the Lagrange
    basis on sigma_i, ..., sigma_{i-order+1}; entry j weighs the derivative at sigma_{i-j}."""
    nodes = [sigmas[i - k] for k in range(order)]
    return [_lagrange_basis_integral(nodes, j, sigmas[i], sigmas[i + 1]) for j in range(order)]


def _linear_combination(terms: Sequence[tuple[float, torch.Tensor]]) -> torch.Tensor:
    """sum_k c_k * t_k with one fused add per term."""
    (first_coefficient, first), *rest = terms
    total = first * first_coefficient
    for coefficient, tensor in rest:
        total = total.add(tensor, alpha=coefficient)
    return total


# --- step functions (each sampler written once) ---------------------------------------------


def euler_step(model, x, sigmas, i, state, extra_args, noise_sampler, *, s_churn: float = 0.0,
               s_tmin: float = 0.0, s_tmax: float = math.inf, s_noise: float = 1.0) -> StepResult:
    """Euler step on dx/dsigma = (x - D(x, sigma)) / sigma (Karras et al. 2022, eq. 4 / Alg. 2 lines 4-8).

    Options: ``s_churn`` (total churn over the schedule, 0 = deterministic),
    ``s_tmin``/``s_tmax`` (sigma range where churn applies), ``s_noise`` (churn noise scale).
    """
    sigma, sigma_next = sigmas[i], sigmas[i + 1]
    x, sigma_hat = _churn(x, sigma, len(sigmas) - 1, noise_sampler, s_churn, s_tmin, s_tmax, s_noise)
    denoised = _denoise(model, x, sigma_hat, extra_args)
    # x + (x - D) / sigma_hat * (sigma_next - sigma_hat) == D + (x - D) * sigma_next / sigma_hat
    return StepResult(torch.lerp(denoised, x, sigma_next / sigma_hat), state, denoised, sigma_hat, x)


def euler_ancestral_step(model, x, sigmas, i, state, extra_args, noise_sampler, *, eta: float = 1.0,
                         s_noise: float = 1.0) -> StepResult:
    """Euler step to sigma_down, then fresh noise of std sigma_up (k-diffusion ``sample_euler_ancestral``).

    Options: ``eta`` (0 = plain Euler, 1 = full ancestral noise), ``s_noise`` (noise scale).
    """
    if eta < 0:
        raise SamplingError("eta", "eta >= 0", repr(eta), "Use 0 (deterministic) to 1 (full ancestral noise).", eta)
    sigma, sigma_next = sigmas[i], sigmas[i + 1]
    denoised = _denoise(model, x, sigma, extra_args)
    sigma_down, sigma_up = ancestral_step_sizes(sigma, sigma_next, eta)
    x_next = torch.lerp(denoised, x, sigma_down / sigma)
    if sigma_up > 0:
        x_next = x_next + noise_sampler(sigma, sigma_next) * (s_noise * sigma_up)
    return StepResult(x_next, state, denoised, sigma, x)


def heun_step(model, x, sigmas, i, state, extra_args, noise_sampler, *, s_churn: float = 0.0,
              s_tmin: float = 0.0, s_tmax: float = math.inf, s_noise: float = 1.0) -> StepResult:
    """Heun's 2nd-order step (Karras et al. 2022, Alg. 2); plain Euler on the last step to sigma 0 and on
    steps too uneven for it (:func:`too_uneven_for_higher_order`).

    Options: as :func:`euler_step`.
    """
    sigma, sigma_next = sigmas[i], sigmas[i + 1]
    x, sigma_hat = _churn(x, sigma, len(sigmas) - 1, noise_sampler, s_churn, s_tmin, s_tmax, s_noise)
    denoised = _denoise(model, x, sigma_hat, extra_args)
    if sigma_next == 0:
        return StepResult(denoised, state, denoised, sigma_hat, x)
    step = sigma_next - sigma_hat
    x_euler = torch.lerp(denoised, x, sigma_next / sigma_hat)
    if too_uneven_for_higher_order(sigma_hat, sigma_next):
        return StepResult(x_euler, state, denoised, sigma_hat, x)
    denoised_next = _denoise(model, x_euler, sigma_next, extra_args)
    # x + step/2 * (d + d_next) with d = (x - D)/sigma_hat, d_next = (x_euler - D_next)/sigma_next
    x_next = x.add(x - denoised, alpha=step / (2 * sigma_hat)).add_(x_euler - denoised_next,
                                                                    alpha=step / (2 * sigma_next))
    return StepResult(x_next, state, denoised, sigma_hat, x)


def ddim_step(model, x, sigmas, i, state, extra_args, noise_sampler, *, eta: float = 0.0) -> StepResult:
    """DDIM step (Song et al. 2021a, eq. 12) with sigma_t(eta) of eq. 16, in the VE view.

    With ᾱ = 1/(1+sigma²): x_prev = sqrt(ᾱ_prev) x0 + sqrt(1 - ᾱ_prev - s²) eps + s z,
    s = eta sqrt((1-ᾱ_prev)/(1-ᾱ_t)) sqrt(1 - ᾱ_t/ᾱ_prev); dividing by sqrt(ᾱ_prev)
    gives x_next = x0 + c_eps eps + c_noise z. Options: ``eta`` in [0, 1]
    (0 = deterministic DDIM, 1 = DDPM-like).
    """
    if not 0 <= eta <= 1:
        raise SamplingError("eta", "eta in [0, 1] (Song et al. 2021, eq. 16)", repr(eta),
                            "Use 0 for deterministic DDIM, 1 for DDPM-like noise.", eta)
    sigma, sigma_next = sigmas[i], sigmas[i + 1]
    denoised = _denoise(model, x, sigma, extra_args)
    alpha_bar_next = 1 / (1 + sigma_next**2)
    one_minus_alpha_bar = sigma**2 / (1 + sigma**2)  # 1 - ᾱ_t without cancellation
    one_minus_alpha_bar_next = sigma_next**2 / (1 + sigma_next**2)
    one_minus_ratio = (sigma**2 - sigma_next**2) / (1 + sigma**2)  # 1 - ᾱ_t / ᾱ_prev
    variance = eta**2 * one_minus_alpha_bar_next / one_minus_alpha_bar * one_minus_ratio  # eq. 16 squared
    eps_scale = math.sqrt(max(one_minus_alpha_bar_next - variance, 0.0) / alpha_bar_next)
    x_next = torch.lerp(denoised, x, eps_scale / sigma)  # eps = (x - x0) / sigma
    if variance > 0:
        x_next = x_next + noise_sampler(sigma, sigma_next) * math.sqrt(variance / alpha_bar_next)
    return StepResult(x_next, state, denoised, sigma, x)


def ddpm_step(model, x, sigmas, i, state, extra_args, noise_sampler) -> StepResult:
    """Ancestral DDPM step: sample the posterior q(x_prev | x_t, x0 = D) (Ho et al. 2020, eqs. 6-7).

    For an arbitrary pair of levels, alpha_t = ᾱ_t / ᾱ_prev and beta_t = 1 - alpha_t
    (the "strided" DDPM of diffusers' DDPMScheduler, variance "fixed_small").
    """
    sigma, sigma_next = sigmas[i], sigmas[i + 1]
    denoised = _denoise(model, x, sigma, extra_args)
    alpha_bar, alpha_bar_next = 1 / (1 + sigma**2), 1 / (1 + sigma_next**2)
    one_minus_alpha_bar = sigma**2 / (1 + sigma**2)
    one_minus_alpha_bar_next = sigma_next**2 / (1 + sigma_next**2)
    beta = (sigma**2 - sigma_next**2) / (1 + sigma**2)  # 1 - ᾱ_t / ᾱ_prev
    x_t_coefficient = math.sqrt(1 - beta) * one_minus_alpha_bar_next / one_minus_alpha_bar  # eq. 7
    posterior_variance = beta * one_minus_alpha_bar_next / one_minus_alpha_bar  # β̃_t, eq. 7
    # VE view: x_t^VP = sqrt(ᾱ_t) x; divide the posterior sample by sqrt(ᾱ_prev). The two mean
    # coefficients then sum to 1, so the mean is a lerp between x0 and x.
    x_next = torch.lerp(denoised, x, x_t_coefficient * math.sqrt(alpha_bar / alpha_bar_next))
    if posterior_variance > 0:
        x_next = x_next + noise_sampler(sigma, sigma_next) * math.sqrt(posterior_variance / alpha_bar_next)
    return StepResult(x_next, state, denoised, sigma, x)


def dpmpp_2m_step(model, x, sigmas, i, state, extra_args, noise_sampler) -> StepResult:
    """DPM-Solver++(2M) (Lu et al. 2022b, Alg. 2): multistep 2nd order in lambda = -log sigma.

    x_next = (sigma_next/sigma) x - expm1(-h) D_eff with D_eff = (1 + 1/2r) D_i - 1/2r D_{i-1},
    r = h_{i-1}/h_i; first order at step 0, on the final step to sigma 0 and when r is below
    MIN_HISTORY_STEP_RATIO (:func:`history_usable`). State: ``previous_denoised``.
    """
    sigma, sigma_next = sigmas[i], sigmas[i + 1]
    previous = _history(state, "previous_denoised", i, "dpmpp_2m")
    denoised = _denoise(model, x, sigma, extra_args)
    if sigma_next == 0:
        x_next = denoised
    else:
        effective = denoised
        if previous is not None and history_usable(sigmas, i):
            ratio = math.log(sigmas[i - 1] / sigma) / math.log(sigma / sigma_next)
            effective = torch.lerp(denoised, previous, -0.5 / ratio)
        x_next = torch.lerp(effective, x, sigma_next / sigma)  # -expm1(-h) = 1 - sigma_next/sigma
    return StepResult(x_next, {"previous_denoised": denoised}, denoised, sigma, x)


def dpmpp_2m_sde_step(model, x, sigmas, i, state, extra_args, noise_sampler, *, eta: float = 1.0,
                      s_noise: float = 1.0, solver_type: Literal["midpoint", "heun"] = "midpoint") -> StepResult:
    """SDE-DPM-Solver++(2M) (Lu et al. 2022b, §4; k-diffusion ``sample_dpmpp_2m_sde``).

    With H = (1 + eta) h: x_next = (sigma_next/sigma) e^{-eta h} x + (1 - e^{-H}) D_eff
    + sigma_next sqrt(1 - e^{-2 eta h}) z. Options: ``eta`` (0 = ODE), ``s_noise``,
    ``solver_type`` ("midpoint" as diffusers' default, or "heun"). State: ``previous_denoised``.
    First order where :func:`history_usable` says the previous step is too short to extrapolate from.
    """
    if solver_type not in ("midpoint", "heun"):
        raise SamplingError("solver_type", "'midpoint' or 'heun'", repr(solver_type),
                            "Use 'midpoint' (diffusers' default).", solver_type)
    if eta < 0:
        raise SamplingError("eta", "eta >= 0", repr(eta), "Use 0 (ODE) to 1 (SDE).", eta)
    sigma, sigma_next = sigmas[i], sigmas[i + 1]
    previous = _history(state, "previous_denoised", i, "dpmpp_2m_sde")
    denoised = _denoise(model, x, sigma, extra_args)
    if sigma_next == 0:
        return StepResult(denoised, {"previous_denoised": denoised}, denoised, sigma, x)
    h = math.log(sigma / sigma_next)
    total = (1 + eta) * h
    x_weight = math.exp(-total)  # (sigma_next / sigma) e^{-eta h}
    effective = denoised
    if previous is not None and history_usable(sigmas, i):
        ratio = math.log(sigmas[i - 1] / sigma) / h
        if solver_type == "midpoint":
            correction = 0.5 / ratio
        else:
            correction = (1 + math.expm1(-total) / total) / ratio / -math.expm1(-total)
        effective = torch.lerp(denoised, previous, -correction)
    x_next = torch.lerp(effective, x, x_weight)
    if eta:
        noise_scale = sigma_next * math.sqrt(-math.expm1(-2 * eta * h)) * s_noise
        x_next = x_next + noise_sampler(sigma, sigma_next) * noise_scale
    return StepResult(x_next, {"previous_denoised": denoised}, denoised, sigma, x)


def dpmpp_sde_step(model, x, sigmas, i, state, extra_args, noise_sampler, *, eta: float = 1.0,
                   s_noise: float = 1.0, r: float = 0.5) -> StepResult:
    """SDE-DPM-Solver++ 2S (k-diffusion ``sample_dpmpp_sde``): two model calls per step.

    Stage 1: ancestral DPM-Solver-1 step from sigma to sigma_mid = sigma e^{-r h}; stage 2:
    from sigma with D_eff = (1 - 1/2r) D + 1/2r D_mid. Brownian consistency: the two
    noises are W-increments over (sigma, sigma_mid) and (sigma, sigma_next); the latter
    is composed from the disjoint pieces (sigma, sigma_mid) and (sigma_mid, sigma_next)
    so any noise sampler with independent disjoint increments is exact (noise.py).
    Options: ``eta``, ``s_noise``, ``r`` in (0, 1).
    """
    if not 0 < r < 1:
        raise SamplingError("r", "r in (0, 1) (position of the intermediate point in log sigma)", repr(r),
                            "Use r=0.5.", r)
    sigma, sigma_next = sigmas[i], sigmas[i + 1]
    denoised = _denoise(model, x, sigma, extra_args)
    if sigma_next == 0:
        return StepResult(denoised, state, denoised, sigma, x)
    sigma_mid = sigma * math.exp(-r * math.log(sigma / sigma_next))
    sigma_down, sigma_up = ancestral_step_sizes(sigma, sigma_mid, eta)
    x_mid = torch.lerp(denoised, x, sigma_down / sigma)
    first_noise = noise_sampler(sigma, sigma_mid) if eta else None
    if sigma_up > 0:
        x_mid = x_mid + first_noise * (s_noise * sigma_up)
    denoised_mid = _denoise(model, x_mid, sigma_mid, extra_args)
    sigma_down, sigma_up = ancestral_step_sizes(sigma, sigma_next, eta)
    x_next = torch.lerp(torch.lerp(denoised, denoised_mid, 1 / (2 * r)), x, sigma_down / sigma)
    if sigma_up > 0:
        second_noise = noise_sampler(sigma_mid, sigma_next)
        full_step_noise = (first_noise * math.sqrt(sigma - sigma_mid)
                           + second_noise * math.sqrt(sigma_mid - sigma_next)) / math.sqrt(sigma - sigma_next)
        x_next = x_next + full_step_noise * (s_noise * sigma_up)
    return StepResult(x_next, state, denoised, sigma, x)


def lms_step(model, x, sigmas, i, state, extra_args, noise_sampler, *, order: int = 4) -> StepResult:
    """Linear multistep (Adams-Bashforth in sigma) on the PF-ODE (k-diffusion ``sample_lms``).

    The order ramps up 1, 2, ... to ``order`` as derivatives accumulate; a step too uneven for a
    higher order (:func:`too_uneven_for_higher_order`) is taken at first order (its derivatives are
    still remembered). State: ``derivatives`` (up to ``order`` most recent dx/dsigma, oldest first).
    """
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise SamplingError("order", "an integer order >= 1", repr(order), "Use order=4.", order)
    sigma = sigmas[i]
    history = _history(state, "derivatives", i, "lms") or []
    denoised = _denoise(model, x, sigma, extra_args)
    derivatives = (list(history) + [(x - denoised) / sigma])[-order:]
    if too_uneven_for_higher_order(sigma, sigmas[i + 1]):
        x_next = torch.lerp(denoised, x, sigmas[i + 1] / sigma)     # Euler: exact for a constant estimate
        return StepResult(x_next, {"derivatives": derivatives}, denoised, sigma, x)
    weights = lms_coefficients(sigmas, i, len(derivatives))
    x_next = _linear_combination([(1.0, x)] + list(zip(weights, reversed(derivatives))))
    return StepResult(x_next, {"derivatives": derivatives}, denoised, sigma, x)


def _unipc_order(i: int, order: int, sigmas: Sequence[float]) -> int:
    """Order used at step i: warm-up (i + 1), lower order on the final steps (diffusers' rule), and no
    older estimate from a step too short to extrapolate from (:func:`history_usable`)."""
    order = min(order, len(sigmas) - 1 - i, i + 1)
    while order > 1 and not history_usable(sigmas, i, order - 1):
        order -= 1
    return order


def _unipc_weights(lambdas: Sequence[float], lambda_target: float, order: int,
                   variant: str, corrector: bool) -> tuple[list[float], float, float, list[float]]:
    """UniPC weights (Zhao et al. 2023, Alg. 2/3; data prediction, lambda = -log sigma).

    ``lambdas[0]`` is the base point s0, ``lambdas[1:]`` the older points; returns
    (rhos, h_phi_1, B_h, r) with r_k = (lambda_k - lambda_s0) / h, h = lambda_target - lambda_s0.
    Like diffusers, UniP-2 uses rho = 1/2 and UniC-1 uses rho = 1/2 instead of solving.
    """
    h = lambda_target - lambdas[0]
    ratios = [(lam - lambdas[0]) / h for lam in lambdas[1:order]] + [1.0]
    hh = -h
    h_phi_1 = math.expm1(hh)
    b_h = hh if variant == "bh1" else math.expm1(hh)
    h_phi_k = h_phi_1 / hh - 1
    factorial = 1
    rows, rhs = [], []
    for p in range(1, order + 1):
        rows.append([ratio ** (p - 1) for ratio in ratios])
        rhs.append(h_phi_k * factorial / b_h)
        factorial *= p + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    if corrector:
        rhos = [0.5] if order == 1 else _solve(rows, rhs)
    else:
        rhos = [] if order == 1 else [0.5] if order == 2 else _solve([row[:-1] for row in rows[:-1]], rhs[:-1])
    return rhos, h_phi_1, b_h, ratios


def _solve(matrix: list[list[float]], rhs: list[float]) -> list[float]:
    """Solve a small dense linear system (Gaussian elimination with partial pivoting)."""
    size = len(rhs)
    rows = [list(matrix[k]) + [rhs[k]] for k in range(size)]
    for col in range(size):
        pivot = max(range(col, size), key=lambda r: abs(rows[r][col]))
        rows[col], rows[pivot] = rows[pivot], rows[col]
        for r in range(col + 1, size):
            factor = rows[r][col] / rows[col][col]
            rows[r] = [a - factor * b for a, b in zip(rows[r], rows[col])]
    solution = [0.0] * size
    for r in reversed(range(size)):
        solution[r] = (rows[r][size] - sum(rows[r][c] * solution[c] for c in range(r + 1, size))) / rows[r][r]
    return solution


def _unipc_predict(x, history, sigmas, i, order, variant):
    """UniP-p (predictor) from sigma_i to sigma_{i+1}; ``history`` ends with D at sigma_i."""
    lambdas = [-math.log(sigmas[i - k]) for k in range(order)]
    rhos, h_phi_1, b_h, ratios = _unipc_weights(lambdas, -math.log(sigmas[i + 1]), order, variant, corrector=False)
    base = history[-1]
    # x_next = (sigma_next/sigma) x - h_phi_1 m0 - B_h sum_k rho_k (m_k - m0) / r_k
    terms, base_weight = [(sigmas[i + 1] / sigmas[i], x)], -h_phi_1
    for k, rho in enumerate(rhos, start=1):
        weight = b_h * rho / ratios[k - 1]
        terms.append((-weight, history[-1 - k]))
        base_weight += weight
    return _linear_combination(terms + [(base_weight, base)])


def _unipc_correct(x_before, denoised_now, history, sigmas, i, order, variant):
    """UniC-p (corrector) of the sample at sigma_i, predicted from sigma_{i-1} (``history`` ends there)."""
    lambdas = [-math.log(sigmas[i - 1 - k]) for k in range(order)]
    rhos, h_phi_1, b_h, ratios = _unipc_weights(lambdas, -math.log(sigmas[i]), order, variant, corrector=True)
    base = history[-1]
    # x_corrected = (sigma_i/sigma_{i-1}) x_before - h_phi_1 m0 - B_h (sum_k rho_k (m_k - m0)/r_k + rho_t (D_now - m0))
    terms, base_weight = [(sigmas[i] / sigmas[i - 1], x_before)], -h_phi_1
    for k, rho in enumerate(rhos[:-1], start=1):
        weight = b_h * rho / ratios[k - 1]
        terms.append((-weight, history[-1 - k]))
        base_weight += weight
    terms.append((-b_h * rhos[-1], denoised_now))
    base_weight += b_h * rhos[-1]
    return _linear_combination(terms + [(base_weight, base)])


def unipc_step(model, x, sigmas, i, state, extra_args, noise_sampler, *, order: int = 2,
               variant: Literal["bh1", "bh2"] = "bh2", use_corrector: bool = True) -> StepResult:
    """UniPC (Zhao et al. 2023): correct the current sample with UniC, then predict with UniP.

    Matches diffusers' UniPCMultistepScheduler (predict_x0, lower_order_final). The model is
    evaluated at the predicted sample; UniC then refines that sample using the new model
    output (no extra evaluation), and UniP steps from the refined sample.
    Options: ``order`` 1-3, ``variant`` "bh1" or "bh2" (B(h) = h or e^h - 1),
    ``use_corrector``. State: ``denoised_history``, ``x_before_predictor``.
    """
    if order not in (1, 2, 3):
        raise SamplingError("order", "UniPC order 1, 2 or 3", repr(order), "Use 2 (guided) or 3 (unguided).", order)
    if variant not in ("bh1", "bh2"):
        raise SamplingError("variant", "'bh1' or 'bh2'", repr(variant), "Use 'bh2' (diffusers' default).", variant)
    sigma, sigma_next = sigmas[i], sigmas[i + 1]
    history = _history(state, "denoised_history", i, "unipc") or []
    denoised = _denoise(model, x, sigma, extra_args)
    x_corrected = x
    if i > 0 and use_corrector and not too_uneven_for_higher_order(sigmas[i - 1], sigma):   # UniC: a trapezoid
        previous_order = _unipc_order(i - 1, order, sigmas)
        x_corrected = _unipc_correct(state["x_before_predictor"], denoised, history, sigmas, i, previous_order,
                                     variant)
    history = (list(history) + [denoised])[-order:]
    if sigma_next == 0:
        x_next = denoised  # UniP-1 to sigma 0 is exactly the data prediction
    else:
        x_next = _unipc_predict(x_corrected, history, sigmas, i, _unipc_order(i, order, sigmas), variant)
    return StepResult(x_next, {"denoised_history": history, "x_before_predictor": x_corrected}, denoised, sigma, x)


def lcm_step(model, x, sigmas, i, state, extra_args, noise_sampler) -> StepResult:
    """Multistep consistency sampling (Luo et al. 2023, Alg. 1; Song et al. 2023, Alg. 1).

    Jump to the denoised estimate, then re-noise it to sigma_next with fresh noise:
    x_next = D(x, sigma) + sigma_next z. The consistency boundary condition (c_skip,
    c_out of the distilled model) belongs to the denoiser, not to this sampler.
    """
    sigma, sigma_next = sigmas[i], sigmas[i + 1]
    denoised = _denoise(model, x, sigma, extra_args)
    x_next = denoised
    if sigma_next > 0:
        x_next = denoised + noise_sampler(sigma, sigma_next) * sigma_next
    return StepResult(x_next, state, denoised, sigma, x)


# --- running steps ----------------------------------------------------------------------------


class _DeferredNoiseSampler:
    """Default noise sampler: seeded from torch's global RNG on first use (so ODE samplers draw nothing)."""

    def __init__(self, x: torch.Tensor):
        self._x = x
        self._sampler: IntervalNoiseSampler | None = None

    def __call__(self, sigma: float, sigma_next: float) -> torch.Tensor:
        if self._sampler is None:
            self._sampler = IntervalNoiseSampler(self._x.shape, random_seed(), self._x.device, self._x.dtype)
        return self._sampler(sigma, sigma_next)


def check_latent(x: object) -> None:
    """Raise SamplingError unless x is a floating-point tensor with a batch dimension."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 1 or x.shape[0] < 1:
        found = type(x).__name__ if not isinstance(x, torch.Tensor) else f"{x.dtype} tensor of shape {tuple(x.shape)}"
        raise SamplingError("x", "a floating-point latent tensor of shape (B, ...) with B >= 1", found,
                            "Pass the noised latent (e.g. seeded_noise(shape, seed) * sigmas[0]).", x)


def _progress(count: int, disable: bool | None):
    """range(count), wrapped in a tqdm bar only when ``disable is False``."""
    if disable is False:
        from tqdm import trange

        return trange(count)
    return range(count)


def run_sampler(step: StepFunction, model, x: torch.Tensor, sigmas: torch.Tensor,
                extra_args: Mapping[str, Any] | None = None, callback: Callback | None = None,
                disable: bool | None = None, noise_sampler: NoiseSampler | None = None,
                **options) -> torch.Tensor:
    """Run ``step`` for i = 0 .. len(sigmas) - 2, carrying its state; the loop behind every sampler.

    Args:
        step: a step function (see module docstring).
        model: denoiser ``model(x, sigma, **extra_args) -> denoised``.
        x: latent at ``sigmas[0]``, shape (B, ...), floating point.
        sigmas: strictly decreasing 1-D tensor (usually ending in 0).
        extra_args: keyword arguments forwarded to every model call (conditioning).
        callback: called after each step with ``{"i", "sigma", "sigma_hat", "x", "denoised"}``.
        disable: show a tqdm progress bar only when ``False``.
        noise_sampler: ``fn(sigma, sigma_next) -> noise``; default: seeded from torch's global RNG.
        **options: the step function's options.

    Returns:
        The latent at ``sigmas[-1]`` (the clean sample when the schedule ends in 0).
    """
    sigma_values = check_schedule(sigmas, must_end_in_zero=False)
    check_latent(x)
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = _DeferredNoiseSampler(x) if noise_sampler is None else noise_sampler
    state: SamplerState = {}
    for i in _progress(len(sigma_values) - 1, disable):
        x_next, state, denoised, sigma_hat, x_evaluated = _checked_step(
            step, step(model, x, sigma_values, i, state, extra_args, noise_sampler, **options), x)
        if callback is not None:
            callback({"i": i, "sigma": sigma_values[i], "sigma_hat": sigma_hat, "x": x_evaluated,
                      "denoised": denoised})
        x = x_next
    return x


def _checked_step(step: StepFunction, result: Any, x: torch.Tensor) -> StepResult:
    """What a step returned, if it is a StepResult the loop can go on with; else SamplingError naming the step
    (a plugin's step that returned None or a dict failed with an unpacking error blamed on the sampler node)."""
    name = getattr(step, "__qualname__", getattr(step, "__name__", "the step"))
    fix = (f"make {name} return StepResult(x, state, denoised, sigma_hat, x_evaluated) (nodegraph.api.StepResult; "
           f"docs/sampling.md)")
    if not isinstance(result, tuple) or len(result) != 5:
        found = f"{type(result).__name__}" + (f" of {len(result)} values" if isinstance(result, tuple) else "")
        raise SamplingError(f"{name}()", "a StepResult of 5 values", found, fix, result)
    x_next, state, denoised = result[0], result[1], result[2]
    for label, value in (("x", x_next), ("denoised", denoised)):
        if not isinstance(value, torch.Tensor) or value.shape != x.shape or not value.is_floating_point():
            found = (f"{type(value).__name__}" if not isinstance(value, torch.Tensor)
                     else f"{str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}")
            raise SamplingError(f"{name}() result {label}", f"a float tensor shaped like the latent {tuple(x.shape)}",
                                found, fix, value)
    if not isinstance(state, dict):
        raise SamplingError(f"{name}() result state", "a dict (the step's history; {} for none)",
                            type(state).__name__, fix, state)
    return result


def sampler_from_step(step: StepFunction) -> SamplerFunction:
    """Build a full sampler ``sample(model, x, sigmas, ...)`` that iterates ``step`` (for plugins)."""

    def sample_with_step(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
                         **options):
        return run_sampler(step, model, x, sigmas, extra_args, callback, disable, noise_sampler, **options)

    sample_with_step.step = step  # lets single-step users (the SamplerStep node) find the step function
    sample_with_step.__name__ = f"sample_{getattr(step, '__name__', 'step').removesuffix('_step')}"
    sample_with_step.__doc__ = f"Full sampler iterating {getattr(step, '__name__', 'step')}."
    # Advertise the step's options in the signature, so sample() can name them in errors.
    shared = list(inspect.signature(sample_with_step).parameters.values())[: len(_STANDARD_PARAMETERS)]
    options = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.kind is not inspect.Parameter.VAR_KEYWORD else p
               for p in list(inspect.signature(step).parameters.values())[len(_STEP_PARAMETERS):]]
    sample_with_step.__signature__ = inspect.Signature(shared + options)
    return sample_with_step


# --- the public samplers (k-diffusion signature) -----------------------------------------------


def sample_euler(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None, *,
                 s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = math.inf,
                 s_noise: float = 1.0) -> torch.Tensor:
    """Euler sampler (Karras et al. 2022, Alg. 2 without the 2nd-order correction); see :func:`euler_step`."""
    return run_sampler(euler_step, model, x, sigmas, extra_args, callback, disable, noise_sampler,
                       s_churn=s_churn, s_tmin=s_tmin, s_tmax=s_tmax, s_noise=s_noise)


def sample_euler_ancestral(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None, *,
                           eta: float = 1.0, s_noise: float = 1.0) -> torch.Tensor:
    """Euler ancestral sampler; see :func:`euler_ancestral_step`."""
    return run_sampler(euler_ancestral_step, model, x, sigmas, extra_args, callback, disable, noise_sampler,
                       eta=eta, s_noise=s_noise)


def sample_heun(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None, *,
                s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = math.inf,
                s_noise: float = 1.0) -> torch.Tensor:
    """Heun sampler, 2 model calls per step (Karras et al. 2022, Alg. 2); see :func:`heun_step`."""
    return run_sampler(heun_step, model, x, sigmas, extra_args, callback, disable, noise_sampler,
                       s_churn=s_churn, s_tmin=s_tmin, s_tmax=s_tmax, s_noise=s_noise)


def sample_ddim(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None, *,
                eta: float = 0.0) -> torch.Tensor:
    """DDIM sampler (Song et al. 2021a); ``eta=0`` is deterministic; see :func:`ddim_step`."""
    return run_sampler(ddim_step, model, x, sigmas, extra_args, callback, disable, noise_sampler, eta=eta)


def sample_ddpm(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None) -> torch.Tensor:
    """Ancestral DDPM sampler with posterior variance (Ho et al. 2020); see :func:`ddpm_step`."""
    return run_sampler(ddpm_step, model, x, sigmas, extra_args, callback, disable, noise_sampler)


def sample_dpmpp_2m(model, x, sigmas, extra_args=None, callback=None, disable=None,
                    noise_sampler=None) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022b); see :func:`dpmpp_2m_step`."""
    return run_sampler(dpmpp_2m_step, model, x, sigmas, extra_args, callback, disable, noise_sampler)


def sample_dpmpp_2m_sde(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None, *,
                        eta: float = 1.0, s_noise: float = 1.0,
                        solver_type: Literal["midpoint", "heun"] = "midpoint") -> torch.Tensor:
    """SDE-DPM-Solver++(2M); see :func:`dpmpp_2m_sde_step`."""
    return run_sampler(dpmpp_2m_sde_step, model, x, sigmas, extra_args, callback, disable, noise_sampler,
                       eta=eta, s_noise=s_noise, solver_type=solver_type)


def sample_dpmpp_sde(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None, *,
                     eta: float = 1.0, s_noise: float = 1.0, r: float = 0.5) -> torch.Tensor:
    """SDE-DPM-Solver++ 2S, 2 model calls per step; see :func:`dpmpp_sde_step`."""
    return run_sampler(dpmpp_sde_step, model, x, sigmas, extra_args, callback, disable, noise_sampler,
                       eta=eta, s_noise=s_noise, r=r)


def sample_lms(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None, *,
               order: int = 4) -> torch.Tensor:
    """Linear multistep sampler; see :func:`lms_step`."""
    return run_sampler(lms_step, model, x, sigmas, extra_args, callback, disable, noise_sampler, order=order)


def sample_unipc(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None, *,
                 order: int = 2, variant: Literal["bh1", "bh2"] = "bh2",
                 use_corrector: bool = True) -> torch.Tensor:
    """UniPC multistep sampler (Zhao et al. 2023); see :func:`unipc_step`."""
    return run_sampler(unipc_step, model, x, sigmas, extra_args, callback, disable, noise_sampler,
                       order=order, variant=variant, use_corrector=use_corrector)


def unipc_bh1_step(model, x, sigmas, i, state, extra_args, noise_sampler, *, order: int = 2,
                   use_corrector: bool = True) -> StepResult:
    """UniPC with B(h) = h, the rule of ComfyUI's `uni_pc` (its `uni_pc_bh2`'s is our `unipc`'s; ComfyUI runs
    order 3, diffusers and we 2); see :func:`unipc_step`."""
    return unipc_step(model, x, sigmas, i, state, extra_args, noise_sampler, order=order, variant="bh1",
                      use_corrector=use_corrector)


def sample_unipc_bh1(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None, *,
                     order: int = 2, use_corrector: bool = True) -> torch.Tensor:
    """UniPC with B(h) = h (ComfyUI's `uni_pc`); see :func:`unipc_step`."""
    return run_sampler(unipc_bh1_step, model, x, sigmas, extra_args, callback, disable, noise_sampler,
                       order=order, use_corrector=use_corrector)


def sample_lcm(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None) -> torch.Tensor:
    """Latent-consistency-model sampler (Luo et al. 2023); see :func:`lcm_step`."""
    return run_sampler(lcm_step, model, x, sigmas, extra_args, callback, disable, noise_sampler)


# --- registry ---------------------------------------------------------------------------------

#: name -> full sampler with the shared signature.
SAMPLERS: dict[str, SamplerFunction] = {
    "euler": sample_euler,
    "euler_ancestral": sample_euler_ancestral,
    "heun": sample_heun,
    "ddim": sample_ddim,
    "ddpm": sample_ddpm,
    "dpmpp_2m": sample_dpmpp_2m,
    "dpmpp_2m_sde": sample_dpmpp_2m_sde,
    "dpmpp_sde": sample_dpmpp_sde,
    "lms": sample_lms,
    "unipc": sample_unipc,
    "unipc_bh1": sample_unipc_bh1,
    "lcm": sample_lcm,
}

#: name -> step function, for the single-step API; a sampler may have none.
SAMPLER_STEPS: dict[str, StepFunction] = {
    "euler": euler_step,
    "euler_ancestral": euler_ancestral_step,
    "heun": heun_step,
    "ddim": ddim_step,
    "ddpm": ddpm_step,
    "dpmpp_2m": dpmpp_2m_step,
    "dpmpp_2m_sde": dpmpp_2m_sde_step,
    "dpmpp_sde": dpmpp_sde_step,
    "lms": lms_step,
    "unipc": unipc_step,
    "unipc_bh1": unipc_bh1_step,
    "lcm": lcm_step,
}

_STANDARD_PARAMETERS = ("model", "x", "sigmas", "extra_args", "callback", "disable", "noise_sampler")
_STEP_PARAMETERS = ("model", "x", "sigmas", "i", "state", "extra_args", "noise_sampler")


def register_sampler(name: str, fn: SamplerFunction, *, step: StepFunction | None = None,
                     replace: bool = False) -> None:
    """Add a sampler to :data:`SAMPLERS` (and its step function to :data:`SAMPLER_STEPS`).

    Args:
        name: registry key shown to users.
        fn: full sampler with the shared signature
            ``fn(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None, **options)``;
            ``sampler_from_step(step)`` builds one from a step function.
        step: optional step function; without it the sampler cannot be used one step at a time.
        replace: allow overwriting an existing name.
    """
    if not isinstance(name, str) or not name:
        raise SamplingError("name", "a non-empty string", repr(name), "Pass the sampler's name.", name)
    if name in SAMPLERS and not replace:
        raise SamplingError("name", "a sampler name not registered yet", repr(name),
                            "Pick another name or pass replace=True.", name)
    for argument, function, expected in (("fn", fn, _STANDARD_PARAMETERS), ("step", step, _STEP_PARAMETERS)):
        if function is None and argument == "step":
            continue
        parameters = tuple(inspect.signature(function).parameters)[: len(expected)] if callable(function) else ()
        if parameters != expected:
            raise SamplingError(argument, f"a callable with leading parameters {expected}", repr(parameters),
                                "Follow the shared sampler signature (see nodes.sampling.samplers).", function)
    SAMPLERS[name] = fn
    if step is not None:
        SAMPLER_STEPS[name] = step
    else:
        SAMPLER_STEPS.pop(name, None)


def _unknown_sampler(name: object, registry: Mapping[str, Any], what: str) -> SamplingError:
    return SamplingError("sampler", f"one of {sorted(registry)}{what}", repr(name),
                         "Pick a registered sampler name (plugins add more with register_sampler).", name)


def get_sampler(name: str) -> SamplerFunction:
    """The full sampler registered as ``name`` (SamplingError listing valid names otherwise)."""
    if name not in SAMPLERS:
        raise _unknown_sampler(name, SAMPLERS, "")
    return SAMPLERS[name]


def get_sampler_step(name: str) -> StepFunction:
    """The step function registered as ``name`` (SamplingError if unknown or full-run only)."""
    if name not in SAMPLER_STEPS:
        raise _unknown_sampler(name, SAMPLER_STEPS, " (samplers with a step function)")
    return SAMPLER_STEPS[name]


def _option_names(function: Callable, skip: int) -> set[str] | None:
    """Keyword options a sampler or step accepts; None if it takes **kwargs."""
    parameters = list(inspect.signature(function).parameters.values())[skip:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters}


def _check_options(name: str, function: Callable, skip: int, options: Mapping[str, Any]) -> None:
    """SamplingError naming the valid options when ``options`` has an unknown key."""
    valid = _option_names(function, skip)
    unknown = sorted(set(options) - valid) if valid is not None else []
    if unknown:
        raise SamplingError("options", f"options of sampler {name!r}: {sorted(valid) or 'none'}",
                            f"unknown option(s) {unknown}", "Remove or rename them.", dict(options))


def sample(name: str, model, x: torch.Tensor, sigmas: torch.Tensor, extra_args: Mapping[str, Any] | None = None,
           callback: Callback | None = None, disable: bool | None = None,
           noise_sampler: NoiseSampler | None = None, **options) -> torch.Tensor:
    """Run the sampler registered as ``name``; arguments as :func:`run_sampler`.

    Unknown names and unknown options raise SamplingError before any model call.
    """
    function = get_sampler(name)
    _check_options(name, function, len(_STANDARD_PARAMETERS), options)
    return function(model, x, sigmas, extra_args, callback, disable, noise_sampler, **options)


def sampler_step(name: str, model, x: torch.Tensor, sigmas: torch.Tensor, i: int,
                 state: SamplerState | None = None, *, extra_args: Mapping[str, Any] | None = None,
                 noise_sampler: NoiseSampler | None = None, seed: int | None = None,
                 callback: Callback | None = None, step_function: StepFunction | None = None,
                 **options) -> tuple[torch.Tensor, SamplerState]:
    """Run step ``i`` (sigmas[i] -> sigmas[i + 1]) of sampler ``name`` with explicit state.

    Stepping i = 0, 1, ... and feeding each returned state into the next call
    reproduces ``sample(name, ...)`` bit for bit, given the same noise (same
    ``noise_sampler``, or ``seed`` here and ``make_noise_sampler(x, seed)`` there).

    Args:
        name: registered sampler with a step function.
        model, x, sigmas, extra_args, callback: as :func:`run_sampler`; ``x`` is the
            latent at ``sigmas[i]`` and ``sigmas`` the FULL schedule (history uses
            earlier sigmas, order ramps use its length).
        i: step index, 0 <= i < len(sigmas) - 1.
        state: the ``new_state`` of step ``i - 1`` (``None`` at step 0).
        noise_sampler: explicit noise sampler; otherwise noise is keyed by ``seed``.
        seed: noise seed; ``None`` reuses ``state["noise_seed"]``, or draws one
            from torch's global RNG at step 0 and records it in the state.
        step_function: the step function to use instead of the one registered as ``name``
            (for samplers registered elsewhere, e.g. through the node layer's plugin hook).
        **options: the sampler's options (same values at every step).

    Returns:
        ``(x_next, new_state)``. ``new_state`` is a plain dict: the sampler's
        history (e.g. ``previous_denoised``; empty for history-free samplers)
        plus ``sampler`` (name), ``next_step`` (i + 1) and ``noise_seed``.
    """
    step = step_function if step_function is not None else get_sampler_step(name)
    _check_options(name, step, len(_STEP_PARAMETERS), options)
    sigma_values = check_schedule(sigmas, must_end_in_zero=False)
    check_latent(x)
    if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(sigma_values) - 1:
        raise SamplingError("i", f"a step index in [0, {len(sigma_values) - 2}]", repr(i),
                            "Steps are numbered from 0 to len(sigmas) - 2.", i)
    state = dict(state or {})
    if state.get("sampler", name) != name:
        raise SamplingError("state", f"a state produced by sampler {name!r}", f"one from {state['sampler']!r}",
                            "Do not switch samplers mid-run, or restart from step 0 with an empty state.", state)
    if state.get("next_step", i) != i:
        raise SamplingError("state", f"the state of step {i - 1} (next_step={i})",
                            f"next_step={state['next_step']}", "Feed each step the state of the step before it.",
                            state)
    if noise_sampler is None:
        seed = check_seed(seed) if seed is not None else state.get("noise_seed")
        seed = random_seed() if seed is None else seed
        noise_sampler = IntervalNoiseSampler(x.shape, seed, x.device, x.dtype)
    result = step(model, x, sigma_values, i, state, {} if extra_args is None else extra_args, noise_sampler,
                  **options)
    if callback is not None:
        callback({"i": i, "sigma": sigma_values[i], "sigma_hat": result.sigma_hat, "x": result.x_evaluated,
                  "denoised": result.denoised})
    new_state = dict(result.state)
    new_state.update(sampler=name, next_step=i + 1, noise_seed=seed)
    return result.x, new_state
