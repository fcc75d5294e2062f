"""Errors of the actions part; all are ExporterErrors, so the CLI turns them into exit 1 with the message."""

from __future__ import annotations

from exporter.errors import ExporterError


class ActionsError(ExporterError):
    """The actions part cannot start (token file missing or empty, journal unusable)."""


class PayloadError(ValueError):
    """A webhook body is not a valid Alertmanager v4 notification; ``reason`` goes back in the 400."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class JournalError(Exception):
    """The journal cannot be used now (disk full, I/O error, read-only, corrupt, held by another process).

    Not an ExporterError: the exporter keeps running; actions stop until the journal works again.
    ``reason`` is one line naming the file and the problem, for the 503, the log and /api/actions.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
