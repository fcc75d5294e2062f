"""ffmpeg ``-progress`` reports: frames, fps, speed and drops of each stream, from a file or an HTTP push.

ffmpeg writes a block of ``key=value`` lines every ``-stats_period`` (0.5 s by default), each block ending
in ``progress=continue`` (or ``progress=end`` as it exits). With ``-progress FILE`` it truncates the file
at start and appends blocks; with ``-progress http://...`` it sends one chunked POST for its whole life,
which :mod:`exporter.web.progress_push` receives into a :class:`ProgressStore`.

Parsing is pure, in :mod:`exporter.sources.progress_blocks`. ffmpeg's counters start again at 0 when it
restarts; :class:`ProgressTracker` carries the old run's totals, so the exported counters stay monotonic
per stream.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from exporter.sources import SampleContext
from exporter.sources.progress_blocks import Block, parse_blocks
from exporter.sources.tail import open_log

log = logging.getLogger(__name__)

MAX_TAIL = 64 << 10
"""Read at most this much of a progress file per round: only the latest blocks matter, and a file of a
long-running stream grows by about 500 bytes a second for ever."""


@dataclass(frozen=True, slots=True)
class StreamProgress:
    """One stream's latest report, with counters made monotonic across ffmpeg restarts."""

    stream: str
    via: str
    """``file`` or ``push``."""
    updated_at: float
    """When the latest block arrived (push) or was written (file's mtime), Unix seconds."""
    fps: float | None
    speed: float | None
    out_time_seconds: float | None
    frames_total: int
    dropped_frames_total: int
    duplicated_frames_total: int
    runs: int
    """ffmpeg runs seen: restarts found by counters that fell, a truncated file or a new push."""
    ended: bool


@dataclass
class ProgressTracker:
    """Folds blocks of one stream into monotonic totals; the previous run's last values are carried."""

    stream: str
    via: str
    updated_at: float = 0.0
    fps: float | None = None
    speed: float | None = None
    out_time_seconds: float | None = None
    ended: bool = False
    runs: int = 0
    _base: list[int] = field(default_factory=lambda: [0, 0, 0])
    _last: list[int] = field(default_factory=lambda: [0, 0, 0])

    def new_run(self) -> None:
        """The next block comes from a new ffmpeg process: keep what the old one counted."""
        self._base = [b + last for b, last in zip(self._base, self._last, strict=True)]
        self._last = [0, 0, 0]
        self.runs += 1

    def feed(self, block: Block, at: float) -> None:
        now = [block.frame, block.drop_frames, block.dup_frames]
        if any(v is not None and v < last for v, last in zip(now, self._last, strict=True)):
            self.new_run()  # a counter fell: ffmpeg restarted and we missed its first report
        elif self.runs == 0:
            self.runs = 1
        self._last = [last if v is None else v for v, last in zip(now, self._last, strict=True)]
        # N/A (the first block's speed, say) carries no news: keep the last known value.
        self.fps = block.fps if block.fps is not None else self.fps
        self.speed = block.speed if block.speed is not None else self.speed
        if block.out_time_seconds is not None:
            self.out_time_seconds = block.out_time_seconds
        self.ended = block.ended
        self.updated_at = max(self.updated_at, at)

    def view(self) -> StreamProgress:
        totals = [b + last for b, last in zip(self._base, self._last, strict=True)]
        return StreamProgress(
            stream=self.stream,
            via=self.via,
            updated_at=self.updated_at,
            # ffmpeg said it stopped: its output rate is 0, whatever its last running average was.
            fps=0.0 if self.ended else self.fps,
            speed=0.0 if self.ended else self.speed,
            out_time_seconds=self.out_time_seconds,
            frames_total=totals[0],
            dropped_frames_total=totals[1],
            duplicated_frames_total=totals[2],
            runs=self.runs,
            ended=self.ended,
        )


class ProgressStore:
    """Pushed progress, per stream: written by the HTTP receiver (event loop), read by the sampler (thread)."""

    def __init__(self, max_streams: int = 10000) -> None:
        self.max_streams = max_streams
        self._lock = threading.Lock()
        self._streams: dict[str, ProgressTracker] = {}
        self._skipped = 0
        self._rejected: dict[str, int] = {}

    def open(self, stream: str) -> bool:
        """A new push began (a new ffmpeg process); False when the store is full of other streams."""
        with self._lock:
            tracker = self._streams.get(stream)
            if tracker is None:
                if len(self._streams) >= self.max_streams:
                    return False
                self._streams[stream] = ProgressTracker(stream, "push")
            else:
                tracker.new_run()
            return True

    def add(self, stream: str, blocks: Iterable[Block], skipped: int, at: float) -> None:
        with self._lock:
            tracker = self._streams.get(stream)
            if tracker is None:
                return  # open() refused it
            for block in blocks:
                tracker.feed(block, at)
            self._skipped += skipped

    def reject(self, reason: str) -> None:
        with self._lock:
            self._rejected[reason] = self._rejected.get(reason, 0) + 1

    def read(self) -> tuple[dict[str, StreamProgress], int, dict[str, int]]:
        """Streams that reported at least one block, lines skipped so far, refused pushes by reason."""
        with self._lock:
            views = {s: t.view() for s, t in self._streams.items() if t.updated_at > 0}
            return views, self._skipped, dict(self._rejected)


@dataclass(frozen=True, slots=True)
class ProgressResult:
    streams: Mapping[str, StreamProgress]
    skipped_lines_total: Mapping[str, int]
    """By ``via`` (``file``, ``push``)."""
    push_rejected_total: Mapping[str, int]
    """Pushes refused, by reason (``forbidden``, ``bad_stream``, ``full``)."""


def is_url(target: str) -> bool:
    return "://" in target


@dataclass
class FileState:
    """Where we are in one stream's progress file (or stats log), and what it counted so far."""

    tracker: ProgressTracker
    inode: tuple[int, int] | None = None
    offset: int = 0


def read_new_logged(what: str, stream: str, path: str, state: FileState,
                    unreadable: set[str]) -> tuple[str, int, float, bool] | None:
    """:func:`read_new` for ``state``'s file: (text, offset of text, mtime, new_run), its inode noted in
    ``state``; None when it cannot be read, logged once per path (INFO when missing), not every round."""
    try:
        text, inode, start, mtime, new_run = read_new(path, state.inode, state.offset)
    except OSError as exc:
        if path not in unreadable:
            level = logging.INFO if isinstance(exc, FileNotFoundError) else logging.WARNING
            log.log(level, "%s unreadable stream=%s path=%s error=%s", what, stream, path, exc.strerror)
            unreadable.add(path)
        return None
    unreadable.discard(path)
    state.inode = inode
    return text, start, mtime, new_run


def read_new(path: str, inode: tuple[int, int] | None, offset: int) -> tuple[str, tuple[int, int], int, float, bool]:
    """New text of a progress file since ``offset``: (text, inode, offset of text, mtime, new_run).

    A new inode or a file shorter than ``offset`` is a new ffmpeg run (ffmpeg truncates at start). Raises
    OSError (FileNotFoundError when missing). Reads at most :data:`MAX_TAIL`, the newest part. The text is
    decoded as latin-1 so that characters and bytes count alike (progress reports are ASCII).
    """
    with open_log(Path(path)) as fh:
        st = os.fstat(fh.fileno())
        ident = (st.st_dev, st.st_ino)
        new_run = inode is not None and (ident != inode or st.st_size < offset)
        start = 0 if new_run or inode is None else offset
        landed_mid_line = False
        if st.st_size - start > MAX_TAIL:
            start = st.st_size - MAX_TAIL
            landed_mid_line = True
        fh.seek(start)
        data = fh.read(st.st_size - start)
    if landed_mid_line:
        cut = data.find(b"\n") + 1  # drop the fragment rather than count it as garbage
        data, start = data[cut:], start + cut
    return data.decode("latin-1"), ident, start, st.st_mtime, new_run


class ProgressSource:
    """Per stream of the inventory: its progress file when it names a path, else what it pushed to us."""

    name = "progress"

    def __init__(self, store: ProgressStore | None = None) -> None:
        self.store = store if store is not None else ProgressStore()
        self._files: dict[str, FileState] = {}
        self._file_skipped = 0
        self._unreadable: set[str] = set()

    def open(self) -> None:
        """Nothing to open: each progress file is opened and closed within a round."""

    def close(self) -> None:
        """Nothing held between rounds."""

    def _read_file(self, stream: str, path: str) -> StreamProgress | None:
        state = self._files.get(stream)
        if state is None:
            state = self._files[stream] = FileState(ProgressTracker(stream, "file"))
        read = read_new_logged("progress file", stream, path, state, self._unreadable)
        if read is None:
            return state.tracker.view() if state.tracker.updated_at > 0 else None
        text, start, mtime, new_run = read
        if new_run:
            state.tracker.new_run()
        parsed = parse_blocks(text)
        state.offset = start + parsed.consumed
        for block in parsed.blocks:
            state.tracker.feed(block, mtime)
        self._file_skipped += parsed.skipped
        return state.tracker.view() if state.tracker.updated_at > 0 else None

    def sample(self, ctx: SampleContext) -> ProgressResult:
        pushed, push_skipped, rejected = self.store.read()
        out: dict[str, StreamProgress] = {}
        for stream, ref in ctx.streams.items():
            # One form per stream, so its counters come from one tracker and stay monotonic.
            from_file = self._read_file(stream, ref.progress) if ref.progress and not is_url(ref.progress) else None
            chosen = from_file if from_file is not None else pushed.get(stream)
            if chosen is not None:
                out[stream] = chosen
        for stream in set(self._files) - set(ctx.streams):
            del self._files[stream]  # left the inventory: nothing will export it
        return ProgressResult(
            streams=MappingProxyType(out),
            skipped_lines_total=MappingProxyType({"file": self._file_skipped, "push": push_skipped}),
            push_rejected_total=MappingProxyType(rejected),
        )
