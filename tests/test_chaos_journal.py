"""Chaos: the action journal fails under a running exporter (issue 15, items 3 and 5, and their kin).

Each test runs the real exporter process with its journal on a real filesystem that really fails: a small
loop-mounted ext4 that fills up, files made immutable with ``chattr +i`` (root cannot write them either),
pages overwritten with garbage, a second exporter holding the file. The restart command is a script that
records its argv, so "exactly once" is counted on what really ran. Alertmanager is played by posting its v4
payload (the same notification again is its repeat; posting until 200 is its retry after a 503).

What must hold: state (dedup, cooldown, budget) changes only with a durable journal write; a notification
that could not be journalled is acted on when it comes again; a journal that fails stops the actions (503
with the reason, ``iptv_actions_journal_up 0``, one log line), never the exporter and never /metrics.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.actions_support import (
    NODE,
    PYTHON,
    RECORD,
    Alertmanager,
    actions_config,
    alert,
    journal,
    notification,
    records,
    write_config,
    write_token,
)
from tests.faultfs import corrupt, ext4, fill, immutable
from tests.helpers import Exporter, metric, wait_until
from tests.rules_config import alertmanager_config

pytestmark = pytest.mark.slow


@pytest.fixture
def fs(tmp_path: Path) -> Iterator[Path]:
    with ext4(tmp_path) as mnt:
        yield mnt


def _config(tmp: Path, journal_path: Path, **actions: Any) -> Path:
    data = actions_config(
        tmp, {"type": "command", "argv": [PYTHON, str(RECORD), str(tmp / "record.jsonl"), "{stream}"]},
        streams=[{"id": s, "name": f"Stream {s}"} for s in ("7", "8", "9")], verify_timeout="1s",
        cooldown=actions.pop("cooldown", "1h"), budget=actions.pop("budget", {"max": 5, "window": "1h"}), **actions,
    )
    data["actions"]["journal"] = str(journal_path)
    return write_config(tmp / f"config-{journal_path.parent.name}-{time.monotonic_ns()}.yml", data)


def _post(exp: Exporter, token: str, *alerts: Mapping[str, Any]) -> httpx.Response:
    try:
        return httpx.post(exp.url + "/hooks/alertmanager", json=notification(*alerts),
                          headers={"Authorization": f"Bearer {token}"}, timeout=10)
    except httpx.TransportError:
        _alive(exp)  # a dead exporter says so, with its exit status (-7: SIGBUS)
        raise


def _post_until_accepted(exp: Exporter, token: str, *alerts: Mapping[str, Any], timeout: float = 30) -> None:
    """Alertmanager's retry: the same notification again until it is answered 200."""
    wait_until(lambda: _alive(exp) and _post(exp, token, *alerts).status_code == 200, timeout=timeout,
               what="the notification accepted (200)")


def _alive(exp: Exporter) -> bool:
    if exp.proc is None or not exp.proc.alive():
        code = exp.proc.popen.wait(5) if exp.proc is not None else None
        raise AssertionError(f"the exporter died (exit {code}): {exp.log_text()[-3000:]}")
    return True


def _journal_up(exp: Exporter) -> float | None:
    _alive(exp)
    return metric(exp.scrape(), "iptv_actions_journal_up")


def _ran(tmp: Path) -> list[str]:
    """Streams the restart command ran for, in order."""
    return [r["argv"][-1] for r in records(tmp / "record.jsonl")]


def _settled(exp: Exporter, token: str, count: int) -> Callable[[], dict[str, Any] | None]:
    """For wait_until: the journal once ``count`` actions have their outcome."""
    def poll() -> dict[str, Any] | None:
        story = journal(exp.url, token)
        done = [a for a in story["actions"] if a["result"]]
        return story if len(done) >= count else None
    return poll


def _big(stream: str) -> dict[str, Any]:
    """An alert whose notification needs new journal pages (the body excerpt is kept, up to 16 KiB)."""
    a = alert(stream)
    a["annotations"]["description"] = "stream is down; " * 800
    return a


def test_a_failed_journal_write_changes_no_state_and_the_repeat_acts(
    tmp_path: Path, fs: Path, exporter: Callable[..., Exporter]
) -> None:
    """Item 3: disk full at the write. Nothing ran, so nothing is remembered: the repeat runs it, once."""
    token = write_token(tmp_path / "token")
    exp = exporter(_config(tmp_path, fs / "journal.sqlite"))
    filler = fill(fs)
    down = _big("7")
    assert _post(exp, token, down).status_code == 200  # queued before the write: Alertmanager's repeat covers it
    wait_until(lambda: "journal" in exp.log_text() and "write failed" in exp.log_text(), timeout=20,
               what="the failed journal write logged")
    api = httpx.get(exp.url + "/api/actions", params={"stream": "7"}, headers={"Authorization": f"Bearer {token}"},
                    timeout=10)
    assert api.json()["circuits"][0]["used"] == 0, api.text  # no budget spent on what never ran
    assert api.status_code == 503 and "disk is full" in api.json()["error"], api.text
    assert _journal_up(exp) == 0
    assert _ran(tmp_path) == []

    filler.unlink()
    _post_until_accepted(exp, token, down)  # the repeat
    story = wait_until(_settled(exp, token, 1), timeout=30, what="the repeat's action finished")
    assert [d["result"] for d in story["decisions"]] == ["accepted"]
    assert _ran(tmp_path) == ["7"]
    assert _journal_up(exp) == 1
    assert _post(exp, token, down).status_code == 200  # and again: now it is a duplicate
    wait_until(lambda: len(journal(exp.url, token)["decisions"]) == 2, timeout=20, what="the second repeat decided")
    assert journal(exp.url, token)["decisions"][0]["result"] == "skipped_duplicate"
    assert _ran(tmp_path) == ["7"]


def test_journal_on_a_full_disk_at_start(tmp_path: Path, fs: Path, exporter: Callable[..., Exporter]) -> None:
    """Its directory cannot even be created: the exporter serves metrics, refuses actions, recovers by itself."""
    token = write_token(tmp_path / "token")
    filler = fill(fs)
    exp = exporter(_config(tmp_path, fs / "state" / "journal.sqlite"))
    assert _journal_up(exp) == 0
    assert metric(exp.scrape(), "iptv_exporter_build_info") == 1
    refused = _post(exp, token, alert("7"))
    assert refused.status_code == 503 and "journal" in refused.json()["error"], refused.text
    assert "Traceback" not in exp.log_text()
    assert _ran(tmp_path) == []

    filler.unlink()
    down = alert("7")
    _post_until_accepted(exp, token, down)
    wait_until(_settled(exp, token, 1), timeout=30, what="the action after the disk had room again")
    assert _ran(tmp_path) == ["7"]
    assert _journal_up(exp) == 1


def test_journal_made_immutable_while_running(tmp_path: Path, fs: Path, exporter: Callable[..., Exporter]) -> None:
    """Item 5: SQLite's shared-memory file, mapped into the process, turned unwritable -> SIGBUS on old code."""
    token = write_token(tmp_path / "token")
    path = fs / "journal.sqlite"
    exp = exporter(_config(tmp_path, path))
    assert _post(exp, token, alert("7")).status_code == 200
    wait_until(_settled(exp, token, 1), timeout=30, what="a first action, journalled")
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"), fs]
    eight = _big("8")
    with immutable(files):
        answer = _post(exp, token, eight)
        assert answer.status_code in (200, 503), answer.text  # 200: queued before the write was tried
        wait_until(lambda: _journal_up(exp) == 0, timeout=20, what="iptv_actions_journal_up 0")
        refused = _post(exp, token, eight)
        assert refused.status_code == 503, refused.text
        assert "journal" in refused.json()["error"]
        api = httpx.get(exp.url + "/api/actions", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert api.status_code in (200, 503), api.text  # never 500
        for _ in range(3):
            assert _alive(exp) and exp.scrape()  # /metrics keeps serving
        log = exp.log_text()
        assert "action journal unusable" in log and str(path) in log, log[-2000:]
        assert _ran(tmp_path) == ["7"]
    _post_until_accepted(exp, token, eight)
    wait_until(_settled(exp, token, 2), timeout=30, what="the action once the journal was writable again")
    assert _ran(tmp_path) == ["7", "8"]
    assert _journal_up(exp) == 1


def test_shared_memory_index_made_immutable_is_no_sigbus(
    tmp_path: Path, fs: Path, exporter: Callable[..., Exporter]
) -> None:
    """Item 5, the SIGBUS itself: SQLite's WAL index (``-shm``) is a file mapped into the process; made
    immutable, the next write to the mapping killed the old exporter with SIGBUS. The journal now keeps that
    index in its own memory (exclusive locking, mmap off): there is no mapped file left to fail."""
    token = write_token(tmp_path / "token")
    path = fs / "journal.sqlite"
    exp = exporter(_config(tmp_path, path))
    assert _post(exp, token, alert("7")).status_code == 200
    wait_until(_settled(exp, token, 1), timeout=30, what="a first action, journalled")
    with immutable([path, path.with_name(path.name + "-shm")]):
        answers = [_post(exp, token, alert(s)).status_code for s in ("8", "9")]
        wait_until(lambda: _alive(exp) and len(journal(exp.url, token)["decisions"]) >= 3, timeout=20,
                   what="the two alerts decided")
        for _ in range(3):
            assert _alive(exp) and exp.scrape()
    assert answers == [200, 200]
    wait_until(_settled(exp, token, 3), timeout=30, what="their actions (the WAL takes the writes)")
    assert sorted(_ran(tmp_path)) == ["7", "8", "9"]
    assert _journal_up(exp) == 1


def _journal_with_history(tmp: Path, exporter: Callable[..., Exporter], token: str, path: Path) -> None:
    """A journal written by a real exporter: three actions, their notifications and decisions."""
    exp = exporter(_config(tmp, path))
    for stream in ("7", "8", "9"):
        assert _post(exp, token, _big(stream)).status_code == 200
    wait_until(_settled(exp, token, 3), timeout=40, what="three actions journalled")
    exp.stop()


def test_corrupt_journal_at_start_is_one_clear_line_and_metrics_keep_serving(
    tmp_path: Path, exporter: Callable[..., Exporter]
) -> None:
    """Item 5: old code exited 3 with a uvicorn traceback. Now: one error line, actions refused, /metrics up;
    once the operator moves the file aside, a fresh journal is created and actions resume."""
    token = write_token(tmp_path / "token")
    path = tmp_path / "state" / "journal.sqlite"
    _journal_with_history(tmp_path, exporter, token, path)
    corrupt(path)
    exp = exporter(_config(tmp_path, path))
    assert _journal_up(exp) == 0
    log = exp.log_text()
    assert "Traceback" not in log, log[-3000:]
    lines = [line for line in log.splitlines() if "action journal unusable" in line]
    assert len(lines) == 1 and str(path) in lines[0] and "corrupt" in lines[0], lines
    api = httpx.get(exp.url + "/api/actions", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert api.status_code == 503 and "journal" in api.json()["error"], api.text
    refused = _post(exp, token, alert("7"))
    assert refused.status_code == 503 and "corrupt" in refused.json()["error"], refused.text
    ran_before = _ran(tmp_path)

    path.rename(path.with_name("journal.sqlite.bad"))  # what the log line tells the operator to do
    _post_until_accepted(exp, token, alert("7"))
    wait_until(_settled(exp, token, 1), timeout=30, what="an action on the fresh journal")
    assert _ran(tmp_path) == [*ran_before, "7"]
    assert _journal_up(exp) == 1


def test_corrupt_journal_at_run_time_stops_actions_not_the_api(
    tmp_path: Path, exporter: Callable[..., Exporter]
) -> None:
    """Item 5: pages turned to garbage under a running exporter. The corruption shows when SQLite reads a page
    it has not cached (an API read of old rows here): from then on actions are refused with 503 and the API
    answers 503 with the reason, never 500; /metrics keeps serving."""
    token = write_token(tmp_path / "token")
    path = tmp_path / "journal.sqlite"
    _journal_with_history(tmp_path, exporter, token, path)
    _grow(path, notifications=1500)  # larger than SQLite's page cache: old pages are read from the file
    exp = exporter(_config(tmp_path, path))
    corrupt(path)
    headers = {"Authorization": f"Bearer {token}"}
    api = httpx.get(exp.url + "/api/actions", params={"limit": "1000"}, headers=headers, timeout=30)
    assert api.status_code == 503 and "corrupt" in api.json()["error"], api.text[:500]
    assert _journal_up(exp) == 0
    refused = _post(exp, token, alert("7"))
    assert refused.status_code == 503, refused.text
    assert exp.scrape() and _alive(exp)
    assert "Traceback" not in exp.log_text()


def _grow(path: Path, notifications: int) -> None:
    """Add old notifications with large bodies (what months of alerts leave behind) to a stopped journal."""
    body = "x" * 16000
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany(
            "INSERT INTO notifications (received_at, receiver, external_url, status, group_key, alerts,"
            " truncated_alerts, body) VALUES (?, 'r', 'http://am:9093', 'firing', '{}', 1, 0, ?)",
            [(time.time() - 3600, body) for _ in range(notifications)],
        )
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def test_two_exporters_on_one_journal_never_both_act(tmp_path: Path, exporter: Callable[..., Exporter]) -> None:
    """Two exporters given the same journal file (a copied config, an overlapping restart) each kept their own
    dedup and both restarted the same alert. The journal is now held by one process; the other refuses
    actions (503) until it can have it, then takes over the same memory."""
    token = write_token(tmp_path / "token")
    path = tmp_path / "journal.sqlite"
    first = exporter(_config(tmp_path, path))
    second = exporter(_config(tmp_path, path))
    down = alert("7")
    assert _post(first, token, down).status_code == 200
    wait_until(_settled(first, token, 1), timeout=30, what="the first exporter's action")
    refused = _post(second, token, down)
    assert refused.status_code == 503 and "another process" in refused.json()["error"], refused.text
    assert _journal_up(second) == 0 and _journal_up(first) == 1
    assert _ran(tmp_path) == ["7"]

    first.stop()
    _post_until_accepted(second, token, down)  # the repeat, now to the exporter that holds the journal
    wait_until(lambda: any(d["result"] == "skipped_duplicate" for d in journal(second.url, token)["decisions"]),
               timeout=30, what="the repeat recognised as already acted on")
    assert _ran(tmp_path) == ["7"]
    assert _journal_up(second) == 1


def test_clock_stepped_back_does_not_stretch_the_cooldown(tmp_path: Path, exporter: Callable[..., Exporter]) -> None:
    """A journal written while the clock was a day ahead (then NTP stepped it back): the cooldown runs from now,
    not for a day; the budget window likewise."""
    token = write_token(tmp_path / "token")
    path = tmp_path / "journal.sqlite"
    exp = exporter(_config(tmp_path, path, cooldown="2s"))
    assert _post(exp, token, alert("7")).status_code == 200
    wait_until(_settled(exp, token, 1), timeout=30, what="a first action")
    exp.stop()
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE actions SET decided_at = decided_at + 86400, started_at = started_at + 86400,"
                     " finished_at = finished_at + 86400")
    exp = exporter(_config(tmp_path, path, cooldown="2s"))
    again = alert("7")  # a new alert for the same stream

    def acted() -> bool:
        assert _post(exp, token, again).status_code == 200
        return [d["result"] for d in journal(exp.url, token)["decisions"]].count("accepted") == 2

    wait_until(acted, timeout=20, interval=0.5, what="the new alert acted on once the 2 s cooldown passed")
    wait_until(_settled(exp, token, 2), timeout=30, what="its outcome")
    assert _ran(tmp_path) == ["7", "7"]


def test_journal_deleted_while_running_is_recreated_not_written_into_the_void(
    tmp_path: Path, exporter: Callable[..., Exporter]
) -> None:
    """``rm`` of the journal under a running exporter: SQLite would go on writing into the deleted file, and
    the next start would have forgotten every action since (so their repeats would run twice). The exporter
    notices at its next write, creates the journal again, and keeps what it remembers in memory."""
    token = write_token(tmp_path / "token")
    path = tmp_path / "journal.sqlite"
    config = _config(tmp_path, path)
    exp = exporter(config)
    seven, eight = alert("7"), alert("8")
    assert _post(exp, token, seven).status_code == 200
    wait_until(_settled(exp, token, 1), timeout=30, what="a first action")
    for leftover in tmp_path.glob("journal.sqlite*"):
        leftover.unlink()
    _post_until_accepted(exp, token, eight)
    wait_until(_settled(exp, token, 1), timeout=30, what="the next action, in a journal the path names")
    assert path.exists()
    assert _post(exp, token, seven).status_code == 200  # the repeat of the first: still a duplicate (memory)
    wait_until(lambda: len(journal(exp.url, token)["decisions"]) == 2, timeout=20, what="the repeat decided")
    assert journal(exp.url, token)["decisions"][0]["result"] == "skipped_duplicate"
    exp.stop()

    exp = exporter(config)  # what survives a restart: the action taken after the deletion
    _post_until_accepted(exp, token, eight)
    wait_until(lambda: any(d["result"] == "skipped_duplicate" for d in journal(exp.url, token)["decisions"]),
               timeout=20, what="the repeat of the second alert after a restart")
    assert sorted(_ran(tmp_path)) == ["7", "8"]


def test_disk_full_while_actions_run_and_wait_loses_no_outcome_and_no_restart(
    tmp_path: Path, fs: Path, exporter: Callable[..., Exporter]
) -> None:
    """The disk fills while one restart runs and another waits for the only worker: the running one's outcome
    is written once the disk has room, the waiting one never starts (its start cannot be journalled), is
    recorded not_started, and runs on Alertmanager's repeat. Each stream restarted exactly once."""
    token = write_token(tmp_path / "token")
    data = actions_config(
        tmp_path, {"type": "command", "argv": [PYTHON, str(RECORD), str(tmp_path / "record.jsonl"), "--sleep", "3",
                                               "{stream}"], "timeout": "30s"},
        streams=[{"id": s, "name": f"Stream {s}"} for s in ("7", "8")], verify_timeout="1s", cooldown="1h",
        max_concurrent=1,
    )
    data["actions"]["journal"] = str(fs / "journal.sqlite")
    exp = exporter(write_config(tmp_path / "config.yml", data))
    both = (_big("7"), _big("8"))
    assert _post(exp, token, *both).status_code == 200
    wait_until(lambda: len(_ran(tmp_path)) == 1, timeout=30, what="the first restart running, the second waiting")
    filler = fill(fs)

    def both_over() -> bool:
        _alive(exp)
        samples = exp.scrape()
        over = sum(v for (name, labels), v in samples.items() if name == "iptv_actions_total"
                   and dict(labels)["result"] in {"ok", "failed", "timeout", "interrupted", "not_started"})
        return over == 2 and metric(samples, "iptv_actions_in_progress") == 0

    wait_until(both_over, timeout=30, what="the first restart over and the second given up, on the full disk")
    filler.unlink()
    story = wait_until(_settled(exp, token, 2), timeout=30, what="both outcomes written once the disk had room")
    results = {a["stream"]: a for a in story["actions"]}
    (first,) = _ran(tmp_path)
    second = "8" if first == "7" else "7"
    assert results[first]["started_at"] is not None and results[first]["result"] in ("ok", "failed")
    assert results[second]["started_at"] is None and results[second]["result"] == "not_started", results[second]

    _post_until_accepted(exp, token, *both)  # Alertmanager's repeat
    wait_until(_settled(exp, token, 3), timeout=30, what="the waiting restart run on the repeat")
    assert sorted(_ran(tmp_path)) == ["7", "8"]
    repeat = {d["stream"]: d["result"] for d in journal(exp.url, token)["decisions"][:2]}
    assert repeat == {first: "skipped_duplicate", second: "accepted"}
    samples = exp.scrape()
    assert metric(samples, "iptv_actions_total", stream=second, action="restart", result="not_started") == 1
    assert "the disk is full" in exp.log_text()


def test_a_real_alertmanager_retries_the_503_until_the_journal_works(
    tmp_path: Path, fs: Path, exporter: Callable[..., Exporter]
) -> None:
    """The 503 is what makes the first try not the last: Alertmanager (the real one) keeps delivering a
    notification it could not deliver, long before its repeat interval (an hour here), and the restart runs
    once the disk has room, exactly once."""
    token = write_token(tmp_path / "token")
    filler = fill(fs)
    exp = exporter(_config(tmp_path, fs / "journal.sqlite"))
    assert _journal_up(exp) == 0
    am = Alertmanager(tmp_path, alertmanager_config({NODE: exp.url + "/hooks/alertmanager"}, tmp_path / "token",
                                                    group_wait="0s", group_interval="1s", repeat_interval="1h"))
    am.start()
    try:
        am.post(alert("7"))
        wait_until(lambda: (metric(exp.scrape(), "iptv_webhook_requests_total", code="503") or 0) >= 2, timeout=40,
                   what="Alertmanager's deliveries refused with 503 while the disk is full")
        assert _ran(tmp_path) == []
        filler.unlink()
        wait_until(lambda: _ran(tmp_path) == ["7"], timeout=60, what="Alertmanager's retry acted on")
        wait_until(_settled(exp, token, 1), timeout=30, what="its outcome")
        assert _journal_up(exp) == 1
    finally:
        am.stop()
    assert _ran(tmp_path) == ["7"]
