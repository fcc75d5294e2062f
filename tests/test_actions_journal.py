"""The journal: survives reopening, restores what the policy needs, marks lost outcomes, keeps retention."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from exporter.actions.errors import ActionsError, JournalError
from exporter.actions.journal import _MAX_VARIABLES, ActionRecord, DecisionRecord, Journal, NotificationRecord
from tests.faultfs import corrupt


def _action(at: float, stream: str = "7", fp: str = "f") -> ActionRecord:
    return ActionRecord(decided_at=at, stream=stream, action="restart", runner="command", command='["x"]',
                        dry_run=False, fingerprint=fp, starts_at="t")


def test_round_trip_and_restore(tmp_path: Path) -> None:
    path = tmp_path / "state" / "journal.sqlite"
    j = Journal.open(path)
    assert path.stat().st_mode & 0o777 == 0o600
    nid = j.record_notification(NotificationRecord(1.0, "r", "http://am:9093", "firing", "{}", 1, 0, "{}"))
    a1 = j.record_action(_action(10.0, fp="f1"))
    j.record_decision(DecisionRecord(nid, 10.0, "f1", "t", "firing", "IPTVStreamDown", "7", "restart", "edge-1",
                                     "accepted", "restart of stream 7", a1))
    j.mark_started(a1, 11.0)
    j.finish_action(a1, at=12.0, result="ok", detail="done", exit_code=0, output="out")
    a2 = j.record_action(_action(20.0, fp="f2"))  # started, never finished: the exporter died
    j.mark_started(a2, 20.5)
    a3 = j.record_action(_action(21.0, fp="f3"))  # decided, never started: waiting for a worker at the kill
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
    assert j.list_decisions("7")[0]["action_id"] == a1
    assert j.list_decisions("8") == []
    assert j.list_notifications()[0]["external_url"] == "http://am:9093"


def test_retention(tmp_path: Path) -> None:
    j = Journal.open(tmp_path / "j.sqlite")
    for at in (1.0, 2.0, 100.0):
        j.record_action(_action(at))
    j.record_reset("7", 1.0)
    assert j.prune(50.0) == 3
    assert [a["decided_at"] for a in j.list_actions()] == [100.0]


def test_unusable_journal_is_a_clear_start_up_error(tmp_path: Path) -> None:
    (tmp_path / "garbage.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(ActionsError, match="not a usable SQLite journal"):
        Journal.open(tmp_path / "garbage.sqlite")
    (tmp_path / "file").write_text("")
    with pytest.raises(ActionsError, match="cannot open"):
        Journal.open(tmp_path / "file" / "j.sqlite")


def _notification(at: float = 1.0) -> NotificationRecord:
    return NotificationRecord(at, "r", "http://am:9093", "firing", "{}", 1, 0, "{}")


def _decision(nid: int, fp: str, action_id: int | None = None) -> DecisionRecord:
    return DecisionRecord(nid, 10.0, fp, "t", "firing", "IPTVStreamDown", "7", "restart", "edge-1",
                          "skipped_duplicate" if action_id is None else "dry_run", "why", action_id)


def test_batch_assigns_ids_and_writes_everything_together(tmp_path: Path) -> None:
    j = Journal.open(tmp_path / "j.sqlite")
    first = j.record_notification(_notification())
    old_action = j.record_action(_action(5.0, fp="old"))
    j.mark_started(old_action, 5.5)
    with j.batch() as b:
        nid = b.notification(_notification(2.0))
        aid = b.action(dataclasses.replace(_action(10.0, fp="f1"), dry_run=True))
        b.decision(_decision(nid, "f1", aid))
        b.finish_action(aid, at=10.0, result="dry_run", detail="dry run: nothing executed", exit_code=None, output="")
        n2 = b.notification(_notification(3.0))
        b.decision(_decision(n2, "f1"))
    assert (nid, n2, aid) == (first + 1, first + 2, old_action + 1)
    assert [n["id"] for n in j.list_notifications()] == [n2, nid, first]
    action = j.list_actions()[0]
    assert (action["id"], action["result"], action["dry_run"], action["finished_at"]) == (aid, "dry_run", True, 10.0)
    assert action["started_at"] is None and action["output"] == ""
    assert [(d["notification_id"], d["action_id"]) for d in j.list_decisions()] == [(n2, None), (nid, aid)]
    assert j.record_notification(_notification()) == n2 + 1  # single-row writes go on after the batch's ids
    assert [p.fingerprint for p in j.history(0.0)] == ["old", "f1"]  # what a restart restores


def test_batch_is_all_or_nothing(tmp_path: Path) -> None:
    j = Journal.open(tmp_path / "j.sqlite")
    with pytest.raises(RuntimeError), j.batch() as b:
        nid = b.notification(_notification())
        b.action(_action(10.0))
        b.decision(_decision(nid, "f1"))
        raise RuntimeError("crash while deciding")
    assert j.list_notifications() == [] and j.list_actions() == [] and j.list_decisions() == []
    with j.batch() as b:
        assert b.notification(_notification()) == nid  # nothing was taken


def test_batch_larger_than_one_statement(tmp_path: Path) -> None:
    j = Journal.open(tmp_path / "j.sqlite")
    count = _MAX_VARIABLES // 9 + 10  # more notifications (9 columns) than one INSERT takes
    with j.batch() as b:
        ids = [b.notification(_notification(float(i))) for i in range(count)]
        for nid in ids:
            b.decision(_decision(nid, f"f{nid}"))
    assert len(j.list_notifications(count + 1)) == count
    assert {d["fingerprint"] for d in j.list_decisions(limit=count + 1)} == {f"f{i}" for i in ids}


def test_corrupt_pages_are_found_at_open_and_said_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    j = Journal.open(path)
    for _ in range(50):
        j.record_notification(NotificationRecord(1.0, "r", "u", "firing", "{}", 1, 0, "x" * 5000))
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
