"""The sampler on fake sources: a failing source is marked down, the others keep going, passwords stay out."""

from __future__ import annotations

import logging
from pathlib import Path
from types import MappingProxyType

import pytest

from exporter.config import Config, parse_config
from exporter.inventory import Inventory, NamesFile
from exporter.sampler import Sampler
from exporter.sources import SampleContext, StreamRef
from exporter.sources.hls import HlsResult
from exporter.sources.processes import ProcessesSource
from exporter.sources.processes_result import ProcessesResult
from exporter.sources.progress import ProgressResult


class _NoProcesses(ProcessesSource):
    """No process runs: the inventory is the declared streams. Without a /proc root, so no events listener."""

    def __init__(self, config: Config) -> None:
        super().__init__(config, proc_root=None)

    def sample(self, ctx: SampleContext) -> ProcessesResult:
        return self.update({})


class _Recording:
    """A source that records its lifecycle and what each round gave it, then fails or returns ``result``."""

    def __init__(self, name: str, result: object = None, fail_open: bool = False) -> None:
        self.name = name
        self.result = result
        self.fail_open = fail_open
        self.calls: list[str] = []
        self.contexts: list[SampleContext] = []

    def open(self) -> None:
        self.calls.append("open")
        if self.fail_open:
            raise PermissionError(13, "Permission denied", "http://ro:pw3@db/live")

    def sample(self, ctx: SampleContext) -> object:
        self.calls.append("sample")
        self.contexts.append(ctx)
        if self.result is None:
            raise OSError(2, "No such file or directory", "http://prov:pw1@origin/live/u1/pw2/1.ts")
        return self.result

    def close(self) -> None:
        self.calls.append("close")


HLS = HlsResult(MappingProxyType({}))
PROGRESS = ProgressResult(MappingProxyType({}), MappingProxyType({}), MappingProxyType({}))


def test_a_failing_source_is_down_with_a_redacted_error_and_the_others_keep_going() -> None:
    config = parse_config({"node": "n"})
    failing, working = _Recording("progress"), _Recording("hls", HLS)
    snap = Sampler(config, _NoProcesses(config), Inventory(config), [failing, working],
                   clock=lambda: 1000.0).sample_once()
    statuses = {s.name: s for s in snap.statuses}
    assert [statuses[n].up for n in ("processes", "progress", "hls")] == [True, False, True]
    error = statuses["progress"].error or ""
    assert error.startswith("FileNotFoundError: ") and "No such file or directory" in error
    assert "pw1" not in error and "pw2" not in error and "u1" not in error and "<redacted>" in error
    assert snap.hls is HLS and snap.progress is None and snap.processes is not None


def test_sources_open_once_see_the_inventory_and_processes_and_close_on_stop() -> None:
    config = parse_config({"node": "n", "streams": {"static": [{"id": "7", "name": "Seven"}]}})
    hls, progress = _Recording("hls", HLS), _Recording("progress", PROGRESS, fail_open=True)
    sampler = Sampler(config, _NoProcesses(config), Inventory(config), [hls, progress])
    first, second = sampler.sample_once(), sampler.sample_once()
    # A source that fails to open is down for the first round with the reason (redacted), then sampled.
    assert [s.up for s in first.statuses] == [True, True, False]
    assert "Permission denied" in (first.statuses[2].error or "") and "pw3" not in (first.statuses[2].error or "")
    assert first.progress is None and second.progress is PROGRESS
    assert hls.calls == ["open", "sample", "sample"] and progress.calls == ["open", "sample"]
    ctx = hls.contexts[0]
    assert ctx.streams == {"7": StreamRef("7", "Seven", True)} and ctx.streams is first.streams
    assert ctx.processes is first.processes and ctx.processes is not None
    sampler.close()
    sampler.close()  # idempotent: every source is closed each time, and may be closed twice
    assert hls.calls[-2:] == ["close", "close"] and progress.calls[-1] == "close"


def test_a_source_without_a_snapshot_field_is_refused_at_start() -> None:
    config = parse_config({"node": "n"})
    with pytest.raises(ValueError, match="every source needs its own Snapshot field"):
        Sampler(config, _NoProcesses(config), Inventory(config), [_Recording("nonesuch", HLS)])
    with pytest.raises(ValueError, match="every source needs its own Snapshot field"):
        Sampler(config, _NoProcesses(config), Inventory(config), [_Recording("hls", HLS), _Recording("hls", HLS)])


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


def test_only_the_exporter_process_freezes_its_start_up_heap_once() -> None:
    """``iptv-exporter run`` (freeze_heap) moves what the first round built out of the cyclic collector's reach,
    once; a sampler built without it (a library user, a test) leaves the process's collector alone."""
    import gc

    config = parse_config({"node": "n"})
    gc.unfreeze()
    try:
        plain = Sampler(config, _NoProcesses(config), Inventory(config))
        plain.sample_once()
        assert gc.get_freeze_count() == 0
        exporter = Sampler(config, _NoProcesses(config), Inventory(config), freeze_heap=True)
        exporter.sample_once()
        frozen = gc.get_freeze_count()
        assert frozen > 0
        made_later = [{"round": n} for n in range(1000)]  # tracked containers, made after the first round
        exporter.sample_once()
        # not frozen again (frozen objects let go leave the count): later objects stay collectable
        assert gc.get_freeze_count() <= frozen and made_later
    finally:
        gc.unfreeze()
