"""Real-part helpers shared by the tests: free ports, deadline waits, ffmpeg streams, the exporter process.

Import from tests (``from tests.helpers import ...``); fixtures wrapping these live in tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

T = TypeVar("T")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
"""Scraped samples: ``{(sample name, sorted label pairs): value}``."""
REPO = Path(__file__).resolve().parent.parent


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threaded HTTP server on a free loopback port for the block; yields its ``127.0.0.1:<port>``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def wait_until(check: Callable[[], T | None], timeout: float = 20.0, interval: float = 0.1, what: str = "") -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` and the last value at the deadline."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except (httpx.HTTPError, OSError, KeyError, ValueError) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}: last={last!r}")
        time.sleep(interval)


VENV_BIN = Path(sys.executable).parent
"""The venv's bin (not resolved: a venv's python is a symlink): where ``make venv`` installs the Python-packaged
tools (hadolint, compose, ruff, mypy). A fresh shell does not have it on PATH, so tools are looked up here first."""


def tool_path() -> str:
    """The search path for the tests' tools: the venv's bin, then PATH, then the sbin directories (nginx)."""
    return os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])


def require_binary(name: str) -> str:
    """Path of a real binary the test needs; .ci/run installs them, so a missing one is a failure, not a skip."""
    path = shutil.which(name, path=tool_path())
    if path is None:
        raise AssertionError(f"{name} is not installed: run .ci/run (or apt-get install it)")
    return path


def ffmpeg_hls_argv(playlist: Path, *, extra_input: Sequence[str] = (), progress: str | None = None,
                    source: str | None = None, segment_time: int = 1) -> list[str]:
    """A tiny real restream: test pattern (or ``source``) to HLS, cheap enough for a shared 2-core box."""
    argv = [require_binary("ffmpeg"), "-hide_banner", "-loglevel", "warning", "-nostdin", "-y"]
    if progress:
        argv += ["-progress", progress, "-stats_period", "0.5"]
    if source is None:
        argv += ["-re", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25"]
    else:
        argv += [*extra_input, "-i", source]
    argv += [
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-pix_fmt", "yuv420p",
        "-f", "hls", "-hls_time", str(segment_time), "-hls_list_size", "6",
        "-hls_flags", "delete_segments+append_list", str(playlist),
    ]
    return argv


@dataclass
class Proc:
    """A child process that is always reaped: terminate(), then kill() after a grace period."""

    argv: list[str]
    env: dict[str, str] | None = None
    cwd: Path | None = None
    log: Path | None = None
    popen: subprocess.Popen[bytes] = field(init=False)

    def start(self) -> Proc:
        if self.log is None:
            self.popen = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            return self
        with open(self.log, "ab") as out:  # the child keeps its own copy of the descriptor
            self.popen = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=out,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.popen.pid, sig)

    def stop(self, grace: float = 5.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""


def parse_metrics(text: str) -> Samples:
    """Exposition text to ``{(sample name, sorted labels): value}``."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def metric(samples: Samples, metric_name: str, /, **labels: str) -> float | None:
    """The value of one sample whose labels include ``labels`` (None if absent)."""
    want = set(labels.items())
    for (n, lbls), v in samples.items():
        if n == metric_name and want <= set(lbls):
            return v
    return None


@dataclass
class Exporter:
    """The exporter as a real process (``python -m exporter``) on a free loopback port."""

    config: Path | None
    tmp: Path
    args: Sequence[str] = ()
    port: int = field(default_factory=free_port)
    proc: Proc | None = None
    scheme: str = "http"
    client: dict[str, object] = field(default_factory=dict)
    """Extra httpx arguments for every request the helper makes (``auth``, ``verify``)."""

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self, wait_ready: bool = True) -> Exporter:
        argv = [sys.executable, "-m", "exporter", f"--web.listen-address=127.0.0.1:{self.port}", *self.args]
        if self.config is not None:
            argv.append(f"--config.file={self.config}")
        self.proc = Proc(argv, log=self.tmp / f"exporter-{self.port}.log", cwd=REPO).start()
        if wait_ready:
            wait_until(self._ready, timeout=30, what=f"exporter ready on {self.url}")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and not self.proc.alive():
            raise AssertionError(f"exporter exited: {self.proc.output()}")
        return httpx.get(self.url + "/-/ready", timeout=2, **self.client).status_code == 200  # type: ignore[arg-type]

    def scrape(self) -> Samples:
        r = httpx.get(self.url + "/metrics", timeout=5, **self.client)  # type: ignore[arg-type]
        r.raise_for_status()
        return parse_metrics(r.text)

    def wait_for(
        self, predicate: Callable[[Samples], object],
        what: str, timeout: float = 20.0,
    ) -> Samples:
        """Scrape until ``predicate(samples)`` holds; return those samples."""

        def check() -> Samples | None:
            samples = self.scrape()
            return samples if predicate(samples) else None

        return wait_until(check, timeout=timeout, what=what)

    def metrics_text(self) -> str:
        return httpx.get(self.url + "/metrics", timeout=5).text

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def log_text(self) -> str:
        return self.proc.output() if self.proc else ""
