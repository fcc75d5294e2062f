"""Passwords out of any text: the one place that knows where stream URLs keep their secrets.

Used wherever text from the outside world (command lines, URLs, runner output, log lines, exception
messages) reaches a log, the API or the journal. What is masked:

- URL userinfo: ``http://user:pass@host/`` (user and password);
- panel paths: ``/live|movie|series|timeshift(s)|hls/<user>/<pass>/`` and ``/hlsr/<token>/<user>/<pass>/``;
- query parameters ``password=``, ``passwd=``, ``pass=``, ``pwd=``, ``token=``, ``api_key=``, ``apikey=``;
- ``Authorization: <scheme> <credentials>`` headers;
- the ``password`` group (and ``line``/``user``) of any extra URL pattern a caller knows (the access log's
  configured URL shapes, e.g. Xtream's short ``/<user>/<pass>/<id>``).

A password that already reads as a mask is left alone, so text redacted once (in the access log's
``***`` style) keeps its form when it passes through again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from exporter.linear_re import LinearMatch, LinearPattern

MASK = "<redacted>"

_USER_GROUPS = ("userinfo", "user", "line")
"""Groups masked with the password unless ``keep_user``: whole userinfo, a panel path's user, a line."""

# Each has a group ``password``; ``userinfo`` (user:pass together) and ``user`` where there is one.
_USERINFO = re.compile(r"://(?P<userinfo>(?P<user>[^/\s:@\"'<>]+):(?P<password>[^/\s@\"'<>]+))@")
_PATH_SHAPES = (
    # The password ends at the next '/', at the query ('?') or at the end of the path: a malformed URL
    # (``/live/dave/Zp4ssD``, ``/live/mo/PwMMM?/7.ts``) still carries a real password.
    re.compile(r"/(?:live|movie|series|timeshifts?|hls)/(?P<user>[^/\s\"?]+)/(?P<password>[^/\s\"?]+)"
               r"(?=[/?\s\"]|$)"),
    re.compile(r"/hlsr/[^/\s\"?]+/(?P<user>[^/\s\"?]+)/(?P<password>[^/\s\"?]+)(?=[/?\s\"]|$)"),
)
_ASSIGNED = re.compile(r"=(?=(?P<password>[^&\s\"]+))")
"""Every ``=`` with the value after it (looked at, not consumed: a value may hold ``key=secret``)."""
_SECRET_KEY = re.compile(r"(?i)(?<!\w)(?:password|passwd|pass|pwd|token|api_key|apikey)\Z")
"""A key whose value is a secret, at the end of the text before ``=`` (a search for ``=`` first is fast;
a case-insensitive search for the keys over the whole text is not)."""
_AUTHORIZATION = re.compile(r"(?i)\bauthorization:\s*\w+\s+(?P<password>[^\s\"']+)")
_PATHLIKE = re.compile(r"/[^\s\"?]*")


_MASKS = frozenset({MASK, "***"})


class Redactor:
    """Masks passwords in text; ``patterns`` are extra URL shapes with a ``password`` group.

    ``keep_user`` keeps usernames (an access-log line is a subscriber name the API shows anyway); by
    default the user goes too, since a provider account's name is half of its credentials.
    """

    def __init__(self, patterns: Iterable[re.Pattern[str] | LinearPattern[str]] = (), *, mask: str = MASK,
                 keep_user: bool = False) -> None:
        self._patterns = [p for p in patterns if "password" in p.groupindex]
        self._mask = mask
        self._groups = ("password",) if keep_user else ("password", *_USER_GROUPS)

    def _masked(self, m: re.Match[str] | LinearMatch[str]) -> str:
        """The match with its secret groups masked (an outer group wins over the groups inside it)."""
        text, start = m.group(0) or "", m.start(0)
        if m.group("password") in _MASKS or m.group("password") == self._mask:
            return text  # redacted before
        spans = sorted(
            {m.span(g) for g in self._groups if g in m.re.groupindex and m.group(g)},
            key=lambda s: (s[0], -s[1]),
        )
        out, pos = [], start
        for a, b in spans:
            if a < pos:
                continue  # inside the group masked before it
            out += [text[pos - start:a - start], self._mask]
            pos = b
        out.append(text[pos - start:])
        return "".join(out)

    def _path(self, m: re.Match[str]) -> str:
        token = m.group(0)
        for p in self._patterns:
            found = p.fullmatch(token) or p.search(token)
            if found and found.group("password"):
                token = token[: found.start()] + self._masked(found) + token[found.end():]
                break
        for shape in _PATH_SHAPES:
            token = shape.sub(self._masked, token)
        return token

    def redact(self, text: str) -> str:
        if "@" in text:
            text = _USERINFO.sub(self._masked, text)
        if "/" in text:
            if self._patterns:  # extra patterns are matched against whole path-like tokens
                text = _PATHLIKE.sub(self._path, text)
            else:  # the same shapes, without a Python call per token: no shape match crosses a token's end
                for shape in _PATH_SHAPES:
                    text = shape.sub(self._masked, text)
        if "=" in text:
            text = self._mask_assigned(text)
        if "authorization" in text.lower():  # a case-insensitive scan only where it can match
            text = _AUTHORIZATION.sub(self._masked, text)
        return text

    def _mask_assigned(self, text: str) -> str:
        """``key=value``: the value masked where the key is a secret one (``password=``, ``token=``...)."""
        out, pos = [], 0
        for m in _ASSIGNED.finditer(text):
            start, end = m.span("password")
            if start < pos or m.group("password") in (*_MASKS, self._mask):
                continue  # inside a value masked already, or redacted before
            if _SECRET_KEY.search(text[max(0, m.start() - 9):m.start()]):  # the longest key and one more
                out += [text[pos:start], self._mask]
                pos = end
        out.append(text[pos:])
        return "".join(out)

    __call__ = redact


_DEFAULT = Redactor()
_OPAQUE = re.compile(r"[A-Za-z0-9+/=$._-]{16,}")
"""A run that reads like a hash, a key or a token (``$6$salt$...`` of a shadow line): masked in excerpts."""
EXCERPT = 80


def redact(text: str) -> str:
    """``text`` with every password (and the user next to it) replaced by ``<redacted>``."""
    return _DEFAULT.redact(text)


def excerpt(text: str, limit: int = EXCERPT, redactor: Redactor = _DEFAULT) -> str:
    """What a log line may show of text read from a log source: passwords redacted, anything that looks
    like a hash or a token masked, cut to ``limit`` characters. Never the raw line: a log source can be
    swapped for another file (a shadow-like one), and a malformed URL still holds a password."""
    masked = _OPAQUE.sub(MASK, redactor.redact(text[: limit * 4]))
    return masked if len(masked) <= limit else masked[:limit] + "..."
