"""The action worker: takes queued notifications off the web loop, decides, runs, verifies, records.

One dispatcher thread decides alert by alert (so decisions are serial and the journal reads like the
story); accepted actions run on a pool of ``max_concurrent`` threads, at most one per stream (the policy
holds the stream's slot until the outcome is recorded). Nothing here blocks the event loop: the receiver
only puts the parsed notification on a bounded queue.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from exporter.actions.journal import ActionRecord, DecisionRecord, Journal, NotificationRecord
from exporter.actions.metrics import ActionMetrics
from exporter.actions.payload import Alert, Notification
from exporter.actions.policy import DRY_RUN, FAILED, INTERRUPTED, OK, Decision, Policy, clean
from exporter.actions.runners import Runner, RunOutcome, Target
from exporter.actions.verify import Verifier
from exporter.redact import redact
from exporter.snapshot import Snapshot
from exporter.sources.processes import ProcessesResult

log = logging.getLogger(__name__)

BODY_EXCERPT = 16 * 1024
"""Characters of each notification kept in the journal (as ASCII JSON)."""
RETENTION_EVERY = 3600.0


@dataclass(frozen=True, slots=True)
class Queued:
    notification: Notification
    received_at: float


class ActionWorker:
    def __init__(
        self,
        *,
        node: str,
        dry_run: bool,
        verify_timeout: float,
        retention: float,
        max_concurrent: int,
        queue_size: int,
        policy: Policy,
        journal: Journal,
        runners: Mapping[str, Runner],
        verifier: Verifier,
        metrics: ActionMetrics,
        snapshot: Callable[[], Snapshot],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node = node
        self.dry_run = dry_run
        self.verify_timeout = verify_timeout
        self.retention = retention
        self.max_concurrent = max_concurrent
        self.policy = policy
        self.journal = journal
        self.runners = dict(runners)
        self.verifier = verifier
        self.metrics = metrics
        self._snapshot = snapshot
        self._clock = clock
        self._queue: queue.Queue[Queued | None] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._idle = threading.Condition()
        self._pending = 0
        self._last_prune = 0.0

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        now = self._clock()
        interrupted = self.journal.mark_interrupted(now)
        if interrupted:
            log.warning("actions without outcome from a previous run marked interrupted count=%d", interrupted)
        self._prune(now)
        self.policy.restore(self.journal.history(now - self.retention), self.journal.resets())
        self._pool = ThreadPoolExecutor(self.max_concurrent, thread_name_prefix="iptv-action")
        self._thread = threading.Thread(target=self._loop, name="iptv-actions", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking work; running verifications end early (recorded interrupted); commands are left to finish."""
        self._stop.set()
        with contextlib.suppress(queue.Full):  # full: the dispatcher sees _stop after its current item
            self._queue.put_nowait(None)
        if self._thread is not None:
            self._thread.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, notification: Notification, received_at: float) -> bool:
        """Queue a notification; False when the queue is full (the receiver answers 503, Alertmanager retries)."""
        with self._idle:
            try:
                self._queue.put_nowait(Queued(notification, received_at))
            except queue.Full:
                return False
            self._pending += 1
        return True

    def wait_idle(self, timeout: float) -> bool:
        """True once every queued notification is decided and every action has its outcome (for tests)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()

    # -- dispatcher --------------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None:
                break
            try:
                self._handle(item)
            except Exception:  # noqa: BLE001 - one bad notification must not stop the worker
                log.exception("notification handling failed")
            finally:
                self._done()
            now = self._clock()
            if now - self._last_prune > RETENTION_EVERY:
                self._prune(now)

    def _prune(self, now: float) -> None:
        self._last_prune = now
        removed = self.journal.prune(now - self.retention)
        if removed:
            log.info("journal retention removed=%d", removed)

    def _handle(self, item: Queued) -> None:
        n = item.notification
        body = json.dumps(n.model_dump(mode="json"), ensure_ascii=True, separators=(",", ":"))
        nid = self.journal.record_notification(NotificationRecord(
            received_at=item.received_at, receiver=clean(n.receiver), external_url=clean(redact(n.externalURL), 256),
            status=n.status,
            group_key=clean(n.groupKey, 512), alerts=len(n.alerts), truncated_alerts=n.truncatedAlerts,
            body=redact(body[:BODY_EXCERPT + 1024])[:BODY_EXCERPT],  # room for a secret across the cut
        ))
        if n.truncatedAlerts:
            log.warning("notification truncated by Alertmanager truncated_alerts=%d", n.truncatedAlerts)
        for alert in n.alerts:
            self._decide(nid, alert)

    def _decide(self, nid: int, alert: Alert) -> None:
        snap = self._snapshot()
        decision = self.policy.decide(alert, snap.streams)
        now = self._clock()
        action_id: int | None = None
        target: Target | None = None
        command = ""
        if decision.accepted:
            runner = self.runners[decision.action]
            ref = snap.streams[decision.stream]
            target = Target(decision.stream, ref.name, self.node, decision.action, _pids(snap, decision.stream))
            try:
                command = runner.describe(target)
            except ValueError as exc:  # e.g. a name that makes no valid unit: refuse, never run something else
                self.policy.finish(decision.stream)
                decision = Decision(FAILED, f"refused: {exc}", decision.stream, decision.action,
                                    decision.stream_label, decision.action_label, decision.node_label)
            else:
                action_id = self.journal.record_action(ActionRecord(
                    decided_at=now, stream=decision.stream, action=decision.action, runner=runner.kind,
                    command=command, dry_run=self.dry_run, fingerprint=alert.fingerprint,
                    starts_at=alert.startsAt,
                ))
        result = decision.result
        if decision.accepted and self.dry_run:
            result = DRY_RUN
        self.journal.record_decision(DecisionRecord(
            notification_id=nid, at=now, fingerprint=alert.fingerprint, starts_at=clean(alert.startsAt),
            alert_status=alert.status, alertname=clean(alert.labels.get("alertname", "")),
            stream=decision.stream_label, action=decision.action_label, node=decision.node_label,
            result=result, reason=decision.reason, action_id=action_id,
        ))
        log.info("alert decided result=%s stream=%s action=%s reason=%s", result, decision.stream_label,
                 decision.action_label, decision.reason)
        if not decision.accepted:
            self.metrics.actions.labels(decision.stream, decision.action, result).inc()
            return
        assert target is not None and action_id is not None  # set together above
        if self.dry_run:
            self.journal.finish_action(action_id, at=now, result=DRY_RUN, detail="dry run: nothing executed",
                                       exit_code=None, output="")
            self.metrics.actions.labels(decision.stream, decision.action, DRY_RUN).inc()
            self.policy.finish(decision.stream)
            log.warning("dry run: would run action=%s stream=%s command=%s", decision.action, decision.stream,
                        command)
            return
        with self._idle:
            self._pending += 1
        try:
            if self._pool is None:
                raise RuntimeError("worker not started")
            self._pool.submit(self._act, action_id, target, self.runners[decision.action])
        except RuntimeError:  # stopping: the pool takes no more work
            self.journal.finish_action(action_id, at=now, result=INTERRUPTED, detail="the exporter is stopping",
                                       exit_code=None, output="")
            self.policy.finish(decision.stream)
            self._done()

    # -- one action ----------------------------------------------------------------------------------------

    def _act(self, action_id: int, target: Target, runner: Runner) -> None:
        self.metrics.in_progress.inc()
        started = time.monotonic()
        outcome = RunOutcome(INTERRUPTED, "the exporter is stopping")
        try:
            # The pool may have kept it waiting: act on the processes of now, not of the decision.
            target = replace(target, pids=_pids(self._snapshot(), target.stream))
            self.journal.mark_started(action_id, self._clock())
            log.warning("action starting id=%d action=%s stream=%s runner=%s", action_id, target.action,
                        target.stream, runner.kind)
            outcome = runner.run(target, self._stop)
            if outcome.result == OK:
                verdict = self.verifier.wait(target.stream, frozenset(target.pids), self._clock(),
                                             self.verify_timeout, self._stop)
                result = OK if verdict.ok else (INTERRUPTED if self._stop.is_set() else FAILED)
                outcome = RunOutcome(result, f"{outcome.detail}; {verdict.detail}", outcome.exit_code,
                                     outcome.output)
        except Exception as exc:  # noqa: BLE001 - the outcome must be recorded whatever happened
            log.exception("action crashed id=%d", action_id)
            outcome = RunOutcome(FAILED, redact(f"internal error: {type(exc).__name__}: {exc}"))
        finally:
            elapsed = time.monotonic() - started
            try:
                self.journal.finish_action(action_id, at=self._clock(), result=outcome.result,
                                           detail=outcome.detail[:2000], exit_code=outcome.exit_code,
                                           output=outcome.output)
            finally:
                self.metrics.actions.labels(target.stream, target.action, outcome.result).inc()
                self.metrics.duration.labels(target.action).observe(elapsed)
                self.metrics.in_progress.dec()
                self.policy.finish(target.stream)
                self._done()
        log_fn = log.info if outcome.result == OK else log.error
        log_fn("action finished id=%d action=%s stream=%s result=%s seconds=%.1f detail=%s", action_id,
               target.action, target.stream, outcome.result, elapsed, outcome.detail)


def _pids(snap: Snapshot, stream: str) -> tuple[int, ...]:
    procs = snap.result("processes", ProcessesResult)
    entry = procs.streams.get(stream) if procs is not None else None
    return entry.pids if entry is not None else ()
