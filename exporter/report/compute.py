"""Figures from per-step series: pure functions, no I/O (see docs/report.md for the definitions).

Inputs are lists with one value per step of the :class:`Period` (``None`` where Prometheus had no
point, counted as 0): bytes sent during the step, and the average number of viewers during the step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from exporter.report.period import Period

StepValues = Sequence[float | None]

TOTAL_KEY = "total"
UNATTRIBUTED = "unattributed"
"""Country that receives a node's egress during steps in which it reported no connections."""


@dataclass(frozen=True)
class Figures:
    bytes_sent: float
    avg_bps: float
    peak_bps: float
    peak_at: float | None
    """End of the first step with the peak bitrate; ``None`` when nothing was sent."""
    p95_bps: float
    viewer_hours: float
    share: float


@dataclass(frozen=True)
class Row:
    key: str
    name: str
    figures: Figures
    bitrate: tuple[float, ...]
    """Bits per second in each step, for charts."""


@dataclass(frozen=True)
class Report:
    by: str
    period: Period
    rows: tuple[Row, ...]
    """Sorted by bytes sent, largest first, then by key."""
    total: Row


def percentile_95(values: Sequence[float]) -> float:
    """Nearest-rank 95th percentile: sort ascending, take the ``ceil(0.95 * n)``-th value.

    This is the burstable-billing convention: of 8640 five-minute samples in 30 days, the 432 highest
    are discarded and the next one is billed.
    """
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def _filled(values: StepValues | None, steps: int) -> list[float]:
    if values is None:
        return [0.0] * steps
    if len(values) != steps:
        raise ValueError(f"series has {len(values)} values for {steps} steps")
    return [0.0 if v is None else float(v) for v in values]


def figures(period: Period, sent: Sequence[float], viewers: Sequence[float], total_bytes: float) -> Figures:
    """Figures of one row from its bytes per step and average viewers per step."""
    bytes_sent = math.fsum(sent)
    bitrate = [8.0 * b / period.step for b in sent]
    peak = max(bitrate, default=0.0)
    peak_at = period.start + (bitrate.index(peak) + 1) * period.step if peak > 0 else None
    return Figures(
        bytes_sent=bytes_sent,
        avg_bps=8.0 * bytes_sent / period.duration,
        peak_bps=peak,
        peak_at=peak_at,
        p95_bps=percentile_95(bitrate),
        viewer_hours=math.fsum(viewers) * period.step / 3600.0,
        share=bytes_sent / total_bytes if total_bytes > 0 else 0.0,
    )


def compute_report(
    by: str,
    period: Period,
    sent: Mapping[str, StepValues],
    viewers: Mapping[str, StepValues],
    names: Mapping[str, str] | None = None,
) -> Report:
    """One row per key found in ``sent`` or ``viewers``, and the total over all keys."""
    steps = period.steps
    keys = sorted(set(sent) | set(viewers))
    sent_full = {key: _filled(sent.get(key), steps) for key in keys}
    viewers_full = {key: _filled(viewers.get(key), steps) for key in keys}
    total_sent = [math.fsum(sent_full[key][i] for key in keys) for i in range(steps)]
    total_viewers = [math.fsum(viewers_full[key][i] for key in keys) for i in range(steps)]
    total_bytes = math.fsum(total_sent)
    rows = [
        Row(
            key=key,
            name=(names or {}).get(key, ""),
            figures=figures(period, sent_full[key], viewers_full[key], total_bytes),
            bitrate=tuple(8.0 * b / period.step for b in sent_full[key]),
        )
        for key in keys
    ]
    rows.sort(key=lambda row: (-row.figures.bytes_sent, row.key))
    total = Row(
        key=TOTAL_KEY,
        name="",
        figures=figures(period, total_sent, total_viewers, total_bytes),
        bitrate=tuple(8.0 * b / period.step for b in total_sent),
    )
    return Report(by=by, period=period, rows=tuple(rows), total=total)


def apportion(
    steps: int,
    egress: Mapping[str, StepValues],
    connections: Mapping[tuple[str, str], StepValues],
) -> dict[str, list[float]]:
    """Split each node's egress per step between countries by their share of the node's connections.

    ``egress`` maps node -> bytes sent per step; ``connections`` maps (node, country) -> average
    connections per step.  A step in which a node sent bytes but had no connections gives those bytes
    to :data:`UNATTRIBUTED`, so the countries always add up to the nodes' egress.
    """
    by_node: dict[str, dict[str, list[float]]] = {}
    for (node, country), values in connections.items():
        by_node.setdefault(node, {})[country] = _filled(values, steps)
    out: dict[str, list[float]] = {}
    for node in sorted(set(egress) | set(by_node)):
        node_egress = _filled(egress.get(node), steps)
        countries = by_node.get(node, {})
        for i in range(steps):
            total_conns = math.fsum(values[i] for values in countries.values())
            if total_conns <= 0:
                if node_egress[i] > 0:
                    out.setdefault(UNATTRIBUTED, [0.0] * steps)[i] += node_egress[i]
                continue
            for country, values in countries.items():
                out.setdefault(country, [0.0] * steps)[i] += node_egress[i] * values[i] / total_conns
    return out
