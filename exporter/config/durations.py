"""Durations written the way Prometheus writes them (``5s``, ``2m``, ``1h30m``)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_WHOLE = re.compile(r"(?:\d+(?:ms|s|m|h|d|w|y))+")


def parse_duration(text: str) -> float:
    """Return seconds for a Prometheus duration; raise ValueError with the accepted form otherwise."""
    if not _WHOLE.fullmatch(text):
        raise ValueError(f"invalid duration {text!r}: use Prometheus form such as 5s, 2m, 1h30m")
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(text))
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be greater than zero")
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
    return value


Duration = Annotated[float, BeforeValidator(_coerce)]
"""A duration in seconds; accepts ``"5s"`` strings or bare numbers of seconds."""
