"""Stream processes (ffmpeg) from /proc: which streams run, and what they cost.

Reading is kept apart from matching: :class:`ProcScan` does the I/O (through :class:`ProcFs`, whose
parsers are pure), :func:`stream_of` and :func:`match_streams` are pure and are tested with literal command
lines. Only a process whose name and command line match a rule has its CPU, memory, I/O and fds read.
Processes that vanish mid-read, zombies and permission errors are part of normal life on a busy host and
never fail a sample. Without a /proc (not Linux) psutil reads the same facts (:func:`read_psutil`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import psutil

from exporter.config import Config
from exporter.linear_re import LinearPattern, compile_linear
from exporter.sources import SampleContext
from exporter.sources.procfs import ProcFs, full_name, parse_cmdline

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProcInfo:
    pid: int
    name: str
    cmdline: tuple[str, ...]
    create_time: float
    cpu_seconds: float
    rss_bytes: int
    read_bytes: int | None
    """``read_chars`` from /proc/<pid>/io: every byte read, sockets included (the ingest). None if denied."""
    open_fds: int | None
    threads: int


@dataclass(frozen=True, slots=True)
class Rule:
    process: str | None
    pattern: LinearPattern[str]
    """RE2: command lines are written by any local user, the pattern by the config (exporter.linear_re)."""
    stream: str | None = None
    """Set for a static stream's own ``cmdline``: every match belongs to that stream."""


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
    read_bytes_total: float
    open_fds: int
    threads: int
    restarts_total: int
    exits_total: int
    playlist: str | None
    progress: str | None

    @property
    def up(self) -> bool:
        return bool(self.pids)


@dataclass(frozen=True, slots=True)
class ProcessesResult:
    streams: Mapping[str, StreamProcesses]
    scanned: int
    """Processes looked at this round."""


def rules_from_config(config: Config) -> list[Rule]:
    """Static streams' own patterns first (they pin an id), then the discovery rules in order."""
    rules = [
        Rule(None, compile_linear(s.cmdline), stream=s.id) for s in config.streams.static if s.cmdline is not None
    ]
    for rule in config.streams.discover:
        name, pattern = rule.resolved()
        rules.append(Rule(name, pattern))
    return rules


def _process_name_matches(wanted: str | None, name: str, cmdline: Sequence[str]) -> bool:
    if wanted is None:
        return True
    if name == wanted:
        return True
    # comm is cut at 15 characters and a panel may ship its own binary: compare argv[0]'s base name too.
    return bool(cmdline) and cmdline[0].rsplit("/", 1)[-1] == wanted


def stream_for(name: str, cmdline: Sequence[str], rules: Sequence[Rule]) -> str | None:
    """The stream id a process of this name and command line serves, from the first rule that matches."""
    if not cmdline:
        return None  # kernel threads and zombies have no command line
    joined = " ".join(cmdline)
    for rule in rules:
        if not _process_name_matches(rule.process, name, cmdline):
            continue
        found = rule.pattern.search(joined)
        if found:
            return rule.stream or found.group("stream")
    return None


def stream_of(proc: ProcInfo, rules: Sequence[Rule]) -> str | None:
    """The stream id this process serves, from the first rule that matches, or None."""
    return stream_for(proc.name, proc.cmdline, rules)


def output_hints(cmdline: Sequence[str]) -> tuple[str | None, str | None]:
    """The HLS playlist a process writes and its ``-progress`` target, read off its arguments."""
    playlist = next((a for a in reversed(cmdline) if a.endswith(".m3u8") and a.startswith("/")), None)
    progress = None
    for flag, value in zip(cmdline, cmdline[1:], strict=False):
        if flag in {"-segment_list", "-hls_playlist"} and playlist is None:
            playlist = value
        if flag == "-progress":
            progress = value
    return playlist, progress


def match_streams(procs: Iterable[ProcInfo], rules: Sequence[Rule]) -> dict[str, list[ProcInfo]]:
    out: dict[str, list[ProcInfo]] = {}
    for proc in procs:
        stream = stream_of(proc, rules)
        if stream is not None:
            out.setdefault(stream, []).append(proc)
    return out


class ProcScan:
    """One walk over /proc per round (:meth:`scan`): the processes of each stream, with what they cost.

    Every process costs a read of its command line, and of its ``comm`` unless argv[0] names a wanted
    program already; only those whose name could match have their ``stat`` read, and only those that
    serve a stream their memory, I/O and fds. Parsing a command line and matching it against the rules
    are remembered from one round to the next by their input (the command line's bytes, and the name), so
    a stream process that keeps running costs no regex search.
    """

    def __init__(self, fs: ProcFs, names: set[str | None], stream: Callable[[str, tuple[str, ...]], str | None]
                 ) -> None:
        self.fs = fs
        self._names = names
        self._stream = stream
        self._parsed: dict[bytes, tuple[tuple[str, ...], bool]] = {}
        """raw command line -> (arguments, argv[0] names a wanted program)"""
        self._matched: dict[tuple[str, bytes], str | None] = {}

    def _parse(self, raw: bytes) -> tuple[tuple[str, ...], bool]:
        cmdline = parse_cmdline(raw)
        wanted = None in self._names or (bool(cmdline) and cmdline[0].rsplit("/", 1)[-1] in self._names)
        return cmdline, wanted

    def scan(self) -> tuple[dict[str, list[ProcInfo]], int]:
        """Processes by stream, and how many processes were looked at."""
        fs, names = self.fs, self._names
        boot = fs.boot_time()
        tick, page = fs.clock_ticks, fs.page_size
        parsed, matched = self._parsed, self._matched
        self._parsed, self._matched = {}, {}  # only what this round saw is kept for the next
        pids = fs.pids()
        out: dict[str, list[ProcInfo]] = {}
        for pid in pids:
            try:
                raw = fs.read(pid, "cmdline")
                if not raw:
                    continue  # kernel thread or zombie
                known = parsed.get(raw) or self._parse(raw)
                self._parsed[raw] = known
                cmdline, wanted = known
                if not wanted:
                    comm = fs.comm(pid)
                    if comm not in names and full_name(comm, cmdline) not in names:
                        continue
                st = fs.stat(pid)
                if st.state == "Z":
                    continue  # exited, not yet reaped: nothing of it runs
                name = full_name(st.comm, cmdline)
                key = (name, raw)
                sid = matched[key] if key in matched else self._stream(name, cmdline)
                self._matched[key] = sid
                if sid is None:
                    continue
                rss = fs.resident_pages(pid)
                try:
                    read_bytes = fs.rchar(pid)
                except PermissionError:
                    read_bytes = None  # another user's process: /proc/<pid>/io needs ptrace rights
                try:
                    fds: int | None = fs.open_fds(pid)
                except PermissionError:
                    fds = None
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue  # gone, or not ours to read (hidepid): the next round sees the truth
            out.setdefault(sid, []).append(ProcInfo(
                pid=pid, name=name, cmdline=cmdline, create_time=boot + st.start / tick,
                cpu_seconds=st.utime / tick + st.stime / tick, rss_bytes=rss * page, read_bytes=read_bytes,
                open_fds=fds, threads=st.threads,
            ))
        return out, len(pids)


def read_psutil(names: set[str | None]) -> list[ProcInfo]:
    """What :class:`ProcScan` reads, through psutil where there is no /proc: every process whose name could
    match (matched to streams afterwards by :func:`match_streams`)."""
    any_name = None in names
    procs: list[ProcInfo] = []
    for p in psutil.process_iter(["name", "cmdline"]):
        try:
            info = p.info
            cmdline = info.get("cmdline") or []
            name = info.get("name") or ""
            if not any_name and name not in names and (not cmdline or cmdline[0].rsplit("/", 1)[-1] not in names):
                continue
            with p.oneshot():
                times = p.cpu_times()
                try:
                    read_bytes: int | None = p.io_counters().read_chars
                except (psutil.AccessDenied, AttributeError):
                    read_bytes = None
                try:
                    fds: int | None = p.num_fds()
                except psutil.AccessDenied:
                    fds = None
                procs.append(
                    ProcInfo(
                        pid=p.pid,
                        name=name,
                        cmdline=tuple(cmdline),
                        create_time=p.create_time(),
                        cpu_seconds=times.user + times.system,
                        rss_bytes=p.memory_info().rss,
                        read_bytes=read_bytes,
                        open_fds=fds,
                        threads=p.num_threads(),
                    )
                )
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue  # gone or not ours to read: the next round sees the truth
    return procs


@dataclass
class _Carry:
    """Per-stream state that keeps counters monotonic while processes come and go."""

    pids: dict[int, tuple[float, float]] = field(default_factory=dict)
    """pid -> last seen (cpu seconds, read bytes) of processes alive at the last round."""
    closed_cpu: float = 0.0
    closed_read: float = 0.0
    restarts: int = 0
    exits: int = 0
    ever_seen: bool = False
    hints: tuple[str | None, str | None] = (None, None)
    """Playlist and progress target of the last process seen: still watched while the stream is down."""
    hints_of: tuple[str, ...] = ()
    """The command line ``hints`` were read from (the same one, round after round, while it runs)."""


PROC_ROOT = "/proc" if sys.platform.startswith("linux") else None


class ProcessesSource:
    """Matches processes to streams; counts restarts as new PIDs of a stream seen while we run.

    ``proc_root`` is the /proc to read (tests point it at captured files); None reads through psutil.
    """

    name = "processes"

    def __init__(self, config: Config, proc_root: str | None = PROC_ROOT) -> None:
        self._rules = rules_from_config(config)
        self._names = {r.process for r in self._rules}
        self._carry: dict[str, _Carry] = {}
        rules = self._rules
        self._scan = None if proc_root is None else ProcScan(
            ProcFs(proc_root), self._names, lambda name, cmdline: stream_for(name, cmdline, rules)
        )

    def sample(self, ctx: SampleContext) -> ProcessesResult:
        if self._scan is None:
            procs = read_psutil(self._names)
            return self.update(match_streams(procs, self._rules), scanned=len(procs))
        matched, scanned = self._scan.scan()
        return self.update(matched, scanned=scanned)

    def update(self, matched: Mapping[str, list[ProcInfo]], scanned: int = 0) -> ProcessesResult:
        """Fold one round's matches into the carried counters (pure apart from ``self._carry``)."""
        streams: dict[str, StreamProcesses] = {}
        for stream in set(matched) | set(self._carry):
            carry = self._carry.setdefault(stream, _Carry())
            procs = matched.get(stream, [])
            now_pids = {p.pid for p in procs}
            for pid, (cpu, read) in list(carry.pids.items()):
                if pid not in now_pids:
                    carry.closed_cpu += cpu
                    carry.closed_read += read
                    carry.exits += 1
                    del carry.pids[pid]
            new = [p for p in procs if p.pid not in carry.pids]
            if carry.ever_seen:
                carry.restarts += len(new)
            for p in procs:
                carry.pids[p.pid] = (p.cpu_seconds, float(p.read_bytes or 0))
            carry.ever_seen = carry.ever_seen or bool(procs)
            oldest = min(procs, key=lambda p: p.create_time) if procs else None
            if oldest is not None and oldest.cmdline != carry.hints_of:
                carry.hints, carry.hints_of = output_hints(oldest.cmdline), oldest.cmdline
            playlist, progress = carry.hints
            streams[stream] = StreamProcesses(
                stream=stream,
                pids=tuple(sorted(now_pids)),
                start_time=oldest.create_time if oldest else None,
                cpu_seconds_total=carry.closed_cpu + sum(p.cpu_seconds for p in procs),
                resident_memory_bytes=sum(p.rss_bytes for p in procs),
                read_bytes_total=carry.closed_read + sum(float(p.read_bytes or 0) for p in procs),
                open_fds=sum(p.open_fds or 0 for p in procs),
                threads=sum(p.threads for p in procs),
                restarts_total=carry.restarts,
                exits_total=carry.exits,
                playlist=playlist,
                progress=progress,
            )
        return ProcessesResult(streams=streams, scanned=scanned)
