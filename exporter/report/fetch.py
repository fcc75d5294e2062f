"""The PromQL behind each grouping, and turning its answers into inputs for :mod:`compute`.

Every range query is evaluated at the end of each step:

- bytes:   ``increase(<counter>[STEP])`` — bytes sent during the step;
- viewers: ``avg_over_time(<gauge>[STEP - 1ms])`` — mean of the samples in the step
  (one millisecond short so a sample on a step boundary is counted in one step only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from exporter.report.compute import Report, apportion, compute_report
from exporter.report.errors import ReportError
from exporter.report.period import Period, iso
from exporter.report.query import PrometheusClient, Series

GROUPINGS = ("stream", "country", "node")
RANGE_QUERIES = 2
"""Range queries made per grouping (for sizing a progress bar)."""

STREAM_BYTES = "iptv_stream_sent_bytes_total"
STREAM_VIEWERS = "iptv_stream_viewers"
STREAM_INFO = "iptv_stream_info"
CONNECTIONS = "iptv_connections"
EGRESS = "iptv_connections_sent_bytes_total"


@dataclass(frozen=True)
class Query:
    """What is being fetched: one period of one Prometheus, optionally narrowed by extra matchers."""

    client: PrometheusClient
    period: Period
    selector: str = ""
    on_chunk: Callable[[], None] | None = None

    def metric(self, name: str) -> str:
        return f"{name}{{{self.selector}}}"

    def bytes_window(self) -> str:
        return f"{_ms(self.period.step)}ms"

    def gauge_window(self) -> str:
        return f"{_ms(self.period.step) - 1}ms"

    def increase(self, name: str, by: str) -> str:
        return f"sum by ({by}) (increase({self.metric(name)}[{self.bytes_window()}]))"

    def average(self, name: str, by: str) -> str:
        return f"sum by ({by}) (avg_over_time({self.metric(name)}[{self.gauge_window()}]))"

    def range(self, expr: str) -> list[Series]:
        return self.client.query_range(expr, self.period, self.on_chunk)


def build_report(query: Query, by: str) -> Report:
    """Fetch and compute the report grouped ``by`` stream, country or node."""
    if by == "stream":
        return _by_stream(query)
    if by == "country":
        return _by_country(query)
    if by == "node":
        return _by_node(query)
    raise ReportError(f"unknown grouping {by!r}: use one of {', '.join(GROUPINGS)}")


def _by_stream(query: Query) -> Report:
    sent = query.range(query.increase(STREAM_BYTES, "stream"))
    _require(query, STREAM_BYTES, sent)
    viewers = query.range(query.average(STREAM_VIEWERS, "stream"))
    period = query.period
    names: dict[str, str] = {}
    info = query.client.query(
        f"group by (stream, name) (last_over_time({query.metric(STREAM_INFO)}[{_ms(period.duration)}ms]))",
        period.end,
    )
    for labels, _ in info:
        found = dict(labels)
        names.setdefault(found.get("stream", ""), found.get("name", ""))
    return compute_report(
        "stream", period, _keyed(sent, "stream"), _keyed(viewers, "stream"), names
    )


def _by_country(query: Query) -> Report:
    egress = query.range(query.increase(EGRESS, "instance"))
    _require(query, EGRESS, egress)
    connections = query.range(query.average(CONNECTIONS, "instance, country"))
    _require(query, CONNECTIONS, connections)
    steps = query.period.steps
    sent = apportion(
        steps,
        _keyed(egress, "instance"),
        {(s.label("instance"), s.label("country")): s.values for s in connections},
    )
    return compute_report("country", query.period, sent, _keyed(connections, "country"))


def _by_node(query: Query) -> Report:
    sent = query.range(query.increase(EGRESS, "node, instance"))
    _require(query, EGRESS, sent)
    viewers = query.range(query.average(STREAM_VIEWERS, "node, instance"))
    return compute_report("node", query.period, _node_keyed(sent), _node_keyed(viewers))


def _keyed(series: list[Series], label: str) -> dict[str, list[float | None]]:
    """Sum series that share the value of ``label``."""
    out: dict[str, list[float | None]] = {}
    for one in series:
        _add(out, one.label(label), one.values)
    return out


def _node_keyed(series: list[Series]) -> dict[str, list[float | None]]:
    """Key by the ``node`` target label, or by ``instance`` where a target has no ``node``."""
    out: dict[str, list[float | None]] = {}
    for one in series:
        _add(out, one.label("node") or one.label("instance"), one.values)
    return out


def _add(out: dict[str, list[float | None]], key: str, values: tuple[float | None, ...]) -> None:
    have = out.get(key)
    if have is None:
        out[key] = list(values)
        return
    for i, value in enumerate(values):
        if value is not None:
            have[i] = value if have[i] is None else (have[i] or 0.0) + value


def _require(query: Query, metric: str, series: list[Series]) -> None:
    if series:
        return
    period = query.period
    names = query.client.metric_names()
    if metric not in names:
        raise ReportError(
            f"metric {metric} not found on Prometheus at {query.client.url}: "
            f"is iptv-exporter being scraped, and is this the right server?"
        )
    where = f" matching {{{query.selector}}}" if query.selector else ""
    raise ReportError(
        f"empty range: no {metric} data{where} between {iso(period.start)} and {iso(period.end)}"
    )


def _ms(seconds: float) -> int:
    return round(seconds * 1000)
