"""Runners: the only code in the exporter that executes anything. Chosen by the config, never by labels.

Rules every runner keeps:
- argv lists only, never a shell; each template item stays exactly one argv item, filled from the
  inventory (stream ids are restricted to a safe alphabet) and the config;
- every run has a timeout; a command's whole process group is killed when it is exceeded;
- output is captured, truncated to ``output_limit`` bytes and redacted before it reaches the journal;
- children get a minimal environment (PATH, LANG, IPTV_*) and ``/`` as working directory, so nothing of
  the exporter's own environment (tokens, proxies) leaks into them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar
from urllib.parse import quote

import httpx
import psutil
import yaml

from exporter.actions.policy import FAILED, INTERRUPTED, OK, TIMEOUT
from exporter.config.actions import CommandAction, HttpAction, SignalAction, SystemdAction
from exporter.redact import redact

log = logging.getLogger(__name__)

KILL_GRACE = 2.0
"""Seconds between SIGTERM and SIGKILL for a command's process group that outlived its timeout."""
_UNIT = re.compile(r"[A-Za-z0-9:_.@\\-]{1,255}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")


@dataclass(frozen=True, slots=True)
class Target:
    """What an action acts on, entirely from validated inventory values and the config."""

    stream: str
    name: str
    node: str
    action: str
    pids: tuple[int, ...] = ()
    """The stream's processes in the latest snapshot (the signal runner's targets)."""

    def values(self) -> dict[str, str]:
        return {"stream": self.stream, "name": self.name, "node": self.node}


@dataclass(frozen=True, slots=True)
class RunOutcome:
    result: str
    """ok, failed, timeout or interrupted."""
    detail: str
    exit_code: int | None = None
    output: str = ""
    ran: bool = True
    """False when nothing reached the target (the command could not be started, the panel's API could not be
    connected to): the alert is then no dedup key, and its repeat tries again."""


class Runner(Protocol):
    kind: str

    def describe(self, target: Target) -> str:
        """What would run, for the journal and dry run; raises ValueError if the target is unsafe."""
        ...

    def run(self, target: Target, stop: threading.Event) -> RunOutcome: ...


def fill(template: str, values: Mapping[str, str], encode: Callable[[str], str] = str) -> str:
    """Fill a template the config validated (only plain ``{stream}``/``{name}``/``{node}`` fields)."""
    return template.format_map({key: encode(value) for key, value in values.items()})


def excerpt(data: bytes, limit: int) -> str:
    text = data[:limit].decode("utf-8", "replace")
    if len(data) > limit:
        text += f"\n[output truncated at {limit} bytes]"
    return redact(text)


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


_ArgvConfig = TypeVar("_ArgvConfig", CommandAction, SystemdAction)


class _ArgvRunner(Generic[_ArgvConfig]):
    """A runner that runs one argv: shown (redacted) as its JSON list, run by :func:`run_argv`."""

    kind: str

    def __init__(self, cfg: _ArgvConfig, output_limit: int) -> None:
        self.cfg: _ArgvConfig = cfg
        self.output_limit = output_limit

    def argv(self, target: Target) -> list[str]:
        raise NotImplementedError

    def describe(self, target: Target) -> str:
        return redact(json.dumps(self.argv(target), ensure_ascii=False))

    def run(self, target: Target, stop: threading.Event) -> RunOutcome:
        return run_argv(self.argv(target), timeout=self.cfg.timeout, output_limit=self.output_limit,
                        env=child_env(target), stop=stop)


class CommandRunner(_ArgvRunner[CommandAction]):
    kind = "command"

    def argv(self, target: Target) -> list[str]:
        return [fill(item, target.values()) for item in self.cfg.argv]


class SystemdRunner(_ArgvRunner[SystemdAction]):
    kind = "systemd"

    def argv(self, target: Target) -> list[str]:
        unit = fill(self.cfg.unit, target.values())
        if not _UNIT.fullmatch(unit) or unit.startswith("-"):
            raise ValueError(f"unit name {unit!r} is not a valid systemd unit name")
        return [self.cfg.systemctl, "restart", "--", unit]


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


class HttpRunner:
    """Ask the panel to restart the stream over its API (e.g. PanelX ``POST /api/streams/{stream}/restart``).

    With ``login``: the panel's own login first (PanelX accepts the restart only with the session cookie that
    ``POST /api/auth/login`` sets, server/routes.ts), the cookies kept between actions, and one new login
    and retry when the panel answers 401 (sessions live in the panel's memory: a panel restart ends them).
    """

    kind = "http"

    def __init__(self, cfg: HttpAction, output_limit: int) -> None:
        self.cfg = cfg
        self.output_limit = output_limit
        self._cookies = httpx.Cookies()
        self._login_lock = threading.Lock()
        self.logins = 0
        """Logins made (the journal does not see them; tests and logs do)."""

    def url(self, target: Target) -> str:
        return fill(self.cfg.url, target.values(), lambda v: quote(v, safe=""))

    def describe(self, target: Target) -> str:
        return f"{self.cfg.method} {redact(self.url(target))}"

    def headers(self) -> dict[str, str]:
        """Read for every action (rotation needs no restart). Errors are ValueErrors with the file named."""
        headers: dict[str, str] = {}
        if self.cfg.headers_file is not None:
            try:
                data = yaml.safe_load(self.cfg.headers_file.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
                raise ValueError(f"headers_file {self.cfg.headers_file}: {exc}") from None
            if not isinstance(data, dict):
                raise ValueError(f"headers_file {self.cfg.headers_file}: expected a mapping of header: value")
            for name, value in data.items():
                if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name) or not isinstance(value, str) \
                        or any(c in value for c in "\r\n\0"):
                    raise ValueError(f"headers_file {self.cfg.headers_file}: invalid header {str(name)[:40]!r}")
                headers[name] = value
        if self.cfg.token_file is not None:
            headers["Authorization"] = f"Bearer {read_secret(self.cfg.token_file)}"
        return headers

    def _login(self, client: httpx.Client, stale: httpx.Cookies | None) -> None:
        """Log in unless another action already did since ``stale`` was read; ValueError says why not."""
        login = self.cfg.login
        if login is None:
            return
        with self._login_lock:
            if stale is not None and dict(self._cookies) != dict(stale):
                client.cookies = httpx.Cookies(self._cookies)  # another action logged in meanwhile
                return
            username, password = read_credentials(login.credentials_file)
            client.cookies = httpx.Cookies()
            fields = {"username": username, "password": password}
            response = client.post(login.url, json=fields) if login.format == "json" else client.post(
                login.url, data=fields)
            self.logins += 1
            if not 200 <= response.status_code < 300:
                raise ValueError(f"login to {redact(login.url)} failed: HTTP {response.status_code}")
            try:
                answer = response.json()
            except ValueError:
                answer = None
            if isinstance(answer, dict) and answer.get("requires2FA"):
                raise ValueError("login needs a two-factor code: give the exporter an account without 2FA")
            if not client.cookies:
                raise ValueError(f"login to {redact(login.url)} set no session cookie")
            self._cookies = httpx.Cookies(client.cookies)
            log.info("logged in to the panel url=%s user=%s", redact(login.url), username)

    def _send(self, client: httpx.Client, url: str, headers: dict[str, str]) -> tuple[httpx.Response, bytes]:
        with client.stream(self.cfg.method, url, headers=headers) as response:
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > self.output_limit:
                    break
        return response, body

    def run(self, target: Target, stop: threading.Event) -> RunOutcome:
        url = self.url(target)
        try:
            headers = self.headers()
        except ValueError as exc:
            return RunOutcome(FAILED, str(exc), ran=False)
        try:
            with httpx.Client(timeout=self.cfg.timeout, follow_redirects=False, trust_env=False,
                              cookies=httpx.Cookies(self._cookies)) as client:
                if self.cfg.login is not None and not client.cookies:
                    self._login(client, None)
                used = httpx.Cookies(client.cookies)
                response, body = self._send(client, url, headers)
                if response.status_code == 401 and self.cfg.login is not None:
                    self._login(client, used)  # the session expired (or the panel restarted): once more
                    response, body = self._send(client, url, headers)
        except ValueError as exc:  # the login failed: the restart was never asked for
            return RunOutcome(FAILED, str(exc), ran=False)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # the request never left: nothing ran
            return RunOutcome(FAILED, f"{type(exc).__name__}: {redact(str(exc))[:300]}", ran=False)
        except httpx.TimeoutException:
            return RunOutcome(TIMEOUT, f"no answer within {self.cfg.timeout:g}s from {redact(url)}")
        except httpx.HTTPError as exc:
            return RunOutcome(FAILED, f"{type(exc).__name__}: {redact(str(exc))[:300]}")
        output = f"HTTP {response.status_code}\n" + excerpt(body, self.output_limit)
        if 200 <= response.status_code < 300:
            return RunOutcome(OK, f"HTTP {response.status_code}", output=output)
        return RunOutcome(FAILED, f"HTTP {response.status_code}", output=output)


def read_credentials(path: Path) -> tuple[str, str]:
    """``username`` and ``password`` from a YAML file; ValueError (naming the file, never the values) if not."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValueError(f"credentials_file {path}: cannot read: {getattr(exc, 'strerror', None) or 'not YAML'}") \
            from None
    fields = ("username", "password")
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) and data[k] for k in fields):
        raise ValueError(f"credentials_file {path}: expected a mapping with username: and password:")
    return data["username"], data["password"]


def read_secret(path: Path) -> str:
    """A token file's content without surrounding whitespace; ValueError if unreadable or empty."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not token:
        raise ValueError(f"{path} is empty")
    return token


def build_runner(
    cfg: CommandAction | SystemdAction | SignalAction | HttpAction, output_limit: int, belongs: Belongs
) -> Runner:
    if isinstance(cfg, CommandAction):
        return CommandRunner(cfg, output_limit)
    if isinstance(cfg, SystemdAction):
        return SystemdRunner(cfg, output_limit)
    if isinstance(cfg, SignalAction):
        return SignalRunner(cfg, belongs)
    return HttpRunner(cfg, output_limit)
