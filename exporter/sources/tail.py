"""Follow a growing log file across rotation, like ``tail -F``: the access log and ffmpeg error logs.

Handles rename-and-create (logrotate's default: finish the old file, then read the new one from its
start), copytruncate (the file shrinks under us: start again at 0), a file that is missing now and
appears later (read from its start), and a partial last line (kept until its newline arrives).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

MAX_READ = 64 << 20
"""At most this much per call, so a huge backlog is worked through over several rounds, not in one."""


class FileFollower:
    def __init__(self, path: str | Path, *, from_start: bool = False, max_read: int = MAX_READ) -> None:
        self.path = Path(path)
        self.max_read = max_read
        self._fh: BinaryIO | None = None
        self._ino: tuple[int, int] | None = None
        self._partial = b""
        self.rotations = 0
        self.truncations = 0
        self._open(seek_end=not from_start)

    @property
    def exists(self) -> bool:
        return self._fh is not None

    def _open(self, *, seek_end: bool) -> None:
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 - kept open between rounds on purpose
        except FileNotFoundError:
            self._fh, self._ino = None, None
            return
        st = os.fstat(fh.fileno())
        self._fh, self._ino = fh, (st.st_dev, st.st_ino)
        self._partial = b""
        if seek_end:
            fh.seek(0, os.SEEK_END)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _read(self, budget: int) -> list[bytes]:
        assert self._fh is not None
        data = self._fh.read(budget)
        if not data:
            return []
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        return lines

    def read_lines(self) -> list[bytes]:
        """Complete new lines since the last call (without their newlines)."""
        if self._fh is None:
            self._open(seek_end=False)  # appeared since: everything in it is new
            if self._fh is None:
                return []
        lines = self._read(self.max_read)
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return lines  # renamed away and not yet re-created: keep reading the old file
        if (st.st_dev, st.st_ino) != self._ino:
            lines += self._read(self.max_read)  # drain what was written before the rename
            if self._partial:
                lines.append(self._partial)
            self.close()
            self.rotations += 1
            log.info("log rotated path=%s", self.path)
            self._open(seek_end=False)
            if self._fh is not None:
                lines += self._read(self.max_read)
        elif st.st_size < self._fh.tell():
            self.truncations += 1
            log.info("log truncated path=%s", self.path)
            self._fh.seek(0)
            self._partial = b""
            lines += self._read(self.max_read)
        return lines
