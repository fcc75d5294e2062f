"""``iptv-exporter report`` against a real Prometheus backfilled with known data.

The data is written as OpenMetrics, turned into TSDB blocks with ``promtool tsdb create-blocks-from
openmetrics`` and served by a real ``prometheus``.  Every expected figure is computed here from the
generating model (rates per minute), following the definitions in docs/report.md.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from exporter.report import add_arguments, run
from exporter.report.compute import UNATTRIBUTED, apportion, compute_report, percentile_95
from exporter.report.errors import ReportError
from exporter.report.period import Period, choose_step, make_period, parse_time
from exporter.report.query import PrometheusClient, chunks
from tests.helpers import REPO, free_port, require_binary
from tests.promserver import backfill, prometheus_config, start_prometheus

pytestmark = pytest.mark.slow

MINUTES = 120
STEP = 60
SCRAPE = 15
DURATION = MINUTES * STEP

# ---------------------------------------------------------------- the known data (rates per minute m)
# Minute m covers (T0 + 60 m, T0 + 60 (m + 1)].  A sample at T0 + s (s = 15, 30, ...) carries the
# gauge value of its minute, and a counter grows by rate * 15 between consecutive samples.

SPIKES = {100 + i: 3_000_000 - 100_000 * i for i in range(7)}  # seven distinct peaks: p95 is the 7th


def _rate_7_edge1(m: int) -> int:
    return SPIKES.get(m, 200_000 + 50_000 * (m % 6))


STREAM_RATE: dict[tuple[str, str], Callable[[int], int]] = {  # (stream, node) -> bytes/s
    ("5", "edge-1"): lambda m: 1_000_000,
    ("7", "edge-1"): _rate_7_edge1,
    ("7", "edge-2"): lambda m: 300_000 if m < 60 else 0,
    ("9", "edge-2"): lambda m: 0 if m < 30 else 250_000,
}
RESET = ("9", "edge-2", 90)  # stream 9 restarts at the start of minute 90: its counter starts again at 0
STREAM_VIEWERS: dict[tuple[str, str], Callable[[int], int]] = {
    ("5", "edge-1"): lambda m: 10,
    ("7", "edge-1"): lambda m: 4,
    ("7", "edge-2"): lambda m: 2 if m < 60 else 6,
    ("9", "edge-2"): lambda m: 3,
}
NAMES = {"5": "BBC One", "7": "Sport <HD> & more"}
EGRESS: dict[tuple[str, str], Callable[[int], int]] = {  # (node, port) -> bytes/s
    ("edge-1", "80"): lambda m: 1_200_000,
    ("edge-1", "8080"): lambda m: 300_000,
    ("edge-2", "80"): lambda m: 400_000,
    ("edge-3", "80"): lambda m: 100_000,  # a target without a `node` label and without connections
}
CONNECTIONS: dict[tuple[str, str], Callable[[int], int | None]] = {  # (node, country) -> connections
    ("edge-1", "DE"): lambda m: 30,
    ("edge-1", "FR"): lambda m: 10 if m < 60 else 30,
    ("edge-2", "DE"): lambda m: 5 if m < 110 else None,  # None: no sample (edge-2's geo went quiet)
    ("edge-2", "GB"): lambda m: 15 if m < 110 else None,
}


def target(node: str) -> str:
    labels = f'instance="{node}:9756",job="iptv"'
    return labels if node == "edge-3" else f'{labels},node="{node}"'


def openmetrics(t0: int) -> str:
    lines: list[str] = []
    samples = range(1, MINUTES * STEP // SCRAPE + 1)

    def minute(k: int) -> int:
        return math.ceil(k * SCRAPE / STEP) - 1

    def counter(name: str, series: dict[tuple[str, str], Callable[[int], int]], label: str) -> None:
        lines.append(f"# TYPE {name.removesuffix('_total')} counter")
        for (key, node), rate in series.items():
            labels = f'{target(node)},{label}="{key}"' if label != "port" else f'{target(node)},port="{key}"'
            value = 5_000_000
            lines.append(f"{name}{{{labels}}} {value} {t0}")
            for k in samples:
                m = minute(k)
                if (key, node, m) == RESET and k * SCRAPE == m * STEP + SCRAPE:
                    value = 0
                value += rate(m) * SCRAPE
                lines.append(f"{name}{{{labels}}} {value} {t0 + k * SCRAPE}")

    def gauge(name: str, series: Mapping[tuple[str, str], Callable[[int], int | None]], label: str) -> None:
        lines.append(f"# TYPE {name} gauge")
        for (key, node), value_of in series.items():
            labels = f'{target(node)},{label}="{key}"'
            for k in samples:
                value = value_of(minute(k))
                if value is not None:
                    lines.append(f"{name}{{{labels}}} {value} {t0 + k * SCRAPE}")

    counter("iptv_stream_sent_bytes_total", STREAM_RATE, "stream")
    gauge("iptv_stream_viewers", STREAM_VIEWERS, "stream")
    lines.append("# TYPE iptv_stream_info gauge")
    for stream, name in NAMES.items():
        for k in samples:
            lines.append(f'iptv_stream_info{{{target("edge-1")},stream="{stream}",name="{name}"}} 1 {t0 + k * SCRAPE}')
    gauge("iptv_connections", {(country, node): f for (node, country), f in CONNECTIONS.items()}, "country")
    counter("iptv_connections_sent_bytes_total", {(port, node): f for (node, port), f in EGRESS.items()}, "port")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- figures by hand (docs/report.md)

@dataclass
class Expected:
    bytes_per_minute: list[Fraction]
    viewers_per_minute: list[Fraction]

    def figures(self, total_bytes: Fraction, t0: int, duration: int = DURATION) -> dict[str, object]:
        sent = sum(self.bytes_per_minute, Fraction(0))
        bitrate = [b * 8 / STEP for b in self.bytes_per_minute]
        peak = max(bitrate)
        ordered = sorted(bitrate)
        return {
            "bytes_sent": round(sent),
            "avg_bps": round(sent * 8 / duration),
            "peak_bps": round(peak),
            "peak_at": iso(t0 + (bitrate.index(peak) + 1) * STEP) if peak else None,
            "p95_bps": round(ordered[math.ceil(0.95 * len(ordered)) - 1]),  # 114th of 120
            "viewer_hours": round(float(sum(self.viewers_per_minute, Fraction(0)) * STEP / 3600), 3),
            "share": round(float(sent / total_bytes), 6),
        }


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _sum_minutes(funcs: list[Callable[[int], int | None]]) -> list[Fraction]:
    return [Fraction(sum(v for f in funcs if (v := f(m)) is not None)) for m in range(MINUTES)]


def expected_by_stream() -> dict[str, Expected]:
    keys = sorted({k for k, _ in STREAM_RATE})
    return {
        key: Expected(
            [b * STEP for b in _sum_minutes([f for (k, _), f in STREAM_RATE.items() if k == key])],
            _sum_minutes([f for (k, _), f in STREAM_VIEWERS.items() if k == key]),
        )
        for key in keys
    }


def expected_by_node() -> dict[str, Expected]:
    key_of = {"edge-1": "edge-1", "edge-2": "edge-2", "edge-3": "edge-3:9756"}
    out: dict[str, Expected] = {}
    for node, key in key_of.items():
        out[key] = Expected(
            [b * STEP for b in _sum_minutes([f for (n, _), f in EGRESS.items() if n == node])],
            _sum_minutes([f for (_, n), f in STREAM_VIEWERS.items() if n == node]),
        )
    return out


def expected_by_country() -> dict[str, Expected]:
    countries = sorted({c for _, c in CONNECTIONS}) + [UNATTRIBUTED]
    sent = {c: [Fraction(0)] * MINUTES for c in countries}
    for node in ("edge-1", "edge-2", "edge-3"):
        egress = _sum_minutes([f for (n, _), f in EGRESS.items() if n == node])
        for m in range(MINUTES):
            conns = {c: f(m) for (n, c), f in CONNECTIONS.items() if n == node and f(m) is not None}
            total = sum(v for v in conns.values() if v is not None)
            if not total:
                sent[UNATTRIBUTED][m] += egress[m] * STEP
                continue
            for c, v in conns.items():
                sent[c][m] += egress[m] * STEP * Fraction(v or 0, total)
    viewers = {c: _sum_minutes([f for (_, cc), f in CONNECTIONS.items() if cc == c]) for c in countries}
    return {c: Expected(sent[c], viewers[c]) for c in countries}


Figures = dict[str, object]


def expected_rows(model: dict[str, Expected], t0: int, duration: int = DURATION) -> tuple[list[Figures], Figures]:
    total_bytes = sum((sum(e.bytes_per_minute, Fraction(0)) for e in model.values()), Fraction(0))
    rows = {key: e.figures(total_bytes, t0, duration) for key, e in model.items()}
    total = Expected(
        [sum((e.bytes_per_minute[m] for e in model.values()), Fraction(0)) for m in range(MINUTES)],
        [sum((e.viewers_per_minute[m] for e in model.values()), Fraction(0)) for m in range(MINUTES)],
    ).figures(total_bytes, t0, duration)
    ordered = sorted(rows, key=lambda k: (-int(rows[k]["bytes_sent"]), k))  # type: ignore[call-overload]
    return [{"key": k, **rows[k]} for k in ordered], total


# ---------------------------------------------------------------- a real Prometheus (tests/promserver.py)

@dataclass
class Prom:
    url: str
    t0: int


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prom]:
    t0 = (int(time.time()) // 3600 - 4) * 3600  # whole hour, data ends 2-3 h ago (well within retention)
    data = tmp_path_factory.mktemp("prom") / "data"
    backfill(openmetrics(t0), data)
    with start_prometheus(prometheus_config(), data) as url:
        yield Prom(url=url, t0=t0)


def report(*argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out, err = io.StringIO(), io.StringIO()
    code = run(parser.parse_args(list(argv)), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def window(prom: Prom) -> list[str]:
    return ["--prometheus", prom.url, "--start", str(prom.t0), "--end", str(prom.t0 + DURATION)]


def _check_json(prom: Prom, by: str, model: dict[str, Expected]) -> Any:
    code, out, err = report(*window(prom), "--by", by, "--format", "json")
    assert code == 0, err
    doc: Any = json.loads(out)
    rows, total = expected_rows(model, prom.t0)
    assert doc["start"] == iso(prom.t0) and doc["end"] == iso(prom.t0 + DURATION)
    assert doc["step_seconds"] == STEP
    got = [{"key": r[by], **{k: v for k, v in r.items() if k not in (by, "name")}} for r in doc["rows"]]
    assert got == rows
    doc_total = dict(doc["total"])
    assert doc_total.pop(by) == "total"
    doc_total.pop("name", None)
    assert doc_total == total
    return doc


# ---------------------------------------------------------------- end to end

def test_by_stream_json_every_figure(prom: Prom) -> None:
    doc = _check_json(prom, "stream", expected_by_stream())
    rows = {r["stream"]: r for r in doc["rows"]}
    # A few figures written out, in case the model above and the code share a mistake.
    assert rows["5"]["bytes_sent"] == 7_200_000_000
    assert rows["5"]["avg_bps"] == rows["5"]["peak_bps"] == rows["5"]["p95_bps"] == 8_000_000
    assert rows["5"]["viewer_hours"] == 20.0
    assert rows["5"]["name"] == "BBC One" and rows["7"]["name"] == NAMES["7"] and rows["9"]["name"] == ""
    assert rows["7"]["peak_bps"] == 24_000_000 and rows["7"]["peak_at"] == iso(prom.t0 + 101 * STEP)
    assert rows["7"]["p95_bps"] == 19_200_000  # 7th highest of 120 steps: 2,400,000 B/s
    assert rows["7"]["viewer_hours"] == 16.0
    assert rows["9"]["bytes_sent"] == 90 * 60 * 250_000  # across the counter reset
    assert [r["stream"] for r in doc["rows"]] == ["5", "7", "9"]


def test_by_stream_csv_every_figure(prom: Prom) -> None:
    code, out, err = report(*window(prom), "--by", "stream", "--format", "csv")
    assert code == 0, err
    records = list(csv.DictReader(io.StringIO(out)))
    assert list(records[0]) == ["stream", "name", "bytes_sent", "avg_bps", "peak_bps", "peak_at", "p95_bps",
                                "viewer_hours", "share"]
    rows, total = expected_rows(expected_by_stream(), prom.t0)
    assert records[-1]["stream"] == "total"

    def as_expected(r: dict[str, str]) -> dict[str, object]:
        return {
            "key": r["stream"], "bytes_sent": int(r["bytes_sent"]), "avg_bps": int(r["avg_bps"]),
            "peak_bps": int(r["peak_bps"]), "peak_at": r["peak_at"] or None, "p95_bps": int(r["p95_bps"]),
            "viewer_hours": float(r["viewer_hours"]), "share": float(r["share"]),
        }

    assert [as_expected(r) for r in records[:-1]] == rows
    assert {k: v for k, v in as_expected(records[-1]).items() if k != "key"} == total
    assert records[1]["name"] == NAMES["7"]


def test_by_country_apportions_node_egress(prom: Prom) -> None:
    doc = _check_json(prom, "country", expected_by_country())
    rows = {r["country"]: r for r in doc["rows"]}
    assert rows["DE"]["bytes_sent"] == 60 * 60 * (1_125_000 + 750_000) + 110 * 60 * 100_000
    assert rows["FR"]["bytes_sent"] == 60 * 60 * (375_000 + 750_000)
    assert rows["GB"]["bytes_sent"] == 110 * 60 * 300_000
    assert rows[UNATTRIBUTED]["bytes_sent"] == 10 * 60 * 400_000 + DURATION * 100_000
    assert doc["total"]["bytes_sent"] == DURATION * 2_000_000
    assert rows["FR"]["viewer_hours"] == 40.0


def test_by_node_groups_by_node_label_or_instance(prom: Prom) -> None:
    doc = _check_json(prom, "node", expected_by_node())
    rows = {r["node"]: r for r in doc["rows"]}
    assert rows["edge-1"]["bytes_sent"] == DURATION * 1_500_000
    assert rows["edge-1"]["viewer_hours"] == 28.0
    assert rows["edge-3:9756"]["bytes_sent"] == DURATION * 100_000


def test_range_ending_now_sees_the_same_bytes(prom: Prom) -> None:
    code, out, err = report("--prometheus", prom.url, "--range", "6h", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["duration_seconds"] == 6 * 3600 and doc["step_seconds"] == STEP
    rows, total = expected_rows(expected_by_stream(), prom.t0, duration=6 * 3600)
    assert doc["total"]["bytes_sent"] == total["bytes_sent"]
    assert doc["total"]["avg_bps"] == total["avg_bps"]
    assert doc["total"]["viewer_hours"] == total["viewer_hours"]
    assert doc["total"]["peak_bps"] == total["peak_bps"] and doc["total"]["peak_at"] == total["peak_at"]


def test_long_range_fetched_in_chunks_is_the_same(prom: Prom) -> None:
    period = Period(start=prom.t0, end=prom.t0 + DURATION, step=STEP)
    expr = "sum by (stream) (increase(iptv_stream_sent_bytes_total[60s]))"
    calls: list[int] = []
    with PrometheusClient(prom.url) as whole, PrometheusClient(prom.url, max_points=7) as chunked:
        assert chunked.requests_for(period) == 18
        assert chunked.query_range(expr, period, on_chunk=lambda: calls.append(1)) == whole.query_range(expr, period)
    assert len(calls) == 18


def test_progress_bar_on_a_terminal(prom: Prom) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out, err = io.StringIO(), Tty()
    assert run(parser.parse_args([*window(prom), "--step", "15s", "--format", "csv"]), stdout=out, stderr=err) == 0
    assert "querying Prometheus" in err.getvalue() and "0/2 " in err.getvalue()


def test_html_renders_in_chromium(prom: Prom, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    code, _, err = report(*window(prom), "--format", "html", "--output", str(page))
    assert code == 0, err
    html = page.read_text()
    assert "<script" not in html and not re.search(r'(src|href)="(https?:)?//', html)  # self-contained
    assert "Sport &lt;HD&gt; &amp; more" in html and "<HD>" not in html

    chromium = require_binary("chromium")
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0", "--window-size=1280,2000"]
    dom = subprocess.run([*flags, f"--user-data-dir={tmp_path / 'profile-dom'}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=90)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "CONSOLE" not in dom.stderr and "Uncaught" not in dom.stderr, dom.stderr[-2000:]
    assert 'id="report-table"' in dom.stdout
    assert len(re.findall(r"<tbody>.*?</tbody>", dom.stdout, re.S)[0].split("<tr>")) - 1 == 3
    for chart in ("chart-bitrate", "chart-streams", "chart-countries"):
        assert re.search(rf'<figure id="{chart}"><svg', dom.stdout), f"{chart} has no svg"
    assert "Sport &lt;HD&gt; &amp; more" in dom.stdout
    shot = tmp_path / "report.png"
    done = subprocess.run([*flags, f"--user-data-dir={tmp_path / 'profile-shot'}", f"--screenshot={shot}",
                           page.as_uri()], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (1280, 2000)
        colors = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colors is not None and len(colors) > 50, "screenshot looks blank"


# ---------------------------------------------------------------- errors

def test_unreachable_prometheus_exits_1_with_message() -> None:
    port = free_port()
    code, out, err = report("--prometheus", f"http://127.0.0.1:{port}", "--range", "1h")
    assert code == 1 and out == ""
    assert f"cannot reach Prometheus at http://127.0.0.1:{port}" in err


def test_a_password_in_the_prometheus_url_stays_out_of_the_message() -> None:
    port = free_port()
    code, out, err = report("--prometheus", f"http://reporter:s3cr3t@127.0.0.1:{port}", "--range", "1h")
    assert code == 1 and out == ""
    assert f"cannot reach Prometheus at http://<redacted>@127.0.0.1:{port}" in err and "s3cr3t" not in err


def test_unreachable_through_the_cli() -> None:
    port = free_port()
    done = subprocess.run([sys.executable, "-m", "exporter", "report", "--prometheus", f"http://127.0.0.1:{port}"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 1, done.stderr
    assert "cannot reach Prometheus" in done.stderr


def test_empty_range(prom: Prom) -> None:
    code, _, err = report("--prometheus", prom.url, "--start", str(prom.t0 - 7200), "--end", str(prom.t0 - 3600))
    assert code == 1 and "empty range: no iptv_stream_sent_bytes_total data between" in err
    code, _, err = report("--prometheus", prom.url, "--start", str(prom.t0), "--end", str(prom.t0))
    assert code == 1 and "empty range" in err


def test_missing_metric(tmp_path: Path) -> None:
    with start_prometheus(prometheus_config(), tmp_path / "data") as url:
        code, _, err = report("--prometheus", url, "--range", "1h", "--by", "country")
    assert code == 1 and "metric iptv_connections_sent_bytes_total not found" in err


def test_not_a_prometheus_api(prom: Prom) -> None:
    code, _, err = report(*window(prom)[2:], "--prometheus", prom.url + "/nope")
    assert code == 1 and "answered HTTP 404" in err and "is the URL right?" in err


def test_html_notes_a_missing_breakdown(prom: Prom, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    code, _, err = report(*window(prom), "--format", "html", "--output", str(page), "--selector", 'stream!=""')
    assert code == 0, err
    html = page.read_text()
    assert '<figure id="chart-streams"><svg' in html
    assert "Bandwidth by country: not available (empty range: no iptv_connections_sent_bytes_total data" in html


def test_server_error_is_reported(prom: Prom) -> None:
    code, _, err = report(*window(prom), "--selector", 'stream=~"("')
    assert code == 1 and "error parsing regexp" in err


# ---------------------------------------------------------------- pure parts

def test_percentile_95_is_nearest_rank() -> None:
    assert percentile_95(list(range(1, 21))) == 19  # ceil(0.95 * 20) = 19th
    assert percentile_95(list(range(1, 101))) == 95
    assert percentile_95([5.0]) == 5.0 and percentile_95([]) == 0.0
    assert percentile_95(list(range(1, 22))) == 20  # ceil(19.95) = 20th


def test_apportion_by_connection_share() -> None:
    got = apportion(2, {"a": [100.0, 100.0], "b": [40.0, None]},
                    {("a", "DE"): [3.0, 0.0], ("a", "FR"): [1.0, None], ("b", "DE"): [1.0, 1.0]})
    assert got == {"DE": [115.0, 0.0], "FR": [25.0, 0.0], UNATTRIBUTED: [0.0, 100.0]}


def test_compute_report_totals() -> None:
    period = Period(start=0, end=300, step=60)
    rep = compute_report("stream", period, {"a": [60, 120, None, 0, 60], "b": [None] * 5}, {"b": [1, 1, 1, 1, 1]})
    assert [r.key for r in rep.rows] == ["a", "b"]
    a = rep.rows[0].figures
    assert (a.bytes_sent, a.peak_bps, a.peak_at, a.avg_bps) == (240, 16, 120, 240 * 8 / 300)
    assert rep.total.figures.viewer_hours == pytest.approx(5 / 60) and rep.rows[1].figures.share == 0


def test_step_choice_and_alignment() -> None:
    assert choose_step(7200, 60) == 60 and choose_step(86400, 60) == 120 and choose_step(30 * 86400, 60) == 3600
    p = make_period(now=1_000_030.0, range_=3600.0, start=None, end=None, step=None, min_step=60)
    assert (p.start, p.end, p.step, p.steps) == (996_420, 1_000_020, 60, 60)
    p = make_period(now=0, range_=None, start=100.0, end=7250.0, step=None, min_step=60)
    assert (p.start, p.end) == (60, 7260)
    with pytest.raises(ReportError, match="not both"):
        make_period(now=0, range_=60.0, start=1.0, end=None, step=None, min_step=60)
    assert chunks(Period(0, 600, 60), 4) == [(0, 4), (4, 4), (8, 2)]
    assert parse_time("2024-05-01T00:00:00Z", 0) == 1_714_521_600 == parse_time("1714521600", 0)
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_time("yesterday", 0)
