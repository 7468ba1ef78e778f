"""Model adapters: each prediction type reproduces the denoiser it encodes; sigma <-> t maps."""

from __future__ import annotations

import math

import pytest
import torch

from nodes.sampling.denoisers import (
    DiscreteTimeMap,
    ModelDenoiser,
    edm_time_map,
    rectified_flow_time_map,
    vp_linear_time_map,
)
from nodes.sampling.errors import SamplingError
from nodes.sampling.schedules import alphas_cumprod_from_betas, scaled_linear_betas

from .reference_models import GaussianData

DATA = GaussianData()
SD_MAP = DiscreteTimeMap(alphas_cumprod_from_betas(scaled_linear_betas()))


def _net_for(prediction: str, time_map, sigma_data: float = 1.0):
    """A raw network that predicts ``prediction`` for Gaussian data, written from each parameterisation's definition."""

    def net(x_in, t, **cond):
        sigma = time_map.t_to_sigma(t).to(x_in.dtype).reshape(-1, 1)
        if prediction == "flow":  # x_in = (1 - s) x0 + s eps with s = sigma / (1 + sigma)
            x = x_in * (1 + sigma)
        elif prediction == "edm":
            x = x_in * torch.sqrt(sigma**2 + sigma_data**2)
        else:  # VP input
            x = x_in * torch.sqrt(1 + sigma**2)
        x0 = DATA.denoiser(x, sigma.flatten())
        eps = (x - x0) / sigma
        if prediction == "eps":
            return eps
        if prediction == "x0":
            return x0
        if prediction == "v":  # Salimans & Ho: v = alpha eps - sigma_vp x0
            alpha = 1 / torch.sqrt(1 + sigma**2)
            return alpha * eps - sigma * alpha * x0
        if prediction == "flow":  # velocity of x_s = (1 - s) x0 + s eps
            return eps - x0
        if prediction == "edm":  # F with D = c_skip x + c_out F
            c_skip = sigma_data**2 / (sigma**2 + sigma_data**2)
            c_out = sigma * sigma_data / torch.sqrt(sigma**2 + sigma_data**2)
            return (x0 - c_skip * x) / c_out
        raise AssertionError(prediction)

    return net


@pytest.mark.parametrize(("prediction", "time_map"), [
    ("eps", SD_MAP), ("v", SD_MAP), ("x0", SD_MAP), ("eps", vp_linear_time_map()),
    ("edm", edm_time_map()), ("flow", rectified_flow_time_map()),
])
def test_adapter_recovers_the_exact_denoiser(prediction, time_map):
    """ModelDenoiser(net predicting eps/v/x0/F/velocity) equals the exact Gaussian denoiser."""
    sigma_data = 0.5 if prediction == "edm" else 1.0
    denoiser = ModelDenoiser(_net_for(prediction, time_map, sigma_data), time_map, prediction, sigma_data=sigma_data)
    x = torch.randn(3, 5, dtype=torch.float64) * 4
    sigma = torch.tensor([0.05, 1.3, 9.0], dtype=torch.float64)
    assert torch.allclose(denoiser(x, sigma), DATA.denoiser(x, sigma), atol=1e-9)


def test_scalar_sigma_broadcasts_and_wrong_shape_is_rejected():
    """A 0-d sigma is broadcast over the batch; a sigma of the wrong length raises SamplingError."""
    denoiser = ModelDenoiser(_net_for("eps", SD_MAP), SD_MAP, "eps")
    x = torch.randn(2, 5, dtype=torch.float64)
    assert torch.allclose(denoiser(x, torch.tensor(2.0)), DATA.denoiser(x, torch.tensor([2.0, 2.0])), atol=1e-9)
    with pytest.raises(SamplingError, match="sigma: expected a scalar or a tensor of shape \\(2,\\)"):
        denoiser(x, torch.tensor([1.0, 2.0, 3.0]))


def test_discrete_sigma_to_t_round_trips_and_hits_integers():
    """sigma_to_t inverts t_to_sigma and maps table sigmas to integer timesteps."""
    t = torch.tensor([0.0, 0.25, 17.5, 500.0, 998.9, 999.0], dtype=torch.float64)
    assert torch.allclose(SD_MAP.sigma_to_t(SD_MAP.t_to_sigma(t)), t, atol=1e-6)
    assert torch.equal(SD_MAP.sigma_to_t(SD_MAP.sigmas[[0, 10, 999]]), torch.tensor([0.0, 10.0, 999.0]))
    assert SD_MAP.sigma_max == pytest.approx(14.6146, rel=1e-4) and SD_MAP.sigma_min == pytest.approx(0.02917, rel=1e-3)


@pytest.mark.parity
def test_discrete_sigma_to_t_matches_diffusers():
    """Our log-sigma interpolation equals diffusers' EulerDiscreteScheduler._sigma_to_t."""
    diffusers = pytest.importorskip("diffusers")
    import numpy as np

    scheduler = diffusers.EulerDiscreteScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    log_sigmas = np.log(SD_MAP.sigmas.double().numpy())
    sigmas = np.array([0.03, 0.1, 0.77, 3.3, 14.0])
    expected = scheduler._sigma_to_t(sigmas, log_sigmas)
    assert np.allclose(SD_MAP.sigma_to_t(torch.as_tensor(sigmas)).numpy(), expected, atol=1e-6)


def test_continuous_time_maps_invert_each_other():
    """The VP-SDE, EDM and rectified-flow time maps are inverse pairs."""
    sigma = torch.tensor([0.01, 0.5, 3.0, 50.0], dtype=torch.float64)
    for time_map in (vp_linear_time_map(), edm_time_map(), rectified_flow_time_map()):
        assert torch.allclose(time_map.t_to_sigma(time_map.sigma_to_t(sigma)), sigma, rtol=1e-9)
    assert math.isclose(vp_linear_time_map().sigma_max, math.sqrt(math.expm1(0.1 + 0.5 * 19.9)))


def test_float16_latent_reaches_the_net_as_float16():
    """Scalings are cast to the latent dtype so a half-precision net receives half-precision input."""
    seen = {}

    def net(x_in, t, **cond):
        seen["dtype"] = x_in.dtype
        return torch.zeros_like(x_in)

    out = ModelDenoiser(net, SD_MAP, "eps")(torch.randn(1, 4, dtype=torch.float16), torch.tensor([1.0]))
    assert seen["dtype"] == torch.float16 and out.dtype == torch.float16


def test_unknown_prediction_type_is_rejected():
    """An unknown prediction type raises SamplingError listing the valid ones."""
    with pytest.raises(SamplingError, match="prediction: expected one of \\['edm', 'eps', 'flow', 'v', 'x0'\\]"):
        ModelDenoiser(lambda x, t: x, SD_MAP, "epsilon")


def test_a_large_batch_reaches_the_network_in_slices_with_the_same_result(monkeypatch):
    """The network sees at most MAX_ELEMENTS_AT_ONCE latent elements per call (a batch of 4,096 took 16 GB in one
    call), with its conditioning sliced alike; results equal one whole call. Conditioning it cannot slice (a
    ControlNet stack) keeps the batch whole."""
    calls = []

    def net(x_in, t, context=None, y=None, control=None):
        calls.append(x_in.shape[0])
        assert context.shape[0] in (1, x_in.shape[0]) and t.shape[0] == x_in.shape[0]
        return x_in * 0.5 + context.mean(dim=(1, 2)).reshape(-1, 1, 1, 1) + (0 if y is None else y[:, :1, None, None])

    denoiser = ModelDenoiser(net, SD_MAP, "eps")
    x = torch.randn(10, 4, 2, 2)
    cond = {"context": torch.randn(10, 3, 5), "y": torch.randn(1, 2)}
    sigma = torch.full((10,), 3.0)
    whole = denoiser(x, sigma, **cond)
    assert calls == [10]
    monkeypatch.setattr(ModelDenoiser, "MAX_ELEMENTS_AT_ONCE", 4 * 16)          # 4 items of 16 elements a call
    calls.clear()
    assert torch.allclose(denoiser(x, sigma, **cond), whole, atol=1e-6) and calls == [4, 4, 2]
    calls.clear()
    uneven = torch.linspace(1.0, 5.0, 10)                                   # the tensor path (per-item sigmas)
    sliced = denoiser(x, uneven, **cond)
    monkeypatch.setattr(ModelDenoiser, "MAX_ELEMENTS_AT_ONCE", 1 << 18)
    assert torch.allclose(sliced, denoiser(x, uneven, **cond), atol=1e-6)
    monkeypatch.setattr(ModelDenoiser, "MAX_ELEMENTS_AT_ONCE", 4 * 16)
    calls.clear()
    denoiser(x, sigma, control=object(), **cond)
    assert calls == [10]


def test_slices_keep_a_clips_frames_together(monkeypatch):
    """Under `batch_groups(F)` (a LATENT's `frames`, set around sampling) slices hold whole clips: a motion module
    attends across a clip's frames, and a slice through a clip would fail it."""
    from nodes.sampling.denoisers import batch_groups

    calls = []

    def net(x_in, t, context=None):
        calls.append(x_in.shape[0])
        return x_in

    denoiser = ModelDenoiser(net, SD_MAP, "eps")
    monkeypatch.setattr(ModelDenoiser, "MAX_ELEMENTS_AT_ONCE", 5 * 16)       # 5 items of 16 elements a call
    x, sigma = torch.randn(12, 4, 2, 2), torch.full((12,), 2.0)
    with batch_groups(3):
        denoiser(x, sigma, context=torch.zeros(1, 2, 2))
    assert calls == [3, 3, 3, 3]
    calls.clear()
    with batch_groups(8):                    # one clip is more than the limit: one clip a call, never less
        denoiser(torch.randn(16, 4, 2, 2), torch.full((16,), 2.0), context=torch.zeros(1, 2, 2))
    assert calls == [8, 8]
    calls.clear()
    with batch_groups(5):                    # a batch that is no whole number of clips: left whole
        denoiser(x, sigma, context=torch.zeros(1, 2, 2))
    assert calls == [12]


def test_an_interrupt_is_heard_between_the_slices_of_one_step(monkeypatch):
    """One step of a large batch is many network calls; an interrupt waited for all of them (minutes at the
    benchmark's size). `batch_groups(..., between_slices)` is called before each slice after the first."""
    from nodes.sampling.denoisers import batch_groups

    calls = []

    def net(x_in, t, context=None):
        calls.append(x_in.shape[0])
        return x_in

    class Stop(Exception):
        pass

    checks = []

    def check():
        checks.append(len(calls))
        if len(checks) == 2:
            raise Stop

    denoiser = ModelDenoiser(net, SD_MAP, "eps")
    monkeypatch.setattr(ModelDenoiser, "MAX_ELEMENTS_AT_ONCE", 2 * 16)
    with batch_groups(None, check), pytest.raises(Stop):
        denoiser(torch.randn(10, 4, 2, 2), torch.full((10,), 2.0), context=torch.zeros(1, 2, 2))
    assert calls == [2, 2] and checks == [1, 2]
