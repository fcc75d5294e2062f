"""The whole loop, for real, on loopback: a stream dies, Prometheus alerts, Alertmanager calls the
exporter's webhook, the exporter restarts the stream, the alert resolves, the journal holds one action.

Real ffmpeg streams, real nginx with viewers on 127.x addresses, the exporter as its own process,
Debian's Prometheus and Alertmanager with the repository's rules and routes, started the way the demo
starts them (:class:`exporter.demo.stack.Stack`). Only timings change: scrape and evaluation every 1 s,
``group_wait`` 1 s, and alert ``for:`` durations capped at 3 s (the shipped IPTVStreamDown waits 1m;
its expression, labels and routing are what ships). The exporter samples every second.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter.demo import streams
from exporter.demo.alerting import Timings, find_binaries
from exporter.demo.stack import Options, Stack
from exporter.demo.streams import DEFAULT_STREAMS
from tests.helpers import Exporter, free_port, metric, require_binary, wait_until

pytestmark = pytest.mark.slow

VICTIM, BYSTANDER = "101", "102"
TIMINGS = Timings(interval="1s", max_for="3s", group_wait="1s", group_interval="2s", repeat_interval="5m")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    require_binary("ffmpeg")
    monitoring = find_binaries()
    assert monitoring is not None, "prometheus and prometheus-alertmanager must be installed (.ci/run does)"
    options = Options(root=tmp_path / "stack", exporter_port=free_port(), node="edge-e2e",
                      streams=tuple(s for s in DEFAULT_STREAMS if s.id in {VICTIM, BYSTANDER}),
                      monitoring=monitoring, timings=TIMINGS, sample_interval="1s", cooldown="120s",
                      origin_port=0, prometheus_port=0, alertmanager_port=0)
    assert options.ffmpeg and options.nginx, "ffmpeg and nginx must be installed (.ci/run does)"
    s = Stack(options)
    s.start()
    try:
        yield s
    finally:
        assert s.stop() == 0, "a part outlived Stack.stop"


def _prom(stack: Stack, expr: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{stack.prometheus_url}/api/v1/query", params={"query": expr}, timeout=5).json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _alert_state(stack: Stack, stream: str) -> str | None:
    """Prometheus's view of IPTVStreamDown for ``stream``: pending, firing, or None (inactive/resolved)."""
    for alert in httpx.get(f"{stack.prometheus_url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]:
        labels = alert["labels"]
        if labels.get("alertname") == "IPTVStreamDown" and labels.get("stream") == stream \
                and labels.get("action") == "restart":  # the restart request, not the page
            return str(alert["state"])
    return None


def _am_alerts(stack: Stack, stream: str) -> list[dict[str, Any]]:
    alerts = httpx.get(f"{stack.alertmanager_url}/api/v2/alerts", timeout=5).json()
    return [a for a in alerts if a["labels"].get("alertname") == "IPTVStreamDown"
            and a["labels"].get("stream") == stream]


def test_killed_stream_is_restarted_by_the_alert_and_journaled_once(stack: Stack, tmp_path: Path) -> None:
    layout = stack.layout
    exporter = Exporter(layout.exporter_config, tmp_path, port=stack.options.exporter_port).start()
    token = layout.token_file.read_text().strip()
    try:
        exporter.wait_for(lambda s: all(metric(s, "iptv_stream_up", stream=x) == 1 for x in (VICTIM, BYSTANDER)),
                          what="both streams up in the exporter", timeout=30)
        wait_until(lambda: len(_prom(stack, 'iptv_stream_up{node="edge-e2e"} == 1')) == 2,
                   timeout=30, what="Prometheus scraping both streams up")
        bystander_pid = streams.running_pid(layout, BYSTANDER)
        victim_pid = streams.kill(layout, VICTIM)
        assert victim_pid is not None

        exporter.wait_for(lambda s: metric(s, "iptv_stream_up", stream=VICTIM) == 0,
                          what="the killed stream down in the exporter", timeout=15)
        wait_until(lambda: _alert_state(stack, VICTIM) == "firing", timeout=30, what="IPTVStreamDown firing")
        assert _alert_state(stack, BYSTANDER) is None

        def restarted() -> int | None:
            pid = streams.running_pid(layout, VICTIM)
            return pid if pid not in (None, victim_pid) else None

        new_pid = wait_until(restarted, timeout=45, what="the webhook's restart of the stream")
        exporter.wait_for(lambda s: metric(s, "iptv_stream_up", stream=VICTIM) == 1,
                          what="iptv_stream_up back to 1", timeout=20)
        wait_until(lambda: _alert_state(stack, VICTIM) is None, timeout=30,
                   what="IPTVStreamDown resolved in Prometheus")
        wait_until(lambda: all(a["status"]["state"] != "active" for a in _am_alerts(stack, VICTIM)),
                   timeout=30, what="IPTVStreamDown resolved in Alertmanager")

        def finished() -> list[dict[str, Any]] | None:
            """The journal once every action in it has a result (verification may still be running)."""
            journal = httpx.get(f"{exporter.url}/api/actions", headers={"Authorization": f"Bearer {token}"},
                                timeout=5).json()
            done: list[dict[str, Any]] = journal["actions"]
            return done if done and all(a["result"] is not None for a in done) else None

        actions = wait_until(finished, timeout=40, what="the journaled action finished (verified)")
        assert len(actions) == 1, actions
        action = actions[0]
        assert (action["stream"], action["action"], action["runner"], action["result"]) == (
            VICTIM, "restart", "command", "ok"), action
        assert str(new_pid) in action["output"]
        assert streams.running_pid(layout, BYSTANDER) == bystander_pid, "only the dead stream is restarted"
        samples = exporter.scrape()
        assert metric(samples, "iptv_actions_total", stream=VICTIM, action="restart", result="ok") == 1
        assert metric(samples, "iptv_stream_restarts_total", stream=VICTIM) == 1
        assert httpx.get(f"{exporter.url}/api/actions", timeout=5).status_code == 401
    finally:
        exporter.stop()
