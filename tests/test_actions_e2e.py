"""End to end with real parts: Alertmanager (alone and as an HA pair) posting to the real exporter process,
which restarts a real ffmpeg through the command runner and verifies it came back.

Every process the tests start is on loopback and stopped at teardown; the ffmpeg that a restart detached
is found by its (per-test) playlist path and killed.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.actions_support import (
    NODE,
    PYTHON,
    RECORD,
    SPAWN,
    Alertmanager,
    actions_config,
    alert,
    alertmanagers,
    journal,
    kill_matching,
    notification,
    playlist_stream,
    records,
    write_config,
    write_token,
)
from tests.helpers import REPO, Exporter, Proc, ffmpeg_hls_argv, metric, wait_until
from tests.rules_config import alertmanager_config

pytestmark = pytest.mark.slow


@pytest.fixture
def cleanup(tmp_path: Path) -> Iterator[list[Alertmanager]]:
    started: list[Alertmanager] = []
    yield started
    for am in started:
        am.stop()
    kill_matching(str(tmp_path / "act_"))  # ffmpegs a restart started detached


def _story(exp: Exporter, token: str, check: Callable[[dict[str, Any]], bool], **params: str) -> Callable[[], Any]:
    """For wait_until: the journal once ``check`` holds for it."""
    def poll() -> dict[str, Any] | None:
        story = journal(exp.url, token, **params)
        return story if check(story) else None
    return poll


def _up(exp: Exporter, stream: str) -> float | None:
    return metric(exp.scrape(), "iptv_stream_up", stream=stream)


def _am_config(tmp: Path, exp: Exporter) -> str:
    return alertmanager_config({NODE: exp.url + "/hooks/alertmanager"}, tmp / "token",
                               group_wait="0s", group_interval="1s", repeat_interval="2s")


def test_alertmanager_webhook_restarts_a_killed_stream(
    tmp_path: Path, exporter: Callable[..., Exporter], procs: Callable[..., Proc], cleanup: list[Alertmanager]
) -> None:
    token = write_token(tmp_path / "token")
    config = actions_config(
        tmp_path, {"type": "command", "argv": [PYTHON, str(SPAWN), str(tmp_path), "{stream}"], "timeout": "10s"},
        streams=[playlist_stream(tmp_path, "7")], cooldown="10m",
    )
    ffmpeg = procs(ffmpeg_hls_argv(tmp_path / "act_7.m3u8"), log=tmp_path / "ffmpeg.log")
    exp = exporter(write_config(tmp_path / "config.yml", config))
    wait_until(lambda: _up(exp, "7") == 1, timeout=20, what="stream 7 up")
    ffmpeg.signal(signal.SIGKILL)
    wait_until(lambda: _up(exp, "7") == 0, timeout=20, what="stream 7 down after kill")

    am = Alertmanager(tmp_path, _am_config(tmp_path, exp))
    cleanup.append(am.start())
    am.post(alert("7"))

    wait_until(lambda: _up(exp, "7") == 1, timeout=40, what="stream 7 restarted by the webhook")
    story = wait_until(_story(exp, token, lambda j: bool(j["actions"]) and bool(j["actions"][0]["result"])),
                       timeout=30, what="action outcome in the journal")
    (action,) = story["actions"]
    assert action["result"] == "ok", action
    assert "new process" in action["detail"]
    assert "started ffmpeg pid" in action["output"]
    (spawned,) = (tmp_path / "spawned.log").read_text().split()
    assert f"[{spawned}]" in action["detail"]  # verified on the process the restart started

    # Alertmanager repeats the still-firing alert: acknowledged, recorded, nothing runs again.
    story = wait_until(_story(exp, token, lambda j: any(d["result"] == "skipped_duplicate" for d in j["decisions"])),
                       timeout=30, what="a repeated notification")
    assert len(story["actions"]) == 1
    assert len(story["notifications"]) >= 2
    first = story["decisions"][-1]
    assert (first["result"], first["stream"], first["action"], first["node"]) == ("accepted", "7", "restart", NODE)
    assert first["action_id"] == action["id"]
    assert len((tmp_path / "spawned.log").read_text().split()) == 1
    samples = exp.scrape()
    assert metric(samples, "iptv_actions_total", stream="7", action="restart", result="ok") == 1
    assert (metric(samples, "iptv_actions_total", stream="7", action="restart", result="skipped_duplicate") or 0) >= 1
    assert metric(samples, "iptv_action_duration_seconds_count", action="restart") == 1
    assert metric(samples, "iptv_restart_circuit_open", stream="7") == 0
    assert (metric(samples, "iptv_webhook_requests_total", code="200") or 0) >= 2


def _recorder_config(tmp: Path, **actions: Any) -> dict[str, Any]:
    return actions_config(
        tmp, {"type": "command", "argv": [PYTHON, str(RECORD), str(tmp / "record.jsonl"), "{stream}"]},
        streams=[{"id": "7", "name": "Seven"}], verify_timeout="1s", **actions,
    )


def test_an_alertmanager_ha_pair_causes_one_action(
    tmp_path: Path, exporter: Callable[..., Exporter], cleanup: list[Alertmanager]
) -> None:
    token = write_token(tmp_path / "token")
    exp = exporter(write_config(tmp_path / "config.yml", _recorder_config(tmp_path, cooldown="1ms")))
    # A short peer timeout makes the second peer send before it hears of the first's notification, as
    # after a restart or a split: the receiver gets true twins, not only repeats.
    args = ["--cluster.gossip-interval=50ms", "--cluster.peer-timeout=10ms", "--cluster.settle-timeout=5s"]
    for am in alertmanagers(tmp_path, _am_config(tmp_path, exp), 2, args=args):
        cleanup.append(am)
    same = alert("7")  # same labels and startsAt on both, as Prometheus sends them to every Alertmanager
    for am in cleanup:
        am.post(same)
    wait_until(_story(exp, token, lambda j: len({n["external_url"] for n in j["notifications"]}) == 2), timeout=40,
               what="notifications from both Alertmanagers of the pair")
    story = wait_until(_story(exp, token, lambda j: all(a["result"] for a in j["actions"])), timeout=20,
                       what="the action's outcome")
    assert len(story["actions"]) == 1
    assert len(records(tmp_path / "record.jsonl")) == 1
    results = [d["result"] for d in story["decisions"]]
    assert results.count("accepted") == 1
    assert set(results) == {"accepted", "skipped_duplicate"}


def test_restarted_exporter_remembers_cooldown_dedup_and_budget(
    tmp_path: Path, exporter: Callable[..., Exporter]
) -> None:
    token = write_token(tmp_path / "token")
    path = write_config(tmp_path / "config.yml", _recorder_config(tmp_path, cooldown="1h",
                                                                  budget={"max": 3, "window": "1h"}))
    headers = {"Authorization": f"Bearer {token}"}
    exp = exporter(path)
    first = alert("7")
    assert httpx.post(exp.url + "/hooks/alertmanager", json=notification(first), headers=headers).status_code == 200
    wait_until(_story(exp, token, lambda j: bool(j["actions"]) and bool(j["actions"][0]["result"])), timeout=20,
               what="first action's outcome")
    exp.stop()

    exp = exporter(path)  # same journal: mid-cooldown
    assert journal(exp.url, token, stream="7")["circuits"][0]["used"] == 1  # budget restored
    second = alert("7")  # a new alert for the same stream: cooldown
    for a in (second, first):  # and the first one again: duplicate
        assert httpx.post(exp.url + "/hooks/alertmanager", json=notification(a), headers=headers).status_code == 200
    story = wait_until(_story(exp, token, lambda j: len(j["decisions"]) == 3), timeout=20,
                       what="decisions after the restart")
    assert [d["result"] for d in story["decisions"]] == ["skipped_duplicate", "skipped_cooldown", "accepted"]
    assert len(story["actions"]) == 1
    assert len(records(tmp_path / "record.jsonl")) == 1
    samples = exp.scrape()
    assert metric(samples, "iptv_actions_total", stream="7", action="restart", result="skipped_cooldown") == 1


def test_body_past_the_limit_is_refused_without_reading_it(tmp_path: Path, exporter: Callable[..., Exporter]) -> None:
    token = write_token(tmp_path / "token")
    exp = exporter(write_config(tmp_path / "config.yml", _recorder_config(tmp_path, body_limit=4096)))
    with socket.create_connection(("127.0.0.1", exp.port), timeout=10) as sock:
        sock.sendall(b"POST /hooks/alertmanager HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     b"Content-Type: application/json\r\nAuthorization: Bearer " + token.encode() + b"\r\n\r\n")
        chunk = b"x" * 1024
        for _ in range(8):  # 8 KiB of a body that never ends: the answer must come anyway
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    r = httpx.post(exp.url + "/hooks/alertmanager", content=b"x" * 5000, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 413
    assert not (tmp_path / "record.jsonl").exists()


def test_exporter_refuses_to_start_without_the_token_file(tmp_path: Path) -> None:
    path = write_config(tmp_path / "config.yml", _recorder_config(tmp_path))
    run = subprocess.run([sys.executable, "-m", "exporter", f"--config.file={path}",
                          "--web.listen-address=127.0.0.1:1"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert f"actions.token_file: {tmp_path / 'token'}: does not exist" in run.stderr
