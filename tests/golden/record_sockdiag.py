"""Record the sock_diag dump the golden test replays (run once, as root or with CAP_NET_ADMIN not needed).

    python -m tests.golden.record_sockdiag tests/golden/sockdiag.bin

Opens a viewer port on 127.0.0.1, connects viewers from loopback addresses that tests/mmdb.py places in
real cities, sends each a known number of bytes, and stores the kernel's answer to one dump request,
datagram by datagram (each prefixed with its length as 4 bytes, big-endian). The port is written first.
"""

from __future__ import annotations

import socket
import struct
import sys
import time

from exporter.sources.netlink import RECV_BUFFER
from exporter.sources.sockdiag import NETLINK_SOCK_DIAG, diag_request, port_filter

VIEWERS = [("127.1.0.10", 300_000), ("127.1.0.11", 120_000), ("127.2.0.10", 64_000), ("127.6.0.10", 9_000)]
"""(viewer address, bytes the server sends it): Amsterdam twice, Berlin, São Paulo in tests/mmdb.py's places."""


def record(path: str) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    clients, accepted = [], []
    for ip, size in VIEWERS:
        c = socket.socket()
        c.bind((ip, 0))
        c.connect(("127.0.0.1", port))
        s, _ = server.accept()
        s.sendall(b"\0" * size)
        got = 0
        while got < size:
            got += len(c.recv(1 << 16))
        c.sendall(b"GET /live/u/p/5.ts HTTP/1.1\r\n\r\n")
        clients.append(c)
        accepted.append(s)
    time.sleep(0.2)  # let the last ACKs land so bytes_acked equals what was sent
    datagrams = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as nl:
        nl.bind((0, 0))
        nl.send(diag_request(socket.AF_INET, port_filter([port])))
        buf = bytearray(RECV_BUFFER)
        while True:
            n = nl.recv_into(buf)
            datagrams.append(bytes(buf[:n]))
            if n == 0 or struct.unpack_from("=IH", buf, 0)[1] == 3:  # NLMSG_DONE
                break
            if any(struct.unpack_from("=IH", buf, off)[1] == 3 for off in _offsets(buf, n)):
                break
    with open(path, "wb") as f:
        f.write(struct.pack("!H", port))
        for d in datagrams:
            f.write(struct.pack("!I", len(d)) + d)
    for s in clients + accepted + [server]:
        s.close()


def _offsets(buf: bytearray, n: int) -> list[int]:
    out, off = [], 0
    while off + 16 <= n:
        out.append(off)
        off += (struct.unpack_from("=I", buf, off)[0] + 3) & ~3
    return out


if __name__ == "__main__":
    record(sys.argv[1])
