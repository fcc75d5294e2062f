"""The action journal: every notification, every decision, every action and its outcome, in SQLite (WAL).

It is the memory that survives a restart: dedup keys, cooldowns and budgets are rebuilt from it at start,
so a restarted exporter never repeats an action it already took. Writes are single statements in
autocommit mode (a crash loses at most the row being written); one connection, guarded by a lock, serves
the worker thread, the action threads and the API.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.actions.errors import ActionsError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    receiver TEXT NOT NULL,
    external_url TEXT NOT NULL,
    status TEXT NOT NULL,
    group_key TEXT NOT NULL,
    alerts INTEGER NOT NULL,
    truncated_alerts INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY,
    notification_id INTEGER,
    at REAL NOT NULL,
    fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    alert_status TEXT NOT NULL,
    alertname TEXT NOT NULL,
    stream TEXT NOT NULL,
    action TEXT NOT NULL,
    node TEXT NOT NULL,
    result TEXT NOT NULL,
    reason TEXT NOT NULL,
    action_id INTEGER
);
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY,
    decided_at REAL NOT NULL,
    stream TEXT NOT NULL,
    action TEXT NOT NULL,
    runner TEXT NOT NULL,
    command TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    started_at REAL,
    finished_at REAL,
    result TEXT,
    detail TEXT,
    exit_code INTEGER,
    output TEXT
);
CREATE TABLE IF NOT EXISTS circuit_resets (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    stream TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS actions_stream ON actions (stream, decided_at);
CREATE INDEX IF NOT EXISTS decisions_at ON decisions (at);
CREATE INDEX IF NOT EXISTS notifications_at ON notifications (received_at);
"""


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    received_at: float
    receiver: str
    external_url: str
    """The sending Alertmanager (each peer of an HA pair has its own)."""
    status: str
    group_key: str
    alerts: int
    truncated_alerts: int
    body: str
    """The notification as received, re-encoded as ASCII JSON and truncated."""


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    notification_id: int | None
    at: float
    fingerprint: str
    starts_at: str
    alert_status: str
    alertname: str
    stream: str
    """The alert's ``stream`` label as received (cleaned and truncated): what was asked, not what acted."""
    action: str
    node: str
    result: str
    reason: str
    action_id: int | None = None


@dataclass(frozen=True, slots=True)
class ActionRecord:
    decided_at: float
    stream: str
    action: str
    runner: str
    command: str
    """What runs (or would run, in dry run): the filled argv as JSON, the URL, the unit, the signal."""
    dry_run: bool
    fingerprint: str
    starts_at: str


@dataclass(frozen=True, slots=True)
class PastAction:
    """What the policy needs back after a restart."""

    stream: str
    action: str
    decided_at: float
    fingerprint: str
    starts_at: str


class Journal:
    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self.path = path

    @classmethod
    def open(cls, path: Path) -> Journal:
        """Open (creating it, mode 0600) or raise ActionsError with the reason; called at start-up."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # labels and output are not public
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5.0)
        except (OSError, sqlite3.Error) as exc:
            raise ActionsError(f"actions.journal: cannot open {path}: {exc}") from None
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ActionsError(f"actions.journal: {path} was written by a newer version (schema {version})")
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            conn.close()
            raise ActionsError(f"actions.journal: {path} is not a usable SQLite journal: {exc}") from None
        return cls(conn, path)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._conn

    def _insert(self, table: str, values: Mapping[str, Any]) -> int:
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with self._locked() as conn:
            cur = conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", tuple(values.values()))
            return int(cur.lastrowid or 0)

    # -- writes ------------------------------------------------------------------------------------------

    def record_notification(self, rec: NotificationRecord) -> int:
        return self._insert("notifications", _asdict(rec))

    def record_decision(self, rec: DecisionRecord) -> int:
        return self._insert("decisions", _asdict(rec))

    def record_action(self, rec: ActionRecord) -> int:
        values = _asdict(rec)
        values["dry_run"] = int(rec.dry_run)
        return self._insert("actions", values)

    def mark_started(self, action_id: int, at: float) -> None:
        with self._locked() as conn:
            conn.execute("UPDATE actions SET started_at = ? WHERE id = ?", (at, action_id))

    def finish_action(self, action_id: int, *, at: float, result: str, detail: str, exit_code: int | None,
                      output: str) -> None:
        with self._locked() as conn:
            conn.execute(
                "UPDATE actions SET finished_at = ?, result = ?, detail = ?, exit_code = ?, output = ? WHERE id = ?",
                (at, result, detail, exit_code, output, action_id),
            )

    def record_reset(self, stream: str, at: float) -> int:
        return self._insert("circuit_resets", {"at": at, "stream": stream})

    def mark_interrupted(self, at: float) -> int:
        """Actions left without an outcome by a crash or a kill: their outcome is unknown, say so."""
        with self._locked() as conn:
            cur = conn.execute(
                "UPDATE actions SET finished_at = ?, result = 'interrupted',"
                " detail = 'the exporter stopped before the outcome was known' WHERE result IS NULL",
                (at,),
            )
            return cur.rowcount

    def prune(self, before: float) -> int:
        """Retention: drop everything older than ``before``; returns the rows removed."""
        removed = 0
        with self._locked() as conn:
            for table, col in (("notifications", "received_at"), ("decisions", "at"), ("actions", "decided_at"),
                               ("circuit_resets", "at")):
                removed += conn.execute(f"DELETE FROM {table} WHERE {col} < ?", (before,)).rowcount
        return removed

    # -- reads -------------------------------------------------------------------------------------------

    def history(self, since: float) -> list[PastAction]:
        """Actions decided since ``since`` (dry runs too: dry run shows what the real mode would decide)."""
        with self._locked() as conn:
            rows = conn.execute(
                "SELECT stream, action, decided_at, fingerprint, starts_at FROM actions WHERE decided_at >= ?"
                " ORDER BY decided_at",
                (since,),
            ).fetchall()
        return [PastAction(*row) for row in rows]

    def resets(self) -> dict[str, float]:
        with self._locked() as conn:
            rows = conn.execute("SELECT stream, MAX(at) FROM circuit_resets GROUP BY stream").fetchall()
        return {stream: float(at) for stream, at in rows}

    def _select(self, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self._locked() as conn:
            cur = conn.execute(sql, args)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def list_actions(self, stream: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        where, args = ("WHERE stream = ?", (stream,)) if stream else ("", ())
        rows = self._select(f"SELECT * FROM actions {where} ORDER BY id DESC LIMIT ?", (*args, limit))
        for row in rows:
            row["dry_run"] = bool(row["dry_run"])
        return rows

    def list_decisions(self, stream: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        where, args = ("WHERE stream = ?", (stream,)) if stream else ("", ())
        return self._select(f"SELECT * FROM decisions {where} ORDER BY id DESC LIMIT ?", (*args, limit))

    def list_notifications(self, limit: int = 100) -> list[dict[str, Any]]:
        return self._select(
            "SELECT id, received_at, receiver, external_url, status, group_key, alerts, truncated_alerts"
            " FROM notifications"
            " ORDER BY id DESC LIMIT ?",
            (limit,),
        )


def _asdict(rec: Any) -> dict[str, Any]:
    return {name: getattr(rec, name) for name in rec.__slots__}
