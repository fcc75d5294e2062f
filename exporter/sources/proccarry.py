"""Per-stream bookkeeping of the processes source: counters that stay monotonic while processes come and go.

A stream's CPU time and input bytes are those of its live processes plus what its exited ones had used
(carried); its starts after the first are restarts and every exit is counted once, whether the kernel's
process events or a vanished pid between two rounds told us. Pure apart from the :class:`Carry` it folds
into, and tested through :meth:`ProcessesSource.update <exporter.sources.processes.ProcessesSource.update>`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from exporter.sources.ffmpeg_argv import args_of
from exporter.sources.processes_result import StreamProcesses
from exporter.sources.procevents import ProcEvent
from exporter.sources.procscan import ProcInfo

EXIT_MEMORY = 60.0
"""Seconds an exit is remembered, so a late exit event for a pid a round already saw go is not counted again."""


@dataclass
class Carry:
    """Per-stream state that keeps counters monotonic while processes come and go."""

    pids: dict[int, tuple[float, float]] = field(default_factory=dict)
    """pid -> last seen (cpu seconds, file read bytes) of processes alive at the last round."""
    started: set[int] = field(default_factory=set)
    """pids whose start is counted (by an exec event or a round that saw them)."""
    recent_exits: dict[int, float] = field(default_factory=dict)
    """pid -> when its exit was counted: a late exit event for it is not counted again."""
    closed_cpu: float = 0.0
    closed_read: float = 0.0
    restarts: int = 0
    exits: int = 0
    ever_seen: bool = False
    network: bool = False
    """A process of the stream read a network input: its ingest is socket bytes, unknown without them."""
    last_seen: float = 0.0
    """When a process of the stream last ran (for ``streams.forget_after``)."""
    uid: int | None = None
    hints: tuple[str | None, str | None] = (None, None)
    """Playlist and progress target of the last process seen: still watched while the stream is down."""
    hints_of: tuple[str, ...] = ()
    """The command line ``hints`` were read from (the same one, round after round, while it runs)."""


def output_hints(cmdline: Sequence[str]) -> tuple[str | None, str | None]:
    """The HLS playlist a process writes and its ``-progress`` target, read off its outputs."""
    args = args_of(tuple(cmdline))
    return args.playlist, args.progress


def fold_events(carry: Carry, events: Iterable[ProcEvent], now: float) -> None:
    """Count the starts and exits the kernel reported for the stream since the last round."""
    for ev in events:
        if ev.kind == "exec":
            if ev.pid in carry.pids or ev.pid in carry.started:
                continue
            carry.started.add(ev.pid)
            if carry.ever_seen:
                carry.restarts += 1
            carry.ever_seen = True
            carry.last_seen = now
        elif ev.pid not in carry.recent_exits:
            cpu, read = carry.pids.pop(ev.pid, (0.0, 0.0))
            carry.closed_cpu += cpu
            carry.closed_read += read
            carry.exits += 1
            carry.recent_exits[ev.pid] = now
            carry.started.discard(ev.pid)


def fold_scan(carry: Carry, procs: Sequence[ProcInfo], now: float) -> None:
    """Fold this round's processes of the stream in: pids gone since the last round are exits (unless an
    event counted them), new ones after the first are restarts (unless an event counted them)."""
    now_pids = {p.pid for p in procs}
    for pid, (cpu, read) in list(carry.pids.items()):
        if pid not in now_pids:  # gone between two rounds, and no exit event said so
            carry.closed_cpu += cpu
            carry.closed_read += read
            carry.exits += 1
            carry.recent_exits[pid] = now
            del carry.pids[pid]
    for p in procs:
        if p.pid not in carry.pids and p.pid not in carry.started and carry.ever_seen:
            carry.restarts += 1
        network = args_of(p.cmdline).network_input
        carry.pids[p.pid] = (p.cpu_seconds, 0.0 if network else float(p.read_bytes or 0))
    carry.started -= carry.recent_exits.keys()
    carry.recent_exits = {pid: at for pid, at in carry.recent_exits.items() if at > now - EXIT_MEMORY}
    if procs:
        carry.ever_seen, carry.last_seen = True, now
        carry.uid = procs[0].uid


def stream_view(stream: str, carry: Carry, procs: Sequence[ProcInfo], ingest: Mapping[str, int] | None,
                allowed: frozenset[int]) -> StreamProcesses:
    """The stream's result this round: live processes summed, plus what exited ones carried.

    ``ingest`` is the socket bytes per stream (None where they cannot be read); ``allowed`` the owners the
    discovery rules accept."""
    oldest = min(procs, key=lambda p: p.create_time) if procs else None
    if oldest is not None and oldest.cmdline != carry.hints_of:
        carry.hints, carry.hints_of = output_hints(oldest.cmdline), oldest.cmdline
    playlist, progress = carry.hints
    file_read = sum(float(p.read_bytes or 0) for p in procs if not args_of(p.cmdline).network_input)
    carry.network = carry.network or any(args_of(p.cmdline).network_input for p in procs)
    read: float | None = carry.closed_read + file_read + (ingest or {}).get(stream, 0)
    if carry.network and ingest is None:
        read = None  # a network input, and no socket counters here (no sock_diag, or a captured /proc)
    return StreamProcesses(
        stream=stream,
        pids=tuple(sorted(p.pid for p in procs)),
        start_time=oldest.create_time if oldest else None,
        cpu_seconds_total=carry.closed_cpu + sum(p.cpu_seconds for p in procs),
        resident_memory_bytes=sum(p.rss_bytes for p in procs),
        read_bytes_total=read,
        open_fds=sum(p.open_fds or 0 for p in procs),
        threads=sum(p.threads for p in procs),
        restarts_total=carry.restarts,
        exits_total=carry.exits,
        playlist=playlist,
        progress=progress,
        owner_uid=carry.uid,
        owner_allowed=carry.uid is not None and carry.uid in allowed,
    )
