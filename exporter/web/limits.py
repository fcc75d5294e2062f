"""File descriptors: the soft limit raised to the hard one at start, and what connections may use of it.

systemd starts services with a soft limit of 1,024 (and a hard one of 524,288): 1,000 slow connections were
enough to leave the sampler without a descriptor for ``/proc/<pid>/stat`` and /metrics unreachable. Like
Prometheus, the exporter raises its soft limit to the hard one, caps concurrent connections
(``--web.max-connections``) and keeps a reserve for the sampler, whatever the connections do.
"""

from __future__ import annotations

import logging
import os
import resource
from dataclasses import dataclass

log = logging.getLogger(__name__)

RESERVE = 256
"""Descriptors kept free for the sampler (``/proc``, netlink, followed logs), the journal and the runners."""
MIN_CONNECTIONS = 16


@dataclass(frozen=True, slots=True)
class Descriptors:
    soft: int
    hard: int
    open_at_start: int
    max_connections: int
    """The connection cap in effect: ``--web.max-connections``, lowered to leave :data:`RESERVE` free."""


def raise_nofile_limit() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit (bounded by ``fs.nr_open`` when the hard one is unlimited)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        try:
            with open("/proc/sys/fs/nr_open", encoding="ascii") as fh:
                target = int(fh.read())
        except (OSError, ValueError) as exc:
            log.warning("cannot read fs.nr_open, keeping the soft descriptor limit soft=%d error=%s", soft, exc)
            return soft, hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError) as exc:
            log.warning("cannot raise the soft descriptor limit soft=%d hard=%d error=%s", soft, hard, exc)
    return soft, hard


def open_descriptors() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0  # no /proc: the reserve alone protects the sampler


def plan(requested_connections: int) -> Descriptors:
    """Raise the limit, then the connection cap that leaves the reserve free."""
    soft, hard = raise_nofile_limit()
    open_now = open_descriptors()
    cap = min(requested_connections, soft - open_now - RESERVE)
    cap = max(MIN_CONNECTIONS, cap)
    if cap < requested_connections:
        log.warning("connection cap lowered to keep descriptors for sampling max_connections=%d requested=%d "
                    "nofile_soft=%d open=%d reserve=%d", cap, requested_connections, soft, open_now, RESERVE)
    return Descriptors(soft, hard, open_now, cap)
