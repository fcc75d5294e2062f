"""Chaos: slow connections against descriptors (issue 15, item 7).

~1,000 loopback connections that send half a request head and then nothing, against the exporter run as a
real process under systemd's default soft limit of 1,024 descriptors: /metrics and the webhook must
still answer, the sampler must go on (it reads /proc and needs descriptors too), and the soft limit must
have been raised to the hard one when the hard one allows it.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.actions_support import actions_config, alert, notification, write_config, write_token
from tests.helpers import REPO, Exporter, Proc, metric, parse_metrics, wait_until

pytestmark = pytest.mark.slow

SLOW = 1200


def start(tmp: Path, nofile: str) -> tuple[Exporter, str]:
    """The exporter under ``prlimit --nofile=<soft>:<hard>`` (as systemd would start it)."""
    prlimit = shutil.which("prlimit")
    assert prlimit, "prlimit (util-linux) is needed"
    token = write_token(tmp / "token")
    config = write_config(tmp / "config.yml", actions_config(
        tmp, {"type": "signal", "signal": "TERM"}, streams=[{"id": "7", "name": "Seven"}], dry_run=True))
    exp = Exporter(config, tmp)
    argv = [prlimit, f"--nofile={nofile}", sys.executable, "-m", "exporter",
            f"--web.listen-address=127.0.0.1:{exp.port}", f"--config.file={config}"]
    exp.proc = Proc(argv, log=tmp / "exporter.log", cwd=REPO).start()
    wait_until(exp._ready, timeout=30, what="exporter ready")
    return exp, token


def slow_connections(port: int, n: int) -> Generator[list[socket.socket], None, None]:
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.settimeout(5)
            try:
                s.connect(("127.0.0.1", port))
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: slow\r\n")  # and never the blank line
            except OSError:
                s.close()  # refused or reset: the server defends itself
                continue
            socks.append(s)
        yield socks
    finally:
        for s in socks:
            s.close()


def exercise(exp: Exporter, token: str) -> dict[str, Any]:
    gen = slow_connections(exp.port, SLOW)
    socks = next(gen)
    try:
        assert len(socks) > 100  # the flood did get in
        # Fresh clients still get answers, each within a second.
        samples = {}
        for _ in range(3):
            started = time.monotonic()
            r = httpx.get(exp.url + "/metrics", timeout=5)
            assert r.status_code == 200 and time.monotonic() - started < 1.0
            samples = parse_metrics(r.text)
        hook = httpx.post(exp.url + "/hooks/alertmanager", json=notification(alert("7")),
                          headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert hook.status_code == 200, hook.text
        # The sampler goes on: new rounds, every source up (processes reads /proc/<pid>/stat).
        first = metric(samples, "iptv_exporter_last_sample_timestamp_seconds")
        later = exp.wait_for(lambda s: (metric(s, "iptv_exporter_last_sample_timestamp_seconds") or 0) > (first or 0)
                             + 1, "two more sampler rounds")
        assert metric(later, "iptv_exporter_source_up", source="processes") == 1
        assert exp.proc is not None
        fds = psutil.Process(exp.proc.pid).num_fds()
        return {"samples": later, "fds": fds, "kept": len(socks)}
    finally:
        gen.close()


def soft_hard(pid: int) -> tuple[int, int]:
    soft, hard = psutil.Process(pid).rlimit(psutil.RLIMIT_NOFILE)
    return soft, hard


def test_slow_connections_under_a_hard_limit_of_1024(tmp_path: Path) -> None:
    exp, token = start(tmp_path, "1024:1024")
    try:
        out = exercise(exp, token)
        assert exp.proc is not None
        assert soft_hard(exp.proc.pid) == (1024, 1024)
        print(json.dumps({"fds": out["fds"], "kept": out["kept"]}))
        assert out["fds"] < 1024 - 100  # the reserve for the sampler was never touched
        dropped = sum(v for (name, _), v in out["samples"].items()
                      if name == "iptv_exporter_http_connections_dropped_total")
        assert dropped > 0
    finally:
        exp.stop()


def test_soft_limit_is_raised_to_the_hard_one(tmp_path: Path) -> None:
    exp, token = start(tmp_path, "1024:8192")
    try:
        assert exp.proc is not None
        assert soft_hard(exp.proc.pid) == (8192, 8192)
        exercise(exp, token)
    finally:
        exp.stop()


def test_a_request_head_that_never_ends_is_closed(tmp_path: Path) -> None:
    exp, _ = start(tmp_path, "1024:1024")
    try:
        with socket.create_connection(("127.0.0.1", exp.port), timeout=30) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: slow\r\n")
            started = time.monotonic()
            assert s.recv(1024) == b""  # closed by the server, without an answer
            took = time.monotonic() - started
        assert 5 < took < 20, took  # the 10 s head deadline, on a loaded machine
        samples = exp.scrape()
        assert metric(samples, "iptv_exporter_http_connections_dropped_total", reason="header_timeout") == 1
        assert metric(samples, "iptv_exporter_http_connections_max") == 512
    finally:
        exp.stop()
