"""Shared fixtures. Real parts start on free loopback ports and are always stopped, even on failure."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import Exporter, Proc


@pytest.fixture
def procs() -> Iterator[Callable[..., Proc]]:
    """Start child processes that are stopped at teardown: ``procs(argv, log=path)``."""
    started: list[Proc] = []

    def start(argv: list[str], **kw: object) -> Proc:
        p = Proc(argv, **kw).start()  # type: ignore[arg-type]
        started.append(p)
        return p

    yield start
    for p in reversed(started):
        p.stop()


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[Callable[..., Exporter]]:
    """Start the real exporter process: ``exporter(config_path, args=[...])``; stopped at teardown."""
    started: list[Exporter] = []

    def start(config: Path | None, *, args: tuple[str, ...] = (), wait_ready: bool = True) -> Exporter:
        e = Exporter(config, tmp_path, args=args).start(wait_ready=wait_ready)
        started.append(e)
        return e

    yield start
    for e in started:
        e.stop()


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A folder another user can enter (pytest's tmp_path is root's alone): for processes run as nobody."""
    path = Path(tempfile.mkdtemp(prefix="iptv-world-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite tests/golden/metrics.prom from this run instead of comparing with it")
