"""The repository's Prometheus rules and Alertmanager routes, run for real against the demo on loopback.

The shipped files name real hosts (``edge-1:9756``, ``alertmanager:9093``) and production timings. The
demo (and the end-to-end test) load them and change only what a loopback run needs: addresses, the
restart receiver of this node, the token file, intervals, and ``for:`` durations capped so an alert fires
in seconds rather than minutes. Everything else (expressions, labels, routing tree, inhibitions) is what
ships, so what the demo shows is what production does.
"""

from __future__ import annotations

import copy
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from exporter.config import format_duration, parse_duration
from exporter.demo.layout import Layout

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "prometheus"
ALERTMANAGER_YML = REPO / "alertmanager" / "alertmanager.yml"
RESTART_PREFIX = "restart-"


@dataclass(frozen=True, slots=True)
class Timings:
    """How fast the loop turns. Production: 15 s scrapes, ``for: 1m``, ``group_wait: 10s``."""

    interval: str = "2s"
    """Scrape and rule evaluation interval."""
    max_for: str = "15s"
    """Alert ``for:`` durations longer than this are cut to it."""
    group_wait: str = "1s"
    group_interval: str = "5s"
    repeat_interval: str = "5m"


@dataclass(frozen=True, slots=True)
class Binaries:
    prometheus: str
    alertmanager: str


def find_binaries() -> Binaries | None:
    """Debian's ``prometheus`` and ``prometheus-alertmanager`` (or upstream's ``alertmanager``), if installed."""
    prom = shutil.which("prometheus")
    am = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    return Binaries(prom, am) if prom and am else None


def shipped_configs_present() -> bool:
    return (PROMETHEUS_DIR / "prometheus.yml").is_file() and ALERTMANAGER_YML.is_file()


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _dump(data: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def cap_for(rules: Any, max_for: str) -> Any:
    """A copy of a rule file with every alert's ``for:`` and ``keep_firing_for:`` at most ``max_for``;
    annotations that say "for 5m" say the new duration, so a demo alert does not claim a wait it did not
    make, and a repaired stream's alert resolves within the demo's pace."""
    limit = parse_duration(max_for)
    out = copy.deepcopy(rules)
    for group in out.get("groups", []):
        for rule in group.get("rules", []):
            if "alert" in rule and "keep_firing_for" in rule and parse_duration(str(rule["keep_firing_for"])) > limit:
                rule["keep_firing_for"] = format_duration(limit)
            if "alert" in rule and "for" in rule and parse_duration(str(rule["for"])) > limit:
                old, rule["for"] = str(rule["for"]), format_duration(limit)
                for key, text in rule.get("annotations", {}).items():
                    if isinstance(text, str):
                        rule["annotations"][key] = text.replace(f"for {old}", f"for {rule['for']}")
    return out


def write_rules(layout: Layout, timings: Timings) -> list[Path]:
    return [
        _dump(cap_for(_load(path), timings.max_for), layout.etc / "rules" / path.name)
        for path in sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
    ]


def prometheus_yml(layout: Layout, *, node: str, exporter: str, alertmanager: str, timings: Timings) -> Path:
    """prometheus.yml: the shipped one, its iptv job's file_sd pointed at a file naming ``exporter``."""
    config = _load(PROMETHEUS_DIR / "prometheus.yml")
    config["global"].update(scrape_interval=timings.interval, evaluation_interval=timings.interval,
                            scrape_timeout=timings.interval)
    config["rule_files"] = [str(p) for p in write_rules(layout, timings)]
    config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    targets = _dump([{"targets": [exporter], "labels": {"node": node}}], layout.etc / "targets" / "iptv.yml")
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] == "iptv":  # node-exporter is not part of the demo
            job["file_sd_configs"] = [{"files": [str(targets)], "refresh_interval": "5s"}]
            jobs.append(job)
    config["scrape_configs"] = jobs
    return _dump(config, layout.etc / "prometheus.yml")


def _restart_route(route: dict[str, Any]) -> dict[str, Any]:
    for child in route.get("routes", []):
        if 'action="restart"' in child.get("matchers", []):
            found: dict[str, Any] = child
            return found
    raise LookupError('alertmanager.yml has no route matching action="restart"')


def alertmanager_yml(layout: Layout, *, node: str, hook_url: str, timings: Timings) -> Path:
    """alertmanager.yml: the shipped routing tree with one restart route, for ``node``, to ``hook_url``."""
    config = _load(ALERTMANAGER_YML)
    route = config["route"]
    restart = _restart_route(route)
    receivers: list[dict[str, Any]] = config["receivers"]
    template = next(r for r in receivers if r["name"].startswith(RESTART_PREFIX) and r.get("webhook_configs"))
    receiver = copy.deepcopy(template)
    receiver["name"] = f"{RESTART_PREFIX}{node}"
    receiver["webhook_configs"][0]["url"] = hook_url
    config["receivers"] = [r for r in receivers if not r["name"].startswith(RESTART_PREFIX)] + [receiver]
    restart["routes"] = [{"matchers": [f'node="{node}"'], "receiver": receiver["name"]}]
    for r in config["receivers"]:
        for hook in r.get("webhook_configs", []):
            auth = hook.get("http_config", {}).get("authorization")
            if auth is not None:
                auth["credentials_file"] = str(layout.token_file)
    route.update(group_wait=timings.group_wait, group_interval=timings.group_interval,
                 repeat_interval=timings.repeat_interval)
    for key in ("group_wait", "group_interval", "repeat_interval"):
        restart.pop(key, None)
    return _dump(config, layout.etc / "alertmanager.yml")


def prometheus_argv(binary: str, layout: Layout, config: Path, port: int) -> list[str]:
    return [binary, f"--config.file={config}", f"--storage.tsdb.path={layout.data / 'prometheus'}",
            f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1d", "--log.level=warn"]


def alertmanager_argv(binary: str, layout: Layout, config: Path, port: int) -> list[str]:
    return [binary, f"--config.file={config}", f"--storage.path={layout.data / 'alertmanager'}",
            f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"]
