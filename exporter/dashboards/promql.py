"""PromQL fragments shared by the dashboards.

`node` is a target label that Prometheus adds (file_sd), so every selector filters on it; stream ids are
only unique per node, so per-stream results are grouped ``by (node, stream)``.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builder

from exporter.dashboards.variables import custom_variable, query_variable

NODE = 'node=~"$node"'
STREAM = 'stream=~"$stream"'
RATE = "$__rate_interval"
TOPN = "$topn"
TOPN_CHOICES = ("5", "10", "20", "50", "100")


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


def top(expr: str) -> str:
    """The ``$topn`` largest series of ``expr`` at each step: a per-stream chart stays readable at 500 streams."""
    return f"topk({TOPN}, {expr})"


STREAM_VARIABLE_QUERY = f'query_result({sel("iptv_stream_info", stream=False)})'
STREAM_VARIABLE_REGEX = r'/name="(?<text>[^"]*)".*stream="(?<value>[^"]+)"/'
"""Each result line reads ``iptv_stream_info{instance="...",job="iptv",name="BBC One",node="edge-1",
stream="1"} 1 <ms>`` (labels sorted): the option shows the name, its value is the id."""


def node_variable() -> dashboard_builder.QueryVariable:
    return query_variable("node", "Node", "label_values(iptv_exporter_build_info, node)")


def topn_variable() -> dashboard_builder.CustomVariable:
    return custom_variable(
        "topn",
        "Top",
        [(n, n) for n in TOPN_CHOICES],
        all_value=None,
        default="10",
        description="How many streams the per-stream time series draw (the largest at each moment).",
    )


def standard_variables() -> list[dashboard_builder.QueryVariable | dashboard_builder.CustomVariable]:
    """`node`, `stream` (names shown, ids as values) and `topn`, after the `datasource` variable."""
    return [
        node_variable(),
        query_variable("stream", "Stream", STREAM_VARIABLE_QUERY, regex=STREAM_VARIABLE_REGEX, query_type=3),
        topn_variable(),
    ]
