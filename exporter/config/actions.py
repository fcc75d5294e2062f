"""``actions:`` — what the Alertmanager webhook may do. An allowlist: nothing here comes from alert labels.

Templates (``argv`` items, the systemd ``unit``, the http ``url``) may name only ``{stream}``, ``{name}``
and ``{node}``; they are filled from validated inventory values at run time, and each argv item stays one
argv item. Anything else in braces is rejected here, at start-up, so a typo cannot reach a runner.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from exporter.config.base import Section
from exporter.config.durations import Duration

PLACEHOLDERS = frozenset({"stream", "name", "node"})
"""The only names a template may use; values come from the inventory and the config, never from labels."""


def template_fields(template: str) -> set[str]:
    """The placeholders ``template`` uses; ValueError for anything but plain ``{stream}``/``{name}``/``{node}``.

    Attribute access, indexing, conversions and format specs (``{stream.__class__}``, ``{name!r}``,
    ``{node:>99}``) are refused: a template fills in values, it does not compute.
    """
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"invalid template {template!r}: {exc} (write {{{{ and }}}} for literal braces)") from None
    used: set[str] = set()
    for _, field_name, spec, conversion in parts:
        if field_name is None:
            continue
        if field_name not in PLACEHOLDERS or spec or conversion:
            raise ValueError(
                f"template {template!r} may only use {{stream}}, {{name}} and {{node}} (found {{{field_name}"
                f"{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}})"
            )
        used.add(field_name)
    return used


def _no_nul(value: str) -> str:
    if "\0" in value:
        raise ValueError("must not contain a NUL byte")
    return value


class CommandAction(Section):
    type: Literal["command"]
    argv: list[str] = Field(min_length=1)
    """Each item is one argv item; ``{stream}``, ``{name}``, ``{node}`` are filled in. Never a shell."""
    timeout: Duration = 30.0

    @field_validator("argv")
    @classmethod
    def _templates(cls, argv: list[str]) -> list[str]:
        for item in argv:
            _no_nul(item)
            template_fields(item)
        if not argv[0] or template_fields(argv[0]):
            raise ValueError("argv[0] (the program) must be a fixed, non-empty path or name, not a template")
        return argv


class SystemdAction(Section):
    type: Literal["systemd"]
    unit: str = Field(min_length=1)
    """Unit name template, e.g. ``iptv-stream@{stream}.service``; runs ``systemctl restart -- <unit>``."""
    systemctl: str = "systemctl"
    """The systemctl program (a path for hosts whose PATH lacks it)."""
    timeout: Duration = 30.0

    @field_validator("unit")
    @classmethod
    def _unit(cls, unit: str) -> str:
        if "name" in template_fields(_no_nul(unit)):
            raise ValueError("unit may use {stream} and {node}, not {name} (names may hold spaces)")
        if unit.startswith("-"):
            raise ValueError("unit must not start with '-'")
        return unit


class SignalAction(Section):
    type: Literal["signal"]
    signal: Literal["TERM", "INT", "HUP", "KILL", "QUIT", "USR1", "USR2"] = "TERM"
    grace: Duration = 5.0
    """Then SIGKILL to whatever is left (PanelX waits 5 s too)."""
    timeout: Duration = 30.0

    @model_validator(mode="after")
    def _grace_within_timeout(self) -> SignalAction:
        if self.grace >= self.timeout:
            raise ValueError("grace must be shorter than timeout")
        return self


class HttpLogin(Section):
    """A panel API that wants a logged-in session (PanelX: ``POST /api/auth/login``, then the session cookie)."""

    url: str = Field(pattern=r"^https?://")
    """The login endpoint; the username and password are sent to it, the cookies it sets are kept."""
    credentials_file: Path
    """A YAML file with ``username:`` and ``password:``; read at every login, so rotating it needs no restart."""
    format: Literal["json", "form"] = "json"
    """How the credentials are sent: a JSON body (PanelX) or an HTML form body."""

    @field_validator("url")
    @classmethod
    def _fixed_url(cls, url: str) -> str:
        if template_fields(_no_nul(url)):
            raise ValueError("the login url is fixed: no {stream}, {name} or {node}")
        return url


class HttpAction(Section):
    type: Literal["http"]
    method: Literal["GET", "POST", "PUT"] = "POST"
    url: str = Field(pattern=r"^https?://")
    """``{stream}``, ``{name}``, ``{node}`` are filled in percent-encoded."""
    token_file: Path | None = None
    """Sent as ``Authorization: Bearer <token>``; read for every action, so rotating it needs no restart."""
    headers_file: Path | None = None
    """A YAML mapping of extra request headers (``X-Api-Key: ...``), read for every action."""
    login: HttpLogin | None = None
    """Log in first and keep the session; log in again when the panel answers 401 (its session expired)."""
    timeout: Duration = 10.0

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        template_fields(_no_nul(url))
        return url


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
    max_concurrent: int = Field(default=4, ge=1, le=64)
    body_limit: int = Field(default=1 << 20, ge=1024)
    output_limit: int = Field(default=4096, ge=256, le=1 << 20)
    """Bytes of a runner's output (stdout + stderr, or the http response) kept in the journal."""
    queue_size: int = Field(default=256, ge=1)
    """Notifications waiting for the worker; beyond it the hook answers 503 and Alertmanager retries."""

    @model_validator(mode="after")
    def _token_required(self) -> Actions:
        if self.token_file is None and not self.dry_run:
            raise ValueError("token_file is required unless dry_run is true (the webhook must not run unauthenticated)")
        return self

    def configured(self) -> dict[str, CommandAction | SystemdAction | SignalAction | HttpAction]:
        """Action name (the alert's ``action`` label) -> its runner config. Only these names can act."""
        return {"restart": self.restart} if self.restart is not None else {}
