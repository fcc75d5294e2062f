"""Building blocks of per-stream panels: one series or table row per (node, stream), named and linked."""

from __future__ import annotations

from exporter.dashboards import links
from exporter.dashboards.panels import Cell, Override, override, prop, state_mapping, target, timeseries
from exporter.dashboards.promql import NAMED_LEGEND, TOPN, named, sel, top

UP_MAPPING = state_mapping(("down", "red"), ("up", "green"))
PRESENT_MAPPING = state_mapping(("missing", "red"), ("present", "green"))
COLOUR_TEXT = {"type": "color-text"}


def over_range(counter: str) -> str:
    """How much ``counter`` grew over the dashboard's time range, per series."""
    return f"increase({sel(counter)}[$__range])"


def per_stream(aggregation: str, expr: str) -> str:
    """``aggregation by (node, stream) (expr)``: one series per stream even with several instances."""
    return f"{aggregation} by (node, stream) ({expr})"


def colour_cells(name: str) -> Override:
    return override(name, prop("custom.cellOptions", {"type": "color-background", "mode": "basic"}))


def letters(names: list[str]) -> dict[str, str]:
    """``{"Value #A": names[0], ...}``: the value columns of a merged table, in query order."""
    return {f"Value #{chr(ord('A') + i)}": name for i, name in enumerate(names)}


STREAM_COLUMNS = {"node": "Node", "stream": "Stream", "name": "Name"}


def signal(
    title: str, description: str, expr: str, unit: str, *, worst: str = "top", size: tuple[int, int] = (8, 8)
) -> Cell:
    """One named series per stream (``expr`` grouped by (node, stream)), the ``$topn`` worst of them.

    ``worst`` is ``top`` when high values are bad (age, drops, CPU), ``bottom`` when low ones are (fps).
    """
    picked = top(named(expr)) if worst == "top" else f"bottomk({TOPN}, {named(expr)})"
    return timeseries(
        title,
        f"{description} The $topn {'highest' if worst == 'top' else 'lowest'} streams at each moment; "
        "click a line for that stream alone.",
        [target(picked, NAMED_LEGEND)],
        unit=unit,
        size=size,
        links=links.SERIES_STREAM,
    )
