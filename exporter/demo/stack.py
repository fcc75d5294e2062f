"""Starts and stops the demo's moving parts; the demo and the end-to-end test both run through it.

A :class:`Stack` prepares the data directory (configs, token, GeoIP databases, stream command lines),
then starts, each in its own process group: the streams (detached, through ``streamctl``), the origin
(nginx or the Python one), the viewers and, when installed, Prometheus and Alertmanager with the
repository's rules and routes. The exporter is not part of it: the demo runs it in-process, the
end-to-end test as its own process, both from the config the stack wrote.
"""

from __future__ import annotations

import logging
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from exporter.demo import alerting, geodb, origin, streams, viewers, workload
from exporter.demo.config import exporter_config, write_exporter_config, write_token
from exporter.demo.layout import Layout, port_or_free
from exporter.demo.procs import Child, sweep
from exporter.demo.streams import DEFAULT_STREAMS, StreamSpec

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0


class StackError(RuntimeError):
    """A part of the demo did not start; the message names it and ends with its log."""


@dataclass(frozen=True, slots=True)
class Options:
    root: Path
    exporter_port: int
    node: str = "demo"
    streams: tuple[StreamSpec, ...] = DEFAULT_STREAMS
    ffmpeg: str | None = field(default_factory=lambda: shutil.which("ffmpeg"))
    """None: the stand-in writes the streams."""
    nginx: str | None = field(default_factory=lambda: shutil.which("nginx") or _sbin("nginx"))
    """None: the Python origin serves them."""
    monitoring: alerting.Binaries | None = field(default_factory=alerting.find_binaries)
    """None: no Prometheus and Alertmanager (the demo's watchdog restarts streams instead)."""
    viewers: bool = True
    timings: alerting.Timings = field(default_factory=alerting.Timings)
    sample_interval: str = "2s"
    cooldown: str = "30s"
    origin_port: int = 8080
    prometheus_port: int = 9090
    alertmanager_port: int = 9093


def _sbin(name: str) -> str | None:
    path = Path("/usr/sbin") / name
    return str(path) if path.is_file() else None


def _wait(check: Callable[[], bool], child: Child, what: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise StackError(f"{what} exited ({child.popen.returncode if child.popen else '?'}): {child.log_tail()}")
        try:
            if check():
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.1)
    raise StackError(f"{what} not ready after {timeout:.0f}s: {child.log_tail()}")


def _listening(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def _ready(url: str) -> bool:
    return httpx.get(url, timeout=2).status_code == 200


class Stack:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.layout = Layout(options.root)
        self.origin_port = port_or_free(options.origin_port)
        self.prometheus_port = port_or_free(options.prometheus_port) if options.monitoring else 0
        self.alertmanager_port = port_or_free(options.alertmanager_port) if options.monitoring else 0
        self.children: list[Child] = []

    @property
    def stream_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.options.streams)

    @property
    def exporter_url(self) -> str:
        return f"http://127.0.0.1:{self.options.exporter_port}"

    @property
    def origin_url(self) -> str:
        return f"http://127.0.0.1:{self.origin_port}"

    @property
    def prometheus_url(self) -> str | None:
        return f"http://127.0.0.1:{self.prometheus_port}" if self.options.monitoring else None

    @property
    def alertmanager_url(self) -> str | None:
        return f"http://127.0.0.1:{self.alertmanager_port}" if self.options.monitoring else None

    # -- preparing -----------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Write everything the parts read: no process is started here."""
        o, layout = self.options, self.layout.create()
        write_token(layout)
        geodb.write_city_db(layout.city_db, workload.networks())
        geodb.write_asn_db(layout.asn_db, workload.networks())
        streams.write_specs(layout, {s.id: streams.stream_argv(layout, s, o.ffmpeg) for s in o.streams})
        (layout.etc / "streams.csv").write_text("".join(f"{s.id},{s.name}\n" for s in o.streams))
        origin.write_lines(layout)
        viewers.write_plan(layout, workload.plan(self.stream_ids))
        layout.access_log.touch()
        write_exporter_config(layout, exporter_config(
            layout, o.streams, node=o.node, origin_port=self.origin_port, sample_interval=o.sample_interval,
            cooldown=o.cooldown,
        ))
        if o.monitoring:
            alerting.prometheus_yml(layout, node=o.node, exporter=f"127.0.0.1:{o.exporter_port}",
                                    alertmanager=f"127.0.0.1:{self.alertmanager_port}", timings=o.timings)
            alerting.alertmanager_yml(layout, node=o.node, hook_url=f"{self.exporter_url}/hooks/alertmanager",
                                      timings=o.timings)

    # -- starting ------------------------------------------------------------------------------------

    def _child(self, name: str, argv: list[str]) -> Child:
        child = Child(name, argv, self.layout.logs / f"{name}.log").start()
        self.children.append(child)
        return child

    def start_streams(self, timeout: float = START_TIMEOUT) -> dict[str, int]:
        """Start every stream and wait for their first playlists (the first segment takes a few seconds)."""
        pids = {s: streams.start(self.layout, s) for s in self.stream_ids}
        deadline = time.monotonic() + timeout
        for s in self.stream_ids:
            while not self.layout.playlist(s).exists():
                if time.monotonic() > deadline:
                    log_tail = self.layout.stream_log(s).read_text(errors="replace")[-2000:]
                    raise StackError(f"stream {s} wrote no playlist in {timeout:.0f}s: {log_tail}")
                time.sleep(0.1)
        return pids

    def start_origin(self) -> Child:
        layout = self.layout
        if self.options.nginx:
            conf = layout.etc / "nginx.conf"
            conf.write_text(origin.nginx_conf(layout, self.origin_port))
            child = self._child("nginx", origin.nginx_argv(self.options.nginx, layout, conf))
        else:
            child = self._child("origin", origin.python_origin_argv(layout, self.origin_port))
        _wait(lambda: _listening(self.origin_port), child, f"origin on port {self.origin_port}")
        return child

    def start_viewers(self) -> Child:
        return self._child("viewers", viewers.viewers_argv(self.layout, self.origin_url))

    def start_alerting(self) -> None:
        binaries, layout = self.options.monitoring, self.layout
        if binaries is None:
            return
        am = self._child("alertmanager", alerting.alertmanager_argv(
            binaries.alertmanager, layout, layout.etc / "alertmanager.yml", self.alertmanager_port))
        prom = self._child("prometheus", alerting.prometheus_argv(
            binaries.prometheus, layout, layout.etc / "prometheus.yml", self.prometheus_port))
        _wait(lambda: _ready(f"{self.alertmanager_url}/-/ready"), am, "alertmanager")
        _wait(lambda: _ready(f"{self.prometheus_url}/-/ready"), prom, "prometheus")

    def start(self) -> None:
        """Everything but the exporter, in the order the data flows; on failure what started is stopped."""
        try:
            self.prepare()
            self.start_streams()
            self.start_origin()
            if self.options.viewers:
                self.start_viewers()
            self.start_alerting()
        except BaseException:
            self.stop()
            raise

    # -- stopping ------------------------------------------------------------------------------------

    def stop(self) -> int:
        """Stop everything, newest first, then sweep; how many stray processes the sweep had to kill."""
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
        for stream in self.stream_ids:
            try:
                streams.stop(self.layout, stream, grace=3.0)
            except OSError as exc:
                log.warning("stopping stream failed stream=%s error=%s", stream, exc)
        return sweep(self.layout.root)

    # -- telling -------------------------------------------------------------------------------------

    def summary(self) -> str:
        o, layout = self.options, self.layout
        token = layout.token_file
        lines = [
            "iptv-exporter demo: a live IPTV workload on loopback",
            f"  data directory   {layout.root}",
            f"  exporter         {self.exporter_url}/  (metrics: {self.exporter_url}/metrics)",
            f"  streams          {len(o.streams)} x {'ffmpeg ' + o.ffmpeg if o.ffmpeg else 'built-in stand-in'}"
            f" -> {layout.streams}/stream_<id>.m3u8",
            f"  origin           {self.origin_url}/live/<user>/<pass>/<id>.m3u8"
            f"  ({'nginx' if o.nginx else 'Python origin'}; log {layout.access_log})",
        ]
        if o.viewers:
            lines.append(f"  viewers          {len(workload.plan(self.stream_ids))} players from 127.x addresses"
                         f" in {len(workload.CITIES)} cities (GeoIP: {layout.city_db.name}, {layout.asn_db.name})")
        if o.monitoring:
            lines += [
                f"  prometheus       {self.prometheus_url}/alerts  (repository rules, for: capped at "
                f"{o.timings.max_for})",
                f"  alertmanager     {self.alertmanager_url}/  (restart alerts -> "
                f"{self.exporter_url}/hooks/alertmanager)",
            ]
        bearer = f'"Authorization: Bearer $(cat {token})"'
        lines.append(f"  action journal   curl -H {bearer} {self.exporter_url}/api/actions")
        lines.append(f"  exporter config  {layout.exporter_config}")
        return "\n".join(lines)
