"""The issue's "done when", on loopback: three nodes, an HA pair of Prometheus and of Alertmanager, built only
from the shipped files plus the config `iptv-exporter fleet` generates (bench/fleetstack.py).

A killed stream is restarted on its node exactly once; a node whose exporter calls itself by another name
raises IPTVExporterNodeMismatch and, when its stream dies, IPTVRestartRefused instead of silence; one node's
token opens no other node's webhook. The recovery time itself is measured by ``python -m bench --only recovery``.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.fleetstack import FleetStack, NodeSpec, http_status, query, stream_pids
from bench.recovery import kill_and_wait
from tests.helpers import require_binary, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetStack]:
    for name in ("prometheus", "prometheus-alertmanager", "ffmpeg"):
        require_binary(name)
    specs = [NodeSpec("edge-1", ["11"]), NodeSpec("edge-2", ["21"]),
             NodeSpec("edge-3", ["31"], config_node="edge3")]  # the typo
    with FleetStack(tmp_path_factory.mktemp("fleet"), specs, prometheus_replicas=2, alertmanagers=2) as stack:
        stack.wait_scraped(timeout=90)
        yield stack


def _firing(fleet: FleetStack, alertname: str) -> list[dict[str, str]]:
    return [r["metric"] for r in query(fleet.prometheus_urls[0],
                                       f'ALERTS{{alertname="{alertname}",alertstate="firing"}}')]


def test_a_killed_stream_is_restarted_once_on_its_node(fleet: FleetStack) -> None:
    node = fleet.node("edge-1")
    recovery = kill_and_wait(fleet, node, "11", timeout=120)
    assert recovery.actions == 1, recovery
    assert 0 < recovery.firing <= recovery.webhook <= recovery.verified < 90, recovery
    for other in ("edge-2", "edge-3"):
        assert not [a for a in fleet.node(other).journal()["actions"]], f"{other} acted on edge-1's alert"
    # After the restart no stall alert, not even pending, on either Prometheus.
    for prom in fleet.prometheus_urls:
        assert query(prom, 'count_over_time(ALERTS{alertname="IPTVStreamStalled"}[10m])') == []


def test_a_misnamed_node_raises_alerts_instead_of_silence(fleet: FleetStack) -> None:
    # IPTVExporterNodeMismatch (prometheus/rules/iptv-deploy.yml) waits 5m before it fires: pending is enough here.
    mismatch = wait_until(lambda: [r["metric"] for r in query(
        fleet.prometheus_urls[0], 'ALERTS{alertname="IPTVExporterNodeMismatch"}')], 60, what="IPTVExporterNodeMismatch")
    assert [(m["node"], m["node_name"]) for m in mismatch] == [("edge-3", "edge3")]
    node = fleet.node("edge-3")
    for pid in stream_pids(node.playlist("31")):
        os.kill(pid, signal.SIGKILL)
    refused = wait_until(lambda: _firing(fleet, "IPTVRestartRefused"), 120, what="IPTVRestartRefused")
    assert [(r["node"], r["stream"], r["result"]) for r in refused] == [("edge-3", "31", "skipped_other_node")]
    story = node.journal()
    assert story["actions"] == []
    assert {d["result"] for d in story["decisions"] if d["alert_status"] == "firing"} == {"skipped_other_node"}


def test_one_nodes_token_opens_no_other_node(fleet: FleetStack) -> None:
    edge1, edge2 = fleet.node("edge-1"), fleet.node("edge-2")
    assert edge1.token != edge2.token
    body = json.dumps({
        "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing", "receiver": "restart-edge-2",
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
        "alerts": [{"status": "firing", "labels": {"alertname": "IPTVStreamDown", "action": "restart",
                                                    "node": "edge-2", "stream": "21"},
                    "annotations": {}, "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "", "fingerprint": "0123456789abcdef"}],
    }).encode()
    assert http_status(f"{edge2.url}/hooks/alertmanager", token=edge1.token, data=body) == 401
    assert edge2.journal()["decisions"] == [], "a refused token must decide nothing"
    # Its own token is accepted (the stream runs; the alert is resolved so nothing is restarted).
    resolved = body.replace(b'"status": "firing", "labels"', b'"status": "resolved", "labels"')
    assert http_status(f"{edge2.url}/hooks/alertmanager", token=edge2.token, data=resolved) == 200


def test_generated_alertmanager_config_is_the_one_running(fleet: FleetStack) -> None:
    am_yml = Path(fleet.root / "alertmanager" / "alertmanager.yml")
    text = am_yml.read_text()
    for node in fleet.nodes:
        assert f"url: http://{node.address}/hooks/alertmanager" in text
        assert f"{fleet.root}/alertmanager/tokens/{node.spec.name}.token" in text
