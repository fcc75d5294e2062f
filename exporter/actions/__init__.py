"""Automatic actions: Alertmanager webhook -> policy -> runner -> verification -> journal.

:func:`build_actions` wires the parts from the config and returns one app component (routes, start,
stop) plus its metrics collector; ``exporter.runtime`` adds both when ``actions:`` is configured.
What can refuse to start (token file, secrets) is checked here, at build time, so a broken setup exits 1
with a clear message instead of serving a webhook that cannot work. The journal is the exception: actions
are optional, metrics are not; a journal that cannot be opened is logged in one line, the exporter serves
metrics, refuses actions with 503 (``iptv_actions_journal_up 0``) and opens it once it can.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from starlette.routing import BaseRoute

from exporter.actions.errors import ActionsError, JournalError
from exporter.actions.journal import Journal
from exporter.actions.metrics import ActionMetrics
from exporter.actions.policy import Policy
from exporter.actions.receiver import Receiver
from exporter.actions.runners import Runner, belongs_to_stream, build_runner, read_secret
from exporter.actions.verify import Verifier
from exporter.actions.worker import ActionWorker
from exporter.config import Config
from exporter.config.actions import HttpAction
from exporter.errors import TokenFileError
from exporter.sampler import Sampler
from exporter.sources.discovery import rules_from_config
from exporter.web.auth import BearerToken

__all__ = ["ActionsComponent", "ActionsError", "build_actions"]

log = logging.getLogger(__name__)


class ActionsComponent:
    """The app component: the receiver's routes, and the worker's life tied to the app's lifespan."""

    def __init__(self, receiver: Receiver, worker: ActionWorker, journal: Journal, metrics: ActionMetrics) -> None:
        self.receiver = receiver
        self.worker = worker
        self.journal = journal
        self.metrics = metrics

    def routes(self) -> Sequence[BaseRoute]:
        return self.receiver.routes()

    async def start(self) -> None:
        await asyncio.to_thread(self.worker.start)

    async def stop(self) -> None:
        """Worker first (outcomes are written), then the journal; a component is started once."""
        await asyncio.to_thread(self.worker.stop)
        await asyncio.to_thread(self.journal.close)


def check_http_secrets(cfg: HttpAction) -> None:
    if cfg.token_file is not None:
        try:
            read_secret(cfg.token_file)
        except ValueError as exc:
            raise ActionsError(f"actions.restart.token_file: {exc}") from None
    if cfg.headers_file is not None and not cfg.headers_file.is_file():
        raise ActionsError(f"actions.restart.headers_file: {cfg.headers_file} does not exist")


def build_actions(config: Config, sampler: Sampler) -> ActionsComponent:
    """Build every part from ``config.actions``; raise ActionsError when the exporter must not start."""
    actions = config.actions
    if actions is None:
        raise ActionsError("actions: not configured")
    token: BearerToken | None = None
    if actions.token_file is not None:
        token = BearerToken(actions.token_file)
        try:
            token.load()
        except TokenFileError as exc:
            raise ActionsError(str(exc)) from None
    elif actions.dry_run:
        log.warning("actions: dry run without token_file: the webhook accepts unauthenticated requests")
    belongs = belongs_to_stream(rules_from_config(config))

    runners: dict[str, Runner] = {}
    for name, cfg in actions.configured().items():
        if isinstance(cfg, HttpAction):
            check_http_secrets(cfg)
        runners[name] = build_runner(cfg, actions.output_limit, belongs)
    journal = Journal(actions.journal)
    with contextlib.suppress(JournalError):  # logged; the exporter serves metrics and refuses actions (503)
        journal.connect()
    policy = Policy(
        node=config.node, actions=runners.keys(), cooldown=actions.cooldown, budget_max=actions.budget.max,
        budget_window=actions.budget.window, dedup_ttl=actions.retention,
    )

    def inventory() -> list[str]:
        return list(sampler.snapshot.streams)

    metrics = ActionMetrics(policy, inventory, lambda: journal.up)
    verifier = Verifier()
    sampler.subscribe(verifier.on_snapshot)
    worker = ActionWorker(
        node=config.node, dry_run=actions.dry_run, verify_timeout=actions.verify_timeout,
        retention=actions.retention, max_concurrent=actions.max_concurrent, queue_size=actions.queue_size,
        policy=policy, journal=journal, runners=runners, verifier=verifier, metrics=metrics,
        snapshot=lambda: sampler.snapshot,
    )
    receiver = Receiver(token=token, worker=worker, journal=journal, policy=policy, metrics=metrics,
                        body_limit=actions.body_limit, inventory=inventory)
    return ActionsComponent(receiver, worker, journal, metrics)
