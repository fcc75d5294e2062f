"""The journal: survives reopening, restores what the policy needs, marks lost outcomes, keeps retention."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from exporter.actions.errors import ActionsError
from exporter.actions.journal import ActionRecord, DecisionRecord, Journal, NotificationRecord


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
    a2 = j.record_action(_action(20.0, fp="f2"))  # never finished: the exporter died
    j.record_reset("7", 15.0)
    j.close()

    j = Journal.open(path)
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert j.mark_interrupted(30.0) == 1
    actions = {a["id"]: a for a in j.list_actions()}
    assert actions[a1]["result"] == "ok" and actions[a1]["output"] == "out"
    assert actions[a2]["result"] == "interrupted"
    assert [p.fingerprint for p in j.history(0.0)] == ["f1", "f2"]
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
