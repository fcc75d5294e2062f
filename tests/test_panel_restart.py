"""Restarts through the panel's own API, logged in the way the panel wants it.

PanelX accepts ``POST /api/streams/:id/restart`` only with the session cookie that ``POST /api/auth/login`` sets
(server/routes.ts: ``requireAuth`` checks ``req.session.userId``); a bearer token gets 401. The panel is a stand-in
(tests/panelx_standin.py says why) that restarts a real ffmpeg started with PanelX's argv.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import pytest

from exporter.actions.policy import FAILED, OK
from exporter.actions.runners import HttpRunner, Target
from exporter.config import ConfigError, parse_config
from exporter.config.actions import HttpAction
from tests.helpers import Proc, ffmpeg_hls_argv, http_server, wait_until
from tests.panelx_standin import PanelX

pytestmark = pytest.mark.slow


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass
STOP = threading.Event()


@pytest.fixture
def source(tmp_path: Path) -> Iterator[str]:
    """An HLS origin: a real ffmpeg writing a test pattern, served over HTTP (PanelX restreams URLs)."""
    hls = tmp_path / "origin"
    hls.mkdir()
    ffmpeg = Proc(ffmpeg_hls_argv(hls / "index.m3u8"), log=tmp_path / "origin.log").start()
    handler = functools.partial(QuietFiles, directory=str(hls))
    try:
        wait_until(lambda: (hls / "index.m3u8").exists(), timeout=30, what="the origin's playlist")
        with http_server(handler) as address:  # type: ignore[arg-type]
            yield f"http://{address}/index.m3u8"
    finally:
        ffmpeg.stop()


@pytest.fixture
def panel(tmp_path: Path, source: str) -> Iterator[PanelX]:
    p = PanelX(tmp_path / "webapp", tmp_path / "logs", {"5": source}).serve()
    try:
        p.start_stream("5")
        yield p
    finally:
        p.close()


def _runner(tmp_path: Path, panel: PanelX, password: str = "adm1n-pa55", **extra: object) -> HttpRunner:
    creds = tmp_path / "panelx-login.yml"
    creds.write_text(f"username: admin\npassword: {password}\n")
    cfg = HttpAction.model_validate({
        "type": "http", "url": panel.url + "/api/streams/{stream}/restart", "timeout": "15s",
        "login": {"url": panel.url + "/api/auth/login", "credentials_file": str(creds)}, **extra})
    return HttpRunner(cfg, 4096)


def test_bearer_token_alone_gets_401_from_panelx(tmp_path: Path, panel: PanelX) -> None:
    """The README's old example (a bearer token) cannot restart anything on PanelX."""
    (tmp_path / "token").write_text("t0ken\n")
    runner = HttpRunner(HttpAction(type="http", url=panel.url + "/api/streams/{stream}/restart",
                                   token_file=tmp_path / "token"), 4096)
    outcome = runner.run(Target("5", "Five", "edge-1", "restart"), STOP)
    assert (outcome.result, outcome.detail) == (FAILED, "HTTP 401")
    assert "Not authenticated" in outcome.output
    assert panel.restarts == []


def test_login_session_and_relogin_restart_a_real_ffmpeg(tmp_path: Path, panel: PanelX) -> None:
    runner = _runner(tmp_path, panel)
    target = Target("5", "Five", "edge-1", "restart")
    first = panel.procs["5"]
    outcome = runner.run(target, STOP)
    assert outcome.result == OK, outcome
    assert panel.restarts == ["5"] and runner.logins == 1 and panel.logins == 1
    second = panel.procs["5"]
    assert first.poll() is not None and second.poll() is None and second.pid != first.pid
    wait_until(lambda: (panel.app / "streams" / "stream_5.m3u8").exists(), timeout=30, what="the restarted HLS")

    assert runner.run(target, STOP).result == OK  # the kept session: no new login
    assert runner.logins == 1 and panel.restarts == ["5", "5"]

    panel.restart_app()  # pm2 restarted PanelX: its in-memory sessions are gone, the next call gets 401
    assert runner.run(target, STOP).result == OK
    assert runner.logins == 2 and panel.restarts == ["5", "5", "5"]
    assert panel.procs["5"].poll() is None


def test_login_failures_say_why_and_never_show_the_password(tmp_path: Path, panel: PanelX) -> None:
    target = Target("5", "Five", "edge-1", "restart")
    outcome = _runner(tmp_path, panel, password="wr0ng-pa55").run(target, STOP)
    assert outcome.result == FAILED and outcome.detail == f"login to {panel.url}/api/auth/login failed: HTTP 401"
    assert outcome.ran is False  # the restart was never asked for: Alertmanager's repeat may try again
    runner = _runner(tmp_path, panel)
    (tmp_path / "panelx-login.yml").write_text("username: admin\n")
    outcome = runner.run(target, STOP)
    assert outcome.result == FAILED and "expected a mapping with username: and password:" in outcome.detail
    assert "pa55" not in outcome.detail + outcome.output
    panel.two_factor.add("admin")  # a 200 that is no login: said so, not retried as a restart
    outcome = _runner(tmp_path, panel).run(target, STOP)
    assert outcome.result == FAILED and "two-factor" in outcome.detail
    assert panel.restarts == []


def test_login_config_is_checked() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"actions": {"dry_run": True, "restart": {
            "type": "http", "url": "http://127.0.0.1:5000/api/streams/{stream}/restart",
            "login": {"url": "http://127.0.0.1:5000/api/auth/{stream}", "credentials_file": "/x", "colour": 1}}}})
    text = str(err.value)
    assert "actions.restart.http.login.url: the login url is fixed" in text
    assert "actions.restart.http.login.colour: unknown key" in text
