"""nginx ``combined`` access-log lines, written one way for the demo's origin, bench/ and tests.

``$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"``:
what the access-log source reads by default. Quotes inside the request, referer and agent are escaped as nginx
escapes them (``\\x22``), so a line always splits into its fields.
"""

from __future__ import annotations

import time

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
"""English month names whatever the locale (``strftime("%b")`` follows it; nginx does not)."""


def clf_time(t: float, *, local: bool = False) -> str:
    """``$time_local`` for the Unix time ``t``: ``06/Dec/2026:10:33:32 +0000`` (UTC unless ``local``)."""
    g = time.localtime(t) if local else time.gmtime(t)
    offset = g.tm_gmtoff // 60
    sign = "-" if offset < 0 else "+"
    zone = f"{sign}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"
    return f"{g.tm_mday:02d}/{MONTHS[g.tm_mon - 1]}/{g.tm_year}:{g.tm_hour:02d}:{g.tm_min:02d}:{g.tm_sec:02d} {zone}"


def _quoted(text: str) -> str:
    return text.replace('"', "\\x22")


def combined(ip: str, stamp: str, request: str, status: int, size: int, referer: str = "-",
             agent: str = "-") -> str:
    """One line, newline included; ``stamp`` from :func:`clf_time` (a generator formats it once a second)."""
    return f'{ip} - - [{stamp}] "{_quoted(request)}" {status} {size} "{_quoted(referer)}" "{_quoted(agent)}"\n'
