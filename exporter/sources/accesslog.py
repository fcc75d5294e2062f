"""Who watches what, from nginx's access log: viewers per stream, bytes and responses, lines and sharing.

The log is followed like ``tail -F`` (:class:`~exporter.sources.tail.FileFollower`, rotation-safe),
starting at its end unless ``from_start``. Each line becomes ``(ip, time, path, status, bytes, agent)``:

- ``combined`` (nginx's default): each line is split on its quotes and its parts are checked against
  :data:`COMBINED`, with what repeats from line to line (a client's head, the second, the URL) answered
  from dicts, so a line costs a few dict operations and no regex (:meth:`AccessLogSource.fold_lines`; the
  ingest rate is in docs/viewers.md);
- ``json``: nginx ``log_format ... escape=json`` with the usual variable names as keys;
- ``regex``: your own regex with named groups ``ip``, ``path``, ``status``, ``bytes`` (``agent``, ``time``
  optional).

A request path becomes a stream (and a subscriber line, the username) through URL patterns: the ``panelx``
or ``xtream`` preset and your own ``urls``. Results are cached per path. Only streams in the inventory
become label values: a request for ``/live/u/p/99999.ts`` cannot create a series.

A viewer is a distinct client (IP + user agent) with a successful (1xx-3xx) request for the stream within
``viewers.window``;
a viewing session runs from its first request until ``window`` passes without one, then its duration
goes into a histogram. A line is online while one of its clients is; it is suspected of sharing when
seen from more than ``sharing.max_ips`` IPs or more than ``sharing.max_countries`` countries.

Passwords from URLs never leave this module: paths are not kept, and anything logged goes through
:func:`log_redactor` (``/live/alice/***/5.ts``).
"""

from __future__ import annotations

import bisect
import calendar
import contextlib
import functools
import gc
import itertools
import json
import logging
import operator
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple

from exporter.config import Config
from exporter.config.viewers import AccessLog, Sharing
from exporter.geo import UNKNOWN, GeoInfo
from exporter.linear_re import LinearPattern, compile_linear
from exporter.redact import Redactor, excerpt
from exporter.sources import SampleContext
from exporter.sources.accesslog_fast import INVALID, STAMP_SIZE, STATUS_CLASS, RequestMatcher, head_ip, stamp_time
from exporter.sources.tail import FileFollower

log = logging.getLogger(__name__)

Row = tuple[bytes, bytes, bytes, bytes, bytes, bytes]
"""(ip, time, path without query, status, body bytes, user agent), all raw bytes."""

COMBINED = re.compile(
    rb'^(\S+) \S+ \S+ \[([^\]\n]*)\] "(?:[A-Z]+ +)?([^ "?\n]*)[^"\n]*" ([1-5]\d\d) (\d+|-) "[^"\n]*" "([^"\n]*)"',
    re.M,
)
"""nginx/Apache combined; nginx escapes quotes inside fields as \\x22, so ``[^"]`` is exact. Trailing extra
fields (``$http_x_forwarded_for``, ``$request_time``) are allowed."""

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

def log_redactor(patterns: Sequence[re.Pattern[str] | LinearPattern[str]]) -> Redactor:
    """:class:`exporter.redact.Redactor` in the access log's style: usernames kept (they are the lines the API
    shows), passwords as ``***`` (``/live/alice/***/5.ts``), the presets' and custom URL shapes included."""
    return Redactor(patterns, mask="***", keep_user=True)


def url_patterns(cfg: AccessLog) -> list[tuple[str, LinearPattern[str], bool]]:
    """(prefix, pattern, match whole): custom ``urls`` first (searched anywhere), then the preset's. RE2, so
    a custom pattern runs in linear time on any URL a client sends (exporter.linear_re)."""
    out = [("", compile_linear(u), False) for u in cfg.urls]
    if cfg.preset is not None:
        out += [(prefix, compile_linear(p), True) for prefix, p in PRESETS[cfg.preset]]
    return out


_MONTHS = {m.encode(): i for i, m in enumerate(calendar.month_abbr) if m}


def parse_time(raw: bytes) -> float | None:
    """Unix time of ``26/Nov/2026:14:02:11 +0000`` (nginx $time_local), ISO 8601, or epoch seconds."""
    if not raw:
        return None
    try:
        if raw[2:3] == b"/" and len(raw) >= 26:
            offset = (int(raw[22:24]) * 3600 + int(raw[24:26]) * 60) * (-1 if raw[21:22] == b"-" else 1)
            stamp = calendar.timegm(
                (int(raw[7:11]), _MONTHS[raw[3:6]], int(raw[0:2]), int(raw[12:14]), int(raw[15:17]),
                 int(raw[18:20]), 0, 0, 0)
            )
            return float(stamp - offset)
        if raw[4:5] == b"-":
            return datetime.fromisoformat(raw.decode("ascii")).timestamp()
        return float(raw)
    except (ValueError, KeyError, OverflowError, UnicodeDecodeError):
        return None


def parse_combined(data: bytes) -> list[Row]:
    """Every combined-format line in ``data`` (lines joined by newlines); lines that do not parse are left out."""
    return COMBINED.findall(data)


_JSON_KEYS = {
    "ip": ("remote_addr", "client_ip", "remote_ip", "ip", "client"),
    "time": ("time_local", "time_iso8601", "msec", "timestamp", "time"),
    "path": ("request_uri", "uri", "path", "request"),
    "status": ("status",),
    "bytes": ("body_bytes_sent", "bytes_sent", "bytes", "size"),
    "agent": ("http_user_agent", "user_agent", "agent"),
}


def _field(obj: dict[str, object], key: str) -> bytes:
    for name in _JSON_KEYS[key]:
        value = obj.get(name)
        if value is not None and not isinstance(value, dict | list):
            return str(value).encode("utf-8", "replace")
    return b""


def _clean_path(path: bytes) -> bytes:
    if b" " in path:  # a whole request line: "GET /path HTTP/1.1"
        parts = path.split(b" ")
        path = parts[1] if len(parts) > 1 else parts[0]
    return path.split(b"?", 1)[0]


def _valid(status: bytes, nbytes: bytes) -> bool:
    return len(status) == 3 and status.isdigit() and 49 <= status[0] <= 53 and (nbytes.isdigit() or nbytes == b"-")


def parse_json_line(line: bytes) -> Row | None:
    """One ``escape=json`` log line, or None if it is not one."""
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    ip, path, status = _field(obj, "ip"), _clean_path(_field(obj, "path")), _field(obj, "status")
    nbytes = _field(obj, "bytes") or b"0"
    if not ip or not path or not _valid(status, nbytes):
        return None
    return (ip, _field(obj, "time"), path, status, nbytes, _field(obj, "agent"))


def parse_regex_line(rx: LinearPattern[bytes], line: bytes) -> Row | None:
    """One line through a custom regex with named groups ip, path, status, bytes (agent, time optional)."""
    m = rx.search(line)
    if m is None:
        return None
    d = m.groupdict()
    ip, path, status, nbytes = d["ip"], d["path"], d["status"], d["bytes"]
    if not ip or path is None or status is None or nbytes is None or not _valid(status, nbytes):
        return None
    return (ip, d.get("time") or b"", _clean_path(path), status, nbytes, d.get("agent") or b"")


_DIGITS = b"0123456789"


def _shape(request: bytes) -> tuple[bytes, int] | None:
    """``GET /streams/stream_5_#.ts HTTP/1.1`` for ``.../stream_5_118.ts``, and where the number started.

    Only a number right before the extension and after ``_`` or ``/`` (a segment number) is replaced.
    """
    start = request.find(b"/")
    if start < 0:
        return None
    end = request.find(b" ", start)
    if end < 0:
        end = len(request)
    query = request.find(b"?", start, end)
    if query >= 0:
        end = query
    dot = request.rfind(b".", start, end)
    if dot < 0:
        return None
    stripped = request[:dot].rstrip(_DIGITS)
    if len(stripped) == dot or stripped[-1:] not in (b"_", b"/"):
        return None
    return stripped + b"#" + request[dot:], len(stripped)


# -- results -------------------------------------------------------------------------------------------

CODES = ("2xx", "3xx", "4xx", "5xx")

SESSION_BUCKETS = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0)
"""Viewing session durations: from a channel flick (seconds) to a day in front of one channel."""


@dataclass(frozen=True, slots=True)
class StreamTraffic:
    sent_bytes_total: int
    """Response body bytes of the stream's requests (nginx ``$body_bytes_sent``)."""
    responses_total: Mapping[str, int]
    """Requests by status class, ``2xx`` .. ``5xx``."""


class Viewer(NamedTuple):
    """A client on a stream within the window. IPs and agents are for the API, never for labels."""

    stream: str
    ip: str
    agent: str
    line: str | None
    first_seen: float
    last_seen: float


@dataclass(frozen=True, slots=True)
class LineSharing:
    line: str
    ips: tuple[str, ...]
    countries: tuple[str, ...]
    streams: tuple[str, ...]
    clients: int


@dataclass(frozen=True, slots=True)
class Histogram:
    buckets: tuple[tuple[float, int], ...]
    """Cumulative counts per upper bound, the last bound is +Inf."""
    sum: float
    count: int


@dataclass(frozen=True)
class AccessLogResult:
    streams: Mapping[str, StreamTraffic]
    viewers: Mapping[str, int]
    """Distinct clients per stream within the window (inventory streams only)."""
    lines_online: int
    sharing_lines: frozenset[str]
    """Lines suspected of sharing (their details: :attr:`sharing`)."""
    lines_total: int
    skipped_lines_total: int
    sessions: Histogram
    rotations: int
    open_sessions: Mapping[Client, tuple[float, ...]]
    """(stream, ip, agent) -> (first seen, last seen), as the round left them: the raw form of :attr:`clients`."""
    client_lines: Mapping[tuple[bytes, bytes], str]
    """(ip, agent) -> subscriber line, for the clients in :attr:`open_sessions` that have one."""
    lookup: Lookup = field(repr=False, compare=False)
    """Where :attr:`sharing` places IPs (the source's cached geo lookup)."""
    overlong_lines_total: int = 0
    """Lines longer than the follower's cap, dropped unread (``tail.MAX_LINE``)."""

    @functools.cached_property
    def sharing(self) -> tuple[LineSharing, ...]:
        """The lines of :attr:`sharing_lines` with their IPs, countries and streams, most IPs first.

        Made when first asked for (by /api/lines/sharing): on a host where thousands of lines look shared,
        describing each every round cost more than the rest of the source's round.
        """
        details: dict[str, tuple[set[str], set[str], set[str]]] = {
            line: (set(), set(), set()) for line in self.sharing_lines}
        clients: Counter[str] = Counter()
        line_of = self.client_lines.get
        for stream, ip_raw, agent in self.open_sessions:
            line = line_of((ip_raw, agent))
            if line in details:
                ips, countries, streams = details[line]
                ip = _DECODE(ip_raw)
                ips.add(ip)
                countries.add(self.lookup(ip).country)
                streams.add(stream)
                clients[line] += 1
        out = [
            LineSharing(line, tuple(sorted(ips)), tuple(sorted(countries - {UNKNOWN})), tuple(sorted(streams)),
                        clients[line])
            for line, (ips, countries, streams) in details.items()
        ]
        out.sort(key=lambda s: (-len(s.ips), -len(s.countries), s.line))
        return tuple(out)

    @functools.cached_property
    def clients(self) -> tuple[Viewer, ...]:
        """One row per open session, made when first asked for (by /api/connections, not by /metrics).

        Decoding 10k addresses and agents into rows every round was a third of the source's round at
        10k viewers (bench: ``exporter``), for an API that may never be called.
        """
        line_of = self.client_lines.get
        return tuple(
            Viewer(stream, ip.decode("ascii", "replace"), agent.decode("utf-8", "replace"), line_of((ip, agent)),
                   first, last)
            for (stream, ip, agent), (first, last) in self.open_sessions.items()
        )


# -- the source ----------------------------------------------------------------------------------------

Lookup = Callable[[str], GeoInfo]
Client = tuple[str, bytes, bytes]
"""(stream, ip, agent): one viewer of one stream."""
Hit = tuple[str, "str | None", "list[int]"]
"""(stream, line, the stream's traffic counters): what a request line means, cached per request line."""
_FIRST = operator.itemgetter(0)
_SECOND = operator.itemgetter(1)
_CLIENT_OF = operator.itemgetter(1, 2)
"""(ip, agent) of a session key (stream, ip, agent)."""
_COUNTRY = operator.attrgetter("country")
_DECODE = operator.methodcaller("decode", "ascii", "replace")
_NOT_A_STREAM = (None, None)
_NO_HIT: Hit = ("", None, [])
"""Not a stream (or not one in the inventory): an empty stream id, which no inventory stream has."""
_REQUEST_PATH = re.compile(rb"(?:[A-Z]+ +)?([^ ?]*)")
"""The path of a request line, as :data:`COMBINED` takes it."""
_SPACE = b" "
"""One byte: CPython hands out one object for it, so ``is`` settles the usual case before ``!=``."""
URL_CACHE_SIZE = 300_000
"""Distinct request lines remembered; past it the older half is forgotten (segment URLs age quickly)."""
CLIENT_CACHE_SIZE = 100_000
"""Distinct heads (``ip ident user ``) remembered, as many clients."""
STAMP_CACHE_SIZE = 10_000
"""Distinct log times remembered (one per second: a backlog of hours; times do not come back)."""


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a batch is folded.

    The loop makes a tuple or two per line, and every 700 of them the collector runs; with the caches
    it walks (hundreds of thousands of URLs) that is a tenth of the ingest's time (bench: ``accesslog``),
    and the loop makes no cycles for it to find. Reference counting still frees everything at once;
    cycles other threads make meanwhile wait until the batch is done.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _trim(cache: dict[Any, Any], size: int = URL_CACHE_SIZE) -> None:
    if len(cache) > size:
        for key in list(itertools.islice(cache, len(cache) // 2)):
            del cache[key]


class AccessLogSource:
    """Follows the access log; keeps counters, sessions and the URL cache between rounds."""

    name = "accesslog"

    def __init__(self, config: Config, lookup: Lookup, *, follower: FileFollower | None = None,
                 refresh: Callable[[], None] | None = None) -> None:
        cfg = config.viewers.access_log
        if cfg is None:
            raise ValueError("viewers.access_log is not configured")
        self._cfg = cfg
        self._window = config.viewers.window
        self._sharing = config.viewers.sharing
        self._max_clients = config.viewers.max_clients
        self._lookup = lookup
        self._patterns = url_patterns(cfg)
        self.redactor = log_redactor([p for _, p, _ in self._patterns]
                                     + [re.compile(p) for shapes in PRESETS.values() for _, p in shapes])
        self._custom = compile_linear(cfg.regex.encode("utf-8")) if cfg.format == "regex" and cfg.regex else None
        self._follower = follower
        """Opened at the first sample, not here: an unreadable log marks the source down, it does not stop
        the exporter from starting."""
        self._refresh = refresh
        self._inventory: frozenset[str] = frozenset()
        self._urls: dict[bytes, Hit] = {}
        self._shapes: dict[bytes, Hit] = {}
        """Segment URLs with their number replaced by ``#`` -> answer: a new segment of a known stream
        costs a dict lookup, not a regex (on a host with many quiet channels most segments are new)."""
        self._ended: list[float] = []
        """Durations of sessions ended since the last round; bucketed in C once per round."""
        self._traffic: dict[str, list[int]] = {}
        """stream -> [body bytes, 1xx, 2xx, 3xx, 4xx, 5xx]"""
        self._requests: dict[bytes, Hit] = {}
        """Combined request lines (``GET /path HTTP/1.1``) -> answer, for :meth:`fold_lines`."""
        self._matcher = RequestMatcher([p for _, p in PRESETS[cfg.preset]]) if cfg.preset and not cfg.urls else None
        """The preset's patterns as one regex over request lines (custom ``urls`` come first, searched
        anywhere in the path: with them, each new request goes through :meth:`lookup_url`)."""
        self._hits: dict[tuple[bytes, bytes], Hit] = {}
        """The matcher's (line, stream) -> answer."""
        self._request_shapes: dict[tuple[bytes, bytes], Hit] = {}
        """(request up to its last '_', what follows the number after it) -> answer, for new segments."""
        self._heads: dict[bytes, bytes] = {}
        """A head up to its time (``ip ident user ``) -> ip."""
        self._stamps: dict[bytes, float | None] = {}
        """A head's ``[time] `` -> Unix time (None: not a time nginx writes)."""
        self._sessions: dict[Client, list[float]] = {}
        """(stream, ip, agent) -> [first seen, last seen]"""
        self._client_line: dict[tuple[bytes, bytes], str] = {}
        self._buckets = [0] * (len(SESSION_BUCKETS) + 1)
        self._session_sum = 0.0
        self._session_count = 0
        self.lines_total = 0
        self.skipped_total = 0
        self._warned_full = False

    def open(self) -> None:
        """Nothing yet: the log is opened at the first sample (see ``_follower``)."""

    def close(self) -> None:
        follower = getattr(self, "_follower", None)  # also from __del__ after a failed __init__
        if follower is not None:
            follower.close()

    def __del__(self) -> None:
        # The runtime has no shutdown hook for sources: close the followed file with the source, so a
        # dropped runtime (tests build many) leaves no open file behind.
        self.close()

    def sample(self, ctx: SampleContext) -> AccessLogResult:
        if self._refresh is not None:
            self._refresh()
        if self._follower is None:
            self._follower = FileFollower(self._cfg.path, from_start=self._cfg.from_start)
        self.set_inventory(ctx.streams)
        lines = self._follower.read_lines()
        with _collector_paused():  # the round makes thousands of short-lived containers and no cycles
            self.ingest(lines, ctx.now)
            return self.result(ctx.now)

    def set_inventory(self, streams: Iterable[str]) -> None:
        inventory = frozenset(streams)
        if inventory != self._inventory:
            self._inventory = inventory
            self._urls.clear()  # cached "not a stream" answers may be streams now, and the reverse
            self._requests.clear()
            self._hits.clear()
            self._request_shapes.clear()
            self._shapes.clear()

    # -- parsing ------------------------------------------------------------------------------------

    def parse(self, lines: list[bytes]) -> list[Row]:
        fmt = self._cfg.format
        if fmt == "combined":
            return parse_combined(b"\n".join(lines))
        out: list[Row] = []
        if fmt == "json":
            for line in lines:
                row = parse_json_line(line)
                if row is not None:
                    out.append(row)
        else:
            assert self._custom is not None  # guaranteed by the config validator
            for line in lines:
                row = parse_regex_line(self._custom, line)
                if row is not None:
                    out.append(row)
        return out

    def _log_skipped(self, lines: list[bytes], skipped: int) -> None:
        for line in lines:
            if not self.parse([line]):
                text = line[:400].decode("utf-8", "replace")
                # Never the raw line: a count and a redacted, masked excerpt (exporter.redact.excerpt).
                log.debug("access log lines skipped (unparsable) count=%d first_excerpt=%s",
                          skipped, excerpt(text, redactor=self.redactor))
                return

    def lookup_url(self, request: bytes) -> Hit:
        """:meth:`resolve` through the segment-shape cache; the caller caches the answer per request."""
        shape = _shape(request)
        if shape is not None:
            hit = self._shapes.get(shape[0])
            if hit is not None:
                return hit
        stream, line = self.resolve(request, shape)
        if stream is None:
            return _NO_HIT
        return (stream, line, self._traffic[stream])

    def resolve(self, request: bytes, shape: tuple[bytes, int] | None = None) -> tuple[str | None, str | None]:
        """(stream, line) of a request line or path, or (None, None): not a stream URL or not in the inventory.

        Called once per distinct request (then cached), which on a host with many quiet channels is every
        new segment: kept to one prefix test per pattern and one regex match.
        """
        start = request.find(b"/")
        if start < 0:
            return _NOT_A_STREAM
        end = len(request)
        for stop in (b" ", b"?"):
            at = request.find(stop, start)
            if 0 <= at < end:
                end = at
        text = request[start:end].decode("latin-1")
        for prefix, pattern, whole in self._patterns:
            if not text.startswith(prefix):
                continue
            m = pattern.fullmatch(text) if whole else pattern.search(text)
            if m is None:
                continue
            stream = m.group("stream")
            has_line = "line" in pattern.groupindex
            if stream not in self._inventory:
                answer: tuple[str | None, str | None] = _NOT_A_STREAM
            else:
                answer = (stream, (m.group("line") if has_line else None) or None)
                if stream not in self._traffic:
                    self._traffic[stream] = [0, 0, 0, 0, 0, 0]
            # Same answer for every segment number if the number is not part of the stream id or line
            # (preset patterns accept any number there; custom ones might not).
            if shape is not None and whole and m.end("stream") <= shape[1] - start and (
                    not has_line or m.end("line") <= shape[1] - start):
                _trim(self._shapes)
                self._shapes[shape[0]] = _NO_HIT if answer[0] is None else (answer[0], answer[1],
                                                                             self._traffic[answer[0]])
            return answer
        return _NOT_A_STREAM

    # -- the hot path ---------------------------------------------------------------------------------

    def ingest(self, lines: list[bytes], now: float) -> None:
        """Count a batch of complete lines. Request times come from the log (clamped to ``now``)."""
        if not lines:
            return
        self.lines_total += len(lines)
        if self._cfg.format == "combined":
            with _collector_paused():
                skipped = self.fold_lines(lines, now)
        else:
            rows = self.parse(lines)
            skipped = len(lines) - len(rows)
            self.fold(rows, now)
        if skipped:
            self.skipped_total += skipped
            if log.isEnabledFor(logging.DEBUG):
                self._log_skipped(lines, skipped)

    def _request_hit(self, request: bytes) -> Hit:
        """What a request line (``GET /path HTTP/1.1``) means: one regex for a preset, else :meth:`lookup_url`."""
        matcher = self._matcher
        if matcher is None:
            m = _REQUEST_PATH.match(request)
            return self.lookup_url(m.group(1) if m else b"")
        # A new segment of a known stream (``stream_5_119.ts`` after ``stream_5_118.ts``) has the shape of the
        # last one: the request with the number after its last '_' taken out.
        stem, underscore, tail = request.rpartition(b"_")
        rest = tail.lstrip(_DIGITS)
        shape = (stem, rest) if underscore and len(rest) < len(tail) else None
        if shape is not None:
            hit = self._request_shapes.get(shape)
            if hit is not None:
                return hit
        m = matcher.regex.match(request)
        if m is None:
            return _NO_HIT
        line_group, stream_group = matcher.groups[m.lastgroup]
        line, stream = m.group(line_group, stream_group)
        hit = self._hits.get((line, stream))
        if hit is None:
            hit = self._hits[(line, stream)] = self._hit(line, stream)
        # Same answer for every number there if the line and stream came before it (the presets take any
        # number in that place; a miss is not remembered by shape, the number might be why).
        if shape is not None and m.end(stream_group) <= len(stem) and m.end(line_group) <= len(stem):
            _trim(self._request_shapes)
            self._request_shapes[shape] = hit
        return hit

    def _hit(self, line_raw: bytes, stream_raw: bytes) -> Hit:
        stream = stream_raw.decode("latin-1")
        if stream not in self._inventory:
            return _NO_HIT
        if stream not in self._traffic:
            self._traffic[stream] = [0, 0, 0, 0, 0, 0]
        return (stream, line_raw.decode("latin-1") or None, self._traffic[stream])

    def fold_lines(self, lines: list[bytes], now: float) -> int:
        """The hot path: count combined lines in one pass; returns how many did not parse.

        Each line is split on its first six quotes (head, request, `` status bytes ``, referer, `` ``, agent),
        and each part is checked against what :data:`COMBINED` accepts; a line whose head does not pass goes
        to that regex, which has the last word. What repeats from line to line (a client's head, the second,
        the status, the URL) is answered from a dict: a line costs a few dict lookups and no regex.
        Keep it in step with :meth:`fold`, which does the same for parsed rows.
        """
        requests, resolve = self._requests, self._request_hit
        heads, stamps, classes = self._heads, self._stamps, STATUS_CLASS
        sessions, client_line = self._sessions, self._client_line
        seen, window, ended = sessions.get, self._window, self._ended.append
        _trim(requests)
        _trim(self._hits)
        _trim(heads, CLIENT_CACHE_SIZE)
        _trim(stamps, STAMP_CACHE_SIZE)
        cut = -STAMP_SIZE
        bad = 0
        stamp = b"\n"  # no head ends with it
        ts = now
        for line in lines:
            try:
                head, request, mid, _, space, agent, _ = line.split(b'"', 6)
            except ValueError:  # fewer than six quotes: not a combined line
                bad += 1
                continue
            ip = heads.get(head[:cut])
            if ip is None or not head.endswith(stamp):  # a new client or a new second: look closer
                if ip is None:
                    ip = head_ip(head[:cut])
                    if ip:
                        heads[head[:cut]] = ip
                if ip and not head.endswith(stamp):
                    if head[cut:] in stamps:
                        parsed = stamps[head[cut:]]
                    else:
                        raw = stamp_time(head[cut:])
                        if raw is None:
                            ip = INVALID
                        else:
                            parsed = stamps[head[cut:]] = parse_time(raw)
                    if ip:
                        stamp = head[cut:]
                        ts = now if parsed is None or parsed > now else parsed
                if not ip:  # a head this loop does not read: the regex decides
                    rows = parse_combined(line)
                    bad += 1 - len(rows)
                    self.fold(rows, now)
                    continue
            # The head is ``ip ident user [time] `` and the line has six quotes or more: COMBINED takes these
            # parts as they are, and rejects the line unless the status and bytes are as follows.
            code = classes.get(mid[:5])
            if code is None or mid[-1] != 32 or (space is not _SPACE and space != _SPACE):
                bad += 1
                continue
            digits = mid[5:-1]
            if digits.isdigit():
                nbytes = int(digits)
            elif digits == b"-":
                nbytes = 0
            else:
                bad += 1
                continue
            hit = requests.get(request)
            if hit is None:
                hit = requests[request] = resolve(request)
            stream, name, acc = hit
            if not stream:
                continue
            acc[0] += nbytes
            acc[code] += 1
            if code > 3:
                continue  # refused (wrong password, expired segment) or failed: not watching
            key = (stream, ip, agent)
            s = seen(key)
            if s is None:
                sessions[key] = [ts, ts]
            elif ts > s[1]:
                if ts - s[1] > window:
                    ended(s[1] - s[0])
                    s[0] = ts
                s[1] = ts
            if name is not None:
                client_line[(ip, agent)] = name
        return bad

    def fold(self, rows: Iterable[Row], now: float) -> None:
        """Count parsed rows (JSON, custom regex, odd combined lines); the same steps as :meth:`fold_lines`."""
        urls, resolve = self._urls, self.lookup_url
        sessions, client_line = self._sessions, self._client_line
        window = self._window
        last_raw = None
        ts = now
        _trim(urls)
        for ip, traw, path, status, nbytes, agent in rows:
            hit = urls.get(path)
            if hit is None:
                hit = urls[path] = resolve(path)
            stream, line, acc = hit
            if not stream:
                continue
            if traw != last_raw:
                last_raw = traw
                parsed = parse_time(traw)
                ts = now if parsed is None or parsed > now else parsed
            acc[0] += int(nbytes) if nbytes != b"-" else 0
            acc[status[0] - 48] += 1
            if status[0] > 51:
                continue
            key = (stream, ip, agent)
            s = sessions.get(key)
            if s is None:
                sessions[key] = [ts, ts]
            elif ts - s[1] > window:
                self._ended.append(s[1] - s[0])
                s[0] = s[1] = ts
            elif ts > s[1]:
                s[1] = ts
            if line is not None:
                client_line[(ip, agent)] = line

    def _observe_ended(self) -> None:
        """Fold the round's ended sessions into the histogram: counting and summing in C."""
        ended, self._ended = self._ended, []
        if not ended:
            return
        for index, n in Counter(map(functools.partial(bisect.bisect_left, SESSION_BUCKETS), ended)).items():
            self._buckets[index] += n
        self._session_sum += sum(ended)
        self._session_count += len(ended)

    # -- once per round ------------------------------------------------------------------------------

    def _expire(self, now: float) -> None:
        cutoff = now - self._window
        sessions = self._sessions
        gone = [k for k, s in sessions.items() if s[1] < cutoff]
        for k in gone:
            s = sessions.pop(k)
            self._ended.append(s[1] - s[0])
        if len(sessions) > self._max_clients:
            if not self._warned_full:
                log.warning("too many viewer sessions, dropping the oldest max_clients=%d", self._max_clients)
                self._warned_full = True
            oldest = sorted(sessions, key=lambda k: sessions[k][1])[: len(sessions) - self._max_clients]
            for k in oldest:
                del sessions[k]
            gone += oldest
        if gone:
            # A client keeps its line while it has a session on any stream (a line is only ever recorded
            # for a client with a session, so only the clients of removed sessions can lose theirs).
            still = set(map(_CLIENT_OF, sessions))
            for client in set(map(_CLIENT_OF, gone)) - still:
                self._client_line.pop(client, None)

    def result(self, now: float) -> AccessLogResult:
        """The round's figures. Runs every round over every open session (10k and more on a busy host), so
        it is made of C-speed passes (``map``, ``zip``, ``Counter``, sets); rows for the API are made by the
        result when asked for."""
        self._expire(now)
        self._observe_ended()
        sessions, client_line = self._sessions, self._client_line
        # Distinct (ip, line) pairs: each line's IP count, without a loop in Python.
        pairs = list(set(zip(map(_FIRST, client_line), client_line.values(), strict=True)))
        ip_counts = Counter(map(_SECOND, pairs))
        streams = {
            stream: StreamTraffic(acc[0], MappingProxyType(dict(zip(CODES, acc[2:6], strict=True))))
            for stream, acc in self._traffic.items()
        }
        cumulative, total = [], 0
        for bound, n in zip((*SESSION_BUCKETS, float("inf")), self._buckets, strict=True):
            total += n
            cumulative.append((bound, total))
        return AccessLogResult(
            streams=MappingProxyType(streams),
            viewers=MappingProxyType(dict(Counter(map(_FIRST, sessions)))),  # a session key starts with its stream
            lines_online=len(ip_counts),
            sharing_lines=suspected_lines(pairs, ip_counts, self._sharing, self._lookup),
            lines_total=self.lines_total,
            skipped_lines_total=self.skipped_total,
            sessions=Histogram(tuple(cumulative), self._session_sum, self._session_count),
            rotations=self._follower.rotations + self._follower.truncations if self._follower else 0,
            # Copies (C-speed): the next round goes on changing the originals while the API reads these.
            open_sessions=MappingProxyType(dict(zip(sessions, map(tuple, sessions.values()), strict=True))),
            client_lines=MappingProxyType(dict(client_line)),
            lookup=self._lookup,
            overlong_lines_total=self._follower.overlong_lines if self._follower else 0,
        )


def suspected_lines(pairs: list[tuple[bytes, str]], ip_counts: Counter[str], sharing: Sharing,
                    lookup: Lookup) -> frozenset[str]:
    """Lines seen from more than ``max_ips`` IPs, or whose IPs are in more than ``max_countries`` countries.

    ``pairs``: distinct (ip, line); ``ip_counts``: line -> its distinct IPs. Shared with the panel DB source
    (exporter.sources.paneldb), so a line is judged the same whichever source saw it.
    """
    max_ips, max_countries = sharing.max_ips, sharing.max_countries
    flagged = {line for line, n in ip_counts.items() if n > max_ips}
    # Countries only for the lines with more IPs than countries allowed (a line cannot be in more
    # countries than it has IPs); lookups are cached (functools.lru_cache), so a known IP costs C time.
    if any(n > max_countries for n in ip_counts.values()):
        maybe = list(itertools.compress(pairs, map(max_countries.__lt__, map(ip_counts.__getitem__,
                                                                             map(_SECOND, pairs)))))
        countries = list(map(_COUNTRY, map(lookup, map(_DECODE, map(_FIRST, maybe)))))
        known = map(UNKNOWN.__ne__, countries)
        placed = set(itertools.compress(zip(map(_SECOND, maybe), countries, strict=True), known))  # (line, country)
        flagged.update(line for line, n in Counter(map(_FIRST, placed)).items() if n > max_countries)
    return frozenset(flagged)
