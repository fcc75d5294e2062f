"""The HTTP face of the exporter: ``create_app`` takes its parts, so tests build it with real or fake ones."""

from __future__ import annotations

import contextlib
import html
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Protocol

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exporter import __version__
from exporter.metrics.exposition import MetricsRegistry
from exporter.sampler import Sampler
from exporter.web.webconfig import BasicAuth, WebConfigFile

log = logging.getLogger(__name__)


class Component(Protocol):
    """A part that adds routes and lives as long as the app (the action receiver, the progress receiver)."""

    def routes(self) -> Sequence[BaseRoute]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


OWN_AUTH_PREFIXES = ("/hooks/", "/api/", "/progress/", "/progress.php")
"""Paths that authenticate themselves (bearer token, or loopback-only for ffmpeg's progress push)."""


class BasicAuthMiddleware:
    """exporter-toolkit's basic auth, for every path except those that carry their own authentication."""

    def __init__(self, app: ASGIApp, auth: BasicAuth, headers: dict[str, str]) -> None:
        self.app = app
        self.auth = auth
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.auth.users and not str(scope["path"]).startswith(OWN_AUTH_PREFIXES):
            header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            # bcrypt costs tens of milliseconds: off the event loop, which serves every other request.
            if not await run_in_threadpool(self.auth.check, header):
                response = PlainTextResponse(
                    "Unauthorized\n", status_code=401, headers={"WWW-Authenticate": 'Basic realm="iptv-exporter"'}
                )
                await response(scope, receive, send)
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and self.headers:
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [
                    (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


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
    web_config: WebConfigFile | None = None,
    links: Sequence[tuple[str, str]] = (),
    telemetry_path: str = "/metrics",
) -> Starlette:
    """Build the ASGI app; its lifespan starts the sampler (first round before serving) and the components."""

    async def healthy(request: Request) -> Response:
        return PlainTextResponse("OK\n")

    async def ready(request: Request) -> Response:
        if sampler.ready.is_set():
            return PlainTextResponse("OK\n")
        return PlainTextResponse("not ready: first sample not complete\n", status_code=503)

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
    if web_config is not None and (web_config.basic_auth_users or web_config.http_server_config.headers):
        middleware.append(
            Middleware(
                BasicAuthMiddleware,
                auth=BasicAuth(dict(web_config.basic_auth_users)),
                headers=dict(web_config.http_server_config.headers),
            )
        )
    return Starlette(routes=routes, lifespan=lifespan, middleware=middleware)
