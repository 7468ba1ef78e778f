"""HiFi-GAN in transformers' SpeechT5HifiGan layout: parity on random weights, weight norm, configs from shapes."""

import pytest
import torch

from nodegraph_audio.hifigan import (
    HifiGanConfig,
    HifiGanError,
    config_from_state_dict,
    generator_from_state_dict,
)

torch.set_num_threads(1)
transformers = pytest.importorskip("transformers")

SPEECHT5_LIKE = dict(model_in_dim=16, upsample_initial_channel=32, upsample_rates=[4, 4], upsample_kernel_sizes=[8, 8])
AUDIOLDM_LIKE = dict(model_in_dim=12, upsample_initial_channel=32, upsample_rates=[5, 4, 2, 2, 2],
                     upsample_kernel_sizes=[16, 16, 8, 4, 4], normalize_before=False)


def _reference(kwargs: dict, seed: int = 0):
    """A SpeechT5HifiGan with random weights (and random mean / scale buffers)."""
    torch.manual_seed(seed)
    config = transformers.SpeechT5HifiGanConfig(**kwargs)
    model = transformers.SpeechT5HifiGan(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.1)
        model.mean.copy_(torch.randn(config.model_in_dim))
        model.scale.copy_(torch.rand(config.model_in_dim) + 0.5)
    return model, config


@pytest.mark.parity
@pytest.mark.parametrize("kwargs", [SPEECHT5_LIKE, AUDIOLDM_LIKE], ids=["speecht5", "audioldm"])
def test_parity_with_transformers_on_random_weights(kwargs):
    """Our generator loads SpeechT5HifiGan's state dict and gives the same waveform (<= 1e-4)."""
    reference, config = _reference(kwargs)
    ours = generator_from_state_dict(reference.state_dict(), HifiGanConfig.from_transformers(config.to_dict()))
    log_mel = torch.randn(2, 11, config.model_in_dim)
    with torch.no_grad():
        expected, found = reference(log_mel), ours(log_mel)
    assert found.shape == expected.shape
    assert (found - expected).abs().max() <= 1e-4


@pytest.mark.parity
def test_weight_norm_checkpoints_load():
    """A generator saved with weight norm (parametrizations.weight.original0/1) loads with the norm folded in."""
    reference, config = _reference(SPEECHT5_LIKE, seed=1)
    reference.apply_weight_norm()
    state = reference.state_dict()
    assert any("original0" in key for key in state)
    ours = generator_from_state_dict(state, HifiGanConfig.from_transformers(config.to_dict()))
    log_mel = torch.randn(1, 7, config.model_in_dim)
    with torch.no_grad():
        assert (ours(log_mel) - reference(log_mel)).abs().max() <= 1e-4


def test_config_is_read_from_weight_shapes():
    """Without a config file, bins, channels, kernels and (for the published layouts) strides come from the shapes."""
    reference, _ = _reference(AUDIOLDM_LIKE)
    config = config_from_state_dict(reference.state_dict())
    assert config.model_in_dim == 12 and config.upsample_initial_channel == 32
    assert config.upsample_rates == (5, 4, 2, 2, 2) and config.hop == 160
    assert config.resblock_kernel_sizes == (3, 7, 11)
    assert config.resblock_dilation_sizes == ((1, 3, 5),) * 3


def test_wrong_weights_are_refused_with_the_reason():
    """Weights of another model, or of another size, raise HifiGanError naming what differs."""
    with pytest.raises(HifiGanError, match="conv_pre.weight"):
        config_from_state_dict({"encoder.weight": torch.zeros(2, 2)})
    reference, config = _reference(SPEECHT5_LIKE)
    bigger = HifiGanConfig.from_transformers({**config.to_dict(), "upsample_initial_channel": 64})
    with pytest.raises(HifiGanError, match="shape"):
        generator_from_state_dict(reference.state_dict(), bigger)
