"""The app's own routes: a /metrics scrape encodes off the event loop, so the webhook is never kept waiting."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import httpx
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.config import parse_config
from exporter.inventory import Inventory
from exporter.metrics import SnapshotCollector
from exporter.metrics.exposition import MetricsRegistry
from exporter.sampler import Sampler
from exporter.snapshot import Snapshot
from exporter.sources import SampleContext
from exporter.sources.processes import ProcessesSource
from exporter.sources.processes_result import ProcessesResult
from exporter.web.app import create_app


class _NoProcesses(ProcessesSource):
    def sample(self, ctx: SampleContext) -> ProcessesResult:
        return self.update({})


def test_a_slow_metrics_encoding_does_not_block_other_requests() -> None:
    config = parse_config({"node": "n"})
    sampler = Sampler(config, _NoProcesses(config), Inventory(config))
    entered, release = threading.Event(), threading.Event()
    released: list[bool] = []

    def slow_family(snap: Snapshot) -> Iterator[Metric]:
        entered.set()
        released.append(release.wait(5))  # on the event loop nothing could set it: every request would wait
        yield GaugeMetricFamily("iptv_slow", "A family that takes its time.", value=1)

    app = create_app(sampler, MetricsRegistry(SnapshotCollector(lambda: sampler.snapshot, [slow_family])))

    async def go() -> tuple[int, str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://exporter") as client:
            scrape = asyncio.create_task(client.get("/metrics"))
            assert await asyncio.to_thread(entered.wait, 10)
            healthy = await client.get("/-/healthy")  # answered while the encoding waits
            release.set()
            return healthy.status_code, (await scrape).text

    status, body = asyncio.run(go())
    assert status == 200 and released == [True]
    assert "iptv_slow 1.0" in body
