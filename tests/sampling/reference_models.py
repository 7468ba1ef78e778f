"""Deterministic test models with known answers, for sampler tests (no weights, no GPU).

* :class:`GaussianData` -- data ~ N(mean, std² I). Its exact denoiser is
  D(x, sigma) = (std² x + sigma² mean) / (std² + sigma²), and the probability-flow
  ODE is solved in closed form: x(sigma) - mean scales as sqrt(std² + sigma²).
* :func:`vp_eps_net` -- that denoiser re-expressed as a raw eps-predicting network
  net(x_in, t) on a discrete VP schedule (what a Stable Diffusion UNet is).
* :class:`TinyEpsNet` -- a small nonlinear network with fixed seeded weights.
* :class:`CallCounter` -- a denoiser wrapper that records every model call.
* :class:`SequentialNoise` -- noise drawn in call order from one generator
  (how diffusers draws ancestral noise), for parity tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GaussianData:
    mean: float = 0.6
    std: float = 0.5

    def denoiser(self, x: torch.Tensor, sigma: torch.Tensor, **cond) -> torch.Tensor:
        """Exact E[x0 | x] for Gaussian data at noise level sigma."""
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape((-1,) + (1,) * (x.ndim - 1))
        return (self.std**2 * x + sigma**2 * self.mean) / (self.std**2 + sigma**2)

    def ode_solution(self, x: torch.Tensor, sigma_from: float, sigma_to: float) -> torch.Tensor:
        """Exact probability-flow ODE solution from sigma_from to sigma_to."""
        scale = math.sqrt(self.std**2 + sigma_to**2) / math.sqrt(self.std**2 + sigma_from**2)
        return self.mean + (x - self.mean) * scale

    def consistency_function(self, x: torch.Tensor, sigma: torch.Tensor, **cond) -> torch.Tensor:
        """Exact consistency function f(x, sigma) = ODE solution to sigma 0 (what an LCM approximates)."""
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape((-1,) + (1,) * (x.ndim - 1))
        return self.mean + (x - self.mean) * self.std / torch.sqrt(self.std**2 + sigma**2)

    def marginal_sample(self, shape, sigma: float, seed: int, dtype=torch.float64) -> torch.Tensor:
        """A draw from the exact noisy marginal N(mean, std² + sigma²)."""
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn(shape, generator=generator, dtype=torch.float64)
        return (self.mean + math.sqrt(self.std**2 + sigma**2) * noise).to(dtype)


def _time_column(t, x: torch.Tensor) -> torch.Tensor:
    """t as a float tensor of shape (B,)."""
    t = torch.as_tensor(t, device=x.device).to(torch.float64 if x.dtype == torch.float64 else torch.float32)
    return t.reshape(-1).expand(x.shape[0])


def vp_eps_net(data: GaussianData, time_map):
    """The exact Gaussian denoiser as an eps-predicting VP network net(x_in, t)."""

    def net(x_in: torch.Tensor, t, **cond) -> torch.Tensor:
        sigma = time_map.t_to_sigma(_time_column(t, x_in)).to(x_in.dtype).reshape((-1,) + (1,) * (x_in.ndim - 1))
        x = x_in * torch.sqrt(1 + sigma**2)  # VP input -> VE latent
        return (x - data.denoiser(x, sigma.flatten())) / sigma

    return net


class TinyEpsNet(torch.nn.Module):
    """A fixed-weight nonlinear eps-predictor: 1x1 convolutions, tanh, sinusoidal time embedding."""

    def __init__(self, channels: int = 4, hidden: int = 16, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.inp = torch.nn.Parameter(torch.randn(hidden, channels, generator=generator) / math.sqrt(channels))
        self.out = torch.nn.Parameter(torch.randn(channels, hidden, generator=generator) / math.sqrt(hidden))
        self.time = torch.nn.Parameter(torch.randn(hidden, 2, generator=generator))
        self.requires_grad_(False)

    def forward(self, x_in: torch.Tensor, t, **cond) -> torch.Tensor:
        t = _time_column(t, x_in).to(x_in.dtype) / 1000
        weight_in, weight_out, weight_time = (w.to(x_in.dtype) for w in (self.inp, self.out, self.time))
        embedding = torch.stack([torch.sin(3 * t), torch.cos(2 * t)], dim=1) @ weight_time.T  # (B, hidden)
        flat = x_in.reshape(x_in.shape[0], x_in.shape[1], -1)  # (B, C, pixels)
        hidden = torch.tanh(weight_in @ flat + embedding[:, :, None])  # (B, hidden, pixels)
        context = cond.get("context")
        if context is not None:  # (B, T, hidden) -> a per-sample shift
            hidden = hidden + context.mean(dim=1).to(x_in.dtype)[:, :, None]
        return 0.5 * x_in + (weight_out @ hidden).reshape(x_in.shape)


class CallCounter:
    """Wrap a denoiser and record (batch size, sigma values) of every call."""

    def __init__(self, model):
        self.model = model
        self.calls: list[tuple[int, list[float]]] = []

    def __call__(self, x, sigma, **cond):
        self.calls.append((x.shape[0], torch.as_tensor(sigma).reshape(-1).tolist()))
        return self.model(x, sigma, **cond)

    def __getattr__(self, name):
        return getattr(self.model, name)


class SequentialNoise:
    """noise_sampler drawing torch.randn(shape) in call order from one seeded CPU generator."""

    def __init__(self, shape, seed: int, dtype=torch.float32):
        self.generator = torch.Generator().manual_seed(seed)
        self.shape, self.dtype = tuple(shape), dtype

    def __call__(self, sigma, sigma_next) -> torch.Tensor:
        return torch.randn(self.shape, generator=self.generator, dtype=self.dtype)
