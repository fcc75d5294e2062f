"""Charts as inline SVG, drawn with matplotlib's object API (Agg canvas, no pyplot global state)."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from datetime import UTC, datetime

from matplotlib import dates as mdates
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from exporter.report.period import Period

COLOR = "#1f6feb"
PEAK = "#d1242f"
P95 = "#9a6700"


def _days(ts: float) -> float:
    """Unix seconds as matplotlib date numbers (days since matplotlib's epoch)."""
    start = mdates.get_epoch()  # type: ignore[no-untyped-call]
    epoch = datetime.fromisoformat(start).replace(tzinfo=UTC).timestamp()
    return (ts - epoch) / 86400.0


def _svg(fig: Figure, salt: str) -> str:
    """SVG markup without the XML prolog; ``salt`` keeps clip-path ids unique within one page."""
    FigureCanvasAgg(fig)
    out = io.StringIO()
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(out, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = out.getvalue()
    text = text[text.index("<svg") :]
    # Scale with the page: keep the viewBox, drop the fixed size in points.
    head, rest = text.split(">", 1)
    head = re.sub(r'\s(width|height)="[^"]*"', "", head)
    return f'{head} preserveAspectRatio="xMinYMin meet">{rest}'



def bitrate_chart(period: Period, bitrate: Sequence[float], peak_at: float | None, p95: float) -> str:
    """Total bitrate per step, the peak marked with a dot and the 95th percentile as a dashed line."""
    fig = Figure(figsize=(10, 3.6), dpi=96)
    ax = fig.add_subplot()
    times = [_days(t) for t in period.times()]
    mbps = [b / 1e6 for b in bitrate]
    ax.step(times, mbps, where="pre", color=COLOR, linewidth=1.2, label="bitrate")
    ax.fill_between(times, mbps, step="pre", color=COLOR, alpha=0.12)
    ax.axhline(p95 / 1e6, color=P95, linestyle="--", linewidth=1.2, label=f"95th percentile {p95 / 1e6:.2f}")
    if peak_at is not None:
        peak = max(mbps)
        when = _days(peak_at)
        ax.plot([when], [peak], "o", color=PEAK, label=f"peak {peak:.2f}")
        ax.annotate(
            f"peak {peak:.2f} Mbit/s",
            (when, peak),
            textcoords="offset points",
            xytext=(6, 4),
            color=PEAK,
            fontsize=9,
        )
    ax.xaxis_date(tz=UTC)
    locator = mdates.AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))  # type: ignore[no-untyped-call]
    ax.set_ylabel("Mbit/s")
    ax.set_ylim(bottom=0, top=max(mbps, default=0) * 1.15 or 1)
    ax.set_xlim(_days(period.start), _days(period.end))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Total bitrate (UTC)", fontsize=11)
    return _svg(fig, "bitrate")


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float], unit: str, salt: str) -> str:
    """Horizontal bars, largest on top."""
    height = 0.8 + 0.32 * max(len(labels), 1)
    fig = Figure(figsize=(10, height), dpi=96)
    ax = fig.add_subplot()
    positions = list(range(len(labels)))
    ax.barh(positions, values, color=COLOR)
    ax.set_yticks(positions, labels=list(labels))
    ax.invert_yaxis()
    ax.set_xlabel(unit)
    ax.grid(True, axis="x", alpha=0.3)
    for pos, value in zip(positions, values, strict=True):
        ax.annotate(f"{value:,.2f}", (value, pos), textcoords="offset points", xytext=(4, -3), fontsize=8)
    ax.set_xlim(0, max(values, default=0) * 1.15 or 1)
    ax.set_title(title, fontsize=11)
    return _svg(fig, salt)
