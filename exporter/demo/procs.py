"""Child processes that always go away: each in its own process group, stopped group-wide.

The demo starts real programs (ffmpeg, nginx, Prometheus, Alertmanager) and a few Python helpers. Each
runs in a session of its own, so a stop reaches everything it forked (nginx's workers), and Ctrl-C in the
terminal reaches only the demo, which then stops them in order. :func:`sweep` is the last word: any
process whose command line still names the demo's data directory is killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

STOP_GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL, like PanelX gives a stream."""


def kill_group(pgid: int, grace: float = STOP_GRACE) -> None:
    """SIGTERM the process group, SIGKILL whatever is left after ``grace`` seconds."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return
        time.sleep(0.05)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return


def _group_alive(pgid: int) -> bool:
    """True while a live (non-zombie) process is in the group."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return False


@dataclass
class Child:
    """One program in its own session; ``stop`` signals the whole group and reaps the leader."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> Child:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:  # the child keeps its own copy of the descriptor
            self.popen = subprocess.Popen(
                list(self.argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=dict(self.env) if self.env is not None else None, cwd=self.cwd, start_new_session=True,
            )
        log.debug("started name=%s pid=%d", self.name, self.popen.pid)
        return self

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise RuntimeError(f"{self.name} was not started")
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, grace: float = STOP_GRACE) -> int | None:
        """Stop the group and reap the leader; its exit status (None if never started)."""
        if self.popen is None:
            return None
        pgid = self.popen.pid
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                log.warning("did not stop in time, killing name=%s pid=%d", self.name, pgid)
        kill_group(pgid, grace=0.5)  # what the leader left behind (workers), then the leader if still there
        return self.popen.wait(grace)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


def processes_naming(root: Path) -> list[psutil.Process]:
    """Processes whose command line mentions ``root``, except this one and its ancestors (the shell or
    test that started the demo names the directory too)."""
    needle = str(root)
    me = psutil.Process()
    exempt = {me.pid, *(p.pid for p in me.parents())}
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            named = any(needle in arg for arg in proc.info["cmdline"] or ())
            if proc.pid not in exempt and named and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def sweep(root: Path, grace: float = 2.0) -> int:
    """Kill every process still naming ``root``; how many there were (0 after a clean stop)."""
    left = processes_naming(root)
    for proc in left:
        log.warning("stopping leftover process pid=%d cmdline=%s", proc.pid, " ".join(proc.cmdline())[:200])
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(left, timeout=grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(alive, timeout=grace)
    return len(left)
