"""Chaos: a config regex with nested quantifiers against hostile text (issue 15, item 10).

``^/(?P<stream>(a+)+)b$`` passes validation and Python's ``re`` needs 2**n steps for n ``a``\\ s without
the ``b``: one logged URL, command line or log line froze the process (the GIL held, /metrics with it).
Every config regex now runs with RE2. The exporter runs as a real process on real files and a real process.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.helpers import Exporter, Proc, Samples, metric, parse_metrics

pytestmark = pytest.mark.slow

EVIL = r"(?P<stream>(a+)+)b$"
A = "a" * 40  # 2**40 steps for a backtracking engine


def timed_scrape(exp: Exporter) -> tuple[float, Samples]:
    started = time.monotonic()
    r = httpx.get(exp.url + "/metrics", timeout=5)  # a stalled process fails here, within seconds
    assert r.status_code == 200
    return time.monotonic() - started, parse_metrics(r.text)


def test_evil_patterns_on_hostile_text_stay_fast(tmp_path: Path, exporter: Callable[..., Exporter],
                                                 procs: Callable[..., Proc]) -> None:
    access = tmp_path / "access.log"
    access.write_text("")
    errors = tmp_path / "errors.log"
    errors.write_text("")
    config = tmp_path / "config.yml"
    config.write_text(f"""
sample_interval: 1s
streams:
  discover: [{{process: python3, cmdline: 'chaos-regex {EVIL}'}}]
  static: [{{id: "1", name: One}}]
viewers:
  ports: []
  access_log: {{path: {access}, preset: null, urls: ['^/{EVIL}']}}
errors:
  logs: [{{path: {errors}, line: '^{EVIL}'}}]
""")
    # A real process whose command line is the hostile text (it just sleeps).
    procs([sys.executable, "-c", "import time; time.sleep(120)", f"chaos-regex {A}"])
    exp = exporter(config)
    with access.open("a") as fh:
        for i in range(20):
            fh.write(f'127.0.0.1 - - [06/Dec/2026:07:00:{i:02d} +0000] "GET /{A}?x={i} HTTP/1.1" 200 10 "-" "ua"\n')
    with errors.open("a") as fh:
        fh.write((A + "\n") * 20)

    took, samples = timed_scrape(exp)
    samples = exp.wait_for(lambda s: metric(s, "iptv_accesslog_lines_total") == 20, "the 20 access log lines read")
    worst = 0.0
    for _ in range(5):  # several sampler rounds, each matching every pattern against the hostile text
        took, samples = timed_scrape(exp)
        worst = max(worst, took)
        time.sleep(0.3)
    assert worst < 1.0, f"/metrics took {worst:.2f}s"
    for source in ("processes", "accesslog", "errors"):
        assert metric(samples, "iptv_exporter_source_up", source=source) == 1, source
        assert (metric(samples, "iptv_exporter_source_duration_seconds", source=source) or 0) < 1.0, source
