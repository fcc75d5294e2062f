"""Ingest bytes of network inputs from the kernel's socket counters (issue 14.2).

A loopback origin serves a live MPEG-TS over HTTP, paced like a provider, and counts every body byte it
sends; a real ffmpeg (XC_VM's argv shape, with its ``-progress`` push to a loopback listener) restreams
it. The origin drops the connection once (ffmpeg reconnects) and the ffmpeg is killed and started again:
the ingest counter follows what the origin served within 5% throughout, and never falls. ``rchar``,
what the exporter counted before, stays near zero for the same process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import MappingProxyType

import pytest

from exporter.config import parse_config
from exporter.sources import SampleContext
from exporter.sources.ingest import Holder, IngestMeter
from exporter.sources.processes import ProcessesSource
from exporter.sources.procfs import ProcFs
from exporter.sources.sockdiag import OwnedSocket
from tests.helpers import Proc, http_server, require_binary, wait_until

pytestmark = pytest.mark.slow

CHUNK = 8192
STREAM = "48621"
"""An id no other ffmpeg on a shared test host writes (the xui preset matches any folder)."""
PACE = 0.03  # seconds per chunk: ~270 kB/s, a 2 Mbit/s channel


class Origin:
    """What the provider served: body bytes per connection, and switches the test flips."""

    def __init__(self, media: bytes) -> None:
        self.media = media
        self.lock = threading.Lock()
        self.served = 0
        self.connections = 0
        self.drop = threading.Event()
        """Close the current connection (after a quiet second, so a sample sees its final count)."""
        self.quiet = threading.Event()


def handler_for(origin: Origin) -> type[BaseHTTPRequestHandler]:
    class Live(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # close-delimited body: a live stream has no length

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            with origin.lock:
                origin.connections += 1
            start = 0
            if self.headers.get("Range", "").startswith("bytes="):
                start = int(self.headers["Range"][6:].split("-")[0] or 0) % len(origin.media)
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.end_headers()
            offset = start
            try:
                while True:
                    if origin.drop.is_set():
                        origin.quiet.set()
                        time.sleep(1.0)
                        origin.drop.clear()
                        return  # the connection closes
                    if origin.quiet.is_set():
                        time.sleep(0.05)
                        continue
                    chunk = origin.media[offset : offset + CHUNK] or origin.media[:CHUNK]
                    offset = offset + len(chunk) if offset + len(chunk) <= len(origin.media) else len(chunk)
                    self.wfile.write(chunk)
                    with origin.lock:
                        origin.served += len(chunk)
                    time.sleep(PACE)
            except (BrokenPipeError, ConnectionResetError):
                return

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Live


class Sink(BaseHTTPRequestHandler):
    """The panel's progress listener: reads the push, answers when it ends."""

    def do_POST(self) -> None:  # noqa: N802
        while self.rfile.readline():
            pass
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Ten seconds of test pattern as MPEG-TS (~1 Mbit/s), looped by the origin."""
    path = tmp_path_factory.mktemp("media") / "live.ts"
    Proc([require_binary("ffmpeg"), "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi", "-i",
          "testsrc=size=320x240:rate=25", "-t", "10", "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "1M",
          "-g", "25", "-f", "mpegts", str(path)]).start().popen.wait(120)
    return path.read_bytes()


def restream_argv(source: str, progress: str, out: Path) -> list[str]:
    """XC_VM's shape (includes/xc_vm.php): -progress to the panel's port, -i the provider, segment output.
    The panel's ``-segment_list_flags +live+delete`` needs its patched ffmpeg (``+delete``): ``+live`` here."""
    return [require_binary("ffmpeg"), "-y", "-nostdin", "-hide_banner", "-loglevel", "warning",
            "-err_detect", "ignore_err", "-user_agent", "Mozilla/5.0", "-reconnect", "1", "-reconnect_streamed", "1",
            "-reconnect_delay_max", "2", "-probesize", "500000", "-analyzeduration", "500000",
            "-progress", progress, "-i", source, "-vcodec", "copy", "-acodec", "copy",
            "-individual_header_trailer", "0", "-f", "segment", "-segment_format", "mpegts", "-segment_time", "2",
            "-segment_list_size", "6", "-segment_list_type", "m3u8", "-segment_list_flags", "+live",
            "-segment_list", str(out / f"{STREAM}_.m3u8"), str(out / f"{STREAM}_%d.ts")]


@pytest.fixture
def served(media: bytes) -> Iterator[tuple[Origin, str, str]]:
    origin = Origin(media)
    with http_server(handler_for(origin)) as address, http_server(Sink) as panel:
        yield origin, f"http://{address}/live/u/p/{STREAM}.ts", f"http://{panel}/progress?stream_id={STREAM}"


def test_network_ingest_follows_what_the_origin_served(tmp_path: Path, served: tuple[Origin, str, str],
                                                       procs: Callable[..., Proc]) -> None:
    origin, source_url, progress_url = served
    out = tmp_path / "streams"
    out.mkdir()
    config = parse_config({"streams": {"discover": [{"preset": "xui", "user": [0]}], "process_events": "off"}})
    source = ProcessesSource(config)

    def ingest() -> float:
        res = source.sample(SampleContext(time.time(), MappingProxyType({})))
        return (res.streams[STREAM].read_bytes_total or 0.0) if STREAM in res.streams else 0.0

    def close_to_served(label: str) -> float:
        """Sample until the origin served 200 kB more and ingest is within 5% of all it served (in flight:
        a chunk or two)."""
        floor = origin.served + 200_000

        def check() -> float | None:
            got = ingest()
            with origin.lock:
                sent = origin.served
            return got if sent > floor and abs(got - sent) <= 0.05 * sent else None

        return wait_until(check, timeout=30, interval=0.2, what=f"ingest within 5% of served ({label})")

    first = procs(restream_argv(source_url, progress_url, out), log=tmp_path / "ffmpeg1.log")
    a = close_to_served("first connection")
    rchar_a, served_a = ProcFs().rchar(first.pid) or 0, origin.served
    print(f"ingest first connection: ingest={a:.0f} served={served_a}")

    origin.drop.set()  # the provider drops the connection; ffmpeg reconnects
    wait_until(lambda: origin.quiet.is_set(), what="origin quiet before the drop")
    while origin.drop.is_set():
        ingest()  # a sample sees the old connection's final count
        time.sleep(0.2)
    origin.quiet.clear()
    wait_until(lambda: origin.connections >= 2, timeout=30, what=f"ffmpeg reconnected: {first.output()[-400:]}")
    b = close_to_served("after a reconnect")
    assert b > a
    # the defect this replaces: recv() bytes are not in rchar, which stays put while the input flows
    assert (ProcFs().rchar(first.pid) or 0) - rchar_a < 0.1 * (origin.served - served_a)

    origin.quiet.set()  # the panel restarts the stream: a quiet moment, a sample, then a new process
    time.sleep(0.5)
    before = ingest()
    first.stop()
    origin.quiet.clear()
    procs(restream_argv(source_url, progress_url, out), log=tmp_path / "ffmpeg2.log")
    wait_until(lambda: origin.connections >= 3, timeout=30, what="the new process connected")
    c = close_to_served("after a process restart")
    print(f"ingest after reconnect and restart: ingest={c:.0f} served={origin.served}")
    assert c > before >= b  # one counter across reconnects and processes


def test_progress_and_output_peers_are_not_ingest_unless_an_input_shares_them() -> None:
    meter = IngestMeter(dump=lambda low, high: [], port_range=(32768, 60999))
    holder = Holder("21", frozenset({11, 12, 13}), frozenset({("127.0.0.1", 8080), ("*", 1935)}))
    sockets = [
        OwnedSocket(b"c-input", 11, ("203.0.113.5", 80), 5_000_000),
        OwnedSocket(b"c-progress", 12, ("127.0.0.1", 8080), 300),  # the -progress push: its answer only
        OwnedSocket(b"c-rtmp", 13, ("198.51.100.7", 1935), 4_000),  # an output named by host name
        OwnedSocket(b"c-other", 99, ("203.0.113.5", 80), 7_000_000),  # another process's socket
    ]
    assert meter.update(sockets, {i: holder for i in holder.inodes}) == {"21": 5_000_000}
    # the input closes (inode 0 while the kernel finishes it): still its stream's, then carried
    assert meter.update([OwnedSocket(b"c-input", 0, ("203.0.113.5", 80), 5_100_000)], {}) == {"21": 5_100_000}
    assert meter.update([], {}) == {"21": 5_100_000}
