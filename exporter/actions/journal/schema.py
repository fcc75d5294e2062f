"""The journal file: its schema, and opening it safely (or saying in one line why it cannot be used).

Kept apart from the queries (:mod:`exporter.actions.journal.store`): how the file is locked, synced and
checked is what keeps the exporter alive and the journal durable when the disk misbehaves; what is read and
written is the worker's business.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from exporter.actions.errors import JournalError

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


def connect(path: Path) -> sqlite3.Connection:
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
        raise JournalError(f"actions.journal: cannot open {path}: {describe(exc, path)}") from None
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
                               f" ({'; '.join(problems)[:200]}); {MOVE_ASIDE.format(path=path)}")
        conn.executescript(_SCHEMA)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except (sqlite3.Error, OSError) as exc:
        conn.close()
        raise JournalError(f"actions.journal: {path} is not a usable SQLite journal: {describe(exc, path)}") from None
    except JournalError:
        conn.close()
        raise
    return conn


MOVE_ASIDE = ("move it aside (mv {path} {path}.corrupt) and the exporter creates a new one; the old one keeps"
               " the history, but alerts it acted on may be acted on once more")


def describe(exc: sqlite3.Error | OSError, path: Path) -> str:
    """One line for a failure: what SQLite or the OS said, and what it means for the operator."""
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    text = " ".join(str(exc).split())  # one line
    name = getattr(exc, "sqlite_errorname", "") or type(exc).__name__
    if name in {"SQLITE_CORRUPT", "SQLITE_NOTADB"} or name.startswith("SQLITE_CORRUPT"):
        return f"corrupt ({text}, {name}); {MOVE_ASIDE.format(path=path)}"
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return (f"locked by another process ({name}): is another exporter using the same actions.journal?"
                " Only one may.")
    if name == "SQLITE_FULL":
        return f"the disk is full ({text}, {name})"
    return f"{text} ({name})"
