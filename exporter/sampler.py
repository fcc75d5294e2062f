"""The sampling loop: runs every source in a worker thread and publishes one immutable Snapshot.

``/metrics`` only renders the latest snapshot, so scrapes are cheap and never touch /proc themselves.
Each source is isolated: an exception marks it down (logged once per change of state) and the round
goes on with the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from types import MappingProxyType
from typing import Any

from exporter.config import Config
from exporter.inventory import NamesFile, build_inventory
from exporter.redact import redact
from exporter.snapshot import EMPTY, Snapshot, SourceStatus, StreamRef
from exporter.sources import SampleContext, Source
from exporter.sources.processes import ProcessesResult, ProcessesSource
from exporter.streamstate import StreamMemory, state_path

log = logging.getLogger(__name__)

Listener = Callable[[Snapshot], None]


class Sampler:
    def __init__(
        self,
        config: Config,
        sources: Sequence[Source],
        processes: ProcessesSource | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        if processes is None:
            path = state_path(config)
            processes = ProcessesSource(config, memory=StreamMemory(path) if path is not None else None)
        self.processes = processes
        self.sources = list(sources)
        self._clock = clock
        self._snapshot = EMPTY
        self._was_up: dict[str, bool] = {}
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._names = NamesFile(config.streams.names.file if config.streams.names else None)
        self._task: asyncio.Task[None] | None = None
        self.ready = threading.Event()

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(snapshot)`` after every round (in the worker thread); the actions verifier uses it."""
        self._listeners.append(listener)

    def _run_source(self, source: Source, ctx: SampleContext) -> tuple[SourceStatus, Any]:
        started = time.perf_counter()
        try:
            result = source.sample(ctx)
        except Exception as exc:  # noqa: BLE001 - the one broad catch per source, by design
            # Redacted: the message may name a path or URL off a command line; it reaches the landing page.
            error = redact(f"{type(exc).__name__}: {exc}")
            status = SourceStatus(source.name, False, time.perf_counter() - started, error)
            if self._was_up.get(source.name, True):
                log.error("source failed source=%s error=%s", source.name, status.error, exc_info=exc)
            self._was_up[source.name] = False
            return status, None
        if not self._was_up.get(source.name, True):
            log.info("source recovered source=%s", source.name)
        self._was_up[source.name] = True
        return SourceStatus(source.name, True, time.perf_counter() - started), result

    def sample_once(self) -> Snapshot:
        """One blocking round. Runs in a worker thread; safe to call directly in tests."""
        with self._lock:
            now = self._clock()
            names = self._names.names()
            static = build_inventory(self.config, None, names)
            status, procs = self._run_source(self.processes, SampleContext(now, static, MappingProxyType({})))
            statuses = [status]
            results: dict[str, Any] = {self.processes.name: procs} if procs is not None else {}
            streams: MappingProxyType[str, StreamRef] | Any = build_inventory(
                self.config, procs if isinstance(procs, ProcessesResult) else None, names
            )
            for source in self.sources:
                status, result = self._run_source(source, SampleContext(now, streams, MappingProxyType(results)))
                statuses.append(status)
                if result is not None:
                    results[source.name] = result
            snap = Snapshot(now, True, streams, tuple(statuses), MappingProxyType(results))
            self._snapshot = snap
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
        """Release what the sources hold open (followed log files); the sampler is not used afterwards."""
        with self._lock:
            for source in (self.processes, *self.sources):
                close = getattr(source, "close", None)
                if close is not None:
                    close()
