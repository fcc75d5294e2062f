"""Deciding a batch of queued notifications: the policy's verdict on each alert, as journal records.

The dispatcher (:mod:`exporter.actions.worker`) hands :meth:`Decider.decide` what it took off the queue and
gets back a :class:`DecidedBatch`: the records to journal, the actions to start once they are journalled,
and every reservation the decisions took, so that a failed write can give them all back. Nothing here
writes or runs anything; deciding only reserves (dedup key, cooldown, budget, the stream's slot).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from exporter.actions.journal import ActionRecord, DecisionRecord, NotificationRecord
from exporter.actions.payload import Alert, Notification
from exporter.actions.policy import DRY_RUN, FAILED, REJECTED, SKIPPED_OTHER_NODE, Decision, Policy, Reservation, clean
from exporter.actions.runners import Runner, Target
from exporter.redact import redact
from exporter.snapshot import Snapshot

log = logging.getLogger(__name__)

BODY_EXCERPT = 16 * 1024
"""Characters of each notification's body kept in the journal (as ASCII JSON)."""


@dataclass(frozen=True, slots=True)
class Queued:
    notification: Notification
    received_at: float
    body: bytes
    """The body as received (valid UTF-8 JSON: it parsed), for the journal's excerpt."""


@dataclass(frozen=True, slots=True)
class Accepted:
    """A real action decided: it starts once its batch is journalled (and its id known)."""

    target: Target
    runner: Runner
    decided_at: float
    reservation: Reservation


@dataclass(slots=True)
class DecidedBatch:
    """What a batch of notifications came to, before it is journalled."""

    notifications: list[NotificationRecord] = field(default_factory=list)
    accepted: list[Accepted | None] = field(default_factory=list)
    """One per action in ``notifications`` (in order, as :meth:`Journal.record` returns their ids); None for
    a dry run's, which has nothing to start."""
    reserved: list[Reservation] = field(default_factory=list)
    """Every reservation the decisions took: cancelled if the batch is not journalled."""
    counted: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(stream, action, result) to count in iptv_actions_total once the batch is journalled."""
    results: Counter[str] = field(default_factory=Counter)
    """Decisions by result, for the batch's log line."""


class Decider:
    """Turns queued notifications into journal records and accepted actions, alert by alert."""

    def __init__(self, *, node: str, dry_run: bool, policy: Policy, runners: Mapping[str, Runner],
                 snapshot: Callable[[], Snapshot], clock: Callable[[], float]) -> None:
        self.node = node
        self.dry_run = dry_run
        self.policy = policy
        self.runners = runners
        self._snapshot = snapshot
        self._clock = clock

    def decide(self, items: Sequence[Queued]) -> DecidedBatch:
        """Every alert of ``items`` decided. If this raises, the reservations it took are given back first:
        nothing of the batch is journalled, so no dedup key, cooldown or budget may hold for it."""
        batch = DecidedBatch()
        try:
            for item in items:
                decisions: list[DecisionRecord] = []
                try:
                    for alert in item.notification.alerts:
                        decisions.append(self._decide(alert, batch))
                except Exception:  # noqa: BLE001 - one bad notification must not stop the others
                    log.exception("notification handling failed")
                batch.notifications.append(_notification_record(item, tuple(decisions)))
        except BaseException:
            for reservation in batch.reserved:
                self.policy.cancel(reservation)
            raise
        return batch

    def _decide(self, alert: Alert, batch: DecidedBatch) -> DecisionRecord:
        """Decide one alert. An accepted action (with the reservation it took) goes on ``batch`` together with
        the record returned, so the two stay in step; a refusal is only counted."""
        snap = self._snapshot()
        # Only streams the config allows: declared, or discovered from a process of an allowed owner.
        allowed = {s for s, ref in snap.streams.items() if ref.restartable or ref.declared}
        decision = self.policy.decide(alert, allowed)
        now = self._clock()
        if not decision.accepted:
            return self._refused(batch, alert, decision, now)
        reservation = decision.reservation
        if reservation is None:
            raise RuntimeError("an accepted decision without its reservation")
        try:
            record, accepted = self._accept(alert, decision, reservation, snap, now)
        except BaseException:
            self.policy.cancel(reservation)  # never journalled: nothing of it holds
            raise
        if record.taken is None:  # refused by the runner: given back, counted as failed
            self.policy.cancel(reservation)
            batch.counted[(decision.stream, decision.action, FAILED)] += 1
            batch.results[FAILED] += 1
            return record
        batch.reserved.append(reservation)
        batch.accepted.append(accepted)
        if accepted is None:
            batch.counted[(decision.stream, decision.action, DRY_RUN)] += 1
            self.policy.finish(decision.stream)
        batch.results[record.result] += 1
        return record

    def _refused(self, batch: DecidedBatch, alert: Alert, decision: Decision, now: float) -> DecisionRecord:
        batch.counted[(decision.stream, decision.action, decision.result)] += 1
        batch.results[decision.result] += 1
        return _decision_record(alert, decision, decision.result, now)

    def _accept(self, alert: Alert, decision: Decision, reservation: Reservation, snap: Snapshot,
                now: float) -> tuple[DecisionRecord, Accepted | None]:
        """The decision's record with its action (None as Accepted in a dry run), or without one when the
        runner refuses the target."""
        runner = self.runners[decision.action]
        target = Target(decision.stream, snap.streams[decision.stream].name, self.node, decision.action,
                        stream_pids(snap, decision.stream))
        try:
            command = runner.describe(target)
        except ValueError as exc:  # e.g. a name that makes no valid unit: refuse, never run something else
            refused = Decision(FAILED, f"refused: {exc}", decision.stream, decision.action, decision.stream_label,
                               decision.action_label, decision.node_label)
            return _decision_record(alert, refused, FAILED, now), None
        action = ActionRecord(
            decided_at=now, stream=decision.stream, action=decision.action, runner=runner.kind, command=command,
            dry_run=self.dry_run, fingerprint=alert.fingerprint, starts_at=alert.startsAt,
        )
        if not self.dry_run:
            accepted = Accepted(target, runner, now, reservation)
            return _decision_record(alert, decision, decision.result, now, action), accepted
        log.warning("dry run: would run action=%s stream=%s command=%s", decision.action, decision.stream, command)
        action = replace(action, finished_at=now, result=DRY_RUN, detail="dry run: nothing executed", output="")
        return _decision_record(alert, decision, DRY_RUN, now, action), None


def _notification_record(item: Queued, decisions: tuple[DecisionRecord, ...]) -> NotificationRecord:
    n = item.notification
    if n.truncatedAlerts:
        log.warning("notification truncated by Alertmanager truncated_alerts=%d", n.truncatedAlerts)
    return NotificationRecord(
        received_at=item.received_at, receiver=clean(n.receiver), external_url=clean(redact(n.externalURL), 256),
        status=n.status, group_key=clean(n.groupKey, 512), alerts=len(n.alerts),
        truncated_alerts=n.truncatedAlerts, body=_excerpt(item.body), decisions=decisions,
    )


def _decision_record(alert: Alert, decision: Decision, result: str, now: float,
                     taken: ActionRecord | None = None) -> DecisionRecord:
    # Every decision is in the journal and counted; the log has one line per batch, and this at debug.
    log.debug("alert decided result=%s stream=%s action=%s reason=%s", result, decision.stream_label,
              decision.action_label, decision.reason)
    alertname = clean(alert.labels.get("alertname", ""))
    if (result == REJECTED and not decision.node_label) or result == SKIPPED_OTHER_NODE:
        # Almost always a Prometheus without the `node` target label (docs/deploy.md, "relabel rules"):
        # say so where the operator looks, instead of only counting a refusal.
        log.warning("alert not acted on: its node label must equal this exporter's node result=%s "
                    "alertname=%s node_label=%s reason=%s", result, alertname, decision.node_label or "(missing)",
                    decision.reason)
    return DecisionRecord(
        at=now, fingerprint=alert.fingerprint, starts_at=clean(alert.startsAt), alert_status=alert.status,
        alertname=alertname, stream=decision.stream_label, action=decision.action_label, node=decision.node_label,
        result=result, reason=decision.reason, taken=taken,
    )


def _excerpt(body: bytes) -> str:
    """The start of a body for the journal: ASCII JSON, at most BODY_EXCERPT characters, passwords redacted."""
    head = body[:BODY_EXCERPT + 1024]  # room for a secret across the cut
    if head.isascii():  # as Alertmanager sends it: the bytes are the text
        text = head.decode("ascii")
    else:  # escape what is not ASCII (a cut through a character must not garble it)
        text = json.dumps(json.loads(body), ensure_ascii=True, separators=(",", ":"))[:BODY_EXCERPT + 1024]
    return redact(text)[:BODY_EXCERPT]


def stream_pids(snap: Snapshot, stream: str) -> tuple[int, ...]:
    """The stream's processes in ``snap`` (the signal runner's targets)."""
    procs = snap.processes
    entry = procs.streams.get(stream) if procs is not None else None
    return entry.pids if entry is not None else ()
