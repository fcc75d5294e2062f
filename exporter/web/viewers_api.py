"""Who is watching now, as JSON for a Grafana table: ``GET /api/connections`` and ``GET /api/lines/sharing``.

Both answer with a flat JSON array of objects (what the Grafana JSON / Infinity datasources turn into a
table). They show client IPs and usernames, so they sit behind a bearer token (exporter.web.auth): the
read-only ``viewers.api.token_file``, the one to give Grafana, or the action API's ``actions.token_file``
(the same object as the webhook's, so a rotation reaches both; accepted so that configs from before the
read-only token keep working, and it gives its holder nothing more: it can already restart streams). The
read-only token opens nothing else. Without either token they answer 404, like any unknown path; a
missing or wrong token answers 401. Passwords never appear: the access-log source keeps no paths.

``/api/connections`` joins the two halves of a viewer: the access log says which client (IP + user agent)
watches which stream on which line, the kernel's sockets say how long the connection has been up and how
many bytes it has taken. Clients behind one IP (NAT) share that IP's socket figures. Connections without
a request in the window (an MPEG-TS download is logged only when it ends) are listed with no stream.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from exporter.config import Config
from exporter.errors import TokenFileError
from exporter.geo import GeoInfo, Lookup
from exporter.snapshot import Snapshot
from exporter.sources.sockets import Connection
from exporter.web.auth import BearerToken, unauthorized
from exporter.web.errorbody import error_response

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10000

Row = dict[str, Any]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _geo_fields(g: GeoInfo) -> Row:
    return {"country": g.country, "city": g.city, "latitude": g.latitude, "longitude": g.longitude,
            "asn": g.asn, "isp": g.isp}


def live_viewers(snap: Snapshot, lookup: Lookup, now: float) -> list[Row]:
    """One row per client on a stream, plus one per connection of an IP with no such client. Pure."""
    socks = snap.sockets
    log_result = snap.viewers
    by_ip: dict[str, list[Connection]] = {}
    for c in socks.connections if socks else ():
        by_ip.setdefault(c.peer_ip, []).append(c)
    rows: list[Row] = []
    for v in log_result.clients if log_result else ():
        conns = by_ip.get(v.ip, [])
        since = min([v.first_seen, *(c.since for c in conns)])
        sent = [c.sent_bytes for c in conns if c.sent_bytes is not None]
        ref = snap.streams.get(v.stream)
        rows.append({
            "stream": v.stream,
            "stream_name": ref.name if ref else v.stream,
            "line": v.line,
            "client_ip": v.ip,
            **_geo_fields(conns[0].geo if conns else lookup(v.ip)),
            "connected_since": _iso(since),
            "duration_seconds": round(max(0.0, now - since), 3),
            "last_request": _iso(v.last_seen),
            "bytes_sent": sum(sent) if sent else None,
            "connections": len(conns),
            "user_agent": v.agent,
        })
    seen_ips = {v.ip for v in log_result.clients} if log_result else set()
    for ip, conns in by_ip.items():
        if ip in seen_ips:
            continue
        for c in conns:
            rows.append({
                "stream": None, "stream_name": None, "line": None, "client_ip": ip, **_geo_fields(c.geo),
                "connected_since": _iso(c.since), "duration_seconds": round(max(0.0, now - c.since), 3),
                "last_request": None, "bytes_sent": c.sent_bytes, "connections": 1, "user_agent": None,
            })
    rows.sort(key=lambda r: (-r["duration_seconds"], r["client_ip"], r["stream"] or ""))
    return rows


def filter_rows(rows: Sequence[Row], query: Mapping[str, str]) -> list[Row]:
    """Apply ``stream``, ``country`` and ``limit``; raises ValueError with a message for a bad value."""
    stream = query.get("stream")
    country = query.get("country")
    raw_limit = query.get("limit", str(DEFAULT_LIMIT))
    try:
        limit = int(raw_limit)
    except ValueError:
        raise ValueError(f"limit must be an integer 1..{MAX_LIMIT}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be an integer 1..{MAX_LIMIT}")
    out = [
        r for r in rows
        if (not stream or r["stream"] == stream) and (not country or r["country"].upper() == country.upper())
    ]
    return out[:limit]


def sharing_rows(snap: Snapshot) -> list[Row]:
    log_result = snap.viewers
    if log_result is None:
        return []
    return [
        {"line": s.line, "ip_count": len(s.ips), "ips": list(s.ips), "countries": list(s.countries),
         "country_count": len(s.countries), "streams": list(s.streams), "clients": s.clients}
        for s in log_result.sharing
    ]


def read_only_token(config: Config, webhook: BearerToken | None) -> BearerToken | None:
    """``viewers.api.token_file``, loaded (None when not configured); TokenFileError when the exporter must not
    start: the file is unusable, or it holds the webhook's token (``webhook``, already loaded), which would make
    the "read-only" token open the webhook too. ``run`` and ``check-config`` both call this."""
    api = config.viewers.api
    if api is None:
        return None
    token = BearerToken(api.token_file, key="viewers.api.token_file", needed_by="the viewer API",
                        or_else="remove viewers.api")
    token.load()
    if webhook is not None and token.same_secret(webhook):
        raise TokenFileError(f"viewers.api.token_file: {api.token_file} holds the same token as actions.token_file: "
                             "the read-only token must be a secret of its own, else whoever reads the viewers can "
                             f"restart streams (write one, e.g. `openssl rand -hex 32 > {api.token_file}`)")
    return token


class ViewersApi:
    """The Component serving both endpoints from the latest snapshot (no I/O but geo's cached lookups).

    ``tokens``: each one opens both endpoints (the read-only token and/or the webhook's).
    """

    def __init__(self, get_snapshot: Callable[[], Snapshot], tokens: Sequence[BearerToken],
                 lookup: Lookup, clock: Callable[[], float] = time.time) -> None:
        if not tokens:
            raise ValueError("the viewer API needs a token: it lists viewers' IPs and usernames")
        self._get = get_snapshot
        self.tokens = tuple(tokens)
        self._lookup = lookup
        self._clock = clock

    def routes(self) -> Sequence[BaseRoute]:
        # Plain functions: Starlette runs them in its thread pool, so 10k rows never block the loop.
        return [
            Route("/api/connections", self.connections, methods=["GET"]),
            Route("/api/lines/sharing", self.sharing, methods=["GET"]),
        ]

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def _denied(self, request: Request) -> Response | None:
        header = request.headers.get("authorization")
        return None if any(token.check(header) for token in self.tokens) else unauthorized()

    def connections(self, request: Request) -> Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        rows = live_viewers(self._get(), self._lookup, self._clock())
        try:
            return JSONResponse(filter_rows(rows, request.query_params))
        except ValueError as exc:
            return error_response(400, str(exc))

    def sharing(self, request: Request) -> Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        return JSONResponse(sharing_rows(self._get()))
