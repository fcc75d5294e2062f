"""The actions' own metrics. Their state lives outside the snapshot (counters of decisions, the policy's
budgets), so this part registers its own collector in the app's registry instead of a snapshot family.

Label values are bounded: ``stream`` is an inventory id or "" (an alert naming a stream we do not have),
``action`` a configured action name or "", ``result`` and ``code`` come from small fixed sets.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from exporter.actions.policy import FAILED, TIMEOUT, Policy

ALERTED_RESULTS = (FAILED, TIMEOUT)
"""Results the alert rules count with increase() (IPTVRestartFailed): exported from 0 for every stream of the
inventory and configured action, so the first failure is an increase and a gap in the data is not one."""

DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)


class ActionMetrics(Collector):
    """Counters updated by the worker and the receiver; the circuit gauge read from the policy on scrape."""

    def __init__(self, policy: Policy, inventory: Callable[[], Collection[str]],
                 journal_up: Callable[[], bool] | None = None) -> None:
        self._policy = policy
        self._inventory = inventory
        self._journal_up = journal_up
        # registry=None: these objects are not in any global registry; collect() below yields them.
        self.actions = Counter(
            "iptv_actions_total", "Alerts received by the action webhook, by what became of them.",
            ["stream", "action", "result"], registry=None,
        )
        self.duration = Histogram(
            "iptv_action_duration_seconds", "Time from starting an action to its outcome, verification included.",
            ["action"], buckets=DURATION_BUCKETS, registry=None,
        )
        self.webhook = Counter(
            "iptv_webhook_requests_total", "Requests to POST /hooks/alertmanager, by HTTP status code.",
            ["code"], registry=None,
        )
        self.in_progress = Gauge(
            "iptv_actions_in_progress", "Actions running or verifying now.", registry=None,
        )
        self._results: dict[tuple[str, str, str], Any] = {}
        self._codes: dict[int, Any] = {}
        self._zeroes: set[tuple[str, str, str]] = set()
        """Children created at 0 by ``_arm``; removed again when their stream leaves, unless counted."""
        self._lock = threading.Lock()

    def count(self, stream: str, action: str, result: str, n: int = 1) -> None:
        """``n`` more in ``iptv_actions_total`` (the child looked up once per label set: label values are bounded)."""
        key = (stream, action, result)
        with self._lock:
            child = self._results.get(key)
            if child is None:
                child = self._results[key] = self.actions.labels(stream, action, result)
        child.inc(n)

    def _arm(self) -> None:
        """Create the failed/timeout counters at 0 for every stream and action; drop the unused ones of
        streams that left the inventory (an on-demand channel comes and goes all day)."""
        wanted = {(s, a, r) for s in self._inventory() for a in self._policy.actions for r in ALERTED_RESULTS}
        with self._lock:
            for key in wanted - self._zeroes:
                self.actions.labels(*key)
            for key in self._zeroes - wanted:
                if key not in self._results:
                    self.actions.remove(*key)
            self._zeroes = wanted

    def webhook_answered(self, code: int) -> None:
        """One more in ``iptv_webhook_requests_total``."""
        child = self._codes.get(code)
        if child is None:
            child = self._codes[code] = self.webhook.labels(str(code))
        child.inc()

    def describe(self) -> Iterator[Metric]:
        return iter(())  # registering must not touch the policy

    def collect(self) -> Iterator[Metric]:
        self._arm()
        yield from self.actions.collect()
        yield from self.duration.collect()
        yield from self.webhook.collect()
        yield from self.in_progress.collect()
        circuit = GaugeMetricFamily(
            "iptv_restart_circuit_open",
            "1 while the stream's action budget is used up: no automatic action until the window passes or a reset.",
            labels=["stream"],
        )
        for stream in sorted(set(self._inventory()) | self._policy.streams()):
            circuit.add_metric([stream], 1 if self._policy.circuit_open(stream) else 0)
        yield circuit
        if self._journal_up is not None:
            yield GaugeMetricFamily(
                "iptv_actions_journal_up",
                "1 while the action journal is usable; 0 while actions are refused because it is not (see the log).",
                value=1 if self._journal_up() else 0,
            )
