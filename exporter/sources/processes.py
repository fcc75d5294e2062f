"""The processes source: which streams run, and what they cost, counted across process churn.

It walks /proc once a round (:mod:`exporter.sources.procscan`), admits streams (declared ones, discovered
ones under ``streams.max_discovered``), folds the round into per-stream carried counters
(:mod:`exporter.sources.proccarry`), remembers discovered streams across restarts (``streams.json``) and
forgets them ``streams.forget_after`` after their last process. Starts and exits come from the kernel's
process events where the exporter may listen to them (:mod:`exporter.sources.procevents`).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from exporter.config import Config
from exporter.sources import SampleContext
from exporter.sources.discovery import match, rules_from_config
from exporter.sources.ffmpeg_argv import args_of, peer_of
from exporter.sources.ingest import Holder, IngestMeter, peer_key
from exporter.sources.proccarry import Carry, fold_events, fold_scan, stream_view
from exporter.sources.processes_result import ProcessesResult, StreamProcesses
from exporter.sources.procevents import ProcEvent, ProcEvents
from exporter.sources.procfs import ProcFs
from exporter.sources.procscan import ProcInfo, ProcScan, match_streams, read_psutil
from exporter.streamstate import Remembered, StreamMemory

log = logging.getLogger(__name__)

PROC_ROOT = "/proc" if sys.platform.startswith("linux") else None
REFUSED_OWNER, REFUSED_CAP = "owner", "cap"
SAVE_EVERY = 60.0
"""Seconds between writes of the streams state while nothing but ``last_seen`` changes."""


def holder(stream: str, proc: ProcInfo) -> Holder:
    """The ingest meter's view of a stream process: its sockets, less those to its progress and output
    peers (unless an input reads from the same peer)."""
    args = args_of(proc.cmdline)
    sends = {peer_of(t) for t in (*args.outputs, args.progress or "")}
    reads = {peer_of(t) for t in args.inputs}
    not_input = frozenset(peer_key(*p) for p in sends - reads if p is not None)
    return Holder(stream, proc.socket_inodes, not_input)


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
        self._carry: dict[str, Carry] = {}
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
            self._carry[e.stream] = Carry(ever_seen=True, last_seen=e.last_seen, uid=e.uid,
                                          hints=(e.playlist, e.progress))

    def _discovered(self) -> list[str]:
        return [s for s in self._carry if s not in self._static]

    def open(self) -> None:
        """Listen to the kernel's process events where that is allowed (``streams.process_events``).

        In ``on`` mode a refusal raises: the sampler marks the source down for its first round with the
        reason, and it samples without events afterwards, as in ``auto`` mode."""
        if self._events_mode == "off" or self._scan is None or self.events is not None:
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
        """Stop listening to process events (idempotent)."""
        if self.events is not None:
            self.events.stop()
            self.events = None

    def sample(self, ctx: SampleContext) -> ProcessesResult:
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
        self._carry[stream] = Carry(last_seen=now)
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
            fold_events(carry, by_stream.get(stream, ()), now)
            fold_scan(carry, procs, now)
            if not procs and stream not in self._static and now - carry.last_seen > self._forget_after:
                del self._carry[stream]
                self._forgotten += 1
                if self._ingest is not None:
                    self._ingest.forget(stream)
                log.info("stream forgotten: no process for streams.forget_after stream=%s", stream)
                continue
            streams[stream] = stream_view(stream, carry, procs, ingest, self._allowed)
        self._save(now)
        return ProcessesResult(streams=streams, scanned=scanned, refused_total=dict(self._refused),
                               forgotten_total=self._forgotten, events=self.events is not None)

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
