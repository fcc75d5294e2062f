"""One webhook token per node: ``<dir>/<node>.token``, mode 0600 in a 0700 directory.

Alertmanager reads the file as the node's receiver's ``credentials_file``; the same file is copied to the
node as its exporter's ``actions.token_file``. A token read on one node therefore restarts nothing on
another. Existing tokens are kept: generating again never rotates a token behind an exporter's back.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path

TOKEN_BYTES = 32


def token_path(tokens_dir: Path, node: str) -> Path:
    return tokens_dir / f"{node}.token"


def ensure_tokens(tokens_dir: Path, nodes: Sequence[str]) -> list[str]:
    """Create the directory (0700) and a token for every node that has none; the nodes given a new one."""
    tokens_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    created = []
    for node in nodes:
        path = token_path(tokens_dir, node)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_hex(TOKEN_BYTES) + "\n")
        created.append(node)
    return created


def read_token(path: Path, *, private: bool = True) -> tuple[str | None, str | None]:
    """(SHA-256 of the token, None) or (None, what is wrong). ``private``: group/other access is wrong too.

    Only a digest leaves this function, so no message or comparison can print a token.
    """
    try:
        mode = path.stat().st_mode
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None, f"{path} does not exist"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"{path} is unreadable ({getattr(exc, 'strerror', None) or exc})"
    if not token:
        return None, f"{path} is empty"
    if private and stat.S_IMODE(mode) & 0o077:
        return None, f"{path} has mode {stat.S_IMODE(mode):04o}; want 0600 (the token is a secret)"
    return hashlib.sha256(token.encode("utf-8")).hexdigest(), None
