"""Real failing filesystems for the chaos tests: a small loop-mounted ext4 that fills up, files made immutable.

Mounting needs root (CAP_SYS_ADMIN) and a loop device, as .ci/run and this machine have. Elsewhere the tests
that need it are skipped with that reason: the fault cannot be produced for real without it, and a faked
one would not show what SQLite and the kernel really do (the SIGBUS of issue 15 came from the kernel).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import wait_until


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=False)


@contextmanager
def ext4(tmp: Path, size_mib: int = 8) -> Iterator[Path]:
    """A fresh ext4 of ``size_mib`` MiB mounted on ``tmp/fs`` (no root reserve: it really fills up)."""
    if os.geteuid() != 0 or shutil.which("mkfs.ext4") is None:
        pytest.skip("needs root and mkfs.ext4 to mount a small filesystem that can fill up or turn immutable")
    image, mnt = tmp / "fs.img", tmp / "fs"
    with open(image, "wb") as fh:
        fh.truncate(size_mib << 20)
    made = _run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)])
    assert made.returncode == 0, made.stderr
    mnt.mkdir()
    mounted = _run(["mount", "-o", "loop", str(image), str(mnt)])
    if mounted.returncode != 0:
        pytest.skip(f"cannot loop-mount a filesystem here: {mounted.stderr.strip()}")
    try:
        yield mnt
    finally:
        _run(["chattr", "-R", "-i", str(mnt)])
        # The exporter under test has stopped by now; a straggler (a detached command) may still hold a file.
        if _run(["umount", str(mnt)]).returncode != 0:
            _run(["umount", "-l", str(mnt)])


def fill(directory: Path) -> Path:
    """Write a file in ``directory`` until the filesystem is full; returns it (delete it to free the space)."""
    filler = directory / "filler"
    chunk = b"\0" * (64 << 10)
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(chunk)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
        try:  # the last partial chunk's worth, byte by byte
            while True:
                fh.write(chunk[:512])
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return filler


@contextmanager
def immutable(paths: Sequence[Path]) -> Iterator[None]:
    """``chattr +i`` the files that exist among ``paths`` (even root cannot write them); undone at exit."""
    present = [str(p) for p in paths if p.exists()]
    done = _run(["chattr", "+i", *present])
    if done.returncode != 0:
        pytest.skip(f"chattr +i not supported here: {done.stderr.strip()}")
    try:
        yield
    finally:
        wait_until(lambda: _run(["chattr", "-i", *present]).returncode == 0, timeout=10, what="chattr -i")


def corrupt(path: Path, *, keep: int = 4096) -> None:
    """Overwrite everything after the first ``keep`` bytes (SQLite's header page) with garbage, in place."""
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.seek(keep)
        fh.write(bytes((i * 37 + 11) % 251 for i in range(size - keep)))
