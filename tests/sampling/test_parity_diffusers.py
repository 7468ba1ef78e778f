"""Reference parity: our samplers vs diffusers' schedulers on identical models, timesteps and noise.

How the two are aligned (read this before changing a case):

* Model: one raw eps-predicting network ``net(x_in, t)`` on the Stable Diffusion
  scaled-linear 1000-step schedule -- either the exact Gaussian denoiser written as
  an eps-net, or a tiny fixed-weight nonlinear net. diffusers calls
  ``net(scheduler.scale_model_input(sample, t), t)``; we wrap the same net with
  ``ModelDenoiser(net, DiscreteTimeMap(scheduler.alphas_cumprod), "eps")``.
* Timesteps: every scheduler uses ``timestep_spacing="leading", steps_offset=1``
  (the SD config), so its timesteps are integers and our sigmas are the table
  entries ``sigma_t`` at exactly those timesteps, plus a final 0. Our adapter maps
  those sigmas back to the same (integer) t, so the net sees the same inputs.
  DDIM/DDPM use ``set_alpha_to_one=True`` / the t<0 rule so the last step goes to
  sigma 0 like ours.
* Spaces: diffusers' DDIM, DDPM, DPM-Solver and UniPC keep the variance-preserving
  sample x_vp; Euler-family schedulers keep the VE sample. We always keep VE,
  x_ve = x_vp * sqrt(1 + sigma²), so VP states are converted before comparing.
  Both start from noise * sqrt(1 + sigma_max²) in VE (diffusers' init_noise_sigma
  for leading spacing).
* Noise: diffusers draws ancestral noise with ``randn(shape, generator=g)`` once per
  step; our ``SequentialNoise`` draws from an identically seeded generator once per
  noisy step. Ours skips the draw on the final step to sigma 0, which is the last
  draw, so the streams stay aligned.
* Comparison: the VE state after every full step, relative L2 error <= 1e-5
  (measured worst case with diffusers 0.42: 4e-7).
"""

from __future__ import annotations

import math

import pytest
import torch

from nodes.sampling.denoisers import DiscreteTimeMap, ModelDenoiser
from nodes.sampling.samplers import SAMPLERS

from .reference_models import GaussianData, SequentialNoise, TinyEpsNet, vp_eps_net

diffusers = pytest.importorskip("diffusers")

pytestmark = pytest.mark.parity

STEPS = 20
SHAPE = (2, 4, 8, 8)
SD_CONFIG = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                 timestep_spacing="leading", steps_offset=1)

# (our sampler, our options, diffusers class, extra config, variance-preserving states?, stochastic?)
# DDIM's eta is an argument of diffusers' step(), not of its config: see STEP_KWARGS.
CASES = {
    "ddim": ("ddim", {}, "DDIMScheduler", dict(set_alpha_to_one=True, clip_sample=False), True, False),
    "ddim_eta1": ("ddim", {"eta": 1.0}, "DDIMScheduler", dict(set_alpha_to_one=True, clip_sample=False), True, True),
    "ddpm": ("ddpm", {}, "DDPMScheduler", dict(clip_sample=False, variance_type="fixed_small"), True, True),
    "euler": ("euler", {}, "EulerDiscreteScheduler", {}, False, False),
    "euler_ancestral": ("euler_ancestral", {}, "EulerAncestralDiscreteScheduler", {}, False, True),
    "heun": ("heun", {}, "HeunDiscreteScheduler", {}, False, False),
    "dpmpp_2m": ("dpmpp_2m", {}, "DPMSolverMultistepScheduler",
                 dict(algorithm_type="dpmsolver++", solver_order=2), True, False),
    "dpmpp_2m_sde": ("dpmpp_2m_sde", {}, "DPMSolverMultistepScheduler",
                     dict(algorithm_type="sde-dpmsolver++", solver_order=2), True, True),
    "lms": ("lms", {}, "LMSDiscreteScheduler", {}, False, False),
    "unipc_bh2": ("unipc", {"order": 2, "variant": "bh2"}, "UniPCMultistepScheduler",
                  dict(solver_order=2, solver_type="bh2"), True, False),
    "unipc_bh1": ("unipc", {"order": 2, "variant": "bh1"}, "UniPCMultistepScheduler",
                  dict(solver_order=2, solver_type="bh1"), True, False),
    "unipc_order3": ("unipc", {"order": 3, "variant": "bh2"}, "UniPCMultistepScheduler",
                     dict(solver_order=3, solver_type="bh2"), True, False),
}


STEP_KWARGS = {"ddim_eta1": {"eta": 1.0}}
# diffusers 0.42 UniPC with solver_type="bh1" and a final sigma of 0 returns NaN on its last
# step (B(h) = h = -inf multiplies a zero correction). Ours returns the data prediction there,
# the limit of UniP-1; that one step is compared only if the reference is finite.
REFERENCE_NAN_ON_FINAL_STEP = {"unipc_bh1"}


def _diffusers_trajectory(scheduler, net, x_ve_start, sigmas, variance_preserving, generator, step_kwargs):
    """Run diffusers' loop; return the VE state after each full step."""
    sample = x_ve_start / math.sqrt(1 + sigmas[0] ** 2) if variance_preserving else x_ve_start.clone()
    states = []
    for index, t in enumerate(scheduler.timesteps):
        model_output = net(scheduler.scale_model_input(sample, t), t)
        kwargs = dict(step_kwargs, **({"generator": generator} if generator is not None else {}))
        sample = scheduler.step(model_output, t, sample, **kwargs).prev_sample
        last = index == len(scheduler.timesteps) - 1
        if getattr(scheduler, "state_in_first_order", True) or last:  # Heun: after its 2nd stage, and the end
            sigma_next = sigmas[len(states) + 1]
            states.append(sample * math.sqrt(1 + sigma_next**2) if variance_preserving else sample)
    return states


def _our_trajectory(name, options, denoiser, x_ve_start, sigmas_tensor, noise_sampler):
    states = []
    final = SAMPLERS[name](denoiser, x_ve_start, sigmas_tensor, noise_sampler=noise_sampler,
                           callback=lambda info: states.append(info["x"]), **options)
    return states[1:] + [final]


@pytest.mark.parametrize("model_kind", ["gaussian", "tiny_net"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_trajectory_matches_diffusers(case, model_kind):
    """Our sampler's 20-step trajectory equals the diffusers scheduler's within 1e-5 relative error at every step."""
    name, options, scheduler_name, extra_config, variance_preserving, stochastic = CASES[case]
    scheduler = getattr(diffusers, scheduler_name)(**SD_CONFIG, **extra_config)
    scheduler.set_timesteps(STEPS)
    time_map = DiscreteTimeMap(scheduler.alphas_cumprod)
    net = vp_eps_net(GaussianData(), time_map) if model_kind == "gaussian" else TinyEpsNet()

    timesteps = scheduler.timesteps.long().unique_consecutive()
    sigmas_tensor = torch.cat([time_map.sigmas[timesteps], torch.zeros(1)])
    sigmas = sigmas_tensor.tolist()
    x_ve_start = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1)) * math.sqrt(1 + sigmas[0] ** 2)

    noise_seed = 123
    reference = _diffusers_trajectory(scheduler, net, x_ve_start, sigmas, variance_preserving,
                                      torch.Generator().manual_seed(noise_seed) if stochastic else None,
                                      STEP_KWARGS.get(case, {}))
    ours = _our_trajectory(name, options, ModelDenoiser(net, time_map, "eps"), x_ve_start, sigmas_tensor,
                           SequentialNoise(SHAPE, noise_seed))

    assert len(ours) == len(reference) == STEPS
    for step, (mine, theirs) in enumerate(zip(ours, reference)):
        if case in REFERENCE_NAN_ON_FINAL_STEP and step == STEPS - 1 and bool(theirs.isnan().any()):
            assert bool(mine.isfinite().all())
            continue
        error = float((mine - theirs).norm() / theirs.norm())
        assert error <= 1e-5, f"{case}/{model_kind}: step {step} relative error {error:.2e}"


@pytest.mark.parametrize("model_kind", ["gaussian", "tiny_net"])
@pytest.mark.parametrize("steps", [2, 4, 8])
def test_lcm_matches_diffusers_lcm_scheduler(steps, model_kind):
    """LCM (x = D + sigma_next z on LCMScheduler's own timesteps, from its 50-step original schedule) equals
    diffusers' LCMScheduler step for step. Its boundary condition (c_skip, c_out with timestep_scaling 10) moves the
    output by under 1e-5 at SD's smallest timestep, so the bound is the other samplers'."""
    scheduler = diffusers.LCMScheduler(**SD_CONFIG, set_alpha_to_one=True, clip_sample=False)
    scheduler.set_timesteps(steps)
    time_map = DiscreteTimeMap(scheduler.alphas_cumprod)
    net = vp_eps_net(GaussianData(), time_map) if model_kind == "gaussian" else TinyEpsNet()
    sigmas_tensor = torch.cat([time_map.sigmas[scheduler.timesteps.long()], torch.zeros(1)])
    sigmas = sigmas_tensor.tolist()
    x_ve_start = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1)) * math.sqrt(1 + sigmas[0] ** 2)
    reference = _diffusers_trajectory(scheduler, net, x_ve_start, sigmas, True, torch.Generator().manual_seed(5), {})
    ours = _our_trajectory("lcm", {}, ModelDenoiser(net, time_map, "eps"), x_ve_start, sigmas_tensor,
                           SequentialNoise(SHAPE, 5))
    assert len(ours) == len(reference) == steps
    for step, (mine, theirs) in enumerate(zip(ours, reference)):
        error = float((mine - theirs).norm() / theirs.norm())
        assert error <= 1e-5, f"lcm/{model_kind}/{steps}: step {step} relative error {error:.2e}"
