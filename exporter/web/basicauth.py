"""``basic_auth_users``: bcrypt-checked basic auth that reveals nothing about which users exist, and that a
flood of wrong passwords cannot turn into slow scrapes.

- An unknown user is checked against a dummy hash of the same bcrypt cost as the configured users, so
  answering "no" takes as long for a user that does not exist as for a wrong password (exporter-toolkit
  does the same with a fixed cost-10 hash; here the cost follows the file).
- Successful (user, password, hash) checks are cached (exporter-toolkit does too): a scrape with the right
  password costs a SHA-256, checked on the event loop before anything waits.
- At most ``max_concurrent`` bcrypt checks run at once, in worker threads; the others wait on the event
  loop, not in the thread pool that also renders /metrics. 64 clients with wrong passwords then cost two
  cores' worth of bcrypt and leave the pool free.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
import threading
from collections.abc import Mapping

import bcrypt
from starlette.concurrency import run_in_threadpool

BCRYPT_HASH = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
DEFAULT_COST = 10
MAX_CONCURRENT = 2
CACHE_SIZE = 1024


def bcrypt_cost(hashed: str) -> int:
    found = BCRYPT_HASH.fullmatch(hashed)
    if found is None:
        raise ValueError("not a bcrypt hash ($2y$<cost>$<53 characters>)")
    return int(found.group(1))


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """``Authorization: Basic`` to (user, password); None for anything else or malformed."""
    if not header or not header.startswith("Basic "):
        return None
    try:
        user, sep, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


class BasicAuth:
    """One file's users. ``check`` is awaited on the event loop; bcrypt runs in worker threads."""

    def __init__(self, users: Mapping[str, str], *, max_concurrent: int = MAX_CONCURRENT,
                 cache_size: int = CACHE_SIZE) -> None:
        self.users = dict(users)
        self.cost = max((bcrypt_cost(h) for h in self.users.values()), default=DEFAULT_COST)
        self._dummy: bytes | None = None
        self._lock = threading.Lock()
        self._ok: set[bytes] = set()
        self._cache_size = cache_size
        self._slots = asyncio.Semaphore(max_concurrent)

    @property
    def enabled(self) -> bool:
        return bool(self.users)

    def _key(self, user: str, password: str) -> bytes:
        return hashlib.sha256(f"{user}\0{password}\0{self.users.get(user, '')}".encode()).digest()

    async def check(self, header: str | None) -> bool:
        credentials = parse_basic(header)
        if credentials is None:
            return False
        user, password = credentials
        if self._key(user, password) in self._ok:
            return True
        async with self._slots:  # waits on the loop, holding no worker thread
            return await run_in_threadpool(self.verify, user, password)

    def verify(self, user: str, password: str) -> bool:
        """The bcrypt comparison (blocking: tens to hundreds of ms), the same work for unknown users."""
        hashed = self.users.get(user)
        target = hashed.encode("ascii") if hashed is not None else self._dummy_hash()
        try:
            ok = bcrypt.checkpw(password.encode("utf-8"), target)
        except ValueError:  # longer than bcrypt's 72 bytes: no stored password can match it
            ok = False
        if ok and hashed is not None:
            with self._lock:
                if len(self._ok) >= self._cache_size:
                    self._ok.clear()
                self._ok.add(self._key(user, password))
            return True
        return False

    def _dummy_hash(self) -> bytes:
        with self._lock:
            if self._dummy is None:
                self._dummy = bcrypt.hashpw(b"iptv-exporter: no such user", bcrypt.gensalt(self.cost))
            return self._dummy
