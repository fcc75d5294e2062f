"""Helpers of the access log's hot path: what the per-line loop looks up once per distinct value.

A combined line's parts (split on its first six quotes) are checked against what
:data:`exporter.sources.accesslog.COMBINED` would accept, piece by piece, and the pieces that repeat from
line to line are answered from small caches: the head before its time (``ip ident user ``, one per
client), the time (one per second), the status with its spaces (`` 200 ``), and the request line (one per
URL). Where a check fails the caller hands the line to the regex, which has the last word.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_HEAD = re.compile(rb"(\S+) \S+ \S+ ")
"""A head before its ``[``: ``ip ident user `` (as COMBINED's ``^(\\S+) \\S+ \\S+ \\[``)."""
_STAMP = re.compile(rb"\[([^\]\n]{26})\] ")
"""``[26/Nov/2026:14:02:11 +0000] ``: nginx's $time_local is always 26 characters."""
STAMP_SIZE = 29

STATUS_CLASS: dict[bytes, int] = {f" {s} ".encode(): s // 100 for s in range(100, 600)}
"""`` 200 `` (a status between the request's quote and the bytes) -> its class, 1 to 5."""

INVALID = b""
"""The address of a head that is not ``ip ident user ``."""


def head_ip(prefix: bytes) -> bytes:
    """The address in a head's ``ip ident user `` (the part before ``[``), or :data:`INVALID`."""
    m = _HEAD.fullmatch(prefix)
    return m.group(1) if m else INVALID


def stamp_time(stamp: bytes) -> bytes | None:
    """The time inside ``[...] `` (the last 29 bytes of a head), or None if it is not one."""
    m = _STAMP.fullmatch(stamp)
    return m.group(1) if m else None


_PAST_THE_PATH = re.compile(r"(?<!\\)\.|\\[SWDs]|\[\^(?!/ \?\])")
"""Pattern parts that could take a space or '?' (``.``, ``\\S``, ``[^x]``): a request's path ends there."""


class RequestMatcher:
    """A preset's URL patterns as one regex over whole request lines (``GET /live/u/p/5.ts HTTP/1.1``).

    Gives what trying the patterns one after the other on the request's path would (the path as
    :data:`~exporter.sources.accesslog.COMBINED` takes it: after the method, up to a space or ``?``, from
    its first ``/``), in one regex match: the answer for a new segment URL costs one C call.
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        alternatives = []
        self.groups: dict[str | None, tuple[str, str]] = {}
        """Name of the group that closed last (the stream's) -> the alternative's (line, stream) groups."""
        for i, pattern in enumerate(patterns):
            if "(?P<line>" in pattern and pattern.index("(?P<line>") > pattern.index("(?P<stream>"):
                raise ValueError(f"pattern {i}: the line group must come before the stream group")
            text = (pattern.replace("[^/]", "[^/ ?]")  # a path ends at a space or '?'
                    .replace("(?P<password>", "(?:")
                    .replace("(?P<line>", f"(?P<l{i}>")
                    .replace("(?P<stream>", f"(?P<s{i}>"))
            if _PAST_THE_PATH.search(text):
                raise ValueError(f"pattern {i} can match past a path's end: {pattern}")
            if f"(?P<l{i}>" not in text:
                text = f"(?P<l{i}>)" + text  # no line: an empty one, so every answer is (line, stream)
            alternatives.append(text)
            self.groups[f"s{i}"] = (f"l{i}", f"s{i}")
        self.regex = re.compile(
            ("(?:[A-Z]+ +)?[^/ ?]*(?:" + "|".join(f"(?:{a})" for a in alternatives) + r")(?=[ ?]|\Z)")
            .encode("latin-1"))

    def match(self, request: bytes) -> tuple[bytes, bytes] | None:
        """(line, stream) as bytes (line empty when the URL has none), or None: not a stream URL."""
        m = self.regex.match(request)
        if m is None:
            return None
        line, stream = m.group(*self.groups[m.lastgroup])
        return line, stream
