"""Established TCP connections on loopback: a listener on a viewer port here, both ends held by children.

Each child (``python -m bench.connfarm LISTEN_FD HOST PORT SOURCES``) is a shard: told on its stdin how
many connections to add, it connects each from one of several 127.x source addresses (a port is unique
per address, so 50k connections need only 500 ports each), accepts it from the listener it inherited and
sends it a little data (so ``tcp_info`` has bytes).

The listener and the client ends take ports below the ephemeral range, as on a host: its viewer port is
80 or 8080, and the viewers' ends are not on it at all. The processes source dumps the host's connections
with an ephemeral local port (its streams' outgoing inputs), and 10k loopback connections in that range
tripled its cost at 500 streams (a benchmark artefact, not a host's cost).

Both ends of a connection live in the same shard, and a shard takes only as many as its RLIMIT_NOFILE
allows: where the hard limit cannot be raised (no CAP_SYS_RESOURCE in a container) more shards hold
more connections. Shards grow one at a time, so each accepts the connections it made. On exit a shard
resets its client ends, so no TIME-WAIT is left behind to slow later dumps.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import struct
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

from bench.measure import raise_nofile

IP_BIND_ADDRESS_NO_PORT = 24  # linux/in.h: pick the port at connect(), per 4-tuple
PAYLOAD = b"x" * 1024
SPARE_FDS = 256
"""Descriptors a shard keeps for itself (Python, its pipes, the inherited listener)."""


def source_addresses(second_octet: int, count: int) -> list[str]:
    """``count`` addresses in 127.<second_octet>.0.0/16, spread over /24s (the geo test data maps /24s)."""
    return [f"127.{second_octet}.{i % 64}.{1 + i // 64}" for i in range(count)]


def shard_capacity(wanted: int) -> int:
    """Connections one process can hold (two descriptors each) after raising its limit towards ``wanted``."""
    return (raise_nofile(2 * wanted + SPARE_FDS) - SPARE_FDS) // 2


@dataclass
class _Shard:
    proc: subprocess.Popen[str]
    held: int = 0


class ConnFarm:
    """``grow_to(n)`` established connections to ``127.0.0.1:port``; close everything on exit."""

    def __init__(self, sources: Sequence[str], host: str = "127.0.0.1", *, per_shard: int = 0) -> None:
        self.sources = list(sources)
        self.host = host
        self.per_shard = per_shard
        """At most this many connections a shard (0: as many as its descriptor limit allows)."""
        self.port = 0
        self._listener: socket.socket | None = None
        self._shards: list[_Shard] = []

    @property
    def held(self) -> int:
        return sum(s.held for s in self._shards)

    @property
    def shards(self) -> int:
        return len(self._shards)

    def __enter__(self) -> ConnFarm:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        bind_below_ephemeral(listener, self.host)
        listener.listen(4096)
        self._listener = listener
        self.port = listener.getsockname()[1]
        return self

    def _new_shard(self) -> _Shard:
        assert self._listener is not None
        fd = self._listener.fileno()
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.connfarm", str(fd), self.host, str(self.port), ",".join(self.sources)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, pass_fds=(fd,),
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
        shard = _Shard(proc)
        self._shards.append(shard)
        return shard

    def grow_to(self, total: int) -> None:
        """Open connections until ``total`` are established, starting shards as their limits require."""
        capacity = shard_capacity(total)  # children inherit the raised limit
        if self.per_shard:
            capacity = min(capacity, self.per_shard)
        if capacity < 1:
            raise RuntimeError("RLIMIT_NOFILE is too low to hold any connection")
        while self.held < total:
            shard = self._shards[-1] if self._shards and self._shards[-1].held < capacity else self._new_shard()
            more = min(total - self.held, capacity - shard.held)
            assert shard.proc.stdin is not None and shard.proc.stdout is not None
            shard.proc.stdin.write(f"{more} {self.held}\n")
            shard.proc.stdin.flush()
            reply = shard.proc.stdout.readline().strip()
            if reply != f"ok {shard.held + more}":
                raise RuntimeError(f"connection farm shard answered {reply!r}, wanted 'ok {shard.held + more}'")
            shard.held += more

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        for shard in self._shards:
            with contextlib.suppress(BrokenPipeError):
                assert shard.proc.stdin is not None
                shard.proc.stdin.close()  # the shard resets its ends and exits
        for shard in self._shards:
            try:
                shard.proc.wait(60)
            except subprocess.TimeoutExpired:
                shard.proc.kill()
                shard.proc.wait()
            if shard.proc.stdout is not None:
                shard.proc.stdout.close()
        self._shards.clear()
        if self._listener is not None:
            self._listener.close()


def ephemeral_low(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> int:
    with open(path) as fh:
        return int(fh.read().split()[0])


def bind_below_ephemeral(sock: socket.socket, host: str) -> None:
    """Bind to a free port below the ephemeral range, as a host's viewer port (80, 8080, ...) is: the
    processes source dumps connections whose local port is ephemeral, and would count these."""
    low = ephemeral_low()
    start = random.randrange(10_000, max(low - 1_000, 10_001))  # concurrent farms rarely try the same port
    for port in [*range(start, 1024, -1), 0]:
        try:
            sock.bind((host, port))
            return
        except OSError:
            continue


def client_port(index: int, sources: int, low: int) -> int:
    """Connection ``index``'s client port: below ``low``, one port per round over the source addresses
    (so no two connections share an address and port); 0 (any ephemeral port) when that would reach 1024."""
    port = low - 1 - index // sources
    return port if port > 1024 else 0


def _shard(listen_fd: int, host: str, port: int, sources: list[str]) -> None:
    listener = socket.socket(fileno=listen_fd)
    low = ephemeral_low()
    clients: list[socket.socket] = []
    accepted: list[socket.socket] = []
    for line in sys.stdin:
        more, first = (int(x) for x in line.split())
        for i in range(first, first + more):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            address = sources[i % len(sources)]
            try:
                s.bind((address, client_port(i, len(sources), low)))
            except OSError:  # that port is taken on this machine: any ephemeral one will do for this one
                s.bind((address, 0))
            s.connect((host, port))  # loopback: established once the listener's backlog has it
            clients.append(s)
            conn, _ = listener.accept()
            conn.send(PAYLOAD)
            accepted.append(conn)
        print(f"ok {len(clients)}", flush=True)
    for s in clients:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    for conn in accepted:
        conn.close()


if __name__ == "__main__":
    _shard(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4].split(","))
