"""CSV: a header, one line per row, and a last line whose key column reads ``total``."""

from __future__ import annotations

import csv
import io

from exporter.report.compute import Report
from exporter.report.table import columns, records


def render_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns(report), lineterminator="\n")
    writer.writeheader()
    for rec in records(report):
        writer.writerow({k: ("" if v is None else v) for k, v in rec.items()})
    return out.getvalue()
