"""JSON: the period, the rows and the total, with the same fields and rounding as the CSV."""

from __future__ import annotations

import json
from typing import Any

from exporter.report.compute import Report
from exporter.report.period import iso
from exporter.report.table import record


def as_dict(report: Report, prometheus: str) -> dict[str, Any]:
    period = report.period
    return {
        "by": report.by,
        "prometheus": prometheus,
        "start": iso(period.start),
        "end": iso(period.end),
        "step_seconds": period.step,
        "duration_seconds": period.duration,
        "rows": [record(report, row) for row in report.rows],
        "total": record(report, report.total),
    }


def render_json(report: Report, prometheus: str) -> str:
    return json.dumps(as_dict(report, prometheus), indent=2) + "\n"
