"""Runners: the only code in the exporter that executes anything. Chosen by the config, never by labels.

Rules every runner keeps:
- argv lists only, never a shell; each template item stays exactly one argv item, filled from the
  inventory (stream ids are restricted to a safe alphabet) and the config;
- every run has a timeout; a command's whole process group is killed when it is exceeded;
- output is captured, truncated to ``output_limit`` bytes and redacted before it reaches the journal;
- children get a minimal environment (PATH, LANG, IPTV_*) and ``/`` as working directory, so nothing of
  the exporter's own environment (tokens, proxies) leaks into them.
"""

from __future__ import annotations

from exporter.actions.runners.base import Runner, RunOutcome, Target
from exporter.actions.runners.command import CommandRunner
from exporter.actions.runners.http import HttpRunner, read_credentials, read_secret
from exporter.actions.runners.signal import Belongs, SignalRunner, belongs_to_stream
from exporter.actions.runners.systemd import SystemdRunner
from exporter.config.actions import CommandAction, HttpAction, SignalAction, SystemdAction

__all__ = [
    "Belongs", "CommandRunner", "HttpRunner", "RunOutcome", "Runner", "SignalRunner", "SystemdRunner", "Target",
    "belongs_to_stream", "build_runner", "read_credentials", "read_secret",
]


def build_runner(
    cfg: CommandAction | SystemdAction | SignalAction | HttpAction, output_limit: int, belongs: Belongs
) -> Runner:
    if isinstance(cfg, CommandAction):
        return CommandRunner(cfg, output_limit)
    if isinstance(cfg, SystemdAction):
        return SystemdRunner(cfg, output_limit)
    if isinstance(cfg, SignalAction):
        return SignalRunner(cfg, belongs)
    return HttpRunner(cfg, output_limit)
