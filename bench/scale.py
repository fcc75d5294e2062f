"""The whole exporter at 2,000 streams and 50,000 viewers beside 500 and 10,000: is the growth linear?

The same measurements as the ``exporter`` benchmark (a probe process timing ``sampler.sample_once()`` and
the first /metrics render by its own CPU clock; the real exporter's resident memory after a steady spell),
at two sizes of the same host shape: 4× the streams and 5× the viewers. Each source's CPU is divided by
what it grows with (streams, connections, log lines), so a cost per unit that stays put at both sizes is
linear growth; one that rises is not.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from bench import exporter as whole
from bench.measure import ms, process_count
from bench.options import Options
from bench.report import Section, Target
from bench.workload import Host, lines_per_second

SAMPLE_TARGET = 1.0
RSS_TARGET = 300 * 2**20
VIEWER_SOURCES = ("sockets", "accesslog")
"""Sources whose work grows with viewers; every other source's grows with streams."""
ROUND_SECONDS = 5.0
"""The probe appends a 5 s round of log lines before each sample (``run_probe``'s interval)."""
THREADS_PER_STANDIN = 13


class ScaleHost(Host):
    """The exporter benchmark's host, with the config an operator of a host this size writes: the cap on
    discovered streams (``streams.max_discovered``, default 1,000) raised to the host's streams."""

    def config(self, **extra: object) -> dict[str, object]:
        cfg = super().config(**extra)
        streams = cfg["streams"]
        assert isinstance(streams, dict)
        streams["max_discovered"] = max(self.streams, 1_000)
        return cfg


def pid_headroom() -> int:
    """Tasks the kernel can still start: pid_max minus the tasks alive now (/proc/loadavg's 4th field)."""
    with open("/proc/sys/kernel/pid_max") as fh:
        pid_max = int(fh.read())
    with open("/proc/loadavg") as fh:
        tasks = int(fh.read().split()[3].split("/")[1])
    return pid_max - tasks


def measure(opts: Options, streams: int, viewers: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(probe, real exporter) at one size: the exporter benchmark's, when it has measured this size already."""
    if (streams, viewers) in whole.RUNS:
        return whole.RUNS[(streams, viewers)]
    needed = streams * THREADS_PER_STANDIN + 2_000
    if pid_headroom() < needed:
        raise RuntimeError(f"{streams} stand-ins need {needed:,} free pids, the kernel has {pid_headroom():,} "
                           "(raise kernel.pid_max, or wait for other work on the machine to end)")
    with ScaleHost(opts, streams, viewers, name="scale") as host:
        probe = whole.run_probe(host, opts.runs, interval=ROUND_SECONDS)
        probe["machine_processes"] = process_count()
        real = whole.real_process(host, opts, opts.runs)
    return probe, real


def steady_cpu(probe: dict[str, Any], names: tuple[str, ...] | None = None, *, exclude: bool = False) -> float:
    """Median CPU of a steady round spent in the named sources (or in every other source with ``exclude``)."""
    per_source = probe["source_cpu"]
    chosen = [n for n in per_source if (n in names) != exclude] if names is not None else list(per_source)
    rounds = len(probe["samples"])
    return float(statistics.median(sum(per_source[n][i] for n in chosen if i < len(per_source[n]))
                                   for i in range(rounds)))


def sample_cpu(probe: dict[str, Any]) -> float:
    return float(statistics.median(s["cpu"] for s in probe["samples"]))


def render_cpu(probe: dict[str, Any]) -> float:
    return float(statistics.median(r["cpu"] for r in probe["renders"]))


def series_count(probe: dict[str, Any]) -> int:
    return sum(a + b for a, b in whole.series_by_family(probe["metrics"]).values())


def growth(lo: float, hi: float) -> str:
    return f"{hi / lo:.2f}×" if lo > 0 else "n/a"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs"


def run(opts: Options) -> Section:
    points = [(50, 1_000), (200, 5_000)] if opts.quick else [(500, 10_000), (2_000, 50_000)]
    (n_lo, m_lo), (n_hi, m_hi) = points
    section = Section("scale", f"Scale: {n_hi:,} streams and {m_hi:,} viewers beside {n_lo} and {m_lo:,}")
    measured = [measure(opts, n, m) for n, m in points]
    lines = [int(lines_per_second(m) * ROUND_SECONDS) for _, m in points]

    def row(label: str, values: list[float], fmt: Callable[[float], str] = ms) -> list[str]:
        lo, hi = values
        return [label, fmt(lo), fmt(hi), growth(lo, hi)]

    samples = [sample_cpu(p) for p, _ in measured]
    stream_side = [steady_cpu(p, VIEWER_SOURCES, exclude=True) for p, _ in measured]
    sockets = [steady_cpu(p, ("sockets",)) for p, _ in measured]
    accesslog = [steady_cpu(p, ("accesslog",)) for p, _ in measured]
    rest = [s - steady_cpu(p) for s, (p, _) in zip(samples, measured, strict=True)]
    renders = [render_cpu(p) for p, _ in measured]
    series = [series_count(p) for p, _ in measured]
    rss = [float(r["rss"]) for _, r in measured]
    hwm = [float(r["hwm"]) for _, r in measured]
    stream_names = sorted(n for n in measured[0][0]["source_cpu"] if n not in VIEWER_SOURCES)
    per_stream = [c / n for c, (n, _) in zip(stream_side, points, strict=True)]
    per_conn = [c / m for c, (_, m) in zip(sockets, points, strict=True)]
    per_line = [c / n for c, n in zip(accesslog, lines, strict=True)]
    per_series = [c / n for c, n in zip(renders, series, strict=True)]
    rows = [
        row("full sample (steady round, CPU)", samples),
        row(f"stream sources ({', '.join(stream_names)})", stream_side),
        row("streams the exporter watched", [float(p["streams"]) for p, _ in measured], lambda v: f"{v:,.0f}"),
        row("… per stream", per_stream, us),
        row("processes on the machine (the processes source reads them all)",
            [float(p.get("machine_processes", 0)) for p, _ in measured], lambda v: f"{v:,.0f}"),
        row("sockets source", sockets),
        row("… per viewer connection", per_conn, us),
        row(f"access-log source ({lines[0]:,} / {lines[1]:,} lines a round)", accesslog),
        row("… per log line", per_line, us),
        row("rest of the round (inventory, sampler, snapshot)", rest),
        row("/metrics render (first scrape of a snapshot, CPU)", renders),
        row("… per series", per_series, us),
        row("series on /metrics", [float(s) for s in series], lambda v: f"{v:,.0f}"),
        row("resident memory (real exporter)", rss, lambda v: f"{v / 2**20:,.0f} MiB"),
        row("peak resident memory (real exporter)", hwm, lambda v: f"{v / 2**20:,.0f} MiB"),
    ]
    added_memory = (rss[1] - rss[0]) / (m_hi - m_lo)
    section.add(
        f"The exporter benchmark's host at two sizes: {n_lo} streams with {m_lo:,} viewer connections and",
        f"{n_hi:,} streams with {m_hi:,} ({n_hi / n_lo:.0f}× the streams, {m_hi / m_lo:.0f}× the viewers and log",
        "lines). Real loopback TCP connections (clients spread over 100 addresses in 127.2.0.0/16; client and",
        "viewer ports below the ephemeral range, as on a host whose viewers are remote), stand-in ffmpegs with",
        "13 threads each, the access log growing by each viewer's two requests per 10 s. The larger host's",
        "config raises `streams.max_discovered` (default 1,000) to its streams, as its operator would. CPU",
        "figures: medians of steady rounds in the probe process, as in the exporter benchmark",
        f"({opts.runs} rounds after a first); memory: the real exporter after its steady spell. The smaller size",
        "is the exporter benchmark's own measurement when it ran first. *Growth*: the larger figure over the",
        "smaller one; a cost *per* unit that holds still means the cost grows linearly. The processes source",
        "reads the name and command line of every process on the machine, not only the streams': other work's",
        "processes on a shared machine add to the stream sources' figure.",
        "",
    )
    section.table(["figure", f"{n_lo} streams, {m_lo:,} viewers", f"{n_hi:,} streams, {m_hi:,} viewers",
                   "growth"], rows)
    section.add(
        f"Per unit, the larger host costs {growth(*per_stream)} per stream,",
        f"{growth(*per_conn)} per viewer connection and {growth(*per_line)} per log",
        "line what the smaller one does (1.00× is exactly linear). Memory grows by about",
        f"{added_memory / 1024:,.1f} KiB per added viewer (with its streams and log lines) above",
        f"{rss[0] / 2**20:,.0f} MiB.",
        "",
    )
    scale_note = " — at the --quick scale" if opts.quick else ""
    section.targets += [
        Target(f"scale: full sample ≤ 1 s CPU ({n_hi:,} streams, {m_hi:,} viewers){scale_note}",
               samples[1] <= SAMPLE_TARGET,
               f"{ms(samples[1])} CPU ({growth(*samples)} the {ms(samples[0])} at {n_lo} streams, "
               f"{m_lo:,} viewers)"),
        Target(f"scale: resident memory ≤ 300 MB ({n_hi:,} streams, {m_hi:,} viewers){scale_note}",
               rss[1] <= RSS_TARGET, f"{rss[1] / 2**20:,.0f} MiB (peak {hwm[1] / 2**20:,.0f} MiB)"),
    ]
    return section
