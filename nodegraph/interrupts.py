"""Interrupt points inside one node's long computation.

A node checks for an interrupt with `self.context.check_interrupted()` between its own steps (a sampler's
step, a VAE tile). Library code deeper down — a UNet's forward pass, which one sampler step may spend
minutes in at a large size — has no context; it calls `interrupt_point()` between its blocks instead. The
executor makes the running node's check the current one (`CURRENT_CHECK`) while its `run` executes, so an
interrupt (a user's, or a server's run-time limit) stops the run at the next block; outside a run (a
script calling the model directly) `interrupt_point()` does nothing. A ContextVar, so each thread (a
server's worker, a Ray actor) sees only its own run.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Callable

CURRENT_CHECK: ContextVar[Callable[[], None] | None] = ContextVar("nodegraph_interrupt_check", default=None)


def interrupt_point() -> None:
    """Raise RunInterrupted if the run executing in this thread was asked to stop; else nothing (cheap)."""
    check = CURRENT_CHECK.get()
    if check is not None:
        check()

