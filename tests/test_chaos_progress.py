"""Chaos: hostile or broken progress input against the running exporter (issue 15, items 1 and 2).

A local user can push to ``/progress/{stream}`` (loopback is allowed by default) and a progress file is
written by whoever runs ffmpeg. Nothing they send may break or slow ``/metrics``: out-of-range values are
refused with 400 and counted, a garbage flood is parsed in linear time off the event loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import Exporter, Samples, metric, parse_metrics

pytestmark = pytest.mark.slow

BLOCK = "frame={n}\nfps=25.00\nout_time_us={us}\ndup_frames=0\ndrop_frames=0\nspeed=1.00x\nprogress=continue\n"


def write_config(tmp: Path) -> Path:
    path = tmp / "config.yml"
    path.write_text(f"""
node: chaos
sample_interval: 1s
streams:
  discover: []
  static:
    - {{id: "7", name: Seven}}
    - {{id: "8", name: Eight, progress: {tmp}/8.progress}}
    - {{id: "9", name: Nine}}
viewers: {{ports: [], access_log: null}}
""")
    return path


def scrape_ok(exp: Exporter) -> Samples:
    r = httpx.get(exp.url + "/metrics", timeout=10)
    assert r.status_code == 200, r.text[:500]
    return parse_metrics(r.text)


def test_huge_frame_is_refused_and_metrics_keep_serving(tmp_path: Path, exporter: Callable[..., Exporter]) -> None:
    exp = exporter(write_config(tmp_path))
    good = httpx.post(exp.url + "/progress/7", content=BLOCK.format(n=250, us=10_000_000), timeout=10)
    assert good.status_code == 204
    exp.wait_for(lambda s: metric(s, "iptv_stream_frames_total", stream="7") == 250, "stream 7's frames")

    huge = "9" * 4000
    r = httpx.post(exp.url + "/progress/7", content=BLOCK.format(n=huge, us=20_000_000), timeout=10)
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith("out_of_range: ") and "frame" in r.json()["error"]
    r = httpx.post(exp.url + "/progress/9", content=BLOCK.format(n=5, us=huge), timeout=10)
    assert r.status_code == 400, r.text
    assert "out_time_us" in r.json()["error"]
    for bad in ("fps=1e300", "speed=1e300x", "fps=nan", "drop_frames=9007199254740993"):
        r = httpx.post(exp.url + "/progress/9", content=f"frame=1\n{bad}\nprogress=continue\n", timeout=10)
        assert r.status_code == 400, (bad, r.status_code, r.text)

    # Many scrapes later (several sampler rounds), /metrics still answers, with the good value kept.
    samples = exp.wait_for(
        lambda s: (metric(s, "iptv_progress_push_rejected_total", reason="out_of_range") or 0) >= 6,
        "out-of-range pushes counted",
    )
    assert metric(samples, "iptv_stream_frames_total", stream="7") == 250
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        scrape_ok(exp)
    assert exp.proc is not None and exp.proc.alive()
    assert "Traceback" not in exp.log_text()


def test_progress_file_with_huge_values_counts_them_skipped(tmp_path: Path, exporter: Callable[..., Exporter]) -> None:
    progress = tmp_path / "8.progress"
    progress.write_text(BLOCK.format(n=100, us=4_000_000))
    exp = exporter(write_config(tmp_path))
    exp.wait_for(lambda s: metric(s, "iptv_stream_frames_total", stream="8") == 100, "stream 8 from its file")
    with progress.open("a") as fh:
        fh.write(BLOCK.format(n="9" * 4000, us="9" * 4000) + BLOCK.format(n=150, us=6_000_000))
    samples = exp.wait_for(lambda s: metric(s, "iptv_stream_frames_total", stream="8") == 150, "next good block")
    assert metric(samples, "iptv_progress_skipped_lines_total", via="file") == 2
    scrape_ok(exp)


def _newlines(total: int, chunk: int) -> Iterator[bytes]:
    piece = b"\n" * chunk
    for _ in range(total // chunk):
        yield piece


def test_blank_line_flood_is_linear_and_metrics_stay_fast(tmp_path: Path, exporter: Callable[..., Exporter]) -> None:
    exp = exporter(write_config(tmp_path))
    scrape_ok(exp)
    result: dict[str, object] = {}

    def flood() -> None:
        started = time.monotonic()
        try:
            r = httpx.post(exp.url + "/progress/9", content=_newlines(4 << 20, 64 << 10), timeout=120)
            result["status"] = r.status_code
            result["text"] = r.text
        except httpx.HTTPError as exc:  # the server may answer and close before the whole body is sent
            result["error"] = repr(exc)
        result["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=flood)
    thread.start()
    worst = 0.0
    scrapes = 0
    while thread.is_alive() or scrapes < 5:
        started = time.monotonic()
        scrape_ok(exp)
        worst = max(worst, time.monotonic() - started)
        scrapes += 1
    thread.join()
    print(f"flood: {result}, scrapes={scrapes}, slowest scrape={worst:.3f}s")
    assert worst < 1.0, f"a scrape took {worst:.2f}s during the flood"
    assert float(result["seconds"]) < 10.0, result  # type: ignore[arg-type]
    assert result.get("status") in (400, 204, None), result
    # The same receiver still takes a real push afterwards.
    r = httpx.post(exp.url + "/progress/9", content=BLOCK.format(n=3, us=100_000), timeout=10)
    assert r.status_code == 204
    exp.wait_for(lambda s: metric(s, "iptv_stream_frames_total", stream="9") is not None, "stream 9 after flood")


def _newlines_with_blocks(total: int, chunk: int) -> Iterator[bytes]:
    """A flood that keeps under the 1 MiB-without-a-block bound: the receiver parses all of it."""
    block = BLOCK.format(n=1, us=40_000).encode()
    for i in range(total // chunk):
        yield (block if i % 4 == 0 else b"") + b"\n" * chunk


def test_blank_lines_between_blocks_are_all_parsed_and_metrics_stay_fast(
        tmp_path: Path, exporter: Callable[..., Exporter]) -> None:
    exp = exporter(write_config(tmp_path))
    result: dict[str, object] = {}

    def flood() -> None:
        started = time.monotonic()
        r = httpx.post(exp.url + "/progress/9", content=_newlines_with_blocks(16 << 20, 64 << 10), timeout=120)
        result["status"], result["seconds"] = r.status_code, time.monotonic() - started

    thread = threading.Thread(target=flood)
    thread.start()
    worst, scrapes = 0.0, 0
    while thread.is_alive() or scrapes < 5:
        started = time.monotonic()
        scrape_ok(exp)
        worst = max(worst, time.monotonic() - started)
        scrapes += 1
    thread.join()
    print(f"16 MiB flood with blocks: {result}, scrapes={scrapes}, slowest scrape={worst:.3f}s")
    assert result["status"] == 204, result
    assert worst < 1.0, f"a scrape took {worst:.2f}s during the flood"
    samples = exp.wait_for(lambda s: metric(s, "iptv_stream_frames_total", stream="9") is not None, "stream 9")
    assert metric(samples, "iptv_progress_skipped_lines_total", via="push") == 0


def test_parser_is_linear_in_a_newline_flood() -> None:
    """The parse itself, without the receiver's 1 MiB bound: 4 MiB of newlines in one chunk, and split in two."""
    from exporter.sources.progress_blocks import BlockParser

    for chunks in ([b"\n" * (4 << 20)], [b"\n" * (2 << 20)] * 2, [b"x" * 5000, b"\n" * (4 << 20)]):
        parser = BlockParser()
        started = time.perf_counter()
        for chunk in chunks:
            assert parser.feed(chunk) == []
        took = time.perf_counter() - started
        assert took < 2.0, f"{took:.2f}s for {len(chunks)} chunks"  # quadratic: minutes
        assert parser.skipped == (1 if len(chunks[0]) == 5000 else 0)
