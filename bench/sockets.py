"""Viewer sockets: our netlink sample vs ``ss -tinH`` vs ``psutil.net_connections`` on the same connections."""

from __future__ import annotations

import functools
import time
from types import MappingProxyType

import psutil

from bench.connfarm import ConnFarm, source_addresses
from bench.measure import child_measure, interleaved, ms, ratio, timed
from bench.options import Options
from bench.profiling import as_markdown, profile
from bench.report import Section, Target
from exporter.config import parse_config
from exporter.geo import Geo
from exporter.sources import SampleContext
from exporter.sources.sockets import SocketsSource

TARGET_AT = 10_000
TARGET = 0.7


def _psutil(port: int) -> int:
    return sum(1 for c in psutil.net_connections(kind="tcp")
               if c.status == psutil.CONN_ESTABLISHED and c.raddr and c.laddr.port == port)


def run(opts: Options) -> Section:
    section = Section("sockets", "Viewer sockets (sock_diag) vs ss and psutil")
    sizes = [1_000] if opts.quick else [1_000, 10_000, 19_000]
    rows: list[list[str]] = []
    at_target: tuple[float, float] | None = None
    slowest = None
    profile_lines: list[str] = []
    with ConnFarm(source_addresses(1, 100)) as farm:
        config = parse_config({"viewers": {"ports": [farm.port], "access_log": None}, "geo": opts.geo_config()})
        for n in sizes:
            farm.grow_to(n)
            geo = Geo(config.geo)
            ctx = SampleContext(time.time(), MappingProxyType({}))

            def cold(geo: Geo = geo, ctx: SampleContext = ctx) -> int:
                geo.lookup.cache_clear()  # type: ignore[attr-defined]
                return len(SocketsSource(config, geo.lookup, geo.refresh).sample(ctx).connections)

            source = SocketsSource(config, geo.lookup, geo.refresh)
            ss_out = opts.tmp / "ss.out"
            found = interleaved({
                "steady": timed(source.sample, ctx),
                "first": timed(cold),
                "ss": child_measure(["ss", "-tinH", "state", "established", f"( sport = :{farm.port} )"], ss_out),
                "psutil": timed(_psutil, farm.port),
            }, opts.runs)
            (warm, result), (cold_s, _), (ss, _), (ps, ps_seen) = (found[k] for k in ("steady", "first", "ss",
                                                                                      "psutil"))
            seen = len(result.connections)
            ss_seen = sum(1 for ln in ss_out.read_text().splitlines() if ln and not ln[0].isspace())
            rows.append([
                f"{n:,}", f"{seen:,} / {ss_seen:,} / {ps_seen:,}",
                f"{ms(warm.cpu)} ({ms(warm.wall)})", f"{ms(cold_s.cpu)} ({ms(cold_s.wall)})",
                f"{ms(ss.cpu)} ({ms(ss.wall)})", f"{ms(ps.cpu)} ({ms(ps.wall)})",
                ratio(warm.cpu, ss.cpu), ratio(cold_s.cpu, ss.cpu), ratio(warm.cpu, ps.cpu),
            ])
            if n == TARGET_AT:
                at_target = (warm.cpu, ss.cpu)
                if warm.cpu > TARGET * ss.cpu:
                    slowest = source
            geo.close()
        if slowest is not None and opts.profile:
            src = slowest
            tool, lines = profile(functools.partial(src.sample, ctx))
            profile_lines = as_markdown(f"our socket sample at {TARGET_AT:,} connections", tool, lines)
    figure = "not run at 10k (--quick)"
    met = None
    if at_target is not None:
        met = at_target[0] <= TARGET * at_target[1]
        figure = f"{ratio(*at_target)} (ours {ms(at_target[0])} vs ss {ms(at_target[1])} CPU)"
    section.targets.append(Target(f"sockets: our sample ≤ {TARGET}× `ss -tinH` CPU at 10k connections", met, figure))
    section.add(
        "Established loopback connections on one viewer port (clients from 100 addresses in 127.1.0.0/16,",
        "each connection with 1 KiB sent, so tcp_info has bytes). Ours: `SocketsSource.sample()` with the",
        "benchmark's GeoIP databases; *steady* is a sample of a source that has seen these sockets before",
        "(every round after the first: per-socket state and geo answers are reused), *first* a fresh source",
        "with an empty geo cache. `ss -tinH state established '( sport = :PORT )'` as a child process (CPU from",
        "wait4, fork and exec included, which is the cost of calling it); `psutil.net_connections('tcp')`",
        "filtered to the port (it reads /proc/net/tcp* and every process's fd table). The four take turns,",
        f"run after run; figures are CPU time medians of {opts.runs} runs, wall time in brackets; connections",
        "seen: ours / ss / psutil.",
        "",
    )
    section.table(["connections", "seen", "ours steady", "ours first", "ss -tinH", "psutil", "steady / ss",
                   "first / ss", "steady / psutil"], rows)
    section.lines += profile_lines
    return section
