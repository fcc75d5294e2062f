"""Panels, variables and dashboards built with grafana-foundation-sdk, Grafana's own typed builders.

The SDK is pinned to the Grafana version docker-compose.yml runs (:data:`GRAFANA_VERSION`), so a panel
option Grafana does not know there is a type error (mypy), not a silently ignored key. What the SDK has no
model for is added here, typed: the Prometheus annotation's title/tag fields (:class:`PromAnnotation`),
the Infinity query (exporter/dashboards/infinity.py), and grafana.com's ``__inputs``/``__requires``
(:func:`dashboard`).

Panels are made without positions, as :class:`Cell` (panel + size); :func:`layout` places them row by row
on the 24-column grid and numbers them, so a dashboard module reads top to bottom like the page it draws.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self

from grafana_foundation_sdk.builders import bargauge as bargauge_builder
from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.builders import prometheus as prometheus_builder
from grafana_foundation_sdk.builders import stat as stat_builder
from grafana_foundation_sdk.builders import table as table_builder
from grafana_foundation_sdk.builders import timeseries as timeseries_builder
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as dashboard_model
from grafana_foundation_sdk.models import prometheus as prometheus_model

Json = dict[str, Any]

GRAFANA_VERSION = "11.2.2"
"""The Grafana image docker-compose.yml runs; grafana-foundation-sdk is pinned to its minor (11.2)."""
GRID_COLUMNS = 24
TAG = "iptv"
PROMETHEUS = "prometheus"
DATASOURCE = dashboard_model.DataSourceRef(type_val=PROMETHEUS, uid="${datasource}")
"""Every Prometheus panel, target, variable and annotation queries the dashboard's `datasource` variable."""
REFRESH = "30s"
REFRESH_INTERVALS = ["5s", "10s", "30s", "1m", "5m", "15m", "30m", "1h"]
"""5 s is the "live" choice (the exporter samples every 5 s); 30 s is the default."""

Step = tuple[float | None, str]
Links = Sequence[dashboard_model.DashboardLink]


class PanelBuilder(Protocol):
    """What :func:`layout` needs of any SDK panel builder."""

    def build(self) -> dashboard_model.Panel: ...

    def grid_pos(self, grid_pos: dashboard_model.GridPos) -> Self: ...

    def id(self, id_val: int) -> Self: ...


@dataclass(frozen=True)
class Cell:
    """A panel and its size in grid units (width, height), before :func:`layout` places it."""

    panel: PanelBuilder
    width: int
    height: int


def thresholds(*steps: Step) -> dashboard_builder.ThresholdsConfig:
    """Absolute thresholds; the first step's value is None (the base colour)."""
    return (
        dashboard_builder.ThresholdsConfig()
        .mode(dashboard_model.ThresholdsMode.ABSOLUTE)
        .steps([dashboard_model.Threshold(value=value, color=color) for value, color in steps])
    )


def colour(mode: dashboard_model.FieldColorModeId) -> dashboard_builder.FieldColor:
    return dashboard_builder.FieldColor().mode(mode)


def target(expr: str, legend: str = "", *, instant: bool = False, table: bool = False) -> prometheus_builder.Dataquery:
    """A Prometheus query; ``table`` makes an instant query in table format (one row per series)."""
    query = (
        prometheus_builder.Dataquery()
        .expr(expr)
        .legend_format(legend)
        .datasource(DATASOURCE)
        .editor_mode(prometheus_model.QueryEditorMode.CODE)
    )
    query = query.instant() if instant or table else query.range()
    if table:
        query = query.format(prometheus_model.PromQueryFormat.TABLE)
    return query


Target = cogbuilder.Builder[cogvariants.Dataquery]


def numbered(targets: Sequence[Target]) -> list[Target]:
    """Give targets refIds A, B, ... in order (Grafana names table value columns ``Value #A`` from them)."""
    for i, t in enumerate(targets):
        ref = getattr(t, "ref_id", None)
        if ref is None:
            raise TypeError(f"target {t!r} has no ref_id()")
        ref(chr(ord("A") + i))
    return list(targets)


def link(title: str, url: str) -> dashboard_model.DashboardLink:
    """A data link (a click on a series, a cell or a bar opens ``url``); built now, so it can go in overrides."""
    return dashboard_builder.DashboardLink(title).url(url).build()


def prop(name: str, value: object) -> dashboard_model.DynamicConfigValue:
    """One override property, e.g. ``prop("unit", "s")`` or ``prop("custom.cellOptions", {...})``."""
    return dashboard_model.DynamicConfigValue(id_val=name, value=value)


Override = tuple[str, list[dashboard_model.DynamicConfigValue]]


def override(field: str, *properties: dashboard_model.DynamicConfigValue) -> Override:
    """Properties for the field shown as ``field`` (a renamed table column, or a series name)."""
    return field, list(properties)


def link_override(field: str, *links: dashboard_model.DashboardLink) -> Override:
    return override(field, prop("links", list(links)))


def state_mapping(off: tuple[str, str], on: tuple[str, str]) -> dashboard_model.ValueMap:
    """Value mapping of a 0/1 series to (text, colour) for 0 and for 1, e.g. down/red and up/green."""
    return dashboard_model.ValueMap(
        options={
            "0": dashboard_model.ValueMappingResult(text=off[0], color=off[1], index=0),
            "1": dashboard_model.ValueMappingResult(text=on[0], color=on[1], index=1),
        }
    )


def _reduce_last() -> common_builder.ReduceDataOptions:
    return common_builder.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def stat(
    title: str,
    description: str,
    targets: Sequence[Target],
    *,
    unit: str,
    size: tuple[int, int] = (4, 4),
    steps: Sequence[Step] = ((None, "green"),),
    text_mode: common_model.BigValueTextMode = common_model.BigValueTextMode.AUTO,
    graph: bool = True,
    links: Links = (),
) -> Cell:
    panel = (
        stat_builder.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(numbered(targets))
        .unit(unit)
        .color_scheme(colour(dashboard_model.FieldColorModeId.THRESHOLDS))
        .thresholds(thresholds(*steps))
        .color_mode(common_model.BigValueColorMode.VALUE)
        .graph_mode(common_model.BigValueGraphMode.AREA if graph else common_model.BigValueGraphMode.NONE)
        .justify_mode(common_model.BigValueJustifyMode.AUTO)
        .text_mode(text_mode)
        .reduce_options(_reduce_last())
    )
    if links:
        panel = panel.data_links([as_builder(x) for x in links])
    return Cell(panel, *size)


def timeseries(
    title: str,
    description: str,
    targets: Sequence[Target],
    *,
    unit: str,
    size: tuple[int, int] = (12, 8),
    stacked: bool = False,
    fill: int = 10,
    links: Links = (),
    overrides: Sequence[Override] = (),
    min_zero: bool = True,
) -> Cell:
    panel = (
        timeseries_builder.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(numbered(targets))
        .unit(unit)
        .color_scheme(colour(dashboard_model.FieldColorModeId.PALETTE_CLASSIC))
        .draw_style(common_model.GraphDrawStyle.LINE)
        .line_width(1)
        .fill_opacity(60 if stacked else fill)
        .show_points(common_model.VisibilityMode.NEVER)
        .span_nulls(False)
        .stacking(
            common_builder.StackingConfig()
            .mode(common_model.StackingMode.NORMAL if stacked else common_model.StackingMode.NONE)
            .group("A")
        )
        .legend(
            common_builder.VizLegendOptions()
            .display_mode(common_model.LegendDisplayMode.TABLE)
            .placement(common_model.LegendPlacement.RIGHT)
            .show_legend(True)
            .calcs(["mean", "max"])
        )
        .tooltip(
            common_builder.VizTooltipOptions().mode(common_model.TooltipDisplayMode.MULTI).sort(common_model.SortOrder.DESCENDING)
        )
    )
    if min_zero:
        panel = panel.min(0)
    if links:
        panel = panel.data_links([as_builder(x) for x in links])
    for name, properties in overrides:
        panel = panel.override_by_name(name, properties)
    return Cell(panel, *size)


def table(
    title: str,
    description: str,
    targets: Sequence[prometheus_builder.Dataquery],
    *,
    unit: str,
    size: tuple[int, int] = (12, 8),
    columns: dict[str, str] | None = None,
    sort_by: str = "",
    overrides: Sequence[Override] = (),
    steps: Sequence[Step] = ((None, "green"),),
) -> Cell:
    """A table of instant queries merged on their labels.

    ``columns`` renames fields and fixes their order (Time is hidden); with several queries Grafana names
    the value fields ``Value #A``, ``Value #B``..., so give those names as keys. Overrides and data links
    name the renamed columns.
    """
    transformations: list[dashboard_model.DataTransformerConfig] = []
    if len(targets) > 1:
        transformations.append(dashboard_model.DataTransformerConfig(id_val="merge", options={}))
    if columns is not None:
        transformations.append(
            dashboard_model.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True},
                    "indexByName": {name: i for i, name in enumerate(columns)},
                    "renameByName": columns,
                },
            )
        )
    panel = (
        table_builder.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(numbered([t.format(prometheus_model.PromQueryFormat.TABLE).instant() for t in targets]))
        .unit(unit)
        .color_scheme(colour(dashboard_model.FieldColorModeId.THRESHOLDS))
        .thresholds(thresholds(*steps))
        .align(common_model.FieldTextAlignment.AUTO)
        .cell_options(common_model.TableAutoCellOptions())
        .filterable(True)
        .cell_height(common_model.TableCellHeight.SM)
        .show_header(True)
        .footer(common_builder.TableFooterOptions().show(False).reducer(["sum"]))
        .transformations(transformations)
    )
    if sort_by:
        panel = panel.sort_by([common_builder.TableSortByFieldState().display_name(sort_by).desc(True)])
    for name, properties in overrides:
        panel = panel.override_by_name(name, properties)
    return Cell(panel, *size)


def bargauge(
    title: str,
    description: str,
    targets: Sequence[prometheus_builder.Dataquery],
    *,
    unit: str,
    size: tuple[int, int] = (12, 8),
    links: Links = (),
) -> Cell:
    panel = (
        bargauge_builder.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(numbered([t.instant() for t in targets]))
        .unit(unit)
        .min(0)
        .color_scheme(colour(dashboard_model.FieldColorModeId.CONTINUOUS_BL_PU))
        .display_mode(common_model.BarGaugeDisplayMode.GRADIENT)
        .orientation(common_model.VizOrientation.HORIZONTAL)
        .show_unfilled(True)
        .value_mode(common_model.BarGaugeValueMode.COLOR)
        .name_placement(common_model.BarGaugeNamePlacement.AUTO)
        .sizing(common_model.BarGaugeSizing.AUTO)
        .min_viz_height(16)
        .max_viz_height(300)
        .reduce_options(_reduce_last())
    )
    if links:
        panel = panel.data_links([as_builder(x) for x in links])
    return Cell(panel, *size)


class _Built(cogbuilder.Builder[dashboard_model.DashboardLink]):
    """A built link handed back to an SDK method that takes builders."""

    def __init__(self, value: dashboard_model.DashboardLink) -> None:
        self._value = value

    def build(self) -> dashboard_model.DashboardLink:
        return self._value


def as_builder(value: dashboard_model.DashboardLink) -> _Built:
    return _Built(value)


def layout(rows: Iterable[Sequence[Cell]]) -> list[PanelBuilder]:
    """Place panels left to right, each row below the tallest panel of the one before; number them."""
    placed: list[PanelBuilder] = []
    y = 0
    for line in rows:
        x = 0
        for cell in line:
            if x + cell.width > GRID_COLUMNS:
                raise ValueError(f"row at y={y} is wider than {GRID_COLUMNS} columns at {cell.panel.build().title!r}")
            placed.append(
                cell.panel.grid_pos(dashboard_model.GridPos(h=cell.height, w=cell.width, x=x, y=y)).id(len(placed) + 1)
            )
            x += cell.width
        y += max((cell.height for cell in line), default=0)
    return placed


# --- variables -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasourceInput:
    """A datasource variable and the grafana.com import input that fills it."""

    variable: str
    label: str
    plugin_id: str
    plugin_name: str
    plugin_version: str
    input_name: str

    @property
    def ref(self) -> dashboard_model.DataSourceRef:
        return dashboard_model.DataSourceRef(type_val=self.plugin_id, uid="${" + self.variable + "}")


PROMETHEUS_INPUT = DatasourceInput("datasource", "Data source", PROMETHEUS, "Prometheus", "1.0.0", "DS_PROMETHEUS")


def datasource_variable(source: DatasourceInput = PROMETHEUS_INPUT) -> dashboard_builder.DatasourceVariable:
    """A datasource variable; on import from grafana.com its current value is the input the user chose.

    Provisioned as it is, Grafana finds no datasource named ``${DS_...}`` and takes the default of the type.
    """
    placeholder = "${" + source.input_name + "}"
    return (
        dashboard_builder.DatasourceVariable(source.variable)
        .label(source.label)
        .type(source.plugin_id)
        .current(dashboard_model.VariableOption(selected=False, text=placeholder, value=placeholder))
        .multi(False)
        .include_all(False)
    )


def query_variable(
    name: str,
    label: str,
    query: str,
    *,
    multi: bool = True,
    include_all: bool = True,
    regex: str = "",
    query_type: int = 1,
) -> dashboard_builder.QueryVariable:
    """A Prometheus query variable. ``query_type`` is the editor's qryType: 1 label values, 3 query result.

    Grafana runs ``query``; for a query result the editor also keeps the inner expression as ``varQuery``.
    """
    model: dict[str, object] = {
        "qryType": query_type,
        "query": query,
        "refId": "PrometheusVariableQueryEditor-VariableQuery",
    }
    if query_type == 3:
        if not (query.startswith("query_result(") and query.endswith(")")):
            raise ValueError(f"a query-result variable needs query_result(...), got {query!r}")
        model["varQuery"] = query[len("query_result(") : -1]
    variable = (
        dashboard_builder.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(model)
        .refresh(dashboard_model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard_model.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(include_all)
        .regex(regex)
    )
    if include_all:
        variable = variable.all_value(".*").current(
            dashboard_model.VariableOption(selected=True, text=["All"], value=["$__all"])
        )
    return variable


def custom_variable(
    name: str,
    label: str,
    choices: Sequence[tuple[str, str]],
    *,
    all_value: str | None = ".*",
    default: str | None = None,
    description: str = "",
) -> dashboard_builder.CustomVariable:
    """A single-choice custom variable of ``text : value`` pairs; with ``all_value``, "All" maps to it.

    Reference it as ``${name:raw}`` when its values are regular expressions: Grafana regex-escapes the
    values of variables that have an "All" option.
    """
    current = next(((t, v) for t, v in choices if v == default), None)
    options = [
        dashboard_model.VariableOption(selected=(t, v) == current, text=t, value=v) for t, v in choices
    ]
    variable = (
        dashboard_builder.CustomVariable(name)
        .label(label)
        .description(description)
        .values(",".join(f"{text} : {value}" for text, value in choices))
        .multi(False)
        .include_all(all_value is not None)
    )
    if all_value is not None:
        options.insert(0, dashboard_model.VariableOption(selected=current is None, text="All", value="$__all"))
        variable = variable.all_value(all_value)
    selected = current or ("All", "$__all")
    return variable.options(options).current(
        dashboard_model.VariableOption(selected=True, text=selected[0], value=selected[1])
    )


def textbox_variable(name: str, label: str, description: str) -> dashboard_builder.TextBoxVariable:
    """A free-text variable, empty by default (links from other dashboards fill it)."""
    return (
        dashboard_builder.TextBoxVariable(name)
        .label(label)
        .description(description)
        .default_value("")
        .current(dashboard_model.VariableOption(selected=False, text="", value=""))
    )


# --- annotations ----------------------------------------------------------------------------------------


class _PromAnnotationQuery(dashboard_model.AnnotationQuery):
    """The SDK's annotation model plus the fields Grafana's Prometheus annotation editor saves."""

    def __init__(self, *, title_format: str, text_format: str, tag_keys: str, step: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.title_format = title_format
        self.text_format = text_format
        self.tag_keys = tag_keys
        self.step = step

    def to_json(self) -> dict[str, object]:
        payload = super().to_json()
        payload.update(
            titleFormat=self.title_format,
            textFormat=self.text_format,
            tagKeys=self.tag_keys,
            step=self.step,
            useValueForTime=False,
        )
        return payload


@dataclass(frozen=True)
class PromAnnotation(cogbuilder.Builder[dashboard_model.AnnotationQuery]):
    """A Prometheus annotation: one event (or a region, when several steps in a row match) per series."""

    name: str
    expr: str
    title: str
    text: str
    color: str
    tag_keys: str
    step: str = "1m"

    def build(self) -> dashboard_model.AnnotationQuery:
        return _PromAnnotationQuery(
            name=self.name,
            datasource=DATASOURCE,
            enable=True,
            hide=False,
            icon_color=self.color,
            expr=self.expr,
            title_format=self.title,
            text_format=self.text,
            tag_keys=self.tag_keys,
            step=self.step,
        )


def builtin_annotation() -> dashboard_builder.AnnotationQuery:
    return (
        dashboard_builder.AnnotationQuery()
        .name("Annotations & Alerts")
        .datasource(dashboard_model.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
        .enable(True)
        .hide(True)
        .icon_color("rgba(0, 211, 255, 1)")
        .type("dashboard")
        .built_in(1)
    )


# --- the dashboard ---------------------------------------------------------------------------------------

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
