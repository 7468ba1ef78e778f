"""Noise schedules: training-time betas and sampling-time sigma spacings.

Two different things are called a "schedule":

1. Training betas (what the model was trained with), turned into the
   cumulative ``alphas_cumprod`` (ᾱ_t) and the model's discrete sigmas
   ``sigma_t = sqrt((1 - ᾱ_t) / ᾱ_t)`` (Ho et al. 2020; Karras et al. 2022 §2):
   :func:`linear_betas` (DDPM), :func:`scaled_linear_betas` (Stable Diffusion:
   a linspace over sqrt(beta)), :func:`cosine_betas` (Nichol & Dhariwal 2021,
   eq. 17, betas clipped at 0.999).

2. Sampling sigmas: a 1-D float32 tensor of ``steps + 1`` strictly decreasing
   sigmas that ENDS IN 0, which is all a sampler needs. Spacings:

   =============  ==========================================================
   karras         Karras et al. 2022, eq. 5 (rho = 7)
   exponential    uniform in log sigma
   normal         uniform in model time t from t(sigma_max) to t(sigma_min)
   simple         evenly strided entries of the model's discrete sigma table
   sgm_uniform    uniform in t over steps + 1 points, last point dropped
   ddim_uniform   DDIM/LDM "uniform" timesteps: k * (T // steps) + 1
   beta           Lee et al. 2024: t at quantiles of Beta(alpha, beta)
   discrete       every sigma of the discrete model (steps == T)
   =============  ==========================================================

   Each is registered in :data:`SCHEDULES` as ``fn(model, steps, **options)``
   where ``model`` is any :class:`SigmaMapping` (a denoiser adapter from
   denoisers.py, or a guider wrapping one). Plugins add spacings with
   :func:`register_schedule`; :func:`get_sigmas` looks a name up and checks the
   result.

Plus :func:`split_sigmas` (two schedules sharing the boundary sigma) and
:func:`truncate_for_denoise` (img2img partial denoise, ComfyUI semantics:
``steps`` steps are run, taken from the end of a ``steps / denoise`` schedule).

Everything is computed in float64 and returned as float32 on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch

from .errors import SamplingError

__all__ = [
    "SigmaMapping",
    "ScheduleFunction",
    "linear_betas",
    "scaled_linear_betas",
    "cosine_betas",
    "alphas_cumprod_from_betas",
    "sigmas_from_alphas_cumprod",
    "get_sigmas_karras",
    "get_sigmas_exponential",
    "get_sigmas_normal",
    "get_sigmas_simple",
    "get_sigmas_sgm_uniform",
    "get_sigmas_ddim_uniform",
    "get_sigmas_beta",
    "get_sigmas_discrete",
    "SCHEDULES",
    "register_schedule",
    "get_sigmas",
    "check_steps",
    "check_schedule",
    "split_sigmas",
    "truncate_for_denoise",
]


@runtime_checkable
class SigmaMapping(Protocol):
    """What a schedule needs to know about a model: its sigma range and sigma <-> t map.

    ``sigmas`` is the ascending table of a discrete-time model (index = timestep),
    or ``None`` for a continuous-time model.
    """

    sigma_min: float
    sigma_max: float
    sigmas: torch.Tensor | None

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor: ...

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor: ...


ScheduleFunction = Callable[..., torch.Tensor]  # fn(model: SigmaMapping, steps: int, **options)


# --- training-time betas ---------------------------------------------------------------


def linear_betas(num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Linear betas of DDPM (Ho et al. 2020, §4): float64 tensor of ``num_timesteps``."""
    return torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)


def scaled_linear_betas(num_timesteps: int = 1000, beta_start: float = 0.00085,
                        beta_end: float = 0.012) -> torch.Tensor:
    """Stable Diffusion betas: linear in sqrt(beta) (Rombach et al. 2022 configs); float64."""
    return torch.linspace(beta_start**0.5, beta_end**0.5, num_timesteps, dtype=torch.float64) ** 2


def cosine_betas(num_timesteps: int = 1000, offset: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Cosine betas (Nichol & Dhariwal 2021, eq. 17): beta_t = 1 - ᾱ(t)/ᾱ(t-1), clipped at ``max_beta``.

    ᾱ(t) = f(t) / f(0) with f(t) = cos²(((t/T) + s) / (1 + s) · π/2); the f(0)
    normalisation cancels in the ratio.
    """
    steps = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
    alpha_bar = torch.cos((steps + offset) / (1 + offset) * math.pi / 2) ** 2
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)


def alphas_cumprod_from_betas(betas: torch.Tensor) -> torch.Tensor:
    """ᾱ_t = prod_{s <= t} (1 - beta_s) (Ho et al. 2020, §2), in float64."""
    return torch.cumprod(1 - betas.to(torch.float64), dim=0)


def sigmas_from_alphas_cumprod(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Noise-to-signal sigma_t = sqrt((1 - ᾱ_t) / ᾱ_t) of the variance-exploding view (Karras et al. 2022)."""
    alphas_cumprod = alphas_cumprod.to(torch.float64)
    return ((1 - alphas_cumprod) / alphas_cumprod).sqrt()


# --- sampling-time spacings ------------------------------------------------------------


def _finish(sigmas: torch.Tensor) -> torch.Tensor:
    """Append the final 0 and return float32 on the CPU."""
    return torch.cat([sigmas.to(torch.float64), sigmas.new_zeros(1, dtype=torch.float64)]).to(torch.float32)


def _as_tensor(values) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.float64)


def _time_range(model: SigmaMapping) -> tuple[float, float]:
    """(t at sigma_max, t at sigma_min) of the model."""
    t_max = float(model.sigma_to_t(_as_tensor([model.sigma_max]))[0])
    t_min = float(model.sigma_to_t(_as_tensor([model.sigma_min]))[0])
    return t_max, t_min


def _sigmas_at_times(model: SigmaMapping, times: torch.Tensor) -> torch.Tensor:
    """Sigmas of the model at (possibly fractional) times, in float64."""
    return model.t_to_sigma(times.to(torch.float64)).to(torch.float64)


def _discrete_table(model: SigmaMapping, schedule: str) -> torch.Tensor:
    """The model's ascending discrete sigma table, or a SamplingError for continuous models."""
    table = getattr(model, "sigmas", None)
    if table is None:
        raise SamplingError("model", f"a discrete-time model (schedule {schedule!r} picks entries of its sigma table)",
                            "a continuous-time model without a `sigmas` table",
                            "Use 'normal', 'karras', 'exponential', 'sgm_uniform' or 'beta' instead.", model)
    return table.to(torch.float64).cpu()


def _check_sigma_range(sigma_min: float, sigma_max: float, argument: str = "sigma_min") -> None:
    """0 < sigma_min < sigma_max, both finite: the spacings place steps between them and append the final 0 (a
    sigma_min of 0 gave a bare "math domain error", repeated zeros or NaN sigmas)."""
    try:
        low, high = float(sigma_min), float(sigma_max)
    except (TypeError, ValueError):
        low = high = math.nan
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low < high):
        raise SamplingError(argument, "finite noise levels with 0 < sigma_min < sigma_max",
                            f"sigma_min={sigma_min!r}, sigma_max={sigma_max!r}",
                            "sigma_min is the smallest nonzero step (the schedule ends in 0 by itself); SD's is "
                            "0.0292, EDM's 0.002.", (sigma_min, sigma_max))


def get_sigmas_karras(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. 2022, eq. 5: sigma_i = (max^(1/rho) + i/(n-1) (min^(1/rho) - max^(1/rho)))^rho, then 0."""
    _check_sigma_range(sigma_min, sigma_max)
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    inv_max, inv_min = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return _finish((inv_max + ramp * (inv_min - inv_max)) ** rho)


def get_sigmas_exponential(steps: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """Sigmas uniform in log sigma from sigma_max to sigma_min, then 0."""
    _check_sigma_range(sigma_min, sigma_max)
    return _finish(torch.linspace(math.log(sigma_max), math.log(sigma_min), steps, dtype=torch.float64).exp())


def get_sigmas_normal(model: SigmaMapping, steps: int) -> torch.Tensor:
    """Uniform in model time: t = linspace(t(sigma_max), t(sigma_min), steps), then 0 ("normal")."""
    t_max, t_min = _time_range(model)
    return _finish(_sigmas_at_times(model, torch.linspace(t_max, t_min, steps, dtype=torch.float64)))


def get_sigmas_sgm_uniform(model: SigmaMapping, steps: int) -> torch.Tensor:
    """Uniform in t over steps + 1 points with the last (t_min) dropped, then 0 (SGM / "trailing"-like)."""
    t_max, t_min = _time_range(model)
    times = torch.linspace(t_max, t_min, steps + 1, dtype=torch.float64)[:-1]
    return _finish(_sigmas_at_times(model, times))


def get_sigmas_simple(model: SigmaMapping, steps: int) -> torch.Tensor:
    """Evenly strided entries of the discrete table from the top: index T-1 - floor(k T / steps), then 0."""
    table = _discrete_table(model, "simple")
    count = len(table)
    if steps > count:
        raise SamplingError("steps", f"at most {count} steps for schedule 'simple' (one per training timestep)",
                            str(steps), "Lower steps or use 'normal'.", steps)
    indices = [count - 1 - (k * count) // steps for k in range(steps)]
    return _finish(table[indices])


def get_sigmas_ddim_uniform(model: SigmaMapping, steps: int) -> torch.Tensor:
    """DDIM "uniform" timesteps (Song et al. 2021; LDM): t_k = k * (T // steps) + 1, descending, then 0.

    Identical to diffusers' DDIMScheduler with ``timestep_spacing="leading",
    steps_offset=1`` (the Stable Diffusion config). The +1 offset is dropped
    when it would run past the last timestep (steps > T / 2).
    """
    table = _discrete_table(model, "ddim_uniform")
    count = len(table)
    stride = count // steps
    if stride < 1:
        raise SamplingError("steps", f"at most {count} steps for schedule 'ddim_uniform'", str(steps),
                            "Lower steps or use 'normal'.", steps)
    offset = 1 if (steps - 1) * stride + 1 <= count - 1 else 0
    indices = [k * stride + offset for k in reversed(range(steps))]
    return _finish(table[indices])


def get_sigmas_beta(model: SigmaMapping, steps: int, alpha: float = 0.6, beta: float = 0.6) -> torch.Tensor:
    """Lee et al. 2024 ("Beta sampling is all you need"): times at quantiles of Beta(alpha, beta).

    t_k = t_min + ppf(1 - k/steps) (t_max - t_min) for k = 0..steps-1, then sigma(t_k) and 0.
    Times are kept fractional (not rounded to integers) so the sigmas stay strictly
    decreasing for any step count. Needs scipy.
    """
    try:
        from scipy.stats import beta as beta_distribution  # heavy import, only for this schedule
    except ImportError as error:
        raise SamplingError("scheduler", "scipy to be installed for schedule 'beta' (Beta quantiles)",
                            "no scipy", "pip install scipy, or pick another schedule.", "beta") from error
    if alpha <= 0 or beta <= 0:
        raise SamplingError("alpha/beta", "positive Beta distribution parameters", f"alpha={alpha}, beta={beta}",
                            "Use e.g. alpha=beta=0.6 (the paper's default).", (alpha, beta))
    t_max, t_min = _time_range(model)
    quantiles = 1 - torch.arange(steps, dtype=torch.float64) / steps
    fractions = torch.as_tensor(beta_distribution.ppf(quantiles.numpy(), alpha, beta), dtype=torch.float64)
    return _finish(_sigmas_at_times(model, t_min + fractions * (t_max - t_min)))


def get_sigmas_discrete(model: SigmaMapping) -> torch.Tensor:
    """Every sigma of the discrete model, descending, then 0 (one step per training timestep)."""
    return _finish(_discrete_table(model, "discrete").flip(0))


def _karras(model: SigmaMapping, steps: int, rho: float = 7.0) -> torch.Tensor:
    """Registry adapter: Karras spacing over the model's sigma range."""
    return get_sigmas_karras(steps, model.sigma_min, model.sigma_max, rho)


def _exponential(model: SigmaMapping, steps: int) -> torch.Tensor:
    """Registry adapter: log-uniform spacing over the model's sigma range."""
    return get_sigmas_exponential(steps, model.sigma_min, model.sigma_max)


def _discrete(model: SigmaMapping, steps: int) -> torch.Tensor:
    """Registry adapter: the full discrete table; ``steps`` must equal its length."""
    count = len(_discrete_table(model, "discrete"))
    if steps != count:
        raise SamplingError("steps", f"exactly {count} steps for schedule 'discrete' (one per training timestep)",
                            str(steps), "Set steps to the number of training timesteps, or use 'simple' "
                            "for an evenly strided subset.", steps)
    return get_sigmas_discrete(model)


#: name -> ``fn(model, steps, **options) -> sigmas``; extend with :func:`register_schedule`.
SCHEDULES: dict[str, ScheduleFunction] = {
    "karras": _karras,
    "exponential": _exponential,
    "normal": get_sigmas_normal,
    "simple": get_sigmas_simple,
    "sgm_uniform": get_sigmas_sgm_uniform,
    "ddim_uniform": get_sigmas_ddim_uniform,
    "beta": get_sigmas_beta,
    "discrete": _discrete,
}


def register_schedule(name: str, fn: ScheduleFunction, *, replace: bool = False) -> None:
    """Add a sigma spacing to :data:`SCHEDULES`.

    Args:
        name: registry key (shown to users, e.g. in the scheduler dropdown).
        fn: ``fn(model, steps, **options) -> sigmas``; must return ``steps + 1``
            strictly decreasing sigmas ending in 0 (checked by :func:`get_sigmas`).
        replace: allow overwriting an existing name.
    """
    if not isinstance(name, str) or not name:
        raise SamplingError("name", "a non-empty string", repr(name), "Pass the schedule's name.", name)
    if not callable(fn):
        raise SamplingError("fn", "a callable fn(model, steps, **options)", type(fn).__name__,
                            "Pass the schedule function itself.", fn)
    if name in SCHEDULES and not replace:
        raise SamplingError("name", "a schedule name not registered yet", repr(name),
                            "Pick another name or pass replace=True.", name)
    SCHEDULES[name] = fn


def check_steps(steps: object, argument: str = "steps") -> int:
    """Return ``steps`` if it is an int >= 1, else raise SamplingError."""
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise SamplingError(argument, "an integer number of steps >= 1", f"{type(steps).__name__} {steps!r}",
                            "Pass a whole number of steps.", steps)
    if steps < 1:
        raise SamplingError(argument, "at least 1 step", str(steps), "Use steps >= 1.", steps)
    return steps


def check_schedule(sigmas: object, argument: str = "sigmas", *, must_end_in_zero: bool = True,
                   min_length: int = 2) -> list[float]:
    """Validate a sigma schedule and return it as a list of Python floats.

    Rules: 1-D float tensor of at least ``min_length`` finite, non-negative,
    strictly decreasing values; the last one is 0 if ``must_end_in_zero``.
    """
    if not isinstance(sigmas, torch.Tensor) or not sigmas.is_floating_point():
        raise SamplingError(argument, "a 1-D floating-point tensor of sigmas",
                            type(sigmas).__name__ if not isinstance(sigmas, torch.Tensor) else f"dtype {sigmas.dtype}",
                            "Build sigmas with get_sigmas(...) or a get_sigmas_* function.", sigmas)
    if sigmas.ndim != 1 or len(sigmas) < min_length:
        raise SamplingError(argument, f"a 1-D tensor with at least {min_length} sigmas",
                            f"shape {tuple(sigmas.shape)}", "Pass one sigma per step plus the final one.", sigmas)
    values = sigmas.tolist()
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise SamplingError(argument, "finite, non-negative sigmas", f"{values}",
                            "Remove NaN/inf/negative entries from the schedule.", sigmas)
    for index in range(len(values) - 1):
        if not values[index] > values[index + 1]:
            raise SamplingError(argument, "strictly decreasing sigmas",
                                f"sigmas[{index}]={values[index]:.6g} <= sigmas[{index + 1}]={values[index + 1]:.6g}",
                                "Sort the schedule from high to low noise and drop repeated values.", sigmas)
    if must_end_in_zero and values[-1] != 0:
        raise SamplingError(argument, "a schedule ending in sigma 0", f"last sigma {values[-1]:.6g}",
                            "Append 0 (schedule functions must return steps + 1 sigmas ending in 0).", sigmas)
    return values


def get_sigmas(name: str, model: SigmaMapping, steps: int, **options) -> torch.Tensor:
    """Sampling sigmas of the registered spacing ``name``.

    Args:
        name: a key of :data:`SCHEDULES` (``karras``, ``exponential``, ``normal``, ``simple``,
            ``sgm_uniform``, ``ddim_uniform``, ``beta``, ``discrete`` or a plugin's).
        model: the model's sigma mapping (a denoiser adapter or a guider wrapping one).
        steps: number of sampling steps, >= 1.
        **options: spacing-specific options (``rho`` for karras, ``alpha``/``beta`` for beta).

    Returns:
        float32 CPU tensor of ``steps + 1`` strictly decreasing sigmas ending in 0.
    """
    if name not in SCHEDULES:
        raise SamplingError("scheduler", f"one of {sorted(SCHEDULES)}", repr(name),
                            "Pick a registered schedule name (plugins add more with register_schedule).", name)
    steps = check_steps(steps)
    _check_sigma_range(getattr(model, "sigma_min", 1.0), getattr(model, "sigma_max", 2.0), "model")
    sigmas = SCHEDULES[name](model, steps, **options)
    values = check_schedule(sigmas, f"schedule {name!r} output")
    if len(values) != steps + 1:
        raise SamplingError(f"schedule {name!r} output", f"{steps + 1} sigmas for {steps} steps",
                            f"{len(values)} sigmas", "Fix the schedule function to return steps + 1 values.", sigmas)
    return sigmas


def split_sigmas(sigmas: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a schedule at ``step`` into a high-noise and a low-noise schedule.

    Args:
        sigmas: a schedule (strictly decreasing).
        step: boundary index, 1 <= step <= len(sigmas) - 2, so both parts have at least one step.

    Returns:
        ``(sigmas[:step + 1], sigmas[step:])``; the boundary sigma is the last of
        the high part and the first of the low part, so running both in turn
        covers the full schedule (the high part does not end in 0).
    """
    values = check_schedule(sigmas, must_end_in_zero=False, min_length=3)
    if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= len(values) - 2:
        raise SamplingError("step", f"an integer between 1 and {len(values) - 2} (both parts need a step)",
                            repr(step), "Choose a split point strictly inside the schedule.", step)
    return sigmas[: step + 1], sigmas[step:]


MAX_SCHEDULE_STEPS = 10_000     # the longest schedule a partial denoise may build (the steps inputs' own cap)


def truncate_for_denoise(make_sigmas: Callable[[int], torch.Tensor], steps: int, denoise: float) -> torch.Tensor:
    """Schedule for a partial denoise (img2img): run ``steps`` steps from the end of a longer schedule.

    ComfyUI semantics: the full schedule is built for ``int(steps / denoise)``
    steps and its last ``steps + 1`` sigmas are kept, so ``steps`` is the number
    of model evaluations actually run. E.g. steps=20, denoise=0.5 runs the last
    20 steps of a 40-step schedule. (diffusers' img2img ``strength`` instead runs
    ``int(steps * strength)`` steps of a ``steps``-step schedule; pass
    ``steps=int(n * strength), denoise=strength`` to get close to it.)

    Args:
        make_sigmas: ``make_sigmas(total_steps) -> sigmas`` ending in 0, e.g.
            ``lambda n: get_sigmas("karras", model, n)``.
        steps: steps to run, >= 1.
        denoise: fraction of the noise range to run, in (0, 1]; 1 is a full run.

    Returns:
        ``steps + 1`` sigmas ending in 0; ``sigmas[0]`` is the noise level to add to the input latent.
    """
    steps = check_steps(steps)
    if isinstance(denoise, bool) or not isinstance(denoise, (int, float)) or not 0 < denoise <= 1:
        raise SamplingError("denoise", "a number in (0, 1]", repr(denoise),
                            "Use 1.0 for a full denoise, smaller values to keep more of the input.", denoise)
    # exactly ComfyUI's int(steps / denoise), float rounding included (14 / 0.28 = 49.999…: a 49-step schedule),
    # so an imported workflow starts from ComfyUI's sigma
    length = steps / denoise                  # inf for a subnormal denoise (int() of it raised OverflowError)
    if length > MAX_SCHEDULE_STEPS:           # the schedule is built whole: 1e-9 would ask for 2e10 sigmas
        raise SamplingError("denoise", f"at least {steps / MAX_SCHEDULE_STEPS:.6g} for {steps} steps (the schedule "
                            f"is steps / denoise = {length:.4g} steps long; at most {MAX_SCHEDULE_STEPS})",
                            repr(denoise), "Raise denoise, or lower steps; denoise below 0.01 keeps the input "
                            "almost unchanged anyway.", denoise)
    total_steps = max(steps, int(length))
    try:
        sigmas = make_sigmas(total_steps)
    except SamplingError as exc:
        if total_steps == steps or exc.argument != "steps":
            raise
        # the schedule was asked for steps / denoise steps, not for the steps the user wrote: say so
        raise SamplingError("steps", f"{exc.expected}; with denoise {denoise:g} the schedule is built for steps / "
                            f"denoise = {total_steps} steps and its last {steps} run", str(steps),
                            f"{exc.fix.rstrip('.')}; or change denoise.", steps) from None
    values = check_schedule(sigmas, "make_sigmas output")
    if len(values) != total_steps + 1:
        raise SamplingError("make_sigmas output", f"{total_steps + 1} sigmas for {total_steps} steps",
                            f"{len(values)} sigmas", "make_sigmas(n) must return n + 1 sigmas.", sigmas)
    return sigmas[-(steps + 1):]
