"""Interrupt points inside one node's long computation.

A node checks for an interrupt with `self.context.check_interrupted()` between its own steps (a sampler's
step, a VAE tile). Library code deeper down — a UNet's forward pass, which one sampler step may spend
minutes in at a large size — has no context; it calls `interrupt_point()` between its blocks instead. The
executor makes the running node's check the current one (`CURRENT_CHECK`) while its `run` executes, so an
interrupt (a user's, or a server's run-time limit) stops the run at the next block; outside a run (a
script calling the model directly) `interrupt_point()` does nothing. A ContextVar, so each thread (a
server's worker, a Ray actor) sees only its own run.

Ctrl+C is told apart from a node's own `raise KeyboardInterrupt` (a plugin bug, or a library such as tqdm or
cv2 passing one on) by the signal: while a graph runs on the main thread, `noting_ctrl_c` notes each SIGINT the
process receives before the handler that was there raises KeyboardInterrupt, and `nodegraph run`'s SIGTERM
handler notes its SIGTERM so. A KeyboardInterrupt from a node with no stop signal noted during its run
is that node's failure (`NodeExecutionError`), not the user's stop.

A node that never checks runs on past an interrupt until it ends. `NodeChecks` counts the checks of the node a
run is executing, so a server can tell its user so (`Session.running_node_checks`, the `interrupting` reply).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterator

CURRENT_CHECK: ContextVar[Callable[[], None] | None] = ContextVar("nodegraph_interrupt_check", default=None)

_stop_signals_received = 0      # SIGINTs (Ctrl+C) and handled SIGTERMs noted in this process


def note_stop_signal() -> None:
    """Note that the process received a stop signal; a signal handler that raises KeyboardInterrupt calls it
    first, so the executor reads that KeyboardInterrupt as the user's stop, not as the running node's failure."""
    global _stop_signals_received
    _stop_signals_received += 1


def stop_signals_received() -> int:
    """How many stop signals this process has noted: a node's run saw one when the count grew meanwhile."""
    return _stop_signals_received


@contextmanager
def noting_ctrl_c() -> Iterator[None]:
    """While it lasts, on the main thread, each SIGINT is noted (`note_stop_signal`) and then handled by the
    handler that was there (Python's raises KeyboardInterrupt); elsewhere, or with SIGINT ignored, it does
    nothing. The handler is put back after, unless something else replaced it meanwhile."""
    previous = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    if previous is None or previous is signal.SIG_IGN:     # another thread, a handler set in C, or ignored
        yield
        return

    def noted(signum: int, frame: Any) -> Any:
        note_stop_signal()
        if callable(previous):
            return previous(signum, frame)
        raise KeyboardInterrupt       # SIG_DFL: the process would have ended; stop the run instead

    installed = True
    try:
        signal.signal(signal.SIGINT, noted)
    except ValueError:                # not the main interpreter: no handler of ours to put back
        installed = False
    try:
        yield
    finally:
        if installed and signal.getsignal(signal.SIGINT) is noted:
            signal.signal(signal.SIGINT, previous)


class NodeChecks:
    """How often the node a run is executing has checked for an interrupt since it started: `node_id` (None
    between nodes) and `count`. The executor resets it as each node starts (`started`), counts every check
    while the node runs (`context.check_interrupted`, `progress`, `interrupt_point`) and clears the node when
    it ends (`ended`); another thread reads `running()`. One int increment per check and no lock: a check sits
    in a sampler's steps and a UNet's blocks; a reader that races a node's start may at worst see the node
    before it with the new node's count."""

    __slots__ = ("node_id", "count")

    def __init__(self) -> None:
        self.node_id: str | None = None
        self.count = 0

    def started(self, node_id: str) -> None:
        """`node_id` starts running: its count begins at 0 (reset before the id is set, so a reader that sees
        the new id never gets the count of the node before it)."""
        self.count = 0
        self.node_id = node_id

    def ended(self) -> None:
        """The running node ended: until the next starts, the run is between nodes (where it checks anyway)."""
        self.node_id = None

    def running(self) -> tuple[str, int] | None:
        """(node id, checks since it started) of the node running now; None between nodes."""
        node_id, count = self.node_id, self.count
        return None if node_id is None else (node_id, count)


def interrupt_point() -> None:
    """Raise RunInterrupted if the run executing in this thread was asked to stop; else nothing (cheap)."""
    check = CURRENT_CHECK.get()
    if check is not None:
        check()

