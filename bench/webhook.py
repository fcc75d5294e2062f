"""The Alertmanager webhook under a burst: 1,000 notifications from 50 concurrent senders, HA twins included.

The real exporter (``python -m exporter``) runs with a bearer token, a dry-run restart action and its SQLite
journal. 100 declared streams each get one ``IPTVStreamDown`` alert delivered 8 times (an HA pair, each
repeating) and one ``IPTVStreamStalled`` alert (another fingerprint, inside the cooldown) delivered twice.
Deliveries of the same stream are adjacent in the send order, so concurrent senders race on one stream.
Exactly one action per stream may come of it: 100 in all.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.measure import ms, task_cpu_seconds
from bench.options import Options
from bench.profiling import as_markdown, py_spy, spy, spy_summary
from bench.report import Section, Target
from bench.util import free_port, wait_until

REPO = Path(__file__).resolve().parent.parent
P99_TARGET = 0.050
RETRIES = 20
"""A 503 (queue full) is retried, as Alertmanager retries it; each attempt is one answered request."""


def notification(stream: str, alertname: str, starts_at: str, fingerprint: str) -> bytes:
    labels = {"action": "restart", "alertname": alertname, "instance": "bench:9756", "job": "iptv",
              "node": "bench", "severity": "critical", "stream": stream}
    return json.dumps({
        "version": "4", "status": "firing", "receiver": "restart-bench", "truncatedAlerts": 0,
        "groupKey": f'{{}}/{{action="restart"}}:{{alertname="{alertname}", node="bench", stream="{stream}"}}',
        "groupLabels": {"alertname": alertname, "node": "bench", "stream": stream},
        "commonLabels": labels, "commonAnnotations": {"summary": f"{alertname} {stream}"},
        "externalURL": "http://alertmanager:9093",
        "alerts": [{"status": "firing", "labels": labels, "annotations": {"summary": f"{alertname} {stream}"},
                    "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus:9090/graph", "fingerprint": fingerprint}],
    }).encode()


def burst(streams: int, down_copies: int, stalled_copies: int) -> list[bytes]:
    out = []
    for i in range(streams):
        sid = f"w{i + 1}"
        down = notification(sid, "IPTVStreamDown", "2026-11-26T14:05:31.512Z", f"{i:08x}00000001")
        stalled = notification(sid, "IPTVStreamStalled", "2026-11-26T14:05:41.512Z", f"{i:08x}00000002")
        copies = [down] * down_copies + [stalled] * stalled_copies
        copies.insert(down_copies // 2, copies.pop())  # a stalled delivery amid the down ones
        out += copies
    return out


async def _send_all(port: int, token: str, bodies: list[bytes], senders: int
                    ) -> tuple[list[float], Counter[int], float]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    latencies: list[float] = []
    codes: Counter[int] = Counter()
    go = asyncio.Event()

    async def sender() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = (f"POST /hooks/alertmanager HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
                "Content-Type: application/json\r\nUser-Agent: Alertmanager/0.25.0\r\n")
        await go.wait()
        try:
            while not queue.empty():
                body = queue.get_nowait()
                t0 = time.perf_counter()
                for attempt in range(RETRIES):
                    writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
                    await writer.drain()
                    status = int((await reader.readline()).split()[1])
                    length = 0
                    while (line := await reader.readline()) not in (b"\r\n", b""):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    await reader.readexactly(length)
                    latencies.append(time.perf_counter() - t0)
                    codes[status] += 1
                    if status != 503:
                        break
                    await asyncio.sleep(0.05 * (attempt + 1))  # as Alertmanager does, only sooner
                    t0 = time.perf_counter()
        finally:
            writer.close()

    tasks = [asyncio.create_task(sender()) for _ in range(senders)]
    await asyncio.sleep(0.2)  # every sender connected and waiting
    t0 = time.perf_counter()
    go.set()
    await asyncio.gather(*tasks)
    return latencies, codes, time.perf_counter() - t0


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def _exporter(d: Path, streams: int, token: str) -> tuple[subprocess.Popen[bytes], int]:
    d.mkdir(parents=True, exist_ok=True)
    (d / "token").write_text(token + "\n")
    (d / "token").chmod(0o600)
    cfg = {
        "node": "bench", "sample_interval": "2s",
        "streams": {"discover": [], "static": [{"id": f"w{i + 1}", "cmdline": f"^iptv-bench-never-{i + 1}$"}
                                               for i in range(streams)]},
        "viewers": {"ports": [], "access_log": None},
        "actions": {"token_file": str(d / "token"), "dry_run": True, "journal": str(d / "actions.sqlite"),
                    "cooldown": "120s", "budget": {"max": 5, "window": "30m"},
                    "restart": {"type": "command", "argv": ["/bin/true", "{stream}"], "timeout": "5s"}},
    }
    (d / "config.yml").write_text(yaml.safe_dump(cfg))
    port = free_port()
    with open(d / "exporter.log", "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "exporter", f"--config.file={d / 'config.yml'}",
                                 f"--web.listen-address=127.0.0.1:{port}"], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=REPO)
    return proc, port


def _burst_once(d: Path, streams: int, senders: int, *, spy_out: str | None = None) -> dict[str, Any]:
    bodies = burst(streams, 8, 2)
    token = "bench-" + "x" * 32
    proc, port = _exporter(d, streams, token)
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(timeout=30) as client:
            wait_until(lambda: client.get(url + "/-/ready").status_code == 200, timeout=60, what="exporter ready")
            if spy_out is not None:
                spy(proc.pid, 4, spy_out)
                time.sleep(0.5)
            cpu0 = task_cpu_seconds(proc.pid)
            latencies, codes, took = asyncio.run(_send_all(port, token, bodies, senders))
            answered_cpu = task_cpu_seconds(proc.pid) - cpu0

            expected = codes.get(200, 0)  # one alert per notification

            def decided() -> dict[str, float] | None:
                results: dict[str, float] = {}
                for line in client.get(url + "/metrics").text.splitlines():
                    if line.startswith("iptv_actions_total{"):
                        result = line.split('result="')[1].split('"')[0]
                        results[result] = results.get(result, 0) + float(line.rsplit(" ", 1)[1])
                return results if sum(results.values()) >= expected else None

            try:
                results = wait_until(decided, timeout=120, what="every accepted alert decided")
            except RuntimeError:
                results = {"(still undecided after 120 s)": float(expected)}
            journal: dict[str, Any] = client.get(url + "/api/actions?limit=1000", headers=auth).json()
            if spy_out is not None:
                time.sleep(4)  # py-spy's span is over and its file written
    finally:
        proc.terminate()
        proc.wait(20)
    return {"bodies": len(bodies), "latencies": latencies, "codes": codes, "took": took, "cpu": answered_cpu,
            "results": results, "actions": journal["actions"]}


def run(opts: Options) -> Section:
    section = Section("webhook", "Alertmanager webhook burst")
    streams, senders = (20, 10) if opts.quick else (100, 50)
    runs = []
    for i in range(opts.runs):
        runs.append(_burst_once(opts.tmp / f"webhook-{i}", streams, senders))
    p50s = [statistics.median(r["latencies"]) for r in runs]
    p99s = [_pct(r["latencies"], 99) for r in runs]
    mid = sorted(range(len(runs)), key=lambda i: p99s[i])[len(runs) // 2]  # the run with the median p99
    r = runs[mid]
    n = r["bodies"]
    latencies, codes, took, results, actions = r["latencies"], r["codes"], r["took"], r["results"], r["actions"]
    worst_dupes, worst_actions, all_answered = 0, streams, True
    for x in runs:
        per = Counter(a["stream"] for a in x["actions"])
        worst_dupes = max(worst_dupes, sum(k - 1 for k in per.values() if k > 1))
        if len(x["actions"]) != streams or x["results"].get("dry_run", 0) != streams:
            worst_actions = len(x["actions"])
        all_answered = all_answered and x["codes"].get(200, 0) == x["bodies"]
    per_stream = Counter(a["stream"] for a in actions)
    p50, p99 = statistics.median(p50s), statistics.median(p99s)
    section.add(
        f"{n:,} notifications ({streams} streams × (8 deliveries of one `IPTVStreamDown` alert + 2 of an "
        f"`IPTVStreamStalled` alert)) sent by {senders} concurrent keep-alive senders as fast as answered, to the",
        "real exporter's `POST /hooks/alertmanager` (bearer token, `dry_run: true` with a command runner",
        "configured, cooldown 120 s, budget 5 per 30 min, SQLite journal). Latency is per request, from the",
        "first byte sent to the last byte of the answer, at the client; the senders (one asyncio loop in the",
        f"benchmark process) share the 2 cores with the exporter. {len(runs)} bursts, each against a fresh",
        "exporter and journal; latency figures are medians over the bursts, the rest from the median burst.",
        "",
    )
    section.table(["figure", "value"], [
        ["answers", ", ".join(f"{k:,}× {c}" for c, k in sorted(codes.items()))],
        ["burst took (wall)", f"{ms(took)} ({n / took:,.0f} notifications/s)"],
        ["latency p50 / p99 / max", f"{ms(p50)} / {ms(p99)} / {ms(max(latencies))}"],
        ["p99 of each burst", ", ".join(ms(x) for x in p99s)],
        ["exporter CPU while answering", f"{ms(r['cpu'])} ({ms(r['cpu'] / n)} per notification)"],
        ["`iptv_actions_total` by result", ", ".join(f"{k} {v:,.0f}" for k, v in sorted(results.items()))],
        ["actions in the journal", f"{len(actions):,} on {len(per_stream):,} streams (expected {streams})"],
        ["duplicate actions (worst burst)", f"{worst_dupes}"],
    ])
    met = all_answered and p99 <= P99_TARGET
    if not met:
        concurrency = n / took * statistics.median(r["latencies"])
        section.add(
            f"With {senders} requests always outstanding, a request waits for the ones ahead of it: by Little's law",
            f"latency ≈ outstanding / throughput = {senders} / {n / took:,.0f} per s ≈ {ms(senders / (n / took))} "
            f"(measured p50 {ms(p50)}; {concurrency:.0f} in flight on average). p99 ≤ 50 ms at {senders} in flight",
            f"needs ≥ {senders / P99_TARGET:,.0f} notifications/s, i.e. ≤ {ms(P99_TARGET / senders)} of exporter time",
            f"per notification; it spends {ms(r['cpu'] / n)} of CPU on each.",
            "",
        )
        if opts.profile:
            out = str(opts.tmp / "webhook-spy.txt")
            if py_spy() is None:
                section.add("(No profile: py-spy is not installed; `pip install py-spy`, the `bench` extra.)", "")
            else:
                _burst_once(opts.tmp / "webhook-profile", streams, senders, spy_out=out)
                lines = spy_summary(out, prefix="(exporter/")
                section.lines += as_markdown("the exporter during a burst (another burst; the GIL holder, 200 Hz)",
                                             "py-spy", lines)
    section.targets += [
        Target(f"webhook: all {n:,} answered, p99 ≤ 50 ms ({senders} senders)", met,
               f"p50 {ms(p50)}, p99 {ms(p99)}; {codes.get(200, 0):,}/{n:,} answered 200"),
        Target("webhook: exactly one action per stream, zero duplicates",
               worst_dupes == 0 and worst_actions == streams,
               f"{len(actions)} actions for {streams} streams, {worst_dupes} duplicates (worst of {len(runs)} bursts)"),
    ]
    return section
