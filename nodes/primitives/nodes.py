"""Primitive nodes: constants, arithmetic, comparison, text, a lazy Switch, outputs.

    Int, Float, String, Boolean   constants → value
    Math                          a (op) b → FLOAT; op in add, subtract, multiply, divide, power, modulo, min, max
    IntMath                       the same on integers → INT (division floors)
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
import time
from typing import Any, Literal

from nodegraph import Input, Node, NodeInputError, NodeInputs, Output, hookimpl

BIG = 1e300


class Int(Node):
    """An integer constant."""

    category = "primitives"

    class Inputs(NodeInputs):
        value: int = Input(0, ge=-(2**63), le=2**64 - 1, step=1)

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
        try:
            result = float(_FLOAT_OPS[op](a, b))
        except OverflowError:
            raise NodeInputError("b", f"{a} {op} {b} overflows a float; use smaller values") from None
        if isinstance(result, complex) or result != result:
            raise NodeInputError("a", f"{a} {op} {b} is not a real number")
        return {"result": result}


class IntMath(Node):
    """Apply an arithmetic operation to two integers (division floors)."""

    category = "primitives/math"

    class Inputs(NodeInputs):
        a: int = Input(0, ge=-(2**63), le=2**63 - 1)
        b: int = Input(0, ge=-(2**63), le=2**63 - 1)
        op: MathOp = Input("add")

    outputs = (Output("result", "INT"),)

    def run(self, a: int, b: int, op: str) -> dict:
        if op in ("divide", "modulo") and b == 0:
            raise NodeInputError("b", f"cannot {op} by zero; give b a non-zero value")
        if op == "power" and (b < 0 or b > 4096):
            raise NodeInputError("b", f"integer power needs 0 <= b <= 4096, found {b}; use Math for floats")
        return {"result": int(_INT_OPS[op](a, b))}


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


class FormatText(Node):
    """Fill a template such as "{a} cats and {b} dogs" with up to four values."""

    category = "primitives/text"

    class Inputs(NodeInputs):
        template: str = Input("{a}", multiline=True, max_length=100_000)
        a: Any = Input(None, port="*")
        b: Any = Input(None, port="*")
        c: Any = Input(None, port="*")
        d: Any = Input(None, port="*")

    outputs = (Output("text", "STRING"),)

    def run(self, template: str, a: Any, b: Any, c: Any, d: Any) -> dict:
        try:
            return {"text": template.format(a=a, b=b, c=c, d=d)}
        except (KeyError, IndexError) as exc:
            raise NodeInputError("template", f"unknown placeholder {exc}; use {{a}}, {{b}}, {{c}} or {{d}}") from None
        except (ValueError, AttributeError) as exc:
            raise NodeInputError("template", f"{exc}; write literal braces as {{{{ and }}}}") from None


class Switch(Node):
    """Pass on_true or on_false depending on condition; only the chosen branch runs."""

    category = "primitives/flow"

    class Inputs(NodeInputs):
        condition: bool = Input(True)
        on_true: Any = Input(None, port="*", lazy=True)
        on_false: Any = Input(None, port="*", lazy=True)

    outputs = (Output("value", "*"),)

    def lazy_inputs_needed(self, available: dict[str, Any]) -> list[str]:
        return ["on_true" if available["condition"] else "on_false"]

    def run(self, condition: bool, on_true: Any, on_false: Any) -> dict:
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
