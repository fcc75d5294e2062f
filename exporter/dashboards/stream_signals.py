"""Stream health's raw signals over time: ffmpeg progress, HLS output, processes, delivery."""

from __future__ import annotations

from exporter.dashboards import links
from exporter.dashboards.panels import Cell, target, timeseries
from exporter.dashboards.per_stream import per_stream, signal
from exporter.dashboards.promql import NAMED_LEGEND, named, rate, sel, top


def signal_panels() -> list[Cell]:
    return [
        signal(
            "Frame rate",
            "Frames per second ffmpeg reports on its -progress output.",
            per_stream("avg", sel("iptv_stream_fps")),
            "none",
            worst="bottom",
        ),
        signal(
            "Encoding speed",
            "ffmpeg's speed as a ratio of real time: below 1 the stream falls behind its source.",
            per_stream("avg", sel("iptv_stream_speed_ratio")),
            "none",
            worst="bottom",
        ),
        signal(
            "Dropped frames",
            "Frames per second ffmpeg dropped.",
            per_stream("sum", rate("iptv_stream_dropped_frames_total")),
            "cps",
        ),
        signal(
            "Frames written",
            "Frames per second ffmpeg wrote (iptv_stream_frames_total), lowest first: a stalled encoder drops to 0.",
            per_stream("sum", rate("iptv_stream_frames_total")),
            "cps",
            worst="bottom",
        ),
        signal(
            "Duplicated frames",
            "Frames per second ffmpeg duplicated to keep the output rate (its input delivers too few).",
            per_stream("sum", rate("iptv_stream_duplicated_frames_total")),
            "cps",
        ),
        signal(
            "Progress age",
            "Seconds since ffmpeg's last -progress report: it stops advancing when ffmpeg stalls.",
            per_stream("max", f"time() - {sel('iptv_stream_progress_timestamp_seconds')}"),
            "s",
        ),
        signal(
            "Playlist age",
            "Seconds since each HLS playlist was last rewritten; a live playlist is rewritten every "
            "segment, so this stays below a few segment durations.",
            per_stream("max", f"time() - {sel('iptv_stream_playlist_updated_timestamp_seconds')}"),
            "s",
        ),
        timeseries(
            "Errors",
            "Stream errors per second by kind (input, decode, exit, other), the $topn largest.",
            [target(top(f"sum by (node, stream, kind) ({rate('iptv_stream_errors_total')})"),
                    "{{stream}} ({{node}}) {{kind}}")],
            unit="cps",
            size=(8, 8),
            links=[links.to_stream("${__field.labels.node}", "${__field.labels.stream}", "${__field.labels.stream}")],
        ),
        signal(
            "Restarts",
            "New processes per stream (a restart by anyone: the panel, a supervisor or an action).",
            per_stream("sum", f"increase({sel('iptv_stream_restarts_total')}[$__rate_interval])"),
            "short",
        ),
    ]


def process_panels() -> list[Cell]:
    return [
        signal(
            "CPU",
            "CPU time of each stream's processes per second, as a share of one core (200% = two cores busy).",
            per_stream("sum", rate("iptv_stream_cpu_seconds_total")),
            "percentunit",
            size=(6, 8),
        ),
        signal(
            "Memory",
            "Resident memory of each stream's processes.",
            per_stream("sum", sel("iptv_stream_resident_memory_bytes")),
            "bytes",
            size=(6, 8),
        ),
        signal(
            "Open files",
            "Open file descriptors of each stream's processes: a steady climb is a leak (sockets, segments).",
            per_stream("sum", sel("iptv_stream_open_fds")),
            "short",
            size=(6, 8),
        ),
        signal(
            "Threads",
            "Threads of each stream's processes.",
            per_stream("sum", sel("iptv_stream_threads")),
            "short",
            size=(6, 8),
        ),
    ]


def delivery_panels() -> list[Cell]:
    responses = "iptv_stream_http_responses_total"
    bad = per_stream("sum", rate(responses, 'code=~"4xx|5xx"'))
    every = per_stream("sum", rate(responses))
    return [
        timeseries(
            "HTTP responses by class",
            "Requests per second for the selected streams by status class (access log), stacked.",
            [target(f"sum by (code) ({rate(responses)})", "{{code}}")],
            unit="reqps",
            stacked=True,
            size=(8, 8),
        ),
        signal(
            "Failed requests",
            "Share of each stream's requests answered 4xx or 5xx (expired segments, refused lines, origin "
            "errors).",
            f"{bad} / {every}",
            "percentunit",
        ),
        signal(
            "HLS output bitrate",
            "Bits per second of each stream's newest HLS segment (size over its duration).",
            per_stream("sum", sel("iptv_stream_output_bytes_per_second")) + " * 8",
            "bps",
        ),
        timeseries(
            "Discontinuities and sequence jumps",
            "Playlist discontinuities and media-sequence jumps per stream (each a glitch players may show), "
            "the $topn largest.",
            [
                target(top(named(per_stream("sum", f"increase({sel('iptv_stream_playlist_discontinuities_total')}"
                                                   "[$__rate_interval])"))), f"{NAMED_LEGEND} discontinuities"),
                target(top(named(per_stream("sum", f"increase({sel('iptv_stream_media_sequence_jumps_total')}"
                                                   "[$__rate_interval])"))), f"{NAMED_LEGEND} jumps"),
            ],
            unit="short",
            size=(12, 8),
            links=links.SERIES_STREAM,
        ),
        signal(
            "Segments listed",
            "Segments each playlist lists; a live playlist keeps a steady window.",
            per_stream("max", sel("iptv_stream_playlist_segments")),
            "short",
            worst="bottom",
            size=(12, 8),
        ),
    ]
