"""Recovery time: from a stream's death to a verified restart, through real Prometheus and Alertmanager.

Three nodes (two real ffmpeg streams each) behind an HA pair of Prometheus (``replica`` label) and an
Alertmanager cluster pair, all from the shipped files (bench/fleetstack.py). Each kill SIGKILLs one stream's
ffmpeg at a different phase of the 5 s scrape cycle and waits for the exporter's journal to record the
verified restart; the stages come from Prometheus (raw samples of ``iptv_stream_up`` and ``ALERTS``) and
from the journal (decision, start and end of the action).
"""

from __future__ import annotations

import os
import signal
import statistics
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from bench.fleetstack import FleetStack, Node, NodeSpec, query, stream_pids
from bench.options import Options
from bench.report import Section, Target
from bench.util import wait_until

TARGET_MEDIAN = 30.0
SPECS = [NodeSpec("edge-1", ["11", "12"]), NodeSpec("edge-2", ["21", "22"]), NodeSpec("edge-3", ["31", "32"])]


@dataclass(frozen=True)
class Recovery:
    node: str
    stream: str
    seen: float
    pending: float
    firing: float
    webhook: float
    started: float
    verified: float
    actions: int
    """Actions run for this death (1: the HA pair's duplicates were absorbed)."""
    duplicates: int


def _first_sample(proms: list[str], selector: str, after: float, value: str | None = None) -> float:
    """The earliest raw sample at or after ``after`` (with ``value``) in any of the HA pair: whichever
    replica gets there first drives the restart."""
    found = [float(ts) for prom in proms for series in query(prom, f"{selector}[5m]")
             for ts, v in series["values"] if float(ts) >= after and (value is None or v == value)]
    return min(found, default=float("nan"))


def kill_and_wait(fleet: FleetStack, node: Node, stream: str, timeout: float = 180.0) -> Recovery:
    """SIGKILL the stream's ffmpeg, wait for its verified restart and for every replica to resolve the alert."""
    pids = stream_pids(node.playlist(stream))
    if not pids:
        raise RuntimeError(f"no ffmpeg for stream {stream} on {node.spec.name}")
    t_kill = time.time()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)

    def verified() -> dict[str, Any] | None:
        story = node.journal()
        done = [a for a in story["actions"] if a["stream"] == stream and a["decided_at"] >= t_kill
                and a["result"] == "ok"]
        return story if done else None

    story = wait_until(verified, timeout, f"verified restart of {node.spec.name}/{stream}")
    actions = [a for a in story["actions"] if a["stream"] == stream and a["decided_at"] >= t_kill]
    action = min(actions, key=lambda a: a["decided_at"])
    decisions = [d for d in story["decisions"] if d["stream"] == stream and d["at"] >= t_kill]
    settle(fleet, node, stream)  # every replica has seen all of it
    prom = fleet.prometheus_urls
    labels = f'node="{node.spec.name}",stream="{stream}"'
    return Recovery(
        node=node.spec.name, stream=stream,
        seen=_first_sample(prom, f"iptv_stream_up{{{labels}}}", t_kill, "0") - t_kill,
        pending=_first_sample(prom, f'ALERTS{{alertname="IPTVStreamDown",alertstate="pending",{labels}}}',
                              t_kill) - t_kill,
        firing=_first_sample(prom, f'ALERTS{{alertname="IPTVStreamDown",alertstate="firing",{labels}}}',
                             t_kill) - t_kill,
        webhook=min(d["at"] for d in decisions) - t_kill,
        started=action["started_at"] - t_kill,
        verified=action["finished_at"] - t_kill,
        actions=len(actions),
        duplicates=sum(d["result"] == "skipped_duplicate" for d in decisions),
    )


def settle(fleet: FleetStack, node: Node, stream: str) -> None:
    """Until every Prometheus sees the stream up again and its down alert resolved."""
    labels = f'node="{node.spec.name}",stream="{stream}"'

    def back_and_resolved(prom: str) -> bool:
        return bool(query(prom, f"iptv_stream_up{{{labels}}} == 1")) and not query(
            prom, f'ALERTS{{alertname="IPTVStreamDown",{labels}}}')

    for prom in fleet.prometheus_urls:
        wait_until(partial(back_and_resolved, prom), 120, f"{node.spec.name}/{stream} back and resolved")


def measure(fleet: FleetStack, kills: int) -> list[Recovery]:
    plan = [(node, stream) for node in fleet.nodes for stream in node.spec.streams]
    results = []
    for i in range(kills):
        node, stream = plan[i % len(plan)]
        # Spread the deaths over the 5 s scrape and sample cycles: each kill at another phase.
        time.sleep((i * 1.7) % 5.0)
        results.append(kill_and_wait(fleet, node, stream))
    return results


def run(opts: Options) -> Section:
    section = Section("recovery", "Recovery: stream death to verified restart")
    kills = 3 if opts.quick else 5
    with FleetStack(opts.tmp / "recovery", SPECS, prometheus_replicas=2, alertmanagers=2) as fleet:
        fleet.wait_scraped()
        started = time.time()
        results = measure(fleet, kills)
        stalls = sum(len(query(p, f'count_over_time(ALERTS{{alertname="IPTVStreamStalled"}}'
                                  f'[{int(time.time() - started) + 60}s])')) for p in fleet.prometheus_urls)
    totals = [r.verified for r in results]
    median, worst = statistics.median(totals), max(totals)
    section.add(
        "Three nodes with two real ffmpeg streams each, an HA pair of Prometheus (`replica` label, dropped from",
        "alerts) and a cluster pair of Alertmanager, built from the shipped `prometheus/` and `alertmanager/` files",
        "(alertmanager.yml generated by `iptv-exporter fleet`, one token per node) and the shipped timings: the",
        "exporter samples every 5 s, Prometheus scrapes the iptv job every 5 s and evaluates the stream alerts",
        "every 5 s, IPTVStreamDown has `for: 15s`, the restart route has `group_wait: 0s`. Each kill is a SIGKILL",
        "of one stream's ffmpeg, at another phase of the 5 s cycles; the restart command starts it again and the",
        "exporter verifies a new process. Seconds after the kill:",
        "",
    )
    rows = [[f"{r.node}/{r.stream}", *(f"{x:.1f}" for x in (r.seen, r.pending, r.firing, r.webhook, r.started,
                                                              r.verified)), str(r.actions), str(r.duplicates)]
            for r in results]
    rows.append(["**median**", *(f"**{statistics.median(getattr(r, k) for r in results):.1f}**" for k in
                                  ("seen", "pending", "firing", "webhook", "started", "verified")), "", ""])
    section.table(["stream", "seen down (scrape)", "pending", "firing", "webhook", "restart started",
                   "verified", "actions", "duplicates absorbed"], rows)
    section.add(
        f"Median **{median:.1f} s**, max **{worst:.1f} s** over {kills} kills. Every death was restarted exactly",
        f"once ({sum(r.actions for r in results)} actions for {kills} kills) though both Alertmanagers may send it;",
        f"IPTVStreamStalled samples (pending or firing) over the run: {stalls}.",
        "",
    )
    section.targets.append(Target(f"recovery: median kill → verified restart ≤ {TARGET_MEDIAN:.0f} s ({kills} kills, "
                                  "shipped configs, HA pair)", median <= TARGET_MEDIAN,
                                  f"median {median:.1f} s, max {worst:.1f} s"))
    actions = sum(r.actions for r in results)
    section.targets.append(Target("recovery: one action per death, no stall alert after a restart",
                                  all(r.actions == 1 for r in results) and stalls == 0,
                                  f"{actions} actions for {kills} kills; {stalls} stall samples"))
    return section
