"""Running an argv (no shell) with a deadline: the command runner, and what the systemd runner runs too.

A command gets a minimal environment and ``/`` as its working directory, its own session (so its whole
process group can be killed when it outlives its timeout), and a temporary file for its output.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Generic, TypeVar

from exporter.actions.policy import FAILED, INTERRUPTED, OK, TIMEOUT
from exporter.actions.runners.base import RunOutcome, Target, excerpt, fill
from exporter.config.actions import CommandAction, SystemdAction
from exporter.redact import redact

KILL_GRACE = 2.0
"""Seconds between SIGTERM and SIGKILL for a command's process group that outlived its timeout."""


def child_env(target: Target) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": "C.UTF-8",
        "IPTV_STREAM": target.stream,
        "IPTV_STREAM_NAME": target.name,
        "IPTV_NODE": target.node,
        "IPTV_ACTION": target.action,
    }


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM then SIGKILL to the command's own process group (it was started in a new session)."""
    pgid = proc.pid
    if pgid <= 1 or pgid == os.getpgrp():
        proc.kill()  # never signal our own group; cannot happen with start_new_session, kept as a guard
        return
    for sig, wait in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_argv(argv: Sequence[str], *, timeout: float, output_limit: int, env: Mapping[str, str],
             stop: threading.Event) -> RunOutcome:
    """Run one argv (no shell) with a deadline; capture stdout+stderr into a temporary file.

    A file rather than a pipe: a command that starts a daemon (a restarted ffmpeg) leaves it holding our
    stdout; with a pipe we would wait for its EOF forever, or kill it with SIGPIPE by closing the pipe.
    The file is truncated after reading so a chatty daemon cannot fill the disk through it.
    """
    try:
        out = tempfile.TemporaryFile(prefix="iptv-action-")  # noqa: SIM115 - closed by the with below
    except OSError as exc:  # a full or read-only temporary directory: the command never ran
        return RunOutcome(FAILED, f"cannot start {argv[0]}: no file for its output in {tempfile.gettempdir()}:"
                                  f" {exc.strerror or exc}", ran=False)
    with out:
        try:
            proc = subprocess.Popen(  # noqa: S603 - argv list from the config, filled from the inventory
                list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, close_fds=True,
                start_new_session=True, cwd="/", env=dict(env), shell=False,
            )
        except OSError as exc:
            return RunOutcome(FAILED, f"cannot start {argv[0]}: {exc.strerror or exc}", ran=False)
        deadline = time.monotonic() + timeout
        code: int | None = None
        result, detail = OK, ""
        while code is None:
            try:
                code = proc.wait(min(0.1, max(0.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                if stop.is_set():
                    result, detail = INTERRUPTED, "the exporter is stopping; the command was left running"
                    break
                if time.monotonic() >= deadline:
                    _kill_group(proc)
                    result, detail = TIMEOUT, f"no exit within {timeout:g}s: process group killed"
                    code = proc.returncode
                    break
        out.flush()
        out.seek(0)
        data = out.read(output_limit + 1)
        os.ftruncate(out.fileno(), 0)
    if result == OK and code != 0:
        killed = code is not None and code < 0
        result, detail = FAILED, f"killed by signal {-(code or 0)}" if killed else f"exit code {code}"
    elif result == OK:
        detail = "exit code 0"
    return RunOutcome(result, detail, code, excerpt(data, output_limit))


ArgvConfig = TypeVar("ArgvConfig", CommandAction, SystemdAction)


class ArgvRunner(Generic[ArgvConfig]):
    """A runner that runs one argv: shown (redacted) as its JSON list, run by :func:`run_argv`."""

    kind: str

    def __init__(self, cfg: ArgvConfig, output_limit: int) -> None:
        self.cfg: ArgvConfig = cfg
        self.output_limit = output_limit

    def argv(self, target: Target) -> list[str]:
        raise NotImplementedError

    def describe(self, target: Target) -> str:
        return redact(json.dumps(self.argv(target), ensure_ascii=False))

    def run(self, target: Target, stop: threading.Event) -> RunOutcome:
        return run_argv(self.argv(target), timeout=self.cfg.timeout, output_limit=self.output_limit,
                        env=child_env(target), stop=stop)


class CommandRunner(ArgvRunner[CommandAction]):
    kind = "command"

    def argv(self, target: Target) -> list[str]:
        return [fill(item, target.values()) for item in self.cfg.argv]
