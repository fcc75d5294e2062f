from __future__ import annotations

import os
from pathlib import Path

from exporter.sources.tail import FileFollower


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
