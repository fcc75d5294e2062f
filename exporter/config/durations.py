"""Durations written the way Prometheus writes them (``5s``, ``2m``, ``1h30m``)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
_ORDER = ("y", "w", "d", "h", "m", "s", "ms")
_WHOLE = re.compile("".join(f"(?:(?P<{u}>[0-9]{{1,12}}){u})?" for u in _ORDER))
"""Prometheus's grammar (``model.ParseDuration``): each unit at most once, largest first (``1h30m``, not
``30m1h`` or ``1s1h``)."""
MIN_SECONDS = 0.001
"""The smallest unit: a bare number below it (``0.000000001``) is a typo, not an interval."""
MAX_SECONDS = 10 * 31536000.0
"""Ten years: longer is a typo (``99999999999y`` once stopped the sampler for ever)."""


def parse_duration(text: str) -> float:
    """Return seconds for a Prometheus duration; raise ValueError with the accepted form otherwise."""
    found = _WHOLE.fullmatch(text) if text else None
    if found is None:
        raise ValueError(f"invalid duration {text!r}: use Prometheus form such as 5s, 2m, 1h30m "
                         "(units largest first, each once)")
    seconds = sum(int(n) * _UNITS[unit] for unit, n in found.groupdict().items() if n is not None)
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be greater than zero")
    return _bounded(seconds, text)


def _bounded(seconds: float, shown: object) -> float:
    if seconds < MIN_SECONDS:
        raise ValueError(f"duration {shown!r} is shorter than 1ms")
    if seconds > MAX_SECONDS:
        raise ValueError(f"duration {shown!r} is longer than 10 years")
    return seconds


def format_duration(seconds: float) -> str:
    """Inverse of :func:`parse_duration` for whole seconds, used in messages and docs."""
    whole = int(seconds)
    if whole != seconds or whole == 0:
        return f"{int(seconds * 1000)}ms"
    out = ""
    for unit in ("d", "h", "m", "s"):
        size = int(_UNITS[unit])
        if whole >= size:
            out += f"{whole // size}{unit}"
            whole %= size
    return out


def _coerce(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected a duration such as 5s or 2m")
    if not 0 < value < float("inf"):  # as for "0s": a zero interval would make the sampler spin
        raise ValueError(f"duration {value!r} must be greater than zero")
    return _bounded(float(value), value)


Duration = Annotated[float, BeforeValidator(_coerce)]
"""A duration in seconds; accepts ``"5s"`` strings or bare numbers of seconds."""
