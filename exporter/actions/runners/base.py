"""What every runner shares: the target it acts on, the outcome it reports, the Runner protocol, and the two
helpers that keep config templates and captured output safe (:func:`fill`, :func:`excerpt`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from exporter.redact import redact


@dataclass(frozen=True, slots=True)
class Target:
    """What an action acts on, entirely from validated inventory values and the config."""

    stream: str
    name: str
    node: str
    action: str
    pids: tuple[int, ...] = ()
    """The stream's processes in the latest snapshot (the signal runner's targets)."""

    def values(self) -> dict[str, str]:
        return {"stream": self.stream, "name": self.name, "node": self.node}


@dataclass(frozen=True, slots=True)
class RunOutcome:
    result: str
    """ok, failed, timeout or interrupted."""
    detail: str
    exit_code: int | None = None
    output: str = ""
    ran: bool = True
    """False when nothing reached the target (the command could not be started, the panel's API could not be
    connected to): the alert is then no dedup key, and its repeat tries again."""


class Runner(Protocol):
    kind: str

    def describe(self, target: Target) -> str:
        """What would run, for the journal and dry run; raises ValueError if the target is unsafe."""
        ...

    def run(self, target: Target, stop: threading.Event) -> RunOutcome: ...


def fill(template: str, values: Mapping[str, str], encode: Callable[[str], str] = str) -> str:
    """Fill a template the config validated (only plain ``{stream}``/``{name}``/``{node}`` fields)."""
    return template.format_map({key: encode(value) for key, value in values.items()})


def excerpt(data: bytes, limit: int) -> str:
    text = data[:limit].decode("utf-8", "replace")
    if len(data) > limit:
        text += f"\n[output truncated at {limit} bytes]"
    return redact(text)
