"""Shared base for every config model: frozen, unknown keys rejected."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


class Section(BaseModel):
    """Unknown keys are errors (a typo must not silently disable a feature)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _compile(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from exc
    return pattern


Regex = Annotated[str, AfterValidator(_compile)]
"""A regular expression that compiles."""


def require_group(pattern: str, *groups: str) -> None:
    """Raise ValueError unless ``pattern`` has every named group in ``groups``."""
    missing = [g for g in groups if g not in re.compile(pattern).groupindex]
    if missing:
        raise ValueError(f"regular expression needs the named group(s) {', '.join(missing)}: (?P<{missing[0]}>...)")
