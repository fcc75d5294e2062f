"""Verification with literal snapshots: a new process must come up, and progress advance where known."""

from __future__ import annotations

import threading
from types import MappingProxyType

from exporter.actions.verify import Verifier, Watch, assess, progress_mark
from exporter.snapshot import Snapshot
from exporter.sources.processes_result import ProcessesResult, StreamProcesses
from exporter.sources.progress import ProgressResult, StreamProgress


def _progress(frames: int) -> StreamProgress:
    return StreamProgress("7", "file", 1.0, 25.0, 1.0, frames / 25, frames, 0, 0, 1, False)


def snap(ts: float, pids: tuple[int, ...], frames: int | None = None) -> Snapshot:
    procs = StreamProcesses("7", pids, 1.0 if pids else None, 0, 0, 0, 0, 0, 0, 0, None, None)
    progress = None if frames is None else ProgressResult(
        MappingProxyType({"7": _progress(frames)}), MappingProxyType({}), MappingProxyType({}))
    return Snapshot(ts, True, MappingProxyType({}), (), processes=ProcessesResult({"7": procs}, 1), progress=progress)


def run(watch: Watch, *snaps: Snapshot) -> list[bool]:
    done = []
    for s in snaps:
        watch, verdict = assess(watch, s)
        done.append(verdict.ok)
        if verdict.done:
            break
    return done


def test_new_process_without_progress_is_enough() -> None:
    w = Watch("7", frozenset({10}), since=100.0)
    assert run(w, snap(99, (11,)), snap(101, (10,)), snap(102, ())) == [False, False, False]  # too early, old, down
    assert run(w, snap(101, ()), snap(102, (10, 11))) == [False, True]  # a new pid beside the old is new


def test_progress_must_advance() -> None:
    w = Watch("7", frozenset({10}), since=100.0)
    assert run(w, snap(101, (11,), frames=500), snap(102, (11,), frames=500), snap(103, (11,), frames=525)) \
        == [False, False, True]
    # the new process dies and another starts: progress counts again from its first sighting
    assert run(w, snap(101, (11,), frames=500), snap(102, (12,), frames=510), snap(103, (12,), frames=520)) \
        == [False, False, True]
    # progress stops being reported: not verified on pids alone once it was known
    assert run(w, snap(101, (11,), frames=500), snap(102, (11,))) == [False, False]


def test_progress_mark_reads_the_frames_written() -> None:
    assert progress_mark(snap(1, (1,), frames=3), "7") == 3.0
    assert progress_mark(snap(1, (1,)), "7") is None
    assert progress_mark(snap(1, (1,), frames=3), "8") is None


def test_verifier_waits_for_snapshots_and_gives_up() -> None:
    v = Verifier()
    stop = threading.Event()
    feeder = threading.Timer(0.2, v.on_snapshot, args=(snap(2e9, (11,)),))
    feeder.start()
    verdict = v.wait("7", frozenset({10}), since=1e9, timeout=10, stop=stop)
    assert verdict.ok and "11" in verdict.detail
    verdict = v.wait("7", frozenset({11}), since=3e9, timeout=0.3, stop=stop)
    assert not verdict.ok and "not verified within 0.3s" in verdict.detail
    stop.set()
    assert v.wait("7", frozenset(), since=0, timeout=10, stop=stop).detail == "the exporter is stopping"
