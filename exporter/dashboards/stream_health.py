"""IPTV / Stream health: the health score, what it is made of, and the raw signals behind it."""

from __future__ import annotations

from exporter.dashboards import links
from exporter.dashboards.annotations import stream_events
from exporter.dashboards.base import Json
from exporter.dashboards.core import dashboard
from exporter.dashboards.panels import Cell, Override, override, prop, stat, state_mapping, table, target, timeseries
from exporter.dashboards.promql import NAMED_LEGEND, TOPN, named, rate, sel, standard_variables, top
from exporter.dashboards.variables import datasource_variable

UID = "iptv-stream-health"

SCORE = "iptv:stream_health_score"
COMPONENT = "iptv:stream_health_component:ratio"
COMPONENTS = ("up", "progress", "playlist", "speed", "restarts", "errors", "drops")
"""The components prometheus/rules/iptv-health.yml records, each 0 (bad) to 1 (good)."""
SCORE_STEPS = ((None, "red"), (50, "orange"), (80, "green"))
"""Red below 50, orange below 80, green from 80 (the score is 0-100)."""
RATIO_STEPS = ((None, "red"), (0.5, "orange"), (0.8, "green"))

UP_MAPPING = state_mapping(("down", "red"), ("up", "green"))
PRESENT_MAPPING = state_mapping(("missing", "red"), ("present", "green"))
COLOUR_TEXT = {"type": "color-text"}


def over_range(counter: str) -> str:
    """How much ``counter`` grew over the dashboard's time range, per series."""
    return f"increase({sel(counter)}[$__range])"


def per_stream(aggregation: str, expr: str) -> str:
    """``aggregation by (node, stream) (expr)``: one series per stream even with several instances."""
    return f"{aggregation} by (node, stream) ({expr})"


def colour_cells(name: str) -> Override:
    return override(name, prop("custom.cellOptions", {"type": "color-background", "mode": "basic"}))


def letters(names: list[str]) -> dict[str, str]:
    """``{"Value #A": names[0], ...}``: the value columns of a merged table, in query order."""
    return {f"Value #{chr(ord('A') + i)}": name for i, name in enumerate(names)}


STREAM_COLUMNS = {"node": "Node", "stream": "Stream", "name": "Name"}


def signal(
    title: str, description: str, expr: str, unit: str, *, worst: str = "top", size: tuple[int, int] = (8, 8)
) -> Cell:
    """One named series per stream (``expr`` grouped by (node, stream)), the ``$topn`` worst of them.

    ``worst`` is ``top`` when high values are bad (age, drops, CPU), ``bottom`` when low ones are (fps).
    """
    picked = top(named(expr)) if worst == "top" else f"bottomk({TOPN}, {named(expr)})"
    return timeseries(
        title,
        f"{description} The $topn {'highest' if worst == 'top' else 'lowest'} streams at each moment; "
        "click a line for that stream alone.",
        [target(picked, NAMED_LEGEND)],
        unit=unit,
        size=size,
        links=links.SERIES_STREAM,
    )


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


def action_panels() -> list[Cell]:
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
            size=(10, 8),
            columns={**STREAM_COLUMNS, "action": "Action", "result": "Result", "Value": "Count"},
            overrides=[override("Count", prop("decimals", 0)), *links.stream_columns()],
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
            size=(5, 8),
        ),
        table(
            "Open restart circuits",
            "Streams whose restart budget is spent: automatic restarts stop until the window passes.",
            [target(named(per_stream("max", sel("iptv_restart_circuit_open")) + " == 1"))],
            unit="short",
            size=(5, 8),
            columns={**STREAM_COLUMNS, "Value": "Open"},
            overrides=links.stream_columns(),
        ),
        stat(
            "Actions running",
            "Actions running or being verified now (iptv_actions_in_progress).",
            [target(f"sum({sel('iptv_actions_in_progress', stream=False)})")],
            unit="short",
            size=(4, 8),
            steps=((None, "green"), (1, "blue")),
        ),
        timeseries(
            "Webhook requests",
            "Requests to the exporter's Alertmanager webhook per second by HTTP status (401: a wrong token, "
            "400/413: a bad payload, 503: actions busy).",
            [target(f"sum by (node, code) ({rate('iptv_webhook_requests_total', stream=False)})",
                    "{{node}} {{code}}")],
            unit="reqps",
            size=(24, 6),
            links=[links.SERIES_NODE],
        ),
    ]


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
