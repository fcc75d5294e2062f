"""The reporting period: parsing ``--range`` / ``--start`` / ``--end`` and choosing the step.

The report looks at ``n`` consecutive steps ``(start + (i-1)*step, start + i*step]`` for ``i = 1..n``;
Prometheus evaluates each figure at the end of its step.  Start and end are aligned to whole steps so
that two reports over the same day see the same samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from exporter.config.durations import format_duration, parse_duration
from exporter.report.errors import ReportError

TARGET_POINTS = 1000
"""Roughly how many steps an automatically chosen step gives."""

NICE_STEPS = (15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
"""Steps the automatic choice rounds up to (seconds)."""


@dataclass(frozen=True)
class Period:
    """``steps`` windows of ``step`` seconds; the first ends at ``start + step``, the last at ``end``."""

    start: float
    end: float
    step: float

    @property
    def steps(self) -> int:
        return round((self.end - self.start) / self.step)

    @property
    def duration(self) -> float:
        return self.end - self.start

    def times(self) -> list[float]:
        """Evaluation times: the end of each step."""
        return [self.start + i * self.step for i in range(1, self.steps + 1)]


def parse_time(text: str, now: float) -> float:
    """Unix seconds from RFC 3339 (``2024-05-01T00:00:00Z``), a Unix timestamp, or ``now``."""
    if text == "now":
        return now
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"invalid time {text!r}: use RFC 3339 (2024-05-01T00:00:00Z), Unix seconds or 'now'"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def choose_step(duration: float, min_step: float) -> float:
    """The smallest nice step giving at most about ``TARGET_POINTS`` steps, and at least ``min_step``."""
    wanted = max(duration / TARGET_POINTS, min_step)
    for nice in NICE_STEPS:
        if nice >= wanted:
            return float(nice)
    return float(math.ceil(wanted / 86400) * 86400)


def make_period(
    *,
    now: float,
    range_: float | None,
    start: float | None,
    end: float | None,
    step: float | None,
    min_step: float,
) -> Period:
    """Resolve the command-line choices into an aligned :class:`Period`.

    With ``--range`` the period ends at ``--end`` (default now) rounded down to a whole step; with
    ``--start`` / ``--end`` the start is rounded down and the end up to whole steps.
    """
    if range_ is not None and start is not None:
        raise ReportError("give either --range or --start/--end, not both")
    if start is not None:
        stop = now if end is None else end
        if stop <= start:
            raise ReportError(f"empty range: end {iso(stop)} is not after start {iso(start)}")
        duration = stop - start
    else:
        duration = 86400.0 if range_ is None else range_
        stop = now if end is None else end
    chosen = step if step is not None else choose_step(duration, min_step)
    if start is not None:
        first = math.floor(start / chosen) * chosen
        last = math.ceil(stop / chosen) * chosen
    else:
        last = math.floor(stop / chosen) * chosen
        first = last - math.ceil(duration / chosen) * chosen
    if last - first < chosen:
        raise ReportError(f"empty range: {format_duration(duration)} is shorter than one step")
    return Period(start=first, end=last, step=chosen)


def duration_arg(text: str) -> float:
    """argparse ``type=`` for durations."""
    return parse_duration(text)


def iso(ts: float) -> str:
    """RFC 3339 in UTC with a ``Z``, whole seconds when the time is whole."""
    moment = datetime.fromtimestamp(ts, UTC)
    if moment.microsecond:
        return moment.isoformat().replace("+00:00", "Z")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
