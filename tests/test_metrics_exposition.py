"""/metrics bodies: the same bytes prometheus_client writes, the snapshot part encoded once per snapshot, live
collectors fresh on every scrape, gzip of the whole, and a body promtool accepts."""

from __future__ import annotations

import gzip
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as om_latest

from exporter.config import parse_config
from exporter.metrics import SnapshotCollector
from exporter.metrics.exposition import MetricsRegistry
from exporter.runtime import Runtime, build_runtime
from exporter.snapshot import Snapshot
from exporter.sources import StreamRef
from tests.helpers import require_binary

ACCEPTS = {
    "": generate_latest,
    "text/plain; version=0.0.4": generate_latest,
    "text/plain;version=1.0.0;escaping=allow-utf-8": generate_latest,
    "application/openmetrics-text; version=1.0.0": om_latest,
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,text/plain;q=0.4": om_latest,
    "application/openmetrics-text": om_latest,
}


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    rt = build_runtime(parse_config({
        "node": "edge-1",
        "egress_capacity_bits_per_second": 1e9,
        "streams": {"static": [{"id": str(i), "name": f'Stream "{i}"'} for i in range(30)]},
        "viewers": {"ports": [1], "access_log": {"path": str(tmp_path / "access.log")}},
        "actions": {"token_file": str(token), "journal": str(tmp_path / "j.sqlite"),
                    "restart": {"type": "command", "argv": ["true"]}},
    }))
    rt.sampler.sample_once()
    return rt


@pytest.mark.parametrize("accept", list(ACCEPTS))
@pytest.mark.parametrize("accept_encoding", ["", "gzip, deflate"])
def test_bodies_are_what_prometheus_client_writes(runtime: Runtime, accept: str, accept_encoding: str) -> None:
    body, headers = runtime.registry.render(accept, accept_encoding)
    if accept_encoding:
        assert headers["Content-Encoding"] == "gzip"
        body = gzip.decompress(body)
    else:
        assert "Content-Encoding" not in headers
    expected = ACCEPTS[accept](runtime.registry)  # type: ignore[operator]
    assert steady(body) == steady(expected)
    assert b'iptv_stream_up{stream="29"}' in body and b"iptv_restart_circuit_open" in body
    assert b"process_cpu_seconds_total" in body and b"python_gc_collections_total" in body


def steady(body: bytes) -> list[bytes]:
    """The body without the values of the process's own metrics, which move between two renders (CPU time, GC
    counts, memory): their names, help and types stay, and the values of everything else."""
    return [line.rpartition(b" ")[0] if line.startswith((b"process_", b"python_")) else line
            for line in body.splitlines()]


def test_the_snapshot_is_encoded_once_and_live_collectors_on_every_scrape() -> None:
    calls: list[float] = []

    def family(snap: Snapshot) -> Iterator[Metric]:
        calls.append(snap.timestamp)
        g = GaugeMetricFamily("iptv_stream_up", "Up.", labels=["stream"])
        for stream in snap.streams:
            g.add_metric([stream], 1)
        yield g

    snaps = [Snapshot(float(i), True, {str(n): StreamRef(str(n), str(n), True) for n in range(100 + i)})
             for i in range(2)]
    current = snaps[0]
    live = Counter("iptv_webhook_requests", "Requests.", ["code"], registry=None)
    registry = MetricsRegistry(SnapshotCollector(lambda: current, [family]), live=[live])

    first, _ = registry.render("", "gzip")
    live.labels("200").inc()
    second, _ = registry.render("", "gzip")
    om, _ = registry.render("application/openmetrics-text")
    assert calls == [0.0]  # the same snapshot, in another format too: encoded once
    assert b"iptv_webhook_requests_total{" not in gzip.decompress(first)
    assert b'iptv_webhook_requests_total{code="200"} 1.0' in gzip.decompress(second)
    assert gzip.decompress(second) == generate_latest(registry)
    assert om == om_latest(registry)  # type: ignore[no-untyped-call]

    current = snaps[1]
    calls.clear()
    third, _ = registry.render()
    assert calls == [1.0] and b'iptv_stream_up{stream="100"} 1.0' in third
    assert third == generate_latest(registry)


def test_other_escapings_and_small_bodies_are_written_by_the_client(runtime: Runtime) -> None:
    body, headers = runtime.registry.render("text/plain;version=1.0.0;escaping=dots", "gzip")
    assert headers["Content-Type"].endswith("escaping=dots") and headers["Content-Encoding"] == "gzip"
    expected = generate_latest(runtime.registry, escaping="dots")
    assert steady(gzip.decompress(body)) == steady(expected)
    tiny = MetricsRegistry(SnapshotCollector(lambda: Snapshot(0.0, False), []))
    body, headers = tiny.render("", "gzip")
    assert body == b"" and "Content-Encoding" not in headers


def test_promtool_checks_the_body(runtime: Runtime) -> None:
    body, _ = runtime.registry.render()
    done = subprocess.run([require_binary("promtool"), "check", "metrics"], input=body, capture_output=True,
                          timeout=60)
    problems = (done.stdout + done.stderr).decode().strip().splitlines()
    assert done.returncode == 0, problems  # base units throughout: no lint findings either
