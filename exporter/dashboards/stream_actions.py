"""Stream health's automatic-action panels: what ran, how long it took, open circuits, the webhook."""

from __future__ import annotations

from exporter.dashboards import links
from exporter.dashboards.panels import Cell, override, prop, stat, table, target, timeseries
from exporter.dashboards.per_stream import STREAM_COLUMNS, per_stream
from exporter.dashboards.promql import named, rate, sel


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
