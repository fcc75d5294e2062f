"""The exporter's own health: build info, and success and duration of each source."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.buildinfo import build_info
from exporter.snapshot import Snapshot


def collect(snap: Snapshot) -> Iterator[Metric]:
    build = build_info()
    info = GaugeMetricFamily(
        "iptv_exporter_build_info",
        "A metric with a constant '1' value labeled by version, revision, branch, and pythonversion from which "
        "iptv-exporter was built.",
        labels=["version", "revision", "branch", "pythonversion"],
    )
    info.add_metric([build.version, build.revision, build.branch, build.python_version], 1)
    yield info
    up = GaugeMetricFamily(
        "iptv_exporter_source_up", "1 if the source's last sample succeeded, else 0.", labels=["source"]
    )
    duration = GaugeMetricFamily(
        "iptv_exporter_source_duration_seconds", "Time the source's last sample took.", labels=["source"]
    )
    for status in snap.statuses:
        up.add_metric([status.name], 1 if status.up else 0)
        duration.add_metric([status.name], status.duration_seconds)
    yield up
    yield duration
    last = GaugeMetricFamily(
        "iptv_exporter_last_sample_timestamp_seconds", "When the snapshot being served was taken."
    )
    last.add_metric([], snap.timestamp)
    yield last
