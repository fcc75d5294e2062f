"""Regular expressions from the config, run by RE2: linear time in the text, whatever the pattern.

Python's ``re`` backtracks: ``^/(?P<stream>(a+)+)b$`` (a valid ``access_log.urls`` entry) against a URL of
32 ``a``\\ s runs for minutes with the GIL held, and /metrics with it. Prometheus runs every user regex with
RE2 for this reason; so does the exporter, through google-re2 (Google's own binding). RE2 has no
lookaround and no backreferences: such a pattern is refused when the config is validated, with its key path.

Only the operations the sources use are offered (``search``, ``match``, ``fullmatch``, ``groupindex``), and
matches answer group names for ``bytes`` patterns too, which the binding itself does not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Generic, TypeVar

import re2

S = TypeVar("S", str, bytes)

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the binding would print parse errors to stderr; they are raised instead
_OPTIONS.max_mem = 8 << 20  # per pattern; RE2 falls back to a slower linear engine past it, never backtracks


class LinearRegexError(ValueError):
    """The pattern is not valid RE2 syntax (lookaround, backreference, possessive quantifier...)."""


class LinearMatch(Generic[S]):
    """The parts of ``re.Match`` the sources use, with group names resolved for str and bytes alike."""

    __slots__ = ("_m", "re")

    def __init__(self, match: Any, pattern: LinearPattern[S]) -> None:
        self._m = match
        self.re: LinearPattern[S] = pattern

    def _index(self, group: int | str) -> int:
        return group if isinstance(group, int) else self.re.groupindex[group]

    def group(self, group: int | str = 0) -> S | None:
        value: S | None = self._m.group(self._index(group))
        return value

    def groupdict(self) -> dict[str, S | None]:
        return {name: self._m.group(i) for name, i in self.re.groupindex.items()}

    def span(self, group: int | str = 0) -> tuple[int, int]:
        start, end = self._m.span(self._index(group))
        return int(start), int(end)

    def start(self, group: int | str = 0) -> int:
        return self.span(group)[0]

    def end(self, group: int | str = 0) -> int:
        return self.span(group)[1]


class LinearPattern(Generic[S]):
    """A compiled RE2 pattern (``str`` or ``bytes``) with ``re``-like ``search``/``match``/``fullmatch``."""

    __slots__ = ("_rx", "groupindex", "pattern")

    def __init__(self, pattern: S) -> None:
        try:
            self._rx = re2.compile(pattern, _OPTIONS)
        except re2.error as exc:
            try:
                re.compile(pattern)  # compiling only: a plain syntax error gets Python's message, with its position
            except re.error as syntax:
                raise LinearRegexError(str(syntax)) from None
            why = exc.args[0] if exc.args else exc
            raise LinearRegexError(
                "valid for Python but not for RE2, which runs config regexes in linear time (no lookaround, "
                f"no backreferences): {why.decode('utf-8', 'replace') if isinstance(why, bytes) else why}"
            ) from None
        self.pattern: S = pattern
        names: Mapping[Any, int] = self._rx.groupindex
        self.groupindex: Mapping[str, int] = MappingProxyType(
            {k.decode() if isinstance(k, bytes) else k: v for k, v in names.items()}
        )

    def _wrap(self, found: Any) -> LinearMatch[S] | None:
        return None if found is None else LinearMatch(found, self)

    def search(self, text: S, pos: int = 0) -> LinearMatch[S] | None:
        return self._wrap(self._rx.search(text, pos))

    def match(self, text: S, pos: int = 0) -> LinearMatch[S] | None:
        return self._wrap(self._rx.match(text, pos))

    def fullmatch(self, text: S, pos: int = 0) -> LinearMatch[S] | None:
        return self._wrap(self._rx.fullmatch(text, pos))

    def __repr__(self) -> str:
        return f"LinearPattern({self.pattern!r})"


def compile_linear(pattern: S) -> LinearPattern[S]:
    """Compile a user-supplied pattern with RE2; LinearRegexError (a ValueError) if RE2 cannot run it."""
    return LinearPattern(pattern)
