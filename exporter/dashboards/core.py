"""Small builders for Grafana dashboard JSON (schema 39, Grafana 11) as plain dicts.

Panels are built without positions; :func:`layout` places them row by row on the 24-column grid and
numbers them, so a dashboard module reads top to bottom like the page it draws.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

Json = dict[str, Any]

SCHEMA_VERSION = 39
GRID_COLUMNS = 24
TAG = "iptv"
DATASOURCE: Json = {"type": "prometheus", "uid": "${datasource}"}
"""Every panel, target, variable and annotation queries the dashboard's `datasource` variable."""

Step = tuple[float | None, str]


def thresholds(*steps: Step) -> Json:
    """Absolute thresholds; the first step's value is None (the base colour)."""
    return {"mode": "absolute", "steps": [{"color": color, "value": value} for value, color in steps]}


GREEN: Json = thresholds((None, "green"))


def target(
    expr: str, legend: str = "", *, instant: bool = False, table: bool = False, interval: str = ""
) -> Json:
    """A Prometheus query; ``table`` makes an instant query in table format (one row per series)."""
    instant = instant or table
    out: Json = {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "instant": instant,
        "legendFormat": legend,
        "range": not instant,
    }
    if table:
        out["format"] = "table"
    if interval:
        out["interval"] = interval
    return out


def panel(
    kind: str,
    title: str,
    description: str,
    targets: Sequence[Json],
    *,
    unit: str,
    size: tuple[int, int],
    options: Json | None = None,
    defaults: Json | None = None,
    overrides: Sequence[Json] = (),
    transformations: Sequence[Json] = (),
) -> Json:
    """A panel of any type; ``size`` is (width, height) in grid units, placed later by :func:`layout`."""
    numbered = [dict(t, refId=chr(ord("A") + i)) for i, t in enumerate(targets)]
    field_defaults: Json = {"unit": unit, "color": {"mode": "palette-classic"}, "thresholds": GREEN}
    field_defaults.update(defaults or {})
    out: Json = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": numbered,
        "fieldConfig": {"defaults": field_defaults, "overrides": list(overrides)},
        "options": options or {},
        "gridPos": {"w": size[0], "h": size[1]},
    }
    if transformations:
        out["transformations"] = list(transformations)
    return out


def override(field: str, **properties: Any) -> Json:
    """Field override by name, e.g. ``override("Uptime", unit="s")``."""
    return {
        "matcher": {"id": "byName", "options": field},
        "properties": [{"id": key.replace("__", "."), "value": value} for key, value in properties.items()],
    }


def state_mapping(off: tuple[str, str], on: tuple[str, str]) -> Json:
    """Value mapping of a 0/1 series to (text, colour) for 0 and for 1, e.g. down/red and up/green."""
    return {
        "type": "value",
        "options": {
            "0": {"text": off[0], "color": off[1], "index": 0},
            "1": {"text": on[0], "color": on[1], "index": 1},
        },
    }


def stat(
    title: str,
    description: str,
    targets: Sequence[Json],
    *,
    unit: str,
    size: tuple[int, int] = (4, 4),
    steps: Sequence[Step] = ((None, "green"),),
    text_mode: str = "auto",
    graph: bool = True,
) -> Json:
    return panel(
        "stat",
        title,
        description,
        targets,
        unit=unit,
        size=size,
        defaults={"color": {"mode": "thresholds"}, "thresholds": thresholds(*steps)},
        options={
            "colorMode": "value",
            "graphMode": "area" if graph else "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": text_mode,
        },
    )


def timeseries(
    title: str,
    description: str,
    targets: Sequence[Json],
    *,
    unit: str,
    size: tuple[int, int] = (12, 8),
    stacked: bool = False,
    fill: int = 10,
    overrides: Sequence[Json] = (),
    min_zero: bool = True,
) -> Json:
    custom: Json = {
        "drawStyle": "line",
        "lineWidth": 1,
        "fillOpacity": 60 if stacked else fill,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stacked else "none", "group": "A"},
    }
    defaults: Json = {"custom": custom}
    if min_zero:
        defaults["min"] = 0
    return panel(
        "timeseries",
        title,
        description,
        targets,
        unit=unit,
        size=size,
        defaults=defaults,
        overrides=overrides,
        options={
            "legend": {"displayMode": "table", "placement": "right", "showLegend": True, "calcs": ["mean", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    )


def table(
    title: str,
    description: str,
    targets: Sequence[Json],
    *,
    unit: str,
    size: tuple[int, int] = (12, 8),
    columns: dict[str, str] | None = None,
    sort_by: str = "",
    overrides: Sequence[Json] = (),
    steps: Sequence[Step] = ((None, "green"),),
) -> Json:
    """A table of instant queries merged on their labels.

    ``columns`` renames fields and fixes their order (Time is hidden); with several queries Grafana names
    the value fields ``Value #A``, ``Value #B``..., so give those names as keys.
    """
    transformations: list[Json] = [{"id": "merge", "options": {}}] if len(targets) > 1 else []
    if columns is not None:
        transformations.append(
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True},
                    "indexByName": {name: i for i, name in enumerate(columns)},
                    "renameByName": columns,
                },
            }
        )
    options: Json = {"cellHeight": "sm", "showHeader": True, "footer": {"show": False, "reducer": ["sum"]}}
    if sort_by:
        options["sortBy"] = [{"displayName": sort_by, "desc": True}]
    return panel(
        "table",
        title,
        description,
        [dict(t, format="table", instant=True, range=False) for t in targets],
        unit=unit,
        size=size,
        defaults={
            "color": {"mode": "thresholds"},
            "thresholds": thresholds(*steps),
            "custom": {"align": "auto", "cellOptions": {"type": "auto"}, "filterable": True},
        },
        overrides=overrides,
        options=options,
        transformations=transformations,
    )


def bargauge(
    title: str,
    description: str,
    targets: Sequence[Json],
    *,
    unit: str,
    size: tuple[int, int] = (12, 8),
) -> Json:
    return panel(
        "bargauge",
        title,
        description,
        [dict(t, instant=True, range=False) for t in targets],
        unit=unit,
        size=size,
        defaults={"color": {"mode": "continuous-BlPu"}, "min": 0},
        options={
            "displayMode": "gradient",
            "orientation": "horizontal",
            "showUnfilled": True,
            "valueMode": "color",
            "namePlacement": "auto",
            "sizing": "auto",
            "minVizHeight": 16,
            "maxVizHeight": 300,
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        },
    )


def row(title: str) -> Json:
    """A full-width row header (rows have no queries, so they are exempt from the lint's unit rule)."""
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": {"w": 24, "h": 1}}


def layout(rows: Iterable[Sequence[Json]]) -> list[Json]:
    """Place panels left to right, each row below the tallest panel of the one before; number them."""
    placed: list[Json] = []
    y = 0
    for line in rows:
        x = 0
        for item in line:
            w, h = item["gridPos"]["w"], item["gridPos"]["h"]
            if x + w > GRID_COLUMNS:
                raise ValueError(f"row at y={y} is wider than {GRID_COLUMNS} columns at {item['title']!r}")
            placed.append(dict(item, id=len(placed) + 1, gridPos={"h": h, "w": w, "x": x, "y": y}))
            x += w
        y += max((item["gridPos"]["h"] for item in line), default=0)
    return placed


def datasource_variable() -> Json:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "options": [],
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
    }


def query_variable(
    name: str, label: str, query: str, *, multi: bool = True, include_all: bool = True, all_value: str = ".*"
) -> Json:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        # qryType 1 is "label values" in Grafana's Prometheus variable editor (the form it saves).
        "query": {"qryType": 1, "query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]} if include_all else {},
        "hide": 0,
        "includeAll": include_all,
        "allValue": all_value if include_all else None,
        "multi": multi,
        "options": [],
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
    }


def custom_variable(
    name: str, label: str, choices: Sequence[tuple[str, str]], *, all_value: str = ".*", description: str = ""
) -> Json:
    """A single-choice custom variable of ``text : value`` pairs, with "All" mapped to ``all_value``.

    Reference it as ``${name:raw}`` when its values are regular expressions: Grafana regex-escapes the
    values of variables that have an "All" option.
    """
    options = [{"selected": True, "text": "All", "value": "$__all"}]
    options += [{"selected": False, "text": text, "value": value} for text, value in choices]
    return {
        "name": name,
        "label": label,
        "description": description,
        "type": "custom",
        "query": ",".join(f"{text} : {value}" for text, value in choices),
        "current": {"selected": True, "text": "All", "value": "$__all"},
        "hide": 0,
        "includeAll": True,
        "allValue": all_value,
        "multi": False,
        "options": options,
        "skipUrlSync": False,
    }


def annotation(name: str, expr: str, *, title: str, text: str, color: str, tag_keys: str) -> Json:
    """A Prometheus annotation: one event (or region, when several steps in a row match) per series."""
    return {
        "name": name,
        "datasource": DATASOURCE,
        "enable": True,
        "hide": False,
        "iconColor": color,
        "expr": expr,
        "step": "1m",
        "tagKeys": tag_keys,
        "titleFormat": title,
        "textFormat": text,
        "useValueForTime": False,
    }


BUILTIN_ANNOTATION: Json = {
    "builtIn": 1,
    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
    "enable": True,
    "hide": True,
    "iconColor": "rgba(0, 211, 255, 1)",
    "name": "Annotations & Alerts",
    "type": "dashboard",
}


def dashboard(
    *,
    uid: str,
    title: str,
    description: str,
    rows: Iterable[Sequence[Json]],
    variables: Sequence[Json],
    annotations: Sequence[Json] = (),
    tags: Sequence[str] = (),
    time_from: str = "now-6h",
) -> Json:
    """A complete dashboard; every IPTV dashboard links to the others through the shared tag."""
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": [TAG, *tags],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "refresh": "30s",
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "weekStart": "",
        "annotations": {"list": [BUILTIN_ANNOTATION, *annotations]},
        "links": [
            {
                "title": "IPTV dashboards",
                "type": "dashboards",
                "tags": [TAG],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
                "targetBlank": False,
                "icon": "external link",
                "tooltip": "",
                "url": "",
            }
        ],
        "templating": {"list": list(variables)},
        "panels": layout(rows),
    }
