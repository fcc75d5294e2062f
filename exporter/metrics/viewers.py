"""Viewer metrics: per-stream viewers, bytes and responses (access log), connections by place (sockets).

Label values are bounded: streams come from the inventory, codes are four classes, countries are ISO
codes, cities and ISPs are top-N with the rest summed as ``other``, ports are the configured viewer
ports. No IP, username, password or PID ever becomes a label value.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.snapshot import Snapshot
from exporter.sources.accesslog import CODES, AccessLogResult


def collect(snap: Snapshot) -> Iterator[Metric]:
    yield from _access_log(snap)
    yield from _sockets(snap)


def _access_log(snap: Snapshot) -> Iterator[Metric]:
    from_log = snap.accesslog
    log = snap.viewers
    if log is None:
        return  # not configured, or failed this round (iptv_exporter_source_up says which)
    S = ["stream"]
    viewers = GaugeMetricFamily(
        "iptv_stream_viewers",
        "Distinct clients (IP + user agent) with a successful request for the stream within viewers.window.",
        labels=S,
    )
    sent = CounterMetricFamily(
        "iptv_stream_sent_bytes", "Response body bytes sent for the stream's requests (access log).", labels=S
    )
    responses = CounterMetricFamily(
        "iptv_stream_http_responses", "Requests for the stream by HTTP status class (access log).",
        labels=["stream", "code"],
    )
    for stream in sorted(set(snap.streams) | set(log.streams)):
        viewers.add_metric([stream], log.viewers.get(stream, 0))
        traffic = log.streams.get(stream)
        sent.add_metric([stream], traffic.sent_bytes_total if traffic else 0)
        for code in CODES:
            responses.add_metric([stream, code], traffic.responses_total.get(code, 0) if traffic else 0)
    # Bytes and responses only where a log counted them: a panel's live table has neither, and a 0 would lie.
    yield from (viewers, sent, responses) if log is from_log else (viewers,)

    online = GaugeMetricFamily("iptv_lines_online", "Subscriber lines (usernames) with a client inside viewers.window.")
    online.add_metric([], log.lines_online)
    sharing = GaugeMetricFamily(
        "iptv_lines_sharing_suspected",
        "Lines seen from more than sharing.max_ips IPs or sharing.max_countries countries within the window.",
    )
    sharing.add_metric([], len(log.sharing_lines))
    yield from (online, sharing)
    if log is not from_log:
        rows = CounterMetricFamily("iptv_paneldb_rows", "Rows of open connections read from the panel's live table.")
        rows.add_metric([], log.lines_total)
        skipped = CounterMetricFamily("iptv_paneldb_skipped_rows",
                                      "Rows of the panel's live table without a stream or an IP (not counted).")
        skipped.add_metric([], log.skipped_lines_total)
        yield from (rows, skipped, _sessions(log))
        return
    lines = CounterMetricFamily("iptv_accesslog_lines", "Access log lines read.")
    lines.add_metric([], log.lines_total)
    skipped = CounterMetricFamily("iptv_accesslog_skipped_lines", "Access log lines that did not parse.")
    skipped.add_metric([], log.skipped_lines_total)
    rotations = CounterMetricFamily("iptv_accesslog_rotations", "Access log rotations (rename or truncate) followed.")
    rotations.add_metric([], log.rotations)
    overlong = CounterMetricFamily("iptv_accesslog_overlong_lines", "Access log lines over 64 KiB, dropped unread.")
    overlong.add_metric([], log.overlong_lines_total)
    yield from (lines, skipped, rotations, overlong, _sessions(log))


def _sessions(log: AccessLogResult) -> Metric:
    hist = HistogramMetricFamily(
        "iptv_viewer_session_duration_seconds",
        "Ended viewing sessions: a client on a stream from its first request until viewers.window passed "
        "without one.",
    )
    h = log.sessions
    hist.add_metric([], [(_le(bound), float(n)) for bound, n in h.buckets], h.sum)
    return hist


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


def _sockets(snap: Snapshot) -> Iterator[Metric]:
    socks = snap.sockets
    if socks is None:
        return
    countries = GaugeMetricFamily("iptv_connections", "Established viewer connections by country.", labels=["country"])
    for country, n in sorted(socks.by_country.items()):
        countries.add_metric([country], n)
    cities = GaugeMetricFamily(
        "iptv_connections_city",
        "Established viewer connections by city (top geo.top_cities; the rest per country as city 'other').",
        labels=["country", "city", "latitude", "longitude"],
    )
    for c in socks.by_city:
        cities.add_metric([c.country, c.city, c.latitude, c.longitude], c.connections)
    isps = GaugeMetricFamily(
        "iptv_connections_isp",
        "Established viewer connections by network (top geo.top_isps; the rest as 'other').",
        labels=["asn", "isp"],
    )
    for i in socks.by_isp:
        isps.add_metric([i.asn, i.isp], i.connections)
    yield from (countries, cities, isps)
    if socks.sent_bytes_total is not None and socks.received_bytes_total is not None:
        sent = CounterMetricFamily(
            "iptv_connections_sent_bytes",
            "Bytes sent to viewers and acknowledged (tcp_info bytes_acked), per viewer port, closed "
            "connections included as far as the last sample saw them.",
            labels=["port"],
        )
        received = CounterMetricFamily(
            "iptv_connections_received_bytes", "Bytes received from viewers (tcp_info bytes_received), per port.",
            labels=["port"],
        )
        for port in sorted(socks.sent_bytes_total):
            sent.add_metric([str(port)], socks.sent_bytes_total[port])
            received.add_metric([str(port)], socks.received_bytes_total.get(port, 0))
        yield from (sent, received)
