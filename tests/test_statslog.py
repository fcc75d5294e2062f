"""ffmpeg's statistics line from its stderr log: the parser on literal lines, the source on files a real
ffmpeg wrote, and the progress families it feeds for streams that report no ``-progress``."""

from __future__ import annotations

import os
import re
from functools import partial
from pathlib import Path
from types import MappingProxyType

import pytest

from exporter.config import ConfigError, parse_config
from exporter.metrics import health
from exporter.snapshot import Snapshot
from exporter.sources import SampleContext, StreamRef
from exporter.sources.progress import ProgressResult, StreamProgress
from exporter.sources.progress_blocks import Block
from exporter.sources.statslog import StatsLogResult, StatsLogSource, parse_line, parse_stats
from tests.helpers import REPO, Proc, require_binary, wait_until

LINE = ("frame= 1234 fps= 25 q=-1.0 size=   10240kB time=00:00:49.36 bitrate=1699.5kbits/s dup=0 drop=3 "
        "speed=1.00x    ")


def test_parses_the_statistics_line() -> None:
    assert parse_line(LINE) == Block(frame=1234, fps=25.0, speed=1.0, drop_frames=3, dup_frames=0,
                                     out_time_seconds=49.36)


def test_first_line_last_line_and_audio_only() -> None:
    first = parse_line("frame=    1 fps=0.0 q=0.0 size=N/A time=-577014:32:22.77 bitrate=N/A speed=N/A    ")
    assert first == Block(frame=1, fps=0.0)  # N/A and the negative time before the first packet: no news
    last = parse_line("frame=   20 fps=0.0 q=-0.0 Lsize=N/A time=00:00:02.00 bitrate=N/A dup=0 drop=27 speed= 157x")
    assert last.ended and last.speed == 157.0 and last.drop_frames == 27
    audio = parse_line("size=     256kB time=00:00:16.00 bitrate= 131.1kbits/s speed=2.44e+03x    ")
    assert audio == Block(out_time_seconds=16.0, speed=2440.0)


def test_updates_between_carriage_returns_and_other_stderr_lines() -> None:
    text = ("Input #0, lavfi, from 'testsrc':\n  Stream #0:0: Video: wrapped_avframe\n"
            "frame=    1 fps=0.0 q=-0.0 size=N/A time=00:00:00.04 bitrate=N/A speed=N/A    \r"
            "[null @ 0x5635] Application provided invalid, non monotonically increasing dts\n"
            "frame=   25 fps= 25 q=-0.0 size=N/A time=00:00:01.00 bitrate=N/A speed=   1x    \r"
            "frame= abc fps= 25 q=-0.0 size=N/A time=00:00:01.00 bitrate=N/A speed=   1x    \r"
            "frame=   50 fps= 25 q=-0.0 size=N/A time=00:00:02.00 bitrate=N/A speed=   1x    \r"
            "frame=   75 fps= 25 q=-0.0 size=N/A ti")
    parsed = parse_stats(text)
    assert [r.frame for r in parsed.reports] == [1, 25, 50]
    assert parsed.skipped == 1  # the statistics line that did not parse; banner and warnings are not counted
    assert text[parsed.consumed:] == "frame=   75 fps= 25 q=-0.0 size=N/A ti"  # waits for its \r


def test_values_that_cannot_be_real_are_skipped() -> None:
    assert parse_stats(f"frame= {2**60} fps=25 speed=1x\rframe=1 fps=1e9 speed=1x\rframe=2 speed=fast\r").skipped == 3


def ctx(*streams: str) -> SampleContext:
    return SampleContext(1.0, MappingProxyType({s: StreamRef(s, s, True) for s in streams}))


def test_source_counts_restarts_not_rotations(tmp_path: Path) -> None:
    source = StatsLogSource(str(tmp_path / "{stream}.log"))
    assert source.sample(ctx("7")).streams == {}  # no log yet: no series, no failure
    log = tmp_path / "7.log"
    log.write_text("frame=  100 fps= 25 q=-0.0 size=N/A time=00:00:04.00 bitrate=N/A dup=1 drop=2 speed=1x \r")
    os.utime(log, (1000.0, 1000.0))
    p = source.sample(ctx("7")).streams["7"]
    assert (p.via, p.frames_total, p.dropped_frames_total, p.duplicated_frames_total) == ("stats", 100, 2, 1)
    assert p.updated_at == 1000.0  # the log's mtime: a stalled ffmpeg stops the clock
    log.write_text("frame=   30 fps= 25 q=-0.0 size=N/A time=00:00:01.20 bitrate=N/A speed=1x \r")  # `2>` again
    p = source.sample(ctx("7")).streams["7"]
    assert (p.frames_total, p.dropped_frames_total, p.runs) == (130, 2, 2)
    log.rename(tmp_path / "7.log.1")  # logrotate, under the same running ffmpeg: its count goes on
    log.write_text("frame=   80 fps= 25 q=-0.0 size=N/A time=00:00:03.20 bitrate=N/A speed=1x \r")
    p = source.sample(ctx("7")).streams["7"]
    assert (p.frames_total, p.runs) == (180, 2)  # no new run: the 30 already counted are not counted twice
    log.write_text("")  # copytruncate; ffmpeg (2>>) writes on at the new end
    with log.open("a") as fh:
        fh.write("frame=   90 fps= 25 q=-0.0 size=N/A time=00:00:03.60 bitrate=N/A speed=1x \r"
                 "frame=  100 fps= 25 q=-0.0 size=N/A time=00:00:04.00 bitrate=N/A speed=1x \r")
    p = source.sample(ctx("7")).streams["7"]
    assert (p.frames_total, p.runs) == (200, 2)  # the counts are ffmpeg's totals: its latest line is enough
    assert source.sample(ctx()).streams == {} and source._logs == {}  # left the inventory: forgotten


FFMPEG_RUN = 3  # seconds of test pattern per run, at 10 fps out of 25: both frames and drops are counted


def last_report(text: str) -> tuple[int, int]:
    """The final frame and drop counts of each run, as ffmpeg printed them (its ``Lsize=`` lines)."""
    finals = re.findall(r"frame=\s*(\d+)[^\r\n]*Lsize=[^\r\n]*drop=(\d+)", text)
    return sum(int(f) for f, _ in finals), sum(int(d) for _, d in finals)


def reading(source: StatsLogSource, run: int, drops_before: int) -> StreamProgress | None:
    """The stream's report once it comes from run ``run`` of ffmpeg, still running, with drops of its own."""
    p = source.sample(ctx("7")).streams.get("7")
    return p if p is not None and p.runs == run and not p.ended and p.dropped_frames_total > drops_before else None


def test_real_ffmpeg_appending_its_stderr(tmp_path: Path) -> None:
    """Two runs of a real ffmpeg appending to one log (``2>>``, as XUI does with its ``.errors``): read while
    it writes, ended after it exits, and the second run's counts add to the first's."""
    argv = [require_binary("ffmpeg"), "-hide_banner", "-nostdin", "-re", "-f", "lavfi",
            "-i", "testsrc=size=160x120:rate=25", "-t", str(FFMPEG_RUN), "-fps_mode", "cfr", "-r", "10",
            "-f", "null", "-"]  # 25 fps in, 10 out: ffmpeg drops frames and says so (`drop=`)
    log = tmp_path / "7.log"
    source = StatsLogSource(str(tmp_path / "{stream}.log"))
    drops = 0
    for run in (1, 2):
        proc = Proc(argv, log=log).start()
        try:
            running = wait_until(partial(reading, source, run, drops), timeout=30,
                                 what=f"run {run} read while ffmpeg writes")
            assert running.frames_total > 0 and running.fps is not None
            assert proc.popen.wait(30) == 0
        finally:
            proc.stop()
        done = source.sample(ctx("7")).streams["7"]
        frames, drops = last_report(log.read_text())
        assert done.ended and done.fps == 0.0 and done.runs == run
        assert (done.frames_total, done.dropped_frames_total) == (frames, drops)
        assert frames >= run * FFMPEG_RUN * 10 - run  # really the stream's frames, not a partial count
    assert source.sample(ctx("7")).skipped_lines_total == 0


def report(stream: str, via: str, frames: int) -> StreamProgress:
    return StreamProgress(stream, via, 5.0, 25.0, 1.0, None, frames, 0, 0, 1, False)


def test_progress_report_wins_and_stats_fill_the_other_streams() -> None:
    refs = MappingProxyType({s: StreamRef(s, s, True) for s in ("7", "8")})
    snap = Snapshot(
        timestamp=6.0, complete=True, streams=refs,
        progress=ProgressResult(MappingProxyType({"7": report("7", "file", 100)}), {"file": 0, "push": 0}, {}),
        statslog=StatsLogResult(MappingProxyType({"7": report("7", "stats", 999), "8": report("8", "stats", 50)}),
                                skipped_lines_total=4),
    )
    families = {f.name: f for f in health.collect(snap)}
    frames = {s.labels["stream"]: s.value for s in families["iptv_stream_frames"].samples}
    assert frames == {"7": 100, "8": 50}  # one source per stream's counters: -progress where it reports
    skipped = {s.labels["via"]: s.value for s in families["iptv_progress_skipped_lines"].samples}
    assert skipped == {"file": 0, "push": 0, "stats": 4}


def test_config_pattern_needs_the_stream() -> None:
    assert parse_config({"progress": {"stats_log": "/var/log/iptv/{stream}.log"}}).progress.stats_log
    with pytest.raises(ConfigError, match=r"progress\.stats_log: .*must contain \{stream\}"):
        parse_config({"progress": {"stats_log": "/var/log/iptv/ffmpeg.log"}})


def test_module_has_no_prometheus_import() -> None:
    assert "prometheus_client" not in (REPO / "exporter" / "sources" / "statslog.py").read_text()
