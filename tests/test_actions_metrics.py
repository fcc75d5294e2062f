"""The actions' metrics: the failed/timeout counters the alert rules count with increase() exist from 0.

IPTVRestartFailed is ``increase(iptv_actions_total{result=~"failed|timeout"}[15m]) > 0``. A counter whose
first sample is already 1 has no increase, so the rule relies on these series being exported at 0 for every
stream of the inventory and every configured action before anything fails.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from exporter.actions.metrics import ActionMetrics
from exporter.actions.policy import Policy
from tests.helpers import Samples, parse_metrics


def _scrape(metrics: ActionMetrics) -> Samples:
    registry = CollectorRegistry()
    registry.register(metrics)
    return parse_metrics(generate_latest(registry).decode())


def _actions(samples: Samples) -> dict[tuple[str, str, str], float]:
    out = {}
    for (name, labels), value in samples.items():
        if name == "iptv_actions_total":
            d = dict(labels)
            out[(d["stream"], d["action"], d["result"])] = value
    return out


def _policy() -> Policy:
    return Policy(node="edge-1", actions=["restart"], cooldown=60, budget_max=5, budget_window=1800, dedup_ttl=3600)


def test_failed_and_timeout_start_at_zero_for_every_stream_and_action() -> None:
    inventory = ["5", "7"]
    metrics = ActionMetrics(_policy(), lambda: inventory)
    assert _actions(_scrape(metrics)) == {
        ("5", "restart", "failed"): 0, ("5", "restart", "timeout"): 0,
        ("7", "restart", "failed"): 0, ("7", "restart", "timeout"): 0,
    }


def test_a_stream_that_leaves_takes_its_zeroes_along_but_keeps_what_was_counted() -> None:
    inventory = ["5", "7", "9"]
    metrics = ActionMetrics(_policy(), lambda: inventory)
    _scrape(metrics)
    metrics.count("7", "restart", "failed")
    metrics.count("7", "restart", "ok")
    inventory[:] = ["5", "11"]  # 7 and 9 left (an on-demand channel stopped), 11 appeared
    found = _actions(_scrape(metrics))
    assert found == {
        ("5", "restart", "failed"): 0, ("5", "restart", "timeout"): 0,
        ("11", "restart", "failed"): 0, ("11", "restart", "timeout"): 0,
        ("7", "restart", "failed"): 1, ("7", "restart", "ok"): 1,
    }
    inventory.append("9")  # back again: from 0 again
    assert _actions(_scrape(metrics))[("9", "restart", "timeout")] == 0
