"""Dashboards: drift check, lint (each rule shown to fire), and every query run against a real Prometheus."""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.dashboards import OUTPUT_DIR, build_all, render
from exporter.dashboards.__main__ import differences, main
from exporter.dashboards.continents import CONTINENTS
from exporter.dashboards.core import Json, layout, panel, target
from exporter.dashboards.lint import expr_problems, lint, tokens
from tests.helpers import REPO
from tests.promserver import (
    Series,
    api,
    backfill,
    openmetrics,
    prometheus_config,
    query,
    repo_rule_files,
    start_prometheus,
    wait_for_rules,
)

BOARDS = build_all()
UIDS = {"iptv-overview", "iptv-bandwidth", "iptv-viewers-map", "iptv-stream-health"}


# --- generated files -------------------------------------------------------------------------------


def test_committed_json_matches_the_generator() -> None:
    rendered = {name: render(board) for name, board in BOARDS.items()}
    assert differences(OUTPUT_DIR, rendered) == []


def test_check_lists_missing_stale_and_extra_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--output-dir", str(tmp_path)]) == 0
    assert main(["--check", "--output-dir", str(tmp_path)]) == 0
    stale = tmp_path / "iptv-bandwidth.json"
    stale.write_text(stale.read_text().replace("Egress now", "Egress today"))
    (tmp_path / "iptv-overview.json").unlink()
    (tmp_path / "hand-made.json").write_text("{}\n")
    capsys.readouterr()
    assert main(["--check", "--output-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "iptv-overview.json: missing" in err
    assert "iptv-bandwidth.json: differs" in err and '+      "title": "Egress now"' in err
    assert "hand-made.json: not generated" in err


def test_dashboards_have_fixed_uids_tag_links_and_variables() -> None:
    assert {board["uid"] for board in BOARDS.values()} == UIDS
    for board in BOARDS.values():
        assert "iptv" in board["tags"]
        assert board["schemaVersion"] >= 39
        assert [(link["type"], link["tags"]) for link in board["links"]] == [("dashboards", ["iptv"])]
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["node"]["definition"] == "label_values(iptv_exporter_build_info, node)"
        assert variables["node"]["multi"] and variables["node"]["includeAll"]
        if board["uid"] != "iptv-viewers-map":
            assert variables["stream"]["definition"] == 'label_values(iptv_stream_info{node=~"$node"}, stream)'
    map_vars = [v["name"] for v in BOARDS["iptv-viewers-map.json"]["templating"]["list"]]
    assert map_vars == ["datasource", "node", "continent", "country"]


def test_geomap_has_country_lookup_and_city_coordinate_layers() -> None:
    (geomap,) = [p for p in BOARDS["iptv-viewers-map.json"]["panels"] if p["type"] == "geomap"]
    countries, cities = geomap["options"]["layers"]
    assert countries["location"] == {
        "mode": "lookup", "lookup": "country", "gazetteer": "public/gazetteer/countries.json"
    }
    assert countries["config"]["style"]["size"]["field"] == countries["config"]["style"]["color"]["field"]
    assert cities["location"] == {"mode": "coords", "latitude": "latitude", "longitude": "longitude"}
    refs = {t["refId"]: t for t in geomap["targets"]}
    assert [layer["filterData"]["options"] for layer in (countries, cities)] == ["A", "B"]
    assert all(t["format"] == "table" and t["instant"] for t in refs.values())
    (convert,) = [t for t in geomap["transformations"] if t["id"] == "convertFieldType"]
    converted = {(c["targetField"], c["destinationType"]) for c in convert["options"]["conversions"]}
    assert converted == {("latitude", "number"), ("longitude", "number")}


def test_continents_cover_each_country_once() -> None:
    codes = [code for members in CONTINENTS.values() for code in members]
    assert len(codes) == len(set(codes))
    assert all(re.fullmatch(r"[A-Z]{2}", code) for code in codes)
    assert {"DE", "GB", "US", "BR", "JP", "AU", "ZA", "RU"} <= set(codes)


# --- lint -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_dashboard_passes_lint(name: str) -> None:
    assert lint(BOARDS[name]) == []


def first_panel(board: Json) -> Json:
    return next(p for p in board["panels"] if p.get("targets"))


def _drop_datasource_variable(b: Json) -> None:
    b["templating"]["list"] = [v for v in b["templating"]["list"] if v["name"] != "datasource"]


def _panel_datasource(b: Json) -> None:
    first_panel(b)["datasource"] = {"type": "prometheus", "uid": "prometheus"}


def _target_datasource(b: Json) -> None:
    first_panel(b)["targets"][0]["datasource"] = {"type": "prometheus", "uid": "prometheus"}


def _no_description(b: Json) -> None:
    first_panel(b)["description"] = " "


def _no_unit(b: Json) -> None:
    del first_panel(b)["fieldConfig"]["defaults"]["unit"]


def _raw_counter(b: Json) -> None:
    first_panel(b)["targets"][0]["expr"] = "sum(iptv_stream_sent_bytes_total)"


def _fixed_rate_window(b: Json) -> None:
    first_panel(b)["targets"][0]["expr"] = "sum(rate(iptv_stream_sent_bytes_total[5m]))"


def _undefined_variable(b: Json) -> None:
    first_panel(b)["targets"][0]["expr"] = 'sum(iptv_stream_up{node=~"$nodes"})'


def _long_uid(b: Json) -> None:
    b["uid"] = "iptv-" + "x" * 40


def _duplicate_id(b: Json) -> None:
    b["panels"][1]["id"] = b["panels"][0]["id"]


def _too_wide(b: Json) -> None:
    b["panels"][0]["gridPos"]["x"] = 22


def _overlap(b: Json) -> None:
    b["panels"][1]["gridPos"] = dict(b["panels"][0]["gridPos"])


def _duplicate_ref(b: Json) -> None:
    first_panel(b)["targets"].append(dict(first_panel(b)["targets"][0]))


BREAKAGES: dict[str, tuple[Callable[[Json], None], str]] = {
    "datasource variable": (_drop_datasource_variable, "template variable `datasource`"),
    "panel datasource": (_panel_datasource, "datasource must be"),
    "target datasource": (_target_datasource, "target A: datasource must be"),
    "description": (_no_description, "no description"),
    "unit": (_no_unit, "no unit"),
    "counter": (_raw_counter, "counter iptv_stream_sent_bytes_total used outside"),
    "rate window": (_fixed_rate_window, "rate() window [5m] should be $__rate_interval"),
    "variable": (_undefined_variable, "undefined variable $nodes"),
    "uid": (_long_uid, "must have 1 to 40 characters"),
    "panel id": (_duplicate_id, "duplicate panel id"),
    "grid width": (_too_wide, "outside the 24-column grid"),
    "grid overlap": (_overlap, "overlaps panel"),
    "refId": (_duplicate_ref, "duplicate refId"),
}


@pytest.mark.parametrize("rule", sorted(BREAKAGES))
def test_lint_rule_fires(rule: str) -> None:
    board = copy.deepcopy(BOARDS["iptv-overview.json"])
    breakage, message = BREAKAGES[rule]
    breakage(board)
    problems = lint(board)
    assert any(message in p for p in problems), problems


@pytest.mark.parametrize(
    ("expr", "problems"),
    [
        ("rate(a_total[$__rate_interval])", 0),
        ('sum by (x_total) (increase(a_total{l="b_total"}[$__range]))', 0),
        ("changes(a_total[2m]) > 0", 0),
        ("max_over_time((sum(rate(a_total[$__rate_interval])))[$__range:$__interval])", 0),
        ("a * on (b_total) group_left (c_total) d", 0),
        ("max_over_time(a_total[1h])", 1),
        ("irate(a_total[1m])", 1),
        ("increase(a_total[1h])", 1),
        ("a_total + rate(b_total[5m])", 2),
    ],
)
def test_expr_rules(expr: str, problems: int) -> None:
    assert len(expr_problems(expr)) == problems, expr_problems(expr)


def test_tokens_keep_strings_and_windows_whole() -> None:
    kinds = [(t.kind, t.text) for t in tokens('rate(m{a="x)[y]"}[5m])')]
    assert kinds == [("ident", "rate"), ("open", "("), ("ident", "m"), ("matchers", '{a="x)[y]"}'),
                     ("window", "[5m]"), ("close", ")")]


def test_layout_rejects_a_row_wider_than_the_grid() -> None:
    wide = panel("stat", "t", "d", [target("1")], unit="short", size=(13, 4))
    with pytest.raises(ValueError, match="wider than 24"):
        layout([[wide, wide]])


# --- every query against a real Prometheus ----------------------------------------------------------

SUBSTITUTIONS = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
    "datasource": "prometheus",
}
"""Template variables become what Grafana would send; the others (node, stream, ...) select all: ``.*``."""

STEP = 15.0
HISTORY = 2 * 3600.0
RESTART_AGO = 1800.0

NODES = {"edge-1": "10.0.0.1:9756", "edge-2": "10.0.0.2:9756"}
STREAMS = [  # node, stream id, name, viewers; edge-2's stream 3 is declared but down
    ("edge-1", "1", "BBC One", 40),
    ("edge-1", "2", "CNN International", 25),
    ("edge-1", "7", "Sky Sports", 60),
    ("edge-2", "1", "BBC One", 30),
    ("edge-2", "3", "ESPN", 0),
]
CONNECTIONS = {"edge-1": {"DE": 30, "GB": 50, "US": 20, "BR": 10}, "edge-2": {"FR": 15, "US": 10, "JP": 5}}
CITIES = {
    "edge-1": [("DE", "Berlin", "52.52", "13.405"), ("GB", "London", "51.5072", "-0.1276"),
               ("US", "New York", "40.7128", "-74.006")],
    "edge-2": [("FR", "Paris", "48.8566", "2.3522"), ("JP", "Tokyo", "35.6762", "139.6503")],
}
ISPS = [("3320", "Deutsche Telekom AG"), ("2856", "British Telecommunications PLC"), ("0", "other")]
SOURCES = ("processes", "sockets", "accesslog", "progress", "hls")


def sample_series(now: float) -> list[Series]:
    """Two nodes as Prometheus would have scraped them for the last two hours (target labels included)."""
    t0 = now - HISTORY
    restart_at = now - RESTART_AGO

    def const(v: float) -> Callable[[float], float]:
        return lambda t: v

    def per_second(v: float) -> Callable[[float], float]:
        return lambda t: v * (t - t0)

    def after(at: float, v: float = 1.0) -> Callable[[float], float]:
        return lambda t: v if t >= at else 0.0

    def actions(t: float) -> float:  # one more restart every 20 minutes
        return float((t - t0) // 1200)

    out: list[Series] = []
    for node, instance in NODES.items():
        base = {"instance": instance, "job": "iptv", "node": node}

        def add(metric: str, fn: Callable[[float], float | None], base: dict[str, str] = base,
                **labels: str) -> None:
            out.append((metric, {**base, **labels}, fn))

        add("iptv_exporter_build_info", const(1), version="0.1.0")
        add("iptv_exporter_last_sample_timestamp_seconds", lambda t: t)
        for source in SOURCES:
            add("iptv_exporter_source_up", const(0 if (node, source) == ("edge-2", "hls") else 1), source=source)
            add("iptv_exporter_source_duration_seconds", const(0.012), source=source)
        if node == "edge-1":
            add("iptv_node_egress_capacity_bytes_per_second", const(1.25e8))
        for country, n in CONNECTIONS[node].items():
            add("iptv_connections", const(n), country=country)
        for country, city, lat, lon in CITIES[node]:
            add("iptv_connections_city", const(8), country=country, city=city, latitude=lat, longitude=lon)
        for asn, isp in ISPS:
            add("iptv_connections_isp", const(12), asn=asn, isp=isp)
        for port, bps in (("80", 2.5e7), ("8080", 1e6)):
            add("iptv_connections_sent_bytes_total", per_second(bps), port=port)
            add("iptv_connections_received_bytes_total", per_second(bps / 100), port=port)
        add("iptv_lines_online", const(80))
        add("iptv_lines_sharing_suspected", const(1 if node == "edge-1" else 0))
        for le in ("1", "5", "10", "30", "+Inf"):
            add("iptv_action_duration_seconds_bucket", (lambda t: 0.0) if le == "1" else actions,
                action="restart", le=le)
        add("iptv_action_duration_seconds_sum", lambda t: 4.0 * actions(t), action="restart")
        add("iptv_action_duration_seconds_count", actions, action="restart")

    for node, stream, title, viewers in STREAMS:
        base = {"instance": NODES[node], "job": "iptv", "node": node, "stream": stream}

        def add_s(metric: str, fn: Callable[[float], float | None], base: dict[str, str] = base,
                  **labels: str) -> None:
            out.append((metric, {**base, **labels}, fn))

        add_s("iptv_stream_info", const(1), name=title)
        up = viewers > 0
        add_s("iptv_stream_up", const(1 if up else 0))
        add_s("iptv_restart_circuit_open", const(0 if up else 1))
        add_s("iptv_stream_errors_total", per_second(0.002 if stream == "2" else 0.0), kind="decode")
        if not up:
            add_s("iptv_actions_total", lambda t: float(min(3, max(0, (t - restart_at) // 300 + 1))),
                  action="restart", result="failure")
            continue
        restarted = (node, stream) == ("edge-1", "7")
        add_s("iptv_stream_start_time_seconds", const(restart_at if restarted else t0 - 86400))
        add_s("iptv_stream_restarts_total", after(restart_at) if restarted else const(0))
        if restarted:
            add_s("iptv_actions_total", after(restart_at), action="restart", result="success")
        slow = stream == "2"
        add_s("iptv_stream_cpu_seconds_total", per_second(0.4))
        add_s("iptv_stream_resident_memory_bytes", const(8e7))
        add_s("iptv_stream_read_bytes_total", per_second(5e5))
        add_s("iptv_stream_fps", const(24.0 if slow else 25.0))
        add_s("iptv_stream_speed_ratio", const(0.9 if slow else 1.0))
        add_s("iptv_stream_frames_total", per_second(25))
        add_s("iptv_stream_dropped_frames_total", per_second(0.5 if slow else 0.0))
        add_s("iptv_stream_duplicated_frames_total", const(0))
        add_s("iptv_stream_progress_timestamp_seconds", lambda t: t)
        add_s("iptv_stream_playlist_updated_timestamp_seconds", lambda t: t - t % 10)
        add_s("iptv_stream_segment_duration_seconds", const(10))
        add_s("iptv_stream_output_bytes_per_second", const(5e5))
        add_s("iptv_stream_viewers", const(viewers))
        add_s("iptv_stream_sent_bytes_total", per_second(viewers * 5e5))
        add_s("iptv_stream_http_responses_total", per_second(viewers * 0.2), code="2xx")
    return out


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus with two hours of sample history and the repository's rules, ready to query."""
    data = tmp_path_factory.mktemp("dashboards") / "data"
    now = time.time()
    backfill(openmetrics(sample_series(now), now - HISTORY, now, STEP), data)
    with start_prometheus(prometheus_config(rule_files=repo_rule_files()), data) as url:
        wait_for_rules(url)
        yield url


@pytest.mark.slow
def test_health_score_colours_the_down_stream_red(prometheus: str) -> None:
    """First of the Prometheus tests: the history ends when the server starts (TSDB refuses rule results
    older than its newest block, so it cannot run ahead), and progress counts as fresh for a minute."""
    scores = {
        (s["metric"]["node"], s["metric"]["stream"]): float(s["value"][1])
        for s in query(prometheus, "iptv:stream_health_score")
    }
    assert scores[("edge-2", "3")] < 50
    assert scores[("edge-1", "1")] >= 80


def substitute(expr: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return SUBSTITUTIONS.get(name, ".*")

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", value, expr)


def queries() -> Iterator[Any]:
    for _, board in sorted(BOARDS.items()):
        for p in board["panels"]:
            for t in p.get("targets", []):
                yield pytest.param(p, t, id=f"{board['uid']}/{p['id']}-{p['title']}/{t['refId']}")
        for a in board["annotations"]["list"]:
            if "expr" in a:
                yield pytest.param({"type": "annotation", "title": a["name"]}, a, id=f"{board['uid']}/@{a['name']}")


MAY_BE_EMPTY = re.compile(r"ALERTS")
"""Alerts need their `for:` to pass before they fire; a fresh Prometheus has none."""


def run(url: str, expr: str, *, instant: bool) -> list[dict[str, Any]]:
    if instant:
        return query(url, expr)
    end = time.time()
    body = api(url, "query_range", {"query": expr, "start": end - 3600, "end": end, "step": 60})
    assert body["status"] == "success", f"{expr}: {body.get('error')}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


@pytest.mark.slow
@pytest.mark.parametrize(("panel_json", "query_json"), list(queries()))
def test_query_runs_and_returns_data(prometheus: str, panel_json: Json, query_json: Json) -> None:
    expr = substitute(query_json["expr"])
    result = run(prometheus, expr, instant=bool(query_json.get("instant")))
    if not MAY_BE_EMPTY.search(expr):
        assert result, f"no data for {expr}"
    if panel_json["type"] == "table":
        organize = [t for t in panel_json.get("transformations", []) if t["id"] == "organize"]
        columns = organize[0]["options"]["renameByName"] if organize else {}
        labels = {label for series in result for label in series["metric"]} - {"__name__"}
        assert labels <= set(columns), f"unnamed columns {labels - set(columns)} from {expr}"


def variable_queries() -> Iterator[Any]:
    for board in BOARDS.values():
        for v in board["templating"]["list"]:
            if v["type"] == "query":
                yield pytest.param(v["definition"], id=f"{board['uid']}/${v['name']}")


@pytest.mark.slow
@pytest.mark.parametrize("definition", list(variable_queries()))
def test_variable_query_finds_values(prometheus: str, definition: str) -> None:
    match = re.fullmatch(r"label_values\((.+), (\w+)\)", substitute(definition))
    assert match, definition
    selector, label = match.groups()
    body = api(prometheus, f"label/{label}/values", {"match[]": selector})
    assert body["status"] == "success" and body["data"], (definition, body)


@pytest.mark.slow
def test_geomap_rows_have_countries_and_numeric_coordinates(prometheus: str) -> None:
    (geomap,) = [p for p in BOARDS["iptv-viewers-map.json"]["panels"] if p["type"] == "geomap"]
    countries, cities = (query(prometheus, substitute(t["expr"])) for t in geomap["targets"])
    assert {s["metric"]["country"] for s in countries} == {"DE", "GB", "US", "BR", "FR", "JP"}
    for s in cities:
        float(s["metric"]["latitude"]), float(s["metric"]["longitude"])
    assert {s["metric"]["city"] for s in cities} >= {"Berlin", "Tokyo"}


@pytest.mark.slow
def test_continent_variable_filters_countries(prometheus: str) -> None:
    board = BOARDS["iptv-viewers-map.json"]
    continent = next(v for v in board["templating"]["list"] if v["name"] == "continent")
    europe = next(o["value"] for o in continent["options"] if o["text"] == "Europe")
    (table_panel,) = [p for p in board["panels"] if p["title"] == "Connections by country"]
    expr = table_panel["targets"][0]["expr"].replace("${continent:raw}", europe)
    assert {s["metric"]["country"] for s in query(prometheus, substitute(expr))} == {"DE", "GB", "FR"}


def test_sample_data_covers_every_metric_the_dashboards_use() -> None:
    used = set()
    for board in BOARDS.values():
        for p in board["panels"]:
            for t in p.get("targets", []):
                used |= {tok.text for tok in tokens(t["expr"]) if tok.kind == "ident"}
    used = {name for name in used if name.startswith("iptv_")}
    sampled = {name for name, _, _ in sample_series(time.time())}
    assert used - sampled == set()


def test_recording_rules_the_dashboards_use_exist() -> None:
    recorded = set()
    for path in repo_rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            recorded |= {rule["record"] for rule in group["rules"] if "record" in rule}
    used = set()
    for board in BOARDS.values():
        for p in board["panels"]:
            for t in p.get("targets", []):
                used |= {tok.text for tok in tokens(t["expr"]) if tok.kind == "ident" and ":" in tok.text}
    assert used and used <= recorded, used - recorded


def test_provisioning_points_grafana_at_the_dashboards() -> None:
    datasources = yaml.safe_load((REPO / "grafana/provisioning/datasources/prometheus.yml").read_text())
    (ds,) = datasources["datasources"]
    assert (ds["uid"], ds["type"]) == ("prometheus", "prometheus")
    providers = yaml.safe_load((REPO / "grafana/provisioning/dashboards/iptv.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["folder"] == "IPTV"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"

