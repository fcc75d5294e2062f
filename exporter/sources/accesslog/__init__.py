"""Who watches what, from nginx's access log: viewers per stream, bytes and responses, lines and sharing.

The package, one job per module:

- :mod:`.parse`: log lines -> rows ``(ip, time, path, status, bytes, agent)`` for the ``combined``,
  ``json`` and ``regex`` formats;
- :mod:`.urls`: a request path -> its stream and subscriber line (the preset's and the config's URL
  patterns), remembered per distinct path; the redactor of anything logged;
- :mod:`.viewing`: per-stream counters, viewing sessions and client lines, kept between rounds (the one
  loop over the rows);
- :mod:`.result`: :class:`AccessLogResult` (also the panel DB source's result) and the sharing judgement;
- :mod:`.source`: :class:`AccessLogSource`, which follows the log and ties them together.

Passwords from URLs never leave the package: paths are not kept beyond the URL map, and anything logged
goes through :func:`log_redactor` (``/live/alice/***/5.ts``).
"""

from exporter.sources.accesslog.parse import COMBINED, Row, parse_combined, parse_json_line, parse_time
from exporter.sources.accesslog.result import (
    CODES,
    SESSION_BUCKETS,
    AccessLogResult,
    Client,
    Histogram,
    LineSharing,
    Lookup,
    SessionDurations,
    StreamTraffic,
    Viewer,
    ips_by_line,
    suspected_lines,
)
from exporter.sources.accesslog.source import AccessLogSource
from exporter.sources.accesslog.urls import PRESETS, log_redactor, url_patterns

__all__ = [
    "CODES", "COMBINED", "PRESETS", "SESSION_BUCKETS", "AccessLogResult", "AccessLogSource", "Client", "Histogram",
    "LineSharing", "Lookup", "Row", "SessionDurations", "StreamTraffic", "Viewer", "ips_by_line", "log_redactor",
    "parse_combined", "parse_json_line", "parse_time", "suspected_lines", "url_patterns",
]
