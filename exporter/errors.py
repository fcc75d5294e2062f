"""One exception hierarchy for the whole exporter.

Library code raises these and leaves logging to the caller; only ``cli.py`` turns them into exit codes.
"""

from __future__ import annotations


class ExporterError(Exception):
    """Base class of every error the exporter raises on purpose."""


class ConfigError(ExporterError):
    """A configuration file is unreadable or invalid; ``problems`` lists every problem found."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(f"{path}: {p}" for p in problems))


class WebConfigError(ExporterError):
    """The ``--web.config.file`` (TLS / basic auth) is invalid."""


class TokenFileError(ExporterError):
    """A bearer token file the config names is missing, unreadable, empty, or holds another token's secret."""
