"""What the processes source reports: each stream's processes, summed, with counters kept monotonic.

Kept apart from the source (:mod:`exporter.sources.processes`) so the inventory, the snapshot and every
consumer can import the result without importing the reading of /proc.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class StreamProcesses:
    """One stream's processes, summed (a transcode ladder is several processes for one stream id)."""

    stream: str
    pids: tuple[int, ...]
    """Empty while the stream is down: its counters are still exported, so they never reset."""
    start_time: float | None
    """The oldest process's start: the stream has been up since then."""
    cpu_seconds_total: float
    resident_memory_bytes: int
    read_bytes_total: float | None
    """None: a network input where socket counters cannot be read (the series is left out)."""
    open_fds: int
    threads: int
    restarts_total: int
    exits_total: int
    playlist: str | None
    progress: str | None
    owner_uid: int | None = None
    """Owner of the stream's processes (as last seen, or remembered)."""
    owner_allowed: bool = False
    """Whether the discovery rules allow that owner (a declared stream needs no such check)."""

    @property
    def up(self) -> bool:
        return bool(self.pids)


@dataclass(frozen=True, slots=True)
class ProcessesResult:
    streams: Mapping[str, StreamProcesses]
    scanned: int
    """Processes looked at this round."""
    refused_total: Mapping[str, int] = field(default_factory=dict)
    """Processes refused as streams since start, by reason: ``owner`` (not a user the rules allow),
    ``cap`` (``streams.max_discovered`` reached)."""
    forgotten_total: int = 0
    """Discovered streams dropped after ``streams.forget_after`` without a process."""
    events: bool = False
    """Whether the kernel's process events are counting starts and exits (else sampling only)."""
