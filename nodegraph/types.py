"""Port types: the names on node inputs and outputs, and which may connect.

A port type is a name (`"LATENT"`, `"INT"`) plus two facts: whether a JSON
literal can stand in for a link (primitives can, tensors cannot) and which
other types it accepts. The compatibility rule is explicit and small:

    source → destination is allowed  iff  source == destination
                                       or either end is ANY ("*")
                                       or source is in destination.accepts

The only built-in widening is INT → FLOAT. ANY is for generic nodes (a
Switch, a value display): an ANY output may feed any input, and the node that
receives it checks the value at run time. Plugins add types through the
`register_types` hook (see hookspecs.py) and may declare their own `accepts`.

Main objects: `PortType`, `TypeRegistry`, `BUILTIN_TYPES`; `pixel_values_problem` (what an IMAGE or MASK
tensor's dtype and values must be: the executor checks node outputs with it, `api.check_image` plugin inputs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import PluginError

ANY = "*"


@dataclass(frozen=True)
class PortType:
    """A named port type.

    Args:
        name: upper-case identifier used in node declarations and graph files.
        description: one line shown in the editor and docs.
        literal: JSON type name (`"integer"`, `"number"`, `"string"`, `"boolean"`)
            when a literal value may be written instead of a link; None when the
            value only ever comes from another node (tensors, models).
        accepts: other type names whose outputs may feed an input of this type.
        color: a hint for the editor (CSS colour).
    """

    name: str
    description: str = ""
    literal: str | None = None
    accepts: frozenset[str] = field(default_factory=frozenset)
    color: str = "#888888"

    def __post_init__(self) -> None:
        # a list or tuple given by a plugin is the same meaning in any order: compared as a set (two packs whose
        # `accepts` differed only as list vs frozenset were called a clash, "accepts INT there; accepts INT here")
        accepts = self.accepts
        if not isinstance(accepts, frozenset):
            object.__setattr__(self, "accepts", frozenset({accepts} if isinstance(accepts, str) else accepts))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "literal": self.literal,
            "accepts": sorted(self.accepts),
            "color": self.color,
        }


BUILTIN_TYPES: tuple[PortType, ...] = (
    PortType(ANY, "Any value (generic nodes such as Switch and ShowValue).", color="#cccccc"),
    PortType("INT", "An integer.", literal="integer", color="#1f77b4"),
    PortType("FLOAT", "A floating-point number; INT outputs may feed it.", literal="number",
             accepts=frozenset({"INT"}), color="#17becf"),
    PortType("STRING", "Text.", literal="string", color="#2ca02c"),
    PortType("BOOLEAN", "True or false.", literal="boolean", color="#9467bd"),
    PortType("IMAGE", "A batch of RGB images, float tensor (B, H, W, 3) in [0, 1].", color="#64b5f6"),
    PortType("MASK", "A batch of masks, float tensor (B, H, W) in [0, 1]; 1 = change.", color="#81c784"),
    PortType("LATENT", "Latent images: {'samples': (B, C, h, w)} plus optional noise mask.", color="#ff9cf9"),
    PortType("MODEL", "A denoising network (UNet) with its prediction type and schedule.", color="#b39ddb"),
    PortType("VAE", "A variational autoencoder mapping images to latents and back.", color="#ff6e6e"),
    PortType("TEXT_ENCODER", "A tokenizer plus text encoder (CLIP).", color="#ffd500"),
    PortType("CONDITIONING", "Encoded prompts and their options (control, areas, weights).", color="#ffa931"),
    PortType("SIGMAS", "A 1-D tensor of noise levels ending in 0.", color="#cddc39"),
    PortType("SAMPLER", "A sampling algorithm with its options.", color="#ecb4b4"),
    PortType("GUIDER", "A denoiser with guidance (e.g. CFG) bound to its conditioning.", color="#66ffff"),
    PortType("NOISE", "A seeded noise source for the initial latent.", color="#b0b0b0"),
    PortType("CONTROL_NET", "A ControlNet model.", color="#00d78d"),
    PortType("UPSCALE_MODEL", "An image upscaling network (ESRGAN family).", color="#8d6e63"),
    # Media layouts shared by the media plugins (docs/plugins.md "Tensor layouts"), defined once so they never clash.
    PortType("AUDIO", "Audio: {'waveform': float tensor (B, channels, samples), full scale ±1 (beyond it allowed), 'sample_rate': int}.",
             color="#4db6ac"),
    PortType("POINT_CLOUD", "Point sets: float tensor (B, N, C), channels last: xyz first, then e.g. rgb or normals.",
             color="#7986cb"),
    PortType("MESH", "Triangle meshes: {'vertices': float (V, 3), 'faces': int (F, 3), optional 'colors' (V, 3)}"
             " or a list of them.", color="#bcaaa4"),
)


IMAGE_VALUE_CEILING = 2.0     # past this an IMAGE is surely 0-255 values (small overshoots are clamped on save)
IMAGE_VALUE_FLOOR = -1.0      # below this, [-1, 1] model space at best (a VAE decode's raw output is about that)
PIXEL_DTYPES = ("float32", "float16", "bfloat16")


def pixel_values_problem(tensor: Any, what: str = "an IMAGE") -> str | None:
    """Why an IMAGE or MASK tensor's dtype or values break the layout (float32 in [0, 1]), or None: an integer or
    float64 dtype, a tensor that still tracks gradients, NaN, or values of another scale (0-255). Reads every
    value once (max and min); a meta tensor is not read."""
    dtype = str(tensor.dtype).removeprefix("torch.")
    if dtype not in PIXEL_DTYPES:
        fix = ("tensor.float()" if tensor.is_floating_point() else "its real part, tensor.real.float()"
               if tensor.is_complex() else "tensor.float() / 255 for 0-255 pixels")
        return f"{what} is float32 in [0, 1]; found dtype {dtype} ({fix})"
    layout = str(tensor.layout).removeprefix("torch.")
    if layout != "strided":
        return f"{what} is a dense tensor; found a {layout} one (tensor.to_dense())"
    if tensor.requires_grad:
        return (f"{what} still tracks gradients (requires_grad): it would keep its autograd graph alive in the "
                f"cache; return tensor.detach()")
    if tensor.is_meta or not tensor.numel():
        return None
    high, low = float(tensor.amax()), float(tensor.amin())
    if not (abs(high) < float("inf") and abs(low) < float("inf")):      # NaN or infinite
        bad = tensor.numel() - int(tensor.isfinite().sum())
        return (f"{what}: {bad} of {tensor.numel()} values are NaN or infinite; something upstream went wrong (a "
                f"sampler that diverged, cfg far too high, fp16 weights that overflowed, a model file whose weights "
                f"hold NaN); it must hold numbers in [0, 1]")
    if high > IMAGE_VALUE_CEILING or low < IMAGE_VALUE_FLOOR:
        hint = "divide 0-255 pixel values by 255" if high > IMAGE_VALUE_CEILING else "map [-1, 1] to (x + 1) / 2"
        return f"found values from {low:.4g} to {high:.4g} where {what} holds values in [0, 1] ({hint})"
    return None


def _meaning(port_type: PortType) -> str:
    """What validation reads of a type, in words (a clash message names the difference)."""
    literal = f"literal {port_type.literal}" if port_type.literal else "no literal"
    return f"{literal}, accepts {', '.join(sorted(port_type.accepts)) or 'nothing else'}"


class PortTypeClash(PluginError):
    """A plugin defines a port type that an earlier plugin (`owner`) defined differently."""

    def __init__(self, message: str, name: str, owner: str):
        super().__init__(message)
        self.name, self.owner = name, owner


class TypeRegistry:
    """All known port types, and the rule that says which may connect."""

    def __init__(self, types: tuple[PortType, ...] = BUILTIN_TYPES):
        self._types: dict[str, PortType] = {}
        self._sources: dict[str, str] = {}       # type name → who registered it first
        # (type name, first owner, later plugin): the same type with another description or colour, shared
        self.shared: list[tuple[str, str, str]] = []
        for t in types:
            self.register(t)

    def register(self, port_type: PortType, source: str = "nodegraph") -> None:
        """Add a type; re-registering a type of the same meaning is a no-op, a different one an error.

        Between plugins the meaning is what validation reads: `literal` and `accepts`. A description or colour of
        its own does not make another type: two packs that both define PALETTE share it (the first definition's
        text and colour are shown; noted in `shared`, a warning), as ComfyUI's type names are shared strings —
        one wording apart failed a whole pack's load. A built-in type's description is its documented layout
        (IMAGE, LATENT, AUDIO...): any other definition of it is a clash."""
        if not isinstance(port_type, PortType):
            raise PluginError(f"{source}: register_types must return PortType objects, got {port_type!r}")
        if not port_type.name or not (port_type.name == ANY or port_type.name.replace("_", "").isalnum()):
            raise PluginError(f"{source}: port type name {port_type.name!r} must be letters, digits and '_'")
        existing = self._types.get(port_type.name)
        owner = self._sources.get(port_type.name, "nodegraph")
        if existing is not None and existing != port_type and owner != "nodegraph" and \
                (existing.literal, existing.accepts) == (port_type.literal, port_type.accepts):
            if owner != source:
                self.shared.append((port_type.name, owner, source))
            return
        if existing is not None and existing != port_type:
            owner = self._sources.get(port_type.name, "nodegraph")
            who = "nodegraph itself" if owner == "nodegraph" else f"plugin {owner!r}"
            differs = (f"a different meaning ({_meaning(existing)} there; {_meaning(port_type)} here)"
                       if owner != "nodegraph" else
                       "its documented layout (a built-in type's description and colour are part of it: a plugin "
                       "uses the type as nodegraph defines it, registering nothing)")
            raise PortTypeClash(
                f"{source}: port type {port_type.name!r} is already registered by {who} with {differs}; pick another name, or use the type of {who} as it is defined (types are global to all "
                f"plugins, and the first to register a name keeps it: built-in types first, then installed plugins in "
                f"entry-point name order, then plugins given in code in their order)",
                port_type.name, owner)
        self._types[port_type.name] = port_type
        self._sources.setdefault(port_type.name, source)

    def __contains__(self, name: str) -> bool:
        return name in self._types

    def __getitem__(self, name: str) -> PortType:
        return self._types[name]

    def names(self) -> list[str]:
        return sorted(self._types)

    def is_compatible(self, source: str, destination: str) -> bool:
        """True when an output of type `source` may feed an input of type `destination`."""
        if source == destination or destination == ANY or source == ANY:
            return True
        dest = self._types.get(destination)
        return dest is not None and source in dest.accepts

    def to_dict(self) -> dict:
        return {name: t.to_dict() for name, t in sorted(self._types.items())}
