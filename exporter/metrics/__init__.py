"""The only place that knows metric names: turns the latest Snapshot into metric families, with no I/O.

One module per area (``streams``, ``exporter``, ...); each exposes ``collect(snapshot)``. Parts that keep
their own state outside the snapshot (the action policy) register their own collector in the app's
registry instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from exporter.metrics import exporter as exporter_metrics
from exporter.metrics import health as health_metrics
from exporter.metrics import streams as stream_metrics
from exporter.metrics import viewers as viewer_metrics
from exporter.snapshot import Snapshot

log = logging.getLogger(__name__)

Family = Callable[[Snapshot], Iterable[Metric]]
ErrorSink = Callable[[str, BaseException], None]
"""Told (family or module name, exception) when part of a render fails; the rest is served."""

FAMILIES: list[Family] = [
    exporter_metrics.collect,
    stream_metrics.collect,
    health_metrics.collect,
    viewer_metrics.collect,
]


class SnapshotCollector(Collector):
    """The families of whatever snapshot ``get_snapshot`` returns (``exposition.MetricsRegistry`` encodes them
    once per snapshot)."""

    def __init__(self, get_snapshot: Callable[[], Snapshot], families: Iterable[Family] = FAMILIES) -> None:
        self._get = get_snapshot
        self._families = list(families)
        self.on_error: ErrorSink = _log_error
        """Where a failing ``collect`` is reported (``exposition.MetricsRegistry`` counts it)."""

    def describe(self) -> Iterable[Metric]:
        return []  # registering must not sample

    def latest(self) -> Snapshot:
        return self._get()

    def collect_from(self, snap: Snapshot) -> Iterator[Metric]:
        """Every family of ``snap``; a ``collect`` that raises loses its own families, not the others'."""
        for family in self._families:
            try:
                metrics = list(family(snap))
            except Exception as exc:  # noqa: BLE001 - no value from any source may fail the whole scrape
                self.on_error(family.__module__.rsplit(".", 1)[-1], exc)
                continue
            yield from metrics

    def collect(self) -> Iterator[Metric]:
        yield from self.collect_from(self._get())


def _log_error(name: str, exc: BaseException) -> None:
    log.error("metric family dropped family=%s error=%s", name, type(exc).__name__, exc_info=exc)
