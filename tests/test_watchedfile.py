"""exporter.watchedfile: one answer to "did this file change since I last read it?", on real files."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from exporter.watchedfile import FileStamp, WatchedFile, stamp


class Counting:
    """A load function that counts its reads and refuses an empty file, as the token file does."""

    def __init__(self) -> None:
        self.reads = 0

    def __call__(self, path: Path) -> str:
        self.reads += 1
        text = path.read_text(encoding="utf-8")
        if not text:
            raise ValueError("empty")
        return text


def test_read_again_only_when_the_stamp_changes(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("one")
    load = Counting()
    f = WatchedFile(path, load, what="test file")
    assert f.value is None and f.value_if_unchanged() is None  # never read
    assert f.refresh() and f.value == "one" and load.reads == 1
    assert not f.refresh() and not f.refresh() and load.reads == 1  # unchanged: one stat each, no read
    assert f.value_if_unchanged() == "one"

    before = path.stat()
    path.write_text("two")  # same size; force the same mtime too: the ctime still tells
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert f.value_if_unchanged() is None  # changed: not trusted until read again
    assert f.refresh() and f.value == "two" and load.reads == 2

    fresh = tmp_path / "f.new"
    fresh.write_text("six")
    os.replace(fresh, path)  # replaced by rename, as a token rotation or geoipupdate does
    assert f.refresh() and f.value == "six"


def test_a_problem_is_logged_once_and_the_file_tried_once_per_change(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "f"
    load = Counting()
    f = WatchedFile(path, load, what="test file", logger=logging.getLogger("t"))
    with caplog.at_level(logging.INFO, logger="t"):
        for _ in range(3):
            assert not f.refresh()
        assert f.problem == "does not exist" and f.value is None
        path.write_text("")
        for _ in range(3):
            assert not f.refresh()
        assert f.problem == "empty" and load.reads == 1  # the broken file is not read again until it changes
        path.write_text("ok")
        assert f.refresh() and f.value == "ok" and f.problem is None
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert messages == [
        (logging.WARNING, f"test file unreadable path={path} problem=does not exist"),
        (logging.WARNING, f"test file unreadable path={path} problem=empty"),
        (logging.INFO, f"test file usable again path={path}"),
    ]


def test_a_failure_drops_the_value_unless_asked_to_keep_it(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("good")
    dropping = WatchedFile(path, Counting(), what="token")
    keeping = WatchedFile(path, Counting(), what="database", keep_on_failure=True)
    assert dropping.refresh() and keeping.refresh()
    path.unlink()
    assert dropping.refresh() and dropping.value is None  # True: the value changed (to none)
    assert not keeping.refresh() and keeping.value == "good"  # a rename may be in progress
    assert keeping.value_if_unchanged() is None
    path.write_text("better")
    assert keeping.refresh() and keeping.value == "better"
    assert keeping.forget() == "better" and keeping.value is None
    assert keeping.refresh() and keeping.value == "better"  # forgotten: read again


def test_stamp_is_the_whole_identity(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("x")
    st = path.stat()
    assert stamp(path) == FileStamp(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    assert stamp(tmp_path / "missing") is None
