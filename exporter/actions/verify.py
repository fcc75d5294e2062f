"""Did the restart work? Watch the sampler's snapshots until the stream is back, or give up.

A restart is verified when, in a snapshot taken after the runner finished, the stream is up with at least
one process that was not there before (a runner exiting 0 proves nothing on its own), and - where the
snapshot carries progress for the stream (ffmpeg ``-progress``) - that progress then advances: a new
ffmpeg that hangs on its input is not a restart that worked.

:func:`assess` is pure and tested with literal snapshots; :class:`Verifier` feeds it from
``Sampler.subscribe`` (called in the sampler's thread after every round).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from exporter.snapshot import Snapshot

ProgressProbe = Callable[[Snapshot, str], float | None]
"""A number that grows while the stream makes progress (frames written), or None where it is not known."""


def progress_mark(snap: Snapshot, stream: str) -> float | None:
    """The stream's frames written (``frames_total``, kept monotonic across ffmpeg runs by the progress
    source), if that source ran this round and has a report for the stream."""
    entry = snap.progress.streams.get(stream) if snap.progress is not None else None
    return float(entry.frames_total) if entry is not None else None


@dataclass(frozen=True, slots=True)
class Watch:
    """What one verification has seen so far."""

    stream: str
    before: frozenset[int]
    since: float
    """Only snapshots taken at or after this time (the runner's end) count."""
    new_pids: frozenset[int] = frozenset()
    first_mark: float | None = None
    progress_seen: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    done: bool
    ok: bool
    detail: str


PENDING = Verdict(False, False, "")


def assess(watch: Watch, snap: Snapshot, probe: ProgressProbe = progress_mark) -> tuple[Watch, Verdict]:
    """Fold one snapshot into the watch; done and ok once a new process is up and (where known) progressing."""
    if snap.timestamp < watch.since or not snap.complete:
        return watch, PENDING
    procs = snap.processes
    entry = procs.streams.get(watch.stream) if procs is not None else None
    pids = frozenset(entry.pids) if entry is not None else frozenset()
    new = pids - watch.before
    if not new:
        return replace(watch, new_pids=frozenset(), first_mark=None), PENDING  # (again) no new process
    mark = probe(snap, watch.stream)
    if mark is None:
        if watch.progress_seen:
            return watch, PENDING  # progress was reported before: wait for it to come back
        return replace(watch, new_pids=new), Verdict(True, True, f"new process(es) {sorted(new)} up")
    if watch.first_mark is None or not watch.new_pids or watch.new_pids.isdisjoint(new):
        return replace(watch, new_pids=new, first_mark=mark, progress_seen=True), PENDING
    if mark > watch.first_mark:
        detail = f"new process(es) {sorted(new)} up, progress {watch.first_mark:g} -> {mark:g}"
        return watch, Verdict(True, True, detail)
    return watch, PENDING


class Verifier:
    def __init__(self, probe: ProgressProbe = progress_mark, clock: Callable[[], float] = time.time) -> None:
        self._probe = probe
        self._clock = clock
        self._cond = threading.Condition()
        self._latest: Snapshot | None = None
        self._round = 0

    def on_snapshot(self, snap: Snapshot) -> None:
        """Sampler listener: wake every waiting verification."""
        with self._cond:
            self._latest = snap
            self._round += 1
            self._cond.notify_all()

    def wait(self, stream: str, before: frozenset[int], since: float, timeout: float,
             stop: threading.Event) -> Verdict:
        watch = Watch(stream, before, since)
        deadline = time.monotonic() + timeout
        seen_round = -1
        last_state = "no snapshot after the action yet"
        while True:
            with self._cond:
                while self._round == seen_round and not stop.is_set():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(min(remaining, 0.5))
                snap, seen_round = self._latest, self._round
            if stop.is_set():
                return Verdict(True, False, "the exporter is stopping")
            if snap is not None:
                watch, verdict = assess(watch, snap, self._probe)
                if verdict.done:
                    return verdict
                if snap.timestamp >= since:
                    last_state = ("new process up, waiting for its progress to advance" if watch.new_pids
                                  else "no new process of the stream is up")
            if time.monotonic() >= deadline:
                return Verdict(True, False, f"not verified within {timeout:g}s: {last_state}")
