"""Panels as grafana-foundation-sdk builders, and the layout that places them.

Panels are made without positions, as :class:`Cell` (panel + size); :func:`layout` places them row by row
on the 24-column grid and numbers them, so a dashboard module reads top to bottom like the page it draws.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, Self

from grafana_foundation_sdk.builders import bargauge as bargauge_builder
from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.builders import prometheus as prometheus_builder
from grafana_foundation_sdk.builders import stat as stat_builder
from grafana_foundation_sdk.builders import table as table_builder
from grafana_foundation_sdk.builders import timeseries as timeseries_builder
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as dashboard_model
from grafana_foundation_sdk.models import prometheus as prometheus_model

from exporter.dashboards.base import DATASOURCE, GRID_COLUMNS

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


