"""HTTP face of the actions: the Alertmanager webhook and the journal API, all behind the bearer token.

The hook answers within milliseconds: it authenticates, reads at most ``body_limit`` bytes (streamed, so
a huge body is refused without being read), validates, puts the notification on the worker's queue and
returns. 401 without or with a wrong token, 413 past the limit, 400 with the reason for anything that is
not an Alertmanager v4 payload, 503 when the queue is full or the journal is unusable (Alertmanager
retries; the body says why), 200 otherwise. Every refusal is ``{"error": "<reason>"}``
(exporter.web.errorbody); the token is exporter.web.auth's, shared with the viewers API.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from exporter.actions.errors import JournalError, PayloadError
from exporter.actions.journal import Journal
from exporter.actions.metrics import ActionMetrics
from exporter.actions.payload import parse_notification
from exporter.actions.policy import Policy
from exporter.actions.worker import ActionWorker
from exporter.config.streams import STREAM_ID
from exporter.web.auth import BearerToken, unauthorized
from exporter.web.errorbody import error_response

log = logging.getLogger(__name__)

MAX_LIMIT = 1000
REVIVE_EVERY = 1.0
"""While the journal is down, a request tries to open it again at most this often."""


class Receiver:
    def __init__(
        self,
        *,
        token: BearerToken | None,
        worker: ActionWorker,
        journal: Journal,
        policy: Policy,
        metrics: ActionMetrics,
        body_limit: int,
        inventory: Callable[[], Collection[str]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token = token
        self.worker = worker
        self.journal = journal
        self.policy = policy
        self.metrics = metrics
        self.body_limit = body_limit
        self._inventory = inventory
        self._clock = clock

    def routes(self) -> Sequence[BaseRoute]:
        return [
            Route("/hooks/alertmanager", self.hook, methods=["POST"]),
            Route("/api/actions", self.list_actions, methods=["GET"]),
            Route("/api/actions/reset", self.reset, methods=["POST"]),
        ]

    async def _authorized(self, header: str | None) -> bool:
        if self.token is None:
            return True  # dry run without a token file (config validation allows nothing else)
        return await self.token.authorized(header)

    async def hook(self, request: Request) -> Response:
        """POST /hooks/alertmanager: answered within milliseconds, the work is the worker's."""
        response = await self._hook(request)
        self.metrics.webhook_answered(response.status_code)
        return response

    async def _hook(self, request: Request) -> Response:
        if not await self._authorized(request.headers.get("authorization")):
            return unauthorized()
        try:
            data = await self._body(request)
        except ClientDisconnect:
            return error_response(400, "client disconnected")
        if data is None:
            return error_response(413, f"body larger than {self.body_limit} bytes")
        try:
            notification = parse_notification(data)
        except PayloadError as exc:
            log.warning("webhook payload refused reason=%s", exc.reason)
            return error_response(400, exc.reason)
        if not self.journal.up and not await run_in_threadpool(self.worker.revive, REVIVE_EVERY):
            return error_response(503, f"action journal unusable, retry later: {self.journal.problem}")
        if not self.worker.submit(notification, self._clock(), data):
            log.error("action queue full, notification refused for Alertmanager to retry")
            return error_response(503, "action queue full, retry later")
        return JSONResponse({"status": "ok", "message": "queued", "alerts": len(notification.alerts)})

    async def _body(self, request: Request) -> bytes | None:
        """The body as it arrives, or None as soon as it passes ``body_limit``: a huge (or endless) body is
        refused after at most the limit plus one chunk, whatever its Content-Length says."""
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.body_limit:
                return None
        return bytes(body)

    def _circuits(self, stream: str | None) -> list[dict[str, Any]]:
        """The policy's budgets (memory, no journal read)."""
        streams = sorted((set(self._inventory()) | self.policy.streams()) if stream is None else {stream})
        return [
            {"stream": s, "open": self.policy.circuit_open(s), "used": self.policy.budget_used(s),
             "max": self.policy.budget_max, "window_seconds": self.policy.budget_window}
            for s in streams
        ]

    def _journal_down(self, exc: JournalError, stream: str | None) -> Response:
        """503 with the reason; the budgets from memory still answer what the circuits are."""
        return error_response(503, f"action journal unusable: {exc.reason}", circuits=self._circuits(stream))

    async def _api_stream(self, request: Request) -> tuple[str | None, Response | None]:
        """Authorize an API request and read its optional ``?stream=``: (stream, None) or (None, the refusal)."""
        if not await self._authorized(request.headers.get("authorization")):
            return None, unauthorized()
        stream = request.query_params.get("stream") or None
        if stream is not None and not STREAM_ID.fullmatch(stream):
            return None, error_response(400, "invalid stream id")
        return stream, None

    async def list_actions(self, request: Request) -> Response:
        stream, problem = await self._api_stream(request)
        if problem is not None:
            return problem
        raw = request.query_params.get("limit", "100")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
            return error_response(400, f"limit must be 1-{MAX_LIMIT}")
        limit = int(raw)

        def read() -> dict[str, Any]:
            if not self.worker.revive(REVIVE_EVERY):
                raise JournalError(self.journal.problem or "unusable")
            return {
                "dry_run": self.worker.dry_run,
                "node": self.worker.node,
                "circuits": self._circuits(stream),
                "actions": self.journal.list_actions(stream, limit),
                "decisions": self.journal.list_decisions(stream, limit),
                "notifications": self.journal.list_notifications(limit) if stream is None else [],
            }

        try:
            return JSONResponse(await run_in_threadpool(read))
        except JournalError as exc:
            return self._journal_down(exc, stream)

    async def reset(self, request: Request) -> Response:
        """Close a stream's circuit now (an operator fixed the cause); recorded, so it survives a restart."""
        stream, problem = await self._api_stream(request)
        if problem is not None:
            return problem
        if stream is None:
            return error_response(400, "give ?stream=<id>")
        was_open = self.policy.circuit_open(stream)
        try:  # journalled first: a reset the journal does not have would be undone by the next start
            await run_in_threadpool(self.journal.record_reset, stream, self._clock())
        except JournalError as exc:
            return self._journal_down(exc, stream)
        self.policy.reset(stream)
        log.warning("circuit reset stream=%s was_open=%s", stream, was_open)
        return JSONResponse({"status": "ok", "stream": stream, "was_open": was_open, "open": False})
