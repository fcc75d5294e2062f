"""IPTV / Stream health: the health score, what it is made of, and the raw signals behind it.

The rows are built here (score, components, status and HLS tables) and in :mod:`.stream_signals` (signals
over time) and :mod:`.stream_actions` (automatic actions); :mod:`.per_stream` has the shared pieces.
"""

from __future__ import annotations

from exporter.dashboards import links
from exporter.dashboards.annotations import stream_events
from exporter.dashboards.base import Json
from exporter.dashboards.core import dashboard
from exporter.dashboards.panels import Cell, override, prop, table, target, timeseries
from exporter.dashboards.per_stream import (
    COLOUR_TEXT,
    PRESENT_MAPPING,
    STREAM_COLUMNS,
    UP_MAPPING,
    colour_cells,
    letters,
    over_range,
    per_stream,
    signal,
)
from exporter.dashboards.promql import named, rate, sel, standard_variables
from exporter.dashboards.stream_actions import action_panels
from exporter.dashboards.stream_signals import delivery_panels, process_panels, signal_panels
from exporter.dashboards.variables import datasource_variable

UID = "iptv-stream-health"

SCORE = "iptv:stream_health_score"
COMPONENT = "iptv:stream_health_component:ratio"
COMPONENTS = ("up", "progress", "playlist", "speed", "restarts", "errors", "drops")
"""The components prometheus/rules/iptv-health.yml records, each 0 (bad) to 1 (good)."""
SCORE_STEPS = ((None, "red"), (50, "orange"), (80, "green"))
"""Red below 50, orange below 80, green from 80 (the score is 0-100)."""
RATIO_STEPS = ((None, "red"), (0.5, "orange"), (0.8, "green"))

def score_panels() -> list[Cell]:
    score = per_stream("min", sel(SCORE))
    return [
        table(
            "Health score",
            "The recording rule iptv:stream_health_score per stream, 0 to 100: red below 50, orange below "
            "80, green above. The lowest first.",
            [target(named(score))],
            unit="none",
            columns={**STREAM_COLUMNS, "Value": "Score"},
            steps=SCORE_STEPS,
            overrides=[
                colour_cells("Score"),
                override("Score", prop("min", 0), prop("max", 100)),
                *links.stream_columns(),
            ],
            size=(10, 10),
        ),
        signal(
            "Health score over time",
            "The health score per stream; dips show when and how long a stream was unhealthy.",
            score,
            "none",
            worst="bottom",
            size=(14, 10),
        ),
    ]


def component_panels() -> list[Cell]:
    def component(name: str) -> str:
        return per_stream("min", sel(COMPONENT, f'component="{name}"'))

    return [
        table(
            "Health components",
            "What the score is made of, per stream: each component from 0 (bad) to 100% (good). The score "
            "is the weighted mean of progress, playlist, speed, errors and drops, times up. See docs/health.md.",
            [target(named(component(name))) for name in COMPONENTS],
            unit="percentunit",
            columns={**STREAM_COLUMNS, **letters(list(COMPONENTS))},
            steps=RATIO_STEPS,
            overrides=[*(colour_cells(name) for name in COMPONENTS), *links.stream_columns()],
            size=(14, 9),
        ),
        timeseries(
            "Worst component over time",
            "For each component, its lowest value over the selected streams: which part of the score fell.",
            [target(f"min by (component) ({sel(COMPONENT)})", "{{component}}")],
            unit="percentunit",
            size=(10, 9),
        ),
    ]


def status_table() -> Cell:
    names = ["State", "Processes", "Uptime", "Restarts", "FPS", "Speed", "Dropped", "Errors", "Progress age",
             "Media time"]
    return table(
        "Stream status",
        "One row per stream: running or not, its processes, uptime, restarts over the time range, frame rate, "
        "encoding speed (1 = real time), dropped frames and errors per second, seconds since ffmpeg's last "
        "progress report, and the media time its current run has written.",
        [
            target(named(per_stream("max", sel("iptv_stream_up")))),
            target(named(per_stream("sum", sel("iptv_stream_processes")))),
            target(named(per_stream("max", f"time() - {sel('iptv_stream_start_time_seconds')}"))),
            target(named(per_stream("sum", f"increase({sel('iptv_stream_restarts_total')}[$__range])"))),
            target(named(per_stream("avg", sel("iptv_stream_fps")))),
            target(named(per_stream("avg", sel("iptv_stream_speed_ratio")))),
            target(named(per_stream("sum", rate("iptv_stream_dropped_frames_total")))),
            target(named(per_stream("sum", rate("iptv_stream_errors_total")))),
            target(named(per_stream("max", f"time() - {sel('iptv_stream_progress_timestamp_seconds')}"))),
            target(named(per_stream("max", sel("iptv_stream_output_time_seconds")))),
        ],
        unit="short",
        size=(24, 10),
        columns={**STREAM_COLUMNS, **letters(names)},
        overrides=[
            override("State", prop("mappings", [UP_MAPPING]), prop("custom.cellOptions", COLOUR_TEXT)),
            override("Processes", prop("decimals", 0)),
            override("Uptime", prop("unit", "s")),
            override("Restarts", prop("decimals", 0)),
            override("FPS", prop("unit", "none"), prop("decimals", 1)),
            override("Speed", prop("unit", "none"), prop("decimals", 2)),
            override("Dropped", prop("unit", "cps"), prop("decimals", 2)),
            override("Errors", prop("unit", "cps"), prop("decimals", 2)),
            override("Progress age", prop("unit", "s")),
            override("Media time", prop("unit", "s")),
            *links.stream_columns(),
        ],
    )


def hls_table() -> Cell:
    names = ["Playlist", "Playlist age", "Segment", "Segments", "Output bitrate", "Discontinuities", "Sequence jumps"]
    return table(
        "HLS output",
        "One row per stream: whether its playlist could be read, seconds since it was rewritten, the target "
        "segment duration, segments listed, the newest segment's bitrate, and discontinuities and media "
        "sequence jumps over the time range.",
        [
            target(named(per_stream("min", sel("iptv_stream_playlist_present")))),
            target(named(per_stream("max", f"time() - {sel('iptv_stream_playlist_updated_timestamp_seconds')}"))),
            target(named(per_stream("max", sel("iptv_stream_segment_duration_seconds")))),
            target(named(per_stream("max", sel("iptv_stream_playlist_segments")))),
            target(named(per_stream("sum", sel("iptv_stream_output_bytes_per_second")) + " * 8")),
            target(named(per_stream("sum", over_range("iptv_stream_playlist_discontinuities_total")))),
            target(named(per_stream("sum", over_range("iptv_stream_media_sequence_jumps_total")))),
        ],
        unit="short",
        size=(24, 9),
        columns={**STREAM_COLUMNS, **letters(names)},
        overrides=[
            override("Playlist", prop("mappings", [PRESENT_MAPPING]), prop("custom.cellOptions", COLOUR_TEXT)),
            override("Playlist age", prop("unit", "s")),
            override("Segment", prop("unit", "s")),
            override("Segments", prop("decimals", 0)),
            override("Output bitrate", prop("unit", "bps")),
            override("Discontinuities", prop("decimals", 0)),
            override("Sequence jumps", prop("decimals", 0)),
            *links.stream_columns(),
        ],
    )


def build() -> Json:
    signals = signal_panels()
    delivery = delivery_panels()
    actions = action_panels()
    return dashboard(
        uid=UID,
        title="IPTV / Stream health",
        description="Per-stream health score and the signals behind it: process, ffmpeg progress, HLS output, "
        "delivery, errors and automatic actions.",
        tags=["health"],
        variables=[datasource_variable(), *standard_variables()],
        annotations=stream_events(),
        rows=[
            score_panels(),
            component_panels(),
            [status_table()],
            [hls_table()],
            signals[:3],
            signals[3:6],
            signals[6:],
            process_panels(),
            delivery[:3],
            delivery[3:],
            actions[:4],
            actions[4:],
        ],
    )
