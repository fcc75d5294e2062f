"""Established TCP connections on loopback: a listener on a viewer port here, the client ends in a child.

The child (``python -m bench.connfarm HOST PORT SOURCES``) opens connections when told how many on its
stdin, from several 127.x source addresses (each address has its own ephemeral ports, so 19k
connections never run out), and closes them with a reset on exit so no TIME-WAIT is left behind to slow
later dumps. The listener side accepts them and sends each a little data, so ``tcp_info`` has bytes.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Sequence
from types import TracebackType

from bench.measure import raise_nofile

IP_BIND_ADDRESS_NO_PORT = 24  # linux/in.h: pick the port at connect(), per 4-tuple
PAYLOAD = b"x" * 1024


def source_addresses(second_octet: int, count: int) -> list[str]:
    """``count`` addresses in 127.<second_octet>.0.0/16, spread over /24s (the geo test data maps /24s)."""
    return [f"127.{second_octet}.{i % 64}.{1 + i // 64}" for i in range(count)]


class ConnFarm:
    """``grow_to(n)`` established connections to ``127.0.0.1:port``; close everything on exit."""

    def __init__(self, sources: Sequence[str], host: str = "127.0.0.1") -> None:
        self.sources = list(sources)
        self.host = host
        self.port = 0
        self.accepted: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._child: subprocess.Popen[str] | None = None

    def __enter__(self) -> ConnFarm:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, 0))
        listener.listen(4096)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._child = subprocess.Popen(
            [sys.executable, "-m", "bench.connfarm", self.host, str(self.port), ",".join(self.sources)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
        return self

    def grow_to(self, total: int) -> None:
        """Open connections until ``total`` are established (raises RLIMIT_NOFILE as needed)."""
        more = total - len(self.accepted)
        if more <= 0:
            return
        limit = raise_nofile(total + 2048)
        if limit < total + 256:
            raise RuntimeError(f"RLIMIT_NOFILE is {limit}: cannot hold {total} connections (run as root)")
        assert self._child is not None and self._child.stdin is not None and self._child.stdout is not None
        assert self._listener is not None
        self._child.stdin.write(f"{more} {total + 2048}\n")
        self._child.stdin.flush()
        for _ in range(more):  # accept while the child connects, so the backlog never overflows
            conn, _ = self._listener.accept()
            conn.setblocking(False)
            conn.send(PAYLOAD)
            self.accepted.append(conn)
        reply = self._child.stdout.readline().strip()
        if reply != f"ok {total}":
            raise RuntimeError(f"connection farm child answered {reply!r}, wanted 'ok {total}'")

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if self._child is not None:
            with contextlib.suppress(BrokenPipeError):
                assert self._child.stdin is not None
                self._child.stdin.close()  # the child resets its ends and exits
            try:
                self._child.wait(60)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait()
            if self._child.stdout is not None:
                self._child.stdout.close()
        for conn in self.accepted:
            conn.close()
        self.accepted.clear()
        if self._listener is not None:
            self._listener.close()


def _client(host: str, port: int, sources: list[str]) -> None:
    socks: list[socket.socket] = []
    for line in sys.stdin:
        more, limit = (int(x) for x in line.split())
        raise_nofile(limit)
        for _ in range(more):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((sources[len(socks) % len(sources)], 0))
            s.connect((host, port))
            socks.append(s)
        print(f"ok {len(socks)}", flush=True)
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()


if __name__ == "__main__":
    _client(sys.argv[1], int(sys.argv[2]), sys.argv[3].split(","))
