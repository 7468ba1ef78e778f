"""Decoder-only VAE fine-tuning with latent noise (#16 §5, the corner blob): the latent space stays put."""

from __future__ import annotations

import torch

from nodes.models.vae import AutoencoderKL, VAEConfig
from nodes.training.trainer import TrainConfig, train_vae, vae_loss


def test_frozen_encoder_keeps_the_latent_space_and_the_decoder_learns():
    """With train_encoder off, encoder and quant_conv weights are bitwise unchanged; the decoder's change."""
    torch.manual_seed(0)
    vae = AutoencoderKL(VAEConfig(ch=32, ch_mult=(1, 1), num_res_blocks=1, z_channels=4))
    vae.requires_grad_(False)                                   # as a loader leaves it
    images = torch.rand(8, 3, 16, 16) * 2 - 1
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    train_vae(vae, images, TrainConfig(steps=5, batch_size=4, lr=1e-3, warmup_steps=1, ema_decay=0.0),
              lambda *a: None, train_encoder=False, latent_noise=0.1)
    after = vae.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(("encoder.", "quant_conv.")))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))


def test_latent_noise_is_in_scaled_units():
    """The decoder input moves by latent_noise / scale_factor in raw latent units (so 0 changes nothing)."""
    torch.manual_seed(0)
    vae = AutoencoderKL(VAEConfig(ch=32, ch_mult=(1, 1), num_res_blocks=1, z_channels=4, scale_factor=0.5))
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    seen = []
    vae.post_quant_conv.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].detach()))
    vae_loss(vae, images, torch.Generator().manual_seed(1), 0.0)
    vae_loss(vae, images, torch.Generator().manual_seed(1), 0.0, latent_noise=0.2)
    assert abs(float((seen[1] - seen[0]).std()) - 0.2 / 0.5) < 0.05
