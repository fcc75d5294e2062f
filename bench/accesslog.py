"""Access log ingest: our parser (bytes, codes, viewers, lines, sharing with geo) vs mtail on the same file."""

from __future__ import annotations

import functools
import shutil
import time
from pathlib import Path
from types import MappingProxyType

from bench.measure import Measured, Timing, child_measure, in_process, interleaved, ms, timed
from bench.nginxlog import generate
from bench.options import Options
from bench.profiling import as_markdown, profile
from bench.report import Section, Target
from exporter.config import parse_config
from exporter.geo import Geo
from exporter.sources import SampleContext, StreamRef
from exporter.sources.accesslog import AccessLogResult, AccessLogSource, parse_combined

TARGET = 3.0
STREAMS = 500

MTAIL_PROGRAM = (Path(__file__).parent / "iptv.mtail").read_text()
"""mtail's equivalent of the part of our access-log source it can express."""


def _ours(opts: Options, path: str, lines: int, now: float) -> tuple[AccessLogSource, SampleContext, int]:
    config = parse_config({"viewers": {"ports": [], "access_log": {"path": path, "from_start": True}},
                           "geo": opts.geo_config()})
    geo = Geo(config.geo)
    inventory = MappingProxyType({str(i): StreamRef(str(i), str(i), True) for i in range(1, STREAMS + 1)})
    return AccessLogSource(config, geo.lookup), SampleContext(now, inventory), lines


def _drain(source: AccessLogSource, ctx: SampleContext, lines: int) -> tuple[AccessLogResult, int]:
    """Sample until the whole file is in (the follower reads at most 64 MiB per round, as in production)."""
    rounds = 0
    while True:
        result = source.sample(ctx)
        rounds += 1
        if result.lines_total >= lines or rounds > 1000:
            return result, rounds


def _regex_pass(path: Path) -> int:
    """Only the parsing part of ours: read the file in the follower's 64 MiB batches and parse every line."""
    rows = 0
    with open(path, "rb") as fh:
        rest = b""
        while chunk := fh.read(64 << 20):
            data = rest + chunk
            cut = data.rfind(b"\n") + 1
            rows += len(parse_combined(data[:cut]))
            rest = data[cut:]
    return rows


def _mtail_bytes(text: str) -> int:
    return int(sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
                   if ln.startswith("iptv_stream_sent_bytes_total{")))


def run(opts: Options) -> Section:
    section = Section("accesslog", "Access log ingest vs mtail")
    lines = 100_000 if opts.quick else 1_000_000
    runs = opts.runs  # mtail's CPU time moves by a quarter between passes on a shared machine: a median of several
    path = opts.tmp / "access.log"
    now = time.time()
    g0 = time.perf_counter()
    size = generate(path, lines, STREAMS, end=now)
    gen_s = time.perf_counter() - g0

    def ours_pass() -> tuple[Timing, tuple[AccessLogResult, int]]:
        source, ctx, _ = _ours(opts, str(path), lines, now)
        try:
            return in_process(functools.partial(_drain, source, ctx, lines))
        finally:
            source.close()

    measures: dict[str, Measured] = {"ours": ours_pass, "regex": timed(_regex_pass, path)}
    have_mtail = shutil.which("mtail") is not None
    out = opts.tmp / "mtail.out"
    if have_mtail:
        prog = opts.tmp / "iptv.mtail"
        prog.write_text(MTAIL_PROGRAM)
        measures["mtail"] = child_measure(
            ["mtail", "--one_shot", "--one_shot_format", "prometheus", "--progs", str(prog), "--logs", str(path)], out)
    found = interleaved(measures, runs, warmup=0)  # each pass reads 150 MB: the page cache is warm from writing it
    ours, (result, rounds) = found["ours"]
    regex, parsed = found["regex"]
    our_bytes = sum(s.sent_bytes_total for s in result.streams.values())
    mtail = found["mtail"][0] if have_mtail else None
    mtail_bytes = _mtail_bytes(out.read_text()) if have_mtail else 0

    ours_lps, ours_wall_lps = lines / ours.cpu, lines / ours.wall
    section.add(
        f"A generated {lines:,}-line nginx `combined` log ({size / 2**20:,.0f} MiB, written in {gen_s:.1f} s): "
        "HLS segments `/streams/stream_<id>_<n>.ts` (58 %), `/live/<user>/<password>/<id>.m3u8` (20 %) and",
        "`.ts` (5 %), 404s, 403s for wrong passwords, 502s, panel API calls, streams outside the inventory,",
        f"TLS garbage, 15 % IPv6 clients; 20,000 clients over {STREAMS} streams (a few popular, a long tail),",
        "request times ending now. Ours: `AccessLogSource.sample()` rounds from the file's start until every",
        "line is in (it reads at most 64 MiB per round, as it does on a host), computing per-stream bytes,",
        "responses by class, viewers (client sessions in the window), lines online and sharing with geo",
        f"lookups; {rounds} rounds per pass. mtail {'' if mtail else '(not installed) '}runs the program below in",
        "`--one_shot` mode over the same file: per-stream bytes and responses by code, nothing else. CPU time",
        f"(user + system; mtail's from wait4, all its threads) and wall time, medians of {runs} passes; the",
        "contenders take turns, pass after pass.",
        "",
    )
    rows = [["ours", f"{ms(ours.cpu)} ({ms(ours.wall)})", f"{ours_lps:,.0f}", f"{ours_wall_lps:,.0f}",
             f"{our_bytes:,}"]]
    met, figure = None, "mtail not installed"
    if mtail is not None:
        rows.append(["mtail", f"{ms(mtail.cpu)} ({ms(mtail.wall)})", f"{lines / mtail.cpu:,.0f}",
                     f"{lines / mtail.wall:,.0f}", f"{mtail_bytes:,}"])
        cpu_ratio, wall_ratio = mtail.cpu / ours.cpu, mtail.wall / ours.wall
        rows.append(["ours / mtail", "", f"{cpu_ratio:.2f}×", f"{wall_ratio:.2f}×", ""])
        per_pass = ", ".join(f"{m.cpu / o.cpu:.2f}×" for o, m in zip(ours.runs, mtail.runs, strict=True))
        met = cpu_ratio >= TARGET
        figure = (f"{cpu_ratio:.2f}× by CPU ({ours_lps:,.0f} vs {lines / mtail.cpu:,.0f} lines/s; passes: {per_pass}), "
                  f"{wall_ratio:.2f}× by wall")
    rows.insert(1, ["ours, regex pass only", f"{ms(regex.cpu)} ({ms(regex.wall)})", f"{lines / regex.cpu:,.0f}",
                    f"{lines / regex.wall:,.0f}", ""])
    section.table(["", "time for the file (CPU, wall)", "lines/s (CPU)", "lines/s (wall)", "bytes counted"], rows)
    section.add(
        "For scale, *regex pass only* is the parser alone over the file (`parse_combined`: one `re.match` of",
        f"`COMBINED` per line, {parsed:,} rows, nothing counted): {regex.cpu / ours.cpu:.0%} of our whole time. Ours",
        "runs the same parser on each round's lines, then one loop over the rows: the path's stream from a map",
        "of the paths seen before (a URL pattern only for a new path), per-stream counters, viewer sessions and",
        "lines; then the once-per-round results (viewers, lines online, suspected sharing with geo lookups).",
        "",
    )
    section.add(
        f"Ours, at the end: {result.lines_total:,} lines, {result.skipped_lines_total:,} skipped, "
        f"{sum(result.viewers.values()):,} viewers on {len(result.viewers)} streams, {result.lines_online:,} lines "
        f"online, {len(result.sharing_lines):,} suspected of sharing. Bytes differ from mtail's by the requests for",
        "streams outside the inventory, which ours does not count (no label value is made from a URL).",
        "",
        "The mtail program:",
        "",
        "```",
        *MTAIL_PROGRAM.strip().splitlines(),
        "```",
        "",
    )
    if met is False and opts.profile:
        def one_pass() -> None:
            source, ctx, _ = _ours(opts, str(path), lines, now)
            _drain(source, ctx, lines)
            source.close()

        tool, prof = profile(one_pass, repeat=1)
        section.lines += as_markdown("our access-log ingest", tool, prof)
    scale = " — at the --quick scale (the target is for 1,000,000 lines)" if opts.quick else ""
    section.targets.append(Target(f"access log: ours ≥ {TARGET:g}× mtail's lines/s ({lines:,} lines){scale}", met,
                                  figure))
    return section
