"""Which stream, and which subscriber line, a request is for: URL patterns, remembered per distinct path.

A path becomes ``(stream, line)`` through the config's own ``urls`` (searched anywhere in the path,
compiled with RE2 so a hostile pattern or URL cannot stall the exporter: exporter.linear_re) and then the
preset's patterns (whole-path matches, picked by their literal prefix). The answer for a path is kept in
:attr:`StreamUrls.known`, so a pattern runs once per distinct path, not once per line.

Paths are never kept beyond that map and never logged: anything logged goes through :func:`log_redactor`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from exporter.config.viewers import AccessLog
from exporter.linear_re import LinearPattern, compile_linear
from exporter.redact import Redactor

# preset -> (literal prefix, URL pattern) with named groups stream (required), line and password (optional).
# The prefix picks the one pattern worth trying, so a new segment URL costs one regex match, not one per shape.
PRESETS: dict[str, tuple[tuple[str, str], ...]] = {
    "panelx": (
        ("/live/", r"/live/(?P<line>[^/]+)/(?P<password>[^/]+)/(?P<stream>\d+)\.(?:ts|m3u8|m3u)"),
        ("/streams/stream_", r"/streams/stream_(?P<stream>\d+)(?:_[A-Za-z0-9]+)*\.(?:ts|m3u8|m4s|aac)"),
    ),
    "xtream": (
        # playlist or MPEG-TS, and XUI-style segments /live/<u>/<p>/<id>_<n>.ts
        ("/live/", r"/live/(?P<line>[^/]+)/(?P<password>[^/]+)/(?P<stream>\d+)(?:_\d+)?\.(?:ts|m3u8|m3u)"),
        # HLS segments: /hls/<u>/<p>/<id>/<n>.ts and Xtream Codes' /hls/<u>/<p>/<id>/<token>/<segment>
        ("/hls/", r"/hls/(?P<line>[^/]+)/(?P<password>[^/]+)/(?P<stream>\d+)/(?:[^/]+/)?[^/]+"),
        # load-balanced segments: /hlsr/<token>/<u>/<p>/<id>/<key>/<segment>
        ("/hlsr/", r"/hlsr/[^/]+/(?P<line>[^/]+)/(?P<password>[^/]+)/(?P<stream>\d+)/[^/]+/[^/]+"),
        # short MPEG-TS form /<u>/<p>/<id> (and /<u>/<p>/<id>.ch)
        ("/", r"/(?P<line>[^/]+)/(?P<password>[^/]+)/(?P<stream>\d+)(?:\.ch|\.ts)?"),
    ),
}

URL_CACHE_SIZE = 300_000
"""Distinct paths remembered; past it the older half is forgotten (segment URLs age quickly)."""

Target = tuple[str, "str | None"]
"""(stream, line or None) of a path."""
NOT_A_STREAM: Target = ("", None)
"""A path that is no stream URL: an empty stream id, which no inventory stream has."""


@dataclass(frozen=True, slots=True)
class UrlPattern:
    prefix: str
    """Only paths starting with it are tried (empty: every path)."""
    pattern: re.Pattern[str] | LinearPattern[str]
    whole: bool
    """The whole path must match (the presets), else the pattern is searched for anywhere (custom ``urls``)."""


def url_patterns(cfg: AccessLog) -> list[UrlPattern]:
    """Custom ``urls`` first (RE2: they come from the config), then the preset's (our own patterns, run by
    ``re``: a new path then costs about 1 µs instead of the RE2 binding's 30 µs for a ``str``)."""
    out = [UrlPattern("", compile_linear(u), False) for u in cfg.urls]
    if cfg.preset is not None:
        out += [UrlPattern(prefix, re.compile(p), True) for prefix, p in PRESETS[cfg.preset]]
    return out


def log_redactor(patterns: Sequence[re.Pattern[str] | LinearPattern[str]]) -> Redactor:
    """:class:`exporter.redact.Redactor` in the access log's style: usernames kept (they are the lines the API
    shows), passwords as ``***`` (``/live/alice/***/5.ts``), the presets' and custom URL shapes included."""
    return Redactor(patterns, mask="***", keep_user=True)


def source_redactor(cfg: AccessLog) -> Redactor:
    """The redactor of the access-log source: its own patterns and every preset's (a log may mix shapes)."""
    return log_redactor([u.pattern for u in url_patterns(cfg)]
                        + [re.compile(p) for shapes in PRESETS.values() for _, p in shapes])


class StreamUrls:
    """Request path -> (stream, line), through the patterns once per distinct path."""

    def __init__(self, cfg: AccessLog) -> None:
        self.patterns = url_patterns(cfg)
        self.known: dict[bytes, Target] = {}
        """Path -> its answer. Read directly by the source's per-line loop; a miss goes to :meth:`learn`."""

    def learn(self, path: bytes) -> Target:
        """The answer for a path not in :attr:`known`, now remembered."""
        target = self.known[path] = self.match(path)
        return target

    def trim(self) -> None:
        """Forget the older half of :attr:`known` past :data:`URL_CACHE_SIZE` (dicts keep insertion order)."""
        if len(self.known) > URL_CACHE_SIZE:
            for path in list(itertools.islice(self.known, len(self.known) // 2)):
                del self.known[path]

    def match(self, path: bytes) -> Target:
        """(stream, line) of a path (as the combined parser takes it: no query), or :data:`NOT_A_STREAM`.

        The URL starts at the path's first ``/`` (a log format may write the host before it,
        ``$host$request_uri``); a path without one is no stream URL, whatever the patterns."""
        start = path.find(b"/")
        if start < 0:
            return NOT_A_STREAM
        text = path[start:].decode("latin-1")
        for url in self.patterns:
            if not text.startswith(url.prefix):
                continue
            m = url.pattern.fullmatch(text) if url.whole else url.pattern.search(text)
            if m is None:
                continue
            stream = m.group("stream")
            if not stream:
                return NOT_A_STREAM
            line = m.group("line") if "line" in url.pattern.groupindex else None
            return (stream, line or None)
        return NOT_A_STREAM

    def resolve(self, request: bytes) -> tuple[str | None, str | None]:
        """(stream, line) of a request line (``GET /live/u/p/5.ts HTTP/1.1``) or path, or (None, None).

        The path starts at the first ``/`` and ends at a space or ``?``; no inventory is consulted.
        """
        start = request.find(b"/")
        if start < 0:
            return (None, None)
        end = len(request)
        for stop in (b" ", b"?"):
            at = request.find(stop, start)
            if 0 <= at < end:
                end = at
        stream, line = self.match(request[start:end])
        return (stream or None, line)
