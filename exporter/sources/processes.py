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
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import psutil

from exporter.config import Config
from exporter.sources import SampleContext
from exporter.sources.discovery import Match, Rule, match, rules_from_config, stream_for
from exporter.sources.ffmpeg_argv import args_of, peer_of
from exporter.sources.ingest import Holder, IngestMeter, peer_key
from exporter.sources.procevents import ProcEvent, ProcEvents
from exporter.sources.procfs import ProcFs, full_name, parse_cmdline
from exporter.streamstate import Remembered, StreamMemory

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
    """``rchar`` from /proc/<pid>/io: bytes of ``read()`` calls (file inputs; not ``recv()``). None if denied."""
    open_fds: int | None
    threads: int
    uid: int | None = None
    """Real uid of the process (None: unknown)."""
    socket_inodes: frozenset[int] = frozenset()
    """Inodes of the sockets it holds (read only for processes with a network input)."""


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


def stream_of(proc: ProcInfo, rules: Sequence[Rule]) -> str | None:
    """The stream id this process serves, from the first rule that matches and allows its owner, or None."""
    return stream_for(proc.name, proc.cmdline, rules, proc.uid)


def output_hints(cmdline: Sequence[str]) -> tuple[str | None, str | None]:
    """The HLS playlist a process writes and its ``-progress`` target, read off its outputs."""
    args = args_of(tuple(cmdline))
    return args.playlist, args.progress


def match_streams(procs: Iterable[ProcInfo], rules: Sequence[Rule]) -> dict[str, list[ProcInfo]]:
    out: dict[str, list[ProcInfo]] = {}
    for proc in procs:
        stream = stream_of(proc, rules)
        if stream is not None:
            out.setdefault(stream, []).append(proc)
    return out


def holder(stream: str, proc: ProcInfo) -> Holder:
    """The ingest meter's view of a stream process: its sockets, less those to its progress and output
    peers (unless an input reads from the same peer)."""
    args = args_of(proc.cmdline)
    sends = {peer_of(t) for t in (*args.outputs, args.progress or "")}
    reads = {peer_of(t) for t in args.inputs}
    not_input = frozenset(peer_key(*p) for p in sends - reads if p is not None)
    return Holder(stream, proc.socket_inodes, not_input)


Classify = Callable[[str, tuple[str, ...], "int | None"], Match]


@dataclass(frozen=True, slots=True)
class Scanned:
    """One walk over /proc: stream processes by stream id, and the processes refused (pid -> stream id)."""

    matched: dict[str, list[ProcInfo]]
    refused: dict[int, str]
    scanned: int


class ProcScan:
    """One walk over /proc per round (:meth:`scan`): the processes of each stream, with what they cost.

    Every process costs a read of its command line, and of its ``comm`` unless argv[0] names a wanted
    program already; only those whose name could match have their ``stat`` and owner read, and only
    those that serve a stream their memory, I/O and fds (and socket inodes, for a network input). Parsing
    a command line and matching it against the rules are remembered from one round to the next by their
    input (the command line's bytes, the name and the owner), so a stream process that keeps running
    costs no regex search.
    """

    def __init__(self, fs: ProcFs, names: set[str | None], classify: Classify) -> None:
        self.fs = fs
        self._names = names
        self._classify = classify
        self._parsed: dict[bytes, tuple[tuple[str, ...], bool]] = {}
        """raw command line -> (arguments, argv[0] names a wanted program)"""
        self._matched: dict[tuple[str, bytes, int], tuple[Match, bool]] = {}
        """(name, raw command line, uid) -> (match, has a network input)"""
        self._uids: dict[tuple[int, int], int] = {}
        """(pid, start ticks) -> real uid of candidate processes"""

    def _parse(self, raw: bytes) -> tuple[tuple[str, ...], bool]:
        cmdline = parse_cmdline(raw)
        wanted = None in self._names or (bool(cmdline) and cmdline[0].rsplit("/", 1)[-1] in self._names)
        return cmdline, wanted

    def classify(self, pid: int) -> str | None:
        """The stream a process serves, read now (the process events listener's question after an exec)."""
        try:
            raw = self.fs.read(pid, "cmdline")
            if not raw:
                return None
            cmdline, wanted = self._parse(raw)
            comm = self.fs.comm(pid)
            if not wanted and comm not in self._names and full_name(comm, cmdline) not in self._names:
                return None
            found = self._classify(full_name(comm, cmdline), cmdline, self.fs.uid(pid))
        except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
            return None  # gone already (or not ours to read)
        return found.stream

    def scan(self) -> Scanned:
        fs, names = self.fs, self._names
        boot = fs.boot_time()
        tick, page = fs.clock_ticks, fs.page_size
        parsed, matched, uids = self._parsed, self._matched, self._uids
        self._parsed, self._matched, self._uids = {}, {}, {}  # only what this round saw is kept for the next
        pids = fs.pids()
        out: dict[str, list[ProcInfo]] = {}
        refused: dict[int, str] = {}
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
                uid = uids.get((pid, st.start))
                if uid is None:
                    uid = fs.uid(pid)  # an unprivileged process cannot change its real uid: read once
                self._uids[(pid, st.start)] = uid
                key = (name, raw, uid)
                found = matched.get(key)
                if found is None:
                    found = (self._classify(name, cmdline, uid), args_of(cmdline).network_input)
                self._matched[key] = found
                (m, network) = found
                if m.stream is None:
                    if m.refused:
                        refused[pid] = ""
                    continue
                rss = fs.resident_pages(pid)
                try:
                    read_bytes = fs.rchar(pid)
                except PermissionError:
                    read_bytes = None  # another user's process: /proc/<pid>/io needs ptrace rights
                inodes: frozenset[int] = frozenset()
                try:
                    if network:
                        fds: int | None
                        fds, inodes = fs.fds_and_sockets(pid)
                    else:
                        fds = fs.open_fds(pid)
                except PermissionError:
                    fds = None
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue  # gone, or not ours to read (hidepid): the next round sees the truth
            out.setdefault(m.stream, []).append(ProcInfo(
                pid=pid, name=name, cmdline=cmdline, create_time=boot + st.start / tick,
                cpu_seconds=st.utime / tick + st.stime / tick, rss_bytes=rss * page, read_bytes=read_bytes,
                open_fds=fds, threads=st.threads, uid=uid, socket_inodes=inodes,
            ))
        return Scanned(out, refused, len(pids))


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
                        uid=p.uids().real,
                    )
                )
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue  # gone or not ours to read: the next round sees the truth
    return procs


@dataclass
class _Carry:
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


PROC_ROOT = "/proc" if sys.platform.startswith("linux") else None
REFUSED_OWNER, REFUSED_CAP = "owner", "cap"
SAVE_EVERY = 60.0
"""Seconds between writes of the streams state while nothing but ``last_seen`` changes."""
EXIT_MEMORY = 60.0


class ProcessesSource:
    """Matches processes to streams; counts every start and exit of a stream's processes.

    ``proc_root`` is the /proc to read (tests point it at captured files); None reads through psutil.
    Starts and exits come from the kernel's process events where the exporter may listen to them
    (:mod:`exporter.sources.procevents`), else from new and vanished PIDs between rounds. Discovered
    streams are remembered in ``memory`` across restarts and forgotten ``streams.forget_after`` after
    their last process; declared streams are never forgotten.
    """

    name = "processes"

    def __init__(self, config: Config, proc_root: str | None = PROC_ROOT, memory: StreamMemory | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._rules = rules_from_config(config)
        self._names = {r.process for r in self._rules}
        self._static = {s.id for s in config.streams.static}
        self._allowed = frozenset().union(*(r.uids or frozenset() for r in self._rules if r.stream is None))
        self._forget_after = config.streams.forget_after
        self._interval = config.sample_interval
        self._max = config.streams.max_discovered
        # The kernel's events and sockets are the real host's: only with the real /proc (a captured one, in
        # tests, has neither)
        live = proc_root is not None and proc_root == PROC_ROOT
        self._events_mode = config.streams.process_events if live else "off"
        self._clock = clock
        self._carry: dict[str, _Carry] = {}
        self._refused_now: set[int] = set()
        self._refused: dict[str, int] = {REFUSED_OWNER: 0, REFUSED_CAP: 0}
        self._forgotten = 0
        self._n_discovered = 0
        rules = self._rules
        self._scan = None if proc_root is None else ProcScan(
            ProcFs(proc_root), self._names, lambda name, cmdline, uid: match(name, cmdline, uid, rules)
        )
        self._ingest = IngestMeter() if live else None
        self.events: ProcEvents | None = None
        self._events_tried = False
        self._memory = memory
        self._saved: tuple[frozenset[tuple[str, str | None, str | None]], float] = (frozenset(), 0.0)
        if memory is not None:
            self._remember(memory.load())

    def _remember(self, entries: Iterable[Remembered]) -> None:
        now = self._clock()
        for e in entries:
            if e.stream in self._static or now - e.last_seen > self._forget_after:
                continue
            if e.uid is None or e.uid not in self._allowed:
                log.warning("remembered stream dropped: its owner is not allowed by the rules stream=%s", e.stream)
                continue
            if len(self._discovered()) >= self._max:
                break
            self._carry[e.stream] = _Carry(ever_seen=True, last_seen=e.last_seen, uid=e.uid,
                                           hints=(e.playlist, e.progress))

    def _discovered(self) -> list[str]:
        return [s for s in self._carry if s not in self._static]

    def _start_events(self) -> None:
        self._events_tried = True
        if self._events_mode == "off" or self._scan is None:
            return
        # the sampler drains every round: ten rounds without one means it is gone (or stuck), stop reading /proc
        events = ProcEvents(self._scan.classify, idle_timeout=max(60.0, 10 * self._interval))
        try:
            events.start()
        except OSError as exc:
            if self._events_mode == "on":
                raise OSError(exc.errno, f"process events (streams.process_events: on): {exc.strerror or exc}"
                              ) from exc
            log.warning("process events unavailable (needs CAP_NET_ADMIN): starts and exits between two"
                        " samples are not seen error=%s", exc)
            return
        log.info("process events: every start and exit of a stream process is counted")
        self.events = events

    def close(self) -> None:
        if self.events is not None:
            self.events.stop()
            self.events = None

    def sample(self, ctx: SampleContext) -> ProcessesResult:
        if not self._events_tried:
            self._start_events()
        if self._scan is None:
            procs = read_psutil(self._names)
            return self.update(match_streams(procs, self._rules), scanned=len(procs))
        events = self.events.drain() if self.events is not None else []
        if self.events is not None and not self.events.running:
            log.error("process events listener stopped: sampling only")
            self.events = None
        found = self._scan.scan()
        ingest = None
        if self._ingest is not None:
            holders = [holder(s, p) for s, procs in found.matched.items() for p in procs if p.socket_inodes]
            ingest = self._ingest.measure(holders)
        result = self.update(found.matched, found.scanned, events, found.refused, ingest)
        if self.events is not None:
            self.events.watch({pid: s for s, p in result.streams.items() for pid in p.pids})
        return result

    def _admit(self, stream: str, now: float) -> bool:
        """Track ``stream`` if it is known, declared, or a new discovered one under the cap."""
        if stream in self._carry:
            return True
        if stream not in self._static:
            if self._n_discovered >= self._max:
                return False
            self._n_discovered += 1
        self._carry[stream] = _Carry(last_seen=now)
        return True

    def update(self, matched: Mapping[str, list[ProcInfo]], scanned: int = 0, events: Sequence[ProcEvent] = (),
               refused: Mapping[int, str] | None = None, ingest: Mapping[str, int] | None = None,
               ) -> ProcessesResult:
        """Fold one round's events and matches into the carried counters (pure apart from ``self``)."""
        now = self._clock()
        refused_now: dict[int, str] = {pid: REFUSED_OWNER for pid in (refused or {})}
        by_stream: dict[str, list[ProcEvent]] = {}
        self._n_discovered = len(self._discovered())
        for ev in events:
            if self._admit(ev.stream, now):
                by_stream.setdefault(ev.stream, []).append(ev)
            elif ev.kind == "exec":
                refused_now[ev.pid] = REFUSED_CAP
        admitted: dict[str, list[ProcInfo]] = {}
        for stream, procs in matched.items():
            if self._admit(stream, now):
                admitted[stream] = procs
            else:
                refused_now.update((p.pid, REFUSED_CAP) for p in procs)
        for pid, reason in refused_now.items():
            if pid not in self._refused_now:
                self._refused[reason] += 1
        self._refused_now = set(refused_now)

        streams: dict[str, StreamProcesses] = {}
        for stream in list(self._carry):
            carry = self._carry[stream]
            procs = admitted.get(stream, [])
            self._fold_events(carry, by_stream.get(stream, ()), now)
            self._fold_scan(carry, procs, now)
            if not procs and stream not in self._static and now - carry.last_seen > self._forget_after:
                del self._carry[stream]
                self._forgotten += 1
                if self._ingest is not None:
                    self._ingest.forget(stream)
                log.info("stream forgotten: no process for streams.forget_after stream=%s", stream)
                continue
            streams[stream] = self._result(stream, carry, procs, ingest)
        self._save(now)
        return ProcessesResult(streams=streams, scanned=scanned, refused_total=dict(self._refused),
                               forgotten_total=self._forgotten, events=self.events is not None)

    def _fold_events(self, carry: _Carry, events: Iterable[ProcEvent], now: float) -> None:
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

    def _fold_scan(self, carry: _Carry, procs: Sequence[ProcInfo], now: float) -> None:
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

    def _result(self, stream: str, carry: _Carry, procs: Sequence[ProcInfo], ingest: Mapping[str, int] | None
                ) -> StreamProcesses:
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
            owner_allowed=carry.uid is not None and carry.uid in self._allowed,
        )

    def _save(self, now: float) -> None:
        if self._memory is None:
            return
        entries = [Remembered(s, c.last_seen, c.uid, *c.hints) for s, c in self._carry.items()
                   if s not in self._static and c.ever_seen]
        shape = frozenset((e.stream, e.playlist, e.progress) for e in entries)
        if shape == self._saved[0] and now - self._saved[1] < SAVE_EVERY:
            return
        if self._memory.save(entries):
            self._saved = (shape, now)
