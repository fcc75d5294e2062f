"""Sources: each reads one part of the host and returns plain dataclasses. None imports prometheus_client."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from exporter.snapshot import StreamRef


@dataclass(frozen=True, slots=True)
class SampleContext:
    """What a source may look at while sampling: the time, the inventory, earlier sources' results."""

    now: float
    streams: Mapping[str, StreamRef]
    results: Mapping[str, Any]


class Source(Protocol):
    """A blocking sampler of one thing. ``sample`` runs in a worker thread, never on the event loop.

    A source may keep state between rounds (counters that must stay monotonic across restarts).
    Raising marks the source down for this round; the others keep going.
    """

    name: str

    def sample(self, ctx: SampleContext) -> Any: ...
