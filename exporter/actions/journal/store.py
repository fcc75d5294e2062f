"""The action journal: every notification, every decision, every action and its outcome, in SQLite (WAL).

It is the memory that survives a restart: dedup keys, cooldowns and budgets are rebuilt from it at start,
so a restarted exporter never repeats an action it already took. One write API, :meth:`Journal.record`,
takes what the worker decided for a batch of queued notifications and writes it in one transaction (a
crash loses at most that batch, and the worker starts a batch's actions only once it is committed); the
other writes are single statements in autocommit mode that change one action's state. One connection,
guarded by a lock, serves the worker thread, the action threads and the API; it holds the file
exclusively (see :func:`exporter.actions.journal.schema.connect`).

A journal that fails (disk full, I/O error, read-only, corrupt, locked by another process) is *down*: every
call raises :class:`JournalError` with a one-line reason, which the receiver turns into 503 and the metrics
into ``iptv_actions_journal_up 0``, until :meth:`Journal.revive` opens it again. Nothing here ever takes
the exporter down.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from exporter.actions.errors import ActionsError, JournalError
from exporter.actions.journal import schema
from exporter.actions.journal.records import NotificationRecord, PastAction

log = logging.getLogger(__name__)

_INSERT_NOTIFICATION = ("INSERT INTO notifications (received_at, receiver, external_url, status, group_key, alerts,"
                        " truncated_alerts, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
_INSERT_ACTION = ("INSERT INTO actions (decided_at, stream, action, runner, command, dry_run, fingerprint, starts_at,"
                  " finished_at, result, detail, output) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_INSERT_DECISION = ("INSERT INTO decisions (notification_id, at, fingerprint, starts_at, alert_status, alertname,"
                    " stream, action, node, result, reason, action_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
"""Column orders as the records' ``row()`` give them."""


class Journal:
    """The journal file and its one connection; up (usable) or down with a one-line reason.

    Any SQLite or OS error marks it down: the connection is closed (releasing the file), the reason is
    logged once, and every call raises :class:`JournalError` until :meth:`revive` opens it again. Callers
    change their state only after a write returned, so a failed write leaves nothing behind.
    """

    def __init__(self, path: Path) -> None:
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()  # re-entered: revive() calls connect()
        self.path = path
        self._problem = "not opened yet"
        self._tried = float("-inf")
        """time.monotonic() of the last attempt to open it (revive is rate-limited)."""
        self._identity: tuple[int, int] | None = None
        """(device, inode) of the file opened: a path that names another file (or none) was replaced."""

    @classmethod
    def open(cls, path: Path) -> Journal:
        """Open or raise ActionsError with the reason (for tools and tests that need it up)."""
        journal = cls(path)
        try:
            journal.connect()
        except JournalError as exc:
            raise ActionsError(exc.reason) from None
        return journal

    @property
    def up(self) -> bool:
        return self._conn is not None

    @property
    def problem(self) -> str | None:
        """Why it is down (None while up)."""
        return None if self._conn is not None else self._problem

    def connect(self) -> None:
        """Open (creating it, mode 0600), check and prepare the file, or raise JournalError (and log it)."""
        with self._lock:
            if self._conn is not None:
                return
            self._tried = time.monotonic()
            try:
                conn = schema.connect(self.path)
            except JournalError as exc:
                self._down(exc.reason)
                raise
            try:
                st = os.stat(self.path)
            except OSError as exc:
                conn.close()
                self._down(f"actions.journal: cannot open {self.path}: {schema.describe(exc, self.path)}")
                raise JournalError(self._problem) from None
            self._conn, self._identity = conn, (st.st_dev, st.st_ino)
            if self._problem != "not opened yet":
                log.warning("action journal usable again, actions resume path=%s", self.path)
            self._problem = ""

    def revive(self, min_interval: float) -> bool:
        """While down: try to open it again, at most once per ``min_interval`` seconds. True when up."""
        with self._lock:
            if self._conn is not None:
                return True
            if time.monotonic() - self._tried < min_interval:
                return False
            try:
                self.connect()
            except JournalError:
                return False
            return True

    def verify_file(self) -> bool:
        """Whether the path still names the file in use. One that was deleted or replaced (``rm``, ``mv``)
        would take every later write into a file nobody can see, and a restart would forget them: it is
        taken as down, so the next :meth:`revive` opens (or creates) the file the path names now."""
        with self._lock:
            if self._conn is None:
                return False
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                st = None
            except OSError as exc:
                raise self._failed(exc, "check") from None
            if st is not None and (st.st_dev, st.st_ino) == self._identity:
                return True
            self._tried = float("-inf")  # reopen at once: the file is fine, only another one
            self._down(f"actions.journal {self.path}: the file was deleted or replaced while in use; the"
                       " exporter opens the one the path names now (the old one keeps its history)")
            return False

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            self._problem = "closed (the exporter is stopping)"
            if conn is not None:
                try:
                    conn.close()
                except sqlite3.Error as exc:
                    log.warning("action journal close failed path=%s problem=%s", self.path, exc)

    def _down(self, reason: str) -> None:
        """Mark it down (the lock is held); log once per distinct reason."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):  # it has just failed; closing is all that is left to do
                conn.close()
        if reason != self._problem:
            log.error("action journal unusable, actions refused until it works again path=%s problem=%s",
                      self.path, reason)
        self._problem = reason

    def _failed(self, exc: sqlite3.Error | OSError, doing: str) -> JournalError:
        reason = f"actions.journal {self.path}: {doing} failed: {schema.describe(exc, self.path)}"
        self._down(reason)
        return JournalError(reason)

    @contextmanager
    def _locked(self, doing: str = "read") -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._conn
            if conn is None:
                raise JournalError(self._problem)
            try:
                yield conn
            except (sqlite3.Error, OSError) as exc:
                raise self._failed(exc, doing) from None

    # -- writes ------------------------------------------------------------------------------------------

    def record(self, notifications: Sequence[NotificationRecord]) -> list[int]:
        """Write notifications with their decisions and the actions those took, in one transaction: all of it
        or (JournalError) none of it. Returns the ids SQLite gave the actions, in the order they appear."""
        with self._locked("write") as conn:
            conn.execute("BEGIN")
            try:
                action_ids = self._insert(conn, notifications)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):  # a failed write: _locked closes it anyway
                        conn.execute("ROLLBACK")
                raise
        return action_ids

    @staticmethod
    def _insert(conn: sqlite3.Connection, notifications: Sequence[NotificationRecord]) -> list[int]:
        """A notification's and an action's id link its decisions, so those rows are inserted one by one
        (SQLite gives the id: ``lastrowid``); the decisions, which nothing refers to, in one executemany."""
        action_ids: list[int] = []
        decisions: list[tuple[object, ...]] = []
        for notification in notifications:
            nid = conn.execute(_INSERT_NOTIFICATION, notification.row()).lastrowid
            for decision in notification.decisions:
                aid = None
                if decision.taken is not None:
                    aid = conn.execute(_INSERT_ACTION, decision.taken.row()).lastrowid
                    action_ids.append(_id(aid))
                decisions.append((nid, *decision.row(), aid))
        conn.executemany(_INSERT_DECISION, decisions)
        return action_ids

    def mark_started(self, action_id: int, at: float) -> None:
        """Written (durably) before the action runs: an action without it never ran, and will run when
        Alertmanager repeats the alert; one with it is never run again for that alert."""
        with self._locked("write") as conn:
            conn.execute("UPDATE actions SET started_at = ? WHERE id = ?", (at, action_id))

    def finish_action(self, action_id: int, *, at: float, result: str, detail: str, exit_code: int | None,
                      output: str, ran: bool = True) -> None:
        """The outcome; ``ran=False`` (nothing reached the stream) also clears the start: no dedup key."""
        with self._locked("write") as conn:
            conn.execute(
                "UPDATE actions SET finished_at = ?, result = ?, detail = ?, exit_code = ?, output = ?,"
                " started_at = CASE WHEN ? THEN started_at END WHERE id = ?",
                (at, result, detail, exit_code, output, ran, action_id),
            )

    def record_reset(self, stream: str, at: float) -> None:
        """An operator closed the stream's circuit (journalled before it takes effect)."""
        with self._locked("write") as conn:
            conn.execute("INSERT INTO circuit_resets (at, stream) VALUES (?, ?)", (at, stream))

    def mark_unfinished(self, at: float) -> tuple[int, int]:
        """Actions left without an outcome by a stop, a crash or a kill: (interrupted, not started).

        One that had started is ``interrupted`` (its outcome is unknown) and stays a dedup key; one that
        never started is ``not_started``, is no dedup key, cooldown or budget, and runs on the repeat.
        """
        with self._locked("write") as conn:
            interrupted = conn.execute(
                "UPDATE actions SET finished_at = ?, result = 'interrupted',"
                " detail = 'the exporter stopped before the outcome was known'"
                " WHERE result IS NULL AND started_at IS NOT NULL", (at,),
            ).rowcount
            not_started = conn.execute(
                "UPDATE actions SET finished_at = ?, result = 'not_started',"
                " detail = 'the exporter stopped before it started; it runs when Alertmanager repeats the alert'"
                " WHERE result IS NULL AND started_at IS NULL", (at,),
            ).rowcount
            return interrupted, not_started

    def prune(self, before: float) -> int:
        """Retention: drop everything older than ``before``; returns the rows removed."""
        removed = 0
        with self._locked("write") as conn:
            for table, col in (("notifications", "received_at"), ("decisions", "at"), ("actions", "decided_at"),
                               ("circuit_resets", "at")):
                removed += conn.execute(f"DELETE FROM {table} WHERE {col} < ?", (before,)).rowcount
        return removed

    # -- reads -------------------------------------------------------------------------------------------

    def history(self, since: float) -> list[PastAction]:
        """Actions decided since ``since`` that ran or may have run (dry runs too: dry run shows what the real
        mode would decide); one that never started is left out, so the alert's repeat runs it."""
        with self._locked() as conn:
            rows = conn.execute(
                "SELECT stream, action, decided_at, fingerprint, starts_at FROM actions WHERE decided_at >= ?"
                " AND (dry_run = 1 OR started_at IS NOT NULL) ORDER BY decided_at",
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


def _id(rowid: int | None) -> int:
    """``lastrowid`` after an INSERT (None only after other statements)."""
    if rowid is None:
        raise sqlite3.InterfaceError("an INSERT without a row id")
    return rowid
