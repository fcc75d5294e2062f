"""The report as flat records: the one place that fixes column names, units and rounding.

Bytes and bits per second are whole numbers (rounded to the nearest), viewer-hours have three
decimals and the share (a fraction of the total bytes, 0..1) six.  CSV and JSON print these records.
"""

from __future__ import annotations

from typing import Any

from exporter.report.compute import Report, Row
from exporter.report.period import iso

FIGURE_COLUMNS = ("bytes_sent", "avg_bps", "peak_bps", "peak_at", "p95_bps", "viewer_hours", "share")


def columns(report: Report) -> list[str]:
    """The grouping's key column, ``name`` for streams, then the figures."""
    head = [report.by, "name"] if report.by == "stream" else [report.by]
    return head + list(FIGURE_COLUMNS)


def record(report: Report, row: Row) -> dict[str, Any]:
    f = row.figures
    out: dict[str, Any] = {report.by: row.key}
    if report.by == "stream":
        out["name"] = row.name
    out.update(
        bytes_sent=round(f.bytes_sent),
        avg_bps=round(f.avg_bps),
        peak_bps=round(f.peak_bps),
        peak_at=iso(f.peak_at) if f.peak_at is not None else None,
        p95_bps=round(f.p95_bps),
        viewer_hours=round(f.viewer_hours, 3),
        share=round(f.share, 6),
    )
    return out


def records(report: Report) -> list[dict[str, Any]]:
    """Every row, then the total (whose key column reads ``total``)."""
    return [record(report, row) for row in report.rows] + [record(report, report.total)]
