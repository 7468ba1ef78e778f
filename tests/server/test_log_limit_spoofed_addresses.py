"""The proxy's log cap holds against made-up forwarded addresses (hostile5, finding 4): `LimitedLog` forgot its
oldest kind past MAX_KINDS, and the oldest was the proxy's own `within` kind, so every 4,096 spoofed
X-Forwarded-For values reset its 50-line cap (200 refusal lines in 5 s)."""

from __future__ import annotations

import logging

from nodegraph.protocol import LimitedLog


def collecting_logger(name: str) -> tuple[logging.Logger, list[str]]:
    """A logger that keeps its lines in the list returned beside it."""
    lines: list[str] = []
    logger = logging.getLogger(name)
    logger.handlers = [type("Collect", (logging.Handler,), {"emit": lambda self, r: lines.append(r.getMessage())})()]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, lines


def test_twelve_thousand_spoofed_addresses_log_at_most_the_proxys_cap():
    """12,500 forwarded addresses through one proxy within a minute: at most burst × WITHIN_BURSTS lines."""
    limited = LimitedLog(clock=lambda: 0.0)
    logger, lines = collecting_logger("test.spoofed.proxy")
    for n in range(12_500):
        limited.log(logger, logging.WARNING, f"token 10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}",
                    "refused a request from %s", n, within="token 127.0.0.1 proxied")
    assert len(lines) == limited.burst * LimitedLog.WITHIN_BURSTS


def test_a_within_kind_is_forgotten_only_among_within_kinds():
    """Past MAX_KINDS, new kinds forget old kinds, never a `within` kind: its count (and what it left out) stays."""
    limited = LimitedLog(burst=1, clock=lambda: 0.0)
    logger, lines = collecting_logger("test.spoofed.within")
    limited.MAX_KINDS = 8
    for n in range(100):
        limited.log(logger, logging.WARNING, f"client {n}", "line %s", n, within="proxy")
    assert lines == [f"line {n}" for n in range(LimitedLog.WITHIN_BURSTS)]
