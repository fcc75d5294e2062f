"""The shared Prometheus helper: scraping a loopback target, and a failed start reported with its log."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.helpers import http_server, wait_until
from tests.promserver import PrometheusError, prometheus_config, query, start_prometheus

EXPOSITION = b'# TYPE iptv_stream_up gauge\niptv_stream_up{stream="7"} 1\n'


class _Metrics(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(EXPOSITION)))
        self.end_headers()
        self.wfile.write(EXPOSITION)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (signature of the base class)
        return


@pytest.fixture
def target() -> Iterator[str]:
    with http_server(_Metrics) as address:
        yield address


@pytest.mark.slow
def test_scrapes_a_target_with_its_labels(tmp_path: Path, target: str) -> None:
    config = prometheus_config(scrape_targets=[target], target_labels={"node": "edge-1"})
    with start_prometheus(config, tmp_path / "data") as url:
        series = wait_until(lambda: query(url, "iptv_stream_up"), timeout=20, what="a scraped sample")
    assert series[0]["metric"] == {
        "__name__": "iptv_stream_up", "instance": target, "job": "iptv", "node": "edge-1", "stream": "7"
    }


@pytest.mark.slow
def test_a_bad_config_fails_with_the_log(tmp_path: Path) -> None:
    with pytest.raises(PrometheusError, match=r"exited with \d+.*\n.*"), \
            start_prometheus("global: {scrape_interval: soon}\n", tmp_path / "data"):
        pass
