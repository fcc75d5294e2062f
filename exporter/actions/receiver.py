"""HTTP face of the actions: the Alertmanager webhook and the journal API, all behind the bearer token.

The hook answers within milliseconds: it authenticates, reads at most ``body_limit`` bytes (streamed, so
a huge body is refused without being read), validates, puts the notification on the worker's queue and
returns. 401 without or with a wrong token, 413 past the limit, 400 with the reason for anything that is
not an Alertmanager v4 payload, 503 when the queue is full or the journal is unusable (Alertmanager
retries; the message says why), 200 otherwise.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from exporter.actions.errors import ActionsError, JournalError, PayloadError
from exporter.actions.journal import Journal
from exporter.actions.metrics import ActionMetrics
from exporter.actions.payload import parse_notification
from exporter.actions.policy import Policy
from exporter.actions.worker import ActionWorker
from exporter.config.streams import STREAM_ID

log = logging.getLogger(__name__)

MAX_LIMIT = 1000
REVIVE_EVERY = 1.0
"""While the journal is down, a request tries to open it again at most this often."""
BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="iptv-exporter"'}
"""Headers of every 401 from an endpoint behind the bearer token (the hook and the APIs)."""


class TokenFile:
    """The shared bearer token, re-read whenever the file changes (mtime, ctime, size or inode), so rotating
    it needs no restart. An unreadable or emptied file denies every request until it is fixed.

    :meth:`quick_check` is the hook's per-request path: one ``stat`` and a digest comparison, no read, so it
    runs on the event loop; only when the file changed (or is unusable) does the caller fall back to
    :meth:`check`, which reads it, in a thread.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._current: tuple[tuple[int, int, int, int], bytes] | None = None
        """(stamp of the file, SHA-256 of its token) as last read; one attribute, read without the lock."""
        self._broken = False
        self._why = "missing"
        """What is wrong with the file while it is unusable (for the start-up error)."""

    def load(self) -> None:
        """At start-up: the file must exist and hold a token, else the exporter does not start."""
        if self._refresh() is None:
            raise ActionsError(f"actions.token_file: {self.path}: {self._why}: the webhook needs a token "
                               f"(write one, e.g. `openssl rand -hex 32 > {self.path}`, or set actions.dry_run)")

    def _stamp(self) -> tuple[int, int, int, int]:
        st = os.stat(self.path)
        return st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino

    def _refresh(self) -> bytes | None:
        try:
            stamp = self._stamp()
            current = self._current
            if current is not None and current[0] == stamp:
                return current[1]
            token = self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            self._fail("does not exist")
            return None
        except (OSError, UnicodeDecodeError) as exc:
            self._fail(f"unreadable ({getattr(exc, 'strerror', None) or exc})")
            return None
        if not token:
            self._fail("empty")
            return None
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        with self._lock:
            if self._broken or (self._current is not None and digest != self._current[1]):
                log.info("webhook token (re)loaded path=%s", self.path)
            self._current, self._broken = (stamp, digest), False
        return digest

    def _fail(self, why: str) -> None:
        with self._lock:
            if not self._broken:
                log.error("webhook token file unusable, denying all requests path=%s problem=%s", self.path, why)
            self._why, self._current, self._broken = why, None, True

    def check(self, header: str | None) -> bool:
        """Whether ``header`` carries the token; stats the file and reads it if it changed (may block)."""
        expected = self._refresh()
        return expected is not None and _matches(header, expected)

    def quick_check(self, header: str | None) -> bool | None:
        """:meth:`check` without reading: None when the file changed or is unusable since it was last read."""
        current = self._current
        if current is None:
            return None
        try:
            if self._stamp() != current[0]:
                return None
        except OSError:
            return None  # check() says what is wrong with it
        return _matches(header, current[1])


def _matches(header: str | None, expected: bytes) -> bool:
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        return False
    # Digests: equal length whatever was sent, so the comparison reveals nothing of the token's length.
    return hmac.compare_digest(hashlib.sha256(given.encode("utf-8")).digest(), expected)


class Receiver:
    def __init__(
        self,
        *,
        token: TokenFile | None,
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
            Route("/hooks/alertmanager", _Endpoint(self.hook), methods=["POST"]),
            Route("/api/actions", self.list_actions, methods=["GET"]),
            Route("/api/actions/reset", self.reset, methods=["POST"]),
        ]

    async def _authorized(self, header: str | None) -> bool:
        if self.token is None:
            return True  # dry run without a token file (config validation allows nothing else)
        # A stat of the token file on the loop (an inode lookup, about a microsecond); reading it after a
        # change, or finding out what is wrong with it, in a thread. Each request sees a rotation at once.
        verdict = self.token.quick_check(header)
        if verdict is None:
            verdict = await run_in_threadpool(self.token.check, header)
        return verdict

    async def hook(self, scope: Scope, receive: Receive, send: Send) -> None:
        """POST /hooks/alertmanager, in bare ASGI: Starlette's Request and Response around it cost about as
        much as the rest of the hook (a tenth of a millisecond), which a burst of notifications queues on."""
        code, body = await self._hook(scope, receive)
        self.metrics.webhook_answered(code)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        if code == 401:
            headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in BEARER_CHALLENGE.items()]
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _hook(self, scope: Scope, receive: Receive) -> tuple[int, bytes]:
        """The hook's answer: status code and JSON body."""
        if not await self._authorized(_header(scope, b"authorization")):
            return _answer(401, "missing or wrong bearer token")
        length = _header(scope, b"content-length")
        if length is not None:
            if not length.isdigit():
                return _answer(400, "invalid Content-Length")
            if int(length) > self.body_limit:
                return _answer(413, f"body larger than {self.body_limit} bytes")
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # http.disconnect
                return _answer(400, "client disconnected")
            body += message.get("body", b"")
            if len(body) > self.body_limit:  # chunked or lying sender: stop reading right here
                return _answer(413, f"body larger than {self.body_limit} bytes")
            more = message.get("more_body", False)
        data = bytes(body)
        try:
            notification = parse_notification(data)
        except PayloadError as exc:
            log.warning("webhook payload refused reason=%s", exc.reason)
            return _answer(400, exc.reason)
        if not self.journal.up and not await run_in_threadpool(self.worker.revive, REVIVE_EVERY):
            return _answer(503, f"action journal unusable, retry later: {self.journal.problem}")
        if not self.worker.submit(notification, self._clock(), data):
            log.error("action queue full, notification refused for Alertmanager to retry")
            return _answer(503, "action queue full, retry later")
        return 200, b'{"status":"ok","message":"queued","alerts":%d}' % len(notification.alerts)

    @staticmethod
    def _api_error(code: int, message: str, **extra: Any) -> Response:
        return JSONResponse({"status": "error", "message": message, **extra}, status_code=code,
                            headers=BEARER_CHALLENGE if code == 401 else None)

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
        return self._api_error(503, f"action journal unusable: {exc.reason}", circuits=self._circuits(stream))

    async def _api_stream(self, request: Request) -> tuple[str | None, Response | None]:
        """Authorize an API request and read its optional ``?stream=``: (stream, None) or (None, the refusal)."""
        if not await self._authorized(request.headers.get("authorization")):
            return None, self._api_error(401, "missing or wrong bearer token")
        stream = request.query_params.get("stream") or None
        if stream is not None and not STREAM_ID.fullmatch(stream):
            return None, self._api_error(400, "invalid stream id")
        return stream, None

    async def list_actions(self, request: Request) -> Response:
        stream, problem = await self._api_stream(request)
        if problem is not None:
            return problem
        raw = request.query_params.get("limit", "100")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
            return self._api_error(400, f"limit must be 1-{MAX_LIMIT}")
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
            return self._api_error(400, "give ?stream=<id>")
        was_open = self.policy.circuit_open(stream)
        try:  # journalled first: a reset the journal does not have would be undone by the next start
            await run_in_threadpool(self.journal.record_reset, stream, self._clock())
        except JournalError as exc:
            return self._journal_down(exc, stream)
        self.policy.reset(stream)
        log.warning("circuit reset stream=%s was_open=%s", stream, was_open)
        return JSONResponse({"status": "ok", "stream": stream, "was_open": was_open, "open": False})


class _Endpoint:
    """An ASGI callable as a Route's endpoint: Starlette wraps a function or method in its Request/Response
    machinery, an object it calls as it is."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    """The first header ``name`` (lower case) of the request, as Starlette's ``request.headers.get`` gives it."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _answer(code: int, message: str, **extra: Any) -> tuple[int, bytes]:
    """A hook answer as JSONResponse would render it."""
    body = {"status": "ok" if code < 300 else "error", "message": message, **extra}
    return code, json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
