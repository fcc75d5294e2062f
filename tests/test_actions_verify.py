"""Verification: a new process must come up, and progress advance where known. Literal snapshots, and once
with a real ffmpeg restarted under the real sampler."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

import pytest

from exporter.actions.verify import Verifier, Watch, assess, progress_mark
from exporter.config import parse_config
from exporter.runtime import build_runtime
from exporter.snapshot import Snapshot
from exporter.sources.processes_result import ProcessesResult, StreamProcesses
from exporter.sources.progress import ProgressResult, StreamProgress
from tests.helpers import Proc, ffmpeg_hls_argv, wait_until


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


@pytest.mark.slow
def test_a_restart_is_verified_on_frames_a_real_ffmpeg_writes_to_its_progress_file(
    tmp_path: Path, procs: Callable[..., Proc]
) -> None:
    """The typed path end to end: the progress source reads ffmpeg's ``-progress`` file, the snapshot carries
    it, and the verifier sees the new process's frames advance (counted on from the old run's)."""
    playlist, progress = tmp_path / "v7.m3u8", tmp_path / "v7.progress"
    argv = ffmpeg_hls_argv(playlist, progress=str(progress))
    rt = build_runtime(parse_config({
        "node": "n", "viewers": {"ports": [], "access_log": None},
        "streams": {"discover": [], "process_events": "off", "static": [
            {"id": "7", "cmdline": re.escape(str(playlist)), "progress": str(progress)}]},
    }))
    verifier = Verifier()
    rt.sampler.subscribe(verifier.on_snapshot)

    def frames() -> tuple[frozenset[int], int] | None:
        snap = rt.sampler.sample_once()
        pids = snap.processes.streams["7"].pids if snap.processes and "7" in snap.processes.streams else ()
        mark = progress_mark(snap, "7")
        return (frozenset(pids), int(mark)) if pids and mark else None

    try:
        first = procs(argv, log=tmp_path / "first.log")
        before, old_frames = wait_until(frames, timeout=30, what="the first ffmpeg's progress")
        first.stop()
        since = time.time()
        second = procs(argv, log=tmp_path / "second.log")
        stop, sampling = threading.Event(), threading.Event()

        def sample() -> None:
            while not stop.is_set():
                rt.sampler.sample_once()
                sampling.set()
                stop.wait(0.3)  # a sampling interval, as the sampler's own loop waits

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            verdict = verifier.wait("7", before, since, timeout=40, stop=threading.Event())
        finally:
            stop.set()
            sampler.join(10)
    finally:
        rt.sampler.close()
    assert verdict.ok, verdict.detail
    found = re.search(r"new process\(es\) \[(\d+)\] up, progress (\d+) -> (\d+)", verdict.detail)
    assert found is not None, verdict.detail
    pid, start, end = (int(g) for g in found.groups())
    assert pid == second.pid and pid not in before
    assert old_frames <= start < end  # counted on across the restart, and advancing in the new run
