"""The journal: survives reopening, restores what the policy needs, marks lost outcomes, keeps retention."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from exporter.actions.errors import ActionsError, JournalError
from exporter.actions.journal import ActionRecord, DecisionRecord, Journal, NotificationRecord
from tests.faultfs import corrupt


def _action(at: float, stream: str = "7", fp: str = "f") -> ActionRecord:
    return ActionRecord(decided_at=at, stream=stream, action="restart", runner="command", command='["x"]',
                        dry_run=False, fingerprint=fp, starts_at="t")


def _decision(fp: str, taken: ActionRecord | None = None, at: float = 10.0) -> DecisionRecord:
    return DecisionRecord(at, fp, "t", "firing", "IPTVStreamDown", "7", "restart", "edge-1",
                          "skipped_duplicate" if taken is None else "accepted", "why", taken)


def _notification(at: float = 1.0, *decisions: DecisionRecord, body: str = "{}") -> NotificationRecord:
    return NotificationRecord(at, "r", "http://am:9093", "firing", "{}", len(decisions), 0, body, decisions)


def test_round_trip_and_restore(tmp_path: Path) -> None:
    path = tmp_path / "state" / "journal.sqlite"
    j = Journal.open(path)
    assert path.stat().st_mode & 0o777 == 0o600
    a1, a2, a3 = j.record([_notification(
        1.0,
        _decision("f1", _action(10.0, fp="f1")),
        _decision("f2", _action(20.0, fp="f2")),  # started, never finished: the exporter died
        _decision("f3", _action(21.0, fp="f3")),  # decided, never started: waiting for a worker at the kill
    )])
    j.mark_started(a1, 11.0)
    j.finish_action(a1, at=12.0, result="ok", detail="done", exit_code=0, output="out")
    j.mark_started(a2, 20.5)
    j.record_reset("7", 15.0)
    j.close()

    j = Journal.open(path)
    assert j._conn is not None and j._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(sqlite3.OperationalError, match="locked"):  # held by this process alone
        sqlite3.connect(path, timeout=0.1).execute("SELECT COUNT(*) FROM actions").fetchone()
    assert not path.with_name(path.name + "-shm").exists()  # no shared memory mapped into the process
    assert j.mark_unfinished(30.0) == (1, 1)
    actions = {a["id"]: a for a in j.list_actions()}
    assert actions[a1]["result"] == "ok" and actions[a1]["output"] == "out"
    assert actions[a2]["result"] == "interrupted"
    assert actions[a3]["result"] == "not_started"
    assert [p.fingerprint for p in j.history(0.0)] == ["f1", "f2"]  # f3 never ran: no dedup key
    assert [p.fingerprint for p in j.history(15.0)] == ["f2"]
    assert j.resets() == {"7": 15.0}
    (notification,) = j.list_notifications()
    assert notification["external_url"] == "http://am:9093"
    assert {d["fingerprint"]: (d["notification_id"], d["action_id"]) for d in j.list_decisions("7")} == {
        "f1": (notification["id"], a1), "f2": (notification["id"], a2), "f3": (notification["id"], a3)}
    assert j.list_decisions("8") == []


def test_retention(tmp_path: Path) -> None:
    j = Journal.open(tmp_path / "j.sqlite")
    j.record([_notification(at, _decision("f", _action(at), at=at)) for at in (1.0, 2.0, 100.0)])
    j.record_reset("7", 1.0)
    assert j.prune(50.0) == 7  # two notifications, their two decisions and two actions, the reset
    assert [a["decided_at"] for a in j.list_actions()] == [100.0]
    assert [n["received_at"] for n in j.list_notifications()] == [100.0]


def test_unusable_journal_is_a_clear_start_up_error(tmp_path: Path) -> None:
    (tmp_path / "garbage.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(ActionsError, match="not a usable SQLite journal"):
        Journal.open(tmp_path / "garbage.sqlite")
    (tmp_path / "file").write_text("")
    with pytest.raises(ActionsError, match="cannot open"):
        Journal.open(tmp_path / "file" / "j.sqlite")


def test_record_links_rows_by_the_ids_sqlite_gives(tmp_path: Path) -> None:
    j = Journal.open(tmp_path / "j.sqlite")
    (old,) = j.record([_notification(1.0, _decision("old", _action(5.0, fp="old")))])
    j.mark_started(old, 5.5)
    dry = dataclasses.replace(_action(10.0, fp="f1"), dry_run=True, finished_at=10.0, result="dry_run",
                              detail="dry run: nothing executed", output="")
    ids = j.record([
        _notification(2.0, _decision("f1", dry), _decision("f2")),
        _notification(3.0, _decision("f1")),
        _notification(4.0),  # no alert decided (one that failed to be handled): the notification is kept
    ])
    assert len(ids) == 1 and ids[0] != old
    action = j.list_actions()[0]
    assert (action["id"], action["result"], action["dry_run"], action["finished_at"]) == (ids[0], "dry_run", True, 10.0)
    assert action["started_at"] is None and action["output"] == "" and action["detail"] == "dry run: nothing executed"
    notifications = {n["received_at"]: n["id"] for n in j.list_notifications()}
    assert len(set(notifications.values())) == 4
    assert sorted((d["notification_id"], d["fingerprint"], d["action_id"]) for d in j.list_decisions()) == sorted([
        (notifications[1.0], "old", old), (notifications[2.0], "f1", ids[0]), (notifications[2.0], "f2", None),
        (notifications[3.0], "f1", None)])
    assert [p.fingerprint for p in j.history(0.0)] == ["old", "f1"]  # what a restart restores


def test_batch_is_all_or_nothing(tmp_path: Path) -> None:
    """A write that fails part way (here the last decision breaks a NOT NULL constraint, after the notification
    and its action are inserted) leaves nothing: the transaction is rolled back and the journal is down."""
    j = Journal.open(tmp_path / "j.sqlite")
    broken = dataclasses.replace(_decision("f2"), reason=None)  # type: ignore[arg-type]  # on purpose: NOT NULL
    with pytest.raises(JournalError, match="NOT NULL"):
        j.record([_notification(1.0, _decision("f1", _action(10.0))), _notification(2.0, broken)])
    assert not j.up
    assert j.revive(0.0)
    assert j.list_notifications() == [] and j.list_actions() == [] and j.list_decisions() == []
    assert j.record([_notification(1.0, _decision("f1", _action(10.0)))]) == [1]  # nothing was taken


def test_corrupt_pages_are_found_at_open_and_said_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    j = Journal.open(path)
    j.record([_notification(1.0, body="x" * 5000) for _ in range(50)])
    j.close()
    corrupt(path)  # pages after the header turned to garbage: SQLite opens it, quick_check finds them
    with pytest.raises(ActionsError) as caught:
        Journal.open(path)
    message = str(caught.value)
    assert "corrupt" in message and f"mv {path} {path}.corrupt" in message, message
    assert "\n" not in message
    down = Journal(path)
    with pytest.raises(JournalError):
        down.connect()
    assert not down.up and down.problem == message
    assert not down.revive(0.0)  # still corrupt
    path.rename(tmp_path / "j.sqlite.corrupt")
    assert down.revive(0.0) and down.up and down.problem is None  # a fresh journal where it was
