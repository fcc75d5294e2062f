"""``actions:`` — what the Alertmanager webhook may do. An allowlist: nothing here comes from alert labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from exporter.config.base import Section
from exporter.config.durations import Duration


class CommandAction(Section):
    type: Literal["command"]
    argv: list[str] = Field(min_length=1)
    """Each item is one argv item; ``{stream}``, ``{name}``, ``{node}`` are filled in. Never a shell."""
    timeout: Duration = 30.0


class SystemdAction(Section):
    type: Literal["systemd"]
    unit: str = Field(min_length=1)
    """Unit name template, e.g. ``iptv-stream@{stream}.service``."""
    timeout: Duration = 30.0


class SignalAction(Section):
    type: Literal["signal"]
    signal: Literal["TERM", "INT", "HUP", "KILL", "QUIT", "USR1", "USR2"] = "TERM"
    grace: Duration = 5.0
    """Then SIGKILL to whatever is left (PanelX waits 5 s too)."""
    timeout: Duration = 30.0


class HttpAction(Section):
    type: Literal["http"]
    method: Literal["GET", "POST", "PUT"] = "POST"
    url: str = Field(pattern=r"^https?://")
    token_file: Path | None = None
    headers_file: Path | None = None
    timeout: Duration = 10.0


RestartAction = Annotated[
    CommandAction | SystemdAction | SignalAction | HttpAction, Field(discriminator="type")
]


class Budget(Section):
    max: int = Field(default=5, ge=1)
    window: Duration = 1800.0


class Actions(Section):
    token_file: Path | None = None
    dry_run: bool = False
    cooldown: Duration = 120.0
    budget: Budget = Field(default_factory=Budget)
    journal: Path = Path("/var/lib/iptv-exporter/actions.sqlite")
    retention: Duration = 30 * 86400.0
    restart: RestartAction | None = None
    verify_timeout: Duration = 60.0
    max_concurrent: int = Field(default=4, ge=1)
    body_limit: int = Field(default=1 << 20, ge=1024)

    @model_validator(mode="after")
    def _token_required(self) -> Actions:
        if self.token_file is None and not self.dry_run:
            raise ValueError("token_file is required unless dry_run is true (the webhook must not run unauthenticated)")
        return self
