"""What one sampling round produced: immutable, so a scrape can render it while the next round runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

T = TypeVar("T")


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
class SourceStatus:
    name: str
    up: bool
    duration_seconds: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    timestamp: float
    complete: bool
    """False only for the empty snapshot that exists before the first round finished."""
    streams: Mapping[str, StreamRef] = field(default_factory=lambda: MappingProxyType({}))
    statuses: tuple[SourceStatus, ...] = ()
    results: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def result(self, name: str, kind: type[T]) -> T | None:
        """The result of source ``name`` if it ran and succeeded this round, typed."""
        value = self.results.get(name)
        return value if isinstance(value, kind) else None


EMPTY = Snapshot(timestamp=0.0, complete=False)
