"""Who watches what, from the panel's own table of live connections (XUI.one / XC_VM, Xtream Codes / Xtream UI).

On these panels the access log cannot tell: their nginx ships with ``access_log off``, and a viewer's URL is
``/live/<u>/<p>/<id>.m3u8`` only once, then ``/auth/<token>`` and ``/hls/<token>`` (XUI.one / XC_VM) that name no
stream. The panel itself writes a row per open connection (``lines_live``: user, stream, server, IP, user agent,
start, ``hls_end``; Xtream's ``user_activity_now``), so that table is the truth: one bounded query per round,
with a read-only account, in the sampler's worker thread (never on the event loop).

The result is an :class:`~exporter.sources.accesslog.result.AccessLogResult`, judged by the same rules as the
access log's (a viewer is a distinct IP + user agent on a stream; sharing by
:func:`~exporter.sources.accesslog.result.suspected_lines`), so the metrics, dashboards and /api/connections
read it the same way. What it has not: bytes and HTTP responses per stream (the table holds none), and
connections shorter than a round.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from exporter.config import Config
from exporter.config.viewers import PanelDb
from exporter.errors import ExporterError
from exporter.sources import SampleContext
from exporter.sources.accesslog import AccessLogResult, Lookup, SessionDurations, ips_by_line, suspected_lines

log = logging.getLogger(__name__)

NAME = "paneldb"


class PanelDbError(ExporterError):
    """The panel's database could not be read (the source is down for the round)."""


@dataclass(frozen=True, slots=True)
class LiveRow:
    """One row of the live table: an open connection as the panel recorded it."""

    activity_id: int
    stream: str
    ip: str
    agent: str
    line: str | None
    started: float


def query(cfg: PanelDb) -> tuple[str, tuple[Any, ...]]:
    """The one query of a round: open connections (``hls_end = 0``), newest first, at most ``max_rows``.

    Table and column names come from :data:`~exporter.config.viewers.PANEL_TABLES`, never from input; values
    are parameters.
    """
    live, users, _ = cfg.tables()
    where, args = ["l.`hls_end` = 0"], []
    if cfg.server_id is not None:
        where.append("l.`server_id` = %s")
        args.append(cfg.server_id)
    sql = (
        f"SELECT l.`activity_id`, l.`stream_id`, l.`user_ip`, l.`user_agent`, u.`username`, l.`date_start` "
        f"FROM `{live}` l LEFT JOIN `{users}` u ON u.`id` = l.`user_id` "
        f"WHERE {' AND '.join(where)} ORDER BY l.`activity_id` DESC LIMIT %s"
    )
    return sql, (*args, cfg.max_rows)


def parse_rows(rows: Sequence[Sequence[Any]]) -> tuple[list[LiveRow], int]:
    """Rows as the query returns them -> (usable rows, rows skipped: no stream, no IP)."""
    out: list[LiveRow] = []
    skipped = 0
    for activity_id, stream_id, ip, agent, username, started in rows:
        if stream_id is None or not ip:
            skipped += 1
            continue
        out.append(LiveRow(int(activity_id), str(stream_id), str(ip), str(agent or ""),
                           str(username) if username else None, float(started or 0)))
    return out, skipped


class PanelDbSource:
    """Reads the live table every round; keeps the connection and the sessions it has seen between rounds."""

    name = NAME

    def __init__(self, config: Config, lookup: Lookup, *, connect: Callable[[PanelDb], Any] | None = None,
                 refresh: Callable[[], None] | None = None) -> None:
        cfg = config.viewers.panel_db
        if cfg is None:
            raise ValueError("viewers.panel_db is not configured")
        self.cfg = cfg
        self._sharing = config.viewers.sharing
        self._lookup = lookup
        self._refresh = refresh
        self._connect = connect or connect_pymysql
        self._conn: Any = None
        self._open: dict[int, tuple[float, float]] = {}
        """activity id -> (started, last seen): rows that vanish are ended sessions."""
        self._durations = SessionDurations()
        self.rows_total = 0
        self.skipped_total = 0

    def open(self) -> None:
        """Nothing yet: the first round connects, so a database that is down marks the source down rather
        than stopping the exporter from starting."""

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection: nothing more to do with it
                log.debug("panel db connection close failed", exc_info=True)
            self._conn = None

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[Sequence[Any]]:
        if self._conn is None:
            self._conn = self._connect(self.cfg)
        with self._conn.cursor() as cursor:
            cursor.execute(sql, args)
            return list(cursor.fetchall())

    def _fetch(self) -> list[Sequence[Any]]:
        """The round's rows. A kept connection that went stale (the server restarted, a timeout) is opened
        again once; a second failure, or a failure to connect at all, is the round's error."""
        sql, args = query(self.cfg)
        fresh = self._conn is None
        try:
            return self._query(sql, args)
        except PanelDbError:
            raise
        except Exception as exc:  # noqa: BLE001 - the driver's errors, turned into one that says where
            self.close()
            if fresh:
                raise PanelDbError(f"panel database {self._where()}: {type(exc).__name__}: {exc}") from None
        try:
            return self._query(sql, args)
        except PanelDbError:
            raise
        except Exception as exc:  # noqa: BLE001 - as above
            self.close()
            raise PanelDbError(f"panel database {self._where()}: {type(exc).__name__}: {exc}") from None

    def _where(self) -> str:
        live, _, database = self.cfg.tables()
        at = str(self.cfg.socket) if self.cfg.socket else f"{self.cfg.host}:{self.cfg.port}"
        return f"{self.cfg.user}@{at}/{database}.{live}"

    def sample(self, ctx: SampleContext) -> AccessLogResult:
        if self._refresh is not None:
            self._refresh()
        rows, skipped = parse_rows(self._fetch())
        self.rows_total += len(rows)
        self.skipped_total += skipped
        return self.result(rows, ctx.streams, ctx.now)

    def result(self, rows: list[LiveRow], inventory: Any, now: float) -> AccessLogResult:
        seen: dict[int, tuple[float, float]] = {}
        sessions: dict[tuple[str, bytes, bytes], tuple[float, float]] = {}
        client_lines: dict[tuple[bytes, bytes], str] = {}
        for row in rows:
            seen[row.activity_id] = (row.started, now)
            if row.stream not in inventory:
                continue  # not one of ours: no series for it (cardinality)
            key = (row.stream, row.ip.encode(), row.agent.encode())
            first = min(row.started, sessions[key][0]) if key in sessions else row.started
            sessions[key] = (first, now)
            if row.line is not None:
                client_lines[(key[1], key[2])] = row.line
        for activity, (started, last) in self._open.items():
            if activity not in seen:
                self._durations.observe(max(0.0, last - started))
        self._open = seen
        ips = ips_by_line(client_lines)
        return AccessLogResult(
            streams=MappingProxyType({}),
            viewers=MappingProxyType(dict(Counter(stream for stream, _, _ in sessions))),
            lines_online=len(ips),
            sharing_lines=suspected_lines(ips, self._sharing, self._lookup),
            lines_total=self.rows_total,
            skipped_lines_total=self.skipped_total,
            sessions=self._durations.histogram(),
            rotations=0,
            open_sessions=MappingProxyType(sessions),
            client_lines=MappingProxyType(client_lines),
            lookup=self._lookup,
        )


def connect_pymysql(cfg: PanelDb) -> Any:
    """A PyMySQL connection (the ``paneldb`` extra), read-only by intent: the account should only have SELECT."""
    try:
        import pymysql
    except ImportError:
        raise PanelDbError("viewers.panel_db needs PyMySQL: pip install 'iptv-exporter[paneldb]'") from None
    try:
        password = cfg.password_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise PanelDbError(f"password_file {cfg.password_file}: cannot read: "
                           f"{getattr(exc, 'strerror', None) or exc}") from None
    _, _, database = cfg.tables()
    return pymysql.connect(
        host=cfg.host, port=cfg.port, unix_socket=str(cfg.socket) if cfg.socket else None, user=cfg.user,
        password=password, database=database, connect_timeout=cfg.timeout, read_timeout=cfg.timeout,
        write_timeout=cfg.timeout, autocommit=True, charset="utf8mb4",
    )

