"""What ``run`` refuses after the config itself validated: files the config names that must be usable at start.

``check-config`` reports these too (issue 15: a missing ``token_file`` passed the check, then ``run`` exited 1),
through the same checks ``run`` makes, so the two cannot disagree.
"""

from __future__ import annotations

from exporter.config import Config
from exporter.config.actions import HttpAction
from exporter.errors import ExporterError
from exporter.linesample import read_key


def startup_problems(config: Config) -> list[str]:
    """``key.path: message`` for every start-up check that fails; empty when ``run`` would start."""
    from exporter.actions import check_http_secrets
    from exporter.web.auth import BearerToken
    from exporter.web.viewers_api import read_only_token

    problems: list[str] = []
    if config.viewers.sharing.fleet_key_file is not None and config.viewers.access_log is not None:
        try:
            read_key(config.viewers.sharing.fleet_key_file)
        except ExporterError as exc:
            problems.append(str(exc))
    actions = config.actions
    webhook: BearerToken | None = None
    if actions is not None and actions.token_file is not None:
        token = BearerToken(actions.token_file)
        try:
            token.load()
            webhook = token
        except ExporterError as exc:
            problems.append(str(exc))
    for cfg in actions.configured().values() if actions is not None else ():
        if isinstance(cfg, HttpAction):
            try:
                check_http_secrets(cfg)
            except ExporterError as exc:
                problems.append(str(exc))
    try:
        read_only_token(config, webhook)
    except ExporterError as exc:
        problems.append(str(exc))
    return problems
