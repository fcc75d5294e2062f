"""Helpers for the actions tests: configs, webhook payloads, a real Alertmanager, process clean-up."""

from __future__ import annotations

import json
import re
import secrets
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml
from starlette.testclient import TestClient

from exporter.actions import ActionsComponent
from exporter.config import parse_config
from exporter.runtime import Runtime, build_runtime
from exporter.web.app import create_app
from tests.helpers import Proc, free_port, require_binary, wait_until

TESTS = Path(__file__).resolve().parent
RECORD = TESTS / "actions_record.py"
SPAWN = TESTS / "actions_spawn.py"
NODE = "edge-1"


def write_token(path: Path, token: str | None = None) -> str:
    token = token or secrets.token_hex(16)
    path.write_text(token + "\n")
    return token


def rfc3339(ts: float | None = None) -> str:
    return datetime.fromtimestamp(ts if ts is not None else time.time(), UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def alert(stream: str, *, node: str = NODE, action: str = "restart", status: str = "firing",
          fingerprint: str | None = None, starts_at: str | None = None, **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "IPTVStreamDown", "action": action, "node": node, "stream": stream, **labels},
        "annotations": {"summary": f"Stream {stream} is down"},
        "startsAt": starts_at or rfc3339(),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": fingerprint or secrets.token_hex(8),
    }


def notification(*alerts: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved", "receiver": f"restart-{NODE}",
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093", "alerts": list(alerts), **extra,
    }


QUIET_VIEWERS: dict[str, Any] = {"ports": [], "access_log": None}
"""The actions tests need no viewers: no host nginx log, no socket sampling (other tests' load stays out)."""


def actions_config(tmp: Path, restart: Mapping[str, Any], *, streams: Sequence[Mapping[str, Any]],
                   **actions: Any) -> dict[str, Any]:
    """A config that sees only the test's own processes (no discovery: other tests' ffmpegs stay out)."""
    return {
        "node": NODE,
        "sample_interval": "500ms",
        "streams": {"discover": [], "static": list(streams)},
        "viewers": QUIET_VIEWERS,
        "actions": {"token_file": str(tmp / "token"), "journal": str(tmp / "journal.sqlite"),
                    "verify_timeout": "15s", "restart": dict(restart), **actions},
    }


def write_config(path: Path, data: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(data), sort_keys=False))
    return path


def playlist_stream(tmp: Path, stream: str, name: str = "Test stream") -> dict[str, Any]:
    """A static stream matched by the exact playlist path of this test (unique per tmp dir)."""
    return {"id": stream, "name": name, "cmdline": re.escape(str(tmp / f"act_{stream}.m3u8")) + r"(\s|$)"}


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def kill_matching(needle: str) -> None:
    """Kill every process whose command line mentions ``needle`` (ffmpegs that a restart detached)."""
    victims = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(needle in arg for arg in proc.info["cmdline"] or ()):
                proc.kill()
                victims.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    psutil.wait_procs(victims, timeout=5)


def journal(url: str, token: str, **params: str) -> dict[str, Any]:
    r = httpx.get(url + "/api/actions", params=params, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]


def restart_through_webhook(url: str, token: str, stream: str, timeout: float = 60) -> dict[str, Any]:
    """Post a firing restart alert for ``stream`` as Alertmanager would; the journal's newest action once it
    has a result."""
    r = httpx.post(url + "/hooks/alertmanager", json=notification(alert(stream)),
                   headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200, r.text

    def done() -> dict[str, Any] | None:
        actions = journal(url, token)["actions"]
        return actions[0] if actions and actions[0]["result"] is not None else None

    return wait_until(done, timeout=timeout, what=f"the result of {stream}'s restart")


@dataclass
class Alertmanager:
    """A real Alertmanager (Debian's prometheus-alertmanager) on loopback, alone or in a cluster."""

    tmp: Path
    config: str
    peers: Sequence[str] = ()
    cluster: bool = False
    args: Sequence[str] = ()
    port: int = field(default_factory=free_port)
    cluster_port: int = field(default_factory=free_port)
    proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cluster_address(self) -> str:
        return f"127.0.0.1:{self.cluster_port}"

    def start(self) -> Alertmanager:
        home = self.tmp / f"am-{self.port}"
        home.mkdir()
        (home / "alertmanager.yml").write_text(self.config)
        argv = [require_binary("prometheus-alertmanager"), f"--config.file={home / 'alertmanager.yml'}",
                f"--storage.path={home / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"]
        if self.cluster:
            argv += [f"--cluster.listen-address={self.cluster_address}",
                     f"--cluster.advertise-address={self.cluster_address}",
                     *(f"--cluster.peer={p}" for p in self.peers)]
        else:
            argv.append("--cluster.listen-address=")
        self.proc = Proc([*argv, *self.args], log=home / "alertmanager.log").start()
        wait_until(self._ready, timeout=20, what=f"alertmanager ready on {self.url}")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and not self.proc.alive():
            raise AssertionError(f"alertmanager exited: {self.proc.output()}")
        return httpx.get(self.url + "/-/ready", timeout=2).status_code == 200

    def post(self, *alerts: Mapping[str, Any]) -> None:
        body = [{k: v for k, v in a.items() if k in {"labels", "annotations", "startsAt", "generatorURL"}}
                for a in alerts]
        httpx.post(self.url + "/api/v2/alerts", json=body, timeout=5).raise_for_status()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


def alertmanagers(tmp: Path, config: str, count: int, args: Sequence[str] = ()) -> Iterator[Alertmanager]:
    """Start ``count`` Alertmanagers; more than one form a cluster (each peers with the first)."""
    first = Alertmanager(tmp, config, cluster=count > 1, args=args)
    yield first.start()
    for _ in range(count - 1):
        yield Alertmanager(tmp, config, peers=[first.cluster_address], cluster=True, args=args).start()


PYTHON = sys.executable


@contextmanager
def running(config: Mapping[str, Any]) -> Iterator[tuple[TestClient, Runtime, ActionsComponent]]:
    """The real app in-process (real sampler loop, worker and runners) behind Starlette's TestClient."""
    rt = build_runtime(parse_config(dict(config)))
    component = next(c for c in rt.components if isinstance(c, ActionsComponent))
    app = create_app(rt.sampler, rt.registry, components=rt.components, links=rt.links)
    with TestClient(app) as client:
        yield client, rt, component
