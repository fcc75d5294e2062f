"""HLS output of each stream: is the playlist still being written, and at what bitrate.

ffmpeg rewrites a live playlist after every segment (hls muxer: write to a temporary file, then rename;
segment muxer: in place), so the playlist's mtime is when the stream last produced output. The newest
segment's size over its ``#EXTINF`` duration is the output bitrate. Media-sequence jumps (a restart that
started numbering again, or segments we never saw listed) and ``#EXT-X-DISCONTINUITY`` tags on new
segments are counted.

:func:`parse_playlist` is pure and tested with literal playlists; :class:`HlsSource` does the I/O and
keeps the counters between rounds.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO
from urllib.parse import urlsplit

from exporter.sources import SampleContext
from exporter.sources.tail import open_log
from exporter.watchedfile import WatchedFile

log = logging.getLogger(__name__)

MAX_PLAYLIST = 1 << 20
"""A live playlist is a few hundred bytes; anything bigger than this is not one we should read whole."""


@dataclass(frozen=True, slots=True)
class Segment:
    uri: str
    duration: float | None
    discontinuity: bool
    """An ``#EXT-X-DISCONTINUITY`` tag stands before this segment."""


@dataclass(frozen=True, slots=True)
class Playlist:
    target_duration: float | None
    media_sequence: int
    segments: tuple[Segment, ...]
    ended: bool
    """``#EXT-X-ENDLIST``: the writer finished (ffmpeg exited cleanly)."""
    valid: bool
    """Starts with ``#EXTM3U``."""


def _tag_value(line: str) -> str:
    return line.split(":", 1)[1].strip() if ":" in line else ""


def parse_playlist(text: str) -> Playlist:
    """Parse a media playlist. Unknown tags are ignored; malformed numbers count as absent."""
    lines = [line.strip() for line in text.splitlines()]
    target: float | None = None
    sequence = 0
    segments: list[Segment] = []
    duration: float | None = None
    discontinuity = False
    ended = False
    for line in lines:
        if not line:
            continue
        if line[0] == "#":
            if line.startswith("#EXTINF"):  # the most common tag first: one per segment
                try:
                    duration = float(_tag_value(line).split(",", 1)[0])
                except ValueError:
                    duration = None
            elif line.startswith("#EXT-X-TARGETDURATION"):
                try:
                    target = float(_tag_value(line))
                except ValueError:
                    target = None
            elif line.startswith("#EXT-X-MEDIA-SEQUENCE"):
                try:
                    sequence = int(_tag_value(line))
                except ValueError:
                    sequence = 0
            elif line.startswith("#EXT-X-DISCONTINUITY") and not line.startswith("#EXT-X-DISCONTINUITY-SEQUENCE"):
                discontinuity = True
            elif line.startswith("#EXT-X-ENDLIST"):
                ended = True
            continue
        segments.append(Segment(line, duration, discontinuity))
        duration, discontinuity = None, False
    return Playlist(target, sequence, tuple(segments), ended, bool(lines) and lines[0] == "#EXTM3U")


def segment_file(playlist_path: str, uri: str) -> str:
    """Where a listed segment is on disk: its base name next to the playlist.

    PanelX lists ``/streams/stream_5_118.ts`` (a URL path, from ``-hls_base_url``) and Xtream lists
    ``12_345.ts``; both live in the playlist's directory.
    """
    name = urlsplit(uri).path.rsplit("/", 1)[-1]
    return os.path.join(os.path.dirname(playlist_path), name)


@dataclass(frozen=True, slots=True)
class StreamPlaylist:
    stream: str
    path: str
    present: bool
    """The playlist could be read this round. When False only the counters below mean anything."""
    updated_at: float | None
    target_duration: float | None
    segments: int
    media_sequence: int | None
    ended: bool
    output_bytes_per_second: float | None
    """Newest segment's size x 8 / its duration; None if it is missing or has no duration."""
    discontinuities_total: int
    media_sequence_jumps_total: int


@dataclass(frozen=True, slots=True)
class HlsResult:
    streams: Mapping[str, StreamPlaylist]


@dataclass
class Seen:
    """What the last look at a playlist found, to tell new segments and jumps from old ones."""

    first: int
    last: int
    at: float


def count_changes(prev: Seen | None, playlist: Playlist, now: float) -> tuple[int, int]:
    """(new discontinuities, media-sequence jumps) between the previous look and this playlist.

    Only tags on segments we have not seen before count. A jump is a sequence that went backwards (the
    writer restarted its numbering) or forwards by more segments than the elapsed time explains.
    """
    if not playlist.segments:
        return 0, 0
    first = playlist.media_sequence
    if prev is None:
        return 0, 0  # history from before we started watching is not counted
    backwards = first < prev.first
    allowed = 1
    if playlist.target_duration:
        allowed += math.ceil(max(0.0, now - prev.at) / playlist.target_duration)
    forwards = first > prev.last + allowed
    jumped = backwards or forwards
    new_from = first if jumped else prev.last + 1
    discontinuities = sum(
        1 for i, seg in enumerate(playlist.segments) if first + i >= new_from and seg.discontinuity
    )
    return discontinuities, int(jumped)


@dataclass
class _State:
    seen: Seen | None = None
    discontinuities: int = 0
    jumps: int = 0
    file: WatchedFile[tuple[str, float]] | None = None
    """The playlist's file: its text and mtime, read again only when it changed."""
    last: StreamPlaylist | None = None
    """What the last read found."""


def _read_text(fh: BinaryIO, size: int) -> str:
    """Up to MAX_PLAYLIST bytes: as much as fstat promised plus one (asking for the whole MiB at once costs
    an allocation of that size), then the rest if the file grew meanwhile."""
    first = min(size + 1, MAX_PLAYLIST)
    data = fh.read(first)
    if len(data) == first < MAX_PLAYLIST:
        data += fh.read(MAX_PLAYLIST - first)
    return data.decode("utf-8", errors="replace")


def _read_playlist(path: Path) -> tuple[str, float]:
    """The playlist's text and mtime."""
    with open_log(path) as fh:
        st = os.fstat(fh.fileno())
        return _read_text(fh, st.st_size), st.st_mtime


def _absent(state: _State, stream: str, path: str) -> StreamPlaylist:
    """No playlist this round: only the counters mean anything."""
    return StreamPlaylist(stream, path, False, None, None, 0, None, False, None, state.discontinuities, state.jumps)


class HlsSource:
    """Reads each inventory stream's playlist (``StreamRef.playlist``); a missing one is not a failure.

    A playlist whose stamp (exporter.watchedfile) is that of the last read is not read again (ffmpeg rewrites
    a live playlist once a segment, every 2-10 s; rounds come every 5 s): the last answer stands, as
    parsing the same text again would give it.
    """

    name = "hls"

    def __init__(self) -> None:
        self._state: dict[str, _State] = {}

    def open(self) -> None:
        """Nothing to open: each playlist is opened and closed within a round."""

    def close(self) -> None:
        """Nothing held between rounds."""

    def _look(self, stream: str, path: str, now: float) -> StreamPlaylist:
        state = self._state.setdefault(stream, _State())
        if state.file is None or str(state.file.path) != path:  # new, or the stream's playlist moved
            state.file = WatchedFile(Path(path), _read_playlist, what=f"playlist of stream {stream}", logger=log,
                                     missing_level=logging.INFO)
            state.last = None
        changed = state.file.refresh()
        read = state.file.value
        if read is None:  # missing or unreadable (logged once by WatchedFile)
            state.last = None
            return _absent(state, stream, path)
        if not changed and state.last is not None:
            if state.seen is not None and state.last.segments:
                state.seen.at = now  # as a new look at the same segments would record
            return state.last
        text, mtime = read
        state.last = self._parsed(state, stream, path, text, mtime, now)
        return state.last

    def _parsed(self, state: _State, stream: str, path: str, text: str, mtime: float, now: float) -> StreamPlaylist:
        playlist = parse_playlist(text)
        if not playlist.valid:  # caught mid-write by a writer that does not rename, or not a playlist at all
            return _absent(state, stream, path)
        discontinuities, jumps = count_changes(state.seen, playlist, now)
        state.discontinuities += discontinuities
        state.jumps += jumps
        if playlist.segments:
            state.seen = Seen(playlist.media_sequence, playlist.media_sequence + len(playlist.segments) - 1, now)
        bitrate = None
        newest = playlist.segments[-1] if playlist.segments else None
        if newest is not None and newest.duration:
            try:
                size = os.stat(segment_file(path, newest.uri)).st_size
            except OSError:
                # deleted already (a short list with delete_segments), served from elsewhere, or not ours to
                # read: this stream's bitrate is unknown, the playlist and every other stream are still seen
                size = None
            if size is not None:
                bitrate = size / newest.duration
        return StreamPlaylist(
            stream=stream,
            path=path,
            present=True,
            updated_at=mtime,
            target_duration=playlist.target_duration,
            segments=len(playlist.segments),
            media_sequence=playlist.media_sequence if playlist.segments else None,
            ended=playlist.ended,
            output_bytes_per_second=bitrate,
            discontinuities_total=state.discontinuities,
            media_sequence_jumps_total=state.jumps,
        )

    def sample(self, ctx: SampleContext) -> HlsResult:
        out = {
            stream: self._look(stream, ref.playlist, ctx.now)
            for stream, ref in ctx.streams.items()
            if ref.playlist
        }
        for stream in set(self._state) - set(out):
            del self._state[stream]
        return HlsResult(MappingProxyType(out))
