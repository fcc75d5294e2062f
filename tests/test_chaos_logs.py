"""Chaos: what a log source can do to the exporter (issue 15, items 11 and 12).

Against a running exporter with real files: no line content reaches the exporter's own log (a swapped-in
symlink to a shadow-like file, passwords in malformed URLs), a copytruncate that regrows past the old
offset within one round loses no line, and a 200 MB line without a newline costs no memory.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.helpers import Exporter, Samples, metric

pytestmark = pytest.mark.slow

NOBODY = 65534
SHADOW_HASH = "$6$Xq9saltsalt$Zk3vJ8rW1tQ0aYbC2dE4fG6hI8jK0lM2nO4pQ6rS8tU0vW2xY4zA6bC8dE0fG2hI4jK6lM8nO0pQ2rS4tU6v"


def line(i: int, path: str = "/streams/stream_1_{i}.ts") -> str:
    return (f'127.0.0.{1 + i % 200} - - [06/Dec/2026:07:{i // 60 % 60:02d}:{i % 60:02d} +0000] '
            f'"GET {path.format(i=i)} HTTP/1.1" 200 1000 "-" "agent-{i}"\n')


def start(exporter: Callable[..., Exporter], tmp: Path, access: Path, *, debug: bool = False) -> Exporter:
    config = tmp / "config.yml"
    config.write_text(f"""
sample_interval: 1s
streams: {{discover: [], static: [{{id: "1", name: One}}]}}
viewers:
  ports: []
  access_log: {{path: {access}, preset: panelx, from_start: true}}
""")
    return exporter(config, args=("--log.level=debug",) if debug else ())


def lines_total(exp: Exporter, n: int, what: str) -> Samples:
    return exp.wait_for(lambda s: metric(s, "iptv_accesslog_lines_total") == n, what)


def test_no_secret_from_a_log_source_reaches_the_debug_log(tmp_path: Path, exporter: Callable[..., Exporter]) -> None:
    access = tmp_path / "access.log"
    access.write_text(line(0) + 'garbage "GET /live/dave/Zp4ssD"\n' + 'junk /live/mo/PwMMM?/7.ts\n')
    exp = start(exporter, tmp_path, access, debug=True)
    samples = lines_total(exp, 3, "three lines read")
    assert metric(samples, "iptv_accesslog_skipped_lines_total") == 2

    # The log is swapped for a symlink, made by another user, to a root-only shadow-like file.
    shadow = tmp_path / "shadow"
    shadow.write_text(f"root:{SHADOW_HASH}:19000:0:99999:7:::\n" * 3)
    shadow.chmod(0o600)
    access.unlink()
    access.symlink_to(shadow)
    os.lchown(access, NOBODY, NOBODY)
    down = exp.wait_for(lambda s: metric(s, "iptv_exporter_source_up", source="accesslog") == 0,
                        "access log source down on the unsafe symlink")
    assert metric(down, "iptv_accesslog_lines_total") is None  # a failed source exports nothing of its own
    log = exp.log_text()
    assert "access log lines skipped (unparsable) count=" in log  # the path that used to print the line ran
    assert "not followed" in log
    for secret in ("Zp4ssD", "PwMMM", SHADOW_HASH, SHADOW_HASH[:20], "$6$"):
        assert secret not in log, secret

    # The same swap by the owner of the target is a legitimate move: followed.
    mine = tmp_path / "mine.log"
    mine.write_text(line(5) + line(6))
    os.chown(mine, NOBODY, NOBODY)
    access.unlink()
    access.symlink_to(mine)
    os.lchown(access, NOBODY, NOBODY)
    up = exp.wait_for(lambda s: metric(s, "iptv_exporter_source_up", source="accesslog") == 1, "source back up")
    lines_total(exp, 5, "the owner's own file read")
    assert up


def test_copytruncate_regrown_past_the_offset_loses_no_line(tmp_path: Path, exporter: Callable[..., Exporter]) -> None:
    access = tmp_path / "access.log"
    access.write_text("".join(line(i) for i in range(100)))
    exp = start(exporter, tmp_path, access)
    lines_total(exp, 100, "the first 100 lines")
    # copytruncate, then more lines than before, all within one sample interval.
    with access.open("r+") as fh:
        fh.truncate(0)
        fh.write("".join(line(i) for i in range(100, 300)))
    samples = lines_total(exp, 300, "every line of the regrown file")
    assert metric(samples, "iptv_accesslog_rotations_total") == 1
    time.sleep(2.5)  # two more rounds: nothing counted twice
    assert metric(exp.scrape(), "iptv_accesslog_lines_total") == 300


def test_a_200mb_line_without_newline_costs_no_memory(tmp_path: Path, exporter: Callable[..., Exporter]) -> None:
    access = tmp_path / "access.log"
    access.write_text(line(0))
    exp = start(exporter, tmp_path, access)
    lines_total(exp, 1, "the first line")
    assert exp.proc is not None
    proc = psutil.Process(exp.proc.pid)
    before = proc.memory_info().rss
    with access.open("ab") as fh:
        block = b"x" * (1 << 20)
        for _ in range(200):
            fh.write(block)
    peak = before
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        peak = max(peak, proc.memory_info().rss)
        if (metric(exp.scrape(), "iptv_accesslog_overlong_lines_total") or 0) >= 1 and proc.cpu_percent(0.5) < 20:
            break
        time.sleep(0.2)
    with access.open("ab") as fh:
        fh.write(b"\n" + line(1).encode())
    samples = lines_total(exp, 2, "the line after the long one")
    peak = max(peak, proc.memory_info().rss)
    print(f"rss before={before >> 20} MiB peak={peak >> 20} MiB")
    assert metric(samples, "iptv_accesslog_overlong_lines_total") == 1
    assert peak - before < 64 << 20, f"RSS grew by {(peak - before) >> 20} MiB"
    assert metric(samples, "iptv_exporter_source_up", source="accesslog") == 1
