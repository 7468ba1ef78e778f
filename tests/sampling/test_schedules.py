"""Training betas, sampling sigma spacings, the schedule registry, split and denoise truncation."""

from __future__ import annotations

import math

import pytest
import torch

from nodes.sampling import schedules
from nodes.sampling.denoisers import DiscreteTimeMap, vp_linear_time_map
from nodes.sampling.errors import SamplingError
from nodes.sampling.schedules import (
    SCHEDULES,
    alphas_cumprod_from_betas,
    cosine_betas,
    get_sigmas,
    get_sigmas_karras,
    linear_betas,
    register_schedule,
    scaled_linear_betas,
    split_sigmas,
    truncate_for_denoise,
)

diffusers = pytest.importorskip("diffusers")

SD_MAP = DiscreteTimeMap(alphas_cumprod_from_betas(scaled_linear_betas()))


@pytest.mark.parity
@pytest.mark.parametrize(("ours", "theirs", "beta_range"), [
    (linear_betas, "linear", (1e-4, 0.02)),
    (scaled_linear_betas, "scaled_linear", (0.00085, 0.012)),
    (cosine_betas, "squaredcos_cap_v2", (1e-4, 0.02)),  # range unused by the cosine schedule
])
def test_training_betas_match_diffusers(ours, theirs, beta_range):
    """Our betas and ᾱ equal diffusers' (DDPMScheduler) to float32 precision."""
    reference = diffusers.DDPMScheduler(beta_schedule=theirs, beta_start=beta_range[0], beta_end=beta_range[1])
    assert torch.allclose(ours().float(), reference.betas, rtol=1e-5, atol=1e-8)
    assert torch.allclose(alphas_cumprod_from_betas(ours()).float(), reference.alphas_cumprod, rtol=1e-5, atol=1e-7)


def test_cosine_betas_are_clipped_at_0999():
    """The last cosine betas are clipped at 0.999 (Nichol & Dhariwal 2021), never above."""
    betas = cosine_betas()
    assert float(betas.max()) == pytest.approx(0.999)
    assert float(betas[0]) < 1e-4


@pytest.mark.parametrize("name", sorted(SCHEDULES))
@pytest.mark.parametrize("model", [SD_MAP, vp_linear_time_map()], ids=["discrete", "continuous"])
def test_every_schedule_is_decreasing_and_ends_in_zero(name, model):
    """Each registered spacing gives steps + 1 strictly decreasing float32 sigmas ending in 0, in the model's range."""
    steps = 1000 if name == "discrete" else 10
    if model.sigmas is None and name in ("simple", "ddim_uniform", "discrete"):
        with pytest.raises(SamplingError, match="discrete-time model"):
            get_sigmas(name, model, steps)
        return
    sigmas = get_sigmas(name, model, steps)
    assert sigmas.dtype == torch.float32 and sigmas.shape == (steps + 1,)
    assert float(sigmas[-1]) == 0.0
    assert bool((sigmas[:-1] > sigmas[1:]).all())
    assert float(sigmas[0]) <= model.sigma_max * (1 + 1e-5)
    assert float(sigmas[-2]) >= model.sigma_min * (1 - 1e-5)


def test_karras_matches_equation_5():
    """Karras spacing: sigma_i^(1/rho) is linear in i from sigma_max to sigma_min (eq. 5)."""
    sigmas = get_sigmas_karras(7, 0.1, 10.0, rho=7.0).double()
    roots = sigmas[:-1] ** (1 / 7)
    assert torch.allclose(roots, torch.linspace(10 ** (1 / 7), 0.1 ** (1 / 7), 7, dtype=torch.float64), atol=1e-6)


@pytest.mark.parity
def test_karras_matches_diffusers():
    """Our Karras sigmas equal diffusers' use_karras_sigmas=True (exactly for its sigma range, 2e-5 for ours)."""
    scheduler = diffusers.EulerDiscreteScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                                 use_karras_sigmas=True)
    scheduler.set_timesteps(25)
    sigma_min, sigma_max = float(scheduler.sigmas[-2]), float(scheduler.sigmas[0])
    assert torch.equal(get_sigmas_karras(25, sigma_min, sigma_max), scheduler.sigmas)
    # diffusers computes the table from float32 ᾱ, we from float64: the ranges differ by ~1e-5.
    assert torch.allclose(get_sigmas("karras", SD_MAP, 25), scheduler.sigmas, rtol=2e-5)


@pytest.mark.parity
def test_ddim_uniform_matches_diffusers_ddim_timesteps():
    """ddim_uniform picks diffusers' DDIMScheduler timesteps for the SD config (leading, steps_offset=1)."""
    for steps in (1, 7, 20, 50, 999):
        scheduler = diffusers.DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                            timestep_spacing="leading", steps_offset=1)
        scheduler.set_timesteps(steps)
        expected = torch.cat([SD_MAP.sigmas[scheduler.timesteps], torch.zeros(1)])
        assert torch.equal(get_sigmas("ddim_uniform", SD_MAP, steps), expected)


def test_simple_strides_the_discrete_table_from_the_top():
    """simple with 4 steps of a 1000-step model picks timesteps 999, 749, 499, 249."""
    expected = torch.cat([SD_MAP.sigmas[[999, 749, 499, 249]], torch.zeros(1)])
    assert torch.equal(get_sigmas("simple", SD_MAP, 4), expected)


def test_normal_is_uniform_in_model_time():
    """normal spaces timesteps uniformly from t(sigma_max)=999 to t(sigma_min)=0."""
    sigmas = get_sigmas("normal", SD_MAP, 5)
    assert torch.allclose(SD_MAP.sigma_to_t(sigmas[:-1]), torch.tensor([999.0, 749.25, 499.5, 249.75, 0.0]), atol=1e-2)


def test_sgm_uniform_drops_the_last_of_steps_plus_one_times():
    """sgm_uniform uses steps + 1 uniform times and drops t_min, so it never reaches sigma_min."""
    times = SD_MAP.sigma_to_t(get_sigmas("sgm_uniform", SD_MAP, 4)[:-1])
    assert torch.allclose(times, torch.tensor([999.0, 749.25, 499.5, 249.75]), atol=1e-2)


def test_beta_schedule_uses_beta_quantiles_in_time():
    """beta puts times at 1 - Beta(0.6, 0.6) quantiles: dense at both ends, sparse in the middle."""
    from scipy.stats import beta as beta_distribution

    times = SD_MAP.sigma_to_t(get_sigmas("beta", SD_MAP, 10)[:-1]).double()
    expected = torch.as_tensor(beta_distribution.ppf(1 - torch.arange(10) / 10, 0.6, 0.6)) * 999
    assert torch.allclose(times, expected, atol=0.05)
    gaps = (times[:-1] - times[1:]).tolist()
    assert gaps[0] < gaps[len(gaps) // 2] and gaps[-1] < gaps[len(gaps) // 2]


def test_register_schedule_adds_a_plugin_spacing_and_checks_its_output():
    """A registered spacing is callable by name; a broken one is reported with its name."""
    register_schedule("test_linear_sigma", lambda model, steps: torch.cat(
        [torch.linspace(model.sigma_max, model.sigma_min, steps), torch.zeros(1)]))
    register_schedule("test_broken", lambda model, steps: torch.linspace(model.sigma_max, model.sigma_min, steps))
    try:
        assert get_sigmas("test_linear_sigma", SD_MAP, 3).shape == (4,)
        with pytest.raises(SamplingError, match="schedule 'test_broken' output.*ending in sigma 0"):
            get_sigmas("test_broken", SD_MAP, 3)
        with pytest.raises(SamplingError, match="already|not registered yet"):
            register_schedule("karras", lambda model, steps: None)
    finally:
        SCHEDULES.pop("test_linear_sigma")
        SCHEDULES.pop("test_broken")


def test_split_sigmas_shares_the_boundary():
    """split_sigmas returns a high part ending at the boundary sigma and a low part starting there."""
    sigmas = get_sigmas("karras", SD_MAP, 10)
    high, low = split_sigmas(sigmas, 4)
    assert len(high) == 5 and len(low) == 7
    assert float(high[-1]) == float(low[0]) == float(sigmas[4])
    assert torch.equal(torch.cat([high, low[1:]]), sigmas)


def test_truncate_for_denoise_runs_the_last_steps_of_a_longer_schedule():
    """denoise=0.5 with 20 steps keeps the last 21 sigmas of a 40-step schedule; denoise=1 is the full schedule."""
    def make(n):
        return get_sigmas("karras", SD_MAP, n)

    assert torch.equal(truncate_for_denoise(make, 20, 0.5), make(40)[-21:])
    assert torch.equal(truncate_for_denoise(make, 20, 1.0), make(20))
    assert torch.equal(truncate_for_denoise(make, 3, 0.3), make(10)[-4:])
    # as ComfyUI's int(steps / denoise), float rounding included (a math check found floor(x + 1e-6) here, which
    # built 50 steps for 14 / 0.28 = 49.99999999999999 and started an imported img2img 3.9 % lower than ComfyUI)
    assert torch.equal(truncate_for_denoise(make, 14, 0.28), make(49)[-15:])
    assert torch.equal(truncate_for_denoise(make, 7, 0.07), make(99)[-8:])


def test_discrete_schedule_is_the_whole_table():
    """discrete returns all 1000 training sigmas, descending, then 0."""
    sigmas = get_sigmas("discrete", SD_MAP, 1000)
    assert torch.equal(sigmas[:-1], SD_MAP.sigmas.flip(0))
    assert math.isclose(float(sigmas[0]), SD_MAP.sigma_max)


def test_schedules_module_exports_exist():
    """Every name in schedules.__all__ exists (the public API the node layer imports)."""
    for name in schedules.__all__:
        assert hasattr(schedules, name), name


def test_truncate_for_denoise_refuses_a_schedule_too_long_to_build():
    """A tiny denoise would build a steps / denoise schedule (1e-9: 2e10 sigmas): refused, naming denoise."""
    def make(n):
        return get_sigmas("karras", SD_MAP, n)

    for denoise in (1e-9, 1e-4):
        with pytest.raises(SamplingError) as info:
            truncate_for_denoise(make, 20, denoise)
        assert info.value.argument == "denoise" and "at least 0.002" in str(info.value)
    assert len(truncate_for_denoise(make, 20, 0.002)) == 21      # 10,000 steps: the longest allowed
    for tiny in (5e-324, 1e-308, 1e-300):     # a subnormal made steps / denoise inf: int(inf) raised OverflowError
        with pytest.raises(SamplingError, match=r"steps / denoise = (inf|2e\+30\d) steps long"):
            truncate_for_denoise(make, 20, tiny)


def test_a_schedule_limit_reached_through_denoise_says_so():
    """steps 600 at denoise 0.5 on 'simple' said "at most 1000 steps, found 1200" (a number the user never wrote);
    now the message gives the steps they set and how denoise made the schedule longer."""
    from nodes.sampling.denoisers import DiscreteTimeMap, ModelDenoiser
    from nodes.sampling.errors import SamplingError
    from nodes.sampling.schedules import (alphas_cumprod_from_betas, get_sigmas, scaled_linear_betas,
                                          truncate_for_denoise)

    model = ModelDenoiser(lambda x, t: x, DiscreteTimeMap(alphas_cumprod_from_betas(scaled_linear_betas())))
    with pytest.raises(SamplingError, match="with denoise 0.5 the schedule is built for steps / denoise = 1200 "
                                            "steps and its last 600 run, found 600") as failure:
        truncate_for_denoise(lambda n: get_sigmas("simple", model, n), 600, 0.5)
    assert failure.value.argument == "steps" and "or change denoise" in str(failure.value)
