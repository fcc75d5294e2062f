"""Viewer connections from the kernel: established TCP sockets on the viewer ports, with bytes and RTT.

Read with netlink ``sock_diag`` (``inet_diag``, what ``ss -ti`` uses), asking for ``INET_DIAG_INFO`` so
each socket comes with its ``tcp_info``: ``bytes_acked`` (sent to and acknowledged by the viewer),
``bytes_received`` and ``rtt``. A bytecode filter makes the kernel return only sockets whose local port is
a viewer port, so a busy host's other sockets cost nothing. IPv4 and IPv6 are dumped; v4-mapped peers of
a dual-stack listener are shown as IPv4.

Byte counters per port stay monotonic while connections come and go: each socket's last seen
``tcp_info`` is kept (by its kernel cookie) and folded into a per-port total when the socket is gone.
The bound: bytes a socket sent after the last sample that saw it, up to one ``sample_interval`` of its
traffic, are not counted. Sockets that are closing (FIN-WAIT, CLOSE-WAIT, LAST-ACK, CLOSING) are still
dumped, so a connection's tail is usually seen; only TIME-WAIT has no ``tcp_info`` left.

Without netlink (not Linux, a seccomp profile, a kernel without inet_diag) psutil lists the connections
from /proc: counts and geography still work, bytes and RTT are unknown.

Reading (:func:`dump_netlink`) is apart from the pure parts (:func:`parse_dump`, :func:`port_filter`,
:func:`aggregate`), which are tested with literal bytes.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from types import MappingProxyType
from typing import NamedTuple, TypeVar

import psutil

from exporter.config import Config
from exporter.geo import GeoInfo, Lookup
from exporter.sources import SampleContext

log = logging.getLogger(__name__)

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
INET_DIAG_REQ_BYTECODE = 1
INET_DIAG_INFO = 2
INET_DIAG_BC_JMP = 1
INET_DIAG_BC_S_GE = 2
INET_DIAG_BC_S_LE = 3

TCP_ESTABLISHED = 1
CLOSING_STATES = (4, 5, 8, 9, 11)  # FIN_WAIT1, FIN_WAIT2, CLOSE_WAIT, LAST_ACK, CLOSING
STATES_MASK = (1 << TCP_ESTABLISHED) | sum(1 << s for s in CLOSING_STATES)

_NLHDR = struct.Struct("=IHHII")
_REQ = struct.Struct("=BBBxI48x")  # inet_diag_req_v2 with an all-zero inet_diag_sockid
_ATTR = struct.Struct("=HH")
_BC_OP = struct.Struct("=BBH")
# nlmsghdr (16) + inet_diag_msg (72): len, type, family, state, sport, dport, dst, cookie
_MSG = struct.Struct("=IH10xBB2x2s2s16x16s4x8s20x")
MSG_SIZE = _MSG.size  # 88
# nlattr header + struct tcp_info: tcpi_rtt at 68 (us), tcpi_bytes_acked at 120, tcpi_bytes_received at 128
# (Linux >= 4.1; an older kernel's shorter tcp_info leaves bytes unknown)
_INFO = struct.Struct("=HH68xI48xQQ")
_ERRNO = struct.Struct("=i")
RECV_BUFFER = 1 << 18
_T = TypeVar("_T")


class NetlinkUnavailable(OSError):
    """sock_diag cannot be used here; the source falls back to psutil."""


def port_filter(ports: Iterable[int]) -> bytes:
    """inet_diag bytecode accepting sockets whose local port is one of ``ports``.

    Per port: ``S_GE port`` then ``S_LE port`` (both present since Linux 2.6; ``S_EQ`` needs 4.16),
    joined by ``JMP`` to the accepting end, as ``ss`` compiles ``sport = :a or sport = :b``. An op jumps
    ``yes`` bytes when its condition holds, ``no`` bytes when not; landing exactly on the end accepts,
    landing 4 bytes past it rejects. Every op's ``yes`` leads to the next op, which the kernel's verifier
    requires, and each failing comparison lands on the next port's block (or the reject point).
    """
    out = b""
    wanted = sorted(set(ports))
    for i, port in enumerate(wanted):
        out += _BC_OP.pack(INET_DIAG_BC_S_GE, 8, 20) + _BC_OP.pack(0, 0, port)
        out += _BC_OP.pack(INET_DIAG_BC_S_LE, 8, 12) + _BC_OP.pack(0, 0, port)
        if i < len(wanted) - 1:
            to_end = 20 * (len(wanted) - 1 - i)  # from this JMP over the later blocks to the accepting end
            out += _BC_OP.pack(INET_DIAG_BC_JMP, 4, to_end)
    return out


def diag_request(family: int, bytecode: bytes, seq: int = 1) -> bytes:
    body = _REQ.pack(family, socket.IPPROTO_TCP, 1 << (INET_DIAG_INFO - 1), STATES_MASK)
    if bytecode:
        body += _ATTR.pack(4 + len(bytecode), INET_DIAG_REQ_BYTECODE) + bytecode
    return _NLHDR.pack(16 + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


RawSocket = tuple[bytes, int, int, bytes, bytes, bytes, "int | None", "int | None", "int | None"]
"""One socket of a dump: (cookie, state, family, local port, peer address, peer port, rtt us, bytes acked,
bytes received), addresses still raw (converted only for sockets not seen before). A plain tuple: a
NamedTuple's constructor costs a Python call per socket, 10k times a round."""

SocketDump = Callable[[Sequence[int]], list[RawSocket]]
"""What answers "every TCP socket on these local ports": :func:`dump_netlink`, or a recording."""


def _end_or_error(data: bytes | bytearray | memoryview, off: int, mtype: int) -> bool:
    """A message of a dump that is not a socket: True at the dump's end; the kernel's error raised as OSError."""
    if mtype == NLMSG_DONE:
        return True
    if mtype == NLMSG_ERROR:
        code = -_ERRNO.unpack_from(data, off + 16)[0]
        if code:
            raise OSError(code, f"sock_diag: {errno.errorcode.get(code, code)}")
    return False


def parse_dump(data: bytes | bytearray | memoryview, length: int, out: list[RawSocket],
               ports: frozenset[bytes] | None = None) -> bool:
    """Append the sockets of one netlink datagram to ``out``; True when the dump is complete.

    ``ports`` (local ports, network byte order) filters in Python when the kernel filter is not used.
    Raises OSError with the kernel's errno for an error message. Written for speed: one ``unpack_from``
    for the headers and one for ``tcp_info`` per socket, at the attribute offset the previous socket had
    (every socket of a dump has the same attributes before ``INET_DIAG_INFO``), walking the attributes only
    when that guess is wrong.
    """
    off = _parse_uniform(data, length, out) if ports is None else 0
    size = len(data)
    unpack_msg, unpack_info = _MSG.unpack_from, _INFO.unpack_from
    append = out.append
    info_at = 0  # offset of INET_DIAG_INFO within the previous socket's message
    info_len = 0
    while off + 16 <= length:
        if off + MSG_SIZE <= size:
            mlen, mtype, family, state, sport, dport, dst, cookie = unpack_msg(data, off)
        else:
            mlen, mtype = _NLHDR.unpack_from(data, off)[:2]
        if mlen < 16 or off + mlen > length:
            raise OSError(errno.EBADMSG, "truncated netlink message")
        if mtype != SOCK_DIAG_BY_FAMILY or mlen < MSG_SIZE:
            if _end_or_error(data, off, mtype):
                return True
            off += (mlen + 3) & ~3
            continue
        if ports is not None and sport not in ports:
            off += (mlen + 3) & ~3
            continue
        rtt = acked = received = None
        found = False
        if info_at and info_at + info_len <= mlen:
            alen, atype, rtt, acked, received = unpack_info(data, off + info_at)
            found = atype == INET_DIAG_INFO and alen == info_len
            if not found:
                rtt = acked = received = None
        if not found:
            a, end = off + MSG_SIZE, off + mlen
            while a + 4 <= end:
                alen, atype = _ATTR.unpack_from(data, a)
                if alen < 4:
                    break
                if atype == INET_DIAG_INFO:
                    if alen >= _INFO.size and a + alen <= end:
                        _, _, rtt, acked, received = unpack_info(data, a)
                        info_at, info_len = a - off, alen
                    break
                a += (alen + 3) & ~3
        append((cookie, state, family, sport, dst, dport, rtt, acked, received))
        off += (mlen + 3) & ~3
    return False


_UNIFORM: dict[tuple[int, int], struct.Struct] = {}
"""(message length, INET_DIAG_INFO offset) -> a Struct for a whole message of that layout"""
_AS_RAW = itemgetter(7, 3, 2, 4, 6, 5, 10, 11, 12)
"""A uniform message's fields in RawSocket order."""
_CHECKED = itemgetter(0, 1, 8, 9)
"""Message length and type, attribute length and type: the same for every message of a uniform run."""


def _parse_uniform(data: bytes | bytearray | memoryview, length: int, out: list[RawSocket]) -> int:
    """Append the sockets of a datagram whose messages all look like its first one; return the bytes used.

    A dump of one port's sockets is such a run (every socket has the same attributes, so the same length
    and ``tcp_info`` offset): one ``Struct.iter_unpack`` over it, checked and reordered with ``map`` (the
    loop runs in C, about half :func:`parse_dump`'s own time per socket). Whatever does not fit (the
    end of a dump, an odd message) is left to :func:`parse_dump`'s loop; 0 when the first message is odd.
    """
    if length < MSG_SIZE:
        return 0
    mlen, mtype = _NLHDR.unpack_from(data, 0)[:2]
    if mtype != SOCK_DIAG_BY_FAMILY or mlen < MSG_SIZE or mlen % 4 or mlen > length:
        return 0
    a = MSG_SIZE
    while a + 4 <= mlen:  # where INET_DIAG_INFO is in this message
        alen, atype = _ATTR.unpack_from(data, a)
        if alen < 4 or atype == INET_DIAG_INFO:
            break
        a += (alen + 3) & ~3
    else:
        return 0
    if atype != INET_DIAG_INFO or alen < _INFO.size or a + alen > mlen:
        return 0
    layout = _UNIFORM.get((mlen, a))
    if layout is None:
        layout = _UNIFORM[(mlen, a)] = struct.Struct(
            _MSG.format + f"{a - MSG_SIZE}x" + _INFO.format.removeprefix("=") + f"{mlen - a - _INFO.size}x"
        )
    count = length // mlen
    rows = list(layout.iter_unpack(memoryview(data)[: count * mlen]))
    if set(map(_CHECKED, rows)) != {(mlen, SOCK_DIAG_BY_FAMILY, alen, INET_DIAG_INFO)}:
        return 0  # not uniform after all: the message-by-message loop takes it all
    out.extend(map(_AS_RAW, rows))
    used: int = count * mlen
    return used


def dump_netlink(ports: Sequence[int], families: Sequence[int] = (socket.AF_INET, socket.AF_INET6),
                 use_bytecode: bool = True) -> list[RawSocket]:
    """All established and closing TCP sockets on ``ports`` (empty: every port), both families."""
    bytecode = port_filter(ports) if ports and use_bytecode else b""
    py_filter = frozenset(struct.pack("!H", p) for p in ports) if ports and not bytecode else None

    def parse(buf: bytearray, n: int, out: list[RawSocket]) -> bool:
        return parse_dump(buf, n, out, py_filter)

    return _dump(bytecode, families, parse)


def _dump(bytecode: bytes, families: Sequence[int], parse: Callable[[bytearray, int, list[_T]], bool]) -> list[_T]:
    """Send one sock_diag dump request per family and feed every datagram of the answers to ``parse``."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    except (OSError, AttributeError) as exc:
        raise NetlinkUnavailable(getattr(exc, "errno", None) or errno.EAFNOSUPPORT, f"no netlink: {exc}") from exc
    out: list[_T] = []
    buf = bytearray(RECV_BUFFER)
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind((0, 0))
        for seq, family in enumerate(families, start=1):
            sock.send(diag_request(family, bytecode, seq))
            try:
                while True:
                    n = sock.recv_into(buf)
                    if n == 0 or parse(buf, n, out):
                        break
            except OSError as exc:
                if family == socket.AF_INET6 and exc.errno in (errno.ENOENT, errno.EAFNOSUPPORT):
                    continue  # IPv6 disabled on this host: nothing to dump
                raise
    return out


def range_filter(low: int, high: int) -> bytes:
    """inet_diag bytecode accepting sockets whose local port is in ``low..high`` (see :func:`port_filter`)."""
    return (_BC_OP.pack(INET_DIAG_BC_S_GE, 8, 20) + _BC_OP.pack(0, 0, low)
            + _BC_OP.pack(INET_DIAG_BC_S_LE, 8, 12) + _BC_OP.pack(0, 0, high))


class OwnedSocket(NamedTuple):
    """A socket with the inode that ties it to a process (``/proc/<pid>/fd`` links ``socket:[inode]``)."""

    cookie: bytes
    inode: int
    """0 once no process holds it (closed, the kernel finishing the connection)."""
    peer: tuple[str, int]
    received_bytes: int | None
    """``tcpi_bytes_received``; None on a kernel without it."""


# The same header as _MSG, with idiag_uid and idiag_inode (the last two fields of inet_diag_msg)
_OWNED = struct.Struct("=IH10xBB2x2s2s16x16s4x8s12xII")


def parse_owned(data: bytes | bytearray | memoryview, length: int, out: list[OwnedSocket]) -> bool:
    """Append the sockets of one netlink datagram with their inodes; True when the dump is complete.

    A plain loop (the ingest meter dumps the host's outgoing connections, a few per stream process, not
    tens of thousands of viewers); errors as :func:`parse_dump`.
    """
    off = 0
    while off + 16 <= length:
        mlen, mtype = _NLHDR.unpack_from(data, off)[:2]
        if mlen < 16 or off + mlen > length:
            raise OSError(errno.EBADMSG, "truncated netlink message")
        if mtype != SOCK_DIAG_BY_FAMILY or mlen < MSG_SIZE:
            if _end_or_error(data, off, mtype):
                return True
            off += (mlen + 3) & ~3
            continue
        _, _, family, _, _, dport, dst, cookie, _, inode = _OWNED.unpack_from(data, off)
        received = None
        a, end = off + MSG_SIZE, off + mlen
        while a + 4 <= end:
            alen, atype = _ATTR.unpack_from(data, a)
            if alen < 4:
                break
            if atype == INET_DIAG_INFO:
                if alen >= _INFO.size and a + alen <= end:
                    received = _INFO.unpack_from(data, a)[4]
                break
            a += (alen + 3) & ~3
        out.append(OwnedSocket(cookie, inode, (_peer_ip(family, dst), int.from_bytes(dport, "big")), received))
        off += (mlen + 3) & ~3
    return False


def dump_owned(low: int, high: int, families: Sequence[int] = (socket.AF_INET, socket.AF_INET6)
               ) -> list[OwnedSocket]:
    """Established and closing TCP sockets whose local port is in ``low..high``, with their inodes."""
    return _dump(range_filter(low, high), families, parse_owned)


def _peer_ip(family: int, dst: bytes) -> str:
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, dst[:4])
    if dst[:12] == b"\0" * 10 + b"\xff\xff":
        return socket.inet_ntop(socket.AF_INET, dst[12:16])  # v4-mapped peer of a dual-stack listener
    return socket.inet_ntop(socket.AF_INET6, dst)


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


OTHER = "other"


def _coord(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def aggregate(conns: Sequence[Connection], top_cities: int, top_isps: int
              ) -> tuple[dict[str, int], tuple[CityCount, ...], tuple[IspCount, ...]]:
    """Counts by country, by city (top N; the rest summed per country as city ``other``) and by ISP (top N).

    Connections are first counted per GeoInfo object in C (geo answers are interned and hash by identity,
    so 10k connections from a few hundred places cost a few hundred Python steps, not 10k).
    """
    countries: Counter[str] = Counter()
    cities: Counter[tuple[str, str, str, str]] = Counter()
    isps: Counter[tuple[str, str]] = Counter()
    for g, n in Counter(map(_GEO, conns)).items():
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


_tuple_new = tuple.__new__
_SENT = itemgetter(4)
_GEO = itemgetter(7)
_RECEIVED = itemgetter(5)


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
        self._state: dict[bytes, Connection] = {}
        """cookie -> the socket as last seen (established or closing)"""
        self._closed_sent: dict[int, int] = dict.fromkeys(self._ports, 0)
        self._closed_received: dict[int, int] = dict.fromkeys(self._ports, 0)
        self._psutil_since: dict[tuple[str, int, str, int], float] = {}
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
            if len(self._excluded) > 65536:
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
            return dump_netlink(self._ports, use_bytecode=self._bytecode)
        except NetlinkUnavailable:
            raise
        except OSError as exc:
            if self._bytecode and exc.errno == errno.EINVAL:
                log.warning("kernel rejected the sock_diag port filter, filtering in Python error=%s", exc)
                self._bytecode = False
                return dump_netlink(self._ports, use_bytecode=False)
            if exc.errno in (errno.EPROTONOSUPPORT, errno.ENOENT, errno.EPERM, errno.EACCES):
                raise NetlinkUnavailable(exc.errno, str(exc)) from exc
            raise

    def update(self, raw: Iterable[RawSocket], now: float) -> SocketsResult:
        """Fold one dump into the carried state (pure apart from ``self``).

        A socket whose counters did not move keeps its Connection object from the last round, so a
        steady round allocates almost nothing.
        """
        old: dict[bytes, Connection] = self._state
        new: dict[bytes, Connection] = {}
        lookup, make = self._lookup, _tuple_new
        conns: list[Connection] = []
        append = conns.append
        for cookie, state, family, sport, dst, dport, rtt, acked, received in raw:
            c = old.pop(cookie, None)
            if c is None:
                ip = _peer_ip(family, dst)
                if self._exclude and self.excluded(ip):
                    continue
                c = make(Connection, (int.from_bytes(sport, "big"), ip, int.from_bytes(dport, "big"), now,
                                      acked or 0, received or 0, None if rtt is None else rtt / 1e6, lookup(ip)))
            elif acked is not None and (acked != c[4] or received != c[5]):
                c = make(Connection, (c[0], c[1], c[2], c[3], acked, received, rtt / 1e6, c[7]))  # type: ignore[operator]
            new[cookie] = c
            if state == TCP_ESTABLISHED:
                append(c)
        for c in old.values():  # gone since the last round: keep what it had sent as far as we saw it
            self._closed_sent[c[0]] = self._closed_sent.get(c[0], 0) + (c[4] or 0)
            self._closed_received[c[0]] = self._closed_received.get(c[0], 0) + (c[5] or 0)
        self._state = new
        sent, received_total = dict(self._closed_sent), dict(self._closed_received)
        if len(self._ports) == 1 and set(sent) <= {self._ports[0]}:
            port = self._ports[0]  # the usual host: one viewer port, summed in C
            sent[port] = sent.get(port, 0) + sum(map(_SENT, new.values()))
            received_total[port] = received_total.get(port, 0) + sum(map(_RECEIVED, new.values()))
        else:
            for c in new.values():
                sent[c[0]] = sent.get(c[0], 0) + (c[4] or 0)
                received_total[c[0]] = received_total.get(c[0], 0) + (c[5] or 0)
        countries, cities, isps = aggregate(conns, self._top_cities, self._top_isps)
        return SocketsResult("netlink", tuple(conns), MappingProxyType(sent), MappingProxyType(received_total),
                             MappingProxyType(countries), cities, isps)

    def update_psutil(self, rows: Iterable[tuple[int, str, int]], now: float) -> SocketsResult:
        """Fold psutil's (local port, peer ip, peer port) rows: connections and geography, no bytes."""
        since = self._psutil_since
        seen: dict[tuple[str, int, str, int], float] = {}
        conns = []
        for port, ip, peer_port in rows:
            if ip.startswith("::ffff:") and "." in ip:
                ip = ip[7:]
            if self._exclude and self.excluded(ip):
                continue
            key = ("", port, ip, peer_port)
            seen[key] = since.get(key, now)
            conns.append(Connection(port, ip, peer_port, seen[key], None, None, None, self._lookup(ip)))
        self._psutil_since = seen
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
