"""Whole dashboards built with grafana-foundation-sdk, Grafana's own typed builders, as JSON data.

The SDK is pinned to the Grafana version docker-compose.yml runs (:data:`GRAFANA_VERSION`), so a panel
option Grafana does not know there is a type error (mypy), not a silently ignored key. What the SDK has no
model for is added, typed: the Prometheus annotation's title/tag fields (annotations.py), the Infinity
query (infinity.py), and grafana.com's ``__inputs``/``__requires`` (:func:`grafana_com`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dashboard_model

from exporter.dashboards.annotations import builtin_annotation
from exporter.dashboards.base import GRAFANA_VERSION, REFRESH, REFRESH_INTERVALS, TAG, Json
from exporter.dashboards.panels import Cell, PanelBuilder, layout
from exporter.dashboards.variables import PROMETHEUS_INPUT, DatasourceInput

PANEL_NAMES = {
    "bargauge": "Bar gauge",
    "geomap": "Geomap",
    "stat": "Stat",
    "table": "Table",
    "timeseries": "Time series",
}
"""Panel plugin names for ``__requires`` (Grafana lists them so; all are built into Grafana)."""


def to_json(value: object) -> Json:
    """An SDK model as plain JSON data (through the SDK's own encoder)."""
    data: Json = json.loads(json.dumps(value, cls=JSONEncoder))
    return data


def grafana_com(board: Json, sources: Sequence[DatasourceInput]) -> Json:
    """``__inputs`` (one per datasource variable) and ``__requires`` (Grafana, datasources, panels).

    grafana.com and Grafana's import read them; the file provisioning ignores both.
    """
    panel_types = sorted({p["type"] for p in board["panels"] if p["type"] != "row"})
    inputs = [
        {
            "name": s.input_name,
            "label": s.plugin_name,
            "description": f"{s.plugin_name} data source for the `{s.variable}` variable",
            "type": "datasource",
            "pluginId": s.plugin_id,
            "pluginName": s.plugin_name,
        }
        for s in sources
    ]
    requires = [{"type": "grafana", "id": "grafana", "name": "Grafana", "version": GRAFANA_VERSION}]
    requires += [
        {"type": "datasource", "id": s.plugin_id, "name": s.plugin_name, "version": s.plugin_version}
        for s in sources
    ]
    requires += [{"type": "panel", "id": t, "name": PANEL_NAMES[t], "version": ""} for t in panel_types]
    return {"__inputs": inputs, "__requires": requires, **board}


def dashboard(
    *,
    uid: str,
    title: str,
    description: str,
    rows: Iterable[Sequence[Cell]],
    variables: Sequence[cogbuilder.Builder[dashboard_model.VariableModel]],
    annotations: Sequence[cogbuilder.Builder[dashboard_model.AnnotationQuery]] = (),
    tags: Sequence[str] = (),
    time_from: str = "now-6h",
    refresh: str = REFRESH,
    sources: Sequence[DatasourceInput] = (PROMETHEUS_INPUT,),
) -> Json:
    """A complete dashboard as JSON data; every IPTV dashboard links to the others through the shared tag.

    Read-only (``editable: false``), like the provisioning (``allowUiUpdates: false``): the generator is
    the source, an edit in the UI could not be saved anyway.
    """
    builder = (
        dashboard_builder.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG, *tags])
        .readonly()
        .tooltip(dashboard_model.DashboardCursorSync.CROSSHAIR)
        .fiscal_year_start_month(0)
        .live_now(False)
        .refresh(refresh)
        .time(time_from, "now")
        .timepicker(dashboard_builder.TimePicker().refresh_intervals(REFRESH_INTERVALS))
        .timezone("browser")
        .week_start("")
        .version(1)
        .annotations([builtin_annotation(), *annotations])
        .link(
            dashboard_builder.DashboardLink("IPTV dashboards")
            .type(dashboard_model.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
            .target_blank(False)
            .icon("external link")
        )
        .variables(list(variables))
    )
    for panel in layout(rows):
        builder = builder.with_panel(_Panel(panel))
    return grafana_com(to_json(builder.build()), sources)


class _Panel(cogbuilder.Builder[dashboard_model.Panel]):
    """Adapts a :class:`PanelBuilder` (a Protocol) to the SDK's ``Builder[Panel]`` for ``with_panel``."""

    def __init__(self, panel: PanelBuilder) -> None:
        self._panel = panel

    def build(self) -> dashboard_model.Panel:
        return self._panel.build()
