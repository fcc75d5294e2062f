"""Asking the kernel for a sock_diag dump over a netlink socket: the I/O, apart from the bytes' meaning.

One request per address family on a fresh ``NETLINK_SOCK_DIAG`` socket; every datagram of the answer is
handed to a parser from :mod:`exporter.sources.sockdiag` until it reports the dump's end.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Sequence
from typing import TypeVar

from exporter.sources.sockdiag import (
    NETLINK_SOCK_DIAG,
    OwnedSocket,
    RawSocket,
    diag_request,
    parse_dump,
    parse_owned,
    port_filter,
    range_filter,
)

RECV_BUFFER = 1 << 18
"""Bytes per ``recv``: the kernel fills a datagram up to about 32 KiB, so one buffer always holds one."""
FAMILIES = (socket.AF_INET, socket.AF_INET6)

_T = TypeVar("_T")


class NetlinkUnavailable(OSError):
    """sock_diag cannot be used here (not Linux, a seccomp profile, a kernel without inet_diag)."""


def dump(bytecode: bytes, families: Sequence[int], parse: Callable[[bytearray, int, list[_T]], bool]) -> list[_T]:
    """Send one dump request per family and feed every datagram of the answers to ``parse``.

    IPv6 disabled on the host answers ENOENT or EAFNOSUPPORT for AF_INET6: nothing to dump there.
    """
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
                    continue
                raise
    return out


def dump_viewers(ports: Sequence[int], families: Sequence[int] = FAMILIES, use_bytecode: bool = True
                 ) -> list[RawSocket]:
    """All established and closing TCP sockets whose local port is one of ``ports`` (empty: every port).

    The kernel filters by port (``use_bytecode``) unless it refused the filter; then every socket comes
    back and the parser keeps the viewer ports' ones.
    """
    if not ports:
        return dump(b"", families, parse_dump)
    if use_bytecode:
        return dump(port_filter(ports), families, parse_dump)
    wanted = frozenset(ports)

    def parse_wanted(data: bytearray, length: int, out: list[RawSocket]) -> bool:
        return parse_dump(data, length, out, wanted)

    return dump(b"", families, parse_wanted)


def dump_owned(low: int, high: int, families: Sequence[int] = FAMILIES) -> list[OwnedSocket]:
    """Established and closing TCP sockets whose local port is in ``low..high``, with their inodes."""
    return dump(range_filter(low, high), families, parse_owned)

