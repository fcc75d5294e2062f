"""``fleet --check``: where the targets, alertmanager.yml, the token files and the exporters' configs disagree.

Every disagreement is listed, each naming the node and both sides, so a typo (``edge3`` against ``edge-3``)
is found before an alert for that node is refused or sent nowhere.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from exporter.config import Config, load_config
from exporter.errors import ConfigError
from exporter.fleet.alertmanager import Wiring, credentials_path, receiver_name
from exporter.fleet.targets import FleetNode
from exporter.fleet.tokens import read_token, token_path


def _near(name: str, names: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_alertmanager(nodes: Sequence[FleetNode], wiring: Mapping[str, Wiring], credentials_dir: str) -> list[str]:
    """Targets against alertmanager.yml: a route per node, no route for a stranger, URL and credentials file."""
    problems = []
    names = {n.name for n in nodes}
    for node in nodes:
        wired = wiring.get(node.name)
        if wired is None:
            problems.append(f"node {node.name}: in the targets ({node.source}) but alertmanager.yml has no restart "
                            f"route for it: its restart alerts reach no webhook{_near(node.name, wiring)}")
            continue
        if wired.receiver != receiver_name(node.name):
            problems.append(f"node {node.name}: routed to receiver {wired.receiver}, expected "
                            f"{receiver_name(node.name)}")
        if wired.url != node.webhook_url:
            problems.append(f"node {node.name}: alertmanager.yml sends its restarts to {wired.url}, the targets say "
                            f"{node.webhook_url}")
        expected = credentials_path(credentials_dir, node.name)
        if wired.credentials_file != expected:
            problems.append(f"node {node.name}: credentials_file is {wired.credentials_file}, expected {expected} "
                            "(one token per node)")
    for name in sorted(set(wiring) - names):
        problems.append(f"node {name}: alertmanager.yml has a restart route for it but the targets do not list it"
                        f"{_near(name, names)}")
    return problems


def check_tokens(nodes: Sequence[FleetNode], tokens_dir: Path) -> tuple[dict[str, str], list[str]]:
    """Each node's token file exists, is private and is its own; {node: token digest} and the problems."""
    digests: dict[str, str] = {}
    problems = []
    owner: dict[str, str] = {}
    for node in nodes:
        digest, problem = read_token(token_path(tokens_dir, node.name))
        if digest is None:
            problems.append(f"node {node.name}: token: {problem}")
            continue
        if digest in owner:
            problems.append(f"node {node.name}: has the same token as node {owner[digest]}: one token per node")
        owner.setdefault(digest, node.name)
        digests[node.name] = digest
    return digests, problems


def _viewer_token_problems(node: str, path: Path, config: Config, digests: Mapping[str, str]) -> list[str]:
    """The read-only viewer token (``viewers.api.token_file``, Grafana's; one may serve the whole fleet) is
    readable and is no node's webhook token: else Grafana's editors could restart that node's streams."""
    if config.viewers.api is None:
        return []
    digest, problem = read_token(config.viewers.api.token_file, private=False)
    if digest is None:
        return [f"node {node}: exporter config {path}: viewers.api.token_file: {problem}"]
    return [f"node {node}: exporter config {path}: viewers.api.token_file holds node {owner}'s webhook token: the "
            "read-only token must be none of the webhook tokens" for owner, webhook in digests.items()
            if webhook == digest]


def check_exporters(nodes: Sequence[FleetNode], configs: Sequence[Path], digests: Mapping[str, str]) -> list[str]:
    """Each exporter config names a node of the targets and reads that node's token; every node has a config."""
    problems = []
    names = {n.name for n in nodes}
    seen: dict[str, Path] = {}
    for path in configs:
        try:
            config = load_config(path)
        except ConfigError as exc:
            problems += [f"exporter config {p}" for p in str(exc).splitlines()]
            continue
        node = config.node
        if node in seen:
            problems.append(f"node {node}: two exporter configs name it ({seen[node]} and {path})")
            continue
        seen[node] = path
        if node not in names:
            problems.append(f"node {node}: exporter config {path} says `node: {node}` but the targets do not list it"
                            f"{_near(node, names)}: every alert for this exporter would be refused as another node's")
            continue
        problems += _viewer_token_problems(node, path, config, digests)
        if config.actions is None or config.actions.token_file is None:
            problems.append(f"node {node}: exporter config {path} has no actions.token_file: it takes no restarts")
            continue
        digest, problem = read_token(config.actions.token_file, private=False)
        if digest is None:
            problems.append(f"node {node}: exporter config {path}: actions.token_file: {problem}")
        elif node in digests and digest != digests[node]:
            problems.append(f"node {node}: exporter config {path} reads a token ({config.actions.token_file}) that "
                            f"differs from the one Alertmanager sends it: every restart would get 401")
    if configs:
        problems += [f"node {n.name}: in the targets but no exporter config given names it"
                     for n in nodes if n.name not in seen]
    return problems
