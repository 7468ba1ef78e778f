"""nodes.sampling -- the plain-torch sampling library behind nodegraph's sampling nodes.

No engine imports: usable and testable on its own (``nodes.py``, written separately,
adapts it to nodes). Importing this package imports nothing; import the modules.

Map (one algorithm family per module; docs/sampling.md has the design and decisions):

=====================  ======================================================================
errors.py              ``SamplingError(ValueError)``: the one error type; names the argument,
                       the rule, what was found and the fix.
denoisers.py           The denoiser contract ``denoiser(x, sigma, **cond) -> denoised`` and the
                       adapters that wrap raw eps / v / x0 / EDM / flow networks
                       (``ModelDenoiser``) with discrete (``DiscreteTimeMap``), continuous
                       (``ContinuousTimeMap``) or shifted rectified-flow (``FlowTimeMap``) time.
schedules.py           Training betas (linear, scaled-linear, cosine) and sampling sigmas
                       (karras, exponential, normal, simple, sgm_uniform, ddim_uniform, beta,
                       discrete); registry ``SCHEDULES`` / ``register_schedule`` / ``get_sigmas``;
                       ``split_sigmas``; ``truncate_for_denoise``.
forward_diffusion.py   ``q_sample`` (DDPM, discrete t, VP) and ``q_sample_sigma`` (x0 + sigma eps, VE).
noise.py               Seeded CPU noise: ``seeded_noise`` (item k uses seed + k) and the
                       interval-keyed ``make_noise_sampler`` used by stochastic samplers.
samplers.py            The samplers (euler, euler_ancestral, heun, ddim, ddpm, dpmpp_2m,
                       dpmpp_2m_sde, dpmpp_sde, lms, unipc, lcm), each written once as a step
                       function; registry ``SAMPLERS`` / ``register_sampler``; ``sample`` and the
                       single-step API ``sampler_step`` with explicit state.
guidance.py            ``CFGGuider``: classifier-free guidance in one batched call, CFG rescale,
                       a sigma interval, the guidance-term contract (``GuidanceTerm``,
                       ``GuidanceState``, per-run terms from factories, ``classifier_guidance``).
guidance_terms.py      Built-in terms: perturbed-attention (PAG), self-attention (SAG) and
                       classifier guidance on the denoised estimate.
inversion.py           ``invert_ddim``: x0 -> noise that deterministic DDIM maps back to x0.
=====================  ======================================================================

Typical use::

    from nodes.sampling.denoisers import DiscreteTimeMap, ModelDenoiser
    from nodes.sampling.guidance import CFGGuider
    from nodes.sampling.noise import make_noise_sampler, seeded_noise
    from nodes.sampling.samplers import sample
    from nodes.sampling.schedules import alphas_cumprod_from_betas, get_sigmas, scaled_linear_betas

    model = ModelDenoiser(unet, DiscreteTimeMap(alphas_cumprod_from_betas(scaled_linear_betas())), "eps")
    guider = CFGGuider(model, positive={"context": c}, negative={"context": uc}, scale=7.5)
    sigmas = get_sigmas("karras", model, steps=20)
    x = seeded_noise((1, 4, 64, 64), seed) * sigmas[0]
    latent = sample("dpmpp_2m", guider, x, sigmas, noise_sampler=make_noise_sampler(x, seed))
"""
