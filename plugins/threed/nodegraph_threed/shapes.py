"""Procedural coloured shapes: the training data of the tiny text-to-3D model, and its ground truth.

A *shape spec* is one of 6 solids (sphere, cube, cylinder, cone, torus, pyramid), one of 8 colours,
one of 3 sizes and one of 3 stretches: 6 × 8 × 3 × 3 = 432 specs. Its caption names the attributes
("a tall red cylinder", "a small wide white torus"); "medium" and "plain" are left unsaid. Points are
sampled uniformly by surface area (triangle / disc / lateral-surface formulas below), y is up, every
solid is centred at the origin.

    SHAPES, COLOURS, SIZES, STRETCHES     the attribute values (COLOURS: name → RGB in [0, 1])
    ShapeSpec                             one spec: shape, colour, size, stretch; `.caption`, `.extent`
    all_specs()                           the 432 specs in a fixed order
    held_out_specs() / training_specs()   a fixed 25 % of the specs (108) never trained on, for benchmarks
    parse_caption(text)                   caption → ShapeSpec (ShapeError naming the unknown word)
    sample_surface(shape, n, generator)   (n, 3) points on the unit solid (extent ±1 along each axis)
    sample_spec(spec, n, generator, jitter)   (n, 6) xyz + rgb points of a spec (size jitter, colour noise)
    random_spec(generator, specs)         one spec drawn uniformly from a list

Canonical solids (before size × stretch scaling): sphere radius 1; cube half-size 1; cylinder radius 1,
y ∈ [-1, 1]; cone base radius 1 at y = -1, apex (0, 1, 0); torus in the xz plane, major radius 0.7,
minor 0.3 (extent ±1 in x and z, ±0.3 in y); square pyramid, base 2 × 2 at y = -1, apex (0, 1, 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SHAPES = ("sphere", "cube", "cylinder", "cone", "torus", "pyramid")
COLOURS = {                      # saturated, well separated in RGB so "colour correct" is unambiguous
    "red": (0.90, 0.15, 0.15), "orange": (0.95, 0.55, 0.10), "yellow": (0.95, 0.88, 0.15),
    "green": (0.15, 0.72, 0.22), "cyan": (0.15, 0.80, 0.85), "blue": (0.15, 0.30, 0.92),
    "purple": (0.60, 0.20, 0.80), "white": (0.95, 0.95, 0.95),
}
SIZES = {"small": 0.45, "medium": 0.65, "large": 0.85}       # overall scale of the unit solid
STRETCHES = {"plain": (1.0, 1.0, 1.0), "tall": (0.75, 1.5, 0.75), "wide": (1.35, 0.6, 1.35)}   # (x, y, z)
TORUS_MAJOR, TORUS_MINOR = 0.7, 0.3
HELD_OUT_FRACTION = 0.25
HELD_OUT_SEED = 2024


class ShapeError(ValueError):
    """A caption or spec outside the shape world (names the word or value and what is allowed)."""


@dataclass(frozen=True)
class ShapeSpec:
    """One procedural shape: which solid, its colour, size and stretch."""

    shape: str
    colour: str
    size: str = "medium"
    stretch: str = "plain"

    def __post_init__(self) -> None:
        for field, allowed in (("shape", SHAPES), ("colour", COLOURS), ("size", SIZES), ("stretch", STRETCHES)):
            if getattr(self, field) not in allowed:
                raise ShapeError(f"{field} {getattr(self, field)!r} is not one of {', '.join(allowed)}")

    @property
    def caption(self) -> str:
        """'a [small|large] [tall|wide] <colour> <shape>' (medium and plain are not said)."""
        words = ["a"]
        if self.size != "medium":
            words.append(self.size)
        if self.stretch != "plain":
            words.append(self.stretch)
        words += [self.colour, self.shape]
        return " ".join(words)

    @property
    def extent(self) -> tuple[float, float, float]:
        """Per-axis scale applied to the unit solid: size × stretch."""
        scale = SIZES[self.size]
        return tuple(scale * s for s in STRETCHES[self.stretch])

    @property
    def rgb(self) -> tuple[float, float, float]:
        return COLOURS[self.colour]


def all_specs() -> list[ShapeSpec]:
    """The 432 specs, shape-major, in a fixed order."""
    return [ShapeSpec(shape, colour, size, stretch)
            for shape in SHAPES for colour in COLOURS for size in SIZES for stretch in STRETCHES]


def held_out_specs() -> list[ShapeSpec]:
    """A fixed 25 % of the specs (108), never trained on: unseen attribute *combinations* for benchmarks.

    Drawn per shape (18 of its 72 specs each), so every shape, colour, size and stretch still
    appears in training; only the combinations are new.
    """
    generator = torch.Generator().manual_seed(HELD_OUT_SEED)
    specs = all_specs()
    per_shape = len(specs) // len(SHAPES)
    chosen = []
    for k in range(len(SHAPES)):
        order = torch.randperm(per_shape, generator=generator)[: round(per_shape * HELD_OUT_FRACTION)]
        chosen += [specs[k * per_shape + int(i)] for i in sorted(order.tolist())]
    return chosen


def training_specs() -> list[ShapeSpec]:
    """The specs the model trains on (all minus the held-out ones)."""
    held = set(held_out_specs())
    return [spec for spec in all_specs() if spec not in held]


def parse_caption(text: str) -> ShapeSpec:
    """'a tall red cylinder' → ShapeSpec; ShapeError names a word outside the vocabulary or a missing one."""
    if not isinstance(text, str):
        raise ShapeError(f"expected a caption string, found {type(text).__name__}")
    found: dict[str, str] = {}
    for word in text.lower().replace(",", " ").split():
        for field, allowed in (("shape", SHAPES), ("colour", COLOURS), ("size", SIZES), ("stretch", STRETCHES)):
            if word in allowed:
                if field in found and found[field] != word:
                    raise ShapeError(f"the caption {text!r} names two {field}s ({found[field]!r} and {word!r})")
                found[field] = word
                break
        else:
            if word not in ("a", "an", "the"):
                raise ShapeError(f"the word {word!r} in {text!r} is not in the shape vocabulary: shapes "
                                 f"{', '.join(SHAPES)}; colours {', '.join(COLOURS)}; sizes small, large; "
                                 f"stretches tall, wide")
    for field in ("shape", "colour"):
        if field not in found:
            raise ShapeError(f"the caption {text!r} names no {field}; say e.g. 'a red cube'")
    return ShapeSpec(found["shape"], found["colour"], found.get("size", "medium"), found.get("stretch", "plain"))


# --- surface sampling --------------------------------------------------------------------------------

def _uniform(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator, dtype=torch.float64)


def _choose(n: int, areas: list[float], generator: torch.Generator) -> torch.Tensor:
    """Which surface piece each of n points lies on, with probability ∝ area."""
    return torch.multinomial(torch.tensor(areas, dtype=torch.float64), n, replacement=True, generator=generator)


def _triangles(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Uniform points in triangles (n, 3) each: p = (1-√r1) a + √r1 (1-r2) b + √r1 r2 c (Osada et al. 2002)."""
    r1, r2 = _uniform(len(a), generator).sqrt().unsqueeze(1), _uniform(len(a), generator).unsqueeze(1)
    return (1 - r1) * a + r1 * (1 - r2) * b + r1 * r2 * c


def _sphere(n: int, generator: torch.Generator) -> torch.Tensor:
    points = torch.randn(n, 3, generator=generator, dtype=torch.float64)
    return points / points.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _cube(n: int, generator: torch.Generator) -> torch.Tensor:
    face = _choose(n, [1.0] * 6, generator)                        # 6 equal faces
    uv = _uniform(2 * n, generator).view(n, 2) * 2 - 1
    axis, sign = face // 2, (face % 2) * 2 - 1.0
    points = torch.zeros(n, 3, dtype=torch.float64)
    others = torch.tensor([[1, 2], [0, 2], [0, 1]])[axis]           # the two free axes of each face
    points.scatter_(1, others, uv)
    points[torch.arange(n), axis] = sign.double()
    return points


def _disc(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform points in the unit disc as (x, z): r = √u."""
    radius, angle = _uniform(n, generator).sqrt(), _uniform(n, generator) * 2 * math.pi
    return radius * angle.cos(), radius * angle.sin()


def _cylinder(n: int, generator: torch.Generator) -> torch.Tensor:
    piece = _choose(n, [4 * math.pi, math.pi, math.pi], generator)   # side (2π r h), two caps (π r²)
    angle = _uniform(n, generator) * 2 * math.pi
    side = torch.stack([angle.cos(), _uniform(n, generator) * 2 - 1, angle.sin()], 1)
    x, z = _disc(n, generator)
    cap = torch.stack([x, torch.where(piece == 1, 1.0, -1.0).double(), z], 1)
    return torch.where((piece == 0).unsqueeze(1), side, cap)


def _cone(n: int, generator: torch.Generator) -> torch.Tensor:
    piece = _choose(n, [math.pi * math.sqrt(5.0), math.pi], generator)   # lateral π r l (l = √5), base π r²
    fraction = _uniform(n, generator).sqrt()                              # distance from the apex, area ∝ it²
    angle = _uniform(n, generator) * 2 * math.pi
    lateral = torch.stack([fraction * angle.cos(), 1 - 2 * fraction, fraction * angle.sin()], 1)
    x, z = _disc(n, generator)
    base = torch.stack([x, torch.full_like(x, -1.0), z], 1)
    return torch.where((piece == 0).unsqueeze(1), lateral, base)


def _torus(n: int, generator: torch.Generator) -> torch.Tensor:
    """Uniform by area: the tube angle v has density ∝ (R + r cos v) (rejection sampling)."""
    tube = torch.empty(0, dtype=torch.float64)
    while len(tube) < n:
        v = _uniform(2 * n, generator) * 2 * math.pi
        keep = _uniform(2 * n, generator) * (TORUS_MAJOR + TORUS_MINOR) < TORUS_MAJOR + TORUS_MINOR * v.cos()
        tube = torch.cat([tube, v[keep]])
    v, u = tube[:n], _uniform(n, generator) * 2 * math.pi
    ring = TORUS_MAJOR + TORUS_MINOR * v.cos()
    return torch.stack([ring * u.cos(), TORUS_MINOR * v.sin(), ring * u.sin()], 1)


_PYRAMID_CORNERS = torch.tensor([[-1, -1, -1], [1, -1, -1], [1, -1, 1], [-1, -1, 1]], dtype=torch.float64)
_PYRAMID_APEX = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)


def _pyramid(n: int, generator: torch.Generator) -> torch.Tensor:
    side_area = math.sqrt(5.0)                                        # ½ · base edge 2 · slant height √5
    piece = _choose(n, [side_area] * 4 + [2.0, 2.0], generator)       # 4 sides, base as 2 triangles
    corners = _PYRAMID_CORNERS
    a = torch.where((piece < 4).unsqueeze(1), corners[piece.clamp(max=3)], corners[0].expand(n, 3))
    b = torch.where((piece < 4).unsqueeze(1), corners[(piece + 1).clamp(max=4) % 4],
                    corners[torch.where(piece == 4, 1, 3)])
    c = torch.where((piece < 4).unsqueeze(1), _PYRAMID_APEX.expand(n, 3), corners[2].expand(n, 3))
    return _triangles(a, b, c, generator)


_SAMPLERS = {"sphere": _sphere, "cube": _cube, "cylinder": _cylinder, "cone": _cone, "torus": _torus,
             "pyramid": _pyramid}


def sample_surface(shape: str, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, 3) float32 points uniformly on the surface of the unit solid `shape`."""
    if shape not in _SAMPLERS:
        raise ShapeError(f"shape {shape!r} is not one of {', '.join(SHAPES)}")
    if n < 1:
        raise ShapeError(f"the number of points must be >= 1, found {n}")
    return _SAMPLERS[shape](n, generator or torch.Generator().manual_seed(0)).float()


def sample_spec(spec: ShapeSpec, n: int, generator: torch.Generator | None = None, *,
                size_jitter: float = 0.0, colour_noise: float = 0.0) -> torch.Tensor:
    """(n, 6) xyz + rgb points of a spec: the unit solid scaled by size × stretch (× 1 ± size_jitter)."""
    generator = generator or torch.Generator().manual_seed(0)
    points = sample_surface(spec.shape, n, generator)
    scale = torch.tensor(spec.extent)
    if size_jitter:
        scale = scale * (1 + size_jitter * (2 * float(torch.rand((), generator=generator)) - 1))
    colours = torch.tensor(spec.rgb).expand(n, 3)
    if colour_noise:
        colours = (colours + colour_noise * torch.randn(n, 3, generator=generator)).clamp(0, 1)
    return torch.cat([points * scale, colours], 1)


def random_spec(generator: torch.Generator, specs: list[ShapeSpec]) -> ShapeSpec:
    """One spec drawn uniformly from `specs`."""
    return specs[int(torch.randint(len(specs), (), generator=generator))]
