"""What a round of the access-log source (or of the panel DB source) gives: :class:`AccessLogResult`.

Both viewer sources produce this one type (exporter.sources.paneldb builds it from the panel's table), so
the metrics, the dashboards and the viewers API read either the same way. The rows the API shows
(:attr:`AccessLogResult.clients`, :attr:`AccessLogResult.sharing`) are made when first asked for, not
every round.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from exporter.config.viewers import Sharing
from exporter.geo import UNKNOWN, GeoInfo

Lookup = Callable[[str], GeoInfo]
Client = tuple[str, bytes, bytes]
"""(stream, ip, agent): one viewer of one stream."""

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


class SessionDurations:
    """The running histogram of ended viewing sessions (:data:`SESSION_BUCKETS`), kept across rounds."""

    def __init__(self) -> None:
        self._counts = [0] * (len(SESSION_BUCKETS) + 1)
        self._sum = 0.0

    def observe(self, seconds: float) -> None:
        self._counts[bisect.bisect_left(SESSION_BUCKETS, seconds)] += 1
        self._sum += seconds

    def histogram(self) -> Histogram:
        cumulative, total = [], 0
        for bound, n in zip((*SESSION_BUCKETS, float("inf")), self._counts, strict=True):
            total += n
            cumulative.append((bound, total))
        return Histogram(tuple(cumulative), self._sum, total)


def ips_by_line(client_lines: Mapping[tuple[bytes, bytes], str]) -> dict[str, set[bytes]]:
    """line -> the distinct IPs of its clients: its key count is the lines online."""
    out: dict[str, set[bytes]] = {}
    for (ip, _agent), line in client_lines.items():
        out.setdefault(line, set()).add(ip)
    return out


def suspected_lines(ips: Mapping[str, set[bytes]], sharing: Sharing, lookup: Lookup) -> frozenset[str]:
    """Lines seen from more than ``max_ips`` IPs, or whose IPs are in more than ``max_countries`` countries.

    ``ips``: line -> its distinct IPs (:func:`ips_by_line`). Shared with the panel DB source, so a line is
    judged the same whichever source saw it. Only lines with more IPs than countries allowed are placed (a
    line cannot be in more countries than it has IPs): most lines need no geo lookup.
    """
    flagged = set()
    for line, addresses in ips.items():
        if len(addresses) > sharing.max_ips:
            flagged.add(line)
        elif len(addresses) > sharing.max_countries:
            countries = {lookup(ip.decode("ascii", "replace")).country for ip in addresses} - {UNKNOWN}
            if len(countries) > sharing.max_countries:
                flagged.add(line)
    return frozenset(flagged)


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
        clients = dict.fromkeys(self.sharing_lines, 0)
        for stream, ip_raw, agent in self.open_sessions:
            line = self.client_lines.get((ip_raw, agent))
            if line in details:
                ips, countries, streams = details[line]
                ip = ip_raw.decode("ascii", "replace")
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
        return tuple(
            Viewer(stream, ip.decode("ascii", "replace"), agent.decode("utf-8", "replace"),
                   self.client_lines.get((ip, agent)), first, last)
            for (stream, ip, agent), (first, last) in self.open_sessions.items()
        )
