"""Shared base for every config model: frozen, unknown keys rejected."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

from exporter.linear_re import LinearRegexError, compile_linear


class Section(BaseModel):
    """Unknown keys are errors (a typo must not silently disable a feature)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _compile(pattern: str) -> str:
    try:
        compile_linear(pattern)
    except LinearRegexError as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    return pattern


Regex = Annotated[str, AfterValidator(_compile)]
"""A regular expression that RE2 compiles: the sources run it with RE2, in linear time (exporter.linear_re)."""


def require_group(pattern: str, *groups: str) -> None:
    """Raise ValueError unless ``pattern`` has every named group in ``groups``."""
    missing = [g for g in groups if g not in compile_linear(pattern).groupindex]
    if missing:
        raise ValueError(f"regular expression needs the named group(s) {', '.join(missing)}: (?P<{missing[0]}>...)")
