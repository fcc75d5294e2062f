"""Drill-down: data links from a stream, a node or a country to the dashboard about it.

Series links read the clicked series' labels (``${__field.labels.stream}``); table links read the clicked
row's columns by their shown name (``${__data.fields.Stream}``). Every link keeps the time range and the
data source, so the drill-down shows the same moment from the same Prometheus.
"""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dashboard_model

from exporter.dashboards.panels import Override, link, link_override

STREAM_HEALTH = "iptv-stream-health"
NODE_VIEW = "iptv-node"
LIVE_VIEWERS = "iptv-live-viewers"
KEEP = "${__url_time_range}&${datasource:queryparam}"


def url(uid: str, **variables: str) -> str:
    """``/d/<uid>?var-x=...&<time range>&<datasource>``: Grafana resolves a dashboard by uid alone."""
    query = "&".join(f"var-{name}={value}" for name, value in variables.items())
    return f"/d/{uid}?{query}&{KEEP}"


def to_stream(node: str, stream: str, name: str) -> dashboard_model.DashboardLink:
    return link(f"Stream health of {name}", url(STREAM_HEALTH, node=node, stream=stream))


def to_node(node: str) -> dashboard_model.DashboardLink:
    return link(f"Node {node}: host and exporter", url(NODE_VIEW, node=node))


def to_viewers(country: str) -> dashboard_model.DashboardLink:
    return link(f"Who watches from {country} now", url(LIVE_VIEWERS, country=country))


def to_stream_viewers(node: str, stream: str, name: str) -> dashboard_model.DashboardLink:
    """The live viewers table of the stream's node, filtered to the stream."""
    return link(f"Who watches {name} now", url(LIVE_VIEWERS, node=node, stream=stream))


_SERIES = ("${__field.labels.node}", "${__field.labels.stream}", "${__field.labels.name}")
SERIES_STREAM = [to_stream(*_SERIES), to_stream_viewers(*_SERIES)]
"""On a series grouped by (node, stream) and named (promql.named): its Stream health, and who watches it."""
SERIES_NODE = to_node("${__field.labels.node}")
SERIES_COUNTRY = to_viewers("${__field.labels.country}")


def stream_columns(node: str = "Node", stream: str = "Stream", name: str | None = "Name") -> list[Override]:
    """Links on a table's stream and name columns (and on its node column, to the node view)."""
    row = (f"${{__data.fields.{node}}}", f"${{__data.fields.{stream}}}", f"${{__data.fields.{name or stream}}}")
    to = [to_stream(*row), to_stream_viewers(*row)]
    named = [link_override(name, *to)] if name else []
    return [link_override(stream, *to), *named, node_column(node)]


def node_column(node: str = "Node") -> Override:
    return link_override(node, to_node(f"${{__data.fields.{node}}}"))


def country_column(country: str = "Country") -> Override:
    return link_override(country, to_viewers(f"${{__data.fields.{country}}}"))
