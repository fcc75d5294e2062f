"""Crash loops (issue 14.8): an ffmpeg that dies within a second, again and again, shows as restarts
and exit errors. A real ffmpeg with a flag it rejects, respawned by a shell loop the way a panel's
monitor respawns it; the exporter's own pipeline (sampler, sources, collector) renders the metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from exporter.config import parse_config
from exporter.runtime import build_runtime
from tests.helpers import Proc, metric, parse_metrics, require_binary, wait_until

pytestmark = pytest.mark.slow

RUNS = 12
STREAM = "48603"
"""An id no other ffmpeg on a shared test host writes (the panelx preset matches any folder)."""


def crash_loop(tmp: Path) -> list[str]:
    """A panel-style respawn loop around an ffmpeg that exits at once (rejected flag), counting its runs."""
    ffmpeg = require_binary("ffmpeg")
    out = tmp / "streams" / f"stream_{STREAM}.m3u8"
    return ["sh", "-c",
            f"i=0; while [ $i -lt {RUNS} ]; do '{ffmpeg}' -hide_banner -loglevel warning -no_such_flag 1"
            f" -i http://127.0.0.1:9/live.ts -c copy -f hls '{out}'; i=$((i+1)); echo $i > '{tmp}/runs';"
            f" sleep 0.3; done"]


def config(tmp: Path, events: str) -> dict[str, object]:
    return {"sample_interval": "1s", "viewers": {"ports": [], "access_log": None},
            "streams": {"discover": [{"preset": "panelx", "user": ["root"]}], "process_events": events}}


def test_a_crash_loop_shows_as_restarts_and_exit_errors(tmp_path: Path, procs: Callable[..., Proc]) -> None:
    (tmp_path / "streams").mkdir()
    with_events = build_runtime(parse_config(config(tmp_path, "on")))
    sampling_only = build_runtime(parse_config(config(tmp_path, "off")))
    for rt in (with_events, sampling_only):
        rt.sampler.sample_once()  # the listener is subscribed before the loop starts
    try:
        loop = procs(crash_loop(tmp_path), log=tmp_path / "loop.log")

        def done() -> bool:
            for rt in (with_events, sampling_only):
                rt.sampler.sample_once()
            return not loop.alive()

        wait_until(done, timeout=60, interval=0.5, what="the respawn loop to finish")
        runs = int((tmp_path / "runs").read_text())
        assert runs == RUNS
        assert "no_such_flag" in loop.output()  # each run really was refused by ffmpeg
        with_events.sampler.sample_once()
        samples = parse_metrics(generate_latest(with_events.registry).decode())
        restarts = metric(samples, "iptv_stream_restarts_total", stream=STREAM)
        exits = metric(samples, "iptv_stream_errors_total", stream=STREAM, kind="exit")
        assert metric(samples, "iptv_exporter_process_events_up") == 1
        assert metric(samples, "iptv_stream_up", stream=STREAM) == 0
        # every start after the first is a restart, every run an exit; a loaded machine may lose the
        # odd exec (the process was gone before its /proc entry was read), never most of them
        print(f"crash loop: runs={runs} restarts={restarts} exits={exits}")
        assert restarts is not None and restarts >= 0.75 * (RUNS - 1), restarts
        assert exits is not None and exits >= 0.75 * RUNS, exits
        assert restarts <= RUNS - 1 and exits <= RUNS  # never counted twice

        blind = parse_metrics(generate_latest(sampling_only.registry).decode())
        assert metric(blind, "iptv_exporter_process_events_up") == 0
        # sampling alone (the fallback) sees at most the odd run that was alive at a sample
        assert (metric(blind, "iptv_stream_restarts_total", stream=STREAM) or 0) < restarts
    finally:
        for rt in (with_events, sampling_only):
            rt.sampler.processes.close()
