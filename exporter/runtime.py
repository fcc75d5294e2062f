"""Wiring: builds the sampler, its sources, the metrics registry and the app's components from a Config.

This is the one place that knows which parts exist; each part stays ignorant of the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from exporter.actions import build_actions
from exporter.config import Config
from exporter.geo import Geo
from exporter.inventory import Inventory
from exporter.linesample import read_key, sample_lines
from exporter.metrics import FAMILIES, Family, SnapshotCollector
from exporter.metrics.exposition import MetricsRegistry
from exporter.metrics.geoip import GeoIPCollector
from exporter.sampler import Sampler
from exporter.snapshot import Snapshot
from exporter.sources import Source
from exporter.sources.accesslog import AccessLogSource
from exporter.sources.errorlogs import ErrorLogSource
from exporter.sources.hls import HlsSource
from exporter.sources.paneldb import PanelDbSource
from exporter.sources.processes import PROC_ROOT, ProcessesSource
from exporter.sources.progress import ProgressSource, ProgressStore
from exporter.sources.sockets import SocketDump, SocketsSource
from exporter.sources.statslog import StatsLogSource
from exporter.streamstate import StreamMemory, state_path
from exporter.web.app import Component
from exporter.web.progress_push import ProgressPushReceiver
from exporter.web.viewers_api import ViewersApi, read_only_token

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    config: Config
    sampler: Sampler
    registry: MetricsRegistry
    components: list[Component] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)


def _node_family(config: Config) -> Family:
    def collect(snap: Snapshot) -> Iterator[Metric]:
        # Not label `node`: Prometheus's target label of that name would turn it into `exported_node`.
        info = GaugeMetricFamily(
            "iptv_exporter_node_info",
            "Always 1; node_name is this exporter's config `node`, which alerts' `node` label must equal.",
            labels=["node_name"],
        )
        info.add_metric([config.node], 1)
        yield info
        if config.egress_capacity_bits_per_second is not None:
            cap = GaugeMetricFamily(
                "iptv_node_egress_capacity_bytes_per_second",
                "Configured uplink capacity of this node (config egress_capacity_bits_per_second / 8).",
            )
            cap.add_metric([], config.egress_capacity_bits_per_second / 8)
            yield cap

    return collect


def self_collectors() -> list[Collector]:
    """The process's own ``process_*`` and ``python_*`` metrics, as every client_python exporter serves them.

    Created unregistered (``registry=None``): the exporter's registry is its own, never the global one.
    """
    # GCCollector always registers itself: give it a registry of its own that nothing serves.
    return [ProcessCollector(registry=None), PlatformCollector(registry=None),
            GCCollector(registry=CollectorRegistry())]


def _line_sample_family(config: Config) -> Family | None:
    """``iptv_lines_sampled``: the keyed-hash sample of the lines online (exporter/linesample.py), when the fleet
    key is configured. The key is read once, at start-up: a missing or empty file stops the exporter."""
    path = config.viewers.sharing.fleet_key_file
    if path is None or config.viewers.access_log is None:
        return None
    key = read_key(path)

    def collect(snap: Snapshot) -> Iterator[Metric]:
        log = snap.accesslog
        sampled = GaugeMetricFamily(
            "iptv_lines_sampled",
            "1 for each online line in the fleet-wide keyed-hash sample (1/64 of lines); the label is 32 bits "
            "of the hash, never the line.", labels=["line_hash"],
        )
        for value in sample_lines(log.client_lines.values(), key) if log is not None else ():
            sampled.add_metric([value], 1)
        yield sampled

    return collect


def build_runtime(
    config: Config,
    *,
    proc_root: str | None = PROC_ROOT,
    socket_dump: SocketDump | None = None,
    clock: Callable[[], float] = time.time,
    freeze_heap: bool = False,
) -> Runtime:
    """Every part the config asks for, wired. The keyword arguments are the host the parts look at: the real
    one by default; the golden test (tests/test_golden.py) passes a captured /proc, a recorded sock_diag dump
    and a fixed clock, so the whole pipeline runs on a known host."""
    sources: list[Source[object]] = []
    families: list[Family] = [*FAMILIES, _node_family(config)]
    line_sample = _line_sample_family(config)
    if line_sample is not None:
        families.append(line_sample)
    components: list[Component] = []
    links: list[tuple[str, str]] = []

    progress_store = ProgressStore(max_streams=config.progress.max_streams)
    sources += [ProgressSource(progress_store), HlsSource(), ErrorLogSource(config.errors)]
    if config.progress.push:
        components.append(ProgressPushReceiver(progress_store, config.progress))
    if config.progress.stats_log is not None:
        sources.append(StatsLogSource(config.progress.stats_log))
    geo = Geo(config.geo)  # shared by the viewer sources and the viewer API; refreshed once per round
    if config.viewers.ports:
        sources.append(SocketsSource(config, geo.lookup, geo.refresh, dump=socket_dump))
    if config.viewers.access_log is not None:
        sources.append(AccessLogSource(config, geo.lookup, refresh=None if config.viewers.ports else geo.refresh))
    if config.viewers.panel_db is not None:
        sources.append(PanelDbSource(config, geo.lookup, refresh=None if config.viewers.ports else geo.refresh))
    elif config.profile in ("xui", "xtream") and config.viewers.access_log is None:
        # Their nginx logs nothing: without the panel's table there is no one to count per stream.
        log.warning("profile %s without viewers.panel_db: no viewers per stream, lines or sharing "
                    "(docs/sources.md#panel_db)", config.profile)

    state = state_path(config)  # discovered streams remembered across restarts (docs/inventory.md)
    processes = ProcessesSource(config, proc_root, memory=StreamMemory(state) if state is not None else None,
                                clock=clock)
    sampler = Sampler(config, processes, Inventory(config), sources, clock, freeze_heap=freeze_heap)
    registry = MetricsRegistry(SnapshotCollector(lambda: sampler.snapshot, families))
    for self_collector in self_collectors():
        registry.register(self_collector)
    registry.register(GeoIPCollector(geo.databases, config.geo.max_age))
    webhook_token = None
    if config.actions is not None:
        actions = build_actions(config, sampler)  # raises ActionsError: exit 1 before serving
        components.append(actions)
        registry.register(actions.metrics)
        links.append(("/api/actions", "Action journal (bearer token)"))
        webhook_token = actions.receiver.token  # read once, shared with the viewer API
    viewer_token = read_only_token(config, webhook_token)  # raises TokenFileError: exit 1 before serving
    tokens = [t for t in (viewer_token, webhook_token) if t is not None]
    if tokens:
        components.append(ViewersApi(lambda: sampler.snapshot, tokens, geo.lookup))
        links.append(("/api/connections", "Live viewers (bearer token)"))
    if viewer_token is None and webhook_token is not None:
        log.info("viewer API opened by the webhook token only: give Grafana (or any reader of live viewers) a "
                 "read-only viewers.api.token_file instead (docs/security.md#who-holds-it)")
    return Runtime(config, sampler, registry, components, links)
