"""Viewer connections from the kernel: established TCP sockets on the viewer ports, with bytes and RTT.

Read with netlink ``sock_diag`` (``inet_diag``, what ``ss -ti`` uses), asking for ``INET_DIAG_INFO`` so
each socket comes with its ``tcp_info``: ``bytes_acked`` (sent to and acknowledged by the viewer),
``bytes_received`` and ``rtt``. A bytecode filter makes the kernel return only sockets whose local port is
a viewer port, so a busy host's other sockets cost nothing. IPv4 and IPv6 are dumped; v4-mapped peers of
a dual-stack listener are shown as IPv4.

Without netlink (not Linux, a seccomp profile, a kernel without inet_diag) psutil lists the connections
from /proc: counts and geography still work, bytes and RTT are unknown.

The parts, each in its own module: :mod:`~exporter.sources.sockdiag` (the wire format, pure, tested with
literal bytes), :mod:`~exporter.sources.netlink` (the dump's I/O), :mod:`~exporter.sources.connections`
(per-socket state, byte totals, counts by place). This module chooses the backend and puts them together.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import psutil

from exporter.config import Config
from exporter.geo import Lookup
from exporter.sources import SampleContext
from exporter.sources.connections import (
    CityCount,
    Connection,
    IspCount,
    PsutilTable,
    SocketTable,
    aggregate,
)
from exporter.sources.netlink import NetlinkUnavailable, dump_viewers
from exporter.sources.sockdiag import RawSocket, parse_dump

# Connection and friends are what the result carries; RawSocket and parse_dump are named here too for the
# golden test, which replays a recorded dump through the production parser.
__all__ = [
    "CityCount", "Connection", "IspCount", "RawSocket", "SocketDump", "SocketsResult", "SocketsSource",
    "parse_dump", "read_psutil",
]

log = logging.getLogger(__name__)

SocketDump = Callable[[Sequence[int]], list[RawSocket]]
"""What answers "every TCP socket on these local ports": :func:`~exporter.sources.netlink.dump_viewers`,
or a recording."""

MAX_EXCLUDED_CACHE = 65536
"""Peer addresses whose exclusion is remembered; the cache starts again past this."""


@dataclass(frozen=True, slots=True)
class SocketsResult:
    backend: str
    """``netlink`` or ``psutil``."""
    connections: tuple[Connection, ...]
    sent_bytes_total: Mapping[int, int] | None
    """Per viewer port, monotonic (closed connections included as far as last seen). None without netlink."""
    received_bytes_total: Mapping[int, int] | None
    by_country: Mapping[str, int]
    by_city: tuple[CityCount, ...]
    by_isp: tuple[IspCount, ...]


class SocketsSource:
    """Samples viewer sockets; keeps per-socket state so byte counters survive connections closing."""

    name = "sockets"

    def __init__(self, config: Config, lookup: Lookup, refresh: Callable[[], None] | None = None,
                 dump: SocketDump | None = None) -> None:
        self._ports = sorted(set(config.viewers.ports))
        self._backend = config.viewers.socket_backend
        self._top_cities = config.geo.top_cities
        self._top_isps = config.geo.top_isps
        self._lookup = lookup
        self._refresh = refresh
        self._bytecode = True
        self._sockets = SocketTable(self._ports)
        self._psutil = PsutilTable()
        self._dump_from = dump
        """Replaces the kernel's dump (a recorded one in the golden test); None asks the kernel."""
        self._exclude = list(config.viewers.exclude_peers)
        self._excluded: dict[str, bool] = {}
        """peer ip -> in ``viewers.exclude_peers`` (ffmpeg's progress push to the panel's port is no viewer)"""

    def open(self) -> None:
        """Nothing to open: each round's netlink socket is opened and closed within the round."""

    def close(self) -> None:
        """Nothing held between rounds."""

    def excluded(self, ip: str) -> bool:
        """Whether connections from ``ip`` are left out (not viewers, no bytes, no geo); cached per address."""
        if not self._exclude:
            return False
        hit = self._excluded.get(ip)
        if hit is None:
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                hit = False
            else:
                hit = any(addr in net for net in self._exclude)
            if len(self._excluded) > MAX_EXCLUDED_CACHE:
                self._excluded.clear()
            self._excluded[ip] = hit
        return hit

    def sample(self, ctx: SampleContext) -> SocketsResult:
        if self._refresh is not None:
            self._refresh()
        if self._backend != "psutil":
            try:
                raw = self._dump()
            except NetlinkUnavailable as exc:
                if self._backend == "netlink":
                    raise
                log.warning("netlink sock_diag unavailable, using psutil (no per-connection bytes) error=%s", exc)
                self._backend = "psutil"
            else:
                return self.update(raw, ctx.now)
        return self.update_psutil(read_psutil(self._ports), ctx.now)

    def _dump(self) -> list[RawSocket]:
        if self._dump_from is not None:
            return self._dump_from(self._ports)
        try:
            return dump_viewers(self._ports, use_bytecode=self._bytecode)
        except NetlinkUnavailable:
            raise
        except OSError as exc:
            if self._bytecode and exc.errno == errno.EINVAL:
                log.warning("kernel rejected the sock_diag port filter, filtering in Python error=%s", exc)
                self._bytecode = False
                return dump_viewers(self._ports, use_bytecode=False)
            if exc.errno in (errno.EPROTONOSUPPORT, errno.ENOENT, errno.EPERM, errno.EACCES):
                raise NetlinkUnavailable(exc.errno, str(exc)) from exc
            raise

    def update(self, raw: Iterable[RawSocket], now: float) -> SocketsResult:
        """Fold one dump into the carried state (pure apart from ``self``)."""
        conns = self._sockets.fold(raw, now, self._lookup, self.excluded)
        sent, received = self._sockets.totals()
        countries, cities, isps = aggregate(conns, self._top_cities, self._top_isps)
        return SocketsResult("netlink", tuple(conns), MappingProxyType(sent), MappingProxyType(received),
                             MappingProxyType(countries), cities, isps)

    def update_psutil(self, rows: Iterable[tuple[int, str, int]], now: float) -> SocketsResult:
        """Fold psutil's (local port, peer ip, peer port) rows: connections and geography, no bytes."""
        conns = self._psutil.fold(rows, now, self._lookup, self.excluded)
        countries, cities, isps = aggregate(conns, self._top_cities, self._top_isps)
        return SocketsResult("psutil", tuple(conns), None, None, MappingProxyType(countries), cities, isps)


def read_psutil(ports: Sequence[int]) -> list[tuple[int, str, int]]:
    """Established TCP connections on ``ports`` from /proc via psutil (no tcp_info there)."""
    wanted = set(ports)
    out = []
    for c in psutil.net_connections(kind="tcp"):
        if c.status == psutil.CONN_ESTABLISHED and c.raddr and c.laddr.port in wanted:
            out.append((c.laddr.port, c.raddr.ip, c.raddr.port))
    return out
