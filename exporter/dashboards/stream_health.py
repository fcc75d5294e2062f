"""IPTV / Stream health: the health score, what it is made of, and the raw signals behind it."""

from __future__ import annotations

from exporter.dashboards.core import (
    Json,
    dashboard,
    datasource_variable,
    override,
    state_mapping,
    table,
    target,
    timeseries,
)
from exporter.dashboards.promql import NAMED_LEGEND, named, rate, sel, standard_variables

UID = "iptv-stream-health"

SCORE = "iptv:stream_health_score"
COMPONENT = "iptv:stream_health_component:ratio"
COMPONENTS = ("up", "progress", "playlist", "speed", "errors", "drops")
"""The components prometheus/rules/iptv-health.yml records, each 0 (bad) to 1 (good)."""
SCORE_STEPS = ((None, "red"), (50, "orange"), (80, "green"))
"""Red below 50, orange below 80, green from 80 (the score is 0-100)."""
RATIO_STEPS = ((None, "red"), (0.5, "orange"), (0.8, "green"))

FPS_UNIT = "suffix: fps"
SPEED_UNIT = "suffix:×"

UP_MAPPING = state_mapping(("down", "red"), ("up", "green"))


def per_stream(aggregation: str, expr: str) -> str:
    """``aggregation by (node, stream) (expr)``: one series per stream even with several instances."""
    return f"{aggregation} by (node, stream) ({expr})"


def colour_cells(name: str) -> Json:
    return override(name, custom__cellOptions={"type": "color-background", "mode": "basic"})


def score_panels() -> list[Json]:
    score = per_stream("min", sel(SCORE))
    return [
        table(
            "Health score",
            "The recording rule iptv:stream_health_score per stream, 0 to 100: red below 50, orange below "
            "80, green above. The lowest first.",
            [target(named(score))],
            unit="none",
            columns={"node": "Node", "stream": "Stream", "name": "Name", "Value": "Score"},
            steps=SCORE_STEPS,
            overrides=[colour_cells("Score"), override("Score", min=0, max=100)],
            size=(10, 10),
        ),
        timeseries(
            "Health score over time",
            "The health score per stream; dips show when and how long a stream was unhealthy.",
            [target(named(score), NAMED_LEGEND)],
            unit="none",
            size=(14, 10),
        ),
    ]


def component_panels() -> list[Json]:
    def component(name: str) -> str:
        return per_stream("min", sel(COMPONENT, f'component="{name}"'))

    columns = {"node": "Node", "stream": "Stream", "name": "Name"}
    columns.update({f"Value #{chr(ord('A') + i)}": name for i, name in enumerate(COMPONENTS)})
    return [
        table(
            "Health components",
            "What the score is made of, per stream: each component from 0 (bad) to 100% (good). The score "
            "is the weighted mean of progress, playlist, speed, errors and drops, times up. See docs/health.md.",
            [target(named(component(name))) for name in COMPONENTS],
            unit="percentunit",
            columns=columns,
            steps=RATIO_STEPS,
            overrides=[colour_cells(name) for name in COMPONENTS],
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


def status_table() -> Json:
    def col(aggregation: str, expr: str) -> Json:
        return target(named(per_stream(aggregation, expr)))

    return table(
        "Stream status",
        "One row per stream: running or not, uptime, restarts over the time range, frame rate, encoding "
        "speed, dropped frames and errors per second, and the age of the HLS playlist.",
        [
            col("max", sel("iptv_stream_up")),
            col("max", f"time() - {sel('iptv_stream_start_time_seconds')}"),
            col("sum", f"increase({sel('iptv_stream_restarts_total')}[$__range])"),
            col("avg", sel("iptv_stream_fps")),
            col("avg", sel("iptv_stream_speed_ratio")),
            col("sum", rate("iptv_stream_dropped_frames_total")),
            col("sum", rate("iptv_stream_errors_total")),
            col("max", f"time() - {sel('iptv_stream_playlist_updated_timestamp_seconds')}"),
        ],
        unit="short",
        size=(24, 10),
        columns={
            "node": "Node",
            "stream": "Stream",
            "name": "Name",
            "Value #A": "State",
            "Value #B": "Uptime",
            "Value #C": "Restarts",
            "Value #D": "FPS",
            "Value #E": "Speed",
            "Value #F": "Dropped",
            "Value #G": "Errors",
            "Value #H": "Playlist age",
        },
        overrides=[
            override("State", mappings=[UP_MAPPING], custom__cellOptions={"type": "color-text"}),
            override("Uptime", unit="s"),
            override("Restarts", decimals=0),
            override("FPS", unit=FPS_UNIT, decimals=1),
            override("Speed", unit=SPEED_UNIT, decimals=2),
            override("Dropped", unit=FPS_UNIT, decimals=2),
            override("Errors", unit="cps", decimals=2),
            override("Playlist age", unit="s"),
        ],
    )


def signal_panels() -> list[Json]:
    def signal(title: str, description: str, expr: str, unit: str) -> Json:
        """One series per stream, named: ``expr`` is grouped by (node, stream)."""
        return timeseries(title, description, [target(named(expr), NAMED_LEGEND)], unit=unit, size=(8, 8))

    return [
        signal(
            "Frame rate",
            "Frames per second ffmpeg reports on its -progress output.",
            per_stream("avg", sel("iptv_stream_fps")),
            FPS_UNIT,
        ),
        signal(
            "Encoding speed",
            "ffmpeg's speed as a ratio of real time: below 1 the stream falls behind its source.",
            per_stream("avg", sel("iptv_stream_speed_ratio")),
            SPEED_UNIT,
        ),
        signal(
            "Dropped frames",
            "Frames per second ffmpeg dropped.",
            per_stream("sum", rate("iptv_stream_dropped_frames_total")),
            FPS_UNIT,
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
            "Stream errors per second by kind (ffmpeg log errors, process exits).",
            [target(f"sum by (node, stream, kind) ({rate('iptv_stream_errors_total')})",
                    "{{stream}} ({{node}}) {{kind}}")],
            unit="cps",
            size=(8, 8),
        ),
        signal(
            "Restarts",
            "New processes per stream (a restart by anyone: the panel, a supervisor or an action).",
            per_stream("sum", f"increase({sel('iptv_stream_restarts_total')}[$__rate_interval])"),
            "short",
        ),
    ]


def action_panels() -> list[Json]:
    return [
        table(
            "Recent actions",
            "Automatic actions per stream over the time range, by action and result.",
            [
                target(
                    named(
                        "sum by (node, stream, action, result) "
                        f"(increase({sel('iptv_actions_total')}[$__range])) > 0"
                    )
                )
            ],
            unit="short",
            size=(12, 8),
            columns={
                "node": "Node",
                "stream": "Stream",
                "name": "Name",
                "action": "Action",
                "result": "Result",
                "Value": "Count",
            },
            overrides=[override("Count", decimals=0)],
            sort_by="Count",
        ),
        timeseries(
            "Action duration",
            "90th percentile time an action took, restart to verified running (iptv_action_duration_seconds).",
            [
                target(
                    "histogram_quantile(0.9, sum by (le, action) "
                    f"({rate('iptv_action_duration_seconds_bucket', stream=False)}))",
                    "{{action}}",
                )
            ],
            unit="s",
            size=(6, 8),
        ),
        table(
            "Open restart circuits",
            "Streams whose restart budget is spent: automatic restarts stop until the window passes.",
            [target(named(per_stream("max", sel("iptv_restart_circuit_open")) + " == 1"))],
            unit="short",
            size=(6, 8),
            columns={"node": "Node", "stream": "Stream", "name": "Name", "Value": "Open"},
        ),
    ]


def build() -> Json:
    signals = signal_panels()
    return dashboard(
        uid=UID,
        title="IPTV / Stream health",
        description="Per-stream health score and the signals behind it: process, ffmpeg progress, HLS output, "
        "errors and automatic actions.",
        tags=["health"],
        variables=[datasource_variable(), *standard_variables()],
        rows=[score_panels(), component_panels(), [status_table()], signals[:3], signals[3:], action_panels()],
    )
