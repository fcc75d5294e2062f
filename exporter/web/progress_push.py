"""Receives ffmpeg's ``-progress http://...`` push: one chunked POST per ffmpeg process, for its whole life.

Routes: ``POST /progress/{stream}``, and the panels' own forms so their command lines work unchanged when
the panel's nginx forwards them here (deploy/nginx/iptv-progress.conf): ``POST /progress?stream_id=<id>``
(XUI.one / XC_VM, ``includes/xc_vm.php``) and ``POST /progress.php?stream_id=<id>`` (Xtream Codes / Xtream UI,
``includes/stream.php``). The body is
parsed as it arrives (``request.stream()``), never buffered whole. The endpoint has no credentials
(ffmpeg sends none), so only clients in ``progress.allow_from`` (loopback by default) may push.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Sequence

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from exporter.config.health import Progress
from exporter.config.streams import STREAM_ID
from exporter.sources.progress import ProgressStore
from exporter.sources.progress_blocks import MAX_BYTES_WITHOUT_BLOCK, BlockParser
from exporter.web.errorbody import error_response

log = logging.getLogger(__name__)

INLINE_CHUNK = 16 << 10
"""Chunks up to this size (ffmpeg sends ~300 bytes every 0.5 s) are parsed on the loop: microseconds."""


class ProgressPushReceiver:
    """A web Component: feeds pushed progress blocks into the store the progress source reads."""

    def __init__(self, store: ProgressStore, config: Progress, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.config = config
        self._clock = clock
        self.active = 0
        """Pushes in progress (one per running ffmpeg that reports to us)."""

    def routes(self) -> Sequence[BaseRoute]:
        return [
            Route("/progress/{stream}", self._by_path, methods=["POST", "PUT"]),
            Route("/progress", self._by_query, methods=["POST", "PUT"]),  # XUI.one / XC_VM
            Route("/progress.php", self._by_query, methods=["POST", "PUT"]),  # Xtream Codes / Xtream UI
        ]

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def _allowed(self, request: Request) -> bool:
        if request.client is None:
            return False
        try:
            ip = ipaddress.ip_address(request.client.host)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.config.allow_from)

    async def _by_path(self, request: Request) -> Response:
        return await self._receive(request, request.path_params["stream"])

    async def _by_query(self, request: Request) -> Response:
        return await self._receive(request, request.query_params.get("stream_id", ""))

    async def _receive(self, request: Request, stream: str) -> Response:
        if not self._allowed(request):
            self.store.reject("forbidden")
            log.warning("progress push refused client=%s stream=%s reason=forbidden",
                        request.client.host if request.client else "?", stream[:64])
            return error_response(403, "forbidden: progress.allow_from does not include this client")
        if not STREAM_ID.fullmatch(stream):
            self.store.reject("bad_stream")
            return error_response(400, "bad stream id")
        if not self.store.open(stream):
            self.store.reject("full")
            log.warning("progress push refused stream=%s reason=full max_streams=%d", stream, self.store.max_streams)
            return error_response(429, "too many streams")
        parser = BlockParser(max_line=self.config.max_line)
        counted = 0
        refused: tuple[str, str] | None = None
        self.active += 1
        log.debug("progress push started stream=%s", stream)
        try:
            async for chunk in request.stream():
                # A big chunk (a flood) is parsed in a worker thread: the loop also answers /metrics.
                if len(chunk) > INLINE_CHUNK:
                    blocks = await run_in_threadpool(parser.feed, chunk)
                else:
                    blocks = parser.feed(chunk)
                if blocks or parser.skipped != counted:
                    self.store.add(stream, blocks, parser.skipped - counted, self._clock())
                    counted = parser.skipped
                if parser.out_of_range is not None:
                    refused = ("out_of_range", parser.out_of_range)
                elif parser.bytes_without_block > MAX_BYTES_WITHOUT_BLOCK:
                    refused = ("no_block", f"{MAX_BYTES_WITHOUT_BLOCK} bytes without a progress= line")
                if refused is not None:
                    break
        except ClientDisconnect:
            log.debug("progress push disconnected stream=%s", stream)  # ffmpeg killed: its body just ends
        finally:
            self.active -= 1
        if refused is not None:
            reason, why = refused
            self.store.reject(reason)
            log.warning("progress push refused stream=%s reason=%s detail=%s", stream, reason, why)
            # Like the Pushgateway: 400 with the reason; the blocks before the bad value were kept.
            return error_response(400, f"{reason}: {why}")
        return Response(status_code=204)
