"""One self-contained HTML page: summary, table, and inline SVG charts (no scripts, no external files)."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from exporter.report.compute import Report, Row
from exporter.report.period import iso

TOP = 10
PLURAL = {"stream": "Streams", "country": "Countries", "node": "Nodes"}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:24px auto;
max-width:1100px;color:#1f2328;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#59636e;margin:0 0 16px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:10px}
.card{border:1px solid #d1d9e0;border-radius:6px;padding:10px 12px}
.card .v{font-size:20px;font-weight:600}.card .k{color:#59636e;font-size:12px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:5px 8px;border-bottom:1px solid #d1d9e0;text-align:right;white-space:nowrap}
th:first-child,td:first-child,td.name,th.name{text-align:left}
thead th{background:#f6f8fa;position:sticky;top:0}
tfoot td{font-weight:600;border-top:2px solid #1f2328}
.bar{display:inline-block;height:8px;background:#1f6feb;border-radius:2px;vertical-align:middle;margin-left:6px}
figure{margin:12px 0}figure svg{width:100%;height:auto;display:block}
.note{color:#59636e;font-style:italic}
"""


def human_bytes(value: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(value) < 1000 or unit == "PB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def human_bps(value: float) -> str:
    for unit in ("bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"):
        if abs(value) < 1000 or unit == "Tbit/s":
            return f"{value:.0f} {unit}" if unit == "bit/s" else f"{value:.2f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _cards(report: Report) -> str:
    f = report.total.figures
    peak_when = f" at {iso(f.peak_at)}" if f.peak_at is not None else ""
    items = [
        ("Bytes sent", human_bytes(f.bytes_sent), f"{round(f.bytes_sent):,} bytes"),
        ("Average bitrate", human_bps(f.avg_bps), f"{round(f.avg_bps):,} bit/s"),
        ("Peak bitrate", human_bps(f.peak_bps), f"{round(f.peak_bps):,} bit/s{peak_when}"),
        ("95th percentile", human_bps(f.p95_bps), f"{round(f.p95_bps):,} bit/s"),
        ("Viewer-hours", f"{f.viewer_hours:,.1f}", f"{f.viewer_hours:,.3f}"),
        (PLURAL.get(report.by, report.by), str(len(report.rows)), ""),
    ]
    return "".join(
        f'<div class="card" title="{escape(exact)}"><div class="v">{escape(value)}</div>'
        f'<div class="k">{escape(label)}</div></div>'
        for label, value, exact in items
    )


def _cells(report: Report, row: Row) -> str:
    f = row.figures
    name = f'<td class="name">{escape(row.name)}</td>' if report.by == "stream" else ""
    width = max(0.0, min(1.0, f.share)) * 60
    return (
        f"<td>{escape(row.key)}</td>{name}"
        f'<td title="{round(f.bytes_sent)} bytes">{human_bytes(f.bytes_sent)}</td>'
        f'<td title="{round(f.avg_bps)} bit/s">{human_bps(f.avg_bps)}</td>'
        f'<td title="{round(f.peak_bps)} bit/s">{human_bps(f.peak_bps)}</td>'
        f'<td title="{round(f.p95_bps)} bit/s">{human_bps(f.p95_bps)}</td>'
        f"<td>{f.viewer_hours:,.2f}</td>"
        f'<td>{f.share * 100:.2f}&nbsp;%<span class="bar" style="width:{width:.1f}px"></span></td>'
    )


def _table(report: Report) -> str:
    name = '<th class="name">name</th>' if report.by == "stream" else ""
    hours = "connection-hours" if report.by == "country" else "viewer-hours"
    head = (
        f"<tr><th>{escape(report.by)}</th>{name}<th>bytes sent</th><th>average</th><th>peak</th>"
        f"<th>95th percentile</th><th>{hours}</th><th>share</th></tr>"
    )
    body = "".join(f"<tr>{_cells(report, row)}</tr>" for row in report.rows)
    foot = f"<tr>{_cells(report, report.total)}</tr>"
    return (
        f'<table id="report-table"><thead>{head}</thead><tbody>{body}</tbody>'
        f"<tfoot>{foot}</tfoot></table>"
    )


def _bars(title: str, report: Report | str, salt: str) -> str:
    from exporter.report.charts import bar_chart

    if isinstance(report, str):
        return f'<p class="note">{escape(title)}: not available ({escape(report)}).</p>'
    rows = list(report.rows[:TOP])
    rest = report.rows[TOP:]
    labels = [f"{row.key} {row.name}".strip() if row.name else row.key for row in rows]
    values = [row.figures.bytes_sent / 1e9 for row in rows]
    if rest:
        labels.append(f"{len(rest)} others")
        values.append(sum(row.figures.bytes_sent for row in rest) / 1e9)
    if not rows:
        return f'<p class="note">{escape(title)}: no data.</p>'
    return bar_chart(title, labels, values, "GB sent", salt)


def render_html(report: Report, prometheus: str, breakdowns: Mapping[str, Report | str]) -> str:
    """``breakdowns`` gives the stream and country reports for the bar charts, or why one is missing."""
    from exporter.report.charts import bitrate_chart

    period = report.period
    total = report.total.figures
    title = f"IPTV bandwidth report by {report.by}"
    chart = bitrate_chart(period, report.total.bitrate, total.peak_at, total.p95_bps)
    streams = breakdowns.get("stream", "not fetched")
    countries = breakdowns.get("country", "not fetched")
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style></head>'
        f"<body><h1>{escape(title)}</h1>"
        f'<p class="meta">{escape(iso(period.start))} to {escape(iso(period.end))} · step '
        f"{period.step:g} s · Prometheus {escape(prometheus)}</p>"
        f'<section id="summary"><h2>Summary</h2><div class="cards">{_cards(report)}</div></section>'
        f'<section id="table"><h2>By {escape(report.by)}</h2>{_table(report)}</section>'
        f'<section id="charts"><h2>Charts</h2>'
        f'<figure id="chart-bitrate">{chart}</figure>'
        f'<figure id="chart-streams">{_bars("Top streams by bytes sent", streams, "streams")}</figure>'
        f'<figure id="chart-countries">{_bars("Bandwidth by country", countries, "countries")}</figure>'
        "</section></body></html>\n"
    )
