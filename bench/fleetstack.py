"""A fleet on loopback built from the shipped files: exporters with real ffmpeg streams, Prometheus (one, or an
HA pair with a ``replica`` label), Alertmanager (one, or a cluster pair), optionally remote_write to a store.

Only what a loopback run cannot share with production is changed: addresses (targets, Alertmanagers), absolute
rule paths, temporary storage. Scrape and evaluation intervals, ``for:`` durations, routes, group timings and
inhibitions are the shipped ones. alertmanager.yml is what ``iptv-exporter fleet`` generates from the targets
file, with one token per node. Used by ``bench/recovery.py``, ``bench/fleetseries.py`` and the fleet tests.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from bench.util import free_port, wait_until

REPO = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = REPO / "prometheus"
ALERTMANAGER_YML = REPO / "alertmanager" / "alertmanager.yml"
RESPAWN = Path(__file__).resolve().parent / "respawn.py"


def binary(name: str, *alternatives: str) -> str:
    for candidate in (name, *alternatives):
        found = shutil.which(candidate)
        if found:
            return found
    raise RuntimeError(f"{name} is not installed (Debian: apt-get install {name})")


def ffmpeg_argv(playlist: Path) -> list[str]:
    """A small real restream: a test pattern to HLS with 1 s segments (cheap on a shared 2-core machine)."""
    return [binary("ffmpeg"), "-hide_banner", "-loglevel", "warning", "-nostdin", "-y",
            "-re", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25",
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-pix_fmt", "yuv420p",
            "-f", "hls", "-hls_time", "1", "-hls_list_size", "6", "-hls_flags", "delete_segments+append_list",
            str(playlist)]


def spawn_ffmpeg(playlist: Path) -> subprocess.Popen[bytes]:
    """Start a stream's ffmpeg detached (its own session, output discarded), as a panel's restart does."""
    return subprocess.Popen(ffmpeg_argv(playlist), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def stream_pids(playlist: Path) -> list[int]:
    """The ffmpeg processes writing ``playlist`` (found by their command line, as the exporter finds them)."""
    import psutil

    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmdline = p.info.get("cmdline") or []
        if cmdline and str(playlist) in cmdline and "ffmpeg" in os.path.basename(cmdline[0]):
            found.append(p.pid)
    return found


def kill_streams(root: Path) -> None:
    """SIGKILL every ffmpeg whose playlist lies under ``root`` (restarts detach them from us)."""
    import psutil

    for p in psutil.process_iter(["cmdline"]):
        cmdline = p.info.get("cmdline") or []
        if cmdline and "ffmpeg" in os.path.basename(cmdline[0]) and any(str(root) in a for a in cmdline):
            with contextlib.suppress(psutil.Error):
                p.kill()


@dataclass
class Child:
    """A server process with its log file; stopped with SIGTERM, then SIGKILL."""

    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, cwd: Path | None = None) -> Child:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         cwd=cwd, start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no log: {exc})"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def http_json(url: str, *, token: str | None = None, data: bytes | None = None, timeout: float = 10.0) -> Any:
    request = urllib.request.Request(url, data=data)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback URLs we built
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:  # an error response holds its connection until closed
            body = exc.read().decode(errors="replace")
        raise RuntimeError(f"{url}: HTTP {exc.code}: {body[:500]}") from None


def http_status(url: str, *, token: str | None, data: bytes) -> int:
    """The status code of a POST (4xx and 5xx included)."""
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback URLs we built
            return int(response.status)
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code)


def query(base: str, promql: str, at: float | None = None) -> list[dict[str, Any]]:
    """An instant query against the Prometheus HTTP API (Prometheus or a compatible store)."""
    params = {"query": promql}
    if at is not None:
        params["time"] = f"{at:.3f}"
    body = http_json(f"{base}/api/v1/query?{urllib.parse.urlencode(params)}")
    if body.get("status") != "success":
        raise RuntimeError(f"query {promql!r} failed: {body}")
    return list(body["data"]["result"])


@dataclass(frozen=True)
class NodeSpec:
    name: str
    """The node's name in the targets (and so in alerts and Alertmanager routes)."""
    streams: Sequence[str]
    config_node: str | None = None
    """The exporter config's ``node:``; None: the same as ``name`` (a different value is the misnamed node)."""


@dataclass
class Node:
    spec: NodeSpec
    dir: Path
    port: int
    token: str = ""
    exporter: Child | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def playlist(self, stream: str) -> Path:
        return self.dir / "streams" / f"stream_{stream}.m3u8"

    def journal(self) -> dict[str, Any]:
        return dict(http_json(f"{self.url}/api/actions?limit=1000", token=self.token))


@dataclass
class FleetStack:
    """Start with ``with FleetStack(root, nodes) as fleet:``; everything stops and is killed on exit."""

    root: Path
    specs: Sequence[NodeSpec]
    prometheus_replicas: int = 1
    alertmanagers: int = 1
    remote_write: str | None = None
    """A remote_write URL added to every Prometheus (e.g. VictoriaMetrics' /api/v1/write)."""
    exporter_extra: Mapping[str, Any] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    prometheus_urls: list[str] = field(default_factory=list)
    alertmanager_urls: list[str] = field(default_factory=list)
    _children: list[Child] = field(default_factory=list)
    _streams: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __enter__(self) -> FleetStack:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for child in reversed(self._children):
            child.stop()
        kill_streams(self.root)  # the ones restarts started, too
        for proc in self._streams:
            proc.wait(10)

    def _start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.nodes = [Node(spec, self.root / spec.name, free_port()) for spec in self.specs]
        targets = self.root / "targets" / "iptv.yml"
        targets.parent.mkdir(parents=True, exist_ok=True)
        targets.write_text(yaml.safe_dump([{"targets": [n.address], "labels": {"node": n.spec.name}}
                                           for n in self.nodes]))
        am_yml = self._generate_alertmanager(targets)
        for node in self.nodes:
            self._start_node(node)
        am_ports = [(free_port(), free_port()) for _ in range(self.alertmanagers)]
        for i, (port, cluster_port) in enumerate(am_ports):
            self._start_alertmanager(i, am_yml, port, cluster_port, am_ports)
        for i in range(self.prometheus_replicas):
            self._start_prometheus(i, targets, [f"127.0.0.1:{p}" for p, _ in am_ports])
        for node in self.nodes:
            wait_until(partial(http_json, f"{node.url}/api/actions?limit=1", token=node.token), 30,
                       f"exporter {node.spec.name} answering")

    def _generate_alertmanager(self, targets: Path) -> Path:
        """alertmanager.yml: the shipped file with its fleet blocks generated by ``iptv-exporter fleet``."""
        am_dir = self.root / "alertmanager"
        am_dir.mkdir(parents=True, exist_ok=True)
        am_yml = am_dir / "alertmanager.yml"
        shutil.copy(ALERTMANAGER_YML, am_yml)
        tokens = am_dir / "tokens"
        done = subprocess.run([sys.executable, "-m", "exporter", "fleet", "--targets", str(targets),
                               "--alertmanager.config", str(am_yml), "--tokens.dir", str(tokens),
                               "--alertmanager.credentials-dir", str(tokens)],
                              capture_output=True, text=True, cwd=REPO, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"iptv-exporter fleet failed: {done.stderr}")
        for node in self.nodes:
            node.dir.mkdir(parents=True, exist_ok=True)
            copy_to = node.dir / "webhook.token"  # "copy <node>.token to the node"
            shutil.copy(tokens / f"{node.spec.name}.token", copy_to)
            copy_to.chmod(0o600)
            node.token = copy_to.read_text().strip()
        return am_yml

    def _start_node(self, node: Node) -> None:
        (node.dir / "streams").mkdir(parents=True, exist_ok=True)
        static = []
        for stream in node.spec.streams:
            playlist = node.playlist(stream)
            self._streams.append(spawn_ffmpeg(playlist))
            static.append({"id": stream, "name": f"Channel {stream}", "cmdline": re.escape(str(playlist)),
                           "playlist": str(playlist)})
        config: dict[str, Any] = {
            "node": node.spec.config_node or node.spec.name,
            "sample_interval": "5s",  # as deploy/iptv-exporter.yml ships
            "streams": {"discover": [], "static": static},
            "viewers": {"ports": [], "access_log": None},
            "actions": {
                "token_file": str(node.dir / "webhook.token"),
                "journal": str(node.dir / "actions.sqlite"),
                "restart": {"type": "command", "argv": [sys.executable, str(RESPAWN), "{stream}",
                                                        str(node.dir / "streams")], "timeout": "10s"},
            },
        }
        config.update(copy.deepcopy(dict(self.exporter_extra)))
        (node.dir / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        node.exporter = self._child([sys.executable, "-m", "exporter", f"--config.file={node.dir / 'config.yml'}",
                                     f"--web.listen-address={node.address}"], node.dir / "exporter.log", cwd=REPO)

    def _child(self, argv: list[str], log: Path, cwd: Path | None = None) -> Child:
        child = Child(argv, log).start(cwd)
        self._children.append(child)
        return child

    def _start_alertmanager(self, i: int, config: Path, port: int, cluster_port: int,
                            all_ports: Sequence[tuple[int, int]]) -> None:
        home = self.root / f"alertmanager-{i}"
        argv = [binary("prometheus-alertmanager", "alertmanager"), f"--config.file={config}",
                f"--storage.path={home / 'data'}", f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
        if len(all_ports) > 1:
            argv += [f"--cluster.listen-address=127.0.0.1:{cluster_port}",
                     f"--cluster.advertise-address=127.0.0.1:{cluster_port}"]
            argv += [f"--cluster.peer=127.0.0.1:{c}" for p, c in all_ports if c != cluster_port]
        else:
            argv.append("--cluster.listen-address=")
        child = self._child(argv, home / "alertmanager.log")
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _ready(child, url), 30, f"alertmanager {i} ready")
        self.alertmanager_urls.append(url)

    def prometheus_config(self, targets: Path, alertmanagers: Sequence[str], replica: str | None) -> dict[str, Any]:
        """The shipped prometheus.yml, pointed at this fleet; an HA replica as docs/scaling.md describes."""
        config: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
        config["rule_files"] = [str(p) for p in sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))]
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]}
        jobs = []
        for job in config["scrape_configs"]:
            if job["job_name"] == "iptv":
                job["file_sd_configs"] = [{"files": [str(targets)], "refresh_interval": "1m"}]
                jobs.append(job)
        config["scrape_configs"] = jobs
        if replica is not None:
            config["global"]["external_labels"] = {"replica": replica}
            config["alerting"]["alert_relabel_configs"] = [{"regex": "replica", "action": "labeldrop"}]
        if self.remote_write is not None:
            config["remote_write"] = [remote_write(self.remote_write, ha=replica is not None)]
        return config

    def _start_prometheus(self, i: int, targets: Path, alertmanagers: Sequence[str]) -> None:
        home = self.root / f"prometheus-{i}"
        home.mkdir(parents=True, exist_ok=True)
        replica = f"prom-{'ab'[i]}" if self.prometheus_replicas > 1 else None
        path = home / "prometheus.yml"
        path.write_text(yaml.safe_dump(self.prometheus_config(targets, alertmanagers, replica), sort_keys=False))
        port = free_port()
        child = self._child([binary("prometheus"), f"--config.file={path}", f"--storage.tsdb.path={home / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"], home / "prometheus.log")
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _ready(child, url), 60, f"prometheus {i} ready")
        self.prometheus_urls.append(url)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.spec.name == name)

    def wait_scraped(self, timeout: float = 60.0) -> None:
        """Until every Prometheus has scraped every node with every stream up."""
        want = sum(len(n.spec.streams) for n in self.nodes)

        def all_up(url: str) -> bool:
            return len(query(url, "iptv_stream_up == 1")) == want

        for url in self.prometheus_urls:
            wait_until(partial(all_up, url), timeout, f"{url}: all {want} streams up")


def remote_write(url: str, *, ha: bool) -> dict[str, Any]:
    """A remote_write entry as docs/scaling.md gives it for VictoriaMetrics: an HA pair drops its ``replica``
    label on the way (external labels are added before write relabelling), so both replicas write the same
    series and VictoriaMetrics' ``-dedup.minScrapeInterval`` keeps one sample per interval."""
    entry: dict[str, Any] = {"url": url, "queue_config": {"batch_send_deadline": "1s"}}
    if ha:
        entry["write_relabel_configs"] = [{"action": "labeldrop", "regex": "replica"}]
    return entry


def _ready(child: Child, url: str) -> bool:
    if not child.alive():
        raise RuntimeError(f"{child.argv[0]} exited:\n{child.tail()}")
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:  # noqa: S310 - loopback
            return int(response.status) == 200
    except urllib.error.HTTPError as exc:
        with exc:  # 503 while starting
            return False
    except OSError:
        return False
