""""Has this file changed since I last read it?", answered one way for every file the exporter re-reads.

The token file, the stream names CSV, the GeoIP databases, the web config with its certificates and the
HLS playlists are all re-read when they change, so rotating a token or renewing a certificate needs no
restart. "Changed" is one stat identity, :class:`FileStamp`: device and inode (a file replaced by rename),
size, and the modification and status-change times in nanoseconds (an edit within the same second, a
``chmod`` that makes an unreadable file readable). :class:`WatchedFile` is the read-if-changed helper on
top: it keeps what a ``load`` function made of the file and logs a problem once, not every round.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)

MISSING = "does not exist"


@dataclass(frozen=True, slots=True)
class FileStamp:
    """What ``stat`` says about a file; the same stamp again means the same content."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileStamp:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def stamp(path: str | Path) -> FileStamp | None:
    """The file's stamp, or None when it cannot be stat'ed (gone, or a directory on its path unreadable)."""
    try:
        return FileStamp.of(os.stat(path))
    except OSError:
        return None


def problem_of(exc: Exception) -> str:
    """A short reason for a log line or an error message: "does not exist", "unreadable (Permission denied)"."""
    if isinstance(exc, FileNotFoundError):
        return MISSING
    if isinstance(exc, OSError):
        return f"unreadable ({exc.strerror or exc})"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return str(exc)


class WatchedFile(Generic[T]):
    """A file and what ``load`` made of it, read again only when its :class:`FileStamp` changes.

    ``load(path)`` reads the file; it raises ``OSError`` or ``ValueError`` (with a short reason) for a file
    it cannot use. A file whose content is unusable (``ValueError``: empty, not UTF-8, not a database) is
    tried once per change: it is not read again every round, only when it changes again. One that could not
    be read (``OSError``: out of descriptors, permission, I/O) is read again at the next refresh, as before
    this helper: the cause may pass without the file changing, and its stamp would never say so. While the
    file is unusable, :attr:`problem` says why; the problem is logged once (at
    ``level``, on the caller's ``logger``), and once more at INFO when the file is usable again.

    ``missing_level``: the level for a file that does not exist, where that is ordinary (an HLS playlist
    of a stream that is down). ``keep_on_failure``: whether the last good value stays while the file is
    unusable (a GeoIP database being replaced) or is dropped (a token file: a broken token denies every
    request).
    """

    def __init__(self, path: Path, load: Callable[[Path], T], *, what: str, logger: logging.Logger = log,
                 level: int = logging.WARNING, missing_level: int | None = None,
                 keep_on_failure: bool = False) -> None:
        self.path = path
        self.what = what
        self._load = load
        self._log = logger
        self._level = level
        self._missing_level = level if missing_level is None else missing_level
        self._keep = keep_on_failure
        self._lock = threading.Lock()
        self._tried: FileStamp | None = None
        """The stamp of the last read attempt, good or bad (None: never tried, or the file was missing)."""
        self._current: tuple[FileStamp, T] | None = None
        """(stamp, value) of the last good read: one attribute, so :meth:`value_if_unchanged` needs no lock."""
        self._value: T | None = None
        self.problem: str | None = None
        """Why the file is unusable now; None when it is fine (or not read yet)."""

    @property
    def value(self) -> T | None:
        """What ``load`` made of the file at its last good read; None while unusable (unless kept)."""
        return self._value

    def value_if_unchanged(self) -> T | None:
        """One ``stat``, no read: the value when the file is as it was at its last good read, else None."""
        current = self._current
        if current is None or stamp(self.path) != current[0]:
            return None
        return current[1]

    def refresh(self) -> bool:
        """Read the file again if its stamp changed since the last attempt; True when :attr:`value` changed."""
        with self._lock:
            try:
                now = FileStamp.of(os.stat(self.path))
            except OSError as exc:
                self._tried = None
                return self._fail(problem_of(exc))
            if now == self._tried:
                return False
            self._tried = now  # one attempt (and one log line) per change of an unusable file
            try:
                value = self._load(self.path)
            except OSError as exc:  # not the file's content: EMFILE, EACCES, EIO may pass with no change
                self._tried = None
                return self._fail(problem_of(exc))
            except ValueError as exc:
                return self._fail(problem_of(exc))
            if self.problem is not None:
                self._log.info("%s usable again path=%s", self.what, self.path)
            self._current, self._value, self.problem = (now, value), value, None
            return True

    def forget(self) -> T | None:
        """Drop the value (returned, for the caller to release) so that the next refresh reads the file."""
        with self._lock:
            value, self._value, self._current, self._tried = self._value, None, None, None
            return value

    def _fail(self, problem: str) -> bool:
        """Record why the file is unusable; True when that dropped the value."""
        if problem != self.problem:
            level = self._missing_level if problem == MISSING else self._level
            self._log.log(level, "%s unreadable path=%s problem=%s", self.what, self.path, problem)
        self.problem, self._current = problem, None
        if self._keep or self._value is None:
            return False
        self._value = None
        return True
