"""A small client for the Prometheus HTTP API (``/api/v1/query_range``, ``/api/v1/query``).

Long ranges are fetched in chunks because Prometheus refuses more than 11,000 points per series;
``on_chunk`` is called after each chunk so the caller can draw a progress bar.  Every failure becomes a
:class:`ReportError` whose message names the server and, where it matters, the query.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from exporter.report.errors import ReportError
from exporter.report.period import Period

MAX_POINTS = 10_000
"""Points per series per request; Prometheus's own limit is 11,000."""

Labels = tuple[tuple[str, str], ...]
"""A series' labels, sorted, as a hashable key."""


@dataclass(frozen=True)
class Series:
    """One series of a range query: value per step, ``None`` where Prometheus returned no point."""

    labels: Labels
    values: tuple[float | None, ...]

    def label(self, name: str) -> str:
        return dict(self.labels).get(name, "")


def chunks(period: Period, max_points: int) -> list[tuple[int, int]]:
    """Split step indexes ``0..steps-1`` into ``(first, count)`` runs of at most ``max_points``."""
    return [
        (first, min(max_points, period.steps - first)) for first in range(0, period.steps, max_points)
    ]


class PrometheusClient:
    """Talks to one Prometheus server.  ``transport`` lets tests substitute an ``httpx`` mock transport."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        max_points: int = MAX_POINTS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.max_points = max_points
        try:
            self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)
        except (httpx.InvalidURL, ValueError) as exc:
            raise ReportError(f"invalid Prometheus URL {url!r}: {exc}") from exc

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def requests_for(self, period: Period) -> int:
        """How many HTTP requests one range query over ``period`` takes."""
        return max(1, math.ceil(period.steps / self.max_points))

    def query_range(
        self, expr: str, period: Period, on_chunk: Callable[[], None] | None = None
    ) -> list[Series]:
        """Evaluate ``expr`` at the end of every step of ``period``; one :class:`Series` per label set."""
        found: dict[Labels, list[float | None]] = {}
        for first, count in chunks(period, self.max_points):
            start = period.start + (first + 1) * period.step
            end = period.start + (first + count) * period.step
            data = self._call(
                "/api/v1/query_range",
                {"query": expr, "start": _num(start), "end": _num(end), "step": _num(period.step)},
            )
            for item in _result(data, "matrix", expr):
                key = tuple(sorted(item.get("metric", {}).items()))
                values = found.setdefault(key, [None] * period.steps)
                for ts, text in item.get("values", []):
                    index = round((float(ts) - period.start) / period.step) - 1
                    if 0 <= index < period.steps:
                        values[index] = float(text)
            if on_chunk is not None:
                on_chunk()
        return [Series(labels=key, values=tuple(vals)) for key, vals in sorted(found.items())]

    def query(self, expr: str, time: float) -> list[tuple[Labels, float]]:
        """Instant query: ``(labels, value)`` per series."""
        data = self._call("/api/v1/query", {"query": expr, "time": _num(time)})
        return [
            (tuple(sorted(item.get("metric", {}).items())), float(item["value"][1]))
            for item in _result(data, "vector", expr)
        ]

    def metric_names(self) -> set[str]:
        """Every metric name the server holds (any time)."""
        data = self._call("/api/v1/label/__name__/values", None)
        if not isinstance(data, list):
            raise ReportError(f"Prometheus at {self.url} sent an unexpected list of metric names")
        return {str(name) for name in data}

    def _call(self, path: str, form: dict[str, str] | None) -> Any:
        what = f" for query {form['query']!r}" if form and "query" in form else ""
        try:
            response = self._http.get(path) if form is None else self._http.post(path, data=form)
        except httpx.TimeoutException as exc:
            raise ReportError(f"Prometheus at {self.url} timed out{what}: {exc}") from exc
        except httpx.TransportError as exc:
            raise ReportError(f"cannot reach Prometheus at {self.url}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            raise ReportError(
                f"Prometheus at {self.url} answered HTTP {response.status_code}{what} "
                f"with a body that is not the API's JSON: is the URL right?"
            ) from None
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error", "unknown error") if isinstance(body, dict) else "unknown error"
            raise ReportError(f"Prometheus at {self.url} answered HTTP {response.status_code}{what}: {error}")
        return body.get("data")


def _result(data: Any, kind: str, expr: str) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or data.get("resultType") != kind:
        raise ReportError(f"Prometheus sent no {kind} for query {expr!r}")
    result = data.get("result")
    return result if isinstance(result, list) else []


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)
