"""A bounded, pseudonymous sample of the lines online, so a central rule can see one line on several nodes.

Each node hashes every online line (the username) with HMAC-SHA256 under a key the whole fleet shares and
that stays with the operator. A fixed 1/``ONE_IN`` of the hash space is sampled: the same lines on every node,
whatever else each node sees. For those lines the node exports 32 bits of the hash as a label. Centrally,
``ONE_IN * count(count by (line_hash) (iptv_lines_sampled) > 1)`` estimates the lines online on two or more
nodes at once (``iptv:fleet_lines_shared:estimate``). Without the key a label names no one; the number of
labels per node is about lines / ``ONE_IN`` and capped at ``LIMIT``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from pathlib import Path

from exporter.errors import ConfigError

ONE_IN = 64
LIMIT = 500
"""At most this many sampled lines per node (the smallest hashes kept, so every node keeps the same ones)."""


def sample_lines(lines: Iterable[str], key: bytes, *, one_in: int = ONE_IN, limit: int = LIMIT) -> list[str]:
    """The ``line_hash`` label values of the sampled lines among ``lines``, sorted."""
    picked = []
    for line in set(lines):
        digest = hmac.new(key, line.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()
        if int.from_bytes(digest[:4], "big") % one_in == 0:
            picked.append(digest[4:8].hex())
    return sorted(picked)[:limit]


def read_key(path: Path) -> bytes:
    """The fleet's sampling key from ``viewers.sharing.fleet_key_file``; read once at start (and by check-config)."""
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(str(path), [f"viewers.sharing.fleet_key_file: cannot read: {exc.strerror}"]) from None
    if not key:
        raise ConfigError(str(path), ["viewers.sharing.fleet_key_file: empty"])
    return key
