"""``systemctl restart -- <unit>``: the unit named by the config's template, refused unless it is a valid
unit name (a stream id can never make it an option or another command)."""

from __future__ import annotations

import re

from exporter.actions.runners.base import Target, fill
from exporter.actions.runners.command import ArgvRunner
from exporter.config.actions import SystemdAction

_UNIT = re.compile(r"[A-Za-z0-9:_.@\\-]{1,255}")


class SystemdRunner(ArgvRunner[SystemdAction]):
    kind = "systemd"

    def argv(self, target: Target) -> list[str]:
        unit = fill(self.cfg.unit, target.values())
        if not _UNIT.fullmatch(unit) or unit.startswith("-"):
            raise ValueError(f"unit name {unit!r} is not a valid systemd unit name")
        return [self.cfg.systemctl, "restart", "--", unit]
