"""Dashboard lint: the rules of Grafana's dashboard-linter that neither the SDK nor a PromQL parser cover.

The SDK's typed builders make a misspelt option or a wrong value type a type error, and panels.layout and
panels.numbered give positions, ids and refIds by construction; whether PromQL parses is left to the real
parser (tests run every query through promtool and a real Prometheus). What is left, :func:`lint`
checks, one message per problem (empty when the dashboard is clean):

- every panel, target, query variable and annotation uses a datasource variable (``${datasource}`` for
  Prometheus, ``${viewers_api}`` for Infinity) that exists with that plugin type;
- every panel has a description and a unit that Grafana knows (the SDK's unit list, as dashboard-linter's
  panel-units-rule: no custom ``suffix:`` units);
- counters (``*_total``) only inside rate, irate, increase, changes or resets; histogram buckets
  (``*_bucket``) only inside histogram_quantile;
- rate and irate windows are ``$__rate_interval``; increase windows ``$__rate_interval`` or ``$__range``;
- every ``$variable`` in a query is defined (or one of Grafana's built-in ones);
- query variables reload on time range change; every variable is used by some query;
- uid at most 40 characters; ``editable`` false, as the provisioning allows no saving.

dashboard-linter's job/instance matcher rule is not applied: `node` is this fleet's target label.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from grafana_foundation_sdk.models import units

from exporter.dashboards.base import PROMETHEUS, Json

KNOWN_UNITS = frozenset(v for k, v in vars(units).items() if not k.startswith("_") and isinstance(v, str))
"""Grafana's units, as the SDK lists them (models/units.py)."""

MAX_UID = 40
NO_VALUES = frozenset({"row", "text", "alertlist", "dashlist", "news"})
COUNTER_FUNCTIONS = frozenset({"rate", "irate", "increase", "changes", "resets"})
RATE_WINDOWS = {
    "rate": {"$__rate_interval"},
    "irate": {"$__rate_interval"},
    "increase": {"$__rate_interval", "$__range"},
}
BUILTIN_VARIABLES = frozenset(
    {"__rate_interval", "__range", "__range_s", "__range_ms", "__interval", "__interval_ms", "__all",
     "__url_time_range", "__field", "__data", "__value"}
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
    """Counter, histogram and rate-window problems of one PromQL expression (assumed to parse: promtool
    checks that, see tests/test_dashboards.py)."""
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
            if tok.text.endswith("_bucket") and "histogram_quantile" not in calls:
                problems.append(f"histogram bucket {tok.text} used outside histogram_quantile")
        elif tok.kind == "window" and calls and ":" not in tok.text:
            allowed = RATE_WINDOWS.get(calls[-1])
            window = tok.text[1:-1].strip()
            if allowed is not None and window not in allowed:
                problems.append(f"{calls[-1]}() window [{window}] should be {' or '.join(sorted(allowed))}")
    return problems


def variables_used(text: str) -> set[str]:
    return {a or b for a, b in _VARIABLE.findall(text)}


def _queries(board: Json) -> Iterator[tuple[str, Json]]:
    """(where, query) for every Prometheus panel target, annotation and query variable."""
    for panel in board.get("panels", []):
        for t in panel.get("targets", []):
            if t.get("datasource", {}).get("type") == PROMETHEUS:
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


def _datasource_problem(ref: object, sources: dict[str, str]) -> str | None:
    """Why ``ref`` is not ``{"type": T, "uid": "${var}"}`` with ``var`` a datasource variable of type T."""
    if not isinstance(ref, dict):
        return f"datasource must be a datasource variable, not {ref!r}"
    uid = str(ref.get("uid", ""))
    name = uid[2:-1] if uid.startswith("${") and uid.endswith("}") else None
    if name is None or name not in sources:
        return f"datasource {ref} must use a datasource variable (${{datasource}})"
    if sources[name] != ref.get("type"):
        return f"datasource {ref} is of type {ref.get('type')}, variable ${name} of type {sources[name]}"
    return None


def lint_datasources(board: Json) -> list[str]:
    variables = board.get("templating", {}).get("list", [])
    sources = {str(v.get("name")): str(v.get("query")) for v in variables if v.get("type") == "datasource"}
    problems = []
    if sources.get("datasource") != PROMETHEUS:
        problems.append("needs a template variable `datasource` of type datasource with query prometheus")
    for panel in board.get("panels", []):
        where = f"panel {panel.get('id')} {panel.get('title')!r}"
        problem = _datasource_problem(panel.get("datasource"), sources)
        if problem:
            problems.append(f"{where}: {problem}")
        for t in panel.get("targets", []):
            problem = _datasource_problem(t.get("datasource"), sources)
            if problem:
                problems.append(f"{where} target {t.get('refId')}: {problem}")
    for a in board.get("annotations", {}).get("list", []):
        problem = None if a.get("builtIn") else _datasource_problem(a.get("datasource"), sources)
        if problem:
            problems.append(f"annotation {a.get('name')!r}: {problem}")
    for v in variables:
        problem = _datasource_problem(v.get("datasource"), sources) if v.get("type") == "query" else None
        if problem:
            problems.append(f"variable {v.get('name')!r}: {problem}")
    return problems


def lint_panels(board: Json) -> list[str]:
    problems = []
    for panel in board.get("panels", []):
        where = f"panel {panel.get('id')} {panel.get('title')!r}"
        if panel.get("type") in NO_VALUES:
            continue
        if not str(panel.get("description", "")).strip():
            problems.append(f"{where}: no description")
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        if not unit:
            problems.append(f"{where}: no unit (fieldConfig.defaults.unit)")
        units_used = [unit] + [
            p.get("value")
            for o in panel.get("fieldConfig", {}).get("overrides", [])
            for p in o.get("properties", [])
            if p.get("id") == "unit"
        ]
        for u in units_used:
            if u and u not in KNOWN_UNITS:
                problems.append(f"{where}: unit {u!r} is not one of Grafana's units")
        if not panel.get("targets"):
            problems.append(f"{where}: no queries")
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


def lint_variables(board: Json) -> list[str]:
    """Query variables reload when the time range changes; every variable is used by some query."""
    variables = board.get("templating", {}).get("list", [])
    used: set[str] = set()
    for panel in board.get("panels", []):
        used |= variables_used(json.dumps(panel.get("targets", [])))
        used |= variables_used(json.dumps(panel.get("datasource", {})))
    for v in variables:
        used |= variables_used(_query_text(v)) | variables_used(json.dumps(v.get("datasource", {})))
    for a in board.get("annotations", {}).get("list", []):
        used |= variables_used(str(a.get("expr", "")))
    problems = []
    for v in variables:
        if v.get("type") == "query" and v.get("refresh") != 2:
            problems.append(f"variable {v.get('name')!r}: refresh must be 2 (on time range change)")
        if v.get("name") not in used:
            problems.append(f"variable {v.get('name')!r} is used by no query")
    return problems


def lint(board: Json) -> list[str]:
    problems = []
    uid = str(board.get("uid", ""))
    if not uid or len(uid) > MAX_UID:
        problems.append(f"uid {uid!r} must have 1 to {MAX_UID} characters")
    if board.get("editable") is not False:
        problems.append("editable must be false: the provisioning (allowUiUpdates: false) cannot save edits")
    for rule in (lint_datasources, lint_panels, lint_queries, lint_variables):
        problems += rule(board)
    return problems
