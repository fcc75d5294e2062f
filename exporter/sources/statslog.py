"""ffmpeg's own statistics line, read from the stream's stderr log: progress for ffmpegs without ``-progress``.

Without ``-progress``, ffmpeg still reports on stderr, at its default log level (or with ``-stats``), one
line rewritten in place every half second, each ended by ``\\r`` (the last one, as it exits, by ``\\n``)::

    frame= 1234 fps= 25 q=-1.0 size=   10240kB time=00:00:49.36 bitrate=1699.5kbits/s dup=0 drop=3 speed=1.00x

A host that sends each stream's stderr to a file (``ffmpeg ... 2>> /var/log/iptv/7.log``) thus has its
progress on disk already; ``progress.stats_log: /var/log/iptv/{stream}.log`` reads it, so the stream gets
fps, speed and frame counters without changing its command line. The panels' ffmpegs print no such line
(PanelX, XUI.one / XC_VM and Xtream Codes run ffmpeg with ``-loglevel warning`` and without ``-stats``,
which silences it): this is for generic hosts. A stream that also reports through ``-progress`` is exported
from that report (exporter/metrics/health.py), so its counters come from one place.

Each line becomes a ``-progress`` :class:`~exporter.sources.progress_blocks.Block` and goes through the
progress source's :class:`~exporter.sources.progress.ProgressTracker`, so a restart carries the old run's
totals as for ``-progress``. A restart is a frame count that falls (in a log appended to with ``2>>``, or
started again by ``2>``), never a new or truncated file: logrotate renames or truncates logs under a running
ffmpeg. The file is read as a progress file is (``read_new``: only what is new, from the start of a new or
truncated file, at most the newest 64 KiB per round, its mtime as the report's time).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from exporter.sources import SampleContext
from exporter.sources.progress import FileState, ProgressTracker, StreamProgress, read_new_logged
from exporter.sources.progress_blocks import Block, count_value, out_time_value, rate_value, speed_value

_END = re.compile(r"[\r\n]")
"""ffmpeg ends an update with ``\\r`` and its last report (and every other stderr line) with ``\\n``."""
_STATS_LINE = re.compile(r"\s*(?:frame|L?size)=")
"""A statistics line starts with ``frame=`` (video) or ``size=`` (audio only; ``Lsize=`` as ffmpeg exits)."""
_FIELD = re.compile(r"(\w+)=\s*(\S+)")
"""ffmpeg pads values after ``=`` (``frame=  251``, ``speed= 264x``)."""


@dataclass(frozen=True, slots=True)
class ParsedStats:
    reports: tuple[Block, ...]
    skipped: int
    """Statistics lines whose values did not parse (or cannot be real)."""
    consumed: int
    """Characters up to the end of the last ended line; an unended rest waits for more input."""


def parse_line(line: str) -> Block:
    """One statistics line as a progress block. ValueError when a value does not parse or cannot be real.

    ``dup=`` and ``drop=`` appear only once one of them is not 0 (then always, as ffmpeg's counts only
    grow within a run): absent is None, which the tracker reads as "no news", never as a fall to 0.
    """
    values: dict[str, str] = {}
    for key, value in _FIELD.findall(line):
        values.setdefault(key, value)  # the first of a repeated key (one ``q=`` per video output)

    def get(key: str) -> str | None:
        value = values.get(key)
        return None if value is None or value == "N/A" else value

    frame, fps, speed, drop, dup, time = (get(k) for k in ("frame", "fps", "speed", "drop", "dup", "time"))
    return Block(
        frame=None if frame is None else count_value(frame),
        fps=None if fps is None else rate_value(fps),
        speed=None if speed is None else speed_value(speed),
        drop_frames=None if drop is None else count_value(drop),
        dup_frames=None if dup is None else count_value(dup),
        out_time_seconds=None if time is None else out_time_value(time),
        ended="Lsize" in values,
    )


def parse_stats(text: str) -> ParsedStats:
    """Every ended statistics line in ``text``; the other lines of the log (warnings, banner) are passed over."""
    reports: list[Block] = []
    skipped = 0
    pos = 0
    for end in _END.finditer(text):
        line = text[pos:end.start()]
        pos = end.end()
        if not _STATS_LINE.match(line):
            continue
        try:
            reports.append(parse_line(line))
        except ValueError:  # OutOfRange is one too
            skipped += 1
    return ParsedStats(tuple(reports), skipped, pos)


@dataclass(frozen=True, slots=True)
class StatsLogResult:
    streams: Mapping[str, StreamProgress]
    """Streams whose log held a statistics line, ``via`` = ``stats``."""
    skipped_lines_total: int


class StatsLogSource:
    """Per stream of the inventory: the statistics lines of the log that ``pattern`` names for it."""

    name = "statslog"

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._logs: dict[str, FileState] = {}
        self._skipped = 0
        self._unreadable: set[str] = set()

    def open(self) -> None:
        """Nothing to open: each log is opened and closed within a round."""

    def close(self) -> None:
        """Nothing held between rounds."""

    def _read(self, stream: str, path: str) -> StreamProgress | None:
        state = self._logs.get(stream)
        if state is None:
            state = self._logs[stream] = FileState(ProgressTracker(stream, "stats"))
        read = read_new_logged("stats log", stream, path, state, self._unreadable)
        if read is not None:
            text, start, mtime, _new_file = read
            # A new or truncated file is no sign of a new run here, unlike a progress file: logrotate renames
            # or truncates a log under a running ffmpeg, whose frame count goes on. A count that falls is.
            parsed = parse_stats(text)
            state.offset = start + parsed.consumed
            for report in parsed.reports:
                state.tracker.feed(report, mtime)
            self._skipped += parsed.skipped
        return state.tracker.view() if state.tracker.updated_at > 0 else None

    def sample(self, ctx: SampleContext) -> StatsLogResult:
        out: dict[str, StreamProgress] = {}
        for stream in ctx.streams:
            report = self._read(stream, self.pattern.replace("{stream}", stream))
            if report is not None:
                out[stream] = report
        for stream in set(self._logs) - set(ctx.streams):
            del self._logs[stream]  # left the inventory: nothing will export it
        return StatsLogResult(streams=MappingProxyType(out), skipped_lines_total=self._skipped)
