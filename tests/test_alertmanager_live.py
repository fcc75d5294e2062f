"""The shipped Alertmanager routes, run for real: a node-wide outage of 300 streams in, notifications counted out.

A real Alertmanager 0.25 (Debian's prometheus-alertmanager) runs on loopback with the shipped
alertmanager.yml (routing tree, grouping, inhibit rules); only the receivers' URLs point at a small HTTP
server in this test, which counts what arrives at each. The pager, chat and dead man's switch are stand-ins
because no such service runs here; the restart receiver is a stand-in too because this test is about how
many notifications Alertmanager sends, not what the exporter does with them (tests/test_e2e.py and
tests/test_actions_e2e.py send them to the real exporter).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.actions_support import Alertmanager
from tests.helpers import require_binary, wait_until
from tests.rules_config import alertmanager_config

pytestmark = pytest.mark.slow

STREAMS = 300
GROUP_WAIT = "2s"
GROUP_INTERVAL = "10s"
"""Also Alertmanager's time limit for one notification (with retries): 300 at once on a loaded machine."""
QUIET_AFTER = 25.0
"""Seconds to keep counting once the expected notifications are in: more than two group intervals, so a
notification sent late (or a second one for the same group) would be seen."""


@dataclass
class Receivers:
    """A loopback HTTP server standing in for every receiver; it records each notification by path."""

    server: ThreadingHTTPServer
    received: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def notifications(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.received.get(path, []))

    def counts(self) -> dict[str, int]:
        with self.lock:
            return {path: len(items) for path, items in self.received.items()}


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    holder: list[Receivers] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with holder[0].lock:
                holder[0].received.setdefault(self.path, []).append(body)
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (signature of the base)
            return

    class Server(ThreadingHTTPServer):
        request_queue_size = 1024  # 300 webhooks arrive at once; the default backlog (5) would refuse some
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    holder.append(Receivers(server))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder[0]
    server.shutdown()
    server.server_close()


@pytest.fixture
def alertmanager(tmp_path: Path, receivers: Receivers) -> Iterator[Alertmanager]:
    require_binary("prometheus-alertmanager")
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    config = alertmanager_config(
        {node: f"{receivers.url}/restart/{node}" for node in ("edge-1", "edge-2")}, token,
        receiver_urls={name: f"{receivers.url}/{name}" for name in ("pager", "chat", "deadman")},
        group_wait=GROUP_WAIT, group_interval=GROUP_INTERVAL, repeat_interval="1h",
    )
    am = Alertmanager(tmp_path, config).start()
    yield am
    am.stop()


def _alert(name: str, node: str, severity: str, **labels: str) -> dict[str, Any]:
    """An alert as Prometheus sends it: the rule's labels plus instance, job and node."""
    return {
        "labels": {"alertname": name, "severity": severity, "node": node, "instance": f"{node}:9756",
                   "job": "iptv", **labels},
        "annotations": {"summary": f"{name} on {node}"},
        "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "generatorURL": "http://prometheus:9090/graph",
    }


def _settled(receivers: Receivers, check: Any) -> dict[str, int]:
    """Wait until ``check(receivers)`` holds, then make sure nothing more arrives for QUIET_AFTER seconds."""
    wait_until(lambda: check(receivers), timeout=90, interval=0.5, what="the expected notifications")
    counts = receivers.counts()
    deadline = time.monotonic() + QUIET_AFTER
    while time.monotonic() < deadline:
        time.sleep(0.5)
        later = {path: n for path, n in receivers.counts().items() if path != "/deadman"}
        assert later == {path: n for path, n in counts.items() if path != "/deadman"}, (counts, later)
    return counts


def test_a_node_wide_outage_is_one_page_and_a_restart_request_per_stream(
    alertmanager: Alertmanager, receivers: Receivers
) -> None:
    """The panel of edge-1 dies: its 300 declared streams are down. Prometheus sends, as the rules say,
    IPTVNodeStreamsDown for the node, and for every stream a restart request (action="restart") and a page.
    Meanwhile one stream on edge-2 is down, and edge-2's 300 transcodes run slow (a warning each)."""
    outage = [_alert("IPTVNodeStreamsDown", "edge-1", "critical")]
    for stream in range(1, STREAMS + 1):
        outage.append(_alert("IPTVStreamDown", "edge-1", "critical", stream=str(stream), action="restart"))
        outage.append(_alert("IPTVStreamDown", "edge-1", "critical", stream=str(stream)))
    elsewhere = [
        _alert("IPTVStreamDown", "edge-2", "critical", stream="9", action="restart"),
        _alert("IPTVStreamDown", "edge-2", "critical", stream="9"),
        *(_alert("IPTVStreamSlow", "edge-2", "warning", stream=str(s)) for s in range(1, STREAMS + 1)),
        {**_alert("IPTVWatchdog", "", "none"), "labels": {"alertname": "IPTVWatchdog", "severity": "none"}},
    ]
    alertmanager.post(*outage)  # the node alert fires first in Prometheus (for: 1m, the pages 3m)
    alertmanager.post(*elsewhere)

    def complete(r: Receivers) -> bool:
        return (len(r.notifications("/restart/edge-1")) >= STREAMS and len(r.notifications("/pager")) >= 2
                and len(r.notifications("/chat")) >= 1 and len(r.notifications("/restart/edge-2")) >= 1)

    counts = _settled(receivers, complete)

    # Restart requests: one notification per stream, each naming one stream of edge-1.
    requests = receivers.notifications("/restart/edge-1")
    assert len(requests) == STREAMS, counts
    streams = [a["labels"]["stream"] for n in requests for a in n["alerts"]]
    assert sorted(streams, key=int) == [str(s) for s in range(1, STREAMS + 1)]
    assert all(a["labels"]["action"] == "restart" for n in requests for a in n["alerts"])
    assert [a["labels"]["stream"] for n in receivers.notifications("/restart/edge-2") for a in n["alerts"]] == ["9"]

    # The pager: one page for edge-1 (the node alert; its 300 stream pages inhibited), one for edge-2's stream.
    pages = receivers.notifications("/pager")
    assert len(pages) == 2, [n["groupLabels"] for n in pages]
    by_node = {n["groupLabels"]["node"]: n for n in pages}
    assert {n["groupLabels"]["alertname"] for n in pages} == {"IPTVNodeStreamsDown", "IPTVStreamDown"}
    assert [a["labels"]["alertname"] for a in by_node["edge-1"]["alerts"]] == ["IPTVNodeStreamsDown"]
    assert [a["labels"].get("stream") for a in by_node["edge-2"]["alerts"]] == ["9"]
    assert not any("action" in a["labels"] for n in pages for a in n["alerts"])  # requests never page

    # Chat: the warnings of edge-2 in one notification; stream 9's is muted by its down alert.
    (chat,) = receivers.notifications("/chat")
    assert chat["groupLabels"] == {"alertname": "IPTVStreamSlow", "node": "edge-2"}
    slow = {a["labels"]["stream"] for a in chat["alerts"]}
    assert slow == {str(s) for s in range(1, STREAMS + 1)} - {"9"}

    # The watchdog reaches the dead man's switch, and only it.
    assert receivers.notifications("/deadman")
    assert {a["labels"]["alertname"] for n in receivers.notifications("/deadman") for a in n["alerts"]} == {
        "IPTVWatchdog"}
    print(f"\n{2 * STREAMS + 1 + 2 + STREAMS + 1} alerts in -> notifications out: {counts}")


def test_without_the_node_alert_each_node_gets_one_page_per_alert_name(
    alertmanager: Alertmanager, receivers: Receivers
) -> None:
    """300 stream pages on one node and no node alert (say the rule was silenced): still one notification,
    grouped by [alertname, node], listing all 300."""
    alertmanager.post(*(_alert("IPTVStreamCrashLoop", "edge-1", "critical", stream=str(s))
                        for s in range(1, STREAMS + 1)))
    counts = _settled(receivers, lambda r: len(r.notifications("/pager")) >= 1)
    (page,) = receivers.notifications("/pager")
    assert page["groupLabels"] == {"alertname": "IPTVStreamCrashLoop", "node": "edge-1"}
    assert len(page["alerts"]) == STREAMS
    assert "/chat" not in counts
