"""Where the time goes when a target is missed: pyinstrument if installed, else cProfile (stdlib)."""

from __future__ import annotations

import cProfile
import io
import pstats
import re
from collections.abc import Callable
from typing import Any


def profile(fn: Callable[[], Any], repeat: int = 3, top: int = 12) -> tuple[str, list[str]]:
    """Run ``fn`` ``repeat`` times under a profiler; return the profiler's name and the top lines."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        return "cProfile", _cprofile(fn, repeat, top)
    try:
        profiler = Profiler(interval=0.0005, use_timing_thread=True)  # cheap clock where the precise one is slow
    except TypeError:
        profiler = Profiler(interval=0.0005)  # pyinstrument before 4.6
    profiler.start()
    for _ in range(repeat):
        fn()
    profiler.stop()
    text = profiler.output_text(unicode=True, color=False, show_all=False)
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    first = next((i for i, ln in enumerate(lines) if ln.startswith("Profile at")), -1)
    return "pyinstrument", lines[first + 1:][: top * 3]


def _cprofile(fn: Callable[[], Any], repeat: int, top: int) -> list[str]:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(repeat):
        fn()
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    lines = buf.getvalue().splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    return [ln.rstrip() for ln in lines[start:] if ln.strip()]


def as_markdown(title: str, tool: str, lines: list[str]) -> list[str]:
    return [f"Profile of {title} ({tool}, heaviest first):", "", "```", *lines, "```", ""]


def spy(pid: int, seconds: float, out: str) -> bool:
    """Sample another Python process with py-spy for ``seconds``, in the background, into ``out``.

    Only the thread holding the GIL is sampled (``--gil``): the exporter's idle worker threads would
    otherwise fill the profile with ``Condition.wait``.

    Call :func:`spy_summary` on ``out`` once the span is over. False when py-spy is not installed.
    """
    import subprocess

    exe = py_spy()
    if exe is None:
        return False
    subprocess.Popen([exe, "record", "-p", str(pid), "-d", str(max(1, round(seconds))), "-r", "200", "--gil",
                      "-f", "raw", "-o", out], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return True


def py_spy() -> str | None:
    """py-spy from this venv (``pip install py-spy``, the ``bench`` extra) or from PATH."""
    import os
    import shutil
    import sys

    beside = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return beside if os.access(beside, os.X_OK) else shutil.which("py-spy")


_LINE = re.compile(r":\d+\)$")
SKIP_FRAMES = ("exporter/__main__.py", "exporter/cli.py", "<module>")
"""Frames every sample passes through: they say nothing about where the time goes."""


def spy_summary(path: str, top: int = 15, prefix: str = "") -> list[str]:
    """Collapsed stacks from ``py-spy record -f raw`` as two short tables: inclusive and own samples."""
    from collections import Counter

    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    try:
        with open(path) as fh:
            for line in fh:
                stack, _, count = line.rstrip().rpartition(" ")
                if not stack or not count.isdigit():
                    continue
                n = int(count)
                total += n
                # "func (path:line)": the same function at several lines is one entry
                frames = [_LINE.sub(")", f) for f in stack.split(";")]
                for frame in set(frames):
                    if prefix in frame and not any(skip in frame for skip in SKIP_FRAMES):
                        inclusive[frame] += n
                own[frames[-1]] += n
    except FileNotFoundError:
        return ["(py-spy wrote nothing: ptrace may be denied here)"]
    if not total:
        return ["(no samples)"]
    lines = [f"{total} samples; inclusive (frames matching '{prefix}'):" if prefix else f"{total} samples; inclusive:"]
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in inclusive.most_common(top)]
    lines.append("own time (leaf frames):")
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in own.most_common(top)]
    return lines
