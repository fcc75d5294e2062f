"""The netlink ``sock_diag`` wire format for TCP sockets: requests built and answers parsed, as bytes.

What ``ss -ti`` speaks to the kernel (``inet_diag``, linux/inet_diag.h): a dump request names an address
family, the TCP states wanted, the extensions wanted (``INET_DIAG_INFO``: each socket's ``struct
tcp_info``) and optionally a bytecode filter the kernel runs on each socket. The answer is a run of
netlink datagrams, each holding ``inet_diag_msg`` messages (one per socket, followed by attributes), ended
by ``NLMSG_DONE``; an ``NLMSG_ERROR`` message carries the kernel's errno.

Everything here is pure, tested with literal bytes; :mod:`exporter.sources.netlink` does the I/O.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Iterable
from typing import NamedTuple

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
"""nlmsghdr: length, type, flags, sequence, port id"""
NLHDR_SIZE = _NLHDR.size  # 16
_LEN_TYPE = struct.Struct("=IH")
"""The start of an nlmsghdr: all a reader needs to walk the messages"""
_REQ = struct.Struct("=BBBxI48x")
"""inet_diag_req_v2: family, protocol, extensions, states, and an all-zero inet_diag_sockid"""
_ATTR = struct.Struct("=HH")
"""nlattr: length (header included), type"""
ATTR_SIZE = _ATTR.size
_BC_OP = struct.Struct("=BBH")
"""inet_diag_bc_op: code, yes, no"""
_MSG = struct.Struct("=16xBB6x16x16s4x8s12xII")
"""nlmsghdr (16) + inet_diag_msg (72): family, state, peer address, cookie, uid, inode"""
MSG_SIZE = _MSG.size  # 88
_PORTS = struct.Struct("!HH")
"""The local and peer ports of an inet_diag_msg (at 20 from the nlmsghdr), in network byte order"""
_PORTS_AT = 20
_TCP_INFO = struct.Struct("=68xI48xQQ")
TCP_INFO_SIZE = _TCP_INFO.size
"""struct tcp_info: tcpi_rtt at 68 (us), tcpi_bytes_acked at 120, tcpi_bytes_received at 128 (Linux >= 4.1;
an older kernel's shorter tcp_info leaves bytes unknown)"""
_ERRNO = struct.Struct("=i")


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


def range_filter(low: int, high: int) -> bytes:
    """inet_diag bytecode accepting sockets whose local port is in ``low..high`` (see :func:`port_filter`)."""
    return (_BC_OP.pack(INET_DIAG_BC_S_GE, 8, 20) + _BC_OP.pack(0, 0, low)
            + _BC_OP.pack(INET_DIAG_BC_S_LE, 8, 12) + _BC_OP.pack(0, 0, high))


def diag_request(family: int, bytecode: bytes, seq: int = 1) -> bytes:
    """A dump request for established and closing TCP sockets of ``family``, each with its tcp_info."""
    body = _REQ.pack(family, socket.IPPROTO_TCP, 1 << (INET_DIAG_INFO - 1), STATES_MASK)
    if bytecode:
        body += _ATTR.pack(4 + len(bytecode), INET_DIAG_REQ_BYTECODE) + bytecode
    return _NLHDR.pack(16 + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


Buffer = bytes | bytearray | memoryview
"""A datagram as received: ``recv_into`` leaves old bytes after it, so a length always comes with it."""


def socket_messages(data: Buffer, length: int) -> tuple[list[tuple[int, int]], bool]:
    """(offset, length) of each socket message in the first ``length`` bytes of one datagram, and whether
    the dump ended in it (``NLMSG_DONE``).

    Raises OSError with the kernel's errno for an error message, ``EBADMSG`` for a truncated one.
    """
    found: list[tuple[int, int]] = []
    off = 0
    while off + NLHDR_SIZE <= length:
        mlen, mtype = _LEN_TYPE.unpack_from(data, off)
        if mlen < NLHDR_SIZE or off + mlen > length:
            raise OSError(errno.EBADMSG, "truncated netlink message")
        if mtype == NLMSG_DONE:
            return found, True
        if mtype == NLMSG_ERROR:
            code = -_ERRNO.unpack_from(data, off + NLHDR_SIZE)[0]
            if code:
                raise OSError(code, f"sock_diag: {errno.errorcode.get(code, code)}")
        elif mtype == SOCK_DIAG_BY_FAMILY and mlen >= MSG_SIZE:
            found.append((off, mlen))
        off += (mlen + 3) & ~3
    return found, False


def tcp_info(data: Buffer, off: int, mlen: int) -> tuple[int, int, int] | None:
    """(rtt in us, bytes acked, bytes received) from the ``INET_DIAG_INFO`` attribute of the socket
    message at ``off``; None when it has none (TIME-WAIT) or a tcp_info too old to carry bytes."""
    at, end = off + MSG_SIZE, off + mlen
    while at + ATTR_SIZE <= end:
        alen, atype = _ATTR.unpack_from(data, at)
        if alen < ATTR_SIZE or at + alen > end:
            return None
        if atype == INET_DIAG_INFO:
            if alen - ATTR_SIZE < TCP_INFO_SIZE:
                return None
            rtt, acked, received = _TCP_INFO.unpack_from(data, at + ATTR_SIZE)
            return rtt, acked, received
        at += (alen + 3) & ~3
    return None


class RawSocket(NamedTuple):
    """One socket of a viewer dump, as the kernel gave it."""

    cookie: bytes
    """The kernel's id of the socket (8 bytes), the same for its whole life."""
    state: int
    family: int
    local_port: int
    peer_address: bytes
    """16 bytes (an IPv4 address in the first 4); :func:`peer_ip` makes text of it."""
    peer_port: int
    rtt_us: int | None
    """``tcpi_rtt``; None (and so are the bytes) for a socket without tcp_info."""
    bytes_acked: int | None
    """``tcpi_bytes_acked``: bytes sent to the peer and acknowledged by it."""
    bytes_received: int | None


def parse_dump(data: Buffer, length: int, out: list[RawSocket], ports: frozenset[int] | None = None) -> bool:
    """Append the sockets of one datagram to ``out``; True when the dump is complete.

    ``ports`` (local ports) filters here when the kernel's bytecode filter is not used. Raises as
    :func:`socket_messages`.
    """
    found, done = socket_messages(data, length)
    for off, mlen in found:
        local_port, peer_port = _PORTS.unpack_from(data, off + _PORTS_AT)
        if ports is not None and local_port not in ports:
            continue
        family, state, peer, cookie, _, _ = _MSG.unpack_from(data, off)
        rtt, acked, received = tcp_info(data, off, mlen) or (None, None, None)
        out.append(RawSocket(cookie, state, family, local_port, peer, peer_port, rtt, acked, received))
    return done


class OwnedSocket(NamedTuple):
    """A socket with the inode that ties it to a process (``/proc/<pid>/fd`` links ``socket:[inode]``)."""

    cookie: bytes
    inode: int
    """0 once no process holds it (closed, the kernel finishing the connection)."""
    peer: tuple[str, int]
    received_bytes: int | None
    """``tcpi_bytes_received``; None on a kernel without it."""


def parse_owned(data: Buffer, length: int, out: list[OwnedSocket]) -> bool:
    """Append the sockets of one datagram with their inodes; True when the dump is complete."""
    found, done = socket_messages(data, length)
    for off, mlen in found:
        family, _, peer, cookie, _, inode = _MSG.unpack_from(data, off)
        peer_port = _PORTS.unpack_from(data, off + _PORTS_AT)[1]
        info = tcp_info(data, off, mlen)
        out.append(OwnedSocket(cookie, inode, (peer_ip(family, peer), peer_port), None if info is None else info[2]))
    return done


_V4_MAPPED = b"\0" * 10 + b"\xff\xff"


def peer_ip(family: int, address: bytes) -> str:
    """The text of a peer address; a v4-mapped peer of a dual-stack listener as IPv4."""
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, address[:4])
    if address[:12] == _V4_MAPPED:
        return socket.inet_ntop(socket.AF_INET, address[12:16])
    return socket.inet_ntop(socket.AF_INET6, address)
