"""Wiring: builds the sampler, its sources, the metrics registry and the app's components from a Config.

This is the one place that knows which parts exist; each part stays ignorant of the others.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.actions import build_actions
from exporter.config import Config
from exporter.metrics import FAMILIES, Family, SnapshotCollector
from exporter.sampler import Sampler
from exporter.snapshot import Snapshot
from exporter.sources import Source
from exporter.sources.errorlogs import ErrorLogSource
from exporter.sources.hls import HlsSource
from exporter.sources.progress import ProgressSource, ProgressStore
from exporter.web.app import Component
from exporter.web.progress_push import ProgressPushReceiver


@dataclass
class Runtime:
    config: Config
    sampler: Sampler
    registry: CollectorRegistry
    components: list[Component] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)


def _node_family(config: Config) -> Family:
    def collect(snap: Snapshot) -> Iterator[Metric]:
        if config.egress_capacity_bits_per_second is not None:
            cap = GaugeMetricFamily(
                "iptv_node_egress_capacity_bits_per_second",
                "Configured uplink capacity of this node (egress_capacity_bits_per_second).",
            )
            cap.add_metric([], config.egress_capacity_bits_per_second)
            yield cap

    return collect


def build_runtime(config: Config) -> Runtime:
    sources: list[Source] = []
    families: list[Family] = [*FAMILIES, _node_family(config)]
    components: list[Component] = []
    links: list[tuple[str, str]] = []

    progress_store = ProgressStore(max_streams=config.progress.max_streams)
    sources += [ProgressSource(progress_store), HlsSource(), ErrorLogSource(config.errors)]
    if config.progress.push:
        components.append(ProgressPushReceiver(progress_store, config.progress))

    sampler = Sampler(config, sources)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: sampler.snapshot, families))
    if config.actions is not None:
        actions = build_actions(config, sampler)  # raises ActionsError: exit 1 before serving
        components.append(actions)
        registry.register(actions.metrics)
        links.append(("/api/actions", "Action journal (bearer token)"))
    return Runtime(config, sampler, registry, components, links)
