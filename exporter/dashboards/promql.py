"""PromQL fragments shared by the dashboards.

`node` is a target label that Prometheus adds (file_sd), so every selector filters on it; stream ids are
only unique per node, so per-stream results are grouped ``by (node, stream)``.
"""

from __future__ import annotations

from exporter.dashboards.core import Json, query_variable

NODE = 'node=~"$node"'
STREAM = 'stream=~"$stream"'
RATE = "$__rate_interval"


def sel(metric: str, *matchers: str, stream: bool = True) -> str:
    """``metric{node=~"$node", stream=~"$stream", ...}``; ``stream=False`` for node-wide metrics."""
    parts = [NODE, STREAM] if stream else [NODE]
    return f"{metric}{{{', '.join([*parts, *matchers])}}}"


def rate(metric: str, *matchers: str, stream: bool = True, window: str = RATE) -> str:
    return f"rate({sel(metric, *matchers, stream=stream)}[{window}])"


def bits(metric: str, by: str = "node, stream") -> str:
    """Bits per second from a per-stream bytes counter of the selected streams, summed ``by``."""
    inner = rate(metric)
    return f"sum by ({by}) ({inner}) * 8" if by else f"sum({inner}) * 8"


STREAM_NAME = f'topk by (node, stream) (1, {sel("iptv_stream_info")})'
"""One info series per (node, stream): a renamed stream briefly has two, which would break the join."""


def named(expr: str) -> str:
    """Add the stream's ``name`` label (from iptv_stream_info) to a result grouped by (node, stream)."""
    return f"({expr}) * on (node, stream) group_left (name) {STREAM_NAME}"


NAMED_LEGEND = "{{name}} ({{node}})"
"""Legend of a :func:`named` series: the stream's name and its node."""


def standard_variables() -> list[Json]:
    """`node` and `stream`, after the `datasource` variable (see core.datasource_variable)."""
    return [
        query_variable("node", "Node", "label_values(iptv_exporter_build_info, node)"),
        query_variable("stream", "Stream", 'label_values(iptv_stream_info{node=~"$node"}, stream)'),
    ]
