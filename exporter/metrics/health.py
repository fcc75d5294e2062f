"""Stream health metrics: ffmpeg progress (``-progress``, or its stats line), HLS output and errors by kind.

Only streams of the inventory are exported (a push for an unknown id adds no series). A source that
failed this round exports nothing here, so a broken source reads as absent data plus
``iptv_exporter_source_up 0``, never as a stall.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.snapshot import Snapshot
from exporter.sources.errorlogs import KINDS

L = ["stream"]
T = TypeVar("T")


def _inventory_entries(snap: Snapshot, entries: Mapping[str, T]) -> Iterator[tuple[str, T]]:
    """(stream, entry) for the inventory's streams that have an entry, in stream order: a source's entries
    for ids outside the inventory (a push for an unknown id) make no series."""
    for stream in sorted(snap.streams):
        entry = entries.get(stream)
        if entry is not None:
            yield stream, entry


def _progress(snap: Snapshot) -> Iterator[Metric]:
    result, stats = snap.progress, snap.statslog
    if result is None and stats is None:
        return
    # One report per stream, so its counters come from one place: ffmpeg's -progress where the stream has
    # one, else the statistics line of its stderr log (progress.stats_log).
    reports = {**(stats.streams if stats else {}), **(result.streams if result else {})}
    fps = GaugeMetricFamily("iptv_stream_fps", "Frames per second ffmpeg reported last (0 once it ended).", labels=L)
    speed = GaugeMetricFamily(
        "iptv_stream_speed_ratio", "Processing speed ffmpeg reported last, 1 = real time (0 once it ended).", labels=L
    )
    frames = CounterMetricFamily("iptv_stream_frames", "Frames written, carried across ffmpeg restarts.", labels=L)
    dropped = CounterMetricFamily("iptv_stream_dropped_frames", "Frames ffmpeg dropped (drop_frames).", labels=L)
    dup = CounterMetricFamily("iptv_stream_duplicated_frames", "Frames ffmpeg duplicated (dup_frames).", labels=L)
    stamp = GaugeMetricFamily(
        "iptv_stream_progress_timestamp_seconds",
        "When the stream's last progress report arrived (push) or was written (file), Unix seconds.", labels=L,
    )
    out_time = GaugeMetricFamily(
        "iptv_stream_output_time_seconds", "Media time written by the current ffmpeg run (out_time).", labels=L
    )
    for stream, p in _inventory_entries(snap, reports):
        if p.fps is not None:
            fps.add_metric([stream], p.fps)
        if p.speed is not None:
            speed.add_metric([stream], p.speed)
        if p.out_time_seconds is not None:
            out_time.add_metric([stream], p.out_time_seconds)
        frames.add_metric([stream], p.frames_total)
        dropped.add_metric([stream], p.dropped_frames_total)
        dup.add_metric([stream], p.duplicated_frames_total)
        stamp.add_metric([stream], p.updated_at)
    yield from (fps, speed, frames, dropped, dup, stamp, out_time)

    skipped = CounterMetricFamily(
        "iptv_progress_skipped_lines", "Progress lines that did not parse, by how they arrived (file, push).",
        labels=["via"],
    )
    by_via = dict(result.skipped_lines_total) if result else {}
    if stats is not None:
        by_via["stats"] = stats.skipped_lines_total
    for via, n in sorted(by_via.items()):
        skipped.add_metric([via], n)
    yield skipped
    if result is None:
        return
    rejected = CounterMetricFamily(
        "iptv_progress_push_rejected",
        "Progress pushes refused: forbidden client, bad stream id, store full, value out of range, no block.",
        labels=["reason"],
    )
    for reason in ("forbidden", "bad_stream", "full", "out_of_range", "no_block"):
        rejected.add_metric([reason], result.push_rejected_total.get(reason, 0))
    yield rejected


def _hls(snap: Snapshot) -> Iterator[Metric]:
    result = snap.hls
    if result is None:
        return
    present = GaugeMetricFamily(
        "iptv_stream_playlist_present", "1 if the stream's HLS playlist could be read this round, else 0.", labels=L
    )
    updated = GaugeMetricFamily(
        "iptv_stream_playlist_updated_timestamp_seconds", "Last modification of the stream's playlist, Unix seconds.",
        labels=L,
    )
    target = GaugeMetricFamily(
        "iptv_stream_segment_duration_seconds", "The playlist's target segment duration (#EXT-X-TARGETDURATION).",
        labels=L,
    )
    segments = GaugeMetricFamily("iptv_stream_playlist_segments", "Segments listed in the playlist.", labels=L)
    bitrate = GaugeMetricFamily(
        "iptv_stream_output_bytes_per_second", "Newest segment's size in bytes over its duration.", labels=L
    )
    disc = CounterMetricFamily(
        "iptv_stream_playlist_discontinuities", "#EXT-X-DISCONTINUITY tags on newly listed segments.", labels=L
    )
    jumps = CounterMetricFamily(
        "iptv_stream_media_sequence_jumps", "Media sequence went backwards or skipped segments.", labels=L
    )
    for stream, p in _inventory_entries(snap, result.streams):
        present.add_metric([stream], 1 if p.present else 0)
        disc.add_metric([stream], p.discontinuities_total)
        jumps.add_metric([stream], p.media_sequence_jumps_total)
        if not p.present:
            continue
        if p.updated_at is not None:
            updated.add_metric([stream], p.updated_at)
        if p.target_duration is not None:
            target.add_metric([stream], p.target_duration)
        segments.add_metric([stream], p.segments)
        if p.output_bytes_per_second is not None:
            bitrate.add_metric([stream], p.output_bytes_per_second)
    yield from (present, updated, target, segments, bitrate, disc, jumps)


def _errors(snap: Snapshot) -> Iterator[Metric]:
    result = snap.errors
    if result is None:
        return
    errors = CounterMetricFamily(
        "iptv_stream_errors", "Stream errors by kind: input, decode, exit, other.", labels=["stream", "kind"]
    )
    for stream in sorted(snap.streams):
        kinds = result.streams.get(stream, {})
        for kind in KINDS:  # every kind from 0, so the first error is an increase, not a new series
            errors.add_metric([stream, kind], kinds.get(kind, 0))
    yield errors
    files = GaugeMetricFamily("iptv_error_log_files", "ffmpeg error log files being followed.")
    files.add_metric([], result.files)
    yield files


def collect(snap: Snapshot) -> Iterator[Metric]:
    yield from _progress(snap)
    yield from _hls(snap)
    yield from _errors(snap)
