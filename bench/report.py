"""The results of one run as Markdown: machine, date, load, one section per benchmark, targets met or not."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Target:
    text: str
    """What was aimed for, e.g. ``sockets: ours ≤ 0.7× ss at 10k``."""
    met: bool | None
    """None: not measured in this run (the section says why)."""
    figure: str


@dataclass
class Section:
    key: str
    title: str
    lines: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.lines.append("| " + " | ".join(header) + " |")
        self.lines.append("|" + "|".join("---" if i == 0 else "--:" for i in range(len(header))) + "|")
        for row in rows:
            self.lines.append("| " + " | ".join(row) + " |")
        self.lines.append("")


def _version(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "not installed"
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def code_version() -> str:
    """The commit measured, and whether the working tree differed from it (this report's file aside)."""
    repo = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        changed = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no", "--",
                                  ".", ":!docs/benchmarks.md"], capture_output=True, text=True, timeout=10,
                                 check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return f"commit {commit}" + (", with uncommitted changes" if changed else "")


def machine() -> list[tuple[str, str]]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass  # not Linux: the benchmarks need Linux anyway and say so
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    try:
        with open("/etc/debian_version") as fh:
            debian = f"Debian {fh.read().strip()}"
    except OSError:
        debian = platform.platform()
    return [
        ("CPU", f"{model}, {os.cpu_count()} cores"),
        ("Memory", f"{mem:.0f} GiB"),
        ("Kernel", platform.release()),
        ("OS", debian),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("ss", _version(["ss", "-V"])),
        ("process-exporter", _version(["prometheus-process-exporter", "--version"])),
        ("mtail", _version(["mtail", "--version"])),
        ("node_exporter", _version(["prometheus-node-exporter", "--version"])),
    ]


def render(sections: list[Section], *, argv: list[str], started: dt.datetime, wall_seconds: float,
           load_before: str, load_after: str, busy: float) -> str:
    targets = [t for s in sections for t in s.targets]
    out = [
        "# Benchmarks",
        "",
        "Written by `python -m bench` (`make bench`): every workload is built on loopback by the benchmark",
        "itself, every comparison is made in the same run against the same workload, and figures are medians",
        "of several runs. CPU time is user + system (kernel work done for a process counts as its own).",
        "",
        "## How to rerun",
        "",
        "```sh",
        "make bench                              # the full run; rewrites this file (7-10 minutes)",
        "make bench BENCH_ARGS=--quick           # every workload scaled down (a few minutes), prints the report",
        ".venv/bin/python -m bench --only sockets,processes --runs 7 --output /tmp/bench.md",
        "```",
        "",
        "Benchmarks: `sockets`, `processes`, `accesslog`, `exporter`, `scale`, `steady`, `webhook`, `series`,",
        "`nodeseries`, `recovery` (the last two start Debian's prometheus and prometheus-alertmanager, and real",
        "ffmpeg; `scale` builds a host of 2,000 stand-in streams and 50,000 connections, `steady` runs the exporter",
        "beside node_exporter for a minute; each takes about 1.5 minutes). It needs Linux (connections are spread",
        "over child processes as `RLIMIT_NOFILE` requires), about 28,000 free pids for the stand-ins' threads,",
        "`gcc`, and Debian's `prometheus-process-exporter`, `mtail` and `prometheus-node-exporter` (installed",
        "with apt-get when missing and running as root, with services kept from starting).",
        "Where a target is missed it profiles our side (pyinstrument, or cProfile without it; py-spy for the",
        "exporter process under the webhook burst: both come with the `bench` extra that `make bench` installs).",
        "Only loopback is used: 127.x addresses, a listener on a free port, child processes it kills itself.",
        "",
        "## This run",
        "",
        f"- Date: {started.strftime('%Y-%m-%d %H:%M UTC')}, took {wall_seconds / 60:.1f} min; command "
        f"`{' '.join(['python -m bench', *argv])}`",
    ]
    out.append(f"- Code: {code_version()}")
    out += [f"- {k}: {v}" for k, v in machine()]
    out += [
        f"- Load average before / after: {load_before} / {load_after}; the machine was {busy:.0%} busy over the "
        "run (the benchmark itself included). Other work on the same 2 cores inflates wall times more than CPU "
        "times, which is why CPU time is the figure compared where the work is CPU-bound; even so, on a shared "
        "machine CPU times move between runs (caches and hyperthreads are shared too), so read a figure near its "
        "target as near it.",
        "",
        "## Targets",
        "",
        "| target | result | figure |",
        "|---|---|---|",
    ]
    for t in targets:
        verdict = "not measured" if t.met is None else ("**met**" if t.met else "**not met**")
        out.append(f"| {t.text} | {verdict} | {t.figure} |")
    out.append("")
    for s in sections:
        out += [f"## {s.title}", "", *s.lines, ""]
    text = "\n".join(out)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.rstrip() + "\n"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def python_path() -> str:
    return sys.executable
