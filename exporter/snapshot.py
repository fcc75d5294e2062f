"""What one sampling round produced: immutable, so a scrape can render it while the next round runs.

One typed field per source, named as the source is (``Source.name``): a consumer reads ``snap.sockets``,
and mypy checks what it does with it. A field is None when its source is not configured, or failed this
round (``statuses`` says which). Adding a source adds a field here; tests/test_snapshot.py checks that
every source the runtime wires returns its field's type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType

from exporter.sources import StreamRef
from exporter.sources.accesslog import AccessLogResult
from exporter.sources.errorlogs import ErrorsResult
from exporter.sources.hls import HlsResult
from exporter.sources.processes_result import ProcessesResult
from exporter.sources.progress import ProgressResult
from exporter.sources.sockets import SocketsResult
from exporter.sources.statslog import StatsLogResult


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
    processes: ProcessesResult | None = None
    progress: ProgressResult | None = None
    statslog: StatsLogResult | None = None
    hls: HlsResult | None = None
    errors: ErrorsResult | None = None
    sockets: SocketsResult | None = None
    accesslog: AccessLogResult | None = None
    paneldb: AccessLogResult | None = None
    """The panel database's live connections, in the access log's shape."""

    @property
    def viewers(self) -> AccessLogResult | None:
        """This round's viewer figures: the panel DB's where it is configured, else the access log's."""
        return self.paneldb if self.paneldb is not None else self.accesslog


RESULT_FIELDS = frozenset(f.name for f in fields(Snapshot)) - {"timestamp", "complete", "streams", "statuses"}
"""The names a source may have: each is the Snapshot field its result fills."""

EMPTY = Snapshot(timestamp=0.0, complete=False)
