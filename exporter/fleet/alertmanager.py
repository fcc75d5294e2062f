"""The restart-webhook part of alertmanager.yml: two generated blocks, and reading them back.

Alertmanager cannot build a webhook URL from an alert's labels, so every node needs a route
(``node="<name>"`` under the ``action="restart"`` route) and a receiver with its URL and its own
``credentials_file``. The generator owns only the lines between these markers, so the people's routes,
inhibit rules and comments around them stay as written::

    # BEGIN iptv-exporter fleet routes ...        # BEGIN iptv-exporter fleet receivers ...
    # END iptv-exporter fleet routes               # END iptv-exporter fleet receivers

The blocks are written as text (the list items at the markers' indentation), not by dumping YAML, so a
regeneration changes nothing else in the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import yaml

from exporter.fleet.errors import FleetError
from exporter.fleet.targets import FleetNode

RECEIVER_PREFIX = "restart-"
BLOCKS = ("routes", "receivers")
_MARKER = re.compile(r"^(?P<indent>[ ]*)# (?P<edge>BEGIN|END) iptv-exporter fleet (?P<block>routes|receivers)\b.*$")
_NODE_MATCHER = re.compile(r'^\s*node\s*=\s*"?(?P<node>[^"]*)"?\s*$')


def receiver_name(node: str) -> str:
    return f"{RECEIVER_PREFIX}{node}"


def credentials_path(credentials_dir: str, node: str) -> str:
    """The token file Alertmanager reads for ``node``: one per node, named after it."""
    return str(PurePosixPath(credentials_dir) / f"{node}.token")


def render_block(block: str, nodes: Sequence[FleetNode], credentials_dir: str, indent: str) -> list[str]:
    """The lines of one generated block (without its markers), each list item at ``indent``."""
    lines: list[str] = []
    for node in nodes:
        name = receiver_name(node.name)
        if block == "routes":
            lines += [f"{indent}- matchers: ['node=\"{node.name}\"']", f"{indent}  receiver: {name}"]
        else:
            lines += [
                f"{indent}- name: {name}",
                f"{indent}  webhook_configs:",
                f"{indent}    - url: {node.webhook_url}",
                f"{indent}      send_resolved: true",
                f"{indent}      http_config:",
                f"{indent}        authorization:",
                f"{indent}          type: Bearer",
                f"{indent}          credentials_file: {credentials_path(credentials_dir, node.name)}",
            ]
    return lines


def splice(text: str, nodes: Sequence[FleetNode], credentials_dir: str, path: str = "alertmanager.yml") -> str:
    """``text`` with both generated blocks replaced for ``nodes``; FleetError if a marker is missing or doubled."""
    lines = text.splitlines()
    spans = _spans(lines, path)
    out: list[str] = []
    cursor = 0
    for block, (begin, end, indent) in sorted(spans.items(), key=lambda item: item[1][0]):
        out += lines[cursor:begin + 1]
        out += render_block(block, nodes, credentials_dir, indent)
        cursor = end
    out += lines[cursor:]
    result = "\n".join(out) + "\n"
    try:
        yaml.safe_load(result)
    except yaml.YAMLError as exc:  # markers put where a list item cannot go
        raise FleetError([f"{path}: the generated blocks do not fit where the markers are: {exc}"]) from None
    return result


def _spans(lines: Sequence[str], path: str) -> dict[str, tuple[int, int, str]]:
    """{block: (index of BEGIN, index of END, indentation)} for both blocks."""
    found: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for i, line in enumerate(lines):
        m = _MARKER.match(line)
        if m:
            found.setdefault((m["block"], m["edge"]), []).append((i, m["indent"]))
    problems = []
    spans = {}
    for block in BLOCKS:
        begins, ends = found.get((block, "BEGIN"), []), found.get((block, "END"), [])
        if len(begins) != 1 or len(ends) != 1 or ends[0][0] < begins[0][0]:
            problems.append(f"{path}: needs exactly one '# BEGIN iptv-exporter fleet {block}' line followed by one "
                            f"'# END iptv-exporter fleet {block}' line (found {len(begins)} and {len(ends)})")
            continue
        spans[block] = (begins[0][0], ends[0][0], begins[0][1])
    if problems:
        raise FleetError(problems)
    return spans


@dataclass(frozen=True, slots=True)
class Wiring:
    """How alertmanager.yml reaches one node's restart webhook."""
    node: str
    receiver: str
    url: str | None
    credentials_file: str | None


def read_wiring(config: Mapping[str, Any]) -> tuple[dict[str, Wiring], list[str]]:
    """{node: wiring} from every route to a ``restart-*`` receiver; and what is malformed or doubled."""
    problems: list[str] = []
    receivers = {r.get("name"): r for r in config.get("receivers") or [] if isinstance(r, dict)}
    wiring: dict[str, Wiring] = {}
    routed: set[str] = set()
    for where, route in _routes(config.get("route") or {}, "route"):
        name = route.get("receiver")
        if not isinstance(name, str) or not name.startswith(RECEIVER_PREFIX):
            continue
        routed.add(name)
        nodes = [m["node"] for m in (_NODE_MATCHER.match(str(x)) for x in route.get("matchers") or []) if m]
        if len(nodes) != 1:
            problems.append(f"alertmanager: {where}: route to {name} needs exactly one matcher node=\"...\"")
            continue
        node = nodes[0]
        if node in wiring:
            problems.append(f"alertmanager: node {node}: two restart routes ({wiring[node].receiver} and {name})")
            continue
        receiver = receivers.get(name)
        if receiver is None:
            problems.append(f"alertmanager: node {node}: route to receiver {name}, which does not exist")
            continue
        hooks = receiver.get("webhook_configs") or []
        hook = hooks[0] if len(hooks) == 1 and isinstance(hooks[0], dict) else {}
        auth = (hook.get("http_config") or {}).get("authorization") or {}
        wiring[node] = Wiring(node, name, hook.get("url"), auth.get("credentials_file"))
    for name in receivers:
        if isinstance(name, str) and name.startswith(RECEIVER_PREFIX) and name not in routed:
            problems.append(f"alertmanager: receiver {name} has no route")
    return wiring, problems


def _routes(route: Mapping[str, Any], where: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield where, route
    for i, child in enumerate(route.get("routes") or []):
        if isinstance(child, dict):
            yield from _routes(child, f"{where}.routes[{i}]")
