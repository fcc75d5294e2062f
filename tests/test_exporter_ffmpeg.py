"""The exporter as a real process watching real ffmpeg restreams: kill one, start it again."""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.helpers import Exporter, Proc, ffmpeg_hls_argv, metric, wait_until

pytestmark = pytest.mark.slow


def write_config(tmp: Path, streams: Path) -> Path:
    """Discovery bound to this test's folder: other ffmpegs on the host (a benchmark, another test) stay out."""
    path = tmp / "config.yml"
    folder = re.escape(str(streams))
    path.write_text(f"""
node: test-node
sample_interval: 1s
streams:
  discover: [{{process: ffmpeg, cmdline: '{folder}/stream_(?P<stream>\\d+)\\.m3u8'}}]
  static:
    - {{id: "7", name: Seven, cmdline: '{folder}/stream_7\\.m3u8', playlist: {streams}/stream_7.m3u8}}
    - {{id: "9", name: Nine (never runs)}}
viewers: {{ports: [], access_log: null}}
""")
    return path


def test_kill_and_respawn(tmp_path: Path, procs: Callable[..., Proc], exporter: Callable[..., Exporter]) -> None:
    streams = tmp_path / "streams"
    streams.mkdir()
    argv = ffmpeg_hls_argv(streams / "stream_7.m3u8")
    first = procs(argv, log=tmp_path / "ffmpeg1.log")
    other = procs(ffmpeg_hls_argv(streams / "stream_5.m3u8"), log=tmp_path / "ffmpeg5.log")  # discovered only
    exp = exporter(write_config(tmp_path, streams))

    m = exp.wait_for(lambda s: metric(s, "iptv_stream_up", stream="7") == 1
                     and metric(s, "iptv_stream_up", stream="5") == 1, "streams 7 and 5 up")
    assert metric(m, "iptv_stream_up", stream="9") == 0  # declared, not running: 0 from the first scrape
    assert metric(m, "iptv_stream_info", stream="7", name="Seven") == 1
    assert metric(m, "iptv_stream_info", stream="5", name="5") == 1
    assert metric(m, "iptv_stream_restarts_total", stream="7") == 0
    assert (metric(m, "iptv_stream_resident_memory_bytes", stream="7") or 0) > 1 << 20
    assert (metric(m, "iptv_stream_open_fds", stream="7") or 0) >= 3
    assert (metric(m, "iptv_stream_start_time_seconds", stream="7") or 0.0) > 1.7e9
    cpu_before = wait_until(lambda: metric(exp.scrape(), "iptv_stream_cpu_seconds_total", stream="7"),
                            what="cpu time accumulates")
    assert metric(m, "iptv_exporter_source_up", source="processes") == 1
    assert other.alive()

    first.signal(signal.SIGKILL)
    first.popen.wait(5)
    down = exp.wait_for(lambda s: metric(s, "iptv_stream_up", stream="7") == 0, "stream 7 down after kill")
    assert (metric(down, "iptv_stream_cpu_seconds_total", stream="7") or 0.0) >= cpu_before  # carried, not reset
    assert metric(down, "iptv_stream_up", stream="5") == 1

    procs(argv, log=tmp_path / "ffmpeg2.log")
    back = exp.wait_for(lambda s: metric(s, "iptv_stream_up", stream="7") == 1, "stream 7 up after respawn")
    assert metric(back, "iptv_stream_restarts_total", stream="7") == 1
    assert metric(back, "iptv_stream_restarts_total", stream="5") == 0


def test_metrics_formats_and_endpoints(tmp_path: Path, exporter: Callable[..., Exporter]) -> None:
    exp = exporter(write_config(tmp_path, tmp_path))
    om = httpx.get(exp.url + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.endswith("# EOF\n")
    text = httpx.get(exp.url + "/metrics", headers={"Accept-Encoding": "gzip"})
    assert text.headers["content-encoding"] == "gzip"
    assert text.headers["content-type"].startswith("text/plain")
    assert 'iptv_stream_up{stream="9"} 0.0' in text.text
    assert httpx.get(exp.url + "/-/healthy").status_code == 200
    assert httpx.get(exp.url + "/-/ready").status_code == 200
    landing = httpx.get(exp.url + "/").text
    assert 'href="/metrics"' in landing and "<code>processes</code>: up" in landing
    # Starlette's own refusals answer in the exporter's one error shape, with their Allow header.
    missing = httpx.get(exp.url + "/no-such-page")
    assert missing.status_code == 404 and missing.json() == {"error": "Not Found"}
    wrong = httpx.delete(exp.url + "/-/healthy")
    assert wrong.status_code == 405 and wrong.json() == {"error": "Method Not Allowed"}
    assert set(wrong.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}
