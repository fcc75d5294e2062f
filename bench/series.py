"""Series per node: how many samples /metrics exposes for N streams and M viewers (for docs/scaling.md)."""

from __future__ import annotations

from bench import exporter as whole
from bench.options import Options
from bench.report import Section
from bench.workload import Host

FOUND: dict[tuple[int, int], dict[str, tuple[int, int]]] = {}
"""Families measured by the ``exporter`` benchmark in this run, so the same workload is not built twice."""


def run(opts: Options) -> Section:
    section = Section("series", "Series per node")
    points = [(20, 200), (50, 1_000)] if opts.quick else [(50, 1_000), (200, 5_000), (500, 10_000)]
    measured: dict[tuple[int, int], dict[str, tuple[int, int]]] = {}
    for streams, viewers in points:
        if (streams, viewers) in whole.FOUND:
            measured[(streams, viewers)] = whole.FOUND[(streams, viewers)]
            continue
        with Host(opts, streams, viewers, name="series") as host:
            probe = whole.run_probe(host, 2)
        measured[(streams, viewers)] = whole.series_by_family(probe["metrics"])
    names = sorted({f for fams in measured.values() for f in fams})
    (n_lo, m_lo), (n_hi, m_hi) = points[0], points[-1]
    lo, hi = measured[points[0]], measured[points[-1]]
    rows = []
    empty = [name for name in names if not any(sum(measured[p].get(name, (0, 0))) for p in points)]
    for name in names:
        if name in empty:
            continue
        cells = [f"`{name}`"]
        for p in points:
            per, other = measured[p].get(name, (0, 0))
            cells.append(f"{per + other:,}")
        a_lo, a_hi = sum(lo.get(name, (0, 0))), sum(hi.get(name, (0, 0)))
        slope = (a_hi - a_lo) / (n_hi - n_lo)
        per_stream = hi.get(name, (0, 0))[0] / n_hi
        cells.append(f"{per_stream:.2f}" if per_stream else "")
        cells.append(f"{slope:.2f}")
        rows.append(cells)
    totals = [sum(a + b for a, b in measured[p].values()) for p in points]
    stream_series = [sum(a for a, _ in measured[p].values()) for p in points]
    per_stream_total = stream_series[-1] / n_hi
    fixed = [t - s for t, s in zip(totals, stream_series, strict=True)]
    rows.append(["**total**", *[f"**{t:,}**" for t in totals], f"**{per_stream_total:.1f}**",
                 f"**{(totals[-1] - totals[0]) / (n_hi - n_lo):.1f}**"])
    section.add(
        "Samples on /metrics (one sample = one series; a histogram's buckets, `_sum` and `_count` each count)",
        "at several workloads of the exporter benchmark's shape, counted by family. *Per stream*: series with",
        "a `stream` label divided by the streams at the largest point; *slope*: growth per added stream between",
        f"{n_lo} and {n_hi} streams (viewers grew too, from {m_lo:,} to {m_hi:,}).",
        "",
    )
    section.table(["family", *[f"{n} streams, {m:,} viewers" for n, m in points], "per stream", "slope"], rows)
    growing = [name for name in names if lo.get(name, (0, 0))[1] != hi.get(name, (0, 0))[1]]
    geo = [name for name in names if name.startswith("iptv_connections")]
    section.add(
        f"So a node exposes about **{per_stream_total:.0f} series per stream** plus **{fixed[-1]:,}** that carry no",
        f"`stream` label (at the points above: {', '.join(f'{x:,}' for x in fixed)}).",
        "",
    )
    if empty:
        section.add(
            "Families with no series here, because the stand-ins send no ffmpeg progress and the workload has",
            f"no such events: {', '.join(f'`{e}`' for e in empty)}. On a real host each adds up to one",
            "series per stream (the `kind` and `code` families up to one per kind or class and stream).",
            "",
        )
    if geo:
        section.add(
            f"Viewers reach the series count only through geography ({', '.join(f'`{g}`' for g in geo)}), which is",
            "bounded by the distinct countries plus `geo.top_cities` and `geo.top_isps` (50 each by default, plus",
            "`other` rows) whatever the number of viewers; everything else about viewers is counted into per-stream",
            f"series. Families without a `stream` label that grew between the points: "
            f"{', '.join(f'`{g}`' for g in growing) or 'none'}. The benchmark's GeoIP data has 24 cities in 21",
            "countries and 60 ISPs: a real node's viewers fill the top-N, so count up to 50 + 50 + countries + 2.",
            "",
        )
    else:
        section.add("This version exports no viewer (connection or geography) families yet: only streams count.", "")
    return section
