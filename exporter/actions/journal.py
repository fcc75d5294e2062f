"""The action journal: every notification, every decision, every action and its outcome, in SQLite (WAL).

It is the memory that survives a restart: dedup keys, cooldowns and budgets are rebuilt from it at start,
so a restarted exporter never repeats an action it already took. Writes are single statements in
autocommit mode, except that the worker writes what it decided for a batch of queued notifications with
:meth:`Journal.batch`: one transaction, a few multi-row INSERTs (a crash loses at most that batch, and the
worker starts a batch's actions only once it is committed). One connection, guarded by a lock, serves the
worker thread, the action threads and the API; it holds the file exclusively (see :func:`_connect`).

A journal that fails (disk full, I/O error, read-only, corrupt, locked by another process) is *down*: every
call raises :class:`JournalError` with a one-line reason, which the receiver turns into 503 and the metrics
into ``iptv_actions_journal_up 0``, until :meth:`Journal.revive` opens it again. Nothing here ever takes
the exporter down.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import operator
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.actions.errors import ActionsError, JournalError

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


@functools.lru_cache(maxsize=256)
def _insert_sql(table: str, columns: tuple[str, ...], rows: int = 1) -> str:
    row = f"({', '.join('?' for _ in columns)})"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join(itertools.repeat(row, rows))}"


_ROWS: dict[type[Any], tuple[str, Callable[[Any], tuple[Any, ...]]]] = {
    cls: (_insert_sql(table, cls.__slots__), operator.attrgetter(*cls.__slots__))
    for cls, table in ((NotificationRecord, "notifications"), (DecisionRecord, "decisions"),
                       (ActionRecord, "actions"))
}
"""Per record type: its INSERT (one text, so sqlite3's statement cache keeps it prepared) and its values."""

_OUTCOME = ("started_at", "finished_at", "result", "detail", "exit_code", "output")
_BATCH_COLUMNS = {
    "notifications": ("id", *NotificationRecord.__slots__),
    "actions": ("id", *ActionRecord.__slots__, *_OUTCOME),
    "decisions": DecisionRecord.__slots__,
}
_MAX_VARIABLES = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999
"""Parameters in one statement, at most (SQLite's SQLITE_MAX_VARIABLE_NUMBER default)."""


class JournalBatch:
    """The rows of one batch of decisions, written together when :meth:`Journal.batch` ends.

    Ids are assigned here (the batch holds the journal's lock from the first id to the commit), so deciding
    needs no round trip to SQLite: the worker thread, which shares the GIL with the event loop, gives it up
    a handful of times per batch instead of at every row.
    """

    def __init__(self, next_notification: int, next_action: int) -> None:
        self._next_notification = next_notification
        self._next_action = next_action
        self.rows: dict[str, list[Sequence[Any]]] = {"notifications": [], "actions": [], "decisions": []}
        self._actions: dict[int, list[Any]] = {}

    def notification(self, rec: NotificationRecord) -> int:
        nid, self._next_notification = self._next_notification, self._next_notification + 1
        self.rows["notifications"].append((nid, *_ROWS[NotificationRecord][1](rec)))
        return nid

    def action(self, rec: ActionRecord) -> int:
        aid, self._next_action = self._next_action, self._next_action + 1
        row = [aid, *_ROWS[ActionRecord][1](rec), *(None for _ in _OUTCOME)]
        self._actions[aid] = row
        self.rows["actions"].append(row)
        return aid

    def finish_action(self, action_id: int, *, at: float, result: str, detail: str, exit_code: int | None,
                      output: str) -> None:
        """The outcome of an action of this batch, written with it (a dry run's)."""
        self._actions[action_id][-5:] = [at, result, detail, exit_code, output]

    def decision(self, rec: DecisionRecord) -> None:
        self.rows["decisions"].append(_ROWS[DecisionRecord][1](rec))


class Journal:
    """The journal file and its one connection; up (usable) or down with a one-line reason.

    Any SQLite or OS error marks it down: the connection is closed (releasing the file), the reason is
    logged once, and every call raises :class:`JournalError` until :meth:`revive` opens it again. Callers
    change their state only after a write returned, so a failed write leaves nothing behind.
    """

    def __init__(self, path: Path) -> None:
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()  # re-entered by the single-row writes inside a batch()
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
                conn = _connect(self.path)
            except JournalError as exc:
                self._down(exc.reason)
                raise
            try:
                st = os.stat(self.path)
            except OSError as exc:
                conn.close()
                self._down(f"actions.journal: cannot open {self.path}: {_describe(exc, self.path)}")
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
        reason = f"actions.journal {self.path}: {doing} failed: {_describe(exc, self.path)}"
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

    @contextmanager
    def batch(self) -> Iterator[JournalBatch]:
        """Collect rows in the batch; at the end they are written in one transaction, or nothing is if the
        block raises or the write fails (JournalError). Other threads' journal calls wait until then."""
        with self._locked("write") as conn:
            conn.execute("BEGIN")
            try:
                nid, aid = conn.execute("SELECT (SELECT COALESCE(MAX(id), 0) FROM notifications),"
                                        " (SELECT COALESCE(MAX(id), 0) FROM actions)").fetchone()
                batch = JournalBatch(nid + 1, aid + 1)
                yield batch
                for table, rows in batch.rows.items():
                    self._insert_rows(conn, table, rows)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):  # a failed write: _locked closes it anyway
                        conn.execute("ROLLBACK")
                raise

    @staticmethod
    def _insert_rows(conn: sqlite3.Connection, table: str, rows: Sequence[Sequence[Any]]) -> None:
        """Multi-row INSERTs: one statement (one sqlite3 call) per up to ``_MAX_VARIABLES`` values."""
        columns = _BATCH_COLUMNS[table]
        per = _MAX_VARIABLES // len(columns)
        for start in range(0, len(rows), per):
            chunk = rows[start:start + per]
            conn.execute(_insert_sql(table, columns, len(chunk)), list(itertools.chain.from_iterable(chunk)))

    def _insert(self, table: str, values: Mapping[str, Any]) -> int:
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with self._locked("write") as conn:
            cur = conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", tuple(values.values()))
            return int(cur.lastrowid or 0)

    def _insert_record(self, rec: NotificationRecord | DecisionRecord | ActionRecord) -> int:
        sql, values = _ROWS[type(rec)]
        with self._locked("write") as conn:
            return int(conn.execute(sql, values(rec)).lastrowid or 0)

    # -- writes ------------------------------------------------------------------------------------------

    def record_notification(self, rec: NotificationRecord) -> int:
        return self._insert_record(rec)

    def record_decision(self, rec: DecisionRecord) -> int:
        return self._insert_record(rec)

    def record_action(self, rec: ActionRecord) -> int:
        return self._insert_record(rec)  # dry_run: a bool is stored as the integer 0 or 1

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

    def record_reset(self, stream: str, at: float) -> int:
        return self._insert("circuit_resets", {"at": at, "stream": stream})

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


def _connect(path: Path) -> sqlite3.Connection:
    """Open and prepare the journal file, or raise JournalError saying what is wrong with it.

    Exclusive locking, set before WAL mode: SQLite then keeps the WAL index in its own memory instead of a
    shared ``-shm`` file mapped into the process. A mapped file that turns unwritable (``chattr +i``, a
    filesystem gone read-only) or is truncated kills the process with SIGBUS at the next memory write; with
    no mapping (``mmap_size=0`` too) every such failure is an error return instead. The lock also keeps a
    second exporter off the file: two processes with their own dedup memory could both act on one alert.
    ``synchronous=FULL``: a commit is on the disk when it returns, so "journalled" survives a power cut.
    A quick_check at open finds corrupt pages before anything relies on them.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # labels and output are not public
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=1.0)
    except (OSError, sqlite3.Error) as exc:
        raise JournalError(f"actions.journal: cannot open {path}: {_describe(exc, path)}") from None
    try:
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        conn.execute("PRAGMA mmap_size=0")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise JournalError(f"actions.journal: {path} was written by a newer version (schema {version})")
        problems = [" ".join(str(row[0]).split()) for row in conn.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:  # one line: SQLite's own report has line breaks
            raise JournalError(f"actions.journal: {path} is not a usable SQLite journal: corrupt"
                               f" ({'; '.join(problems)[:200]}); {_MOVE_ASIDE.format(path=path)}")
        conn.executescript(_SCHEMA)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except (sqlite3.Error, OSError) as exc:
        conn.close()
        raise JournalError(f"actions.journal: {path} is not a usable SQLite journal: {_describe(exc, path)}") from None
    except JournalError:
        conn.close()
        raise
    return conn


_MOVE_ASIDE = ("move it aside (mv {path} {path}.corrupt) and the exporter creates a new one; the old one keeps"
               " the history, but alerts it acted on may be acted on once more")


def _describe(exc: sqlite3.Error | OSError, path: Path) -> str:
    """One line for a failure: what SQLite or the OS said, and what it means for the operator."""
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    text = " ".join(str(exc).split())  # one line
    name = getattr(exc, "sqlite_errorname", "") or type(exc).__name__
    if name in {"SQLITE_CORRUPT", "SQLITE_NOTADB"} or name.startswith("SQLITE_CORRUPT"):
        return f"corrupt ({text}, {name}); {_MOVE_ASIDE.format(path=path)}"
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return (f"locked by another process ({name}): is another exporter using the same actions.journal?"
                " Only one may.")
    if name == "SQLITE_FULL":
        return f"the disk is full ({text}, {name})"
    return f"{text} ({name})"
