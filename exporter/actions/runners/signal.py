"""Signalling a stream's processes, for panels whose supervisor respawns them.

The PIDs come from a snapshot that may be seconds old; each is re-read and re-matched to the stream
(:func:`belongs_to_stream`, the discovery rules applied to the live process) before it is signalled.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Sequence

import psutil

from exporter.actions.policy import FAILED, OK, TIMEOUT
from exporter.actions.runners.base import RunOutcome, Target
from exporter.config.actions import SignalAction
from exporter.sources.discovery import Rule, stream_for

Belongs = Callable[[psutil.Process, str], bool]
"""Whether a live process (re-read now) still is one of the given stream's processes."""


class SignalRunner:
    """Signal the stream's current processes; a supervisor (the panel) respawns them. KILL after ``grace``.

    PIDs come from the latest snapshot, which may be seconds old: each PID is re-read and re-matched to the
    stream before it is signalled, and psutil refuses to signal a PID that was reused since it was read.
    """

    kind = "signal"

    def __init__(self, cfg: SignalAction, belongs: Belongs) -> None:
        self.cfg = cfg
        self.belongs = belongs

    def describe(self, target: Target) -> str:
        return f"SIG{self.cfg.signal} to pids {list(target.pids)}, SIGKILL after {self.cfg.grace:g}s"

    def _live_targets(self, stream: str, pids: Sequence[int]) -> tuple[list[psutil.Process], list[str]]:
        procs: list[psutil.Process] = []
        notes: list[str] = []
        for pid in pids:
            if pid <= 1 or pid == os.getpid():
                notes.append(f"pid {pid}: refused")
                continue
            try:
                proc = psutil.Process(pid)
                if self.belongs(proc, stream):
                    procs.append(proc)
                else:
                    notes.append(f"pid {pid}: no longer this stream's process, left alone")
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                notes.append(f"pid {pid}: already gone")
            except psutil.AccessDenied:
                notes.append(f"pid {pid}: access denied")
        return procs, notes

    def run(self, target: Target, stop: threading.Event) -> RunOutcome:
        if not target.pids:
            return RunOutcome(FAILED, "the stream has no running process to signal (a signal runner needs a "
                                      "supervisor that respawns it; use a command, systemd or http runner)")
        procs, notes = self._live_targets(target.stream, target.pids)
        if not procs:
            return RunOutcome(FAILED, "; ".join(notes) or "nothing to signal")
        sig = getattr(signal, f"SIG{self.cfg.signal}")
        sent: list[psutil.Process] = []
        for proc in procs:
            try:
                proc.send_signal(sig)
                sent.append(proc)
                notes.append(f"pid {proc.pid}: SIG{self.cfg.signal}")
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                notes.append(f"pid {proc.pid}: already gone")
            except psutil.AccessDenied:
                notes.append(f"pid {proc.pid}: access denied")
        if not sent:
            return RunOutcome(FAILED, "; ".join(notes))
        _, alive = psutil.wait_procs(sent, timeout=self.cfg.grace)
        for proc in alive:
            try:
                proc.kill()
                notes.append(f"pid {proc.pid}: SIGKILL after {self.cfg.grace:g}s")
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                pass  # exited between the wait and the kill: what we wanted
        if alive:
            _, alive = psutil.wait_procs(alive, timeout=max(0.5, self.cfg.timeout - self.cfg.grace))
        if alive:
            return RunOutcome(TIMEOUT, "; ".join(notes) + f"; still alive: {[p.pid for p in alive]}")
        return RunOutcome(OK, "; ".join(notes))


def belongs_to_stream(rules: Sequence[Rule]) -> Belongs:
    """Whether a live process still is one of a stream's processes, by the discovery rules the processes
    source found it with: its name, command line and owner, read now."""

    def belongs(proc: psutil.Process, stream: str) -> bool:
        with proc.oneshot():
            return stream_for(proc.name(), tuple(proc.cmdline()), rules, proc.uids().real) == stream

    return belongs
