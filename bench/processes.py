"""Stream processes: our processes source vs a scrape of Debian's prometheus-process-exporter.

Both look at the same stand-in streams and group them by stream id; process-exporter reads /proc when it
is scraped, so the CPU time of one scrape (summed over its threads, from schedstat) is its sampling cost.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import subprocess
import time
from pathlib import Path
from types import MappingProxyType

import httpx

from bench.measure import Measured, Series, Timing, interleaved, ms, ratio, task_cpu_seconds, timed
from bench.options import Options
from bench.profiling import as_markdown, profile
from bench.report import Section, Target
from bench.standins import PROCESS_EXPORTER_REGEX, Fleet, build
from bench.util import free_port, wait_until
from exporter.config import parse_config
from exporter.sources import SampleContext
from exporter.sources.processes import ProcessesSource

PE_VARIANTS = [("defaults", []), ("lean", ["-gather-smaps=false", "-threads=false"])]
TARGET_AT = 500
TARGET = 0.3
PE_CONFIG = f"""process_names:
  - name: "{{{{.Matches.stream}}}}"
    comm: [ffmpeg]
    cmdline: ['{PROCESS_EXPORTER_REGEX}']
"""


class ProcessExporter:
    """prometheus-process-exporter on a free loopback port, with ``flags`` added to Debian's defaults."""

    def __init__(self, tmp: Path, flags: list[str], name: str = "pe") -> None:
        self.config = tmp / f"process-exporter-{name}.yml"
        self.config.write_text(PE_CONFIG)
        self.port = free_port()
        self.flags = flags
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(timeout=60)

    def __enter__(self) -> ProcessExporter:
        self.proc = subprocess.Popen(
            ["prometheus-process-exporter", f"-config.path={self.config}",
             f"-web.listen-address=127.0.0.1:{self.port}", *self.flags],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )
        wait_until(lambda: self.client.get(self.url).status_code == 200, timeout=30, what="process-exporter")
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def scrape(self) -> tuple[Timing, str]:
        assert self.proc is not None
        c0, w0 = task_cpu_seconds(self.proc.pid), time.perf_counter()
        text = self.client.get(self.url).text
        return Timing(task_cpu_seconds(self.proc.pid) - c0, time.perf_counter() - w0), text

    def groups(self, text: str) -> int:
        return sum(1 for ln in text.splitlines()
                   if ln.startswith("namedprocess_namegroup_num_procs{") and not ln.endswith(" 0"))

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


def run(opts: Options) -> Section:
    section = Section("processes", "Stream processes vs prometheus-process-exporter")
    sizes = [100] if opts.quick else [100, 500, 1000]
    have_pe = shutil.which("prometheus-process-exporter") is not None
    exe = build(opts.tmp / "standin")
    config = parse_config({"viewers": {"access_log": None, "ports": []}})
    ctx = SampleContext(time.time(), MappingProxyType({}))
    rows: list[list[str]] = []
    at_target: tuple[float, float] | None = None
    profile_lines: list[str] = []
    for n in sizes:
        with Fleet(exe, opts.tmp / "webapp", n) as fleet:
            source = ProcessesSource(config)
            source.open()  # as the sampler does: the kernel's process events where allowed, as in production
            with contextlib.ExitStack() as stack:
                stack.callback(source.close)
                measures: dict[str, Measured] = {"ours": timed(source.sample, ctx)}
                pes: dict[str, ProcessExporter] = {}
                for name, flags in PE_VARIANTS if have_pe else ():
                    pes[name] = stack.enter_context(ProcessExporter(opts.tmp, flags, name))
                    measures[name] = pes[name].scrape
                # Two warm-up rounds: both keep per-process state between rounds.
                found = interleaved(measures, opts.runs, warmup=2)
            ours, result = found["ours"]
            up = sum(1 for s in result.streams.values() if s.up)
            pe_figures: list[tuple[Series, int, int]] = [
                (found[name][0], pes[name].groups(found[name][1]), len(found[name][1])) for name in pes
            ]
            row = [f"{n:,}", f"{up:,} / " + " / ".join(f"{g:,}" for _, g, _ in pe_figures),
                   f"{ms(ours.cpu)} ({ms(ours.wall)})"]
            for series, _, size in pe_figures:
                row.append(f"{ms(series.cpu)} ({ms(series.wall)}, {size / 1024:,.0f} KiB)")
            for series, _, _ in pe_figures:
                row.append(ratio(ours.cpu, series.cpu))
            row.append(f"{fleet.rss_bytes() / 2**20:,.0f} MiB")
            rows.append(row)
            if n == TARGET_AT and pe_figures:
                at_target = (ours.cpu, pe_figures[0][0].cpu)
                if ours.cpu > TARGET * at_target[1] and opts.profile:
                    tool, lines = profile(functools.partial(source.sample, ctx))
                    profile_lines = as_markdown(f"our processes sample at {n} streams", tool, lines)
    met, figure = None, "not run at 500 (--quick)" if have_pe else "prometheus-process-exporter not installed"
    if at_target is not None:
        met = at_target[0] <= TARGET * at_target[1]
        figure = f"{ratio(*at_target)} (ours {ms(at_target[0])} vs process-exporter {ms(at_target[1])} CPU)"
    section.targets.append(Target(
        f"processes: our sample ≤ {TARGET}× a process-exporter scrape (CPU) at {TARGET_AT} streams", met, figure))
    section.add(
        "Stand-in streams: a C program named `ffmpeg` with PanelX's command line (`... -f hls ...",
        "/streams/stream_<id>.m3u8`), 13 threads each, idle. Ours: `ProcessesSource(config).sample(ctx)` with",
        "the default discovery rules (panelx, xtream, hls presets), in process; it reads name and command line",
        "of every process, then CPU, memory, I/O, fds and threads of the matches. process-exporter",
        f"(`{PROCESS_EXPORTER_REGEX}` on comm `ffmpeg`, grouped by stream id, like ours) reads /proc on",
        "each scrape: its figure is the CPU its threads used while answering one `GET /metrics`, with",
        "Debian's defaults (smaps and per-thread metrics on: what the package runs) and with both turned off.",
        "All three are warm (state kept from earlier rounds) and take turns, run after run. Every figure: CPU",
        f"time, median of {opts.runs} runs, wall time in brackets. The host's other processes are scanned by",
        "all (ours counts any ffmpeg that matches its presets, hence a stream more at times).",
        "",
    )
    header = ["streams", "streams seen (ours / pe / pe lean)", "ours", "process-exporter (defaults)",
              "process-exporter (lean)", "ours / pe", "ours / pe lean", "stand-ins' RSS"]
    if not have_pe:
        header = ["streams", "streams seen", "ours", "stand-ins' RSS"]
    section.table(header, rows)
    section.lines += profile_lines
    return section
