"""The fleet command's one error: a list of problems, each naming the file and node it is about."""

from __future__ import annotations

from exporter.errors import ExporterError


class FleetError(ExporterError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))
