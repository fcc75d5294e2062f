"""Chaos: no value from any source may make /metrics fail (issue 15, item 1, the generic half).

The progress push is validated now, so no real input is known to reach the encoder with an unrenderable
value; these tests feed one straight to the real registry (a family holding ``10**400``, a collector
that raises) and check that every format still answers, without that family, and counts it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.metrics import SnapshotCollector
from exporter.metrics.exposition import MetricsRegistry
from exporter.snapshot import EMPTY, Snapshot
from tests.helpers import metric, parse_metrics

ACCEPTS = ["", "application/openmetrics-text; version=1.0.0",
           "text/plain;version=1.0.0;escaping=dots"]  # the last is written by prometheus_client itself


def good(snap: Snapshot) -> Iterator[Metric]:
    g = GaugeMetricFamily("iptv_good", "A family that renders.", labels=["stream"])
    g.add_metric(["7"], 1.5)
    yield g


def huge(snap: Snapshot) -> Iterator[Metric]:
    c = CounterMetricFamily("iptv_huge_frames", "A value no float holds.", labels=["stream"])
    c.add_metric(["7"], 10**400)
    yield c


def broken(snap: Snapshot) -> Iterator[Metric]:
    raise RuntimeError("a collect function that fails")
    yield  # pragma: no cover


class LiveBroken:
    def collect(self) -> Iterator[Metric]:
        raise OverflowError("int too large to convert to float")


@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("gzip", ["", "gzip"])
def test_unrenderable_family_is_dropped_and_counted(accept: str, gzip: str, caplog: pytest.LogCaptureFixture) -> None:
    registry = MetricsRegistry(SnapshotCollector(lambda: EMPTY, [good, huge, broken]), [LiveBroken()])
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            body, headers = registry.render(accept, gzip)
    if headers.get("Content-Encoding") == "gzip":
        import gzip as gz

        body = gz.decompress(body)
    text = body.decode()
    if "escaping=dots" in accept:  # prometheus_client writes every ``_`` as ``__`` under this escaping
        text = text.replace("__", "_")
    assert "TYPE iptv_huge_frames" not in text and "\niptv_huge_frames" not in text
    if "openmetrics" not in accept:
        samples = parse_metrics(text)
        assert metric(samples, "iptv_good", stream="7") == 1.5
        assert metric(samples, "iptv_exporter_render_errors_total", family="LiveBroken") == 2  # per scrape
    assert 'iptv_good{stream="7"} 1.5' in text
    assert 'iptv_exporter_render_errors_total{family="iptv_huge_frames"}' in text
    assert 'iptv_exporter_render_errors_total{family="test_chaos_render"}' in text  # the module of `broken`
    assert 'iptv_exporter_render_errors_total{family="LiveBroken"}' in text
    assert "metric family dropped from /metrics family=iptv_huge_frames" in caplog.text
