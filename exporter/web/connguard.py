"""A cap on concurrent connections, and a deadline for a request's head: what uvicorn lacks for slow clients.

uvicorn accepts every connection and waits for a request head for ever (its keep-alive timeout starts only
after a first response), so connections that send half a head and stop hold a descriptor each until the
process runs out. Here (as a subclass of uvicorn's httptools protocol):

- a request head must be complete within ``header_timeout`` of its first byte (or of the connection);
- past ``max_connections``, a new connection closes the oldest one that is not in a request (still waiting
  for its head, or idle between keep-alive requests); when every connection is busy in a request (ffmpeg's
  progress pushes, scrapes), the new one is closed instead. So a flood of slow clients cannot lock out a
  scrape or the webhook, and the descriptors in use stay below the cap plus the sampler's reserve
  (:mod:`exporter.web.limits`).

Prometheus caps connections the same way (``--web.max-connections``, default 512), with a listener that
stops accepting; evicting the oldest idle connection keeps fresh clients served during a flood.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

HEADER_TIMEOUT = 10.0
"""Seconds for a request head to arrive in full (exporter-toolkit's servers use a read-header timeout too)."""
DEFAULT_MAX_CONNECTIONS = 512
REASONS = ("evicted", "refused", "header_timeout")


class ConnectionGuard:
    """Shared by every connection of one server: the idle ones in age order, and what was dropped."""

    def __init__(self, max_connections: int = DEFAULT_MAX_CONNECTIONS, header_timeout: float = HEADER_TIMEOUT) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.open = 0
        self.idle: OrderedDict[Any, None] = OrderedDict()
        """Connections not in a request (waiting for a head, or between requests), oldest first."""
        self.dropped = dict.fromkeys(REASONS, 0)
        self._lock = threading.Lock()  # read by the metrics render in a worker thread

    def count(self, reason: str) -> None:
        with self._lock:
            self.dropped[reason] += 1

    def protocol(self) -> type[HttpToolsProtocol]:
        """uvicorn's ``http`` protocol class, bound to this guard."""
        guard = self

        class Guarded(GuardedHttpToolsProtocol):
            pass

        Guarded.guard = guard
        return Guarded

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            dropped = dict(self.dropped)
        open_ = GaugeMetricFamily("iptv_exporter_http_connections", "HTTP connections open now.")
        open_.add_metric([], self.open)
        cap = GaugeMetricFamily("iptv_exporter_http_connections_max",
                                "The connection cap in effect (--web.max-connections, within the fd limit).")
        cap.add_metric([], self.max_connections)
        closed = CounterMetricFamily(
            "iptv_exporter_http_connections_dropped",
            "Connections closed by the server's guard: evicted (oldest idle one, for a new one past the cap), "
            "refused (past the cap with every connection in a request), header_timeout (request head too slow).",
            labels=["reason"],
        )
        for reason in REASONS:
            closed.add_metric([reason], dropped[reason])
        yield from (open_, cap, closed)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    guard: ConnectionGuard
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        guard = self.guard
        guard.open += 1
        if guard.open > guard.max_connections:
            victim = next(iter(guard.idle), None)
            if victim is None:
                guard.count("refused")
                transport.abort()
                return
            guard.count("evicted")
            victim.drop()
        self._wait_for_head()

    def _wait_for_head(self) -> None:
        self.guard.idle[self] = None
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.guard.header_timeout, self._head_too_slow)

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.guard.count("header_timeout")
            self.drop()

    def drop(self) -> None:
        self._forget()
        self.transport.abort()

    def _forget(self) -> None:
        self.guard.idle.pop(self, None)
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        self.guard.open -= 1
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:  # a keep-alive connection's next request: its head has a deadline too
            self._head_timer = self.loop.call_later(self.guard.header_timeout, self._head_too_slow)

    def on_headers_complete(self) -> None:
        self._forget()  # in a request now: never evicted, and a body may take as long as it needs
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self.guard.idle[self] = None  # idle until the next request (uvicorn's keep-alive timeout runs)
