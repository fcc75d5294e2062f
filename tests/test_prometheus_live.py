"""The shipped rules against live data: Debian's Prometheus scraping the real exporter every second.

Two real ffmpeg restreams (7 writes ``-progress`` to a file, 8 does not), real nginx serving their HLS
folder the PanelX way (the demo's origin config), three players on 127.x addresses pulling playlists and
segments through it, and the exporter as its own process watching all of that (sockets on nginx's port,
nginx's access log, the progress file, the playlists). Prometheus loads ``prometheus/rules/*.yml``
unchanged through ``prometheus/prometheus.yml`` with 1 s scrape and evaluation intervals.

Checked: every ``record:`` in the rule files returns series, every rule group evaluates without errors,
the healthy streams score about 100, and SIGKILLing stream 8 makes IPTVStreamDown (``for: 15s``, as
shipped) go pending, then fire 15 s later, for stream 8 only.

Also here, without real parts: every ``iptv_*`` metric the rules and dashboards query is documented in
docs/metrics.md.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from exporter.config import parse_duration
from exporter.demo.layout import Layout
from exporter.demo.origin import nginx_argv, nginx_conf
from exporter.demo.viewers import watch
from exporter.demo.workload import Viewer
from tests.helpers import REPO, Exporter, Proc, ffmpeg_hls_argv, free_port, metric, require_binary, wait_until
from tests.promserver import api, query, start_prometheus, wait_for_rules
from tests.rules_config import prometheus_config, targets_file

RULE_FILES = sorted((REPO / "prometheus" / "rules").glob("*.yml"))
DASHBOARDS = sorted((REPO / "grafana" / "dashboards").glob("*.json"))
METRICS_DOC = REPO / "docs" / "metrics.md"

NODE = "edge-live"
HEALTHY, VICTIM = "7", "8"
FOR_SECONDS = 15.0  # IPTVStreamDown's shipped `for: 15s` (checked against the rule file below)
FIRING_SLACK = 20.0  # sampling (1 s) + scrape (1 s) + its group's 5 s evaluation + a loaded 2-core box
CAPACITY = 100_000_000  # egress_capacity_bits_per_second: gives the utilization rule a denominator
VIEWERS = (  # the demo's lines; distinct addresses and agents, so each is one viewer
    Viewer("127.1.0.10", "alice", "Secr3t", HEALTHY, "VLC/3.0.20 LibVLC/3.0.20"),
    Viewer("127.2.0.10", "bob", "pa55", HEALTHY, "okhttp/4.9.2"),
    Viewer("127.3.0.10", "carol", "xyz123", VICTIM, "IPTVSmartersPlayer"),
)


# --- rule files ------------------------------------------------------------------------------------


def rule_groups() -> list[dict[str, Any]]:
    return [g for path in RULE_FILES for g in yaml.safe_load(path.read_text())["groups"]]


def recorded() -> list[tuple[str, dict[str, str]]]:
    """Every recording rule as (record, its static labels): rules sharing a name differ by labels."""
    return [(r["record"], dict(r.get("labels", {}))) for g in rule_groups() for r in g["rules"] if "record" in r]


def selector(name: str, labels: dict[str, str]) -> str:
    matchers = [f'__name__="{name}"', *(f'{k}="{v}"' for k, v in sorted(labels.items()))]
    return "{" + ",".join(matchers) + "}"


def stream_down_rule() -> dict[str, Any]:
    """IPTVStreamDown's restart request (the page is a second rule of the same name, after 3m)."""
    return next(r for g in rule_groups() for r in g["rules"]
                if r.get("alert") == "IPTVStreamDown" and r["labels"].get("action") == "restart")


# --- the live stack ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Live:
    prometheus: str
    exporter: Exporter
    streams: dict[str, Proc]


def stream_argv(layout: Layout, stream: str, progress: Path | None) -> list[str]:
    """The tiny test restream, with PanelX's segment names and URLs (``/streams/stream_<id>_<n>.ts``)."""
    argv = ffmpeg_hls_argv(layout.playlist(stream), progress=str(progress) if progress else None)
    return [*argv[:-1], "-hls_segment_filename", str(layout.segment_pattern(stream)),
            "-hls_base_url", "/streams/", argv[-1]]


def exporter_config(layout: Layout, nginx_port: int) -> Path:
    def static(stream: str, progress: bool) -> dict[str, str]:
        entry = {"id": stream, "name": f"Stream {stream}", "playlist": str(layout.playlist(stream)),
                 # this test's own processes only, whatever else runs on the box
                 "cmdline": re.escape(str(layout.playlist(stream)))}
        if progress:
            entry["progress"] = str(layout.progress_file(stream))
        return entry

    config = {
        "node": NODE,
        "sample_interval": "1s",
        "egress_capacity_bits_per_second": CAPACITY,
        "streams": {"discover": [], "static": [static(HEALTHY, True), static(VICTIM, False)]},
        "viewers": {"ports": [nginx_port],
                    "access_log": {"path": str(layout.access_log), "format": "combined", "preset": "panelx"}},
    }
    path = layout.etc / "iptv-exporter.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("live")
    layout = Layout(tmp / "root")
    for d in (layout.streams, layout.run, layout.progress, layout.logs, layout.etc, layout.data):
        d.mkdir(parents=True)
    nginx = require_binary("nginx")
    stop_viewers = threading.Event()
    with ExitStack() as stack:
        streams = {
            HEALTHY: Proc(stream_argv(layout, HEALTHY, layout.progress_file(HEALTHY)), log=layout.stream_log(HEALTHY)),
            VICTIM: Proc(stream_argv(layout, VICTIM, None), log=layout.stream_log(VICTIM)),
        }
        for proc in streams.values():
            proc.start()
            stack.callback(proc.stop)

        nginx_port = free_port()
        conf = layout.etc / "nginx.conf"
        conf.write_text(nginx_conf(layout, nginx_port))
        origin = f"http://127.0.0.1:{nginx_port}"
        stack.callback(Proc(nginx_argv(nginx, layout, conf), log=layout.logs / "nginx.out").start().stop)

        def serving() -> bool:  # both playlists through the line-checked PanelX URL
            return all(httpx.get(f"{origin}/live/alice/Secr3t/{s}.m3u8", timeout=2).status_code == 200
                       for s in (HEALTHY, VICTIM))

        wait_until(serving, timeout=30, what="nginx serving both streams' playlists")

        exporter = Exporter(exporter_config(layout, nginx_port), tmp).start()
        stack.callback(exporter.stop)

        threads = [threading.Thread(target=watch, args=(v, origin, stop_viewers), daemon=True) for v in VIEWERS]
        for t in threads:
            t.start()

        def stop_threads() -> None:
            stop_viewers.set()
            for t in threads:
                t.join(timeout=15)

        stack.callback(stop_threads)

        targets = targets_file(tmp / "iptv-targets.yml", {f"127.0.0.1:{exporter.port}": NODE})
        url = stack.enter_context(start_prometheus(prometheus_config({"iptv": targets}, interval="1s"), tmp / "prom"))
        wait_for_rules(url, timeout=30)
        wait_until(lambda: len(query(url, f'iptv_stream_up{{node="{NODE}"}} == 1')) == 2, timeout=30,
                   what="Prometheus scraping both streams up")
        yield Live(url, exporter, streams)


def alerts(url: str, name: str) -> list[dict[str, Any]]:
    return [a for a in api(url, "alerts", {})["data"]["alerts"] if a["labels"].get("alertname") == name]


# --- tests ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_recording_rule_returns_series(live: Live) -> None:
    rules = recorded()
    assert len(rules) >= 20, rules  # the files were really parsed
    # These look a day back: a fresh Prometheus has nothing there (prometheus/tests/viewers.yml tests them
    # over two days of series).
    yesterday = {"iptv:node_viewers_yesterday:min1h", "iptv:node_viewers_yesterday:avg30m"}
    assert yesterday <= {name for name, _ in rules}

    def all_recorded() -> bool:
        selectors = [selector(name, labels) for name, labels in rules if name not in yesterday]
        missing = [s for s in selectors if not query(live.prometheus, s)]
        if missing:
            raise ValueError(f"no series yet for {missing}")  # wait_until reports it at the deadline
        return True

    wait_until(all_recorded, timeout=40, interval=0.5, what="a series from every recording rule")

    # Real data behind the bandwidth and viewer rules, not just zeros.
    def value(expr: str) -> float:
        result = query(live.prometheus, expr)
        assert len(result) == 1, (expr, result)
        return float(result[0]["value"][1])

    wait_until(lambda: value(f'iptv:stream_egress_bits_per_second:rate1m{{stream="{HEALTHY}"}}') > 0,
               timeout=20, what="access-log egress for the watched stream")
    wait_until(lambda: value("iptv:node_egress_utilization:ratio_rate1m") > 0, timeout=20, what="egress utilization")
    assert value(f'iptv:stream_ingest_bits_per_second:rate1m{{stream="{HEALTHY}"}}') >= 0
    wait_until(lambda: value(f'iptv:fleet_stream_viewers:sum{{stream="{HEALTHY}"}}') == 2, timeout=20,
               what="both players of stream 7 counted")
    wait_until(lambda: value(f'iptv:node_viewers:sum{{node="{NODE}"}}') == len(VIEWERS), timeout=20,
               what="every player counted on the node")
    assert value(f'iptv:node_egress_utilization:ratio_rate1m{{node="{NODE}"}}') < 1
    # The node egress comes from the socket counters (the first branch of its `or`), not the fallback.
    wait_until(lambda: value(f'rate(iptv_connections_sent_bytes_total{{node="{NODE}"}}[1m])') > 0, timeout=20,
               what="socket counters on nginx's port")


@pytest.mark.slow
def test_every_rule_group_evaluates_without_errors(live: Live) -> None:
    groups = api(live.prometheus, "rules", {})["data"]["groups"]
    expected = {g["name"]: len(g["rules"]) for g in rule_groups()}
    assert {g["name"]: len(g["rules"]) for g in groups} == expected
    bad = [(g["name"], r.get("name"), r.get("health"), r.get("lastError"))
           for g in groups for r in g["rules"] if r.get("health") != "ok" or r.get("lastError")]
    assert not bad, bad
    # 1 s from the test's prometheus.yml, except groups that set their own (iptv.streams: 5 s).
    own = {g["name"]: parse_duration(str(g["interval"])) for g in rule_groups() if "interval" in g}
    assert all(g["interval"] == own.get(g["name"], 1) for g in groups), [(g["name"], g["interval"]) for g in groups]


@pytest.mark.slow
def test_healthy_streams_score_about_100(live: Live) -> None:
    # Seconds after Prometheus started: the pace (`speed`) is judged over the time the series covers.
    components = {"up", "progress", "playlist", "speed", "restarts", "errors", "drops"}

    def scored() -> dict[str, float] | None:
        have = {r["metric"]["component"] for r in
                query(live.prometheus, f'iptv:stream_health_component:ratio{{stream="{HEALTHY}"}}')}
        scores = {r["metric"]["stream"]: float(r["value"][1])
                  for r in query(live.prometheus, "iptv:stream_health_score")}
        return scores if have == components and set(scores) == {HEALTHY, VICTIM} else None

    scores = wait_until(scored, timeout=30, interval=0.5, what="every health component of stream 7 and both scores")
    assert scores[HEALTHY] >= 90, scores
    # Stream 8 writes no progress: scored on its playlist and errors alone.
    assert scores[VICTIM] >= 90, scores
    assert not query(live.prometheus, f'iptv:stream_health_component:ratio{{stream="{VICTIM}",component="speed"}}')


@pytest.mark.slow
def test_killed_stream_fires_stream_down_after_its_for_duration(live: Live) -> None:
    rule = stream_down_rule()
    assert rule["for"] == "15s" and FOR_SECONDS == 15.0, rule["for"]
    assert alerts(live.prometheus, "IPTVStreamDown") == []

    def check_healthy_stream_quiet() -> None:
        noisy = [a for a in alerts(live.prometheus, "IPTVStreamDown") if a["labels"].get("stream") != VICTIM]
        assert not noisy, noisy  # AssertionError is not retried by wait_until: fails at once

    victim = live.streams[VICTIM]
    victim.signal(signal.SIGKILL)
    killed = time.monotonic()
    victim.popen.wait(5)

    wait_until(lambda: query(live.prometheus, f'iptv_stream_up{{node="{NODE}",stream="{VICTIM}"}} == 0'),
               timeout=15, what="Prometheus seeing stream 8 down")

    def state(wanted: str) -> dict[str, Any] | None:
        check_healthy_stream_quiet()
        found = [a for a in alerts(live.prometheus, "IPTVStreamDown")
                 if a["labels"].get("stream") == VICTIM and a["labels"].get("action") == "restart"]
        assert len(found) <= 1, found
        return found[0] if found and found[0]["state"] == wanted else None

    pending = wait_until(lambda: state("pending"), timeout=20, interval=0.2, what="IPTVStreamDown pending")
    pending_after = time.monotonic() - killed
    firing = wait_until(lambda: state("firing"), timeout=FOR_SECONDS + FIRING_SLACK - pending_after, interval=0.2,
                        what="IPTVStreamDown firing")
    firing_after = time.monotonic() - killed
    print(f"\nkill -> IPTVStreamDown pending {pending_after:.1f}s, firing {firing_after:.1f}s")

    assert FOR_SECONDS <= firing_after <= FOR_SECONDS + FIRING_SLACK, firing_after
    assert firing["activeAt"] == pending["activeAt"]  # the same alert instance, pending then firing
    assert firing["labels"] == {
        "alertname": "IPTVStreamDown", "stream": VICTIM, "node": NODE, "severity": "critical",
        "action": "restart", "instance": f"127.0.0.1:{live.exporter.port}", "job": "iptv",
    }
    assert firing["annotations"]["summary"] == f"Stream {VICTIM} is down on {NODE}"
    assert float(firing["value"]) == 0

    # The dead stream scores 0; the live one is untouched and still scraped up.
    # (The request fires after 15 s; the score's windows take longer to reach 0: wait for it.)
    wait_until(lambda: float(query(live.prometheus, f'iptv:stream_health_score{{stream="{VICTIM}"}}')[0]["value"][1])
               == 0, timeout=90, interval=0.5, what="the dead stream's health score at 0")
    assert query(live.prometheus, f'iptv_stream_up{{stream="{HEALTHY}"}} == 1')
    assert live.streams[HEALTHY].alive()
    assert metric(live.exporter.scrape(), "iptv_stream_errors_total", stream=VICTIM, kind="exit") == 1
    check_healthy_stream_quiet()


# --- documentation ----------------------------------------------------------------------------------


def documented_metrics() -> dict[str, str]:
    """``{metric: type}`` from the tables of docs/metrics.md."""
    rows = re.findall(r"^\|\s*(iptv_[a-z0-9_]+)\s*\|\s*(\w+)\s*\|", METRICS_DOC.read_text(), flags=re.M)
    return dict(rows)


def queried_metrics() -> dict[str, set[str]]:
    """``{iptv_* name: files}`` for every name in a rule ``expr`` and in a dashboard query.

    Recording rules (``iptv:...``) do not match ``iptv_``, so only raw metrics are collected.
    """
    found: dict[str, set[str]] = {}

    def add(text: str, where: str) -> None:
        for name in re.findall(r"\biptv_[a-z0-9_]+", text):
            found.setdefault(name, set()).add(where)

    for group in rule_groups():
        for rule in group["rules"]:
            add(rule["expr"], f"rules:{group['name']}")

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in {"expr", "query", "definition"} and isinstance(value, str):
                    add(value, where)
                else:
                    walk(value, where)
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    for board in DASHBOARDS:
        walk(json.loads(board.read_text()), board.name)
    return found


def is_documented(name: str, docs: dict[str, str]) -> bool:
    if name in docs:
        return True
    for suffix in ("_bucket", "_count", "_sum"):
        base = name.removesuffix(suffix)
        if base != name and docs.get(base) in {"histogram", "summary"}:
            return True
    return False


def test_every_metric_the_rules_and_dashboards_query_is_documented() -> None:
    docs = documented_metrics()
    queried = queried_metrics()
    assert len(DASHBOARDS) >= 4 and "iptv_stream_up" in queried and "iptv_stream_sent_bytes_total" in queried
    bucket = "iptv_action_duration_seconds_bucket"  # a histogram's series, documented under its family
    assert bucket not in docs and is_documented(bucket, docs)
    assert not is_documented("iptv_stream_up_bucket", docs)  # only histograms have buckets
    missing = {name: sorted(where) for name, where in sorted(queried.items()) if not is_documented(name, docs)}
    assert not missing, f"queried but not in docs/metrics.md: {missing}"
