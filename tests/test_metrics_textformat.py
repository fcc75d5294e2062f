"""Our text and OpenMetrics encoder writes exactly the bytes prometheus_client writes, family by family."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from prometheus_client import Counter, Gauge, Histogram, Info, Summary
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    StateSetMetricFamily,
    SummaryMetricFamily,
    UnknownMetricFamily,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import ALLOWUTF8
from prometheus_client.openmetrics.exposition import generate_latest as om_latest
from prometheus_client.samples import Exemplar

from exporter.metrics import textformat as tf

VALUES = [0, 1, -1, 0.0, -0.0, 0.1, 1 / 3, 2.5e-7, 5e-324, 123456.789, 999999.9999, 1e6, 1_000_000.5, 1234567,
          1.7e9, 1764172800.123, 2**53 + 1, 1.5e300, -1e6, -12345678.9, math.inf, -math.inf, math.nan, True, 42]


class Families:
    def __init__(self, *metrics: Metric) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self.metrics


def assert_same(*metrics: Metric) -> None:
    blocks = tf.Encoder().blocks(metrics)
    assert tf.text(blocks) == generate_latest(Families(*metrics)).decode()
    assert tf.openmetrics(blocks) == om_latest(Families(*metrics)).decode()  # type: ignore[no-untyped-call]
    if all(b.plain for b in blocks):  # the cache serves allow-utf-8 from the same bytes
        assert tf.text(blocks) == generate_latest(Families(*metrics), escaping=ALLOWUTF8).decode()
        assert tf.openmetrics(blocks) == om_latest(Families(*metrics), escaping=ALLOWUTF8).decode()  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("value", VALUES)
def test_values_are_written_as_go_writes_them(value: float) -> None:
    g = GaugeMetricFamily("iptv_x", "x", labels=["stream"])
    g.add_metric(["1"], value)
    g.add_metric(["2"], value)
    c = CounterMetricFamily("iptv_y", "y", labels=["stream"])
    c.add_metric(["1"], value)
    assert_same(g, c)


def test_per_stream_families_as_the_snapshot_makes_them() -> None:
    up = GaugeMetricFamily("iptv_stream_up", "1 if \"up\"\\ else\n0.", labels=["stream"])
    info = GaugeMetricFamily("iptv_stream_info", "Info.", labels=["stream", "name"])
    responses = CounterMetricFamily("iptv_stream_http_responses", "By class.", labels=["stream", "code"])
    cpu = CounterMetricFamily("iptv_stream_cpu", "CPU.", labels=["stream"], unit="seconds")
    for i, value in enumerate(VALUES):
        up.add_metric([str(i)], value)
        info.add_metric([str(i), f'Näme "{i}" \\ with\nnewline'], 1)
        for code in ("2xx", "3xx", "4xx", "5xx"):
            responses.add_metric([str(i), code], i * 1000)
        cpu.add_metric([str(i)], value)
    cities = GaugeMetricFamily("iptv_connections_city", "By city.", labels=["country", "city", "latitude", "longitude"])
    cities.add_metric(["DE", "Köln", "50.94", "6.96"], 3)
    cities.add_metric(["", "", "", ""], 0)
    assert_same(up, info, responses, cpu, cities, GaugeMetricFamily("iptv_empty", "No samples.", labels=["stream"]),
                GaugeMetricFamily("iptv_one", "No labels.", value=7), CounterMetricFamily("iptv_c", "c", value=2))


def test_histograms_summaries_and_mixed_families() -> None:
    h = HistogramMetricFamily("iptv_viewer_session_duration_seconds", "Sessions.")
    h.add_metric([], [("1.0", 2.0), ("60.0", 5.0), ("+Inf", 9.0)], 1234.5)
    hl = HistogramMetricFamily("iptv_h", "h", labels=["action"])
    hl.add_metric(["restart"], [("0.1", 0.0), ("+Inf", 1.0)], 0.05)
    s = SummaryMetricFamily("iptv_s", "s", labels=["a"])
    s.add_metric(["x"], count_value=3, sum_value=1.5)
    u = UnknownMetricFamily("iptv_u", "u", value=1)
    mixed = GaugeMetricFamily("iptv_mixed", "Labels differ between samples.", labels=["a"])
    mixed.add_metric(["1"], 1)
    mixed.add_sample("iptv_mixed", {"b": "2", "a": "1"}, 2)
    assert_same(h, hl, s, u, mixed)


def test_families_off_the_fast_path_are_written_by_the_client() -> None:
    timestamped = GaugeMetricFamily("iptv_ts", "With a timestamp.", labels=["stream"])
    timestamped.add_metric(["1"], 1, timestamp=1700000000.5)
    created = CounterMetricFamily("iptv_created", "With _created.", labels=["stream"], created=1700000000.0)
    created.add_metric(["1"], 3, created=1700000000.0)
    exemplar = CounterMetricFamily("iptv_ex", "With an exemplar.", labels=["stream"])
    exemplar.add_metric(["1"], 3, exemplar=Exemplar({"trace_id": "abc"}, 1.0))
    colon = GaugeMetricFamily("iptv:recorded", "A name with a colon.", value=1)
    reserved = Metric("iptv_reserved", "A reserved label name.", "gauge")
    reserved.add_sample("iptv_reserved", {"__x": "1"}, 1)
    info = InfoMetricFamily("iptv_build", "Info.", value={"version": "1"})
    stateset = StateSetMetricFamily("iptv_state", "State.", value={"a": True, "b": False})
    gh = GaugeHistogramMetricFamily("iptv_gh", "gh", buckets=[("+Inf", 2.0)], gsum_value=3.0)
    families = (timestamped, created, exemplar, colon, reserved, info, stateset, gh)
    assert [b.client is not None for b in tf.Encoder().blocks(families)] == [True] * len(families)
    assert_same(*families)


def test_the_client_objects_the_actions_register() -> None:
    c = Counter("iptv_actions_total", "Actions.", ["stream", "action", "result"], registry=None)
    c.labels("7", "restart", "dry_run").inc()
    h = Histogram("iptv_action_duration_seconds", "Duration.", ["action"], buckets=(0.1, 1.0), registry=None)
    h.labels("restart").observe(0.5)
    g = Gauge("iptv_actions_in_progress", "Running.", registry=None)
    g.set(2)
    s = Summary("iptv_summary", "S.", registry=None)
    s.observe(1)
    i = Info("iptv_version", "V.", registry=None)
    i.info({"v": "1"})
    assert_same(*(m for obj in (c, h, g, s, i) for m in obj.collect()))
