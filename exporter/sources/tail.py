"""Follow a growing log file across rotation, like ``tail -F``: the access log and ffmpeg error logs.

Handles rename-and-create (logrotate's default: finish the old file, then read the new one from its
start), copytruncate (the file shrinks under us, or shrinks and grows back past our offset within one
round: either way its first bytes are no longer those we saw, and we start again at 0), a file that is
missing now and appears later (read from its start), and a partial last line (kept until its newline
arrives, up to :data:`MAX_LINE`: a longer line is dropped and counted, so a 200 MB line without a newline
costs no memory).

The path is opened without following a symlink first: a log path that has become a symlink owned by one
user to a file owned by another (an access log swapped for a link to a shadow-like file) is refused with
:class:`UnsafeLogFile`, so its content never reaches the exporter, let alone its logs.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

MAX_READ = 64 << 20
"""At most this much per call, so a huge backlog is worked through over several rounds, not in one."""
CHUNK = 1 << 20
"""Read in pieces this big, so a line that never ends is dropped as it grows, not after 64 MiB of it."""
MAX_LINE = 64 << 10
"""Longer lines are dropped (nginx writes a few KiB at most; a longer one is garbage or an attack)."""
HEAD = 256
"""Bytes at the start of the file kept as its fingerprint: copytruncate that regrows past our offset
changes them (a log line carries its time and client), a file only appended to never does."""


class UnsafeLogFile(PermissionError):
    """The log path is a symlink that one user made to another user's file: not followed."""


class NotARegularFile(OSError):
    """The path is a named pipe, socket or device: reading it could block the sampler forever."""


def open_log(path: Path) -> BinaryIO:
    """Open ``path`` for reading; a symlink is followed only when root or the target's owner made it.

    FileNotFoundError when missing; UnsafeLogFile for a symlink of one user to another user's file;
    NotARegularFile for a named pipe, socket or device. The link is looked at again after opening, so
    swapping it in between is caught too. Every file a source reads from a path a panel user can write
    (access and error logs, progress files, playlists) is opened here.
    """
    # O_NONBLOCK: opening a named pipe with no writer would block the one sampler thread (every metric
    # would stop); on a regular file the flag changes nothing.
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        link = os.lstat(path)
        fd = os.open(path, flags)
        try:
            target = os.fstat(fd)
            again = os.lstat(path)
            if (again.st_dev, again.st_ino) != (link.st_dev, link.st_ino):
                raise UnsafeLogFile(errno.EACCES, "symlink changed while it was opened", str(path)) from None
            if link.st_uid not in (0, target.st_uid):
                raise UnsafeLogFile(
                    errno.EACCES,
                    f"symlink owned by uid {link.st_uid} to a file owned by uid {target.st_uid}: not followed",
                    str(path),
                ) from None
        except BaseException:
            os.close(fd)
            raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotARegularFile(errno.EINVAL, "not a regular file (a pipe, socket or device): not read", str(path))
    return os.fdopen(fd, "rb")


class FileFollower:
    def __init__(self, path: str | Path, *, from_start: bool = False, max_read: int = MAX_READ,
                 max_line: int = MAX_LINE) -> None:
        self.path = Path(path)
        self.max_read = max_read
        self.max_line = max_line
        self._fh: BinaryIO | None = None
        self._ino: tuple[int, int] | None = None
        self._partial = b""
        self._discarding = False
        """Inside a line longer than ``max_line``: skip up to its newline."""
        self._head = b""
        self.rotations = 0
        self.truncations = 0
        self.overlong_lines = 0
        """Lines dropped for being longer than ``max_line`` (counted once each, when they pass the cap)."""
        self._open(seek_end=not from_start)

    @property
    def exists(self) -> bool:
        return self._fh is not None

    def _open(self, *, seek_end: bool) -> None:
        try:
            fh = open_log(self.path)
        except FileNotFoundError:
            self._fh, self._ino = None, None
            return
        st = os.fstat(fh.fileno())
        self._fh, self._ino = fh, (st.st_dev, st.st_ino)
        self._partial, self._discarding = b"", False
        self._head = os.pread(fh.fileno(), HEAD, 0)
        if seek_end:
            fh.seek(0, os.SEEK_END)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _keep(self, line: bytes, lines: list[bytes]) -> None:
        if len(line) > self.max_line:
            self.overlong_lines += 1
        else:
            lines.append(line)

    def _split(self, data: bytes, lines: list[bytes]) -> None:
        parts = data.split(b"\n")
        last = parts.pop()
        if parts:
            if self._discarding:  # the overlong line ends here: drop its tail
                self._discarding = False
                parts = parts[1:]
            else:
                parts[0] = self._partial + parts[0]
            self._partial = b""
            kept = [part for part in parts if len(part) <= self.max_line]
            self.overlong_lines += len(parts) - len(kept)
            lines += kept
        if self._discarding:
            return
        self._partial += last
        if len(self._partial) > self.max_line:
            self.overlong_lines += 1
            self._partial, self._discarding = b"", True

    def _read(self, budget: int) -> list[bytes]:
        assert self._fh is not None
        lines: list[bytes] = []
        while budget > 0:
            data = self._fh.read(min(CHUNK, budget))
            if not data:
                break
            budget -= len(data)
            self._split(data, lines)
        return lines

    def _rewritten(self) -> bool:
        """Truncated since the last read: shorter than our offset, or its first bytes are not those we saw."""
        assert self._fh is not None
        fd = self._fh.fileno()
        if os.fstat(fd).st_size < self._fh.tell():
            return True
        head = os.pread(fd, HEAD, 0)
        if head[: len(self._head)] != self._head:
            return True
        self._head = head  # it grew: a longer fingerprint from now on
        return False

    def read_lines(self) -> list[bytes]:
        """Complete new lines since the last call (without their newlines)."""
        if self._fh is None:
            self._open(seek_end=False)  # appeared since: everything in it is new
            if self._fh is None:
                return []
        if self._rewritten():
            self.truncations += 1
            log.info("log truncated path=%s", self.path)
            self._fh.seek(0)
            self._partial, self._discarding, self._head = b"", False, b""
            self._rewritten()  # the new fingerprint
        lines = self._read(self.max_read)
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return lines  # renamed away and not yet re-created: keep reading the old file
        if (st.st_dev, st.st_ino) != self._ino:
            lines += self._read(self.max_read)  # drain what was written before the rename
            if self._partial:
                self._keep(self._partial, lines)
            self.close()
            self.rotations += 1
            log.info("log rotated path=%s", self.path)
            self._open(seek_end=False)
            if self._fh is not None:
                lines += self._read(self.max_read)
        return lines
