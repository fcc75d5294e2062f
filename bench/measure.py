"""Measuring: CPU time of this process, of a child, of another process's threads; medians; load."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Timing:
    """One measured call: CPU seconds (user + system) and wall seconds."""

    cpu: float
    wall: float


@dataclass(frozen=True)
class Series:
    """Several timings of the same thing; figures are medians."""

    runs: tuple[Timing, ...]

    @property
    def cpu(self) -> float:
        return statistics.median(t.cpu for t in self.runs)

    @property
    def wall(self) -> float:
        return statistics.median(t.wall for t in self.runs)

    @property
    def spread(self) -> str:
        """Min-max of the CPU figures, to show how noisy a median is."""
        cpus = [t.cpu for t in self.runs]
        return f"{ms(min(cpus))}-{ms(max(cpus))}"


def ms(seconds: float) -> str:
    if seconds >= 10:
        return f"{seconds:.1f} s"
    if seconds >= 0.1:
        return f"{seconds * 1000:.0f} ms"
    if seconds >= 0.001:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}×" if theirs > 0 else "n/a"


def in_process(fn: Callable[[], Any]) -> tuple[Timing, Any]:
    """Time ``fn`` in this process: CPU of the whole process (keep other threads idle while measuring)."""
    c0, w0 = time.process_time(), time.perf_counter()
    value = fn()
    return Timing(time.process_time() - c0, time.perf_counter() - w0), value


def repeat(fn: Callable[[], Any], runs: int, warmup: int = 1) -> tuple[Series, Any]:
    value = None
    for _ in range(warmup):
        value = fn()
    timings = []
    for _ in range(runs):
        t, value = in_process(fn)
        timings.append(t)
    return Series(tuple(timings)), value


@dataclass(frozen=True)
class ChildRun:
    timing: Timing
    returncode: int
    stdout: Path
    max_rss_kib: int


def run_child(argv: Sequence[str], stdout: Path, *, stdin: Path | None = None,
              env: dict[str, str] | None = None) -> ChildRun:
    """Run a program to completion; its CPU time comes from ``wait4`` (its own rusage, children included)."""
    w0 = time.perf_counter()
    with open(stdout, "wb") as out, open(stdin or os.devnull, "rb") as inp:
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, stdin=inp, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - w0
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
    return ChildRun(Timing(usage.ru_utime + usage.ru_stime, wall), proc.returncode, stdout, usage.ru_maxrss)


def task_cpu_seconds(pid: int) -> float:
    """CPU time of every thread of a running process, in nanosecond resolution (schedstat), as seconds.

    /proc/<pid>/stat counts in clock ticks (10 ms), too coarse for one scrape; schedstat's first field is
    the time each task has spent on a CPU. Threads that exited are missed: fine for a long-lived server.
    """
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as fh:
                total += int(fh.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended between the listing and the read
    return total / 1e9


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a running process (all its threads, those that ended too) and of its reaped
    children, from /proc/<pid>/stat: clock ticks, so fine for a window of seconds, not for one call."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])  # stat fields 14-17, after pid and comm
    return (utime + stime + cutime + cstime) / TICK


def process_count() -> int:
    """Processes on the machine now (the processes source reads every one of them, not only the streams)."""
    return sum(1 for name in os.listdir("/proc") if name.isdigit())


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


class BusyMeter:
    """Share of the machine's CPU time that was busy over a span (from /proc/stat), for the load notes."""

    def __init__(self) -> None:
        self._start = self._read()

    @staticmethod
    def _read() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields), idle

    def busy(self) -> float:
        total, idle = self._read()
        dt, di = total - self._start[0], idle - self._start[1]
        return 0.0 if dt <= 0 else 1 - di / dt


def settle(quiet: float = 0.25, limit: float = 20.0) -> float:
    """Wait until the machine is quiet (less than ``quiet`` of its CPU busy over a second), at most ``limit``
    seconds; returns the last second's busy share.

    A benchmark's children (stand-ins, connection farms, exporters) take a moment to exit, and what runs next
    should not pay for them: on 2 cores that moved the webhook's p99 by a fifth.
    """
    deadline = time.monotonic() + limit
    while True:
        meter = BusyMeter()
        time.sleep(1.0)
        busy = meter.busy()
        if busy < quiet or time.monotonic() >= deadline:
            return busy


def raise_nofile(wanted: int) -> int:
    """Raise RLIMIT_NOFILE towards ``wanted`` (root may raise the hard limit); return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(hard, wanted)))
    except (ValueError, PermissionError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


Measured = Callable[[], tuple[Timing, Any]]
"""One measurement: returns its timing and a value (what it saw)."""


def child_measure(argv: Sequence[str], stdout: Path) -> Measured:
    def measure() -> tuple[Timing, Any]:
        r = run_child(argv, stdout)
        if r.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {stdout.read_text()[:500]}")
        return r.timing, r

    return measure


def interleaved(measures: dict[str, Measured], runs: int, warmup: int = 1) -> dict[str, tuple[Series, Any]]:
    """Run each measurement once per round, in turn, for ``runs`` rounds after ``warmup`` rounds.

    Taking turns puts every contender under the same load drift: on a shared machine the load changes
    from one second to the next, and a ratio of two figures taken minutes apart would measure that too.
    """
    for _ in range(warmup):
        for fn in measures.values():
            fn()
    timings: dict[str, list[Timing]] = {k: [] for k in measures}
    last: dict[str, Any] = {}
    for _ in range(runs):
        for name, fn in measures.items():
            t, last[name] = fn()
            timings[name].append(t)
    return {k: (Series(tuple(v)), last[k]) for k, v in timings.items()}


def timed(fn: Callable[..., Any], *args: Any) -> Measured:
    """``fn(*args)`` as an in-process measurement."""
    def measure() -> tuple[Timing, Any]:
        return in_process(lambda: fn(*args))

    return measure
