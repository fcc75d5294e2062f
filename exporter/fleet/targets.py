"""The one list of nodes: Prometheus file_sd target files of the iptv job.

A node's name is its target group's ``node`` label, or the host part of its address: the same rule as the
relabelling in prometheus/prometheus.yml, so the name here is the ``node`` label every alert carries.
Its webhook URL is the target's own address (the exporter serves /metrics and the hook on one port).
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from exporter.fleet.errors import FleetError

NODE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}")
"""Node names the generator accepts: safe in a matcher, a receiver name and a file name, without quoting."""
ADDRESS = re.compile(r"\[?(?P<host>.+?)\]?:\d+")
"""prometheus.yml's relabel rule: the host part of ``host:port`` (brackets of an IPv6 address dropped)."""
HOOK_PATH = "/hooks/alertmanager"


@dataclass(frozen=True, slots=True)
class FleetNode:
    name: str
    address: str
    """``host:port`` as in the target file."""
    scheme: str
    source: str
    """Where the node is listed (``file: [index]``), for messages."""

    @property
    def webhook_url(self) -> str:
        return f"{self.scheme}://{self.address}{HOOK_PATH}"


def target_files_from_prometheus(config_path: Path, job: str) -> tuple[list[Path], str]:
    """The file_sd files (globs expanded, relative to the config) and scheme of ``job`` in a prometheus.yml."""
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise FleetError([f"{config_path}: cannot read: {exc}"]) from None
    for scrape in (config or {}).get("scrape_configs") or []:
        if scrape.get("job_name") != job:
            continue
        patterns = [f for sd in scrape.get("file_sd_configs") or [] for f in sd.get("files") or []]
        if not patterns:
            raise FleetError([f"{config_path}: job {job!r} has no file_sd_configs files"])
        files = [Path(p) for pattern in patterns
                 for p in sorted(glob.glob(str(config_path.parent / pattern)))]
        return files, str(scrape.get("scheme", "http"))
    raise FleetError([f"{config_path}: no scrape job named {job!r}"])


def read_targets(files: Sequence[Path], scheme: str = "http") -> list[FleetNode]:
    """Every node of ``files``, in file order; FleetError listing every problem (bad name, duplicates)."""
    nodes: list[FleetNode] = []
    problems: list[str] = []
    if not files:
        raise FleetError(["no target files found"])
    for path in files:
        try:
            groups = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            problems.append(f"{path}: cannot read: {exc}")
            continue
        if not isinstance(groups, list):
            problems.append(f"{path}: expected a list of target groups")
            continue
        for i, group in enumerate(groups):
            nodes.extend(_group_nodes(path, i, group, scheme, problems))
    problems += _duplicates(nodes)
    if problems:
        raise FleetError(problems)
    return nodes


def _group_nodes(path: Path, i: int, group: Any, scheme: str, problems: list[str]) -> Iterable[FleetNode]:
    where = f"{path}: [{i}]"
    if not isinstance(group, dict) or not isinstance(group.get("targets"), list):
        problems.append(f"{where}: expected a mapping with a list `targets`")
        return
    labels = group.get("labels") or {}
    if not isinstance(labels, dict):
        problems.append(f"{where}.labels: expected a mapping")
        return
    label = labels.get("node")
    group_scheme = str(labels.get("__scheme__", scheme))
    for j, address in enumerate(group["targets"]):
        match = ADDRESS.fullmatch(str(address))
        if match is None:
            problems.append(f"{where}.targets[{j}]: {address!r} is not host:port")
            continue
        name = str(label) if label else match["host"]
        if not NODE_NAME.fullmatch(name):
            problems.append(f"{where}.targets[{j}]: node name {name!r} must match {NODE_NAME.pattern}")
            continue
        yield FleetNode(name, str(address), group_scheme, f"{where}.targets[{j}]")


def _duplicates(nodes: Sequence[FleetNode]) -> list[str]:
    problems = []
    by_name: dict[str, FleetNode] = {}
    by_address: dict[str, FleetNode] = {}
    for node in nodes:
        if node.name in by_name:
            problems.append(f"{node.source}: node {node.name!r} is listed twice (also {by_name[node.name].source}); "
                            "one exporter per node")
        if node.address in by_address:
            problems.append(f"{node.source}: address {node.address} is listed twice "
                            f"(also {by_address[node.address].source})")
        by_name.setdefault(node.name, node)
        by_address.setdefault(node.address, node)
    return problems
