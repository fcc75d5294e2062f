"""The repository's Prometheus and Alertmanager configs, rewritten for a test on loopback.

The shipped files name real hosts (``edge-1:9756``, ``alertmanager:9093``) and 15 s intervals. Tests
load them with these helpers and change only what a loopback run needs, so what is tested is the shipped
routing tree, receivers, inhibit rules and rule files::

    from tests.rules_config import alertmanager_config, prometheus_config

    am_yml = alertmanager_config({"edge-1": f"http://127.0.0.1:{port}/hooks/alertmanager"}, token_file)
    prom_yml = prometheus_config(targets_file, alertmanager="127.0.0.1:9093", interval="1s")
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import REPO

PROMETHEUS_DIR = REPO / "prometheus"
PROMETHEUS_YML = PROMETHEUS_DIR / "prometheus.yml"
ALERTMANAGER_YML = REPO / "alertmanager" / "alertmanager.yml"
RESTART_RECEIVER_PREFIX = "restart-"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _restart_route(route: Mapping[str, Any]) -> dict[str, Any]:
    for child in route.get("routes", []):
        if child.get("matchers") == ['action="restart"']:
            return child  # type: ignore[no-any-return]
    raise LookupError('alertmanager.yml has no route with matchers [action="restart"]')


def alertmanager_config(
    webhooks: Mapping[str, str],
    token_file: Path,
    *,
    default_url: str | None = None,
    receiver_urls: Mapping[str, str] | None = None,
    group_wait: str | None = None,
    group_interval: str | None = None,
    repeat_interval: str | None = None,
) -> str:
    """alertmanager.yml with one restart route and receiver per ``{node: webhook URL}``.

    The shipped per-node receivers are replaced by copies of the first one (same webhook settings,
    other URL), every ``credentials_file`` points at ``token_file``, and ``default_url`` (if given)
    makes the default receiver a webhook too, so a test can see what reaches people; ``receiver_urls``
    (``{receiver name: URL}``) does the same for named receivers (``pager``, ``chat``, ``deadman``). Timings, if
    given, replace the root route's (children inherit them; the restart route keeps none of its own).
    """
    config = load_yaml(ALERTMANAGER_YML)
    route = config["route"]
    restart = _restart_route(route)
    receivers: list[dict[str, Any]] = config["receivers"]
    template = next(r for r in receivers if r["name"].startswith(RESTART_RECEIVER_PREFIX))
    kept = [r for r in receivers if not r["name"].startswith(RESTART_RECEIVER_PREFIX)]
    restart["routes"] = []
    for node, url in webhooks.items():
        name = f"{RESTART_RECEIVER_PREFIX}{node}"
        receiver = copy.deepcopy(template)
        receiver["name"] = name
        receiver["webhook_configs"][0]["url"] = url
        kept.append(receiver)
        restart["routes"].append({"matchers": [f'node="{node}"'], "receiver": name})
    for receiver in kept:
        for webhook in receiver.get("webhook_configs", []):
            auth = webhook.get("http_config", {}).get("authorization")
            if auth is not None:
                auth["credentials_file"] = str(token_file)
    if default_url is not None:
        default = next(r for r in kept if r["name"] == route["receiver"])
        default["webhook_configs"] = [{"url": default_url, "send_resolved": True}]
    for name, url in (receiver_urls or {}).items():
        named = next(r for r in kept if r["name"] == name)
        named["webhook_configs"] = [{"url": url, "send_resolved": True}]
    for key, value in (("group_wait", group_wait), ("group_interval", group_interval),
                       ("repeat_interval", repeat_interval)):
        if value is not None:
            route[key] = value
            restart.pop(key, None)
    config["receivers"] = kept
    return str(yaml.safe_dump(config, sort_keys=False))


def prometheus_config(
    targets_files: Mapping[str, Path],
    *,
    alertmanagers: Sequence[str] = (),
    interval: str | None = None,
    rule_files: Sequence[Path] | None = None,
) -> str:
    """prometheus.yml with absolute rule file paths and each job's file_sd pointed at a test file.

    ``targets_files`` maps a job name (``iptv``, ``node``) to a file_sd file; jobs not named are
    dropped. ``alertmanagers`` are ``host:port`` addresses (none: no alerting section). ``interval``
    replaces the scrape and evaluation intervals (and caps the scrape timeout).
    """
    config = load_yaml(PROMETHEUS_YML)
    files = rule_files if rule_files is not None else sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
    config["rule_files"] = [str(Path(f).resolve()) for f in files]
    if interval is not None:
        config["global"]["scrape_interval"] = interval
        config["global"]["evaluation_interval"] = interval
        config["global"]["scrape_timeout"] = interval
    if alertmanagers:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]}
    else:
        config.pop("alerting", None)
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] in targets_files:
            job["file_sd_configs"] = [{"files": [str(targets_files[job["job_name"]])], "refresh_interval": "1s"}]
            jobs.append(job)
    config["scrape_configs"] = jobs
    # The shared relabel list comes out as a YAML anchor and alias, as in the shipped file.
    return str(yaml.safe_dump(config, sort_keys=False))


def targets_file(path: Path, targets: Mapping[str, str]) -> Path:
    """Write a file_sd file: ``{address: node}``, one target group per node."""
    groups = [{"targets": [address], "labels": {"node": node}} for address, node in targets.items()]
    path.write_text(yaml.safe_dump(groups, sort_keys=False))
    return path
