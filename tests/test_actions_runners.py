"""Runners against real processes: a supervised ffmpeg for the signal runner, a stand-in panel API for the
http runner, real commands for timeouts, truncation and detached children, a stand-in systemctl."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import psutil
import pytest

from exporter.actions.policy import FAILED, OK, TIMEOUT
from exporter.actions.runners import (
    CommandRunner,
    HttpRunner,
    SignalRunner,
    SystemdRunner,
    Target,
    belongs_to_stream,
)
from exporter.config.actions import CommandAction, HttpAction, SignalAction, SystemdAction
from exporter.linear_re import compile_linear
from exporter.sources.discovery import Rule
from tests.actions_support import (
    NODE,
    PYTHON,
    RECORD,
    actions_config,
    alert,
    kill_matching,
    notification,
    playlist_stream,
    records,
    running,
    write_token,
)
from tests.helpers import Proc, ffmpeg_hls_argv, free_port, http_server, wait_until

# Restarts whatever it supervises, like a panel's stream manager. The child's argv comes from a file so
# the supervisor's own command line never matches the stream (it must not be signalled itself).
SUPERVISOR = r"""
import json, signal, subprocess, sys
argv = json.load(open(sys.argv[1]))
state = {"child": None, "stop": False}
def stop(*_):
    state["stop"] = True
    if state["child"] is not None:
        state["child"].kill()
signal.signal(signal.SIGTERM, stop)
while not state["stop"]:
    state["child"] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
    print(state["child"].pid, flush=True)
    state["child"].wait()
"""
STUBBORN = ("import signal, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "open(sys.argv[1] + '.ready', 'w').close()\nwhile True: time.sleep(1)")
"""Ignores SIGTERM, and says so with a file: it is visible as a stream from its exec on, before Python has
set the handler, and a TERM sent in between would kill it (the test would then see no SIGKILL)."""
STOP = threading.Event()


@pytest.fixture
def supervise(tmp_path: Path, procs: Callable[..., Proc]) -> Iterator[Callable[[str, list[str]], Path]]:
    supervisors: list[Proc] = []

    def start(name: str, argv: list[str]) -> Path:
        spec = tmp_path / f"{name}.json"
        spec.write_text(json.dumps(argv))
        log = tmp_path / f"{name}.pids"
        supervisors.append(procs([PYTHON, "-c", SUPERVISOR, str(spec)], log=log))
        return log

    yield start
    for supervisor in supervisors:  # first, or it respawns what is killed next (a stand-in left running)
        supervisor.stop()
    kill_matching(str(tmp_path / "act_"))


def _pids(log: Path) -> list[int]:
    return [int(x) for x in log.read_text().split()] if log.exists() else []


def test_signal_runner_term_then_kill_and_the_supervisor_respawns(
    tmp_path: Path, supervise: Callable[[str, list[str]], Path]
) -> None:
    token = write_token(tmp_path / "token")
    ffmpeg_log = supervise("ffmpeg", ffmpeg_hls_argv(tmp_path / "act_7.m3u8"))
    stubborn_log = supervise("stubborn", [PYTHON, "-c", STUBBORN, str(tmp_path / "act_8.m3u8")])
    config = actions_config(tmp_path, {"type": "signal", "signal": "TERM", "grace": "1s", "timeout": "10s"},
                            streams=[playlist_stream(tmp_path, "7"), playlist_stream(tmp_path, "8")],
                            cooldown="1ms")
    with running(config) as (client, rt, component):
        def pids(stream: str) -> tuple[int, ...]:
            procs = rt.sampler.snapshot.processes
            entry = procs.streams.get(stream) if procs is not None else None
            return tuple(entry.pids) if entry is not None else ()

        wait_until(lambda: (tmp_path / "act_8.m3u8.ready").exists(), timeout=20, what="SIGTERM ignored")
        old = wait_until(lambda: (pids("7"), pids("8")) if pids("7") and pids("8") else None, timeout=20,
                         what="both up")
        r = client.post("/hooks/alertmanager", json=notification(alert("7"), alert("8")),
                        headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        assert component.worker.wait_idle(40)
        story = client.get("/api/actions", headers={"Authorization": f"Bearer {token}"}).json()
    by_stream = {a["stream"]: a for a in story["actions"]}
    assert by_stream["7"]["result"] == "ok", by_stream["7"]
    assert f"pid {old[0][0]}: SIGTERM" in by_stream["7"]["detail"]
    assert "SIGKILL" not in by_stream["7"]["detail"]  # ffmpeg stops on TERM
    assert by_stream["8"]["result"] == "ok", by_stream["8"]
    assert f"pid {old[1][0]}: SIGKILL after 1s" in by_stream["8"]["detail"]
    for log, (before,) in ((ffmpeg_log, old[0]), (stubborn_log, old[1])):
        respawned = _pids(log)
        assert respawned[0] == before and len(respawned) == 2
        assert f"[{respawned[1]}]" in by_stream["7" if log == ffmpeg_log else "8"]["detail"]
        assert not psutil.pid_exists(before) or psutil.Process(before).status() == psutil.STATUS_ZOMBIE


def test_signal_runner_leaves_a_reused_or_foreign_pid_alone(procs: Callable[..., Proc]) -> None:
    sleeper = procs(["sleep", "30"])
    runner = SignalRunner(SignalAction(type="signal", grace=0.5, timeout=2), lambda proc, stream: False)
    outcome = runner.run(Target("7", "Seven", NODE, "restart", (sleeper.pid, 1, 999_999_999)), STOP)
    assert outcome.result == FAILED
    assert f"pid {sleeper.pid}: no longer this stream's process" in outcome.detail
    assert "pid 1: refused" in outcome.detail
    assert sleeper.alive()
    assert SignalRunner(SignalAction(type="signal"), lambda p, s: True).run(
        Target("7", "Seven", NODE, "restart", ()), STOP).result == FAILED  # down: nothing to signal


def test_belongs_to_stream_rereads_the_live_process_against_the_discovery_rules(procs: Callable[..., Proc]) -> None:
    """What the signal runner checks before it signals a pid: the process's name, command line and owner, read
    now, still give this stream under the rules the processes source found it with."""
    sleeper = procs(["sleep", "31"])
    live = psutil.Process(sleeper.pid)
    rule = Rule("sleep", compile_linear(r"^sleep (?P<stream>[0-9]+)$"))
    belongs = belongs_to_stream([rule])
    assert belongs(live, "31")
    assert not belongs(live, "32")  # another stream's pid (or a reused one) is left alone
    assert not belongs_to_stream([Rule("ffmpeg", rule.pattern)])(live, "31")  # another program
    stranger = frozenset({live.uids().real + 1})
    assert not belongs_to_stream([Rule("sleep", rule.pattern, uids=stranger)])(live, "31")  # an owner not allowed


class Panel(BaseHTTPRequestHandler):
    """Stand-in for PanelX's API: POST /api/streams/<id>/restart with its bearer token."""

    token = ""
    seen: list[dict[str, Any]] = []
    restart: Callable[[str], None] = staticmethod(lambda stream: None)
    no_restart = restart
    delay = 0.0
    status = 200

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        Panel.seen.append({"path": self.path, "headers": dict(self.headers)})
        time.sleep(Panel.delay)
        match = re.fullmatch(r"/api/streams/([^/]+)/restart", self.path.partition("?")[0])
        if self.headers.get("Authorization") != f"Bearer {Panel.token}" or match is None:
            self._answer(401, {"error": "unauthorized"})
            return
        if Panel.status == 200:
            Panel.restart(match.group(1))
        self._answer(Panel.status, {"ok": Panel.status == 200, "secret": "http://u:p@x/live/a/b/1.ts"})

    def _answer(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass  # quiet


@pytest.fixture
def panel() -> Iterator[str]:
    # Reset per test, restart included: a test's restart spawns ffmpeg into that test's ``procs``, and a later
    # test calling the panel must not start one that nobody stops.
    Panel.seen, Panel.delay, Panel.status = [], 0.0, 200
    Panel.restart = Panel.no_restart
    try:
        with http_server(Panel) as address:
            yield f"http://{address}"
    finally:
        Panel.restart = Panel.no_restart


def test_http_runner_restarts_through_the_panel_api(tmp_path: Path, panel: str, procs: Callable[..., Proc]) -> None:
    token = write_token(tmp_path / "token")
    Panel.token = write_token(tmp_path / "panel.token")
    (tmp_path / "headers.yml").write_text("X-Api-Key: k3y\n")
    playlist = tmp_path / "act_7.m3u8"
    current = [procs(ffmpeg_hls_argv(playlist))]

    def restart(stream: str) -> None:
        assert stream == "7"
        current[0].stop()
        current.append(procs(ffmpeg_hls_argv(playlist)))

    Panel.restart = staticmethod(restart)
    config = actions_config(tmp_path, {"type": "http", "url": panel + "/api/streams/{stream}/restart",
                                       "token_file": str(tmp_path / "panel.token"),
                                       "headers_file": str(tmp_path / "headers.yml"), "timeout": "5s"},
                            streams=[playlist_stream(tmp_path, "7")])
    with running(config) as (client, _, component):
        r = client.post("/hooks/alertmanager", json=notification(alert("7")),
                        headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        assert component.worker.wait_idle(30)
        (action,) = client.get("/api/actions", headers={"Authorization": f"Bearer {token}"}).json()["actions"]
    assert action["result"] == "ok", action
    assert action["command"] == f"POST {panel}/api/streams/7/restart"
    assert f"[{current[1].pid}]" in action["detail"]
    assert action["output"].startswith("HTTP 200") and "<redacted>" in action["output"]
    (request,) = Panel.seen
    assert request["headers"]["X-Api-Key"] == "k3y"


def test_http_runner_failures_timeouts_and_encoding(tmp_path: Path, panel: str) -> None:
    Panel.token = write_token(tmp_path / "panel.token")
    cfg = HttpAction(type="http", url=panel + "/api/streams/{stream}/restart?name={name}",
                     token_file=tmp_path / "panel.token", timeout=0.5)
    runner = HttpRunner(cfg, 4096)
    target = Target("7", "BBC One/&x=1", NODE, "restart")
    assert runner.url(target).endswith("/api/streams/7/restart?name=BBC%20One%2F%26x%3D1")
    Panel.status = 500
    outcome = runner.run(target, STOP)
    assert (outcome.result, outcome.detail, outcome.ran) == (FAILED, "HTTP 500", True)  # the panel got it
    Panel.status, Panel.delay = 200, 2.0
    outcome = runner.run(target, STOP)
    assert outcome.result == TIMEOUT and outcome.ran  # sent: it may have restarted, never again for this alert
    Panel.delay = 0.0
    sent = len(Panel.seen)
    (tmp_path / "panel.token").unlink()
    outcome = runner.run(target, STOP)
    assert outcome.result == FAILED and "cannot read" in outcome.detail and not outcome.ran
    assert len(Panel.seen) == sent  # no request without its token
    closed = HttpRunner(HttpAction(type="http", url=f"http://127.0.0.1:{free_port()}/restart/{{stream}}",
                                   timeout=0.5), 4096)
    outcome = closed.run(target, STOP)  # the panel's API is down: nothing ran, the alert's repeat tries again
    assert outcome.result == FAILED and "ConnectError" in outcome.detail and not outcome.ran


def _command(tmp: Path, *args: str, timeout: float = 10, limit: int = 4096) -> CommandRunner:
    return CommandRunner(CommandAction(type="command", argv=list(args), timeout=timeout), limit)


TARGET = Target("7", "Seven", NODE, "restart")


def test_command_runner_timeout_kills_the_process_group(tmp_path: Path) -> None:
    record = tmp_path / "r.jsonl"
    started = time.monotonic()
    outcome = _command(tmp_path, PYTHON, str(RECORD), str(record), "--sleep", "60", timeout=1).run(TARGET, STOP)
    assert outcome.result == TIMEOUT
    assert time.monotonic() - started < 10
    (rec,) = records(record)
    assert not psutil.pid_exists(rec["pid"])


def test_command_runner_output_exit_codes_and_missing_program(tmp_path: Path) -> None:
    record = str(tmp_path / "r.jsonl")
    outcome = _command(tmp_path, PYTHON, str(RECORD), record, "--spew", "100000", limit=256).run(TARGET, STOP)
    assert outcome.result == OK and outcome.exit_code == 0
    assert outcome.output.endswith("[output truncated at 256 bytes]")
    assert len(outcome.output) < 400
    assert "secret" not in outcome.output and "pa55" not in outcome.output
    outcome = _command(tmp_path, PYTHON, str(RECORD), record, "--exit", "3").run(TARGET, STOP)
    assert (outcome.result, outcome.detail, outcome.exit_code, outcome.ran) == (FAILED, "exit code 3", 3, True)
    outcome = _command(tmp_path, str(tmp_path / "no-such-program")).run(TARGET, STOP)
    assert outcome.result == FAILED and "cannot start" in outcome.detail and not outcome.ran


def test_command_runner_does_not_wait_for_detached_children(tmp_path: Path) -> None:
    code = "import subprocess, sys; p = subprocess.Popen(['sleep', '30']); print(p.pid)"
    started = time.monotonic()
    outcome = _command(tmp_path, PYTHON, "-c", code).run(TARGET, STOP)
    try:
        assert outcome.result == OK
        assert time.monotonic() - started < 5  # the child still holds our stdout: no waiting for its EOF
    finally:
        psutil.Process(int(outcome.output.split()[0])).kill()


def test_systemd_runner_argv(tmp_path: Path) -> None:
    record = tmp_path / "r.jsonl"
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(f"#!{sys.executable}\nimport runpy, sys\nsys.argv = [{str(RECORD)!r}, {str(record)!r},"
                         " *sys.argv[1:]]\nrunpy.run_path(sys.argv[0], run_name='__main__')\n")
    systemctl.chmod(0o755)
    runner = SystemdRunner(SystemdAction(type="systemd", unit="iptv-stream@{stream}.service",
                                         systemctl=str(systemctl)), 4096)
    assert runner.run(TARGET, STOP).result == OK
    assert records(record)[0]["argv"] == ["restart", "--", "iptv-stream@7.service"]
    bad = SystemdRunner(SystemdAction(type="systemd", unit="iptv@{node}.service"), 4096)
    with pytest.raises(ValueError, match="not a valid systemd unit name"):
        bad.argv(Target("7", "Seven", "edge 1; reboot", "restart"))
