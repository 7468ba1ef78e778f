"""The event stream: what happens during a run, as small typed records.

One stream feeds the CLI progress bar, the websocket server and the tests.
Every event has `type` and `run_id`; `to_dict()` gives the JSON form
(documented in docs/executor.md, "Events", and, for the server, docs/protocol.md).

    run_started      nodes (ids that may run, in order), total, skipped (muted + dependents)
    node_started     node_id, node_type
    node_cached      node_id, node_type
    node_progress    node_id, value, total, preview (an image or None; not in to_dict), info (dict or None)
    node_finished    node_id, node_type, seconds, peak_memory_bytes (None if unknown)
    node_error       node_id, node_type, exception_type, message, traceback
    node_warning     node_id, node_type, message (the node ran, but something deserves the user's eye)
    run_finished     seconds, executed, cached
    run_failed       node_id, message
    run_interrupted  node_id (the node that was running, or None)

Subscribers are plain callables `fn(event)` (`Session.run` / `subscribe` refuse
anything else with a TypeError); a subscriber that raises is logged and never
breaks the run. Events are emitted on the thread running the graph, while the
session's run lock is held: a subscriber that calls `run()` on the same session
gets a RuntimeError (logged) — start the next run after `run()` returns, from
another thread, or on another Session.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, ClassVar

log = logging.getLogger("nodegraph.events")


@dataclass(frozen=True, slots=True)
class Event:
    type: ClassVar[str] = "event"
    run_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **asdict(self)}


@dataclass(frozen=True, slots=True)
class RunStarted(Event):
    type: ClassVar[str] = "run_started"
    nodes: tuple[str, ...] = ()
    total: int = 0
    skipped: tuple[str, ...] = ()     # muted nodes and their dependents (docs/graph-format.md)


@dataclass(frozen=True, slots=True)
class NodeStarted(Event):
    type: ClassVar[str] = "node_started"
    node_id: str = ""
    node_type: str = ""


@dataclass(frozen=True, slots=True)
class NodeCached(Event):
    type: ClassVar[str] = "node_cached"
    node_id: str = ""
    node_type: str = ""


@dataclass(frozen=True, slots=True)
class NodeProgress(Event):
    type: ClassVar[str] = "node_progress"
    node_id: str = ""
    value: int = 0
    total: int = 0
    preview: Any = field(default=None, compare=False)
    info: dict | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"type": self.type, "run_id": self.run_id, "node_id": self.node_id,
               "value": self.value, "total": self.total, "has_preview": self.preview is not None}
        if self.info:
            out["info"] = self.info
        return out


@dataclass(frozen=True, slots=True)
class NodeFinished(Event):
    type: ClassVar[str] = "node_finished"
    node_id: str = ""
    node_type: str = ""
    seconds: float = 0.0
    peak_memory_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class NodeErrored(Event):
    type: ClassVar[str] = "node_error"
    node_id: str = ""
    node_type: str = ""
    exception_type: str = ""
    message: str = ""
    traceback: str = ""


@dataclass(frozen=True, slots=True)
class NodeWarning(Event):
    type: ClassVar[str] = "node_warning"
    node_id: str = ""
    node_type: str = ""
    message: str = ""
    cached: bool = False       # given again with a result served from the cache (the node did not run now)


@dataclass(frozen=True, slots=True)
class RunFinished(Event):
    type: ClassVar[str] = "run_finished"
    seconds: float = 0.0
    executed: tuple[str, ...] = ()
    cached: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RunFailed(Event):
    type: ClassVar[str] = "run_failed"
    node_id: str | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class RunInterruptedEvent(Event):
    type: ClassVar[str] = "run_interrupted"
    node_id: str | None = None


EventSink = Callable[[Event], None]


def no_events(event: Event) -> None:
    """The default sink: ignore events."""


def fan_out(sinks: list[EventSink]) -> EventSink:
    """One sink that calls each of `sinks`, logging (not raising) subscriber errors."""
    if not sinks:
        return no_events
    if len(sinks) == 1:
        only = sinks[0]

        def single(event: Event) -> None:
            try:
                only(event)
            except Exception:  # noqa: BLE001 — a subscriber must not break the run
                log.exception("event subscriber %r failed on %s", only, event.type)
        return single

    def emit(event: Event) -> None:
        for sink in sinks:
            try:
                sink(event)
            except Exception:  # noqa: BLE001
                log.exception("event subscriber %r failed on %s", sink, event.type)
    return emit
