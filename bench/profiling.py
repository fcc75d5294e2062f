"""Where the time goes when a target is missed: pyinstrument if installed, else cProfile (stdlib)."""

from __future__ import annotations

import cProfile
import io
import pstats
from collections.abc import Callable
from typing import Any


def profile(fn: Callable[[], Any], repeat: int = 3, top: int = 12) -> tuple[str, list[str]]:
    """Run ``fn`` ``repeat`` times under a profiler; return the profiler's name and the top lines."""
    try:
        from pyinstrument import Profiler  # type: ignore[import-not-found]
    except ImportError:
        return "cProfile", _cprofile(fn, repeat, top)
    profiler = Profiler(interval=0.0005)
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
