"""The policy's rules with literal alerts and a fake clock: order of checks, dedup, cooldown, budget, busy."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.actions.journal import PastAction
from exporter.actions.payload import Alert
from exporter.actions.policy import Policy, clean

INVENTORY = {"7", "8"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def policy(clock: Clock, **kw: Any) -> Policy:
    args: dict[str, Any] = {"node": "edge-1", "actions": {"restart"}, "cooldown": 120.0, "budget_max": 3,
                            "budget_window": 1800.0, "dedup_ttl": 86400.0, "clock": clock}
    return Policy(**{**args, **kw})


def mk(stream: str = "7", *, fp: str = "aa", starts: str = "2026-11-26T14:05:31.512Z", status: str = "firing",
       **labels: str) -> Alert:
    base = {"alertname": "IPTVStreamDown", "action": "restart", "node": "edge-1", "stream": stream}
    return Alert(status=status, labels={**base, **labels}, startsAt=starts, fingerprint=fp)  # type: ignore[arg-type]


@pytest.mark.parametrize(("alert", "result"), [
    (mk(status="resolved", node="other", stream="nope"), "skipped_resolved"),
    (mk(action=""), "rejected"),
    (Alert(status="firing", labels={"stream": "7", "node": "edge-1"}, startsAt="2026-01-01T00:00:00Z",
           fingerprint="ab"), "rejected"),
    (mk(node="edge-2", stream="nope", action="nope"), "skipped_other_node"),
    (mk(action="reboot", stream="nope"), "skipped_unknown_action"),
    (mk(stream="9"), "skipped_unknown_stream"),
    (mk(stream="7 "), "skipped_unknown_stream"),
    (mk(node="edge-1 "), "skipped_other_node"),
    (mk(), "accepted"),
])
def test_order_of_checks(alert: Alert, result: str) -> None:
    decision = policy(Clock()).decide(alert, INVENTORY)
    assert decision.result == result
    assert decision.stream in INVENTORY | {""}
    assert decision.action in {"restart", ""}


def test_dedup_cooldown_busy_and_budget() -> None:
    clock = Clock()
    p = policy(clock, cooldown=60.0, budget_max=2, budget_window=600.0)
    assert p.decide(mk(fp="a1"), INVENTORY).accepted
    assert p.decide(mk(fp="a1"), INVENTORY).result == "skipped_duplicate"  # HA twin / repeat
    assert p.decide(mk(fp="a2"), INVENTORY).result == "skipped_cooldown"
    assert p.decide(mk("8", fp="b1"), INVENTORY).accepted  # cooldown is per stream
    clock.now += 61
    assert p.decide(mk(fp="a2"), INVENTORY).result == "skipped_busy"  # the first has no outcome yet
    p.finish("7")
    assert p.decide(mk(fp="a2"), INVENTORY).accepted
    p.finish("7")
    assert not p.circuit_open("8")
    assert p.circuit_open("7") and p.budget_used("7") == 2
    clock.now += 61
    decision = p.decide(mk(fp="a3"), INVENTORY)
    assert decision.result == "skipped_budget" and "circuit open" in decision.reason
    assert p.decide(mk(fp="a1"), INVENTORY).result == "skipped_duplicate"  # still a duplicate first
    clock.now += 600 - 122 + 1  # the first action leaves the window
    assert not p.circuit_open("7")
    assert p.decide(mk(fp="a3"), INVENTORY).accepted


def test_reset_closes_the_circuit_but_keeps_cooldown() -> None:
    clock = Clock()
    p = policy(clock, cooldown=60.0, budget_max=1)
    assert p.decide(mk(fp="a1"), INVENTORY).accepted
    p.finish("7")
    assert p.circuit_open("7")
    p.reset("7")
    assert not p.circuit_open("7")
    assert p.decide(mk(fp="a2"), INVENTORY).result == "skipped_cooldown"
    clock.now += 61
    assert p.decide(mk(fp="a2"), INVENTORY).accepted


def test_restore_from_history() -> None:
    clock = Clock()
    past = [PastAction("7", "restart", clock.now - 3000, "old", "2026-01-01T00:00:00Z"),   # outside the budget window
            PastAction("7", "restart", clock.now - 1000, "f1", "2026-01-01T00:00:01Z"),
            PastAction("7", "restart", clock.now - 30, "f2", "2026-01-01T00:00:02Z")]
    p = policy(clock, budget_max=3)
    p.restore(past, resets={})
    assert p.budget_used("7") == 2
    assert p.decide(mk(fp="f1", starts="2026-01-01T00:00:01Z"), INVENTORY).result == "skipped_duplicate"
    assert p.decide(mk(fp="old", starts="2026-01-01T00:00:00Z"), INVENTORY).result == "skipped_duplicate"
    assert p.decide(mk(fp="new"), INVENTORY).result == "skipped_cooldown"
    p = policy(clock, budget_max=2)
    p.restore(past, resets={"7": clock.now - 500})  # a reset after the first two: only the last counts
    assert p.budget_used("7") == 1


def test_dedup_keys_expire_after_their_ttl() -> None:
    clock = Clock()
    p = policy(clock, cooldown=1.0, dedup_ttl=100.0)
    assert p.decide(mk(fp="a1"), INVENTORY).accepted
    p.finish("7")
    clock.now += 50
    assert p.decide(mk(fp="a1"), INVENTORY).result == "skipped_duplicate"
    clock.now += 51
    assert p.decide(mk(fp="a1"), INVENTORY).accepted


def test_clean() -> None:
    assert clean("7; rm -rf /") == "7; rm -rf /"
    assert clean("a\nb\x00c") == "a\\x0ab\\x00c"
    assert clean("\udc80") == "\\udc80"
    assert len(clean("x" * 100_000)) == 128


def test_clean_fast_path_keeps_the_limits() -> None:
    assert clean("x" * 128) == "x" * 128
    assert clean("x" * 129) == "x" * 127 + "…"
    assert clean("caf\u00e9") == "caf\u00e9"
    assert clean("tab\there") == "tab\\x09here"


def test_budgets_of_streams_not_decided_again_still_expire() -> None:
    """decide() expires only the stream it decides on; the API and the circuit gauge see every stream."""
    clock = Clock()
    p = policy(clock, cooldown=1.0, budget_max=1, budget_window=100.0)
    assert p.decide(mk("7", fp="a1"), INVENTORY).accepted
    p.finish("7")
    assert p.streams() == {"7"} and p.circuit_open("7")
    clock.now += 101
    assert p.decide(mk("8", fp="b1"), INVENTORY).accepted  # another stream: 7's budget is not looked at
    assert p.streams() == {"8"}
    assert not p.circuit_open("7") and p.budget_used("7") == 0


def test_cancel_gives_back_exactly_what_the_decision_took() -> None:
    """An accepted action that never started (journal write failed, exporter stopped) leaves no state."""
    clock = Clock()
    p = policy(clock, cooldown=60.0, budget_max=2, budget_window=600.0)
    first = p.decide(mk(fp="a1"), INVENTORY)
    assert first.accepted and first.reservation is not None
    p.finish("7")
    clock.now += 100
    second = p.decide(mk(fp="a2"), INVENTORY)
    assert second.accepted and second.reservation is not None
    assert p.budget_used("7") == 2 and p.circuit_open("7")
    p.cancel(second.reservation)
    assert p.budget_used("7") == 1 and not p.circuit_open("7")
    again = p.decide(mk(fp="a2"), INVENTORY)  # the repeat of the cancelled alert: acted on, not a duplicate
    assert again.accepted and again.reservation is not None
    assert again.reservation.previous == first.reservation.at  # cooldown restored to the first action's
    p.cancel(again.reservation)
    assert p.decide(mk(fp="a1"), INVENTORY).result == "skipped_duplicate"  # the first action's dedup key holds
    clock.now -= 50  # (as if) within the first action's cooldown: the cancelled ones left none of their own
    assert p.decide(mk(fp="a3"), INVENTORY).result == "skipped_cooldown"
    clock.now += 50
    assert p.decide(mk(fp="a3"), INVENTORY).accepted


def test_cancel_of_the_only_action_leaves_nothing() -> None:
    p = policy(Clock())
    d = p.decide(mk(fp="a1"), INVENTORY)
    assert d.reservation is not None
    p.cancel(d.reservation)
    assert p.streams() == set() and p.budget_used("7") == 0
    assert p.decide(mk(fp="a1"), INVENTORY).accepted  # not busy, no cooldown, no dedup key


def test_clock_stepped_back_bounds_cooldown_and_budget_to_their_length() -> None:
    """NTP steps the clock back a day: remembered times in the future count from now, so the cooldown lasts at
    most its length and the spent budget leaves the window one window from now, not a day later."""
    clock = Clock()
    p = policy(clock, cooldown=60.0, budget_max=1, budget_window=600.0)
    assert p.decide(mk(fp="a1"), INVENTORY).accepted
    p.finish("7")
    clock.now -= 86400
    assert p.decide(mk(fp="a2"), INVENTORY).result == "skipped_budget"
    clock.now += 601
    d = p.decide(mk(fp="a2"), INVENTORY)
    assert d.accepted, d.reason  # old policy: no action for a day and a window
    assert p.decide(mk(fp="a1"), INVENTORY).result == "skipped_duplicate"  # dedup keys are kept


def test_restored_history_from_the_future_counts_from_now() -> None:
    clock = Clock()
    p = policy(clock, cooldown=60.0)
    p.restore([PastAction("7", "restart", clock.now + 86400, "old", "t")], {})
    assert p.decide(mk(fp="a1"), INVENTORY).result == "skipped_cooldown"
    clock.now += 61
    assert p.decide(mk(fp="a1"), INVENTORY).accepted
