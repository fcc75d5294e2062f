"""The only place that knows metric names: turns the latest Snapshot into metric families, with no I/O.

One module per area (``streams``, ``exporter``, ...); each exposes ``collect(snapshot)``. Parts that keep
their own state outside the snapshot (the action policy) register their own collector in the app's
registry instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from exporter.metrics import exporter as exporter_metrics
from exporter.metrics import health as health_metrics
from exporter.metrics import streams as stream_metrics
from exporter.metrics import viewers as viewer_metrics
from exporter.snapshot import Snapshot

Family = Callable[[Snapshot], Iterable[Metric]]

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

    def describe(self) -> Iterable[Metric]:
        return []  # registering must not sample

    def latest(self) -> Snapshot:
        return self._get()

    def collect_from(self, snap: Snapshot) -> Iterator[Metric]:
        for family in self._families:
            yield from family(snap)

    def collect(self) -> Iterator[Metric]:
        yield from self.collect_from(self._get())
