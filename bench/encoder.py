"""``python -m bench.encoder [RUNS]``: our /metrics encoder against prometheus_client's, on a 500-stream node.

The figures in exporter/metrics/textformat.py's docstring (and the gzip one in exposition.py) come from here.
The node is the runtime ``iptv-exporter`` builds, fed by files rather than 500 live processes (a loaded
machine runs out of process slots long before): tests/golden/host's /proc with its PanelX ffmpeg copied
once per stream, this package's playlists and access log (a minute of 10k viewers' requests, then five
seconds more), and 10k viewer sockets in the shape the sock_diag parser makes. Every source is up, so the
families are those of a real node of that size. CPU time of this process, median of RUNS interleaved runs;
the encoders' bytes are checked equal first.
"""

from __future__ import annotations

import gzip
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as om_latest

from bench import geodata
from bench.connfarm import source_addresses
from bench.workload import append_log, lines_per_second, write_playlists
from exporter.config import parse_config
from exporter.metrics import textformat as tf
from exporter.runtime import Runtime, build_runtime
from exporter.sources.sockdiag import RawSocket

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "golden" / "host"
PORT = 8080
STREAMS, VIEWERS = 500, 10_000


def node(tmp: Path, streams: int = STREAMS, viewers: int = VIEWERS) -> tuple[Runtime, Callable[[], None]]:
    """The runtime of a node this size, and a function that appends five seconds of requests to its log."""
    root = tmp / "host"
    proc = root / "proc"
    proc.mkdir(parents=True)
    (proc / "stat").write_bytes((GOLDEN / "proc" / "stat").read_bytes())
    template = GOLDEN / "proc" / "4101"  # one PanelX ffmpeg, owned by the panel user
    for sid in range(1, streams + 1):
        pid = str(10_000 + sid)
        d = proc / pid
        (d / "fd").mkdir(parents=True)
        for name in ("statm", "io", "comm"):
            (d / name).write_bytes((template / name).read_bytes())
        for name in ("stat", "status"):
            (d / name).write_text((template / name).read_text().replace("4101", pid))
        cmdline = (template / "cmdline.in").read_bytes().replace(b"@ROOT@", str(root).encode())
        (d / "cmdline").write_bytes(cmdline.replace(b"stream_5", f"stream_{sid}".encode()))
    write_playlists(root, streams)
    log, chunk = root / "access.log", tmp / "chunk.log"
    append_log(log, chunk, int(lines_per_second(viewers) * 60), streams, viewers, seed=0)
    peers = source_addresses(2, 100)
    sockets = [RawSocket(i.to_bytes(8, "little"), 1, socket.AF_INET, PORT,
                         socket.inet_aton(peers[i % len(peers)]) + bytes(12), 20_000 + i % 40_000,
                         1_000 + i % 5_000, 10_000_000 + i, 400) for i in range(viewers)]
    dbs = geodata.write(tmp / "geo")
    config = parse_config({
        "node": "encoder-bench", "egress_capacity_bits_per_second": 10_000_000_000,
        "streams": {"discover": [{"preset": "panelx", "user": [1001]}]},
        "viewers": {"ports": [PORT], "access_log": {"path": str(log), "preset": "panelx", "from_start": True}},
        "geo": {"city_db": str(dbs[0]), "asn_db": str(dbs[1])} if dbs else {},
    })
    rt = build_runtime(config, proc_root=str(proc), socket_dump=lambda ports: list(sockets))
    return rt, lambda: append_log(log, chunk, int(lines_per_second(viewers) * 5), streams, viewers, seed=2)


class _Families:
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self.metrics


def main(runs: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        rt, more = node(Path(d))
        try:
            rt.sampler.sample_once()
            more()
            snap = rt.sampler.sample_once()
            down = [st.name for st in snap.statuses if not st.up]
            if down:
                raise SystemExit(f"sources down: {down}")
            families = list(rt.registry.collect())
            client = _Families(families)
            if tf.text(tf.Encoder().blocks(families)).encode() != generate_latest(client):
                raise SystemExit("text bodies differ")
            if tf.openmetrics(tf.Encoder().blocks(families)).encode() != om_latest(client):  # type: ignore[no-untyped-call]
                raise SystemExit("OpenMetrics bodies differ")
            body, _ = rt.registry.render()

            def first(accept: str = "") -> None:
                rt.registry._encoded = None  # the next render encodes the snapshot again, as a new one would
                rt.registry.render(accept)

            cases: dict[str, Callable[[], object]] = {
                "prometheus_client text (generate_latest)": lambda: generate_latest(client),
                "prometheus_client OpenMetrics": lambda: om_latest(client),  # type: ignore[no-untyped-call]
                "ours, text": lambda: tf.text(tf.Encoder().blocks(families)).encode(),
                "ours, OpenMetrics": lambda: tf.openmetrics(tf.Encoder().blocks(families)).encode(),
                "collecting the families (and checking they encode)": lambda: list(rt.registry.collect()),
                "render, first scrape of a snapshot, text": first,
                "render, first scrape, OpenMetrics": lambda: first("application/openmetrics-text; version=1.0.0"),
                "gzip.compress of the whole body": lambda: gzip.compress(body, compresslevel=5),
            }
            spent: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(runs):
                for name, fn in cases.items():
                    c0 = time.process_time()
                    fn()
                    spent[name].append(time.process_time() - c0)
            rt.registry.render("", "gzip")  # the snapshot's part compressed once; the scrapes below reuse it
            again = "render, same snapshot, gzip (compressor state reused)"
            spent[again] = []
            for _ in range(runs):
                c0 = time.process_time()
                rt.registry.render("", "gzip")
                spent[again].append(time.process_time() - c0)
        finally:
            rt.sampler.close()
    median = {name: statistics.median(v) for name, v in spent.items()}
    print(f"{len(families)} families, {sum(len(m.samples) for m in families):,} samples, "
          f"{len(body) / 1024:,.0f} KiB; CPU ms, median of {runs}")
    for name, seconds in median.items():
        print(f"  {name:55s} {seconds * 1e3:7.1f}")
    print(f"ours vs prometheus_client: text "
          f"{median['prometheus_client text (generate_latest)'] / median['ours, text']:.1f}x, OpenMetrics "
          f"{median['prometheus_client OpenMetrics'] / median['ours, OpenMetrics']:.1f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 9)
