"""The access-log source: follows the log, counts each round's new lines, and gives the round's figures.

A round reads the lines written since the last one (:class:`~exporter.sources.tail.FileFollower`, like
``tail -F``: rotation and copytruncate safe), parses them in one pass for the configured format
(exporter.sources.accesslog.parse), and folds the rows in one loop: the path's stream and line from the
URL map (exporter.sources.accesslog.urls, one pattern match per distinct path), the stream's bytes and
responses, the client's session (exporter.sources.accesslog.viewing). Only streams of the inventory are
counted: a request for ``/live/u/p/99999.ts`` cannot create a series.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from types import MappingProxyType

from exporter.config import Config
from exporter.redact import excerpt
from exporter.sources import SampleContext
from exporter.sources.accesslog.parse import Parser, Row, parser_for
from exporter.sources.accesslog.result import AccessLogResult, Lookup, ips_by_line, suspected_lines
from exporter.sources.accesslog.urls import StreamUrls, source_redactor
from exporter.sources.accesslog.viewing import Viewing
from exporter.sources.tail import FileFollower

log = logging.getLogger(__name__)


class AccessLogSource:
    """Follows the access log; keeps counters, sessions and the URL map between rounds."""

    name = "accesslog"

    def __init__(self, config: Config, lookup: Lookup, *, refresh: Callable[[], None] | None = None) -> None:
        cfg = config.viewers.access_log
        if cfg is None:
            raise ValueError("viewers.access_log is not configured")
        self._cfg = cfg
        self._sharing = config.viewers.sharing
        self._lookup = lookup
        self._refresh = refresh
        self._follower: FileFollower | None = None
        """Opened by :meth:`open` (or the first sample), not here: an unreadable log marks the source down, it
        does not stop the exporter from starting."""
        self.urls = StreamUrls(cfg)
        self.redactor = source_redactor(cfg)
        self.parse: Parser = parser_for(cfg)
        self.viewing = Viewing(config.viewers.window, config.viewers.max_clients)
        self._inventory: frozenset[str] = frozenset()
        self.lines_total = 0
        self.skipped_total = 0

    # -- lifecycle (exporter.sources.Source) ------------------------------------------------------------

    def open(self) -> None:
        """Open the log (at its end unless ``from_start``). A log that is missing is read once it appears;
        one that cannot be opened (an unsafe symlink) marks the round down, and the next round tries again."""
        self._opened()

    def _opened(self) -> FileFollower:
        if self._follower is None:
            self._follower = FileFollower(self._cfg.path, from_start=self._cfg.from_start)
        return self._follower

    def close(self) -> None:
        if self._follower is not None:
            self._follower.close()
            self._follower = None

    def sample(self, ctx: SampleContext) -> AccessLogResult:
        if self._refresh is not None:
            self._refresh()
        lines = self._opened().read_lines()
        self.set_inventory(ctx.streams)
        self.ingest(lines, ctx.now)
        return self.result(ctx.now)

    def set_inventory(self, streams: Iterable[str]) -> None:
        self._inventory = frozenset(streams)

    def resolve(self, request: bytes) -> tuple[str | None, str | None]:
        """(stream, line) of a request line or path, or (None, None): not a stream URL or not in the inventory."""
        stream, line = self.urls.resolve(request)
        return (stream, line) if stream in self._inventory else (None, None)

    # -- each round's new lines -------------------------------------------------------------------------

    def ingest(self, lines: list[bytes], now: float) -> None:
        """Count a batch of complete lines. Request times come from the log (clamped to ``now``)."""
        if not lines:
            return
        rows = self.parse(lines)
        skipped = len(lines) - len(rows)
        self.lines_total += len(lines)
        self.skipped_total += skipped
        self.fold(rows, now)
        if skipped and log.isEnabledFor(logging.DEBUG):
            self._log_skipped(lines, skipped)

    def fold(self, rows: Iterable[Row], now: float) -> None:
        """Count parsed rows (:meth:`Viewing.fold`) against this round's inventory."""
        self.viewing.fold(rows, self.urls, self._inventory, now)

    def _log_skipped(self, lines: list[bytes], skipped: int) -> None:
        first = next((line for line in lines if not self.parse([line])), b"")
        # Never the raw line: a count and a redacted, masked excerpt (exporter.redact.excerpt).
        log.debug("access log lines skipped (unparsable) count=%d first_excerpt=%s",
                  skipped, excerpt(first[:400].decode("utf-8", "replace"), redactor=self.redactor))

    # -- once per round ---------------------------------------------------------------------------------

    def result(self, now: float) -> AccessLogResult:
        """The round's figures, after ending the sessions the window has closed."""
        viewing = self.viewing
        viewing.expire(now)
        ips = ips_by_line(viewing.client_lines)
        follower = self._follower
        return AccessLogResult(
            streams=viewing.streams(),
            viewers=viewing.viewers(),
            lines_online=len(ips),
            sharing_lines=suspected_lines(ips, self._sharing, self._lookup),
            lines_total=self.lines_total,
            skipped_lines_total=self.skipped_total,
            sessions=viewing.durations.histogram(),
            rotations=follower.rotations + follower.truncations if follower else 0,
            open_sessions=viewing.open_sessions(),
            client_lines=MappingProxyType(dict(viewing.client_lines)),
            lookup=self._lookup,
            overlong_lines_total=follower.overlong_lines if follower else 0,
        )
