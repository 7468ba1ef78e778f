"""nodegraph-example: the smallest useful plugin, written only against `nodegraph` and `nodegraph.api`.

Adds a port type, COLOR (an (r, g, b) tuple of floats in [0, 1]), and these nodes:

    HexColor      text like "#ff8800" or "#f80" → COLOR
    MixColors     two COLORs → COLOR
    ColorSwatch   COLOR → IMAGE filled with it (the IMAGE layout: (B, H, W, 3) in [0, 1])
    SaveColors    COLORs → a JSON text file in the output folder (api.save_files; an output node)
    TextToImage   prompt → IMAGE in one node: api.empty_latent, api.encode_text, api.sample, api.vae_decode
                  (the same code path as the built-in EmptyLatent → EncodeText → KSampler → VAEDecode)

Everything a plugin needs is here: node classes, hook implementations, and an
entry point in pyproject.toml. See docs/plugins.md in the nodegraph repository.
"""

from __future__ import annotations

from typing import Any

import json

from nodegraph import Input, Node, NodeInputError, NodeInputs, Output, PortType, api, hookimpl

api.require("1.7")      # the plugin API this plugin is written against (1.7: save_files(argument=))

COLOR = PortType("COLOR", "An (r, g, b) colour, floats in [0, 1].", color="#e91e63")


class HexColor(Node):
    """Parse a hex colour such as "#ff8800" (or the short "#f80") into a COLOR."""

    category = "example"
    version = "1.1.0"

    class Inputs(NodeInputs):
        hex: str = Input("#ffffff", description="#rrggbb or #rgb", min_length=1, max_length=32)

    outputs = (Output("color", "COLOR"),)

    def run(self, hex: str) -> dict:
        digits = hex.strip().removeprefix("#")
        if len(digits) == 3:                              # CSS shorthand: "#f80" is "#ff8800"
            digits = "".join(d * 2 for d in digits)
        try:
            if len(digits) != 6:
                raise ValueError
            r, g, b = (int(digits[i:i + 2], 16) / 255 for i in (0, 2, 4))
        except ValueError:
            raise NodeInputError("hex", f"expected a colour as '#rrggbb' or '#rgb' with digits 0-9 and a-f (e.g. "
                                        f"'#ff8800'), found {hex!r}") from None
        return {"color": (r, g, b)}


class MixColors(Node):
    """Blend two colours: (1 - t) * a + t * b."""

    category = "example"
    version = "1.0.0"

    class Inputs(NodeInputs):
        a: Any = Input(port="COLOR")
        b: Any = Input(port="COLOR")
        t: float = Input(0.5, ge=0.0, le=1.0, step=0.05)

    outputs = (Output("color", "COLOR"),)

    def run(self, a: tuple, b: tuple, t: float) -> dict:
        return {"color": tuple((1 - t) * x + t * y for x, y in zip(a, b))}


class ColorSwatch(Node):
    """An image filled with one colour."""

    category = "example"
    version = "1.0.0"

    class Inputs(NodeInputs):
        color: Any = Input(port="COLOR")
        width: int = Input(64, ge=8, le=4096, multiple_of=8)
        height: int = Input(64, ge=8, le=4096, multiple_of=8)

    outputs = (Output("image", "IMAGE"),)

    def run(self, color: tuple, width: int, height: int) -> dict:
        import torch

        rgb = torch.tensor([float(c) for c in color], dtype=torch.float32).clamp(0, 1)
        return {"image": rgb.expand(1, height, width, 3).clone()}          # (B, H, W, 3) in [0, 1]


class SaveColors(Node):
    """Save colours as a JSON file ({"colors": ["#rrggbb", ...]}) in the output folder."""

    category = "example"
    version = "1.0.0"
    output_node = True

    class Inputs(NodeInputs):
        a: Any = Input(port="COLOR")
        b: Any = Input(None, port="COLOR")
        filename_prefix: str = Input("colors", file_name_in="output", subfolders=True, min_length=1, max_length=120)

    outputs = ()

    def run(self, a: tuple, b: tuple | None, filename_prefix: str) -> dict:
        colors = [c for c in (a, b) if c is not None]
        text = json.dumps({"colors": ["#" + "".join(f"{round(x * 255):02x}" for x in c) for c in colors]})
        return {"files": api.save_files(self.context, [text], kind="text", prefix=filename_prefix, suffix=".json",
                                        argument="filename_prefix")}


# the config fields that give the width of the text tokens / of the pooled vector a network reads
class TextToImage(Node):
    """Prompt → image in one node, through the public plugin API (nodegraph.api) only."""

    category = "example"
    version = "1.0.0"

    class Inputs(NodeInputs):
        model: Any = Input(port="MODEL")
        text_encoder: Any = Input(port="TEXT_ENCODER")
        vae: Any = Input(port="VAE")
        prompt: str = Input("", multiline=True, max_length=20000)
        negative_prompt: str = Input("", multiline=True, max_length=20000)
        width: int = Input(64, ge=8, le=4096, multiple_of=8)
        height: int = Input(64, ge=8, le=4096, multiple_of=8)
        seed: int = Input(0, seed=True)
        steps: int = Input(20, ge=1, le=1000)
        cfg: float = Input(5.0, ge=0.0, le=100.0, step=0.1)
        sampler: str = Input("euler", choices_from="samplers")
        scheduler: str = Input("karras", choices_from="schedules")

    outputs = (Output("image", "IMAGE"), Output("latent", "LATENT"))

    def run(self, model: Any, text_encoder: Any, vae: Any, prompt: str, negative_prompt: str, width: int,
            height: int, seed: int, steps: int, cfg: float, sampler: str, scheduler: str) -> dict:
        context = self.context
        positive = api.encode_text(context, text_encoder, prompt)
        negative = api.encode_text(context, text_encoder, negative_prompt)
        latent = api.empty_latent(context, width, height, vae=vae)
        try:
            latent = api.sample(context, model, positive, negative, latent, seed=seed, steps=steps, cfg=cfg,
                                sampler=sampler, scheduler=scheduler)
        except NodeInputError as exc:     # api.sample names its argument; here the prompts come from text_encoder
            if exc.input not in ("positive", "negative"):
                raise
            raise NodeInputError("text_encoder", f"{str(exc).split(': ', 1)[-1]} (the prompts are encoded with this "
                                                 f"node's text_encoder: connect the one of the model's own "
                                                 f"checkpoint)") from None
        return {"image": api.vae_decode(context, vae, latent), "latent": latent}


@hookimpl
def register_types() -> list[PortType]:
    return [COLOR]


@hookimpl
def register_nodes() -> list[type[Node]]:
    return [HexColor, MixColors, ColorSwatch, SaveColors, TextToImage]
