"""Whether an alert may act: the checks, in order, and the state they need (dedup, cooldown, budget, busy).

Everything that decides lives here and nowhere else, pure apart from its own state and an injected clock,
so each rule is unit-tested with literal alerts. ``decide`` is atomic: when it accepts, it has already
reserved the dedup key, the cooldown, a unit of budget and the stream's one action slot, so two
notifications racing for the same stream (an HA twin) can never both act. The reservation is given back
with :meth:`Policy.cancel` when the action never starts (its journal write failed, the exporter stopped
first): dedup, cooldown and budget hold only for actions that ran or are running.

Time is the wall clock (it must survive a restart through the journal). When it steps back, remembered
times in the future are taken as now: a cooldown then lasts at most ``cooldown`` from the step, not the
step's length on top.

Order of the checks, first match wins: resolved, missing labels, other node, unknown action, unknown
stream, duplicate, budget (circuit open), cooldown, busy; then accepted.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

from exporter.actions.journal import PastAction
from exporter.actions.payload import Alert

log = logging.getLogger(__name__)

ACCEPTED = "accepted"

# Final results, the values of iptv_actions_total's `result` label.
OK, FAILED, TIMEOUT, DRY_RUN, INTERRUPTED = "ok", "failed", "timeout", "dry_run", "interrupted"
NOT_STARTED = "not_started"
"""Accepted, but never started (stopped first, or the journal failed): no dedup key, runs on the repeat."""
SKIPPED_RESOLVED = "skipped_resolved"
REJECTED = "rejected"
SKIPPED_OTHER_NODE = "skipped_other_node"
SKIPPED_UNKNOWN_ACTION = "skipped_unknown_action"
SKIPPED_UNKNOWN_STREAM = "skipped_unknown_stream"
SKIPPED_DUPLICATE = "skipped_duplicate"
SKIPPED_BUDGET = "skipped_budget"
SKIPPED_COOLDOWN = "skipped_cooldown"
SKIPPED_BUSY = "skipped_busy"

LABEL_LIMIT = 128
"""Label values are kept (cleaned) up to this many characters in the journal and the logs."""


def clean(value: str, limit: int = LABEL_LIMIT) -> str:
    """Printable, valid UTF-8 and short: safe for SQLite, logs and JSON whatever the sender put in."""
    if len(value) <= limit and value.isascii() and value.isprintable():
        return value  # the usual label value: nothing to do (ASCII has no surrogates)
    text = value.encode("utf-8", "backslashreplace").decode("utf-8")
    text = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text[: limit * 4])
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class Reservation:
    """What an accepted decision took from the policy's state, to give back if the action never starts."""

    dedup_key: tuple[str, str]
    stream: str
    action: str
    at: float
    previous: float | None
    """The stream's previous action time (cooldown), restored on cancel."""


@dataclass(frozen=True, slots=True)
class Decision:
    result: str
    reason: str
    stream: str
    """The inventory stream id this decision is about, or "" when the label named no stream of ours."""
    action: str
    """The configured action name, or "" when the label named none."""
    stream_label: str
    action_label: str
    node_label: str
    reservation: Reservation | None = None
    """Set when accepted: give it to :meth:`Policy.cancel` if the action never starts."""

    @property
    def accepted(self) -> bool:
        return self.result == ACCEPTED


class Policy:
    """Decides; remembers what it decided (in memory, rebuilt from the journal with :meth:`restore`)."""

    def __init__(
        self,
        *,
        node: str,
        actions: Collection[str],
        cooldown: float,
        budget_max: int,
        budget_window: float,
        dedup_ttl: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node = node
        self.actions = frozenset(actions)
        self.cooldown = cooldown
        self.budget_max = budget_max
        self.budget_window = budget_window
        self.dedup_ttl = dedup_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], float] = {}
        self._last: dict[tuple[str, str], float] = {}
        self._spent: dict[str, deque[float]] = {}
        self._busy: set[str] = set()
        self._latest = float("-inf")
        """The latest time remembered; a clock reading before it means the clock stepped back."""

    def restore(self, history: Iterable[PastAction], resets: Mapping[str, float]) -> None:
        """Rebuild dedup keys, cooldowns and budgets from past actions (journal order: oldest first)."""
        with self._lock:
            for past in history:
                self._seen[(past.fingerprint, past.starts_at)] = past.decided_at
                key = (past.stream, past.action)
                self._last[key] = max(self._last.get(key, 0.0), past.decided_at)
                if past.decided_at > resets.get(past.stream, float("-inf")):
                    self._spent.setdefault(past.stream, deque()).append(past.decided_at)
                self._latest = max(self._latest, past.decided_at)

    def decide(self, alert: Alert, inventory: Collection[str]) -> Decision:
        labels = alert.labels
        stream_label = labels.get("stream", "")
        action_label = labels.get("action", "")
        node_label = labels.get("node", "")
        stream = stream_label if stream_label in inventory else ""
        action = action_label if action_label in self.actions else ""

        def verdict(result: str, reason: str, reservation: Reservation | None = None) -> Decision:
            return Decision(result, reason, stream, action, clean(stream_label), clean(action_label),
                            clean(node_label), reservation)

        if alert.status != "firing":
            return verdict(SKIPPED_RESOLVED, "alert resolved: nothing to do")
        missing = [name for name in ("action", "stream", "node") if not labels.get(name)]
        if missing:
            return verdict(REJECTED, f"alert lacks label(s) {', '.join(missing)}")
        if node_label != self.node:
            return verdict(SKIPPED_OTHER_NODE, f"alert is for node {clean(node_label)!r}, this is {self.node!r}")
        if not action:
            allowed = ", ".join(sorted(self.actions)) or "none"
            return verdict(SKIPPED_UNKNOWN_ACTION,
                           f"action {clean(action_label)!r} is not configured (configured: {allowed})")
        if not stream:
            return verdict(SKIPPED_UNKNOWN_STREAM, f"stream {clean(stream_label)!r} is not in this node's inventory")
        with self._lock:
            now = self._clock()
            if now < self._latest:
                self._clock_stepped_back(now)
            self._latest = now
            self._expire_seen(now)
            if alert.dedup_key in self._seen:
                return verdict(SKIPPED_DUPLICATE, "this alert (fingerprint, startsAt) was already acted on")
            spent = self._expire_spent(stream, now)
            if len(spent) >= self.budget_max:
                until = spent[0] + self.budget_window
                return verdict(SKIPPED_BUDGET, f"circuit open: {len(spent)} actions within the budget window;"
                                               f" closes in {max(0.0, until - now):.0f}s or on reset")
            last = self._last.get((stream, action))
            if last is not None and now - last < self.cooldown:
                return verdict(SKIPPED_COOLDOWN, f"cooldown: last {action} {now - last:.0f}s ago,"
                                                 f" cooldown {self.cooldown:.0f}s")
            if stream in self._busy:
                return verdict(SKIPPED_BUSY, "an action on this stream is still running")
            self._seen[alert.dedup_key] = now
            self._last[(stream, action)] = now
            self._spent.setdefault(stream, deque()).append(now)
            self._busy.add(stream)
            return verdict(ACCEPTED, f"{action} of stream {stream}",
                           Reservation(alert.dedup_key, stream, action, now, last))

    def cancel(self, reservation: Reservation) -> None:
        """Give back what an accepted decision took (its action never started): the alert is no dedup key,
        its cooldown and budget unit are returned, the stream's slot is free. Another decision's newer
        state is left alone."""
        with self._lock:
            if self._seen.get(reservation.dedup_key) == reservation.at:
                del self._seen[reservation.dedup_key]
            key = (reservation.stream, reservation.action)
            if self._last.get(key) == reservation.at:
                if reservation.previous is None:
                    del self._last[key]
                else:
                    self._last[key] = reservation.previous
            spent = self._spent.get(reservation.stream)
            if spent is not None:
                with contextlib.suppress(ValueError):  # already expired from the window
                    spent.remove(reservation.at)
                if not spent:
                    del self._spent[reservation.stream]
            self._busy.discard(reservation.stream)

    def _clock_stepped_back(self, now: float) -> None:
        """Remembered times after ``now`` become ``now`` (the lock is held)."""
        log.warning("clock stepped back seconds=%.0f: cooldowns and budgets in the future now count from now",
                    self._latest - now)
        self._seen = {k: min(at, now) for k, at in self._seen.items()}
        self._last = {k: min(at, now) for k, at in self._last.items()}
        for stream, spent in self._spent.items():
            self._spent[stream] = deque(min(at, now) for at in spent)

    def finish(self, stream: str) -> None:
        """The stream's action is over (whatever its outcome): the next may run once cooldown allows."""
        with self._lock:
            self._busy.discard(stream)

    def reset(self, stream: str) -> None:
        """Close the stream's circuit now: its spent budget is forgotten (cooldown still applies)."""
        with self._lock:
            self._spent.pop(stream, None)

    def circuit_open(self, stream: str) -> bool:
        with self._lock:
            self._expire(self._clock())
            return len(self._spent.get(stream, ())) >= self.budget_max

    def budget_used(self, stream: str) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._spent.get(stream, ()))

    def streams(self) -> set[str]:
        """Streams with any budget spent in the window (their circuit gauge is worth exporting)."""
        with self._lock:
            self._expire(self._clock())
            return set(self._spent)

    def _expire(self, now: float) -> None:
        for stream in list(self._spent):
            self._expire_spent(stream, now)
        self._expire_seen(now)

    def _expire_spent(self, stream: str, now: float) -> deque[float]:
        """The stream's budget spent within the window (a stream with none left is forgotten)."""
        spent = self._spent.get(stream)
        if spent is None:
            return deque()
        while spent and spent[0] <= now - self.budget_window:
            spent.popleft()
        if not spent:
            del self._spent[stream]
        return spent

    def _expire_seen(self, now: float) -> None:
        if self._seen and next(iter(self._seen.values())) < now - self.dedup_ttl:  # oldest first
            self._seen = {k: at for k, at in self._seen.items() if at >= now - self.dedup_ttl}
