"""IPTV / Live viewers: who watches now, row by row, from the exporter's ``GET /api/connections``.

The table reads the exporter's JSON through the Infinity datasource plugin (provisioned in
grafana/provisioning/datasources/viewers-api.yml with the exporter's read-only viewer token), not Prometheus: IPs,
lines and user agents never become metric labels. The exporter to ask is chosen by the `instance`
variable (the scrape address Prometheus knows, e.g. ``edge-1:9756``); `stream` and `country` are passed to
the API as its filters, so links from other dashboards open this table filtered.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import table as table_builder
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as dashboard_model

from exporter.dashboards import links
from exporter.dashboards.base import Json
from exporter.dashboards.core import dashboard
from exporter.dashboards.infinity import INFINITY, Column, Infinity, Param
from exporter.dashboards.panels import Cell, colour, link, numbered, prop, thresholds
from exporter.dashboards.promql import NODE, node_variable
from exporter.dashboards.variables import PROMETHEUS_INPUT, datasource_variable, query_variable, textbox_variable

UID = "iptv-live-viewers"
LIVE_REFRESH = "5s"
"""The exporter samples every 5 s (`sample_interval`), so the table can move as fast as PanelX's own view."""

COLUMNS = [
    Column("stream_name", "Stream", "string"),
    Column("stream", "Id", "string"),
    Column("line", "Line", "string"),
    Column("client_ip", "IP", "string"),
    Column("country", "Country", "string"),
    Column("city", "City", "string"),
    Column("isp", "ISP", "string"),
    Column("asn", "ASN", "number"),
    Column("duration_seconds", "Watching for", "number"),
    Column("bytes_sent", "Bytes sent", "number"),
    Column("connections", "Connections", "number"),
    Column("connected_since", "Since", "timestamp"),
    Column("last_request", "Last request", "timestamp"),
    Column("user_agent", "Player", "string"),
]
"""Keys of ``/api/connections`` rows (docs/viewers.md); tests/test_dashboards.py checks each against the
running exporter's JSON."""


def viewers_table() -> Cell:
    query = Infinity(
        "http://${instance}/api/connections",
        COLUMNS,
        params=[Param("stream", "${stream}"), Param("country", "${country}"), Param("limit", "10000")],
    )
    stream_link = link(
        "Stream health of ${__data.fields.Stream}",
        f"/d/{links.STREAM_HEALTH}?${{node:queryparam}}&var-stream=${{__data.fields.Id}}&{links.KEEP}",
    )
    country_link = link(
        "Only viewers from ${__data.fields.Country}",
        links.url(UID, instance="${instance}", country="${__data.fields.Country}"),
    )
    panel = (
        table_builder.Panel()
        .title("Who is watching now")
        .description(
            "One row per client on a stream (line, IP, place, network, how long, bytes its IP took, player), "
            "then connections of IPs with no request in the window (stream empty: an MPEG-TS download in "
            "progress, a player between requests). Longest-watching first. Click a stream for its Stream "
            "health, a country to filter by it."
        )
        .datasource(INFINITY.ref)
        .targets(numbered([query]))
        .unit("short")
        .color_scheme(colour(dashboard_model.FieldColorModeId.THRESHOLDS))
        .thresholds(thresholds((None, "green")))
        .filterable(True)
        .cell_height(common_model.TableCellHeight.SM)
        .show_header(True)
        .override_by_name("Watching for", [prop("unit", "dtdurations")])
        .override_by_name("Bytes sent", [prop("unit", "bytes")])
        # Time fields take the panel's unit too: without these, "short" would print epoch milliseconds.
        .override_by_name("Since", [prop("unit", "dateTimeAsIso")])
        .override_by_name("Last request", [prop("unit", "dateTimeFromNow")])
        .override_by_name("ASN", [prop("unit", "none"), prop("decimals", 0)])
        .override_by_name("Stream", [prop("links", [stream_link])])
        .override_by_name("Id", [prop("links", [stream_link])])
        .override_by_name("Country", [prop("links", [country_link])])
    )
    return Cell(panel, 24, 20)


def build() -> Json:
    variables = [
        datasource_variable(),
        datasource_variable(INFINITY),
        node_variable(),
        query_variable(
            "instance",
            "Exporter",
            f"label_values(iptv_exporter_build_info{{{NODE}}}, instance)",
            multi=False,
            include_all=False,
        ),
        textbox_variable("stream", "Stream id", "Only viewers of this stream id (empty: all streams)."),
        textbox_variable("country", "Country", "Only viewers from this ISO country code (empty: everywhere)."),
    ]
    return dashboard(
        uid=UID,
        title="IPTV / Live viewers",
        description="Who is watching now: one row per viewer from the exporter's /api/connections.",
        tags=["viewers", "live"],
        variables=variables,
        rows=[[viewers_table()]],
        time_from="now-5m",
        refresh=LIVE_REFRESH,
        sources=(PROMETHEUS_INPUT, INFINITY),
    )
