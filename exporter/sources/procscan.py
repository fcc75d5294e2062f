"""Reading stream processes from /proc: one walk per round, and only what matching processes cost.

Reading is kept apart from matching: :class:`ProcScan` does the I/O (through :class:`ProcFs`, whose
parsers are pure), :func:`stream_of` and :func:`match_streams` are pure and are tested with literal command
lines. Only a process whose name and command line match a rule has its CPU, memory, I/O and fds read.
Processes that vanish mid-read, zombies and permission errors are part of normal life on a busy host and
never fail a sample. Without a /proc (not Linux) psutil reads the same facts (:func:`read_psutil`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import psutil

from exporter.sources.discovery import Match, Rule, stream_for
from exporter.sources.ffmpeg_argv import args_of
from exporter.sources.procfs import ProcFs, full_name, parse_cmdline


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


def stream_of(proc: ProcInfo, rules: Sequence[Rule]) -> str | None:
    """The stream id this process serves, from the first rule that matches and allows its owner, or None."""
    return stream_for(proc.name, proc.cmdline, rules, proc.uid)


def match_streams(procs: Iterable[ProcInfo], rules: Sequence[Rule]) -> dict[str, list[ProcInfo]]:
    out: dict[str, list[ProcInfo]] = {}
    for proc in procs:
        stream = stream_of(proc, rules)
        if stream is not None:
            out.setdefault(stream, []).append(proc)
    return out


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
