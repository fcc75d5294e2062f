"""What the journal stores and gives back: one frozen dataclass per kind of row.

A notification is written with the decisions it led to, and each decision with the action it took, in
one :meth:`~exporter.actions.journal.Journal.record` call: the journal gives the rows their ids and links
them, so nothing outside it numbers rows.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """An action as decided (the ``actions`` row before it starts)."""

    decided_at: float
    stream: str
    action: str
    runner: str
    command: str
    """What runs (or would run, in dry run): the filled argv as JSON, the URL, the unit, the signal."""
    dry_run: bool
    fingerprint: str
    starts_at: str
    finished_at: float | None = None
    """Set with ``result``, ``detail`` and ``output`` only for an outcome known at once (a dry run's)."""
    result: str | None = None
    detail: str | None = None
    output: str | None = None

    def row(self) -> tuple[object, ...]:
        return (self.decided_at, self.stream, self.action, self.runner, self.command, self.dry_run,
                self.fingerprint, self.starts_at, self.finished_at, self.result, self.detail, self.output)


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """What the policy decided for one alert of a notification."""

    at: float
    fingerprint: str
    starts_at: str
    alert_status: str
    alertname: str
    stream: str
    """The alert's ``stream`` label as received (cleaned and truncated): what was asked, not what acted."""
    action: str
    node: str
    result: str
    reason: str
    taken: ActionRecord | None = None
    """The action this decision took (accepted or dry run), written with it and linked by its id."""

    def row(self) -> tuple[object, ...]:
        return (self.at, self.fingerprint, self.starts_at, self.alert_status, self.alertname, self.stream,
                self.action, self.node, self.result, self.reason)


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    """A webhook notification as received, with what was decided for each of its alerts."""

    received_at: float
    receiver: str
    external_url: str
    """The sending Alertmanager (each peer of an HA pair has its own)."""
    status: str
    group_key: str
    alerts: int
    truncated_alerts: int
    body: str
    """The notification as received, re-encoded as ASCII JSON and truncated."""
    decisions: tuple[DecisionRecord, ...] = ()

    def row(self) -> tuple[object, ...]:
        return (self.received_at, self.receiver, self.external_url, self.status, self.group_key, self.alerts,
                self.truncated_alerts, self.body)


@dataclass(frozen=True, slots=True)
class PastAction:
    """What the policy needs back after a restart."""

    stream: str
    action: str
    decided_at: float
    fingerprint: str
    starts_at: str
