"""The sampling loop: runs every source in a worker thread and publishes one immutable Snapshot.

``/metrics`` only renders the latest snapshot, so scrapes are cheap and never touch /proc themselves.
Each source is isolated: an exception marks it down (logged once per change of state) and the round
goes on with the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from exporter.config import Config
from exporter.inventory import Inventory
from exporter.redact import redact
from exporter.snapshot import EMPTY, RESULT_FIELDS, Snapshot, SourceStatus
from exporter.sources import SampleContext, Source
from exporter.sources.processes_result import ProcessesResult

log = logging.getLogger(__name__)

Listener = Callable[[Snapshot], None]
R = TypeVar("R")


def _freeze_startup_heap() -> None:
    """Move what start-up and the first round built (modules, config, GeoIP readers, and the per-process,
    per-socket and per-session state every later round keeps) out of the cyclic collector's reach, once.

    Full collections walk every tracked object, and a busy host's steady state is large and long-lived.
    Measured with bench/scale.py, alternating runs (2026-12-06): a steady round at 500 streams and 10,000
    viewers 146-155 ms CPU with this, 195-223 ms without; at 2,000 streams and 50,000 viewers 1.01-1.05 s
    with, 1.12-1.24 s without. A one-time process policy, not switching the collector off: it stays on for
    everything made afterwards, and reference counting still frees frozen objects that are let go. Only the
    exporter process asks for it (``iptv-exporter run``: build_runtime's ``freeze_heap``), never a library
    user or a test process, whose heap is not the exporter's to freeze."""
    gc.freeze()


class Sampler:
    """Runs one round at a time: the processes source, the inventory step, then every other source.

    It is given its parts (runtime.py builds them): ``processes`` first, because the inventory is derived
    from its result; ``inventory`` turns that result into the round's streams; ``sources`` then sample those
    streams. Each result goes to the Snapshot field named as its source.
    """

    def __init__(
        self,
        config: Config,
        processes: Source[ProcessesResult],
        inventory: Inventory,
        sources: Sequence[Source[object]] = (),
        clock: Callable[[], float] = time.time,
        *,
        freeze_heap: bool = False,
    ) -> None:
        self.config = config
        self._freeze_heap = freeze_heap
        self.processes = processes
        self.inventory = inventory
        self.sources = list(sources)
        names = [processes.name, *(s.name for s in self.sources)]
        unknown = sorted(set(names) - RESULT_FIELDS)
        if unknown or len(set(names)) != len(names):
            raise ValueError(f"every source needs its own Snapshot field: sources {names}, fields "
                             f"{sorted(RESULT_FIELDS)}")
        self._clock = clock
        self._snapshot = EMPTY
        self._was_up: dict[str, bool] = {}
        self._failed_open: dict[str, SourceStatus] = {}
        self._opened = False
        self._lock = threading.Lock()
        """Held for a whole round and for close(): rounds never overlap, and no source closes mid-sample."""
        self._listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None
        self.ready = threading.Event()

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(snapshot)`` after every round (in the worker thread); the actions verifier uses it."""
        self._listeners.append(listener)

    def _failed(self, source: Source[object], started: float, exc: Exception) -> SourceStatus:
        # Redacted: the message may name a path or URL off a command line; it reaches the landing page.
        error = redact(f"{type(exc).__name__}: {exc}")
        status = SourceStatus(source.name, False, time.perf_counter() - started, error)
        if self._was_up.get(source.name, True):
            log.error("source failed source=%s error=%s", source.name, status.error, exc_info=exc)
        self._was_up[source.name] = False
        return status

    def _open(self) -> None:
        """Open every source once, before the first round. One that fails to open is down for that round
        with the reason, and is sampled as usual from the next (it copes without what it could not open)."""
        self._opened = True
        for source in (self.processes, *self.sources):
            started = time.perf_counter()
            try:
                source.open()
            except Exception as exc:  # noqa: BLE001 - the one broad catch per source, by design
                self._failed_open[source.name] = self._failed(source, started, exc)

    def _run_source(self, source: Source[R], ctx: SampleContext) -> tuple[SourceStatus, R | None]:
        failed_open = self._failed_open.pop(source.name, None)
        if failed_open is not None:
            return failed_open, None
        started = time.perf_counter()
        try:
            result = source.sample(ctx)
        except Exception as exc:  # noqa: BLE001 - the one broad catch per source, by design
            return self._failed(source, started, exc), None
        if not self._was_up.get(source.name, True):
            log.info("source recovered source=%s", source.name)
        self._was_up[source.name] = True
        return SourceStatus(source.name, True, time.perf_counter() - started), result

    def sample_once(self) -> Snapshot:
        """One blocking round. Runs in a worker thread; safe to call directly in tests."""
        with self._lock:
            if not self._opened:
                self._open()
            now = self._clock()
            status, procs = self._run_source(self.processes, SampleContext(now, self.inventory.build(None)))
            statuses = [status]
            results: dict[str, object] = {self.processes.name: procs}
            streams = self.inventory.build(procs)
            ctx = SampleContext(now, streams, procs)
            for source in self.sources:
                status, results[source.name] = self._run_source(source, ctx)
                statuses.append(status)
            # By name: the field of each source's result (checked in __init__; its type by tests/test_snapshot.py)
            snap = Snapshot(now, True, streams, tuple(statuses), **results)  # type: ignore[arg-type]
            self._snapshot = snap
        if self._freeze_heap and not self.ready.is_set():
            _freeze_startup_heap()
        self.ready.set()
        for listener in self._listeners:
            try:
                listener(snap)
            except Exception:  # noqa: BLE001 - a listener must not stop sampling
                log.exception("snapshot listener failed")
        return snap

    async def run(self) -> None:
        """Sample every ``sample_interval`` until cancelled; rounds never overlap."""
        interval = self.config.sample_interval
        while True:
            started = time.monotonic()
            await asyncio.to_thread(self.sample_once)
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def start(self) -> None:
        """First round before serving, so the first scrape already shows every declared stream."""
        await asyncio.to_thread(self.sample_once)
        self._task = asyncio.create_task(self._loop_after_first())

    async def _loop_after_first(self) -> None:
        await asyncio.sleep(self.config.sample_interval)
        await self.run()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.close()

    def close(self) -> None:
        """Release what the sources hold open (followed log files, sockets, connections); idempotent. The
        sampler is not used afterwards."""
        with self._lock:
            for source in (self.processes, *self.sources):
                try:
                    source.close()
                except Exception:  # noqa: BLE001 - one source failing to close must not keep the others open
                    log.exception("source close failed source=%s", source.name)
