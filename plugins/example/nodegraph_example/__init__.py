"""nodegraph-example: the smallest useful plugin.

Adds a port type, COLOR (an (r, g, b) tuple of floats in [0, 1]), and two nodes:
`HexColor` (text like "#ff8800" → COLOR) and `MixColors` (two COLORs → COLOR).
Everything a plugin needs is here: node classes, hook implementations, and an
entry point in pyproject.toml. See docs/plugins.md in the nodegraph repository.
"""

from __future__ import annotations

from typing import Any

from nodegraph import Input, Node, NodeInputError, NodeInputs, Output, PortType, hookimpl

COLOR = PortType("COLOR", "An (r, g, b) colour, floats in [0, 1].", color="#e91e63")


class HexColor(Node):
    """Parse a hex colour such as "#ff8800" into a COLOR."""

    category = "example"
    version = "1.0.0"

    class Inputs(NodeInputs):
        hex: str = Input("#ffffff", description="#rrggbb", min_length=7, max_length=7)

    outputs = (Output("color", "COLOR"),)

    def run(self, hex: str) -> dict:
        if not hex.startswith("#"):
            raise NodeInputError("hex", f"expected '#rrggbb', found {hex!r}")
        try:
            r, g, b = (int(hex[i:i + 2], 16) / 255 for i in (1, 3, 5))
        except ValueError:
            raise NodeInputError("hex", f"{hex!r} is not hexadecimal; use digits 0-9 and a-f") from None
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


@hookimpl
def register_types() -> list[PortType]:
    return [COLOR]


@hookimpl
def register_nodes() -> list[type[Node]]:
    return [HexColor, MixColors]
