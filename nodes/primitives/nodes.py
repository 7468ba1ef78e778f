"""Primitive nodes: constants, arithmetic, comparison, text, a lazy Switch, outputs.

    Int, Float, String, Boolean   constants → value
    Math                          a (op) b → FLOAT; op in add, subtract, multiply, divide, power, modulo, min, max
    IntMath                       the same on integers → INT (division floors; results stay in 64 bits)
    Compare                       a (op) b → BOOLEAN
    FormatText                    "{a} and {b}" with up to four values → STRING
    Switch                        condition ? on_true : on_false — only the chosen branch runs (lazy inputs)
    RandomInt                     a fresh random integer every run (non-deterministic: never cached)
    Wait                          pass a value through after some seconds (interruptible; for tests and demos)
    ShowValue                     output node: records the value (and its text) in the run's outputs
"""

from __future__ import annotations

import math
import operator
import random
import re
import string
import time
import unicodedata
from typing import Any, Literal

from nodegraph import Input, Node, NodeInputError, NodeInputs, Output, hookimpl

BIG = 1e300
INT_MIN, INT_MAX = -(2**63), 2**64 - 1     # INT values: a signed or an unsigned 64-bit integer (seeds use all 64)


class Int(Node):
    """An integer constant."""

    category = "primitives"

    class Inputs(NodeInputs):
        value: int = Input(0, ge=INT_MIN, le=INT_MAX, step=1)

    outputs = (Output("value", "INT"),)

    def run(self, value: int) -> dict:
        return {"value": value}


class Float(Node):
    """A floating-point constant."""

    category = "primitives"

    class Inputs(NodeInputs):
        value: float = Input(0.0, ge=-BIG, le=BIG, step=0.01)

    outputs = (Output("value", "FLOAT"),)

    def run(self, value: float) -> dict:
        return {"value": float(value)}


class String(Node):
    """A text constant (multiline)."""

    category = "primitives"

    class Inputs(NodeInputs):
        value: str = Input("", multiline=True)

    outputs = (Output("value", "STRING"),)

    @classmethod
    def check_literals(cls, literals: dict[str, Any], list_model_files: Any) -> dict[str, str]:
        """A text over the STRING outputs' cap fails at validation (the run refused it only after)."""
        from nodegraph.executor import MAX_TEXT_OUTPUT_BYTES

        value = literals.get("value")
        if isinstance(value, str) and len(value) > MAX_TEXT_OUTPUT_BYTES // 4:
            size = len(value.encode("utf-8", "surrogatepass"))
            if size > MAX_TEXT_OUTPUT_BYTES:
                return {"value": f"the text is {size} bytes, over the {MAX_TEXT_OUTPUT_BYTES}-byte cap on STRING "
                                 f"values; shorten it (or read it from a file)"}
        return {}

    def run(self, value: str) -> dict:
        return {"value": value}


class Boolean(Node):
    """A true/false constant."""

    category = "primitives"

    class Inputs(NodeInputs):
        value: bool = Input(False)

    outputs = (Output("value", "BOOLEAN"),)

    def run(self, value: bool) -> dict:
        return {"value": value}


_FLOAT_OPS = {
    "add": operator.add, "subtract": operator.sub, "multiply": operator.mul,
    "divide": operator.truediv, "power": operator.pow, "modulo": math.fmod,
    "min": min, "max": max,
}
_INT_OPS = {**_FLOAT_OPS, "divide": operator.floordiv, "modulo": operator.mod}

MathOp = Literal["add", "subtract", "multiply", "divide", "power", "modulo", "min", "max"]


class Math(Node):
    """Apply an arithmetic operation to two numbers."""

    category = "primitives/math"

    class Inputs(NodeInputs):
        a: float = Input(0.0, ge=-BIG, le=BIG, step=0.01)
        b: float = Input(0.0, ge=-BIG, le=BIG, step=0.01)
        op: MathOp = Input("add", description="the operation: a op b")

    outputs = (Output("result", "FLOAT"),)

    def run(self, a: float, b: float, op: str) -> dict:
        if op in ("divide", "modulo") and b == 0:
            raise NodeInputError("b", f"cannot {op} by zero; give b a non-zero value")
        a, b = float(a), float(b)       # whole numbers arrive as ints: 3 ** 10**12 would be computed exactly
        try:
            result = _FLOAT_OPS[op](a, b)
        except OverflowError:
            raise NodeInputError("b", f"{a} {op} {b} overflows a float; use smaller values") from None
        except ZeroDivisionError:                       # 0.0 to a negative power
            raise NodeInputError("b", f"0 cannot be raised to the negative power {b}; give a non-zero a or "
                                      f"b >= 0") from None
        if isinstance(result, complex):                 # a negative number to a fractional power
            raise NodeInputError("b", f"{a} {op} {b} is not a real number (a negative number to a fractional "
                                      f"power); use a >= 0 or a whole b")
        if not math.isfinite(result):                   # 1e300 * 1e300: inf, which no JSON record can hold
            raise NodeInputError("b", f"{a} {op} {b} overflows a float (the result is past ±1.8e308); use "
                                      f"smaller values")
        return {"result": float(result)}


class IntMath(Node):
    """Apply an arithmetic operation to two integers (division floors)."""

    category = "primitives/math"

    class Inputs(NodeInputs):
        a: int = Input(0, ge=INT_MIN, le=INT_MAX)
        b: int = Input(0, ge=INT_MIN, le=INT_MAX)
        op: MathOp = Input("add")

    outputs = (Output("result", "INT"),)

    def run(self, a: int, b: int, op: str) -> dict:
        if op in ("divide", "modulo") and b == 0:
            raise NodeInputError("b", f"cannot {op} by zero; give b a non-zero value")
        if op == "power" and (b < 0 or b > 4096):
            raise NodeInputError("b", f"integer power needs 0 <= b <= 4096, found {b}; use Math for floats")
        if op == "power" and abs(a) > 1 and (abs(a).bit_length() - 1) * b > 64:    # decided before computing it
            raise NodeInputError("b", f"{a} to the power {b} has over 64 bits, past INT's range "
                                      f"({INT_MIN} … {INT_MAX}); use a smaller power, or Math for floats")
        result = int(_INT_OPS[op](a, b))
        if not INT_MIN <= result <= INT_MAX:
            raise NodeInputError("a", f"{a} {op} {b} = {result} is past INT's range ({INT_MIN} … {INT_MAX}); "
                                      f"use smaller values, or Math for floats")
        return {"result": result}


_COMPARE_OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
                ">": operator.gt, ">=": operator.ge}


class Compare(Node):
    """Compare two numbers."""

    category = "primitives/math"

    class Inputs(NodeInputs):
        a: float = Input(0.0, ge=-BIG, le=BIG)
        b: float = Input(0.0, ge=-BIG, le=BIG)
        op: Literal["==", "!=", "<", "<=", ">", ">="] = Input("==")

    outputs = (Output("result", "BOOLEAN"),)

    def run(self, a: float, b: float, op: str) -> dict:
        return {"result": bool(_COMPARE_OPS[op](a, b))}


# FormatText's template language: plain {a} … {d} fields with a bounded standard format spec.
_FORMAT_FIELDS = ("a", "b", "c", "d")
_FORMAT_SPEC = re.compile(r"(?:(?P<fill>[^{}])?(?P<align>[<>=^]))?(?P<sign>[-+ ])?(?P<alternate>#)?(?P<zero>0)?"
                          r"(?P<width>\d+)?(?P<grouping>[,_])?(?:\.(?P<precision>\d+))?(?P<type>[bdeEfFgGosxX%])?")
MAX_FORMAT_WIDTH = 100
MAX_FORMAT_PRECISION = 20


def _check_format_spec(field: str, spec: str) -> None:
    """Refuse a format spec outside the allowed subset (see FormatText), naming the field."""
    match = _FORMAT_SPEC.fullmatch(spec)
    if match is None:
        raise NodeInputError("template", f"field {{{field}:{spec}}}: format spec {spec!r} is not allowed; use "
                                         f"[[fill]align][sign][#][0][width][,][.precision][type] with type one of "
                                         f"b d e E f F g G o s x X %, e.g. {{{field}:>8.2f}}")
    if match["fill"] is not None and unicodedata.category(match["fill"]) == "Cc":
        raise NodeInputError("template", f"field {{{field}}}: the fill character must be printable")
    width, precision = (match["width"] or "").lstrip("0"), (match["precision"] or "").lstrip("0")
    if len(width) > 3 or (width and int(width) > MAX_FORMAT_WIDTH):     # length first: int() of 5000 digits raises
        raise NodeInputError("template", f"field {{{field}}}: width {width[:12]} is over {MAX_FORMAT_WIDTH}; "
                                         f"pad with a smaller width")
    if len(precision) > 3 or (precision and int(precision) > MAX_FORMAT_PRECISION):
        raise NodeInputError("template", f"field {{{field}}}: precision {precision[:12]} is over "
                                         f"{MAX_FORMAT_PRECISION}")


def checked_template(template: str) -> list[tuple[str, str | None, str | None, str | None]]:
    """`template` parsed (string.Formatter().parse), each field checked as `format_template` requires;
    NodeInputError on "template" otherwise. Touches no value: validation runs it on a literal template."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise NodeInputError("template", f"{exc}; write literal braces as {{{{ and }}}}") from None
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in _FORMAT_FIELDS:
            raise NodeInputError("template", f"field {{{field}}} is not allowed: use only {{a}}, {{b}}, {{c}} or {{d}} "
                                             f"(no attributes, indexing or positional fields); write a literal brace "
                                             f"as {{{{ or }}}}")
        if conversion is not None:
            raise NodeInputError("template", f"field {{{field}!{conversion}}}: conversions (!r, !s, !a) are not "
                                             f"allowed; write {{{field}}}")
        _check_format_spec(field, spec or "")
    return parsed


def format_template(template: str, values: dict[str, Any], limit: int) -> str:
    """Fill `template`'s plain {a}…{d} fields; NodeInputError for anything else or a result over `limit` chars.

    The template is parsed with string.Formatter().parse and each field checked before any
    value is touched: only the names a, b, c, d (no attribute access, no indexing, no
    positional {} / {0}), no conversion (!r / !s / !a), and a format spec from the bounded
    subset above. Each value is formatted with format(value, spec), so nothing but the
    value's own __format__ runs.
    """
    pieces: list[str] = []
    size = 0
    for literal, field, spec, conversion in checked_template(template):
        pieces.append(literal)
        size += len(literal)
        if field is None:
            continue
        try:
            piece = format(values[field], spec or "")
        except (TypeError, ValueError) as exc:
            raise NodeInputError(field, f"cannot be formatted with {{{field}:{spec}}} "
                                        f"({type(values[field]).__name__}: {exc}); change the spec") from None
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            raise NodeInputError("template", f"the text would be over {limit} characters; shorten the template "
                                             f"or the values")
    if size > limit:
        raise NodeInputError("template", f"the text would be over {limit} characters; shorten the template")
    return "".join(pieces)


class FormatText(Node):
    """Fill a template such as "{a} cats and {b:.2f} dogs" with up to four values.

    Only plain fields {a}, {b}, {c}, {d} are allowed, each with an optional format spec
    ([[fill]align][sign][#][0][width][,][.precision][type]; width ≤ 100, precision ≤ 20;
    types b d e E f F g G o s x X %). Attribute access, indexing, positional fields and
    conversions are refused; the text is capped at 1 MiB like every STRING output.
    """

    category = "primitives/text"
    version = "1.1.0"

    class Inputs(NodeInputs):
        template: str = Input("{a}", multiline=True, max_length=100_000)
        a: Any = Input(None, port="*")
        b: Any = Input(None, port="*")
        c: Any = Input(None, port="*")
        d: Any = Input(None, port="*")

    outputs = (Output("text", "STRING"),)

    @classmethod
    def check_literals(cls, literals: dict[str, Any], list_model_files: Any) -> dict[str, str]:
        """A template with a field it would refuse fails at validation, not when the graph runs."""
        template = literals.get("template")
        if not isinstance(template, str):
            return {}
        try:
            checked_template(template)
        except NodeInputError as exc:
            return {"template": exc.message}
        return {}

    def run(self, template: str, a: Any, b: Any, c: Any, d: Any) -> dict:
        from nodegraph.executor import MAX_TEXT_OUTPUT_BYTES

        text = format_template(template, {"a": a, "b": b, "c": c, "d": d}, MAX_TEXT_OUTPUT_BYTES)
        return {"text": text}


class Switch(Node):
    """Pass on_true or on_false depending on condition; only the chosen branch runs."""

    category = "primitives/flow"

    class Inputs(NodeInputs):
        condition: bool = Input(True)
        on_true: Any = Input(None, port="*", lazy=True)
        on_false: Any = Input(None, port="*", lazy=True)

    outputs = (Output("value", "*"),)

    def lazy_inputs_needed(self, available: dict[str, Any]) -> list[str]:
        condition = available["condition"]
        if not isinstance(condition, bool):      # from a "*" output: run says what is wrong, no branch runs
            return []
        return ["on_true" if condition else "on_false"]

    def run(self, condition: bool, on_true: Any, on_false: Any) -> dict:
        if not isinstance(condition, bool):     # the text "false" is truthy: never guess
            raise NodeInputError("condition", f"expected true or false, found {type(condition).__name__} "
                                              f"{str(condition)[:40]!r}; link a BOOLEAN (e.g. from Compare)")
        return {"value": on_true if condition else on_false}


class RandomInt(Node):
    """A random integer in [low, high], different on every run (never cached)."""

    category = "primitives"
    deterministic = False

    class Inputs(NodeInputs):
        low: int = Input(0, ge=-(2**63), le=2**63 - 1)
        high: int = Input(2**32 - 1, ge=-(2**63), le=2**63 - 1)

    outputs = (Output("value", "INT"),)

    def run(self, low: int, high: int) -> dict:
        if high < low:
            raise NodeInputError("high", f"high ({high}) must be >= low ({low})")
        return {"value": random.randint(low, high)}


class Wait(Node):
    """Pass a value through after waiting; reports progress and can be interrupted."""

    category = "primitives/flow"

    class Inputs(NodeInputs):
        value: Any = Input(None, port="*")
        seconds: float = Input(1.0, ge=0.0, le=3600.0, step=0.1)

    outputs = (Output("value", "*"),)

    def run(self, value: Any, seconds: float) -> dict:
        steps = max(1, int(seconds / 0.01))
        for i in range(steps):
            time.sleep(seconds / steps)
            self.context.progress(i + 1, steps)
        return {"value": value}


class ShowValue(Node):
    """Record a value in the run's outputs (and show it in the editor / CLI)."""

    category = "primitives"
    output_node = True

    class Inputs(NodeInputs):
        value: Any = Input(port="*")

    outputs = (Output("value", "*"),)

    def run(self, value: Any) -> dict:
        return {"value": value, "text": _display(value)}


def _display(value: Any, limit: int = 2000) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype"):
        return f"{type(value).__name__}(shape={tuple(shape)}, dtype={value.dtype})"
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


@hookimpl
def register_nodes() -> list[type[Node]]:
    return [Int, Float, String, Boolean, Math, IntMath, Compare, FormatText, Switch, RandomInt, Wait, ShowValue]
