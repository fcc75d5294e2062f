"""What a stream takes in over the network, from the kernel's counters of its processes' own sockets.

ffmpeg reads network inputs with ``recv()``, which ``/proc/<pid>/io`` ``rchar`` does not count (only
``read()``-family calls on files do): a live HTTP input showed a constant. The kernel counts every TCP
socket's received bytes (``tcp_info.tcpi_bytes_received``, what ``ss -ti`` shows); sock_diag dumps them
with each socket's inode, and ``/proc/<pid>/fd`` links name the inodes a process holds. So a stream's
ingest is the bytes received on the sockets its processes hold, less the ones that carry what it
*sends* (its ``-progress`` push to the panel, its outputs such as an RTMP push): those peers are left out
unless an input talks to the same peer.

Counted per socket (by its kernel cookie, which a socket keeps after its process closes it): a socket
that closes is folded into the stream's total as far as the last round saw it, so the total stays
monotonic across reconnects and process restarts. Bounds: bytes received after the last round that saw a
connection are not counted, and a connection that opens and closes between two rounds is not seen at
all. Only outgoing connections (local port in ``ip_local_port_range``) are dumped, so a host's viewer
connections cost nothing here. UDP inputs (``udp://``, multicast, SRT) have no such counters: they are not
measured (docs/inventory.md).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from exporter.sources.netlink import NetlinkUnavailable, dump_owned
from exporter.sources.sockdiag import OwnedSocket

log = logging.getLogger(__name__)

ANY_HOST = "*"
"""A peer given by name (not resolved in the sampler): matched on its port alone."""


@dataclass(frozen=True, slots=True)
class Holder:
    """One stream process's sockets, and the peers that carry its outputs rather than its input."""

    stream: str
    inodes: frozenset[int]
    not_input: frozenset[tuple[str, int]]


def read_port_range(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> tuple[int, int]:
    """The ephemeral port range outgoing connections use (Linux default 32768-60999)."""
    try:
        with open(path, encoding="ascii") as f:
            low, high = f.read().split()
        return int(low), int(high)
    except (OSError, ValueError) as exc:
        log.warning("cannot read the local port range, taking 1024-65535 path=%s error=%s", path, exc)
        return 1024, 65535


def peer_key(host: str, port: int) -> tuple[str, int]:
    """(ip, port) for an IP literal, (``*``, port) for a name: the form sockets are compared in."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return ANY_HOST, port
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip), port


def excluded(peer: tuple[str, int], not_input: frozenset[tuple[str, int]]) -> bool:
    return peer in not_input or (ANY_HOST, peer[1]) in not_input


class IngestMeter:
    """Per-stream received bytes over the processes' own TCP sockets, monotonic (:meth:`measure`)."""

    def __init__(self, dump: Callable[[int, int], list[OwnedSocket]] = dump_owned,
                 port_range: tuple[int, int] | None = None) -> None:
        self._dump = dump
        self._range = port_range or read_port_range()
        self._live: dict[bytes, tuple[str, int]] = {}
        """cookie -> (stream, bytes received as last seen) of sockets counted for a stream"""
        self._closed: dict[str, int] = {}
        self.available = True
        """False once sock_diag proved unusable here: network ingest is then unknown."""

    def measure(self, holders: Iterable[Holder]) -> Mapping[str, int] | None:
        """Bytes received so far per stream (streams never seen holding a socket are absent); None when
        sock_diag is not available (logged once)."""
        by_inode: dict[int, Holder] = {}
        for holder in holders:
            for inode in holder.inodes:
                by_inode[inode] = holder
        if not self.available:
            return None
        try:
            sockets = self._dump(*self._range)
        except NetlinkUnavailable as exc:
            log.warning("sock_diag unavailable: network ingest of streams is not measured error=%s", exc)
            self.available = False
            return None
        return self.update(sockets, by_inode)

    def update(self, sockets: Iterable[OwnedSocket], by_inode: Mapping[int, Holder]) -> Mapping[str, int]:
        """Fold one dump into the totals (pure apart from ``self``); tested with literal sockets."""
        old, new = self._live, {}
        for s in sockets:
            known = old.pop(s.cookie, None)
            if known is not None:
                stream = known[0]  # still ours after the process closed it (inode 0 while it closes)
            else:
                holder = by_inode.get(s.inode) if s.inode else None
                if holder is None or excluded(peer_key(*s.peer), holder.not_input):
                    continue
                stream = holder.stream
            new[s.cookie] = (stream, s.received_bytes if s.received_bytes is not None else (known or ("", 0))[1])
        for stream, received in old.values():  # closed since the last round: keep what it had received
            self._closed[stream] = self._closed.get(stream, 0) + received
        self._live = new
        totals = dict(self._closed)
        for stream, received in new.values():
            totals[stream] = totals.get(stream, 0) + received
        return totals

    def forget(self, stream: str) -> None:
        """Drop a stream that left the inventory."""
        self._closed.pop(stream, None)
        self._live = {c: v for c, v in self._live.items() if v[0] != stream}
