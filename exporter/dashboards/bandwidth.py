"""IPTV / Bandwidth: egress and ingest over time, peak and 95th percentile, by stream and by country."""

from __future__ import annotations

from exporter.dashboards import links
from exporter.dashboards.annotations import stream_events
from exporter.dashboards.base import Json
from exporter.dashboards.core import dashboard
from exporter.dashboards.panels import override, prop, stat, table, target, timeseries
from exporter.dashboards.promql import NAMED_LEGEND, NODE, RATE, bits, named, rate, sel, standard_variables, top
from exporter.dashboards.variables import datasource_variable

UID = "iptv-bandwidth"

SENT = "iptv_stream_sent_bytes_total"
READ = "iptv_stream_read_bytes_total"
SOCKETS = "iptv_connections_sent_bytes_total"
RECEIVED = "iptv_connections_received_bytes_total"
CAPACITY = "iptv_node_egress_capacity_bytes_per_second"
OVER_RANGE = "[$__range:$__interval]"
"""Subquery over the dashboard's time range, one point per panel interval."""


def peak(expr: str) -> str:
    return f"max_over_time(({expr}){OVER_RANGE})"


def p95(expr: str) -> str:
    return f"quantile_over_time(0.95, ({expr}){OVER_RANGE})"


def country_bits() -> str:
    """Each node's socket egress shared out by the node's connections per country.

    The exporter counts bytes per listening port, not per peer, so a country's bandwidth is its share of
    the node's connections times the node's egress: right on average, not per viewer.
    """
    by_country = f"sum by (node, instance, country) (iptv_connections{{{NODE}}})"
    total = f"sum by (node, instance) (iptv_connections{{{NODE}}})"
    egress = f"sum by (node, instance) ({rate(SOCKETS, stream=False)})"
    share = f"{by_country} / on (node, instance) group_left {total}"
    return f"sum by (country) (({share}) * on (node, instance) group_left {egress}) * 8"


def build() -> Json:
    total = bits(SENT, by="")
    stats = [
        stat(
            "Egress now",
            "Bits per second sent to viewers by the selected streams (access log bytes).",
            [target(total)],
            unit="bps",
            size=(6, 4),
        ),
        stat(
            "Peak egress",
            "Highest total egress over the dashboard's time range.",
            [target(peak(total), instant=True)],
            unit="bps",
            size=(6, 4),
            graph=False,
        ),
        stat(
            "95th percentile egress",
            "95th percentile of total egress over the time range (the usual burstable-billing figure).",
            [target(p95(total), instant=True)],
            unit="bps",
            size=(6, 4),
            graph=False,
        ),
        stat(
            "Ingest now",
            "Bits per second the selected stream processes read from their sources.",
            [target(bits(READ, by=""))],
            unit="bps",
            size=(6, 4),
        ),
    ]
    overall = timeseries(
        "Total egress and ingest",
        "Egress counted two ways: bytes in the access log for the selected streams, and bytes the kernel "
        "sent on the viewer ports (all streams, every client); and the ingest of the selected streams.",
        [
            target(total, "egress (access log)"),
            target(f"sum({rate(SOCKETS, stream=False)}) * 8", "egress (viewer sockets)"),
            target(bits(READ, by=""), "ingest"),
            target(f"sum({sel(CAPACITY, stream=False)}) * 8", "uplink capacity (configured)"),
        ],
        unit="bps",
        size=(16, 8),
    )
    utilization = timeseries(
        "Egress capacity used",
        "Each node's egress on the wire as a share of its configured uplink capacity "
        "(recording rule iptv:node_egress_utilization:ratio_rate1m; absent where no capacity is set). "
        "Click a line for the node view: NIC transmit next to IPTV egress.",
        [target(f"max by (node) (iptv:node_egress_utilization:ratio_rate1m{{{NODE}}})", "{{node}}")],
        unit="percentunit",
        size=(8, 8),
        links=[links.SERIES_NODE],
    )
    per_stream = [
        timeseries(
            "Egress per stream",
            "Bits per second sent to viewers per stream, stacked: the $topn largest at each moment.",
            [target(top(named(bits(SENT))), NAMED_LEGEND)],
            unit="bps",
            stacked=True,
            size=(12, 9),
            links=links.SERIES_STREAM,
        ),
        timeseries(
            "Ingest per stream",
            "Bits per second each stream process reads (its source), stacked: the $topn largest at each moment.",
            [target(top(named(bits(READ))), NAMED_LEGEND)],
            unit="bps",
            stacked=True,
            size=(12, 9),
            links=links.SERIES_STREAM,
        ),
    ]
    by_place = [
        timeseries(
            "Egress by country",
            "Each node's socket egress split by its share of connections per country (an estimate: "
            "bytes are counted per port, not per viewer).",
            [target(country_bits(), "{{country}}")],
            unit="bps",
            stacked=True,
            size=(12, 9),
            links=[links.SERIES_COUNTRY],
        ),
        timeseries(
            "Sent and received by port",
            "Bits per second the kernel sent on each viewer port (tcp_info bytes_acked), stacked, and below "
            "zero what viewers sent back (bytes_received: requests and acknowledgements).",
            [
                target(f"sum by (node, port) ({rate(SOCKETS, stream=False)}) * 8", "{{node}}:{{port}} sent"),
                target(f"-sum by (node, port) ({rate(RECEIVED, stream=False)}) * 8", "{{node}}:{{port}} received"),
            ],
            unit="bps",
            size=(12, 9),
            min_zero=False,
            links=[links.SERIES_NODE],
        ),
    ]
    stream_bits = bits(SENT)
    over_range = table(
        "Per stream over the time range",
        "Bytes sent and read per stream over the dashboard's time range, with peak and 95th percentile "
        "egress.",
        [
            target(named(f"sum by (node, stream) (increase({sel(SENT)}[$__range]))")),
            target(named(f"sum by (node, stream) (increase({sel(READ)}[$__range]))")),
            target(named(peak(stream_bits))),
            target(named(p95(stream_bits))),
        ],
        unit="bytes",
        size=(24, 10),
        columns={
            "node": "Node",
            "stream": "Stream",
            "name": "Name",
            "Value #A": "Sent",
            "Value #B": "Read",
            "Value #C": "Peak egress",
            "Value #D": "95th percentile egress",
        },
        sort_by="Sent",
        overrides=[
            override("Peak egress", prop("unit", "bps")),
            override("95th percentile egress", prop("unit", "bps")),
            *links.stream_columns(),
        ],
    )
    return dashboard(
        uid=UID,
        title="IPTV / Bandwidth",
        description=f"Egress and ingest per node, stream and country; rates use {RATE}.",
        tags=["bandwidth"],
        variables=[datasource_variable(), *standard_variables()],
        annotations=stream_events(),
        rows=[stats, [overall, utilization], per_stream, by_place, [over_range]],
    )
