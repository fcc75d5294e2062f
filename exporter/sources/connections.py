"""Viewer connections from round to round: per-socket state, byte totals per port, counts by place.

Byte counters per port stay monotonic while connections come and go: each socket's last seen
``tcp_info`` is kept (by its kernel cookie) and folded into a per-port total when the socket is gone.
The bound: bytes a socket sent after the last sample that saw it, up to one ``sample_interval`` of its
traffic, are not counted. Sockets that are closing (FIN-WAIT, CLOSE-WAIT, LAST-ACK, CLOSING) are still
dumped, so a connection's tail is usually seen; only TIME-WAIT has no ``tcp_info`` left.

Pure apart from the state the classes carry; :mod:`exporter.sources.sockets` feeds them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from exporter.geo import GeoInfo, Lookup
from exporter.sources.sockdiag import TCP_ESTABLISHED, RawSocket, peer_ip

Excluded = Callable[[str], bool]
"""Whether connections from a peer address are left out (not viewers)."""


class Connection(NamedTuple):
    """One established viewer connection. A NamedTuple, not a dataclass: 10k of them are built per round."""

    local_port: int
    peer_ip: str
    peer_port: int
    since: float
    """When the exporter first saw the connection (or the dump that found it at start-up)."""
    sent_bytes: int | None
    """``tcpi_bytes_acked``: bytes the viewer acknowledged. None without netlink."""
    received_bytes: int | None
    rtt_seconds: float | None
    geo: GeoInfo


class SocketTable:
    """The sockets of the last dump by cookie, and the bytes of sockets gone since, per local port."""

    def __init__(self, ports: Iterable[int]) -> None:
        self._live: dict[bytes, Connection] = {}
        """cookie -> the socket as last seen (established or closing)"""
        self._closed_sent: dict[int, int] = dict.fromkeys(ports, 0)
        self._closed_received: dict[int, int] = dict.fromkeys(ports, 0)

    def fold(self, sockets: Iterable[RawSocket], now: float, lookup: Lookup, excluded: Excluded) -> list[Connection]:
        """Take one dump; return its established connections.

        A socket whose counters did not move keeps its Connection from the last round (a steady round
        builds almost nothing); a new one has its peer's address made text and looked up once.
        """
        old = self._live
        live: dict[bytes, Connection] = {}
        established: list[Connection] = []
        for s in sockets:
            c = old.pop(s.cookie, None)
            if c is None:
                ip = peer_ip(s.family, s.peer_address)
                if excluded(ip):
                    continue
                rtt = None if s.rtt_us is None else s.rtt_us / 1e6
                c = Connection(s.local_port, ip, s.peer_port, now, s.bytes_acked or 0, s.bytes_received or 0, rtt,
                               lookup(ip))
            elif s.bytes_acked is not None and (s.bytes_acked != c.sent_bytes or s.bytes_received != c.received_bytes):
                rtt = None if s.rtt_us is None else s.rtt_us / 1e6
                c = Connection(c.local_port, c.peer_ip, c.peer_port, c.since, s.bytes_acked, s.bytes_received, rtt,
                               c.geo)
            live[s.cookie] = c
            if s.state == TCP_ESTABLISHED:
                established.append(c)
        for c in old.values():  # gone since the last round: keep what it had moved as far as we saw it
            self._closed_sent[c.local_port] = self._closed_sent.get(c.local_port, 0) + (c.sent_bytes or 0)
            self._closed_received[c.local_port] = self._closed_received.get(c.local_port, 0) + (c.received_bytes or 0)
        self._live = live
        return established

    def totals(self) -> tuple[dict[int, int], dict[int, int]]:
        """(sent, received) bytes per local port so far: closed sockets as last seen, plus the live ones."""
        sent, received = dict(self._closed_sent), dict(self._closed_received)
        for c in self._live.values():
            sent[c.local_port] = sent.get(c.local_port, 0) + (c.sent_bytes or 0)
            received[c.local_port] = received.get(c.local_port, 0) + (c.received_bytes or 0)
        return sent, received


class PsutilTable:
    """Connections from psutil's rows (no cookie, no bytes): each (port, peer) keeps when it was first seen."""

    def __init__(self) -> None:
        self._since: dict[tuple[int, str, int], float] = {}

    def fold(self, rows: Iterable[tuple[int, str, int]], now: float, lookup: Lookup, excluded: Excluded
             ) -> list[Connection]:
        """Take (local port, peer ip, peer port) rows; a v4-mapped peer is shown as IPv4."""
        seen: dict[tuple[int, str, int], float] = {}
        conns = []
        for port, ip, peer_port in rows:
            if ip.startswith("::ffff:") and "." in ip:
                ip = ip[7:]
            if excluded(ip):
                continue
            key = (port, ip, peer_port)
            seen[key] = self._since.get(key, now)
            conns.append(Connection(port, ip, peer_port, seen[key], None, None, None, lookup(ip)))
        self._since = seen
        return conns


@dataclass(frozen=True, slots=True)
class CityCount:
    country: str
    city: str
    latitude: str
    longitude: str
    connections: int


@dataclass(frozen=True, slots=True)
class IspCount:
    asn: str
    isp: str
    connections: int


OTHER = "other"


def _coord(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def aggregate(conns: Sequence[Connection], top_cities: int, top_isps: int
              ) -> tuple[dict[str, int], tuple[CityCount, ...], tuple[IspCount, ...]]:
    """Counts by country, by city (top N; the rest summed per country as city ``other``) and by ISP (top N).

    Connections are first counted per GeoInfo (10k connections from a few hundred places make a few
    hundred entries), then per place.
    """
    countries: Counter[str] = Counter()
    cities: Counter[tuple[str, str, str, str]] = Counter()
    isps: Counter[tuple[str, str]] = Counter()
    for g, n in Counter(c.geo for c in conns).items():
        countries[g.country] += n
        cities[(g.country, g.city, _coord(g.latitude), _coord(g.longitude))] += n
        isps[("" if g.asn is None else str(g.asn), g.isp)] += n
    ranked = sorted(cities.items(), key=lambda kv: (-kv[1], kv[0]))
    city_rows = [CityCount(*key, n) for key, n in ranked[:top_cities]]
    rest: Counter[str] = Counter()
    for (country, *_), n in ranked[top_cities:]:
        rest[country] += n
    city_rows += [CityCount(country, OTHER, "", "", n) for country, n in sorted(rest.items())]
    ranked_isps = sorted(isps.items(), key=lambda kv: (-kv[1], kv[0]))
    isp_rows = [IspCount(asn or "unknown", isp, n) for (asn, isp), n in ranked_isps[:top_isps]]
    others = sum(n for _, n in ranked_isps[top_isps:])
    if others:
        isp_rows.append(IspCount(OTHER, OTHER, others))
    return dict(countries), tuple(city_rows), tuple(isp_rows)
