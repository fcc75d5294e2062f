from __future__ import annotations

import os
from pathlib import Path

import pytest

from exporter.sources.tail import FileFollower, UnsafeLogFile


def test_starts_at_end_and_keeps_partial_lines(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"old\n")
    f = FileFollower(log)
    assert f.read_lines() == []
    with log.open("ab") as fh:
        fh.write(b"one\ntw")
    assert f.read_lines() == [b"one"]
    with log.open("ab") as fh:
        fh.write(b"o\n")
    assert f.read_lines() == [b"two"]
    f.close()


def test_rename_and_create(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"")
    f = FileFollower(log)
    with log.open("ab") as fh:
        fh.write(b"before\n")
    os.rename(log, tmp_path / "a.log.1")
    with (tmp_path / "a.log.1").open("ab") as fh:
        fh.write(b"late\n")  # nginx writes to the old file until it reopens
    log.write_bytes(b"new\n")
    assert f.read_lines() == [b"before", b"late", b"new"]
    assert f.rotations == 1
    f.close()


def test_copytruncate(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"")
    f = FileFollower(log)
    log.write_bytes(b"x" * 100 + b"\n")
    assert len(f.read_lines()) == 1
    log.write_bytes(b"after\n")  # truncated and rewritten, shorter than our offset
    assert f.read_lines() == [b"after"]
    assert f.truncations == 1
    f.close()


def test_missing_then_appears(tmp_path: Path) -> None:
    log = tmp_path / "later.log"
    f = FileFollower(log)
    assert not f.exists and f.read_lines() == []
    log.write_bytes(b"first\n")
    assert f.read_lines() == [b"first"]
    f.close()


def test_overlong_lines_are_dropped_as_they_grow(tmp_path: Path) -> None:
    """Lines over max_line never sit in memory: dropped (and counted once) whether they end in this read,
    a later one, or never."""
    path = tmp_path / "a.log"
    path.write_bytes(b"")
    f = FileFollower(path, max_line=10)
    with path.open("ab") as fh:
        fh.write(b"ok1\n" + b"x" * 25 + b"\nok2\n" + b"y" * 8)
    assert f.read_lines() == [b"ok1", b"ok2"] and f.overlong_lines == 1
    with path.open("ab") as fh:
        fh.write(b"y" * 8)  # the partial line passes the cap: dropped now, its tail skipped later
    assert f.read_lines() == [] and f.overlong_lines == 2
    with path.open("ab") as fh:
        fh.write(b"yyy\nok3\n")
    assert f.read_lines() == [b"ok3"] and f.overlong_lines == 2
    f.close()


def test_truncated_and_regrown_past_the_offset_is_read_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"first run line 1\nfirst run line 2\n")
    f = FileFollower(path, from_start=True)
    assert f.read_lines() == [b"first run line 1", b"first run line 2"]
    path.write_bytes(b"second run line 1\nsecond run line 2\nsecond run line 3\n")  # O_TRUNC, then longer
    assert f.read_lines() == [b"second run line 1", b"second run line 2", b"second run line 3"]
    assert f.truncations == 1
    with path.open("ab") as fh:
        fh.write(b"second run line 4\n")
    assert f.read_lines() == [b"second run line 4"] and f.truncations == 1
    f.close()


def _read_once(path: Path) -> list[bytes]:
    f = FileFollower(path, from_start=True)
    try:
        return f.read_lines()
    finally:
        f.close()


def test_symlink_rule(tmp_path: Path) -> None:
    target = tmp_path / "target.log"
    target.write_bytes(b"secret\n")
    link = tmp_path / "a.log"
    link.symlink_to(target)
    assert _read_once(link) == [b"secret"]  # root's own link: followed
    if os.geteuid() != 0:
        return  # the rest needs chown
    os.lchown(link, 65534, 65534)
    with pytest.raises(UnsafeLogFile):
        _read_once(link)
    os.chown(target, 65534, 65534)
    assert _read_once(link) == [b"secret"]  # the owner's link to its file
