"""Helpers for testing nodes and plugins (imported by tests only; never by a running graph).

    RealAllocations   a torch function mode counting the elements that tensor factories
                      (empty / zeros / ones) create off the meta device: a test wraps a loader
                      in it to show that a crafted file is refused before any real memory is
                      allocated (a header may declare a network of any size).
"""

from __future__ import annotations

from typing import Any

import torch


class RealAllocations(torch.overrides.TorchFunctionMode):
    """`with RealAllocations() as counter: ...` then `counter.elements`: elements made off the meta device."""

    FACTORIES = ("empty", "zeros", "ones")

    def __init__(self) -> None:
        super().__init__()
        self.elements = 0

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        result = func(*args, **(kwargs or {}))
        if (getattr(func, "__name__", "") in self.FACTORIES and isinstance(result, torch.Tensor)
                and not result.is_meta):
            self.elements += result.numel()
        return result
