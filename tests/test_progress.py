from __future__ import annotations

import os
from pathlib import Path
from types import MappingProxyType

import pytest

from exporter.sources import SampleContext, StreamRef
from exporter.sources.progress import MAX_TAIL, ProgressSource, ProgressStore, ProgressTracker
from exporter.sources.progress_blocks import Block, BlockParser, parse_blocks
from tests.helpers import REPO

BLOCK = """frame=251
fps=25.00
stream_0_0_q=-1.0
bitrate=N/A
total_size=N/A
out_time_us=10040000
out_time_ms=10040000
out_time=00:00:10.040000
dup_frames=0
drop_frames=0
speed=1.00x
progress=continue
"""


def block(frame: int, drop: int = 0, dup: int = 0, end: bool = False, speed: str = "1.00x") -> str:
    return (f"frame={frame}\nfps=25.00\nout_time_us={frame * 40000}\ndup_frames={dup}\ndrop_frames={drop}\n"
            f"speed={speed}\nprogress={'end' if end else 'continue'}\n")


def test_parses_a_block() -> None:
    parsed = parse_blocks(BLOCK)
    assert parsed.blocks == (Block(frame=251, fps=25.0, speed=1.0, drop_frames=0, dup_frames=0,
                                   out_time_seconds=10.04, total_size=None),)
    assert parsed.skipped == 0
    assert parsed.consumed == len(BLOCK)


def test_consecutive_blocks_with_drops() -> None:
    parsed = parse_blocks(BLOCK + BLOCK.replace("251", "264").replace("drop_frames=0", "drop_frames=2")
                          .replace("speed=1.00x", "speed=0.998x"))
    assert [(b.frame, b.drop_frames, b.speed) for b in parsed.blocks] == [(251, 0, 1.0), (264, 2, 0.998)]


def test_first_block_with_na_and_padded_speed() -> None:
    text = ("frame=1\nfps=0.00\nstream_0_0_q=0.0\nbitrate=N/A\ntotal_size=N/A\nout_time_us=N/A\nout_time_ms=N/A\n"
            "out_time=N/A\ndup_frames=0\ndrop_frames=0\nspeed=N/A\nprogress=continue\n"
            "frame=38\nfps=25.15\nout_time_us=1360000\nspeed= 0.9x\nprogress=continue\n")
    first, second = parse_blocks(text).blocks
    assert first.speed is None and first.out_time_seconds is None and first.fps == 0.0
    assert second.speed == pytest.approx(0.9)
    assert second.out_time_seconds == pytest.approx(1.36)


def test_out_time_fallback_and_negative_start() -> None:
    (b,) = parse_blocks("out_time=01:02:03.500000\nprogress=continue\n").blocks
    assert b.out_time_seconds == pytest.approx(3723.5)
    (b,) = parse_blocks("out_time_us=-9223372036854775807\nout_time=-2562047788:00:54.775807\nprogress=end\n").blocks
    assert b.out_time_seconds is None and b.ended


def test_garbage_is_skipped_and_counted() -> None:
    text = ("frame=10\nthis is not a progress line\nfps=abc\nspeed=1.0\n=5\nkey with space=1\n\n"
            "drop_frames=-3\nprogress=maybe\nprogress=continue\n")
    parsed = parse_blocks(text)
    # not key=value, fps not a number, speed without x, empty key, bad key, negative count, bad progress
    assert parsed.skipped == 7
    assert parsed.blocks == (Block(frame=10),)


def test_lines_after_the_last_block_wait() -> None:
    text = BLOCK + "frame=264\nfps=2"
    parsed = parse_blocks(text)
    assert len(parsed.blocks) == 1
    assert parsed.consumed == len(BLOCK)


def test_incremental_parser_any_chunking() -> None:
    data = (BLOCK + "garbage\n" + block(264, drop=2)).encode()
    for size in (1, 3, 7, 64, len(data)):
        parser = BlockParser()
        blocks = []
        for i in range(0, len(data), size):
            blocks += parser.feed(data[i:i + size])
        assert [b.frame for b in blocks] == [251, 264]
        assert blocks[1].drop_frames == 2
        assert parser.skipped == 1


def test_incremental_parser_drops_overlong_lines() -> None:
    parser = BlockParser(max_line=300)
    assert parser.feed(b"x" * 1000) == []
    assert parser.feed(b"y" * 1000 + b"\n" + block(5).encode())[0].frame == 5
    assert parser.skipped == 1
    assert len(parser._buffer) == 0


def test_tracker_carries_counters_across_restarts() -> None:
    t = ProgressTracker("7", "file")
    for b in parse_blocks(block(100, drop=2, dup=1) + block(200, drop=3, dup=1)).blocks:
        t.feed(b, 1.0)
    assert (t.view().frames_total, t.view().dropped_frames_total, t.view().duplicated_frames_total) == (200, 3, 1)
    for b in parse_blocks(block(10) + block(50, drop=1)).blocks:  # restarted: the count fell
        t.feed(b, 2.0)
    v = t.view()
    assert (v.frames_total, v.dropped_frames_total, v.duplicated_frames_total) == (250, 4, 1)
    assert v.runs == 2 and v.updated_at == 2.0
    t.new_run()  # told of a restart (new push): the next block is counted on top
    t.feed(parse_blocks(block(60)).blocks[0], 3.0)
    assert t.view().frames_total == 310
    assert t.view().runs == 3


def test_tracker_keeps_last_known_on_na_and_zero_after_end() -> None:
    t = ProgressTracker("7", "push")
    t.feed(parse_blocks(block(100)).blocks[0], 1.0)
    t.feed(parse_blocks("frame=110\nspeed=N/A\nfps=N/A\nprogress=continue\n").blocks[0], 2.0)
    assert t.view().speed == 1.0 and t.view().fps == 25.0 and t.view().frames_total == 110
    t.feed(parse_blocks(block(120, end=True)).blocks[0], 3.0)
    assert t.view().fps == 0.0 and t.view().speed == 0.0 and t.view().ended


def ctx(now: float, **streams: str | None) -> SampleContext:
    refs = {s: StreamRef(s, s, True, progress=p) for s, p in streams.items()}
    return SampleContext(now, MappingProxyType(refs))


def test_file_source_reads_new_blocks_and_restarts(tmp_path: Path) -> None:
    path = tmp_path / "7.progress"
    source = ProgressSource()
    assert source.sample(ctx(1.0, **{"7": str(path)})).streams == {}  # missing: no series, no failure
    path.write_text(block(100) + block(200, drop=1) + "frame=2")
    r = source.sample(ctx(2.0, **{"7": str(path)}))
    p = r.streams["7"]
    assert p.frames_total == 200 and p.dropped_frames_total == 1 and p.via == "file"
    assert p.updated_at == pytest.approx(os.stat(path).st_mtime)
    with path.open("a") as fh:
        fh.write("50\nnonsense\nprogress=continue\n")  # the partial block completed, with one garbage line
    r = source.sample(ctx(3.0, **{"7": str(path)}))
    assert r.streams["7"].frames_total == 250
    assert r.skipped_lines_total["file"] == 1
    path.write_text(block(30))  # ffmpeg restarted: truncated and started again
    r = source.sample(ctx(4.0, **{"7": str(path)}))
    assert r.streams["7"].frames_total == 280
    assert r.streams["7"].runs == 2


def test_file_source_stamps_with_mtime_so_a_frozen_writer_stops_the_clock(tmp_path: Path) -> None:
    path = tmp_path / "7.progress"
    path.write_text(block(100))
    os.utime(path, (1000.0, 1000.0))
    source = ProgressSource()
    assert source.sample(ctx(5000.0, **{"7": str(path)})).streams["7"].updated_at == 1000.0
    assert source.sample(ctx(6000.0, **{"7": str(path)})).streams["7"].updated_at == 1000.0


def test_file_source_reads_only_the_tail_of_a_big_file(tmp_path: Path) -> None:
    path = tmp_path / "7.progress"
    text = "".join(block(i) for i in range(1, 3000))
    assert len(text) > MAX_TAIL
    path.write_text(text)
    r = ProgressSource().sample(ctx(1.0, **{"7": str(path)}))
    assert r.streams["7"].frames_total == 2999
    assert r.skipped_lines_total["file"] == 0  # the cut-off first line is dropped, not counted


def test_push_store_and_url_streams() -> None:
    store = ProgressStore(max_streams=2)
    assert store.open("12")
    store.add("12", parse_blocks(block(100)).blocks, 2, 10.0)
    assert store.open("13") and not store.open("14")
    store.reject("full")
    source = ProgressSource(store)
    r = source.sample(ctx(11.0, **{"12": "http://127.0.0.1:25500/progress.php?stream_id=12", "13": None}))
    assert set(r.streams) == {"12"}  # 13 opened a push but sent no block yet
    assert r.streams["12"].via == "push" and r.streams["12"].updated_at == 10.0
    assert r.skipped_lines_total == {"file": 0, "push": 2}
    assert r.push_rejected_total == {"full": 1}
    assert store.open("12")  # the same stream pushing again: a new ffmpeg run
    store.add("12", parse_blocks(block(40)).blocks, 0, 12.0)
    assert source.sample(ctx(13.0, **{"12": None})).streams["12"].frames_total == 140


def test_module_has_no_prometheus_import() -> None:
    text = (REPO / "exporter" / "sources" / "progress.py").read_text()
    assert "prometheus_client" not in text
