"""Dashboard lint: the useful rules of Grafana's dashboard-linter, re-implemented for these dashboards.

:func:`lint` returns one message per problem (empty when the dashboard is clean):

- a template variable ``datasource`` of type datasource for Prometheus, and every panel, target, query
  variable and annotation using ``${datasource}``;
- every panel has a description and a unit (rows, text and alert list panels have no values);
- counters (``*_total``) only inside rate, irate, increase, changes or resets;
- rate and irate windows are ``$__rate_interval``; increase windows ``$__rate_interval`` or ``$__range``;
- every ``$variable`` in a query is defined (or one of Grafana's built-in ones);
- uid at most 40 characters, unique panel ids and target refIds, and grid positions inside 24 columns
  without overlaps.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from exporter.dashboards.core import DATASOURCE, GRID_COLUMNS, Json

MAX_UID = 40
NO_VALUES = frozenset({"row", "text", "alertlist", "dashlist", "news"})
COUNTER_FUNCTIONS = frozenset({"rate", "irate", "increase", "changes", "resets"})
RATE_WINDOWS = {
    "rate": {"$__rate_interval"},
    "irate": {"$__rate_interval"},
    "increase": {"$__rate_interval", "$__range"},
}
BUILTIN_VARIABLES = frozenset(
    {"__rate_interval", "__range", "__range_s", "__range_ms", "__interval", "__interval_ms", "__all"}
)
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = GROUPING | {"bool", "offset", "and", "or", "unless", "atan2", "inf", "nan", "start", "end"}

_TOKEN = re.compile(
    r"""(?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
      |(?P<window>\[[^\]]*\])
      |(?P<matchers>\{(?:"(?:\\.|[^"\\])*"|[^}"])*\})
      |(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
      |(?P<open>\()
      |(?P<close>\))
      |(?P<other>\S)""",
    re.VERBOSE,
)
_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")


@dataclass(frozen=True)
class Token:
    kind: str
    text: str


def tokens(expr: str) -> list[Token]:
    """PromQL tokens, enough to tell metric names, function calls, label matchers and range windows."""
    found = []
    for match in _TOKEN.finditer(expr):
        kind = match.lastgroup or "other"
        found.append(Token(kind, match.group(kind)))
    return found


def expr_problems(expr: str) -> list[str]:
    """Counter and rate-window problems of one PromQL expression."""
    problems: list[str] = []
    toks = tokens(expr)
    calls: list[str] = []  # the function (or grouping keyword, or "") of each open parenthesis
    for i, tok in enumerate(toks):
        following = toks[i + 1] if i + 1 < len(toks) else None
        if tok.kind == "open":
            previous = toks[i - 1] if i > 0 else None
            calls.append(previous.text if previous is not None and previous.kind == "ident" else "")
        elif tok.kind == "close":
            if calls:
                calls.pop()
        elif tok.kind == "ident":
            called = following is not None and following.kind == "open"
            if called or tok.text in KEYWORDS or (calls and calls[-1] in GROUPING):
                continue
            if tok.text.endswith("_total") and not COUNTER_FUNCTIONS.intersection(calls):
                problems.append(f"counter {tok.text} used outside {'/'.join(sorted(COUNTER_FUNCTIONS))}")
        elif tok.kind == "window" and calls and ":" not in tok.text:
            allowed = RATE_WINDOWS.get(calls[-1])
            window = tok.text[1:-1].strip()
            if allowed is not None and window not in allowed:
                problems.append(f"{calls[-1]}() window [{window}] should be {' or '.join(sorted(allowed))}")
    return problems


def variables_used(text: str) -> set[str]:
    return {a or b for a, b in _VARIABLE.findall(text)}


def _queries(board: Json) -> Iterator[tuple[str, Json]]:
    """(where, query-like object) for every panel target, annotation and query variable."""
    for panel in board.get("panels", []):
        for t in panel.get("targets", []):
            yield f"panel {panel.get('id')} {panel.get('title')!r} target {t.get('refId')}", t
    for a in board.get("annotations", {}).get("list", []):
        if not a.get("builtIn"):
            yield f"annotation {a.get('name')!r}", a
    for v in board.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            yield f"variable {v.get('name')!r}", v


def _query_text(query: Json) -> str:
    expr = query.get("expr")
    if expr is None:
        inner = query.get("query")
        expr = inner.get("query") if isinstance(inner, dict) else inner
    return str(expr or "")


def lint_datasources(board: Json) -> list[str]:
    problems = []
    variables = {v.get("name"): v for v in board.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if ds is None or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problems.append("needs a template variable `datasource` of type datasource with query prometheus")
    for panel in board.get("panels", []):
        if panel.get("type") != "row" and panel.get("datasource") != DATASOURCE:
            problems.append(f"panel {panel.get('id')} {panel.get('title')!r}: datasource must be {DATASOURCE}")
    for where, query in _queries(board):
        if query.get("datasource") != DATASOURCE:
            problems.append(f"{where}: datasource must be {DATASOURCE}")
    return problems


def lint_panels(board: Json) -> list[str]:
    problems = []
    ids: set[object] = set()
    for panel in board.get("panels", []):
        where = f"panel {panel.get('id')} {panel.get('title')!r}"
        if panel.get("id") in ids:
            problems.append(f"{where}: duplicate panel id")
        ids.add(panel.get("id"))
        if panel.get("type") in NO_VALUES:
            continue
        if not str(panel.get("description", "")).strip():
            problems.append(f"{where}: no description")
        if not panel.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            problems.append(f"{where}: no unit (fieldConfig.defaults.unit)")
        ref_ids = [t.get("refId") for t in panel.get("targets", [])]
        if not ref_ids:
            problems.append(f"{where}: no queries")
        if len(set(ref_ids)) != len(ref_ids):
            problems.append(f"{where}: duplicate refId")
    return problems


def lint_queries(board: Json) -> list[str]:
    defined = {v.get("name") for v in board.get("templating", {}).get("list", [])} | BUILTIN_VARIABLES
    problems = []
    for where, query in _queries(board):
        expr = _query_text(query)
        if not expr.strip():
            problems.append(f"{where}: empty query")
        problems += [f"{where}: {problem}" for problem in expr_problems(expr)]
        problems += [f"{where}: undefined variable ${name}" for name in sorted(variables_used(expr) - defined)]
    return problems


def lint_grid(board: Json) -> list[str]:
    problems = []
    cells: dict[tuple[int, int], object] = {}
    for panel in board.get("panels", []):
        where = f"panel {panel.get('id')} {panel.get('title')!r}"
        pos = panel.get("gridPos", {})
        x, y, w, h = (pos.get(k) for k in ("x", "y", "w", "h"))
        if not all(isinstance(n, int) for n in (x, y, w, h)):
            problems.append(f"{where}: gridPos needs integer x, y, w, h")
            continue
        if x < 0 or y < 0 or w < 1 or h < 1 or x + w > GRID_COLUMNS:
            problems.append(f"{where}: gridPos {pos} outside the {GRID_COLUMNS}-column grid")
            continue
        for cell in ((cx, cy) for cx in range(x, x + w) for cy in range(y, y + h)):
            other = cells.setdefault(cell, panel.get("id"))
            if other != panel.get("id"):
                problems.append(f"{where}: overlaps panel {other}")
                break
    return problems


def lint(board: Json) -> list[str]:
    problems = []
    uid = str(board.get("uid", ""))
    if not uid or len(uid) > MAX_UID:
        problems.append(f"uid {uid!r} must have 1 to {MAX_UID} characters")
    for rule in (lint_datasources, lint_panels, lint_queries, lint_grid):
        problems += rule(board)
    return problems
