"""What the rows mean: per-stream bytes and responses, viewing sessions and the line of each client.

A viewer is a distinct client (IP + user agent) with a successful (1xx-3xx) request for the stream within
``viewers.window``; its session runs from its first request until ``window`` passes without one, and its
duration then goes into the histogram. A client keeps its subscriber line (the username its URLs named)
while it has a session on any stream. Open sessions are capped (``viewers.max_clients``, the oldest
dropped), so a flood of fake clients costs bounded memory. Only streams of the inventory are counted: a
request for ``/live/u/p/99999.ts`` cannot create a series.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from types import MappingProxyType

from exporter.sources.accesslog.parse import Row, parse_time
from exporter.sources.accesslog.result import CODES, Client, SessionDurations, StreamTraffic
from exporter.sources.accesslog.urls import StreamUrls

log = logging.getLogger(__name__)


class Viewing:
    """Counters, sessions and client lines, kept between rounds: :meth:`fold` adds a batch of rows,
    :meth:`expire` ends what the window has closed, the rest reads figures for a result."""

    def __init__(self, window: float, max_clients: int) -> None:
        self.window = window
        self.max_clients = max_clients
        self.traffic: dict[str, list[int]] = {}
        """stream -> [body bytes, 1xx, 2xx, 3xx, 4xx, 5xx] (index: the status's first digit)."""
        self.sessions: dict[Client, list[float]] = {}
        """(stream, ip, agent) -> [first seen, last seen]."""
        self.client_lines: dict[tuple[bytes, bytes], str] = {}
        """(ip, agent) -> the line its URLs named."""
        self.durations = SessionDurations()
        self._warned_full = False

    def fold(self, rows: Iterable[Row], urls: StreamUrls, inventory: frozenset[str], now: float) -> None:
        """Count parsed rows. Request times come from the log, clamped to ``now``.

        The one loop over every line a round reads, so it is kept to dict and set operations: the stream
        comes from the URL map (a pattern only for a path not seen before), the time is parsed once per
        second (consecutive lines share it).
        """
        urls.trim()
        known, learn = urls.known, urls.learn
        traffic, sessions, client_lines, window = self.traffic, self.sessions, self.client_lines, self.window
        ended: list[float] = []
        last_time, at = b"\n", now  # no log time is a newline
        for ip, time, path, status, size, agent in rows:
            stream, line = known.get(path) or learn(path)
            if stream not in inventory:
                continue
            if time != last_time:
                last_time = time
                parsed = parse_time(time)
                at = now if parsed is None or parsed > now else parsed
            counters = traffic.get(stream)
            if counters is None:
                counters = traffic[stream] = [0, 0, 0, 0, 0, 0]
            counters[0] += 0 if size == b"-" else int(size)
            counters[status[0] - 48] += 1  # b"2"[0] is 50
            if status[0] > 51:
                continue  # refused (wrong password, expired segment) or failed: not watching
            client = (stream, ip, agent)
            session = sessions.get(client)
            if session is None:
                sessions[client] = [at, at]
            elif at > session[1]:
                if at - session[1] > window:  # a gap longer than the window: the session ended, a new one starts
                    ended.append(session[1] - session[0])
                    session[0] = at
                session[1] = at
            if line is not None:
                client_lines[(ip, agent)] = line
        for seconds in ended:
            self.durations.observe(seconds)

    def expire(self, now: float) -> None:
        """End the sessions quiet for longer than the window, then drop the oldest past ``max_clients``."""
        cutoff = now - self.window
        gone = [client for client, (_, last) in self.sessions.items() if last < cutoff]
        for client in gone:
            first, last = self.sessions.pop(client)
            self.durations.observe(last - first)
        excess = len(self.sessions) - self.max_clients
        if excess > 0:
            if not self._warned_full:
                log.warning("too many viewer sessions, dropping the oldest max_clients=%d", self.max_clients)
                self._warned_full = True
            oldest = sorted(self.sessions, key=lambda client: self.sessions[client][1])[:excess]
            for client in oldest:
                del self.sessions[client]
            gone += oldest
        if gone:
            # A line is only recorded for a client with a session, so only the clients of removed sessions
            # can lose theirs: those with no session left on any stream.
            still = {(ip, agent) for _, ip, agent in self.sessions}
            for _, ip, agent in gone:
                if (ip, agent) not in still:
                    self.client_lines.pop((ip, agent), None)

    def streams(self) -> MappingProxyType[str, StreamTraffic]:
        return MappingProxyType({
            stream: StreamTraffic(counters[0], MappingProxyType(dict(zip(CODES, counters[2:6], strict=True))))
            for stream, counters in self.traffic.items()
        })

    def viewers(self) -> MappingProxyType[str, int]:
        """stream -> its open sessions."""
        return MappingProxyType(dict(Counter(stream for stream, _, _ in self.sessions)))

    def open_sessions(self) -> MappingProxyType[Client, tuple[float, ...]]:
        """A copy for a result: the next round changes the original while the API reads this one."""
        return MappingProxyType({client: tuple(span) for client, span in self.sessions.items()})
