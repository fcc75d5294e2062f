"""The sockets source: the bytecode filter and the dump parser on literal bytes, then real loopback sockets."""

from __future__ import annotations

import errno
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import pytest

from exporter.config import parse_config
from exporter.geo import Geo
from exporter.sources import SampleContext
from exporter.sources.connections import Connection, aggregate
from exporter.sources.sockdiag import (
    INET_DIAG_BC_JMP,
    INET_DIAG_BC_S_GE,
    INET_DIAG_BC_S_LE,
    INET_DIAG_INFO,
    NLMSG_DONE,
    NLMSG_ERROR,
    SOCK_DIAG_BY_FAMILY,
    OwnedSocket,
    RawSocket,
    parse_dump,
    parse_owned,
    port_filter,
)
from exporter.sources.sockets import SocketsResult, SocketsSource
from tests.helpers import wait_until
from tests.mmdb import PLACES, write_dbs

# -- the bytecode filter, run the way the kernel runs it (net/ipv4/inet_diag.c) -------------------------


def audit(bc: bytes) -> None:
    """The kernel's checks: ops on the ``yes`` chain, ``no`` targets inside or at the reject point."""
    on_chain, pos = set(), 0
    while pos < len(bc):
        on_chain.add(pos)
        code, yes, no = struct.unpack_from("=BBH", bc, pos)
        min_len = 8 if code in (INET_DIAG_BC_S_GE, INET_DIAG_BC_S_LE) else 4
        remaining = len(bc) - pos
        assert min_len <= yes <= remaining + 4 and yes % 4 == 0, (pos, yes)
        if code != 0:
            assert min_len <= no <= remaining + 4 and no % 4 == 0, (pos, no)
            if no < remaining:
                assert pos + no in on_chain or pos + no > pos, (pos, no)
        pos += yes
    for target in _no_targets(bc):
        assert target in on_chain | {len(bc), len(bc) + 4}, target


def _no_targets(bc: bytes) -> list[int]:
    out, pos = [], 0
    while pos < len(bc):
        code, yes, no = struct.unpack_from("=BBH", bc, pos)
        if code != 0:
            out.append(pos + no)
        pos += yes
    return out


def accepts(bc: bytes, sport: int) -> bool:
    pos, length = 0, len(bc)
    while length > 0:
        code, yes, no = struct.unpack_from("=BBH", bc, pos)
        arg = struct.unpack_from("=BBH", bc, pos + 4)[2] if code in (INET_DIAG_BC_S_GE, INET_DIAG_BC_S_LE) else 0
        ok = {INET_DIAG_BC_JMP: False, INET_DIAG_BC_S_GE: sport >= arg, INET_DIAG_BC_S_LE: sport <= arg}[code]
        step = yes if ok else no
        pos, length = pos + step, length - step
    return length == 0


@pytest.mark.parametrize("ports", [[80], [80, 8080], [25461, 80, 8080], [1, 2, 3, 65535]])
def test_port_filter_accepts_exactly_the_viewer_ports(ports: list[int]) -> None:
    bc = port_filter(ports)
    audit(bc)
    for port in [*ports, 0, 79, 81, 443, 8081, 25460, 25462, 65534]:
        assert accepts(bc, port) == (port in ports), port


# -- the dump parser on literal bytes -------------------------------------------------------------------


def _diag_msg(cookie: int, state: int, family: int, sport: int, dst: bytes, dport: int, attrs: bytes,
              inode: int = 0) -> bytes:
    body = struct.pack("=BBBB", family, state, 0, 0) + struct.pack("!HH", sport, dport)
    body += b"\0" * 16 + dst.ljust(16, b"\0") + struct.pack("=I", 0) + struct.pack("=Q", cookie)
    body += struct.pack("=IIIII", 0, 0, 0, 1000, inode) + attrs
    return struct.pack("=IHHII", 16 + len(body), SOCK_DIAG_BY_FAMILY, 2, 1, 0) + body


def _attr(kind: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def _tcp_info(rtt_us: int, acked: int, received: int, size: int = 232) -> bytes:
    info = bytearray(size)
    struct.pack_into("=I", info, 68, rtt_us)
    struct.pack_into("=QQ", info, 120, acked, received)
    return bytes(info)


def test_parse_dump_reads_peer_bytes_and_rtt() -> None:
    shutdown = _attr(8, b"\0")
    msgs = (
        _diag_msg(1, 1, socket.AF_INET, 8080, socket.inet_aton("203.0.113.17"), 50000,
                  shutdown + _attr(INET_DIAG_INFO, _tcp_info(1500, 123456, 789)))
        + _diag_msg(2, 8, socket.AF_INET6, 8080, socket.inet_pton(socket.AF_INET6, "2001:db8::42"), 50001,
                    shutdown + _attr(INET_DIAG_INFO, _tcp_info(900, 42, 7)))
        + _diag_msg(3, 1, socket.AF_INET, 8080, socket.inet_aton("198.51.100.4"), 50002,
                    _attr(INET_DIAG_INFO, _tcp_info(100, 5, 6)))  # another layout: tcp_info at another offset
        + struct.pack("=IHHII", 20, NLMSG_DONE, 2, 1, 0) + b"\0" * 4
    )
    out: list[RawSocket] = []
    assert parse_dump(msgs, len(msgs), out) is True
    assert [(r.cookie, r.state, r.local_port, r.peer_port, r.rtt_us, r.bytes_acked, r.bytes_received)
            for r in out] == [
        (struct.pack("=Q", 1), 1, 8080, 50000, 1500, 123456, 789),
        (struct.pack("=Q", 2), 8, 8080, 50001, 900, 42, 7),
        (struct.pack("=Q", 3), 1, 8080, 50002, 100, 5, 6),
    ]
    assert socket.inet_ntop(socket.AF_INET6, out[1].peer_address) == "2001:db8::42"
    filtered: list[RawSocket] = []
    parse_dump(msgs, len(msgs), filtered, ports=frozenset({80}))
    assert filtered == []
    kept: list[RawSocket] = []
    parse_dump(msgs, len(msgs), kept, ports=frozenset({8080}))
    assert kept == out


def test_parse_dump_reads_a_whole_datagram_and_nothing_after_it() -> None:
    """One port's dump: 40 sockets then DONE, in a buffer that holds an older datagram's bytes after them."""
    shutdown = _attr(8, b"\0")
    msgs = b"".join(
        _diag_msg(i, 1 if i % 3 else 8, socket.AF_INET, 8080, socket.inet_aton(f"203.0.113.{i}"), 40000 + i,
                  shutdown + _attr(INET_DIAG_INFO, _tcp_info(100 * i, 1000 * i, 10 * i)))
        for i in range(1, 41)
    ) + struct.pack("=IHHII", 20, NLMSG_DONE, 2, 1, 0) + b"\0" * 4
    buffer = bytearray(len(msgs) + 500)  # as recv_into leaves it: old bytes after the datagram
    buffer[: len(msgs)] = msgs
    buffer[len(msgs):] = b"\xff" * 500
    out: list[RawSocket] = []
    assert parse_dump(buffer, len(msgs), out) is True
    assert out == [
        RawSocket(struct.pack("=Q", i), 1 if i % 3 else 8, socket.AF_INET, 8080,
                  socket.inet_aton(f"203.0.113.{i}").ljust(16, b"\0"), 40000 + i, 100 * i, 1000 * i, 10 * i)
        for i in range(1, 41)
    ]


def test_parse_dump_without_tcp_info_and_kernel_errors() -> None:
    msg = _diag_msg(9, 1, socket.AF_INET, 80, socket.inet_aton("192.0.2.1"), 1, _attr(8, b"\0"))
    out: list[RawSocket] = []
    assert parse_dump(msg, len(msg), out) is False  # no DONE yet: the dump goes on in the next datagram
    assert (out[0].rtt_us, out[0].bytes_acked, out[0].bytes_received) == (None, None, None)
    err = struct.pack("=IHHII", 36, NLMSG_ERROR, 0, 1, 0) + struct.pack("=i", -errno.EINVAL) + b"\0" * 16
    with pytest.raises(OSError) as caught:
        parse_dump(err, len(err), [])
    assert caught.value.errno == errno.EINVAL


def test_parse_dump_refuses_a_truncated_message_and_reads_an_old_kernels_tcp_info_as_unknown() -> None:
    short_info = _attr(INET_DIAG_INFO, _tcp_info(100, 0, 0)[:104])  # Linux < 4.1: no byte counters yet
    msg = _diag_msg(4, 1, socket.AF_INET, 80, socket.inet_aton("192.0.2.9"), 9, short_info)
    out: list[RawSocket] = []
    parse_dump(msg, len(msg), out)
    assert (out[0].local_port, out[0].rtt_us, out[0].bytes_acked) == (80, None, None)
    with pytest.raises(OSError) as caught:
        parse_dump(msg, len(msg) - 8, [])  # the datagram ends inside the message its header announces
    assert caught.value.errno == errno.EBADMSG


def test_parse_owned_reads_inode_peer_and_received_bytes() -> None:
    mapped = b"\0" * 10 + b"\xff\xff" + socket.inet_aton("203.0.113.5")
    msgs = (
        _diag_msg(7, 1, socket.AF_INET6, 40001, mapped, 80, _attr(8, b"\0") + _attr(INET_DIAG_INFO,
                  _tcp_info(800, 120, 5_000_000)), inode=4242)
        + _diag_msg(8, 1, socket.AF_INET, 40002, socket.inet_aton("198.51.100.7"), 1935, _attr(8, b"\0"), inode=0)
        + struct.pack("=IHHII", 20, NLMSG_DONE, 2, 1, 0) + b"\0" * 4
    )
    out: list[OwnedSocket] = []
    assert parse_owned(msgs, len(msgs), out) is True
    assert out == [
        OwnedSocket(struct.pack("=Q", 7), 4242, ("203.0.113.5", 80), 5_000_000),  # a v4-mapped peer, as IPv4
        OwnedSocket(struct.pack("=Q", 8), 0, ("198.51.100.7", 1935), None),  # closing, no tcp_info
    ]


def test_aggregate_top_cities_and_isps_with_the_rest_as_other() -> None:
    from exporter.geo import GeoInfo

    places = [GeoInfo("NL", "Amsterdam", 52.37, 4.89, 1136, "KPN")] * 3 + [
        GeoInfo("NL", "Utrecht", 52.09, 5.12, 1136, "KPN"), GeoInfo("DE", "Berlin", 52.52, 13.4, 3320, "DTAG"),
        GeoInfo("DE", "Hamburg", 53.55, 9.99, 3209, "Vodafone"),
    ]
    conns = [Connection(80, f"192.0.2.{i}", 1000 + i, 0.0, 0, 0, None, g) for i, g in enumerate(places)]
    countries, cities, isps = aggregate(conns, top_cities=2, top_isps=1)
    assert countries == {"NL": 4, "DE": 2}
    assert [(c.country, c.city, c.latitude, c.connections) for c in cities] == [
        ("NL", "Amsterdam", "52.37", 3), ("DE", "Berlin", "52.52", 1), ("DE", "other", "", 1), ("NL", "other", "", 1),
    ]
    assert [(i.asn, i.isp, i.connections) for i in isps] == [("1136", "KPN", 4), ("other", "other", 2)]


# -- real sockets on loopback ---------------------------------------------------------------------------


@pytest.fixture
def geo(tmp_path: Path) -> Iterator[Geo]:
    city, asn = write_dbs(tmp_path / "geoip", {"127.1.0.0/16": PLACES["amsterdam"], "127.2.0.0/16": PLACES["berlin"]})
    g = Geo(parse_config({"geo": {"city_db": str(city), "asn_db": str(asn)}}).geo)
    yield g
    g.close()


class Pairs:
    """Established loopback connections: client ends bound to chosen source addresses, server ends kept."""

    def __init__(self, family: int = socket.AF_INET, host: str = "127.0.0.1") -> None:
        self.family = family
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.bind((host, 0))
        self.listener.listen(16)
        self.host, self.port = host, self.listener.getsockname()[1]
        self.pairs: list[tuple[socket.socket, socket.socket]] = []

    def connect(self, source: str | None = None) -> tuple[socket.socket, socket.socket]:
        c = socket.socket(self.family, socket.SOCK_STREAM)
        if source:
            c.bind((source, 0))
        c.connect((self.host, self.port))
        s, _ = self.listener.accept()
        self.pairs.append((c, s))
        return c, s

    def close(self) -> None:
        for c, s in self.pairs:
            c.close()
            s.close()
        self.listener.close()


@pytest.fixture
def pairs() -> Iterator[list[Pairs]]:
    made: list[Pairs] = []
    yield made
    for p in made:
        p.close()


def _ctx() -> SampleContext:
    return SampleContext(time.time(), MappingProxyType({}))


def _drain(c: socket.socket, n: int) -> None:
    got = 0
    while got < n:
        got += len(c.recv(65536))


def test_real_sockets_counted_by_place_with_bytes(geo: Geo, pairs: list[Pairs]) -> None:
    viewers, other = Pairs(), Pairs()
    v6 = Pairs(socket.AF_INET6, "::1")
    pairs += [viewers, other, v6]
    sent = {"127.1.0.10": 1000, "127.1.0.11": 2000, "127.2.0.20": 30000}
    for address, n in sent.items():
        c, s = viewers.connect(address)
        s.sendall(b"x" * n)
        _drain(c, n)
        c.sendall(b"GET / HTTP/1.1\r\n\r\n")
    other.connect("127.1.0.12")
    c6, s6 = v6.connect()
    s6.sendall(b"y" * 77)
    _drain(c6, 77)
    config = parse_config({"viewers": {"ports": [viewers.port, v6.port], "access_log": None}})
    source = SocketsSource(config, geo.lookup, geo.refresh)

    def sampled() -> SocketsResult | None:
        r = source.sample(_ctx())
        return r if r.sent_bytes_total and r.sent_bytes_total.get(viewers.port) == sum(sent.values()) else None

    result = wait_until(sampled, timeout=10, what="bytes_acked of the viewer sockets")
    assert result.backend == "netlink"
    assert sorted((c.peer_ip, c.sent_bytes) for c in result.connections) == sorted(
        [*sent.items(), ("::1", 77)]
    )
    assert all(c.local_port in (viewers.port, v6.port) for c in result.connections)  # not the other port's
    assert result.received_bytes_total is not None
    assert result.received_bytes_total[viewers.port] == 3 * len(b"GET / HTTP/1.1\r\n\r\n")
    assert all(c.rtt_seconds is not None and c.rtt_seconds < 1 for c in result.connections)
    assert dict(result.by_country) == {"NL": 2, "DE": 1, "unknown": 1}
    assert {(c.country, c.city, c.latitude, c.connections) for c in result.by_city} >= {
        ("NL", "Amsterdam", "52.37", 2), ("DE", "Berlin", "52.52", 1)}
    assert {(i.asn, i.isp, i.connections) for i in result.by_isp} >= {("1136", "KPN B.V.", 2)}


def test_closed_connections_keep_their_bytes(geo: Geo, pairs: list[Pairs]) -> None:
    viewers = Pairs()
    pairs.append(viewers)
    c1, s1 = viewers.connect("127.1.0.10")
    c2, s2 = viewers.connect("127.2.0.20")
    s1.sendall(b"a" * 5000)
    s2.sendall(b"b" * 7000)
    _drain(c1, 5000)
    _drain(c2, 7000)
    config = parse_config({"viewers": {"ports": [viewers.port], "access_log": None}})
    source = SocketsSource(config, geo.lookup)
    wait_until(lambda: source.sample(_ctx()).sent_bytes_total == {viewers.port: 12000}, timeout=10,
               what="both connections' bytes")
    first = source.sample(_ctx())
    since = {c.peer_ip: c.since for c in first.connections}
    viewers.pairs.remove((c1, s1))
    s1.close()
    c1.close()

    def one_left() -> SocketsResult | None:
        r = source.sample(_ctx())
        return r if [c.peer_ip for c in r.connections] == ["127.2.0.20"] else None

    after = wait_until(one_left, timeout=10, what="the closed connection to leave the dump")
    assert after.sent_bytes_total == {viewers.port: 12000}  # monotonic: the closed one's bytes stay counted
    assert after.connections[0].since == since["127.2.0.20"]  # first seen, not re-stamped every round
    s2.sendall(b"c" * 500)
    _drain(c2, 500)
    wait_until(lambda: source.sample(_ctx()).sent_bytes_total == {viewers.port: 12500}, timeout=10,
               what="the live connection's new bytes")


def test_psutil_fallback_counts_connections_without_bytes(geo: Geo, pairs: list[Pairs]) -> None:
    viewers = Pairs()
    pairs.append(viewers)
    viewers.connect("127.1.0.10")
    viewers.connect("127.2.0.20")
    config = parse_config({"viewers": {"ports": [viewers.port], "access_log": None, "socket_backend": "psutil"}})
    result = SocketsSource(config, geo.lookup).sample(_ctx())
    assert result.backend == "psutil"
    assert sorted(c.peer_ip for c in result.connections) == ["127.1.0.10", "127.2.0.20"]
    assert result.sent_bytes_total is None and all(c.sent_bytes is None for c in result.connections)
    assert dict(result.by_country) == {"NL": 1, "DE": 1}


def test_progress_push_from_loopback_is_not_a_viewer(geo: Geo, pairs: list[Pairs]) -> None:
    """XUI.one's ffmpeg pushes its progress to the panel's own port (the viewer port) from 127.0.0.1: with the
    xui profile's exclude_peers that connection is no viewer; a viewer on another address still is."""
    port = Pairs()
    pairs.append(port)
    push_c, push_s = port.connect("127.0.0.1")
    push_c.sendall(b"POST /progress?stream_id=7 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
    viewer_c, viewer_s = port.connect("127.1.0.10")
    viewer_s.sendall(b"x" * 500)
    _drain(viewer_c, 500)
    plain = SocketsSource(parse_config({"viewers": {"ports": [port.port], "access_log": None}}), geo.lookup)
    assert sorted(c.peer_ip for c in plain.sample(_ctx()).connections) == ["127.0.0.1", "127.1.0.10"]
    config = parse_config({"profile": "xui", "viewers": {"ports": [port.port]}})
    assert [str(n) for n in config.viewers.exclude_peers] == ["127.0.0.1/32", "::1/128"]
    source = SocketsSource(config, geo.lookup)

    def sampled() -> SocketsResult | None:
        r = source.sample(_ctx())
        return r if r.sent_bytes_total and r.sent_bytes_total.get(port.port) == 500 else None

    result = wait_until(sampled, timeout=10, what="the viewer's bytes")
    assert [c.peer_ip for c in result.connections] == ["127.1.0.10"]
    assert result.received_bytes_total == {port.port: 0}  # the push's body is not viewer traffic
    assert dict(result.by_country) == {"NL": 1}
