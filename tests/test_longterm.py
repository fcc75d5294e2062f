"""A long-term store, proven end to end: an HA pair of Prometheus (``replica`` label) scrapes a real exporter on
a synthetic IPTV host and remote-writes into Debian's VictoriaMetrics (single node, started here on loopback,
``-dedup.minScrapeInterval`` = the iptv scrape interval, ``replica`` dropped on write as docs/scaling.md says).
Then every query of the committed dashboards (grafana/dashboards/*.json, read now, so a regenerated dashboard
is what is tested) and ``iptv-exporter report`` give the same numbers from VictoriaMetrics' Prometheus API as
from Prometheus, within 1%, with one series per label set (the pair deduplicated).

Two things make "the same numbers" well defined. The store keeps, per series and per 5 s, the sample of
whichever replica scraped later, so each answer is compared with both replicas' answers and must match one
of them. And the access log grows smoothly (every stream's bytes at a constant rate, written ten times a
second; stream i has i viewers), so a rate over a window is a property of the workload, not of which samples
fell into the window: Prometheus' rate() extrapolates to the window's edges, VictoriaMetrics' starts from the
sample before the window, and on a bursty counter the two differ by a few percent over one minute.
"""

from __future__ import annotations

import io
import json
import math
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench import geodata
from bench.fleetstack import Child, FleetStack, binary, http_json, query
from bench.options import Options
from bench.util import free_port, wait_until
from bench.workload import Host
from exporter import report
from exporter.cli import build_parser
from exporter.demo.logline import clf_time
from tests.helpers import REPO, require_binary

pytestmark = pytest.mark.slow

DASHBOARDS = sorted((REPO / "grafana" / "dashboards").glob("*.json"))
TOLERANCE = 0.01
SCRAPE = "5s"
VARIABLES = {"__rate_interval": "2m", "__interval": "15s", "__range": "2m", "topn": "10", "datasource": "prometheus"}
"""What Grafana would send for a short dashboard range; other variables (node, stream, country, ...) are All.
Two-minute rate windows: the exporter's counters reach Prometheus with the jitter of its 5 s sampling rounds
against the scrapes, and a maximum over one-minute rates (the bandwidth peaks) picks that jitter up (1-2% on a
loaded machine); over two minutes it stays well inside 1%."""


STREAMS = 20
TICK = 0.1
SEGMENT_BYTES = 10_000


@dataclass
class Stores:
    prometheus: list[str]
    """The HA pair, prom-a and prom-b."""
    victoria: str
    at: float
    """Evaluation time of every comparison: in the past, so both stores hold everything up to it."""


def smooth_log(path: Path, stop: threading.Event) -> threading.Thread:
    """Append, every TICK seconds, one segment request per viewer (stream i has i viewers at 198.18.i.j), and
    every second a playlist request per viewer (the PanelX URL that names the line)."""

    def loop() -> None:
        tick = 0
        while not stop.wait(TICK):
            stamp = clf_time(time.time())
            lines = []
            for sid in range(1, STREAMS + 1):
                for viewer in range(1, sid + 1):
                    ip = f"198.18.{sid}.{viewer}"
                    lines.append(f'{ip} - - [{stamp}] "GET /streams/stream_{sid}_{tick // 100}.ts HTTP/1.1" 200 '
                                 f'{SEGMENT_BYTES} "-" "VLC/3.0.18"\n')
                    if tick % 10 == 0:
                        lines.append(f'{ip} - - [{stamp}] "GET /live/line{sid}x{viewer}/pw/{sid}.m3u8 HTTP/1.1" 200 '
                                     f'400 "-" "VLC/3.0.18"\n')
            with open(path, "a", encoding="utf-8") as fh:
                fh.write("".join(lines))
            tick += 1

    thread = threading.Thread(target=loop, name="smooth-log", daemon=True)
    thread.start()
    return thread


def _ready(url: str) -> bool:
    return bool(http_json(f"{url}/api/v1/query?query=1"))


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    for name in ("prometheus", "victoria-metrics", "gcc"):
        require_binary(name)
    tmp = tmp_path_factory.mktemp("longterm")
    opts = Options(quick=True, runs=1, tmp=tmp, geo=geodata.write(tmp / "geo"))
    children: list[Child] = []
    try:
        with Host(opts, STREAMS, 300, name="longterm") as host:
            stop = threading.Event()
            smooth_log(host.log, stop)
            exporter_port = free_port()
            children.append(Child([sys.executable, "-m", "exporter",
                                   f"--config.file={host.config_path}",
                                   f"--web.listen-address=127.0.0.1:{exporter_port}"],
                                  tmp / "exporter.log").start(REPO))
            vm_port = free_port()
            victoria = f"http://127.0.0.1:{vm_port}"
            children.append(Child([binary("victoria-metrics"), f"-storageDataPath={tmp / 'vm'}",
                                   f"-httpListenAddr=127.0.0.1:{vm_port}", f"-dedup.minScrapeInterval={SCRAPE}",
                                   "-search.disableCache", "-loggerLevel=ERROR"], tmp / "vm.log").start())
            wait_until(lambda: _ready(victoria), 30, "victoria-metrics ready")
            targets = tmp / "iptv.yml"
            targets.write_text(yaml.safe_dump([{"targets": [f"127.0.0.1:{exporter_port}"],
                                                "labels": {"node": "edge-1"}}]))
            proms = []
            for replica in ("prom-a", "prom-b"):
                home = tmp / replica
                home.mkdir()
                stack = FleetStack(home, [], remote_write=f"{victoria}/api/v1/write")
                config = stack.prometheus_config(targets, [], replica)
                config.pop("alerting")
                (home / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
                port = free_port()
                children.append(Child([binary("prometheus"), f"--config.file={home / 'prometheus.yml'}",
                                       f"--storage.tsdb.path={home / 'data'}",
                                       f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                                      home / "prometheus.log").start())
                proms.append(f"http://127.0.0.1:{port}")
            for url in proms:
                wait_until(partial(_ready, url), 60, f"{url} ready")
            # Four minutes of history: every rate window over the dashboards' $__range is full.
            wait_until(lambda: query(proms[0], 'count_over_time(iptv_exporter_build_info[10m]) >= 50'), 400,
                       "four minutes of scrapes")
            # VictoriaMetrics answers for at most now - 30 s (-search.latencyOffset, default 30s): compare there.
            at = time.time() - 45
            wait_until(lambda: query(victoria, "iptv_exporter_build_info", at), 30, "samples in victoria-metrics")
            yield Stores(proms, victoria, at)
            stop.set()
    finally:
        for child in reversed(children):
            child.stop()


def substitute(expr: str) -> str:
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", lambda m: VARIABLES.get(m.group(1) or m.group(2), ".*"), expr)


def dashboard_queries() -> Iterator[Any]:
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        panels = list(board["panels"])
        for panel in panels:
            panels.extend(panel.get("panels", []))
            for target in panel.get("targets", []):
                if target.get("expr"):
                    yield pytest.param(target["expr"], id=f"{board['uid']}/{panel.get('id')}/{target.get('refId')}")


def keyed(result: list[dict[str, Any]]) -> dict[tuple[tuple[str, str], ...], float]:
    """{labels: value}; NaN left out: Prometheus answers NaN where VictoriaMetrics answers nothing (a quantile
    of no observations), and Grafana shows both as no value."""
    return {tuple(sorted((k, v) for k, v in r["metric"].items() if k != "__name__")): float(r["value"][1])
            for r in result if not math.isnan(float(r["value"][1]))}


def close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= TOLERANCE * max(abs(a), abs(b)) or abs(a - b) < 1e-9


def test_there_are_dashboard_queries_to_compare() -> None:
    assert len(list(dashboard_queries())) >= 20


def same_answer(theirs: dict[Any, float], ours: dict[Any, float], *, ranked: bool = False) -> str | None:
    """None when both have the same series with values within 1%; else what differs.

    ``ranked`` (an outer topk/bottomk): which of several equal values make the cut is arbitrary in either
    store, so the values are compared in order, not the series that carry them."""
    if ranked and set(theirs) != set(ours) and len(theirs) == len(ours):
        pairs = zip(sorted(ours.values()), sorted(theirs.values()), strict=True)
        wrong_ranked = [(a, b) for a, b in pairs if not close(a, b)]
        return f"ranked values differ by more than 1%: {wrong_ranked}" if wrong_ranked else None
    if set(theirs) != set(ours):
        return f"only in Prometheus: {set(ours) - set(theirs)}; only in VictoriaMetrics: {set(theirs) - set(ours)}"
    wrong = {k: (ours[k], theirs[k]) for k in ours if not close(ours[k], theirs[k])}
    return f"(Prometheus, VictoriaMetrics) differ by more than 1%: {wrong}" if wrong else None


@pytest.mark.parametrize("expr", list(dashboard_queries()))
def test_dashboard_query_same_from_victoria_metrics(stores: Stores, expr: str) -> None:
    promql = substitute(expr)
    theirs = keyed(query(stores.victoria, promql, stores.at))
    ranked = re.match(r"\s*(topk|bottomk)\s*\(", promql) is not None
    problems = [same_answer(theirs, keyed(query(prom, promql, stores.at)), ranked=ranked)
                for prom in stores.prometheus]
    why = "\n".join(f"{p}: {d}" for p, d in zip(stores.prometheus, problems, strict=True))
    assert None in problems, f"{promql}\n{why}"


def test_ha_pair_is_one_series_in_victoria_metrics(stores: Stores) -> None:
    """One series per label set, no `replica` label, one sample per scrape interval (not one per replica)."""
    at = stores.at
    assert query(stores.victoria, 'count({__name__=~"iptv_.+", replica!=""})', at) == []
    ours = keyed(query(stores.prometheus[0], 'count by (__name__) ({__name__=~"iptv.+"})', at))
    theirs = keyed(query(stores.victoria, 'count by (__name__) ({__name__=~"iptv.+"})', at))
    assert theirs == ours
    samples = keyed(query(stores.victoria, 'count_over_time(iptv_exporter_build_info[1m])', at))
    (count,) = samples.values()
    assert 10 <= count <= 13, f"{count} samples a minute: both replicas' samples kept, dedup off?"


def _report(url: str, at: float) -> dict[str, Any]:
    args = build_parser().parse_args(["report", "--prometheus", url, "--start", f"{at - 120:.0f}",
                                      "--end", f"{at:.0f}", "--step", "15s", "--format", "json"])
    out, err = io.StringIO(), io.StringIO()
    assert report.run(args, out, err) == 0, err.getvalue()
    return dict(json.loads(out.getvalue()))


FIGURES = ("bytes_sent", "avg_bps", "peak_bps", "p95_bps", "viewer_hours", "share")


def _report_differences(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    mine = {r["stream"]: r for r in [*ours["rows"], ours["total"]]}
    other = {r["stream"]: r for r in [*theirs["rows"], theirs["total"]]}
    if set(mine) != set(other):
        return [f"rows: {sorted(mine)} vs {sorted(other)}"]
    return [f"{stream}.{key}: {mine[stream][key]} vs {other[stream][key]}" for stream in mine
            for key in FIGURES if not close(float(mine[stream][key]), float(other[stream][key]))]


def test_report_same_from_victoria_metrics(stores: Stores) -> None:
    theirs = _report(stores.victoria, stores.at)
    assert len(theirs["rows"]) == STREAMS and theirs["total"]["bytes_sent"] > 0
    differences = [_report_differences(_report(prom, stores.at), theirs) for prom in stores.prometheus]
    assert [] in differences, differences
