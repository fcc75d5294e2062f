"""The HTTP face of the exporter: ``create_app`` takes its parts, so tests build it with real or fake ones."""

from __future__ import annotations

import contextlib
import html
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Protocol

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exporter import __version__
from exporter.metrics.exposition import MetricsRegistry
from exporter.sampler import Sampler
from exporter.web.errorbody import error_response
from exporter.web.webconfig import StaticWebConfig, WebConfigFile, WebSettings

log = logging.getLogger(__name__)


class Component(Protocol):
    """A part that adds routes and lives as long as the app (the action receiver, the progress receiver)."""

    def routes(self) -> Sequence[BaseRoute]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


OWN_AUTH_PREFIXES = ("/hooks/", "/api/", "/progress/", "/progress.php")
"""Paths that authenticate themselves (bearer token, or loopback-only for ffmpeg's progress push)."""
OWN_AUTH_PATHS = frozenset({"/progress"})
"""Exact paths that authenticate themselves: XUI.one's ``/progress?stream_id=`` (loopback-only)."""


class WebSettingsSource(Protocol):
    """Where the web config's current settings come from (re-read on change, or fixed)."""

    def current(self) -> WebSettings: ...


class WebConfigMiddleware:
    """exporter-toolkit's per-request part of the web config: rate limit and basic auth for every path except
    those that carry their own authentication, and the configured response headers on every answer. The
    settings are asked for per request, so a changed file applies from the next request."""

    def __init__(self, app: ASGIApp, web: WebSettingsSource) -> None:
        self.app = app
        self.web = web

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self.web.current()
        path = str(scope["path"])
        if not path.startswith(OWN_AUTH_PREFIXES) and path not in OWN_AUTH_PATHS:
            refusal: Response | None = None
            if settings.limiter is not None and not settings.limiter.allow():
                refusal = error_response(429, "too many requests: web config rate_limit")
            elif settings.auth.enabled:
                header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
                if not await settings.auth.check(header):  # bcrypt in a bounded number of worker threads
                    refusal = error_response(401, "missing or wrong basic auth credentials",
                                             headers={"WWW-Authenticate": 'Basic realm="iptv-exporter"'})
            if refusal is not None:
                await refusal(scope, receive, self._with_headers(send, settings.headers))
                return
        await self.app(scope, receive, self._with_headers(send, settings.headers))

    @staticmethod
    def _with_headers(send: Send, headers: tuple[tuple[bytes, bytes], ...]) -> Send:
        if not headers:
            return send

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        return send_with_headers


def _metrics_endpoint(registry: MetricsRegistry) -> Callable[[Request], Awaitable[Response]]:
    async def metrics(request: Request) -> Response:
        # In a worker thread: encoding a new snapshot takes tens of ms, which would stall the webhook.
        body, headers = await run_in_threadpool(
            registry.render, request.headers.get("accept", ""), request.headers.get("accept-encoding", "")
        )
        return Response(body, headers=headers)

    return metrics


def _landing(sampler: Sampler, extra_links: Sequence[tuple[str, str]],
             telemetry_path: str = "/metrics") -> Callable[[Request], Awaitable[Response]]:
    async def landing(request: Request) -> Response:
        snap = sampler.snapshot
        rows = "".join(
            f"<li><code>{html.escape(s.name)}</code>: {'up' if s.up else 'DOWN'}"
            f" ({s.duration_seconds * 1000:.1f} ms){' — ' + html.escape(s.error) if s.error else ''}</li>"
            for s in snap.statuses
        ) or "<li>no sample yet</li>"
        links = "".join(f'<li><a href="{href}">{html.escape(text)}</a></li>' for href, text in extra_links)
        body = (
            "<!doctype html><html><head><title>iptv-exporter</title></head><body>"
            f"<h1>iptv-exporter {html.escape(__version__)}</h1>"
            f"<p>Node <code>{html.escape(sampler.config.node)}</code>, {len(snap.streams)} streams.</p>"
            f'<ul><li><a href="{html.escape(telemetry_path)}">Metrics</a></li><li><a href="/-/healthy">Health</a></li>'
            f'<li><a href="/-/ready">Readiness</a></li>{links}</ul>'
            f"<h2>Sources</h2><ul>{rows}</ul></body></html>"
        )
        return HTMLResponse(body)

    return landing


def create_app(
    sampler: Sampler,
    registry: MetricsRegistry,
    *,
    components: Sequence[Component] = (),
    web_config: WebConfigFile | WebSettingsSource | None = None,
    links: Sequence[tuple[str, str]] = (),
    telemetry_path: str = "/metrics",
) -> Starlette:
    """Build the ASGI app; its lifespan starts the sampler (first round before serving) and the components."""

    async def healthy(request: Request) -> Response:
        return PlainTextResponse("OK\n")

    async def ready(request: Request) -> Response:
        if sampler.ready.is_set():
            return PlainTextResponse("OK\n")
        return error_response(503, "not ready: first sample not complete")

    routes: list[BaseRoute] = [
        Route(telemetry_path, _metrics_endpoint(registry)),  # first: `--web.telemetry-path=/` replaces the landing
        Route("/", _landing(sampler, links, telemetry_path)),
        Route("/-/healthy", healthy, methods=["GET", "HEAD"]),
        Route("/-/ready", ready, methods=["GET", "HEAD"]),
    ]
    for component in components:
        routes.extend(component.routes())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for component in components:
            await component.start()
        await sampler.start()
        try:
            yield
        finally:
            await sampler.stop()
            for component in reversed(components):
                await component.stop()

    middleware = []
    if web_config is not None:
        web = StaticWebConfig(web_config) if isinstance(web_config, WebConfigFile) else web_config
        middleware.append(Middleware(WebConfigMiddleware, web=web))
    return Starlette(routes=routes, lifespan=lifespan, middleware=middleware,
                     exception_handlers={HTTPException: _http_error})


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (unknown path 404, wrong method 405 with its ``Allow``) in the one error shape."""
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, exc.detail, headers=exc.headers)
