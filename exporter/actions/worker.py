"""The action worker: takes queued notifications off the web loop, decides, runs, verifies, records.

One dispatcher thread decides alert by alert (:mod:`exporter.actions.decide`; so decisions are serial and
the journal reads like the story); accepted actions run on a pool of ``max_concurrent`` threads, at most
one per stream (the policy holds the stream's slot until the outcome is recorded). Nothing here blocks the
event loop: the receiver only puts the parsed notification on a bounded queue.

The dispatcher takes what is queued in batches (what arrives within ``BATCH_WAIT`` of the first, up to
``BATCH_MAX``) and journals each batch in one transaction; an accepted action is handed to the pool only
after its batch is committed, and runs only once its start is journalled too, so an action that runs is
always in the journal as started (dedup across restarts). When a write fails, the policy's reservations
for what did not start are cancelled: the state never says more than the journal, and Alertmanager's
repeat of the alert runs it. While the journal is down the dispatcher tries to reopen it every
``REVIVE_EVERY`` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from exporter.actions.decide import Accepted, DecidedBatch, Decider, Queued, stream_pids
from exporter.actions.errors import JournalError
from exporter.actions.journal import Journal
from exporter.actions.metrics import ActionMetrics
from exporter.actions.payload import Notification
from exporter.actions.policy import FAILED, INTERRUPTED, NOT_STARTED, OK, Policy
from exporter.actions.runners import Runner, RunOutcome
from exporter.actions.verify import Verifier
from exporter.redact import redact
from exporter.snapshot import Snapshot

log = logging.getLogger(__name__)

RETENTION_EVERY = 3600.0
REVIVE_EVERY = 5.0
"""While the journal is down, how often the dispatcher tries to open it again (the hook also tries, at most
once a second, when a notification arrives)."""
BATCH_WAIT = 0.010
"""Once a notification is queued, how long the dispatcher waits for more before it decides: a worker woken
for every notification of a burst costs a thread switch and a GIL handover each (about a fifth of the
webhook's CPU, measured); 10 ms is nothing next to Alertmanager's own timing."""
BATCH_MAX = 512
"""Notifications decided and journalled in one transaction (one fsync), at most. A batch takes whatever is
queued, so under a burst the worker commits once per wake-up rather than once per notification, and stays
ahead of the receiver: journalling 512 notifications takes about 10 ms, 50-150 ms on the loaded 2-core
benchmark host with a thread competing for the GIL (measured 2026-12-06). An API read of the journal waits
for the batch being written."""


@dataclass(frozen=True, slots=True)
class _Started:
    """An accepted action, journalled: handed to the pool with its id."""

    action_id: int
    accepted: Accepted


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
        self.verifier = verifier
        self.metrics = metrics
        self._snapshot = snapshot
        self._clock = clock
        self._decider = Decider(node=node, dry_run=dry_run, policy=policy, runners=dict(runners), snapshot=snapshot,
                                clock=clock)
        self._queue: queue.Queue[Queued | None] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._idle = threading.Condition()
        self._pending = 0
        self._last_prune = 0.0
        self._opened = False
        """Whether the journal's state has been read into the policy (at its first successful open)."""
        self._open_lock = threading.Lock()
        self._unwritten: dict[int, tuple[float, RunOutcome]] = {}
        """Outcomes the journal could not take when they happened (action id -> when, outcome)."""

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Read the journal's state (if it is up; else at its first successful open) and start the threads."""
        self.revive(0.0)
        self._pool = ThreadPoolExecutor(self.max_concurrent, thread_name_prefix="iptv-action")
        self._thread = threading.Thread(target=self._loop, name="iptv-actions", daemon=True)
        self._thread.start()

    def revive(self, min_interval: float) -> bool:
        """Whether the journal can take work, after trying to open it again if it is down (at most once per
        ``min_interval`` seconds). At its first open the policy is restored from it; outcomes it missed
        while down are written."""
        if self.journal.up and self._opened and not self._unwritten:
            return True
        with self._open_lock:
            if not self.journal.revive(min_interval):
                return False
            try:
                if not self._opened:
                    self._restore()
                    self._opened = True
                self._write_unwritten()
            except JournalError:
                return False
            return True

    def _restore(self) -> None:
        now = self._clock()
        interrupted, not_started = self.journal.mark_unfinished(now)
        if interrupted or not_started:
            log.warning("actions without outcome from a previous run interrupted=%d not_started=%d",
                        interrupted, not_started)
        self._prune(now)
        self.policy.restore(self.journal.history(now - self.retention), self.journal.resets())

    def _write_unwritten(self) -> None:
        for action_id, (at, outcome) in list(self._unwritten.items()):
            self._write_outcome(action_id, at, outcome)
            del self._unwritten[action_id]

    def _write_outcome(self, action_id: int, at: float, outcome: RunOutcome) -> None:
        self.journal.finish_action(action_id, at=at, result=outcome.result, detail=outcome.detail[:2000],
                                   exit_code=outcome.exit_code, output=outcome.output, ran=outcome.ran)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking work; running verifications end early (recorded interrupted); commands are left to
        finish; actions still waiting for a worker are recorded not_started (the repeat runs them)."""
        self._stop.set()
        with contextlib.suppress(queue.Full):  # full: the dispatcher sees _stop after its current item
            self._queue.put_nowait(None)
        if self._thread is not None:
            self._thread.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self.journal.up:
            try:
                interrupted, not_started = self.journal.mark_unfinished(self._clock())
            except JournalError:
                return  # logged by the journal; the next start marks them
            if not_started:
                log.warning("actions waiting for a worker at stop not_started=%d: they run when Alertmanager"
                            " repeats their alerts", not_started)

    def submit(self, notification: Notification, received_at: float, body: bytes) -> bool:
        """Queue a notification (``body`` as received); False when the queue is full (the receiver answers
        503, Alertmanager retries)."""
        with self._idle:
            try:
                self._queue.put_nowait(Queued(notification, received_at, body))
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

    def _done(self, count: int = 1) -> None:
        with self._idle:
            self._pending -= count
            self._idle.notify_all()

    # -- dispatcher --------------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=None if self.journal.up else REVIVE_EVERY)
            except queue.Empty:
                self.revive(REVIVE_EVERY)
                continue
            if item is None:
                break
            batch = [item]
            self._stop.wait(BATCH_WAIT)
            while len(batch) < BATCH_MAX:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    break  # stop() was called: _stop is set, the loop ends after this batch
                batch.append(item)
            try:
                self._handle_batch(batch)
            except Exception:  # noqa: BLE001 - the one dispatcher must outlive any batch, or every later restart is lost
                log.exception("batch handling failed: its notifications are not acted on notifications=%d; "
                              "Alertmanager's repeat retries them", len(batch))
            finally:
                self._done(len(batch))
            now = self._clock()
            if now - self._last_prune > RETENTION_EVERY:
                self._prune(now)

    def _prune(self, now: float) -> None:
        self._last_prune = now
        try:
            removed = self.journal.prune(now - self.retention)
        except JournalError:
            return  # logged by the journal; retention waits for the next round
        if removed:
            log.info("journal retention removed=%d", removed)

    def _handle_batch(self, items: list[Queued]) -> None:
        with contextlib.suppress(JournalError):  # the journal is down then: revive() says so
            self.journal.verify_file()
        if not self.revive(1.0):
            log.error("action journal unusable: notifications not acted on notifications=%d; they are when"
                      " Alertmanager repeats them", len(items))
            return
        batch = self._decider.decide(items)
        try:
            action_ids = self.journal.record(batch.notifications)
        except Exception as exc:  # noqa: BLE001 - the write failed: nothing of the batch is recorded, so nothing runs
            why = exc.reason if isinstance(exc, JournalError) else f"{type(exc).__name__}: {exc}"
            log.error("journal write failed: the batch's actions are not run and nothing of it is remembered"
                      " notifications=%d problem=%s", len(items), why)
            self._give_back(batch)
            return
        for (stream, action, result), count in batch.counted.items():
            self.metrics.count(stream, action, result, count)
        for action_id, accepted in zip(action_ids, batch.accepted, strict=True):  # one id per action, in order
            if accepted is not None:
                self._start(_Started(action_id, accepted))
        if log.isEnabledFor(logging.INFO):
            log.info("notifications decided notifications=%d alerts=%d results=%s", len(items),
                     sum(batch.results.values()), ",".join(f"{k}:{v}" for k, v in sorted(batch.results.items())))

    def _give_back(self, batch: DecidedBatch) -> None:
        """A batch that was not journalled: nothing of it ran, so no dedup key, cooldown or budget holds."""
        for reservation in batch.reserved:
            self.policy.cancel(reservation)
        for accepted in batch.accepted:
            if accepted is not None:
                self.metrics.count(accepted.target.stream, accepted.target.action, FAILED)

    def _start(self, started: _Started) -> None:
        """Hand a journalled (committed) action to the pool."""
        with self._idle:
            self._pending += 1
        try:
            if self._pool is None:
                raise RuntimeError("worker not started")
            self._pool.submit(self._act, started)
        except RuntimeError:  # stopping: the pool takes no more work
            self.policy.cancel(started.accepted.reservation)
            self._finish_unstarted(started, "the exporter is stopping; it runs when Alertmanager repeats the alert")
            self._done()

    def _finish_unstarted(self, started: _Started, detail: str) -> None:
        """An accepted action that will not start: recorded not_started (later, if the journal is down)."""
        target = started.accepted.target
        self.metrics.count(target.stream, target.action, NOT_STARTED)
        at, outcome = self._clock(), RunOutcome(NOT_STARTED, detail)
        try:
            self._write_outcome(started.action_id, at, outcome)
        except JournalError:
            self._unwritten[started.action_id] = (at, outcome)

    # -- one action ----------------------------------------------------------------------------------------

    def _act(self, started: _Started) -> None:
        action_id, a = started.action_id, started.accepted
        target, runner = a.target, a.runner
        why_not = "the exporter is stopping; it runs when Alertmanager repeats the alert"
        if not self._stop.is_set():
            try:
                self.journal.mark_started(action_id, self._clock())  # durable before anything runs
                why_not = ""
            except JournalError as exc:
                why_not = f"not started: {exc.reason}"
        if why_not:
            try:
                self.policy.cancel(a.reservation)  # it never ran: the alert's repeat runs it
                self._finish_unstarted(started, why_not)
            finally:
                self._done()
            return
        self.metrics.in_progress.inc()
        began = time.monotonic()
        outcome = RunOutcome(INTERRUPTED, "the exporter is stopping")
        try:
            # The pool may have kept it waiting: act on the processes of now, not of the decision.
            target = replace(target, pids=stream_pids(self._snapshot(), target.stream))
            log.warning("action starting id=%d action=%s stream=%s runner=%s", action_id, target.action,
                        target.stream, runner.kind)
            outcome = runner.run(target, self._stop)
            if not outcome.ran:  # nothing reached the stream: no dedup key, the alert's repeat tries again
                self.policy.cancel(a.reservation)
                outcome = replace(outcome, detail=f"{outcome.detail}; nothing ran: Alertmanager's repeat tries again")
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
            elapsed = time.monotonic() - began
            at = self._clock()
            try:
                self._write_outcome(action_id, at, outcome)
            except JournalError:  # it ran (the start is journalled): only its outcome waits for the journal
                self._unwritten[action_id] = (at, outcome)
            finally:
                self.metrics.actions.labels(target.stream, target.action, outcome.result).inc()
                self.metrics.duration.labels(target.action).observe(elapsed)
                self.metrics.in_progress.dec()
                self.policy.finish(target.stream)
                self._done()
        log_fn = log.info if outcome.result == OK else log.error
        log_fn("action finished id=%d action=%s stream=%s result=%s seconds=%.1f detail=%s", action_id,
               target.action, target.stream, outcome.result, elapsed, outcome.detail)

