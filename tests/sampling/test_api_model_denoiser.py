"""api.model_denoiser: a MODEL's denoiser for a plugin's own loop — patches set, base weights frozen, gradients
reach an inserted module (the video plugin trains motion modules this way)."""

from __future__ import annotations

import torch

from nodegraph import Input, Node, NodeInputs, Output, Session, api, hookimpl

torch.set_num_threads(1)


class Scale(torch.nn.Module):
    """An inserted module with one trainable gain."""

    def __init__(self):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.ones(1))

    def forward(self, h, call):
        return h * self.gain


class TrainGain(Node):
    """Inserts Scale after the first transformer of a tiny UNet and takes one gradient step through the denoiser."""

    category = "test"
    output_node = True

    class Inputs(NodeInputs):
        seed: int = Input(0)

    outputs = (Output("report", "STRING"),)

    def run(self, seed: int) -> dict:
        from nodes.models.nodes import diffusion_model                      # as LoadCheckpoint wraps a UNet
        from nodes.models.unet import TINY, UNetModel                      # the test builds its own network

        torch.manual_seed(seed)
        net = UNetModel(TINY)
        model = plain = diffusion_model(net, "tiny")
        module = Scale()
        after = api.model_keys(self.context, model, "transformers")[:1]
        model = api.patch_model(self.context, model, api.make_patch(self.context, "module", name="gain",
                                                                    module=module, after=after))
        x0, noise = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
        context = torch.randn(1, 7, TINY.context_dim)
        with api.model_denoiser(self.context, model) as denoiser:
            sigma = denoiser.sigmas[500].expand(2)
            frozen = all(not p.requires_grad for p in net.parameters())
            loss = ((denoiser(x0 + sigma.view(-1, 1, 1, 1) * noise, sigma, context=context) - x0) ** 2).mean()
            loss.backward()
            patched = denoiser(x0, sigma, context=context)
        restored = all(p.requires_grad for p in net.parameters())
        with torch.no_grad(), api.model_denoiser(self.context, plain) as denoiser:
            unpatched = denoiser(x0, sigma, context=context)
            module.gain.data.fill_(1.0)
        return {"report": repr({"frozen": frozen, "restored": restored, "grad": module.gain.grad is not None
                                and float(module.gain.grad.abs()) > 0, "net_grads": any(p.grad is not None
                                                                                       for p in net.parameters()),
                                "same_when_gain_1": bool(torch.allclose(patched, unpatched, atol=1e-5))})}


class Plugin:
    """Registers TrainGain."""

    @hookimpl
    def register_nodes(self) -> list:
        return [TrainGain]


def test_model_denoiser_freezes_the_base_and_trains_the_inserted_module():
    """Gradients reach the inserted module only; the base weights are frozen inside the block and restored after."""
    session = Session(plugins=[("gain", Plugin())])
    report = eval(session.run({"format_version": 1, "nodes": {"t": {"type": "TrainGain", "inputs": {}}}})
                  .outputs["t"]["report"])
    assert report == {"frozen": True, "restored": True, "grad": True, "net_grads": False, "same_when_gain_1": True}
