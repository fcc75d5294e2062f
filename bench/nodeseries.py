"""Series per node, as Prometheus stores them: one real exporter on a synthetic 500-stream, 10,000-viewer host
(bench/workload.py) with ffmpeg progress and actions enabled, scraped by a real Prometheus with the shipped
rules. Counts the samples of /metrics (text and OpenMetrics, which Prometheus asks for: ``_created`` samples
would be series too; the exporter writes none), the scraped and the recorded series in Prometheus, and checks
the formula of docs/scaling.md against them (``FORMULA`` below is that formula; the doc is written from it).
"""

from __future__ import annotations

import json
import re
import sys
import threading
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.fleetstack import Child, FleetStack, binary, query
from bench.options import Options
from bench.report import Section, Target
from bench.util import free_port, wait_until
from bench.workload import Host

REPO = Path(__file__).resolve().parent.parent
TOLERANCE = 0.05
PROGRESS_BLOCK = (REPO / "tests" / "fixtures" / "ffmpeg-progress.txt").read_text()
OPENMETRICS = "application/openmetrics-text;version=1.0.0"


@dataclass(frozen=True)
class Formula:
    """docs/scaling.md's formula: per stream ``base + K + C + 2A + recorded``, per node ``fixed`` + geography.

    K error kinds (all exported from 0), C status classes seen, A action results the stream has had (each
    with its ``_created`` sample: the actions' counters are prometheus_client's and write one)."""

    base: int = 27
    """Families with only the `stream` label (docs/scaling.md lists them)."""
    recorded: int = 24
    """Recorded `iptv:*` series per stream (prometheus/rules), with ffmpeg progress: rates, ages, the stall
    threshold, pace, restarts, error and HTTP ratios, 7 health components, penalty, delivery, score, 2 fleet."""
    fixed: int = 102
    """Series without a `stream` label besides geography: 82 scraped (exporter and source health, build and
    node info, HTTP connections, render errors, GeoIP databases, the session histogram, webhook and journal,
    sockets, access log, progress push, discovery, lines, process_* and python_*), `up` and 4 `scrape_*`
    Prometheus adds, and 15 recorded per node."""

    def per_stream(self, kinds: int, codes: int, results: int) -> int:
        return self.base + kinds + codes + 2 * results + self.recorded

    def total(self, streams: int, kinds: int, codes: int, results: int, geo: int) -> int:
        return self.per_stream(kinds, codes, results) * streams + self.fixed + geo


FORMULA = Formula()


def write_progress(directory: Path, streams: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for sid in range(1, streams + 1):
        (directory / f"{sid}.progress").write_text(PROGRESS_BLOCK)


def keep_progressing(directory: Path, streams: int, stop: threading.Event) -> threading.Thread:
    """Append a block to every progress file every 2 s, frames and output time advancing as a running ffmpeg's
    do: no stream looks stalled or slow."""

    def loop() -> None:
        frame = 264
        while not stop.wait(2.0):
            frame += 50
            block = (f"frame={frame}\nfps=25.00\nbitrate=N/A\ntotal_size=N/A\nout_time_us={frame * 40_000}\n"
                     f"out_time_ms={frame * 40_000}\ndup_frames=0\ndrop_frames=2\nspeed=1.00x\nprogress=continue\n")
            for sid in range(1, streams + 1):
                with open(directory / f"{sid}.progress", "a", encoding="ascii") as fh:
                    fh.write(block)

    thread = threading.Thread(target=loop, name="progress-writer", daemon=True)
    thread.start()
    return thread


def _notification(stream: str, fingerprint: str) -> bytes:
    labels = {"action": "restart", "alertname": "IPTVStreamDown", "node": "bench", "stream": stream}
    return json.dumps({
        "version": "4", "status": "firing", "receiver": "restart-bench", "truncatedAlerts": 0, "groupKey": stream,
        "groupLabels": {}, "commonLabels": labels, "commonAnnotations": {}, "externalURL": "http://am",
        "alerts": [{"status": "firing", "labels": labels, "annotations": {}, "startsAt": "2026-12-01T00:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": fingerprint}],
    }).encode()


def _post(url: str, token: str, body: bytes) -> None:
    request = urllib.request.Request(url, data=body, headers={"Authorization": f"Bearer {token}",
                                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30):  # noqa: S310 - loopback
        pass


def count_samples(text: str) -> Counter[str]:
    """Samples per family name (``_created``/``_bucket``... folded into their family) of an exposition."""
    out: Counter[str] = Counter()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
        if name:
            out[name.group(0)] += 1
    return out


def run(opts: Options) -> Section:
    streams, viewers = (50, 1_000) if opts.quick else (500, 10_000)
    section = Section("nodeseries", f"Series per node in Prometheus ({streams} streams, {viewers:,} viewers)")
    with Host(opts, streams, viewers, name="nodeseries") as host:
        progress = host.dir / "progress"
        write_progress(progress, streams)
        stop = threading.Event()
        keep_progressing(progress, streams, stop)
        token = "bench-node-series-token"
        (host.dir / "token").write_text(token + "\n")
        (host.dir / "token").chmod(0o600)
        cfg = host.config()
        cfg["streams"]["progress"] = str(progress / "{stream}.progress")  # type: ignore[index]
        cfg["actions"] = {"token_file": str(host.dir / "token"), "dry_run": True,
                          "journal": str(host.dir / "actions.sqlite"),
                          "restart": {"type": "command", "argv": ["/bin/true", "{stream}"]}}
        config = host.dir / "config-series.yml"
        config.write_text(yaml.safe_dump(cfg))
        port = free_port()
        exporter = Child([sys.executable, "-m", "exporter", f"--config.file={config}",
                          f"--web.listen-address=127.0.0.1:{port}"], host.dir / "exporter-series.log").start(REPO)
        prom: Child | None = None
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until(lambda: urllib.request.urlopen(url + "/-/ready", timeout=5).status == 200, 120,
                       "exporter ready")
            host.start_writer(1.0)
            wait_until(lambda: f'iptv_stream_fps{{stream="{streams}"}}' in _get(url + "/metrics"), 120,
                       "progress of every stream")
            # One restart per stream (dry run: recorded, nothing executed), delivered twice as an HA pair does.
            for sid in range(1, streams + 1):
                body = _notification(str(sid), f"{sid:016x}")
                _post(url + "/hooks/alertmanager", token, body)
                _post(url + "/hooks/alertmanager", token, body)
            wait_until(lambda: _get(url + "/metrics").count('result="skipped_duplicate"') >= streams, 120,
                       "every alert decided")
            text, om = _get(url + "/metrics"), _get(url + "/metrics", OPENMETRICS)
            prom, prom_url = _prometheus(opts.tmp / "nodeseries-prom", f"127.0.0.1:{port}")
            # Three rounds of every rule group (15 s), so every recorded series with a rate() window exists.
            wait_until(lambda: query(prom_url, "min(count_over_time(iptv:stream_health_score[5m])) >= 3"), 240,
                       "rules evaluated three times")
            scraped = _scalar(prom_url, 'scrape_samples_scraped{job="iptv"}')
            stored = _scalar(prom_url, 'count({job="iptv", __name__!~"iptv:.+|ALERTS|ALERTS_FOR_STATE"})')
            alerts = _scalar(prom_url, 'count({__name__=~"ALERTS|ALERTS_FOR_STATE"})')
            recorded = _scalar(prom_url, 'count({__name__=~"iptv:.+"})')
            recorded_per_stream = _scalar(prom_url, 'count({__name__=~"iptv:.+", stream!=""})')
            all_job = _scalar(prom_url, 'count({job="iptv"})')
            firing = {f'{r["metric"]["alertname"]} ({r["metric"]["alertstate"]})': int(float(r["value"][1]))
                      for r in query(prom_url, "count by (alertname, alertstate) (ALERTS)")}
            by_name = {r["metric"]["__name__"]: int(float(r["value"][1])) for r in
                       query(prom_url, 'count by (__name__) ({__name__=~"iptv:.+"})')}
        finally:
            stop.set()
            if prom is not None:
                prom.stop()
            exporter.stop()
    text_samples, om_samples = count_samples(text), count_samples(om)
    kinds = len(set(re.findall(r'iptv_stream_errors_total\{[^}]*kind="([^"]+)"', text)))
    codes = len(set(re.findall(r'iptv_stream_http_responses_total\{[^}]*code="([^"]+)"', text)))
    results = len(set(re.findall(r'iptv_actions_total\{[^}]*result="([^"]+)"', text)))
    geo = sum(n for name, n in text_samples.items() if name.startswith(("iptv_connections", )) and
              "bytes" not in name)
    per_stream_om = sum(1 for line in om.splitlines() if 'stream="' in line and not line.startswith("#"))
    predicted_total = FORMULA.total(streams, kinds, codes, results, geo)
    measured_total = stored + recorded
    section.add(
        f"One exporter (`python -m exporter`) on the workload of the exporter benchmark ({streams} stand-in streams",
        f"writing PanelX playlists, {viewers:,} viewer connections, a growing access log) with a `-progress` file per",
        "stream and actions on (dry run); every stream was sent one restart alert twice, as an Alertmanager pair",
        "does, so each has `iptv_actions_total{result=\"dry_run\"}` and `{result=\"skipped_duplicate\"}`.",
        f"Error kinds exported per stream: {kinds}; response classes seen: {codes}; action results: {results};",
        f"geography series: {geo}. A real Prometheus (shipped prometheus.yml and rules) scraped it.",
        "",
    )
    section.table(["what", "series"], [
        ["/metrics, text format (samples)", f"{sum(text_samples.values()):,}"],
        ["/metrics, OpenMetrics (what Prometheus asks for; no `_created` samples)", f"{sum(om_samples.values()):,}"],
        ["... of which carry a `stream` label (OpenMetrics)", f"{per_stream_om:,}"],
        ["Prometheus: `scrape_samples_scraped`", f"{scraped:,}"],
        ["Prometheus: scraped series stored (`{job=\"iptv\", __name__!~\"iptv:.+\\|ALERTS.*\"}`: "
         "+ `up`, `scrape_*`)", f"{stored:,}"],
        ["Prometheus: recorded `iptv:*` series", f"{recorded:,} ({recorded_per_stream:,} per stream)"],
        ["Prometheus: `count({job=\"iptv\"})` (counts recorded series and ALERTS too)", f"{all_job:,}"],
        ["Prometheus: `ALERTS` + `ALERTS_FOR_STATE` (two per pending or firing alert; a healthy node has none)",
         f"{alerts:,}"],
        ["**total per node**", f"**{measured_total:,}** = **{measured_total / streams:.1f} per stream**"],
        ["docs/scaling.md's formula", f"{predicted_total:,} ({(predicted_total / measured_total - 1):+.1%})"],
    ])
    families = _per_family(text, streams)
    section.add("Scraped series by family (text format): *per stream* for families with a `stream` label.", "")
    section.table(["family", "per stream", "per node"],
                  [[f"`{name}`", f"{per:.2f}" if per else "", f"{other:,}" if other else ""]
                   for name, (per, other) in sorted(families.items())])
    section.add("Alerts pending or firing during the count (not in the total; the stand-ins never rewrite their "
                "playlists, so their streams look stalled): "
                + (", ".join(f"{k} {v}" for k, v in sorted(firing.items())) or "none") + ".", "")
    section.add("Recorded series by rule: " + ", ".join(f"`{k}` {v}" for k, v in sorted(by_name.items())) + ".", "")
    within = abs(predicted_total / measured_total - 1) <= TOLERANCE
    section.targets.append(Target(
        f"series: docs/scaling.md's formula within {TOLERANCE:.0%} of Prometheus ({streams} streams)", within,
        f"formula {predicted_total:,} vs measured {measured_total:,} "
        f"({FORMULA.per_stream(kinds, codes, results)} per stream with K={kinds}, C={codes}, A={results})"))
    return section


def _per_family(text: str, streams: int) -> dict[str, tuple[float, int]]:
    """family -> (series with a `stream` label per stream, series without)."""
    per: Counter[str] = Counter()
    other: Counter[str] = Counter()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            (per if 'stream="' in line else other)[name] += 1
    return {name: (per[name] / streams, other[name]) for name in set(per) | set(other)}


def _get(url: str, accept: str | None = None) -> str:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
        return str(response.read().decode())


def _scalar(prom: str, promql: str) -> int:
    result = query(prom, promql)
    return int(float(result[0]["value"][1])) if result else 0


def _prometheus(home: Path, target: str) -> tuple[Child, str]:
    """The shipped prometheus.yml and rules, scraping ``target`` as node ``bench``; no Alertmanager."""
    home.mkdir(parents=True, exist_ok=True)
    targets = home / "iptv.yml"
    targets.write_text(yaml.safe_dump([{"targets": [target], "labels": {"node": "bench"}}]))
    config = FleetStack(home, []).prometheus_config(targets, [], None)
    config.pop("alerting")
    (home / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    child = Child([binary("prometheus"), f"--config.file={home / 'prometheus.yml'}",
                   f"--storage.tsdb.path={home / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                   "--log.level=warn"], home / "prometheus.log").start()
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: urllib.request.urlopen(url + "/-/ready", timeout=5).status == 200, 60, "prometheus ready")
    return child, url


