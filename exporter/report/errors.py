"""The one error the report raises; ``run`` turns it into exit code 1 and a message on stderr."""

from __future__ import annotations

from exporter.errors import ExporterError


class ReportError(ExporterError):
    """The report cannot be made: Prometheus unreachable or erroring, empty range, missing metric."""
