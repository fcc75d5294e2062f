"""Chaos: a named pipe where the exporter expects a file (a hostile or careless panel user's mkfifo).

Opening a FIFO that has no writer blocks; the sampler is one thread, so before this was refused one pipe at a
progress-file, playlist or log path stopped every metric of the host. Against a running exporter: each pipe
is refused with its reason and everything else on the host keeps being measured.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.helpers import Exporter, metric

pytestmark = pytest.mark.slow

PLAYLIST = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:10.0,\nseg7.ts\n"
PROGRESS = "frame=250\nfps=25.00\nout_time_us=10000000\ndup_frames=0\ndrop_frames=1\nspeed=1.00x\nprogress=continue\n"


def test_named_pipes_are_refused_and_the_rest_is_measured(tmp_path: Path,
                                                          exporter: Callable[..., Exporter]) -> None:
    for name in ("1.m3u8", "1.progress", "1.errors", "access.log"):
        os.mkfifo(tmp_path / name)
    (tmp_path / "2.m3u8").write_text(PLAYLIST)
    (tmp_path / "2.progress").write_text(PROGRESS)
    (tmp_path / "2.errors").write_text("")
    config = tmp_path / "config.yml"
    config.write_text(f"""
sample_interval: 1s
streams:
  discover: []
  static:
    - {{id: "1", playlist: {tmp_path}/1.m3u8, progress: {tmp_path}/1.progress}}
    - {{id: "2", playlist: {tmp_path}/2.m3u8, progress: {tmp_path}/2.progress}}
errors:
  logs: [{{path: "{tmp_path}/*.errors", stream_from_path: '(?P<stream>\\d+)\\.errors$'}}]
viewers:
  ports: []
  access_log: {{path: {tmp_path}/access.log, preset: panelx}}
""")
    exp = exporter(config)  # the first round completes before the server answers: it did not block
    with (tmp_path / "2.errors").open("a") as fh:
        fh.write("[http @ 0x1] HTTP error 404 Not Found\n")
    samples = exp.wait_for(lambda s: metric(s, "iptv_stream_errors_total", stream="2", kind="input") == 1,
                           "stream 2's error counted beside stream 1's pipe")
    assert metric(samples, "iptv_exporter_source_up", source="accesslog") == 0  # one file, refused: down
    for source in ("progress", "hls", "errors", "processes"):
        assert metric(samples, "iptv_exporter_source_up", source=source) == 1, source
    assert metric(samples, "iptv_stream_playlist_present", stream="2") == 1
    assert metric(samples, "iptv_stream_playlist_present", stream="1") == 0
    assert metric(samples, "iptv_stream_frames_total", stream="2") == 250
    assert metric(samples, "iptv_stream_frames_total", stream="1") is None
    assert metric(samples, "iptv_error_log_files") == 1  # 2.errors; the pipe is not followed
    first = metric(samples, "iptv_exporter_last_sample_timestamp_seconds")
    exp.wait_for(lambda s: (metric(s, "iptv_exporter_last_sample_timestamp_seconds") or 0) > (first or 0),
                 "rounds go on")  # raises if sampling stopped
    assert "not a regular file" in httpx.get(exp.url + "/").text  # the reason, on the landing page
