"""Chaos: the exporter stops while restarts wait for a free worker (issue 15, item 4).

A real exporter with one worker gets four alerts in one notification; the restart command (a script that
records its argv, then sleeps) holds the worker, so three wait. The exporter is stopped (SIGTERM, as systemd
does, and SIGKILL, as the OOM killer does), started again on the same journal, and Alertmanager's repeat of
the same notification arrives. Dedup must hold only for the restart that ran: the three that never started
run now, and every stream is restarted exactly once.
"""

from __future__ import annotations

import contextlib
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.actions_support import (
    PYTHON,
    RECORD,
    actions_config,
    alert,
    journal,
    notification,
    records,
    write_config,
    write_token,
)
from tests.faultfs import ext4, immutable
from tests.helpers import Exporter, wait_until

pytestmark = pytest.mark.slow

STREAMS = ("1", "2", "3", "4")


def _config(tmp: Path, name: str, *, sleep: float, workers: int) -> Path:
    data = actions_config(
        tmp, {"type": "command", "argv": [PYTHON, str(RECORD), str(tmp / "record.jsonl"), "--sleep", str(sleep),
                                          "{stream}"], "timeout": "60s"},
        streams=[{"id": s, "name": f"Stream {s}"} for s in STREAMS], verify_timeout="1s", cooldown="1h",
        max_concurrent=workers,
    )
    return write_config(tmp / name, data)


def _post(exp: Exporter, token: str, body: dict[str, Any]) -> int:
    return httpx.post(exp.url + "/hooks/alertmanager", json=body, headers={"Authorization": f"Bearer {token}"},
                      timeout=10).status_code


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_restarts_waiting_for_a_worker_run_after_a_stop_exactly_once(
    tmp_path: Path, exporter: Callable[..., Exporter], sig: signal.Signals
) -> None:
    token = write_token(tmp_path / "token")
    body = notification(*(alert(s) for s in STREAMS))
    exp = exporter(_config(tmp_path, "slow.yml", sleep=4, workers=1))
    assert _post(exp, token, body) == 200
    wait_until(lambda: len(records(tmp_path / "record.jsonl")) == 1, timeout=30,
               what="the first restart running, the other three waiting for the worker")
    assert exp.proc is not None
    exp.proc.signal(sig)
    exp.proc.popen.wait(60)
    (first,) = [r["argv"][-1] for r in records(tmp_path / "record.jsonl")]

    exp = exporter(_config(tmp_path, "fast.yml", sleep=0, workers=4))
    wait_until(lambda: _post(exp, token, body) == 200, timeout=20, what="Alertmanager's repeat accepted")

    def settled() -> dict[str, Any] | None:
        story = journal(exp.url, token, limit="100")
        return story if len(story["decisions"]) >= 8 and all(a["result"] for a in story["actions"]) else None

    story = wait_until(settled, timeout=60, what="the repeat decided and every action finished")
    ran = Counter(r["argv"][-1] for r in records(tmp_path / "record.jsonl"))
    assert ran == Counter(STREAMS), ran  # every stream once: none lost, none twice
    repeat = {d["stream"]: d["result"] for d in story["decisions"][:4]}
    assert repeat == {s: "skipped_duplicate" if s == first else "accepted" for s in STREAMS}, repeat
    never = [a for a in story["actions"] if a["started_at"] is None and not a["dry_run"]]
    assert {a["stream"] for a in never} == set(STREAMS) - {first}
    assert {a["result"] for a in never} == {"not_started"}, never


def _story(exp: Exporter, token: str) -> dict[str, Any]:
    return journal(exp.url, token, limit="100")


def _finished(exp: Exporter, token: str, stream: str) -> list[dict[str, Any]]:
    """The stream's actions that have an outcome, newest first."""
    return [a for a in _story(exp, token)["actions"] if a["stream"] == stream and a["result"]]


@pytest.mark.parametrize("cause", ["missing_program", "unwritable_tmpdir"])
def test_a_restart_that_could_not_start_runs_on_the_repeat(
    tmp_path: Path, exporter: Callable[..., Exporter], monkeypatch: pytest.MonkeyPatch, cause: str
) -> None:
    """The restart command could not be started (its program missing while the panel reinstalls it; the
    temporary directory for its output unwritable): nothing ran, so the alert is no dedup key and
    Alertmanager's repeat runs it once the cause is gone. Before, the alert was a duplicate forever."""
    token = write_token(tmp_path / "token")
    script = tmp_path / "restart.sh"
    data = actions_config(
        tmp_path, {"type": "command", "argv": [str(script), "{stream}"], "timeout": "30s"},
        streams=[{"id": s, "name": f"Stream {s}"} for s in STREAMS], verify_timeout="1s", cooldown="1h",
    )
    script_text = f"#!/bin/sh\nexec {PYTHON} {RECORD} {tmp_path / 'record.jsonl'} \"$@\"\n"
    fault: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    with contextlib.ExitStack() as stack:
        if cause == "unwritable_tmpdir":
            fs = stack.enter_context(ext4(tmp_path))
            tmpdir = fs / "tmp"
            tmpdir.mkdir()
            monkeypatch.setenv("TMPDIR", str(tmpdir))  # the exporter's, from its start
            script.write_text(script_text)
            script.chmod(0o755)
            fault = immutable([tmpdir])
        exp = exporter(write_config(tmp_path / "config.yml", data))
        if cause == "unwritable_tmpdir":  # a first restart works (and fixes the exporter's temporary directory)
            assert _post(exp, token, notification(alert("1"))) == 200
            wait_until(lambda: [r["argv"] for r in records(tmp_path / "record.jsonl")] == [["1"]], timeout=30,
                       what="a first restart")
        down = notification(alert("2"))
        with fault:
            assert _post(exp, token, down) == 200
            failed = wait_until(lambda: _finished(exp, token, "2"), timeout=30, what="the restart that could not start")
            assert failed[0]["result"] == "failed", failed
        if cause == "missing_program":
            script.write_text(script_text)
            script.chmod(0o755)
        assert _post(exp, token, down) == 200  # Alertmanager's repeat
        wait_until(lambda: any(r["argv"] == ["2"] for r in records(tmp_path / "record.jsonl")), timeout=30,
                   what="the repeat running the restart")
        wait_until(lambda: len(_finished(exp, token, "2")) == 2, timeout=30, what="its outcome")
        story = _story(exp, token)
        assert [d["result"] for d in story["decisions"] if d["stream"] == "2"] == ["accepted", "accepted"]
        assert _post(exp, token, down) == 200  # and the next repeat is a duplicate: it ran
        wait_until(lambda: [d["result"] for d in _story(exp, token)["decisions"] if d["stream"] == "2"][0]
                   == "skipped_duplicate", timeout=20, what="the next repeat decided")
        assert [r["argv"] for r in records(tmp_path / "record.jsonl")].count(["2"]) == 1
        first = _finished(exp, token, "2")[-1]
        assert "cannot start" in first["detail"] and "nothing ran" in first["detail"], first
        assert first["started_at"] is None  # not a dedup key after a restart of the exporter either
        exp.stop()
