"""``iptv-exporter report``: bandwidth reports (CSV, JSON, HTML) from a Prometheus server.

``cli.py`` calls :func:`add_arguments` on its ``report`` subparser and dispatches to :func:`run`.
The figures are defined in docs/report.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from exporter.redact import redact
from exporter.report.compute import Report
from exporter.report.errors import ReportError
from exporter.report.fetch import GROUPINGS, RANGE_QUERIES, Query, build_report
from exporter.report.period import duration_arg, make_period, parse_time
from exporter.report.query import PrometheusClient

__all__ = ["ReportError", "add_arguments", "run"]

FORMATS = ("csv", "json", "html")


def _time_arg(text: str) -> str:
    parse_time(text, 0.0)  # validate now, resolve "now" later
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the report's flags to ``parser`` (the ``report`` subcommand's parser)."""
    parser.add_argument(
        "--prometheus", metavar="URL", default="http://localhost:9090",
        help="Prometheus base URL (default: %(default)s)",
    )
    parser.add_argument(
        "--range", dest="range_", metavar="DURATION", type=duration_arg,
        help="report on the last DURATION, e.g. 24h or 7d (default 24h); ends at --end or now",
    )
    parser.add_argument(
        "--start", metavar="TIME", type=_time_arg, help="period start: RFC 3339, Unix seconds or 'now'"
    )
    parser.add_argument("--end", metavar="TIME", type=_time_arg, help="period end (default: now)")
    parser.add_argument("--by", choices=GROUPINGS, default="stream", help="one row per (default: stream)")
    parser.add_argument("--format", choices=FORMATS, default="csv", help="output format (default: csv)")
    parser.add_argument("--output", metavar="FILE", help="write here instead of standard output")
    parser.add_argument(
        "--step", metavar="DURATION", type=duration_arg,
        help="resolution; default: about 1000 steps over the period, at least 4 scrape intervals",
    )
    parser.add_argument(
        "--scrape-interval", metavar="DURATION", type=duration_arg, default=15.0,
        help="Prometheus scrape interval of the exporters, bounds the automatic step (default: 15s)",
    )
    parser.add_argument(
        "--selector", metavar="MATCHERS", default="",
        help="extra label matchers for every series, e.g. 'job=\"iptv\",node=~\"edge-.*\"'",
    )
    parser.add_argument(
        "--timeout", metavar="DURATION", type=duration_arg, default=60.0,
        help="timeout of each request to Prometheus (default: 1m)",
    )


def run(args: argparse.Namespace, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Make the report; 0 on success, 1 (with a message on stderr) when it cannot be made."""
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    try:
        text = make(args, err)
    except ReportError as exc:
        print(f"iptv-exporter report: error: {redact(str(exc))}", file=err)  # may name the server's URL
        return 1
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"iptv-exporter report: error: cannot write {args.output}: {exc}", file=err)
            return 1
    else:
        out.write(text)
    return 0


def make(args: argparse.Namespace, err: TextIO) -> str:
    """The report's text in ``args.format``."""
    now = time.time()
    period = make_period(
        now=now,
        range_=args.range_,
        start=None if args.start is None else parse_time(args.start, now),
        end=None if args.end is None else parse_time(args.end, now),
        step=args.step,
        min_step=4 * args.scrape_interval,
    )
    groupings = [args.by]
    if args.format == "html":
        groupings += [g for g in ("stream", "country") if g != args.by]
    with PrometheusClient(args.prometheus, timeout=args.timeout) as client:
        total = len(groupings) * RANGE_QUERIES * client.requests_for(period)
        with _progress(total, err) as advance:
            query = Query(client=client, period=period, selector=args.selector, on_chunk=advance)
            report = build_report(query, args.by)
            breakdowns: dict[str, Report | str] = {args.by: report}
            for other in groupings[1:]:
                try:
                    breakdowns[other] = build_report(query, other)
                except ReportError as exc:
                    if "cannot reach" in str(exc):
                        raise
                    breakdowns[other] = str(exc)
    if args.format == "csv":
        from exporter.report.render_csv import render_csv

        return render_csv(report)
    if args.format == "json":
        from exporter.report.render_json import render_json

        return render_json(report, redact(client.url))
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ReportError(
            f"HTML reports need matplotlib ({exc}): pip install 'iptv-exporter[report]'"
        ) from exc
    from exporter.report.render_html import render_html

    return render_html(report, redact(client.url), breakdowns)


class _progress:
    """A tqdm bar on stderr when it is a terminal; a no-op otherwise or without tqdm."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.bar: object | None = None

    def __enter__(self) -> Callable[[], None]:
        if not (hasattr(self.stream, "isatty") and self.stream.isatty()):
            return lambda: None
        try:
            from tqdm import tqdm
        except ImportError:
            return lambda: None
        bar = tqdm(total=self.total, file=self.stream, desc="querying Prometheus", unit="req", leave=False)
        self.bar = bar
        return lambda: bar.update(1)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()  # type: ignore[attr-defined]
