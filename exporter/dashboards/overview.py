"""IPTV / Overview: is everything up, how many watch, how much goes out, what is firing."""

from __future__ import annotations

from grafana_foundation_sdk.models import common as common_model

from exporter.dashboards import links
from exporter.dashboards.annotations import stream_events
from exporter.dashboards.base import Json
from exporter.dashboards.core import dashboard
from exporter.dashboards.panels import bargauge, override, prop, stat, state_mapping, table, target, timeseries
from exporter.dashboards.promql import NAMED_LEGEND, bits, named, sel, standard_variables, top
from exporter.dashboards.variables import datasource_variable

UID = "iptv-overview"


def build() -> Json:
    up = sel("iptv_stream_up")
    viewers = f"sum by (node, stream) ({sel('iptv_stream_viewers')})"
    stats = [
        stat(
            "Streams up",
            "Streams running now, of all declared and discovered streams (iptv_stream_up).",
            [target(f"sum({up})", "up", instant=True), target(f"count({up})", "total", instant=True)],
            unit="short",
            text_mode=common_model.BigValueTextMode.VALUE_AND_NAME,
            graph=False,
        ),
        stat(
            "Streams down",
            "Declared streams that are not running now (iptv_stream_up == 0).",
            [target(f"count({up} == 0) or vector(0)", instant=True)],
            unit="short",
            steps=((None, "green"), (1, "red")),
            graph=False,
        ),
        stat(
            "Viewers",
            "Viewers watching now, summed over the selected streams (iptv_stream_viewers).",
            [target(f"sum({sel('iptv_stream_viewers')})")],
            unit="short",
        ),
        stat(
            "Lines online",
            "Subscriber lines (usernames) with a request inside the viewer window (iptv_lines_online).",
            [target(f"sum({sel('iptv_lines_online', stream=False)})")],
            unit="short",
        ),
        stat(
            "Egress",
            "Bits per second sent to viewers, from the access log bytes of the selected streams.",
            [target(bits("iptv_stream_sent_bytes_total", by=""))],
            unit="bps",
        ),
        stat(
            "Lines sharing",
            "Lines seen from several IPs or countries at once (iptv_lines_sharing_suspected).",
            [target(f"sum({sel('iptv_lines_sharing_suspected', stream=False)})")],
            unit="short",
            steps=((None, "green"), (1, "orange")),
        ),
    ]
    top_viewers = bargauge(
        "Top streams by viewers",
        "The ten streams with most viewers now, named from iptv_stream_info. Click a bar for its Stream health.",
        [target(f"topk(10, {named(viewers)})", NAMED_LEGEND)],
        unit="short",
        size=(12, 10),
        links=links.SERIES_STREAM,
    )
    alerts = table(
        "Firing alerts",
        "Prometheus alerts firing now (ALERTS{alertstate=\"firing\"}), from the rules in prometheus/rules. "
        "Click a stream for its Stream health, a node for its node view.",
        [target('sum by (alertname, severity, node, stream) (ALERTS{alertstate="firing"})')],
        unit="short",
        size=(12, 10),
        columns={
            "alertname": "Alert",
            "severity": "Severity",
            "node": "Node",
            "stream": "Stream",
            "Value": "Series",
        },
        sort_by="Severity",
        overrides=links.stream_columns(name=None),
    )
    trends = [
        timeseries(
            "Viewers per stream",
            "Viewers over time, stacked, for the $topn streams with most viewers at each moment.",
            [target(top(named(viewers)), NAMED_LEGEND)],
            unit="short",
            stacked=True,
            links=links.SERIES_STREAM,
        ),
        timeseries(
            "Egress per node",
            "Bits per second sent to viewers per node (access log bytes of the selected streams).",
            [target(bits("iptv_stream_sent_bytes_total", by="node"), "{{node}}")],
            unit="bps",
            stacked=True,
            links=[links.SERIES_NODE],
        ),
    ]
    sources = table(
        "Exporter sources",
        "Whether each exporter source (processes, sockets, access log, progress, hls) succeeded on its "
        "last run, and how long it took.",
        [
            target(f"min by (node, source) ({sel('iptv_exporter_source_up', stream=False)})"),
            target(f"max by (node, source) ({sel('iptv_exporter_source_duration_seconds', stream=False)})"),
        ],
        unit="short",
        size=(24, 7),
        columns={"node": "Node", "source": "Source", "Value #A": "Up", "Value #B": "Duration"},
        overrides=[
            override(
                "Up",
                prop("mappings", [state_mapping(("failing", "red"), ("ok", "green"))]),
                prop("custom.cellOptions", {"type": "color-text"}),
            ),
            override("Duration", prop("unit", "s")),
            links.node_column(),
        ],
    )
    return dashboard(
        uid=UID,
        title="IPTV / Overview",
        description="Streams up, viewers, lines, egress and firing alerts across the selected nodes.",
        tags=["overview"],
        variables=[datasource_variable(), *standard_variables()],
        annotations=stream_events(),
        rows=[stats, [top_viewers, alerts], trends, [sources]],
    )
