"""The sampler on fake sources: a failing source is marked down, the others keep going, passwords stay out."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from exporter.config import parse_config
from exporter.inventory import NamesFile
from exporter.sampler import Sampler
from exporter.sources import SampleContext
from exporter.sources.processes import ProcessesResult, ProcessesSource


class _NoProcesses(ProcessesSource):
    def sample(self, ctx: SampleContext) -> ProcessesResult:
        return self.update({})


class _Failing:
    name = "failing"

    def sample(self, ctx: SampleContext) -> None:
        raise OSError(2, "No such file or directory", "http://prov:pw1@origin/live/u1/pw2/1.ts")


class _Working:
    name = "working"

    def sample(self, ctx: SampleContext) -> int:
        return 42


def test_a_failing_source_is_down_with_a_redacted_error_and_the_others_keep_going() -> None:
    config = parse_config({"node": "n"})
    snap = Sampler(config, [_Failing(), _Working()], processes=_NoProcesses(config), clock=lambda: 1000.0).sample_once()
    statuses = {s.name: s for s in snap.statuses}
    assert [statuses[n].up for n in ("processes", "failing", "working")] == [True, False, True]
    error = statuses["failing"].error or ""
    assert error.startswith("FileNotFoundError: ") and "No such file or directory" in error
    assert "pw1" not in error and "pw2" not in error and "u1" not in error and "<redacted>" in error
    assert snap.results["working"] == 42 and "failing" not in snap.results


def test_names_file_read_on_change_and_missing_file_warns_once(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "streams.csv"
    names = NamesFile(path)
    with caplog.at_level(logging.WARNING, logger="exporter.inventory"):
        assert names.names() == {} and names.names() == {}
    assert len([r for r in caplog.records if "unreadable" in r.getMessage()]) == 1
    path.write_text("id,name\n7,BBC One\n8, Eight \n")
    assert names.names() == {"7": "BBC One", "8": "Eight"}
    path.write_text("7,Renamed channel\n")
    assert names.names() == {"7": "Renamed channel"}
