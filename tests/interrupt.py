"""Interrupting a training loop at a given step, for the resume tests (`stop_at`)."""

from __future__ import annotations

from typing import Any, Callable


class StopTraining(Exception):
    """Raised by `stop_at`'s progress callback: the loop stops as a crash would, after its last checkpoint."""


def stop_at(step: int) -> Callable[[int, int, Any], None]:
    """A progress callback (step, total, info) that raises StopTraining when the loop reports `step`."""

    def progress(current: int, total: int, info: Any) -> None:
        if current == step:
            raise StopTraining

    return progress
