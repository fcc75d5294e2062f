"""The bearer tokens that guard every API: the webhook, the action journal and the viewers API.

Two token files, each one :class:`BearerToken` read through :class:`WatchedFile`. ``actions.token_file``
guards everything: the webhook (restarts), the action journal and, so existing configs keep working, the
viewer API. ``viewers.api.token_file`` is read-only: the viewer API accepts it, nothing that acts does
(Grafana holds this one, docs/security.md#who-holds-it). A token object is shared by every endpoint behind
it, so a rotated token is seen by all of them on the next request, with no restart. An unreadable or
emptied file denies every request until it is fixed; at start-up the exporter refuses to run without a
usable token (only ``actions.dry_run`` may run without one, which the config checks). The comparison is of
SHA-256 digests with :func:`hmac.compare_digest`: constant time, and equal length whatever was sent, so it
reveals nothing of the token's length either.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from exporter.errors import TokenFileError
from exporter.watchedfile import WatchedFile
from exporter.web.errorbody import error_response

log = logging.getLogger(__name__)

BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="iptv-exporter"'}
"""Headers of every 401 from an endpoint behind the bearer token."""


def _digest(path: Path) -> bytes:
    token = path.read_text(encoding="utf-8").strip()
    if not token:
        raise ValueError("empty")
    return hashlib.sha256(token.encode("utf-8")).digest()


class BearerToken:
    """One token, re-read whenever its file changes.

    :meth:`quick_check` is the per-request path on the event loop: one ``stat`` and a digest comparison,
    no read. Only when the file changed (or is unusable) does :meth:`authorized` fall back to
    :meth:`check`, which reads it, in a thread. ``key`` (the config key naming the file), ``needed_by`` and
    ``or_else`` only word the start-up error.
    """

    def __init__(self, path: Path, *, key: str = "actions.token_file", needed_by: str = "the webhook",
                 or_else: str = "set actions.dry_run") -> None:
        self.path = path
        self._key = key
        self._needed_by = needed_by
        self._or_else = or_else
        self._file = WatchedFile(path, _digest, what=f"bearer token file ({key})",
                                 logger=log, level=logging.ERROR)

    def load(self) -> None:
        """At start-up: the file must exist and hold a token, else the exporter does not start."""
        self._file.refresh()
        if self._file.value is None:
            raise TokenFileError(f"{self._key}: {self.path}: {self._file.problem}: {self._needed_by} needs a token "
                                 f"(write one, e.g. `openssl rand -hex 32 > {self.path}`, or {self._or_else})")

    def same_secret(self, other: BearerToken) -> bool:
        """Whether both files, as last read, hold the same token (a read-only token that is the webhook's is not
        read-only). Not constant time: both are our own secrets, nothing a client sent."""
        return self._file.value is not None and self._file.value == other._file.value

    def check(self, header: str | None) -> bool:
        """Whether ``header`` carries the token; stats the file and reads it if it changed (may block)."""
        before = self._file.value
        if self._file.refresh() and before is not None and self._file.value is not None:
            log.info("bearer token reloaded path=%s", self.path)
        expected = self._file.value
        return expected is not None and _matches(header, expected)

    def quick_check(self, header: str | None) -> bool | None:
        """:meth:`check` without reading: None when the file changed or is unusable since it was last read."""
        expected = self._file.value_if_unchanged()
        return None if expected is None else _matches(header, expected)

    async def authorized(self, header: str | None) -> bool:
        """:meth:`check` for the event loop: a stat on the loop (about a microsecond), a read in a thread."""
        verdict = self.quick_check(header)
        if verdict is None:
            verdict = await run_in_threadpool(self.check, header)
        return verdict


def _matches(header: str | None, expected: bytes) -> bool:
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        return False
    return hmac.compare_digest(hashlib.sha256(given.encode("utf-8")).digest(), expected)


def unauthorized() -> Response:
    """The 401 of every endpoint behind the token."""
    return error_response(401, "missing or wrong bearer token", headers=BEARER_CHALLENGE)
