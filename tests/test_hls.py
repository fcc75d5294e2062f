from __future__ import annotations

import os
from pathlib import Path
from types import MappingProxyType

import pytest

from exporter.sources import SampleContext, StreamRef
from exporter.sources.hls import (
    HlsSource,
    Playlist,
    Seen,
    Segment,
    count_changes,
    parse_playlist,
    segment_file,
)

PANELX = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:10
#EXT-X-MEDIA-SEQUENCE:118
#EXTINF:10.000000,
/streams/stream_5_118.ts
#EXTINF:10.000000,
/streams/stream_5_119.ts
#EXT-X-DISCONTINUITY
#EXTINF:9.960000,
/streams/stream_5_120.ts
"""


def live(first: int, n: int, *, target: int = 2, disc: tuple[int, ...] = (), end: bool = False) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{target}", f"#EXT-X-MEDIA-SEQUENCE:{first}"]
    for seq in range(first, first + n):
        if seq in disc:
            lines.append("#EXT-X-DISCONTINUITY")
        lines += [f"#EXTINF:{target}.000000,", f"s{seq}.ts"]
    if end:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def test_parse_panelx_playlist() -> None:
    p = parse_playlist(PANELX)
    assert p.valid and not p.ended
    assert p.target_duration == 10 and p.media_sequence == 118
    assert p.segments[-1] == Segment("/streams/stream_5_120.ts", 9.96, True)
    assert [s.discontinuity for s in p.segments] == [False, False, True]


def test_parse_xtream_segment_list_and_end() -> None:
    text = ("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-MEDIA-SEQUENCE:40\n#EXT-X-ALLOW-CACHE:YES\n"
            "#EXT-X-TARGETDURATION:11\n#EXT-X-DISCONTINUITY-SEQUENCE:2\n#EXTINF:10.010000,\n12_40.ts\n"
            "#EXTINF:9.990000,\n12_41.ts\n#EXT-X-ENDLIST\n")
    p = parse_playlist(text)
    assert p.ended and p.target_duration == 11 and len(p.segments) == 2
    assert not any(s.discontinuity for s in p.segments)  # DISCONTINUITY-SEQUENCE is not a tag on a segment


def test_parse_garbage() -> None:
    p = parse_playlist("<html>502 Bad Gateway</html>")
    assert not p.valid
    p = parse_playlist("#EXTM3U\n#EXT-X-TARGETDURATION:abc\n#EXT-X-MEDIA-SEQUENCE:x\n#EXTINF:oops,\na.ts\n")
    assert p.valid and p.target_duration is None and p.media_sequence == 0 and p.segments[0].duration is None


def test_segment_file_is_next_to_the_playlist() -> None:
    panelx = segment_file("/srv/streams/stream_5.m3u8", "/streams/stream_5_120.ts?token=x")
    assert panelx == "/srv/streams/stream_5_120.ts"
    assert segment_file("/x/streams/12_.m3u8", "12_41.ts") == "/x/streams/12_41.ts"
    assert segment_file("/srv/s/a.m3u8", "http://cdn.example/live/a9.ts") == "/srv/s/a9.ts"


def seen(first: int, n: int, at: float) -> Seen:
    return Seen(first, first + n - 1, at)


@pytest.mark.parametrize(
    ("prev", "playlist", "now", "expected"),
    [
        (None, live(0, 6, disc=(3,)), 1.0, (0, 0)),  # first look: history is not counted
        (seen(0, 6, 0.0), live(1, 6, disc=(6,)), 2.0, (1, 0)),  # a new segment after a discontinuity
        (seen(0, 6, 0.0), live(1, 6, disc=(3,)), 2.0, (0, 0)),  # that tag was seen already
        (seen(0, 6, 0.0), live(0, 6), 1.0, (0, 0)),  # nothing new
        (seen(10, 6, 0.0), live(0, 3, disc=(0,)), 2.0, (1, 1)),  # numbering restarted: a jump backwards
        (seen(0, 6, 0.0), live(40, 6), 4.0, (0, 1)),  # 35 segments skipped in 4 s of 2 s segments
        (seen(0, 6, 0.0), live(40, 6), 80.0, (0, 0)),  # ... but fine after 80 s without a look
    ],
)
def test_count_changes(prev: Seen | None, playlist: str, now: float, expected: tuple[int, int]) -> None:
    assert count_changes(prev, parse_playlist(playlist), now) == expected


def test_empty_playlist_counts_nothing() -> None:
    assert count_changes(seen(0, 6, 0.0), Playlist(2, 0, (), False, True), 1.0) == (0, 0)


def ctx(now: float, playlists: dict[str, str | None]) -> SampleContext:
    refs = {s: StreamRef(s, s, True, playlist=p) for s, p in playlists.items()}
    return SampleContext(now, MappingProxyType(refs))


def test_source_reads_playlists_and_counts(tmp_path: Path) -> None:
    pl = tmp_path / "stream_5.m3u8"
    missing = str(tmp_path / "nope.m3u8")
    source = HlsSource()
    r = source.sample(ctx(100.0, {"5": str(pl), "6": missing, "7": None}))
    assert set(r.streams) == {"5", "6"}  # 7 names no playlist
    assert not r.streams["5"].present and not r.streams["6"].present

    pl.write_text(live(0, 3))
    (tmp_path / "s2.ts").write_bytes(b"\0" * 250_000)
    os.utime(pl, (1000.0, 1000.0))
    r = source.sample(ctx(101.0, {"5": str(pl), "6": missing}))
    p = r.streams["5"]
    assert p.present and p.updated_at == 1000.0 and p.target_duration == 2 and p.segments == 3
    assert p.output_bytes_per_second == pytest.approx(250_000 / 2)
    assert (p.discontinuities_total, p.media_sequence_jumps_total) == (0, 0)

    pl.write_text(live(1, 3, disc=(3,)))  # s3.ts not written: no bitrate, but no failure either
    r = source.sample(ctx(103.0, {"5": str(pl), "6": missing}))
    assert r.streams["5"].discontinuities_total == 1 and r.streams["5"].output_bytes_per_second is None

    pl.write_text(live(0, 2))  # restarted from 0
    r = source.sample(ctx(105.0, {"5": str(pl), "6": missing}))
    assert r.streams["5"].media_sequence_jumps_total == 1

    pl.unlink()  # gone: counters stay, the rest is absent
    r = source.sample(ctx(107.0, {"5": str(pl), "6": missing}))
    p = r.streams["5"]
    assert not p.present and p.updated_at is None
    assert (p.discontinuities_total, p.media_sequence_jumps_total) == (1, 1)


def test_an_unchanged_playlist_is_not_read_again_but_counts_as_looked_at(tmp_path: Path) -> None:
    pl = tmp_path / "stream_5.m3u8"
    pl.write_text(live(0, 3))
    (tmp_path / "s2.ts").write_bytes(b"\0" * 1000)
    source = HlsSource()
    first = source.sample(ctx(100.0, {"5": str(pl)})).streams["5"]
    (tmp_path / "s2.ts").write_bytes(b"\0" * 2000)  # read again, the bitrate would change
    again = source.sample(ctx(110.0, {"5": str(pl)})).streams["5"]
    assert again is first and again.output_bytes_per_second == 1000 / 2

    # 4 segments ahead 2 s after the last look (at 110, not the last read at 100): more than 2 s explain
    pl.write_text(live(6, 3))
    later = source.sample(ctx(112.0, {"5": str(pl)})).streams["5"]
    assert later.media_sequence == 6 and later.media_sequence_jumps_total == 1

    other = tmp_path / "other.m3u8"  # the stream's playlist moved: read, whatever the old file's state
    other.write_text(live(6, 3))
    os.utime(other, ns=(pl.stat().st_mtime_ns, pl.stat().st_mtime_ns))
    moved = source.sample(ctx(114.0, {"5": str(other)})).streams["5"]
    assert moved.path == str(other) and moved is not later


def test_a_playlist_that_grew_after_fstat_is_read_whole_up_to_the_limit() -> None:
    import io

    from exporter.sources.hls import MAX_PLAYLIST, _read_text

    text = live(0, 3)
    assert _read_text(io.BytesIO(text.encode()), 10) == text  # fstat saw 10 bytes, the writer wrote more
    assert _read_text(io.BytesIO(text.encode()), len(text)) == text
    assert len(_read_text(io.BytesIO(b"#" * (MAX_PLAYLIST + 5)), 3)) == MAX_PLAYLIST


def test_a_newest_segment_that_cannot_be_looked_at_leaves_only_its_bitrate_unknown(tmp_path: Path) -> None:
    # A symlink to itself fails stat with ELOOP, as root too (where a chmod'ed file would not fail with EACCES).
    for stream in ("5", "6"):
        (tmp_path / stream).mkdir()
        (tmp_path / stream / f"stream_{stream}.m3u8").write_text(live(0, 3))
    (tmp_path / "5" / "s2.ts").symlink_to(tmp_path / "5" / "s2.ts")
    (tmp_path / "6" / "s2.ts").write_bytes(b"\0" * 1000)
    r = HlsSource().sample(ctx(100.0, {s: str(tmp_path / s / f"stream_{s}.m3u8") for s in ("5", "6")}))
    assert r.streams["5"].present and r.streams["5"].segments == 3 and r.streams["5"].output_bytes_per_second is None
    assert r.streams["6"].output_bytes_per_second == 1000 / 2
