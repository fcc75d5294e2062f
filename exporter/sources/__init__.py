"""Sources: each reads one part of the host and returns plain dataclasses. None imports prometheus_client.

What every source shares lives here: :class:`StreamRef` (one stream of the inventory), :class:`SampleContext`
(what a round gives a source) and the :class:`Source` protocol. It imports no source module but the
processes source's result types, so a source can import it without importing the snapshot (which imports
every source's result type).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from exporter.sources.processes_result import ProcessesResult

R = TypeVar("R", covariant=True)


@dataclass(frozen=True, slots=True)
class StreamRef:
    """One stream of the inventory: declared in the config, discovered from a process, or both."""

    id: str
    name: str
    declared: bool
    playlist: str | None = None
    progress: str | None = None
    restartable: bool = True
    """Whether an action may run for it: declared, or discovered from a process of an owner the discovery
    rules allow (the receiver consults this, whoever sent the alert)."""


@dataclass(frozen=True, slots=True)
class SampleContext:
    """What a source may look at while sampling: the time, the inventory and the processes source's result.

    The processes result is the only earlier result a source sees (None for the processes source itself,
    and in a round where it failed): sources do not depend on one another otherwise.
    """

    now: float
    streams: Mapping[str, StreamRef]
    processes: ProcessesResult | None = None


class Source(Protocol[R]):
    """A blocking sampler of one thing, with a lifecycle the sampler drives.

    ``open`` is called once before the first round (acquire files, sockets, connections); ``sample`` every
    round, in the sampler's worker thread, never on the event loop; ``close`` when the sampler stops
    (release; idempotent). A source with nothing to hold defines ``open`` and ``close`` as no-ops. A source
    may keep state between rounds (counters that must stay monotonic across restarts). Raising marks the
    source down for the round; the others keep going. ``name`` is also the :class:`~exporter.snapshot.Snapshot`
    field its result goes to.
    """

    name: str

    def open(self) -> None: ...

    def sample(self, ctx: SampleContext) -> R: ...

    def close(self) -> None: ...
