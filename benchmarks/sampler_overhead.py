"""Per-step sampler overhead, excluding the network, next to diffusers' scheduler.step() on the same inputs.

What is timed (one "step" = one sigma interval, so Heun's two diffusers step() calls count as one):

* ours (sampler)      -- ``SAMPLERS[name](denoiser, x, sigmas, noise_sampler=...)`` with a denoiser
                         that returns a precomputed tensor: the sampler loop alone.
* ours (+eps adapter) -- the same with ``ModelDenoiser(net, DiscreteTimeMap(...), "eps")`` around a
                         net that returns a precomputed eps: adds input scaling, sigma->t and the
                         eps->x0 conversion, i.e. the work diffusers does in scale_model_input + step.
* diffusers           -- ``scale_model_input`` + ``step`` for every timestep with a precomputed
                         model output (set_timesteps excluded), CPU generator for stochastic ones.

ratio = ours (+eps adapter) / diffusers. Median of several repeats, torch.set_num_threads(1).

Run:  .venv/bin/python benchmarks/sampler_overhead.py [--steps 20] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

from nodes.sampling.denoisers import DiscreteTimeMap, ModelDenoiser
from nodes.sampling.noise import make_noise_sampler
from nodes.sampling.samplers import SAMPLERS

SD_CONFIG = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                 timestep_spacing="leading", steps_offset=1)

# our sampler -> (diffusers class, config, step kwargs, VP sample?)
DIFFUSERS_MATCH = {
    "euler": ("EulerDiscreteScheduler", {}, {}, False),
    "euler_ancestral": ("EulerAncestralDiscreteScheduler", {}, {}, False),
    "heun": ("HeunDiscreteScheduler", {}, {}, False),
    "ddim": ("DDIMScheduler", {"set_alpha_to_one": True}, {}, True),
    "ddpm": ("DDPMScheduler", {"variance_type": "fixed_small"}, {}, True),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}, {}, True),
    "dpmpp_2m_sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}, {}, True),
    "dpmpp_sde": ("DPMSolverSDEScheduler", {}, {}, False),  # needs torchsde
    "lms": ("LMSDiscreteScheduler", {}, {}, False),
    "unipc": ("UniPCMultistepScheduler", {"solver_order": 2}, {}, True),
    "lcm": ("LCMScheduler", {}, {}, True),
}
STOCHASTIC = {"euler_ancestral", "ddpm", "dpmpp_2m_sde", "dpmpp_sde", "lcm"}


def _median_seconds(run, repeats: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_ours(name: str, shape, steps: int, repeats: int, with_adapter: bool) -> float:
    """Median seconds per step of our sampler with a trivial model."""
    time_map = DiscreteTimeMap(torch.cumprod(1 - torch.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2, 0))
    timesteps = (torch.arange(steps) * (1000 // steps) + 1).flip(0)
    sigmas = torch.cat([time_map.sigmas[timesteps], torch.zeros(1)])
    x = torch.randn(shape) * float(sigmas[0])
    fixed = torch.randn(shape)
    if with_adapter:
        model = ModelDenoiser(lambda x_in, t, **cond: fixed, time_map, "eps")
    else:
        def model(x, sigma, **cond):
            return fixed
    noise_sampler = make_noise_sampler(x, 0)
    return _median_seconds(lambda: SAMPLERS[name](model, x, sigmas, noise_sampler=noise_sampler), repeats) / steps


def time_diffusers(name: str, shape, steps: int, repeats: int) -> float | None:
    """Median seconds per step of the matching diffusers scheduler; None if unavailable."""
    import diffusers

    class_name, config, step_kwargs, _ = DIFFUSERS_MATCH[name]
    try:
        scheduler = getattr(diffusers, class_name)(**SD_CONFIG, **config)
        scheduler.set_timesteps(steps)
    except (ImportError, AttributeError, ValueError):
        return None
    model_output = torch.randn(shape)
    start_sample = torch.randn(shape) * float(scheduler.init_noise_sigma)
    times = []
    for repeat in range(repeats + 1):
        scheduler.set_timesteps(steps)  # resets the step index; not timed
        generator = torch.Generator().manual_seed(0) if name in STOCHASTIC else None
        kwargs = dict(step_kwargs, **({"generator": generator} if generator is not None else {}))
        sample = start_sample
        begin = time.perf_counter()
        for t in scheduler.timesteps:
            scheduler.scale_model_input(sample, t)
            sample = scheduler.step(model_output, t, sample, **kwargs).prev_sample
        if repeat:  # first run is warm-up
            times.append(time.perf_counter() - begin)
    return statistics.median(times) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    print(f"torch {torch.__version__}, 1 thread, {args.steps} steps, median of {args.repeats}; microseconds per step")
    for shape in ((1, 4, 64, 64), (2, 4, 16, 16)):
        print(f"\nlatent {shape}")
        print(f"{'sampler':<16}{'ours (sampler)':>16}{'ours (+eps adapter)':>21}{'diffusers':>12}  "
              f"{'diffusers class':<34}{'ratio':>6}")
        for name in SAMPLERS:
            if name not in DIFFUSERS_MATCH:
                continue
            bare = time_ours(name, shape, args.steps, args.repeats, with_adapter=False) * 1e6
            adapted = time_ours(name, shape, args.steps, args.repeats, with_adapter=True) * 1e6
            reference = time_diffusers(name, shape, args.steps, args.repeats)
            reference_text = f"{reference * 1e6:12.1f}" if reference is not None else f"{'n/a':>12}"
            ratio_text = f"{adapted / (reference * 1e6):6.2f}" if reference is not None else f"{'-':>6}"
            print(f"{name:<16}{bare:16.1f}{adapted:21.1f}{reference_text}  {DIFFUSERS_MATCH[name][0]:<34}{ratio_text}")


if __name__ == "__main__":
    main()
